//! Verification: checks a rollout must pass once its workloads are healthy, before its history entry
//! is `Succeeded` (and so before anything promotes the version or its soak starts).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest check name: it prefixes the Job's name, which the API server limits to 63 characters.
pub const CHECK_NAME_LIMIT: usize = 40;
/// Most checks an Environment or a Release may list.
pub const CHECKS_LIMIT: usize = 10;

/// One check, run after a rollout becomes healthy: a Job (`job`) or an HTTP request (`http`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Names the check in status and Events; a Release's check replaces the Environment's check
    /// of the same name.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
}

/// A Job run in the Environment's namespace; it passes when the Job completes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobCheck {
    /// The Job's pod template (`metadata` and `spec`, as in a Job's `spec.template`). Every
    /// container gets `TUSKFISH_APP`, `TUSKFISH_VERSION`, `TUSKFISH_ENVIRONMENT` and
    /// `TUSKFISH_NAMESPACE`; `restartPolicy` defaults to `Never`.
    #[schemars(schema_with = "pod_template_schema")]
    pub template: serde_json::Value,
    /// Retries before the Job fails (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Seconds the Job may run before it fails (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub active_deadline_seconds: Option<i64>,
}

/// An HTTP GET made by the operator; it passes when the answer has the expected status (and body).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// `http://` or `https://` URL; `${TUSKFISH_VERSION}` and the other `${…}` variables of the
    /// Environment are substituted, e.g. `http://payments.dev.svc/version`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Status code that passes (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Regular expression the body must match, e.g. `"version":"${TUSKFISH_VERSION}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub body_matches: Option<String>,
    /// Attempts after the first before the check fails (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: Option<u32>,
    /// Time between attempts, e.g. `5s` (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time one attempt may take, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // A whole pod template: the API server checks it when the Job is created, and the check fails
    // with its words.
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The verification of the version that runs (or rolls out) now.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// Which run: the version and the rollout (or `tuskfish verify` request) it verifies.
    pub run: String,
    pub version: String,
    pub result: VerificationResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum VerificationResult {
    Running,
    Passed,
    Failed,
}

impl VerificationResult {
    pub fn is_final(self) -> bool {
        self != Self::Running
    }
}

/// One check of a run.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub name: String,
    pub result: VerificationResult,
    /// What the check saw (the Job's failure and its containers' messages, the HTTP answer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
