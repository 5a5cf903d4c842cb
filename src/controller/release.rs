//! Release reconciler, one pipeline: gather (through the index) → decide (pure: which version) →
//! act (render, apply, prune, health) → record (pure: the status) → publish (write, Events, metrics).

mod act;
mod cleanup;
mod gather;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use self::act::Effect;
use self::gather::{Basis, Related};
use super::apply::Owner;
use super::context::Context;
use super::error::{Error, Result};
use super::queue::Next;
use crate::api::{RELEASE_FINALIZER, Release};
use crate::plan::record::{self, Step};
use crate::plan::{self, Decision, Outcome};

/// Slack added to timer requeues so the deadline has surely passed when we look again.
const RECHECK_SLACK: Duration = Duration::from_secs(1);

pub async fn reconcile(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Next> {
    let ns = rel.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    // Releases of an agent's Environment are the agent's to deploy, report and clean up (an
    // agent's, the operator's); a change of the Environment's cluster wakes them again.
    let env = ctx.stores.environments.get(&ObjectRef::new(&rel.spec.environment).within(&ns));
    let inventory = rel.status.as_ref().and_then(|s| s.inventory.as_ref());
    let applied = inventory.and_then(|i| i.cluster.as_ref());
    // A Release being deleted is cleaned up by whoever applied its objects (its Environment may
    // have moved to another cluster, or agent, since).
    let deleting_applied = rel.metadata.deletion_timestamp.is_some() && inventory.is_some();
    let by = if deleting_applied { None } else { env.as_deref() };
    // ... unless that agent is gone (its Lease lapsed): then the operator says so on the Release
    // and lets it go when told to (the abandon annotation), or the pipeline could never be deleted.
    let agent_gone = deleting_applied
        && matches!(ctx.role, super::agent::Role::Operator)
        && applied.and_then(|c| c.agent.as_deref()).is_some_and(|a| !agent_connected(&ctx, &ns, a));
    if !ctx.role.serves(by, applied) && !agent_gone {
        return Ok(Next::await_change());
    }
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &ns);
    // The finalizer helper adds (or, after cleanup, removes) the finalizer with a write of its own;
    // the cache then lags that write like it lags a status write, so the next reconcile waits for
    // it in the same way (after a removal: a stale copy would run the cleanup a second time).
    let ours = rel.finalizers().iter().any(|f| f == RELEASE_FINALIZER);
    let deleting = rel.metadata.deletion_timestamp.is_some();
    let before = (deleting == ours).then(|| rel.clone());
    // The helper speaks kube-runtime's `Action`, which hides its timer: what we ask for next is
    // kept aside for the queue (the helper's own writes ask for nothing).
    let next = std::sync::Mutex::new(Next::await_change());
    let result = finalizer(&api, RELEASE_FINALIZER, rel, |event| async {
        let asked = match event {
            Finalizer::Apply(r) => converge(r, ctx.clone()).await,
            Finalizer::Cleanup(r) => cleanup::cleanup(r, ctx.clone()).await,
        }?;
        *next.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = asked;
        Ok::<_, Error>(Action::await_change())
    })
    .await;
    let asked = *next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = match result {
        Ok(_) => Ok(asked),
        // Removing the finalizer of a Release that is already gone: the cleanup is done.
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(Next::await_change())
        }
        Err(e) => Err(Error::Finalizer(Box::new(e))),
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

/// One Release's pipeline: gather → decide (pure) → act → record (pure) → publish.
async fn converge(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Next> {
    let now = Time(jiff::Timestamp::now());
    // 1. Gather: what the decision reads (through the index), over the status decided on.
    let related = Related::gather(&ctx, &rel);
    let basis = Basis::of(&ctx, &rel);
    let inputs = related.inputs(&basis.release, now.0);
    // 2. Decide: hold, or deploy a target.
    let (step, rel) = match plan::decide(&inputs) {
        Decision::Hold(blocked) => (held_back(blocked), rel),
        Decision::Deploy { target, env } => {
            // 3. Act: render, apply, prune, read health and verification.
            let rolled_back = basis.rolled_back.as_deref();
            let job = act::Job {
                ctx: &ctx,
                rel: &rel,
                env,
                prev: &basis.prev,
                target: &target,
                rolled_back,
                now: &now,
            };
            match act::act(&job).await? {
                Effect::Waiting => return Ok(Next::await_change()),
                // Act wrote the status already (the inventory ahead of its apply): the step's
                // write (or the status held back) builds on that one, as the cache will soon have it.
                Effect::Acted { step, rewritten } => (step, rewritten.map_or(rel, Arc::new)),
            }
        }
    };
    // 4. Record: the status the step leaves.
    let facts = related.facts(&inputs.app_versions);
    let (status, written) = record::release_status(&basis.prev, step, rel.metadata.generation, &facts, &now);
    // 5. Publish: write it (or hold it back a moment) and tell what changed.
    publish::publish(&ctx, &rel, &basis, status, written).await
}

/// The step of a Release that cannot go ahead: nothing applied, a look again when it may.
fn held_back(blocked: crate::plan::Blocked) -> Step {
    let wake = blocked.recheck_in.map(|d| d.saturating_add(RECHECK_SLACK));
    Step { outcome: Outcome::Blocked(blocked), held: None, wake, verification: None }
}

/// Whether agent `agent` of pipeline `ns` reports (its Lease, as the Environments judge it).
fn agent_connected(ctx: &Context, ns: &str, agent: &str) -> bool {
    use crate::plan::agent_link::{AgentLink, agent_link, lease_name};
    let lease = ctx.stores.agent_leases.get(&ObjectRef::new(&lease_name(agent)).within(ns));
    let spec = lease.as_ref().and_then(|l| l.spec.as_ref());
    matches!(agent_link(agent, spec, jiff::Timestamp::now()), AgentLink::Connected { .. })
}
