//! The lifecycle machine's configuration: the policies of issue 6 and the
//! durations behind every [`Timer`](super::Timer).

use std::time::Duration;

/// What to do when the model fails before an inbound call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFailurePolicy {
    /// Reject the INVITE with 503 and this Retry-After.
    Reject503 {
        /// Retry-After to send, if any.
        retry_after: Option<Duration>,
    },
    /// Answer, play the fallback announcement (`PlayFallback`), then BYE.
    AnswerThenEnd,
}

/// When an outbound call opens its model session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundModelOpen {
    /// At dial, so the model is warm when the callee answers (costs a model
    /// session for calls nobody picks up).
    AtDial,
    /// When the callee answers.
    AtAnswer,
}

/// Who speaks first on an outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSpeaker {
    /// The agent greets (`StartGreeting` once answered and ready).
    Agent,
    /// The callee speaks first ("hello?"); the model answers that.
    Callee,
}

/// Policies and timer durations of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Inbound: answer after this long even if the model is not ready.
    pub answer_wait: Duration,
    /// The model must be ready this long after `OpenModel`.
    pub model_setup: Duration,
    /// Inbound: what to do when the model fails before the answer.
    pub model_failure_before_answer: ModelFailurePolicy,
    /// Outbound: when to open the model.
    pub outbound_model_open: OutboundModelOpen,
    /// Outbound: who speaks first.
    pub outbound_first_speaker: FirstSpeaker,
    /// Outbound: how long to ring before CANCEL (`NoAnswer`).
    pub ring_timeout: Duration,
    /// No caller speech for this long ends the call (`NoSpeechTimeout`).
    pub no_speech: Duration,
    /// The longest the model may stay silent when it owes a reply (after
    /// the end of a caller turn, or the greeting request) before the call
    /// is handled as a model failure (fallback clip, BYE, `ModelFailure`);
    /// `None` never gives up on it.
    pub model_reply_timeout: Option<Duration>,
    /// No caller media (RTP packets, or a carrier's media messages) for
    /// this long ends the call (`RtpTimeout`); counted from the answer, the
    /// last packet or the end of a hold, never while held. `None` (the
    /// default here; the session manager's default is 30 s) arms no timer.
    pub rtp_inactivity: Option<Duration>,
    /// The longest call, from the answer (`MaxDuration`).
    pub max_duration: Duration,
    /// The longest wait for the farewell to finish playing.
    pub farewell_drain: Duration,
    /// The longest wait for a REFER's outcome.
    pub transfer_timeout: Duration,
    /// The longest wait for cleanup acknowledgements (model closed, final
    /// response after CANCEL).
    pub cleanup_join: Duration,
    /// Retry-After sent when an unanswered inbound call is rejected at
    /// shutdown.
    pub shutdown_retry_after: Option<Duration>,
}

impl Default for Config {
    /// Defaults an operator would expect: answer within 2 s of the INVITE,
    /// model ready within 10 s, ring 30 s, no-speech 15 s (issue 6), a
    /// reply owed by the model within 8 s (issue 10), calls
    /// capped at one hour, farewell bounded at 8 s, transfers at 15 s,
    /// cleanup at 5 s; no RTP inactivity timer (a machine that is fed no
    /// media must not end itself: the session manager sets 30 s).
    fn default() -> Self {
        Config {
            answer_wait: Duration::from_secs(2),
            model_setup: Duration::from_secs(10),
            model_failure_before_answer: ModelFailurePolicy::Reject503 {
                retry_after: Some(Duration::from_secs(30)),
            },
            outbound_model_open: OutboundModelOpen::AtDial,
            outbound_first_speaker: FirstSpeaker::Callee,
            ring_timeout: Duration::from_secs(30),
            no_speech: Duration::from_secs(15),
            model_reply_timeout: Some(Duration::from_secs(8)),
            rtp_inactivity: None,
            max_duration: Duration::from_secs(3600),
            farewell_drain: Duration::from_secs(8),
            transfer_timeout: Duration::from_secs(15),
            cleanup_join: Duration::from_secs(5),
            shutdown_retry_after: Some(Duration::from_secs(60)),
        }
    }
}
