//! What each pipeline may touch: the PipelinePolicies and the operator's own bounds, from which
//! each pipeline's grants follow. A leaf (the Context and the clusters hold it).

use std::sync::Arc;

use kube::runtime::reflector::Store;

use crate::api::PipelinePolicy;
use crate::index::PipelineIndex;

/// The PipelinePolicies and the operator's own bounds, from which each pipeline's grants follow.
#[derive(Clone)]
pub struct Policies {
    pub store: Store<PipelinePolicy>,
    /// Which pipeline namespaces there are (the default grant stays out of the others', looked up
    /// per reconcile, so by prefix).
    pub index: Arc<PipelineIndex>,
    /// The least Pod Security level of every pipeline's namespaces (`--pod-security`); a
    /// PipelinePolicy can make a pipeline's stricter.
    pub pod_security: crate::api::PodSecurity,
    /// Addresses never connected to for a pipeline unless a policy allows them by CIDR, besides
    /// the fixed ranges: the API server's and the operator pod's (see [`crate::egress`]).
    pub egress_denied: Arc<[std::net::IpAddr]>,
}

impl Policies {
    /// What the admin granted pipeline namespace `pipeline` (its PipelinePolicies, or the default).
    pub fn grants(&self, pipeline: &str) -> crate::plan::grants::Grants {
        // Policies are few (one per team at most): read whole, no index needed.
        let policies = self.store.state();
        let refs: Vec<&PipelinePolicy> = policies.iter().map(AsRef::as_ref).collect();
        // The default grant (`{pipeline}-*`) can only reach pipelines named `{pipeline}-…`.
        let others = self.index.pipelines_under(&format!("{pipeline}-"));
        crate::plan::grants::Grants::of(pipeline, &refs, self.pod_security, others)
    }

    /// Where the operator may connect on `pipeline`'s behalf.
    pub fn egress(&self, pipeline: &str) -> crate::egress::Egress {
        self.egress_of(&self.grants(pipeline))
    }

    /// Where the operator may connect for a pipeline whose `grants` are at hand.
    pub fn egress_of(&self, grants: &crate::plan::grants::Grants) -> crate::egress::Egress {
        crate::egress::Egress { rules: grants.egress.clone(), also: self.egress_denied.clone() }
    }
}
