//! Whether the live objects need an apply: a new desired state, or drift from it.

use std::time::Duration;

use crate::api::{Inventory, InventoryEntry, ReleaseStatus};
use crate::render::Rendered;

/// What the watch caches (or a confirming read) say about one applied object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    Missing,
    /// Present, with its `metadata.uid` and `metadata.generation` (if the kind has one).
    Present {
        uid: Option<String>,
        generation: Option<i64>,
    },
    /// A kind the operator does not watch; only an apply would tell.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply as a new rollout (first one, or the desired state changed).
    Rollout,
    /// Apply again to repair drift; says what drifted.
    Repair(String),
    /// Nothing to apply.
    UpToDate,
    /// This exact state was refused before; wait for the input to change.
    StillRejected,
}

/// Pure: compares the last applied inventory and the live objects with the rendered state.
/// The first and the longest wait before a rollout RBAC refused is checked again.
const REFUSED_RETRY_FIRST: Duration = Duration::from_secs(20);
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(600);

/// Pure: how long to wait before checking again a rollout RBAC has refused for `refused_for`
/// (since its `Degraded` condition turned True, `Forbidden`): as long again as it has been refused,
/// from 20 s to 10 min. Granting the rights is then noticed within a minute when done at once, and
/// a Release nobody fixes costs a check (a read and a dry run per object) every 10 minutes, not
/// every 20 s (a tenant with a thousand of them must not keep the API server busy).
pub fn refused_retry(refused_for: Duration) -> Duration {
    refused_for.clamp(REFUSED_RETRY_FIRST, REFUSED_RETRY_MAX)
}

pub fn decide(status: &ReleaseStatus, rendered: &Rendered, live: &[(InventoryEntry, Live)]) -> Decision {
    if status.rejected_hash.as_deref() == Some(rendered.hash.as_str()) {
        return Decision::StillRejected;
    }
    let Some(Inventory { namespace, hash, .. }) = status.inventory.as_ref() else {
        return Decision::Rollout;
    };
    if hash.as_deref() != Some(rendered.hash.as_str()) || namespace != &rendered.namespace {
        return Decision::Rollout;
    }
    for (entry, state) in live {
        let what = format!("{} {}", entry.kind, entry.name);
        match state {
            Live::Missing => return Decision::Repair(format!("{what} was deleted")),
            Live::Present { uid, .. } if entry.uid.is_some() && uid.is_some() && uid != &entry.uid => {
                return Decision::Repair(format!("{what} was replaced"));
            }
            Live::Present { generation: Some(g), .. }
                if entry.generation.is_some_and(|applied| *g > applied) =>
            {
                return Decision::Repair(format!("{what} was changed by someone else"));
            }
            _ => {}
        }
    }
    Decision::UpToDate
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_refused_rollout_is_checked_again_less_and_less_often() {
        let secs = |s| refused_retry(Duration::from_secs(s)).as_secs();
        assert_eq!(
            [secs(0), secs(19), secs(20), secs(45), secs(300), secs(86_400)],
            [20, 20, 20, 45, 300, 600]
        );
    }

    use super::*;

    fn entry(g: Option<i64>) -> InventoryEntry {
        InventoryEntry {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "a".into(),
            generation: g,
            uid: Some("u1".into()),
        }
    }

    fn present(uid: &str, g: Option<i64>) -> Live {
        Live::Present { uid: Some(uid.into()), generation: g }
    }

    fn status(hash: &str, ns: &str) -> ReleaseStatus {
        ReleaseStatus {
            inventory: Some(Inventory {
                namespace: ns.into(),
                hash: Some(hash.into()),
                objects: vec![entry(Some(2))],
                cluster: None,
            }),
            ..Default::default()
        }
    }

    fn rendered(hash: &str, ns: &str) -> Rendered {
        Rendered { namespace: ns.into(), objects: vec![], hash: hash.into() }
    }

    #[test]
    fn decision_table() {
        let live_ok = vec![(entry(Some(2)), present("u1", Some(2)))];
        let cases = vec![
            (ReleaseStatus::default(), rendered("h", "ns"), live_ok.clone(), "rollout"),
            (status("h", "ns"), rendered("h2", "ns"), live_ok.clone(), "rollout"),
            (status("h", "ns"), rendered("h", "other"), live_ok.clone(), "rollout"),
            (status("h", "ns"), rendered("h", "ns"), live_ok.clone(), "up-to-date"),
            (status("h", "ns"), rendered("h", "ns"), vec![(entry(Some(2)), Live::Unknown)], "up-to-date"),
            (
                status("h", "ns"),
                rendered("h", "ns"),
                vec![(entry(Some(2)), present("u1", None))],
                "up-to-date",
            ),
            (status("h", "ns"), rendered("h", "ns"), vec![(entry(Some(2)), Live::Missing)], "repair"),
            (
                status("h", "ns"),
                rendered("h", "ns"),
                vec![(entry(Some(2)), present("u1", Some(3)))],
                "repair",
            ),
            (
                status("h", "ns"),
                rendered("h", "ns"),
                vec![(entry(None), present("u1", Some(3)))],
                "up-to-date",
            ),
            (
                ReleaseStatus { rejected_hash: Some("h".into()), ..status("x", "ns") },
                rendered("h", "ns"),
                live_ok,
                "rejected",
            ),
            (
                status("h", "ns"),
                rendered("h", "ns"),
                vec![(entry(Some(2)), present("u2", Some(1)))],
                "repair",
            ),
        ];
        for (i, (s, r, live, want)) in cases.into_iter().enumerate() {
            let got = match decide(&s, &r, &live) {
                Decision::Rollout => "rollout",
                Decision::Repair(_) => "repair",
                Decision::UpToDate => "up-to-date",
                Decision::StillRejected => "rejected",
            };
            assert_eq!(got, want, "case {i}");
        }
    }
}
