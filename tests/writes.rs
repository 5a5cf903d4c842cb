#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The write path of a rollout: its first status waits a moment (the settle window), so that a
//! rollout healthy within it is written once; one still progressing is written when the window
//! ends; a rollout that brings new objects records them before applying them (one write more,
//! only then); a Release deleted meanwhile still prunes what the held apply created.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tuskfish::api::{Phase, Release, ReleaseStatus};

use common::{TestNs, delete, healthy_at};

/// Long enough for a kwok Deployment to become ready on a loaded machine, short enough to wait out.
const WINDOW: Duration = Duration::from_secs(10);

/// Every status of `name` the API server sends from now on.
fn statuses(t: &TestNs, name: &str) -> Arc<Mutex<Vec<ReleaseStatus>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(t.api::<Release>(), config).applied_objects();
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(r)) = stream.next().await {
            sink.lock().unwrap().push(r.status.unwrap_or_default());
        }
    });
    seen
}

/// A workload no node has room for: its pods stay Pending, its Deployment never becomes ready.
fn unschedulable() -> serde_json::Value {
    json!({"workload": {"resources": {"requests": {"cpu": "100000"}}}})
}

#[tokio::test]
async fn a_rollout_healthy_within_the_window_writes_its_status_once() {
    common::use_status_settle(WINDOW);
    let t = TestNs::new("settle-once").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    t.nudge::<Release>("pay-dev").await;

    let seen = statuses(&t, "pay-dev");
    t.set_version("pay-dev", "1.1.0").await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.nudge::<Release>("pay-dev").await;
    let mut seen = seen.lock().unwrap().clone();
    // Spec and metadata changes (the version set, the nudge) come with the status unchanged; a status
    // write that changes nothing is not stored, so each status written differs from the one before.
    seen.dedup();
    let of_new: Vec<&ReleaseStatus> =
        seen.iter().filter(|s| s.desired_version.as_deref() == Some("1.1.0")).collect();
    // The one write of this rollout, already healthy.
    assert_eq!(of_new.len(), 1, "{of_new:#?}");
    assert_eq!(of_new[0].phase, Some(Phase::Healthy));
    let entry = &of_new[0].history[0];
    assert_eq!(entry.version, "1.1.0");
    assert!(entry.finished_at.as_ref().is_some_and(|f| f.0 >= entry.started_at.0), "{entry:?}");
}

#[tokio::test]
async fn a_rollout_still_progressing_is_written_when_the_window_ends() {
    common::use_status_settle(WINDOW);
    let t = TestNs::new("settle-late").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", unschedulable()).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    t.set_version("pay-dev", "1.1.0").await;
    let deployments = t.api_in::<Deployment>(&t.env_ns("dev"));
    t.wait_for_in::<Deployment>(&t.env_ns("dev"), "pay", |d| {
        let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        pod.is_some_and(|p| p.containers[0].image.as_deref() == Some("registry.example/pay:1.1.0"))
    })
    .await;
    // Applied, but the status still tells of the previous version: it is held back.
    let rel = t.api::<Release>().get("pay-dev").await.unwrap();
    assert_eq!(rel.status.unwrap().desired_version.as_deref(), Some("1.0.0"));
    let written = t
        .wait_release("pay-dev", |s| {
            s.desired_version.as_deref() == Some("1.1.0") && s.phase == Some(Phase::Progressing)
        })
        .await;
    let inventory = written.status.unwrap().inventory.unwrap();
    assert!(inventory.objects.iter().any(|o| o.kind == "Deployment" && o.name == "pay"), "{inventory:?}");
    assert!(deployments.get("pay").await.is_ok());
}

#[tokio::test]
async fn a_release_deleted_while_its_status_is_held_prunes_what_the_held_apply_created() {
    common::use_status_settle(WINDOW);
    let t = TestNs::new("settle-delete").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    let extra = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pay-extra"}, "data": {"a": "b"}});
    let mut spec = unschedulable();
    spec["manifests"] = json!([extra]);
    t.app_version("pay", "1.1.0", spec).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    t.set_version("pay-dev", "1.1.0").await;
    let ns = t.env_ns("dev");
    t.wait_for_in::<ConfigMap>(&ns, "pay-extra", |_| true).await;
    // The rollout's status is held, but the ConfigMap it brings was recorded before the apply
    // (with what may still exist of 1.0.0): a crash now would leave nothing the next prune misses.
    let status = t.api::<Release>().get("pay-dev").await.unwrap().status.unwrap();
    assert_eq!(status.desired_version.as_deref(), Some("1.0.0"), "the rollout's own status is held");
    let on_server = status.inventory.unwrap();
    for name in ["pay-extra", "pay"] {
        assert!(on_server.objects.iter().any(|o| o.name == name), "{name} not in {on_server:?}");
    }
    delete(&t.api::<Release>(), "pay-dev").await;
    t.wait_gone::<Release>(&t.ns, "pay-dev").await;
    t.wait_gone::<ConfigMap>(&ns, "pay-extra").await;
    t.wait_gone::<Deployment>(&ns, "pay").await;
}
