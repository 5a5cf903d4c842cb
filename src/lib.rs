//! tuskfish: an application & environment pipeline operator for Kubernetes.

pub mod admission;
pub mod api;
pub mod audit;
pub mod bounded;
pub mod cli;
pub mod client;
pub mod controller;
pub mod depth;
pub mod duration;
pub mod egress;
pub mod fields;
pub mod helm;
pub mod http;
pub mod index;
pub mod leader;
pub mod lean;
pub mod matrix;
pub mod notify;
pub mod plan;
pub mod render;
pub mod telemetry;
pub mod watch;
pub mod web;

/// Which of the API server's definitions `tuskfish crd` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Definitions {
    /// The CRDs and the identity policies (what `crds/tuskfish.dev.yaml` holds).
    All,
    /// The CRDs alone (the chart's `crds/`).
    Crds,
    /// The ValidatingAdmissionPolicies and their bindings alone (the chart's template).
    Policy,
}

/// The definitions as one multi-document YAML stream, CRDs first (a policy refers to them).
pub fn crd_yaml(which: Definitions) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    let mut doc = |yaml: String| {
        out.push_str("---\n");
        out.push_str(&yaml);
    };
    if which != Definitions::Policy {
        for crd in api::crds() {
            doc(serde_saphyr::to_string(&crd)?);
        }
    }
    if which != Definitions::Crds {
        for (policy, binding) in api::policy::identity_policies() {
            doc(serde_saphyr::to_string(&with_type(policy))?);
            doc(serde_saphyr::to_string(&with_type(binding))?);
        }
    }
    Ok(out)
}

/// k8s-openapi types serialize without apiVersion/kind unless asked; a manifest needs both.
fn with_type<K: k8s_openapi::Resource + serde::Serialize>(obj: K) -> serde_json::Value {
    let mut v = serde_json::to_value(&obj).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::API_VERSION.into());
        m.insert("kind".into(), K::KIND.into());
    }
    v
}
