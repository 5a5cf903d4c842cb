#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The foundation, end to end against a real API server: environments claim namespaces, releases
//! roll out, upgrade, fail, prune, repair drift and clean up, bad input gets a clear condition, and
//! the steady state writes nothing.

mod common;

use common::{TestNs, delete, healthy_at};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tuskfish::api::{AppVersion, Environment, Phase, Release, RolloutResult, find_condition};

fn ready_reason(status: &tuskfish::api::ReleaseStatus) -> Option<&str> {
    find_condition(&status.conditions, "Ready").map(|c| c.reason.as_str())
}

#[tokio::test]
async fn environment_creates_and_labels_its_namespace() {
    let t = TestNs::new("env-ns").await;
    let env = t.environment("dev", json!({})).await;
    let status = env.status.unwrap();
    assert_eq!(status.namespace.as_deref(), Some(t.env_ns("dev").as_str()));
    assert_eq!(find_condition(&status.conditions, "Ready").unwrap().reason, "NamespaceOwned");
    let ns = Api::<Namespace>::all(t.client.clone()).get(&t.env_ns("dev")).await.unwrap();
    assert_eq!(ns.labels()["app.kubernetes.io/managed-by"], "tuskfish");
    assert_eq!(ns.labels()["tuskfish.dev/environment"], "dev");
    assert_eq!(ns.annotations()["tuskfish.dev/owner"], format!("{}/dev", t.ns));
}

#[tokio::test]
async fn environment_refuses_a_namespace_it_does_not_own() {
    let t = TestNs::new("env-foreign").await;
    // A namespace someone else made.
    let foreign = t.env_ns("theirs");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": foreign}})).unwrap();
    Api::<Namespace>::all(t.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": "grabby"}, "spec": {"namespace": foreign, "tier": "dev"}}))
        .await;
    let env = t
        .wait_for::<Environment>("grabby", |e| {
            e.status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, "Ready"))
                .is_some_and(|c| c.status == "False")
        })
        .await;
    let ready = find_condition(&env.status.as_ref().unwrap().conditions, "Ready").unwrap().clone();
    assert_eq!(ready.reason, "NamespaceNotManaged");
    assert!(ready.message.contains("kubectl annotate namespace"), "{}", ready.message);

    // Two Environments on one namespace: the first owns it, the second is refused.
    t.environment("first", json!({})).await;
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": "second"}, "spec": {"namespace": t.env_ns("first"), "tier": "test"}}))
        .await;
    let second = t
        .wait_for::<Environment>("second", |e| {
            e.status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, "Ready"))
                .is_some_and(|c| c.status == "False")
        })
        .await;
    assert_eq!(
        find_condition(&second.status.unwrap().conditions, "Ready").unwrap().reason,
        "NamespaceOwnedByOther"
    );

    // A Release into the refused environment waits with a clear reason instead of deploying.
    t.app_version("api", "1.0.0", json!({})).await;
    t.release("api-second", "api", "second", "1.0.0", json!({})).await;
    let r = t.wait_release("api-second", |s| ready_reason(s) == Some("EnvironmentNotReady")).await;
    assert_eq!(r.status.unwrap().phase, Some(Phase::Pending));
}

#[tokio::test]
async fn deploy_upgrade_and_history() {
    let t = TestNs::new("deploy").await;
    t.environment("dev", json!({"variables": {"GREETING": "hello"}})).await;
    t.app_version("web", "1.0.0", json!({"workload": {"replicas": 2}})).await;
    t.app_version("web", "1.1.0", json!({})).await;
    t.release("web-dev", "web", "dev", "1.0.0", json!({})).await;

    let r = t.wait_release("web-dev", healthy_at("1.0.0")).await;
    let status = r.status.unwrap();
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.history[0].result, RolloutResult::Succeeded);
    assert!(status.history[0].finished_at.is_some());
    assert!(r.metadata.finalizers.unwrap_or_default().contains(&"tuskfish.dev/release-cleanup".to_string()));

    let d: Deployment = t.api_in(&t.env_ns("dev")).get("web").await.unwrap();
    assert_eq!(d.labels()["app.kubernetes.io/version"], "1.0.0");
    assert_eq!(d.labels()["tuskfish.dev/release"], "web-dev");
    assert_eq!(d.status.unwrap().available_replicas, Some(2));
    let container = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let env: Vec<_> = container.env.clone().unwrap_or_default();
    assert!(env.iter().any(|e| e.name == "GREETING" && e.value.as_deref() == Some("hello")));
    let svc: Service = t.api_in(&t.env_ns("dev")).get("web").await.unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    t.set_version("web-dev", "1.1.0").await;
    let r = t.wait_release("web-dev", healthy_at("1.1.0")).await;
    let history = r.status.unwrap().history;
    assert_eq!(history.iter().map(|h| h.version.as_str()).collect::<Vec<_>>(), ["1.1.0", "1.0.0"]);
    assert!(history.iter().all(|h| h.result == RolloutResult::Succeeded));
    let d: Deployment = t.api_in(&t.env_ns("dev")).get("web").await.unwrap();
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(),
        Some("registry.example/web:1.1.0")
    );
}

#[tokio::test]
async fn never_ready_version_is_degraded_within_its_deadline() {
    let t = TestNs::new("degraded").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.0.1", json!({"workload": {"image": "registry.example/pay:1.0.1-never-ready"}}))
        .await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({"progressDeadlineSeconds": 5})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    t.set_version("pay-dev", "1.0.1").await;
    let r = t.wait_release("pay-dev", |s| s.phase == Some(Phase::Degraded)).await;
    let status = r.status.unwrap();
    assert_eq!(ready_reason(&status), Some("ProgressDeadlineExceeded"));
    assert_eq!(find_condition(&status.conditions, "Degraded").unwrap().status, "True");
    assert_eq!(status.history[0].version, "1.0.1");
    assert_eq!(status.history[0].result, RolloutResult::Failed);
    assert!(status.history[0].message.as_deref().unwrap_or_default().contains("Deployment pay"));
    // The last healthy version stays on record.
    assert_eq!(status.current_version.as_deref(), Some("1.0.0"));
    // And it says so in an Event.
    let events: Api<k8s_openapi::api::events::v1::Event> = t.api();
    let list = events.list(&ListParams::default()).await.unwrap();
    assert!(
        list.items.iter().any(|e| e.reason.as_deref() == Some("ProgressDeadlineExceeded")),
        "events: {:?}",
        list.items.iter().map(|e| e.reason.clone()).collect::<Vec<_>>()
    );
    // Each rollout has one Event, saying how it ended and naming its version.
    let notes = |reason: &str| -> Vec<String> {
        list.items
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note.clone())
            .collect()
    };
    let complete = notes("RolloutComplete");
    assert!(
        complete.len() == 1 && complete[0].starts_with("rolled out 1.0.0 to environment dev"),
        "{complete:?}"
    );
    let failed = notes("ProgressDeadlineExceeded");
    assert!(failed.len() == 1 && failed[0].contains("1.0.1"), "{failed:?}");
    assert!(notes("RolloutStarted").is_empty(), "a rollout is told once, when it ends");
}

#[tokio::test]
async fn objects_no_longer_rendered_are_pruned_and_deleting_the_release_cleans_up() {
    let t = TestNs::new("prune").await;
    t.environment("dev", json!({})).await;
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    t.app_version("cfg", "1.0.0", json!({"manifests": [cm("keep"), cm("old")]})).await;
    t.app_version("cfg", "2.0.0", json!({"manifests": [cm("keep")]})).await;
    t.release("cfg-dev", "cfg", "dev", "1.0.0", json!({})).await;
    t.wait_release("cfg-dev", healthy_at("1.0.0")).await;
    let env_ns = t.env_ns("dev");
    t.api_in::<ConfigMap>(&env_ns).get("old").await.unwrap();

    t.set_version("cfg-dev", "2.0.0").await;
    t.wait_release("cfg-dev", healthy_at("2.0.0")).await;
    t.wait_gone::<ConfigMap>(&env_ns, "old").await;
    t.api_in::<ConfigMap>(&env_ns).get("keep").await.unwrap();

    delete(&t.api::<Release>(), "cfg-dev").await;
    t.wait_gone::<Release>(&t.ns, "cfg-dev").await;
    for name in ["keep", "cfg"] {
        assert!(t.api_in::<ConfigMap>(&env_ns).get_opt(name).await.unwrap().is_none(), "{name} left behind");
    }
    assert!(t.api_in::<Deployment>(&env_ns).get_opt("cfg").await.unwrap().is_none());
}

#[tokio::test]
async fn drift_is_repaired() {
    let t = TestNs::new("drift").await;
    t.environment("dev", json!({})).await;
    t.app_version("svc", "1.0.0", json!({"workload": {"replicas": 1}})).await;
    t.release("svc-dev", "svc", "dev", "1.0.0", json!({})).await;
    t.wait_release("svc-dev", healthy_at("1.0.0")).await;
    let env_ns = t.env_ns("dev");
    let deployments: Api<Deployment> = t.api_in(&env_ns);

    // Someone changes the image by hand: put back.
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "svc", "image": "evil:latest"}]}}}});
    deployments.patch("svc", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    t.wait_for_in::<Deployment>(&env_ns, "svc", |d| {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.as_deref()
            == Some("registry.example/svc:1.0.0")
    })
    .await;

    // Someone deletes it: created again, and healthy again.
    let uid = deployments.get("svc").await.unwrap().uid();
    delete(&deployments, "svc").await;
    t.wait_for_in::<Deployment>(&env_ns, "svc", move |d| d.uid() != uid).await;
    let r = t.wait_release("svc-dev", healthy_at("1.0.0")).await;
    assert_eq!(r.status.unwrap().history.len(), 1, "a repair is not a new rollout");
}

#[tokio::test]
async fn fields_of_other_field_managers_are_left_alone() {
    let t = TestNs::new("foreign").await;
    t.environment("dev", json!({})).await;
    t.app_version("svc", "1.0.0", json!({})).await;
    t.release("svc-dev", "svc", "dev", "1.0.0", json!({})).await;
    t.wait_release("svc-dev", healthy_at("1.0.0")).await;
    let env_ns = t.env_ns("dev");
    let deployments: Api<Deployment> = t.api_in(&env_ns);

    // Another tool owns an annotation and a pod-template annotation (its own field manager); the
    // template change moves the generation, which the operator sees as drift and applies again.
    let theirs = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc",
        "annotations": {"team.example/owner": "fin-ops"}},
        "spec": {"template": {"metadata": {"annotations": {"team.example/scrape": "true"}}}}});
    let applied =
        deployments.patch("svc", &PatchParams::apply("team-tooling"), &Patch::Apply(&theirs)).await.unwrap();
    let moved_to = applied.metadata.generation;
    t.wait_release("svc-dev", move |s| {
        let inv = s.inventory.as_ref().unwrap();
        inv.objects.iter().any(|o| o.kind == "Deployment" && o.generation == moved_to)
    })
    .await;
    let foreign = |d: &Deployment| {
        let owner = d.annotations().get("team.example/owner").cloned();
        let scrape = d
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("team.example/scrape").cloned());
        (owner, scrape)
    };
    let both = (Some("fin-ops".to_string()), Some("true".to_string()));
    assert_eq!(
        foreign(&deployments.get("svc").await.unwrap()),
        both,
        "the repair kept the other manager's fields"
    );

    // A new version replaces only what tuskfish owns.
    t.app_version("svc", "1.1.0", json!({})).await;
    t.set_version("svc-dev", "1.1.0").await;
    t.wait_release("svc-dev", healthy_at("1.1.0")).await;
    let d = deployments.get("svc").await.unwrap();
    assert_eq!(foreign(&d), both, "the rollout kept the other manager's fields");
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(),
        Some("registry.example/svc:1.1.0")
    );
    let managers: Vec<String> =
        d.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(
        managers.iter().any(|m| m == "team-tooling") && managers.iter().any(|m| m == "tuskfish"),
        "{managers:?}"
    );
}

#[tokio::test]
async fn steady_state_makes_zero_writes() {
    let t = TestNs::new("steady").await;
    t.environment("dev", json!({})).await;
    t.app_version(
        "calm",
        "1.0.0",
        json!({"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "calm-cfg"}, "data": {"a": "b"}}]}),
    )
    .await;
    t.release("calm-dev", "calm", "dev", "1.0.0", json!({})).await;
    t.wait_release("calm-dev", healthy_at("1.0.0")).await;
    t.wait_for::<Environment>("dev", |e| e.status.as_ref().is_some_and(|s| s.healthy_releases == 1)).await;
    // Every reconciler has acted on the rollout's last change before the writes are counted.
    t.nudge::<Release>("calm-dev").await;
    t.nudge::<Environment>("dev").await;
    t.nudge::<AppVersion>("calm-1.0.0").await;
    let before = t.operator_writes();
    assert!(before > 0, "the rollout itself must have been counted");

    // Nudge every reconciler with changes that do not alter the desired state, and wait until each
    // has reconciled its object past the nudge.
    t.nudge::<Release>("calm-dev").await;
    t.nudge::<Environment>("dev").await;
    t.nudge::<AppVersion>("calm-1.0.0").await;
    assert_eq!(t.operator_writes(), before, "the operator wrote at steady state");
}

#[tokio::test]
async fn bad_inputs_get_clear_conditions_and_leave_others_alone() {
    let t = TestNs::new("bad").await;
    t.environment("dev", json!({})).await;
    t.app_version("good", "1.0.0", json!({})).await;
    t.release("good-dev", "good", "dev", "1.0.0", json!({})).await;
    let good_before = t.wait_release("good-dev", healthy_at("1.0.0")).await;

    t.release("no-env", "good", "nowhere", "1.0.0", json!({})).await;
    t.release("no-av", "ghost", "dev", "9.9.9", json!({})).await;
    let cluster_scoped = json!({"manifests": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "escalate"}, "rules": []}]});
    t.app_version("cs", "1.0.0", cluster_scoped).await;
    t.release("cs-dev", "cs", "dev", "1.0.0", json!({})).await;
    let foreign = json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "kube-system"}, "data": {}}]});
    t.app_version("fn", "1.0.0", foreign).await;
    t.release("fn-dev", "fn", "dev", "1.0.0", json!({})).await;
    let unknown_var = json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x"}, "data": {"a": "${NOT_DEFINED}"}}]});
    t.app_version("uv", "1.0.0", unknown_var).await;
    t.release("uv-dev", "uv", "dev", "1.0.0", json!({})).await;
    // The API server refuses it (an env var name with `=` is caught server-side, not by the schema).
    let refused = json!({"workload": {"env": [{"name": "BAD=NAME", "value": "x"}]}});
    t.app_version("rf", "1.0.0", refused).await;
    t.release("rf-dev", "rf", "dev", "1.0.0", json!({})).await;

    let expect = [
        ("no-env", Phase::Pending, "EnvironmentNotFound"),
        ("no-av", Phase::Pending, "AppVersionNotFound"),
        ("cs-dev", Phase::Failed, "ClusterScopedManifest"),
        ("fn-dev", Phase::Failed, "ForeignNamespace"),
        ("uv-dev", Phase::Failed, "UnknownVariable"),
        ("rf-dev", Phase::Failed, "ApplyRejected"),
    ];
    for (name, phase, reason) in expect {
        let r = t.wait_release(name, move |s| ready_reason(s) == Some(reason)).await;
        let status = r.status.unwrap();
        assert_eq!(status.phase, Some(phase), "{name}");
        let msg = &find_condition(&status.conditions, "Ready").unwrap().message;
        assert!(!msg.is_empty(), "{name} has no message");
    }
    // Nothing cluster-scoped or foreign was created.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(t.client.clone());
    assert!(roles.get_opt("escalate").await.unwrap().is_none());
    assert!(t.api_in::<ConfigMap>("kube-system").get_opt("x").await.unwrap().is_none());

    // An AppVersion with an invalid version, or an edit of a published one, is refused by the API
    // server (the CRD's rules) with a message that names the fix; nothing is rolled out.
    let refusal = |obj: Value| {
        let client = t.client.clone();
        let ns = t.ns.clone();
        async move { common::apply_value(&client, Some(&ns), obj).await.unwrap_err().to_string() }
    };
    let bad = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion", "metadata": {"name": "bad-av"},
        "spec": {"app": "good", "version": "1.0.x", "workload": {"image": "x"}}});
    let err = refusal(bad).await;
    assert!(err.contains("spec.version must be a semantic version such as 1.4.0"), "{err}");
    let bad_semver = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": "bad-semver"},
        "spec": {"app": "good", "environment": "dev", "version": "one.two"}});
    let err = refusal(bad_semver).await;
    assert!(err.contains("spec.version must be a semantic version such as 1.3.10"), "{err}");
    t.release("edit-dev", "good", "dev", "1.0.0", json!({})).await;
    let sneaky = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion", "metadata": {"name": "good-1.0.0"},
        "spec": {"app": "good", "version": "1.0.0", "workload": {"image": "registry.example/good:sneaky"}}});
    let err = refusal(sneaky).await;
    assert!(err.contains("an AppVersion cannot be changed once created"), "{err}");
    let av = t.api::<AppVersion>().get("good-1.0.0").await.unwrap();
    assert_eq!(av.spec.workload.unwrap().image, "registry.example/good:1.0.0");
    let d: Deployment = t.api_in(&t.env_ns("dev")).get("good").await.unwrap();
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(),
        Some("registry.example/good:1.0.0")
    );

    // The healthy Release's rollout record is untouched by all of this.
    let good_after = t.api::<Release>().get("good-dev").await.unwrap();
    assert_eq!(good_after.status.unwrap().history, good_before.status.unwrap().history);
}

#[tokio::test]
async fn two_releases_of_one_app_in_one_environment_both_wait_until_one_is_deleted() {
    let t = TestNs::new("duplicate").await;
    t.environment("dev", json!({})).await;
    t.environment("test", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.0.1", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    // Downstream of dev: it promotes whatever dev runs.
    t.release("pay-test", "pay", "test", "1.0.0", json!({})).await;
    t.wait_release("pay-test", healthy_at("1.0.0")).await;
    Api::<Release>::namespaced(t.client.clone(), &t.ns)
        .patch(
            "pay-test",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": null, "promoteFrom": {"environment": "dev"}}})),
        )
        .await
        .unwrap();

    // A second Release of pay in dev, at another version: neither may decide what dev runs.
    t.release("pay-dev-b", "pay", "dev", "1.0.1", json!({})).await;
    let duplicate = |s: &tuskfish::api::ReleaseStatus| {
        find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "DuplicateRelease")
    };
    for name in ["pay-dev", "pay-dev-b"] {
        let r = t.wait_release(name, duplicate).await;
        let ready = find_condition(&r.status.as_ref().unwrap().conditions, "Ready").unwrap().clone();
        assert!(ready.message.contains("pay-dev, pay-dev-b all deploy pay"), "{name}: {}", ready.message);
    }
    // What ran stays: the first Release's objects are untouched, and nothing of 1.0.1 was applied.
    let deploy = Api::<Deployment>::namespaced(t.client.clone(), &t.env_ns("dev")).get("pay").await.unwrap();
    let image = deploy.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap_or_default();
    assert!(image.ends_with(":1.0.0"), "{image}");
    // Downstream holds instead of promoting from whichever it happened to find.
    let down = t
        .wait_release("pay-test", |s| {
            find_condition(&s.conditions, "Held").is_some_and(|c| c.reason == "DuplicateRelease")
        })
        .await;
    assert_eq!(down.status.unwrap().current_version.as_deref(), Some("1.0.0"));

    // Deleting the first leaves one: it rolls out, and the downstream promotes it.
    delete(&t.api::<Release>(), "pay-dev").await;
    t.wait_release("pay-dev-b", healthy_at("1.0.1")).await;
    t.wait_release("pay-test", healthy_at("1.0.1")).await;
}
