//! ProductVersion reconciler: publishes a product version once every AppVersion it names is
//! published, with its rollout order and change ids; otherwise says what it waits for or what is
//! wrong with it.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::caches::cached;
use super::context::Context;
use super::error::Result;
use super::events::emit;
use super::queue::Next;
use super::status::patch_status_if_changed;
use crate::api::{
    ConditionType, ConditionUpdate, ProductApp, ProductVersion, Reason, find_condition, set_condition,
};
use crate::plan::product::version::{Found, publication};
use crate::plan::spec_hash;

pub async fn reconcile(pv: Arc<ProductVersion>, ctx: Arc<Context>) -> Result<Next> {
    let ns = pv.namespace().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let found = |app: &ProductApp| find(&ctx, &ns, app);
    let prev = pv.status.clone().unwrap_or_default();
    let mut status = prev.clone();
    status.observed_generation = pv.metadata.generation;
    let update = match publication(&pv.spec, found) {
        Ok(p) => {
            status.waves = p.waves;
            status.changes = p.changes;
            status.published_at = status.published_at.or_else(|| Some(now.clone()));
            let apps = pv.spec.apps.iter().map(|a| format!("{} {}", a.app, a.version)).collect::<Vec<_>>();
            ConditionUpdate::new(
                ConditionType::Ready,
                true,
                Reason::Published,
                format!("published: {}", apps.join(", ")),
            )
        }
        Err(problem) => ConditionUpdate::new(ConditionType::Ready, false, problem.reason, problem.message),
    };
    let was =
        find_condition(&prev.conditions, ConditionType::Ready).map(|c| (c.status.clone(), c.reason.clone()));
    let (ok, reason, message) = (update.status, update.reason, update.message.clone());
    set_condition(&mut status.conditions, update, pv.metadata.generation, &now);
    let api: Api<ProductVersion> = Api::namespaced(ctx.client.clone(), &ns);
    patch_status_if_changed(&api, &ctx.own_writes, &pv, pv.status.as_ref(), &status).await?;
    let is = Some((if ok { "True" } else { "False" }.to_string(), reason.to_string()));
    if was != is {
        let type_ = if ok { EventType::Normal } else { EventType::Warning };
        emit(&ctx, &pv.object_ref(&()), type_, reason, message);
    }
    Ok(Next::await_change())
}

/// What the cache holds of `app` at its version: published (with its change ids), there but not
/// (or no longer) published, or missing.
fn find(ctx: &Context, ns: &str, app: &ProductApp) -> Found {
    let Ok(version) = semver::Version::parse(app.version.trim()) else { return Found::Missing };
    let names = ctx.index.app_versions_at(ns, &app.app, &version);
    let avs = cached(&ctx.stores.app_versions, ns, names);
    let Some(av) = avs.first() else { return Found::Missing };
    let published =
        av.status.as_ref().and_then(|s| s.spec_hash.as_deref()) == Some(spec_hash(&av.spec).as_str());
    if avs.len() != 1 || !published {
        return Found::NotPublished;
    }
    if let Some(veto) = crate::api::Veto::of(av) {
        return Found::Vetoed(veto.describe());
    }
    Found::Published(av.spec.changes.iter().map(|c| c.id.clone()).collect())
}
