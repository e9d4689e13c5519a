//! Admission of carrier WebSocket calls (issue 9): a call whose stream
//! has started ([`crate::carrier::accept`]) is admitted atomically under
//! its carrier call id (`twilio:CA...`, `vonage:<uuid>`), so a second
//! connection for a live call is refused and never opens a second model
//! session; it then runs as one task tree exactly like a SIP call, with a
//! [`Transport::Carrier`] for its media.

use std::sync::Arc;

use callbridge_carrier::{CarrierHangup, CarrierSocket, StartInfo, WsMessage};
use callbridge_crm_store::SessionId;
use callbridge_llm_bridge::CallMetadata;
use tokio::sync::mpsc;
use tracing::warn;

use super::registry::{Entry, Refusal};
use super::{MAILBOX, Manager, ManagerError};
use crate::bridge::CallSpec;
use crate::bridge::transport::Transport;
use crate::carrier::{CarrierMedia, CarrierStream};
use crate::gauges::Gauge;
use crate::lifecycle::{Direction, Phase};

/// The close code for a refused stream (RFC 6455 section 7.4.1, policy
/// violation).
pub const CLOSE_REFUSED: u16 = 1008;

/// A carrier call ready to be admitted.
pub struct CarrierCall {
    /// The stream after the handshake.
    pub core: CarrierStream,
    /// What the carrier said at the start.
    pub start: StartInfo,
    /// The call's socket.
    pub socket: CarrierSocket,
    /// How to hang the call up at the carrier.
    pub hangup: Arc<dyn CarrierHangup>,
    /// The calling party (E.164 or a SIP user), if known.
    pub from: Option<String>,
    /// The called party, if known.
    pub to: Option<String>,
}

impl std::fmt::Debug for CarrierCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierCall")
            .field("call", &self.start.call)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Adds `detail` to the events of the live call registered under
    /// `key` (`<carrier>:<call id>`, or a SIP Call-ID); returns its
    /// session id, or `None` when no such call is live (or its mailbox is
    /// full).
    pub fn note(&self, key: &str, detail: serde_json::Value) -> Option<SessionId> {
        let (id, mailbox) = self.shared.registry().by_call_id(key)?;
        mailbox
            .try_send(crate::bridge::CallMsg::Note(detail))
            .ok()
            .map(|()| id)
    }

    /// Whether a call registered under `key` (`<carrier>:<call id>`, or a
    /// SIP Call-ID) is live.
    pub fn is_live(&self, key: &str) -> bool {
        self.shared.registry().by_call_id(key).is_some()
    }

    /// Admits a carrier call and starts its task; returns its session id.
    /// The session row carries the direction, the carrier as its transport
    /// and `<carrier>:<call id>` (the admission key) in its call-id column.
    ///
    /// # Errors
    /// [`ManagerError::AlreadyLive`] when a call with this carrier call id
    /// is live (the socket is closed with 1008),
    /// [`ManagerError::Unavailable`] at capacity or while shutting down,
    /// [`ManagerError::Store`] when the session row could not be written
    /// (the call is hung up at the carrier and the socket closed with
    /// 1008).
    pub async fn admit_carrier(&self, call: CarrierCall) -> Result<SessionId, ManagerError> {
        let CarrierCall {
            core,
            start,
            socket,
            hangup,
            from,
            to,
        } = call;
        let key = start.call.key();
        let id = SessionId::new_v4();
        let (tx, mailbox) = mpsc::channel(MAILBOX);
        let events = self.shared.bus.publisher(id);
        let self_tx = tx.clone();
        let entry = Entry {
            mailbox: tx,
            events: events.feed(),
            direction: Direction::Inbound,
            phase: Phase::Created,
            call_id: Some(key.clone()),
            call_ref: None,
            lead: None,
        };
        let admitted = self
            .shared
            .registry()
            .admit(id, entry, self.shared.cfg.max_calls);
        if let Err(r) = admitted {
            let _ = socket.tx.try_send(WsMessage::Close(Some(CLOSE_REFUSED)));
            return Err(match r {
                Refusal::Duplicate => {
                    warn!(call = %key, "second stream for a live carrier call refused");
                    ManagerError::AlreadyLive
                }
                _ => ManagerError::Unavailable,
            });
        }
        let profile = self.inbound_profile(to.as_deref().unwrap_or(""), None);
        let ctx = crate::profile::template::TemplateContext {
            caller: from.clone().unwrap_or_default(),
            called: to.clone().unwrap_or_default(),
            direction: "inbound",
            profile: profile.name().to_owned(),
            lead: None,
            sip: Default::default(),
        };
        let (mut model_config, greeting) =
            super::profiles::model_config(&self.shared.cfg.model, &profile, &ctx);
        model_config.greeting = super::profiles::inbound_greeting(greeting);
        let refuse_tx = socket.tx.clone();
        let mut media = CarrierMedia::new(core, socket, &start, hangup);
        let mut row = self.session_row(
            id,
            Direction::Inbound,
            crate::carrier::transport(start.call.carrier()),
            Some(key.clone()),
            from.clone(),
            to.clone(),
            None,
            None,
            profile.owner,
        );
        row.profile = Some(profile.name().to_owned());
        row.model = Some(profile.model.clone());
        if let Some(c) = &profile.client {
            row.model_provider = Some(c.name.clone());
        }
        // Row before answer: no stream runs without its session row. A
        // call whose row cannot be written is ended at the carrier (REST
        // hangup) and its socket closed with 1008.
        if self.shared.store.create(row).await.is_err() {
            self.refused_for_store(id);
            media.hangup().await;
            let _ = refuse_tx.try_send(WsMessage::Close(Some(CLOSE_REFUSED)));
            media.close();
            return Err(ManagerError::Store);
        }
        let spec = CallSpec {
            id,
            direction: Direction::Inbound,
            call: None,
            sip_call_id: Some(key.clone()),
            row: None,
            transport: Transport::Carrier(Box::new(media)),
            stream_guard: self.shared.gauges.hold(Gauge::MediaSocket),
            local_media: self.local_media(0, Vec::new()),
            answer_sdp: None,
            originate: None,
            model_config,
            metadata: super::parties(CallMetadata::with_call_id(key), from, to),
            mailbox,
            events,
            token: self.inner.root.child_token(),
            amd: false,
            tools: crate::bridge::tools::ToolsCtx::new(id, &ctx, self_tx),
            profile,
        };
        self.spawn_call(spec);
        Ok(id)
    }
}
