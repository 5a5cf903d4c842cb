//! Publish: the status write (none when the cache shows it unchanged; progress text alone may wait),
//! then the Events and metrics of what changed.

use std::time::{Duration, Instant};

use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use super::gather::Basis;
use crate::api::{
    ConditionType, NoticeKind, Phase, Reason, Record, Release, ReleaseStatus, RolloutResult, find_condition,
};
use crate::controller::caches::cached;
use crate::controller::context::Context;
use crate::controller::deferred;
use crate::controller::error::Result;
use crate::controller::events::emit as event;
use crate::controller::ledger;
use crate::controller::queue::Next;
use crate::controller::status::patch_status_if_changed;
use crate::plan::gates::approvals::{self, APPROVED_BY};
use crate::plan::record::{Written, earliest};
use crate::plan::status::rollout_ended;
use crate::plan::{audit, coalesce, insights};
use crate::telemetry::EnvironmentLabel;

/// Progress detail is written at most this often (see [`crate::plan::coalesce`]).
const PROGRESS_DETAIL_EVERY: Duration = Duration::from_secs(5);

/// Writes `status` (computed over `basis`, the status decided on) and tells what changed.
pub(super) async fn publish(
    ctx: &Context,
    rel: &Release,
    basis: &Basis,
    status: ReleaseStatus,
    written: Written,
) -> Result<Next> {
    let (prev, rolled_back) = (&basis.prev, basis.rolled_back.as_deref());
    // Records first: a status that says a rollout ended is never written before its record (a
    // crash in between records it again, under the same key).
    record_ended(ctx, rel, prev, &status).await?;
    record_approvals(ctx, rel).await?;
    // The end of the window of the status held back that this reconcile decided on (see
    // [`deferred`]).
    let held_until = basis.held_until;
    let now = Instant::now();
    // A rollout that is still progressing may wait for its first write (see `deferred`); what it
    // started is told now, as if the status were written.
    let due = held_until.or_else(|| written.new_rollout.then(|| now + ctx.status_settle));
    if status.phase == Some(Phase::Progressing)
        && let Some((due, left)) = due.and_then(|d| Some((d, deferred::left(d, now)?)))
    {
        if held_until.is_none() {
            tell_decision(ctx, rel, &status, written, rolled_back);
        }
        ctx.deferred.hold(rel, status, due);
        return Ok(Next::requeue(earliest(written.wake, Some(left)).unwrap_or(left)));
    }
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &rel.namespace().unwrap_or_default());
    // After an apply (or over a held status) the status is written even if it looks unchanged: the
    // cached Release may be older than our last write, and the write's resourceVersion precondition
    // then sends us round again with fresh data instead of leaving a stale inventory on the server.
    let base = if written.acted || held_until.is_some() { None } else { rel.status.as_ref() };
    // Progress text alone may wait (see `plan::coalesce`); the next real change is written at once.
    if base.is_some_and(|b| coalesce::only_progress_detail(b, &status))
        && let Some(later) = ctx.own_writes.too_soon(rel, PROGRESS_DETAIL_EVERY)
    {
        return Ok(Next::requeue(earliest(written.wake, Some(later)).unwrap_or(later)));
    }
    if patch_status_if_changed(&api, &ctx.own_writes, rel, base, &status).await? {
        ctx.deferred.written(rel);
        if held_until.is_none() {
            tell_decision(ctx, rel, &status, written, rolled_back);
        }
        record_transition(ctx, rel, rel.status.as_ref().unwrap_or(prev), &status);
    }
    Ok(written.wake.map_or_else(Next::await_change, Next::requeue))
}

/// Writes the audit record of each rollout that ended between `prev` and `next`.
async fn record_ended(
    ctx: &Context,
    rel: &Release,
    prev: &ReleaseStatus,
    next: &ReleaseStatus,
) -> Result<()> {
    let ended = audit::ended_rollouts(&prev.history, &next.history);
    if ended.is_empty() {
        return Ok(());
    }
    let ns = rel.namespace().unwrap_or_default();
    let app = &rel.spec.app;
    let versions = cached(&ctx.stores.app_versions, &ns, ctx.index.app_versions_of(&ns, app));
    let facts = |version: &str| {
        let av = versions.iter().find(|av| av.spec.version == version);
        audit::VersionFacts {
            changes: av.map(|av| av.spec.changes.iter().map(|c| c.id.clone()).collect()).unwrap_or_default(),
            published_at: av.and_then(|av| av.status.as_ref()?.published_at.clone()),
        }
    };
    let name = rel.name_any();
    let records =
        ended.into_iter().map(|e| audit::rollout_record(&name, &rel.spec, e, facts(&e.0.version))).collect();
    let subject = ledger::Subject { namespace: &ns, environment: &rel.spec.environment, app };
    ledger::write(&ctx.ledger, &subject, records).await
}

/// Writes the audit record of each Approval (or rejection) of this Release in its Environment
/// that this process has not recorded yet.
async fn record_approvals(ctx: &Context, rel: &Release) -> Result<()> {
    let (ns, name) = (rel.namespace().unwrap_or_default(), rel.name_any());
    let (app, env) = (&rel.spec.app, &rel.spec.environment);
    let approvals = cached(&ctx.stores.approvals, &ns, ctx.index.approvals_for(&ns, &name));
    // Those given for this Release as the approval gate reads them (not one given to an earlier
    // Release of this name, for another app or Environment).
    let subject = approvals::Subject {
        release: &name,
        app,
        environment: env,
        created: rel.metadata.creation_timestamp.as_ref().map(|t| t.0),
        product_version_created: None,
    };
    let fresh: Vec<(String, Record)> = approvals
        .iter()
        .filter(|a| approvals::given_for(a, &subject))
        .filter_map(|a| {
            let uid = a.metadata.uid.clone()?;
            (!ctx.recorded.contains(&uid)).then(|| Some((uid, audit::approval_record(&name, a)?)))?
        })
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let (uids, records): (Vec<String>, Vec<Record>) = fresh.into_iter().unzip();
    let subject = ledger::Subject { namespace: &ns, environment: env, app };
    ledger::write(&ctx.ledger, &subject, records).await?;
    ctx.recorded.insert(uids, || {
        ctx.stores.approvals.state().iter().filter_map(|a| a.metadata.uid.clone()).collect()
    });
    Ok(())
}

/// The delivery figures a successful rollout moves: the lead time of each change it brought,
/// and the time to restore when it ended a failure.
fn observe_delivery(ctx: &Context, rel: &Release, prev: &ReleaseStatus, next: &ReleaseStatus) {
    let label = EnvironmentLabel { environment: rel.spec.environment.clone() };
    if let Some(took) = insights::restored(&next.history) {
        ctx.metrics.time_to_restore.get_or_create(&label).observe(took.as_secs_f64());
    }
    let brought = insights::arrived(prev, next);
    if brought.is_empty() {
        return;
    }
    let ns = rel.namespace().unwrap_or_default();
    let versions = cached(&ctx.stores.app_versions, &ns, ctx.index.app_versions_of(&ns, &rel.spec.app));
    let first_published = crate::audit::first_published(versions.iter().map(AsRef::as_ref));
    let now = jiff::Timestamp::now();
    for change in brought {
        if let Some(first) = first_published.get(change) {
            ctx.metrics
                .lead_time
                .get_or_create(&label)
                .observe(now.duration_since(*first).as_secs_f64().max(0.0));
        }
    }
}

/// What this reconcile decided, told once, whether its status is written now or held back: a
/// rollback, a rollout started.
fn tell_decision(
    ctx: &Context,
    rel: &Release,
    status: &ReleaseStatus,
    written: Written,
    rolled_back: Option<&str>,
) {
    let env = &rel.spec.environment;
    if let Some(v) = rolled_back {
        let back_to = status.desired_version.clone().unwrap_or_else(|| "nothing".into());
        let note = format!("version {v} failed in {env}; rolling back to {back_to}");
        warn!(release = %rel.name_any(), failed = %v, %back_to, "rolling back");
        event(ctx, &rel.object_ref(&()), EventType::Warning, Reason::RollingBack, note);
        ctx.metrics.rollbacks.get_or_create(&EnvironmentLabel { environment: env.clone() }).inc();
    }
    // A rollback from a version that did not fail here (a veto) says why in its history entry; one
    // from a failure was told above, when the version was marked failed.
    let other_rollback = status.history.first().filter(|h| {
        h.rollback_of.as_ref().is_some_and(|v| !status.failed_versions.contains(v)) && rolled_back.is_none()
    });
    if let Some(entry) = other_rollback.filter(|_| written.new_rollout) {
        let why = entry.message.clone().unwrap_or_default();
        let note = format!("rolling back to {} in {env}: {why}", entry.version);
        warn!(release = %rel.name_any(), back_to = %entry.version, %why, "rolling back");
        event(ctx, &rel.object_ref(&()), EventType::Warning, Reason::RollingBack, note);
        ctx.metrics.rollbacks.get_or_create(&EnvironmentLabel { environment: env.clone() }).inc();
    }
    if written.new_rollout {
        // The one Event of a rollout says how it ended (see `record_transition`); its start is an
        // Event only where a Notification listens for it.
        let version = status.desired_version.clone().unwrap_or_default();
        let ns = rel.namespace().unwrap_or_default();
        if ctx.index.notice_wanted(&ns, NoticeKind::RolloutStarted) {
            let note = format!("rolling out {} {version} to environment {env}", rel.spec.app);
            event(ctx, &rel.object_ref(&()), EventType::Normal, Reason::RolloutStarted, note);
        }
        let note = status.history.first().and_then(|h| h.message.as_deref()).unwrap_or_default();
        if let Some(approved) = note.split("; ").find(|n| n.starts_with(APPROVED_BY)) {
            let note = format!("{} {version} for environment {env} {approved}", rel.spec.app);
            event(ctx, &rel.object_ref(&()), EventType::Normal, Reason::Approved, note);
        }
        info!(release = %rel.name_any(), environment = %env, %version, "rollout started");
        ctx.metrics.rollout(env, "started");
        observe_publish_to_rollout(ctx, rel, status, &version);
    }
}

/// Time from an AppVersion's creation to the start of its rollout here; rollbacks and re-rollouts of
/// old versions would only blur the figure, so only a first rollout of a version counts.
fn observe_publish_to_rollout(ctx: &Context, rel: &Release, next: &ReleaseStatus, version: &str) {
    let first_here = next.history.iter().filter(|h| h.version == version).count() == 1;
    let rollback = next.history.first().is_some_and(|h| h.rollback_of.is_some());
    if !first_here || rollback {
        return;
    }
    let ns = rel.namespace().unwrap_or_default();
    let Ok(parsed) = semver::Version::parse(version) else { return };
    let named = ctx.index.app_versions_at(&ns, &rel.spec.app, &parsed);
    let created = cached(&ctx.stores.app_versions, &ns, named)
        .into_iter()
        .find_map(|av| av.metadata.creation_timestamp.clone());
    if let Some(created) = created {
        let took = jiff::Timestamp::now().duration_since(created.0);
        ctx.metrics.appversion_to_rollout.observe(took.as_secs_f64().max(0.0));
    }
}

/// Events for what a person watching the Release wants to know.
fn record_transition(ctx: &Context, rel: &Release, prev: &ReleaseStatus, next: &ReleaseStatus) {
    let reference = rel.object_ref(&());
    tell_waiting(ctx, rel, prev, next);
    let env = &rel.spec.environment;
    let reason_of = |s: &ReleaseStatus| {
        find_condition(&s.conditions, ConditionType::Ready)
            .and_then(|c| Some((Reason::parse(&c.reason)?, c.message.clone())))
    };
    let (Some((reason, message)), was) = (reason_of(next), reason_of(prev)) else {
        return;
    };
    if let Some(ended) = rollout_ended(prev, next) {
        let took = ended
            .finished_at
            .as_ref()
            .map(|f| format!(" in {:.1}s", f.0.duration_since(ended.started_at.0).as_secs_f64()))
            .unwrap_or_default();
        if ended.result == RolloutResult::Succeeded {
            ctx.metrics.rollout(env, "succeeded");
            observe_delivery(ctx, rel, prev, next);
            let note = format!("rolled out {} to environment {env}{took}", ended.version);
            info!(release = %rel.name_any(), %note, "rollout complete");
            event(ctx, &reference, EventType::Normal, Reason::RolloutComplete, note);
        } else {
            ctx.metrics.rollout(env, "failed");
            warn!(release = %rel.name_any(), %reason, %message, "rollout failed");
            event(ctx, &reference, EventType::Warning, reason, message);
        }
        return;
    }
    // Rollouts are told when they end (above); other changes of what the Release waits for are told
    // as they happen.
    let rollout_reasons =
        [Reason::RolloutInProgress, Reason::RolloutComplete, Reason::ProgressDeadlineExceeded];
    if was.as_ref().map(|w| w.0) == Some(reason) || rollout_reasons.contains(&reason) {
        return;
    }
    // Waiting (for an approval, a soak, an Environment being set up) is normal; only a failed or
    // degraded Release is a warning.
    let type_ = match next.phase {
        Some(Phase::Failed | Phase::Degraded) => EventType::Warning,
        _ => EventType::Normal,
    };
    if type_ == EventType::Warning {
        warn!(release = %rel.name_any(), %reason, %message, "release failed");
    } else {
        info!(release = %rel.name_any(), %reason, %message, "release status");
    }
    event(ctx, &reference, type_, reason, message);
}

/// What a newer version newly waits for (the `Held` condition), and forward ports newly missing:
/// told as they appear, once. A Release with nothing running yet tells its wait through `Ready`
/// already (see `record_transition`).
fn tell_waiting(ctx: &Context, rel: &Release, prev: &ReleaseStatus, next: &ReleaseStatus) {
    let reference = rel.object_ref(&());
    let active =
        |s: &ReleaseStatus, t| find_condition(&s.conditions, t).filter(|c| c.status == "True").cloned();
    let ready_reason =
        |s: &ReleaseStatus| find_condition(&s.conditions, ConditionType::Ready).map(|c| c.reason.clone());
    if let Some(held) = active(next, ConditionType::Held)
        && active(prev, ConditionType::Held).is_none_or(|h| h.reason != held.reason)
        && ready_reason(next).as_ref() != Some(&held.reason)
        && let Some(reason) = Reason::parse(&held.reason)
    {
        event(ctx, &reference, EventType::Normal, reason, held.message);
    }
    if let Some(missing) = active(next, ConditionType::ForwardPortMissing)
        && active(prev, ConditionType::ForwardPortMissing).is_none_or(|m| m.message != missing.message)
    {
        event(ctx, &reference, EventType::Warning, Reason::ChangesMissing, missing.message);
    }
}
