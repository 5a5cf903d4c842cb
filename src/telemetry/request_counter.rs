//! A tower layer that counts the operator's API requests by kind (read vs write), so "steady state
//! makes zero writes" is measured on the wire rather than assumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

/// Totals since start. Watches count as reads.
#[derive(Debug, Default)]
pub struct RequestCounts {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl RequestCounts {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    /// POST, PUT, PATCH and DELETE requests, including Events.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Layer to put on the kube client's service stack.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: Arc<RequestCounts>,
}

impl RequestCounter {
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }
}

impl<S> Layer<S> for RequestCounter {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            counts: self.counts.clone(),
        }
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
        let counter = match *req.method() {
            Method::GET | Method::HEAD | Method::OPTIONS => &self.counts.reads,
            _ => &self.counts.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}
