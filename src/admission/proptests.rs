//! Properties of the webhook's rules: they never panic on any object, and together with the CRDs'
//! own rules they agree with the controller, which enforces the same rules itself (a cluster may
//! run without the webhook, or with an older CRD).

use proptest::prelude::*;

use super::rules;
use crate::api::rules::{DURATION, SEMVER, semver_range};
use crate::api::{AppVersion, AppVersionStatus, Environment, Release};
use crate::plan::proptests::{env_strategy, release_strategy};
use crate::plan::{Inputs, select_target, spec_hash};
use crate::render::tests::{app_version, release};

/// What the CRD's rules (CEL in the schema) admit of a Release, with the same patterns: RE2 and
/// the regex crate read them alike.
fn schema_admits(r: &Release) -> bool {
    let is = |pattern: &str, text: &str| regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text));
    let s = &r.spec;
    let sources = [s.version.is_some(), s.track.is_some(), s.promote_from.is_some()];
    sources.iter().filter(|set| **set).count() == 1
        && s.version.as_deref().is_none_or(|v| is(SEMVER, v))
        && s.track.as_deref().is_none_or(|t| is(&semver_range(), t))
        && s.promote_from.as_ref().and_then(|p| p.soak.as_deref()).is_none_or(|d| is(DURATION, d))
        && s.rollback.as_ref().and_then(|r| r.to.as_deref()).is_none_or(|v| is(SEMVER, v))
        && s.depends_on
            .iter()
            .all(|d| d.app != s.app && d.version.as_deref().is_none_or(|v| is(&semver_range(), v)))
}

/// Reasons for mistakes in a Release's own spec, which the API server refuses at apply time.
const SPEC_MISTAKES: &[&str] = &[
    "NoVersion",
    "ConflictingVersionSources",
    "InvalidVersion",
    "InvalidTrackRange",
    "InvalidSoak",
    "InvalidDependency",
    "DependencyCycle",
];

/// Reasons for mistakes in an Environment's spec.
const ENVIRONMENT_MISTAKES: &[&str] = &["InvalidFreezeWindow", "InvalidVersionLine"];

fn published(version: &str) -> AppVersion {
    let mut av = app_version(Some(Default::default()), vec![]);
    av.metadata.name = Some(format!("payments-{version}"));
    av.spec.version = version.into();
    av.status = Some(AppVersionStatus { spec_hash: Some(spec_hash(&av.spec)), ..Default::default() });
    av
}

fn ready(mut env: Environment) -> Environment {
    let mut ready_env = crate::render::tests::environment(&[]);
    ready_env.status = Some(crate::api::EnvironmentStatus {
        conditions: vec![crate::api::Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "NamespaceOwned".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }],
        namespace: Some(ready_env.spec.namespace.clone()),
        cluster: Some(crate::api::IN_CLUSTER.into()),
        ..Default::default()
    });
    env.status = ready_env.status;
    env
}

fn at(offset: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + offset).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Without peers and with nothing run yet, the controller's verdict on a Release's own spec
    /// matches the API server's (CRD rules and webhook): what both admit is never refused for a
    /// spec mistake, and what the webhook refuses never rolls out.
    #[test]
    fn the_controller_agrees_with_the_webhook_on_releases(
        r in release_strategy(),
        strict in proptest::option::of(any::<bool>()),
        now in -100_000i64..100_000,
    ) {
        let mut r = r;
        r.status = None;
        let mut env = ready(crate::render::tests::environment(&[]));
        env.spec.freeze_windows.clear();
        let avs = [published("1.3.9"), published("1.3.10"), published("1.4.0-rc.1")];
        let problems = rules::release(&r, strict);
        prop_assert!(problems.iter().all(|p| !p.is_empty()));
        let verdict = select_target(&Inputs {
            release: &r,
            env: Some(&env),
            app_versions: avs.iter().collect(),
            upstream: vec![],
            twins: vec![], product: Default::default(),
            approvals: vec![],
            peers: vec![],
            now: at(now),
        });
        let own_problems = rules::release(&r, None);
        match (&verdict, own_problems.is_empty()) {
            (Err(b), true) if schema_admits(&r) => {
                prop_assert!(!SPEC_MISTAKES.contains(&b.reason.as_str()), "admitted, then {}: {}", b.reason, b.message)
            }
            (Ok(t), false) => prop_assert!(false, "refused ({own_problems:?}) but {} rolls out", t.version),
            _ => {}
        }
        if strict == Some(false) {
            prop_assert!(problems.iter().any(|p| p.contains("unknown environment")));
        }
    }

    /// An Environment the webhook admits never makes a Release fail for its windows or its line,
    /// at any later time.
    #[test]
    fn the_controller_agrees_with_the_webhook_on_environments(
        env in env_strategy(),
        admitted_at in -1_000_000i64..1_000_000,
        reconciled_at in -1_000_000i64..1_000_000,
    ) {
        let env = ready(env);
        let problems = rules::environment(&env, at(admitted_at));
        let avs = [published("1.3.9")];
        let r = release();
        let verdict = select_target(&Inputs {
            release: &r,
            env: Some(&env),
            app_versions: avs.iter().collect(),
            upstream: vec![],
            twins: vec![], product: Default::default(),
            approvals: vec![],
            peers: vec![],
            now: at(reconciled_at),
        });
        if problems.is_empty()
            && let Err(b) = &verdict
        {
            prop_assert!(!ENVIRONMENT_MISTAKES.contains(&b.reason.as_str()), "admitted, then {}: {}", b.reason, b.message);
        }
        let line_ok = env.spec.version_line.as_deref().is_none_or(|l| semver::VersionReq::parse(l).is_ok());
        if !line_ok {
            prop_assert!(problems.iter().any(|p| p.starts_with("spec.versionLine")), "{problems:?}");
        }
    }
}
