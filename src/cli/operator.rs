//! The long-running command: the operator itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};
use futures::FutureExt;
use tracing::{error, info};

use crate::client::Target;
use crate::controller::Stopped;
use crate::leader::LeaderConfig;
use crate::telemetry::{Metrics, RequestCounter};

/// What the operator and an agent are both tuned by.
#[derive(Args, Clone, Debug)]
pub struct ControllerArgs {
    /// Parallel reconciles per controller.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// How long a rollout's first status may wait to be written, so that a rollout healthy within
    /// it costs one status write instead of two (`0s`: write at once).
    #[arg(long, default_value = "2s", value_parser = super::duration_arg)]
    status_settle: Duration,
    /// Where to serve /metrics, /healthz and /readyz (`off` to serve nothing).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TUSKFISH_METRICS_ADDR")]
    metrics_addr: String,
    #[command(flatten)]
    helm: super::helm_args::HelmArgs,
    /// Every Environment must name the ServiceAccount it deploys as (`spec.serviceAccountName`);
    /// one without gets nothing deployed (`ServiceAccountRequired`).
    #[arg(long, env = "TUSKFISH_REQUIRE_SERVICE_ACCOUNT")]
    require_service_account: bool,
    /// Environments that name no ServiceAccount deploy as `tuskfish-deployer`, which the operator
    /// creates in their namespace bound (RoleBinding) to this ClusterRole: every write is then
    /// bounded to that namespace. The chart sets its own apply role.
    #[arg(long, env = "TUSKFISH_DEPLOYER_CLUSTER_ROLE")]
    deployer_cluster_role: Option<String>,
    /// The Pod Security level (pod-security.kubernetes.io/enforce) of the namespaces Environments
    /// create: what their pods may do on the nodes.
    #[arg(long, value_enum, default_value = "baseline", env = "TUSKFISH_POD_SECURITY")]
    pod_security: crate::api::PodSecurity,
    /// A namespace of the operator's own where what each rollout rendered from a chart is kept, so
    /// that a restart re-applies it rather than rendering anew (charts that generate passwords or
    /// certificates would get new ones). Default: the operator's (or the agent's) own namespace;
    /// `off`: keep nothing (render anew after every restart).
    #[arg(long, env = "TUSKFISH_RENDER_STORE_NAMESPACE")]
    render_store_namespace: Option<String>,
    /// How long audit records (Ledgers) are kept: a month's Ledger is deleted once the whole
    /// month is older than this; `0` keeps them for ever.
    #[arg(long, default_value = "400d", value_parser = super::duration_arg, env = "TUSKFISH_AUDIT_RETENTION")]
    audit_retention: Duration,
    /// Write audit records (Ledgers) at all: `false` writes none, for a cluster whose deliveries
    /// nobody audits, and to measure what records cost (`make bench`). Gates hold either way.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "TUSKFISH_AUDIT_RECORDS")]
    audit_records: bool,
}

impl ControllerArgs {
    /// Where chart outputs are kept: the flag's namespace (`off`: nowhere), else the pod's own
    /// namespace (the chart lets it keep Secrets there), else `fallback`.
    fn render_store(&self, fallback: Option<&str>) -> Option<String> {
        match self.render_store_namespace.as_deref().filter(|n| !n.is_empty()) {
            Some("off") => None,
            Some(ns) => Some(ns.to_string()),
            None => std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
                .or_else(|| fallback.map(str::to_string)),
        }
    }

    /// Settings with these values and the defaults for the rest.
    pub fn settings(&self, metrics: Arc<Metrics>) -> crate::controller::Settings {
        crate::controller::Settings {
            concurrency: self.concurrency,
            status_settle: self.status_settle,
            metrics,
            helm: self.helm.config(),
            identity: crate::controller::identity::IdentityRule {
                required: self.require_service_account,
                deployer_role: self.deployer_cluster_role.clone().filter(|r| !r.is_empty()),
            },
            pod_security: self.pod_security,
            render_store: self.render_store(None),
            audit_retention: Some(self.audit_retention).filter(|d| !d.is_zero()),
            audit_records: self.audit_records,
            ..Default::default()
        }
    }

    /// Starts serving /metrics, /healthz and /readyz unless `--metrics-addr off`.
    pub async fn serve_metrics(
        &self,
        metrics: Arc<Metrics>,
        counts: Arc<crate::telemetry::RequestCounts>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, Box<dyn std::error::Error>> {
        let Some(addr) = listen_addr("--metrics-addr", &self.metrics_addr)? else {
            return Ok(None);
        };
        let server = crate::telemetry::http::serve(addr, metrics, counts, shutdown).await?;
        info!(%addr, "serving /metrics, /healthz and /readyz");
        Ok(Some(tokio::spawn(server)))
    }
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    controllers: ControllerArgs,
    /// Watch Environments, AppVersions, Releases and Approvals in this namespace only (default: all).
    #[arg(long, env = "TUSKFISH_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Split the pipeline namespaces into this many shards, shared out among the replicas running
    /// with the same value: each holds a Lease per shard it serves and keeps only those shards'
    /// objects in its caches (see the book's scaling guide); at most 64 (each shard a replica holds
    /// is an operator of its own: about as many shards as replicas). Default: one leader serves all.
    #[arg(long, env = "TUSKFISH_SHARDS", value_parser = clap::value_parser!(u16).range(1..=64))]
    shards: Option<u16>,
    /// Run the controllers only while holding a Lease, so that replicas never write at once.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, default_value = "tuskfish")]
    lease_name: String,
    /// This replica's name in the Lease (default: $POD_NAME, else host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long a Lease nobody renews stays taken.
    #[arg(long, default_value = "15s", value_parser = super::duration_arg)]
    lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    #[arg(long, default_value = "10s", value_parser = super::duration_arg)]
    renew_deadline: Duration,
    /// How often to renew, and how often a standby looks at the Lease.
    #[arg(long, default_value = "2s", value_parser = super::duration_arg)]
    retry_period: Duration,
    /// Serve the validating admission webhook (HTTPS, `POST /validate`) here; every replica serves
    /// it, leader or not.
    #[arg(long, default_value = "off", env = "TUSKFISH_WEBHOOK_ADDR")]
    webhook_addr: String,
    /// Directory with the webhook's `tls.crt` and `tls.key` (a mounted kubernetes.io/tls Secret).
    #[arg(long, default_value = "/etc/tuskfish/webhook")]
    webhook_cert_dir: std::path::PathBuf,
    /// The webhook also refuses Releases whose Environment does not exist.
    #[arg(long)]
    webhook_strict: bool,
    /// Append a line per reconcile (when it began and ended, of what) to this file: for tests that
    /// check that no two replicas ever reconcile one object at once.
    #[arg(long, hide = true)]
    reconcile_trace: Option<std::path::PathBuf>,
    /// Serve the read-only web view of the pipeline here (`off` to serve nothing). Keep it on
    /// loopback and reach it with `kubectl port-forward`: the page has no login of its own.
    #[arg(long, default_value = "off", env = "TUSKFISH_WEB_ADDR")]
    web_addr: String,
}

fn identity(explicit: Option<String>) -> String {
    explicit.unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "tuskfish".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Why `--shards` cannot go with the other flags given, if it cannot.
fn refused_with_shards(args: &RunArgs) -> Option<&'static str> {
    args.shards?;
    if !args.leader_elect {
        return Some(
            "--shards needs leader election: each shard is served while its Lease is held (drop --leader-elect=false)",
        );
    }
    if args.watch_namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        return Some(
            "--shards splits pipeline namespaces, and --watch-namespace serves one: use one or the other",
        );
    }
    if args.web_addr != "off" {
        return Some(
            "--web-addr shows this replica's caches, which with --shards hold its shards only: serve the web view with `tuskfish web` instead",
        );
    }
    None
}

/// A listener flag's value: `off`, or an address (the error names the flag).
fn listen_addr(flag: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    match value {
        "off" => Ok(None),
        addr => addr.parse().map(Some).map_err(|e| format!("{flag} {addr:?}: {e}")),
    }
}

pub async fn run_operator(target: Target, args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.renew_deadline + crate::leader::MARGIN > args.lease_duration {
        return Err(format!(
            "--lease-duration must exceed --renew-deadline by {:?} at least (the time a replica that could \
             not renew has to stop writing before another may lead)",
            crate::leader::MARGIN
        )
        .into());
    }
    if args.retry_period >= args.renew_deadline {
        return Err(
            "--retry-period must be shorter than --renew-deadline (or the Lease is never renewed in time)"
                .into(),
        );
    }
    if let Some(why) = refused_with_shards(&args) {
        return Err(why.into());
    }
    let counter = RequestCounter::default();
    let client = target.client(&counter).await?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = shutdown_signal().shared();
    let server = args.controllers.serve_metrics(metrics.clone(), counter.counts(), shutdown.clone()).await?;
    let identity = identity(args.identity.clone());
    let leader = args.leader_elect.then(|| LeaderConfig {
        name: args.lease_name.clone(),
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
        // Unsharded, it waits for sharded replicas to give their shards up (`--shards` removed).
        yields_to: args.shards.is_none().then(|| crate::leader::Yield {
            prefix: Some(format!("{}-shard-", args.lease_name)),
            ..Default::default()
        }),
        ..LeaderConfig::new(args.lease_namespace.clone(), identity.clone())
    });
    info!(
        concurrency = args.controllers.concurrency,
        leader_election = args.leader_elect,
        shards = args.shards.unwrap_or(0),
        "tuskfish operator starting"
    );
    let base = args.controllers.settings(metrics);
    let settings = crate::controller::Settings {
        leader,
        watch_namespace: args.watch_namespace.clone().filter(|n| !n.is_empty()),
        // Clients that impersonate an Environment's ServiceAccount start from the operator's own.
        client_config: Some(target.config().await?),
        // Beside its Lease, unless told otherwise.
        render_store: args.controllers.render_store(Some(&args.lease_namespace)),
        instance: Some(identity),
        reconciled: match &args.reconcile_trace {
            Some(path) => Some(Arc::new(crate::controller::ReconcileLog::tracing_to(path)?)),
            None => None,
        },
        ..base
    };
    if let Err(why) = &settings.helm {
        info!(%why, "no Helm: AppVersions with a chart will say HelmUnavailable");
    }
    if let (Some(count), Some(lease)) = (args.shards, settings.leader.clone()) {
        let webhook = serve_webhook(&args, &client, None, shutdown.clone()).await?;
        let cfg = crate::controller::sharded::ShardConfig { count, lease };
        let settings = crate::controller::Settings { leader: None, ..settings };
        let stopped =
            crate::controller::sharded::run(client, settings, counter.counts(), cfg, shutdown).await;
        for server in [server, webhook].into_iter().flatten() {
            server.abort();
        }
        return finished(stopped);
    }
    let operator = crate::controller::Operator::new(client.clone(), settings, counter.counts());
    let webhook = serve_webhook(&args, &client, Some(operator.index()), shutdown.clone()).await?;
    let web = match listen_addr("--web-addr", &args.web_addr)? {
        None => None,
        Some(addr) => {
            // Drawn from the operator's own caches: no extra watch, and a standby serves it too.
            let server = crate::web::serve(addr, crate::web::View::of(&operator), shutdown.clone()).await?;
            info!(%addr, "serving the read-only web view");
            Some(tokio::spawn(server))
        }
    };
    let stopped = operator.run(shutdown).await;
    for server in [server, webhook, web].into_iter().flatten() {
        server.abort();
    }
    finished(stopped)
}

/// The operator's exit, from why its controllers stopped.
fn finished(stopped: Stopped) -> Result<(), Box<dyn std::error::Error>> {
    match stopped {
        Stopped::Shutdown => {
            info!("tuskfish operator stopped");
            Ok(())
        }
        Stopped::LeadershipLost => {
            error!("lost leadership; exiting so that this replica restarts as a standby");
            Err("lost leadership".into())
        }
    }
}

/// Starts the admission webhook unless `--webhook-addr off`. `index`: the operator's, to refuse a
/// second Release of an app in one Environment (sharded, no replica has every pipeline's: the
/// controller refuses such a Release instead).
async fn serve_webhook(
    args: &RunArgs,
    client: &kube::Client,
    index: Option<Arc<crate::index::PipelineIndex>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, Box<dyn std::error::Error>> {
    let Some(addr) = listen_addr("--webhook-addr", &args.webhook_addr)? else { return Ok(None) };
    let server = crate::admission::serve(
        addr,
        args.webhook_cert_dir.clone(),
        client.clone(),
        args.webhook_strict,
        index,
        shutdown,
    )
    .await?;
    info!(%addr, strict = args.webhook_strict, "serving the admission webhook");
    Ok(Some(tokio::spawn(server)))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_flags() {
        assert_eq!(listen_addr("--web-addr", "off"), Ok(None));
        assert_eq!(
            listen_addr("--web-addr", "127.0.0.1:8090"),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 8090))))
        );
        let err = listen_addr("--web-addr", "localhost").unwrap_err();
        assert!(err.starts_with("--web-addr \"localhost\": "), "{err}");
    }
}
