//! The one way tuskfish follows a kind: a watch (retried with backoff; `managedFields` dropped
//! from what is cached) turned into [`Change`]s — apply, delete, reset — that its consumer routes (the controllers'
//! triggers and index, custom kinds' health, kubeconfig Secrets, the notifier's Events, the CLI's
//! `--wait`).
//!
//! With a cache ([`cached`]), what a (re)list lists is handed on only once the cache holds the
//! whole list, so whoever is woken for an object finds it there; and an object deleted while the
//! watch was down (it has no delete event) is handed on as deleted, from the copy the cache held.
//! Without one ([`uncached`]), listed objects are handed on as they come and nothing is known of
//! absentees (for kinds whose deletion nobody acts on: Events, the Release a CLI waits for).

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use crate::lean::Lean;
use futures::{Future, Stream, StreamExt};
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::index::Seen;
use crate::plan::shards::Share;
use crate::telemetry::{KindLabel, SharedMetrics};

/// What a watch saw.
#[derive(Debug)]
pub enum Change<K> {
    /// The object is there: applied, or listed at a (re)start.
    Apply(Arc<K>),
    /// The object is gone: deleted, or (with a cache) absent from a relist.
    Delete(Arc<K>),
    /// A (re)list is complete: everything it listed (and, with a cache, everything gone meanwhile)
    /// has been handed on; the cache holds exactly what the server has.
    Reset,
    /// The watch failed; it retries with backoff.
    Failed(watcher::Error),
}

impl<K> Change<K> {
    /// The object and whether it is there, for an apply or a delete.
    pub fn seen(&self) -> Option<(&K, Seen)> {
        match self {
            Change::Apply(o) => Some((o, Seen::Present)),
            Change::Delete(o) => Some((o, Seen::Deleted)),
            Change::Reset | Change::Failed(_) => None,
        }
    }
}

/// The kinds this module follows.
pub trait Watched: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {}
impl<K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static> Watched for K {}

/// Which objects a watch hands on and caches: those of one share of the pipelines (see
/// [`crate::plan::shards`]), each object's pipeline namespace named by `pipeline_of`. The rest are
/// dropped as they arrive, so a shard's caches hold its share only. The API server cannot select
/// by a hash of the namespace: every replica still receives (and decodes) every event.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    pub share: Share,
    pub pipeline_of: fn(&ObjectMeta) -> Option<&str>,
}

impl Filter {
    /// Objects of the tuskfish kinds, which live in their pipeline namespace.
    pub fn by_namespace(share: Share) -> Self {
        Self { share, pipeline_of: |m| m.namespace.as_deref() }
    }

    /// Whether the object is this share's (one that names no pipeline is nobody's).
    pub fn keeps(&self, meta: &ObjectMeta) -> bool {
        (self.pipeline_of)(meta).is_some_and(|p| self.share.owns(p))
    }
}

/// The watch's events, retried with backoff.
fn events<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static {
    watcher(api, config).default_backoff()
}

/// What of watch `event` a cache filtered by `filter` takes: the event, nothing, or the delete of
/// the copy it holds (`cached`) of an object that is no longer the filter's (relabelled or
/// re-annotated: it would otherwise stay there, stale, until the next relist).
fn filtered<K: Watched>(
    filter: Option<Filter>,
    event: watcher::Result<watcher::Event<K>>,
    cached: impl Fn(&K) -> Option<Arc<K>>,
) -> Option<watcher::Result<watcher::Event<K>>> {
    let Some(f) = filter else { return Some(event) };
    match event {
        Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) if !f.keeps(o.meta()) => {
            cached(&o).map(|old| Ok(watcher::Event::Delete(Arc::unwrap_or_clone(old))))
        }
        Ok(watcher::Event::InitApply(o)) if !f.keeps(o.meta()) => None,
        other => Some(other),
    }
}

/// Follows `api` into a cache: the cache, and the changes (which must be polled for the cache to
/// fill).
pub fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    filter: Option<Filter>,
) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
where
    K: Watched + Lean,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    cached_with(api, config, K::DynamicType::default(), filter)
}

/// [`cached`] for a kind known at run time (a custom kind's `ApiResource`).
pub fn cached_with<K>(
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
    filter: Option<Filter>,
) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
where
    K: Watched + Lean,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    // Only what is read enters the cache (see `crate::lean`); what the changes hand on is the same.
    into_cache(events(api, config).modify(Lean::lean), dyntype, filter)
}

/// Feeds watch `events` (those `filter` keeps) into a cache: the cache, and the changes they make.
fn into_cache<K>(
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    dyntype: K::DynamicType,
    filter: Option<Filter>,
) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
where
    K: Watched,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let cache = writer.as_reader();
    let store = cache.clone();
    let (held, key_type) = (cache.clone(), dyntype.clone());
    let mut relist = Relist::new(dyntype);
    let events = events.filter_map(move |e| {
        let in_cache = |o: &K| held.get(&ObjectRef::from_obj_with(o, key_type.clone()));
        futures::future::ready(filtered(filter, e, in_cache))
    });
    // `reflect` updates the cache before it passes each event on.
    let changes =
        events.reflect(writer).flat_map(move |e| futures::stream::iter(relist.changes(e, Some(&store))));
    (cache, changes)
}

/// Follows `api` without a cache (see the module's note on absentees); objects are handed on
/// whole, as the server sent them.
pub fn uncached<K>(
    api: Api<K>,
    config: watcher::Config,
    filter: Option<Filter>,
) -> impl Stream<Item = Change<K>> + Send + 'static
where
    K: Watched,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let mut relist = Relist::new(K::DynamicType::default());
    events(api, config)
        .filter_map(move |e| futures::future::ready(filtered(filter, e, |_| None)))
        .flat_map(move |e| futures::stream::iter(relist.changes(e, None)))
}

/// Hands every change to `sink`, after counting and logging a failure (`kind` names the watch).
pub fn drive<K: 'static>(
    changes: impl Stream<Item = Change<K>> + Send + 'static,
    kind: String,
    metrics: SharedMetrics,
    mut sink: impl FnMut(Change<K>) + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    changes.for_each(move |change| {
        if let Change::Failed(e) = &change {
            metrics.watch_restarts.get_or_create(&KindLabel { kind: kind.clone() }).inc();
            warn!(%kind, error = %e, "watch error (retrying with backoff)");
        }
        sink(change);
        futures::future::ready(())
    })
}

/// Follows `api` into a cache and calls `route` for every object seen there or gone (applied,
/// deleted, listed, absent from a relist). The cache, and the future that drives the watch.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    filter: Option<Filter>,
    metrics: SharedMetrics,
    route: impl Fn(&K, Seen) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Watched<DynamicType = ()> + Lean,
{
    let (cache, changes) = cached(api, config, filter);
    (cache, route_seen(changes, metrics, route))
}

/// Calls `route` for every object of `changes` seen or gone.
pub fn route_seen<K>(
    changes: impl Stream<Item = Change<K>> + Send + 'static,
    metrics: SharedMetrics,
    route: impl Fn(&K, Seen) + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Watched<DynamicType = ()>,
{
    drive(changes, K::kind(&()).into_owned(), metrics, move |change| {
        if let Some((obj, seen)) = change.seen() {
            route(obj, seen);
        }
    })
}

/// A namespaced kind in one namespace, or in all.
pub fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What a (re)list has to compare: the objects cached before it, and the keys it listed (in order).
struct Relist<K: Resource> {
    dyntype: K::DynamicType,
    before: Vec<Arc<K>>,
    listed: Vec<ObjectRef<K>>,
}

impl<K> Relist<K>
where
    K: Resource + Clone,
    K::DynamicType: Eq + Hash + Clone,
{
    fn new(dyntype: K::DynamicType) -> Self {
        Self { dyntype, before: Vec::new(), listed: Vec::new() }
    }

    /// The changes one watch event makes (with `cache`: after the cache applied it).
    fn changes(
        &mut self,
        event: watcher::Result<watcher::Event<K>>,
        cache: Option<&Store<K>>,
    ) -> Vec<Change<K>> {
        match (event, cache) {
            (Ok(watcher::Event::Apply(o)), _) | (Ok(watcher::Event::InitApply(o)), None) => {
                vec![Change::Apply(Arc::new(o))]
            }
            (Ok(watcher::Event::Delete(o)), _) => vec![Change::Delete(Arc::new(o))],
            (Ok(watcher::Event::Init), Some(cache)) => {
                self.before = cache.state();
                self.listed.clear();
                Vec::new()
            }
            (Ok(watcher::Event::Init), None) => Vec::new(),
            // The cache swaps in the new list at InitDone; until then it holds the old one.
            (Ok(watcher::Event::InitApply(o)), Some(_)) => {
                self.listed.push(ObjectRef::from_obj_with(&o, self.dyntype.clone()));
                Vec::new()
            }
            (Ok(watcher::Event::InitDone), None) => vec![Change::Reset],
            (Ok(watcher::Event::InitDone), Some(cache)) => {
                let listed = std::mem::take(&mut self.listed);
                let keys: HashSet<&ObjectRef<K>> = listed.iter().collect();
                let absent = std::mem::take(&mut self.before)
                    .into_iter()
                    .filter(|o| !keys.contains(&ObjectRef::from_obj_with(o.as_ref(), self.dyntype.clone())));
                let mut out: Vec<Change<K>> =
                    listed.iter().filter_map(|r| cache.get(r)).map(Change::Apply).collect();
                out.extend(absent.map(Change::Delete));
                out.push(Change::Reset);
                out
            }
            (Err(e), _) => vec![Change::Failed(e)],
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::api::{Release, ReleaseSpec};

    fn release(name: &str) -> Release {
        let mut r = Release::new(name, ReleaseSpec::default());
        r.metadata.namespace = Some("finance".into());
        r
    }

    /// What a cached watch hands on for `events`.
    async fn changes(events: Vec<Event<Release>>) -> Vec<(String, Seen)> {
        let (_, stream) = into_cache(futures::stream::iter(events.into_iter().map(Ok)), (), None);
        let all: Vec<Change<Release>> = stream.collect().await;
        all.iter().filter_map(Change::seen).map(|(r, s)| (r.name_any(), s)).collect()
    }

    #[tokio::test]
    async fn an_object_deleted_while_the_watch_was_down_is_handed_on_as_deleted() {
        let (a, b, c) = (release("a"), release("b"), release("c"));
        let got = changes(vec![
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
        // Everything listed is handed on as present, each time.
        let present = got.iter().filter(|(_, s)| *s == Seen::Present).count();
        assert_eq!(present, 4, "{got:?}");
    }

    #[tokio::test]
    async fn the_first_list_and_plain_events_hand_on_no_absentees() {
        let a = release("a");
        let got = changes(vec![
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

    #[tokio::test]
    async fn a_listed_object_is_in_the_cache_when_it_is_handed_on() {
        let events = vec![
            Event::Init,
            Event::InitApply(release("a")),
            Event::InitApply(release("b")),
            Event::InitDone,
        ];
        let (reader, stream) = into_cache(futures::stream::iter(events.into_iter().map(Ok)), (), None);
        let mut stream = std::pin::pin!(stream);
        let mut handed = 0;
        while let Some(change) = stream.next().await {
            if let Change::Apply(r) = &change {
                assert!(
                    reader.get(&ObjectRef::from_obj(r.as_ref())).is_some(),
                    "{} not cached yet",
                    r.name_any()
                );
                handed += 1;
            }
        }
        assert_eq!(handed, 2);
    }

    #[tokio::test]
    async fn a_filtered_cache_keeps_its_share_and_lets_go_of_what_leaves_it() {
        use crate::plan::shards::{Share, shard_of};
        let share = Share { index: shard_of("finance", 2), count: 2 };
        let other = (0..).map(|i| format!("team-{i}")).find(|p| !share.owns(p)).unwrap();
        let of = |name: &str, pipeline: &str| {
            let mut r = release(name);
            r.metadata.labels = Some([("p".to_string(), pipeline.to_string())].into());
            r
        };
        let filter = Filter { share, pipeline_of: |m| m.labels.as_ref()?.get("p").map(String::as_str) };
        let events = vec![
            Event::Init,
            Event::InitApply(of("ours", "finance")),
            Event::InitApply(of("theirs", &other)),
            Event::InitDone,
            Event::Apply(of("theirs-too", &other)),
            // Relabelled away: the copy cached goes, as a delete of what was cached.
            Event::Apply(of("ours", &other)),
        ];
        let (reader, stream) =
            into_cache(futures::stream::iter(events.into_iter().map(Ok)), (), Some(filter));
        let all: Vec<Change<Release>> = stream.collect().await;
        let seen: Vec<(String, Seen, String)> = all
            .iter()
            .filter_map(Change::seen)
            .map(|(r, s)| (r.name_any(), s, r.labels().get("p").cloned().unwrap_or_default()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("ours".into(), Seen::Present, "finance".into()),
                ("ours".into(), Seen::Deleted, "finance".into())
            ]
        );
        assert!(reader.state().is_empty(), "{:?}", reader.state());
    }

    #[tokio::test]
    async fn without_a_cache_listed_objects_are_handed_on_at_once_then_a_reset() {
        let mut relist = Relist::<Release>::new(());
        let first = relist.changes(Ok(Event::InitApply(release("a"))), None);
        assert!(matches!(first.as_slice(), [Change::Apply(r)] if r.name_any() == "a"));
        let done = relist.changes(Ok(Event::InitDone), None);
        assert!(matches!(done.as_slice(), [Change::Reset]));
    }
}
