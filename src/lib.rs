//! tuskfish: an application & environment pipeline operator for Kubernetes.

pub mod api;
pub mod render;
