//! A tower layer that counts the operator's API requests by kind (read vs write), so "steady state
//! makes zero writes" is measured on the wire rather than assumed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

/// Totals since start. Watches count as reads.
#[derive(Debug, Default)]
pub struct RequestCounts {
    reads: AtomicU64,
    writes: AtomicU64,
    /// Writes to Leases (leader election, shards, an agent's heartbeat), counted apart: they are
    /// the only writes a replica at rest makes.
    lease_writes: AtomicU64,
    writes_by_namespace: Mutex<HashMap<String, u64>>,
}

impl RequestCounts {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    /// POST, PUT, PATCH and DELETE requests, including Events, but not to Leases.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    /// Writes to Leases.
    pub fn lease_writes(&self) -> u64 {
        self.lease_writes.load(Ordering::Relaxed)
    }
    /// Writes to objects in namespaces whose name starts with `prefix`.
    pub fn writes_in_namespaces(&self, prefix: &str) -> u64 {
        let Ok(by_ns) = self.writes_by_namespace.lock() else {
            return 0;
        };
        by_ns.iter().filter(|(ns, _)| ns.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    fn record_write(&self, path: &str) {
        if path.starts_with("/apis/coordination.k8s.io/") {
            self.lease_writes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(ns) = namespace_of(path)
            && let Ok(mut by_ns) = self.writes_by_namespace.lock()
        {
            *by_ns.entry(ns.to_string()).or_default() += 1;
        }
    }
}

/// The namespace segment of an API path (`/api/v1/namespaces/{ns}/…`, `/apis/g/v/namespaces/{ns}/…`).
fn namespace_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    parts.by_ref().find(|p| *p == "namespaces")?;
    parts.next().filter(|ns| !ns.is_empty())
}

/// Layer to put on the kube client's service stack.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: Arc<RequestCounts>,
}

impl RequestCounter {
    /// A layer that counts into `counts` (another client of the same process, e.g. one that
    /// impersonates).
    pub fn with_counts(counts: Arc<RequestCounts>) -> Self {
        Self { counts }
    }

    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }
}

impl<S> Layer<S> for RequestCounter {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Counted { inner, counts: self.counts.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<RequestCounts>,
}

impl<S, B> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match *req.method() {
            Method::GET | Method::HEAD | Method::OPTIONS => {
                self.counts.reads.fetch_add(1, Ordering::Relaxed);
            }
            _ => self.counts.record_write(req.uri().path()),
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_from_paths() {
        assert_eq!(namespace_of("/api/v1/namespaces/a/pods/x"), Some("a"));
        assert_eq!(namespace_of("/apis/tuskfish.dev/v1alpha1/namespaces/fin/releases/r/status"), Some("fin"));
        assert_eq!(namespace_of("/api/v1/namespaces"), None);
        assert_eq!(namespace_of("/api/v1/nodes/n"), None);
    }

    #[test]
    fn lease_writes_are_counted_apart() {
        let c = RequestCounts::default();
        c.record_write("/apis/coordination.k8s.io/v1/namespaces/ops/leases/tuskfish-shard-0-of-3");
        c.record_write("/apis/tuskfish.dev/v1alpha1/namespaces/fin/releases/r/status");
        assert_eq!((c.writes(), c.lease_writes()), (1, 1));
        assert_eq!(c.writes_in_namespaces("ops"), 0);
    }
}
