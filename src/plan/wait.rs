//! Why a Release does not simply run its newest version: blocked (it cannot go ahead at all) or
//! held (an older version keeps running while a newer one waits). Shared by version selection
//! (`target`) and the gates (`gates`), which is why they live apart from both.

use std::time::Duration;

use crate::api::{Phase, Reason};

/// A newer version waiting, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub version: Option<String>,
    pub reason: Reason,
    pub message: String,
    /// When to look again without any event (a soak or a freeze window ending).
    pub recheck_in: Option<Duration>,
}

/// Why a Release cannot go ahead. `phase` is `Pending` when waiting on something else may fix it,
/// `Failed` when the Release or its inputs must be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub phase: Phase,
    pub reason: Reason,
    pub message: String,
    pub recheck_in: Option<Duration>,
}

impl Blocked {
    pub(super) fn pending(reason: Reason, message: impl Into<String>) -> Self {
        Self { phase: Phase::Pending, reason, message: message.into(), recheck_in: None }
    }
    pub(super) fn failed(reason: Reason, message: impl Into<String>) -> Self {
        Self { phase: Phase::Failed, reason, message: message.into(), recheck_in: None }
    }
}
