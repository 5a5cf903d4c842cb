//! The Pod Security level of the namespaces Environments create (the operator's `--pod-security`,
//! or a stricter one from a PipelinePolicy): what the API server's own Pod
//! Security admission lets their pods do. Without it a Release could bring a privileged
//! DaemonSet mounting the node's root (and with it every token on the node, the operator's too).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label Pod Security admission enforces.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-standards).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurity {
    /// No restriction (only for pipelines an admin trusts with the nodes).
    Privileged,
    /// No privileged containers, host namespaces, host paths or added capabilities.
    #[default]
    Baseline,
    /// Baseline, and pods run as non-root with every capability dropped.
    Restricted,
}

impl PodSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurity::Privileged => "privileged",
            PodSecurity::Baseline => "baseline",
            PodSecurity::Restricted => "restricted",
        }
    }

    /// Pure: whether a namespace enforcing `enforced` (its label; `None`: none) is held to at least
    /// this level. A label Pod Security admission would not read counts as none.
    pub fn admits(self, enforced: Option<&str>) -> bool {
        let level = match enforced {
            Some("privileged") => PodSecurity::Privileged,
            Some("baseline") => PodSecurity::Baseline,
            Some("restricted") => PodSecurity::Restricted,
            _ => return self == PodSecurity::Privileged,
        };
        level >= self
    }

    /// The labels a namespace created at this level gets.
    pub fn labels(self) -> BTreeMap<String, String> {
        BTreeMap::from([(ENFORCE_LABEL.to_string(), self.as_str().to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_is_its_standards_name() {
        for (level, name) in [
            (PodSecurity::Privileged, "privileged"),
            (PodSecurity::Baseline, "baseline"),
            (PodSecurity::Restricted, "restricted"),
        ] {
            assert_eq!(level.labels()[ENFORCE_LABEL], name);
        }
        assert_eq!(PodSecurity::default(), PodSecurity::Baseline);
    }

    #[test]
    fn a_namespace_must_enforce_at_least_the_operators_level() {
        use PodSecurity::*;
        let cases = [
            (Baseline, None, false),
            (Baseline, Some("privileged"), false),
            (Baseline, Some("baseline"), true),
            (Baseline, Some("restricted"), true),
            (Baseline, Some("Baseline"), false),
            (Restricted, Some("baseline"), false),
            (Restricted, Some("restricted"), true),
            (Privileged, None, true),
            (Privileged, Some("nonsense"), true),
        ];
        for (level, enforced, admits) in cases {
            assert_eq!(level.admits(enforced), admits, "{level:?} {enforced:?}");
        }
    }
}
