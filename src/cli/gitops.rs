//! GitOps awareness: who owns a field (from `metadata.managedFields`), and the one-line edit of a
//! Release's version in a git checkout's YAML, comments and layout kept. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

/// Field managers of the GitOps appliers we know (Flux, Argo CD); more in `TUSKFISH_GITOPS_MANAGERS`
/// (comma-separated).
pub const KNOWN_APPLIERS: [&str; 5] = [
    "kustomize-controller",
    "helm-controller",
    "argocd-controller",
    "argocd-application-controller",
    "argo-cd",
];

/// The appliers: the known ones and those the user names.
pub fn appliers(extra: Option<&str>) -> Vec<String> {
    KNOWN_APPLIERS
        .iter()
        .map(|s| s.to_string())
        .chain(extra.unwrap_or_default().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .collect()
}

/// The applier among `appliers` that owns one of `paths` (each a list of field names from the
/// object's root), if any.
pub fn owner(managed: &[ManagedFieldsEntry], paths: &[&[&str]], appliers: &[String]) -> Option<String> {
    managed.iter().find_map(|m| {
        let manager = m.manager.as_deref()?;
        if !appliers.iter().any(|a| a == manager) {
            return None;
        }
        let fields = &m.fields_v1.as_ref()?.0;
        paths.iter().any(|p| crate::fields::owns(fields, p)).then(|| manager.to_string())
    })
}

/// What a version edit in a file came to.
#[derive(Debug, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    /// The line as it was, and as it is.
    pub before: String,
    pub after: String,
}

/// In `text` (one or more YAML documents), sets `spec.version` of Release `name` (in `namespace`,
/// when the document names one) to `version` by changing one line: the `version:` line under `spec`
/// (its quoting and trailing comment kept), or a `track:` line, which becomes the pin. `Ok(None)`:
/// no such Release in this file. `Err`: it is there but not in a shape one line can change.
pub fn set_release_version(
    text: &str,
    name: &str,
    namespace: &str,
    version: &str,
) -> Result<Option<Edited>, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut start = 0;
    while start < lines.len() {
        let end = (start + 1..lines.len()).find(|i| lines[*i].starts_with("---")).unwrap_or(lines.len());
        let doc: String = lines[start..end].concat();
        if is_release(&doc, name, namespace) {
            let (at, before, after) = edit_spec_line(&lines[start..end], name, version)?;
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[start + at] = after.clone();
            return Ok(Some(Edited {
                text: out.concat(),
                before: before.trim_end().into(),
                after: after.trim_end().into(),
            }));
        }
        start = end;
    }
    Ok(None)
}

fn is_release(doc: &str, name: &str, namespace: &str) -> bool {
    let Ok(v) = serde_saphyr::from_str::<Value>(doc) else { return false };
    let meta = &v["metadata"];
    v["kind"] == "Release"
        && v["apiVersion"].as_str().is_some_and(|a| a.starts_with("tuskfish.dev/"))
        && meta["name"] == name
        && meta["namespace"].as_str().is_none_or(|n| n == namespace)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The index of the changed line in `doc`, the line before and after.
fn edit_spec_line(doc: &[&str], name: &str, version: &str) -> Result<(usize, String, String), String> {
    let hand = |why: &str| Err(format!("Release {name} {why}; change spec.version to {version} by hand"));
    let Some(spec) = doc.iter().position(|l| l.starts_with("spec:")) else {
        return hand("has no block `spec:` at the top level");
    };
    if !doc[spec].trim_end().ends_with(':') && !doc[spec]["spec:".len()..].trim_start().starts_with('#') {
        return hand("is written in flow style (`spec: {…}`)");
    }
    let Some(first) = (spec + 1..doc.len()).find(|i| is_content(doc[*i])) else {
        return hand("has an empty spec");
    };
    let child = indent(doc[first]);
    if child == 0 {
        return hand("has an empty spec");
    }
    let block = (first..doc.len()).take_while(|i| !is_content(doc[*i]) || indent(doc[*i]) >= child);
    let mut track = None;
    for i in block {
        let line = doc[i];
        if indent(line) != child {
            continue;
        }
        let key = line.trim_start().split(':').next().unwrap_or_default();
        match key {
            "version" => return Ok((i, line.to_string(), replace_value(line, child, "version", version))),
            "track" => track = Some(i),
            "promoteFrom" => return hand("promotes from another environment in git"),
            _ => {}
        }
    }
    match track {
        Some(i) => Ok((i, doc[i].to_string(), replace_value(doc[i], child, "version", version))),
        None => hand("has neither version nor track under spec"),
    }
}

/// `key: value  # comment` with the value replaced (quoted as it was) and the key set.
fn replace_value(line: &str, indent: usize, key: &str, value: &str) -> String {
    let newline = if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    let body = line.trim_end_matches(['\r', '\n']);
    let rest = body[indent..].split_once(':').map_or("", |(_, r)| r);
    let old = rest.trim_start();
    let (old_value, comment) = match old.find(" #") {
        Some(at) => (&old[..at], &old[at..]),
        None => (old, ""),
    };
    let quoted = match old_value.trim().chars().next() {
        Some(q @ ('"' | '\'')) => format!("{q}{value}{q}"),
        _ => value.to_string(),
    };
    // The spacing before the comment, as it was.
    let gap = &old_value[old_value.trim_end().len()..];
    format!("{}{key}: {quoted}{gap}{comment}{newline}", " ".repeat(indent))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    use super::*;

    fn entry(manager: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn the_applier_that_owns_a_field_is_found() {
        let managed = vec![
            entry("tuskfish", json!({"f:metadata": {"f:finalizers": {}}})),
            entry(
                "kustomize-controller",
                json!({"f:spec": {"f:app": {}, "f:version": {}, "f:rollback": {"f:auto": {}}}}),
            ),
        ];
        let appliers = appliers(Some("my-applier, "));
        let version: &[&str] = &["spec", "version"];
        assert_eq!(owner(&managed, &[version], &appliers).as_deref(), Some("kustomize-controller"));
        assert_eq!(
            owner(&managed, &[&["spec", "rollback", "to"]], &appliers),
            None,
            "rollback.to is not in git"
        );
        assert_eq!(
            owner(&managed, &[&["metadata", "finalizers"]], &appliers),
            None,
            "the operator is no applier"
        );
        let mine = vec![entry("my-applier", json!({"f:spec": {"f:track": {}}}))];
        assert_eq!(owner(&mine, &[version, &["spec", "track"]], &appliers).as_deref(), Some("my-applier"));
    }

    const FILE: &str = "# The finance pipeline's Releases.\n---\napiVersion: tuskfish.dev/v1alpha1\nkind: Release\nmetadata:\n  name: payments-dev\n  namespace: finance\nspec:\n  app: payments\n  environment: dev\n  track: \"~1.3\"   # newest 1.3\n---\napiVersion: tuskfish.dev/v1alpha1\nkind: Release\nmetadata: {name: payments-prod}\nspec:\n  app: payments\n  # pinned: changes go through CAB\n  version: \"1.3.9\"  # CAB-2001\n  rollback:\n    version: 9.9.9\n";

    #[test]
    fn one_line_changes_and_everything_else_stays() {
        let e = set_release_version(FILE, "payments-prod", "finance", "1.3.10").unwrap().unwrap();
        assert_eq!(
            (e.before.as_str(), e.after.as_str()),
            (r#"  version: "1.3.9"  # CAB-2001"#, r#"  version: "1.3.10"  # CAB-2001"#)
        );
        let changed: Vec<(&str, &str)> = FILE.lines().zip(e.text.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(e.text.lines().count(), FILE.lines().count());
        // A tracking Release is pinned on its track line.
        let t = set_release_version(FILE, "payments-dev", "finance", "1.3.10").unwrap().unwrap();
        assert_eq!(t.after, "  version: \"1.3.10\"   # newest 1.3");
        // Not here, or in another namespace.
        assert_eq!(set_release_version(FILE, "ledger-prod", "finance", "1.0.0"), Ok(None));
        assert_eq!(set_release_version(FILE, "payments-dev", "other", "1.0.0"), Ok(None));
    }

    #[test]
    fn shapes_one_line_cannot_change_are_refused() {
        let flow = "apiVersion: tuskfish.dev/v1alpha1\nkind: Release\nmetadata: {name: r}\nspec: {app: a, version: 1.0.0}\n";
        let promoted = "apiVersion: tuskfish.dev/v1alpha1\nkind: Release\nmetadata: {name: r}\nspec:\n  app: a\n  promoteFrom:\n    environment: dev\n";
        for (text, says) in [(flow, "flow style"), (promoted, "promotes from another environment")] {
            let err = set_release_version(text, "r", "finance", "1.1.0").unwrap_err();
            assert!(err.contains(says) && err.contains("by hand"), "{err}");
        }
    }
}
