//! What the manager shares with its call tasks: the configuration, the SIP
//! handle, the store writer, gauges, metrics, the model and the registry of
//! live calls. A leaf of the manager: the bridge uses it without using the
//! manager, so the manager -> bridge edge stays one-way.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

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
use crate::profile::{ProfileDefaults, Profiles};
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
    /// The routing profiles in force (issue 23).
    pub(super) profiles: ProfileSlot,
    /// The configuration's own profile (made once at start): what an
    /// outbound call without a profile takes when the default profile
    /// serves inbound calls only.
    pub(super) implicit: Arc<crate::profile::Profile>,
    /// The client of the HTTP tools' requests.
    pub http: reqwest::Client,
    /// The RFC 3263 resolver (`ManagerConfig::dns_servers`), made when
    /// first needed; `None` inside when it could not be made.
    pub(super) dns: std::sync::OnceLock<Option<crate::dns::Resolver>>,
    /// The registrars located again for each registration round
    /// (`Manager::register_located`), by registration id.
    pub(super) registrars:
        Mutex<std::collections::HashMap<callbridge_sip::ua::RegistrationId, crate::dns::Locate>>,
}

impl Shared {
    /// The targets of `dest` in the order to try them (RFC 3263); empty
    /// when nothing was found or the resolver could not be made.
    pub(crate) async fn locate(
        &self,
        dest: &crate::dns::Destination,
        transport: callbridge_sip::transport::Transport,
    ) -> Vec<callbridge_sip::locate::Target> {
        let resolver = self.dns.get_or_init(|| {
            crate::dns::Resolver::new(&self.cfg.dns_servers)
                .inspect_err(|e| tracing::warn!(error = %e, "no DNS resolver for SIP"))
                .ok()
        });
        match resolver {
            Some(r) => r.targets(dest, transport).await,
            None => Vec::new(),
        }
    }

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

/// The set in force. Readers clone the `Arc` and let go of the lock at
/// once; a call keeps its own `Arc<Profile>` for its whole life.
#[derive(Debug)]
pub(crate) struct ProfileSlot(RwLock<Arc<Profiles>>);

impl ProfileSlot {
    pub(crate) fn new(p: Profiles) -> ProfileSlot {
        ProfileSlot(RwLock::new(Arc::new(p)))
    }

    pub(crate) fn get(&self) -> Arc<Profiles> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn set(&self, p: Profiles) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(p);
    }
}

/// The profiles of a configuration that gives none: the implicit
/// default, exactly the configuration's own prompt, greeting, tools,
/// transfer targets and longest call.
pub(crate) fn implicit(cfg: &ManagerConfig) -> Profiles {
    let defaults = ProfileDefaults {
        provider: String::new(),
        model: cfg.model.model.clone(),
        voice: cfg.model.voice.clone(),
        system_prompt: cfg.model.instructions.clone(),
        greeting: cfg.greeting_prompt.clone(),
        tools: cfg.model.builtin_tools.end_call,
        transfer_targets: Vec::new(),
        max_duration: cfg.machine.max_duration,
        keep_headers: Vec::new(),
        http_tools: Default::default(),
        providers: Default::default(),
        webhooks: Default::default(),
        env: Default::default(),
        trunks: Default::default(),
    };
    let mut p = defaults.implicit();
    p.transfer_targets = cfg.transfer_targets.clone();
    Profiles::single(p)
}
