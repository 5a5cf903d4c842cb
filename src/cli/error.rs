//! CLI errors: one line that says what is wrong and what to do, and an exit code per kind.

use std::process::ExitCode;

use crate::client::ClientError;

/// Exit codes (documented in the book's tutorial and `tuskfish --help`).
pub mod exit {
    /// The command did what was asked (with `--wait`: the rollout became Healthy).
    pub const OK: u8 = 0;
    /// The operation failed: the rollout became Degraded or Failed, or the server refused a write.
    pub const FAILED: u8 = 1;
    /// Bad arguments (also clap's code for usage errors).
    pub const USAGE: u8 = 2;
    /// An environment, app, version or Release that does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// Kubernetes RBAC does not allow it.
    pub const FORBIDDEN: u8 = 4;
    /// No usable kubeconfig, or the API server cannot be reached.
    pub const UNREACHABLE: u8 = 5;
    /// `--wait` ran out of time before the rollout finished.
    pub const TIMEOUT: u8 = 6;
    /// The field to change is applied from git by a GitOps tool: change it there (or use `--git`).
    pub const GITOPS: u8 = 7;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("not allowed: {0} (ask a cluster admin for the RBAC permission)")]
    Forbidden(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Owned(String),
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Forbidden(_) => exit::FORBIDDEN,
            CliError::Unreachable(_) => exit::UNREACHABLE,
            CliError::Failed(_) => exit::FAILED,
            CliError::Timeout(_) => exit::TIMEOUT,
            CliError::Owned(_) => exit::GITOPS,
        })
    }

    /// Maps an API error while `doing` something (e.g. "listing Releases in finance").
    pub fn api(doing: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => match s.code {
                401 => CliError::Unreachable(format!(
                    "{doing}: the API server did not accept your credentials ({}); check --kubeconfig/--context",
                    s.message
                )),
                403 => CliError::Forbidden(format!("{doing}: {}", s.message)),
                404 if s.message.contains("the server could not find the requested resource") => {
                    CliError::NotFound(format!(
                        "{doing}: the tuskfish CRDs are not installed in this cluster (install the Helm chart or `tuskfish crd | kubectl apply -f -`)"
                    ))
                }
                404 => CliError::NotFound(format!("{doing}: {}", s.message)),
                409 => CliError::Failed(format!(
                    "{doing}: someone else changed it at the same time ({}); run the command again",
                    s.message
                )),
                _ => CliError::Failed(format!("{doing}: {} ({})", s.message, s.code)),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => CliError::Unreachable(format!(
                "{doing}: cannot reach the Kubernetes API server ({e}); check --kubeconfig/--context and that the cluster is up"
            )),
            other => CliError::Failed(format!("{doing}: {other}")),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Unreachable(format!("{e}"))
    }
}
