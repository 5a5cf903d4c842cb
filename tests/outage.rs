#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The API server, then etcd, restarted in the middle of rollouts: the operator (running on) picks
//! its watches up again by itself and finishes the rollout it was in, then reacts to the next change.
//! Needs the local control plane of `make test` (the processes are restarted from their pid files
//! next to the kubeconfig); against another cluster it says so and does nothing.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestNs, healthy_at, within};
use serde_json::json;

/// One process of the local control plane, known by its pid file.
struct Component {
    pid_file: PathBuf,
    log: PathBuf,
}

impl Component {
    fn of(state: &Path, name: &str) -> Option<Self> {
        let pid_file = state.join(format!("{name}.pid"));
        pid_file.exists().then(|| Self { pid_file, log: state.join(format!("{name}.log")) })
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(&self.pid_file).unwrap().trim().parse().unwrap()
    }

    /// Kills the process (SIGKILL: a crash; an orderly kube-apiserver shutdown drains for a minute)
    /// and starts it again with the same command line, detached like `hack/cluster-up.sh` starts it, updating its pid file so that
    /// `hack/cluster-down.sh` still finds it.
    // Detached on purpose: the control plane outlives this test, and cluster-down stops it.
    #[allow(clippy::zombie_processes)]
    async fn restart(&self) {
        let pid = self.pid();
        let argv: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
        within("the old process to exit", async {
            while process_alive(pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        // The killed process's ports can take a moment to be free again: a start that exits at
        // once (bind: address already in use) is tried again.
        let mut running = None;
        for _ in 0..40 {
            let log = std::fs::OpenOptions::new().append(true).open(&self.log).unwrap();
            let mut started = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            if started.try_wait().unwrap().is_none() {
                running = Some(started.id());
                break;
            }
        }
        let pid =
            running.unwrap_or_else(|| panic!("{} does not start again; see {}", argv[0], self.log.display()));
        std::fs::write(&self.pid_file, pid.to_string()).unwrap();
    }
}

/// True while `pid` runs (a zombie waiting for its parent to reap it does not run).
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// Waits until the API server answers again, with etcd behind it (a list must succeed: the
/// version endpoint answers before etcd is reachable).
async fn api_back(t: &TestNs) {
    let releases: kube::Api<tuskfish::api::Release> = t.api();
    within("the API server to answer again", async {
        while releases.list(&Default::default()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn operator_recovers_from_api_server_and_etcd_restarts() {
    let state = PathBuf::from(common::kubeconfig()).parent().unwrap().to_path_buf();
    let (Some(apiserver), Some(etcd)) = (Component::of(&state, "apiserver"), Component::of(&state, "etcd"))
    else {
        eprintln!(
            "not the local control plane of `make test` (no pid files in {}): nothing to restart",
            state.display()
        );
        return;
    };
    let t = TestNs::new("outage").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // The API server goes away right after a rollout was asked for.
    t.app_version("pay", "1.1.0", json!({})).await;
    t.set_version("pay-dev", "1.1.0").await;
    apiserver.restart().await;
    api_back(&t).await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;

    // etcd goes away under the API server.
    t.app_version("pay", "1.2.0", json!({})).await;
    t.set_version("pay-dev", "1.2.0").await;
    etcd.restart().await;
    api_back(&t).await;
    let r = t.wait_release("pay-dev", healthy_at("1.2.0")).await;

    // And the watches work after both: a change made now is seen and rolled out.
    t.app_version("pay", "1.3.0", json!({})).await;
    t.set_version("pay-dev", "1.3.0").await;
    let after = t.wait_release("pay-dev", healthy_at("1.3.0")).await;
    let versions: Vec<String> = after.status.unwrap().history.iter().map(|h| h.version.clone()).collect();
    assert_eq!(versions, ["1.3.0", "1.2.0", "1.1.0", "1.0.0"], "before: {:#?}", r.status);
}
