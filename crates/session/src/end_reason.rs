//! Why a call ended, across the crates session composes. There is one
//! source of truth, the call machine's [`lifecycle::EndReason`]; the other
//! two types say something narrower, and this module is the only place
//! that converts between them (exhaustive matches, so a new reason does not
//! compile until it is mapped):
//!
//! | type | what it means | who sets it |
//! |---|---|---|
//! | [`callbridge_sip::ua::EndReason`] | why a SIP dialog ended, as the SIP core saw it (BYE from the peer, CANCEL, our BYE done, 2xx never ACKed or its offer never answered, session timer expired, never answered) | the SIP user agent |
//! | [`lifecycle::EndReason`] | why the call ended: exactly one per call, the first cause that happened (caller hangup, agent hangup, timeouts, model failure, shutdown, rejected/busy/no answer, transfer...) | the call machine |
//! | [`callbridge_crm_store::EndReason`] | the stored vocabulary: every machine reason plus the ones only the store knows (`process-died` from crash recovery, `orphan-recording` from reconciling files); its kebab-case names are the schema and never change | the store |
//!
//! A SIP dialog's end is an *input* to the machine ([`sip_input`]), which
//! decides the call's reason (a BYE during a transfer is not a caller
//! hangup); the machine's reason is written to the store
//! (`From<lifecycle::EndReason> for callbridge_crm_store::EndReason`) and
//! counted in the metrics under the same names.
//!
//! [`lifecycle::EndReason`]: crate::lifecycle::EndReason

use callbridge_crm_store::EndReason as StoreReason;
use callbridge_sip::ua::EndReason as SipReason;

use crate::lifecycle::{EndReason, SipInput};

impl From<EndReason> for StoreReason {
    /// One to one: the store has every reason the machine has.
    fn from(r: EndReason) -> StoreReason {
        match r {
            EndReason::CallerHangup => StoreReason::CallerHangup,
            EndReason::AgentHangup => StoreReason::AgentHangup,
            EndReason::NoSpeechTimeout => StoreReason::NoSpeechTimeout,
            EndReason::MaxDuration => StoreReason::MaxDuration,
            EndReason::RtpTimeout => StoreReason::RtpTimeout,
            EndReason::ModelFailure => StoreReason::ModelFailure,
            EndReason::Shutdown => StoreReason::Shutdown,
            EndReason::Rejected => StoreReason::Rejected,
            EndReason::Cancelled => StoreReason::Cancelled,
            EndReason::Busy => StoreReason::Busy,
            EndReason::NoAnswer => StoreReason::NoAnswer,
            EndReason::Error => StoreReason::Error,
            EndReason::Transferred => StoreReason::Transferred,
            EndReason::AckTimeout => StoreReason::AckTimeout,
            EndReason::AnsweringMachine => StoreReason::AnsweringMachine,
            EndReason::VoicemailLeft => StoreReason::VoicemailLeft,
            EndReason::Unreachable => StoreReason::Unreachable,
        }
    }
}

/// The machine input for a SIP dialog's end, or `None` when the machine
/// already knows (our own BYE completing: the machine asked for it).
pub(crate) fn sip_input(r: SipReason) -> Option<SipInput> {
    match r {
        SipReason::RemoteBye => Some(SipInput::Bye),
        SipReason::RemoteCancel | SipReason::Unanswered => Some(SipInput::Cancel),
        // Our 2xx offered and its ACK did not answer: the 2xx was never
        // properly acknowledged (the call task records why).
        SipReason::AckTimeout | SipReason::BadAnswerInAck => Some(SipInput::AckTimeout),
        SipReason::SessionExpired => Some(SipInput::SessionExpired),
        SipReason::LocalHangup => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_reasons_keep_their_stored_names_and_metric_labels() {
        let names: Vec<&str> = EndReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "caller-hangup",
                "agent-hangup",
                "no-speech-timeout",
                "max-duration",
                "rtp-timeout",
                "model-failure",
                "shutdown",
                "rejected",
                "cancelled",
                "busy",
                "no-answer",
                "error",
                "transferred",
                "ack-timeout",
                "answering-machine",
                "voicemail-left",
                "unreachable",
            ]
        );
        for r in EndReason::ALL {
            assert_eq!(StoreReason::from(r).as_str(), r.as_str(), "{r:?}");
        }
    }

    #[test]
    fn only_our_own_hangup_is_not_a_machine_input() {
        assert_eq!(sip_input(SipReason::RemoteBye), Some(SipInput::Bye));
        assert_eq!(sip_input(SipReason::RemoteCancel), Some(SipInput::Cancel));
        assert_eq!(sip_input(SipReason::Unanswered), Some(SipInput::Cancel));
        assert_eq!(sip_input(SipReason::AckTimeout), Some(SipInput::AckTimeout));
        assert_eq!(
            sip_input(SipReason::BadAnswerInAck),
            Some(SipInput::AckTimeout)
        );
        assert_eq!(
            sip_input(SipReason::SessionExpired),
            Some(SipInput::SessionExpired)
        );
        assert_eq!(sip_input(SipReason::LocalHangup), None);
    }
}
