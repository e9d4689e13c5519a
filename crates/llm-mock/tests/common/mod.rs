//! Shared helpers for the integration tests: the mock-friendly session
//! config, event collection and event summaries. Provider-specific helpers
//! live in [`gemini`] and [`openai`].
#![allow(dead_code, reason = "each test binary uses a subset")]

pub mod gemini;
pub mod gpt_live;
pub mod openai;

use std::time::Duration;

use callbridge_llm_bridge::{
    ConnectFailure, Error, ErrorKind, ModelEvent, ModelSession, RetryPolicy, SessionConfig, stats,
};

/// A config for the mock at `url` with `model`, fast retries and timeouts
/// long enough that a loaded machine never turns a slow connect, setup or
/// close into a retry or an unclean close (tests count those exactly).
pub fn base_config(url: String, model: &str) -> SessionConfig {
    let mut c = SessionConfig::default();
    c.endpoint = Some(url);
    c.model = model.into();
    c.instructions = "You are a test agent.".into();
    c.connect_timeout = Duration::from_secs(5);
    c.setup_timeout = Duration::from_secs(5);
    c.close_timeout = Duration::from_secs(2);
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    c
}

/// `c` with a short setup timeout, for the tests of servers that never
/// finish setup.
pub fn impatient(mut c: SessionConfig) -> SessionConfig {
    c.setup_timeout = IMPATIENT_SETUP;
    c
}

/// The setup timeout of [`impatient`].
pub const IMPATIENT_SETUP: Duration = Duration::from_millis(300);

/// Collects events until `stop` matches one (inclusive) or 5 s pass.
pub async fn events_until(
    session: &mut ModelSession,
    stop: impl Fn(&ModelEvent) -> bool,
) -> Vec<ModelEvent> {
    let mut out = Vec::new();
    let collect = async {
        while let Some(ev) = session.next_event().await {
            let done = stop(&ev);
            out.push(ev);
            if done {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), collect).await;
    out
}

/// Milliseconds of model audio in `events`.
pub fn audio_ms(events: &[ModelEvent]) -> u128 {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Audio(c) => Some(c.duration().as_millis()),
            _ => None,
        })
        .sum()
}

/// Events with audio payloads summarised, for assertion messages.
pub fn summary(events: &[ModelEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            ModelEvent::Audio(c) => format!("Audio({} ms)", c.duration().as_millis()),
            other => format!("{other:?}"),
        })
        .collect()
}

/// The output transcript text in `events` (deltas and the final rest joined).
pub fn output_text(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::OutputTranscript { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The input transcript text in `events`.
pub fn input_text(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::InputTranscript { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Error events in `events`.
pub fn errors(events: &[ModelEvent]) -> Vec<&ModelEvent> {
    events
        .iter()
        .filter(|e| matches!(e, ModelEvent::Error { .. }))
        .collect()
}

/// The kinds of the error events in `events`, in order.
pub fn error_kinds(events: &[ModelEvent]) -> Vec<ErrorKind> {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Error { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

/// The last failure of `err`, which must be a connect error after exactly
/// `attempts` attempts.
pub fn connect_failure(err: &Error, attempts: u32) -> &ConnectFailure {
    match err {
        Error::Connect {
            attempts: made,
            last,
            ..
        } if *made == attempts => last,
        other => panic!("expected a connect error after {attempts} attempt(s), got {other:?}"),
    }
}

/// The process-wide (live tasks, live connections) once both are zero, or
/// as they are when `within` has passed.
pub async fn live_tasks_and_connections_after(within: Duration) -> (usize, usize) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = (stats::live_tasks(), stats::live_connections());
        if now == (0, 0) || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
