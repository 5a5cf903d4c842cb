//! `deploy`, `promote` and `rollback`: one command changes one Release; `--wait` follows the rollout.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

use crate::api::{
    ConditionType, Phase, REQUESTED_BY_ANNOTATION, REQUESTED_GENERATION_ANNOTATION, Reason, Release,
    ReleaseSpec, RolloutResult, VersionSource,
};
use crate::cli::error::{CliError, CliResult};
use crate::cli::git::GitEdit;
use crate::cli::gitops;
use crate::cli::output::{self, Output};
use crate::cli::session::{CLI_FIELD_MANAGER, Session, list_or_none, parse_version};
use crate::cli::wait::{Goal, wait};
use crate::plan::target::matches_line;

/// Prints a human line: on stdout for tables, on stderr when stdout carries JSON/YAML.
pub fn say(s: &Session, line: &str) {
    if let Some(sink) = &s.sink {
        sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.to_string());
        return;
    }
    match s.output {
        Output::Table => println!("{line}"),
        Output::Json | Output::Yaml | Output::Csv => eprintln!("{line}"),
    }
}

/// After a change: wait if asked, then print the Release for `-o json|yaml`.
pub async fn finish(s: &Session, release: Release, goal: Goal, wait_for: Option<Duration>) -> CliResult<()> {
    let release = match wait_for {
        Some(timeout) => wait(s, &goal, timeout).await?,
        None => release,
    };
    if s.output != Output::Table {
        output::print(s.output, &release, String::new)?;
    }
    Ok(())
}

/// `deploy APP VERSION --env ENV`: pin the Release of APP in ENV to VERSION (creating it if needed).
pub async fn deploy(
    s: &Session,
    app: &str,
    version: &str,
    env: &str,
    wait_for: Option<Duration>,
    git: Option<&GitEdit<'_>>,
) -> CliResult<()> {
    let version = parse_version(version)?;
    let (release, generation) = pin(s, app, env, &version, git).await?;
    let goal = Goal { release: release.name_any(), version: Some(version), generation };
    finish(s, release, goal, wait_for).await
}

/// `promote APP --from A --to B`: deploy to B what runs healthy in A.
pub async fn promote(
    s: &Session,
    app: &str,
    from: &str,
    to: &str,
    wait_for: Option<Duration>,
    git: Option<&GitEdit<'_>>,
) -> CliResult<()> {
    let version = promotable(s, app, from).await?;
    say(s, &format!("promoting {app} {version} from {from} to {to}"));
    let (release, generation) = pin(s, app, to, &version, git).await?;
    let goal = Goal { release: release.name_any(), version: Some(version), generation };
    finish(s, release, goal, wait_for).await
}

/// The version `app` runs healthy in `from`, to promote.
pub async fn promotable(s: &Session, app: &str, from: &str) -> CliResult<semver::Version> {
    let upstream = s.existing_release(app, from).await?;
    let status = upstream.status.clone().unwrap_or_default();
    let (Some(Phase::Healthy), Some(current)) = (status.phase, status.current_version.as_deref()) else {
        return Err(CliError::Failed(format!(
            "{app} is not Healthy in {from} ({}): nothing to promote until it is",
            status.phase.map_or("no status yet", Phase::as_str)
        )));
    };
    parse_version(current)
}

/// The annotations that claim a spec change making `generation` as the CLI user's request: the
/// audit's "requested by" (the API server admits only the user's own name, see
/// [`crate::api::policy::requester_identity_policy`]). `None` when the API server names nobody:
/// the change is made all the same, recorded without a requester.
async fn claim_of(s: &Session, generation: i64) -> Option<BTreeMap<String, String>> {
    let user = s.whoami().await.ok()?;
    Some(BTreeMap::from([
        (REQUESTED_BY_ANNOTATION.to_string(), user),
        (REQUESTED_GENERATION_ANNOTATION.to_string(), generation.to_string()),
    ]))
}

/// Adds to `patch` (a merge patch of `release` that changes which version it runs, with its
/// resourceVersion, so the generation it makes is the next one) the claim that the change is the
/// CLI user's request (see [`claim_of`]).
async fn claim(s: &Session, release: &Release, patch: &mut serde_json::Value) {
    let Some(generation) = release.metadata.generation else { return };
    if let Some(annotations) = claim_of(s, generation + 1).await {
        patch["metadata"]["annotations"] = json!(annotations);
    }
}

/// Sets `spec.version` on the Release of `app` in `env_name` (clearing the other version sources and
/// a manual rollback), or creates `<app>-<env>`; returns it and the generation to wait for.
async fn pin(
    s: &Session,
    app: &str,
    env_name: &str,
    version: &semver::Version,
    git: Option<&GitEdit<'_>>,
) -> CliResult<(Release, i64)> {
    let env = s.environment(env_name).await?;
    let av = s.app_version(app, version).await?;
    let modified = av.status.as_ref().is_some_and(|st| {
        st.conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Ready && c.reason == Reason::SpecModifiedAfterPublish)
    });
    if modified {
        return Err(CliError::Failed(format!(
            "AppVersion {} was edited after it was published and is never rolled out; publish a new version",
            av.name_any()
        )));
    }
    if let Some(line) = env.spec.version_line.as_deref() {
        let req = semver::VersionReq::parse(line).map_err(|e| {
            CliError::Failed(format!("environment {env_name} has an invalid versionLine {line:?}: {e}"))
        })?;
        if !matches_line(&req, version) {
            return Err(CliError::Usage(format!(
                "{version} is outside environment {env_name}'s version line {line:?}; deploy it to an environment of its line"
            )));
        }
    }
    let v = version.to_string();
    let release = match s.release_of(app, env_name).await? {
        Some(existing) => {
            let name = existing.name_any();
            if let Some(applier) = applied_from_git(&existing, &VersionSource::PATHS) {
                return in_git(s, &existing, &applier, &av, env_name, &v, git);
            }
            let was = describe_source(&existing.spec);
            let mut spec = json!({"version": v, "track": null, "promoteFrom": null});
            if existing.spec.rollback_to().is_some() {
                spec["rollback"] = json!({"to": null});
            }
            // The resourceVersion makes this a compare-and-swap: a change made meanwhile is not lost
            // (and the generation it makes is the next one).
            let mut patch =
                json!({"metadata": {"resourceVersion": existing.resource_version()}, "spec": spec});
            // A request is claimed with a change of what chooses the version (the policy admits
            // no other).
            if existing.spec.version_source() != Some(VersionSource::Version(&v)) {
                claim(s, &existing, &mut patch).await;
            }
            let updated = s.merge_patch::<Release>(&name, patch).await?;
            if was != format!("version {v}") {
                say(s, &format!("{name}: deploying {v} to {env_name} (was: {was})"));
            } else {
                say(s, &format!("{name}: already pinned to {v}"));
            }
            updated
        }
        None => {
            let name = format!("{app}-{env_name}");
            let spec = ReleaseSpec {
                app: app.into(),
                environment: env_name.into(),
                version: Some(v.clone()),
                ..Default::default()
            };
            let mut release = Release::new(&name, spec);
            // A new object's generation is 1.
            release.metadata.annotations = claim_of(s, 1).await;
            let created = s
                .api::<Release>()
                .create(
                    &PostParams { field_manager: Some(CLI_FIELD_MANAGER.into()), ..Default::default() },
                    &release,
                )
                .await
                .map_err(|e| CliError::api(&format!("creating Release {name}"), e))?;
            say(s, &format!("{name}: created, deploying {v} to {env_name}"));
            created
        }
    };
    if env.spec.requires_approval() {
        let approved = s.approvals().await?.iter().any(|a| {
            a.spec.release == release.name_any()
                && parse_version(&a.spec.version).is_ok_and(|av| &av == version)
        });
        if !approved {
            say(
                s,
                &format!(
                    "{env_name} requires approval: `tuskfish approve {app} {v} --env {env_name}` lets it roll out"
                ),
            );
        }
    }
    let generation = release.metadata.generation.unwrap_or(0);
    Ok((release, generation))
}

/// The GitOps applier that owns one of `fields` of `obj` (it would undo a live edit), if one does.
pub fn applied_from_git<K: kube::Resource>(obj: &K, fields: &[&[&str]]) -> Option<String> {
    let appliers = gitops::appliers(std::env::var("TUSKFISH_GITOPS_MANAGERS").ok().as_deref());
    gitops::owner(obj.meta().managed_fields.as_deref().unwrap_or_default(), fields, &appliers)
}

/// A version change of a Release that git owns: refused with the exact change to make, or, with
/// `--git`, made as a one-line commit in the checkout.
fn in_git(
    s: &Session,
    existing: &Release,
    applier: &str,
    av: &crate::api::AppVersion,
    env_name: &str,
    v: &str,
    git: Option<&GitEdit<'_>>,
) -> CliResult<(Release, i64)> {
    let (name, ns) = (existing.name_any(), existing.namespace().unwrap_or_default());
    let Some(git) = git else {
        return Err(CliError::Owned(format!(
            "Release {name}'s version is applied from git by {applier}, which would undo a live edit: in git, set spec.version: {v} in Release {name} (namespace {ns}), or run again with --git <checkout> to have tuskfish commit that one line"
        )));
    };
    let running = existing.status.as_ref().map(|st| st.changes.clone()).unwrap_or_default();
    let target: Vec<String> = av.spec.changes.iter().map(|c| c.id.clone()).collect();
    let ships: Vec<&str> = target.iter().filter(|c| !running.contains(c)).map(String::as_str).collect();
    let leaves: Vec<&str> = running.iter().filter(|c| !target.contains(c)).map(String::as_str).collect();
    let list = |ids: &[&str]| if ids.is_empty() { "-".to_string() } else { ids.join(", ") };
    let message = format!(
        "deploy {} {v} to {env_name}\n\nRelease {ns}/{name}: spec.version {v} (was: {})\nShips: {}\nLeaves: {}\n",
        existing.spec.app,
        describe_source(&existing.spec),
        list(&ships),
        list(&leaves)
    );
    let (commit, file, before, after) = git.set_version(&ns, &name, v, &message)?;
    let pushed = if git.push { ", pushed" } else { "" };
    say(
        s,
        &format!(
            "{name}: applied from git by {applier}; committed {commit}{pushed} in {}: `{}` → `{}`",
            file.display(),
            before.trim(),
            after.trim()
        ),
    );
    say(s, &format!("it rolls out once {applier} applies the commit (ships: {})", list(&ships)));
    Ok((existing.clone(), existing.metadata.generation.unwrap_or(0) + 1))
}

pub fn describe_source(spec: &ReleaseSpec) -> String {
    match spec.version_source() {
        Some(VersionSource::RollbackTo(to)) => format!("rolled back to {to}"),
        Some(VersionSource::Version(v)) => format!("version {v}"),
        Some(VersionSource::Track(t)) => format!("tracking {t}"),
        Some(VersionSource::PromoteFrom(env)) => format!("promoting from {env}"),
        None => "no version source".into(),
    }
}

/// The version `rollback` goes back to: `to` if it ran healthy here; mid-rollout the last healthy
/// version; otherwise the healthy one before the current.
pub fn rollback_target(
    name: &str,
    env: &str,
    status: &crate::api::ReleaseStatus,
    to: Option<&str>,
) -> CliResult<String> {
    let healthy: Vec<String> = status
        .history
        .iter()
        .filter(|h| h.result == RolloutResult::Succeeded)
        .map(|h| h.version.clone())
        .fold(Vec::new(), |mut acc, v| {
            if !acc.contains(&v) {
                acc.push(v);
            }
            acc
        });
    Ok(match to {
        Some(to) => {
            let wanted = parse_version(to)?.to_string();
            if !healthy.contains(&wanted) {
                return Err(CliError::NotFound(format!(
                    "{wanted} never ran healthy in {env}, so {name} cannot roll back to it (healthy here: {})",
                    list_or_none(&healthy)
                )));
            }
            wanted
        }
        // Mid-rollout (or after a failed one) "back" means the last healthy version, which is still
        // the current one; once a rollout has finished, the one before it.
        None if status.current_version.is_some() && status.desired_version != status.current_version => {
            status.current_version.clone().unwrap_or_default()
        }
        None => healthy
            .iter()
            .find(|v| Some(v.as_str()) != status.current_version.as_deref())
            .cloned()
            .ok_or_else(|| {
                CliError::NotFound(format!(
                    "{name} has no earlier healthy version to roll back to (healthy here: {})",
                    list_or_none(&healthy)
                ))
            })?,
    })
}

/// `rollback APP --env ENV [--to VERSION] [--clear]`.
pub async fn rollback(
    s: &Session,
    app: &str,
    env: &str,
    to: Option<&str>,
    clear: bool,
    wait_for: Option<Duration>,
) -> CliResult<()> {
    let release = s.existing_release(app, env).await?;
    let name = release.name_any();
    let status = release.status.clone().unwrap_or_default();
    if let Some(applier) = applied_from_git(&release, &[&["spec", "rollback", "to"]]) {
        return Err(CliError::Owned(format!(
            "Release {name}'s spec.rollback is applied from git by {applier}, which would undo a live edit: roll back in git (set spec.version to the version to run)"
        )));
    }
    if clear {
        let mut patch = json!({"metadata": {"resourceVersion": release.resource_version()}, "spec": {"rollback": {"to": null}}});
        if release.spec.rollback_to().is_some() {
            claim(s, &release, &mut patch).await;
        }
        let updated = s.merge_patch::<Release>(&name, patch).await?;
        say(s, &format!("{name}: manual rollback cleared; back to its {}", describe_source(&updated.spec)));
        let goal =
            Goal { release: name, version: None, generation: updated.metadata.generation.unwrap_or(0) };
        return finish(s, updated, goal, wait_for).await;
    }
    let target = rollback_target(&name, env, &status, to)?;
    let mut patch = json!({"metadata": {"resourceVersion": release.resource_version()}, "spec": {"rollback": {"to": target}}});
    if release.spec.rollback_to() != Some(target.as_str()) {
        claim(s, &release, &mut patch).await;
    }
    let updated = s.merge_patch::<Release>(&name, patch).await?;
    say(
        s,
        &format!(
            "{name}: rolling back to {target} (from {}); it stays there until `tuskfish rollback {app} --env {env} --clear` or a deploy",
            status.current_version.as_deref().unwrap_or("nothing")
        ),
    );
    let goal = Goal {
        release: name,
        version: Some(parse_version(&target)?),
        generation: updated.metadata.generation.unwrap_or(0),
    };
    finish(s, updated, goal, wait_for).await
}
