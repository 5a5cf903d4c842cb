//! `freeze ENV` / `unfreeze ENV`: one-off freeze windows on the Environment, or an override that
//! lets one app through a freeze. Each leaves an Event naming who and why.

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
    let patch =
        json!({"metadata": {"resourceVersion": env.resource_version()}, "spec": {"freezeWindows": windows}});
    s.merge_patch::<Environment>(&name, patch).await
}

pub async fn freeze(s: &Session, env_name: &str, reason: &str, until: Until) -> CliResult<()> {
    let env = s.environment(env_name).await?;
    // Whole seconds: the times end up in messages people read.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let end = match until {
        Until::Open => None,
        Until::For(d) => Some(
            now + jiff::SignedDuration::try_from(d).map_err(|e| CliError::Usage(format!("--for: {e}")))?,
        ),
        Until::At(t) if t <= now => return Err(CliError::Usage(format!("--until {t} is in the past"))),
        Until::At(t) => Some(t),
    };
    let by = s.actor().await;
    let window = FreezeWindow {
        reason: Some(format!("{reason} (by {by})")),
        start: Some(now.to_string()),
        end: end.map(|t| t.to_string()),
        weekly: None,
    };
    let mut windows = env.spec.freeze_windows.clone();
    windows.push(window);
    let updated = set_windows(s, &env, &windows).await?;
    let until_text = end.map_or("until `tuskfish unfreeze`".to_string(), |t| format!("until {t}"));
    record(s, updated.object_ref(&()), Reason::Frozen, format!("frozen {until_text} by {by}: {reason}"))
        .await;
    say(s, &format!("{env_name} frozen {until_text}: new versions wait, rollbacks still go ahead"));
    Ok(())
}

pub async fn unfreeze(s: &Session, env_name: &str, reason: Option<&str>) -> CliResult<()> {
    let env = s.environment(env_name).await?;
    let now = Timestamp::now();
    let (active_once, rest): (Vec<FreezeWindow>, Vec<FreezeWindow>) = env
        .spec
        .freeze_windows
        .iter()
        .cloned()
        .partition(|w| w.weekly.is_none() && matches!(active_until(w, now), Ok(Some(_))));
    let weekly_active = rest.iter().any(|w| matches!(active_until(w, now), Ok(Some(_))));
    if active_once.is_empty() {
        if weekly_active {
            return Err(CliError::Failed(format!(
                "{env_name} is in a weekly freeze window, which is policy in the Environment's spec; edit the Environment, or let one app through with `tuskfish unfreeze {env_name} --override APP --reason ...`"
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
            if weekly_active { "; a weekly window is still active" } else { "" }
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
