//! A rollout's first status, held back for a moment after its apply.
//!
//! Most rollouts are healthy within a second or two of the apply. Writing "Progressing" first and
//! "Healthy" a moment later doubles the most expensive request the API server serves here, so the
//! status computed right after the apply is kept in memory instead and decided on by the next
//! reconcile, which a workload's watch event usually brings within the window. It is written once the
//! rollout has ended or the window is over, whichever comes first.
//!
//! Held in memory only: a graceful stop writes what is held ([`DeferredStatuses::drain`]). After a
//! crash the server's status still names the inventory written ahead of the apply (see
//! `plan::record::inventory_ahead`: everything that may exist), so the next reconcile applies the
//! same objects again and prunes from that; only the history entry of a rollout no status recorded
//! is gone (the next reconcile starts that rollout again, unless a newer version came meanwhile).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use crate::api::{Inventory, Release, ReleaseStatus};

/// Which Release: namespace, name.
type Key = (String, String);

fn key(rel: &Release) -> Key {
    (rel.namespace().unwrap_or_default(), rel.name_any())
}

/// A status not yet written.
#[derive(Clone, Debug)]
pub struct Deferred {
    /// What to decide on instead of the cached status.
    pub status: ReleaseStatus,
    /// When it must be written even if the rollout is still going.
    pub due: Instant,
}

struct Entry {
    uid: Option<String>,
    /// The server's status it was computed over: if that changed, the held one is stale.
    over: Option<ReleaseStatus>,
    deferred: Deferred,
}

/// The statuses held back, per Release.
#[derive(Default)]
pub struct DeferredStatuses(Mutex<HashMap<Key, Entry>>);

impl DeferredStatuses {
    /// The status held for `rel`, if it still applies to the Release as cached: same object (uid)
    /// and the server's status unchanged since. It stays held until [`Self::hold`] or
    /// [`Self::written`] says otherwise.
    pub fn get(&self, rel: &Release) -> Option<Deferred> {
        let m = self.0.lock().ok()?;
        let e = m.get(&key(rel))?;
        (e.uid == rel.metadata.uid && e.over == rel.status).then(|| e.deferred.clone())
    }

    /// Holds `status` (computed over `rel` as cached) until `due`.
    pub fn hold(&self, rel: &Release, status: ReleaseStatus, due: Instant) {
        if let Ok(mut m) = self.0.lock() {
            let entry = Entry {
                uid: rel.metadata.uid.clone(),
                over: rel.status.clone(),
                deferred: Deferred { status, due },
            };
            m.insert(key(rel), entry);
        }
    }

    /// The status of `rel` was written (or the Release is gone): nothing is held any more.
    pub fn written(&self, rel: &Release) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&key(rel));
        }
    }

    /// The inventory held for `rel`, whatever its cached status: a Release deleted within the
    /// window must still prune what its last apply created.
    pub fn inventory(&self, rel: &Release) -> Option<Inventory> {
        self.status(rel)?.inventory
    }

    /// The status held for `rel`, whatever its cached status (a Release deleted within the
    /// window: its last rollout is in this one).
    pub fn status(&self, rel: &Release) -> Option<ReleaseStatus> {
        let m = self.0.lock().ok()?;
        let e = m.get(&key(rel)).filter(|e| e.uid == rel.metadata.uid)?;
        Some(e.deferred.status.clone())
    }
}

/// A status held when the process stopped, to be written if the Release is still as it was.
pub struct Held {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    /// The server's status it was computed over.
    pub over: Option<ReleaseStatus>,
    pub status: ReleaseStatus,
}

impl DeferredStatuses {
    /// Everything held, taken out (for the last writes of a process that stops).
    pub fn drain(&self) -> Vec<Held> {
        let Ok(mut m) = self.0.lock() else { return Vec::new() };
        m.drain()
            .map(|((namespace, name), e)| Held {
                namespace,
                name,
                uid: e.uid,
                over: e.over,
                status: e.deferred.status,
            })
            .collect()
    }
}

/// How long is left of the window that ends at `due` (`None`: it is over).
pub fn left(due: Instant, now: Instant) -> Option<Duration> {
    due.checked_duration_since(now).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, fixtures};

    fn release(uid: &str, phase: Option<Phase>) -> Release {
        let mut r = fixtures::release_running("pay-dev", "pay", "dev", "1.3.9");
        r.metadata.uid = Some(uid.into());
        if let Some(s) = r.status.as_mut() {
            s.phase = phase;
        }
        r
    }

    #[test]
    fn held_status_applies_only_while_the_servers_status_is_the_one_it_was_computed_over() {
        let held = DeferredStatuses::default();
        let rel = release("u1", Some(Phase::Healthy));
        let next = ReleaseStatus { desired_version: Some("1.3.10".into()), ..Default::default() };
        let due = Instant::now() + Duration::from_secs(2);
        held.hold(&rel, next.clone(), due);
        assert_eq!(held.get(&rel).map(|d| d.status), Some(next.clone()));
        // Another status on the server (whoever wrote it): the held one was computed over the old.
        assert!(held.get(&release("u1", Some(Phase::Failed))).is_none());
        // The same name, but another object.
        assert!(held.get(&release("u2", Some(Phase::Healthy))).is_none());
        held.written(&rel);
        assert!(held.get(&rel).is_none());
    }

    #[test]
    fn a_deleted_release_gets_the_held_inventory_until_it_is_pruned() {
        let held = DeferredStatuses::default();
        let rel = release("u1", Some(Phase::Healthy));
        let inventory = Inventory { namespace: "dev".into(), hash: Some("h".into()), ..Default::default() };
        held.hold(
            &rel,
            ReleaseStatus { inventory: Some(inventory.clone()), ..Default::default() },
            Instant::now(),
        );
        assert!(held.inventory(&release("u2", None)).is_none(), "another object of that name");
        // Deletion does not change the status, but another status must not hide the inventory either.
        assert_eq!(held.inventory(&release("u1", None)), Some(inventory));
        held.written(&rel);
        assert!(held.inventory(&rel).is_none());
    }

    #[test]
    fn the_window_is_over_at_its_end() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(left(now + s(2), now), Some(s(2)));
        assert_eq!(left(now, now), None);
        assert_eq!(left(now, now + s(1)), None);
    }
}
