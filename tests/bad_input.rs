#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The bad-input corpus (issue 7): hundreds of malformed inputs, generated from fixed lists and
//! written by hand, applied to a real API server while one operator runs. Every input must end in
//! a refusal by the API server (its schema, its size limits) or in a clear condition (reason and
//! message) on the object it concerns; never an operator panic, never a status larger than 64 KiB,
//! never anything applied outside the Environment's namespace, and a healthy sentinel Release in
//! the same namespace keeps exactly the status it had.
//!
//! Each test is one category with its own namespaces and its own sentinel; inside a test the
//! inputs are applied 16 at a time. After the corpus every verdict is read again, a few seconds
//! later, and must still hold (no flapping), and the operator must still roll out a new Release.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use common::{TestNs, apply_value, healthy_at};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::{Value, json};
use tuskfish::api::rules::{DURATION, SEMVER, semver_range};
use tuskfish::api::{AppVersion, Environment, Phase, Release, ReleaseStatus, find_condition};

/// The CRD rule's words for a Release with none or several version sources.
const ONE_SOURCE: &str = "set exactly one of spec.version";

/// The most a Release (or any tuskfish object's) status may take, serialized.
const STATUS_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The machinery: a case is a few objects applied in order and what must become of them.

/// What must become of a case's last object.
#[derive(Clone, Debug)]
enum Want {
    /// The API server refuses it (schema validation, size limits).
    Refused,
    /// The API server refuses it, quoting this (a CRD rule's message: `tuskfish::api::rules`).
    RefusedSaying(&'static str),
    /// The API server may refuse it; if it does not, `then` must hold. For inputs whose refusal
    /// depends on the API server's version (embedded-object validation); either ending is fine.
    RefusedOr(Box<Want>),
    /// The Release's `Ready` condition has this reason, its phase is this.
    Release {
        name: String,
        reason: &'static str,
        phase: Phase,
    },
    /// The Release's `Ready` condition has this reason and its message contains `needle`.
    ReleaseSays {
        name: String,
        reason: &'static str,
        needle: &'static str,
    },
    /// The Release runs `version` healthily.
    Healthy {
        name: String,
        version: &'static str,
    },
    AppVersion {
        name: String,
        reason: &'static str,
    },
    Environment {
        name: String,
        reason: &'static str,
    },
    /// All of these.
    All(Vec<Want>),
}

struct Case {
    label: String,
    objects: Vec<Value>,
    want: Want,
    /// Objects that must not exist afterwards: (apiVersion, kind, namespace, name).
    absent: Vec<(String, String, Option<String>, String)>,
}

impl Case {
    fn new(label: impl Into<String>, objects: Vec<Value>, want: Want) -> Self {
        Self { label: label.into(), objects, want, absent: Vec::new() }
    }

    fn absent(mut self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Self {
        self.absent.push((api_version.into(), kind.into(), ns.map(str::to_string), name.into()));
        self
    }
}

fn release(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": name}, "spec": spec})
}

fn app_version(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion", "metadata": {"name": name}, "spec": spec})
}

fn environment(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": name}, "spec": spec})
}

/// The tests' own user name, which every Approval must carry (set by `World::new`).
static ME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An Approval in the tests' own name unless `spec` names an approver.
fn approval(name: &str, mut spec: Value) -> Value {
    if spec.get("approver").is_none() {
        spec["approver"] = json!(ME.get().expect("World::new sets ME"));
    }
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval", "metadata": {"name": name}, "spec": spec})
}

fn release_is(name: &str, reason: &'static str, phase: Phase) -> Want {
    Want::Release { name: name.into(), reason, phase }
}

fn failed(name: &str, reason: &'static str) -> Want {
    release_is(name, reason, Phase::Failed)
}

fn pending(name: &str, reason: &'static str) -> Want {
    release_is(name, reason, Phase::Pending)
}

fn refused_or(w: Want) -> Want {
    Want::RefusedOr(Box::new(w))
}

/// A Release in `env` and the AppVersion it runs, whose manifests are `manifests`: the usual shape
/// of a manifest case. The app, AppVersion and Release are all called `name`. The AppVersion comes
/// last, since it is what the API server may refuse.
fn deploy(name: &str, env: &str, manifests: Value) -> Vec<Value> {
    vec![
        release(name, json!({"app": name, "environment": env, "version": "1.0.0"})),
        app_version(name, json!({"app": name, "version": "1.0.0", "manifests": manifests})),
    ]
}

/// Panics on the operator's threads (the harness runs it on a runtime of its own), counted by a
/// panic hook; the tests' own threads are named after the tests.
static OPERATOR_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_operator_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_string);
            if name.is_none() || name.as_deref() == Some("tokio-runtime-worker") {
                OPERATOR_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn ready(conditions: &[tuskfish::api::Condition]) -> Option<(&str, &str)> {
    find_condition(conditions, "Ready").map(|c| (c.reason.as_str(), c.message.as_str()))
}

fn status_size<S: serde::Serialize>(status: &Option<S>) -> usize {
    status.as_ref().map_or(0, |s| serde_json::to_vec(s).unwrap().len())
}

/// With `wait`, waits (by watching) until `holds` is true of the object; without, reads it once and
/// asserts it still holds.
async fn observe<K>(
    t: &TestNs,
    name: &str,
    holds: impl Fn(&K) -> bool + Send + 'static,
    label: &str,
    wait: bool,
) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    if wait {
        return t.wait_for::<K>(name, holds).await;
    }
    // Checked again only once the operator has reconciled it since: a verdict that does not hold
    // cannot slip through because the operator had not looked yet.
    t.nudge::<K>(name).await;
    let obj = t.api::<K>().get(name).await.unwrap();
    assert!(holds(&obj), "{label}: no longer holds: {obj:#?}");
    obj
}

/// True of an object whose `Ready` condition has `reason`.
fn ready_is<K: 'static>(
    reason: &'static str,
    conditions: fn(&K) -> Option<&Vec<tuskfish::api::Condition>>,
) -> impl Fn(&K) -> bool + Send + 'static {
    move |o| conditions(o).and_then(|c| ready(c)).is_some_and(|(got, _)| got == reason)
}

/// Checks `want` against the objects now; with `wait`, first waits (by watching) until it holds.
async fn check(t: &TestNs, want: &Want, label: &str, wait: bool) {
    match want {
        Want::Refused | Want::RefusedSaying(_) | Want::RefusedOr(_) => unreachable!("handled by the caller"),
        Want::All(all) => {
            for w in all {
                Box::pin(check(t, w, label, wait)).await;
            }
        }
        Want::Release { name, .. } | Want::ReleaseSays { name, .. } | Want::Healthy { name, .. } => {
            let holds = {
                let want = want.clone();
                move |r: &Release| {
                    let Some(s) = r.status.as_ref() else { return false };
                    match &want {
                        Want::Healthy { version, .. } => healthy_at(*version)(s),
                        Want::Release { reason, .. } | Want::ReleaseSays { reason, .. } => {
                            ready(&s.conditions).is_some_and(|(got, _)| got == *reason)
                        }
                        _ => false,
                    }
                }
            };
            let r: Release = observe(t, name, holds, label, wait).await;
            let s = r.status.as_ref().unwrap();
            let (got, message) = ready(&s.conditions).unwrap();
            assert!(!message.is_empty(), "{label}: {got} without a message");
            match want {
                Want::Release { phase, .. } => assert_eq!(s.phase, Some(*phase), "{label}: {message}"),
                Want::ReleaseSays { needle, .. } => assert!(message.contains(needle), "{label}: {message}"),
                _ => {}
            }
            let size = status_size(&r.status);
            assert!(size < STATUS_LIMIT, "{label}: the status of Release {name} takes {size} bytes");
        }
        Want::AppVersion { name, reason } => {
            let a: AppVersion = observe(
                t,
                name,
                ready_is(reason, |a: &AppVersion| a.status.as_ref().map(|s| &s.conditions)),
                label,
                wait,
            )
            .await;
            let (_, message) = ready(&a.status.as_ref().unwrap().conditions).unwrap();
            assert!(!message.is_empty(), "{label}: no message");
            assert!(status_size(&a.status) < STATUS_LIMIT, "{label}");
        }
        Want::Environment { name, reason } => {
            let e: Environment = observe(
                t,
                name,
                ready_is(reason, |e: &Environment| e.status.as_ref().map(|s| &s.conditions)),
                label,
                wait,
            )
            .await;
            let (_, message) = ready(&e.status.as_ref().unwrap().conditions).unwrap();
            assert!(!message.is_empty(), "{label}: no message");
            assert!(status_size(&e.status) < STATUS_LIMIT, "{label}");
        }
    }
}

/// Applies one case and waits for its verdict; returns the verdict to check again later (`None`
/// when the API server refused the input).
async fn run_case(t: &TestNs, case: &Case) -> Option<Want> {
    let (last, setup) = case.objects.split_last().expect("a case has objects");
    for obj in setup {
        if let Err(e) = apply_value(&t.client, Some(&t.ns), obj.clone()).await {
            panic!("{}: setup object refused: {e}", case.label);
        }
    }
    let applied = apply_value(&t.client, Some(&t.ns), last.clone()).await;
    let want = match (&case.want, applied) {
        (Want::Refused | Want::RefusedOr(_), Err(e)) => {
            assert!(!e.to_string().is_empty(), "{}: refused without a word", case.label);
            return None;
        }
        (Want::RefusedSaying(needle), Err(e)) => {
            assert!(e.to_string().contains(needle), "{}: refused, but not with {needle:?}: {e}", case.label);
            return None;
        }
        (Want::Refused | Want::RefusedSaying(_), Ok(_)) => {
            panic!("{}: the API server accepted it", case.label)
        }
        (Want::RefusedOr(then), Ok(_)) => then.as_ref().clone(),
        (_, Err(e)) => panic!("{}: refused by the API server ({e}), expected {:?}", case.label, case.want),
        (want, Ok(_)) => want.clone(),
    };
    check(t, &want, &case.label, true).await;
    Some(want)
}

/// Whether an object exists (kinds the server does not serve do not).
async fn exists(client: &Client, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> bool {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let Ok((ar, caps)) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await else {
        return false;
    };
    let api: Api<DynamicObject> = match (&caps.scope, ns) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => panic!("{kind} {name}: name the namespace to look in"),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    };
    api.get_opt(name).await.unwrap().is_some()
}

/// One test's world: the namespace, the shared Environment `dev` with a published `good` 1.0.0,
/// and the sentinel, Healthy at 1.0.0 before the corpus.
struct World {
    t: TestNs,
    sentinel: ReleaseStatus,
    /// Who the tests' client is (the API server accepts Approvals only in their author's name).
    me: String,
}

impl World {
    async fn new(name: &str) -> Self {
        count_operator_panics();
        let t = TestNs::new(name).await;
        t.environment("dev", json!({})).await;
        t.app_version("sentinel", "1.0.0", json!({})).await;
        t.app_version("good", "1.0.0", json!({})).await;
        t.release("sentinel", "sentinel", "dev", "1.0.0", json!({})).await;
        let sentinel = t.wait_release("sentinel", healthy_at("1.0.0")).await.status.unwrap();
        let me = tuskfish::client::whoami(&t.client).await.unwrap().unwrap();
        let _ = ME.set(me.clone());
        Self { t, sentinel, me }
    }

    /// Runs the corpus, checks every verdict again after a pause, and the invariants.
    async fn run(&self, category: &str, cases: Vec<Case>) -> usize {
        let t = &self.t;
        let started = std::time::Instant::now();
        let n = cases.len();
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        futures::stream::iter(cases.iter())
            .for_each_concurrent(16, |case| {
                let verdicts = verdicts.clone();
                async move {
                    if let Some(w) = run_case(t, case).await {
                        verdicts.lock().unwrap().push((case.label.clone(), w));
                    }
                }
            })
            .await;
        let verdicts = std::mem::take(&mut *verdicts.lock().unwrap());
        let refused = n - verdicts.len();
        futures::stream::iter(verdicts.iter())
            .for_each_concurrent(16, |(label, w)| check(t, w, label, false))
            .await;
        for case in &cases {
            for (api_version, kind, ns, name) in &case.absent {
                assert!(
                    !exists(&t.client, api_version, kind, ns.as_deref(), name).await,
                    "{}: {kind} {ns:?}/{name} was created",
                    case.label
                );
            }
        }
        self.invariants().await;
        eprintln!(
            "bad-input corpus {category}: {n} inputs ({refused} refused by the API server, {} with a condition) in {:.1}s",
            n - refused,
            started.elapsed().as_secs_f64()
        );
        n
    }

    async fn invariants(&self) {
        let t = &self.t;
        t.nudge::<Release>("sentinel").await;
        let now = t.api::<Release>().get("sentinel").await.unwrap();
        assert_eq!(now.status.as_ref(), Some(&self.sentinel), "the sentinel Release was disturbed");
        let d: Deployment = t.api_in(&t.env_ns("dev")).get("sentinel").await.unwrap();
        let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("registry.example/sentinel:1.0.0"));
        for r in t.api::<Release>().list(&ListParams::default()).await.unwrap() {
            let size = status_size(&r.status);
            assert!(size < STATUS_LIMIT, "Release {:?}: status of {size} bytes", r.metadata.name);
        }
        for a in t.api::<AppVersion>().list(&ListParams::default()).await.unwrap() {
            assert!(status_size(&a.status) < STATUS_LIMIT, "AppVersion {:?}", a.metadata.name);
        }
        for e in t.api::<Environment>().list(&ListParams::default()).await.unwrap() {
            assert!(status_size(&e.status) < STATUS_LIMIT, "Environment {:?}", e.metadata.name);
        }
        // Still alive: a new Release rolls out.
        t.app_version("alive", "1.0.0", json!({})).await;
        t.release("alive", "alive", "dev", "1.0.0", json!({})).await;
        t.wait_release("alive", healthy_at("1.0.0")).await;
        assert_eq!(OPERATOR_PANICS.load(Ordering::SeqCst), 0, "the operator panicked (see the output)");
    }
}

// ---------------------------------------------------------------------------------------------
// Generated inputs: fixed lists of bad strings, each put into every field that takes one.

/// Strings that are not semantic versions (checked below, so the list cannot rot).
fn bad_versions() -> Vec<String> {
    let mut v: Vec<String> = [
        "1",
        "1.0",
        "1.0.0.0",
        "v1.0.0",
        "V1.2.3",
        "01.0.0",
        "1.01.0",
        "1.0.00",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-rc..1",
        "1.0.0-01",
        "1.0.0-rc.01",
        "latest",
        "stable",
        "1.x",
        "1.0.x",
        "1.*",
        "*",
        "~1.0.0",
        "^1.0.0",
        ">=1.0.0",
        "-1.0.0",
        "1.-1.0",
        "1.0.-1",
        "99999999999999999999.0.0",
        "1.0.0 beta",
        "1.0.0-beta!",
        "1.0.0-ü",
        "１.０.０",
        "1..0",
        ".1.0.0",
        "1.0.0.",
        "1,0,0",
        "1_0_0",
        "one.two.three",
        "💥",
        "🐟.🐟.🐟",
        "1.0.0-alpha_beta",
        "1.0.0+build+meta",
        "\t",
        "null",
        "true",
        "0x1.0.0",
        "1e3.0.0",
        "1.0 .0",
        "1.0.0/1",
        "1.0.0\\n",
        "=1.0.0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(200));
    v.push(format!("1.0.0-{}", "a b".repeat(20)));
    for s in &v {
        assert!(semver::Version::parse(s.trim()).is_err(), "{s:?} is a valid version: fix the list");
    }
    v
}

/// Strings that are not semver ranges.
fn bad_ranges() -> Vec<String> {
    let mut v: Vec<String> = [
        "not a range",
        ">>1",
        "=>1.0",
        "1.0.0 - 2.0.0",
        "~>1.0",
        "^",
        "~",
        ">=",
        "1 || 2",
        "||",
        ">=1.0.0 <2.0.0",
        "x.y.z",
        "1.2.3.4",
        "v1",
        "<1.0.0-",
        "~1.2.3-rc..1",
        "==1.0.0",
        "!1.0",
        "1.0,",
        ",1.0",
        "latest",
        "🐟",
        "１.０",
        "*.*.*.*",
        "^01.0",
        ">= 1.0.0, <= ",
        "1.2.3 2.3.4",
        "1.0.0 ||",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(500));
    for s in &v {
        assert!(semver::VersionReq::parse(s).is_err(), "{s:?} is a valid range: fix the list");
    }
    v
}

/// Strings that are not durations like `30m`.
fn bad_durations() -> Vec<String> {
    let v: Vec<String> = [
        "a while",
        "30 m",
        "-5s",
        "1.5h",
        "5w",
        "1y",
        "m",
        "30M",
        "1h30m",
        "PT30M",
        "∞",
        "99999999999999999999s",
        "5 s",
        "0x10s",
        "+5s",
        "5sec",
        "five minutes",
        "30mins",
        "1d2h",
        "٣٠s",
        "30m ago",
        "s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in &v {
        assert!(tuskfish::duration::parse_duration(s).is_none(), "{s:?} is a duration: fix the list");
    }
    v
}

/// The API server's length limits on `AppVersion.spec.version` and `Approval.spec.version`
/// (characters, as OpenAPI counts them).
fn fits_version_schema(s: &str) -> bool {
    (5..=128).contains(&s.chars().count())
}

/// What becomes of `value` in a field the CRD checks with `pattern` (at most `max` characters):
/// refused with the rule's `message` when it does not match, refused for its length when too long,
/// otherwise `then` (the operator's own verdict).
fn by_rule(pattern: &str, max: usize, value: &str, message: &'static str, then: Want) -> Want {
    if value.chars().count() > max {
        Want::Refused
    } else if !regex::Regex::new(pattern).unwrap().is_match(value) {
        Want::RefusedSaying(message)
    } else {
        then
    }
}

const VERSION_RULE: &str = "semantic version";
const RANGE_RULE: &str = "must be a semver range";

#[tokio::test]
async fn generated_versions_ranges_and_durations() {
    let w = World::new("bad-gen").await;
    let t = &w.t;
    // A Release that needs an Approval: approvals for the wrong thing must not unlock it.
    t.environment("gated", json!({"approval": "required"})).await;
    t.release("gated", "good", "gated", "1.0.0", json!({})).await;
    t.wait_release("gated", |s| ready(&s.conditions).is_some_and(|(r, _)| r == "AwaitingApproval")).await;
    let gated = || pending("gated", "AwaitingApproval");

    let range = semver_range();
    let mut cases = Vec::new();
    for (i, v) in bad_versions().into_iter().enumerate() {
        let rv = format!("rv-{i}");
        cases.push(Case::new(
            format!("Release.spec.version {v:?}"),
            vec![release(&rv, json!({"app": "good", "environment": "dev", "version": v}))],
            by_rule(SEMVER, 128, &v, VERSION_RULE, failed(&rv, "InvalidVersion")),
        ));
        let av = format!("av-{i}");
        cases.push(Case::new(
            format!("AppVersion.spec.version {v:?}"),
            vec![app_version(&av, json!({"app": format!("a{i}"), "version": v, "workload": {"image": "x"}}))],
            if fits_version_schema(&v) {
                by_rule(
                    SEMVER,
                    128,
                    &v,
                    VERSION_RULE,
                    Want::AppVersion { name: av, reason: "InvalidVersion" },
                )
            } else {
                Want::Refused
            },
        ));
        let rb = format!("rb-{i}");
        cases.push(Case::new(
            format!("Release.spec.rollback.to {v:?}"),
            vec![release(
                &rb,
                json!({"app": "good", "environment": "dev", "version": "1.0.0", "rollback": {"to": v}}),
            )],
            by_rule(
                SEMVER,
                128,
                &v,
                VERSION_RULE,
                Want::ReleaseSays { name: rb, reason: "InvalidVersion", needle: "spec.rollback.to" },
            ),
        ));
        cases.push(Case::new(
            format!("Approval.spec.version {v:?}"),
            vec![approval(&format!("ap-{i}"), json!({"release": "gated", "version": v, "approver": w.me}))],
            if fits_version_schema(&v) {
                by_rule(SEMVER, 128, &v, VERSION_RULE, gated())
            } else {
                Want::Refused
            },
        ));
    }
    for (i, r) in bad_ranges().into_iter().enumerate() {
        let tr = format!("tr-{i}");
        cases.push(Case::new(
            format!("Release.spec.track {r:?}"),
            vec![release(&tr, json!({"app": "good", "environment": "dev", "track": r}))],
            by_rule(&range, 256, &r, RANGE_RULE, failed(&tr, "InvalidTrackRange")),
        ));
        let dp = format!("dp-{i}");
        cases.push(Case::new(
            format!("Release.spec.dependsOn[].version {r:?}"),
            vec![release(
                &dp,
                json!({"app": "good", "environment": "dev", "version": "1.0.0",
                       "dependsOn": [{"app": "db", "version": r}]}),
            )],
            by_rule(&range, 256, &r, RANGE_RULE, failed(&dp, "InvalidDependency")),
        ));
        let vl = format!("vl-{i}");
        cases.push(Case::new(
            format!("Environment.spec.versionLine {r:?}"),
            vec![environment(&vl, json!({"namespace": t.env_ns(&vl), "tier": "dev", "versionLine": r}))],
            by_rule(
                &range,
                256,
                &r,
                RANGE_RULE,
                Want::Environment { name: vl, reason: "InvalidVersionLine" },
            ),
        ));
    }
    for (i, d) in bad_durations().into_iter().enumerate() {
        let sk = format!("sk-{i}");
        cases.push(Case::new(
            format!("Release.spec.promoteFrom.soak {d:?}"),
            vec![release(
                &sk,
                json!({"app": "good", "environment": "dev", "promoteFrom": {"environment": "up", "soak": d}}),
            )],
            by_rule(DURATION, 32, &d, "must be a duration", failed(&sk, "InvalidSoak")),
        ));
    }
    // A Release into an Environment with a broken line waits for the Environment.
    cases.push(Case::new(
        "Release into an Environment whose versionLine is broken",
        vec![
            environment(
                "broken-line",
                json!({"namespace": t.env_ns("broken-line"), "tier": "dev", "versionLine": ">=1.4.0-rc..1"}),
            ),
            release(
                "into-broken-line",
                json!({"app": "good", "environment": "broken-line", "version": "1.0.0"}),
            ),
        ],
        pending("into-broken-line", "EnvironmentNotReady"),
    ));
    let n = w.run("generated (versions, ranges, durations)", cases).await;
    assert!(n >= 200, "only {n} generated inputs");
    // None of the approvals unlocked the gated Release.
    let gated = t.api::<Release>().get("gated").await.unwrap().status.unwrap();
    assert_eq!(gated.current_version, None);
    assert!(gated.history.is_empty(), "{:?}", gated.history);
}

// ---------------------------------------------------------------------------------------------
// Hand-written: references, conflicting fields, dependencies, approvals, environments, freezes,
// numbers.

#[tokio::test]
async fn references_conflicts_gates_and_environments() {
    let w = World::new("bad-ref").await;
    let t = &w.t;
    t.environment("owner", json!({})).await;
    t.environment("gated", json!({"approval": "required"})).await;
    t.release("gated", "good", "gated", "1.0.0", json!({})).await;
    let gated = || pending("gated", "AwaitingApproval");
    for app in ["cyc-a", "cyc-b", "tri-a", "tri-b", "tri-c", "selfish", "selfdep", "waits"] {
        t.app_version(app, "1.0.0", json!({})).await;
    }
    let good = |name: &str, extra: Value| {
        let mut spec = json!({"app": "good", "environment": "dev"});
        common::merge(&mut spec, extra);
        release(name, spec)
    };
    let now = jiff::Timestamp::now();
    let at = |secs: i64| (now + jiff::SignedDuration::from_secs(secs)).to_string();

    let mut cases = vec![
        // Missing references.
        Case::new(
            "unknown Environment",
            vec![good("ref-env", json!({"environment": "nowhere", "version": "1.0.0"}))],
            pending("ref-env", "EnvironmentNotFound"),
        ),
        Case::new(
            "Environment named with a namespace",
            vec![good("ref-env-ns", json!({"environment": format!("{}/dev", t.ns), "version": "1.0.0"}))],
            pending("ref-env-ns", "EnvironmentNotFound"),
        ),
        Case::new(
            "unicode Environment name",
            vec![good("ref-env-u", json!({"environment": "dév-🐟", "version": "1.0.0"}))],
            pending("ref-env-u", "EnvironmentNotFound"),
        ),
        Case::new(
            "Environment name of 253 characters",
            vec![good("ref-env-253", json!({"environment": "e".repeat(253), "version": "1.0.0"}))],
            pending("ref-env-253", "EnvironmentNotFound"),
        ),
        Case::new(
            "Environment name of 254 characters",
            vec![good("ref-env-254", json!({"environment": "e".repeat(254), "version": "1.0.0"}))],
            Want::Refused,
        ),
        Case::new(
            "app without AppVersions",
            vec![release("ref-app", json!({"app": "ghost", "environment": "dev", "version": "1.0.0"}))],
            pending("ref-app", "AppVersionNotFound"),
        ),
        Case::new(
            "version without an AppVersion",
            vec![good("ref-ver", json!({"version": "9.9.9"}))],
            pending("ref-ver", "AppVersionNotFound"),
        ),
        Case::new(
            "track matching nothing",
            vec![good("ref-track", json!({"track": "^9"}))],
            pending("ref-track", "NoMatchingVersion"),
        ),
        Case::new(
            "promotion from an unknown Environment",
            vec![good("ref-up", json!({"promoteFrom": {"environment": "nowhere-up"}}))],
            pending("ref-up", "UpstreamNotFound"),
        ),
        Case::new(
            "promotion from its own Environment",
            vec![release(
                "ref-self-up",
                json!({"app": "selfish", "environment": "dev", "promoteFrom": {"environment": "dev"}}),
            )],
            pending("ref-self-up", "UpstreamNotHealthy"),
        ),
        Case::new(
            "rollback to a version that never ran here",
            vec![good("ref-rb", json!({"version": "1.0.0", "rollback": {"to": "0.9.0"}}))],
            failed("ref-rb", "RollbackTargetNotInHistory"),
        ),
        // Conflicting version sources.
        Case::new(
            "version and track",
            vec![good("src-vt", json!({"version": "1.0.0", "track": "~1.0"}))],
            Want::RefusedSaying(ONE_SOURCE),
        ),
        Case::new(
            "version and promoteFrom",
            vec![good("src-vp", json!({"version": "1.0.0", "promoteFrom": {"environment": "dev"}}))],
            Want::RefusedSaying(ONE_SOURCE),
        ),
        Case::new(
            "track and promoteFrom",
            vec![good("src-tp", json!({"track": "*", "promoteFrom": {"environment": "dev"}}))],
            Want::RefusedSaying(ONE_SOURCE),
        ),
        Case::new(
            "all three sources",
            vec![good(
                "src-all",
                json!({"version": "1.0.0", "track": "*", "promoteFrom": {"environment": "dev"}}),
            )],
            Want::RefusedSaying(ONE_SOURCE),
        ),
        Case::new("no version source", vec![good("src-none", json!({}))], Want::RefusedSaying(ONE_SOURCE)),
        Case::new(
            "empty version",
            vec![good("src-empty", json!({"version": ""}))],
            Want::RefusedSaying(VERSION_RULE),
        ),
        Case::new(
            "empty track",
            vec![good("src-empty-track", json!({"track": ""}))],
            Want::RefusedSaying(RANGE_RULE),
        ),
        Case::new("version as a number", vec![good("src-num", json!({"version": 1}))], Want::Refused),
        Case::new(
            "dependsOn the Release's own app",
            vec![release(
                "dep-self",
                json!({"app": "selfdep", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "selfdep"}]}),
            )],
            Want::RefusedSaying("an app cannot wait for itself"),
        ),
        Case::new(
            "dependsOn an app nobody runs",
            vec![release(
                "dep-ghost",
                json!({"app": "waits", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "ghost"}]}),
            )],
            pending("dep-ghost", "WaitingForDependencies"),
        ),
        Case::new(
            "dependsOn app name of 54 characters",
            vec![good("dep-long", json!({"version": "1.0.0", "dependsOn": [{"app": "d".repeat(54)}]}))],
            Want::Refused,
        ),
        // Negative and out-of-range numbers.
        Case::new(
            "progressDeadlineSeconds 0",
            vec![good("num-0", json!({"version": "1.0.0", "progressDeadlineSeconds": 0}))],
            Want::Refused,
        ),
        Case::new(
            "progressDeadlineSeconds -1",
            vec![good("num-neg", json!({"version": "1.0.0", "progressDeadlineSeconds": -1}))],
            Want::Refused,
        ),
        Case::new(
            "progressDeadlineSeconds over a day",
            vec![good("num-big", json!({"version": "1.0.0", "progressDeadlineSeconds": 86401}))],
            Want::Refused,
        ),
        Case::new(
            "progressDeadlineSeconds beyond int32",
            vec![good("num-i64", json!({"version": "1.0.0", "progressDeadlineSeconds": 4_294_967_296_i64}))],
            Want::Refused,
        ),
        Case::new(
            "progressDeadlineSeconds as a string",
            vec![good("num-str", json!({"version": "1.0.0", "progressDeadlineSeconds": "300"}))],
            Want::Refused,
        ),
        Case::new(
            "progressDeadlineSeconds 1.5",
            vec![good("num-frac", json!({"version": "1.0.0", "progressDeadlineSeconds": 1.5}))],
            Want::Refused,
        ),
        Case::new(
            "replicas -1",
            vec![app_version(
                "neg-replicas",
                json!({"app": "negr", "version": "1.0.0", "workload": {"image": "x", "replicas": -1}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "containerPort 0",
            vec![app_version(
                "port-0",
                json!({"app": "p0", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "http", "containerPort": 0}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "containerPort 65536",
            vec![app_version(
                "port-big",
                json!({"app": "pb", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "http", "containerPort": 65536}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "servicePort -80",
            vec![app_version(
                "port-neg",
                json!({"app": "pn", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "http", "containerPort": 80, "servicePort": -80}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "port name in capitals",
            vec![app_version(
                "port-caps",
                json!({"app": "pc", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "HTTP", "containerPort": 80}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "port name of 16 characters",
            vec![app_version(
                "port-long",
                json!({"app": "pl", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "p".repeat(16), "containerPort": 80}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "protocol HTTP",
            vec![app_version(
                "port-proto",
                json!({"app": "pp", "version": "1.0.0", "workload": {"image": "x", "ports": [{"name": "http", "containerPort": 80, "protocol": "HTTP"}]}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "workload without image",
            vec![app_version(
                "no-image",
                json!({"app": "ni", "version": "1.0.0", "workload": {"replicas": 1}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "empty image",
            vec![app_version(
                "empty-image",
                json!({"app": "ei", "version": "1.0.0", "workload": {"image": ""}}),
            )],
            Want::Refused,
        ),
        Case::new(
            "negative probe period",
            {
                let mut o = deploy("neg-probe", "dev", json!([]));
                o[1]["spec"]["workload"] =
                    json!({"image": "x", "readinessProbe": {"periodSeconds": -5, "tcpSocket": {"port": 80}}});
                o
            },
            refused_or(failed("neg-probe", "ApplyRejected")),
        ),
        Case::new(
            "environment variable name with a space",
            {
                let mut o = deploy("bad-env-var", "dev", json!([]));
                o[1]["spec"]["workload"] = json!({"image": "x", "env": [{"name": "BAD=NAME", "value": "x"}]});
                o
            },
            failed("bad-env-var", "ApplyRejected"),
        ),
        // Environments claiming namespaces.
        Case::new(
            "namespace of another Environment",
            vec![environment("claim-owner", json!({"namespace": t.env_ns("owner"), "tier": "dev"}))],
            Want::Environment { name: "claim-owner".into(), reason: "NamespaceOwnedByOther" },
        ),
        Case::new(
            "namespace kube-system",
            vec![environment("claim-ks", json!({"namespace": "kube-system", "tier": "prod"}))],
            Want::Environment { name: "claim-ks".into(), reason: "NamespaceNotGranted" },
        ),
        Case::new(
            "namespace default",
            vec![environment("claim-default", json!({"namespace": "default", "tier": "dev"}))],
            Want::Environment { name: "claim-default".into(), reason: "NamespaceNotGranted" },
        ),
        Case::new(
            "namespace kube-public",
            vec![environment("claim-kp", json!({"namespace": "kube-public", "tier": "dev"}))],
            Want::Environment { name: "claim-kp".into(), reason: "NamespaceNotGranted" },
        ),
        Case::new(
            "the pipeline namespace itself",
            vec![environment("claim-self", json!({"namespace": t.ns, "tier": "dev"}))],
            Want::Environment { name: "claim-self".into(), reason: "NamespaceNotGranted" },
        ),
        Case::new(
            "a Release into a refused Environment",
            vec![
                environment("claim-ks2", json!({"namespace": "kube-system", "tier": "dev"})),
                good("into-ks", json!({"environment": "claim-ks2", "version": "1.0.0"})),
            ],
            pending("into-ks", "EnvironmentNotReady"),
        )
        .absent("apps/v1", "Deployment", Some("kube-system"), "good"),
        Case::new(
            "namespace in capitals",
            vec![environment("ns-caps", json!({"namespace": "Kube-System", "tier": "dev"}))],
            Want::Refused,
        ),
        Case::new(
            "namespace with an underscore",
            vec![environment("ns-under", json!({"namespace": "a_b", "tier": "dev"}))],
            Want::Refused,
        ),
        Case::new(
            "namespace of 64 characters",
            vec![environment("ns-long", json!({"namespace": "n".repeat(64), "tier": "dev"}))],
            Want::Refused,
        ),
        Case::new(
            "empty namespace",
            vec![environment("ns-empty", json!({"namespace": "", "tier": "dev"}))],
            Want::Refused,
        ),
        Case::new(
            "unicode namespace",
            vec![environment("ns-u", json!({"namespace": "prød", "tier": "dev"}))],
            Want::Refused,
        ),
        Case::new(
            "tier qa",
            vec![environment("tier-qa", json!({"namespace": t.env_ns("tier-qa"), "tier": "qa"}))],
            Want::Refused,
        ),
        Case::new(
            "approval maybe",
            vec![environment(
                "appr-maybe",
                json!({"namespace": t.env_ns("appr-maybe"), "tier": "dev", "approval": "maybe"}),
            )],
            Want::Refused,
        ),
        Case::new(
            "unicode Environment object name",
            vec![environment("prød", json!({"namespace": t.env_ns("u"), "tier": "dev"}))],
            Want::Refused,
        ),
        // Approvals for other things than the one waiting.
        Case::new(
            "Approval for an unknown Release",
            vec![approval("ap-ghost", json!({"release": "nobody", "version": "1.0.0"}))],
            gated(),
        ),
        Case::new(
            "Approval for another version",
            vec![approval("ap-other", json!({"release": "gated", "version": "1.0.1"}))],
            gated(),
        ),
        Case::new(
            "Approval for a version that does not exist",
            vec![approval("ap-999", json!({"release": "gated", "version": "999.0.0"}))],
            gated(),
        ),
        Case::new(
            "Approval naming a unicode Release",
            vec![approval("ap-u", json!({"release": "gätéd", "version": "1.0.0"}))],
            gated(),
        ),
        Case::new(
            "Approval naming a Release of 253 characters",
            vec![approval("ap-253", json!({"release": "g".repeat(253), "version": "1.0.0"}))],
            gated(),
        ),
        Case::new(
            "Approval naming a Release of 254 characters",
            vec![approval("ap-254", json!({"release": "g".repeat(254), "version": "1.0.0"}))],
            Want::Refused,
        ),
        Case::new(
            "Approval with an empty Release",
            vec![approval("ap-empty", json!({"release": "", "version": "1.0.0"}))],
            Want::Refused,
        ),
        Case::new(
            "Approval with a version range",
            vec![approval("ap-range", json!({"release": "gated", "version": ">=1.0.0"}))],
            Want::RefusedSaying(VERSION_RULE),
        ),
        Case::new(
            "Approval with a build-metadata twin",
            vec![approval("ap-build", json!({"release": "gated", "version": "1.0.0+evil"}))],
            gated(),
        ),
        Case::new(
            "Approval of 1.0.0-rc.1 for 1.0.0",
            vec![approval("ap-pre", json!({"release": "gated", "version": "1.0.0-rc.1"}))],
            gated(),
        ),
    ];
    // Malformed freeze windows: each in an Environment of its own, with a Release that would roll out.
    // The CRD's rules refuse most of them (`Some(its words)`); the operator judges the rest.
    let windows = [
        (
            "ends before it starts",
            json!({"start": at(3600), "end": at(-3600)}),
            Some("must end after it starts"),
        ),
        ("ends when it starts", json!({"start": at(0), "end": at(0)}), Some("must end after it starts")),
        ("start 'yesterday'", json!({"start": "yesterday"}), Some("start must be an RFC 3339 time")),
        (
            "month 13",
            json!({"start": at(-60), "end": "2026-13-01T00:00:00Z"}),
            Some("end must be an RFC 3339 time"),
        ),
        ("date without time", json!({"start": "2026-11-25"}), Some("start must be an RFC 3339 time")),
        (
            "time without offset",
            json!({"start": "2026-11-25T10:00:00"}),
            Some("start must be an RFC 3339 time"),
        ),
        (
            "end without start",
            json!({"end": at(3600)}),
            Some("exactly one of start (and optionally end), weekly and recurrence"),
        ),
        (
            "neither start nor weekly",
            json!({"reason": "nothing"}),
            Some("exactly one of start (and optionally end), weekly and recurrence"),
        ),
        (
            "start and weekly",
            json!({"start": at(-60), "weekly": {"days": ["Mon"], "from": "10:00", "to": "11:00"}}),
            Some("exactly one of start (and optionally end), weekly and recurrence"),
        ),
        (
            "day Funday",
            json!({"weekly": {"days": ["Funday"], "from": "10:00", "to": "11:00"}}),
            Some("must be weekdays"),
        ),
        (
            "day M",
            json!({"weekly": {"days": ["M"], "from": "10:00", "to": "11:00"}}),
            Some("must be weekdays"),
        ),
        (
            "hour 25",
            json!({"weekly": {"days": ["Mon"], "from": "25:00", "to": "11:00"}}),
            Some("weekly.from must be a time of day"),
        ),
        (
            "minute 60",
            json!({"weekly": {"days": ["Mon"], "from": "10:00", "to": "12:60"}}),
            Some("weekly.to must be a time of day"),
        ),
        (
            "from noon",
            json!({"weekly": {"days": ["Mon"], "from": "noon", "to": "13:00"}}),
            Some("weekly.from must be a time of day"),
        ),
        (
            "from 12",
            json!({"weekly": {"days": ["Mon"], "from": "12", "to": "13:00"}}),
            Some("weekly.from must be a time of day"),
        ),
        (
            "to -1:00",
            json!({"weekly": {"days": ["Mon"], "from": "10:00", "to": "-1:00"}}),
            Some("weekly.to must be a time of day"),
        ),
        (
            "time zone Mars/Olympus",
            json!({"weekly": {"days": ["Mon"], "from": "10:00", "to": "11:00", "timeZone": "Mars/Olympus"}}),
            None,
        ),
        (
            "time zone ../../etc/passwd",
            json!({"weekly": {"days": ["Mon"], "from": "10:00", "to": "11:00", "timeZone": "../../etc/passwd"}}),
            None,
        ),
        (
            "recurrence with an unknown BYDAY",
            json!({"recurrence": {"rule": "FREQ=WEEKLY;BYDAY=XX", "start": "2026-01-01T00:00:00", "duration": "1h"}}),
            None,
        ),
        (
            "recurrence in time zone Mars/Olympus",
            json!({"recurrence": {"rule": "FREQ=DAILY", "start": "2026-01-01T00:00:00", "duration": "1h", "timeZone": "Mars/Olympus"}}),
            None,
        ),
        (
            "recurrence every second",
            json!({"recurrence": {"rule": "FREQ=SECONDLY", "start": "2026-01-01T00:00:00", "duration": "1h"}}),
            Some("recurrence.rule must be an RFC 5545 RRULE"),
        ),
        (
            "recurrence lasting 0s",
            json!({"recurrence": {"rule": "FREQ=DAILY", "start": "2026-01-01T00:00:00", "duration": "0s"}}),
            None,
        ),
    ];
    for (i, (what, window, refusal)) in windows.into_iter().enumerate() {
        let name = format!("fz-{i}");
        let env = environment(
            &name,
            json!({"namespace": t.env_ns(&name), "tier": "dev", "freezeWindows": [window]}),
        );
        cases.push(match refusal {
            Some(words) => Case::new(format!("freeze window: {what}"), vec![env], Want::RefusedSaying(words)),
            None => Case::new(
                format!("freeze window: {what}"),
                vec![env, good(&name, json!({"environment": name, "version": "1.0.0"}))],
                failed(&name, "InvalidFreezeWindow"),
            ),
        });
    }
    for (i, (what, window)) in [
        ("weekly without from", json!({"weekly": {"days": ["Mon"], "to": "11:00"}})),
        ("days not a list", json!({"weekly": {"days": "Mon", "from": "10:00", "to": "11:00"}})),
        ("window not an object", json!("always")),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("fz-schema-{i}");
        cases.push(Case::new(
            format!("freeze window: {what}"),
            vec![environment(
                &name,
                json!({"namespace": t.env_ns(&name), "tier": "dev", "freezeWindows": [window]}),
            )],
            Want::Refused,
        ));
    }
    let name = "allow-bad".to_string();
    let bad_allow = json!({"recurrence": {"rule": "FREQ=WEEKLY;BYDAY=XX", "start": "2026-01-01T00:00:00", "duration": "1h"}});
    cases.push(Case::new(
        "allow window: recurrence with an unknown BYDAY",
        vec![
            environment(
                &name,
                json!({"namespace": t.env_ns(&name), "tier": "dev", "allowWindows": [bad_allow]}),
            ),
            good(&name, json!({"environment": name, "version": "1.0.0"})),
        ],
        failed(&name, "InvalidAllowWindow"),
    ));
    // Cycles, applied as one case each so that the Releases of a cycle meet.
    cases.push(Case::new(
        "dependsOn cycle a -> b -> a",
        vec![
            release("cyc-a", json!({"app": "cyc-a", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "cyc-b"}]})),
            release("cyc-b", json!({"app": "cyc-b", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "cyc-a", "version": ">=1"}]})),
        ],
        Want::All(vec![failed("cyc-a", "DependencyCycle"), failed("cyc-b", "DependencyCycle")]),
    ));
    cases.push(Case::new(
        "dependsOn cycle a -> b -> c -> a",
        vec![
            release("tri-a", json!({"app": "tri-a", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "tri-b"}]})),
            release("tri-b", json!({"app": "tri-b", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "tri-c"}]})),
            release("tri-c", json!({"app": "tri-c", "environment": "dev", "version": "1.0.0", "dependsOn": [{"app": "tri-a"}]})),
        ],
        Want::All(vec![failed("tri-a", "DependencyCycle"), failed("tri-b", "DependencyCycle"), failed("tri-c", "DependencyCycle")]),
    ));
    let n = w.run("references, conflicts, gates, environments", cases).await;
    assert!(n >= 80, "only {n} inputs");
    let gated = t.api::<Release>().get("gated").await.unwrap().status.unwrap();
    assert!(
        gated.history.is_empty() && gated.current_version.is_none(),
        "an Approval for something else unlocked it"
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-written: manifests (scope, namespaces, kinds, names, sizes), changes, oversized fields.

/// Cluster-scoped kinds served by every supported API server (1.33 – 1.37).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "PersistentVolume"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
    ("storage.k8s.io/v1", "CSINode"),
];

/// Kinds no supported API server serves any more: the operator cannot even tell their scope.
const NO_LONGER_SERVED: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
];

fn config_map(name: &str, extra: Value) -> Value {
    let mut cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    common::merge(&mut cm, extra);
    cm
}

#[tokio::test]
async fn manifests_names_sizes_and_changes() {
    let w = World::new("bad-man").await;
    let t = &w.t;
    let dev_ns = t.env_ns("dev");
    t.environment("vars", json!({"variables": {"OTHER": "kube-system", "SLASH": "a/b", "Q": "x?dryRun=All", "SP": "a b", "PIPELINE": t.ns}})).await;
    t.environment("appr", json!({"approval": "required"})).await;
    // An object in the Environment's namespace that tuskfish does not manage.
    t.api_in::<ConfigMap>(&dev_ns)
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "unmanaged"}})).unwrap(),
        )
        .await
        .unwrap();
    let mut cases = Vec::new();

    for (i, (api_version, kind)) in CLUSTER_SCOPED.iter().enumerate() {
        let name = format!("cs-{i}");
        let object = format!("tf-bad-{}-{i}", t.ns);
        cases.push(
            Case::new(
                format!("cluster-scoped {kind} ({api_version})"),
                deploy(
                    &name,
                    "dev",
                    json!([{"apiVersion": api_version, "kind": kind, "metadata": {"name": object}}]),
                ),
                failed(&name, "ClusterScopedManifest"),
            )
            .absent(api_version, kind, None, &object),
        );
    }
    for (i, (api_version, kind)) in NO_LONGER_SERVED.iter().enumerate() {
        let name = format!("gone-{i}");
        let object = format!("tf-bad-{}-gone-{i}", t.ns);
        cases.push(Case::new(
            format!("{kind} of the removed {api_version}"),
            deploy(
                &name,
                "dev",
                json!([{"apiVersion": api_version, "kind": kind, "metadata": {"name": object}}]),
            ),
            pending(&name, "UnknownKind"),
        ));
    }
    let role = format!("tf-bad-{}-role", t.ns);
    cases.push(
        Case::new(
            "a ConfigMap, then a ClusterRole naming the Environment's namespace",
            deploy("cs-mixed", "dev", json!([
                config_map("cs-mixed-first", json!({})),
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": role, "namespace": dev_ns}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
            ])),
            failed("cs-mixed", "ClusterScopedManifest"),
        )
        .absent("rbac.authorization.k8s.io/v1", "ClusterRole", None, &role)
        .absent("v1", "ConfigMap", Some(&dev_ns), "cs-mixed-first"),
    );
    cases.push(
        Case::new(
            "a List wrapping a Namespace",
            deploy("cs-list", "dev", json!([{"apiVersion": "v1", "kind": "List", "metadata": {"name": "l"},
                "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("tf-bad-{}-list", t.ns)}}]}])),
            pending("cs-list", "UnknownKind"),
        )
        .absent("v1", "Namespace", None, &format!("tf-bad-{}-list", t.ns)),
    );
    for (i, ns) in
        ["kube-system", "default", "kube-public", t.ns.as_str(), "does-not-exist", &t.env_ns("vars")]
            .into_iter()
            .enumerate()
    {
        let name = format!("fn-{i}");
        cases.push(
            Case::new(
                format!("ConfigMap in namespace {ns}"),
                deploy(&name, "dev", json!([config_map(&name, json!({"metadata": {"namespace": ns}}))])),
                failed(&name, "ForeignNamespace"),
            )
            .absent("v1", "ConfigMap", Some(ns), &name),
        );
    }
    for (var, ns) in [("OTHER", "kube-system"), ("PIPELINE", t.ns.as_str())] {
        let name = format!("fnv-{}", var.to_lowercase());
        // The API server checks a manifest's namespace as a DNS label, so it refuses a variable
        // there; should it let one through, the renderer judges the substituted namespace.
        let objects = deploy(
            &name,
            "vars",
            json!([config_map(&name, json!({"metadata": {"namespace": format!("${{{var}}}")}}))]),
        );
        cases.push(
            Case::new(
                format!("ConfigMap in namespace ${{{var}}} = {ns}"),
                objects,
                refused_or(failed(&name, "ForeignNamespace")),
            )
            .absent("v1", "ConfigMap", Some(ns), &name),
        );
    }
    cases.push(Case::new(
        "namespace as a number",
        deploy("fn-num", "dev", json!([config_map("fn-num", json!({"metadata": {"namespace": 42}}))])),
        refused_or(failed("fn-num", "ForeignNamespace")),
    ));
    for (i, kind) in ["Release", "Environment", "AppVersion", "Approval"].into_iter().enumerate() {
        let name = format!("fk-{i}");
        cases.push(Case::new(
            format!("tuskfish.dev {kind} as a manifest"),
            deploy(&name, "dev", json!([{"apiVersion": "tuskfish.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": {}}])),
            failed(&name, "ForbiddenKind"),
        ));
    }
    for (i, (api_version, kind)) in [
        ("example.com/v1", "Widget"),
        ("v1", "Frobnicator"),
        ("apps/v1", "Deploymnet"),
        ("v1", "configmap"),
        ("apps/v2", "Deployment"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("uk-{i}");
        cases.push(Case::new(
            format!("unknown kind {kind} of {api_version}"),
            deploy(
                &name,
                "dev",
                json!([{"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}]),
            ),
            pending(&name, "UnknownKind"),
        ));
    }
    let malformed = [
        ("no apiVersion", json!({"kind": "ConfigMap", "metadata": {"name": "x"}})),
        ("no kind", json!({"apiVersion": "v1", "metadata": {"name": "x"}})),
        ("no name", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        (
            "generateName only",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}}),
        ),
        (
            "labels as a string",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": "a=b"}}),
        ),
        ("apiVersion a/b/c", json!({"apiVersion": "a/b/c", "kind": "ConfigMap", "metadata": {"name": "x"}})),
        (
            "apiVersion with a space",
            json!({"apiVersion": "foo bar/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        ),
        ("apiVersion ../v1", json!({"apiVersion": "../v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
        (
            "apiVersion with a query",
            json!({"apiVersion": "apps/v1?watch=1", "kind": "Deployment", "metadata": {"name": "x"}}),
        ),
        ("apiVersion apps/", json!({"apiVersion": "apps/", "kind": "Deployment", "metadata": {"name": "x"}})),
        ("name a#b", config_map("a#b", json!({}))),
        ("name with a query", config_map("x?dryRun=All", json!({}))),
        ("name with a space", config_map("a b", json!({}))),
        ("name ..", config_map("..", json!({}))),
        ("name with a newline", config_map("a\nb", json!({}))),
        ("name a/b", config_map("a/b", json!({}))),
        ("name %2e%2e", config_map("%2e%2e", json!({}))),
    ];
    for (i, (what, m)) in malformed.into_iter().enumerate() {
        let name = format!("mf-{i}");
        cases.push(Case::new(
            format!("malformed manifest: {what}"),
            deploy(&name, "dev", json!([m])),
            refused_or(failed(&name, "InvalidManifest")),
        ));
    }
    for (i, var) in ["SLASH", "Q", "SP"].into_iter().enumerate() {
        let name = format!("nv-{i}");
        cases.push(Case::new(
            format!("name from ${{{var}}}"),
            deploy(&name, "vars", json!([config_map(&format!("${{{var}}}"), json!({}))])),
            failed(&name, "InvalidManifest"),
        ));
    }
    cases.extend([
        Case::new("unknown variable", deploy("uv", "dev", json!([config_map("uv", json!({"data": {"k": "${NOT_DEFINED}"}}))])), failed("uv", "UnknownVariable")),
        Case::new("unknown variable in a name", deploy("uvn", "dev", json!([config_map("${NOT_DEFINED}", json!({}))])), failed("uvn", "UnknownVariable")),
        Case::new("the same object twice", deploy("dup", "dev", json!([config_map("twice", json!({})), config_map("twice", json!({}))])), failed("dup", "DuplicateObject")),
        Case::new("nothing to deploy", vec![app_version("empty-av", json!({"app": "empty", "version": "1.0.0"}))], Want::RefusedSaying("nothing to deploy")),
        Case::new("unicode ConfigMap name", deploy("uni", "dev", json!([config_map("ü", json!({}))])), failed("uni", "ApplyRejected")),
        Case::new("ConfigMap name of 300 characters", deploy("longname", "dev", json!([config_map(&"n".repeat(300), json!({}))])), refused_or(failed("longname", "ApplyRejected"))),
        Case::new("Deployment with replicas -1", deploy("neg-dep", "dev", json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "neg-dep"},
            "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}])), failed("neg-dep", "ApplyRejected")),
        Case::new("Service port 0", deploy("svc-0", "dev", json!([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-0"}, "spec": {"ports": [{"port": 0}]}}])), failed("svc-0", "ApplyRejected")),
        Case::new("the sentinel's Deployment", deploy("steal", "dev", json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sentinel"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "evil"}]}}}}])), failed("steal", "OwnershipConflict")),
        Case::new("the sentinel's Service", deploy("steal-svc", "dev", json!([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sentinel"}, "spec": {"ports": [{"port": 1}]}}])), failed("steal-svc", "OwnershipConflict")),
        Case::new("an unmanaged ConfigMap", deploy("steal-cm", "dev", json!([config_map("unmanaged", json!({}))])), failed("steal-cm", "OwnershipConflict")),
        Case::new("Release name of 64 characters", vec![release(&"r".repeat(64), json!({"app": "good", "environment": "dev", "version": "1.0.0"}))], failed(&"r".repeat(64), "NameTooLong")),
        Case::new("Environment name of 63 characters (the longest label)", vec![
            environment(&"e".repeat(63), json!({"namespace": t.env_ns("e63"), "tier": "dev"})),
            release("into-e63", json!({"app": "good", "environment": "e".repeat(63), "version": "1.0.0"})),
        ], Want::Healthy { name: "into-e63".into(), version: "1.0.0" }),
        // Names and fields the schema refuses.
        Case::new("unicode Release name", vec![release("rélease", json!({"app": "good", "environment": "dev", "version": "1.0.0"}))], Want::Refused),
        Case::new("Release name of 254 characters", vec![release(&"r".repeat(254), json!({"app": "good", "environment": "dev", "version": "1.0.0"}))], Want::Refused),
        Case::new("unicode AppVersion name", vec![app_version("äpp-1.0.0", json!({"app": "app", "version": "1.0.0", "workload": {"image": "x"}}))], Want::Refused),
        Case::new("app in capitals", vec![app_version("caps-1.0.0", json!({"app": "Payments", "version": "1.0.0", "workload": {"image": "x"}}))], Want::Refused),
        Case::new("app of 54 characters", vec![app_version("app54", json!({"app": "a".repeat(54), "version": "1.0.0", "workload": {"image": "x"}}))], Want::Refused),
        Case::new("app starting with a dash", vec![app_version("dash", json!({"app": "-x", "version": "1.0.0", "workload": {"image": "x"}}))], Want::Refused),
        Case::new("app emoji", vec![release("emoji-app", json!({"app": "🐟", "environment": "dev", "version": "1.0.0"}))], Want::Refused),
        Case::new("change id of 65 characters", vec![app_version("chg65", json!({"app": "chg65", "version": "1.0.0", "workload": {"image": "x"}, "changes": [{"id": "C".repeat(65)}]}))], Want::Refused),
        Case::new("empty change id", vec![app_version("chg0", json!({"app": "chg0", "version": "1.0.0", "workload": {"image": "x"}, "changes": [{"id": ""}]}))], Want::Refused),
        Case::new("manifests not a list", vec![app_version("mnl", json!({"app": "mnl", "version": "1.0.0", "manifests": {"a": 1}}))], Want::Refused),
        Case::new("a manifest that is a string", vec![app_version("mstr", json!({"app": "mstr", "version": "1.0.0", "manifests": ["kind: ConfigMap"]}))], Want::Refused),
    ]);
    // Sizes: near and above the API server's and etcd's limits, and many objects.
    let blob = |bytes: usize| {
        json!([config_map(&format!("blob-{bytes}"), json!({"data": {"k": "z".repeat(bytes)}}))])
    };
    cases.push(Case::new(
        "ConfigMap of 900 KB",
        deploy("big-900k", "dev", blob(900_000)),
        Want::Healthy { name: "big-900k".into(), version: "1.0.0" },
    ));
    cases.push(Case::new(
        "ConfigMap of 1.2 MB",
        deploy("big-1200k", "dev", blob(1_200_000)),
        failed("big-1200k", "ApplyRejected"),
    ));
    cases.push(Case::new(
        "AppVersion of 1.6 MB",
        vec![deploy("big-1600k", "dev", blob(1_600_000)).remove(1)],
        Want::Refused,
    ));
    cases.push(Case::new(
        "AppVersion of 3.2 MB",
        vec![deploy("big-3200k", "dev", blob(3_200_000)).remove(1)],
        Want::Refused,
    ));
    let many =
        |n: usize| Value::Array((0..n).map(|i| config_map(&format!("cm{n}-{i:04}"), json!({}))).collect());
    cases.push(Case::new(
        "120 ConfigMaps",
        deploy("many-120", "dev", many(120)),
        Want::Healthy { name: "many-120".into(), version: "1.0.0" },
    ));
    cases.push(
        Case::new(
            "2,000 ConfigMaps",
            deploy("many-2000", "dev", many(2000)),
            failed("many-2000", "TooManyObjects"),
        )
        .absent("v1", "ConfigMap", Some(&dev_ns), "cm2000-0000"),
    );
    // Change lists: thousands of changes, huge titles, unicode ids.
    let changes = |n: usize, title: &str| -> Value {
        (0..n)
            .map(|i| json!({"id": format!("FIN-{i}"), "title": format!("{title} {i}"), "type": "story"}))
            .collect()
    };
    let with_changes = |name: &str, changes: Value| {
        vec![
            release(name, json!({"app": name, "environment": "dev", "version": "1.0.0"})),
            app_version(
                name,
                json!({"app": name, "version": "1.0.0", "workload": {"image": "x"}, "changes": changes}),
            ),
        ]
    };
    cases.push(Case::new(
        "5,000 changes",
        with_changes("chg-5000", changes(5000, "fix")),
        Want::Healthy { name: "chg-5000".into(), version: "1.0.0" },
    ));
    cases.push(Case::new(
        "20,000 changes with long titles",
        with_changes("chg-20000", changes(20_000, &"t".repeat(60))),
        refused_or(Want::Healthy { name: "chg-20000".into(), version: "1.0.0" }),
    ));
    cases.push(Case::new(
        "a title of 200 KB",
        with_changes("chg-title", json!([{"id": "FIN-1", "title": "t".repeat(200_000)}])),
        Want::Healthy { name: "chg-title".into(), version: "1.0.0" },
    ));
    cases.push(Case::new(
        "unicode change ids",
        with_changes("chg-uni", json!([{"id": "FIN-🐟"}, {"id": "ÄÖÜ-1"}, {"id": "\u{202e}RTL"}])),
        Want::Healthy { name: "chg-uni".into(), version: "1.0.0" },
    ));
    // Oversized fields that end up quoted in a status.
    cases.push(Case::new(
        "valid version of 200 KB",
        vec![release(
            "huge-valid",
            json!({"app": "good", "environment": "dev", "version": format!("1.0.0-{}", "a".repeat(200_000))}),
        )],
        Want::Refused,
    ));
    cases.push(Case::new(
        "invalid version of 300 KB",
        vec![release(
            "huge-invalid",
            json!({"app": "good", "environment": "dev", "version": "x".repeat(300_000)}),
        )],
        Want::Refused,
    ));
    cases.push(Case::new(
        "track of 300 KB",
        vec![release(
            "huge-track",
            json!({"app": "good", "environment": "dev", "track": "~".repeat(300_000)}),
        )],
        Want::Refused,
    ));
    cases.push(Case::new(
        "versionLine of 200 KB",
        vec![environment(
            "huge-line",
            json!({"namespace": t.env_ns("huge-line"), "tier": "dev", "versionLine": "=".repeat(200_000)}),
        )],
        Want::Refused,
    ));
    let now = jiff::Timestamp::now();
    // A freeze reason is at most 1,024 bytes (it is recorded, and quoted in every Release's
    // condition): the longest one holds the Release with a bounded status, a longer one is refused.
    cases.push(Case::new(
        "an active freeze window with the longest reason",
        vec![
            environment("huge-freeze", json!({"namespace": t.env_ns("huge-freeze"), "tier": "dev", "freezeWindows": [
                {"reason": "r".repeat(1024), "start": (now - jiff::SignedDuration::from_secs(60)).to_string()}]})),
            release("huge-freeze", json!({"app": "good", "environment": "huge-freeze", "version": "1.0.0"})),
        ],
        pending("huge-freeze", "Frozen"),
    ));
    cases.push(Case::new(
        "a freeze window with a reason of 200 KB",
        vec![environment("huger-freeze", json!({"namespace": t.env_ns("huger-freeze"), "tier": "dev", "freezeWindows": [
            {"reason": "r".repeat(200_000), "start": (now - jiff::SignedDuration::from_secs(60)).to_string()}]}))],
        Want::Refused,
    ));
    t.app_version("approved", "1.0.0", json!({})).await;
    cases.push(Case::new(
        "an Approval with a reason of 200 KB",
        vec![
            approval("huge-approval", json!({"release": "huge-approval", "version": "1.0.0", "approver": w.me, "reason": "b".repeat(200_000)})),
            release("huge-approval", json!({"app": "approved", "environment": "appr", "version": "1.0.0"})),
        ],
        Want::Healthy { name: "huge-approval".into(), version: "1.0.0" },
    ));
    let n = w.run("manifests, names, sizes, changes", cases).await;
    assert!(n >= 95, "only {n} inputs");

    // What the big ones left behind is bounded.
    let r = t.api::<Release>().get("chg-5000").await.unwrap().status.unwrap();
    assert_eq!(r.changes.len(), tuskfish::api::CHANGES_LIMIT);
    let r = t.api::<Release>().get("huge-approval").await.unwrap().status.unwrap();
    let note = r.history[0].message.clone().unwrap_or_default();
    assert!(
        note.starts_with(&format!("approved by {} at ", w.me)) && note.len() <= 512,
        "{} bytes: {note:.80}",
        note.len()
    );
    let cm: ConfigMap = t.api_in(&dev_ns).get("blob-900000").await.unwrap();
    assert_eq!(cm.data.unwrap()["k"].len(), 900_000);
}

/// An Environment whose name is longer than a label value (64 to 253 characters) cannot label the
/// namespace it creates; it is refused with `InvalidName` instead of failing namespace creates
/// forever without a condition.
#[tokio::test]
async fn an_environment_with_a_long_name_gets_a_condition() {
    let t = TestNs::new("bad-envname").await;
    let name = "e".repeat(64);
    t.apply(environment(&name, json!({"namespace": t.env_ns("long"), "tier": "dev"}))).await;
    let e = t
        .wait_for::<Environment>(&name, |e| e.status.as_ref().is_some_and(|s| ready(&s.conditions).is_some()))
        .await;
    let conditions = e.status.unwrap().conditions;
    let (reason, message) = ready(&conditions).unwrap();
    assert_eq!(reason, "InvalidName", "{message}");
    assert!(message.contains("at most 63"), "{message}");
}

/// Objects whose fields have the wrong type (a number where the kind wants a string, a quantity
/// that does not parse) make the 1.20 API server answer a server-side apply with 500 ("failed to
/// create typed patch object", "unable to convert unstructured object"); those are refusals
/// (`ApplyRejected`), not outages to retry forever.
#[tokio::test]
async fn type_errors_in_manifests_get_a_condition() {
    let w = World::new("bad-types").await;
    let mut qty = deploy("bad-qty", "dev", json!([]));
    qty[1]["spec"]["workload"] = json!({"image": "x", "resources": {"requests": {"cpu": "lots"}}});
    let cases = vec![
        Case::new(
            "ConfigMap data that is not a string",
            deploy("cm-int", "dev", json!([config_map("cm-int", json!({"data": {"k": 1}}))])),
            failed("cm-int", "ApplyRejected"),
        ),
        Case::new("resource quantity 'lots'", qty, refused_or(failed("bad-qty", "ApplyRejected"))),
        Case::new(
            "Deployment replicas 'two'",
            deploy(
                "dep-two",
                "dev",
                json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep-two"},
                "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}]),
            ),
            failed("dep-two", "ApplyRejected"),
        ),
    ];
    w.run("type errors", cases).await;
}
