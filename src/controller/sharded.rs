//! `tuskfish run --shards N`: the pipeline namespaces are split into N shards (by a hash of the
//! namespace, [`crate::plan::shards`]) and the replicas share the shards out among themselves with
//! Kubernetes' own primitive, Leases:
//!
//! - each replica holds a member Lease (`<lease-name>-member-<identity>`, labelled with its N) for
//!   as long as it runs; the live members are those whose Lease record changed within a lease
//!   duration (by our clock, as leader election judges it);
//! - every replica computes the same split of shards over the live members, and runs, for each
//!   shard it should hold, an operator of its own whose watches keep that shard's objects only and
//!   whose controllers run only while it holds the shard's Lease
//!   (`<lease-name>-shard-<i>-of-<N>`);
//! - a shard it should no longer hold is stopped (in-flight reconciles finish, held statuses are
//!   written) and its Lease released, and only then taken by the replica it now belongs to: a
//!   Release is never reconciled by two replicas at once; a replica that dies has its shards taken
//!   once their Leases expire.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::channel::oneshot;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::{Operator, Settings, Stopped};
use crate::leader::{Elector, LeaderConfig, Observation, Yield, held, observe_all};
use crate::plan::shards::{Member, Share, held_by, must_yield};
use crate::telemetry::RequestCounts;

/// The label on a member Lease that says the replica's shard count.
pub const SHARDS_LABEL: &str = "tuskfish.dev/shards";

/// How the replicas share the shards out.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// `--shards`.
    pub count: u16,
    /// The Leases' namespace, this replica's identity and the lease timings; `name` is the prefix
    /// of every Lease (and, unsharded, the single leader's Lease, which no shard runs beside).
    pub lease: LeaderConfig,
}

impl ShardConfig {
    /// The Lease of shard `index`.
    pub fn shard_lease(&self, index: u16) -> String {
        format!("{}-shard-{index}-of-{}", self.lease.name, self.count)
    }

    fn member_prefix(&self) -> String {
        format!("{}-member-", self.lease.name)
    }

    /// This replica's member Lease: its identity made a valid name (lower-case letters, digits and
    /// dashes), with a digest of the identity so that two identities never share one.
    fn member_lease(&self) -> String {
        let id = &self.lease.identity;
        let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(id.as_bytes()));
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let prefix = self.member_prefix();
        let room = 253usize.saturating_sub(prefix.len() + short.len() + 1);
        let clean: String = id
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
            .take(room)
            .collect();
        let clean = clean.trim_matches('-');
        if clean.is_empty() { format!("{prefix}{short}") } else { format!("{prefix}{clean}-{short}") }
    }

    /// What a shard of this count yields to: the single leader's Lease, and other counts' shards.
    fn shard_yields(&self) -> Yield {
        Yield {
            named: Some(self.lease.name.clone()),
            prefix: Some(format!("{}-shard-", self.lease.name)),
            except_suffix: Some(format!("-of-{}", self.count)),
        }
    }
}

/// One shard's operator, running (or stopping).
struct Running {
    /// Dropped or sent: the operator stops gracefully.
    stop: Option<oneshot::Sender<()>>,
    /// Since when it has been stopping: past the limit it is stopped at once.
    stopping: Option<Instant>,
    task: tokio::task::JoinHandle<Stopped>,
}

/// What the Leases of the lease namespace say, observed over time (by our clock, as leader
/// election judges a Lease: a record that stops changing expires a lease duration later).
#[derive(Default)]
struct Observed {
    leases: HashMap<String, Observation>,
}

/// What one look at the Leases decided.
struct View {
    members: Vec<Member>,
    /// A single leader is live.
    unsharded: bool,
    /// Our own member Lease's renewals are not arriving: the view is stale (a lagging watch), and
    /// every other member would look dead; nothing is started or stopped on it.
    stale: bool,
    /// Member Leases dead long enough to delete, with their resourceVersion.
    dead: Vec<(String, Option<String>)>,
}

/// How long a member Lease must have been dead before it is deleted (a pod killed without a
/// word leaves its Lease behind; a replica coming back under the same name takes it again).
const DEAD_FOR: Duration = Duration::from_secs(600);

impl Observed {
    fn judge(&mut self, cfg: &ShardConfig, leases: &[Arc<Lease>], member: &str, now: Instant) -> View {
        observe_all(&mut self.leases, leases.iter().map(AsRef::as_ref), now);
        let prefix = cfg.member_prefix();
        let mut view = View { members: Vec::new(), unsharded: false, stale: false, dead: Vec::new() };
        for l in leases {
            let name = l.name_any();
            let Some(o) = self.leases.get(&name) else { continue };
            let live = held(o, now);
            if name == cfg.lease.name {
                view.unsharded |= live;
            } else if name == member {
                view.stale = !live;
            }
            if !name.starts_with(&prefix) {
                continue;
            }
            if !live {
                if now.duration_since(o.since) >= DEAD_FOR.max(o.record.duration * 10) {
                    view.dead.push((name, l.metadata.resource_version.clone()));
                }
                continue;
            }
            view.members.push(Member {
                identity: o.record.holder.clone().unwrap_or_default(),
                count: l.labels().get(SHARDS_LABEL).and_then(|c| c.parse().ok()).unwrap_or(0),
                since: l.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
            });
        }
        view
    }
}

/// Runs this replica's part of the shards until `shutdown` (it leaves the members at once, then
/// every shard stops gracefully and gives its Lease up), or until its member Lease is lost (every
/// shard stops at once).
pub async fn run(
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    cfg: ShardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Stopped {
    let shutdown = shutdown.shared();
    let me = cfg.lease.identity.clone();
    // The others' Leases first: a replica that cannot follow them must not look like a member.
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.lease.namespace);
    let (leases, changes) = crate::watch::cached(api.clone(), watcher::Config::default(), None);
    let changed = Arc::new(tokio::sync::Notify::new());
    let told = changed.clone();
    let follow =
        crate::watch::drive(changes, "Lease".into(), settings.metrics.clone(), move |_| told.notify_one());
    let follow = AbortOnDrop(tokio::spawn(follow));
    tokio::select! {
        _ = leases.wait_until_ready() => {}
        () = shutdown.clone() => return Stopped::Shutdown,
    }
    let member_name = cfg.member_lease();
    let member = Elector::new(
        client.clone(),
        LeaderConfig {
            name: member_name.clone(),
            labels: BTreeMap::from([(SHARDS_LABEL.to_string(), cfg.count.to_string())]),
            ..cfg.lease.clone()
        },
    );
    let (lease, renewed) = tokio::select! {
        taken = member.acquire() => taken,
        () = shutdown.clone() => return Stopped::Shutdown,
    };
    let (lost_tx, lost_rx) = oneshot::channel::<()>();
    let holder = member.clone();
    let renewing = AbortOnDrop(tokio::spawn(async move {
        holder.hold(lease, renewed).await;
        let _ = lost_tx.send(());
    }));
    let member_lost = lost_rx.map(|_| ()).shared();
    // A standby without shards is as ready as one with: readiness is "may take shards".
    settings.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    info!(shards = cfg.count, identity = %me, "sharded: sharing the shards out with the other replicas");

    // One Helm for all shards here: one bound on Helm processes, however many shards it serves.
    let settings = Settings { helm_made: Some(super::helm_of(&settings)), ..settings };
    let mut observed = Observed::default();
    let mut running: BTreeMap<u16, Running> = BTreeMap::new();
    let mut yielding = false;
    let mut forgotten: HashMap<String, Instant> = HashMap::new();
    let stopped = loop {
        let view = observed.judge(&cfg, &leases.state(), &member_name, Instant::now());
        // Finished shards (given up, or their Lease lost) are forgotten; a wanted one starts again.
        let finished: Vec<u16> =
            running.iter().filter(|(_, r)| r.task.is_finished()).map(|(s, _)| *s).collect();
        for shard in finished {
            if let Some(r) = running.remove(&shard) {
                let how = r.task.await.unwrap_or(Stopped::LeadershipLost);
                info!(shard, ?how, "shard stopped");
            }
        }
        let must = must_yield(cfg.count, &view.members, view.unsharded);
        if must != yielding {
            yielding = must;
            if must {
                info!(
                    "a single leader, or older replicas with another shard count, are live: serving no shard until they are gone"
                );
            } else {
                info!("no other way of running is live: serving shards again");
            }
        }
        if must {
            // Another way of running is live: no draining, nothing more may be written here. The
            // Lease is given up once the shard is gone, so that whoever waits for it need not
            // wait for it to expire.
            for (shard, r) in std::mem::take(&mut running) {
                warn!(
                    shard,
                    "a single leader, or replicas with another shard count, run: stopping the shard at once"
                );
                r.task.abort();
                let lease = Elector::new(
                    client.clone(),
                    LeaderConfig { name: cfg.shard_lease(shard), ..cfg.lease.clone() },
                );
                tokio::spawn(async move {
                    let _ = r.task.await;
                    lease.release().await;
                });
            }
        } else if !view.stale {
            let want = held_by(&me, cfg.count, &view.members, view.unsharded);
            for &shard in &want {
                let seen = observed.leases.get(&cfg.shard_lease(shard)).cloned();
                running
                    .entry(shard)
                    .or_insert_with(|| start(&client, &settings, &requests, &cfg, shard, seen));
            }
            let limit = cfg.lease.renew_deadline + STOP_LIMIT;
            for (shard, r) in running.iter_mut().filter(|(s, _)| !want.contains(s)) {
                if let Some(stop) = r.stop.take() {
                    info!(shard, "the shard belongs to another replica now; stopping it");
                    let _ = stop.send(());
                    r.stopping = Some(Instant::now());
                }
                if r.stopping.is_some_and(|since| since.elapsed() > limit) {
                    warn!(shard, "the shard did not stop within {limit:?}; stopped at once");
                    r.task.abort();
                }
            }
        }
        // Each dead member's Lease is deleted once (any replica may; the others' deletes fail).
        for (name, version) in view.dead {
            if forgotten.get(&name).is_none_or(|at| at.elapsed() > DEAD_FOR) {
                forgotten.insert(name.clone(), Instant::now());
                let bounded =
                    tokio::time::timeout(cfg.lease.renew_deadline, forget_member(&api, &name, version));
                let _ = bounded.await;
            }
        }
        forgotten.retain(|_, at| at.elapsed() <= DEAD_FOR * 2);
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(cfg.lease.retry_period) => {}
            () = shutdown.clone() => break Stopped::Shutdown,
            () = member_lost.clone() => break Stopped::LeadershipLost,
        }
    };
    drop(follow);
    drop(renewing);
    match stopped {
        Stopped::LeadershipLost => {
            warn!("could not renew this replica's member Lease; stopping every shard at once");
            running.values().for_each(|r| r.task.abort());
        }
        Stopped::Shutdown => {
            // Leaving first lets the others reassign the shards now; each is taken once this
            // replica has stopped it (in-flight reconciles done, held statuses written) and
            // released its Lease.
            member.remove().await;
            for r in running.values_mut() {
                if let Some(stop) = r.stop.take() {
                    let _ = stop.send(());
                }
            }
            let limit = cfg.lease.renew_deadline + STOP_LIMIT;
            let stops = std::mem::take(&mut running).into_iter().map(|(shard, r)| async move {
                let abort = r.task.abort_handle();
                if tokio::time::timeout(limit, r.task).await.is_err() {
                    warn!(shard, "the shard did not stop within {limit:?}; stopped at once");
                    abort.abort();
                }
            });
            futures::future::join_all(stops).await;
        }
    }
    stopped
}

/// Deletes a member Lease dead for long, unless it changed since it was seen (any replica may;
/// the others' deletes then fail harmlessly).
async fn forget_member(api: &Api<Lease>, name: &str, resource_version: Option<String>) {
    let preconditions = kube::api::Preconditions { resource_version, ..Default::default() };
    let dp = kube::api::DeleteParams { preconditions: Some(preconditions), ..Default::default() };
    match api.delete(name, &dp).await {
        Ok(_) => info!(lease = %name, "deleted the Lease of a replica gone for good"),
        Err(e) => tracing::debug!(lease = %name, error = %e, "a dead member's Lease was not deleted"),
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a stopping shard may take beyond the renew deadline (its held statuses are written
/// within 5 s, then its Lease is released).
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Starts shard `index`'s operator: its watches fill at once; its controllers wait for its Lease
/// (`seen`: what was observed of that Lease already, so that an expired one is taken at once).
fn start(
    client: &Client,
    settings: &Settings,
    requests: &Arc<RequestCounts>,
    cfg: &ShardConfig,
    index: u16,
    seen: Option<Observation>,
) -> Running {
    info!(shard = index, of = cfg.count, "taking a shard (its controllers start once its Lease is ours)");
    let settings = Settings {
        share: Some(Share { index, count: cfg.count }),
        leader: Some(LeaderConfig {
            name: cfg.shard_lease(index),
            labels: BTreeMap::new(),
            observed: seen,
            yields_to: Some(cfg.shard_yields()),
            ..cfg.lease.clone()
        }),
        ..settings.clone()
    };
    let operator = Operator::new(client.clone(), settings, requests.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(operator.run(stopped.map(|_| ())));
    Running { stop: Some(stop), stopping: None, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(identity: &str) -> ShardConfig {
        ShardConfig { count: 3, lease: LeaderConfig::new("ops".into(), identity.into()) }
    }

    #[test]
    fn lease_names() {
        let pod = cfg("tuskfish-7d9f-abc").member_lease();
        assert!(pod.starts_with("tuskfish-member-tuskfish-7d9f-abc-") && pod.len() == 16 + 18 + 16, "{pod}");
        assert_eq!(cfg("x").shard_lease(2), "tuskfish-shard-2-of-3");
        // Anything is made a name, with a digest so that "A_b" and "a-b" stay apart.
        let odd = cfg("Host_1:42").member_lease();
        assert!(odd.starts_with("tuskfish-member-host-1-42-"), "{odd}");
        assert_ne!(odd, cfg("host-1-42").member_lease());
        assert!(!cfg("a..b").member_lease().contains(".."));
        assert!(
            cfg("...").member_lease().starts_with("tuskfish-member-")
                && !cfg("...").member_lease().contains("--")
        );
        let long = cfg(&"a".repeat(400)).member_lease();
        assert!(long.len() <= 253, "{}", long.len());
    }

    #[test]
    fn a_shard_yields_to_the_single_leader_and_other_counts_only() {
        let y = cfg("x").shard_yields();
        assert!(y.covers("tuskfish"));
        assert!(y.covers("tuskfish-shard-0-of-4") && y.covers("tuskfish-shard-1-of-13"));
        assert!(!y.covers("tuskfish-shard-2-of-3") && !y.covers("tuskfish-member-a-00"));
    }
}
