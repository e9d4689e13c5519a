//! Parsers for the command line's value syntax: calling windows
//! (`09:00-18:00`), days (`mon-fri`, `mon,wed,sat-sun`), rates (`10/min`,
//! `1/s`, `120/h`) and durations (`55m`, `30s`, `1h30m`, `1h 30m`, `250ms`;
//! humantime's syntax, as in the agent's configuration).

use std::time::Duration;

use callbridge_crm_store::Weekdays;
use jiff::civil::Weekday;

/// Minutes after midnight from `HH:MM` (`24:00` allowed as an end).
fn minute(s: &str) -> Result<u16, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected HH:MM"))?;
    let (h, m): (u16, u16) = (
        h.trim().parse().map_err(|_| format!("`{s}`: bad hour"))?,
        m.trim().parse().map_err(|_| format!("`{s}`: bad minute"))?,
    );
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("`{s}`: not a time of day"));
    }
    Ok(h * 60 + m)
}

/// A window `HH:MM-HH:MM` as (start, end) minutes; an end before the start
/// runs overnight.
pub fn window(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected HH:MM-HH:MM, like 09:00-18:00"))?;
    let (a, b) = (minute(a)?, minute(b)?);
    if a >= 1440 || a == b {
        return Err(format!(
            "`{s}`: start must be before 24:00 and differ from the end"
        ));
    }
    Ok((a, b))
}

fn weekday(s: &str) -> Result<Weekday, String> {
    Ok(match s.trim().to_ascii_lowercase().get(..3) {
        Some("mon") => Weekday::Monday,
        Some("tue") => Weekday::Tuesday,
        Some("wed") => Weekday::Wednesday,
        Some("thu") => Weekday::Thursday,
        Some("fri") => Weekday::Friday,
        Some("sat") => Weekday::Saturday,
        Some("sun") => Weekday::Sunday,
        _ => return Err(format!("`{s}`: not a day (mon, tue, ... sun)")),
    })
}

/// Days like `mon-fri`, `sat,sun`, `mon-wed,fri` or `all`.
pub fn days(s: &str) -> Result<Weekdays, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Weekdays::ALL);
    }
    let mut set = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (mut d, end) = (weekday(a)?, weekday(b)?);
                // A range wraps past Sunday (`fri-mon`); at most 7 steps.
                for _ in 0..7 {
                    set.push(d);
                    if d == end {
                        break;
                    }
                    d = d.next();
                }
            }
            None => set.push(weekday(part)?),
        }
    }
    Ok(Weekdays::from_days(&set))
}

/// `Weekdays` back to text (`mon,tue,...`).
pub fn days_text(d: Weekdays) -> String {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let out: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| d.bits() & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// Calls per minute from `N/min`, `N/s`, `N/h` or a bare `N` (per minute).
pub fn rate(s: &str) -> Result<u32, String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "min"));
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: expected N/min, N/s or N/h"))?;
    let per_min = match unit.trim() {
        "min" | "m" => Some(n),
        "s" | "sec" => n.checked_mul(60),
        "h" | "hour" if n.is_multiple_of(60) => Some(n / 60),
        "h" | "hour" => {
            return Err(format!(
                "`{s}`: per-hour rates must be whole calls per minute (multiples of 60/h)"
            ));
        }
        _ => return Err(format!("`{s}`: unit must be /s, /min or /h")),
    };
    match per_min {
        Some(0) | None => Err(format!("`{s}`: must be 1/min to 4294967295/min")),
        Some(v) => Ok(v),
    }
}

/// A duration like `55m`, `30s`, `1h30m`, `1h 30m`, `250ms` or `0s`: the
/// humantime syntax the agent's configuration file takes
/// (`humantime-serde`), so one duration reads the same in both.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("`{s}`: expected a duration like 30s, 5m, 1h30m, 1h 30m, 250ms"))
}

/// `HH:MM` of a minute count.
pub fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parses_day_and_overnight_ranges_and_refuses_nonsense() {
        assert_eq!(window("09:00-18:00"), Ok((540, 1080)));
        assert_eq!(window("22:00-02:30"), Ok((1320, 150)));
        assert_eq!(window("00:00-24:00"), Ok((0, 1440)));
        for bad in ["9-18", "09:00", "25:00-26:00", "10:00-10:00", "09:60-10:00"] {
            assert!(window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_take_ranges_lists_wraps_and_all() {
        assert_eq!(days("mon-fri"), Ok(Weekdays::MON_FRI));
        assert_eq!(days("all"), Ok(Weekdays::ALL));
        assert_eq!(days("sat,sun").map(days_text), Ok("sat,sun".to_string()));
        assert_eq!(
            days("fri-mon").map(days_text),
            Ok("mon,fri,sat,sun".to_string())
        );
        assert!(days("funday").is_err());
    }

    #[test]
    fn rate_converts_units_to_calls_per_minute() {
        assert_eq!(rate("10/min"), Ok(10));
        assert_eq!(rate("2/s"), Ok(120));
        assert_eq!(rate("120/h"), Ok(2));
        assert_eq!(rate("7"), Ok(7));
        assert!(rate("30/h").is_err());
        assert!(rate("0/min").is_err());
        assert!(rate("ten").is_err());
    }

    #[test]
    fn duration_sums_its_parts() {
        assert_eq!(duration("55m"), Ok(Duration::from_secs(3300)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "m", "5", "5 parsecs", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
