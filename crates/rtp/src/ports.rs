//! The RTP port pool: hands out even UDP ports from a configured range,
//! binds the RTP socket (and the RTCP socket on port + 1 when asked), and
//! takes the port back when the [`PortLease`] is dropped.
//!
//! Ports are drawn at random from the free ones (the generator, a
//! [`rand::Rng`], is injected with [`PortPool::with_rng`], so tests can
//! seed it; [`PortPool::new`] seeds one from the operating system): the
//! next call's port cannot be guessed
//! from the last one. A released port first rests in a queue until half
//! the range has been released after it (or nothing else is free), so stray
//! packets of a finished call do not reach the next one. A port another
//! process holds is skipped and rests the same way.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::{StdRng, SysRng};
use rand::{Rng, RngExt, SeedableRng};
use std::net::UdpSocket;

use crate::error::Error;

/// Port pool configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPoolConfig {
    /// Address to bind (e.g. 0.0.0.0, or 127.0.0.1 in tests).
    pub bind_ip: IpAddr,
    /// Ports to use; only the even ones carry RTP.
    pub range: RangeInclusive<u16>,
    /// Also bind port + 1 for RTCP.
    pub rtcp: bool,
}

struct Inner {
    /// Ports that may be drawn (in no meaningful order).
    free: Vec<u16>,
    /// Released ports, oldest first, resting before they are drawn again.
    resting: VecDeque<u16>,
    /// How many may rest before the oldest is free again.
    rest_len: usize,
    total: usize,
    rng: Box<dyn Rng + Send>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("free", &self.free.len())
            .field("resting", &self.resting.len())
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// A random free port, else the one resting longest.
    fn draw(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return self.resting.pop_front();
        }
        let i = self.rng.random_range(0..self.free.len());
        Some(self.free.swap_remove(i))
    }

    fn release(&mut self, port: u16) {
        self.resting.push_back(port);
        while self.resting.len() > self.rest_len {
            if let Some(p) = self.resting.pop_front() {
                self.free.push(p);
            }
        }
    }
}

/// A shared pool of even RTP ports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PortPool {
    cfg: Arc<PortPoolConfig>,
    inner: Arc<Mutex<Inner>>,
}

/// The sockets bound for one stream.
#[derive(Debug)]
pub struct BoundPorts {
    /// The RTP socket (even port).
    pub rtp: UdpSocket,
    /// The RTCP socket (port + 1), when configured.
    pub rtcp: Option<UdpSocket>,
    /// Returns the port to the pool when dropped.
    pub lease: PortLease,
}

/// Ownership of one port of the pool; dropping it returns the port.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    inner: Arc<Mutex<Inner>>,
}

impl PortLease {
    /// The RTP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.release(self.port);
    }
}

impl PortPool {
    /// A pool over the even ports of `cfg.range` (with room for port + 1
    /// when RTCP is on), drawing with a generator seeded from the operating
    /// system.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the range holds no usable port,
    /// [`Error::Io`] when the operating system gives no randomness.
    pub fn new(cfg: PortPoolConfig) -> Result<PortPool, Error> {
        let rng = StdRng::try_from_rng(&mut SysRng).map_err(|e| Error::Io {
            what: "seed the RTP port draw",
            source: std::io::Error::other(e),
        })?;
        PortPool::with_rng(cfg, rng)
    }

    /// [`PortPool::new`] drawing with `rng` (seed one to make the draws
    /// repeatable).
    ///
    /// ```
    /// use callbridge_rtp::ports::{PortPool, PortPoolConfig};
    /// use rand::SeedableRng;
    ///
    /// let cfg = PortPoolConfig { bind_ip: [127, 0, 0, 1].into(), range: 40000..=40099, rtcp: false };
    /// let pool = PortPool::with_rng(cfg, rand::rngs::StdRng::seed_from_u64(7))?;
    /// assert_eq!(pool.capacity(), 50);
    /// # Ok::<(), callbridge_rtp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the range holds no usable port.
    pub fn with_rng(
        cfg: PortPoolConfig,
        rng: impl Rng + Send + 'static,
    ) -> Result<PortPool, Error> {
        let (lo, hi) = (*cfg.range.start(), *cfg.range.end());
        let free: Vec<u16> = (lo..=hi)
            .filter(|p| p % 2 == 0 && *p != 0)
            .filter(|p| !cfg.rtcp || (*p < hi && *p < u16::MAX))
            .collect();
        if free.is_empty() {
            return Err(Error::InvalidArgument {
                what: "RTP port range holds no even port",
            });
        }
        let total = free.len();
        Ok(PortPool {
            cfg: Arc::new(cfg),
            inner: Arc::new(Mutex::new(Inner {
                free,
                resting: VecDeque::new(),
                rest_len: total / 2,
                total,
                rng: Box::new(rng),
            })),
        })
    }

    /// Ports currently free.
    #[must_use]
    pub fn available(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.free.len() + inner.resting.len()
    }

    /// Ports the pool manages.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Binds a free port drawn at random (and port + 1 for RTCP); the
    /// sockets are non-blocking.
    ///
    /// # Errors
    /// [`Error::PortsExhausted`] when every port is leased or cannot be
    /// bound; [`Error::OutOfFileDescriptors`] at once when a socket cannot
    /// be opened for want of file descriptors (no other port would do).
    pub fn bind(&self) -> Result<BoundPorts, Error> {
        let attempts = self.capacity();
        for _ in 0..attempts {
            let Some(port) = self
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .draw()
            else {
                break;
            };
            let lease = PortLease {
                port,
                inner: Arc::clone(&self.inner),
            };
            match self.try_bind(port) {
                Ok((rtp, rtcp)) => return Ok(BoundPorts { rtp, rtcp, lease }),
                Err(e) if out_of_fds(&e) => {
                    tracing::warn!(port, error = %e, "out of file descriptors: no RTP socket");
                    return Err(Error::OutOfFileDescriptors);
                }
                Err(e) => {
                    // Held by someone else: the lease rests it.
                    tracing::debug!(port, error = %e, "RTP port busy, skipping");
                }
            }
        }
        Err(Error::PortsExhausted)
    }

    fn try_bind(&self, port: u16) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
        let rtp = UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port))?;
        rtp.set_nonblocking(true)?;
        let rtcp = if self.cfg.rtcp {
            let s = UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port + 1))?;
            s.set_nonblocking(true)?;
            Some(s)
        } else {
            None
        };
        Ok((rtp, rtcp))
    }
}

/// Whether `e` means no file descriptor is left (EMFILE: this process,
/// ENFILE: the system).
#[must_use]
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(range: RangeInclusive<u16>, rtcp: bool) -> PortPoolConfig {
        PortPoolConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            range,
            rtcp,
        }
    }

    #[test]
    fn only_even_ports_with_room_for_rtcp() {
        assert_eq!(
            PortPool::new(cfg(41001..=41009, false)).unwrap().capacity(),
            4
        );
        assert_eq!(
            PortPool::new(cfg(41000..=41008, true)).unwrap().capacity(),
            4
        );
        assert!(PortPool::new(cfg(41001..=41001, false)).is_err());
    }

    #[tokio::test]
    async fn lease_returns_port_and_exhaustion_is_an_error() {
        let pool = PortPool::new(cfg(41100..=41103, true)).unwrap();
        let a = pool.bind().unwrap();
        let b = pool.bind().unwrap();
        assert_eq!(a.lease.port() % 2, 0);
        assert_eq!(
            a.rtcp.as_ref().unwrap().local_addr().unwrap().port(),
            a.lease.port() + 1
        );
        assert!(matches!(pool.bind(), Err(Error::PortsExhausted)));
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.bind().unwrap();
        assert_ne!(c.lease.port(), b.lease.port());
    }

    #[test]
    fn emfile_and_enfile_are_fd_exhaustion_and_other_errors_are_not() {
        assert!(out_of_fds(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_fds(&std::io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_fds(&std::io::Error::from_raw_os_error(
            libc::EADDRINUSE
        )));
    }

    #[tokio::test]
    async fn ports_are_drawn_at_random_and_seeded_draws_repeat() {
        let draw = |seed| {
            let pool =
                PortPool::with_rng(cfg(41300..=41399, false), StdRng::seed_from_u64(seed)).unwrap();
            let leases: Vec<_> = (0..10).map(|_| pool.bind().unwrap()).collect();
            leases.iter().map(|b| b.lease.port()).collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1), "the same seed draws the same ports");
        assert_ne!(a, draw(2));
        let in_order: Vec<u16> = (0..10).map(|i| 41300 + 2 * i).collect();
        assert_ne!(a, in_order, "not handed out in order");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 10, "no port twice");
    }

    #[tokio::test]
    async fn a_released_port_rests_until_half_the_range_was_released_after_it() {
        // 8 ports, 4 may rest.
        let pool = PortPool::with_rng(cfg(41400..=41415, false), StdRng::seed_from_u64(7)).unwrap();
        let first = pool.bind().unwrap();
        let port = first.lease.port();
        drop(first);
        // The other 7 are drawn before it comes back.
        let others: Vec<_> = (0..7).map(|_| pool.bind().unwrap()).collect();
        assert!(others.iter().all(|b| b.lease.port() != port));
        // With nothing else free, the resting port is used.
        assert_eq!(pool.bind().unwrap().lease.port(), port);
    }

    #[tokio::test]
    async fn busy_port_is_skipped() {
        let _squatter = std::net::UdpSocket::bind("127.0.0.1:41200").unwrap();
        let pool = PortPool::new(cfg(41200..=41203, false)).unwrap();
        let a = pool.bind().unwrap();
        assert_eq!(a.lease.port(), 41202);
        assert_eq!(pool.available(), 1, "the busy port stays in the pool");
    }
}
