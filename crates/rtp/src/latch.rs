//! Which source a call's RTP is taken from and where it is sent: the
//! call's media peer is the address its SDP names (`c=` and the `m=`
//! port, as offered or answered); symmetric RTP (RFC 4961, "latching")
//! to another source is the exception a NAT needs, and it is granted only
//! under the configured [`LatchPolicy`].
//!
//! Owns: [`LatchPolicy`], [`LatchRules`], [`RejectReason`],
//! [`RejectedPackets`], the pure decision [`decide`] and the [`Latch`]
//! that applies it. No IO and no clock: the stream passes each packet's
//! source and whether the peer can know our address yet.
//!
//! # The decision table
//!
//! Checked in this order for a packet from `src` (IPv4-mapped IPv6
//! sources are compared as IPv4):
//!
//! | # | condition | decision |
//! |---|---|---|
//! | 1 | `src` is the SDP peer (and the peer is inside the allowlist) | accept; a latch elsewhere moves back to it ([`LatchDecision::Returned`]) and the peer is pinned for the rest of the call |
//! | 2 | `src`'s IP is outside `sip.allowed_peers` (when that list is not empty) | reject, `outside_allowed_peers` |
//! | 3 | `src` is the source already latched | accept |
//! | 4 | the SDP peer was heard, or another source is latched | reject, `not_peer` |
//! | 5 | policy `strict`, or `signalling-ip` and `src`'s IP is not the signalling peer's | reject, `latch_policy` |
//! | 6 | the peer cannot know our address yet (inbound call not answered) | reject, `before_answer` |
//! | 7 | otherwise | latch to `src` ([`LatchDecision::Latched`]) |
//!
//! Media is sent to the latched source, else to the SDP peer; never to an
//! address outside the allowlist: an SDP peer outside it is not used at
//! all (its packets fall under row 2, and nothing is sent until a source
//! is latched under the policy).
//!
//! # What an attacker can get
//!
//! Only a source the policy allows can latch (the signalling peer's IP by
//! default), and only after the answer told the caller our port; it holds
//! the latch only until the SDP peer's first packet, and the stream
//! handles received packets before it sends each tick. So such an
//! attacker receives at most the packets of the ticks between its first
//! packet after the answer and the caller's first packet, and its audio
//! is dropped from the jitter buffer when the latch moves back. A caller
//! behind a NAT (its SDP address never heard) keeps the first allowed
//! source that latched; a later change of its NAT mapping is not followed.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Which sources other than the SDP peer RTP may latch to (`rtp.latch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatchPolicy {
    /// Only from the signalling peer's IP (any port): a caller behind the
    /// same NAT as its signalling, or an SBC that relays media from its
    /// own address. The default.
    #[default]
    SignallingIp,
    /// From any address inside `sip.allowed_peers` (any address at all
    /// when that list is empty).
    AllowedPeers,
    /// Never: only the SDP peer is heard and served.
    Strict,
}

impl LatchPolicy {
    /// Every policy, in configuration order.
    pub const ALL: [LatchPolicy; 3] = [
        LatchPolicy::SignallingIp,
        LatchPolicy::AllowedPeers,
        LatchPolicy::Strict,
    ];

    /// The configuration spelling (`signalling-ip`, `allowed-peers`,
    /// `strict`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LatchPolicy::SignallingIp => "signalling-ip",
            LatchPolicy::AllowedPeers => "allowed-peers",
            LatchPolicy::Strict => "strict",
        }
    }

    /// Parses the configuration spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<LatchPolicy> {
        LatchPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why a packet was not taken (the `reason` label of
/// `callbridge_rtp_rejected_packets_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The source is outside `sip.allowed_peers`.
    OutsideAllowedPeers,
    /// The latch policy does not allow this source.
    LatchPolicy,
    /// The call's peer is known (heard, or latched) and this is not it.
    NotPeer,
    /// A latch candidate that arrived before the peer could know our
    /// address (an inbound call not yet answered).
    BeforeAnswer,
    /// An SRTP call's packet that failed authentication or was replayed
    /// (a source the latch rules allow, checked before it may latch: it
    /// never latches nor plays; SRTCP failures are counted here too).
    SrtpAuth,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::OutsideAllowedPeers,
        RejectReason::LatchPolicy,
        RejectReason::NotPeer,
        RejectReason::BeforeAnswer,
        RejectReason::SrtpAuth,
    ];

    /// The metric label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutsideAllowedPeers => "outside_allowed_peers",
            RejectReason::LatchPolicy => "latch_policy",
            RejectReason::NotPeer => "not_peer",
            RejectReason::BeforeAnswer => "before_answer",
            RejectReason::SrtpAuth => "srtp_auth",
        }
    }

    fn index(self) -> usize {
        match self {
            RejectReason::OutsideAllowedPeers => 0,
            RejectReason::LatchPolicy => 1,
            RejectReason::NotPeer => 2,
            RejectReason::BeforeAnswer => 3,
            RejectReason::SrtpAuth => 4,
        }
    }
}

/// Rejected packets by reason (cumulative, or a difference of two).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedPackets([u64; 5]);

impl RejectedPackets {
    /// Counts one packet.
    pub fn count(&mut self, reason: RejectReason) {
        self.0[reason.index()] += 1;
    }

    /// Packets rejected for `reason`.
    #[must_use]
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }

    /// Packets rejected for any reason.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The counts since `before` (per reason, never negative).
    #[must_use]
    pub fn since(&self, before: &RejectedPackets) -> RejectedPackets {
        let mut out = RejectedPackets::default();
        for (o, (a, b)) in out.0.iter_mut().zip(self.0.iter().zip(before.0.iter())) {
            *o = a.saturating_sub(*b);
        }
        out
    }
}

/// What a call's latch may do: the policy, the signalling peer's IP and
/// the allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatchRules {
    /// Which other sources may latch.
    pub policy: LatchPolicy,
    /// The IP the call's SIP came from (inbound) or went to (outbound).
    pub signalling_ip: Option<IpAddr>,
    /// `sip.allowed_peers`: no packet is taken from, and no packet sent
    /// to, an address outside it. Empty allows every address.
    pub allowed: Vec<IpNet>,
}

impl LatchRules {
    /// Rules for a call signalled from `signalling_ip`.
    #[must_use]
    pub fn new(
        policy: LatchPolicy,
        signalling_ip: Option<IpAddr>,
        allowed: Vec<IpNet>,
    ) -> LatchRules {
        LatchRules {
            policy,
            signalling_ip: signalling_ip.map(|ip| ip.to_canonical()),
            allowed,
        }
    }

    /// Latching to any source (a test peer, the load tool's callers): the
    /// `allowed-peers` policy with an empty allowlist.
    #[must_use]
    pub fn any() -> LatchRules {
        LatchRules::new(LatchPolicy::AllowedPeers, None, Vec::new())
    }

    /// Whether `ip` is inside the allowlist.
    #[must_use]
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed.is_empty() || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// Whether the policy lets a source at `ip` (inside the allowlist)
    /// latch.
    #[must_use]
    pub fn may_latch(&self, ip: IpAddr) -> bool {
        match self.policy {
            LatchPolicy::Strict => false,
            LatchPolicy::AllowedPeers => true,
            LatchPolicy::SignallingIp => self.signalling_ip == Some(ip.to_canonical()),
        }
    }

    /// Whether an SDP peer at `addr` can ever be served: it is inside the
    /// allowlist, or (outside it) a source the policy allows could still
    /// latch. `false` means no media could ever flow (policy `strict` and
    /// an SDP address outside the allowlist): refuse the offer with 488.
    /// No address yet (`c=0.0.0.0`, port 0) is serviceable: a re-INVITE
    /// may bring one.
    #[must_use]
    pub fn serviceable(&self, addr: Option<SocketAddr>) -> bool {
        match addr {
            Some(a) => self.allows(a.ip()) || self.policy != LatchPolicy::Strict,
            None => true,
        }
    }
}

/// What [`decide`] (and [`Latch::check`]) decided about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchDecision {
    /// Take it; where we send is unchanged.
    Accept,
    /// Take it: the first packet of a source other than the SDP peer that
    /// the policy allows; we now send to it.
    Latched(SocketAddr),
    /// Take it: the SDP peer was heard while another source was latched;
    /// we send to the peer again (and drop what the other source sent).
    Returned(SocketAddr),
    /// Drop it.
    Reject(RejectReason),
}

/// The latch's state as [`decide`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatchView {
    /// The SDP peer, when inside the allowlist (canonical form).
    pub peer: Option<SocketAddr>,
    /// Whether a packet from the SDP peer was taken.
    pub peer_heard: bool,
    /// The other source latched, if any (canonical form).
    pub latched: Option<SocketAddr>,
    /// Whether the peer can know our address (a latch may be taken).
    pub open: bool,
}

/// The decision table of the module docs, as a pure function.
#[must_use]
pub fn decide(rules: &LatchRules, view: &LatchView, src: SocketAddr) -> LatchDecision {
    let src = canonical(src);
    if view.peer == Some(src) {
        return match view.latched {
            Some(_) => LatchDecision::Returned(src),
            None => LatchDecision::Accept,
        };
    }
    if !rules.allows(src.ip()) {
        return LatchDecision::Reject(RejectReason::OutsideAllowedPeers);
    }
    if view.latched == Some(src) {
        return LatchDecision::Accept;
    }
    if view.peer_heard || view.latched.is_some() {
        return LatchDecision::Reject(RejectReason::NotPeer);
    }
    if !rules.may_latch(src.ip()) {
        return LatchDecision::Reject(RejectReason::LatchPolicy);
    }
    if !view.open {
        return LatchDecision::Reject(RejectReason::BeforeAnswer);
    }
    LatchDecision::Latched(src)
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// One call's latch: the [`LatchRules`], the SDP peer and what was heard.
/// See the module docs.
#[derive(Debug, Clone)]
pub struct Latch {
    rules: LatchRules,
    /// The SDP address as signalled (also when outside the allowlist).
    signalled: Option<SocketAddr>,
    view: LatchView,
}

impl Latch {
    /// A latch for the SDP peer `signalled` under `rules`; `open` says
    /// whether the peer can already know our address (an outbound call's
    /// offer carries it; an inbound call's answer is not sent yet).
    #[must_use]
    pub fn new(signalled: Option<SocketAddr>, rules: LatchRules, open: bool) -> Latch {
        let mut l = Latch {
            rules,
            signalled: None,
            view: LatchView {
                open,
                ..LatchView::default()
            },
        };
        l.set_signalled(signalled);
        l
    }

    /// The rules.
    #[must_use]
    pub fn rules(&self) -> &LatchRules {
        &self.rules
    }

    /// The state [`decide`] reads.
    #[must_use]
    pub fn view(&self) -> LatchView {
        self.view
    }

    /// Where to send: the latched source, else the SDP peer (when inside
    /// the allowlist), else nowhere.
    #[must_use]
    pub fn remote(&self) -> Option<SocketAddr> {
        self.view.latched.or(self.view.peer)
    }

    /// Our address is known to the peer now (the inbound call's answer is
    /// going out): sources the policy allows may latch from here on.
    pub fn open(&mut self) {
        self.view.open = true;
    }

    /// A new SDP address (the outbound call's answer, a re-INVITE). The
    /// same address changes nothing (a session refresh does not reopen the
    /// latch); a different one becomes the peer, not yet heard, and any
    /// latch is dropped.
    pub fn set_signalled(&mut self, addr: Option<SocketAddr>) {
        let addr = addr.map(canonical);
        if addr == self.signalled {
            return;
        }
        self.signalled = addr;
        self.view.peer = addr.filter(|a| self.rules.allows(a.ip()));
        self.view.peer_heard = false;
        self.view.latched = None;
    }

    /// The call's signalling peer moved (an outbound INVITE failed over to
    /// another server of its location, RFC 3263 section 4.3): the
    /// `signalling-ip` policy now lets a source at `ip` latch instead of
    /// one at the old IP. A latch already taken stays.
    pub fn set_signalling_ip(&mut self, ip: Option<IpAddr>) {
        self.rules.signalling_ip = ip.map(|ip| ip.to_canonical());
    }

    /// What [`Latch::check`] would decide about a packet from `src`,
    /// without applying it: the media core refuses a source the rules
    /// reject before it spends SRTP's authentication on the packet.
    #[must_use]
    pub fn peek(&self, src: SocketAddr) -> LatchDecision {
        decide(&self.rules, &self.view, src)
    }

    /// Decides about a packet from `src` and applies the decision.
    pub fn check(&mut self, src: SocketAddr) -> LatchDecision {
        let d = decide(&self.rules, &self.view, src);
        match d {
            LatchDecision::Accept => {
                if self.view.peer == Some(canonical(src)) {
                    self.view.peer_heard = true;
                }
            }
            LatchDecision::Returned(_) => {
                self.view.peer_heard = true;
                self.view.latched = None;
            }
            LatchDecision::Latched(a) => self.view.latched = Some(a),
            LatchDecision::Reject(_) => {}
        }
        d
    }
}

#[cfg(test)]
mod tests;
