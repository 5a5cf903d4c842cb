//! Writing status only when it changed: the steady state makes no write calls. And not deciding
//! on a cache that has not yet seen our own last write: that decision could only end in a
//! conflict (a wasted write) or, without the precondition, in overwriting newer status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{Error, Result};
use crate::api::FIELD_MANAGER;

/// Which object: kind, namespace, name.
type Key = (String, String, String);

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> Key {
    (K::kind(&()).into_owned(), obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The resourceVersion each of our recent status writes was based on, per object.
#[derive(Default)]
pub struct OwnWrites(Mutex<HashMap<Key, (String, Instant)>>);

/// A watch delivers our write within milliseconds; an entry older than this is of no use (and
/// dropping old ones bounds the map for objects deleted meanwhile).
const REMEMBER: Duration = Duration::from_secs(60);
/// Pruning runs only once the map holds this many entries.
const PRUNE_ABOVE: usize = 1024;

impl OwnWrites {
    /// True when `obj` is exactly the version our last status write replaced: the watch has not
    /// delivered that write yet, and its event will trigger a reconcile on fresh data.
    pub fn cache_is_behind<K: Resource<DynamicType = ()>>(&self, obj: &K) -> bool {
        let Some(rv) = obj.resource_version() else { return false };
        self.0.lock().map(|m| m.get(&key(obj)).is_some_and(|(based_on, _)| *based_on == rv)).unwrap_or(false)
    }

    /// How long ago our last write of `obj` was (if recent).
    fn since_last_write<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Option<Duration> {
        self.0.lock().ok()?.get(&key(obj)).map(|(_, at)| at.elapsed())
    }

    /// For writes allowed at most once per `every`: how long until `obj` may be written again
    /// (`None`: now).
    pub fn too_soon<K: Resource<DynamicType = ()>>(&self, obj: &K, every: Duration) -> Option<Duration> {
        every.checked_sub(self.since_last_write(obj)?).filter(|d| !d.is_zero())
    }

    /// Notes a write of `obj` (as it was before the write) made outside [`patch_status_if_changed`].
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        if let (Some(rv), Ok(mut m)) = (obj.resource_version(), self.0.lock()) {
            let now = Instant::now();
            if m.len() >= PRUNE_ABOVE {
                m.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
            }
            m.insert(key(obj), (rv, now));
        }
    }
}

/// Server-side applies `status` to the object's status subresource if it differs from `current`.
/// The write carries the resourceVersion the decision was based on, so a decision made on a stale
/// cache fails with a conflict (and is retried on fresh data) instead of overwriting newer status.
/// Returns whether a write was made.
pub async fn patch_status_if_changed<K, S>(
    api: &Api<K>,
    own: &OwnWrites,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    apply_status(api, own, obj, status).await?;
    Ok(true)
}

/// Server-side applies `status` to the object's status subresource, based on the resourceVersion
/// of `obj` (see [`patch_status_if_changed`]); the object as written.
pub async fn apply_status<K, S>(api: &Api<K>, own: &OwnWrites, obj: &K, status: &S) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": status,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch_status(&obj.name_any(), &pp, &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Status { what: format!("{} {}", K::kind(&()), obj.name_any()), source })?;
    // A write the server found to change nothing keeps the resourceVersion: no watch event will
    // follow, so the cache is not behind and must not be waited for.
    if written.resource_version() != obj.resource_version() {
        own.wrote(obj);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Release, ReleaseSpec};

    fn release(name: &str, rv: &str) -> Release {
        let mut r = Release::new(name, ReleaseSpec::default());
        r.metadata.namespace = Some("finance".into());
        r.metadata.resource_version = Some(rv.into());
        r
    }

    #[test]
    fn behind_until_the_cache_moves_past_our_write() {
        let own = OwnWrites::default();
        assert!(!own.cache_is_behind(&release("a", "10")), "nothing written yet");
        own.wrote(&release("a", "10"));
        assert!(own.cache_is_behind(&release("a", "10")), "the cache still holds what we replaced");
        assert!(!own.cache_is_behind(&release("a", "11")), "the cache has our write (or a newer one)");
        assert!(!own.cache_is_behind(&release("b", "10")), "another object");
        assert!(own.since_last_write(&release("a", "11")).is_some_and(|d| d < Duration::from_secs(5)));
        assert!(own.since_last_write(&release("b", "1")).is_none());
        assert!(own.too_soon(&release("a", "11"), Duration::from_secs(60)).is_some(), "written just now");
        assert!(own.too_soon(&release("a", "11"), Duration::ZERO).is_none(), "no interval");
        assert!(own.too_soon(&release("b", "1"), Duration::from_secs(60)).is_none(), "never written");
    }
}
