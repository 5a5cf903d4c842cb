#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! A notice survives the operator: killed between the Event and its delivery, the next operator
//! delivers it once; a notice delivered before a restart is not sent again. The operator runs as
//! processes of its own (this binary starts none in-process), scoped to the test's namespace.

mod common;

use common::receiver::Receiver;
use common::{Proc, TestNs, healthy_at, tuskfish_process};
use serde_json::json;
use tuskfish::api::{DeliveryResult, Notification};

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
