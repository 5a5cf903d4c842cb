//! `AppVersion`: one immutable, semver-named build of an app.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// One build of an app: a workload shorthand and/or raw manifests, where it came from, and what it
/// contains. Published versions are immutable: once the operator has recorded the spec's hash, a
/// changed spec is flagged and never rolled out.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "AppVersion",
    doc = "One immutable, semver-named build of an app (see spec).",
    namespaced,
    status = "AppVersionStatus",
    shortname = "av",
    category = "tuskfish",
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.app"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Chart","type":"string","priority":1,"jsonPath":".spec.helm.chart"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","priority":1,"jsonPath":".status.chartDigest"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppVersionSpec {
    /// The app this is a build of (a DNS-1123 label, e.g. `payments`).
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub app: String,
    /// Semantic version of the build, e.g. `1.4.0-rc.1`.
    #[schemars(length(min = 5, max = 128))]
    pub version: String,
    /// Shorthand for the common case: one container image run as a Deployment (plus a Service when
    /// ports are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// Raw namespaced Kubernetes objects to apply into the environment's namespace. String values may
    /// use `${VAR}` with the Environment's variables and `TUSKFISH_APP`, `TUSKFISH_VERSION`,
    /// `TUSKFISH_ENVIRONMENT`, `TUSKFISH_NAMESPACE`; write `$${` for a literal `${`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "manifests_schema")]
    pub manifests: Vec<serde_json::Value>,
    /// A Helm chart in an OCI registry or an HTTP(S) chart repository, rendered by Helm into the
    /// environment's namespace. Its digest is recorded at publish; a chart whose content later
    /// differs is never rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmChart>,
    /// Where the build came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The stories and bugs this build contains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// A chart version in a repository, and the values this build renders it with.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelmChart {
    /// `oci://REGISTRY/PATH` (the chart is `PATH/CHART`) or the URL of an HTTP(S) chart repository
    /// (the directory of its `index.yaml`).
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^(oci|https?)://\S+$"))]
    pub repository: String,
    /// The chart's name, e.g. `payments`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"))]
    pub chart: String,
    /// The chart's exact version (SemVer), e.g. `1.3.10`.
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
    /// Values over the chart's own `values.yaml`. The Environment's `helmValues` and then the
    /// Release's go over these; strings may use `${VAR}` as manifests do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "values_schema")]
    pub values: Option<serde_json::Value>,
    /// A Secret in this namespace with `username` and `password` for the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretName>,
    /// Speak plain HTTP to the OCI registry (a registry without TLS, e.g. in a lab).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
}

/// A Secret of the object's own namespace, by name.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
pub struct SecretName {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A single-container workload rendered as a Deployment (and a Service when `ports` is not empty).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Container image, e.g. `registry.example.com/payments:1.3.9`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Pod replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Container ports; each also becomes a Service port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadPort>,
    /// Container environment variables (the Environment's variables are added after these and win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Annotations for the pod template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
}

/// A container port, exposed through the workload's Service.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPort {
    /// Port name (DNS-1123 label, at most 15 characters).
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Port on the Service (default: `containerPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub service_port: Option<i32>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Git metadata of a build.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// A story or bug contained in a build.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Tracker id, e.g. `FIN-1234`.
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// e.g. `story`, `bug`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// What the operator observed of an AppVersion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppVersionStatus {
    /// Hash of the spec when it was first seen; a later spec with another hash is never rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Time>,
    /// `sha256:…` of the packaged chart (`spec.helm`) when it was published: what is rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True (reason `Published`) when the version can be deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The veto already in the audit records (who, when, why), so that it is recorded once, and
    /// its lifting too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_veto: Option<String>,
}

fn manifests_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // Each entry is a whole Kubernetes object: the API server checks apiVersion/kind/metadata, the
    // operator checks the rest (namespaced kind, no foreign namespace) when it renders.
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// Helm values: any object (checked by the chart's own `values.schema.json`, if it has one).
pub(crate) fn values_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
