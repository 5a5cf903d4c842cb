//! The processes of a control plane started by `hack/cluster-up.sh`, known by their pid files: to
//! stop and restart them (outages), and to start a control plane of its own for a test that needs
//! another cluster.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::within;

/// One process of the local control plane, known by its pid file.
pub struct Component {
    pid_file: PathBuf,
    log: PathBuf,
}

impl Component {
    pub fn of(state: &Path, name: &str) -> Option<Self> {
        let pid_file = state.join(format!("{name}.pid"));
        pid_file.exists().then(|| Self { pid_file, log: state.join(format!("{name}.log")) })
    }

    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(&self.pid_file).unwrap().trim().parse().unwrap()
    }

    pub fn argv(&self) -> Vec<String> {
        std::fs::read_to_string(format!("/proc/{}/cmdline", self.pid()))
            .unwrap()
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect()
    }

    /// The value of the command-line flag `name` (given as `--name value` or `--name=value`).
    pub fn flag(&self, name: &str) -> String {
        let argv = self.argv();
        let inline = format!("{name}=");
        argv.iter()
            .enumerate()
            .find_map(|(i, a)| {
                if a == name { argv.get(i + 1).cloned() } else { a.strip_prefix(&inline).map(String::from) }
            })
            .unwrap_or_else(|| panic!("{} has no {name} flag: {argv:?}", self.pid_file.display()))
    }

    /// SIGKILLs the process and waits until it is gone.
    pub async fn kill(&self) {
        let pid = self.pid();
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
        within("the old process to exit", async {
            while process_alive(pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }

    /// Freezes the process (SIGSTOP: its connections stay open and nothing answers, as in a network
    /// partition) while `meanwhile` runs, then lets it go on (also if `meanwhile` panics).
    pub async fn frozen_while(&self, meanwhile: impl Future<Output = ()>) {
        struct Thaw(i32);
        impl Drop for Thaw {
            fn drop(&mut self) {
                let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
            }
        }
        let pid = self.pid();
        assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
        let _thaw = Thaw(pid);
        meanwhile.await;
    }

    /// Kills the process (SIGKILL: a crash; an orderly kube-apiserver shutdown drains for a minute)
    /// and starts it again with the same command line, detached like `hack/cluster-up.sh` starts
    /// it, updating its pid file so that `hack/cluster-down.sh` still finds it.
    pub async fn restart(&self) {
        self.restart_after(async {}).await;
    }

    /// As [`Self::restart`], with `meanwhile` run while the process is down.
    // Detached on purpose: the control plane outlives this test, and cluster-down stops it.
    #[allow(clippy::zombie_processes)]
    pub async fn restart_after(&self, meanwhile: impl Future<Output = ()>) {
        let argv = self.argv();
        self.kill().await;
        meanwhile.await;
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
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// A control plane of a test's own: another cluster on loopback, started by `hack/cluster-up.sh`
/// (same Kubernetes version as the bed) and stopped and removed when dropped.
pub struct OwnCluster {
    pub dir: PathBuf,
}

impl OwnCluster {
    pub async fn start(name: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("tuskfish-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = tokio::process::Command::new(root.join("hack/cluster-up.sh"))
            .arg(&dir)
            .env("KWOK_NODES", "1")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "hack/cluster-up.sh {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// Its admin kubeconfig (a token, the server's certificate not checked: all inline).
    pub fn kubeconfig(&self) -> String {
        std::fs::read_to_string(self.dir.join("kubeconfig")).unwrap()
    }

    /// A kubeconfig of the least-privileged identity the README tells users to make for the
    /// operator in another cluster (`hack/remote-kubeconfig.sh`, made with this cluster's admin).
    pub fn operator_kubeconfig(&self) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(root.join("hack/remote-kubeconfig.sh"))
            .arg(self.dir.join("kubeconfig"))
            .arg("1h")
            .output()
            .unwrap();
        assert!(out.status.success(), "hack/remote-kubeconfig.sh: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }

    pub fn apiserver(&self) -> Component {
        Component::of(&self.dir, "apiserver").unwrap()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(root.join("hack/cluster-down.sh")).arg(&self.dir).arg("--purge").status();
    }
}

/// Writes `kubeconfig` into the Secret `name` (key `kubeconfig`) of `secrets`' namespace, as a user
/// rotating it would (server-side apply, so a second call replaces the first).
pub async fn put_kubeconfig(
    secrets: &kube::Api<k8s_openapi::api::core::v1::Secret>,
    name: &str,
    kubeconfig: &str,
) {
    use k8s_openapi::ByteString;
    use kube::api::{Patch, PatchParams};
    let body = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(std::collections::BTreeMap::from([(
            "kubeconfig".to_string(),
            ByteString(kubeconfig.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets.patch(name, &PatchParams::apply("tuskfish-tests").force(), &Patch::Apply(&body)).await.unwrap();
}
