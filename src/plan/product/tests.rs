use super::*;
use crate::api::owned_by;
use crate::api::{
    ApprovalPolicy, Condition, EnvironmentStatus, ProductReleaseSpec, ProductVersionSpec,
    ProductVersionStatus, PromoteFrom, ReleaseStatus,
};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn ready_condition() -> Condition {
    Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "Published".into(),
        message: String::new(),
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

fn env(approval: bool) -> Environment {
    let mut env = crate::render::tests::environment(&[]);
    env.spec.approval = approval.then_some(ApprovalPolicy::Required);
    env.status = Some(EnvironmentStatus {
        conditions: vec![ready_condition()],
        namespace: Some(env.spec.namespace.clone()),
        cluster: Some(crate::api::IN_CLUSTER.into()),
        ..Default::default()
    });
    env
}

/// Published `platform <version>` of payments (after ledger) and ledger, each at `version`.
fn pv(version: &str) -> ProductVersion {
    let app = |name: &str, after: &[&str]| ProductApp {
        app: name.into(),
        version: version.into(),
        after: after.iter().map(|s| s.to_string()).collect(),
    };
    let mut pv = ProductVersion::new(
        &format!("platform-{version}"),
        ProductVersionSpec {
            product: "platform".into(),
            version: version.into(),
            apps: vec![app("payments", &["ledger"]), app("ledger", &[])],
            changes: vec![],
        },
    );
    pv.status = Some(ProductVersionStatus { conditions: vec![ready_condition()], ..Default::default() });
    pv
}

fn product(spec: ProductReleaseSpec, status: Option<ProductReleaseStatus>) -> ProductRelease {
    let mut p = ProductRelease::new("platform-prod", spec);
    p.metadata.namespace = Some("finance".into());
    p.metadata.uid = Some("uid-1".into());
    p.status = status;
    p
}

fn pinned(v: &str) -> ProductReleaseSpec {
    ProductReleaseSpec {
        product: "platform".into(),
        environment: "prod".into(),
        version: Some(v.into()),
        ..Default::default()
    }
}

fn child(app: &str, version: &str, phase: Phase, current: Option<&str>) -> Release {
    let spec = ReleaseSpec {
        app: app.into(),
        environment: "prod".into(),
        version: Some(version.into()),
        ..Default::default()
    };
    let mut r = Release::new(&format!("platform-prod.{app}"), spec);
    r.status = Some(ReleaseStatus {
        phase: Some(phase),
        desired_version: Some(version.into()),
        current_version: current.map(str::to_string),
        ..Default::default()
    });
    r
}

struct World {
    env: Environment,
    versions: Vec<ProductVersion>,
    children: Vec<Release>,
    squatters: BTreeMap<String, String>,
    upstream: Vec<ProductRelease>,
    approvals: Vec<Approval>,
}

impl World {
    fn new(versions: &[&str]) -> Self {
        Self {
            env: env(false),
            versions: versions.iter().map(|v| pv(v)).collect(),
            children: vec![],
            squatters: BTreeMap::new(),
            upstream: vec![],
            approvals: vec![],
        }
    }

    fn step(&self, p: &ProductRelease, now: &str) -> ProductStep {
        let inputs = ProductInputs {
            product: p,
            env: Some(&self.env),
            versions: self.versions.iter().collect(),
            upstream: self.upstream.iter().collect(),
            approvals: self.approvals.iter().collect(),
            children: self.children.iter().map(|r| (r.spec.app.clone(), r)).collect(),
            squatters: self.squatters.clone(),
            now: ts(now),
        };
        step(&inputs)
    }
}

fn results(s: &ProductReleaseStatus) -> Vec<(&str, RolloutResult)> {
    s.history.iter().map(|h| (h.version.as_str(), h.result)).collect()
}

fn reason(s: &ProductReleaseStatus) -> String {
    crate::api::find_condition(&s.conditions, ConditionType::Ready)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

#[test]
fn a_pinned_product_admits_its_version_and_pins_each_app_after_the_ones_it_names() {
    let w = World::new(&["1.3.9"]);
    let step = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z");
    let admitted = step.status.admitted.as_ref().unwrap();
    assert_eq!(admitted.version, "1.3.9");
    assert_eq!(results(&step.status), [("1.3.9", RolloutResult::Progressing)]);
    let names: Vec<&str> = step.children.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["platform-prod.payments", "platform-prod.ledger"]);
    let payments = &step.children[0].1;
    assert_eq!(payments.version.as_deref(), Some("1.3.9"));
    assert_eq!(payments.depends_on, [Dependency { app: "ledger".into(), version: Some("=1.3.9".into()) }]);
    assert_eq!(payments.rollback.as_ref().and_then(|r| r.auto), Some(false));
    assert!(step.children[1].1.depends_on.is_empty());
}

#[test]
fn healthy_once_every_app_runs_its_version_and_then_nothing_changes() {
    let mut w = World::new(&["1.3.9"]);
    let first = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    // One app healthy: still progressing, naming what it waits for.
    w.children = vec![child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9"))];
    let s = w.step(&product(pinned("1.3.9"), Some(first.clone())), "2026-12-07T10:00:05Z").status;
    assert_eq!((s.phase, reason(&s).as_str()), (Some(Phase::Progressing), "RolloutInProgress"));
    w.children.push(child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")));
    let s = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:10Z").status;
    assert_eq!((s.phase, s.current_version.as_deref()), (Some(Phase::Healthy), Some("1.3.9")));
    assert_eq!(results(&s), [("1.3.9", RolloutResult::Succeeded)]);
    // The steady state decides the same status again: no write.
    let again = w.step(&product(pinned("1.3.9"), Some(s.clone())), "2026-12-07T11:00:00Z");
    assert_eq!(again.status, s);
    assert!(again.events.is_empty());
}

#[test]
fn one_app_failing_takes_every_app_back_to_the_last_version_that_ran_healthy() {
    let mut w = World::new(&["1.3.9", "1.4.0"]);
    w.children = vec![
        child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let s = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    let s = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:01Z").status;
    assert_eq!(s.phase, Some(Phase::Healthy));
    let s = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:00:00Z").status;
    assert_eq!(s.admitted.as_ref().unwrap().version, "1.4.0");
    w.children = vec![
        child("ledger", "1.4.0", Phase::Degraded, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let step = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:05:00Z");
    let s = &step.status;
    let admitted = s.admitted.as_ref().unwrap();
    assert_eq!((admitted.version.as_str(), admitted.rollback_of.as_deref()), ("1.3.9", Some("1.4.0")));
    assert!(admitted.notes[0].contains("1.4.0 failed in prod: ledger"), "{:?}", admitted.notes);
    assert_eq!(s.failed_versions, ["1.4.0"]);
    assert_eq!(
        results(s),
        [
            ("1.3.9", RolloutResult::Progressing),
            ("1.4.0", RolloutResult::Failed),
            ("1.3.9", RolloutResult::Succeeded)
        ]
    );
    assert!(step.children.iter().all(|(_, spec)| spec.version.as_deref() == Some("1.3.9")));
    // The pinned version that failed is not tried again: held, 1.3.9 keeps running.
    let s = w.step(&product(pinned("1.4.0"), Some(step.status.clone())), "2026-12-07T11:06:00Z").status;
    assert_eq!(s.held_version.as_deref(), Some("1.4.0"));
    assert_eq!(s.admitted.unwrap().version, "1.3.9");
}

#[test]
fn the_environments_gates_hold_the_product_version_once_for_all_its_apps() {
    let mut w = World::new(&["1.3.10"]);
    w.env = env(true);
    let step = w.step(&product(pinned("1.3.10"), None), "2026-12-07T10:00:00Z");
    assert_eq!(reason(&step.status), "AwaitingApproval");
    assert!(step.status.admitted.is_none());
    assert!(step.children.is_empty(), "no app's Release exists before the product version is let in");
}

#[test]
fn an_app_another_release_runs_here_is_not_taken_over() {
    let mut w = World::new(&["1.3.9"]);
    w.squatters.insert("ledger".into(), "ledger-prod".into());
    let step = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z");
    assert_eq!((step.status.phase, reason(&step.status).as_str()), (Some(Phase::Failed), "AppRunByRelease"));
    assert!(step.children.is_empty());
    // Once the product runs the app, a Release made later does not stop it.
    w.squatters.clear();
    w.children = vec![child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9"))];
    let s = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    w.squatters.insert("ledger".into(), "ledger-prod".into());
    let step = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:01Z");
    assert_eq!(step.children.len(), 2);
}

#[test]
fn tracking_takes_the_newest_published_version_not_failed_here() {
    let mut w = World::new(&["1.3.9", "1.3.10", "1.3.11", "1.4.0"]);
    if let Some(s) = w.versions[2].status.as_mut() {
        s.conditions.clear(); // 1.3.11 is not published yet
    }
    let spec = ProductReleaseSpec { version: None, track: Some("~1.3".into()), ..pinned("") };
    let failed = ProductReleaseStatus { failed_versions: vec!["1.3.10".into()], ..Default::default() };
    let step = w.step(&product(spec, Some(failed)), "2026-12-07T10:00:00Z");
    assert_eq!(step.status.admitted.unwrap().version, "1.3.9");
}

#[test]
fn a_promotion_waits_for_the_whole_product_to_soak_upstream() {
    let mut w = World::new(&["1.3.9"]);
    let ran = Admitted {
        version: "1.3.9".into(),
        uid: Some("pv-uid".into()),
        apps: vec![],
        started_at: Time(ts("2026-12-07T09:00:00Z")),
        rollback_of: None,
        manual: false,
        notes: vec![],
        approvers: vec![],
    };
    w.versions[0].metadata.uid = Some("pv-uid".into());
    let up_status = ProductReleaseStatus {
        admitted: Some(ran),
        phase: Some(Phase::Healthy),
        current_version: Some("1.3.9".into()),
        healthy_since: Some(Time(ts("2026-12-07T10:00:00Z"))),
        ..Default::default()
    };
    w.upstream =
        vec![product(ProductReleaseSpec { environment: "test".into(), ..pinned("1.3.9") }, Some(up_status))];
    let from = PromoteFrom { environment: "test".into(), soak: Some("30m".into()) };
    let spec = ProductReleaseSpec { version: None, promote_from: Some(from), ..pinned("") };
    let step = w.step(&product(spec.clone(), None), "2026-12-07T10:20:00Z");
    assert_eq!(reason(&step.status), "Soaking");
    assert_eq!(step.recheck_in, Some(Duration::from_secs(600)));
    let step = w.step(&product(spec.clone(), None), "2026-12-07T10:31:00Z");
    assert_eq!(step.status.admitted.unwrap().version, "1.3.9");
    // The ProductVersion made again under that version (other content) is not what soaked.
    w.versions[0].metadata.uid = Some("pv-uid-2".into());
    let step = w.step(&product(spec, None), "2026-12-07T10:32:00Z");
    assert!(step.status.admitted.is_none());
    assert_eq!(reason(&step.status), "UpstreamNotHealthy");
}

#[test]
fn a_rollback_goes_back_to_exactly_what_ran_not_to_what_its_product_version_became() {
    let mut w = World::new(&["1.3.9", "1.4.0"]);
    w.children = vec![
        child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let s = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    let s = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:01Z").status;
    assert_eq!(s.ran_healthy[0].apps[0].version, "1.3.9");
    // 1.3.9 is deleted and made again with other content; 1.4.0 rolls out and fails.
    w.versions[0].spec.apps[0].version = "6.6.6".into();
    w.versions[0].metadata.uid = Some("other".into());
    let s = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:00:00Z").status;
    w.children[0] = child("ledger", "1.4.0", Phase::Degraded, Some("1.3.9"));
    let s = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:05:00Z").status;
    let back = s.admitted.unwrap();
    assert_eq!(back.version, "1.3.9");
    assert!(back.apps.iter().all(|a| a.version == "1.3.9"), "{:?}", back.apps);
}

#[test]
fn a_rollback_a_person_asked_for_is_not_rolled_back_again_and_long_waits_are_capped() {
    let mut w = World::new(&["1.3.9", "1.4.0"]);
    w.children = vec![
        child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let s = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    let s = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:01Z").status;
    w.children = vec![
        child("ledger", "1.4.0", Phase::Healthy, Some("1.4.0")),
        child("payments", "1.4.0", Phase::Healthy, Some("1.4.0")),
    ];
    let s = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:00:00Z").status;
    let s = w.step(&product(pinned("1.4.0"), Some(s)), "2026-12-07T11:00:01Z").status;
    assert_eq!(s.current_version.as_deref(), Some("1.4.0"));
    let back = ProductReleaseSpec {
        rollback: Some(crate::api::RollbackSpec { auto: None, to: Some("1.3.9".into()) }),
        ..pinned("1.4.0")
    };
    let s = w.step(&product(back.clone(), Some(s)), "2026-12-07T12:00:00Z").status;
    assert!(s.admitted.as_ref().unwrap().manual);
    w.children[0] = child("ledger", "1.3.9", Phase::Degraded, Some("1.4.0"));
    let s = w.step(&product(back.clone(), Some(s)), "2026-12-07T12:05:00Z").status;
    let again = w.step(&product(back, Some(s.clone())), "2026-12-07T12:06:00Z").status;
    assert_eq!((s.phase, again.admitted.unwrap().version.as_str()), (Some(Phase::Degraded), "1.3.9"));
    assert_eq!(again.history.len(), s.history.len(), "no swapping back and forth");

    // A freeze that ends in years: the product looks again within a day.
    let mut frozen = World::new(&["1.3.9"]);
    frozen.env.spec.freeze_windows = vec![crate::api::FreezeWindow {
        start: Some("2026-01-01T00:00:00Z".into()),
        end: Some("2036-01-01T00:00:00Z".into()),
        ..Default::default()
    }];
    let step = frozen.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z");
    assert_eq!(reason(&step.status), "Frozen");
    assert_eq!(step.recheck_in, Some(MAX_RECHECK));
}

#[test]
fn a_release_is_the_products_only_by_its_name_and_its_owners_uid() {
    let p = product(pinned("1.3.9"), None);
    let mut r = child("ledger", "1.3.9", Phase::Healthy, None);
    assert!(!owned_by(&r, &p), "no owner reference");
    let owner = |uid: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "tuskfish.dev/v1alpha1".into(),
        kind: "ProductRelease".into(),
        name: "platform-prod".into(),
        uid: uid.into(),
        controller: Some(true),
        ..Default::default()
    };
    r.metadata.owner_references = Some(vec![owner("uid-2")]);
    assert!(!owned_by(&r, &p), "another object of that name");
    r.metadata.owner_references = Some(vec![owner("uid-1")]);
    assert!(owned_by(&r, &p));
    r.metadata.name = Some("ledger-prod".into());
    assert!(!owned_by(&r, &p), "not the name the product gives its Release of that app");
}

#[test]
fn a_release_name_too_long_for_a_label_is_refused_before_anything_is_made() {
    let w = World::new(&["1.3.9"]);
    let mut p = product(pinned("1.3.9"), None);
    p.metadata.name = Some("p".repeat(60));
    let step = w.step(&p, "2026-12-07T10:00:00Z");
    assert_eq!((step.status.phase, reason(&step.status).as_str()), (Some(Phase::Failed), "NameTooLong"));
    assert!(step.children.is_empty());
}

#[test]
fn only_an_approval_of_the_product_given_after_its_version_was_made_lets_it_in() {
    let mut w = World::new(&["1.3.10"]);
    w.env = env(true);
    w.versions[0].metadata.creation_timestamp = Some(Time(ts("2026-12-07T09:00:00Z")));
    let approval = |product: Option<&str>, app: Option<&str>, at: &str| {
        let mut a = Approval::new(
            "a",
            crate::api::ApprovalSpec {
                release: "platform-prod".into(),
                version: "1.3.10".into(),
                app: app.map(str::to_string),
                product: product.map(str::to_string),
                environment: Some("prod".into()),
                approver: Some("maria".into()),
                ..Default::default()
            },
        );
        a.metadata.creation_timestamp = Some(Time(ts(at)));
        a
    };
    let admitted =
        |w: &World| w.step(&product(pinned("1.3.10"), None), "2026-12-07T10:00:00Z").status.admitted;
    // An Approval of a Release of the same name (an app named like the product) does not count.
    w.approvals = vec![approval(None, Some("platform"), "2026-12-07T09:30:00Z")];
    assert!(admitted(&w).is_none());
    // One of the product, older than its ProductVersion (given for content since replaced), neither.
    w.approvals = vec![approval(Some("platform"), None, "2026-12-07T08:00:00Z")];
    assert!(admitted(&w).is_none());
    // One that names no Environment (a ProductRelease of that name could be made anywhere), neither.
    let mut anywhere = approval(Some("platform"), None, "2026-12-07T09:30:00Z");
    anywhere.spec.environment = None;
    w.approvals = vec![anywhere];
    assert!(admitted(&w).is_none());
    w.approvals = vec![approval(Some("platform"), None, "2026-12-07T09:30:00Z")];
    assert_eq!(admitted(&w).unwrap().approvers, ["maria"]);
}

#[test]
fn an_app_that_never_reaches_its_version_fails_the_product_at_its_deadline() {
    let mut w = World::new(&["1.3.9", "1.4.0"]);
    w.children = vec![
        child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let spec = ProductReleaseSpec { progress_deadline_seconds: Some(30), ..pinned("1.3.9") };
    let s = w.step(&product(spec.clone(), None), "2026-12-07T10:00:00Z").status;
    let s = w.step(&product(spec.clone(), Some(s)), "2026-12-07T10:00:01Z").status;
    let spec = ProductReleaseSpec { version: Some("1.4.0".into()), ..spec };
    let s = w.step(&product(spec.clone(), Some(s)), "2026-12-07T11:00:00Z").status;
    // ledger's Release never gets to 1.4.0 (held, say): two waves of 30 s, plus a minute's slack.
    let step = w.step(&product(spec.clone(), Some(s)), "2026-12-07T11:01:00Z");
    assert_eq!(step.status.phase, Some(Phase::Progressing));
    assert_eq!(step.recheck_in, Some(Duration::from_secs(60)));
    let step = w.step(&product(spec, Some(step.status)), "2026-12-07T11:02:00Z");
    assert_eq!(step.status.failed_versions, ["1.4.0"]);
    assert!(
        step.status.history[1].message.as_deref().unwrap_or_default().starts_with("ledger: not there within")
    );
    assert_eq!(step.status.admitted.unwrap().version, "1.3.9");
}

#[test]
fn a_product_version_made_again_under_its_version_is_new_content_to_pass_the_gates_again() {
    let mut w = World::new(&["1.3.9"]);
    w.versions[0].metadata.uid = Some("a".into());
    w.children = vec![
        child("ledger", "1.3.9", Phase::Healthy, Some("1.3.9")),
        child("payments", "1.3.9", Phase::Healthy, Some("1.3.9")),
    ];
    let s = w.step(&product(pinned("1.3.9"), None), "2026-12-07T10:00:00Z").status;
    let s = w.step(&product(pinned("1.3.9"), Some(s)), "2026-12-07T10:00:01Z").status;
    assert_eq!(s.phase, Some(Phase::Healthy));
    // Deleted and made again (other uid), in an Environment that now requires approval.
    w.env = env(true);
    w.versions[0].metadata.uid = Some("b".into());
    let step = w.step(&product(pinned("1.3.9"), Some(s.clone())), "2026-12-07T11:00:00Z");
    assert_eq!(reason_of(&step.status, "Held"), "AwaitingApproval");
    assert_eq!(
        step.status.admitted.as_ref().and_then(|a| a.uid.as_deref()),
        Some("a"),
        "the old content keeps running"
    );
    assert_eq!(
        step.status,
        ProductReleaseStatus {
            conditions: step.status.conditions.clone(),
            held_version: Some("1.3.9".into()),
            ..s
        }
    );
}

fn reason_of(s: &ProductReleaseStatus, type_: &str) -> String {
    crate::api::find_condition(&s.conditions, type_).map(|c| c.reason.clone()).unwrap_or_default()
}
