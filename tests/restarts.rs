#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! What an operator restart must not change. A notice survives the operator: killed between the
//! Event and its delivery, the next operator delivers it once; a notice delivered before a restart
//! is not sent again. A chart's generated password survives restarts: what a rollout rendered is
//! applied again as it is, by a restarted operator or a new leader. The operator runs as processes of its own (this binary starts none
//! in-process), scoped to the test's namespace.

mod common;

use common::charts::{Registry, make_chart, scratch};
use common::receiver::Receiver;
use common::{Proc, TestNs, healthy_at, tuskfish_process};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use serde_json::json;
use tuskfish::api::{DeliveryResult, Notification, Release};

fn operator(t: &TestNs, round: u32) -> Proc {
    tuskfish_process(
        &["run", "--leader-elect=false", "--metrics-addr", "off", "--watch-namespace", &t.ns],
        &format!("tuskfish-{}-operator-{round}.log", t.ns),
    )
}

#[tokio::test]
async fn a_notice_is_delivered_once_across_an_operator_kill() {
    let t = TestNs::without_operator("notify-kill").await;
    let server = Receiver::start().await;
    server.answer("hook", &[(503, "down for maintenance")]);
    t.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook"},
        "stringData": {"url": format!("http://{}/hook", server.host())}}))
        .await;
    t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Notification", "metadata": {"name": "hook"},
        "spec": {"events": ["RolloutSucceeded"], "target": {"format": "Webhook", "secretRef": {"name": "hook"}}}}))
        .await;
    let first = operator(&t, 1);
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // The receiver is down; the operator is killed while it retries.
    server.wait_for("hook", 1).await;
    drop(first);
    server.answer("hook", &[(200, "ok")]);
    let second = operator(&t, 2);
    t.wait_for::<Notification>("hook", common::receiver::delivered(1)).await;
    let accepted: Vec<_> = server.received("hook").into_iter().filter(|r| r.status == 200).collect();
    assert_eq!(accepted.len(), 1, "delivered once");
    assert!(accepted[0].json()["message"].as_str().unwrap().contains("1.0.0"));

    // Restarted again: the delivered notice stays delivered; the next one is the only new one.
    drop(second);
    let _third = operator(&t, 3);
    t.set_version("pay-dev", "1.1.0").await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    let n = t.wait_for::<Notification>("hook", common::receiver::delivered(2)).await;
    let accepted: Vec<_> = server.received("hook").into_iter().filter(|r| r.status == 200).collect();
    assert_eq!(accepted.len(), 2, "{:?}", accepted.iter().map(|r| &r.body).collect::<Vec<_>>());
    assert!(accepted[1].json()["message"].as_str().unwrap().contains("1.1.0"));
    assert_eq!(n.status.unwrap().last_delivery.unwrap().result, DeliveryResult::Delivered);
}

/// A chart that generates a password and a CA at render time (`randAlphaNum`, `genCA`) keeps them
/// across three operator restarts and a leader change: what the rollout rendered is kept (in the
/// operator's own namespace) and applied again as it is, not rendered anew with new secrets and a
/// rollout that never was.
#[tokio::test]
async fn generated_secrets_survive_restarts_and_a_leader_change() {
    let t = TestNs::without_operator("kept").await;
    let dir = scratch("kept-render");
    let registry = Registry::start("kept-render").await;
    let package = make_chart(&dir, "payments", "1.0.0", |chart| {
        std::fs::write(
            chart.join("templates/db-secret.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"payments.fullname\" . }}-db\n\
             stringData:\n  password: {{ randAlphaNum 24 | quote }}\n\
             data:\n  ca.crt: {{ (genCA \"payments-ca\" 365).Cert | b64enc }}\n",
        )
        .unwrap();
    });
    registry.push(&package);
    // Any namespace of the operator's own will do; the test's own is at hand.
    let operator = |round: u32| {
        tuskfish_process(
            &[
                "run",
                "--leader-elect=false",
                "--metrics-addr",
                "off",
                "--watch-namespace",
                &t.ns,
                "--render-store-namespace",
                &t.ns,
            ],
            &format!("tuskfish-{}-operator-{round}.log", t.ns),
        )
    };
    let mut running = operator(0);
    t.environment("dev", json!({})).await;
    let helm = json!({"repository": registry.repository(), "chart": "payments", "version": "1.0.0", "plainHttp": true});
    t.app_version("payments", "1.0.0", json!({"workload": null, "helm": helm})).await;
    t.release("payments-dev", "payments", "dev", "1.0.0", json!({})).await;
    t.wait_release("payments-dev", healthy_at("1.0.0")).await;
    let env_ns = t.env_ns("dev");
    // What the chart generated: a password and a CA certificate.
    let password = |s: &Secret| {
        let data = s.data.as_ref();
        (
            data.and_then(|d| d.get("password")).map(|p| p.0.clone()),
            data.and_then(|d| d.get("ca.crt")).map(|c| c.0.clone()),
        )
    };
    let first = password(&t.wait_for_in::<Secret>(&env_ns, "payments-dev-db", |_| true).await);
    assert!(first.0.is_some() && first.1.is_some(), "{first:?}");
    let deployments: kube::Api<Deployment> = t.api_in(&env_ns);
    // Two replicas that elect a leader, for the last round.
    let replica = |identity: &str| {
        let args = [
            &["run", "--metrics-addr", "off", "--watch-namespace", &t.ns, "--render-store-namespace", &t.ns]
                [..],
            &["--lease-namespace", &t.ns, "--identity", identity],
            &common::SHORT_LEASE[..],
        ]
        .concat();
        tuskfish_process(&args, &format!("tuskfish-{}-{identity}.log", t.ns))
    };

    for round in 1..=4 {
        drop(running);
        running = if round < 4 {
            operator(round)
        } else {
            // A leader change: the leader is killed and the standby takes over.
            let leader = replica("replica-a");
            t.wait_lease_holder(Some("replica-a")).await;
            let standby = replica("replica-b");
            drop(leader);
            t.wait_lease_holder(Some("replica-b")).await;
            standby
        };
        // Deleted while the new operator starts: it must look, render and apply again (a drift
        // repair), which is what would roll the password over if it rendered anew.
        let before = deployments.get("payments-dev").await.unwrap().metadata.uid;
        deployments.delete("payments-dev", &Default::default()).await.unwrap();
        t.wait_for_in::<Deployment>(&env_ns, "payments-dev", move |d| d.metadata.uid != before).await;
        let secret = t.wait_for_in::<Secret>(&env_ns, "payments-dev-db", |_| true).await;
        assert_eq!(password(&secret), first, "round {round}: the password or the CA was generated anew");
        let r = t.wait_release("payments-dev", healthy_at("1.0.0")).await;
        let history = &r.status.as_ref().unwrap().history;
        assert_eq!(history.len(), 1, "round {round}: a restart recorded a rollout: {history:?}");
    }

    // The output is kept by the operator; a Release deleted behind its back (the finalizer removed
    // while no operator ran) leaves it to the sweep of the next operator.
    let kept: kube::Api<Secret> = t.api();
    let by_release = ListParams::default().labels("tuskfish.dev/release=payments-dev");
    assert_eq!(kept.list(&by_release).await.unwrap().items.len(), 1);
    drop(running);
    let releases = t.api::<Release>();
    let no_finalizer = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
    releases.patch("payments-dev", &Default::default(), &no_finalizer).await.unwrap();
    releases.delete("payments-dev", &Default::default()).await.unwrap();
    t.wait_gone::<Release>(&t.ns, "payments-dev").await;
    assert_eq!(kept.list(&by_release).await.unwrap().items.len(), 1, "nobody removed it yet");
    let _sweeping = operator(4);
    let swept = async {
        while !kept.list(&by_release).await.unwrap().items.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(common::WAIT, swept).await.expect("the kept output outlived its Release");
}
