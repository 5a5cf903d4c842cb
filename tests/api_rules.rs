#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The CRDs' own checks (`tuskfish::api::rules`), on the real API server: every rule refuses a bad
//! object with its message, `kubectl apply` shows that message, and good objects still pass. The
//! table of bad objects must cover every rule: a rule added without a case here fails the test.

mod common;

use std::collections::BTreeSet;

use common::{TestNs, apply_value, kubeconfig};
use serde_json::{Value, json};

/// `spec` with the fields a case sets to `null` removed.
fn obj(kind: &str, name: &str, mut spec: Value) -> Value {
    if let Value::Object(m) = &mut spec {
        m.retain(|_, v| !v.is_null());
    }
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn release(spec: Value) -> Value {
    let mut s = json!({"app": "pay", "environment": "dev"});
    common::merge(&mut s, spec);
    obj("Release", "r", s)
}

fn environment(spec: Value) -> Value {
    let mut s = json!({"namespace": "x-dev", "tier": "dev"});
    common::merge(&mut s, spec);
    obj("Environment", "e", s)
}

fn app_version(spec: Value) -> Value {
    let mut s = json!({"app": "pay", "version": "1.0.0", "workload": {"image": "registry.example/pay:1"}});
    common::merge(&mut s, spec);
    obj("AppVersion", "a", s)
}

fn product_version(spec: Value) -> Value {
    let mut s =
        json!({"product": "platform", "version": "1.0.0", "apps": [{"app": "pay", "version": "1.0.0"}]});
    common::merge(&mut s, spec);
    obj("ProductVersion", "pv", s)
}

fn product_release(spec: Value) -> Value {
    let mut s = json!({"product": "platform", "environment": "dev"});
    common::merge(&mut s, spec);
    obj("ProductRelease", "pr", s)
}

fn window(w: Value) -> Value {
    environment(json!({"freezeWindows": [w]}))
}

fn allow(w: Value) -> Value {
    environment(json!({"allowWindows": [w]}))
}

/// A good recurrence with `changes` merged in.
fn recur(changes: Value) -> Value {
    let mut r = json!({"rule": "FREQ=WEEKLY;BYDAY=FR", "start": "2026-01-02T16:00:00", "duration": "8h",
        "timeZone": "Europe/Berlin"});
    common::merge(&mut r, changes);
    r
}

/// Objects each rule must refuse, as `(message the refusal must contain, object)`.
fn bad_objects() -> Vec<(&'static str, Value)> {
    let weekly = |w: Value| {
        let mut base = json!({"days": ["Fri"], "from": "16:00", "to": "23:59"});
        common::merge(&mut base, w);
        window(json!({"weekly": base}))
    };
    vec![
        ("spec.version must be a semantic version such as 1.4.0", app_version(json!({"version": "v1.4.0"}))),
        ("nothing to deploy", app_version(json!({"workload": null}))),
        (
            "spec.helm.version must be the chart's exact semantic version",
            app_version(
                json!({"workload": null, "helm": {"repository": "oci://r.example/charts", "chart": "payments", "version": "^1.3"}}),
            ),
        ),
        ("spec.versionLine must be a semver range", environment(json!({"versionLine": "the 1.3 line"}))),
        (
            "spec.cluster has exactly one of kubeConfigSecretRef (the operator deploys there) and agent",
            environment(
                json!({"cluster": {"name": "prod", "agent": "prod", "kubeConfigSecretRef": {"name": "prod"}}}),
            ),
        ),
        (
            "spec.cluster has exactly one of kubeConfigSecretRef",
            environment(json!({"cluster": {"name": "prod"}})),
        ),
        (
            "a freeze window has exactly one of start (and optionally end), weekly and recurrence",
            window(
                json!({"start": "2026-12-20T00:00:00Z", "weekly": {"days": ["Fri"], "from": "16:00", "to": "17:00"}}),
            ),
        ),
        ("a freeze window's start must be an RFC 3339 time", window(json!({"start": "next friday"}))),
        (
            "a freeze window's end must be an RFC 3339 time",
            window(json!({"start": "2026-12-20T00:00:00Z", "end": "after new year"})),
        ),
        (
            "a freeze window must end after it starts",
            window(json!({"start": "2026-12-20T00:00:00Z", "end": "2026-12-19T00:00:00Z"})),
        ),
        ("weekly.from must be a time of day", weekly(json!({"from": "25:00"}))),
        ("weekly.to must be a time of day", weekly(json!({"to": "7pm"}))),
        ("weekly.days must be weekdays", weekly(json!({"days": ["Fri", "Someday"]}))),
        (
            "a freeze window has exactly one of start (and optionally end), weekly and recurrence",
            window(json!({"end": "2026-12-20T00:00:00Z", "recurrence": recur(json!({}))})),
        ),
        (
            "recurrence.rule must be an RFC 5545 RRULE",
            window(json!({"recurrence": recur(json!({"rule": "FREQ=SECONDLY"}))})),
        ),
        (
            "recurrence.rule must be an RFC 5545 RRULE",
            allow(json!({"recurrence": recur(json!({"rule": "every friday"}))})),
        ),
        (
            "recurrence.start must be a local date and time without offset",
            window(json!({"recurrence": recur(json!({"start": "2026-01-01T00:00:00Z"}))})),
        ),
        (
            "recurrence.duration must be a duration",
            allow(json!({"recurrence": recur(json!({"duration": "all day"}))})),
        ),
        (
            "an allow window has exactly one of start (and optionally end), weekly and recurrence",
            allow(json!({"start": "2026-12-20T00:00:00Z", "recurrence": recur(json!({}))})),
        ),
        ("an allow window's start must be an RFC 3339 time", allow(json!({"start": "saturday"}))),
        (
            "an allow window's end must be an RFC 3339 time",
            allow(json!({"start": "2026-12-20T00:00:00Z", "end": "sunday"})),
        ),
        (
            "an allow window must end after it starts",
            allow(json!({"start": "2026-12-20T00:00:00Z", "end": "2026-12-19T00:00:00Z"})),
        ),
        (
            "approvalPolicy.expireAfter must be a duration",
            environment(json!({"approvalPolicy": {"expireAfter": "a day or so"}})),
        ),
        (
            "a verify check has exactly one of job and http",
            environment(json!({"verify": [{"name": "smoke"}]})),
        ),
        (
            "a verify check has exactly one of job and http",
            release(json!({"version": "1.0.0", "verify": [{"name": "smoke", "http": {"url": "http://x"},
                "job": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}]})),
        ),
        (
            "verify check names must be unique",
            environment(
                json!({"verify": [{"name": "a", "http": {"url": "http://x"}}, {"name": "a", "http": {"url": "http://y"}}]}),
            ),
        ),
        (
            "http.url must be an http:// or https:// URL",
            environment(json!({"verify": [{"name": "a", "http": {"url": "ftp://x"}}]})),
        ),
        (
            "http.interval must be a duration",
            release(
                json!({"version": "1.0.0", "verify": [{"name": "a", "http": {"url": "http://x", "interval": "soon"}}]}),
            ),
        ),
        (
            "http.timeout must be a duration",
            environment(json!({"verify": [{"name": "a", "http": {"url": "http://x", "timeout": "long"}}]})),
        ),
        ("set exactly one of spec.version", release(json!({"version": "1.0.0", "track": "~1.0"}))),
        ("set exactly one of spec.version", release(json!({}))),
        ("spec.version must be a semantic version such as 1.3.10", release(json!({"version": "latest"}))),
        ("spec.track must be a semver range", release(json!({"track": "newest"}))),
        (
            "spec.promoteFrom.soak must be a duration",
            release(json!({"promoteFrom": {"environment": "dev", "soak": "a while"}})),
        ),
        (
            "spec.rollback.to must be a semantic version",
            release(json!({"version": "1.0.0", "rollback": {"to": "previous"}})),
        ),
        (
            "dependsOn[].version must be a semver range",
            release(json!({"version": "1.0.0", "dependsOn": [{"app": "ledger", "version": "recent"}]})),
        ),
        (
            "an app cannot wait for itself",
            release(json!({"version": "1.0.0", "dependsOn": [{"app": "pay"}]})),
        ),
        (
            "spec.version must be the semantic version being approved",
            obj("Approval", "ap", json!({"release": "r", "version": "1.0.x", "approver": "admin"})),
        ),
        ("spec.month is YYYY-MM", ledger(json!({"month": "2026-13"}))),
        (
            "spec.version must be a semantic version such as 1.3.10 or 1.4.0-rc.1",
            product_version(json!({"version": "1.0"})),
        ),
        (
            "apps[].version must be an app's exact semantic version",
            product_version(json!({"apps": [{"app": "pay", "version": "^1"}]})),
        ),
        (
            "each app is named once in spec.apps",
            product_version(
                json!({"apps": [{"app": "pay", "version": "1.0.0"}, {"app": "pay", "version": "1.0.1"}]}),
            ),
        ),
        (
            "an app cannot roll out after itself",
            product_version(json!({"apps": [{"app": "pay", "version": "1.0.0", "after": ["pay"]}]})),
        ),
        ("set exactly one of spec.version (a pinned product version)", product_release(json!({}))),
        (
            "spec.version must be a semantic version such as 1.3.10 or 1.4.0-rc.2",
            product_release(json!({"version": "latest"})),
        ),
        ("spec.track must be a semver range", product_release(json!({"track": "newest"}))),
        (
            "spec.promoteFrom.soak must be a duration",
            product_release(json!({"promoteFrom": {"environment": "dev", "soak": "a while"}})),
        ),
        (
            "spec.rollback.to must be a semantic version",
            product_release(json!({"version": "1.0.0", "rollback": {"to": "previous"}})),
        ),
        (
            "a record's key is at most 192 characters",
            ledger(json!({"records": {"k".repeat(193): record("1.0.0")}})),
        ),
    ]
}

fn ledger(spec: Value) -> Value {
    let mut s = json!({"environment": "prod", "app": "pay", "month": "2026-12"});
    common::merge(&mut s, spec);
    obj("Ledger", "prod.pay.2026-12", s)
}

fn record(version: &str) -> Value {
    json!({"kind": "Rollout", "at": "2026-12-07T10:00:00Z", "release": "r", "version": version})
}

fn refusal(r: Result<kube::api::DynamicObject, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(e)) if e.code == 422 => e.message,
        other => panic!("expected the API server to refuse it as invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn every_rule_refuses_a_bad_object_with_its_message() {
    let t = TestNs::new("rules").await;
    let mut covered = BTreeSet::new();
    for (needle, bad) in bad_objects() {
        let words = refusal(apply_value(&t.client, Some(&t.ns), bad.clone()).await);
        assert!(words.contains(needle), "{needle:?} not in the refusal of {bad}: {words}");
        let rule = tuskfish::api::rules::schema_rules()
            .into_iter()
            .find(|r| words.contains(&r.message))
            .unwrap_or_else(|| panic!("{words} quotes no rule"));
        covered.insert(rule.message);
    }

    // Transition rules: a published AppVersion and a given Approval never change.
    apply_value(&t.client, Some(&t.ns), app_version(json!({}))).await.unwrap();
    let edited = app_version(json!({"workload": {"image": "registry.example/pay:2"}}));
    let words = refusal(apply_value(&t.client, Some(&t.ns), edited).await);
    assert!(words.contains("an AppVersion cannot be changed once created"), "{words}");
    covered.insert(words_rule(&words));
    let me = whoami(&t.client).await;
    let given =
        obj("Approval", "ap", json!({"release": "r", "version": "1.0.0", "approver": me, "reason": "CAB-1"}));
    apply_value(&t.client, Some(&t.ns), given).await.unwrap();
    let rewritten =
        obj("Approval", "ap", json!({"release": "r", "version": "1.0.0", "approver": me, "reason": "x"}));
    let words = refusal(apply_value(&t.client, Some(&t.ns), rewritten).await);
    assert!(words.contains("an Approval cannot be changed"), "{words}");
    covered.insert(words_rule(&words));

    // A Release never moves to another app or Environment (an approval, a gate or a history
    // entry of one would count for the other).
    apply_value(&t.client, Some(&t.ns), release(json!({"version": "1.0.0"}))).await.unwrap();
    for (moved, needle) in [
        (json!({"version": "1.0.0", "app": "ledger"}), "spec.app cannot be changed"),
        (json!({"version": "1.0.0", "environment": "prod"}), "spec.environment cannot be changed"),
    ] {
        let words = refusal(apply_value(&t.client, Some(&t.ns), release(moved)).await);
        assert!(words.contains(needle), "{words}");
        covered.insert(words_rule(&words));
    }

    // A Ledger keeps its records as written, and keeps what it is the Ledger of.
    let written = json!({"records": {"rollout.1.1.0.0": record("1.0.0")}});
    apply_value(&t.client, Some(&t.ns), ledger(written.clone())).await.unwrap();
    let mut moved = written.clone();
    common::merge(&mut moved, json!({"app": "ledger"}));
    for (edited, needle) in [
        (
            json!({"records": {"rollout.1.1.0.0": record("9.9.9")}}),
            "an audit record cannot be changed once written",
        ),
        (json!({}), "an audit record cannot be removed from its Ledger"),
        (moved, "a Ledger's environment, app and month cannot be changed"),
    ] {
        let words = refusal(apply_value(&t.client, Some(&t.ns), ledger(edited)).await);
        assert!(words.contains(needle), "{words}");
        covered.insert(words_rule(&words));
    }

    // A ProductVersion never changes; a ProductRelease runs one product in one Environment.
    apply_value(&t.client, Some(&t.ns), product_version(json!({}))).await.unwrap();
    let words =
        refusal(apply_value(&t.client, Some(&t.ns), product_version(json!({"version": "1.0.1"}))).await);
    assert!(words.contains("a ProductVersion cannot be changed once created"), "{words}");
    covered.insert(words_rule(&words));
    apply_value(&t.client, Some(&t.ns), product_release(json!({"version": "1.0.0"}))).await.unwrap();
    for (moved, needle) in [
        (json!({"version": "1.0.0", "product": "other"}), "spec.product cannot be changed"),
        (json!({"version": "1.0.0", "environment": "prod"}), "spec.environment cannot be changed"),
    ] {
        let words = refusal(apply_value(&t.client, Some(&t.ns), product_release(moved)).await);
        assert!(words.contains(needle), "{words}");
        covered.insert(words_rule(&words));
    }

    let all: BTreeSet<String> = tuskfish::api::rules::schema_rules().into_iter().map(|r| r.message).collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "rules without a case on the API server: {missing:#?}");
}

/// The API server checks an integer's type, not its format's range: each integer field is bounded
/// by its Rust type, or a number too large for it would be stored and then fail every list of its
/// kind (every tenant's watch with it).
#[tokio::test]
async fn an_integer_too_large_for_its_field_is_refused() {
    let t = TestNs::new("int-range").await;
    let probe = |field: &str, value: Value| {
        let mut a = app_version(json!({}));
        a["spec"]["workload"]["readinessProbe"] =
            json!({"httpGet": {"path": "/", "port": 8080}, field: value});
        a
    };
    let cases = [
        (
            "replicas",
            app_version(
                json!({"workload": {"image": "registry.example/pay:1", "replicas": 2_147_483_648_i64}}),
            ),
        ),
        ("periodSeconds", probe("periodSeconds", json!(2_147_483_648_i64))),
        ("timeoutSeconds", probe("timeoutSeconds", json!(-2_147_483_649_i64))),
    ];
    for (field, bad) in cases {
        let words = refusal(apply_value(&t.client, Some(&t.ns), bad.clone()).await);
        assert!(words.contains(field) && words.contains("should be"), "{field}: {words}");
    }
    let most =
        app_version(json!({"workload": {"image": "registry.example/pay:1", "replicas": 2_147_483_647}}));
    apply_value(&t.client, Some(&t.ns), most).await.unwrap();
}

fn words_rule(words: &str) -> String {
    tuskfish::api::rules::schema_rules()
        .into_iter()
        .find(|r| words.contains(&r.message))
        .unwrap_or_else(|| panic!("{words} quotes no rule"))
        .message
}

async fn whoami(client: &kube::Client) -> String {
    tuskfish::client::whoami(client).await.unwrap().unwrap()
}

#[tokio::test]
async fn good_objects_pass_every_rule() {
    let t = TestNs::new("rules-ok").await;
    let good = [
        app_version(json!({"version": "1.4.0-rc.1+build.7"})),
        app_version(
            json!({"workload": null, "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]}),
        ),
        environment(json!({"versionLine": ">=1.4.0-0, <1.5.0", "freezeWindows": [
            {"start": "2026-12-20T00:00:00Z", "end": "2027-01-02T00:00:00+01:00", "reason": "year end"},
            {"start": "2026-12-20T00:00:00.5Z"},
            {"weekly": {"days": ["Fri", "saturday"], "from": "16:00", "to": "2:30", "timeZone": "Europe/Berlin"}},
            {"recurrence": recur(json!({"rule": "RRULE:FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,-1"}))},
            {"recurrence": {"rule": "FREQ=DAILY", "start": "2026-01-02T16:00", "duration": "1h"}}],
            "allowWindows": [{"recurrence": recur(json!({}))}, {"start": "2026-12-20T00:00:00Z", "end": "2026-12-21T00:00:00Z"},
                {"weekly": {"days": ["Tue"], "from": "10:00", "to": "14:00"}}]})),
        release(
            json!({"track": "~1.3", "dependsOn": [{"app": "ledger", "version": ">=2.1"}, {"app": "fx"}]}),
        ),
        release(json!({"promoteFrom": {"environment": "dev", "soak": "30m"}})),
        release(json!({"version": "1.3.10", "rollback": {"auto": true, "to": "1.3.9"}})),
        environment(json!({"verify": [
            {"name": "smoke", "job": {"template": {"spec": {"containers": [{"name": "c", "image": "smoke:${TUSKFISH_VERSION}"}]}}, "backoffLimit": 1}},
            {"name": "api", "http": {"url": "https://pay.${ZONE}/v/${TUSKFISH_VERSION}", "expectStatus": 204, "bodyMatches": "ok", "retries": 5, "interval": "2s", "timeout": "1500ms"}}]})),
        release(
            json!({"version": "1.3.10", "verify": [{"name": "api", "http": {"url": "http://pay/health"}}]}),
        ),
    ];
    for (i, mut g) in good.into_iter().enumerate() {
        g["metadata"]["name"] = json!(format!("good-{i}"));
        apply_value(&t.client, Some(&t.ns), g.clone()).await.unwrap_or_else(|e| panic!("{g} refused: {e}"));
    }
}

#[tokio::test]
async fn kubectl_apply_shows_the_rules_message() {
    let t = TestNs::new("rules-kubectl").await;
    let bad =
        serde_json::to_string(&release(json!({"version": "1.3.10", "promoteFrom": {"environment": "dev"}})))
            .unwrap();
    let mut kubectl = std::process::Command::new("kubectl");
    kubectl.args(["--kubeconfig", &kubeconfig(), "-n", &t.ns, "apply", "-f", "-"]);
    let out = common::run_with_stdin(kubectl, &bad).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set exactly one of spec.version (a pinned version), spec.track (a semver range) and spec.promoteFrom"),
        "{stderr}"
    );
}

/// A clean install: creating the CRDs prints nothing to wonder about (an unknown `format` in a
/// schema, such as schemars' `uint32`, made the API server warn once per field). They are created
/// under a group of this test's own, as a first install creates them, and deleted after.
#[tokio::test]
async fn the_crds_install_without_a_warning() {
    let t = TestNs::new("rules-clean").await;
    let group = format!("{}.tuskfish.test", t.ns);
    let chart_crds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/tuskfish/crds/tuskfish.dev.yaml");
    let yaml = std::fs::read_to_string(chart_crds).unwrap().replace("tuskfish.dev", &group);
    let kubectl = |verb: &str| {
        let mut k = std::process::Command::new("kubectl");
        k.args(["--kubeconfig", &kubeconfig(), verb, "-f", "-"]);
        k
    };
    let created = common::run_with_stdin(kubectl("create"), &yaml).await;
    let deleted = common::run_with_stdin(kubectl("delete"), &yaml).await;
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
}
