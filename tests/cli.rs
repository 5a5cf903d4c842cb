#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The CLI as a user runs it: the real binaries against the local control plane (with the operator
//! and the node simulator running), and `version` against real Git repositories.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{TestNs, git, healthy_at, held, kubeconfig};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tuskfish::api::{AppVersion, Environment, Release};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn command(bin: &str, dir: Option<&Path>, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).env("NO_COLOR", "1").env_remove("TUSKFISH_KUBECONFIG");
    for v in ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH"] {
        cmd.env_remove(v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd
}

async fn run(mut cmd: std::process::Command) -> Run {
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// `tuskfish --kubeconfig … -n <test namespace> ARGS`.
async fn tf(t: &TestNs, args: &[&str]) -> Run {
    let kc = kubeconfig();
    let mut all = vec!["--kubeconfig", kc.as_str(), "-n", t.ns.as_str()];
    all.extend_from_slice(args);
    run(command(env!("CARGO_BIN_EXE_tuskfish"), None, &all)).await
}

async fn ok(t: &TestNs, args: &[&str]) -> Run {
    let r = tf(t, args).await;
    assert_eq!(r.code, 0, "tuskfish {args:?}: {r:?}");
    r
}

/// Asserts the exit code and that the error is one line naming `needle`.
async fn fails(t: &TestNs, args: &[&str], code: i32, needle: &str) -> Run {
    let r = tf(t, args).await;
    assert_eq!(r.code, code, "tuskfish {args:?}: {r:?}");
    let error =
        r.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(error.contains(needle), "{needle:?} not in {error:?}");
    r
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

#[tokio::test]
async fn status_and_diff_show_the_pipeline_as_the_cluster_has_it() {
    let t = TestNs::new("cli-status").await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({"changes": [{"id": "FIN-1"}]})).await;
    t.app_version("pay", "1.1.0", json!({"changes": [{"id": "FIN-1"}, {"id": "FIN-2"}]})).await;
    t.release("pay-dev", "pay", "dev", "", json!({"version": null, "track": ">=1.0.0"})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.approve("pay-prod", "1.0.0", "alice").await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    t.set_version("pay-prod", "1.1.0").await;
    t.wait_release("pay-prod", held("AwaitingApproval")).await;

    let m = json_of(&ok(&t, &["status", "-o", "json"]).await);
    let envs: Vec<&str> =
        m["environments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(envs, ["dev", "prod"], "pipeline order");
    assert_eq!(m["environments"][1]["approvalRequired"], json!(true));
    let pay = &m["apps"][0];
    assert_eq!(pay["app"], "pay");
    assert_eq!(pay["environments"]["dev"]["version"], "1.1.0");
    assert_eq!(pay["environments"]["dev"]["phase"], "Healthy");
    assert_eq!(pay["environments"]["prod"]["version"], "1.0.0");
    assert_eq!(pay["environments"]["prod"]["pending"]["what"], "awaitingApproval");
    assert_eq!(pay["environments"]["prod"]["pending"]["version"], "1.1.0");

    let table = ok(&t, &["status"]).await.stdout;
    assert!(!table.contains('\x1b'), "no colour when not on a terminal: {table}");
    assert!(table.lines().next().unwrap().split_whitespace().eq(["APP", "dev", "prod"]), "{table}");
    assert!(table.contains("1.0.0 Healthy, 1.1.0 awaiting approval"), "{table}");
    assert!(table.contains("prod: approval required"), "{table}");

    let yaml: Value = serde_saphyr::from_str(&ok(&t, &["status", "-o", "yaml"]).await.stdout).unwrap();
    assert_eq!(yaml["apps"][0]["environments"]["prod"]["release"], "pay-prod");

    // The kubectl plugin is the same CLI.
    let kc = kubeconfig();
    let plugin = run(command(
        env!("CARGO_BIN_EXE_kubectl-tuskfish"),
        None,
        &["--kubeconfig", &kc, "-n", &t.ns, "status"],
    ))
    .await;
    assert_eq!((plugin.code, plugin.stdout.as_str()), (0, table.as_str()));

    let d = json_of(&ok(&t, &["diff", "dev", "prod", "-o", "json"]).await);
    assert_eq!(d[0]["a"], "1.1.0");
    assert_eq!(d[0]["b"], "1.0.0");
    assert_eq!(d[0]["onlyInA"], json!(["FIN-2"]));
    assert_eq!(d[0]["onlyInB"], json!([]));
    let text = ok(&t, &["diff", "dev", "prod"]).await.stdout;
    assert!(text.contains("ONLY IN dev") && text.contains("FIN-2"), "{text}");
    assert_eq!(tf(&t, &["diff", "dev", "prod", "--exit-code"]).await.code, 1);
    assert_eq!(tf(&t, &["diff", "dev", "dev", "--exit-code"]).await.code, 0);
    fails(&t, &["diff", "dev", "staging"], 3, "unknown environment \"staging\"").await;
}

#[tokio::test]
async fn status_watch_redraws_when_a_release_changes() {
    let t = TestNs::new("cli-watch").await;
    t.environment("dev", json!({})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    let kc = kubeconfig();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"))
        .args(["--kubeconfig", &kc, "-n", &t.ns, "status", "--watch"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "1.0.0 Healthy").await;
    t.set_version("pay-dev", "1.1.0").await;
    read_until(&mut lines, "1.1.0 Healthy").await;
    child.kill().await.unwrap();
}

async fn read_until(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>, needle: &str) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(common::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(needle) {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "status --watch never showed {needle:?}; it printed: {seen:#?}");
}

#[tokio::test]
async fn deploy_approve_rollback_each_take_one_command() {
    let t = TestNs::new("cli-deploy").await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.app_version("pay", "1.2.0", json!({"workload": {"image": "registry.example/pay:never-ready"}})).await;

    // First deploy creates the Release; it waits for approval, so --wait runs out of time.
    let r = tf(&t, &["deploy", "pay", "1.0.0", "--env", "prod", "--wait", "--timeout", "3s"]).await;
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stdout.contains("tuskfish approve pay 1.0.0 --env prod"), "{r:?}");
    assert!(r.stderr.contains("AwaitingApproval"), "{r:?}");
    assert!(t.api::<Release>().get_opt("pay-prod").await.unwrap().is_some());

    let r = ok(&t, &["approve", "pay", "1.0.0", "--env", "prod", "--reason", "CAB-1", "--wait"]).await;
    assert!(r.stdout.contains("approved pay 1.0.0 for prod"), "{r:?}");
    let rel = t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    let note = rel.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert!(note.starts_with("approved by admin at ") && note.ends_with(": CAB-1"), "{note}");
    // The Approval names what it approves, so it counts for nothing else.
    let given = t.api::<tuskfish::api::Approval>().list(&Default::default()).await.unwrap().items;
    let targets: Vec<_> =
        given.iter().map(|a| (a.spec.app.as_deref(), a.spec.environment.as_deref())).collect();
    assert_eq!(targets, vec![(Some("pay"), Some("prod"))]);
    let again = ok(&t, &["approve", "pay", "1.0.0", "--env", "prod"]).await;
    assert!(again.stdout.contains("already approved"), "{again:?}");

    // Nobody approves in another's name: the CLI says so, and so does the API server (below, in
    // tests/identity.rs); bob approves as himself (impersonated, as `kubectl --as` would).
    let r = tf(&t, &["approve", "pay", "1.1.0", "--env", "prod", "--approver", "bob"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--approver \"bob\" is not you") && r.stderr.contains("\"admin\""), "{r:?}");
    let group = common::APPROVERS_GROUP;
    ok(&t, &["--as", "bob", "--as-group", group, "approve", "pay", "1.1.0", "--env", "prod"]).await;
    let r = ok(&t, &["deploy", "pay", "1.1.0", "--env", "prod", "--wait", "-o", "json"]).await;
    assert_eq!(json_of(&r)["status"]["currentVersion"], "1.1.0", "-o json prints the Release after --wait");

    let h = json_of(&ok(&t, &["history", "pay", "--env", "prod", "-o", "json"]).await);
    let versions: Vec<&str> = h.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    assert!(h[0]["message"].as_str().unwrap().starts_with("approved by bob"));

    // Rollback: to the version before, with no gate in the way, until cleared.
    fails(&t, &["rollback", "pay", "--env", "prod", "--to", "0.9.0"], 3, "never ran healthy in prod").await;
    ok(&t, &["rollback", "pay", "--env", "prod", "--wait"]).await;
    let rel = t.api::<Release>().get("pay-prod").await.unwrap();
    assert_eq!(rel.spec.rollback.and_then(|r| r.to).as_deref(), Some("1.0.0"));
    assert_eq!(rel.status.unwrap().current_version.as_deref(), Some("1.0.0"));
    ok(&t, &["rollback", "pay", "--env", "prod", "--clear", "--wait"]).await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;

    // A version that never becomes ready: --wait reports Degraded with exit 1.
    t.api::<Release>()
        .patch(
            "pay-prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"progressDeadlineSeconds": 4}})),
        )
        .await
        .unwrap();
    ok(&t, &["approve", "pay", "1.2.0", "--env", "prod"]).await;
    let r = fails(&t, &["deploy", "pay", "1.2.0", "--env", "prod", "--wait"], 1, "Degraded in prod").await;
    assert!(r.stderr.contains("ProgressDeadlineExceeded"), "{r:?}");
    // And one command takes prod back to what was healthy, while the broken rollout is still shown.
    ok(&t, &["rollback", "pay", "--env", "prod", "--wait"]).await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;
}

/// Each rollout's record says who asked for it, as the API server verified them (a CLI user's
/// request claim made with the spec change it vouches for), and which tool wrote the version; a
/// change by anyone else since is nobody's request. Nobody can claim a request in someone else's
/// name, or for a change they did not make.
#[tokio::test]
async fn each_rollout_is_recorded_with_who_asked_for_it_as_the_api_server_verified() {
    let t = TestNs::new("asked").await;
    t.environment("dev", json!({"tier": "dev"})).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        t.app_version("pay", v, json!({})).await;
    }
    let as_user = |user: &'static str, args: &[&'static str]| {
        let mut all = vec!["--as", user, "--as-group", "system:masters"];
        all.extend_from_slice(args);
        all
    };
    ok(&t, &as_user("carol", &["deploy", "pay", "1.0.0", "--env", "dev", "--wait"])).await;
    // `kubectl apply --server-side` of a new version: the tool is known, the person is not (carol's
    // claim names the generation she made, not this one).
    let applied = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "metadata": {"name": "pay-dev"},
        "spec": {"app": "pay", "environment": "dev", "version": "1.1.0"}});
    common::apply_value_as(&t.client, Some(&t.ns), applied, "kubectl").await.unwrap();
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    ok(&t, &as_user("dave", &["deploy", "pay", "1.2.0", "--env", "dev", "--wait"])).await;
    ok(&t, &as_user("carol", &["rollback", "pay", "--env", "dev", "--to", "1.1.0", "--wait"])).await;

    let rollouts = || async {
        let records = json_of(&ok(&t, &["audit", "--env", "dev", "-o", "json"]).await);
        let all = records.as_array().unwrap().clone();
        all.into_iter().filter(|r| r["kind"] == "Rollout").collect::<Vec<Value>>()
    };
    common::within("four rollouts recorded", async {
        while rollouts().await.len() < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    // In the order they started (in whole seconds, so some may tie): as a set.
    let mut seen: Vec<_> = rollouts()
        .await
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().map(String::from);
            (s("version"), s("requestedBy"), s("appliedBy"), s("by"))
        })
        .collect();
    let row = |v: &str, by: Option<&str>, tool: &str, how: &str| {
        (Some(v.to_string()), by.map(String::from), Some(tool.to_string()), Some(how.to_string()))
    };
    seen.sort();
    let mut want = vec![
        row("1.0.0", Some("carol"), "tuskfish-cli", "pinned"),
        row("1.1.0", None, "kubectl", "pinned"),
        row("1.2.0", Some("dave"), "tuskfish-cli", "pinned"),
        row("1.1.0", Some("carol"), "tuskfish-cli", "manual rollback"),
    ];
    want.sort();
    assert_eq!(seen, want);
    let csv = ok(&t, &["audit", "--env", "dev", "-o", "csv"]).await.stdout;
    assert!(csv.lines().next().unwrap().ends_with(r#""note","requested by","applied by""#), "{csv}");
    assert!(csv.contains(r#""carol","tuskfish-cli""#), "{csv}");

    // A claim vouches for the first rollout of its spec only: the Environment's change rolls the
    // same spec out again, and that rollout is nobody's request.
    let variables = json!({"spec": {"variables": {"REGION": "eu-2"}}});
    t.api::<tuskfish::api::Environment>()
        .patch("dev", &PatchParams::default(), &Patch::Merge(&variables))
        .await
        .unwrap();
    common::within("the Environment's rollout recorded", async {
        while rollouts().await.len() < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    let again = rollouts().await;
    let again = again.iter().find(|r| r["from"] == "1.1.0" && r["version"] == "1.1.0").unwrap();
    assert_eq!(
        (again["requestedBy"].as_str(), again["appliedBy"].as_str()),
        (None, Some("tuskfish-cli")),
        "{again}"
    );

    // mallory (RBAC lets her do anything) can claim only her own requests, in the write that
    // makes them: not in carol's name, not for a change she does not make, not for another
    // generation. Dry runs: the API server decides, nothing changes.
    let mallory: kube::Api<Release> =
        kube::Api::namespaced(common::client_as("mallory", &["system:masters"]).await, &t.ns);
    let generation = t.api::<Release>().get("pay-dev").await.unwrap().metadata.generation.unwrap();
    let claim = |by: &str, claimed: i64, spec: Option<Value>| {
        let mut patch = json!({"metadata": {"annotations": {
            "tuskfish.dev/requested-by": by, "tuskfish.dev/requested-generation": claimed.to_string()}}});
        if let Some(spec) = spec {
            patch["spec"] = spec;
        }
        patch
    };
    // Ending carol's rollback: a change of what chooses the version.
    let unroll = || Some(json!({"rollback": {"to": null}}));
    let dry = PatchParams { dry_run: true, ..Default::default() };
    let refusals = [
        ("in carol's name", claim("carol", generation + 1, unroll()), "must name the user who writes it"),
        ("without a change", claim("mallory", generation, None), "set only in the write that changes"),
        (
            "for another generation",
            claim("mallory", generation + 2, unroll()),
            "set only in the write that changes",
        ),
        // A change that leaves the version as it was (carol's rollback still chooses it).
        (
            "for a change of something else",
            claim("mallory", generation + 1, Some(json!({"progressDeadlineSeconds": 601}))),
            "set only in the write that changes which version",
        ),
    ];
    for (case, patch, needle) in refusals {
        let e = mallory.patch("pay-dev", &dry, &Patch::Merge(&patch)).await.unwrap_err();
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains(needle)),
            "{case}: {e}"
        );
    }
    let own = claim("mallory", generation + 1, unroll());
    mallory
        .patch("pay-dev", &dry, &Patch::Merge(&own))
        .await
        .expect("her own request, made as she claims it");
}

#[tokio::test]
async fn a_veto_stops_a_version_in_every_environment_in_its_authors_name() {
    let t = TestNs::new("cli-veto").await;
    t.environment("dev", json!({})).await;
    t.environment("test", json!({"tier": "test"})).await;
    t.environment("prod", json!({"tier": "prod"})).await;
    t.app_version("pay", "1.3.10", json!({})).await;
    t.release("pay-dev", "pay", "dev", "", json!({"version": null, "track": "~1.3"})).await;
    let promote = json!({"version": null, "promoteFrom": {"environment": "dev", "soak": "0s"}});
    t.release("pay-test", "pay", "test", "", promote).await;
    t.release("pay-prod", "pay", "prod", "1.3.10", json!({})).await;
    t.wait_release("pay-test", healthy_at("1.3.10")).await;
    t.wait_release("pay-prod", healthy_at("1.3.10")).await;
    t.app_version("pay", "1.3.11", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.3.11")).await;
    t.wait_release("pay-test", healthy_at("1.3.11")).await;

    // vera may veto (patch AppVersions, and leave the audit Event) in this pipeline namespace.
    let rbac = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "vetoer"},
            "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["appversions", "releases", "environments"],
                       "verbs": ["get", "list", "watch", "patch", "delete"]},
                      {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "vetoer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vetoer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "vera"},
                         {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]}),
    ];
    for doc in rbac {
        t.apply(doc).await;
    }
    common::wait_allowed(&t.client, "vera", &[], "patch", "appversions", &t.ns).await;
    common::wait_allowed(&t.client, "mallory", &[], "patch", "appversions", &t.ns).await;

    // Nobody vetoes in another's name: the API server refuses the annotation naming someone else.
    let forged =
        json!({"metadata": {"annotations": {"tuskfish.dev/veto": "no", "tuskfish.dev/vetoed-by": "vera"}}});
    let refused =
        t.api::<AppVersion>().patch("pay-1.3.11", &PatchParams::default(), &Patch::Merge(&forged)).await;
    let message = format!("{refused:?}");
    assert!(message.contains("must name the user who sets or changes the veto (admin)"), "{message}");

    fails(&t, &["veto", "pay", "1.3.11"], 2, "required arguments were not provided").await;
    let r = ok(&t, &["--as", "vera", "veto", "pay", "1.3.11", "--reason", "FX rounding (INC-9)"]).await;
    assert!(r.stdout.contains("vetoed pay 1.3.11") && r.stdout.contains("dev, test"), "{r:?}");
    let av = t.api::<AppVersion>().get("pay-1.3.11").await.unwrap();
    assert_eq!(av.metadata.annotations.unwrap()["tuskfish.dev/vetoed-by"], "vera");

    // Where it ran, it is rolled back (tracking and promotion roll back automatically), and the
    // history says who vetoed it and why.
    for name in ["pay-dev", "pay-test"] {
        let rel = t.wait_release(name, healthy_at("1.3.10")).await;
        let status = rel.status.unwrap();
        let entry = &status.history[0];
        assert_eq!(
            (entry.version.as_str(), entry.rollback_of.as_deref()),
            ("1.3.10", Some("1.3.11")),
            "{name}"
        );
        let note = entry.message.clone().unwrap_or_default();
        assert!(note.contains("rollback: 1.3.11 vetoed by vera: FX rounding (INC-9)"), "{name}: {note}");
    }
    // dev tracks ~1.3 and skips the vetoed version, saying so; test follows what dev runs again.
    let dev = t.api::<Release>().get("pay-dev").await.unwrap().status.unwrap();
    assert!(held("VersionVetoed")(&dev), "{:#?}", dev.conditions);
    // No environment deploys it: prod, pinned to it, keeps what it runs.
    t.set_version("pay-prod", "1.3.11").await;
    let rel = t.wait_release("pay-prod", held("VersionVetoed")).await;
    assert_eq!(rel.status.unwrap().current_version.as_deref(), Some("1.3.10"));
    let events: kube::Api<Event> = t.api();
    let notes: Vec<String> =
        events.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|e| e.note).collect();
    assert!(notes.iter().any(|n| n == "pay 1.3.11 vetoed by vera: FX rounding (INC-9)"), "{notes:#?}");
    assert!(
        notes.iter().any(|n| n.starts_with("rolling back to 1.3.10 in dev: rollback: 1.3.11 vetoed")),
        "{notes:#?}"
    );
    let status = json_of(&ok(&t, &["status", "-o", "json"]).await);
    assert!(status.to_string().contains("vetoed by vera"), "{status}");

    // Only its author (or a veto admin) lifts or overwrites it: RBAC to patch AppVersions is not
    // enough.
    let lift = ["--as", "mallory", "veto", "pay", "1.3.11", "--lift", "--reason", "mine now"];
    fails(
        &t,
        &lift,
        4,
        "only they, or a member of the group tuskfish:veto-admins, may lift or change the veto",
    )
    .await;
    let overwrite = json!({"tuskfish.dev/veto": "mine now", "tuskfish.dev/vetoed-by": "mallory"});
    let refused = format!("{:?}", veto_as_mallory(&t.ns, &[], overwrite).await);
    assert!(refused.contains("this version was vetoed by vera: only they"), "{refused}");
    // Deleting it (to publish it again without the veto) is lifting it too.
    let mallory = common::client_as("mallory", &[]).await;
    let dry = kube::api::DeleteParams { dry_run: true, ..Default::default() };
    let deleted = kube::Api::<AppVersion>::namespaced(mallory, &t.ns).delete("pay-1.3.11", &dry).await;
    let refused = format!("{:?}", deleted.err());
    assert!(refused.contains("this version was vetoed by vera: only they"), "{refused}");
    let lifted = json!({"tuskfish.dev/veto": null, "tuskfish.dev/vetoed-by": null});
    veto_as_mallory(&t.ns, &["tuskfish:veto-admins"], lifted)
        .await
        .expect("a veto admin may lift anyone's veto");
    let still = t.api::<AppVersion>().get("pay-1.3.11").await.unwrap().metadata.annotations.unwrap();
    assert_eq!(still["tuskfish.dev/vetoed-by"], "vera");
    // Lifted by its author: the version goes where it is wanted again.
    ok(&t, &["--as", "vera", "veto", "pay", "1.3.11", "--lift", "--reason", "false alarm"]).await;
    t.wait_release("pay-prod", healthy_at("1.3.11")).await;
    t.wait_release("pay-dev", healthy_at("1.3.11")).await;
    t.wait_release("pay-test", healthy_at("1.3.11")).await;

    // The audit trail keeps both, in every Environment's listing: the veto in vera's name (the
    // name the API server verified) and its lifting.
    let kinds = || async {
        let records = json_of(&ok(&t, &["audit", "--env", "prod", "-o", "json"]).await);
        records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["environment"] == "*")
            .cloned()
            .collect::<Vec<Value>>()
    };
    common::within("the veto's lifting recorded", async {
        while kinds().await.len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    let vetoes = kinds().await;
    assert_eq!(vetoes[0]["kind"], "Veto", "{vetoes:#?}");
    assert_eq!((vetoes[0]["by"].as_str(), vetoes[0]["version"].as_str()), (Some("vera"), Some("1.3.11")));
    assert_eq!(vetoes[0]["note"], "FX rounding (INC-9)");
    assert_eq!(vetoes[1]["kind"], "VetoLifted", "{vetoes:#?}");
}

/// Patches the veto annotations of pay 1.3.11 as mallory in `groups` (a dry run: the API server
/// admits or refuses it, and nothing changes).
async fn veto_as_mallory(ns: &str, groups: &[&str], annotations: Value) -> kube::Result<AppVersion> {
    let mallory = common::client_as("mallory", groups).await;
    let pp = PatchParams { dry_run: true, ..Default::default() };
    let patch = json!({"metadata": {"annotations": annotations}});
    kube::Api::<AppVersion>::namespaced(mallory, ns).patch("pay-1.3.11", &pp, &Patch::Merge(&patch)).await
}

#[tokio::test]
async fn approval_policies_count_distinct_people_countersignatures_expiry_and_rejections() {
    let t = TestNs::new("cli-quorum").await;
    let group = common::APPROVERS_GROUP;
    let policy = json!({"minApprovals": 2, "approvers": {"groups": [group]}, "countersign": ["cfo"]});
    t.environment("prod", json!({"tier": "prod", "approvalPolicy": policy})).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        t.app_version("pay", v, json!({})).await;
    }
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    let approve = |who: &'static str, version: &'static str| {
        let t = &t;
        async move { ok(t, &["--as", who, "--as-group", group, "approve", "pay", version, "--env", "prod"]).await }
    };

    // One person approving twice counts once.
    approve("bob", "1.0.0").await;
    assert!(approve("bob", "1.0.0").await.stdout.contains("already approved"));
    // What the Release says it waits for: the Ready condition while nothing runs yet, Held after.
    let waiting = |needle: &'static str| {
        move |s: &tuskfish::api::ReleaseStatus| {
            ["Ready", "Held"].iter().any(|c| {
                tuskfish::api::find_condition(&s.conditions, c)
                    .is_some_and(|c| c.reason == "AwaitingApproval" && c.message.contains(needle))
            })
        }
    };
    t.wait_release("pay-prod", waiting("1 of 2 approvals (from bob); 1 more needed from groups")).await;
    approve("carol", "1.0.0").await;
    // The quorum is there; the countersignature is not.
    t.wait_release("pay-prod", waiting("1.0.0 for Release pay-prod: countersignature of cfo needed")).await;
    approve("cfo", "1.0.0").await;
    let rel = t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    let note = rel.status.unwrap().history[0].message.clone().unwrap_or_default();
    for who in ["bob at ", "carol at ", "cfo at "] {
        assert!(note.contains(who), "every approval that counted is in the history: {note}");
    }

    // A rejection holds the version whatever else is approved; a newer one needs its own approvals.
    ok(&t, &["deploy", "pay", "1.1.0", "--env", "prod"]).await;
    let r = ok(
        &t,
        &[
            "--as",
            "bob",
            "--as-group",
            group,
            "reject",
            "pay",
            "1.1.0",
            "--env",
            "prod",
            "--reason",
            "FX risk",
        ],
    )
    .await;
    assert!(r.stdout.contains("rejected pay 1.1.0 for prod"), "{r:?}");
    for who in ["carol", "cfo", "dan"] {
        approve(who, "1.1.0").await;
    }
    let rel = t.wait_release("pay-prod", held("Rejected")).await;
    let status = rel.status.unwrap();
    assert_eq!(status.current_version.as_deref(), Some("1.0.0"));
    let message = tuskfish::api::find_condition(&status.conditions, "Held").unwrap().message.clone();
    assert!(
        message.contains("rejected for Release pay-prod by bob at ")
            && message.ends_with("a newer version needs approvals of its own"),
        "{message}"
    );
    ok(&t, &["deploy", "pay", "1.2.0", "--env", "prod"]).await;
    t.wait_release("pay-prod", waiting("1.2.0 for Release pay-prod: 0 of 2 approvals")).await;

    // Nobody claims a group they are not in: the API server refuses it.
    let as_eve = common::client_as("eve", &[group]).await;
    let forged = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval", "metadata": {"name": "forged"},
        "spec": {"release": "pay-prod", "version": "1.2.0", "approver": "eve", "approverGroups": ["finance:cfo-office"]}});
    let refused = common::apply_value(&as_eve, Some(&t.ns), forged).await.unwrap_err().to_string();
    assert!(
        refused
            .contains("spec.approverGroups may only name groups of the user who creates the Approval (eve)"),
        "{refused}"
    );

    // Approvals expire: an old one stops counting, and the message says so when it does.
    t.environment("audit", json!({"approvalPolicy": {"minApprovals": 2, "expireAfter": "3s"}})).await;
    t.release("pay-audit", "pay", "audit", "1.0.0", json!({})).await;
    ok(&t, &["--as", "bob", "--as-group", group, "approve", "pay", "1.0.0", "--env", "audit"]).await;
    t.wait_release("pay-audit", waiting("(expired: bob)")).await;
    ok(&t, &["--as", "carol", "--as-group", group, "approve", "pay", "1.0.0", "--env", "audit"]).await;
    t.wait_release("pay-audit", waiting("1 of 2 approvals (from carol); 1 more needed (expired: bob)")).await;
}

#[tokio::test]
async fn verify_runs_the_checks_of_what_runs_again_and_says_which_failed() {
    let t = TestNs::new("cli-verify").await;
    let server = common::receiver::Receiver::start().await;
    server.answer("ready", &[(200, "ok")]);
    let check =
        json!({"name": "ready", "http": {"url": format!("http://{}/ready", server.host()), "retries": 0}});
    t.environment("dev", json!({"verify": [check]})).await;
    t.environment("prod", json!({"tier": "prod"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({"rollback": {"auto": true}})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    assert_eq!(server.received("ready").len(), 1);

    // The service broke after the rollout: verify says so, and the Release shows it.
    server.answer("ready", &[(503, "ledger connection refused")]);
    let r = fails(&t, &["verify", "pay", "--env", "dev", "--timeout", "60s"], 1, "HTTP 503").await;
    // What the service answered is not quoted (a tenant picks the URL), only its size.
    assert!(
        r.stderr.contains("body of 25 bytes") && !r.stderr.contains("ledger connection refused"),
        "{r:?}"
    );
    let s = t.api::<Release>().get("pay-dev").await.unwrap().status.unwrap();
    let ready = tuskfish::api::find_condition(&s.conditions, "Ready").unwrap();
    assert_eq!((ready.reason.as_str(), s.current_version.as_deref()), ("VerificationFailed", Some("1.0.0")));
    assert!(
        s.failed_versions.is_empty(),
        "a version that passed its rollout's checks is not rolled back: {s:?}"
    );

    // Mended: verify passes and the Release is healthy again.
    server.answer("ready", &[(200, "ok")]);
    let r = ok(&t, &["verify", "pay", "--env", "dev", "--timeout", "60s"]).await;
    assert!(r.stderr.contains("passed every check") && r.stdout.contains("ready Passed"), "{r:?}");
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    assert_eq!(server.received("ready").len(), 3);

    // Nothing to verify: the error names where checks go.
    fails(&t, &["verify", "pay", "--env", "prod"], 2, "spec.verify").await;
}

#[tokio::test]
async fn changes_answers_where_a_story_is() {
    let t = TestNs::new("cli-changes").await;
    t.environment("dev", json!({})).await;
    t.environment("prod", json!({"tier": "prod"})).await;
    let story = json!({"id": "FIN-1", "title": "Instant payouts", "type": "story"});
    let bug = json!({"id": "FIN-2", "title": "Cents rounding", "type": "bug"});
    t.app_version("pay", "1.0.0", json!({"changes": [story]})).await;
    t.app_version("pay", "1.1.0", json!({"changes": [story, bug]})).await;
    t.release("pay-dev", "pay", "dev", "1.1.0", json!({})).await;
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;

    let board = json_of(&ok(&t, &["changes", "-o", "json"]).await);
    let fin2 = board.as_array().unwrap().iter().find(|s| s["id"] == "FIN-2").unwrap();
    assert_eq!(fin2["reached"][0]["environment"], "dev");
    assert_eq!(fin2["reached"][0]["version"], "1.1.0");
    assert!(fin2["reached"][0]["since"].is_string(), "{fin2}");
    assert_eq!(fin2["missing"], json!(["prod"]));
    let r = ok(&t, &["changes", "fin-2"]).await;
    assert!(r.stdout.contains("FIN-2 (bug) Cents rounding") && r.stdout.contains("prod: missing"), "{r:?}");
    let r = ok(&t, &["changes", "--type", "story", "--env", "prod"]).await;
    assert!(r.stdout.contains("FIN-1") && !r.stdout.contains("FIN-2"), "{r:?}");
    fails(&t, &["changes", "FIN-999"], 3, "carries change FIN-999").await;
}

#[tokio::test]
async fn promote_deploys_what_is_healthy_upstream() {
    let t = TestNs::new("cli-promote").await;
    t.environment("dev", json!({})).await;
    t.environment("test", json!({"tier": "test"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "1.1.0", json!({})).await;
    t.release("pay-dev", "pay", "dev", "", json!({"version": null, "track": "^1"})).await;
    t.release("pay-test", "pay", "test", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.wait_release("pay-test", healthy_at("1.0.0")).await;

    let r = ok(&t, &["promote", "pay", "--from", "dev", "--to", "test", "--wait"]).await;
    assert!(r.stdout.contains("promoting pay 1.1.0 from dev to test"), "{r:?}");
    let rel = t.wait_release("pay-test", healthy_at("1.1.0")).await;
    assert_eq!(rel.spec.version.as_deref(), Some("1.1.0"));
    fails(&t, &["promote", "pay", "--from", "qa", "--to", "test"], 3, "unknown environment \"qa\"").await;
    fails(&t, &["promote", "ledger", "--from", "dev", "--to", "test"], 3, "no Release of \"ledger\"").await;
}

#[tokio::test]
async fn freeze_unfreeze_and_override() {
    let t = TestNs::new("cli-freeze").await;
    t.environment("prod", json!({"tier": "prod"})).await;
    t.environment("ops", json!({"freezeWindows": [{"reason": "always",
        "weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "from": "00:00", "to": "00:00"}}]}))
    .await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        t.app_version("pay", v, json!({})).await;
    }
    t.release("pay-prod", "pay", "prod", "1.0.0", json!({})).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;

    let r = ok(&t, &["freeze", "prod", "--reason", "audit"]).await;
    assert!(r.stdout.contains("prod frozen until `tuskfish unfreeze`"), "{r:?}");
    ok(&t, &["deploy", "pay", "1.1.0", "--env", "prod"]).await;
    t.wait_release("pay-prod", held("Frozen")).await;
    let status = ok(&t, &["status"]).await.stdout;
    assert!(
        status.contains("1.0.0 Healthy, 1.1.0 frozen")
            && status.contains("prod: frozen until unfrozen (audit"),
        "{status}"
    );
    let events = t.api::<Event>().list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("Frozen")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("prod")),
        "a Frozen Event on the Environment"
    );

    ok(&t, &["unfreeze", "prod", "--reason", "audit done"]).await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;
    assert!(t.api::<Environment>().get("prod").await.unwrap().spec.freeze_windows.is_empty());
    assert!(ok(&t, &["unfreeze", "prod"]).await.stdout.contains("prod is not frozen"));

    // A timed freeze, and one app let through it.
    ok(&t, &["freeze", "prod", "--reason", "close", "--for", "2h"]).await;
    ok(&t, &["deploy", "pay", "1.2.0", "--env", "prod"]).await;
    t.wait_release("pay-prod", held("Frozen")).await;
    ok(&t, &["unfreeze", "prod", "--override", "pay", "--reason", "INC-7"]).await;
    let rel = t.wait_release("pay-prod", healthy_at("1.2.0")).await;
    let note = rel.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert!(note.contains("overridden: INC-7"), "{note}");
    assert_eq!(
        t.api::<Environment>().get("prod").await.unwrap().spec.freeze_windows.len(),
        1,
        "the freeze itself stays"
    );

    // Weekly windows are policy: unfreeze refuses and says what to do instead.
    fails(&t, &["unfreeze", "ops"], 1, "weekly or recurring freeze window").await;
    fails(&t, &["freeze", "prod", "--reason", "x", "--for", "soon"], 2, "--for").await;
    fails(&t, &["freeze", "prod", "--reason", "x", "--until", "2001-01-01T00:00:00Z"], 2, "in the past")
        .await;
}

#[tokio::test]
async fn one_command_stops_the_line_and_one_restarts_it() {
    let t = TestNs::new("cli-line").await;
    for env in ["dev", "test", "prod"] {
        t.environment(env, json!({})).await;
    }
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        t.app_version("pay", v, json!({})).await;
    }
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.release("pay-test", "pay", "test", "1.0.0", json!({})).await;
    let track = json!({"version": null, "track": "~1.0"});
    t.release("pay-prod", "pay", "prod", "", track).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;
    t.wait_release("pay-test", healthy_at("1.0.0")).await;
    t.set_version("pay-test", "1.1.0").await;
    t.wait_release("pay-test", healthy_at("1.1.0")).await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;
    // prod has a freeze of its own, which the line's restart must leave in place.
    ok(&t, &["freeze", "prod", "--reason", "audit"]).await;

    let r = ok(&t, &["freeze", "--all", "--reason", "INC-12 payments outage"]).await;
    assert!(
        r.stdout.contains("line stopped until `tuskfish unfreeze`") && r.stdout.contains("dev, prod, test"),
        "{r:?}"
    );
    for env in ["dev", "test", "prod"] {
        let windows = t.api::<Environment>().get(env).await.unwrap().spec.freeze_windows;
        assert!(
            windows.iter().any(|w| w.line_stop && w.reason.as_deref().unwrap_or_default().contains("INC-12")),
            "{env}: {windows:?}"
        );
    }
    // Rollbacks still run…
    ok(&t, &["rollback", "pay", "--env", "test", "--wait"]).await;
    t.wait_release("pay-test", healthy_at("1.0.0")).await;
    ok(&t, &["rollback", "pay", "--env", "test", "--clear"]).await;
    // …but every environment holds new versions.
    ok(&t, &["deploy", "pay", "1.1.0", "--env", "dev"]).await;
    ok(&t, &["deploy", "pay", "1.2.0", "--env", "test"]).await;
    t.wait_release("pay-dev", held("Frozen")).await;
    t.wait_release("pay-test", held("Frozen")).await;
    let dev = t.api::<Release>().get("pay-dev").await.unwrap().status.unwrap();
    assert_eq!(dev.current_version.as_deref(), Some("1.0.0"));
    let events = t.api::<Event>().list(&ListParams::default()).await.unwrap();
    // (The held Releases say "line stopped" in Events of their own.)
    let on_environments =
        |e: &&Event| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Environment");
    let stopped = events
        .items
        .iter()
        .filter(on_environments)
        .filter(|e| e.note.as_deref().is_some_and(|n| n.contains("line stopped")))
        .count();
    assert_eq!(stopped, 3, "one Frozen Event per Environment");

    let r = ok(&t, &["unfreeze", "--all", "--reason", "INC-12 resolved"]).await;
    assert!(
        r.stdout.contains("line restarted") && r.stdout.contains("still frozen by their own windows: prod"),
        "{r:?}"
    );
    t.wait_release("pay-dev", healthy_at("1.1.0")).await;
    t.wait_release("pay-test", healthy_at("1.2.0")).await;
    let prod = t.api::<Environment>().get("prod").await.unwrap().spec.freeze_windows;
    assert_eq!(prod.len(), 1, "prod's own freeze stays: {prod:?}");
    assert!(!prod[0].line_stop);
    assert!(ok(&t, &["unfreeze", "--all"]).await.stdout.contains("is not stopped"));
    fails(&t, &["freeze", "--reason", "x"], 2, "required arguments were not provided").await;
}

#[tokio::test]
async fn errors_name_the_problem_with_documented_exit_codes() {
    let t = TestNs::new("cli-errors").await;
    t.environment("prod", json!({"tier": "prod", "versionLine": "~1.0"})).await;
    t.app_version("pay", "1.0.0", json!({})).await;
    t.app_version("pay", "2.0.0", json!({})).await;

    fails(&t, &["deploy", "pay", "1.0.0", "--env", "prdo"], 3, "unknown environment \"prdo\"").await;
    fails(&t, &["deploy", "pay", "1.0.1", "--env", "prod"], 3, "pay 1.0.1 not found").await;
    fails(&t, &["deploy", "ledger", "1.0.0", "--env", "prod"], 3, "app \"ledger\" has no AppVersions").await;
    fails(&t, &["deploy", "pay", "one", "--env", "prod"], 2, "not a semantic version").await;
    fails(&t, &["deploy", "pay", "2.0.0", "--env", "prod"], 2, "outside environment prod's version line")
        .await;
    fails(&t, &["history", "pay", "--env", "prod"], 3, "no Release of \"pay\"").await;
    assert_eq!(tf(&t, &["deploy", "pay"]).await.code, 2, "usage errors exit 2");
    assert!(
        t.api::<Release>().list(&ListParams::default()).await.unwrap().items.is_empty(),
        "nothing was created"
    );

    // Nothing listens on port 1.
    let dir = scratch_dir("unreachable");
    let dead = dir.join("kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let r = run(command(
        env!("CARGO_BIN_EXE_tuskfish"),
        None,
        &["--kubeconfig", dead.to_str().unwrap(), "status"],
    ))
    .await;
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("cannot reach the Kubernetes API server"), "{r:?}");

    // A ServiceAccount with no permissions: RBAC says no, and so does the CLI (exit 4).
    let sa_api = t.api::<ServiceAccount>();
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "nobody"}})).unwrap();
    sa_api.create(&PostParams::default(), &sa).await.unwrap();
    let limited = common::service_account_kubeconfig(&t.client, &t.ns, "nobody").await;
    let r = run(command(
        env!("CARGO_BIN_EXE_tuskfish"),
        None,
        &["--kubeconfig", limited.to_str().unwrap(), "-n", &t.ns, "deploy", "pay", "1.0.0", "--env", "prod"],
    ))
    .await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("not allowed") && r.stderr.contains("system:serviceaccount"), "{r:?}");
}

#[tokio::test]
async fn completion_scripts_for_each_shell() {
    for (shell, needle) in
        [("bash", "_tuskfish"), ("zsh", "#compdef tuskfish"), ("fish", "complete -c tuskfish")]
    {
        let r = run(command(env!("CARGO_BIN_EXE_tuskfish"), None, &["completion", shell])).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stdout.contains(needle) && r.stdout.contains("rollback"),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
    }
}

// ---- `version` against real Git repositories ----

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tuskfish-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn commit(dir: &Path, subject: &str) {
    git(dir, &["commit", "-q", "--allow-empty", "-m", subject]);
}

async fn version_in(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["version"];
    all.extend_from_slice(args);
    run(command(env!("CARGO_BIN_EXE_tuskfish"), Some(dir), &all)).await
}

async fn version_is(dir: &Path, want: &str) {
    let r = version_in(dir, &[]).await;
    assert_eq!((r.code, r.stdout.trim()), (0, want), "{r:?}");
}

#[tokio::test]
async fn version_follows_gitflow_in_real_repositories() {
    let repo = scratch_dir("gitflow");
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(&repo, "initial import");
    git(&repo, &["tag", "v1.3.9"]);
    version_is(&repo, "1.3.9").await;

    git(&repo, &["checkout", "-q", "-b", "develop"]);
    commit(&repo, "[FIN-200] feat: instant payouts");
    commit(&repo, "chore: tidy");
    version_is(&repo, "1.4.0-develop.2").await;

    git(&repo, &["checkout", "-q", "-b", "feature/FIN-300_Reports"]);
    commit(&repo, "[FIN-300] reports");
    version_is(&repo, "1.4.0-feature-fin-300-reports.3").await;

    git(&repo, &["checkout", "-q", "develop"]);
    git(&repo, &["checkout", "-q", "-b", "release/1.4"]);
    version_is(&repo, "1.4.0-rc.0").await;
    commit(&repo, "fix: [FIN-201] release polish");
    version_is(&repo, "1.4.0-rc.1").await;

    git(&repo, &["checkout", "-q", "main"]);
    git(&repo, &["checkout", "-q", "-b", "hotfix/1.3.10"]);
    commit(&repo, "fix: [FIN-142] rounding of cents");
    commit(&repo, "fix: [FIN-143] currency codes");
    version_is(&repo, "1.3.10-rc.2").await;
    let info: Value = serde_json::from_str(&version_in(&repo, &["-o", "json"]).await.stdout).unwrap();
    let ids: Vec<&str> =
        info["changes"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["FIN-143", "FIN-142"], "only the hotfix's own changes, newest first");
    assert_eq!(info["changes"][0]["type"], "bug");
    git(&repo, &["tag", "v1.3.10"]);
    version_is(&repo, "1.3.10").await;

    // An untagged commit on main has no version of its own.
    git(&repo, &["checkout", "-q", "main"]);
    commit(&repo, "direct commit");
    let r = version_in(&repo, &[]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("main has no version tag on HEAD (latest release: v1.3.9)"), "{r:?}");

    // CI checks out a detached HEAD: the branch comes from --branch or the CI's variable.
    git(&repo, &["checkout", "-q", "--detach", "release/1.4"]);
    let r = version_in(&repo, &[]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("pass --branch"), "{r:?}");
    let r = version_in(&repo, &["--branch", "release/1.4"]).await;
    assert_eq!(r.stdout.trim(), "1.4.0-rc.1", "{r:?}");
    let mut cmd = command(env!("CARGO_BIN_EXE_tuskfish"), Some(&repo), &["version"]);
    cmd.env("CI_COMMIT_REF_NAME", "release/1.4");
    assert_eq!(run(cmd).await.stdout.trim(), "1.4.0-rc.1");
    let r = version_in(&repo, &["--branch", "release/next"]).await;
    assert_eq!(r.code, 2, "{r:?}");

    // Custom change-id pattern.
    let r =
        version_in(&repo, &["--branch", "release/1.4", "--change-pattern", r"FIN-(\d+)", "-o", "json"]).await;
    let info: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(info["changes"][0]["id"], "201", "{r:?}");
    assert_eq!(version_in(&repo, &["--change-pattern", "("]).await.code, 2);

    // Not a repository; a shallow clone (counts would be wrong).
    assert_eq!(version_in(&scratch_dir("not-git"), &[]).await.code, 2);
    let shallow = scratch_dir("shallow");
    let url = format!("file://{}", repo.display());
    git(&shallow, &["clone", "-q", "--depth", "1", "--branch", "develop", &url, "."]);
    let r = version_in(&shallow, &[]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("shallow clone"), "{r:?}");
}

#[tokio::test]
async fn emitted_appversion_is_published_and_deployable() {
    let t = TestNs::new("cli-emit").await;
    t.environment("dev", json!({})).await;
    let repo = scratch_dir("emit");
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(&repo, "initial");
    git(&repo, &["tag", "v2.0.0"]);
    git(&repo, &["checkout", "-q", "-b", "hotfix/2.0.1"]);
    commit(&repo, "fix: [PAY-7] timeout");
    git(&repo, &["remote", "add", "origin", "https://ci-bot:s3cret@git.example.com/finance/pay.git"]);

    let r = version_in(
        &repo,
        &[
            "--emit-appversion",
            "--app",
            "pay",
            "--image",
            "registry.example/pay:{version}",
            "--port",
            "http:8080",
            "-n",
            &t.ns,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("s3cret"), "credentials must not leak into the manifest");
    let manifest: Value = serde_saphyr::from_str(&r.stdout).unwrap();
    t.apply(manifest).await;
    let av: AppVersion = t
        .wait_for("pay-2.0.1-rc.1", |a: &AppVersion| {
            a.status.as_ref().is_some_and(|s| tuskfish::api::is_true(&s.conditions, "Ready"))
        })
        .await;
    assert_eq!(av.spec.version, "2.0.1-rc.1");
    assert_eq!(av.spec.workload.as_ref().unwrap().image, "registry.example/pay:2.0.1-rc.1");
    let source = av.spec.source.unwrap();
    assert_eq!(source.repo.as_deref(), Some("https://git.example.com/finance/pay.git"));
    assert_eq!(source.branch.as_deref(), Some("hotfix/2.0.1"));
    assert_eq!(av.spec.changes.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["PAY-7"]);

    ok(&t, &["deploy", "pay", "2.0.1-rc.1", "--env", "dev", "--wait"]).await;
    let rel = t.wait_release("pay-dev", healthy_at("2.0.1-rc.1")).await;
    assert_eq!(rel.status.unwrap().changes, ["PAY-7"]);
}

// ---- `flow`: Gitflow run by tuskfish, on real repositories ----

fn contains(dir: &Path, branch: &str, commit: &str) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["merge-base", "--is-ancestor", commit, branch])
        .status()
        .unwrap()
        .success()
}

fn write_commit(dir: &Path, file: &str, text: &str, subject: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    git(dir, &["add", file]);
    commit(dir, subject);
    git(dir, &["rev-parse", "HEAD"])
}

async fn flow(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["flow"];
    all.extend_from_slice(args);
    run(command(env!("CARGO_BIN_EXE_tuskfish"), Some(dir), &all)).await
}

/// main at v1.3.9, develop one story ahead; the identity tuskfish's merges and tags are made by.
fn gitflow_repo(name: &str) -> PathBuf {
    let repo = scratch_dir(name);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Release Bot"]);
    git(&repo, &["config", "user.email", "release@example.com"]);
    write_commit(&repo, "app.txt", "rounding: half-up\n", "initial import");
    git(&repo, &["tag", "v1.3.9"]);
    git(&repo, &["checkout", "-q", "-b", "develop"]);
    write_commit(&repo, "export.txt", "ledger export\n", "[FIN-140] feat: ledger export");
    repo
}

#[tokio::test]
async fn flow_starts_and_finishes_features_and_releases() {
    let repo = gitflow_repo("flow");
    let r = flow(&repo, &["feature", "start", "FIN-142-rounding"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "feature/FIN-142-rounding");
    let story = write_commit(&repo, "rounding.txt", "bankers\n", "[FIN-142] feat: rounding");
    // A dirty tree is refused, and nothing moves.
    std::fs::write(repo.join("app.txt"), "edited\n").unwrap();
    let r = flow(&repo, &["feature", "finish", "FIN-142-rounding"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("uncommitted changes (app.txt)"), "{r:?}");
    git(&repo, &["checkout", "-q", "--", "app.txt"]);

    let r = flow(&repo, &["feature", "finish", "FIN-142-rounding"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "develop");
    assert!(contains(&repo, "develop", &story));
    assert_eq!(
        git(&repo, &["rev-list", "--parents", "-n1", "develop"]).split(' ').count(),
        3,
        "a merge commit"
    );
    assert!(git(&repo, &["branch", "--list", "feature/*"]).is_empty(), "the feature branch is deleted");

    let r = flow(&repo, &["release", "start", "1.4"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    write_commit(&repo, "notes.txt", "1.4 notes\n", "[FIN-143] fix: release notes");
    version_is(&repo, "1.4.0-rc.1").await;
    let r = flow(&repo, &["release", "finish", "1.4"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("tagged v1.4.0 on main"), "{r:?}");
    assert!(r.stdout.contains("next version on develop: 1.5.0-develop."), "{r:?}");
    assert_eq!(git(&repo, &["cat-file", "-t", "v1.4.0"]), "tag", "an annotated tag");
    assert_eq!(git(&repo, &["rev-parse", "v1.4.0^{commit}"]), git(&repo, &["rev-parse", "main"]));
    assert!(contains(&repo, "develop", "main"), "develop has the release");
    git(&repo, &["checkout", "-q", "main"]);
    version_is(&repo, "1.4.0").await;

    // --push: what moved reaches origin, and the finished branch leaves it.
    let origin = scratch_dir("flow-origin");
    git(&origin, &["init", "-q", "--bare"]);
    git(&repo, &["remote", "add", "origin", origin.to_str().unwrap()]);
    git(&repo, &["push", "-q", "origin", "main", "develop", "v1.4.0"]);
    git(&repo, &["fetch", "-q", "origin"]);
    git(&repo, &["checkout", "-q", "develop"]);
    let r = flow(&repo, &["feature", "start", "FIN-160", "--push"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(git(&origin, &["branch", "--list", "feature/FIN-160"]).contains("feature/FIN-160"));
    write_commit(&repo, "fin160.txt", "x\n", "[FIN-160] feat: statements");
    git(&repo, &["push", "-q", "origin", "feature/FIN-160"]);
    git(&repo, &["fetch", "-q", "origin"]);
    let r = flow(&repo, &["feature", "finish", "FIN-160", "--push"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(git(&origin, &["rev-parse", "develop"]), git(&repo, &["rev-parse", "develop"]));
    assert!(git(&origin, &["branch", "--list", "feature/*"]).is_empty(), "deleted on origin too");

    // What Gitflow would not do is refused with the reason.
    let r = flow(&repo, &["release", "start", "1.3"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not newer than the latest release v1.4.0"), "{r:?}");
}

#[tokio::test]
async fn a_hotfix_reaches_every_newer_line_and_a_conflict_changes_nothing() {
    let repo = gitflow_repo("hotfix");
    for line in ["1.4", "1.5"] {
        git(&repo, &["checkout", "-q", "-b", &format!("release/{line}"), "develop"]);
        write_commit(&repo, &format!("notes-{line}.txt"), line, &format!("chore: {line} notes"));
    }
    git(&repo, &["checkout", "-q", "develop"]);
    let r = flow(&repo, &["hotfix", "start", "1.3.10"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let fix = write_commit(&repo, "fx.txt", "fixed\n", "[FIN-150] fix: FX rounding in 1.3");
    let r = flow(&repo, &["hotfix", "finish", "1.3.10"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    for branch in ["main", "develop", "release/1.4", "release/1.5"] {
        assert!(contains(&repo, branch, &fix), "{branch} lacks the hotfix: {r:?}");
    }
    assert_eq!(git(&repo, &["rev-parse", "v1.3.10^{commit}"]), git(&repo, &["rev-parse", "main"]));
    assert!(r.stdout.contains("next version on release/1.4: 1.4.0-rc."), "{r:?}");
    assert!(r.stdout.contains("next version on main: 1.3.10"), "{r:?}");

    // A hotfix that conflicts with the newest line: nothing changes, and the error says where.
    git(&repo, &["checkout", "-q", "release/1.5"]);
    write_commit(&repo, "app.txt", "rounding: bankers\n", "chore: 1.5 rounding");
    git(&repo, &["checkout", "-q", "main"]);
    let r = flow(&repo, &["hotfix", "start", "1.3.11"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    write_commit(&repo, "app.txt", "rounding: half-even\n", "[FIN-151] fix: rounding mode");
    let before = (git(&repo, &["for-each-ref"]), git(&repo, &["symbolic-ref", "HEAD"]));
    let r = flow(&repo, &["hotfix", "finish", "1.3.11"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("merging hotfix/1.3.11 into release/1.5 conflicts in app.txt")
            && r.stderr.contains("nothing was changed"),
        "{r:?}"
    );
    let after = (git(&repo, &["for-each-ref"]), git(&repo, &["symbolic-ref", "HEAD"]));
    assert_eq!(before, after, "every branch, tag and HEAD as before");
    assert!(git(&repo, &["status", "--porcelain"]).is_empty());
}

// ---- GitOps: a Release applied from git is changed in git ----

/// Applies every document of `file` as Flux's kustomize-controller does (server-side, its manager).
async fn flux_applies(t: &TestNs, file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap().into_iter().filter(|d| !d.is_null()) {
        common::apply_value_as(&t.client, Some(&t.ns), doc, "kustomize-controller").await.unwrap();
    }
}

#[tokio::test]
async fn a_release_applied_from_git_is_changed_in_git() {
    let t = TestNs::new("cli-gitops").await;
    t.app_version("pay", "1.0.0", json!({"changes": [{"id": "FIN-1"}]})).await;
    t.app_version("pay", "1.1.0", json!({"changes": [{"id": "FIN-1"}, {"id": "FIN-2", "type": "bug"}]}))
        .await;
    let repo = scratch_dir("gitops");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Dev"]);
    git(&repo, &["config", "user.email", "dev@example.com"]);
    std::fs::create_dir_all(repo.join("prod")).unwrap();
    let file = repo.join("prod/payments.yaml");
    let yaml = format!(
        "# prod, reviewed by the CAB\n---\napiVersion: tuskfish.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: prod\nspec:\n  namespace: {}\n  tier: prod\n  freezeWindows:\n  - {{reason: last close, start: \"2020-01-01T00:00:00Z\", end: \"2020-01-02T00:00:00Z\"}}\n---\napiVersion: tuskfish.dev/v1alpha1\nkind: Release\nmetadata:\n  name: pay-prod\nspec:\n  app: pay\n  environment: prod\n  version: \"1.0.0\"  # CAB-2001\n",
        t.env_ns("prod")
    );
    std::fs::write(&file, &yaml).unwrap();
    git(&repo, &["add", "."]);
    commit(&repo, "prod pipeline");
    flux_applies(&t, &file).await;
    t.wait_env_ready("prod").await;
    t.wait_release("pay-prod", healthy_at("1.0.0")).await;

    // A live edit would be undone by Flux: refused (exit 7) with the exact change to make.
    let r = fails(
        &t,
        &["deploy", "pay", "1.1.0", "--env", "prod"],
        7,
        "applied from git by kustomize-controller",
    )
    .await;
    assert!(r.stderr.contains("set spec.version: 1.1.0 in Release pay-prod"), "{r:?}");
    fails(&t, &["freeze", "prod", "--reason", "audit"], 7, "freezeWindows are applied from git").await;
    assert_eq!(t.api::<Release>().get("pay-prod").await.unwrap().spec.version.as_deref(), Some("1.0.0"));

    // --git: one line changes in the one file, committed with the change ids that ship.
    let r = ok(&t, &["deploy", "pay", "1.1.0", "--env", "prod", "--git", repo.to_str().unwrap()]).await;
    assert!(r.stdout.contains("committed") && r.stdout.contains("ships: FIN-2"), "{r:?}");
    let numstat = git(&repo, &["show", "--numstat", "--format=", "HEAD"]);
    assert_eq!(numstat, "1\t1\tprod/payments.yaml", "one line");
    let message = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("deploy pay 1.1.0 to prod") && message.contains("Ships: FIN-2"), "{message}");
    let now = std::fs::read_to_string(&file).unwrap();
    assert_eq!(now, yaml.replace("version: \"1.0.0\"  # CAB-2001", "version: \"1.1.0\"  # CAB-2001"));
    assert!(git(&repo, &["status", "--porcelain"]).is_empty());
    // The live object was left to the applier; once it applies the commit, the version rolls out.
    assert_eq!(t.api::<Release>().get("pay-prod").await.unwrap().spec.version.as_deref(), Some("1.0.0"));
    flux_applies(&t, &file).await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;
}

#[tokio::test]
async fn dry_run_shows_what_a_deploy_would_do_and_does_nothing() {
    let t = TestNs::new("cli-dry-run").await;
    t.environment("dev", json!({})).await;
    t.environment("prod", json!({"tier": "prod", "approval": "required"})).await;
    let legacy = json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pay-legacy"}, "data": {"mode": "old"}}]);
    t.app_version("pay", "1.0.0", json!({"changes": [{"id": "FIN-1"}], "manifests": legacy})).await;
    t.app_version("pay", "1.1.0", json!({"changes": [{"id": "FIN-1"}, {"id": "FIN-2"}]})).await;
    t.release("pay-dev", "pay", "dev", "1.0.0", json!({})).await;
    t.wait_release("pay-dev", healthy_at("1.0.0")).await;

    let r = ok(&t, &["deploy", "pay", "1.1.0", "--env", "dev", "--dry-run"]).await;
    for expected in [
        "dry run: pay-dev in dev from 1.0.0 to 1.1.0 (nothing was changed)",
        "update Deployment/pay",
        "-        image: registry.example/pay:1.0.0",
        "+        image: registry.example/pay:1.1.0",
        "would prune: ConfigMap/pay-legacy",
        "change ids that ship: FIN-2",
        "gates: none holds it",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?} not in {r:?}");
    }
    assert_eq!(t.api::<Release>().get("pay-dev").await.unwrap().spec.version.as_deref(), Some("1.0.0"));
    let deployment =
        t.api_in::<k8s_openapi::api::apps::v1::Deployment>(&t.env_ns("dev")).get("pay").await.unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("registry.example/pay:1.0.0"), "nothing was applied");

    // A first deploy to prod: everything is created, and the approval gate would hold it.
    let p = json_of(&ok(&t, &["deploy", "pay", "1.1.0", "--env", "prod", "--dry-run", "-o", "json"]).await);
    assert!(p["objects"].as_array().unwrap().iter().all(|o| o["change"] == "create"), "{p}");
    assert!(p["gates"][0].as_str().unwrap().contains("requires approval"), "{p}");
    assert!(t.api::<Release>().get_opt("pay-prod").await.unwrap().is_none(), "no Release was created");
    // approve --dry-run shows what the approved version would apply, and approves nothing.
    let r = ok(&t, &["approve", "pay", "1.1.0", "--env", "prod", "--dry-run"]).await;
    assert!(r.stdout.contains("dry run: pay-prod in prod from nothing to 1.1.0"), "{r:?}");
    assert!(t.api::<tuskfish::api::Approval>().list(&Default::default()).await.unwrap().items.is_empty());
    // rollback --dry-run needs something to go back to.
    fails(&t, &["rollback", "pay", "--env", "dev", "--dry-run"], 3, "no earlier healthy version").await;
    // promote --dry-run previews what promote would deploy.
    let r = ok(&t, &["promote", "pay", "--from", "dev", "--to", "prod", "--dry-run"]).await;
    assert!(r.stdout.contains("dry run: pay-prod in prod from nothing to 1.0.0"), "{r:?}");

    // diff --rendered: what each environment's running version renders to, object by object.
    t.release("pay-prod", "pay", "prod", "1.1.0", json!({})).await;
    t.approve("pay-prod", "1.1.0", "maria").await;
    t.wait_release("pay-prod", healthy_at("1.1.0")).await;
    let r = tf(&t, &["diff", "dev", "prod", "--rendered", "--exit-code"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    for expected in [
        "pay: 1.0.0 in dev, 1.1.0 in prod",
        "--- dev/Deployment/pay",
        "-        image: registry.example/pay:1.0.0",
        "+        image: registry.example/pay:1.1.0",
        "--- dev/ConfigMap/pay-legacy",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?} not in {r:?}");
    }
    assert!(
        !r.stdout.contains("tuskfish.dev/release:"),
        "identity labels always differ and are left out: {r:?}"
    );
}
