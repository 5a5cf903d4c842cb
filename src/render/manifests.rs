//! Raw manifests → validated, labelled, namespaced objects.

use std::collections::BTreeMap;

use kube::core::GroupVersionKind;
use serde_json::{Map, Value};

use super::variables::substitute_value;
use super::{Identity, KindCatalog, Origin, RenderError, RenderedObject};
use crate::api::GROUP;

/// Server-managed metadata that must never be sent in an apply.
const SERVER_FIELDS: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
];

/// One object from `at`. `variables`: substitute `${…}` with these first (`None`: the object is
/// final, as Helm's output is).
pub(super) fn render(
    at: Origin,
    manifest: &Value,
    id: &Identity<'_>,
    variables: Option<&BTreeMap<String, String>>,
    catalog: &dyn KindCatalog,
) -> Result<RenderedObject, RenderError> {
    let invalid = |message: String| RenderError::InvalidManifest { at: at.clone(), message };
    let mut body = manifest.clone();
    if !body.is_object() {
        return Err(invalid("not an object".into()));
    }
    if crate::depth::too_deep(&body) {
        return Err(RenderError::NestedTooDeep { context: format!("{at} ({})", name_for_msg(manifest)) });
    }
    // Substitute first: the name and namespace the checks below judge must be the ones that are
    // applied (`name: ${TUSKFISH_APP}-settings`, or a variable that names another namespace).
    if let Some(variables) = variables {
        substitute_value(&mut body, variables).map_err(|name| RenderError::UnknownVariable {
            name,
            context: format!(
                "{at} ({kind} {name_of})",
                kind = manifest.get("kind").and_then(Value::as_str).unwrap_or("?"),
                name_of = name_for_msg(manifest)
            ),
        })?;
    }
    let Value::Object(obj) = &mut body else {
        return Err(invalid("not an object".into()));
    };
    let api_version = str_field(obj, "apiVersion").ok_or_else(|| invalid("apiVersion is missing".into()))?;
    let kind = str_field(obj, "kind").ok_or_else(|| invalid("kind is missing".into()))?;
    let gvk = parse_gvk(&api_version, &kind)
        .ok_or_else(|| invalid(format!("invalid apiVersion {api_version:?}")))?;
    if gvk.group == GROUP {
        return Err(RenderError::ForbiddenKind { at, kind });
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| invalid("metadata is not an object".into()))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{kind} has no metadata.name (generateName is not supported)")))?;
    check_name(&name).map_err(|why| invalid(format!("{kind} name {name:?} {why}")))?;
    let (resource, namespaced) = catalog.resolve(&gvk).ok_or_else(|| RenderError::UnknownKind {
        at: at.clone(),
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    if !namespaced {
        return Err(RenderError::ClusterScoped { at, kind, name });
    }
    match meta.get("namespace") {
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) if ns == id.namespace || ns.is_empty() => {}
        Some(other) => {
            return Err(RenderError::ForeignNamespace {
                at,
                kind,
                name,
                namespace: other.as_str().unwrap_or("<not a string>").to_string(),
                expected: id.namespace.to_string(),
            });
        }
    }
    meta.insert("namespace".into(), Value::String(id.namespace.to_string()));
    for f in SERVER_FIELDS {
        meta.remove(*f);
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| invalid("metadata.labels is not an object".into()))?;
    for (k, v) in id.labels() {
        labels.insert(k, Value::String(v));
    }
    obj.remove("status");
    default_port_protocols(&mut body);
    Ok(RenderedObject { resource, name, body })
}

/// The name becomes a segment of the request URL. Kubernetes refuses `.`, `..`, `/` and `%` in such
/// names; `?` and `#` would end the path (the request would address another object or carry other
/// parameters) and whitespace or control characters cannot be sent at all, which would fail every
/// retry without a word. Anything else is left to the API server's own validation of the kind.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name == "." || name == ".." {
        return Err("may not be \".\" or \"..\"");
    }
    if name.chars().any(|c| matches!(c, '/' | '%' | '?' | '#') || c.is_whitespace() || c.is_control()) {
        return Err("may not contain '/', '%', '?', '#', whitespace or control characters");
    }
    Ok(())
}

fn name_for_msg(manifest: &Value) -> String {
    manifest.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string()
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// `apiVersion` as group and version, when both look like what Kubernetes serves: the group a DNS
/// subdomain (or empty, the core group), the version a DNS label. They become discovery URLs, so
/// anything else (spaces, `?`, `..`) must be refused here rather than sent.
pub(super) fn parse_gvk(api_version: &str, kind: &str) -> Option<GroupVersionKind> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let label_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let is_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(label_char)
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let group_ok = group.is_empty() || (group.len() <= 253 && group.split('.').all(is_label));
    if !group_ok || !is_label(version) {
        return None;
    }
    Some(GroupVersionKind::gvk(group, version, kind))
}

/// Server-side apply on 1.20 rejects a port list entry without `protocol` (it is part of the list-map
/// key), so every `ports` entry that looks like a container or service port gets `TCP` by default.
fn default_port_protocols(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "ports"
                    && let Value::Array(items) = v
                {
                    for item in items.iter_mut() {
                        if let Value::Object(port) = item
                            && (port.contains_key("containerPort") || port.contains_key("port"))
                            && !port.contains_key("protocol")
                        {
                            port.insert("protocol".into(), Value::String("TCP".into()));
                        }
                    }
                }
                default_port_protocols(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(default_port_protocols),
        _ => {}
    }
}
