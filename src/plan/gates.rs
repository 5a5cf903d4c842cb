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
use crate::api::{Approval, Environment, FREEZE_OVERRIDE_ANNOTATION, Phase, ProductRelease, Reason, Release};

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

/// What a version that passed the gates takes into its rollout's history entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Passed {
    /// Who approved, an overridden freeze.
    pub notes: Vec<String>,
    /// Whose approvals counted.
    pub approvers: Vec<String>,
}

/// Who passes the Environment's gates: a Release, or a product in the Environment (whose
/// Approvals name the ProductRelease in `spec.release` and the product in `spec.app`).
#[derive(Clone, Copy)]
pub struct Applicant<'a> {
    /// The object's name (what an Approval names).
    pub name: &'a str,
    /// The app, or the product.
    pub app: &'a str,
    pub environment: &'a str,
    pub created: Option<Timestamp>,
    /// Its annotations (a freeze override).
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// What kind it is, in messages ("Release", "ProductRelease").
    pub kind: &'static str,
    /// A product's: when the ProductVersion being let in was made (see [`approvals::Subject`]).
    pub product_version_created: Option<Option<Timestamp>>,
}

impl<'a> Applicant<'a> {
    pub fn release(r: &'a Release) -> Self {
        Self {
            name: r.metadata.name.as_deref().unwrap_or_default(),
            app: &r.spec.app,
            environment: &r.spec.environment,
            created: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            annotations: r.metadata.annotations.as_ref(),
            kind: "Release",
            product_version_created: None,
        }
    }

    pub fn product(p: &'a ProductRelease, version_created: Option<Timestamp>) -> Self {
        Self {
            name: p.metadata.name.as_deref().unwrap_or_default(),
            app: &p.spec.product,
            environment: &p.spec.environment,
            created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            annotations: p.metadata.annotations.as_ref(),
            kind: "ProductRelease",
            product_version_created: Some(version_created),
        }
    }
}

/// Checks every gate for `candidate`.
pub fn check(
    release: &Release,
    env: &Environment,
    candidate: &semver::Version,
    facts: &GateFacts<'_>,
) -> Result<Passed, Stop> {
    let gate = Gate { who: Applicant::release(release), env, candidate, facts };
    gate.dependencies(release)?;
    gate.environment_gates()
}

/// Checks only `dependsOn` (a product's Release: the product passed the other gates).
pub fn dependencies(
    release: &Release,
    env: &Environment,
    candidate: &semver::Version,
    facts: &GateFacts<'_>,
) -> Result<(), Stop> {
    Gate { who: Applicant::release(release), env, candidate, facts }.dependencies(release)
}

/// Checks the Environment's gates (windows, approval) for product version `candidate`; the order
/// of its apps is the product's, so there are no dependencies to wait for here.
pub fn check_product(
    product: &ProductRelease,
    version_created: Option<Timestamp>,
    env: &Environment,
    candidate: &semver::Version,
    facts: &GateFacts<'_>,
) -> Result<Passed, Stop> {
    Gate { who: Applicant::product(product, version_created), env, candidate, facts }.environment_gates()
}

/// One candidate version of one Release (or product) before its Environment's gates; each gate
/// says why it holds (or is broken), or lets it through with notes for the rollout's history entry.
struct Gate<'g, 'f> {
    who: Applicant<'g>,
    env: &'g Environment,
    candidate: &'g semver::Version,
    facts: &'g GateFacts<'f>,
}

impl Gate<'_, '_> {
    fn held(&self, reason: Reason, message: String, recheck_in: Option<Duration>) -> Stop {
        Stop::Held(Held { version: Some(self.candidate.to_string()), reason, message, recheck_in })
    }

    fn broken(reason: Reason, message: String) -> Stop {
        Stop::Blocked(Blocked { phase: Phase::Failed, reason, message, recheck_in: None })
    }

    /// Freeze and allow windows, then approval.
    fn environment_gates(&self) -> Result<Passed, Stop> {
        let mut notes = self.freeze_windows()?;
        notes.extend(self.allow_windows()?);
        let (approved, approvers) = self.approval()?;
        notes.extend(approved);
        Ok(Passed { notes, approvers })
    }

    /// `tuskfish.dev/freeze-override` on the Release: deploy through windows, for this reason.
    fn override_reason(&self) -> Option<&String> {
        self.who.annotations.and_then(|a| a.get(FREEZE_OVERRIDE_ANNOTATION))
    }

    fn env_name(&self) -> &str {
        self.env.metadata.name.as_deref().unwrap_or_default()
    }

    /// `dependsOn`: the apps it names are healthy in the same Environment, and form no cycle.
    fn dependencies(&self, release: &Release) -> Result<(), Stop> {
        let peers = self.facts.peers;
        if release.spec.depends_on.is_empty() {
            return Ok(());
        }
        if let Some(cycle) = dependency_cycle(release, peers) {
            let message = format!("dependsOn forms a cycle: {}", cycle.join(" -> "));
            return Err(Self::broken(Reason::DependencyCycle, message));
        }
        match unmet_dependency(release, peers).map_err(|m| Self::broken(Reason::InvalidDependency, m))? {
            Some(waiting) => Err(self.held(Reason::WaitingForDependencies, waiting, None)),
            None => Ok(()),
        }
    }

    /// No freeze window is active (or the Release overrides it: noted).
    fn freeze_windows(&self) -> Result<Vec<String>, Stop> {
        let (now, mut notes) = (self.facts.now, Vec::new());
        for w in &self.env.spec.freeze_windows {
            let ends = active_until(w, now).map_err(|m| Self::broken(Reason::InvalidFreezeWindow, m))?;
            let Some(ends) = ends else { continue };
            let (until, recheck_in) = match ends {
                FreezeEnd::At(t) => (
                    format!("until {t}"),
                    Some(Duration::try_from(t.duration_since(now)).unwrap_or_default()),
                ),
                // Only an edit of the Environment ends it, and that edit wakes the Release.
                FreezeEnd::WhenRemoved => ("until the window is removed".to_string(), None),
            };
            let why = w.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            if let Some(reason) = self.override_reason() {
                notes.push(format!("freeze{why} overridden: {reason}"));
                continue;
            }
            let message = format!(
                "{:?} is frozen{why} {until}; {} rolls out then (or annotate the {} {FREEZE_OVERRIDE_ANNOTATION}=<reason>)",
                self.env_name(),
                self.candidate,
                self.who.kind
            );
            return Err(self.held(Reason::Frozen, message, recheck_in));
        }
        Ok(notes)
    }

    /// With allow windows, one is open (or the Release overrides them: noted).
    fn allow_windows(&self) -> Result<Vec<String>, Stop> {
        if self.env.spec.allow_windows.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.facts.now;
        let closed =
            outside_allow_windows(self.env, now).map_err(|m| Self::broken(Reason::InvalidAllowWindow, m))?;
        let Some(opens) = closed else { return Ok(Vec::new()) };
        if let Some(reason) = self.override_reason() {
            return Ok(vec![format!("outside the allow windows, overridden: {reason}")]);
        }
        let (when, recheck_in) = match opens {
            Some(t) => (
                format!("the next opens at {t}"),
                Some(Duration::try_from(t.duration_since(now)).unwrap_or_default()),
            ),
            None => ("none opens again".to_string(), None),
        };
        let message = format!(
            "{:?} deploys only inside its allow windows and {when}; {} rolls out then (or annotate the {} {FREEZE_OVERRIDE_ANNOTATION}=<reason>)",
            self.env_name(),
            self.candidate,
            self.who.kind
        );
        Err(self.held(Reason::OutsideAllowWindow, message, recheck_in))
    }

    /// Where approval is required: approved by enough of the right people (noted, and named).
    fn approval(&self) -> Result<(Option<String>, Vec<String>), Stop> {
        let (who, env) = (self.who, self.env);
        if !env.spec.requires_approval() {
            return Ok((None, Vec::new()));
        }
        let rules = env.spec.approval_policy.clone().unwrap_or_default();
        let subject = approvals::Subject {
            release: who.name,
            app: who.app,
            environment: who.environment,
            created: who.created,
            product_version_created: who.product_version_created,
        };
        match approvals::judge(subject, self.candidate, &rules, self.facts.approvals, self.facts.now) {
            Verdict::Approved { note, approvers } => Ok((Some(note), approvers)),
            Verdict::Rejected { message } => Err(self.held(Reason::Rejected, message, None)),
            Verdict::Waiting { message, recheck_in } => {
                Err(self.held(Reason::AwaitingApproval, message, recheck_in))
            }
            Verdict::Invalid { message } => Err(Self::broken(Reason::InvalidApprovalPolicy, message)),
        }
    }
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
