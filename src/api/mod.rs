//! The CRD types of `tuskfish.dev/v1alpha1`. `crds/` is generated from these (`make generate`).

mod approval;
mod appversion;
mod condition;
mod environment;
#[cfg(test)]
pub(crate) mod fixtures;
mod ledger;
mod notification;
mod pipeline_policy;
mod pod_security;
pub mod policy;
mod product;
mod reason;
mod release;
pub mod rules;
mod verify;
mod veto;

pub use approval::*;
pub use appversion::*;
pub use condition::*;
pub use environment::*;
pub use ledger::*;
pub use notification::*;
pub use pipeline_policy::*;
pub use pod_security::{ENFORCE_LABEL, PodSecurity};
pub use product::*;
pub use reason::{ConditionType, Reason};
pub use release::*;
pub use verify::*;
pub use veto::Veto;

use kube::CustomResourceExt;

/// API group of every tuskfish resource.
pub const GROUP: &str = "tuskfish.dev";
/// The one field manager used for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tuskfish";
/// Field manager of writes made by the CLI, and the reporting component of its Events (which the
/// operator's notifier reads beside its own).
pub const CLI_FIELD_MANAGER: &str = "tuskfish-cli";
/// Finalizer that lets a Release remove what it applied before it goes away.
pub const RELEASE_FINALIZER: &str = "tuskfish.dev/release-cleanup";
/// On a Release: deploy through a freeze window; the value (the reason) is recorded in history.
pub const FREEZE_OVERRIDE_ANNOTATION: &str = "tuskfish.dev/freeze-override";
/// On a Release: run its verification checks again (`tuskfish verify`); the value is the RFC 3339
/// time of the request, and a request older than the running rollout is ignored.
pub const VERIFY_REQUEST_ANNOTATION: &str = "tuskfish.dev/verify-requested-at";
/// On a Release being deleted: let it go without removing its objects from the cluster the value
/// names (gone for good); they stay there, and a Warning Event lists them.
pub const ABANDON_ANNOTATION: &str = "tuskfish.dev/abandon-objects";
/// On an AppVersion: vetoed in the whole pipeline; the value is the reason (see [`Veto`]).
pub const VETO_ANNOTATION: &str = "tuskfish.dev/veto";
/// On an AppVersion: who vetoed it; the API server admits only the requesting user's own name.
pub const VETOED_BY_ANNOTATION: &str = "tuskfish.dev/vetoed-by";
/// On an AppVersion: when it was vetoed (RFC 3339, as the CLI wrote it).
pub const VETOED_AT_ANNOTATION: &str = "tuskfish.dev/vetoed-at";

/// On a Release: the user whose request its spec is (`tuskfish deploy`, `promote`, `rollback`, the
/// web view's actions). The API server admits only the requesting user's own name, and only in the
/// write that changes the spec (see [`policy::requester_identity_policy`]); the audit trusts it only
/// while [`REQUESTED_GENERATION_ANNOTATION`] names the Release's current generation.
pub const REQUESTED_BY_ANNOTATION: &str = "tuskfish.dev/requested-by";
/// On a Release: the generation the spec change of [`REQUESTED_BY_ANNOTATION`]'s request made. A
/// later change by anyone else makes a new generation, so an old claim never vouches for it.
pub const REQUESTED_GENERATION_ANNOTATION: &str = "tuskfish.dev/requested-generation";

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
    /// On a verification Job: the check it runs.
    pub const VERIFY_CHECK: &str = "tuskfish.dev/verify-check";
    /// On a Namespace: `<namespace>/<name>` of the Environment that owns it (an annotation, since `/` is
    /// not allowed in label values).
    pub const NAMESPACE_OWNER_ANNOTATION: &str = "tuskfish.dev/owner";
    /// On an agent's Lease on the hub: the agent's name.
    pub const AGENT: &str = "tuskfish.dev/agent";
}

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// All CRDs, in the order `kubectl apply` should see them, with the API server's own checks
/// (`rules`) in their schemas.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        AppVersion::crd(),
        Environment::crd(),
        Release::crd(),
        Approval::crd(),
        Notification::crd(),
        PipelinePolicy::crd(),
        Ledger::crd(),
        ProductVersion::crd(),
        ProductRelease::crd(),
    ];
    for crd in &mut crds {
        let kind = crd.spec.names.kind.clone();
        for v in &mut crd.spec.versions {
            if let Some(schema) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                drop_schema_defaults(schema);
                // Every path exists (rules::tests holds the table to the types).
                let _ = rules::apply(&kind, schema);
            }
        }
    }
    crds
}

/// Pure: `format` as the API server knows it (`None`: one it does not know, dropped).
fn known_format(format: String) -> Option<String> {
    const KNOWN: &[&str] = &[
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "binary",
        "password",
        "date",
        "date-time",
        "datetime",
        "duration",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
    ];
    match format.as_str() {
        "uint8" | "uint16" | "int8" | "int16" => Some("int32".into()),
        "uint32" | "uint64" | "uint" => Some("int64".into()),
        f if KNOWN.contains(&f) => Some(format),
        _ => None,
    }
}

/// The values an integer of `format` holds in Rust. The API server checks an integer field's type,
/// not its format's range: `replicas: 2147483648` would be stored, and then fail to read — and one
/// object that fails to read fails every list of its kind, every tenant's watch with it.
fn integer_range(format: &str) -> Option<(f64, f64)> {
    Some(match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "uint8" => (0.0, u8::MAX.into()),
        "uint16" => (0.0, u16::MAX.into()),
        "uint32" => (0.0, u32::MAX.into()),
        // A 64-bit one holds every integer the API server keeps (schemars bounds an unsigned one
        // below by 0).
        _ => return None,
    })
}

/// Schema defaults are dropped: serde already supplies every default when the operator reads an
/// object, and a server-side default would write fields the user never set into their objects
/// (and into the field ownership of whoever applied them). Nothing is `nullable` either: the API
/// server then refuses a `null` (`workload: null` is a type error naming the field; leave the field
/// out instead) rather than storing it — a stored null makes the 1.33 API server's
/// `self == oldSelf` false for an unchanged spec, which refused every status write of that object.
///
/// Formats the API server does not know (schemars' `uint32` and the like) become the nearest it
/// does, with the bounds schemars already sets (`minimum: 0`): `kubectl apply` warns of an unknown
/// format on every CRD otherwise.
fn drop_schema_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    schema.nullable = None;
    if let Some((min, max)) = schema.format.as_deref().and_then(integer_range) {
        schema.minimum = Some(schema.minimum.map_or(min, |m| m.max(min)));
        schema.maximum = Some(schema.maximum.map_or(max, |m| m.min(max)));
    }
    schema.format = schema.format.take().and_then(known_format);
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    for p in schema.properties.iter_mut().flat_map(|m| m.values_mut()) {
        drop_schema_defaults(p);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        drop_schema_defaults(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(ap)) = schema.additional_properties.as_mut() {
        drop_schema_defaults(ap);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        for s in list.iter_mut().flatten() {
            drop_schema_defaults(s);
        }
    }
}
