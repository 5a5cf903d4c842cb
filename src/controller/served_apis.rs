//! What a chart may know of the cluster it is rendered for (Helm's `.Capabilities`): the API
//! server's version and the API versions it serves, from the cluster's aggregated discovery.
//!
//! Asked at every render, which is once per rollout (outputs are kept), so that a CRD installed a
//! second ago is seen by the next rollout. Each discovery document is asked with the ETag of the
//! last answer: a cluster whose APIs did not change answers `304 Not Modified` with no body, so a
//! burst of renders costs three small requests each, not the whole API list each.

use http::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use http::{Request, StatusCode};
use kube::Client;
use kube::core::discovery::v2::{ACCEPT_AGGREGATED_DISCOVERY_V2, APIGroupDiscoveryList};
use tokio::sync::Mutex;

use crate::helm::{Capabilities, ChartError};

/// How long a render waits for the cluster's answers (a stalled cluster fails the render, which
/// is tried again, instead of holding every render there behind it).
const ASK_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The last discovery answers of one cluster.
#[derive(Default)]
pub struct ServedApis {
    /// Held across the requests: renders at once share one refresh instead of each asking.
    last: Mutex<Last>,
}

#[derive(Default)]
struct Last {
    core: Option<Document>,
    groups: Option<Document>,
}

/// One discovery document (`/api` or `/apis`), as the API versions it lists.
#[derive(Clone)]
struct Document {
    etag: String,
    api_versions: Vec<String>,
}

impl ServedApis {
    /// The cluster's capabilities now. Fails (transiently) when the cluster does not answer: a
    /// chart rendered without them could silently drop objects.
    pub async fn capabilities(&self, client: &Client) -> Result<Capabilities, ChartError> {
        tokio::time::timeout(ASK_LIMIT, self.ask(client)).await.unwrap_or_else(|_| {
            Err(ChartError::Capabilities(format!(
                "the cluster did not tell its API versions (Helm's .Capabilities) within {}s",
                ASK_LIMIT.as_secs()
            )))
        })
    }

    async fn ask(&self, client: &Client) -> Result<Capabilities, ChartError> {
        let failed = |what: &str, e: String| {
            ChartError::Capabilities(format!("asking the cluster for {what} (Helm's .Capabilities): {e}"))
        };
        let version = client.apiserver_version().await.map_err(|e| failed("its version", e.to_string()))?;
        let mut last = self.last.lock().await;
        let core =
            refresh(client, "/api", last.core.take()).await.map_err(|e| failed("its API versions", e))?;
        last.core = Some(core);
        let groups =
            refresh(client, "/apis", last.groups.take()).await.map_err(|e| failed("its API versions", e))?;
        last.groups = Some(groups);
        let mut api_versions: Vec<String> =
            last.core.iter().chain(&last.groups).flat_map(|d| d.api_versions.iter().cloned()).collect();
        api_versions.sort();
        api_versions.dedup();
        Ok(Capabilities { kube_version: version.git_version, api_versions })
    }
}

/// `path`'s document: `known` again when the server says it has not changed.
async fn refresh(client: &Client, path: &str, known: Option<Document>) -> Result<Document, String> {
    let mut request = Request::get(path).header(ACCEPT, ACCEPT_AGGREGATED_DISCOVERY_V2);
    if let Some(known) = &known {
        request = request.header(IF_NONE_MATCH, known.etag.as_str());
    }
    let request = request.body(Vec::new()).map_err(|e| e.to_string())?;
    let response = client.send(request.map(Into::into)).await.map_err(|e| e.to_string())?;
    let status = response.status();
    if let (StatusCode::NOT_MODIFIED, Some(known)) = (status, known) {
        return Ok(known);
    }
    let etag =
        response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default();
    let body = response.into_body().collect_bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let said: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(format!("{path} answered {status}: {said}"));
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
