//! Cleanup: a Release being deleted removes what it applied, in the cluster it applied it in, or
//! says why it cannot (and how to let it go without).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::info;

use super::owner;
use crate::api::Release;
use crate::controller::apply::prune;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::ledger;
use crate::controller::queue::Next;
use crate::plan::audit;

/// Removes everything the Release applied before it goes away.
pub(super) async fn cleanup(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Next> {
    // Deleted while its last status was held back: that status has the inventory of the last apply.
    let held = ctx.deferred.inventory(&rel);
    let applied = held.or_else(|| rel.status.as_ref().and_then(|s| s.inventory.clone()));
    // Nothing was ever applied (not even recorded ahead of an apply): nothing to remove, and no
    // cluster to connect to — least of all one the pipeline was never granted.
    let Some(inv) = applied else {
        forget(&ctx, &rel).await;
        return Ok(Next::await_change());
    };
    let env_ref = ObjectRef::new(&rel.spec.environment).within(&rel.namespace().unwrap_or_default());
    let env = ctx.stores.environments.get(&env_ref);
    // In the cluster the objects were applied in (the inventory says, whatever became of the
    // Environment since); an unreachable cluster keeps the Release until its objects can be
    // removed, one gone for good lets it go when told to (the abandon annotation).
    let cluster = match cluster_of(&ctx, &rel, &inv) {
        Ok(cluster) => cluster,
        Err(blocked) => return cleanup_blocked(&ctx, &rel, &inv, blocked).await,
    };
    // As the Environment's identity while it exists (gone: the operator's own, which may only
    // delete what the inventory names and this Release owns).
    let client = env
        .as_deref()
        .and_then(|e| cluster.identities.client_for(&cluster.client, e).ok())
        .unwrap_or_else(|| cluster.client.clone());
    let deleted = prune(&client, &cluster.catalog, &inv, None, &owner(&rel)).await?;
    info!(release = %rel.name_any(), objects = deleted.len(), "release deleted; its objects were removed");
    // Verification Jobs run where the Release's objects do (its Environment may be gone already).
    crate::controller::checks::remove_jobs(&cluster, &rel, &inv.namespace).await?;
    record_removal(&ctx, &rel).await?;
    forget(&ctx, &rel).await;
    Ok(Next::await_change())
}

/// The audit records of the removal (the finalizer stays until they are written).
async fn record_removal(ctx: &Context, rel: &Release) -> Result<()> {
    let Some(deleted_at) = rel.metadata.deletion_timestamp.as_ref() else { return Ok(()) };
    let status = ctx.deferred.status(rel).or_else(|| rel.status.clone()).unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let records = audit::removal_records(&rel.name_any(), &rel.spec, &status, deleted_at, &now);
    let ns = rel.namespace().unwrap_or_default();
    let subject = ledger::Subject { namespace: &ns, environment: &rel.spec.environment, app: &rel.spec.app };
    ledger::write(&ctx.ledger, &subject, records).await
}

/// Drops what this process keeps of a Release that is gone, and the chart output kept for it.
pub(super) async fn forget(ctx: &Context, rel: &Release) {
    // A render in flight is stopped first: it could keep its output after the removal below.
    ctx.renders.forget(&ObjectRef::from_obj(rel));
    let (pipeline, name) = (rel.namespace().unwrap_or_default(), rel.name_any());
    let uid = rel.metadata.uid.clone().unwrap_or_default();
    let owner = crate::controller::kept_renders::Owner { pipeline: &pipeline, release: &name, uid: &uid };
    if let Some(kept) = &ctx.kept_renders
        && let Err(e) = kept.remove(&owner).await
    {
        // Not worth keeping the Release for: the sweep after its deletion removes it.
        tracing::warn!(release = %name, error = %e, "the chart output kept for a deleted Release was not removed");
    }
    ctx.probes.forget(rel);
    ctx.deferred.written(rel);
}

/// Why the objects of a Release being deleted cannot be removed now: its reason and message.
struct CleanupBlocked {
    reason: crate::api::Reason,
    message: String,
}

/// The cluster the Release's objects are in, when this process may and can reach it.
fn cluster_of(
    ctx: &Context,
    rel: &Release,
    inv: &crate::api::Inventory,
) -> std::result::Result<Arc<crate::controller::cluster::Cluster>, CleanupBlocked> {
    let ns = rel.namespace().unwrap_or_default();
    let placement = inv.cluster.as_ref();
    // A recorded cluster the admin no longer grants (or a forged status naming one) is not
    // connected to, as for a rollout.
    if matches!(ctx.role, crate::controller::agent::Role::Operator)
        && let Err(why) = ctx.grants(&ns).cluster(placement)
    {
        return Err(CleanupBlocked { reason: crate::api::Reason::ClusterNotGranted, message: why });
    }
    ctx.clusters.for_cleanup(placement, &ns).map_err(|err| {
        let name = placement.and_then(|c| c.name.as_deref().or(c.agent.as_deref())).unwrap_or("");
        CleanupBlocked { reason: err.reason(), message: err.describe(name) }
    })
}

/// A Release being deleted whose objects cannot be removed: it says so (a condition naming the
/// cluster and the way out) and waits, unless its objects there were abandoned.
async fn cleanup_blocked(
    ctx: &Context,
    rel: &Release,
    inv: &crate::api::Inventory,
    blocked: CleanupBlocked,
) -> Result<Next> {
    use crate::api::{ABANDON_ANNOTATION, ConditionType, ConditionUpdate, Reason, set_condition};
    let cluster = inv.cluster.as_ref().map_or(crate::api::IN_CLUSTER, |c| {
        c.name
            .as_deref()
            .or(c.agent.as_deref())
            .or(c.kube_config_secret_ref.as_ref().map(|r| r.name.as_str()))
            .unwrap_or("")
    });
    let objects: Vec<String> = inv.objects.iter().map(|o| format!("{}/{}", o.kind, o.name)).collect();
    if rel.annotations().get(ABANDON_ANNOTATION).is_some_and(|v| v == cluster) {
        let note = format!(
            "deleted without removing its objects from namespace {} in cluster {cluster} ({}): {}; they stay there",
            inv.namespace,
            blocked.message,
            objects.join(", ")
        );
        crate::controller::events::emit(
            ctx,
            &kube::Resource::object_ref(rel, &()),
            kube::runtime::events::EventType::Warning,
            Reason::CleanupAbandoned,
            note,
        );
        forget(ctx, rel).await;
        return Ok(Next::await_change());
    }
    let message = format!(
        "deleting: the objects in namespace {} in cluster {cluster} cannot be removed: {}; if that cluster is gone \
         for good, let the Release go and leave them there: kubectl annotate release {} {ABANDON_ANNOTATION}={cluster}",
        inv.namespace,
        blocked.message,
        rel.name_any()
    );
    let mut status = rel.status.clone().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let update = ConditionUpdate::new(ConditionType::Ready, false, Reason::CleanupBlocked, message.clone());
    set_condition(&mut status.conditions, update, rel.metadata.generation, &now);
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &rel.namespace().unwrap_or_default());
    crate::controller::status::patch_status_if_changed(
        &api,
        &ctx.own_writes,
        rel,
        rel.status.as_ref(),
        &status,
    )
    .await?;
    // Retried as any failed reconcile: an unreachable cluster that comes back lets it finish.
    Err(Error::Cluster { message, reason: blocked.reason })
}
