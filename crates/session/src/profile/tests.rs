//! Profile loading, selection and templates.

use std::time::Duration;

use super::template::{Template, TemplateContext};
use super::*;

fn defaults() -> ProfileDefaults {
    ProfileDefaults {
        provider: "mock".into(),
        model: "mock-model".into(),
        voice: None,
        system_prompt: "Be brief. {{ not a template }}".into(),
        greeting: "Greet the caller.".into(),
        tools: true,
        transfer_targets: vec![
            "sales=sip:sales@pbx.example".into(),
            "support=+441632960123".into(),
        ],
        max_duration: Duration::from_secs(1800),
        keep_headers: vec!["X-Customer-Id".into()],
        http_tools: Default::default(),
        providers: Default::default(),
        webhooks: crate::webhooks::WebhookConfig {
            timeout: Duration::from_secs(3),
            ..Default::default()
        },
        env: Env::from_fn(|v| (v == "SALES_HOOK_SECRET").then(|| "s3cret".to_owned())),
        trunks: trunks::Trunks::load(&[
            trunks::TrunkSpec {
                name: "carrier-a".into(),
                sources: vec!["192.0.2.0/24".into()],
            },
            trunks::TrunkSpec {
                name: "carrier-b".into(),
                sources: vec!["198.51.100.7".into()],
            },
        ])
        .unwrap(),
    }
}

fn spec(name: &str) -> ProfileSpec {
    ProfileSpec {
        name: name.into(),
        ..ProfileSpec::default()
    }
}

fn matching(name: &str, m: MatchSpec) -> ProfileSpec {
    ProfileSpec {
        matches: Some(m),
        ..spec(name)
    }
}

fn ctx(direction: &'static str) -> TemplateContext {
    TemplateContext {
        caller: "+15550001111".into(),
        called: "+15550002222".into(),
        direction,
        profile: "p".into(),
        lead: None,
        sip: Default::default(),
    }
}

#[test]
fn no_profiles_is_the_single_prompt_configuration_taken_literally() {
    let set = Profiles::load(&[], None, &defaults()).unwrap();
    let p = set.inbound("+15550002222", None);
    assert_eq!(p.name(), "default");
    let (i, g) = p.render(&ctx("inbound"), "");
    assert_eq!(i, "Be brief. {{ not a template }}");
    assert_eq!(g, "Greet the caller.");
    assert_eq!(p.transfer_targets.names(), vec!["sales", "support"]);
    assert_eq!(p.max_duration, Duration::from_secs(1800));
}

#[test]
fn exact_beats_prefix_beats_pattern_and_the_longest_prefix_wins() {
    let set = Profiles::load(
        &[
            matching(
                "pattern",
                MatchSpec {
                    pattern: vec![r"\+4930\d+".into()],
                    ..MatchSpec::default()
                },
            ),
            matching(
                "short",
                MatchSpec {
                    prefix: vec!["+49".into()],
                    ..MatchSpec::default()
                },
            ),
            matching(
                "long",
                MatchSpec {
                    prefix: vec!["+4930".into()],
                    ..MatchSpec::default()
                },
            ),
            matching(
                "exact",
                MatchSpec {
                    exact: vec!["+4930123".into()],
                    ..MatchSpec::default()
                },
            ),
        ],
        None,
        &defaults(),
    )
    .unwrap();
    assert_eq!(set.inbound("+4930123", None).name(), "exact");
    assert_eq!(set.inbound("+4930999", None).name(), "long");
    assert_eq!(set.inbound("+4940999", None).name(), "short");
    assert_eq!(set.inbound("+15550000", None).name(), "default");
}

#[test]
fn a_pattern_matches_the_whole_number_and_the_first_listed_wins() {
    let set = Profiles::load(
        &[
            matching(
                "a",
                MatchSpec {
                    pattern: vec![r"\+1555\d{4}".into()],
                    ..MatchSpec::default()
                },
            ),
            matching(
                "b",
                MatchSpec {
                    pattern: vec![r"\+1.*".into()],
                    ..MatchSpec::default()
                },
            ),
        ],
        None,
        &defaults(),
    )
    .unwrap();
    assert_eq!(set.inbound("+15551234", None).name(), "a");
    assert_eq!(set.inbound("+155512345", None).name(), "b", "anchored");
}

#[test]
fn a_source_set_limits_a_profile_to_its_addresses() {
    let set = Profiles::load(
        &[matching(
            "trunk",
            MatchSpec {
                exact: vec!["+100".into()],
                source: vec!["192.0.2.0/24".into()],
                ..MatchSpec::default()
            },
        )],
        None,
        &defaults(),
    )
    .unwrap();
    let inside = "192.0.2.7".parse().ok();
    let outside = "198.51.100.7".parse().ok();
    assert_eq!(set.inbound("+100", inside).name(), "trunk");
    assert_eq!(set.inbound("+100", outside).name(), "default");
    assert_eq!(set.inbound("+100", None).name(), "default");
}

#[test]
fn every_error_of_every_profile_is_named_and_the_set_is_refused_whole() {
    let bad = [
        ProfileSpec {
            system_prompt: Some("Hello {{ calller }}".into()),
            tools: Some(vec!["launch_rocket".into()]),
            ..spec("one")
        },
        matching(
            "two",
            MatchSpec {
                pattern: vec!["(".into()],
                source: vec!["nowhere".into()],
                ..MatchSpec::default()
            },
        ),
        ProfileSpec {
            transfer_targets: Some(vec!["billing".into()]),
            max_duration: Some("0s".into()),
            provider: Some("gemini".into()),
            ..spec("one")
        },
        spec("bad name!"),
    ];
    let errors = Profiles::load(&bad, Some("nobody"), &defaults()).unwrap_err();
    let fields: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.field.as_str())).collect();
    assert_eq!(
        fields,
        vec![
            (0, "system_prompt"),
            (0, "tools"),
            (1, "match.pattern[0]"),
            (1, "match.source[0]"),
            (2, "name"),
            (2, "provider"),
            (2, "transfer_targets"),
            (2, "max_duration"),
            (3, "name"),
            (0, "default_profile"),
        ],
        "{errors:#?}"
    );
    assert!(errors[0].to_string().contains("\"one\""));
}

#[test]
fn transfer_targets_are_names_of_the_agents_list_or_entries_of_their_own() {
    let set = Profiles::load(
        &[ProfileSpec {
            transfer_targets: Some(vec!["support".into(), "desk=+441632960999".into()]),
            ..spec("p")
        }],
        None,
        &defaults(),
    )
    .unwrap();
    let p = set.outbound("p").unwrap();
    assert_eq!(p.transfer_targets.names(), vec!["support", "desk"]);
}

#[test]
fn without_transfer_call_in_its_tools_a_profile_offers_no_transfer() {
    let set = Profiles::load(
        &[ProfileSpec {
            tools: Some(vec!["end_call".into()]),
            ..spec("p")
        }],
        None,
        &defaults(),
    )
    .unwrap();
    let p = set.outbound("p").unwrap();
    assert!(p.end_call);
    assert!(p.transfer_targets.is_empty());
}

#[test]
fn direction_decides_which_calls_a_profile_takes_and_which_variables_exist() {
    // `lead` exists on outbound calls only.
    let lead = ProfileSpec {
        system_prompt: Some("Call {{ lead.name }}".into()),
        ..spec("lead")
    };
    let e = Profiles::load(std::slice::from_ref(&lead), None, &defaults()).unwrap_err();
    assert_eq!(e[0].field, "system_prompt");
    assert!(e[0].message.contains("inbound"), "{}", e[0].message);
    let out = ProfileSpec {
        direction: Some("outbound".into()),
        ..lead
    };
    let set = Profiles::load(&[out], None, &defaults()).unwrap();
    assert!(set.outbound("lead").is_some());
    // An outbound-only profile is never the inbound default.
    let e = Profiles::load(
        &[ProfileSpec {
            direction: Some("outbound".into()),
            ..spec("o")
        }],
        Some("o"),
        &defaults(),
    )
    .unwrap_err();
    assert_eq!(e[0].field, "default_profile");
    // An inbound-only profile is not dialled by name.
    let set = Profiles::load(
        &[ProfileSpec {
            direction: Some("inbound".into()),
            ..spec("i")
        }],
        None,
        &defaults(),
    )
    .unwrap();
    assert!(set.outbound("i").is_none());
    assert!(set.outbound("default").is_some());
    assert!(set.outbound("nobody").is_none());
}

#[test]
fn a_template_fills_from_the_call_and_a_kept_header() {
    let t = Template::parse(
        "{{ direction }} call from {{ caller }} to {{ called }}, customer {{ sip[\"X-Customer-Id\"] }}",
        &[defaults().sample("inbound", "p")],
    )
    .unwrap();
    let mut c = ctx("inbound");
    c.sip.insert("X-Customer-Id".into(), "C-42".into());
    assert_eq!(
        t.render(&c, "system_prompt", "fallback"),
        "inbound call from +15550001111 to +15550002222, customer C-42"
    );
}

#[test]
fn a_header_that_is_not_kept_fails_at_load_unless_it_has_a_default() {
    let samples = [defaults().sample("inbound", "p")];
    assert!(Template::parse("{{ sip[\"X-Other\"] }}", &samples).is_err());
    assert!(Template::parse("{{ sip.X-Customer-Id }}", &samples).is_err());
    let t = Template::parse("{{ sip[\"X-Other\"] | default(\"none\") }}", &samples).unwrap();
    assert_eq!(t.render(&ctx("inbound"), "greeting", "fallback"), "none");
}

#[test]
fn lead_custom_fields_need_a_default_and_fill_when_present() {
    let samples = [defaults().sample("outbound", "p")];
    assert!(Template::parse("{{ lead.plan }}", &samples).is_err());
    let t = Template::parse(
        "{{ lead.name }} on {{ lead.plan | default(\"basic\") }}",
        &samples,
    )
    .unwrap();
    let mut c = ctx("outbound");
    c.lead = Some(
        [("name", "Ann"), ("plan", "gold")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    assert_eq!(t.render(&c, "system_prompt", "fallback"), "Ann on gold");
}

#[test]
fn a_value_missing_at_call_time_renders_empty_and_never_the_template_source() {
    let samples = [defaults().sample("outbound", "p")];
    let t = Template::parse("Hello {{ lead.name }}!", &samples).unwrap();
    let mut c = ctx("outbound");
    c.lead = Some(Default::default());
    let out = t.render(&c, "greeting", "fallback");
    assert_eq!(out, "Hello !");
    assert!(!out.contains("{{"));
}

#[test]
fn a_template_that_fails_even_leniently_gives_the_documented_default() {
    let samples = [defaults().sample("outbound", "p")];
    // Division by a field: fine with the sample's text? no: strings do
    // not divide, so build one that fails only at call time.
    let t = Template::parse("{{ lead.name | default(1) + 1 }}", &samples);
    // "Ann" + 1 fails at load: refused.
    assert!(t.is_err());
    let t = Template::parse(
        "{% if lead.name == \"Ann\" %}ok{% else %}{{ 1 + lead.name }}{% endif %}",
        &samples,
    )
    .unwrap();
    let mut c = ctx("outbound");
    c.lead = Some(
        [("name".to_owned(), "Bob".to_owned())]
            .into_iter()
            .collect(),
    );
    assert_eq!(t.render(&c, "greeting", "the default"), "the default");
}

#[test]
fn a_syntax_error_is_refused_at_load() {
    let e = Template::parse("Hello {{ caller ", &[ctx("inbound")]).unwrap_err();
    assert!(e.to_string().starts_with("inbound calls:"), "{e}");
}

#[test]
fn a_profiles_own_webhooks_take_the_global_schedule_and_its_secret_from_the_environment() {
    use crate::webhooks::WebhookSpec;
    let mut sales = spec("sales");
    sales.webhooks = Some(WebhookSpec {
        urls: vec!["https://hooks.example/sales".into()],
        secret_env: Some("SALES_HOOK_SECRET".into()),
        events: vec!["call.ended".into()],
    });
    let set = Profiles::load(&[sales, spec("plain")], None, &defaults()).unwrap();
    let w = set.by_name("sales").unwrap().webhooks.clone().unwrap();
    assert_eq!(w.profile.as_deref(), Some("sales"));
    assert_eq!(w.urls, ["https://hooks.example/sales"]);
    assert_eq!(
        w.secret.as_ref().map(|s| s.expose().clone()),
        Some(b"s3cret".to_vec())
    );
    assert_eq!(w.timeout, Duration::from_secs(3), "the global time limit");
    assert!(set.by_name("plain").unwrap().webhooks.is_none());
    assert_eq!(set.by_name("default").unwrap().name(), "default");
    assert!(set.by_name("nobody").is_none());
    // The spec as written keeps the variable's name, never the secret.
    let doc = serde_json::to_string(&set.specs()).unwrap();
    assert!(
        doc.contains("SALES_HOOK_SECRET") && !doc.contains("s3cret"),
        "{doc}"
    );
}

#[test]
fn bad_profile_webhooks_are_refused_with_every_error_named() {
    use crate::webhooks::WebhookSpec;
    let mut a = spec("a");
    a.webhooks = Some(WebhookSpec {
        urls: vec!["ftp://x".into()],
        secret_env: Some("UNSET_VARIABLE".into()),
        events: vec!["call.exploded".into()],
    });
    let mut b = spec("b");
    b.webhooks = Some(WebhookSpec::default());
    let errs = Profiles::load(&[a, b], None, &defaults()).unwrap_err();
    let fields: Vec<_> = errs
        .iter()
        .map(|e| (e.name.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("a", "webhooks.secret_env"),
            ("a", "webhooks.urls"),
            ("a", "webhooks.events"),
            ("b", "webhooks.urls"),
        ],
        "{errs:?}"
    );
}

#[test]
fn a_named_source_trunk_takes_only_the_calls_from_its_addresses() {
    let a_sales = matching(
        "a-sales",
        MatchSpec {
            prefix: vec!["+4930".into()],
            source_trunk: Some("carrier-a".into()),
            ..MatchSpec::default()
        },
    );
    let b_any = matching(
        "b-any",
        MatchSpec {
            source_trunk: Some("carrier-b".into()),
            ..MatchSpec::default()
        },
    );
    let both = matching(
        "both",
        MatchSpec {
            exact: vec!["+4930999".into()],
            source: vec!["192.0.2.50".into()],
            source_trunk: Some("carrier-a".into()),
            ..MatchSpec::default()
        },
    );
    let set = Profiles::load(&[a_sales, b_any, both], None, &defaults()).unwrap();
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    let pick = |called: &str, from: &str| set.inbound(called, ip(from)).name().to_owned();
    assert_eq!(pick("+4930123", "192.0.2.9"), "a-sales");
    assert_eq!(pick("+4930123", "198.51.100.7"), "b-any", "b's catch-all");
    assert_eq!(pick("+4930123", "203.0.113.1"), "default", "from no trunk");
    assert_eq!(pick("+4940123", "192.0.2.9"), "default", "a's number rule");
    assert_eq!(pick("+4930999", "192.0.2.50"), "both", "exact beats prefix");
    assert_eq!(
        pick("+4930999", "192.0.2.51"),
        "a-sales",
        "source and trunk both hold"
    );
    assert_eq!(set.inbound("+4930123", None).name(), "default");
    // An unknown trunk is named as an error.
    let bad = matching(
        "x",
        MatchSpec {
            source_trunk: Some("carrier-z".into()),
            ..MatchSpec::default()
        },
    );
    let errs = Profiles::load(&[bad], None, &defaults()).unwrap_err();
    assert_eq!(errs[0].field, "match.source_trunk", "{errs:?}");
    assert!(errs[0].message.contains("carrier-a, carrier-b"), "{errs:?}");
}
