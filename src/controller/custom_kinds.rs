//! Health of custom kinds a Release applied (a chart's `Certificate`, `Kafka`, …): one watch per
//! kind, started the first time a Release's inventory holds that kind and kept from then on, fed
//! only with tuskfish's objects (label selector). Their kstatus-style `Ready` condition and
//! `observedGeneration` say whether they are ready ([`crate::plan::health::conditions_state`]).
//! Built-in kinds without a rollout status (ConfigMaps, Services…) need no watch: they are ready
//! once applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};

use super::triggers::{Trigger, managed_selector, pipeline_of_workload, release_of};
use crate::api::Release;
use crate::plan::shards::Share;
use crate::telemetry::SharedMetrics;
use crate::watch::{self, Change};

pub struct CustomKinds {
    client: Client,
    /// Wakes the Release whose object changed (`None`: nobody to wake, e.g. a read-only view).
    wake: Option<Trigger<Release>>,
    /// Where watch failures are counted.
    metrics: SharedMetrics,
    /// Whose objects are followed (`None`: every pipeline's).
    share: Option<Share>,
    stores: Mutex<HashMap<GroupVersionKind, Watched>>,
}

/// A kind's cache, and whether its first list is in.
#[derive(Clone)]
struct Watched {
    store: Store<DynamicObject>,
    listed: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl CustomKinds {
    /// With `share`: that share of the pipelines' objects only.
    pub fn new(
        client: Client,
        wake: Option<Trigger<Release>>,
        metrics: SharedMetrics,
        share: Option<Share>,
    ) -> Self {
        Self { client, wake, metrics, share, stores: Mutex::default() }
    }

    /// Whether tuskfish watches `group` for health: custom kinds, not Kubernetes' own groups.
    pub fn is_custom(group: &str) -> bool {
        group.contains('.') && !group.ends_with(".k8s.io")
    }

    /// The cache of `resource`'s kind once it has listed (`None` before: the watch is started on
    /// the first call, and its first list wakes the Releases whose objects it holds).
    pub fn store(&self, resource: &ApiResource) -> Option<Store<DynamicObject>> {
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        // Only a map of started watches: a lock poisoned elsewhere still holds good entries.
        let mut stores = self.stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let watched = stores.entry(gvk).or_insert_with(|| self.start(resource)).clone();
        watched.listed.load(Ordering::Acquire).then_some(watched.store)
    }

    fn start(&self, resource: &ApiResource) -> Watched {
        let listed = Arc::new(AtomicBool::new(false));
        let done = listed.clone();
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let config = watcher::Config::default().labels(&managed_selector());
        let filter = self.share.map(|share| watch::Filter { share, pipeline_of: pipeline_of_workload });
        let (reader, changes) = watch::cached_with(api, config, resource.clone(), filter);
        let wake = self.wake.clone();
        // Named with its group: a custom kind may share its name with a built-in one (Knative's Service).
        let kind = format!("{}.{}", resource.kind, resource.group);
        let events = watch::drive(changes, kind, self.metrics.clone(), move |change| match change {
            Change::Apply(o) | Change::Delete(o) => {
                if let (Some(w), Some(r)) = (&wake, release_of(&o.metadata)) {
                    w.send(r);
                }
            }
            Change::Reset => done.store(true, Ordering::Release),
            Change::Failed(_) => {}
        });
        let task = tokio::spawn(events).abort_handle();
        Watched { store: reader, listed, task }
    }
}

impl Drop for CustomKinds {
    /// The watches end with their cluster's connection (a rotated kubeconfig starts new ones).
    fn drop(&mut self) {
        let stores = self.stores.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        stores.values().for_each(|w| w.task.abort());
    }
}
