#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Verification against a real API server: HTTP checks against a server on loopback, Job checks run
//! by kwok's nodes; a rollout is Succeeded (and promotable) only once every check passed, and a
//! failed check fails it and rolls back.

mod common;

use common::receiver::Receiver;
use common::{TestNs, healthy_at};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use tuskfish::api::{Release, ReleaseStatus, RolloutResult, VerificationResult, find_condition};

fn reason_is(cond: &'static str, reason: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| find_condition(&s.conditions, cond).is_some_and(|c| c.reason == reason)
}

fn rolled_back_from(version: &'static str, to: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| s.failed_versions.iter().any(|v| v == version) && healthy_at(to)(s)
}

#[tokio::test]
async fn http_checks_gate_success_and_promotion_and_a_failed_check_rolls_back() {
    let t = TestNs::new("verify-http").await;
    let server = Receiver::start().await;
    // 1.0.0 is not ready until the test says so; 1.1.0 never is.
    server.answer("health/1.0.0", &[(503, "warming up")]);
    server.answer("health/1.1.0", &[(503, "database unreachable")]);
    let check = |retries: u32| {
        json!({"name": "api", "http": {
            "url": "http://${HOST}/health/${TUSKFISH_VERSION}", "bodyMatches": "version=${TUSKFISH_VERSION}",
            "retries": retries, "interval": "500ms", "timeout": "2s"}})
    };
    // Patient enough for the test to look while the check still fails.
    t.environment("dev", json!({"variables": {"HOST": server.host()}, "verify": [check(100)]})).await;
    t.environment("test", json!({"tier": "test"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({"rollback": {"auto": true}})).await;
    t.release(
        "pay-test",
        "pay",
        "test",
        "1.0.0",
        json!({"version": null, "promoteFrom": {"environment": "dev"}}),
    )
    .await;

    // Healthy workloads, checks still failing: not Succeeded, not promoted.
    let r = t.wait_release("pay-dev", reason_is("Ready", "Verifying")).await;
    let s = r.status.unwrap();
    assert_eq!(s.current_version, None, "not healthy before the checks pass");
    assert_eq!(s.history[0].result, RolloutResult::Progressing);
    server.wait_for("health/1.0.0", 1).await;
    t.nudge::<Release>("pay-test").await;
    let test = t.api::<Release>().get("pay-test").await.unwrap();
    assert!(
        test.status.as_ref().is_none_or(|s| s.history.is_empty()),
        "promoted before verification passed: {:?}",
        test.status
    );

    // The check passes on a later attempt: Succeeded, then promoted.
    server.answer("health/1.0.0", &[(200, "version=1.0.0")]);
    let r = t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    let s = r.status.unwrap();
    assert_eq!(s.history[0].result, RolloutResult::Succeeded);
    let v = s.verification.unwrap();
    assert_eq!((v.version.as_str(), v.result), ("1.0.0", VerificationResult::Passed));
    assert!(v.checks[0].message.contains("HTTP 200"), "{:?}", v.checks);
    t.wait_release("pay-test", healthy_at("1.0.0")).await;
    let asked = server.received("health/1.0.0").len();

    // 1.1.0 fails its check on every attempt (the Release's own check, named like the
    // Environment's, replaces it): the rollout fails and rolls back; test never gets it.
    let patch = json!({"spec": {"version": "1.1.0", "verify": [check(2)]}});
    t.api::<Release>().patch("pay-dev", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let r = t.wait_release("pay-dev", rolled_back_from("1.1.0", "1.0.0")).await;
    let s = r.status.unwrap();
    let failed = s.history.iter().find(|h| h.version == "1.1.0").unwrap();
    assert_eq!(failed.result, RolloutResult::Failed);
    let says = failed.message.clone().unwrap_or_default();
    // The answer's size, never its words (a check's URL is a tenant's to choose).
    assert!(says.contains("got HTTP 503") && says.contains("body of 20 bytes"), "{says}");
    assert!(!says.contains("database unreachable"), "{says}");
    assert!(says.contains("3 attempts"), "retries: 2 means three attempts: {says}");
    assert_eq!(server.received("health/1.1.0").len(), 3);
    assert_eq!(s.history[0].rollback_of.as_deref(), Some("1.1.0"));
    assert_eq!(server.received("health/1.0.0").len(), asked, "a rollback is not verified again");
    t.nudge::<Release>("pay-test").await;
    let test = t.api::<Release>().get("pay-test").await.unwrap().status.unwrap();
    assert!(test.history.iter().all(|h| h.version != "1.1.0"), "{:?}", test.history);
    assert_eq!(test.current_version.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn job_checks_run_in_the_environment_with_the_version_and_a_failing_one_fails_the_rollout() {
    let t = TestNs::new("verify-job").await;
    let smoke = |behavior: &str| {
        json!([{"name": "smoke", "job": {"template": {
            "metadata": {"annotations": {"sim.tuskfish.dev/behavior": behavior}},
            "spec": {"containers": [{"name": "smoke", "image": "registry.example/pay-smoke:${TUSKFISH_VERSION}"}]}}}}])
    };
    t.environment("qa", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-qa", "pay", "qa", "1.0.0", json!({"rollback": {"auto": true}, "verify": smoke("pass")}))
        .await;
    let r = t.wait_release("pay-qa", healthy_at("1.0.0")).await;
    let s = r.status.unwrap();
    let v = s.verification.clone().unwrap();
    assert_eq!(v.result, VerificationResult::Passed);

    // The Job ran in the Environment's namespace, for this version and environment.
    let jobs = t.api_in::<Job>(&t.env_ns("qa"));
    let listed = jobs.list(&ListParams::default().labels("tuskfish.dev/verify-check=smoke")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let job = &listed.items[0];
    let c = &job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/pay-smoke:1.0.0"));
    let env: Vec<(String, String)> =
        c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
    assert!(env.contains(&("TUSKFISH_VERSION".into(), "1.0.0".into())), "{env:?}");
    assert!(env.contains(&("TUSKFISH_ENVIRONMENT".into(), "qa".into())), "{env:?}");
    // Succeeded only once the Job had completed.
    let completed = job.status.as_ref().and_then(|s| s.completion_time.clone()).expect("completed");
    let finished = s.history[0].finished_at.clone().unwrap();
    assert!(
        finished.0 >= completed.0,
        "Succeeded at {finished:?}, before the Job completed at {completed:?}"
    );

    // 1.1.0 with a check that fails: Failed with the container's own words, rolled back.
    let patch = json!({"spec": {"version": "1.1.0", "verify": smoke("fail")}});
    t.api::<Release>().patch("pay-qa", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let r = t.wait_release("pay-qa", rolled_back_from("1.1.0", "1.0.0")).await;
    let s = r.status.unwrap();
    let failed = s.history.iter().find(|h| h.version == "1.1.0").unwrap();
    let says = failed.message.clone().unwrap_or_default();
    assert!(says.contains("verification failed: smoke: Job smoke-"), "{says}");
    assert!(says.contains("simulated failure"), "the container's termination message: {says}");

    // Deleting the Release deletes its check Jobs.
    t.api::<Release>().delete("pay-qa", &DeleteParams::default()).await.unwrap();
    t.wait_gone::<Release>(&t.ns, "pay-qa").await;
    let left = jobs.list(&ListParams::default().labels("tuskfish.dev/verify-check")).await.unwrap();
    assert!(left.items.iter().all(|j| j.metadata.deletion_timestamp.is_some()), "{:?}", left.items.len());
}
