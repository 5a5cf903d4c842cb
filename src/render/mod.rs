//! Pure rendering: (AppVersion, Environment, Release) → the namespaced objects to apply.
//!
//! Nothing here talks to the API server; the one fact it needs from the cluster (which kinds exist and
//! whether they are namespaced) comes in as a [`KindCatalog`].

pub mod chart;
pub mod check_job;
mod manifests;
mod order;
mod variables;
mod workload;

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{AppVersion, Environment, InventoryEntry, Reason, Release, labels};

pub use chart::{ChartObject, chart_values};
pub use order::install_order;
pub use variables::substitute;
pub(crate) use variables::substitute_value;

/// Why the desired objects could not be rendered. Each variant has a stable reason for conditions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("AppVersion has neither spec.workload, spec.manifests nor spec.helm: nothing to deploy")]
    Empty,
    #[error("{at}: {message}")]
    InvalidManifest { at: Origin, message: String },
    #[error("{at} ({kind} {name}) is cluster-scoped; only namespaced objects can be deployed")]
    ClusterScoped { at: Origin, kind: String, name: String },
    #[error(
        "the chart brings CustomResourceDefinitions ({names}); CRDs are cluster-scoped: install them with the cluster's own tooling and leave them out of the chart's crds/"
    )]
    ChartCrds { names: String },
    #[error(
        "{at} ({kind} {name}) names namespace {namespace:?} but the environment's namespace is {expected:?}"
    )]
    ForeignNamespace { at: Origin, kind: String, name: String, namespace: String, expected: String },
    #[error("{at}: kind {kind} of {api_version} is not served by the API server")]
    UnknownKind { at: Origin, api_version: String, kind: String },
    #[error("{at}: {kind} objects of tuskfish.dev cannot be deployed by a Release")]
    ForbiddenKind { at: Origin, kind: String },
    #[error("{kind} {name} is rendered twice")]
    Duplicate { kind: String, name: String },
    #[error("unknown variable ${{{name}}} in {context}; define it in the Environment's spec.variables")]
    UnknownVariable { name: String, context: String },
    #[error(
        "{context} nest deeper than {} levels, which the operator does not read; flatten them",
        crate::depth::MAX_DEPTH
    )]
    NestedTooDeep { context: String },
    #[error("label value {value:?} ({what}) is longer than 63 characters")]
    LabelTooLong { what: &'static str, value: String },
    #[error(
        "{count} objects are rendered; their inventory would take {bytes} bytes of the Release's status (at most {INVENTORY_LIMIT}): split the app into several"
    )]
    TooManyObjects { count: usize, bytes: usize },
}

/// Where a rendered object came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `spec.manifests[i]`.
    Manifest(usize),
    /// An object of the chart's output, by the template that made it.
    Chart { source: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Manifest(i) => write!(f, "manifest #{i}"),
            Origin::Chart { source } => write!(f, "chart template {source}"),
        }
    }
}

/// The most bytes the inventory of rendered objects may take in a Release's status (about 200 objects
/// with names of typical length). The inventory is needed in full for pruning and cannot be cut,
/// so an app that renders more is refused; this keeps a Release status well below what etcd stores
/// (the status also holds ten history entries, up to 200 change ids and the conditions).
pub const INVENTORY_LIMIT: usize = 32 * 1024;

/// Upper bound of one entry's size in the serialized inventory besides its apiVersion, kind and
/// name: the JSON keys and quotes, a uid (36 characters) and a generation (up to 19 digits).
const INVENTORY_ENTRY_OVERHEAD: usize = 120;

impl RenderError {
    /// Stable CamelCase reason for conditions and Events.
    pub fn reason(&self) -> Reason {
        match self {
            RenderError::Empty => Reason::NothingToDeploy,
            RenderError::InvalidManifest { .. } => Reason::InvalidManifest,
            RenderError::ClusterScoped { .. } => Reason::ClusterScopedManifest,
            RenderError::ChartCrds { .. } => Reason::ChartHasCrds,
            RenderError::ForeignNamespace { .. } => Reason::ForeignNamespace,
            RenderError::UnknownKind { .. } => Reason::UnknownKind,
            RenderError::ForbiddenKind { .. } => Reason::ForbiddenKind,
            RenderError::Duplicate { .. } => Reason::DuplicateObject,
            RenderError::UnknownVariable { .. } => Reason::UnknownVariable,
            RenderError::NestedTooDeep { .. } => Reason::NestedTooDeep,
            RenderError::LabelTooLong { .. } => Reason::NameTooLong,
            RenderError::TooManyObjects { .. } => Reason::TooManyObjects,
        }
    }

    /// True when retrying later may succeed without any spec change (e.g. a CRD not installed yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, RenderError::UnknownKind { .. })
    }
}

/// Resolves `apiVersion` + `kind` to the REST resource and its scope, from API discovery.
pub trait KindCatalog {
    /// `Some((resource, namespaced))` when the API server serves that kind.
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, bool)>;
}

/// One object ready for server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedObject {
    pub resource: ApiResource,
    pub name: String,
    /// The full object (apiVersion, kind, metadata with namespace and labels, spec…).
    pub body: Value,
}

impl RenderedObject {
    pub fn inventory_entry(&self) -> InventoryEntry {
        InventoryEntry {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            name: self.name.clone(),
            generation: None,
            uid: None,
        }
    }
}

/// The desired state of one Release.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub namespace: String,
    pub objects: Vec<RenderedObject>,
    /// Hash over namespace and every object: equal hash, equal desired state.
    pub hash: String,
}

/// Identity labels shared by every object of a Release.
pub(crate) struct Identity<'a> {
    pub app: &'a str,
    pub version: &'a str,
    pub release: &'a str,
    pub release_namespace: &'a str,
    pub environment: &'a str,
    pub namespace: &'a str,
}

impl Identity<'_> {
    /// Labels that select the Release's pods; never include the version (selectors are immutable).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::NAME.to_string(), self.app.to_string()),
            (labels::INSTANCE.to_string(), self.release.to_string()),
        ])
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector_labels();
        l.insert(labels::VERSION.to_string(), version_label(self.version));
        l.insert(labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string());
        l.insert(labels::RELEASE.to_string(), self.release.to_string());
        l.insert(labels::RELEASE_NAMESPACE.to_string(), self.release_namespace.to_string());
        l.insert(labels::ENVIRONMENT.to_string(), self.environment.to_string());
        l
    }

    /// Every variable `${…}` can name: the built-in ones, and the Environment's (which win).
    pub fn variables(&self, env: &Environment) -> BTreeMap<String, String> {
        let mut variables = self.builtin_variables();
        variables.extend(env.spec.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
        variables
    }

    /// Variables visible to `${…}` in manifests and injected into workload containers.
    pub fn builtin_variables(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("TUSKFISH_APP".to_string(), self.app.to_string()),
            ("TUSKFISH_VERSION".to_string(), self.version.to_string()),
            ("TUSKFISH_ENVIRONMENT".to_string(), self.environment.to_string()),
            ("TUSKFISH_NAMESPACE".to_string(), self.namespace.to_string()),
        ])
    }
}

/// The variables a manifest of `app` at `version` sees when `release` renders it into `env` (what a
/// verification check sees too).
pub fn variables_for(
    env: &Environment,
    release: &Release,
    app: &str,
    version: &str,
) -> BTreeMap<String, String> {
    Identity {
        app,
        version,
        release: release.metadata.name.as_deref().unwrap_or_default(),
        release_namespace: release.metadata.namespace.as_deref().unwrap_or_default(),
        environment: env.metadata.name.as_deref().unwrap_or_default(),
        namespace: &env.spec.namespace,
    }
    .variables(env)
}

/// The kinds an AppVersion's manifests (and its chart's output, when rendered) use, so the caller
/// can look them up before rendering.
pub fn required_kinds(app_version: &AppVersion, chart: &[ChartObject]) -> Vec<GroupVersionKind> {
    app_version
        .spec
        .manifests
        .iter()
        .chain(chart.iter().map(|o| &o.body))
        .filter_map(|m| {
            let api_version = m.get("apiVersion")?.as_str()?;
            let kind = m.get("kind")?.as_str()?;
            manifests::parse_gvk(api_version, kind)
        })
        .collect()
}

/// Semver allows `+` (build metadata) which label values do not; map it to `_`.
pub fn version_label(version: &str) -> String {
    version.replace('+', "_")
}

/// Renders the objects of `release` running `app_version` in `env`; `chart` is what Helm rendered of
/// the AppVersion's chart (empty without one), taken as it is: Helm has already substituted.
pub fn render(
    app_version: &AppVersion,
    env: &Environment,
    release: &Release,
    chart: &[ChartObject],
    catalog: &dyn KindCatalog,
) -> Result<Rendered, RenderError> {
    let release_name = release.metadata.name.as_deref().unwrap_or_default();
    let release_ns = release.metadata.namespace.as_deref().unwrap_or_default();
    let env_name = env.metadata.name.as_deref().unwrap_or_default();
    for (what, value) in [("Release name", release_name), ("Environment name", env_name)] {
        if value.len() > 63 {
            return Err(RenderError::LabelTooLong { what, value: value.to_string() });
        }
    }
    let spec = &app_version.spec;
    let id = Identity {
        app: &spec.app,
        version: &spec.version,
        release: release_name,
        release_namespace: release_ns,
        environment: env_name,
        namespace: &env.spec.namespace,
    };
    let variables = id.variables(env);

    let mut objects = Vec::new();
    if let Some(w) = &spec.workload {
        objects.extend(workload::render(
            w,
            &id,
            &env.spec.variables,
            release.spec.progress_deadline_seconds(),
        ));
    }
    for (index, manifest) in spec.manifests.iter().enumerate() {
        objects.push(manifests::render(Origin::Manifest(index), manifest, &id, Some(&variables), catalog)?);
    }
    chart::refuse_crds(chart)?;
    for o in chart {
        objects.push(manifests::render(
            Origin::Chart { source: o.source.clone() },
            &o.body,
            &id,
            None,
            catalog,
        )?);
    }
    if objects.is_empty() {
        return Err(RenderError::Empty);
    }
    let mut seen = BTreeSet::new();
    for o in &objects {
        if !seen.insert((o.resource.group.clone(), o.resource.kind.clone(), o.name.clone())) {
            return Err(RenderError::Duplicate { kind: o.resource.kind.clone(), name: o.name.clone() });
        }
    }
    let bytes: usize = objects
        .iter()
        .map(|o| {
            o.resource.api_version.len() + o.resource.kind.len() + o.name.len() + INVENTORY_ENTRY_OVERHEAD
        })
        .sum();
    if bytes > INVENTORY_LIMIT {
        return Err(RenderError::TooManyObjects { count: objects.len(), bytes });
    }
    let hash = hash_objects(&env.spec.namespace, &objects);
    Ok(Rendered { namespace: env.spec.namespace.clone(), objects, hash })
}

fn hash_objects(namespace: &str, objects: &[RenderedObject]) -> String {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    for o in objects {
        // serde_json's default map is ordered, so the serialisation is canonical.
        h.update([0]);
        h.update(o.body.to_string().as_bytes());
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;
