//! The audit page: the pipeline's audit records with the filters of `tuskfish audit`, and the
//! delivery figures of `tuskfish insights` drawn week by week (inline SVG: bars for deploys, a line
//! for the lead time). Not live: Ledgers are read when the page is asked for (no cache keeps them).

use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};

use super::page::{AuditFilter, Page};
use super::pages::Rendered;
use crate::audit::{Row, Subject, by_subject, figures_of, first_published, records, span};
use crate::plan::insights::{Figures, weekly};

/// Charts drawn at most (one per app and Environment).
const CHARTS: usize = 12;
/// Records listed at most, newest kept.
const ROWS: usize = 500;

/// The page for `filter` in `namespace`, reading Ledgers with `client`.
pub async fn page(
    client: &kube::Client,
    app_versions: &[crate::api::AppVersion],
    namespace: &str,
    filter: &AuditFilter,
    now: Timestamp,
) -> Rendered {
    let days = filter.days.unwrap_or(90);
    let from = now.checked_sub(SignedDuration::from_hours(24 * i64::from(days))).unwrap_or(Timestamp::MIN);
    let (env, app) = (filter.env.as_deref(), filter.app.as_deref());
    // The window and as much before it (a change that arrived before the window is no lead time
    // in it): not every month kept.
    let context =
        from.checked_sub(SignedDuration::from_hours(24 * i64::from(days))).unwrap_or(Timestamp::MIN);
    let all = match records(client, namespace, env, app, Some(context)).await {
        Ok(all) => all,
        Err(e) => {
            return Rendered {
                title: format!("Audit · {namespace}"),
                body: html! { h1 { "Audit" } p.error { "The Ledgers of " (namespace) " cannot be listed: " (e.to_string()) } },
                found: false,
            };
        }
    };
    let shown: Vec<&Row> = all.iter().filter(|r| r.record.at.0 >= from).collect();
    let charts = charts(&all, app_versions, from, now);
    let subjects = figures_of(&all, app_versions, from, now);
    let body = html! {
        h1 { "Audit · " (namespace) }
        (form(namespace, filter, days))
        h2 { "Delivery over " (days) " days" }
        @if subjects.is_empty() {
            p.hint { "No records yet: figures start with the first rollout recorded." }
        } @else {
            table.figures {
                thead { tr { @for c in Subject::COLUMNS { th { (c) } } } }
                tbody {
                    @for s in &subjects {
                        tr { @for c in s.cells() { td { (c) } } }
                    }
                }
            }
            div.charts {
                @for (env, app, weeks) in charts.iter().take(CHARTS) {
                    figure.chart {
                        (chart(weeks))
                        figcaption { (app) " in " (env) ": deploys per week (bars), lead time p50 (line)" }
                    }
                }
            }
        }
        h2 { "Records" }
        @if shown.is_empty() {
            p.hint { "No records over that time." }
        } @else {
            table.records {
                thead { tr { th { "At" } th { "Environment" } th { "App" } th { "What" } th { "Version" } th { "From" } th { "Result" } th { "Approvers" } th { "By" } th { "Note" } } }
                tbody {
                    @for r in shown.iter().rev().take(ROWS) {
                        @let rec = &r.record;
                        tr {
                            td { (rec.at.0.strftime("%Y-%m-%d %H:%M")) } td { (r.environment) } td { (r.app) }
                            td { (format!("{:?}", rec.kind)) }
                            td { (rec.version.as_deref().unwrap_or("")) } td { (rec.from.as_deref().unwrap_or("")) }
                            td { (rec.result.map(|x| format!("{x:?}")).unwrap_or_default()) }
                            td { (rec.approvers.join(", ")) } td { (asked(rec)) }
                            td { (rec.note.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    Rendered { title: format!("Audit · {namespace}"), body, found: true }
}

/// What asked for a record's change, who (verified) and with which tool: "pinned · carol via
/// tuskfish-cli".
fn asked(rec: &crate::api::Record) -> String {
    let mut out = rec.by.clone().unwrap_or_default();
    let who = &rec.requester;
    if let Some(user) = &who.requested_by {
        out = format!("{out} · {user}");
    }
    if let Some(tool) = &who.applied_by {
        out = format!("{out} via {tool}");
    }
    out
}

fn form(namespace: &str, filter: &AuditFilter, days: u32) -> Markup {
    let action = Page::Audit { namespace: namespace.to_string(), filter: AuditFilter::default() }.href();
    html! {
        form.filters method="get" action=(action) {
            label { "Environment " input name="env" value=(filter.env.as_deref().unwrap_or("")); }
            label { "App " input name="app" value=(filter.app.as_deref().unwrap_or("")); }
            label { "Days " input name="days" type="number" min="1" max="3660" value=(days); }
            button type="submit" { "Show" }
        }
    }
}

/// Each app in each Environment with its weeks.
type Charts = Vec<(String, String, Vec<(Timestamp, Figures)>)>;

fn charts(rows: &[Row], app_versions: &[crate::api::AppVersion], from: Timestamp, to: Timestamp) -> Charts {
    let first = first_published(app_versions);
    by_subject(rows)
        .into_iter()
        .map(|((env, app), records)| (env, app, weekly(&records, &first, from, to)))
        .collect()
}

/// Bars of deploys per week and a line of the week's lead time p50, each scaled to its own
/// maximum. Drawn with attributes only: the page's policy allows no inline styles.
fn chart(weeks: &[(Timestamp, Figures)]) -> Markup {
    const W: f64 = 480.0;
    const H: f64 = 120.0;
    let n = weeks.len().max(1) as f64;
    let slot = W / n;
    let most = weeks.iter().map(|(_, f)| f.deploys).max().unwrap_or(0).max(1) as f64;
    let lead_hours = |f: &Figures| f.lead_time_p50.map(|d| d.as_secs_f64() / 3600.0);
    let longest = weeks.iter().filter_map(|(_, f)| lead_hours(f)).fold(0.0_f64, f64::max).max(1.0);
    let points: Vec<String> = weeks
        .iter()
        .enumerate()
        .filter_map(|(i, (_, f))| {
            let y = H - lead_hours(f)? / longest * (H - 10.0);
            Some(format!("{:.1},{:.1}", slot * (i as f64 + 0.5), y))
        })
        .collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {}", H + 16.0)) width=(W) height=(H + 16.0) role="img" {
            title { "Deploys per week and lead time p50" }
            line x1="0" y1=(H) x2=(W) y2=(H) stroke="#999" stroke-width="1" {}
            @for (i, (start, f)) in weeks.iter().enumerate() {
                @let h = f.deploys as f64 / most * (H - 10.0);
                rect x=(format!("{:.1}", slot * i as f64 + 2.0)) y=(format!("{:.1}", H - h)) width=(format!("{:.1}", (slot - 4.0).max(1.0))) height=(format!("{h:.1}")) fill="#4a7fb5" {
                    title { (start.strftime("week of %Y-%m-%d")) ": " (f.deploys) " deploys, lead p50 " (span(f.lead_time_p50)) }
                }
            }
            @if points.len() > 1 {
                polyline points=(points.join(" ")) fill="none" stroke="#d9822b" stroke-width="2" {}
            }
            @for p in &points {
                @let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                circle cx=(x) cy=(y) r="3" fill="#d9822b" {}
            }
            @if let (Some((first, _)), Some((last, _))) = (weeks.first(), weeks.last()) {
                text x="0" y=(H + 13.0) font-size="10" fill="#555" { (first.strftime("%Y-%m-%d")) }
                text x=(W) y=(H + 13.0) font-size="10" fill="#555" text-anchor="end" { (last.strftime("%Y-%m-%d")) }
            }
        }
    }
}
