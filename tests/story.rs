#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The seed story from `examples/`, end to end: prod on 1.3.9 behind approval, the 1.3 hotfix line
//! tracking `~1.3`, the 1.4 line picking up release candidates, test promoting from dev-1-4 after a
//! soak, a broken hotfix rolled back, the forward-port warning raised and cleared, prod upgraded
//! once approved.

mod common;

use common::{TestNs, apply_yaml_file, examples, healthy_at, within};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use tuskfish::api::{Phase, Release, ReleaseStatus, find_condition};

async fn wait(
    releases: &Api<Release>,
    name: &str,
    what: &str,
    cond: impl Fn(&ReleaseStatus) -> bool + Send + 'static,
) -> Release {
    let fut = await_condition(releases.clone(), name, move |r: Option<&Release>| {
        r.and_then(|r| r.status.as_ref()).is_some_and(&cond)
    });
    match tokio::time::timeout(common::WAIT, fut).await {
        Ok(Ok(Some(r))) => r,
        _ => panic!("{name}: {what}; now: {:#?}", releases.get(name).await.ok().and_then(|r| r.status)),
    }
}

fn forward_port_missing(s: &ReleaseStatus) -> Option<(bool, String)> {
    find_condition(&s.conditions, "ForwardPortMissing").map(|c| (c.status == "True", c.message.clone()))
}

#[tokio::test]
async fn the_seed_story() {
    let t = TestNs::new("story").await;
    common::apply_examples(&t.client).await;
    let rel: Api<Release> = Api::namespaced(t.client.clone(), "finance");

    let prod = wait(&rel, "payments-prod", "prod runs the approved 1.3.9", healthy_at("1.3.9")).await;
    let note = prod.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert!(note.starts_with("approved by maria.keller"), "{note}");
    wait(&rel, "payments-dev-1-3", "the hotfix line tracks ~1.3", healthy_at("1.3.10")).await;
    wait(&rel, "payments-dev-1-4", "the 1.4 line takes release candidates", healthy_at("1.4.0-rc.1")).await;
    wait(&rel, "payments-test", "test promotes from dev-1-4 after its soak", healthy_at("1.4.0-rc.1")).await;

    // FIN-142 shipped in 1.3.10 (dev-1-3) and is missing from the newest 1.4 build.
    let dev14 = wait(&rel, "payments-dev-1-4", "forward-port warning", |s| {
        forward_port_missing(s).is_some_and(|(missing, _)| missing)
    })
    .await;
    let (_, msg) = forward_port_missing(&dev14.status.unwrap()).unwrap();
    assert!(msg.contains("FIN-142") && msg.contains("1.3.10 in dev-1-3"), "{msg}");
    // What each environment runs, by change id: prod (1.3.9) lacks the FX fix that dev-1-3 has.
    let changes = |name: &'static str| {
        let rel = rel.clone();
        async move { rel.get(name).await.unwrap().status.unwrap().changes }
    };
    assert_eq!(changes("payments-prod").await, ["FIN-101"]);
    assert_eq!(changes("payments-dev-1-3").await, ["FIN-101", "FIN-142"]);

    // A broken hotfix is rolled back on the 1.3 line and not retried.
    apply_yaml_file(&t.client, &examples().join("demo/40-broken-hotfix.yaml")).await;
    let dev13 = wait(&rel, "payments-dev-1-3", "1.3.11 fails and is rolled back", |s| {
        s.failed_versions.iter().any(|v| v == "1.3.11") && s.phase == Some(Phase::Healthy)
    })
    .await;
    assert_eq!(dev13.status.unwrap().current_version.as_deref(), Some("1.3.10"));

    // The next 1.4 candidate carries the fix: the warning clears and test follows after its soak.
    apply_yaml_file(&t.client, &examples().join("demo/50-forward-port.yaml")).await;
    wait(&rel, "payments-dev-1-4", "rc.2 rolls out and the warning clears", |s| {
        healthy_at("1.4.0-rc.2")(s) && forward_port_missing(s).is_some_and(|(missing, _)| !missing)
    })
    .await;
    wait(&rel, "payments-test", "test promotes rc.2", healthy_at("1.4.0-rc.2")).await;

    // Prod takes the hotfix only once it is approved.
    let patch = json!({"spec": {"version": "1.3.10"}});
    rel.patch("payments-prod", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let prod = wait(&rel, "payments-prod", "1.3.10 awaits approval", |s| {
        s.held_version.as_deref() == Some("1.3.10")
    })
    .await;
    assert_eq!(prod.status.unwrap().current_version.as_deref(), Some("1.3.9"));
    within(
        "approval applied",
        apply_yaml_file(&t.client, &examples().join("demo/60-approve-prod-1.3.10.yaml")),
    )
    .await;
    wait(&rel, "payments-prod", "prod runs the approved hotfix", healthy_at("1.3.10")).await;
}
