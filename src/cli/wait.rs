//! `--wait`: watch one Release until its rollout is Healthy or has failed, printing each step.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::watcher;

use super::error::{CliError, CliResult};
use super::session::Session;
use crate::api::{ConditionType, Phase, Release, find_condition};
use crate::watch::Change;

/// What `--wait` waits for.
#[derive(Clone, Debug)]
pub struct Goal {
    pub release: String,
    /// `None`: whatever the spec now selects, as long as it becomes Healthy.
    pub version: Option<semver::Version>,
    /// The Release's `metadata.generation` after our change: older statuses say nothing about it.
    pub generation: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Done(String),
    Failed(String),
    Waiting(String),
}

fn ready_message(r: &Release) -> String {
    r.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, ConditionType::Ready))
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_default()
}

/// Where the rollout stands for `goal`.
pub fn judge(r: &Release, goal: &Goal) -> Verdict {
    let Some(status) = r.status.as_ref().filter(|s| s.observed_generation.unwrap_or(0) >= goal.generation)
    else {
        return Verdict::Waiting("waiting for the operator to pick up the change".into());
    };
    let env = &r.spec.environment;
    let wanted = goal.version.as_ref().map(ToString::to_string);
    let current = status.current_version.clone().unwrap_or_default();
    if status.phase == Some(Phase::Healthy) && wanted.as_ref().is_none_or(|v| *v == current) {
        return Verdict::Done(format!("{current} is Healthy in {env}"));
    }
    if let Some(v) = wanted.as_ref().filter(|v| status.failed_versions.contains(v)) {
        return Verdict::Failed(format!(
            "{v} failed in {env} and is not rolled out again ({})",
            ready_message(r)
        ));
    }
    match status.phase {
        Some(Phase::Failed) => return Verdict::Failed(format!("Failed in {env}: {}", ready_message(r))),
        Some(Phase::Degraded) if wanted.is_none() || status.desired_version == wanted => {
            return Verdict::Failed(format!("Degraded in {env}: {}", ready_message(r)));
        }
        _ => {}
    }
    let held = find_condition(&status.conditions, ConditionType::Held).filter(|c| c.status == "True");
    if let Some(h) = held.filter(|_| status.held_version == wanted || wanted.is_none()) {
        return Verdict::Waiting(format!("held ({}): {}", h.reason, h.message));
    }
    let phase = status.phase.map_or("Pending", Phase::as_str);
    Verdict::Waiting(format!("{phase}: {}", ready_message(r)))
}

/// Watches the Release until `judge` decides, or `timeout` passes. Progress goes to stderr so that
/// stdout stays machine-readable.
pub async fn wait(s: &Session, goal: &Goal, timeout: Duration) -> CliResult<Release> {
    watch_release(s, &goal.release, timeout, |r| judge(r, goal)).await
}

/// Watches Release `name` until `judge` says it is done or failed, or `timeout` passes, printing
/// each new waiting state to stderr.
pub async fn watch_release(
    s: &Session,
    name: &str,
    timeout: Duration,
    judge: impl Fn(&Release) -> Verdict,
) -> CliResult<Release> {
    let started = Instant::now();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let changes = crate::watch::uncached(s.api::<Release>(), config, None);
    futures::pin_mut!(changes);
    let mut last = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, changes.next()).await;
        let r = match next {
            Err(_) => {
                return Err(CliError::Timeout(format!(
                    "{name}: not finished after {}s; last state: {last} (it goes on in the cluster; see `tuskfish status`)",
                    timeout.as_secs()
                )));
            }
            Ok(Some(Change::Failed(e))) => {
                return Err(CliError::Unreachable(format!("watching Release {name}: {e}")));
            }
            Ok(Some(Change::Delete(_))) => {
                return Err(CliError::Failed(format!("Release {name} was deleted")));
            }
            Ok(Some(Change::Reset)) => continue,
            Ok(None) => return Err(CliError::Failed(format!("watch of Release {name} ended"))),
            Ok(Some(Change::Apply(r))) => std::sync::Arc::unwrap_or_clone(r),
        };
        if r.metadata.deletion_timestamp.is_some() {
            return Err(CliError::Failed(format!("Release {} is being deleted", r.name_any())));
        }
        match judge(&r) {
            Verdict::Done(msg) => {
                eprintln!("{name}: {msg} ({:.1}s)", started.elapsed().as_secs_f64());
                return Ok(r);
            }
            Verdict::Failed(msg) => return Err(CliError::Failed(format!("{name}: {msg}"))),
            Verdict::Waiting(msg) if msg != last => {
                eprintln!("{name}: {msg}");
                last = msg;
            }
            Verdict::Waiting(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{Condition, ReleaseSpec, ReleaseStatus};

    fn release(generation: i64, status: ReleaseStatus) -> Release {
        let mut r = Release::new(
            "payments-prod",
            ReleaseSpec { app: "payments".into(), environment: "prod".into(), ..Default::default() },
        );
        r.metadata.generation = Some(generation);
        r.status = Some(status);
        r
    }

    fn cond(type_: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: reason.into(),
            message: "m".into(),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn verdicts() {
        let goal = Goal {
            release: "payments-prod".into(),
            version: Some(semver::Version::new(1, 3, 10)),
            generation: 4,
        };
        let s = |gen_: i64, phase, current: &str, desired: &str| ReleaseStatus {
            observed_generation: Some(gen_),
            phase: Some(phase),
            current_version: Some(current.into()),
            desired_version: Some(desired.into()),
            ..Default::default()
        };
        let kind = |v: Verdict| match v {
            Verdict::Done(_) => "done",
            Verdict::Failed(_) => "failed",
            Verdict::Waiting(_) => "waiting",
        };
        let cases = [
            // The status still describes the previous generation: Healthy on 1.3.10 from before does not count.
            (s(3, Phase::Healthy, "1.3.10", "1.3.10"), "waiting"),
            (s(4, Phase::Healthy, "1.3.10", "1.3.10"), "done"),
            (s(4, Phase::Progressing, "1.3.9", "1.3.10"), "waiting"),
            (s(4, Phase::Healthy, "1.3.9", "1.3.9"), "waiting"),
            (s(4, Phase::Degraded, "1.3.9", "1.3.10"), "failed"),
            (s(4, Phase::Degraded, "1.3.9", "1.3.8"), "waiting"),
            (s(4, Phase::Failed, "1.3.9", "1.3.9"), "failed"),
            (
                ReleaseStatus {
                    failed_versions: vec!["1.3.10".into()],
                    ..s(4, Phase::Progressing, "1.3.9", "1.3.9")
                },
                "failed",
            ),
            (
                ReleaseStatus {
                    held_version: Some("1.3.10".into()),
                    conditions: vec![cond("Held", "AwaitingApproval")],
                    ..s(5, Phase::Healthy, "1.3.9", "1.3.9")
                },
                "waiting",
            ),
        ];
        for (i, (status, want)) in cases.into_iter().enumerate() {
            assert_eq!(kind(judge(&release(4, status), &goal)), want, "case {i}");
        }
        let any = Goal { version: None, ..goal };
        assert_eq!(kind(judge(&release(4, s(4, Phase::Healthy, "1.3.9", "1.3.9")), &any)), "done");
    }
}
