//! A call's supervisor: runs the call task under its cancellation token,
//! joins it (bounded wait after cancellation, then abort and log), stores
//! an end for a task that died, removes the registry entry (the one place
//! a call leaves the registry), runs the post-call summary, and only then
//! gives back its call-task gauge.

use std::sync::Arc;

use callbridge_crm_store::SessionUpdate;
use tracing::warn;

use super::Manager;
use crate::bridge::{CallSpec, run_call};
use crate::gauges::Gauge;
use crate::store_writer::StoreOp;

impl Manager {
    pub(super) fn spawn_call(&self, spec: CallSpec) {
        let shared = Arc::clone(&self.shared);
        let inner = Arc::clone(&self.inner);
        let guard = shared.gauges.hold(Gauge::CallTask);
        let id = spec.id;
        let direction = spec.direction;
        let transport = spec.transport.label();
        let provider = crate::metrics::provider_label(match &spec.profile.client {
            Some(c) => c.client.provider(),
            None => shared.model.provider(),
        });
        shared.metrics.call_started(direction, transport, provider);
        let token = spec.token.clone();
        let profile = Arc::clone(&spec.profile);
        let join_timeout = shared.cfg.join_timeout;
        self.inner.tracker.spawn(async move {
            let mut task = tokio::spawn(run_call(Arc::clone(&shared), spec));
            let report = tokio::select! {
                r = &mut task => r.ok(),
                _ = token.cancelled() => match tokio::time::timeout(join_timeout, &mut task).await {
                    Ok(r) => r.ok(),
                    Err(_) => {
                        warn!(session = %id, "call task did not end in time; aborted");
                        task.abort();
                        let _ = task.await;
                        None
                    }
                },
            };
            let reason = report.as_ref().and_then(|r| r.reason);
            if reason.is_none() {
                // The task died or was aborted: its end must still be stored.
                let f = callbridge_crm_store::Finish::failed(
                    callbridge_crm_store::EndReason::Error,
                    jiff::Timestamp::now(),
                );
                shared.store.send(StoreOp::Finish(id, f)).await;
            }
            shared.registry().remove(id, reason);
            shared.metrics.call_ended(
                direction,
                reason.unwrap_or(crate::lifecycle::EndReason::Error),
                transport,
                provider,
            );
            if let (Some(s), Some(mut r)) = (&inner.summarizer, report)
                && !r.transcript.is_empty()
            {
                match s.summarize(&r.transcript).await {
                    Ok(callbridge_llm_bridge::summary::Summary {
                        text,
                        usage,
                        provider,
                    }) => {
                        // The summary's tokens: its own API's, apart from
                        // the call's (token usage, issue 22).
                        if let Some(u) = usage {
                            shared.metrics.model_tokens(
                                provider,
                                crate::metrics::TokenPurpose::Summary,
                                u.input_tokens,
                                u.output_tokens,
                            );
                        }
                        if let Some(p) = r.events.as_mut() {
                            let e = p.publish(crate::events::CallEvent::SummaryReady {
                                summary: text.clone(),
                            });
                            if let Some(w) = profile.event_receivers(shared.cfg.webhooks.as_ref()) {
                                let rows = w.rows(&e);
                                if !rows.is_empty() {
                                    shared.store.send(StoreOp::Outbox(id, rows)).await;
                                }
                            }
                        }
                        let u = SessionUpdate {
                            summary: Some(callbridge_crm_store::Sensitive::new(text)),
                            usage: usage.map(|u| callbridge_crm_store::Usage {
                                summary_input_tokens: Some(u.input_tokens),
                                summary_output_tokens: Some(u.output_tokens),
                                ..Default::default()
                            }),
                            ..Default::default()
                        };
                        shared.store.send(StoreOp::Update(id, Box::new(u))).await;
                    }
                    Err(e) => warn!(session = %id, error = %e, "summary failed"),
                }
            }
            drop(guard);
        });
    }
}
