//! Caches of its own for `tuskfish web` (the operator hands over its caches instead).

use std::sync::Arc;

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::watcher;

use super::View;
use crate::controller::bump;
use crate::index::PipelineIndex;
use crate::watch::{reflect, scoped};

/// Watches Environments, Releases and AppVersions (in `namespace`, or all) into a [`View`]; the
/// returned futures keep the caches current and must be polled.
pub fn watch(client: &Client, namespace: Option<&str>) -> (View, Vec<BoxFuture<'static, ()>>) {
    let (tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(tx);
    // The web view has no metrics endpoint of its own: watch restarts are only logged.
    let metrics = crate::telemetry::SharedMetrics::default();
    let cfg = watcher::Config::default;
    let index = Arc::new(PipelineIndex::default());
    let (c, ix) = (changed.clone(), index.clone());
    let (environments, e) =
        reflect(scoped(client, namespace), cfg(), None, metrics.clone(), move |o, seen| {
            ix.see_environment(o, seen);
            bump(&c)
        });
    let (c, ix) = (changed.clone(), index.clone());
    let (releases, r) = reflect(scoped(client, namespace), cfg(), None, metrics.clone(), move |o, seen| {
        ix.see_release(o, seen);
        bump(&c)
    });
    let (c, ix) = (changed.clone(), index.clone());
    let (app_versions, a) =
        reflect(scoped(client, namespace), cfg(), None, metrics.clone(), move |o, seen| {
            ix.see_app_version(o, seen);
            bump(&c)
        });
    let ix = index.clone();
    let (product_releases, p) = reflect(scoped(client, namespace), cfg(), None, metrics, move |o, seen| {
        ix.products.see_product_release(o, seen);
        bump(&changed)
    });
    let view = View {
        environments,
        releases,
        app_versions,
        product_releases,
        revision,
        index,
        actions: None,
        allowed_hosts: std::sync::Arc::new([]),
        client: Some(client.clone()),
    };
    (view, vec![Box::pin(e), Box::pin(r), Box::pin(a), Box::pin(p)])
}
