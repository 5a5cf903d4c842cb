//! Act: render the target, apply it when it differs from what was applied (or the live objects
//! drifted), prune what it no longer has, read health. The only step that writes workloads.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::{RECHECK_SLACK, owner};
use crate::api::{
    ConditionType, Environment, Inventory, InventoryEntry, Reason, Release, ReleaseStatus,
    VerificationStatus, find_condition,
};
use crate::controller::agent::Role;
use crate::controller::apply::{ApplyFailure, apply_all, gvk_of, prune};
use crate::controller::charts;
use crate::controller::checks;
use crate::controller::cluster::{Cluster, ClusterError};
use crate::controller::context::Context;
use crate::controller::custom_kinds::CustomKinds;
use crate::controller::environment::{claim_in, claim_update, ensure_claimed};
use crate::controller::error::{Error, Result};
use crate::controller::events::emit;
use crate::controller::refusal::Refusal;
use crate::controller::workloads::{WatchedKind, applied_of, live_of};
use crate::plan::drift::{self, Decision, Live};
use crate::plan::grants::Grants;
use crate::plan::health::{WorkloadState, conditions_state};
use crate::plan::record::{self, Change, Step, earliest};
use crate::plan::verification;
use crate::plan::{Health, Outcome, Target, assess};
use crate::render::KindCatalog;
use crate::render::{self, Rendered};
use kube::runtime::reflector::ObjectRef;

/// How long to wait before retrying a rendering that may succeed unchanged (e.g. a CRD not yet
/// installed); everything else waits for a change.
const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

/// What act works on: one Release deploying one target into its Environment.
pub(super) struct Job<'a> {
    pub ctx: &'a Context,
    pub rel: &'a Release,
    pub env: &'a Environment,
    /// The status decided on (the server's, or the one held back).
    pub prev: &'a ReleaseStatus,
    pub target: &'a Target<'a>,
    /// The version this reconcile marked failed.
    pub rolled_back: Option<&'a str>,
    pub now: &'a Time,
}

/// What act did.
// One per reconcile, moved once: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Effect {
    /// Nothing to record: the cluster is connecting or Helm is rendering (the Release is woken
    /// when either is done), or the state the server refused is still the one asked for.
    Waiting,
    /// A step to record: objects applied, observed or refused. `rewritten`: the Release as act's
    /// own status write (the inventory ahead of an apply) left it, which the step's status write
    /// then builds on.
    Acted { step: Step, rewritten: Option<Release> },
}

/// The step the job's target takes.
pub(super) async fn act(job: &Job<'_>) -> Result<Effect> {
    let Job { ctx, rel, env, target, .. } = *job;
    let pipeline = rel.namespace().unwrap_or_default();
    let grants = match ctx.role {
        Role::Operator => ctx.grants(&pipeline),
        Role::Agent(_) => Grants::judged_by_hub(&pipeline, ctx.policies.pod_security),
    };
    // Not even connected to, unless granted (a forged Environment status does not get that far).
    let cluster = match grants.cluster(env.spec.cluster.as_ref()) {
        Err(why) => Err(Refusal::lasting(Reason::ClusterNotGranted, why)),
        Ok(()) => match ctx.clusters.of(env) {
            Ok(cluster) => Ok(cluster),
            // Whoever deploys there is woken once the connection is up (or has failed).
            Err(ClusterError::Connecting) => return Ok(Effect::Waiting),
            Err(e) => Err(e.refusal(env)),
        },
    };
    let (mut verification, mut rewritten) = (None, None);
    let (outcome, wake) = match cluster {
        // No timer: the cluster coming back, or its Secret changing, wakes this Release.
        Err(refusal) => (refusal.into_outcome(), None),
        Ok(cluster) => match desired(job, &cluster, &grants).await? {
            // Helm renders it meanwhile; this Release is woken when it is done.
            Wanted::Rendering => return Ok(Effect::Waiting),
            Wanted::Refused(refusal) => {
                let wake = refusal.transient.then_some(TRANSIENT_RETRY);
                (refusal.into_outcome(), wake)
            }
            Wanted::Ready(desired) => {
                match rollout(job, &cluster, &grants, desired).await? {
                    Some(Rolled { outcome, wake, verification: v, rewritten: rv }) => {
                        (verification, rewritten) = (v, rv);
                        (outcome, wake)
                    }
                    None if job.rolled_back.is_none() => return Ok(Effect::Waiting),
                    // Marking the version failed is itself worth recording.
                    None => (Outcome::Observed { health: Health::Healthy }, None),
                }
            }
        },
    };
    let held = target.held.clone();
    let recheck = held.as_ref().and_then(|h| h.recheck_in).map(|d| d.saturating_add(RECHECK_SLACK));
    let step = Step { outcome, held, wake: earliest(wake, recheck), verification };
    Ok(Effect::Acted { step, rewritten })
}

/// What a target is to become: its objects, the chart hooks left out of them, and the client of
/// the identity they are applied as.
struct Desired {
    rendered: Rendered,
    hooks: Vec<String>,
    client: kube::Client,
}

/// The target's objects, why there are none, or that Helm is still rendering them.
enum Wanted {
    Ready(Desired),
    Refused(Refusal),
    Rendering,
}

/// The target's objects, or why there are none.
async fn desired(job: &Job<'_>, cluster: &Cluster, grants: &Grants) -> Result<Wanted> {
    let Job { ctx, rel, env, target, .. } = *job;
    let av = target.app_version;
    // Every write below goes into the Environment's namespace in this cluster, so that namespace
    // must be the Environment's there now, whatever its status says, and hold its pods to the
    // Pod Security level. An agent claims it itself (the hub's Environment controller cannot).
    // Owned and cached, this asks nothing.
    if matches!(ctx.role, Role::Agent(_)) {
        let update = claim_update(&claim_in(cluster, env, grants.pod_security).await?, env);
        if !update.status {
            let transient = update.reason == Reason::NamespaceTerminating;
            return Ok(Wanted::Refused(Refusal {
                reason: update.reason,
                message: update.message,
                transient,
            }));
        }
    }
    if let Err(refusal) = ensure_claimed(cluster, env, grants).await? {
        return Ok(Wanted::Refused(refusal));
    }
    if cluster.identities.service_account_of(env).is_none() && !grants.service_account_required_by.is_empty()
    {
        return Ok(Wanted::Refused(Refusal {
            reason: Reason::ServiceAccountRequired,
            message: format!(
                "PipelinePolicy {} requires every Environment of this pipeline to name the ServiceAccount it deploys as \
                 (spec.serviceAccountName); Environment {} names none, so nothing is deployed",
                grants.service_account_required_by.join(", "),
                env.name_any()
            ),
            transient: false,
        }));
    }
    let client = match cluster.identities.client_for(&cluster.client, env) {
        Ok(client) => client,
        Err(e) => return Ok(Wanted::Refused(e.into())),
    };
    // Deploying as the deployer: it exists before the first write as it (a namespace just made).
    cluster.identities.ensure_deployer(&cluster.client, env).await.map_err(|source| Error::Apply {
        what: format!("ServiceAccount {}/{}", env.spec.namespace, crate::controller::identity::DEPLOYER),
        source,
    })?;
    let target = charts::Target { apis: cluster.served.clone(), client: cluster.client.clone() };
    let chart = match charts::output(ctx.into(), &target, av, env, rel).await {
        charts::Pending::Running => return Ok(Wanted::Rendering),
        charts::Pending::Done(Ok(chart)) => chart,
        charts::Pending::Done(Err(refusal)) => return Ok(Wanted::Refused(refusal)),
    };
    let (objects, hooks) =
        chart.as_deref().map_or((&[][..], Vec::new()), |c| (&c.objects[..], c.hooks.clone()));
    cluster.catalog.learn(&cluster.client, &render::required_kinds(av, objects)).await?;
    let rendered = match render::render(av, env, rel, objects, &cluster.catalog) {
        Ok(rendered) => rendered,
        Err(e) => return Ok(Wanted::Refused(e.into())),
    };
    // The kinds the admin lets this pipeline apply (nothing is applied if one object is refused).
    let refused =
        rendered.objects.iter().find_map(|o| grants.kind(&o.resource.group, &o.resource.kind).err());
    if let Some(why) = refused {
        return Ok(Wanted::Refused(Refusal::lasting(Reason::ForbiddenKind, why)));
    }
    Ok(Wanted::Ready(Desired { rendered, hooks, client }))
}

/// What a rollout step did, and the verification it looked at.
struct Rolled {
    outcome: Outcome,
    wake: Option<Duration>,
    verification: Option<VerificationStatus>,
    /// See [`Effect::Acted`].
    rewritten: Option<Release>,
}

/// Applies when needed and reads health. `None` when there is nothing to record.
async fn rollout(
    job: &Job<'_>,
    cluster: &Cluster,
    grants: &Grants,
    Desired { rendered, hooks, client }: Desired,
) -> Result<Option<Rolled>> {
    let Job { ctx, rel, env, prev, now, .. } = *job;
    let change = Change::of(rel, prev, job.target, job.rolled_back);
    // Verification gets what it uses (the pipeline's grants, where it may connect), not the whole
    // Context.
    let checker = checks::Checker { grants, policies: &ctx.policies, probes: &ctx.probes, http: &ctx.http };
    // Live state only matters (for drift) when the desired state is what was applied last.
    let live = match prev.inventory.as_ref() {
        Some(inv)
            if inv.hash.as_deref() == Some(rendered.hash.as_str()) && inv.namespace == rendered.namespace =>
        {
            live_states(cluster, &client, &inv.namespace, &inv.objects).await?
        }
        _ => Vec::new(),
    };
    let deadline = Duration::from_secs(u64::try_from(rel.spec.progress_deadline_seconds()).unwrap_or(0));
    let decision = drift::decide(prev, &rendered, &live);
    let new_rollout = match &decision {
        Decision::StillRejected => return Ok(None),
        Decision::UpToDate => {
            let health =
                health(cluster, prev.inventory.as_ref(), prev.rollout_started_at.as_ref(), deadline, now);
            let version = prev.desired_version.as_deref().unwrap_or_default();
            let started = verification::rollout_in_flight(prev);
            let run = checks::Run { version, rollout_started: started, cluster, prev, now };
            let (health, verification) = checks::verified(&checker, rel, env, run, health).await?;
            let wake = action_for(&health);
            return Ok(Some(Rolled {
                outcome: Outcome::Observed { health },
                wake,
                verification,
                rewritten: None,
            }));
        }
        Decision::Rollout => true,
        Decision::Repair(what) => {
            info!(release = %rel.name_any(), %what, "repairing drift");
            emit(
                ctx,
                &rel.object_ref(&()),
                EventType::Normal,
                Reason::DriftRepaired,
                format!("{what}; applied again"),
            );
            false
        }
    };
    // Recorded before the apply: what may exist once it starts, so that a crash (or a restart)
    // between the apply and the status write leaves nothing that the next prune cannot find.
    let ahead = record::inventory_ahead(
        prev.inventory.as_ref(),
        rendered.objects.iter().map(|o| o.inventory_entry()),
        &rendered.namespace,
        env.spec.cluster.as_ref(),
    );
    let rewritten = match ahead {
        Some(inventory) => Some(write_inventory(ctx, rel, prev, inventory).await?),
        None => None,
    };
    let owner = owner(rel);
    let objects = match apply_all(&client, &rendered, &owner).await {
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
            let inventory = Inventory { namespace, hash, objects, cluster: env.spec.cluster.clone() };
            // What RBAC refused, its admin may grant (as the message asks): tried again until
            // then. Anything else waits for other objects to render.
            let retry = reason == Reason::Forbidden;
            let hash = (!retry).then_some(rendered.hash);
            let outcome = Outcome::Rejected { reason, message, hash, inventory };
            // Degraded turned True when the refusal began (Ready was False already, mid-rollout).
            let refused_since = find_condition(&prev.conditions, ConditionType::Degraded)
                .filter(|c| c.status == "True" && c.reason == Reason::Forbidden)
                .map_or(now.0, |c| c.last_transition_time.0);
            let refused_for = now.0.duration_since(refused_since).unsigned_abs();
            let wake = retry.then(|| drift::refused_retry(refused_for));
            return Ok(Some(Rolled { outcome, wake, verification: None, rewritten }));
        }
    };
    if new_rollout && !hooks.is_empty() {
        emit(
            ctx,
            &rel.object_ref(&()),
            EventType::Normal,
            Reason::ChartHooksSkipped,
            format!(
                "the chart's hooks are not run (tuskfish applies a chart's templates, not Helm's install steps): {}; use spec.verify for checks",
                hooks.join(", ")
            ),
        );
    }
    let inventory = Inventory {
        namespace: rendered.namespace.clone(),
        hash: Some(rendered.hash.clone()),
        objects,
        cluster: env.spec.cluster.clone(),
    };
    if let Some(old) = prev.inventory.as_ref() {
        let deleted = prune(&client, &cluster.catalog, old, Some(&inventory), &owner).await?;
        if !deleted.is_empty() {
            emit(
                ctx,
                &rel.object_ref(&()),
                EventType::Normal,
                Reason::Pruned,
                format!("deleted {}", deleted.join(", ")),
            );
        }
    }
    let health = health(cluster, Some(&inventory), Some(now), deadline, now);
    let Change { version, note, rollback_of, approvers, requester } = change;
    // A rollback is not verified (see `rollout_in_flight`).
    let started = if new_rollout {
        rollback_of.is_none().then_some(now)
    } else {
        verification::rollout_in_flight(prev)
    };
    let run = checks::Run { version: &version, rollout_started: started, cluster, prev, now };
    let (health, verification) = checks::verified(&checker, rel, env, run, health).await?;
    let wake = action_for(&health);
    let outcome =
        Outcome::Applied { version, inventory, new_rollout, note, rollback_of, approvers, requester, health };
    Ok(Some(Rolled { outcome, wake, verification, rewritten }))
}

/// Writes the status decided on (`prev`: the server's, or the one held back) with `inventory`,
/// ahead of an apply, as the operator's one field manager writes every status (so nothing of it is
/// left to another manager); the Release as written. A status held back is written with it (it
/// is no longer held): its history entry must not depend on the server's status staying as it was.
async fn write_inventory(
    ctx: &Context,
    rel: &Release,
    prev: &ReleaseStatus,
    inventory: Inventory,
) -> Result<Release> {
    let api: kube::Api<Release> =
        kube::Api::namespaced(ctx.client.clone(), &rel.namespace().unwrap_or_default());
    let status = ReleaseStatus { inventory: Some(inventory), ..prev.clone() };
    let written = crate::controller::status::apply_status(&api, &ctx.own_writes, rel, &status).await?;
    ctx.deferred.written(rel);
    Ok(written)
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
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    entries: &[InventoryEntry],
) -> Result<Vec<(InventoryEntry, Live)>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let live = match WatchedKind::of(e) {
            // A finished Job is often deleted on purpose (ttlSecondsAfterFinished); applying it
            // again would run it again. Jobs count for health, not for drift.
            None | Some(WatchedKind::Job) => Live::Unknown,
            Some(kind) => match kind.cached(&cluster.workloads, ns, &e.name) {
                Some(c) => live_of(c.meta()),
                None => match kind.read_meta(client, ns, &e.name).await {
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
    cluster: &Cluster,
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
        let Some(kind) = WatchedKind::of(e) else {
            if let Some(state) = custom_state(cluster, &inv.namespace, e) {
                states.push((format!("{} {}", e.kind, e.name), state));
            }
            continue;
        };
        let state = match kind.cached(&cluster.workloads, &inv.namespace, &e.name) {
            Some(c) => c.state(applied_of(e)),
            None => WorkloadState::InProgress("not created yet".into()),
        };
        states.push((format!("{} {}", e.kind, e.name), state));
    }
    let elapsed = crate::plan::health::deadline_elapsed(started.map(|s| s.0), &cluster.outages(), now.0);
    assess(&states, elapsed, deadline)
}

/// The state of an object of a custom kind (`None`: a kind that is ready once applied).
fn custom_state(cluster: &Cluster, ns: &str, e: &InventoryEntry) -> Option<WorkloadState> {
    let gvk = gvk_of(e);
    if !CustomKinds::is_custom(&gvk.group) {
        return None;
    }
    let Some((resource, _)) = cluster.catalog.resolve(&gvk) else {
        return Some(WorkloadState::InProgress(format!("kind {} is not served", e.kind)));
    };
    let Some(store) = cluster.custom_kinds.store(&resource) else {
        return Some(WorkloadState::InProgress(format!("waiting for the watch of {}", e.kind)));
    };
    Some(match store.get(&ObjectRef::new_with(&e.name, resource).within(ns)) {
        Some(o) => conditions_state(&o.metadata, o.data.get("status"), applied_of(e)),
        None => WorkloadState::InProgress("not created yet".into()),
    })
}
