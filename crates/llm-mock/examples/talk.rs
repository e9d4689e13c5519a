//! Talk to a realtime voice model from a WAV file, as a caller would.
//!
//! ```text
//! cargo run -p callbridge-llm-mock --example talk -- \
//!     --provider gemini --mock gemini --wav caller.wav --out reply.wav --transcript
//! GEMINI_API_KEY=... cargo run -p callbridge-llm-mock --example talk -- \
//!     --provider gemini --wav caller.wav --out reply.wav
//! cargo run -p callbridge-llm-mock --example talk -- \
//!     --provider openai --mock openai --wav caller.wav --out reply.wav --transcript
//! OPENAI_API_KEY=... cargo run -p callbridge-llm-mock --example talk -- \
//!     --provider openai --wav caller.wav --out reply.wav
//! ```
//!
//! Opens one session (key from the environment, never printed; none needed
//! for a mock URL), streams the WAV in real time in 20 ms frames followed by
//! a second of silence so the server's VAD ends the turn, "plays" the
//! model's audio in real time (printing the playback position every
//! second), writes everything the model says to `--out` at 8 kHz, prints
//! events (and transcripts with `--transcript`), closes cleanly and exits 0.
//! A failed connect, a protocol error or an unclean end exits non-zero with
//! a message.
//!
//! Gemini gets 16-bit PCM (16 kHz, or 8 kHz as it is). OpenAI gets the
//! telephone format: G.711 µ-law at 8 kHz both ways (`audio/pcmu`), the
//! caller's WAV brought down to 8 kHz first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use callbridge_llm_bridge::audio::linear_to_ulaw;
use callbridge_llm_bridge::{
    ApiKey, AudioFormat, AudioFrame, CallMetadata, GeminiLive, Greeting, ModelEvent,
    OpenAiRealtime, Provider, RealtimeModel, SampleRate, SessionConfig, gemini, openai,
};
use callbridge_llm_mock::clips::downsample;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ProviderArg {
    Gemini,
    Openai,
}

#[derive(Debug, Parser)]
#[command(about = "Stream a WAV file to a realtime voice model and record its reply")]
struct Args {
    /// Which model protocol to speak.
    #[arg(long, value_enum)]
    provider: ProviderArg,
    /// WebSocket endpoint (default: the provider's public endpoint).
    #[arg(long)]
    url: Option<String>,
    /// Start a mock server of this protocol and talk to it (no key needed).
    #[arg(long, value_enum)]
    mock: Option<ProviderArg>,
    /// Model id (default: the provider's default Live model).
    #[arg(long)]
    model: Option<String>,
    /// The caller's audio (mono or stereo 16-bit WAV, any rate).
    #[arg(long)]
    wav: PathBuf,
    /// Where to write what the model says (8 kHz mono 16-bit WAV).
    #[arg(long)]
    out: PathBuf,
    /// Print transcripts of both sides.
    #[arg(long)]
    transcript: bool,
    /// Ask the model to greet first.
    #[arg(long)]
    greet: bool,
    /// Seconds to wait for the model after the input ends.
    #[arg(long, default_value_t = 15)]
    wait: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("talk: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a WAV as mono 16-bit samples at 16 kHz (8 kHz files are sent as
/// they are: the client converts them).
fn read_caller(path: &PathBuf) -> Result<(SampleRate, Vec<i16>), String> {
    let reader =
        hound::WavReader::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(format!(
            "{}: only 16-bit PCM WAV is supported",
            path.display()
        ));
    }
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let ch = usize::from(spec.channels.max(1));
    let mono: Vec<i16> = samples
        .chunks(ch)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect();
    match spec.sample_rate {
        8000 => Ok((SampleRate::HZ_8000, mono)),
        16000 => Ok((SampleRate::HZ_16000, mono)),
        r => Ok((SampleRate::HZ_16000, resample_linear(&mono, r, 16000))),
    }
}

/// Linear-interpolation resampling (adequate for a test tool's input).
fn resample_linear(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if input.is_empty() || from == 0 {
        return Vec::new();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * f64::from(from) / f64::from(to);
            let k = pos as usize;
            let frac = pos - k as f64;
            let a = f64::from(input[k.min(input.len() - 1)]);
            let b = f64::from(input[(k + 1).min(input.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = SessionConfig::default();
    let (provider, model, default_model): (_, Box<dyn RealtimeModel>, _) = match args.provider {
        ProviderArg::Gemini => (
            Provider::Gemini,
            Box::new(GeminiLive),
            gemini::DEFAULT_MODEL,
        ),
        ProviderArg::Openai => {
            config.input_format = AudioFormat::Pcmu;
            config.output_format = AudioFormat::Pcmu;
            (
                Provider::OpenAi,
                Box::new(OpenAiRealtime),
                openai::DEFAULT_MODEL,
            )
        }
    };
    if args.mock.is_some_and(|m| m != args.provider) {
        return Err("--mock must match --provider".into());
    }
    config.model = args.model.clone().unwrap_or_else(|| default_model.into());
    config.instructions = "You are a friendly phone agent. Keep answers short.".into();
    if args.greet {
        config.greeting = Greeting::OnOpen {
            prompt: Greeting::DEFAULT_PROMPT.into(),
        };
    }
    let mock = match args.mock {
        Some(ProviderArg::Gemini) => Some(Mock::Gemini(
            MockGemini::start(GeminiScript::default())
                .await
                .map_err(|e| format!("mock: {e}"))?,
        )),
        Some(ProviderArg::Openai) => Some(Mock::OpenAi(
            MockOpenAi::start(OpenAiScript::default())
                .await
                .map_err(|e| format!("mock: {e}"))?,
        )),
        None => None,
    };
    if let Some(m) = &mock {
        config.endpoint = Some(m.url());
    } else {
        config.endpoint = args.url.clone();
        let local = args
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("ws://127.0.0.1") || u.starts_with("ws://localhost"));
        config.api_key = ApiKey::from_env(provider.api_key_var());
        if config.api_key.is_none() && !local {
            return Err(format!(
                "set {} (or use --mock / a local --url)",
                provider.api_key_var()
            ));
        }
    }
    let (rate, caller) = read_caller(&args.wav)?;
    let input = match args.provider {
        ProviderArg::Gemini => CallerAudio::Pcm {
            rate,
            samples: caller,
        },
        ProviderArg::Openai => CallerAudio::Pcmu(
            downsample(&caller, rate.hz(), 8000)
                .into_iter()
                .map(linear_to_ulaw)
                .collect(),
        ),
    };
    let mut session = model
        .open(config, CallMetadata::with_call_id("talk"))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("[open] {provider} session ready");

    let mut frames = input.frames();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut reply: Vec<i16> = Vec::new();
    let mut reply_rate = 24000;
    let mut player = Playback::default();
    let mut failed: Option<String> = None;
    let mut input_done_at: Option<tokio::time::Instant> = None;
    let mut turns = 0usize;
    let needed = 1 + usize::from(args.greet);
    let wait = Duration::from_secs(args.wait);
    let mut end_call = false;
    let mut said = Said::new(args.transcript);
    let mut usage = (0u64, 0u64);
    loop {
        let replied = input_done_at.is_some() && (turns >= needed || end_call);
        // Once the reply is complete only its playback is left to wait for.
        let give_up = input_done_at.filter(|_| !replied).map(|t| t + wait);
        if replied && player.drained(reply.len()) {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                player.advance(reply_rate, reply.len());
                if input_done_at.is_none() {
                    match frames.next() {
                        Some(f) => {
                            if let Err(e) = session.send_audio(f) {
                                failed = Some(format!("sending audio: {e}"));
                                break;
                            }
                        }
                        None => input_done_at = Some(tokio::time::Instant::now()),
                    }
                }
            },
            () = async { match give_up { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                eprintln!("[wait] no reply within {}s after the input ended", args.wait);
                break;
            }
            ev = session.next_event(), if !replied => {
                let Some(ev) = ev else { break };
                match ev {
                    ModelEvent::Audio(chunk) => {
                        reply_rate = chunk.format.rate().hz();
                        chunk.decode_into(&mut reply);
                    }
                    ModelEvent::InputTranscript { text, .. } => said.caller(&text),
                    ModelEvent::OutputTranscript { text, .. } => said.agent(&text),
                    ModelEvent::TurnComplete => {
                        said.flush();
                        eprintln!("[turn complete]");
                        turns += 1;
                    }
                    ModelEvent::Interrupted => {
                        said.flush();
                        eprintln!("[interrupted]");
                    }
                    ModelEvent::Usage(u) => {
                        usage.0 += u.input_tokens;
                        usage.1 += u.output_tokens;
                    }
                    ModelEvent::RateLimits(limits) => {
                        let shown: Vec<String> = limits
                            .iter()
                            .map(|l| format!("{} {}/{} left", l.name, l.remaining, l.limit))
                            .collect();
                        eprintln!("[rate limits] {}", shown.join(", "));
                    }
                    ModelEvent::Error { kind, message } => {
                        eprintln!("[error] {kind:?}: {message}");
                        failed.get_or_insert(format!("protocol error: {message}"));
                    }
                    ModelEvent::EndCall { reason, .. } => {
                        eprintln!("[end_call] {}", reason.unwrap_or_default());
                        end_call = true;
                    }
                    ModelEvent::Closed { reason, clean } => {
                        eprintln!("[closed] {reason} (clean: {clean})");
                        failed.get_or_insert(format!("the session ended early: {reason}"));
                        break;
                    }
                    ModelEvent::GenerationComplete => eprintln!("[generation complete]"),
                    ModelEvent::CallerTurnEnded => eprintln!("[caller turn ended]"),
                    ModelEvent::ResumptionHandle(_) => {}
                    ModelEvent::GoingAway { .. } => eprintln!("[going away] the server will end this connection soon"),
                    ModelEvent::Reconnecting { .. } => eprintln!("[reconnecting]"),
                    ModelEvent::Resumed => eprintln!("[resumed]"),
                    ModelEvent::ToolCall(_) => eprintln!("[tool call]"),
                    ModelEvent::ToolCallCancelled { .. } => eprintln!("[tool call cancelled]"),
                    ModelEvent::TransferCall { .. } => eprintln!("[transfer]"),
                    _ => eprintln!("[event] (another model event)"),
                }
            }
        }
    }
    said.flush();
    // A readable summary: what was exchanged, what it cost.
    eprintln!(
        "[summary] {turns} model turn(s); {:.2} s of reply audio; {}",
        reply.len() as f64 / f64::from(reply_rate.max(1)),
        if usage == (0, 0) {
            "no token usage reported".to_owned()
        } else {
            format!("tokens: {} in, {} out", usage.0, usage.1)
        }
    );
    let outcome = session.close().await;
    eprintln!("[close] {} (clean: {})", outcome.reason, outcome.clean);
    match mock {
        Some(Mock::Gemini(m)) => m.shutdown().await,
        Some(Mock::OpenAi(m)) => m.shutdown().await,
        None => {}
    }
    let pcm8k = downsample(&reply, reply_rate, 8000);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&args.out, spec)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    for s in &pcm8k {
        w.write_sample(*s).map_err(|e| e.to_string())?;
    }
    w.finalize().map_err(|e| e.to_string())?;
    eprintln!(
        "[out] {} ({:.2} s at 8 kHz)",
        args.out.display(),
        pcm8k.len() as f64 / 8000.0
    );
    if let Some(msg) = failed {
        return Err(msg);
    }
    if !outcome.clean {
        return Err(format!("unclean close: {}", outcome.reason));
    }
    Ok(())
}

/// The transcripts as whole turns: deltas are gathered per side and a
/// side's line is printed when the other side starts speaking, at the end
/// of a turn, at a barge-in and at the end (one line per turn, not one
/// per word).
struct Said {
    show: bool,
    caller: String,
    agent: String,
}

impl Said {
    fn new(show: bool) -> Said {
        Said {
            show,
            caller: String::new(),
            agent: String::new(),
        }
    }

    fn caller(&mut self, delta: &str) {
        if !self.agent.is_empty() {
            self.flush();
        }
        self.caller.push_str(delta);
    }

    fn agent(&mut self, delta: &str) {
        if !self.caller.is_empty() {
            let line = std::mem::take(&mut self.caller);
            self.print("caller", &line);
        }
        self.agent.push_str(delta);
    }

    fn flush(&mut self) {
        let (caller, agent) = (
            std::mem::take(&mut self.caller),
            std::mem::take(&mut self.agent),
        );
        self.print("caller", &caller);
        self.print("agent ", &agent);
    }

    fn print(&self, who: &str, text: &str) {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.show && !text.is_empty() {
            println!("{who}: {text}");
        }
    }
}

/// A running mock server.
enum Mock {
    Gemini(MockGemini),
    OpenAi(MockOpenAi),
}

impl Mock {
    fn url(&self) -> String {
        match self {
            Mock::Gemini(m) => m.url(),
            Mock::OpenAi(m) => m.url(),
        }
    }
}

/// The caller's audio in the format sent to the model.
enum CallerAudio {
    /// 16-bit PCM (Gemini).
    Pcm { rate: SampleRate, samples: Vec<i16> },
    /// G.711 µ-law at 8 kHz (OpenAI `audio/pcmu`, as from a phone).
    Pcmu(Vec<u8>),
}

impl CallerAudio {
    /// 20 ms frames of the audio, then a second of silence.
    fn frames(&self) -> Box<dyn Iterator<Item = AudioFrame<'_>> + '_> {
        const SILENCE_FRAMES: usize = 50;
        const PCM_SILENCE: [i16; 320] = [0; 320];
        const ULAW_SILENCE: [u8; 160] = [0xFF; 160];
        match self {
            CallerAudio::Pcm { rate, samples } => {
                let rate = *rate;
                let n = rate.samples_in_ms(20);
                let silence = &PCM_SILENCE[..n.min(PCM_SILENCE.len())];
                Box::new(
                    samples
                        .chunks(n)
                        .chain(std::iter::repeat_n(silence, SILENCE_FRAMES))
                        .map(move |samples| AudioFrame::Pcm16 { rate, samples }),
                )
            }
            CallerAudio::Pcmu(bytes) => Box::new(
                bytes
                    .chunks(160)
                    .chain(std::iter::repeat_n(&ULAW_SILENCE[..], SILENCE_FRAMES))
                    .map(AudioFrame::Pcmu),
            ),
        }
    }
}

/// The playback position in the model's reply, advanced in real time (one
/// 20 ms tick at a time) as a phone would play it.
#[derive(Debug, Default)]
struct Playback {
    played: usize,
    reported_s: usize,
}

impl Playback {
    /// Plays up to 20 ms more of the `received` samples at `rate`; prints
    /// the position at each new second.
    fn advance(&mut self, rate: u32, received: usize) {
        let step = rate as usize / 50;
        self.played = (self.played + step).min(received);
        let seconds = self.played / (rate as usize).max(1);
        if seconds > self.reported_s {
            self.reported_s = seconds;
            eprintln!(
                "[play] {seconds} s played of {:.2} s received",
                received as f64 / f64::from(rate.max(1))
            );
        }
    }

    /// Whether everything received has been played.
    fn drained(&self, received: usize) -> bool {
        self.played >= received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_audio::level::rms;

    /// Runs the example against its own mock of `provider` with the
    /// repository's 16 kHz "hello" clip; returns the reply WAV's samples.
    async fn talk_to_mock(provider: &str) -> Vec<i16> {
        let wav = concat!(env!("CARGO_MANIFEST_DIR"), "/../rtp/testdata/hello-16k.wav");
        let out = std::env::temp_dir().join(format!(
            "callbridge-talk-{provider}-{}.wav",
            std::process::id()
        ));
        let out_arg = out.to_str().unwrap().to_string();
        let args = Args::try_parse_from([
            "talk",
            "--provider",
            provider,
            "--mock",
            provider,
            "--wav",
            wav,
            "--out",
            &out_arg,
        ])
        .unwrap();
        run(args).await.unwrap();
        let reader = hound::WavReader::open(&out).unwrap();
        assert_eq!(
            (reader.spec().sample_rate, reader.spec().channels),
            (8000, 1)
        );
        let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        let _ = std::fs::remove_file(&out);
        samples
    }

    #[tokio::test]
    async fn openai_mock_over_pcmu_gives_a_spoken_reply_at_8_khz() {
        let reply = talk_to_mock("openai").await;
        assert!(reply.len() > 8000, "{} samples", reply.len());
        assert!(rms(&reply) > 1000.0, "rms {}", rms(&reply));
    }

    #[tokio::test]
    async fn gemini_mock_gives_a_spoken_reply_at_8_khz() {
        let reply = talk_to_mock("gemini").await;
        assert!(reply.len() > 8000, "{} samples", reply.len());
        assert!(rms(&reply) > 1000.0, "rms {}", rms(&reply));
    }
}
