#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! `tuskfish run --shards 3` as real processes against the local control plane: three replicas
//! share three shards of the pipeline namespaces, each Release is handled by the holder of its
//! shard only; a replica killed mid-rollout has its shard taken over and the rollout finished;
//! scaling 3 → 2 → 4 re-balances with every shard held by exactly one live replica.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{Proc, TestNs, free_port, healthy_at, http_get, metric_of, tuskfish_process};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use serde_json::json;
use tuskfish::api::{Release, ReleaseStatus, find_condition};
use tuskfish::plan::shards::shard_of;

const SHARDS: u16 = 3;

struct Replica {
    name: &'static str,
    port: u16,
    proc: Proc,
}

fn replica(leases: &TestNs, name: &'static str) -> Replica {
    replica_of(leases, name, SHARDS)
}

/// Where replica `name` records its reconciles.
fn trace_of(leases: &TestNs, name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tuskfish-{}-{name}.trace", leases.ns))
}

fn replica_of(leases: &TestNs, name: &'static str, shards: u16) -> Replica {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (count, trace) = (shards.to_string(), trace_of(leases, name).display().to_string());
    let args = [
        &[
            "run",
            "--shards",
            &count,
            "--metrics-addr",
            &addr,
            "--lease-namespace",
            &leases.ns,
            "--identity",
            name,
        ][..],
        &["--reconcile-trace", &trace],
        &common::SHORT_LEASE[..],
    ]
    .concat();
    let proc = tuskfish_process(&args, &format!("tuskfish-{}-{name}.log", leases.ns));
    Replica { name, port, proc }
}

fn log_of(leases: &TestNs, name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tuskfish-{}-{name}.log", leases.ns))
}

/// SIGTERM: the replica leaves gracefully.
fn terminate(r: &Replica) {
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &r.proc.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Every reconcile of every replica named, from their traces (those dropped unfinished included,
/// up to when they were dropped): no object was ever reconciled twice at once, by two replicas or
/// by two shards of one. Each line is one reconcile: begin and end in Unix µs, kind, object.
fn assert_never_two_at_once(leases: &TestNs, names: &[&str]) -> usize {
    let mut by_object: BTreeMap<String, Vec<(u128, u128, String)>> = BTreeMap::new();
    for name in names {
        let text = std::fs::read_to_string(trace_of(leases, name)).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (b, e) = (f[0].parse().unwrap(), f[1].parse().unwrap());
            by_object.entry(format!("{} {}", f[2], f[3])).or_default().push((b, e, line.to_string()));
        }
    }
    let mut total = 0;
    for (object, mut spans) in by_object {
        total += spans.len();
        spans.sort();
        let mut latest: Option<&(u128, u128, String)> = None;
        for span in &spans {
            if let Some(before) = latest {
                assert!(span.0 >= before.1, "{object} was reconciled twice at once: {before:?} and {span:?}");
            }
            if latest.is_none_or(|l| span.1 > l.1) {
                latest = Some(span);
            }
        }
    }
    total
}

/// Who holds each shard's Lease now (an expired record still names its last holder).
async fn holders(leases: &TestNs) -> BTreeMap<u16, String> {
    let all = leases.api::<Lease>().list(&ListParams::default()).await.unwrap();
    (0..SHARDS)
        .filter_map(|s| {
            let name = format!("tuskfish-shard-{s}-of-{SHARDS}");
            let lease = all.items.iter().find(|l| l.metadata.name.as_deref() == Some(name.as_str()))?;
            let holder = lease.spec.as_ref()?.holder_identity.clone().filter(|h| !h.is_empty())?;
            Some((s, holder))
        })
        .collect()
}

/// Waits until every shard's Lease names one of `live`, and each live replica serves (by its own
/// `tuskfish_leader`) exactly the shards whose Lease names it: no shard served twice, none lost.
/// Returns the holders.
async fn settled(leases: &TestNs, live: &[&Replica]) -> BTreeMap<u16, String> {
    for r in live {
        common::wait_listening(r.port, "a replica's metrics endpoint to answer").await;
    }
    common::within("every shard held by exactly one live replica", async {
        loop {
            let h = holders(leases).await;
            let names: BTreeSet<&str> = live.iter().map(|r| r.name).collect();
            let all_live = h.len() == usize::from(SHARDS) && h.values().all(|n| names.contains(n.as_str()));
            let mut serving = 0.0;
            let mut agree = true;
            for r in live {
                let text = http_get(r.port, "/metrics").await.1;
                let held = metric_of(&text, "tuskfish_leader");
                serving += held;
                agree &= held as usize == h.values().filter(|n| *n == r.name).count();
            }
            // Balanced: holdings differ by one at most.
            let per: Vec<usize> = live.iter().map(|r| h.values().filter(|n| *n == r.name).count()).collect();
            let balanced = per.iter().max().unwrap_or(&0) - per.iter().min().unwrap_or(&0) <= 1;
            if all_live && agree && balanced && serving == f64::from(SHARDS) {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

/// Who reported on Release `name` of `t`: the reporting instances of its Events.
async fn reporters(t: &TestNs, name: &str) -> BTreeSet<String> {
    let events = t.api::<Event>().list(&ListParams::default()).await.unwrap();
    events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance.clone())
        .collect()
}

fn verifying(s: &ReleaseStatus) -> bool {
    find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "Verifying")
}

#[tokio::test]
async fn three_replicas_share_the_pipelines_hand_over_and_rebalance() {
    let leases = TestNs::without_operator("shards").await;
    // Pipelines until every shard has two (their names are random).
    let mut pipelines: Vec<TestNs> = Vec::new();
    while (0..SHARDS).any(|s| pipelines.iter().filter(|p| shard_of(&p.ns, SHARDS) == s).count() < 2) {
        let p = TestNs::without_operator("shard-pipe").await;
        if pipelines.iter().filter(|q| shard_of(&q.ns, SHARDS) == shard_of(&p.ns, SHARDS)).count() < 2 {
            pipelines.push(p);
        }
    }
    let (a, b, c) =
        (replica(&leases, "replica-a"), replica(&leases, "replica-b"), replica(&leases, "replica-c"));
    let held = settled(&leases, &[&a, &b, &c]).await;
    let server = Receiver::start().await;
    for p in &pipelines {
        server.answer(&format!("{}/1.1.0", p.ns), &[(503, "warming up")]);
        let check = json!({"name": "api", "http": {"url": format!("http://{}/{}/${{TUSKFISH_VERSION}}", server.host(), p.ns),
            "retries": 100, "interval": "1s", "timeout": "2s"}});
        p.environment("dev", json!({"verify": [check]})).await;
        p.app_version("pay", "1.0.0", json!({})).await;
        server.answer(&format!("{}/1.0.0", p.ns), &[(200, "ok")]);
        p.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    }

    for p in &pipelines {
        p.wait_release("pay-dev", healthy_at("1.0.0")).await;
    }
    // Each Release was handled by the holder of its pipeline's shard, and by nobody else.
    for p in &pipelines {
        let holder = &held[&shard_of(&p.ns, SHARDS)];
        assert_eq!(reporters(p, "pay-dev").await, BTreeSet::from([holder.clone()]), "{}", p.ns);
    }

    // Mid-rollout (1.1.0 healthy, its check failing), the holder of that pipeline's shard dies.
    let victim_pipe = &pipelines[0];
    let shard = shard_of(&victim_pipe.ns, SHARDS);
    let victim = held[&shard].clone();
    victim_pipe.app_version("pay", "1.1.0", json!({})).await;
    victim_pipe.set_version("pay-dev", "1.1.0").await;
    victim_pipe.wait_for::<Release>("pay-dev", |r| r.status.as_ref().is_some_and(verifying)).await;
    let mut replicas = vec![a, b, c];
    let at = replicas.iter().position(|r| r.name == victim).unwrap();
    let mut dead = replicas.remove(at);
    let killed = Instant::now();
    dead.proc.0.kill().unwrap();
    dead.proc.0.wait().unwrap();
    let live: Vec<&Replica> = replicas.iter().collect();
    let held = settled(&leases, &live).await;
    eprintln!("shard {shard} taken over {:?} after its holder was killed (lease 4 s)", killed.elapsed());
    let heir = held[&shard].clone();
    assert_ne!(heir, victim);
    // The check passes now: the heir finishes the rollout the dead replica began.
    server.answer(&format!("{}/1.1.0", victim_pipe.ns), &[(200, "ok")]);
    let r = victim_pipe.wait_release("pay-dev", healthy_at("1.1.0")).await;
    let history = r.status.unwrap().history;
    assert_eq!(
        history.iter().filter(|h| h.version == "1.1.0").count(),
        1,
        "one rollout of 1.1.0: {history:#?}"
    );
    assert!(reporters(victim_pipe, "pay-dev").await.contains(&heir));

    // 2 → 4: two more replicas; the shards spread out again, and every pipeline still deploys.
    replicas.push(replica(&leases, "replica-d"));
    replicas.push(replica(&leases, "replica-e"));
    let live: Vec<&Replica> = replicas.iter().collect();
    let held = settled(&leases, &live).await;
    assert_eq!(held.values().collect::<BTreeSet<_>>().len(), usize::from(SHARDS), "{held:?}");
    deploy_everywhere(&pipelines, &server, "1.2.0").await;
    for p in &pipelines {
        // Since the last hand-over, only the shard's holder reports on its Releases.
        let holder = &held[&shard_of(&p.ns, SHARDS)];
        // Events are written in the background: the Release may be healthy a moment before.
        let of_1_2 = common::within("the rollout's Events", async {
            loop {
                let events = p.api::<Event>().list(&ListParams::default()).await.unwrap();
                let by: BTreeSet<String> = events
                    .items
                    .iter()
                    .filter(|e| e.note.as_deref().is_some_and(|n| n.contains("1.2.0")))
                    .filter_map(|e| e.reporting_instance.clone())
                    .collect();
                if !by.is_empty() {
                    return by;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert_eq!(of_1_2, BTreeSet::from([holder.clone()]), "{}", p.ns);
    }

    // A rolling update to `--shards 4`: the new replica is younger than those of 3, so it serves
    // nothing beside them; once they are gone it serves all four shards, and everything deploys.
    let four = replica_of(&leases, "replica-four", 4);
    logged(&log_of(&leases, "replica-four"), "serving no shard until they are gone").await;
    let all = leases.api::<Lease>().list(&ListParams::default()).await.unwrap();
    assert!(
        !all.items.iter().any(|l| l.metadata.name.as_deref().unwrap_or_default().ends_with("-of-4")),
        "it served beside them"
    );
    for r in &replicas {
        terminate(r);
    }
    common::within("the replica of 4 shards to serve them all", async {
        loop {
            let text = http_get(four.port, "/metrics").await.1;
            if metric_of(&text, "tuskfish_leader") == 4.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    deploy_everywhere(&pipelines, &server, "1.3.0").await;

    // Back to one leader (`--shards` dropped): it waits while shards are served, and leads only
    // once every shard's Lease is given up.
    let single = tuskfish_process(
        &[
            &["run", "--metrics-addr", "off", "--lease-namespace", &leases.ns, "--identity", "single"][..],
            &common::SHORT_LEASE[..],
        ]
        .concat(),
        &format!("tuskfish-{}-single.log", leases.ns),
    );
    logged(&log_of(&leases, "single"), "the operator runs another way").await;
    let free =
        |l: &Lease| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_none_or(str::is_empty);
    assert!(
        leases.api::<Lease>().get_opt("tuskfish").await.unwrap().as_ref().is_none_or(free),
        "it led beside the shards"
    );
    terminate(&four);
    leases.wait_lease_holder(Some("single")).await;
    let all = leases.api::<Lease>().list(&ListParams::default()).await.unwrap();
    let still: Vec<String> = all
        .items
        .iter()
        .filter(|l| l.metadata.name.as_deref().unwrap_or_default().contains("-shard-") && !free(l))
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert!(still.is_empty(), "the single leader took over while {still:?} were held");
    drop(single);

    // Over the whole run, no object was reconciled by two replicas at once.
    let names = ["replica-a", "replica-b", "replica-c", "replica-d", "replica-e", "replica-four"];
    let reconciles = assert_never_two_at_once(&leases, &names);
    assert!(reconciles > 100, "the traces hold {reconciles} reconciles");
}

/// Publishes `version` (its check passing) in every pipeline, sets it on its Release and waits
/// until every Release runs it healthy.
async fn deploy_everywhere(pipelines: &[TestNs], server: &Receiver, version: &'static str) {
    for p in pipelines {
        server.answer(&format!("{}/{version}", p.ns), &[(200, "ok")]);
        p.app_version("pay", version, json!({})).await;
        p.set_version("pay-dev", version).await;
    }
    for p in pipelines {
        p.wait_release("pay-dev", healthy_at(version)).await;
    }
}

/// Waits until the log file `log` has a line containing `text`.
async fn logged(log: &std::path::Path, text: &str) {
    common::within("the replica to log what it decided", async {
        while !std::fs::read_to_string(log).unwrap_or_default().contains(text) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}
