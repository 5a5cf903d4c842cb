#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The Helm chart: it lints, installs into the local control plane with real Helm (the Helm v4 SDK),
//! and the operator then works with exactly the chart's RBAC: it runs with the chart's
//! ServiceAccount token through a whole pipeline (namespace creation, apply, prune, status, Events,
//! finalizer cleanup, leader Lease). A permission the chart lacks shows up as a `forbidden` in the
//! operator's log or as a step that never happens, and fails this test.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Proc, TestNs, healthy_at};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tuskfish::api::Release;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn helm(args: &[&str]) -> std::process::Output {
    let python = std::env::var("TUSKFISH_HELM_PYTHON")
        .expect("TUSKFISH_HELM_PYTHON is not set: run `make test`, which installs the Helm SDK");
    Command::new(python).arg(root().join("hack/helm.py")).args(args).output().unwrap()
}

#[test]
fn chart_lints_strictly_and_renders_per_namespace_bindings() {
    let lint = helm(&["lint", "charts/tuskfish"]);
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stderr));
    let out = helm(&[
        "template",
        "charts/tuskfish",
        "tf",
        "ops",
        r#"{"rbac": {"targetNamespaces": ["pay-dev", "pay-prod"]}}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let kinds: Vec<(String, String)> = docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let apply_bindings: Vec<&str> = kinds
        .iter()
        .filter(|(k, ns)| k == "RoleBinding" && ns.starts_with("pay-"))
        .map(|(_, ns)| ns.as_str())
        .collect();
    assert_eq!(apply_bindings, ["pay-dev", "pay-prod"], "{kinds:?}");
    let cluster_bindings = kinds.iter().filter(|(k, _)| k == "ClusterRoleBinding").count();
    assert_eq!(cluster_bindings, 1, "only the read/status binding is cluster-wide: {kinds:?}");
    // No rule grants everything.
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        for rule in d["rules"].as_array().unwrap() {
            assert_ne!(rule["resources"], json!(["*"]), "{rule}");
            assert_ne!(rule["verbs"], json!(["*"]), "{rule}");
        }
    }
}

#[tokio::test]
async fn operator_runs_with_exactly_the_charts_rbac() {
    // One after the other: a cluster-wide operator running meanwhile would touch the Release that
    // the namespaced one must leave alone.
    // `watchNamespace`: the tuskfish kinds are reachable through a Role in that namespace only.
    pipeline_with_chart_rbac(true).await;
    // The default: everything cluster-wide.
    pipeline_with_chart_rbac(false).await;
}

async fn pipeline_with_chart_rbac(one_namespace: bool) {
    let t = TestNs::without_operator(if one_namespace { "chart-ns" } else { "chart" }).await;
    let admin = t.client.clone();
    let op_ns = format!("{}-op", t.ns);
    let kubeconfig = common::kubeconfig();

    // On a fresh cluster the chart installs the CRDs; where they exist (applied by another field
    // manager, e.g. an earlier test run) Helm's server-side apply of them would conflict.
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds_exist = Api::<CustomResourceDefinition>::all(admin.clone())
        .get_opt("releases.tuskfish.dev")
        .await
        .unwrap()
        .is_some();
    let values = if one_namespace { json!({"watchNamespace": t.ns}) } else { json!({}) }.to_string();
    let mut args = vec!["install", "charts/tuskfish", "tuskfish", &op_ns, &kubeconfig, &values];
    if crds_exist {
        args.push("--skip-crds");
    }
    let install = helm(&args);
    assert!(install.status.success(), "helm install: {}", String::from_utf8_lossy(&install.stderr));

    // The chart's ServiceAccount, as the operator's pod would run it.
    let sa_kubeconfig = common::service_account_kubeconfig(&admin, &op_ns, "tuskfish").await;

    let log_path = std::env::temp_dir().join(format!("{op_ns}-operator.log"));
    let port = common::free_port();
    // Outside the watched namespace (one_namespace only): must stay untouched.
    let elsewhere = TestNs::without_operator("chart-elsewhere").await;
    if one_namespace {
        elsewhere
            .apply(
                json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": "x"},
            "spec": {"app": "x", "environment": "dev", "version": "1.0.0"}}),
            )
            .await;
    }
    let mut operator = Command::new(env!("CARGO_BIN_EXE_tuskfish"));
    operator
        .args(["--kubeconfig", sa_kubeconfig.to_str().unwrap(), "run", "--lease-namespace", &op_ns])
        .args(["--lease-name", "tuskfish", "--metrics-addr", &format!("127.0.0.1:{port}")]);
    if one_namespace {
        operator.args(["--watch-namespace", &t.ns]);
    }
    // The chart's identity default: every write as the tuskfish-deployer of the namespace.
    operator.args([
        "--require-service-account",
        "--deployer-cluster-role",
        &format!("tuskfish-{op_ns}-apply"),
    ]);
    let _operator = Proc(
        operator
            .env("POD_NAME", "tuskfish-test-pod")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    // A whole pipeline: namespace creation, approval, apply, prune, drift-free status, Events.
    t.environment("dev", json!({"approval": "required"})).await;
    let settings = json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pay-settings"}, "data": {"env": "${TUSKFISH_ENVIRONMENT}"}}]});
    t.app_version("pay", "1.0.0", settings).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.approve("pay-dev", "1.0.0", "alice").await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    let env_ns = t.env_ns("dev");
    let cm = Api::<ConfigMap>::namespaced(admin.clone(), &env_ns).get("pay-settings").await.unwrap();
    assert_eq!(cm.data.unwrap()["env"], "dev");
    // Deployed as the deployer the operator made there, bound to the chart's apply role.
    let binding = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &env_ns)
        .get("tuskfish-deployer")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, format!("tuskfish-{op_ns}-apply"));

    t.set_version("pay-dev", "1.1.0").await;
    t.approve("pay-dev", "1.1.0", "alice").await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.wait_gone::<ConfigMap>(&env_ns, "pay-settings").await;

    let events = t.api::<Event>().list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("RolloutComplete")),
        "Events are recorded"
    );
    let lease = Api::<Lease>::namespaced(admin.clone(), &op_ns).get("tuskfish").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("tuskfish-test-pod"));

    // The finalizer removes what the Release applied.
    t.api::<Release>().delete("pay-dev", &DeleteParams::default()).await.unwrap();
    t.wait_gone::<Deployment>(&env_ns, "pay").await;
    t.wait_gone::<Release>(&t.ns.clone(), "pay-dev").await;

    if one_namespace {
        let untouched = elsewhere.api::<Release>().get("x").await.unwrap();
        assert!(untouched.status.is_none() && untouched.metadata.finalizers.is_none(), "{untouched:?}");
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    let denied: Vec<&str> = log.lines().filter(|l| l.to_lowercase().contains("forbidden")).collect();
    assert!(denied.is_empty(), "the chart's RBAC refused something:\n{}", denied.join("\n"));
    cleanup(&admin, &op_ns).await;
}

/// Cluster-scoped RBAC objects outlive the namespace; remove them so repeated runs stay tidy.
async fn cleanup(admin: &Client, op_ns: &str) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let name = format!("tuskfish-{op_ns}");
    for n in [name.clone(), format!("{name}-apply")] {
        let _ = Api::<ClusterRoleBinding>::all(admin.clone()).delete(&n, &DeleteParams::default()).await;
        let _ = Api::<ClusterRole>::all(admin.clone()).delete(&n, &DeleteParams::default()).await;
    }
}

/// The chart rendered by `helm template` (release `tf` in namespace `ops`) with `values` (JSON).
fn render(values: &str) -> Vec<Value> {
    let out = helm(&["template", "charts/tuskfish", "tf", "ops", values]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn chart_webhook_is_optional_and_self_contained() {
    let off = render("{}");
    assert!(!off.iter().any(|d| d["kind"] == "ValidatingWebhookConfiguration"), "off by default");

    let on = render(r#"{"webhook": {"enabled": true, "strict": true}}"#);
    let find = |kind: &str| on.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    let config = find("ValidatingWebhookConfiguration");
    let hook = &config["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["service"],
        json!({"name": "tf-webhook", "namespace": "ops", "path": "/validate"})
    );
    assert_eq!(hook["failurePolicy"], "Ignore");
    let secret = find("Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(
        hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
        "the caBundle is the CA that signed the certificate"
    );
    let args = find("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    for a in ["--webhook-addr=0.0.0.0:9443", "--webhook-cert-dir=/etc/tuskfish/webhook", "--webhook-strict"] {
        assert!(args.as_array().unwrap().iter().any(|x| x == a), "{a} not in {args}");
    }
}

#[test]
fn chart_web_view_is_off_by_default_and_loopback_only() {
    let args = |values: &str| -> Vec<String> {
        let docs = render(values);
        let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        serde_json::from_value(deploy["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    assert!(!args("{}").iter().any(|a| a.starts_with("--web-addr")), "off by default");
    let on = args(r#"{"web": {"enabled": true, "port": 9000}}"#);
    assert!(on.contains(&"--web-addr=127.0.0.1:9000".to_string()), "{on:?}");
}

#[test]
fn chart_shards_pass_the_flag_and_refuse_what_cannot_go_with_them() {
    let args = |docs: &[Value]| -> Vec<String> {
        let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        serde_json::from_value(deploy["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    assert!(!args(&render("{}")).iter().any(|a| a.starts_with("--shards")), "off by default");
    let on = render(r#"{"shards": 3, "replicas": 3}"#);
    assert!(args(&on).contains(&"--shards=3".to_string()), "{:?}", args(&on));
    // Shards follow each other's Leases.
    let role = on.iter().find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "tf-leader").unwrap();
    let verbs = &role["rules"][0]["verbs"];
    assert!(
        ["list", "watch", "delete"].iter().all(|v| verbs.as_array().unwrap().iter().any(|x| x == v)),
        "{verbs}"
    );
    let refused =
        helm(&["template", "charts/tuskfish", "tf", "ops", r#"{"shards": 3, "web": {"enabled": true}}"#]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tuskfish web"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
