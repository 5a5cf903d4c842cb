//! Caches of its own for `tuskfish web` (the operator hands over its caches instead).

use std::sync::Arc;

use futures::future::BoxFuture;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

use super::View;
use crate::controller::watch::{bump, reflect};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches Environments, Releases and AppVersions (in `namespace`, or all) into a [`View`]; the
/// returned futures keep the caches current and must be polled.
pub fn watch(client: &Client, namespace: Option<&str>) -> (View, Vec<BoxFuture<'static, ()>>) {
    let (tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(tx);
    // The web view has no metrics endpoint of its own: watch restarts are only logged.
    let metrics = crate::telemetry::SharedMetrics::default();
    let cfg = watcher::Config::default;
    let c = changed.clone();
    let (environments, e) = reflect(api(client, namespace), cfg(), metrics.clone(), move |_, _| bump(&c));
    let c = changed.clone();
    let (releases, r) = reflect(api(client, namespace), cfg(), metrics.clone(), move |_, _| bump(&c));
    let (app_versions, a) = reflect(api(client, namespace), cfg(), metrics, move |_, _| bump(&changed));
    (View { environments, releases, app_versions, revision }, vec![Box::pin(e), Box::pin(r), Box::pin(a)])
}
