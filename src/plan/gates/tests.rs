use std::collections::BTreeMap;

use super::*;
use crate::api::{ApprovalPolicy, ApprovalSpec, Dependency, FreezeWindow, ReleaseStatus, WeeklyWindow};
use crate::render::tests::{environment, release};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).unwrap()
}

fn weekly(days: &[&str], from: &str, to: &str, tz: &str) -> FreezeWindow {
    FreezeWindow {
        weekly: Some(WeeklyWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
            time_zone: Some(tz.into()),
        }),
        ..Default::default()
    }
}

fn once(start: &str, end: &str) -> FreezeWindow {
    FreezeWindow { start: Some(start.into()), end: Some(end.into()), ..Default::default() }
}

#[test]
fn freeze_windows() {
    // 2026-11-27 is a Friday.
    let fri_evening = weekly(&["Fri"], "16:00", "23:59", "Europe/Berlin");
    let overnight = weekly(&["Fri"], "22:00", "06:00", "Europe/Berlin");
    let cases = [
        (
            once("2026-12-20T00:00:00Z", "2027-01-02T00:00:00Z"),
            "2026-12-24T12:00:00Z",
            Some("2027-01-02T00:00:00Z"),
        ),
        (once("2026-12-20T00:00:00Z", "2027-01-02T00:00:00Z"), "2027-01-02T00:00:00Z", None),
        (fri_evening.clone(), "2026-11-27T16:30:00Z", Some("2026-11-27T22:59:00Z")),
        (fri_evening.clone(), "2026-11-27T14:59:00Z", None),
        (fri_evening, "2026-11-28T16:30:00Z", None),
        (overnight.clone(), "2026-11-28T02:00:00Z", Some("2026-11-28T05:00:00Z")),
        (overnight, "2026-11-28T05:00:00Z", None),
        (
            weekly(&["sat", "Sunday"], "00:00", "23:59", "UTC"),
            "2026-11-29T10:00:00Z",
            Some("2026-11-29T23:59:00Z"),
        ),
    ];
    for (i, (w, now, want)) in cases.into_iter().enumerate() {
        assert_eq!(active_until(&w, ts(now)).unwrap(), want.map(|t| FreezeEnd::At(ts(t))), "case {i}");
    }
    let open_ended = FreezeWindow { start: Some("2026-11-27T12:00:00Z".into()), ..Default::default() };
    assert_eq!(active_until(&open_ended, ts("2026-11-27T11:59:59Z")).unwrap(), None);
    assert_eq!(active_until(&open_ended, ts("2031-01-01T00:00:00Z")).unwrap(), Some(FreezeEnd::WhenRemoved));
    let broken = [
        once("2026-12-20T00:00:00Z", "2026-12-19T00:00:00Z"),
        once("yesterday", "2026-12-19T00:00:00Z"),
        weekly(&["Funday"], "10:00", "11:00", "UTC"),
        weekly(&["Mon"], "25:00", "11:00", "UTC"),
        weekly(&["Mon"], "10:00", "11:00", "Mars/Olympus"),
        FreezeWindow::default(),
        FreezeWindow {
            weekly: weekly(&["Mon"], "10:00", "11:00", "UTC").weekly,
            ..once("2026-12-20T00:00:00Z", "2027-01-02T00:00:00Z")
        },
    ];
    for (i, w) in broken.iter().enumerate() {
        assert!(active_until(w, ts("2026-11-27T12:00:00Z")).is_err(), "broken {i}");
    }
}

fn facts<'a>(approvals: &'a [&'a Approval], peers: &'a [&'a Release], now: &str) -> GateFacts<'a> {
    GateFacts { approvals, peers, now: ts(now) }
}

fn approval(release: &str, version: &str, who: &str) -> Approval {
    Approval::new(
        "a",
        ApprovalSpec {
            release: release.into(),
            version: version.into(),
            approver: Some(who.into()),
            reason: Some("CAB ok".into()),
            ..Default::default()
        },
    )
}

fn reason(r: Result<Passed, Stop>) -> Result<Vec<String>, &'static str> {
    r.map(|p| p.notes).map_err(|s| match s {
        Stop::Held(h) => h.reason.as_str(),
        Stop::Blocked(b) => b.reason.as_str(),
    })
}

#[test]
fn approval_and_freeze() {
    let rel = release();
    let mut env = environment(&[]);
    env.spec.approval = Some(ApprovalPolicy::Required);
    let ok = approval("payments-prod", "1.3.10", "alice");
    let other = approval("payments-prod", "1.3.11", "bob");
    let now = "2026-11-25T10:00:00Z";
    assert_eq!(reason(check(&rel, &env, &v("1.3.10"), &facts(&[&other], &[], now))), Err("AwaitingApproval"));
    assert_eq!(
        reason(check(&rel, &env, &v("1.3.10"), &facts(&[&other, &ok], &[], now))),
        Ok(vec!["approved by alice: CAB ok".to_string()])
    );

    env.spec.freeze_windows = vec![FreezeWindow {
        reason: Some("year end".into()),
        ..once("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z")
    }];
    let held = check(&rel, &env, &v("1.3.10"), &facts(&[&ok], &[], now)).unwrap_err();
    let Stop::Held(h) = held else { panic!("{held:?}") };
    assert_eq!(h.reason, "Frozen");
    assert_eq!(h.recheck_in, Some(Duration::from_secs(14 * 3600)));
    assert!(h.message.contains("2026-11-26T00:00:00Z"), "{}", h.message);

    let mut overridden = rel.clone();
    overridden.metadata.annotations =
        Some(BTreeMap::from([(FREEZE_OVERRIDE_ANNOTATION.to_string(), "INC-7 hotfix".to_string())]));
    assert_eq!(
        reason(check(&overridden, &env, &v("1.3.10"), &facts(&[&ok], &[], now))),
        Ok(vec![
            "freeze (year end) overridden: INC-7 hotfix".to_string(),
            "approved by alice: CAB ok".to_string()
        ])
    );
    env.spec.freeze_windows = vec![FreezeWindow::default()];
    assert_eq!(reason(check(&rel, &env, &v("1.3.10"), &facts(&[&ok], &[], now))), Err("InvalidFreezeWindow"));
}

fn peer(app: &str, phase: Phase, current: &str, deps: &[&str]) -> Release {
    let mut r = release();
    r.metadata.name = Some(format!("{app}-prod"));
    r.spec.app = app.into();
    r.spec.depends_on = deps.iter().map(|d| Dependency { app: d.to_string(), version: None }).collect();
    r.status = Some(ReleaseStatus {
        phase: Some(phase),
        current_version: Some(current.into()),
        ..Default::default()
    });
    r
}

#[test]
fn dependencies() {
    let env = environment(&[]);
    let now = "2026-11-25T10:00:00Z";
    let mut rel = release();
    rel.spec.depends_on = vec![Dependency { app: "db".into(), version: Some(">=2.1".into()) }];
    let db_ok = peer("db", Phase::Healthy, "2.1.0", &[]);
    let db_old = peer("db", Phase::Healthy, "2.0.0", &[]);
    let db_rolling = peer("db", Phase::Progressing, "2.1.0", &[]);
    let check_with =
        |rel: &Release, peers: &[&Release]| reason(check(rel, &env, &v("1.0.0"), &facts(&[], peers, now)));
    assert_eq!(check_with(&rel, &[]), Err("WaitingForDependencies"));
    assert_eq!(check_with(&rel, &[&db_old]), Err("WaitingForDependencies"));
    assert_eq!(check_with(&rel, &[&db_rolling]), Err("WaitingForDependencies"));
    assert_eq!(check_with(&rel, &[&db_ok]), Ok(vec![]));

    let db_needs_payments = peer("db", Phase::Healthy, "2.1.0", &["cache"]);
    let cache_needs_payments = peer("cache", Phase::Healthy, "1.0.0", &["payments"]);
    assert_eq!(check_with(&rel, &[&db_needs_payments, &cache_needs_payments]), Err("DependencyCycle"));
    let cycle = dependency_cycle(&rel, &[&db_needs_payments, &cache_needs_payments]).unwrap();
    assert_eq!(cycle, ["payments", "db", "cache", "payments"]);

    rel.spec.depends_on[0].version = Some("two".into());
    assert_eq!(check_with(&rel, &[&db_ok]), Err("InvalidDependency"));
}
