use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn every(rule: &str, start: &str, duration: &str, tz: &str) -> FreezeWindow {
    FreezeWindow {
        recurrence: Some(Recurrence {
            rule: rule.into(),
            start: start.into(),
            duration: duration.into(),
            time_zone: Some(tz.into()),
        }),
        ..Default::default()
    }
}

fn end(t: &str) -> Option<FreezeEnd> {
    Some(FreezeEnd::At(ts(t)))
}

/// The last two business days of each quarter, all day in Berlin.
fn quarter_close() -> FreezeWindow {
    every(
        "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,-1",
        "2026-01-01T00:00:00",
        "24h",
        "Europe/Berlin",
    )
}

#[test]
fn the_last_two_business_days_of_each_quarter() {
    let w = quarter_close();
    // Q4 2026: Thursday 30 and Friday 31 December (Berlin, UTC+1).
    let cases = [
        ("2026-12-29T22:59:59Z", None),
        ("2026-12-29T23:00:00Z", end("2026-12-30T23:00:00Z")),
        ("2026-12-31T12:00:00Z", end("2026-12-31T23:00:00Z")),
        ("2026-12-31T23:00:00Z", None),
        // Q1 2027: 31 March is a Wednesday, so Tuesday 30 and Wednesday 31 (UTC+2 by then).
        ("2027-03-29T21:59:00Z", None),
        ("2027-03-29T22:00:00Z", end("2027-03-30T22:00:00Z")),
        ("2027-03-30T12:00:00Z", end("2027-03-30T22:00:00Z")),
        ("2027-03-31T21:59:00Z", end("2027-03-31T22:00:00Z")),
        // Mid-quarter: open nowhere.
        ("2027-02-26T12:00:00Z", None),
    ];
    for (now, want) in cases {
        assert_eq!(active_until(&w, ts(now)).unwrap(), want, "at {now}");
    }
    assert_eq!(next_opening(&w, ts("2027-01-15T00:00:00Z")).unwrap(), Some(ts("2027-03-29T22:00:00Z")));
    assert_eq!(next_opening(&w, ts("2026-12-31T12:00:00Z")).unwrap(), None, "open now");
}

#[test]
fn local_times_hold_across_daylight_saving_changes() {
    // Every day 09:00–10:00 in Berlin: 08:00Z in winter, 07:00Z in summer (DST began 28 March 2027).
    let w = every("FREQ=DAILY", "2027-03-20T09:00:00", "1h", "Europe/Berlin");
    assert_eq!(active_until(&w, ts("2027-03-27T08:30:00Z")).unwrap(), end("2027-03-27T09:00:00Z"));
    assert_eq!(active_until(&w, ts("2027-03-29T07:30:00Z")).unwrap(), end("2027-03-29T08:00:00Z"));
    assert_eq!(active_until(&w, ts("2027-03-29T08:30:00Z")).unwrap(), None, "08:30Z is 10:30 in summer");
    // And back in autumn (DST ends 31 October 2027).
    assert_eq!(next_opening(&w, ts("2027-10-30T12:00:00Z")).unwrap(), Some(ts("2027-10-31T08:00:00Z")));

    // A weekly window, likewise: Fridays 16:00–18:00 New York, across 14 March 2027.
    let fri = FreezeWindow {
        weekly: Some(WeeklyWindow {
            days: vec!["Fri".into()],
            from: "16:00".into(),
            to: "18:00".into(),
            time_zone: Some("America/New_York".into()),
        }),
        ..Default::default()
    };
    assert_eq!(active_until(&fri, ts("2027-03-12T21:30:00Z")).unwrap(), end("2027-03-12T23:00:00Z"));
    assert_eq!(active_until(&fri, ts("2027-03-19T20:30:00Z")).unwrap(), end("2027-03-19T22:00:00Z"));
    assert_eq!(active_until(&fri, ts("2027-03-19T22:30:00Z")).unwrap(), None);
    assert_eq!(next_opening(&fri, ts("2027-03-13T00:00:00Z")).unwrap(), Some(ts("2027-03-19T20:00:00Z")));
}

#[test]
fn a_window_longer_than_its_interval_ends_with_the_last_occurrence() {
    // Every day at 00:00 for 36h: always open, and the end is the latest occurrence's.
    let w = every("FREQ=DAILY", "2026-01-01T00:00:00", "36h", "UTC");
    assert_eq!(active_until(&w, ts("2026-06-10T06:00:00Z")).unwrap(), end("2026-06-11T12:00:00Z"));
}

#[test]
fn counted_rules_end() {
    let w = every("FREQ=WEEKLY;COUNT=2;BYDAY=SA", "2026-12-05T10:00:00", "2h", "UTC");
    assert!(active_until(&w, ts("2026-12-12T11:00:00Z")).unwrap().is_some());
    assert_eq!(active_until(&w, ts("2026-12-19T11:00:00Z")).unwrap(), None);
    assert_eq!(next_opening(&w, ts("2026-12-13T00:00:00Z")).unwrap(), None, "two occurrences, both past");
}

#[test]
fn bad_recurrences_are_refused_whatever_the_time() {
    let bad = [
        every("FREQ=SOMETIMES", "2026-01-01T00:00:00", "1h", "UTC"),
        every("FREQ=DAILY", "first of January", "1h", "UTC"),
        every("FREQ=DAILY", "2026-01-01T00:00:00", "a while", "UTC"),
        every("FREQ=DAILY", "2026-01-01T00:00:00", "0s", "UTC"),
        every("FREQ=DAILY", "2026-01-01T00:00:00", "1h", "Mars/Olympus"),
        every("FREQ=DAILY\nEXDATE:20260101T000000", "2026-01-01T00:00:00", "1h", "UTC"),
        FreezeWindow { start: Some("2026-01-01T00:00:00Z".into()), ..quarter_close() },
    ];
    for (i, w) in bad.iter().enumerate() {
        for now in ["2020-01-01T00:00:00Z", "2026-12-31T12:00:00Z"] {
            assert!(active_until(w, ts(now)).is_err(), "bad {i} at {now}");
            assert!(next_opening(w, ts(now)).is_err(), "bad {i} at {now}");
        }
    }
}

#[test]
fn allow_windows_open_and_say_when_they_next_open() {
    let w = AllowWindow {
        recurrence: Some(Recurrence {
            rule: "FREQ=WEEKLY;BYDAY=TU,TH".into(),
            start: "2026-11-03T10:00:00".into(),
            duration: "4h".into(),
            time_zone: Some("Asia/Shanghai".into()),
        }),
        ..Default::default()
    };
    // Tuesday 8 December 2026, 10:00–14:00 Shanghai = 02:00–06:00Z.
    assert_eq!(active_until(&w, ts("2026-12-08T03:00:00Z")).unwrap(), end("2026-12-08T06:00:00Z"));
    assert_eq!(next_opening(&w, ts("2026-12-08T07:00:00Z")).unwrap(), Some(ts("2026-12-10T02:00:00Z")));
    let once = AllowWindow {
        start: Some("2026-12-12T08:00:00Z".into()),
        end: Some("2026-12-12T12:00:00Z".into()),
        ..Default::default()
    };
    assert_eq!(next_opening(&once, ts("2026-12-10T00:00:00Z")).unwrap(), Some(ts("2026-12-12T08:00:00Z")));
    assert_eq!(next_opening(&once, ts("2026-12-13T00:00:00Z")).unwrap(), None);
}

#[test]
fn a_local_time_the_clock_skips_still_opens_a_window() {
    // 02:30 does not exist in Berlin on 28 March 2027 (02:00 → 03:00).
    let w = every("FREQ=DAILY", "2027-03-20T02:30:00", "1h", "Europe/Berlin");
    // RFC 5545: a time the clock skips is read with the offset before the change (02:30 CET =
    // 01:30Z, which is 03:30 CEST).
    assert_eq!(next_opening(&w, ts("2027-03-27T12:00:00Z")).unwrap(), Some(ts("2027-03-28T01:30:00Z")));
    assert_eq!(active_until(&w, ts("2027-03-27T01:45:00Z")).unwrap(), end("2027-03-27T02:30:00Z"));
}
