//! Reading the audit records (see [`crate::api::Ledger`]): one place for `tuskfish audit`,
//! `tuskfish insights` and the web view's audit page.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;

use crate::api::{AppVersion, EVERY, Ledger, Record, RecordKind, labels, month_of};
use crate::plan::insights::{Figures, figures};

/// One row: a record with where it happened.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub environment: String,
    pub app: String,
    #[serde(flatten)]
    pub record: Record,
}

/// The start of the window `since` reaches back to from now.
pub fn start_of(since: Duration) -> Timestamp {
    Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(since).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

/// The records of the pipeline's Ledgers (of one Environment, one app), from the month of
/// `since` on (`None`: all), oldest first.
pub async fn records(
    client: &Client,
    ns: &str,
    env: Option<&str>,
    app: Option<&str>,
    since: Option<Timestamp>,
) -> Result<Vec<Row>, kube::Error> {
    let first_month = since.map(|t| month_of(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)));
    let mut selector = vec![format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)];
    if let Some(app) = app {
        selector.push(format!("{}={app}", labels::NAME));
    }
    let api: Api<Ledger> = Api::namespaced(client.clone(), ns);
    // In pages: a year of a large pipeline's Ledgers is more than one answer should carry.
    let mut params = ListParams::default().labels(&selector.join(",")).limit(PAGE);
    let mut ledgers = Vec::new();
    loop {
        let page = api.list(&params).await?;
        ledgers.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let mut rows: Vec<Row> = ledgers
        .into_iter()
        .filter(|l| first_month.as_ref().is_none_or(|m| l.spec.month >= *m))
        // A veto holds in every Environment: it is listed with each.
        .filter(|l| env.is_none_or(|e| e == l.spec.environment || l.spec.environment == EVERY))
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

/// The delivery figures of each app in each Environment of `rows` over `[from, to)`.
pub fn figures_of(rows: &[Row], app_versions: &[AppVersion], from: Timestamp, to: Timestamp) -> Vec<Subject> {
    let first = first_published(app_versions.iter());
    by_subject(rows)
        .into_iter()
        .map(|((environment, app), records)| Subject {
            figures: figures(&records, &first, from, to),
            environment,
            app,
        })
        .collect()
}

/// When each change id was first published, from the pipeline's AppVersions.
pub fn first_published<'a>(
    app_versions: impl IntoIterator<Item = &'a AppVersion>,
) -> BTreeMap<String, Timestamp> {
    let mut first: BTreeMap<String, Timestamp> = BTreeMap::new();
    for av in app_versions {
        let Some(at) = av.status.as_ref().and_then(|st| st.published_at.as_ref()).map(|t| t.0) else {
            continue;
        };
        for change in &av.spec.changes {
            first.entry(change.id.clone()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        }
    }
    first
}

/// The records of each app in each Environment. Vetoes and freezes are no app's in one
/// Environment: they have no figures of their own.
pub fn by_subject(rows: &[Row]) -> BTreeMap<(String, String), Vec<Record>> {
    let mut by: BTreeMap<(String, String), Vec<Record>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.environment != EVERY && r.app != EVERY) {
        by.entry((r.environment.clone(), r.app.clone())).or_default().push(r.record.clone());
    }
    by
}

/// The figures of one app in one Environment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub environment: String,
    pub app: String,
    #[serde(flatten)]
    pub figures: Figures,
}

impl Subject {
    /// The names of [`Subject::cells`], for a table's header.
    pub const COLUMNS: [&'static str; 10] = [
        "Environment",
        "App",
        "Deploys",
        "Per week",
        "Lead p50",
        "Lead p90",
        "Failure rate",
        "Restore p50",
        "Approval wait p50",
        "Held by freezes",
    ];

    /// The figures as a table shows them (`tuskfish insights`, the web view's audit page).
    pub fn cells(&self) -> [String; 10] {
        let f = &self.figures;
        [
            self.environment.clone(),
            self.app.clone(),
            f.deploys.to_string(),
            format!("{:.1}", f.deploys_per_week),
            span(f.lead_time_p50),
            span(f.lead_time_p90),
            f.change_failure_rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            span(f.time_to_restore_p50),
            span(f.approval_wait_p50),
            span((!f.held_by_freezes.is_zero()).then_some(f.held_by_freezes)),
        ]
    }
}

/// `2d 4h`, `35m`, `-`.
pub fn span(d: Option<SignedDuration>) -> String {
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
