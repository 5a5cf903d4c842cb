//! Charts for the tests, made and served as a team would: `helm create` + `helm package`, pushed with
//! `helm push` to a CNCF distribution registry on loopback, or served from an HTTP chart repository
//! (an `index.yaml` made by `helm repo index`) on loopback, optionally behind basic auth.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::{Proc, free_port, process, wait_listening};

/// The Helm binary `make test` built (hack/build-control-plane.sh --helm).
pub fn helm_binary() -> String {
    std::env::var("TUSKFISH_HELM").expect("TUSKFISH_HELM is not set: run `make test`, which builds Helm v4")
}

/// A scratch directory of this test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tuskfish-charts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs helm with its homes in `dir` (nothing of the machine's Helm setup is used); panics with its
/// words when it fails.
pub fn helm(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(helm_binary())
        .args(args)
        .current_dir(dir)
        .env("HELM_CONFIG_HOME", dir.join(".helm/config"))
        .env("HELM_CACHE_HOME", dir.join(".helm/cache"))
        .env("HELM_DATA_HOME", dir.join(".helm/data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sha256:…` of a file, as the operator records a chart's digest.
pub fn digest_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `helm create NAME` at `version` in `dir/src-VERSION`, changed by `edit` (given the chart dir),
/// then `helm package`d into `dir`. Returns the package's path.
///
/// Beyond the scaffold, every chart has a ConfigMap with the DB host (`db.host`, default
/// `localhost`), so that per-environment values show in what is applied.
pub fn make_chart(dir: &Path, name: &str, version: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    helm(&src, &["create", name]);
    let chart = src.join(name);
    let meta = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let meta: String = meta
        .lines()
        .map(|l| match l {
            l if l.starts_with("version:") => format!("version: {version}"),
            l if l.starts_with("appVersion:") => format!("appVersion: \"{version}\""),
            l => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(chart.join("Chart.yaml"), meta).unwrap();
    let mut values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    values.push_str("\ndb:\n  host: localhost\n");
    std::fs::write(chart.join("values.yaml"), values).unwrap();
    std::fs::write(
        chart.join("templates/settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"".to_string()
            + name
            + ".fullname\" . }}-settings\ndata:\n  db-host: {{ .Values.db.host | quote }}\n  version: {{ .Chart.Version | quote }}\n",
    )
    .unwrap();
    edit(&chart);
    helm(dir, &["package", chart.to_str().unwrap(), "--destination", dir.to_str().unwrap()]);
    dir.join(format!("{name}-{version}.tgz"))
}

/// The CNCF distribution registry on a loopback port, storing in a directory of its own (so that a
/// restart serves what was pushed before).
pub struct Registry {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Registry {
    pub async fn start(name: &str) -> Self {
        let dir = scratch(&format!("registry-{name}"));
        let mut r = Self { port: free_port(), dir, proc: None };
        r.resume().await;
        r
    }

    /// `oci://127.0.0.1:PORT/charts`.
    pub fn repository(&self) -> String {
        format!("oci://127.0.0.1:{}/charts", self.port)
    }

    pub fn push(&self, package: &Path) {
        helm(&self.dir, &["push", package.to_str().unwrap(), &self.repository(), "--plain-http"]);
    }

    /// Stops serving (the test's "registry down").
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Serves again on the same port, from the same storage.
    pub async fn resume(&mut self) {
        let config = self.dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n",
                self.dir.join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let binary = std::env::var("TUSKFISH_REGISTRY")
            .expect("TUSKFISH_REGISTRY is not set: run `make test`, which builds the distribution registry");
        let log = self.dir.join("registry.log");
        self.proc = Some(process(&binary, &["serve", config.to_str().unwrap()], &log));
        wait_listening(self.port, "the registry listens").await;
    }
}

/// An HTTP chart repository on loopback: the files of `dir` (`index.yaml`, packages), and basic auth
/// when `credentials` is set.
pub struct ChartRepo {
    pub port: u16,
    pub dir: PathBuf,
}

#[derive(Clone)]
struct Served {
    dir: PathBuf,
    credentials: Arc<Mutex<Option<(String, String)>>>,
}

impl ChartRepo {
    pub async fn start(dir: &Path, credentials: Option<(&str, &str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Served {
            dir: dir.to_path_buf(),
            credentials: Arc::new(Mutex::new(credentials.map(|(u, p)| (u.to_string(), p.to_string())))),
        };
        let app = axum::Router::new().route("/{file}", get(serve_file)).with_state(served);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, dir: dir.to_path_buf() }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Rewrites `index.yaml` for the packages now in the directory.
    pub fn index(&self) {
        helm(&self.dir, &["repo", "index", self.dir.to_str().unwrap(), "--url", &self.url()]);
    }
}

async fn serve_file(
    State(s): State<Served>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Vec<u8>, StatusCode> {
    let wanted = s.credentials.lock().unwrap().clone();
    if let Some((user, password)) = wanted {
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(StatusCode::UNAUTHORIZED);
        }
    }
    if file.contains('/') || file.starts_with('.') {
        return Err(StatusCode::NOT_FOUND);
    }
    tokio::fs::read(s.dir.join(file)).await.map_err(|_| StatusCode::NOT_FOUND)
}

/// Standard base64 with padding (for the Basic auth header helm sends).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Waits at most this long for an AppVersion whose publish retries (the operator's chart retry).
pub const PUBLISH_RETRY_WAIT: Duration = Duration::from_secs(90);

/// A chart repository that accepts connections and never answers: every pull from it hangs until
/// Helm's time limit (what a runaway chart costs the operator). Counts the connections open now,
/// the most open at once and all it ever accepted.
pub struct Stall {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Stall {
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, most) = (Arc::new(Default::default()), Arc::new(Default::default()));
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (o, m, a): (Arc<std::sync::atomic::AtomicUsize>, Arc<std::sync::atomic::AtomicUsize>, _) =
            (Arc::clone(&open), Arc::clone(&most), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                held.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    // Read (and never answer) until the client gives up and closes.
                    let mut buf = [0u8; 1024];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { port, open, most, accepted, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` connections are open.
    pub async fn wait_open(&self, n: usize) {
        super::within(&format!("{n} connections to the stalling repository"), async {
            while self.open() < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.task.abort();
    }
}
