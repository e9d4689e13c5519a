//! The manager's configuration and the outbound call request.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use callbridge_crm_store::{CampaignId, ClaimToken, LeadId, UserId};
use callbridge_llm_bridge::{Greeting, SessionConfig};
use callbridge_rtp::latch::LatchPolicy;
use callbridge_rtp::ports::PortPoolConfig;

use crate::store_writer::WriterConfig;

/// Everything the manager needs besides the model, the store and the
/// summarizer.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where the SIP socket binds.
    pub sip_bind: SocketAddr,
    /// The SIP core's settings (contact address, filter, timers...);
    /// `max_calls` and `retry_after` are taken from this struct.
    pub sip: callbridge_sip::ua::Config,
    /// SIP over TCP and TLS: listeners, outbound TLS trust, connection
    /// limits (default: none listening; outbound TCP/TLS on demand).
    pub sip_streams: callbridge_sip::driver::StreamConfig,
    /// The RTP port range.
    pub rtp: PortPoolConfig,
    /// The address written in our SDP (`c=`).
    pub media_ip: IpAddr,
    /// Most concurrent calls; beyond it INVITEs get 503 + Retry-After.
    pub max_calls: usize,
    /// The Retry-After of that 503.
    pub retry_after: Duration,
    /// How long a new call the media engine paces (the calls it takes
    /// before its next load window are taken, see
    /// [`callbridge_rtp::engine::admission`]) may wait for a window that
    /// lets it in before it is refused with 503; the INVITE has had its
    /// 100 Trying. Zero refuses at once. Calls refused for the engine's
    /// load or its learned ceiling do not wait.
    pub admission_wait: Duration,
    /// How long the caller must speak over our reply before the call
    /// stops the reply itself and tells the model (a barge-in that does not
    /// wait for the model; shorter backchannels such as "mm-hm" do not cut
    /// the agent off). `None` leaves barge-in to the model's own detection.
    /// See the bridge's `caller` module for how speech is detected.
    pub barge_in_after: Option<Duration>,
    /// Which sources other than the SDP peer a call's RTP may latch to
    /// (`rtp.latch`). The allowlist is `sip.filter`'s: no RTP is taken
    /// from, nor sent to, an address outside it (see
    /// [`callbridge_rtp::latch`]).
    pub rtp_latch: LatchPolicy,
    /// SRTP (`rtp.srtp`, RFC 4568 SDES): `Off` answers plain RTP only
    /// (488 to an `RTP/SAVP`-only offer); `Offer` takes SRTP when offered
    /// and offers it to `sips:` targets; `Require` refuses plaintext offers
    /// with 488 and offers only `RTP/SAVP`.
    pub srtp: callbridge_sip::sdp::SrtpPolicy,
    /// The lifecycle policies and timers of each call, RTP inactivity
    /// (`machine.rtp_inactivity`: no caller media for this long ends the
    /// call as `RtpTimeout`) among them. Among them,
    /// `machine.model_failure_before_answer` is what an inbound call does
    /// when its model session cannot be opened before the answer:
    /// [`ModelFailurePolicy::Reject503`](crate::lifecycle::ModelFailurePolicy::Reject503)
    /// (the default: 503 to the INVITE, nothing answered) or
    /// [`ModelFailurePolicy::AnswerThenEnd`](crate::lifecycle::ModelFailurePolicy::AnswerThenEnd)
    /// (answer, play [`ManagerConfig::fallback_clip`], then BYE once it
    /// has played).
    /// Either way the session ends `failed` with reason `model-failure`. A
    /// model that fails only after `machine.answer_wait` (the call was
    /// answered while it was still opening) ends with BYE whatever the
    /// setting. The 503 carries the policy's `retry_after` as a
    /// Retry-After header when it has one.
    pub machine: crate::lifecycle::Config,
    /// The WAV file (mono, 16-bit PCM, 8000 Hz, at most 30 s) played when
    /// the model fails on an answered call, before the BYE; `None` plays
    /// the built-in apology ([`crate::bridge::fallback::BUILTIN_WAV`]).
    /// Checked at [`crate::Manager::start`], which also raises
    /// `machine.farewell_drain` to the clip's length plus 1 s if shorter.
    pub fallback_clip: Option<PathBuf>,
    /// The model session template (endpoint, key, model, voice,
    /// instructions, formats). Inbound calls use `Greeting::OnRequest`
    /// with [`ManagerConfig::greeting_prompt`] (pre-warm while ringing).
    pub model: SessionConfig,
    /// The prompt that makes the model greet an inbound caller.
    pub greeting_prompt: String,
    /// Where recordings go (`<session id>.wav`); `None` records nothing.
    pub recordings_dir: Option<PathBuf>,
    /// Who may read the files the calls write (recordings): owner only
    /// (`0600`, the default) or group-readable (`0640`).
    pub file_access: callbridge_files::Access,
    /// How long a cancelled call task may take to end before it is aborted.
    pub join_timeout: Duration,
    /// How long answered calls may go on after a graceful shutdown starts.
    pub shutdown_drain: Duration,
    /// The trunk's digest credentials for outbound calls, and the one
    /// address they are used for; `None`: outbound INVITEs carry no
    /// credentials and a 401/407 fails the call.
    pub outbound_auth: Option<OutboundAuth>,
    /// How the store writer retries failed writes, where it journals
    /// them ([`WriterConfig::spool_dir`]) and how often it probes the
    /// store.
    pub store_writer: WriterConfig,
    /// Where the model's `transfer_call` (and any future tool that dials)
    /// may send a call ([`crate::dial_targets`]). Empty (the default): the
    /// tool is not offered to the model and every request is refused.
    pub transfer_targets: crate::dial_targets::DialTargets,
    /// The seed of the manager's randomness: SIP tags, branches, Call-IDs
    /// and nonces; RTP ports, SSRCs, first sequence numbers and
    /// timestamps; SDP session ids. `None` (the default, and what
    /// production uses): a CSPRNG seeded from the operating system. `Some`
    /// makes those values repeatable (tests).
    pub rng_seed: Option<u64>,
    /// The media engine the calls' RTP runs on: built by the binary with
    /// its clock and settings (threads, real-time priority) and shared
    /// with anything else that opens media. `None` (the default): the
    /// manager starts one thread on the system clock, normal priority.
    pub engine: Option<callbridge_rtp::engine::MediaEngine>,
    /// How outbound calls with answering-machine detection on
    /// ([`OriginateRequest::amd`]) decide and what they do with a
    /// machine (see [`crate::amd`]). Checked at [`crate::Manager::start`].
    pub amd: crate::amd::AmdSettings,
    /// Call-event webhooks ([`crate::webhooks`]): the outbox rows each
    /// call writes. `None` (the default): no rows.
    pub webhooks: Option<std::sync::Arc<crate::webhooks::WebhookConfig>>,
    /// The routing profiles (issue 23, [`crate::profile`]); `None` (the
    /// default): one implicit profile made of this configuration's
    /// model instructions, greeting, tools, transfer targets and longest
    /// call. Replace them later with [`crate::Manager::set_profiles`].
    pub profiles: Option<crate::profile::Profiles>,
    /// The `X-` headers of inbound INVITEs kept on the session (stored,
    /// shown by the API, given to the profile's templates as `sip`), by
    /// name, matched without regard to case (`sip.keep_headers`).
    pub keep_headers: Vec<String>,
    /// Who owns inbound calls (the session row's `owner`, which decides
    /// which users see a call). Default: nobody (admins only).
    pub inbound_owners: InboundOwners,
    /// The provider name written on each session row (`model_provider`),
    /// e.g. `mock` when a mock serves the provider's protocol. `None` (the
    /// default): the model client's own name.
    pub provider_label: Option<String>,
    /// The name servers RFC 3263 locations ask (`sip.dns_servers`);
    /// empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

/// The owner of an inbound call: the user the called number belongs to,
/// else the default owner, else nobody.
///
/// ```
/// use callbridge_crm_store::UserId;
/// use callbridge_session::InboundOwners;
///
/// let owners = InboundOwners {
///     by_called: [("+4930123456".to_owned(), UserId(7))].into(),
///     default: Some(UserId(1)),
/// };
/// assert_eq!(owners.owner_of(Some("+4930123456")), Some(UserId(7)));
/// assert_eq!(owners.owner_of(Some("+4930999999")), Some(UserId(1)));
/// assert_eq!(owners.owner_of(None), Some(UserId(1)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundOwners {
    /// Called number, as the session row stores it (the To URI's user
    /// part, or the carrier's `to`), to its owner.
    pub by_called: std::collections::HashMap<String, UserId>,
    /// The owner of every other inbound call.
    pub default: Option<UserId>,
}

impl InboundOwners {
    /// The owner of a call to `called`.
    pub fn owner_of(&self, called: Option<&str>) -> Option<UserId> {
        called
            .and_then(|c| self.by_called.get(c).copied())
            .or(self.default)
    }
}

/// Digest credentials (RFC 3261 section 22.2) for the outbound calls whose
/// INVITE goes to one address: the trunk's outbound proxy or registrar.
/// A call sent anywhere else carries none, so a challenge from another
/// host never gets an answer computed from the trunk's password.
#[derive(Debug, Clone)]
pub struct OutboundAuth {
    /// Calls sent to this destination answer its 401/407 challenges.
    pub target: crate::dns::Destination,
    /// The username and password (`Debug` redacts the password).
    pub credentials: callbridge_sip::auth::Credentials,
}

impl OutboundAuth {
    /// The credentials for a call sent to `target`, if it is ours.
    pub fn for_target(
        &self,
        target: &crate::dns::Destination,
    ) -> Option<callbridge_sip::auth::Credentials> {
        (self.target == *target).then(|| self.credentials.clone())
    }
}

impl ManagerConfig {
    /// Defaults for a SIP socket at `sip_bind` and RTP on `rtp_ports` of
    /// `media_ip`: 100 calls, Retry-After 30 s, barge-in after 250 ms of
    /// caller speech, the machine's defaults with RTP inactivity 30 s, the built-in fallback clip, join timeout 5 s,
    /// shutdown drain 10 s, no outbound credentials, RTP latching only from
    /// the signalling peer's IP, the store writer's defaults (no journal),
    /// owner-only files, no transfer targets.
    pub fn new(
        sip_bind: SocketAddr,
        media_ip: IpAddr,
        rtp_ports: std::ops::RangeInclusive<u16>,
        model: SessionConfig,
    ) -> ManagerConfig {
        ManagerConfig {
            sip_bind,
            sip: callbridge_sip::ua::Config::new(sip_bind),
            sip_streams: callbridge_sip::driver::StreamConfig::default(),
            rtp: PortPoolConfig {
                bind_ip: media_ip,
                range: rtp_ports,
                rtcp: false,
            },
            media_ip,
            max_calls: 100,
            retry_after: Duration::from_secs(30),
            admission_wait: Duration::from_secs(2),
            barge_in_after: Some(Duration::from_millis(250)),
            rtp_latch: LatchPolicy::default(),
            srtp: callbridge_sip::sdp::SrtpPolicy::Off,
            machine: crate::lifecycle::Config {
                rtp_inactivity: Some(Duration::from_secs(30)),
                ..crate::lifecycle::Config::default()
            },
            fallback_clip: None,
            model,
            greeting_prompt: Greeting::DEFAULT_PROMPT.to_owned(),
            recordings_dir: None,
            file_access: callbridge_files::Access::Owner,
            join_timeout: Duration::from_secs(5),
            shutdown_drain: Duration::from_secs(10),
            outbound_auth: None,
            store_writer: WriterConfig::default(),
            transfer_targets: crate::dial_targets::DialTargets::none(),
            rng_seed: None,
            engine: None,
            amd: crate::amd::AmdSettings::default(),
            webhooks: None,
            profiles: None,
            keep_headers: Vec::new(),
            inbound_owners: InboundOwners::default(),
            provider_label: None,
            dns_servers: Vec::new(),
        }
    }
}

/// An outbound call to place with [`crate::Manager::originate`].
#[derive(Clone)]
pub struct OriginateRequest {
    /// The Request-URI, e.g. `sip:+15551234@trunk.example`.
    pub to: String,
    /// Our identity (From URI).
    pub from: String,
    /// Where the INVITE goes (trunk or callee): an address, or a domain
    /// located by RFC 3263 when the call is placed, whose targets are
    /// tried in order ([`callbridge_sip::ua::UserAgent::originate_located`]).
    pub target: crate::dns::Destination,
    /// The campaign, for campaign calls.
    pub campaign: Option<CampaignId>,
    /// The lead; a second originate for a live lead is refused.
    pub lead: Option<LeadId>,
    /// The dialer's claim of `lead` this call is for: the call is placed
    /// only while the store still holds the lead claimed under it
    /// ([`crate::ManagerError::ClaimNotHeld`] otherwise).
    pub claim: Option<ClaimToken>,
    /// The user the call belongs to (written to the session row; the HTTP
    /// API shows a non-admin only their own direct calls).
    pub owner: Option<UserId>,
    /// Instructions replacing the configured ones.
    pub instructions: Option<String>,
    /// Greeting replacing the configured one.
    pub greeting: Option<Greeting>,
    /// Facts for the model (appended to its instructions).
    pub metadata: Vec<(String, String)>,
    /// Answering-machine detection for this call
    /// ([`ManagerConfig::amd`]): nothing the model says reaches the callee
    /// until the detection says a person answered. `None`: the profile's
    /// setting.
    pub amd: Option<bool>,
    /// The routing profile by name ([`crate::profile`]); `None`: the
    /// default profile.
    pub profile: Option<String>,
    /// SIP headers to set on the INVITE (checked by the caller: `X-`
    /// names, bounded values).
    pub headers: Vec<(String, String)>,
    /// The model voice for this call, replacing the configured one.
    pub voice: Option<String>,
}

impl std::fmt::Debug for OriginateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginateRequest")
            .field("to", &"<redacted>")
            .field("target", &self.target)
            .field("lead", &self.lead)
            .field("claim", &self.claim)
            .field("owner", &self.owner)
            .field("amd", &self.amd)
            .field("profile", &self.profile)
            .field("headers", &self.headers.len())
            .field("voice", &self.voice)
            .finish()
    }
}

impl OriginateRequest {
    /// A request to `to` from `from`, sent to `target`, nothing else set.
    pub fn new(
        to: impl Into<String>,
        from: impl Into<String>,
        target: impl Into<crate::dns::Destination>,
    ) -> Self {
        OriginateRequest {
            to: to.into(),
            from: from.into(),
            target: target.into(),
            campaign: None,
            lead: None,
            claim: None,
            owner: None,
            instructions: None,
            greeting: None,
            metadata: Vec::new(),
            amd: None,
            profile: None,
            headers: Vec::new(),
            voice: None,
        }
    }
}
