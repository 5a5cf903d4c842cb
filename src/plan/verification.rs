//! Verification decisions: which checks a rollout runs, which run a healthy version is in, what the
//! checks' states add up to, and what an HTTP answer or a finished Job says. Pure.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use super::Health;
use crate::api::{
    Check, CheckStatus, Environment, Release, ReleaseStatus, VerificationResult, VerificationStatus,
    truncate_message,
};

/// Longest message kept per check (status stays small with ten checks).
pub const CHECK_MESSAGE_LIMIT: usize = 512;

/// The checks a rollout of `rel` in `env` runs: the Environment's, then the Release's (a Release's
/// check replaces the Environment's check of the same name).
pub fn checks_for<'a>(env: &'a Environment, rel: &'a Release) -> Vec<&'a Check> {
    let own = |name: &str| rel.spec.verify.iter().any(|c| c.name == name);
    env.spec.verify.iter().filter(|c| !own(&c.name)).chain(rel.spec.verify.iter()).collect()
}

/// The verification run a healthy `version` is in, if any: the rollout still in flight
/// (`rollout_started`: when it started); else a `tuskfish verify` request made after the version's
/// last rollout started; else the last recorded run of this version (whose result stands).
pub fn run_key(
    status: &ReleaseStatus,
    version: &str,
    rollout_started: Option<&Time>,
    request: Option<jiff::Timestamp>,
) -> Option<String> {
    if let Some(t) = rollout_started {
        // Whole seconds: what the status keeps of a time once written (the key must not change
        // when the rollout's start is read back from the API server).
        let at = jiff::Timestamp::from_second(t.0.as_second()).unwrap_or(t.0);
        return Some(format!("{version} rollout {at}"));
    }
    let last_rollout = status.history.iter().find(|h| h.version == version).map(|h| h.started_at.0);
    if let Some(r) = request.filter(|r| last_rollout.is_none_or(|s| *r > s)) {
        return Some(requested_run(version, r));
    }
    status.verification.as_ref().filter(|v| v.version == version).map(|v| v.run.clone())
}

/// The run a `tuskfish verify` request made at `at` starts for `version`.
pub fn requested_run(version: &str, at: jiff::Timestamp) -> String {
    format!("{version} requested {at}")
}

/// When a rollout of the version that status wants is still in flight, when it started. A rollback
/// is not verified: it returns to a version that passed here before, and a check failing now
/// would leave nothing to go back to.
pub fn rollout_in_flight(status: &ReleaseStatus) -> Option<&Time> {
    let h = status.history.first()?;
    let in_flight = h.result == crate::api::RolloutResult::Progressing
        && status.desired_version.as_ref() == Some(&h.version)
        && h.rollback_of.is_none();
    in_flight.then_some(&h.started_at)
}

/// Where one check stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckState {
    Running(String),
    Passed(String),
    Failed(String),
}

impl CheckState {
    fn result(&self) -> VerificationResult {
        match self {
            Self::Running(_) => VerificationResult::Running,
            Self::Passed(_) => VerificationResult::Passed,
            Self::Failed(_) => VerificationResult::Failed,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Running(m) | Self::Passed(m) | Self::Failed(m) => m,
        }
    }
}

/// The run's status from its checks' states: Failed as soon as one failed, Passed when all passed.
/// `prev`: the status recorded so far, whose finish time a repeated verdict keeps.
pub fn judge(
    run: String,
    version: &str,
    states: &[(String, CheckState)],
    prev: Option<&VerificationStatus>,
    now: &Time,
) -> VerificationStatus {
    let result = if states.iter().any(|(_, s)| matches!(s, CheckState::Failed(_))) {
        VerificationResult::Failed
    } else if states.iter().all(|(_, s)| matches!(s, CheckState::Passed(_))) {
        VerificationResult::Passed
    } else {
        VerificationResult::Running
    };
    let finished_at = result.is_final().then(|| {
        prev.filter(|p| p.run == run && p.result == result)
            .and_then(|p| p.finished_at.clone())
            .unwrap_or_else(|| now.clone())
    });
    let checks = states
        .iter()
        .map(|(name, s)| CheckStatus {
            name: name.clone(),
            result: s.result(),
            message: truncate_message(s.message().to_string(), CHECK_MESSAGE_LIMIT),
        })
        .collect();
    VerificationStatus { run, version: version.to_string(), result, finished_at, checks }
}

/// What a run's status means for the rollout: it is healthy only once every check passed.
pub fn health_of(v: &VerificationStatus) -> Health {
    let of = |result| {
        v.checks
            .iter()
            .filter(|c| c.result == result)
            .map(|c| if c.message.is_empty() { c.name.clone() } else { format!("{}: {}", c.name, c.message) })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match v.result {
        VerificationResult::Passed => Health::Healthy,
        VerificationResult::Running => Health::Verifying { message: format!("verifying: {}", of(v.result)) },
        VerificationResult::Failed => {
            Health::VerificationFailed { message: format!("verification failed: {}", of(v.result)) }
        }
    }
}

/// The name of the Job that runs `check` for `run` of Release `namespace/release`: the check's
/// name (≤ 40 characters) and a hash, so one Job per check and run, within the 63 characters a
/// Job's name may have.
pub fn job_name(namespace: &str, release: &str, check: &str, run: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{release}/{check}/{run}"));
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{check}-{hex}")
}

/// What a Job says of its check (without its pods' messages, which the caller adds on failure).
pub fn job_state(job: &Job) -> CheckState {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is = |t: &str| conditions.into_iter().flatten().find(|c| c.type_ == t && c.status == "True");
    if is("Complete").is_some() {
        return CheckState::Passed(format!("Job {name} completed"));
    }
    if let Some(c) = is("Failed") {
        let why = [c.reason.as_deref(), c.message.as_deref()].into_iter().flatten().collect::<Vec<_>>();
        return CheckState::Failed(format!("Job {name} failed: {}", why.join(": ")));
    }
    let active = job.status.as_ref().and_then(|s| s.active).unwrap_or(0);
    CheckState::Running(if active > 0 {
        format!("Job {name} running")
    } else {
        format!("Job {name} started")
    })
}

/// Whether one HTTP answer passes: `Ok` with what passed, `Err` with what was wrong. The body is
/// never quoted: a check's URL is a tenant's to choose, and quoting what a service inside the
/// cluster answered would show it to anyone who may read the Release (its size is said instead).
pub fn http_verdict(
    status: u16,
    body: &str,
    expect: u16,
    body_matches: Option<&regex::Regex>,
) -> Result<String, String> {
    if status != expect {
        return Err(format!("got HTTP {status}, expected {expect} ({})", size_of(body)));
    }
    match body_matches {
        Some(re) if !re.is_match(body) => {
            Err(format!("HTTP {status}, but the body ({}) does not match /{re}/", size_of(body)))
        }
        _ => Ok(format!("HTTP {status}")),
    }
}

/// A body's size, for a message that must not quote it.
fn size_of(body: &str) -> String {
    match body.len() {
        0 => "empty body".into(),
        n => format!("body of {n} bytes"),
    }
}

#[cfg(test)]
mod tests;
