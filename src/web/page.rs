//! Which page a URL names. One parser serves both the page and its live-update stream
//! (`/events` + the page's own path and query), so the two can never disagree.

/// A page of the web view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// Every namespace with Environments.
    Index,
    /// Apps × environments of one namespace.
    Pipeline { namespace: String },
    /// One Release: history and change ids.
    Release { namespace: String, name: String },
    /// Two environments side by side (`None`: the first two in pipeline order).
    Diff { namespace: String, a: Option<String>, b: Option<String> },
    /// The story board: change ids, where they run and where they are missing.
    Changes { namespace: String, filter: ChangesFilter },
    /// The audit records and the delivery figures drawn from them.
    Audit { namespace: String, filter: AuditFilter },
}

/// The audit page's filters (`?env=&app=&days=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub env: Option<String>,
    pub app: Option<String>,
    /// How far back, in days (default 90).
    pub days: Option<u32>,
}

/// The story board's filters (`?id=&app=&type=&env=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangesFilter {
    pub id: Option<String>,
    pub app: Option<String>,
    pub type_: Option<String>,
    pub env: Option<String>,
}

const CHANGES_KEYS: [&str; 4] = ["id", "app", "type", "env"];

/// Where live updates are streamed from: `/events` followed by the page's own address.
pub const EVENTS_PREFIX: &str = "/events";

impl Page {
    /// `path` without the query; `query` as sent (`a=dev&b=test`).
    pub fn parse(path: &str, query: Option<&str>) -> Option<Page> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // Names come from Kubernetes (DNS-1123); anything else cannot name an object.
        let name = |s: &&str| {
            s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') && !s.starts_with('.')
        };
        if !segments.iter().all(name) {
            return None;
        }
        match segments.as_slice() {
            [] => Some(Page::Index),
            ["ns", ns] => Some(Page::Pipeline { namespace: ns.to_string() }),
            ["ns", ns, "releases", name] => {
                Some(Page::Release { namespace: ns.to_string(), name: name.to_string() })
            }
            ["ns", ns, "diff"] => {
                Some(Page::Diff { namespace: ns.to_string(), a: param(query, "a"), b: param(query, "b") })
            }
            ["ns", ns, "audit"] => {
                let days = match param(query, "days") {
                    Some(d) => Some(d.parse().ok().filter(|d| (1..=3660).contains(d))?),
                    None => None,
                };
                let filter = AuditFilter { env: param(query, "env"), app: param(query, "app"), days };
                Some(Page::Audit { namespace: ns.to_string(), filter })
            }
            ["ns", ns, "changes"] => {
                let [id, app, type_, env] = CHANGES_KEYS.map(|k| param(query, k));
                Some(Page::Changes {
                    namespace: ns.to_string(),
                    filter: ChangesFilter { id, app, type_, env },
                })
            }
            _ => None,
        }
    }

    /// The page's address (what [`Page::parse`] reads back).
    pub fn href(&self) -> String {
        match self {
            Page::Index => "/".into(),
            Page::Pipeline { namespace } => format!("/ns/{namespace}"),
            Page::Release { namespace, name } => format!("/ns/{namespace}/releases/{name}"),
            Page::Diff { namespace, a, b } => {
                let query: Vec<String> = [("a", a), ("b", b)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                with_query(format!("/ns/{namespace}/diff"), &query)
            }
            Page::Changes { namespace, filter } => {
                let values = [&filter.id, &filter.app, &filter.type_, &filter.env];
                let query: Vec<String> = CHANGES_KEYS
                    .iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                with_query(format!("/ns/{namespace}/changes"), &query)
            }
            Page::Audit { namespace, filter } => {
                let days = filter.days.map(|d| d.to_string());
                let query: Vec<String> = [("env", &filter.env), ("app", &filter.app), ("days", &days)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                with_query(format!("/ns/{namespace}/audit"), &query)
            }
        }
    }

    pub fn events_href(&self) -> String {
        match self {
            Page::Index => format!("{EVENTS_PREFIX}/"),
            page => format!("{EVENTS_PREFIX}{}", page.href()),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            Page::Index => None,
            Page::Pipeline { namespace }
            | Page::Release { namespace, .. }
            | Page::Diff { namespace, .. }
            | Page::Changes { namespace, .. }
            | Page::Audit { namespace, .. } => Some(namespace),
        }
    }
}

/// A query parameter's value, if set and not empty.
fn param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

fn with_query(path: String, query: &[String]) -> String {
    if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        let pages = [
            Page::Index,
            Page::Pipeline { namespace: "finance".into() },
            Page::Release { namespace: "finance".into(), name: "payments-prod".into() },
            Page::Diff { namespace: "finance".into(), a: None, b: None },
            Page::Diff { namespace: "finance".into(), a: Some("dev-1-4".into()), b: Some("prod".into()) },
            Page::Diff { namespace: "finance".into(), a: None, b: Some("prod".into()) },
            Page::Changes { namespace: "finance".into(), filter: ChangesFilter::default() },
            Page::Changes {
                namespace: "finance".into(),
                filter: ChangesFilter {
                    id: Some("FIN-142".into()),
                    app: None,
                    type_: Some("bug".into()),
                    env: Some("prod".into()),
                },
            },
        ];
        for p in pages {
            let href = p.href();
            let (path, query) = href.split_once('?').map_or((href.as_str(), None), |(p, q)| (p, Some(q)));
            assert_eq!(Page::parse(path, query), Some(p.clone()), "{href}");
            let events = p.events_href();
            let stream_path = events.strip_prefix(EVENTS_PREFIX).unwrap().split('?').next().unwrap();
            assert_eq!(Page::parse(stream_path, query), Some(p), "{events}");
        }
    }

    #[test]
    fn refuses_what_names_nothing() {
        for path in [
            "/ns",
            "/ns/a/b",
            "/ns/a/releases",
            "/ns/a/releases/b/c",
            "/other",
            "/ns/<script>",
            "/ns/a%2Fb",
            "/ns/..%2f",
            "/ns/ä",
            "/ns/..",
        ] {
            assert_eq!(Page::parse(path, None), None, "{path}");
        }
    }

    #[test]
    fn diff_query() {
        let p = |q| Page::parse("/ns/f/diff", Some(q));
        let d = |a: Option<&str>, b: Option<&str>| {
            Some(Page::Diff { namespace: "f".into(), a: a.map(Into::into), b: b.map(Into::into) })
        };
        assert_eq!(p("a=dev&b=prod"), d(Some("dev"), Some("prod")));
        assert_eq!(p("b=prod&a=dev&x=1"), d(Some("dev"), Some("prod")));
        assert_eq!(p("a=&b="), d(None, None));
        assert_eq!(p("garbage"), d(None, None));
    }
}
