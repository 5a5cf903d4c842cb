//! Writing audit records into Ledgers (see [`crate::api::Ledger`]): one merge patch per record
//! (adding its key; nothing read first), the Ledger created by the first record of its month.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tracing::warn;

use super::error::{Error, Result};
use crate::api::{FIELD_MANAGER, Ledger, LedgerSpec, MAX_PARTS, MONTH_LABEL, Record, labels, ledger_name};

/// What this process has recorded of objects it reads on every reconcile (Approvals, by uid),
/// so that the steady state writes nothing. A restart records them again: the same keys, so the
/// same records (and no change on the server).
#[derive(Default)]
pub struct Recorded(Mutex<RecordedSet>);

#[derive(Default)]
pub struct RecordedSet {
    uids: HashSet<String>,
    /// Past this many, the uids of Approvals gone are dropped (it doubles when most are live, so
    /// that pruning costs a scan once per as many inserts as there are Approvals).
    prune_above: usize,
}

impl Recorded {
    pub fn contains(&self, uid: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).uids.contains(uid)
    }

    /// Adds `uids`; grown past its bound, keeps only those `live` still lists (the set holds
    /// what exists, not all that ever did).
    pub fn insert(&self, uids: impl IntoIterator<Item = String>, live: impl FnOnce() -> HashSet<String>) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.uids.extend(uids);
        if set.uids.len() > set.prune_above.max(RECORDED_PRUNE_ABOVE) {
            let live = live();
            set.uids.retain(|uid| live.contains(uid));
            set.prune_above = 2 * set.uids.len();
        }
    }
}

/// How many uids [`Recorded`] holds at least before it drops those of Approvals gone.
const RECORDED_PRUNE_ABOVE: usize = 4096;

/// Where records go: one app in one Environment of a pipeline namespace.
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub environment: &'a str,
    pub app: &'a str,
}

/// Where records are written: the Ledgers the client reaches, or nowhere (`--audit-records=false`).
#[derive(Clone)]
pub struct Writer(Option<Client>);

impl Writer {
    pub fn new(client: &Client, enabled: bool) -> Self {
        Self(enabled.then(|| client.clone()))
    }
}

/// Writes `records`. A record already written (the same key) stays as it was: only trusted
/// writers may write Ledgers (the `tuskfish-ledger-writers` policy), so the first write is ours.
/// A full Ledger (records or bytes) spills into its next part. Nothing, with `--audit-records=false`.
pub async fn write(writer: &Writer, at: &Subject<'_>, records: Vec<Record>) -> Result<()> {
    let Some(client) = writer.0.as_ref() else { return Ok(()) };
    let api: Api<Ledger> = Api::namespaced(client.clone(), at.namespace);
    for record in records {
        let (month, key) = (record.month(), record.key());
        let patch = serde_json::json!({ "spec": { "records": { &key: &record } } });
        // Parts known full are not tried again (a full month would cost up to 50 writes a retry).
        let base = (at.namespace.to_string(), ledger_name(at.environment, at.app, &month, 1));
        let mut part = first_with_room(&base);
        loop {
            let name = ledger_name(at.environment, at.app, &month, part);
            let failed = |source| Error::Record { what: format!("{key} in Ledger {name}"), source };
            let this = (at.namespace.to_string(), name.clone());
            // One request a record: a Ledger this process has seen gets the key added; one it has
            // not is created with it (taken by someone else: the key is added to theirs).
            let added = if KNOWN.contains(&this) {
                match add(&api, &name, &patch).await {
                    // Deleted since (the retention, an admin): made again below, on the next turn.
                    Err(kube::Error::Api(s)) if s.code == 404 && names_the_object(&s) => {
                        KNOWN.forget(&this);
                        continue;
                    }
                    other => other,
                }
            } else {
                let ledger = new_ledger(at, &name, &month, &key, record.clone());
                let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                match api.create(&params, &ledger).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => add(&api, &name, &patch).await,
                    // The whole pipeline namespace is being deleted, its Ledgers with it: nothing
                    // can be recorded there any more, and waiting would keep its Releases (and so
                    // the namespace) from ever going.
                    Err(kube::Error::Api(s)) if terminating(&s) => {
                        warn!(namespace = at.namespace, record = %key, "not recorded: the pipeline namespace is being deleted");
                        return Ok(());
                    }
                    Err(e) => Err(e),
                }
            };
            match added {
                Ok(()) => {
                    KNOWN.insert(this);
                    break;
                }
                Err(e) if full(&e) && part < MAX_PARTS => {
                    KNOWN.insert(this);
                    part += 1;
                    note_full(base.clone(), part);
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }
    Ok(())
}

/// The Ledgers this process has written to (so it adds a key, not creates one first). Bounded:
/// past [`KNOWN_AT_MOST`] it starts again empty (each then costs one create refused, once).
static KNOWN: Known = Known(std::sync::LazyLock::new(Mutex::default));
const KNOWN_AT_MOST: usize = 65_536;

struct Known(std::sync::LazyLock<Mutex<HashSet<(String, String)>>>);

impl Known {
    fn contains(&self, ledger: &(String, String)) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(ledger)
    }

    fn insert(&self, ledger: (String, String)) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= KNOWN_AT_MOST {
            set.clear();
        }
        set.insert(ledger);
    }

    fn forget(&self, ledger: &(String, String)) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(ledger);
    }
}

/// The first part of each Ledger-month found with room, when part 1 is full: per process, for
/// the few months that fill.
static ROOM_FROM: std::sync::LazyLock<Mutex<HashMap<(String, String), u32>>> =
    std::sync::LazyLock::new(Mutex::default);

fn first_with_room(base: &(String, String)) -> u32 {
    ROOM_FROM.lock().unwrap_or_else(PoisonError::into_inner).get(base).copied().unwrap_or(1)
}

fn note_full(base: (String, String), from: u32) {
    let mut m = ROOM_FROM.lock().unwrap_or_else(PoisonError::into_inner);
    let at = m.entry(base).or_insert(from);
    *at = (*at).max(from);
}

/// Adds one record's key to Ledger `name` (written before: done, see [`write`]).
async fn add(api: &Api<Ledger>, name: &str, patch: &serde_json::Value) -> Result<(), kube::Error> {
    match api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
        Err(e) if already_written(&e) => Ok(()),
        other => other.map(drop),
    }
}

/// The API server refused to change a record that exists: it was written before (a retry).
fn already_written(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("cannot be changed once written"))
}

/// The Ledger holds as many records (`maxProperties`) or bytes (etcd's bound on one object) as
/// it may.
fn full(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (s.code == 422 && s.message.contains("Too many"))
        || s.code == 413
        || s.message.contains("too large"))
}

/// A valid label value: at most 63 of `[A-Za-z0-9._-]`, beginning and ending alphanumeric.
fn is_label_value(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The API server refuses new objects in a namespace being deleted.
fn terminating(s: &kube::core::Status) -> bool {
    let cause =
        s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
    s.code == 403 && (cause || s.message.contains("because it is being terminated"))
}

/// A 404 about the Ledger itself, not about the kind (a missing CRD answers 404 too).
fn names_the_object(s: &kube::core::Status) -> bool {
    s.details.as_ref().is_some_and(|d| !d.name.is_empty())
}

fn new_ledger(at: &Subject<'_>, name: &str, month: &str, key: &str, record: Record) -> Ledger {
    let mut labels = BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string()),
        (MONTH_LABEL.to_string(), month.to_string()),
    ]);
    // Selectable by app and Environment where their names are label values (not "every", not an
    // Environment name longer than a label value may be).
    for (key, value) in [(labels::NAME, at.app), (labels::ENVIRONMENT, at.environment)] {
        if is_label_value(value) {
            labels.insert(key.to_string(), value.to_string());
        }
    }
    let mut ledger = Ledger::new(
        name,
        LedgerSpec {
            environment: at.environment.to_string(),
            app: at.app.to_string(),
            month: month.to_string(),
            records: BTreeMap::from([(key.to_string(), record)]),
        },
    );
    ledger.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(at.namespace.to_string()),
        labels: Some(labels),
        ..Default::default()
    };
    ledger
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_set_lets_go_of_approvals_gone_once_it_grows() {
        let r = Recorded::default();
        let live = || (0..10).map(|i| i.to_string()).collect::<HashSet<_>>();
        r.insert((0..100).map(|i| i.to_string()), live);
        assert!(r.contains("99"), "small: nothing dropped");
        r.insert((100..=RECORDED_PRUNE_ABOVE).map(|i| i.to_string()), live);
        assert!(r.contains("5") && !r.contains("99") && !r.contains("4000"));
    }
}
