//! An inbound INVITE: its offer (or none: a delayed offer), the media
//! it needs, admission, the session row and the call task.

use callbridge_crm_store::{SessionId, Transport as StoreTransport};
use callbridge_llm_bridge::CallMetadata;
use callbridge_rtp::g711::Law;
use callbridge_rtp::media::MediaSrtp;
use callbridge_sip::sdp::Codec;
use callbridge_sip::ua::IncomingCall;
use callbridge_sip::{StatusCode, sdp};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::profiles::{inbound_greeting, kept_headers, model_config};
use super::registry::{Entry, Refusal};
use super::{MAILBOX, Manager, ManagerError, parties, user_part};
use crate::bridge::CallSpec;
use crate::gauges::Gauge;
use crate::lifecycle::{Direction, Phase};
use crate::metrics::CallRefusal;
use crate::profile::template::TemplateContext;

impl Manager {
    /// Answers or refuses one inbound INVITE (the offer, admission, the
    /// media, the session row), then starts its call task. A call the
    /// engine paces waits up to `wait` for its next load window.
    pub(super) async fn admit_inbound(&self, inc: &IncomingCall, wait: std::time::Duration) {
        let sip = &self.shared.sip;
        let reject = |s: StatusCode| async move {
            let _ = sip.reject(inc.call, s).await;
        };
        let refused = |r: CallRefusal| self.shared.metrics.call_refused(r);
        // An INVITE without SDP (delayed offer, RFC 3261 section 13.2.1)
        // gets our offer in the 200, as an outbound call's INVITE carries
        // it; the answer comes in the ACK.
        let offer = if inc.offer.is_empty() {
            None
        } else {
            match sdp::Session::parse(&inc.offer) {
                Ok(o) => Some(o),
                Err(_) => {
                    refused(CallRefusal::Codec);
                    return reject(StatusCode::NOT_ACCEPTABLE_HERE).await;
                }
            }
        };
        // Negotiate against a placeholder port first to learn the codec,
        // then bind the stream and answer with its real port.
        // Fresh SDES keys for this call when SRTP may be used; the probe
        // and the real answer carry the same ones.
        let keys = match self.shared.cfg.srtp {
            sdp::SrtpPolicy::Off => Vec::new(),
            _ => crate::srtp::fresh_keys(),
        };
        let mut probe = self.local_media(0, keys.clone());
        if offer.is_none() && probe.srtp == sdp::SrtpPolicy::Offer {
            // Our offer in the 200 of a delayed offer is plain RTP unless
            // SRTP is required.
            probe.srtp_keys.clear();
        }
        let (law, te, remote, srtp) = match offer.as_ref().map(|o| sdp::answer(o, &probe)) {
            None if probe.offers_srtp() => {
                (Law::MuLaw, probe.telephone_event, None, MediaSrtp::Awaiting)
            }
            None => (Law::MuLaw, probe.telephone_event, None, MediaSrtp::Off),
            Some(Ok((_, n))) => (
                match n.codec {
                    Codec::Pcmu => Law::MuLaw,
                    Codec::Pcma => Law::ALaw,
                },
                n.telephone_event,
                n.remote_rtp,
                match n.srtp.as_ref().map(crate::srtp::media_keys) {
                    None => MediaSrtp::Off,
                    Some(Some(k)) => {
                        info!(call_id = %inc.call_id, suite = ?k.suite(), "SRTP negotiated");
                        MediaSrtp::Keys(k)
                    }
                    // Keys that parsed always fit their suite; never
                    // plain RTP in their place.
                    Some(None) => MediaSrtp::Awaiting,
                },
            ),
            Some(Err(e)) => {
                if matches!(e, sdp::SdpError::SrtpRequired | sdp::SdpError::SrtpUnusable) {
                    warn!(call_id = %inc.call_id, error = %e, "offer refused by rtp.srtp: 488");
                }
                refused(CallRefusal::Codec);
                return reject(e.status()).await;
            }
        };
        if self.shared.cfg.srtp == sdp::SrtpPolicy::Require && keys.is_empty() {
            warn!("no random SRTP keys could be drawn: inbound call refused with 503");
            refused(CallRefusal::Media);
            return reject(StatusCode::SERVICE_UNAVAILABLE).await;
        }
        let call_id = inc.call_id.to_string();
        let rules = self.latch_rules(inc.source.ip());
        if !rules.serviceable(remote) {
            warn!(
                call_id = %call_id,
                remote = remote.map(tracing::field::display),
                "the offer's media address is outside sip.allowed_peers and rtp.latch is strict: 488"
            );
            refused(CallRefusal::Codec);
            return reject(StatusCode::NOT_ACCEPTABLE_HERE).await;
        }
        if let Some(r) = remote.filter(|r| !rules.allows(r.ip())) {
            // Usually a carrier whose media addresses are missing from
            // sip.allowed_peers: loud, since the call may stay silent.
            warn!(
                call_id = %call_id,
                remote = %r,
                "the offer's media address is outside sip.allowed_peers: nothing is sent there; \
                 media waits for a source rtp.latch allows"
            );
        }
        if !self.inner.admission.admit(wait).await {
            let after = self.shared.cfg.retry_after;
            if let Err(e) = sip
                .reject_retry_after(inc.call, StatusCode::SERVICE_UNAVAILABLE, after)
                .await
            {
                if wait.is_zero() {
                    warn!(error = %e, "503 for an INVITE refused for overload not sent");
                } else {
                    // A paced INVITE may have been cancelled while it waited.
                    info!(error = %e, "503 for a paced INVITE not sent");
                }
            }
            return;
        }
        // A call that waited for a load window (in a task of its own, off
        // the router) rings now; one the caller cancelled meanwhile is gone
        // from the SIP core, and nothing is opened for it.
        if !wait.is_zero() && sip.ring(inc.call).await.is_err() {
            info!(call_id = %call_id, "INVITE cancelled while it waited for admission");
            return;
        }
        let stream = match self.open_media(remote, rules, false, law, te, srtp) {
            Ok(s) => s,
            Err(ManagerError::Media(callbridge_rtp::Error::OutOfFileDescriptors)) => {
                refused(CallRefusal::Media);
                tracing::error!(
                    "out of file descriptors: inbound call refused with 503 (raise the open-file limit, LimitNOFILE)"
                );
                let _ = sip
                    .reject_warning(
                        inc.call,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(self.shared.cfg.retry_after),
                        "out of file descriptors",
                    )
                    .await;
                return;
            }
            Err(e) => {
                warn!(error = %e, "no media port for an inbound call");
                refused(CallRefusal::Media);
                return reject(StatusCode::SERVICE_UNAVAILABLE).await;
            }
        };
        let local = self.local_media(stream.local_addr().port(), probe.srtp_keys);
        let answer = match &offer {
            None => sdp::make_offer(&local, sdp::Direction::SendRecv),
            Some(offer) => match sdp::answer(offer, &local) {
                Ok((answer, _)) => answer,
                Err(_) => {
                    refused(CallRefusal::Codec);
                    return reject(StatusCode::NOT_ACCEPTABLE_HERE).await;
                }
            },
        };
        let id = SessionId::new_v4();
        let (tx, mailbox) = mpsc::channel(MAILBOX);
        let events = self.shared.bus.publisher(id);
        let self_tx = tx.clone();
        let entry = Entry {
            mailbox: tx,
            events: events.feed(),
            direction: Direction::Inbound,
            phase: Phase::Created,
            call_id: Some(call_id.clone()),
            call_ref: Some(inc.call),
            lead: None,
        };
        let admitted = self
            .shared
            .registry()
            .admit(id, entry, self.shared.cfg.max_calls);
        match admitted {
            Ok(()) => {}
            Err(Refusal::Duplicate) => {
                warn!(call_id = %call_id, "second INVITE for a live Call-ID refused");
                refused(CallRefusal::Loop);
                stream.close().await;
                return reject(StatusCode::LOOP_DETECTED).await;
            }
            Err(_) => {
                refused(CallRefusal::Limit);
                stream.close().await;
                return reject(StatusCode::SERVICE_UNAVAILABLE).await;
            }
        }
        let (caller, called) = (user_part(inc.from.uri()), user_part(inc.to.uri()));
        let profile = self.inbound_profile(called.as_deref().unwrap_or(""), Some(inc.source.ip()));
        let kept = kept_headers(&inc.extension_headers, &self.shared.cfg.keep_headers);
        let ctx = TemplateContext {
            caller: caller.clone().unwrap_or_default(),
            called: called.clone().unwrap_or_default(),
            direction: "inbound",
            profile: profile.name().to_owned(),
            lead: None,
            sip: kept.iter().cloned().collect(),
        };
        let (mut model_config, greeting) = model_config(&self.shared.cfg.model, &profile, &ctx);
        model_config.greeting = inbound_greeting(greeting);
        let mut row = self.session_row(
            id,
            Direction::Inbound,
            StoreTransport::Sip,
            Some(call_id.clone()),
            caller,
            called,
            None,
            None,
            profile.owner,
        );
        row.profile = Some(profile.name().to_owned());
        row.sip_headers = kept;
        row.model = Some(profile.model.clone());
        if let Some(c) = &profile.client {
            row.model_provider = Some(c.name.clone());
        }
        let spec = CallSpec {
            id,
            direction: Direction::Inbound,
            call: Some(inc.call),
            sip_call_id: Some(call_id.clone()),
            // Written below, before the call task may answer.
            row: None,
            transport: crate::bridge::transport::Transport::Rtp(stream),
            stream_guard: self.shared.gauges.hold(Gauge::MediaSocket),
            local_media: local,
            answer_sdp: Some(answer.to_bytes()),
            originate: None,
            model_config,
            metadata: parties(
                CallMetadata::with_call_id(call_id),
                user_part(inc.from.uri()),
                user_part(inc.to.uri()),
            ),
            mailbox,
            events,
            token: self.inner.root.child_token(),
            amd: false,
            tools: crate::bridge::tools::ToolsCtx::new(id, &ctx, self_tx),
            profile,
        };
        // Row before answer: the call is answered only once its row is in
        // the store. The write runs in a task of its own so the router
        // goes on routing (a CANCEL meanwhile waits in the mailbox).
        let this = self.clone();
        let call = inc.call;
        tokio::spawn(async move {
            if this.shared.store.create(row).await.is_ok() {
                this.spawn_call(spec);
                return;
            }
            this.refused_for_store(id);
            if let crate::bridge::transport::Transport::Rtp(stream) = spec.transport {
                stream.close().await;
            }
            let after = this.shared.cfg.retry_after;
            if let Err(e) = this
                .shared
                .sip
                .reject_retry_after(call, StatusCode::SERVICE_UNAVAILABLE, after)
                .await
            {
                warn!(error = %e, "503 for a call without a session row not sent");
            }
        });
    }
}
