use std::collections::BTreeMap;

use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::*;
use crate::api::{AppVersionSpec, EnvironmentSpec, ReleaseSpec, Tier, Workload, WorkloadPort};

/// A catalog with a few built-in kinds, as discovery would report them.
pub(crate) struct StaticCatalog;

impl KindCatalog for StaticCatalog {
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, bool)> {
        let namespaced = match (gvk.group.as_str(), gvk.kind.as_str()) {
            ("", "ConfigMap" | "Service" | "Secret") | ("apps", "Deployment" | "StatefulSet") => true,
            ("", "Namespace") | ("rbac.authorization.k8s.io", "ClusterRole") => false,
            _ => return None,
        };
        let plural = format!("{}s", gvk.kind.to_lowercase());
        Some((ApiResource::from_gvk_with_plural(gvk, &plural), namespaced))
    }
}

pub(crate) fn app_version(workload: Option<Workload>, manifests: Vec<serde_json::Value>) -> AppVersion {
    let mut av = AppVersion::new(
        "payments-1.3.9",
        AppVersionSpec {
            app: "payments".into(),
            version: "1.3.9".into(),
            workload,
            manifests,
            helm: None,
            source: None,
            changes: vec![],
        },
    );
    av.metadata.namespace = Some("finance".into());
    av
}

pub(crate) fn environment(vars: &[(&str, &str)]) -> Environment {
    let mut env = Environment::new(
        "prod",
        EnvironmentSpec {
            namespace: "finance-prod".into(),
            tier: Tier::Prod,
            version_line: None,
            variables: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            approval: None,
            approval_policy: None,
            freeze_windows: vec![],
            allow_windows: vec![],
            verify: vec![],
            helm_values: None,
            service_account_name: None,
            cluster: None,
        },
    );
    env.metadata.namespace = Some("finance".into());
    env
}

pub(crate) fn release() -> Release {
    let mut r = Release::new(
        "payments-prod",
        ReleaseSpec {
            app: "payments".into(),
            environment: "prod".into(),
            version: Some("1.3.9".into()),
            progress_deadline_seconds: Some(60),
            ..Default::default()
        },
    );
    r.metadata.namespace = Some("finance".into());
    r
}

fn workload() -> Workload {
    Workload {
        image: "registry.example/payments:1.3.9".into(),
        replicas: Some(2),
        ports: vec![WorkloadPort { name: "http".into(), container_port: 8080, ..Default::default() }],
        ..Default::default()
    }
}

#[test]
fn workload_renders_deployment_and_service_with_protocols_and_labels() {
    let r = render(
        &app_version(Some(workload()), vec![]),
        &environment(&[("DB", "prod-db")]),
        &release(),
        &[],
        &StaticCatalog,
    )
    .unwrap();
    assert_eq!(r.namespace, "finance-prod");
    let kinds: Vec<_> = r.objects.iter().map(|o| o.resource.kind.as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    let d = &r.objects[0].body;
    assert_eq!(d["metadata"]["namespace"], "finance-prod");
    assert_eq!(d["metadata"]["labels"]["tuskfish.dev/release"], "payments-prod");
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 60);
    assert_eq!(d["spec"]["selector"]["matchLabels"].as_object().unwrap().len(), 2);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    let env: BTreeMap<_, _> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["DB"], "prod-db");
    assert_eq!(env["TUSKFISH_VERSION"], "1.3.9");
    assert_eq!(r.objects[1].body["spec"]["ports"][0]["protocol"], "TCP");
}

#[test]
fn hash_is_stable_and_tracks_changes() {
    let av = app_version(Some(workload()), vec![]);
    let a = render(&av, &environment(&[]), &release(), &[], &StaticCatalog).unwrap();
    let b = render(&av, &environment(&[]), &release(), &[], &StaticCatalog).unwrap();
    assert_eq!(a.hash, b.hash);
    let c = render(&av, &environment(&[("X", "1")]), &release(), &[], &StaticCatalog).unwrap();
    assert_ne!(a.hash, c.hash);
}

#[test]
fn manifests_are_namespaced_labelled_and_substituted() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "resourceVersion": "12", "labels": {"team": "fin"}},
        "data": {"url": "https://${HOST}/v${TUSKFISH_VERSION}", "lit": "$${HOST}"}});
    let r = render(
        &app_version(None, vec![cm]),
        &environment(&[("HOST", "pay.example")]),
        &release(),
        &[],
        &StaticCatalog,
    )
    .unwrap();
    let o = &r.objects[0].body;
    assert_eq!(o["metadata"]["namespace"], "finance-prod");
    assert_eq!(o["metadata"]["labels"]["team"], "fin");
    assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "tuskfish");
    assert!(o["metadata"].get("resourceVersion").is_none());
    assert_eq!(o["data"]["url"], "https://pay.example/v1.3.9");
    assert_eq!(o["data"]["lit"], "${HOST}");
}

#[test]
fn manifest_ports_get_default_protocol() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
    let r =
        render(&app_version(None, vec![svc]), &environment(&[]), &release(), &[], &StaticCatalog).unwrap();
    assert_eq!(r.objects[0].body["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(r.objects[0].body["spec"]["ports"][1]["protocol"], "UDP");
}

#[test]
fn bad_inputs_give_stable_reasons() {
    let cases: Vec<(Option<Workload>, Vec<serde_json::Value>, &str)> = vec![
        (None, vec![], "NothingToDeploy"),
        (None, vec![json!("a string")], "InvalidManifest"),
        (None, vec![json!({"kind": "ConfigMap", "metadata": {"name": "x"}})], "InvalidManifest"),
        (None, vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})], "InvalidManifest"),
        (
            None,
            vec![json!({"apiVersion": "a/b/c", "kind": "ConfigMap", "metadata": {"name": "x"}})],
            "InvalidManifest",
        ),
        (
            None,
            vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})],
            "ClusterScopedManifest",
        ),
        (
            None,
            vec![
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}}),
            ],
            "ClusterScopedManifest",
        ),
        (
            None,
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}),
            ],
            "ForeignNamespace",
        ),
        (
            None,
            vec![json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}})],
            "UnknownKind",
        ),
        (
            None,
            vec![
                json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "x"}}),
            ],
            "ForbiddenKind",
        ),
        (
            None,
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "${NOPE}"}}),
            ],
            "UnknownVariable",
        ),
        (
            Some(workload()),
            vec![json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "payments"}})],
            "DuplicateObject",
        ),
    ];
    for (w, m, reason) in cases {
        let err = render(&app_version(w, m.clone()), &environment(&[]), &release(), &[], &StaticCatalog)
            .unwrap_err();
        assert_eq!(err.reason(), reason, "manifests {m:?}: {err}");
    }
    let mut long = release();
    long.metadata.name = Some("r".repeat(64));
    let err = render(&app_version(Some(workload()), vec![]), &environment(&[]), &long, &[], &StaticCatalog)
        .unwrap_err();
    assert_eq!(err.reason(), "NameTooLong");
}

#[test]
fn names_and_namespaces_are_judged_after_substitution() {
    let cm = |meta: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta});
    let env = environment(&[("OTHER", "kube-system"), ("SLASH", "a/b"), ("Q", "x?dryRun=All")]);
    let ok = render(
        &app_version(
            None,
            vec![cm(json!({"name": "${TUSKFISH_APP}-cfg", "namespace": "${TUSKFISH_NAMESPACE}"}))],
        ),
        &env,
        &release(),
        &[],
        &StaticCatalog,
    )
    .unwrap();
    assert_eq!(ok.objects[0].name, "payments-cfg", "the name sent in the URL is the one in the body");
    assert_eq!(ok.objects[0].body["metadata"]["name"], "payments-cfg");
    let cases = [
        (json!({"name": "x", "namespace": "${OTHER}"}), "ForeignNamespace"),
        (json!({"name": "${SLASH}"}), "InvalidManifest"),
        (json!({"name": "${Q}"}), "InvalidManifest"),
        (json!({"name": "a b"}), "InvalidManifest"),
        (json!({"name": "a#b"}), "InvalidManifest"),
        (json!({"name": ".."}), "InvalidManifest"),
        (json!({"name": "${NOPE}"}), "UnknownVariable"),
    ];
    for (meta, reason) in cases {
        let err = render(&app_version(None, vec![cm(meta.clone())]), &env, &release(), &[], &StaticCatalog)
            .unwrap_err();
        assert_eq!(err.reason(), reason, "{meta}: {err}");
    }
}

#[test]
fn api_versions_that_cannot_be_discovered_are_invalid_manifests() {
    for api_version in
        ["foo bar/v1", "a?b/v1", "../v1", "v1 ", "V1", "apps/", "/", "example.com/v1?x", "ex..com/v1"]
    {
        let m = json!({"apiVersion": api_version, "kind": "ConfigMap", "metadata": {"name": "x"}});
        let av = app_version(None, vec![m]);
        assert!(required_kinds(&av, &[]).is_empty(), "{api_version:?} must not be looked up");
        let err = render(&av, &environment(&[]), &release(), &[], &StaticCatalog).unwrap_err();
        assert_eq!(err.reason(), "InvalidManifest", "{api_version:?}: {err}");
    }
}

#[test]
fn the_inventory_is_bounded() {
    let cms = |n: usize| -> Vec<serde_json::Value> {
        (0..n).map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:04}")}})).collect()
    };
    let ok =
        render(&app_version(None, cms(150)), &environment(&[]), &release(), &[], &StaticCatalog).unwrap();
    assert_eq!(ok.objects.len(), 150);
    let err = render(&app_version(None, cms(1000)), &environment(&[]), &release(), &[], &StaticCatalog)
        .unwrap_err();
    assert_eq!(err.reason(), "TooManyObjects", "{err}");
    // The estimate is an upper bound of what the inventory serializes to.
    let entry = crate::api::InventoryEntry {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "cm-0001".into(),
        generation: Some(i64::MIN),
        uid: Some("0".repeat(36)),
    };
    let size = serde_json::to_string(&entry).unwrap().len() + 1;
    assert!(size <= "v1ConfigMapcm-0001".len() + INVENTORY_ENTRY_OVERHEAD, "{size}");
}

#[test]
fn build_metadata_is_label_safe() {
    assert_eq!(version_label("1.4.0+build.7"), "1.4.0_build.7");
}

#[test]
fn checks_see_the_variables_manifests_see() {
    let env = environment(&[("DB_HOST", "db.prod"), ("TUSKFISH_VERSION", "typed")]);
    let vars = variables_for(&env, &release(), "payments", "1.3.10");
    assert_eq!(vars["DB_HOST"], "db.prod");
    assert_eq!(vars["TUSKFISH_APP"], "payments");
    assert_eq!(vars["TUSKFISH_ENVIRONMENT"], "prod");
    assert_eq!(vars["TUSKFISH_NAMESPACE"], "finance-prod");
    // The Environment's own value wins, as it does in manifests.
    assert_eq!(vars["TUSKFISH_VERSION"], "typed");
}
