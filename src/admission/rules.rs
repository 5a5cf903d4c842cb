//! What the admission webhook refuses: the rules the 1.20 schema cannot express (no CEL). Pure; the
//! controller enforces the same rules itself, so a cluster without the webhook stays safe.

use jiff::Timestamp;

use crate::api::{AppVersion, Approval, Environment, Release};
use crate::duration::parse_duration;
use crate::plan::gates::active_until;
use crate::plan::target::{mode_of, spec_hash};

fn version(field: &str, v: &str, problems: &mut Vec<String>) {
    if let Err(e) = semver::Version::parse(v.trim()) {
        problems.push(format!("{field} {v:?} is not a semantic version (like 1.4.0 or 1.4.0-rc.1): {e}"));
    }
}

fn range(field: &str, r: &str, problems: &mut Vec<String>) {
    if let Err(e) = semver::VersionReq::parse(r) {
        problems.push(format!("{field} {r:?} is not a semver range (like ~1.3 or >=1.4.0-0): {e}"));
    }
}

pub fn app_version(new: &AppVersion, old: Option<&AppVersion>) -> Vec<String> {
    let mut problems = Vec::new();
    version("spec.version", &new.spec.version, &mut problems);
    let published = old.and_then(|o| o.status.as_ref()).and_then(|s| s.spec_hash.as_deref());
    if let Some(hash) = published
        && spec_hash(&new.spec) != hash
    {
        problems.push(format!(
            "AppVersion {} is published and its spec is immutable; publish a new version instead",
            new.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    problems
}

/// `environment_exists`: `None` when strict mode is off (an unknown Environment is then reported by
/// the controller as a condition).
pub fn release(r: &Release, environment_exists: Option<bool>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(b) = mode_of(r) {
        problems.push(b.message);
    }
    let spec = &r.spec;
    if let Some(v) = &spec.version {
        version("spec.version", v, &mut problems);
    }
    if let Some(t) = &spec.track {
        range("spec.track", t, &mut problems);
    }
    if let Some(soak) = spec.promote_from.as_ref().and_then(|p| p.soak.as_deref())
        && parse_duration(soak).is_none()
    {
        problems.push(format!("spec.promoteFrom.soak {soak:?} is not a duration like 30m, 2h or 90s"));
    }
    if let Some(to) = spec.rollback.as_ref().and_then(|r| r.to.as_deref()) {
        version("spec.rollback.to", to, &mut problems);
    }
    for (i, d) in spec.depends_on.iter().enumerate() {
        if let Some(v) = &d.version {
            range(&format!("spec.dependsOn[{i}].version"), v, &mut problems);
        }
        if d.app == spec.app {
            problems.push(format!("spec.dependsOn[{i}] names the Release's own app {:?}", d.app));
        }
    }
    if environment_exists == Some(false) {
        problems.push(format!(
            "unknown environment {:?} in this namespace (strict mode: create the Environment first)",
            spec.environment
        ));
    }
    problems
}

pub fn environment(e: &Environment, now: Timestamp) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(line) = &e.spec.version_line {
        range("spec.versionLine", line, &mut problems);
    }
    for (i, w) in e.spec.freeze_windows.iter().enumerate() {
        if let Err(m) = active_until(w, now) {
            problems.push(format!("spec.freezeWindows[{i}]: {m}"));
        }
    }
    problems
}

pub fn approval(a: &Approval) -> Vec<String> {
    let mut problems = Vec::new();
    version("spec.version", &a.spec.version, &mut problems);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppVersionStatus, Dependency, FreezeWindow, PromoteFrom, ReleaseSpec};
    use crate::render::tests::{app_version as av, environment as env, release as rel};

    #[test]
    fn releases() {
        let base = rel();
        let with = |f: &dyn Fn(&mut ReleaseSpec)| {
            let mut r = base.clone();
            f(&mut r.spec);
            r
        };
        let cases: Vec<(Release, Option<bool>, &str)> = vec![
            (base.clone(), None, ""),
            (base.clone(), Some(true), ""),
            (base.clone(), Some(false), "unknown environment \"prod\""),
            (with(&|s| s.track = Some("~1.3".into())), None, "set only one of"),
            (with(&|s| s.version = None), None, "set one of"),
            (
                with(&|s| s.version = Some("1.x".into())),
                None,
                "spec.version \"1.x\" is not a semantic version",
            ),
            (
                with(&|s| {
                    s.version = None;
                    s.track = Some("approx 1".into());
                }),
                None,
                "spec.track \"approx 1\" is not a semver range",
            ),
            (
                with(&|s| {
                    s.version = None;
                    s.promote_from =
                        Some(PromoteFrom { environment: "dev".into(), soak: Some("a while".into()) });
                }),
                None,
                "soak \"a while\" is not a duration",
            ),
            (
                with(&|s| {
                    s.depends_on = vec![Dependency { app: "ledger".into(), version: Some(">>2".into()) }]
                }),
                None,
                "spec.dependsOn[0].version",
            ),
            (
                with(&|s| s.depends_on = vec![Dependency { app: "payments".into(), version: None }]),
                None,
                "own app",
            ),
        ];
        for (i, (r, env_exists, want)) in cases.iter().enumerate() {
            let problems = release(r, *env_exists).join("; ");
            if want.is_empty() {
                assert_eq!(problems, "", "case {i}");
            } else {
                assert!(problems.contains(want), "case {i}: {problems}");
            }
        }
    }

    #[test]
    fn app_versions_are_immutable_once_published() {
        let old = AppVersion {
            status: Some(AppVersionStatus {
                spec_hash: Some(spec_hash(&av(None, vec![]).spec)),
                ..Default::default()
            }),
            ..av(None, vec![])
        };
        assert!(
            app_version(&av(None, vec![]), Some(&old)).is_empty(),
            "an unchanged spec (status update) passes"
        );
        let mut edited = av(None, vec![]);
        edited.spec.changes = vec![crate::api::Change { id: "FIN-9".into(), ..Default::default() }];
        assert!(app_version(&edited, Some(&old))[0].contains("immutable"));
        assert!(app_version(&edited, None).is_empty(), "creation");
        let mut unpublished = old.clone();
        unpublished.status = None;
        assert!(app_version(&edited, Some(&unpublished)).is_empty(), "not yet published");
        let mut bad = av(None, vec![]);
        bad.spec.version = "v1".into();
        assert!(app_version(&bad, None)[0].contains("not a semantic version"));
    }

    #[test]
    fn environments_and_approvals() {
        let now: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut e = env(&[]);
        assert!(environment(&e, now).is_empty());
        e.spec.version_line = Some("1.3.x or so".into());
        e.spec.freeze_windows =
            vec![FreezeWindow { end: Some("2026-12-01T00:00:00Z".into()), ..Default::default() }];
        let problems = environment(&e, now);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].starts_with("spec.freezeWindows[0]:"));
        let mut a = Approval::new(
            "a",
            crate::api::ApprovalSpec { release: "r".into(), version: "1.0".into(), ..Default::default() },
        );
        assert_eq!(approval(&a).len(), 1);
        a.spec.version = "1.0.0".into();
        assert!(approval(&a).is_empty());
    }
}
