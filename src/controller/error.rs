//! Errors of the reconcilers, each with a stable reason for conditions, Events and logs.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}: {source}")]
    Read { what: String, source: kube::Error },
    #[error("applying {what}: {source}")]
    Apply { what: String, source: kube::Error },
    #[error("pruning {what}: {source}")]
    Prune { what: String, source: kube::Error },
    #[error("writing status of {what}: {source}")]
    Status { what: String, source: kube::Error },
    #[error("creating namespace {namespace}: {source}")]
    Namespace { namespace: String, source: kube::Error },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("discovering {gvk}: {source}")]
    Discovery { gvk: String, source: kube::Error },
    #[error("object has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// Stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::Status { .. } => "StatusWriteFailed",
            Error::Namespace { .. } => "NamespaceFailed",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::Discovery { .. } => "DiscoveryFailed",
            Error::MissingField(_) => "InvalidObject",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
