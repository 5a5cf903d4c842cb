//! `Release`: app X in environment E at a chosen version.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// How many rollouts `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;
/// Default for `spec.progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 300;
/// How many change ids `status.changes` lists.
pub const CHANGES_LIMIT: usize = 200;
/// How many failed versions `status.failedVersions` remembers.
pub const FAILED_VERSIONS_LIMIT: usize = 20;

/// Runs one app in one Environment. The operator renders the chosen AppVersion into the environment's
/// namespace with server-side apply, waits for it to become healthy, prunes what is no longer
/// rendered and records every rollout in `status.history`.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "Release",
    doc = "Runs one app at a chosen version in one Environment, and records every rollout.",
    namespaced,
    status = "ReleaseStatus",
    shortname = "rel",
    category = "tuskfish",
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.app"}"#,
    printcolumn = r#"{"name":"Env","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"Current","type":"string","jsonPath":".status.currentVersion"}"#,
    printcolumn = r#"{"name":"Desired","type":"string","jsonPath":".status.desiredVersion"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Held","type":"string","jsonPath":".status.heldVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// The app to run (matches `AppVersion.spec.app`).
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub app: String,
    /// Name of the Environment (in this namespace) to run it in.
    #[schemars(length(min = 1, max = 253))]
    pub environment: String,
    /// Pin: the exact version to run ("one-click deploy" is changing this field). Exactly one of
    /// `version`, `track` and `promoteFrom` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Track: run the newest published version in this semver range (and in the Environment's
    /// version line), e.g. `~1.3` or `>=1.4.0-0`. Pre-releases only when the range names one
    /// (`>=1.4.0-0` takes `1.4.0-rc.1`). Versions that failed here are skipped until a newer one
    /// appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Promote: run the version that has been healthy in an upstream Environment for `soak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<PromoteFrom>,
    /// Rollback settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
    /// Apps whose Releases in the same Environment must be Healthy (at a matching version, if
    /// given) before a new version of this one rolls out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Seconds a rollout may take to become healthy before the Release is Degraded (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
    /// Checks of this app, run after the Environment's (a check named like one of the
    /// Environment's replaces it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<super::Check>,
    /// Helm values of this app here, over the Environment's `helmValues` and the AppVersion's
    /// `spec.helm.values` (the last word); strings may use `${VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::appversion::values_schema")]
    pub helm_values: Option<serde_json::Value>,
}

/// Another app this Release waits for.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[schemars(length(min = 1, max = 53))]
    pub app: String,
    /// Semver range its running version must match, e.g. `>=2.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Where a promoted Release takes its version from.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PromoteFrom {
    /// Upstream Environment (in this namespace); its Release of the same app is followed.
    #[schemars(length(min = 1, max = 253))]
    pub environment: String,
    /// How long a version must have been healthy upstream, e.g. `30m`, `2h`, `90s` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackSpec {
    /// When a rollout becomes Degraded, mark its version failed here and run the last healthy
    /// version again. Default: on for `track` and `promoteFrom`, off for a pinned `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    /// Manual rollback: run this version (one from `status.history` that succeeded) until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl ReleaseSpec {
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// The version of a manual rollback (`spec.rollback.to`), while one is asked for.
    pub fn rollback_to(&self) -> Option<&str> {
        self.rollback.as_ref().and_then(|r| r.to.as_deref())
    }

    /// The field that chooses the version, in the order they take precedence: a manual rollback,
    /// a pin, a tracked range, an upstream Environment. The requester policy computes the same in
    /// CEL ([`super::policy::requester_identity_policy`]): a request claim needs a change of it.
    pub fn version_source(&self) -> Option<VersionSource<'_>> {
        if let Some(to) = self.rollback_to() {
            return Some(VersionSource::RollbackTo(to));
        }
        if let Some(v) = self.version.as_deref() {
            return Some(VersionSource::Version(v));
        }
        if let Some(range) = self.track.as_deref() {
            return Some(VersionSource::Track(range));
        }
        self.promote_from.as_ref().map(|p| VersionSource::PromoteFrom(p.environment.as_str()))
    }
}

/// What chooses a Release's version (see [`ReleaseSpec::version_source`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSource<'a> {
    RollbackTo(&'a str),
    Version(&'a str),
    Track(&'a str),
    PromoteFrom(&'a str),
}

impl VersionSource<'_> {
    /// Each source's field, as a path from the object's root (what `managedFields` name), in the
    /// order they take precedence.
    pub const PATHS: [&'static [&'static str]; 4] = [
        &["spec", "rollback", "to"],
        &["spec", "version"],
        &["spec", "track"],
        &["spec", "promoteFrom", "environment"],
    ];

    /// This source's field (one of [`Self::PATHS`]).
    pub fn path(&self) -> &'static [&'static str] {
        Self::PATHS[match self {
            VersionSource::RollbackTo(_) => 0,
            VersionSource::Version(_) => 1,
            VersionSource::Track(_) => 2,
            VersionSource::PromoteFrom(_) => 3,
        }]
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for something outside the Release (its Environment, its AppVersion).
    Pending,
    /// Objects applied; waiting for them to become healthy.
    Progressing,
    /// The desired version runs and is healthy.
    Healthy,
    /// The rollout did not become healthy within the progress deadline.
    Degraded,
    /// The desired state cannot be rendered or applied (bad input, refused by the API server).
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RolloutResult {
    Progressing,
    Succeeded,
    Failed,
    /// Replaced by a newer rollout before it finished.
    Superseded,
}

/// One rollout of a version into the environment.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: String,
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    pub result: RolloutResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set when this rollout went back to an earlier version because this version failed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// Whose approvals let this rollout through (the names the API server verified), in the
    /// order they approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// What held this version back before it rolled out, and since when (a gate: awaiting
    /// approval, frozen, outside the allow windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
    /// Who asked for it, as far as the API server verified, and with which tool.
    #[serde(default, flatten)]
    pub requester: Requester,
    /// The Release's generation when it started (a request claim vouches for the first rollout
    /// of its generation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// Who asked for a rollout: the verified user whose request the Release's spec is, and the field
/// manager that wrote the field choosing the version (which tool, as it named itself).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// The user who asked for it (`tuskfish deploy`, `promote`, `rollback` or the web view's
    /// actions), a name the API server verified; none when no verified request set the spec (a
    /// GitOps applier, `kubectl`, or someone's request changed since by anyone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub requested_by: Option<String>,
    /// The field manager that wrote the field choosing the version (`spec.version`, `track`,
    /// `promoteFrom`, `rollback.to`): `kustomize-controller`, `argocd-controller`,
    /// `kubectl-client-side-apply`, `tuskfish-cli`. The name the writing client gave itself: it
    /// says which tool, not which person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub applied_by: Option<String>,
}

/// A gate that held a version back, from when.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The condition reason: `AwaitingApproval`, `Frozen`, `OutsideAllowWindow`.
    #[schemars(length(max = 64))]
    pub reason: String,
    pub since: Time,
}

/// An object applied by the Release, kept so that it can be pruned when no longer rendered.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `metadata.generation` after the operator's apply; a higher one means someone else changed the
    /// object's spec (drift), which the operator repairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// `metadata.uid` after the operator's apply; another uid means the object was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Everything the Release applied, in one namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub namespace: String,
    /// Hash of the rendered objects last applied in full; unchanged hash and no drift means nothing
    /// to apply. Absent after a first rollout the API server refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default)]
    pub objects: Vec<InventoryEntry>,
    /// The cluster they were applied in, as the Environment named it then (absent: the operator's
    /// own): where they are pruned, even once the Environment is gone or has moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::ClusterRef>,
}

/// What the operator observed of a Release.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The last version that became healthy here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The version being rolled out (or running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_version: Option<String>,
    /// When the objects were last applied, by a rollout or a drift repair; the progress deadline
    /// counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// Change ids (stories, bugs) of the running version, sorted, at most 200; compare two
    /// Environments' Releases to see what one has that the other lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// A newer version that is held back (soaking, failed, awaiting approval…); see the `Held`
    /// condition for why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_version: Option<String>,
    /// Versions whose rollout failed here (newest last, at most 20); a tracked or promoted Release
    /// skips them, and a pinned one with automatic rollback does not retry them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_versions: Vec<String>,
    /// Hash of a rendered state the API server rejected; it is not applied again until it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_hash: Option<String>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Newest first, at most 10 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// The verification checks of the running (or rolling out) version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<super::VerificationStatus>,
}
