use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{Record, RecordKind, RolloutResult};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

struct R {
    version: &'static str,
    started: &'static str,
    ended: &'static str,
    result: RolloutResult,
    rollback_of: Option<&'static str>,
    changes: &'static [&'static str],
    published: Option<&'static str>,
}

fn record(r: R) -> Record {
    Record {
        kind: RecordKind::Rollout,
        at: Time(ts(r.ended)),
        release: "payments-prod".into(),
        version: Some(r.version.into()),
        from: None,
        started_at: Some(Time(ts(r.started))),
        result: Some(r.result),
        rollback_of: r.rollback_of.map(String::from),
        by: Some("pinned".into()),
        approvers: vec![],
        changes: r.changes.iter().map(|c| c.to_string()).collect(),
        published_at: r.published.map(|p| Time(ts(p))),
        note: None,
        held: None,
        source: None,
        requester: Default::default(),
    }
}

use RolloutResult::*;

/// A month of payments in prod, across both autumn clock changes (Europe 25 October, the US
/// 1 November), figured by hand in the comments.
fn month() -> Vec<Record> {
    let r = |version, started, ended, result, rollback_of, changes, published| {
        record(R { version, started, ended, result, rollback_of, changes, published })
    };
    let held = |mut rec: Record, reason: &str, since: &str| {
        rec.held = Some(crate::api::Hold { reason: reason.into(), since: Time(ts(since)) });
        rec
    };
    vec![
        // Before the window: FIN-100 arrived then, so it is no lead time now.
        r(
            "1.3.8",
            "2026-10-10T09:00:00Z",
            "2026-10-10T10:00:00Z",
            Succeeded,
            None,
            &["FIN-100"],
            Some("2026-10-09T10:00:00Z"),
        ),
        // Deploy 1. FIN-120 was first published with an rc two days before: lead 48 h.
        r(
            "1.3.9",
            "2026-10-20T09:00:00Z",
            "2026-10-20T09:30:00Z",
            Succeeded,
            None,
            &["FIN-100", "FIN-120"],
            Some("2026-10-19T09:30:00Z"),
        ),
        // Failure 1, in the hour Europe's clocks go back: restored by the rollback 10 min later.
        r(
            "1.3.10",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            Failed,
            None,
            &["FIN-130"],
            Some("2026-10-24T23:30:00Z"),
        ),
        r(
            "1.3.9",
            "2026-10-25T01:31:00Z",
            "2026-10-25T01:40:00Z",
            Succeeded,
            Some("1.3.10"),
            &["FIN-100", "FIN-120"],
            None,
        ),
        // Deploy 2, the morning US clocks go back. FIN-130: first published 24 Oct 23:30, here
        // 1 Nov 06:00 — 174 h 30 min. FIN-142: only the record knows its publish — 24 h.
        // It waited 2 h for its approval.
        held(
            r(
                "1.3.11",
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                Succeeded,
                None,
                &["FIN-130", "FIN-142"],
                Some("2026-10-31T06:00:00Z"),
            ),
            "AwaitingApproval",
            "2026-11-01T03:00:00Z",
        ),
        // Superseded: judged neither way, and its change arrives with the next.
        r(
            "1.3.12",
            "2026-11-05T10:00:00Z",
            "2026-11-05T10:05:00Z",
            Superseded,
            None,
            &["FIN-150"],
            Some("2026-11-05T08:20:00Z"),
        ),
        // Deploy 3: FIN-150 2 h (first published with 1.3.12), FIN-151 1 h.
        // It waited an hour for a freeze to end.
        held(
            r(
                "1.3.13",
                "2026-11-05T10:05:00Z",
                "2026-11-05T10:20:00Z",
                Succeeded,
                None,
                &["FIN-150", "FIN-151"],
                Some("2026-11-05T09:20:00Z"),
            ),
            "Frozen",
            "2026-11-05T09:05:00Z",
        ),
        // Failure 2: 1.3.13 vetoed five days later; the rollback starts 12:00, healthy 12:10.
        r(
            "1.3.11",
            "2026-11-10T12:00:00Z",
            "2026-11-10T12:10:00Z",
            Succeeded,
            Some("1.3.13"),
            &["FIN-130", "FIN-142"],
            None,
        ),
        // After the window: not counted.
        r(
            "1.3.14",
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:30:00Z",
            Succeeded,
            None,
            &["FIN-160"],
            Some("2026-11-19T10:00:00Z"),
        ),
    ]
}

#[test]
fn the_four_figures_match_a_month_figured_by_hand() {
    let first = BTreeMap::from([
        ("FIN-120".to_string(), ts("2026-10-18T09:30:00Z")),
        ("FIN-130".to_string(), ts("2026-10-24T23:30:00Z")),
        ("FIN-150".to_string(), ts("2026-11-05T08:20:00Z")),
    ]);
    let f = figures(&month(), &first, ts("2026-10-19T00:00:00Z"), ts("2026-11-16T00:00:00Z"));
    let h = |hours: i64| SignedDuration::from_hours(hours);
    assert_eq!(
        f,
        Figures {
            deploys: 3,
            deploys_per_week: 0.75,
            // 1 h, 2 h, 24 h, 48 h, 174 h 30 min: the 3rd and the 5th by nearest rank.
            changes: 5,
            lead_time_p50: Some(h(24)),
            lead_time_p90: Some(h(174) + SignedDuration::from_mins(30)),
            // 1.3.9, 1.3.10 (failed), 1.3.11, 1.3.13 (rolled back).
            rollouts: 4,
            failures: 2,
            change_failure_rate: Some(0.5),
            restores: 2,
            time_to_restore_p50: Some(SignedDuration::from_mins(10)),
            approval_wait_p50: Some(h(2)),
            held_by_freezes: h(1),
        }
    );
}

#[test]
fn the_order_records_come_in_changes_nothing_and_an_empty_window_has_no_rates() {
    let first = BTreeMap::new();
    let (from, to) = (ts("2026-10-19T00:00:00Z"), ts("2026-11-16T00:00:00Z"));
    let mut reversed = month();
    reversed.reverse();
    assert_eq!(figures(&reversed, &first, from, to), figures(&month(), &first, from, to));
    let quiet = figures(&month(), &first, ts("2026-12-01T00:00:00Z"), ts("2026-12-08T00:00:00Z"));
    assert_eq!((quiet.deploys, quiet.change_failure_rate, quiet.lead_time_p50), (0, None, None));
}

#[test]
fn a_failure_not_yet_restored_counts_as_a_failure_with_no_restore_time() {
    let failed = record(R {
        version: "1.4.0",
        started: "2026-11-02T10:00:00Z",
        ended: "2026-11-02T10:30:00Z",
        result: Failed,
        rollback_of: None,
        changes: &[],
        published: None,
    });
    let f = figures(&[failed], &BTreeMap::new(), ts("2026-11-01T00:00:00Z"), ts("2026-11-08T00:00:00Z"));
    assert_eq!(
        (f.failures, f.change_failure_rate, f.restores, f.time_to_restore_p50),
        (1, Some(1.0), 0, None)
    );
}

#[test]
fn a_restore_is_timed_from_the_failure_it_ends() {
    let entry = |version: &str, started: &str, ended: &str, result, rollback_of: Option<&str>| {
        crate::api::HistoryEntry {
            version: version.into(),
            started_at: Time(ts(started)),
            finished_at: Some(Time(ts(ended))),
            result,
            message: None,
            rollback_of: rollback_of.map(String::from),
            approvers: vec![],
            held: None,
            requester: Default::default(),
            generation: None,
        }
    };
    let failed = entry("1.3.10", "2026-12-07T10:00:00Z", "2026-12-07T10:10:00Z", Failed, None);
    let back = entry("1.3.9", "2026-12-07T10:10:00Z", "2026-12-07T10:13:00Z", Succeeded, Some("1.3.10"));
    let good = entry("1.3.9", "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z", Succeeded, None);
    let vetoed_back =
        entry("1.3.9", "2026-12-08T09:00:00Z", "2026-12-08T09:02:00Z", Succeeded, Some("1.3.11"));
    let vetoed = entry("1.3.11", "2026-12-07T12:00:00Z", "2026-12-07T12:05:00Z", Succeeded, None);
    let table = [
        (
            "after a failed rollout: from its end",
            vec![back.clone(), failed.clone()],
            Some(SignedDuration::from_mins(3)),
        ),
        (
            "after a veto: from the rollback's start",
            vec![vetoed_back, vetoed.clone()],
            Some(SignedDuration::from_mins(2)),
        ),
        ("a plain upgrade restores nothing", vec![vetoed, good.clone()], None),
        ("a failure is no restore", vec![failed, good.clone()], None),
        ("one rollout", vec![good], None),
    ];
    for (name, history, want) in table {
        assert_eq!(restored(&history), want, "{name}");
    }
}

#[test]
fn weeks_add_up_to_the_window() {
    let first = BTreeMap::new();
    let (from, to) = (ts("2026-10-19T00:00:00Z"), ts("2026-11-16T00:00:00Z"));
    let weeks = weekly(&month(), &first, from, to);
    assert_eq!(weeks.len(), 4);
    assert_eq!(
        weeks.iter().map(|(_, f)| f.deploys).sum::<usize>(),
        figures(&month(), &first, from, to).deploys
    );
    // 1.3.9 on 20 October, 1.3.11 on 1 November, 1.3.13 on 5 November; the last week only rolled back.
    assert_eq!(weeks.iter().map(|(_, f)| f.deploys).collect::<Vec<_>>(), vec![1, 1, 1, 0]);
    assert_eq!(weeks[1].0, ts("2026-10-26T00:00:00Z"));
}
