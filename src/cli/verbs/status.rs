//! `status`: the pipeline matrix, apps × environments in pipeline order; `--watch` redraws it from
//! watch events (no polling of the API server).

use std::time::Duration;

use jiff::Timestamp;

use crate::api::Phase;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, Output, Style, table};
use crate::cli::session::Session;
use crate::matrix::{CellState, Matrix, PendingKind, cell_notes, matrix};

pub async fn status(s: &Session, watch: bool) -> CliResult<()> {
    if watch {
        return watch_status(s).await;
    }
    let m = matrix(&s.ns, &s.environments().await?, &s.releases().await?, Timestamp::now());
    // Products (where the CRD is installed) as rows above the apps they run.
    let products = s.product_releases().await.unwrap_or_default();
    output::print(s.output, &m, || {
        let products = super::product::render_status(&products, s.color);
        let sep = if products.is_empty() { "" } else { "\n" };
        format!("{products}{sep}{}", render(&m, s.color))
    })
}

/// The cell as one line: `1.3.9 Healthy, 1.3.10 awaiting approval`.
pub fn cell_text(c: &CellState) -> (String, Style) {
    let mut text =
        format!("{} {}", c.version.as_deref().unwrap_or("-"), c.phase.map_or("Pending", Phase::as_str));
    if let Some(p) = &c.pending {
        let v = p.version.as_deref().unwrap_or("?");
        match p.what {
            PendingKind::RollingBack => text.push_str(&format!(", rolling back to {v}")),
            what => text.push_str(&format!(", {v} {}", what.label())),
        }
    }
    if c.forward_port_missing.is_some() {
        text.push_str(", forward-port missing");
    }
    (text, c.tone().into())
}

pub fn render(m: &Matrix, color: bool) -> String {
    if m.environments.is_empty() {
        return format!("no Environments in namespace {} (pick another with -n)\n", m.namespace);
    }
    let mut header: Vec<&str> = vec!["APP"];
    header.extend(m.environments.iter().map(|e| e.name.as_str()));
    let rows: Vec<Vec<Cell>> = m
        .apps
        .iter()
        .map(|row| {
            let mut cells = vec![Cell::from(row.app.as_str())];
            for env in &m.environments {
                cells.push(match row.environments.get(&env.name) {
                    Some(c) => {
                        let (text, style) = cell_text(c);
                        Cell { text, style }
                    }
                    None => Cell { text: "-".into(), style: Style::Muted },
                });
            }
            cells
        })
        .collect();
    let mut out = table(&header, &rows, color);
    let mut notes = Vec::new();
    for env in &m.environments {
        let mut gates = Vec::new();
        if env.approval_required {
            gates.push("approval required".to_string());
        }
        if let Some(f) = &env.frozen {
            gates.push(format!("frozen {f}"));
        }
        if env.cluster != crate::api::IN_CLUSTER {
            gates.push(format!("in cluster {}", env.cluster));
        }
        if let Some(trouble) = &env.cluster_trouble {
            gates.push(trouble.clone());
        }
        if !gates.is_empty() {
            notes.push(format!("{}: {}", env.name, gates.join(", ")));
        }
    }
    notes.extend(cell_notes(m));
    if m.apps.is_empty() {
        notes.push("no Releases yet: `tuskfish deploy APP VERSION --env ENV` creates one".into());
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

/// Redraws on every change of the caches the web view uses too (one watch per kind, no polling).
async fn watch_status(s: &Session) -> CliResult<()> {
    let (view, drivers) = crate::web::watch(&s.client, Some(&s.ns));
    let mut revision = view.revision.clone();
    // The watches fill the caches only while polled, so they run alongside everything below.
    let mut watches = std::pin::pin!(futures::future::join_all(drivers));
    let ended = || CliError::Unreachable("the watch ended".into());
    // Draw only once every kind has been listed in full.
    tokio::select! {
        ready = view.ready() => if !ready { return Err(ended()) },
        _ = &mut watches => return Err(ended()),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    // Freeze windows open and close with time alone; re-render (from the caches) this often.
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut last = String::new();
    let tty = s.color;
    loop {
        let snapshot = view.snapshot(&s.ns);
        let m = matrix(&s.ns, &snapshot.environments, &snapshot.releases, Timestamp::now());
        let text = output::render(s.output, &m, || render(&m, s.color))?;
        if text != last {
            if tty && s.output == Output::Table {
                print!(
                    "\x1b[H\x1b[2J{text}\nupdated {} (Ctrl-C to stop)\n",
                    jiff::Zoned::now().strftime("%H:%M:%S")
                );
            } else {
                println!("{text}");
            }
            last = text;
        }
        tokio::select! {
            changed = revision.changed() => changed.map_err(|_| ended())?,
            _ = tick.tick() => {}
            _ = &mut watches => return Err(ended()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Pending;

    fn cell(phase: Phase, pending: Option<(PendingKind, &str)>) -> CellState {
        CellState {
            release: "payments-prod".into(),
            version: Some("1.3.9".into()),
            phase: Some(phase),
            message: None,
            pending: pending.map(|(what, v)| Pending { what, version: Some(v.into()), message: "m".into() }),
            forward_port_missing: None,
            last_rollout: None,
        }
    }

    #[test]
    fn cell_lines() {
        let cases = [
            (cell(Phase::Healthy, None), "1.3.9 Healthy", Style::Good),
            (
                cell(Phase::Healthy, Some((PendingKind::AwaitingApproval, "1.3.10"))),
                "1.3.9 Healthy, 1.3.10 awaiting approval",
                Style::Busy,
            ),
            (
                cell(Phase::Progressing, Some((PendingKind::RollingOut, "1.3.10"))),
                "1.3.9 Progressing, 1.3.10 rolling out",
                Style::Busy,
            ),
            (
                cell(Phase::Progressing, Some((PendingKind::RollingBack, "1.3.9"))),
                "1.3.9 Progressing, rolling back to 1.3.9",
                Style::Busy,
            ),
            (cell(Phase::Degraded, None), "1.3.9 Degraded", Style::Bad),
            (
                CellState { forward_port_missing: Some("x".into()), ..cell(Phase::Healthy, None) },
                "1.3.9 Healthy, forward-port missing",
                Style::Busy,
            ),
        ];
        for (c, text, style) in cases {
            assert_eq!(cell_text(&c), (text.to_string(), style));
        }
    }
}
