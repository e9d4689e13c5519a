//! The outbound side of a media stream without IO: [`RtpSender`] turns one
//! 20 ms frame (or nothing) per tick into an RTP packet with continuous
//! sequence numbers and timestamps, silence when there is nothing to play
//! and the marker bit on the first packet of each talkspurt (RFC 3551
//! section 4.1). Where the packets go is the [`latch`](crate::latch)'s
//! business.

use std::time::Duration;

use crate::dtmf::EventPacket;
use crate::error::Error;
use crate::g711::Law;
use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::rtp::{RTP_HEADER_LEN, RtpHeader};

/// Largest frame the sender accepts (20 ms at 8 kHz).
pub const MAX_FRAME: usize = 160;

/// The packetization interval: one packet, one frame, one tick every 20 ms
/// (RFC 3551 section 4.5).
pub const PTIME: Duration = Duration::from_millis(20);

/// Builds the outbound packet stream. See the module docs.
#[derive(Debug, Clone)]
pub struct RtpSender {
    law: Law,
    payload_type: PayloadType,
    ssrc: Ssrc,
    seq: SeqNo,
    timestamp: u32,
    talking: bool,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// A sender starting at `first_seq` and `first_timestamp` (random per
    /// RFC 3550; injected so tests can pin them).
    #[must_use]
    pub fn new(
        law: Law,
        payload_type: PayloadType,
        ssrc: Ssrc,
        first_seq: SeqNo,
        first_timestamp: u32,
    ) -> RtpSender {
        RtpSender {
            law,
            payload_type,
            ssrc,
            seq: first_seq,
            timestamp: first_timestamp,
            talking: false,
            packets: 0,
            octets: 0,
        }
    }

    /// Our SSRC.
    #[must_use]
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Packets sent so far (for an RTCP SR).
    #[must_use]
    pub fn packets_sent(&self) -> u32 {
        self.packets
    }

    /// Payload octets sent so far.
    #[must_use]
    pub fn octets_sent(&self) -> u32 {
        self.octets
    }

    /// The timestamp the next packet will carry.
    #[must_use]
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Writes the packet for one tick into `out` and returns its length:
    /// the encoded `frame` when there is one, else a frame of silence.
    /// Frames shorter than 160 samples are padded with silence.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a frame over 160 samples,
    /// [`Error::BufferTooSmall`] when `out` is under 172 bytes.
    pub fn next_packet(&mut self, frame: Option<&[i16]>, out: &mut [u8]) -> Result<usize, Error> {
        let len = RtpHeader::encoded_len(MAX_FRAME);
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                need: len,
                have: out.len(),
            });
        }
        let marker = match frame {
            Some(f) if f.len() > MAX_FRAME => {
                return Err(Error::InvalidArgument {
                    what: "frame longer than 20 ms",
                });
            }
            Some(f) => {
                let payload = &mut out[RTP_HEADER_LEN..len];
                self.law.encode(f, payload)?;
                payload[f.len()..].fill(self.law.silence());
                let marker = !self.talking;
                self.talking = true;
                marker
            }
            None => {
                out[RTP_HEADER_LEN..len].fill(self.law.silence());
                self.talking = false;
                false
            }
        };
        let header = RtpHeader {
            marker,
            payload_type: self.payload_type,
            seq: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        header.write_header(out);
        self.advance(MAX_FRAME);
        Ok(len)
    }

    /// Writes one RFC 4733 event packet for this tick in place of audio.
    /// `event_timestamp` is the media timestamp when the event began (the
    /// value of [`next_timestamp`](Self::next_timestamp) at its first
    /// packet); the media clock still advances by one frame.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `out` is under 16 bytes.
    pub fn event_packet(
        &mut self,
        event: &EventPacket,
        payload_type: PayloadType,
        event_timestamp: u32,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let header = RtpHeader {
            marker: event.marker,
            payload_type,
            seq: self.seq,
            timestamp: event_timestamp,
            ssrc: self.ssrc,
        };
        let n = header.write_to(&event.event.to_bytes(), out)?;
        self.talking = false;
        self.advance(MAX_FRAME);
        Ok(n)
    }

    fn advance(&mut self, samples: usize) {
        self.seq = self.seq.next();
        self.timestamp = self.timestamp.wrapping_add(samples as u32);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(samples as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use bytes::Bytes;

    fn parse(out: &[u8]) -> RtpPacket {
        RtpPacket::parse(Bytes::copy_from_slice(out)).unwrap()
    }

    #[test]
    fn silence_then_talkspurt_sets_marker_once_and_time_is_continuous() {
        let mut s = RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(9), SeqNo(65535), 1000);
        let mut out = [0u8; 172];
        let voice = [1000i16; 160];
        let plan = [
            None,
            Some(&voice[..]),
            Some(&voice[..]),
            None,
            Some(&voice[..]),
        ];
        let mut got = Vec::new();
        for f in plan {
            let n = s.next_packet(f, &mut out).unwrap();
            assert_eq!(n, 172);
            let p = parse(&out[..n]);
            got.push((p.seq().0, p.timestamp(), p.marker(), p.payload()[0]));
        }
        assert_eq!(
            got,
            vec![
                (65535, 1000, false, 0xff),
                (0, 1160, true, 0xce),
                (1, 1320, false, 0xce),
                (2, 1480, false, 0xff),
                (3, 1640, true, 0xce),
            ]
        );
    }

    #[test]
    fn short_frame_is_padded_with_silence() {
        let mut s = RtpSender::new(Law::ALaw, PayloadType::PCMA, Ssrc(1), SeqNo(0), 0);
        let mut out = [0u8; 172];
        s.next_packet(Some(&[0; 10]), &mut out).unwrap();
        assert!(out[12..].iter().all(|&b| b == 0xd5));
        assert!(s.next_packet(Some(&[0; 161]), &mut out).is_err());
    }

    #[test]
    fn event_packets_keep_event_timestamp_while_clock_advances() {
        let mut s = RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(1), SeqNo(10), 0);
        let te = PayloadType::new(101).unwrap();
        let start = s.next_timestamp();
        let mut out = [0u8; 172];
        for p in crate::dtmf::DtmfGenerator::new(1, 320, 10, 160) {
            let n = s.event_packet(&p, te, start, &mut out).unwrap();
            let pkt = parse(&out[..n]);
            assert_eq!(pkt.timestamp(), start);
            assert_eq!(pkt.payload_type(), te);
        }
        assert_eq!(s.next_timestamp(), 4 * 160);
        let n = s.next_packet(None, &mut out).unwrap();
        assert_eq!(parse(&out[..n]).seq(), SeqNo(14));
    }
}
