#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Flux and tuskfish side by side on a real API server: Flux's source-controller and
//! kustomize-controller (built from their Go modules by hack/flux-up.sh) apply the seed pipeline
//! from a Git repository on loopback, with health checks on our kinds. Neither undoes the other:
//! Flux's reapply keeps the operator's status and finalizer, the operator writes no field Flux
//! owns, the Kustomization is Ready exactly when the Releases are Healthy, and `tuskfish deploy
//! --git` changes the pipeline through git, which Flux then applies.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestNs, apply_value_as, client_as, examples, git, within};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tuskfish::api::{Phase, RELEASE_FINALIZER, Release};

fn kustomizations() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

fn git_repositories() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    )
}

/// Flux's processes, stopped when the test ends.
struct Flux {
    state: PathBuf,
}

impl Drop for Flux {
    fn drop(&mut self) {
        for p in ["kustomize-controller", "source-controller", "githttp"] {
            if let Ok(pid) = std::fs::read_to_string(self.state.join(format!("{p}.pid"))) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn condition<'a>(o: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    o.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn ready(o: &DynamicObject) -> bool {
    condition(o, "Ready").is_some_and(|c| c["status"] == "True")
}

/// The seed pipeline as a team keeps it in git: the examples (not the Approvals, which people make
/// in their own name), in this test's namespaces.
fn write_repository(t: &TestNs, work: &Path, bare: &Path) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    for f in [
        "00-namespace.yaml",
        "05-release-managers.yaml",
        "10-environments.yaml",
        "20-appversions.yaml",
        "30-releases.yaml",
    ] {
        let text = std::fs::read_to_string(examples().join(f)).unwrap().replace("finance", &t.ns);
        std::fs::write(work.join(f), text).unwrap();
    }
    git(work, &["init", "-q", "-b", "main"]);
    git(work, &["config", "user.name", "Dev"]);
    git(work, &["config", "user.email", "dev@example.com"]);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "the finance pipeline"]);
    let _ = std::fs::remove_dir_all(bare);
    git(work, &["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    git(work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(work, &["fetch", "-q", "origin"]);
    git(work, &["branch", "-q", "-u", "origin/main"]);
}

#[tokio::test]
async fn flux_and_tuskfish_apply_the_pipeline_side_by_side() {
    let t = TestNs::new("flux").await;
    let state = std::env::temp_dir().join(format!("{}-flux", t.ns));
    std::fs::create_dir_all(&state).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (script, st, kc) = (root.join("hack/flux-up.sh"), state.clone(), common::kubeconfig());
    let up =
        tokio::task::spawn_blocking(move || std::process::Command::new(script).arg(&st).arg(&kc).output())
            .await
            .unwrap()
            .unwrap();
    let _flux = Flux { state: state.clone() };
    assert!(
        up.status.success(),
        "hack/flux-up.sh: {} {}",
        std::fs::read_to_string(state.join("flux-unavailable")).unwrap_or_default(),
        String::from_utf8_lossy(&up.stderr)
    );
    let git_url = std::fs::read_to_string(state.join("flux-git-url")).unwrap().trim().to_string();
    let work = state.join("work");
    write_repository(&t, &work, &state.join("git/pipeline.git"));

    let source = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "pipeline"},
        "spec": {"url": format!("{git_url}/pipeline.git"), "ref": {"branch": "main"}, "interval": "1h"}});
    let checks: Vec<Value> = ["payments-dev-1-3", "payments-dev-1-4", "payments-test", "payments-prod"]
        .iter()
        .map(|r| json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release", "name": r, "namespace": t.ns}))
        .collect();
    let kustomization = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "pipeline"},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "pipeline"}, "path": "./", "prune": false,
            "interval": "1h", "retryInterval": "5s", "timeout": "5m", "healthChecks": checks}});
    apply_value_as(&t.client, Some(&t.ns), source, "flux-test").await.unwrap();
    apply_value_as(&t.client, Some(&t.ns), kustomization, "flux-test").await.unwrap();
    let ks: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &t.ns, &kustomizations());
    let releases: Api<Release> = Api::namespaced(t.client.clone(), &t.ns);

    // Flux applied the pipeline; the three Releases without a gate roll out, prod waits for a
    // person's approval, and the Kustomization is not Ready while it waits.
    for r in ["payments-dev-1-4", "payments-test"] {
        t.wait_release(r, |s| s.phase == Some(Phase::Healthy)).await;
    }
    t.wait_release("payments-prod", |s| {
        tuskfish::api::find_condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "AwaitingApproval")
    })
    .await;
    // Flux's first health check may have run in the instant before the operator wrote any status
    // (kstatus counts an object with none as current); asked again now that every Release says
    // where it stands, Flux holds the Kustomization: not Ready while prod waits for its approval.
    let at = jiff::Timestamp::now().to_string();
    let again = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": at}}});
    ks.patch("pipeline", &PatchParams::default(), &Patch::Merge(&again)).await.unwrap();
    within(
        "Flux to hold the Kustomization while prod awaits approval",
        await_condition(ks.clone(), "pipeline", |o: Option<&DynamicObject>| o.is_some_and(|o| !ready(o))),
    )
    .await
    .unwrap();

    // maria.keller approves in her own name; prod rolls out, and then the Kustomization is Ready.
    let maria = client_as("maria.keller", &[]).await;
    let approval =
        std::fs::read_to_string(examples().join("40-approvals.yaml")).unwrap().replace("finance", &t.ns);
    for doc in serde_saphyr::from_multiple::<Value>(&approval).unwrap().into_iter().filter(|d| !d.is_null()) {
        apply_value_as(&maria, Some(&t.ns), doc, "kubectl").await.unwrap();
    }
    within(
        "the Kustomization Ready",
        await_condition(ks.clone(), "pipeline", |o: Option<&DynamicObject>| o.is_some_and(ready)),
    )
    .await
    .unwrap();
    let prod = releases.get("payments-prod").await.unwrap();
    assert_eq!(
        prod.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Healthy),
        "Ready before prod was Healthy"
    );

    // Flux reapplies everything: the operator's status and finalizer stay, and the operator owns
    // no field Flux applies.
    let before = releases.get("payments-test").await.unwrap();
    reconcile_now(&ks).await;
    for r in releases.list(&Default::default()).await.unwrap() {
        assert!(r.finalizers().iter().any(|f| f == RELEASE_FINALIZER), "{}: finalizer gone", r.name_any());
        for m in r.managed_fields() {
            let spec = m.fields_v1.as_ref().is_some_and(|f| f.0.get("f:spec").is_some());
            let main = m.subresource.as_deref().unwrap_or_default().is_empty();
            if spec && main {
                assert_eq!(m.manager.as_deref(), Some("kustomize-controller"), "{}: {m:?}", r.name_any());
            }
        }
    }
    let after = releases.get("payments-test").await.unwrap();
    assert_eq!(after.status, before.status, "Flux's reapply changed the operator's status");

    // A deploy through git: the CLI refuses the live edit Flux would revert, commits one line
    // with --git --push, and Flux applies it.
    let kubeconfig = common::kubeconfig();
    let tf = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "-n", t.ns.as_str()];
        all.extend_from_slice(args);
        std::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"))
            .args(all)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let refused = tf(&["deploy", "payments", "1.3.10", "--env", "prod"]);
    assert_eq!(refused.status.code(), Some(7), "{}", String::from_utf8_lossy(&refused.stderr));
    let pushed =
        tf(&["deploy", "payments", "1.3.10", "--env", "prod", "--git", work.to_str().unwrap(), "--push"]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert_eq!(git(&work, &["show", "--numstat", "--format=", "HEAD"]), "1\t1\t30-releases.yaml");
    let approve = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval", "metadata": {"name": "payments-prod-1.3.10"},
        "spec": {"release": "payments-prod", "version": "1.3.10", "approver": "maria.keller", "reason": "CAB-2057"}});
    apply_value_as(&maria, Some(&t.ns), approve, "kubectl").await.unwrap();
    reconcile_now(&Api::namespaced_with(t.client.clone(), &t.ns, &git_repositories())).await;
    reconcile_now(&ks).await;
    within("payments-prod at 1.3.10 through git", async {
        loop {
            let r = releases.get("payments-prod").await.unwrap();
            let s = r.status.unwrap_or_default();
            if r.spec.version.as_deref() == Some("1.3.10") && s.current_version.as_deref() == Some("1.3.10") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
}

/// Asks Flux to reconcile `name` now, and waits until it has.
async fn reconcile_now(api: &Api<DynamicObject>) {
    let at = jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": at}}});
    api.patch("pipeline", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let handled = move |o: Option<&DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["lastHandledReconcileAt"] == at.as_str())
    };
    within("Flux to reconcile", await_condition(api.clone(), "pipeline", handled)).await.unwrap();
}
