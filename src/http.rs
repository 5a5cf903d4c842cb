//! The operator's own outgoing HTTP(S): verification checks and notifications. One client (its
//! connection pool shared), every request bounded in time and in how much of the answer is read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How much of an answer's body is read (a check matches in it, a message quotes from it).
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
    inner: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // Without the system's CA certificates, http:// still works and https:// fails with a
        // message that says why (the client itself must not fail to start).
        let tls = builder.with_provider_and_native_roots(provider.clone()).unwrap_or_else(|_| {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config.unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }))
        });
        let connector = tls.https_or_http().enable_http1().build();
        Self { inner: Client::builder(TokioExecutor::new()).build(connector) }
    }

    /// Sends `request` and reads the answer, all within `timeout`. `Err`: why there is no answer.
    pub async fn send(&self, request: http::Request<Body>, timeout: Duration) -> Result<Answer, String> {
        let what = format!("{} {}", request.method(), redacted(request.uri()));
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| describe(&e))?;
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

/// [`redacted`] of a URL given as text; one that does not parse is not quoted at all.
pub fn redacted_str(url: &str) -> String {
    url.parse::<http::Uri>().map_or_else(|_| "(a URL that does not parse)".into(), |u| redacted(&u))
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
            let got = redacted_str(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("SECRET"), "{got}");
        }
        assert_eq!(redacted_str("not a url with SECRET"), "(a URL that does not parse)");
    }
}
