//! Rollout health of the workloads a Release applied.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// Health of one workload object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadState {
    Ready,
    /// Still rolling out; the message says what is missing.
    InProgress(String),
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
    /// The workloads are healthy; verification checks still run (see [`super::verify`]).
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

/// Reads a Deployment the way `kubectl rollout status` does.
pub fn deployment_state(d: &Deployment, applied: Applied<'_>) -> WorkloadState {
    let generation = d.metadata.generation.unwrap_or(0);
    if applied.is_stale(&d.metadata) {
        return WorkloadState::InProgress("waiting for the latest spec to be observed".into());
    }
    let Some(status) = d.status.as_ref() else {
        return WorkloadState::InProgress("waiting for the Deployment controller".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return WorkloadState::InProgress(
            "waiting for the Deployment controller to observe the new spec".into(),
        );
    }
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
    let generation = s.metadata.generation.unwrap_or(0);
    if applied.is_stale(&s.metadata) {
        return WorkloadState::InProgress("waiting for the latest spec to be observed".into());
    }
    let Some(status) = s.status.as_ref() else {
        return WorkloadState::InProgress("waiting for the StatefulSet controller".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return WorkloadState::InProgress(
            "waiting for the StatefulSet controller to observe the new spec".into(),
        );
    }
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

/// Combines the workloads' states with the Release's own deadline, counted from the rollout start.
pub fn assess(states: &[(String, WorkloadState)], elapsed: Duration, deadline: Duration) -> Health {
    let waiting: Vec<String> = states
        .iter()
        .filter_map(|(obj, s)| match s {
            WorkloadState::InProgress(m) => Some(format!("{obj}: {m}")),
            _ => None,
        })
        .collect();
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
}
