//! RTP data packets (RFC 3550 section 5.1): a zero-copy parsed view over
//! a buffer ([`RtpPacket`]: `Bytes` by default, or a borrowed `&[u8]` as
//! the media engine receives it) and a header writer ([`RtpHeader`]) that
//! builds packets into a caller-owned buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::Bytes;

use crate::error::{Error, ParseError};
use crate::ids::{PayloadType, SeqNo, Ssrc};

/// Length of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;

const WHAT: &str = "rtp";

/// A parsed RTP packet: the fields are decoded once, the CSRC list, header
/// extension and payload stay views into the original buffer `B` (any
/// `AsRef<[u8]>`: `Bytes` to keep the packet, `&[u8]` to look at a
/// datagram in a receive buffer without copying it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<B = Bytes> {
    buf: B,
    marker: bool,
    payload_type: PayloadType,
    seq: SeqNo,
    timestamp: u32,
    ssrc: Ssrc,
    csrc_count: u8,
    /// Offset of the extension header (profile word), when present.
    ext_at: Option<usize>,
    payload_start: usize,
    payload_end: usize,
    padding: u8,
}

/// The RTP header extension (RFC 3550 section 5.3.1), a view into the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The 16-bit profile-defined identifier (0xBEDE for RFC 8285 one-byte).
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<B: AsRef<[u8]>> RtpPacket<B> {
    /// Parses `buf` as one RTP packet. Cheap: no copy, no allocation.
    ///
    /// # Errors
    /// [`ParseError`] when the version is not 2, the buffer is shorter than
    /// the header, CSRC list or extension it announces, or the padding count
    /// is zero or too large.
    pub fn parse(buf: B) -> Result<RtpPacket<B>, ParseError> {
        let b = buf.as_ref();
        if b.len() < RTP_HEADER_LEN {
            return Err(ParseError::TooShort {
                what: WHAT,
                len: b.len(),
                need: RTP_HEADER_LEN,
            });
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(ParseError::BadVersion {
                what: WHAT,
                version,
            });
        }
        let has_padding = b[0] & 0x20 != 0;
        let has_ext = b[0] & 0x10 != 0;
        let csrc_count = b[0] & 0x0f;
        let marker = b[1] & 0x80 != 0;
        let payload_type = PayloadType::new(b[1] & 0x7f).ok_or(ParseError::Invalid {
            what: "rtp payload type",
        })?;
        let seq = SeqNo(be16(b, 2));
        let timestamp = be32(b, 4);
        let ssrc = Ssrc(be32(b, 8));
        let mut at = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if b.len() < at {
            return Err(ParseError::TooShort {
                what: "rtp csrc list",
                len: b.len(),
                need: at,
            });
        }
        let mut ext_at = None;
        if has_ext {
            if b.len() < at + 4 {
                return Err(ParseError::TooShort {
                    what: "rtp header extension",
                    len: b.len(),
                    need: at + 4,
                });
            }
            let words = usize::from(be16(b, at + 2));
            let end = at + 4 + 4 * words;
            if b.len() < end {
                return Err(ParseError::BadLength {
                    what: "rtp header extension",
                    claimed: end,
                    available: b.len(),
                });
            }
            ext_at = Some(at);
            at = end;
        }
        let mut payload_end = b.len();
        let mut padding = 0;
        if has_padding {
            let count = b[b.len() - 1];
            if count == 0 || usize::from(count) > b.len() - at {
                return Err(ParseError::BadPadding { what: WHAT, count });
            }
            padding = count;
            payload_end -= usize::from(count);
        }
        Ok(RtpPacket {
            marker,
            payload_type,
            seq,
            timestamp,
            ssrc,
            csrc_count,
            ext_at,
            payload_start: at,
            payload_end,
            padding,
            buf,
        })
    }

    /// The marker bit (for audio: first packet of a talkspurt).
    #[must_use]
    pub fn marker(&self) -> bool {
        self.marker
    }

    /// The payload type.
    #[must_use]
    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }

    /// The 16-bit sequence number.
    #[must_use]
    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// The RTP timestamp (8 kHz clock for G.711).
    #[must_use]
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The synchronization source.
    #[must_use]
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The contributing sources, read from the buffer.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + '_ {
        let b = self.buf.as_ref();
        (0..usize::from(self.csrc_count)).map(move |i| Ssrc(be32(b, RTP_HEADER_LEN + 4 * i)))
    }

    /// The header extension, when the X bit is set.
    #[must_use]
    pub fn extension(&self) -> Option<HeaderExtension<'_>> {
        let at = self.ext_at?;
        let b = self.buf.as_ref();
        let words = usize::from(be16(b, at + 2));
        Some(HeaderExtension {
            profile: be16(b, at),
            data: &b[at + 4..at + 4 + 4 * words],
        })
    }

    /// Number of padding bytes removed from the end (0 when P is clear).
    #[must_use]
    pub fn padding(&self) -> u8 {
        self.padding
    }

    /// The payload as a slice of the packet.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.payload_start..self.payload_end]
    }
}

impl RtpPacket<Bytes> {
    /// The payload as a `Bytes` sharing the packet's buffer (no copy).
    #[must_use]
    pub fn payload_bytes(&self) -> Bytes {
        self.buf.slice(self.payload_start..self.payload_end)
    }

    /// The whole datagram the packet was parsed from.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }
}

/// The fields of an RTP header we send: no CSRCs, no extension, no padding
/// (a media endpoint that is not a mixer needs none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit: set on the first packet of a talkspurt.
    pub marker: bool,
    /// Payload type.
    pub payload_type: PayloadType,
    /// Sequence number.
    pub seq: SeqNo,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Our synchronization source.
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// Bytes [`RtpHeader::write_to`] writes for a payload of `payload_len`.
    #[must_use]
    pub const fn encoded_len(payload_len: usize) -> usize {
        RTP_HEADER_LEN + payload_len
    }

    /// Writes the header followed by `payload` into `out` and returns the
    /// number of bytes written.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `out` cannot hold the packet.
    ///
    /// ```
    /// use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};
    /// let h = RtpHeader { marker: true, payload_type: PayloadType::PCMU, seq: SeqNo(7), timestamp: 160, ssrc: Ssrc(42) };
    /// let mut out = [0u8; 172];
    /// let n = h.write_to(&[0xff; 160], &mut out).unwrap();
    /// let p = RtpPacket::parse(bytes::Bytes::copy_from_slice(&out[..n])).unwrap();
    /// assert_eq!((p.seq(), p.timestamp(), p.marker(), p.payload().len()), (SeqNo(7), 160, true, 160));
    /// ```
    pub fn write_to(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let need = Self::encoded_len(payload.len());
        let Some(out) = out.get_mut(..need) else {
            return Err(Error::BufferTooSmall {
                need,
                have: out.len(),
            });
        };
        self.write_header(out);
        out[RTP_HEADER_LEN..].copy_from_slice(payload);
        Ok(need)
    }

    /// Writes the 12-byte header into `out[..12]`, for callers that encode
    /// the payload in place after it.
    ///
    /// # Panics
    /// If `out` is shorter than [`RTP_HEADER_LEN`] (a caller bug).
    pub fn write_header(&self, out: &mut [u8]) {
        out[0] = 0x80;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type.get();
        out[2..4].copy_from_slice(&self.seq.0.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A packet with 2 CSRCs, a 1-word extension, a 3-byte payload and 2
    /// bytes of padding, built by hand from RFC 3550 section 5.1.
    const FULL: [u8; 37] = [
        0xb2, 0x88, 0x12, 0x34, // V=2 P X CC=2, M PT=8, seq 0x1234
        0x00, 0x00, 0x01, 0x40, // timestamp 320
        0xde, 0xad, 0xbe, 0xef, // ssrc
        0x00, 0x00, 0x00, 0x01, // csrc 1
        0x00, 0x00, 0x00, 0x02, // csrc 2
        0xbe, 0xde, 0x00, 0x01, // extension profile 0xBEDE, 1 word
        0x10, 0xaa, 0x00, 0x00, // extension data
        0x01, 0x02, 0x03, // payload
        0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // 6 bytes padding, last is count
    ];

    #[test]
    fn parses_every_header_field() {
        let p = RtpPacket::parse(Bytes::from_static(&FULL)).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), PayloadType::PCMA);
        assert_eq!(p.seq(), SeqNo(0x1234));
        assert_eq!(p.timestamp(), 320);
        assert_eq!(p.ssrc(), Ssrc(0xdead_beef));
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(1), Ssrc(2)]);
        let ext = p.extension().unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, &[0x10, 0xaa, 0, 0]);
        assert_eq!(p.padding(), 6);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(&p.payload_bytes()[..], &[1, 2, 3]);
    }

    #[test]
    fn payload_bytes_shares_the_buffer() {
        let buf = Bytes::copy_from_slice(&FULL);
        let p = RtpPacket::parse(buf.clone()).unwrap();
        assert_eq!(p.payload_bytes().as_ptr(), buf[28..].as_ptr());
    }

    #[test]
    fn rejects_version_one() {
        let mut b = FULL;
        b[0] = 0x40 | (b[0] & 0x3f);
        assert_eq!(
            RtpPacket::parse(Bytes::copy_from_slice(&b)),
            Err(ParseError::BadVersion {
                what: WHAT,
                version: 1
            })
        );
    }

    #[test]
    fn rejects_truncated_csrc_and_extension() {
        assert!(matches!(
            RtpPacket::parse(Bytes::copy_from_slice(&FULL[..15])),
            Err(ParseError::TooShort { .. })
        ));
        assert!(matches!(
            RtpPacket::parse(Bytes::copy_from_slice(&FULL[..26])),
            Err(ParseError::BadLength { .. })
        ));
    }

    #[test]
    fn rejects_zero_and_oversized_padding() {
        let mut b = FULL;
        b[36] = 0;
        assert!(matches!(
            RtpPacket::parse(Bytes::copy_from_slice(&b)),
            Err(ParseError::BadPadding { count: 0, .. })
        ));
        b[36] = 10;
        assert!(matches!(
            RtpPacket::parse(Bytes::copy_from_slice(&b)),
            Err(ParseError::BadPadding { count: 10, .. })
        ));
    }

    #[test]
    fn write_to_reports_small_buffer() {
        let h = RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            seq: SeqNo(1),
            timestamp: 0,
            ssrc: Ssrc(1),
        };
        let mut out = [0u8; 20];
        assert!(matches!(
            h.write_to(&[0; 160], &mut out),
            Err(Error::BufferTooSmall {
                need: 172,
                have: 20
            })
        ));
    }

    #[test]
    fn write_to_emits_exact_bytes() {
        let h = RtpHeader {
            marker: true,
            payload_type: PayloadType::PCMU,
            seq: SeqNo(0xabcd),
            timestamp: 0x0102_0304,
            ssrc: Ssrc(0x0a0b_0c0d),
        };
        let mut out = [0u8; 14];
        let n = h.write_to(&[0x55, 0x66], &mut out).unwrap();
        assert_eq!(n, 14);
        assert_eq!(
            out,
            [
                0x80, 0x80, 0xab, 0xcd, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x55, 0x66
            ]
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RtpPacket::parse(Bytes::from(data));
        }

        #[test]
        fn build_then_parse_round_trips(
            marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32,
            payload in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let h = RtpHeader {
                marker,
                payload_type: PayloadType::new(pt).unwrap(),
                seq: SeqNo(seq),
                timestamp: ts,
                ssrc: Ssrc(ssrc),
            };
            let mut out = vec![0u8; RtpHeader::encoded_len(payload.len())];
            let n = h.write_to(&payload, &mut out).unwrap();
            let p = RtpPacket::parse(Bytes::from(out[..n].to_vec())).unwrap();
            prop_assert_eq!(p.marker(), marker);
            prop_assert_eq!(p.payload_type().get(), pt);
            prop_assert_eq!(p.seq(), SeqNo(seq));
            prop_assert_eq!(p.timestamp(), ts);
            prop_assert_eq!(p.ssrc(), Ssrc(ssrc));
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
