#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Approver identity, enforced by the API server: an Approval is accepted only from the user it
//! names (the `tuskfish-approval-identity` ValidatingAdmissionPolicy), whoever that user is —
//! a ServiceAccount token, a user `kubectl --as` impersonates, the CLI's own user — and the
//! Release's history names the verified user. An Approval cannot be rewritten afterwards.

mod common;

use common::{TestNs, healthy_at, kubeconfig};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tuskfish::api::Approval;

/// The prod pipeline of one test: an Environment that requires approval, one AppVersion, and a
/// Release waiting for an Approval of it.
async fn awaiting_approval(name: &str) -> TestNs {
    let t = TestNs::new(name).await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.wait_release("pay-prod", |s| {
        tuskfish::api::find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "AwaitingApproval")
    })
    .await;
    t
}

/// Lets `subject` (an RBAC subject) approve in the test namespace and read the pipeline, as a
/// release manager's Role would.
async fn may_approve(t: &TestNs, subjects: &[Value]) {
    t.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "release-manager"},
        "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["approvals"], "verbs": ["create", "patch", "get", "list", "watch"]},
                  {"apiGroups": ["tuskfish.dev"], "resources": ["environments", "appversions", "releases"],
                   "verbs": ["get", "list", "watch"]}]}))
    .await;
    t.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "release-managers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "release-manager"},
        "subjects": subjects}))
        .await;
    for subject in subjects {
        let user = match subject["kind"].as_str() {
            Some("ServiceAccount") => {
                format!("system:serviceaccount:{}:{}", t.ns, subject["name"].as_str().unwrap())
            }
            _ => subject["name"].as_str().unwrap().to_string(),
        };
        for verb in ["get", "patch", "create"] {
            common::wait_allowed(&t.client, &user, &[], verb, "approvals", &t.ns).await;
        }
        common::wait_allowed(&t.client, &user, &[], "list", "releases", &t.ns).await;
    }
}

fn approval(approver: &str) -> Approval {
    serde_json::from_value(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": "pay-prod-1.0.0"},
        "spec": {"release": "pay-prod", "version": "1.0.0", "approver": approver, "reason": "CAB-7"}}))
    .unwrap()
}

/// The API server's words for a refused request.
fn refusal(r: Result<Approval, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(e)) => {
            assert!(e.code == 403 || e.code == 422, "refused as invalid or forbidden: {e:?}");
            e.message
        }
        other => panic!("the API server accepted it: {other:?}"),
    }
}

async fn history_note(t: &TestNs) -> String {
    let rel = t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    rel.status.unwrap().history[0].message.clone().unwrap_or_default()
}

#[tokio::test]
async fn a_token_user_cannot_approve_in_another_name_and_history_names_the_real_one() {
    let t = awaiting_approval("id-token").await;
    t.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "maria"}})).unwrap(),
        )
        .await
        .unwrap();
    may_approve(&t, &[json!({"kind": "ServiceAccount", "name": "maria", "namespace": t.ns})]).await;
    let kc = common::service_account_kubeconfig(&t.client, &t.ns, "maria").await;
    let maria = tuskfish::client::Target::kubeconfig(&kc)
        .client(&tuskfish::telemetry::RequestCounter::default())
        .await
        .unwrap();
    let as_maria = kube::Api::<Approval>::namespaced(maria, &t.ns);
    let me = format!("system:serviceaccount:{}:maria", t.ns);

    for other in ["the.cfo", "admin", ""] {
        let words = refusal(as_maria.create(&PostParams::default(), &approval(other)).await);
        assert!(words.contains("spec.approver must be the user who creates the Approval"), "{words}");
        assert!(words.contains(&me), "the refusal names who is asking: {words}");
    }
    let mut unnamed = approval("x");
    unnamed.spec.approver = None;
    refusal(as_maria.create(&PostParams::default(), &unnamed).await);
    let approvals = t.api::<Approval>().list(&Default::default()).await.unwrap();
    assert!(approvals.items.is_empty(), "a refused Approval is not stored: {approvals:?}");

    as_maria.create(&PostParams::default(), &approval(&me)).await.unwrap();
    let note = history_note(&t).await;
    assert!(note.starts_with(&format!("approved by {me} at ")), "{note}");

    // Nobody rewrites it afterwards, not even a cluster admin.
    let patch = json!({"spec": {"approver": "the.cfo"}});
    let words = refusal(
        t.api::<Approval>().patch("pay-prod-1.0.0", &PatchParams::default(), &Patch::Merge(&patch)).await,
    );
    assert!(words.contains("an Approval cannot be changed"), "{words}");
}

#[tokio::test]
async fn kubectl_as_another_user_is_refused_and_as_herself_accepted() {
    let t = awaiting_approval("id-kubectl").await;
    let user = |name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name});
    may_approve(&t, &[user("maria.keller"), user("mallory")]).await;
    let manifest = serde_json::to_string(&approval("maria.keller")).unwrap();
    let kubectl = |user: &str| {
        let mut c = std::process::Command::new("kubectl");
        c.args(["--kubeconfig", &kubeconfig(), "--as", user, "-n", &t.ns, "apply", "-f", "-"]);
        c
    };
    let out = common::run_with_stdin(kubectl("mallory"), &manifest).await;
    assert!(!out.status.success(), "mallory approved in maria's name");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.approver must be the user who creates the Approval (mallory)"),
        "kubectl shows the policy's words: {stderr}"
    );
    let out = common::run_with_stdin(kubectl("maria.keller"), &manifest).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let note = history_note(&t).await;
    assert!(note.starts_with("approved by maria.keller at ") && note.ends_with(": CAB-7"), "{note}");
}

#[tokio::test]
async fn tuskfish_approve_names_the_user_the_api_server_authenticated() {
    let t = awaiting_approval("id-cli").await;
    t.api::<ServiceAccount>()
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "rm"}})).unwrap())
        .await
        .unwrap();
    may_approve(&t, &[json!({"kind": "ServiceAccount", "name": "rm", "namespace": t.ns})]).await;
    let kc = common::service_account_kubeconfig(&t.client, &t.ns, "rm").await;
    let me = format!("system:serviceaccount:{}:rm", t.ns);
    let tuskfish = |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"));
        c.args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-n",
            &t.ns,
            "approve",
            "pay",
            "1.0.0",
            "--env",
            "prod",
        ])
        .args(extra)
        .env("NO_COLOR", "1");
        c
    };
    let out = common::run_with_stdin(tuskfish(&["--approver", "the.cfo"]), "").await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("you are \"{me}\"")), "{out:?}");
    let out = common::run_with_stdin(tuskfish(&["--reason", "CAB-8"]), "").await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("approver {me}")), "{out:?}");
    let note = history_note(&t).await;
    assert!(note.starts_with(&format!("approved by {me} at ")), "{note}");
}
