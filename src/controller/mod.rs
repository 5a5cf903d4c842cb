//! The controllers: Release, Environment and AppVersion, sharing one [`Context`] and one watch per
//! kind.

mod apply;
mod appversion;
mod catalog;
mod context;
mod environment;
mod error;
mod events;
mod release;
mod status;
pub mod watch;
mod workloads;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use tracing::{debug, warn};

pub use context::{Context, Stores};
pub use environment::{NamespaceClaim, claim_of};
pub use error::Error;

use crate::telemetry::RequestCounts;

/// Operator settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Parallel reconciles per controller.
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self { concurrency: 16 }
    }
}

fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    if err.is_conflict() {
        // Our cache was behind; the watch event that refreshes it usually arrives first anyway.
        debug!(kind = %K::kind(&()), name = ?obj.meta().name, "write conflict; retrying on fresh data");
        return Action::requeue(Duration::from_millis(500));
    }
    warn!(kind = %K::kind(&()), name = ?obj.meta().name, namespace = ?obj.meta().namespace, reason = err.reason(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs all controllers until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (release_tx, release_rx) = mpsc::unbounded();
    let (env_tx, env_rx) = mpsc::unbounded();
    let (av_tx, av_rx) = mpsc::unbounded();
    let triggers = watch::Triggers { releases: release_tx, environments: env_tx, app_versions: av_tx };
    let w = watch::watches(&client, triggers);
    let stores = w.stores.clone();
    let ctx = Arc::new(Context::new(client, stores.clone(), requests));
    let drivers = futures::future::join_all(w.drivers);

    // Reconcile nothing before every cache has its first full list, or a Release could be judged
    // against an Environment that simply has not been listed yet.
    let ready = {
        let s = stores.clone();
        async move {
            let _ = futures::join!(
                s.releases.wait_until_ready(),
                s.environments.wait_until_ready(),
                s.app_versions.wait_until_ready(),
                s.deployments.wait_until_ready(),
                s.stateful_sets.wait_until_ready(),
                s.approvals.wait_until_ready(),
            );
        }
    };
    let shutdown = shutdown.shared();
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let controllers = async move {
        ready.await;
        debug!("caches ready; starting controllers");
        futures::join!(
            drive(
                stores.releases.clone(),
                release_rx,
                config.clone(),
                release::reconcile,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                stores.environments.clone(),
                env_rx,
                config.clone(),
                environment::reconcile,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(stores.app_versions.clone(), av_rx, config, appversion::reconcile, ctx, shutdown),
        );
    };
    futures::pin_mut!(controllers);
    futures::pin_mut!(drivers);
    // The watches run forever; the controllers end on shutdown.
    futures::future::select(controllers, drivers).await;
}

async fn drive<K, F, Fut>(
    store: Store<K>,
    triggers: mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<K>>,
    config: ControllerConfig,
    reconcile: F,
    ctx: Arc<Context>,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()> + Send + 'static>,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    Controller::for_stream(futures::stream::pending(), store)
        .with_config(config)
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy::<K>, ctx)
        .for_each(|res| {
            if let Err(e) = res {
                debug!(error = %e, "controller event");
            }
            futures::future::ready(())
        })
        .await;
}
