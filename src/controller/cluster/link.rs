//! Whether a cluster can be reached, as its watches see it. It is up once every watch has listed,
//! and down from a watch's first failure to reach or be served by the API server. A failed watch
//! resumes from where it was without listing again, so its coming back says nothing; while the
//! cluster is down, a probe (one small list, with backoff) finds out when it answers again.
//!
//! A stalled server (frozen, or a partition that keeps connections open) fails no watch: its
//! watches just go quiet. So while the cluster is up, the same probe runs every [`HEARTBEAT`] and
//! must answer within [`PROBE_WITHIN`]; one that does not takes the cluster down. A stall is
//! noticed within `HEARTBEAT + PROBE_WITHIN` (9 s), at the cost of one small read per cluster
//! every few seconds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use kube::runtime::watcher;

/// What the watches say of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Not every watch has listed yet, and none has failed: too early to say.
    Connecting,
    Up,
    /// A watch failed to reach the API server (its error), and it has not answered since.
    Down(String),
}

/// Asks the cluster something small; true when it answered.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// Waits between probes of a cluster that is down: from the first to the last, doubling.
const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(8);
/// How often a cluster that is up is asked whether it still answers.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a probe may wait for its answer.
pub const PROBE_WITHIN: Duration = Duration::from_secs(4);

#[derive(Default)]
struct State {
    /// Watches that have not listed once yet (their caches hold nothing to go by).
    unlisted: BTreeSet<&'static str>,
    /// A watch failed and the cluster has not answered since.
    failing: bool,
    error: Option<String>,
    probing: bool,
    /// When the cluster last answered (a list, a probe).
    last_answer: Option<jiff::Timestamp>,
    /// Since when the cluster could not be seen, while it cannot: from its last answer.
    down_from: Option<jiff::Timestamp>,
    /// The latest times the cluster could not be seen, oldest first (see [`OUTAGES_KEPT`]).
    outages: std::collections::VecDeque<(jiff::Timestamp, jiff::Timestamp)>,
}

/// How many past outages a link remembers: enough for any rollout's deadline on a flaky cluster.
const OUTAGES_KEPT: usize = 32;

impl State {
    fn reach(&self) -> Reach {
        match (&self.error, self.failing || !self.unlisted.is_empty()) {
            (_, false) => Reach::Up,
            (Some(e), true) => Reach::Down(e.clone()),
            (None, true) => Reach::Connecting,
        }
    }

    /// The cluster answered: failing no more (its error is kept until every watch has listed).
    fn answered(&mut self) {
        self.last_answer = Some(jiff::Timestamp::now());
        self.failing = false;
        if self.unlisted.is_empty() {
            self.error = None;
        }
    }
}

pub struct Link {
    state: Mutex<State>,
    /// Told when the cluster comes up or goes down (not when only the error's text changes).
    on_change: Box<dyn Fn(&Reach) + Send + Sync>,
    probe: Option<Probe>,
    me: Weak<Link>,
}

impl Link {
    pub fn new(on_change: impl Fn(&Reach) + Send + Sync + 'static, probe: Option<Probe>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            state: Mutex::default(),
            on_change: Box::new(on_change),
            probe,
            me: me.clone(),
        })
    }

    pub fn reach(&self) -> Reach {
        self.lock().reach()
    }

    /// The latest times the cluster could not be seen (from its last answer before it went down
    /// to its return), oldest first: not held against a rollout's deadline there.
    pub fn outages(&self) -> Vec<(jiff::Timestamp, jiff::Timestamp)> {
        self.lock().outages.iter().copied().collect()
    }

    /// The cluster answered a probe while up.
    fn heard(&self) {
        self.lock().last_answer = Some(jiff::Timestamp::now());
    }

    /// Starts asking the cluster, while it is up, whether it still answers (see [`HEARTBEAT`]);
    /// it stops once the link is gone.
    pub fn keep_alive(&self) {
        if let Some(p) = self.probe.clone() {
            tokio::spawn(heartbeat(self.me.clone(), p));
        }
    }

    /// A watch of `kind` starts: the cluster is not up before it has listed.
    pub fn expect(&self, kind: &'static str) {
        self.lock().unlisted.insert(kind);
    }

    /// The watch of `kind` has (re)listed: its cache is current, and the cluster answers.
    pub fn listed(&self, kind: &'static str) {
        self.update(|s| {
            s.unlisted.remove(kind);
            s.answered();
        });
    }

    /// The watch of `kind` failed. Only a failure to reach or be served by the API server counts;
    /// an expired resource version (410) is the watch's own business and it lists again at once.
    pub fn failed(&self, error: &watcher::Error) {
        if matches!(error, watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion) {
            return;
        }
        self.down(describe(error));
    }

    /// The cluster does not answer (`text`: how it fails): down until a probe gets an answer.
    fn down(&self, text: String) {
        let probe = self.update(|s| {
            s.failing = true;
            s.error = Some(text);
            !std::mem::replace(&mut s.probing, true)
        });
        if probe && let Some(p) = self.probe.clone() {
            tokio::spawn(probe_until_up(self.me.clone(), p));
        }
    }

    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let up = |r: &Reach| matches!(r, Reach::Up);
        let down = |r: &Reach| matches!(r, Reach::Down(_));
        let (before, after, out) = {
            let mut s = self.lock();
            let before = s.reach();
            let out = f(&mut s);
            let after = s.reach();
            // Recorded under the same guard: whoever sees the cluster up sees its outage too.
            let now = jiff::Timestamp::now();
            if up(&before) && !up(&after) {
                s.down_from = Some(s.last_answer.unwrap_or(now).min(now));
            }
            if !up(&before) && up(&after) {
                if let Some(from) = s.down_from.take() {
                    s.outages.push_back((from, now));
                    if s.outages.len() > OUTAGES_KEPT {
                        s.outages.pop_front();
                    }
                }
                s.last_answer = Some(now);
            }
            (before, after, out)
        };
        if up(&before) != up(&after) || down(&before) != down(&after) {
            (self.on_change)(&after);
        }
        out
    }

    // Only a set of names and an error text: a lock poisoned elsewhere still holds good data.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A watch failure as the Environment's condition says it. What an API server answered is not
/// quoted: a kubeconfig's `server` is a tenant's to choose, and a service there that is no API
/// server answers with a body of its own (kube quotes a body that is not JSON whole).
fn describe(error: &watcher::Error) -> String {
    let (doing, source) = match error {
        watcher::Error::InitialListFailed(e) => ("listing", e),
        watcher::Error::WatchStartFailed(e) => ("starting a watch", e),
        watcher::Error::WatchFailed(e) => ("watching", e),
        other => return other.to_string(),
    };
    match source {
        kube::Error::Api(status) => {
            format!("{doing}: the server answered HTTP {} ({})", status.code, status.reason)
        }
        other => format!("{doing}: {other}"),
    }
}

/// Probes until the cluster answers (or the link is gone: its cluster was let go).
async fn probe_until_up(link: Weak<Link>, probe: Probe) {
    let mut wait = PROBE_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        let Some(l) = link.upgrade() else { return };
        {
            // Checked and cleared under one guard: a watch failing right after sees `probing`
            // false and starts the next probe itself.
            let mut s = l.lock();
            if !s.failing {
                // A watch listed meanwhile: the cluster answered already.
                s.probing = false;
                return;
            }
        }
        if tokio::time::timeout(PROBE_WITHIN, probe()).await.unwrap_or(false) {
            l.update(|s| {
                s.answered();
                s.probing = false;
            });
            return;
        }
        wait = (wait * 2).min(PROBE_MAX);
    }
}

/// Asks a cluster that is up whether it still answers, every [`HEARTBEAT`], until the link is gone.
async fn heartbeat(link: Weak<Link>, probe: Probe) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let Some(l) = link.upgrade() else { return };
        // Down: the probes above ask until it answers; connecting: its watches have not listed.
        if l.reach() != Reach::Up {
            continue;
        }
        if tokio::time::timeout(PROBE_WITHIN, probe()).await.unwrap_or(false) {
            l.heard();
        } else {
            l.down(format!(
                "the API server did not answer within {PROBE_WITHIN:?} (stalled, or the network to it)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures::FutureExt;

    use super::*;

    fn refused() -> watcher::Error {
        watcher::Error::InitialListFailed(kube::Error::Service("connection refused".into()))
    }

    fn counting() -> (Arc<AtomicUsize>, impl Fn(&Reach) + Send + Sync + 'static) {
        let changes = Arc::new(AtomicUsize::new(0));
        let seen = changes.clone();
        (changes, move |_: &Reach| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn up_once_every_watch_listed_and_down_on_a_failure() {
        let (changes, on_change) = counting();
        let link = Link::new(on_change, None);
        link.expect("Deployment");
        link.expect("Namespace");
        assert_eq!(link.reach(), Reach::Connecting);
        link.listed("Deployment");
        assert_eq!(link.reach(), Reach::Connecting);
        link.listed("Namespace");
        assert_eq!(link.reach(), Reach::Up);
        link.failed(&refused());
        assert!(matches!(link.reach(), Reach::Down(e) if e.contains("connection refused")));
        // Another failure is no new change; a relist shows the cluster answers again.
        link.failed(&refused());
        link.listed("Namespace");
        assert_eq!(link.reach(), Reach::Up);
        assert_eq!(changes.load(Ordering::SeqCst), 3, "up, down, up");
    }

    #[test]
    fn a_first_connection_that_fails_is_down_until_every_watch_has_listed() {
        let link = Link::new(|_: &Reach| {}, None);
        link.expect("Deployment");
        link.expect("Namespace");
        link.failed(&refused());
        assert!(matches!(link.reach(), Reach::Down(_)));
        // The cluster answers, but one cache is still empty: not up yet.
        link.listed("Deployment");
        assert!(matches!(link.reach(), Reach::Down(_)));
        link.listed("Namespace");
        assert_eq!(link.reach(), Reach::Up);
    }

    #[test]
    fn an_expired_resource_version_is_not_an_outage() {
        let (changes, on_change) = counting();
        let link = Link::new(on_change, None);
        link.expect("Deployment");
        link.listed("Deployment");
        let gone = kube::core::Status {
            code: 410,
            ..kube::core::Status::failure("too old resource version", "Expired")
        };
        link.failed(&watcher::Error::WatchError(gone.boxed()));
        assert_eq!(link.reach(), Reach::Up);
        assert_eq!(changes.load(Ordering::SeqCst), 1, "up only");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_resumes_without_listing_is_noticed_by_the_probe() {
        let answers = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicUsize::new(0));
        let (a, n) = (answers.clone(), asked.clone());
        let probe: Probe = Arc::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
            let up = a.load(Ordering::SeqCst);
            async move { up }.boxed()
        });
        let (changes, on_change) = counting();
        let link = Link::new(on_change, Some(probe));
        link.expect("Deployment");
        link.listed("Deployment");
        link.failed(&refused());
        link.failed(&refused());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(matches!(link.reach(), Reach::Down(_)));
        let tries = asked.load(Ordering::SeqCst);
        assert!((2..=5).contains(&tries), "one probe at a time, backing off: {tries}");
        answers.store(true, Ordering::SeqCst);
        tokio::time::sleep(PROBE_MAX).await;
        assert_eq!(link.reach(), Reach::Up);
        assert_eq!(changes.load(Ordering::SeqCst), 3, "up, down, up");
        // Up again: no more probing.
        let tries = asked.load(Ordering::SeqCst);
        tokio::time::sleep(PROBE_MAX * 4).await;
        assert_eq!(asked.load(Ordering::SeqCst), tries);
    }

    /// A server that stops answering without failing a watch (frozen, partitioned) is taken
    /// down within a heartbeat and a probe's time, and comes back by itself once it answers.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_cluster_goes_down_within_a_heartbeat_and_comes_back() {
        let answering = Arc::new(AtomicBool::new(true));
        let a = answering.clone();
        let probe: Probe = Arc::new(move || {
            let a = a.clone();
            async move {
                if a.load(Ordering::SeqCst) {
                    true
                } else {
                    // Stalled: the answer never comes.
                    std::future::pending::<bool>().await
                }
            }
            .boxed()
        });
        let (_, on_change) = counting();
        let link = Link::new(on_change, Some(probe));
        link.expect("Deployment");
        link.listed("Deployment");
        link.keep_alive();
        tokio::time::sleep(HEARTBEAT * 3).await;
        assert_eq!(link.reach(), Reach::Up, "an answering cluster stays up");
        answering.store(false, Ordering::SeqCst);
        tokio::time::sleep(HEARTBEAT + PROBE_WITHIN + Duration::from_millis(10)).await;
        assert!(
            matches!(link.reach(), Reach::Down(ref e) if e.contains("did not answer")),
            "{:?}",
            link.reach()
        );
        answering.store(true, Ordering::SeqCst);
        tokio::time::sleep(PROBE_MAX + PROBE_WITHIN).await;
        assert_eq!(link.reach(), Reach::Up, "back once it answers");
    }
}
