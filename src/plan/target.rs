//! Which AppVersion a Release should run, and why it cannot when it cannot.
//!
//! A Release names its version one of three ways: pinned (`spec.version`), tracked (`spec.track`, a
//! semver range) or promoted (`spec.promoteFrom`, what an upstream Environment has run healthily for
//! a soak time). Versions that failed here are skipped (tracked, promoted) or not retried (pinned
//! with automatic rollback); `spec.rollback.to` overrides all of it with a version from history.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::gates::{self, GateFacts, Stop};
use super::intent::{Intent, parse_version, rollback_to};
pub use super::intent::{Mode, mode_of};
use super::wait::{Blocked, Held};
use crate::api::{
    AppVersion, AppVersionSpec, Approval, ConditionType, Environment, Phase, ProductRelease, Reason, Release,
    ReleaseStatus, RolloutResult, Veto, find_condition, is_true,
};

/// The AppVersion a Release should run now.
#[derive(Debug)]
pub struct Target<'a> {
    pub app_version: &'a AppVersion,
    pub version: semver::Version,
    /// Set when a newer version exists but is held back, and this is the version kept meanwhile.
    pub held: Option<Held>,
    /// Notes from the gates for the rollout's history entry (approver, overridden freeze).
    pub notes: Vec<String>,
    /// Whose approvals let it through.
    pub approvers: Vec<String>,
    /// The vetoed version this goes back from, when it is a rollback away from a veto.
    pub rollback_of: Option<String>,
}

impl<'a> Target<'a> {
    fn new(app_version: &'a AppVersion, version: semver::Version) -> Self {
        Self { app_version, version, held: None, notes: Vec::new(), approvers: Vec::new(), rollback_of: None }
    }
}

/// Hash of an AppVersion spec, recorded at publish time to enforce immutability.
pub fn spec_hash(spec: &AppVersionSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Everything the choice depends on.
pub struct Inputs<'a> {
    pub release: &'a Release,
    pub env: Option<&'a Environment>,
    /// AppVersions of the Release's namespace.
    pub app_versions: Vec<&'a AppVersion>,
    /// For `promoteFrom`: the Releases of the same app in the upstream Environment (one, unless
    /// someone created a duplicate).
    pub upstream: Vec<&'a Release>,
    /// Other Releases of the same app in the same Environment: duplicates of this one.
    pub twins: Vec<String>,
    /// Whether a product runs this Release, or this app here.
    pub product: ProductLink<'a>,
    /// Approvals of the Release's namespace.
    pub approvals: Vec<&'a Approval>,
    /// The other Releases in the same namespace and Environment (for `dependsOn`).
    pub peers: Vec<&'a Release>,
    pub now: jiff::Timestamp,
}

fn name_of(r: &Release) -> String {
    r.metadata.name.clone().unwrap_or_default()
}

/// Two Releases of one app in one Environment would fight over the same objects: neither that
/// could go ahead does (whichever did would depend on which the operator saw first) until one is deleted.
fn duplicate(release: &Release, twins: &[String], environment: &str) -> Blocked {
    let mut all: Vec<String> = twins.to_vec();
    all.push(name_of(release));
    all.sort();
    Blocked::pending(
        Reason::DuplicateRelease,
        format!(
            "Releases {} all deploy {} to Environment {environment:?}; delete all but one",
            all.join(", "),
            release.spec.app
        ),
    )
}

/// Whether a Degraded rollout is rolled back automatically.
pub fn auto_rollback(release: &Release) -> bool {
    let explicit = release.spec.rollback.as_ref().and_then(|r| r.auto);
    explicit.unwrap_or_else(|| mode_of(release).is_ok_and(|m| m != Mode::Pinned))
}

/// How a Release stands to products.
#[derive(Clone, Debug, Default)]
pub enum ProductLink<'a> {
    /// Neither it nor its app here is a product's.
    #[default]
    None,
    /// It is the Release this ProductRelease runs for its app: it runs what the product admits,
    /// and the product passed the Environment's gates for it.
    RunBy(&'a ProductRelease),
    /// It names a ProductRelease as its owner that is not there (or is another object now).
    OwnerMissing(String),
    /// A product runs its app here through another Release: this one is refused.
    TakenBy { product_release: String, release: String },
}

/// What one reconcile decided for a Release.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Nothing is deployed now: why, and when to look again.
    Hold(Blocked),
    /// Deploy `target` into `env` (the target may be the running version, kept while a newer one
    /// is held: see [`Target::held`]).
    Deploy { target: Target<'a>, env: &'a Environment },
}

/// Decides what the Release of `inputs` does now (see [`select_target`]).
pub fn decide<'a>(inputs: &Inputs<'a>) -> Decision<'a> {
    match (select_target(inputs), inputs.env) {
        (Ok(target), Some(env)) => Decision::Deploy { target, env },
        (Err(blocked), _) => Decision::Hold(blocked),
        // A target is only ever selected for an Environment that is there and ready.
        (Ok(_), None) => Decision::Hold(environment_missing(inputs.release)),
    }
}

fn environment_missing(release: &Release) -> Blocked {
    let name = &release.spec.environment;
    Blocked::pending(
        Reason::EnvironmentNotFound,
        format!("Environment {name:?} does not exist in this namespace"),
    )
}

/// Picks the AppVersion a Release should run: the version its spec asks for, once that passes the
/// gates (dependencies, freeze windows, approval); until then the running version stays, held.
/// Rollbacks pass no gates.
pub fn select_target<'a>(inputs: &Inputs<'a>) -> Result<Target<'a>, Blocked> {
    let target = gated(inputs)?;
    // Checked last, so that what is wrong with the Release itself is reported first. A product's
    // Release goes ahead whatever other Releases of its app there are: those are refused.
    if let ProductLink::TakenBy { product_release, release } = &inputs.product {
        let r = inputs.release;
        return Err(Blocked::failed(
            Reason::RunByProduct,
            format!(
                "{} runs in Environment {:?} as part of ProductRelease {product_release} (Release {release}); delete this Release",
                r.spec.app, r.spec.environment
            ),
        ));
    }
    if !inputs.twins.is_empty() && !matches!(inputs.product, ProductLink::RunBy(_)) {
        let r = inputs.release;
        return Err(duplicate(r, &inputs.twins, &r.spec.environment));
    }
    Ok(target)
}

fn gated<'a>(inputs: &Inputs<'a>) -> Result<Target<'a>, Blocked> {
    // A Release claiming a product that does not run it goes nowhere, whatever it asks for.
    if let ProductLink::OwnerMissing(name) = &inputs.product {
        return Err(Blocked::pending(
            Reason::ProductNotFound,
            format!(
                "its owner, ProductRelease {name}, is not there, or does not run this Release (another object, another name)"
            ),
        ));
    }
    let (mut target, explicit_rollback) = choose(inputs)?;
    let status = inputs.release.status.clone().unwrap_or_default();
    let is_new = status.current_version.as_deref() != Some(target.version.to_string().as_str());
    let Some(env) = inputs.env else { return Ok(target) };
    if let ProductLink::RunBy(product) = &inputs.product {
        return product_gated(inputs, product, env, target, &status, is_new);
    }
    // The Environment now names another cluster or namespace: running there is as new as a new
    // version (a move into prod's cluster during a freeze waits for the freeze to end).
    let moved = moved(&status, env);
    if !moved && (!is_new || explicit_rollback) {
        return Ok(target);
    }
    let facts = GateFacts { approvals: &inputs.approvals, peers: &inputs.peers, now: inputs.now };
    match gates::check(inputs.release, env, &target.version, &facts) {
        Ok(passed) => {
            target.notes = passed.notes;
            target.approvers = passed.approvers;
            Ok(target)
        }
        Err(Stop::Blocked(b)) => Err(b),
        // Keeping the running version would deploy it in the new place: nothing goes there, and
        // the old place keeps running until the gates open.
        Err(Stop::Held(h)) if moved => Err(Blocked {
            phase: Phase::Pending,
            reason: h.reason,
            message: format!(
                "{}; Environment {} moved to namespace {} in cluster {}, where nothing is deployed until then",
                h.message,
                env.metadata.name.as_deref().unwrap_or_default(),
                env.spec.namespace,
                env.cluster_name()
            ),
            recheck_in: h.recheck_in.map(|d| d.min(MAX_RECHECK)),
        }),
        Err(Stop::Held(h)) => {
            let catalog = AppVersions { app: &inputs.release.spec.app, app_versions: &inputs.app_versions };
            keep_current(&status, &catalog, h)
        }
    }
}

/// A product's Release: it goes to a version only once its product admits that version for its
/// app (the product passed the Environment's gates for it: approval, windows), and after the apps
/// it names are healthy (the product's order). A rollback asked of the Release itself is no
/// exception: the product decides what its apps run.
fn product_gated<'a>(
    inputs: &Inputs<'a>,
    product: &ProductRelease,
    env: &Environment,
    mut target: Target<'a>,
    status: &ReleaseStatus,
    is_new: bool,
) -> Result<Target<'a>, Blocked> {
    let admitted = product.status.as_ref().and_then(|s| s.admitted.as_ref());
    let version = target.version.to_string();
    let catalog = AppVersions { app: &inputs.release.spec.app, app_versions: &inputs.app_versions };
    let name = product.metadata.name.as_deref().unwrap_or_default();
    let Some(admitted) =
        admitted.filter(|a| a.version_of(&inputs.release.spec.app) == Some(version.as_str()))
    else {
        let admits = admitted.and_then(|a| a.version_of(&inputs.release.spec.app)).unwrap_or("nothing");
        let held = Held {
            version: Some(version.clone()),
            reason: Reason::ProductNotAdmitted,
            message: format!(
                "ProductRelease {name} admits {admits} of {} here, not {version}: change the product's version, not this Release's",
                inputs.release.spec.app
            ),
            recheck_in: None,
        };
        return keep_current(status, &catalog, held);
    };
    if is_new {
        // The apps it runs after are its product's Releases of them (not a refused twin).
        let name = product.metadata.name.as_deref().unwrap_or_default();
        let siblings: Vec<&Release> = inputs
            .peers
            .iter()
            .copied()
            .filter(|p| {
                p.metadata.name.as_deref() == Some(crate::api::child_release_name(name, &p.spec.app).as_str())
                    && crate::api::owned_by(p, product)
            })
            .collect();
        let facts = GateFacts { approvals: &[], peers: &siblings, now: inputs.now };
        match gates::dependencies(inputs.release, env, &target.version, &facts) {
            Ok(()) => {}
            Err(Stop::Blocked(b)) => return Err(b),
            Err(Stop::Held(h)) => return keep_current(status, &catalog, h),
        }
    }
    target.notes = admitted.notes.clone();
    target.notes.push(format!(
        "product {} {} in {}",
        product.spec.product, admitted.version, product.spec.environment
    ));
    target.approvers = admitted.approvers.clone();
    Ok(target)
}

/// Whether the Release's objects were last applied somewhere other than where its Environment
/// now deploys (another cluster or namespace).
fn moved(status: &ReleaseStatus, env: &Environment) -> bool {
    status
        .inventory
        .as_ref()
        .is_some_and(|inv| inv.namespace != env.spec.namespace || inv.cluster != env.spec.cluster)
}

/// The longest timer a held version sets. A soak may be any number of seconds up to `u64::MAX`, and
/// the controller adds a second of slack to the timer: when the upstream's healthy-since time is not
/// before now (another replica's clock ahead of ours), that sum overflows, which panics. Looking
/// again after a day instead costs one idle reconcile.
pub const MAX_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// The running version, kept while a newer one is held; `Blocked` when nothing runs yet.
fn keep_current<'a>(
    status: &ReleaseStatus,
    catalog: &AppVersions<'a, '_>,
    held: Held,
) -> Result<Target<'a>, Blocked> {
    let held = Held { recheck_in: held.recheck_in.map(|d| d.min(MAX_RECHECK)), ..held };
    let current = status.current_version.as_deref().and_then(|c| semver::Version::parse(c).ok());
    match current.and_then(|c| catalog.exact(&c).ok().map(|av| (c, av))) {
        Some((version, av)) => Ok(Target { held: Some(held), ..Target::new(av, version) }),
        None => Err(Blocked {
            phase: Phase::Pending,
            reason: held.reason,
            message: held.message,
            recheck_in: held.recheck_in,
        }),
    }
}

/// The version the spec asks for, before gates; `true` for an explicit rollback (`rollback.to`).
/// Each mode is a function of its own over the same [`Choice`].
fn choose<'a>(inputs: &Inputs<'a>) -> Result<(Target<'a>, bool), Blocked> {
    let release = inputs.release;
    mode_of(release)?;
    let env = ready_environment(inputs)?;
    let c = Choice::new(inputs, env)?;
    if let Some(to) = rollback_to(release)? {
        return c.explicit_rollback(to);
    }
    let failed = |v: &semver::Version| c.failed(v);
    if let Some(away) = away_from_veto(release, &c.status, &c.catalog, &failed) {
        return away;
    }
    // What the spec asks for is read only now: a rollback (above) gets a broken spec out.
    match Intent::of(release)? {
        Intent::Pinned(version) => c.pinned(version),
        Intent::Tracked { range, text } => c.tracked(&range, &text),
        Intent::Promoted { environment, soak } => c.promoted(&environment, soak, &inputs.upstream),
    }
}

/// The Release's Environment, once it exists and is Ready where it now deploys.
fn ready_environment<'a>(inputs: &Inputs<'a>) -> Result<&'a Environment, Blocked> {
    ready(inputs.env, &inputs.release.spec.environment)
}

/// Environment `name` (`env`, when it exists), once it is Ready where it now deploys.
pub fn ready<'a>(env: Option<&'a Environment>, name: &str) -> Result<&'a Environment, Blocked> {
    let env = env.ok_or_else(|| {
        Blocked::pending(
            Reason::EnvironmentNotFound,
            format!("Environment {name:?} does not exist in this namespace"),
        )
    })?;
    // A status counts only for the spec and the cluster it was written for: right after the
    // Environment moved (another cluster, namespace or agent) it still describes the old place.
    let env_ready = env.status.as_ref().is_some_and(|s| {
        is_true(&s.conditions, ConditionType::Ready)
            && s.namespace.as_deref() == Some(env.spec.namespace.as_str())
            && s.observed_generation == env.metadata.generation
            && s.cluster.as_deref() == Some(env.cluster_name())
    });
    if env_ready {
        return Ok(env);
    }
    // A cluster that cannot be used is the Release's own trouble too: say so in its words.
    let ready = env.status.as_ref().and_then(|s| find_condition(&s.conditions, ConditionType::Ready));
    let cluster =
        ready.and_then(|c| Reason::parse(&c.reason).filter(|r| r.is_cluster_trouble()).map(|r| (r, c)));
    Err(match cluster {
        Some((reason, c)) => Blocked::pending(reason, c.message.clone()),
        None => Blocked::pending(
            Reason::EnvironmentNotReady,
            format!("Environment {name:?} is not Ready (see its conditions)"),
        ),
    })
}

/// What every mode's choice reads: the Release, its Ready Environment and that one's version
/// line, the app's versions and the Release's own status.
struct Choice<'a, 'i> {
    release: &'a Release,
    env: &'a Environment,
    line: Option<semver::VersionReq>,
    catalog: AppVersions<'a, 'i>,
    status: ReleaseStatus,
    now: jiff::Timestamp,
}

impl<'a, 'i> Choice<'a, 'i> {
    fn new(inputs: &'i Inputs<'a>, env: &'a Environment) -> Result<Self, Blocked> {
        let line = match env.spec.version_line.as_deref() {
            Some(l) => Some(semver::VersionReq::parse(l).map_err(|e| {
                Blocked::failed(
                    Reason::InvalidVersionLine,
                    format!("Environment versionLine {l:?} is not a semver range: {e}"),
                )
            })?),
            None => None,
        };
        let release = inputs.release;
        Ok(Self {
            release,
            env,
            line,
            catalog: AppVersions { app: &release.spec.app, app_versions: &inputs.app_versions },
            status: release.status.clone().unwrap_or_default(),
            now: inputs.now,
        })
    }

    fn in_line(&self, v: &semver::Version) -> bool {
        self.line.as_ref().is_none_or(|l| matches_line(l, v))
    }

    fn failed(&self, v: &semver::Version) -> bool {
        self.status.failed_versions.iter().any(|f| f == &v.to_string())
    }

    /// Why `v` is not to be gone to: vetoed in the whole pipeline, or failed here.
    fn skip_why(&self, v: &semver::Version) -> Option<String> {
        match self.catalog.veto(v) {
            Some(veto) => Some(veto.describe()),
            None => self.failed(v).then(|| "failed here".to_string()),
        }
    }

    fn keep_current(&self, held: Held) -> Result<(Target<'a>, bool), Blocked> {
        keep_current(&self.status, &self.catalog, held).map(|t| (t, false))
    }

    fn check_line(&self, version: &semver::Version) -> Result<(), Blocked> {
        check_line(version, self.in_line(version), &self.release.spec.environment, self.env)
    }

    /// `spec.rollback.to`: a version that ran healthily here and is not vetoed (no gates).
    fn explicit_rollback(&self, version: semver::Version) -> Result<(Target<'a>, bool), Blocked> {
        let known = self.status.history.iter().any(|h| {
            h.result == RolloutResult::Succeeded
                && semver::Version::parse(&h.version).is_ok_and(|v| v == version)
        });
        if !known {
            return Err(Blocked::failed(
                Reason::RollbackTargetNotInHistory,
                format!(
                    "spec.rollback.to {version} never ran healthily here; pick a version from status.history"
                ),
            ));
        }
        if let Some(veto) = self.catalog.veto(&version) {
            return Err(Blocked::failed(
                Reason::VersionVetoed,
                format!("spec.rollback.to {version} was {}; pick another version", veto.describe()),
            ));
        }
        self.catalog.exact(&version).map(|av| (Target::new(av, version), true))
    }

    /// `spec.version`: that version, unless vetoed or failed here (with automatic rollback).
    fn pinned(&self, version: semver::Version) -> Result<(Target<'a>, bool), Blocked> {
        self.check_line(&version)?;
        let held =
            |reason, message| Held { version: Some(version.to_string()), reason, message, recheck_in: None };
        if let Some(veto) = self.catalog.veto(&version) {
            let message = format!("{version} was {}; pin another version", veto.describe());
            return self.keep_current(held(Reason::VersionVetoed, message));
        }
        if self.failed(&version) && auto_rollback(self.release) {
            let message = format!("version {version} failed here and was rolled back; pin another version");
            return self.keep_current(held(Reason::VersionFailed, message));
        }
        self.catalog.exact(&version).map(|av| (Target::new(av, version), false))
    }

    /// `spec.track`: the newest published version in the range (and the line) that may go.
    fn tracked(&self, range: &semver::VersionReq, raw: &str) -> Result<(Target<'a>, bool), Blocked> {
        let mut candidates: Vec<(semver::Version, &AppVersion)> =
            self.catalog.published().filter(|(v, _)| range.matches(v) && self.in_line(v)).collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0));
        let skipped: Vec<(semver::Version, String)> =
            candidates.iter().map_while(|(v, _)| Some((v.clone(), self.skip_why(v)?))).collect();
        // Held for the newest skipped version: vetoed, or else failed here.
        let reason = match skipped.first() {
            Some((v, _)) if self.catalog.veto(v).is_some() => Reason::VersionVetoed,
            _ => Reason::VersionFailed,
        };
        let listed = skipped.iter().map(|(v, why)| format!("{v} ({why})")).collect::<Vec<_>>().join(", ");
        let held = |message| Held {
            version: skipped.first().map(|(v, _)| v.to_string()),
            reason,
            message,
            recheck_in: None,
        };
        match candidates.into_iter().find(|(v, _)| self.skip_why(v).is_none()) {
            Some((version, av)) => {
                let held = (!skipped.is_empty()).then(|| {
                    held(format!("skipping {listed} until a newer version in {raw:?} is published"))
                });
                Ok((Target { held, ..Target::new(av, version) }, false))
            }
            None if !skipped.is_empty() => {
                self.keep_current(held(format!("no version in {raw:?} may go: {listed}")))
            }
            None => {
                let within = self.env.spec.version_line.as_deref().map(|l| format!(" within the line {l:?}"));
                Err(Blocked::pending(
                    Reason::NoMatchingVersion,
                    format!(
                        "no published AppVersion of {} matches {raw:?}{}",
                        self.release.spec.app,
                        within.unwrap_or_default()
                    ),
                ))
            }
        }
    }

    /// `spec.promoteFrom`: what runs healthily upstream, once it has soaked, unless vetoed or failed here.
    fn promoted(
        &self,
        from: &str,
        soak: Duration,
        upstream: &[&Release],
    ) -> Result<(Target<'a>, bool), Blocked> {
        let (candidate, since) = match self.upstream_healthy(from, upstream) {
            Ok(found) => found,
            Err(held) => return self.keep_current(held),
        };
        let version = parse_version(&candidate, "upstream version")?;
        if self.status.current_version.as_deref() != Some(candidate.as_str()) {
            let held = |reason, message| Held {
                version: Some(candidate.clone()),
                reason,
                message,
                recheck_in: None,
            };
            if let Some(veto) = self.catalog.veto(&version) {
                let message =
                    format!("{version} was {}; waiting for a newer version upstream", veto.describe());
                return self.keep_current(held(Reason::VersionVetoed, message));
            }
            if self.failed(&version) {
                let message = format!("{version} failed here; waiting for a newer version upstream");
                return self.keep_current(held(Reason::VersionFailed, message));
            }
            self.check_line(&version)?;
            let soaked = Duration::try_from(self.now.duration_since(since)).unwrap_or_default();
            if soaked < soak {
                let left = soak - soaked;
                let message = format!(
                    "{version} is healthy in {:?}; promoting after {}s more soak",
                    from,
                    left.as_secs()
                );
                return self.keep_current(Held { recheck_in: Some(left), ..held(Reason::Soaking, message) });
            }
        }
        self.catalog.exact(&version).map(|av| (Target::new(av, version), false))
    }

    /// The version that runs healthily in the upstream Environment `from`, and since when; else
    /// why promotion waits.
    fn upstream_healthy(&self, from: &str, upstream: &[&Release]) -> Result<(String, jiff::Timestamp), Held> {
        let app = &self.release.spec.app;
        let waits = |version, reason, message| Held { version, reason, message, recheck_in: None };
        if upstream.len() > 1 {
            let names: Vec<String> = upstream.iter().map(|r| name_of(r)).collect();
            let message = format!(
                "Environment {from:?} has {} Releases of {app} ({}): promotion waits until only one is left",
                names.len(),
                names.join(", ")
            );
            return Err(waits(None, Reason::DuplicateRelease, message));
        }
        let Some(up) = upstream.first().map(|r| r.status.clone().unwrap_or_default()) else {
            return Err(waits(
                None,
                Reason::UpstreamNotFound,
                format!("no Release of {app} in Environment {from:?}"),
            ));
        };
        let healthy_since = match (up.phase, up.current_version.as_deref()) {
            (Some(Phase::Healthy), Some(v)) => up
                .history
                .iter()
                .find(|h| h.version == v && h.result == RolloutResult::Succeeded)
                .and_then(|h| h.finished_at.clone())
                .map(|t| (v.to_string(), t.0)),
            _ => None,
        };
        healthy_since.ok_or_else(|| {
            waits(
                up.desired_version.clone(),
                Reason::UpstreamNotHealthy,
                format!("{from:?} is not healthy; waiting for it"),
            )
        })
    }
}

/// When the version running here was vetoed: with automatic rollback, a rollback (no gates) to the
/// newest version that ran healthily here and may still go; without, the version keeps running and
/// the Release says so. `None` when what runs is not vetoed.
fn away_from_veto<'a>(
    release: &Release,
    status: &ReleaseStatus,
    catalog: &AppVersions<'a, '_>,
    failed: &dyn Fn(&semver::Version) -> bool,
) -> Option<Result<(Target<'a>, bool), Blocked>> {
    let current = semver::Version::parse(status.current_version.as_deref()?).ok()?;
    let veto = catalog.veto(&current)?;
    let held = |message: String| Held {
        version: Some(current.to_string()),
        reason: Reason::VersionVetoed,
        message,
        recheck_in: None,
    };
    if !auto_rollback(release) {
        let message = format!(
            "{current} runs here and was {}; deploy another version or roll back (`tuskfish rollback`)",
            veto.describe()
        );
        return Some(keep_current(status, catalog, held(message)).map(|t| (t, false)));
    }
    let back = status
        .history
        .iter()
        .filter(|h| h.result == RolloutResult::Succeeded)
        .filter_map(|h| semver::Version::parse(&h.version).ok())
        .find(|v| v != &current && !failed(v) && catalog.veto(v).is_none());
    let Some(version) = back else {
        let message = format!(
            "{current} runs here and was {}; nothing that ran healthily here before may go instead",
            veto.describe()
        );
        return Some(keep_current(status, catalog, held(message)).map(|t| (t, false)));
    };
    let target = catalog.exact(&version).map(|av| Target {
        held: Some(held(format!("{current} was {}; rolled back to {version}", veto.describe()))),
        notes: vec![format!("rollback: {current} {}", veto.describe())],
        rollback_of: Some(current.to_string()),
        ..Target::new(av, version)
    });
    Some(target.map(|t| (t, true)))
}

fn check_line(version: &semver::Version, ok: bool, env_name: &str, env: &Environment) -> Result<(), Blocked> {
    if ok {
        return Ok(());
    }
    Err(Blocked::failed(
        Reason::OutsideVersionLine,
        format!(
            "version {version} is outside Environment {env_name:?}'s version line {:?}",
            env.spec.version_line.as_deref().unwrap_or_default()
        ),
    ))
}

/// The AppVersions of one app.
struct AppVersions<'a, 'b> {
    app: &'b str,
    app_versions: &'b [&'a AppVersion],
}

impl<'a> AppVersions<'a, '_> {
    fn of_app(&self) -> impl Iterator<Item = &'a AppVersion> + '_ {
        self.app_versions.iter().copied().filter(|av| av.spec.app == self.app)
    }

    /// The app's AppVersions of exactly `version`.
    fn at<'v>(&'v self, version: &'v semver::Version) -> impl Iterator<Item = &'a AppVersion> + 'v {
        self.of_app()
            .filter(move |av| semver::Version::parse(av.spec.version.trim()).is_ok_and(|v| &v == version))
    }

    /// The veto on `version`, if any AppVersion of it carries one.
    fn veto(&self, version: &semver::Version) -> Option<Veto> {
        self.at(version).find_map(Veto::of)
    }

    /// Published, unmodified versions.
    fn published(&self) -> impl Iterator<Item = (semver::Version, &'a AppVersion)> + '_ {
        self.of_app().filter_map(|av| {
            let hash = av.status.as_ref()?.spec_hash.as_deref()?;
            if hash != spec_hash(&av.spec) {
                return None;
            }
            Some((semver::Version::parse(av.spec.version.trim()).ok()?, av))
        })
    }

    /// The one AppVersion of exactly `version`, with a precise reason when there is none.
    fn exact(&self, version: &semver::Version) -> Result<&'a AppVersion, Blocked> {
        let candidates: Vec<&AppVersion> = self.at(version).collect();
        let app_version = match candidates.as_slice() {
            [] => {
                return Err(Blocked::pending(
                    Reason::AppVersionNotFound,
                    format!("no AppVersion of app {:?} with version {version} in this namespace", self.app),
                ));
            }
            [one] => *one,
            many => {
                let mut names: Vec<_> = many.iter().filter_map(|a| a.metadata.name.as_deref()).collect();
                names.sort_unstable();
                return Err(Blocked::failed(
                    Reason::AmbiguousAppVersion,
                    format!("several AppVersions claim {} {version}: {}", self.app, names.join(", ")),
                ));
            }
        };
        let name = app_version.metadata.name.as_deref().unwrap_or("?");
        match app_version.status.as_ref().and_then(|s| s.spec_hash.as_deref()) {
            None => Err(Blocked::pending(
                Reason::AppVersionNotPublished,
                format!("AppVersion {name} is not published yet"),
            )),
            Some(h) if h != spec_hash(&app_version.spec) => Err(Blocked::failed(
                Reason::AppVersionModified,
                format!(
                    "AppVersion {name} was changed after it was published; publish a new version instead"
                ),
            )),
            Some(_) => Ok(app_version),
        }
    }
}

/// Semver ranges exclude pre-releases unless a comparator names one; a version line like `~1.4`
/// should still hold `1.4.0-rc.1`. So a pre-release belongs to a line when the line holds its release
/// (`1.4.0`) and no comparator draws its lower bound exactly at that release (`>=1.4.0` means "from
/// the 1.4.0 release on", which its release candidates precede).
pub fn matches_line(req: &semver::VersionReq, v: &semver::Version) -> bool {
    if req.matches(v) {
        return true;
    }
    if v.pre.is_empty() {
        return false;
    }
    let release = semver::Version::new(v.major, v.minor, v.patch);
    let bound_at_release = |c: &semver::Comparator| {
        matches!(c.op, semver::Op::GreaterEq | semver::Op::Exact | semver::Op::Caret | semver::Op::Tilde)
            && (c.major, c.minor, c.patch) == (v.major, Some(v.minor), Some(v.patch))
    };
    req.matches(&release) && !req.comparators.iter().any(bound_at_release)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        AppVersionStatus, Condition, EnvironmentStatus, HistoryEntry, PromoteFrom, ReleaseStatus,
        RollbackSpec,
    };
    use crate::render::tests::{app_version, environment, release};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_env(line: Option<&str>) -> Environment {
        let mut env = environment(&[]);
        env.spec.version_line = line.map(str::to_string);
        env.status = Some(EnvironmentStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "NamespaceOwned".into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            namespace: Some(env.spec.namespace.clone()),
            cluster: Some(crate::api::IN_CLUSTER.into()),
            ..Default::default()
        });
        env
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn select<'a>(
        r: &'a Release,
        env: Option<&'a Environment>,
        avs: &'a [AppVersion],
        up: Option<&'a Release>,
    ) -> Result<Target<'a>, Blocked> {
        select_target(&Inputs {
            release: r,
            env,
            app_versions: avs.iter().collect(),
            upstream: up.into_iter().collect(),
            twins: vec![],
            product: Default::default(),
            approvals: vec![],
            peers: vec![],
            now: now(),
        })
    }

    /// `Ok(version)` or `Err(reason)`; a held version shows as `version (held: reason)`.
    fn outcome(r: Result<Target<'_>, Blocked>) -> Result<String, &'static str> {
        r.map(|t| match t.held {
            Some(h) => format!("{} (held: {})", t.version, h.reason),
            None => t.version.to_string(),
        })
        .map_err(|b| b.reason.as_str())
    }

    fn tracked(range: &str, failed: &[&str], current: Option<&str>) -> Release {
        let mut r = release();
        r.spec.version = None;
        r.spec.track = Some(range.into());
        r.status = Some(ReleaseStatus {
            failed_versions: failed.iter().map(|s| s.to_string()).collect(),
            current_version: current.map(str::to_string),
            ..Default::default()
        });
        r
    }

    fn published(version: &str) -> AppVersion {
        let mut av = app_version(Some(Default::default()), vec![]);
        av.metadata.name = Some(format!("payments-{version}"));
        av.spec.version = version.into();
        av.status = Some(AppVersionStatus { spec_hash: Some(spec_hash(&av.spec)), ..Default::default() });
        av
    }

    fn pinned(v: Option<&str>) -> Release {
        let mut r = release();
        r.spec.version = v.map(str::to_string);
        r
    }

    #[test]
    fn selection_table() {
        let avs = vec![published("1.3.9"), published("1.3.10"), published("1.4.0-rc.1")];
        let mut modified = published("1.5.0");
        modified.spec.changes.push(Default::default());
        let mut unpublished = published("1.6.0");
        unpublished.status = None;
        let mut all = avs.clone();
        all.extend([modified, unpublished, published("1.7.0"), published("1.7.0")]);

        let env = ready_env(None);
        let line13 = ready_env(Some("~1.3"));
        let mut not_ready = ready_env(None);
        not_ready.status = None;
        let bad_line = ready_env(Some("not a range"));
        // The cluster's trouble is the Release's reason too (the Environment's message with it).
        let cluster_down = |reason: &str| {
            let mut env = ready_env(None);
            let ready = &mut env.status.as_mut().unwrap().conditions[0];
            (ready.status, ready.reason, ready.message) =
                ("False".into(), reason.into(), "cluster test …".into());
            env
        };
        let (unreachable, unusable) =
            (cluster_down("ClusterUnreachable"), cluster_down("ClusterConfigInvalid"));
        let agent_gone = cluster_down("AgentNotConnected");
        // A status written before the Environment's last edit, or for another cluster, is stale.
        let mut edited = ready_env(None);
        edited.metadata.generation = Some(2);
        edited.status.as_mut().unwrap().observed_generation = Some(1);
        let mut moved = ready_env(None);
        moved.status.as_mut().unwrap().cluster = Some("other".into());

        type Case<'a> = (Option<&'a str>, Option<&'a Environment>, Result<&'a str, &'a str>);
        let cases: Vec<Case> = vec![
            (Some("1.3.9"), Some(&env), Ok("1.3.9")),
            (Some(" 1.3.10"), Some(&env), Ok("1.3.10")),
            (Some("1.4.0-rc.1"), Some(&env), Ok("1.4.0-rc.1")),
            (None, Some(&env), Err("NoVersion")),
            (Some("1.3"), Some(&env), Err("InvalidVersion")),
            (Some("1.3.9"), None, Err("EnvironmentNotFound")),
            (Some("1.3.9"), Some(&not_ready), Err("EnvironmentNotReady")),
            (Some("1.3.9"), Some(&unreachable), Err("ClusterUnreachable")),
            (Some("1.3.9"), Some(&unusable), Err("ClusterConfigInvalid")),
            (Some("1.3.9"), Some(&agent_gone), Err("AgentNotConnected")),
            (Some("1.3.9"), Some(&edited), Err("EnvironmentNotReady")),
            (Some("1.3.9"), Some(&moved), Err("EnvironmentNotReady")),
            (Some("1.3.10"), Some(&line13), Ok("1.3.10")),
            (Some("1.4.0-rc.1"), Some(&line13), Err("OutsideVersionLine")),
            (Some("1.3.9"), Some(&bad_line), Err("InvalidVersionLine")),
            (Some("2.0.0"), Some(&env), Err("AppVersionNotFound")),
            (Some("1.5.0"), Some(&env), Err("AppVersionModified")),
            (Some("1.6.0"), Some(&env), Err("AppVersionNotPublished")),
            (Some("1.7.0"), Some(&env), Err("AmbiguousAppVersion")),
        ];
        for (v, env, want) in cases {
            let r = pinned(v);
            let got = select(&r, env, &all, None);
            match (got, want) {
                (Ok(t), Ok(w)) => assert_eq!(t.version.to_string(), w, "{v:?}"),
                (Err(b), Err(w)) => assert_eq!(b.reason, w, "{v:?}: {}", b.message),
                (got, want) => panic!("{v:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn tracking_table() {
        let avs = vec![
            published("1.3.9"),
            published("1.3.10"),
            published("1.4.0-rc.1"),
            published("1.4.0-rc.2"),
            published("1.4.1"),
        ];
        let env = ready_env(None);
        let line13 = ready_env(Some("~1.3"));
        let cases: Vec<(Release, &Environment, Result<&str, &str>)> = vec![
            (tracked("~1.3", &[], None), &env, Ok("1.3.10")),
            (tracked("*", &[], None), &env, Ok("1.4.1")),
            // Pre-releases only when the range names one (semver rules).
            (tracked(">=1.4.0-0, <1.4.1", &[], None), &env, Ok("1.4.0-rc.2")),
            (tracked(">=1.4.0, <1.4.1", &[], None), &env, Err("NoMatchingVersion")),
            // The environment's line bounds the range.
            (tracked("*", &[], None), &line13, Ok("1.3.10")),
            // A failed version is skipped (held), the next one runs.
            (tracked("~1.3", &["1.3.10"], Some("1.3.9")), &env, Ok("1.3.9 (held: VersionFailed)")),
            // …until a newer one appears: failures of older versions do not matter.
            (tracked("~1.3", &["1.3.9"], Some("1.3.10")), &env, Ok("1.3.10")),
            (tracked("~1.3", &["1.3.9", "1.3.10"], None), &env, Err("VersionFailed")),
            (tracked("not a range", &[], None), &env, Err("InvalidTrackRange")),
            (tracked("~2", &[], None), &env, Err("NoMatchingVersion")),
        ];
        for (i, (r, env, want)) in cases.iter().enumerate() {
            assert_eq!(outcome(select(r, Some(env), &avs, None)), want.map(str::to_string), "case {i}");
        }
    }

    fn vetoed(version: &str) -> AppVersion {
        let mut av = published(version);
        av.metadata.annotations = Some(
            [(crate::api::VETO_ANNOTATION, "FX rounding"), (crate::api::VETOED_BY_ANNOTATION, "maria")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        av
    }

    /// `release` running `current`, which ran after each of `ran` (newest first) healthily.
    fn running(mut r: Release, current: &str, ran: &[&str]) -> Release {
        let status = r.status.get_or_insert_with(Default::default);
        status.current_version = Some(current.into());
        status.history = std::iter::once(current)
            .chain(ran.iter().copied())
            .map(|v| HistoryEntry {
                version: v.into(),
                started_at: Time(now()),
                finished_at: Some(Time(now())),
                result: RolloutResult::Succeeded,
                message: None,
                rollback_of: None,
                approvers: Vec::new(),
                held: None,
                requester: Default::default(),
                generation: None,
            })
            .collect();
        r
    }

    #[test]
    fn a_vetoed_version_goes_nowhere_and_where_it_runs_is_rolled_back_with_automatic_rollback() {
        let avs = vec![published("1.3.9"), published("1.3.10"), vetoed("1.3.11")];
        let env = ready_env(None);
        let mut pinned_auto = pinned(Some("1.3.11"));
        pinned_auto.spec.rollback = Some(RollbackSpec { auto: Some(true), to: None });
        let mut tracked_manual = tracked("~1.3", &[], None);
        tracked_manual.spec.rollback = Some(RollbackSpec { auto: Some(false), to: None });
        let mut back_to_vetoed = running(tracked("~1.3", &[], None), "1.3.10", &["1.3.11"]);
        back_to_vetoed.spec.rollback = Some(RollbackSpec { auto: None, to: Some("1.3.11".into()) });
        let cases: Vec<(Release, Result<&str, &str>, bool)> = vec![
            // Tracking skips it; nothing ran yet, so the newest other version goes.
            (tracked("~1.3", &[], None), Ok("1.3.10 (held: VersionVetoed)"), false),
            // Pinned to it: nothing runs yet, so nothing can; once something runs, it stays.
            (pinned(Some("1.3.11")), Err("VersionVetoed"), false),
            (running(pinned(Some("1.3.11")), "1.3.10", &[]), Ok("1.3.10 (held: VersionVetoed)"), false),
            // Where it runs: rolled back (an explicit rollback: no gates) to the newest version that
            // ran healthily here and may go…
            (
                running(tracked("~1.3", &[], None), "1.3.11", &["1.3.10", "1.3.9"]),
                Ok("1.3.10 (held: VersionVetoed)"),
                true,
            ),
            (
                running(tracked("~1.3", &["1.3.10"], None), "1.3.11", &["1.3.10", "1.3.9"]),
                Ok("1.3.9 (held: VersionVetoed)"),
                true,
            ),
            (running(pinned_auto, "1.3.11", &["1.3.9"]), Ok("1.3.9 (held: VersionVetoed)"), true),
            // …not without automatic rollback (a pin's default), and not when nothing else ran here.
            (
                running(pinned(Some("1.3.11")), "1.3.11", &["1.3.9"]),
                Ok("1.3.11 (held: VersionVetoed)"),
                false,
            ),
            (running(tracked_manual, "1.3.11", &["1.3.9"]), Ok("1.3.11 (held: VersionVetoed)"), false),
            (running(tracked("~1.3", &[], None), "1.3.11", &[]), Ok("1.3.11 (held: VersionVetoed)"), false),
            // Nor may a manual rollback go to it.
            (back_to_vetoed, Err("VersionVetoed"), false),
        ];
        for (i, (r, want, rollback)) in cases.iter().enumerate() {
            let got = select(r, Some(&env), &avs, None);
            let rollback_of = got.as_ref().ok().and_then(|t| t.rollback_of.clone());
            assert_eq!(outcome(got), want.map(str::to_string), "case {i}");
            assert_eq!(rollback_of.as_deref(), rollback.then_some("1.3.11"), "case {i}");
        }
    }

    #[test]
    fn a_vetoed_version_is_not_promoted() {
        let avs = vec![published("1.3.9"), vetoed("1.3.11")];
        let env = ready_env(None);
        let mut upstream = running(pinned(Some("1.3.11")), "1.3.11", &[]);
        upstream.status.as_mut().unwrap().phase = Some(Phase::Healthy);
        let mut r = running(pinned(None), "1.3.9", &[]);
        r.spec.promote_from = Some(PromoteFrom { environment: "dev".into(), soak: None });
        assert_eq!(
            outcome(select(&r, Some(&env), &avs, Some(&upstream))),
            Ok("1.3.9 (held: VersionVetoed)".into())
        );
    }

    #[test]
    fn sources_are_exclusive() {
        let avs = vec![published("1.3.9")];
        let env = ready_env(None);
        let mut both = pinned(Some("1.3.9"));
        both.spec.track = Some("~1.3".into());
        assert_eq!(outcome(select(&both, Some(&env), &avs, None)), Err("ConflictingVersionSources"));
        let none = pinned(None);
        assert_eq!(outcome(select(&none, Some(&env), &avs, None)), Err("NoVersion"));
    }

    #[test]
    fn a_duplicate_goes_nowhere_and_says_with_whom() {
        let avs = [published("1.3.9"), published("1.3.10")];
        let env = ready_env(None);
        let r = pinned(Some("1.3.10"));
        let twin = |twins: Vec<String>| {
            select_target(&Inputs {
                release: &r,
                env: Some(&env),
                app_versions: avs.iter().collect(),
                upstream: vec![],
                twins,
                product: Default::default(),
                approvals: vec![],
                peers: vec![],
                now: now(),
            })
        };
        let blocked = twin(vec!["a-payments-prod".into()]).unwrap_err();
        assert_eq!((blocked.reason, blocked.phase), (Reason::DuplicateRelease, Phase::Pending));
        let me = r.metadata.name.clone().unwrap();
        assert!(blocked.message.contains(&format!("a-payments-prod, {me}")), "{}", blocked.message);
        assert_eq!(outcome(twin(vec![])), Ok("1.3.10".to_string()));

        // Two upstreams: promotion holds, whichever the caches listed first.
        let soaked = upstream(Phase::Healthy, "1.3.10", 3600);
        let mut other = upstream(Phase::Healthy, "1.3.9", 3600);
        other.metadata.name = Some("payments-dev-2".into());
        let down = promoted("0s", Some("1.3.9"), &[]);
        for ups in [vec![&soaked, &other], vec![&other, &soaked]] {
            let got = select_target(&Inputs {
                release: &down,
                env: Some(&env),
                app_versions: avs.iter().collect(),
                upstream: ups,
                twins: vec![],
                product: Default::default(),
                approvals: vec![],
                peers: vec![],
                now: now(),
            });
            assert_eq!(outcome(got), Ok("1.3.9 (held: DuplicateRelease)".to_string()));
        }
    }

    fn upstream(phase: Phase, current: &str, healthy_for_secs: i64) -> Release {
        let mut r = release();
        r.spec.environment = "dev".into();
        let finished = jiff::Timestamp::from_second(now().as_second() - healthy_for_secs).unwrap();
        r.status = Some(ReleaseStatus {
            phase: Some(phase),
            current_version: Some(current.into()),
            history: vec![HistoryEntry {
                rollback_of: None,
                version: current.into(),
                started_at: Time(finished),
                finished_at: Some(Time(finished)),
                result: RolloutResult::Succeeded,
                message: None,
                approvers: Vec::new(),
                held: None,
                requester: Default::default(),
                generation: None,
            }],
            ..Default::default()
        });
        r
    }

    fn promoted(soak: &str, current: Option<&str>, failed: &[&str]) -> Release {
        let mut r = tracked("*", failed, current);
        r.spec.track = None;
        r.spec.promote_from = Some(PromoteFrom { environment: "dev".into(), soak: Some(soak.into()) });
        r
    }

    #[test]
    fn promotion_table() {
        let avs = vec![published("1.3.9"), published("1.3.10")];
        let env = ready_env(None);
        let soaked = upstream(Phase::Healthy, "1.3.10", 3600);
        let fresh = upstream(Phase::Healthy, "1.3.10", 60);
        let sick = upstream(Phase::Degraded, "1.3.10", 3600);
        let cases: Vec<(Release, Option<&Release>, Result<&str, &str>)> = vec![
            (promoted("30m", None, &[]), Some(&soaked), Ok("1.3.10")),
            (promoted("30m", Some("1.3.9"), &[]), Some(&fresh), Ok("1.3.9 (held: Soaking)")),
            (promoted("30m", None, &[]), Some(&fresh), Err("Soaking")),
            (promoted("0s", None, &[]), Some(&fresh), Ok("1.3.10")),
            (promoted("30m", Some("1.3.10"), &[]), Some(&fresh), Ok("1.3.10")),
            (promoted("30m", Some("1.3.9"), &[]), Some(&sick), Ok("1.3.9 (held: UpstreamNotHealthy)")),
            (promoted("30m", Some("1.3.9"), &[]), None, Ok("1.3.9 (held: UpstreamNotFound)")),
            (promoted("30m", Some("1.3.9"), &["1.3.10"]), Some(&soaked), Ok("1.3.9 (held: VersionFailed)")),
            (promoted("a while", Some("1.3.9"), &[]), Some(&soaked), Err("InvalidSoak")),
        ];
        for (i, (r, up, want)) in cases.iter().enumerate() {
            assert_eq!(outcome(select(r, Some(&env), &avs, *up)), want.map(str::to_string), "case {i}");
        }
        let held = select(&cases[1].0, Some(&env), &avs, Some(&fresh)).unwrap().held.unwrap();
        assert_eq!(held.version.as_deref(), Some("1.3.10"));
        assert_eq!(held.recheck_in, Some(Duration::from_secs(29 * 60)));
    }

    #[test]
    fn rollbacks() {
        let avs = vec![published("1.3.9"), published("1.3.10")];
        let env = ready_env(None);
        // Pinned with automatic rollback: a failed pin keeps the last healthy version.
        let mut r = pinned(Some("1.3.10"));
        r.spec.rollback = Some(RollbackSpec { auto: Some(true), to: None });
        r.status = Some(ReleaseStatus {
            failed_versions: vec!["1.3.10".into()],
            current_version: Some("1.3.9".into()),
            ..Default::default()
        });
        assert_eq!(outcome(select(&r, Some(&env), &avs, None)).as_deref(), Ok("1.3.9 (held: VersionFailed)"));
        // Without it, the pin is the pin.
        r.spec.rollback = None;
        assert_eq!(outcome(select(&r, Some(&env), &avs, None)).as_deref(), Ok("1.3.10"));
        assert!(!auto_rollback(&r));
        assert!(auto_rollback(&tracked("*", &[], None)));
        // Manual rollback: only to a version that ran healthily here.
        let mut m = tracked("*", &[], Some("1.3.10"));
        m.spec.rollback = Some(RollbackSpec { auto: None, to: Some("1.3.9".into()) });
        assert_eq!(outcome(select(&m, Some(&env), &avs, None)), Err("RollbackTargetNotInHistory"));
        let t = Time(now());
        m.status.as_mut().unwrap().history.push(HistoryEntry {
            rollback_of: None,
            version: "1.3.9".into(),
            started_at: t.clone(),
            finished_at: Some(t),
            result: RolloutResult::Succeeded,
            message: None,
            approvers: Vec::new(),
            held: None,
            requester: Default::default(),
            generation: None,
        });
        assert_eq!(outcome(select(&m, Some(&env), &avs, None)).as_deref(), Ok("1.3.9"));
    }

    #[test]
    fn a_rollback_or_a_veto_gets_a_release_out_of_a_spec_that_cannot_be_read() {
        let avs = vec![published("1.3.9"), published("1.3.10"), vetoed("1.3.11")];
        let env = ready_env(None);
        let t = Time(now());
        let healthy = |version: &str| HistoryEntry {
            rollback_of: None,
            version: version.into(),
            started_at: t.clone(),
            finished_at: Some(t.clone()),
            result: RolloutResult::Succeeded,
            message: None,
            approvers: Vec::new(),
            held: None,
            requester: Default::default(),
            generation: None,
        };
        // An explicit rollback overrides a track range that does not parse.
        let mut back = tracked("not a range", &[], Some("1.3.10"));
        back.spec.rollback = Some(RollbackSpec { auto: None, to: Some("1.3.9".into()) });
        back.status.as_mut().unwrap().history.push(healthy("1.3.9"));
        assert_eq!(outcome(select(&back, Some(&env), &avs, None)).as_deref(), Ok("1.3.9"));
        // A vetoed version that runs is left, whatever is wrong with the range.
        let away = running(tracked("not a range", &[], None), "1.3.11", &["1.3.10"]);
        assert_eq!(
            outcome(select(&away, Some(&env), &avs, None)).as_deref(),
            Ok("1.3.10 (held: VersionVetoed)")
        );
        // Otherwise the spec's own error, once the Environment is there and ready.
        let broken = tracked("not a range", &[], None);
        assert_eq!(outcome(select(&broken, Some(&env), &avs, None)), Err("InvalidTrackRange"));
        let mut not_ready = ready_env(None);
        not_ready.status = None;
        assert_eq!(outcome(select(&broken, Some(&not_ready), &avs, None)), Err("EnvironmentNotReady"));
        assert_eq!(outcome(select(&broken, None, &avs, None)), Err("EnvironmentNotFound"));
    }

    #[test]
    fn version_lines_hold_their_prereleases() {
        let cases = [
            ("~1.4", "1.4.0-rc.1", true),
            ("~1.4", "1.4.2", true),
            ("~1.4", "1.5.0-rc.1", false),
            ("~1.3", "1.4.0-rc.1", false),
            (">=1.4.0-0, <1.5.0", "1.4.0-rc.1", true),
            (">=1.4.0, <1.5.0", "1.4.0-rc.1", false),
            (">=1.4.0, <1.5.0", "1.4.1-rc.1", true),
            ("=1.3.9", "1.3.9", true),
            ("=1.3.9", "1.3.9-rc.1", false),
            ("^1.4.0", "1.4.0-rc.1", false),
            ("^1", "1.4.0-rc.1", true),
        ];
        for (line, v, want) in cases {
            let req = semver::VersionReq::parse(line).unwrap();
            assert_eq!(matches_line(&req, &semver::Version::parse(v).unwrap()), want, "{line} ∋ {v}");
        }
    }

    /// An Environment moved to another cluster or namespace runs the Release there only through
    /// its gates: during a freeze nothing goes to the new place (the old keeps running), and the
    /// same Release where it already runs is not held.
    #[test]
    fn a_move_to_another_place_passes_the_gates() {
        let avs = vec![published("1.3.9")];
        let mut frozen = ready_env(None);
        frozen.spec.freeze_windows = vec![crate::api::FreezeWindow {
            reason: Some("year end".into()),
            start: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        }];
        let agent = |name: &str| crate::api::ClusterRef {
            name: None,
            kube_config_secret_ref: None,
            agent: Some(name.into()),
        };
        let running = |cluster: Option<crate::api::ClusterRef>, ns: &str| {
            let mut r = pinned(Some("1.3.9"));
            r.status = Some(ReleaseStatus {
                current_version: Some("1.3.9".into()),
                inventory: Some(crate::api::Inventory {
                    namespace: ns.into(),
                    cluster,
                    ..Default::default()
                }),
                ..Default::default()
            });
            r
        };
        let here = frozen.spec.namespace.clone();
        let mut in_agent = frozen.clone();
        in_agent.spec.cluster = Some(agent("prod-eu"));
        in_agent.status.as_mut().unwrap().cluster = Some("prod-eu".into());
        let cases = [
            ("where it runs", running(None, &here), &frozen, Ok("1.3.9")),
            ("to another namespace", running(None, "elsewhere"), &frozen, Err("Frozen")),
            ("to another cluster", running(None, &here), &in_agent, Err("Frozen")),
            ("from another cluster", running(Some(agent("prod-eu")), &here), &frozen, Err("Frozen")),
            ("where it runs, in the agent's", running(Some(agent("prod-eu")), &here), &in_agent, Ok("1.3.9")),
        ];
        for (what, r, env, want) in cases {
            let got = select(&r, Some(env), &avs, None);
            if let Err(b) = &got {
                assert!(b.message.contains("nothing is deployed"), "{what}: {}", b.message);
            }
            assert_eq!(
                outcome(got).as_deref().map_err(|e| *e),
                want.map(String::from).as_deref().map_err(|e| *e),
                "{what}"
            );
        }
        let mut open = frozen.clone();
        open.spec.freeze_windows.clear();
        assert_eq!(
            outcome(select(&running(None, "elsewhere"), Some(&open), &avs, None)).as_deref(),
            Ok("1.3.9")
        );
    }
}
