#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Gates against a real API server: approval, freeze windows (and their override), dependencies;
//! and the audit trail of what went through them.

mod common;

use common::{TestNs, healthy_at};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tuskfish::api::{Ledger, Phase, Record, RecordKind, ReleaseStatus, RolloutResult, find_condition};

fn reason_is(cond: &'static str, reason: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| find_condition(&s.conditions, cond).is_some_and(|c| c.reason == reason)
}

#[tokio::test]
async fn approval_holds_a_version_until_it_is_approved() {
    let t = TestNs::new("approve").await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    let r = t.wait_release("pay-prod", reason_is("Ready", "AwaitingApproval")).await;
    assert_eq!(r.status.unwrap().phase, Some(Phase::Pending));
    assert!(
        t.api_in::<k8s_openapi::api::apps::v1::Deployment>(&t.env_ns("prod"))
            .get_opt("pay")
            .await
            .unwrap()
            .is_none()
    );

    t.approve("pay-prod", "1.0.0", "alice").await;
    let r = t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    let note = r.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert!(note.starts_with("approved by alice at 20") && note.ends_with(": CAB-42"), "{note}");

    // An upgrade waits too, while the approved version keeps running.
    t.set_version("pay-prod", "1.1.0").await;
    let r = t.wait_release("pay-prod", reason_is("Held", "AwaitingApproval")).await;
    let s = r.status.unwrap();
    assert_eq!(
        (s.phase, s.current_version.as_deref(), s.held_version.as_deref()),
        (Some(Phase::Healthy), Some("1.0.0"), Some("1.1.0"))
    );
    t.approve("pay-prod", "1.1.0", "bob").await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;
}

#[tokio::test]
async fn a_freeze_window_holds_new_versions_until_it_ends_unless_overridden() {
    let t = TestNs::new("freeze").await;
    let now = jiff::Timestamp::now();
    let window = |secs: i64| {
        json!([{"reason": "quarter close", "start": (now - jiff::SignedDuration::from_secs(60)).to_string(),
                "end": (now + jiff::SignedDuration::from_secs(secs)).to_string()}])
    };
    t.environment("short", json!({"freezeWindows": window(6)})).await;
    t.environment("long", json!({"freezeWindows": window(3600)})).await;
    t.app_version("svc", "1.0.0", json!({})).await;

    t.release("svc-short", "svc", "short", "1.0.0", json!({})).await;
    t.release("svc-long", "svc", "long", "1.0.0", json!({})).await;
    let r = t.wait_release("svc-short", reason_is("Ready", "Frozen")).await;
    let msg = find_condition(&r.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(msg.contains("quarter close"), "{msg}");
    // It opens by itself when the window ends (a timer, no event needed).
    t.wait_release("svc-short", healthy_at("1.0.0")).await;

    t.wait_release("svc-long", reason_is("Ready", "Frozen")).await;
    let annotate =
        json!({"metadata": {"annotations": {"tuskfish.dev/freeze-override": "INC-7 payment outage"}}});
    t.api::<tuskfish::api::Release>()
        .patch("svc-long", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let r = t.wait_release("svc-long", healthy_at("1.0.0")).await;
    let note = r.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert_eq!(note, "freeze (quarter close) overridden: INC-7 payment outage");

    // The audit trail: each Environment's freeze window, and the rollout that overrode one.
    let records = all_records(&t).await;
    let freezes: Vec<(&str, &str)> = records
        .iter()
        .filter(|(_, _, r)| r.kind == RecordKind::Freeze)
        .map(|(env, app, _)| (env.as_str(), app.as_str()))
        .collect();
    assert_eq!(freezes, vec![("long", "*"), ("short", "*")]);
    let overridden =
        records.iter().find(|(env, _, r)| env == "long" && r.kind == RecordKind::Rollout).unwrap();
    assert!(overridden.2.note.as_deref().is_some_and(|n| n.contains("overridden: INC-7")), "{overridden:?}");
}

/// Every record of the test's pipeline: (environment, app, record), by environment.
async fn all_records(t: &TestNs) -> Vec<(String, String, Record)> {
    let ledgers = t.api::<Ledger>().list(&Default::default()).await.unwrap().items;
    let mut all: Vec<_> = ledgers
        .into_iter()
        .flat_map(|l| {
            let (env, app) = (l.spec.environment.clone(), l.spec.app.clone());
            l.spec.records.into_values().map(move |r| (env.clone(), app.clone(), r))
        })
        .collect();
    all.sort_by(|a, b| (&a.0, &a.1, a.2.at.0).cmp(&(&b.0, &b.1, b.2.at.0)));
    all
}

/// A move is a rollout too: an Environment pointed at another namespace (or cluster) during a
/// freeze deploys nothing in the new place, and the old place keeps running, until the freeze
/// is lifted.
#[tokio::test]
async fn an_environment_moved_during_a_freeze_deploys_nothing_in_its_new_place() {
    use k8s_openapi::api::apps::v1::Deployment;
    let t = TestNs::new("freeze-move").await;
    t.environment("prod", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;

    let start = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
    let moved = json!({"spec": {"namespace": t.env_ns("prod-b"),
        "freezeWindows": [{"reason": "year end", "start": start}]}});
    let envs = t.api::<tuskfish::api::Environment>();
    envs.patch("prod", &PatchParams::default(), &Patch::Merge(&moved)).await.unwrap();
    let r = t.wait_release("pay-prod", reason_is("Ready", "Frozen")).await;
    let msg = find_condition(&r.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(msg.contains("year end") && msg.contains(&t.env_ns("prod-b")), "{msg}");
    assert!(t.api_in::<Deployment>(&t.env_ns("prod-b")).get_opt("pay").await.unwrap().is_none());
    assert!(t.api_in::<Deployment>(&t.env_ns("prod")).get_opt("pay").await.unwrap().is_some());

    let lifted = json!({"spec": {"freezeWindows": []}});
    envs.patch("prod", &PatchParams::default(), &Patch::Merge(&lifted)).await.unwrap();
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    assert!(t.api_in::<Deployment>(&t.env_ns("prod-b")).get_opt("pay").await.unwrap().is_some());
}

#[tokio::test]
async fn recurring_windows_hold_new_versions_and_allow_windows_open_by_themselves() {
    let t = TestNs::new("windows").await;
    // A daily release window that next opens in a few seconds (local time in UTC, whole seconds).
    let opens = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 4).unwrap();
    let local = opens.to_zoned(jiff::tz::TimeZone::UTC).datetime().strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let daily = json!([{"reason": "release window", "recurrence": {"rule": "FREQ=DAILY", "start": local, "duration": "1h"}}]);
    t.environment("prod", json!({"tier": "prod", "allowWindows": daily})).await;
    t.app_version("svc", "1.0.0", json!({})).await;
    t.app_version("svc", "1.1.0", json!({})).await;
    t.release("svc-prod", "svc", "prod", "1.0.0", json!({})).await;
    let r = t.wait_release("svc-prod", reason_is("Ready", "OutsideAllowWindow")).await;
    let msg = find_condition(&r.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(msg.contains(&format!("the next opens at {opens}")), "{msg}");
    // It rolls out by itself when the window opens (a timer, no event needed).
    let r = t.wait_release("svc-prod", healthy_at("1.0.0")).await;
    let started = r.status.unwrap().history[0].started_at.0;
    assert!(started >= opens, "rolled out at {started}, before the window opened at {opens}");

    // A recurring freeze (every hour, two hours long: always on) holds the next version.
    let freeze = json!({"spec": {"freezeWindows": [{"reason": "quarter close", "recurrence":
        {"rule": "FREQ=HOURLY", "start": "2026-01-01T00:30:00", "duration": "2h", "timeZone": "Asia/Kolkata"}}]}});
    t.api::<tuskfish::api::Environment>()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&freeze))
        .await
        .unwrap();
    t.set_version("svc-prod", "1.1.0").await;
    let r = t.wait_release("svc-prod", reason_is("Held", "Frozen")).await;
    let s = r.status.unwrap();
    let held = find_condition(&s.conditions, "Held").unwrap().message.clone();
    assert!(held.contains("quarter close"), "{held}");
    assert_eq!(s.current_version.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn dependencies_order_rollouts_and_cycles_are_reported() {
    let t = TestNs::new("deps").await;
    t.environment("dev", json!({})).await;
    t.app_version("db", "2.1.0", json!({})).await;
    t.app_version("api", "1.0.0", json!({})).await;
    t.release("api-dev", "api", "dev", "1.0.0", json!({"dependsOn": [{"app": "db", "version": ">=2.1"}]}))
        .await;
    t.wait_release("api-dev", reason_is("Ready", "WaitingForDependencies")).await;
    t.release("db-dev", "db", "dev", "2.1.0", json!({})).await;
    t.wait_release("db-dev", healthy_at("2.1.0")).await;
    t.wait_release("api-dev", healthy_at("1.0.0")).await;

    t.app_version("a", "1.0.0", json!({})).await;
    t.app_version("b", "1.0.0", json!({})).await;
    t.release("a-dev", "a", "dev", "1.0.0", json!({"dependsOn": [{"app": "b"}]})).await;
    t.release("b-dev", "b", "dev", "1.0.0", json!({"dependsOn": [{"app": "a"}]})).await;
    for name in ["a-dev", "b-dev"] {
        let r = t.wait_release(name, reason_is("Ready", "DependencyCycle")).await;
        let s = r.status.unwrap();
        assert_eq!(s.phase, Some(Phase::Failed));
        assert!(find_condition(&s.conditions, "Ready").unwrap().message.contains("->"));
    }
}

#[tokio::test]
async fn every_rollout_is_recorded_with_its_approver_and_the_record_outlives_its_release() {
    let t = TestNs::new("audit").await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    t.app_version("pay", "1.0.0", json!({"changes": [{"id": "FIN-1"}]})).await;
    t.app_version("pay", "1.1.0", json!({"changes": [{"id": "FIN-142"}]})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.approve("pay-prod", "1.0.0", "alice").await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    t.set_version("pay-prod", "1.1.0").await;
    t.wait_release("pay-prod", reason_is("Held", "AwaitingApproval")).await;
    t.approve("pay-prod", "1.1.0", "bob").await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;

    // One record per rollout, in the Ledger of pay in prod this month: who approved, from what.
    let ledgers: kube::Api<Ledger> = t.api();
    let listed = ledgers.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one Ledger: pay in prod, this month");
    let ledger = &listed[0];
    let mut records: Vec<&Record> =
        ledger.spec.records.values().filter(|r| r.kind == tuskfish::api::RecordKind::Rollout).collect();
    records.sort_by_key(|r| r.at.0);
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.version.as_deref(), r.from.as_deref(), r.result, r.approvers.clone(), r.changes.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some("1.0.0"),
                None,
                Some(RolloutResult::Succeeded),
                vec!["alice".to_string()],
                vec!["FIN-1".to_string()]
            ),
            (
                Some("1.1.0"),
                Some("1.0.0"),
                Some(RolloutResult::Succeeded),
                vec!["bob".into()],
                vec!["FIN-142".into()]
            ),
        ]
    );
    assert!(records.iter().all(|r| r.by.as_deref() == Some("pinned") && r.published_at.is_some()));
    // 1.1.0 waited for bob's approval: since when is in its record (what the approval wait counts).
    let waited = records[1].held.as_ref().map(|h| h.reason.as_str());
    assert_eq!(waited, Some("AwaitingApproval"), "{:?}", records[1]);

    // The API server keeps records as written: no change, no removal, not even by an admin.
    let name = ledger.metadata.name.clone().unwrap();
    let key = ledger.spec.records.keys().next().unwrap().clone();
    let edits = [
        json!({"spec": {"records": {&key: {"version": "9.9.9"}}}}),
        json!({"spec": {"records": {&key: null}}}),
        json!({"spec": {"records": null}}),
    ];
    for patch in &edits {
        let refused = ledgers.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap_err();
        assert!(matches!(&refused, kube::Error::Api(s) if s.code == 422), "{patch}: {refused}");
    }
    // A tenant, even one RBAC lets do anything with Ledgers in its namespace, writes none: not a
    // record of its own ahead of the operator, not an owner reference, no deletion.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "ledgers-all"},
        "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["ledgers"], "verbs": ["*"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "ledgers-all"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ledgers-all"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]});
    for obj in [role, binding] {
        common::apply_value(&t.client, Some(&t.ns), obj).await.unwrap();
    }
    common::wait_allowed(&t.client, "mallory", &[], "delete", "ledgers", &t.ns).await;
    let as_tenant: kube::Api<Ledger> = kube::Api::namespaced(common::client_as("mallory", &[]).await, &t.ns);
    let forged = json!({"spec": {"records": {"rollout.1.9.9.9": {"kind": "Rollout", "at": "2026-12-07T10:00:00Z", "release": "x"}}}});
    let owned = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}]}});
    let next_month = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Ledger", "metadata": {"name": "prod.pay.2099-01"},
        "spec": {"environment": "prod", "app": "pay", "month": "2099-01"}});
    let refusals = [
        as_tenant.patch(&name, &PatchParams::default(), &Patch::Merge(&forged)).await.map(drop),
        as_tenant.patch(&name, &PatchParams::default(), &Patch::Merge(&owned)).await.map(drop),
        as_tenant.delete(&name, &Default::default()).await.map(drop),
        as_tenant.create(&Default::default(), &serde_json::from_value(next_month).unwrap()).await.map(drop),
    ];
    for refused in refusals {
        let e = refused.unwrap_err();
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("written by the tuskfish operator only")),
            "{e}"
        );
    }

    // The record outlives the Release, and the export lists every change with its approver.
    common::delete(&t.api::<tuskfish::api::Release>(), "pay-prod").await;
    t.wait_gone::<tuskfish::api::Release>(&t.ns, "pay-prod").await;
    let csv = common::tuskfish_output(&t.ns, &["audit", "--env", "prod", "-o", "csv"]).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "a header, two approvals, two rollouts and the removal: {csv}");
    assert!(
        lines[0].starts_with(r#""at","environment","app","kind","version","from","result","approvers","by""#),
        "{csv}"
    );
    let has = |row: &str| lines.iter().any(|l| l.contains(row));
    assert!(has(r#","prod","pay","Rollout","1.1.0","1.0.0","Succeeded","bob","pinned","#), "{csv}");
    assert!(has(r#","prod","pay","Approval","1.1.0","","","bob","bob","#), "{csv}");
    assert!(has(r#","prod","pay","Approval","1.0.0","","","alice","alice","#), "{csv}");
    assert!(lines.iter().any(|l| l.contains(r#""Rollout","1.1.0""#) && l.contains("FIN-142")), "{csv}");
    assert!(lines[5].contains(r#","prod","pay","Removed","1.1.0","#), "the removal last: {csv}");

    // The delivery figures come from the same records: two deploys, two changes, no failure.
    let out = common::tuskfish_output(&t.ns, &["insights", "--env", "prod", "-o", "json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &rows[0];
    assert_eq!(
        (f["app"].as_str(), f["deploys"].as_u64(), f["changes"].as_u64()),
        (Some("pay"), Some(2), Some(2)),
        "{out}"
    );
    assert_eq!((f["failures"].as_u64(), f["changeFailureRate"].as_f64()), (Some(0), Some(0.0)), "{out}");
    assert!(f["leadTimeP50"].is_string() && f["approvalWaitP50"].is_string(), "{out}");
}

#[tokio::test]
async fn the_retention_deletes_the_months_past_it_and_only_those() {
    let t = TestNs::new("retention").await;
    let ledgers: kube::Api<Ledger> = t.api();
    for month in ["2025-09", "2025-10", "2025-11"] {
        let l = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Ledger",
            "metadata": {"name": format!("prod.pay.{month}"), "labels": {"app.kubernetes.io/managed-by": "tuskfish", "tuskfish.dev/month": month}},
            "spec": {"environment": "prod", "app": "pay", "month": month}});
        ledgers.create(&Default::default(), &serde_json::from_value(l).unwrap()).await.unwrap();
    }
    // On 7 December 2026, 400 days reach back to 2 November 2025: September and October 2025 had
    // ended by then; November 2025 had not.
    let retention = tuskfish::controller::retention::Retention {
        client: t.client.clone(),
        scope: Some(t.ns.clone()),
        share: None,
        keep: std::time::Duration::from_secs(400 * 86_400),
    };
    let deleted = retention.sweep("2026-12-07T10:00:00Z".parse().unwrap()).await.unwrap();
    let left: Vec<String> =
        ledgers.list(&Default::default()).await.unwrap().items.into_iter().map(|l| l.spec.month).collect();
    assert_eq!((deleted, left), (2, vec!["2025-11".to_string()]));
}

#[tokio::test]
async fn a_pipeline_namespace_deleted_with_its_releases_goes_and_takes_its_records() {
    let t = TestNs::new("audit-gone").await;
    t.environment("dev", json!({"tier": "dev"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    // The cleanup records the removal; in a namespace being deleted nothing new can be created,
    // and the Release (so the namespace) must not wait for a record that can never be written.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(t.client.clone());
    namespaces.delete(&t.ns, &Default::default()).await.unwrap();
    common::within("the pipeline namespace deleted", async {
        while namespaces.get_opt(&t.ns).await.unwrap().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// The namespace controller takes a pipeline's Ledgers with its namespace: the ledger-writers
/// policy refuses no deletion in a namespace being deleted, whoever the controller runs as (here:
/// a user with no `record` verb, deleting while the namespace is Terminating).
#[tokio::test]
async fn ledgers_go_with_their_namespace_whoever_deletes_them() {
    let t = TestNs::new("audit-ns-gone").await;
    let ledgers: kube::Api<Ledger> = t.api();
    let held = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Ledger",
        "metadata": {"name": "prod.pay.2026-12", "finalizers": ["test.tuskfish.dev/hold"]},
        "spec": {"environment": "prod", "app": "pay", "month": "2026-12"}});
    ledgers.create(&Default::default(), &serde_json::from_value(held).unwrap()).await.unwrap();
    // Cluster-wide, as the namespace controller's rights are (a Role would go with the namespace),
    // and without the verb `record`.
    let name = format!("{}-janitor", t.ns);
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
        "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["ledgers"], "verbs": ["delete"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "name": "janitor", "apiGroup": "rbac.authorization.k8s.io"}]});
    for obj in [role, binding] {
        common::apply_value(&t.client, None, obj).await.unwrap();
    }
    common::wait_allowed(&t.client, "janitor", &[], "delete", "ledgers", &t.ns).await;
    let as_janitor: kube::Api<Ledger> = kube::Api::namespaced(common::client_as("janitor", &[]).await, &t.ns);
    let dry = kube::api::DeleteParams { dry_run: true, ..Default::default() };
    // While the namespace lives, a deletion by anyone but a trusted writer is refused...
    let refused = as_janitor.delete("prod.pay.2026-12", &dry).await.map(drop).unwrap_err();
    assert!(matches!(&refused, kube::Error::Api(s) if s.code == 403), "{refused}");
    // ... and once it is being deleted, nothing holds its Ledgers back.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(t.client.clone());
    namespaces.delete(&t.ns, &Default::default()).await.unwrap();
    t.wait_for::<Ledger>("prod.pay.2026-12", |l| l.metadata.deletion_timestamp.is_some()).await;
    as_janitor.delete("prod.pay.2026-12", &dry).await.unwrap();
    let release = json!({"metadata": {"finalizers": null}});
    ledgers.patch("prod.pay.2026-12", &PatchParams::default(), &Patch::Merge(&release)).await.unwrap();
    let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> = kube::Api::all(t.client.clone());
    let bindings: kube::Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
        kube::Api::all(t.client.clone());
    bindings.delete(&name, &Default::default()).await.unwrap();
    roles.delete(&name, &Default::default()).await.unwrap();
}
