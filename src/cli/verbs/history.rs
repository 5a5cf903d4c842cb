//! `history APP --env ENV`: the Release's rollouts, newest first.

use crate::cli::error::CliResult;
use crate::cli::output::{self, Cell, table};
use crate::cli::session::Session;
use crate::matrix::Tone;

pub async fn history(s: &Session, app: &str, env: &str) -> CliResult<()> {
    let release = s.existing_release(app, env).await?;
    let entries = release.status.map(|st| st.history).unwrap_or_default();
    output::print(s.output, &entries, || {
        if entries.is_empty() {
            return format!(
                "{} has not rolled out anything yet\n",
                release.metadata.name.clone().unwrap_or_default()
            );
        }
        let rows: Vec<Vec<Cell>> = entries
            .iter()
            .map(|h| {
                let style = Tone::of_result(h.result).into();
                vec![
                    Cell::from(h.version.as_str()),
                    Cell { text: format!("{:?}", h.result), style },
                    Cell::from(h.started_at.0.to_string()),
                    Cell::from(h.finished_at.as_ref().map_or("-".to_string(), |t| t.0.to_string())),
                    Cell::from(h.message.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        table(&["VERSION", "RESULT", "STARTED", "FINISHED", "MESSAGE"], &rows, s.color)
    })
}
