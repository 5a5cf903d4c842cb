//! The operator's own outgoing HTTP(S): verification checks and notifications. Every request goes
//! through [`crate::egress`] first: its host is resolved once, the addresses are checked against
//! what the pipeline may reach, and the connection goes to exactly those addresses. Bounded in time
//! and in how much of the answer is read; redirects are not followed (a 3xx is the answer).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::ConfigBuilderExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use crate::egress::Egress;

/// How much of an answer's body is read (a check matches in it).
pub const BODY_LIMIT: usize = 64 * 1024;

pub type Body = Full<Bytes>;

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The first [`BODY_LIMIT`] bytes, as text (invalid UTF-8 replaced).
    pub body: String,
}

#[derive(Clone)]
pub struct HttpClient {
    /// Built once: loading the system's CA certificates is the slow part of a client.
    tls: rustls::ClientConfig,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A resolver that answers with addresses resolved and checked before (see [`crate::egress`]).
#[derive(Clone)]
struct Pinned(Arc<Vec<SocketAddr>>);

impl tower::Service<Name> for Pinned {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(Vec::clone(&self.0).into_iter()))
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
        };
        // Without the system's CA certificates, http:// still works and https:// fails with a
        // message that says why (the client itself must not fail to start).
        let tls = versions()
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_native_roots().map_err(|e| e.to_string()))
            .map(|b| b.with_no_client_auth())
            .or_else(|_| {
                versions()
                    .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
            })
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        Self { tls }
    }

    /// A client that connects only to `addresses`.
    fn pinned(
        &self,
        addresses: Vec<SocketAddr>,
    ) -> Client<hyper_rustls::HttpsConnector<HttpConnector<Pinned>>, Body> {
        let mut http = HttpConnector::new_with_resolver(Pinned(Arc::new(addresses)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new()).build(connector)
    }

    /// Sends `request` where `egress` lets it go, and reads the answer, all within `timeout`.
    /// `Err`: why there is no answer (the URL redacted, see [`redacted`]).
    pub async fn send(
        &self,
        request: http::Request<Body>,
        timeout: Duration,
        egress: &Egress,
    ) -> Result<Answer, String> {
        let what = format!("{} {}", request.method(), redacted(request.uri()));
        let exchange = async {
            let addresses = egress.resolve_url(&request.uri().to_string()).await?;
            let response = self.pinned(addresses).request(request).await.map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while bytes.len() < BODY_LIMIT {
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => return Err(format!("reading the answer: {e}")),
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            bytes.extend_from_slice(data);
                        }
                    }
                }
            }
            bytes.truncate(BODY_LIMIT);
            Ok(Answer { status, body: String::from_utf8_lossy(&bytes).into_owned() })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within {}s", timeout.as_secs_f64())),
        }
    }
}

/// How a URL appears in a message, a log line or a status: scheme, host and port only. The rest
/// may be a credential (a Slack or Feishu webhook's path, DingTalk's `access_token`, WeCom's
/// `key`, a password before the `@`), and these messages are read by anyone who may read the
/// object they are written to.
pub fn redacted(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("(no host)");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("" | "/") => "",
        Some(_) => "/…",
    };
    format!("{scheme}://{host}{port}{rest}")
}

/// The error and its causes on one line (hyper's own message alone is often just "client error").
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_scheme_host_and_port_only() {
        let cases = [
            ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/…"),
            ("https://oapi.dingtalk.com/robot/send?access_token=SECRET", "https://oapi.dingtalk.com/…"),
            ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET", "https://qyapi.weixin.qq.com/…"),
            ("http://user:SECRET@127.0.0.1:8080/hook", "http://127.0.0.1:8080/…"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
            ("http://[::1]:9000?SECRET", "http://[::1]:9000/…"),
        ];
        for (url, want) in cases {
            let got = redacted(&url.parse().unwrap());
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("SECRET"), "{got}");
        }
    }
}
