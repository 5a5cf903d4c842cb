//! One watch per kind feeds a cache and turns every change into reconcile requests for the
//! controllers that care (Release ← Environment/AppVersion/workloads/the Releases it reads,
//! Environment ← Release/Namespace).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Mutex;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::context::Stores;
use crate::api::{AppVersion, Approval, Environment, Release, labels};
use crate::plan::peers::{self, EnvironmentFacts, Facts};
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

    fn send(&self, r: ObjectRef<K>) {
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

/// Keys of the Releases in namespace `ns` that satisfy `pred`.
fn releases_where(
    releases: &Store<Release>,
    ns: Option<String>,
    pred: impl Fn(&Release) -> bool,
) -> Vec<ObjectRef<Release>> {
    releases
        .state()
        .iter()
        .filter(|r| r.namespace() == ns && pred(r))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Releases that point at `env`.
pub fn releases_for_environment(releases: &Store<Release>, env: &Environment) -> Vec<ObjectRef<Release>> {
    let name = env.name_any();
    releases_where(releases, env.namespace(), |r| r.spec.environment == name)
}

/// Releases of the app `av` is a build of.
pub fn releases_for_app_version(releases: &Store<Release>, av: &AppVersion) -> Vec<ObjectRef<Release>> {
    releases_where(releases, av.namespace(), |r| r.spec.app == av.spec.app)
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

/// What a watch saw of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Added, changed, or listed at (re)start.
    Present,
    Deleted,
}

/// Watches `api` into a cache and calls `route` for every object seen (applied, deleted, or listed
/// at (re)start). Returns the cache and the future that drives the watch.
pub(crate) fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: SharedMetrics,
    route: impl Fn(&K, &Store<K>, Seen) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let cache = reader.clone();
    let kind = K::kind(&());
    let fut = watcher(api, config)
        .default_backoff()
        // managedFields are never read here and are the bulk of a cached object.
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .for_each(move |res| {
            match res {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    route(&obj, &cache, Seen::Present)
                }
                Ok(watcher::Event::Delete(obj)) => route(&obj, &cache, Seen::Deleted),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(e) => {
                    metrics.watch_restarts.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
                    warn!(kind = %kind, error = %e, "watch error (retrying with backoff)");
                }
            }
            futures::future::ready(())
        });
    (reader, fut)
}

/// A watch on the workloads tuskfish applied: each change wakes the Release that applied it.
fn workload_watch<K>(
    client: &Client,
    config: watcher::Config,
    triggers: &Triggers,
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
    reflect(Api::<K>::all(client.clone()), config, t.metrics.clone(), move |o: &K, _: &Store<K>, _| {
        release_of(o.meta()).into_iter().for_each(|r| t.releases.send(r));
    })
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
    /// Bumped after every change to a Release, Environment or AppVersion in the caches, so that
    /// read-only views (the web page) redraw on change without asking the API server.
    pub revision: tokio::sync::watch::Receiver<u64>,
    pub drivers: Vec<futures::future::BoxFuture<'static, ()>>,
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
pub fn watches(client: &Client, triggers: Triggers, namespace: Option<&str>) -> Watches {
    let m = triggers.metrics.clone();
    let all = watcher::Config::default();
    let (revision_tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = std::sync::Arc::new(revision_tx);
    let managed = watcher::Config::default().labels(&managed_selector());

    // Releases are needed by the mappers of other kinds, so their cache is built first.
    let (t, c) = (triggers.clone(), changed.clone());
    let facts = Mutex::new(HashMap::new());
    let (releases, releases_fut) = reflect(
        scoped::<Release>(client, namespace),
        all.clone(),
        m.clone(),
        move |r: &Release, rs: &Store<Release>, seen| {
            bump(&c);
            let key = ObjectRef::from_obj(r);
            t.releases.send(key.clone());
            let after = (seen == Seen::Present).then(|| Facts::of(r));
            let before = remember(&facts, key, after.clone());
            if before == after {
                return;
            }
            let others = releases_where(rs, r.namespace(), |o| {
                o.metadata.name != r.metadata.name && peers::must_look(before.as_ref(), after.as_ref(), o)
            });
            others.into_iter().for_each(|o| t.releases.send(o));
            if peers::environment_must_look(before.as_ref(), after.as_ref()) {
                let ns = r.namespace().unwrap_or_default();
                for env in before.iter().chain(after.iter()).map(|f| &f.environment) {
                    t.environments.send(ObjectRef::new(env).within(&ns));
                }
            }
        },
    );

    let (t, rs, c) = (triggers.clone(), releases.clone(), changed.clone());
    let env_facts = Mutex::new(HashMap::new());
    let (environments, env_fut) = reflect(
        scoped::<Environment>(client, namespace),
        all.clone(),
        m.clone(),
        move |e: &Environment, _: &Store<Environment>, seen| {
            bump(&c);
            t.environments.send(ObjectRef::from_obj(e));
            // The counts the Environment keeps of its Releases change with every rollout in it;
            // waking all its Releases for them would be a reconcile per Release per count write.
            let after = (seen == Seen::Present).then(|| EnvironmentFacts::of(e));
            if remember(&env_facts, ObjectRef::from_obj(e), after.clone()) != after {
                releases_for_environment(&rs, e).into_iter().for_each(|r| t.releases.send(r));
            }
        },
    );

    let (t, rs, c) = (triggers.clone(), releases.clone(), changed);
    let (app_versions, av_fut) = reflect(
        scoped::<AppVersion>(client, namespace),
        all.clone(),
        m.clone(),
        move |av: &AppVersion, _: &Store<AppVersion>, _| {
            bump(&c);
            t.app_versions.send(ObjectRef::from_obj(av));
            releases_for_app_version(&rs, av).into_iter().for_each(|r| t.releases.send(r));
        },
    );

    let (deployments, deploy_fut) = workload_watch::<Deployment>(client, managed.clone(), &triggers);
    let (stateful_sets, sts_fut) = workload_watch::<StatefulSet>(client, managed.clone(), &triggers);

    let t = triggers.clone();
    let (approvals, approvals_fut) = reflect(
        scoped::<Approval>(client, namespace),
        all,
        m.clone(),
        move |a: &Approval, _: &Store<Approval>, _| {
            t.releases.send(ObjectRef::new(&a.spec.release).within(&a.namespace().unwrap_or_default()));
        },
    );

    // Managed namespaces wake their owner Environment, and their cache spares the Environment
    // controller a read of its namespace on every reconcile.
    let t = triggers;
    let (namespaces, ns_fut) = reflect(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        managed,
        m,
        move |ns: &PartialObjectMeta<Namespace>, _: &Store<PartialObjectMeta<Namespace>>, _| {
            environment_of_namespace(&ns.metadata).into_iter().for_each(|e| t.environments.send(e));
        },
    );

    Watches {
        stores: Stores {
            releases,
            environments,
            app_versions,
            deployments,
            stateful_sets,
            approvals,
            namespaces,
        },
        revision,
        drivers: vec![
            Box::pin(releases_fut),
            Box::pin(env_fut),
            Box::pin(av_fut),
            Box::pin(deploy_fut),
            Box::pin(sts_fut),
            Box::pin(ns_fut),
            Box::pin(approvals_fut),
        ],
    }
}
