//! RTCP (RFC 3550 section 6): a validating parser for compound packets that
//! yields views of SR, RR, SDES and BYE, and writers for the RR, SDES CNAME
//! and BYE we send. Enough to answer a peer's reports and to notice its BYE.
//!
//! [`RtcpCompound::parse`] validates the whole datagram once; iterating it
//! afterwards cannot fail. Unknown packet types (APP, XR, feedback) are
//! yielded as [`RtcpPacket::Other`].

use crate::error::{Error, ParseError};
use crate::ids::Ssrc;

const WHAT: &str = "rtcp";
/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;
/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;
/// SDES item type CNAME.
pub const SDES_CNAME: u8 = 1;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A validated compound RTCP datagram.
#[derive(Debug, Clone, Copy)]
pub struct RtcpCompound<'a> {
    buf: &'a [u8],
}

/// One packet of a compound datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport(SenderReport<'a>),
    /// Receiver report.
    ReceiverReport(ReceiverReport<'a>),
    /// Source description.
    SourceDescription(SourceDescription<'a>),
    /// Goodbye: the listed sources are leaving.
    Bye(Bye<'a>),
    /// A packet type this crate does not decode.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count/format field.
        count: u8,
        /// The body after the 4-byte common header, padding removed.
        body: &'a [u8],
    },
}

/// A sender report (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// The sender.
    pub ssrc: Ssrc,
    /// NTP timestamp, 32.32 fixed point.
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception report blocks.
    pub reports: ReportBlocks<'a>,
}

/// A receiver report (RFC 3550 section 6.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// The reporter.
    pub ssrc: Ssrc,
    /// Reception report blocks.
    pub reports: ReportBlocks<'a>,
}

/// The report blocks of an SR or RR, a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    buf: &'a [u8],
}

impl<'a> ReportBlocks<'a> {
    /// Decodes the blocks in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a + use<'a> {
        let buf = self.buf;
        (0..buf.len() / REPORT_BLOCK_LEN)
            .map(move |i| ReportBlock::decode(&buf[i * 24..i * 24 + 24]))
    }

    /// Number of blocks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len() / REPORT_BLOCK_LEN
    }

    /// True when there is no block.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed 24 bits; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn decode(b: &[u8]) -> ReportBlock {
        let raw = be32(b, 4) & 0x00ff_ffff;
        // Sign-extend 24 bits.
        let cumulative_lost = ((raw << 8) as i32) >> 8;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// A source description packet (RFC 3550 section 6.5), a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDescription<'a> {
    count: u8,
    buf: &'a [u8],
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// The source described.
    pub ssrc: Ssrc,
    /// Item type (1 = CNAME ...).
    pub kind: u8,
    /// Item text, raw (UTF-8 by the RFC, not checked).
    pub value: &'a [u8],
}

impl<'a> SourceDescription<'a> {
    /// All items of all chunks, in order.
    pub fn items(&self) -> impl Iterator<Item = SdesItem<'a>> + 'a + use<'a> {
        let buf = self.buf;
        let mut chunks_left = self.count;
        let mut at = 0usize;
        let mut ssrc = Ssrc(0);
        let mut in_chunk = false;
        std::iter::from_fn(move || {
            loop {
                if !in_chunk {
                    if chunks_left == 0 || at + 4 > buf.len() {
                        return None;
                    }
                    ssrc = Ssrc(be32(buf, at));
                    at += 4;
                    chunks_left -= 1;
                    in_chunk = true;
                }
                // Validated by parse_sdes: items and their terminators fit.
                let kind = *buf.get(at)?;
                if kind == 0 {
                    // End of chunk: skip to the next 32-bit boundary.
                    at = (at + 4) & !3;
                    in_chunk = false;
                    continue;
                }
                let len = usize::from(*buf.get(at + 1)?);
                let value = buf.get(at + 2..at + 2 + len)?;
                at += 2 + len;
                return Some(SdesItem { ssrc, kind, value });
            }
        })
    }

    /// The CNAME of the first chunk that carries one.
    #[must_use]
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|i| i.kind == SDES_CNAME).map(|i| i.value)
    }
}

/// A BYE packet (RFC 3550 section 6.6), a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + 'a + use<'a> {
        let b = self.ssrcs;
        (0..b.len() / 4).map(move |i| Ssrc(be32(b, 4 * i)))
    }

    /// The optional reason text, raw.
    #[must_use]
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }
}

/// Splits the common header; returns (count, packet type, body, total length).
fn split(buf: &[u8]) -> Result<(u8, u8, &[u8], usize), ParseError> {
    if buf.len() < 4 {
        return Err(ParseError::TooShort {
            what: WHAT,
            len: buf.len(),
            need: 4,
        });
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(ParseError::BadVersion {
            what: WHAT,
            version,
        });
    }
    let padded = buf[0] & 0x20 != 0;
    let count = buf[0] & 0x1f;
    let pt = buf[1];
    let total = 4 * (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1);
    if total > buf.len() {
        return Err(ParseError::BadLength {
            what: WHAT,
            claimed: total,
            available: buf.len(),
        });
    }
    let mut body = &buf[4..total];
    if padded {
        let pad = usize::from(buf[total - 1]);
        if pad == 0 || pad > body.len() {
            return Err(ParseError::BadPadding {
                what: WHAT,
                count: buf[total - 1],
            });
        }
        body = &body[..body.len() - pad];
    }
    Ok((count, pt, body, total))
}

fn parse_one(count: u8, pt: u8, body: &[u8]) -> Result<RtcpPacket<'_>, ParseError> {
    let blocks = |fixed: usize| -> Result<ReportBlocks<'_>, ParseError> {
        let need = fixed + REPORT_BLOCK_LEN * usize::from(count);
        if body.len() < need {
            return Err(ParseError::TooShort {
                what: "rtcp report",
                len: body.len(),
                need,
            });
        }
        Ok(ReportBlocks {
            buf: &body[fixed..need],
        })
    };
    Ok(match pt {
        PT_SR => {
            let reports = blocks(24)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(be32(body, 0)),
                ntp_timestamp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                rtp_timestamp: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
                reports,
            })
        }
        PT_RR => {
            let reports = blocks(4)?;
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(be32(body, 0)),
                reports,
            })
        }
        PT_SDES => {
            validate_sdes(count, body)?;
            RtcpPacket::SourceDescription(SourceDescription { count, buf: body })
        }
        PT_BYE => {
            let n = 4 * usize::from(count);
            if body.len() < n {
                return Err(ParseError::TooShort {
                    what: "rtcp bye",
                    len: body.len(),
                    need: n,
                });
            }
            let reason = match body.get(n) {
                None => None,
                Some(&len) => {
                    let len = usize::from(len);
                    Some(body.get(n + 1..n + 1 + len).ok_or(ParseError::BadLength {
                        what: "rtcp bye reason",
                        claimed: len,
                        available: body.len() - n - 1,
                    })?)
                }
            };
            RtcpPacket::Bye(Bye {
                ssrcs: &body[..n],
                reason,
            })
        }
        other => RtcpPacket::Other {
            packet_type: other,
            count,
            body,
        },
    })
}

fn validate_sdes(count: u8, body: &[u8]) -> Result<(), ParseError> {
    let bad = ParseError::Invalid {
        what: "rtcp sdes chunk",
    };
    let mut at = 0usize;
    for _ in 0..count {
        if at + 4 > body.len() {
            return Err(bad);
        }
        at += 4;
        loop {
            let kind = *body.get(at).ok_or(bad.clone())?;
            if kind == 0 {
                at = (at + 4) & !3;
                break;
            }
            let len = usize::from(*body.get(at + 1).ok_or(bad.clone())?);
            if at + 2 + len > body.len() {
                return Err(bad);
            }
            at += 2 + len;
        }
        if at > body.len() {
            return Err(bad);
        }
    }
    Ok(())
}

impl<'a> RtcpCompound<'a> {
    /// Validates a compound RTCP datagram (RFC 3550 section 6.1). Every
    /// packet must have version 2 and a length that fits.
    ///
    /// # Errors
    /// [`ParseError`] for the first malformed packet; an empty datagram is
    /// [`ParseError::TooShort`].
    pub fn parse(buf: &'a [u8]) -> Result<RtcpCompound<'a>, ParseError> {
        if buf.is_empty() {
            return Err(ParseError::TooShort {
                what: WHAT,
                len: 0,
                need: 4,
            });
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let (count, pt, body, total) = split(rest)?;
            parse_one(count, pt, body)?;
            rest = &rest[total..];
        }
        Ok(RtcpCompound { buf })
    }

    /// The packets, in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a + use<'a> {
        let mut rest = self.buf;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // Validated by `parse`; a failure here ends the iteration.
            let (count, pt, body, total) = split(rest).ok()?;
            rest = &rest[total..];
            parse_one(count, pt, body).ok()
        })
    }

    /// The sources a BYE in this datagram says are leaving, if any.
    pub fn bye_ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a + use<'a> {
        self.packets().flat_map(|p| {
            match p {
                RtcpPacket::Bye(b) => Some(b.ssrcs()),
                _ => None,
            }
            .into_iter()
            .flatten()
        })
    }
}

fn header(out: &mut [u8], count: u8, pt: u8, total: usize) {
    out[0] = 0x80 | count;
    out[1] = pt;
    // Callers bound `total` well below 2^18 bytes.
    out[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
}

fn room(out: &[u8], need: usize) -> Result<(), Error> {
    if out.len() < need {
        return Err(Error::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    Ok(())
}

/// Writes a receiver report from `ssrc` with up to 31 `reports`; returns
/// the bytes written.
///
/// # Errors
/// [`Error::InvalidArgument`] for more than 31 blocks,
/// [`Error::BufferTooSmall`] when `out` is too short.
pub fn write_receiver_report(
    ssrc: Ssrc,
    reports: &[ReportBlock],
    out: &mut [u8],
) -> Result<usize, Error> {
    if reports.len() > 31 {
        return Err(Error::InvalidArgument {
            what: "more than 31 report blocks",
        });
    }
    let total = 8 + REPORT_BLOCK_LEN * reports.len();
    room(out, total)?;
    header(out, reports.len() as u8, PT_RR, total);
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    for (i, r) in reports.iter().enumerate() {
        r.encode(&mut out[8 + 24 * i..32 + 24 * i]);
    }
    Ok(total)
}

/// Writes an SDES packet with one chunk carrying `cname` (RFC 3550 requires
/// one in every compound packet); returns the bytes written.
///
/// # Errors
/// [`Error::InvalidArgument`] for a CNAME over 255 bytes,
/// [`Error::BufferTooSmall`] when `out` is too short.
pub fn write_sdes_cname(ssrc: Ssrc, cname: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let Ok(len) = u8::try_from(cname.len()) else {
        return Err(Error::InvalidArgument {
            what: "cname longer than 255 bytes",
        });
    };
    // ssrc + type + len + text + at least one zero byte, padded to 4.
    let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let total = 4 + chunk;
    room(out, total)?;
    header(out, 1, PT_SDES, total);
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = len;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..total].fill(0);
    Ok(total)
}

/// Writes a BYE for up to 31 `ssrcs` with an optional reason of at most
/// 255 bytes; returns the bytes written.
///
/// # Errors
/// [`Error::InvalidArgument`] for too many sources or a long reason,
/// [`Error::BufferTooSmall`] when `out` is too short.
pub fn write_bye(ssrcs: &[Ssrc], reason: Option<&[u8]>, out: &mut [u8]) -> Result<usize, Error> {
    if ssrcs.len() > 31 {
        return Err(Error::InvalidArgument {
            what: "more than 31 sources in a BYE",
        });
    }
    let reason_len = match reason {
        Some(r) if r.len() > 255 => {
            return Err(Error::InvalidArgument {
                what: "BYE reason longer than 255 bytes",
            });
        }
        Some(r) => (1 + r.len()).div_ceil(4) * 4,
        None => 0,
    };
    let total = 4 + 4 * ssrcs.len() + reason_len;
    room(out, total)?;
    header(out, ssrcs.len() as u8, PT_BYE, total);
    for (i, s) in ssrcs.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&s.0.to_be_bytes());
    }
    if let Some(r) = reason {
        let at = 4 + 4 * ssrcs.len();
        out[at] = r.len() as u8;
        out[at + 1..at + 1 + r.len()].copy_from_slice(r);
        out[at + 1 + r.len()..total].fill(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SR with one block + SDES CNAME "ab" + BYE with reason "x", by hand.
    const COMPOUND: &[u8] = &[
        // SR, RC=1, length 12 words
        0x81, 200, 0x00, 0x0c, //
        0x00, 0x00, 0x00, 0x2a, // ssrc 42
        0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, // ntp 1.5
        0x00, 0x00, 0x01, 0x00, // rtp ts 256
        0x00, 0x00, 0x00, 0x05, // packets
        0x00, 0x00, 0x03, 0x20, // octets 800
        0x00, 0x00, 0x00, 0x07, // block ssrc 7
        0x40, 0xff, 0xff, 0xfe, // fraction 64, cumulative -2
        0x00, 0x01, 0x00, 0x10, // highest seq
        0x00, 0x00, 0x00, 0x09, // jitter
        0x11, 0x22, 0x33, 0x44, // lsr
        0x00, 0x00, 0x00, 0x02, // dlsr
        // SDES, SC=1, length 3 words
        0x81, 202, 0x00, 0x03, //
        0x00, 0x00, 0x00, 0x2a, 0x01, 0x02, b'a', b'b', 0x00, 0x00, 0x00, 0x00,
        // BYE, SC=1, reason "x", length 2 words
        0x81, 203, 0x00, 0x02, //
        0x00, 0x00, 0x00, 0x2a, 0x01, b'x', 0x00, 0x00,
    ];

    #[test]
    fn parses_sr_sdes_bye_compound() {
        let c = RtcpCompound::parse(COMPOUND).unwrap();
        let packets: Vec<_> = c.packets().collect();
        assert_eq!(packets.len(), 3);
        let RtcpPacket::SenderReport(sr) = packets[0] else {
            panic!("first is not SR: {:?}", packets[0]);
        };
        assert_eq!(sr.ssrc, Ssrc(42));
        assert_eq!(sr.ntp_timestamp, 0x1_8000_0000);
        assert_eq!(
            (sr.rtp_timestamp, sr.packet_count, sr.octet_count),
            (256, 5, 800)
        );
        let blocks: Vec<_> = sr.reports.iter().collect();
        assert_eq!(
            blocks,
            vec![ReportBlock {
                ssrc: 7,
                fraction_lost: 64,
                cumulative_lost: -2,
                highest_seq: 0x10010,
                jitter: 9,
                last_sr: 0x1122_3344,
                delay_since_last_sr: 2
            }]
        );
        let RtcpPacket::SourceDescription(sdes) = packets[1] else {
            panic!("second is not SDES");
        };
        assert_eq!(sdes.cname(), Some(&b"ab"[..]));
        let RtcpPacket::Bye(bye) = packets[2] else {
            panic!("third is not BYE");
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![Ssrc(42)]);
        assert_eq!(bye.reason(), Some(&b"x"[..]));
        assert_eq!(c.bye_ssrcs().collect::<Vec<_>>(), vec![Ssrc(42)]);
    }

    #[test]
    fn rejects_length_past_end() {
        assert!(matches!(
            RtcpCompound::parse(&COMPOUND[..40]),
            Err(ParseError::BadLength { .. })
        ));
    }

    #[test]
    fn rejects_rr_with_missing_block() {
        let rr = [0x81, 201, 0x00, 0x01, 0, 0, 0, 1];
        assert!(matches!(
            RtcpCompound::parse(&rr),
            Err(ParseError::TooShort { .. })
        ));
    }

    #[test]
    fn built_rr_sdes_bye_parse_back() {
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 3,
            cumulative_lost: -5,
            highest_seq: 70_000,
            jitter: 12,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        let mut out = [0u8; 200];
        let mut n = write_receiver_report(Ssrc(1), &[block], &mut out).unwrap();
        n += write_sdes_cname(Ssrc(1), b"callbridge", &mut out[n..]).unwrap();
        n += write_bye(&[Ssrc(1)], Some(b"hangup"), &mut out[n..]).unwrap();
        assert_eq!(n % 4, 0);
        let c = RtcpCompound::parse(&out[..n]).unwrap();
        let p: Vec<_> = c.packets().collect();
        assert!(
            matches!(p[0], RtcpPacket::ReceiverReport(rr) if rr.ssrc == Ssrc(1) && rr.reports.iter().next() == Some(block))
        );
        assert!(
            matches!(p[1], RtcpPacket::SourceDescription(s) if s.cname() == Some(&b"callbridge"[..]))
        );
        assert!(matches!(p[2], RtcpPacket::Bye(b) if b.reason() == Some(&b"hangup"[..])));
    }

    #[test]
    fn bye_without_reason_is_exact() {
        let mut out = [0u8; 8];
        let n = write_bye(&[Ssrc(0x0102_0304)], None, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x81, 203, 0, 1, 1, 2, 3, 4]);
    }

    proptest! {
        #[test]
        fn parse_and_iterate_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(c) = RtcpCompound::parse(&data) {
                for p in c.packets() {
                    if let RtcpPacket::SourceDescription(s) = p {
                        let _ = s.items().count();
                    }
                }
            }
        }

        #[test]
        fn rr_round_trips(ssrc: u32, blocks in proptest::collection::vec(
            (any::<u32>(), any::<u8>(), -0x80_0000i32..0x80_0000, any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..31)) {
            let blocks: Vec<ReportBlock> = blocks.into_iter().map(|(s, f, c, h, j, l, d)| ReportBlock {
                ssrc: s, fraction_lost: f, cumulative_lost: c, highest_seq: h, jitter: j, last_sr: l, delay_since_last_sr: d,
            }).collect();
            let mut out = vec![0u8; 8 + 24 * blocks.len()];
            let n = write_receiver_report(Ssrc(ssrc), &blocks, &mut out).unwrap();
            let c = RtcpCompound::parse(&out[..n]).unwrap();
            let Some(RtcpPacket::ReceiverReport(rr)) = c.packets().next() else {
                return Err(TestCaseError::fail("not an RR"));
            };
            prop_assert_eq!(rr.ssrc, Ssrc(ssrc));
            prop_assert_eq!(rr.reports.iter().collect::<Vec<_>>(), blocks);
        }
    }
}
