//! `Notification`: who is told what happens in the pipeline — which notices, for which Environments
//! and apps, sent where (a webhook in one of the chat formats, its URL kept in a Secret).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// Sends notices about the pipeline in this namespace to a chat or webhook.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "Notification",
    doc = "Sends notices about the pipeline (rollouts, approvals, vetoes…) to a chat or webhook.",
    namespaced,
    status = "NotificationStatus",
    shortname = "notif",
    category = "tuskfish",
    printcolumn = r#"{"name":"Format","type":"string","jsonPath":".spec.target.format"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last","type":"string","jsonPath":".status.lastDelivery.notice"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.lastDelivery.result"}"#,
    printcolumn = r#"{"name":"Delivered","type":"integer","jsonPath":".status.delivered"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSpec {
    /// Which notices (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NoticeKind>,
    /// Only notices about these Environments (default: all). A notice about the whole pipeline
    /// (a veto) goes to every Notification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Only notices about these apps (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    pub target: NotificationTarget,
}

/// Where notices go.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTarget {
    /// The message format the receiver expects.
    pub format: NoticeFormat,
    /// The Secret (in this namespace) whose key holds the URL: a chat's incoming-webhook URL carries
    /// its credential, so it is never written in the spec.
    pub secret_ref: SecretKeyRef,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data (default `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What a notice is about.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    RolloutStarted,
    RolloutSucceeded,
    RolloutFailed,
    RolledBack,
    AwaitingApproval,
    Approved,
    Rejected,
    Vetoed,
    VerificationFailed,
    ForwardPortMissing,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 10] = [
        Self::RolloutStarted,
        Self::RolloutSucceeded,
        Self::RolloutFailed,
        Self::RolledBack,
        Self::AwaitingApproval,
        Self::Approved,
        Self::Rejected,
        Self::Vetoed,
        Self::VerificationFailed,
        Self::ForwardPortMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RolloutStarted => "RolloutStarted",
            Self::RolloutSucceeded => "RolloutSucceeded",
            Self::RolloutFailed => "RolloutFailed",
            Self::RolledBack => "RolledBack",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::Vetoed => "Vetoed",
            Self::VerificationFailed => "VerificationFailed",
            Self::ForwardPortMissing => "ForwardPortMissing",
        }
    }
}

/// The chat or webhook format of a target.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum NoticeFormat {
    /// A JSON object with every field of the notice (for your own receiver).
    Webhook,
    /// Slack incoming webhook (`text` with mrkdwn, plus blocks).
    Slack,
    /// Microsoft Teams workflow webhook (an Adaptive Card message).
    Teams,
    /// DingTalk robot (`msgtype: markdown`).
    DingTalk,
    /// WeCom (企业微信) group robot (`msgtype: markdown`).
    WeCom,
    /// Feishu / Lark custom bot (`msg_type: interactive` card).
    Feishu,
}

/// What the operator delivered.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last notice handled (delivered or given up on); after a restart, delivery resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<Delivery>,
    /// Notices delivered, and given up on, since the Notification was created.
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub failed: u64,
    /// `Ready`: the last delivery worked (`Delivered`), or is being retried (`DeliveryFailing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A position in the stream of pipeline Events: their time, and the notices at exactly that time
/// already handled.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// RFC 3339 with microseconds, as Events keep their time.
    pub time: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handled: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub notice: NoticeKind,
    /// `Kind/name` of what the notice is about.
    pub object: String,
    pub result: DeliveryResult,
    pub at: Time,
    pub attempts: u32,
    /// What the receiver answered, or why there was no answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Given up after retrying for the notice's lifetime.
    Failed,
}
