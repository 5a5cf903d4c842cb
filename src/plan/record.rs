//! The status one reconcile step leaves behind: the outcome recorded over the previous status, the
//! version held back, the stories that run now and the forward ports still missing. Pure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::status::{set_forward_ports, set_held};
use super::{Held, Outcome, Target, changes, next_status, rollback};
use crate::api::{
    AppVersion, CHANGES_LIMIT, ClusterRef, Inventory, InventoryEntry, Release, ReleaseStatus, Requester,
    VerificationStatus,
};

/// The inventory to record *before* applying objects `entries` into `namespace` of `cluster`,
/// when they include objects the recorded one lacks: the recorded objects and the new ones, all
/// that may exist once the apply starts. A crash or restart between the apply and the status
/// write then leaves nothing the next prune cannot find. It has no hash: until the step's own
/// status records what was applied, the next decision is a rollout (applied again, pruned from
/// all of it), never "up to date" with objects of an apply that may have stopped half way.
/// `None`: nothing new (no write needed), or another place (one namespace per inventory: a move
/// is pruned from the old one after).
pub fn inventory_ahead(
    prev: Option<&Inventory>,
    entries: impl IntoIterator<Item = InventoryEntry>,
    namespace: &str,
    cluster: Option<&ClusterRef>,
) -> Option<Inventory> {
    let same = |a: &InventoryEntry, b: &InventoryEntry| {
        (&a.api_version, &a.kind, &a.name) == (&b.api_version, &b.kind, &b.name)
    };
    let mut objects = match prev {
        Some(p) if p.namespace != namespace || p.cluster.as_ref() != cluster => return None,
        Some(p) => p.objects.clone(),
        None => Vec::new(),
    };
    let known = objects.len();
    for e in entries {
        if !objects.iter().any(|o| same(o, &e)) {
            objects.push(e);
        }
    }
    (objects.len() > known).then(|| Inventory {
        namespace: namespace.to_string(),
        hash: None,
        objects,
        cluster: cluster.cloned(),
    })
}

/// What one reconcile step found or did, and when to look again without an event.
#[derive(Debug)]
pub struct Step {
    pub outcome: Outcome,
    pub held: Option<Held>,
    /// `None`: wait for a change.
    pub wake: Option<Duration>,
    /// The verification run this step looked at, when it did (see [`super::verification`]).
    pub verification: Option<VerificationStatus>,
}

/// What the publish step needs of a step once its outcome is recorded in the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Objects were applied or refused: the status is written even if it looks unchanged.
    pub acted: bool,
    /// The step started a rollout (not a drift repair).
    pub new_rollout: bool,
    pub wake: Option<Duration>,
}

/// The facts beyond the Release's own status that its status reports on.
pub struct StatusFacts<'a> {
    /// The app's AppVersions.
    pub app_versions: &'a [&'a AppVersion],
    /// The app's published versions (from the index: parsed and checked once per change).
    pub published: &'a [(semver::Version, String)],
    /// The app's Releases in every Environment, this one included.
    pub same_app: &'a [Arc<Release>],
}

/// The rollout a reconcile may start: which version, and what its history entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub version: String,
    pub note: Option<String>,
    /// The failed version this rollout goes back from, when it is a rollback.
    pub rollback_of: Option<String>,
    pub approvers: Vec<String>,
    pub requester: Requester,
}

impl Change {
    /// The change `target` makes over `prev` (the status of `rel`); `rolled_back`: the version this
    /// reconcile marked failed.
    pub fn of(rel: &Release, prev: &ReleaseStatus, target: &Target<'_>, rolled_back: Option<&str>) -> Self {
        let version = target.version.to_string();
        let rollback_of = rollback::of(prev, &version, rolled_back);
        // A rollback away from a vetoed version says why in the target's own notes.
        let vetoed = target.rollback_of.clone().filter(|_| rollback_of.is_none());
        let notes: Vec<String> = rollback_of
            .iter()
            .map(|failed| format!("rollback: {failed} failed"))
            .chain(target.notes.iter().cloned())
            .collect();
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let rollback_of = rollback_of.or(vetoed);
        // A rollback the operator decided on is nobody's request.
        let automatic = rollback_of.is_some() && rel.spec.rollback_to().is_none();
        let requester =
            if automatic { Requester::default() } else { super::audit::requester(rel, &prev.history) };
        Self { version, note, rollback_of, approvers: target.approvers.clone(), requester }
    }
}

/// The status after `step`, computed over `prev` (the status decided on).
pub fn release_status(
    prev: &ReleaseStatus,
    step: Step,
    generation: Option<i64>,
    facts: &StatusFacts<'_>,
    now: &Time,
) -> (ReleaseStatus, Written) {
    let Step { outcome, held, wake, verification } = step;
    let written = Written {
        acted: matches!(&outcome, Outcome::Applied { .. } | Outcome::Rejected { .. }),
        new_rollout: matches!(&outcome, Outcome::Applied { new_rollout: true, .. }),
        wake,
    };
    let mut status = next_status(prev, outcome, generation, now);
    if verification.is_some() {
        status.verification = verification;
    }
    set_held(&mut status, held.as_ref(), generation, now);
    status.changes = running_changes(&status, facts.app_versions);
    let gaps = forward_port_gaps(&status, facts);
    set_forward_ports(&mut status, &gaps, generation, now);
    (status, written)
}

fn current(status: &ReleaseStatus) -> Option<semver::Version> {
    status.current_version.as_deref().and_then(|v| semver::Version::parse(v).ok())
}

/// The change ids of the version that runs now (`app_versions` are of the Release's app).
fn running_changes(status: &ReleaseStatus, app_versions: &[&AppVersion]) -> Vec<String> {
    let Some(current) = current(status) else { return Vec::new() };
    app_versions
        .iter()
        .find(|a| semver::Version::parse(a.spec.version.trim()).is_ok_and(|v| v == current))
        .map(|a| changes::ids_of(a, CHANGES_LIMIT))
        .unwrap_or_default()
}

/// Changes shipped on older lines (in any Environment) that the newest version of this Release's
/// line lacks.
fn forward_port_gaps(status: &ReleaseStatus, facts: &StatusFacts<'_>) -> Vec<changes::Gap> {
    let Some(current) = current(status) else { return Vec::new() };
    let published: Vec<(semver::Version, &AppVersion)> = facts
        .published
        .iter()
        .filter_map(|(v, name)| {
            let av = facts.app_versions.iter().find(|a| a.metadata.name.as_deref() == Some(name.as_str()))?;
            Some((v.clone(), *av))
        })
        .collect();
    let shipped: Vec<changes::Shipped<'_>> = facts
        .same_app
        .iter()
        .filter_map(|r| {
            let v = r.status.as_ref()?.current_version.as_deref()?;
            Some(changes::Shipped {
                environment: &r.spec.environment,
                version: semver::Version::parse(v).ok()?,
            })
        })
        .collect();
    changes::forward_port_gaps(&current, &published, &shipped)
}

/// Of two timers, the one that fires first (`None`: no timer, wait for a change).
pub fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{find_condition, fixtures};
    use crate::plan::Health;

    /// What is recorded ahead of an apply: everything that may exist once it starts, and nothing
    /// (no write) when the apply brings nothing new or goes to another place.
    #[test]
    fn the_inventory_ahead_of_an_apply_holds_everything_that_may_exist() {
        let entry = |kind: &str, name: &str| InventoryEntry {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            generation: Some(1),
            uid: Some(format!("uid-{name}")),
        };
        let names = |inv: &Option<Inventory>| {
            inv.as_ref().map(|i| i.objects.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
        };
        let agent = ClusterRef { name: None, kube_config_secret_ref: None, agent: Some("prod-eu".into()) };
        let v1 = Inventory {
            namespace: "dev".into(),
            hash: Some("h1".into()),
            objects: vec![entry("ConfigMap", "a"), entry("ConfigMap", "b")],
            cluster: None,
        };
        let fresh = |names: &[&str]| {
            names
                .iter()
                .map(|n| InventoryEntry { generation: None, uid: None, ..entry("ConfigMap", n) })
                .collect::<Vec<_>>()
        };
        // v2 renders {a, c}: c may exist once the apply starts, b until the prune after it.
        let ahead = inventory_ahead(Some(&v1), fresh(&["a", "c"]), "dev", None);
        assert_eq!(names(&ahead), Some(vec!["a".into(), "b".into(), "c".into()]));
        let ahead = ahead.unwrap();
        assert_eq!(ahead.hash, None, "until the apply is recorded, the next decision is a rollout");
        assert_eq!(&ahead.objects[0], &entry("ConfigMap", "a"), "what was recorded stays as it was");
        // Nothing new: no write.
        assert_eq!(inventory_ahead(Some(&v1), fresh(&["b"]), "dev", None), None);
        assert_eq!(inventory_ahead(Some(&v1), Vec::new(), "dev", None), None);
        // Same name, another kind: new.
        let service = vec![InventoryEntry { kind: "Service".into(), ..fresh(&["a"])[0].clone() }];
        assert_eq!(names(&inventory_ahead(Some(&v1), service, "dev", None)).map(|n| n.len()), Some(3));
        // The first apply records what it is about to create.
        let first = inventory_ahead(None, fresh(&["a"]), "dev", Some(&agent)).unwrap();
        assert_eq!((first.hash, first.cluster, first.objects.len()), (None, Some(agent.clone()), 1));
        // Another namespace or cluster: one place per inventory, nothing recorded ahead.
        assert_eq!(inventory_ahead(Some(&v1), fresh(&["c"]), "prod", None), None);
        assert_eq!(inventory_ahead(Some(&v1), fresh(&["c"]), "dev", Some(&agent)), None);
    }

    #[test]
    fn earliest_timer_wins_and_none_means_wait() {
        let s = Duration::from_secs;
        let cases = [
            (None, None, None),
            (Some(s(3)), None, Some(s(3))),
            (None, Some(s(4)), Some(s(4))),
            (Some(s(5)), Some(s(2)), Some(s(2))),
        ];
        for (a, b, want) in cases {
            assert_eq!(earliest(a, b), want, "{a:?} {b:?}");
        }
    }

    #[test]
    fn a_healthy_step_records_the_running_stories_and_a_missing_forward_port() {
        let now = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let with =
            |name: &str, v: &str, ids: &[&str]| fixtures::app_version_with_changes(name, "pay", v, ids);
        let (old, new) = (with("pay-1-3-9", "1.3.9", &["FIN-1"]), with("pay-1-4-0", "1.4.0", &["FIN-2"]));
        let app_versions = [&old, &new];
        let published = [
            (semver::Version::new(1, 3, 9), "pay-1-3-9".to_string()),
            (semver::Version::new(1, 4, 0), "pay-1-4-0".to_string()),
        ];
        let prod = Arc::new(fixtures::release_running("pay-prod", "pay", "prod", "1.3.9"));
        let same_app = [prod];
        let prev = ReleaseStatus { desired_version: Some("1.4.0".into()), ..Default::default() };
        let step = Step {
            outcome: Outcome::Observed { health: Health::Healthy },
            held: None,
            wake: None,
            verification: None,
        };
        let facts = StatusFacts { app_versions: &app_versions, published: &published, same_app: &same_app };
        let (status, written) = release_status(&prev, step, Some(1), &facts, &now);
        assert_eq!(written, Written { acted: false, new_rollout: false, wake: None });
        assert_eq!(status.changes, vec!["FIN-2".to_string()]);
        let missing = find_condition(&status.conditions, "ForwardPortMissing").unwrap();
        assert_eq!((missing.status.as_str(), missing.reason.as_str()), ("True", "ChangesMissing"));
        assert!(missing.message.contains("FIN-1"), "{}", missing.message);
        let held = find_condition(&status.conditions, "Held").unwrap();
        assert_eq!(held.status, "False");
    }
}
