//! `audit [--env E] [--app A] [--since 90d] [-o table|json|yaml|csv]`: the records the pipeline's
//! Ledgers keep — who changed what, when, on whose approval — oldest first.

use std::time::Duration;

pub use crate::audit::{Row, start_of};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, Output, table};
use crate::cli::session::Session;

/// Which records.
pub struct Filter {
    pub env: Option<String>,
    pub app: Option<String>,
    pub since: Duration,
}

pub async fn audit(s: &Session, filter: Filter) -> CliResult<()> {
    let rows = rows(s, &filter).await?;
    if s.output == Output::Csv {
        print!("{}", csv(&rows));
        return Ok(());
    }
    output::print(s.output, &rows, || {
        if rows.is_empty() {
            return format!("no records in {} over that time\n", s.ns);
        }
        let cells: Vec<Vec<Cell>> =
            rows.iter().map(|r| fields(r).into_iter().take(8).map(Cell::from).collect()).collect();
        table(&HEADER[..8], &cells, s.color)
    })
}

/// The records of the session's pipeline (see [`crate::audit::records`]), or a message naming
/// the fix.
pub async fn read(
    s: &Session,
    env: Option<&str>,
    app: Option<&str>,
    since: Option<jiff::Timestamp>,
) -> CliResult<Vec<Row>> {
    crate::audit::records(&s.client, &s.ns, env, app, since).await.map_err(|e| {
        CliError::Failed(format!(
            "listing the Ledgers of {} (is the CRD installed, may you list ledgers?): {e}",
            s.ns
        ))
    })
}

async fn rows(s: &Session, f: &Filter) -> CliResult<Vec<Row>> {
    let since = start_of(f.since);
    let mut rows = read(s, f.env.as_deref(), f.app.as_deref(), Some(since)).await?;
    rows.retain(|r| r.record.at.0 >= since);
    Ok(rows)
}

const HEADER: [&str; 14] = [
    "AT",
    "ENVIRONMENT",
    "APP",
    "KIND",
    "VERSION",
    "FROM",
    "RESULT",
    "APPROVERS",
    "BY",
    "STARTED",
    "CHANGES",
    "NOTE",
    "REQUESTED BY",
    "APPLIED BY",
];

/// The fields of a row, control characters made spaces: a table or a CSV file must not carry
/// terminal escapes or line breaks from what a tenant wrote.
fn fields(r: &Row) -> Vec<String> {
    let clean = |f: String| f.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    raw_fields(r).into_iter().map(clean).collect()
}

fn raw_fields(r: &Row) -> Vec<String> {
    let rec = &r.record;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        rec.at.0.to_string(),
        r.environment.clone(),
        r.app.clone(),
        format!("{:?}", rec.kind),
        opt(&rec.version),
        opt(&rec.from),
        rec.result.map(|x| format!("{x:?}")).unwrap_or_default(),
        rec.approvers.join(" "),
        opt(&rec.by),
        rec.started_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        rec.changes.join(" "),
        opt(&rec.note),
        opt(&rec.requester.requested_by),
        opt(&rec.requester.applied_by),
    ]
}

/// RFC 4180 CSV, every field quoted (a spreadsheet set to split on `;` splits nothing) and
/// guarded against formula injection: what a tenant wrote (a note, a version) must not run as a
/// formula in the auditor's spreadsheet.
fn csv(rows: &[Row]) -> String {
    let line =
        |fields: Vec<String>| fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",") + "\r\n";
    let mut out = line(HEADER.iter().map(|h| h.to_lowercase()).collect());
    for r in rows {
        out.push_str(&line(fields(r)));
    }
    out
}

fn csv_field(f: &str) -> String {
    let guarded =
        if f.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{f}") } else { f.to_string() };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        let table = [
            ("1.3.10", "\"1.3.10\""),
            ("a, b", "\"a, b\""),
            ("x;=1+1", "\"x;=1+1\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("-1+1", "\"'-1+1\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
        ];
        for (field, want) in table {
            assert_eq!(csv_field(field), want, "{field}");
        }
    }
}
