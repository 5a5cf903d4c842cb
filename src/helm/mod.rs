//! The edge where charts are fetched and rendered: the real Helm (v4) run as a child process, as
//! Argo CD's repo-server does. A chart is kept by its digest once it matched the digest recorded at
//! publish, so what was published is what is rendered; rendered output is kept per (digest,
//! release, namespace, values), so a reconcile at rest runs no Helm at all.

mod cache;
pub mod error;
mod run;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use self::error::ChartError;
use self::run::Runner;
use crate::api::HelmChart;
use crate::render::chart::{ChartOutput, parse_output};

/// How the operator (or the CLI) runs Helm.
#[derive(Clone, Debug)]
pub struct HelmConfig {
    /// The `helm` binary (v4).
    pub binary: PathBuf,
    /// Charts by digest, Helm's own homes and scratch space.
    pub work_dir: PathBuf,
    /// Helm processes at once.
    pub concurrency: usize,
    /// Time limit of one pull or render.
    pub timeout: Duration,
    /// The most bytes one render may print.
    pub max_output: usize,
}

/// Repository credentials, from the AppVersion's Secret.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// What a chart sees of the cluster it is rendered for (Helm's `.Capabilities`): the API server's
/// version and the API versions it serves, each as `group/version` and `group/version/Kind`
/// (core ones as `v1` and `v1/Kind`), as `.Capabilities.APIVersions.Has` asks for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub kube_version: String,
    pub api_versions: Vec<String>,
}

impl Capabilities {
    /// `helm template`'s flags for them, one `--api-versions=…` per entry (one joined list would
    /// pass Linux's 128 KiB limit on one argument in a cluster with many CRDs). A version Helm could
    /// not read is left to Helm's default (a vendor's build string should not fail every render
    /// there); an entry Helm's list parser would split or choke on is left out, and so are entries
    /// past a bound (group/versions first, then kinds), so the command line stays well below the
    /// system's limit whatever a cluster serves.
    fn args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        let version = self.kube_version.strip_prefix('v').unwrap_or(&self.kube_version);
        if semver::Version::parse(version).is_ok() {
            args.push(format!("--kube-version={}", self.kube_version).into());
        }
        let usable = |v: &&String| {
            !v.is_empty() && v.len() <= API_VERSION_MAX && !v.contains([',', ' ', '\n', '=', '"', '\\'])
        };
        let (versions, kinds): (Vec<&String>, Vec<&String>) = self
            .api_versions
            .iter()
            .filter(usable)
            .partition(|v| v.matches('/').count() < 2 && !v.starts_with("v1/"));
        let mut bytes = 0usize;
        for v in versions.into_iter().chain(kinds) {
            bytes = bytes.saturating_add(v.len());
            if args.len() >= API_VERSIONS_MAX || bytes > API_VERSIONS_BYTES {
                break;
            }
            args.push(format!("--api-versions={v}").into());
        }
        args
    }
}

/// Bounds on what is passed of a cluster's API versions (see [`Capabilities::args`]): far above a
/// real cluster's (a few hundred kinds; a few thousand with every Crossplane provider), far below
/// the system's limit on a command line (2 MiB).
const API_VERSIONS_MAX: usize = 20_000;
const API_VERSIONS_BYTES: usize = 1024 * 1024;
const API_VERSION_MAX: usize = 320;

/// Rendered outputs kept in memory (each is one Release's chart output).
const RENDERED_KEPT: usize = 512;

pub struct Helm {
    runner: Runner,
    charts: PathBuf,
    scratch: PathBuf,
    rendered: cache::Bounded<Arc<ChartOutput>>,
    /// Outputs that failed, and when to try each again (see [`Helm::remembered_failure`]).
    failures: cache::Bounded<Failure>,
}

/// A chart output that could not be had, and when it is tried again.
#[derive(Clone)]
struct Failure {
    error: ChartError,
    attempts: u32,
    retry_at: std::time::Instant,
    /// The same, as a time to tell users (a message that stays the same until the next try).
    next_try: jiff::Timestamp,
}

/// The wait before trying a failed chart output again, after each failure: doubling from the first
/// to the last. A chart that never renders (a template that loops until the time limit) costs a
/// Helm run a few times an hour, not every reconcile of its Release.
const RETRY_FIRST: Duration = Duration::from_secs(15);
const RETRY_MAX: Duration = Duration::from_secs(600);

/// Pure: the wait after the `attempts`-th failure in a row.
pub fn retry_after(attempts: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX))
        .min(RETRY_MAX)
}

impl Helm {
    /// Sets up the work directory; fails when it cannot be written.
    pub fn new(config: HelmConfig) -> std::io::Result<Self> {
        let home = config.work_dir.join("home");
        let charts = config.work_dir.join("charts");
        let scratch = config.work_dir.join("scratch");
        // Several processes may share the directory: kept charts are named by their content, and
        // each process's scratch space by its process id.
        for d in [&home, &charts, &scratch] {
            std::fs::create_dir_all(d)?;
        }
        Ok(Self {
            runner: Runner {
                binary: config.binary,
                home,
                permits: Semaphore::new(config.concurrency.max(1)),
                shares: run::Shares::new(config.concurrency.max(1).div_ceil(2)),
                timeout: config.timeout,
                max_output: config.max_output,
            },
            charts,
            scratch,
            rendered: cache::Bounded::new(RENDERED_KEPT),
            failures: cache::Bounded::new(RENDERED_KEPT),
        })
    }

    /// The key of one Release's chart output (what [`Self::template`] keeps it under).
    /// `scope` says whose it is (the pipeline and cluster): the same names elsewhere are another
    /// tenant's output, and a chart that generates a secret at render time must not hand one
    /// tenant's to another.
    pub fn output_key(scope: &str, digest: &str, release: &str, namespace: &str, values: &Value) -> String {
        render_key(&[scope, digest, release, namespace, &values.to_string()])
    }

    /// Output `key`, when it was rendered lately (what [`Self::template`] returns without Helm).
    pub fn rendered(&self, key: &str) -> Option<Arc<ChartOutput>> {
        self.rendered.get(key)
    }

    /// Keeps output `key` in memory (what [`Self::rendered`] then returns).
    pub fn remember_rendered(&self, key: &str, output: Arc<ChartOutput>) {
        self.rendered.put(key.to_string(), output);
    }

    /// The most bytes one render may have (a kept output is held to it too).
    pub fn max_output(&self) -> usize {
        self.runner.max_output
    }

    /// Takes `manifest`, Helm's output for `key` kept from an earlier render, as that output (so
    /// that it is not rendered anew); bounded as Helm's own output is.
    pub fn adopt(&self, key: &str, manifest: &str) -> Result<Arc<ChartOutput>, ChartError> {
        if manifest.len() > self.runner.max_output {
            return Err(ChartError::OutputTooLarge { limit: self.runner.max_output });
        }
        let output = Arc::new(parse_output(manifest)?);
        self.remember_rendered(key, output.clone());
        Ok(output)
    }

    /// The failure of output `key` and when it is tried again, while that is in the future.
    pub fn remembered_failure(&self, key: &str) -> Option<(ChartError, jiff::Timestamp)> {
        let f = self.failures.get(key)?;
        f.retry_at.checked_duration_since(std::time::Instant::now())?;
        Some((f.error, f.next_try))
    }

    /// Remembers that output `key` failed with `error` (once more); when it is tried next.
    pub fn remember_failure(&self, key: &str, error: &ChartError) -> jiff::Timestamp {
        let attempts = self.failures.get(key).map_or(0, |f| f.attempts).saturating_add(1);
        let wait = retry_after(attempts);
        let retry_at = std::time::Instant::now() + wait;
        let now = jiff::Timestamp::now();
        let whole = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
        let next_try =
            whole.checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default()).unwrap_or(whole);
        self.failures.put(key.to_string(), Failure { error: error.clone(), attempts, retry_at, next_try });
        next_try
    }

    /// Forgets the failures of output `key` (it succeeded).
    pub fn forget_failure(&self, key: &str) {
        self.failures.remove(key);
    }

    /// Pulls the chart and returns its digest (`sha256:…` of the packaged chart). Called at publish.
    /// The chart is not kept: each process checks what it first renders against the recorded digest,
    /// so content re-pushed under the same version is caught wherever it is first used.
    pub async fn publish(
        &self,
        pipeline: &str,
        chart: &HelmChart,
        creds: Option<&Credentials>,
    ) -> Result<String, ChartError> {
        self.pull(pipeline, chart, creds, None).await.map(|(digest, _)| digest)
    }

    /// The kept packaged chart with `digest`, if this process has it.
    pub async fn kept_chart(&self, digest: &str) -> Option<PathBuf> {
        let kept = self.kept(digest);
        tokio::fs::try_exists(&kept).await.unwrap_or(false).then_some(kept)
    }

    /// Pulls the chart again, checks it against `digest` and keeps it (for when
    /// [`Self::kept_chart`] has none).
    pub async fn pull_checked(
        &self,
        pipeline: &str,
        chart: &HelmChart,
        digest: &str,
        creds: Option<&Credentials>,
    ) -> Result<PathBuf, ChartError> {
        self.pull(pipeline, chart, creds, Some(digest)).await.map(|(_, path)| path)
    }

    /// Renders the packaged chart at `path` as Helm release `release` in `namespace`, with no
    /// cluster access: what it may know of the cluster is `capabilities`. Hooks are set aside;
    /// CRDs are included (so that they are refused). With the
    /// output, Helm's text of it, to be kept (see `controller::kept_renders`); the caller puts the
    /// output in memory once it may be used ([`Self::remember_rendered`]).
    pub async fn template(
        &self,
        pipeline: &str,
        path: &Path,
        release: &str,
        namespace: &str,
        values: &Value,
        capabilities: &Capabilities,
    ) -> Result<(Arc<ChartOutput>, String), ChartError> {
        let dir = self.scratch_dir().await?;
        let values_file = dir.join("values.json");
        let written = tokio::fs::write(&values_file, values.to_string()).await;
        let result = match written {
            Err(e) => Err(ChartError::Unavailable(format!("writing the values file: {e}"))),
            Ok(()) => {
                let mut args: Vec<OsString> = vec![
                    "template".into(),
                    release.into(),
                    path.into(),
                    "--namespace".into(),
                    namespace.into(),
                    "--values".into(),
                    values_file.clone().into(),
                    "--include-crds".into(),
                ];
                args.extend(capabilities.args());
                self.runner.run(pipeline, "template", args, None).await
            }
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let done = result?;
        if !done.success {
            return Err(error::template_failed(&done.stderr));
        }
        let manifest = String::from_utf8_lossy(&done.stdout).into_owned();
        let output = Arc::new(parse_output(&manifest)?);
        Ok((output, manifest))
    }

    /// `helm pull` into scratch space; with `expected`, the chart must have that digest and is then
    /// kept by it.
    async fn pull(
        &self,
        pipeline: &str,
        chart: &HelmChart,
        creds: Option<&Credentials>,
        expected: Option<&str>,
    ) -> Result<(String, PathBuf), ChartError> {
        let what = format!("chart {} {} from {}", chart.chart, chart.version, chart.repository);
        let dir = self.scratch_dir().await?;
        let result = self.pull_into(pipeline, chart, creds, &dir, &what, expected).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }

    async fn pull_into(
        &self,
        pipeline: &str,
        chart: &HelmChart,
        creds: Option<&Credentials>,
        dir: &Path,
        what: &str,
        expected: Option<&str>,
    ) -> Result<(String, PathBuf), ChartError> {
        if let Some(c) = creds {
            let login = login_args(chart, c, dir);
            let done = self.runner.run(pipeline, "pull", login, Some(c.password.clone())).await?;
            if !done.success {
                return Err(error::pull_failed(what, &done.stderr));
            }
        }
        let done = self.runner.run(pipeline, "pull", pull_args(chart, creds.is_some(), dir), None).await?;
        if !done.success {
            return Err(error::pull_failed(what, &done.stderr));
        }
        let mut entries = tokio::fs::read_dir(dir).await.map_err(scratch_error)?;
        let mut packaged = None;
        while let Some(e) = entries.next_entry().await.map_err(scratch_error)? {
            if e.path().extension().is_some_and(|x| x == "tgz") {
                packaged = Some(e.path());
            }
        }
        let packaged = packaged
            .ok_or_else(|| ChartError::NotFound(format!("{what}: helm pull wrote no chart package")))?;
        let bytes = tokio::fs::read(&packaged).await.map_err(scratch_error)?;
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        let Some(expected) = expected else { return Ok((digest, packaged)) };
        if digest != expected {
            return Err(ChartError::DigestChanged { recorded: expected.to_string(), found: digest });
        }
        let kept = self.kept(&digest);
        // Same digest, same bytes: a concurrent pull of the same chart writes the same file.
        tokio::fs::rename(&packaged, &kept).await.map_err(scratch_error)?;
        Ok((digest, kept))
    }

    /// Where a chart of `digest` is kept. The digest comes from a status, which is not ours alone
    /// to write: anything but `sha256:` and 64 hex digits names no file (and cannot leave the
    /// directory).
    fn kept(&self, digest: &str) -> PathBuf {
        match digest.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.charts.join(format!("sha256-{hex}.tgz"))
            }
            _ => self.charts.join("not-a-digest"),
        }
    }

    async fn scratch_dir(&self) -> Result<PathBuf, ChartError> {
        // One counter per process, not per `Helm`: the shards of one replica each have theirs.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.scratch.join(format!("{}-{n}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.map_err(scratch_error)?;
        Ok(dir)
    }
}

fn scratch_error(e: std::io::Error) -> ChartError {
    ChartError::Unavailable(format!("the chart work directory: {e}"))
}

/// The name a chart repository with credentials is added under, in this pull's own repository
/// config.
const REPO_ALIAS: &str = "tuskfish";

/// Where Helm keeps what a login or `repo add` writes: inside this pull's scratch directory, which
/// is removed with the credentials in it once the pull is done.
fn homes(dir: &Path) -> Vec<OsString> {
    vec![
        "--registry-config".into(),
        dir.join("registry.json").into(),
        "--repository-config".into(),
        dir.join("repositories.yaml").into(),
        "--repository-cache".into(),
        dir.join("repository-cache").into(),
    ]
}

/// The step that hands the password to Helm on stdin (never as an argument, which other processes
/// could read): `helm registry login` for OCI, `helm repo add` for an HTTP(S) repository.
fn login_args(chart: &HelmChart, creds: &Credentials, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = match chart.repository.strip_prefix("oci://") {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or(rest);
            let mut a: Vec<OsString> = vec!["registry".into(), "login".into(), host.into()];
            if chart.plain_http {
                a.push("--plain-http".into());
            }
            a
        }
        None => vec!["repo".into(), "add".into(), REPO_ALIAS.into(), chart.repository.clone().into()],
    };
    args.extend(["--username".into(), creds.username.clone().into(), "--password-stdin".into()]);
    args.extend(homes(dir));
    args
}

/// `helm pull` of one exact chart version: `oci://…/CHART`, `CHART --repo URL`, or (after a
/// login) the added repository's `tuskfish/CHART`.
fn pull_args(chart: &HelmChart, logged_in: bool, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["pull".into()];
    match chart.repository.strip_prefix("oci://") {
        Some(_) => args.push(format!("{}/{}", chart.repository.trim_end_matches('/'), chart.chart).into()),
        None if logged_in => args.push(format!("{REPO_ALIAS}/{}", chart.chart).into()),
        None => args.extend([chart.chart.clone().into(), "--repo".into(), chart.repository.clone().into()]),
    }
    args.extend(["--version".into(), chart.version.clone().into(), "--destination".into(), dir.into()]);
    if chart.plain_http {
        args.push("--plain-http".into());
    }
    args.extend(homes(dir));
    args
}

fn render_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_failing_chart_is_tried_again_later_and_later() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, vec![15, 30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(retry_after(u32::MAX).as_secs(), 600);
    }

    #[test]
    fn capabilities_become_helms_flags_and_what_would_break_them_is_left_out() {
        let words =
            |c: &Capabilities| c.args().iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let caps = Capabilities {
            kube_version: "v1.37.1".into(),
            api_versions: vec!["v1".into(), "apps/v1/Deployment".into(), "x.io/v1,evil".into(), "".into()],
        };
        assert_eq!(
            words(&caps),
            ["--kube-version=v1.37.1", "--api-versions=v1", "--api-versions=apps/v1/Deployment"]
        );
        // Group/versions first, then kinds; a quote would stop Helm's list parser.
        let caps = Capabilities {
            kube_version: "".into(),
            api_versions: vec![
                "apps/v1/Deployment".into(),
                "v1/Pod".into(),
                "apps/v1".into(),
                "x/v1/\"K".into(),
            ],
        };
        assert_eq!(
            words(&caps),
            ["--api-versions=apps/v1", "--api-versions=apps/v1/Deployment", "--api-versions=v1/Pod"]
        );
        // Bounded, whatever a cluster serves.
        let many = Capabilities {
            kube_version: "".into(),
            api_versions: (0..30_000).map(|i| format!("g{i}.io/v1")).collect(),
        };
        assert_eq!(words(&many).len(), API_VERSIONS_MAX);
        // A managed cluster's build string is still a version; garbage leaves Helm's default.
        let eks = Capabilities { kube_version: "v1.33.5-eks-113cf36".into(), api_versions: vec![] };
        assert_eq!(words(&eks), ["--kube-version=v1.33.5-eks-113cf36"]);
        let odd = Capabilities { kube_version: "v0.0.0-master+$Format:%H$".into(), api_versions: vec![] };
        assert!(words(&odd).is_empty(), "{:?}", words(&odd));
        assert!(words(&Capabilities::default()).is_empty());
    }

    use super::*;

    fn chart(repository: &str) -> HelmChart {
        HelmChart {
            repository: repository.into(),
            chart: "payments".into(),
            version: "1.3.10".into(),
            ..Default::default()
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn pull_names_the_exact_version_in_either_kind_of_repository() {
        let dir = Path::new("/w");
        let homes = ["--registry-config", "/w/registry.json", "--repository-config", "/w/repositories.yaml"];
        let homes = [&homes[..], &["--repository-cache", "/w/repository-cache"]].concat();
        let oci = HelmChart { plain_http: true, ..chart("oci://reg:5000/charts/") };
        let expected = [
            &[
                "pull",
                "oci://reg:5000/charts/payments",
                "--version",
                "1.3.10",
                "--destination",
                "/w",
                "--plain-http",
            ][..],
            &homes,
        ]
        .concat();
        assert_eq!(strings(pull_args(&oci, false, dir)), expected);
        let http = chart("https://charts.example.com/stable");
        let expected = [
            &["pull", "payments", "--repo", "https://charts.example.com/stable", "--version", "1.3.10"][..],
            &["--destination", "/w"],
            &homes,
        ]
        .concat();
        assert_eq!(strings(pull_args(&http, false, dir)), expected);
        assert_eq!(strings(pull_args(&http, true, dir))[1], "tuskfish/payments");
    }

    #[test]
    fn passwords_go_to_helm_on_stdin_never_as_arguments() {
        let dir = Path::new("/w");
        let creds = Credentials { username: "ci".into(), password: "s3cret".into() };
        let oci = HelmChart { plain_http: true, ..chart("oci://reg:5000/charts") };
        let login = strings(login_args(&oci, &creds, dir));
        assert_eq!(
            &login[..7],
            ["registry", "login", "reg:5000", "--plain-http", "--username", "ci", "--password-stdin"]
        );
        let add = strings(login_args(&chart("https://charts.example.com/stable"), &creds, dir));
        assert_eq!(&add[..4], ["repo", "add", "tuskfish", "https://charts.example.com/stable"]);
        for args in [login, add, strings(pull_args(&oci, true, dir))] {
            assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
        }
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn the_render_key_changes_with_every_input() {
        let v = serde_json::json!({"replicaCount": 2});
        let key =
            |scope, digest, release, ns, values: &Value| Helm::output_key(scope, digest, release, ns, values);
        let base = key("team-a/in-cluster", "sha256:a", "payments", "prod", &v);
        assert_eq!(base, key("team-a/in-cluster", "sha256:a", "payments", "prod", &v));
        for other in [
            key("team-b/in-cluster", "sha256:a", "payments", "prod", &v),
            key("team-a/prod-eu", "sha256:a", "payments", "prod", &v),
            key("team-a/in-cluster", "sha256:b", "payments", "prod", &v),
            key("team-a/in-cluster", "sha256:a", "payments2", "prod", &v),
            key("team-a/in-cluster", "sha256:a", "payments", "prod2", &v),
            key("team-a/in-cluster", "sha256:a", "payments", "prod", &serde_json::json!({"replicaCount": 3})),
        ] {
            assert_ne!(base, other);
        }
    }
}
