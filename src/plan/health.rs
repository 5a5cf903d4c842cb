//! Rollout health of the workloads a Release applied.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Health of one workload object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadState {
    Ready,
    /// Still rolling out; the message says what is missing.
    InProgress(String),
    /// Will not become ready by waiting (a failed Job, a lost volume): the rollout is Degraded now.
    Failed(String),
}

/// Health of the whole rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Not yet healthy; look again at the latest after `recheck_in` (the deadline) unless an event
    /// comes first.
    Progressing {
        message: String,
        recheck_in: Duration,
    },
    Degraded {
        message: String,
    },
    /// The workloads are healthy; verification checks still run (see [`super::verification`]).
    Verifying {
        message: String,
    },
    /// The workloads are healthy but a verification check failed: the rollout failed.
    VerificationFailed {
        message: String,
    },
}

/// What the operator's own apply left: a cached object that is not (yet) this one says nothing
/// about the rollout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Applied<'a> {
    pub uid: Option<&'a str>,
    pub generation: Option<i64>,
}

impl Applied<'_> {
    fn is_stale(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
        let other_object = self.uid.is_some() && meta.uid.as_deref() != self.uid;
        let older = self.generation.is_some_and(|g| meta.generation.unwrap_or(0) < g);
        other_object || older
    }
}

/// The status of a workload once its controller has caught up with the spec the operator applied,
/// else what it waits for.
fn observed<'a, S>(
    meta: &ObjectMeta,
    applied: Applied<'_>,
    status: Option<&'a S>,
    observed_generation: impl Fn(&S) -> Option<i64>,
    controller: &str,
) -> Result<&'a S, WorkloadState> {
    if applied.is_stale(meta) {
        return Err(WorkloadState::InProgress("waiting for the latest spec to be observed".into()));
    }
    let Some(status) = status else {
        return Err(WorkloadState::InProgress(format!("waiting for the {controller} controller")));
    };
    if observed_generation(status).unwrap_or(0) < meta.generation.unwrap_or(0) {
        return Err(WorkloadState::InProgress(format!(
            "waiting for the {controller} controller to observe the new spec"
        )));
    }
    Ok(status)
}

/// Reads a Deployment the way `kubectl rollout status` does.
pub fn deployment_state(d: &Deployment, applied: Applied<'_>) -> WorkloadState {
    let status =
        match observed(&d.metadata, applied, d.status.as_ref(), |s| s.observed_generation, "Deployment") {
            Ok(status) => status,
            Err(waiting) => return waiting,
        };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let missing = if updated < want {
        Some(format!("{updated} of {want} replicas updated"))
    } else if total > updated {
        Some(format!("{} old replicas pending termination", total - updated))
    } else if available < updated {
        Some(format!("{available} of {updated} updated replicas available"))
    } else {
        None
    };
    // The Deployment controller's own ProgressDeadlineExceeded is not used: it outlives the
    // rollout it was about (it is still there while a rollback progresses) and its timestamps have
    // one-second resolution. The Release's deadline, counted from its own apply, decides.
    match missing {
        None => WorkloadState::Ready,
        Some(m) => WorkloadState::InProgress(m),
    }
}

/// Reads a StatefulSet the way `kubectl rollout status` does (RollingUpdate strategy).
pub fn stateful_set_state(s: &StatefulSet, applied: Applied<'_>) -> WorkloadState {
    let status =
        match observed(&s.metadata, applied, s.status.as_ref(), |s| s.observed_generation, "StatefulSet") {
            Ok(status) => status,
            Err(waiting) => return waiting,
        };
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready < want {
        WorkloadState::InProgress(format!("{ready} of {want} replicas ready"))
    } else if updated < want || status.current_revision != status.update_revision {
        WorkloadState::InProgress(format!("{updated} of {want} replicas updated"))
    } else {
        WorkloadState::Ready
    }
}

/// Reads a DaemonSet the way `kubectl rollout status` does.
pub fn daemon_set_state(d: &DaemonSet, applied: Applied<'_>) -> WorkloadState {
    let status =
        match observed(&d.metadata, applied, d.status.as_ref(), |s| s.observed_generation, "DaemonSet") {
            Ok(status) => status,
            Err(waiting) => return waiting,
        };
    let want = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < want {
        WorkloadState::InProgress(format!("{updated} of {want} scheduled pods updated"))
    } else if available < want {
        WorkloadState::InProgress(format!("{available} of {want} updated pods available"))
    } else {
        WorkloadState::Ready
    }
}

/// A Job is ready once complete; a failed Job fails the rollout at once.
pub fn job_state(j: &Job, applied: Applied<'_>) -> WorkloadState {
    if applied.is_stale(&j.metadata) {
        return WorkloadState::InProgress("waiting for the latest spec to be observed".into());
    }
    let conditions = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    let true_condition =
        |type_: &str| conditions.into_iter().flatten().find(|c| c.type_ == type_ && c.status == "True");
    if true_condition("Complete").is_some() {
        return WorkloadState::Ready;
    }
    if let Some(c) = true_condition("Failed") {
        let why = c.message.as_deref().or(c.reason.as_deref()).unwrap_or("no reason given");
        return WorkloadState::Failed(format!("the Job failed: {why}"));
    }
    let succeeded = j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
    let want = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    WorkloadState::InProgress(format!("{succeeded} of {want} completions"))
}

/// A PersistentVolumeClaim is ready once bound.
pub fn pvc_state(p: &PersistentVolumeClaim) -> WorkloadState {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => WorkloadState::Ready,
        Some("Lost") => WorkloadState::Failed("its volume is lost".into()),
        Some(other) => WorkloadState::InProgress(format!("{other}, not bound yet")),
        None => WorkloadState::InProgress("not bound yet".into()),
    }
}

/// Any other object that reports kstatus-style status: ready when its controller has observed its
/// generation and its `Ready` condition (if any) is `True`. An object without such status is ready
/// once applied.
pub fn conditions_state(
    meta: &ObjectMeta,
    status: Option<&serde_json::Value>,
    applied: Applied<'_>,
) -> WorkloadState {
    if applied.is_stale(meta) {
        return WorkloadState::InProgress("waiting for the latest spec to be observed".into());
    }
    let Some(status) = status else { return WorkloadState::Ready };
    let observed = status.get("observedGeneration").and_then(serde_json::Value::as_i64);
    if let (Some(observed), Some(generation)) = (observed, meta.generation)
        && observed < generation
    {
        return WorkloadState::InProgress("waiting for its controller to observe the new spec".into());
    }
    let conditions = status.get("conditions").and_then(serde_json::Value::as_array);
    let find = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some(type_))
    };
    let text = |c: &serde_json::Value, key: &str| {
        c.get(key).and_then(serde_json::Value::as_str).unwrap_or("").to_string()
    };
    if let Some(stalled) = find("Stalled").filter(|c| text(c, "status") == "True") {
        return WorkloadState::Failed(
            format!("Stalled: {} {}", text(stalled, "reason"), text(stalled, "message")).trim().to_string(),
        );
    }
    match find("Ready") {
        Some(c) if text(c, "status") == "True" => WorkloadState::Ready,
        Some(c) => {
            let why = [text(c, "reason"), text(c, "message")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            WorkloadState::InProgress(format!(
                "not Ready: {}",
                if why.is_empty() { "no reason given".into() } else { why.join(": ") }
            ))
        }
        None => WorkloadState::Ready,
    }
}

/// Combines the workloads' states with the Release's own deadline, counted from the rollout start.
pub fn assess(states: &[(String, WorkloadState)], elapsed: Duration, deadline: Duration) -> Health {
    // `object: message` of every state that `pick` takes.
    let named = |pick: fn(&WorkloadState) -> Option<&String>| -> Vec<String> {
        states.iter().filter_map(|(obj, s)| pick(s).map(|m| format!("{obj}: {m}"))).collect()
    };
    let failed = named(|s| match s {
        WorkloadState::Failed(m) => Some(m),
        _ => None,
    });
    if !failed.is_empty() {
        return Health::Degraded { message: failed.join("; ") };
    }
    let waiting = named(|s| match s {
        WorkloadState::InProgress(m) => Some(m),
        _ => None,
    });
    if waiting.is_empty() {
        return Health::Healthy;
    }
    let message = waiting.join("; ");
    if elapsed >= deadline {
        return Health::Degraded {
            message: format!(
                "not healthy within the progress deadline of {}s: {message}",
                deadline.as_secs()
            ),
        };
    }
    Health::Progressing { message, recheck_in: deadline - elapsed }
}

/// How much of a rollout's progress deadline has passed at `now`: the time since it `started`,
/// less the time its cluster could not be seen meanwhile (`outages`, from its last answer to its
/// return). What the caches held then was the last state seen, not the rollout's: a stall longer
/// than the deadline fails no version, and a flaky cluster still gets its deadline in the end
/// (only the time it was away is forgiven, not the time before).
pub fn deadline_elapsed(
    started: Option<jiff::Timestamp>,
    outages: &[(jiff::Timestamp, jiff::Timestamp)],
    now: jiff::Timestamp,
) -> Duration {
    let Some(started) = started else { return Duration::ZERO };
    let span = |from: jiff::Timestamp, to: jiff::Timestamp| {
        Duration::try_from(to.duration_since(from)).unwrap_or_default()
    };
    let away: Duration = outages
        .iter()
        .map(|&(from, to)| span(from.max(started), to.min(now)))
        .fold(Duration::ZERO, Duration::saturating_add);
    span(started, now).saturating_sub(away)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(gen_: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d", "generation": gen_},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}, "status": status}))
        .unwrap()
    }

    #[test]
    fn deployment_table() {
        use WorkloadState::*;
        let deadline =
            json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        let cases = vec![
            (deploy(2, 2, json!(null)), Some(2), "progress"),
            (
                deploy(
                    1,
                    2,
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Some(2),
                "progress",
            ),
            (deploy(2, 2, json!({"observedGeneration": 1})), Some(2), "progress"),
            (
                deploy(
                    2,
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2}),
                ),
                Some(2),
                "progress",
            ),
            (
                deploy(
                    2,
                    2,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Some(2),
                "progress",
            ),
            (
                deploy(
                    2,
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
                ),
                Some(2),
                "progress",
            ),
            (
                deploy(
                    2,
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Some(2),
                "ready",
            ),
            (
                deploy(
                    3,
                    2,
                    json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Some(2),
                "ready",
            ),
            (deploy(2, 0, json!({"observedGeneration": 2})), None, "ready"),
            (
                deploy(
                    2,
                    2,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0, "conditions": deadline}),
                ),
                Some(2),
                // The Deployment controller's deadline is not trusted (see deployment_state).
                "progress",
            ),
        ];
        for (i, (d, applied, want)) in cases.into_iter().enumerate() {
            let got = deployment_state(&d, Applied { uid: None, generation: applied });
            let kind = match &got {
                Ready => "ready",
                InProgress(_) => "progress",
                Failed(_) => "failed",
            };
            assert_eq!(kind, want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn another_object_with_the_same_name_is_stale() {
        let d = deploy(
            1,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
        );
        let applied = Applied { uid: Some("other"), generation: Some(1) };
        assert!(matches!(deployment_state(&d, applied), WorkloadState::InProgress(_)));
    }

    #[test]
    fn assess_uses_the_releases_deadline() {
        let ready = ("Deployment/a".to_string(), WorkloadState::Ready);
        let slow = ("Deployment/b".to_string(), WorkloadState::InProgress("0 of 1 available".into()));
        let d = Duration::from_secs(60);
        assert_eq!(assess(std::slice::from_ref(&ready), Duration::ZERO, d), Health::Healthy);
        assert_eq!(assess(&[], Duration::ZERO, d), Health::Healthy);
        assert!(matches!(
            assess(&[ready.clone(), slow.clone()], Duration::from_secs(20), d),
            Health::Progressing { recheck_in, .. } if recheck_in == Duration::from_secs(40)
        ));
        assert!(matches!(
            assess(&[ready, slow], d, d),
            Health::Degraded { message } if message.contains("Deployment/b") && !message.contains("Deployment/a")
        ));
    }

    fn kind_of(s: &WorkloadState) -> &'static str {
        use WorkloadState::*;
        match s {
            Ready => "ready",
            InProgress(_) => "progress",
            Failed(_) => "failed",
        }
    }

    #[test]
    fn daemon_sets_jobs_claims_and_conditions() {
        use WorkloadState::*;
        let ds = |generation: i64, status: serde_json::Value| -> DaemonSet {
            serde_json::from_value(
                json!({"metadata": {"name": "d", "generation": generation}, "status": status}),
            )
            .unwrap()
        };
        let none = Applied::default();
        let full = json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
            "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3});
        assert_eq!(kind_of(&daemon_set_state(&ds(2, full.clone()), none)), "ready");
        let mut old = full.clone();
        old["observedGeneration"] = json!(1);
        assert_eq!(kind_of(&daemon_set_state(&ds(2, old), none)), "progress");
        let mut updating = full.clone();
        updating["updatedNumberScheduled"] = json!(1);
        assert!(
            matches!(daemon_set_state(&ds(2, updating), none), InProgress(m) if m == "1 of 3 scheduled pods updated")
        );
        let mut unavailable = full;
        unavailable["numberAvailable"] = json!(2);
        assert_eq!(kind_of(&daemon_set_state(&ds(2, unavailable), none)), "progress");

        let job = |status: serde_json::Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "j"}, "spec": {"template": {}}, "status": status}),
            )
            .unwrap()
        };
        let cond = |t: &str| json!({"conditions": [{"type": t, "status": "True", "message": "BackoffLimitExceeded: 3 failures"}]});
        assert_eq!(kind_of(&job_state(&job(cond("Complete")), none)), "ready");
        assert!(
            matches!(job_state(&job(cond("Failed")), none), Failed(m) if m.contains("BackoffLimitExceeded"))
        );
        assert!(
            matches!(job_state(&job(json!({"succeeded": 0})), none), InProgress(m) if m == "0 of 1 completions")
        );

        let pvc = |phase: Option<&str>| -> PersistentVolumeClaim {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": phase.map(|p| json!({"phase": p})).unwrap_or(json!({}))})).unwrap()
        };
        assert_eq!(kind_of(&pvc_state(&pvc(Some("Bound")))), "ready");
        assert_eq!(kind_of(&pvc_state(&pvc(Some("Pending")))), "progress");
        assert_eq!(kind_of(&pvc_state(&pvc(None))), "progress");
        assert_eq!(kind_of(&pvc_state(&pvc(Some("Lost")))), "failed");

        let meta = |generation: i64| ObjectMeta { generation: Some(generation), ..Default::default() };
        let cases = [
            (None, "ready"),
            (Some(json!({})), "ready"),
            (Some(json!({"observedGeneration": 1})), "progress"),
            (
                Some(json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]})),
                "ready",
            ),
            (
                Some(
                    json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False", "reason": "Waiting"}]}),
                ),
                "progress",
            ),
            (Some(json!({"conditions": [{"type": "Ready", "status": "Unknown"}]})), "progress"),
            (
                Some(json!({"conditions": [{"type": "Stalled", "status": "True", "reason": "Broken"}]})),
                "failed",
            ),
            (Some(json!({"conditions": [{"type": "Available", "status": "False"}]})), "ready"),
        ];
        for (i, (status, want)) in cases.into_iter().enumerate() {
            let got = conditions_state(&meta(2), status.as_ref(), none);
            assert_eq!(kind_of(&got), want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn a_failed_object_degrades_the_rollout_before_its_deadline() {
        use WorkloadState::*;
        let states = vec![
            ("Deployment a".to_string(), Ready),
            ("Job migrate".to_string(), Failed("the Job failed: x".into())),
            ("Deployment b".to_string(), InProgress("1 of 2".into())),
        ];
        let h = assess(&states, Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(h, Health::Degraded { message: "Job migrate: the Job failed: x".into() });
    }

    #[test]
    fn a_deadline_forgives_only_the_time_the_cluster_could_not_be_seen() {
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        type Case = (Option<i64>, &'static [(i64, i64)], i64, u64);
        let cases: &[Case] = &[
            // (started, outages, now, elapsed)
            (Some(0), &[], 300, 300),
            // Before the rollout: nothing forgiven.
            (Some(0), &[(-100, -50)], 300, 300),
            // Straddling its start, and during it.
            (Some(0), &[(-50, 100)], 300, 200),
            (Some(0), &[(100, 200)], 300, 200),
            // A flaky cluster: each absence forgiven, the time between not.
            (Some(0), &[(10, 20), (30, 40), (50, 60)], 100, 70),
            // Still away at `now` (as far as the record goes), and no rollout at all.
            (Some(0), &[(250, 400)], 300, 250),
            (None, &[(100, 200)], 300, 0),
            // A start after now (another replica's clock ahead).
            (Some(500), &[], 300, 0),
        ];
        for &(started, outages, now, want) in cases {
            let outages: Vec<_> = outages.iter().map(|&(a, b)| (at(a), at(b))).collect();
            let got = deadline_elapsed(started.map(at), &outages, at(now));
            assert_eq!(got, Duration::from_secs(want), "{started:?} {outages:?} {now}");
        }
    }
}
