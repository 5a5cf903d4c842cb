//! `flow feature|release|hotfix start|finish NAME`: Gitflow run by tuskfish — the branch from the
//! right base, then merged where Gitflow says (a hotfix also into every newer release line), tagged
//! and deleted, all or nothing; the next version of each line is printed.

use std::path::Path;

use crate::cli::error::{CliError, CliResult};
use crate::cli::flow::{self, Action, Kind};
use crate::cli::git::Repo;

pub struct FlowArgs<'a> {
    pub dir: &'a Path,
    pub kind: Kind,
    pub action: Action,
    pub name: &'a str,
    pub from: Option<&'a str>,
    pub push: bool,
}

pub fn flow(a: FlowArgs<'_>) -> CliResult<()> {
    let repo = Repo::open(a.dir)?;
    repo.require_clean()?;
    let layout = repo.layout()?;
    let plan = match a.action {
        Action::Start => flow::start(a.kind, a.name, a.from, &layout),
        Action::Finish if a.from.is_some() => {
            return Err(CliError::Usage("--from is for `start` (where the branch begins)".into()));
        }
        Action::Finish => flow::finish(a.kind, a.name, &layout),
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let done = repo.carry_out(&plan)?;
    for line in &done.moved {
        println!("{line}");
    }
    if let Some(tag) = &done.tag {
        println!("tagged {tag}");
    }
    if a.push {
        repo.push(&plan)?;
        println!("pushed to origin");
    }
    println!("on {}", plan.end_on);
    if a.action == Action::Finish {
        for (line, next) in repo.next_versions()? {
            println!("next version on {line}: {next}");
        }
    }
    Ok(())
}
