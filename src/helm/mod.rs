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

/// Rendered outputs kept in memory (each is one Release's chart output).
const RENDERED_KEPT: usize = 512;

pub struct Helm {
    runner: Runner,
    charts: PathBuf,
    scratch: PathBuf,
    next: AtomicU64,
    rendered: cache::Bounded<Arc<ChartOutput>>,
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
                timeout: config.timeout,
                max_output: config.max_output,
            },
            charts,
            scratch,
            next: AtomicU64::new(0),
            rendered: cache::Bounded::new(RENDERED_KEPT),
        })
    }

    /// Pulls the chart and returns its digest (`sha256:…` of the packaged chart). Called at publish.
    /// The chart is not kept: each process checks what it first renders against the recorded digest,
    /// so content re-pushed under the same version is caught wherever it is first used.
    pub async fn publish(
        &self,
        chart: &HelmChart,
        creds: Option<&Credentials>,
    ) -> Result<String, ChartError> {
        self.pull(chart, creds, None).await.map(|(digest, _)| digest)
    }

    /// The packaged chart with `digest`: the kept copy, or pulled again and checked against it.
    pub async fn chart(
        &self,
        chart: &HelmChart,
        digest: &str,
        creds: Option<&Credentials>,
    ) -> Result<PathBuf, ChartError> {
        let kept = self.kept(digest);
        if tokio::fs::try_exists(&kept).await.unwrap_or(false) {
            return Ok(kept);
        }
        self.pull(chart, creds, Some(digest)).await.map(|(_, path)| path)
    }

    /// Renders the packaged chart at `path` (of `digest`) as Helm release `release` in `namespace`,
    /// with no cluster access. Hooks are set aside; CRDs are included (so that they are refused).
    pub async fn template(
        &self,
        path: &Path,
        digest: &str,
        release: &str,
        namespace: &str,
        values: &Value,
    ) -> Result<Arc<ChartOutput>, ChartError> {
        let key = render_key(digest, release, namespace, values);
        if let Some(hit) = self.rendered.get(&key) {
            return Ok(hit);
        }
        let dir = self.scratch_dir().await?;
        let values_file = dir.join("values.json");
        let written = tokio::fs::write(&values_file, values.to_string()).await;
        let result = match written {
            Err(e) => Err(ChartError::Unavailable(format!("writing the values file: {e}"))),
            Ok(()) => {
                let args: Vec<OsString> = vec![
                    "template".into(),
                    release.into(),
                    path.into(),
                    "--namespace".into(),
                    namespace.into(),
                    "--values".into(),
                    values_file.clone().into(),
                    "--include-crds".into(),
                ];
                self.runner.run("template", args).await
            }
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let done = result?;
        if !done.success {
            return Err(error::template_failed(&done.stderr));
        }
        let output = Arc::new(parse_output(&String::from_utf8_lossy(&done.stdout))?);
        self.rendered.put(key, output.clone());
        Ok(output)
    }

    /// `helm pull` into scratch space; with `expected`, the chart must have that digest and is then
    /// kept by it.
    async fn pull(
        &self,
        chart: &HelmChart,
        creds: Option<&Credentials>,
        expected: Option<&str>,
    ) -> Result<(String, PathBuf), ChartError> {
        let what = format!("chart {} {} from {}", chart.chart, chart.version, chart.repository);
        let dir = self.scratch_dir().await?;
        let result = self.pull_into(chart, creds, &dir, &what, expected).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }

    async fn pull_into(
        &self,
        chart: &HelmChart,
        creds: Option<&Credentials>,
        dir: &Path,
        what: &str,
        expected: Option<&str>,
    ) -> Result<(String, PathBuf), ChartError> {
        let done = self.runner.run("pull", pull_args(chart, creds, dir)).await?;
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

    fn kept(&self, digest: &str) -> PathBuf {
        self.charts.join(format!("{}.tgz", digest.replace(':', "-")))
    }

    async fn scratch_dir(&self) -> Result<PathBuf, ChartError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.scratch.join(format!("{}-{n}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.map_err(scratch_error)?;
        Ok(dir)
    }
}

fn scratch_error(e: std::io::Error) -> ChartError {
    ChartError::Unavailable(format!("the chart work directory: {e}"))
}

/// `helm pull` of one exact chart version: `oci://…/CHART` or `CHART --repo URL`.
fn pull_args(chart: &HelmChart, creds: Option<&Credentials>, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["pull".into()];
    match chart.repository.strip_prefix("oci://") {
        Some(_) => args.push(format!("{}/{}", chart.repository.trim_end_matches('/'), chart.chart).into()),
        None => {
            args.push(chart.chart.clone().into());
            args.push("--repo".into());
            args.push(chart.repository.clone().into());
        }
    }
    args.extend(["--version".into(), chart.version.clone().into(), "--destination".into(), dir.into()]);
    if chart.plain_http {
        args.push("--plain-http".into());
    }
    if let Some(c) = creds {
        args.extend([
            "--username".into(),
            c.username.clone().into(),
            "--password".into(),
            c.password.clone().into(),
        ]);
    }
    args
}

fn render_key(digest: &str, release: &str, namespace: &str, values: &Value) -> String {
    let mut h = Sha256::new();
    for part in [digest, release, namespace, &values.to_string()] {
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
        let oci =
            strings(pull_args(&HelmChart { plain_http: true, ..chart("oci://reg:5000/charts/") }, None, dir));
        assert_eq!(
            oci,
            [
                "pull",
                "oci://reg:5000/charts/payments",
                "--version",
                "1.3.10",
                "--destination",
                "/w",
                "--plain-http"
            ]
        );
        let creds = Credentials { username: "ci".into(), password: "s3cret".into() };
        let http = strings(pull_args(&chart("https://charts.example.com/stable"), Some(&creds), dir));
        assert_eq!(
            http,
            [
                "pull",
                "payments",
                "--repo",
                "https://charts.example.com/stable",
                "--version",
                "1.3.10",
                "--destination",
                "/w",
                "--username",
                "ci",
                "--password",
                "s3cret"
            ]
        );
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn the_render_key_changes_with_every_input() {
        let v = serde_json::json!({"replicaCount": 2});
        let base = render_key("sha256:a", "payments", "prod", &v);
        assert_eq!(base, render_key("sha256:a", "payments", "prod", &v));
        for other in [
            render_key("sha256:b", "payments", "prod", &v),
            render_key("sha256:a", "payments2", "prod", &v),
            render_key("sha256:a", "payments", "prod2", &v),
            render_key("sha256:a", "payments", "prod", &serde_json::json!({"replicaCount": 3})),
        ] {
            assert_ne!(base, other);
        }
    }
}
