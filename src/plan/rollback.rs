//! Automatic rollback: when a rollout turns Degraded, its version is marked failed here, and version
//! selection (which skips failed versions) then picks the last healthy one again.

use crate::api::{FAILED_VERSIONS_LIMIT, Phase, ReleaseStatus};

/// The version to mark failed now, if any: the desired version of a Degraded rollout that is not the
/// version last known healthy, and not marked yet.
pub fn newly_failed(status: &ReleaseStatus, auto: bool) -> Option<String> {
    if !auto || status.phase != Some(Phase::Degraded) {
        return None;
    }
    let desired = status.desired_version.as_ref()?;
    if status.current_version.as_ref() == Some(desired) || status.failed_versions.contains(desired) {
        return None;
    }
    Some(desired.clone())
}

/// The failed version a rollout of `version` goes back from, if it is a rollback: the version
/// running is `version` and the one wanted (`rolled_back` now, or the last marked failed) failed.
pub fn of(prev: &ReleaseStatus, version: &str, rolled_back: Option<&str>) -> Option<String> {
    let failed = rolled_back.or_else(|| prev.failed_versions.last().map(String::as_str))?;
    (prev.current_version.as_deref() == Some(version) && prev.desired_version.as_deref() == Some(failed))
        .then(|| failed.to_string())
}

/// The status to decide on, and the version it newly marks failed: a Degraded rollout with automatic
/// rollback marks its version failed first, so selection (which skips failed versions) picks the
/// last healthy one again.
pub fn decide_on(mut status: ReleaseStatus, auto: bool) -> (ReleaseStatus, Option<String>) {
    let failed = newly_failed(&status, auto);
    if let Some(v) = &failed {
        record_failed(&mut status.failed_versions, v.clone());
    }
    (status, failed)
}

/// Records a failed version in a list of them (a Release's or a product's `failedVersions`:
/// bounded, oldest dropped first).
pub fn record_failed(failed_versions: &mut Vec<String>, version: String) {
    failed_versions.retain(|v| v != &version);
    failed_versions.push(version);
    let excess = failed_versions.len().saturating_sub(FAILED_VERSIONS_LIMIT);
    failed_versions.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: Phase, current: Option<&str>, desired: &str, failed: &[&str]) -> ReleaseStatus {
        ReleaseStatus {
            phase: Some(phase),
            current_version: current.map(str::to_string),
            desired_version: Some(desired.into()),
            failed_versions: failed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn when_a_version_counts_as_failed() {
        let cases = [
            (status(Phase::Degraded, Some("1.0.0"), "1.1.0", &[]), true, Some("1.1.0")),
            (status(Phase::Degraded, Some("1.0.0"), "1.1.0", &[]), false, None),
            (status(Phase::Degraded, Some("1.0.0"), "1.1.0", &["1.1.0"]), true, None),
            (status(Phase::Progressing, Some("1.0.0"), "1.1.0", &[]), true, None),
            (status(Phase::Degraded, Some("1.1.0"), "1.1.0", &[]), true, None),
            (status(Phase::Degraded, None, "1.0.0", &[]), true, Some("1.0.0")),
        ];
        for (i, (s, auto, want)) in cases.into_iter().enumerate() {
            assert_eq!(newly_failed(&s, auto).as_deref(), want, "case {i}");
        }
    }

    #[test]
    fn failed_list_is_bounded_and_unique() {
        let mut s = ReleaseStatus::default();
        for i in 0..30 {
            record_failed(&mut s.failed_versions, format!("1.0.{i}"));
        }
        record_failed(&mut s.failed_versions, "1.0.29".into());
        assert_eq!(s.failed_versions.len(), FAILED_VERSIONS_LIMIT);
        assert_eq!(s.failed_versions.last().map(String::as_str), Some("1.0.29"));
        assert_eq!(s.failed_versions.first().map(String::as_str), Some("1.0.10"));
    }
}
