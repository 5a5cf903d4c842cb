//! The approval gate: which Approvals count for a version in an Environment, and whether they are
//! enough — a quorum of distinct approvers, who may approve, who must countersign, how long an
//! approval counts, and a rejection that stops the version there.
//!
//! Names and groups are taken from the Approvals as the API server admitted them (the identity
//! policy makes `approver` and `approverGroups` the requester's own), never from what a Release or
//! Environment says about them.

use std::collections::BTreeMap;
use std::time::Duration;

/// How a rollout's history note names its approvers (`approved by maria, bob`).
pub const APPROVED_BY: &str = "approved by ";

use jiff::Timestamp;

use crate::api::{Approval, ApprovalRules, Decision};
use crate::duration::parse_duration;

/// How the approvals for one version stand.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough: the note for the rollout's history names every approval that counted.
    Approved { note: String },
    /// Someone who may approve rejected it.
    Rejected { message: String },
    /// Not enough yet; `recheck_in`: when a counted approval expires (the message changes then).
    Waiting { message: String, recheck_in: Option<Duration> },
    /// The Environment's policy cannot be read.
    Invalid { message: String },
}

/// Judges the Approvals of `release` (by name) for `candidate` under `rules`. `since`: when the
/// Release was created; an Approval older than that was given for an earlier Release of the same
/// name (perhaps another app or Environment) and does not count for this one.
pub fn judge(
    release: &str,
    since: Option<Timestamp>,
    candidate: &semver::Version,
    rules: &ApprovalRules,
    approvals: &[&Approval],
    now: Timestamp,
) -> Verdict {
    let expire_after = match rules.expire_after.as_deref() {
        None => None,
        Some(raw) => match parse_duration(raw) {
            Some(d) => Some(d),
            None => {
                return Verdict::Invalid {
                    message: format!("approvalPolicy.expireAfter {raw:?} is not a duration like 24h"),
                };
            }
        },
    };
    let (for_this, earlier): (Vec<&Approval>, Vec<&Approval>) = approvals
        .iter()
        .copied()
        .filter(|a| {
            a.spec.release == release
                && semver::Version::parse(a.spec.version.trim()).is_ok_and(|v| &v == candidate)
        })
        // A rejection counts whenever it was given (stopping is always safe); an approval only for
        // the Release it was given to.
        .partition(|a| a.spec.decision() == Decision::Reject || given_since(a, since));
    let may_approve = |a: &Approval| may_approve(rules, a);
    let may_decide = |a: &Approval| may_approve(a) || rules.countersign.contains(&approver(a));

    if let Some(r) = for_this.iter().find(|a| a.spec.decision() == Decision::Reject && may_decide(a)) {
        return Verdict::Rejected {
            message: format!(
                "{candidate} was rejected for Release {release} by {}; a newer version needs approvals of its own",
                describe(r)
            ),
        };
    }

    // The approvals that count: eligible, not expired; the first of each approver.
    let mut counted: BTreeMap<String, &Approval> = BTreeMap::new();
    let mut expired = Vec::new();
    let mut not_eligible = Vec::new();
    let mut by_time = for_this.clone();
    by_time.sort_by_key(|a| created(a));
    for a in by_time.into_iter().filter(|a| a.spec.decision() == Decision::Approve) {
        let name = approver(a);
        let expires = expire_after.and_then(|d| Some(created(a)? + jiff::SignedDuration::try_from(d).ok()?));
        if expires.is_some_and(|e| e <= now) {
            expired.push(name);
        } else if may_approve(a) || rules.countersign.contains(&name) {
            counted.entry(name).or_insert(a);
        } else {
            not_eligible.push(name);
        }
    }
    let need = rules.min_approvals.unwrap_or(1).max(1) as usize;
    let quorum: Vec<&String> = counted.iter().filter(|(_, a)| may_approve(a)).map(|(n, _)| n).collect();
    let missing_signatures: Vec<&String> =
        rules.countersign.iter().filter(|n| !counted.contains_key(*n)).collect();

    if quorum.len() >= need && missing_signatures.is_empty() {
        let mut in_order: Vec<&&Approval> = counted.values().collect();
        in_order.sort_by_key(|a| created(a));
        let names: Vec<String> = in_order.iter().map(|a| describe(a)).collect();
        return Verdict::Approved { note: format!("{APPROVED_BY}{}", names.join(", ")) };
    }

    let simple = need == 1 && rules.countersign.is_empty() && rules.approvers.is_none();
    let mut message = if simple {
        format!(
            "{candidate} needs an Approval for Release {release} (spec.release: {release}, spec.version: {candidate})"
        )
    } else {
        let mut parts = Vec::new();
        if quorum.len() < need {
            let have = if quorum.is_empty() {
                String::new()
            } else {
                format!(" (from {})", quorum.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            };
            parts.push(format!(
                "{} of {need} approvals{have}; {} more needed{}",
                quorum.len(),
                need - quorum.len(),
                who_may(rules)
            ));
        }
        if !missing_signatures.is_empty() {
            let names: Vec<&str> = missing_signatures.iter().map(|s| s.as_str()).collect();
            parts.push(format!("countersignature of {} needed", names.join(", ")));
        }
        format!("{candidate} for Release {release}: {}", parts.join("; "))
    };
    if !expired.is_empty() {
        message.push_str(&format!(" (expired: {})", expired.join(", ")));
    }
    if !earlier.is_empty() {
        let names: Vec<String> = earlier.iter().map(|a| approver(a)).collect();
        message.push_str(&format!(
            " (not counted, given before this Release was created, for an earlier one of its name: {})",
            names.join(", ")
        ));
    }
    if !not_eligible.is_empty() {
        message.push_str(&format!(" (not counted, not among the approvers: {})", not_eligible.join(", ")));
    }
    // When the first counted approval expires, what is missing changes: look again then.
    let recheck_in = expire_after.and_then(|d| {
        let first = counted.values().filter_map(|a| created(a)).min()?;
        let ends = first + jiff::SignedDuration::try_from(d).ok()?;
        Duration::try_from(ends.duration_since(now)).ok()
    });
    Verdict::Waiting { message, recheck_in }
}

/// Whether `a`'s approver is one whose approvals count (anyone, when the policy names nobody).
fn may_approve(rules: &ApprovalRules, a: &Approval) -> bool {
    let Some(who) = rules.approvers.as_ref() else { return true };
    let name = approver(a);
    who.users.contains(&name) || a.spec.approver_groups.iter().any(|g| who.groups.contains(g))
}

fn who_may(rules: &ApprovalRules) -> String {
    let Some(who) = rules.approvers.as_ref() else { return String::new() };
    let mut named = Vec::new();
    if !who.users.is_empty() {
        named.push(format!("users {}", who.users.join(", ")));
    }
    if !who.groups.is_empty() {
        named.push(format!("groups {}", who.groups.join(", ")));
    }
    format!(" from {}", named.join(" or "))
}

/// Whether `a` was given while this Release existed (both times are whole seconds; an Approval
/// made in the Release's first second counts).
fn given_since(a: &Approval, since: Option<Timestamp>) -> bool {
    match (created(a), since) {
        (Some(given), Some(since)) => given >= since,
        _ => true,
    }
}

fn approver(a: &Approval) -> String {
    a.spec.approver.clone().unwrap_or_else(|| "(unnamed)".into())
}

fn created(a: &Approval) -> Option<Timestamp> {
    a.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `maria.keller at 2026-12-01T10:00:00Z: CAB-2057`
fn describe(a: &Approval) -> String {
    format!(
        "{}{}{}",
        approver(a),
        created(a).map(|t| format!(" at {t}")).unwrap_or_default(),
        a.spec.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{ApprovalSpec, Approvers};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-01T12:00:00Z";

    fn approval(who: &str, groups: &[&str], at: &str, decision: Decision) -> Approval {
        let mut a = Approval::new(
            &format!("pay-prod-1.3.10-{who}"),
            ApprovalSpec {
                release: "pay-prod".into(),
                version: "1.3.10".into(),
                approver: Some(who.into()),
                approver_groups: groups.iter().map(|g| g.to_string()).collect(),
                decision: Some(decision),
                reason: Some("CAB".into()),
            },
        );
        a.metadata.creation_timestamp = Some(Time(ts(at)));
        a
    }

    fn ok(who: &str, at: &str) -> Approval {
        approval(who, &[], at, Decision::Approve)
    }

    /// `approved by a, b` / `rejected` / `waiting: …` / `invalid`.
    fn verdict(rules: &ApprovalRules, approvals: &[&Approval]) -> String {
        let v = semver::Version::new(1, 3, 10);
        match judge("pay-prod", None, &v, rules, approvals, ts(NOW)) {
            Verdict::Approved { note } => {
                let names: Vec<&str> = note
                    .trim_start_matches("approved by ")
                    .split(", ")
                    .map(|n| n.split(' ').next().unwrap())
                    .collect();
                format!("approved by {}", names.join(" "))
            }
            Verdict::Rejected { .. } => "rejected".into(),
            Verdict::Waiting { message, .. } => format!("waiting: {message}"),
            Verdict::Invalid { .. } => "invalid".into(),
        }
    }

    #[test]
    fn quorum_countersign_eligibility_expiry_and_rejection() {
        let quorum2 = ApprovalRules { min_approvals: Some(2), ..Default::default() };
        let managers = ApprovalRules {
            approvers: Some(Approvers { users: vec!["cfo".into()], groups: vec!["release-managers".into()] }),
            ..Default::default()
        };
        let countersign =
            ApprovalRules { countersign: vec!["cfo".into(), "auditor".into()], ..Default::default() };
        let expiring = ApprovalRules { expire_after: Some("24h".into()), ..Default::default() };
        let any = ApprovalRules::default();
        let broken = ApprovalRules { expire_after: Some("soon".into()), ..Default::default() };
        let (maria, maria_again) = (ok("maria", "2026-12-01T10:00:00Z"), ok("maria", "2026-12-01T11:00:00Z"));
        let (bob, cfo, auditor) = (
            ok("bob", "2026-12-01T10:30:00Z"),
            ok("cfo", "2026-12-01T09:00:00Z"),
            ok("auditor", "2026-12-01T09:30:00Z"),
        );
        let manager = approval("maria", &["release-managers"], "2026-12-01T10:00:00Z", Decision::Approve);
        let stale = ok("maria", "2026-11-29T10:00:00Z");
        let rejected_by_bob = approval("bob", &[], "2026-12-01T11:30:00Z", Decision::Reject);
        let mut other_version = ok("bob", "2026-12-01T10:00:00Z");
        other_version.spec.version = "1.3.11".into();

        let cases: Vec<(&ApprovalRules, Vec<&Approval>, &str)> = vec![
            (&any, vec![], "waiting: 1.3.10 needs an Approval for Release pay-prod"),
            (&any, vec![&other_version], "waiting: 1.3.10 needs an Approval"),
            (&any, vec![&maria], "approved by maria"),
            // A quorum of two distinct people: one person approving twice counts once.
            (
                &quorum2,
                vec![&maria, &maria_again],
                "waiting: 1.3.10 for Release pay-prod: 1 of 2 approvals (from maria); 1 more needed",
            ),
            (&quorum2, vec![&maria, &bob], "approved by maria bob"),
            // Only the named users and groups count.
            (
                &managers,
                vec![&maria, &bob],
                "waiting: 1.3.10 for Release pay-prod: 0 of 1 approvals; 1 more needed from users cfo or groups release-managers (not counted, not among the approvers: maria, bob)",
            ),
            (&managers, vec![&manager], "approved by maria"),
            (&managers, vec![&cfo], "approved by cfo"),
            // Countersign: every named person, besides the quorum.
            (
                &countersign,
                vec![&maria, &cfo],
                "waiting: 1.3.10 for Release pay-prod: countersignature of auditor needed",
            ),
            (&countersign, vec![&cfo, &auditor], "approved by cfo auditor"),
            // Expiry.
            (
                &expiring,
                vec![&stale],
                "waiting: 1.3.10 needs an Approval for Release pay-prod (spec.release: pay-prod, spec.version: 1.3.10) (expired: maria)",
            ),
            (&expiring, vec![&stale, &maria_again], "approved by maria"),
            // A rejection by someone who may approve stops it, whatever else was approved.
            (&any, vec![&maria, &rejected_by_bob], "rejected"),
            (&managers, vec![&manager, &rejected_by_bob], "approved by maria"),
            (&broken, vec![&maria], "invalid"),
        ];
        for (i, (rules, approvals, want)) in cases.into_iter().enumerate() {
            let got = verdict(rules, &approvals);
            assert!(got.starts_with(want), "case {i}: {got}");
        }
    }

    #[test]
    fn the_history_note_names_every_approval_in_order_and_expiry_sets_a_timer() {
        let v = semver::Version::new(1, 3, 10);
        let rules =
            ApprovalRules { min_approvals: Some(2), expire_after: Some("24h".into()), ..Default::default() };
        let (a, b) = (ok("maria", "2026-12-01T10:00:00Z"), ok("bob", "2026-12-01T09:00:00Z"));
        assert_eq!(
            judge("pay-prod", None, &v, &rules, &[&a, &b], ts(NOW)),
            Verdict::Approved {
                note: "approved by bob at 2026-12-01T09:00:00Z: CAB, maria at 2026-12-01T10:00:00Z: CAB"
                    .into()
            }
        );
        let Verdict::Waiting { recheck_in, .. } = judge("pay-prod", None, &v, &rules, &[&a], ts(NOW)) else {
            panic!("one of two")
        };
        assert_eq!(
            recheck_in,
            Some(Duration::from_secs(22 * 3600)),
            "maria's approval expires at 10:00 tomorrow"
        );
    }

    #[test]
    fn an_approval_given_before_the_release_was_created_does_not_count_for_it() {
        // Release pay-prod deleted and created again (as another app, or for another
        // Environment): the Approval maria gave the old one stays behind, and counts for nothing.
        let v = semver::Version::new(1, 3, 10);
        let rules = ApprovalRules::default();
        let old = ok("maria", "2026-12-01T09:00:00Z");
        let fresh = ok("bob", "2026-12-01T11:00:00Z");
        let created = Some(ts("2026-12-01T10:00:00Z"));
        let Verdict::Waiting { message, .. } = judge("pay-prod", created, &v, &rules, &[&old], ts(NOW))
        else {
            panic!("counted an approval older than the Release")
        };
        assert!(
            message.contains("given before this Release was created") && message.contains("maria"),
            "{message}"
        );
        assert!(matches!(
            judge("pay-prod", created, &v, &rules, &[&old, &fresh], ts(NOW)),
            Verdict::Approved { .. }
        ));
        // In the Release's first second (whole seconds on both sides): it counts.
        let same_second = ok("maria", "2026-12-01T10:00:00Z");
        assert!(matches!(
            judge("pay-prod", created, &v, &rules, &[&same_second], ts(NOW)),
            Verdict::Approved { .. }
        ));
    }
}
