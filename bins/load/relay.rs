//! A lossy, reordering UDP relay for one call's RTP (the fault mode's "5%
//! packet loss and reordering"). The caller offers the relay's port in its
//! SDP; datagrams from the caller go on to the agent and everything else
//! goes back to the caller, each direction through the same [`Impair`]:
//! a share of packets is dropped and a share is held back and sent after
//! the next one (swapping the pair).

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Drop/reorder decisions from a small deterministic generator.
#[derive(Debug, Clone)]
pub struct Impair {
    state: u64,
    /// Per-mille of packets dropped.
    loss: u32,
    /// Per-mille of packets held back behind the next one.
    reorder: u32,
    held: Option<Vec<u8>>,
}

impl Impair {
    /// `loss` and `reorder` in per-mille, `seed` for the generator.
    pub fn new(loss: u32, reorder: u32, seed: u64) -> Impair {
        Impair {
            state: seed | 1,
            loss,
            reorder,
            held: None,
        }
    }

    fn roll(&mut self) -> u32 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as u32 % 1000
    }

    /// What to send for one datagram, in order (zero, one or two datagrams).
    pub fn pass(&mut self, pkt: &[u8], out: &mut Vec<Vec<u8>>) {
        out.clear();
        if self.roll() < self.loss {
            return;
        }
        if self.held.is_none() && self.roll() < self.reorder {
            self.held = Some(pkt.to_vec());
            return;
        }
        out.push(pkt.to_vec());
        if let Some(h) = self.held.take() {
            out.push(h);
        }
    }
}

/// A running relay: its port and the place to tell it the agent's address.
#[derive(Debug)]
pub struct Relay {
    /// The relay's address (offered in the caller's SDP).
    pub addr: SocketAddr,
    /// Set to the agent's RTP address once the answer is in.
    pub agent: watch::Sender<Option<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay for the caller's RTP socket at `caller`.
    pub async fn start(caller: SocketAddr, seed: u64) -> std::io::Result<Relay> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = sock.local_addr()?;
        let (agent, mut agent_rx) = watch::channel(None::<SocketAddr>);
        let task = tokio::spawn(async move {
            let mut up = Impair::new(50, 50, seed);
            let mut down = Impair::new(50, 50, seed.rotate_left(17));
            let mut buf = vec![0u8; 2048];
            let mut out = Vec::with_capacity(2);
            let mut dest_agent: Option<SocketAddr> = None;
            loop {
                tokio::select! {
                    changed = agent_rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        dest_agent = *agent_rx.borrow();
                    }
                    r = sock.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { return };
                        let (dest, imp) = if from == caller {
                            match dest_agent {
                                Some(a) => (a, &mut up),
                                None => continue,
                            }
                        } else {
                            (caller, &mut down)
                        };
                        imp.pass(&buf[..n], &mut out);
                        for p in &out {
                            let _ = sock.send_to(p, dest).await;
                        }
                    }
                }
            }
        });
        Ok(Relay { addr, agent, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_five_percent_is_lost_and_some_pairs_swap() {
        let mut imp = Impair::new(50, 50, 42);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for i in 0..10_000u32 {
            imp.pass(&i.to_be_bytes(), &mut out);
            for p in &out {
                seen.push(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
            }
        }
        let lost = 10_000 - seen.len();
        assert!((350..=700).contains(&lost), "lost {lost}");
        let swapped = seen.windows(2).filter(|w| w[1] < w[0]).count();
        assert!((300..=700).contains(&swapped), "swapped {swapped}");
    }

    #[test]
    fn without_impairment_everything_passes_in_order() {
        let mut imp = Impair::new(0, 0, 1);
        let mut out = Vec::new();
        for i in 0..100u8 {
            imp.pass(&[i], &mut out);
            assert_eq!(out, vec![vec![i]]);
        }
    }

    #[tokio::test]
    async fn the_relay_forwards_both_ways_once_it_knows_the_agent() {
        let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let agent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay::start(caller.local_addr().unwrap(), 7).await.unwrap();
        relay.agent.send(Some(agent.local_addr().unwrap())).unwrap();
        tokio::task::yield_now().await;
        let mut buf = [0u8; 64];
        // Send a few (some may be dropped or held) until one gets through.
        let mut got = false;
        for i in 0..40u8 {
            caller.send_to(&[i], relay.addr).await.unwrap();
            if let Ok(Ok((1, from))) = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                agent.recv_from(&mut buf),
            )
            .await
            {
                assert_eq!(from, relay.addr);
                got = true;
                break;
            }
        }
        assert!(got, "nothing reached the agent");
        let mut back = false;
        for i in 0..40u8 {
            agent.send_to(&[i], relay.addr).await.unwrap();
            if let Ok(Ok((1, _))) = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                caller.recv_from(&mut buf),
            )
            .await
            {
                back = true;
                break;
            }
        }
        assert!(back, "nothing came back to the caller");
    }
}
