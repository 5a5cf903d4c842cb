#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The API server, then etcd, restarted in the middle of rollouts: the operator (running on) picks
//! its watches up again by itself and finishes the rollout it was in, then reacts to the next change.
//! And objects deleted while the API server was down: the operator's watches come back to a history
//! that no longer holds the deletion, list again, and must still wake whoever read what is gone.
//! Needs the local control plane of `make test` (the processes are restarted from their pid files
//! next to the kubeconfig); against another cluster it says so and does nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::control_plane::Component;
use common::{TestNs, healthy_at, held, within};
use serde_json::{Value, json};
use tuskfish::api::Environment;

/// One outage at a time: the tests of this file share the control plane they take down.
static OUTAGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until the API server answers again, with etcd behind it (a list must succeed: the
/// version endpoint answers before etcd is reachable).
async fn api_back(t: &TestNs) {
    let releases: kube::Api<tuskfish::api::Release> = t.api();
    within("the API server to answer again", async {
        while releases.list(&Default::default()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// Deletes `key` in etcd through its JSON gateway (nobody else can: the API server is down), then
/// compacts etcd's history up to that deletion, so that a watch resumed from before it finds its
/// resourceVersion too old and must list again: the deletion itself is never sent to a watcher.
async fn delete_in_etcd_unseen(etcd: &str, key: &str) {
    // Keys are plain names (no quote to escape).
    let b64 = |s: &str| {
        let out = Command::new("sh").args(["-c", &format!("printf %s '{s}' | base64 -w0")]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let deleted = etcd_call(etcd, "kv/deleterange", json!({"key": b64(key)})).await;
    assert_eq!(deleted["deleted"], "1", "{key} was not in etcd: {deleted}");
    let revision = deleted["header"]["revision"].as_str().unwrap().to_string();
    etcd_call(etcd, "kv/compaction", json!({"revision": revision, "physical": true})).await;
}

/// One call of etcd's v3 JSON gateway (curl: the tests need no HTTP client of their own).
async fn etcd_call(etcd: &str, path: &str, body: Value) -> Value {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "-X", "POST", &format!("{etcd}/v3/{path}"), "-d", &body.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "etcd {path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn objects_deleted_while_the_api_server_was_down_wake_whoever_read_them() {
    let _alone = OUTAGES.lock().await;
    let state = PathBuf::from(common::kubeconfig()).parent().unwrap().to_path_buf();
    let Some(apiserver) = Component::of(&state, "apiserver") else {
        eprintln!(
            "not the local control plane of `make test` (no pid files in {}): nothing to stop",
            state.display()
        );
        return;
    };
    let etcd = apiserver.flag("--etcd-servers");
    let t = TestNs::new("gone").await;
    t.environment("dev", json!({})).await;
    t.environment("test", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    let promote = json!({"version": null, "promoteFrom": {"environment": "dev", "soak": "0s"}});
    t.release("pay-test", "pay", "test", "", promote).await;
    t.wait_release("pay-test", healthy_at("1.0.0")).await;
    t.wait_for::<Environment>("dev", |e| e.status.as_ref().is_some_and(|s| s.releases == 1)).await;

    // pay-dev vanishes while the API server is down (as if its finalizer had been removed by hand
    // and it was deleted then): no watch event ever tells of it.
    let key = format!("/registry/tuskfish.dev/releases/{}/pay-dev", t.ns);
    apiserver.restart_after(delete_in_etcd_unseen(&etcd, &key)).await;
    api_back(&t).await;

    // The relist must route what it no longer lists: the Release that promoted from pay-dev learns
    // that its upstream is gone, and dev's count drops.
    t.wait_release("pay-test", held("UpstreamNotFound")).await;
    t.wait_for::<Environment>("dev", |e| e.status.as_ref().is_some_and(|s| s.releases == 0)).await;
}

#[tokio::test]
async fn operator_recovers_from_api_server_and_etcd_restarts() {
    let _alone = OUTAGES.lock().await;
    let state = PathBuf::from(common::kubeconfig()).parent().unwrap().to_path_buf();
    let (Some(apiserver), Some(etcd)) = (Component::of(&state, "apiserver"), Component::of(&state, "etcd"))
    else {
        eprintln!(
            "not the local control plane of `make test` (no pid files in {}): nothing to restart",
            state.display()
        );
        return;
    };
    let t = TestNs::new("outage").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // The API server goes away right after a rollout was asked for.
    t.app_version("pay", "1.1.0", json!({})).await;
    t.set_version("pay-dev", "1.1.0").await;
    apiserver.restart().await;
    api_back(&t).await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;

    // etcd goes away under the API server.
    t.app_version("pay", "1.2.0", json!({})).await;
    t.set_version("pay-dev", "1.2.0").await;
    etcd.restart().await;
    api_back(&t).await;
    let r = t.wait_release("pay-dev", healthy_at("1.2.0")).await;

    // And the watches work after both: a change made now is seen and rolled out.
    t.app_version("pay", "1.3.0", json!({})).await;
    t.set_version("pay-dev", "1.3.0").await;
    let after = t.wait_release("pay-dev", healthy_at("1.3.0")).await;
    let versions: Vec<String> = after.status.unwrap().history.iter().map(|h| h.version.clone()).collect();
    assert_eq!(versions, ["1.3.0", "1.2.0", "1.1.0", "1.0.0"], "before: {:#?}", r.status);
}
