//! Where the operator may connect on a pipeline's behalf: HTTP checks, notifications, Helm
//! repositories and other clusters' API servers all have URLs a tenant writes. Some addresses are
//! never reached unless a PipelinePolicy grants them by CIDR (loopback: the operator's own
//! metrics and web view; link-local: cloud metadata; the API server; the operator's pod), and a
//! policy with `egress.allow` limits the rest to what it lists. Checked after DNS resolution, on
//! every address a name has, and the connection then goes to exactly those addresses (a name that
//! resolves differently a moment later changes nothing).

use std::net::{IpAddr, SocketAddr};

use crate::plan::grants::glob;

/// What one pipeline may reach: its policy's allowlist (`None`: none, anywhere not denied by
/// default) and the addresses denied by default besides the fixed ranges.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    pub rules: Option<Vec<EgressRule>>,
    pub also: std::sync::Arc<[IpAddr]>,
}

impl Egress {
    /// The addresses a connection to `url` may use (see [`resolve_url`]).
    pub async fn resolve_url(&self, url: &str) -> Result<Vec<SocketAddr>, String> {
        resolve_url(url, self.rules.as_deref(), &self.also).await
    }

    /// Checks `url` for a connection another program makes (Helm, the cluster client): resolved
    /// and checked now, though that program resolves the name again itself.
    pub async fn allows_url(&self, url: &str) -> Result<(), String> {
        self.resolve_url(url).await.map(|_| ())
    }
}

/// One `egress.allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressRule {
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
    /// A host name; `*` stands for one or more labels.
    Host(String),
}

impl EgressRule {
    /// Reads an entry (`None`: neither a CIDR nor a host name; it grants nothing).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some((ip, prefix)) = s.split_once('/') {
            let network: IpAddr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Self::Cidr { network, prefix });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Self::Cidr { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } });
        }
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
        ok.then(|| Self::Host(s.to_ascii_lowercase()))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let Self::Cidr { network, prefix } = self else { return false };
        match (network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    fn names(&self, host: &str) -> bool {
        match self {
            Self::Host(pattern) => glob(pattern, &host.trim_end_matches('.').to_ascii_lowercase()),
            Self::Cidr { .. } => false,
        }
    }
}

/// Why an address is never reached by default, if it is one of those.
pub fn denied_by_default(ip: IpAddr, also: &[IpAddr]) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let fixed = match ip {
        IpAddr::V4(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V4(a) if a.is_link_local() => Some("a link-local address (cloud metadata lives there)"),
        IpAddr::V4(a) if a.is_unspecified() || a.is_broadcast() || a.is_multicast() => {
            Some("not a host address")
        }
        IpAddr::V6(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V6(a) if a.is_unicast_link_local() => Some("a link-local address"),
        IpAddr::V6(a) if a.is_unspecified() || a.is_multicast() => Some("not a host address"),
        _ => None,
    };
    fixed.or_else(|| also.contains(&ip).then_some("the API server's or the operator's own address"))
}

/// Pure: whether the operator may connect to `host` at `addresses` (what it resolved to) for a
/// pipeline whose policy allows `rules` (`None`: no allowlist). `also`: addresses denied by
/// default besides the fixed ranges (the API server's, the operator pod's).
pub fn check(
    host: &str,
    addresses: &[IpAddr],
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<(), String> {
    if addresses.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    let by_cidr = |ip: IpAddr| rules.is_some_and(|r| r.iter().any(|rule| rule.contains(ip)));
    for &ip in addresses {
        if let Some(why) = denied_by_default(ip, also)
            && !by_cidr(ip)
        {
            let what = if host == ip.to_string() { host.to_string() } else { format!("{host} is {ip},") };
            return Err(format!(
                "{what} {why}: the operator does not connect there for a pipeline unless a PipelinePolicy \
                 allows it by CIDR (spec.egress.allow)"
            ));
        }
    }
    let Some(rules) = rules else { return Ok(()) };
    if rules.iter().any(|r| r.names(host)) || addresses.iter().all(|&ip| by_cidr(ip)) {
        return Ok(());
    }
    Err(format!(
        "{host} ({}) is not in the pipeline's PipelinePolicy spec.egress.allow",
        addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    ))
}

/// Addresses of the operator's own that no pipeline reaches by default: the API server's (its URL
/// and the in-cluster Service, `KUBERNETES_SERVICE_HOST`) and the operator pod's (`POD_IP`).
pub async fn own_addresses(api_server: Option<&http::Uri>) -> Vec<IpAddr> {
    let mut hosts: Vec<String> = api_server.and_then(|u| u.host()).map(str::to_string).into_iter().collect();
    hosts.extend(["KUBERNETES_SERVICE_HOST", "POD_IP"].iter().filter_map(|v| std::env::var(v).ok()));
    let mut out = Vec::new();
    for host in hosts {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => {
                if let Ok(found) = tokio::net::lookup_host((bare, 443)).await {
                    out.extend(found.map(|a| a.ip()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The addresses `host:port` may be connected to for a pipeline, resolved once and checked: the
/// connection must use these and nothing resolved later.
pub async fn resolve(
    host: &str,
    port: u16,
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("resolving {bare}: {e}"))?
            .collect(),
    };
    let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
    check(bare, &ips, rules, also)?;
    Ok(addresses)
}

/// [`resolve`] for a URL's host and port (default ports by scheme).
pub async fn resolve_url(
    url: &str,
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<Vec<SocketAddr>, String> {
    let uri: http::Uri = url.parse().map_err(|_| "the URL does not parse".to_string())?;
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https" | "oci") => 443,
        _ => 80,
    });
    resolve(host, port, rules, also).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rules(list: &[&str]) -> Vec<EgressRule> {
        list.iter().filter_map(|s| EgressRule::parse(s)).collect()
    }

    #[test]
    fn rules_parse_or_grant_nothing() {
        assert_eq!(
            EgressRule::parse("10.0.0.0/8"),
            Some(EgressRule::Cidr { network: ip("10.0.0.0"), prefix: 8 })
        );
        assert_eq!(
            EgressRule::parse("127.0.0.1"),
            Some(EgressRule::Cidr { network: ip("127.0.0.1"), prefix: 32 })
        );
        assert_eq!(EgressRule::parse("Hooks.Slack.com"), Some(EgressRule::Host("hooks.slack.com".into())));
        for bad in ["10.0.0.0/33", "::/129", "", "a b", "http://x", "x/8"] {
            assert_eq!(EgressRule::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn egress_table() {
        let none: &[IpAddr] = &[];
        let api = [ip("10.96.0.1")];
        let loopback = rules(&["127.0.0.0/8"]);
        let slack = rules(&["hooks.slack.com", "*.svc.cluster.local"]);
        type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [EgressRule]>, bool);
        let cases: Vec<Case> = vec![
            // No allowlist: anywhere but the default-denied addresses.
            ("example.com", &["93.184.216.34"], None, true),
            ("svc", &["10.1.2.3"], None, true),
            ("localhost", &["127.0.0.1"], None, false),
            ("metadata", &["169.254.169.254"], None, false),
            ("v6", &["::1"], None, false),
            ("mapped", &["::ffff:127.0.0.1"], None, false),
            ("v6-ll", &["fe80::1"], None, false),
            ("zero", &["0.0.0.0"], None, false),
            ("kubernetes", &["10.96.0.1"], None, false),
            // One bad address among good ones is enough to refuse (a rebinding name).
            ("mixed", &["93.184.216.34", "127.0.0.1"], None, false),
            // A CIDR opens what is denied by default; a name never does.
            ("localhost", &["127.0.0.1"], Some(&loopback), true),
            ("x.svc.cluster.local", &["127.0.0.1"], Some(&slack), false),
            // An allowlist limits the rest.
            ("hooks.slack.com", &["3.3.3.3"], Some(&slack), true),
            ("HOOKS.slack.com.", &["3.3.3.3"], Some(&slack), true),
            ("db.finance.svc.cluster.local", &["10.1.2.3"], Some(&slack), true),
            ("example.com", &["93.184.216.34"], Some(&slack), false),
            ("example.com", &["93.184.216.34"], Some(&loopback), false),
            ("nothing", &[], None, false),
        ];
        for (host, addrs, r, want) in cases {
            let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
            let also = if host == "kubernetes" { &api[..] } else { none };
            let got = check(host, &addrs, r, also);
            assert_eq!(got.is_ok(), want, "{host} {addrs:?}: {got:?}");
        }
        let why = check("localhost", &[ip("127.0.0.1")], None, none).unwrap_err();
        assert!(why.contains("loopback") && why.contains("spec.egress.allow"), "{why}");
    }

    #[tokio::test]
    async fn literal_addresses_are_checked_without_dns() {
        let got = resolve_url("http://169.254.169.254/latest/meta-data/", None, &[]).await;
        assert!(got.unwrap_err().contains("link-local"));
        let ok = resolve_url("http://127.0.0.1:9/x", Some(&rules(&["127.0.0.1/32"])), &[]).await.unwrap();
        assert_eq!(ok, vec!["127.0.0.1:9".parse().unwrap()]);
    }
}
