//! Which version of each object a reconcile last finished on. A barrier for whoever must know that
//! the operator has acted on a change (and what it did not do since): the test suite's "nothing
//! happened" checks wait on it instead of sleeping, so they cannot pass before the operator looked.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

/// Kind, namespace, name.
type Key = (String, String, String);

#[derive(Default)]
pub struct ReconcileLog {
    last: Mutex<HashMap<Key, String>>,
    changed: Notify,
    /// Also a line per reconcile, when and of what, in this file (`tuskfish run --reconcile-trace`:
    /// tests that run replicas as processes check from it that no two ever reconciled one object
    /// at once).
    trace: Option<Mutex<std::fs::File>>,
}

fn key_of(kind: &str, namespace: &str, name: &str) -> Key {
    (kind.to_string(), namespace.to_string(), name.to_string())
}

/// Whether `seen` is `wanted` or a later version. resourceVersions are opaque, but an etcd-backed
/// API server hands out increasing integers; anything else only counts when equal.
fn at_or_after(seen: &str, wanted: &str) -> bool {
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(s), Ok(w)) => s >= w,
        _ => seen == wanted,
    }
}

impl ReconcileLog {
    /// A log that also appends `<start µs> <end µs> <kind> <namespace>/<name>` (Unix time) to the
    /// file at `path` for every reconcile.
    pub fn tracing_to(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { trace: Some(Mutex::new(file)), ..Self::default() })
    }

    /// Notes that a reconcile of `obj`, begun at `began`, has finished.
    pub fn finished_since<K: Resource<DynamicType = ()>>(&self, obj: &K, began: std::time::SystemTime) {
        self.trace(obj, began, "");
        self.finished(obj);
    }

    /// Notes in the trace that a reconcile of `obj`, begun at `began`, was dropped unfinished.
    fn dropped_since<K: Resource<DynamicType = ()>>(&self, obj: &K, began: std::time::SystemTime) {
        self.trace(obj, began, " dropped");
    }

    fn trace<K: Resource<DynamicType = ()>>(&self, obj: &K, began: std::time::SystemTime, how: &str) {
        if let Some(file) = &self.trace {
            let micros = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros())
            };
            let line = format!(
                "{} {} {} {}/{}{how}\n",
                micros(began),
                micros(std::time::SystemTime::now()),
                K::kind(&()),
                obj.namespace().unwrap_or_default(),
                obj.name_any()
            );
            if let Ok(mut f) = file.lock() {
                // A trace for tests: a failed write is no reason to fail a reconcile.
                let _ = std::io::Write::write_all(&mut *f, line.as_bytes());
            }
        }
    }

    /// Notes that a reconcile of `obj` (as the cache had it) has finished.
    pub fn finished<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        let Some(rv) = obj.resource_version() else { return };
        let key = key_of(&K::kind(&()), &obj.namespace().unwrap_or_default(), &obj.name_any());
        if let Ok(mut last) = self.last.lock() {
            last.insert(key, rv);
        }
        self.changed.notify_waiters();
    }

    /// Whether a reconcile of that object finished on `resource_version` or a later version.
    pub fn has_seen(&self, kind: &str, namespace: &str, name: &str, resource_version: &str) -> bool {
        self.last
            .lock()
            .ok()
            .and_then(|last| {
                last.get(&key_of(kind, namespace, name)).map(|rv| at_or_after(rv, resource_version))
            })
            .unwrap_or(false)
    }

    /// Waits until a reconcile of that object finished on `resource_version` or later.
    pub async fn wait_for(&self, kind: &str, namespace: &str, name: &str, resource_version: &str) {
        loop {
            // Registered before the check, so a reconcile finishing in between still wakes us.
            let notified = self.changed.notified();
            if self.has_seen(kind, namespace, name, resource_version) {
                return;
            }
            notified.await;
        }
    }
}

/// One reconcile under way, for the log: told when it finishes, or traced as dropped.
pub(crate) struct Reconciling<K: Resource<DynamicType = ()>> {
    of: Option<(std::sync::Arc<ReconcileLog>, std::sync::Arc<K>, std::time::SystemTime)>,
}

impl<K: Resource<DynamicType = ()>> Reconciling<K> {
    pub(crate) fn new(log: Option<(std::sync::Arc<ReconcileLog>, std::sync::Arc<K>)>) -> Self {
        Self { of: log.map(|(log, obj)| (log, obj, std::time::SystemTime::now())) }
    }

    pub(crate) fn finished(&mut self) {
        if let Some((log, obj, began)) = self.of.take() {
            log.finished_since(obj.as_ref(), began);
        }
    }
}

impl<K: Resource<DynamicType = ()>> Drop for Reconciling<K> {
    fn drop(&mut self) {
        if let Some((log, obj, began)) = self.of.take() {
            log.dropped_since(obj.as_ref(), began);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::{Release, ReleaseSpec};

    fn release(rv: &str) -> Release {
        let mut r = Release::new("pay-dev", ReleaseSpec::default());
        r.metadata.namespace = Some("finance".into());
        r.metadata.resource_version = Some(rv.into());
        r
    }

    #[tokio::test]
    async fn a_waiter_is_released_by_the_reconcile_of_that_version_or_a_later_one() {
        let log = Arc::new(ReconcileLog::default());
        log.finished(&release("41"));
        assert!(!log.has_seen("Release", "finance", "pay-dev", "42"));
        assert!(!log.has_seen("Release", "other", "pay-dev", "41"), "another namespace");
        let waiter = tokio::spawn({
            let log = log.clone();
            async move { log.wait_for("Release", "finance", "pay-dev", "42").await }
        });
        log.finished(&release("43"));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(log.has_seen("Release", "finance", "pay-dev", "42"));
    }

    #[test]
    fn opaque_versions_only_match_exactly() {
        assert!(at_or_after("abc", "abc"));
        assert!(!at_or_after("abd", "abc"));
        assert!(at_or_after("10", "9"), "numeric, not lexicographic");
    }
}
