//! Products: a platform version as a set of app versions tested together (`ProductVersion`), and a
//! product run in an Environment (`ProductRelease`), which rolls each app out through a Release it
//! owns — so every app keeps its own health, drift repair and history, and the product decides
//! which versions they run, in which order, and when they all go back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Change, Condition, HistoryEntry, Phase, PromoteFrom, Release, RollbackSpec};

/// Label on a Release a ProductRelease runs: the ProductRelease's name.
pub const PRODUCT_RELEASE_LABEL: &str = "tuskfish.dev/product-release";
/// How many apps a product version may name.
pub const PRODUCT_APPS_LIMIT: usize = 64;

/// One version of a product: the exact app versions that make it up and the order they roll out in.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "ProductVersion",
    doc = "One immutable, semver-named version of a product: the app versions that make it up.",
    namespaced,
    status = "ProductVersionStatus",
    shortname = "pdv",
    category = "tuskfish",
    printcolumn = r#"{"name":"Product","type":"string","jsonPath":".spec.product"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProductVersionSpec {
    /// The product this is a version of (a DNS-1123 label, e.g. `platform`).
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub product: String,
    /// Semantic version of the product, e.g. `1.3.10`.
    #[schemars(length(min = 5, max = 128))]
    pub version: String,
    /// The apps, each at one exact version (an AppVersion of this namespace), each app once.
    #[schemars(length(min = 1, max = 64))]
    pub apps: Vec<ProductApp>,
    /// Stories and bugs of the product version itself (its apps' are added to `status.changes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// One app of a product version.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductApp {
    /// The app (matches `AppVersion.spec.app`).
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub app: String,
    /// Its exact version.
    #[schemars(length(min = 5, max = 128))]
    pub version: String,
    /// Apps of this product version that must run healthy at their versions here before this one
    /// rolls out (e.g. `ledger` before `payments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub after: Vec<String>,
}

/// What the operator observed of a ProductVersion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductVersionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When every AppVersion it names was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Time>,
    /// The apps in rollout order: each wave only after the ones before it run healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Vec<String>>,
    /// Change ids of its apps' versions and its own, sorted, at most 200.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// `Ready`: True (reason `Published`) once every AppVersion it names is published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Runs one product in one Environment: pinned, tracking a range of product versions, or promoted.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "ProductRelease",
    doc = "Runs one product (a set of app versions) in one Environment, all its apps or none.",
    namespaced,
    status = "ProductReleaseStatus",
    shortname = "prel",
    category = "tuskfish",
    printcolumn = r#"{"name":"Product","type":"string","jsonPath":".spec.product"}"#,
    printcolumn = r#"{"name":"Env","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"Current","type":"string","jsonPath":".status.currentVersion"}"#,
    printcolumn = r#"{"name":"Desired","type":"string","jsonPath":".status.desiredVersion"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Held","type":"string","jsonPath":".status.heldVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProductReleaseSpec {
    /// The product to run (matches `ProductVersion.spec.product`).
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub product: String,
    /// Name of the Environment (in this namespace) to run it in.
    #[schemars(length(min = 1, max = 253))]
    pub environment: String,
    /// Pin: the exact product version to run. Exactly one of `version`, `track` and `promoteFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Track: the newest published product version in this semver range (and the Environment's
    /// version line); versions that failed here are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Promote: the product version that has run healthy, every app of it, in an upstream
    /// Environment for `soak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<PromoteFrom>,
    /// Rollback: `auto` (default on) returns every app to the previous product version when any
    /// app fails; `to` runs a product version from `status.history` until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
    /// Seconds each app's rollout may take to become healthy (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
}

/// The product version a ProductRelease lets its apps run: the Releases it owns deploy these
/// versions and no others (a Release's own edits cannot pass the product's gates).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Admitted {
    pub version: String,
    /// The ProductVersion's uid: what was approved is this object's content (one deleted and made
    /// again under the same version is another product version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Each app's version and the apps it rolls out after, as the product version said when it
    /// was admitted.
    pub apps: Vec<ProductApp>,
    pub started_at: Time,
    /// Set when this goes back to an earlier version because `rollbackOf` failed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// A rollback a person asked for (`spec.rollback.to`): not rolled back again when it fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// Why, for the apps' histories: approvals, an overridden freeze, the app whose failure this
    /// rolls back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Whose approvals let it in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

impl Admitted {
    /// The version of `app` this admits, if it names the app.
    pub fn version_of(&self, app: &str) -> Option<&str> {
        self.apps.iter().find(|a| a.app == app).map(|a| a.version.as_str())
    }
}

/// The app versions of a product version that ran healthy here: what a rollback goes back to.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RanHealthy {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub apps: Vec<ProductApp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// One app of a product in an Environment.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductAppStatus {
    pub app: String,
    /// The version the product runs it at.
    pub version: String,
    /// The Release that runs it.
    pub release: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// What it runs healthy now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
}

/// What the operator observed of a ProductRelease.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The last product version whose apps all ran healthy here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The product version being rolled out (or running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_version: Option<String>,
    /// Since when `currentVersion` has run healthy, every app (what a promotion's soak counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
    /// A newer product version held back; the `Held` condition says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_version: Option<String>,
    /// Product versions that failed here (newest last, at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_versions: Vec<String>,
    /// What the apps may run (see [`Admitted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted: Option<Admitted>,
    /// The product versions that ran healthy here, exactly as they ran, newest first (at most 10):
    /// what a rollback (automatic, or `spec.rollback.to`) goes back to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ran_healthy: Vec<RanHealthy>,
    /// Each app, in rollout order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<ProductAppStatus>,
    /// Change ids of the running product version, sorted, at most 200.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// `Ready`, `Held`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Product rollouts, newest first, at most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// The Release that runs `app` for ProductRelease `product_release`.
/// An app's name has no dot, so the last dot parts the two: no two (ProductRelease, app) pairs
/// name the same Release.
pub fn child_release_name(product_release: &str, app: &str) -> String {
    format!("{product_release}.{app}")
}

/// Whether `r` is the Release `pr` runs for its app: named so, and owned by this very object
/// (its uid), in its Environment. A label alone is anyone's to write.
pub fn owned_by(r: &Release, pr: &ProductRelease) -> bool {
    let name = pr.metadata.name.as_deref().unwrap_or_default();
    let uid = pr.metadata.uid.as_deref();
    r.metadata.name.as_deref() == Some(child_release_name(name, &r.spec.app).as_str())
        && r.spec.environment == pr.spec.environment
        && r.metadata.owner_references.iter().flatten().any(|o| {
            o.kind == <ProductRelease as kube::Resource>::kind(&())
                && o.controller == Some(true)
                && Some(o.uid.as_str()) == uid
        })
}

/// The ProductRelease a Release names as its controlling owner, if any.
pub fn owner_name(r: &Release) -> Option<&str> {
    let kind = <ProductRelease as kube::Resource>::kind(&());
    r.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}
