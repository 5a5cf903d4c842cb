//! Properties of the webhook's rules: they never panic on any object, and they agree with the
//! controller, which enforces the same rules itself (a cluster may run without the webhook).

use proptest::prelude::*;

use super::rules;
use crate::api::{AppVersion, AppVersionSpec, AppVersionStatus, Approval, ApprovalSpec, Environment};
use crate::plan::proptests::{env_strategy, release_strategy, version_text};
use crate::plan::{Inputs, select_target, spec_hash};
use crate::render::tests::{app_version, release};

/// Reasons for mistakes in a Release's own spec, which the webhook refuses at apply time.
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
    /// matches the webhook's: what the webhook admits is never refused for a spec mistake, and
    /// what it refuses never rolls out.
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
            upstream: None,
            approvals: vec![],
            peers: vec![],
            now: at(now),
        });
        let own_problems = rules::release(&r, None);
        match (&verdict, own_problems.is_empty()) {
            (Err(b), true) => prop_assert!(!SPEC_MISTAKES.contains(&b.reason), "admitted, then {}: {}", b.reason, b.message),
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
            upstream: None,
            approvals: vec![],
            peers: vec![],
            now: at(reconciled_at),
        });
        if problems.is_empty()
            && let Err(b) = &verdict
        {
            prop_assert!(!ENVIRONMENT_MISTAKES.contains(&b.reason), "admitted, then {}: {}", b.reason, b.message);
        }
        let line_ok = env.spec.version_line.as_deref().is_none_or(|l| semver::VersionReq::parse(l).is_ok());
        if !line_ok {
            prop_assert!(problems.iter().any(|p| p.starts_with("spec.versionLine")), "{problems:?}");
        }
    }

    #[test]
    fn rules_never_panic_on_app_versions_and_approvals(
        version in version_text(),
        other in version_text(),
        release_name in any::<String>(),
        published_before in any::<bool>(),
    ) {
        let new = AppVersion::new("x", AppVersionSpec { app: "a".into(), version: version.clone(), ..Default::default() });
        let mut old = AppVersion::new("x", AppVersionSpec { app: "a".into(), version: other.clone(), ..Default::default() });
        if published_before {
            old.status = Some(AppVersionStatus { spec_hash: Some(spec_hash(&old.spec)), ..Default::default() });
        }
        let problems = rules::app_version(&new, Some(&old));
        let valid = semver::Version::parse(version.trim()).is_ok();
        prop_assert_eq!(problems.iter().any(|p| p.contains("not a semantic version")), !valid);
        // A published spec may not change; an unchanged one (a status update) always passes.
        prop_assert_eq!(problems.iter().any(|p| p.contains("immutable")), published_before && version != other);
        let a = Approval::new("a", ApprovalSpec { release: release_name, version, ..Default::default() });
        prop_assert_eq!(rules::approval(&a).is_empty(), valid);
    }
}
