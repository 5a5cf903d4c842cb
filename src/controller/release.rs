//! Release reconciler: fetch → decide → apply → record.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::{ApplyFailure, Owner, apply_all, prune};
use super::context::{Context, cached};
use super::error::{Error, Result};
use super::events::publish;
use super::status::patch_status_if_changed;
use super::workloads::{WatchedKind, applied_of, live_of};
use crate::api::{
    AppVersion, CHANGES_LIMIT, Inventory, InventoryEntry, Phase, RELEASE_FINALIZER, Release, ReleaseStatus,
    RolloutResult, find_condition,
};
use crate::plan::drift::{self, Decision, Live};
use crate::plan::health::WorkloadState;
use crate::plan::status::{rollout_ended, set_forward_ports, set_held};
use crate::plan::{Health, Inputs, Outcome, assess, auto_rollback, next_status, rollback, select_target};
use crate::plan::{changes, coalesce};
use crate::render::{self, Rendered};
use crate::telemetry::EnvironmentLabel;

/// How long to wait before retrying a rendering that may succeed unchanged (e.g. a CRD not yet
/// installed); everything else waits for a change.
const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

pub async fn reconcile(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action> {
    let ns = rel.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &ns);
    // The finalizer helper adds (or, after cleanup, removes) the finalizer with a write of its own;
    // the cache then lags that write like it lags a status write, so the next reconcile waits for
    // it in the same way (after a removal: a stale copy would run the cleanup a second time).
    let ours = rel.finalizers().iter().any(|f| f == RELEASE_FINALIZER);
    let deleting = rel.metadata.deletion_timestamp.is_some();
    let before = (deleting == ours).then(|| rel.clone());
    let result = finalizer(&api, RELEASE_FINALIZER, rel, |event| async {
        match event {
            Finalizer::Apply(r) => converge(r, ctx.clone()).await,
            Finalizer::Cleanup(r) => cleanup(r, ctx.clone()).await,
        }
    })
    .await;
    let result = match result {
        // Removing the finalizer of a Release that is already gone: the cleanup is done.
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    if let (Some(before), Ok(_)) = (before, &result) {
        ctx.own_writes.wrote(before.as_ref());
    }
    result
}

fn owner(rel: &Release) -> Owner<'_> {
    Owner {
        namespace: rel.metadata.namespace.as_deref().unwrap_or_default(),
        name: rel.metadata.name.as_deref().unwrap_or_default(),
    }
}

async fn converge(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action> {
    let now = Time(jiff::Timestamp::now());
    let ns = rel.namespace().unwrap_or_default();
    let mut prev = rel.status.clone().unwrap_or_default();
    // A Degraded rollout with automatic rollback marks its version failed here first; selection
    // skips failed versions, so the last healthy one is chosen again below.
    let rolled_back = rollback::newly_failed(&prev, auto_rollback(&rel));
    if let Some(v) = &rolled_back {
        rollback::record_failed(&mut prev, v.clone());
    }
    let env = ctx.stores.environments.get(&ObjectRef::new(&rel.spec.environment).within(&ns));
    // Gathered through the index: only the objects this Release relates to, never a scan.
    let (ix, stores) = (&ctx.index, &ctx.stores);
    let (app, name) = (&rel.spec.app, rel.name_any());
    let app_versions = cached(&stores.app_versions, &ns, ix.app_versions_of(&ns, app));
    let same_app = cached(&stores.releases, &ns, ix.releases_of_app(&ns, app));
    let upstream: Vec<&Release> = rel.spec.promote_from.as_ref().map_or_else(Vec::new, |from| {
        same_app.iter().filter(|r| r.spec.environment == from.environment).map(|r| r.as_ref()).collect()
    });
    let in_env = cached(&stores.releases, &ns, ix.releases_in_environment(&ns, &rel.spec.environment));
    let peers: Vec<&Release> = in_env.iter().filter(|r| r.name_any() != name).map(|r| r.as_ref()).collect();
    let approvals = cached(&stores.approvals, &ns, ix.approvals_for(&ns, &name));
    // Decide on the status with the failure recorded, so selection sees it.
    let decided_on = Release { status: Some(prev.clone()), ..(*rel).clone() };
    let inputs = Inputs {
        approvals: approvals.iter().map(|a| a.as_ref()).collect(),
        peers: peers.clone(),
        twins: peers.iter().filter(|r| r.spec.app == *app).map(|r| r.name_any()).collect(),
        release: &decided_on,
        env: env.as_deref(),
        app_versions: app_versions.iter().map(|a| a.as_ref()).collect(),
        upstream,
        now: now.0,
    };

    let mut held = None;
    let (outcome, wake) = match select_target(&inputs) {
        Err(blocked) => {
            let wake = blocked.recheck_in.map(|d| d.saturating_add(RECHECK_SLACK));
            (Outcome::Blocked(blocked), wake)
        }
        Ok(target) => {
            held = target.held.clone();
            ctx.catalog.learn(&ctx.client, &render::required_kinds(target.app_version)).await?;
            // select_target only succeeds with an Environment.
            let Some(env) = env.as_deref() else { return Ok(Action::await_change()) };
            let (outcome, wake) = match render::render(target.app_version, env, &rel, &ctx.catalog) {
                Err(e) => {
                    let transient = e.is_transient();
                    let wake = transient.then_some(TRANSIENT_RETRY);
                    (Outcome::Failed { reason: e.reason(), message: e.to_string(), transient }, wake)
                }
                Ok(rendered) => {
                    let version = target.version.to_string();
                    let rollback_of = rollback::of(&prev, &version, rolled_back.as_deref());
                    let notes: Vec<String> = rollback_of
                        .iter()
                        .map(|failed| format!("rollback: {failed} failed"))
                        .chain(target.notes.clone())
                        .collect();
                    let note = (!notes.is_empty()).then(|| notes.join("; "));
                    let change = Change { version, note, rollback_of };
                    match rollout(&ctx, &rel, &prev, change, rendered, &now).await? {
                        Some(step) => step,
                        None if rolled_back.is_none() => return Ok(Action::await_change()),
                        None => (Outcome::Observed { health: Health::Healthy }, None),
                    }
                }
            };
            let recheck = held.as_ref().and_then(|h| h.recheck_in).map(|d| d.saturating_add(RECHECK_SLACK));
            (outcome, earliest(wake, recheck))
        }
    };
    let new_rollout = matches!(&outcome, Outcome::Applied { new_rollout: true, .. });
    // After an apply the status is written even if it looks unchanged: the cached Release may be
    // older than our last write, and the write's resourceVersion precondition then sends us round
    // again with fresh data instead of leaving a stale inventory on the server.
    let acted = matches!(&outcome, Outcome::Applied { .. } | Outcome::Rejected { .. });
    let mut status = next_status(&prev, outcome, rel.metadata.generation, &now);
    set_held(&mut status, held.as_ref(), rel.metadata.generation, &now);
    status.changes = running_changes(&rel, &status, &inputs.app_versions);
    let published = ix.published_versions(&ns, app);
    let gaps = forward_port_gaps_of(&status, &published, &inputs.app_versions, &same_app);
    set_forward_ports(&mut status, &gaps, rel.metadata.generation, &now);
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &ns);
    let base = if acted { None } else { rel.status.as_ref() };
    // Progress text alone may wait (see `plan::coalesce`); the next real change is written at once.
    if base.is_some_and(|b| coalesce::only_progress_detail(b, &status))
        && let Some(later) = ctx.own_writes.too_soon(rel.as_ref(), PROGRESS_DETAIL_EVERY)
    {
        return Ok(Action::requeue(earliest(wake, Some(later)).unwrap_or(later)));
    }
    if patch_status_if_changed(&api, &ctx.own_writes, &rel, base, &status).await? {
        if let Some(v) = &rolled_back {
            let back_to = status.desired_version.clone().unwrap_or_else(|| "nothing".into());
            let note = format!("version {v} failed in {}; rolling back to {back_to}", rel.spec.environment);
            warn!(release = %rel.name_any(), failed = %v, %back_to, "rolling back");
            publish(&ctx, &rel.object_ref(&()), EventType::Warning, "RollingBack", note);
            ctx.metrics
                .rollbacks
                .get_or_create(&EnvironmentLabel { environment: rel.spec.environment.clone() })
                .inc();
        }
        record_transition(&ctx, &rel, rel.status.as_ref().unwrap_or(&prev), &status, new_rollout);
    }
    Ok(wake.map_or_else(Action::await_change, Action::requeue))
}

/// Progress detail is written at most this often (see [`crate::plan::coalesce`]).
const PROGRESS_DETAIL_EVERY: Duration = Duration::from_secs(5);

/// The change ids of the version that runs now.
fn running_changes(rel: &Release, status: &ReleaseStatus, app_versions: &[&AppVersion]) -> Vec<String> {
    let Some(current) = status.current_version.as_deref().and_then(|v| semver::Version::parse(v).ok()) else {
        return Vec::new();
    };
    app_versions
        .iter()
        .find(|a| {
            a.spec.app == rel.spec.app
                && semver::Version::parse(a.spec.version.trim()).is_ok_and(|v| v == current)
        })
        .map(|a| changes::ids_of(a, CHANGES_LIMIT))
        .unwrap_or_default()
}

/// Changes shipped on older lines (in any Environment) that the newest version of this Release's
/// line lacks. `published`: the app's published versions (from the index), `app_versions` its
/// AppVersions.
fn forward_port_gaps_of(
    status: &ReleaseStatus,
    published: &[(semver::Version, String)],
    app_versions: &[&AppVersion],
    releases: &[Arc<Release>],
) -> Vec<changes::Gap> {
    let Some(current) = status.current_version.as_deref().and_then(|v| semver::Version::parse(v).ok()) else {
        return Vec::new();
    };
    // The index knows which are published (checked once per change of an AppVersion, not here).
    let published: Vec<(semver::Version, &AppVersion)> = published
        .iter()
        .filter_map(|(v, name)| {
            let av = app_versions.iter().find(|a| a.metadata.name.as_deref() == Some(name.as_str()))?;
            Some((v.clone(), *av))
        })
        .collect();
    // `releases` are those of the app, this one included.
    let shipped: Vec<changes::Shipped<'_>> = releases
        .iter()
        .filter_map(|r| {
            let v = r.status.as_ref()?.current_version.as_deref()?;
            Some(changes::Shipped {
                environment: &r.spec.environment,
                version: semver::Version::parse(v).ok()?,
            })
        })
        .collect();
    changes::forward_port_gaps(&current, &published, &shipped)
}

/// Slack added to timer requeues so the deadline has surely passed when we look again.
const RECHECK_SLACK: Duration = Duration::from_secs(1);

/// Of two timers, the one that fires first (`None`: no timer, wait for a change).
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The rollout a reconcile may start: which version, and what its history entry says.
struct Change {
    version: String,
    note: Option<String>,
    rollback_of: Option<String>,
}

/// Applies when needed and reads health. `None` when there is nothing to record.
async fn rollout(
    ctx: &Context,
    rel: &Release,
    prev: &ReleaseStatus,
    change: Change,
    rendered: Rendered,
    now: &Time,
) -> Result<Option<(Outcome, Option<Duration>)>> {
    // Live state only matters (for drift) when the desired state is what was applied last.
    let live = match prev.inventory.as_ref() {
        Some(inv)
            if inv.hash.as_deref() == Some(rendered.hash.as_str()) && inv.namespace == rendered.namespace =>
        {
            live_states(ctx, &inv.namespace, &inv.objects).await?
        }
        _ => Vec::new(),
    };
    let deadline = Duration::from_secs(u64::try_from(rel.spec.progress_deadline_seconds()).unwrap_or(0));
    let decision = drift::decide(prev, &rendered, &live);
    let new_rollout = match &decision {
        Decision::StillRejected => return Ok(None),
        Decision::UpToDate => {
            let health =
                health(ctx, prev.inventory.as_ref(), prev.rollout_started_at.as_ref(), deadline, now);
            let action = action_for(&health);
            return Ok(Some((Outcome::Observed { health }, action)));
        }
        Decision::Rollout => true,
        Decision::Repair(what) => {
            info!(release = %rel.name_any(), %what, "repairing drift");
            publish(
                ctx,
                &rel.object_ref(&()),
                EventType::Normal,
                "DriftRepaired",
                format!("{what}; applied again"),
            );
            false
        }
    };
    let owner = owner(rel);
    let objects = match apply_all(&ctx.client, &rendered, &owner).await {
        Ok(objects) => objects,
        Err(ApplyFailure::Transient(e)) => return Err(e),
        Err(ApplyFailure::Rejected { reason, message, applied }) => {
            // Keep everything that may exist now in the inventory, so that it is pruned later.
            let mut objects = prev.inventory.as_ref().map(|i| i.objects.clone()).unwrap_or_default();
            objects.extend(applied);
            objects.sort();
            objects.dedup_by(|a, b| (&a.api_version, &a.kind, &a.name) == (&b.api_version, &b.kind, &b.name));
            let namespace =
                prev.inventory.as_ref().map_or(rendered.namespace.clone(), |i| i.namespace.clone());
            let hash = prev.inventory.as_ref().and_then(|i| i.hash.clone());
            let inventory = Inventory { namespace, hash, objects };
            return Ok(Some((Outcome::Rejected { reason, message, hash: rendered.hash, inventory }, None)));
        }
    };
    let inventory =
        Inventory { namespace: rendered.namespace.clone(), hash: Some(rendered.hash.clone()), objects };
    if let Some(old) = prev.inventory.as_ref() {
        let deleted = prune(&ctx.client, &ctx.catalog, old, Some(&inventory), &owner).await?;
        if !deleted.is_empty() {
            publish(
                ctx,
                &rel.object_ref(&()),
                EventType::Normal,
                "Pruned",
                format!("deleted {}", deleted.join(", ")),
            );
        }
    }
    let health = health(ctx, Some(&inventory), Some(now), deadline, now);
    let action = action_for(&health);
    let Change { version, note, rollback_of } = change;
    Ok(Some((Outcome::Applied { version, inventory, new_rollout, note, rollback_of, health }, action)))
}

fn action_for(health: &Health) -> Option<Duration> {
    match health {
        // Workload events usually come first; this wakes the Release up at its deadline.
        Health::Progressing { recheck_in, .. } => Some(recheck_in.saturating_add(RECHECK_SLACK)),
        _ => None,
    }
}

/// What the caches know of the objects (a cache miss is confirmed with a read, since our own apply
/// may simply not have arrived through the watch yet).
async fn live_states(
    ctx: &Context,
    ns: &str,
    entries: &[InventoryEntry],
) -> Result<Vec<(InventoryEntry, Live)>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let live = match WatchedKind::of(e) {
            None => Live::Unknown,
            Some(kind) => match kind.cached(&ctx.stores, ns, &e.name) {
                Some(c) => live_of(c.meta()),
                None => match kind.read_meta(&ctx.client, ns, &e.name).await {
                    Ok(Some(meta)) => live_of(&meta),
                    Ok(None) => Live::Missing,
                    Err(source) => {
                        return Err(Error::Read { what: format!("{} {ns}/{}", e.kind, e.name), source });
                    }
                },
            },
        };
        out.push((e.clone(), live));
    }
    Ok(out)
}

/// Health of the workloads in `inventory`, from the caches.
fn health(
    ctx: &Context,
    inventory: Option<&Inventory>,
    started: Option<&Time>,
    deadline: Duration,
    now: &Time,
) -> Health {
    let Some(inv) = inventory else {
        return Health::Healthy;
    };
    let mut states = Vec::new();
    for e in &inv.objects {
        let Some(kind) = WatchedKind::of(e) else { continue };
        let state = match kind.cached(&ctx.stores, &inv.namespace, &e.name) {
            Some(c) => c.state(applied_of(e)),
            None => WorkloadState::InProgress("not created yet".into()),
        };
        states.push((format!("{} {}", e.kind, e.name), state));
    }
    let elapsed = started
        .map(|s| Duration::try_from(now.0.duration_since(s.0)).unwrap_or_default())
        .unwrap_or_default();
    assess(&states, elapsed, deadline)
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
fn record_transition(
    ctx: &Context,
    rel: &Release,
    prev: &ReleaseStatus,
    next: &ReleaseStatus,
    new_rollout: bool,
) {
    let reference = rel.object_ref(&());
    let version = next.desired_version.clone().unwrap_or_default();
    let env = &rel.spec.environment;
    if new_rollout {
        // No Event yet: the one Event of a rollout says how it ended (below).
        info!(release = %rel.name_any(), environment = %env, %version, "rollout started");
        ctx.metrics.rollout(env, "started");
        observe_publish_to_rollout(ctx, rel, next, &version);
    }
    let reason_of = |s: &ReleaseStatus| {
        find_condition(&s.conditions, "Ready").map(|c| (c.reason.clone(), c.message.clone()))
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
            let note = format!("rolled out {} to environment {env}{took}", ended.version);
            info!(release = %rel.name_any(), %note, "rollout complete");
            publish(ctx, &reference, EventType::Normal, "RolloutComplete", note);
        } else {
            ctx.metrics.rollout(env, "failed");
            warn!(release = %rel.name_any(), %reason, %message, "rollout failed");
            publish(ctx, &reference, EventType::Warning, reason, message);
        }
        return;
    }
    // Rollouts are told when they end (above); other changes of what the Release waits for are told
    // as they happen.
    let rollout_reasons = ["RolloutInProgress", "RolloutComplete", "ProgressDeadlineExceeded"];
    if was.as_ref().map(|w| &w.0) == Some(&reason) || rollout_reasons.contains(&reason.as_str()) {
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
    publish(ctx, &reference, type_, reason, message);
}

/// Removes everything the Release applied before it goes away.
async fn cleanup(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(inv) = rel.status.as_ref().and_then(|s| s.inventory.as_ref()) {
        let deleted = prune(&ctx.client, &ctx.catalog, inv, None, &owner(&rel)).await?;
        info!(release = %rel.name_any(), objects = deleted.len(), "release deleted; its objects were removed");
    }
    Ok(Action::await_change())
}
