//! A veto: a published version marked bad in the whole pipeline by a person, with a reason.
//!
//! Kept in the AppVersion's annotations, since its spec is immutable (a veto must not make a build a
//! different build) and its status is the operator's. The API server admits a veto only in the name
//! of whoever sets it (the `tuskfish-veto-identity` policy, [`super::policy`]).

use kube::ResourceExt;

use super::{AppVersion, VETO_ANNOTATION, VETOED_AT_ANNOTATION, VETOED_BY_ANNOTATION};

/// Who vetoed a version, why and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Veto {
    pub reason: String,
    /// The user the API server authenticated (unnamed only where the policy is not installed).
    pub by: Option<String>,
    pub at: Option<String>,
}

impl Veto {
    /// The veto on `av`, if any: a non-empty reason makes one.
    pub fn of(av: &AppVersion) -> Option<Self> {
        Self::in_annotations(av.annotations())
    }

    /// The veto these annotations carry (an AppVersion's, a ProductVersion's), if any.
    pub fn in_annotations(a: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        let reason = a.get(VETO_ANNOTATION).map(|r| r.trim()).filter(|r| !r.is_empty())?;
        let text = |k: &str| a.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Some(Self {
            reason: reason.to_string(),
            by: text(VETOED_BY_ANNOTATION),
            at: text(VETOED_AT_ANNOTATION),
        })
    }

    /// `vetoed by maria.keller: FX rounding` — for messages and history notes.
    pub fn describe(&self) -> String {
        format!("vetoed by {}: {}", self.by.as_deref().unwrap_or("(unnamed)"), self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn av(annotations: &[(&str, &str)]) -> AppVersion {
        let mut av = AppVersion::new("pay-1", Default::default());
        av.metadata.annotations =
            Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        av
    }

    #[test]
    fn a_veto_needs_a_reason() {
        let cases = [
            (vec![], None),
            (vec![(VETOED_BY_ANNOTATION, "maria")], None),
            (vec![(VETO_ANNOTATION, "  ")], None),
            (
                vec![(VETO_ANNOTATION, "FX rounding"), (VETOED_BY_ANNOTATION, "maria")],
                Some("vetoed by maria: FX rounding"),
            ),
            (vec![(VETO_ANNOTATION, "FX rounding")], Some("vetoed by (unnamed): FX rounding")),
        ];
        for (i, (annotations, want)) in cases.into_iter().enumerate() {
            assert_eq!(Veto::of(&av(&annotations)).map(|v| v.describe()).as_deref(), want, "case {i}");
        }
    }
}
