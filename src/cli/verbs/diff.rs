//! `diff ENV_A ENV_B`: versions and change ids that differ, and forward-port gaps.

use crate::cli::error::CliResult;
use crate::cli::output::{self, Cell, Style, table};
use crate::cli::session::Session;
use crate::matrix::{DiffRow, diff as diff_rows};

/// Prints the difference; `Ok(true)` when the environments differ.
pub async fn diff(s: &Session, a: &str, b: &str) -> CliResult<bool> {
    s.environment(a).await?;
    s.environment(b).await?;
    let rows = diff_rows(a, b, &s.releases().await?);
    output::print(s.output, &rows, || render(a, b, &rows, s.color))?;
    Ok(rows.iter().any(DiffRow::differs))
}

fn render(a: &str, b: &str, rows: &[DiffRow], color: bool) -> String {
    if rows.is_empty() {
        return format!("no app runs in {a} or {b}\n");
    }
    let only_a = format!("ONLY IN {a}");
    let only_b = format!("ONLY IN {b}");
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let style = if r.differs() { Style::Busy } else { Style::Plain };
            let list = |ids: &[String]| if ids.is_empty() { "-".to_string() } else { ids.join(", ") };
            vec![
                Cell { text: r.app.clone(), style },
                Cell::from(r.a.as_deref().unwrap_or("-")),
                Cell::from(r.b.as_deref().unwrap_or("-")),
                Cell::from(list(&r.only_in_a)),
                Cell::from(list(&r.only_in_b)),
            ]
        })
        .collect();
    let mut out = table(&["APP", a, b, &only_a, &only_b], &cells, color);
    let gaps: Vec<String> = rows
        .iter()
        .flat_map(|r| r.forward_port_missing.iter().map(move |m| format!("  {}: {m}", r.app)))
        .collect();
    if !gaps.is_empty() {
        out.push_str("\nforward-port gaps:\n");
        out.push_str(&gaps.join("\n"));
        out.push('\n');
    }
    out
}
