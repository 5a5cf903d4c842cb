//! Properties of the pure decisions over arbitrary input: which version a Release runs
//! (`select_target`), the gates (freeze windows, dependency cycles), version lines and the status
//! a step produces. The strategies are shared with the admission webhook's properties.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use proptest::sample::select;

use super::Blocked;
use super::gates::{FreezeEnd, active_until, dependency_cycle};
use super::status::{HISTORY_MESSAGE_LIMIT, Outcome, next_status};
use super::target::{Inputs, MAX_RECHECK, Mode, Target, matches_line, mode_of};
use super::{Health, auto_rollback, select_target, spec_hash};
use crate::api::{
    AppVersion, AppVersionStatus, Approval, ApprovalPolicy, ApprovalSpec, Condition, Dependency, Environment,
    EnvironmentStatus, FreezeWindow, HISTORY_LIMIT, HistoryEntry, Inventory, MESSAGE_LIMIT, Phase,
    PromoteFrom, Reason, Recurrence, Release, ReleaseStatus, RollbackSpec, RolloutResult, WeeklyWindow,
};
use crate::render::tests::{app_version, environment, release};

/// Version strings: mostly ones the pipeline uses, some random semver, some garbage.
pub(crate) fn version_text() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => select(vec!["1.3.9", "1.3.10", "1.3.11", "1.4.0-rc.1", "1.4.0", "2.0.0", " 1.3.10", "1.3.10+b7"])
            .prop_map(String::from),
        2 => (0u64..3, 0u64..6, 0u64..12, proptest::option::of("(rc|beta)\\.[0-9]")).prop_map(|(a, b, c, pre)| {
            pre.map_or_else(|| format!("{a}.{b}.{c}"), |p| format!("{a}.{b}.{c}-{p}"))
        }),
        1 => any::<String>(),
        1 => "[0-9.xv*^~<>=, +-]{0,12}",
    ]
}

/// Semver ranges: the shapes the book documents, and garbage.
pub(crate) fn range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(vec!["*", "~1.3", "^1", ">=1.4.0-0", ">=1.4.0, <2", "=1.3.9", "~2", ">=2.1", "1.3.x"])
            .prop_map(String::from),
        1 => any::<String>(),
        1 => "[0-9.x*^~<>=, |-]{0,12}",
    ]
}

pub(crate) fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["0s", "30m", "90s", "2h", "1d", "a while", "-5s", "18446744073709551615", "1e3s"])
            .prop_map(String::from),
        any::<u64>().prop_map(|n| format!("{n}s")),
        any::<String>(),
    ]
}

fn timestamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-4_000_000i64..4_000_000).prop_map(|s| sane(s).to_string()),
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?",
        1 => any::<String>(),
    ]
}

/// A time around the tests' "now", `offset` seconds away.
fn sane(offset: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + offset).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn hh_mm() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[0-2]?[0-9]:[0-6][0-9]", 1 => "[+-]?[0-9]{1,3}:?[0-9]{0,3}", 1 => any::<String>()]
}

pub(crate) fn freeze_window() -> impl Strategy<Value = FreezeWindow> {
    let day = prop_oneof![
        4 => select(vec!["Mon", "tue", "Wednesday", "THU", "Fri", "sat", "Sun"]).prop_map(String::from),
        1 => any::<String>(),
    ];
    let tz = prop_oneof![
        select(vec!["UTC", "Europe/Berlin", "America/St_Johns", "Pacific/Chatham", "Australia/Lord_Howe"])
            .prop_map(String::from),
        any::<String>(),
    ];
    let weekly = (proptest::collection::vec(day, 0..4), hh_mm(), hh_mm(), proptest::option::of(tz.clone()))
        .prop_map(|(days, from, to, time_zone)| WeeklyWindow { days, from, to, time_zone });
    let rule = prop_oneof![
        3 => select(vec![
            "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,-1",
            "FREQ=DAILY",
            "FREQ=WEEKLY;BYDAY=FR;INTERVAL=2",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=HOURLY;COUNT=3",
            "RRULE:FREQ=WEEKLY;UNTIL=20270101T000000Z",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ];
    let local = prop_oneof![
        3 => "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]",
        1 => any::<String>(),
    ];
    let length = prop_oneof![3 => "[0-9]{1,3}(m|h|d)", 1 => any::<String>()];
    let recurrence = (rule, local, length, proptest::option::of(tz.clone()))
        .prop_map(|(rule, start, duration, time_zone)| Recurrence { rule, start, duration, time_zone });
    (
        proptest::option::of(timestamp_text()),
        proptest::option::of(timestamp_text()),
        proptest::option::of(weekly),
        proptest::option::of(recurrence),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(start, end, weekly, recurrence, reason)| FreezeWindow {
            reason,
            start,
            end,
            weekly,
            recurrence,
            line_stop: false,
        })
}

fn ready_condition() -> Condition {
    Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "NamespaceOwned".into(),
        message: String::new(),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

pub(crate) fn env_strategy() -> impl Strategy<Value = Environment> {
    (
        proptest::bool::weighted(0.95),
        prop_oneof![3 => Just(None), 2 => range_text().prop_map(Some)],
        proptest::bool::weighted(0.3),
        prop_oneof![3 => Just(vec![]), 1 => proptest::collection::vec(freeze_window(), 1..3)],
    )
        .prop_map(|(ready, line, approval, freeze_windows)| {
            let mut env = environment(&[]);
            env.spec.version_line = line;
            env.spec.approval = approval.then_some(ApprovalPolicy::Required);
            env.spec.freeze_windows = freeze_windows;
            if ready {
                env.status = Some(EnvironmentStatus {
                    conditions: vec![ready_condition()],
                    namespace: Some(env.spec.namespace.clone()),
                    cluster: Some(crate::api::IN_CLUSTER.into()),
                    ..Default::default()
                });
            }
            env
        })
}

/// How far an AppVersion got: published, published and then edited, or not yet seen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Publish {
    Published,
    Modified,
    Unpublished,
}

pub(crate) fn app_versions() -> impl Strategy<Value = Vec<AppVersion>> {
    let one = (
        select(vec!["payments", "payments", "payments", "ledger"]),
        version_text(),
        prop_oneof![
            8 => Just(Publish::Published),
            1 => Just(Publish::Modified),
            1 => Just(Publish::Unpublished),
        ],
    )
        .prop_map(|(app, version, publish)| {
            let mut av = app_version(Some(Default::default()), vec![]);
            av.metadata.name = Some(format!("{app}-{}", version.len()));
            av.spec.app = app.into();
            av.spec.version = version;
            let hash = spec_hash(&av.spec);
            av.status = match publish {
                Publish::Published => Some(AppVersionStatus { spec_hash: Some(hash), ..Default::default() }),
                Publish::Modified => {
                    Some(AppVersionStatus { spec_hash: Some("0".repeat(32)), ..Default::default() })
                }
                Publish::Unpublished => None,
            };
            av
        });
    proptest::collection::vec(one, 0..10)
}

fn history_entry() -> impl Strategy<Value = HistoryEntry> {
    (
        version_text(),
        -100_000i64..100_000,
        select(vec![
            RolloutResult::Succeeded,
            RolloutResult::Failed,
            RolloutResult::Progressing,
            RolloutResult::Superseded,
        ]),
    )
        .prop_map(|(version, at, result)| HistoryEntry {
            rollback_of: None,
            version,
            started_at: Time(sane(at)),
            finished_at: Some(Time(sane(at))),
            result,
            message: None,
            approvers: Vec::new(),
            held: None,
            requester: Default::default(),
            generation: None,
        })
}

fn release_status() -> impl Strategy<Value = Option<ReleaseStatus>> {
    proptest::option::weighted(
        0.5,
        (
            proptest::option::of(version_text()),
            prop_oneof![2 => Just(vec![]), 1 => proptest::collection::vec(version_text(), 1..3)],
            proptest::collection::vec(history_entry(), 0..3),
            proptest::option::of(select(vec![
                Phase::Healthy,
                Phase::Degraded,
                Phase::Progressing,
                Phase::Pending,
            ])),
        ),
    )
    .prop_map(|s| {
        s.map(|(current_version, failed_versions, history, phase)| ReleaseStatus {
            current_version,
            failed_versions,
            history,
            phase,
            ..Default::default()
        })
    })
}

/// `(version, track, promoteFrom)`: mostly exactly one of them, as a valid spec has.
fn version_sources() -> impl Strategy<Value = (Option<String>, Option<String>, Option<Option<String>>)> {
    let soak = || proptest::option::of(duration_text());
    prop_oneof![
        3 => version_text().prop_map(|v| (Some(v), None, None)),
        3 => range_text().prop_map(|t| (None, Some(t), None)),
        3 => soak().prop_map(|s| (None, None, Some(s))),
        1 => (proptest::option::of(version_text()), proptest::option::of(range_text()), proptest::option::of(soak())),
    ]
}

pub(crate) fn release_strategy() -> impl Strategy<Value = Release> {
    let deps = proptest::collection::vec(
        (select(vec!["ledger", "db", "payments"]), proptest::option::of(range_text())),
        1..3,
    );
    (
        version_sources(),
        prop_oneof![
            8 => Just(None),
            1 => proptest::option::of(any::<bool>()).prop_map(|auto| Some(RollbackSpec { auto, to: None })),
            1 => version_text().prop_map(|to| Some(RollbackSpec { auto: None, to: Some(to) })),
        ],
        prop_oneof![3 => Just(vec![]), 1 => deps],
        release_status(),
    )
        .prop_map(|((version, track, promote), rollback, deps, status)| {
            let mut r = release();
            r.spec.version = version;
            r.spec.track = track;
            r.spec.promote_from = promote.map(|soak| PromoteFrom { environment: "dev".into(), soak });
            r.spec.rollback = rollback;
            r.spec.depends_on =
                deps.into_iter().map(|(app, version)| Dependency { app: app.to_string(), version }).collect();
            r.status = status;
            r
        })
}

/// Other Releases of the same Environment, with their dependencies (for cycles).
fn peers() -> impl Strategy<Value = Vec<Release>> {
    let one = (
        select(vec!["ledger", "db", "cache", "payments"]),
        proptest::collection::vec(select(vec!["ledger", "db", "cache", "payments"]), 0..3),
        proptest::option::of(version_text()),
        any::<bool>(),
    )
        .prop_map(|(app, deps, current, healthy)| {
            let mut r = release();
            // Never the Release under test's own name: the controller leaves it out of its peers.
            r.metadata.name = Some(format!("{app}-peer"));
            r.spec.app = app.into();
            r.spec.depends_on =
                deps.into_iter().map(|d| Dependency { app: d.into(), version: None }).collect();
            r.status = Some(ReleaseStatus {
                phase: Some(if healthy { Phase::Healthy } else { Phase::Progressing }),
                current_version: current,
                ..Default::default()
            });
            r
        });
    proptest::collection::vec(one, 0..4)
}

fn approvals() -> impl Strategy<Value = Vec<Approval>> {
    let one = (
        select(vec!["payments-prod", "other-prod", ""]),
        version_text(),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(rel, version, approver)| {
            Approval::new("a", ApprovalSpec { release: rel.into(), version, approver, ..Default::default() })
        });
    proptest::collection::vec(one, 0..3)
}

fn upstream() -> impl Strategy<Value = Option<Release>> {
    let healthy = (version_text(), 0i64..100_000).prop_map(|(v, ago)| {
        let at = Time(sane(-ago));
        ReleaseStatus {
            phase: Some(Phase::Healthy),
            current_version: Some(v.clone()),
            history: vec![HistoryEntry {
                rollback_of: None,
                version: v,
                started_at: at.clone(),
                finished_at: Some(at),
                result: RolloutResult::Succeeded,
                message: None,
                approvers: Vec::new(),
                held: None,
                requester: Default::default(),
                generation: None,
            }],
            ..Default::default()
        }
    });
    let status = prop_oneof![3 => healthy, 1 => release_status().prop_map(Option::unwrap_or_default)];
    proptest::option::of(status).prop_map(|s| {
        s.map(|status| {
            let mut r = release();
            r.spec.environment = "dev".into();
            r.status = Some(status);
            r
        })
    })
}

fn recheck_ok(d: Option<Duration>) -> bool {
    // The controller adds a second of slack and hands the sum to the runtime's clock.
    d.is_none_or(|d| d <= MAX_RECHECK && d.checked_add(Duration::from_secs(1)).is_some())
}

fn line_of(env: &Environment) -> Option<semver::VersionReq> {
    env.spec.version_line.as_deref().and_then(|l| semver::VersionReq::parse(l).ok())
}

/// What `select_target` promises about a target it returns.
fn check_target(inputs: &Inputs<'_>, env: &Environment, t: &Target<'_>) -> Result<(), TestCaseError> {
    let r = inputs.release;
    let status = r.status.clone().unwrap_or_default();
    let av = t.app_version;
    prop_assert_eq!(&av.spec.app, &r.spec.app, "an AppVersion of another app");
    let hash = av.status.as_ref().and_then(|s| s.spec_hash.clone());
    prop_assert_eq!(hash, Some(spec_hash(&av.spec)), "an unpublished or edited AppVersion");
    prop_assert_eq!(semver::Version::parse(av.spec.version.trim()).ok(), Some(t.version.clone()));
    prop_assert!(
        env.status.as_ref().is_some_and(|s| crate::api::is_true(&s.conditions, "Ready")),
        "a target in an Environment that is not Ready"
    );
    prop_assert!(recheck_ok(t.held.as_ref().and_then(|h| h.recheck_in)));
    let explicit_rollback = r.spec.rollback.as_ref().is_some_and(|rb| rb.to.is_some());
    let is_current = status.current_version.as_deref() == Some(t.version.to_string().as_str());
    if !explicit_rollback && !is_current {
        // A new version: inside the line, not one that failed here (unless a pin without
        // automatic rollback insists on it), and through the gates.
        if let Some(line) = line_of(env) {
            prop_assert!(matches_line(&line, &t.version), "{} outside the line {line}", t.version);
        }
        let failed = status.failed_versions.iter().any(|f| f == &t.version.to_string());
        let pinned = mode_of(r).is_ok_and(|m| m == Mode::Pinned);
        prop_assert!(!failed || (pinned && !auto_rollback(r)), "{} failed here before", t.version);
        if env.spec.approval == Some(ApprovalPolicy::Required) {
            prop_assert!(
                inputs.approvals.iter().any(|a| a.spec.release == "payments-prod"
                    && semver::Version::parse(a.spec.version.trim()).is_ok_and(|v| v == t.version)),
                "{} rolled out without an Approval",
                t.version
            );
        }
        // A Release that waits for others never goes ahead inside a cycle (one that depends on
        // nothing has nothing to wait for, even if another Release of its app is in a cycle).
        prop_assert!(
            r.spec.depends_on.is_empty() || dependency_cycle(r, &inputs.peers).is_none(),
            "rolled out inside a dependency cycle"
        );
    }
    Ok(())
}

fn check_blocked(b: &Blocked) -> Result<(), TestCaseError> {
    prop_assert!(!b.reason.as_str().is_empty() && !b.message.is_empty(), "{b:?}");
    prop_assert!(matches!(b.phase, Phase::Pending | Phase::Failed), "{b:?}");
    prop_assert!(recheck_ok(b.recheck_in), "{b:?}");
    Ok(())
}

proptest! {
    // Cheap (well under a millisecond each), and most cases stop early; many cases let enough of
    // them reach a target.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn select_target_keeps_its_promises(
        r in release_strategy(),
        env in prop_oneof![10 => env_strategy().prop_map(Some), 1 => Just(None)],
        avs in app_versions(),
        up in upstream(),
        approvals in approvals(),
        peers in peers(),
        now in -200_000i64..200_000,
    ) {
        let inputs = Inputs {
            release: &r,
            env: env.as_ref(),
            app_versions: avs.iter().collect(),
            upstream: up.iter().collect(),
            twins: vec![], product: Default::default(),
            approvals: approvals.iter().collect(),
            peers: peers.iter().collect(),
            now: sane(now),
        };
        match select_target(&inputs) {
            Ok(t) => {
                let env = env.as_ref();
                prop_assert!(env.is_some(), "a target without an Environment");
                if let Some(env) = env {
                    check_target(&inputs, env, &t)?;
                }
            }
            Err(b) => check_blocked(&b)?,
        }
    }

    #[test]
    fn long_soaks_and_freezes_never_set_timers_that_overflow(
        soak in prop_oneof![Just(u64::MAX), any::<u64>(), 0u64..100_000],
        healthy_for in 0i64..1000,
        current in any::<bool>(),
    ) {
        let mut avs = vec![app_version(Some(Default::default()), vec![]), app_version(Some(Default::default()), vec![])];
        avs[1].spec.version = "1.3.10".into();
        for av in &mut avs {
            av.status = Some(AppVersionStatus { spec_hash: Some(spec_hash(&av.spec)), ..Default::default() });
        }
        let mut r = release();
        r.spec.version = None;
        r.spec.promote_from = Some(PromoteFrom { environment: "dev".into(), soak: Some(format!("{soak}s")) });
        if current {
            r.status = Some(ReleaseStatus { current_version: Some("1.3.9".into()), ..Default::default() });
        }
        let now = sane(0);
        let finished = Time(sane(-healthy_for));
        let mut up = release();
        up.spec.environment = "dev".into();
        up.status = Some(ReleaseStatus {
            phase: Some(Phase::Healthy),
            current_version: Some("1.3.10".into()),
            history: vec![HistoryEntry { rollback_of: None, version: "1.3.10".into(), started_at: finished.clone(), finished_at: Some(finished), result: RolloutResult::Succeeded, message: None, approvers: Vec::new(), held: None, requester: Default::default(), generation: None }],
            ..Default::default()
        });
        let mut env = environment(&[]);
        env.status = Some(EnvironmentStatus { conditions: vec![ready_condition()], namespace: Some(env.spec.namespace.clone()), cluster: Some(crate::api::IN_CLUSTER.into()), ..Default::default() });
        let inputs = Inputs { release: &r, env: Some(&env), app_versions: avs.iter().collect(), upstream: vec![&up], twins: vec![], product: Default::default(), approvals: vec![], peers: vec![], now };
        let recheck = match select_target(&inputs) {
            Ok(t) => t.held.and_then(|h| h.recheck_in),
            Err(b) => b.recheck_in,
        };
        prop_assert!(recheck_ok(recheck), "{recheck:?}");
        if u128::from(soak) > u128::try_from(healthy_for).unwrap_or(0) + 1 {
            prop_assert!(recheck.is_some(), "a soak that has not passed sets a timer");
        }
    }

    #[test]
    fn freeze_windows_never_panic_and_end_in_the_future(
        w in freeze_window(),
        now in prop_oneof![
            4 => (-4_000_000i64..4_000_000).prop_map(sane),
            1 => Just(Timestamp::MIN),
            1 => Just(Timestamp::MAX),
        ],
    ) {
        match active_until(&w, now) {
            Ok(Some(FreezeEnd::At(end))) => prop_assert!(end > now, "a window active at {now} ends at {end}"),
            Ok(Some(FreezeEnd::WhenRemoved)) => {
                prop_assert!(w.start.is_some() && w.end.is_none() && w.weekly.is_none(), "{w:?}");
            }
            Ok(None) => {}
            Err(m) => prop_assert!(!m.is_empty()),
        }
    }

    /// The webhook judges a window once, when it is applied; the controller at every reconcile. A
    /// window valid at one time must be valid at any other, or the webhook's promise would not hold.
    #[test]
    fn whether_a_window_is_valid_does_not_depend_on_the_time(
        w in freeze_window(),
        a in -4_000_000_000i64..4_000_000_000,
        b in -4_000_000_000i64..4_000_000_000,
    ) {
        prop_assert_eq!(active_until(&w, sane(a)).is_err(), active_until(&w, sane(b)).is_err(), "{:?}", w);
    }

    #[test]
    fn dependency_cycles_are_found_exactly(
        app in select(vec!["ledger", "db", "cache", "payments"]),
        deps in proptest::collection::vec(select(vec!["ledger", "db", "cache", "payments"]), 0..3),
        peers in peers(),
    ) {
        let mut r = release();
        r.spec.app = app.into();
        r.spec.depends_on = deps.iter().map(|d| Dependency { app: d.to_string(), version: None }).collect();
        let peer_refs: Vec<&Release> = peers.iter().collect();
        let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for p in peer_refs.iter().copied().chain([&r]) {
            graph.entry(p.spec.app.as_str()).or_default().extend(p.spec.depends_on.iter().map(|d| d.app.as_str()));
        }
        // Reference: breadth-first search for a way back to the Release's own app.
        let mut seen = BTreeSet::new();
        let mut queue: Vec<&str> = graph.get(app).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let mut back = false;
        while let Some(n) = queue.pop() {
            back |= n == app;
            if seen.insert(n) {
                queue.extend(graph.get(n).into_iter().flatten().copied());
            }
        }
        let found = dependency_cycle(&r, &peer_refs);
        prop_assert_eq!(found.is_some(), back, "{:?}", found);
        if let Some(cycle) = found {
            prop_assert_eq!(cycle.first().map(String::as_str), Some(app));
            prop_assert_eq!(cycle.last().map(String::as_str), Some(app));
            for pair in cycle.windows(2) {
                prop_assert!(graph.get(pair[0].as_str()).is_some_and(|s| s.contains(pair[1].as_str())), "{cycle:?}");
            }
        }
    }

    #[test]
    fn version_lines_widen_ranges_only_by_prereleases(
        line in range_text(),
        version in (0u64..3, 0u64..6, 0u64..12, proptest::option::of("(rc|beta)\\.[0-9]")),
    ) {
        let Ok(req) = semver::VersionReq::parse(&line) else { return Ok(()) };
        let (a, b, c, pre) = version;
        let text = pre.map_or_else(|| format!("{a}.{b}.{c}"), |p| format!("{a}.{b}.{c}-{p}"));
        let v = semver::Version::parse(&text).unwrap_or_else(|_| semver::Version::new(a, b, c));
        let held = matches_line(&req, &v);
        if req.matches(&v) {
            prop_assert!(held);
        }
        if v.pre.is_empty() {
            prop_assert_eq!(held, req.matches(&v));
        } else if held {
            prop_assert!(req.matches(&semver::Version::new(v.major, v.minor, v.patch)), "{v} in {req}");
        }
    }

    #[test]
    fn status_stays_bounded_and_recording_is_idempotent(
        steps in proptest::collection::vec((0u8..5, ".{0,40}", any::<bool>(), 0usize..3000), 1..30),
    ) {
        let mut s = ReleaseStatus::default();
        for (i, (kind, text, flag, pad)) in steps.into_iter().enumerate() {
            let message = format!("{text}{}", "m".repeat(pad));
            let health = match kind % 3 {
                0 => Health::Healthy,
                1 => Health::Progressing { message: message.clone(), recheck_in: Duration::from_secs(5) },
                _ => Health::Degraded { message: message.clone() },
            };
            let outcome = match kind {
                0 => Outcome::Applied {
                    version: format!("1.0.{i}"),
                    inventory: Inventory { namespace: "ns".into(), hash: Some(i.to_string()), ..Default::default() },
                    new_rollout: flag,
                    note: Some(message.clone()),
                    rollback_of: None,
                    health, approvers: Vec::new(), requester: Default::default(),
                },
                1 => Outcome::Observed { health },
                2 => Outcome::Blocked(Blocked { phase: if flag { Phase::Failed } else { Phase::Pending }, reason: Reason::InvalidVersion, message: message.clone(), recheck_in: None }),
                3 => Outcome::Failed { reason: Reason::ApplyRejected, message: message.clone(), transient: flag },
                _ => Outcome::Rejected { reason: Reason::ApplyRejected, message: message.clone(), hash: flag.then(|| i.to_string()), inventory: Inventory::default() },
            };
            let now = Time(sane(i64::try_from(i).unwrap_or(0)));
            let next = next_status(&s, outcome.clone(), Some(1), &now);
            if !matches!(outcome, Outcome::Applied { .. }) {
                // Recomputing the same observation changes nothing, so nothing is written.
                prop_assert_eq!(&next_status(&next, outcome, Some(1), &now), &next);
            }
            s = next;
            prop_assert!(s.history.len() <= HISTORY_LIMIT);
            prop_assert!(s.history.iter().skip(1).all(|h| h.result != RolloutResult::Progressing), "{:?}", s.history);
            prop_assert!(s.history.iter().all(|h| h.message.as_ref().is_none_or(|m| m.len() <= HISTORY_MESSAGE_LIMIT)));
            prop_assert!(s.conditions.iter().all(|c| c.message.len() <= MESSAGE_LIMIT && !c.reason.is_empty()));
            prop_assert!(serde_json::to_vec(&s).map(|v| v.len()).unwrap_or(usize::MAX) < 16 * 1024);
        }
    }
}

/// A decision, as far as another Release can tell it apart: what runs, what is held and why.
fn decision(inputs: &Inputs<'_>) -> String {
    match select_target(inputs) {
        Ok(t) => format!("run {} held {:?} notes {:?}", t.version, t.held, t.notes),
        Err(b) => format!("blocked {b:?}"),
    }
}

/// The world of one Release's decision, but for its upstream and its peers.
struct World<'a> {
    release: &'a Release,
    env: &'a Environment,
    app_versions: &'a [AppVersion],
    approvals: &'a [Approval],
    now: i64,
}

impl World<'_> {
    fn decide(&self, upstream: Option<&Release>, peers: &[Release]) -> String {
        decision(&Inputs {
            release: self.release,
            env: Some(self.env),
            app_versions: self.app_versions.iter().collect(),
            upstream: upstream.into_iter().collect(),
            twins: vec![],
            product: Default::default(),
            approvals: self.approvals.iter().collect(),
            peers: peers.iter().collect(),
            now: sane(self.now),
        })
    }

    /// If changing the upstream, or one peer (`changed`: the first of its name, or a new one),
    /// changes the decision, the watch must wake the Release for it (`peers::must_look`).
    fn changes_are_woken(
        &self,
        up: (Option<&Release>, Option<&Release>),
        peers: &[Release],
        changed: Option<&Release>,
    ) -> Result<(), TestCaseError> {
        use super::peers::{PeerFacts, must_look};
        let facts = |x: Option<&Release>| x.map(PeerFacts::of);
        let (was, is) = (self.decide(up.0, peers), self.decide(up.1, peers));
        if was != is {
            prop_assert!(
                must_look(facts(up.0).as_ref(), facts(up.1).as_ref(), self.release),
                "an upstream change not woken for: {was} → {is}"
            );
        }
        let Some(new) = changed else { return Ok(()) };
        let mut after = peers.to_vec();
        let old = match after.iter_mut().find(|p| p.metadata.name == new.metadata.name) {
            Some(p) => Some(std::mem::replace(p, new.clone())),
            None => {
                after.push(new.clone());
                None
            }
        };
        let (was, is) = (self.decide(up.0, peers), self.decide(up.0, &after));
        if was != is {
            prop_assert!(
                must_look(facts(old.as_ref()).as_ref(), Some(&PeerFacts::of(new)), self.release),
                "a peer change not woken for: {was} → {is}"
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The watch wakes a Release only when `peers::must_look` says so: any change to its upstream or
    /// to a peer that changes its decision must be one that wakes it.
    #[test]
    fn a_change_that_moves_a_decision_wakes_the_release(
        r in release_strategy(),
        env in env_strategy(),
        avs in app_versions(),
        up_before in upstream(),
        up_after in upstream(),
        peers in peers(),
        changed in peers(),
        approvals in approvals(),
        now in -200_000i64..200_000,
    ) {
        let world = World { release: &r, env: &env, app_versions: &avs, approvals: &approvals, now };
        world.changes_are_woken((up_before.as_ref(), up_after.as_ref()), &peers, changed.first())?;
    }

    /// The same where the dependency gate decides: a pinned, published version in a Ready
    /// Environment, waiting on the apps it depends on (and on cycles among its peers).
    #[test]
    fn a_dependency_change_that_moves_a_decision_wakes_the_release(
        deps in proptest::collection::vec(select(vec!["ledger", "db", "cache"]), 1..3),
        peers in peers(),
        changed in peers(),
    ) {
        let mut r = release();
        r.spec.depends_on = deps.into_iter().map(|d| Dependency { app: d.into(), version: None }).collect();
        let mut av = app_version(Some(Default::default()), vec![]);
        av.status = Some(AppVersionStatus { spec_hash: Some(spec_hash(&av.spec)), ..Default::default() });
        let mut env = environment(&[]);
        env.status = Some(EnvironmentStatus { conditions: vec![ready_condition()], namespace: Some(env.spec.namespace.clone()), cluster: Some(crate::api::IN_CLUSTER.into()), ..Default::default() });
        let avs = [av];
        let world = World { release: &r, env: &env, app_versions: &avs, approvals: &[], now: 0 };
        world.changes_are_woken((None, None), &peers, changed.first())?;
    }
}
