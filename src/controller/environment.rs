//! Environment reconciler: claims the target namespace and reports the environment's releases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use super::cluster::{Cluster, ClusterError};
use super::context::Context;
use super::error::{Error, Result};
use super::events::emit;
use super::ledger;
use super::queue::Next;
use super::refusal::Refusal;
use super::status::patch_status_if_changed;
use crate::api::{
    ConditionType, ConditionUpdate, ENFORCE_LABEL, EVERY, Environment, PodSecurity, Reason, labels,
    set_condition,
};
use crate::plan::agent_link::{AgentLink, agent_link, lease_name};
use crate::plan::audit;
use crate::plan::grants::Grants;
use crate::telemetry::AgentLabel;

/// What the environment's namespace looks like.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceClaim {
    /// Not tried: the Environment's name cannot label a namespace (why).
    NameUnusable(String),
    /// Not tried: no PipelinePolicy grants the pipeline this cluster or namespace (which, why).
    NotGranted(Reason, String),
    Owned {
        created: bool,
    },
    Terminating,
    OwnedByOther(String),
    NotManaged,
    /// The Environment's cluster cannot be used now.
    ClusterUnusable {
        reason: Reason,
        message: String,
    },
    /// An agent serves the Environment (and claims the namespace in its cluster); it is
    /// connected for `lapses_in` more unless it reports again.
    ServedByAgent {
        agent: String,
        lapses_in: Duration,
    },
}

/// Pure: decides ownership from the namespace's owner annotation.
pub fn claim_of(ns: &ObjectMeta, owner: &str) -> NamespaceClaim {
    let annotated = ns.annotations.as_ref().and_then(|a| a.get(labels::NAMESPACE_OWNER_ANNOTATION));
    match annotated {
        Some(o) if o == owner => {
            if ns.deletion_timestamp.is_some() {
                NamespaceClaim::Terminating
            } else {
                NamespaceClaim::Owned { created: false }
            }
        }
        Some(other) => NamespaceClaim::OwnedByOther(other.clone()),
        None => NamespaceClaim::NotManaged,
    }
}

pub fn owner_key(env: &Environment) -> String {
    format!("{}/{}", env.namespace().unwrap_or_default(), env.name_any())
}

/// Claims the namespace in the Environment's cluster (`None`: still connecting to it; whoever
/// deploys there is woken once it is up).
async fn claim_namespace(
    ctx: &Context,
    env: &Environment,
    level: PodSecurity,
) -> Result<Option<NamespaceClaim>> {
    if let Some(agent) = env.agent() {
        return Ok(Some(agent_claim(ctx, env, agent)));
    }
    match ctx.clusters.of(env) {
        Ok(cluster) => claim_in(&cluster, env, level).await.map(Some),
        Err(ClusterError::Connecting) => Ok(None),
        Err(e) => Ok(Some(NamespaceClaim::ClusterUnusable { reason: e.reason(), message: e.message(env) })),
    }
}

/// What the hub knows of an agent's Environment: whether the agent is connected, from its Lease.
fn agent_claim(ctx: &Context, env: &Environment, agent: &str) -> NamespaceClaim {
    let lease = ObjectRef::new(&lease_name(agent)).within(&env.namespace().unwrap_or_default());
    let lease = ctx.stores.agent_leases.get(&lease);
    let link = agent_link(agent, lease.as_ref().and_then(|l| l.spec.as_ref()), jiff::Timestamp::now());
    let label = AgentLabel { namespace: env.namespace().unwrap_or_default(), agent: agent.to_string() };
    let connected = matches!(link, AgentLink::Connected { .. });
    ctx.metrics.agent_connected.get_or_create(&label).set(i64::from(connected));
    match link {
        AgentLink::Connected { lapses_in } => {
            NamespaceClaim::ServedByAgent { agent: agent.to_string(), lapses_in }
        }
        AgentLink::NotConnected(message) => {
            NamespaceClaim::ClusterUnusable { reason: Reason::AgentNotConnected, message }
        }
    }
}

/// What `cluster` says of the Environment's namespace now (`None`: it does not exist), and its
/// Pod Security level. A namespace this Environment owns is answered from the cache; anything
/// else is read, so neither a stale cache nor a forged status can make a namespace look claimed.
async fn read_claim(
    cluster: &Cluster,
    env: &Environment,
) -> Result<Option<(NamespaceClaim, Option<String>)>> {
    let name = &env.spec.namespace;
    let owner = owner_key(env);
    let level = |meta: &ObjectMeta| meta.labels.as_ref().and_then(|l| l.get(ENFORCE_LABEL)).cloned();
    if let Some(ns) = cluster.workloads.namespaces.get(&ObjectRef::new(name))
        && claim_of(&ns.metadata, &owner) == (NamespaceClaim::Owned { created: false })
    {
        return Ok(Some((NamespaceClaim::Owned { created: false }, level(&ns.metadata))));
    }
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let read_err = |source| Error::Read { what: format!("namespace {name}"), source };
    Ok(api
        .get_opt(name)
        .await
        .map_err(read_err)?
        .map(|ns| (claim_of(&ns.metadata, &owner), level(&ns.metadata))))
}

/// Claims the Environment's namespace in `cluster` (the agent does this before each rollout),
/// creating it at Pod Security `level`. A namespace that exists keeps its labels: the operator
/// may create namespaces but never edit one.
pub(crate) async fn claim_in(
    cluster: &Cluster,
    env: &Environment,
    level: PodSecurity,
) -> Result<NamespaceClaim> {
    if let Some((claim, _)) = read_claim(cluster, env).await? {
        return Ok(claim);
    }
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let name = &env.spec.namespace;
    let owner = owner_key(env);
    let read_err = |source| Error::Read { what: format!("namespace {name}"), source };
    let mut labels = level.labels();
    labels.insert(labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string());
    labels.insert(labels::ENVIRONMENT.to_string(), env.name_any());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                labels::NAMESPACE_OWNER_ANNOTATION.to_string(),
                owner.clone(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    // Create (not apply): when two Environments race for one namespace, exactly one create wins.
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(NamespaceClaim::Owned { created: true }),
        Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(name).await.map_err(read_err)? {
            Some(ns) => Ok(claim_of(&ns.metadata, &owner)),
            None => Ok(NamespaceClaim::Terminating),
        },
        Err(source) => Err(Error::Namespace { namespace: name.clone(), source }),
    }
}

/// Checks, right before the operator writes into the Environment's namespace in `cluster`, that
/// the namespace is granted to its pipeline, is this Environment's there (its owner annotation,
/// live; a cache hit at rest) and enforces at least the pipeline's Pod Security level. The
/// Environment's status is not enough: it may be stale (the Environment just moved to another
/// cluster or namespace) or written by someone else. A namespace handed over by annotation may
/// lack a level: nothing is written there until an admin gives it one. `Err`: why nothing may be
/// written.
pub(crate) async fn ensure_claimed(
    cluster: &Cluster,
    env: &Environment,
    grants: &Grants,
) -> Result<Result<(), Refusal>> {
    if let Err(why) = grants.namespace(&env.spec.namespace) {
        return Ok(Err(Refusal::lasting(Reason::NamespaceNotGranted, why)));
    }
    let level = grants.pod_security;
    let (claim, enforced) = read_claim(cluster, env).await?.map_or((None, None), |(c, l)| (Some(c), l));
    let ns = &env.spec.namespace;
    let where_ = format!("namespace {ns} in cluster {}", env.cluster_name());
    if matches!(claim, Some(NamespaceClaim::Owned { .. })) {
        if level.admits(enforced.as_deref()) {
            return Ok(Ok(()));
        }
        let has = enforced.map_or_else(|| "none".to_string(), |l| format!("{l:?}"));
        return Ok(Err(Refusal {
            reason: Reason::PodSecurityTooWeak,
            message: format!(
                "nothing is written to {where_}: its Pod Security level ({ENFORCE_LABEL}) is {has}, and this \
                 operator deploys only where it is at least {}; a cluster admin sets it: \
                 kubectl label namespace {ns} {ENFORCE_LABEL}={} --overwrite",
                level.as_str(),
                level.as_str()
            ),
            // Labelling the namespace wakes the Environment, which wakes its Releases.
            transient: false,
        }));
    }
    let why = match &claim {
        None => "it does not exist".to_string(),
        Some(NamespaceClaim::Terminating) => "it is being deleted".to_string(),
        Some(NamespaceClaim::OwnedByOther(other)) => format!("it belongs to Environment {other}"),
        Some(_) => "it is not managed by tuskfish".to_string(),
    };
    Ok(Err(Refusal {
        reason: Reason::NamespaceNotClaimed,
        message: format!(
            "nothing is written to {where_}: {why}, and Environment {} has not claimed it; \
             see the Environment's Ready condition",
            owner_key(env)
        ),
        // The Environment's own reconcile claims the namespace (or reports why not) and wakes its
        // Releases; a namespace still being created or deleted is looked at again soon.
        transient: matches!(claim, None | Some(NamespaceClaim::Terminating)),
    }))
}

/// Release counts are written at most this often.
const COUNTS_EVERY: Duration = Duration::from_secs(2);

/// Label values (the namespace's `tuskfish.dev/environment`, every applied object's too) are at
/// most 63 characters; object names may be longer, so a long Environment name is refused here
/// rather than by the API server on every namespace create.
fn unusable_name(env: &Environment) -> Option<String> {
    let name = env.name_any();
    (name.len() > 63).then(|| {
        format!(
            "the name is {} characters long; Environment names must be at most 63 (they label namespaces and objects); recreate it with a shorter name",
            name.len()
        )
    })
}

/// Pure: the Ready condition a namespace claim gives (the version line aside).
pub(crate) fn claim_update(claim: &NamespaceClaim, env: &Environment) -> ConditionUpdate {
    let ns = &env.spec.namespace;
    match claim {
        NamespaceClaim::NameUnusable(why) => {
            ConditionUpdate::new(ConditionType::Ready, false, Reason::InvalidName, why.clone())
        }
        NamespaceClaim::NotGranted(reason, why) => {
            ConditionUpdate::new(ConditionType::Ready, false, *reason, why.clone())
        }
        NamespaceClaim::ClusterUnusable { reason, message } => {
            ConditionUpdate::new(ConditionType::Ready, false, *reason, message.clone())
        }
        NamespaceClaim::ServedByAgent { agent, .. } => {
            // The agent claims the namespace in its cluster; a refusal there is on its Releases.
            ConditionUpdate::new(
                ConditionType::Ready,
                true,
                Reason::AgentConnected,
                format!("served by agent {agent}, which is connected"),
            )
        }
        NamespaceClaim::Owned { .. } => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            Reason::NamespaceOwned,
            format!("namespace {ns} is owned by this environment"),
        ),
        NamespaceClaim::Terminating => ConditionUpdate::new(
            ConditionType::Ready,
            false,
            Reason::NamespaceTerminating,
            format!("namespace {ns} is being deleted; it is created again once it is gone"),
        ),
        NamespaceClaim::OwnedByOther(other) => ConditionUpdate::new(
            ConditionType::Ready,
            false,
            Reason::NamespaceOwnedByOther,
            format!("namespace {ns} belongs to Environment {other}; choose another namespace"),
        ),
        NamespaceClaim::NotManaged => ConditionUpdate::new(
            ConditionType::Ready,
            false,
            Reason::NamespaceNotManaged,
            format!(
                "namespace {ns} already exists and is not managed by tuskfish; to hand it over, annotate it: \
                 kubectl annotate namespace {ns} {}={}",
                labels::NAMESPACE_OWNER_ANNOTATION,
                owner_key(env)
            ),
        ),
    }
}

pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Next> {
    let grants = ctx.grants(&env.namespace().unwrap_or_default());
    let granted = grants.cluster(env.spec.cluster.as_ref()).map_err(|why| (Reason::ClusterNotGranted, why));
    let granted =
        granted.and(grants.namespace(&env.spec.namespace).map_err(|why| (Reason::NamespaceNotGranted, why)));
    let claim = match (unusable_name(&env), granted) {
        (Some(why), _) => NamespaceClaim::NameUnusable(why),
        // Never connected to, created nor adopted: clusters and namespaces are the admin's to grant.
        (None, Err((reason, why))) => NamespaceClaim::NotGranted(reason, why),
        (None, Ok(())) => match claim_namespace(&ctx, &env, grants.pod_security).await? {
            Some(claim) => claim,
            None => return Ok(Next::await_change()),
        },
    };
    let now = Time(jiff::Timestamp::now());
    let prev = env.status.clone().unwrap_or_default();
    let mut status = prev.clone();
    status.observed_generation = env.metadata.generation;
    status.cluster = Some(env.cluster_name().to_string());
    let ns = &env.spec.namespace;
    let line_error = env.spec.version_line.as_deref().and_then(|l| {
        semver::VersionReq::parse(l).err().map(|e| format!("versionLine {l:?} is not a semver range: {e}"))
    });
    let update = match line_error {
        Some(msg) if matches!(claim, NamespaceClaim::Owned { .. } | NamespaceClaim::ServedByAgent { .. }) => {
            ConditionUpdate::new(ConditionType::Ready, false, Reason::InvalidVersionLine, msg)
        }
        _ => claim_update(&claim, &env),
    };
    status.namespace = update.status.then(|| ns.clone());

    let (releases, healthy) = count_releases(&ctx, &env);
    status.releases = releases;
    status.healthy_releases = healthy;
    let refused = !update.status;
    let reason = update.reason;
    let message = update.message.clone();
    set_condition(&mut status.conditions, update, env.metadata.generation, &now);

    // Freeze windows added or removed are recorded before the status that says they were.
    let (uid, generation) =
        (env.metadata.uid.as_deref().unwrap_or_default(), env.metadata.generation.unwrap_or(0));
    let windows = &env.spec.freeze_windows;
    let freezes = audit::freeze_records(uid, generation, windows, &prev.recorded_freezes, &now);
    if !freezes.is_empty() {
        let pipeline = env.namespace().unwrap_or_default();
        let subject = ledger::Subject { namespace: &pipeline, environment: &env.name_any(), app: EVERY };
        ledger::write(&ctx.ledger, &subject, freezes).await?;
    }
    status.recorded_freezes = audit::freeze_marks(windows);
    let api: Api<Environment> = Api::namespaced(ctx.client.clone(), &env.namespace().unwrap_or_default());
    // Counts move with every Release; a burst of rollouts updates them once per interval, not per step.
    if crate::plan::coalesce::only_counts(&prev, &status)
        && let Some(later) = ctx.own_writes.too_soon(env.as_ref(), COUNTS_EVERY)
    {
        return Ok(Next::requeue(later));
    }
    let changed = patch_status_if_changed(&api, &ctx.own_writes, &env, env.status.as_ref(), &status).await?;
    let reference = env.object_ref(&());
    if matches!(claim, NamespaceClaim::Owned { created: true }) {
        info!(environment = %env.name_any(), namespace = %ns, "namespace created");
        emit(
            &ctx,
            &reference,
            EventType::Normal,
            Reason::NamespaceCreated,
            format!("created namespace {ns}"),
        );
    }
    let was_refused = prev.conditions.iter().any(|c| c.type_ == ConditionType::Ready && c.reason == reason);
    if changed && refused && !was_refused {
        emit(&ctx, &reference, EventType::Warning, reason, message);
    }
    // An agent's lease lapses without an event: look again when it would (a renewal comes first
    // and wakes this anyway).
    Ok(match claim {
        NamespaceClaim::ServedByAgent { lapses_in, .. } => Next::requeue(lapses_in + Duration::from_secs(1)),
        _ => Next::await_change(),
    })
}

fn count_releases(ctx: &Context, env: &Environment) -> (i32, i32) {
    let counts = ctx.index.environment_counts(&env.namespace().unwrap_or_default(), &env.name_any());
    (counts.releases, counts.healthy)
}
