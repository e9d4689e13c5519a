//! Logging: `tracing` to stderr, human-readable text or one JSON object per
//! line. stdout is reserved for the `ready` line (see CONTRACT.md).
//!
//! The filter always caps `tungstenite` and `tokio_tungstenite` at `debug`,
//! whatever the configured level: tungstenite logs the raw WebSocket
//! upgrade request, API key header included, at `trace` (through the `log`
//! crate, bridged into `tracing` here). Directives naming those targets are
//! dropped from the configured filter so they cannot lift the cap.
//!
//! Text lines carry ANSI colours only when stderr is a terminal: a file, a
//! pipe or journald gets plain text. JSON lines never carry colours; their
//! fields are typed (numbers as numbers, enum values as the API's names),
//! so the code logs `field = value` or `field = %display`, never `?debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Targets that must never log at `trace`.
const CAPPED: &[&str] = &["tungstenite", "tokio_tungstenite"];

/// The filter for a configured level or directive list, with the cap.
pub fn filter(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut directives: Vec<String> = level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let target = d.split(['=', '[']).next().unwrap_or_default();
            !CAPPED
                .iter()
                .any(|c| target == *c || target.starts_with(&format!("{c}::")))
        })
        .map(str::to_owned)
        .collect();
    if directives.is_empty() {
        directives.push("info".into());
    }
    // Each directive is checked on its own, so a bad one is reported
    // instead of being skipped.
    for d in &directives {
        d.parse::<tracing_subscriber::filter::Directive>()?;
    }
    // The capped targets follow the global level, but never beyond debug.
    let global = directives
        .iter()
        .rev()
        .find(|d| !d.contains('=') && !d.contains('['))
        .map_or("error", String::as_str);
    let cap = match global.to_ascii_lowercase().as_str() {
        "trace" | "debug" => "debug".to_owned(),
        other => other.to_owned(),
    };
    for c in CAPPED {
        directives.push(format!("{c}={cap}"));
    }
    EnvFilter::builder().parse(directives.join(","))
}

/// Installs the global subscriber (and the `log` bridge). Call once.
pub fn init(format: LogFormat, level: &str) {
    let filter = filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(format == LogFormat::Text && std::io::stderr().is_terminal());
    // `try_init` also installs the `log` -> `tracing` bridge; a second
    // call (tests) fails harmlessly.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_survives_trace_and_explicit_tungstenite_directives() {
        for level in [
            "trace",
            "debug,tungstenite=trace",
            "trace,tokio_tungstenite=trace,tungstenite::handshake=trace",
        ] {
            let f = filter(level).unwrap().to_string();
            assert!(!f.contains("tungstenite=trace"), "{level} -> {f}");
            assert!(
                !f.contains("tungstenite::handshake=trace"),
                "{level} -> {f}"
            );
            assert!(f.contains(",tungstenite=debug"), "{level} -> {f}");
            assert!(f.contains("tokio_tungstenite=debug"), "{level} -> {f}");
        }
    }

    #[test]
    fn the_cap_does_not_raise_a_quieter_level() {
        let f = filter("warn").unwrap().to_string();
        assert!(
            f.contains("tungstenite=warn") && !f.contains("tungstenite=debug"),
            "{f}"
        );
        let f = filter("callbridge_sip=trace").unwrap().to_string();
        assert!(f.contains("tungstenite=error"), "{f}");
    }

    #[test]
    fn directives_are_kept_and_bad_ones_refused() {
        let f = filter("warn,callbridge_sip=debug").unwrap().to_string();
        assert!(
            f.contains("callbridge_sip=debug") && f.contains("warn"),
            "{f}"
        );
        assert!(filter("loud").is_err());
        assert!(filter("a=b=c").is_err());
    }
}
