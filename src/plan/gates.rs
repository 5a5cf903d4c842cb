//! Gates a new version passes before it rolls out: dependencies, freeze windows, approval.
//! Rollbacks pass no gates.

pub mod approvals;
pub mod windows;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use self::approvals::Verdict;
pub use self::windows::{FreezeEnd, Window, active_until, next_opening};
use super::wait::{Blocked, Held};
use crate::api::{Approval, Environment, FREEZE_OVERRIDE_ANNOTATION, Phase, Reason, Release};

/// What the gates need to know besides the Release and its Environment.
pub struct GateFacts<'a> {
    /// Approvals in the Release's namespace.
    pub approvals: &'a [&'a Approval],
    /// Releases in the same namespace and Environment (the Release itself included or not).
    pub peers: &'a [&'a Release],
    pub now: Timestamp,
}

/// Why the gates stopped a version.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Waiting is enough.
    Held(Held),
    /// The configuration is wrong.
    Blocked(Blocked),
}

/// Checks every gate for `candidate`. `Ok` carries notes for the rollout's history entry (who
/// approved, an overridden freeze).
pub fn check(
    release: &Release,
    env: &Environment,
    candidate: &semver::Version,
    facts: &GateFacts<'_>,
) -> Result<Vec<String>, Stop> {
    let held = |reason, message: String, recheck_in| {
        Stop::Held(Held { version: Some(candidate.to_string()), reason, message, recheck_in })
    };
    let broken = |reason, message: String| {
        Stop::Blocked(Blocked { phase: Phase::Failed, reason, message, recheck_in: None })
    };
    let mut notes = Vec::new();

    if !release.spec.depends_on.is_empty() {
        if let Some(cycle) = dependency_cycle(release, facts.peers) {
            return Err(broken(
                Reason::DependencyCycle,
                format!("dependsOn forms a cycle: {}", cycle.join(" -> ")),
            ));
        }
        if let Some(waiting) =
            unmet_dependency(release, facts.peers).map_err(|m| broken(Reason::InvalidDependency, m))?
        {
            return Err(held(Reason::WaitingForDependencies, waiting, None));
        }
    }

    let override_reason =
        release.metadata.annotations.as_ref().and_then(|a| a.get(FREEZE_OVERRIDE_ANNOTATION));
    for w in &env.spec.freeze_windows {
        let ends = active_until(w, facts.now).map_err(|m| broken(Reason::InvalidFreezeWindow, m))?;
        let Some(ends) = ends else { continue };
        let (until, recheck_in) = match ends {
            FreezeEnd::At(t) => (
                format!("until {t}"),
                Some(Duration::try_from(t.duration_since(facts.now)).unwrap_or_default()),
            ),
            // Only an edit of the Environment ends it, and that edit wakes the Release.
            FreezeEnd::WhenRemoved => ("until the window is removed".to_string(), None),
        };
        let why = w.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        match override_reason {
            Some(reason) => notes.push(format!("freeze{why} overridden: {reason}")),
            None => {
                return Err(held(
                    Reason::Frozen,
                    format!(
                        "{:?} is frozen{why} {until}; {candidate} rolls out then (or annotate the Release {}=<reason>)",
                        env.metadata.name.as_deref().unwrap_or_default(),
                        FREEZE_OVERRIDE_ANNOTATION
                    ),
                    recheck_in,
                ));
            }
        }
    }

    if !env.spec.allow_windows.is_empty() {
        match outside_allow_windows(env, facts.now).map_err(|m| broken(Reason::InvalidAllowWindow, m))? {
            None => {}
            Some(_) if override_reason.is_some() => {
                notes.push(format!(
                    "outside the allow windows, overridden: {}",
                    override_reason.map(String::as_str).unwrap_or_default()
                ));
            }
            Some(opens) => {
                let (when, recheck_in) = match opens {
                    Some(t) => (
                        format!("the next opens at {t}"),
                        Some(Duration::try_from(t.duration_since(facts.now)).unwrap_or_default()),
                    ),
                    None => ("none opens again".to_string(), None),
                };
                return Err(held(
                    Reason::OutsideAllowWindow,
                    format!(
                        "{:?} deploys only inside its allow windows and {when}; {candidate} rolls out then (or annotate the Release {}=<reason>)",
                        env.metadata.name.as_deref().unwrap_or_default(),
                        FREEZE_OVERRIDE_ANNOTATION
                    ),
                    recheck_in,
                ));
            }
        }
    }

    if env.spec.requires_approval() {
        let name = release.metadata.name.as_deref().unwrap_or_default();
        let rules = env.spec.approval_policy.clone().unwrap_or_default();
        let subject = approvals::Subject {
            release: name,
            app: &release.spec.app,
            environment: &release.spec.environment,
            created: release.metadata.creation_timestamp.as_ref().map(|t| t.0),
        };
        match approvals::judge(subject, candidate, &rules, facts.approvals, facts.now) {
            Verdict::Approved { note } => notes.push(note),
            Verdict::Rejected { message } => return Err(held(Reason::Rejected, message, None)),
            Verdict::Waiting { message, recheck_in } => {
                return Err(held(Reason::AwaitingApproval, message, recheck_in));
            }
            Verdict::Invalid { message } => return Err(broken(Reason::InvalidApprovalPolicy, message)),
        }
    }
    Ok(notes)
}

/// `None` when an allow window is open at `now`; else `Some` of when the next one opens (if any).
fn outside_allow_windows(env: &Environment, now: Timestamp) -> Result<Option<Option<Timestamp>>, String> {
    let mut next: Option<Timestamp> = None;
    for w in &env.spec.allow_windows {
        if active_until(w, now)?.is_some() {
            return Ok(None);
        }
        if let Some(t) = next_opening(w, now)? {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    }
    Ok(Some(next))
}

/// The first dependency that is not yet satisfied, as a message; `Err` for an invalid range.
fn unmet_dependency(release: &Release, peers: &[&Release]) -> Result<Option<String>, String> {
    for dep in &release.spec.depends_on {
        let req = match dep.version.as_deref() {
            Some(r) => Some(
                semver::VersionReq::parse(r)
                    .map_err(|e| format!("dependsOn {}: {r:?} is not a semver range: {e}", dep.app))?,
            ),
            None => None,
        };
        let Some(peer) = peers.iter().find(|p| p.spec.app == dep.app) else {
            return Ok(Some(format!("no Release of {} in this environment yet", dep.app)));
        };
        let status = peer.status.clone().unwrap_or_default();
        let running = status.current_version.as_deref().and_then(|v| semver::Version::parse(v).ok());
        let ok = status.phase == Some(Phase::Healthy)
            && running.as_ref().is_some_and(|v| req.as_ref().is_none_or(|r| r.matches(v)));
        if !ok {
            let want = dep.version.as_deref().map(|r| format!(" at {r}")).unwrap_or_default();
            let now = running.map_or_else(|| "nothing".to_string(), |v| v.to_string());
            return Ok(Some(format!("waiting for {} to be Healthy{want} (runs {now})", dep.app)));
        }
    }
    Ok(None)
}

/// The dependency cycle through `release`'s app, if there is one, as the list of apps around it.
pub fn dependency_cycle(release: &Release, peers: &[&Release]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in peers.iter().copied().chain(std::iter::once(release)) {
        graph
            .entry(r.spec.app.as_str())
            .or_default()
            .extend(r.spec.depends_on.iter().map(|d| d.app.as_str()));
    }
    let start = release.spec.app.as_str();
    // Depth-first search for a path back to `start`.
    let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for &next in graph.get(node).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                let mut cycle: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next) {
                let mut p = path.clone();
                p.push(next);
                stack.push((next, p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
