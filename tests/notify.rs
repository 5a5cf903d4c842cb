#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Notifications against a real API server: one receiver per format on loopback asserting the
//! payloads, filters by notice and Environment, a receiver that is down and comes back.

mod common;

use common::receiver::Receiver;
use common::{TestNs, healthy_at};
use serde_json::{Value, json};
use tuskfish::api::{DeliveryResult, Notification, RolloutResult};

const FORMATS: [&str; 6] = ["Webhook", "Slack", "Teams", "DingTalk", "WeCom", "Feishu"];

/// A Secret with the receiver's URL for `path`, and a Notification sending there.
async fn notification(t: &TestNs, server: &Receiver, name: &str, format: &str, path: &str, spec: Value) {
    t.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-url")},
        "stringData": {"url": format!("http://{}/{path}", server.host())}}))
        .await;
    let mut s = json!({"target": {"format": format, "secretRef": {"name": format!("{name}-url")}}});
    common::merge(&mut s, spec);
    t.apply(
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Notification", "metadata": {"name": name},
        "spec": s}),
    )
    .await;
}

#[tokio::test]
async fn every_format_gets_its_message_and_filters_hold() {
    let t = TestNs::new("notify").await;
    let server = Receiver::start().await;
    // The plain webhook hears of everything in dev; the chats of successes.
    notification(&t, &server, "webhook", "Webhook", "webhook", json!({"environments": ["dev"]})).await;
    for f in &FORMATS[1..] {
        let name = f.to_lowercase();
        let spec = json!({"environments": ["dev"], "events": ["RolloutSucceeded"]});
        notification(&t, &server, &name, f, &name, spec).await;
    }
    notification(&t, &server, "failures", "Webhook", "failures", json!({"events": ["RolloutFailed"]})).await;
    notification(&t, &server, "prod-only", "Webhook", "prod-only", json!({"environments": ["prod"]})).await;
    t.environment("dev", json!({})).await;
    t.environment("prod", json!({"tier": "prod"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({"workload": {"image": "registry.example/pay:never-ready"}})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({"progressDeadlineSeconds": 3})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    let title = "Rollout succeeded: pay in dev";
    let started = server.wait_for("webhook", 2).await;
    assert_eq!(started[0].json()["kind"], "RolloutStarted", "a start, then its end");
    let webhook = started[1].json();
    let got: Vec<Value> =
        futures_join(FORMATS[1..].iter().map(|f| server.wait_for_owned(f.to_lowercase(), 1))).await;
    let [slack, teams, dingtalk, wecom, feishu] = <[Value; 5]>::try_from(got).unwrap();
    assert_eq!(webhook["kind"], "RolloutSucceeded");
    assert_eq!((webhook["app"].as_str(), webhook["environment"].as_str()), (Some("pay"), Some("dev")));
    assert!(
        webhook["message"].as_str().unwrap().contains("rolled out 1.0.0 to environment dev"),
        "{webhook}"
    );
    assert!(slack["text"].as_str().unwrap().starts_with(&format!("*{title}*")), "{slack}");
    let card = &teams["attachments"][0]["content"];
    assert_eq!(
        (card["type"].as_str(), card["body"][0]["text"].as_str()),
        (Some("AdaptiveCard"), Some(title))
    );
    assert_eq!(
        (dingtalk["msgtype"].as_str(), dingtalk["markdown"]["title"].as_str()),
        (Some("markdown"), Some(title))
    );
    assert!(wecom["markdown"]["content"].as_str().unwrap().contains(title), "{wecom}");
    assert_eq!(feishu["card"]["header"]["title"]["content"], title);
    let slack_req = &server.received("slack")[0];
    assert_eq!(slack_req.headers["content-type"], "application/json");

    // A rollout that fails: the failures-only Notification's first notice is this one.
    t.set_version("pay-dev", "1.1.0").await;
    let failed = server.wait_for("failures", 1).await;
    assert_eq!(failed.len(), 1, "the success before was not its business");
    let f = failed[0].json();
    assert_eq!(f["kind"], "RolloutFailed");
    assert_eq!(f["severity"], "warning");
    assert!(f["message"].as_str().unwrap().contains("1.1.0"), "{f}");
    let r = t.wait_release("pay-dev", |s| s.history[0].result == RolloutResult::Failed).await;
    assert_eq!(r.status.unwrap().history[0].version, "1.1.0");

    // prod-only hears of prod alone: its first notice is prod's.
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    let prod = server.wait_for("prod-only", 1).await;
    assert_eq!(prod[0].json()["environment"], "prod");

    // The status says what was delivered.
    let n = t.wait_for::<Notification>("slack", common::receiver::delivered(1)).await;
    let s = n.status.unwrap();
    let last = s.last_delivery.unwrap();
    assert_eq!((last.result, last.attempts), (DeliveryResult::Delivered, 1));
    assert!(tuskfish::api::is_true(&s.conditions, "Ready"));
}

/// Waits for each path's first request, in order.
async fn futures_join(
    waits: impl Iterator<Item = impl std::future::Future<Output = Vec<common::receiver::Received>>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for w in waits {
        out.push(w.await[0].json());
    }
    out
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_its_notice_when_it_is_back() {
    let t = TestNs::new("notify-down").await;
    let server = Receiver::start().await;
    // Down, then up but refusing (WeCom answers 200 with an error code), then accepting.
    server.answer(
        "wecom",
        &[
            (503, "maintenance"),
            (200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
            (200, r#"{"errcode":0,"errmsg":"ok"}"#),
        ],
    );
    notification(&t, &server, "chat", "WeCom", "wecom", json!({"events": ["RolloutSucceeded"]})).await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    let got = server.wait_for("wecom", 3).await;
    assert!(got.iter().all(|r| r.body == got[0].body), "the same notice each time");
    let n = t.wait_for::<Notification>("chat", common::receiver::delivered(1)).await;
    let last = n.status.unwrap().last_delivery.unwrap();
    assert_eq!((last.result, last.attempts), (DeliveryResult::Delivered, 3));
    assert_eq!(server.received("wecom").len(), 3, "delivered once, not again");
}

/// A webhook URL is a credential (a Slack path, DingTalk's `access_token`): a failing delivery
/// names the receiver's host and what went wrong, and never the URL's path or query, nor what the
/// receiver answered, in the Notification's status or in an Event.
#[tokio::test]
async fn a_failing_receivers_url_and_answer_are_never_echoed() {
    let t = TestNs::new("notify-secret").await;
    let server = Receiver::start().await;
    server.answer("services/T0/B0/SECRET-PATH-1", &[(500, "SECRET-BODY-1 from an internal service")]);
    let refused_port = common::free_port();
    let urls = [
        (
            "refusing",
            format!("http://{}/services/T0/B0/SECRET-PATH-1?access_token=SECRET-QUERY-1", server.host()),
        ),
        ("dead", format!("http://127.0.0.1:{refused_port}/robot/SECRET-PATH-2?key=SECRET-QUERY-2")),
    ];
    for (name, url) in &urls {
        t.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-url")},
            "stringData": {"url": url}}))
            .await;
        t.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Notification", "metadata": {"name": name},
            "spec": {"events": ["RolloutSucceeded"], "target": {"format": "Webhook", "secretRef": {"name": format!("{name}-url")}}}}))
            .await;
    }
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    let failing = |n: &Notification| {
        n.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "DeliveryFailing"))
    };
    let refusing = t.wait_for::<Notification>("refusing", failing).await;
    let dead = t.wait_for::<Notification>("dead", failing).await;
    let said = |n: &Notification| serde_json::to_string(&n.status).unwrap();
    let (refusing, dead) = (said(&refusing), said(&dead));
    assert!(refusing.contains("HTTP 500"), "{refusing}");
    assert!(dead.contains(&format!("http://127.0.0.1:{refused_port}/…")), "{dead}");
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = t.api();
    let notes: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.note).collect();
    for text in [refusing, dead].iter().chain(&notes) {
        assert!(!text.contains("SECRET"), "a credential or an answer was echoed: {text}");
    }
}
