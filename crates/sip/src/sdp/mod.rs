//! SDP (RFC 4566): the session description carried in INVITE and 200 OK
//! bodies, parsed into sessions and media sections and written back in the
//! RFC's line order; offer/answer for G.711 audio (RFC 3264) lives in
//! [`answer`], [`make_offer`], [`process_answer`] and [`hold_state`].
//!
//! SDP is parsed once per offer, never per packet, so values are owned
//! strings; the input is bounded by [`MAX_SDP_LEN`], [`MAX_LINES`] and
//! [`MAX_MEDIA`].

mod crypto;
mod negotiate;
mod parse;

pub use crypto::{
    CryptoAttribute, CryptoError, CryptoSuite, KeyMaterial, MAX_CRYPTO_LINES, NegotiatedSrtp,
    SrtpPolicy,
};
pub use negotiate::{
    Codec, HoldState, LocalMedia, Negotiated, answer, answer_again, hold_state, make_offer,
    process_answer,
};

use std::fmt::Write as _;
use std::net::IpAddr;

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most lines accepted in one SDP body.
pub const MAX_LINES: usize = 512;
/// Most media sections accepted.
pub const MAX_MEDIA: usize = 16;

/// Why an SDP body was refused, and how the call answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Larger than [`MAX_SDP_LEN`] or with more lines/media than allowed.
    #[error("SDP exceeds the {0} limit")]
    TooLarge(&'static str),
    /// Not UTF-8 text.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// A line does not follow its grammar.
    #[error("SDP line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A mandatory line (v=, o=, s=, t=) is missing.
    #[error("SDP has no {0} line")]
    Missing(&'static str),
    /// The offer has no usable audio stream (RTP/AVP, non-zero port).
    #[error("no audio stream in the offer")]
    NoAudio,
    /// The offer's audio stream has neither PCMU nor PCMA.
    #[error("no common codec")]
    NoCommonCodec,
    /// An answer does not match the offer it answers (RFC 3264 section 6).
    #[error("answer does not match the offer: {0}")]
    AnswerMismatch(&'static str),
    /// `rtp.srtp = "require"` and the offer has no `RTP/SAVP` audio stream.
    #[error("SRTP is required and the offer is plain RTP")]
    SrtpRequired,
    /// The offer's audio is `RTP/SAVP` only, and SRTP is off or none of
    /// its `a=crypto` lines is one we can use.
    #[error("no usable SRTP crypto in the offer")]
    SrtpUnusable,
}

impl SdpError {
    /// The SIP status for an INVITE carrying this SDP: 400 for a malformed
    /// body, 488 Not Acceptable Here for one we cannot use.
    pub fn status(&self) -> crate::StatusCode {
        match self {
            SdpError::NoAudio
            | SdpError::NoCommonCodec
            | SdpError::AnswerMismatch(_)
            | SdpError::SrtpRequired
            | SdpError::SrtpUnusable => crate::StatusCode::NOT_ACCEPTABLE_HERE,
            _ => crate::StatusCode::BAD_REQUEST,
        }
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (a single space or `-` when there is nothing to say).
    pub name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// `b=` lines, raw (`AS:64`).
    pub bandwidth: Vec<String>,
    /// `t=` lines, raw (`0 0`).
    pub timing: Vec<String>,
    /// Other session-level lines kept verbatim (i, u, e, p, r, z, k), in
    /// order, as (type letter, value).
    pub other: Vec<(char, String)>,
    /// Session-level `a=` lines.
    pub attributes: Vec<Attribute>,
    /// `m=` sections.
    pub media: Vec<Media>,
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; incremented on every new offer (RFC 3264 section 8).
    pub session_version: u64,
    /// The address.
    pub address: Address,
}

/// `c=IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address.
    pub address: Address,
}

/// A network address of an `o=` or `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unicast IP address (IP4 or IP6).
    Ip(IpAddr),
    /// Anything else (a hostname, a multicast address with TTL), with the
    /// address type (`IP4`/`IP6`) as written.
    Other {
        /// `IP4` or `IP6`.
        addr_type: String,
        /// The address text.
        address: String,
    },
}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// Transport port; 0 rejects/disables the stream.
    pub port: u16,
    /// `/<number of ports>`, when written.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, ...
    pub protocol: String,
    /// Format list (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// `b=` lines, raw.
    pub bandwidth: Vec<String>,
    /// Other media-level lines kept verbatim (i, k).
    pub other: Vec<(char, String)>,
    /// `a=` lines.
    pub attributes: Vec<Attribute>,
}

/// `a=<name>[:<value>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// Value after the colon.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (`a=sendrecv`).
    pub fn flag(name: &str) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    /// A value attribute (`a=ptime:20`).
    pub fn value(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// Stream direction (RFC 3264 section 5.1, RFC 4566 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes for an offer with this direction
    /// (RFC 3264 section 6.1), given that we can send and receive.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    fn from_attrs(attrs: &[Attribute]) -> Option<Direction> {
        attrs.iter().rev().find_map(|a| match a.name.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `telephone-event`).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when written.
    pub channels: Option<u8>,
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when given.
    pub address: Option<Address>,
}

impl Session {
    /// Parse an SDP body.
    pub fn parse(body: &[u8]) -> Result<Session, SdpError> {
        parse::parse(body)
    }

    /// Write the session in RFC 4566 line order with CRLF line ends.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("v=0\r\n");
        let o = &self.origin;
        let _ = write!(
            s,
            "o={} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.address
        );
        let _ = write!(s, "s={}\r\n", self.name);
        write_other(&mut s, &self.other, |c| matches!(c, 'i' | 'u' | 'e' | 'p'));
        if let Some(c) = &self.connection {
            let _ = write!(s, "c={c}\r\n");
        }
        for b in &self.bandwidth {
            let _ = write!(s, "b={b}\r\n");
        }
        for t in &self.timing {
            let _ = write!(s, "t={t}\r\n");
        }
        write_other(&mut s, &self.other, |c| matches!(c, 'r' | 'z' | 'k'));
        write_attrs(&mut s, &self.attributes);
        for m in &self.media {
            let _ = write!(s, "m={} {}", m.kind, m.port);
            if let Some(n) = m.port_count {
                let _ = write!(s, "/{n}");
            }
            let _ = write!(s, " {}", m.protocol);
            for f in &m.formats {
                let _ = write!(s, " {f}");
            }
            s.push_str("\r\n");
            write_other(&mut s, &m.other, |c| c == 'i');
            if let Some(c) = &m.connection {
                let _ = write!(s, "c={c}\r\n");
            }
            for b in &m.bandwidth {
                let _ = write!(s, "b={b}\r\n");
            }
            write_other(&mut s, &m.other, |c| c == 'k');
            write_attrs(&mut s, &m.attributes);
        }
        s
    }

    /// The body bytes (see [`Session::to_text`]).
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.to_text())
    }

    /// The direction of media section `index`: its own attribute, else the
    /// session's, else sendrecv.
    pub fn direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(|m| Direction::from_attrs(&m.attributes))
            .or_else(|| Direction::from_attrs(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }

    /// The connection address that applies to media section `index`.
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }
}

fn write_other(s: &mut String, other: &[(char, String)], pick: impl Fn(char) -> bool) {
    for (c, v) in other.iter().filter(|(c, _)| pick(*c)) {
        let _ = write!(s, "{c}={v}\r\n");
    }
}

fn write_attrs(s: &mut String, attrs: &[Attribute]) {
    for a in attrs {
        match &a.value {
            Some(v) => {
                let _ = write!(s, "a={}:{v}\r\n", a.name);
            }
            None => {
                let _ = write!(s, "a={}\r\n", a.name);
            }
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Ip(IpAddr::V4(a)) => write!(f, "IN IP4 {a}"),
            Address::Ip(IpAddr::V6(a)) => write!(f, "IN IP6 {a}"),
            Address::Other { addr_type, address } => write!(f, "IN {addr_type} {address}"),
        }
    }
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.address)
    }
}

impl Address {
    /// The IP address, if this is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Address::Ip(a) => Some(*a),
            Address::Other { .. } => None,
        }
    }
}

impl Media {
    fn attr(&self, name: &str) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value.as_deref())
    }

    /// Payload type numbers of an RTP media section, in preference order;
    /// formats that are not numbers are skipped.
    pub fn payload_types(&self) -> Vec<u8> {
        self.formats.iter().filter_map(|f| f.parse().ok()).collect()
    }

    /// Every `a=rtpmap` that parses.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attr("rtpmap").filter_map(parse::rtpmap).collect()
    }

    /// The rtpmap of payload type `pt`; for the static types 0 (PCMU) and
    /// 8 (PCMA) the RFC 3551 mapping when none is written.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .into_iter()
            .find(|m| m.payload_type == pt)
            .or_else(|| {
                let encoding = match pt {
                    0 => "PCMU",
                    8 => "PCMA",
                    _ => return None,
                };
                Some(RtpMap {
                    payload_type: pt,
                    encoding: encoding.to_owned(),
                    clock_rate: 8000,
                    channels: None,
                })
            })
    }

    /// The `a=fmtp` parameters of payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attr("fmtp").find_map(|v| {
            let (p, rest) = v.split_once(' ')?;
            (p.parse::<u8>().ok()? == pt).then_some(rest.trim())
        })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attr("ptime").find_map(|v| v.trim().parse().ok())
    }

    /// `a=rtcp` (RFC 3605).
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.attr("rtcp").find_map(parse::rtcp)
    }

    /// Whether this is an RTP audio section: `RTP/AVP`, or `RTP/SAVP`
    /// (SRTP, [`Media::is_srtp`]).
    pub fn is_rtp_audio(&self) -> bool {
        self.kind == "audio" && (self.protocol.eq_ignore_ascii_case("RTP/AVP") || self.is_srtp())
    }

    /// Whether the section's protocol is `RTP/SAVP` (RFC 3711 section 12).
    pub fn is_srtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/SAVP")
    }

    /// The `a=crypto` lines that parse, in order (at most
    /// [`MAX_CRYPTO_LINES`] are read; lines we cannot use are skipped).
    pub fn crypto(&self) -> Vec<CryptoAttribute> {
        self.attr("crypto")
            .take(MAX_CRYPTO_LINES)
            .filter_map(|v| CryptoAttribute::parse(v.trim()).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests;
