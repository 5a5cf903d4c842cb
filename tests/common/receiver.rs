//! A loopback HTTP server the operator talks to (verification checks, notifications): it answers
//! each path as the test says and keeps every request it got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;

/// Whether a Notification's status counts at least `n` deliveries.
pub fn delivered(n: u64) -> impl Fn(&tuskfish::api::Notification) -> bool {
    move |x| x.status.as_ref().is_some_and(|s| s.delivered >= n)
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct Inner {
    /// Per path: the answers still to give (the last one repeats).
    answers: HashMap<String, Vec<(u16, String)>>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<tokio::sync::Notify>,
}

impl Receiver {
    /// Listens on a free loopback port (on the test's runtime); unknown paths get `200 ok`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Self { port, inner: Arc::default(), notify: Arc::default() };
        let app = axum::Router::new().route("/{*path}", any(answer)).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    /// `host:port`, for a URL.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on `path` (without the leading `/`) answers these, in order; the last repeats.
    pub fn answer(&self, path: &str, answers: &[(u16, &str)]) {
        let list = answers.iter().map(|(s, b)| (*s, b.to_string())).collect();
        self.inner.lock().unwrap().answers.insert(path.to_string(), list);
    }

    /// Every request to `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner.lock().unwrap().received.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// [`Self::wait_for`] with an owned path.
    pub async fn wait_for_owned(&self, path: String, n: usize) -> Vec<Received> {
        self.wait_for(&path, n).await
    }

    /// Waits (without polling) until `path` has had `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                let got = self.received(path);
                if got.len() >= n {
                    return got;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(super::WAIT, wait).await {
            Ok(got) => got,
            Err(_) => panic!("{path}: {} of {n} requests after {:?}", self.received(path).len(), super::WAIT),
        }
    }
}

async fn answer(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (status, text) = {
        let mut inner = r.inner.lock().unwrap();
        let answer = match inner.answers.get_mut(&path) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if !list.is_empty() => list[0].clone(),
            _ => (200, "ok".to_string()),
        };
        let body = String::from_utf8_lossy(&body).into();
        inner.received.push(Received { path: path.clone(), headers, body, status: answer.0 });
        answer
    };
    r.notify.notify_waiters();
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), text)
}
