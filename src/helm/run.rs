//! Runs the Helm binary as a child process, bounded: a number of runs at once, a time limit and a
//! cap on what it may print. The child sees a Helm home of its own and no kubeconfig, so nothing
//! of the host's Helm setup leaks in and it cannot reach a cluster.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::Semaphore;

use super::error::ChartError;

/// What Helm may print on stderr that is kept (its error messages are short).
const STDERR_LIMIT: u64 = 64 * 1024;

/// Variables passed through to Helm: proxies and custom CA bundles of the operator's pod.
const PASSED_THROUGH: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

pub(super) struct Runner {
    pub binary: PathBuf,
    /// Helm's config, cache and data homes live here.
    pub home: PathBuf,
    pub permits: Semaphore,
    /// Each pipeline's share of the permits.
    pub shares: Shares,
    pub timeout: Duration,
    pub max_output: usize,
}

/// Each pipeline namespace's share of the Helm permits: at most half of them (rounded up) at once,
/// so no pipeline can take them all.
pub(super) struct Shares {
    each: usize,
    by_pipeline: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Semaphore>>>,
}

impl Shares {
    pub fn new(each: usize) -> Self {
        Self { each: each.max(1), by_pipeline: Default::default() }
    }

    /// The semaphore of `pipeline` (one per pipeline namespace that ever ran Helm: they are few).
    fn of(&self, pipeline: &str) -> std::sync::Arc<Semaphore> {
        let mut map = self.by_pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(pipeline.to_string())
            .or_insert_with(|| std::sync::Arc::new(Semaphore::new(self.each)))
            .clone()
    }
}

pub(super) struct Finished {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Runner {
    /// Runs `helm ARGS` with `stdin` as its input; `what` names the step in a timeout message.
    pub async fn run(
        &self,
        pipeline: &str,
        what: &'static str,
        args: Vec<OsString>,
        stdin: Option<String>,
    ) -> Result<Finished, ChartError> {
        // A pipeline's share first, then a permit: one pipeline's slow charts wait in their own
        // queue and never hold more than its share of the permits others need.
        let share = self.shares.of(pipeline);
        let closed = |_| ChartError::Unavailable("the Helm runner is shutting down".into());
        let _share = share.acquire().await.map_err(closed)?;
        // The semaphores are never closed, so acquiring only fails if they were.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ChartError::Unavailable("the Helm runner is shutting down".into()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .env("KUBECONFIG", "/dev/null")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in PASSED_THROUGH {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            ChartError::Unavailable(format!("cannot run {} ({e}); see --helm", self.binary.display()))
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ChartError::Unavailable("helm's output pipes were not set up".into()));
        };
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            // Helm reads one line; a child that exits first closes the pipe, which is its answer.
            let _ = pipe.write_all(input.as_bytes()).await;
            drop(pipe);
        }
        let limit = self.max_output;
        let work = async {
            let out = async {
                let mut buf = Vec::new();
                let read = stdout.take(limit as u64 + 1).read_to_end(&mut buf).await;
                // Over the limit: stop the child rather than read (or wait for) the rest.
                if buf.len() > limit {
                    let _ = child.start_kill();
                }
                read.map(|_| buf)
            };
            let (out, err) = tokio::join!(out, read_bounded(stderr, STDERR_LIMIT));
            let status = child.wait().await;
            (out, err, status)
        };
        let seconds = self.timeout.as_secs();
        // On timeout the future (and with it the child, kill_on_drop) is dropped.
        let (out, err, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ChartError::Timeout { what, seconds })?;
        let io = |e: std::io::Error| ChartError::Unavailable(format!("reading helm's output: {e}"));
        let (stdout, stderr, status) = (out.map_err(io)?, err.map_err(io)?, status.map_err(io)?);
        if stdout.len() > limit {
            return Err(ChartError::OutputTooLarge { limit });
        }
        Ok(Finished {
            success: status.success(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// Reads up to `limit` bytes, then drains the rest unread, so a chatty child never blocks on a full
/// pipe (and the caller can tell it went over by the length).
async fn read_bounded(mut r: impl AsyncRead + Unpin, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r).take(limit).read_to_end(&mut buf).await?;
    tokio::io::copy(&mut r, &mut tokio::io::sink()).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_holds_at_most_its_share_and_others_keep_theirs() {
        let shares = Shares::new(2);
        let a = shares.of("team-a");
        let held: Vec<_> = (0..2).map(|_| a.clone().try_acquire_owned().unwrap()).collect();
        assert!(shares.of("team-a").try_acquire_owned().is_err(), "a third run of team-a waits");
        assert!(shares.of("team-b").try_acquire_owned().is_ok(), "team-b is not held up");
        drop(held);
        assert!(shares.of("team-a").try_acquire_owned().is_ok());
    }
}
