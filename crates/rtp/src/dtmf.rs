//! RFC 4733 telephone-events (DTMF digits carried in RTP): the 4-byte
//! payload ([`TelephoneEvent`]), a receiver that turns the packet stream
//! into one [`Digit`] per key press ([`DtmfReceiver`]), and a generator for
//! outgoing events ([`DtmfGenerator`]).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All packets of one event share its RTP timestamp (the event start); the
//! end packet (E bit) is sent three times (RFC 4733 section 2.5.1.4), so
//! the receiver reports an event once, on the first end packet it sees for
//! that timestamp, and ignores the repeats.

use crate::error::ParseError;

/// Length of one telephone-event payload.
pub const EVENT_LEN: usize = 4;

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash.
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of an RTP payload (RFC 4733 section 2.3).
    ///
    /// # Errors
    /// [`ParseError::TooShort`] for fewer than 4 bytes.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, ParseError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(ParseError::TooShort {
                what: "telephone-event",
                len: payload.len(),
                need: EVENT_LEN,
            });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte payload.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The key for DTMF events 0..=15, `None` for others.
    #[must_use]
    pub fn key(&self) -> Option<char> {
        event_key(self.event)
    }
}

/// The key of a DTMF event code (0-9, `*`, `#`, A-D).
#[must_use]
pub fn event_key(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// The event code of a DTMF key.
#[must_use]
pub fn key_event(key: char) -> Option<u8> {
    Some(match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => key as u8 - b'A' + 12,
        'a'..='d' => key as u8 - b'a' + 12,
        _ => return None,
    })
}

/// A completed key press reported by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// The event code.
    pub event: u8,
    /// The key, for DTMF codes.
    pub key: Option<char>,
    /// Duration in RTP timestamp units (1/8000 s).
    pub duration: u16,
    /// RTP timestamp of the event start.
    pub timestamp: u32,
    /// True when the end packets were lost and the event was closed because
    /// the next one started.
    pub end_lost: bool,
}

/// Turns telephone-event packets into one [`Digit`] per event.
#[derive(Debug, Default, Clone)]
pub struct DtmfReceiver {
    /// Event in progress: (timestamp, event, duration so far).
    current: Option<(u32, u8, u16)>,
    /// Timestamp of the last event reported, to ignore its repeated ends.
    last_ended: Option<u32>,
}

impl DtmfReceiver {
    /// A receiver with no event in progress.
    #[must_use]
    pub fn new() -> DtmfReceiver {
        DtmfReceiver::default()
    }

    /// Feeds one packet's event and RTP timestamp; returns the digits
    /// completed by it (at most two: a previous event whose end packets were
    /// all lost, and this one).
    pub fn handle(&mut self, timestamp: u32, ev: TelephoneEvent) -> [Option<Digit>; 2] {
        let mut done = [None, None];
        if self.last_ended == Some(timestamp) {
            // A repeated end packet (or a stray update) of a reported event.
            return done;
        }
        if let Some((ts, event, duration)) = self.current
            && ts != timestamp
        {
            done[0] = Some(Digit {
                event,
                key: event_key(event),
                duration,
                timestamp: ts,
                end_lost: true,
            });
            self.current = None;
        }
        if ev.end {
            self.current = None;
            self.last_ended = Some(timestamp);
            done[1] = Some(Digit {
                event: ev.event,
                key: ev.key(),
                duration: ev.duration,
                timestamp,
                end_lost: false,
            });
        } else {
            let duration = match self.current {
                Some((_, _, d)) => d.max(ev.duration),
                None => ev.duration,
            };
            self.current = Some((timestamp, ev.event, duration));
        }
        done
    }
}

/// One packet of an outgoing event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The payload.
    pub event: TelephoneEvent,
    /// Marker bit: set on the first packet of the event.
    pub marker: bool,
}

/// Generates the packets of one outgoing event, one per 20 ms tick: a first
/// packet with the marker bit, updates with growing duration, and the end
/// packet three times (RFC 4733 section 2.5). All of them carry the RTP
/// timestamp of the event start, which the sender chooses.
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    event: u8,
    volume: u8,
    total: u16,
    step: u16,
    elapsed: u16,
    ends_sent: u8,
}

impl DtmfGenerator {
    /// An event `event` lasting `duration` timestamp units (e.g. 800 for
    /// 100 ms at 8 kHz), at `volume` -dBm0, one packet per `step` units
    /// (160 for 20 ms).
    #[must_use]
    pub fn new(event: u8, duration: u16, volume: u8, step: u16) -> DtmfGenerator {
        DtmfGenerator {
            event,
            volume: volume & 0x3f,
            total: duration.max(1),
            step: step.max(1),
            elapsed: 0,
            ends_sent: 0,
        }
    }
}

impl Iterator for DtmfGenerator {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        if self.ends_sent == 3 {
            return None;
        }
        let marker = self.elapsed == 0;
        self.elapsed = self.elapsed.saturating_add(self.step).min(self.total);
        let end = self.elapsed >= self.total;
        if end {
            self.ends_sent += 1;
        }
        Some(EventPacket {
            event: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration: self.elapsed,
            },
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_end_bit_volume_and_duration() {
        let ev = TelephoneEvent::parse(&[11, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.key(), Some('#'));
        assert_eq!(ev.to_bytes(), [11, 0x8a, 0x03, 0x20]);
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn repeated_end_packets_count_once() {
        let mut rx = DtmfReceiver::new();
        let mut digits = Vec::new();
        for p in DtmfGenerator::new(5, 800, 10, 160) {
            digits.extend(rx.handle(4000, p.event).into_iter().flatten());
        }
        assert_eq!(digits.len(), 1);
        assert_eq!(digits[0].key, Some('5'));
        assert_eq!(digits[0].duration, 800);
        assert!(!digits[0].end_lost);
    }

    #[test]
    fn lost_end_packets_close_the_event_when_the_next_starts() {
        let mut rx = DtmfReceiver::new();
        let upd = |event, duration| TelephoneEvent {
            event,
            end: false,
            volume: 10,
            duration,
        };
        assert_eq!(rx.handle(100, upd(1, 160)), [None, None]);
        assert_eq!(rx.handle(100, upd(1, 320)), [None, None]);
        let [first, second] = rx.handle(2000, upd(2, 160));
        assert_eq!(second, None);
        let first = first.unwrap();
        assert_eq!(
            (first.key, first.duration, first.end_lost),
            (Some('1'), 320, true)
        );
    }

    #[test]
    fn generator_marks_first_and_repeats_end_three_times() {
        let pkts: Vec<_> = DtmfGenerator::new(key_event('*').unwrap(), 400, 10, 160).collect();
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        let durations: Vec<u16> = pkts.iter().map(|p| p.event.duration).collect();
        assert_eq!(durations, vec![160, 320, 400, 400, 400]);
        assert_eq!(pkts.iter().filter(|p| p.event.end).count(), 3);
    }

    #[test]
    fn keys_map_both_ways() {
        for e in 0..16u8 {
            assert_eq!(key_event(event_key(e).unwrap()), Some(e));
        }
        assert_eq!(event_key(16), None);
        assert_eq!(key_event('x'), None);
    }

    proptest! {
        #[test]
        fn parse_round_trips_and_never_panics(data in proptest::collection::vec(any::<u8>(), 0..8)) {
            if let Ok(ev) = TelephoneEvent::parse(&data) {
                prop_assert_eq!(&ev.to_bytes()[..], &[data[0], data[1] & 0xbf, data[2], data[3]][..]);
            }
        }

        #[test]
        fn every_generated_event_is_received_once(events in proptest::collection::vec((0u8..16, 1u16..3000), 1..20)) {
            let mut rx = DtmfReceiver::new();
            let mut got = Vec::new();
            let mut ts = 0u32;
            for &(e, d) in &events {
                for p in DtmfGenerator::new(e, d, 10, 160) {
                    got.extend(rx.handle(ts, p.event).into_iter().flatten().map(|d| (d.event, d.duration)));
                }
                ts = ts.wrapping_add(u32::from(d) + 800);
            }
            prop_assert_eq!(got, events);
        }
    }
}
