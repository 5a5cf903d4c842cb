//! Network faults on loopback, from Toxiproxy (`hack/build-control-plane.sh --toxiproxy`, which
//! `make test` builds from its Go module): a proxy in front of an API server, through which a
//! process under test connects, and the faults a real network has — latency, a stall (connections
//! stay open, nothing gets through: a partition), resets.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Proc, free_port, process, within};

/// A Toxiproxy server of a test's own (stopped when dropped).
pub struct Toxiproxy {
    api: u16,
    _server: Proc,
}

/// One fault, as Toxiproxy's toxics make it.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Every answer `ms` late (± a fifth).
    Latency(u64),
    /// Nothing gets through either way, and connections stay open: what a partition looks like.
    Stall,
    /// Every connection is reset (new ones too) while it lasts.
    Reset,
}

impl Toxiproxy {
    pub async fn start(name: &str) -> Self {
        let binary = std::env::var("TUSKFISH_TOXIPROXY")
            .expect("TUSKFISH_TOXIPROXY is not set: run `make test`, which builds Toxiproxy");
        let api = free_port();
        let log = std::env::temp_dir().join(format!("tuskfish-toxiproxy-{name}-{}.log", std::process::id()));
        let server = process(&binary, &["-host", "127.0.0.1", "-port", &api.to_string()], &log);
        super::wait_listening(api, "Toxiproxy's API").await;
        Self { api, _server: server }
    }

    /// A proxy named `name` listening on a port of its own, to `upstream` (`host:port`); the
    /// address to connect to instead.
    pub async fn proxy(&self, name: &str, upstream: &str) -> String {
        let listen = format!("127.0.0.1:{}", free_port());
        let body = json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true});
        let (status, answer) = self.call("POST", "/proxies", Some(body)).await;
        assert!(status == 201, "creating proxy {name}: {status} {answer}");
        listen
    }

    /// Starts `fault` on proxy `name`.
    pub async fn start_fault(&self, name: &str, fault: Fault) {
        for (toxic, kind, stream, attributes) in toxics(fault) {
            let body = json!({"name": toxic, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes});
            let (status, answer) = self.call("POST", &format!("/proxies/{name}/toxics"), Some(body)).await;
            assert!(status == 200, "adding {toxic} to {name}: {status} {answer}");
        }
    }

    /// Ends `fault` on proxy `name`.
    pub async fn end_fault(&self, name: &str, fault: Fault) {
        for (toxic, ..) in toxics(fault) {
            let (status, answer) =
                self.call("DELETE", &format!("/proxies/{name}/toxics/{toxic}"), None).await;
            assert!(status == 204, "removing {toxic} from {name}: {status} {answer}");
        }
    }

    /// One request to Toxiproxy's API (HTTP/1.1 on loopback, the connection closed after it).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        within(&format!("Toxiproxy {method} {path}"), async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.api)).await.unwrap();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(request.as_bytes()).await.unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).await.unwrap();
            let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            (status, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
        })
        .await
    }
}

/// The toxics of `fault`: name, type, stream, attributes.
fn toxics(fault: Fault) -> Vec<(&'static str, &'static str, &'static str, Value)> {
    match fault {
        Fault::Latency(ms) => {
            vec![("latency", "latency", "downstream", json!({"latency": ms, "jitter": ms / 5}))]
        }
        // `timeout` 0: data is dropped, and the connection never closed, until the toxic goes.
        Fault::Stall => vec![
            ("stall-up", "timeout", "upstream", json!({"timeout": 0})),
            ("stall-down", "timeout", "downstream", json!({"timeout": 0})),
        ],
        Fault::Reset => vec![("reset", "reset_peer", "downstream", json!({"timeout": 0}))],
    }
}

/// The `host:port` of the server a kubeconfig's current cluster names.
pub fn server_of(kubeconfig: &str) -> String {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let url: http::Uri = server.parse().unwrap();
    format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap_or(443))
}

/// `kubeconfig` with its server at `address` (`host:port`) instead.
pub fn through(kubeconfig: &str, address: &str) -> String {
    let server = server_of(kubeconfig);
    assert!(kubeconfig.contains(&server), "{server} not in the kubeconfig");
    kubeconfig.replace(&server, address)
}

/// How long a fault of the fault suite lasts at most.
pub const LONGEST_FAULT: Duration = Duration::from_secs(8);
