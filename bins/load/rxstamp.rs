//! Kernel receive timestamps for the caller's RTP sockets (SO_TIMESTAMPNS,
//! socket(7)). The agent's outbound pacing is judged by when its packets
//! reached our socket, not by when the (busy) load tool got round to
//! reading them: on loopback the kernel stamps a datagram in the sender's
//! `sendto`, so these are the agent's send times. Falls back to the read
//! time when a datagram carries no stamp (and the kernel itself stamps at
//! read time for a moment after stamping is first switched on).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Asks the kernel to stamp every datagram received on `sock`.
pub fn enable(sock: &UdpSocket) -> std::io::Result<()> {
    setsockopt(sock, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// A control-message buffer for one timestamp.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// One datagram received by [`recv`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Its length.
    pub len: usize,
    /// Its arrival time on the tokio clock.
    pub at: Instant,
    /// Whether `at` came from a kernel stamp.
    pub stamped: bool,
    /// Its source address (`None` for a family other than IPv4/IPv6).
    pub from: Option<SocketAddr>,
}

/// Receives one datagram into `buf`.
pub async fn recv(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> std::io::Result<Received> {
    let fd = sock.as_raw_fd();
    let (len, stamp, from) = sock
        .async_io(Interest::READABLE, || {
            let mut iov = [std::io::IoSliceMut::new(&mut *buf)];
            let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut *cmsg), MsgFlags::empty())
                .map_err(std::io::Error::from)?;
            let mut stamp = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        stamp = Some(Duration::from(ts));
                    }
                }
            }
            let from = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                    })
            });
            Ok((msg.bytes, stamp, from))
        })
        .await?;
    let (at, stamped) = to_instant(stamp);
    Ok(Received {
        len,
        at,
        stamped,
        from,
    })
}

/// Maps a wall-clock stamp to the monotonic clock through "now" on both.
fn to_instant(stamp: Option<Duration>) -> (Instant, bool) {
    let now = Instant::now();
    let Some(stamp) = stamp else {
        return (now, false);
    };
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    match wall.checked_sub(stamp) {
        // Bounded: a stamp from the future or from long ago is not trusted.
        Some(ago) if ago < Duration::from_secs(5) => {
            now.checked_sub(ago).map_or((now, false), |t| (t, true))
        }
        _ => (now, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_datagram_is_stamped_when_it_arrives_not_when_it_is_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The kernel switches receive stamping on for the whole stack
        // lazily (a deferred static key): until then a datagram is stamped
        // when read. Give it a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        tx.send_to(b"hello", rx.local_addr().unwrap())
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let mut cmsg = cmsg_buffer();
        let r = recv(&rx, &mut buf, &mut cmsg).await.unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert!(r.stamped);
        assert_eq!(r.from, Some(tx.local_addr().unwrap()));
        let after_send = r.at.saturating_duration_since(sent);
        assert!(
            after_send < Duration::from_millis(25),
            "stamped {after_send:?} after the send, not at the read 50 ms later"
        );
    }
}
