//! [`NodeId`]: which machine (agent or dialer) wrote a row.
//!
//! Several agents and dialers may share one PostgreSQL store. Every
//! session row records the node that handled the call and every claimed
//! lead the node that claimed it, so that a restarting node recovers only
//! its own rows ([`Store::recover`](crate::Store::recover) can tell a dead
//! process from a live one only on its own machine), while listings show
//! every node's.

use crate::error::{Error, Result};

/// Longest node id accepted.
pub const MAX_NODE_ID: usize = 64;

/// A node's id: 1 to [`MAX_NODE_ID`] characters of ASCII letters, digits,
/// `.`, `-` and `_` (a host name fits).
///
/// ```
/// use callbridge_crm_store::NodeId;
/// assert_eq!(NodeId::new("agent-1").unwrap().as_str(), "agent-1");
/// assert!(NodeId::new("two words").is_err());
/// assert!(!NodeId::from_host().as_str().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// Checks and wraps `id`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when it is empty, too long or holds other
    /// characters.
    pub fn new(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= MAX_NODE_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            Ok(NodeId(id.to_owned()))
        } else {
            Err(Error::InvalidInput {
                field: "node id",
                reason: "1 to 64 ASCII letters, digits, '.', '-' or '_'",
            })
        }
    }

    /// This machine's host name (Linux `/proc/sys/kernel/hostname`, else
    /// `$HOSTNAME`), or `localhost` when neither gives a valid id.
    pub fn from_host() -> Self {
        let candidates = [
            std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
            std::env::var("HOSTNAME").ok(),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|h| NodeId::new(h.trim()).ok())
            .unwrap_or_else(|| NodeId("localhost".to_owned()))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
