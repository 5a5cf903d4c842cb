//! `Ledger`: the audit records of one app in one Environment over one calendar month (UTC).
//!
//! Why one object per app, Environment and month, and not one per record: at the design point
//! (10,000 Releases deploying daily, kept 400 days) one object per record is 4 million objects,
//! and every list of them a scan of all; per app and month it is 140,000 objects of about 30
//! records, each written once per record (a merge patch adding one key, so no read and no
//! conflict: two writers add two keys). The API server keeps them immutable: a record, once
//! written, can be neither changed nor removed (CEL, see `rules`); a Ledger is not owned by its
//! Release, so it outlives it, and only the operator's retention deletes it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RolloutResult;

#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "tuskfish.dev",
    version = "v1alpha1",
    kind = "Ledger",
    namespaced,
    doc = "The audit records of one app in one Environment over one month (UTC): written by the operator, immutable.",
    printcolumn = r#"{"name":"Environment","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.app"}"#,
    printcolumn = r#"{"name":"Month","type":"string","jsonPath":".spec.month"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSpec {
    #[schemars(length(min = 1, max = 253))]
    pub environment: String,
    #[schemars(length(min = 1, max = 53))]
    pub app: String,
    /// `YYYY-MM`, UTC.
    #[schemars(length(min = 7, max = 7))]
    pub month: String,
    /// By key (the kind, start and version of what happened): a record written twice (a retry)
    /// is one record. At most 2,000 (etcd keeps an object in 1.5 MiB).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_RECORDS))]
    pub records: BTreeMap<String, Record>,
}

/// What a record is of.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RecordKind {
    /// A rollout that ended: succeeded, failed or superseded.
    Rollout,
    /// The Release was deleted, and what it ran removed from its Environment.
    Removed,
    /// A version approved for the Environment (by `by`, a name the API server verified).
    Approval,
    /// A version rejected for the Environment.
    Rejection,
    /// A version vetoed in every Environment (by `by`, a name the API server verified).
    Veto,
    /// A veto lifted.
    VetoLifted,
    /// A freeze window added to the Environment (`note`: its reason and when it holds).
    Freeze,
    /// The whole pipeline stopped (`tuskfish freeze --all`): a freeze window in this Environment.
    LineStop,
    /// A freeze window (or a line stop) removed.
    Unfreeze,
}

/// One thing that happened, as it happened: never changed afterwards.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub kind: RecordKind,
    /// When it happened (a rollout: when it ended).
    pub at: Time,
    /// The Release it happened to (it may be gone since).
    #[schemars(length(max = 253))]
    pub release: String,
    /// The version it is about (a rollout: the one rolled out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub version: Option<String>,
    /// A rollout: the version that ran before (absent: the first rollout here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub from: Option<String>,
    /// A rollout: when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RolloutResult>,
    /// A rollout back, and from which version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub rollback_of: Option<String>,
    /// What asked for it: `pinned`, `tracking ~1.3`, `promoted from test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub by: Option<String>,
    /// A rollout: who asked for it.
    #[serde(default, flatten)]
    pub requester: super::Requester,
    /// The approvers whose approvals let it through (names the API server verified).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 253)))]
    pub approvers: Vec<String>,
    /// The change ids (stories, bugs) the version carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), inner(length(max = 64)))]
    pub changes: Vec<String>,
    /// When the version was published (lead time counts from the first publish of a change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Time>,
    /// The history note: how it ended, an override's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub note: Option<String>,
    /// A rollout: the gate that held its version back before it started, and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<super::Hold>,
    /// The object it was read from, when that is not the Release (an Approval's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub source: Option<String>,
}

/// At most this many records in one Ledger (one app in one Environment deploying 60 times a day
/// for a month): etcd keeps an object in 1.5 MiB.
pub const MAX_RECORDS: u32 = 2000;

/// Label on a Ledger: its month, `YYYY-MM` (the retention selects on it).
pub const MONTH_LABEL: &str = "tuskfish.dev/month";

impl Record {
    /// The month whose Ledger keeps the record: that of its start (of when it happened, for
    /// what has no start), so that writing it again later lands it in the same Ledger.
    pub fn month(&self) -> String {
        month_of(self.started_at.as_ref().unwrap_or(&self.at))
    }

    /// The record's key in its Ledger: the same event always gets the same key, so writing it
    /// again (a retry after a crash) adds nothing.
    /// A record read from an object (an Approval, a veto, a freeze window) is keyed by its
    /// `source`, which names what it is of; a rollout and a removal by their start, version and
    /// a digest of what else its history entry says (the version before, how it ended, the
    /// rollback, who asked): times are in whole seconds, and a rollback to a version that rolled
    /// out in the same second is another rollout. At most 11 + 1 + 20 + 1 + 128 + 1 + 16
    /// characters.
    pub fn key(&self) -> String {
        let kind = format!("{:?}", self.kind).to_lowercase();
        if let Some(source) = &self.source {
            return format!("{kind}.{}", digest(source));
        }
        let started =
            self.started_at.as_ref().map(|t| t.0.as_second()).unwrap_or_else(|| self.at.0.as_second());
        let who = &self.requester;
        let rest =
            serde_json::json!([self.from, self.result, self.rollback_of, who.requested_by, who.applied_by]);
        format!("{kind}.{started}.{}.{}", self.version.as_deref().unwrap_or("-"), digest(&rest.to_string()))
    }
}

/// 16 hex digits of the SHA-256 of `text`: a short name for a long one.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM` of `t`, UTC.
pub fn month_of(t: &Time) -> String {
    t.0.strftime("%Y-%m").to_string()
}

/// Parts of one month's Ledger at most: a full one (records or bytes) spills into the next.
pub const MAX_PARTS: u32 = 50;

/// What a Ledger's `environment` or `app` is when its records are of every one: a veto holds in
/// every Environment of the pipeline, a freeze window for every app of its Environment.
pub const EVERY: &str = "*";

/// The name of part `part` (from 1) of the Ledger of `app` in `environment` for `month`:
/// `<environment>.<app>.<month>`; an app's in every Environment (`environment` [`EVERY`]):
/// `<app>.<month>.app`; an Environment's for every app: `<environment>.<month>.environment`; then
/// `….2`, `….3`. Names never collide: only the first form ends in its month, and a part's number
/// is digits alone, which no month and no marker is. When that is longer than a name may be, the
/// environment's name is cut and a digest of it added.
pub fn ledger_name(environment: &str, app: &str, month: &str, part: u32) -> String {
    const MAX: usize = 253;
    let part = if part > 1 { format!(".{part}") } else { String::new() };
    let name = |env: &str| match (env, app) {
        (_, EVERY) => format!("{env}.{month}.environment{part}"),
        (EVERY, _) => format!("{app}.{month}.app{part}"),
        _ => format!("{env}.{app}.{month}{part}"),
    };
    let plain = name(environment);
    if plain.len() <= MAX {
        return plain;
    }
    let digest = digest(environment);
    let room = MAX - (plain.len() - environment.len()) - digest.len() - 1;
    let cut: String = environment.chars().take(room).collect();
    name(&format!("{}-{digest}", cut.trim_end_matches(['.', '-'])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_names_are_valid_and_distinct_even_for_the_longest_environment_names() {
        let month = "2026-12";
        assert_eq!(ledger_name("prod", "payments", month, 1), "prod.payments.2026-12");
        assert_eq!(ledger_name("prod", "payments", month, 2), "prod.payments.2026-12.2");
        assert_eq!(ledger_name(EVERY, "payments", month, 1), "payments.2026-12.app");
        assert_eq!(ledger_name("prod", EVERY, month, 3), "prod.2026-12.environment.3");
        let long_a = format!("{}a", "x.".repeat(126));
        let long_b = format!("{}b", "x.".repeat(126));
        let (a, b) = (ledger_name(&long_a, "payments", month, 1), ledger_name(&long_b, "payments", month, 1));
        assert_ne!(a, b);
        let wide = ledger_name(&long_a, EVERY, month, MAX_PARTS);
        assert!(wide.ends_with(".2026-12.environment.50"), "{wide}");
        for n in [a, b, ledger_name(&long_a, "payments", month, MAX_PARTS), wide] {
            assert!(n.len() <= 253, "{n}");
            assert!(n.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-')), "{n}");
        }
    }

    #[test]
    fn a_record_keeps_its_key_when_written_again_later() {
        let at = |s: &str| Time(s.parse().unwrap());
        let mut r = Record {
            kind: RecordKind::Rollout,
            at: at("2026-12-07T10:00:00Z"),
            release: "payments-prod".into(),
            version: Some("1.3.10".into()),
            from: None,
            started_at: Some(at("2026-12-07T09:58:00Z")),
            result: Some(RolloutResult::Succeeded),
            rollback_of: None,
            by: None,
            approvers: vec![],
            changes: vec![],
            published_at: None,
            note: None,
            source: None,
            held: None,
            requester: Default::default(),
        };
        let key = r.key();
        // Ended in another month than it started: its Ledger is still that of its start.
        r.at = at("2027-01-01T00:00:09Z");
        assert_eq!((r.key(), r.month()), (key.clone(), "2026-12".to_string()));
        let start = at("2026-12-07T09:58:00Z").0.as_second();
        assert!(key.starts_with(&format!("rollout.{start}.1.3.10.")) && key.len() <= 192, "{key}");
    }
}
