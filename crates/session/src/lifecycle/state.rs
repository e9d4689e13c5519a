//! The states of one call. [`State`] is private: each variant carries only
//! the data that exists in that state and transitions consume the old state
//! (rustls `client/hs.rs` style). [`Phase`] is its public, data-free view.

use std::time::{Duration, Instant};

use super::input::{AmdEnd, TransferTarget};

/// Which side placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer sent us an INVITE.
    Inbound,
    /// We send the INVITE.
    Outbound,
}

impl Direction {
    /// Both directions, in [`Direction::index`] order.
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// `inbound` or `outbound` (the store's and the metrics' label).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Its position in [`Direction::ALL`].
    pub fn index(self) -> usize {
        match self {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        }
    }
}

/// Why a call ended: exactly one per call, the first cause that happened.
/// The one source of truth for a call's end: the SIP dialog's end is an
/// input that leads here, and the store's and the metrics' reason is this
/// one, converted at the crate edge (`crate::end_reason`, a one-to-one
/// exhaustive match onto the crm-store `EndReason`, whose kebab-case names
/// [`EndReason::as_str`] shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller hung up (BYE from the peer).
    CallerHangup,
    /// The agent hung up (the model's `end_call`, or an operator hangup).
    AgentHangup,
    /// Nobody spoke for too long.
    NoSpeechTimeout,
    /// The maximum call duration was reached.
    MaxDuration,
    /// RTP stopped arriving.
    RtpTimeout,
    /// The model connection failed (or never became ready).
    ModelFailure,
    /// The process shut down.
    Shutdown,
    /// The INVITE was answered with a final error.
    Rejected,
    /// The INVITE was cancelled before an answer.
    Cancelled,
    /// The callee was busy (486/600).
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// An internal or protocol error.
    Error,
    /// The call was handed off with a REFER that the peer accepted.
    Transferred,
    /// Our 200 OK to the INVITE was never ACKed (RFC 3261 section
    /// 13.3.1.4): the SIP core gave up after 64*T1 and sent BYE.
    AckTimeout,
    /// Answering-machine detection heard a machine; the policy was to
    /// hang up (issue 19).
    AnsweringMachine,
    /// Answering-machine detection heard a machine and the voicemail
    /// message played to its end (issue 19).
    VoicemailLeft,
    /// Answering-machine detection heard special information tones.
    Unreachable,
}

impl From<AmdEnd> for EndReason {
    /// The end reason of an answering-machine detection's ending.
    fn from(e: AmdEnd) -> EndReason {
        match e {
            AmdEnd::Machine => EndReason::AnsweringMachine,
            AmdEnd::VoicemailLeft => EndReason::VoicemailLeft,
            AmdEnd::NoSpeech => EndReason::NoSpeechTimeout,
            AmdEnd::Unreachable => EndReason::Unreachable,
        }
    }
}

impl EndReason {
    /// Every reason, in [`EndReason::index`] order.
    pub const ALL: [EndReason; 17] = [
        EndReason::CallerHangup,
        EndReason::AgentHangup,
        EndReason::NoSpeechTimeout,
        EndReason::MaxDuration,
        EndReason::RtpTimeout,
        EndReason::ModelFailure,
        EndReason::Shutdown,
        EndReason::Rejected,
        EndReason::Cancelled,
        EndReason::Busy,
        EndReason::NoAnswer,
        EndReason::Error,
        EndReason::Transferred,
        EndReason::AckTimeout,
        EndReason::AnsweringMachine,
        EndReason::VoicemailLeft,
        EndReason::Unreachable,
    ];

    /// Its position in [`EndReason::ALL`] (its declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kebab-case name, the same as the crm-store `EndReason`'s (the
    /// stored name and the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHangup => "caller-hangup",
            EndReason::AgentHangup => "agent-hangup",
            EndReason::NoSpeechTimeout => "no-speech-timeout",
            EndReason::MaxDuration => "max-duration",
            EndReason::RtpTimeout => "rtp-timeout",
            EndReason::ModelFailure => "model-failure",
            EndReason::Shutdown => "shutdown",
            EndReason::Rejected => "rejected",
            EndReason::Cancelled => "cancelled",
            EndReason::Busy => "busy",
            EndReason::NoAnswer => "no-answer",
            EndReason::Error => "error",
            EndReason::Transferred => "transferred",
            EndReason::AckTimeout => "ack-timeout",
            EndReason::AnsweringMachine => "answering-machine",
            EndReason::VoicemailLeft => "voicemail-left",
            EndReason::Unreachable => "unreachable",
        }
    }
}

/// The public, data-free view of the machine's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Built; the call has not started (no INVITE yet / not dialled).
    Created,
    /// Inbound: 180 sent, the model is warming up.
    Ringing,
    /// Outbound: INVITE sent, no final response yet.
    Dialling,
    /// The dialog is confirmed but the model is not ready yet.
    Answered,
    /// The conversation runs.
    Active,
    /// The peer put the call on hold.
    OnHold,
    /// A REFER is outstanding.
    Transferring,
    /// The end reason is fixed; cleanup is in progress.
    Ending,
    /// Everything is released; `Closed` was emitted.
    Closed,
}

impl Phase {
    /// The lower-case name (`ringing`, `on-hold`): the logs' value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Ringing => "ringing",
            Phase::Dialling => "dialling",
            Phase::Answered => "answered",
            Phase::Active => "active",
            Phase::OnHold => "on-hold",
            Phase::Transferring => "transferring",
            Phase::Ending => "ending",
            Phase::Closed => "closed",
        }
    }
}

/// The states of one call.
#[derive(Debug)]
pub(crate) enum State {
    /// Not started.
    Created,
    /// Inbound, before the answer.
    Ringing {
        /// When the INVITE arrived.
        since: Instant,
    },
    /// Outbound, before a final response.
    Dialling {
        /// When the INVITE was sent.
        since: Instant,
    },
    /// Answered; waiting for the model to be ready.
    Answered {
        /// When the dialog was answered.
        at: Instant,
    },
    /// Answered and the model is ready.
    Active {
        /// When the dialog was answered.
        at: Instant,
    },
    /// On hold: caller audio paused, the no-speech timer paused.
    OnHold {
        /// When the dialog was answered.
        at: Instant,
        /// What was left of the no-speech timer when the hold began.
        no_speech_left: Duration,
    },
    /// REFER sent, outcome pending.
    Transferring {
        /// When the dialog was answered.
        at: Instant,
        /// The REFER's target.
        target: TransferTarget,
        /// The peer put us on hold meanwhile (transferees often do before
        /// acting on a REFER): caller audio is paused.
        held: bool,
    },
    /// Cleaning up.
    Ending(Ending),
    /// Done.
    Closed {
        /// The call's end reason.
        reason: EndReason,
    },
}

impl State {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            State::Created => Phase::Created,
            State::Ringing { .. } => Phase::Ringing,
            State::Dialling { .. } => Phase::Dialling,
            State::Answered { .. } => Phase::Answered,
            State::Active { .. } => Phase::Active,
            State::OnHold { .. } => Phase::OnHold,
            State::Transferring { .. } => Phase::Transferring,
            State::Ending(_) => Phase::Ending,
            State::Closed { .. } => Phase::Closed,
        }
    }

    /// When the dialog was answered, in the states that have one.
    pub(crate) fn answered_at(&self) -> Option<Instant> {
        match self {
            State::Answered { at }
            | State::Active { at }
            | State::OnHold { at, .. }
            | State::Transferring { at, .. } => Some(*at),
            State::Ending(e) => e.answered_at,
            State::Created
            | State::Ringing { .. }
            | State::Dialling { .. }
            | State::Closed { .. } => None,
        }
    }
}

/// The ending state: its one reason and the cleanup steps still outstanding.
#[derive(Debug)]
pub(crate) struct Ending {
    /// The end reason (never changes once set).
    pub(crate) reason: EndReason,
    /// When the dialog was answered, if it was.
    pub(crate) answered_at: Option<Instant>,
    /// Waiting for queued playback (the farewell) before the SIP step.
    pub(crate) farewell: bool,
    /// The SIP step.
    pub(crate) sip: SipStep,
    /// Whether `StopMedia` is still to be emitted.
    pub(crate) stop_media: bool,
}

/// The SIP side of ending a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SipStep {
    /// The dialog is confirmed: BYE is due.
    Bye,
    /// Outbound INVITE pending: CANCEL is due.
    Cancel,
    /// Inbound INVITE pending: a final error is due.
    Reject {
        /// Status code.
        code: u16,
        /// Retry-After.
        retry_after: Option<Duration>,
    },
    /// CANCEL sent: waiting for the INVITE's final response (487, or a 2xx
    /// that crossed the CANCEL and must be ended with BYE).
    AwaitInviteFinal,
    /// Nothing (more) to signal.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reason_index_is_its_position_in_all() {
        for (i, r) in EndReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }
}
