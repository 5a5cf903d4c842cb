//! The pipeline graph as inline SVG: lanes (version lines) as bands, Environments as boxes listing
//! each app's running version and what waits, promotions as arrows. Drawn from `matrix::graph`.

use maud::{Markup, html};

use crate::matrix::graph::{Graph, Node};

const LEFT: usize = 110;
const TOP: usize = 10;
const NODE_W: usize = 270;
const COL_GAP: usize = 70;
const ROW_GAP: usize = 16;
const LANE_GAP: usize = 14;
const LINE_H: usize = 18;

/// Height of every node: room for the busiest node's apps.
fn node_h(g: &Graph) -> usize {
    let apps = g.nodes.iter().map(|n| n.apps.len()).max().unwrap_or(0).max(1);
    34 + apps * LINE_H
}

/// Where each lane starts, and the total height.
fn lane_tops(g: &Graph, h: usize) -> (Vec<usize>, usize) {
    let mut tops = Vec::with_capacity(g.lanes.len());
    let mut y = TOP;
    for l in &g.lanes {
        tops.push(y);
        y += l.rows.max(1) * (h + ROW_GAP) + LANE_GAP;
    }
    (tops, y)
}

fn position(n: &Node, tops: &[usize], h: usize) -> (usize, usize) {
    let x = LEFT + n.column * (NODE_W + COL_GAP);
    let y = tops.get(n.lane).copied().unwrap_or(TOP) + ROW_GAP / 2 + n.row * (h + ROW_GAP);
    (x, y)
}

pub fn svg(g: &Graph) -> Markup {
    let h = node_h(g);
    let (tops, height) = lane_tops(g, h);
    let width = LEFT + g.columns.max(1) * (NODE_W + COL_GAP);
    let at = |env: &str| g.nodes.iter().find(|n| n.environment == env).map(|n| position(n, &tops, h));
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            role="img" aria-label="Pipeline graph: environments, promotions and version lines" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (i, lane) in g.lanes.iter().enumerate() {
                @let top = tops[i];
                @let lane_h = lane.rows.max(1) * (h + ROW_GAP);
                g.lane data-line=(lane.line.as_deref().unwrap_or("")) {
                    rect.lane x="0" y=(top) width=(width) height=(lane_h) rx="6" {}
                    text.lane-label x="8" y=(top + 20) { (lane.line.as_deref().map_or("any version".to_string(), |l| format!("line {l}"))) }
                }
            }
            @for e in &g.edges {
                @if let (Some((x1, y1)), Some((x2, y2))) = (at(&e.from), at(&e.to)) {
                    @let (sx, sy, tx, ty) = (x1 + NODE_W, y1 + h / 2, x2, y2 + h / 2);
                    g.edge data-from=(e.from) data-to=(e.to) {
                        path d=(format!("M {sx} {sy} C {} {sy}, {} {ty}, {tx} {ty}", sx + COL_GAP / 2, tx.saturating_sub(COL_GAP / 2))) marker-end="url(#arrow)" {}
                        text.edge-label x=((sx + tx) / 2) y=((sy + ty) / 2 - 4) text-anchor="middle" { (e.apps.join(", ")) }
                    }
                }
            }
            @for n in &g.nodes {
                @let (x, y) = position(n, &tops, h);
                g.node data-env=(n.environment) {
                    rect x=(x) y=(y) width=(NODE_W) height=(h) rx="8" {}
                    text.env x=(x + 10) y=(y + 20) {
                        (n.environment) " "
                        tspan.tier { (n.tier) }
                        @if n.approval_required { tspan.flag { " · approval" } }
                        @if n.frozen.is_some() { tspan.flag.frozen { " · frozen" } }
                    }
                    @for (i, (app, c)) in n.apps.iter().enumerate() {
                        text class={ "app " (c.tone().as_str()) } x=(x + 10) y=(y + 40 + i * LINE_H) data-app=(app) {
                            (app) " " tspan.version { (c.version.as_deref().unwrap_or("–")) }
                            @if let Some(p) = &c.pending {
                                " · " (p.version.as_deref().unwrap_or("")) " " (p.what.label())
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::graph::{Edge, Lane};

    #[test]
    fn nodes_edges_and_lanes_are_drawn_escaped() {
        let node = |env: &str, lane, column| Node {
            environment: env.into(),
            tier: "dev".into(),
            lane,
            column,
            row: 0,
            apps: vec![],
            approval_required: env == "prod",
            frozen: None,
        };
        let g = Graph {
            lanes: vec![Lane { line: Some("~1.4 <x>".into()), rows: 1 }, Lane { line: None, rows: 1 }],
            nodes: vec![node("dev", 0, 0), node("prod", 1, 1)],
            edges: vec![Edge { from: "dev".into(), to: "prod".into(), apps: vec!["payments".into()] }],
            columns: 2,
        };
        let s = svg(&g).into_string();
        for expected in [
            r#"<g class="node" data-env="dev">"#,
            r#"<g class="edge" data-from="dev" data-to="prod">"#,
            r#"marker-end="url(#arrow)""#,
            "line ~1.4 &lt;x&gt;",
            "any version",
            " · approval",
            ">payments</text>",
        ] {
            assert!(s.contains(expected), "missing {expected}: {s}");
        }
    }
}
