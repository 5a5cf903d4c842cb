//! The one shared context of all reconcilers, assembled once (see `controller::run`) from parts
//! built before it: the caches, the index, the clusters, the background work.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Recorder;

use super::agent::Role;
use super::background::Background;
use super::caches::Stores;
use super::checks::Probes;
use super::cluster::Clusters;
use super::deferred::DeferredStatuses;
use super::policies::Policies;
use super::reconciled::ReconcileLog;
use super::refusal::Refusal;
use super::status::OwnWrites;
use crate::api::{AppVersion, Release};
use crate::index::PipelineIndex;
use crate::telemetry::{RequestCounts, SharedMetrics};

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// Who relates to whom: the keys to look up in `stores`.
    pub index: Arc<PipelineIndex>,
    pub recorder: Recorder,
    /// Which Environments this process deploys: the operator's, or one agent's.
    pub role: Role,
    /// The clusters Environments deploy to (each with its client, caches and identities).
    pub clusters: Clusters,
    pub requests: Arc<RequestCounts>,
    pub metrics: SharedMetrics,
    /// Our own status writes, to skip decisions on a cache that has not seen them yet.
    pub own_writes: OwnWrites,
    /// Rollouts' first statuses not written yet, and how long one may wait (see [`super::deferred`]).
    pub deferred: DeferredStatuses,
    pub status_settle: std::time::Duration,
    /// What each pipeline may touch.
    pub policies: Policies,
    /// HTTP verification checks in flight, and their results.
    pub probes: Probes,
    /// Chart pulls of AppVersions being published, run off the reconcile workers.
    pub publishes: Background<AppVersion, Result<Option<String>, crate::helm::ChartError>>,
    /// Chart renders for Releases, run off the reconcile workers.
    pub renders: Background<Release, Result<Arc<crate::render::chart::ChartOutput>, Refusal>>,
    /// The one client for what the operator sends out itself (HTTP checks, notifications): its
    /// TLS roots are loaded once and its connections pooled.
    pub http: crate::http::HttpClient,
    /// Told of every finished reconcile, when someone asked (see [`ReconcileLog`]).
    pub reconciled: Option<Arc<ReconcileLog>>,
    /// Where what each rollout rendered is kept (`None`: in memory only).
    pub kept_renders: Option<super::kept_renders::KeptRenders>,
    /// Helm, for AppVersions with a chart; else why there is none (said in their conditions).
    pub helm: Result<Arc<crate::helm::Helm>, String>,
    /// The Approvals already in the audit records.
    pub recorded: super::ledger::Recorded,
    /// Where audit records are written (nowhere with `--audit-records=false`).
    pub ledger: super::ledger::Writer,
}

impl Context {
    /// What the admin granted pipeline namespace `pipeline` (see [`Policies::grants`]).
    pub fn grants(&self, pipeline: &str) -> crate::plan::grants::Grants {
        self.policies.grants(pipeline)
    }

    /// Where the operator may connect on `pipeline`'s behalf.
    pub fn egress(&self, pipeline: &str) -> crate::egress::Egress {
        self.policies.egress(pipeline)
    }
}
