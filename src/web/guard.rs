//! Who may talk to the web view, checked before any page or action: the `Host` a browser sent
//! (DNS rebinding: a page of another site whose name resolves to 127.0.0.1 reaches this server,
//! but its requests carry that site's name), the `Origin` of a POST (another site's form), and the
//! session a form's token was made for (a token copied out of one browser acts in no other).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::View;

/// The cookie that names a browser's session with this process.
pub const SESSION_COOKIE: &str = "tuskfish_session";

/// Pure: whether a `Host` header names this server. An IP address or `localhost` cannot be
/// rebound by another site; any other name only when the operator of the view allowed it
/// (`--allow-host`, for a name in front of a tunnel).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
        || allowed.iter().any(|a| normalized(a).eq_ignore_ascii_case(name))
}

/// An `--allow-host` value as a bare name: `Tuskfish.example.:443` → `Tuskfish.example`.
fn normalized(allowed: &str) -> &str {
    let name = host_name(allowed.trim());
    name.strip_suffix('.').unwrap_or(name)
}

/// The host of a `Host` header, without its port (`[::1]:8090` → `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(v6, _)| &host[..=v6.len()]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Pure: whether a POST comes from a page of this server. Browsers send `Origin` with every POST
/// (and `Sec-Fetch-Site`); a client that sends neither (curl) is no other site's page, and still
/// needs a token and the session it belongs to.
pub fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let origin_ok = match text(header::ORIGIN.as_str()) {
        None => true,
        Some(origin) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
    };
    let site_ok = text("sec-fetch-site").is_none_or(|s| s == "same-origin" || s == "none");
    origin_ok && site_ok
}

/// Refuses a request for a foreign host, and a POST from another origin, before it reaches a page.
pub async fn check(State(view): State<View>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !host_allowed(host, &view.allowed_hosts) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this view answers to localhost and IP addresses only (and to names given with --allow-host)\n",
        )
            .into_response();
    }
    if request.method() == Method::POST && !same_origin(request.headers(), host) {
        return (StatusCode::FORBIDDEN, "a form of another site acts on nothing here\n").into_response();
    }
    // A preview runs a dry run (and a chart render) with the person's credentials: only this
    // view's own pages link to one, never another site.
    let cross_site = request.headers().get("sec-fetch-site").is_some_and(|v| v == "cross-site");
    if cross_site && request.uri().path().ends_with("/preview") {
        return (StatusCode::FORBIDDEN, "previews open from this view's own pages only\n").into_response();
    }
    next.run(request).await
}

/// The session a request belongs to, from its cookie.
pub fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && valid_session(value))
        .map(|(_, value)| value.to_string())
}

/// Sessions are 64 hex digits (what [`new_session`] makes); anything else is no session.
fn valid_session(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new session id, and the `Set-Cookie` value that gives it to the browser (this path only, not
/// for scripts, never sent with another site's request).
pub fn new_session() -> std::io::Result<(String, String)> {
    let id = random_hex()?;
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    Ok((id, cookie))
}

/// The form token of `session`: a keyed hash, so only this process can make it and it is worth
/// nothing with another session.
pub fn token_for(key: &str, session: &str) -> String {
    let digest =
        Sha256::new().chain_update(key.as_bytes()).chain_update(b"\0").chain_update(session).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in constant time (a timing difference would let a page guess a token byte by byte).
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 bytes from the kernel's random source, as hex.
pub(crate) fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_localhost_and_allowed_names_are_this_server() {
        let allowed = vec!["tuskfish.internal".to_string(), "Tunnel.Example.:443".to_string()];
        let cases = [
            ("127.0.0.1:8090", true),
            ("localhost:8090", true),
            ("LOCALHOST", true),
            ("[::1]:8090", true),
            ("10.1.2.3", true),
            ("tuskfish.internal:8090", true),
            ("tuskfish.internal.:8090", true),
            ("tunnel.example", true),
            // A rebinding page's own name, pointed at 127.0.0.1.
            ("attacker.example:8090", false),
            ("localhost.attacker.example", false),
            ("127.0.0.1.nip.io:8090", false),
            ("", false),
        ];
        for (host, want) in cases {
            assert_eq!(host_allowed(host, &allowed), want, "{host}");
        }
    }

    #[test]
    fn a_post_must_come_from_this_origin() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let host = "127.0.0.1:8090";
        assert!(same_origin(&with(&[]), host), "curl sends no Origin");
        assert!(same_origin(
            &with(&[("origin", "http://127.0.0.1:8090"), ("sec-fetch-site", "same-origin")]),
            host
        ));
        assert!(!same_origin(&with(&[("origin", "http://attacker.example")]), host));
        assert!(!same_origin(&with(&[("origin", "http://127.0.0.1:8091")]), host));
        assert!(!same_origin(&with(&[("origin", "null")]), host));
        assert!(!same_origin(&with(&[("sec-fetch-site", "cross-site")]), host));
    }

    #[test]
    fn a_token_belongs_to_one_session() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(token_for("key", &a), token_for("key", &a));
        assert_ne!(token_for("key", &a), token_for("key", &b));
        assert_ne!(token_for("key", &a), token_for("other key", &a));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("x=1; {SESSION_COOKIE}={a}").parse().unwrap());
        assert_eq!(session_of(&h), Some(a));
        h.insert(header::COOKIE, format!("{SESSION_COOKIE}=short").parse().unwrap());
        assert_eq!(session_of(&h), None);
    }
}
