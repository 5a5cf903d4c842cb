//! The `tuskfish` binary: the operator (`run`), CRD generation (`crd`) and the dev tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing::{error, info};
use tuskfish::client::Target;
use tuskfish::telemetry::RequestCounter;

#[derive(Parser)]
#[command(name = "tuskfish", version, about = "Application & environment pipeline operator for Kubernetes")]
struct Cli {
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true, env = "TUSKFISH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TUSKFISH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run {
        /// Parallel reconciles per controller.
        #[arg(long, default_value_t = 16)]
        concurrency: u16,
    },
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Simulate kubelets: register fake Nodes, bind pending pods and report them Ready
    /// (for control planes without nodes; see the README).
    #[command(hide = true)]
    NodeSim {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUSKFISH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_runtime=warn,kube_client::client::tls=error")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let target = Target { kubeconfig: cli.kubeconfig, context: cli.context };
    match run(cli.command, target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("tuskfish: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, target: Target) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Crd => {
            print!("{}", tuskfish::crd_yaml()?);
            Ok(())
        }
        Command::Run { concurrency } => {
            let counter = RequestCounter::default();
            let client = target.client(&counter).await?;
            info!(concurrency, "tuskfish operator starting");
            let settings = tuskfish::controller::Settings { concurrency };
            tuskfish::controller::run(client, settings, counter.counts(), shutdown_signal()).await;
            info!("tuskfish operator stopped");
            Ok(())
        }
        Command::NodeSim { nodes } => {
            let client = target.client(&RequestCounter::default()).await?;
            let config = tuskfish::sim::SimConfig { nodes, ..Default::default() };
            tokio::select! {
                r = tuskfish::sim::run(client, config) => r?,
                () = shutdown_signal() => {}
            }
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
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
