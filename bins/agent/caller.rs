//! The demo's built-in SIP caller: a callbridge-sip driver as user agent
//! client and a callbridge-rtp media stream. It dials the agent, listens to
//! the greeting, says its sentence (a committed clip), listens to the reply
//! and hangs up, timing both waits on its side of the line.
//!
//! The media stream reports one `Audio` event per 20 ms tick, so the loop
//! below is clocked by the line itself: each tick it queues the next frame
//! of the sentence (`try_play`) and looks at what it heard.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_audio::level::rms;
use callbridge_rtp::clock::SystemClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ids::{SeqNo, Ssrc};
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{Frame, MediaConfig, MediaEvent, MediaStream};
use callbridge_sip::driver::{Driver, DriverConfig, Handle};
use callbridge_sip::random::os_rng;
use callbridge_sip::sdp::{self, LocalMedia};
use callbridge_sip::ua::{self, Event, Originate};
use callbridge_sip::{NameAddr, Uri};
use tokio::sync::mpsc;

/// The caller's sentence: "Hello, when are you open on Saturday?", 8 kHz
/// mono 16-bit, 2.2 s. Made with
/// `espeak-ng -v en-us -s 160 -w caller.wav "Hello, when are you open on Saturday?"`
/// then `sox caller.wav -r 8000 -c 1 -b 16 caller-8k.wav silence 1 0.02 1% reverse silence 1 0.02 1% reverse norm -3`
/// (leading and trailing silence trimmed, normalized to -3 dBFS).
pub const CLIP: &[u8] = include_bytes!("assets/caller-8k.wav");

/// What the clip says.
pub const CLIP_TEXT: &str = "Hello, when are you open on Saturday?";

/// A frame louder than this (RMS) is speech.
const LOUD: f64 = 300.0;
/// This many quiet frames in a row end an utterance (500 ms).
const QUIET_RUN: u32 = 25;
/// The whole call is bounded by this.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// What the caller saw.
#[derive(Debug, Clone, Default)]
pub struct CallerReport {
    /// INVITE sent to 200 OK received.
    pub invite_to_answer: Option<Duration>,
    /// 200 OK received to the first loud frame (the greeting).
    pub answer_to_first_audio: Option<Duration>,
    /// Last frame of the sentence queued to the first loud frame of the reply.
    pub stop_to_reply_audio: Option<Duration>,
    /// How long the greeting and the reply were heard.
    pub greeting_heard: Duration,
    /// How long the reply was heard.
    pub reply_heard: Duration,
    /// The sentence's length.
    pub spoken: Duration,
    /// How the call ended, as the caller's SIP stack reported it.
    pub ended: String,
}

/// Why the demo call did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallerError {
    /// The committed clip is not a mono 16-bit 8 kHz WAV.
    #[error("the caller's clip: {0}")]
    Clip(String),
    /// The caller's SIP or RTP could not be set up.
    #[error("caller set-up: {0}")]
    Setup(String),
    /// The call did not get as far as expected.
    #[error("the call {what} (caller saw: {report:?})")]
    Incomplete {
        /// What did not happen.
        what: &'static str,
        /// What happened until then.
        report: Box<CallerReport>,
    },
}

/// How the call ended, in the caller's words (the SIP dialog's end as the
/// caller's stack saw it).
pub fn end_words(reason: ua::EndReason) -> &'static str {
    // Exhaustive on purpose, like the enum: a new way to end is worded here.
    match reason {
        ua::EndReason::LocalHangup => "the caller hung up",
        ua::EndReason::RemoteBye => "the agent hung up",
        ua::EndReason::RemoteCancel => "the agent cancelled the call",
        ua::EndReason::AckTimeout => "the agent never confirmed the answer",
        ua::EndReason::Unanswered => "nobody answered",
        ua::EndReason::BadAnswerInAck => "the answer in the ACK was unusable",
        ua::EndReason::SessionExpired => "the session timer ran out",
    }
}

/// Why an outbound call failed, in words.
fn outcome_words(outcome: ua::Outcome) -> String {
    match outcome {
        ua::Outcome::Busy => "busy".into(),
        ua::Outcome::NoAnswer => "no answer".into(),
        ua::Outcome::Rejected => "declined".into(),
        ua::Outcome::Unavailable => "the agent is unavailable".into(),
        ua::Outcome::Cancelled => "cancelled".into(),
        ua::Outcome::Unreachable => "the agent did not respond".into(),
        ua::Outcome::AuthFailed => "authentication failed".into(),
        ua::Outcome::Failed(status) => format!("SIP status {}", status.as_u16()),
        _ => "refused".into(),
    }
}

/// The clip as 20 ms frames.
pub fn clip_frames() -> Result<Vec<Frame>, CallerError> {
    let mut r = hound::WavReader::new(CLIP).map_err(|e| CallerError::Clip(e.to_string()))?;
    let spec = r.spec();
    if spec.channels != 1 || spec.sample_rate != 8000 || spec.bits_per_sample != 16 {
        return Err(CallerError::Clip(format!(
            "{spec:?}, expected mono 16-bit 8000 Hz"
        )));
    }
    let samples: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| CallerError::Clip(e.to_string()))?;
    Ok(samples
        .chunks(160)
        .map(|c| {
            let mut f = [0i16; 160];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect())
}

/// Where the caller is in its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for the 200 OK.
    Ringing,
    /// Waiting for the greeting to start.
    AwaitGreeting,
    /// Hearing the greeting until it has been quiet for `QUIET_RUN` frames.
    Greeting,
    /// Saying the sentence, one frame per tick.
    Speaking,
    /// Waiting for the reply to start.
    AwaitReply,
    /// Hearing the reply until it is quiet.
    Reply,
    /// Hung up.
    Done,
}

/// One call from loopback into the agent at `agent`, RTP ports from `rtp`.
pub async fn call(
    agent: SocketAddr,
    rtp: std::ops::RangeInclusive<u16>,
) -> Result<CallerReport, CallerError> {
    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let frames = clip_frames()?;
    let setup = |e: &dyn std::fmt::Display| CallerError::Setup(e.to_string());
    let cfg = DriverConfig::new(
        SocketAddr::new(LOCAL, 0),
        ua::Config::new(SocketAddr::new(LOCAL, 0)),
    );
    let (driver, sip, mut events) = Driver::bind(cfg, os_rng()).await.map_err(|e| setup(&e))?;
    let driver = tokio::spawn(async move {
        let _ = driver.run(std::future::pending::<()>()).await;
    });
    let pool = PortPool::new(PortPoolConfig {
        bind_ip: LOCAL,
        range: rtp,
        rtcp: false,
    })
    .map_err(|e| setup(&e))?;
    // The phone's own media engine, as a separate phone would have.
    let engine = MediaEngine::new(EngineConfig::default(), std::sync::Arc::new(SystemClock))
        .map_err(|e| setup(&e))?;
    let result = match MediaStream::open(
        &engine,
        &pool,
        MediaConfig::new(Law::MuLaw, None, Ssrc(0x0dec_a11e), SeqNo(1), 0),
    ) {
        Ok(media) => converse(agent, &sip, &mut events, media, &frames).await,
        Err(e) => Err(setup(&e)),
    };
    driver.abort();
    let _ = driver.await;
    result
}

async fn converse(
    agent: SocketAddr,
    sip: &Handle,
    events: &mut mpsc::Receiver<Event>,
    mut media: MediaStream,
    frames: &[Frame],
) -> Result<CallerReport, CallerError> {
    let local = LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), media.local_addr().port());
    let offer = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
    let uri =
        |s: String| Uri::parse(&Bytes::from(s)).map_err(|e| CallerError::Setup(e.to_string()));
    let to = uri(format!("sip:agent@{agent}"))?;
    let from = uri("sip:+15550001111@127.0.0.1".to_owned())?;
    let started = Instant::now();
    let call = sip
        .originate(Originate {
            to,
            from: NameAddr::new(from),
            target: agent,
            offer,
            credentials: None,
            extra_headers: Vec::new(),
        })
        .await
        .map_err(|e| CallerError::Setup(e.to_string()))?;
    let mut report = CallerReport {
        spoken: Duration::from_millis(20 * frames.len() as u64),
        ..CallerReport::default()
    };
    let mut step = Step::Ringing;
    let (mut answered_at, mut stopped_at) = (started, started);
    let (mut next_frame, mut quiet, mut heard) = (0usize, 0u32, 0u32);
    let deadline = tokio::time::Instant::now() + CALL_LIMIT;
    let mut remote_ended = None;
    while step != Step::Done {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            ev = events.recv() => match ev {
                Some(Event::Answered { call: c, answer, .. }) if c == call => {
                    let Ok(a) = sdp::Session::parse(&answer) else { break };
                    let Some(m) = a.media.first() else { break };
                    // The agent runs on loopback beside us: its media is at its SIP address.
                    media.set_remote(Some(SocketAddr::new(agent.ip(), m.port)));
                    answered_at = Instant::now();
                    report.invite_to_answer = Some(answered_at - started);
                    step = Step::AwaitGreeting;
                }
                Some(Event::Failed { call: c, outcome }) if c == call => {
                    remote_ended = Some(format!("the call failed: {}", outcome_words(outcome)));
                    break;
                }
                Some(Event::Ended { call: c, reason }) if c == call => {
                    remote_ended = Some(end_words(reason).to_owned());
                    break;
                }
                Some(_) => {}
                None => break,
            },
            ev = media.recv() => {
                let Some(ev) = ev else { break };
                let MediaEvent::Audio { pcm, .. } = ev else { continue };
                let loud = rms(&pcm) > LOUD;
                match step {
                    Step::Ringing | Step::Done => {}
                    Step::AwaitGreeting if loud => {
                        report.answer_to_first_audio = Some(answered_at.elapsed());
                        step = Step::Greeting;
                    }
                    Step::AwaitReply if loud => {
                        report.stop_to_reply_audio = Some(stopped_at.elapsed());
                        step = Step::Reply;
                    }
                    Step::AwaitGreeting | Step::AwaitReply => {}
                    Step::Greeting | Step::Reply => {
                        heard += 1;
                        quiet = if loud { 0 } else { quiet + 1 };
                        if quiet >= QUIET_RUN {
                            let span = Duration::from_millis(20 * u64::from(heard - quiet));
                            if step == Step::Greeting {
                                report.greeting_heard = span;
                                step = Step::Speaking;
                            } else {
                                report.reply_heard = span;
                                step = Step::Done;
                            }
                            (heard, quiet) = (0, 0);
                        }
                    }
                    Step::Speaking => {
                        if let Some(f) = frames.get(next_frame) {
                            if media.try_play(*f) {
                                next_frame += 1;
                            }
                        } else {
                            stopped_at = Instant::now();
                            step = Step::AwaitReply;
                        }
                    }
                }
            }
        }
    }
    if remote_ended.is_none() {
        let _ = sip.hangup(call).await;
        // The BYE's answer, bounded.
        let wait = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = events.recv().await {
                match ev {
                    Event::Ended { call: c, reason } if c == call => {
                        return end_words(reason).to_owned();
                    }
                    Event::Failed { call: c, outcome } if c == call => {
                        return format!("the call failed: {}", outcome_words(outcome));
                    }
                    _ => {}
                }
            }
            "caller's SIP stack stopped".to_owned()
        });
        report.ended = wait
            .await
            .unwrap_or_else(|_| "no answer to the caller's BYE".to_owned());
    } else {
        report.ended = remote_ended.unwrap_or_default();
    }
    media.close().await;
    let what = match step {
        Step::Done => return Ok(report),
        Step::Ringing => "was not answered",
        Step::AwaitGreeting => "was answered but no greeting was heard",
        Step::Greeting => "greeting did not end",
        Step::Speaking => "ended while the caller was speaking",
        Step::AwaitReply | Step::Reply => "got no complete reply",
    };
    Err(CallerError::Incomplete {
        what,
        report: Box::new(report),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_clip_is_a_short_8k_sentence() {
        let frames = clip_frames().unwrap();
        let secs = frames.len() as f64 * 0.02;
        assert!((1.0..4.0).contains(&secs), "{secs} s");
        let loud = frames.iter().filter(|f| rms(&f[..]) > LOUD).count();
        assert!(
            loud * 2 > frames.len(),
            "mostly speech: {loud} of {}",
            frames.len()
        );
    }
}
