//! The per-call task: the media bridge and the executor of the lifecycle
//! machine's actions (issue 6, "Media bridge, per call").
//!
//! One task per call owns the call's media [`transport`] (an RTP socket
//! or a carrier WebSocket: everything below is shared by both), the one
//! model session (opened only by the machine's `OpenModel`, so never
//! twice), the recorder and the [`CallMachine`]. One `select!` loop takes
//! SIP events from the manager's mailbox, media ticks, model events, the
//! model's opening, the machine's next deadline and the call's
//! cancellation token; every event becomes a machine input, and the
//! machine's actions are executed in order. SIP per RFC 3261 (BYE/CANCEL),
//! RFC 3264 section 8.4 (hold), RFC 4733 (DTMF), RFC 3515 (REFER:
//! `send_refer`).
//!
//! What the call knows lives in sans-IO values, each with its own tests,
//! fed the time and polled by this thin driver:
//!
//! | value | owns |
//! |---|---|
//! | [`CallMachine`] | the call's life, its timers (RTP inactivity among them) and its end reason |
//! | `caller::CallerAudio` | what each tick of caller audio means: media arrived (once a second), first audio, speech, sustained speech (barge-in) |
//! | `playback::Playback` | the playback queue ([`audio`]), the position of the reply playing, the rest of an interrupted reply dropped |
//! | `link::ModelLink` | the model connection as the call sees it (opening, connected, resuming, over) and what to tell it |
//! | `transcript::Transcript` | the turns of the conversation, in order, with start and end times |
//! | `amd_gate::AmdGate` | answering-machine detection (outbound calls that ask for it): the model's audio held until a verdict, the machine policy |
//!
//! The driver's own modules: `exec` (the machine's actions and the
//! store), `media` (ticks and the recording), `model` (the model
//! session's opening, events and close), `detect` (the detection's
//! verdicts carried out).

mod amd_gate;
pub mod audio;
mod caller;
mod control;
mod detect;
mod dial;
mod exec;
pub mod fallback;
mod link;
mod media;
mod model;
pub(crate) mod msg;
mod playback;
mod publish;
pub(crate) mod tools;
mod transcript;
pub mod transport;
mod usage;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use callbridge_crm_store::{NewEvent, NewSession, SessionId, SessionUpdate};
use callbridge_llm_bridge::{
    BoxFuture, CallMetadata, Error as ModelError, ModelEvent, ModelSession, SessionConfig,
};
use callbridge_rtp::recorder::CallRecorder;
use callbridge_sip::sdp::LocalMedia;
use callbridge_sip::ua::{CallRef, Event as SipEvent, Originate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::gauges::GaugeGuard;
use crate::lifecycle::{CallMachine, Command, Direction, EndReason, Input};
use crate::manager::Shared;
use crate::metrics::call::CallMetrics;
use crate::store_writer::StoreOp;
use audio::{Downlink, Uplink};
use caller::CallerAudio;
use link::ModelLink;
pub use msg::{CallMsg, Control, ControlError};
use playback::Playback;
use transcript::Transcript;
use transport::{Transport, TransportEvent};

/// An outbound call's INVITE and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The INVITE (its `target` is used when `located` is `None`).
    pub spec: Originate,
    /// The targets an RFC 3263 location of this domain found, in order
    /// (empty: none, and the call fails unreachable).
    pub located: Option<(Vec<callbridge_sip::locate::Target>, String)>,
}

/// Everything a call task starts with.
pub(crate) struct CallSpec {
    pub id: SessionId,
    pub direction: Direction,
    pub call: Option<CallRef>,
    pub sip_call_id: Option<String>,
    /// The session row the call writes at the machine's
    /// `WriteStoreState{Created}`; `None` when the manager already wrote it
    /// (outbound: before `originate` returns).
    pub row: Option<NewSession>,
    pub transport: Transport,
    pub stream_guard: GaugeGuard,
    pub local_media: LocalMedia,
    /// Inbound: our SDP answer to the INVITE's offer, or our offer when
    /// the INVITE had none (delayed offer: the answer comes in the ACK).
    pub answer_sdp: Option<Bytes>,
    /// Outbound: the INVITE to send at `SendInvite`.
    pub originate: Option<Outgoing>,
    pub model_config: SessionConfig,
    pub metadata: CallMetadata,
    pub mailbox: mpsc::Receiver<CallMsg>,
    pub token: CancellationToken,
    /// Answering-machine detection (outbound; `ManagerConfig::amd`).
    pub amd: bool,
    /// The call's event publisher (`crate::events`).
    pub events: crate::events::Publisher,
    /// The routing profile the call took: its transfer targets, longest
    /// call and recording (the model settings are in `model_config`).
    pub profile: Arc<crate::profile::Profile>,
    /// What the call's tools need (its description, its own mailbox).
    pub tools: tools::ToolsCtx,
}

/// What the call leaves behind for the manager.
#[derive(Debug, Default)]
pub(crate) struct CallReport {
    pub reason: Option<EndReason>,
    pub transcript: Vec<callbridge_llm_bridge::summary::TranscriptLine>,
    /// The call's publisher, for the events after the call (the summary).
    pub events: Option<crate::events::Publisher>,
}

type Opening = BoxFuture<'static, Result<ModelSession, ModelError>>;

/// The SIP side of a call: its dialog, and what its SDP exchanges need.
struct SipLeg {
    call: Option<CallRef>,
    call_id: Option<String>,
    local_media: LocalMedia,
    /// Inbound: our SDP answer to the INVITE's offer.
    answer_sdp: Option<Bytes>,
    /// Outbound: the INVITE to send at `SendInvite`.
    originate: Option<Outgoing>,
    /// The SDP we last sent (offer or answer): what an answer from the
    /// peer (in its 2xx, or in the ACK of our offering 2xx) answers.
    local_sdp: Option<Bytes>,
}

/// The call's recording, while it is written.
#[derive(Default)]
struct Recording {
    recorder: Option<CallRecorder>,
    path: Option<PathBuf>,
}

/// The state of one running call (see the module docs).
pub(crate) struct Call {
    shared: Arc<Shared>,
    id: SessionId,
    sip: SipLeg,
    row: Option<NewSession>,
    machine: CallMachine,
    inputs: VecDeque<Input>,
    stream: Option<Transport>,
    stream_guard: Option<GaugeGuard>,
    model_config: Option<SessionConfig>,
    metadata: CallMetadata,
    opening: Option<Opening>,
    model: Option<ModelSession>,
    model_guard: Option<GaugeGuard>,
    link: ModelLink,
    uplink: Option<Uplink>,
    playback: Playback,
    caller: CallerAudio,
    recording: Recording,
    ticks: u64,
    transcript: Transcript,
    pending_events: Vec<NewEvent>,
    /// Which reply the frames sent belong to (for the latency recorder).
    replies: crate::metrics::call::ReplyCounter,
    /// What this call adds to the manager's metrics (see `crate::metrics`).
    metrics: CallMetrics,
    /// The phase last published to the registry.
    published: Option<crate::lifecycle::Phase>,
    /// When the call task started and when the call was answered: the
    /// end line's duration and talk time.
    started: Instant,
    answered_at: Option<Instant>,
    closed: bool,
    /// Answering-machine detection, when the call asked for it.
    amd: Option<amd_gate::AmdGate>,
    /// The model's audio held until the detection's verdict.
    held: detect::Held,
    /// The call's events (`crate::events`) and the webhook outbox rows
    /// not yet handed to the store writer.
    events: crate::events::Publisher,
    pending_outbox: Vec<callbridge_crm_store::NewOutbox>,
    /// The mixed audio for listeners (`Control::Listen`), once one asked.
    listen: Option<tokio::sync::broadcast::Sender<Bytes>>,
    /// The routing profile the call took.
    profile: Arc<crate::profile::Profile>,
    /// Its HTTP tools and `collect_digits` in progress.
    tools: tools::Tools,
    /// The model's usage reports (issue 22).
    usage: usage::CallUsage,
}

/// Runs one call to its end. The span carries the session id and Call-ID
/// (never phone numbers); the call's first line says who calls whom
/// (numbers masked) over what, its last why it ended (`exec`).
pub(crate) async fn run_call(shared: Arc<Shared>, spec: CallSpec) -> CallReport {
    let span = info_span!(
        "call",
        session = %spec.id,
        call_id = spec.sip_call_id.as_deref().unwrap_or("-"),
        direction = spec.direction.as_str(),
    );
    span.in_scope(|| {
        let m = &spec.metadata;
        info!(
            direction = spec.direction.as_str(),
            transport = spec.transport.label(),
            session = %spec.id,
            call_id = spec.sip_call_id.as_deref(),
            from = m.caller.as_ref().map(tracing::field::display),
            to = m.callee.as_ref().map(tracing::field::display),
            "call started"
        );
    });
    run(shared, spec).instrument(span).await
}

async fn run(shared: Arc<Shared>, spec: CallSpec) -> CallReport {
    let CallSpec {
        id,
        direction,
        call,
        sip_call_id,
        row,
        transport,
        stream_guard,
        local_media,
        answer_sdp,
        originate,
        model_config,
        metadata,
        mut mailbox,
        token,
        amd,
        events,
        profile,
        tools,
    } = spec;
    let mut machine_cfg = shared.cfg.machine.clone();
    machine_cfg.max_duration = profile.max_duration;
    // An outbound call with a greeting (the profile's, or the request's
    // `greeting`) is agent-first: the model greets once the callee answers.
    // Without one the callee speaks first ("hello?").
    if direction == Direction::Outbound
        && matches!(
            model_config.greeting,
            callbridge_llm_bridge::Greeting::OnRequest { .. }
        )
    {
        machine_cfg.outbound_first_speaker = crate::lifecycle::FirstSpeaker::Agent;
    }
    let out_rate = match model_config.output_format {
        callbridge_llm_bridge::AudioFormat::Pcm16 { rate } => rate.hz(),
        _ => 8000,
    };
    let downlink = match Downlink::new(out_rate) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "unsupported model output rate; using 24 kHz");
            match Downlink::new(24_000) {
                Ok(d) => d,
                Err(_) => return CallReport::default(),
            }
        }
    };
    let metrics = CallMetrics::new(Arc::clone(&shared.metrics));
    let caller = CallerAudio::new(shared.cfg.barge_in_after);
    let amd = if amd {
        match amd_gate::AmdGate::new(&shared.cfg.amd) {
            Ok(g) => Some(g),
            Err(e) => {
                warn!(error = %e, "answering-machine detection not started");
                None
            }
        }
    } else {
        None
    };
    let mut c = Call {
        shared,
        id,
        sip: SipLeg {
            call,
            call_id: sip_call_id,
            local_media,
            local_sdp: answer_sdp
                .clone()
                .or_else(|| originate.as_ref().map(|o| o.spec.offer.clone())),
            answer_sdp,
            originate,
        },
        row,
        machine: CallMachine::new(direction, machine_cfg),
        inputs: VecDeque::with_capacity(8),
        stream: Some(transport),
        stream_guard: Some(stream_guard),
        model_config: Some(model_config),
        metadata,
        opening: None,
        model: None,
        model_guard: None,
        link: ModelLink::new(),
        uplink: None,
        playback: Playback::new(downlink),
        caller,
        recording: Recording::default(),
        ticks: 0,
        transcript: Transcript::new(now()),
        pending_events: Vec::new(),
        replies: Default::default(),
        metrics,
        published: None,
        started: now(),
        answered_at: None,
        closed: false,
        amd,
        held: detect::Held::default(),
        events,
        pending_outbox: Vec::new(),
        listen: None,
        profile,
        tools: tools::Tools::new(tools),
        usage: usage::CallUsage::default(),
    };
    c.publish(crate::events::CallEvent::Started {
        direction: direction.as_str(),
        transport: c.stream.as_ref().map_or("sip", Transport::label),
    });
    c.open_recorder();
    // A row the machine's first action writes carries the recording; a row
    // the manager wrote before the call task started (every SIP and
    // carrier call: the row comes before the answer) gets it by update.
    match c.row.as_mut() {
        Some(row) => row.recording.clone_from(&c.recording.path),
        None => c.link_recording().await,
    }
    if let Some(Transport::Carrier(m)) = &c.stream {
        let carrier = m.carrier().as_str();
        c.event(
            callbridge_crm_store::EventKind::Note,
            serde_json::json!({ "carrier": carrier }),
        );
    }
    c.inputs.push_back(match direction {
        Direction::Inbound => Input::Sip(crate::lifecycle::SipInput::Invite),
        Direction::Outbound => Input::Command(Command::Dial),
    });
    let mut cancelled = false;
    // The cancellation wait and the machine's timer live across the
    // loop's turns: made anew each turn (a tick or more per call every
    // 20 ms), the wait took the token's lock to register and again to
    // drop (3.4 % of the agent's CPU at 200 calls in `is_cancelled` and
    // `drop_notified`, perf, 2026-12-06), and the timer went in and out
    // of the timer wheel (not measured apart).
    let cancel = token.cancelled();
    tokio::pin!(cancel);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        c.pump().await;
        if c.closed {
            break;
        }
        let deadline = c.machine.poll_timeout();
        if deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(tokio::time::Instant::from_std(at));
            }
            armed = deadline;
        }
        // In a fixed order (`biased`): tokio's random start costs a
        // thread-local RNG draw per turn (1.3 % of the agent's CPU at
        // 1,000 calls, perf, 2026-12-06). Nothing starves: the media and
        // model branches are fed at their peers' pace through bounded
        // queues, so each drains and the later branches get their turn;
        // the mailbox comes after them so a flood of SIP requests for
        // this call cannot hold the call's audio back.
        tokio::select! {
            biased;
            () = &mut cancel, if !cancelled => {
                cancelled = true;
                c.inputs.push_back(Input::Command(Command::ShutdownNow));
            }
            ev = media_next(&mut c.stream) => c.on_media(ev),
            ev = model_next(&mut c.model, c.link.reads_events()) => c.on_model(ev).await,
            msg = mailbox.recv() => match msg {
                Some(CallMsg::Sip(ev)) => c.on_sip(ev).await,
                Some(CallMsg::Command(cmd)) => c.inputs.push_back(Input::Command(cmd)),
                Some(CallMsg::Note(detail)) => c.event(callbridge_crm_store::EventKind::Note, detail),
                Some(CallMsg::Control(ctl)) => c.on_control(ctl).await,
                Some(CallMsg::Tool(t)) => c.on_tool_msg(t).await,
                None => c.inputs.push_back(Input::Command(Command::ShutdownNow)),
            },
            r = opening_next(&mut c.opening) => c.on_opened(r),
            () = &mut timer, if armed.is_some() => c.machine.handle_timeout(now()),
        }
    }
    // The call is over: the router must not wait for room in a mailbox
    // nobody reads any more.
    mailbox.close();
    c.write_amd_row().await;
    c.flush_store().await;
    CallReport {
        reason: c.machine.end_reason(),
        transcript: c.transcript.take_lines(),
        events: Some(c.events),
    }
}

async fn media_next(stream: &mut Option<Transport>) -> Option<TransportEvent> {
    match stream {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn model_next(model: &mut Option<ModelSession>, reads: bool) -> Option<ModelEvent> {
    match model {
        Some(m) if reads => m.next_event().await,
        _ => std::future::pending().await,
    }
}

async fn opening_next(opening: &mut Option<Opening>) -> Result<ModelSession, ModelError> {
    match opening {
        Some(f) => {
            let r = f.await;
            *opening = None;
            r
        }
        None => std::future::pending().await,
    }
}

/// The clock the machine is fed (tokio's, so tests may pause it).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Blind transfer (RFC 3515 REFER, RFC 5589 section 6): sends the REFER
/// in the call's dialog. `Ok` only means it was sent; the outcome comes
/// back as `TransferAccepted` / `TransferFailed` SIP events in the call's
/// mailbox. A target that is not a URI (a bare number) is sent as a
/// `tel:` URI (RFC 3966).
pub(crate) async fn send_refer(
    sip: &callbridge_sip::driver::Handle,
    call: CallRef,
    target: &crate::lifecycle::TransferTarget,
) -> Result<(), &'static str> {
    let raw = target.expose();
    let uri = callbridge_sip::Uri::parse(&Bytes::copy_from_slice(raw.as_bytes()))
        .or_else(|_| callbridge_sip::Uri::parse(&Bytes::from(format!("tel:{raw}"))))
        .map_err(|_| "transfer target is not a URI")?;
    sip.refer(call, uri).await.map_err(|e| {
        warn!(error = %e, "REFER could not be sent");
        "REFER could not be sent"
    })
}

impl Call {
    /// Feeds queued inputs and executes the machine's actions until both
    /// are empty.
    async fn pump(&mut self) {
        loop {
            self.leave_voicemail_prompt().await;
            self.write_amd_row().await;
            if let Some(input) = self.inputs.pop_front() {
                self.machine.handle_input(now(), input);
            }
            let mut any = false;
            while let Some(action) = self.machine.poll_action() {
                any = true;
                self.execute(action).await;
            }
            self.tell_model();
            self.publish_phase();
            self.publish_turns();
            if self.inputs.is_empty() && !any {
                return;
            }
        }
    }

    /// Publishes the machine's phase to the registry when it changed (the
    /// registry is shared by every call: no lock per media tick).
    fn publish_phase(&mut self) {
        let phase = self.machine.phase();
        if self.published != Some(phase) {
            self.published = Some(phase);
            self.shared.set_phase(self.id, phase);
            self.publish(crate::events::CallEvent::State {
                state: phase.as_str(),
            });
        }
    }

    fn open_recorder(&mut self) {
        let Some(dir) = &self.shared.cfg.recordings_dir else {
            return;
        };
        if !self.profile.record {
            return;
        }
        let path = dir.join(format!("{}.wav", self.id));
        match CallRecorder::create(&path, self.shared.cfg.file_access) {
            Ok(r) => {
                self.recording.recorder = Some(r);
                self.recording.path = Some(path);
            }
            Err(e) => {
                warn!(error = %e, "recording could not start");
                let why = if e.is_disk_full() {
                    "disk full"
                } else {
                    "error"
                };
                self.event(
                    callbridge_crm_store::EventKind::Recording,
                    serde_json::json!({ "not_started": why, "error": e.to_string() }),
                );
            }
        }
    }

    /// Links the recording to an outbound call's row (written before the
    /// call task started), so a process killed mid-call leaves the file
    /// linked; the size is brought up to date when the recording ends.
    pub(super) async fn link_recording(&mut self) {
        if let Some(path) = self.recording.path.clone() {
            let u = SessionUpdate {
                recording: Some((path, 0)),
                ..Default::default()
            };
            self.shared
                .store
                .send(StoreOp::Update(self.id, Box::new(u)))
                .await;
        }
    }

    /// Records why an outbound call failed on a 401/407: the end row
    /// then says `rejected` with SIP status 401, and this event says it
    /// was the credentials (the SIP core answers each challenge at most
    /// as often as RFC 3261 section 22 needs, so there is no retry loop).
    fn auth_failed(&mut self) {
        warn!(
            "outbound INVITE challenged (401/407) and not authorized: \
             the trunk refused our credentials, or none are configured for this target"
        );
        self.event(
            callbridge_crm_store::EventKind::Sip,
            serde_json::json!({
                "auth_failed": "the INVITE was challenged (401/407) and our digest \
                    credentials were refused, or none are configured for this target"
            }),
        );
    }

    async fn on_sip(&mut self, ev: SipEvent) {
        use crate::lifecycle::SipInput as S;
        use callbridge_sip::ua::Outcome;
        let input = match ev {
            SipEvent::Confirmed { .. } => S::Ack,
            SipEvent::Progress { status, .. } => S::Provisional {
                code: status.as_u16(),
            },
            SipEvent::FailedOver { target, .. } => {
                // The signalling peer moved: a latch keyed to its IP
                // (`rtp.latch = "signalling-ip"`) follows.
                info!(%target, "outbound INVITE failed over; latch follows the new signalling IP");
                if let Some(s) = self.stream.as_ref().and_then(Transport::rtp) {
                    s.set_signalling_ip(Some(target.ip()));
                }
                return;
            }
            SipEvent::Answered { answer, .. } => {
                self.apply_answer(&answer);
                S::Answered
            }
            SipEvent::Failed { outcome, .. } => S::Failed {
                code: match outcome {
                    Outcome::AuthFailed => {
                        self.auth_failed();
                        401
                    }
                    Outcome::Busy => 486,
                    Outcome::NoAnswer | Outcome::Unreachable => 408,
                    Outcome::Rejected => 603,
                    Outcome::Unavailable => 503,
                    Outcome::Cancelled => 487,
                    Outcome::Failed(s) => s.as_u16(),
                    _ => 500,
                },
            },
            SipEvent::AnswerInAck { answer, .. } => {
                // The ACK answered the offer of our 2xx (delayed offer, or
                // an offerless re-INVITE): media goes where it says.
                self.apply_answer(&answer);
                return;
            }
            SipEvent::Ended { reason, .. } => match self.sip_end_input(reason) {
                Some(input) => input,
                None => {
                    debug!(reason = %crate::log_name::Variant(&reason), "SIP dialog ended");
                    return;
                }
            },
            SipEvent::Reinvite { offer, hold, .. } => {
                self.answer_reinvite(&offer).await;
                if hold { S::Hold } else { S::Resume }
            }
            SipEvent::Dtmf { digit, .. } => match crate::lifecycle::DtmfDigit::new(digit) {
                Some(d) => S::Dtmf(d),
                None => return,
            },
            SipEvent::TransferAccepted { .. } => S::ReferAccepted,
            SipEvent::TransferFailed { status, .. } => S::ReferFailed {
                code: Some(status.as_u16()),
            },
            other => {
                debug!(event = %crate::log_name::Variant(&other), "SIP event ignored");
                return;
            }
        };
        self.inputs.push_back(Input::Sip(input));
    }

    /// The machine input for the SIP dialog's end; the ends the store has
    /// no reason of their own for are logged and recorded as an event.
    fn sip_end_input(
        &mut self,
        reason: callbridge_sip::ua::EndReason,
    ) -> Option<crate::lifecycle::SipInput> {
        use callbridge_sip::ua::EndReason as R;
        let why = match reason {
            R::BadAnswerInAck => Some((
                "bad_answer_in_ack",
                "our 200 OK offered SDP (the INVITE had none) and the ACK brought \
                 no usable answer; the agent sent BYE (RFC 3261 section 13.3.1.4)",
            )),
            R::SessionExpired => Some((
                "session_expired",
                "the session timer ran out: the peer did not refresh the session in \
                 time, or our refreshes failed; the agent sent BYE (RFC 4028 section 10)",
            )),
            _ => None,
        };
        if let Some((key, text)) = why {
            warn!(reason = key, "{text}");
            self.event(
                callbridge_crm_store::EventKind::Sip,
                serde_json::json!({ key: text }),
            );
        }
        crate::end_reason::sip_input(reason)
    }

    fn apply_answer(&mut self, answer: &Bytes) {
        let Some(ours) = &self.sip.local_sdp else {
            return;
        };
        let offer = callbridge_sip::sdp::Session::parse(ours);
        let ans = callbridge_sip::sdp::Session::parse(answer);
        match (offer, ans) {
            (Ok(o), Ok(a)) => match callbridge_sip::sdp::process_answer(&o, &a) {
                Ok(n) => {
                    if n.codec != callbridge_sip::sdp::Codec::Pcmu {
                        // The stream was opened for our first codec; it
                        // cannot switch law once open.
                        warn!(
                            codec = ?n.codec,
                            "the answer chose a codec other than our first (PCMU); \
                             the stream keeps PCMU"
                        );
                    }
                    if let Some(r) = n.remote_rtp
                        && !self.shared.cfg.sip.filter.allows(r.ip())
                    {
                        warn!(
                            remote = %r,
                            "the answer's media address is outside sip.allowed_peers: nothing is \
                             sent there; media waits for a source rtp.latch allows"
                        );
                    }
                    if let Some(s) = self.stream.as_ref().and_then(Transport::rtp) {
                        // The keys before the address: no packet leaves
                        // before it can be protected.
                        if let Some(keys) = n.srtp.as_ref().and_then(crate::srtp::media_keys) {
                            info!(suite = ?keys.suite(), "SRTP negotiated");
                            s.set_srtp(keys);
                        }
                        s.set_remote(n.remote_rtp);
                    }
                }
                Err(e) => warn!(error = %e, "SDP answer not usable"),
            },
            _ => warn!("SDP answer unparsable"),
        }
    }

    async fn answer_reinvite(&mut self, offer: &Bytes) {
        let Some(call) = self.sip.call else { return };
        let parsed = callbridge_sip::sdp::Session::parse(offer);
        let sip = self.shared.sip.clone();
        // RFC 3264 section 8: the o= version grows only when our SDP
        // changes; an answer like the last one keeps it.
        let last = self.sip.local_sdp.as_deref();
        let local = &mut self.sip.local_media;
        let answered = parsed.and_then(|o| callbridge_sip::sdp::answer_again(&o, local, last));
        match answered {
            Ok((answer, n)) => {
                if let Some(s) = self.stream.as_ref().and_then(Transport::rtp)
                    && let Some(keys) = n.srtp.as_ref().and_then(crate::srtp::media_keys)
                {
                    // A re-offer with new keys re-keys the media; the
                    // same keys change nothing.
                    s.set_srtp(keys);
                }
                if let (Some(s), Some(r)) =
                    (self.stream.as_ref().and_then(Transport::rtp), n.remote_rtp)
                {
                    s.set_remote(Some(r));
                }
                let sdp = answer.to_bytes();
                self.sip.local_sdp = Some(sdp.clone());
                if let Err(e) = sip.answer(call, sdp).await {
                    warn!(error = %e, "re-INVITE answer failed");
                }
            }
            Err(e) => {
                let status = e.status();
                if let Err(e) = sip.reject(call, status).await {
                    warn!(error = %e, "re-INVITE rejection failed");
                }
            }
        }
    }
}
