//! Why a Release cannot be deployed now, whatever said no: its chart, the cluster, the identity it
//! deploys as, its rendering or the pipeline's grants. One type, so that each step's refusal reads
//! the same way in the act step and ends up in the Release's conditions the same way.

use crate::api::Reason;
use crate::helm::ChartError;
use crate::render;

/// Why a Release cannot be deployed now, as its condition says it: `transient` when trying again
/// unchanged may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub transient: bool,
}

impl Refusal {
    /// A refusal that waiting does not cure (the spec, a grant or a Secret must change).
    pub fn lasting(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), transient: false }
    }

    /// What a Release records for it.
    pub fn into_outcome(self) -> crate::plan::Outcome {
        let Self { reason, message, transient } = self;
        crate::plan::Outcome::Failed { reason, message, transient }
    }

    /// Says when a remembered failure is tried again (the same words until then: no status write).
    pub(crate) fn tried_again_at(mut self, next_try: jiff::Timestamp) -> Self {
        self.message = format!("{} (not tried again before {next_try})", self.message);
        self
    }
}

impl From<ChartError> for Refusal {
    fn from(e: ChartError) -> Self {
        Self { reason: e.reason(), transient: e.is_transient(), message: e.to_string() }
    }
}

impl From<super::identity::IdentityError> for Refusal {
    fn from(e: super::identity::IdentityError) -> Self {
        // Who the operator may act as does not change by waiting.
        Self { reason: e.reason(), message: e.to_string(), transient: false }
    }
}

impl From<render::RenderError> for Refusal {
    fn from(e: render::RenderError) -> Self {
        Self { reason: e.reason(), transient: e.is_transient(), message: e.to_string() }
    }
}
