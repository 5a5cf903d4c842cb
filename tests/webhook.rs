#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The validating admission webhook, called by the real API server over loopback TLS: invalid
//! objects are refused at apply time with the reason; valid ones pass.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, TestNs, apply_value};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A throwaway CA and a serving certificate for 127.0.0.1; returns the CA as base64 (caBundle).
fn certificates(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=tuskfish-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.crt",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    );
    openssl(dir, &["base64", "-A", "-in", "ca.crt"])
}

fn release(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": name}, "spec": spec})
}

async fn refused(t: &TestNs, obj: Value, needle: &str) {
    match apply_value(&t.client, Some(&t.ns), obj.clone()).await {
        Ok(_) => panic!("admitted, but should be refused ({needle}): {obj}"),
        Err(kube::Error::Api(s)) => {
            assert!(
                s.message.contains("denied the request") && s.message.contains(needle),
                "{needle:?} not in {:?}",
                s.message
            );
        }
        Err(e) => panic!("{e}"),
    }
}

async fn admitted(t: &TestNs, obj: Value) {
    if let Err(e) = apply_value(&t.client, Some(&t.ns), obj.clone()).await {
        panic!("refused, but valid: {obj}: {e}");
    }
}

#[tokio::test]
async fn webhook_refuses_what_the_crd_rules_cannot_check() {
    let t = TestNs::without_operator("webhook").await;
    let kubeconfig = common::kubeconfig();
    let dir = std::env::temp_dir().join(format!("{}-certs", t.ns));
    let ca_bundle = certificates(&dir);
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{}-operator.log", t.ns))).unwrap();
    let _operator = Proc(
        Command::new(env!("CARGO_BIN_EXE_tuskfish"))
            .args(["--kubeconfig", &kubeconfig, "run", "--leader-elect=false", "--metrics-addr", "off"])
            .args(["--webhook-addr", &addr, "--webhook-cert-dir", dir.to_str().unwrap(), "--webhook-strict"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    common::wait_listening(port, "the webhook to listen").await;

    // Only this test's namespace is sent to the webhook (the value is the namespace, so that a
    // configuration left by an earlier, interrupted run on the same cluster never matches it).
    let label = "tuskfish.dev/webhook-test";
    Api::<Namespace>::all(t.client.clone())
        .patch(&t.ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {label: t.ns}}})))
        .await
        .unwrap();
    let config_name = format!("tuskfish-{}", t.ns);
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": config_name},
        "webhooks": [{
            "name": "validate.tuskfish.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "clientConfig": {"url": format!("https://{addr}/validate"), "caBundle": ca_bundle},
            "rules": [{"apiGroups": ["tuskfish.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["environments", "releases"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {label: t.ns}}
        }]
    }))
    .unwrap();
    let configs = Api::<ValidatingWebhookConfiguration>::all(t.client.clone());
    configs.create(&PostParams::default(), &config).await.unwrap();

    // The API server picks the configuration up within a moment. A range of the right shape
    // that the semver parser still refuses (an empty pre-release identifier) passes the CRD's
    // rule and is the webhook's to refuse.
    let bad_line = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "dev"},
        "spec": {"namespace": t.env_ns("dev"), "tier": "dev", "versionLine": ">=1.4.0-rc..1"}});
    common::within("the webhook to be called", async {
        while apply_value(&t.client, Some(&t.ns), bad_line.clone()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    refused(&t, bad_line, "spec.versionLine \">=1.4.0-rc..1\" is not a semver range").await;
    refused(
        &t,
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "dev"},
            "spec": {"namespace": t.env_ns("dev"), "tier": "dev", "freezeWindows": [{"weekly":
                {"days": ["Fri"], "from": "16:00", "to": "18:00", "timeZone": "Europe/Atlantis"}}]}}),
        "spec.freezeWindows[0]: window time zone \"Europe/Atlantis\"",
    )
    .await;
    admitted(
        &t,
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "dev"},
            "spec": {"namespace": t.env_ns("dev"), "tier": "dev", "versionLine": "~1.0"}}),
    )
    .await;

    refused(
        &t,
        release("r3", json!({"app": "pay", "environment": "dev", "track": "~1.0.0-beta..2"})),
        "not a semver range",
    )
    .await;
    refused(
        &t,
        release("r4", json!({"app": "pay", "environment": "staging", "version": "1.0.0"})),
        "unknown environment \"staging\"",
    )
    .await;
    admitted(&t, release("pay-dev", json!({"app": "pay", "environment": "dev", "version": "1.0.0"}))).await;
    // A second Release of pay in dev is refused once the operator's index has seen the first.
    let twin = release("pay-dev-2", json!({"app": "pay", "environment": "dev", "version": "1.0.0"}));
    common::within("the index to see pay-dev", async {
        while apply_value(&t.client, Some(&t.ns), twin.clone()).await.is_ok() {
            // Admitted before the index had it: undo, and try again.
            let _ = t.api::<tuskfish::api::Release>().delete("pay-dev-2", &DeleteParams::default()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    refused(&t, twin, "Release pay-dev already deploys pay to Environment \"dev\"").await;
    // The first one itself may still change; another app in dev is no duplicate.
    admitted(&t, release("pay-dev", json!({"app": "pay", "environment": "dev", "version": "1.0.1"}))).await;
    admitted(&t, release("ledger-dev", json!({"app": "ledger", "environment": "dev", "version": "1.0.0"})))
        .await;

    // What the CRD's rules check is refused before the webhook is asked.
    match apply_value(
        &t.client,
        Some(&t.ns),
        release(
            "r1",
            json!({"app": "pay", "environment": "dev",
        "version": "1.0.0", "track": "~1.0"}),
        ),
    )
    .await
    {
        Err(kube::Error::Api(e)) => assert!(
            e.message.contains("set exactly one of") && !e.message.contains("denied the request"),
            "{e:?}"
        ),
        other => panic!("admitted: {other:?}"),
    }

    configs.delete(&config_name, &DeleteParams::default()).await.unwrap();
}
