//! The caches the watches keep: read-only, shared by every reconcile. A leaf (the watches fill
//! them; the clusters and the Context hold them).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::{
    AppVersion, Approval, Environment, Notification, PipelinePolicy, ProductRelease, ProductVersion, Release,
};

/// Read-only caches of the pipeline (the tuskfish kinds), fed by one watch per kind.
#[derive(Clone)]
pub struct Stores {
    pub releases: Store<Release>,
    pub environments: Store<Environment>,
    pub app_versions: Store<AppVersion>,
    pub approvals: Store<Approval>,
    pub notifications: Store<Notification>,
    pub product_versions: Store<ProductVersion>,
    pub product_releases: Store<ProductRelease>,
    /// Agents' Leases (label `tuskfish.dev/agent`): whether each agent is connected.
    pub agent_leases: Store<Lease>,
    /// The cluster's PipelinePolicies (none in an agent).
    pub policies: Store<PipelinePolicy>,
    /// What tuskfish applied in the operator's own cluster.
    pub workloads: WorkloadStores,
}

/// Read-only caches of what tuskfish applied in one cluster (labelled objects only).
#[derive(Clone)]
pub struct WorkloadStores {
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    pub daemon_sets: Store<DaemonSet>,
    /// PersistentVolumeClaims a Release applied.
    pub claims: Store<PersistentVolumeClaim>,
    /// Verification Jobs (and any Job a Release applied).
    pub jobs: Store<Job>,
    /// Namespaces labelled as tuskfish's (metadata only).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

/// The cached objects of `namespace` with these names (the index's answer to a lookup); a name the
/// cache no longer has (deleted between the two reads) is skipped.
pub fn cached<K>(store: &Store<K>, namespace: &str, names: impl IntoIterator<Item = String>) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    names.into_iter().filter_map(|n| store.get(&ObjectRef::new(&n).within(namespace))).collect()
}

/// A cache that holds nothing and is ready at once (for a kind this process does not watch).
pub fn ready_empty<K>() -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}
