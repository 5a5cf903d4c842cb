#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Three clusters: the hub (the bed, where the pipeline lives and the operator runs), "test"
//! reached by a kubeconfig Secret, and "prod" reached only by a `tuskfish agent` running beside it
//! with the hub rights of `examples/agent/hub-rbac.yaml` and nothing more. The seed story runs
//! across them: 1.3.9 in prod, the hotfix 1.3.10 tracked in dev and approved into prod, the 1.4
//! line in test. The agent is killed in the middle of prod's rollout: the hub says
//! `AgentNotConnected`, and the restarted agent finishes the rollout, recorded once. The hub holds
//! no credentials for prod.

mod common;

use common::control_plane::{OwnCluster, put_kubeconfig};
use common::{Proc, TestNs, apply_yaml_file, healthy_at, held, process, service_account_kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;
use tuskfish::api::{Environment, Release, RolloutResult, find_condition};

fn env_ready_is(status: &'static str, reason: &'static str) -> impl Fn(&Environment) -> bool {
    move |e| {
        e.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, "Ready"))
            .is_some_and(|c| c.status == status && c.reason == reason)
    }
}

/// The agent, as its cluster runs it: its own cluster's kubeconfig, the hub's for its ServiceAccount.
fn agent(prod: &OwnCluster, hub_kubeconfig: &std::path::Path, ns: &str, log: &str) -> Proc {
    let own = prod.dir.join("kubeconfig");
    let args = [
        "--kubeconfig",
        own.to_str().unwrap(),
        "agent",
        "--name",
        "prod-eu",
        "--hub-kubeconfig",
        hub_kubeconfig.to_str().unwrap(),
        "--hub-namespace",
        ns,
        "--lease-duration",
        "6s",
        "--metrics-addr",
        "off",
    ];
    process(env!("CARGO_BIN_EXE_tuskfish"), &args, &std::env::temp_dir().join(log))
}

/// The hub operator's `tuskfish_agent_connected` for this test's agent.
fn agent_metric(t: &TestNs) -> Option<String> {
    common::metric(&format!("tuskfish_agent_connected{{namespace=\"{}\",agent=\"prod-eu\"}}", t.ns))
}

/// The hub RBAC of the README, for this test's namespace instead of `finance`.
async fn grant_agent_rights(t: &TestNs) {
    let text = std::fs::read_to_string(common::examples().join("agent/hub-rbac.yaml")).unwrap();
    assert!(text.contains("namespace: finance"));
    let file = std::env::temp_dir().join(format!("{}-hub-rbac.yaml", t.ns));
    // Cluster-wide names are per test too (tests run side by side).
    let text = text
        .replace("namespace: finance", &format!("namespace: {}", t.ns))
        .replace("name: tuskfish-agent-prod-eu-ledger-writer", &format!("name: {}-ledger-writer", t.ns));
    std::fs::write(&file, text).unwrap();
    apply_yaml_file(&t.client, &file).await;
}

#[tokio::test]
async fn the_seed_story_across_a_hub_a_pushed_cluster_and_an_agent() {
    let (test, prod) = (OwnCluster::start("story-test").await, OwnCluster::start("story-prod").await);
    let t = TestNs::new("agent").await;
    // The test cluster is pushed to: its kubeconfig is a Secret on the hub.
    put_kubeconfig(&t.api(), "test-cluster", &test.kubeconfig()).await;
    // Prod runs an agent with the hub rights of examples/agent/hub-rbac.yaml, as its ServiceAccount.
    grant_agent_rights(&t).await;
    let hub_kubeconfig = service_account_kubeconfig(&t.client, &t.ns, "tuskfish-agent-prod-eu").await;
    let mut running = Some(agent(&prod, &hub_kubeconfig, &t.ns, "tuskfish-agent-1.log"));

    for (name, spec) in [
        ("dev-1-3", json!({"versionLine": "~1.3"})),
        (
            "test",
            json!({"tier": "test", "versionLine": "~1.4",
            "cluster": {"name": "test", "kubeConfigSecretRef": {"name": "test-cluster"}}}),
        ),
        (
            "prod",
            json!({"tier": "prod", "versionLine": "~1.3", "approval": "required",
            "cluster": {"name": "prod", "agent": "prod-eu"}}),
        ),
    ] {
        t.environment(name, spec).await;
    }
    let prod_env = t.wait_for::<Environment>("prod", env_ready_is("True", "AgentConnected")).await;
    assert_eq!(agent_metric(&t).as_deref(), Some("1"));
    assert_eq!(prod_env.status.unwrap().cluster.as_deref(), Some("prod"));

    t.app_version("payments", "1.3.9", json!({})).await;
    t.app_version("payments", "1.4.0", json!({})).await;
    t.release("payments-dev-1-3", "payments", "dev-1-3", "", json!({"version": null, "track": "~1.3"})).await;
    t.release("payments-test", "payments", "test", "", json!({"version": null, "track": "~1.4"})).await;
    let promote = json!({"version": null, "promoteFrom": {"environment": "dev-1-3", "soak": "0s"}, "progressDeadlineSeconds": 600});
    t.release("payments-prod", "payments", "prod", "", promote).await;
    t.wait_release("payments-dev-1-3", healthy_at("1.3.9")).await;
    t.wait_release("payments-test", healthy_at("1.4.0")).await;
    // The agent holds prod's first rollout for the approval, and writes that to the hub.
    t.wait_release("payments-prod", |s| {
        find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "AwaitingApproval")
    })
    .await;
    t.approve("payments-prod", "1.3.9", "maria.keller").await;
    t.wait_release("payments-prod", healthy_at("1.3.9")).await;

    // Each cluster runs what belongs there, and only there.
    let in_cluster = |c: kube::Client, env: &str| Api::<Deployment>::namespaced(c, &t.env_ns(env));
    let (test_client, prod_client) = (test.client().await, prod.client().await);
    assert!(in_cluster(prod_client.clone(), "prod").get_opt("payments").await.unwrap().is_some());
    assert!(in_cluster(t.client.clone(), "prod").get_opt("payments").await.unwrap().is_none());
    assert!(in_cluster(test_client.clone(), "test").get_opt("payments").await.unwrap().is_some());
    assert!(in_cluster(t.client.clone(), "test").get_opt("payments").await.unwrap().is_none());
    assert!(in_cluster(t.client.clone(), "dev-1-3").get_opt("payments").await.unwrap().is_some());

    // The hotfix: dev tracks it, prod waits for its approval; its pods take 8 s to be Ready.
    let slow = json!({"workload": {"podAnnotations": {"sim.tuskfish.dev/ready-after": "8s"}}});
    t.app_version("payments", "1.3.10", slow).await;
    t.wait_release("payments-dev-1-3", healthy_at("1.3.10")).await;
    t.wait_release("payments-prod", held("AwaitingApproval")).await;
    t.approve("payments-prod", "1.3.10", "maria.keller").await;
    t.wait_release("payments-prod", |s| {
        s.history.first().is_some_and(|h| h.version == "1.3.10" && h.result == RolloutResult::Progressing)
    })
    .await;

    // The agent dies in the middle of the rollout: once its lease lapses the hub says so.
    drop(running.take());
    let env = t.wait_for::<Environment>("prod", env_ready_is("False", "AgentNotConnected")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("agent prod-eu last reported"), "{message}");
    assert_eq!(agent_metric(&t).as_deref(), Some("0"));
    let status = common::tuskfish_output(&t.ns, &["status"]).await;
    assert!(
        status.contains(
            "prod: approval required, in cluster prod, AgentNotConnected: agent prod-eu last reported"
        ),
        "{status}"
    );
    // Restarted, it picks up where it was: the rollout finishes and is recorded once.
    let restarted = agent(&prod, &hub_kubeconfig, &t.ns, "tuskfish-agent-2.log");
    t.wait_for::<Environment>("prod", env_ready_is("True", "AgentConnected")).await;
    let rel = t.wait_release("payments-prod", healthy_at("1.3.10")).await;
    let history: Vec<(String, RolloutResult)> =
        rel.status.unwrap().history.iter().map(|h| (h.version.clone(), h.result)).collect();
    assert_eq!(
        history,
        vec![("1.3.10".into(), RolloutResult::Succeeded), ("1.3.9".into(), RolloutResult::Succeeded)]
    );
    let image = |d: Deployment| d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    let running_image = image(in_cluster(prod_client.clone(), "prod").get("payments").await.unwrap());
    assert_eq!(running_image, "registry.example/payments:1.3.10");

    // The hub holds no credentials for prod: no Secret on it carries prod's token.
    let prod_token =
        prod.kubeconfig().split("token: \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let secrets = Api::<Secret>::all(t.client.clone()).list(&Default::default()).await.unwrap();
    for s in secrets.items {
        for value in s.data.iter().flat_map(|d| d.values()) {
            assert!(
                !String::from_utf8_lossy(&value.0).contains(&prod_token),
                "Secret {:?} holds prod's token",
                s.metadata.name
            );
        }
    }

    // The agent decommissioned for good: deleting its Release does not hang. The operator says
    // why (its Lease lapsed) and how to let it go, and the abandon annotation does.
    drop(restarted);
    t.wait_for::<Environment>("prod", env_ready_is("False", "AgentNotConnected")).await;
    common::delete(&t.api::<Release>(), "payments-prod").await;
    let rel = t
        .wait_release("payments-prod", |s| {
            find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "CleanupBlocked")
        })
        .await;
    let message = find_condition(&rel.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("tuskfish.dev/abandon-objects=prod"), "{message}");
    let abandon = serde_json::json!({"metadata": {"annotations": {"tuskfish.dev/abandon-objects": "prod"}}});
    t.api::<Release>()
        .patch("payments-prod", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&abandon))
        .await
        .unwrap();
    t.wait_gone::<Release>(&t.ns, "payments-prod").await;
    assert!(
        in_cluster(prod_client, "prod").get_opt("payments").await.unwrap().is_some(),
        "abandoned, not removed"
    );
}
