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

/// The notice an Event is, if it is one. `about`: the app and Environment of its object;
/// `received`: when this process got it.
///
/// An Event's own times (`eventTime`, a series' `lastObservedTime`) are whatever its writer's
/// clock said, and one writer's clock five minutes ahead would move every Notification's cursor
/// past the notices of the next five minutes. So a notice is timed by the API server: its
/// `creationTimestamp`, and for a repeat (a series), its last observation kept between that and
/// `received` (a repeat in the future is taken as now, one before the Event existed as then).
pub fn of_event(
    ev: &Event,
    received: Timestamp,
    about: impl FnOnce(&str, &str, &str) -> About,
) -> Option<Notice> {
    let reason = Reason::parse(ev.reason.as_deref()?)?;
    let kind = *kinds_of(reason).first()?;
    let obj = &ev.involved_object;
    let (obj_kind, name) = (obj.kind.as_deref()?, obj.name.as_deref()?);
    let namespace = ev.metadata.namespace.clone().or_else(|| obj.namespace.clone())?;
    let count = ev.series.as_ref().and_then(|s| s.count).unwrap_or(1);
    let created = ev.metadata.creation_timestamp.as_ref()?.0;
    let observed = ev.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0);
    let time = match observed {
        Some(t) if count > 1 => t.clamp(created, received.max(created)),
        _ => created,
    };
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
        message: bounded(ev.message.as_deref().unwrap_or_default()),
    })
}

/// The most of an Event's message a notice carries (core/v1 Events bound it by nothing).
const MESSAGE_LIMIT: usize = 4096;

/// `message`, cut at [`MESSAGE_LIMIT`] bytes (on a character boundary).
fn bounded(message: &str) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message.to_string();
    }
    let mut end = MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
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
            "metadata": {"name": "e", "namespace": "finance", "uid": "u-1", "creationTimestamp": "2026-12-06T10:00:00Z"},
            "involvedObject": {"kind": kind, "name": "payments-prod", "namespace": "finance"},
            "reason": reason, "type": "Warning", "message": "version 1.3.11: not healthy",
            "eventTime": "2026-12-06T10:00:00.123456Z", "series": series,
            "reportingComponent": "tuskfish", "reportingInstance": "x", "action": "a"
        }))
        .unwrap()
    }

    fn received() -> Timestamp {
        "2026-12-06T10:10:00Z".parse().unwrap()
    }

    /// A writer's clock says nothing of when a notice happened: five minutes ahead (or behind) it
    /// is timed as the server saw it, so it neither jumps a cursor ahead (suppressing the notices
    /// after it) nor falls behind one.
    #[test]
    fn a_writers_clock_does_not_time_a_notice() {
        let skewed = |series: serde_json::Value, event_time: &str| {
            let mut ev = event("RolloutComplete", "Release", series);
            ev.event_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(event_time.parse().unwrap()));
            of_event(&ev, received(), about(None, None)).unwrap().time
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(skewed(json!(null), "2026-12-06T10:05:00Z"), at("2026-12-06T10:00:00Z"), "ahead");
        assert_eq!(skewed(json!(null), "2026-12-06T09:00:00Z"), at("2026-12-06T10:00:00Z"), "behind");
        let repeat = |last: &str| json!({"count": 3, "lastObservedTime": last});
        assert_eq!(
            skewed(repeat("2026-12-06T11:00:00Z"), "2026-12-06T10:00:00Z"),
            received(),
            "a repeat in the future is now"
        );
        assert_eq!(
            skewed(repeat("2026-12-06T09:00:00Z"), "2026-12-06T10:00:00Z"),
            at("2026-12-06T10:00:00Z"),
            "before the Event existed"
        );
        // Without a creation time (no server ever stored it) there is no notice.
        let mut unstored = event("RolloutComplete", "Release", json!(null));
        unstored.metadata.creation_timestamp = None;
        assert!(of_event(&unstored, received(), about(None, None)).is_none());
    }

    fn about(app: Option<&str>, env: Option<&str>) -> impl FnOnce(&str, &str, &str) -> About {
        let (app, environment) = (app.map(String::from), env.map(String::from));
        move |_, _, _| About { app, environment }
    }

    #[test]
    fn events_become_notices() {
        let n = of_event(
            &event("ProgressDeadlineExceeded", "Release", json!(null)),
            received(),
            about(Some("payments"), Some("prod")),
        )
        .unwrap();
        assert_eq!(n.kind, NoticeKind::RolloutFailed);
        assert_eq!(n.key, "u-1/1");
        // Timed by the server (the writer's eventTime says .123456).
        assert_eq!(n.time, "2026-12-06T10:00:00Z".parse::<Timestamp>().unwrap());
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
            received(),
            about(None, None),
        )
        .unwrap();
        assert_eq!(again.key, "u-1/2");
        assert_eq!(again.time, "2026-12-06T10:05:00.000001Z".parse::<Timestamp>().unwrap());
        // Reasons that are no notice, and unknown reasons.
        assert!(
            of_event(&event("DriftRepaired", "Release", json!(null)), received(), about(None, None))
                .is_none()
        );
        assert!(
            of_event(&event("SomethingElse", "Release", json!(null)), received(), about(None, None))
                .is_none()
        );
    }

    fn spec(events: &[NoticeKind], envs: &[&str], apps: &[&str]) -> NotificationSpec {
        serde_json::from_value(json!({"events": events, "environments": envs, "apps": apps,
            "target": {"format": NoticeFormat::Webhook, "secretRef": {"name": "s"}}}))
        .unwrap()
    }

    #[test]
    fn notifications_want_what_they_name() {
        let n = |reason: &str, env: Option<&str>| {
            of_event(&event(reason, "Release", json!(null)), received(), about(Some("payments"), env))
                .unwrap()
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
