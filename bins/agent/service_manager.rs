//! Notifications to the service manager (systemd's `sd_notify` protocol,
//! `Type=notify` units: deploy/systemd/callbridge-agent.service), through
//! the `sd-notify` crate. Each is a no-op when `$NOTIFY_SOCKET` is unset
//! (not run by systemd), so `agent run` sends them unconditionally:
//!
//! - `READY=1` once SIP, RTP (the media engine and port pool are part of
//!   the session manager's start) and every HTTP listener are up: the same
//!   moment as the `ready` line on stdout;
//! - `STOPPING=1` when a signal starts the drain;
//! - `WATCHDOG=1` every half `WatchdogSec` while the SIP driver still
//!   answers a query (a wedged runtime or a dead SIP loop stops the pings,
//!   and systemd restarts the agent).

use std::time::Duration;

use callbridge_session::Manager;
use sd_notify::NotifyState;
use tracing::{debug, warn};

/// Sends `states`; a failure is logged (the agent runs on without it).
fn send(states: &[NotifyState<'_>], what: &'static str) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, notification = what, "the service manager could not be notified");
    }
}

/// `READY=1` with a status line naming the listeners.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)], "ready");
}

/// `STOPPING=1`: the drain has begun.
pub fn stopping() {
    send(
        &[
            NotifyState::Stopping,
            NotifyState::Status("draining live calls"),
        ],
        "stopping",
    );
}

/// Starts the watchdog pings when the unit asks for them (`WatchdogSec`);
/// `None` otherwise. Abort the task to stop them.
pub fn watchdog(manager: &Manager) -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let every = (interval / 2).max(Duration::from_millis(100));
    debug!(
        every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
        "watchdog pings"
    );
    let manager = manager.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            // Only a SIP driver that answers within the interval earns a ping.
            match tokio::time::timeout(every, manager.sip_stats()).await {
                Ok(Some(_)) => send(&[NotifyState::Watchdog], "watchdog"),
                _ => warn!("the SIP driver did not answer: watchdog ping withheld"),
            }
        }
    }))
}
