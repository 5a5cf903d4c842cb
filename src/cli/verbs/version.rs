//! `version`: the next semver of the Git work tree by Gitflow, optionally as a ready AppVersion.

use std::path::Path;

use regex::Regex;
use serde::Serialize;

use crate::api::{AppVersion, AppVersionSpec, Change, HelmChart, SecretName, Source, Workload, WorkloadPort};
use crate::cli::error::{CliError, CliResult};
use crate::cli::git::Repo;
use crate::cli::gitflow::{changes_in, next_version};
use crate::cli::output::{self, Output};
use crate::cli::verbs::approve::object_name;

pub struct VersionArgs<'a> {
    pub dir: &'a Path,
    pub branch: Option<&'a str>,
    pub change_pattern: &'a str,
    /// Set with `--emit-appversion`.
    pub emit: Option<EmitArgs<'a>>,
    /// Namespace for the emitted manifest, when given with `-n`.
    pub namespace: Option<&'a str>,
    pub output: Output,
}

pub struct EmitArgs<'a> {
    pub app: &'a str,
    /// What the AppVersion deploys.
    pub what: Deploys<'a>,
}

/// What an emitted AppVersion deploys.
pub enum Deploys<'a> {
    /// One container image (may contain `{version}`) as a Deployment.
    Image { image: &'a str, ports: &'a [String], replicas: Option<i32> },
    /// The chart `REPOSITORY/CHART` at the computed version (`helm package --version` it so).
    Chart { reference: &'a str, secret: Option<&'a str>, plain_http: bool },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: String,
    branch: String,
    commit: String,
    changes: Vec<Change>,
}

pub fn version(args: VersionArgs<'_>) -> CliResult<()> {
    let pattern = Regex::new(args.change_pattern)
        .map_err(|e| CliError::Usage(format!("--change-pattern {:?}: {e}", args.change_pattern)))?;
    let repo = Repo::open(args.dir)?;
    let (facts, origin) = repo.facts(args.branch)?;
    let version = next_version(&facts).map_err(|e| CliError::Usage(e.to_string()))?;
    let changes: Vec<Change> = changes_in(&origin.subjects, &pattern)
        .into_iter()
        .map(|c| Change {
            id: c.id,
            title: Some(c.title).filter(|t| !t.is_empty()),
            type_: c.kind.map(String::from),
        })
        .collect();
    let Some(emit) = args.emit else {
        let info = VersionInfo {
            version: version.to_string(),
            branch: origin.branch,
            commit: origin.commit,
            changes,
        };
        return output::print(args.output, &info, || format!("{}\n", info.version));
    };
    let (workload, helm) = match emit.what {
        Deploys::Image { image, ports, replicas } => {
            let ports = ports.iter().map(|p| parse_port(p)).collect::<CliResult<Vec<_>>>()?;
            let image = image.replace("{version}", &version.to_string());
            (Some(Workload { image, replicas, ports, ..Default::default() }), None)
        }
        Deploys::Chart { reference, secret, plain_http } => {
            let (repository, chart) = split_chart(reference)?;
            let secret_ref = secret.map(|name| SecretName { name: name.to_string() });
            let chart = HelmChart {
                repository,
                chart,
                version: version.to_string(),
                values: None,
                secret_ref,
                plain_http,
            };
            (None, Some(chart))
        }
    };
    let spec = AppVersionSpec {
        app: emit.app.to_string(),
        version: version.to_string(),
        workload,
        helm,
        manifests: vec![],
        source: Some(Source { repo: origin.repo, branch: Some(origin.branch), commit: Some(origin.commit) }),
        changes,
    };
    let mut av = AppVersion::new(&object_name(&format!("{}-{version}", emit.app)), spec);
    av.metadata.namespace = args.namespace.map(String::from);
    // A manifest for `kubectl apply`: YAML unless JSON is asked for.
    let out = if args.output == Output::Json { Output::Json } else { Output::Yaml };
    output::print(out, &av, String::new)
}

/// `oci://registry/charts/payments` → (`oci://registry/charts`, `payments`); the same for an
/// HTTP(S) repository URL followed by the chart's name.
fn split_chart(reference: &str) -> CliResult<(String, String)> {
    let bad = |why: &str| {
        CliError::Usage(format!(
            "--chart {reference:?}: {why}; expected REPOSITORY/CHART, e.g. oci://registry.example.com/charts/payments"
        ))
    };
    let rest = ["oci://", "https://", "http://"]
        .iter()
        .find_map(|scheme| reference.strip_prefix(scheme))
        .ok_or_else(|| bad("not an oci://, https:// or http:// reference"))?;
    let (repo_path, chart) =
        rest.trim_end_matches('/').rsplit_once('/').ok_or_else(|| bad("no chart name"))?;
    if chart.is_empty() || repo_path.is_empty() {
        return Err(bad("no chart name"));
    }
    let scheme_len = reference.len() - rest.len();
    Ok((format!("{}{repo_path}", &reference[..scheme_len]), chart.to_string()))
}

/// `http:8080` or `http:8080/UDP`.
fn parse_port(s: &str) -> CliResult<WorkloadPort> {
    let bad = || CliError::Usage(format!("--port {s:?}: expected NAME:PORT[/PROTOCOL], e.g. http:8080"));
    let (name, rest) = s.split_once(':').ok_or_else(bad)?;
    let (port, protocol) = match rest.split_once('/') {
        Some((p, proto)) => (
            p,
            Some(serde_json::from_value(serde_json::json!(proto.to_ascii_uppercase())).map_err(|_| bad())?),
        ),
        None => (rest, None),
    };
    let container_port: i32 = port.parse().ok().filter(|p| (1..=65535).contains(p)).ok_or_else(bad)?;
    if name.is_empty() || name.len() > 15 {
        return Err(bad());
    }
    Ok(WorkloadPort { name: name.to_string(), container_port, protocol, service_port: None })
}

#[cfg(test)]
mod tests {
    use super::{parse_port, split_chart};
    use crate::api::Protocol;

    #[test]
    fn ports() {
        let p = parse_port("http:8080").unwrap();
        assert_eq!((p.name.as_str(), p.container_port, p.protocol), ("http", 8080, None));
        assert_eq!(parse_port("dns:53/udp").unwrap().protocol, Some(Protocol::Udp));
        for bad in ["8080", "http:", "http:0", "http:70000", "http:80/ICMP", ":80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chart_references() {
        let ok = |r: &str| split_chart(r).unwrap();
        assert_eq!(
            ok("oci://reg.example.com/charts/payments"),
            ("oci://reg.example.com/charts".into(), "payments".into())
        );
        assert_eq!(ok("oci://127.0.0.1:5000/payments/"), ("oci://127.0.0.1:5000".into(), "payments".into()));
        assert_eq!(
            ok("https://charts.example.com/stable/payments"),
            ("https://charts.example.com/stable".into(), "payments".into())
        );
        for bad in ["payments", "oci://payments", "ftp://x/payments", "oci:///payments"] {
            assert!(split_chart(bad).is_err(), "{bad}");
        }
    }
}
