//! Who wrote a field of an object, from its `metadata.managedFields`: the GitOps applier that owns a
//! Release's version (the CLI refuses to fight it), and the tool that asked for a rollout (the
//! audit). The names are the field managers the writing clients gave themselves. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::{Map, Value};

/// True when `fields` (a `fieldsV1` tree) holds `path` (field names from the object's root).
pub fn owns(fields: &Value, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else { return true };
    fields.get(format!("f:{first}")).is_some_and(|f| owns(f, rest))
}

/// The field manager that wrote `path` last (of those that own it: server-side apply can share a
/// field), or the first that owns it when no entry has a time.
pub fn writer<'a>(managed: &'a [ManagedFieldsEntry], path: &[&str]) -> Option<&'a str> {
    winning(managed, path).and_then(|m| m.manager.as_deref())
}

fn winning<'a>(managed: &'a [ManagedFieldsEntry], path: &[&str]) -> Option<&'a ManagedFieldsEntry> {
    managed
        .iter()
        .filter(|m| m.fields_v1.as_ref().is_some_and(|f| owns(&f.0, path)))
        .max_by(|a, b| a.time.as_ref().map(|t| t.0).cmp(&b.time.as_ref().map(|t| t.0)))
}

/// What a cache keeps of `managed` to answer [`writer`] for `paths`, and nothing else: for each
/// path, the entry that wins it, cut down to the paths it wins (at most one entry per path,
/// however many a client wrote: `Apply` entries are not capped by the API server).
pub fn trimmed(managed: &[ManagedFieldsEntry], paths: &[&[&str]]) -> Option<Vec<ManagedFieldsEntry>> {
    let mut kept: Vec<ManagedFieldsEntry> = Vec::new();
    for path in paths {
        let Some(winner) = winning(managed, path) else { continue };
        let same = |k: &ManagedFieldsEntry| {
            (&k.manager, &k.operation, &k.time) == (&winner.manager, &winner.operation, &winner.time)
        };
        let at = match kept.iter().position(same) {
            Some(at) => at,
            None => {
                kept.push(ManagedFieldsEntry {
                    manager: winner.manager.clone(),
                    operation: winner.operation.clone(),
                    time: winner.time.clone(),
                    fields_type: winner.fields_type.clone(),
                    fields_v1: Some(FieldsV1(Value::Object(Map::new()))),
                    ..Default::default()
                });
                kept.len() - 1
            }
        };
        if let Some(f) = kept[at].fields_v1.as_mut() {
            insert(&mut f.0, path);
        }
    }
    (!kept.is_empty()).then_some(kept)
}

fn insert(tree: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else { return };
    if let Value::Object(map) = tree {
        let child = map.entry(format!("f:{first}")).or_insert_with(|| Value::Object(Map::new()));
        insert(child, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VersionSource;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn entry(manager: &str, at: Option<&str>, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: at.map(|t| Time(t.parse().unwrap())),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn the_writer_of_a_field_is_the_latest_manager_that_owns_it() {
        let managed = vec![
            entry(
                "kubectl-client-side-apply",
                Some("2026-12-01T10:00:00Z"),
                json!({"f:spec": {"f:version": {}, "f:app": {}}}),
            ),
            entry("tuskfish-cli", Some("2026-12-02T10:00:00Z"), json!({"f:spec": {"f:version": {}}})),
            entry("tuskfish", Some("2026-12-03T10:00:00Z"), json!({"f:status": {"f:phase": {}}})),
        ];
        let table: [(&[&str], Option<&str>); 4] = [
            (&["spec", "version"], Some("tuskfish-cli")),
            (&["spec", "app"], Some("kubectl-client-side-apply")),
            (&["spec", "track"], None),
            (&["status"], Some("tuskfish")),
        ];
        for (path, want) in table {
            assert_eq!(writer(&managed, path), want, "{path:?}");
        }
    }

    #[test]
    fn trimmed_entries_keep_only_the_version_fields_and_answer_the_same() {
        let managed = vec![
            entry(
                "kustomize-controller",
                Some("2026-12-01T10:00:00Z"),
                json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:app": {}, "f:rollback": {".": {}, "f:to": {}}, "f:track": {}}}),
            ),
            entry("tuskfish", None, json!({"f:status": {"f:phase": {}}})),
        ];
        let kept = trimmed(&managed, &VersionSource::PATHS).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:track": {}, "f:rollback": {"f:to": {}}}})
        );
        for path in VersionSource::PATHS {
            assert_eq!(writer(&kept, path), writer(&managed, path), "{path:?}");
        }
        assert_eq!(trimmed(&managed[1..], &VersionSource::PATHS), None);
    }

    #[test]
    fn a_cache_keeps_one_entry_per_version_field_however_many_a_client_wrote() {
        let mut managed: Vec<ManagedFieldsEntry> = (0..3000)
            .map(|i| {
                entry(&format!("m{i}"), Some("2026-12-01T10:00:00Z"), json!({"f:spec": {"f:version": {}}}))
            })
            .collect();
        managed.push(entry(
            "tuskfish-cli",
            Some("2026-12-02T10:00:00Z"),
            json!({"f:spec": {"f:version": {}}}),
        ));
        let kept = trimmed(&managed, &VersionSource::PATHS).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(writer(&kept, &["spec", "version"]), Some("tuskfish-cli"));
    }
}
