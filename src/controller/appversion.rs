//! AppVersion reconciler: publishes valid versions (records their spec hash) and flags edits after
//! publishing, duplicates and invalid versions.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::caches::cached;
use super::charts;
use super::context::Context;
use super::error::Result;
use super::events::emit;
use super::ledger;
use super::queue::Next;
use super::status::patch_status_if_changed;
use crate::api::{
    AppVersion, AppVersionStatus, ConditionType, ConditionUpdate, EVERY, Reason, Veto, find_condition,
    set_condition,
};
use crate::plan::{audit, spec_hash};

/// Pure: what the AppVersion's Ready condition should say, and whether to publish it now.
pub fn judge(av: &AppVersion, others: &[Arc<AppVersion>]) -> (ConditionUpdate, bool) {
    let status = av.status.clone().unwrap_or_default();
    let hash = spec_hash(&av.spec);
    let bad =
        |reason: Reason, msg: String| (ConditionUpdate::new(ConditionType::Ready, false, reason, msg), false);
    if let Some(published) = status.spec_hash.as_deref() {
        if published != hash {
            return bad(
                Reason::SpecModifiedAfterPublish,
                "the spec was changed after publishing and will not be rolled out; restore it or publish a new \
                 AppVersion with a new version"
                    .into(),
            );
        }
        return (
            ConditionUpdate::new(ConditionType::Ready, true, Reason::Published, "published; can be deployed"),
            false,
        );
    }
    let version = match semver::Version::parse(av.spec.version.trim()) {
        Ok(v) => v,
        Err(e) => {
            return bad(
                Reason::InvalidVersion,
                format!("{:?} is not a semantic version: {e}", av.spec.version),
            );
        }
    };
    if av.spec.workload.is_none() && av.spec.manifests.is_empty() && av.spec.helm.is_none() {
        return bad(Reason::NothingToDeploy, "set spec.workload, spec.manifests or spec.helm".into());
    }
    // Never published (nor its spec hashed): a spec this deep reads differently from a list and
    // from a watch (see `crate::depth`).
    let chart_values = av.spec.helm.as_ref().and_then(|h| h.values.as_ref());
    if av.spec.manifests.iter().chain(chart_values).any(crate::depth::too_deep) {
        return bad(
            Reason::NestedTooDeep,
            format!(
                "spec.manifests or spec.helm.values nest deeper than {} levels, which the operator does not read; flatten them",
                crate::depth::MAX_DEPTH
            ),
        );
    }
    if let Some(h) = &av.spec.helm
        && let Err(e) = semver::Version::parse(h.version.trim())
    {
        return bad(
            Reason::InvalidVersion,
            format!("spec.helm.version {:?} is not an exact semantic version: {e}", h.version),
        );
    }
    let key = |a: &AppVersion| (a.metadata.creation_timestamp.clone().map(|t| t.0), a.name_any());
    let first = others
        .iter()
        .filter(|o| o.namespace() == av.namespace() && o.spec.app == av.spec.app)
        .filter(|o| semver::Version::parse(o.spec.version.trim()).is_ok_and(|v| v == version))
        .map(|o| o.as_ref())
        .min_by_key(|o| key(o));
    if let Some(first) = first
        && first.name_any() != av.name_any()
    {
        return bad(
            Reason::DuplicateVersion,
            format!(
                "AppVersion {} already is {} {version}; versions are published once",
                first.name_any(),
                av.spec.app
            ),
        );
    }
    (ConditionUpdate::new(ConditionType::Ready, true, Reason::Published, "published; can be deployed"), true)
}

/// How soon to try again to publish a version whose chart could not be pulled for a reason that
/// may pass (the repository down, a Secret not there yet).
const CHART_RETRY: Duration = Duration::from_secs(20);

pub async fn reconcile(av: Arc<AppVersion>, ctx: Arc<Context>) -> Result<Next> {
    let ns = av.namespace().unwrap_or_default();
    let others = cached(&ctx.stores.app_versions, &ns, ctx.index.app_versions_of(&ns, &av.spec.app));
    let (mut update, mut publish_now) = judge(&av, &others);
    let now = Time(jiff::Timestamp::now());
    let prev = av.status.clone().unwrap_or_default();
    let mut status: AppVersionStatus = prev.clone();
    status.observed_generation = av.metadata.generation;
    // A chart is pulled once, at publish: its digest is what the version is from then on.
    let mut next = Next::await_change();
    if publish_now {
        match charts::publish(ctx.as_ref().into(), &av).await {
            // Helm pulls it meanwhile, and this AppVersion is woken when it is done.
            charts::Pending::Running => return Ok(Next::await_change()),
            charts::Pending::Done(Ok(digest)) => status.chart_digest = digest,
            charts::Pending::Done(Err(e)) => {
                if e.is_transient() {
                    next = Next::requeue(CHART_RETRY);
                }
                update = ConditionUpdate::new(ConditionType::Ready, false, e.reason(), e.to_string());
                publish_now = false;
            }
        }
    }
    if publish_now {
        status.spec_hash = Some(spec_hash(&av.spec));
        status.published_at = Some(now.clone());
    }
    let was =
        find_condition(&prev.conditions, ConditionType::Ready).map(|c| (c.status.clone(), c.reason.clone()));
    let (ok, reason, message) = (update.status, update.reason, update.message.clone());
    set_condition(&mut status.conditions, update, av.metadata.generation, &now);
    // A veto (or its lifting) is recorded before the status that says it was.
    let vetoes = audit::veto_records(&av, prev.recorded_veto.as_deref(), &now);
    if !vetoes.is_empty() {
        let subject = ledger::Subject { namespace: &ns, environment: EVERY, app: &av.spec.app };
        ledger::write(&ctx.ledger, &subject, vetoes).await?;
    }
    status.recorded_veto = Veto::of(&av).as_ref().map(audit::veto_mark);
    let api: Api<AppVersion> = Api::namespaced(ctx.client.clone(), &av.namespace().unwrap_or_default());
    patch_status_if_changed(&api, &ctx.own_writes, &av, av.status.as_ref(), &status).await?;
    let reference = av.object_ref(&());
    let is = Some((if ok { "True" } else { "False" }.to_string(), reason.to_string()));
    if was != is {
        let type_ = if ok { EventType::Normal } else { EventType::Warning };
        emit(&ctx, &reference, type_, reason, message);
    }
    Ok(next)
}
