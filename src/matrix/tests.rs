use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{FreezeWindow, HistoryEntry, PromoteFrom, ReleaseSpec, ReleaseStatus};

use crate::api::fixtures::{condition as cond, environment as env};

fn rel(app: &str, env: &str, promote_from: Option<&str>) -> Release {
    Release::new(
        &format!("{app}-{env}"),
        ReleaseSpec {
            app: app.into(),
            environment: env.into(),
            version: promote_from.is_none().then(|| "1.0.0".to_string()),
            promote_from: promote_from.map(|e| PromoteFrom { environment: e.into(), soak: None }),
            ..Default::default()
        },
    )
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn pipeline_order_follows_promotion_then_tier_then_name() {
    let envs = [
        env("prod", Tier::Prod),
        env("test", Tier::Test),
        env("dev-1-4", Tier::Dev),
        env("dev-1-3", Tier::Dev),
        env("staging", Tier::Staging),
        env("qa", Tier::Dev),
    ];
    let cases: Vec<(Vec<Release>, Vec<&str>)> = vec![
        // No promotion: tier, then name.
        (vec![], vec!["dev-1-3", "dev-1-4", "qa", "test", "staging", "prod"]),
        // qa (a dev-tier env) promotes from test: it comes after test.
        (vec![rel("a", "qa", Some("test"))], vec!["dev-1-3", "dev-1-4", "test", "qa", "staging", "prod"]),
        // prod promotes from dev-1-3 directly: still after dev-1-3, and tier keeps it last.
        (
            vec![rel("a", "prod", Some("dev-1-3"))],
            vec!["dev-1-3", "dev-1-4", "qa", "test", "staging", "prod"],
        ),
        // A cycle (test <-> qa) does not hang and keeps every environment.
        (
            vec![rel("a", "qa", Some("test")), rel("a", "test", Some("qa"))],
            vec!["dev-1-3", "dev-1-4", "qa", "test", "staging", "prod"],
        ),
        // Unknown upstream and self-promotion are ignored.
        (
            vec![rel("a", "test", Some("nowhere")), rel("a", "qa", Some("qa"))],
            vec!["dev-1-3", "dev-1-4", "qa", "test", "staging", "prod"],
        ),
    ];
    for (i, (releases, want)) in cases.into_iter().enumerate() {
        assert_eq!(pipeline_order(&envs, &releases), want, "case {i}");
    }
}

fn with_status(mut r: Release, status: ReleaseStatus) -> Release {
    r.status = Some(status);
    r
}

fn entry(version: &str, result: RolloutResult, message: Option<&str>) -> HistoryEntry {
    HistoryEntry {
        rollback_of: None,
        version: version.into(),
        started_at: Time(ts("2026-11-25T10:00:00Z")),
        finished_at: None,
        result,
        message: message.map(String::from),
        approvers: Vec::new(),
        held: None,
        requester: Default::default(),
        generation: None,
    }
}

#[test]
fn cells_say_what_runs_and_what_waits() {
    let healthy = ReleaseStatus {
        phase: Some(Phase::Healthy),
        current_version: Some("1.3.9".into()),
        history: vec![entry("1.3.9", RolloutResult::Succeeded, None)],
        ..Default::default()
    };
    let cases: Vec<(ReleaseStatus, Option<(PendingKind, &str)>)> = vec![
        (healthy.clone(), None),
        (
            ReleaseStatus {
                held_version: Some("1.3.10".into()),
                conditions: vec![cond("Held", "True", "AwaitingApproval", "needs an Approval")],
                ..healthy.clone()
            },
            Some((PendingKind::AwaitingApproval, "1.3.10")),
        ),
        (
            ReleaseStatus {
                held_version: Some("1.3.10".into()),
                conditions: vec![cond("Held", "True", "Frozen", "frozen")],
                ..healthy.clone()
            },
            Some((PendingKind::Frozen, "1.3.10")),
        ),
        (
            ReleaseStatus {
                held_version: Some("1.4.0".into()),
                conditions: vec![cond("Held", "True", "Soaking", "soaking")],
                ..healthy.clone()
            },
            Some((PendingKind::Soaking, "1.4.0")),
        ),
        (
            ReleaseStatus {
                held_version: Some("1.3.11".into()),
                conditions: vec![cond("Held", "True", "VersionFailed", "failed here")],
                ..healthy.clone()
            },
            Some((PendingKind::Failed, "1.3.11")),
        ),
        (
            ReleaseStatus { conditions: vec![cond("Held", "False", "NothingHeld", "")], ..healthy.clone() },
            None,
        ),
        (
            ReleaseStatus {
                phase: Some(Phase::Progressing),
                history: vec![entry("1.3.10", RolloutResult::Progressing, None)],
                ..healthy.clone()
            },
            Some((PendingKind::RollingOut, "1.3.10")),
        ),
        (
            ReleaseStatus {
                phase: Some(Phase::Progressing),
                history: vec![HistoryEntry {
                    rollback_of: Some("1.3.11".into()),
                    ..entry("1.3.9", RolloutResult::Progressing, Some("rollback: 1.3.11 failed"))
                }],
                ..healthy
            },
            Some((PendingKind::RollingBack, "1.3.9")),
        ),
    ];
    for (i, (status, want)) in cases.into_iter().enumerate() {
        let c = cell(&with_status(rel("payments", "prod", None), status));
        assert_eq!(c.version.as_deref(), Some("1.3.9"), "case {i}");
        assert_eq!(
            c.pending.map(|p| (p.what, p.version.unwrap_or_default())),
            want.map(|(k, v)| (k, v.into())),
            "case {i}"
        );
    }
}

#[test]
fn matrix_marks_frozen_environments_and_groups_by_app() {
    let mut prod = env("prod", Tier::Prod);
    prod.spec.approval = Some(crate::api::ApprovalPolicy::Required);
    prod.spec.freeze_windows = vec![FreezeWindow {
        reason: Some("year-end close".into()),
        start: Some("2026-12-20T00:00:00Z".into()),
        end: Some("2027-01-02T00:00:00Z".into()),
        ..Default::default()
    }];
    let envs = [prod, env("dev", Tier::Dev)];
    let releases = [rel("payments", "prod", None), rel("payments", "dev", None), rel("ledger", "dev", None)];
    let m = matrix("finance", &envs, &releases, ts("2026-12-24T00:00:00Z"));
    let names: Vec<&str> = m.environments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod"]);
    assert_eq!(m.environments[1].frozen.as_deref(), Some("until 2027-01-02T00:00:00Z (year-end close)"));
    assert!(m.environments[1].approval_required);
    assert_eq!(m.environments[0].frozen, None);
    let apps: Vec<(&str, usize)> = m.apps.iter().map(|a| (a.app.as_str(), a.environments.len())).collect();
    assert_eq!(apps, [("ledger", 1), ("payments", 2)]);
    let after = matrix("finance", &envs, &releases, ts("2027-01-02T00:00:00Z"));
    assert_eq!(after.environments[1].frozen, None);
}

#[test]
fn diff_lists_versions_and_change_ids_each_side_lacks() {
    let status = |v: &str, changes: &[&str]| ReleaseStatus {
        current_version: Some(v.into()),
        changes: changes.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let mut dev14 =
        with_status(rel("payments", "dev-1-4", None), status("1.4.0-rc.1", &["FIN-101", "FIN-200"]));
    if let Some(s) = dev14.status.as_mut() {
        s.conditions =
            vec![cond("ForwardPortMissing", "True", "ChangesMissing", "not forward-ported: FIN-142")];
    }
    let releases = [
        with_status(rel("payments", "dev-1-3", None), status("1.3.10", &["FIN-101", "FIN-142"])),
        dev14,
        with_status(rel("ledger", "dev-1-3", None), status("2.0.0", &[])),
        with_status(rel("ledger", "dev-1-4", None), status("2.0.0", &[])),
        with_status(rel("reports", "prod", None), status("0.1.0", &[])),
    ];
    let rows = diff("dev-1-3", "dev-1-4", &releases);
    assert_eq!(rows.len(), 2, "reports runs in neither");
    let ledger = &rows[0];
    assert!(!ledger.differs());
    let payments = &rows[1];
    assert!(payments.differs());
    assert_eq!((payments.a.as_deref(), payments.b.as_deref()), (Some("1.3.10"), Some("1.4.0-rc.1")));
    assert_eq!(payments.only_in_a, ["FIN-142"]);
    assert_eq!(payments.only_in_b, ["FIN-200"]);
    assert_eq!(payments.forward_port_missing, ["not forward-ported: FIN-142"]);
}
