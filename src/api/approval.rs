//! `Approval`: permission for one version of one Release, in an Environment that requires it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Approves one version of one Release. Kubernetes RBAC on this resource decides who may approve
/// (e.g. only the release managers may create Approvals in the prod pipeline namespace).
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "Approval",
    doc = "Approves one version of one Release for an Environment that requires approval.",
    namespaced,
    shortname = "appr",
    category = "tuskfish",
    printcolumn = r#"{"name":"Release","type":"string","jsonPath":".spec.release"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Approver","type":"string","jsonPath":".spec.approver"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".spec.decision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// Name of the Release (in this namespace).
    #[schemars(length(min = 1, max = 253))]
    pub release: String,
    /// The version approved.
    #[schemars(length(min = 5, max = 128))]
    pub version: String,
    /// The app the Release deploys (`tuskfish approve` fills it in): when set, the Approval counts
    /// only while the Release deploys this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Set (instead of `app`) when `release` names a ProductRelease: the product approved. An
    /// Approval counts for a ProductRelease only with it, and for a Release only without it, so
    /// that approving a Release never approves a product of the same name (or the reverse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 53))]
    pub product: Option<String>,
    /// The Environment the Release deploys into (`tuskfish approve` fills it in): when set, the
    /// Approval counts only there. Without `app` and `environment`, an Approval made more than a
    /// minute before its Release was created (for an earlier Release of that name) does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Who approved (recorded in the Release's history). The API server admits only the
    /// requesting user's own name (the `tuskfish-approval-identity` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The approver's groups when approving (what an Environment's `approvalPolicy.approvers.groups`
    /// is checked against); the API server admits only groups the requesting user is in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub approver_groups: Vec<String>,
    /// `Approve` (the default) or `Reject`: a rejection stops this version in the Release's
    /// Environment; a newer version needs approvals of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an approver decided.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Decision {
    #[default]
    Approve,
    Reject,
}

impl ApprovalSpec {
    pub fn decision(&self) -> Decision {
        self.decision.unwrap_or_default()
    }
}
