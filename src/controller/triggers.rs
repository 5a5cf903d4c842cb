//! Reconcile requests: where the watches send them, and which object a changed one wakes. A leaf:
//! the watches, the clusters, custom kinds and the background work all wake through here.

use futures::channel::mpsc::UnboundedSender;
use kube::Resource;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::counter::Counter;

use super::queue::Lane;
use crate::api::{AppVersion, Environment, ProductRelease, ProductVersion, Release, labels};
use crate::telemetry::{ControllerLabel, SharedMetrics};

/// Reconcile requests for one controller, counted.
pub struct Trigger<K: Resource<DynamicType = ()>> {
    tx: UnboundedSender<(ObjectRef<K>, Lane)>,
    // Looked up once: sends happen for every watch event, so no label lookup per send.
    sent: Counter,
}

impl<K: Resource<DynamicType = ()>> Clone for Trigger<K> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), sent: self.sent.clone() }
    }
}

impl<K: Resource<DynamicType = ()>> Trigger<K> {
    pub fn new(tx: UnboundedSender<(ObjectRef<K>, Lane)>, metrics: &SharedMetrics) -> Self {
        let label = ControllerLabel { controller: K::kind(&()).to_lowercase() };
        Self { tx, sent: metrics.triggers.get_or_create(&label).clone() }
    }

    pub(crate) fn send(&self, r: ObjectRef<K>) {
        self.send_in(r, Lane::Normal);
    }

    /// A request ahead of the others (see [`super::queue`]): a new version to roll out.
    pub(crate) fn send_urgent(&self, r: ObjectRef<K>) {
        self.send_in(r, Lane::Urgent);
    }

    fn send_in(&self, r: ObjectRef<K>, lane: Lane) {
        self.sent.inc();
        // A closed channel means the controller is shutting down; nothing left to trigger.
        let _ = self.tx.unbounded_send((r, lane));
    }
}

/// Where reconcile requests go.
#[derive(Clone)]
pub struct Triggers {
    pub releases: Trigger<Release>,
    pub environments: Trigger<Environment>,
    pub app_versions: Trigger<AppVersion>,
    pub product_versions: Trigger<ProductVersion>,
    pub product_releases: Trigger<ProductRelease>,
    pub metrics: SharedMetrics,
}

/// Label selector for the workloads tuskfish applied.
pub fn managed_selector() -> String {
    format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)
}

/// The pipeline namespace of the Release that applied an object (its labels say).
pub fn pipeline_of_workload(meta: &ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(labels::RELEASE_NAMESPACE).map(String::as_str)
}

/// The pipeline namespace of the Environment that owns a namespace (its annotation says).
pub fn pipeline_of_namespace(meta: &ObjectMeta) -> Option<&str> {
    let owner = meta.annotations.as_ref()?.get(labels::NAMESPACE_OWNER_ANNOTATION)?;
    owner.split_once('/').map(|(ns, _)| ns)
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
