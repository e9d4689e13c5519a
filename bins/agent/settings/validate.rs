//! One pass over every key: each parsed into its type and checked (ranges,
//! allowlists, files that must be readable, the checks across keys), every
//! failure recorded by the [`Check`] and the pass going on, so that all
//! the errors are reported at once. Relative paths are relative to the
//! configuration file's directory.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use callbridge_rtp::engine::RealtimePriority;
use callbridge_rtp::latch::LatchPolicy;
use callbridge_session::bridge::fallback::FallbackClip;
use callbridge_session::dns::Destination;
use callbridge_session::lifecycle::ModelFailurePolicy;
use callbridge_sip::filter::Rejection;
use callbridge_sip::sdp::SrtpPolicy;
use callbridge_sip::session_timer::TimerSettings;
use callbridge_sip::transport::Transport;
use callbridge_sip::{Host, Uri};
use ipnet::IpNet;

use super::amd;
use super::carrier;
use super::check::Check;
use super::error::ConfigError;
use super::openai;
use super::routing;
use super::transfer;
use super::values::{Needs, Provider, Settings, Synchronous, TLS_ROOTS, Trunk};
use crate::logging::{self, LogFormat};

/// The longest `[retention]` setting: ten years (beyond it, "off").
const RETENTION_MAX: Duration = Duration::from_secs(3650 * 86_400);

/// Validates every key; `None` when any failed (the errors are in `c`).
/// The secrets' needs are known either way.
pub fn build(c: &Check<'_>, base: &Path) -> (Option<Settings>, Needs) {
    // [sip]
    let sip_bind = c.socket("sip.bind");
    let public_ip = match c.optional("sip.public_addr") {
        None => None,
        Some(Some(p)) => p
            .trim()
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
            .or_else(|| {
                c.invalid(
                    "sip.public_addr",
                    format!("{p:?}"),
                    "an IP address peers can reach (not a wildcard)",
                )
            }),
        Some(None) => match sip_bind {
            Some(bind) if bind.ip().is_unspecified() => {
                c.push(ConfigError::Missing {
                    key: "sip.public_addr".into(),
                    expected: format!(
                        "an IP address for SDP and Contact, required because sip.bind = \"{bind}\" is a wildcard address"
                    ),
                });
                None
            }
            bind => bind.map(|b| b.ip()),
        },
    };
    let allowed_peers = c.list("sip.allowed_peers").and_then(|peers| {
        let parsed: Vec<Option<IpNet>> = peers
            .iter()
            .map(|n| {
                n.trim()
                    .parse::<IpNet>()
                    .or_else(|_| n.trim().parse::<IpAddr>().map(IpNet::from))
                    .ok()
                    .or_else(|| {
                        c.invalid(
                            "sip.allowed_peers",
                            format!("{n:?}"),
                            "a network in CIDR notation (\"10.0.0.0/8\") or an IP address",
                        )
                    })
            })
            .collect();
        parsed.into_iter().collect::<Option<Vec<_>>>()
    });
    let reject_unlisted = c.choice(
        "sip.reject_unlisted",
        &[
            ("forbidden", Rejection::Forbidden),
            ("drop", Rejection::Drop),
        ],
    );
    let session_timer = session_timer(c);
    let sip_transport = super::sip_transport::read(c, base);
    let trunk_configured = c.present("sip.trunk");
    let trunk = if trunk_configured {
        trunk(c).map(Some)
    } else {
        Some(None)
    };

    // [rtp], [calls]
    let port_min = c.port("rtp.port_min");
    let port_max = c.port("rtp.port_max");
    let rtp_ports = match (port_min, port_max) {
        (Some(min), Some(max)) if max <= min => c.invalid(
            "rtp.port_max",
            max,
            &format!("a port above rtp.port_min = {min} (a range of at least two ports)"),
        ),
        (Some(min), Some(max)) => Some(min..=max),
        _ => None,
    };
    let mut max_concurrent = c.count("calls.max_concurrent", 10_000);
    let rtp_latch = c.choice("rtp.latch", &LatchPolicy::ALL.map(|p| (p.as_str(), p)));
    // trunk (issue 20): SRTP.
    let rtp_srtp = c.choice("rtp.srtp", &SrtpPolicy::ALL.map(|p| (p.as_str(), p)));
    // [media]
    let engine_threads = c.count("media.engine_threads", 64);
    let admission_step = c.count("media.admission_step", 100_000);
    let realtime_priority = c.text("media.realtime_priority").and_then(|v| {
        let v = v.trim();
        if v == "off" {
            return Some(RealtimePriority::Off);
        }
        v.parse::<u8>()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .map(RealtimePriority::Fifo)
            .or_else(|| {
                c.invalid(
                    "media.realtime_priority",
                    format!("{v:?}"),
                    "\"off\", or a SCHED_FIFO priority from 1 to 99",
                )
            })
    });
    if let (Some(ports), Some(max)) = (&rtp_ports, max_concurrent) {
        let (min, top) = (*ports.start(), *ports.end());
        // One even port per call (RTP, RFC 3550 section 11).
        let even = usize::from(top / 2) + 1 - usize::from(min.div_ceil(2));
        if even < max {
            max_concurrent = c.invalid(
                "calls.max_concurrent",
                max,
                &format!(
                    "at most {even} (one even RTP port per call: rtp.port_min = {min} to rtp.port_max = {top} has {even})"
                ),
            );
        }
    }
    let no_speech_timeout = c.duration("calls.no_speech_timeout");
    let model_reply_timeout = c.duration_or_off(
        "calls.model_reply_timeout",
        Duration::MAX,
        "a duration like \"8s\", or \"off\"",
    );
    let barge_in_after = c.duration_or_off(
        "calls.barge_in_after",
        Duration::from_secs(5),
        "a duration from \"20ms\" to \"5s\" like \"250ms\", or \"off\"",
    );
    let max_duration = c.duration("calls.max_duration");
    let ring_timeout = c.duration("calls.ring_timeout");
    let rtp_inactivity = c.duration("calls.rtp_inactivity");
    let drain_timeout = c.duration("calls.drain_timeout");
    let admission_wait = c.duration_or_off(
        "calls.admission_wait",
        Duration::from_secs(10),
        "a duration up to \"10s\" like \"2s\", or \"off\"",
    );
    let on_model_failure = c.choice(
        "calls.on_model_failure",
        &[
            ("answer-then-hangup", ModelFailurePolicy::AnswerThenEnd),
            (
                "reject",
                ModelFailurePolicy::Reject503 {
                    retry_after: Some(Duration::from_secs(30)),
                },
            ),
        ],
    );
    let fallback_clip =
        c.optional("calls.fallback_clip")
            .and_then(|v| match v.as_deref().map(str::trim) {
                None | Some("") => Some(None),
                Some(v) => {
                    let path = base.join(v);
                    match FallbackClip::load(&path) {
                        Ok(_) => Some(Some(path)),
                        Err(e) => c.invalid(
                            "calls.fallback_clip",
                            format!("{v:?}"),
                            &format!("a mono 16-bit PCM WAV file at 8000 Hz, at most 30 s ({e})"),
                        ),
                    }
                }
            });

    // [outbound]
    let outbound = match c.optional("outbound.target") {
        None => None,
        Some(Some(t)) => super::sip_transport::target(&t, resolve)
            .map(Some)
            .or_else(|| {
                c.invalid(
                    "outbound.target",
                    format!("{t:?}"),
                    "host:port that resolves, or a SIP URI (\"sips:trunk.example.net\", \
                     \"sip:192.0.2.7:5060;transport=tcp\") whose host resolves",
                )
            }),
        Some(None) => trunk.as_ref().map(|t| {
            t.as_ref().map(|t| super::sip_transport::Target {
                addr: t.target.clone(),
                transport: t.transport,
                name: Some(t.domain.clone()),
            })
        }),
    };
    let outbound_target = outbound
        .as_ref()
        .map(|o| o.as_ref().map(|o| o.addr.clone()));
    let sip_tls_names = tls_names(outbound.as_ref(), trunk.as_ref());
    let outbound_from = c.text("outbound.from").and_then(|from| {
        match callbridge_crm_store::PhoneNumber::parse(from.trim()) {
            Ok(n) => Some(n.as_str().to_owned()),
            Err(_) => c.invalid(
                "outbound.from",
                format!("{from:?}"),
                "an E.164 number like \"+15550100000\"",
            ),
        }
    });

    // [model], [transfer]
    let provider = c.choice(
        "model.provider",
        &[
            ("gemini", Provider::Gemini),
            ("openai", Provider::OpenAi),
            ("gpt-live", Provider::GptLive),
            ("mock", Provider::Mock),
        ],
    );
    let endpoint = match c.optional("model.endpoint") {
        None => None,
        Some(None) => Some(None),
        Some(Some(e)) if !(e.starts_with("ws://") || e.starts_with("wss://")) => {
            c.invalid("model.endpoint", format!("{e:?}"), "a ws:// or wss:// URL")
        }
        Some(Some(e)) if provider == Some(Provider::Mock) => c.invalid(
            "model.endpoint",
            format!("{e:?}"),
            "no endpoint with provider = \"mock\" (the mock runs in-process; use provider = \"gemini\" to reach a mock server of your own)",
        ),
        Some(Some(e)) => Some(Some(e.trim().to_owned())),
    };
    let model = c
        .text("model.model")
        .and_then(|m| match (m.trim(), provider) {
            ("", Some(p)) => Some(p.default_model().to_owned()),
            ("", None) => None,
            (m, _) => Some(m.to_owned()),
        });
    let system_prompt = match (
        c.optional("model.system_prompt"),
        c.optional("model.system_prompt_file"),
    ) {
        (Some(Some(_)), Some(Some(f))) => c.invalid(
            "model.system_prompt_file",
            format!("{f:?}"),
            "not both model.system_prompt and model.system_prompt_file",
        ),
        (Some(Some(p)), Some(None)) => Some(p),
        (Some(None), Some(Some(f))) => match std::fs::read_to_string(base.join(&f)) {
            Ok(text) => Some(text),
            Err(e) => c.invalid(
                "model.system_prompt_file",
                format!("{f:?}"),
                &format!("a readable file ({e})"),
            ),
        },
        (Some(None), Some(None)) => Some(String::new()),
        _ => None,
    };
    let delegation_model = c
        .optional("model.delegation_model")
        .map(|v| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()));
    let voice = c
        .optional("model.voice")
        .map(|v| v.filter(|v| !v.trim().is_empty()));
    let greeting = c.text("model.greeting");
    let tools = c.flag("model.tools");
    let setup_timeout = c.duration("model.setup_timeout");
    let uplink = c.uplink("model.uplink_ms");
    let openai = openai::read(c);
    let transfer_targets = c
        .list("transfer.targets")
        .and_then(|t| transfer::targets(c, &t));
    // [amd]
    let amd = amd::read(c, base);
    // [webhooks]
    let webhooks = super::webhooks::read(c);
    // issue 23 (prof2): the profiles' own webhooks take the schedule.
    let webhook_base = webhooks.as_ref().map(|(base, _)| base.clone());
    let webhooks = webhooks.map(|(_, global)| global);
    // --- issue 23 (prog): sip.keep_headers, [routing], [[profiles]] ---
    let keep_headers = routing::keep_headers(c);
    let http_tools = routing::tools(c, base);
    // --- deleg (issue 23): model.providers ---
    let other_providers = super::providers::read(c, provider);
    // --- end deleg ---
    let trunks = routing::trunks(c);
    let routing = {
        let raw_targets = c.list("transfer.targets");
        let defaults = (|| {
            Some(callbridge_session::profile::ProfileDefaults {
                provider: provider?.name().to_owned(),
                model: model.clone()?,
                voice: voice.clone()?,
                system_prompt: system_prompt.clone()?,
                greeting: greeting.clone()?,
                tools: tools?,
                transfer_targets: raw_targets?,
                max_duration: max_duration?,
                keep_headers: keep_headers.clone()?,
                http_tools: http_tools?,
                providers: super::providers::choices(
                    other_providers.as_deref()?,
                    None,
                    delegation_model.clone()?.as_deref(),
                ),
                webhooks: webhook_base?,
                env: callbridge_session::profile::Env::process(),
                trunks: trunks?,
            })
        })();
        routing::read(c, base, defaults)
    };
    // --- end issue 23 (prog) ---

    // [store], [files], [tls]
    let path = |key: &str, what: &str| {
        c.text(key).and_then(|v| {
            if v.trim().is_empty() {
                c.invalid(key, "\"\"", what)
            } else {
                Some(base.join(v.trim()))
            }
        })
    };
    let database = path("store.database", "the SQLite file's path");
    let store_url = match c.optional("store.url") {
        None => None,
        Some(None) => database
            .as_ref()
            .map(callbridge_crm_store::StoreUrl::sqlite),
        Some(Some(v)) => match callbridge_crm_store::StoreUrl::parse(&v) {
            // A relative SQLite path is relative to the configuration file.
            Ok(callbridge_crm_store::StoreUrl::Sqlite(p)) => {
                Some(callbridge_crm_store::StoreUrl::sqlite(base.join(p)))
            }
            Ok(u) => Some(u),
            // Never echo the value: it may hold a password.
            Err(_) => c.invalid(
                "store.url",
                "(not shown)",
                "a path, sqlite:PATH or postgres://USER@HOST:PORT/DATABASE \
                 (the password in CALLBRIDGE_STORE_PASSWORD)",
            ),
        },
    };
    let node = match c.optional("store.node") {
        None => None,
        Some(None) => Some(callbridge_crm_store::NodeId::from_host()),
        Some(Some(v)) => callbridge_crm_store::NodeId::new(v.trim())
            .ok()
            .or_else(|| {
                c.invalid(
                    "store.node",
                    &v,
                    "1 to 64 ASCII letters, digits, '.', '-' or '_' (default: the host name)",
                )
            }),
    };
    let recordings_dir = path("store.recordings_dir", "a directory path");
    let spool_dir = match c.optional("store.spool_dir") {
        None => None,
        Some(v) => match v.as_deref().map(str::trim) {
            None => database.as_ref().map(|db| {
                db.parent()
                    .map_or_else(|| PathBuf::from("spool"), |d| d.join("spool"))
            }),
            Some("") => c.invalid(
                "store.spool_dir",
                "\"\"",
                "a directory path (leave it out for `spool` beside the database)",
            ),
            Some(v) => Some(base.join(v)),
        },
    };
    let synchronous = c.choice(
        "store.synchronous",
        &[("normal", Synchronous::Normal), ("full", Synchronous::Full)],
    );
    let commit_window = c.duration_or_off(
        "store.commit_window",
        Duration::from_secs(1),
        "a duration up to \"1s\" like \"10ms\", or \"off\"",
    );
    // Owners of inbound calls (ops, issue 22): user names, resolved
    // against the store at start.
    let default_owner = c
        .optional("calls.default_owner")
        .map(|v| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()));
    let inbound_owners = c.list("calls.inbound_owners").and_then(|entries| {
        entries
            .iter()
            .map(|e| match e.split_once('=') {
                Some((number, user)) if !number.trim().is_empty() && !user.trim().is_empty() => {
                    Some((number.trim().to_owned(), user.trim().to_owned()))
                }
                _ => c.invalid(
                    "calls.inbound_owners",
                    format!("{e:?}"),
                    "entries \"CALLED_NUMBER=USER\" (\"+4930123456=alice\")",
                ),
            })
            .collect::<Option<Vec<_>>>()
    });
    // [summary] (ops, issue 22)
    let summary_enabled = c.flag("summary.enabled");
    let summary_provider =
        c.optional("summary.provider")
            .and_then(|v| match v.as_deref().map(str::trim) {
                None | Some("") => Some(None),
                Some("gemini") => Some(Some(callbridge_llm_bridge::Provider::Gemini)),
                Some("openai") => Some(Some(callbridge_llm_bridge::Provider::OpenAi)),
                Some(other) => c.invalid(
                    "summary.provider",
                    format!("{other:?}"),
                    "\"gemini\" or \"openai\" (leave it out for the call model's provider)",
                ),
            });
    let summary_model = c
        .optional("summary.model")
        .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    let summary_endpoint = c.optional("summary.endpoint").and_then(|v| {
        match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
            None => Some(None),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(Some(u)),
            Some(u) => c.invalid(
                "summary.endpoint",
                format!("{u:?}"),
                "an http:// or https:// base URL of the provider's text API",
            ),
        }
    });
    let summary = (|| {
        Some(super::values::SummarySettings {
            enabled: summary_enabled?,
            provider: summary_provider?,
            model: summary_model?,
            endpoint: summary_endpoint?,
        })
    })();
    // [retention] (ops, issue 22)
    let keep = |key: &str| {
        c.duration_or_off(
            key,
            RETENTION_MAX,
            "a duration (90d, 12h, 1y) or \"off\" (kept forever)",
        )
    };
    let retention = (|| {
        Some(callbridge_crm_store::Retention {
            recordings: keep("retention.recordings")?,
            transcripts: keep("retention.transcripts")?,
            sessions: keep("retention.sessions")?,
        })
    })();
    let file_access = c
        .flag("files.group_readable")
        .map(callbridge_files::Access::group_readable);
    let tls_roots = c.choice("tls.roots", &TLS_ROOTS);

    // [http], [log]
    let http_bind = c.socket("http.bind");
    let apart = |key: &str| {
        c.optional(key)
            .and_then(|v| match v.as_deref().map(str::trim) {
                None | Some("") => Some(None),
                Some(a) => c.addr(key, a).map(Some),
            })
    };
    let http_public_bind = apart("http.public_bind");
    let http_metrics_bind = apart("http.metrics_bind");
    let header_read_timeout = c.duration("http.header_read_timeout");
    let body_read_timeout = c.duration("http.body_read_timeout");
    let idle_timeout = c.duration("http.idle_timeout");
    let max_connections = c.count("http.max_connections", 100_000);
    let max_connections_per_ip = c.count("http.max_connections_per_ip", 100_000);
    let http_listen = c.flag("http.listen");
    let log_format = c.choice(
        "log.format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    let log_level = c.text("log.level").and_then(|level| {
        let level = level.trim().to_owned();
        match logging::filter(&level) {
            Ok(_) => Some(level),
            Err(_) => c.invalid(
                "log.level",
                format!("{level:?}"),
                "a level (error, warn, info, debug, trace) or a tracing filter directive",
            ),
        }
    });

    // [carrier.*]
    let (carriers, carrier_needs) = carrier::read(c);

    let needs = Needs {
        provider,
        trunk: trunk_configured,
        carrier: carrier_needs,
    };
    let settings = (|| {
        Some(Settings {
            sip_bind: sip_bind?,
            public_ip: public_ip?,
            allowed_peers: allowed_peers?,
            reject_unlisted: reject_unlisted?,
            session_timer: session_timer?,
            sip_transport: sip_transport?,
            trunk: trunk?,
            rtp_ports: rtp_ports?,
            rtp_latch: rtp_latch?,
            rtp_srtp: rtp_srtp?,
            engine_threads: engine_threads?,
            realtime_priority: realtime_priority?,
            admission_step: admission_step?,
            max_concurrent: max_concurrent?,
            no_speech_timeout: no_speech_timeout?,
            model_reply_timeout: model_reply_timeout?,
            max_duration: max_duration?,
            ring_timeout: ring_timeout?,
            rtp_inactivity: rtp_inactivity?,
            barge_in_after: barge_in_after?,
            drain_timeout: drain_timeout?,
            admission_wait: admission_wait?.unwrap_or(Duration::ZERO),
            on_model_failure: on_model_failure?,
            fallback_clip: fallback_clip?,
            outbound_target: outbound_target?,
            outbound_transport: outbound
                .as_ref()
                .and_then(|o| o.as_ref().map(|o| o.transport))
                .unwrap_or_default(),
            sip_tls_names,
            outbound_from: outbound_from?,
            provider: provider?,
            endpoint: endpoint?,
            model: model?,
            voice: voice?,
            delegation_model: delegation_model?,
            system_prompt: system_prompt?,
            greeting: greeting?,
            tools: tools?,
            transfer_targets: transfer_targets?,
            amd: amd?,
            webhooks: webhooks?,
            http_listen: http_listen?,
            setup_timeout: setup_timeout?,
            uplink: uplink?,
            openai: openai?,
            store_url: store_url?,
            node: node?,
            recordings_dir: recordings_dir?,
            synchronous: synchronous?,
            commit_window: commit_window?.unwrap_or(Duration::ZERO),
            file_access: file_access?,
            spool_dir: spool_dir?,
            retention: retention?,
            default_owner: default_owner?,
            inbound_owners: inbound_owners?,
            summary: summary?,
            tls_roots: tls_roots?,
            http_bind: http_bind?,
            http_public_bind: http_public_bind?,
            http_metrics_bind: http_metrics_bind?,
            http_limits: crate::http::Limits {
                header_read_timeout: header_read_timeout?,
                body_read_timeout: body_read_timeout?,
                idle_timeout: idle_timeout?,
                max_connections: max_connections?,
                max_connections_per_ip: max_connections_per_ip?,
            },
            log_format: log_format?,
            log_level: log_level?,
            carrier: carriers?,
            routing: routing?,
            other_providers: other_providers?,
            keep_headers: keep_headers?,
        })
    })();
    (settings.filter(|_| !c.failed()), needs)
}

/// `sip.session_expires`, `sip.min_se` and the test-only
/// `sip.min_se_floor`: floor <= min_se <= session_expires, whole seconds.
/// The floor is RFC 4028's 90 s unless a test lowers it (so that a
/// session timer runs out in seconds).
fn session_timer(c: &Check<'_>) -> Option<TimerSettings> {
    let expires = c.duration("sip.session_expires");
    let min_se = c.duration("sip.min_se");
    let floor = c.duration("sip.min_se_floor");
    let (expires, min_se, floor) = (expires?, min_se?, floor?);
    let whole = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() >= 1;
    if !whole(floor) {
        return c.invalid(
            "sip.min_se_floor",
            format!("{floor:?}"),
            "whole seconds, at least 1s (90s, RFC 4028's minimum, unless for tests)",
        );
    }
    if !whole(min_se) || min_se < floor {
        return c.invalid(
            "sip.min_se",
            format!("{min_se:?}"),
            &format!(
                "whole seconds, at least sip.min_se_floor = {}s (RFC 4028: 90s)",
                floor.as_secs()
            ),
        );
    }
    if !whole(expires) || expires < min_se || expires.as_secs() > u64::from(u32::MAX) {
        return c.invalid(
            "sip.session_expires",
            format!("{expires:?}"),
            &format!("whole seconds, at least sip.min_se = {}s", min_se.as_secs()),
        );
    }
    Some(TimerSettings {
        session_expires: expires,
        min_se,
    })
}

/// `[sip.trunk]`, present: every key read (so each bad one is reported),
/// then checked.
fn trunk(c: &Check<'_>) -> Option<Trunk> {
    let registrar = c.text("sip.trunk.registrar");
    let username = c.text("sip.trunk.username");
    let proxy = c.optional("sip.trunk.outbound_proxy");
    let expires = c.duration("sip.trunk.register_expires");
    let registrar = registrar.and_then(|r| {
        if r.trim().is_empty() {
            c.push(ConfigError::Missing {
                key: "sip.trunk.registrar".into(),
                expected: "the registrar's SIP URI (\"sip:trunk.example.net\") when [sip.trunk] is present".into(),
            });
            return None;
        }
        Some(r)
    });
    let username = username.and_then(|u| {
        if u.trim().is_empty() {
            c.push(ConfigError::Missing {
                key: "sip.trunk.username".into(),
                expected: "the digest user name when [sip.trunk] is present".into(),
            });
            return None;
        }
        Some(u.trim().to_owned())
    });
    // The registrar's host (and port), and the transport its URI asks
    // for (`sips:`: TLS, port 5061 by default; `;transport=tcp`); a
    // domain is also what RFC 3263 locates.
    let host = registrar.as_ref().and_then(|r| {
        let uri = Uri::parse(&Bytes::from(r.trim().to_owned())).ok();
        let sip = uri.as_ref().and_then(|u| u.as_sip());
        match sip.map(|s| (s, Transport::of_uri(s))) {
            Some((sip, Some(t))) => {
                let port = sip.port().or((t == Transport::Tls).then_some(5061));
                let locate = match sip.host() {
                    Host::Domain(d) => {
                        super::sip_transport::locate_of(sip, &String::from_utf8_lossy(d))
                    }
                    _ => None,
                };
                Some((host_text(sip.host()), port, t, locate))
            }
            _ => c.invalid(
                "sip.trunk.registrar",
                format!("{r:?}"),
                "a SIP URI like \"sip:trunk.example.net\" (\"sips:\" for TLS, \
                 \";transport=tcp\" for TCP)",
            ),
        }
    });
    let target = match proxy? {
        Some(p) => resolve(p.trim()).map(Destination::Addr).or_else(|| {
            c.invalid(
                "sip.trunk.outbound_proxy",
                format!("{p:?}"),
                "host:port that resolves",
            )
        }),
        // A domain: located (RFC 3263) when requests go out.
        None if host.as_ref().is_some_and(|h| h.3.is_some()) => host
            .as_ref()
            .and_then(|h| h.3.clone())
            .map(Destination::Locate),
        None => {
            let (domain, port, _, _) = host.as_ref()?;
            let hp = match port {
                Some(port) => format!("{domain}:{port}"),
                None => domain.clone(),
            };
            resolve(hp.trim_start_matches('[').replace("]:", ":").as_str())
                .or_else(|| resolve(&hp))
                .map(Destination::Addr)
                .or_else(|| {
                    c.invalid(
                        "sip.trunk.registrar",
                        format!("{:?}", registrar.as_deref().unwrap_or_default()),
                        "a SIP URI whose host resolves",
                    )
                })
        }
    };
    let (domain, _, transport, _) = host?;
    Some(Trunk {
        registrar: registrar?.trim().to_owned(),
        domain,
        transport,
        target: target?,
        username: username?,
        expires: expires?,
    })
}

/// The names outbound TLS verifies, by address: the trunk's domain and the
/// host of an `outbound.target` URI (an address not listed is verified as
/// an IP address).
fn tls_names(
    outbound: Option<&Option<super::sip_transport::Target>>,
    trunk: Option<&Option<Trunk>>,
) -> Vec<(SocketAddr, String)> {
    // A located domain's targets learn the name when they are found.
    let mut names = Vec::new();
    if let Some(Some(Trunk {
        target: Destination::Addr(a),
        domain,
        ..
    })) = trunk
    {
        names.push((*a, domain.trim_matches(['[', ']']).to_owned()));
    }
    if let Some(Some(super::sip_transport::Target {
        addr: Destination::Addr(a),
        name: Some(n),
        ..
    })) = outbound
    {
        names.push((*a, n.clone()));
    }
    names
}

/// `host:port` (port 5060 when absent), resolved.
fn resolve(hostport: &str) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse() {
        return Some(a);
    }
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:5060")
    };
    with_port.to_socket_addrs().ok()?.next()
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Domain(d) => String::from_utf8_lossy(d).into_owned(),
        Host::Ipv4(a) => a.to_string(),
        Host::Ipv6(a) => format!("[{a}]"),
    }
}
