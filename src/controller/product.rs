//! ProductRelease reconciler, one pipeline: gather (through the index) → decide (pure:
//! `plan::product::step`) → record the status (what it admits, before any Release is told) →
//! act (each app's Release brought to what the product says; those no longer in it deleted) →
//! publish (Events).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::caches::cached;
use super::context::Context;
use super::error::{Error, Result};
use super::events::emit;
use super::queue::Next;
use super::status::patch_status_if_changed;
use crate::api::owned_by;
use crate::api::{
    Approval, Environment, FIELD_MANAGER, PRODUCT_RELEASE_LABEL, ProductRelease, ProductVersion, Release,
    ReleaseSpec, child_release_name,
};
use crate::plan::product::{ProductInputs, child_matches, step};

/// Slack added to timer requeues so the time waited for has surely passed.
const RECHECK_SLACK: Duration = Duration::from_secs(1);

pub async fn reconcile(pr: Arc<ProductRelease>, ctx: Arc<Context>) -> Result<Next> {
    let ns = pr.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    if pr.metadata.deletion_timestamp.is_some() {
        // Its Releases go with it (owner references): each removes what it applied.
        return Ok(Next::await_change());
    }
    // 1. Gather.
    let g = Gathered::of(&ctx, &pr, &ns);
    let inputs = g.inputs(&pr);
    // 2. Decide.
    let step = step(&inputs);
    // 3. Record: what the product admits is written before any Release is told to run it (a
    // Release runs only what its product admits).
    let api: Api<ProductRelease> = Api::namespaced(ctx.client.clone(), &ns);
    patch_status_if_changed(&api, &ctx.own_writes, pr.as_ref(), pr.status.as_ref(), &step.status).await?;
    // 4. Act.
    let children: Vec<(&str, &Release)> = g.children.iter().map(|(n, r)| (n.as_str(), r.as_ref())).collect();
    let acted = converge_children(&ctx, &pr, &ns, &children, &step.children).await;
    // 5. Publish what the recorded status says happened, whether or not every Release took it.
    for (reason, message, warning) in step.events {
        let type_ = if warning { EventType::Warning } else { EventType::Normal };
        emit(&ctx, &pr.object_ref(&()), type_, reason, message);
    }
    acted?;
    Ok(step.recheck_in.map_or_else(Next::await_change, |d| Next::requeue(d.saturating_add(RECHECK_SLACK))))
}

/// What one product's decision reads, held as the caches' own `Arc`s.
struct Gathered {
    env: Option<Arc<Environment>>,
    versions: Vec<Arc<ProductVersion>>,
    upstream: Vec<Arc<ProductRelease>>,
    approvals: Vec<Arc<Approval>>,
    /// Releases labelled as this product's, by name (its own among them, and any impostor).
    children: Vec<(String, Arc<Release>)>,
    squatters: BTreeMap<String, String>,
}

impl Gathered {
    fn of(ctx: &Context, pr: &ProductRelease, ns: &str) -> Self {
        let (ix, stores) = (&ctx.index, &ctx.stores);
        let name = pr.name_any();
        let versions = cached(&stores.product_versions, ns, ix.products.versions_of(ns, &pr.spec.product));
        let upstream = pr.spec.promote_from.as_ref().map_or_else(Vec::new, |from| {
            cached(&stores.product_releases, ns, ix.products.releases_of(ns, &pr.spec.product))
                .into_iter()
                .filter(|p| p.spec.environment == from.environment)
                .collect()
        });
        // Every app any version of the product names (and that it admitted).
        let admitted = pr.status.as_ref().and_then(|s| s.admitted.as_ref());
        let apps: BTreeSet<&str> = versions
            .iter()
            .flat_map(|v| v.spec.apps.iter().map(|a| a.app.as_str()))
            .chain(admitted.iter().flat_map(|a| a.apps.iter().map(|x| x.app.as_str())))
            .collect();
        // Its Releases: by the label, and by the names it gives (a label is anyone's to remove).
        let named = apps.iter().map(|app| child_release_name(&name, app));
        let names: BTreeSet<String> = ix.products.children_of(ns, &name).into_iter().chain(named).collect();
        let children: Vec<(String, Arc<Release>)> =
            cached(&stores.releases, ns, names).into_iter().map(|r| (r.name_any(), r)).collect();
        // Which of its apps another Release runs here.
        let mut squatters = BTreeMap::new();
        for app in apps {
            let own = child_release_name(&name, app);
            // A Release of the name it would give, but not its own, is someone else's too.
            let own_taken = stores
                .releases
                .get(&ObjectRef::new(&own).within(ns))
                .is_some_and(|r| !crate::api::owned_by(&r, pr));
            let others = ix.releases_of(ns, app, &pr.spec.environment).into_iter().find(|r| *r != own);
            if let Some(other) = others.or_else(|| own_taken.then(|| own.clone())) {
                squatters.insert(app.to_string(), other);
            }
        }
        Self {
            env: stores.environments.get(&ObjectRef::new(&pr.spec.environment).within(ns)),
            approvals: cached(&stores.approvals, ns, ix.approvals_for(ns, &name)),
            versions,
            upstream,
            children,
            squatters,
        }
    }

    fn inputs<'a>(&'a self, pr: &'a ProductRelease) -> ProductInputs<'a> {
        let children = self
            .children
            .iter()
            .filter(|(_, r)| owned_by(r, pr))
            .map(|(_, r)| (r.spec.app.clone(), r.as_ref()))
            .collect();
        ProductInputs {
            product: pr,
            env: self.env.as_deref(),
            versions: self.versions.iter().map(AsRef::as_ref).collect(),
            upstream: self.upstream.iter().map(AsRef::as_ref).collect(),
            approvals: self.approvals.iter().map(AsRef::as_ref).collect(),
            children,
            squatters: self.squatters.clone(),
            now: jiff::Timestamp::now(),
        }
    }
}

/// Brings each app's Release to `want` (creating it, or applying the product's fields where they
/// differ: nothing where they match), and deletes this product's Releases of apps it no longer runs.
async fn converge_children(
    ctx: &Context,
    pr: &ProductRelease,
    ns: &str,
    have: &[(&str, &Release)],
    want: &[(String, ReleaseSpec)],
) -> Result<()> {
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), ns);
    // One Release that cannot be written does not keep the others from theirs.
    let mut first_error = None;
    for (name, spec) in want {
        let current = have.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
        if current.is_some_and(|r| owned_by(r, pr) && child_matches(&r.spec, spec) && labelled(r, pr)) {
            continue;
        }
        // A Release of that name that is not its own is never taken over (the decision refuses the
        // product version while one is there; this covers one made since).
        if current.is_some_and(|r| !owned_by(r, pr)) {
            continue;
        }
        if let Err(e) = write_child(&api, pr, name, spec, current).await {
            first_error.get_or_insert(Error::Apply { what: format!("Release {ns}/{name}"), source: e });
        }
    }
    for (name, r) in have {
        if want.iter().any(|(n, _)| n == name) || !owned_by(r, pr) || r.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                first_error.get_or_insert(Error::Prune { what: format!("Release {ns}/{name}"), source });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Applies the product's fields of one app's Release. Another version source written by someone
/// else (`track`, `promoteFrom`, `rollback.to`) is removed first: an apply cannot remove a field
/// another manager owns, and with it the Release would name two sources (which the API server
/// refuses).
async fn write_child(
    api: &Api<Release>,
    pr: &ProductRelease,
    name: &str,
    spec: &ReleaseSpec,
    current: Option<&Release>,
) -> std::result::Result<(), kube::Error> {
    let foreign = current.is_some_and(|r| {
        r.spec.track.is_some() || r.spec.promote_from.is_some() || r.spec.rollback_to().is_some()
    });
    if foreign {
        let clear = json!({"spec": {"version": spec.version, "track": null, "promoteFrom": null, "rollback": {"to": null}}});
        let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        api.patch(name, &pp, &Patch::Merge(clear)).await?;
    }
    let body = child_body(pr, name, spec);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await?;
    Ok(())
}

fn labelled(r: &Release, pr: &ProductRelease) -> bool {
    r.labels().get(PRODUCT_RELEASE_LABEL).map(String::as_str) == pr.metadata.name.as_deref()
}

/// The product's part of one app's Release, as applied (its other fields are its users').
fn child_body(pr: &ProductRelease, name: &str, spec: &ReleaseSpec) -> serde_json::Value {
    let owner = pr.metadata.name.clone().unwrap_or_default();
    json!({
        "apiVersion": Release::api_version(&()),
        "kind": Release::kind(&()),
        "metadata": {
            "name": name,
            "labels": { PRODUCT_RELEASE_LABEL: owner },
            "ownerReferences": [{
                "apiVersion": ProductRelease::api_version(&()),
                "kind": ProductRelease::kind(&()),
                "name": owner,
                "uid": pr.metadata.uid.clone().unwrap_or_default(),
                "controller": true,
            }],
        },
        "spec": spec,
    })
}
