//! `insights [--env E] [--app A] [--since 90d]`: deploy frequency, lead time, change failure rate
//! and time to restore per app and Environment, from the audit records (see
//! [`crate::plan::insights`] for what each figure counts).

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::audit::{read, start_of};
use crate::api::AppVersion;
use crate::audit::figures_of;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, table};
use crate::cli::session::Session;

pub async fn insights(s: &Session, env: Option<&str>, app: Option<&str>, since: Duration) -> CliResult<()> {
    let (from, to) = (start_of(since), Timestamp::now());
    // Every month: a change that reached an Environment before the window is no lead time in it.
    let all = read(s, env, app, None).await?;
    let versions = app_versions(s).await?;
    let rows = figures_of(&all, &versions, from, to);
    output::print(s.output, &rows, || {
        if rows.is_empty() {
            return format!("no records in {} yet: figures start with the first rollout recorded\n", s.ns);
        }
        let cells: Vec<Vec<Cell>> =
            rows.iter().map(|r| r.cells().into_iter().map(Cell::from).collect()).collect();
        let header = [
            "ENVIRONMENT",
            "APP",
            "DEPLOYS",
            "PER WEEK",
            "LEAD p50",
            "LEAD p90",
            "FAILURE RATE",
            "RESTORE p50",
            "APPROVAL WAIT p50",
            "FROZEN",
        ];
        table(&header, &cells, s.color)
    })
}

/// The pipeline's AppVersions (when each change id was first published).
async fn app_versions(s: &Session) -> CliResult<Vec<AppVersion>> {
    let api: Api<AppVersion> = Api::namespaced(s.client.clone(), &s.ns);
    let listed = api.list(&ListParams::default()).await;
    listed.map(|l| l.items).map_err(|e| CliError::Failed(format!("listing the AppVersions of {}: {e}", s.ns)))
}
