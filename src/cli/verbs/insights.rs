//! `insights [--env E] [--app A] [--since 90d]`: deploy frequency, lead time, change failure rate
//! and time to restore per app and Environment, from the audit records (see
//! [`crate::plan::insights`] for what each figure counts).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::audit::{records, start_of};
use crate::api::{AppVersion, Record};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, table};
use crate::cli::session::Session;
use crate::plan::insights::{Figures, figures};

/// One row: an app in an Environment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub environment: String,
    pub app: String,
    #[serde(flatten)]
    pub figures: Figures,
}

pub async fn insights(s: &Session, env: Option<&str>, app: Option<&str>, since: Duration) -> CliResult<()> {
    let (from, to) = (start_of(since), Timestamp::now());
    // Every month: a change that reached an Environment before the window is no lead time in it.
    let all = records(s, env, app, None).await?;
    let first_published = first_published(s).await?;
    let mut by_subject: BTreeMap<(String, String), Vec<Record>> = BTreeMap::new();
    for r in all {
        by_subject.entry((r.environment, r.app)).or_default().push(r.record);
    }
    let rows: Vec<Row> = by_subject
        .into_iter()
        .map(|((environment, app), records)| Row {
            environment,
            app,
            figures: figures(&records, &first_published, from, to),
        })
        .collect();
    output::print(s.output, &rows, || {
        if rows.is_empty() {
            return format!("no records in {} yet: figures start with the first rollout recorded\n", s.ns);
        }
        let cells: Vec<Vec<Cell>> = rows
            .iter()
            .map(|r| {
                let f = &r.figures;
                vec![
                    Cell::from(r.environment.as_str()),
                    Cell::from(r.app.as_str()),
                    Cell::from(f.deploys.to_string()),
                    Cell::from(format!("{:.1}", f.deploys_per_week)),
                    Cell::from(span(f.lead_time_p50)),
                    Cell::from(span(f.lead_time_p90)),
                    Cell::from(f.change_failure_rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))),
                    Cell::from(span(f.time_to_restore_p50)),
                ]
            })
            .collect();
        let header = [
            "ENVIRONMENT",
            "APP",
            "DEPLOYS",
            "PER WEEK",
            "LEAD p50",
            "LEAD p90",
            "FAILURE RATE",
            "RESTORE p50",
        ];
        table(&header, &cells, s.color)
    })
}

/// When each change id was first published, from the AppVersions still there.
async fn first_published(s: &Session) -> CliResult<BTreeMap<String, Timestamp>> {
    let api: Api<AppVersion> = Api::namespaced(s.client.clone(), &s.ns);
    let versions = api
        .list(&ListParams::default())
        .await
        .map_err(|e| CliError::Failed(format!("listing the AppVersions of {}: {e}", s.ns)))?;
    let mut first: BTreeMap<String, Timestamp> = BTreeMap::new();
    for av in versions.items {
        let Some(at) = av.status.as_ref().and_then(|st| st.published_at.as_ref()).map(|t| t.0) else {
            continue;
        };
        for change in &av.spec.changes {
            first.entry(change.id.clone()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        }
    }
    Ok(first)
}

/// `2d 4h`, `35m`, `-`.
fn span(d: Option<SignedDuration>) -> String {
    let Some(d) = d else { return "-".into() };
    let mins = d.as_mins();
    match (mins / 1440, (mins % 1440) / 60, mins % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (days, h, _) => format!("{days}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_at_a_glance() {
        let table = [(None, "-"), (Some(35), "35m"), (Some(125), "2h 5m"), (Some(3 * 1440 + 61), "3d 1h")];
        for (mins, want) in table {
            assert_eq!(span(mins.map(SignedDuration::from_mins)), want);
        }
    }
}
