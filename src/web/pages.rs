//! The pages as HTML, from plain data: pure functions, so what a viewer sees is table-tested.
//! maud escapes every interpolated value, so names, messages and change titles from the cluster
//! cannot inject markup.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::ResourceExt;
use maud::{DOCTYPE, Markup, html};

use super::page::{AuditFilter, ChangesFilter, Page};
use crate::api::{AppVersion, Change, ConditionType, Phase, Release, find_condition};
use crate::matrix::graph::graph;
use crate::matrix::stories::{Filter as StoryFilter, board};
use crate::matrix::{CellState, DiffRow, Matrix, PendingKind, Tone, cell_notes, diff, matrix};

/// One namespace's objects, as cached.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub namespace: String,
    /// Whether this view offers actions (`tuskfish web`, never the operator's view).
    pub actions: bool,
    pub environments: Vec<crate::api::Environment>,
    pub releases: Vec<Release>,
    pub app_versions: Vec<AppVersion>,
    /// ProductReleases.
    pub products: Vec<crate::api::ProductRelease>,
}

impl Snapshot {
    fn app_version(&self, app: &str, version: &str) -> Option<&AppVersion> {
        self.app_versions.iter().find(|av| av.spec.app == app && av.spec.version == version)
    }
}

/// A pipeline namespace and its size, as the index keeps it.
pub use crate::index::PipelineSize as Pipeline;

/// A rendered page: its title and the part that live updates replace.
pub struct Rendered {
    pub title: String,
    pub body: Markup,
    pub found: bool,
}

/// The whole document around `body`; with `live`, open pages follow the page's update stream.
pub fn document(page: &Page, r: &Rendered, live: bool) -> Markup {
    let ns = page.namespace();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (r.title) " · tuskfish" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "tuskfish" }
                    @if let Some(ns) = ns {
                        nav aria-label="Views" {
                            a href=(Page::Pipeline { namespace: ns.to_string() }.href()) { "Pipeline" }
                            a href=(Page::Diff { namespace: ns.to_string(), a: None, b: None }.href()) { "Diff" }
                            a href=(Page::Changes { namespace: ns.to_string(), filter: ChangesFilter::default() }.href()) { "Stories" }
                            a href=(Page::Audit { namespace: ns.to_string(), filter: AuditFilter::default() }.href()) { "Audit" }
                        }
                    }
                    span #live-status role="status" aria-live="polite" { "read-only" }
                }
                main #live data-events=[live.then(|| page.events_href())] { (r.body) }
                noscript { p.hint { "Without JavaScript this page does not update by itself: reload it." } }
            }
        }
    }
}

pub fn not_found(what: &str) -> Rendered {
    Rendered {
        title: "Not found".into(),
        body: html! { h1 { "Not found" } p { (what) } p { a href="/" { "All pipelines" } } },
        found: false,
    }
}

pub fn index(pipelines: &[Pipeline]) -> Rendered {
    let body = html! {
        h1 { "Pipelines" }
        @if pipelines.is_empty() {
            p.empty { "No Environments yet. Apply one (see the book's Environments guide) and it appears here." }
        } @else {
            ul.pipelines {
                @for p in pipelines {
                    li {
                        a href=(Page::Pipeline { namespace: p.namespace.clone() }.href()) { code { (p.namespace) } }
                        " — " (p.environments) " environments, " (p.releases) " releases"
                    }
                }
            }
        }
    };
    Rendered { title: "Pipelines".into(), body, found: true }
}

/// RFC 3339 → `2026-11-25 10:31 UTC` (the raw value stays in `datetime`).
fn short_time(t: &str) -> String {
    t.parse::<Timestamp>().map_or_else(|_| t.to_string(), |ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

fn phase_label(p: Option<Phase>) -> &'static str {
    p.map_or("Pending", Phase::as_str)
}

/// Where the actions on one cell are offered (and confirmed).
pub fn act_href(ns: &str, app: &str, env: &str) -> String {
    format!("/ns/{ns}/act?app={app}&env={env}")
}

fn cell(ns: &str, app: &str, env: &str, c: &CellState, actions: bool) -> Markup {
    let href = Page::Release { namespace: ns.to_string(), name: c.release.clone() }.href();
    html! {
        td class={ "cell " (c.tone().as_str()) }
            data-release=(c.release) data-app=(app) data-env=(env)
            data-version=(c.version.as_deref().unwrap_or("")) data-phase=(phase_label(c.phase)) {
            a href=(href) title={ "History and change ids of " (c.release) } {
                span.version { (c.version.as_deref().unwrap_or("–")) }
                " "
                span.phase { (phase_label(c.phase)) }
                @if let Some(p) = &c.pending {
                    span.pending {
                        @match p.what {
                            PendingKind::RollingBack => { "rolling back to " (p.version.as_deref().unwrap_or("?")) },
                            what => { (p.version.as_deref().unwrap_or("?")) " " (what.label()) },
                        }
                    }
                }
                @if c.forward_port_missing.is_some() {
                    span.warning { "forward-port missing" }
                }
                @if let Some(t) = &c.last_rollout {
                    time datetime=(t) { "rolled out " (short_time(t)) }
                }
                @if actions {
                    a.act href=(act_href(ns, app, env)) title={ "Deploy, promote, roll back, approve… " (app) " in " (env) } { "act…" }
                }
            }
        }
    }
}

fn verification_tone(r: crate::api::VerificationResult) -> &'static str {
    match r {
        crate::api::VerificationResult::Passed => Tone::Good.as_str(),
        crate::api::VerificationResult::Running => Tone::Busy.as_str(),
        crate::api::VerificationResult::Failed => Tone::Bad.as_str(),
    }
}

fn env_options(m: &Matrix, selected: Option<&str>) -> Markup {
    html! {
        @for e in &m.environments {
            option value=(e.name) selected[selected == Some(e.name.as_str())] { (e.name) }
        }
    }
}

fn diff_form(m: &Matrix, a: Option<&str>, b: Option<&str>) -> Markup {
    html! {
        form.diff action=(Page::Diff { namespace: m.namespace.clone(), a: None, b: None }.href()) method="get" {
            label { "Compare " select name="a" { (env_options(m, a)) } }
            label { " with " select name="b" { (env_options(m, b)) } }
            " "
            button type="submit" { "Show difference" }
        }
    }
}

/// The products as rows (product, Environment, version, phase), their apps below them.
fn products_table(products: &[crate::api::ProductRelease]) -> Markup {
    let mut sorted: Vec<&crate::api::ProductRelease> = products.iter().collect();
    sorted.sort_by_key(|p| (p.spec.product.clone(), p.spec.environment.clone()));
    html! {
        @if !sorted.is_empty() {
            table.products {
                caption { "Products: each runs a set of app versions in an Environment, as one unit." }
                thead { tr { th scope="col" { "Product" } th scope="col" { "Environment" } th scope="col" { "Version" } th scope="col" { "Phase" } th scope="col" { "Apps" } } }
                tbody {
                    @for p in sorted {
                        @let st = p.status.clone().unwrap_or_default();
                        tr {
                            th scope="row" { (p.spec.product) }
                            td { (p.spec.environment) }
                            td { (st.current_version.as_deref().unwrap_or("-")) @if let Some(h) = &st.held_version { " (" (h) " held)" } }
                            td { (st.phase.map_or("Pending", crate::api::Phase::as_str)) }
                            td {
                                @for a in &st.apps {
                                    span.app { (a.app) " " (a.version) " " (a.phase.map_or("Pending", crate::api::Phase::as_str)) } " "
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn pipeline(s: &Snapshot, now: Timestamp) -> Rendered {
    let m = matrix(&s.namespace, &s.environments, &s.releases, now);
    let ns = &m.namespace;
    let body = html! {
        h1 { "Pipeline " code { (ns) } }
        @if m.environments.is_empty() {
            p.empty { "No Environments in namespace " code { (ns) } " yet." }
        } @else {
            (products_table(&s.products))
            figure.graph {
                (super::graph::svg(&graph(&m, &s.environments, &s.releases)))
                figcaption { "Environments by version line (lanes), promotions as arrows; each box lists its apps' running versions and what waits." }
            }
            table.matrix {
                caption { "Apps × environments in pipeline order. Select a cell for its history and change ids." }
                thead {
                    tr {
                        th scope="col" { "App" }
                        @for e in &m.environments {
                            th scope="col" data-env=(e.name) {
                                span.env { (e.name) }
                                " "
                                span.tier { (e.tier.as_str()) }
                                @if e.approval_required {
                                    " " span.badge.approval title="Every version needs an Approval here" { "approval" }
                                }
                                @if let Some(f) = &e.frozen {
                                    " " span.badge.frozen title={ "Frozen " (f) } { "frozen " (f) }
                                }
                                @if e.cluster != crate::api::IN_CLUSTER || e.cluster_trouble.is_some() {
                                    " " span.badge.cluster title={ "Runs in cluster " (e.cluster) } { "cluster " (e.cluster) }
                                }
                                @if let Some(t) = &e.cluster_trouble {
                                    " " span.badge.unreachable title=(t) { "unreachable" }
                                }
                            }
                        }
                    }
                }
                tbody {
                    @for row in &m.apps {
                        tr {
                            th scope="row" { (row.app) }
                            @for e in &m.environments {
                                @match row.environments.get(&e.name) {
                                    Some(c) => (cell(ns, &row.app, &e.name, c, s.actions)),
                                    None => td.none { span.sr-only { "no Release" } "–" },
                                }
                            }
                        }
                    }
                }
            }
            @if m.apps.is_empty() {
                p.empty { "No Releases yet." }
            }
            @let notes = cell_notes(&m);
            @if !notes.is_empty() {
                section.notes aria-label="Gates and messages" {
                    h2 { "Waiting and warnings" }
                    ul { @for n in &notes { li { (n) } } }
                }
            }
            (diff_form(&m, m.environments.first().map(|e| e.name.as_str()), m.environments.get(1).map(|e| e.name.as_str())))
            p.links { a href=(Page::Changes { namespace: ns.clone(), filter: ChangesFilter::default() }.href()) { "Story board: where each change id runs" } }
        }
    };
    Rendered { title: format!("Pipeline {ns}"), body, found: true }
}

/// What the Release runs from: a pin, a tracked range or an upstream Environment.
fn source(r: &Release) -> String {
    match (&r.spec.version, &r.spec.track, &r.spec.promote_from) {
        (Some(v), _, _) => format!("pinned to {v}"),
        (_, Some(t), _) => format!("tracks {t}"),
        (_, _, Some(p)) => format!("promoted from {}", p.environment),
        _ => "no version source".into(),
    }
}

/// `payments 1.3.10 from oci://… (sha256:1a2b3c4d5e6f)`: the chart a version deploys, and the
/// digest it was published with.
fn chart_of(av: &AppVersion) -> Option<String> {
    let h = av.spec.helm.as_ref()?;
    let digest = av.status.as_ref().and_then(|s| s.chart_digest.as_deref()).map(|d| {
        let short: String = d.chars().take("sha256:".len() + 12).collect();
        format!(" ({short})")
    });
    Some(format!("{} {} from {}{}", h.chart, h.version, h.repository, digest.unwrap_or_default()))
}

fn change_ids(av: Option<&AppVersion>) -> Markup {
    html! {
        @match av {
            Some(av) if !av.spec.changes.is_empty() => {
                @for (i, c) in av.spec.changes.iter().enumerate() {
                    @if i > 0 { ", " }
                    span.change title=(c.title.as_deref().unwrap_or("")) { (c.id) }
                }
            },
            _ => "–",
        }
    }
}

pub fn release(s: &Snapshot, name: &str) -> Rendered {
    let Some(r) = s.releases.iter().find(|r| r.name_any() == name) else {
        return not_found(&format!("No Release {name} in namespace {}.", s.namespace));
    };
    let status = r.status.clone().unwrap_or_default();
    let c = crate::matrix::cell(r);
    let running = status.current_version.as_deref();
    let running_av = running.and_then(|v| s.app_version(&r.spec.app, v));
    // Titles and types of the running change ids, where the AppVersion is cached.
    let known: BTreeMap<&str, &Change> =
        running_av.map(|av| av.spec.changes.iter().map(|c| (c.id.as_str(), c)).collect()).unwrap_or_default();
    let ready = find_condition(&status.conditions, ConditionType::Ready);
    let env = s.environments.iter().find(|e| e.name_any() == r.spec.environment);
    let body = html! {
        p.crumbs { a href=(Page::Pipeline { namespace: s.namespace.clone() }.href()) { "← pipeline " (s.namespace) } }
        h1 { (r.spec.app) " in " (r.spec.environment) }
        dl.summary {
            dt { "Running" } dd { (running.unwrap_or("nothing yet")) }
            dt { "Phase" } dd class=(c.tone().as_str()) { (phase_label(status.phase)) }
            dt { "Source" } dd { (source(r)) }
            @if let Some(chart) = running_av.and_then(chart_of) {
                dt { "Chart" } dd { (chart) }
            }
            @if let Some(sa) = env.and_then(|e| e.spec.service_account_name.as_deref()) {
                dt { "Deploys as" } dd { "ServiceAccount " (sa) }
            }
            @if let Some(e) = env.filter(|e| e.spec.cluster.is_some()) {
                dt { "Cluster" } dd { (e.cluster_name()) @if let Some(t) = crate::matrix::cluster_trouble(e) { " — " (t) } }
            }
            @if let Some(p) = &c.pending {
                dt { "Waiting" } dd { (p.version.as_deref().unwrap_or("")) " " (p.what.label()) ": " (p.message) }
            }
            @if let Some(ready) = ready.filter(|c| c.status != "True" && !c.message.is_empty()) {
                dt { "Ready" } dd { (ready.message) }
            }
            @if let Some(f) = &c.forward_port_missing {
                dt { "Forward-port" } dd.bad { (f) }
            }
            @if !status.failed_versions.is_empty() {
                dt { "Failed here" } dd { (status.failed_versions.join(", ")) }
            }
        }
        @if let Some(v) = &status.verification {
            h2 { "Verification of " (v.version) ": " (format!("{:?}", v.result)) }
            table.verification {
                thead { tr { th scope="col" { "Check" } th scope="col" { "Result" } th scope="col" { "What it saw" } } }
                tbody {
                    @for check in &v.checks {
                        tr class=(verification_tone(check.result)) {
                            td { (check.name) } td { (format!("{:?}", check.result)) } td { (check.message) }
                        }
                    }
                }
            }
        }
        h2 { "Change ids in " (running.unwrap_or("the running version")) }
        @if status.changes.is_empty() {
            p.empty { "None recorded." }
        } @else {
            table.changes {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Type" } th scope="col" { "Title" } } }
                tbody {
                    @for id in &status.changes {
                        @let change = known.get(id.as_str());
                        tr {
                            td { code { (id) } }
                            td { (change.and_then(|c| c.type_.as_deref()).unwrap_or("")) }
                            td { (change.and_then(|c| c.title.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        @if status.history.is_empty() {
            p.empty { "Nothing rolled out yet." }
        } @else {
            table.history {
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "Result" } th scope="col" { "Started" }
                    th scope="col" { "Finished" } th scope="col" { "Message" } th scope="col" { "Change ids" }
                } }
                tbody {
                    @for h in &status.history {
                        @let started = h.started_at.0.to_string();
                        tr class=(Tone::of_result(h.result).as_str()) {
                            td { (h.version) }
                            td { (format!("{:?}", h.result)) }
                            td { time datetime=(started) { (short_time(&started)) } }
                            td { @match &h.finished_at {
                                Some(t) => { @let t = t.0.to_string(); time datetime=(t) { (short_time(&t)) } },
                                None => "–",
                            } }
                            td { (h.message.as_deref().unwrap_or("")) }
                            td { (change_ids(s.app_version(&r.spec.app, &h.version))) }
                        }
                    }
                }
            }
        }
    };
    Rendered { title: format!("{} in {}", r.spec.app, r.spec.environment), body, found: true }
}

fn diff_row(r: &DiffRow) -> Markup {
    html! {
        tr class=(if r.differs() { "differs" } else { "same" }) data-app=(r.app) {
            th scope="row" { (r.app) }
            td { (r.a.as_deref().unwrap_or("–")) }
            td { (r.b.as_deref().unwrap_or("–")) }
            td { (r.only_in_a.join(", ")) }
            td { (r.only_in_b.join(", ")) }
            td.bad { (r.forward_port_missing.join("; ")) }
        }
    }
}

pub fn diff_page(s: &Snapshot, a: Option<&str>, b: Option<&str>, now: Timestamp) -> Rendered {
    let m = matrix(&s.namespace, &s.environments, &s.releases, now);
    let mut order = m.environments.iter().map(|e| e.name.as_str());
    // Without a choice, compare the first two environments of the pipeline.
    let a = a.or_else(|| order.next());
    let b = b.or_else(|| order.next());
    let unknown: Vec<&str> =
        [a, b].into_iter().flatten().filter(|n| !m.environments.iter().any(|e| e.name == *n)).collect();
    let body = html! {
        p.crumbs { a href=(Page::Pipeline { namespace: s.namespace.clone() }.href()) { "← pipeline " (s.namespace) } }
        h1 { "Difference " (a.unwrap_or("?")) " → " (b.unwrap_or("?")) }
        (diff_form(&m, a, b))
        @if !unknown.is_empty() {
            p.error role="alert" { "No Environment named " (unknown.join(", ")) " in namespace " (s.namespace) "." }
        } @else if let (Some(a), Some(b)) = (a, b) {
            @let rows = diff(a, b, &s.releases);
            @if rows.is_empty() {
                p.empty { "No app runs in " (a) " or " (b) "." }
            } @else {
                table.diff {
                    thead { tr {
                        th scope="col" { "App" } th scope="col" { (a) } th scope="col" { (b) }
                        th scope="col" { "Only in " (a) } th scope="col" { "Only in " (b) }
                        th scope="col" { "Forward-port" }
                    } }
                    tbody { @for r in &rows { (diff_row(r)) } }
                }
            }
        } @else {
            p.empty { "Two Environments are needed for a difference." }
        }
    };
    Rendered { title: format!("Diff {} → {}", a.unwrap_or("?"), b.unwrap_or("?")), body, found: true }
}

/// The story board: every change id, where it runs and where it is missing, filtered as asked.
pub fn changes_page(s: &Snapshot, f: &ChangesFilter, now: Timestamp) -> Rendered {
    let m = matrix(&s.namespace, &s.environments, &s.releases, now);
    let order: Vec<String> = m.environments.iter().map(|e| e.name.clone()).collect();
    let filter = StoryFilter {
        id: f.id.clone(),
        app: f.app.clone(),
        type_: f.type_.clone(),
        environment: f.env.clone(),
    };
    let mut stories = board(&s.app_versions, &s.releases, &order, &filter);
    crate::matrix::stories::through_products(&mut stories, &s.releases, &s.products);
    let all = board(&s.app_versions, &s.releases, &order, &StoryFilter::default());
    let apps: BTreeSet<&str> = all.iter().map(|st| st.app.as_str()).collect();
    let types: BTreeSet<&str> = all.iter().filter_map(|st| st.type_.as_deref()).collect();
    let choice = |name: &str, label: &str, values: Vec<&str>, selected: Option<&str>| {
        html! {
            label { (label) " "
                select name=(name) {
                    option value="" selected[selected.is_none()] { "all" }
                    @for v in values { option value=(v) selected[selected == Some(v)] { (v) } }
                }
            }
            " "
        }
    };
    let body = html! {
        p.crumbs { a href=(Page::Pipeline { namespace: s.namespace.clone() }.href()) { "← pipeline " (s.namespace) } }
        h1 { "Story board " code { (s.namespace) } }
        form.filters method="get" action=(Page::Changes { namespace: s.namespace.clone(), filter: ChangesFilter::default() }.href()) {
            label { "Change id " input type="search" name="id" value=(f.id.as_deref().unwrap_or("")) placeholder="FIN-142"; }
            " "
            (choice("app", "App", apps.into_iter().collect(), f.app.as_deref()))
            (choice("type", "Type", types.into_iter().collect(), f.type_.as_deref()))
            (choice("env", "Environment", order.iter().map(String::as_str).collect(), f.env.as_deref()))
            button type="submit" { "Filter" }
        }
        @if stories.is_empty() {
            p.empty { "No change ids match. AppVersions list them in " code { "spec.changes" } "." }
        } @else {
            table.stories {
                thead { tr {
                    th scope="col" { "Change" } th scope="col" { "Type" } th scope="col" { "App" } th scope="col" { "Title" }
                    @for e in &order { th scope="col" data-env=(e) { (e) } }
                } }
                tbody {
                    @for st in &stories {
                        tr data-change=(st.id) {
                            td { code { (st.id) } }
                            td { (st.type_.as_deref().unwrap_or("")) }
                            td { (st.app) }
                            td { (st.title.as_deref().unwrap_or("")) }
                            @for e in &order {
                                @if let Some(r) = st.reached.iter().find(|r| &r.environment == e) {
                                    td.good data-env=(e) title=(r.since.as_deref().map(|t| format!("since {t}")).unwrap_or_default()) {
                                        "✓ " (r.version)
                                        @if let Some(p) = &r.product { br; span.product { (p) } }
                                        @if let Some(t) = &r.since { br; time datetime=(t) { (short_time(t)) } }
                                    }
                                } @else if st.missing.contains(e) {
                                    td.bad data-env=(e) { "missing" }
                                } @else {
                                    td.none data-env=(e) { "–" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Rendered { title: format!("Story board {}", s.namespace), body, found: true }
}

mod act;
pub use act::{action_page, action_result, preview_page};

#[cfg(test)]
mod tests;
