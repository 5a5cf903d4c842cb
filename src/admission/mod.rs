//! The validating admission webhook: `kubectl apply` of a tuskfish object that the CRDs' own rules
//! cannot judge (see `rules`) is refused at once with the reason, instead of being accepted and
//! then reported in a status condition.

pub mod rules;

#[cfg(test)]
mod proptests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::api::{Environment, Release};
use crate::index::PipelineIndex;

#[derive(Clone)]
struct State {
    client: Client,
    /// Refuse Releases that name an Environment that does not exist.
    strict: bool,
    /// The operator's index, to refuse a second Release of an app in one Environment.
    index: Option<Arc<PipelineIndex>>,
}

fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, String> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("cannot read the object: {e}"))
}

async fn problems(state: &State, req: &AdmissionRequest<DynamicObject>) -> Result<Vec<String>, String> {
    let Some(obj) = req.object.as_ref() else { return Ok(vec![]) };
    Ok(match req.kind.kind.as_str() {
        "Release" => {
            let r: Release = typed(obj)?;
            let exists = match (state.strict, req.namespace.as_deref()) {
                (true, Some(ns)) => {
                    let api: Api<Environment> = Api::namespaced(state.client.clone(), ns);
                    // When the check cannot be made, admit: the controller reports it anyway.
                    match api.get_opt(&r.spec.environment).await {
                        Ok(found) => Some(found.is_some()),
                        Err(e) => {
                            warn!(error = %e, "strict mode: could not look up the Environment");
                            None
                        }
                    }
                }
                _ => None,
            };
            let mut problems = rules::release(&r, exists);
            problems.extend(duplicate(state, req, &r));
            problems
        }
        "Environment" => rules::environment(&typed(obj)?, jiff::Timestamp::now()),
        _ => vec![],
    })
}

/// A Release that would be the second of its app in its Environment (it is new there: created, or
/// moved by an update), judged by the operator's index. A pair made before the webhook was
/// installed (or while it was down) is reported by the controller instead (`DuplicateRelease`).
fn duplicate(state: &State, req: &AdmissionRequest<DynamicObject>, r: &Release) -> Option<String> {
    let index = state.index.as_ref()?;
    let ns = req.namespace.as_deref()?;
    let old: Option<Release> = req.old_object.as_ref().and_then(|o| typed(o).ok());
    let moved = old.is_none_or(|o| o.spec.app != r.spec.app || o.spec.environment != r.spec.environment);
    let name = req.name.as_str();
    let others: Vec<String> =
        index.releases_of(ns, &r.spec.app, &r.spec.environment).into_iter().filter(|n| n != name).collect();
    (moved && !others.is_empty()).then(|| {
        format!(
            "Release {} already deploys {} to Environment {:?}; change that one (tuskfish deploy {} VERSION --env {}) or delete it first",
            others.join(", "),
            r.spec.app,
            r.spec.environment,
            r.spec.app,
            r.spec.environment
        )
    })
}

async fn validate(
    axum::extract::State(state): axum::extract::State<State>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review());
        }
    };
    let response = AdmissionResponse::from(&req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Json(response.into_review());
    }
    let response = match problems(&state, &req).await {
        Ok(p) if p.is_empty() => response,
        Ok(p) => {
            let name = req.object.as_ref().map(|o| o.name_any()).unwrap_or_default();
            info!(kind = %req.kind.kind, namespace = ?req.namespace, %name, problems = %p.join("; "), "admission denied");
            response.deny(p.join("; "))
        }
        Err(e) => response.deny(e),
    };
    Json(response.into_review())
}

/// Serves `POST /validate` over TLS with the certificate and key in `cert_dir` (`tls.crt`,
/// `tls.key`, as a kubernetes.io/tls Secret mounts them).
pub async fn serve(
    addr: SocketAddr,
    cert_dir: PathBuf,
    client: Client,
    strict: bool,
    index: Option<Arc<PipelineIndex>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, std::io::Error> {
    // kube's TLS stack is rustls with ring; make that the process-wide provider (idempotent).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = (cert_dir.join("tls.crt"), cert_dir.join("tls.key"));
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("webhook certificate {} / {}: {e}", cert.display(), key.display()),
        )
    })?;
    let app = Router::new().route("/validate", post(validate)).with_state(State { client, strict, index });
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let server = axum_server::bind_rustls(addr, tls).handle(handle);
    Ok(async move { server.serve(app.into_make_service()).await })
}
