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

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proc, TestNs, healthy_at, tuskfish_process};
use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
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

fn operator(t: &TestNs, round: u64) -> Proc {
    // Leader election off: the point is a crash at any instant, not a hand-over.
    tuskfish_process(
        &["run", "--leader-elect=false", "--metrics-addr", "off"],
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
    let kills = env_number("TUSKFISH_CHAOS_KILLS", 20);
    let seed = env_number("TUSKFISH_CHAOS_SEED", 0x7u64.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    eprintln!("chaos: {kills} kills, TUSKFISH_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
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
    let releases: Api<Release> = t.api();
    let waits = APPS.iter().flat_map(|app| {
        let (t, version) = (&t, format!("1.{}.0", newest[app]));
        ENVS.iter().map(move |env| {
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
    let all: Vec<Deployment> = Api::<Deployment>::all(t.client.clone())
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
    let want: BTreeMap<(String, String), String> = ENVS
        .iter()
        .flat_map(|env| {
            APPS.iter().map(|app| {
                ((t.env_ns(env), app.to_string()), format!("registry.example/{app}:1.{}.0", newest[app]))
            })
        })
        .collect();
    assert_eq!(seen, want);

    // No orphan: each environment holds the ConfigMap of each app's newest version, and no other.
    let configs: std::collections::BTreeSet<(String, String)> =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::all(t.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.metadata.namespace.unwrap(), c.metadata.name.unwrap()))
            .collect();
    let want: std::collections::BTreeSet<(String, String)> = ENVS
        .iter()
        .flat_map(|env| {
            APPS.iter().map(|app| (t.env_ns(env), own_config(app, &format!("1.{}.0", newest[app]))))
        })
        .collect();
    assert_eq!(configs, want, "objects no Release wants are left behind");
}
