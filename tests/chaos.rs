#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The operator killed (SIGKILL) at random moments while rollouts are under way, over and over, with
//! versions whose object sets differ (each brings a ConfigMap of its own) and, half of the time, a
//! newer version published while no operator runs: afterwards every Release converges on the
//! newest version, its history has no duplicated entry and lost none that a watch saw during the
//! run, and every environment namespace holds exactly its own apps' objects of the newest version —
//! no orphan of a version applied but never recorded. (A version that no operator got to record
//! before a newer one arrived is rightly skipped: tracking takes the newest.)
//! `TUSKFISH_CHAOS_KILLS` sets the number of kills (20 here; `make chaos` runs 100) and
//! `TUSKFISH_CHAOS_SEED` the seed of the random moments (printed, to replay a failure).
//!
//! Network faults come from Toxiproxy (built from its Go module by `make test`) on loopback:
//! latency, stalls (a partition that keeps connections open) and resets between the operator and
//! its API server, and between the hub and another cluster, while rollouts go on; and two replicas
//! with the leader's connection stalled, which must stop before the standby leads.
//! `TUSKFISH_CHAOS_PARTITIONS` sets the rounds of each (3 here; `make chaos` runs 20). Each test
//! runs its own operators, watching its own namespace only.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::control_plane::{OwnCluster, put_kubeconfig};
use common::fault::{self, Fault, Toxiproxy};
use common::{Proc, TestNs, healthy_at, tuskfish_process};
use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tuskfish::api::{HISTORY_LIMIT, Release, RolloutResult, labels};

const APPS: [&str; 4] = ["ledger", "payments", "fx", "reports"];
const ENVS: [&str; 3] = ["dev", "test", "prod"];

/// A small deterministic generator (xorshift), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How many runs `var` asks for (`default` without), and this test's seeded generator
/// (`TUSKFISH_CHAOS_SEED`, or its own by `salt`): both printed, to replay a failure.
fn seeded(what: &str, var: &str, default: u64, salt: u64) -> (u64, Rng) {
    let n = env_number(var, default);
    let seed = env_number("TUSKFISH_CHAOS_SEED", salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    eprintln!("{what}: {n} ({var}), TUSKFISH_CHAOS_SEED={seed}");
    (n, Rng(seed))
}

fn operator(t: &TestNs, round: u64) -> Proc {
    // Leader election off: the point is a crash at any instant, not a hand-over.
    // This test's namespace only: the other fault tests run their own operators meanwhile.
    tuskfish_process(
        &["run", "--leader-elect=false", "--metrics-addr", "off", "--watch-namespace", &t.ns],
        &format!("tuskfish-{}-operator-{round}.log", t.ns),
    )
}

/// The ConfigMap only `version` of `app` has.
fn own_config(app: &str, version: &str) -> String {
    format!("{app}-conf-{}", version.replace('.', "-"))
}

async fn publish(t: &TestNs, app: &str, version: &str) {
    // Applied without waiting for the operator: it may be dead at this moment.
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion",
        "metadata": {"name": format!("{app}-{version}")},
        "spec": {"app": app, "version": version,
            "workload": {"image": format!("registry.example/{app}:{version}"),
                "ports": [{"name": "http", "containerPort": 8080}]},
            "manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": own_config(app, version)}, "data": {"version": version}}]}}))
        .await;
}

/// Every history entry of every Release of the test, as seen by a watch throughout the test:
/// `release → (version, start) → results seen`.
type Seen = Arc<Mutex<BTreeMap<String, BTreeMap<(String, i64), Vec<RolloutResult>>>>>;

fn remember_history(t: &TestNs) -> Seen {
    let seen = Seen::default();
    let record = seen.clone();
    let events = watcher(t.api::<Release>(), watcher::Config::default()).default_backoff().applied_objects();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(Ok(r)) = events.next().await {
            let mut m = record.lock().unwrap();
            let entries = m.entry(r.metadata.name.clone().unwrap_or_default()).or_default();
            for h in r.status.map(|s| s.history).unwrap_or_default() {
                let results = entries.entry((h.version, h.started_at.0.as_second())).or_default();
                if results.last() != Some(&h.result) {
                    results.push(h.result);
                }
            }
        }
    });
    seen
}

#[tokio::test]
async fn operator_killed_at_random_points_converges_without_duplicates() {
    let (kills, mut rng) = seeded("kills", "TUSKFISH_CHAOS_KILLS", 20, 0x7);
    let t = TestNs::without_operator("chaos").await;
    let seen = remember_history(&t);

    // Every app tracks every new version in every environment.
    let mut newest: BTreeMap<&str, u64> = APPS.iter().map(|a| (*a, 0)).collect();
    let mut op = operator(&t, 0);
    for env in ENVS {
        t.environment(env, json!({})).await;
    }
    for app in APPS {
        publish(&t, app, "1.0.0").await;
        for env in ENVS {
            t.release(&format!("{app}-{env}"), app, env, "", json!({"version": null, "track": ">=1.0.0"}))
                .await;
        }
    }

    for round in 1..=kills {
        // A new version of one app (three rollouts), then death at a random moment of them:
        // before the watch saw it, mid-apply, between apply and status, or mid health wait.
        let app = APPS[usize::try_from(rng.below(APPS.len() as u64)).unwrap()];
        let minor = newest[app] + 1;
        newest.insert(app, minor);
        publish(&t, app, &format!("1.{minor}.0")).await;
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        op.0.kill().unwrap();
        op.0.wait().unwrap();
        // The spec moves on while nobody runs: what the dead operator applied but did not record
        // must still be pruned by the next.
        if rng.below(2) == 0 {
            let minor = newest[app] + 1;
            newest.insert(app, minor);
            publish(&t, app, &format!("1.{minor}.0")).await;
        }
        op = operator(&t, round);
    }

    // The last operator is left running: everything converges on the newest versions.
    converged(&t, &t.client, &APPS, &ENVS, &newest, &seen).await;
}

/// The apps and environments of the network fault runs (fewer: each fault lasts seconds).
const FAULT_APPS: [&str; 2] = ["ledger", "payments"];
const FAULT_ENVS: [&str; 2] = ["dev", "prod"];

/// A seeded fault: latency, a stall (a partition that keeps connections open) or resets.
fn pick_fault(rng: &mut Rng) -> Fault {
    match rng.below(3) {
        0 => Fault::Latency(500 + rng.below(1500)),
        1 => Fault::Stall,
        _ => Fault::Reset,
    }
}

/// The operator through `kubeconfig`, with a short Lease (4 s, renewed every 0.5 s, given up after
/// 2 s without renewal) in the test namespace.
fn operator_via(t: &TestNs, kubeconfig: &std::path::Path, identity: &str, round: u64) -> Proc {
    let args = [
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "run",
            "--metrics-addr",
            "off",
            "--lease-namespace",
            &t.ns,
            "--watch-namespace",
            &t.ns,
            "--identity",
            identity,
        ][..],
        &common::SHORT_LEASE,
    ]
    .concat();
    let log = std::env::temp_dir().join(format!("tuskfish-{}-{identity}-{round}.log", t.ns));
    common::process(env!("CARGO_BIN_EXE_tuskfish"), &args, &log)
}

/// Writes `kubeconfig` to a file of the test's own.
fn kubeconfig_file(t: &TestNs, name: &str, kubeconfig: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tuskfish-{}-{name}.kubeconfig", t.ns));
    std::fs::write(&path, kubeconfig).unwrap();
    path
}

/// Seeded rounds of a new version published and, while it rolls out, a network fault on proxy
/// `link` for up to [`fault::LONGEST_FAULT`]; after each, `after_fault` (e.g. restart what the
/// fault made exit). Returns the newest minor of each app.
async fn fault_rounds(
    t: &TestNs,
    proxy: &Toxiproxy,
    link: &str,
    rounds: u64,
    rng: &mut Rng,
    mut after_fault: impl FnMut(u64),
) -> BTreeMap<&'static str, u64> {
    let mut newest: BTreeMap<&str, u64> = FAULT_APPS.iter().map(|a| (*a, 0)).collect();
    for app in FAULT_APPS {
        publish(t, app, "1.0.0").await;
        for env in FAULT_ENVS {
            t.release(&format!("{app}-{env}"), app, env, "", json!({"version": null, "track": ">=1.0.0"}))
                .await;
        }
    }
    for round in 1..=rounds {
        let app = FAULT_APPS[usize::try_from(rng.below(FAULT_APPS.len() as u64)).unwrap()];
        let minor = newest[app] + 1;
        newest.insert(app, minor);
        publish(t, app, &format!("1.{minor}.0")).await;
        tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
        let fault = pick_fault(rng);
        let lasts = Duration::from_millis(1000 + rng.below(fault::LONGEST_FAULT.as_millis() as u64 - 1000));
        eprintln!("round {round}: {fault:?} for {lasts:?} while {app} 1.{minor}.0 rolls out");
        proxy.start_fault(link, fault).await;
        tokio::time::sleep(lasts).await;
        proxy.end_fault(link, fault).await;
        after_fault(round);
    }
    newest
}

/// Network faults between the operator and its API server (through Toxiproxy) while rollouts go
/// on: latency, stalls longer than the renew deadline (the operator steps down and exits, and is
/// started again as its Deployment would) and resets. Afterwards nothing is lost, doubled or left
/// behind (see [`converged`]). `TUSKFISH_CHAOS_PARTITIONS` sets the rounds (3 here; `make chaos`
/// runs 20), `TUSKFISH_CHAOS_SEED` their seed.
#[tokio::test]
async fn network_faults_between_the_operator_and_its_api_server_lose_nothing() {
    let (rounds, mut rng) = seeded("fault rounds", "TUSKFISH_CHAOS_PARTITIONS", 3, 0x5);
    let proxy = Toxiproxy::start("operator").await;
    let direct = std::fs::read_to_string(common::kubeconfig()).unwrap();
    let listen = proxy.proxy("apiserver", &fault::server_of(&direct)).await;
    let t = TestNs::without_operator("faults").await;
    let kubeconfig = kubeconfig_file(&t, "proxied", &fault::through(&direct, &listen));
    let seen = remember_history(&t);
    for env in FAULT_ENVS {
        t.apply(
            json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": env},
            "spec": {"namespace": t.env_ns(env), "tier": "dev"}}),
        )
        .await;
    }
    let op = std::sync::Mutex::new(operator_via(&t, &kubeconfig, "op", 0));
    let newest = fault_rounds(&t, &proxy, "apiserver", rounds, &mut rng, |round| {
        let mut op = op.lock().unwrap();
        if let Some(exit) = op.0.try_wait().unwrap() {
            eprintln!("round {round}: the operator exited ({exit}); started again");
            *op = operator_via(&t, &kubeconfig, "op", round);
        }
    })
    .await;
    converged(&t, &t.client, &FAULT_APPS, &FAULT_ENVS, &newest, &seen).await;
}

/// Network faults between the hub and another cluster (its kubeconfig's server is a Toxiproxy in
/// front of the other API server) while rollouts go on there: afterwards nothing is lost, doubled
/// or left behind in that cluster.
#[tokio::test]
async fn network_faults_between_the_hub_and_another_cluster_lose_nothing() {
    let (rounds, mut rng) = seeded("fault rounds", "TUSKFISH_CHAOS_PARTITIONS", 3, 0x3);
    let remote = OwnCluster::start("faults").await;
    let proxy = Toxiproxy::start("remote").await;
    let listen = proxy.proxy("remote", &fault::server_of(&remote.kubeconfig())).await;
    let t = TestNs::without_operator("faults-far").await;
    let seen = remember_history(&t);
    let direct = kubeconfig_file(&t, "direct", &std::fs::read_to_string(common::kubeconfig()).unwrap());
    let _op = operator_via(&t, &direct, "op", 0);
    put_kubeconfig(&t.api(), "far-cluster", &fault::through(&remote.kubeconfig(), &listen)).await;
    for env in FAULT_ENVS {
        let cluster = json!({"name": "far", "kubeConfigSecretRef": {"name": "far-cluster"}});
        t.environment(env, json!({"cluster": cluster})).await;
    }
    let newest = fault_rounds(&t, &proxy, "remote", rounds, &mut rng, |_| {}).await;
    converged(&t, &remote.client().await, &FAULT_APPS, &FAULT_ENVS, &newest, &seen).await;
}

/// Two replicas, the leader's connection stalled (nothing gets through, nothing breaks): it stops
/// (steps down and exits) before the standby takes the Lease, so the two never write at once.
/// `TUSKFISH_CHAOS_PARTITIONS` sets the runs (1 here; `make chaos` 20).
#[tokio::test]
async fn a_stalled_leader_stops_before_a_standby_leads() {
    let runs = env_number("TUSKFISH_CHAOS_PARTITIONS", 1);
    let proxy = Toxiproxy::start("leader").await;
    let direct = std::fs::read_to_string(common::kubeconfig()).unwrap();
    let listen = proxy.proxy("leader", &fault::server_of(&direct)).await;
    let t = TestNs::without_operator("stalled-leader").await;
    let proxied = kubeconfig_file(&t, "proxied", &fault::through(&direct, &listen));
    let direct_file = kubeconfig_file(&t, "direct", &direct);
    for run in 0..runs {
        // A (through the proxy) leads, B (direct) stands by; the last run's B was killed, so A
        // takes the Lease once it lapses.
        let mut a = operator_via(&t, &proxied, "replica-a", run);
        t.wait_for::<Lease>("tuskfish", |l| holder(l) == Some("replica-a")).await;
        let b = operator_via(&t, &direct_file, "replica-b", run);
        // Work for the leader while it is cut off.
        let env = format!("dev{run}");
        t.apply(
            json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": env},
            "spec": {"namespace": t.env_ns(&env), "tier": "dev"}}),
        )
        .await;
        proxy.start_fault("leader", Fault::Stall).await;
        t.wait_for::<Lease>("tuskfish", |l| holder(l) == Some("replica-b")).await;
        proxy.end_fault("leader", Fault::Stall).await;
        let exit = a.0.try_wait().unwrap();
        assert!(
            exit.is_some_and(|e| !e.success()),
            "run {run}: the stalled leader still runs after the standby took over"
        );
        let stopped = logged_at(&t, "replica-a", run, "stepping down").await;
        let led = logged_at(&t, "replica-b", run, "became leader").await;
        assert!(stopped < led, "run {run}: replica-a stepped down at {stopped}, replica-b led at {led}");
        t.wait_env_ready(&env).await;
        drop(b);
    }
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
}

/// When `identity`'s log of run `run` first says `what`, waiting for it a while: a replica writes
/// the Lease before it logs that it leads, so the Lease can name it a moment before its log does.
async fn logged_at(t: &TestNs, identity: &str, run: u64, what: &str) -> jiff::Timestamp {
    let log = std::env::temp_dir().join(format!("tuskfish-{}-{identity}-{run}.log", t.ns));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(line) = text.lines().find(|l| l.contains(what)) {
            return line.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{what:?} not in {}:\n{text}", log.display());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// After a fault run: every Release of `apps` × `envs` converges on its app's newest version (of
/// `newest`, the minor of `1.N.0`), its history has no duplicated entry and lost none that `seen`
/// saw, and each environment namespace holds exactly the apps' objects of those versions: no
/// orphan, nothing elsewhere.
async fn converged(
    t: &TestNs,
    objects_in: &kube::Client,
    apps: &[&str],
    envs: &[&str],
    newest: &BTreeMap<&str, u64>,
    seen: &Seen,
) {
    let releases: Api<Release> = t.api();
    let waits = apps.iter().flat_map(|app| {
        let (t, version) = (&t, format!("1.{}.0", newest[app]));
        envs.iter().map(move |env| {
            let (name, converged) = (format!("{app}-{env}"), healthy_at(version.clone()));
            async move { t.wait_release(&name, converged).await }
        })
    });
    join_all(waits).await;

    for r in releases.list(&ListParams::default()).await.unwrap() {
        let name = r.metadata.name.clone().unwrap();
        let history = r.status.unwrap().history;
        // Newest first: the converged version succeeded, nothing is left in progress.
        assert_eq!(history[0].result, RolloutResult::Succeeded, "{name}: {history:#?}");
        assert!(history.iter().all(|h| h.result != RolloutResult::Progressing), "{name}: {history:#?}");
        // One entry per rollout: a rollout resumed by the next operator is not recorded twice.
        for pair in history.windows(2) {
            assert_ne!(pair[0].version, pair[1].version, "{name}: duplicated entry in {history:#?}");
        }
        let mut started: Vec<_> = history.iter().map(|h| (&h.version, h.started_at.0)).collect();
        started.sort();
        started.dedup();
        assert_eq!(started.len(), history.len(), "{name}: duplicated entry in {history:#?}");
        // Versions only go forward here (nothing was rolled back), so the history is ordered.
        let versions: Vec<semver::Version> = history.iter().map(|h| h.version.parse().unwrap()).collect();
        assert!(versions.windows(2).all(|v| v[0] > v[1]), "{name}: out of order {history:#?}");
        // No entry ever recorded went missing later (unless pushed out by the history limit), and
        // none went back from a result to "in progress".
        let now: BTreeMap<(String, i64), RolloutResult> =
            history.iter().map(|h| ((h.version.clone(), h.started_at.0.as_second()), h.result)).collect();
        let full = history.len() >= HISTORY_LIMIT;
        let oldest_kept = history.last().map(|h| h.started_at.0.as_second()).unwrap_or_default();
        for (entry, results) in seen.lock().unwrap().get(&name).into_iter().flatten() {
            match now.get(entry) {
                Some(result) => assert!(
                    results.iter().skip_while(|r| **r == RolloutResult::Progressing).all(|r| r == result),
                    "{name}: {entry:?} was {results:?} and is now {result:?}"
                ),
                None => assert!(
                    full && entry.1 <= oldest_kept,
                    "{name}: lost {entry:?} (seen as {results:?}); now {history:#?}"
                ),
            }
        }
    }

    // Each environment namespace holds exactly this test's apps, each at its newest version, and no
    // Deployment of this test landed anywhere else.
    let selector = format!("{}={}", labels::RELEASE_NAMESPACE, t.ns);
    let all: Vec<Deployment> = Api::<Deployment>::all(objects_in.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items;
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for d in all {
        let ns = d.metadata.namespace.clone().unwrap();
        let name = d.metadata.name.clone().unwrap();
        let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
        assert!(seen.insert((ns.clone(), name.clone()), image).is_none(), "{ns}/{name} twice");
    }
    let want: BTreeMap<(String, String), String> = envs
        .iter()
        .flat_map(|env| {
            apps.iter().map(|app| {
                ((t.env_ns(env), app.to_string()), format!("registry.example/{app}:1.{}.0", newest[app]))
            })
        })
        .collect();
    assert_eq!(seen, want);

    // No orphan: each environment holds the ConfigMap of each app's newest version, and no other.
    let configs: std::collections::BTreeSet<(String, String)> =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::all(objects_in.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.metadata.namespace.unwrap(), c.metadata.name.unwrap()))
            .collect();
    let want: std::collections::BTreeSet<(String, String)> = envs
        .iter()
        .flat_map(|env| {
            apps.iter().map(|app| (t.env_ns(env), own_config(app, &format!("1.{}.0", newest[app]))))
        })
        .collect();
    assert_eq!(configs, want, "objects no Release wants are left behind");
}
