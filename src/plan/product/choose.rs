//! Which product version a ProductRelease asks for now: pinned, the newest in a tracked range, what
//! an upstream Environment has run healthy for the soak, or a rollback from its history. Pure.

use std::time::Duration;

use super::ProductInputs;
use crate::api::{
    ConditionType, Phase, ProductApp, ProductReleaseStatus, ProductVersion, Reason, Veto, find_condition,
    is_true,
};
use crate::plan::intent::{Asks, Intent, rollback_asked};
use crate::plan::target::{matches_line, ready};
use crate::plan::wait::{Blocked, Held};

/// A product version to run, and whether a person asked to go back to it (no gates then).
#[derive(Debug)]
pub struct Choice {
    pub version: semver::Version,
    /// The ProductVersion's uid (none for a rollback to what ran: that is its own record).
    pub uid: Option<String>,
    /// When the ProductVersion was made (an Approval older than it approved other content).
    pub created: Option<jiff::Timestamp>,
    pub apps: Vec<ProductApp>,
    pub changes: Vec<String>,
    pub explicit_rollback: bool,
}

/// Why nothing new is chosen: held (what runs keeps running) or blocked (the spec, or its inputs,
/// cannot be used).
#[derive(Debug)]
pub enum Stop {
    Held(Held),
    Blocked(Blocked),
}

impl From<Blocked> for Stop {
    fn from(b: Blocked) -> Self {
        Stop::Blocked(b)
    }
}

/// The product versions of one product.
pub struct Catalog<'a> {
    product: &'a str,
    versions: Vec<(Option<semver::Version>, &'a ProductVersion)>,
}

impl<'a> Catalog<'a> {
    pub fn new(all: &[&'a ProductVersion], product: &'a str) -> Self {
        let versions = all
            .iter()
            .filter(|v| v.spec.product == product)
            .map(|v| (semver::Version::parse(v.spec.version.trim()).ok(), *v))
            .collect();
        Self { product, versions }
    }

    fn published(&self) -> impl Iterator<Item = (&semver::Version, &'a ProductVersion)> + '_ {
        self.versions.iter().filter_map(|(v, pv)| Some((v.as_ref()?, *pv)).filter(|(_, pv)| is_published(pv)))
    }

    /// The one published ProductVersion of exactly `version`, with a precise reason when there is none.
    pub fn exact(&self, version: &semver::Version) -> Result<Choice, Blocked> {
        let at: Vec<&ProductVersion> =
            self.versions.iter().filter(|(v, _)| v.as_ref() == Some(version)).map(|(_, pv)| *pv).collect();
        let pv = match at.as_slice() {
            [] => {
                return Err(Blocked {
                    phase: Phase::Pending,
                    reason: Reason::ProductVersionNotFound,
                    message: format!("no ProductVersion of {} {version} in this namespace", self.product),
                    recheck_in: None,
                });
            }
            [one] => *one,
            many => {
                let mut names: Vec<&str> = many.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
                names.sort_unstable();
                return Err(Blocked {
                    phase: Phase::Failed,
                    reason: Reason::DuplicateVersion,
                    message: format!(
                        "several ProductVersions claim {} {version}: {}",
                        self.product,
                        names.join(", ")
                    ),
                    recheck_in: None,
                });
            }
        };
        if !is_published(pv) {
            let ready = pv.status.as_ref().and_then(|s| find_condition(&s.conditions, ConditionType::Ready));
            let (reason, why) = ready
                .map_or((Reason::AppVersionNotPublished, "not judged yet".to_string()), |c| {
                    (Reason::parse(&c.reason).unwrap_or(Reason::AppVersionNotPublished), c.message.clone())
                });
            let name = pv.metadata.name.as_deref().unwrap_or_default();
            return Err(Blocked {
                phase: Phase::Pending,
                reason,
                message: format!("ProductVersion {name} is not published: {why}"),
                recheck_in: None,
            });
        }
        Ok(choice(version.clone(), pv, false))
    }
}

fn choice(version: semver::Version, pv: &ProductVersion, explicit_rollback: bool) -> Choice {
    let changes = pv.status.as_ref().map(|s| s.changes.clone()).unwrap_or_default();
    Choice {
        version,
        uid: pv.metadata.uid.clone(),
        created: pv.metadata.creation_timestamp.as_ref().map(|t| t.0),
        apps: pv.spec.apps.clone(),
        changes,
        explicit_rollback,
    }
}

/// Published: every AppVersion it names is, for the spec it has now (which cannot change).
pub fn is_published(pv: &ProductVersion) -> bool {
    pv.status.as_ref().is_some_and(|s| {
        s.observed_generation == pv.metadata.generation && is_true(&s.conditions, ConditionType::Ready)
    })
}

/// The version the ProductRelease of `inputs` asks for now (its status `st`).
pub fn choose<'a>(inputs: &ProductInputs<'a>, st: &ProductReleaseStatus) -> Result<Choice, Stop> {
    let spec = &inputs.product.spec;
    let env = ready(inputs.env, &spec.environment)?;
    let catalog = Catalog::new(&inputs.versions, &spec.product);
    let asks = Asks::from(spec);
    // Back to exactly what ran healthy here (not to what its ProductVersion may have become).
    if let Some(to) = rollback_asked(asks)? {
        let Some(ran) = st.ran_healthy.iter().find(|r| r.version == to.to_string()) else {
            return Err(Stop::Blocked(Blocked {
                phase: Phase::Failed,
                reason: Reason::RollbackTargetNotInHistory,
                message: format!(
                    "spec.rollback.to {to} never ran healthy here; pick a version from status.ranHealthy"
                ),
                recheck_in: None,
            }));
        };
        return Ok(Choice {
            version: to,
            uid: ran.uid.clone(),
            created: None,
            apps: ran.apps.clone(),
            changes: ran.changes.clone(),
            explicit_rollback: true,
        });
    }
    let line = match env.spec.version_line.as_deref() {
        Some(l) => Some(semver::VersionReq::parse(l).map_err(|e| Blocked {
            phase: Phase::Failed,
            reason: Reason::InvalidVersionLine,
            message: format!("Environment versionLine {l:?} is not a semver range: {e}"),
            recheck_in: None,
        })?),
        None => None,
    };
    let judge = Judge { catalog: &catalog, st, line: line.as_ref(), now: inputs.now };
    match Intent::asked(asks)? {
        Intent::Pinned(v) => judge.pinned(v),
        Intent::Tracked { range, text } => judge.tracked(&range, &text),
        Intent::Promoted { environment, soak } => judge.promoted(inputs, &environment, soak),
    }
}

struct Judge<'c, 'a> {
    catalog: &'c Catalog<'a>,
    st: &'c ProductReleaseStatus,
    line: Option<&'c semver::VersionReq>,
    now: jiff::Timestamp,
}

impl Judge<'_, '_> {
    /// Whether `v` runs here: that version of that very ProductVersion (one made again under the
    /// same version since is another product version, which soaks, vetoes and failures apply to).
    fn running(&self, v: &semver::Version) -> bool {
        let uid = self
            .catalog
            .versions
            .iter()
            .find(|(x, _)| x.as_ref() == Some(v))
            .map(|(_, pv)| pv.metadata.uid.clone());
        self.st
            .admitted
            .as_ref()
            .is_some_and(|a| a.version == v.to_string() && uid.is_none_or(|u| u == a.uid))
    }

    /// Why `v` is not to be gone to (failed here, vetoed), unless it already runs.
    fn skip_why(&self, v: &semver::Version) -> Option<(Reason, String)> {
        if self.running(v) {
            return None;
        }
        if self.st.failed_versions.iter().any(|f| f == &v.to_string()) {
            return Some((Reason::VersionFailed, format!("{v} failed here")));
        }
        let pv =
            self.catalog.versions.iter().find(|(pv_v, _)| pv_v.as_ref() == Some(v)).map(|(_, pv)| *pv)?;
        let veto = pv.metadata.annotations.as_ref().and_then(Veto::in_annotations)?;
        Some((Reason::VersionVetoed, format!("{v} was {}", veto.describe())))
    }

    fn in_line(&self, v: &semver::Version) -> bool {
        self.line.is_none_or(|l| matches_line(l, v))
    }

    fn pinned(&self, v: semver::Version) -> Result<Choice, Stop> {
        if let Some((reason, why)) = self.skip_why(&v) {
            let message = format!("{why}; pin another version");
            return Err(Stop::Held(Held { version: Some(v.to_string()), reason, message, recheck_in: None }));
        }
        if !self.in_line(&v) {
            return Err(Stop::Blocked(Blocked {
                phase: Phase::Failed,
                reason: Reason::OutsideVersionLine,
                message: format!("{v} is outside the Environment's version line"),
                recheck_in: None,
            }));
        }
        Ok(self.catalog.exact(&v)?)
    }

    fn tracked(&self, range: &semver::VersionReq, text: &str) -> Result<Choice, Stop> {
        let mut candidates: Vec<(&semver::Version, &ProductVersion)> =
            self.catalog.published().filter(|(v, _)| matches_line(range, v) && self.in_line(v)).collect();
        candidates.sort_by(|a, b| b.0.cmp(a.0));
        let mut skipped = Vec::new();
        for (v, pv) in candidates {
            match self.skip_why(v) {
                None => return Ok(choice(v.clone(), pv, false)),
                Some((_, why)) => skipped.push(why),
            }
        }
        let message = if skipped.is_empty() {
            format!("no published ProductVersion of {} matches {text:?}", self.catalog.product)
        } else {
            format!("no version in {text:?} may go: {}", skipped.join("; "))
        };
        Err(Stop::Blocked(Blocked {
            phase: Phase::Pending,
            reason: Reason::NoMatchingVersion,
            message,
            recheck_in: None,
        }))
    }

    fn promoted(&self, inputs: &ProductInputs<'_>, from: &str, soak: Duration) -> Result<Choice, Stop> {
        let product = &inputs.product.spec.product;
        let wait =
            |reason, message: String| Stop::Held(Held { version: None, reason, message, recheck_in: None });
        let up = match inputs.upstream.as_slice() {
            [one] => one.status.clone().unwrap_or_default(),
            [] => {
                return Err(wait(
                    Reason::UpstreamNotFound,
                    format!("no ProductRelease of {product} in Environment {from:?}"),
                ));
            }
            many => {
                let message = format!(
                    "Environment {from:?} has {} ProductReleases of {product}; promotion waits until one is left",
                    many.len()
                );
                return Err(wait(Reason::DuplicateRelease, message));
            }
        };
        let ran_upstream =
            up.admitted.as_ref().filter(|a| Some(a.version.as_str()) == up.current_version.as_deref());
        let (Some(Phase::Healthy), Some(current), Some(since)) =
            (up.phase, up.current_version.as_deref(), up.healthy_since.as_ref())
        else {
            return Err(wait(
                Reason::UpstreamNotHealthy,
                format!("{product} does not run healthy in {from:?} yet"),
            ));
        };
        let v = semver::Version::parse(current).map_err(|e| {
            wait(
                Reason::InvalidVersion,
                format!("upstream version {current:?} is not a semantic version: {e}"),
            )
        })?;
        if !self.running(&v) {
            let held = |reason, message| {
                Stop::Held(Held { version: Some(v.to_string()), reason, message, recheck_in: None })
            };
            if let Some((reason, why)) = self.skip_why(&v) {
                return Err(held(reason, format!("{why}; waiting for a newer version upstream")));
            }
            let soaked = Duration::try_from(self.now.duration_since(since.0)).unwrap_or_default();
            if soaked < soak {
                let left = soak - soaked;
                let message =
                    format!("{v} runs healthy in {from:?}; promoting after {}s more soak", left.as_secs());
                return Err(Stop::Held(Held {
                    version: Some(v.to_string()),
                    reason: Reason::Soaking,
                    message,
                    recheck_in: Some(left.min(crate::plan::target::MAX_RECHECK)),
                }));
            }
            if !self.in_line(&v) {
                return Err(held(
                    Reason::OutsideVersionLine,
                    format!("{v} is outside the Environment's version line"),
                ));
            }
        }
        let chosen = self.catalog.exact(&v)?;
        // What soaked upstream is that ProductVersion: not one made again since under its version.
        if !self.running(&v) && ran_upstream.is_none_or(|a| a.uid != chosen.uid) {
            let message = format!(
                "ProductVersion {product} {v} is not the one that ran in {from:?} (made again since); it must run there first"
            );
            let held = Held {
                version: Some(v.to_string()),
                reason: Reason::UpstreamNotHealthy,
                message,
                recheck_in: None,
            };
            return Err(Stop::Held(held));
        }
        Ok(chosen)
    }
}
