//! A [`ProfileSpec`] checked against the agent's defaults into a
//! [`Profile`]: every problem named ([`ProfileError`]), none hidden by
//! the first.

use super::*;

/// Checks one spec; every problem of it.
pub(super) fn one(
    i: usize,
    s: &ProfileSpec,
    d: &ProfileDefaults,
) -> Result<Profile, Vec<ProfileError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(ProfileError {
            index: i,
            name: s.name.clone(),
            field: field.into(),
            message,
        });
    };
    if !valid_name(&s.name) {
        err(
            "name",
            "1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'".into(),
        );
    }
    let serves = match s.direction.as_deref() {
        None | Some("both") => Serves::Both,
        Some("inbound") => Serves::Inbound,
        Some("outbound") => Serves::Outbound,
        Some(o) => {
            err(
                "direction",
                format!("{o:?}: one of \"inbound\", \"outbound\", \"both\""),
            );
            Serves::Both
        }
    };
    let mut samples = Vec::new();
    if serves.inbound() {
        samples.push(d.sample("inbound", &s.name));
    }
    if serves.outbound() {
        samples.push(d.sample("outbound", &s.name));
    }
    let mut template = |field: &str, src: &Option<String>, fallback: &str| match src {
        None => Template::literal(fallback),
        Some(src) => Template::parse(src, &samples).unwrap_or_else(|e| {
            err(field, e.to_string());
            Template::literal(fallback)
        }),
    };
    let system_prompt = template("system_prompt", &s.system_prompt, &d.system_prompt);
    let greeting = template("greeting", &s.greeting, &d.greeting);
    let client = match &s.provider {
        Some(p) if *p != d.provider => match d.providers.get(p) {
            Some(Ok(c)) => Some(Arc::clone(c)),
            Some(Err(why)) => {
                err("provider", format!("{p:?}: {why}"));
                None
            }
            None => {
                let known: Vec<&str> = std::iter::once(d.provider.as_str())
                    .chain(d.providers.keys().map(String::as_str))
                    .collect();
                err(
                    "provider",
                    format!("{p:?}: not a provider of this agent ({})", known.join(", ")),
                );
                None
            }
        },
        _ => None,
    };
    let text = |v: &Option<String>| v.as_ref().map(|t| t.trim().to_owned());
    for (field, v) in [("model", &s.model), ("voice", &s.voice)] {
        if let Some(t) = text(v)
            && (t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
        {
            err(field, "1 to 128 characters, no control characters".into());
        }
    }
    if let Some(l) = &s.language
        && (l.is_empty()
            || l.len() > 35
            || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        err(
            "language",
            format!("{l:?}: a language tag like \"en\" or \"es-MX\""),
        );
    }
    let (end_call, transfer_tool, collect_digits, http_tools) = match &s.tools {
        None => (
            d.tools,
            d.tools,
            false,
            d.http_tools.iter().cloned().collect(),
        ),
        Some(names) => {
            let mut http = Vec::new();
            for n in names {
                if BUILTIN_TOOLS.contains(&n.as_str()) {
                    continue;
                }
                match d.http_tools.get(n) {
                    Some(t) => http.push(Arc::clone(t)),
                    None => err(
                        "tools",
                        format!(
                            "{n:?}: no such tool (the built-ins are {}; others are declared in [[tools]])",
                            BUILTIN_TOOLS.join(", ")
                        ),
                    ),
                }
            }
            let has = |t: &str| names.iter().any(|n| n == t);
            (
                has("end_call"),
                has("transfer_call"),
                has("collect_digits"),
                http,
            )
        }
    };
    let transfer_targets = if transfer_tool {
        match targets(s.transfer_targets.as_deref(), &d.transfer_targets) {
            Ok(t) => t,
            Err(m) => {
                err("transfer_targets", m);
                DialTargets::none()
            }
        }
    } else {
        DialTargets::none()
    };
    let max_duration = match &s.max_duration {
        None => d.max_duration,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(t) if !t.is_zero() && t <= Duration::from_secs(24 * 3600) => t,
            _ => {
                err(
                    "max_duration",
                    format!("{v:?}: a duration above zero and at most 24h, like \"10m\""),
                );
                d.max_duration
            }
        },
    };
    let owner = match s.owner {
        Some(o) if o <= 0 => {
            err("owner", format!("{o}: a user id (positive)"));
            None
        }
        o => o.map(UserId),
    };
    let rules = match &s.matches {
        None => MatchRules::default(),
        Some(m) => rules(m, &d.trunks, &mut err),
    };
    let webhooks = match &s.webhooks {
        None => None,
        Some(w) => match w.resolve(&s.name, &d.webhooks, &|v| d.env.get(v)) {
            Ok(cfg) => Some(Arc::new(cfg)),
            Err(es) => {
                for (field, message) in es {
                    err(field, message);
                }
                None
            }
        },
    };
    if !rules.numbers.is_empty() && !serves.inbound() {
        err(
            "match",
            "an outbound-only profile takes no inbound calls".into(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Profile {
        spec: s.clone(),
        serves,
        system_prompt,
        greeting,
        explicit_greeting: s.greeting.is_some(),
        // Another provider's calls default to its own model.
        model: text(&s.model).unwrap_or_else(|| match &client {
            Some(c) => c.model.clone(),
            None => d.model.clone(),
        }),
        client,
        voice: text(&s.voice).or_else(|| d.voice.clone()),
        language: s.language.clone(),
        end_call,
        collect_digits,
        http_tools,
        transfer_targets,
        record: s.record.unwrap_or(true),
        amd: s.amd.unwrap_or(false),
        max_duration,
        owner,
        rules,
        webhooks,
    })
}

/// A profile's transfer list: each entry names an agent target or is a
/// `name=target` of its own.
fn targets(own: Option<&[String]>, agent: &[String]) -> Result<DialTargets, String> {
    let Some(own) = own else {
        return DialTargets::parse(agent).map_err(|(i, e)| format!("agent entry {}: {e}", i + 1));
    };
    let mut entries = Vec::new();
    for e in own {
        if e.contains('=') {
            entries.push(e.clone());
        } else {
            let found = agent
                .iter()
                .find(|a| a.split_once('=').is_some_and(|(n, _)| n.trim() == e.trim()));
            match found {
                Some(a) => entries.push(a.clone()),
                None => {
                    return Err(format!(
                        "{e:?}: not a name of [transfer] targets, nor name=target"
                    ));
                }
            }
        }
    }
    DialTargets::parse(&entries).map_err(|(i, e)| {
        let name = entries
            .get(i)
            .and_then(|s| s.split_once('=').map(|(n, _)| n.trim().to_owned()))
            .unwrap_or_default();
        format!("entry {} ({name:?}): {e}", i + 1)
    })
}

fn rules(m: &MatchSpec, trunks: &trunks::Trunks, err: &mut impl FnMut(&str, String)) -> MatchRules {
    let mut r = MatchRules::default();
    if m.exact.len() + m.prefix.len() + m.pattern.len() + m.source.len() > MAX_RULES {
        err("match", format!("more than {MAX_RULES} rules"));
        return r;
    }
    let number_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '.' | '_')
            })
    };
    for (k, n) in m.exact.iter().enumerate() {
        if number_ok(n) {
            r.numbers.push(NumberRule::Exact(n.clone()));
        } else {
            err(&format!("match.exact[{k}]"), format!("{n:?}: not a number"));
        }
    }
    for (k, n) in m.prefix.iter().enumerate() {
        if number_ok(n) {
            r.numbers.push(NumberRule::Prefix(n.clone()));
        } else {
            err(
                &format!("match.prefix[{k}]"),
                format!("{n:?}: not a number prefix"),
            );
        }
    }
    for (k, p) in m.pattern.iter().enumerate() {
        match NumberRule::pattern(p) {
            Ok(rule) => r.numbers.push(rule),
            Err(e) => err(&format!("match.pattern[{k}]"), e),
        }
    }
    for (k, s) in m.source.iter().enumerate() {
        match parse_net(s) {
            Some(n) => r.sources.push(n),
            None => err(
                &format!("match.source[{k}]"),
                format!("{s:?}: an address or network (\"192.0.2.10\", \"198.51.100.0/24\")"),
            ),
        }
    }
    if let Some(t) = &m.source_trunk {
        if trunks.has(t) {
            r.trunk = Some(t.clone());
        } else {
            err(
                "match.source_trunk",
                format!(
                    "{t:?}: names no [[trunks]] entry (known: {})",
                    trunks.names().join(", ")
                ),
            );
        }
    }
    if r.numbers.is_empty() && (!r.sources.is_empty() || r.trunk.is_some()) {
        // A source alone matches every number from there, least specific.
        r.numbers.push(NumberRule::Prefix(String::new()));
    }
    r
}
