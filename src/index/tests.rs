//! The index against the obvious scan it replaces: after any sequence of watch events its lookups
//! equal a filter over the objects that exist, and the candidates it wakes include every Release
//! `plan::peers::must_look` would wake.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::api::{
    AppVersionSpec, AppVersionStatus, ApprovalSpec, Dependency, HistoryEntry, PromoteFrom, ReleaseSpec,
    ReleaseStatus, RolloutResult,
};
use crate::plan::peers::must_look;

const NS: [&str; 2] = ["finance", "other"];
const APPS: [&str; 3] = ["payments", "ledger", "db"];
const ENVS: [&str; 3] = ["dev", "test", "prod"];
const VERSIONS: [&str; 4] = ["1.3.9", "1.3.10", "1.4.0", "2.0.0"];

fn release(ns: &str, name: &str, app: &str, env: &str) -> Release {
    let mut r =
        Release::new(name, ReleaseSpec { app: app.into(), environment: env.into(), ..Default::default() });
    r.metadata.namespace = Some(ns.into());
    r
}

fn arb_release() -> impl Strategy<Value = Release> {
    (
        select(NS.to_vec()),
        0usize..6,
        select(APPS.to_vec()),
        select(ENVS.to_vec()),
        proptest::option::of(select(ENVS.to_vec())),
        proptest::collection::vec(select(APPS.to_vec()), 0..2),
        proptest::option::of(select(VERSIONS.to_vec())),
        proptest::option::of(select(vec![Phase::Healthy, Phase::Progressing, Phase::Degraded])),
        any::<bool>(),
    )
        .prop_map(|(ns, n, app, env, from, deps, current, phase, succeeded)| {
            let mut r = release(ns, &format!("r{n}"), app, env);
            r.spec.promote_from = from.map(|e| PromoteFrom { environment: e.into(), soak: None });
            r.spec.depends_on =
                deps.into_iter().map(|d| Dependency { app: d.into(), version: None }).collect();
            let history = match (current, succeeded) {
                (Some(v), true) => vec![HistoryEntry {
                    rollback_of: None,
                    version: v.into(),
                    started_at: Time(jiff::Timestamp::UNIX_EPOCH),
                    finished_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
                    result: RolloutResult::Succeeded,
                    message: None,
                    approvers: Vec::new(),
                    held: None,
                    requester: Default::default(),
                    generation: None,
                }],
                _ => Vec::new(),
            };
            r.status = Some(ReleaseStatus {
                current_version: current.map(String::from),
                desired_version: current.map(String::from),
                phase,
                history,
                ..Default::default()
            });
            r
        })
}

/// A watch event: an object as it is now, or the deletion of one.
#[derive(Clone, Debug)]
enum Event {
    Apply(Box<Release>),
    Delete(&'static str, usize),
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => arb_release().prop_map(|r| Event::Apply(Box::new(r))),
        1 => (select(NS.to_vec()), 0usize..6).prop_map(|(ns, n)| Event::Delete(ns, n)),
    ]
}

/// Plays the events into the index and into a plain map of what exists.
fn play(index: &PipelineIndex, model: &mut BTreeMap<Name, Release>, e: &Event) -> (Name, Option<PeerFacts>) {
    match e {
        Event::Apply(r) => {
            let key = key_of(r.as_ref());
            model.insert(key.clone(), (**r).clone());
            (key, index.apply_release(r))
        }
        Event::Delete(ns, n) => {
            let key = (ns.to_string(), format!("r{n}"));
            model.remove(&key);
            (key.clone(), index.delete_release(&key.0, &key.1))
        }
    }
}

fn scan(model: &BTreeMap<Name, Release>, ns: &str, pred: impl Fn(&Release) -> bool) -> Vec<String> {
    model.iter().filter(|((n, _), r)| n == ns && pred(r)).map(|((_, name), _)| name.clone()).collect()
}

proptest! {
    #[test]
    fn lookups_equal_a_scan(events in proptest::collection::vec(arb_event(), 0..40)) {
        let index = PipelineIndex::default();
        let mut model = BTreeMap::new();
        for e in &events {
            play(&index, &mut model, e);
        }
        for ns in NS {
            for app in APPS {
                prop_assert_eq!(index.releases_of_app(ns, app), scan(&model, ns, |r| r.spec.app == app));
                for env in ENVS {
                    prop_assert_eq!(
                        index.releases_of(ns, app, env),
                        scan(&model, ns, |r| r.spec.app == app && r.spec.environment == env)
                    );
                }
            }
            for env in ENVS {
                let here = scan(&model, ns, |r| r.spec.environment == env);
                prop_assert_eq!(&index.releases_in_environment(ns, env), &here);
                let healthy = scan(&model, ns, |r| {
                    r.spec.environment == env && r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy)
                });
                prop_assert_eq!(
                    index.environment_counts(ns, env),
                    Counts { releases: here.len() as i32, healthy: healthy.len() as i32 }
                );
            }
            prop_assert_eq!(index.members(ns).1, scan(&model, ns, |_| true));
        }
        // Nothing is kept for what no longer exists.
        let inner = index.read();
        prop_assert_eq!(inner.releases.len(), model.len());
        prop_assert!(inner.by_app_environment.keys() <= model.len());
        prop_assert!(inner.healthy.values().all(|n| *n > 0));
    }

    #[test]
    fn candidates_include_everyone_must_look_wakes(
        events in proptest::collection::vec(arb_event(), 0..30),
        last in arb_event(),
    ) {
        let index = PipelineIndex::default();
        let mut model = BTreeMap::new();
        for e in &events {
            play(&index, &mut model, e);
        }
        let (key, before) = play(&index, &mut model, &last);
        let after = model.get(&key).map(PeerFacts::of);
        let candidates = index.peer_candidates(&key.0, &key.1, before.as_ref(), after.as_ref());
        for ((ns, name), other) in &model {
            if ns == &key.0 && name != &key.1 && must_look(before.as_ref(), after.as_ref(), other) {
                prop_assert!(candidates.contains(name), "{name} must look but is not a candidate");
            }
        }
        prop_assert!(!candidates.contains(&key.1), "a Release is never its own peer");
    }
}

fn app_version(ns: &str, name: &str, app: &str, version: &str, published: bool) -> AppVersion {
    let spec = AppVersionSpec { app: app.into(), version: version.into(), ..Default::default() };
    let hash = spec_hash(&spec);
    let mut av = AppVersion::new(name, spec);
    av.metadata.namespace = Some(ns.into());
    av.status = published.then(|| AppVersionStatus { spec_hash: Some(hash), ..Default::default() });
    av
}

#[test]
fn app_versions_by_app_parsed_once() {
    let index = PipelineIndex::default();
    index.apply_app_version(&app_version("finance", "payments-1-3-9", "payments", "1.3.9", true));
    index.apply_app_version(&app_version("finance", "payments-1-3-10", "payments", " 1.3.10", true));
    index.apply_app_version(&app_version("finance", "payments-1-3-11", "payments", "1.3.11", false));
    index.apply_app_version(&app_version("finance", "payments-bad", "payments", "one", true));
    index.apply_app_version(&app_version("other", "payments-1-3-9", "payments", "1.3.9", true));
    let mut edited = app_version("finance", "ledger-1-0-0", "ledger", "1.0.0", true);
    edited.spec.changes = vec![Default::default()];
    index.apply_app_version(&edited);

    let v = |s: &str| semver::Version::parse(s).unwrap();
    let mut published = index.published_versions("finance", "payments");
    published.sort();
    assert_eq!(
        published,
        vec![(v("1.3.9"), "payments-1-3-9".to_string()), (v("1.3.10"), "payments-1-3-10".to_string())]
    );
    assert!(index.published_versions("finance", "ledger").is_empty(), "edited after publication");
    assert_eq!(index.app_versions_at("finance", "payments", &v("1.3.10")), vec!["payments-1-3-10"]);
    assert_eq!(index.app_versions_of("finance", "payments").len(), 4);

    // An AppVersion moved to another app is found under the new app only.
    index.apply_app_version(&app_version("finance", "payments-1-3-9", "ledger", "1.3.9", true));
    assert_eq!(index.app_versions_of("finance", "ledger"), vec!["ledger-1-0-0", "payments-1-3-9"]);
    assert_eq!(index.delete_app_version("finance", "payments-1-3-9").as_deref(), Some("ledger"));
    assert_eq!(index.app_versions_of("finance", "ledger"), vec!["ledger-1-0-0"]);
    assert_eq!(index.delete_app_version("finance", "payments-1-3-9"), None);
}

#[test]
fn approvals_by_release() {
    let index = PipelineIndex::default();
    let approval = |name: &str, release: &str| {
        let mut a = Approval::new(
            name,
            ApprovalSpec { release: release.into(), version: "1.3.10".into(), ..Default::default() },
        );
        a.metadata.namespace = Some("finance".into());
        a
    };
    index.apply_approval(&approval("cab-2057", "payments-prod"));
    index.apply_approval(&approval("cab-2058", "payments-prod"));
    index.apply_approval(&approval("cab-2059", "ledger-prod"));
    assert_eq!(index.approvals_for("finance", "payments-prod"), vec!["cab-2057", "cab-2058"]);
    index.apply_approval(&approval("cab-2058", "ledger-prod"));
    assert_eq!(index.approvals_for("finance", "payments-prod"), vec!["cab-2057"]);
    assert_eq!(index.delete_approval("finance", "cab-2059").as_deref(), Some("ledger-prod"));
    assert_eq!(index.approvals_for("finance", "ledger-prod"), vec!["cab-2058"]);
    assert!(index.approvals_for("other", "payments-prod").is_empty());
}

#[test]
fn namespaces_sizes_and_revisions() {
    let index = PipelineIndex::default();
    assert_eq!(index.revision("finance"), 0);
    let mut env = crate::render::tests::environment(&[]);
    env.metadata.name = Some("dev".into());
    index.apply_environment(&env);
    let r1 = index.revision("finance");
    index.apply_release(&release("finance", "payments-dev", "payments", "dev"));
    index.apply_release(&release("other", "payments-dev", "payments", "dev"));
    let r2 = index.revision("finance");
    assert!(r2 > r1);
    // An event that changes nothing the index keys by still changes what a page shows.
    index.apply_release(&release("finance", "payments-dev", "payments", "dev"));
    assert!(index.revision("finance") > r2);
    // Only namespaces with an Environment are pipelines.
    assert_eq!(
        index.pipelines(),
        vec![PipelineSize { namespace: "finance".into(), environments: 1, releases: 1 }]
    );
    index.delete_environment("finance", "dev");
    index.delete_release("finance", "payments-dev");
    assert!(index.pipelines().is_empty());
    assert_eq!(index.members("finance"), Default::default());
    assert_eq!(index.revision("finance"), 0);
}

#[test]
fn pipelines_under_a_prefix_are_a_range() {
    let index = PipelineIndex::default();
    for ns in ["team", "team-a", "team-a-b", "teamx", "tea", "zeta"] {
        let mut env = crate::render::tests::environment(&[]);
        (env.metadata.name, env.metadata.namespace) = (Some("dev".into()), Some(ns.into()));
        index.apply_environment(&env);
    }
    // Releases alone make no pipeline.
    index.apply_release(&release("team-r", "payments-dev", "payments", "dev"));
    assert_eq!(index.pipelines_under("team-"), vec!["team-a", "team-a-b"]);
    assert_eq!(index.pipelines_under("team-a-"), vec!["team-a-b"]);
    assert!(index.pipelines_under("nope-").is_empty());
}

#[test]
fn a_duplicate_is_seen_as_two_names() {
    let index = PipelineIndex::default();
    index.apply_release(&release("finance", "payments-prod", "payments", "prod"));
    index.apply_release(&release("finance", "payments-prod-2", "payments", "prod"));
    assert_eq!(index.releases_of("finance", "payments", "prod"), vec!["payments-prod", "payments-prod-2"]);
    // Moving one elsewhere ends the duplicate.
    index.apply_release(&release("finance", "payments-prod-2", "payments", "test"));
    assert_eq!(index.releases_of("finance", "payments", "prod"), vec!["payments-prod"]);
    assert_eq!(index.environment_counts("finance", "prod"), Counts { releases: 1, healthy: 0 });
}
