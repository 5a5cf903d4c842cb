#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Health of what charts bring besides Deployments and StatefulSets, on kwok nodes: a DaemonSet (its
//! pods on every node), a Job (complete), a PersistentVolumeClaim (bound by the controller manager
//! to a PersistentVolume), and a custom kind whose controller reports a kstatus `Ready` condition.
//! A failed Job fails the rollout at once.

mod common;

use common::{TestNs, healthy_at};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::json;
use tuskfish::api::{Phase, Release};

const GROUP: &str = "health.tuskfish.test";

async fn install_widget_crd(t: &TestNs) {
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{GROUP}")},
        "spec": {"group": GROUP, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    crds.patch(&crd.name_any(), &PatchParams::apply("tuskfish-test").force(), &Patch::Apply(&crd))
        .await
        .unwrap();
    let name = crd.name_any();
    kube::runtime::wait::await_condition(crds, &name, kube::runtime::wait::conditions::is_crd_established())
        .await
        .unwrap();
}

#[tokio::test]
async fn daemon_sets_jobs_claims_and_custom_kinds_gate_health() {
    let t = TestNs::new("kinds").await;
    install_widget_crd(&t).await;
    let env_ns = t.env_ns("dev");
    // A volume the claim can bind to (the controller manager's binder pairs them; no provisioner).
    let pv_name = format!("{}-pv", t.ns);
    t.apply(json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "hostPath": {"path": "/tmp/tuskfish-test"},
                 "claimRef": {"namespace": env_ns, "name": "data"}}}))
        .await;
    let pod = json!({"metadata": {"labels": {"app": "agent"}},
        "spec": {"containers": [{"name": "c", "image": "agent:1"}]}});
    let manifests = json!([
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
         "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
             "containers": [{"name": "m", "image": "migrate:1"}]}}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv_name,
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}},
    ]);
    t.environment("dev", json!({})).await;
    t.app_version("kinds", "1.0.0", json!({"workload": null, "manifests": manifests})).await;
    t.release("kinds", "kinds", "dev", "1.0.0", json!({"progressDeadlineSeconds": 120})).await;

    // DaemonSet pods on every node, the Job complete, the claim bound: Healthy. The Widget has no
    // status yet, so it counts as ready once applied.
    t.wait_release("kinds", healthy_at("1.0.0")).await;
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &env_ns, &ar);
    let status = |generation: i64, ready: &str| {
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
            "status": {"observedGeneration": generation, "conditions": [{"type": "Ready", "status": ready, "reason": "Provisioning"}]}})
    };
    let controller = PatchParams::apply("widget-controller").force();
    widgets.patch_status("w", &controller, &Patch::Apply(status(1, "True"))).await.unwrap();

    // 1.0.1 changes the Widget's spec: the Release now waits for the Widget's controller (here: the
    // test) to observe the new generation and to say Ready.
    let mut next = manifests.clone();
    next[3]["spec"]["size"] = json!(2);
    t.app_version("kinds", "1.0.1", json!({"workload": null, "manifests": next})).await;
    t.set_version("kinds", "1.0.1").await;
    let ready_message = |r: &Release| {
        r.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
    };
    let waiting = t
        .wait_for::<Release>("kinds", move |r| {
            ready_message(r)
                .is_some_and(|m| m.contains("Widget w: waiting for its controller to observe the new spec"))
        })
        .await;
    assert_eq!(waiting.status.as_ref().unwrap().phase, Some(Phase::Progressing));
    let generation = widgets.get("w").await.unwrap().metadata.generation.unwrap();
    assert_eq!(generation, 2);
    widgets.patch_status("w", &controller, &Patch::Apply(status(2, "False"))).await.unwrap();
    t.wait_for::<Release>("kinds", move |r| {
        ready_message(r).is_some_and(|m| m.contains("Widget w: not Ready: Provisioning"))
    })
    .await;
    widgets.patch_status("w", &controller, &Patch::Apply(status(2, "True"))).await.unwrap();
    t.wait_release("kinds", healthy_at("1.0.1")).await;

    // A Job that fails fails the rollout at once, well before its deadline.
    let failing = json!([
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate-2"},
         "spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": {"sim.tuskfish.dev/behavior": "fail"}},
             "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:2"}]}}}},
    ]);
    t.app_version("kinds", "1.0.2", json!({"workload": null, "manifests": failing})).await;
    let started = std::time::Instant::now();
    t.set_version("kinds", "1.0.2").await;
    let failed = t
        .wait_for::<Release>("kinds", |r| r.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Degraded)))
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(100), "degraded only at the deadline");
    let ready = failed.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains("Job migrate-2: the Job failed"), "{}", ready.message);
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(t.client.clone());
    let _ = pvs.delete(&pv_name, &Default::default()).await;
}
