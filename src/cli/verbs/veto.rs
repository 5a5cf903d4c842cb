//! `veto APP VERSION --reason R` / `veto APP VERSION --lift`: a published version marked bad in the
//! whole pipeline. The veto lives in the AppVersion's annotations (its spec is immutable); the API
//! server admits it only in its author's name, and an Event records who set or lifted it and why.

use jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::deploy::say;
use super::freeze::record;
use crate::api::{Reason, VETO_ANNOTATION, VETOED_AT_ANNOTATION, VETOED_BY_ANNOTATION, Veto};
use crate::cli::error::{CliError, CliResult};
use crate::cli::session::{Session, list_or_none, parse_version};

pub async fn veto(s: &Session, app: &str, version: &str, reason: &str) -> CliResult<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CliError::Usage("--reason must say why the version is vetoed".into()));
    }
    let version = parse_version(version)?;
    let av = s.app_version(app, &version).await?;
    if let Some(existing) = Veto::of(&av) {
        say(s, &format!("{app} {version} is already {}", existing.describe()));
        return Ok(());
    }
    // The API server's name for us: the veto policy admits no other.
    let by = s.whoami().await?;
    let at = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let patch = json!({"metadata": {"resourceVersion": av.resource_version(), "annotations": {
        VETO_ANNOTATION: reason, VETOED_BY_ANNOTATION: by, VETOED_AT_ANNOTATION: at.to_string()}}});
    let updated = s.merge_patch::<crate::api::AppVersion>(&av.name_any(), patch).await?;
    let note = format!("{app} {version} vetoed by {by}: {reason}");
    record(s, updated.object_ref(&()), Reason::Vetoed, note).await;
    let running = environments_running(s, app, &version).await?;
    say(
        s,
        &format!(
            "vetoed {app} {version}: no environment deploys it; where it runs ({}), Releases with automatic rollback roll back",
            list_or_none(&running)
        ),
    );
    Ok(())
}

pub async fn lift(s: &Session, app: &str, version: &str, reason: Option<&str>) -> CliResult<()> {
    let version = parse_version(version)?;
    let av = s.app_version(app, &version).await?;
    let Some(existing) = Veto::of(&av) else {
        say(s, &format!("{app} {version} is not vetoed"));
        return Ok(());
    };
    let patch = json!({"metadata": {"resourceVersion": av.resource_version(), "annotations": {
        VETO_ANNOTATION: null, VETOED_BY_ANNOTATION: null, VETOED_AT_ANNOTATION: null}}});
    let updated = s.merge_patch::<crate::api::AppVersion>(&av.name_any(), patch).await?;
    let by = s.actor().await;
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let note = format!("veto of {app} {version} lifted by {by}{why} (was {})", existing.describe());
    record(s, updated.object_ref(&()), Reason::VetoLifted, note).await;
    say(s, &format!("lifted the veto of {app} {version}: environments may deploy it again"));
    Ok(())
}

/// The Environments where `app` runs `version` now.
async fn environments_running(s: &Session, app: &str, version: &semver::Version) -> CliResult<Vec<String>> {
    let mut envs: Vec<String> = s
        .releases()
        .await?
        .into_iter()
        .filter(|r| r.spec.app == app)
        .filter(|r| {
            let current = r.status.as_ref().and_then(|st| st.current_version.as_deref());
            current.and_then(|c| semver::Version::parse(c).ok()).as_ref() == Some(version)
        })
        .map(|r| r.spec.environment)
        .collect();
    envs.sort();
    Ok(envs)
}
