//! How the operator (and the CLI's dry runs) find and bound Helm.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::helm::HelmConfig;

/// (Field names are the arguments' ids and must not repeat those of the command they join.)
#[derive(Args, Clone, Debug)]
pub struct HelmArgs {
    /// The Helm v4 binary that renders chart AppVersions (a name is looked up on PATH).
    #[arg(long = "helm", default_value = "helm", env = "TUSKFISH_HELM")]
    pub helm_binary: PathBuf,
    /// Where pulled charts (by digest) and Helm's own files are kept.
    #[arg(long = "helm-work-dir", env = "TUSKFISH_HELM_WORK_DIR")]
    pub helm_work_dir: Option<PathBuf>,
    /// Helm processes at once (pulls and renders).
    #[arg(long = "helm-concurrency", default_value_t = 4)]
    pub helm_concurrency: usize,
    /// Time limit of one pull or render.
    #[arg(long = "helm-timeout", default_value = "60s", value_parser = super::duration_arg)]
    pub helm_timeout: Duration,
    /// The most bytes one chart may render to.
    #[arg(long = "helm-max-output", default_value_t = 4 * 1024 * 1024)]
    pub helm_max_output: usize,
}

impl HelmArgs {
    /// The Helm to run, or why there is none (said in the conditions of chart AppVersions).
    pub fn config(&self) -> Result<HelmConfig, String> {
        let binary = resolve(&self.helm_binary).ok_or_else(|| {
            format!(
                "{} is not an executable file or on PATH: install Helm v4 beside tuskfish or pass --helm",
                self.helm_binary.display()
            )
        })?;
        Ok(HelmConfig {
            binary,
            work_dir: self
                .helm_work_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("tuskfish-helm")),
            concurrency: self.helm_concurrency,
            timeout: self.helm_timeout,
            max_output: self.helm_max_output,
        })
    }
}

/// An absolute path to the binary: Helm runs with an empty environment, so PATH is searched here.
fn resolve(binary: &Path) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if binary.components().count() > 1 {
        return executable(binary)
            .then(|| std::path::absolute(binary).unwrap_or_else(|_| binary.to_path_buf()));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(binary)).find(|p| executable(p))
}

/// Helm for the CLI's dry runs and diffs: `$TUSKFISH_HELM` or `helm` on PATH, its charts kept
/// under the user's cache directory.
pub fn for_cli() -> Result<std::sync::Arc<crate::helm::Helm>, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let args = HelmArgs {
        helm_binary: std::env::var_os("TUSKFISH_HELM").map_or_else(|| PathBuf::from("helm"), PathBuf::from),
        helm_work_dir: Some(cache.join("tuskfish").join("helm")),
        helm_concurrency: 2,
        helm_timeout: Duration::from_secs(60),
        helm_max_output: 4 * 1024 * 1024,
    };
    let config = args.config()?;
    crate::helm::Helm::new(config).map(std::sync::Arc::new).map_err(|e| format!("the chart cache: {e}"))
}
