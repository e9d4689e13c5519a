//! `callbridge-load mock-model`: the mock Gemini Live server in its own
//! process, so the agent's CPU and memory are measured without it.
//!
//! Prints `ready ws=<url>` on stdout, serves until stdin closes, then prints
//! one JSON line of its counters. Model faults go by connection number:
//! connection `i` drops its TCP connection in the middle of the reply to
//! the second caller turn when `i % drop_every == drop_every - 1` (the agent
//! resumes the session with the handle of the greeting or the first turn),
//! and stalls mid-call when `i % stall_every == stall_every / 2`: the
//! greeting is answered, the first caller turn is transcribed and never
//! answered (the agent's reply timeout ends the call as a model failure).
//! A resumed session takes the next connection number, so the pattern is
//! per connection, not per call.

use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use serde::Serialize;
use tokio::io::AsyncReadExt;

/// Mock model options.
#[derive(Debug, Clone, clap::Args)]
pub struct MockArgs {
    /// Where to listen (the mock always binds loopback on a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Every Nth connection drops mid-reply (0: never).
    #[arg(long, default_value_t = 0)]
    pub drop_every: usize,
    /// Every Nth connection stalls after the greeting: the first caller
    /// turn is never answered (0: never).
    #[arg(long, default_value_t = 0)]
    pub stall_every: usize,
    /// How many connections the fault pattern covers.
    #[arg(long, default_value_t = 20_000)]
    pub scripted: usize,
}

/// The counters printed at the end.
#[derive(Debug, Serialize, serde::Deserialize, Default, Clone)]
pub struct MockReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections still open when stdin closed.
    pub open_connections: u64,
    /// Setups completed.
    pub setups: u64,
    /// Clean closes by the agent.
    pub clean_closes: u64,
    /// Caller turns detected.
    pub caller_turns: u64,
    /// Caller audio messages received (one per uplink chunk).
    #[serde(default)]
    pub audio_messages_in: u64,
    /// Caller audio received, decoded bytes (16 kHz s16le).
    #[serde(default)]
    pub audio_bytes_in: u64,
    /// Connections that were scripted to drop.
    pub drops_scripted: u64,
    /// Connections that were scripted to stall.
    pub stalls_scripted: u64,
    /// Protocol violations by the agent.
    pub violations: Vec<String>,
}

fn is_drop(i: usize, every: usize) -> bool {
    every > 0 && i % every == every - 1
}

fn is_stall(i: usize, every: usize) -> bool {
    every > 0 && i % every == every / 2 && !is_drop(i, every)
}

/// The script every normal connection follows: real-time playback.
pub fn base_script() -> GeminiScript {
    GeminiScript::default()
}

/// Runs the mock until stdin closes.
pub async fn main(args: MockArgs) -> Result<(), String> {
    if args.listen != "127.0.0.1:0" {
        return Err("mock-model: only --listen 127.0.0.1:0 is supported".into());
    }
    let per_connection = (0..args.scripted)
        .map(|i| {
            let mut s = base_script();
            if is_drop(i, args.drop_every) {
                s.close_mid_response_at_turn = Some(2);
            } else if is_stall(i, args.stall_every) {
                s.stall_after_turns = Some(1);
            }
            s
        })
        .collect();
    let book = ScriptBook {
        per_connection,
        default: base_script(),
    };
    let mock = MockGemini::start_with(book)
        .await
        .map_err(|e| format!("mock-model: {e}"))?;
    println!("ready ws={}", mock.url());
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    let s = mock.stats();
    let n = usize::try_from(s.connections).unwrap_or(usize::MAX);
    let report = MockReport {
        connections: s.connections,
        open_connections: s.open_connections,
        setups: s.setups,
        clean_closes: s.clean_closes,
        caller_turns: s.caller_turns,
        audio_messages_in: s.audio_messages_in,
        audio_bytes_in: s.audio_bytes_in,
        drops_scripted: (0..n.min(args.scripted))
            .filter(|&i| is_drop(i, args.drop_every))
            .count() as u64,
        stalls_scripted: (0..n.min(args.scripted))
            .filter(|&i| is_stall(i, args.stall_every))
            .count() as u64,
        violations: s.violations,
    };
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    mock.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_stalls_take_disjoint_shares() {
        let drops = (0..1000).filter(|&i| is_drop(i, 20)).count();
        let stalls = (0..1000).filter(|&i| is_stall(i, 20)).count();
        assert_eq!((drops, stalls), (50, 50));
        assert!((0..1000).all(|i| !(is_drop(i, 20) && is_stall(i, 20))));
        assert_eq!((0..1000).filter(|&i| is_drop(i, 0)).count(), 0);
    }
}
