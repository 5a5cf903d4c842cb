//! `/metrics`, `/healthz` and `/readyz` on one small HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::{Metrics, RequestCounts};

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    requests: Arc<RequestCounts>,
}

async fn metrics_text(State(s): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.encode(&s.requests))
}

/// Ready once every cache has listed: a standby replica is ready too (it takes over warm).
async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    if s.metrics.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not listed yet\n")
    }
}

/// Binds `addr` (so a taken port fails at start, with the address in the error) and returns the
/// server to run until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    requests: Arc<RequestCounts>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, std::io::Error> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Shared { metrics, requests });
    serve_router(addr, "the metrics/health listener", app, shutdown).await
}

/// Binds `addr` now (a taken port fails at start, naming `what` and the address) and returns the
/// server that runs `app` until `shutdown`.
pub async fn serve_router(
    addr: SocketAddr,
    what: &str,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {what} {addr}: {e}")))?;
    Ok(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await })
}
