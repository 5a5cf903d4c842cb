//! Objects for unit tests across modules (test builds only).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Condition, Environment, EnvironmentSpec, Tier};

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
            freeze_windows: vec![],
        },
    );
    e.metadata.namespace = Some("finance".into());
    e
}
