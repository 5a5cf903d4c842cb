//! Caches of its own for `tuskfish web` (the operator hands over its caches instead).

use std::sync::Arc;

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::watcher;

use super::View;
use crate::controller::watch::{bump, reflect, scoped};

/// Watches Environments, Releases and AppVersions (in `namespace`, or all) into a [`View`]; the
/// returned futures keep the caches current and must be polled.
pub fn watch(client: &Client, namespace: Option<&str>) -> (View, Vec<BoxFuture<'static, ()>>) {
    let (tx, revision) = tokio::sync::watch::channel(0u64);
    let changed = Arc::new(tx);
    // The web view has no metrics endpoint of its own: watch restarts are only logged.
    let metrics = crate::telemetry::SharedMetrics::default();
    let cfg = watcher::Config::default;
    let c = changed.clone();
    let (environments, e) =
        reflect(scoped(client, namespace), cfg(), metrics.clone(), move |_, _, _| bump(&c));
    let c = changed.clone();
    let (releases, r) = reflect(scoped(client, namespace), cfg(), metrics.clone(), move |_, _, _| bump(&c));
    let (app_versions, a) = reflect(scoped(client, namespace), cfg(), metrics, move |_, _, _| bump(&changed));
    (View { environments, releases, app_versions, revision }, vec![Box::pin(e), Box::pin(r), Box::pin(a)])
}
