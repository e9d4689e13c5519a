//! The agents a run dials through (`--agent URL`, repeatable or a comma
//! list): calls are spread round-robin, skipping an agent that answered
//! 503 or 429 (for its `Retry-After`) or could not be reached (for a
//! short pause); the next agent takes the same claimed lead at once. Any
//! other answer is the attempt's, as with one agent (module `call`).
//!
//! Round-robin rather than "least active" (asking every agent's API for
//! its live calls before each call): each agent admits what it can take
//! and says 503 otherwise, so a refused POST costs one round trip, where
//! asking first costs one per agent per call and still races with other
//! dialers and with inbound calls. With several dialer processes the
//! cursors are independent; the store's claims (not the spreading) are
//! what keep a lead from being dialled twice.
//!
//! A POST that reached an agent and got no clear answer (timeout, 409) is
//! not retried elsewhere: the store decides (module `call`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_api::{AgentClient, CallAccepted, CallRequest, CallStatus, PostError};
use tokio::time::Instant;

/// How long an unreachable agent is skipped.
const UNREACHABLE_PAUSE: Duration = Duration::from_secs(2);
/// Longest skip for a `Retry-After`.
const MAX_SKIP: Duration = Duration::from_secs(30);

/// Whether an `Unavailable` answer's status is 503 or 429: the agent
/// took nothing on.
fn refused_up_front(status: u16) -> bool {
    matches!(status, 503 | 429)
}

/// The run's agents and the round-robin cursor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Agents {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clients: Vec<AgentClient>,
    /// Per agent: skipped until then.
    down_until: Mutex<Vec<Option<Instant>>>,
    next: AtomicUsize,
}

impl Agents {
    /// The pool of `clients` (at least one).
    pub fn new(clients: Vec<AgentClient>) -> Agents {
        let n = clients.len();
        Agents {
            inner: Arc::new(Inner {
                clients,
                down_until: Mutex::new(vec![None; n]),
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The agents, for messages: `the agent at URL`, or `every agent
    /// (URL, URL)`.
    pub fn describe(&self) -> String {
        let bases: Vec<_> = self.inner.clients.iter().map(AgentClient::base).collect();
        match bases.as_slice() {
            [one] => format!("the agent at {one}"),
            all => format!("every agent ({})", all.join(", ")),
        }
    }

    /// The agents to try for the next call, in order: from the cursor on,
    /// those not skipped first, then the skipped ones only when every
    /// agent is (so a pause never makes the run stop trying).
    fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.inner.clients.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let down = self
            .inner
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (up, skipped): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|i| (start + i) % n)
            .partition(|&i| down[i].is_none_or(|t| t <= now));
        if up.is_empty() { skipped } else { up }
    }

    fn mark_down(&self, i: usize, now: Instant, for_: Duration) {
        let mut down = self
            .inner
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down[i] = Some(now + for_.min(MAX_SKIP));
    }

    fn mark_up(&self, i: usize) {
        self.inner
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[i] = None;
    }

    /// `POST /api/calls` to the next agent that takes it; the agent that
    /// did and its answer. Only when every agent refused with 503 or was
    /// unreachable is that (the last one's) error returned; any other
    /// error is returned at once.
    pub async fn place(&self, req: &CallRequest) -> Result<(AgentClient, CallAccepted), PostError> {
        let mut last = None;
        for i in self.order(Instant::now()) {
            let client = &self.inner.clients[i];
            match client.place(req).await {
                Ok(acc) => {
                    self.mark_up(i);
                    return Ok((client.clone(), acc));
                }
                // 503 (draining, full, overloaded) and 429 are refusals
                // before anything was dialled; another 5xx may come after
                // the agent wrote the call, so the store decides (the
                // claim is released, or the release finds the row).
                Err(PostError::Unavailable {
                    status,
                    retry_after,
                    why,
                }) if refused_up_front(status) => {
                    self.mark_down(i, Instant::now(), retry_after.unwrap_or(UNREACHABLE_PAUSE));
                    tracing::info!(agent = client.base(), %why, "agent unavailable; trying the next");
                    last = Some(PostError::Unavailable {
                        status,
                        retry_after,
                        why,
                    });
                }
                Err(PostError::NotSent(why)) => {
                    self.mark_down(i, Instant::now(), UNREACHABLE_PAUSE);
                    tracing::info!(agent = client.base(), %why, "agent unreachable; trying the next");
                    last = Some(PostError::NotSent(format!("{}: {why}", client.base())));
                }
                Err(PostError::NoApi(why)) => {
                    return Err(PostError::NoApi(format!("{}: {why}", client.base())));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| PostError::NotSent("no agent configured".to_owned())))
    }

    /// `GET /api/calls/{id}`, asking `first` (the agent that placed the
    /// call, when known) and then the others until one knows the call.
    /// `Ok(None)` when none does; an error when none answered.
    pub async fn status(
        &self,
        first: Option<&AgentClient>,
        id: &str,
    ) -> Result<Option<CallStatus>, String> {
        let mut err = None;
        let mut answered = false;
        let others = self
            .inner
            .clients
            .iter()
            .filter(|c| first.is_none_or(|f| f.base() != c.base()));
        for client in first.into_iter().chain(others) {
            match client.status(id).await {
                Ok(Some(s)) => return Ok(Some(s)),
                Ok(None) => answered = true,
                Err(e) => err = Some(format!("{}: {e}", client.base())),
            }
        }
        match (answered, err) {
            (false, Some(e)) => Err(e),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Agents {
        Agents::new(
            (0..n)
                .map(|i| AgentClient::new(&format!("http://127.0.0.1:{}", 9000 + i), "t".into()))
                .collect::<Result<_, _>>()
                .unwrap(),
        )
    }

    #[test]
    fn only_503_and_429_move_a_call_to_the_next_agent() {
        assert!(refused_up_front(503));
        assert!(refused_up_front(429));
        assert!(!refused_up_front(500));
        assert!(!refused_up_front(502));
    }

    #[test]
    fn calls_go_round_robin_and_a_skipped_agent_comes_back_after_its_pause() {
        let a = pool(3);
        let t0 = Instant::now();
        assert_eq!(a.order(t0), vec![0, 1, 2]);
        assert_eq!(a.order(t0), vec![1, 2, 0]);
        a.mark_down(2, t0, Duration::from_secs(5));
        // The cursor is at 2, which is skipped.
        assert_eq!(a.order(t0), vec![0, 1]);
        assert_eq!(a.order(t0 + Duration::from_millis(4999)), vec![0, 1]);
        assert_eq!(a.order(t0 + Duration::from_secs(5)), vec![1, 2, 0]);
    }

    #[test]
    fn with_every_agent_skipped_all_are_tried_and_a_long_retry_after_is_capped() {
        let a = pool(2);
        let t0 = Instant::now();
        a.mark_down(0, t0, Duration::from_secs(300));
        a.mark_down(1, t0, Duration::from_secs(1));
        assert_eq!(a.order(t0), vec![0, 1]);
        assert_eq!(a.order(t0 + Duration::from_secs(1)), vec![1]);
        assert_eq!(a.order(t0 + MAX_SKIP), vec![0, 1]);
    }

    #[tokio::test]
    async fn unreachable_agents_are_skipped_and_the_call_goes_to_the_next() {
        // Ports just freed: nothing listens, connection refused.
        let free = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let a = Agents::new(
            [free(), free()]
                .iter()
                .map(|p| AgentClient::new(&format!("http://127.0.0.1:{p}"), "t".into()).unwrap())
                .collect(),
        );
        let req = CallRequest {
            to: "+15550100001".into(),
            ..CallRequest::default()
        };
        match a.place(&req).await {
            Err(PostError::NotSent(why)) => assert!(why.contains("127.0.0.1"), "{why}"),
            other => panic!("expected NotSent, got {other:?}"),
        }
        // Both are skipped now: the next call still tries both.
        assert_eq!(a.order(Instant::now()).len(), 2);
    }
}
