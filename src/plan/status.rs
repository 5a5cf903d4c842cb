//! What the Release status becomes after one reconcile step.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Blocked, Health, Held};
use crate::api::{
    Condition, ConditionType, ConditionUpdate, HISTORY_LIMIT, HistoryEntry, Hold, Inventory, Phase, Reason,
    ReleaseStatus, Requester, RolloutResult, find_condition, set_condition, truncate_message,
};

/// Longest history note kept, in bytes. Notes quote user input (an approver and reason, a freeze
/// override's reason) and ten of them stay in the status; see [`crate::api::MESSAGE_LIMIT`].
pub const HISTORY_MESSAGE_LIMIT: usize = 512;

fn history_message(m: Option<String>) -> Option<String> {
    m.map(|m| truncate_message(m, HISTORY_MESSAGE_LIMIT))
}

/// What one reconcile found or did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The Release cannot go ahead (missing or invalid input).
    Blocked(Blocked),
    /// The objects could not be rendered or applied; `transient` when a retry may help unchanged.
    Failed { reason: Reason, message: String, transient: bool },
    /// The API server refused the rendered objects (or they belong to someone else). `hash` is the
    /// refused state, not tried again until it changes (`None`: tried again, as a refusal RBAC may
    /// lift is); `inventory` everything that may now exist.
    Rejected { reason: Reason, message: String, hash: Option<String>, inventory: Inventory },
    /// Objects applied; `new_rollout` when this starts a rollout (not a drift repair), with `note`
    /// for its history entry (e.g. why it is a rollback).
    /// `rollback_of`: the failed version this rollout goes back from.
    Applied {
        version: String,
        inventory: Inventory,
        new_rollout: bool,
        note: Option<String>,
        rollback_of: Option<String>,
        /// Whose approvals let a new rollout through.
        approvers: Vec<String>,
        /// Who asked for a new rollout.
        requester: Requester,
        health: Health,
    },
    /// Nothing to apply; the health of what runs.
    Observed { health: Health },
}

/// Computes the next status. Pure and idempotent: the same outcome on the same status gives the
/// same status, so the caller skips the write when nothing changed.
pub fn next_status(
    prev: &ReleaseStatus,
    outcome: Outcome,
    generation: Option<i64>,
    now: &Time,
) -> ReleaseStatus {
    let mut s = prev.clone();
    s.observed_generation = generation;
    let cond = |s: &mut ReleaseStatus, type_, status, reason: Reason, message: &str| {
        set(s, ConditionUpdate::new(type_, status, reason, message), generation, now);
    };
    match outcome {
        Outcome::Blocked(b) => {
            s.phase = Some(b.phase);
            cond(&mut s, ConditionType::Ready, false, b.reason, &b.message);
            cond(&mut s, ConditionType::Progressing, false, b.reason, &b.message);
            let failed = b.phase == Phase::Failed;
            cond(
                &mut s,
                ConditionType::Degraded,
                failed,
                if failed { b.reason } else { Reason::AsExpected },
                if failed { &b.message } else { "" },
            );
        }
        Outcome::Failed { reason, message, transient } => {
            s.phase = Some(if transient { Phase::Pending } else { Phase::Failed });
            cond(&mut s, ConditionType::Ready, false, reason, &message);
            cond(&mut s, ConditionType::Progressing, false, reason, &message);
            cond(&mut s, ConditionType::Degraded, !transient, reason, &message);
        }
        Outcome::Rejected { reason, message, hash, inventory } => {
            s.phase = Some(Phase::Failed);
            s.rejected_hash = hash;
            s.inventory = Some(inventory);
            cond(&mut s, ConditionType::Ready, false, reason, &message);
            cond(&mut s, ConditionType::Progressing, false, reason, &message);
            cond(&mut s, ConditionType::Degraded, true, reason, &message);
        }
        Outcome::Applied {
            version,
            inventory,
            new_rollout,
            note,
            rollback_of,
            approvers,
            requester,
            health,
        } => {
            if new_rollout {
                if let Some(h) = s.history.first_mut()
                    && h.result == RolloutResult::Progressing
                {
                    h.result = RolloutResult::Superseded;
                    h.finished_at = Some(now.clone());
                }
                s.history.insert(
                    0,
                    HistoryEntry {
                        version: version.clone(),
                        started_at: now.clone(),
                        finished_at: None,
                        result: RolloutResult::Progressing,
                        message: history_message(note),
                        rollback_of,
                        approvers,
                        held: gate_hold(&s, &version),
                        requester,
                        generation,
                    },
                );
                s.history.truncate(HISTORY_LIMIT);
            }
            s.rollout_started_at = Some(now.clone());
            s.rejected_hash = None;
            s.desired_version = Some(version);
            s.inventory = Some(inventory);
            apply_health(&mut s, health, generation, now);
        }
        Outcome::Observed { health } => apply_health(&mut s, health, generation, now),
    }
    s
}

fn set(s: &mut ReleaseStatus, update: ConditionUpdate, generation: Option<i64>, now: &Time) {
    set_condition(&mut s.conditions, update, generation, now);
}

/// Records forward-port gaps (condition `ForwardPortMissing`, True while changes are missing).
pub fn set_forward_ports(
    s: &mut ReleaseStatus,
    gaps: &[super::changes::Gap],
    generation: Option<i64>,
    now: &Time,
) {
    let update = if gaps.is_empty() {
        ConditionUpdate::new(ConditionType::ForwardPortMissing, false, Reason::NothingMissing, "")
    } else {
        ConditionUpdate::new(
            ConditionType::ForwardPortMissing,
            true,
            Reason::ChangesMissing,
            super::changes::describe(gaps, 10),
        )
    };
    set_condition(&mut s.conditions, update, generation, now);
}

/// The gate that held `version` back until now, from the status before its rollout: the `Held`
/// condition while another version ran, or `Ready` while nothing did. Its transition time is
/// when the hold began (a hold that changed reasons keeps its start, and names its last reason).
fn gate_hold(s: &ReleaseStatus, version: &str) -> Option<Hold> {
    const GATES: [Reason; 3] = [Reason::AwaitingApproval, Reason::Frozen, Reason::OutsideAllowWindow];
    let gate = |c: &&Condition| GATES.iter().any(|g| g.as_str() == c.reason);
    let held = find_condition(&s.conditions, ConditionType::Held)
        .filter(|c| c.status == "True" && s.held_version.as_deref() == Some(version));
    let waiting = find_condition(&s.conditions, ConditionType::Ready).filter(|c| c.status == "False");
    held.filter(gate)
        .or_else(|| waiting.filter(gate).filter(|_| s.current_version.is_none()))
        .map(|c| Hold { reason: c.reason.clone(), since: c.last_transition_time.clone() })
}

/// Records the version held back, if any (condition `Held`, field `heldVersion`).
pub fn set_held(s: &mut ReleaseStatus, held: Option<&Held>, generation: Option<i64>, now: &Time) {
    s.held_version = held.and_then(|h| h.version.clone());
    let update = match held {
        Some(h) => ConditionUpdate::new(ConditionType::Held, true, h.reason, h.message.clone()),
        None => ConditionUpdate::new(ConditionType::Held, false, Reason::NothingHeld, ""),
    };
    set_condition(&mut s.conditions, update, generation, now);
}

fn apply_health(s: &mut ReleaseStatus, health: Health, generation: Option<i64>, now: &Time) {
    let cond = |s: &mut ReleaseStatus, type_, status, reason: Reason, message: &str| {
        set(s, ConditionUpdate::new(type_, status, reason, message), generation, now);
    };
    let version = s.desired_version.clone().unwrap_or_default();
    match health {
        Health::Healthy => {
            s.phase = Some(Phase::Healthy);
            s.current_version = s.desired_version.clone();
            healthy_after_all(s, now);
            finish(s, RolloutResult::Succeeded, None, now);
            let msg = format!("version {version} is healthy");
            cond(s, ConditionType::Ready, true, Reason::RolloutComplete, &msg);
            cond(s, ConditionType::Progressing, false, Reason::RolloutComplete, &msg);
            cond(s, ConditionType::Degraded, false, Reason::AsExpected, "");
        }
        Health::Progressing { message, .. } => {
            s.phase = Some(Phase::Progressing);
            let msg = format!("rolling out {version}: {message}");
            cond(s, ConditionType::Ready, false, Reason::RolloutInProgress, &msg);
            cond(s, ConditionType::Progressing, true, Reason::RolloutInProgress, &msg);
            cond(s, ConditionType::Degraded, false, Reason::AsExpected, "");
        }
        Health::Verifying { message } => {
            s.phase = Some(Phase::Progressing);
            let msg = format!("version {version} is healthy, {message}");
            cond(s, ConditionType::Ready, false, Reason::Verifying, &msg);
            cond(s, ConditionType::Progressing, true, Reason::Verifying, &msg);
            cond(s, ConditionType::Degraded, false, Reason::AsExpected, "");
        }
        Health::Degraded { message } => failed(s, Reason::ProgressDeadlineExceeded, message, generation, now),
        Health::VerificationFailed { message } => {
            failed(s, Reason::VerificationFailed, message, generation, now);
        }
    }
}

/// The rollout failed (`reason`): Degraded, its history entry Failed with `message`.
fn failed(s: &mut ReleaseStatus, reason: Reason, message: String, generation: Option<i64>, now: &Time) {
    let version = s.desired_version.clone().unwrap_or_default();
    s.phase = Some(Phase::Degraded);
    finish(s, RolloutResult::Failed, Some(message.clone()), now);
    let msg = format!("version {version}: {message}");
    for type_ in [ConditionType::Ready, ConditionType::Progressing] {
        set(s, ConditionUpdate::new(type_, false, reason, &msg), generation, now);
    }
    set(s, ConditionUpdate::new(ConditionType::Degraded, true, reason, &msg), generation, now);
}

/// A rollback its deadline failed that became healthy after all and still runs (its cluster came
/// back, its pods were slow): its entry records its own result, Succeeded, and when, not the Failed
/// its deadline wrote while the Release now says Healthy. Rollbacks only: a rollback is not
/// verified (see `verification::rollout_in_flight`), so only a deadline can have failed it, and it
/// goes back to a version that ran here before; a new version that missed its deadline stays
/// Failed, as its checks never ran and promotion must not take it.
fn healthy_after_all(s: &mut ReleaseStatus, now: &Time) {
    let ReleaseStatus { history, desired_version, failed_versions, .. } = s;
    if let Some(h) = history.first_mut()
        && h.result == RolloutResult::Failed
        && h.rollback_of.is_some()
        && desired_version.as_ref() == Some(&h.version)
        && !failed_versions.contains(&h.version)
    {
        h.result = RolloutResult::Succeeded;
        let late = match h.finished_at.as_ref() {
            Some(at) => format!("healthy after its progress deadline (failed at {})", at.0),
            None => "healthy after its progress deadline".to_string(),
        };
        let said = h.message.take().map_or(late.clone(), |m| format!("{late}: {m}"));
        h.message = history_message(Some(said));
        h.finished_at = Some(now.clone());
    }
}

/// The rollout that ended in the step from `prev` to `next` (its history entry), if one did: the
/// one moment a person watching the Release is told about it (one Event per rollout).
pub fn rollout_ended<'a>(prev: &ReleaseStatus, next: &'a ReleaseStatus) -> Option<&'a HistoryEntry> {
    let ended = next.history.first().filter(|h| h.finished_at.is_some())?;
    let same = |h: &&HistoryEntry| h.version == ended.version && h.started_at == ended.started_at;
    let before = prev.history.iter().find(same);
    // A rollback that failed its deadline and became healthy after all ends again, Succeeded.
    let ends_now = before.is_none_or(|b| b.finished_at.is_none() || b.result != ended.result);
    (ends_now && ended.result != RolloutResult::Superseded).then_some(ended)
}

/// Closes the running history entry, once.
fn finish(s: &mut ReleaseStatus, result: RolloutResult, message: Option<String>, now: &Time) {
    if let Some(h) = s.history.first_mut()
        && h.result == RolloutResult::Progressing
    {
        h.result = result;
        h.finished_at = Some(now.clone());
        if message.is_some() {
            h.message = history_message(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::{find_condition, is_true};

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    fn inv(hash: &str) -> Inventory {
        Inventory { namespace: "ns".into(), hash: Some(hash.into()), ..Default::default() }
    }

    fn applied(v: &str, health: Health) -> Outcome {
        Outcome::Applied {
            version: v.into(),
            inventory: inv(v),
            new_rollout: true,
            note: None,
            rollback_of: None,
            health,
            approvers: Vec::new(),
            requester: Default::default(),
        }
    }

    /// The rollback to 1.0.0 after 1.1.0 failed, as it starts.
    fn rollback_from_1_1_0() -> Outcome {
        Outcome::Applied {
            version: "1.0.0".into(),
            inventory: inv("1.0.0"),
            new_rollout: true,
            note: Some("rollback: 1.1.0 failed".into()),
            rollback_of: Some("1.1.0".into()),
            health: progressing(),
            approvers: Vec::new(),
            requester: Default::default(),
        }
    }

    fn progressing() -> Health {
        Health::Progressing { message: "0 of 1 available".into(), recheck_in: Duration::from_secs(5) }
    }

    #[test]
    fn rollout_lifecycle() {
        let s0 = ReleaseStatus::default();
        let s1 = next_status(&s0, applied("1.0.0", progressing()), Some(1), &t(0));
        assert_eq!(s1.phase, Some(Phase::Progressing));
        assert_eq!(s1.history.len(), 1);
        assert_eq!(s1.current_version, None);
        assert!(is_true(&s1.conditions, ConditionType::Progressing));

        let s2 = next_status(&s1, Outcome::Observed { health: Health::Healthy }, Some(1), &t(10));
        assert_eq!(s2.phase, Some(Phase::Healthy));
        assert_eq!(s2.current_version.as_deref(), Some("1.0.0"));
        assert_eq!(s2.history[0].result, RolloutResult::Succeeded);
        assert_eq!(s2.history[0].finished_at, Some(t(10)));
        assert!(is_true(&s2.conditions, ConditionType::Ready));

        // Steady state: the same observation later changes nothing (so nothing is written).
        let s3 = next_status(&s2, Outcome::Observed { health: Health::Healthy }, Some(1), &t(500));
        assert_eq!(s3, s2);

        // Upgrade that never becomes ready.
        let s4 = next_status(&s3, applied("1.1.0", progressing()), Some(2), &t(600));
        assert_eq!(s4.history.len(), 2);
        assert_eq!(s4.current_version.as_deref(), Some("1.0.0"));
        let s5 = next_status(
            &s4,
            Outcome::Observed { health: Health::Degraded { message: "deadline".into() } },
            Some(2),
            &t(700),
        );
        assert_eq!(s5.phase, Some(Phase::Degraded));
        assert_eq!(s5.history[0].result, RolloutResult::Failed);
        assert!(is_true(&s5.conditions, ConditionType::Degraded));
        assert_eq!(
            find_condition(&s5.conditions, ConditionType::Ready).unwrap().reason,
            Reason::ProgressDeadlineExceeded
        );
        assert_eq!(s5.current_version.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn a_rollback_its_deadline_failed_records_its_own_result_once_healthy() {
        let deadline =
            || Outcome::Observed { health: Health::Degraded { message: "0 of 1 available".into() } };
        let healthy = || Outcome::Observed { health: Health::Healthy };
        // 1.0.0 ran; 1.1.0 failed its deadline and was rolled back (marked failed); the rollback's
        // own rollout then passed its deadline too, and became healthy after all.
        let s1 = next_status(&ReleaseStatus::default(), applied("1.0.0", Health::Healthy), Some(1), &t(0));
        let s2 = next_status(&s1, applied("1.1.0", progressing()), Some(2), &t(10));
        let mut s3 = next_status(&s2, deadline(), Some(2), &t(400));
        crate::plan::rollback::record_failed(&mut s3.failed_versions, "1.1.0".into());
        let back = rollback_from_1_1_0();
        let s4 = next_status(&s3, back, Some(2), &t(401));
        let s5 = next_status(&s4, deadline(), Some(2), &t(800));
        assert_eq!(s5.history[0].result, RolloutResult::Failed);
        let s6 = next_status(&s5, healthy(), Some(2), &t(820));
        assert_eq!(s6.phase, Some(Phase::Healthy));
        let entry = &s6.history[0];
        assert_eq!((entry.version.as_str(), entry.result), ("1.0.0", RolloutResult::Succeeded));
        assert_eq!(entry.finished_at, Some(t(820)));
        assert_eq!(entry.rollback_of.as_deref(), Some("1.1.0"));
        let said = entry.message.as_deref().unwrap();
        assert!(said.starts_with("healthy after its progress deadline (failed at "), "{said}");
        assert!(said.ends_with("Z): 0 of 1 available"), "{said}");
        // The version rolled away from keeps its Failed entry; a second healthy step changes nothing.
        assert_eq!(s6.history[1].result, RolloutResult::Failed);
        assert_eq!(next_status(&s6, healthy(), Some(2), &t(830)), s6);
        assert_eq!(
            rollout_ended(&s5, &s6).map(|h| h.result),
            Some(RolloutResult::Succeeded),
            "told once more"
        );
        assert_eq!(rollout_ended(&s6, &s6), None);
        // A new version that missed its deadline stays Failed when it turns healthy (never verified).
        let missed = next_status(&s2, deadline(), Some(2), &t(400));
        let late = next_status(&missed, healthy(), Some(2), &t(500));
        assert_eq!(late.history[0].result, RolloutResult::Failed);
        // So does one failed by its verification.
        let v = next_status(
            &s2,
            Outcome::Observed { health: Health::VerificationFailed { message: "503".into() } },
            Some(2),
            &t(60),
        );
        let after = next_status(&v, healthy(), Some(2), &t(90));
        assert_eq!(after.history[0].result, RolloutResult::Failed);
    }

    #[test]
    fn a_rollout_ends_once() {
        let start = next_status(&ReleaseStatus::default(), applied("1.0.0", progressing()), Some(1), &t(0));
        assert!(rollout_ended(&ReleaseStatus::default(), &start).is_none(), "started, not ended");
        let done = next_status(&start, Outcome::Observed { health: Health::Healthy }, Some(1), &t(5));
        assert_eq!(rollout_ended(&start, &done).map(|h| h.result), Some(RolloutResult::Succeeded));
        let again = next_status(&done, Outcome::Observed { health: Health::Healthy }, Some(1), &t(9));
        assert!(rollout_ended(&done, &again).is_none(), "told once");
        // Healthy by the first write: started and ended in one step.
        let at_once = next_status(&done, applied("1.0.1", Health::Healthy), Some(1), &t(20));
        assert_eq!(rollout_ended(&done, &at_once).map(|h| h.version.as_str()), Some("1.0.1"));
        let failed = next_status(
            &start,
            Outcome::Observed { health: Health::Degraded { message: "never ready".into() } },
            Some(1),
            &t(30),
        );
        assert_eq!(rollout_ended(&start, &failed).map(|h| h.result), Some(RolloutResult::Failed));
    }

    #[test]
    fn a_rollouts_note_survives_its_success() {
        let rollback = rollback_from_1_1_0();
        let s1 = next_status(&ReleaseStatus::default(), rollback, Some(1), &t(0));
        let s2 = next_status(&s1, Outcome::Observed { health: Health::Healthy }, Some(1), &t(5));
        assert_eq!(s2.history[0].result, RolloutResult::Succeeded);
        assert_eq!(s2.history[0].message.as_deref(), Some("rollback: 1.1.0 failed"));
        assert_eq!(s2.history[0].rollback_of.as_deref(), Some("1.1.0"));
    }

    #[test]
    fn superseded_rollouts_and_bounded_history() {
        let mut s = ReleaseStatus::default();
        for i in 0..15 {
            s = next_status(&s, applied(&format!("1.0.{i}"), progressing()), Some(i), &t(i));
        }
        assert_eq!(s.history.len(), HISTORY_LIMIT);
        assert_eq!(s.history[0].version, "1.0.14");
        assert_eq!(s.history[0].result, RolloutResult::Progressing);
        assert!(s.history[1..].iter().all(|h| h.result == RolloutResult::Superseded));
    }

    #[test]
    fn drift_repair_adds_no_history() {
        let s1 = next_status(&ReleaseStatus::default(), applied("1.0.0", Health::Healthy), Some(1), &t(0));
        let repair = Outcome::Applied {
            version: "1.0.0".into(),
            inventory: inv("1.0.0"),
            new_rollout: false,
            note: None,
            rollback_of: None,
            health: Health::Healthy,
            approvers: Vec::new(),
            requester: Default::default(),
        };
        let s2 = next_status(&s1, repair, Some(1), &t(50));
        assert_eq!(s2.history, s1.history);
        assert_eq!(s2.conditions, s1.conditions);
        assert_eq!(s2.rollout_started_at, Some(t(50)), "the deadline counts from the repair");
    }

    #[test]
    fn blocked_and_failed_keep_the_running_version() {
        let s1 = next_status(&ReleaseStatus::default(), applied("1.0.0", Health::Healthy), Some(1), &t(0));
        let b = Blocked {
            phase: Phase::Pending,
            reason: Reason::AppVersionNotFound,
            message: "no 9.9.9".into(),
            recheck_in: None,
        };
        let s2 = next_status(&s1, Outcome::Blocked(b), Some(2), &t(5));
        assert_eq!(s2.phase, Some(Phase::Pending));
        assert_eq!(s2.current_version.as_deref(), Some("1.0.0"));
        assert!(!is_true(&s2.conditions, ConditionType::Degraded));
        let f = Outcome::Failed { reason: Reason::ForeignNamespace, message: "x".into(), transient: false };
        let s3 = next_status(&s2, f, Some(3), &t(6));
        assert_eq!(s3.phase, Some(Phase::Failed));
        assert!(is_true(&s3.conditions, ConditionType::Degraded));
        assert_eq!(s3.history, s1.history);
        let rejected = Outcome::Rejected {
            reason: Reason::ApplyRejected,
            message: "422".into(),
            hash: Some("h2".into()),
            inventory: inv("u"),
        };
        let s4 = next_status(&s3, rejected, Some(4), &t(7));
        assert_eq!(s4.phase, Some(Phase::Failed));
        assert_eq!(s4.rejected_hash.as_deref(), Some("h2"));
        let s5 = next_status(&s4, applied("1.0.1", Health::Healthy), Some(5), &t(8));
        assert_eq!(s5.rejected_hash, None);
    }

    #[test]
    fn a_rollout_remembers_the_gate_that_held_its_version_and_since_when() {
        let gate = |type_: ConditionType, status: bool, reason: Reason, since: i64| {
            let mut c = Vec::new();
            set_condition(&mut c, ConditionUpdate::new(type_, status, reason, ""), None, &t(since));
            c.remove(0)
        };
        let held_of = |prev: &ReleaseStatus, v: &str| {
            next_status(prev, applied(v, progressing()), None, &t(100)).history[0].held.clone()
        };
        // An upgrade held for approval since t(10), while 1.0.0 ran.
        let upgrade = ReleaseStatus {
            current_version: Some("1.0.0".into()),
            held_version: Some("1.1.0".into()),
            conditions: vec![gate(ConditionType::Held, true, Reason::AwaitingApproval, 10)],
            ..Default::default()
        };
        assert_eq!(
            held_of(&upgrade, "1.1.0"),
            Some(Hold { reason: "AwaitingApproval".into(), since: t(10) })
        );
        assert_eq!(held_of(&upgrade, "1.2.0"), None, "another version than the one held");
        // A first version frozen since t(20): its Ready condition says so.
        let first = ReleaseStatus {
            conditions: vec![gate(ConditionType::Ready, false, Reason::Frozen, 20)],
            ..Default::default()
        };
        assert_eq!(held_of(&first, "1.0.0"), Some(Hold { reason: "Frozen".into(), since: t(20) }));
        // Waiting on something that is no gate (a soak) is no hold of a gate.
        let soaking = ReleaseStatus {
            current_version: Some("1.0.0".into()),
            held_version: Some("1.1.0".into()),
            conditions: vec![gate(ConditionType::Held, true, Reason::Soaking, 10)],
            ..Default::default()
        };
        assert_eq!(held_of(&soaking, "1.1.0"), None);
    }

    #[test]
    fn oversized_notes_and_messages_are_cut() {
        let huge = "x".repeat(100_000);
        let rollout = Outcome::Applied {
            version: "1.0.0".into(),
            inventory: inv("1.0.0"),
            new_rollout: true,
            note: Some(format!("approved by {huge}")),
            rollback_of: None,
            health: progressing(),
            approvers: Vec::new(),
            requester: Default::default(),
        };
        let s1 = next_status(&ReleaseStatus::default(), rollout, Some(1), &t(0));
        let degraded = Outcome::Observed { health: Health::Degraded { message: huge.clone() } };
        let s2 = next_status(&s1, degraded, Some(1), &t(1));
        assert!(s1.history[0].message.as_deref().unwrap().len() <= HISTORY_MESSAGE_LIMIT);
        assert!(s2.history[0].message.as_deref().unwrap().len() <= HISTORY_MESSAGE_LIMIT);
        let b =
            Blocked { phase: Phase::Failed, reason: Reason::InvalidVersion, message: huge, recheck_in: None };
        let s3 = next_status(&s2, Outcome::Blocked(b), Some(2), &t(2));
        assert!(serde_json::to_vec(&s3).unwrap().len() < 8 * 1024);
    }
}
