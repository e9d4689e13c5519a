//! What the manager shares with its call tasks: the configuration, the SIP
//! handle, the store writer, gauges, metrics, the model and the registry of
//! live calls. A leaf of the manager: the bridge uses it without using the
//! manager, so the manager -> bridge edge stays one-way.

use std::sync::{Arc, Mutex, PoisonError};

use callbridge_crm_store::SessionId;
use callbridge_llm_bridge::RealtimeModel;
use callbridge_sip::driver::Handle;
use callbridge_sip::ua::CallRef;

use super::config::ManagerConfig;
use super::registry::Registry;
use crate::bridge::fallback::FallbackClip;
use crate::gauges::Gauges;
use crate::lifecycle::Phase;
use crate::metrics::Metrics;
use crate::store_writer::StoreWriter;

/// What the manager shares with its call tasks.
pub(crate) struct Shared {
    pub cfg: ManagerConfig,
    pub sip: Handle,
    pub store: StoreWriter,
    pub gauges: Arc<Gauges>,
    pub metrics: Arc<Metrics>,
    pub model: Arc<dyn RealtimeModel>,
    /// The announcement `PlayFallback` plays.
    pub fallback: FallbackClip,
    /// The voicemail recording answering-machine detection leaves, when
    /// the machine policy plays a file.
    pub voicemail: Option<FallbackClip>,
    pub(super) registry: Mutex<Registry>,
    /// The call event bus (`crate::events`).
    pub bus: crate::events::EventBus,
}

impl Shared {
    pub(super) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_phase(&self, id: SessionId, phase: Phase) {
        self.registry().set_phase(id, phase);
    }

    pub(crate) fn bind_call_ref(&self, id: SessionId, call: CallRef) {
        self.registry().bind(id, call);
    }

    /// Indexes an outbound call by the Call-ID its INVITE carries.
    pub(crate) fn bind_call_id(&self, id: SessionId, call_id: String) {
        // Called from the call's task: its span learns the Call-ID now.
        tracing::Span::current().record("call_id", call_id.as_str());
        self.registry().bind_call_id(id, call_id);
    }
}
