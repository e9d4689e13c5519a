//! Offer/answer for one G.711 audio stream (RFC 3264): answer an offer with
//! PCMU or PCMA (our preference order) plus telephone-event (RFC 4733) when
//! offered, refuse offers with neither codec (488), make offers for outbound
//! calls, read answers, and recognize hold and resume (RFC 3264 section 8.4).
//! With SRTP (RFC 4568): `RTP/SAVP` streams and their `a=crypto` keys, under
//! the [`SrtpPolicy`].

use super::{
    Address, Attribute, Connection, CryptoAttribute, CryptoSuite, Direction, KeyMaterial, Media,
    NegotiatedSrtp, Origin, SdpError, Session, SrtpPolicy,
};
use std::net::{IpAddr, SocketAddr};

/// The G.711 codecs this stack speaks (RFC 3551 section 4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 mu-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// What we offer or accept: our RTP address and our preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address RTP is received on (written in `c=` and `o=`).
    pub address: IpAddr,
    /// RTP port (RTCP is on the next port).
    pub rtp_port: u16,
    /// Codecs in preference order; the first one the offer also has wins.
    pub codecs: Vec<Codec>,
    /// Payload type we offer for telephone-event, or `None` for no DTMF.
    pub telephone_event: Option<u8>,
    /// Packet time in milliseconds.
    pub ptime: u32,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; increase it for every new offer of a session.
    pub session_version: u64,
    /// `o=` username.
    pub username: String,
    /// Whether SRTP is off, taken when offered, or required.
    pub srtp: SrtpPolicy,
    /// Our SRTP keys, one per suite, in preference order: fresh for each
    /// call (the caller draws them from the OS RNG). An answer uses the
    /// one of the suite chosen; an offer lists them all (`RTP/SAVP`) when
    /// there are any and the policy is not off.
    pub srtp_keys: Vec<(CryptoSuite, KeyMaterial)>,
}

impl LocalMedia {
    /// Defaults: PCMU then PCMA, telephone-event on 101, 20 ms, session id
    /// and version 0, username `-`.
    pub fn new(address: IpAddr, rtp_port: u16) -> LocalMedia {
        LocalMedia {
            address,
            rtp_port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(101),
            ptime: 20,
            session_id: 0,
            session_version: 0,
            username: "-".to_owned(),
            srtp: SrtpPolicy::Off,
            srtp_keys: Vec::new(),
        }
    }

    fn session(&self, media: Vec<Media>) -> Session {
        Session {
            origin: Origin {
                username: self.username.clone(),
                session_id: self.session_id,
                session_version: self.session_version,
                address: Address::Ip(self.address),
            },
            name: "callbridge".to_owned(),
            connection: Some(Connection {
                address: Address::Ip(self.address),
            }),
            bandwidth: Vec::new(),
            timing: vec!["0 0".to_owned()],
            other: Vec::new(),
            attributes: Vec::new(),
            media,
        }
    }

    fn srtp_key(&self, suite: CryptoSuite) -> Option<&KeyMaterial> {
        self.srtp_keys
            .iter()
            .find_map(|(s, k)| (*s == suite).then_some(k))
    }

    /// Whether [`make_offer`] offers SRTP.
    #[must_use]
    pub fn offers_srtp(&self) -> bool {
        self.srtp != SrtpPolicy::Off && !self.srtp_keys.is_empty()
    }
}

/// The outcome of offer/answer for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio section in the m-line list.
    pub media_index: usize,
    /// The codec both sides use.
    pub codec: Codec,
    /// Its payload type on the wire.
    pub payload_type: u8,
    /// The telephone-event payload type, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP: `None` when the peer gave port 0 or an
    /// unspecified/non-IP address (RFC 2543-style hold).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (a=rtcp, else RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// Our direction for the stream.
    pub direction: Direction,
    /// The peer's packet time, when given.
    pub remote_ptime: Option<u32>,
    /// The SRTP suite and keys of an `RTP/SAVP` stream; `None` for plain
    /// RTP.
    pub srtp: Option<NegotiatedSrtp>,
}

/// Whether an offer puts the call on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Media flows both ways (or at least toward the peer).
    Active,
    /// The peer holds the call: `a=sendonly`, `a=inactive`, or `c=0.0.0.0`.
    Held,
}

fn find_codec(m: &Media, codec: Codec) -> Option<u8> {
    m.payload_types().into_iter().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case(codec.encoding_name())
                && r.clock_rate == 8000
                && r.channels.is_none_or(|c| c == 1)
        })
    })
}

fn find_telephone_event(m: &Media) -> Option<u8> {
    m.payload_types().into_iter().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
        })
    })
}

fn first_audio(s: &Session) -> Option<usize> {
    s.media.iter().position(|m| m.is_rtp_audio() && m.port != 0)
}

fn remote_addrs(s: &Session, index: usize) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let Some(m) = s.media.get(index) else {
        return (None, None);
    };
    let ip = s
        .connection_for(index)
        .and_then(|c| c.address.ip())
        .filter(|ip| !ip.is_unspecified());
    let (Some(ip), true) = (ip, m.port != 0) else {
        return (None, None);
    };
    let rtcp = match m.rtcp() {
        Some(r) => {
            let rip = r.address.and_then(|a| a.ip()).unwrap_or(ip);
            Some(SocketAddr::new(rip, r.port))
        }
        None => m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
    };
    (Some(SocketAddr::new(ip, m.port)), rtcp)
}

fn audio_media(
    local: &LocalMedia,
    codecs: &[(Codec, u8)],
    te: Option<(u8, Option<String>)>,
    dir: Direction,
    crypto: &[CryptoAttribute],
) -> Media {
    let mut formats: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
    let mut attributes: Vec<Attribute> = codecs
        .iter()
        .map(|(c, pt)| Attribute::value("rtpmap", format!("{pt} {}/8000", c.encoding_name())))
        .collect();
    if let Some((pt, fmtp)) = te {
        formats.push(pt.to_string());
        attributes.push(Attribute::value(
            "rtpmap",
            format!("{pt} telephone-event/8000"),
        ));
        attributes.push(Attribute::value(
            "fmtp",
            format!("{pt} {}", fmtp.as_deref().unwrap_or("0-16")),
        ));
    }
    attributes.push(Attribute::value("ptime", local.ptime.to_string()));
    attributes.push(Attribute::flag(dir.as_str()));
    for c in crypto {
        attributes.push(Attribute::value("crypto", c.to_value()));
    }
    Media {
        kind: "audio".to_owned(),
        port: local.rtp_port,
        port_count: None,
        protocol: if crypto.is_empty() {
            "RTP/AVP"
        } else {
            "RTP/SAVP"
        }
        .to_owned(),
        formats,
        connection: None,
        bandwidth: Vec::new(),
        other: Vec::new(),
        attributes,
    }
}

/// The audio stream an answer takes under our SRTP policy, with the
/// offer's crypto line we accept and our key for it (RFC 4568 section
/// 7.1.2: the offerer's preference order, the first line we can use).
fn pick_audio(
    offer: &Session,
    local: &LocalMedia,
) -> Result<(usize, Option<(CryptoAttribute, KeyMaterial)>), SdpError> {
    let audio = || {
        offer
            .media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_rtp_audio() && m.port != 0)
    };
    let plain = audio().find(|(_, m)| !m.is_srtp()).map(|(i, _)| i);
    let any_srtp = audio().any(|(_, m)| m.is_srtp());
    let secure = || {
        audio().filter(|(_, m)| m.is_srtp()).find_map(|(i, m)| {
            m.crypto().into_iter().find_map(|c| {
                let ours = local.srtp_key(c.suite)?.clone();
                Some((i, Some((c, ours))))
            })
        })
    };
    match local.srtp {
        SrtpPolicy::Off => plain.map(|i| (i, None)).ok_or(if any_srtp {
            SdpError::SrtpUnusable
        } else {
            SdpError::NoAudio
        }),
        SrtpPolicy::Offer => secure().or(plain.map(|i| (i, None))).ok_or(if any_srtp {
            SdpError::SrtpUnusable
        } else {
            SdpError::NoAudio
        }),
        SrtpPolicy::Require => secure().ok_or(if any_srtp {
            SdpError::SrtpUnusable
        } else if plain.is_some() {
            SdpError::SrtpRequired
        } else {
            SdpError::NoAudio
        }),
    }
}

/// Answer an offer (RFC 3264 section 6): the first RTP audio stream the
/// SRTP policy takes (`RTP/SAVP` with a crypto line we can use, or
/// `RTP/AVP`; see [`SrtpPolicy`]) gets our most preferred codec that the
/// offer has, plus telephone-event when offered, and for SRTP our key of
/// the offer's chosen suite under its tag (RFC 4568 section 7.1.2); every
/// other stream is rejected with port 0. Errors map to 488
/// ([`SdpError::status`]).
pub fn answer(offer: &Session, local: &LocalMedia) -> Result<(Session, Negotiated), SdpError> {
    let (index, crypto) = pick_audio(offer, local)?;
    let m = &offer.media[index];
    let (codec, pt) = local
        .codecs
        .iter()
        .find_map(|&c| find_codec(m, c).map(|pt| (c, pt)))
        .ok_or(SdpError::NoCommonCodec)?;
    let te = local
        .telephone_event
        .and_then(|_| find_telephone_event(m))
        .map(|pt| (pt, m.fmtp(pt).map(str::to_owned)));
    let offer_dir = offer.direction(index);
    let direction = offer_dir.answer();
    let (ours, srtp) = match crypto {
        Some((theirs, key)) => (
            vec![CryptoAttribute {
                tag: theirs.tag,
                suite: theirs.suite,
                key: key.clone(),
            }],
            Some(NegotiatedSrtp {
                suite: theirs.suite,
                local: key,
                remote: theirs.key,
            }),
        ),
        None => (Vec::new(), None),
    };
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(k, om)| {
            if k == index {
                audio_media(local, &[(codec, pt)], te.clone(), direction, &ours)
            } else {
                Media {
                    kind: om.kind.clone(),
                    port: 0,
                    port_count: None,
                    protocol: om.protocol.clone(),
                    formats: om.formats.clone(),
                    connection: None,
                    bandwidth: Vec::new(),
                    other: Vec::new(),
                    attributes: Vec::new(),
                }
            }
        })
        .collect();
    let (remote_rtp, remote_rtcp) = remote_addrs(offer, index);
    Ok((
        local.session(media),
        Negotiated {
            media_index: index,
            codec,
            payload_type: pt,
            telephone_event: te.map(|(pt, _)| pt),
            remote_rtp,
            remote_rtcp,
            direction,
            remote_ptime: m.ptime(),
            srtp,
        },
    ))
}

/// Answer a new offer in an established session (a re-INVITE's or
/// UPDATE's, RFC 3264 section 8): like [`answer`], with the `o=` version
/// of `local` grown by one only when the answer differs from `last`, the
/// SDP we sent before (an answer like the last one keeps the version).
pub fn answer_again(
    offer: &Session,
    local: &mut LocalMedia,
    last: Option<&[u8]>,
) -> Result<(Session, Negotiated), SdpError> {
    let (a, n) = answer(offer, local)?;
    if last == Some(&a.to_bytes()[..]) {
        return Ok((a, n));
    }
    local.session_version += 1;
    answer(offer, local)
}

/// Make an offer for an outbound call or a re-INVITE: one audio stream with
/// our codecs in preference order (static payload types), telephone-event,
/// ptime and `direction` (sendrecv; sendonly to hold, RFC 3264 section 8.4);
/// `RTP/SAVP` with one `a=crypto` line per key (tags 1, 2, ... in our
/// preference order) when [`LocalMedia::offers_srtp`].
pub fn make_offer(local: &LocalMedia, direction: Direction) -> Session {
    let codecs: Vec<(Codec, u8)> = local
        .codecs
        .iter()
        .map(|&c| (c, c.static_payload_type()))
        .collect();
    let te = local.telephone_event.map(|pt| (pt, None));
    let crypto: Vec<CryptoAttribute> = if local.offers_srtp() {
        local
            .srtp_keys
            .iter()
            .zip(1..)
            .map(|((suite, key), tag)| CryptoAttribute {
                tag,
                suite: *suite,
                key: key.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    local.session(vec![audio_media(local, &codecs, te, direction, &crypto)])
}

/// Read the answer to our offer (RFC 3264 section 7): same number of
/// m-lines, the audio stream accepted with a codec we offered; for an
/// `RTP/SAVP` offer an `RTP/SAVP` answer with one crypto line of a tag and
/// suite we offered (RFC 4568 section 7.1.3).
pub fn process_answer(offer: &Session, answer: &Session) -> Result<Negotiated, SdpError> {
    if offer.media.len() != answer.media.len() {
        return Err(SdpError::AnswerMismatch("number of m-lines differs"));
    }
    let index = first_audio(offer).ok_or(SdpError::NoAudio)?;
    let om = &offer.media[index];
    let am = &answer.media[index];
    if am.port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    if am.kind != om.kind {
        return Err(SdpError::AnswerMismatch("media kind differs"));
    }
    if am.is_srtp() != om.is_srtp() {
        return Err(SdpError::AnswerMismatch("transport protocol differs"));
    }
    let srtp = if om.is_srtp() {
        let offered = om.crypto();
        let srtp = am.crypto().into_iter().find_map(|theirs| {
            let ours = offered
                .iter()
                .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)?;
            Some(NegotiatedSrtp {
                suite: theirs.suite,
                local: ours.key.clone(),
                remote: theirs.key,
            })
        });
        Some(srtp.ok_or(SdpError::SrtpUnusable)?)
    } else {
        None
    };
    let (codec, pt) = am
        .payload_types()
        .into_iter()
        .find_map(|pt| {
            let r = am.rtpmap(pt)?;
            let codec = [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| {
                r.encoding.eq_ignore_ascii_case(c.encoding_name()) && r.clock_rate == 8000
            })?;
            find_codec(om, codec).map(|_| (codec, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = find_telephone_event(am).filter(|_| find_telephone_event(om).is_some());
    let (remote_rtp, remote_rtcp) = remote_addrs(answer, index);
    Ok(Negotiated {
        media_index: index,
        codec,
        payload_type: pt,
        telephone_event,
        remote_rtp,
        remote_rtcp,
        direction: answer.direction(index).answer(),
        remote_ptime: am.ptime(),
        srtp,
    })
}

/// Whether a (re-)offer holds the call: its audio stream is `sendonly` or
/// `inactive`, or its connection address is `0.0.0.0` (RFC 2543 style).
/// A later offer with `sendrecv` (or `recvonly`) resumes it. The stream
/// read is the first RTP audio stream with a port, as [`answer`] skips a
/// disabled one (port 0).
pub fn hold_state(offer: &Session) -> HoldState {
    let Some(index) = offer
        .media
        .iter()
        .position(|m| m.is_rtp_audio() && m.port != 0)
    else {
        return HoldState::Active;
    };
    let zero = offer
        .connection_for(index)
        .and_then(|c| c.address.ip())
        .is_some_and(|ip| ip.is_unspecified());
    match offer.direction(index) {
        Direction::SendOnly | Direction::Inactive => HoldState::Held,
        _ if zero => HoldState::Held,
        _ => HoldState::Active,
    }
}
