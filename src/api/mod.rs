//! The CRD types of `tuskfish.dev/v1alpha1`. `crds/` is generated from these (`make generate`).

mod appversion;
mod condition;
mod environment;
mod release;

pub use appversion::*;
pub use condition::*;
pub use environment::*;
pub use release::*;

use kube::CustomResourceExt;

/// API group of every tuskfish resource.
pub const GROUP: &str = "tuskfish.dev";
/// The one field manager used for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tuskfish";
/// Finalizer that lets a Release remove what it applied before it goes away.
pub const RELEASE_FINALIZER: &str = "tuskfish.dev/release-cleanup";

/// Label keys put on every object tuskfish applies.
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const VERSION: &str = "app.kubernetes.io/version";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "tuskfish";
    pub const RELEASE: &str = "tuskfish.dev/release";
    pub const RELEASE_NAMESPACE: &str = "tuskfish.dev/release-namespace";
    pub const ENVIRONMENT: &str = "tuskfish.dev/environment";
    /// On a Namespace: `<namespace>/<name>` of the Environment that owns it (an annotation, since `/` is
    /// not allowed in label values).
    pub const NAMESPACE_OWNER_ANNOTATION: &str = "tuskfish.dev/owner";
}

/// All CRDs, in the order `kubectl apply` should see them.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    vec![AppVersion::crd(), Environment::crd(), Release::crd()]
}
