//! The action page of one cell (its confirmation: what runs, what each version would bring, the
//! gates) and the page that says what an action did.

use kube::ResourceExt;
use maud::{Markup, html};

use super::{Rendered, Snapshot, phase_label};
use crate::api::{ConditionType, find_condition};
use crate::matrix::{cell, frozen};
use crate::web::Page;

/// A POST form for one action, with the process's token.
fn form(ns: &str, token: &str, fields: &[(&str, &str)], button: &str, reason: Option<&str>) -> Markup {
    html! {
        form.act method="post" action=(format!("/ns/{ns}/act")) {
            input type="hidden" name="token" value=(token);
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            @if let Some(placeholder) = reason {
                input type="text" name="reason" placeholder=(placeholder) aria-label="Reason";
                " "
            }
            button type="submit" { (button) }
        }
    }
}

/// The actions on `app` in `env`: deploy a version (each with the change ids it would bring), promote
/// from another environment, roll back, approve or reject what waits, freeze or unfreeze.
pub fn action_page(s: &Snapshot, app: &str, env: &str, token: &str, now: jiff::Timestamp) -> Rendered {
    let ns = s.namespace.as_str();
    let Some(environment) = s.environments.iter().find(|e| e.name_any() == env) else {
        return super::not_found(&format!("No Environment {env} in namespace {ns}."));
    };
    let release = s.releases.iter().find(|r| r.spec.app == app && r.spec.environment == env);
    let status = release.and_then(|r| r.status.clone()).unwrap_or_default();
    let running = status.current_version.clone();
    let running_changes: Vec<&String> = status.changes.iter().collect();
    let mut versions: Vec<(semver::Version, &crate::api::AppVersion)> = s
        .app_versions
        .iter()
        .filter(|a| a.spec.app == app)
        .filter_map(|a| Some((semver::Version::parse(a.spec.version.trim()).ok()?, a)))
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.truncate(10);
    let upstreams: Vec<(String, String)> = s
        .releases
        .iter()
        .filter(|r| r.spec.app == app && r.spec.environment != env)
        .filter_map(|r| Some((r.spec.environment.clone(), r.status.as_ref()?.current_version.clone()?)))
        .collect();
    let held = find_condition(&status.conditions, ConditionType::Held).filter(|c| c.status == "True");
    let waiting = status.held_version.clone().or_else(|| {
        let ready = find_condition(&status.conditions, ConditionType::Ready)?;
        (ready.reason == "AwaitingApproval").then(|| status.desired_version.clone()).flatten()
    });
    let ctx = |action: &'static str| [("action", action), ("app", app), ("env", env)];
    let body = html! {
        p.crumbs { a href=(Page::Pipeline { namespace: ns.to_string() }.href()) { "← pipeline " (ns) } }
        h1 { (app) " in " (env) }
        dl.summary {
            dt { "Running" } dd { (running.as_deref().unwrap_or("nothing yet")) }
            dt { "Phase" } dd { (phase_label(status.phase)) }
            @if let Some(c) = release.map(cell).and_then(|c| c.pending) {
                dt { "Waiting" } dd { (c.version.as_deref().unwrap_or("")) " " (c.what.label()) ": " (c.message) }
            }
            dt { "Gates" } dd {
                @if environment.spec.requires_approval() { "approval required · " }
                @match frozen(environment, now) { Some(f) => { "frozen " (f) }, None => { "not frozen" } }
                @if let Some(line) = &environment.spec.version_line { " · version line " code { (line) } }
            }
        }
        p.hint { "Each button acts at once, as you (your kubeconfig's user: RBAC decides). What it does is what "
            code { "tuskfish" } " does on the command line." }
        h2 { "Deploy a version" }
        @if versions.is_empty() {
            p.empty { "No AppVersion of " (app) " yet." }
        } @else {
            table.versions {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Change ids it brings here" } th scope="col" { "" } th scope="col" { "" } } }
                tbody {
                    @for (v, av) in &versions {
                        @let version = v.to_string();
                        @let new: Vec<&str> = av.spec.changes.iter().map(|c| c.id.as_str()).filter(|id| !running_changes.iter().any(|r| r.as_str() == *id)).collect();
                        tr data-version=(version) {
                            td { (version) @if running.as_deref() == Some(version.as_str()) { " (running)" } }
                            td { @if new.is_empty() { "–" } @else { (new.join(", ")) } }
                            td { (form(ns, token, &[ctx("deploy").as_slice(), &[("version", version.as_str())]].concat(), &format!("Deploy {version}"), None)) }
                            td { a.preview href=(format!("/ns/{ns}/preview?app={app}&env={env}&version={version}")) { "preview" } }
                        }
                    }
                }
            }
        }
        @if !upstreams.is_empty() {
            h2 { "Promote" }
            @for (from, v) in &upstreams {
                (form(ns, token, &[ctx("promote").as_slice(), &[("from", from.as_str())]].concat(), &format!("Promote {v} from {from}"), None))
            }
        }
        @if release.is_some() {
            h2 { "Roll back" }
            (form(ns, token, &ctx("rollback"), "Roll back to the previous healthy version", None))
        }
        @if let Some(v) = waiting.as_deref().filter(|_| environment.spec.requires_approval()) {
            h2 { "Approve or reject " (v) }
            @if let Some(h) = held { p { (h.message) } }
            (form(ns, token, &[ctx("approve").as_slice(), &[("version", v)]].concat(), &format!("Approve {v}"), Some("reason, e.g. CAB-2057")))
            (form(ns, token, &[ctx("reject").as_slice(), &[("version", v)]].concat(), &format!("Reject {v}"), Some("why (required)")))
        }
        h2 { "Freeze " (env) }
        (form(ns, token, &ctx("freeze"), &format!("Freeze {env}"), Some("why (required)")))
        @if frozen(environment, now).is_some() {
            (form(ns, token, &ctx("unfreeze"), &format!("Unfreeze {env}"), None))
        }
    };
    Rendered { title: format!("Act on {app} in {env}"), body, found: true }
}

/// A dry run of deploying `version`: the preview text, and the button that does it.
pub fn preview_page(
    ns: &str,
    app: &str,
    env: &str,
    version: &str,
    token: &str,
    preview: &Result<String, String>,
) -> Rendered {
    let fields = [("action", "deploy"), ("app", app), ("env", env), ("version", version)];
    let body = html! {
        p.crumbs { a href=(format!("/ns/{ns}/act?app={app}&env={env}")) { "← " (app) " in " (env) } }
        h1 { "Preview: deploy " (app) " " (version) " to " (env) }
        @match preview {
            Ok(text) => {
                pre.preview { (text) }
                (form(ns, token, &fields, &format!("Deploy {version}"), None))
            }
            Err(why) => { p.error role="alert" { (why) } }
        }
    };
    Rendered { title: format!("Preview {app} {version} in {env}"), body, found: preview.is_ok() }
}

/// What an action did, or why it was not done.
pub fn action_result(ns: &str, what: &str, outcome: &Result<Vec<String>, String>) -> Rendered {
    let body = html! {
        p.crumbs { a href=(Page::Pipeline { namespace: ns.to_string() }.href()) { "← pipeline " (ns) } }
        @match outcome {
            Ok(lines) => {
                h1 { "Done: " (what) }
                ul.done { @for l in lines { li { (l) } } }
            }
            Err(why) => {
                h1 { "Not done: " (what) }
                p.error role="alert" { (why) }
            }
        }
        p { a href=(Page::Pipeline { namespace: ns.to_string() }.href()) { "Back to the pipeline" } }
    };
    Rendered { title: what.to_string(), body, found: outcome.is_ok() }
}
