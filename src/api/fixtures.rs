//! Objects for unit tests across modules (test builds only).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    AppVersion, AppVersionSpec, Change, Condition, Environment, EnvironmentSpec, Release, ReleaseSpec,
    ReleaseStatus, Tier,
};

/// A condition last changed at 2026-11-25T10:00:00Z.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time("2026-11-25T10:00:00Z".parse().unwrap()),
        observed_generation: None,
    }
}

/// Environment `name` of pipeline namespace `finance`, targeting `finance-<name>`, no gates.
pub fn environment(name: &str, tier: Tier) -> Environment {
    let mut e = Environment::new(
        name,
        EnvironmentSpec {
            namespace: format!("finance-{name}"),
            tier,
            version_line: None,
            variables: Default::default(),
            approval: None,
            approval_policy: None,
            freeze_windows: vec![],
            allow_windows: vec![],
            verify: vec![],
            helm_values: None,
            service_account_name: None,
            cluster: None,
        },
    );
    e.metadata.namespace = Some("finance".into());
    e
}

/// AppVersion `name` of `app` at `version` listing these change ids.
pub fn app_version_with_changes(name: &str, app: &str, version: &str, ids: &[&str]) -> AppVersion {
    AppVersion::new(
        name,
        AppVersionSpec {
            app: app.into(),
            version: version.into(),
            changes: ids.iter().map(|c| Change { id: c.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        },
    )
}

/// Release `name` of `app` in `environment`, running `version`.
pub fn release_running(name: &str, app: &str, environment: &str, version: &str) -> Release {
    let mut r = Release::new(
        name,
        ReleaseSpec { app: app.into(), environment: environment.into(), ..Default::default() },
    );
    r.status = Some(ReleaseStatus { current_version: Some(version.into()), ..Default::default() });
    r
}
