//! Pure campaign rules: the calling window (local time of day and days of
//! week, in the lead's or the campaign's IANA time zone, resolved with
//! jiff's bundled tz database so no system tzdata is needed) and the retry
//! policy that turns an attempt's outcome into the lead's next status and
//! next attempt time. No clock is read here: `now` is always a parameter.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result};
use crate::model::{LeadStatus, Outcome};

/// Resolves an IANA time zone name (`Europe/Paris`) from the bundled
/// database.
pub(crate) fn zone(name: &str) -> Result<TimeZone> {
    jiff::tz::db().get(name).map_err(|_| Error::InvalidInput {
        field: "time_zone",
        reason: "unknown IANA time zone",
    })
}

/// A set of days of the week (bit 0 = Monday ... bit 6 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0x7f);
    /// Monday to Friday.
    pub const MON_FRI: Weekdays = Weekdays(0x1f);
    /// No day (a campaign that never dials).
    pub const NONE: Weekdays = Weekdays(0);

    /// Builds a set from days.
    pub fn from_days(days: &[jiff::civil::Weekday]) -> Self {
        Weekdays(
            days.iter()
                .fold(0, |m, d| m | 1 << d.to_monday_zero_offset()),
        )
    }
    /// From the stored bitmask (bits above 6 are ignored).
    pub fn from_bits(bits: u8) -> Self {
        Weekdays(bits & 0x7f)
    }
    /// The bitmask.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Whether `day` is in the set.
    pub fn contains(self, day: jiff::civil::Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }
}

/// When a campaign may dial, in local time: from `start_minute` (inclusive)
/// to `end_minute` (exclusive), minutes after local midnight, on `days`.
/// A window with `end_minute < start_minute` runs overnight (the day that
/// counts is the local date at the moment of the check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    start_minute: u16,
    end_minute: u16,
    days: Weekdays,
}

impl CallingWindow {
    /// Every minute of every day.
    pub const ALWAYS: CallingWindow = CallingWindow {
        start_minute: 0,
        end_minute: 1440,
        days: Weekdays::ALL,
    };

    /// A window from `start_minute` (0..1440) to `end_minute` (0..=1440) on
    /// `days`; the two must differ.
    ///
    /// ```
    /// use callbridge_crm_store::{CallingWindow, Weekdays};
    /// // 09:00 to 17:30, Monday to Friday.
    /// let w = CallingWindow::new(9 * 60, 17 * 60 + 30, Weekdays::MON_FRI).unwrap();
    /// assert_eq!(w.start_minute(), 540);
    /// ```
    pub fn new(start_minute: u16, end_minute: u16, days: Weekdays) -> Result<Self> {
        if start_minute >= 1440 || end_minute > 1440 || start_minute == end_minute {
            return Err(Error::InvalidInput {
                field: "calling_window",
                reason: "start must be in 0..1440, end in 0..=1440, and they must differ",
            });
        }
        Ok(CallingWindow {
            start_minute,
            end_minute,
            days,
        })
    }
    /// Start, minutes after local midnight.
    pub fn start_minute(&self) -> u16 {
        self.start_minute
    }
    /// End (exclusive), minutes after local midnight.
    pub fn end_minute(&self) -> u16 {
        self.end_minute
    }
    /// The days it applies to.
    pub fn days(&self) -> Weekdays {
        self.days
    }

    /// Whether `now`, seen in `tz`, falls inside the window.
    pub fn is_open(&self, now: Timestamp, tz: &TimeZone) -> bool {
        let local = now.to_zoned(tz.clone());
        if !self.days.contains(local.weekday()) {
            return false;
        }
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

/// Longest accepted retry delay (one year).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// How a campaign retries: at most `max_attempts` dials per lead, and the
/// delay before the next attempt after each retryable outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Dials per lead, at least 1.
    pub max_attempts: u32,
    /// Delay after a busy signal.
    pub busy: Duration,
    /// Delay after no answer.
    pub no_answer: Duration,
    /// Delay after a failed call.
    pub failed: Duration,
    /// Delay after reaching voicemail.
    pub voicemail: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            busy: Duration::from_secs(10 * 60),
            no_answer: Duration::from_secs(60 * 60),
            failed: Duration::from_secs(30 * 60),
            voicemail: Duration::from_secs(4 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// Checks the bounds (at least one attempt, delays up to a year).
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::InvalidInput {
                field: "max_attempts",
                reason: "must be at least 1",
            });
        }
        if [self.busy, self.no_answer, self.failed, self.voicemail]
            .iter()
            .any(|d| *d > MAX_RETRY_DELAY)
        {
            return Err(Error::InvalidInput {
                field: "retry_delay",
                reason: "longer than a year",
            });
        }
        Ok(())
    }

    /// The delay after a retryable outcome; `None` for outcomes that end
    /// the lead.
    pub fn delay(&self, outcome: Outcome) -> Option<Duration> {
        match outcome {
            Outcome::Busy => Some(self.busy),
            Outcome::NoAnswer => Some(self.no_answer),
            Outcome::Failed => Some(self.failed),
            Outcome::Voicemail => Some(self.voicemail),
            Outcome::Completed | Outcome::DoNotCall => None,
        }
    }

    /// The lead's next status and next attempt time after an attempt with
    /// `outcome`, given the attempts made so far (including this one).
    ///
    /// `completed` -> `done`; `do-not-call` -> `do-not-call`; a retryable
    /// outcome -> `retry` at `now + delay`, or `failed` once
    /// `attempts_made >= max_attempts`.
    ///
    /// ```
    /// use callbridge_crm_store::{LeadStatus, Outcome, RetryPolicy};
    /// let p = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    /// let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    /// let (s, at) = p.next(1, Outcome::Busy, now);
    /// assert_eq!(s, LeadStatus::Retry);
    /// assert_eq!((at - now).get_seconds(), 600);
    /// assert_eq!(p.next(2, Outcome::Busy, now).0, LeadStatus::Failed);
    /// ```
    pub fn next(
        &self,
        attempts_made: u32,
        outcome: Outcome,
        now: Timestamp,
    ) -> (LeadStatus, Timestamp) {
        match self.delay(outcome) {
            None if outcome == Outcome::DoNotCall => (LeadStatus::DoNotCall, now),
            None => (LeadStatus::Done, now),
            Some(_) if attempts_made >= self.max_attempts => (LeadStatus::Failed, now),
            Some(d) => {
                let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
                (
                    LeadStatus::Retry,
                    now.checked_add(d).unwrap_or(Timestamp::MAX),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn window_uses_the_zone_local_time_and_weekday() {
        let w = CallingWindow::new(9 * 60, 17 * 60, Weekdays::MON_FRI).unwrap();
        let paris = zone("Europe/Paris").unwrap();
        let ny = zone("America/New_York").unwrap();
        // Tuesday 2026-11-17 08:30 UTC = 09:30 Paris, 03:30 New York.
        let t = at("2026-11-17T08:30:00Z");
        assert!(w.is_open(t, &paris));
        assert!(!w.is_open(t, &ny));
        // Saturday: closed everywhere.
        assert!(!w.is_open(at("2026-11-21T12:00:00Z"), &paris));
    }

    #[test]
    fn overnight_window_wraps_midnight() {
        let w = CallingWindow::new(22 * 60, 2 * 60, Weekdays::ALL).unwrap();
        assert!(w.is_open(at("2026-11-17T23:00:00Z"), &TimeZone::UTC));
        assert!(w.is_open(at("2026-11-17T01:59:00Z"), &TimeZone::UTC));
        assert!(!w.is_open(at("2026-11-17T02:00:00Z"), &TimeZone::UTC));
    }

    #[test]
    fn unknown_zone_and_empty_window_are_invalid_input() {
        assert!(matches!(
            zone("Mars/Olympus"),
            Err(Error::InvalidInput {
                field: "time_zone",
                ..
            })
        ));
        assert!(CallingWindow::new(60, 60, Weekdays::ALL).is_err());
        assert!(CallingWindow::new(1440, 10, Weekdays::ALL).is_err());
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop::sample::select(Outcome::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn retry_policy_never_loops_and_never_goes_back_in_time(
            max in 1u32..20, made in 0u32..40, o in outcome(),
            secs in 0u64..1_000_000, now_s in 0i64..4_000_000_000,
        ) {
            let d = Duration::from_secs(secs);
            let p = RetryPolicy { max_attempts: max, busy: d, no_answer: d, failed: d, voicemail: d };
            let now = Timestamp::from_second(now_s).unwrap();
            let (status, next) = p.next(made, o, now);
            prop_assert!(next >= now);
            match status {
                LeadStatus::Retry => {
                    prop_assert!(made < max);
                    prop_assert!(p.delay(o).is_some());
                    prop_assert_eq!((next - now).get_seconds(), secs as i64);
                }
                LeadStatus::Failed => prop_assert!(made >= max && p.delay(o).is_some()),
                LeadStatus::Done => prop_assert_eq!(o, Outcome::Completed),
                LeadStatus::DoNotCall => prop_assert_eq!(o, Outcome::DoNotCall),
                other => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn overnight_window_is_the_complement_of_the_day_window(
            a in 0u16..1440, b in 0u16..1440, t in 0i64..10_000_000_000,
        ) {
            prop_assume!(a != b);
            let (lo, hi) = (a.min(b), a.max(b));
            let day = CallingWindow::new(lo, hi, Weekdays::ALL).unwrap();
            let night = CallingWindow::new(hi, lo, Weekdays::ALL).unwrap();
            let now = Timestamp::from_second(t).unwrap();
            prop_assert_ne!(day.is_open(now, &TimeZone::UTC), night.is_open(now, &TimeZone::UTC));
        }
    }
}
