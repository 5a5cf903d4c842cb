#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Charts, rendered by the real Helm v4 and served by real repositories on loopback: a CNCF
//! distribution registry (OCI) and an HTTP chart repository. The seed story with `payments` as a
//! chart, per-environment values in what is applied, a broken version rolled back, a re-pushed
//! version refused by digest, the registry down and back, and the errors a user acts on.

mod common;

use common::charts::{ChartRepo, PUBLISH_RETRY_WAIT, Registry, Stall, digest_of, make_chart, scratch};
use common::{TestNs, healthy_at};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};
use tuskfish::api::{AppVersion, Release, find_condition};

/// An AppVersion of `payments` at `version` from `repository` (no workload).
async fn chart_version(t: &TestNs, repository: &str, version: &str, extra: Value) -> AppVersion {
    let mut helm = json!({"repository": repository, "chart": "payments", "version": version,
        "plainHttp": repository.starts_with("oci://")});
    common::merge(&mut helm, extra);
    t.app_version("payments", version, json!({"workload": null, "helm": helm})).await
}

fn ready_reason(av: &AppVersion) -> Option<String> {
    av.status.as_ref().and_then(|s| find_condition(&s.conditions, "Ready")).map(|c| c.reason.clone())
}

/// Waits for an AppVersion to be published by the operator's retry, which is slower than
/// `common::WAIT` allows for.
async fn wait_published_after_retry(t: &TestNs, name: &str, after: &str) {
    let api: kube::Api<AppVersion> = t.api();
    let published = await_condition(api, name, |a: Option<&AppVersion>| {
        a.is_some_and(|a| ready_reason(a).as_deref() == Some("Published"))
    });
    tokio::time::timeout(PUBLISH_RETRY_WAIT, published)
        .await
        .unwrap_or_else(|_| panic!("{name} not published after {after}"))
        .unwrap();
}

/// The Release's Ready (or Degraded) reason, once it is `reason`.
async fn wait_release_reason(t: &TestNs, name: &str, reason: &'static str) -> Release {
    t.wait_for::<Release>(name, move |r| {
        r.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == reason))
    })
    .await
}

fn condition_message(r: &Release, reason: &str) -> String {
    r.status.as_ref().unwrap().conditions.iter().find(|c| c.reason == reason).unwrap().message.clone()
}

async fn settings(t: &TestNs, env: &str, release: &str) -> ConfigMap {
    let ns = t.env_ns(env);
    let name = format!("{release}-settings");
    t.wait_for_in::<ConfigMap>(&ns, &name, |_| true).await
}

#[tokio::test]
async fn the_seed_story_with_payments_as_a_chart() {
    let t = TestNs::new("helm-story").await;
    let dir = scratch("story");
    let mut registry = Registry::start("story").await;
    let repo = registry.repository();
    let good: Vec<_> =
        ["1.3.9", "1.3.10", "1.4.0-rc.1"].iter().map(|v| make_chart(&dir, "payments", v, |_| {})).collect();
    // 1.3.11 never becomes ready: its pods ask for a node that does not exist.
    let broken = make_chart(&dir, "payments", "1.3.11", |chart| {
        let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
        let values =
            values.replace("nodeSelector: {}", "nodeSelector:\n  tuskfish.dev/no-such-node: \"true\"");
        std::fs::write(chart.join("values.yaml"), values).unwrap();
    });
    for p in good.iter().chain([&broken]) {
        registry.push(p);
    }

    t.environment(
        "prod",
        json!({"tier": "prod", "helmValues": {"replicaCount": 3, "db": {"host": "db.prod.internal"}}}),
    )
    .await;
    t.environment(
        "dev-1-3",
        json!({"versionLine": "~1.3", "variables": {"DB_HOST": "db.dev13.internal"},
               "helmValues": {"db": {"host": "${DB_HOST}"}}}),
    )
    .await;
    t.environment("dev-1-4", json!({"versionLine": ">=1.4.0-0"})).await;
    for (v, p) in ["1.3.9", "1.3.10", "1.4.0-rc.1"].iter().zip(&good) {
        let av = chart_version(&t, &repo, v, json!({})).await;
        assert_eq!(ready_reason(&av).as_deref(), Some("Published"), "{v}: {:?}", av.status);
        // The digest recorded at publish is the packaged chart's.
        assert_eq!(av.status.unwrap().chart_digest, Some(digest_of(p)), "{v}");
    }
    t.release("payments-prod", "payments", "prod", "1.3.9", json!({})).await;
    t.release(
        "payments-dev-1-3",
        "payments",
        "dev-1-3",
        "",
        json!({"version": null, "track": "~1.3",
        "progressDeadlineSeconds": 8, "helmValues": {"replicaCount": 2}}),
    )
    .await;
    t.release("payments-dev-1-4", "payments", "dev-1-4", "", json!({"version": null, "track": ">=1.4.0-0"}))
        .await;
    t.wait_release("payments-prod", healthy_at("1.3.9")).await;
    t.wait_release("payments-dev-1-3", healthy_at("1.3.10")).await;
    t.wait_release("payments-dev-1-4", healthy_at("1.4.0-rc.1")).await;

    // Per-environment values, visible in what was applied: the Environment's over the chart's,
    // the Release's over the Environment's, ${VAR} from the Environment's variables.
    let replicas = |d: &Deployment| d.spec.as_ref().unwrap().replicas;
    let prod: Deployment = t.api_in(&t.env_ns("prod")).get("payments-prod").await.unwrap();
    assert_eq!(replicas(&prod), Some(3));
    let dev: Deployment = t.api_in(&t.env_ns("dev-1-3")).get("payments-dev-1-3").await.unwrap();
    assert_eq!(replicas(&dev), Some(2));
    let data = |c: ConfigMap| c.data.unwrap();
    assert_eq!(data(settings(&t, "prod", "payments-prod").await)["db-host"], "db.prod.internal");
    assert_eq!(data(settings(&t, "dev-1-3", "payments-dev-1-3").await)["db-host"], "db.dev13.internal");
    assert_eq!(data(settings(&t, "dev-1-4", "payments-dev-1-4").await)["db-host"], "localhost");
    // What the chart brings carries the Release's identity and is in its inventory.
    let labels = prod.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "tuskfish");
    assert_eq!(labels["tuskfish.dev/release"], "payments-prod");
    let rel: Release = t.api().get("payments-prod").await.unwrap();
    let inventory: Vec<String> = rel
        .status
        .unwrap()
        .inventory
        .unwrap()
        .objects
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    for o in [
        "Deployment payments-prod",
        "Service payments-prod",
        "ServiceAccount payments-prod",
        "ConfigMap payments-prod-settings",
    ] {
        assert!(inventory.contains(&o.to_string()), "{o} not in {inventory:?}");
    }
    // The scaffold's test hook is not run, and an Event says so.
    let pods: kube::Api<Pod> = t.api_in(&t.env_ns("prod"));
    assert!(pods.get_opt("payments-prod-test-connection").await.unwrap().is_none());
    let events: kube::Api<Event> = t.api();
    let hooks = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        hooks.iter().any(|e| e.reason.as_deref() == Some("ChartHooksSkipped")
            && e.note.as_deref().is_some_and(|n| n.contains("Pod payments-prod-test-connection (test)"))),
        "no ChartHooksSkipped Event"
    );

    // A broken chart version is rolled back.
    chart_version(&t, &repo, "1.3.11", json!({})).await;
    let rolled = t
        .wait_for::<Release>("payments-dev-1-3", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.history.iter().any(|h| h.rollback_of.as_deref() == Some("1.3.11"))
                    && s.current_version.as_deref() == Some("1.3.10")
            })
        })
        .await;
    assert!(rolled.status.unwrap().failed_versions.contains(&"1.3.11".to_string()));

    // A version re-pushed with other content after its publish is refused by digest. (dev-1-3
    // stops at 1.3.11 first: a render of the original there would keep it by digest.)
    let dev13: kube::Api<Release> = t.api();
    let mut r = dev13.get("payments-dev-1-3").await.unwrap();
    r.spec.track = Some("~1.3, <1.3.12".into());
    r.metadata.managed_fields = None;
    dev13.replace("payments-dev-1-3", &Default::default(), &r).await.unwrap();
    let original = make_chart(&dir.join("a"), "payments", "1.3.12", |_| {});
    registry.push(&original);
    let av = chart_version(&t, &repo, "1.3.12", json!({})).await;
    assert_eq!(av.status.unwrap().chart_digest, Some(digest_of(&original)));
    let tampered = make_chart(&dir.join("b"), "payments", "1.3.12", |chart| {
        std::fs::write(
            chart.join("templates/extra.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sneaked-in\n",
        )
        .unwrap();
    });
    assert_ne!(digest_of(&original), digest_of(&tampered));
    registry.push(&tampered);
    t.set_version("payments-prod", "1.3.12").await;
    let refused = wait_release_reason(&t, "payments-prod", "ChartDigestChanged").await;
    let message = condition_message(&refused, "ChartDigestChanged");
    assert!(message.contains(&digest_of(&original)) && message.contains(&digest_of(&tampered)), "{message}");
    let cms: kube::Api<ConfigMap> = t.api_in(&t.env_ns("prod"));
    assert!(cms.get_opt("sneaked-in").await.unwrap().is_none());
    let still: Deployment = t.api_in(&t.env_ns("prod")).get("payments-prod").await.unwrap();
    assert_eq!(still.metadata.labels.unwrap()["app.kubernetes.io/version"], "1.3.9");

    // The registry down: publishing waits (transient), and goes on by itself when it is back.
    let next = make_chart(&dir.join("c"), "payments", "1.3.13", |_| {});
    registry.push(&next);
    registry.stop();
    let av = chart_version(&t, &repo, "1.3.13", json!({})).await;
    assert_eq!(ready_reason(&av).as_deref(), Some("ChartRepositoryUnreachable"), "{:?}", av.status);
    registry.resume().await;
    wait_published_after_retry(&t, "payments-1.3.13", "the registry came back").await;
    t.set_version("payments-prod", "1.3.13").await;
    t.wait_release("payments-prod", healthy_at("1.3.13")).await;
}

#[tokio::test]
async fn an_http_repository_with_credentials_and_the_errors_a_user_acts_on() {
    let t = TestNs::new("helm-http").await;
    let dir = scratch("http");
    let repo = ChartRepo::start(&dir, Some(("ci", "s3cret"))).await;
    make_chart(&dir, "payments", "2.0.0", |_| {});
    // The chart's values.schema.json: replicaCount must be an integer.
    make_chart(&dir, "payments", "2.0.1", |chart| {
        std::fs::write(
            chart.join("values.schema.json"),
            r#"{"type": "object", "properties": {"replicaCount": {"type": "integer", "minimum": 0}}}"#,
        )
        .unwrap();
    });
    // A template that refuses to render without a value.
    make_chart(&dir, "payments", "2.0.2", |chart| {
        std::fs::write(
            chart.join("templates/needs.yaml"),
            "{{ required \"db.password is required\" .Values.db.password }}\n",
        )
        .unwrap();
    });
    // A chart with a CRD in crds/.
    make_chart(&dir, "payments", "2.0.3", |chart| {
        std::fs::create_dir_all(chart.join("crds")).unwrap();
        std::fs::write(
            chart.join("crds/widgets.yaml"),
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n",
        )
        .unwrap();
    });
    // A chart that renders more than the operator takes (4 MiB).
    make_chart(&dir, "payments", "2.0.4", |chart| {
        std::fs::write(
            chart.join("templates/huge.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n{{- range $i := until 70000 }}\n  k{{ $i }}: {{ repeat 64 \"x\" | quote }}\n{{- end }}\n",
        )
        .unwrap();
    });
    repo.index();

    let secret = |password: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "charts"},
               "stringData": {"username": "ci", "password": password}})
    };
    t.apply(secret("wrong")).await;
    let url = repo.url();
    let creds = json!({"secretRef": {"name": "charts"}});
    // Bad credentials: said, and retried; fixed Secret → published.
    let av = chart_version(&t, &url, "2.0.0", creds.clone()).await;
    assert_eq!(ready_reason(&av).as_deref(), Some("ChartCredentialsRejected"), "{:?}", av.status);
    t.apply(secret("s3cret")).await;
    wait_published_after_retry(&t, "payments-2.0.0", "the Secret was fixed").await;
    // A version the repository does not have.
    let av = chart_version(&t, &url, "2.9.9", creds.clone()).await;
    assert_eq!(ready_reason(&av).as_deref(), Some("ChartNotFound"), "{:?}", av.status);
    assert!(format!("{:?}", av.status).contains("2.9.9"));

    t.environment("dev", json!({})).await;
    t.release("payments-dev", "payments", "dev", "2.0.0", json!({})).await;
    t.wait_release("payments-dev", healthy_at("2.0.0")).await;

    for v in ["2.0.1", "2.0.2", "2.0.3", "2.0.4"] {
        let av = chart_version(&t, &url, v, creds.clone()).await;
        assert_eq!(ready_reason(&av).as_deref(), Some("Published"), "{v}");
    }
    // Values that do not fit the chart's schema: Helm's own words.
    t.api::<Release>()
        .patch(
            "payments-dev",
            &kube::api::PatchParams::apply("test").force(),
            &kube::api::Patch::Apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
                "spec": {"app": "payments", "environment": "dev", "version": "2.0.1", "helmValues": {"replicaCount": "two"}}})),
        )
        .await
        .unwrap();
    let r = wait_release_reason(&t, "payments-dev", "ChartValuesInvalid").await;
    let m = condition_message(&r, "ChartValuesInvalid");
    assert!(m.contains("replicaCount") && m.contains("want integer"), "{m}");
    // What runs is untouched.
    assert_eq!(r.status.as_ref().unwrap().current_version.as_deref(), Some("2.0.0"));

    for (version, reason, words) in [
        ("2.0.2", "ChartRenderFailed", "db.password is required"),
        ("2.0.3", "ChartHasCrds", "widgets.example.com"),
        ("2.0.4", "ChartOutputTooLarge", "more than 4194304 bytes"),
    ] {
        t.set_version("payments-dev", version).await;
        let r = wait_release_reason(&t, "payments-dev", reason).await;
        let m = condition_message(&r, reason);
        assert!(m.contains(words), "{version}: {m}");
        assert_eq!(r.status.as_ref().unwrap().current_version.as_deref(), Some("2.0.0"), "{version}");
    }
    let cms: kube::Api<ConfigMap> = t.api_in(&t.env_ns("dev"));
    assert!(cms.get_opt("huge").await.unwrap().is_none());
    let secrets: kube::Api<Secret> = t.api();
    assert!(secrets.get_opt("charts").await.unwrap().is_some());
}

/// Runs the `tuskfish` binary; its stdout, or a panic with everything it said.
fn tuskfish(args: &[&str], dir: Option<&std::path::Path>) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"));
    cmd.args(args).env("NO_COLOR", "1");
    for v in ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH"] {
        cmd.env_remove(v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tuskfish {args:?}: {said}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's CI step, as written: the version from Gitflow, `helm package` at it, `helm push`,
/// `tuskfish version --emit-appversion --chart`, apply; then a dry run and a deploy of it.
#[tokio::test]
async fn the_ci_step_publishes_a_chart_appversion_that_deploys() {
    let t = TestNs::new("helm-ci").await;
    let dir = scratch("ci");
    let registry = Registry::start("ci").await;
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    common::git(&repo, &["init", "-q", "-b", "main"]);
    common::git(&repo, &["commit", "-q", "--allow-empty", "-m", "initial"]);
    common::git(&repo, &["tag", "v3.0.0"]);
    let version = tuskfish(&["version"], Some(&repo)).trim().to_string();
    assert_eq!(version, "3.0.0");
    let package = make_chart(&dir, "payments", &version, |_| {});
    registry.push(&package);
    let reference = format!("{}/payments", registry.repository());
    let emitted = tuskfish(
        &[
            "version",
            "--emit-appversion",
            "--app",
            "payments",
            "--chart",
            &reference,
            "--plain-http",
            "-n",
            &t.ns,
        ],
        Some(&repo),
    );
    let manifest: Value = serde_saphyr::from_str(&emitted).unwrap();
    assert_eq!(manifest["spec"]["helm"]["repository"], json!(registry.repository()));
    assert_eq!(manifest["spec"]["helm"]["version"], json!("3.0.0"));
    assert!(manifest["spec"].get("workload").is_none(), "{emitted}");
    t.apply(manifest).await;
    let av =
        t.wait_for::<AppVersion>("payments-3.0.0", |a| ready_reason(a).as_deref() == Some("Published")).await;
    assert_eq!(av.status.unwrap().chart_digest, Some(digest_of(&package)));

    t.environment("qa", json!({"helmValues": {"db": {"host": "db.qa.internal"}}})).await;
    let kubeconfig = common::kubeconfig();
    // The dry run renders the chart on this machine as the operator would: nothing is applied.
    let preview = tuskfish(
        &[
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &t.ns,
            "deploy",
            "payments",
            "3.0.0",
            "--env",
            "qa",
            "--dry-run",
        ],
        None,
    );
    for expected in
        ["create ConfigMap/payments-qa-settings", "db.qa.internal", "create Deployment/payments-qa"]
    {
        assert!(preview.contains(expected), "{expected:?} not in {preview}");
    }
    assert!(t.api::<Release>().get_opt("payments-qa").await.unwrap().is_none());
    tuskfish(
        &["--kubeconfig", &kubeconfig, "-n", &t.ns, "deploy", "payments", "3.0.0", "--env", "qa", "--wait"],
        None,
    );
    t.wait_release("payments-qa", healthy_at("3.0.0")).await;
    assert_eq!(settings(&t, "qa", "payments-qa").await.data.unwrap()["db-host"], "db.qa.internal");
}

/// One pipeline's charts cannot hold Helm, or the reconcile workers, for the others: a tenant
/// with more chart versions than the operator has workers (16), whose repositories never answer
/// (each pull hangs until Helm's 60 s limit), runs at most its share of Helm at once (half the
/// permits) and parks no worker, so another tenant's chart publishes and rolls out before the
/// first of those pulls even gives up.
#[tokio::test]
async fn a_pipelines_stalled_charts_leave_helm_to_the_others() {
    let stall = Stall::start().await;
    let greedy = TestNs::new("helm-greedy").await;
    for i in 0..20 {
        let version = format!("1.0.{i}");
        greedy
            .apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion",
                "metadata": {"name": format!("slow-{version}")},
                "spec": {"app": "slow", "version": version,
                         "helm": {"repository": format!("{}r{i}", stall.url()), "chart": "slow", "version": version}}}))
            .await;
    }
    stall.wait_open(2).await;

    let t = TestNs::new("helm-fair").await;
    let dir = scratch("fair");
    let registry = Registry::start("fair").await;
    registry.push(&make_chart(&dir, "payments", "1.0.0", |_| {}));
    t.environment("dev", json!({})).await;
    let av = chart_version(&t, &registry.repository(), "1.0.0", json!({})).await;
    assert_eq!(ready_reason(&av).as_deref(), Some("Published"), "{:?}", av.status);
    t.release("payments-dev", "payments", "dev", "1.0.0", json!({})).await;
    t.wait_release("payments-dev", healthy_at("1.0.0")).await;
    // All the while the greedy pipeline's first two pulls hung: none gave up (a third would then
    // have started), and never more than its share of them ran at once.
    assert_eq!(stall.accepted(), 2, "the other pipeline was served only after stalled pulls gave up");
    assert!(stall.most() <= 2, "{} pulls of one pipeline ran at once; its share is 2 of 4", stall.most());
}

/// A chart sees the cluster it is rendered for (Helm's `.Capabilities`): the API server's own
/// version, and an API group once its CRD is installed, from the next rollout on (a rollout is
/// rendered once, as `helm upgrade` would).
#[tokio::test]
async fn a_chart_sees_the_clusters_version_and_apis() {
    let t = TestNs::new("helm-caps").await;
    let dir = scratch("caps");
    let registry = Registry::start("caps").await;
    let group = format!("{}.tuskfish.test", t.ns);
    for version in ["1.0.0", "1.1.0"] {
        let gate = group.clone();
        registry.push(&make_chart(&dir, "payments", version, move |chart| {
            std::fs::write(
                chart.join("templates/cluster.yaml"),
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ include \"payments.fullname\" . }}}}-cluster\n\
                     data:\n  kube-version: {{{{ .Capabilities.KubeVersion.Version | quote }}}}\n\
                     {{{{- if .Capabilities.APIVersions.Has \"{gate}/v1/Widget\" }}}}\n\
                     ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ include \"payments.fullname\" . }}}}-widgets\n\
                     data:\n  served: {{{{ .Capabilities.APIVersions.Has \"{gate}/v1\" | quote }}}}\n\
                     {{{{- end }}}}\n"
                ),
            )
            .unwrap();
        }));
    }
    t.environment("dev", json!({})).await;
    chart_version(&t, &registry.repository(), "1.0.0", json!({})).await;
    t.release("payments-dev", "payments", "dev", "1.0.0", json!({})).await;
    t.wait_release("payments-dev", healthy_at("1.0.0")).await;
    let ns = t.env_ns("dev");
    let cluster = t.wait_for_in::<ConfigMap>(&ns, "payments-dev-cluster", |_| true).await;
    let served = t.client.apiserver_version().await.unwrap().git_version;
    assert_eq!(cluster.data.unwrap()["kube-version"], served, "Helm's default version, not the cluster's");
    let configmaps: kube::Api<ConfigMap> = t.api_in(&ns);
    assert!(configmaps.get_opt("payments-dev-widgets").await.unwrap().is_none(), "no such API yet");

    // The CRD is installed; the next rollout's chart sees its API.
    let crds: kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = kube::Api::all(t.client.clone());
    let crd = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .unwrap();
    crds.create(&Default::default(), &crd).await.unwrap();
    let crd_name = format!("widgets.{group}");
    let established =
        await_condition(crds.clone(), &crd_name, kube::runtime::conditions::is_crd_established());
    tokio::time::timeout(common::WAIT, established).await.unwrap().unwrap();
    // Discovery lists it a moment after it is established (the chart would not see it before).
    let listed = async {
        while !t.client.list_api_groups().await.unwrap().groups.iter().any(|g| g.name == group) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(common::WAIT, listed).await.unwrap();
    chart_version(&t, &registry.repository(), "1.1.0", json!({})).await;
    t.set_version("payments-dev", "1.1.0").await;
    t.wait_release("payments-dev", healthy_at("1.1.0")).await;
    let widgets = configmaps.get("payments-dev-widgets").await.unwrap();
    crds.delete(&crd_name, &Default::default()).await.unwrap();
    assert_eq!(widgets.data.unwrap()["served"], "true");
}

/// A rollout is applied all or nothing: with the Environment's ServiceAccount not allowed Secrets,
/// a chart with a Secret applies none of its objects (not even the ServiceAccount and ConfigMap
/// that come before the Secret), and the refusal names the object and the verb. Once granted, the
/// same rollout goes through by itself.
#[tokio::test]
async fn a_chart_with_a_forbidden_secret_applies_nothing() {
    let t = TestNs::new("helm-all-or-nothing").await;
    let dir = scratch("all-or-nothing");
    let registry = Registry::start("all-or-nothing").await;
    registry.push(&make_chart(&dir, "payments", "1.0.0", |chart| {
        std::fs::write(
            chart.join("templates/db-secret.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"payments.fullname\" . }}-db\n\
             stringData:\n  password: s3cret\n",
        )
        .unwrap();
    }));
    // The next version reads its settings through a Role of its own, bound to its ServiceAccount:
    // the RoleBinding's dry run cannot pass before its Role exists, which the apply makes first.
    registry.push(&make_chart(&dir, "payments", "1.1.0", |chart| {
        std::fs::write(
            chart.join("templates/reader.yaml"),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: settings-reader\n\
             roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: settings-reader}\n\
             subjects: [{kind: ServiceAccount, name: {{ include \"payments.fullname\" . }}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: settings-reader\n\
             rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}]\n",
        )
        .unwrap();
    }));
    t.environment("dev", json!({"serviceAccountName": "deployer"})).await;
    let ns = t.env_ns("dev");
    let allowed = [("apps", "deployments"), ("", "services"), ("", "configmaps"), ("", "serviceaccounts")];
    t.deployer(&ns, &allowed).await;
    chart_version(&t, &registry.repository(), "1.0.0", json!({})).await;
    t.release("payments-dev", "payments", "dev", "1.0.0", json!({})).await;
    let refused = wait_release_reason(&t, "payments-dev", "Forbidden").await;
    let message = condition_message(&refused, "Forbidden");
    assert!(message.starts_with("nothing was applied: 1 of 5 objects would be refused"), "{message}");
    for words in ["Secret", "payments-dev-db", "get refused", "cannot get resource \"secrets\""] {
        assert!(message.contains(words), "{words:?} not in {message}");
    }
    // What comes before the Secret in install order (its ServiceAccount, its settings) was not applied.
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> = t.api_in(&ns);
    assert!(
        accounts.get_opt("payments-dev").await.unwrap().is_none(),
        "the chart's ServiceAccount was applied"
    );
    let configmaps: kube::Api<ConfigMap> = t.api_in(&ns);
    assert!(
        configmaps.get_opt("payments-dev-settings").await.unwrap().is_none(),
        "its ConfigMap was applied"
    );
    let deployments: kube::Api<Deployment> = t.api_in(&ns);
    assert!(deployments.get_opt("payments-dev").await.unwrap().is_none());

    // Granted what the message names, the same rollout goes through, with nothing else changed.
    let secrets = [("", "secrets")];
    t.deployer(&ns, &[&allowed[..], &secrets[..]].concat()).await;
    t.wait_release("payments-dev", healthy_at("1.0.0")).await;

    let rbac = [("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings")];
    t.deployer(&ns, &[&allowed[..], &secrets[..], &rbac[..]].concat()).await;
    chart_version(&t, &registry.repository(), "1.1.0", json!({})).await;
    t.set_version("payments-dev", "1.1.0").await;
    t.wait_release("payments-dev", healthy_at("1.1.0")).await;
    let bindings: kube::Api<k8s_openapi::api::rbac::v1::RoleBinding> = t.api_in(&ns);
    assert!(bindings.get_opt("settings-reader").await.unwrap().is_some());
}
