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
}
