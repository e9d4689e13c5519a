//! What the lifecycle machine asks its driver to do, drained with
//! [`CallMachine::poll_action`](crate::lifecycle::CallMachine::poll_action)
//! in order. The machine never does IO itself.

use std::time::Duration;

use super::input::{DtmfDigit, TransferTarget};
use super::state::EndReason;

/// One action for the session manager to execute, in the order polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Outbound: send the INVITE (with our SDP offer).
    SendInvite,
    /// Inbound: send 180 Ringing.
    SendRinging,
    /// Inbound: send 200 OK with our SDP answer.
    Answer,
    /// Inbound: answer the INVITE with a final error.
    Reject {
        /// The status code (487 after CANCEL, 503 for overload, model
        /// failure or shutdown, 603 for an operator hangup).
        code: u16,
        /// The Retry-After value to send, if any.
        retry_after: Option<Duration>,
    },
    /// Send BYE on the confirmed dialog. Emitted at most once, and never
    /// after the peer's BYE.
    SendBye,
    /// Outbound: CANCEL the pending INVITE.
    SendCancel,
    /// Blind transfer: send REFER with Refer-To `target` (RFC 3515).
    Refer {
        /// Where to.
        target: TransferTarget,
    },
    /// A `transfer_call` request did not succeed (REFER failed or timed
    /// out, or the call could not transfer now); the call goes on. The
    /// manager answers the model's tool call with a failure.
    TransferFailed {
        /// The requested target.
        target: TransferTarget,
    },
    /// Open the call's one model session. Emitted at most once per call.
    OpenModel,
    /// Ask the model to speak its greeting.
    StartGreeting,
    /// Send a caller's DTMF key to the model as text.
    SendDtmfToModel {
        /// The key.
        digit: DtmfDigit,
    },
    /// Barge-in: empty the playback queue now (the next tick is silence).
    ClearPlayback,
    /// Barge-in: tell the model how much of its interrupted reply was
    /// actually played to the caller.
    ReportPlayedToModel,
    /// A barge-in the call detected itself (sustained caller speech over
    /// the reply): tell the model to stop its reply and cut it where the
    /// caller stopped hearing it, and drop the rest of it should it still
    /// arrive. Follows `ClearPlayback`, in place of `ReportPlayedToModel`
    /// (the interrupt carries the position).
    InterruptModel,
    /// Queue the configured fallback announcement (or nothing) because the
    /// model failed; the machine then waits for
    /// [`MediaInput::PlaybackDrained`](crate::lifecycle::MediaInput::PlaybackDrained),
    /// bounded by [`Timer::Drain`](crate::lifecycle::Timer::Drain), before BYE.
    PlayFallback,
    /// Hold: stop sending caller audio to the model.
    PauseCallerAudio,
    /// Un-hold: send caller audio to the model again.
    ResumeCallerAudio,
    /// Close the model session (close handshake; then join its task). Emitted
    /// exactly once if `OpenModel` was.
    CloseModel,
    /// Stop the media stream and release its socket. Exactly once per call.
    StopMedia,
    /// Finalize the recording. Exactly once per call.
    FinalizeRecording,
    /// Write the session's live state to the store.
    WriteStoreState {
        /// The state.
        state: StoreState,
    },
    /// Write the session's end to the store. Exactly once per call.
    WriteStoreEnd {
        /// The one end reason: the first cause that happened.
        reason: EndReason,
        /// `ended` or `failed`.
        outcome: EndOutcome,
        /// The INVITE's final status code, sent or received, if any.
        sip_status: Option<u16>,
    },
    /// Record a metric.
    EmitMetric(Metric),
    /// The call is over: join its tasks and remove the registry entry. The
    /// last action; nothing follows it.
    Closed,
}

/// A session's live state as the store names it (`created`, `ringing`,
/// `answered`, `active`); the names match the crm-store `SessionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreState {
    /// Row written, nothing signalled yet.
    Created,
    /// INVITE sent or received, not answered.
    Ringing,
    /// 200 OK exchanged.
    Answered,
    /// Media and model are flowing.
    Active,
}

/// The terminal store state of a session (crm-store `SessionState::Ended`
/// or `Failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndOutcome {
    /// The call connected and ended normally.
    Ended,
    /// The call never connected, or it broke (model failure, RTP timeout,
    /// internal error).
    Failed,
}

/// Metrics the machine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// From INVITE (inbound) or dial (outbound) to the answer.
    AnsweredAfter(Duration),
    /// From `OpenModel` to the model's ready event.
    ModelReadyAfter(Duration),
    /// A barge-in cleared a reply that was playing (the call stores one
    /// barge-in event for it).
    BargeIn {
        /// The call detected it (sustained caller speech), not the model.
        local: bool,
    },
    /// The model server announced it will go away.
    ModelGoingAway,
    /// The model reported a non-fatal error.
    ModelError,
    /// The model owed a reply and sent nothing within
    /// `Config::model_reply_timeout` (the call ends as a model failure).
    ModelReplyTimeout(Duration),
    /// A transfer failed or timed out.
    TransferFailed,
    /// From the answer to the end of the call (answered calls only).
    CallDuration(Duration),
}

impl Metric {
    /// The metric's name and its duration in ms, if it has one (the
    /// logs' typed fields).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::AnsweredAfter(_) => "answered-after",
            Metric::ModelReadyAfter(_) => "model-ready-after",
            Metric::BargeIn { local: true } => "barge-in-local",
            Metric::BargeIn { local: false } => "barge-in",
            Metric::ModelGoingAway => "model-going-away",
            Metric::ModelError => "model-error",
            Metric::ModelReplyTimeout(_) => "model-reply-timeout",
            Metric::TransferFailed => "transfer-failed",
            Metric::CallDuration(_) => "call-duration",
        }
    }

    /// The duration the metric carries, in ms.
    pub fn millis(&self) -> Option<u64> {
        match self {
            Metric::AnsweredAfter(d)
            | Metric::ModelReadyAfter(d)
            | Metric::ModelReplyTimeout(d)
            | Metric::CallDuration(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            _ => None,
        }
    }
}
