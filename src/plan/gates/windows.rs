//! Time windows: one-off (`start`–`end`), weekly, or RFC 5545 recurrences in a time zone. Whether a
//! window is open at an instant, when it closes, and when it next opens. Pure.
//!
//! A window is valid or not whatever the time (the webhook judges it once, the controller at every
//! reconcile): everything that can be wrong is checked before any instant is looked at.

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

use crate::api::{AllowWindow, FreezeWindow, Recurrence, WeeklyWindow};
use crate::duration::parse_duration;

/// The next opening is the first occurrence after now.
const OCCURRENCES_AHEAD: u16 = 1;

/// The parts of a window that say when it is open.
pub struct When<'a> {
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    pub weekly: Option<&'a WeeklyWindow>,
    pub recurrence: Option<&'a Recurrence>,
}

/// A freeze or an allow window.
pub trait Window {
    fn when(&self) -> When<'_>;
}

/// Freeze and allow windows say when they are open with the same four fields.
macro_rules! window {
    ($($t:ty),*) => {$(
        impl Window for $t {
            fn when(&self) -> When<'_> {
                When {
                    start: self.start.as_deref(),
                    end: self.end.as_deref(),
                    weekly: self.weekly.as_ref(),
                    recurrence: self.recurrence.as_ref(),
                }
            }
        }
    )*};
}

window!(FreezeWindow, AllowWindow);

/// When an open window closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeEnd {
    At(Timestamp),
    /// A one-off window without `end`: open until someone removes it (`tuskfish unfreeze`).
    WhenRemoved,
}

/// A window read and checked.
enum Parsed {
    Once { start: Timestamp, end: Option<Timestamp> },
    Weekly { tz: TimeZone, days: Vec<Weekday>, from: Time, to: Time },
    Recurring { rules: Box<rrule::RRuleSet>, length: Duration },
}

fn parse(w: &impl Window) -> Result<Parsed, String> {
    let when = w.when();
    let instant = |s: &str| s.parse::<Timestamp>().map_err(|e| format!("window time {s:?}: {e}"));
    match (when.start, when.end, when.weekly, when.recurrence) {
        (Some(start), end, None, None) => {
            let start = instant(start)?;
            let end = end.map(instant).transpose()?;
            if let Some(end) = end.filter(|e| *e <= start) {
                return Err(format!("window ends ({end}) before it starts ({start})"));
            }
            Ok(Parsed::Once { start, end })
        }
        (None, None, Some(weekly), None) => {
            let tz_name = weekly.time_zone.as_deref().unwrap_or("UTC");
            let tz = TimeZone::get(tz_name).map_err(|e| format!("window time zone {tz_name:?}: {e}"))?;
            let days = weekly.days.iter().map(|d| weekday(d)).collect::<Result<Vec<_>, _>>()?;
            Ok(Parsed::Weekly { tz, days, from: hh_mm(&weekly.from)?, to: hh_mm(&weekly.to)? })
        }
        (None, None, None, Some(r)) => recurrence(r),
        _ => Err("a window needs exactly one of start (and optionally end), weekly and recurrence".into()),
    }
}

/// Reads a recurrence into the rule set it describes (the rule, anchored at `start` in its zone).
fn recurrence(r: &Recurrence) -> Result<Parsed, String> {
    let tz_name = r.time_zone.as_deref().unwrap_or("UTC");
    // jiff knows the zones the API documents; the rule engine speaks chrono-tz, so both must.
    TimeZone::get(tz_name).map_err(|e| format!("recurrence time zone {tz_name:?}: {e}"))?;
    chrono_tz::Tz::from_str(tz_name).map_err(|e| format!("recurrence time zone {tz_name:?}: {e}"))?;
    let start: jiff::civil::DateTime = r.start.parse().map_err(|e| {
        format!(
            "recurrence start {:?} is not a local date and time such as 2026-01-01T09:00:00: {e}",
            r.start
        )
    })?;
    let length = parse_duration(&r.duration)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("recurrence duration {:?} is not a duration such as 24h", r.duration))?;
    let rule = r.rule.trim().trim_start_matches("RRULE:");
    if rule.contains('\n') {
        return Err("recurrence rule must be one RRULE value (no DTSTART or other lines)".into());
    }
    let text = format!("DTSTART;TZID={tz_name}:{}\nRRULE:{rule}", start.strftime("%Y%m%dT%H%M%S"));
    let rules = rrule::RRuleSet::from_str(&text).map_err(|e| format!("recurrence rule {rule:?}: {e}"))?;
    Ok(Parsed::Recurring { rules: Box::new(rules), length })
}

/// When `w` is open at `now`, when it closes; `Err` for a window that cannot be read.
pub fn active_until(w: &impl Window, now: Timestamp) -> Result<Option<FreezeEnd>, String> {
    Ok(match parse(w)? {
        Parsed::Once { start, end: None } => (start <= now).then_some(FreezeEnd::WhenRemoved),
        Parsed::Once { start, end: Some(end) } => (start <= now && now < end).then_some(FreezeEnd::At(end)),
        Parsed::Weekly { tz, days, from, to } => weekly_open(&tz, &days, from, to, now).map(FreezeEnd::At),
        Parsed::Recurring { rules, length } => recurring_open(*rules, length, now).map(FreezeEnd::At),
    })
}

/// When `w` next opens after `now` (`None`: it never does again, or is open now).
pub fn next_opening(w: &impl Window, now: Timestamp) -> Result<Option<Timestamp>, String> {
    if active_until(w, now)?.is_some() {
        return Ok(None);
    }
    Ok(match parse(w)? {
        Parsed::Once { start, .. } => (start > now).then_some(start),
        Parsed::Weekly { tz, days, from, .. } => {
            let today = now.to_zoned(tz.clone()).date();
            (0..=7i64)
                .filter_map(|n| today.checked_add(jiff::Span::new().days(n)).ok())
                .filter(|d| days.contains(&d.weekday()))
                .filter_map(|d| d.to_datetime(from).to_zoned(tz.clone()).ok().map(|z| z.timestamp()))
                .find(|t| *t > now)
        }
        Parsed::Recurring { rules, .. } => {
            let after = chrono_of(now)?;
            rules.after(after).all(OCCURRENCES_AHEAD).dates.first().map(timestamp_of)
        }
    })
}

fn weekly_open(tz: &TimeZone, days: &[Weekday], from: Time, to: Time, now: Timestamp) -> Option<Timestamp> {
    let today = now.to_zoned(tz.clone()).date();
    // A window that runs past midnight may have started yesterday.
    for day in [today.yesterday().ok(), Some(today)].into_iter().flatten() {
        if !days.contains(&day.weekday()) {
            continue;
        }
        let end_day = if to > from { Some(day) } else { day.tomorrow().ok() };
        let Some(end_day) = end_day else { continue };
        let at =
            |d: jiff::civil::Date, t: Time| d.to_datetime(t).to_zoned(tz.clone()).ok().map(|z| z.timestamp());
        if let (Some(start), Some(end)) = (at(day, from), at(end_day, to))
            && start <= now
            && now < end
        {
            return Some(end);
        }
    }
    None
}

/// The end of the recurrence's window open at `now`, if one is (the latest occurrence that started
/// within `length` before `now`).
fn recurring_open(rules: rrule::RRuleSet, length: Duration, now: Timestamp) -> Option<Timestamp> {
    let span = jiff::SignedDuration::try_from(length).ok()?;
    let earliest = now.checked_sub(span).ok()?;
    let (after, before) = (chrono_of(earliest).ok()?, chrono_of(now).ok()?);
    let opened = rules.after(after).before(before).all(u16::MAX).dates;
    opened
        .iter()
        .map(timestamp_of)
        .filter(|start| *start <= now)
        .filter_map(|start| start.checked_add(span).ok())
        .filter(|end| *end > now)
        .max()
}

fn chrono_of(t: Timestamp) -> Result<chrono::DateTime<rrule::Tz>, String> {
    let utc = chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
        .ok_or_else(|| format!("{t} is out of the recurrence engine's range"))?;
    Ok(utc.with_timezone(&rrule::Tz::UTC))
}

fn timestamp_of(d: &chrono::DateTime<rrule::Tz>) -> Timestamp {
    Timestamp::from_second(d.timestamp()).unwrap_or(Timestamp::MAX)
}

fn weekday(s: &str) -> Result<Weekday, String> {
    Ok(match s.to_ascii_lowercase().get(..3) {
        Some("mon") => Weekday::Monday,
        Some("tue") => Weekday::Tuesday,
        Some("wed") => Weekday::Wednesday,
        Some("thu") => Weekday::Thursday,
        Some("fri") => Weekday::Friday,
        Some("sat") => Weekday::Saturday,
        Some("sun") => Weekday::Sunday,
        _ => return Err(format!("window day {s:?} is not one of Mon..Sun")),
    })
}

fn hh_mm(s: &str) -> Result<Time, String> {
    let bad = || format!("window time {s:?} is not HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
