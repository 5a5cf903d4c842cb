//! Release reconciler, one pipeline: gather (through the index) → decide (pure: which version) →
//! act (render, apply, prune, health) → record (pure: the status) → publish (write, Events, metrics).

mod act;
mod gather;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::info;

use self::gather::Related;
use super::apply::{Owner, prune};
use super::context::Context;
use super::error::{Error, Result};
use crate::api::{RELEASE_FINALIZER, Release};
use crate::plan::record::{self, Step};
use crate::plan::{Outcome, auto_rollback, rollback, select_target};

/// Slack added to timer requeues so the deadline has surely passed when we look again.
const RECHECK_SLACK: Duration = Duration::from_secs(1);

pub async fn reconcile(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action> {
    let ns = rel.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    // Releases of an agent's Environment are the agent's to deploy, report and clean up (an
    // agent's, the operator's); a change of the Environment's cluster wakes them again.
    let env = ctx.stores.environments.get(&ObjectRef::new(&rel.spec.environment).within(&ns));
    let applied = rel.status.as_ref().and_then(|s| s.inventory.as_ref()).and_then(|i| i.cluster.as_ref());
    if !ctx.role.serves(env.as_deref(), applied) {
        return Ok(Action::await_change());
    }
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
    // Gather.
    let related = Related::gather(&ctx, &rel);
    // A status held back after the last apply (see `deferred`) is the truth of what was applied.
    let deferred = ctx.deferred.get(&rel);
    let base = deferred.as_ref().map_or_else(|| rel.status.clone().unwrap_or_default(), |d| d.status.clone());
    let (prev, rolled_back) = rollback::decide_on(base, auto_rollback(&rel));
    let decided_on = Release { status: Some(prev.clone()), ..(*rel).clone() };
    let inputs = related.inputs(&decided_on, now.0);
    // Decide, then act on the decision.
    let step = match (select_target(&inputs), related.environment()) {
        (Err(blocked), _) => {
            let wake = blocked.recheck_in.map(|d| d.saturating_add(RECHECK_SLACK));
            Step { outcome: Outcome::Blocked(blocked), held: None, wake, verification: None }
        }
        // select_target only succeeds with an Environment.
        (Ok(_), None) => return Ok(Action::await_change()),
        (Ok(target), Some(env)) => {
            match act::act(&ctx, &rel, env, &prev, &target, rolled_back.as_deref(), &now).await? {
                Some(step) => step,
                None => return Ok(Action::await_change()),
            }
        }
    };
    // Record.
    let facts = related.facts(&inputs.app_versions);
    let (status, written) = record::release_status(&prev, step, rel.metadata.generation, &facts, &now);
    // Publish.
    let held_until = deferred.map(|d| d.due);
    publish::publish(&ctx, &rel, &prev, status, written, rolled_back.as_deref(), held_until).await
}

/// Removes everything the Release applied before it goes away.
async fn cleanup(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action> {
    // Deleted while its last status was held back: that status has the inventory of the last apply.
    let held = ctx.deferred.inventory(&rel);
    let applied = held.as_ref().or_else(|| rel.status.as_ref().and_then(|s| s.inventory.as_ref()));
    let env_ref = ObjectRef::new(&rel.spec.environment).within(&rel.namespace().unwrap_or_default());
    let env = ctx.stores.environments.get(&env_ref);
    // In the cluster the objects were applied in (the inventory says, whatever became of the
    // Environment since; without an inventory, the Environment's); an unreachable cluster keeps
    // the Release until its objects can be removed.
    let ns = rel.namespace().unwrap_or_default();
    let placement = match applied {
        Some(inv) => inv.cluster.as_ref(),
        None => env.as_ref().and_then(|e| e.spec.cluster.as_ref()),
    };
    let cluster = ctx.clusters.at(placement, &ns).map_err(|err| {
        let name = placement.and_then(|c| c.name.as_deref().or(c.agent.as_deref())).unwrap_or("");
        Error::Cluster {
            message: format!("removing the Release's objects: {}", err.describe(name)),
            reason: err.reason(),
        }
    })?;
    if let Some(inv) = applied {
        // As the Environment's identity while it exists (gone: the operator's own, which may only
        // delete what the inventory names and this Release owns).
        let client = env
            .as_deref()
            .and_then(|e| cluster.identities.client_for(&cluster.client, e).ok())
            .unwrap_or_else(|| cluster.client.clone());
        let deleted = prune(&client, &cluster.catalog, inv, None, &owner(&rel)).await?;
        info!(release = %rel.name_any(), objects = deleted.len(), "release deleted; its objects were removed");
    }
    // Verification Jobs run where the Release's objects do (its Environment may be gone already).
    let ns = applied.map(|i| i.namespace.clone()).or_else(|| env.as_ref().map(|e| e.spec.namespace.clone()));
    if let Some(ns) = ns {
        super::verify::remove_jobs(&cluster, &rel, &ns).await?;
    }
    ctx.probes.forget(&rel);
    ctx.renders.forget(&ObjectRef::from_obj(rel.as_ref()));
    ctx.deferred.written(&rel);
    Ok(Action::await_change())
}
