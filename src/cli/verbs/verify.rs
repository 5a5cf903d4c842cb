//! `verify APP --env E`: runs the verification checks of what runs there again and reports each
//! check. The request is an annotation on the Release (the time it was made); the operator runs the
//! checks and records them in `status.verification`.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use super::deploy::say;
use crate::api::{Release, VERIFY_REQUEST_ANNOTATION, VerificationResult, VerificationStatus};
use crate::cli::error::{CliError, CliResult};
use crate::cli::session::Session;
use crate::cli::wait::{Verdict, watch_release};
use crate::plan::verification::{checks_for, requested_run};

pub async fn verify(s: &Session, app: &str, env: &str, timeout: Duration) -> CliResult<()> {
    let release = s.existing_release(app, env).await?;
    let environment = s.environment(env).await?;
    let checks = checks_for(&environment, &release);
    if checks.is_empty() {
        return Err(CliError::Usage(format!(
            "{app} has no verification checks in {env}: add them to spec.verify of Environment {env} or of Release {}",
            release.name_any()
        )));
    }
    let status = release.status.clone().unwrap_or_default();
    let Some(version) = status.current_version.clone().or(status.desired_version.clone()) else {
        return Err(CliError::Failed(format!("{app} runs nothing in {env} yet: deploy a version first")));
    };
    // The operator ignores a request older than the version's rollout, and a request at the time
    // of the last one is that one: a clock behind the cluster's, or two requests in a row, must
    // still make a new one.
    let rollout = status.history.iter().find(|h| h.version == version).map(|h| h.started_at.0);
    let last = release.annotations().get(VERIFY_REQUEST_ANNOTATION).and_then(|t| t.parse::<Timestamp>().ok());
    let later = |t: Timestamp| t.checked_add(jiff::SignedDuration::from_millis(1)).unwrap_or(t);
    let at =
        [rollout.map(later), last.map(later)].into_iter().flatten().fold(Timestamp::now(), Timestamp::max);
    let patch = json!({"metadata": {"annotations": {VERIFY_REQUEST_ANNOTATION: at.to_string()}}});
    s.merge_patch::<Release>(&release.name_any(), patch).await?;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    say(s, &format!("verifying {app} {version} in {env}: {}", names.join(", ")));
    let run = requested_run(&version, at);
    let done = watch_release(s, &release.name_any(), timeout, |r| judge(r, &run)).await?;
    if let Some(v) = done.status.and_then(|st| st.verification) {
        for c in &v.checks {
            say(s, &format!("  {} {:?}: {}", c.name, c.result, c.message));
        }
    }
    Ok(())
}

fn judge(r: &Release, run: &str) -> Verdict {
    let v = r.status.as_ref().and_then(|s| s.verification.as_ref()).filter(|v| v.run == run);
    match v {
        None => Verdict::Waiting("waiting for the operator to start the checks".into()),
        Some(v) => match v.result {
            VerificationResult::Passed => Verdict::Done(format!("{} passed every check", v.version)),
            VerificationResult::Failed => {
                Verdict::Failed(format!("{} failed verification: {}", v.version, failed(v)))
            }
            VerificationResult::Running => Verdict::Waiting(format!("checks running: {}", running(v))),
        },
    }
}

fn failed(v: &VerificationStatus) -> String {
    of(v, VerificationResult::Failed)
}

fn running(v: &VerificationStatus) -> String {
    of(v, VerificationResult::Running)
}

fn of(v: &VerificationStatus, result: VerificationResult) -> String {
    v.checks
        .iter()
        .filter(|c| c.result == result)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}
