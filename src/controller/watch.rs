//! One watch per kind feeds a cache and turns every change into reconcile requests for the
//! controllers that care (Release ← Environment/AppVersion/workloads/the Releases it reads,
//! Environment ← Release/Namespace).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::cluster::Link;
use super::context::{Stores, WorkloadStores};
use crate::api::{AppVersion, Approval, Environment, Notification, PipelinePolicy, Release, labels};
use crate::index::PipelineIndex;
use crate::plan::peers::{self, EnvironmentFacts, PeerFacts};
use crate::telemetry::{ControllerLabel, KindLabel, SharedMetrics};

/// Reconcile requests for one controller, counted.
pub struct Trigger<K: Resource<DynamicType = ()>> {
    tx: UnboundedSender<ObjectRef<K>>,
    // Looked up once: sends happen for every watch event, so no label lookup per send.
    sent: Counter,
}

impl<K: Resource<DynamicType = ()>> Clone for Trigger<K> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), sent: self.sent.clone() }
    }
}

impl<K: Resource<DynamicType = ()>> Trigger<K> {
    pub fn new(tx: UnboundedSender<ObjectRef<K>>, metrics: &SharedMetrics) -> Self {
        let label = ControllerLabel { controller: K::kind(&()).to_lowercase() };
        Self { tx, sent: metrics.triggers.get_or_create(&label).clone() }
    }

    pub(crate) fn send(&self, r: ObjectRef<K>) {
        self.sent.inc();
        // A closed channel means the controller is shutting down; nothing left to trigger.
        let _ = self.tx.unbounded_send(r);
    }
}

/// Where reconcile requests go.
#[derive(Clone)]
pub struct Triggers {
    pub releases: Trigger<Release>,
    pub environments: Trigger<Environment>,
    pub app_versions: Trigger<AppVersion>,
    pub metrics: SharedMetrics,
}

/// Label selector for the workloads tuskfish applied.
pub fn managed_selector() -> String {
    format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)
}

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

/// The Release that applied an object, from the labels the renderer put on it.
pub fn release_of(meta: &ObjectMeta) -> Option<ObjectRef<Release>> {
    let l = meta.labels.as_ref()?;
    Some(ObjectRef::new(l.get(labels::RELEASE)?).within(l.get(labels::RELEASE_NAMESPACE)?))
}

/// The Environment that owns a namespace, from the annotation it put on it.
pub fn environment_of_namespace(meta: &ObjectMeta) -> Option<ObjectRef<Environment>> {
    let owner = meta.annotations.as_ref()?.get(labels::NAMESPACE_OWNER_ANNOTATION)?;
    let (ns, name) = owner.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

pub(crate) use crate::index::Seen;

/// Watches `api` into a cache and calls `route` for every object seen: applied, deleted, listed at
/// (re)start, or gone at a relist — an object deleted while the watch was down has no delete event,
/// so the relist's absentees are routed as deleted (from the copy the cache held before).
/// Returns the cache and the future that drives the watch.
pub(crate) fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: SharedMetrics,
    route: impl Fn(&K, &Store<K>, Seen) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    reflect_linked(api, config, metrics, None, route)
}

/// [`reflect`], telling `link` (another cluster's) when the watch has listed and when it failed.
fn reflect_linked<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: SharedMetrics,
    link: Option<Arc<Link>>,
    route: impl Fn(&K, &Store<K>, Seen) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        // managedFields are never read here and are the bulk of a cached object.
        .modify(|o| o.managed_fields_mut().clear());
    if let Some(l) = &link {
        l.expect(kind_of::<K>());
    }
    let fut = route_events(events, writer, reader.clone(), metrics, link, route);
    (reader, fut)
}

/// A kind's name, as the link knows its watch.
fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(k) => k,
        // Only for kinds whose name is computed; none of the watched kinds is.
        std::borrow::Cow::Owned(_) => "object",
    }
}

/// Feeds watch events into the cache (through `writer`, read by `cache`) and routes each object.
fn route_events<K>(
    events: impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    writer: reflector::store::Writer<K>,
    cache: Store<K>,
    metrics: SharedMetrics,
    link: Option<Arc<Link>>,
    route: impl Fn(&K, &Store<K>, Seen) + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&());
    let mut relist = Relist::default();
    events.reflect(writer).for_each(move |res| {
        match res {
            Ok(watcher::Event::Apply(obj)) => route(&obj, &cache, Seen::Present),
            // The cache swaps in the new list at InitDone; until then it holds the old one, so
            // what is listed is routed only then: a reconcile woken for an object the cache does
            // not hold yet would find nothing to do and wait for an unrelated event.
            Ok(watcher::Event::InitApply(obj)) => relist.listed(&obj),
            Ok(watcher::Event::Delete(obj)) => route(&obj, &cache, Seen::Deleted),
            Ok(watcher::Event::Init) => relist.start(&cache),
            Ok(watcher::Event::InitDone) => {
                let (listed, absent) = relist.done();
                // `reflect` has swapped the cache before this event reaches here.
                listed.iter().filter_map(|r| cache.get(r)).for_each(|obj| route(&obj, &cache, Seen::Present));
                absent.iter().for_each(|gone| route(gone, &cache, Seen::Deleted));
                if let Some(l) = &link {
                    l.listed(kind_of::<K>());
                }
            }
            Err(e) => {
                metrics.watch_restarts.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
                warn!(kind = %kind, error = %e, "watch error (retrying with backoff)");
                if let Some(l) = &link {
                    l.failed(&e);
                }
            }
        }
        futures::future::ready(())
    })
}

/// What a (re)list has to compare: the objects cached before it, and the keys it listed (in
/// order).
struct Relist<K: Resource<DynamicType = ()>> {
    before: Vec<Arc<K>>,
    listed: Vec<ObjectRef<K>>,
}

impl<K: Resource<DynamicType = ()>> Default for Relist<K> {
    fn default() -> Self {
        Self { before: Vec::new(), listed: Vec::new() }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Relist<K> {
    fn start(&mut self, cache: &Store<K>) {
        self.before = cache.state();
        self.listed.clear();
    }

    fn listed(&mut self, obj: &K) {
        self.listed.push(ObjectRef::from_obj(obj));
    }

    /// What the relist listed, and the objects cached before it that it did not list (deleted
    /// meanwhile).
    fn done(&mut self) -> (Vec<ObjectRef<K>>, Vec<Arc<K>>) {
        let listed = std::mem::take(&mut self.listed);
        let keys: std::collections::HashSet<&ObjectRef<K>> = listed.iter().collect();
        let absent = std::mem::take(&mut self.before)
            .into_iter()
            .filter(|o| !keys.contains(&ObjectRef::from_obj(o.as_ref())))
            .collect();
        (listed, absent)
    }
}

/// A watch on the workloads tuskfish applied: each change wakes the Release that applied it.
fn workload_watch<K>(
    client: &Client,
    config: watcher::Config,
    triggers: &Triggers,
    link: Option<Arc<Link>>,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let t = triggers.clone();
    let api = Api::<K>::all(client.clone());
    reflect_linked(api, config, t.metrics.clone(), link, move |o: &K, _: &Store<K>, _| {
        release_of(o.meta()).into_iter().for_each(|r| t.releases.send(r));
    })
}

/// The watches of one cluster's workloads and namespaces (tuskfish's only), reporting to `link`
/// when it is another cluster. Nothing runs until the returned drivers are polled.
pub(crate) fn workload_watches(
    client: &Client,
    triggers: &Triggers,
    link: Option<Arc<Link>>,
) -> (WorkloadStores, Vec<futures::future::BoxFuture<'static, ()>>) {
    let managed = watcher::Config::default().labels(&managed_selector());
    let (deployments, deploy_fut) =
        workload_watch::<Deployment>(client, managed.clone(), triggers, link.clone());
    let (stateful_sets, sts_fut) =
        workload_watch::<StatefulSet>(client, managed.clone(), triggers, link.clone());
    let (jobs, jobs_fut) = workload_watch::<Job>(client, managed.clone(), triggers, link.clone());
    let (daemon_sets, ds_fut) = workload_watch::<DaemonSet>(client, managed.clone(), triggers, link.clone());
    let (claims, claims_fut) =
        workload_watch::<PersistentVolumeClaim>(client, managed.clone(), triggers, link.clone());
    // Managed namespaces wake their owner Environment, and their cache spares the Environment
    // controller a read of its namespace on every reconcile.
    let t = triggers.clone();
    let (namespaces, ns_fut) = reflect_linked(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        managed,
        t.metrics.clone(),
        link,
        move |ns: &PartialObjectMeta<Namespace>, _: &Store<PartialObjectMeta<Namespace>>, _| {
            environment_of_namespace(&ns.metadata).into_iter().for_each(|e| t.environments.send(e));
        },
    );
    let stores = WorkloadStores { deployments, stateful_sets, daemon_sets, claims, jobs, namespaces };
    let drivers: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        Box::pin(deploy_fut),
        Box::pin(sts_fut),
        Box::pin(ns_fut),
        Box::pin(jobs_fut),
        Box::pin(ds_fut),
        Box::pin(claims_fut),
    ];
    (stores, drivers)
}

/// A cache that holds nothing and is ready at once (for a kind this process does not watch).
fn ready_empty_store<K>() -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
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
    pub drivers: Vec<futures::future::BoxFuture<'static, ()>>,
    /// Where the watches send reconcile requests (other clusters' watches send there too).
    pub(crate) triggers: Triggers,
}

/// The tuskfish kinds in one namespace (`--watch-namespace`) or in all.
pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Sets up all watches; nothing runs until the returned drivers are polled. With `namespace`, the
/// tuskfish kinds are watched there only; workloads and namespaces are always watched cluster-wide
/// (Environments own namespaces that come and go).
/// `workloads` is the cluster the workloads are watched in: the same as `client`'s, except in an
/// agent (its own cluster, while `client` is the hub's).
/// `policies`: watch the cluster's PipelinePolicies (an agent cannot: its hub rights are one
/// namespace's; it works with none, i.e. the defaults).
pub fn watches(
    client: &Client,
    workloads: &Client,
    triggers: Triggers,
    namespace: Option<&str>,
    policies: bool,
) -> Watches {
    let m = triggers.metrics.clone();
    let all = watcher::Config::default();
    let (revision_tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(revision_tx);

    let index = Arc::new(PipelineIndex::default());
    let (t, c, ix) = (triggers.clone(), changed.clone(), index.clone());
    let (releases, releases_fut) = reflect(
        scoped::<Release>(client, namespace),
        all.clone(),
        m.clone(),
        move |r: &Release, rs: &Store<Release>, seen| {
            bump(&c);
            t.releases.send(ObjectRef::from_obj(r));
            let (before, after) = ix.see_release(r, seen);
            if before != after {
                route_release_change(&t, &ix, rs, r, before.as_ref(), after.as_ref());
            }
        },
    );

    let (t, c, ix) = (triggers.clone(), changed.clone(), index.clone());
    let env_facts = Mutex::new(HashMap::new());
    let (environments, env_fut) = reflect(
        scoped::<Environment>(client, namespace),
        all.clone(),
        m.clone(),
        move |e: &Environment, _: &Store<Environment>, seen| {
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
            }
        },
    );

    let (t, c, ix) = (triggers.clone(), changed, index.clone());
    let (app_versions, av_fut) = reflect(
        scoped::<AppVersion>(client, namespace),
        all.clone(),
        m.clone(),
        move |av: &AppVersion, _: &Store<AppVersion>, seen| {
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
            for name in ix.releases_of_app(&ns, &av.spec.app) {
                t.releases.send(ObjectRef::new(&name).within(&ns));
            }
        },
    );

    let (workloads, mut drivers) = workload_watches(workloads, &triggers, None);

    let (t, ix) = (triggers.clone(), index.clone());
    let (approvals, approvals_fut) = reflect(
        scoped::<Approval>(client, namespace),
        all,
        m.clone(),
        move |a: &Approval, _: &Store<Approval>, seen| {
            ix.see_approval(a, seen);
            t.releases.send(ObjectRef::new(&a.spec.release).within(&a.namespace().unwrap_or_default()));
        },
    );

    // Notifications: the index knows which notices anyone listens for (see `notify`).
    let ix = index.clone();
    let (notifications, notifications_fut) = reflect(
        scoped::<Notification>(client, namespace),
        watcher::Config::default(),
        m,
        move |n: &Notification, _: &Store<Notification>, seen| ix.see_notification(n, seen),
    );
    // Agents' Leases wake the Environments they serve (connected or not).
    let (t, ix) = (triggers.clone(), index.clone());
    let (agent_leases, leases_fut) = reflect(
        scoped::<Lease>(client, namespace),
        watcher::Config::default().labels(labels::AGENT),
        t.metrics.clone(),
        move |l: &Lease, _: &Store<Lease>, _| {
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
            t.metrics.clone(),
            move |_: &PipelinePolicy, _: &Store<PipelinePolicy>, _| {
                for pipeline in ix.pipelines() {
                    let ns = &pipeline.namespace;
                    let (environments, releases, _) = ix.members(ns);
                    environments.iter().for_each(|e| t.environments.send(ObjectRef::new(e).within(ns)));
                    releases.iter().for_each(|r| t.releases.send(ObjectRef::new(r).within(ns)));
                }
            },
        );
        (store, Box::pin(fut) as futures::future::BoxFuture<'static, ()>)
    } else {
        (ready_empty_store(), Box::pin(futures::future::ready(())) as futures::future::BoxFuture<'static, ()>)
    };
    drivers.extend([
        policies_fut,
        Box::pin(leases_fut) as futures::future::BoxFuture<'static, ()>,
        Box::pin(releases_fut),
        Box::pin(env_fut),
        Box::pin(av_fut),
        Box::pin(approvals_fut),
        Box::pin(notifications_fut),
    ]);

    Watches {
        stores: Stores {
            releases,
            environments,
            app_versions,
            approvals,
            notifications,
            agent_leases,
            policies,
            workloads,
        },
        index,
        revision,
        drivers,
        triggers,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::runtime::watcher::Event;

    use super::*;
    use crate::api::ReleaseSpec;

    fn release(name: &str) -> Release {
        let mut r = Release::new(name, ReleaseSpec::default());
        r.metadata.namespace = Some("finance".into());
        r
    }

    /// What `route` was called with, in order.
    async fn routed(events: Vec<Event<Release>>) -> Vec<(String, Seen)> {
        let (reader, writer) = reflector::store();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        route_events(
            stream,
            writer,
            reader,
            SharedMetrics::default(),
            None,
            move |r: &Release, cache: &Store<Release>, s| {
                // Whoever is woken for a present object finds it in the cache.
                let cached = cache.get(&ObjectRef::from_obj(r)).is_some();
                assert_eq!(cached, s == Seen::Present, "{} routed as {s:?}, cached: {cached}", r.name_any());
                log.lock().unwrap().push((r.name_any(), s));
            },
        )
        .await;
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn an_object_deleted_while_the_watch_was_down_is_routed_as_deleted() {
        let (a, b, c) = (release("a"), release("b"), release("c"));
        let got = routed(vec![
            Event::Init,
            Event::InitApply(a.clone()),
            Event::InitApply(b.clone()),
            Event::InitDone,
            // The watch broke; b was deleted meanwhile and c created: the relist lists a and c.
            Event::Init,
            Event::InitApply(a.clone()),
            Event::InitApply(c.clone()),
            Event::InitDone,
        ])
        .await;
        let deleted: Vec<&str> =
            got.iter().filter(|(_, s)| *s == Seen::Deleted).map(|(n, _)| n.as_str()).collect();
        assert_eq!(deleted, vec!["b"], "{got:?}");
        // Everything listed is routed as present, each time.
        let present = got.iter().filter(|(_, s)| *s == Seen::Present).count();
        assert_eq!(present, 4, "{got:?}");
    }

    #[tokio::test]
    async fn the_first_list_and_plain_events_route_no_absentees() {
        let a = release("a");
        let got = routed(vec![
            Event::Init,
            Event::InitApply(a.clone()),
            Event::InitDone,
            Event::Delete(a.clone()),
            Event::Init,
            Event::InitDone,
        ])
        .await;
        assert_eq!(got, vec![("a".into(), Seen::Present), ("a".into(), Seen::Deleted)]);
    }
}
