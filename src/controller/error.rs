//! Errors of the reconcilers, each with a stable reason for conditions, Events and logs.

use crate::api::Reason;

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
    #[error("recording {what}: {source}")]
    Record { what: String, source: kube::Error },
    #[error("creating namespace {namespace}: {source}")]
    Namespace { namespace: String, source: kube::Error },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("discovering {gvk}: {source}")]
    Discovery { gvk: String, source: kube::Error },
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// The Environment's cluster cannot be used now (its condition says the same).
    #[error("{message}")]
    Cluster { reason: Reason, message: String },
}

impl Error {
    /// True when the write lost a race with another write (HTTP 409): retry soon, on fresh data.
    pub fn is_conflict(&self) -> bool {
        let source = match self {
            Error::Read { source, .. }
            | Error::Apply { source, .. }
            | Error::Prune { source, .. }
            | Error::Status { source, .. }
            | Error::Record { source, .. }
            | Error::Namespace { source, .. }
            | Error::Discovery { source, .. } => source,
            Error::Finalizer(e) => {
                return match e.as_ref() {
                    kube::runtime::finalizer::Error::ApplyFailed(inner)
                    | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.is_conflict(),
                    // The finalizer is added/removed by a JSON patch whose `test` op fails with 422
                    // when our cached copy is behind: a lost race like a 409, not a real error.
                    kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(s))
                    | kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) => {
                        matches!(s.code, 409 | 422)
                    }
                    _ => false,
                };
            }
            Error::MissingField(_) | Error::Cluster { .. } => return false,
        };
        matches!(source, kube::Error::Api(s) if s.code == 409)
    }

    /// Stable CamelCase reason.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Read { .. } => Reason::ReadFailed,
            Error::Apply { .. } => Reason::ApplyFailed,
            Error::Prune { .. } => Reason::PruneFailed,
            Error::Status { .. } => Reason::StatusWriteFailed,
            Error::Record { .. } => Reason::RecordFailed,
            Error::Namespace { .. } => Reason::NamespaceFailed,
            Error::Finalizer(_) => Reason::FinalizerFailed,
            Error::Discovery { .. } => Reason::DiscoveryFailed,
            Error::MissingField(_) => Reason::InvalidObject,
            Error::Cluster { reason, .. } => *reason,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
