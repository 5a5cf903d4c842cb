//! The kinds whose health the operator watches (Deployments, StatefulSets, DaemonSets, Jobs,
//! PersistentVolumeClaims): their cached state, for drift detection and health.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use super::caches::WorkloadStores;
use crate::api::InventoryEntry;
use crate::plan::drift::Live;
use crate::plan::health::{
    Applied, WorkloadState, daemon_set_state, deployment_state, job_state, pvc_state, stateful_set_state,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchedKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    PersistentVolumeClaim,
}

/// A cached workload object.
pub enum Cached {
    Deployment(Arc<Deployment>),
    StatefulSet(Arc<StatefulSet>),
    DaemonSet(Arc<DaemonSet>),
    Job(Arc<Job>),
    PersistentVolumeClaim(Arc<PersistentVolumeClaim>),
}

/// One cached object of `K` by namespace and name.
fn get<K>(store: &kube::runtime::reflector::Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(ns))
}

/// The metadata of `K` `ns/name` from the API server.
async fn meta_of<K>(client: &Client, ns: &str, name: &str) -> Result<Option<ObjectMeta>, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.get_metadata_opt(name).await?.map(|m| m.metadata))
}

impl WatchedKind {
    /// The watched kind of an inventory entry; `None` for kinds without a watch.
    pub fn of(e: &InventoryEntry) -> Option<Self> {
        match (e.api_version.as_str(), e.kind.as_str()) {
            ("apps/v1", "Deployment") => Some(Self::Deployment),
            ("apps/v1", "StatefulSet") => Some(Self::StatefulSet),
            ("apps/v1", "DaemonSet") => Some(Self::DaemonSet),
            ("batch/v1", "Job") => Some(Self::Job),
            ("v1", "PersistentVolumeClaim") => Some(Self::PersistentVolumeClaim),
            _ => None,
        }
    }

    pub fn cached(self, stores: &WorkloadStores, ns: &str, name: &str) -> Option<Cached> {
        match self {
            Self::Deployment => get(&stores.deployments, ns, name).map(Cached::Deployment),
            Self::StatefulSet => get(&stores.stateful_sets, ns, name).map(Cached::StatefulSet),
            Self::DaemonSet => get(&stores.daemon_sets, ns, name).map(Cached::DaemonSet),
            Self::Job => get(&stores.jobs, ns, name).map(Cached::Job),
            Self::PersistentVolumeClaim => get(&stores.claims, ns, name).map(Cached::PersistentVolumeClaim),
        }
    }

    /// Reads the object's metadata from the API server (for when the cache may simply be behind).
    pub async fn read_meta(
        self,
        client: &Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<ObjectMeta>, kube::Error> {
        match self {
            Self::Deployment => meta_of::<Deployment>(client, ns, name).await,
            Self::StatefulSet => meta_of::<StatefulSet>(client, ns, name).await,
            Self::DaemonSet => meta_of::<DaemonSet>(client, ns, name).await,
            Self::Job => meta_of::<Job>(client, ns, name).await,
            Self::PersistentVolumeClaim => meta_of::<PersistentVolumeClaim>(client, ns, name).await,
        }
    }
}

impl Cached {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Cached::Deployment(d) => &d.metadata,
            Cached::StatefulSet(s) => &s.metadata,
            Cached::DaemonSet(d) => &d.metadata,
            Cached::Job(j) => &j.metadata,
            Cached::PersistentVolumeClaim(p) => &p.metadata,
        }
    }

    pub fn state(&self, applied: Applied<'_>) -> WorkloadState {
        match self {
            Cached::Deployment(d) => deployment_state(d, applied),
            Cached::StatefulSet(s) => stateful_set_state(s, applied),
            Cached::DaemonSet(d) => daemon_set_state(d, applied),
            Cached::Job(j) => job_state(j, applied),
            // A claim's spec is immutable once bound: its phase says it all.
            Cached::PersistentVolumeClaim(p) => pvc_state(p),
        }
    }
}

pub fn live_of(meta: &ObjectMeta) -> Live {
    Live::Present { uid: meta.uid.clone(), generation: meta.generation }
}

pub fn applied_of(e: &InventoryEntry) -> Applied<'_> {
    Applied { uid: e.uid.as_deref(), generation: e.generation }
}
