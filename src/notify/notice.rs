//! Notices: what a pipeline Event means for the people who asked to be told, and whether a
//! Notification wants it. Pure.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;

use crate::api::{NoticeKind, NotificationSpec, Reason};

/// One thing that happened, as a Notification delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Identifies this occurrence (the Event and its repeat count), so it is delivered once.
    pub key: String,
    pub time: Timestamp,
    pub reason: String,
    pub warning: bool,
    pub namespace: String,
    /// `Kind/name` of what it is about.
    pub object: String,
    pub app: Option<String>,
    /// `None`: about the whole pipeline (a veto).
    pub environment: Option<String>,
    pub message: String,
}

/// The notices an Event reason stands for, the first being what the notice is called.
pub fn kinds_of(reason: Reason) -> &'static [NoticeKind] {
    use NoticeKind::*;
    match reason {
        Reason::RolloutStarted => &[RolloutStarted],
        Reason::RolloutComplete => &[RolloutSucceeded],
        Reason::ProgressDeadlineExceeded | Reason::ApplyRejected | Reason::OwnershipConflict => {
            &[RolloutFailed]
        }
        // A failed verification fails the rollout too.
        Reason::VerificationFailed => &[VerificationFailed, RolloutFailed],
        Reason::RollingBack => &[RolledBack],
        Reason::AwaitingApproval => &[AwaitingApproval],
        Reason::Approved => &[Approved],
        Reason::Rejected => &[Rejected],
        Reason::Vetoed => &[Vetoed],
        Reason::ChangesMissing => &[ForwardPortMissing],
        _ => &[],
    }
}

/// What the app and Environment of the object an Event is about are (looked up by the caller).
pub struct About {
    pub app: Option<String>,
    pub environment: Option<String>,
}

/// The notice an Event is, if it is one. `about`: the app and Environment of its object.
pub fn of_event(ev: &Event, about: impl FnOnce(&str, &str, &str) -> About) -> Option<Notice> {
    let reason = Reason::parse(ev.reason.as_deref()?)?;
    let kind = *kinds_of(reason).first()?;
    let obj = &ev.involved_object;
    let (obj_kind, name) = (obj.kind.as_deref()?, obj.name.as_deref()?);
    let namespace = ev.metadata.namespace.clone().or_else(|| obj.namespace.clone())?;
    let count = ev.series.as_ref().and_then(|s| s.count).unwrap_or(1);
    let time = ev
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .or(ev.event_time.as_ref())
        .map(|t| t.0)
        .or_else(|| ev.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| ev.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let uid = ev.metadata.uid.as_deref()?;
    let about = about(&namespace, obj_kind, name);
    Some(Notice {
        kind,
        key: format!("{uid}/{count}"),
        time,
        reason: reason.to_string(),
        warning: ev.type_.as_deref() == Some("Warning"),
        object: format!("{obj_kind}/{name}"),
        namespace,
        app: about.app,
        environment: about.environment,
        message: ev.message.clone().unwrap_or_default(),
    })
}

/// Whether a Notification with `spec` wants `notice`.
pub fn wanted(spec: &NotificationSpec, notice: &Notice) -> bool {
    let reason = Reason::parse(&notice.reason);
    let kinds = reason.map(kinds_of).unwrap_or_default();
    let kind_ok = spec.events.is_empty() || kinds.iter().any(|k| spec.events.contains(k));
    let env_ok = spec.environments.is_empty()
        || notice.environment.as_ref().is_none_or(|e| spec.environments.contains(e));
    let app_ok = spec.apps.is_empty() || notice.app.as_ref().is_some_and(|a| spec.apps.contains(a));
    kind_ok && env_ok && app_ok
}

/// A notice's headline, e.g. `Rollout failed: payments in prod`.
pub fn title(n: &Notice) -> String {
    let what = match n.kind {
        NoticeKind::RolloutStarted => "Rollout started",
        NoticeKind::RolloutSucceeded => "Rollout succeeded",
        NoticeKind::RolloutFailed => "Rollout failed",
        NoticeKind::RolledBack => "Rolled back",
        NoticeKind::AwaitingApproval => "Awaiting approval",
        NoticeKind::Approved => "Approved",
        NoticeKind::Rejected => "Rejected",
        NoticeKind::Vetoed => "Version vetoed",
        NoticeKind::VerificationFailed => "Verification failed",
        NoticeKind::ForwardPortMissing => "Forward port missing",
    };
    match (&n.app, &n.environment) {
        (Some(app), Some(env)) => format!("{what}: {app} in {env}"),
        (Some(app), None) => format!("{what}: {app}"),
        _ => format!("{what}: {}", n.object),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::NoticeFormat;

    fn event(reason: &str, kind: &str, series: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "e", "namespace": "finance", "uid": "u-1"},
            "involvedObject": {"kind": kind, "name": "payments-prod", "namespace": "finance"},
            "reason": reason, "type": "Warning", "message": "version 1.3.11: not healthy",
            "eventTime": "2026-12-06T10:00:00.123456Z", "series": series,
            "reportingComponent": "tuskfish", "reportingInstance": "x", "action": "a"
        }))
        .unwrap()
    }

    fn about(app: Option<&str>, env: Option<&str>) -> impl FnOnce(&str, &str, &str) -> About {
        let (app, environment) = (app.map(String::from), env.map(String::from));
        move |_, _, _| About { app, environment }
    }

    #[test]
    fn events_become_notices() {
        let n = of_event(
            &event("ProgressDeadlineExceeded", "Release", json!(null)),
            about(Some("payments"), Some("prod")),
        )
        .unwrap();
        assert_eq!(n.kind, NoticeKind::RolloutFailed);
        assert_eq!(n.key, "u-1/1");
        assert_eq!(n.time, "2026-12-06T10:00:00.123456Z".parse::<Timestamp>().unwrap());
        assert!(n.warning);
        assert_eq!(n.object, "Release/payments-prod");
        assert_eq!(title(&n), "Rollout failed: payments in prod");
        // A repeat of the same Event is another occurrence, at its own time.
        let again = of_event(
            &event(
                "ProgressDeadlineExceeded",
                "Release",
                json!({"count": 2, "lastObservedTime": "2026-12-06T10:05:00.000001Z"}),
            ),
            about(None, None),
        )
        .unwrap();
        assert_eq!(again.key, "u-1/2");
        assert!(again.time > n.time);
        // Reasons that are no notice, and unknown reasons.
        assert!(of_event(&event("DriftRepaired", "Release", json!(null)), about(None, None)).is_none());
        assert!(of_event(&event("SomethingElse", "Release", json!(null)), about(None, None)).is_none());
    }

    fn spec(events: &[NoticeKind], envs: &[&str], apps: &[&str]) -> NotificationSpec {
        serde_json::from_value(json!({"events": events, "environments": envs, "apps": apps,
            "target": {"format": NoticeFormat::Webhook, "secretRef": {"name": "s"}}}))
        .unwrap()
    }

    #[test]
    fn notifications_want_what_they_name() {
        let n = |reason: &str, env: Option<&str>| {
            of_event(&event(reason, "Release", json!(null)), about(Some("payments"), env)).unwrap()
        };
        let verification = n("VerificationFailed", Some("prod"));
        let cases = [
            (spec(&[], &[], &[]), &verification, true),
            (spec(&[NoticeKind::RolloutFailed], &[], &[]), &verification, true),
            (spec(&[NoticeKind::VerificationFailed], &["prod"], &["payments"]), &verification, true),
            (spec(&[NoticeKind::RolloutSucceeded], &[], &[]), &verification, false),
            (spec(&[], &["dev"], &[]), &verification, false),
            (spec(&[], &[], &["ledger"]), &verification, false),
        ];
        for (i, (s, notice, want)) in cases.iter().enumerate() {
            assert_eq!(wanted(s, notice), *want, "case {i}");
        }
        // A veto is about every Environment.
        let veto = n("Vetoed", None);
        assert!(wanted(&spec(&[NoticeKind::Vetoed], &["prod"], &[]), &veto));
    }
}
