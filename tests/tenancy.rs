#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! An identity per Environment (`spec.serviceAccountName`): the operator impersonates that
//! ServiceAccount of the target namespace for every apply, prune and read there, so what a pipeline
//! may deploy is what RBAC grants it. An AppVersion whose manifests would grant `admin` to an
//! arbitrary user is refused (`Forbidden`, naming the object and the verb) instead of applied with
//! the operator's own rights; Releases of other pipelines are undisturbed.

mod common;

use common::{TestNs, healthy_at};
use k8s_openapi::api::rbac::v1::RoleBinding;
use serde_json::json;
use tuskfish::api::Release;

#[tokio::test]
async fn a_pipeline_deploys_only_what_its_service_account_may() {
    let t = TestNs::new("tenancy").await;
    let other = TestNs::new("tenancy-other").await;
    t.environment("dev", json!({"serviceAccountName": "deployer"})).await;
    let dev = t.env_ns("dev");
    let workloads = [("apps", "deployments"), ("", "services"), ("", "configmaps")];
    t.deployer(&dev, &workloads).await;
    // Another pipeline, with no identity of its own, deploys meanwhile.
    other.environment("dev", json!({})).await;
    other.app_version("ledger", "1.0.0", json!({})).await;
    other.release("ledger-dev", "ledger", "dev", "1.0.0", json!({})).await;

    // What the ServiceAccount may create is deployed.
    let settings = json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pay-settings"}, "data": {"a": "1"}}]);
    t.app_version("pay", "1.0.0", json!({"manifests": settings})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // A RoleBinding granting admin to anyone who asks is refused by RBAC, as the ServiceAccount.
    let grab = json!([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "grab-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]}]);
    t.app_version("pay", "1.1.0", json!({"manifests": grab})).await;
    t.set_version("pay-dev", "1.1.0").await;
    let refused = t
        .wait_for::<Release>("pay-dev", |r| {
            r.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "Forbidden"))
        })
        .await;
    let status = refused.status.unwrap();
    let message = &status.conditions.iter().find(|c| c.reason == "Forbidden").unwrap().message;
    for words in
        ["RoleBinding", "grab-admin", &format!("system:serviceaccount:{dev}:deployer"), "rolebindings"]
    {
        assert!(message.contains(words), "{words:?} not in {message}");
    }
    assert!(message.contains("cannot get") || message.contains("cannot patch"), "{message}");
    let bindings: kube::Api<RoleBinding> = t.api_in(&dev);
    assert!(bindings.get_opt("grab-admin").await.unwrap().is_none(), "the RoleBinding was created");
    // What ran keeps running.
    assert_eq!(status.current_version.as_deref(), Some("1.0.0"));

    // The other pipeline is undisturbed.
    other.wait_release("ledger-dev", healthy_at("1.0.0")).await;
}
