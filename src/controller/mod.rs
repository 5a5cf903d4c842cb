//! The controllers: Release, Environment and AppVersion, sharing one [`Context`] and one watch per
//! kind.

pub mod agent;
mod apply;
mod appversion;
mod background;
mod caches;
mod catalog;
pub mod charts;
mod checks;
pub mod cluster;
mod context;
mod custom_kinds;
mod deferred;
mod environment;
mod error;
mod events;
pub mod identity;
mod kept_renders;
mod ledger;
mod notifier;
mod policies;
mod product;
mod product_version;
mod queue;
mod reconciled;
mod refusal;
mod release;
pub mod retention;
mod served_apis;
pub mod sharded;
mod status;
mod triggers;
mod watches;
mod workloads;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use tracing::{debug, warn};

pub use caches::{Stores, cached};
pub use catalog::Catalog;
pub use context::Context;
pub use environment::{NamespaceClaim, claim_of};
pub use error::Error;
pub use reconciled::ReconcileLog;
pub use served_apis::ServedApis;
pub(crate) use watches::bump;

use crate::api::{AppVersion, Environment, Release};
use crate::leader::{Elector, LeaderConfig};
use crate::telemetry::{ControllerLabel, RequestCounts, SharedMetrics};

/// Operator settings.
#[derive(Clone)]
pub struct Settings {
    /// Parallel reconciles per controller.
    pub concurrency: u16,
    /// How long a rollout's first status may wait to be written (see [`deferred`]).
    pub status_settle: Duration,
    /// Run the controllers only while holding this Lease (`None`: always; one replica only).
    pub leader: Option<LeaderConfig>,
    /// Watch the tuskfish kinds in this namespace only (`None`: all namespaces).
    pub watch_namespace: Option<String>,
    pub metrics: SharedMetrics,
    /// Told of every finished reconcile (a barrier for whoever must know the operator looked).
    pub reconciled: Option<Arc<ReconcileLog>>,
    /// How to run Helm for chart AppVersions; else why it cannot (`--helm`).
    pub helm: Result<crate::helm::HelmConfig, String>,
    /// Helm already made from `helm`: the shards of one replica share it, and so its bound on
    /// Helm processes at once and its cache of rendered outputs (`None`: made from `helm`).
    pub helm_made: Option<Result<Arc<crate::helm::Helm>, String>>,
    /// The operator's client configuration, which clients impersonating an Environment's
    /// ServiceAccount start from (`None`: Environments with `serviceAccountName` get `Forbidden`).
    pub client_config: Option<kube::Config>,
    /// Who Environments deploy as (`--require-service-account`, `--deployer-cluster-role`).
    pub identity: identity::IdentityRule,
    /// The Pod Security level of the namespaces Environments create (`--pod-security`).
    pub pod_security: crate::api::PodSecurity,
    /// The namespace of the operator's own where what each rollout rendered from a chart is kept
    /// (`None`: in memory only, rendered anew after a restart).
    pub render_store: Option<String>,
    /// Serve this share of the pipeline namespaces only (`--shards`; `None`: all of them).
    pub share: Option<crate::plan::shards::Share>,
    /// This replica's name, on the Events it records (`None`: `$POD_NAME`, if set).
    pub instance: Option<String>,
    /// Run as `tuskfish agent`: the client given to [`run`] is the hub's, this says where to
    /// deploy (`None`: the operator).
    pub agent: Option<agent::AgentSettings>,
    /// How long audit records are kept (`None`: for ever).
    pub audit_retention: Option<Duration>,
    /// Write audit records (`--audit-records`).
    pub audit_records: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            status_settle: Duration::from_secs(2),
            leader: None,
            watch_namespace: None,
            metrics: Arc::default(),
            reconciled: None,
            helm: Err("the operator was started without Helm".into()),
            client_config: None,
            identity: identity::IdentityRule::default(),
            pod_security: crate::api::PodSecurity::default(),
            render_store: None,
            share: None,
            instance: None,
            helm_made: None,
            agent: None,
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
            audit_records: true,
        }
    }
}

/// How long audit records are kept unless the admin says otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(400 * 86_400);

/// How long the operator waits for the PipelinePolicies' first list before it goes on without.
const POLICIES_WAIT: Duration = Duration::from_secs(30);

/// Waits for the PipelinePolicies' first list, but not for ever: after an upgrade that did not
/// apply the new CRD (`helm upgrade` leaves `crds/` alone) or without RBAC to list them, every
/// pipeline gets the default grants, which are the safe ones, and the watch keeps trying.
async fn policies_listed(store: &kube::runtime::reflector::Store<crate::api::PipelinePolicy>) {
    if tokio::time::timeout(POLICIES_WAIT, store.wait_until_ready()).await.is_err() {
        tracing::error!(
            "PipelinePolicies cannot be listed (is the CRD installed: `tuskfish crd | kubectl apply --server-side -f -`? may the operator list them?); every pipeline gets the default grants until they can"
        );
    }
}

/// One Lease held: counted in `tuskfish_leader` and renewed while this lives.
struct Leading {
    gauge: prometheus_client::metrics::gauge::Gauge,
    renewing: tokio::task::AbortHandle,
}

impl Leading {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge, renewing: tokio::task::AbortHandle) -> Self {
        gauge.inc();
        Self { gauge: gauge.clone(), renewing }
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.gauge.dec();
        self.renewing.abort();
    }
}

/// Why [`run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Shutdown,
    /// The Lease was lost: another replica may be writing now, so this one must not go on.
    LeadershipLost,
}

/// When the cache has not caught up with our own write yet, look again after this long at the latest.
const CACHE_BEHIND_RECHECK: Duration = Duration::from_secs(1);

/// When a failed reconcile is tried again.
fn retry_after(err: &Error) -> Duration {
    if err.is_conflict() {
        // Our cache was behind; the watch event that refreshes it usually arrives first anyway.
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    }
}

/// Only says what failed: the retry is the queue's (see [`drive`]).
fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    if err.is_conflict() {
        debug!(kind = %K::kind(&()), name = ?obj.meta().name, "write conflict; retrying on fresh data");
    } else {
        warn!(kind = %K::kind(&()), name = ?obj.meta().name, namespace = ?obj.meta().namespace, reason = %err.reason(), error = %err, "reconcile failed; retrying");
    }
    Action::await_change()
}

/// Runs all controllers until `shutdown` resolves (in-flight reconciles finish first) or, with leader
/// election, until the Lease is lost.
pub async fn run(
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Stopped {
    Operator::new(client, settings, requests).run(shutdown).await
}

/// The controllers with their watches set up but not yet running, so that read-only views can share
/// the caches (see [`Operator::view`]).
pub struct Operator {
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    watches: watches::Watches,
    receivers: Receivers,
    /// Wakes a Release when something outside the watches (an HTTP check) has news for it.
    wake: triggers::Trigger<Release>,
}

impl Operator {
    pub fn new(client: Client, settings: Settings, requests: Arc<RequestCounts>) -> Self {
        let (release_tx, release_rx) = mpsc::unbounded();
        let (env_tx, env_rx) = mpsc::unbounded();
        let (av_tx, av_rx) = mpsc::unbounded();
        let (pv_tx, pv_rx) = mpsc::unbounded();
        let (pr_tx, pr_rx) = mpsc::unbounded();
        let metrics = &settings.metrics;
        let triggers = triggers::Triggers {
            releases: triggers::Trigger::new(release_tx, metrics),
            environments: triggers::Trigger::new(env_tx, metrics),
            app_versions: triggers::Trigger::new(av_tx, metrics),
            product_versions: triggers::Trigger::new(pv_tx, metrics),
            product_releases: triggers::Trigger::new(pr_tx, metrics),
            metrics: metrics.clone(),
        };
        let wake = triggers.releases.clone();
        // An agent deploys into its own cluster; the operator into the one it runs in.
        let workloads = settings.agent.as_ref().map_or_else(|| client.clone(), |a| a.local.clone());
        let namespace =
            settings.agent.as_ref().map(|a| a.namespace.as_str()).or(settings.watch_namespace.as_deref());
        let watches = watches::watches(
            &client,
            &workloads,
            triggers,
            watches::Scope { namespace, share: settings.share },
            settings.agent.is_none(),
        );
        Self {
            client,
            settings,
            requests,
            watches,
            receivers: (release_rx, env_rx, av_rx, pv_rx, pr_rx),
            wake,
        }
    }

    /// The operator's client (the web view reads what no cache keeps with it).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The caches the watches keep (the web view reads them: no extra watch, no API calls).
    pub fn stores(&self) -> &Stores {
        &self.watches.stores
    }

    /// Moves on every change the watches deliver.
    pub fn revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watches.revision.clone()
    }

    /// The pipeline index the watches keep (the admission webhook reads it for duplicates).
    pub fn index(&self) -> Arc<crate::index::PipelineIndex> {
        self.watches.index.clone()
    }

    /// Runs until `shutdown` resolves or, with leader election, until the Lease is lost.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Stopped {
        let Self { client, settings, requests, watches, receivers, wake } = self;
        run_controllers(client, settings, requests, watches, receivers, wake, shutdown).await
    }
}

/// Reconcile requests for the Release, Environment and AppVersion controllers.
type Receivers = (
    mpsc::UnboundedReceiver<(ObjectRef<Release>, queue::Lane)>,
    mpsc::UnboundedReceiver<(ObjectRef<Environment>, queue::Lane)>,
    mpsc::UnboundedReceiver<(ObjectRef<AppVersion>, queue::Lane)>,
    mpsc::UnboundedReceiver<(ObjectRef<crate::api::ProductVersion>, queue::Lane)>,
    mpsc::UnboundedReceiver<(ObjectRef<crate::api::ProductRelease>, queue::Lane)>,
);

async fn run_controllers(
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    w: watches::Watches,
    (release_rx, env_rx, av_rx, pv_rx, pr_rx): Receivers,
    wake: triggers::Trigger<Release>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Stopped {
    let metrics = settings.metrics.clone();
    let settings_namespace = settings.watch_namespace.clone();
    let agent_settings = settings.agent.clone();
    let stores = w.stores.clone();
    let released = w.released.clone();
    let elector = settings.leader.clone().map(|cfg| Elector::new(client.clone(), cfg));
    // Asked before `assemble` borrows the watches (whose drivers may not be shared across threads).
    let api_server = settings.client_config.as_ref().map(|c| c.cluster_url.clone());
    let egress_denied = crate::egress::own_addresses(api_server.as_ref()).await.into();
    let ctx = assemble(client, &settings, requests, &w, wake, egress_denied);
    if let Err(why) = &ctx.helm {
        debug!(%why, "charts cannot be deployed");
    }
    let ctx = Arc::new(ctx);
    let background = ctx.clone();
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
                s.workloads.deployments.wait_until_ready(),
                s.workloads.stateful_sets.wait_until_ready(),
                s.workloads.daemon_sets.wait_until_ready(),
                s.workloads.claims.wait_until_ready(),
                s.approvals.wait_until_ready(),
                s.workloads.jobs.wait_until_ready(),
                s.notifications.wait_until_ready(),
                s.product_versions.wait_until_ready(),
                s.product_releases.wait_until_ready(),
                s.workloads.namespaces.wait_until_ready(),
                s.agent_leases.wait_until_ready(),
                policies_listed(&s.policies),
            );
        }
    };
    let shutdown = shutdown.shared();
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    // Work begun in the background stops with the controllers, however they end (a shard given
    // up goes on in this process, and what that work would write is the next holder's).
    let _background = StopBackground(background);
    let controllers = async move {
        tokio::select! {
            () = ready => {}
            () = shutdown.clone() => return Stopped::Shutdown,
        }
        metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        // Standby replicas stop here, caches warm, until the Lease is theirs.
        let (lost_tx, lost_rx) = futures::channel::oneshot::channel::<()>();
        // Counts this Lease in `tuskfish_leader` while held (a sharded replica holds several), and
        // stops renewing it when these controllers end, however they end (dropped included).
        let mut leading = None;
        if let Some(e) = &elector {
            let lease = tokio::select! {
                taken = e.acquire() => taken,
                () = shutdown.clone() => return Stopped::Shutdown,
            };
            let holder = e.clone();
            let renewing = tokio::spawn(async move {
                let (lease, renewed) = lease;
                holder.hold(lease, renewed).await;
                let _ = lost_tx.send(());
            });
            leading = Some(Leading::new(&metrics.leader, renewing.abort_handle()));
        }
        let lost = lost_rx.map(|r| r.is_ok()).shared();
        let stop = futures::future::select(shutdown.clone(), lost.clone()).map(|_| ()).shared();
        debug!("caches ready; starting controllers");
        let releases = drive(
            "release",
            stores.releases.clone(),
            release_rx,
            (config.clone(), settings.concurrency),
            release::reconcile,
            ctx.clone(),
            stop.clone(),
        );
        // The sweep of kept chart outputs goes with the Releases, leader only.
        let scope = settings_namespace.clone().or(agent_settings.as_ref().map(|a| a.namespace.clone()));
        let share = settings.share;
        let releases =
            futures::future::join(releases, sweep_kept(ctx.clone(), released, scope, share, stop.clone()));
        let work = async {
            match agent_settings {
                // An agent deploys Releases and reports that it is alive; AppVersions, Environments
                // and notifications are the operator's on the hub (their requests are dropped here).
                Some(a) => {
                    drop((env_rx, av_rx, pv_rx, pr_rx));
                    futures::join!(agent::heartbeat(ctx.client.clone(), a, stop.clone()), releases);
                }
                None => {
                    let notices = notifier::run(ctx.clone(), settings_namespace.clone(), share, stop.clone());
                    let retention = retention_of(&ctx, &settings);
                    let sweeping = stop.clone();
                    futures::join!(
                        notices,
                        async move {
                            if let Some(r) = retention {
                                r.run_while(sweeping).await;
                            }
                        },
                        releases,
                        drive(
                            "environment",
                            stores.environments.clone(),
                            env_rx,
                            (config.clone(), settings.concurrency),
                            environment::reconcile,
                            ctx.clone(),
                            stop.clone()
                        ),
                        drive(
                            "appversion",
                            stores.app_versions.clone(),
                            av_rx,
                            (config.clone(), settings.concurrency),
                            appversion::reconcile,
                            ctx.clone(),
                            stop.clone()
                        ),
                        drive(
                            "productversion",
                            stores.product_versions.clone(),
                            pv_rx,
                            (config.clone(), settings.concurrency),
                            product_version::reconcile,
                            ctx.clone(),
                            stop.clone()
                        ),
                        drive(
                            "productrelease",
                            stores.product_releases.clone(),
                            pr_rx,
                            (config, settings.concurrency),
                            product::reconcile,
                            ctx.clone(),
                            stop
                        ),
                    );
                }
            }
        };
        // Leadership lost: in-flight reconciles are dropped at once, not waited for (one stuck on
        // a stalled connection would otherwise write after a standby took over).
        tokio::select! {
            () = work => {}
            true = lost.clone() => return Stopped::LeadershipLost,
        }
        if lost.clone().now_or_never() == Some(true) {
            return Stopped::LeadershipLost;
        }
        // Nothing new starts in the background from here on.
        ctx.renders.stop_all();
        ctx.publishes.stop_all();
        // A graceful stop (every upgrade of the operator): the statuses held back are written
        // while the Lease is still ours, so no rollout's history entry is lost with them.
        // Only while the Lease is ours: losing it stops the writes at once.
        tokio::select! {
            flushed = tokio::time::timeout(FLUSH_LIMIT, flush_held(&ctx)) => {
                if flushed.is_err() {
                    warn!("statuses held back were not all written within {FLUSH_LIMIT:?}");
                }
            }
            true = lost.clone() => return Stopped::LeadershipLost,
        }
        // Renewals stop before the release, which would otherwise race one.
        drop(leading);
        if let Some(e) = &elector {
            e.release().await;
        }
        Stopped::Shutdown
    };
    futures::pin_mut!(controllers);
    futures::pin_mut!(drivers);
    // The watches run forever; the controllers end on shutdown or when leadership is lost.
    match futures::future::select(controllers, drivers).await {
        futures::future::Either::Left((stopped, _)) => stopped,
        futures::future::Either::Right(_) => Stopped::Shutdown,
    }
}

/// The audit retention this operator runs, if any.
fn retention_of(ctx: &Context, settings: &Settings) -> Option<retention::Retention> {
    Some(retention::Retention {
        client: ctx.client.clone(),
        scope: settings.watch_namespace.clone(),
        share: settings.share,
        keep: settings.audit_retention?,
    })
}

/// Stops the work a Context began in the background when dropped.
struct StopBackground(Arc<Context>);

impl Drop for StopBackground {
    fn drop(&mut self) {
        self.0.renders.stop_all();
        self.0.publishes.stop_all();
    }
}

/// The one Context of every reconcile, from the watches' caches and index and the settings.
/// `egress_denied`: the operator's own addresses, which no tenant's URL may reach.
fn assemble(
    client: Client,
    settings: &Settings,
    requests: Arc<RequestCounts>,
    w: &watches::Watches,
    wake: triggers::Trigger<Release>,
    egress_denied: Arc<[std::net::IpAddr]>,
) -> Context {
    let policies = policies::Policies {
        store: w.stores.policies.clone(),
        index: w.index.clone(),
        pod_security: settings.pod_security,
        egress_denied,
    };
    // An agent deploys into its own cluster, as the Environments' identities there.
    let (own, own_config) = match &settings.agent {
        Some(a) => (a.local.clone(), Some(a.local_config.clone())),
        None => (client.clone(), settings.client_config.clone()),
    };
    let kept_renders =
        settings.render_store.clone().map(|ns| kept_renders::KeptRenders::new(own.clone(), ns));
    let local = cluster::Cluster::local(
        own.clone(),
        w.stores.workloads.clone(),
        custom_kinds::CustomKinds::new(own, Some(wake.clone()), settings.metrics.clone(), settings.share),
        identity::Identities::new(own_config, requests.clone(), settings.identity.clone()).of_own_cluster(),
    );
    let shared = cluster::Shared {
        client: client.clone(),
        triggers: w.triggers.clone(),
        index: w.index.clone(),
        counts: requests.clone(),
        identity: settings.identity.clone(),
        policies: policies.clone(),
        retired: Default::default(),
        share: settings.share,
    };
    let instance = settings.instance.clone().or_else(|| std::env::var("POD_NAME").ok());
    let reporter = Reporter { controller: "tuskfish".into(), instance };
    Context {
        recorder: Recorder::new(client.clone(), reporter),
        ledger: ledger::Writer::new(&client, settings.audit_records),
        clusters: cluster::Clusters::new(local, shared, settings.agent.as_ref().map(|a| a.name.clone())),
        role: settings.agent.as_ref().map_or(agent::Role::Operator, |a| agent::Role::Agent(a.name.clone())),
        client,
        stores: w.stores.clone(),
        index: w.index.clone(),
        requests,
        metrics: settings.metrics.clone(),
        own_writes: Default::default(),
        deferred: Default::default(),
        status_settle: settings.status_settle,
        policies,
        probes: checks::Probes::new(Some(wake.clone())),
        renders: background::Background::new(Some(wake)),
        publishes: background::Background::new(Some(w.triggers.app_versions.clone())),
        http: crate::http::HttpClient::new(),
        reconciled: settings.reconciled.clone(),
        kept_renders,
        helm: settings.helm_made.clone().unwrap_or_else(|| helm_of(settings)),
        recorded: Default::default(),
    }
}

/// Helm, as `settings` configure it.
pub(crate) fn helm_of(settings: &Settings) -> Result<Arc<crate::helm::Helm>, String> {
    settings.helm.clone().and_then(|cfg| {
        let dir = cfg.work_dir.display().to_string();
        crate::helm::Helm::new(cfg).map(Arc::new).map_err(|e| format!("its work directory {dir}: {e}"))
    })
}

/// Sweeps the chart outputs kept for Releases that are gone (see [`kept_renders`]); `scope`: the
/// only pipeline namespace this process serves, `share`: the share of them this shard serves
/// (what was kept for others is not its to judge).
async fn sweep_kept(
    ctx: Arc<Context>,
    released: Arc<tokio::sync::Notify>,
    scope: Option<String>,
    share: Option<crate::plan::shards::Share>,
    stop: impl std::future::Future<Output = ()>,
) {
    let Some(kept) = ctx.kept_renders.clone() else { return };
    let live = |pipeline: &str, release: &str, uid: &str| {
        let theirs =
            scope.as_deref().is_some_and(|s| s != pipeline) || share.is_some_and(|s| !s.owns(pipeline));
        theirs
            || ctx
                .stores
                .releases
                .get(&ObjectRef::new(release).within(pipeline))
                .is_some_and(|r| r.metadata.uid.as_deref() == Some(uid))
    };
    kept_renders::sweep_while(kept, released, live, stop).await;
}

/// How long a stopping operator spends writing the statuses it held back.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Writes each status held back (see [`deferred`]) whose Release is still the one, with the status,
/// it was computed over; the others are stale and the next leader decides them again.
async fn flush_held(ctx: &Context) {
    for held in ctx.deferred.drain() {
        let key = ObjectRef::new(&held.name).within(&held.namespace);
        let Some(rel) = ctx.stores.releases.get(&key) else { continue };
        if rel.metadata.uid != held.uid || rel.status != held.over {
            continue;
        }
        let api: kube::Api<Release> = kube::Api::namespaced(ctx.client.clone(), &held.namespace);
        if let Err(e) =
            status::patch_status_if_changed(&api, &ctx.own_writes, rel.as_ref(), None, &held.status).await
        {
            warn!(release = %held.name, namespace = %held.namespace, error = %e, "a status held back was not written");
        }
    }
}

async fn drive<K, F, Fut>(
    name: &'static str,
    store: Store<K>,
    triggers: mpsc::UnboundedReceiver<(ObjectRef<K>, queue::Lane)>,
    (config, concurrency): (ControllerConfig, u16),
    reconcile: F,
    ctx: Arc<Context>,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()> + Send + 'static>,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<queue::Next, Error>> + Send + 'static,
{
    let mut reconcile = reconcile;
    // At most twice the concurrency of ours in the controller's hands: the rest waits in the
    // queue, where urgent requests go first.
    // (`--concurrency 0` is unbounded for kube-runtime: for the queue too.)
    let limit = if concurrency == 0 { usize::MAX } else { 2 * usize::from(concurrency) };
    let (triggers, queue) = queue::Queue::new(triggers, limit);
    let timers = queue.clone();
    // Looked up once: the closure below runs for every reconcile.
    let in_flight = ctx
        .metrics
        .reconciles_in_flight
        .get_or_create(&ControllerLabel { controller: name.to_string() })
        .clone();
    // Every reconcile is timed and counted by result.
    let measured = move |obj: Arc<K>, ctx: Arc<Context>| {
        // Deciding before the cache has seen our own last status write could only conflict; the
        // watch event of that write is on its way and triggers this again (the requeue is a
        // safety net should it coalesce with nothing).
        let skip = ctx.own_writes.cache_is_behind(obj.as_ref());
        let metrics = ctx.metrics.clone();
        let in_flight = in_flight.clone();
        let log = ctx.reconciled.clone().map(|log| (log, obj.clone()));
        let again = (timers.clone(), ObjectRef::from_obj(obj.as_ref()));
        let fut = (!skip).then(|| reconcile(obj, ctx));
        async move {
            let (timers, this) = again;
            let Some(fut) = fut else {
                timers.again(this, queue::Next::requeue(CACHE_BEHIND_RECHECK));
                return Ok(Action::await_change());
            };
            in_flight.inc();
            let started = std::time::Instant::now();
            // Told when the reconcile ends, or is dropped (the Lease lost, the shard aborted).
            let mut log = reconciled::Reconciling::new(log);
            let result = fut.await;
            in_flight.dec();
            log.finished();
            let outcome = match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => e.reason().to_string(),
            };
            metrics.observe_reconcile(name, outcome, started.elapsed());
            // The next run is asked of the queue, where it waits its turn in a lane.
            let next = match &result {
                Ok(next) => *next,
                Err(e) => queue::Next::requeue(retry_after(e)),
            };
            timers.again(this, next);
            result.map(|_| Action::await_change())
        }
    };
    Controller::for_stream(futures::stream::pending(), store)
        .with_config(config)
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(measured, error_policy::<K>, ctx)
        .for_each(|res| {
            match &res {
                Ok((r, _)) => queue.finished(r.namespace.as_deref(), &r.name),
                Err(kube::runtime::controller::Error::ObjectNotFound(r))
                | Err(kube::runtime::controller::Error::ReconcilerFailed(_, r)) => {
                    queue.finished(r.namespace.as_deref(), &r.name)
                }
                Err(_) => {}
            }
            if let Err(e) = res {
                debug!(error = %e, "controller event");
            }
            futures::future::ready(())
        })
        .await;
}
