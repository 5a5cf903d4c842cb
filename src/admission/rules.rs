//! What the admission webhook refuses: only what the CRDs' own rules (`crate::api::rules`, CEL in
//! the schema) cannot check — a semver range the `semver` crate cannot parse although it has the
//! right shape, a freeze window's time zone, and (strict mode) a Release naming an Environment that
//! does not exist, which needs another object. Pure; the controller enforces the same rules itself,
//! so a cluster without the webhook stays safe.

use jiff::Timestamp;

use crate::api::{Environment, Release};
use crate::plan::gates::active_until;

fn range(field: &str, r: &str, problems: &mut Vec<String>) {
    if let Err(e) = semver::VersionReq::parse(r) {
        problems.push(format!("{field} {r:?} is not a semver range (like ~1.3 or >=1.4.0-0): {e}"));
    }
}

/// `environment_exists`: `None` when strict mode is off (an unknown Environment is then reported by
/// the controller as a condition).
pub fn release(r: &Release, environment_exists: Option<bool>) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = &r.spec;
    if let Some(t) = &spec.track {
        range("spec.track", t, &mut problems);
    }
    for (i, d) in spec.depends_on.iter().enumerate() {
        if let Some(v) = &d.version {
            range(&format!("spec.dependsOn[{i}].version"), v, &mut problems);
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
    for (i, w) in e.spec.allow_windows.iter().enumerate() {
        if let Err(m) = active_until(w, now) {
            problems.push(format!("spec.allowWindows[{i}]: {m}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Dependency, FreezeWindow, ReleaseSpec, WeeklyWindow};
    use crate::render::tests::{environment as env, release as rel};

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
            (
                with(&|s| {
                    s.version = None;
                    s.track = Some("~1.3.0-rc..1".into());
                }),
                None,
                "spec.track \"~1.3.0-rc..1\" is not a semver range",
            ),
            (
                with(&|s| {
                    s.depends_on = vec![Dependency { app: "ledger".into(), version: Some(">>2".into()) }]
                }),
                None,
                "spec.dependsOn[0].version",
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
    fn environments() {
        let now: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut e = env(&[]);
        assert!(environment(&e, now).is_empty());
        e.spec.version_line = Some("1.3.x or so".into());
        e.spec.freeze_windows = vec![FreezeWindow {
            weekly: Some(WeeklyWindow {
                days: vec!["Fri".into()],
                from: "16:00".into(),
                to: "18:00".into(),
                time_zone: Some("Mars/Olympus_Mons".into()),
            }),
            ..Default::default()
        }];
        let problems = environment(&e, now);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].starts_with("spec.freezeWindows[0]:") && problems[1].contains("time zone"));
    }
}
