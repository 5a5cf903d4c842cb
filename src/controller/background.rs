//! Work that may take long — pulling and rendering a chart — runs as a task of its own, never
//! inside a reconcile worker: a tenant whose charts hang until Helm's time limit then parks its
//! own tasks (in its pipeline's queue for Helm), not the workers every other tenant needs. The
//! reconcile that asked returns at once and is woken when the result is there.
//!
//! Kept in memory only: after a restart the work is simply asked for again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::task::AbortHandle;

use super::triggers::Trigger;

/// One object's work: what it is for (`key`), and its result once it has one.
struct Slot<T> {
    key: String,
    result: Option<T>,
    task: AbortHandle,
}

type Slots<K, T> = Arc<Mutex<HashMap<ObjectRef<K>, Slot<T>>>>;

/// At most one piece of work per object at a time, each woken through `wake` when it ends.
pub struct Background<K: Resource<DynamicType = ()>, T> {
    slots: Slots<K, T>,
    /// `None`: nobody would be woken, so the work is awaited in place (the CLI, unit tests).
    wake: Option<Trigger<K>>,
}

impl<K, T> Background<K, T>
where
    K: Resource<DynamicType = ()> + 'static,
    T: Send + 'static,
{
    pub fn new(wake: Option<Trigger<K>>) -> Self {
        Self { slots: Arc::default(), wake }
    }

    /// The result of work `key` for `object`, once it has one (taken: asking again starts it
    /// again); `None` while it runs, and `object` is woken when it ends. Work for another key
    /// stops the older work (its input changed: its result would be of no use).
    pub async fn result<F>(&self, object: ObjectRef<K>, key: &str, work: impl FnOnce() -> F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let Some(wake) = self.wake.clone() else { return Some(work().await) };
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get_mut(&object) {
            Some(slot) if slot.key == key => {
                if slot.result.is_some() {
                    return slots.remove(&object).and_then(|s| s.result);
                }
                return None;
            }
            Some(older) => older.task.abort(),
            None => {}
        }
        let (done, owner, key_done) = (self.slots.clone(), object.clone(), key.to_string());
        let fut = work();
        let task = tokio::spawn(async move {
            let result = fut.await;
            {
                let mut slots = done.lock().unwrap_or_else(PoisonError::into_inner);
                // Stopped for newer work meanwhile: that work's slot is not this one's to fill.
                match slots.get_mut(&owner) {
                    Some(slot) if slot.key == key_done => slot.result = Some(result),
                    _ => return,
                }
            }
            wake.send(owner);
        });
        slots.insert(object, Slot { key: key.to_string(), result: None, task: task.abort_handle() });
        None
    }

    /// Stops and forgets all work: the operator (or the shard) that asked for it stops, and what
    /// the work would write afterwards (a kept chart output) is the next holder's to write.
    pub fn stop_all(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.drain().for_each(|(_, slot)| slot.task.abort());
    }

    /// Stops and forgets the work of an object that is gone.
    pub fn forget(&self, object: &ObjectRef<K>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.remove(object) {
            slot.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Release;
    use crate::controller::queue::Lane;
    use futures::StreamExt;

    type Woken = futures::channel::mpsc::UnboundedReceiver<(ObjectRef<Release>, Lane)>;

    fn background() -> (Background<Release, u32>, Woken) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let metrics = crate::telemetry::SharedMetrics::default();
        (Background::new(Some(Trigger::new(tx, &metrics))), rx)
    }

    #[tokio::test]
    async fn work_runs_off_the_caller_and_wakes_it_with_the_result() {
        let (bg, mut woken) = background();
        let r = ObjectRef::<Release>::new("a").within("ns");
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let first = bg.result(r.clone(), "k1", || async move { gate.await.map_or(0, |()| 7) }).await;
        assert_eq!(first, None, "the caller does not wait for the work");
        assert_eq!(
            bg.result(r.clone(), "k1", || async { 99 }).await,
            None,
            "asked again: still running, not run twice"
        );
        go.send(()).unwrap();
        assert_eq!(woken.next().await, Some((r.clone(), Lane::Normal)));
        assert_eq!(bg.result(r.clone(), "k1", || async { 99 }).await, Some(7));
        assert_eq!(bg.result(r, "k1", || async { 5 }).await, None, "a taken result is not served twice");
    }

    #[tokio::test]
    async fn newer_work_stops_the_older() {
        let (bg, mut woken) = background();
        let r = ObjectRef::<Release>::new("a").within("ns");
        assert_eq!(bg.result(r.clone(), "old", std::future::pending::<u32>).await, None);
        assert_eq!(bg.result(r.clone(), "new", || async { 2 }).await, None);
        assert_eq!(woken.next().await, Some((r.clone(), Lane::Normal)));
        assert_eq!(bg.result(r.clone(), "new", || async { 3 }).await, Some(2));
        bg.forget(&r);
        assert!(bg.slots.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_anyone_to_wake_the_work_is_awaited_in_place() {
        let bg: Background<Release, u32> = Background::new(None);
        assert_eq!(bg.result(ObjectRef::new("a").within("ns"), "k", || async { 4 }).await, Some(4));
    }
}
