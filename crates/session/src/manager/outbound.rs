//! An outbound call: admission, the session row written before the
//! INVITE, and the call task.

use callbridge_crm_store::{SessionId, Transport as StoreTransport};
use callbridge_llm_bridge::{CallMetadata, Greeting};
use callbridge_rtp::g711::Law;
use callbridge_sip::ua::Originate;
use callbridge_sip::{NameAddr, Uri, sdp};
use tokio::sync::mpsc;
use tracing::warn;

use super::profiles::model_config;
use super::registry::{Entry, Refusal};
use super::{MAILBOX, Manager, ManagerError, OriginateRequest, parties, user_part};
use crate::bridge::{CallSpec, Outgoing};
use crate::dns::Destination;
use crate::gauges::Gauge;
use crate::lifecycle::{Direction, Phase};
use crate::profile::template::TemplateContext;
use crate::store_writer::CreateRefused;

impl Manager {
    /// Places an outbound call: admits it (refused while another call for
    /// the same lead is live, at capacity or shutting down), writes the
    /// session row (with the request's campaign, lead, claim token and
    /// owner) through the store thread and waits until it is in the store,
    /// then starts the call task, which sends the INVITE with our SDP
    /// offer. Returns the session id once the row is stored, before the
    /// INVITE goes out. With a claim token the store writes the row only
    /// while the lead is still claimed under it (same transaction), so a
    /// request from a dialer whose claim was since released or claimed
    /// again dials nothing. A call sent to [`ManagerConfig::outbound_auth`](super::ManagerConfig::outbound_auth)'s
    /// target answers 401/407 challenges with the trunk's credentials
    /// (RFC 3261 section 22.2); any other call carries none, and a
    /// challenge fails it (`rejected`, SIP status 401, an `auth_failed`
    /// event).
    ///
    /// # Errors
    /// [`ManagerError::LeadBusy`], [`ManagerError::Unavailable`],
    /// [`ManagerError::BadUri`], [`ManagerError::Store`] (the row could not
    /// be written: nothing was started), [`ManagerError::ClaimNotHeld`]
    /// (nothing was started) or a media error.
    ///
    /// # Cancellation
    /// Safe to drop at any point: the work runs in a task of its own, so a
    /// caller that stops waiting (an HTTP client that disconnects makes
    /// hyper drop its handler) still gets all or nothing: the admission,
    /// the row and the call task, or none of them. Dropping the work
    /// half-way would leave a stored row that never becomes a call and an
    /// admitted entry nothing removes.
    pub async fn originate(&self, req: OriginateRequest) -> Result<SessionId, ManagerError> {
        let this = self.clone();
        match tokio::spawn(async move { this.originate_now(req).await }).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "originate task failed");
                Err(ManagerError::Unavailable)
            }
        }
    }

    /// [`Manager::originate`]'s work, in its own task.
    async fn originate_now(&self, req: OriginateRequest) -> Result<SessionId, ManagerError> {
        let to =
            Uri::parse(&bytes::Bytes::from(req.to.clone())).map_err(|_| ManagerError::BadUri)?;
        let from =
            Uri::parse(&bytes::Bytes::from(req.from.clone())).map_err(|_| ManagerError::BadUri)?;
        let profile = self.outbound_profile(req.profile.as_deref())?;
        if !self
            .inner
            .admission
            .admit(self.shared.cfg.admission_wait)
            .await
        {
            return Err(ManagerError::Overloaded);
        }
        // A domain is located now (RFC 3263), so the media's latch rules
        // know the first server's address; the INVITE fails over along
        // the rest, and the call task moves the latch's signalling IP to
        // each server the INVITE goes on to (`SipEvent::FailedOver`).
        let transport = callbridge_sip::transport::Transport::of_uri_or_udp(&to)
            .unwrap_or(callbridge_sip::transport::Transport::Udp);
        let (located, signalling_ip) = match &req.target {
            Destination::Addr(a) => (None, Some(a.ip())),
            Destination::Locate(l) => {
                let route = self.shared.locate(&req.target, transport).await;
                let ip = route.first().map(|t| t.addr.ip());
                (Some((route, l.host.clone())), ip)
            }
        };
        let rules = self.latch_rules(signalling_ip);
        // SRTP is offered under `require`, and under `offer` to a target
        // reached over TLS (`sips:` or `;transport=tls`): keys sent in clear
        // SIP protect nothing.
        let keys = match self.shared.cfg.srtp {
            sdp::SrtpPolicy::Require => crate::srtp::fresh_keys(),
            sdp::SrtpPolicy::Offer if over_tls(&to) => crate::srtp::fresh_keys(),
            _ => Vec::new(),
        };
        if self.shared.cfg.srtp == sdp::SrtpPolicy::Require && keys.is_empty() {
            warn!("no random SRTP keys could be drawn: call not placed");
            return Err(ManagerError::Unavailable);
        }
        let srtp = if keys.is_empty() {
            callbridge_rtp::media::MediaSrtp::Off
        } else {
            callbridge_rtp::media::MediaSrtp::Awaiting
        };
        let stream = self.open_media(None, rules, true, Law::MuLaw, Some(101), srtp)?;
        let local = self.local_media(stream.local_addr().port(), keys);
        let offer = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
        let id = SessionId::new_v4();
        let (tx, mailbox) = mpsc::channel(MAILBOX);
        let events = self.shared.bus.publisher(id);
        let self_tx = tx.clone();
        let entry = Entry {
            mailbox: tx,
            events: events.feed(),
            direction: Direction::Outbound,
            phase: Phase::Created,
            call_id: None,
            call_ref: None,
            lead: req.lead,
        };
        let admitted = self
            .shared
            .registry()
            .admit(id, entry, self.shared.cfg.max_calls);
        if let Err(r) = admitted {
            stream.close().await;
            return Err(match r {
                Refusal::LeadBusy => ManagerError::LeadBusy,
                _ => ManagerError::Unavailable,
            });
        }
        // The row is in the store before `originate` returns (the HTTP
        // API answers 202 "row already in the store"); the call task does
        // not write it again.
        let mut row = self.session_row(
            id,
            Direction::Outbound,
            StoreTransport::Sip,
            None,
            user_part(&from),
            user_part(&to),
            req.campaign,
            req.lead,
            req.owner,
        );
        row.claim = req.claim;
        row.profile = Some(profile.name().to_owned());
        row.sip_headers.clone_from(&req.headers);
        row.model = Some(profile.model.clone());
        if let Some(c) = &profile.client {
            row.model_provider = Some(c.name.clone());
        }
        if let Err(refused) = self.shared.store.create(row).await {
            stream.close().await;
            return Err(match refused {
                CreateRefused::ClaimNotHeld => {
                    self.shared.registry().withdraw(id);
                    ManagerError::ClaimNotHeld
                }
                _ => {
                    self.refused_for_store(id);
                    ManagerError::Store
                }
            });
        }
        let ctx = TemplateContext {
            caller: user_part(&from).unwrap_or_default(),
            called: user_part(&to).unwrap_or_default(),
            direction: "outbound",
            profile: profile.name().to_owned(),
            lead: Some(req.metadata.iter().cloned().collect()),
            sip: req.headers.iter().cloned().collect(),
        };
        let (mut model_config, greeting) = model_config(&self.shared.cfg.model, &profile, &ctx);
        if profile.explicit_greeting {
            model_config.greeting = Greeting::OnRequest { prompt: greeting };
        }
        if let Some(i) = req.instructions {
            model_config.instructions = i;
        }
        if let Some(g) = req.greeting {
            model_config.greeting = g;
        }
        if let Some(v) = req.voice {
            model_config.voice = Some(v);
        }
        let mut metadata = parties(
            CallMetadata::with_call_id(id.to_string()),
            user_part(&from),
            user_part(&to),
        );
        metadata.context = req.metadata;
        let credentials = self
            .shared
            .cfg
            .outbound_auth
            .as_ref()
            .and_then(|a| a.for_target(&req.target));
        let spec = CallSpec {
            id,
            direction: Direction::Outbound,
            call: None,
            sip_call_id: None,
            row: None,
            transport: crate::bridge::transport::Transport::Rtp(stream),
            stream_guard: self.shared.gauges.hold(Gauge::MediaSocket),
            local_media: local,
            answer_sdp: None,
            originate: Some(Outgoing {
                located,
                spec: Originate {
                    to,
                    from: NameAddr::new(from),
                    target: match req.target {
                        Destination::Addr(a) => a,
                        // Unused: the located targets replace it.
                        Destination::Locate(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                    },
                    offer,
                    credentials,
                    extra_headers: req
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (bytes::Bytes::from(k.clone()), bytes::Bytes::from(v.clone()))
                        })
                        .collect(),
                },
            }),
            model_config,
            metadata,
            mailbox,
            events,
            token: self.inner.root.child_token(),
            amd: req.amd.unwrap_or(profile.amd),
            tools: crate::bridge::tools::ToolsCtx::new(id, &ctx, self_tx),
            profile,
        };
        self.spawn_call(spec);
        Ok(id)
    }
}

/// Whether an outbound call's signalling is TLS (a `sips:` Request-URI or
/// `;transport=tls`, RFC 3261 section 26.2.2): the UAC's own choice of
/// transport for the same URI.
fn over_tls(to: &Uri) -> bool {
    callbridge_sip::transport::Transport::of_uri_or_udp(to)
        == Some(callbridge_sip::transport::Transport::Tls)
}
