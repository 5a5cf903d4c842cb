//! `Environment`: a target namespace with a tier, a version line and per-environment settings.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A place apps are deployed to. The operator creates `spec.namespace` and marks it as owned by this
/// Environment; a namespace that already belongs to something else is refused.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "Environment",
    doc = "A target namespace with a tier, a version line and per-environment settings.",
    namespaced,
    status = "EnvironmentStatus",
    shortname = "env",
    category = "tuskfish",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.namespace"}"#,
    printcolumn = r#"{"name":"Tier","type":"string","jsonPath":".spec.tier"}"#,
    printcolumn = r#"{"name":"Line","type":"string","jsonPath":".spec.versionLine"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".status.cluster"}"#,
    printcolumn = r#"{"name":"Identity","type":"string","priority":1,"jsonPath":".spec.serviceAccountName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Releases","type":"integer","jsonPath":".status.releases"}"#,
    printcolumn = r#"{"name":"Healthy","type":"integer","jsonPath":".status.healthyReleases"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Target namespace the apps of this environment run in (created if missing).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// Where the environment stands in the pipeline.
    pub tier: Tier,
    /// Semver range of versions that belong here, e.g. `~1.3` or `>=1.4.0-0, <1.5.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_line: Option<String>,
    /// Per-environment settings: injected as container env vars into workloads and available as
    /// `${NAME}` in manifests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// `required`: a new version waits until an Approval for that Release and version exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// Who must approve, and how many (implies `approval: required`): a quorum of distinct
    /// approvers, who may approve, a list of people who must all countersign, and how long an
    /// approval counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalRules>,
    /// No new rollouts during these windows (rollbacks still go ahead). A Release annotated
    /// `tuskfish.dev/freeze-override: <reason>` deploys anyway, and the reason is recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze_windows: Vec<FreezeWindow>,
    /// When set, new versions roll out only inside one of these windows (a release window);
    /// outside they wait (`OutsideAllowWindow`) and roll out when the next one opens. Rollbacks
    /// and a `tuskfish.dev/freeze-override` go ahead anyway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_windows: Vec<AllowWindow>,
    /// Checks every rollout here must pass once healthy before it counts as `Succeeded` (and
    /// before anything promotes the version); a failed check fails the rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<super::Check>,
    /// Helm values for every chart deployed here, over each AppVersion's `spec.helm.values` (and
    /// under a Release's `helmValues`); strings may use `${VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::appversion::values_schema")]
    pub helm_values: Option<serde_json::Value>,
    /// Deploy as this ServiceAccount of `namespace`: every apply, prune and read of the apps here
    /// impersonates it, so what may be deployed is what RBAC grants it there (not the operator's
    /// own rights). A refusal is a `Forbidden` condition naming the object and the verb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account_name: Option<String>,
    /// The cluster the apps of this environment run in (default: the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
}

/// Another cluster: reached by the operator with a kubeconfig kept in a Secret of the pipeline
/// namespace (push), or served by a `tuskfish agent` running in it (pull). Exactly one of the two.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// What the cluster is called in `kubectl get environments`, `tuskfish status` and the web
    /// view (default: the Secret's or the agent's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// The Secret (in this Environment's namespace) and its key holding a kubeconfig for the
    /// cluster. Credentials and certificates must be inline (token, client certificate data):
    /// a kubeconfig that runs a command or reads a file is refused. A changed Secret is used at
    /// once, without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config_secret_ref: Option<KubeconfigSecretRef>,
    /// The name of the `tuskfish agent --name NAME` that serves this Environment from inside its
    /// cluster: it reads this pipeline from here and writes the Releases' status back; the
    /// operator here holds no credentials for that cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub agent: Option<String>,
}

/// A key of a Secret in the Environment's namespace that holds a kubeconfig.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigSecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret's data (default `kubeconfig`).
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".into()
}

/// Where a cluster's kubeconfig is kept: a key of a Secret in a pipeline namespace. Environments
/// naming the same key share one connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    pub namespace: String,
    pub secret: KubeconfigSecretRef,
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {}/{} key {}", self.namespace, self.secret.name, self.secret.key)
    }
}

/// What `status.cluster` says of an Environment in the operator's own cluster.
pub const IN_CLUSTER: &str = "in-cluster";

impl Environment {
    /// Where this Environment's cluster is reached by kubeconfig (`None`: the operator's own
    /// cluster, or an agent's).
    pub fn cluster_key(&self) -> Option<ClusterKey> {
        use kube::ResourceExt;
        let secret = self.spec.cluster.as_ref()?.kube_config_secret_ref.clone()?;
        Some(ClusterKey { namespace: self.namespace().unwrap_or_default(), secret })
    }

    /// The agent that serves this Environment (`None`: the operator does).
    pub fn agent(&self) -> Option<&str> {
        self.spec.cluster.as_ref()?.agent.as_deref()
    }

    /// The name the cluster is shown under.
    pub fn cluster_name(&self) -> &str {
        let Some(c) = &self.spec.cluster else { return IN_CLUSTER };
        c.name
            .as_deref()
            .or(c.agent.as_deref())
            .or(c.kube_config_secret_ref.as_ref().map(|r| r.name.as_str()))
            .unwrap_or(IN_CLUSTER)
    }
}

/// The approvals a new version needs in an Environment.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRules {
    /// How many distinct approvers (default 1; one person approving twice counts once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub min_approvals: Option<u32>,
    /// Whose approvals count (default: anyone RBAC lets create Approvals here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Approvers>,
    /// Users who must all approve (countersign), besides the quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countersign: Vec<String>,
    /// An approval older than this no longer counts, e.g. `24h` (default: never expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
}

/// Users and groups whose approvals count.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Approvers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl EnvironmentSpec {
    /// Whether a new version needs approval here.
    pub fn requires_approval(&self) -> bool {
        self.approval == Some(ApprovalPolicy::Required) || self.approval_policy.is_some()
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalPolicy {
    Required,
    None,
}

/// A freeze: one period (`start`–`end`, or from `start` until removed), a weekly one (`weekly`) or
/// an RFC 5545 recurrence (`recurrence`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FreezeWindow {
    /// Why (shown in the Release's condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339 start of a one-off window, e.g. `2026-12-20T00:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339 end of a one-off window; without it the window lasts until it is removed (what
    /// `tuskfish freeze` without `--for`/`--until` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Set by `tuskfish freeze --all` (the whole pipeline stopped at once): `tuskfish unfreeze
    /// --all` lifts these windows and leaves the environments' own freezes in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub line_stop: bool,
}

/// A window new versions may roll out in: one period (`start`–`end`), a weekly one (`weekly`) or
/// an RFC 5545 recurrence (`recurrence`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AllowWindow {
    /// What the window is (shown while a version waits for it), e.g. `weekly release window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339 start of a one-off window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339 end of a one-off window (required with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
}

/// Windows that open at each occurrence of an RFC 5545 recurrence rule and last `duration`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Recurrence {
    /// The `RRULE` value, e.g. the last two business days of each quarter:
    /// `FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,-1`.
    pub rule: String,
    /// Local date and time of the first occurrence (`DTSTART`), e.g. `2026-01-01T00:00:00`; every
    /// occurrence starts at its time of day, in `timeZone`.
    pub start: String,
    /// How long each window lasts, e.g. `24h` (elapsed time: a window over a DST change ends an
    /// hour earlier or later on the clock).
    pub duration: String,
    /// IANA time zone, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Every week on `days`, from `from` to `to` (local time in `timeZone`; `to` before `from` runs past
/// midnight into the next day).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyWindow {
    /// Days the window starts on: `Mon`, `Tue`, `Wed`, `Thu`, `Fri`, `Sat`, `Sun`.
    pub days: Vec<String>,
    /// `HH:MM`, e.g. `16:00`.
    pub from: String,
    /// `HH:MM`, e.g. `23:59`.
    pub to: String,
    /// IANA time zone, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Dev,
    Test,
    Staging,
    Prod,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Dev => "dev",
            Tier::Test => "test",
            Tier::Staging => "staging",
            Tier::Prod => "prod",
        }
    }
}

/// What the operator observed of an Environment.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The namespace this environment owns (set once it is created or adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The cluster the environment's apps run in (`in-cluster`: the operator's own); whether it
    /// can be reached is the `Ready` condition (`ClusterUnreachable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Releases that target this environment.
    #[serde(default)]
    pub releases: i32,
    /// Of those, how many are Healthy.
    #[serde(default)]
    pub healthy_releases: i32,
    /// `Ready`: the namespace exists and is owned by this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The freeze windows already in the audit records (a digest of each, and how it reads), so
    /// that each added or removed one is recorded once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded_freezes: Vec<String>,
}
