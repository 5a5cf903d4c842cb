//! Status conditions following the Kubernetes API conventions (KEP-1623 shape).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConditionType, Reason};

/// One observation of the resource's state.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Progressing`, `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A stable CamelCase reason; listed with what to do about it in the book (reference: conditions and reasons).
    pub reason: String,
    /// Human-readable detail. Never sent empty: the 1.20 API server turns `""` into null, which its
    /// own validation then refuses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: Time,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What a controller wants a condition to say; timestamps are filled in by [`set_condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(type_: ConditionType, status: bool, reason: Reason, message: impl Into<String>) -> Self {
        Self { type_, status, reason, message: message.into() }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Longest condition message kept, in bytes (the same bound the operator's Events have). Messages
/// quote user input (a version, a range, a freeze window's reason, the API server's refusal) and a
/// Release repeats one message in several conditions: without a bound, one oversized field would
/// blow the status up past what etcd stores, the status write would fail and no condition at all
/// would explain why.
pub const MESSAGE_LIMIT: usize = 1024;

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut with `…`.
pub fn truncate_message(mut s: String, max: usize) -> String {
    const MARK: char = '…';
    if s.len() > max {
        let mut cut = max.saturating_sub(MARK.len_utf8());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push(MARK);
    }
    s
}

/// Sets (or adds) a condition. `lastTransitionTime` moves only when `status` flips, so recomputing
/// the same state yields an identical list and the caller can skip the status write. Messages are
/// cut to [`MESSAGE_LIMIT`].
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    mut update: ConditionUpdate,
    generation: Option<i64>,
    now: &Time,
) {
    update.message = truncate_message(update.message, MESSAGE_LIMIT);
    let status = status_str(update.status);
    match conditions.iter_mut().find(|c| c.type_ == update.type_.as_str()) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.clone();
                c.status = status.to_string();
            }
            c.reason = update.reason.into();
            c.message = update.message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: update.type_.to_string(),
            status: status.to_string(),
            reason: update.reason.into(),
            message: update.message,
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}

/// Looks a condition up by type.
pub fn find_condition(conditions: &[Condition], type_: impl AsRef<str>) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_ref())
}

/// True when a condition of that type exists with status `True`.
pub fn is_true(conditions: &[Condition], type_: impl AsRef<str>) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_moves_only_on_status_flip() {
        let mut conds = vec![];
        let t0 = t("2026-01-01T00:00:00Z");
        let t1 = t("2026-01-01T00:01:00Z");
        set_condition(
            &mut conds,
            ConditionUpdate::new(ConditionType::Ready, false, Reason::Frozen, "a"),
            Some(1),
            &t0,
        );
        set_condition(
            &mut conds,
            ConditionUpdate::new(ConditionType::Ready, false, Reason::Soaking, "b"),
            Some(2),
            &t1,
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, t0);
        assert_eq!(conds[0].reason, Reason::Soaking);
        assert_eq!(conds[0].observed_generation, Some(2));
        set_condition(
            &mut conds,
            ConditionUpdate::new(ConditionType::Ready, true, Reason::RolloutComplete, "c"),
            Some(2),
            &t1,
        );
        assert_eq!(conds[0].last_transition_time, t1);
        assert!(is_true(&conds, "Ready"));
        assert!(!is_true(&conds, "Degraded"));
    }

    #[test]
    fn messages_are_bounded() {
        let mut conds = vec![];
        let long = format!("version {} is not semver", "ü".repeat(MESSAGE_LIMIT));
        set_condition(
            &mut conds,
            ConditionUpdate::new(ConditionType::Ready, false, Reason::InvalidVersion, long),
            None,
            &t("2026-01-01T00:00:00Z"),
        );
        assert!(conds[0].message.len() <= MESSAGE_LIMIT, "{}", conds[0].message.len());
        assert!(conds[0].message.starts_with("version üü") && conds[0].message.ends_with('…'));
        assert_eq!(truncate_message("short".into(), 10), "short");
        assert_eq!(truncate_message("exactly10!".into(), 10), "exactly10!");
        assert_eq!(truncate_message("eleven byte".into(), 10), "eleven …");
    }
}
