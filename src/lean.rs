//! What a cache keeps of an object: what the operator reads of it, and nothing else. Every object
//! the watches bring is made lean before it enters its store, so the memory of N Releases is not
//! N times a pod template nobody reads (issue 32's lean caches).
//!
//! The rule, kind by kind, is "keep what is read" (each reader is named), not "drop what looks
//! big": what a reconcile compares whole (a Release's or an Environment's status, an AppVersion's
//! spec, which is hashed) is kept whole. Everywhere: `managedFields`, and annotations other than
//! tuskfish's own (`kubectl apply` keeps a second copy of the whole object in one of them).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use serde_json::Value;

use crate::api::{
    AppVersion, Approval, Environment, Notification, PipelinePolicy, ProductRelease, ProductVersion, Release,
    VersionSource,
};
use crate::fields::trimmed;

/// Made lean before it is cached.
pub trait Lean {
    fn lean(&mut self);
}

const OURS: &str = "tuskfish.dev/";

fn ours_only(map: &mut Option<BTreeMap<String, String>>) {
    if let Some(m) = map.as_mut() {
        m.retain(|k, _| k.starts_with(OURS));
        if m.is_empty() {
            *map = None;
        }
    }
}

/// The metadata every cached object keeps: names, uid, generation, labels, finalizers, deletion,
/// and tuskfish's annotations (the freeze override, a verify request, a veto, a namespace's owner).
fn lean_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    ours_only(&mut meta.annotations);
}

/// An object tuskfish applied: read for its identity labels (whose it is), uid and generation
/// (drift) and its status (health), never for its spec's contents or its owners.
fn lean_applied(meta: &mut ObjectMeta) {
    lean_meta(meta);
    ours_only(&mut meta.labels);
    meta.owner_references = None;
}

macro_rules! lean_meta_only {
    ($($kind:ty),*) => {$(
        impl Lean for $kind {
            fn lean(&mut self) {
                lean_meta(&mut self.metadata);
            }
        }
    )*};
}

impl Lean for Release {
    /// Read whole (spec rendered and hashed, status compared and written back), and of its
    /// `managedFields` who wrote the fields choosing its version (the audit's "applied by").
    fn lean(&mut self) {
        let writers = self.metadata.managed_fields.as_deref().and_then(|m| trimmed(m, &VersionSource::PATHS));
        lean_meta(&mut self.metadata);
        self.metadata.managed_fields = writers;
    }
}

// Read whole (specs rendered and hashed, statuses compared and written back): metadata only.
lean_meta_only!(
    Environment,
    AppVersion,
    Approval,
    Notification,
    PipelinePolicy,
    ProductVersion,
    ProductRelease,
    Secret,
    ConfigMap
);

impl Lean for PartialObjectMeta<Namespace> {
    /// Its owner annotation, deletion and Pod Security label are read (labels are kept).
    fn lean(&mut self) {
        lean_meta(&mut self.metadata);
    }
}

impl Lean for Lease {
    /// An agent's: its label, when it was renewed and for how long. A shard member's: its holder
    /// and since when (its spec is all of that but the transitions: a few Leases, kept whole).
    fn lean(&mut self) {
        lean_meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.lease_transitions = None;
        }
    }
}

impl Lean for Deployment {
    /// Health reads `spec.replicas` and the status; drift reads uid and generation.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.template = Default::default();
        }
    }
}

impl Lean for StatefulSet {
    /// Health reads `spec.replicas` and the status.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.template = Default::default();
            spec.volume_claim_templates = None;
        }
    }
}

impl Lean for DaemonSet {
    /// Health reads the status alone.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        self.spec = None;
    }
}

impl Lean for Job {
    /// Health and verification read `spec.completions` and the status.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.template = Default::default();
        }
    }
}

impl Lean for PersistentVolumeClaim {
    /// Health reads `status.phase`.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        self.spec = None;
    }
}

impl Lean for DynamicObject {
    /// An object of a custom kind: health reads `status.observedGeneration` and
    /// `status.conditions`, nothing of its spec.
    fn lean(&mut self) {
        lean_applied(&mut self.metadata);
        let status = self.data.get("status");
        let kept: serde_json::Map<String, Value> = ["observedGeneration", "conditions"]
            .into_iter()
            .filter_map(|k| status.and_then(|s| s.get(k)).map(|v| (k.to_string(), v.clone())))
            .collect();
        self.data = if kept.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::json!({"status": kept})
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_keeps_what_health_and_drift_read() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "pay", "namespace": "dev", "uid": "u1", "generation": 3,
                "labels": {"tuskfish.dev/release": "pay-dev", "tuskfish.dev/release-namespace": "finance", "app": "pay"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{…}", "tuskfish.dev/owner": "x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "o"}],
                "managedFields": [{"manager": "tuskfish"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "pay"}},
                "template": {"metadata": {"labels": {"app": "pay"}}, "spec": {"containers": [{"name": "c", "image": "pay:1"}]}}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let status = d.status.clone();
        d.lean();
        let m = &d.metadata;
        assert_eq!((m.uid.as_deref(), m.generation), (Some("u1"), Some(3)));
        assert_eq!(m.labels.as_ref().unwrap().len(), 2, "the identity labels stay: {:?}", m.labels);
        assert_eq!(m.annotations.as_ref().unwrap().keys().collect::<Vec<_>>(), ["tuskfish.dev/owner"]);
        assert!(m.owner_references.is_none() && m.managed_fields.is_none());
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert!(spec.template.spec.is_none(), "the pod template is not read");
        assert_eq!(d.status, status);
    }

    #[test]
    fn a_custom_object_keeps_its_readiness_only() {
        let mut o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"tuskfish.dev/release": "r"}},
            "spec": {"huge": "x".repeat(10_000)},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}], "other": 1}
        }))
        .unwrap();
        o.lean();
        assert_eq!(
            o.data,
            json!({"status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}})
        );
        let mut bare: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}),
        )
        .unwrap();
        bare.lean();
        assert_eq!(bare.data, json!({}));
    }

    #[test]
    fn a_release_keeps_its_spec_status_and_tuskfish_annotations() {
        let mut r: Release = serde_json::from_value(json!({
            "apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "pay-dev", "annotations": {"tuskfish.dev/freeze-override": "INC-7", "kubectl.kubernetes.io/last-applied-configuration": "{…}"}},
            "spec": {"app": "pay", "environment": "dev", "version": "1.0.0"},
            "status": {"currentVersion": "1.0.0", "history": [{"version": "1.0.0", "startedAt": "2026-01-01T00:00:00Z", "result": "Succeeded"}]}
        }))
        .unwrap();
        let (spec, status) = (r.spec.clone(), r.status.clone());
        r.lean();
        assert_eq!((r.spec, r.status), (spec, status));
        assert_eq!(
            r.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["tuskfish.dev/freeze-override"]
        );
    }
}
