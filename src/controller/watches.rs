//! The operator's watches: one per kind feeds a cache and the index, and turns every change into
//! reconcile requests for the controllers that care (Release ← Environment/AppVersion/workloads/
//! the Releases it reads, Environment ← Release/Namespace/agent Lease, everyone ← PipelinePolicy).
//! How a watch becomes changes is [`crate::watch`]'s; what each change wakes is said here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use super::caches::{Stores, ready_empty};
use super::cluster::workload_watches;
use super::triggers::Triggers;
use crate::api::{
    AppVersion, Approval, Environment, Notification, PipelinePolicy, ProductRelease, ProductVersion, Release,
    labels,
};
use crate::index::{PipelineIndex, Seen};
use crate::plan::peers::{self, EnvironmentFacts, PeerFacts};
use crate::plan::shards::Share;
use crate::watch::{self, Filter, reflect, scoped};

/// Wakes the Releases and Environments that read what changed of Release `r`: its peers by app and
/// Environment from the index, of which `plan::peers` picks those that must decide again.
fn route_release_change(
    t: &Triggers,
    index: &PipelineIndex,
    releases: &Store<Release>,
    r: &Release,
    before: Option<&PeerFacts>,
    after: Option<&PeerFacts>,
) {
    let ns = r.namespace().unwrap_or_default();
    for name in index.peer_candidates(&ns, &r.name_any(), before, after) {
        let key = ObjectRef::new(&name).within(&ns);
        if releases.get(&key).is_some_and(|o| peers::must_look(before, after, &o)) {
            t.releases.send(key);
        }
    }
    if peers::environment_must_look(before, after) {
        for env in before.iter().chain(after.iter()).map(|f| &f.environment) {
            t.environments.send(ObjectRef::new(env).within(&ns));
        }
    }
}

/// What the route of a watch last saw of each object, to tell real changes from noise.
type Known<K, F> = Mutex<HashMap<ObjectRef<K>, F>>;

/// Records `now` (`None`: the object is gone) and returns what was known before. The map only
/// caches what was seen, so a lock poisoned by a panic elsewhere is still good to use.
fn remember<K: Resource<DynamicType = ()>, F>(
    known: &Known<K, F>,
    key: ObjectRef<K>,
    now: Option<F>,
) -> Option<F> {
    let mut known = known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match now {
        Some(f) => known.insert(key, f),
        None => known.remove(&key),
    }
}

/// Tells readers of [`Watches::revision`] that a cache changed (they may have gone: no error).
pub(crate) fn bump(changed: &tokio::sync::watch::Sender<u64>) {
    changed.send_modify(|r| *r = r.wrapping_add(1));
}

/// Everything the watches produce: the caches, and the futures that keep them current.
pub struct Watches {
    pub stores: Stores,
    /// Who relates to whom, kept by the same watch events as the caches.
    pub index: Arc<PipelineIndex>,
    /// Bumped after every change to a Release, Environment or AppVersion in the caches, so that
    /// read-only views (the web page) redraw on change without asking the API server.
    pub revision: tokio::sync::watch::Receiver<u64>,
    /// Told when a Release is gone (what was kept for it may be swept).
    pub released: Arc<tokio::sync::Notify>,
    pub drivers: Vec<BoxFuture<'static, ()>>,
    /// Where the watches send reconcile requests (other clusters' watches send there too).
    pub(crate) triggers: Triggers,
}

/// Which pipelines the watches follow: those in `namespace` (`None`: all namespaces), and of them
/// those of `share` (`None`: all).
#[derive(Clone, Copy, Default)]
pub struct Scope<'a> {
    pub namespace: Option<&'a str>,
    pub share: Option<Share>,
}

/// Sets up all watches; nothing runs until the returned drivers are polled. With a namespace, the
/// tuskfish kinds are watched there only; workloads and namespaces are always watched cluster-wide
/// (Environments own namespaces that come and go). With a share, every watch keeps that share of
/// the pipelines' objects only.
/// `workloads` is the cluster the workloads are watched in: the same as `client`'s, except in an
/// agent (its own cluster, while `client` is the hub's).
/// `policies`: watch the cluster's PipelinePolicies (an agent cannot: its hub rights are one
/// namespace's; it works with none, i.e. the defaults).
pub fn watches(
    client: &Client,
    workloads: &Client,
    triggers: Triggers,
    scope: Scope<'_>,
    policies: bool,
) -> Watches {
    let Scope { namespace, share } = scope;
    let only = share.map(Filter::by_namespace);
    let m = triggers.metrics.clone();
    let all = watcher::Config::default();
    let (revision_tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(revision_tx);

    let index = Arc::new(PipelineIndex::default());
    let (t, c, ix) = (triggers.clone(), changed.clone(), index.clone());
    // The route of a Release change reads the Release cache (which of its peers must look again).
    let (releases, changes) = watch::cached(scoped::<Release>(client, namespace), all.clone(), only);
    let rs = releases.clone();
    let released = Arc::new(tokio::sync::Notify::new());
    let gone = released.clone();
    let releases_fut = watch::route_seen(changes, m.clone(), move |r: &Release, seen| {
        bump(&c);
        if seen == Seen::Deleted {
            gone.notify_one();
        }
        t.releases.send(ObjectRef::from_obj(r));
        let ns = r.namespace().unwrap_or_default();
        // A product follows the Releases it runs.
        if let Some(owner) = ix.products.see_release(r, seen) {
            t.product_releases.send(ObjectRef::new(&owner).within(&ns));
        }
        let (before, after) = ix.see_release(r, seen);
        // A Release that comes or goes may free (or take) an app a product wants here.
        if before.is_none() || after.is_none() {
            for p in ix.products.releases_in(&ns, &r.spec.environment) {
                t.product_releases.send(ObjectRef::new(&p).within(&ns));
            }
        }
        if before != after {
            route_release_change(&t, &ix, &rs, r, before.as_ref(), after.as_ref());
        }
    });

    let (t, c, ix) = (triggers.clone(), changed.clone(), index.clone());
    let env_facts = Mutex::new(HashMap::new());
    let (environments, env_fut) = reflect(
        scoped::<Environment>(client, namespace),
        all.clone(),
        only,
        m.clone(),
        move |e: &Environment, seen| {
            ix.see_environment(e, seen);
            bump(&c);
            t.environments.send(ObjectRef::from_obj(e));
            // The counts the Environment keeps of its Releases change with every rollout in it;
            // waking all its Releases for them would be a reconcile per Release per count write.
            let after = (seen == Seen::Present).then(|| EnvironmentFacts::of(e));
            if remember(&env_facts, ObjectRef::from_obj(e), after.clone()) != after {
                let ns = e.namespace().unwrap_or_default();
                for name in ix.releases_in_environment(&ns, &e.name_any()) {
                    t.releases.send(ObjectRef::new(&name).within(&ns));
                }
                for name in ix.products.releases_in(&ns, &e.name_any()) {
                    t.product_releases.send(ObjectRef::new(&name).within(&ns));
                }
            }
        },
    );

    let (t, c, ix) = (triggers.clone(), changed, index.clone());
    let av_published: Known<AppVersion, ()> = Mutex::new(HashMap::new());
    let (app_versions, av_fut) = reflect(
        scoped::<AppVersion>(client, namespace),
        all.clone(),
        only,
        m.clone(),
        move |av: &AppVersion, seen| {
            ix.see_app_version(av, seen);
            bump(&c);
            t.app_versions.send(ObjectRef::from_obj(av));
            let ns = av.namespace().unwrap_or_default();
            // A later AppVersion of the same version, refused as a duplicate, may now be the first.
            if seen == Seen::Deleted {
                for name in ix.app_versions_of(&ns, &av.spec.app) {
                    t.app_versions.send(ObjectRef::new(&name).within(&ns));
                }
            }
            // A version just published is a new version to roll out: ahead of the echoes of the
            // rollouts under way (a relist, a status rewrite or a deletion is not).
            let published =
                seen == Seen::Present && av.status.as_ref().is_some_and(|s| s.spec_hash.is_some());
            let was = remember(&av_published, ObjectRef::from_obj(av), published.then_some(()));
            // A product version waits for the AppVersions it names (published, not vetoed): any
            // change of one (a veto is an annotation) may change whether it is published.
            for name in ix.products.versions_naming(&ns, &av.spec.app) {
                t.product_versions.send(ObjectRef::new(&name).within(&ns));
            }
            for name in ix.releases_of_app(&ns, &av.spec.app) {
                let r = ObjectRef::new(&name).within(&ns);
                if published && was.is_none() { t.releases.send_urgent(r) } else { t.releases.send(r) }
            }
        },
    );

    let (workloads, mut drivers) = workload_watches(workloads, &triggers, None, share);

    let (t, ix) = (triggers.clone(), index.clone());
    let (approvals, approvals_fut) =
        reflect(scoped::<Approval>(client, namespace), all, only, m.clone(), move |a: &Approval, seen| {
            ix.see_approval(a, seen);
            let ns = a.namespace().unwrap_or_default();
            t.releases.send(ObjectRef::new(&a.spec.release).within(&ns));
            // An Approval names a Release or a ProductRelease (`spec.release` either way).
            if !ix.products.children_of(&ns, &a.spec.release).is_empty()
                || ix
                    .products
                    .releases_in(&ns, a.spec.environment.as_deref().unwrap_or_default())
                    .contains(&a.spec.release)
                || a.spec.environment.is_none()
            {
                t.product_releases.send(ObjectRef::new(&a.spec.release).within(&ns));
            }
        });

    // An agent runs no products (the hub's operator does; its hub rights do not cover them).
    let (product_versions, product_releases, product_futs) = if policies {
        product_watches(client, namespace, only, &triggers, &index)
    } else {
        (ready_empty(), ready_empty(), Vec::new())
    };

    // Notifications: the index knows which notices anyone listens for (see `notify`).
    let ix = index.clone();
    let (notifications, notifications_fut) = reflect(
        scoped::<Notification>(client, namespace),
        watcher::Config::default(),
        only,
        m,
        move |n: &Notification, seen| ix.see_notification(n, seen),
    );
    // Agents' Leases wake the Environments they serve (connected or not).
    let (t, ix) = (triggers.clone(), index.clone());
    let (agent_leases, leases_fut) = reflect(
        scoped::<Lease>(client, namespace),
        watcher::Config::default().labels(labels::AGENT),
        only,
        t.metrics.clone(),
        move |l: &Lease, _| {
            let (Some(ns), Some(agent)) = (l.namespace(), l.labels().get(labels::AGENT)) else { return };
            for env in ix.environments_of_agent(&ns, agent) {
                t.environments.send(ObjectRef::new(&env).within(&ns));
            }
        },
    );
    // PipelinePolicies: what each pipeline may claim and reach. They are few and change rarely;
    // a change re-judges every Environment and Release (egress, levels, namespaces).
    let (t, ix) = (triggers.clone(), index.clone());
    let (policies, policies_fut) = if policies {
        let (store, fut) = reflect(
            Api::<PipelinePolicy>::all(client.clone()),
            watcher::Config::default(),
            None,
            t.metrics.clone(),
            move |_: &PipelinePolicy, _| {
                for pipeline in ix.pipelines() {
                    let ns = &pipeline.namespace;
                    let (environments, releases, _) = ix.members(ns);
                    environments.iter().for_each(|e| t.environments.send(ObjectRef::new(e).within(ns)));
                    releases.iter().for_each(|r| t.releases.send(ObjectRef::new(r).within(ns)));
                }
            },
        );
        (store, Box::pin(fut) as BoxFuture<'static, ()>)
    } else {
        (ready_empty(), Box::pin(futures::future::ready(())) as BoxFuture<'static, ()>)
    };
    drivers.extend([
        policies_fut,
        Box::pin(leases_fut) as BoxFuture<'static, ()>,
        Box::pin(releases_fut),
        Box::pin(env_fut),
        Box::pin(av_fut),
        Box::pin(approvals_fut),
        Box::pin(notifications_fut),
    ]);
    drivers.extend(product_futs);

    Watches {
        stores: Stores {
            releases,
            environments,
            app_versions,
            approvals,
            notifications,
            product_versions,
            product_releases,
            agent_leases,
            policies,
            workloads,
        },
        index,
        revision,
        released,
        drivers,
        triggers,
    }
}

/// What a product's dependents read of it: what it admits (its Releases), and what runs healthy
/// (the products promoted from it).
type ProductFacts = (Option<crate::api::Admitted>, Option<String>, Option<crate::api::Phase>, Option<String>);

fn product_facts(p: &ProductRelease) -> ProductFacts {
    let s = p.status.clone().unwrap_or_default();
    (s.admitted, s.current_version, s.phase, s.healthy_since.map(|t| t.0.to_string()))
}

/// The watches of ProductVersions and ProductReleases, and what their changes wake.
fn product_watches(
    client: &Client,
    namespace: Option<&str>,
    only: Option<Filter>,
    triggers: &Triggers,
    index: &Arc<PipelineIndex>,
) -> (Store<ProductVersion>, Store<ProductRelease>, Vec<BoxFuture<'static, ()>>) {
    let all = watcher::Config::default();
    let (t, ix) = (triggers.clone(), index.clone());
    let (versions, versions_fut) = reflect(
        scoped::<ProductVersion>(client, namespace),
        all.clone(),
        only,
        t.metrics.clone(),
        move |pv: &ProductVersion, seen| {
            ix.products.see_version(pv, seen);
            t.product_versions.send(ObjectRef::from_obj(pv));
            let ns = pv.namespace().unwrap_or_default();
            for name in ix.products.releases_of(&ns, &pv.spec.product) {
                t.product_releases.send(ObjectRef::new(&name).within(&ns));
            }
        },
    );
    let (t, ix) = (triggers.clone(), index.clone());
    let known: Known<ProductRelease, ProductFacts> = Mutex::new(HashMap::new());
    let (releases, releases_fut) = reflect(
        scoped::<ProductRelease>(client, namespace),
        all,
        only,
        t.metrics.clone(),
        move |p: &ProductRelease, seen| {
            ix.products.see_product_release(p, seen);
            t.product_releases.send(ObjectRef::from_obj(p));
            let after = (seen == Seen::Present).then(|| product_facts(p));
            let before = remember(&known, ObjectRef::from_obj(p), after.clone());
            if before == after {
                return;
            }
            let ns = p.namespace().unwrap_or_default();
            // Its Releases read what it admits; the products promoted from it, what runs healthy.
            for name in ix.products.children_of(&ns, &p.name_any()) {
                t.releases.send(ObjectRef::new(&name).within(&ns));
            }
            for name in ix.products.releases_of(&ns, &p.spec.product) {
                t.product_releases.send(ObjectRef::new(&name).within(&ns));
            }
        },
    );
    (versions, releases, vec![Box::pin(versions_fut), Box::pin(releases_fut)])
}
