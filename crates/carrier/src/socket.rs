//! A carrier WebSocket as a call sees it: bounded channels to and from
//! the task that owns the real socket (the agent's HTTP server).

use tokio::sync::mpsc;

use super::WsMessage;

/// Capacity of each direction of a [`CarrierSocket`].
pub const SOCKET_CAPACITY: usize = 64;

/// A carrier WebSocket as the session sees it: bounded channels to and
/// from the task that owns the real socket. Dropping `tx` tells that task
/// to send a close frame (1000) and end.
#[derive(Debug)]
pub struct CarrierSocket {
    /// Messages from the carrier.
    pub rx: mpsc::Receiver<WsMessage>,
    /// Messages to the carrier.
    pub tx: mpsc::Sender<WsMessage>,
}

/// The other ends of a [`CarrierSocket`], for the task that owns the real
/// socket (or a test's fake carrier).
#[derive(Debug)]
pub struct SocketEnds {
    /// Put messages from the carrier here.
    pub to_call: mpsc::Sender<WsMessage>,
    /// Take messages for the carrier from here; `None` means the call is
    /// done with the socket (close it with 1000).
    pub from_call: mpsc::Receiver<WsMessage>,
}

impl CarrierSocket {
    /// A socket pair with [`SOCKET_CAPACITY`] in each direction.
    pub fn pair() -> (CarrierSocket, SocketEnds) {
        let (to_call, rx) = mpsc::channel(SOCKET_CAPACITY);
        let (tx, from_call) = mpsc::channel(SOCKET_CAPACITY);
        (CarrierSocket { rx, tx }, SocketEnds { to_call, from_call })
    }
}
