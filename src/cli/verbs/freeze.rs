//! `freeze ENV` / `unfreeze ENV`: one-off freeze windows on the Environment, or an override that
//! lets one app through a freeze; `freeze --all` / `unfreeze --all` stop and restart the whole line.
//! Each leaves an Event naming who and why.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::deploy::say;
use crate::api::{Environment, FREEZE_OVERRIDE_ANNOTATION, FreezeWindow, Reason, Release};
use crate::cli::error::{CliError, CliResult};
use crate::cli::session::{CLI_FIELD_MANAGER, Session};
use crate::plan::gates::active_until;

pub enum Until {
    Open,
    For(Duration),
    At(Timestamp),
}

pub fn parse_until(for_: Option<&str>, until: Option<&str>) -> CliResult<Until> {
    match (for_, until) {
        (Some(_), Some(_)) => Err(CliError::Usage("give --for or --until, not both".into())),
        (Some(d), None) => crate::duration::parse_duration(d)
            .filter(|d| !d.is_zero())
            .map(Until::For)
            .ok_or_else(|| CliError::Usage(format!("--for {d:?}: expected a duration like 90m, 2h or 1d"))),
        (None, Some(t)) => t.parse::<Timestamp>().map(Until::At).map_err(|e| {
            CliError::Usage(format!(
                "--until {t:?}: expected an RFC 3339 time like 2026-12-24T18:00:00Z: {e}"
            ))
        }),
        (None, None) => Ok(Until::Open),
    }
}

/// Leaves an audit Event on `reference`: who did what, and why.
pub(super) async fn record(
    s: &Session,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    reason: Reason,
    note: String,
) {
    let recorder =
        Recorder::new(s.client.clone(), Reporter { controller: CLI_FIELD_MANAGER.into(), instance: None });
    let ev = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    // An audit Event is a courtesy; the change itself already happened.
    if let Err(e) = recorder.publish(&ev, &reference).await {
        eprintln!("warning: could not record an Event: {e}");
    }
}

/// Replaces `spec.freezeWindows` with compare-and-swap on the resourceVersion.
async fn set_windows(s: &Session, env: &Environment, windows: &[FreezeWindow]) -> CliResult<Environment> {
    let name = env.name_any();
    if let Some(applier) = super::deploy::applied_from_git(env, &[&["spec", "freezeWindows"]]) {
        let wanted = serde_json::to_string(windows).unwrap_or_default();
        return Err(CliError::Owned(format!(
            "Environment {name}'s freezeWindows are applied from git by {applier}, which would undo a live edit: set them in git to {wanted}"
        )));
    }
    let patch =
        json!({"metadata": {"resourceVersion": env.resource_version()}, "spec": {"freezeWindows": windows}});
    s.merge_patch::<Environment>(&name, patch).await
}

/// The end of a window that starts `now`, as `until` asks.
fn window_end(now: Timestamp, until: Until) -> CliResult<Option<Timestamp>> {
    match until {
        Until::Open => Ok(None),
        Until::For(d) => jiff::SignedDuration::try_from(d)
            .map(|d| Some(now + d))
            .map_err(|e| CliError::Usage(format!("--for: {e}"))),
        Until::At(t) if t <= now => Err(CliError::Usage(format!("--until {t} is in the past"))),
        Until::At(t) => Ok(Some(t)),
    }
}

/// Now, in whole seconds: the times end up in messages people read.
fn now_seconds() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

/// Adds a one-off window from `now` to `end` to `env`, with an Event naming who and why.
async fn add_window(
    s: &Session,
    env: &Environment,
    window: FreezeWindow,
    note: String,
) -> CliResult<Environment> {
    let mut windows = env.spec.freeze_windows.clone();
    windows.push(window);
    let updated = set_windows(s, env, &windows).await?;
    record(s, updated.object_ref(&()), Reason::Frozen, note).await;
    Ok(updated)
}

fn until_text(end: Option<Timestamp>) -> String {
    end.map_or("until `tuskfish unfreeze`".to_string(), |t| format!("until {t}"))
}

pub async fn freeze(s: &Session, env_name: &str, reason: &str, until: Until) -> CliResult<()> {
    let env = s.environment(env_name).await?;
    let now = now_seconds();
    let end = window_end(now, until)?;
    let by = s.actor().await;
    let window = FreezeWindow {
        reason: Some(format!("{reason} (by {by})")),
        start: Some(now.to_string()),
        end: end.map(|t| t.to_string()),
        ..Default::default()
    };
    let until = until_text(end);
    add_window(s, &env, window, format!("frozen {until} by {by}: {reason}")).await?;
    say(s, &format!("{env_name} frozen {until}: new versions wait, rollbacks still go ahead"));
    Ok(())
}

/// Freezes every Environment of the pipeline namespace at once (`freeze --all`). Each gets a window
/// marked `lineStop`, so that `unfreeze --all` lifts exactly these. An Environment that cannot be
/// frozen (RBAC, a conflicting edit) is named, and the others stay frozen: a half-stopped line is
/// said loudly, never hidden.
pub async fn stop_the_line(s: &Session, reason: &str, until: Until) -> CliResult<()> {
    let envs = s.environments().await?;
    if envs.is_empty() {
        return Err(CliError::NotFound(format!("no Environments in namespace {}: nothing to stop", s.ns)));
    }
    let now = now_seconds();
    let end = window_end(now, until)?;
    let by = s.actor().await;
    let until = until_text(end);
    let window = FreezeWindow {
        reason: Some(format!("line stopped: {reason} (by {by})")),
        start: Some(now.to_string()),
        end: end.map(|t| t.to_string()),
        line_stop: true,
        ..Default::default()
    };
    let mut frozen = Vec::new();
    let mut failed = Vec::new();
    for env in &envs {
        let note = format!("line stopped {until} by {by}: {reason}");
        match add_window(s, env, window.clone(), note).await {
            Ok(_) => frozen.push(env.name_any()),
            Err(e) => failed.push(format!("{}: {e}", env.name_any())),
        }
    }
    say(
        s,
        &format!(
            "line stopped {until} in {} ({}): new versions wait, rollbacks still go ahead; `tuskfish unfreeze --all` lifts it",
            s.ns,
            frozen.join(", ")
        ),
    );
    if !failed.is_empty() {
        return Err(CliError::Failed(format!(
            "could not freeze {} of {} Environments: {}",
            failed.len(),
            envs.len(),
            failed.join("; ")
        )));
    }
    Ok(())
}

/// Lifts a stopped line: removes the `lineStop` windows from every Environment, leaving each
/// Environment's own freezes in place.
pub async fn restart_the_line(s: &Session, reason: Option<&str>) -> CliResult<()> {
    let by = s.actor().await;
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let mut lifted = Vec::new();
    let mut still_frozen = Vec::new();
    let mut failed = Vec::new();
    let now = Timestamp::now();
    for env in s.environments().await? {
        let (stops, rest): (Vec<FreezeWindow>, Vec<FreezeWindow>) =
            env.spec.freeze_windows.iter().cloned().partition(|w| w.line_stop);
        if rest.iter().any(|w| matches!(active_until(w, now), Ok(Some(_)))) {
            still_frozen.push(env.name_any());
        }
        if stops.is_empty() {
            continue;
        }
        match set_windows(s, &env, &rest).await {
            Ok(updated) => {
                let note = format!("line restarted by {by}{why}");
                record(s, updated.object_ref(&()), Reason::Unfrozen, note).await;
                lifted.push(env.name_any());
            }
            Err(e) => failed.push(format!("{}: {e}", env.name_any())),
        }
    }
    if lifted.is_empty() && failed.is_empty() {
        say(s, &format!("the line in {} is not stopped", s.ns));
    } else {
        say(s, &format!("line restarted in {} ({})", s.ns, lifted.join(", ")));
    }
    if !still_frozen.is_empty() {
        say(s, &format!("still frozen by their own windows: {}", still_frozen.join(", ")));
    }
    if !failed.is_empty() {
        return Err(CliError::Failed(format!("could not lift the line stop in {}", failed.join("; "))));
    }
    Ok(())
}

pub async fn unfreeze(s: &Session, env_name: &str, reason: Option<&str>) -> CliResult<()> {
    let env = s.environment(env_name).await?;
    let now = Timestamp::now();
    let (active_once, rest): (Vec<FreezeWindow>, Vec<FreezeWindow>) =
        env.spec.freeze_windows.iter().cloned().partition(|w| {
            w.weekly.is_none() && w.recurrence.is_none() && matches!(active_until(w, now), Ok(Some(_)))
        });
    let policy_active = rest.iter().any(|w| matches!(active_until(w, now), Ok(Some(_))));
    if active_once.is_empty() {
        if policy_active {
            return Err(CliError::Failed(format!(
                "{env_name} is in a weekly or recurring freeze window, which is policy in the Environment's spec; edit the Environment, or let one app through with `tuskfish unfreeze {env_name} --override APP --reason ...`"
            )));
        }
        say(s, &format!("{env_name} is not frozen"));
        return Ok(());
    }
    let updated = set_windows(s, &env, &rest).await?;
    let by = s.actor().await;
    let reasons: Vec<String> = active_once.iter().filter_map(|w| w.reason.clone()).collect();
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    record(
        s,
        updated.object_ref(&()),
        Reason::Unfrozen,
        format!("unfrozen by {by}{why} (was: {})", reasons.join("; ")),
    )
    .await;
    say(
        s,
        &format!(
            "{env_name} unfrozen (removed {} window(s){})",
            active_once.len(),
            if policy_active { "; a weekly or recurring window is still active" } else { "" }
        ),
    );
    Ok(())
}

/// Lets one app deploy in a frozen environment by annotating its Release (the reason lands in the
/// rollout's history).
pub async fn override_freeze(s: &Session, env_name: &str, app: &str, reason: &str) -> CliResult<()> {
    let release = s.existing_release(app, env_name).await?;
    let by = s.actor().await;
    let text = format!("{reason} (by {by})");
    let annotations: BTreeMap<&str, &str> = BTreeMap::from([(FREEZE_OVERRIDE_ANNOTATION, text.as_str())]);
    let updated = s
        .merge_patch::<Release>(&release.name_any(), json!({"metadata": {"annotations": annotations}}))
        .await?;
    record(
        s,
        updated.object_ref(&()),
        Reason::FreezeOverridden,
        format!("freeze of {env_name} overridden by {by}: {reason}"),
    )
    .await;
    say(
        s,
        &format!(
            "{}: may deploy while {env_name} is frozen ({text}); remove with `kubectl annotate release {} {FREEZE_OVERRIDE_ANNOTATION}-`",
            updated.name_any(),
            updated.name_any()
        ),
    );
    Ok(())
}
