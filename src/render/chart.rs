//! Pure parts of deploying a Helm chart: the values it is rendered with, and reading what Helm
//! rendered (`helm template` output) into objects. Running Helm is the edge's job (`crate::helm`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::RenderError;
use super::variables::substitute_value;

/// One object of a chart's output, with the template that made it (Helm's `# Source:` line).
#[derive(Clone, Debug, PartialEq)]
pub struct ChartObject {
    pub source: String,
    pub body: Value,
}

/// What `helm template` rendered, split into what is applied and the hooks, which are not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartOutput {
    pub objects: Vec<ChartObject>,
    /// `Kind name (hook events)` of each hook left out.
    pub hooks: Vec<String>,
}

/// The annotation that makes a template a Helm hook.
const HOOK_ANNOTATION: &str = "helm.sh/hook";

/// Why Helm's output could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}: Helm rendered something that is not a Kubernetes object: {message}")]
pub struct OutputError {
    pub source_name: String,
    pub message: String,
}

/// Reads `helm template` output: YAML documents separated by `---` lines, each led by Helm's
/// `# Source: chart/templates/x.yaml` comment. Empty documents (a template that rendered nothing)
/// are skipped; hooks are set aside.
pub fn parse_output(text: &str) -> Result<ChartOutput, OutputError> {
    let mut out = ChartOutput::default();
    for doc in split_documents(text) {
        let source = doc
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map_or_else(|| "(no source)".to_string(), |s| s.trim().to_string());
        if doc.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            continue;
        }
        let body: Value = serde_saphyr::from_str(doc)
            .map_err(|e| OutputError { source_name: source.clone(), message: e.to_string() })?;
        match &body {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(OutputError { source_name: source, message: "not a mapping".into() });
            }
        }
        if let Some(events) = body.pointer("/metadata/annotations").and_then(|a| a.get(HOOK_ANNOTATION)) {
            let kind = body.get("kind").and_then(Value::as_str).unwrap_or("?");
            let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
            out.hooks.push(format!("{kind} {name} ({})", events.as_str().unwrap_or("?")));
            continue;
        }
        out.objects.push(ChartObject { source, body });
    }
    Ok(out)
}

/// Documents of a YAML stream: split at lines that are `---` (with nothing but spaces or a comment
/// after it), as Helm itself splits manifests.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end();
        let separator = t == "---" || t.starts_with("--- ") || t.starts_with("---\t");
        if separator {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

/// A chart's CustomResourceDefinitions (from its `crds/` or its templates) are cluster-scoped and
/// are refused as a whole, with their names, before anything is applied.
pub(super) fn refuse_crds(objects: &[ChartObject]) -> Result<(), RenderError> {
    let names: Vec<&str> = objects
        .iter()
        .filter(|o| {
            o.body.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                && o.body
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
        })
        .map(|o| o.body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?"))
        .collect();
    if names.is_empty() { Ok(()) } else { Err(RenderError::ChartCrds { names: names.join(", ") }) }
}

/// The values a chart is rendered with: the AppVersion's `spec.helm.values`, then the Environment's
/// `helmValues`, then the Release's, each merged over the one before as Helm merges values files
/// (maps merge key by key, anything else is replaced; a `null` stays, and makes Helm drop the
/// chart's default), then `${VAR}` substituted in every string.
pub fn chart_values(
    layers: &[Option<&Value>],
    variables: &BTreeMap<String, String>,
) -> Result<Value, RenderError> {
    // Each layer on its own: a shallower layer over a deep one would hide it.
    if layers.iter().flatten().any(|layer| crate::depth::too_deep(layer)) {
        return Err(RenderError::NestedTooDeep { context: "the Helm values".into() });
    }
    let mut merged = Value::Object(Map::new());
    for layer in layers.iter().flatten() {
        merge(&mut merged, layer);
    }
    substitute_value(&mut merged, variables)
        .map_err(|name| RenderError::UnknownVariable { name, context: "the Helm values".into() })?;
    Ok(merged)
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    // A `null` is kept: Helm then removes the chart's default for that key.
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests;
