//! `audit [--env E] [--app A] [--since 90d] [-o table|json|yaml|csv]`: the records the pipeline's
//! Ledgers keep — who changed what, when, on whose approval — oldest first.

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::api::{Ledger, Record, RecordKind, labels, month_of};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, Output, table};
use crate::cli::session::Session;

/// Which records.
pub struct Filter {
    pub env: Option<String>,
    pub app: Option<String>,
    pub since: Duration,
}

/// One row: a record with where it happened.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub environment: String,
    pub app: String,
    #[serde(flatten)]
    pub record: Record,
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

/// The start of the window `since` reaches back to from now.
pub fn start_of(since: Duration) -> Timestamp {
    Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(since).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

async fn rows(s: &Session, f: &Filter) -> CliResult<Vec<Row>> {
    let since = start_of(f.since);
    let mut rows = records(s, f.env.as_deref(), f.app.as_deref(), Some(since)).await?;
    rows.retain(|r| r.record.at.0 >= since);
    Ok(rows)
}

/// The records of the pipeline's Ledgers (of one Environment, one app), from the month of
/// `since` on (`None`: all), oldest first.
pub async fn records(
    s: &Session,
    env: Option<&str>,
    app: Option<&str>,
    since: Option<Timestamp>,
) -> CliResult<Vec<Row>> {
    let first_month = since.map(|t| month_of(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)));
    let mut selector = vec![format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)];
    if let Some(app) = app {
        selector.push(format!("{}={app}", labels::NAME));
    }
    let api: Api<Ledger> = Api::namespaced(s.client.clone(), &s.ns);
    let failed = |e| {
        CliError::Failed(format!(
            "listing the Ledgers of {} (is the CRD installed, may you list ledgers?): {e}",
            s.ns
        ))
    };
    // In pages: a year of a large pipeline's Ledgers is more than one answer should carry.
    let mut params = ListParams::default().labels(&selector.join(",")).limit(PAGE);
    let mut ledgers = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(failed)?;
        ledgers.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let mut rows: Vec<Row> = ledgers
        .into_iter()
        .filter(|l| first_month.as_ref().is_none_or(|m| l.spec.month >= *m))
        .filter(|l| env.is_none_or(|e| e == l.spec.environment))
        .filter(|l| app.is_none_or(|a| a == l.spec.app))
        .flat_map(|l| {
            let (environment, app) = (l.spec.environment, l.spec.app);
            l.spec.records.into_values().map(move |record| Row {
                environment: environment.clone(),
                app: app.clone(),
                record,
            })
        })
        .collect();
    // In the order things happened; times are to the second, so within one second a removal
    // comes last and rollouts by their start.
    let order = |r: &Row| {
        let rec = &r.record;
        let start = rec.started_at.as_ref().map(|t| t.0);
        (rec.at.0, rec.kind == RecordKind::Removed, start, r.environment.clone(), r.app.clone())
    };
    rows.sort_by_cached_key(order);
    Ok(rows)
}

/// Ledgers listed per request.
const PAGE: u32 = 100;

const HEADER: [&str; 12] = [
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
