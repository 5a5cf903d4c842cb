#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Products on a real API server: a platform version (a set of app versions) runs in an Environment
//! through one Release per app, in its order, passes the Environment's gates once for all apps,
//! and goes back as one when any app fails.

mod common;

use common::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tuskfish::api::{
    Phase, ProductRelease, ProductReleaseStatus, ProductVersion, Release, RolloutResult, is_true,
};

/// Applies ProductVersion `platform-<version>` of `apps` (app, version, after).
async fn product_version(t: &TestNs, version: &str, apps: &[(&str, &str, &[&str])]) {
    let apps: Vec<Value> =
        apps.iter().map(|(app, v, after)| json!({"app": app, "version": v, "after": after})).collect();
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductVersion",
        "metadata": {"name": format!("platform-{version}")},
        "spec": {"product": "platform", "version": version, "apps": apps}}))
        .await;
}

async fn published(t: &TestNs, version: &str) -> ProductVersion {
    t.wait_for::<ProductVersion>(&format!("platform-{version}"), |pv| {
        pv.status.as_ref().is_some_and(|s| is_true(&s.conditions, "Ready"))
    })
    .await
}

/// Applies ProductRelease `platform-<env>`; `source` is its version source (`{"version": …}`).
async fn product_release(t: &TestNs, env: &str, source: Value) {
    let mut spec = json!({"product": "platform", "environment": env, "progressDeadlineSeconds": 20});
    merge(&mut spec, source);
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductRelease",
        "metadata": {"name": format!("platform-{env}")}, "spec": spec}))
        .await;
}

async fn wait_product(
    t: &TestNs,
    env: &str,
    cond: impl Fn(&ProductReleaseStatus) -> bool + Send + 'static,
) -> ProductReleaseStatus {
    let p = t
        .wait_for::<ProductRelease>(&format!("platform-{env}"), move |p| p.status.as_ref().is_some_and(&cond))
        .await;
    p.status.unwrap_or_default()
}

fn healthy(version: &'static str) -> impl Fn(&ProductReleaseStatus) -> bool {
    move |s| s.phase == Some(Phase::Healthy) && s.current_version.as_deref() == Some(version)
}

fn ready_reason(s: &ProductReleaseStatus) -> String {
    s.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone()).unwrap_or_default()
}

/// `tuskfish -n NS ARGS`: whether it succeeded, and what it printed (standard output, then error).
async fn cli(ns: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"));
    cmd.args(["--kubeconfig", &kubeconfig(), "-n", ns]).args(args).env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// When each app's Deployment was created in `ns` (what "in order" means on the cluster).
async fn created_at(t: &TestNs, ns: &str, app: &str) -> jiff::Timestamp {
    let d: k8s_openapi::api::apps::v1::Deployment = t.api_in(ns).get(app).await.unwrap();
    d.metadata.creation_timestamp.unwrap().0
}

#[tokio::test]
async fn a_platform_version_rolls_out_in_order_passes_the_gates_once_and_goes_back_as_one() {
    let t = TestNs::new("product").await;
    t.environment("dev", json!({})).await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    for (app, v) in [("payments", "1.3.9"), ("ledger", "1.3.3"), ("ledger", "1.3.4")] {
        t.app_version(app, v, json!({})).await;
    }
    // The 1.3 hotfix: FIN-142, which the 1.4 line must get too.
    t.app_version("payments", "1.3.10", json!({"changes": [{"id": "FIN-142", "type": "bug"}]})).await;
    product_version(&t, "1.3.9", &[("payments", "1.3.9", &["ledger"]), ("ledger", "1.3.3", &[])]).await;
    product_version(&t, "1.3.10", &[("payments", "1.3.10", &["ledger"]), ("ledger", "1.3.4", &[])]).await;
    let pv = published(&t, "1.3.10").await;
    assert_eq!(pv.status.unwrap().waves, [vec!["ledger".to_string()], vec!["payments".to_string()]]);
    // What was published is not deleted (and so never made again with other content under an
    // approved version); a veto admin may.
    let dry = DeleteParams { dry_run: true, ..Default::default() };
    for refused in [
        t.api::<tuskfish::api::AppVersion>().delete("payments-1.3.10", &dry).await.err(),
        t.api::<ProductVersion>().delete("platform-1.3.10", &dry).await.err(),
    ] {
        let refused = format!("{refused:?}");
        assert!(refused.contains("a published version is not deleted"), "{refused}");
    }
    let admin = client_as("release-admin", &["system:masters", "tuskfish:veto-admins"]).await;
    kube::Api::<ProductVersion>::namespaced(admin, &t.ns).delete("platform-1.3.10", &dry).await.unwrap();

    // Pinned in dev: ledger first, then payments, each through a Release of the product's.
    product_release(&t, "dev", json!({"version": "1.3.9"})).await;
    let s = wait_product(&t, "dev", healthy("1.3.9")).await;
    let apps: Vec<(&str, &str)> = s.apps.iter().map(|a| (a.app.as_str(), a.version.as_str())).collect();
    assert_eq!(apps, [("payments", "1.3.9"), ("ledger", "1.3.3")]);
    let child: Release = t.api().get("platform-dev.payments").await.unwrap();
    assert_eq!(child.spec.version.as_deref(), Some("1.3.9"));
    assert_eq!(child.spec.depends_on[0].version.as_deref(), Some("=1.3.3"));
    let dev_ns = t.env_ns("dev");
    assert!(created_at(&t, &dev_ns, "ledger").await <= created_at(&t, &dev_ns, "payments").await);

    // Someone sets the Release's version by hand: the product puts it back, and the Release
    // never runs what the product did not admit.
    t.set_version("platform-dev.payments", "1.3.10").await;
    t.wait_for::<Release>("platform-dev.payments", |r| r.spec.version.as_deref() == Some("1.3.9")).await;
    let r: Release = t.api().get("platform-dev.payments").await.unwrap();
    assert!(r.status.unwrap().history.iter().all(|h| h.version != "1.3.10"));

    // Prod: one approval of the product version, by a verified user, for all its apps.
    product_release(&t, "prod", json!({"version": "1.3.10"})).await;
    let s = wait_product(&t, "prod", |s| s.conditions.iter().any(|c| c.reason == "AwaitingApproval")).await;
    assert!(s.admitted.is_none(), "nothing runs before the approval: {s:?}");
    let none: Vec<Release> = t.api::<Release>().list(&Default::default()).await.unwrap().items;
    assert!(none.iter().all(|r| r.spec.environment != "prod"), "no Release in prod before the approval");
    // (That an Approval of a Release named like it does not count is the gate's unit test.)
    // The ClusterRole of the tests' approvers reaches the authorizer a moment after it changed.
    wait_allowed(&t.client, "maria.keller", &[APPROVERS_GROUP], "list", "productreleases", &t.ns).await;
    let as_maria = ["--as", "maria.keller", "--as-group", APPROVERS_GROUP, "product", "approve", "1.3.10"];
    let (ok, out) = cli(&t.ns, &[&as_maria[..], &["--env", "prod", "--reason", "CAB-42"]].concat()).await;
    assert!(ok && out.contains("approved platform 1.3.10 for prod"), "{out}");
    let s = wait_product(&t, "prod", healthy("1.3.10")).await;
    assert_eq!(s.history[0].approvers, ["maria.keller"]);
    let ledger: Release = t.api().get("platform-prod.ledger").await.unwrap();
    let entry = &ledger.status.unwrap().history[0];
    assert_eq!(entry.approvers, ["maria.keller"], "the app's history names the product's approver");

    // 1.4.0-rc.2 in dev: payments rolls out, ledger never becomes ready: both go back to 1.3.9.
    t.app_version("payments", "1.4.0-rc.2", json!({})).await;
    t.app_version(
        "ledger",
        "1.4.0-rc.2",
        json!({"workload": {"image": "registry.example/ledger:rc2-never-ready"}}),
    )
    .await;
    product_version(&t, "1.4.0-rc.2", &[("payments", "1.4.0-rc.2", &[]), ("ledger", "1.4.0-rc.2", &[])])
        .await;
    published(&t, "1.4.0-rc.2").await;
    t.client_patch_product("platform-dev", json!({"spec": {"version": "1.4.0-rc.2"}})).await;
    t.wait_release("platform-dev.payments", healthy_at("1.4.0-rc.2")).await;
    let s = wait_product(&t, "dev", |s| {
        s.failed_versions.contains(&"1.4.0-rc.2".to_string()) && healthy("1.3.9")(s)
    })
    .await;
    let h: Vec<(&str, RolloutResult, Option<&str>)> =
        s.history.iter().map(|h| (h.version.as_str(), h.result, h.rollback_of.as_deref())).collect();
    assert_eq!(
        h[..2],
        [
            ("1.3.9", RolloutResult::Succeeded, Some("1.4.0-rc.2")),
            ("1.4.0-rc.2", RolloutResult::Failed, None)
        ]
    );
    assert!(s.history[1].message.as_deref().unwrap_or_default().starts_with("ledger:"), "{:?}", s.history[1]);
    assert_eq!(s.held_version.as_deref(), Some("1.4.0-rc.2"));
    let payments = t.wait_release("platform-dev.payments", healthy_at("1.3.9")).await.status.unwrap();
    let why = payments.history[0].message.clone().unwrap_or_default();
    let notes = format!("{why} {:?}", payments.history[0]);
    assert!(notes.contains("1.4.0-rc.2 failed"), "the app's history says why it went back: {notes}");

    // The forward-port gap at product level: FIN-142 is in 1.3.10 and not in the 1.4 line.
    let (same, out) = cli(&t.ns, &["product", "diff", "1.3.10", "1.4.0-rc.2", "--exit-code"]).await;
    assert!(!same, "the versions differ: exit 1\n{out}");
    let payments_row = out.lines().find(|l| l.starts_with("payments")).unwrap_or_default();
    assert!(payments_row.contains("FIN-142"), "{out}");
    // What runs healthy in dev, recorded as a product version, keeping the product's order.
    let (ok, out) = cli(&t.ns, &["product", "snapshot", "--env", "dev", "--version", "1.3.11"]).await;
    assert!(ok, "{out}");
    let pv = published(&t, "1.3.11").await;
    let apps: Vec<(&str, &str, usize)> =
        pv.spec.apps.iter().map(|a| (a.app.as_str(), a.version.as_str(), a.after.len())).collect();
    assert_eq!(apps, [("ledger", "1.3.3", 0), ("payments", "1.3.9", 1)]);
    let (ok, out) = cli(&t.ns, &["product", "snapshot", "--env", "dev", "--version", "1.3.11"]).await;
    assert!(!ok && out.contains("exists already"), "{out}");
    // Which platform version shipped FIN-142 to prod.
    let (_, out) = cli(&t.ns, &["changes", "FIN-142"]).await;
    assert!(out.contains("prod: runs 1.3.10, platform 1.3.10"), "{out}");
    let (_, out) = cli(&t.ns, &["status"]).await;
    assert!(
        out.lines().any(|l| l.starts_with("platform") && l.contains("prod") && l.contains("1.3.10")),
        "{out}"
    );
}

/// The 1.3 line tracks its hotfixes as a product; test promotes what soaked there; the 1.4 line's
/// apps, tracked one by one, are recorded as a product version once they run healthy.
#[tokio::test]
async fn a_tracked_hotfix_line_is_promoted_after_its_soak_and_a_release_candidate_is_recorded() {
    let t = TestNs::new("product-lines").await;
    t.environment("dev-1-3", json!({"versionLine": "~1.3"})).await;
    t.environment("dev-1-4", json!({"versionLine": ">=1.4.0-0"})).await;
    t.environment("test", json!({"tier": "test"})).await;
    for (app, v) in [
        ("payments", "1.3.9"),
        ("ledger", "1.3.3"),
        ("payments", "1.3.10"),
        ("ledger", "1.3.4"),
        ("payments", "1.4.0-rc.1"),
        ("ledger", "1.4.0-rc.1"),
    ] {
        t.app_version(app, v, json!({})).await;
    }
    product_version(&t, "1.3.9", &[("payments", "1.3.9", &["ledger"]), ("ledger", "1.3.3", &[])]).await;
    product_version(&t, "1.3.10", &[("payments", "1.3.10", &["ledger"]), ("ledger", "1.3.4", &[])]).await;
    published(&t, "1.3.10").await;

    // Tracking ~1.3: the newest hotfix of the line.
    product_release(&t, "dev-1-3", json!({"track": "~1.3"})).await;
    let dev = wait_product(&t, "dev-1-3", healthy("1.3.10")).await;
    let dev_healthy = dev.healthy_since.unwrap().0;
    // test promotes what has run healthy in dev-1-3, every app, for 3 s.
    product_release(&t, "test", json!({"promoteFrom": {"environment": "dev-1-3", "soak": "3s"}})).await;
    let s = wait_product(&t, "test", healthy("1.3.10")).await;
    let started = s.history[0].started_at.0;
    assert!(
        started.duration_since(dev_healthy) >= jiff::SignedDuration::from_secs(3),
        "{started} vs {dev_healthy}"
    );

    // The 1.4 line's apps, one Release each, recorded as platform 1.4.0-rc.1 once healthy.
    for app in ["payments", "ledger"] {
        t.release(
            &format!("{app}-dev-1-4"),
            app,
            "dev-1-4",
            "",
            json!({"version": null, "track": ">=1.4.0-0"}),
        )
        .await;
    }
    for app in ["payments", "ledger"] {
        t.wait_release(&format!("{app}-dev-1-4"), healthy_at("1.4.0-rc.1")).await;
    }
    let args =
        ["product", "snapshot", "--env", "dev-1-4", "--version", "1.4.0-rc.1", "--product", "platform"];
    let (ok, out) = cli(&t.ns, &args).await;
    assert!(ok, "{out}");
    let pv = published(&t, "1.4.0-rc.1").await;
    let apps: Vec<(&str, &str)> = pv.spec.apps.iter().map(|a| (a.app.as_str(), a.version.as_str())).collect();
    assert_eq!(apps, [("ledger", "1.4.0-rc.1"), ("payments", "1.4.0-rc.1")]);
    // Outside dev-1-3's line: its tracking product stays at 1.3.10.
    let dev: ProductRelease = t.api().get("platform-dev-1-3").await.unwrap();
    assert_eq!(dev.status.unwrap().admitted.unwrap().version, "1.3.10");
}

/// Bad input gets a reason and a message naming the fix; nothing else is harmed.
#[tokio::test]
async fn a_broken_product_version_or_an_app_run_by_its_own_release_is_refused_clearly() {
    let t = TestNs::new("product-bad").await;
    t.environment("dev", json!({})).await;
    t.app_version("payments", "1.0.0", json!({})).await;
    t.app_version("ledger", "1.0.0", json!({})).await;

    // The API server refuses an app named twice.
    let twice = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductVersion",
        "metadata": {"name": "platform-twice"},
        "spec": {"product": "platform", "version": "1.0.1", "apps": [
            {"app": "payments", "version": "1.0.0"}, {"app": "payments", "version": "1.0.0"}]}});
    let err = apply_value(&t.client, Some(&t.ns), twice).await.unwrap_err();
    assert!(err.to_string().contains("each app is named once"), "{err}");

    // Missing AppVersion and a cycle: held with the reason, naming what is wrong.
    product_version(&t, "1.0.2", &[("payments", "1.0.0", &[]), ("risk", "2.0.0", &[])]).await;
    let pv = t
        .wait_for::<ProductVersion>("platform-1.0.2", |pv| {
            pv.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "AppVersionNotFound"))
        })
        .await;
    assert!(pv.status.unwrap().conditions[0].message.contains("risk 2.0.0"));
    product_version(&t, "1.0.3", &[("payments", "1.0.0", &["ledger"]), ("ledger", "1.0.0", &["payments"])])
        .await;
    let pv = t
        .wait_for::<ProductVersion>("platform-1.0.3", |pv| {
            pv.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "DependencyCycle"))
        })
        .await;
    assert!(pv.status.unwrap().conditions[0].message.contains("ledger after payments after ledger"));

    // A product asking for a version that cannot be published says so and runs nothing.
    product_release(&t, "dev", json!({"version": "1.0.2"})).await;
    let s = wait_product(&t, "dev", |s| ready_reason(s) == "AppVersionNotFound").await;
    assert!(s.admitted.is_none());

    // An app already run by its own Release: the product refuses, the Release keeps running.
    t.release("ledger-dev", "ledger", "dev", "1.0.0", json!({})).await;
    t.wait_release("ledger-dev", healthy_at("1.0.0")).await;
    product_version(&t, "1.0.0", &[("payments", "1.0.0", &[]), ("ledger", "1.0.0", &[])]).await;
    published(&t, "1.0.0").await;
    t.client_patch_product("platform-dev", json!({"spec": {"version": "1.0.0"}})).await;
    let s = wait_product(&t, "dev", |s| ready_reason(s) == "AppRunByRelease").await;
    let message = &s.conditions.iter().find(|c| c.type_ == "Ready").unwrap().message;
    assert!(message.contains("ledger (Release ledger-dev)"), "{message}");
    let owned: Vec<Release> = t.api::<Release>().list(&Default::default()).await.unwrap().items;
    assert_eq!(owned.len(), 1, "the product created no Release of its own");

    // Once that Release is gone, the product runs both; a Release made later for one of its apps
    // is the one refused, and the product's keeps running.
    delete::<Release>(&t.api(), "ledger-dev").await;
    t.wait_gone::<Release>(&t.ns, "ledger-dev").await;
    wait_product(&t, "dev", healthy("1.0.0")).await;
    t.release("payments-dev", "payments", "dev", "1.0.0", json!({})).await;
    let r = t.wait_release("payments-dev", |s| s.conditions.iter().any(|c| c.reason == "RunByProduct")).await;
    let message =
        r.status.unwrap().conditions.iter().find(|c| c.reason == "RunByProduct").unwrap().message.clone();
    assert!(message.contains("ProductRelease platform-dev (Release platform-dev.payments)"), "{message}");
    t.wait_release("platform-dev.payments", healthy_at("1.0.0")).await;

    // A Release that claims a product as its owner, without being its own, runs nothing.
    // (Its owner is real, so the garbage collector leaves it be: only its name is not the one
    // the product gives the Release of that app.)
    let owner: ProductRelease = t.api().get("platform-dev").await.unwrap();
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "impostor", "labels": {"tuskfish.dev/product-release": "platform-dev"},
            "ownerReferences": [{"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductRelease",
                "name": "platform-dev", "uid": owner.metadata.uid, "controller": true}]},
        "spec": {"app": "risk", "environment": "dev", "version": "1.0.0"}}))
        .await;
    let r = t.wait_release("impostor", |s| s.conditions.iter().any(|c| c.reason == "ProductNotFound")).await;
    assert!(r.status.unwrap().inventory.is_none());

    // A snapshot is refused while anything of the Environment does not run healthy.
    t.release("risk-dev", "risk", "dev", "9.9.9", json!({})).await;
    t.wait_release("risk-dev", |s| s.conditions.iter().any(|c| c.reason == "AppVersionNotFound")).await;
    let args = ["product", "snapshot", "--env", "dev", "--version", "2.0.0", "--product", "other"];
    let (ok, out) = cli(&t.ns, &args).await;
    assert!(
        !ok && out.contains("not everything there runs healthy") && out.contains("risk (Pending"),
        "{out}"
    );
    let _ = t.api::<Release>().delete("impostor", &DeleteParams::default()).await;
}

trait PatchProduct {
    async fn client_patch_product(&self, name: &str, patch: Value);
}

impl PatchProduct for TestNs {
    async fn client_patch_product(&self, name: &str, patch: Value) {
        self.api::<ProductRelease>()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
}

/// `examples/products/platform.yaml`, as the demo applies it (in this test's namespaces).
#[tokio::test]
async fn the_product_example_runs_its_apps_in_order() {
    let t = TestNs::new("product-example").await;
    t.app_version("payments", "1.3.9", json!({})).await;
    let text = std::fs::read_to_string(examples().join("products/platform.yaml")).unwrap();
    for mut doc in serde_saphyr::from_multiple::<Value>(&text).unwrap().into_iter().filter(|d| !d.is_null()) {
        doc["metadata"]["namespace"] = json!(t.ns);
        if doc["kind"] == "Environment" {
            doc["spec"]["namespace"] = json!(t.env_ns("uat"));
        }
        t.apply(doc).await;
    }
    let s = t
        .wait_for::<ProductRelease>("platform-uat", |p| {
            p.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Healthy))
        })
        .await
        .status
        .unwrap();
    assert_eq!(s.current_version.as_deref(), Some("1.3.9"));
    let uat = t.env_ns("uat");
    assert!(created_at(&t, &uat, "ledger").await <= created_at(&t, &uat, "payments").await);
    // At rest, the product and its Releases write nothing.
    let rvs = || async {
        let p: ProductRelease = t.api().get("platform-uat").await.unwrap();
        let l: Release = t.api().get("platform-uat.ledger").await.unwrap();
        let y: Release = t.api().get("platform-uat.payments").await.unwrap();
        let e: tuskfish::api::Environment = t.api().get("uat").await.unwrap();
        [
            p.metadata.resource_version,
            l.metadata.resource_version,
            y.metadata.resource_version,
            e.metadata.resource_version,
        ]
    };
    // (The Environment's count of healthy Releases is written at most every 2 s: let it land.)
    t.wait_for::<tuskfish::api::Environment>("uat", |e| {
        e.status.as_ref().is_some_and(|s| s.healthy_releases == 2)
    })
    .await;
    let before = t.operator_writes();
    let r0 = rvs().await;
    t.nudge::<ProductRelease>("platform-uat").await;
    t.nudge::<Release>("platform-uat.ledger").await;
    t.nudge::<ProductRelease>("platform-uat").await;
    assert_eq!(t.operator_writes(), before, "writes at rest: {r0:?} {:?}", rvs().await);
}
