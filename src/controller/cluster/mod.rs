//! The clusters Environments deploy to: the operator's own, and others reached with a kubeconfig
//! Secret (`Environment.spec.cluster`). Each has one client, one set of workload caches and one
//! discovery cache, shared by every Environment that deploys there.

mod kubeconfig;
mod link;
mod registry;
mod watches;

use std::sync::Arc;

use kube::Client;

pub use link::{Link, Reach};
pub(crate) use registry::Shared;
pub use registry::{ClusterError, Clusters};
pub(crate) use watches::workload_watches;

use super::caches::WorkloadStores;
use super::catalog::Catalog;
use super::custom_kinds::CustomKinds;
use super::identity::Identities;
use super::served_apis::ServedApis;

/// One cluster and what the operator keeps of it.
pub struct Cluster {
    /// The operator's own client there (Environments' identities start from it).
    pub client: Client,
    /// The objects tuskfish applied there, and its namespaces.
    pub workloads: WorkloadStores,
    pub catalog: Catalog,
    /// What charts rendered for this cluster see of it (Helm's `.Capabilities`).
    pub served: Arc<ServedApis>,
    /// Watches of the custom kinds Releases applied there, for their health.
    pub custom_kinds: CustomKinds,
    /// Who the operator acts as in each Environment's namespace there.
    pub identities: Identities,
    /// `None`: the operator's own cluster, reachable by definition (without it nothing works).
    link: Option<Arc<Link>>,
    /// Stops the workload watches when the cluster is dropped (its Secret changed, or no
    /// Environment deploys there any more).
    watches: Option<tokio::task::AbortHandle>,
}

impl Cluster {
    /// The operator's own cluster, whose workload caches are part of the operator's watches.
    pub fn local(
        client: Client,
        workloads: WorkloadStores,
        custom_kinds: CustomKinds,
        identities: Identities,
    ) -> Self {
        Self {
            client,
            workloads,
            catalog: Catalog::default(),
            served: Arc::default(),
            custom_kinds,
            identities,
            link: None,
            watches: None,
        }
    }

    pub fn reach(&self) -> Reach {
        self.link.as_ref().map_or(Reach::Up, |l| l.reach())
    }

    /// The latest times this cluster could not be seen (none for the operator's own, always
    /// current): not held against a rollout's progress deadline there.
    pub fn outages(&self) -> Vec<(jiff::Timestamp, jiff::Timestamp)> {
        self.link.as_ref().map(|l| l.outages()).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(w) = &self.watches {
            w.abort();
        }
    }
}
