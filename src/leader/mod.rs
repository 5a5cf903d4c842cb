//! Leader election on a `coordination.k8s.io/v1` Lease: replicas keep warm caches, only the holder of
//! the Lease runs the controllers (and so writes). Semantics follow client-go: the holder renews every
//! retry period and gives up when it could not renew for the renew deadline; the others take the
//! Lease when its record has not changed for a whole lease duration (by their own clock).

mod decision;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

pub use decision::{Observation, Record, Step, held, step};

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod name in a cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// Labels the Lease carries (a shard member says its shard count), set when it is taken.
    pub labels: std::collections::BTreeMap<String, String>,
    /// What was already observed of the Lease, and since when: a shard's new operator takes an
    /// expired Lease at once instead of watching it unchanged for another lease duration.
    pub observed: Option<Observation>,
    /// Leases whose live holders this one waits for before it takes its own: a single leader
    /// does not start while shards are served, nor a shard while a single leader or shards of
    /// another count are.
    pub yields_to: Option<Yield>,
}

/// The Leases of the operator run another way (unsharded, or with another shard count).
#[derive(Clone, Debug, Default)]
pub struct Yield {
    /// The single leader's Lease.
    pub named: Option<String>,
    /// Shard Leases: names with this prefix...
    pub prefix: Option<String>,
    /// ... but not this suffix (the shards of the same count).
    pub except_suffix: Option<String>,
}

impl Yield {
    pub fn covers(&self, name: &str) -> bool {
        self.named.as_deref() == Some(name)
            || (self.prefix.as_deref().is_some_and(|p| name.starts_with(p))
                && !self.except_suffix.as_deref().is_some_and(|s| name.ends_with(s)))
    }
}

impl LeaderConfig {
    /// The defaults of client-go: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: String, identity: String) -> Self {
        Self {
            namespace,
            name: "tuskfish".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            labels: Default::default(),
            observed: None,
            yields_to: None,
        }
    }
}

#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaderConfig,
}

/// What of `lease` leader election compares.
pub fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1).unsigned_abs().into()),
    }
}

/// Brings `observed` up to `leases` as seen at `now`: each record keeps the instant it was first
/// seen unchanged (so that a holder who stopped renewing expires); Leases gone are forgotten.
pub fn observe_all<'a>(
    observed: &mut HashMap<String, Observation>,
    leases: impl Iterator<Item = &'a Lease>,
    now: Instant,
) {
    let mut seen = HashMap::new();
    for l in leases {
        let name = l.name_any();
        let o = Observation::update(observed.remove(&name), record_of(l), now);
        seen.insert(name, o);
    }
    *observed = seen;
}

/// How much longer than the renew deadline a lease must last: the time a replica that could not
/// renew has to stop its writes (in-flight requests are dropped at once) before a standby may take
/// over, with room for clocks that run at slightly different rates.
pub const MARGIN: Duration = Duration::from_secs(2);

/// How often a release reads the Lease again after a conflicting write.
const RELEASE_ATTEMPTS: usize = 5;

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    pub fn new(client: Client, cfg: LeaderConfig) -> Self {
        Self { api: Api::namespaced(client, &cfg.namespace), cfg }
    }

    /// Whole seconds, rounded up: a lease is never recorded shorter than it is (the margin over
    /// the renew deadline must hold).
    fn seconds(d: Duration) -> i32 {
        let whole = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
        i32::try_from(whole).unwrap_or(i32::MAX).max(1)
    }

    /// Waits until this replica holds the Lease; the Lease and when the write that took it began
    /// (what the renew deadline counts from).
    pub async fn acquire(&self) -> (Lease, Instant) {
        let mut observed: Option<Observation> = self.cfg.observed.clone();
        let mut others = HashMap::new();
        let mut said_waiting = false;
        loop {
            match self.try_acquire(&mut observed, &mut others).await {
                Ok(Some(taken)) => {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return taken;
                }
                Ok(None) if !said_waiting => {
                    let holder = observed.as_ref().and_then(|o| o.record.holder.clone()).unwrap_or_default();
                    let now = Instant::now();
                    let served: Vec<&str> =
                        others.iter().filter(|(_, o)| held(o, now)).map(|(n, _)| n.as_str()).collect();
                    let served = served.join(", ");
                    if served.is_empty() {
                        info!(lease = %self.cfg.name, %holder, "another replica leads; standing by");
                    } else {
                        info!(lease = %self.cfg.name, %served, "the operator runs another way (sharded, or with another shard count) in live replicas; standing by until they stop");
                    }
                    said_waiting = true;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(lease = %self.cfg.name, error = %e, "leader election: could not read or write the Lease")
                }
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Whether a Lease this one yields to (see [`LeaderConfig::yields_to`]) is held, judged by
    /// what `others` observed of them (updated here: an unchanged record expires by our clock).
    async fn yielding(&self, others: &mut HashMap<String, Observation>) -> Result<bool, kube::Error> {
        let Some(yields) = &self.cfg.yields_to else { return Ok(false) };
        let all = match self.bounded(self.cfg.renew_deadline, self.api.list(&Default::default())).await {
            Ok(all) => all,
            // Without the right to list Leases no replica could run sharded (it watches them).
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(false),
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        observe_all(others, all.items.iter().filter(|l| yields.covers(&l.name_any())), now);
        Ok(others.values().any(|o| held(o, now)))
    }

    async fn try_acquire(
        &self,
        observed: &mut Option<Observation>,
        others: &mut HashMap<String, Observation>,
    ) -> Result<Option<(Lease, Instant)>, kube::Error> {
        // Bounded like a renewal: a stalled server is not waited for.
        let current = self.bounded(self.cfg.renew_deadline, self.api.get_opt(&self.cfg.name)).await?;
        // The record is as of the answer, not the question: a slow read must not make the holder's
        // lease look older than it is.
        let now = Instant::now();
        *observed = current.as_ref().map(|l| Observation::update(observed.take(), record_of(l), now));
        let step = step(&self.cfg.identity, observed.as_ref(), now);
        // Only a Lease about to be taken asks about the others: a standby behind a live leader lists
        // nothing.
        if step != Step::Wait && self.yielding(others).await? {
            return Ok(None);
        }
        let write = match (step, current) {
            (Step::Wait, _) => return Ok(None),
            (Step::Create, _) | (Step::Take, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        labels: Some(self.cfg.labels.clone()).filter(|l| !l.is_empty()),
                        ..Default::default()
                    },
                    spec: Some(self.spec_taking(None)),
                };
                self.bounded(self.cfg.renew_deadline, self.api.create(&PostParams::default(), &lease)).await
            }
            (Step::Take, Some(mut lease)) => {
                lease.spec = Some(self.spec_taking(lease.spec.take()));
                if !self.cfg.labels.is_empty() {
                    lease
                        .metadata
                        .labels
                        .get_or_insert_with(Default::default)
                        .extend(self.cfg.labels.clone());
                }
                self.bounded(
                    self.cfg.renew_deadline,
                    self.api.replace(&self.cfg.name, &PostParams::default(), &lease),
                )
                .await
            }
        };
        match write {
            Ok(l) => Ok(Some((l, now))),
            // Another replica was faster; look again next round.
            Err(e) if is_conflict(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn spec_taking(&self, previous: Option<LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let previous = previous.unwrap_or_default();
        let ours = previous.holder_identity.as_deref() == Some(self.cfg.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(Self::seconds(self.cfg.lease_duration)),
            acquire_time: if ours { previous.acquire_time } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(
                previous.lease_transitions.unwrap_or(0)
                    + i32::from(!ours && previous.holder_identity.is_some()),
            ),
            ..previous
        }
    }

    /// Renews the Lease every retry period; returns when leadership is lost (someone else holds the
    /// Lease, or it could not be renewed within the renew deadline). `renewed`: when the write that
    /// took or last renewed it began.
    ///
    /// Every request here is cut at the renew deadline (counted from when the last successful
    /// write *began*), so a replica whose connection stalls steps down by then at the latest —
    /// before any standby may take the Lease, which needs a whole lease duration without a change
    /// of the record (the lease duration must exceed the renew deadline by [`MARGIN`] at least).
    pub async fn hold(&self, mut lease: Lease, mut renewed: Instant) {
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let attempt = Instant::now();
            let left = (renewed + self.cfg.renew_deadline).saturating_duration_since(attempt);
            let mut next = lease.clone();
            let spec = next.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            match self.bounded(left, self.api.replace(&self.cfg.name, &PostParams::default(), &next)).await {
                Ok(l) => {
                    lease = l;
                    renewed = attempt;
                    continue;
                }
                Err(e) if is_conflict(&e) => match self.bounded(left, self.api.get_opt(&self.cfg.name)).await
                {
                    Ok(Some(l)) if record_of(&l).holder.as_deref() == Some(self.cfg.identity.as_str()) => {
                        lease = l;
                        continue;
                    }
                    Ok(other) => {
                        let holder = other.as_ref().and_then(|l| record_of(l).holder).unwrap_or_default();
                        warn!(lease = %self.cfg.name, %holder, "lost the Lease to another replica");
                        return;
                    }
                    Err(e) => warn!(lease = %self.cfg.name, error = %e, "could not read the Lease"),
                },
                Err(e) => warn!(lease = %self.cfg.name, error = %e, "could not renew the Lease"),
            }
            if renewed.elapsed() >= self.cfg.renew_deadline {
                warn!(lease = %self.cfg.name, deadline = ?self.cfg.renew_deadline, "could not renew the Lease in time; stepping down");
                return;
            }
        }
    }

    /// `request`, cut off after `limit` (a stalled connection answers nothing, ever).
    async fn bounded<T>(
        &self,
        limit: Duration,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        tokio::time::timeout(limit, request).await.unwrap_or_else(|_| {
            Err(kube::Error::Service(format!("no answer from the API server within {limit:?}").into()))
        })
    }

    /// Deletes the Lease if this replica holds it (a shard member leaving for good: its name is not
    /// used again).
    pub async fn remove(&self) {
        let limit = self.cfg.renew_deadline;
        let remove = async {
            let Ok(Some(lease)) = self.api.get_opt(&self.cfg.name).await else { return };
            if record_of(&lease).holder.as_deref() != Some(self.cfg.identity.as_str()) {
                return;
            }
            let precondition = kube::api::Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                ..Default::default()
            };
            let dp = kube::api::DeleteParams { preconditions: Some(precondition), ..Default::default() };
            if let Err(e) = self.api.delete(&self.cfg.name, &dp).await {
                // Given up at least, so that the others stop counting this replica at once.
                warn!(lease = %self.cfg.name, error = %e, "could not delete the Lease; releasing it");
                self.release_now().await;
            }
        };
        if tokio::time::timeout(limit, remove).await.is_err() {
            warn!(lease = %self.cfg.name, "could not delete the Lease within {limit:?}");
        }
    }

    /// Gives the Lease up (on shutdown), so that a standby takes over at once instead of after a
    /// lease duration. The renewing task may write between this read and this write: a conflict
    /// means "read again", a few times.
    pub async fn release(&self) {
        // Bounded like a renewal: a stopping replica does not wait on a stalled connection.
        let limit = self.cfg.renew_deadline;
        if tokio::time::timeout(limit, self.release_now()).await.is_err() {
            warn!(lease = %self.cfg.name, "could not release the Lease within {limit:?}");
        }
    }

    async fn release_now(&self) {
        for _ in 0..RELEASE_ATTEMPTS {
            let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else { return };
            if record_of(&lease).holder.as_deref() != Some(self.cfg.identity.as_str()) {
                return;
            }
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            match self.api.replace(&lease.name_any(), &PostParams::default(), &lease).await {
                Ok(_) => {
                    info!(lease = %self.cfg.name, "released the Lease");
                    return;
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => {
                    warn!(lease = %self.cfg.name, error = %e, "could not release the Lease");
                    return;
                }
            }
        }
        warn!(lease = %self.cfg.name, "could not release the Lease: it kept changing under the release");
    }
}
