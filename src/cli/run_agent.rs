//! `tuskfish agent`: runs inside a cluster the hub cannot reach (prod behind a firewall that takes
//! no inbound connection). It dials out to the hub, deploys the Environments of one pipeline
//! namespace that name it (`spec.cluster.agent`) into its own cluster, and writes their Releases'
//! status back. The hub holds no credentials for this cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::FutureExt;
use tracing::info;

use crate::client::Target;
use crate::controller::agent::AgentSettings;
use crate::telemetry::{Metrics, RequestCounter};

#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// This agent's name: the Environments with `spec.cluster.agent: NAME` are its to deploy.
    #[arg(long)]
    name: String,
    /// Kubeconfig of the hub, where the pipeline (Environments, Releases, AppVersions) lives. Its
    /// user needs the rights of `examples/agent/hub-rbac.yaml` in the pipeline namespace only.
    #[arg(long, env = "TUSKFISH_HUB_KUBECONFIG")]
    hub_kubeconfig: PathBuf,
    /// The pipeline namespace on the hub this agent serves.
    #[arg(long, env = "TUSKFISH_HUB_NAMESPACE")]
    hub_namespace: String,
    /// How long the hub counts the agent connected after it last reported (it reports every
    /// third of this); past it, its Environments show `AgentNotConnected`.
    #[arg(long, default_value = "30s", value_parser = super::duration_arg)]
    lease_duration: Duration,
    #[command(flatten)]
    controllers: super::operator::ControllerArgs,
}

/// `own` is this agent's cluster (the global `--kubeconfig`, or the pod's own account).
pub async fn run_agent(own: Target, args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.lease_duration < Duration::from_secs(3) {
        return Err("--lease-duration must be at least 3s (the agent reports every third of it)".into());
    }
    let counter = RequestCounter::default();
    let local = own.client(&counter).await?;
    let hub = Target::kubeconfig(&args.hub_kubeconfig);
    let hub_client = hub.client(&counter).await.map_err(|e| format!("--hub-kubeconfig: {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = super::operator::shutdown_signal().shared();
    let server = args.controllers.serve_metrics(metrics.clone(), counter.counts(), shutdown.clone()).await?;
    let agent = AgentSettings {
        name: args.name.clone(),
        namespace: args.hub_namespace.clone(),
        local,
        local_config: own.config().await?,
        lease_duration: args.lease_duration,
    };
    info!(agent = %args.name, hub_namespace = %args.hub_namespace, "tuskfish agent starting");
    let settings = crate::controller::Settings {
        watch_namespace: Some(args.hub_namespace.clone()),
        agent: Some(agent),
        ..args.controllers.settings(metrics)
    };
    crate::controller::run(hub_client, settings, counter.counts(), shutdown).await;
    if let Some(s) = server {
        s.abort();
    }
    info!("tuskfish agent stopped");
    Ok(())
}
