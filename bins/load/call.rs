//! One inbound call from the load tool's caller: INVITE (with Timer A
//! retransmission), ACK, the media script on its own 20 ms clock for the
//! hold time, then BYE; or one of the caller-side faults (vanish without
//! BYE, duplicate BYE, CANCEL while ringing, a lossy reordering relay).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use callbridge_sip::Method;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use crate::media::{Audio, MediaResult, Plan, Script};
use crate::relay::Relay;
use crate::rxstamp;
use crate::uac::{self, Dialog, Incoming};

/// RFC 3261 T1.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2 (retransmission cap).
const T2: Duration = Duration::from_secs(4);
/// Timer B / F: give a transaction up.
const TIMER_B: Duration = Duration::from_secs(32);

/// What the caller does to this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Talks, holds, hangs up.
    Normal,
    /// Stops sending RTP and answering SIP halfway through the hold.
    Vanish,
    /// Sends its BYE twice, then a third with a new CSeq after the 200.
    DupBye,
    /// Sends CANCEL on the first provisional response.
    Cancel,
    /// Media through a relay with 5% loss and 5% reordering both ways.
    Lossy,
}

/// How the call ended, as the caller saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Held for the whole time and hung up; BYE answered 200.
    Completed,
    /// The agent sent BYE before the hold time was over.
    EndedByAgent,
    /// A final error response to the INVITE.
    Rejected(u16),
    /// CANCEL took effect (487).
    Cancelled,
    /// CANCEL was sent but the 200 OK had already won the race (then BYE).
    CancelTooLate,
    /// No final response to the INVITE within Timer B.
    NoAnswer,
    /// Vanished on purpose (no BYE).
    Vanished,
    /// Our BYE got no final response.
    ByeUnanswered,
    /// The tool itself failed (socket error, bad SDP answer).
    ToolError(String),
}

/// What every call shares.
#[derive(Debug)]
pub struct Shared {
    /// The agent's SIP address.
    pub agent: SocketAddr,
    /// Talk time from the answer to our BYE.
    pub hold: Duration,
    /// Which parts of the conversation to play.
    pub plan: Plan,
    /// Speech frames and the µ-law table.
    pub audio: Arc<Audio>,
    /// Run id (in Call-IDs).
    pub run: u64,
    /// Calls answered and not yet hung up (the sampler's steady window:
    /// every call of the run talking at once).
    pub talking: AtomicUsize,
}

/// Counts a call in [`Shared::talking`] from its answer until dropped
/// (also when the media loop fails).
struct Talking<'a>(&'a AtomicUsize);

impl<'a> Talking<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Talking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One call's figures.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// Call number in the run.
    pub index: u64,
    /// What the caller did.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
    /// INVITE sent to 200 OK received.
    pub setup: Option<Duration>,
    /// Answer to the end of media.
    pub talk: Duration,
    /// Media figures.
    pub media: MediaResult,
    /// Final statuses of our BYEs, in order.
    pub bye_statuses: Vec<u16>,
    /// The call's SIP Call-ID.
    pub call_id: String,
}

impl CallResult {
    fn new(index: u64, kind: Kind) -> CallResult {
        CallResult {
            index,
            kind,
            outcome: Outcome::NoAnswer,
            setup: None,
            talk: Duration::ZERO,
            media: MediaResult::default(),
            bye_statuses: Vec::new(),
            call_id: String::new(),
        }
    }
}

/// Runs one call to its end.
pub async fn run(shared: Arc<Shared>, index: u64, kind: Kind) -> CallResult {
    let mut res = CallResult::new(index, kind);
    if let Err(e) = run_inner(&shared, &mut res).await {
        res.outcome = Outcome::ToolError(e.to_string());
    }
    res
}

async fn run_inner(shared: &Shared, res: &mut CallResult) -> std::io::Result<()> {
    let sip = UdpSocket::bind("127.0.0.1:0").await?;
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    rxstamp::enable(&rtp)?;
    let relay = if res.kind == Kind::Lossy {
        Some(Relay::start(rtp.local_addr()?, res.index.wrapping_mul(0x9e37) + 1).await?)
    } else {
        None
    };
    let offer_port = relay
        .as_ref()
        .map_or(rtp.local_addr()?.port(), |r| r.addr.port());
    let mut d = Dialog::new(sip.local_addr()?, shared.agent, shared.run, res.index);
    res.call_id.clone_from(&d.call_id);
    let Some((agent_rtp, cancelled)) = invite(&sip, &mut d, offer_port, res).await? else {
        return Ok(());
    };
    if cancelled {
        res.outcome = Outcome::CancelTooLate;
        bye(&sip, &mut d, res, false).await?;
        return Ok(());
    }
    let dest = match &relay {
        Some(r) => {
            let _ = r.agent.send(Some(agent_rtp));
            r.addr
        }
        None => agent_rtp,
    };
    let answered = Instant::now();
    let talking = Talking::start(&shared.talking);
    let seq0 = (res.index as u16).wrapping_mul(7919);
    let mut script = Script::new(shared.audio.clone(), shared.plan, answered, seq0);
    let ended_by_agent = media(shared, &sip, &rtp, dest, &mut script, &mut d, res.kind).await?;
    res.talk = answered.elapsed();
    drop(talking);
    res.media = std::mem::take(&mut script.result);
    if ended_by_agent {
        res.outcome = Outcome::EndedByAgent;
        return Ok(());
    }
    if res.kind == Kind::Vanish {
        res.outcome = Outcome::Vanished;
        return Ok(());
    }
    res.outcome = Outcome::Completed;
    bye(&sip, &mut d, res, res.kind == Kind::DupBye).await
}

/// Sends the INVITE and waits for its final response. `Some((rtp, true))`
/// when a CANCEL was sent but the call was answered anyway.
async fn invite(
    sip: &UdpSocket,
    d: &mut Dialog,
    offer_port: u16,
    res: &mut CallResult,
) -> std::io::Result<Option<(SocketAddr, bool)>> {
    let msg = d.invite(&uac::offer(offer_port, res.index));
    let t0 = Instant::now();
    sip.send_to(msg.as_bytes(), d.agent).await?;
    let give_up = t0 + TIMER_B;
    let mut rto = T1;
    let mut next = t0 + rto;
    let mut ringing = false;
    let mut cancel_sent = false;
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = sip.recv_from(&mut buf) => {
                let (n, _) = r?;
                match uac::classify(&buf[..n]) {
                    Incoming::Response { status, method: Method::Invite, to_tag, body, .. } => {
                        if status < 200 {
                            ringing = true;
                            if res.kind == Kind::Cancel && !cancel_sent {
                                sip.send_to(d.cancel().as_bytes(), d.agent).await?;
                                cancel_sent = true;
                            }
                            continue;
                        }
                        d.to_tag = to_tag;
                        if status >= 300 {
                            sip.send_to(d.ack_error().as_bytes(), d.agent).await?;
                            res.outcome = if status == 487 && cancel_sent {
                                Outcome::Cancelled
                            } else {
                                Outcome::Rejected(status)
                            };
                            return Ok(None);
                        }
                        res.setup = Some(t0.elapsed());
                        sip.send_to(d.ack_2xx().as_bytes(), d.agent).await?;
                        let Some(addr) = uac::answer_addr(&body) else {
                            res.outcome = Outcome::ToolError("no RTP address in the SDP answer".into());
                            bye(sip, d, res, false).await?;
                            return Ok(None);
                        };
                        if res.kind == Kind::Cancel && !cancel_sent {
                            // Answered before any provisional response.
                            return Ok(Some((addr, true)));
                        }
                        return Ok(Some((addr, cancel_sent)));
                    }
                    Incoming::Request { reply_ok, .. } => {
                        sip.send_to(reply_ok.as_bytes(), d.agent).await?;
                    }
                    _ => {}
                }
            }
            () = sleep_until(next) => {
                if !ringing {
                    sip.send_to(msg.as_bytes(), d.agent).await?;
                } else if cancel_sent {
                    sip.send_to(d.cancel().as_bytes(), d.agent).await?;
                }
                rto = (rto * 2).min(T2);
                next = Instant::now() + rto;
            }
            () = sleep_until(give_up) => {
                res.outcome = Outcome::NoAnswer;
                return Ok(None);
            }
        }
    }
}

/// The media loop; `true` when the agent hung up first.
async fn media(
    shared: &Shared,
    sip: &UdpSocket,
    rtp: &UdpSocket,
    dest: SocketAddr,
    script: &mut Script,
    d: &mut Dialog,
    kind: Kind,
) -> std::io::Result<bool> {
    let start = Instant::now();
    let end = if kind == Kind::Vanish {
        start + shared.hold / 2
    } else {
        start + shared.hold
    };
    let mut tick = tokio::time::interval_at(start, Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let ssrc = 0x10ad_0000
        ^ d.call_id
            .bytes()
            .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(b));
    let mut out = Vec::with_capacity(200);
    let mut rbuf = vec![0u8; 2048];
    let mut cmsg = rxstamp::cmsg_buffer();
    let mut sbuf = vec![0u8; 4096];
    loop {
        tokio::select! {
            due = tick.tick() => {
                script.on_tick(due, Instant::now(), ssrc, &mut out);
                // A full socket buffer drops the packet, like a network would.
                let _ = rtp.try_send_to(&out, dest);
            }
            r = rxstamp::recv(rtp, &mut rbuf, &mut cmsg) => {
                let r = r?;
                if r.from != Some(dest) {
                    // Not this call's stream: a port the kernel handed this
                    // call was used by an earlier call whose stream the
                    // agent still sends until its RTP timeout (a vanished
                    // caller), or anyone else. Counted, never measured.
                    script.result.stray += 1;
                    continue;
                }
                script.result.unstamped += u64::from(!r.stamped);
                script.on_packet(r.at, &rbuf[..r.len]);
            }
            r = sip.recv_from(&mut sbuf) => {
                let (n, _) = r?;
                match uac::classify(&sbuf[..n]) {
                    Incoming::Request { method, reply_ok } => {
                        sip.send_to(reply_ok.as_bytes(), d.agent).await?;
                        if method == Method::Bye {
                            return Ok(true);
                        }
                    }
                    Incoming::Response { status: 200..=299, method: Method::Invite, .. } => {
                        // The 200 again: our ACK was lost.
                        sip.send_to(d.ack_2xx().as_bytes(), d.agent).await?;
                    }
                    _ => {}
                }
            }
            () = sleep_until(end) => return Ok(false),
        }
    }
}

/// Sends BYE (twice when `duplicate`, then a third with a new CSeq) and
/// records the final statuses.
async fn bye(
    sip: &UdpSocket,
    d: &mut Dialog,
    res: &mut CallResult,
    duplicate: bool,
) -> std::io::Result<()> {
    let first = d.bye();
    if duplicate {
        sip.send_to(first.as_bytes(), d.agent).await?;
    }
    match transact(sip, d, &first).await? {
        Some(s) => res.bye_statuses.push(s),
        None => {
            res.outcome = Outcome::ByeUnanswered;
            return Ok(());
        }
    }
    if duplicate {
        let again = d.bye();
        if let Some(s) = transact(sip, d, &again).await? {
            res.bye_statuses.push(s);
        }
    }
    Ok(())
}

/// Sends a non-INVITE request with Timer E retransmission until its final
/// response (by CSeq number) or Timer F; answers the agent's requests
/// meanwhile (a crossing BYE).
async fn transact(sip: &UdpSocket, d: &Dialog, msg: &str) -> std::io::Result<Option<u16>> {
    let cseq: u32 = msg
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let t0 = Instant::now();
    sip.send_to(msg.as_bytes(), d.agent).await?;
    let mut rto = T1;
    let mut next = t0 + rto;
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = sip.recv_from(&mut buf) => {
                let (n, _) = r?;
                match uac::classify(&buf[..n]) {
                    Incoming::Response { status, cseq: c, .. } if c == cseq && status >= 200 => {
                        return Ok(Some(status));
                    }
                    Incoming::Request { reply_ok, .. } => {
                        sip.send_to(reply_ok.as_bytes(), d.agent).await?;
                    }
                    _ => {}
                }
            }
            () = sleep_until(next) => {
                sip.send_to(msg.as_bytes(), d.agent).await?;
                rto = (rto * 2).min(T2);
                next = Instant::now() + rto;
            }
            () = sleep_until(t0 + TIMER_B) => return Ok(None),
        }
    }
}
