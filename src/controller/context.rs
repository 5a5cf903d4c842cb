//! The one shared context of all reconcilers.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use super::background::Background;
use super::deferred::DeferredStatuses;
use super::status::OwnWrites;
use crate::api::{AppVersion, Approval, Environment, Notification, PipelinePolicy, Release};
use crate::index::PipelineIndex;
use crate::telemetry::{RequestCounts, SharedMetrics};

/// Read-only caches of the pipeline (the tuskfish kinds), fed by one watch per kind.
#[derive(Clone)]
pub struct Stores {
    pub releases: Store<Release>,
    pub environments: Store<Environment>,
    pub app_versions: Store<AppVersion>,
    pub approvals: Store<Approval>,
    pub notifications: Store<Notification>,
    /// Agents' Leases (label `tuskfish.dev/agent`): whether each agent is connected.
    pub agent_leases: Store<Lease>,
    /// The cluster's PipelinePolicies (none in an agent).
    pub policies: Store<PipelinePolicy>,
    /// What tuskfish applied in the operator's own cluster.
    pub workloads: WorkloadStores,
}

/// Read-only caches of what tuskfish applied in one cluster (labelled objects only).
#[derive(Clone)]
pub struct WorkloadStores {
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    pub daemon_sets: Store<DaemonSet>,
    /// PersistentVolumeClaims a Release applied.
    pub claims: Store<PersistentVolumeClaim>,
    /// Verification Jobs (and any Job a Release applied).
    pub jobs: Store<Job>,
    /// Namespaces labelled as tuskfish's (metadata only).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// Who relates to whom: the keys to look up in `stores`.
    pub index: Arc<PipelineIndex>,
    pub recorder: Recorder,
    /// Which Environments this process deploys: the operator's, or one agent's.
    pub role: super::agent::Role,
    /// The clusters Environments deploy to (each with its client, caches and identities).
    pub clusters: super::cluster::Clusters,
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
    pub probes: super::verify::Probes,
    /// Chart pulls of AppVersions being published, run off the reconcile workers.
    pub publishes: Background<AppVersion, Result<Option<String>, crate::helm::ChartError>>,
    /// Chart renders for Releases, run off the reconcile workers.
    pub renders: Background<Release, Result<Arc<crate::render::chart::ChartOutput>, super::refusal::Refusal>>,
    /// The one client for what the operator sends out itself (HTTP checks, notifications): its
    /// TLS roots are loaded once and its connections pooled.
    pub http: crate::http::HttpClient,
    /// Told of every finished reconcile, when someone asked (see [`super::ReconcileLog`]).
    pub reconciled: Option<Arc<super::ReconcileLog>>,
    /// Helm, for AppVersions with a chart; else why there is none (said in their conditions).
    pub helm: Result<Arc<crate::helm::Helm>, String>,
}

impl Context {
    pub fn new(
        client: Client,
        stores: Stores,
        index: Arc<PipelineIndex>,
        requests: Arc<RequestCounts>,
        metrics: SharedMetrics,
    ) -> Self {
        let reporter = Reporter { controller: "tuskfish".into(), instance: std::env::var("POD_NAME").ok() };
        let local = super::cluster::Cluster::local(
            client.clone(),
            stores.workloads.clone(),
            super::custom_kinds::CustomKinds::new(client.clone(), None),
            super::identity::Identities::new(None, requests.clone(), Default::default()),
        );
        let policies = Policies {
            store: stores.policies.clone(),
            index: index.clone(),
            pod_security: crate::api::PodSecurity::default(),
            egress_denied: Arc::new([]),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            clusters: super::cluster::Clusters::local_only(local),
            role: super::agent::Role::Operator,
            client,
            stores,
            index,
            requests,
            metrics,
            own_writes: OwnWrites::default(),
            deferred: DeferredStatuses::default(),
            status_settle: std::time::Duration::ZERO,
            policies,
            probes: super::verify::Probes::new(None),
            publishes: Background::new(None),
            renders: Background::new(None),
            http: crate::http::HttpClient::new(),
            reconciled: None,
            helm: Err("the operator was started without Helm".into()),
        }
    }

    /// What the admin granted pipeline namespace `pipeline` (see [`Policies::grants`]).
    pub fn grants(&self, pipeline: &str) -> crate::plan::grants::Grants {
        self.policies.grants(pipeline)
    }

    /// Where the operator may connect on `pipeline`'s behalf.
    pub fn egress(&self, pipeline: &str) -> crate::egress::Egress {
        self.policies.egress(pipeline)
    }
}

/// The cached objects of `namespace` with these names (the index's answer to a lookup); a name the
/// cache no longer has (deleted between the two reads) is skipped.
pub fn cached<K>(store: &Store<K>, namespace: &str, names: impl IntoIterator<Item = String>) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    names.into_iter().filter_map(|n| store.get(&ObjectRef::new(&n).within(namespace))).collect()
}

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
        crate::egress::Egress { rules: self.grants(pipeline).egress, also: self.egress_denied.clone() }
    }
}
