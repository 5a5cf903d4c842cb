//! The large run: `BENCH_LARGE_APPS` apps (default 1,000) × 10 environments, spread over
//! `BENCH_LARGE_PIPELINES` pipeline namespaces (default 10; shards split pipeline namespaces, so
//! one namespace would give them nothing to split). The same objects server-side-applied directly
//! (the baseline), then tuskfish with one replica, then `--shards 3` on three replicas.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;

use super::{
    ENVS, Operator, World, baseline, free_port, metric, metrics, peak_rss_mib, percentile, proc_stat,
    publish_latency, remove_namespaces, server_writes, spawn, tuskfish_converge,
};

/// One tuskfish run of the large size.
pub(crate) struct Run {
    pub replicas: usize,
    pub secs: f64,
    /// Per replica.
    pub cpu_s: Vec<f64>,
    pub peak_rss_mib: Vec<f64>,
    /// Everyone's mutating requests (the API server's count) during the converge, per Release.
    pub writes_per_release: f64,
    /// New AppVersion → rollout start (Deployments applied), ms, sorted.
    pub reaction_ms: Vec<f64>,
    /// At rest, all replicas: writes other than to Leases, and Lease renewals, per minute.
    pub steady_writes_per_min: f64,
    pub steady_lease_writes_per_min: f64,
}

pub(crate) struct Large {
    pub n: usize,
    pub pipelines: usize,
    pub baseline_s: f64,
    pub runs: Vec<Run>,
}

fn worlds(tag: &str, pipelines: usize, apps: usize) -> Vec<World> {
    (0..pipelines).map(|p| World { ns: format!("{tag}-p{p}"), envs: ENVS, apps: apps / pipelines }).collect()
}

/// `shards` replicas running `--shards shards` (leader election on: a Lease per shard), or one
/// replica without leader election; waits until every shard is served.
async fn replicas(tag: &str, shards: Option<u16>) -> Vec<Operator> {
    let Some(n) = shards else {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let proc = spawn(
            &["run", "--leader-elect=false", "--metrics-addr", &addr],
            &format!("tuskfish-bench-operator-{tag}.log"),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        return vec![Operator { proc, port }];
    };
    let count = n.to_string();
    let lease = format!("bench-{tag}");
    let ops: Vec<Operator> = (0..n)
        .map(|i| {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let identity = format!("r{i}");
            let args = [
                "run",
                "--shards",
                &count,
                "--metrics-addr",
                &addr,
                "--lease-namespace",
                "default",
                "--lease-name",
                &lease,
                "--identity",
                &identity,
            ];
            Operator { proc: spawn(&args, &format!("tuskfish-bench-operator-{tag}-{i}.log")), port }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut held = 0.0;
        for op in &ops {
            if tokio::net::TcpStream::connect(("127.0.0.1", op.port)).await.is_ok() {
                held += metric(&metrics(op.port).await, "tuskfish_leader");
            }
        }
        if held == f64::from(n) {
            return ops;
        }
        assert!(Instant::now() < deadline, "the shards were not all served within 2 min");
    }
}

async fn sum_metric(ops: &[Operator], name: &str) -> f64 {
    futures::stream::iter(ops)
        .then(|op| async move { metric(&metrics(op.port).await, name) })
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum()
}

async fn run_tuskfish(
    client: &Client,
    apps: usize,
    pipelines: usize,
    shards: Option<u16>,
    steady: Duration,
) -> Run {
    let tag = format!("l{}", shards.unwrap_or(1));
    let ws = worlds(&tag, pipelines, apps);
    let refs: Vec<&World> = ws.iter().collect();
    let ops = replicas(&tag, shards).await;
    let pids: Vec<u32> = ops.iter().map(|o| o.proc.0.id()).collect();
    let cpu0: Vec<f64> = pids.iter().map(|p| proc_stat(*p).0).collect();
    let w0 = server_writes(client).await;
    let (secs, _) = tuskfish_converge(client, &refs, &pids).await;
    let peak: Vec<f64> = pids.iter().map(|p| peak_rss_mib(*p)).collect();
    let cpu_s: Vec<f64> = pids.iter().zip(&cpu0).map(|(p, c0)| proc_stat(*p).0 - c0).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count: usize = ws.iter().map(World::count).sum();
    let writes_per_release = (server_writes(client).await - w0) / count as f64;
    eprintln!("bench: large, {} replica(s): converged in {secs:.1} s; reaction", ops.len());
    let reaction_ms = publish_latency(client, &ws[0], 10).await.applied;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes = r#"tuskfish_api_requests_total{kind="write"}"#;
    let leases = r#"tuskfish_api_requests_total{kind="lease"}"#;
    let (s0, l0) = (sum_metric(&ops, writes).await, sum_metric(&ops, leases).await);
    let t0 = Instant::now();
    tokio::time::sleep(steady).await;
    let (s1, l1) = (sum_metric(&ops, writes).await, sum_metric(&ops, leases).await);
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    eprintln!("bench: large, {} replica(s): removing the run", ops.len());
    let mut names: Vec<String> = ws.iter().map(|w| w.ns.clone()).collect();
    remove_namespaces(client, names.clone()).await;
    names = ws.iter().flat_map(World::env_namespaces).collect();
    remove_namespaces(client, names).await;
    Run {
        replicas: ops.len(),
        secs,
        cpu_s,
        peak_rss_mib: peak,
        writes_per_release,
        reaction_ms,
        steady_writes_per_min: (s1 - s0) / minutes,
        steady_lease_writes_per_min: (l1 - l0) / minutes,
    }
}

pub(crate) async fn run(client: &Client, apps: usize, pipelines: usize, steady: Duration) -> Large {
    let base = worlds("lb", pipelines, apps);
    let refs: Vec<&World> = base.iter().collect();
    eprintln!("bench: large, N = {}: the baseline", apps * ENVS);
    let baseline_s = baseline(client, &refs).await;
    remove_namespaces(client, base.iter().flat_map(World::env_namespaces).collect()).await;
    let mut runs = Vec::new();
    for shards in [None, Some(3)] {
        eprintln!("bench: large, N = {}: tuskfish, shards {shards:?}", apps * ENVS);
        runs.push(run_tuskfish(client, apps, pipelines, shards, steady).await);
    }
    Large { n: base.iter().map(World::count).sum(), pipelines, baseline_s, runs }
}

/// The large run's section of docs/benchmarks.md.
pub(crate) fn section(l: &Large) -> String {
    let mut md = format!(
        "\nN = {} Releases in {} pipeline namespaces ({} apps × {ENVS} environments each), raw SSA baseline {:.1} s:\n\n\
         | replicas | converge (s) | ratio to raw SSA | operator CPU-s per replica | peak RSS per replica (MiB) | server writes / Release | reaction p50 / p99 (ms) | writes/min at rest (Lease renewals/min) |\n|---|---|---|---|---|---|---|---|\n",
        l.n,
        l.pipelines,
        l.n / l.pipelines / ENVS,
        l.baseline_s
    );
    let join = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" / ");
    for r in &l.runs {
        let what = if r.replicas == 1 {
            "1".to_string()
        } else {
            format!("{} (--shards {})", r.replicas, r.replicas)
        };
        md.push_str(&format!(
            "| {what} | {:.1} | {:.2} | {} | {} | {:.1} | {:.0} / {:.0} | {:.1} ({:.0}) |\n",
            r.secs,
            r.secs / l.baseline_s,
            join(&r.cpu_s),
            join(&r.peak_rss_mib),
            r.writes_per_release,
            percentile(&r.reaction_ms, 0.5),
            percentile(&r.reaction_ms, 0.99),
            r.steady_writes_per_min,
            r.steady_lease_writes_per_min,
        ));
    }
    md
}
