#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! What an AppVersion or Release cannot make the operator do, whatever it says: create
//! cluster-scoped objects, write into a namespace its Environment does not own, or use an
//! Environment, AppVersion, upstream Release or Approval of another pipeline namespace, or stall
//! other pipelines with what the API server stores.

mod common;

use common::receiver::Receiver;
use common::{TestNs, healthy_at};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tuskfish::api::{Phase, Release, ReleaseStatus, find_condition};

fn reason_is(reason: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == reason)
}

/// Waits for `reason`, then checks the phase and that the message says something.
async fn wait_reason(t: &TestNs, release: &str, reason: &'static str, phase: Phase) -> String {
    let r = t.wait_release(release, reason_is(reason)).await;
    let s = r.status.unwrap();
    assert_eq!(s.phase, Some(phase), "{release}");
    let message = find_condition(&s.conditions, "Ready").unwrap().message.clone();
    assert!(!message.is_empty(), "{release}: {reason} without a message");
    message
}

/// Nothing in `ns` carries the labels of a Release of the pipeline namespace `pipeline`.
async fn nothing_of(t: &TestNs, pipeline: &str, ns: &str) {
    let lp = ListParams::default().labels(&format!("tuskfish.dev/release-namespace={pipeline}"));
    let deployments = t.api_in::<Deployment>(ns).list(&lp).await.unwrap();
    let config_maps = t.api_in::<ConfigMap>(ns).list(&lp).await.unwrap();
    let services = t.api_in::<Service>(ns).list(&lp).await.unwrap();
    let names: Vec<_> = deployments
        .iter()
        .map(|o| &o.metadata)
        .chain(config_maps.iter().map(|o| &o.metadata))
        .chain(services.iter().map(|o| &o.metadata))
        .filter_map(|m| m.name.clone())
        .collect();
    assert!(names.is_empty(), "objects of {pipeline} in {ns}: {names:?}");
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test]
async fn user_manifests_never_create_cluster_scoped_objects() {
    let t = TestNs::new("sec-scope").await;
    t.environment("dev", json!({})).await;
    let ns_name = format!("{}-evil", t.ns);
    let role = format!("{}-escalate", t.ns);
    let binding = format!("{}-escalate", t.ns);
    let sa_ns = t.env_ns("dev");
    // An attempt at escalation: a ClusterRole allowing everything, bound cluster-wide to a
    // ServiceAccount in the Environment's namespace, and a Namespace of its own. A ConfigMap first,
    // so that a renderer that applied as it went would leave it behind.
    let evil = json!([
        config_map("innocent"),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "intruder"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": "intruder", "namespace": sa_ns}]},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name, "namespace": sa_ns}},
    ]);
    t.app_version("ops", "1.0.0", json!({"manifests": [config_map("innocent")]})).await;
    t.app_version("ops", "2.0.0", json!({"workload": null, "manifests": evil})).await;
    // Each cluster-scoped kind alone, too (the first refusal must not hide the others).
    t.app_version(
        "ns",
        "1.0.0",
        json!({"workload": null, "manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name}}]}),
    )
    .await;
    t.app_version("crb", "1.0.0", json!({"workload": null, "manifests": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": sa_ns}]}]}))
    .await;

    // A Release running 1.0.0 healthily is pinned to the evil 2.0.0.
    t.release("ops-dev", "ops", "dev", "1.0.0", json!({})).await;
    t.wait_release("ops-dev", healthy_at("1.0.0")).await;
    t.set_version("ops-dev", "2.0.0").await;
    t.release("ns-dev", "ns", "dev", "1.0.0", json!({})).await;
    t.release("crb-dev", "crb", "dev", "1.0.0", json!({})).await;

    let message = wait_reason(&t, "ops-dev", "ClusterScopedManifest", Phase::Failed).await;
    assert!(message.contains("ClusterRole") && message.contains("cluster-scoped"), "{message}");
    let ns_message = wait_reason(&t, "ns-dev", "ClusterScopedManifest", Phase::Failed).await;
    assert!(ns_message.contains(&format!("Namespace {ns_name}")), "{ns_message}");
    wait_reason(&t, "crb-dev", "ClusterScopedManifest", Phase::Failed).await;
    for name in ["ops-dev", "ns-dev", "crb-dev"] {
        t.nudge::<Release>(name).await;
    }

    assert!(Api::<ClusterRole>::all(t.client.clone()).get_opt(&role).await.unwrap().is_none());
    assert!(Api::<ClusterRoleBinding>::all(t.client.clone()).get_opt(&binding).await.unwrap().is_none());
    assert!(Api::<Namespace>::all(t.client.clone()).get_opt(&ns_name).await.unwrap().is_none());
    // Nothing of 2.0.0 was applied, not even its namespaced objects; 1.0.0 is still what runs.
    let sas = t.api_in::<k8s_openapi::api::core::v1::ServiceAccount>(&sa_ns);
    assert!(sas.get_opt("intruder").await.unwrap().is_none(), "2.0.0 was half applied");
    t.api_in::<ConfigMap>(&sa_ns).get("innocent").await.unwrap();
    let s = t.api::<Release>().get("ops-dev").await.unwrap().status.unwrap();
    assert_eq!(s.current_version.as_deref(), Some("1.0.0"));
    assert_eq!(s.history.len(), 1, "a refused version is not a rollout: {:?}", s.history);
    // And it said so in a Warning Event on the Release.
    let events = t.api::<k8s_openapi::api::events::v1::Event>().list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("ClusterScopedManifest")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("ops-dev")
            && e.type_.as_deref() == Some("Warning")),
        "no Warning Event ClusterScopedManifest on ops-dev"
    );
}

#[tokio::test]
async fn nothing_is_written_outside_the_environments_namespace() {
    let t = TestNs::new("sec-ns").await;
    // Another pipeline with an Environment of its own: its namespace is off limits to this one.
    let other = TestNs::new("sec-ns-other").await;
    other.environment("dev", json!({})).await;
    let theirs = other.env_ns("dev");
    t.environment("dev", json!({})).await;

    let foreign = [
        ("kube-system", "kube-system"),
        ("default", "default"),
        ("theirs", theirs.as_str()),
        ("pipeline", t.ns.as_str()),
    ];
    for (app, ns) in foreign {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("{}-{app}", t.ns), "namespace": ns}});
        t.app_version(app, "1.0.0", json!({"manifests": [cm]})).await;
        t.release(&format!("{app}-dev"), app, "dev", "1.0.0", json!({})).await;
    }
    for (app, ns) in foreign {
        let message = wait_reason(&t, &format!("{app}-dev"), "ForeignNamespace", Phase::Failed).await;
        assert!(message.contains(ns) && message.contains(&t.env_ns("dev")), "{message}");
    }

    // An Environment claiming someone else's namespace (another pipeline's, or kube-system) is
    // refused, and so nothing is deployed there.
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "grab"},
        "spec": {"namespace": theirs, "tier": "dev"}}),
    )
    .await;
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "system"},
        "spec": {"namespace": "kube-system", "tier": "prod"}}),
    )
    .await;
    t.app_version("web", "1.0.0", json!({})).await;
    t.release("web-grab", "web", "grab", "1.0.0", json!({})).await;
    t.release("web-system", "web", "system", "1.0.0", json!({})).await;
    wait_reason(&t, "web-grab", "EnvironmentNotReady", Phase::Pending).await;
    wait_reason(&t, "web-system", "EnvironmentNotReady", Phase::Pending).await;

    // An Environment that runs a Release and then moves to a namespace it does not own stops
    // being a target: the Release waits; nothing follows it into kube-system.
    t.environment("moving", json!({})).await;
    t.release("web-moving", "web", "moving", "1.0.0", json!({})).await;
    t.wait_release("web-moving", healthy_at("1.0.0")).await;
    let to_system = json!({"spec": {"namespace": "kube-system"}});
    t.api::<tuskfish::api::Environment>()
        .patch("moving", &PatchParams::default(), &Patch::Merge(&to_system))
        .await
        .unwrap();
    wait_reason(&t, "web-moving", "EnvironmentNotReady", Phase::Pending).await;
    t.nudge::<Release>("web-moving").await;

    for (_, ns) in foreign {
        assert!(
            t.api_in::<ConfigMap>(ns).get_opt(&format!("{}-{}", t.ns, ns)).await.unwrap().is_none(),
            "a ConfigMap was created in {ns}"
        );
        nothing_of(&t, &t.ns, ns).await;
    }
    nothing_of(&t, &t.ns, "kube-system").await;
    // The other pipeline's Environment still owns its namespace.
    other.wait_env_ready("dev").await;
    // What ran in the moved Environment's old namespace is still there (never pruned into or
    // from a namespace the Environment does not own), and the Release still says what ran.
    t.api_in::<Deployment>(&t.env_ns("moving")).get("web").await.unwrap();
    let s = t.api::<Release>().get("web-moving").await.unwrap().status.unwrap();
    assert_eq!(s.current_version.as_deref(), Some("1.0.0"));
}

/// Whoever may write an Environment's status (or a status left over from the cluster the
/// Environment was in before) cannot point a Release at a namespace the Environment does not own:
/// the claim is checked live, in the cluster written to, right before every write. The status is
/// forged over and over, as an attacker racing the Environment controller would.
#[tokio::test]
async fn a_forged_environment_status_writes_nothing() {
    let t = TestNs::new("sec-forge").await;
    let victim = format!("{}-victim", t.ns);
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": victim}})).unwrap();
    Api::<Namespace>::all(t.client.clone()).create(&Default::default(), &obj).await.unwrap();
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "hop"},
        "spec": {"namespace": victim, "tier": "dev"}}),
    )
    .await;
    let env = t
        .wait_for::<tuskfish::api::Environment>("hop", |e| {
            e.status.as_ref().is_some_and(|s| {
                find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "NamespaceNotManaged")
            })
        })
        .await;
    t.app_version("loot", "1.0.0", json!({"manifests": [config_map("loot")]})).await;
    t.release("loot-hop", "loot", "hop", "1.0.0", json!({})).await;
    wait_reason(&t, "loot-hop", "EnvironmentNotReady", Phase::Pending).await;

    let forged = json!({"status": {
        "observedGeneration": env.metadata.generation, "namespace": victim, "cluster": "in-cluster",
        "conditions": [{"type": "Ready", "status": "True", "reason": "NamespaceOwned", "message": "forged",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let envs = t.api::<tuskfish::api::Environment>();
    let forging = tokio::spawn(async move {
        loop {
            envs.patch_status("hop", &PatchParams::default(), &Patch::Merge(&forged)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let refused = t.wait_release("loot-hop", reason_is("NamespaceNotClaimed")).await;
    forging.abort();
    let message = find_condition(&refused.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains(&victim) && message.contains("not managed by tuskfish"), "{message}");
    nothing_of(&t, &t.ns, &victim).await;
    assert!(t.api_in::<ConfigMap>(&victim).get_opt("loot").await.unwrap().is_none(), "written into {victim}");
}

/// A Release cannot bring root on the nodes: the namespaces Environments create enforce the
/// `baseline` Pod Security level, so the API server refuses the pods of a DaemonSet in the node's
/// process namespace mounting its root (it would hold every token on the node, the operator's too).
/// (Privileged containers this bed's API server refuses by itself: it runs without
/// --allow-privileged, unlike most clusters.)
#[tokio::test]
async fn a_daemonset_with_the_nodes_root_gets_no_pods() {
    let t = TestNs::new("sec-psa").await;
    t.environment("dev", json!({})).await;
    let ns = t.env_ns("dev");
    let labels = Api::<Namespace>::all(t.client.clone()).get(&ns).await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("baseline"));
    let root = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "root"},
        "spec": {"selector": {"matchLabels": {"app": "root"}},
                 "template": {"metadata": {"labels": {"app": "root"}},
                              "spec": {"hostPID": true, "tolerations": [{"operator": "Exists"}],
                                       "containers": [{"name": "c", "image": "busybox:1",
                                                       "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                                       "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}}});
    t.app_version("root", "1.0.0", json!({"manifests": [root], "workload": null})).await;
    t.release("root-dev", "root", "dev", "1.0.0", json!({})).await;
    let events = t.api_in::<k8s_openapi::api::events::v1::Event>(&ns);
    let refusal = common::within("the DaemonSet's pods refused by Pod Security admission", async {
        loop {
            let notes: Vec<String> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|e| e.note)
                .collect();
            if let Some(n) = notes.into_iter().find(|n| n.contains("violates PodSecurity")) {
                return n;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(refusal.contains("hostPID") && refusal.contains("hostPath"), "{refusal}");
    let pods = t.api_in::<k8s_openapi::api::core::v1::Pod>(&ns).list(&ListParams::default()).await.unwrap();
    assert!(
        pods.items.is_empty(),
        "pods were created: {:?}",
        pods.items.iter().map(|p| p.metadata.name.clone()).collect::<Vec<_>>()
    );
}

/// A namespace belongs to the pipeline a cluster admin granted it to, not to whoever names it
/// first: an Environment asking for one outside its grants neither creates nor adopts it, and
/// gets it once a PipelinePolicy grants it.
#[tokio::test]
async fn a_pipeline_claims_only_the_namespaces_granted_to_it() {
    let t = TestNs::new("sec-squat").await;
    let squat = format!("squat-{}", t.ns);
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "grab"},
        "spec": {"namespace": squat, "tier": "prod"}}),
    )
    .await;
    let env = t.wait_for::<tuskfish::api::Environment>("grab", env_reason_is("NamespaceNotGranted")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains(&squat) && message.contains("tuskfish-tests"), "{message}");
    let namespaces = Api::<Namespace>::all(t.client.clone());
    assert!(namespaces.get_opt(&squat).await.unwrap().is_none(), "{squat} was created");

    // Granted by an admin: claimed, at the pipeline's Pod Security level.
    let policy = format!("{}-squat", t.ns);
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "PipelinePolicy", "metadata": {"name": policy},
        "spec": {"pipelines": [t.ns], "namespaces": ["squat-{pipeline}"], "podSecurity": "restricted"}}),
    )
    .await;
    t.wait_for::<tuskfish::api::Environment>("grab", env_reason_is("NamespaceOwned")).await;
    let labels = namespaces.get(&squat).await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
    let policies: Api<tuskfish::api::PipelinePolicy> = Api::all(t.client.clone());
    common::delete(&policies, &policy).await;
    common::delete(&namespaces, &squat).await;
}

/// A cluster admin bounds the kinds a pipeline applies, as Argo CD's AppProject does: a Release
/// bringing a RoleBinding into a pipeline whose policy denies RBAC kinds applies nothing of it.
#[tokio::test]
async fn a_policy_bounds_the_kinds_a_pipeline_applies() {
    let t = TestNs::new("sec-kinds").await;
    let policy = format!("{}-kinds", t.ns);
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "PipelinePolicy", "metadata": {"name": policy},
        "spec": {"pipelines": [t.ns], "kinds": {"deny": [{"group": "rbac.authorization.k8s.io", "kind": "*"}]}}}))
        .await;
    t.environment("dev", json!({})).await;
    let grab = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "grab"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]});
    t.app_version("grab", "1.0.0", json!({"manifests": [config_map("grab-settings"), grab]})).await;
    t.release("grab-dev", "grab", "dev", "1.0.0", json!({})).await;
    let message = wait_reason(&t, "grab-dev", "ForbiddenKind", Phase::Failed).await;
    assert!(
        message.contains("RoleBinding.rbac.authorization.k8s.io is denied") && message.contains(&policy),
        "{message}"
    );
    let dev = t.env_ns("dev");
    assert!(
        t.api_in::<k8s_openapi::api::rbac::v1::RoleBinding>(&dev).get_opt("grab").await.unwrap().is_none()
    );
    assert!(t.api_in::<ConfigMap>(&dev).get_opt("grab-settings").await.unwrap().is_none(), "applied in part");

    // A check Job is a Job like any other: a policy that denies Jobs runs none, and the rollout
    // fails saying so.
    let no_jobs = json!({"spec": {"kinds": {"deny": [{"group": "batch", "kind": "Job"}]}}});
    let policies: Api<tuskfish::api::PipelinePolicy> = Api::all(t.client.clone());
    policies.patch(&policy, &PatchParams::default(), &Patch::Merge(&no_jobs)).await.unwrap();
    let check = json!([{"name": "smoke", "job": {"template": {"spec": {"hostPID": true,
        "containers": [{"name": "smoke", "image": "registry.example/smoke:1"}]}}}}]);
    t.app_version("plain", "1.0.0", json!({"manifests": [config_map("plain-settings")]})).await;
    t.release("plain-dev", "plain", "dev", "1.0.0", json!({"verify": check})).await;
    let message = wait_reason(&t, "plain-dev", "VerificationFailed", Phase::Degraded).await;
    assert!(message.contains("Job.batch is denied") && message.contains(&policy), "{message}");
    let jobs = t.api_in::<k8s_openapi::api::batch::v1::Job>(&dev).list(&ListParams::default()).await.unwrap();
    assert!(
        jobs.items.is_empty(),
        "a check Job ran: {:?}",
        jobs.items.iter().map(|j| &j.metadata.name).collect::<Vec<_>>()
    );
    common::delete(&policies, &policy).await;
}

/// Another cluster is the admin's to grant: an Environment of a pipeline no policy grants one
/// names a kubeconfig Secret, and the operator does not even connect to the server it names.
#[tokio::test]
async fn a_pipeline_deploys_to_no_other_cluster_unless_granted() {
    let t = TestNs::without_policy("sec-cluster").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n\
         clusters: [{{name: x, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
         users: [{{name: x, user: {{token: \"t\"}}}}]\n\
         contexts: [{{name: x, context: {{cluster: x, user: x}}}}]\n"
    );
    common::control_plane::put_kubeconfig(&t.api(), "mine", &kubeconfig).await;
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "far"},
        "spec": {"namespace": t.env_ns("far"), "tier": "dev", "cluster": {"kubeConfigSecretRef": {"name": "mine"}}}}))
        .await;
    let env = t.wait_for::<tuskfish::api::Environment>("far", env_reason_is("ClusterNotGranted")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("kubeconfig Secret mine is not granted"), "{message}");
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-far", "pay", "far", "1.0.0", json!({})).await;
    wait_reason(&t, "pay-far", "ClusterNotGranted", Phase::Pending).await;
    // Deleting the Release (nothing was ever applied) does not connect there either.
    common::delete(&t.api::<Release>(), "pay-far").await;
    t.wait_gone::<Release>(&t.ns, "pay-far").await;
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the operator connected to the ungranted cluster");
}

/// A policy can require every Environment of a pipeline to deploy as a ServiceAccount of its
/// namespace, so that RBAC there bounds every write (the operator's own rights never do).
#[tokio::test]
async fn a_policy_requires_a_service_account() {
    let t = TestNs::new("sec-sa").await;
    let policy = format!("{}-sa", t.ns);
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "PipelinePolicy", "metadata": {"name": policy},
        "spec": {"pipelines": [t.ns], "requireServiceAccount": true}}),
    )
    .await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({"manifests": [config_map("pay-settings")], "workload": null})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    let message = wait_reason(&t, "pay-dev", "ServiceAccountRequired", Phase::Failed).await;
    assert!(message.contains(&policy) && message.contains("spec.serviceAccountName"), "{message}");
    assert!(t.api_in::<ConfigMap>(&t.env_ns("dev")).get_opt("pay-settings").await.unwrap().is_none());
    let policies: Api<tuskfish::api::PipelinePolicy> = Api::all(t.client.clone());
    common::delete(&policies, &policy).await;
}

fn env_reason_is(reason: &'static str) -> impl Fn(&tuskfish::api::Environment) -> bool {
    move |e| {
        e.status
            .as_ref()
            .is_some_and(|s| find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == reason))
    }
}

/// A pipeline no policy grants egress cannot make the operator fetch what the operator's own
/// network can reach (here a loopback server standing in for cloud metadata): an HTTP check and
/// a notification aimed there are refused before any connection, and the answer never shows.
#[tokio::test]
async fn checks_and_notifications_do_not_reach_what_no_policy_granted() {
    let t = TestNs::without_policy("sec-ssrf").await;
    let server = Receiver::start().await;
    server.answer("latest/meta-data", &[(200, "SECRET-CREDENTIALS-1")]);
    t.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook-url"},
        "stringData": {"url": format!("http://{}/hook", server.host())}}))
        .await;
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Notification", "metadata": {"name": "hook"},
        "spec": {"events": ["RolloutStarted"], "target": {"format": "Webhook", "secretRef": {"name": "hook-url"}}}}))
        .await;
    let check = json!({"name": "meta", "http": {"url": format!("http://{}/latest/meta-data", server.host()),
        "bodyMatches": "SECRET", "retries": 0}});
    t.environment("dev", json!({"verify": [check]})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    let failed = t.wait_release("pay-dev", reason_is("VerificationFailed")).await;
    let status = serde_json::to_string(&failed.status).unwrap();
    assert!(status.contains("a loopback address") && status.contains("spec.egress.allow"), "{status}");
    let failing = |n: &tuskfish::api::Notification| {
        n.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "DeliveryFailing"))
    };
    let n = t.wait_for::<tuskfish::api::Notification>("hook", failing).await;
    let said = serde_json::to_string(&n.status).unwrap();
    assert!(said.contains("a loopback address"), "{said}");
    assert!(
        server.received("latest/meta-data").is_empty() && server.received("hook").is_empty(),
        "connected"
    );
    assert!(!status.contains("SECRET-CREDENTIALS"), "{status}");
}

#[tokio::test]
async fn a_release_sees_only_its_own_namespace() {
    // Pipeline X has everything: an Environment, AppVersions, a healthy Release, an Approval.
    let x = TestNs::new("sec-x").await;
    x.environment("dev", json!({})).await;
    x.environment("prod", json!({"approval": "required"})).await;
    x.app_version("pay", "1.0.0", json!({})).await;
    x.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    x.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // Pipeline Y names X's things.
    let y = TestNs::new("sec-y").await;
    y.environment("dev", json!({})).await;
    y.environment("prod", json!({"approval": "required"})).await;
    y.app_version("other", "1.0.0", json!({})).await;
    // An Environment that exists only in X (by name, and by namespace-qualified name).
    y.release("env-elsewhere", "pay", "staging", "1.0.0", json!({})).await;
    x.environment("staging", json!({})).await;
    y.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": "env-qualified"},
        "spec": {"app": "pay", "environment": format!("{}/dev", x.ns), "version": "1.0.0"}}))
        .await;
    // An AppVersion that exists only in X (in Y's prod, so that Y has no Release of pay in dev).
    y.release("av-elsewhere", "pay", "prod", "1.0.0", json!({})).await;
    y.release("track-elsewhere", "pay", "prod", "1.0.0", json!({"version": null, "track": "*"})).await;
    // An upstream Release that exists (Healthy) only in X.
    y.release(
        "promote-elsewhere",
        "pay",
        "prod",
        "1.0.0",
        json!({"version": null, "promoteFrom": {"environment": "dev"}}),
    )
    .await;
    // A dependency that runs (Healthy) only in X.
    y.release("dep-elsewhere", "other", "dev", "1.0.0", json!({"dependsOn": [{"app": "pay"}]})).await;

    wait_reason(&y, "env-elsewhere", "EnvironmentNotFound", Phase::Pending).await;
    wait_reason(&y, "env-qualified", "EnvironmentNotFound", Phase::Pending).await;
    wait_reason(&y, "av-elsewhere", "AppVersionNotFound", Phase::Pending).await;
    wait_reason(&y, "track-elsewhere", "NoMatchingVersion", Phase::Pending).await;
    wait_reason(&y, "promote-elsewhere", "UpstreamNotFound", Phase::Pending).await;
    wait_reason(&y, "dep-elsewhere", "WaitingForDependencies", Phase::Pending).await;

    // An Approval in X does not unlock Y's Release of the same name; in X it does.
    y.app_version("pay", "1.0.0", json!({})).await;
    y.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    x.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    wait_reason(&y, "pay-prod", "AwaitingApproval", Phase::Pending).await;
    wait_reason(&x, "pay-prod", "AwaitingApproval", Phase::Pending).await;
    x.approve("pay-prod", "1.0.0", "mallory").await;
    let approved = x.wait_release("pay-prod", healthy_at("1.0.0")).await;
    assert!(approved.status.unwrap().history[0].message.as_deref().unwrap_or_default().contains("mallory"));
    y.nudge::<Release>("pay-prod").await;
    let s = y.api::<Release>().get("pay-prod").await.unwrap().status.unwrap();
    assert_eq!(
        find_condition(&s.conditions, "Ready").unwrap().reason,
        "AwaitingApproval",
        "X's Approval unlocked Y"
    );
    assert!(s.history.is_empty() && s.current_version.is_none());

    // Nothing of Y's ran anywhere: not in X's Environment namespaces, not in its own.
    for ns in [x.env_ns("dev"), x.env_ns("staging"), x.env_ns("prod"), y.env_ns("dev"), y.env_ns("prod")] {
        nothing_of(&y, &y.ns, &ns).await;
    }
    // X's Release was never touched by Y's: its status is Healthy with one rollout.
    let s = x.api::<Release>().get("pay-dev").await.unwrap().status.unwrap();
    assert_eq!((s.phase, s.history.len()), (Some(Phase::Healthy), 1));
}

/// JSON nested deeper than serde_json reads (128 levels), in one tenant's objects: the API server
/// stores it, and one such object would fail every list of its kind, stalling every pipeline. The
/// operator cuts it on the way in: the AppVersion whose manifests nest too deep says so and is
/// never published, a Release whose (unused) Helm values nest too deep stalls nothing, and other
/// pipelines roll out.
#[tokio::test]
async fn objects_nested_hundreds_of_levels_deep_stall_no_pipeline() {
    let t = TestNs::new("deep").await;
    t.environment("dev", json!({"tier": "dev"})).await;
    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!({ "a": deep });
    }
    let manifest =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": deep});
    let refused = t.app_version("deep", "1.0.0", json!({"workload": null, "manifests": [manifest]})).await;
    let ready = find_condition(&refused.status.unwrap().conditions, "Ready").unwrap().clone();
    assert_eq!(ready.reason, "NestedTooDeep", "{ready:?}");
    assert!(ready.message.contains("nest deeper than 90 levels"), "{}", ready.message);
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({"helmValues": deep})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    // Another tenant's Release rolls out all the same.
    let other = TestNs::new("deep-other").await;
    other.environment("dev", json!({"tier": "dev"})).await;
    other.app_version("pay", "1.0.0", json!({})).await;
    other.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    other.wait_release("pay-dev", healthy_at("1.0.0")).await;
}
