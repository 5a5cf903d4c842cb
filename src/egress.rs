//! Where the operator may connect on a pipeline's behalf: HTTP checks, notifications, Helm
//! repositories and other clusters' API servers all have URLs a tenant writes. Some addresses are
//! never reached unless a PipelinePolicy grants them by CIDR (loopback: the operator's own
//! metrics and web view; link-local: cloud metadata; the API server; the operator's pod), and a
//! policy with `egress.allow` limits the rest to what it lists. Checked after DNS resolution, on
//! every address a name has, and the connection then goes to exactly those addresses (a name that
//! resolves differently a moment later changes nothing).

use std::net::{IpAddr, SocketAddr};

use crate::api::glob;

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
    /// and checked now, every address, though that program resolves the name again itself.
    pub async fn allows_url(&self, url: &str) -> Result<(), String> {
        check_url(url, self.rules.as_deref(), &self.also).await
    }
}

/// One `egress.allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRule(Rule);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// An address block; `prefix` is at most 32 (IPv4) or 128 (IPv6), as parsing makes sure.
    Cidr(Block),
    /// A host name; `*` stands for any run of characters.
    Host(String),
}

/// An address block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    prefix: u8,
}

impl Block {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self { network: IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)), prefix }
    }

    fn host(ip: IpAddr) -> Self {
        Self { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32u32.saturating_sub(u32::from(self.prefix))).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128u32.saturating_sub(u32::from(self.prefix))).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether every address of `other` is in this block.
    fn covers(&self, other: &Block) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }
}

/// Addresses never reached by default, and why (cloud metadata services have fixed addresses
/// outside link-local on some clouds).
const DENIED: &[(Block, &str)] = &[
    (Block::v4(127, 0, 0, 0, 8), "a loopback address"),
    (Block::v4(169, 254, 0, 0, 16), "a link-local address (cloud metadata lives there)"),
    (Block::v4(100, 100, 100, 200, 32), "a cloud metadata address"),
    (Block::v4(0, 0, 0, 0, 8), "not a host address"),
    (Block::v4(224, 0, 0, 0, 4), "not a host address"),
    (Block::v4(255, 255, 255, 255, 32), "not a host address"),
];

/// The IPv6 blocks never reached by default.
fn denied_v6(ip: std::net::Ipv6Addr) -> Option<(Block, &'static str)> {
    let block = |s: &str, prefix: u8| Block { network: s.parse().unwrap_or(IpAddr::V6(ip)), prefix };
    [
        (block("::1", 128), "a loopback address"),
        (block("::", 128), "not a host address"),
        (block("fe80::", 10), "a link-local address"),
        (block("ff00::", 8), "not a host address"),
        (block("fd00:ec2::254", 128), "a cloud metadata address"),
        (block("fd20:ce::254", 128), "a cloud metadata address"),
    ]
    .into_iter()
    .find(|(b, _)| b.contains(IpAddr::V6(ip)))
}

/// The IPv4 address an IPv6 address stands for, where it embeds one (mapped, compatible, NAT64,
/// 6to4): what it reaches is judged by that.
fn embedded_v4(ip: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // ::a.b.c.d (not :: or ::1, which are IPv6's own).
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(tail(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(tail(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(tail(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(tail(s[6], s[7])),
        [0x2002, hi, lo, ..] => Some(tail(hi, lo)),
        _ => None,
    }
}

impl EgressRule {
    /// Reads an entry (`None`: neither a CIDR nor a host name; it grants nothing).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some((ip, prefix)) = s.split_once('/') {
            let network: IpAddr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Self(Rule::Cidr(Block { network, prefix })));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Self(Rule::Cidr(Block::host(ip))));
        }
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
        ok.then(|| Self(Rule::Host(s.to_ascii_lowercase())))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        matches!(&self.0, Rule::Cidr(b) if b.contains(ip))
    }

    /// Whether this rule opens `ip`, which is denied by default as part of `denied`: only a block
    /// inside that range does (`127.0.0.0/8` opens loopback; `10.0.0.0/8` does not open the API
    /// server's 10.96.0.1, nor `0.0.0.0/0` everything).
    fn reopens(&self, ip: IpAddr, denied: &Block) -> bool {
        matches!(&self.0, Rule::Cidr(b) if b.contains(ip) && denied.covers(b))
    }

    fn names(&self, host: &str) -> bool {
        match &self.0 {
            Rule::Host(pattern) => glob(pattern, &host.trim_end_matches('.').to_ascii_lowercase()),
            Rule::Cidr(_) => false,
        }
    }
}

/// Why an address is never reached by default, and the range that makes it so.
fn denied_by_default(ip: IpAddr, also: &[IpAddr]) -> Option<(Block, &'static str)> {
    let v4 = match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => {
            if let Some(found) = denied_v6(a) {
                return Some(found);
            }
            embedded_v4(a)
        }
    };
    if let Some(a) = v4
        && let Some(found) = DENIED.iter().find(|(b, _)| b.contains(IpAddr::V4(a)))
    {
        return Some(*found);
    }
    let own = v4.map_or(ip, IpAddr::V4);
    (also.contains(&own) || also.contains(&ip))
        .then(|| (Block::host(own), "the API server's or the operator's own address"))
}

/// Pure: of the addresses `host` resolved to, those the operator may connect to for a pipeline
/// whose policy allows `rules` (`None`: no allowlist). `also`: addresses denied by default besides
/// the fixed ranges (the API server's, the operator pod's). `Err` when none is allowed, saying
/// why for the first.
pub fn allowed(
    host: &str,
    addresses: &[IpAddr],
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<Vec<IpAddr>, String> {
    let mut why = None;
    let mut ok = Vec::new();
    for &ip in addresses {
        match judge(host, ip, rules, also) {
            Ok(()) => ok.push(ip),
            Err(e) => {
                why.get_or_insert(e);
            }
        }
    }
    match why {
        _ if !ok.is_empty() => Ok(ok),
        Some(why) => Err(why),
        None => Err(format!("{host} resolves to no address")),
    }
}

/// Pure: like [`allowed`], but every address must be allowed (for a program that resolves the
/// name again itself and may pick any of them).
pub fn check(
    host: &str,
    addresses: &[IpAddr],
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<(), String> {
    if addresses.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    addresses.iter().try_for_each(|&ip| judge(host, ip, rules, also))
}

fn judge(host: &str, ip: IpAddr, rules: Option<&[EgressRule]>, also: &[IpAddr]) -> Result<(), String> {
    let what = if host == ip.to_string() { host.to_string() } else { format!("{host} is {ip},") };
    if let Some((range, why)) = denied_by_default(ip, also) {
        if rules.is_some_and(|r| r.iter().any(|rule| rule.reopens(ip, &range))) {
            return Ok(());
        }
        return Err(format!(
            "{what} {why}: the operator does not connect there for a pipeline unless a PipelinePolicy \
             allows that range by CIDR (spec.egress.allow)"
        ));
    }
    match rules {
        None => Ok(()),
        Some(r) if r.iter().any(|rule| rule.names(host) || rule.contains(ip)) => Ok(()),
        Some(_) => Err(format!("{what} not in the pipeline's PipelinePolicy spec.egress.allow")),
    }
}

/// Addresses of the operator's own that no pipeline reaches by default: the API server's (its URL
/// and the in-cluster Service, `KUBERNETES_SERVICE_HOST`) and the operator pod's (`POD_IP`).
pub async fn own_addresses(api_server: Option<&http::Uri>) -> Vec<IpAddr> {
    let mut hosts: Vec<String> = api_server.and_then(|u| u.host()).map(str::to_string).into_iter().collect();
    hosts.extend(["KUBERNETES_SERVICE_HOST", "POD_IP"].iter().filter_map(|v| std::env::var(v).ok()));
    let mut out = Vec::new();
    for host in hosts {
        if let Ok(found) = lookup(&host, 443).await {
            out.extend(found.iter().map(SocketAddr::ip));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How long a name may take to resolve (a tenant's DNS that never answers must not hold anyone).
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves `host:port` once (bounded in time).
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(found)) => Ok(found.collect()),
        Ok(Err(e)) => Err(format!("resolving {bare}: {e}")),
        Err(_) => Err(format!("resolving {bare}: no answer within {}s", RESOLVE_TIMEOUT.as_secs())),
    }
}

/// A URL's host (default ports by scheme), and the addresses it has now (resolved once).
async fn lookup_url(url: &str) -> Result<(String, Vec<SocketAddr>), String> {
    let uri: http::Uri = url.parse().map_err(|_| "the URL does not parse".to_string())?;
    let host = uri.host().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https" | "oci") => 443,
        _ => 80,
    });
    let found = lookup(host, port).await?;
    Ok((host.to_string(), found))
}

/// The addresses a connection to `url` may use: resolved once, those allowed kept (the connection
/// must use these and nothing resolved later).
pub async fn resolve_url(
    url: &str,
    rules: Option<&[EgressRule]>,
    also: &[IpAddr],
) -> Result<Vec<SocketAddr>, String> {
    let (host, found) = lookup_url(url).await?;
    let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
    let ok = allowed(&host, &ips, rules, also)?;
    Ok(found.into_iter().filter(|a| ok.contains(&a.ip())).collect())
}

/// Whether every address `url`'s host has now may be reached (for Helm and the cluster client,
/// which resolve the name again themselves).
pub async fn check_url(url: &str, rules: Option<&[EgressRule]>, also: &[IpAddr]) -> Result<(), String> {
    let (host, found) = lookup_url(url).await?;
    let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
    check(&host, &ips, rules, also)
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
        assert_eq!(EgressRule::parse("10.0.0.0/8"), Some(EgressRule(Rule::Cidr(Block::v4(10, 0, 0, 0, 8)))));
        assert_eq!(EgressRule::parse("127.0.0.1"), Some(EgressRule(Rule::Cidr(Block::v4(127, 0, 0, 1, 32)))));
        assert_eq!(
            EgressRule::parse("Hooks.Slack.com"),
            Some(EgressRule(Rule::Host("hooks.slack.com".into())))
        );
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
        let internal = rules(&["10.0.0.0/8"]);
        let everything = rules(&["0.0.0.0/0", "::/0"]);
        let api_exactly = rules(&["10.96.0.1/32"]);
        type Case<'a> = (&'a str, &'a str, Option<&'a [EgressRule]>, bool);
        let cases: Vec<Case> = vec![
            // No allowlist: anywhere but the default-denied addresses.
            ("example.com", "93.184.216.34", None, true),
            ("svc", "10.1.2.3", None, true),
            ("localhost", "127.0.0.1", None, false),
            ("metadata", "169.254.169.254", None, false),
            ("alibaba", "100.100.100.200", None, false),
            ("imds6", "fd00:ec2::254", None, false),
            ("v6", "::1", None, false),
            ("mapped", "::ffff:127.0.0.1", None, false),
            ("compatible", "::127.0.0.1", None, false),
            ("nat64", "64:ff9b::a9fe:a9fe", None, false),
            ("6to4", "2002:7f00:1::", None, false),
            ("v6-ll", "fe80::1", None, false),
            ("zero", "0.0.0.0", None, false),
            ("kubernetes", "10.96.0.1", None, false),
            // A CIDR inside a denied range opens it; a wider one, or a name, never does.
            ("localhost", "127.0.0.1", Some(&loopback), true),
            ("localhost", "127.0.0.1", Some(&everything), false),
            ("metadata", "169.254.169.254", Some(&everything), false),
            ("kubernetes", "10.96.0.1", Some(&internal), false),
            ("kubernetes", "10.96.0.1", Some(&api_exactly), true),
            ("x.svc.cluster.local", "127.0.0.1", Some(&slack), false),
            // An allowlist limits the rest.
            ("svc", "10.1.2.3", Some(&internal), true),
            ("hooks.slack.com", "3.3.3.3", Some(&slack), true),
            ("HOOKS.slack.com.", "3.3.3.3", Some(&slack), true),
            ("db.finance.svc.cluster.local", "10.1.2.3", Some(&slack), true),
            ("example.com", "93.184.216.34", Some(&slack), false),
            ("example.com", "93.184.216.34", Some(&loopback), false),
        ];
        for (host, addr, r, want) in cases {
            let also = if host == "kubernetes" { &api[..] } else { none };
            let got = check(host, &[ip(addr)], r, also);
            assert_eq!(got.is_ok(), want, "{host} {addr}: {got:?}");
        }
        let why = check("localhost", &[ip("127.0.0.1")], None, none).unwrap_err();
        assert!(why.contains("loopback") && why.contains("spec.egress.allow"), "{why}");
        assert!(check("nothing", &[], None, none).is_err());
    }

    #[test]
    fn of_a_names_addresses_only_the_allowed_are_connected_to() {
        let (good, bad) = (ip("93.184.216.34"), ip("127.0.0.1"));
        // A rebinding name with a good and a bad address: connect to the good one only…
        assert_eq!(allowed("mixed", &[good, bad], None, &[]), Ok(vec![good]));
        // …but a program that resolves again itself may pick either: refused.
        assert!(check("mixed", &[good, bad], None, &[]).is_err());
        assert!(allowed("bad", &[bad], None, &[]).unwrap_err().contains("loopback"));
    }

    #[tokio::test]
    async fn literal_addresses_are_checked_without_dns() {
        let got = resolve_url("http://169.254.169.254/latest/meta-data/", None, &[]).await;
        assert!(got.unwrap_err().contains("link-local"));
        let ok = resolve_url("http://127.0.0.1:9/x", Some(&rules(&["127.0.0.1/32"])), &[]).await.unwrap();
        assert_eq!(ok, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(check_url("http://[::1]:9/", None, &[]).await.unwrap_err().contains("loopback"));
    }
}
