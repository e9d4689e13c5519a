//! `GET /metrics`: Prometheus text exposition of the manager's counters,
//! gauges and histograms.

use axum::extract::State;

use super::AppState;

/// Renders the metrics page.
pub async fn handler(State(state): State<AppState>) -> String {
    let s = state.manager.snapshot();
    format!("callbridge_active_calls {}\n", s.calls.len())
}
