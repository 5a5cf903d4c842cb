//! Which status changes may wait a moment. A rollout moves through several progress messages
//! ("0 of 3 updated replicas available", "1 of 3 …") and an Environment's release counts move with
//! every Release; writing each one costs an API write per step for detail nobody acts on. Such
//! detail-only changes are written at most every few seconds; anything else (phase, reason, a new
//! rollout, history) is written at once.

use crate::api::{Condition, EnvironmentStatus, Phase, ReleaseStatus};

/// Conditions with the message blanked: what remains is what the condition *says*.
fn gist(conditions: &[Condition]) -> Vec<Condition> {
    conditions.iter().map(|c| Condition { message: String::new(), ..c.clone() }).collect()
}

/// True when a Release stays Progressing and only the text of its conditions changed.
pub fn only_progress_detail(prev: &ReleaseStatus, next: &ReleaseStatus) -> bool {
    if prev.phase != Some(Phase::Progressing) || next.phase != Some(Phase::Progressing) || prev == next {
        return false;
    }
    let same_gist = |s: &ReleaseStatus| ReleaseStatus { conditions: gist(&s.conditions), ..s.clone() };
    same_gist(prev) == same_gist(next)
}

/// True when only an Environment's release counts changed.
pub fn only_counts(prev: &EnvironmentStatus, next: &EnvironmentStatus) -> bool {
    prev != next
        && EnvironmentStatus {
            releases: next.releases,
            healthy_releases: next.healthy_releases,
            ..prev.clone()
        } == *next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::condition as cond;

    fn progressing(message: &str) -> ReleaseStatus {
        ReleaseStatus {
            phase: Some(Phase::Progressing),
            desired_version: Some("1.1.0".into()),
            conditions: vec![
                cond("Ready", "False", "RolloutInProgress", message),
                cond("Progressing", "True", "RolloutInProgress", message),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn progress_detail() {
        let a = progressing("Deployment pay: 0 of 3 updated replicas available");
        let b = progressing("Deployment pay: 1 of 3 updated replicas available");
        let healthy = ReleaseStatus { phase: Some(Phase::Healthy), ..b.clone() };
        let other_version = ReleaseStatus { desired_version: Some("1.2.0".into()), ..b.clone() };
        let mut other_reason = b.clone();
        other_reason.conditions[0].reason = "ProgressDeadlineExceeded".into();
        let cases = [
            (&a, &b, true, "only the message moved"),
            (&a, &a, false, "nothing changed: nothing to write anyway"),
            (&a, &healthy, false, "the phase changed"),
            (&healthy, &healthy, false, "not progressing"),
            (&a, &other_version, false, "another rollout"),
            (&a, &other_reason, false, "the reason changed"),
        ];
        for (prev, next, want, why) in cases {
            assert_eq!(only_progress_detail(prev, next), want, "{why}");
        }
    }

    #[test]
    fn counts() {
        let prev = EnvironmentStatus { releases: 3, healthy_releases: 1, ..Default::default() };
        let more = EnvironmentStatus { releases: 4, healthy_releases: 2, ..prev.clone() };
        let renamed = EnvironmentStatus { namespace: Some("x".into()), ..more.clone() };
        assert!(only_counts(&prev, &more));
        assert!(!only_counts(&prev, &prev));
        assert!(!only_counts(&prev, &renamed));
    }
}
