#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Argo CD's view of our kinds: the health scripts in `integrations/argocd/` run (Lua 5.1, as Argo
//! CD's interpreter speaks) against the statuses the operator really writes on a real API server.

mod common;

use common::{TestNs, healthy_at};
use kube::core::DynamicObject;
use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt};
use serde_json::{Value, json};
use tuskfish::api::{AppVersion, Phase, Release};

fn script(kind: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd");
    std::fs::read_to_string(dir.join(format!("{}.lua", kind.to_lowercase()))).unwrap()
}

/// `(status, message)` as Argo CD would show the object.
fn health(kind: &str, obj: &impl serde::Serialize) -> (String, String) {
    let lua = Lua::new();
    let options = SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false);
    let value = lua.to_value_with(&serde_json::to_value(obj).unwrap(), options).unwrap();
    lua.globals().set("obj", value).unwrap();
    let hs: mlua::Table = lua.load(format!("return (function()\n{}\nend)()", script(kind))).eval().unwrap();
    (hs.get::<String>("status").unwrap(), hs.get::<Option<String>>("message").unwrap().unwrap_or_default())
}

#[test]
fn the_config_map_carries_exactly_the_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd");
    let cm: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    for kind in ["Release", "Environment", "AppVersion"] {
        let key = format!("resource.customizations.health.tuskfish.dev_{kind}");
        assert_eq!(
            cm["data"][&key].as_str(),
            Some(script(kind).as_str()),
            "{key} differs from the .lua file"
        );
    }
}

#[tokio::test]
async fn argo_cd_reads_the_statuses_the_operator_writes() {
    let t = TestNs::new("argocd").await;
    let dev = t.environment("dev", json!({})).await;
    assert_eq!(health("Environment", &dev).0, "Healthy");
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    let good = t.app_version("pay", "1.0.0", json!({})).await;
    assert_eq!(health("AppVersion", &good).0, "Healthy");
    t.app_version("pay", "1.1.0", json!({"workload": {"image": "registry.example/pay:never-ready"}})).await;
    // A second AppVersion claiming a version is never deployable.
    t.app_version("ledger", "2.0.0", json!({})).await;
    let again = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion", "metadata": {"name": "ledger-again"},
        "spec": {"app": "ledger", "version": "2.0.0", "workload": {"image": "registry.example/ledger:other"}}});
    t.apply(again).await;
    let dup = t
        .wait_for::<AppVersion>("ledger-again", |a| {
            a.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
        })
        .await;
    assert_eq!(health("AppVersion", &dup).0, "Degraded", "{:?}", dup.status);

    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.environment("qa", json!({})).await;
    t.release("pay-broken", "pay", "qa", "1.1.0", json!({"progressDeadlineSeconds": 2})).await;
    let healthy = t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    assert_eq!(health("Release", &healthy), ("Healthy".into(), "runs 1.0.0".into()));
    let waiting = t
        .wait_for::<Release>("pay-prod", |r| {
            r.status.as_ref().is_some_and(|s| {
                tuskfish::api::find_condition(&s.conditions, "Ready")
                    .is_some_and(|c| c.reason == "AwaitingApproval")
            })
        })
        .await;
    let (status, message) = health("Release", &waiting);
    assert_eq!(status, "Suspended", "{message}");
    assert!(message.contains("Approval"), "{message}");
    // A version that never becomes ready: past its deadline, Argo CD shows it Degraded.
    let broken = t
        .wait_for::<Release>("pay-broken", |r| {
            r.status.as_ref().is_some_and(|s| matches!(s.phase, Some(Phase::Degraded | Phase::Failed)))
        })
        .await;
    assert_eq!(health("Release", &broken).0, "Degraded", "{:?}", broken.status);

    // Not yet observed: Progressing, whatever the old status says.
    let mut stale: Value = serde_json::to_value(&healthy).unwrap();
    stale["metadata"]["generation"] = json!(stale["metadata"]["generation"].as_i64().unwrap() + 1);
    assert_eq!(health("Release", &stale).0, "Progressing");
    let created: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": "new", "generation": 1}, "spec": {}}))
        .unwrap();
    assert_eq!(health("Environment", &created).0, "Progressing");
}
