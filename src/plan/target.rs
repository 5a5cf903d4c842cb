//! Which AppVersion a Release should run, and why it cannot when it cannot.

use sha2::{Digest, Sha256};

use crate::api::{AppVersion, AppVersionSpec, Environment, Phase, Release, is_true};

/// The AppVersion a Release should run now.
#[derive(Debug)]
pub struct Target<'a> {
    pub app_version: &'a AppVersion,
    pub version: semver::Version,
}

/// Why a Release cannot go ahead. `phase` is `Pending` when waiting on something else may fix it,
/// `Failed` when the Release or its inputs must be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub phase: Phase,
    pub reason: &'static str,
    pub message: String,
}

impl Blocked {
    fn pending(reason: &'static str, message: impl Into<String>) -> Self {
        Self { phase: Phase::Pending, reason, message: message.into() }
    }
    fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Self { phase: Phase::Failed, reason, message: message.into() }
    }
}

/// Hash of an AppVersion spec, recorded at publish time to enforce immutability.
pub fn spec_hash(spec: &AppVersionSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Picks the AppVersion for a Release from the AppVersions of the same namespace.
pub fn select_target<'a>(
    release: &Release,
    env: Option<&Environment>,
    app_versions: impl IntoIterator<Item = &'a AppVersion>,
) -> Result<Target<'a>, Blocked> {
    let spec = &release.spec;
    let Some(raw) = spec.version.as_deref() else {
        return Err(Blocked::failed("NoVersion", "spec.version is empty: set the version to deploy"));
    };
    let version = semver::Version::parse(raw.trim()).map_err(|e| {
        Blocked::failed("InvalidVersion", format!("spec.version {raw:?} is not a semantic version: {e}"))
    })?;
    let env = env.ok_or_else(|| {
        Blocked::pending(
            "EnvironmentNotFound",
            format!("Environment {:?} does not exist in this namespace", spec.environment),
        )
    })?;
    if !env.status.as_ref().is_some_and(|s| is_true(&s.conditions, "Ready")) {
        return Err(Blocked::pending(
            "EnvironmentNotReady",
            format!("Environment {:?} is not Ready (see its conditions)", spec.environment),
        ));
    }
    if let Some(line) = env.spec.version_line.as_deref() {
        let req = semver::VersionReq::parse(line).map_err(|e| {
            Blocked::failed(
                "InvalidVersionLine",
                format!("Environment versionLine {line:?} is not a semver range: {e}"),
            )
        })?;
        if !matches_line(&req, &version) {
            return Err(Blocked::failed(
                "OutsideVersionLine",
                format!(
                    "version {version} is outside Environment {:?}'s version line {line:?}",
                    spec.environment
                ),
            ));
        }
    }
    let candidates: Vec<&AppVersion> = app_versions
        .into_iter()
        .filter(|av| av.spec.app == spec.app)
        .filter(|av| semver::Version::parse(av.spec.version.trim()).is_ok_and(|v| v == version))
        .collect();
    let app_version = match candidates.as_slice() {
        [] => {
            return Err(Blocked::pending(
                "AppVersionNotFound",
                format!("no AppVersion of app {:?} with version {version} in this namespace", spec.app),
            ));
        }
        [one] => *one,
        many => {
            let mut names: Vec<_> = many.iter().filter_map(|a| a.metadata.name.as_deref()).collect();
            names.sort_unstable();
            return Err(Blocked::failed(
                "AmbiguousAppVersion",
                format!("several AppVersions claim {} {version}: {}", spec.app, names.join(", ")),
            ));
        }
    };
    let status = app_version.status.as_ref();
    match status.and_then(|s| s.spec_hash.as_deref()) {
        None => Err(Blocked::pending(
            "AppVersionNotPublished",
            format!(
                "AppVersion {} is not published yet",
                app_version.metadata.name.as_deref().unwrap_or("?")
            ),
        )),
        Some(h) if h != spec_hash(&app_version.spec) => Err(Blocked::failed(
            "AppVersionModified",
            format!(
                "AppVersion {} was changed after it was published; publish a new version instead",
                app_version.metadata.name.as_deref().unwrap_or("?")
            ),
        )),
        Some(_) => Ok(Target { app_version, version }),
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
    use crate::api::{AppVersionStatus, Condition, EnvironmentStatus};
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
            ..Default::default()
        });
        env
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

        type Case<'a> = (Option<&'a str>, Option<&'a Environment>, Result<&'a str, &'a str>);
        let cases: Vec<Case> = vec![
            (Some("1.3.9"), Some(&env), Ok("1.3.9")),
            (Some(" 1.3.10"), Some(&env), Ok("1.3.10")),
            (Some("1.4.0-rc.1"), Some(&env), Ok("1.4.0-rc.1")),
            (None, Some(&env), Err("NoVersion")),
            (Some("1.3"), Some(&env), Err("InvalidVersion")),
            (Some("1.3.9"), None, Err("EnvironmentNotFound")),
            (Some("1.3.9"), Some(&not_ready), Err("EnvironmentNotReady")),
            (Some("1.3.10"), Some(&line13), Ok("1.3.10")),
            (Some("1.4.0-rc.1"), Some(&line13), Err("OutsideVersionLine")),
            (Some("1.3.9"), Some(&bad_line), Err("InvalidVersionLine")),
            (Some("2.0.0"), Some(&env), Err("AppVersionNotFound")),
            (Some("1.5.0"), Some(&env), Err("AppVersionModified")),
            (Some("1.6.0"), Some(&env), Err("AppVersionNotPublished")),
            (Some("1.7.0"), Some(&env), Err("AmbiguousAppVersion")),
        ];
        for (v, env, want) in cases {
            let got = select_target(&pinned(v), env, &all);
            match (got, want) {
                (Ok(t), Ok(w)) => assert_eq!(t.version.to_string(), w, "{v:?}"),
                (Err(b), Err(w)) => assert_eq!(b.reason, w, "{v:?}: {}", b.message),
                (got, want) => panic!("{v:?}: got {got:?}, want {want:?}"),
            }
        }
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
}
