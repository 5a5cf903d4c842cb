//! Which other Releases must decide again when one Release changes.
//!
//! A Release's decision reads three things of other Releases: the upstream's version and health
//! (`promoteFrom`), the health of the apps it depends on in its Environment (`dependsOn`, cycles),
//! and what runs on older version lines of its app (forward ports). Most watch events of a Release
//! change none of that (a finalizer, a progress message, its own inventory), so waking every
//! Release of the app on each of them only burns reconciles; this says precisely who is affected.

use jiff::Timestamp;

use crate::api::{Environment, EnvironmentStatus, Phase, Release, RolloutResult};

/// What other Releases read of a Release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFacts {
    pub app: String,
    pub environment: String,
    /// Apps named in `dependsOn` (cycle detection reads the whole graph of an Environment).
    pub depends_on: Vec<String>,
    pub phase: Option<Phase>,
    pub current: Option<String>,
    pub desired: Option<String>,
    /// When the current version's successful rollout finished (promotion soaks from there).
    pub healthy_since: Option<Timestamp>,
}

impl PeerFacts {
    pub fn of(r: &Release) -> Self {
        let status = r.status.as_ref();
        let current = status.and_then(|s| s.current_version.clone());
        let healthy_since = status.and_then(|s| {
            let v = current.as_deref()?;
            s.history
                .iter()
                .find(|h| h.version == v && h.result == RolloutResult::Succeeded)
                .and_then(|h| h.finished_at.as_ref())
                .map(|t| t.0)
        });
        Self {
            app: r.spec.app.clone(),
            environment: r.spec.environment.clone(),
            depends_on: r.spec.depends_on.iter().map(|d| d.app.clone()).collect(),
            phase: status.and_then(|s| s.phase),
            current,
            desired: status.and_then(|s| s.desired_version.clone()),
            healthy_since,
        }
    }
}

/// Whether `f` reads differently before and after (absent on one side counts as different).
fn differs<T: PartialEq>(
    before: Option<&PeerFacts>,
    after: Option<&PeerFacts>,
    f: impl Fn(&PeerFacts) -> T,
) -> bool {
    before.map(&f) != after.map(&f)
}

/// The `(major, minor)` line of a version string, if it parses.
fn line(v: Option<&str>) -> Option<(u64, u64)> {
    let v = semver::Version::parse(v?.trim()).ok()?;
    Some((v.major, v.minor))
}

/// Whether `other` (another Release in the same namespace) must decide again now that one Release's
/// facts went from `before` to `after` (`None`: it did not exist / no longer exists).
pub fn must_look(before: Option<&PeerFacts>, after: Option<&PeerFacts>, other: &Release) -> bool {
    if before == after {
        return false;
    }
    // Appeared, disappeared, or now another app or Environment: everything it is read for moved.
    let moved = differs(before, after, |f| (f.app.clone(), f.environment.clone()));
    let sides = || before.into_iter().chain(after);
    let (app, env) = (&other.spec.app, &other.spec.environment);
    let upstream_of_other = sides().any(|s| {
        &s.app == app && other.spec.promote_from.as_ref().is_some_and(|p| p.environment == s.environment)
    });
    // Duplicates: another Release of the same app in the same Environment came, went or moved.
    if moved && sides().any(|s| &s.app == app && &s.environment == env) {
        return true;
    }
    let promotion = |f: &PeerFacts| (f.phase, f.current.clone(), f.desired.clone(), f.healthy_since);
    if upstream_of_other && (moved || differs(before, after, promotion)) {
        return true;
    }
    // Dependencies: `other` waits for the health of the apps it names; and a change to the graph
    // (an edge, or a member appearing, leaving or renamed) can open or close a cycle anywhere in
    // the Environment, which is reported on every member — and every member depends on something.
    let in_env = |s: &PeerFacts| &s.environment == env;
    let depends_on_it = sides().any(|s| in_env(s) && other.spec.depends_on.iter().any(|d| d.app == s.app));
    let health = |f: &PeerFacts| (f.phase, f.current.clone());
    if depends_on_it && (moved || differs(before, after, health)) {
        return true;
    }
    let graph_changed = differs(before, after, |f| f.depends_on.clone())
        || (moved && sides().any(|s| !s.depends_on.is_empty()));
    if graph_changed && !other.spec.depends_on.is_empty() && sides().any(in_env) {
        return true;
    }
    // Forward ports: what runs on a line older than `other`'s counts against `other`.
    let other_line = line(other.status.as_ref().and_then(|s| s.current_version.as_deref()));
    let older_than_other = |s: &PeerFacts| {
        line(s.current.as_deref()).zip(other_line).is_some_and(|(theirs, mine)| theirs < mine)
    };
    sides().any(|s| &s.app == app && older_than_other(s))
        && (moved || differs(before, after, |f| f.current.clone()))
}

/// Whether the Release's Environment must count again (it reports how many Releases it has and how
/// many are healthy).
pub fn environment_must_look(before: Option<&PeerFacts>, after: Option<&PeerFacts>) -> bool {
    differs(before, after, |f| (f.environment.clone(), f.phase == Some(Phase::Healthy)))
}

/// What Releases read of an Environment: all of it but the counts it keeps of them, which move with
/// every rollout in it and decide nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentFacts {
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
    status: EnvironmentStatus,
}

impl EnvironmentFacts {
    pub fn of(env: &Environment) -> Self {
        let status = env.status.clone().unwrap_or_default();
        Self {
            uid: env.metadata.uid.clone(),
            generation: env.metadata.generation,
            deleting: env.metadata.deletion_timestamp.is_some(),
            status: EnvironmentStatus { releases: 0, healthy_releases: 0, ..status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Dependency, PromoteFrom, ReleaseSpec, ReleaseStatus};

    fn facts(app: &str, env: &str, phase: Option<Phase>, current: Option<&str>) -> PeerFacts {
        PeerFacts {
            app: app.into(),
            environment: env.into(),
            depends_on: Vec::new(),
            phase,
            current: current.map(String::from),
            desired: current.map(String::from),
            healthy_since: None,
        }
    }

    fn release(app: &str, env: &str, current: Option<&str>) -> Release {
        let mut r = Release::new(
            &format!("{app}-{env}"),
            ReleaseSpec { app: app.into(), environment: env.into(), ..Default::default() },
        );
        r.status = Some(ReleaseStatus { current_version: current.map(String::from), ..Default::default() });
        r
    }

    fn promoting(app: &str, env: &str, from: &str) -> Release {
        let mut r = release(app, env, None);
        r.spec.promote_from = Some(PromoteFrom { environment: from.into(), soak: None });
        r
    }

    fn depending(app: &str, env: &str, on: &str) -> Release {
        let mut r = release(app, env, Some("1.0.0"));
        r.spec.depends_on = vec![Dependency { app: on.into(), version: None }];
        r
    }

    /// why, facts before, facts after, another Release, whether it must look again
    type Case<'a> = (&'a str, Option<&'a PeerFacts>, Option<&'a PeerFacts>, Release, bool);

    #[test]
    fn who_looks_again() {
        use Phase::*;
        let progressing = facts("pay", "dev", Some(Progressing), Some("1.3.9"));
        let healthy = facts("pay", "dev", Some(Healthy), Some("1.3.9"));
        let upgraded = facts("pay", "dev", Some(Healthy), Some("1.3.10"));
        let mut soaked = healthy.clone();
        soaked.healthy_since = Some(Timestamp::UNIX_EPOCH);
        let mut wants_db = healthy.clone();
        wants_db.depends_on = vec!["db".into()];
        let old_line = facts("pay", "dev", Some(Healthy), Some("1.3.10"));
        let test_promotes = promoting("pay", "test", "dev");
        let cases = [
            ("nothing changed", Some(&healthy), Some(&healthy), test_promotes.clone(), false),
            (
                "promotion: upstream became healthy",
                Some(&progressing),
                Some(&healthy),
                test_promotes.clone(),
                true,
            ),
            ("promotion: upstream soak clock", Some(&healthy), Some(&soaked), test_promotes.clone(), true),
            ("promotion: upstream appeared", None, Some(&progressing), test_promotes.clone(), true),
            ("duplicate: a twin appeared", None, Some(&progressing), release("pay", "dev", None), true),
            ("duplicate: a twin left", Some(&healthy), None, release("pay", "dev", Some("1.3.9")), true),
            (
                "duplicate: a twin's progress",
                Some(&progressing),
                Some(&healthy),
                release("pay", "dev", None),
                false,
            ),
            ("promotion: upstream deleted", Some(&healthy), None, test_promotes.clone(), true),
            (
                "promotion: another upstream",
                Some(&progressing),
                Some(&healthy),
                promoting("pay", "test", "qa"),
                false,
            ),
            (
                "promotion: another app",
                Some(&progressing),
                Some(&healthy),
                promoting("web", "test", "dev"),
                false,
            ),
            (
                "dependsOn: dependency became healthy",
                Some(&progressing),
                Some(&healthy),
                depending("web", "dev", "pay"),
                true,
            ),
            (
                "dependsOn: other environment",
                Some(&progressing),
                Some(&healthy),
                depending("web", "prod", "pay"),
                false,
            ),
            (
                "dependsOn: unrelated peer",
                Some(&progressing),
                Some(&healthy),
                release("web", "dev", Some("1.0.0")),
                false,
            ),
            (
                "dependsOn: a new edge closes a cycle",
                Some(&healthy),
                Some(&wants_db),
                depending("db", "dev", "pay"),
                true,
            ),
            (
                "dependsOn: a new edge closes a cycle through others",
                Some(&healthy),
                Some(&wants_db),
                depending("ledger", "dev", "cache"),
                true,
            ),
            (
                "dependsOn: no cycle can pass one that depends on nothing",
                Some(&healthy),
                Some(&wants_db),
                release("db", "dev", None),
                false,
            ),
            (
                "forward port: newer line learns of an upgrade",
                Some(&healthy),
                Some(&upgraded),
                release("pay", "prod", Some("1.4.0")),
                true,
            ),
            (
                "forward port: same line",
                Some(&healthy),
                Some(&upgraded),
                release("pay", "prod", Some("1.3.9")),
                false,
            ),
            (
                "forward port: older line",
                Some(&healthy),
                Some(&upgraded),
                release("pay", "prod", Some("1.2.0")),
                false,
            ),
            (
                "forward port: health alone ships nothing",
                Some(&progressing),
                Some(&healthy),
                release("pay", "prod", Some("1.4.0")),
                false,
            ),
            (
                "forward port: a newly shipped old line",
                None,
                Some(&old_line),
                release("pay", "prod", Some("1.4.0")),
                true,
            ),
        ];
        let cases: [Case<'_>; 21] = cases;
        for (why, before, after, other, want) in cases {
            assert_eq!(must_look(before, after, &other), want, "{why}");
        }
    }

    #[test]
    fn releases_ignore_an_environments_counts() {
        let mut env = crate::api::fixtures::environment("dev", crate::api::Tier::Dev);
        env.metadata.generation = Some(1);
        env.status = Some(EnvironmentStatus { namespace: Some("pay-dev".into()), ..Default::default() });
        let facts = EnvironmentFacts::of(&env);
        let mut counted = env.clone();
        counted.status.as_mut().unwrap().releases = 7;
        counted.status.as_mut().unwrap().healthy_releases = 3;
        assert_eq!(EnvironmentFacts::of(&counted), facts, "counts only");
        let mut edited = env.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(EnvironmentFacts::of(&edited), facts, "spec edited");
        let mut moved = env.clone();
        moved.status.as_mut().unwrap().namespace = None;
        assert_ne!(EnvironmentFacts::of(&moved), facts, "namespace lost");
        let mut recreated = env.clone();
        recreated.metadata.uid = Some("other".into());
        assert_ne!(EnvironmentFacts::of(&recreated), facts, "deleted and created again");
    }

    #[test]
    fn environment_counts() {
        let p = facts("pay", "dev", Some(Phase::Progressing), Some("1.0.0"));
        let h = facts("pay", "dev", Some(Phase::Healthy), Some("1.0.0"));
        let moved = facts("pay", "test", Some(Phase::Healthy), Some("1.0.0"));
        assert!(environment_must_look(None, Some(&p)), "a new Release counts");
        assert!(environment_must_look(Some(&p), Some(&h)), "one more healthy");
        assert!(environment_must_look(Some(&h), None), "one fewer");
        assert!(environment_must_look(Some(&h), Some(&moved)), "moved to another Environment");
        assert!(!environment_must_look(
            Some(&h),
            Some(&facts("pay", "dev", Some(Phase::Healthy), Some("2.0.0")))
        ));
    }
}
