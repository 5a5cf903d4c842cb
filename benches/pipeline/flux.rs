//! Flux side by side: the same rendered objects as the baseline, committed to a Git repository on
//! loopback and applied by Flux's source-controller and kustomize-controller, one `Kustomization`
//! per Release (app × environment). hack/flux-up.sh starts Flux on the bed (hack/bench.sh calls it);
//! without it the bench runs all the same and says why Flux was not measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tuskfish::render::render;

use super::{
    APPLY_CONCURRENCY, Cpu, ENVS, NoCatalog, World, create_namespace, peak_rss_mib, proc_stat,
    remove_namespaces, server_writes,
};

/// Flux as hack/flux-up.sh left it in `TUSKFISH_BENCH_STATE`.
pub(crate) struct Flux {
    source: u32,
    kustomize: u32,
    git_url: String,
    git_root: PathBuf,
    /// kustomize-controller's `--concurrent` (reconciles in flight).
    pub(crate) concurrent: String,
}

/// One Flux converge: seconds from the first Kustomization created to all Ready, and what it cost.
#[derive(Clone, Copy, Default)]
pub(crate) struct Measured {
    pub(crate) secs: f64,
    pub(crate) source_rss_mib: f64,
    pub(crate) kustomize_rss_mib: f64,
    /// Mutating requests the API server served during the converge (+3 s), per Release.
    pub(crate) writes: f64,
    /// The control plane's CPU; `operator` holds source-controller + kustomize-controller.
    pub(crate) cpu: Cpu,
}

/// The versions hack/build-control-plane.sh --flux builds (hack/versions.sh).
pub(crate) fn versions() -> (String, String) {
    let pinned = include_str!("../../hack/versions.sh");
    let get = |key: &str| {
        pinned
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map_or_else(|| "?".into(), |v| v.trim().to_string())
    };
    (get("FLUX_SOURCE_CONTROLLER_VERSION"), get("FLUX_KUSTOMIZE_CONTROLLER_VERSION"))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Flux on this bed, or why it is not there.
pub(crate) fn detect() -> Result<Flux, String> {
    let state = std::env::var("TUSKFISH_BENCH_STATE").ok();
    let said = state.as_ref().and_then(|s| std::fs::read_to_string(format!("{s}/flux-unavailable")).ok());
    if std::env::var("TUSKFISH_BENCH_FLUX").is_ok_and(|v| v == "0") {
        return Err(said.map_or_else(|| "TUSKFISH_BENCH_FLUX=0".into(), |s| s.trim().to_string()));
    }
    let Some(state) = state else {
        return Err(
            "TUSKFISH_BENCH_STATE is not set (hack/bench.sh starts Flux on its bed with hack/flux-up.sh)"
                .into(),
        );
    };
    if let Some(why) = said {
        return Err(why.trim().to_string());
    }
    let pid = |name: &str| -> Result<u32, String> {
        std::fs::read_to_string(format!("{state}/{name}.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .filter(|p| alive(*p))
            .ok_or_else(|| format!("{name} is not running (hack/flux-up.sh STATE KUBECONFIG starts it)"))
    };
    let (source, kustomize) = (pid("source-controller")?, pid("kustomize-controller")?);
    pid("githttp")?;
    let git_url = std::fs::read_to_string(format!("{state}/flux-git-url"))
        .map_err(|e| format!("{state}/flux-git-url: {e} (written by hack/flux-up.sh)"))?
        .trim()
        .to_string();
    let cmdline = std::fs::read_to_string(format!("/proc/{kustomize}/cmdline")).unwrap_or_default();
    let args: Vec<&str> = cmdline.split('\0').collect();
    let concurrent = args
        .iter()
        .position(|a| *a == "--concurrent")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "4".into(), |c| c.to_string());
    Ok(Flux { source, kustomize, git_url, git_root: PathBuf::from(state).join("git"), concurrent })
}

fn git_repository() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    )
}

fn kustomization() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

async fn apply(api: &Api<DynamicObject>, obj: Value) -> Result<(), String> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    api.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|e| format!("applying {} {name}: {e}", obj["kind"].as_str().unwrap_or_default()))
}

/// Ready=True for the object's current generation (what `flux get` and kstatus call Ready).
fn ready(o: &DynamicObject) -> bool {
    let status = &o.data["status"];
    let current = status["observedGeneration"].as_i64().is_some_and(|g| Some(g) == o.metadata.generation);
    current
        && status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Waits (a watch, not a poll) until `want` objects of `api` are Ready; an error past `limit`.
async fn wait_ready(api: Api<DynamicObject>, want: usize, limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut done = std::collections::HashSet::new();
    let mut events = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
    while done.len() < want {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => return Err(format!("{} of {want} Ready after {} s", done.len(), limit.as_secs())),
            Ok(None) => return Err("the watch ended".into()),
            Ok(Some(Err(_))) => continue,
            Ok(Some(Ok(o))) => {
                if ready(&o) {
                    done.insert(o.name_any());
                } else {
                    done.remove(&o.name_any());
                }
            }
        }
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=tuskfish bench",
            "-c",
            "user.email=bench@tuskfish.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The directory of a Release in the repository, and the Kustomization's `path`.
fn release_path(w: &World, e: usize, a: usize) -> String {
    format!("{}/app{a}", w.env_ns(e))
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// Commits the objects the baseline applies (tuskfish's renderer: Deployment + Service per Release)
/// to the bare repository `<git root>/<ns>.git`, one directory per Release, each with its
/// kustomization.yaml. Files are JSON, which is YAML.
fn write_repository(flux: &Flux, w: &World) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("tuskfish-bench-flux-{}", w.ns));
    let _ = std::fs::remove_dir_all(&work);
    for e in 0..w.envs {
        let env = w.environment(e);
        for a in 0..w.apps {
            let dir = work.join(release_path(w, e, a));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let rendered = render(&w.app_version(a, "1.0.0"), &env, &w.release(e, a), &[], &NoCatalog)
                .map_err(|e| format!("render: {e}"))?;
            let mut files = Vec::new();
            for o in rendered.objects {
                let mut body = o.body;
                // Not tuskfish's (the same label the baseline gets another value of).
                body["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("bench-flux");
                let file =
                    format!("{}-{}.yaml", body["kind"].as_str().unwrap_or("object").to_lowercase(), o.name);
                let path = dir.join(&file);
                std::fs::write(&path, serde_json::to_string_pretty(&body).unwrap_or_default())
                    .map_err(io(&path))?;
                files.push(file);
            }
            let k = json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files});
            let path = dir.join("kustomization.yaml");
            std::fs::write(&path, k.to_string()).map_err(io(&path))?;
        }
    }
    git(&work, &["init", "-q", "-b", "main"])?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", &format!("{} Releases", w.count())])?;
    std::fs::create_dir_all(&flux.git_root).map_err(io(&flux.git_root))?;
    let bare = flux.git_root.join(format!("{}.git", w.ns));
    let _ = std::fs::remove_dir_all(&bare);
    git(&work, &["clone", "-q", "--bare", ".", &bare.to_string_lossy()])?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Peak RSS (MiB) of some processes from now on: their high-water marks reset (`clear_refs` 5)
/// and read at the end, and their RSS sampled every 100 ms meanwhile (the marks need Linux ≥ 4.0
/// and the right to write `clear_refs`; the samples are the fallback).
struct PeakRss {
    pids: Vec<u32>,
    reset: Vec<bool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<f64>>,
}

impl PeakRss {
    fn start(pids: &[u32]) -> Self {
        let reset =
            pids.iter().map(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (sampled, flag) = (pids.to_vec(), stop.clone());
        let task = tokio::spawn(async move {
            let mut peak = vec![0.0f64; sampled.len()];
            while !flag.load(Ordering::Relaxed) {
                for (p, pid) in peak.iter_mut().zip(&sampled) {
                    *p = p.max(proc_stat(*pid).1);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        });
        Self { pids: pids.to_vec(), reset, stop, task }
    }

    async fn finish(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.task.await.unwrap_or_default();
        self.pids
            .iter()
            .zip(&self.reset)
            .zip(sampled.iter().chain(std::iter::repeat(&0.0)))
            .map(|((pid, reset), s)| if *reset { s.max(peak_rss_mib(*pid)) } else { *s })
            .collect()
    }
}

fn cpu_now(flux: &Flux) -> Cpu {
    let mut cpu = Cpu::now(&[]);
    cpu.operator = proc_stat(flux.source).0 + proc_stat(flux.kustomize).0;
    cpu
}

async fn converge(client: &Client, flux: &Flux, w: &World) -> Result<Measured, String> {
    write_repository(flux, w)?;
    create_namespace(client, &w.ns).await;
    for ns in w.env_namespaces() {
        create_namespace(client, &ns).await;
    }
    // The sources first, untimed (as tuskfish's Environments and AppVersions are): one GitRepository
    // per environment on the one repository, its artifact holding only that environment's directory.
    // Every Kustomization downloads and unpacks its source's whole artifact, so one source for all
    // would make each of N reconciles unpack all N directories.
    let repos: Api<DynamicObject> = Api::namespaced_with(client.clone(), &w.ns, &git_repository());
    for e in 0..w.envs {
        let repo = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": format!("e{e}"), "namespace": w.ns},
            "spec": {
                "url": format!("{}/{}.git", flux.git_url, w.ns), "ref": {"branch": "main"}, "interval": "1h",
                "ignore": format!("/*\n!/{}/\n", w.env_ns(e))
            }
        });
        apply(&repos, repo).await?;
    }
    wait_ready(repos, w.envs, Duration::from_secs(300)).await.map_err(|e| format!("GitRepositories: {e}"))?;

    let kustomizations: Api<DynamicObject> = Api::namespaced_with(client.clone(), &w.ns, &kustomization());
    let objects: Vec<Value> = (0..w.envs)
        .flat_map(|e| (0..w.apps).map(move |a| (e, a)))
        .map(|(e, a)| {
            json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": format!("app{a}-e{e}"), "namespace": w.ns},
                "spec": {
                    "sourceRef": {"kind": "GitRepository", "name": format!("e{e}")},
                    "path": format!("./{}", release_path(w, e, a)),
                    "targetNamespace": w.env_ns(e),
                    "prune": true, "wait": true, "timeout": "5m",
                    "interval": "1h", "retryInterval": "10s"
                }
            })
        })
        .collect();
    let peak = PeakRss::start(&[flux.source, flux.kustomize]);
    let w0 = server_writes(client).await;
    let cpu0 = cpu_now(flux);
    let started = Instant::now();
    let applied: Vec<Result<(), String>> = stream::iter(objects)
        .map(|o| {
            let api = kustomizations.clone();
            async move { apply(&api, o).await }
        })
        .buffer_unordered(APPLY_CONCURRENCY)
        .collect()
        .await;
    applied.into_iter().collect::<Result<Vec<()>, String>>()?;
    let limit = Duration::from_secs(600 + 2 * w.count() as u64);
    let waited = wait_ready(kustomizations, w.count(), limit).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_now(flux).since(cpu0);
    let rss = peak.finish().await;
    waited.map_err(|e| format!("Kustomizations: {e}"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = (server_writes(client).await - w0) / w.count() as f64;
    Ok(Measured { secs, source_rss_mib: rss[0], kustomize_rss_mib: rss[1], writes, cpu })
}

/// One Flux run of `apps` apps in each of the `ENVS` environments, then its namespaces removed
/// (the Kustomizations' finalizers prune what they applied) and its repository deleted.
pub(crate) async fn run(client: &Client, flux: &Flux, apps: usize, tag: &str) -> Result<Measured, String> {
    let w = World { ns: format!("bf-{tag}"), envs: ENVS, apps };
    if !alive(flux.source) || !alive(flux.kustomize) {
        return Err("a Flux controller exited before the run (see its log in TUSKFISH_BENCH_STATE)".into());
    }
    let measured = converge(client, flux, &w).await;
    eprintln!("bench: removing Flux's run");
    let mut names = vec![w.ns.clone()];
    names.extend(w.env_namespaces());
    remove_namespaces(client, names).await;
    let _ = std::fs::remove_dir_all(flux.git_root.join(format!("{}.git", w.ns)));
    measured
}
