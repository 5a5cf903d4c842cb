//! Environment reconciler: claims the target namespace and reports the environment's releases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use super::cluster::{Cluster, ClusterError};
use super::context::Context;
use super::error::{Error, Result};
use super::events::publish;
use super::status::patch_status_if_changed;
use crate::api::{ConditionType, ConditionUpdate, Environment, Reason, labels, set_condition};
use crate::plan::agent::{AgentLink, agent_link, lease_name};
use crate::telemetry::AgentLabel;

/// What the environment's namespace looks like.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceClaim {
    /// Not tried: the Environment's name cannot label a namespace (why).
    NameUnusable(String),
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
async fn claim_namespace(ctx: &Context, env: &Environment) -> Result<Option<NamespaceClaim>> {
    if let Some(agent) = env.agent() {
        return Ok(Some(agent_claim(ctx, env, agent)));
    }
    match ctx.clusters.of(env) {
        Ok(cluster) => claim_in(&cluster, env).await.map(Some),
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

/// Claims the Environment's namespace in `cluster` (the agent does this before each rollout).
pub(crate) async fn claim_in(cluster: &Cluster, env: &Environment) -> Result<NamespaceClaim> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let name = &env.spec.namespace;
    let owner = owner_key(env);
    // Ours and in the cache: nothing to ask. Anything else (not labelled ours, not created yet, or
    // the cache not there yet) is read, so a stale cache can never claim a namespace.
    if let Some(ns) = cluster.workloads.namespaces.get(&ObjectRef::new(name))
        && claim_of(&ns.metadata, &owner) == (NamespaceClaim::Owned { created: false })
    {
        return Ok(NamespaceClaim::Owned { created: false });
    }
    let read_err = |source| Error::Read { what: format!("namespace {name}"), source };
    if let Some(ns) = api.get_opt(name).await.map_err(read_err)? {
        return Ok(claim_of(&ns.metadata, &owner));
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string()),
                (labels::ENVIRONMENT.to_string(), env.name_any()),
            ])),
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

pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action> {
    let claim = match unusable_name(&env) {
        Some(why) => NamespaceClaim::NameUnusable(why),
        None => match claim_namespace(&ctx, &env).await? {
            Some(claim) => claim,
            None => return Ok(Action::await_change()),
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

    let api: Api<Environment> = Api::namespaced(ctx.client.clone(), &env.namespace().unwrap_or_default());
    // Counts move with every Release; a burst of rollouts updates them once per interval, not per step.
    if crate::plan::coalesce::only_counts(&prev, &status)
        && let Some(later) = ctx.own_writes.too_soon(env.as_ref(), COUNTS_EVERY)
    {
        return Ok(Action::requeue(later));
    }
    let changed = patch_status_if_changed(&api, &ctx.own_writes, &env, env.status.as_ref(), &status).await?;
    let reference = env.object_ref(&());
    if matches!(claim, NamespaceClaim::Owned { created: true }) {
        info!(environment = %env.name_any(), namespace = %ns, "namespace created");
        publish(
            &ctx,
            &reference,
            EventType::Normal,
            Reason::NamespaceCreated,
            format!("created namespace {ns}"),
        );
    }
    let was_refused = prev.conditions.iter().any(|c| c.type_ == ConditionType::Ready && c.reason == reason);
    if changed && refused && !was_refused {
        publish(&ctx, &reference, EventType::Warning, reason, message);
    }
    // An agent's lease lapses without an event: look again when it would (a renewal comes first
    // and wakes this anyway).
    Ok(match claim {
        NamespaceClaim::ServedByAgent { lapses_in, .. } => {
            Action::requeue(lapses_in + Duration::from_secs(1))
        }
        _ => Action::await_change(),
    })
}

fn count_releases(ctx: &Context, env: &Environment) -> (i32, i32) {
    let counts = ctx.index.environment_counts(&env.namespace().unwrap_or_default(), &env.name_any());
    (counts.releases, counts.healthy)
}
