//! What the manager puts in a call's mailbox: a leaf of the bridge, so the
//! manager's registry can hold mailboxes without using the bridge.

use bytes::Bytes;
use callbridge_sip::ua::Event as SipEvent;
use tokio::sync::{broadcast, oneshot};

use crate::lifecycle::Command;

/// What the manager puts in a call's mailbox.
#[derive(Debug)]
pub enum CallMsg {
    /// A SIP event of this call's dialog.
    Sip(SipEvent),
    /// An operator command (hang up, shutdown).
    Command(Command),
    /// A fact to keep in the call's events (a carrier's status callback).
    Note(serde_json::Value),
    /// Live control by an operator (`Manager::control`).
    Control(Control),
    /// A tool of the call's own (its HTTP requests and timers, issue 23).
    Tool(ToolMsg),
}

/// What a call's tool tasks tell the call.
#[derive(Debug)]
pub enum ToolMsg {
    /// An HTTP tool's request ended.
    Done {
        /// The model's call id.
        id: callbridge_llm_bridge::ToolCallId,
        /// How it ended.
        outcome: crate::http_tool::request::ToolOutcome,
    },
    /// An HTTP tool's request is still running: time for (more) filler.
    Slow {
        /// The model's call id.
        id: callbridge_llm_bridge::ToolCallId,
    },
    /// `collect_digits` ran out of time.
    DigitsTimeout {
        /// The model's call id.
        id: callbridge_llm_bridge::ToolCallId,
    },
}

/// An operator's live control of a call; each answers on its `reply`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Control {
    /// Replace the model's instructions (`ModelSession::update_instructions`).
    Instructions {
        /// The new instructions.
        text: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Have the model say something now (a user turn asking for it).
    Say {
        /// What to say.
        text: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Transfer the call to a configured target (`transfer.targets`), as
    /// the model's `transfer_call` would.
    Transfer {
        /// The target's configured name.
        name: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// A subscription to the call's mixed audio: 20 ms frames of 8 kHz
    /// 16-bit little-endian PCM, the caller and the agent summed.
    Listen {
        /// The frames.
        reply: oneshot::Sender<Result<broadcast::Receiver<Bytes>, ControlError>>,
    },
}

/// Why a live control was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The model's provider does not take instruction updates mid-call.
    #[error("{provider} does not accept instruction updates during a session")]
    InstructionsUnsupported {
        /// The provider's name.
        provider: String,
    },
    /// The target is not a name listed in `transfer.targets`.
    #[error("not a configured transfer target")]
    TargetNotAllowed,
    /// The call has no model session now (not connected yet, or over).
    #[error("the call has no model session now")]
    NoModel,
    /// The call is not in a state that allows it (not answered, ending).
    #[error("the call is not in a state that allows it ({0})")]
    NotNow(&'static str),
    /// The model session refused the request.
    #[error("the model session refused the request")]
    Model,
    /// The call is not live here, or ended before it answered.
    #[error("no such live call")]
    Gone,
}
