//! `changes [ID]`: the story board — every change id of the pipeline, where it runs and where it is
//! still missing ("is FIN-142 in prod yet?").

use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, Style, table};
use crate::cli::session::Session;
use crate::matrix::pipeline_order;
use crate::matrix::stories::{Filter, Story, board};

pub async fn changes(s: &Session, filter: Filter) -> CliResult<()> {
    if let Some(env) = &filter.environment {
        s.environment(env).await?;
    }
    let (envs, releases, app_versions) =
        (s.environments().await?, s.releases().await?, s.app_versions().await?);
    let order = pipeline_order(&envs, &releases);
    let mut stories = board(&app_versions, &releases, &order, &filter);
    // Which platform version shipped it, where a product runs the app (if the CRD is installed).
    let products = s.product_releases().await.unwrap_or_default();
    crate::matrix::stories::through_products(&mut stories, &releases, &products);
    if let (Some(id), true) = (&filter.id, stories.is_empty()) {
        return Err(CliError::NotFound(format!(
            "no AppVersion in namespace {} carries change {id}{}",
            s.ns,
            filter.app.as_ref().map(|a| format!(" for app {a}")).unwrap_or_default()
        )));
    }
    output::print(s.output, &stories, || match (&filter.id, stories.as_slice()) {
        (Some(_), [one]) => story(one),
        _ => render(&stories, s.color),
    })
}

fn render(stories: &[Story], color: bool) -> String {
    if stories.is_empty() {
        return "no change ids: AppVersions list them in spec.changes (tuskfish version --emit-appversion fills them from commit subjects)\n".into();
    }
    let rows: Vec<Vec<Cell>> = stories
        .iter()
        .map(|st| {
            let reached: Vec<String> =
                st.reached.iter().map(|r| format!("{} ({})", r.environment, shipped(r))).collect();
            let style = if st.missing.is_empty() { Style::Good } else { Style::Busy };
            vec![
                Cell { text: st.id.clone(), style },
                Cell::from(st.type_.as_deref().unwrap_or("-")),
                Cell::from(st.app.as_str()),
                Cell::from(st.title.as_deref().unwrap_or("")),
                Cell::from(if reached.is_empty() { "-".to_string() } else { reached.join(", ") }),
                Cell::from(if st.missing.is_empty() { "-".to_string() } else { st.missing.join(", ") }),
            ]
        })
        .collect();
    table(&["ID", "TYPE", "APP", "TITLE", "RUNS IN", "MISSING IN"], &rows, color)
}

/// One story, an Environment a line.
fn story(st: &Story) -> String {
    let mut out = format!(
        "{} {}{}\n  carried by {} {}\n",
        st.id,
        st.type_.as_deref().map(|t| format!("({t}) ")).unwrap_or_default(),
        st.title.as_deref().unwrap_or(""),
        st.app,
        st.versions.join(", ")
    );
    for r in &st.reached {
        let since = r.since.as_deref().map(|s| format!(" since {s}")).unwrap_or_default();
        out.push_str(&format!("  {}: runs {}{since}\n", r.environment, shipped(r)));
    }
    for m in &st.missing {
        out.push_str(&format!("  {m}: missing\n"));
    }
    out
}

/// `1.3.10`, or `1.3.10, platform 1.3.10` where a product version shipped it.
fn shipped(r: &crate::matrix::stories::Reached) -> String {
    match &r.product {
        Some(p) => format!("{}, {p}", r.version),
        None => r.version.clone(),
    }
}
