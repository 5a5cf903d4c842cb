//! What a Release's spec asks for, parsed and checked once: one of the three ways to name a
//! version (each with its own parsed value), and an explicit rollback target. The choice
//! ([`super::target`]) consumes them and never parses the spec again; a spec that cannot be read
//! is refused here, in the Release's own words.

use std::time::Duration;

use super::wait::Blocked;
use crate::api::{ProductReleaseSpec, PromoteFrom, Reason, Release, ReleaseSpec};
use crate::duration::parse_duration;

/// The fields that name a version: a Release's spec and a ProductRelease's have the same four.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asks<'a> {
    pub version: Option<&'a str>,
    pub track: Option<&'a str>,
    pub promote_from: Option<&'a PromoteFrom>,
    pub rollback_to: Option<&'a str>,
}

impl<'a> From<&'a ReleaseSpec> for Asks<'a> {
    fn from(s: &'a ReleaseSpec) -> Self {
        let rollback_to = s.rollback_to();
        Self {
            version: s.version.as_deref(),
            track: s.track.as_deref(),
            promote_from: s.promote_from.as_ref(),
            rollback_to,
        }
    }
}

impl<'a> From<&'a ProductReleaseSpec> for Asks<'a> {
    fn from(s: &'a ProductReleaseSpec) -> Self {
        let rollback_to = s.rollback.as_ref().and_then(|r| r.to.as_deref());
        Self {
            version: s.version.as_deref(),
            track: s.track.as_deref(),
            promote_from: s.promote_from.as_ref(),
            rollback_to,
        }
    }
}

/// How the Release names its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pinned,
    Tracked,
    Promoted,
}

/// The version the spec asks for, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// `spec.version`.
    Pinned(semver::Version),
    /// `spec.track`: the range, and its text as written (messages quote it).
    Tracked { range: semver::VersionReq, text: String },
    /// `spec.promoteFrom`: what the upstream Environment has run healthily for `soak`.
    Promoted { environment: String, soak: Duration },
}

impl Intent {
    /// The version the spec asks for, parsed; `Err` says what in it cannot be used and how to fix
    /// it.
    pub fn of(release: &Release) -> Result<Self, Blocked> {
        Self::asked(Asks::from(&release.spec))
    }

    /// The version `spec` asks for (a Release's or a ProductRelease's), parsed.
    pub fn asked(spec: Asks<'_>) -> Result<Self, Blocked> {
        Ok(match mode_asked(spec)? {
            Mode::Pinned => Intent::Pinned(parse_version(spec.version.unwrap_or_default(), "spec.version")?),
            Mode::Tracked => {
                let text = spec.track.unwrap_or_default().to_string();
                let range = semver::VersionReq::parse(&text).map_err(|e| {
                    Blocked::failed(
                        Reason::InvalidTrackRange,
                        format!("spec.track {text:?} is not a semver range: {e}"),
                    )
                })?;
                Intent::Tracked { range, text }
            }
            Mode::Promoted => {
                let from = spec.promote_from.cloned().unwrap_or_default();
                let soak = match from.soak.as_deref() {
                    None => Duration::ZERO,
                    Some(s) => parse_duration(s).ok_or_else(|| {
                        Blocked::failed(
                            Reason::InvalidSoak,
                            format!("spec.promoteFrom.soak {s:?} is not a duration like 30m"),
                        )
                    })?,
                };
                Intent::Promoted { environment: from.environment, soak }
            }
        })
    }
}

/// `spec.rollback.to`, parsed: it overrides the intent while set (so a spec whose intent cannot be
/// read still rolls back).
pub fn rollback_to(release: &Release) -> Result<Option<semver::Version>, Blocked> {
    rollback_asked(Asks::from(&release.spec))
}

/// `spec.rollback.to` of a Release's or a ProductRelease's spec, parsed.
pub fn rollback_asked(spec: Asks<'_>) -> Result<Option<semver::Version>, Blocked> {
    spec.rollback_to.map(|to| parse_version(to, "spec.rollback.to")).transpose()
}

/// The mode a Release's spec asks for, or why the spec is contradictory.
pub fn mode_of(release: &Release) -> Result<Mode, Blocked> {
    mode_asked(Asks::from(&release.spec))
}

/// The mode a Release's or ProductRelease's spec asks for.
pub fn mode_asked(spec: Asks<'_>) -> Result<Mode, Blocked> {
    match (spec.version.is_some(), spec.track.is_some(), spec.promote_from.is_some()) {
        (true, false, false) => Ok(Mode::Pinned),
        (false, true, false) => Ok(Mode::Tracked),
        (false, false, true) => Ok(Mode::Promoted),
        (false, false, false) => {
            Err(Blocked::failed(Reason::NoVersion, "set one of spec.version, spec.track or spec.promoteFrom"))
        }
        _ => Err(Blocked::failed(
            Reason::ConflictingVersionSources,
            "set only one of spec.version, spec.track and spec.promoteFrom",
        )),
    }
}

/// `raw` as a semantic version; `what` names where it came from.
pub(super) fn parse_version(raw: &str, what: &str) -> Result<semver::Version, Blocked> {
    semver::Version::parse(raw.trim()).map_err(|e| {
        Blocked::failed(Reason::InvalidVersion, format!("{what} {raw:?} is not a semantic version: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PromoteFrom, ReleaseSpec, RollbackSpec};

    fn release(spec: ReleaseSpec) -> Release {
        Release::new("api", spec)
    }

    #[test]
    fn each_way_of_naming_a_version_is_parsed_once_or_refused_with_its_reason() {
        let pinned = ReleaseSpec { version: Some("1.4.0".into()), ..Default::default() };
        let tracked = ReleaseSpec { track: Some("~1.4".into()), ..Default::default() };
        let promoted = ReleaseSpec {
            promote_from: Some(PromoteFrom { environment: "test".into(), soak: Some("30m".into()) }),
            ..Default::default()
        };
        let cases: Vec<(ReleaseSpec, Result<Intent, Reason>)> = vec![
            (pinned.clone(), Ok(Intent::Pinned(semver::Version::new(1, 4, 0)))),
            (ReleaseSpec { version: Some("1.4".into()), ..Default::default() }, Err(Reason::InvalidVersion)),
            (
                tracked,
                Ok(Intent::Tracked {
                    range: semver::VersionReq::parse("~1.4").unwrap(),
                    text: "~1.4".into(),
                }),
            ),
            (
                ReleaseSpec { track: Some("one-four".into()), ..Default::default() },
                Err(Reason::InvalidTrackRange),
            ),
            (promoted, Ok(Intent::Promoted { environment: "test".into(), soak: Duration::from_secs(1800) })),
            (
                ReleaseSpec {
                    promote_from: Some(PromoteFrom { environment: "test".into(), soak: Some("soon".into()) }),
                    ..Default::default()
                },
                Err(Reason::InvalidSoak),
            ),
            (ReleaseSpec::default(), Err(Reason::NoVersion)),
            (
                ReleaseSpec { track: Some("~1.4".into()), ..pinned.clone() },
                Err(Reason::ConflictingVersionSources),
            ),
        ];
        for (spec, want) in cases {
            let got = Intent::of(&release(spec.clone())).map_err(|b| b.reason);
            assert_eq!(got, want, "{spec:?}");
        }
    }

    #[test]
    fn a_rollback_target_is_parsed_apart_from_the_intent() {
        let to = |to: Option<&str>, version: &str| {
            let rollback = to.map(|t| RollbackSpec { to: Some(t.into()), ..Default::default() });
            let spec = ReleaseSpec { version: Some(version.into()), rollback, ..Default::default() };
            rollback_to(&release(spec)).map_err(|b| b.reason)
        };
        assert_eq!(to(Some(" 1.3.9 "), "1.4.1"), Ok(Some(semver::Version::new(1, 3, 9))));
        // A rollback overrides a version that cannot be read (it is what gets a broken spec out).
        assert_eq!(to(Some("1.3.9"), "not-a-version"), Ok(Some(semver::Version::new(1, 3, 9))));
        assert_eq!(to(Some("latest"), "1.4.1"), Err(Reason::InvalidVersion));
        assert_eq!(to(None, "1.4.1"), Ok(None));
    }
}
