//! The pipeline's shape: Environments as nodes, promotion edges (`promoteFrom`) as arrows, version
//! lines as lanes — placed on a grid (column: how many promotions from a source; lane: the line).
//! Pure; the web view draws it.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use serde::Serialize;

use super::{CellState, Matrix};
use crate::api::{Environment, Release};

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// Version lines, in pipeline order of their first Environment.
    pub lanes: Vec<Lane>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Columns used (the longest promotion chain + 1).
    pub columns: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lane {
    /// The Environments' `versionLine`; `None`: Environments that take any version.
    pub line: Option<String>,
    /// Rows the lane needs (its busiest column).
    pub rows: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub environment: String,
    pub tier: String,
    pub lane: usize,
    pub column: usize,
    /// Row within the lane.
    pub row: usize,
    /// Each app's cell (running version, health, what waits), by app.
    pub apps: Vec<(String, CellState)>,
    pub approval_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<String>,
}

/// A promotion: `to` takes what runs healthy in `from`, for these apps.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub apps: Vec<String>,
}

/// The graph of the matrix `m` (Environments already in pipeline order).
pub fn graph(m: &Matrix, envs: &[Environment], releases: &[Release]) -> Graph {
    let line_of: BTreeMap<String, Option<String>> =
        envs.iter().map(|e| (e.name_any(), e.spec.version_line.clone())).collect();
    let known: BTreeSet<&str> = m.environments.iter().map(|e| e.name.as_str()).collect();
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in releases {
        let Some(from) = &r.spec.promote_from else { continue };
        if from.environment != r.spec.environment
            && known.contains(from.environment.as_str())
            && known.contains(r.spec.environment.as_str())
        {
            edges
                .entry((from.environment.clone(), r.spec.environment.clone()))
                .or_default()
                .insert(r.spec.app.clone());
        }
    }
    // Column: at least the tier's place among the tiers present (prod to the right even when
    // pinned), and one more than the furthest upstream placed before (pipeline order puts
    // upstreams first; an edge back to a later Environment, inside a cycle, does not count).
    let tiers: BTreeSet<crate::api::Tier> = m.environments.iter().map(|e| e.tier).collect();
    let tier_column = |t| tiers.iter().position(|x| *x == t).unwrap_or(0);
    let mut column: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &m.environments {
        let c = edges
            .keys()
            .filter(|(_, to)| *to == e.name)
            .filter_map(|(from, _)| column.get(from.as_str()))
            .map(|c| c + 1)
            .max()
            .unwrap_or(0)
            .max(tier_column(e.tier));
        column.insert(e.name.as_str(), c);
    }
    let mut lanes: Vec<Lane> = Vec::new();
    let mut used: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut nodes = Vec::new();
    for e in &m.environments {
        let line = line_of.get(&e.name).cloned().flatten();
        let lane = match lanes.iter().position(|l| l.line == line) {
            Some(i) => i,
            None => {
                lanes.push(Lane { line, rows: 0 });
                lanes.len() - 1
            }
        };
        let col = column.get(e.name.as_str()).copied().unwrap_or(0);
        let row = used.entry((lane, col)).or_default();
        let apps = m
            .apps
            .iter()
            .filter_map(|a| a.environments.get(&e.name).map(|c| (a.app.clone(), c.clone())))
            .collect();
        nodes.push(Node {
            environment: e.name.clone(),
            tier: e.tier.as_str().to_string(),
            lane,
            column: col,
            row: *row,
            apps,
            approval_required: e.approval_required,
            frozen: e.frozen.clone(),
        });
        *row += 1;
        lanes[lane].rows = lanes[lane].rows.max(*row);
    }
    let columns = nodes.iter().map(|n| n.column + 1).max().unwrap_or(0);
    let edges = edges
        .into_iter()
        .map(|((from, to), apps)| Edge { from, to, apps: apps.into_iter().collect() })
        .collect();
    Graph { lanes, nodes, edges, columns }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::fixtures::environment;
    use crate::api::{ReleaseSpec, Tier};

    fn env(name: &str, tier: Tier, line: Option<&str>) -> Environment {
        let mut e = environment(name, tier);
        e.spec.version_line = line.map(String::from);
        e
    }

    fn rel(app: &str, env: &str, from: Option<&str>) -> Release {
        let spec: ReleaseSpec = serde_json::from_value(json!({"app": app, "environment": env,
            "version": "1.0.0", "promoteFrom": from.map(|f| json!({"environment": f}))}))
        .unwrap();
        let mut r = Release::new(&format!("{app}-{env}"), spec);
        r.metadata.namespace = Some("finance".into());
        r
    }

    #[test]
    fn lines_are_lanes_and_promotions_are_columns() {
        let envs = vec![
            env("dev-1-3", Tier::Dev, Some("~1.3")),
            env("dev-1-4", Tier::Dev, Some("~1.4")),
            env("test", Tier::Test, None),
            env("prod", Tier::Prod, None),
        ];
        let releases = vec![
            rel("payments", "dev-1-3", None),
            rel("payments", "dev-1-4", None),
            rel("payments", "test", Some("dev-1-4")),
            rel("ledger", "test", Some("dev-1-4")),
            rel("payments", "prod", Some("test")),
        ];
        let m = super::super::matrix("finance", &envs, &releases, jiff::Timestamp::UNIX_EPOCH);
        let g = graph(&m, &envs, &releases);
        let lanes: Vec<Option<&str>> = g.lanes.iter().map(|l| l.line.as_deref()).collect();
        assert_eq!(lanes, [Some("~1.3"), Some("~1.4"), None]);
        let at: Vec<(&str, usize, usize)> =
            g.nodes.iter().map(|n| (n.environment.as_str(), n.lane, n.column)).collect();
        assert_eq!(at, [("dev-1-3", 0, 0), ("dev-1-4", 1, 0), ("test", 2, 1), ("prod", 2, 2)]);
        // A pinned prod (no promotion into it) still stands right of test.
        let pinned: Vec<Release> =
            releases.iter().filter(|r| r.spec.environment != "prod").cloned().collect();
        let g2 = graph(
            &super::super::matrix("finance", &envs, &pinned, jiff::Timestamp::UNIX_EPOCH),
            &envs,
            &pinned,
        );
        assert_eq!(g2.nodes.iter().find(|n| n.environment == "prod").map(|n| n.column), Some(2));
        assert_eq!(g.columns, 3);
        assert_eq!(
            g.edges,
            vec![
                Edge {
                    from: "dev-1-4".into(),
                    to: "test".into(),
                    apps: vec!["ledger".into(), "payments".into()]
                },
                Edge { from: "test".into(), to: "prod".into(), apps: vec!["payments".into()] },
            ]
        );
        let test = g.nodes.iter().find(|n| n.environment == "test").unwrap();
        assert_eq!(test.apps.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["ledger", "payments"]);
    }

    #[test]
    fn a_promotion_cycle_does_not_hang_or_stretch_the_graph() {
        let envs = vec![env("a", Tier::Dev, None), env("b", Tier::Test, None)];
        let releases = vec![rel("x", "a", Some("b")), rel("x", "b", Some("a"))];
        let m = super::super::matrix("finance", &envs, &releases, jiff::Timestamp::UNIX_EPOCH);
        let g = graph(&m, &envs, &releases);
        assert_eq!(g.columns, 2);
        assert_eq!(g.edges.len(), 2, "both arrows are drawn");
    }
}
