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
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::{Operator, Settings, Stopped};
use crate::leader::{Elector, LeaderConfig, Observation, held, record_of};
use crate::plan::shards::{Member, Share, held_by};
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

    /// This replica's member Lease: its identity made a valid name (with a digest of the
    /// identity when anything had to be changed, so that two identities never share one).
    fn member_lease(&self) -> String {
        let id = &self.lease.identity;
        let clean: String = id
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
            .collect();
        let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let prefix = self.member_prefix();
        if clean == id.as_str() && prefix.len() + clean.len() <= 253 {
            return format!("{prefix}{clean}");
        }
        let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(id.as_bytes()));
        let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let room = 253usize.saturating_sub(prefix.len() + short.len() + 1);
        let kept: String = clean.chars().take(room).collect();
        format!("{prefix}{}-{short}", kept.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
    }
}

/// One shard's operator, running (or stopping).
struct Running {
    /// Dropped or sent: the operator stops.
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Stopped>,
}

/// What the Leases of the lease namespace say, observed over time.
#[derive(Default)]
struct Observed {
    leases: HashMap<String, Observation>,
}

impl Observed {
    /// The live members, and whether an unsharded leader is live; `leases` as the cache has them.
    fn judge(&mut self, cfg: &ShardConfig, leases: &[Arc<Lease>], now: Instant) -> (Vec<Member>, bool) {
        let mut seen = HashMap::new();
        for l in leases {
            let name = l.name_any();
            let o = Observation::update(self.leases.remove(&name), record_of(l), now);
            seen.insert(name, o);
        }
        self.leases = seen;
        let prefix = cfg.member_prefix();
        let by_name: BTreeMap<&str, &Arc<Lease>> =
            leases.iter().map(|l| (l.meta().name.as_deref().unwrap_or_default(), l)).collect();
        let mut members = Vec::new();
        let mut unsharded = false;
        for (name, o) in &self.leases {
            if !held(o, now) {
                continue;
            }
            let holder = o.record.holder.clone().unwrap_or_default();
            if *name == cfg.lease.name {
                unsharded = holder != cfg.lease.identity;
                continue;
            }
            let Some(lease) = by_name.get(name.as_str()).filter(|_| name.starts_with(&prefix)) else {
                continue;
            };
            let count = lease.labels().get(SHARDS_LABEL).and_then(|c| c.parse().ok()).unwrap_or(0);
            let since = lease.spec.as_ref().and_then(|s| s.acquire_time.as_ref()).map(|t| t.0.to_string());
            members.push(Member { identity: holder, count, since: since.unwrap_or_default() });
        }
        (members, unsharded)
    }
}

/// Runs this replica's part of the shards until `shutdown` (every shard stops gracefully and gives
/// its Lease up), or until its member Lease is lost (every shard stops at once).
pub async fn run(
    client: Client,
    settings: Settings,
    requests: Arc<RequestCounts>,
    cfg: ShardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Stopped {
    let shutdown = shutdown.shared();
    let me = cfg.lease.identity.clone();
    let member = Elector::new(
        client.clone(),
        LeaderConfig {
            name: cfg.member_lease(),
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
    let renewing = tokio::spawn(async move {
        holder.hold(lease, renewed).await;
        let _ = lost_tx.send(());
    });
    let member_lost = lost_rx.map(|_| ()).shared();

    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.lease.namespace);
    let (leases, changes) = crate::watch::cached(api, watcher::Config::default(), None);
    let changed = Arc::new(tokio::sync::Notify::new());
    let told = changed.clone();
    let follow =
        tokio::spawn(crate::watch::drive(changes, "Lease".into(), settings.metrics.clone(), move |_| {
            told.notify_one()
        }));
    // A standby without shards is as ready as one with: readiness is "may take shards".
    tokio::select! {
        _ = leases.wait_until_ready() => {}
        () = shutdown.clone() => {}
    }
    settings.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    info!(shards = cfg.count, identity = %me, "sharded: sharing the shards out with the other replicas");

    let mut observed = Observed::default();
    let mut running: BTreeMap<u16, Running> = BTreeMap::new();
    let stopped = loop {
        let (members, unsharded) = observed.judge(&cfg, &leases.state(), Instant::now());
        let want = held_by(&me, cfg.count, &members, unsharded);
        // Finished shards (given up, or their Lease lost) are forgotten; a wanted one starts again.
        let finished: Vec<u16> =
            running.iter().filter(|(_, r)| r.task.is_finished()).map(|(s, _)| *s).collect();
        for shard in finished {
            if let Some(r) = running.remove(&shard) {
                let how = r.task.await.unwrap_or(Stopped::LeadershipLost);
                info!(shard, ?how, "shard stopped");
            }
        }
        for &shard in &want {
            let seen = observed.leases.get(&cfg.shard_lease(shard)).cloned();
            running.entry(shard).or_insert_with(|| start(&client, &settings, &requests, &cfg, shard, seen));
        }
        for (shard, r) in running.iter_mut().filter(|(s, _)| !want.contains(s)) {
            if let Some(stop) = r.stop.take() {
                info!(shard, "shard belongs to another replica now; stopping it");
                let _ = stop.send(());
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(cfg.lease.retry_period) => {}
            () = shutdown.clone() => break Stopped::Shutdown,
            () = member_lost.clone() => break Stopped::LeadershipLost,
        }
    };
    follow.abort();
    match stopped {
        Stopped::LeadershipLost => {
            warn!("could not renew this replica's member Lease; stopping every shard at once");
            running.values().for_each(|r| r.task.abort());
        }
        Stopped::Shutdown => {
            // Each shard writes what it held back and releases its Lease; then the member goes.
            for r in running.values_mut() {
                if let Some(stop) = r.stop.take() {
                    let _ = stop.send(());
                }
            }
            let limit = cfg.lease.renew_deadline + STOP_LIMIT;
            for (shard, r) in std::mem::take(&mut running) {
                if tokio::time::timeout(limit, r.task).await.is_err() {
                    warn!(shard, "shard did not stop within {limit:?}");
                }
            }
            renewing.abort();
            member.release().await;
        }
    }
    renewing.abort();
    stopped
}

/// How long a stopping shard may take beyond the renew deadline (its held statuses are written
/// within 5 s, then its Lease is released).
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Starts shard `index`'s operator: its watches fill at once; its controllers wait for its Lease.
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
            ..cfg.lease.clone()
        }),
        ..settings.clone()
    };
    let operator = Operator::new(client.clone(), settings, requests.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(operator.run(stopped.map(|_| ())));
    Running { stop: Some(stop), task }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(identity: &str) -> ShardConfig {
        ShardConfig { count: 3, lease: LeaderConfig::new("ops".into(), identity.into()) }
    }

    #[test]
    fn lease_names() {
        assert_eq!(cfg("tuskfish-7d9f-abc").member_lease(), "tuskfish-member-tuskfish-7d9f-abc");
        assert_eq!(cfg("x").shard_lease(2), "tuskfish-shard-2-of-3");
        // Anything else is made a name, with a digest so that "A_b" and "a-b" stay apart.
        let odd = cfg("Host_1:42").member_lease();
        assert!(odd.starts_with("tuskfish-member-host-1-42-"), "{odd}");
        assert_ne!(odd, cfg("host-1-42").member_lease());
        let long = cfg(&"a".repeat(400)).member_lease();
        assert!(long.len() <= 253, "{}", long.len());
    }
}
