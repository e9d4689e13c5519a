//! Talk to a realtime voice model from a WAV file, as a caller would.
//!
//! ```text
//! cargo run -p callbridge-llm-bridge --example talk -- \
//!     --provider gemini --mock gemini --wav caller.wav --out reply.wav --transcript
//! GEMINI_API_KEY=... cargo run -p callbridge-llm-bridge --example talk -- \
//!     --provider gemini --wav caller.wav --out reply.wav
//! ```
//!
//! Opens one session (key from the environment; none needed for a mock
//! URL), streams the WAV in real time in 20 ms frames followed by a second
//! of silence so the server's VAD ends the turn, writes everything the model
//! says to `--out` at 8 kHz, prints events (and transcripts with
//! `--transcript`), closes cleanly and exits 0. A failed connect, a protocol
//! error or an unclean end exits non-zero with a message.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use callbridge_llm_bridge::mock::clips::downsample;
use callbridge_llm_bridge::mock::gemini::{GeminiScript, MockGemini};
use callbridge_llm_bridge::{
    ApiKey, AudioFrame, CallMetadata, GeminiLive, Greeting, ModelEvent, Provider, RealtimeModel,
    SampleRate, SessionConfig, gemini,
};
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
    let provider = match args.provider {
        ProviderArg::Gemini => Provider::Gemini,
        ProviderArg::Openai => {
            return Err("the OpenAI Realtime client is not part of this build yet".into());
        }
    };
    let model: Box<dyn RealtimeModel> = Box::new(GeminiLive);
    let mut config = SessionConfig::default();
    config.model = args
        .model
        .clone()
        .unwrap_or_else(|| gemini::DEFAULT_MODEL.into());
    config.instructions = "You are a friendly phone agent. Keep answers short.".into();
    if args.greet {
        config.greeting = Greeting::OnOpen {
            prompt: Greeting::DEFAULT_PROMPT.into(),
        };
    }
    let mock = match args.mock {
        Some(ProviderArg::Gemini) => Some(
            MockGemini::start(GeminiScript::default())
                .await
                .map_err(|e| format!("mock: {e}"))?,
        ),
        Some(ProviderArg::Openai) => return Err("no OpenAI mock in this build yet".into()),
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
    let mut session = model
        .open(config, CallMetadata::with_call_id("talk"))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("[open] {provider} session ready");

    let frame_len = rate.samples_in_ms(20);
    let silence = vec![0i16; frame_len];
    let mut frames = caller
        .chunks(frame_len)
        .chain(std::iter::repeat_n(&silence[..], 50));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut reply: Vec<i16> = Vec::new();
    let mut reply_rate = 24000;
    let mut failed: Option<String> = None;
    let mut input_done_at: Option<tokio::time::Instant> = None;
    let mut turns = 0usize;
    let needed = 1 + usize::from(args.greet);
    let wait = Duration::from_secs(args.wait);
    let mut end_call = false;
    loop {
        let give_up = input_done_at.map(|t| t + wait);
        tokio::select! {
            _ = tick.tick(), if input_done_at.is_none() => match frames.next() {
                Some(f) => {
                    if let Err(e) = session.send_audio(AudioFrame::Pcm16 { rate, samples: f }) {
                        failed = Some(format!("sending audio: {e}"));
                        break;
                    }
                }
                None => input_done_at = Some(tokio::time::Instant::now()),
            },
            () = async { match give_up { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                eprintln!("[wait] no reply within {}s after the input ended", args.wait);
                break;
            }
            ev = session.next_event() => {
                let Some(ev) = ev else { break };
                match ev {
                    ModelEvent::Audio(chunk) => {
                        reply_rate = chunk.format.rate().hz();
                        chunk.decode_into(&mut reply);
                    }
                    ModelEvent::InputTranscript { text, .. } if args.transcript => println!("caller: {text}"),
                    ModelEvent::OutputTranscript { text, .. } if args.transcript => println!("agent:  {text}"),
                    ModelEvent::InputTranscript { .. } | ModelEvent::OutputTranscript { .. } => {}
                    ModelEvent::TurnComplete => {
                        eprintln!("[turn complete]");
                        turns += 1;
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
                    other => eprintln!("[event] {other:?}"),
                }
                if input_done_at.is_some() && (turns >= needed || end_call) {
                    break;
                }
            }
        }
    }
    let outcome = session.close().await;
    eprintln!("[close] {} (clean: {})", outcome.reason, outcome.clean);
    if let Some(m) = mock {
        m.shutdown().await;
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
