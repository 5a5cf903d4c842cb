//! The watches of one cluster's workloads and namespaces (tuskfish's only): each change wakes the
//! Release that applied it (a namespace: the Environment that owns it), and another cluster's
//! watches tell its link when they have listed and when they fail.

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::Link;
use crate::controller::caches::WorkloadStores;
use crate::controller::triggers::{
    Triggers, environment_of_namespace, managed_selector, pipeline_of_namespace, pipeline_of_workload,
    release_of,
};
use crate::lean::Lean;
use crate::plan::shards::Share;
use crate::watch::{self, Change, Filter};

/// The watches of the cluster of `client`, reporting to `link` when it is another cluster; with
/// `share`, of that share of the pipelines' objects only. Nothing runs until the returned drivers
/// are polled.
pub(crate) fn workload_watches(
    client: &Client,
    triggers: &Triggers,
    link: Option<Arc<Link>>,
    share: Option<Share>,
) -> (WorkloadStores, Vec<BoxFuture<'static, ()>>) {
    let mut w = Watches { client, triggers, link, share, drivers: Vec::new() };
    let deployments = w.follow::<Deployment>(Wake::Release);
    let stateful_sets = w.follow::<StatefulSet>(Wake::Release);
    let jobs = w.follow::<Job>(Wake::Release);
    let daemon_sets = w.follow::<DaemonSet>(Wake::Release);
    let claims = w.follow::<PersistentVolumeClaim>(Wake::Release);
    // Managed namespaces wake their owner Environment, and their cache spares the Environment
    // controller a read of its namespace on every reconcile.
    let namespaces = w.follow::<PartialObjectMeta<Namespace>>(Wake::Environment);
    (WorkloadStores { deployments, stateful_sets, daemon_sets, claims, jobs, namespaces }, w.drivers)
}

/// Whom a change of a watched object wakes.
#[derive(Clone, Copy)]
enum Wake {
    /// The Release that applied it (its labels say).
    Release,
    /// The Environment that owns it (a namespace's annotation says).
    Environment,
}

/// The watches being set up, and their drivers.
struct Watches<'a> {
    client: &'a Client,
    triggers: &'a Triggers,
    link: Option<Arc<Link>>,
    share: Option<Share>,
    drivers: Vec<BoxFuture<'static, ()>>,
}

impl Watches<'_> {
    /// Follows kind `K` (tuskfish's objects only) into a cache; each change wakes whom `wake` says.
    fn follow<K>(&mut self, wake: Wake) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static + Lean,
    {
        let api = Api::<K>::all(self.client.clone());
        let pipeline_of = match wake {
            Wake::Release => pipeline_of_workload,
            Wake::Environment => pipeline_of_namespace,
        };
        let filter = self.share.map(|share| Filter { share, pipeline_of });
        let (cache, changes) =
            watch::cached(api, watcher::Config::default().labels(&managed_selector()), filter);
        let kind = kind_of::<K>();
        if let Some(l) = &self.link {
            l.expect(kind);
        }
        let (t, link) = (self.triggers.clone(), self.link.clone());
        let driver = watch::drive(changes, kind.to_string(), t.metrics.clone(), move |change| match change {
            Change::Apply(o) | Change::Delete(o) => match wake {
                Wake::Release => release_of(o.meta()).into_iter().for_each(|r| t.releases.send(r)),
                Wake::Environment => {
                    environment_of_namespace(o.meta()).into_iter().for_each(|e| t.environments.send(e))
                }
            },
            Change::Reset => link.iter().for_each(|l| l.listed(kind)),
            Change::Failed(e) => link.iter().for_each(|l| l.failed(&e)),
        });
        self.drivers.push(Box::pin(driver));
        cache
    }
}

/// A kind's name, as the link knows its watch.
fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(k) => k,
        // Only for kinds whose name is computed; none of the watched kinds is.
        std::borrow::Cow::Owned(_) => "object",
    }
}
