//! tuskfish: an application & environment pipeline operator for Kubernetes.

pub mod admission;
pub mod api;
pub mod cli;
pub mod client;
pub mod controller;
pub mod duration;
pub mod leader;
pub mod matrix;
pub mod plan;
pub mod render;
pub mod sim;
pub mod telemetry;
pub mod web;

/// The CRDs as one multi-document YAML stream (what `crds/` holds).
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in api::crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
