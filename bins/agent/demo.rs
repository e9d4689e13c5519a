//! `agent demo`, the README's first command: the whole agent in-process on
//! loopback (the built-in mock model, a temporary database and recordings
//! directory), one call into it from the built-in [`crate::caller`], then
//! the call as the store has it: states and times, transcript, end reason,
//! recording, latency figures (the store's and the caller's) and events.
//! No keys, no network. `--provider gpt-live` or `--provider openai` runs
//! the same call over that protocol, against its built-in mock, started
//! here on loopback (the agent's own `provider = "mock"` is Gemini's).
//! With `--serve` the agent then stays up on loopback with a printed
//! admin token, so the API can be tried on the demo's call, until Ctrl-C.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callbridge_crm_store::{
    ApiToken, EndReason, PersonName, Role, SessionRecord, Speaker, StoreAt,
};

use callbridge_llm_mock::gpt_live::{GptLiveScript, MockGptLive};
use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};

use crate::caller::{self, CLIP_TEXT, CallerReport};
use crate::cli::{DemoArgs, DemoProvider};
use crate::run::Agent;
use crate::settings::{Secrets, Settings};

/// RTP ports of the demo agent and of its caller.
const AGENT_RTP: (i64, i64) = (31000, 31199);
const CALLER_RTP: std::ops::RangeInclusive<u16> = 31200..=31239;

/// A mock model the demo started itself (GPT-Live, OpenAI Realtime);
/// the Gemini mock is the agent's own.
enum DemoMock {
    GptLive(MockGptLive),
    OpenAi(MockOpenAi),
}

impl DemoMock {
    /// Starts the mock `provider` needs, if the agent does not start it.
    async fn start(provider: DemoProvider) -> std::io::Result<Option<DemoMock>> {
        Ok(match provider {
            DemoProvider::Gemini => None,
            DemoProvider::GptLive => Some(DemoMock::GptLive(
                MockGptLive::start(GptLiveScript::default()).await?,
            )),
            DemoProvider::OpenAi => Some(DemoMock::OpenAi(
                MockOpenAi::start(OpenAiScript::default()).await?,
            )),
        })
    }

    /// `provider = ...` and `endpoint = ...` of the agent's `[model]`.
    fn model_keys(&self) -> String {
        let (provider, url) = match self {
            DemoMock::GptLive(m) => ("gpt-live", m.url()),
            DemoMock::OpenAi(m) => ("openai", m.url()),
        };
        format!("provider = \"{provider}\"\nendpoint = \"{url}\"\n")
    }

    async fn shutdown(self) {
        match self {
            DemoMock::GptLive(m) => m.shutdown().await,
            DemoMock::OpenAi(m) => m.shutdown().await,
        }
    }
}

/// The demo's settings: everything on loopback, ports chosen by the OS;
/// the model is the agent's built-in mock, or `mock`'s endpoint.
fn demo_settings(dir: &Path, mock: Option<&DemoMock>) -> Result<Settings, String> {
    let model = mock.map_or_else(|| "provider = \"mock\"\n".to_owned(), DemoMock::model_keys);
    let text = format!(
        "[sip]\nbind = \"127.0.0.1:0\"\nallowed_peers = [\"127.0.0.1/32\"]\n\
         [rtp]\nport_min = {}\nport_max = {}\n\
         [calls]\nmax_concurrent = 4\ndrain_timeout = \"2s\"\n\
         [model]\n{model}\
         system_prompt = \"You are the demo receptionist of Example Ltd.\"\n\
         [store]\ndatabase = \"demo.db\"\nrecordings_dir = \"recordings\"\n\
         [http]\nbind = \"127.0.0.1:0\"\n",
        AGENT_RTP.0, AGENT_RTP.1
    );
    Settings::from_text(Path::new("demo"), &text, &BTreeMap::new(), dir).map_err(|e| e.to_string())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "not measured".into(),
        |d| format!("{} ms", d.as_millis()),
    )
}

/// Seconds from the call's creation to `t`.
fn offset(start: jiff::Timestamp, t: jiff::Timestamp) -> String {
    let d = t.duration_since(start);
    format!("+{:.2} s", d.as_secs_f64())
}

/// The recording's length and format, from its header.
fn recording_info(path: &Path) -> String {
    match hound::WavReader::open(path) {
        Ok(r) => {
            let s = r.spec();
            let secs = f64::from(r.duration()) / f64::from(s.sample_rate.max(1));
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            format!(
                "{secs:.2} s, {} channel(s) at {} Hz, {} KiB",
                s.channels,
                s.sample_rate,
                bytes / 1024
            )
        }
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Latency figures in the store: the session's `note` events
/// `{"metric": "<name>_ms", "value": N}` written by the session crate,
/// as (label, "N ms") in the order written.
fn store_latencies(rec: &SessionRecord) -> Vec<(String, String)> {
    rec.events
        .iter()
        .filter_map(|e| {
            let obj = e.detail.as_object()?;
            let metric = obj.get("metric")?.as_str()?;
            let value = obj.get("value")?;
            let label = metric
                .strip_suffix("_ms")
                .unwrap_or(metric)
                .replace('_', " ");
            let unit = if metric.ends_with("_ms") { " ms" } else { "" };
            Some((label, format!("{value}{unit}")))
        })
        .collect()
}

/// What the mock model's caller turns are shown as: it detects the
/// caller's turns but transcribes none of them (its text is a placeholder).
pub const MOCK_CALLER_TURN: &str = "(caller speech, not transcribed by the mock model)";

/// An end reason in words, its stored name after it.
pub fn reason_words(r: EndReason) -> String {
    let words = match r {
        EndReason::CallerHangup => "the caller hung up",
        EndReason::AgentHangup => "the agent hung up",
        EndReason::NoSpeechTimeout => "nobody spoke for too long",
        EndReason::MaxDuration => "the call reached its maximum length",
        EndReason::RtpTimeout => "the caller's audio stopped arriving",
        EndReason::ModelFailure => "the voice model failed",
        EndReason::Shutdown => "the agent shut down",
        EndReason::Rejected => "the call was refused",
        EndReason::Cancelled => "the call was cancelled before the answer",
        EndReason::Busy => "the line was busy",
        EndReason::NoAnswer => "nobody answered",
        EndReason::Error => "an internal error",
        EndReason::ProcessDied => "the agent stopped during the call",
        EndReason::OrphanRecording => "only the recording was found",
        EndReason::Transferred => "the call was transferred",
        EndReason::AckTimeout => "the caller never confirmed the answer",
        _ => "ended",
    };
    format!("{words} ({r})")
}

/// The call as the store has it; `mock` shows the mock model's caller
/// turns as [`MOCK_CALLER_TURN`].
pub fn describe(rec: &SessionRecord, mock: bool) -> String {
    let s = &rec.session;
    let mut o = String::new();
    let _ = writeln!(o, "session {}", s.id);
    let _ = writeln!(o, "  direction      {}", s.direction);
    let _ = writeln!(
        o,
        "  state          {}, end reason: {}",
        s.state,
        s.end_reason.map_or("-".to_owned(), reason_words)
    );
    let _ = writeln!(o, "  created        {}", s.created_at);
    if let Some(a) = s.answered_at {
        let _ = writeln!(o, "  answered       {a} ({})", offset(s.created_at, a));
    }
    if let Some(e) = s.ended_at {
        let _ = writeln!(o, "  ended          {e} ({})", offset(s.created_at, e));
    }
    if let Some(d) = s.duration {
        let _ = writeln!(o, "  talk time      {}", secs(d));
    }
    let _ = writeln!(
        o,
        "  model          {} / {}",
        s.model_provider.as_deref().unwrap_or("-"),
        s.model.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        o,
        "  SIP Call-ID    {}",
        s.sip_call_id.as_deref().unwrap_or("-")
    );
    match &s.recording_path {
        Some(p) => {
            let _ = writeln!(o, "  recording      {}", p.display());
            let _ = writeln!(o, "                 {}", recording_info(p));
        }
        None => {
            let _ = writeln!(o, "  recording      none");
        }
    }
    let _ = writeln!(o, "transcript");
    if rec.turns.is_empty() {
        let _ = writeln!(o, "  (empty)");
    }
    for t in &rec.turns {
        let text = if mock && t.speaker == Speaker::Caller {
            MOCK_CALLER_TURN
        } else {
            t.text.as_str()
        };
        let _ = writeln!(
            o,
            "  [{:>6.2} s] {:<6} {}",
            t.start_ms as f64 / 1000.0,
            t.speaker.to_string(),
            text
        );
    }
    o
}

/// Runs the demo; returns the exit status.
pub async fn run(args: DemoArgs) -> i32 {
    let dir = match tempfile::Builder::new()
        .prefix("callbridge-demo-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("agent demo: cannot create a temporary directory: {e}");
            return 1;
        }
    };
    let mock = match DemoMock::start(args.provider).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("agent demo: the mock model did not start: {e}");
            return 1;
        }
    };
    let settings = match demo_settings(dir.path(), mock.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent demo: {e}");
            return 1;
        }
    };
    let protocol = match args.provider {
        DemoProvider::Gemini => "Gemini Live",
        DemoProvider::GptLive => "OpenAI GPT-Live",
        DemoProvider::OpenAi => "OpenAI Realtime",
    };
    println!(
        "callbridge demo: one call into the agent on loopback (mock model speaking {protocol}, temporary store)"
    );
    let agent = match Agent::start(&settings, &Secrets::default()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("agent demo: the agent did not start: {e}");
            return 1;
        }
    };
    println!(
        "  agent          sip {}, http {}",
        agent.sip_addr, agent.http_addr
    );
    println!("  caller says    \"{CLIP_TEXT}\" (bins/agent/assets/caller-8k.wav, espeak-ng)");
    let outcome = caller::call(agent.sip_addr, CALLER_RTP).await;
    // Let the agent finish the call (store end, recording) before reading.
    for _ in 0..500 {
        let s = agent.manager.snapshot();
        if s.calls.is_empty() && s.call_tasks == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.manager.flush_store().await;
    let status = print_outcome(&agent.store, &outcome);
    if args.serve {
        serve(&agent).await;
    }
    agent.shutdown().await;
    if let Some(mock) = mock {
        mock.shutdown().await;
    }
    if args.keep {
        let kept: PathBuf = dir.keep();
        println!("kept             {}", kept.display());
    } else {
        println!(
            "(the temporary database and recording are removed now; `agent demo --keep` keeps them)"
        );
    }
    status
}

/// `--serve`: an admin token for the demo's store, the commands to try,
/// then the agent stays up until SIGINT or SIGTERM.
async fn serve(agent: &Agent) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("agent demo: cannot install signal handlers; not serving");
        return;
    };
    let token = match admin_token(&agent.store) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agent demo: cannot create the demo's admin user: {e}");
            return;
        }
    };
    let http = agent.http_addr;
    println!();
    println!("serving          the agent stays up on loopback until Ctrl-C");
    println!("  http           http://{http}");
    println!("  console        http://{http}/  (sign in with the admin token)");
    println!("  sip            {}", agent.sip_addr);
    println!("  admin token    {}", token.expose());
    println!("try");
    println!(
        "  curl -s -H 'Authorization: Bearer {}' http://{http}/api/sessions",
        token.expose()
    );
    println!("  curl -s http://{http}/api/health");
    println!(
        "  curl -s -H 'Authorization: Bearer {}' http://{http}/metrics",
        token.expose()
    );
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    println!("stopping");
}

/// A new admin user `demo-admin` in the demo's store; its token.
fn admin_token(store: &StoreAt) -> Result<ApiToken, String> {
    let mut store = store.open().map_err(|e| e.to_string())?;
    let name = PersonName::new("demo-admin").map_err(|e| e.to_string())?;
    let token = ApiToken::generate().map_err(|e| e.to_string())?;
    store
        .create_user_expiring(&name, Role::Admin, &token, None, jiff::Timestamp::now())
        .map_err(|e| e.to_string())?;
    Ok(token)
}

fn print_outcome(store: &StoreAt, outcome: &Result<CallerReport, caller::CallerError>) -> i32 {
    let report = match outcome {
        Ok(r) => {
            println!(
                "  caller         said its sentence ({}), {}",
                secs(r.spoken),
                r.ended
            );
            Some(r)
        }
        Err(e) => {
            println!("  caller         FAILED: {e}");
            None
        }
    };
    let record = store.open().and_then(|s| {
        let page = s.list_sessions(&Default::default(), 10, None)?;
        page.items.first().map(|x| s.load_session(x.id)).transpose()
    });
    let rec = match record {
        Ok(Some(r)) => r,
        Ok(None) => {
            println!("the store has no session: the call never reached the agent");
            return 1;
        }
        Err(e) => {
            eprintln!("agent demo: cannot read the store: {e}");
            return 1;
        }
    };
    println!();
    print!("{}", describe(&rec, true));
    println!("latency, agent side (the session's events in the store)");
    let stored = store_latencies(&rec);
    if stored.is_empty() {
        println!("  (none stored for this session)");
    }
    for (label, value) in stored {
        println!("  {label:<32} {value}");
    }
    if let Some(r) = report {
        println!("latency, caller side (its jitter buffer included, 20 ms ticks)");
        println!(
            "  {:<32} {}",
            "answer to first agent audio",
            ms(r.answer_to_first_audio)
        );
        println!(
            "  {:<32} {}",
            "caller stop to agent audio",
            ms(r.stop_to_reply_audio)
        );
        println!(
            "  (greeting heard for {}, reply for {})",
            secs(r.greeting_heard),
            secs(r.reply_heard)
        );
    }
    println!("events");
    for e in &rec.events {
        println!(
            "  {:>9}  {:<14} {}",
            offset(rec.session.created_at, e.at),
            e.kind.to_string(),
            e.detail
        );
    }
    let complete = report.is_some() && rec.session.end_reason.is_some() && !rec.turns.is_empty();
    if complete { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_reason_has_words_and_its_name() {
        for r in [
            EndReason::CallerHangup,
            EndReason::AckTimeout,
            EndReason::ProcessDied,
        ] {
            let w = reason_words(r);
            assert!(w.ends_with(&format!("({r})")), "{w}");
            assert!(!w.starts_with("ended"), "{w}");
        }
        assert_eq!(
            reason_words(EndReason::CallerHangup),
            "the caller hung up (caller-hangup)"
        );
    }

    #[test]
    fn demo_settings_are_valid_and_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let s = demo_settings(dir.path(), None).unwrap();
        assert!(s.sip_bind.ip().is_loopback() && s.http_bind.ip().is_loopback());
        assert_eq!(s.provider.name(), "mock");
        assert!(s.store_at().sqlite_path().unwrap().starts_with(dir.path()));
        let caller_lo = *CALLER_RTP.start();
        assert!(
            u16::try_from(AGENT_RTP.1).unwrap() < caller_lo,
            "agent and caller ports apart"
        );
    }
}
