//! The pipeline index: who relates to whom, kept current by the watch events.
//!
//! The caches (kube's `Store`s) hold the objects; this holds only keys and the few parsed facts the
//! controllers look things up by — Releases by app, by Environment and by both, AppVersions by app
//! (version parsed, publication checked once per change), Approvals by Release, Environment counts
//! and a revision per namespace. Every watch event applies or deletes one object here (a relist
//! deletes what it no longer lists, see `crate::watch`), so a reconcile, a watch
//! route or a page reads what it needs in O(matches) instead of scanning every cached object.

mod multimap;
pub mod products;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::ResourceExt;

use crate::api::{AppVersion, Approval, ClusterKey, Environment, NoticeKind, Notification, Phase, Release};
use crate::plan::peers::PeerFacts;
use crate::plan::spec_hash;
use multimap::MultiMap;

/// What the index keeps of an AppVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VersionEntry {
    app: String,
    /// `None` when `spec.version` is not semver (the AppVersion controller reports that).
    version: Option<semver::Version>,
    /// Its spec is the one recorded at publication (an edited one never rolls out).
    published: bool,
}

/// How many Releases an Environment has, and how many of them are Healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub releases: i32,
    pub healthy: i32,
}

/// One pipeline namespace's members.
#[derive(Default)]
struct Members {
    environments: BTreeSet<String>,
    releases: BTreeSet<String>,
    app_versions: BTreeSet<String>,
    revision: u64,
}

impl Members {
    fn is_empty(&self) -> bool {
        self.environments.is_empty() && self.releases.is_empty() && self.app_versions.is_empty()
    }
}

/// A pipeline namespace and how much it holds (the web view's index page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineSize {
    pub namespace: String,
    pub environments: usize,
    pub releases: usize,
}

type Name = (String, String);

/// What a watch saw of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Added, changed, or listed at (re)start.
    Present,
    /// Deleted, or absent from a relist.
    Deleted,
}

#[derive(Default)]
struct Inner {
    releases: HashMap<Name, PeerFacts>,
    by_app: MultiMap<(String, String)>,
    by_environment: MultiMap<(String, String)>,
    by_app_environment: MultiMap<(String, String, String)>,
    healthy: HashMap<(String, String), i32>,
    app_versions: HashMap<Name, VersionEntry>,
    versions_by_app: MultiMap<(String, String)>,
    approvals: HashMap<Name, String>,
    approvals_by_release: MultiMap<(String, String)>,
    /// Notifications by namespace, with the notices each wants (empty: all).
    notifications: BTreeMap<String, BTreeMap<String, BTreeSet<NoticeKind>>>,
    namespaces: BTreeMap<String, Members>,
    /// The other cluster each Environment deploys to, and the Environments of each cluster.
    environment_clusters: HashMap<Name, ClusterKey>,
    by_cluster: MultiMap<ClusterKey>,
    /// The agent serving each Environment, and the Environments of each (namespace, agent).
    environment_agents: HashMap<Name, String>,
    by_agent: MultiMap<(String, String)>,
    /// Bumped for any change, so a namespace's revision never repeats after it empties and refills.
    clock: u64,
}

impl Inner {
    fn set_agent(&mut self, ns: &str, name: &str, agent: Option<&str>) {
        let id = (ns.to_string(), name.to_string());
        if let Some(old) = self.environment_agents.remove(&id) {
            self.by_agent.remove(&(ns.to_string(), old), name);
        }
        if let Some(agent) = agent {
            self.by_agent.insert((ns.to_string(), agent.to_string()), name);
            self.environment_agents.insert(id, agent.to_string());
        }
    }

    fn set_cluster(&mut self, ns: &str, name: &str, key: Option<ClusterKey>) {
        let id = (ns.to_string(), name.to_string());
        if let Some(old) = self.environment_clusters.remove(&id) {
            self.by_cluster.remove(&old, name);
        }
        if let Some(key) = key {
            self.by_cluster.insert(key.clone(), name);
            self.environment_clusters.insert(id, key);
        }
    }

    fn touch(&mut self, ns: &str) -> &mut Members {
        self.clock += 1;
        let clock = self.clock;
        let m = self.namespaces.entry(ns.to_string()).or_default();
        m.revision = clock;
        m
    }

    fn forget_if_empty(&mut self, ns: &str) {
        if self.namespaces.get(ns).is_some_and(Members::is_empty) {
            self.namespaces.remove(ns);
        }
    }

    fn count_healthy(&mut self, ns: &str, f: &PeerFacts, delta: i32) {
        if f.phase == Some(Phase::Healthy) {
            let key = (ns.to_string(), f.environment.clone());
            let n = self.healthy.entry(key.clone()).or_default();
            *n += delta;
            if *n <= 0 {
                self.healthy.remove(&key);
            }
        }
    }

    fn unlink_release(&mut self, ns: &str, name: &str, f: &PeerFacts) {
        self.by_app.remove(&(ns.to_string(), f.app.clone()), name);
        self.by_environment.remove(&(ns.to_string(), f.environment.clone()), name);
        self.by_app_environment.remove(&(ns.to_string(), f.app.clone(), f.environment.clone()), name);
        self.count_healthy(ns, f, -1);
    }

    fn link_release(&mut self, ns: &str, name: &str, f: &PeerFacts) {
        self.by_app.insert((ns.to_string(), f.app.clone()), name);
        self.by_environment.insert((ns.to_string(), f.environment.clone()), name);
        self.by_app_environment.insert((ns.to_string(), f.app.clone(), f.environment.clone()), name);
        self.count_healthy(ns, f, 1);
    }
}

/// Shared by the watches (writers) and the controllers, webhook and web view (readers).
#[derive(Default)]
pub struct PipelineIndex {
    inner: RwLock<Inner>,
    /// Products, their versions and the Releases they run.
    pub products: products::ProductIndex,
}

fn key_of<K: ResourceExt>(obj: &K) -> Name {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

impl PipelineIndex {
    // The index holds only what the watches put there; a panic elsewhere while the lock was held
    // leaves nothing half-written that a later apply would not overwrite, so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what a watch saw of a Release; returns what was known of it before and after
    /// (`None`: absent).
    pub fn see_release(&self, r: &Release, seen: Seen) -> (Option<PeerFacts>, Option<PeerFacts>) {
        match seen {
            Seen::Present => {
                let after = PeerFacts::of(r);
                (self.apply_release(r), Some(after))
            }
            Seen::Deleted => (self.delete_release(&r.namespace().unwrap_or_default(), &r.name_any()), None),
        }
    }

    pub fn see_environment(&self, e: &Environment, seen: Seen) {
        match seen {
            Seen::Present => self.apply_environment(e),
            Seen::Deleted => self.delete_environment(&e.namespace().unwrap_or_default(), &e.name_any()),
        }
    }

    pub fn see_app_version(&self, av: &AppVersion, seen: Seen) {
        match seen {
            Seen::Present => self.apply_app_version(av),
            Seen::Deleted => {
                self.delete_app_version(&av.namespace().unwrap_or_default(), &av.name_any());
            }
        }
    }

    pub fn see_approval(&self, a: &Approval, seen: Seen) {
        match seen {
            Seen::Present => self.apply_approval(a),
            Seen::Deleted => {
                self.delete_approval(&a.namespace().unwrap_or_default(), &a.name_any());
            }
        }
    }

    pub fn see_notification(&self, n: &Notification, seen: Seen) {
        let (ns, name) = key_of(n);
        let mut inner = self.write();
        match seen {
            Seen::Present => {
                let wants = n.spec.events.iter().copied().collect();
                inner.notifications.entry(ns).or_default().insert(name, wants);
            }
            Seen::Deleted => {
                if let Some(names) = inner.notifications.get_mut(&ns) {
                    names.remove(&name);
                    if names.is_empty() {
                        inner.notifications.remove(&ns);
                    }
                }
            }
        }
    }

    /// Names of the Notifications of `namespace`, sorted.
    pub fn notifications_in(&self, namespace: &str) -> Vec<String> {
        self.read().notifications.get(namespace).map(|n| n.keys().cloned().collect()).unwrap_or_default()
    }

    /// Whether a Notification of `namespace` wants `kind` (so that a notice only some want, like a
    /// rollout's start, costs an Event only where someone listens).
    pub fn notice_wanted(&self, namespace: &str, kind: NoticeKind) -> bool {
        self.read()
            .notifications
            .get(namespace)
            .is_some_and(|n| n.values().any(|wants| wants.is_empty() || wants.contains(&kind)))
    }

    /// Records a Release as it is now; returns what was known of it before (`None`: new).
    pub fn apply_release(&self, r: &Release) -> Option<PeerFacts> {
        let (ns, name) = key_of(r);
        let now = PeerFacts::of(r);
        let mut inner = self.write();
        let before = inner.releases.insert((ns.clone(), name.clone()), now.clone());
        if before.as_ref() != Some(&now) {
            if let Some(b) = &before {
                inner.unlink_release(&ns, &name, b);
            }
            inner.link_release(&ns, &name, &now);
        }
        inner.touch(&ns).releases.insert(name);
        before
    }

    /// Forgets a Release; returns what was known of it (`None`: it was not known).
    pub fn delete_release(&self, namespace: &str, name: &str) -> Option<PeerFacts> {
        let mut inner = self.write();
        let before = inner.releases.remove(&(namespace.to_string(), name.to_string()))?;
        inner.unlink_release(namespace, name, &before);
        inner.touch(namespace).releases.remove(name);
        inner.forget_if_empty(namespace);
        Some(before)
    }

    /// Names of the Releases of `app` in `namespace`, sorted.
    pub fn releases_of_app(&self, namespace: &str, app: &str) -> Vec<String> {
        self.read().by_app.get(&(namespace.to_string(), app.to_string()))
    }

    /// Names of the Releases that deploy into `environment`, sorted.
    pub fn releases_in_environment(&self, namespace: &str, environment: &str) -> Vec<String> {
        self.read().by_environment.get(&(namespace.to_string(), environment.to_string()))
    }

    /// Names of the Releases of `app` in `environment`, sorted: one, or a duplicate.
    pub fn releases_of(&self, namespace: &str, app: &str, environment: &str) -> Vec<String> {
        self.read().by_app_environment.get(&(namespace.to_string(), app.to_string(), environment.to_string()))
    }

    /// The Releases (other than `name`) that a change of Release `name` from `before` to `after` may
    /// concern: those of the same app (promotion, forward ports) or in the same Environment
    /// (dependencies) on either side. A superset of what `plan::peers::must_look` selects.
    pub fn peer_candidates(
        &self,
        namespace: &str,
        name: &str,
        before: Option<&PeerFacts>,
        after: Option<&PeerFacts>,
    ) -> BTreeSet<String> {
        let inner = self.read();
        let mut out = BTreeSet::new();
        for f in before.into_iter().chain(after) {
            out.extend(inner.by_app.iter(&(namespace.to_string(), f.app.clone())).cloned());
            out.extend(inner.by_environment.iter(&(namespace.to_string(), f.environment.clone())).cloned());
        }
        out.remove(name);
        out
    }

    /// How many Releases deploy into an Environment and how many are Healthy.
    pub fn environment_counts(&self, namespace: &str, environment: &str) -> Counts {
        let inner = self.read();
        let key = (namespace.to_string(), environment.to_string());
        let releases = inner.by_environment.len(&key);
        Counts {
            releases: i32::try_from(releases).unwrap_or(i32::MAX),
            healthy: inner.healthy.get(&key).copied().unwrap_or(0),
        }
    }

    pub fn apply_environment(&self, e: &Environment) {
        let (ns, name) = key_of(e);
        let mut inner = self.write();
        inner.touch(&ns).environments.insert(name.clone());
        inner.set_cluster(&ns, &name, e.cluster_key());
        inner.set_agent(&ns, &name, e.agent());
    }

    pub fn delete_environment(&self, namespace: &str, name: &str) {
        let mut inner = self.write();
        inner.touch(namespace).environments.remove(name);
        inner.set_cluster(namespace, name, None);
        inner.set_agent(namespace, name, None);
        inner.forget_if_empty(namespace);
    }

    /// Names of the Environments of `namespace` that agent `agent` serves.
    pub fn environments_of_agent(&self, namespace: &str, agent: &str) -> Vec<String> {
        self.read().by_agent.get(&(namespace.to_string(), agent.to_string()))
    }

    /// Whether any Environment deploys to the cluster of `key`.
    pub fn cluster_in_use(&self, key: &ClusterKey) -> bool {
        self.read().by_cluster.len(key) > 0
    }

    /// Names of the Environments (in the key's namespace) that deploy to the cluster of `key`.
    pub fn environments_on_cluster(&self, key: &ClusterKey) -> Vec<String> {
        self.read().by_cluster.get(key)
    }

    /// Records an AppVersion: its version parsed and its publication checked here, once per change.
    pub fn apply_app_version(&self, av: &AppVersion) {
        let (ns, name) = key_of(av);
        let published =
            av.status.as_ref().and_then(|s| s.spec_hash.as_deref()) == Some(spec_hash(&av.spec).as_str());
        let entry = VersionEntry {
            app: av.spec.app.clone(),
            version: semver::Version::parse(av.spec.version.trim()).ok(),
            published,
        };
        let mut inner = self.write();
        if let Some(b) = inner.app_versions.insert((ns.clone(), name.clone()), entry.clone()) {
            inner.versions_by_app.remove(&(ns.clone(), b.app), &name);
        }
        inner.versions_by_app.insert((ns.clone(), entry.app), &name);
        inner.touch(&ns).app_versions.insert(name);
    }

    /// Forgets an AppVersion; returns its app (`None`: it was not known).
    pub fn delete_app_version(&self, namespace: &str, name: &str) -> Option<String> {
        let mut inner = self.write();
        let before = inner.app_versions.remove(&(namespace.to_string(), name.to_string()))?;
        inner.versions_by_app.remove(&(namespace.to_string(), before.app.clone()), name);
        inner.touch(namespace).app_versions.remove(name);
        inner.forget_if_empty(namespace);
        Some(before.app)
    }

    /// Names of the AppVersions of `app`, sorted.
    pub fn app_versions_of(&self, namespace: &str, app: &str) -> Vec<String> {
        self.read().versions_by_app.get(&(namespace.to_string(), app.to_string()))
    }

    /// The published AppVersions of `app` (spec unchanged since publication), with their versions.
    pub fn published_versions(&self, namespace: &str, app: &str) -> Vec<(semver::Version, String)> {
        let inner = self.read();
        inner
            .versions_by_app
            .iter(&(namespace.to_string(), app.to_string()))
            .filter_map(|name| {
                let e = inner.app_versions.get(&(namespace.to_string(), name.clone()))?;
                Some((e.version.clone().filter(|_| e.published)?, name.clone()))
            })
            .collect()
    }

    /// The AppVersions of `app` whose version is `version` (as parsed, so `1.3.10` matches ` 1.3.10`).
    pub fn app_versions_at(&self, namespace: &str, app: &str, version: &semver::Version) -> Vec<String> {
        let inner = self.read();
        inner
            .versions_by_app
            .iter(&(namespace.to_string(), app.to_string()))
            .filter(|name| {
                inner
                    .app_versions
                    .get(&(namespace.to_string(), (*name).clone()))
                    .is_some_and(|e| e.version.as_ref() == Some(version))
            })
            .cloned()
            .collect()
    }

    pub fn apply_approval(&self, a: &Approval) {
        let (ns, name) = key_of(a);
        let release = a.spec.release.clone();
        let mut inner = self.write();
        if let Some(before) = inner.approvals.insert((ns.clone(), name.clone()), release.clone()) {
            inner.approvals_by_release.remove(&(ns.clone(), before), &name);
        }
        inner.approvals_by_release.insert((ns, release), &name);
    }

    /// Forgets an Approval; returns the Release it was for.
    pub fn delete_approval(&self, namespace: &str, name: &str) -> Option<String> {
        let mut inner = self.write();
        let release = inner.approvals.remove(&(namespace.to_string(), name.to_string()))?;
        inner.approvals_by_release.remove(&(namespace.to_string(), release.clone()), name);
        Some(release)
    }

    /// Names of the Approvals for Release `release`, sorted.
    pub fn approvals_for(&self, namespace: &str, release: &str) -> Vec<String> {
        self.read().approvals_by_release.get(&(namespace.to_string(), release.to_string()))
    }

    /// Names of the Environments, Releases and AppVersions of one namespace, sorted.
    pub fn members(&self, namespace: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        let inner = self.read();
        inner.namespaces.get(namespace).map_or_else(Default::default, |m| {
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect();
            (list(&m.environments), list(&m.releases), list(&m.app_versions))
        })
    }

    /// Every namespace with a tuskfish object, with its size.
    pub fn pipelines(&self) -> Vec<PipelineSize> {
        self.read()
            .namespaces
            .iter()
            .filter(|(_, m)| !m.environments.is_empty())
            .map(|(ns, m)| PipelineSize {
                namespace: ns.clone(),
                environments: m.environments.len(),
                releases: m.releases.len(),
            })
            .collect()
    }

    /// The pipeline namespaces (with Environments) whose names start with `prefix`: a range of
    /// the ordered map, not a scan of every pipeline.
    pub fn pipelines_under(&self, prefix: &str) -> Vec<String> {
        self.read()
            .namespaces
            .range(prefix.to_string()..)
            .take_while(|(ns, _)| ns.starts_with(prefix))
            .filter(|(_, m)| !m.environments.is_empty())
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// Changes with every watch event of an Environment, Release or AppVersion of `namespace` (0:
    /// nothing there), so a page of one pipeline redraws only when that pipeline changed.
    pub fn revision(&self, namespace: &str) -> u64 {
        self.read().namespaces.get(namespace).map_or(0, |m| m.revision)
    }
}
