//! `PipelinePolicy`: what a cluster admin grants the pipelines of some namespaces — which
//! namespaces their Environments may claim, the Pod Security level those namespaces enforce, and
//! where the operator may connect on their behalf (HTTP checks, notifications, Helm repositories,
//! other clusters' API servers). Cluster-scoped, so only a cluster admin writes one; a pipeline
//! namespace no policy names gets the safe default (see `plan::grants`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PodSecurity;

/// What the pipelines of some namespaces may touch. Several policies naming one pipeline add up
/// (namespaces and egress destinations of all of them; the strictest Pod Security level).
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "PipelinePolicy",
    doc = "What a cluster admin grants the pipelines of some namespaces: the namespaces their Environments may claim, the Pod Security level there, and where the operator may connect for them.",
    shortname = "ppol",
    category = "tuskfish",
    printcolumn = r#"{"name":"Pipelines","type":"string","jsonPath":".spec.pipelines"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"PodSecurity","type":"string","jsonPath":".spec.podSecurity"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PipelinePolicySpec {
    /// The pipeline namespaces this policy governs: names, where `*` stands for any run of
    /// characters (`team-*`).
    #[schemars(length(min = 1, max = 256))]
    pub pipelines: Vec<String>,
    /// The namespaces their Environments may claim (create, or adopt when annotated): names with
    /// `*`, and `{pipeline}` for the pipeline namespace's own name. Without any policy a pipeline
    /// may claim `{pipeline}-*` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub namespaces: Vec<String>,
    /// The least Pod Security level (`pod-security.kubernetes.io/enforce`) their namespaces must
    /// enforce, and the level the namespaces they create get. Default: the operator's
    /// `--pod-security`; a policy can only make it stricter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurity>,
    /// Where the operator may connect for them. Without `allow`, anywhere but loopback,
    /// link-local (cloud metadata), unspecified and multicast addresses, the API server's own
    /// addresses and the operator's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressGrant>,
    /// Which kinds their Releases may apply (as Argo CD's AppProject bounds them). Without any,
    /// every namespaced kind the operator (or the Environment's ServiceAccount) may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<KindGrant>,
    /// Which other clusters their Environments may deploy to. Without any policy granting one, a
    /// pipeline deploys into the operator's own cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterGrant>,
    /// Every Environment of these pipelines must name the ServiceAccount of its namespace it
    /// deploys as (`spec.serviceAccountName`), so that RBAC in the target namespace bounds every
    /// write; one without gets nothing deployed (`ServiceAccountRequired`). The operator's
    /// `--require-service-account` asks it of every pipeline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_service_account: bool,
}

/// The other clusters a pipeline may use (names with `*`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGrant {
    /// Kubeconfig Secrets (in the pipeline namespace) its Environments may name in
    /// `spec.cluster.kubeConfigSecretRef`: the operator connects there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub kube_config_secrets: Vec<String>,
    /// Agents its Environments may name in `spec.cluster.agent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub agents: Vec<String>,
}

/// Kinds a pipeline may apply: those `allow` names (all, when it names none) except those `deny`
/// names.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KindGrant {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub deny: Vec<GroupKind>,
}

/// An API group and kind; `*` stands for any run of characters, `""` is the core group.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    #[serde(default)]
    pub group: String,
    pub kind: String,
}

/// The destinations a pipeline's HTTP checks, notifications, Helm repositories and other
/// clusters' API servers may have.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EgressGrant {
    /// Only these: CIDRs (`10.20.0.0/16`, `127.0.0.1/32`) or host names with `*` for one or more
    /// labels (`hooks.slack.com`, `*.svc.cluster.local`). Checked after DNS: every address a name
    /// resolves to must be allowed. A CIDR is the only way to reach an address that is denied by
    /// default (a name alone never reaches loopback or cloud metadata).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow: Vec<String>,
}

/// What a pattern of a PipelinePolicy (a namespace, a kind, a host) matches: `*` matches any run of characters (none included); everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return false };
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
