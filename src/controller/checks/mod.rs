//! Verification at the edge: starts the checks a healthy rollout must pass (Jobs through the API
//! server, HTTP requests from the operator) and reads where they stand. What that means for the
//! rollout is `plan::verification`'s to decide.

mod jobs;
mod probes;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

pub use probes::Probes;

use super::cluster::Cluster;
use super::error::Result;
use super::policies::Policies;
use crate::api::{Environment, Release, ReleaseStatus, VERIFY_REQUEST_ANNOTATION, VerificationStatus};
use crate::http::HttpClient;
use crate::plan::Health;
use crate::plan::grants::Grants;
use crate::plan::verification::{self as plan, CheckState};

/// What running the checks needs of the operator: no more (not the whole Context).
pub struct Checker<'a> {
    /// What the pipeline may apply (a check Job is applied like any other object).
    pub grants: &'a Grants,
    /// Where HTTP checks may connect on the pipeline's behalf (from `grants`, when one runs).
    pub policies: &'a Policies,
    pub probes: &'a Probes,
    pub http: &'a HttpClient,
}

/// Which version's verification, over which status, and the rollout in flight (if one is).
pub struct Run<'a> {
    pub version: &'a str,
    pub rollout_started: Option<&'a Time>,
    /// Where the Release's objects, and so its check Jobs, run.
    pub cluster: &'a Cluster,
    /// The status decided on (its verification so far).
    pub prev: &'a ReleaseStatus,
    pub now: &'a Time,
}

/// The rollout's health once verification is taken into account, and the run's status when this
/// step looked at a run that is not finished yet.
pub async fn verified(
    checker: &Checker<'_>,
    rel: &Release,
    env: &Environment,
    run: Run<'_>,
    health: Health,
) -> Result<(Health, Option<VerificationStatus>)> {
    let Run { prev, now, .. } = run;
    if health != Health::Healthy {
        return Ok((health, None));
    }
    let checks = plan::checks_for(env, rel);
    let Some(key) = (!checks.is_empty())
        .then(|| plan::run_key(prev, run.version, run.rollout_started, requested_at(rel)))
        .flatten()
    else {
        return Ok((health, None));
    };
    if let Some(done) = prev.verification.as_ref().filter(|v| v.run == key && v.result.is_final()) {
        return Ok((plan::health_of(done), None));
    }
    // What the Environment's manifests see, so a check names the same `${…}`.
    let vars = crate::render::variables_for(env, rel, &rel.spec.app, run.version);
    let mut states = Vec::with_capacity(checks.len());
    for check in checks {
        let state = match (&check.job, &check.http) {
            // A check Job is applied like any other object: only where the pipeline's policy
            // lets it apply Jobs (an agent's hub judges kinds for it).
            (Some(job), _) => match checker.grants.kind("batch", "Job") {
                Err(why) => CheckState::Failed(format!("the check Job is not run: {why}")),
                Ok(()) => jobs::state(run.cluster, rel, env, &check.name, job, &key, &vars).await?,
            },
            (None, Some(http)) => {
                let egress = checker.policies.egress_of(checker.grants);
                checker.probes.state(checker.http, &egress, rel, &key, &check.name, http, &vars)
            }
            (None, None) => CheckState::Failed("the check has neither job nor http".into()),
        };
        states.push((check.name.clone(), state));
    }
    let report = plan::judge(key, run.version, &states, prev.verification.as_ref(), now);
    Ok((plan::health_of(&report), Some(report)))
}

/// When `tuskfish verify` last asked for the checks to run again (an unreadable time is no request).
fn requested_at(rel: &Release) -> Option<jiff::Timestamp> {
    rel.annotations().get(VERIFY_REQUEST_ANNOTATION)?.parse().ok()
}

/// Forgets the checks of a Release that is gone (its Jobs are removed with it, see `jobs::remove`).
pub use jobs::remove as remove_jobs;
