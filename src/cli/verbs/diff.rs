//! `diff ENV_A ENV_B`: versions and change ids that differ, and forward-port gaps; with
//! `--rendered`, what each app's running version renders to in each Environment, object by object.

use crate::cli::error::CliResult;
use crate::cli::output::{self, Cell, Style, table};
use crate::cli::session::Session;
use crate::matrix::{DiffRow, diff as diff_rows};

/// Prints the difference; `Ok(true)` when the environments differ.
pub async fn diff(s: &Session, a: &str, b: &str) -> CliResult<bool> {
    let places = [where_it_runs(&s.environment(a).await?), where_it_runs(&s.environment(b).await?)];
    let rows = diff_rows(a, b, &s.releases().await?);
    output::print(s.output, &rows, || render(a, b, &rows, s.color) + &places.concat())?;
    Ok(rows.iter().any(DiffRow::differs))
}

/// Where an Environment's apps run, when that is not the operator's own cluster or it cannot be
/// reached (a note under the table).
fn where_it_runs(env: &crate::api::Environment) -> String {
    use kube::ResourceExt;
    let trouble = crate::matrix::cluster_trouble(env);
    if env.cluster_name() == crate::api::IN_CLUSTER && trouble.is_none() {
        return String::new();
    }
    let trouble = trouble.map(|t| format!(" ({t})")).unwrap_or_default();
    format!("{} runs in cluster {}{trouble}\n", env.name_any(), env.cluster_name())
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

/// `diff --rendered A B`: per app running in both, the objects the operator renders for each
/// Environment's running version, as a unified diff per object (identity labels and the namespace,
/// which always differ, left out). `Ok(true)` when anything differs.
pub async fn rendered(s: &Session, a: &str, b: &str) -> CliResult<bool> {
    let (env_a, env_b) = (s.environment(a).await?, s.environment(b).await?);
    let releases = s.releases().await?;
    let app_versions = s.app_versions().await?;
    let running = |env: &str, app: &str| {
        let r = releases.iter().find(|r| r.spec.environment == env && r.spec.app == app)?;
        let v = r.status.as_ref()?.current_version.clone()?;
        let av = app_versions.iter().find(|av| av.spec.app == app && av.spec.version.trim() == v)?;
        Some((r, av))
    };
    let mut apps: Vec<&str> =
        releases.iter().filter(|r| r.spec.environment == a).map(|r| r.spec.app.as_str()).collect();
    apps.sort();
    apps.dedup();
    let mut out = String::new();
    let mut differs = false;
    for app in apps {
        let (Some((ra, ava)), Some((rb, avb))) = (running(a, app), running(b, app)) else { continue };
        let left = super::preview::render_for(s, &env_a, ra, ava).await?;
        let right = super::preview::render_for(s, &env_b, rb, avb).await?;
        out.push_str(&format!("{app}: {} in {a}, {} in {b}\n", ava.spec.version, avb.spec.version));
        let mut names: Vec<(String, String)> = left
            .objects
            .iter()
            .chain(&right.objects)
            .map(|o| (o.resource.kind.clone(), o.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        for (kind, name) in names {
            let body = |r: &crate::render::Rendered| {
                r.objects
                    .iter()
                    .find(|o| o.resource.kind == kind && o.name == name)
                    .map(|o| comparable(&o.body))
            };
            let (l, r) = (body(&left).unwrap_or_default(), body(&right).unwrap_or_default());
            if l == r {
                continue;
            }
            differs = true;
            let diff = similar::TextDiff::from_lines(&l, &r)
                .unified_diff()
                .context_radius(2)
                .header(&format!("{a}/{kind}/{name}"), &format!("{b}/{kind}/{name}"))
                .to_string();
            out.push_str(&diff);
        }
    }
    if out.is_empty() {
        out = format!("no app runs in both {a} and {b}\n");
    } else if !differs {
        out.push_str("the rendered objects are the same\n");
    }
    print!("{out}");
    Ok(differs)
}

/// A rendered object as YAML, without what always differs between Environments (the namespace
/// and the identity labels).
fn comparable(body: &serde_json::Value) -> String {
    let mut v = body.clone();
    strip_identity(&mut v);
    serde_saphyr::to_string(&v).unwrap_or_default()
}

fn strip_identity(v: &mut serde_json::Value) {
    use crate::api::labels;
    if let Some(meta) = v.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
        meta.remove("namespace");
        if let Some(l) = meta.get_mut("labels").and_then(serde_json::Value::as_object_mut) {
            for k in [labels::RELEASE, labels::ENVIRONMENT, labels::INSTANCE, labels::RELEASE_NAMESPACE] {
                l.remove(k);
            }
        }
    }
    if let Some(selector) = v.get_mut("matchLabels").and_then(serde_json::Value::as_object_mut) {
        selector.remove(labels::INSTANCE);
    }
    if let Some(map) = v.as_object_mut() {
        for (_, child) in map.iter_mut() {
            if child.is_object() {
                strip_identity(child);
            }
        }
    }
}
