//! The lifecycle of one call as a sans-IO state machine: the one place that
//! decides a call's life (ARCHITECTURE.md, "Why it exists"; issue 6).
//!
//! [`CallMachine`] takes inputs ([`Input`]: SIP, model and media events,
//! operator commands) with the current time, and produces [`Action`]s and
//! the next deadline. It does no IO, reads no clock and spawns nothing; the
//! session manager maps the sip, rtp and llm-bridge events into [`Input`]s
//! and executes the actions. SIP semantics follow RFC 3261 (INVITE, CANCEL,
//! BYE, ACK and Timer H in section 13.3.1.4), RFC 3264 section 8.4 (hold)
//! and RFC 3515 (REFER).
//!
//! # States
//!
//! ```text
//!  new(Inbound) / new(Outbound): WriteStoreState{created}
//!
//!   +-------+ Invite: WriteStoreState{ringing},     +-------+ Dial: WriteStoreState{ringing},
//!   |Created|  SendRinging, OpenModel (pre-warm)    |Created|  SendInvite, OpenModel (if at dial)
//!   +-------+                                       +-------+
//!       |                                               |
//!       v                                               v
//!   +-------+                                      +--------+
//!   |Ringing|                                      |Dialling|
//!   +-------+                                      +--------+
//!       | model Ready, or AnswerWait expired:          | 2xx (OpenModel if at answer)
//!       | Answer, WriteStoreState{answered}            | WriteStoreState{answered}
//!       +-----------------------+----------------------+
//!                               | is the model ready?
//!                       no      v       yes
//!              +--------+ <-----+-----> +------+ WriteStoreState{active}, StartGreeting
//!              |Answered| --model Ready->|Active| (outbound: only if the agent speaks first)
//!              +--------+               +------+
//!                                        ^  |  \  transfer_call: Refer
//!    hold: PauseCallerAudio              |  |   v
//!    un-hold: ResumeCallerAudio +------+ |  |  +------------+  REFER failed / Transfer
//!    (no-speech timer paused)   |OnHold|<+  |  |Transferring|  timer: TransferFailed,
//!                               +------+    |  +------------+  back to Active (or OnHold)
//!                                           |
//!   any end cause in any live state; the FIRST one is the reason:
//!   BYE, CANCEL, final error, end_call, REFER accepted, timers, RTP timeout,
//!   model failure, hangup, shutdown
//!                                           v
//!              +----------------------------------------------------+
//!              | Ending { reason, outstanding steps }               |
//!              |  1 farewell: wait until playback is idle (Drain)   |
//!              |  2 SIP: SendBye | SendCancel | Reject | nothing    |
//!              |  3 CloseModel (if opened), StopMedia               |
//!              |  4 wait: model Closed, INVITE final after CANCEL   |
//!              |    (bounded by Cleanup)                            |
//!              |  5 FinalizeRecording, WriteStoreEnd, Closed        |
//!              +----------------------------------------------------+
//!                                           |
//!                                           v
//!                                 +------------------+
//!                                 | Closed { reason }|  ignores every input
//!                                 +------------------+
//! ```
//!
//! # Timers
//!
//! A table of `Option<Instant>` ([`Timer`]); [`CallMachine::poll_timeout`]
//! is the earliest, [`CallMachine::handle_timeout`] fires the expired ones.
//! Durations come from [`Config`].
//!
//! | timer | armed | cleared | on hold | fires |
//! |---|---|---|---|---|
//! | `AnswerWait` | INVITE (inbound) | answer | - | answer without a ready model (`Answered`) |
//! | `ModelSetup` | `OpenModel` | model ready | - | model failure (503 or answer-then-end before the answer; BYE after) |
//! | `Ring` | dial (outbound) | final response | - | CANCEL, `NoAnswer` |
//! | `NoSpeech` | conversation starts | ending | paused (remaining kept) | `NoSpeechTimeout` (BYE); while our reply is still playing it stays disarmed until the playback ends; reset by caller speech, barge-in, DTMF and the end of our playback |
//! | `ReplyWait` | the model owes a reply: the caller's turn ended (`CallerTurnEnded`, not while a reply plays) or `StartGreeting`; pushed back by caller speech | model audio, turn complete, tool calls, barge-in, `Reconnecting`, ending | cleared | model failure: `PlayFallback`, BYE after it, `ModelFailure` (issue 10, "the model stalls") |
//! | `RtpInactivity` | answer (if `rtp_inactivity` is set); re-armed at the end of each second in which caller media arrived (`MediaArrived`: it fires at most 1 s after its time) | hold, ending | cleared; re-armed in full on un-hold | BYE, `RtpTimeout` |
//! | `MaxDuration` | answer | ending | keeps running (hard cap) | BYE, `MaxDuration` |
//! | `Drain` | ending with playback queued | playback drained | - | stop waiting for the farewell; BYE |
//! | `Transfer` | REFER sent | REFER outcome | - | `TransferFailed`, back to `Active` |
//! | `Cleanup` | waiting for the model's close or the INVITE's final response | both arrived | - | stop waiting; finish the cleanup |
//! | `ShutdownDrain` | graceful shutdown of an answered call | ending | keeps running | BYE, `Shutdown` |
//!
//! # Guarantees (each has a test)
//!
//! - Every input is accepted in every state; unexpected ones are ignored
//!   with a debug log, never a panic.
//! - The model is opened at most once: `OpenModel` can only be produced by
//!   spending a one-per-call token that is not `Clone` (the private
//!   `ModelSlot`).
//! - `CloseModel` is emitted exactly once if `OpenModel` was; `StopMedia`,
//!   `FinalizeRecording` and `WriteStoreEnd` exactly once per call; at most
//!   one BYE, never after the peer's BYE.
//! - The end reason is the first cause; later causes are logged and ignored.
//! - `WriteStoreState { Created }` is the first action, before anything is
//!   signalled or played; nothing follows [`Action::Closed`].
//! - The farewell after `end_call` plays out (bounded by `Drain`) before BYE.
//!
//! # Choices the issue left open
//!
//! - A failed or timed-out transfer keeps the call (`TransferFailed`, back
//!   to `Active`, or to `OnHold` if the peer held us during the transfer),
//!   so the model can tell the caller and carry on. The REFER is sent at
//!   once; queued playback is not awaited first.
//! - Hold is honoured in `Active` and `Transferring`; a re-INVITE hold while
//!   `Answered` (model not ready) is ignored.
//! - An operator hangup of an outbound call before the answer is stored as
//!   `AgentHangup` (the CANCEL is how it is carried out), not `Cancelled`,
//!   which is kept for the caller's CANCEL of an inbound INVITE. That one
//!   is stored `ended` (the caller gave up; nothing failed), while every
//!   other unanswered call is stored `failed`.
//! - An outbound final error 5xx (`FailureOutcome::Unavailable`) is stored
//!   as `Rejected` with its SIP status; the store has no `unavailable`.
//! - Model failure after the answer plays the fallback announcement and
//!   ends politely (BYE after the playback drains). That covers a model
//!   connection that ends mid-call (`Closed`: OpenAI Realtime has no
//!   resumption; a Gemini session reports `Closed` only once its own
//!   bounded resumption failed or no handle was known) and a model that
//!   stays silent when it owes a reply (`ReplyWait`).

mod action;
mod config;
mod input;
mod machine;
mod model;
mod state;
mod timer;

#[cfg(test)]
mod tests;

pub use action::{Action, EndOutcome, Metric, StoreState};
pub use config::{Config, FirstSpeaker, ModelFailurePolicy, OutboundModelOpen};
pub use input::{
    AmdEnd, Command, DtmfDigit, FailureOutcome, Input, MediaInput, ModelInput, SipInput,
    TransferTarget,
};
pub use machine::CallMachine;
pub use state::{Direction, EndReason, Phase};
pub use timer::Timer;
