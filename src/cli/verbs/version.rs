//! `version`: the next semver of the Git work tree by Gitflow, optionally as a ready AppVersion.

use std::path::Path;

use regex::Regex;
use serde::Serialize;

use crate::api::{AppVersion, AppVersionSpec, Change, Source, Workload, WorkloadPort};
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
    /// May contain `{version}`.
    pub image: &'a str,
    pub ports: &'a [String],
    pub replicas: Option<i32>,
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
    let ports = emit.ports.iter().map(|p| parse_port(p)).collect::<CliResult<Vec<_>>>()?;
    let spec = AppVersionSpec {
        app: emit.app.to_string(),
        version: version.to_string(),
        workload: Some(Workload {
            image: emit.image.replace("{version}", &version.to_string()),
            replicas: emit.replicas,
            ports,
            ..Default::default()
        }),
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
    use super::parse_port;
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
}
