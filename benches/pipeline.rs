//! `make bench`: tuskfish against a baseline that server-side-applies the same rendered objects
//! directly, on the local control plane (pods run by kwok's simulated kubelets). Prints a summary table and writes
//! `docs/benchmarks.md` and `docs/benchmarks.svg`. Figures, not pass/fail: nothing here asserts a
//! target. Needs `TUSKFISH_BENCH_KUBECONFIG` (hack/bench.sh starts a fresh control plane) and the
//! release binary (`target/release/tuskfish`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tuskfish::api::{AppVersion, Environment, Phase, Release};
use tuskfish::client::Target;
use tuskfish::render::{KindCatalog, render};
use tuskfish::telemetry::RequestCounter;

// Not benches/flux.rs: cargo would take that for a bench target of its own.
#[path = "pipeline/audit.rs"]
mod audit;
#[path = "pipeline/flux.rs"]
mod flux;
#[path = "pipeline/large.rs"]
mod large;
#[path = "pipeline/products.rs"]
mod products;

/// Applies in flight at once, for the baseline and for the Releases (the operator's default
/// `--concurrency` is the same).
const APPLY_CONCURRENCY: usize = 16;
const ENVS: usize = 10;

struct NoCatalog;

impl KindCatalog for NoCatalog {
    fn resolve(&self, _: &GroupVersionKind) -> Option<(kube::api::ApiResource, bool)> {
        None
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A deterministic generator (fixed seed) for the choices the benchmark makes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn kubeconfig() -> String {
    std::env::var("TUSKFISH_BENCH_KUBECONFIG").expect("TUSKFISH_BENCH_KUBECONFIG: run `make bench`")
}

fn binary() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/tuskfish");
    assert!(std::path::Path::new(path).exists(), "{path} missing: run `make bench` (it builds it)");
    path.to_string()
}

fn spawn(args: &[&str], log: &str) -> Proc {
    let kc = kubeconfig();
    let log = std::fs::File::create(std::env::temp_dir().join(log)).unwrap();
    Proc(
        Command::new(binary())
            .args(["--kubeconfig", &kc])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    raw
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Quantile from a Prometheus histogram's cumulative buckets (the bucket's upper bound).
fn histogram_quantile(text: &str, name: &str, q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")) && l.contains("controller=\"release\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets.iter().find(|(_, c)| *c >= q * total).map_or(f64::NAN, |b| b.0)
}

fn proc_stat(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, rss_kib / 1024.0)
}

/// Peak RSS (MiB) of a process: its high-water mark (`VmHWM`), since its start or the last reset.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU seconds a process of the control plane has used so far (0 without `TUSKFISH_BENCH_STATE`).
fn control_plane_cpu(name: &str) -> f64 {
    let Ok(dir) = std::env::var("TUSKFISH_BENCH_STATE") else { return 0.0 };
    std::fs::read_to_string(format!("{dir}/{name}.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .map_or(0.0, |pid| proc_stat(pid).0)
}

/// CPU seconds used so far by the processes that share the machine during a converge: the control
/// plane (pids from `TUSKFISH_BENCH_STATE`, written by hack/cluster-up.sh: scheduler and kwok included) and,
/// when running, the operator.
#[derive(Clone, Copy, Default)]
struct Cpu {
    apiserver: f64,
    etcd: f64,
    kcm: f64,
    scheduler: f64,
    kwok: f64,
    operator: f64,
}

impl Cpu {
    /// `operators`: the pids whose CPU is summed in `operator`.
    fn now(operators: &[u32]) -> Self {
        Self {
            apiserver: control_plane_cpu("apiserver"),
            etcd: control_plane_cpu("etcd"),
            kcm: control_plane_cpu("kcm"),
            scheduler: control_plane_cpu("scheduler"),
            kwok: control_plane_cpu("kwok"),
            operator: operators.iter().map(|pid| proc_stat(*pid).0).sum(),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            apiserver: self.apiserver - before.apiserver,
            etcd: self.etcd - before.etcd,
            kcm: self.kcm - before.kcm,
            scheduler: self.scheduler - before.scheduler,
            kwok: self.kwok - before.kwok,
            operator: self.operator - before.operator,
        }
    }

    fn cell(&self) -> String {
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0}",
            self.apiserver, self.etcd, self.kcm, self.scheduler, self.kwok, self.operator
        )
    }
}

/// Deletes the namespaces of a finished run and waits until they are gone, so that the next run
/// starts on the same footing (no objects of the previous one left for the controllers to carry).
async fn remove_namespaces(client: &Client, names: Vec<String>) {
    let api: Api<Namespace> = Api::all(client.clone());
    for n in &names {
        let _ = api.delete(n, &Default::default()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    for n in &names {
        while api.get_opt(n).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "namespace {n} still there after 10 min");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The world of one run: `envs` × `apps` Releases in a pipeline namespace of its own.
struct World {
    ns: String,
    envs: usize,
    apps: usize,
}

impl World {
    fn env_ns(&self, e: usize) -> String {
        format!("{}-e{e}", self.ns)
    }

    fn environment(&self, e: usize) -> Environment {
        let mut env: Environment = serde_json::from_value(json!({
            "apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": format!("e{e}"), "namespace": self.ns},
            "spec": {"namespace": self.env_ns(e), "tier": "dev", "variables": {"LOG_LEVEL": "info"}}
        }))
        .unwrap();
        env.metadata.namespace = Some(self.ns.clone());
        env
    }

    fn app_version(&self, a: usize, version: &str) -> AppVersion {
        serde_json::from_value(json!({
            "apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion",
            "metadata": {"name": format!("app{a}-{version}"), "namespace": self.ns},
            "spec": {"app": format!("app{a}"), "version": version,
                "workload": {"image": format!("registry.example/app{a}:{version}"), "ports": [{"name": "http", "containerPort": 8080}]}}
        }))
        .unwrap()
    }

    fn release(&self, e: usize, a: usize) -> Release {
        serde_json::from_value(json!({
            "apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": format!("app{a}-e{e}"), "namespace": self.ns},
            "spec": {"app": format!("app{a}"), "environment": format!("e{e}"), "track": ">=1.0.0"}
        }))
        .unwrap()
    }

    fn env_namespaces(&self) -> Vec<String> {
        (0..self.envs).map(|e| self.env_ns(e)).collect()
    }

    fn count(&self) -> usize {
        self.envs * self.apps
    }
}

/// API resources by kind, discovered once: a per-object discovery call would slow every apply.
static RESOURCES: std::sync::Mutex<BTreeMap<String, kube::api::ApiResource>> =
    std::sync::Mutex::new(BTreeMap::new());

async fn resource_of(client: &Client, gvk: &GroupVersionKind) -> kube::api::ApiResource {
    let key = format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind);
    if let Some(ar) = RESOURCES.lock().unwrap().get(&key) {
        return ar.clone();
    }
    let (ar, _) = kube::discovery::pinned_kind(client, gvk).await.unwrap();
    RESOURCES.lock().unwrap().insert(key, ar.clone());
    ar
}

async fn ssa(client: &Client, obj: Value) {
    let gvk = {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap())
    };
    let ar = resource_of(client, &gvk).await;
    let ns = obj["metadata"]["namespace"].as_str().map(String::from);
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&obj)).await.unwrap();
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await;
}

/// What the bench's own watches follow.
trait Watchable:
    kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static
{
}
impl<
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
> Watchable for K
{
}

/// Waits until `done` holds for `want` distinct objects seen by a watch (an event stream, not a poll).
async fn wait_until<K>(api: Api<K>, config: watcher::Config, want: usize, done: impl Fn(&K) -> bool)
where
    K: Watchable,
{
    let mut ready: HashSet<String> = HashSet::new();
    let mut events = watcher(api, config).default_backoff().applied_objects().boxed();
    while ready.len() < want {
        let Some(obj) =
            tokio::time::timeout(Duration::from_secs(600), events.try_next()).await.unwrap().unwrap()
        else {
            panic!("watch ended")
        };
        let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        if done(&obj) {
            ready.insert(key);
        } else {
            ready.remove(&key);
        }
    }
}

fn deployment_ready(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else { return false };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
}

/// The same objects tuskfish would render for `worlds`, applied directly; returns seconds to all
/// ready.
async fn baseline(client: &Client, worlds: &[&World]) -> f64 {
    let mut objects = Vec::new();
    for w in worlds {
        for e in 0..w.envs {
            create_namespace(client, &w.env_ns(e)).await;
        }
        for e in 0..w.envs {
            let env = w.environment(e);
            for a in 0..w.apps {
                let rendered =
                    render(&w.app_version(a, "1.0.0"), &env, &w.release(e, a), &[], &NoCatalog).unwrap();
                for o in rendered.objects {
                    let mut body = o.body;
                    // Not tuskfish's: keep the operator's watches out of it.
                    body["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("bench-baseline");
                    objects.push(body);
                }
            }
        }
    }
    let started = Instant::now();
    stream::iter(objects)
        .for_each_concurrent(APPLY_CONCURRENCY, |o| async move { ssa(client, o).await })
        .await;
    let selector = "app.kubernetes.io/managed-by=bench-baseline";
    let api: Api<Deployment> = Api::all(client.clone());
    let prefixes: Vec<String> = worlds.iter().map(|w| format!("{}-e", w.ns)).collect();
    let want = worlds.iter().map(|w| w.count()).sum();
    wait_until(api, watcher::Config::default().labels(selector), want, move |d: &Deployment| {
        d.namespace().is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
            && deployment_ready(d)
    })
    .await;
    started.elapsed().as_secs_f64()
}

/// The pipeline namespace of `w`, its Environments (Ready) and AppVersions (published): what a
/// converge starts from (not timed).
async fn prepare(client: &Client, w: &World) {
    create_namespace(client, &w.ns).await;
    for e in 0..w.envs {
        ssa(client, serde_json::to_value(w.environment(e)).unwrap()).await;
    }
    stream::iter(0..w.apps)
        .for_each_concurrent(APPLY_CONCURRENCY, |a| async move {
            ssa(client, serde_json::to_value(w.app_version(a, "1.0.0")).unwrap()).await
        })
        .await;
    let envs: Api<Environment> = Api::namespaced(client.clone(), &w.ns);
    wait_until(envs, watcher::Config::default(), w.envs, |e: &Environment| {
        e.status.as_ref().is_some_and(|s| tuskfish::api::is_true(&s.conditions, "Ready"))
    })
    .await;
    let avs: Api<AppVersion> = Api::namespaced(client.clone(), &w.ns);
    wait_until(avs, watcher::Config::default(), w.apps, |a: &AppVersion| {
        a.status.as_ref().is_some_and(|s| s.spec_hash.is_some())
    })
    .await;
}

/// Environments and AppVersions first (not timed), then all Releases of all `worlds` at once;
/// seconds to all Healthy, and the CPU the processes (`operators`: the operator's) used meanwhile.
async fn tuskfish_converge(client: &Client, worlds: &[&World], operators: &[u32]) -> (f64, Cpu) {
    for w in worlds {
        prepare(client, w).await;
    }

    let started = Instant::now();
    let cpu0 = Cpu::now(operators);
    let releases: Vec<Value> = worlds
        .iter()
        .flat_map(|w| (0..w.envs).flat_map(move |e| (0..w.apps).map(move |a| (w, e, a))))
        .map(|(w, e, a)| serde_json::to_value(w.release(e, a)).unwrap())
        .collect();
    stream::iter(releases)
        .for_each_concurrent(APPLY_CONCURRENCY, |r| async move { ssa(client, r).await })
        .await;
    let pipelines: HashSet<String> = worlds.iter().map(|w| w.ns.clone()).collect();
    let want = worlds.iter().map(|w| w.count()).sum();
    let api: Api<Release> = Api::all(client.clone());
    wait_until(api, watcher::Config::default(), want, move |r: &Release| {
        r.namespace().is_some_and(|n| pipelines.contains(&n))
            && r.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Healthy))
    })
    .await;
    (started.elapsed().as_secs_f64(), Cpu::now(operators).since(cpu0))
}

/// API server CPU per request, by kind of request, measured on this server with nothing else
/// running: what each write tuskfish adds to a rollout costs next to the writes of the rollout
/// itself. `sample` is a real Release (status included) from a converged run.
async fn request_costs(client: &Client, sample: &Release) -> Vec<(&'static str, f64)> {
    const PROBES: usize = 300;
    let ns = "bench-probe";
    create_namespace(client, ns).await;
    let releases: Api<Release> = Api::namespaced(client.clone(), ns);
    let name = |i: usize| format!("probe-{i}");
    let status = serde_json::to_value(sample.status.clone().unwrap_or_default()).unwrap();
    let mut costs = Vec::new();
    async fn measured<F, Fut>(label: &'static str, costs: &mut Vec<(&'static str, f64)>, f: F)
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let before = control_plane_cpu("apiserver");
        stream::iter(0..PROBES).for_each_concurrent(APPLY_CONCURRENCY, &f).await;
        costs.push((label, (control_plane_cpu("apiserver") - before) * 1000.0 / PROBES as f64));
    }
    let releases = &releases;
    measured("create a Release", &mut costs, |i| async move {
        let mut r = sample.clone();
        r.metadata = kube::api::ObjectMeta { name: Some(name(i)), ..Default::default() };
        r.status = None;
        releases.create(&PostParams::default(), &r).await.unwrap();
    })
    .await;
    measured("add a finalizer", &mut costs, |i| async move {
        let patch = json!({"metadata": {"finalizers": ["bench.tuskfish.dev/probe"]}});
        releases.patch(&name(i), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    })
    .await;
    for (label, phase) in
        [("status write (SSA), first", "Progressing"), ("status write (SSA), next", "Healthy")]
    {
        let status = &status;
        measured(label, &mut costs, |i| async move {
            let mut st = status.clone();
            st["phase"] = json!(phase);
            let body = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "status": st});
            releases
                .patch_status(&name(i), &PatchParams::apply("bench").force(), &Patch::Apply(&body))
                .await
                .unwrap();
        })
        .await;
    }
    measured("create an Event", &mut costs, |i| async move {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": format!("probe-{i}"), "namespace": ns},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "bench",
            "reportingInstance": "bench", "action": "Probe", "reason": "Probe", "type": "Normal",
            "note": "rolling out 1.0.0 to environment e0",
            "regarding": {"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "namespace": ns, "name": name(i)}
        });
        let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(ev).unwrap();
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
        api.create(&PostParams::default(), &ev).await.unwrap();
    })
    .await;
    measured("read a missing object (GET, 404)", &mut costs, |i| async move {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        assert!(api.get_opt(&name(i)).await.unwrap().is_none());
    })
    .await;
    for i in 0..PROBES {
        let pp = PatchParams::default();
        let _ = releases.patch(&name(i), &pp, &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await;
    }
    remove_namespaces(client, vec![ns.to_string()]).await;
    costs
}

/// Removes a tuskfish run while its operator still runs: the pipeline namespace first (the
/// Releases' finalizers remove what they applied), then the Environments' namespaces.
async fn remove_world(client: &Client, w: &World) {
    remove_namespaces(client, vec![w.ns.clone()]).await;
    remove_namespaces(client, w.env_namespaces()).await;
}

/// The times (since a new AppVersion was applied) at which each stage of its rollouts was seen by
/// watches of the bench's own, in milliseconds, sorted: its publish (the AppVersion's status), the
/// apply of its new Deployment in each tracking environment (the rollout's start), and each
/// Release's status naming it (written once the rollout is healthy, or after the status settle
/// window).
#[derive(Default)]
struct Reaction {
    published: Vec<f64>,
    applied: Vec<f64>,
    reported: Vec<f64>,
}

impl Reaction {
    /// `N samples: p50 … ms, p99 … ms; by stage …`, for docs/benchmarks.md.
    fn summary(&self) -> String {
        let p = |v: &[f64]| format!("{:.0} / {:.0} ms", percentile(v, 0.5), percentile(v, 0.99));
        format!(
            "{} samples: p50 / p99 {}. By stage from the AppVersion's apply: published {}; Deployments applied {}; Release statuses naming it {} (written once healthy, or after the status settle window).",
            self.applied.len(),
            p(&self.applied),
            p(&self.published),
            p(&self.applied),
            p(&self.reported)
        )
    }
}

/// Follows `api` from a first list on; the instant each of `want` objects first satisfied `done`.
/// Resolves the returned receiver once listed (the clock may start then).
fn first_seen<K>(
    api: Api<K>,
    config: watcher::Config,
    want: usize,
    done: impl Fn(&K) -> bool + Send + 'static,
) -> (tokio::sync::oneshot::Receiver<()>, tokio::task::JoinHandle<Vec<Instant>>)
where
    K: Watchable,
{
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
        let mut events = watcher(api, config).boxed();
        let mut listed = Some(listed_tx);
        while seen.len() < want {
            let Some(ev) = events.try_next().await.unwrap() else { break };
            let o = match ev {
                watcher::Event::InitDone => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                _ => continue,
            };
            if done(&o) {
                let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                seen.entry(key).or_insert_with(Instant::now);
            }
        }
        seen.into_values().collect()
    });
    (listed_rx, task)
}

/// A new AppVersion per sampled app, one at a time; when each stage of its rollouts was seen.
async fn publish_latency(client: &Client, w: &World, samples: usize) -> Reaction {
    let mut rng = Lcg(42);
    let mut picked = Vec::new();
    while picked.len() < samples.min(w.apps) {
        let a = rng.next(w.apps);
        if !picked.contains(&a) {
            picked.push(a);
        }
    }
    let mut out = Reaction::default();
    for a in picked {
        let app = format!("app{a}");
        let (app_r, app_d) = (app.clone(), app.clone());
        let published = first_seen(
            Api::<AppVersion>::namespaced(client.clone(), &w.ns),
            watcher::Config::default(),
            1,
            move |av| {
                av.spec.app == app
                    && av.spec.version == "1.1.0"
                    && av.status.as_ref().is_some_and(|s| s.spec_hash.is_some())
            },
        );
        let selector = format!("app.kubernetes.io/name={app_d},tuskfish.dev/release-namespace={}", w.ns);
        let applied = first_seen(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default().labels(&selector),
            ENVS,
            |d: &Deployment| {
                let image = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|p| p.containers.first())
                    .and_then(|c| c.image.clone());
                image.is_some_and(|i| i.ends_with(":1.1.0"))
            },
        );
        let reported = first_seen(
            Api::<Release>::namespaced(client.clone(), &w.ns),
            watcher::Config::default(),
            ENVS,
            move |r: &Release| {
                r.spec.app == app_r
                    && r.status.as_ref().is_some_and(|s| s.desired_version.as_deref() == Some("1.1.0"))
            },
        );
        // The clock starts once every watch has listed: from then on they only wait for events.
        let _ = futures::join!(published.0, applied.0, reported.0);
        let t0 = Instant::now();
        ssa(client, serde_json::to_value(w.app_version(a, "1.1.0")).unwrap()).await;
        for (task, into) in [
            (published.1, &mut out.published),
            (applied.1, &mut out.applied),
            (reported.1, &mut out.reported),
        ] {
            let seen = tokio::time::timeout(Duration::from_secs(120), task).await.unwrap().unwrap();
            into.extend(seen.iter().map(|t| t.duration_since(t0).as_secs_f64() * 1000.0));
        }
    }
    for v in [&mut out.published, &mut out.applied, &mut out.reported] {
        v.sort_by(f64::total_cmp);
    }
    out
}

/// Reaction while the operator is busy: a small probe pipeline is converged first; then every
/// app of `w` gets a new version at once (a rollout per Release of `w`: the converge traffic)
/// and, a second later, the probe's apps get theirs one at a time, measured as [`publish_latency`].
async fn reaction_under_load(client: &Client, w: &World, op: &Operator) -> Reaction {
    let probe = World { ns: format!("{}-probe", w.ns), envs: ENVS, apps: 5 };
    tuskfish_converge(client, &[&probe], &[op.proc.0.id()]).await;
    let load = async {
        stream::iter(0..w.apps)
            .for_each_concurrent(APPLY_CONCURRENCY, |a| async move {
                ssa(client, serde_json::to_value(w.app_version(a, "1.0.1")).unwrap()).await
            })
            .await;
    };
    let measured = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        publish_latency(client, &probe, probe.apps).await
    };
    let ((), reaction) = futures::join!(load, measured);
    remove_world(client, &probe).await;
    reaction
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Operator {
    proc: Proc,
    port: u16,
}

/// A count from the environment variable `name`, else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The converge of `10 × apps` Releases without audit records and with them, `rounds` times each,
/// alternating (without first), so that a bed getting slower or faster weighs on both alike.
async fn audit_cost(client: &Client, apps: usize, rounds: usize) -> audit::Cost {
    let mut cost = audit::Cost { n: apps * ENVS, ..Default::default() };
    for round in 0..rounds {
        for records in [false, true] {
            let flag = format!("--audit-records={records}");
            eprintln!("bench: N = {} {flag} (round {})", apps * ENVS, round + 1);
            let tag = format!("a{}{round}", if records { "on" } else { "off" });
            let (row, op, w) = run_size(client, apps, 16, false, Duration::ZERO, &tag, &[&flag]).await;
            remove_world(client, &w).await;
            drop(op);
            let runs = if records { &mut cost.with } else { &mut cost.without };
            runs.push((row.tuskfish_s, row.tuskfish_writes));
        }
    }
    cost
}

fn operator(concurrency: usize, tag: &str, extra: &[&str]) -> Operator {
    let port = free_port();
    let c = concurrency.to_string();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["run", "--leader-elect=false", "--concurrency", &c, "--metrics-addr", &addr];
    args.extend_from_slice(extra);
    let proc = spawn(&args, &format!("tuskfish-bench-operator-{tag}.log"));
    Operator { proc, port }
}

#[derive(Default)]
struct Row {
    n: usize,
    concurrency: usize,
    tuskfish_s: f64,
    baseline_s: Option<f64>,
    reconcile_p50_ms: f64,
    reconcile_p99_ms: f64,
    calls_per_reconcile: f64,
    /// Reconciles of all controllers during the converge, per Release.
    reconciles_per_release: f64,
    steady_writes_per_min: Option<f64>,
    cpu_pct: Option<f64>,
    rss_mib: Option<f64>,
    /// Mutating requests the API server served (everyone's: kcm, scheduler, kwok, operator) per Release.
    tuskfish_writes: f64,
    baseline_writes: Option<f64>,
    tuskfish_cpu: Cpu,
    baseline_cpu: Option<Cpu>,
    /// The operator's peak RSS over its start and the converge.
    peak_rss_mib: f64,
    /// Flux on the same objects (benches/pipeline/flux.rs), after the baseline and tuskfish.
    flux: Option<flux::Measured>,
}

/// Mutating requests the API server has served so far, by everyone (its own `/metrics`): the
/// cost of a converge in writes, comparable between tuskfish and the baseline.
async fn server_writes(client: &Client) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE", "APPLY"].iter().any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run_size(
    client: &Client,
    n_apps: usize,
    concurrency: usize,
    with_baseline: bool,
    steady: Duration,
    tag: &str,
    extra: &[&str],
) -> (Row, Operator, World) {
    let base = World { ns: format!("bb-{tag}"), envs: ENVS, apps: n_apps };
    let per_release = |writes: f64| writes / base.count() as f64;
    let (baseline_s, baseline_writes, baseline_cpu) = if with_baseline {
        let w0 = server_writes(client).await;
        let cpu0 = Cpu::now(&[]);
        let secs = baseline(client, &[&base]).await;
        let cpu = Cpu::now(&[]).since(cpu0);
        // Let the system's trailing status updates land, as they do for tuskfish below.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let writes = per_release(server_writes(client).await - w0);
        eprintln!("bench: removing the baseline's objects before tuskfish's run");
        remove_namespaces(client, base.env_namespaces()).await;
        (Some(secs), Some(writes), Some(cpu))
    } else {
        (None, None, None)
    };
    let op = operator(concurrency, tag, extra);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = metrics(op.port).await;
    let w = World { ns: format!("bt-{tag}"), envs: ENVS, apps: n_apps };
    let w0 = server_writes(client).await;
    let (tuskfish_s, tuskfish_cpu) = tuskfish_converge(client, &[&w], &[op.proc.0.id()]).await;
    let peak_rss_mib = peak_rss_mib(op.proc.0.id());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tuskfish_writes = per_release(server_writes(client).await - w0);
    let after = metrics(op.port).await;
    let calls = |m: &str| {
        metric(m, "tuskfish_api_requests_total{kind=\"read\"}")
            + metric(m, "tuskfish_api_requests_total{kind=\"write\"}")
    };
    let reconciles = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("tuskfish_reconciles_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let name = "tuskfish_reconcile_duration_seconds";
    let mut row = Row {
        n: w.count(),
        concurrency,
        tuskfish_s,
        baseline_s,
        reconcile_p50_ms: histogram_quantile(&after, name, 0.5) * 1000.0,
        reconcile_p99_ms: histogram_quantile(&after, name, 0.99) * 1000.0,
        calls_per_reconcile: (calls(&after) - calls(&before))
            / (reconciles(&after) - reconciles(&before)).max(1.0),
        reconciles_per_release: (reconciles(&after) - reconciles(&before)) / w.count() as f64,
        tuskfish_writes,
        baseline_writes,
        tuskfish_cpu,
        baseline_cpu,
        peak_rss_mib,
        ..Default::default()
    };
    if !steady.is_zero() {
        // Let the last status writes land, then watch the operator do nothing.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let pid = op.proc.0.id();
        let (cpu0, _) = proc_stat(pid);
        let writes0 = metric(&metrics(op.port).await, "tuskfish_api_requests_total{kind=\"write\"}");
        let t0 = Instant::now();
        tokio::time::sleep(steady).await;
        let writes1 = metric(&metrics(op.port).await, "tuskfish_api_requests_total{kind=\"write\"}");
        let (cpu1, rss) = proc_stat(pid);
        let secs = t0.elapsed().as_secs_f64();
        row.steady_writes_per_min = Some((writes1 - writes0) * 60.0 / secs);
        row.cpu_pct = Some((cpu1 - cpu0) * 100.0 / secs);
        row.rss_mib = Some(rss);
    }
    (row, op, w)
}

fn svg(rows: &[Row]) -> String {
    let bars: Vec<(String, f64, &str)> = rows
        .iter()
        .flat_map(|r| {
            let mut v = vec![(format!("N={} c={} tuskfish", r.n, r.concurrency), r.tuskfish_s, "#2f7d4a")];
            if let Some(b) = r.baseline_s {
                v.insert(0, (format!("N={} baseline SSA", r.n), b, "#8a8a8a"));
            }
            if let Some(f) = r.flux {
                v.push((format!("N={} Flux", r.n), f.secs, "#3b6fb6"));
            }
            v
        })
        .collect();
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let (w, bar_h, left) = (720.0, 26.0, 230.0);
    let h = 40.0 + bars.len() as f64 * (bar_h + 8.0);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13"><text x="10" y="22" font-weight="bold">Seconds from apply to all Healthy (lower is better)</text>"#
    );
    for (i, (label, v, color)) in bars.iter().enumerate() {
        let y = 36.0 + i as f64 * (bar_h + 8.0);
        let len = (w - left - 70.0) * v / max;
        let _ = write!(
            out,
            r#"<text x="10" y="{ty}">{label}</text><rect x="{left}" y="{y}" width="{len:.1}" height="{bar_h}" fill="{color}"/><text x="{tx:.1}" y="{ty}">{v:.1} s</text>"#,
            ty = y + 18.0,
            tx = left + len + 6.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets too (without `--bench`): this one needs a
    // control plane of its own and minutes, so it only runs under `cargo bench` / `make bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/pipeline.rs: skipped outside `cargo bench` (run `make bench`)");
        return;
    }
    let client = Target::kubeconfig(kubeconfig()).client(&RequestCounter::default()).await.unwrap();
    for crd in tuskfish::api::crds() {
        let api: Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = Api::all(client.clone());
        api.patch(&crd.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&crd)).await.unwrap();
    }
    // Established is not yet served: wait until every kind lists.
    for _ in 0..300 {
        let ns = "default";
        if Api::<Release>::namespaced(client.clone(), ns).list(&Default::default()).await.is_ok()
            && Api::<tuskfish::api::AppVersion>::namespaced(client.clone(), ns)
                .list(&Default::default())
                .await
                .is_ok()
            && Api::<tuskfish::api::Environment>::namespaced(client.clone(), ns)
                .list(&Default::default())
                .await
                .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let steady = Duration::from_secs(
        std::env::var("BENCH_STEADY_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60),
    );
    let sizes: Vec<usize> = std::env::var("BENCH_APPS")
        .ok()
        .map_or(vec![10, 100], |s| s.split(',').filter_map(|x| x.parse().ok()).collect());
    let client = Arc::new(client);

    let flux_bed = flux::detect();
    if let Err(why) = &flux_bed {
        eprintln!("bench: Flux is not measured: {why}");
    }
    let mut flux_failed = Vec::new();
    let mut rows = Vec::new();
    let mut latency = Reaction::default();
    let mut loaded = Reaction::default();
    let mut sample = None;
    let mut records = None;
    for apps in &sizes {
        let ledger_writes0 = audit::ledger_writes(&client).await;
        let then_flux = if flux_bed.is_ok() { ", then Flux" } else { "" };
        eprintln!("bench: N = {} (baseline, then tuskfish{then_flux})", apps * ENVS);
        let (mut row, op, w) =
            run_size(&client, *apps, 16, true, steady, &format!("n{}", apps * ENVS), &[]).await;
        if *apps == *sizes.iter().max().unwrap_or(&0) {
            eprintln!("bench: publish latency at N = {}", w.count());
            latency = publish_latency(&client, &w, 20).await;
            eprintln!(
                "bench: publish latency at N = {} while its {} Releases roll out again",
                w.count(),
                w.count()
            );
            loaded = reaction_under_load(&client, &w, &op).await;
            records = Some(audit::measure(&client, &w.ns, ledger_writes0).await);
            sample = Api::<Release>::namespaced((*client).clone(), &w.ns)
                .get(&w.release(0, 0).name_any())
                .await
                .ok();
        }
        eprintln!("bench: removing the run (Releases first, while the operator runs)");
        remove_world(&client, &w).await;
        drop(op);
        if let Ok(bed) = &flux_bed {
            eprintln!("bench: N = {} with Flux", w.count());
            match flux::run(&client, bed, *apps, &format!("n{}", w.count())).await {
                Ok(m) => row.flux = Some(m),
                Err(e) => {
                    eprintln!("bench: Flux at N = {}: {e}", w.count());
                    flux_failed.push(format!("Flux at N = {}: {e}.", w.count()));
                }
            }
        }
        rows.push(row);
    }
    for c in [1, 4] {
        eprintln!("bench: concurrency {c} at N = {}", 10 * ENVS);
        let (row, op, w) = run_size(&client, 10, c, false, Duration::ZERO, &format!("c{c}"), &[]).await;
        remove_world(&client, &w).await;
        drop(op);
        rows.push(row);
    }
    let audit_ab = match env_count("BENCH_AUDIT_APPS", 100) {
        0 => None,
        apps => Some(audit_cost(&client, apps, env_count("BENCH_AUDIT_ROUNDS", 2)).await),
    };
    let product_ab = match env_count("BENCH_PRODUCT_APPS", 10) {
        0 => None,
        apps => Some(products::run(&client, apps, env_count("BENCH_PRODUCT_ROUNDS", 2)).await),
    };
    let costs = match sample.as_ref() {
        Some(sample) if std::env::var("TUSKFISH_BENCH_STATE").is_ok() => {
            eprintln!("bench: API server CPU per request");
            request_costs(&client, sample).await
        }
        _ => Vec::new(),
    };
    // The large size last: its baseline, one replica, three shards (benches/pipeline/large.rs).
    let large_apps = env_count("BENCH_LARGE_APPS", 1000);
    let large_run = if large_apps > 0 {
        let pipelines = env_count("BENCH_LARGE_PIPELINES", 10).clamp(1, large_apps);
        Some(large::run(&client, large_apps, pipelines, steady).await)
    } else {
        None
    };

    let k8s = client.apiserver_version().await.map_or_else(|_| "?".into(), |v| v.git_version);
    let mut md = format!(
        "# Benchmarks\n\nGenerated by `make bench` (fixed seed) on the local control plane (Kubernetes {k8s}, \
         pods scheduled by kube-scheduler onto kwok nodes); ",
    );
    let _ = writeln!(
        md,
        "machine: {} cores. Figures, not pass/fail.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    md.push_str("![converge times](benchmarks.svg)\n\n");
    md.push_str("| N Releases | concurrency | tuskfish (s) | baseline SSA (s) | ratio | Flux (s) | server writes / Release: tuskfish / baseline / Flux | reconcile p50 / p99 (ms) | API calls / reconcile | reconciles / Release | steady writes/min | CPU % | RSS (MiB) | peak RSS (MiB): tuskfish / Flux source + kustomize |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        let ratio = r.baseline_s.map(|b| r.tuskfish_s / b);
        let flux_rss = r.flux.map_or("–".into(), |f| {
            format!(
                "{:.0} + {:.0} = {:.0}",
                f.source_rss_mib,
                f.kustomize_rss_mib,
                f.source_rss_mib + f.kustomize_rss_mib
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} | {} | {} | {:.1} / {} / {} | {:.0} / {:.0} | {:.1} | {:.1} | {} | {} | {} | {:.0} / {} |",
            r.n,
            r.concurrency,
            r.tuskfish_s,
            opt(r.baseline_s, 1),
            opt(ratio, 2),
            opt(r.flux.map(|f| f.secs), 1),
            r.tuskfish_writes,
            opt(r.baseline_writes, 1),
            opt(r.flux.map(|f| f.writes), 1),
            r.reconcile_p50_ms,
            r.reconcile_p99_ms,
            r.calls_per_reconcile,
            r.reconciles_per_release,
            opt(r.steady_writes_per_min, 1),
            opt(r.cpu_pct, 1),
            opt(r.rss_mib, 0),
            r.peak_rss_mib,
            flux_rss,
        );
    }
    if let Err(why) = &flux_bed {
        let _ = writeln!(md, "\nFlux was not measured: {why}.");
    }
    for failed in &flux_failed {
        let _ = writeln!(md, "\n{failed}");
    }
    md.push_str("\nCPU seconds used during each converge, by process — apiserver / etcd / kube-controller-manager / kube-scheduler / kwok / operator (in the Flux run: source-controller + kustomize-controller) (the machine has 2 cores, so 2 CPU seconds pass per second):\n\n| N Releases | concurrency | tuskfish run | baseline run | Flux run |\n|---|---|---|---|---|\n");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.n,
            r.concurrency,
            r.tuskfish_cpu.cell(),
            r.baseline_cpu.map_or("–".into(), |c| c.cell()),
            r.flux.map_or("–".into(), |f| f.cpu.cell())
        );
    }
    if !costs.is_empty() {
        md.push_str("\nAPI server CPU per request (ms), 300 of each, 16 in flight, no operator running; the Release carries the status of a converged one:\n\n| request | API server CPU (ms) |\n|---|---|\n");
        for (label, ms) in &costs {
            let _ = writeln!(md, "| {label} | {ms:.1} |");
        }
    }
    let _ = writeln!(
        md,
        "\nNew AppVersion → rollout start (its new Deployment applied) in each of the {ENVS} tracking environments, at N = {} after the converge: {}",
        sizes.iter().max().unwrap_or(&0) * ENVS,
        latency.summary(),
    );
    let _ = writeln!(
        md,
        "\nThe same while those Releases roll out a new version (all their AppVersions applied at once, 16 in flight; a probe pipeline of 5 apps × {ENVS} environments, converged before, gets its new versions one at a time from a second later): {}",
        loaded.summary(),
    );
    let _ = write!(
        md,
        "\nHow: the baseline renders the same Deployment + Service per Release with tuskfish's renderer and \
         server-side-applies them itself (16 in flight, same client, discovery once per kind), timed from the \
         first apply until every Deployment is ready; its namespaces are then deleted and waited for, so that \
         tuskfish's run starts on the same footing. tuskfish: Environments and AppVersions are applied and \
         published first (untimed), then all Releases are applied (16 in flight), timed until every Release \
         is Healthy; each run is removed (Releases first, so the finalizers clean up) before the next. The \
         large run has a table of its own (below). Reconcile quantiles are bucket upper bounds of \
         `tuskfish_reconcile_duration_seconds{{controller=\"release\"}}` (buckets double from 1 ms); \
         reconciles per Release count all three controllers. Steady state is measured over {steady_secs} s \
         (`BENCH_STEADY_SECS`, default 60) after convergence, without leader election (whose Lease renewal \
         would be the only write). Server writes are the API server's own count of mutating requests \
         (`apiserver_request_total`, every client: kube-controller-manager, kube-scheduler, kwok, the \
         operator) during each converge plus 3 s, divided by N: tuskfish adds the Release itself, its \
         finalizer, one status write (two when the rollout is still progressing when the status settle \
         window ends) and one Event per Release, and Environment release counts (at most one write per \
         2 s per Environment). Peak RSS is the process's \
         high-water mark (`VmHWM`): the operator's from its start through the converge.\n",
        steady_secs = steady.as_secs()
    );
    if let Some(a) = records {
        let _ = write!(
            md,
            "\nAudit records at N = {} after its converge and the rollouts under load (every Release rolled out twice, the probe apps more often; records of rollouts, approvals and removals, see the book's audit guide):\n\n{}{}\n",
            sizes.iter().max().unwrap_or(&0) * ENVS,
            audit::HEADER,
            a.row(),
        );
    }
    if let Some(ab) = &audit_ab {
        md.push_str(&ab.section());
    }
    if let Some(p) = &product_ab {
        md.push('\n');
        md.push_str(&p.section());
    }
    if let Some(l) = &large_run {
        md.push_str(&large::section(l));
        md.push_str(
            "\nThe large run: Releases spread over pipeline namespaces (shards split namespaces), all applied \
             at once; CPU and peak RSS per replica over its start and the converge; reaction measured on 10 apps \
             of the first pipeline; at rest over the steady window, Lease renewals (leader election off for one \
             replica; a member Lease and one per shard with `--shards`) counted apart from other writes. \
             Flux is not run at this size.\n",
        );
    }
    let (source_v, kustomize_v) = flux::versions();
    if rows.iter().any(|r| r.flux.is_some()) {
        let _ = write!(
            md,
            "\nFlux: source-controller {source_v} and kustomize-controller {kustomize_v}, built from their Go modules \
         and run beside the bed (hack/flux-up.sh: leader election off, kustomize-controller `--concurrent {c}`, \
         no client-side throttling since the API server has priority and fairness on). After the baseline and \
         tuskfish at each N, the same rendered objects are committed to a Git repository, one directory per \
         Release with its kustomization.yaml, served on loopback over Git's smart HTTP (hack/githttp, \
         `git http-backend`); one GitRepository per environment on it (`spec.ignore` keeps only that \
         environment's directory in its artifact, which every Kustomization of the environment downloads and \
         unpacks whole) is applied and waited for until Ready (untimed), then one Kustomization per Release (`wait: true`, `prune: true`, `interval: 1h`, `targetNamespace` the \
         environment's namespace), timed from the first create (16 in flight) until every Kustomization is \
         Ready, i.e. its Deployment is available: kustomize-controller checks health every 5 s and holds a \
         worker while it waits. Its namespaces are then deleted and waited for. The Flux peak RSS is each \
         controller's high-water mark, reset before the run (they run through the whole bench), and their CPU \
         is the last figure of the Flux run's CPU cell.\n",
            c = flux_bed.as_ref().map_or("–".into(), |f| f.concurrent.clone()),
        );
    }
    print!("{md}");
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap();
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks.md"), &md).unwrap();
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks.svg"), svg(&rows)).unwrap();
}
