//! Batched datagram IO for the engine threads, through nix's safe
//! wrappers of `recvmmsg(2)` and `sendmmsg(2)` (this crate forbids unsafe
//! code). The buffers and message headers are allocated once per engine
//! thread ([`Batch`]); nothing allocates per datagram.
//!
//! A call's socket is read once per tick: everything the kernel queued
//! since the last tick comes out in one `recvmmsg` per [`BATCH`]
//! datagrams, each with the kernel's receive timestamp (`SO_TIMESTAMPNS`)
//! so that the jitter buffer sees true arrival times, not the tick's. The
//! packets one tick produces for one socket (an RTP packet, more when
//! catching up) go out in one `sendmmsg`. Both are per socket: the
//! kernel has no call that batches across sockets, and each call has its
//! own port.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt,
    sockopt,
};
use nix::sys::time::TimeSpec;

use crate::media::{MAX_CATCH_UP, TRANSMIT_BUFFER};

/// Datagrams one `recvmmsg` takes.
pub(crate) const BATCH: usize = 8;

/// Packets one `sendmmsg` sends: a tick's catch-up burst.
pub(crate) const SEND_BATCH: usize = MAX_CATCH_UP as usize + 1;

/// Largest datagram read; a bigger one is truncated and fails to parse.
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// Asks the kernel to stamp every datagram received on `sock`.
pub(crate) fn enable_timestamps(sock: &UdpSocket) -> std::io::Result<()> {
    setsockopt(sock, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// One received datagram's length, source and kernel stamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) len: usize,
    pub(crate) src: SocketAddr,
    pub(crate) stamp: Option<Duration>,
}

/// An engine thread's preallocated buffers and message headers.
pub(crate) struct Batch {
    recv_headers: MultiHeaders<SockaddrStorage>,
    recv_bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    meta: [Option<Meta>; BATCH],
    send_headers: MultiHeaders<SockaddrStorage>,
    send_bufs: Box<[[u8; TRANSMIT_BUFFER]; SEND_BATCH]>,
    send_lens: [usize; SEND_BATCH],
    send_addrs: [Option<SockaddrStorage>; SEND_BATCH],
    queued: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch {
            recv_headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
            recv_bufs: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            meta: [None; BATCH],
            send_headers: MultiHeaders::preallocate(SEND_BATCH, None),
            send_bufs: Box::new([[0; TRANSMIT_BUFFER]; SEND_BATCH]),
            send_lens: [0; SEND_BATCH],
            send_addrs: [None; SEND_BATCH],
            queued: 0,
        }
    }

    /// Receives what `sock` holds, up to [`BATCH`] datagrams, without
    /// waiting; hands each to `f` (its bytes, source and kernel stamp).
    /// Returns how many came (0 when none was waiting).
    pub(crate) fn recv(
        &mut self,
        sock: &UdpSocket,
        mut f: impl FnMut(&[u8], SocketAddr, Option<Duration>),
    ) -> std::io::Result<usize> {
        let n = {
            let mut iovs = self.recv_bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
            let res = match recvmmsg(
                sock.as_raw_fd(),
                &mut self.recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => r,
                Err(Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            let mut n = 0;
            for (msg, slot) in res.zip(self.meta.iter_mut()) {
                let mut stamp = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(ts) = c {
                            stamp = Some(Duration::from(ts));
                        }
                    }
                }
                *slot = msg.address.as_ref().and_then(to_std).map(|src| Meta {
                    len: msg.bytes,
                    src,
                    stamp,
                });
                n += 1;
            }
            n
        };
        for (meta, buf) in self.meta[..n].iter().zip(self.recv_bufs.iter()) {
            if let Some(m) = meta {
                f(&buf[..m.len.min(MAX_DATAGRAM)], m.src, m.stamp);
            }
        }
        Ok(n)
    }

    /// A buffer for the next datagram to send (written by the core).
    pub(crate) fn send_buffer(&mut self) -> Option<&mut [u8; TRANSMIT_BUFFER]> {
        self.send_bufs.get_mut(self.queued)
    }

    /// Keeps the datagram just written into [`send_buffer`](Self::send_buffer)
    /// for the next [`flush`](Self::flush).
    pub(crate) fn queue(&mut self, len: usize, to: SocketAddr) {
        if self.queued < SEND_BATCH {
            self.send_lens[self.queued] = len;
            self.send_addrs[self.queued] = Some(SockaddrStorage::from(to));
            self.queued += 1;
        }
    }

    /// Whether no more datagrams fit before a flush.
    pub(crate) fn is_full(&self) -> bool {
        self.queued >= SEND_BATCH
    }

    /// Sends the queued datagrams on `sock` in one `sendmmsg`; returns how
    /// many were sent and how many failed (dropped: a full send buffer or
    /// no route; RTP is not retransmitted).
    pub(crate) fn flush(&mut self, sock: &UdpSocket) -> (usize, usize) {
        let n = std::mem::take(&mut self.queued);
        if n == 0 {
            return (0, 0);
        }
        let mut slices = [[IoSlice::new(&[])]; SEND_BATCH];
        for (s, (buf, len)) in slices
            .iter_mut()
            .zip(self.send_bufs.iter().zip(self.send_lens.iter()))
            .take(n)
        {
            *s = [IoSlice::new(&buf[..(*len).min(TRANSMIT_BUFFER)])];
        }
        let sent = match sendmmsg(
            sock.as_raw_fd(),
            &mut self.send_headers,
            slices[..n].iter(),
            &self.send_addrs[..n],
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(r) => r.count(),
            Err(_) => 0,
        };
        (sent, n - sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_receives_what_was_queued_with_sources_and_stamps_then_nothing() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        enable_timestamps(&a).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..11u8 {
            b.send_to(&[i; 20], a.local_addr().unwrap()).unwrap();
        }
        let mut batch = Batch::new();
        let mut got = Vec::new();
        let n = batch
            .recv(&a, |d, src, stamp| {
                got.push((d.to_vec(), src, stamp.is_some()))
            })
            .unwrap();
        assert_eq!(n, BATCH);
        let n = batch
            .recv(&a, |d, src, stamp| {
                got.push((d.to_vec(), src, stamp.is_some()))
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(batch.recv(&a, |_, _, _| {}).unwrap(), 0);
        for (i, (d, src, stamped)) in got.iter().enumerate() {
            assert_eq!(d, &vec![i as u8; 20]);
            assert_eq!(*src, b.local_addr().unwrap());
            assert!(stamped);
        }
    }

    #[test]
    fn queued_datagrams_go_out_in_one_flush() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = Batch::new();
        for i in 0..3u8 {
            let buf = batch.send_buffer().unwrap();
            buf[..4].fill(i);
            batch.queue(4, b.local_addr().unwrap());
        }
        assert_eq!(batch.flush(&a), (3, 0));
        assert_eq!(batch.flush(&a), (0, 0));
        let mut buf = [0u8; 16];
        for i in 0..3u8 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 4][..], a.local_addr().unwrap()));
        }
    }
}
