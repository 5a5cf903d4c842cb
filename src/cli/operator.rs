//! The long-running commands: the operator itself and the node simulator.

use tracing::info;

use crate::client::Target;
use crate::telemetry::RequestCounter;

pub async fn run_operator(target: Target, concurrency: u16) -> Result<(), Box<dyn std::error::Error>> {
    let counter = RequestCounter::default();
    let client = target.client(&counter).await?;
    info!(concurrency, "tuskfish operator starting");
    let settings = crate::controller::Settings { concurrency };
    crate::controller::run(client, settings, counter.counts(), shutdown_signal()).await;
    info!("tuskfish operator stopped");
    Ok(())
}

pub async fn run_node_sim(target: Target, nodes: usize) -> Result<(), Box<dyn std::error::Error>> {
    let client = target.client(&RequestCounter::default()).await?;
    let config = crate::sim::SimConfig { nodes, ..Default::default() };
    tokio::select! {
        r = crate::sim::run(client, config) => r?,
        () = shutdown_signal() => {}
    }
    Ok(())
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
