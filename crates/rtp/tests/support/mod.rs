//! What the rtp crate's integration tests share: a port pool and a peer
//! socket on 127.0.0.1.

use std::net::SocketAddr;

use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use tokio::net::UdpSocket;

/// A pool of `ports` ports from `base` on 127.0.0.1, with RTCP sockets or
/// not.
pub fn pool(base: u16, ports: u16, rtcp: bool) -> PortPool {
    PortPool::new(PortPoolConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        range: base..=base + ports - 1,
        rtcp,
    })
    .unwrap()
}

/// A peer's socket on an ephemeral port, and its address.
pub async fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}
