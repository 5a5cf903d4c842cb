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
    Approved { note: String, approvers: Vec<String> },
    /// Someone who may approve rejected it.
    Rejected { message: String },
    /// Not enough yet; `recheck_in`: when a counted approval expires (the message changes then).
    Waiting { message: String, recheck_in: Option<Duration> },
    /// The Environment's policy cannot be read.
    Invalid { message: String },
}

/// What an Approval must be for: the Release (its name, app and Environment) and when it was
/// created.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub release: &'a str,
    pub app: &'a str,
    pub environment: &'a str,
    pub created: Option<Timestamp>,
    /// A product's approval: the ProductVersion approved was made then (`Some`), and an Approval
    /// counts only if it names the product (`spec.product`) and is not older than that version
    /// (one given for content since replaced). `None`: a Release's.
    pub product_version_created: Option<Option<Timestamp>>,
}

/// How long before its Release an Approval without `app` and `environment` may have been made and
/// still count: the Approvals and Releases one GitOps sync applies together.
pub const APPLIED_TOGETHER: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Judges the Approvals of `subject` for `candidate` under `rules`.
pub fn judge(
    subject: Subject<'_>,
    candidate: &semver::Version,
    rules: &ApprovalRules,
    approvals: &[&Approval],
    now: Timestamp,
) -> Verdict {
    let release = subject.release;
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
        // A rejection counts whenever and for whatever it was given (stopping is always safe); an
        // approval only for the Release it was given to.
        .partition(|a| a.spec.decision() == Decision::Reject || given_for(a, &subject));
    let may_decide = |a: &Approval| may_approve(rules, a) || rules.countersign.contains(&approver(a));

    if let Some(r) = for_this.iter().find(|a| a.spec.decision() == Decision::Reject && may_decide(a)) {
        return Verdict::Rejected {
            message: format!(
                "{candidate} was rejected for Release {release} by {}; a newer version needs approvals of its own",
                describe(r)
            ),
        };
    }

    let tally = Tally::of(&for_this, rules, expire_after, now);
    if tally.enough() {
        let mut in_order: Vec<&&Approval> = tally.counted.values().collect();
        in_order.sort_by_key(|a| created(a));
        let names: Vec<String> = in_order.iter().map(|a| describe(a)).collect();
        let approvers = in_order.iter().map(|a| approver(a)).collect();
        return Verdict::Approved { note: format!("{APPROVED_BY}{}", names.join(", ")), approvers };
    }
    let message = tally.missing(&subject, candidate, rules, &earlier);
    // When the first counted approval expires, what is missing changes: look again then.
    let recheck_in = expire_after.and_then(|d| {
        let first = tally.counted.values().filter_map(|a| created(a)).min()?;
        let ends = first + jiff::SignedDuration::try_from(d).ok()?;
        Duration::try_from(ends.duration_since(now)).ok()
    });
    Verdict::Waiting { message, recheck_in }
}

/// How the approvals of one version count under a policy.
struct Tally<'a> {
    /// The approvals that count: eligible, not expired; the first of each approver.
    counted: BTreeMap<String, &'a Approval>,
    expired: Vec<String>,
    not_eligible: Vec<String>,
    /// How many approvers (not countersigners) must approve.
    need: usize,
    /// The counted approvers who may approve.
    quorum: Vec<String>,
    /// The countersigners whose approval is missing.
    missing_signatures: Vec<String>,
}

impl<'a> Tally<'a> {
    fn of(
        for_this: &[&'a Approval],
        rules: &ApprovalRules,
        expire_after: Option<Duration>,
        now: Timestamp,
    ) -> Self {
        let mut counted: BTreeMap<String, &Approval> = BTreeMap::new();
        let (mut expired, mut not_eligible) = (Vec::new(), Vec::new());
        let mut by_time = for_this.to_vec();
        by_time.sort_by_key(|a| created(a));
        for a in by_time.into_iter().filter(|a| a.spec.decision() == Decision::Approve) {
            let name = approver(a);
            let expires =
                expire_after.and_then(|d| Some(created(a)? + jiff::SignedDuration::try_from(d).ok()?));
            if expires.is_some_and(|e| e <= now) {
                expired.push(name);
            } else if may_approve(rules, a) || rules.countersign.contains(&name) {
                counted.entry(name).or_insert(a);
            } else {
                not_eligible.push(name);
            }
        }
        let need = rules.min_approvals.unwrap_or(1).max(1) as usize;
        let quorum = counted.iter().filter(|(_, a)| may_approve(rules, a)).map(|(n, _)| n.clone()).collect();
        let missing_signatures =
            rules.countersign.iter().filter(|n| !counted.contains_key(*n)).cloned().collect();
        Self { counted, expired, not_eligible, need, quorum, missing_signatures }
    }

    fn enough(&self) -> bool {
        self.quorum.len() >= self.need && self.missing_signatures.is_empty()
    }

    /// What is still missing, in the words of the Release's condition. `earlier`: the approvals
    /// given for another Release (not counted).
    fn missing(
        &self,
        subject: &Subject<'_>,
        candidate: &semver::Version,
        rules: &ApprovalRules,
        earlier: &[&Approval],
    ) -> String {
        let (release, need, quorum) = (subject.release, self.need, &self.quorum);
        let simple = need == 1 && rules.countersign.is_empty() && rules.approvers.is_none();
        let mut message = if simple {
            format!(
                "{candidate} needs an Approval for Release {release} (spec.release: {release}, spec.version: {candidate})"
            )
        } else {
            let mut parts = Vec::new();
            if quorum.len() < need {
                let have =
                    if quorum.is_empty() { String::new() } else { format!(" (from {})", quorum.join(", ")) };
                parts.push(format!(
                    "{} of {need} approvals{have}; {} more needed{}",
                    quorum.len(),
                    need - quorum.len(),
                    who_may(rules)
                ));
            }
            if !self.missing_signatures.is_empty() {
                parts.push(format!("countersignature of {} needed", self.missing_signatures.join(", ")));
            }
            format!("{candidate} for Release {release}: {}", parts.join("; "))
        };
        if !self.expired.is_empty() {
            message.push_str(&format!(" (expired: {})", self.expired.join(", ")));
        }
        if !earlier.is_empty() {
            let names: Vec<String> = earlier.iter().map(|a| approver(a)).collect();
            message.push_str(&format!(
                " (not counted, given for another app or Environment, or before this Release was created: {})",
                names.join(", ")
            ));
        }
        if !self.not_eligible.is_empty() {
            message.push_str(&format!(
                " (not counted, not among the approvers: {})",
                self.not_eligible.join(", ")
            ));
        }
        message
    }
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

/// Whether approval `a` was given for `subject`: the app and Environment it names (as `tuskfish
/// approve` records them), or else its time — an Approval made well before the Release was
/// created was given to an earlier Release of the same name, which may have deployed another app
/// somewhere else.
pub fn given_for(a: &Approval, subject: &Subject<'_>) -> bool {
    let (app, env) = (a.spec.app.as_deref(), a.spec.environment.as_deref());
    match (subject.product_version_created, a.spec.product.as_deref()) {
        (Some(made), Some(product)) => {
            // A product's Approval names its Environment (`tuskfish product approve` does): the
            // ProductRelease's name could otherwise be given to one in another Environment.
            return product == subject.app
                && env == Some(subject.environment)
                && app.is_none()
                && made.is_none_or(|made| created(a).is_none_or(|given| given >= made));
        }
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    if app.is_some() || env.is_some() {
        return app.is_none_or(|x| x == subject.app) && env.is_none_or(|x| x == subject.environment);
    }
    match (created(a), subject.created) {
        (Some(given), Some(since)) => given >= since.checked_sub(APPLIED_TOGETHER).unwrap_or(since),
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
                ..Default::default()
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
        match judge(subject(None), &v, rules, approvals, ts(NOW)) {
            Verdict::Approved { approvers, .. } => format!("approved by {}", approvers.join(" ")),
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
            judge(subject(None), &v, &rules, &[&a, &b], ts(NOW)),
            Verdict::Approved {
                note: "approved by bob at 2026-12-01T09:00:00Z: CAB, maria at 2026-12-01T10:00:00Z: CAB"
                    .into(),
                approvers: vec!["bob".into(), "maria".into()],
            }
        );
        let Verdict::Waiting { recheck_in, .. } = judge(subject(None), &v, &rules, &[&a], ts(NOW)) else {
            panic!("one of two")
        };
        assert_eq!(
            recheck_in,
            Some(Duration::from_secs(22 * 3600)),
            "maria's approval expires at 10:00 tomorrow"
        );
    }

    fn subject(created: Option<&str>) -> Subject<'static> {
        Subject {
            release: "pay-prod",
            app: "pay",
            environment: "prod",
            created: created.map(ts),
            product_version_created: None,
        }
    }

    #[test]
    fn an_approval_counts_only_for_the_release_it_was_given_to() {
        // Release pay-prod deleted and created again (as another app, or for another
        // Environment): what was approved for the old one stays behind, and counts for nothing.
        let v = semver::Version::new(1, 3, 10);
        let rules = ApprovalRules::default();
        let created = subject(Some("2026-12-01T10:00:00Z"));
        let approved =
            |a: &Approval| matches!(judge(created, &v, &rules, &[a], ts(NOW)), Verdict::Approved { .. });
        let old = ok("maria", "2026-12-01T09:00:00Z");
        let Verdict::Waiting { message, .. } = judge(created, &v, &rules, &[&old], ts(NOW)) else {
            panic!("counted an approval older than the Release")
        };
        assert!(
            message.contains("not counted, given for another app or Environment")
                && message.contains("maria"),
            "{message}"
        );
        assert!(approved(&ok("bob", "2026-12-01T11:00:00Z")));
        // Applied with its Release by one GitOps sync: it counts.
        assert!(approved(&ok("maria", "2026-12-01T09:59:30Z")));
        // Naming app and Environment (as `tuskfish approve` does), it counts for those, whenever.
        let named = |app: &str, env: &str| {
            let mut a = ok("maria", "2026-12-01T09:00:00Z");
            (a.spec.app, a.spec.environment) = (Some(app.into()), Some(env.into()));
            a
        };
        assert!(approved(&named("pay", "prod")));
        assert!(!approved(&named("pay", "staging")));
        assert!(!approved(&named("ledger", "prod")));
        // A rejection stops the version whatever it names.
        let mut no = named("pay", "staging");
        no.spec.decision = Some(Decision::Reject);
        assert!(matches!(judge(created, &v, &rules, &[&no], ts(NOW)), Verdict::Rejected { .. }));
    }
}
