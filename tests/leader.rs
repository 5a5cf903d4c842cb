#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Two operator replicas as real processes against the local control plane: only the holder of the
//! Lease writes; killing it hands over to the other; SIGTERM releases the Lease. Also checks the
//! metrics and health endpoints each replica serves.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Proc, TestNs, free_port, healthy_at, http_get as get, metric_of as metric, tuskfish_process};
use serde_json::json;

fn replica(t: &TestNs, identity: &str, port: u16, extra: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    let args = [
        &["run", "--metrics-addr", &addr, "--lease-namespace", &t.ns, "--identity", identity],
        &common::SHORT_LEASE[..],
        extra,
    ]
    .concat();
    tuskfish_process(&args, &format!("tuskfish-{}-{identity}.log", t.ns))
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let t = TestNs::without_operator("leader").await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = replica(&t, "replica-a", port_a, &[]);
    t.wait_lease_holder(Some("replica-a")).await;
    // The standby also serves the web view, from the caches it keeps warm.
    let web_port = free_port();
    let web_addr = format!("127.0.0.1:{web_port}");
    let b = replica(&t, "replica-b", port_b, &["--web-addr", &web_addr]);
    common::wait_listening(port_b, "the standby's metrics endpoint to answer").await;

    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    // The standby is live and ready (caches warm), but not leading and has written nothing.
    assert_eq!(get(port_b, "/healthz").await.0, 200);
    let ready = common::within("the standby to be ready", async {
        loop {
            let (code, _) = get(port_b, "/readyz").await;
            if code == 200 {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(ready, 200);
    let standby = get(port_b, "/metrics").await.1;
    assert_eq!(metric(&standby, "tuskfish_leader"), 0.0);
    assert_eq!(metric(&standby, "tuskfish_api_requests_total{kind=\"write\"}"), 0.0, "{standby}");
    // Its web view follows the Release from its own watch, a moment after the API server has it.
    let healthy_cell = r#"data-release="pay-dev" data-app="pay" data-env="dev" data-version="1.0.0""#;
    common::within("the standby's web view to show pay-dev at 1.0.0", async {
        loop {
            let page = get(web_port, &format!("/ns/{}", t.ns)).await;
            assert_eq!(page.0, 200, "{}", page.1);
            if page.1.contains(healthy_cell) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    // The leader counts the rollout once its status write has returned, which may be a moment after
    // the API server's watchers (ours, the standby's) saw the write.
    let succeeded = "tuskfish_rollouts_total{environment=\"dev\",result=\"succeeded\"}";
    let leader = common::within("the leader to count the rollout", async {
        loop {
            let text = get(port_a, "/metrics").await.1;
            if text.lines().any(|l| l.starts_with(succeeded)) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(metric(&leader, "tuskfish_leader"), 1.0);
    assert!(metric(&leader, "tuskfish_api_requests_total{kind=\"write\"}") > 0.0);
    assert!(
        metric(&leader, "tuskfish_reconciles_total{controller=\"release\",result=\"ok\"}") > 0.0,
        "{leader}"
    );
    assert!(metric(&leader, succeeded) == 1.0, "{leader}");
    assert!(metric(&leader, "tuskfish_appversion_to_rollout_seconds_count") >= 1.0, "{leader}");

    // The leader dies without a word: the standby takes the Lease once it has expired, and works.
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let lease = t.wait_lease_holder(Some("replica-b")).await;
    assert!(lease.spec.unwrap().lease_transitions.unwrap_or(0) >= 1);
    t.app_version("pay", "1.1.0", json!({})).await;
    t.set_version("pay-dev", "1.1.0").await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    let now_leader = get(port_b, "/metrics").await.1;
    assert_eq!(metric(&now_leader, "tuskfish_leader"), 1.0);
    // Its cache hears of the rollout from its own watch, maybe a moment after the test did.
    let release_page = format!("/ns/{}/releases/pay-dev", t.ns);
    common::within("the web view shows the new rollout", async {
        while !get(web_port, &release_page).await.1.contains("<td>1.1.0</td><td>Succeeded</td>") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(metric(&now_leader, "tuskfish_api_requests_total{kind=\"write\"}") > 0.0);

    // SIGTERM: the replica finishes, gives the Lease up at once and exits 0.
    let mut b = b;
    let pid = b.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    t.wait_lease_holder(None).await;
    let code = common::within("the replica to exit", async {
        loop {
            if let Some(status) = b.0.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(code.success(), "{code:?}");
}
