//! What a chart may know of the cluster it is rendered for (Helm's `.Capabilities`): the API
//! server's version and the API versions it serves, from the cluster's aggregated discovery.
//!
//! Asked at every render, which is once per rollout (outputs are kept), so that a CRD installed a
//! second ago is seen by the next rollout. Each discovery document is asked with the ETag of the
//! last answer: a cluster whose APIs did not change answers `304 Not Modified` with no body, so a
//! burst of renders costs three small requests each, not the whole API list each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use kube::Client;
use kube::core::discovery::v2::{ACCEPT_AGGREGATED_DISCOVERY_V2, APIGroupDiscoveryList};
use tokio::sync::Mutex;

use crate::helm::{Capabilities, ChartError};

/// How long one refresh may take (a stalled cluster fails the renders waiting for it, which are
/// tried again, instead of holding them).
const ASK_LIMIT: Duration = Duration::from_secs(15);

/// The most a discovery document may weigh (a real cluster's `/apis` is well under 1 MiB; one with
/// every Crossplane provider a few MiB).
const DOCUMENT_LIMIT: usize = 8 * 1024 * 1024;

/// The last discovery answers of one cluster.
#[derive(Default)]
pub struct ServedApis {
    /// Held across a refresh: whoever waits for it takes its result when it started after they
    /// asked (single flight), so a burst of renders costs one or two refreshes, not one each.
    last: Mutex<Last>,
}

#[derive(Default)]
struct Last {
    core: Option<Document>,
    groups: Option<Document>,
    /// The latest refresh: when it started, and what it gave.
    refreshed: Option<(Instant, Result<Arc<Capabilities>, ChartError>)>,
}

/// One discovery document (`/api` or `/apis`), as the API versions it lists.
#[derive(Clone)]
struct Document {
    etag: String,
    api_versions: Vec<String>,
}

impl ServedApis {
    /// The cluster's capabilities as of now or later. Fails (transiently) when the cluster does
    /// not answer: a chart rendered without them could silently drop objects.
    pub async fn capabilities(&self, client: &Client) -> Result<Arc<Capabilities>, ChartError> {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, result)) = &last.refreshed
            && *started >= asked
        {
            return result.clone();
        }
        let started = Instant::now();
        let (core, groups) = (last.core.clone(), last.groups.clone());
        let result = match tokio::time::timeout(ASK_LIMIT, ask(client, core, groups)).await {
            Ok(Ok((version, core, groups))) => {
                let mut api_versions: Vec<String> =
                    core.api_versions.iter().chain(&groups.api_versions).cloned().collect();
                api_versions.sort();
                api_versions.dedup();
                (last.core, last.groups) = (Some(core), Some(groups));
                Ok(Arc::new(Capabilities { kube_version: version, api_versions }))
            }
            Ok(Err(why)) => Err(ChartError::Capabilities(format!(
                "asking the cluster what it serves (Helm's .Capabilities): {why}"
            ))),
            Err(_) => Err(ChartError::Capabilities(format!(
                "the cluster did not tell what it serves (Helm's .Capabilities) within {}s",
                ASK_LIMIT.as_secs()
            ))),
        };
        last.refreshed = Some((started, result.clone()));
        result
    }
}

/// The cluster's version and its two discovery documents (`known` ones again while unchanged).
async fn ask(
    client: &Client,
    core: Option<Document>,
    groups: Option<Document>,
) -> Result<(String, Document, Document), String> {
    let version = client.apiserver_version().await.map_err(|e| format!("its version: {e}"))?;
    let core = refresh(client, "/api", core).await?;
    let groups = refresh(client, "/apis", groups).await?;
    Ok((version.git_version, core, groups))
}

/// `path`'s document: `known` again when the server says it has not changed.
async fn refresh(client: &Client, path: &str, known: Option<Document>) -> Result<Document, String> {
    let mut request = Request::get(path).header(ACCEPT, ACCEPT_AGGREGATED_DISCOVERY_V2);
    if let Some(known) = &known {
        request = request.header(IF_NONE_MATCH, known.etag.as_str());
    }
    let request = request.body(Vec::new()).map_err(|e| e.to_string())?;
    let response = client.send(request.map(Into::into)).await.map_err(|e| format!("{path}: {e}"))?;
    let status = response.status();
    if let (StatusCode::NOT_MODIFIED, Some(known)) = (status, known) {
        return Ok(known);
    }
    let aggregated = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("as=APIGroupDiscoveryList"));
    let etag =
        response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default();
    let body = Limited::new(response.into_body(), DOCUMENT_LIMIT)
        .collect()
        .await
        .map_err(|e| format!("{path}: {e} (at most {DOCUMENT_LIMIT} bytes are read)"))?
        .to_bytes();
    if !status.is_success() {
        let said: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(format!("{path} answered {status}: {said}"));
    }
    // A server without aggregated discovery answers the older document, which would read as an
    // empty list: refused, or every chart there would see no API at all.
    if !aggregated {
        return Err(format!(
            "{path} did not answer with aggregated discovery (apidiscovery.k8s.io/v2, Kubernetes 1.30 and later)"
        ));
    }
    let list: APIGroupDiscoveryList =
        serde_json::from_slice(&body).map_err(|e| format!("{path} is not aggregated discovery: {e}"))?;
    Ok(Document { etag, api_versions: api_versions(&list) })
}

/// Pure: what `.Capabilities.APIVersions.Has` answers yes to, from one discovery document: each
/// served `group/version` (`v1` for the core group) and each of its kinds as `group/version/Kind`.
fn api_versions(list: &APIGroupDiscoveryList) -> Vec<String> {
    let mut out = Vec::new();
    for group in &list.items {
        let name = group.metadata.as_ref().and_then(|m| m.name.as_deref()).unwrap_or_default();
        for version in &group.versions {
            let Some(v) = version.version.as_deref() else { continue };
            let gv = if name.is_empty() { v.to_string() } else { format!("{name}/{v}") };
            for resource in &version.resources {
                if let Some(kind) = resource.response_kind.as_ref().and_then(|k| k.kind.as_deref()) {
                    out.push(format!("{gv}/{kind}"));
                }
            }
            out.push(gv);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_versions_and_kinds_a_chart_may_ask_for() {
        let list: APIGroupDiscoveryList = serde_json::from_value(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "items": [
                {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                    {"resource": "configmaps", "responseKind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "scope": "Namespaced", "verbs": ["get"]}
                ]}]},
                {"metadata": {"name": "monitoring.coreos.com"}, "versions": [
                    {"version": "v1", "resources": [
                        {"resource": "servicemonitors", "responseKind": {"group": "monitoring.coreos.com", "version": "v1", "kind": "ServiceMonitor"}, "scope": "Namespaced", "verbs": ["get"]}
                    ]},
                    {"version": "v1alpha1", "resources": []}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(
            api_versions(&list),
            [
                "v1/ConfigMap",
                "v1",
                "monitoring.coreos.com/v1/ServiceMonitor",
                "monitoring.coreos.com/v1",
                "monitoring.coreos.com/v1alpha1"
            ]
        );
    }
}
