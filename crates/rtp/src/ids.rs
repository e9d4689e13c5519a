//! Identifier newtypes for RTP (RFC 3550 section 5.1): [`Ssrc`], [`SeqNo`],
//! the 64-bit [`ExtSeqNo`] with its one extension helper, and [`PayloadType`].

use std::fmt;

/// Synchronization source identifier (RFC 3550 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The 16-bit RTP sequence number as it appears on the wire. It wraps; compare
/// sequence numbers only after extending them with [`ExtSeqNo::extend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// The next sequence number, wrapping from 65535 to 0.
    #[must_use]
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }
}

/// A sequence number extended to 64 bits (RFC 3550 appendix A.1): the low 16
/// bits are the wire value, the rest counts wrap-arounds. Ordered, so it can
/// key a jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtSeqNo(pub u64);

impl ExtSeqNo {
    /// Extends `seq` relative to `prev`, the last extended value seen: the
    /// result is the 64-bit value with low 16 bits `seq` that is closest to
    /// `prev` (ties go forward). With no previous value, the cycle count
    /// starts at 1 so that a packet from just before the first one can still
    /// be represented without going below zero.
    ///
    /// ```
    /// use callbridge_rtp::{ExtSeqNo, SeqNo};
    /// let a = ExtSeqNo::extend(None, SeqNo(65535));
    /// let b = ExtSeqNo::extend(Some(a), SeqNo(0));
    /// assert_eq!(b.0, a.0 + 1);
    /// let c = ExtSeqNo::extend(Some(b), SeqNo(65534)); // late, from before the wrap
    /// assert_eq!(c.0, a.0 - 1);
    /// ```
    #[must_use]
    pub fn extend(prev: Option<ExtSeqNo>, seq: SeqNo) -> ExtSeqNo {
        const CYCLE: u64 = 1 << 16;
        let Some(prev) = prev else {
            return ExtSeqNo(CYCLE + u64::from(seq.0));
        };
        let prev = prev.0;
        let candidate = (prev & !0xffff) | u64::from(seq.0);
        // Choose among candidate - CYCLE, candidate, candidate + CYCLE the one
        // closest to prev.
        let ext = if candidate > prev && candidate - prev > CYCLE / 2 && candidate >= CYCLE {
            candidate - CYCLE
        } else if candidate < prev && prev - candidate >= CYCLE / 2 {
            candidate + CYCLE
        } else {
            candidate
        };
        ExtSeqNo(ext)
    }

    /// The wire sequence number (low 16 bits).
    #[must_use]
    pub fn seq(self) -> SeqNo {
        SeqNo(self.0 as u16)
    }
}

/// RTP payload type, 0..=127 (RFC 3550 section 5.1, RFC 3551 table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(u8);

impl PayloadType {
    /// PCMU, G.711 mu-law (RFC 3551).
    pub const PCMU: PayloadType = PayloadType(0);
    /// PCMA, G.711 A-law (RFC 3551).
    pub const PCMA: PayloadType = PayloadType(8);

    /// A payload type, or `None` when `pt` does not fit in 7 bits.
    #[must_use]
    pub const fn new(pt: u8) -> Option<PayloadType> {
        if pt < 128 {
            Some(PayloadType(pt))
        } else {
            None
        }
    }

    /// The 7-bit value.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extend_counts_wraps_forward() {
        let mut prev = None;
        let mut expected = None::<u64>;
        for i in 0..200_000u64 {
            let seq = SeqNo((i % 65536) as u16);
            let ext = ExtSeqNo::extend(prev, seq);
            if let Some(e) = expected {
                assert_eq!(ext.0, e + 1);
            }
            expected = Some(ext.0);
            prev = Some(ext);
        }
    }

    #[test]
    fn extend_places_late_packet_before_wrap() {
        let a = ExtSeqNo::extend(None, SeqNo(2));
        let b = ExtSeqNo::extend(Some(a), SeqNo(65530));
        assert_eq!(b.0, a.0 - 8);
        assert_eq!(b.seq(), SeqNo(65530));
    }

    #[test]
    fn payload_type_rejects_eight_bits() {
        assert!(PayloadType::new(128).is_none());
        assert_eq!(PayloadType::new(127).map(PayloadType::get), Some(127));
    }

    proptest! {
        #[test]
        fn extend_recovers_any_offset_within_half_cycle(start in 0u64..1_000_000, delta in -32767i64..32768) {
            let base = ExtSeqNo(65536 + start);
            let target = (base.0 as i64 + delta) as u64;
            let got = ExtSeqNo::extend(Some(base), SeqNo(target as u16));
            prop_assert_eq!(got.0, target);
        }
    }
}
