//! What the manager puts in a call's mailbox: a leaf of the bridge, so the
//! manager's registry can hold mailboxes without using the bridge.

use callbridge_sip::ua::Event as SipEvent;

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
