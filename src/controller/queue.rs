//! The queue in front of each controller. kube-runtime's controller runs what it is asked in the
//! order it was asked, so a Release woken by a new AppVersion would wait behind every status echo
//! and workload event of a thousand rollouts already under way. Here requests wait in two lanes,
//! each deduplicated, and are handed to the controller only while it has fewer than `limit` of
//! ours in hand: urgent ones (a new version to roll out) go first, and wait behind `limit` at
//! most. Timers are the queue's too: a reconcile says when it wants to run again ([`Next`]), and
//! the request joins the normal lane then (kube-runtime's own requeue timers would hand objects to
//! the controller past both lanes).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::channel::mpsc::UnboundedReceiver;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio_util::time::{DelayQueue, delay_queue};

/// What a reconcile asks for next, in place of kube-runtime's `Action` (whose timer the queue
/// cannot see).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Nothing until something changes.
    AwaitChange,
    /// Again after this long, unless something wakes the object first.
    After(Duration),
}

impl Next {
    pub const fn await_change() -> Self {
        Self::AwaitChange
    }

    pub const fn requeue(after: Duration) -> Self {
        Self::After(after)
    }
}

/// How soon a request is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// A new version to roll out: ahead of everything else.
    Urgent,
    Normal,
}

/// An object, by namespace and name (the controller reports its results without the kind).
type Key = (String, String);

fn key_of<K: Resource>(r: &ObjectRef<K>) -> Key {
    (r.namespace.clone().unwrap_or_default(), r.name.clone())
}

/// A request handed over longer ago than this, whose end was never reported (an error that names
/// no object), no longer takes a place.
const FORGET_AFTER: Duration = Duration::from_secs(300);

struct State<K: Resource> {
    urgent: VecDeque<ObjectRef<K>>,
    normal: VecDeque<ObjectRef<K>>,
    /// The lane each waiting request is in (a request in both lanes is taken from the first).
    waiting: HashMap<Key, Lane>,
    /// Handed to the controller, not yet finished.
    in_hand: HashMap<Key, Instant>,
    /// Requests asked for later, one per object (the earliest asked).
    timers: DelayQueue<ObjectRef<K>>,
    timer_of: HashMap<Key, (delay_queue::Key, Instant)>,
    limit: usize,
    waker: Option<Waker>,
}

/// Requests from `rx`, as the controller should take them (see the module's note).
pub struct Queue<K: Resource> {
    rx: UnboundedReceiver<(ObjectRef<K>, Lane)>,
    state: Arc<Mutex<State<K>>>,
}

/// The controller's side of the queue: what it has finished, and what it wants again later.
pub struct Handle<K: Resource>(Arc<Mutex<State<K>>>);

impl<K: Resource> Clone for Handle<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Resource> Handle<K> {
    /// The controller has finished a request (its result names the object).
    pub fn finished(&self, namespace: Option<&str>, name: &str) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.in_hand.remove(&(namespace.unwrap_or_default().to_string(), name.to_string()));
        s.wake();
    }

    /// Asks for `r` again as `next` says. An earlier timer for it stands: every request handed
    /// over cancels the object's timer, so one still set was asked for since by the same kind of
    /// decision and the sooner of the two is the safe one.
    pub fn again(&self, r: ObjectRef<K>, next: Next) {
        let Next::After(after) = next else { return };
        // The timer wheel panics past about two years; no controller needs a timer of more than a
        // day (it looks again then), so no decision's long wait can take the operator down.
        let after = after.min(LONGEST_TIMER);
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key_of(&r);
        let at = Instant::now() + after;
        if s.timer_of.get(&key).is_some_and(|(_, set)| *set <= at) {
            return;
        }
        if let Some((old, _)) = s.timer_of.remove(&key) {
            s.timers.try_remove(&old);
        }
        let timer = s.timers.insert(r, after);
        s.timer_of.insert(key, (timer, at));
        // The queue's poll registers the new deadline.
        s.wake();
    }
}

/// The longest timer a reconcile may set (see [`Handle::again`]).
pub const LONGEST_TIMER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl<K: Resource> Queue<K> {
    pub fn new(rx: UnboundedReceiver<(ObjectRef<K>, Lane)>, limit: usize) -> (Self, Handle<K>) {
        let state = Arc::new(Mutex::new(State {
            urgent: VecDeque::new(),
            normal: VecDeque::new(),
            waiting: HashMap::new(),
            in_hand: HashMap::new(),
            timers: DelayQueue::new(),
            timer_of: HashMap::new(),
            limit: limit.max(1),
            waker: None,
        }));
        (Self { rx, state: state.clone() }, Handle(state))
    }
}

impl<K: Resource> State<K> {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Timers due join the normal lane.
    fn poll_timers(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(due)) = self.timers.poll_expired(cx) {
            let r = due.into_inner();
            self.timer_of.remove(&key_of(&r));
            self.push(r, Lane::Normal);
        }
    }

    /// Handed over: the reconcile decides anew when it wants the object again.
    fn cancel_timer(&mut self, key: &Key) {
        if let Some((timer, _)) = self.timer_of.remove(key) {
            self.timers.try_remove(&timer);
        }
    }

    fn push(&mut self, r: ObjectRef<K>, lane: Lane) {
        let key = key_of(&r);
        match (self.waiting.get(&key).copied(), lane) {
            (Some(Lane::Urgent), _) | (Some(Lane::Normal), Lane::Normal) => {}
            (_, Lane::Urgent) | (None, Lane::Normal) => {
                self.waiting.insert(key, lane);
                self.lane(lane).push_back(r);
            }
        }
    }

    fn lane(&mut self, lane: Lane) -> &mut VecDeque<ObjectRef<K>> {
        match lane {
            Lane::Urgent => &mut self.urgent,
            Lane::Normal => &mut self.normal,
        }
    }

    /// The next request to hand over, urgent first (entries moved to the urgent lane are
    /// skipped in the normal one). A request for an object in the controller's hands waits in its
    /// lane until that one is finished: handed over again, the controller would run it after the
    /// first, outside the count of what it has in hand.
    fn pop(&mut self) -> Option<ObjectRef<K>> {
        let lanes = [Lane::Urgent, Lane::Normal];
        for lane in lanes {
            let mut held_back = Vec::new();
            let mut found = None;
            loop {
                let Some(r) = self.lane(lane).pop_front() else { break };
                let key = key_of(&r);
                if self.waiting.get(&key) != Some(&lane) {
                    continue;
                }
                if self.in_hand.contains_key(&key) {
                    held_back.push(r);
                    continue;
                }
                self.waiting.remove(&key);
                found = Some(r);
                break;
            }
            let queue = self.lane(lane);
            for r in held_back.into_iter().rev() {
                queue.push_front(r);
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn full(&mut self) -> bool {
        // Cheap: at most `limit` entries (a request held back for one of them waits on it too).
        let now = Instant::now();
        self.in_hand.retain(|_, at| now.duration_since(*at) < FORGET_AFTER);
        self.in_hand.len() >= self.limit
    }
}

impl<K: Resource> Stream for Queue<K> {
    type Item = ObjectRef<K>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut s = this.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Everything asked so far joins its lane (deduplicated there).
        let mut closed = false;
        loop {
            match Pin::new(&mut this.rx).poll_next(cx) {
                Poll::Ready(Some((r, lane))) => s.push(r, lane),
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        s.poll_timers(cx);
        if s.full() {
            // Woken when the controller finishes one of ours.
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match s.pop() {
            Some(r) => {
                let key = key_of(&r);
                s.cancel_timer(&key);
                s.in_hand.insert(key, Instant::now());
                Poll::Ready(Some(r))
            }
            // Timers still set are dropped with the controller.
            None if closed => Poll::Ready(None),
            None => {
                // Also woken when a request in hand finishes: one held back for it may go then.
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use futures::channel::mpsc;

    use super::*;
    use crate::api::Release;

    fn r(name: &str) -> ObjectRef<Release> {
        ObjectRef::new(name).within("fin")
    }

    #[tokio::test]
    async fn urgent_requests_go_first_and_no_more_than_the_limit_is_in_hand() {
        let (tx, rx) = mpsc::unbounded();
        let (mut q, done) = Queue::new(rx, 2);
        for n in ["a", "b", "c", "a", "d"] {
            tx.unbounded_send((r(n), Lane::Normal)).unwrap();
        }
        tx.unbounded_send((r("new"), Lane::Urgent)).unwrap();
        // "c" asked again as urgent: it moves ahead (and is not handed over twice).
        tx.unbounded_send((r("c"), Lane::Urgent)).unwrap();
        assert_eq!(q.next().await.map(|r| r.name), Some("new".into()));
        assert_eq!(q.next().await.map(|r| r.name), Some("c".into()));
        // Two in hand: nothing more until one is finished.
        assert!(futures::poll!(q.next()).is_pending());
        done.finished(Some("fin"), "new");
        assert_eq!(q.next().await.map(|r| r.name), Some("a".into()), "a, asked twice, once");
        done.finished(Some("fin"), "c");
        done.finished(Some("fin"), "a");
        let rest: Vec<String> =
            [q.next().await, q.next().await].into_iter().flatten().map(|r| r.name).collect();
        assert_eq!(rest, vec!["b", "d"]);
        drop(tx);
        done.finished(Some("fin"), "b");
        done.finished(Some("fin"), "d");
        assert!(q.next().await.is_none(), "ends once its senders are gone and it is empty");
    }

    #[tokio::test]
    async fn a_request_for_an_object_in_hand_waits_until_it_is_finished() {
        let (tx, rx) = mpsc::unbounded();
        let (mut q, done) = Queue::new(rx, 4);
        tx.unbounded_send((r("a"), Lane::Normal)).unwrap();
        assert_eq!(q.next().await.map(|r| r.name), Some("a".into()));
        tx.unbounded_send((r("a"), Lane::Urgent)).unwrap();
        tx.unbounded_send((r("b"), Lane::Normal)).unwrap();
        assert_eq!(q.next().await.map(|r| r.name), Some("b".into()), "a waits: it is in hand");
        // Nothing to hand over now; the end of "a" must wake whoever polls (the controller).
        struct Count(std::sync::atomic::AtomicUsize);
        impl futures::task::ArcWake for Count {
            fn wake_by_ref(c: &Arc<Self>) {
                c.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(0.into()));
        let waker = futures::task::waker(count.clone());
        assert!(Pin::new(&mut q).poll_next(&mut Context::from_waker(&waker)).is_pending());
        done.finished(Some("fin"), "a");
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1, "woken");
        assert_eq!(q.next().await.map(|r| r.name), Some("a".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn timers_join_the_normal_lane_when_due_once_and_never_after_a_hand_over() {
        let (tx, rx) = mpsc::unbounded();
        let (mut q, handle) = Queue::new(rx, 4);
        handle.again(r("later"), Next::requeue(Duration::from_secs(10)));
        // The sooner of two timers for one object stands, and it fires once.
        handle.again(r("later"), Next::requeue(Duration::from_secs(2)));
        handle.again(r("later"), Next::requeue(Duration::from_secs(30)));
        handle.again(r("cancelled"), Next::requeue(Duration::from_secs(3)));
        handle.again(r("never"), Next::await_change());
        tokio::time::advance(Duration::from_millis(1_900)).await;
        assert!(futures::poll!(q.next()).is_pending(), "nothing due yet");
        // Handed over before its timer: the reconcile decides anew, the old timer is gone.
        tx.unbounded_send((r("cancelled"), Lane::Normal)).unwrap();
        assert_eq!(q.next().await.map(|r| r.name), Some("cancelled".into()));
        done_all(&handle, &["cancelled"]);
        tokio::time::advance(Duration::from_millis(200)).await;
        // Due now, but a new version to roll out still goes first.
        tx.unbounded_send((r("new"), Lane::Urgent)).unwrap();
        assert_eq!(q.next().await.map(|r| r.name), Some("new".into()));
        assert_eq!(q.next().await.map(|r| r.name), Some("later".into()));
        done_all(&handle, &["new", "later"]);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(futures::poll!(q.next()).is_pending(), "each timer fired once at most");
    }

    fn done_all(handle: &Handle<Release>, names: &[&str]) {
        for n in names {
            handle.finished(Some("fin"), n);
        }
    }
}
