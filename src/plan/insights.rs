//! Pure: delivery figures (the DORA four) of one app in one Environment, from its audit records
//! (see [`crate::api::Ledger`]). Times are absolute (UTC instants), so a clock change (DST) moves
//! no figure; the window is `[from, to)`.
//!
//! - **Deploys**: rollouts that succeeded, rollbacks excluded.
//! - **Lead time** of a change: from the first publish of any version carrying it to the end of the
//!   first successful rollout here that carried it.
//! - **Change failure rate**: rollouts (not rollbacks, not superseded) that failed here or were
//!   rolled back later (a veto), over all of them.
//! - **Time to restore**: from a failure (a failed rollout, or the rollout of a version rolled
//!   back later) to the end of the next successful rollout.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::api::{HistoryEntry, Record, RecordKind, ReleaseStatus, RolloutResult};

/// The figures of one app in one Environment over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub deploys: usize,
    pub deploys_per_week: f64,
    /// Changes that reached this Environment in the window.
    pub changes: usize,
    pub lead_time_p50: Option<SignedDuration>,
    pub lead_time_p90: Option<SignedDuration>,
    /// Rollouts judged for failure (the rate's denominator).
    pub rollouts: usize,
    pub failures: usize,
    pub change_failure_rate: Option<f64>,
    pub restores: usize,
    pub time_to_restore_p50: Option<SignedDuration>,
    /// From when a version began to wait for approval to when it rolled out, p50.
    pub approval_wait_p50: Option<SignedDuration>,
    /// How long versions waited on freeze and allow windows before they rolled out, in all.
    pub held_by_freezes: SignedDuration,
}

/// `records`: one app in one Environment, in any order (older ones count as context: a change
/// that reached it before `from` is no lead time now). `first_published`: when each change id
/// was first published, where known better than the records know it (AppVersions still there).
pub fn figures(
    records: &[Record],
    first_published: &BTreeMap<String, Timestamp>,
    from: Timestamp,
    to: Timestamp,
) -> Figures {
    let mut rollouts: Vec<&Record> =
        records.iter().filter(|r| r.kind == RecordKind::Rollout && r.at.0 < to).collect();
    rollouts.sort_by_key(|r| r.at.0);
    let inside = |r: &Record| r.at.0 >= from;
    let succeeded = |r: &Record| r.result == Some(RolloutResult::Succeeded);
    let rollback = |r: &Record| r.rollback_of.is_some();

    let deploys = rollouts.iter().filter(|r| inside(r) && succeeded(r) && !rollback(r)).count();
    let weeks = to.duration_since(from).as_secs_f64() / (7.0 * 86_400.0);

    // Lead time: each change once, at the first successful rollout here that carried it.
    let mut arrived: BTreeSet<&str> = BTreeSet::new();
    let mut leads = Vec::new();
    for r in rollouts.iter().filter(|r| succeeded(r)) {
        for change in &r.changes {
            if !arrived.insert(change.as_str()) || r.at.0 < from {
                continue;
            }
            let published = [first_published.get(change).copied(), r.published_at.as_ref().map(|t| t.0)]
                .into_iter()
                .flatten()
                .min();
            if let Some(p) = published {
                leads.push(r.at.0.duration_since(p).max(SignedDuration::ZERO));
            }
        }
    }

    // Failures, and when service was restored after each.
    let judged: Vec<&Record> = rollouts
        .iter()
        .copied()
        .filter(|r| inside(r) && !rollback(r) && r.result != Some(RolloutResult::Superseded))
        .collect();
    // The last rollback away from each version, looked up per rollout (not a scan per rollout).
    let mut last_rollback_from: HashMap<&str, Timestamp> = HashMap::new();
    for r in &rollouts {
        if let Some(v) = r.rollback_of.as_deref() {
            let at = last_rollback_from.entry(v).or_insert(r.at.0);
            *at = (*at).max(r.at.0);
        }
    }
    let rolled_back_later = |r: &Record| {
        r.version.as_deref().and_then(|v| last_rollback_from.get(v)).is_some_and(|at| *at > r.at.0)
    };
    let failed: Vec<&Record> = judged
        .iter()
        .copied()
        .filter(|r| r.result == Some(RolloutResult::Failed) || rolled_back_later(r))
        .collect();
    let restores: Vec<SignedDuration> = failed
        .iter()
        .filter_map(|f| {
            // A version rolled back later failed when the rollback began; a failed rollout, when
            // it ended.
            let failed_at = rollouts
                .iter()
                .filter(|l| l.at.0 > f.at.0 && l.rollback_of.as_deref() == f.version.as_deref())
                .find_map(|l| l.started_at.as_ref().map(|t| t.0))
                .filter(|_| f.result != Some(RolloutResult::Failed))
                .unwrap_or(f.at.0);
            let restored = rollouts.iter().find(|l| l.at.0 > failed_at && succeeded(l))?;
            Some(restored.at.0.duration_since(failed_at))
        })
        .collect();

    // Waits: each rollout in the window that a gate held, from the hold's start to its own.
    let waited = |reasons: &[&str]| -> Vec<SignedDuration> {
        rollouts
            .iter()
            .filter(|r| inside(r))
            .filter_map(|r| {
                let held = r.held.as_ref().filter(|h| reasons.contains(&h.reason.as_str()))?;
                let started = r.started_at.as_ref()?.0;
                Some(started.duration_since(held.since.0).max(SignedDuration::ZERO))
            })
            .collect()
    };
    let mut approval_waits = waited(&["AwaitingApproval"]);
    let held_by_freezes = waited(&["Frozen", "OutsideAllowWindow"])
        .into_iter()
        .fold(SignedDuration::ZERO, |a, b| a.saturating_add(b));

    Figures {
        deploys,
        deploys_per_week: if weeks > 0.0 { deploys as f64 / weeks } else { 0.0 },
        changes: leads.len(),
        lead_time_p50: percentile(&mut leads, 50),
        lead_time_p90: percentile(&mut leads, 90),
        rollouts: judged.len(),
        failures: failed.len(),
        change_failure_rate: (!judged.is_empty()).then(|| failed.len() as f64 / judged.len() as f64),
        restores: restores.len(),
        time_to_restore_p50: percentile(&mut restores.clone(), 50),
        approval_wait_p50: percentile(&mut approval_waits, 50),
        held_by_freezes,
    }
}

/// The figures of each week (7 days from `from`) up to `to`, oldest first: the bars and trend
/// lines of a chart.
pub fn weekly(
    records: &[Record],
    first_published: &BTreeMap<String, Timestamp>,
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Timestamp, Figures)> {
    let week = SignedDuration::from_hours(7 * 24);
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = start.checked_add(week).unwrap_or(to).min(to);
        out.push((start, figures(records, first_published, start, end)));
        start = end;
    }
    out
}

/// The change ids that run in an Environment after a rollout and did not before it (`prev` and
/// `next`: a Release's statuses around it).
pub fn arrived<'a>(prev: &ReleaseStatus, next: &'a ReleaseStatus) -> Vec<&'a str> {
    next.changes.iter().filter(|c| !prev.changes.contains(c)).map(String::as_str).collect()
}

/// How long service took to come back, when the newest rollout of `history` (newest first) ended
/// a failure: the one before it failed (from its end), or it rolled back from it (from its start).
pub fn restored(history: &[HistoryEntry]) -> Option<SignedDuration> {
    let [now, before, ..] = history else { return None };
    let ended = now.finished_at.as_ref()?.0;
    if now.result != RolloutResult::Succeeded {
        return None;
    }
    let failed_at = if before.result == RolloutResult::Failed {
        before.finished_at.as_ref()?.0
    } else if now.rollback_of.as_deref() == Some(before.version.as_str()) {
        now.started_at.0
    } else {
        return None;
    };
    Some(ended.duration_since(failed_at))
}

/// The `p`th percentile by nearest rank (`None` for no values).
fn percentile(values: &mut [SignedDuration], p: usize) -> Option<SignedDuration> {
    if values.is_empty() {
        return None;
    }
    values.sort();
    let rank = (p * values.len()).div_ceil(100).max(1);
    values.get(rank - 1).copied()
}

#[cfg(test)]
mod tests;
