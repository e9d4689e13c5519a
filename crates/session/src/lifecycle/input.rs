//! What the lifecycle machine is told: SIP, model and media events and
//! operator commands, as the machine's own types. The session manager maps
//! the events of the sip, rtp and llm-bridge crates into these; the machine
//! depends on none of those crates.
//!
//! Timers are not inputs: the driver calls
//! [`CallMachine::handle_timeout`](crate::lifecycle::CallMachine::handle_timeout).

use std::fmt;
use std::time::Instant;

use callbridge_redact::Secret;

/// One input to [`CallMachine::handle_input`](crate::lifecycle::CallMachine::handle_input).
///
/// Every input is accepted in every state; one that means nothing in the
/// current state is ignored with a `tracing` debug line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// From the SIP dialog of this call.
    Sip(SipInput),
    /// From the call's model session.
    Model(ModelInput),
    /// From the call's media (RTP) stream and playback queue.
    Media(MediaInput),
    /// From the operator (HTTP API, signals).
    Command(Command),
}

/// SIP events of this call's INVITE transaction and dialog (RFC 3261).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipInput {
    /// Inbound: the INVITE that starts the call (retransmissions are
    /// absorbed by the transaction layer; a duplicate here is ignored).
    Invite,
    /// Outbound: a provisional (1xx) response to our INVITE.
    Provisional {
        /// The status code, 101..=199.
        code: u16,
    },
    /// Outbound: a 2xx response to our INVITE; the dialog is confirmed.
    Answered,
    /// Outbound: a final non-2xx response to our INVITE (or a transaction
    /// timeout, reported as 408).
    Failed {
        /// The status code, 300..=699.
        code: u16,
    },
    /// Inbound: the ACK for our 2xx arrived.
    Ack,
    /// Inbound: the ACK for our 2xx never arrived (RFC 3261 Timer H); the
    /// dialog must be torn down with a BYE (RFC 3261 section 13.3.1.4).
    AckTimeout,
    /// The session timer ran out (RFC 4028 section 10): the peer stopped
    /// refreshing the session, or our refreshes failed. The SIP layer has
    /// sent BYE; the call ends with [`EndReason::Error`] (the store has no
    /// reason of its own for it; the call task records a `session_expired`
    /// event).
    ///
    /// [`EndReason::Error`]: crate::lifecycle::EndReason::Error
    SessionExpired,
    /// The peer sent BYE (the SIP layer answers it with 200 itself).
    Bye,
    /// Inbound: the caller sent CANCEL for the pending INVITE (the SIP layer
    /// answers the CANCEL with 200; the machine emits the INVITE's 487).
    Cancel,
    /// A re-INVITE put us on hold (sendonly or inactive, RFC 3264 section 8.4).
    Hold,
    /// A re-INVITE took us off hold (sendrecv).
    Resume,
    /// The caller pressed a key (RFC 4733 event or SIP INFO).
    Dtmf(DtmfDigit),
    /// Our REFER was accepted (202, or a NOTIFY with a 2xx sipfrag).
    ReferAccepted,
    /// Our REFER failed (a final error, or a NOTIFY with a failure sipfrag).
    ReferFailed {
        /// The failing status code, if one was received.
        code: Option<u16>,
    },
}

/// Events of the call's realtime model session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelInput {
    /// The session is set up and can take audio.
    Ready,
    /// A chunk of model speech arrived (the manager queues it for playback).
    Audio,
    /// The model was interrupted by the caller (barge-in).
    Interrupted,
    /// The model heard the caller start speaking.
    SpeechStarted,
    /// The model's turn is over (no more audio for this reply).
    TurnComplete,
    /// The built-in `end_call` tool: hang up once the farewell has played.
    EndCall,
    /// The built-in `transfer_call` tool: blind transfer with REFER.
    TransferCall {
        /// Where to transfer.
        target: TransferTarget,
    },
    /// The server will end this connection soon (the client resumes by
    /// itself where the provider supports it).
    GoingAway,
    /// The model's turn detection ended the caller's turn: a reply is due
    /// (arms the reply timer unless a reply is already playing).
    CallerTurnEnded,
    /// The connection dropped and the client is resuming the session on a
    /// new one (bounded by the client); no reply can come meanwhile, and a
    /// turn in flight may be lost with the old connection, so the reply
    /// timer is disarmed.
    Reconnecting,
    /// The session ended; always the model's last event.
    Closed {
        /// Whether the close handshake completed (code 1000 both ways).
        clean: bool,
    },
    /// A problem reported by the model session.
    Error {
        /// Whether the session cannot go on.
        fatal: bool,
    },
}

/// Events of the call's media stream and playback queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaInput {
    /// The first RTP packet from the caller arrived.
    FirstCallerAudio,
    /// Voice activity from the caller (resets the no-speech timer).
    CallerSpeech,
    /// The playback queue ran empty (everything queued has been sent).
    PlaybackDrained,
    /// The media stream stopped by itself (its socket failed): the call
    /// ends as `RtpTimeout` at once. Inactivity is the machine's own
    /// [`Timer::RtpInactivity`](crate::lifecycle::Timer::RtpInactivity).
    RtpTimeout,
    /// Caller media arrived in the second that just ended (the call
    /// reports it once a second, not every tick): re-arms the RTP
    /// inactivity timer.
    MediaArrived,
    /// The caller has been speaking for the barge-in threshold, as the
    /// call's own detector measured it: over our reply this is a barge-in
    /// that does not wait for the model.
    SustainedSpeech,
}

/// Operator commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Outbound: place the call (emits `SendInvite`).
    Dial,
    /// Hang up now (`AgentHangup`).
    Hangup,
    /// Graceful shutdown: unanswered calls end now, answered calls may run
    /// until `deadline` (then `Shutdown`).
    Shutdown {
        /// The drain deadline.
        deadline: Instant,
    },
    /// Immediate shutdown: end now, skipping any farewell.
    ShutdownNow,
    /// Answering-machine detection ended the call (issue 19): BYE now
    /// (a voicemail message has played to its end before this is sent).
    AmdEnd(AmdEnd),
}

/// Why answering-machine detection ends a call; each is one end reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdEnd {
    /// A machine, and the policy is to hang up.
    Machine,
    /// A machine, and the voicemail message played to its end.
    VoicemailLeft,
    /// Nobody said anything after the answer.
    NoSpeech,
    /// Special information tones: the number is unreachable.
    Unreachable,
}

/// A DTMF key (RFC 4733 events 0-15: `0`-`9`, `*`, `#`, `A`-`D`).
///
/// Keys can spell PINs and card numbers, so `Debug` redacts the key (it
/// reaches the debug log of ignored inputs); read it with
/// [`DtmfDigit::as_char`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit(Secret<char>);

impl DtmfDigit {
    /// The digit for `c`, or `None` if `c` is not a DTMF key. Lower-case
    /// `a`-`d` are accepted and stored upper-case.
    pub fn new(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(DtmfDigit(Secret::new(c)))
    }

    /// The RFC 4733 event code (0-15).
    pub fn from_event(code: u8) -> Option<Self> {
        const KEYS: &[u8; 16] = b"0123456789*#ABCD";
        KEYS.get(usize::from(code))
            .map(|&k| DtmfDigit(Secret::new(char::from(k))))
    }

    /// The key as a character.
    pub fn as_char(self) -> char {
        *self.0.expose()
    }
}

/// A transfer target as the model named it (a number, SIP URI or
/// department). Personal data: `Debug` and `Display` redact it; read it with
/// [`TransferTarget::expose`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransferTarget(Secret<Box<str>>);

impl TransferTarget {
    /// The longest target accepted, in bytes (the model's output is untrusted).
    pub const MAX_LEN: usize = 256;

    /// The target, or `None` when it is empty (after trimming) or longer than
    /// [`TransferTarget::MAX_LEN`].
    pub fn new(target: &str) -> Option<Self> {
        let t = target.trim();
        (!t.is_empty() && t.len() <= Self::MAX_LEN).then(|| TransferTarget(Secret::new(t.into())))
    }

    /// The target in clear, for building the REFER.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How an outbound INVITE failed, from its final status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 408 Request Timeout, 480 Temporarily Unavailable, 487 Request
    /// Terminated: nobody picked up.
    NoAnswer,
    /// 500, 502, 503, 504: the network or far end could not take the call.
    Unavailable,
    /// Any other final error (403, 404, 603 Decline, ...).
    Rejected,
}

impl FailureOutcome {
    /// Classifies a final non-2xx status code.
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => FailureOutcome::Busy,
            408 | 480 | 487 => FailureOutcome::NoAnswer,
            500 | 502 | 503 | 504 => FailureOutcome::Unavailable,
            _ => FailureOutcome::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_digit_accepts_only_keys() {
        for c in "0123456789*#ABCDabcd".chars() {
            assert_eq!(
                DtmfDigit::new(c).map(DtmfDigit::as_char),
                Some(c.to_ascii_uppercase())
            );
        }
        for c in "eE+ x!".chars() {
            assert_eq!(DtmfDigit::new(c), None);
        }
        assert_eq!(DtmfDigit::from_event(10).map(DtmfDigit::as_char), Some('*'));
        assert_eq!(DtmfDigit::from_event(15).map(DtmfDigit::as_char), Some('D'));
        assert_eq!(DtmfDigit::from_event(16), None);
        let d = DtmfDigit::new('7').unwrap();
        assert!(!format!("{d:?}").contains('7'));
    }

    #[test]
    fn transfer_target_is_bounded_and_redacted() {
        assert_eq!(TransferTarget::new("  "), None);
        assert_eq!(TransferTarget::new(&"1".repeat(257)), None);
        let t = TransferTarget::new(" +15551234567 ").unwrap();
        assert_eq!(t.expose(), "+15551234567");
        assert!(!format!("{t:?}{t}").contains("5551234567"));
    }

    #[test]
    fn failure_outcome_classifies_status_codes() {
        assert_eq!(FailureOutcome::from_status(486), FailureOutcome::Busy);
        assert_eq!(FailureOutcome::from_status(600), FailureOutcome::Busy);
        assert_eq!(FailureOutcome::from_status(480), FailureOutcome::NoAnswer);
        assert_eq!(FailureOutcome::from_status(408), FailureOutcome::NoAnswer);
        assert_eq!(
            FailureOutcome::from_status(503),
            FailureOutcome::Unavailable
        );
        assert_eq!(FailureOutcome::from_status(603), FailureOutcome::Rejected);
        assert_eq!(FailureOutcome::from_status(404), FailureOutcome::Rejected);
    }
}
