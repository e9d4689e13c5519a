//! How a terminal session counts as a lead attempt: the dialer's outcome
//! (busy, no answer, failed, completed) from the session's state, end
//! reason and final SIP status. The agent's `GET /api/calls/{id}` answers
//! it and the campaign dialer records it, so both read it from here.

use crate::model::{EndReason, Outcome, SessionState};

/// The dialer's outcome of a terminal session: how the store's state, end
/// reason and SIP status map onto a lead attempt. `None` while not terminal.
///
/// ```
/// use callbridge_crm_store::{EndReason, Outcome, SessionState, outcome_of};
/// assert_eq!(
///     outcome_of(SessionState::Ended, Some(EndReason::CallerHangup), None),
///     Some(Outcome::Completed)
/// );
/// assert_eq!(
///     outcome_of(SessionState::Failed, Some(EndReason::Busy), Some(486)),
///     Some(Outcome::Busy)
/// );
/// assert_eq!(outcome_of(SessionState::Active, None, None), None);
/// // Answering-machine detection (issue 19): a machine hung up on is
/// // redialled after the voicemail delay; a message left is done.
/// assert_eq!(
///     outcome_of(SessionState::Ended, Some(EndReason::AnsweringMachine), None),
///     Some(Outcome::Voicemail)
/// );
/// assert_eq!(
///     outcome_of(SessionState::Ended, Some(EndReason::VoicemailLeft), None),
///     Some(Outcome::Completed)
/// );
/// ```
pub fn outcome_of(
    state: SessionState,
    reason: Option<EndReason>,
    sip_status: Option<u16>,
) -> Option<Outcome> {
    use {EndReason as R, Outcome as O, SessionState as S};
    match state {
        S::Ended => Some(match reason {
            // Answered calls the model could not serve count as failed
            // attempts, so the lead is tried again.
            Some(R::ModelFailure | R::Error | R::RtpTimeout) => O::Failed,
            // A machine that got no message: call again later. A message
            // left counts as done (the dialer may say otherwise).
            Some(R::AnsweringMachine) => O::Voicemail,
            Some(R::Unreachable) => O::Failed,
            _ => O::Completed,
        }),
        S::Failed => Some(match (reason, sip_status) {
            (Some(R::Busy), _) | (_, Some(486 | 600)) => O::Busy,
            (Some(R::NoAnswer | R::Cancelled), _) | (_, Some(408 | 480 | 487)) => O::NoAnswer,
            _ => O::Failed,
        }),
        S::Interrupted => Some(O::Failed),
        S::Created | S::Ringing | S::Answered | S::Active => None,
    }
}
