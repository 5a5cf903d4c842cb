//! The workload kinds the operator watches (Deployments, StatefulSets): their cached state, for drift
//! detection and health.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use super::context::Stores;
use crate::api::InventoryEntry;
use crate::plan::drift::Live;
use crate::plan::health::{Applied, WorkloadState, deployment_state, stateful_set_state};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchedKind {
    Deployment,
    StatefulSet,
}

/// A cached workload object.
pub enum Cached {
    Deployment(Arc<Deployment>),
    StatefulSet(Arc<StatefulSet>),
}

impl WatchedKind {
    /// The watched kind of an inventory entry; `None` for kinds without a watch.
    pub fn of(e: &InventoryEntry) -> Option<Self> {
        match (e.api_version.as_str(), e.kind.as_str()) {
            ("apps/v1", "Deployment") => Some(Self::Deployment),
            ("apps/v1", "StatefulSet") => Some(Self::StatefulSet),
            _ => None,
        }
    }

    pub fn cached(self, stores: &Stores, ns: &str, name: &str) -> Option<Cached> {
        match self {
            Self::Deployment => {
                stores.deployments.get(&ObjectRef::new(name).within(ns)).map(Cached::Deployment)
            }
            Self::StatefulSet => {
                stores.stateful_sets.get(&ObjectRef::new(name).within(ns)).map(Cached::StatefulSet)
            }
        }
    }

    /// Reads the object's metadata from the API server (for when the cache may simply be behind).
    pub async fn read_meta(
        self,
        client: &Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<ObjectMeta>, kube::Error> {
        Ok(match self {
            Self::Deployment => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                api.get_metadata_opt(name).await?.map(|m| m.metadata)
            }
            Self::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                api.get_metadata_opt(name).await?.map(|m| m.metadata)
            }
        })
    }
}

impl Cached {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Cached::Deployment(d) => &d.metadata,
            Cached::StatefulSet(s) => &s.metadata,
        }
    }

    pub fn state(&self, applied: Applied<'_>) -> WorkloadState {
        match self {
            Cached::Deployment(d) => deployment_state(d, applied),
            Cached::StatefulSet(s) => stateful_set_state(s, applied),
        }
    }
}

pub fn live_of(meta: &ObjectMeta) -> Live {
    Live::Present { uid: meta.uid.clone(), generation: meta.generation }
}

pub fn applied_of(e: &InventoryEntry) -> Applied<'_> {
    Applied { uid: e.uid.as_deref(), generation: e.generation }
}
