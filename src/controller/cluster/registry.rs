//! The clusters in use, by kubeconfig Secret. A cluster is connected the first time an Environment
//! names its Secret, and then follows that Secret with a watch of its own (one Secret, by field
//! selector): a rotated kubeconfig replaces the connection at once, a deleted one refuses. Whoever
//! deploys there is woken when the connection changes or the cluster comes up or goes down; the
//! index says who that is, so nothing here scans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::link::Probe;
use super::{Cluster, Link, Reach, kubeconfig};
use crate::api::{ClusterKey, ClusterRef, Environment, Reason};
use crate::controller::custom_kinds::CustomKinds;
use crate::controller::identity::Identities;
use crate::controller::refusal::Refusal;
use crate::controller::triggers::Triggers;
use crate::index::PipelineIndex;
use crate::telemetry::{ClusterLabel, RequestCounter, RequestCounts};
use crate::watch::Change;

/// Why an Environment's cluster cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// The connection is being set up and nothing has failed: whoever asked is woken when it is
    /// up (or fails), so there is nothing to report yet.
    Connecting,
    /// The Secret is missing or its kubeconfig cannot be used.
    Invalid(String),
    /// The cluster's API server does not answer (the watches' last error).
    Unreachable(String),
}

impl ClusterError {
    pub fn reason(&self) -> Reason {
        match self {
            ClusterError::Invalid(_) => Reason::ClusterConfigInvalid,
            ClusterError::Connecting | ClusterError::Unreachable(_) => Reason::ClusterUnreachable,
        }
    }

    /// Whether waiting may cure it: an unreachable cluster comes back by itself; an unusable
    /// kubeconfig waits for its Secret to change.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Connecting | ClusterError::Unreachable(_))
    }

    /// Why `env`'s Releases cannot deploy.
    pub fn refusal(&self, env: &Environment) -> Refusal {
        Refusal { reason: self.reason(), message: self.message(env), transient: self.is_transient() }
    }

    /// What a condition says, for `env`.
    pub fn message(&self, env: &Environment) -> String {
        self.describe(env.cluster_name())
    }

    /// What to say of cluster `name`.
    pub fn describe(&self, name: &str) -> String {
        match self {
            ClusterError::Connecting => format!("connecting to cluster {name}"),
            ClusterError::Invalid(why) => format!("cluster {name}: {why}"),
            ClusterError::Unreachable(why) => format!(
                "cluster {name} cannot be reached ({why}); rollouts there wait and resume when it answers again"
            ),
        }
    }
}

/// What connecting to a cluster needs.
pub(crate) struct Shared {
    /// The operator's own client (reads the kubeconfig Secrets).
    pub client: Client,
    pub triggers: Triggers,
    pub index: Arc<PipelineIndex>,
    pub counts: Arc<RequestCounts>,
    pub identity: crate::controller::identity::IdentityRule,
    /// Where each pipeline's kubeconfigs may point (`server` is a tenant's to write).
    pub policies: crate::controller::policies::Policies,
    /// Connections whose Secret was deleted, kept a while for the cleanups that need them (see
    /// [`Clusters::for_cleanup`]).
    pub retired: Retired,
    /// The share of the pipelines this operator serves (`None`: all of them).
    pub share: Option<crate::plan::shards::Share>,
}

/// The last connection of each cluster whose kubeconfig Secret was deleted, and when. Deleting a
/// pipeline namespace deletes its Secrets and Releases at once, in no order: the Releases'
/// cleanups still remove their objects in those clusters through this. Kept in memory only (after
/// a restart such a Release says `CleanupBlocked` and how to let it go).
#[derive(Default)]
pub struct Retired(Arc<Mutex<RetiredAt>>);

/// Each retired cluster's last connection, and when it was retired.
type RetiredAt = HashMap<ClusterKey, (Arc<Cluster>, std::time::Instant)>;

/// How long a retired connection is kept.
const RETIRED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl Retired {
    fn keep(&self, key: &ClusterKey, cluster: Arc<Cluster>) {
        let at = std::time::Instant::now();
        lock(&self.0).insert(key.clone(), (cluster, at));
        // Let go when its time is up (its watches and probes stop with it), unless kept again.
        let (all, key) = (Arc::downgrade(&self.0), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(RETIRED_FOR).await;
            if let Some(all) = all.upgrade() {
                let mut m = lock(&all);
                if m.get(&key).is_some_and(|(_, kept)| *kept == at) {
                    m.remove(&key);
                }
            }
        });
    }

    fn get(&self, key: &ClusterKey) -> Option<Arc<Cluster>> {
        lock(&self.0).get(key).filter(|(_, at)| at.elapsed() < RETIRED_FOR).map(|(c, _)| c.clone())
    }
}

impl Shared {
    /// Says in the metrics whether `key`'s cluster answers (`None`: it is no longer used).
    fn report(&self, key: &ClusterKey, up: Option<bool>) {
        let label = ClusterLabel { namespace: key.namespace.clone(), secret: key.secret.name.clone() };
        match up {
            Some(up) => {
                self.triggers.metrics.cluster_reachable.get_or_create(&label).set(i64::from(up));
            }
            None => {
                self.triggers.metrics.cluster_reachable.remove(&label);
            }
        }
    }

    /// Wakes the Environments that deploy to `key`'s cluster, and their Releases.
    fn wake(&self, key: &ClusterKey) {
        let ns = &key.namespace;
        for env in self.index.environments_on_cluster(key) {
            self.triggers.environments.send(ObjectRef::new(&env).within(ns));
            for rel in self.index.releases_in_environment(ns, &env) {
                self.triggers.releases.send(ObjectRef::new(&rel).within(ns));
            }
        }
    }
}

enum Connection {
    /// The Secret has not been read yet.
    Pending,
    Invalid(String),
    Ready {
        digest: String,
        cluster: Arc<Cluster>,
    },
}

/// A cluster in use: its connection, and the watch of its Secret (stopped when dropped).
struct Remote {
    connection: Arc<Mutex<Connection>>,
    secret_watch: tokio::task::AbortHandle,
    shared: Arc<Shared>,
    key: ClusterKey,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.secret_watch.abort();
        self.shared.report(&self.key, None);
        // No Environment deploys there any more, but a Release being deleted may still have
        // objects to remove there.
        if let Connection::Ready { cluster, .. } = &*lock(&self.connection) {
            self.shared.retired.keep(&self.key, cluster.clone());
        }
    }
}

pub struct Clusters {
    local: Arc<Cluster>,
    shared: Arc<Shared>,
    remote: Mutex<HashMap<ClusterKey, Remote>>,
    /// In an agent: its name (its Environments are in `local`, its own cluster).
    agent: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Connections only: a lock poisoned elsewhere still holds good ones.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Clusters {
    pub(crate) fn new(local: Cluster, shared: Shared, agent: Option<String>) -> Self {
        Self { local: Arc::new(local), shared: Arc::new(shared), remote: Mutex::default(), agent }
    }

    pub fn local(&self) -> &Arc<Cluster> {
        &self.local
    }

    /// The cluster `env` deploys to, once it can be used.
    pub fn of(&self, env: &Environment) -> Result<Arc<Cluster>, ClusterError> {
        self.at(env.spec.cluster.as_ref(), &env.namespace().unwrap_or_default())
    }

    /// [`Self::at`], for removing what was applied there: a cluster whose kubeconfig Secret was
    /// deleted a moment ago (with the pipeline namespace, say) is still reached through its last
    /// connection.
    pub fn for_cleanup(
        &self,
        cluster: Option<&ClusterRef>,
        namespace: &str,
    ) -> Result<Arc<Cluster>, ClusterError> {
        match self.at(cluster, namespace) {
            Err(ClusterError::Invalid(why)) => {
                let secret = cluster.and_then(|c| c.kube_config_secret_ref.clone());
                let retired = secret.and_then(|secret| {
                    self.shared.retired.get(&ClusterKey { namespace: namespace.to_string(), secret })
                });
                match retired {
                    Some(c) if c.reach() == Reach::Up => Ok(c),
                    _ => Err(ClusterError::Invalid(why)),
                }
            }
            other => other,
        }
    }

    /// The cluster `cluster` names for the pipeline in `namespace` (`None`: the operator's own).
    pub fn at(&self, cluster: Option<&ClusterRef>, namespace: &str) -> Result<Arc<Cluster>, ClusterError> {
        if let Some(agent) = cluster.and_then(|c| c.agent.as_deref()) {
            return match &self.agent {
                Some(me) if me == agent => Ok(self.local.clone()),
                _ => Err(ClusterError::Invalid(format!("served by agent {agent}, not by this process"))),
            };
        }
        let Some(secret) = cluster.and_then(|c| c.kube_config_secret_ref.clone()) else {
            return Ok(self.local.clone());
        };
        let key = ClusterKey { namespace: namespace.to_string(), secret };
        let shared = &self.shared;
        let connection = {
            let mut remote = lock(&self.remote);
            // Clusters no Environment deploys to any more are let go here (rare: no timer needed).
            remote.retain(|k, _| k == &key || shared.index.cluster_in_use(k));
            remote.entry(key.clone()).or_insert_with(|| Remote::open(shared, key)).connection.clone()
        };
        let state = lock(&connection);
        match &*state {
            Connection::Pending => Err(ClusterError::Connecting),
            Connection::Invalid(why) => Err(ClusterError::Invalid(why.clone())),
            Connection::Ready { cluster, .. } => match cluster.reach() {
                Reach::Up => Ok(cluster.clone()),
                Reach::Connecting => Err(ClusterError::Connecting),
                Reach::Down(why) => Err(ClusterError::Unreachable(why)),
            },
        }
    }
}

impl Remote {
    fn open(shared: &Arc<Shared>, key: ClusterKey) -> Self {
        let connection = Arc::new(Mutex::new(Connection::Pending));
        shared.report(&key, Some(false));
        let task = tokio::spawn(follow_secret(shared.clone(), key.clone(), connection.clone()));
        Self { connection, secret_watch: task.abort_handle(), shared: shared.clone(), key }
    }
}

/// Keeps `connection` matching the kubeconfig in `key`'s Secret for as long as it runs.
async fn follow_secret(shared: Arc<Shared>, key: ClusterKey, connection: Arc<Mutex<Connection>>) {
    let api: Api<Secret> = Api::namespaced(shared.client.clone(), &key.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.secret.name));
    let (cache, changes) = crate::watch::cached(api, config, None);
    futures::pin_mut!(changes);
    // Whether the Secret's absence was acted on since it was last seen (a relist that found it
    // gone says so with a delete, then with its end: once is enough).
    let mut absence_told = false;
    while let Some(change) = changes.next().await {
        let secret = match change {
            Change::Apply(s) => Some(s),
            Change::Delete(_) => None,
            // Listed, and not there.
            Change::Reset if cache.is_empty() && !absence_told => None,
            Change::Reset => continue,
            Change::Failed(error) => {
                warn!(%key, %error, "watch of a cluster's kubeconfig Secret failed (retrying with backoff)");
                // Before the Secret was ever read, nobody would hear of this otherwise (a
                // connection that works keeps working while its Secret cannot be watched).
                if matches!(*lock(&connection), Connection::Pending) {
                    *lock(&connection) = Connection::Invalid(format!(
                        "the operator cannot read Secret {}: {error}",
                        key.secret.name
                    ));
                    shared.wake(&key);
                }
                continue;
            }
        };
        absence_told = secret.is_none();
        let next = connect(&shared, &key, secret.as_deref(), &connection).await;
        if let Some(next) = next {
            let before = std::mem::replace(&mut *lock(&connection), next);
            if let (None, Connection::Ready { cluster, .. }) = (&secret, before) {
                shared.retired.keep(&key, cluster);
            }
            shared.wake(&key);
        }
    }
}

/// The connection the Secret now asks for (`None`: the one there is still good).
async fn connect(
    shared: &Arc<Shared>,
    key: &ClusterKey,
    secret: Option<&Secret>,
    current: &Mutex<Connection>,
) -> Option<Connection> {
    let (name, field) = (&key.secret.name, &key.secret.key);
    let Some(secret) = secret else {
        return Some(Connection::Invalid(format!(
            "Secret {name} does not exist in namespace {}; create it with the cluster's kubeconfig under key {field}",
            key.namespace
        )));
    };
    let data = secret.data.as_ref();
    let Some(bytes) = data.and_then(|d| d.get(field)) else {
        let keys: Vec<&str> = data.into_iter().flat_map(|d| d.keys()).map(String::as_str).collect();
        return Some(Connection::Invalid(format!(
            "Secret {name} has no key {field} (it has: {}); put the cluster's kubeconfig there",
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        )));
    };
    let digest = format!("{:x}", Sha256::digest(&bytes.0));
    if matches!(&*lock(current), Connection::Ready { digest: d, .. } if *d == digest) {
        return None;
    }
    let text = match std::str::from_utf8(&bytes.0) {
        Ok(t) => t,
        Err(_) => return Some(Connection::Invalid(format!("Secret {name} key {field} is not text"))),
    };
    let config = match kubeconfig::config_of(text).await {
        Ok(c) => c,
        Err(why) => return Some(Connection::Invalid(format!("Secret {name} key {field}: {why}"))),
    };
    // The server is a tenant's to choose: not the operator's own API server, loopback or cloud
    // metadata, and only where the pipeline's policy allows (checked when the Secret changes).
    let server = config.cluster_url.to_string();
    if let Err(why) = shared.policies.egress(&key.namespace).allows_url(&server).await {
        return Some(Connection::Invalid(format!(
            "Secret {name} key {field}: server {}: {why}",
            crate::http::redacted(&config.cluster_url)
        )));
    }
    match connected(shared, key, config) {
        Ok(cluster) => Some(Connection::Ready { digest, cluster: Arc::new(cluster) }),
        Err(why) => Some(Connection::Invalid(format!("Secret {name} key {field}: {why}"))),
    }
}

/// A client for the cluster and its watches, started (they report to the cluster's link).
fn connected(shared: &Arc<Shared>, key: &ClusterKey, config: kube::Config) -> Result<Cluster, String> {
    info!(%key, server = %config.cluster_url, "connecting to cluster");
    // Down until the new connection's watches have listed (said before they start, so that
    // their coming up is the last word).
    shared.report(key, Some(false));
    let client = kube::client::ClientBuilder::try_from(config.clone())
        .map_err(|e| e.to_string())?
        .with_layer(&RequestCounter::with_counts(shared.counts.clone()))
        .with_layer(&crate::bounded::BoundedLines::REMOTE)
        .build();
    let (s, k) = (shared.clone(), key.clone());
    // While the cluster is down: one small list the operator may make anyway (it watches them).
    let probe_client = client.clone();
    let probe: Probe = Arc::new(move || {
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(probe_client.clone());
        async move { api.list_metadata(&ListParams::default().limit(1)).await.is_ok() }.boxed()
    });
    let link = Link::new(
        move |reach: &Reach| {
            s.report(&k, Some(*reach == Reach::Up));
            s.wake(&k);
        },
        Some(probe),
    );
    let (workloads, drivers) =
        super::workload_watches(&client, &shared.triggers, Some(link.clone()), shared.share);
    let watches = tokio::spawn(futures::future::join_all(drivers)).abort_handle();
    link.keep_alive();
    Ok(Cluster {
        catalog: Default::default(),
        served: Default::default(),
        custom_kinds: CustomKinds::new(
            client.clone(),
            Some(shared.triggers.releases.clone()),
            shared.triggers.metrics.clone(),
            shared.share,
        ),
        identities: Identities::new(Some(config), shared.counts.clone(), shared.identity.clone()),
        workloads,
        client,
        link: Some(link),
        watches: Some(watches),
    })
}
