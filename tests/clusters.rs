#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Environments in another cluster, reached through a kubeconfig Secret: the operator (here, in
//! the bed's cluster: the hub) creates the namespace, applies, repairs drift and reads health
//! there; an API server that stops mid-rollout holds the rollout with `ClusterUnreachable` and
//! loses nothing, and the rollout finishes once it answers again; a rotated Secret is used at
//! once; a kubeconfig that would run a command is refused. The other cluster is a control plane of
//! this test's own (hack/cluster-up.sh), so it can be stopped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::control_plane::{OwnCluster, put_kubeconfig};
use common::{TestNs, healthy_at, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use tuskfish::api::{Environment, Release, ReleaseStatus, RolloutResult, find_condition};

fn ready_reason(conditions: &[tuskfish::api::Condition]) -> Option<(String, String)> {
    find_condition(conditions, "Ready").map(|c| (c.status.clone(), c.reason.clone()))
}

fn release_ready_is(status: &'static str, reason: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| ready_reason(&s.conditions) == Some((status.into(), reason.into()))
}

fn env_ready_is(status: &'static str, reason: &'static str) -> impl Fn(&Environment) -> bool {
    move |e| {
        e.status.as_ref().is_some_and(|s| ready_reason(&s.conditions) == Some((status.into(), reason.into())))
    }
}

/// `kubectl get environments` in the test namespace of the hub.
async fn kubectl_environments(t: &TestNs) -> String {
    let kubeconfig = common::kubeconfig();
    let kubectl = std::path::Path::new(&kubeconfig).parent().unwrap().join("bin/kubectl");
    let mut cmd = std::process::Command::new(kubectl);
    cmd.args(["--kubeconfig", &kubeconfig, "-n", &t.ns, "get", "environments"]);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The test operator's `tuskfish_cluster_reachable` for this test's Secret.
fn reachable_metric(t: &TestNs) -> Option<String> {
    common::metric(&format!("tuskfish_cluster_reachable{{namespace=\"{}\",secret=\"test-cluster\"}}", t.ns))
}

#[tokio::test]
async fn an_environment_in_another_cluster_is_deployed_held_while_unreachable_and_resumed() {
    let remote = OwnCluster::start("test").await;
    let there = remote.client().await;
    let t = TestNs::new("clusters").await;
    put_kubeconfig(&t.api(), "test-cluster", &remote.kubeconfig()).await;

    // The same pipeline: dev in the hub's own cluster, test in the other one.
    t.environment("dev", json!({})).await;
    let env = t
        .environment(
            "test",
            json!({"tier": "test", "cluster": {"name": "test", "kubeConfigSecretRef": {"name": "test-cluster"}}}),
        )
        .await;
    assert_eq!(env.status.as_ref().and_then(|s| s.cluster.as_deref()), Some("test"));
    let test_ns = t.env_ns("test");
    let hub_namespaces: Api<Namespace> = Api::all(t.client.clone());
    let remote_namespaces: Api<Namespace> = Api::all(there.clone());
    assert!(
        remote_namespaces.get_opt(&test_ns).await.unwrap().is_some(),
        "namespace created in the other cluster"
    );
    assert!(hub_namespaces.get_opt(&test_ns).await.unwrap().is_none(), "and not in the hub");

    // Pods of 1.4.1 become Ready 8 s after they start, so its rollout is surely under way when the
    // other cluster's API server stops.
    t.app_version("pay", "1.4.0", json!({})).await;
    let slow = json!({"workload": {"podAnnotations": {"sim.tuskfish.dev/ready-after": "8s"}}});
    t.app_version("pay", "1.4.1", slow).await;
    t.release("pay-dev", "pay", "dev", "1.4.0", json!({})).await;
    t.release("pay-test", "pay", "test", "1.4.0", json!({"progressDeadlineSeconds": 600})).await;
    t.wait_release("pay-dev", healthy_at("1.4.0")).await;
    t.wait_release("pay-test", healthy_at("1.4.0")).await;
    let deployments_there: Api<Deployment> = Api::namespaced(there.clone(), &test_ns);
    let hub_deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &test_ns);
    assert!(deployments_there.get_opt("pay").await.unwrap().is_some());
    assert!(hub_deployments.get_opt("pay").await.unwrap().is_none());

    // Drift there is seen by the watches there and repaired.
    deployments_there.delete("pay", &DeleteParams::default()).await.unwrap();
    within("the Deployment to be applied again in the other cluster", async {
        loop {
            if deployments_there
                .get_opt("pay")
                .await
                .unwrap()
                .is_some_and(|d| d.metadata.deletion_timestamp.is_none())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    t.wait_release("pay-test", healthy_at("1.4.0")).await;

    // Which cluster each environment is in, wherever one looks.
    let listed = kubectl_environments(&t).await;
    // Columns by the header's offsets (an empty LINE leaves no word to count).
    let at = listed.lines().next().unwrap().find("CLUSTER").unwrap();
    let column = |env: &str| {
        let line = listed.lines().find(|l| l.starts_with(&format!("{env} ")))?;
        line.get(at..)?.split_whitespace().next().map(String::from)
    };
    assert_eq!(
        (column("dev").as_deref(), column("test").as_deref()),
        (Some("in-cluster"), Some("test")),
        "{listed}"
    );
    let status = common::tuskfish_output(&t.ns, &["status"]).await;
    assert!(status.contains("test: in cluster test\n"), "{status}");
    let diff = common::tuskfish_output(&t.ns, &["diff", "dev", "test"]).await;
    assert!(diff.contains("test runs in cluster test\n") && !diff.contains("dev runs"), "{diff}");
    assert_eq!(reachable_metric(&t).as_deref(), Some("1"));

    // 1.4.1 starts rolling out; the other cluster's API server stops in the middle of it.
    t.set_version("pay-test", "1.4.1").await;
    t.wait_release("pay-test", |s| {
        s.history.first().is_some_and(|h| h.version == "1.4.1" && h.result == RolloutResult::Progressing)
    })
    .await;
    let apiserver = remote.apiserver();
    let t_ref = &t;
    apiserver
        .restart_after(async move {
            let rel = t_ref.wait_release("pay-test", release_ready_is("False", "ClusterUnreachable")).await;
            let ready = find_condition(&rel.status.as_ref().unwrap().conditions, "Ready").unwrap().clone();
            assert!(ready.message.contains("cluster test cannot be reached"), "{}", ready.message);
            t_ref.wait_for::<Environment>("test", env_ready_is("False", "ClusterUnreachable")).await;
            // The hub's own environment is undisturbed.
            let dev = t_ref.api::<Release>().get("pay-dev").await.unwrap();
            assert!(healthy_at("1.4.0")(dev.status.as_ref().unwrap()), "{:?}", dev.status);
            // Nothing of the rollout is lost while it waits.
            let history = &rel.status.as_ref().unwrap().history;
            assert_eq!(history.first().map(|h| h.version.as_str()), Some("1.4.1"), "{history:?}");
            let status = common::tuskfish_output(&t_ref.ns, &["status"]).await;
            assert!(
                status.contains("test: in cluster test, ClusterUnreachable: cluster test cannot be reached"),
                "{status}"
            );
            assert_eq!(reachable_metric(t_ref).as_deref(), Some("0"));
        })
        .await;

    // Back: the rollout finishes by itself, recorded once.
    let rel = t.wait_release("pay-test", healthy_at("1.4.1")).await;
    let history: Vec<(String, RolloutResult)> =
        rel.status.unwrap().history.iter().map(|h| (h.version.clone(), h.result)).collect();
    assert_eq!(
        history,
        vec![("1.4.1".into(), RolloutResult::Succeeded), ("1.4.0".into(), RolloutResult::Succeeded)],
    );
    t.wait_for::<Environment>("test", env_ready_is("True", "NamespaceOwned")).await;

    // A rotated Secret is used without a restart: a token the other cluster refuses makes it
    // unusable, the right one again makes it work again.
    let bad = remote.kubeconfig().replace("token: \"", "token: \"0");
    put_kubeconfig(&t.api(), "test-cluster", &bad).await;
    let env = t.wait_for::<Environment>("test", env_ready_is("False", "ClusterUnreachable")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("Unauthorized") || message.contains("401"), "{message}");
    put_kubeconfig(&t.api(), "test-cluster", &remote.kubeconfig()).await;
    t.wait_for::<Environment>("test", env_ready_is("True", "NamespaceOwned")).await;
    t.wait_release("pay-test", |s| healthy_at("1.4.1")(s) && release_ready_is("True", "RolloutComplete")(s))
        .await;

    // A kubeconfig that would run a command in the operator is refused, naming why.
    let exec = remote.kubeconfig().replace(
        "user: {token:",
        "user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}, token:",
    );
    assert_ne!(exec, remote.kubeconfig());
    put_kubeconfig(&t.api(), "test-cluster", &exec).await;
    let env = t.wait_for::<Environment>("test", env_ready_is("False", "ClusterConfigInvalid")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("runs a command (exec)"), "{message}");
    put_kubeconfig(&t.api(), "test-cluster", &remote.kubeconfig()).await;
    t.wait_for::<Environment>("test", env_ready_is("True", "NamespaceOwned")).await;

    // A deleted Release takes its objects in the other cluster with it, even once its Environment
    // is gone (its inventory says which cluster they are in).
    t.api::<Environment>().delete("test", &DeleteParams::default()).await.unwrap();
    t.wait_gone::<Environment>(&t.ns, "test").await;
    t.api::<Release>().delete("pay-test", &DeleteParams::default()).await.unwrap();
    t.wait_gone::<Release>(&t.ns, "pay-test").await;
    let left = deployments_there.get_opt("pay").await.unwrap();
    assert!(left.is_none_or(|d| d.metadata.deletion_timestamp.is_some()), "still there, not being deleted");
}

/// Another cluster's API server frozen (SIGSTOP: connections stay open, nothing answers — a
/// network partition) is noticed: its Environment and Releases say `ClusterUnreachable` (a probe
/// must answer every few seconds; see `cluster::link`) and recover by themselves once it goes on.
/// Then the whole pipeline namespace is deleted — its kubeconfig Secret with it, in no order with
/// the Releases — and the deletion finishes, the Releases' objects in that cluster removed.
#[tokio::test]
async fn a_stalled_cluster_is_noticed_and_a_pipeline_namespace_with_it_is_deleted() {
    let remote = OwnCluster::start("stall").await;
    let there = remote.client().await;
    let t = TestNs::new("stall").await;
    // As the README's least-privileged identity there, not the cluster's admin.
    put_kubeconfig(&t.api(), "far-cluster", &remote.operator_kubeconfig()).await;
    t.environment("far", json!({"cluster": {"name": "far", "kubeConfigSecretRef": {"name": "far-cluster"}}}))
        .await;
    t.app_version("pay", "1.0.0", json!({})).await;
    // 1.1.0's pods are Ready 5 s after they start; its rollout may take 15 s. The stall below
    // outlasts that deadline: the time the cluster could not be seen must not fail the version.
    let slow = json!({"workload": {"podAnnotations": {"sim.tuskfish.dev/ready-after": "5s"}}});
    t.app_version("pay", "1.1.0", slow).await;
    t.release("pay-far", "pay", "far", "1.0.0", json!({"progressDeadlineSeconds": 15})).await;
    t.wait_release("pay-far", healthy_at("1.0.0")).await;
    t.set_version("pay-far", "1.1.0").await;
    t.wait_release("pay-far", |s| s.desired_version.as_deref() == Some("1.1.0")).await;

    let t_ref = &t;
    remote
        .apiserver()
        .frozen_while(async move {
            let started = std::time::Instant::now();
            let env = t_ref.wait_for::<Environment>("far", env_ready_is("False", "ClusterUnreachable")).await;
            eprintln!("stall noticed in {:?}", started.elapsed());
            let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
            assert!(message.contains("did not answer"), "{message}");
            t_ref.wait_release("pay-far", release_ready_is("False", "ClusterUnreachable")).await;
            // The fault lasts longer than the rollout's deadline.
            tokio::time::sleep(std::time::Duration::from_secs(20).saturating_sub(started.elapsed())).await;
        })
        .await;
    t.wait_for::<Environment>("far", env_ready_is("True", "NamespaceOwned")).await;
    let r = t.wait_release("pay-far", healthy_at("1.1.0")).await;
    let status = r.status.unwrap();
    assert!(status.failed_versions.is_empty(), "the stall failed a version: {:?}", status.failed_versions);
    assert_eq!(status.history.first().map(|h| h.result), Some(RolloutResult::Succeeded));

    let remote_ns = t.env_ns("far");
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces.delete(&t.ns, &DeleteParams::default()).await.unwrap();
    within("the pipeline namespace to be deleted", async {
        while namespaces.get_opt(&t.ns).await.unwrap().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
    .await;
    let left = Api::<Deployment>::namespaced(there, &remote_ns).get_opt("pay").await.unwrap();
    assert!(left.is_none_or(|d| d.metadata.deletion_timestamp.is_some()), "left in the other cluster");
}

/// A server that answers every request with an endless body and no line break (no API server):
/// what a tenant's kubeconfig may point at to make the operator read until it is killed.
struct Endless {
    port: u16,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Endless {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let counted = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut request = [0u8; 4096];
                    let _ = conn.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if conn.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("100000\r\n{}\r\n", "a".repeat(0x100000));
                    while conn.write_all(chunk.as_bytes()).await.is_ok() {
                        counted.fetch_add(0x100000, Ordering::Relaxed);
                    }
                });
            }
        });
        Self { port, sent, task }
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kubeconfig whose server never stops sending (and never sends a line break) is cut off at the
/// line limit, and the Environment says the cluster cannot be used, instead of the operator
/// reading until it runs out of memory.
#[tokio::test]
async fn a_server_that_never_stops_sending_is_cut_off() {
    let endless = Endless::start().await;
    let t = TestNs::new("clusters-endless").await;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n\
         clusters: [{{name: x, cluster: {{server: \"http://127.0.0.1:{}\"}}}}]\n\
         users: [{{name: x, user: {{token: \"t\"}}}}]\n\
         contexts: [{{name: x, context: {{cluster: x, user: x}}}}]\n",
        endless.port
    );
    put_kubeconfig(&t.api(), "endless", &kubeconfig).await;
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "far"},
        "spec": {"namespace": t.env_ns("far"), "tier": "dev",
                 "cluster": {"name": "far", "kubeConfigSecretRef": {"name": "endless"}}}}),
    )
    .await;
    let env = t.wait_for::<Environment>("far", env_ready_is("False", "ClusterUnreachable")).await;
    let message = find_condition(&env.status.unwrap().conditions, "Ready").unwrap().message.clone();
    assert!(message.contains("without a line break"), "{message}");
    assert!(endless.sent.load(Ordering::Relaxed) >= 32 << 20, "cut off before the limit?");
}
