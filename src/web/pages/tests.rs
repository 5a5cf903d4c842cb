use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{
    AppVersionSpec, FreezeWindow, HistoryEntry, ReleaseSpec, ReleaseStatus, RolloutResult, Tier,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

use crate::api::fixtures::{condition, environment as env};

fn entry(version: &str, result: RolloutResult, message: Option<&str>) -> HistoryEntry {
    HistoryEntry {
        rollback_of: None,
        version: version.into(),
        started_at: Time(ts("2026-11-25T10:31:00Z")),
        finished_at: Some(Time(ts("2026-11-25T10:32:00Z"))),
        result,
        message: message.map(Into::into),
        approvers: Vec::new(),
        held: None,
        requester: Default::default(),
        generation: None,
    }
}

fn release_of(app: &str, env: &str, status: ReleaseStatus) -> Release {
    let mut r = Release::new(
        &format!("{app}-{env}"),
        ReleaseSpec {
            app: app.into(),
            environment: env.into(),
            version: Some("1.3.9".into()),
            ..Default::default()
        },
    );
    r.metadata.namespace = Some("finance".into());
    r.status = Some(status);
    r
}

fn healthy(version: &str) -> ReleaseStatus {
    ReleaseStatus {
        phase: Some(Phase::Healthy),
        current_version: Some(version.into()),
        changes: vec!["FIN-101".into()],
        history: vec![entry(version, RolloutResult::Succeeded, Some("approved by maria.keller: CAB-7"))],
        ..Default::default()
    }
}

fn app_version(app: &str, version: &str, title: &str) -> AppVersion {
    let mut av = AppVersion::new(
        &format!("{app}-{version}"),
        AppVersionSpec {
            app: app.into(),
            version: version.into(),
            changes: vec![Change {
                id: "FIN-101".into(),
                title: Some(title.into()),
                type_: Some("story".into()),
            }],
            ..Default::default()
        },
    );
    av.metadata.namespace = Some("finance".into());
    av
}

fn snapshot() -> Snapshot {
    let mut prod = env("prod", Tier::Prod);
    prod.spec.approval = Some(crate::api::ApprovalPolicy::Required);
    prod.spec.freeze_windows = vec![FreezeWindow {
        start: Some("2026-11-25T00:00:00Z".into()),
        end: Some("2026-11-26T00:00:00Z".into()),
        reason: Some("month-end close".into()),
        ..Default::default()
    }];
    let held = ReleaseStatus {
        held_version: Some("1.3.10".into()),
        conditions: vec![condition("Held", "True", "AwaitingApproval", "1.3.10 needs an Approval")],
        ..healthy("1.3.9")
    };
    Snapshot {
        namespace: "finance".into(),
        actions: false,
        environments: vec![prod, env("dev", Tier::Dev)],
        releases: vec![
            release_of("payments", "dev", healthy("1.3.10")),
            release_of("payments", "prod", held),
        ],
        app_versions: vec![app_version("payments", "1.3.9", "<script>alert('x')</script> FX rounding")],
        products: vec![],
    }
}

const NOW: &str = "2026-11-25T12:00:00Z";

#[test]
fn matrix_cells_in_pipeline_order_with_gates() {
    let html = pipeline(&snapshot(), ts(NOW)).body.into_string();
    let dev = html.find(r#"data-env="dev""#).unwrap();
    let prod = html.find(r#"data-env="prod""#).unwrap();
    assert!(dev < prod, "dev comes before prod: {html}");
    for expected in [
        r#"data-release="payments-dev" data-app="payments" data-env="dev" data-version="1.3.10" data-phase="Healthy""#,
        r#"href="/ns/finance/releases/payments-prod""#,
        "1.3.10 awaiting approval",
        "frozen until 2026-11-26T00:00:00Z (month-end close)",
        r#"class="cell busy""#,
        r#"class="cell good""#,
        "payments in prod: 1.3.10 needs an Approval",
        r#"<time datetime="2026-11-25T10:31:00Z">rolled out 2026-11-25 10:31 UTC</time>"#,
        r#"<option value="dev" selected>dev</option>"#,
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
}

#[test]
fn the_frozen_badge_goes_when_the_window_ends() {
    let html = pipeline(&snapshot(), ts("2026-11-27T00:00:00Z")).body.into_string();
    assert!(!html.contains("frozen"), "{html}");
}

#[test]
fn empty_namespace_says_so() {
    let s = Snapshot { namespace: "nobody".into(), ..Default::default() };
    let html = pipeline(&s, ts(NOW)).body.into_string();
    assert!(html.contains("No Environments in namespace <code>nobody</code> yet."), "{html}");
}

#[test]
fn release_page_has_history_and_change_ids_escaped() {
    let r = release(&snapshot(), "payments-prod");
    assert!(r.found);
    let html = r.body.into_string();
    for expected in [
        "payments in prod",
        "pinned to 1.3.9",
        "awaiting approval: 1.3.10 needs an Approval",
        "<code>FIN-101</code>",
        "&lt;script&gt;alert('x')&lt;/script&gt; FX rounding",
        "approved by maria.keller: CAB-7",
        r#"<span class="change" title="&lt;script&gt;alert('x')&lt;/script&gt; FX rounding">FIN-101</span>"#,
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    assert!(!html.contains("<script>"), "{html}");
    assert!(!release(&snapshot(), "nope").found);
}

#[test]
fn release_page_lists_the_verification_checks() {
    let mut s = snapshot();
    let status = s.releases[0].status.get_or_insert_with(Default::default);
    status.verification = Some(crate::api::VerificationStatus {
        run: "1.3.10 rollout t".into(),
        version: "1.3.10".into(),
        result: crate::api::VerificationResult::Failed,
        finished_at: None,
        checks: vec![crate::api::CheckStatus {
            name: "smoke".into(),
            result: crate::api::VerificationResult::Failed,
            message: "Job smoke-1 failed: <b>exit 1</b>".into(),
        }],
    });
    let html = release(&s, "payments-dev").body.into_string();
    for expected in [
        "Verification of 1.3.10: Failed",
        r#"<tr class="bad"><td>smoke</td><td>Failed</td><td>Job smoke-1 failed: &lt;b&gt;exit 1&lt;/b&gt;</td></tr>"#,
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
}

#[test]
fn the_story_board_shows_where_each_change_runs_and_filters() {
    let mut s = snapshot();
    s.releases[0].status.as_mut().unwrap().changes = vec!["FIN-101".into()];
    s.releases[1].status.as_mut().unwrap().changes = vec![];
    s.app_versions.push(app_version("payments", "1.3.10", "Instant payouts"));
    let html = changes_page(&s, &ChangesFilter::default(), ts(NOW)).body.into_string();
    for expected in [
        r#"<tr data-change="FIN-101">"#,
        r#"<td class="good" data-env="dev" title="since 2026-11-25T10:32:00Z">✓ 1.3.10"#,
        r#"<td class="bad" data-env="prod">missing</td>"#,
        "&lt;script&gt;",
        r#"<option value="story">story</option>"#,
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    assert!(!html.contains("<script>alert"), "{html}");
    let only_bugs = ChangesFilter { type_: Some("bug".into()), ..Default::default() };
    let html = changes_page(&s, &only_bugs, ts(NOW)).body.into_string();
    assert!(html.contains("No change ids match"), "{html}");
    assert!(pipeline(&s, ts(NOW)).body.into_string().contains(r#"href="/ns/finance/changes""#));
}

#[test]
fn the_action_page_confirms_with_versions_gates_and_change_ids() {
    let mut s = snapshot();
    s.actions = true;
    s.app_versions.push(app_version("payments", "1.3.10", "Instant payouts"));
    s.app_versions[1].spec.changes.push(Change {
        id: "FIN-142".into(),
        title: None,
        type_: Some("bug".into()),
    });
    let cells = pipeline(&s, ts(NOW)).body.into_string();
    assert!(cells.contains(r#"href="/ns/finance/act?app=payments&amp;env=prod""#), "{cells}");
    let html = action_page(&s, "payments", "prod", "t0ken", ts(NOW)).body.into_string();
    for expected in [
        "payments in prod",
        "approval required",
        "frozen until 2026-11-26T00:00:00Z (month-end close)",
        r#"<tr data-version="1.3.10"><td>1.3.10</td><td>FIN-142</td>"#,
        r#"<input type="hidden" name="token" value="t0ken">"#,
        r#"<input type="hidden" name="action" value="deploy"><input type="hidden" name="app" value="payments"><input type="hidden" name="env" value="prod"><input type="hidden" name="version" value="1.3.10">"#,
        "Approve 1.3.10",
        "Reject 1.3.10",
        "Promote 1.3.10 from dev",
        "Unfreeze prod",
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    assert!(!action_page(&s, "payments", "nowhere", "t", ts(NOW)).found);
    let done =
        action_result("finance", "deploy payments 1.3.10 to prod", &Err("not allowed: <b>rbac</b>".into()));
    assert!(
        done.body
            .into_string()
            .contains(r#"<p class="error" role="alert">not allowed: &lt;b&gt;rbac&lt;/b&gt;</p>"#)
    );
    // Read-only views have no action links.
    s.actions = false;
    assert!(!pipeline(&s, ts(NOW)).body.into_string().contains("/act?"));
}

#[test]
fn diff_page_compares_and_names_unknown_environments() {
    let html = diff_page(&snapshot(), None, None, ts(NOW)).body.into_string();
    assert!(html.contains("Difference dev → prod"), "defaults to the first two in pipeline order: {html}");
    assert!(html.contains(r#"<tr class="differs" data-app="payments">"#), "{html}");
    let html = diff_page(&snapshot(), Some("dev"), Some("nowhere"), ts(NOW)).body.into_string();
    assert!(html.contains("No Environment named nowhere in namespace finance."), "{html}");
}

#[test]
fn document_is_live_only_when_asked() {
    let page = Page::Pipeline { namespace: "finance".into() };
    let r = pipeline(&snapshot(), ts(NOW));
    let live = document(&page, &r, true).into_string();
    assert!(live.contains(r#"<main id="live" data-events="/events/ns/finance">"#), "{live}");
    assert!(live.contains(r#"<script src="/assets/live.js" defer></script>"#));
    let still = document(&page, &r, false).into_string();
    assert!(!still.contains("data-events"), "{still}");
}

#[test]
fn index_lists_pipelines() {
    let html =
        index(&[Pipeline { namespace: "finance".into(), environments: 4, releases: 5 }]).body.into_string();
    assert!(
        html.contains(r#"<a href="/ns/finance"><code>finance</code></a> — 4 environments, 5 releases"#),
        "{html}"
    );
    assert!(index(&[]).body.into_string().contains("No Environments yet"));
}

#[test]
fn release_page_names_the_chart_its_digest_and_the_identity() {
    let mut s = snapshot();
    let av = &mut s.app_versions[0];
    av.spec.helm = Some(crate::api::HelmChart {
        repository: "oci://registry.example.com/charts".into(),
        chart: "payments".into(),
        version: "1.3.9".into(),
        ..Default::default()
    });
    av.status = Some(crate::api::AppVersionStatus {
        chart_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        ..Default::default()
    });
    s.environments[0].spec.service_account_name = Some("deployer".into());
    let html = release(&s, "payments-prod").body.into_string();
    for expected in [
        "<dt>Chart</dt><dd>payments 1.3.9 from oci://registry.example.com/charts (sha256:abababababab)</dd>",
        "<dt>Deploys as</dt><dd>ServiceAccount deployer</dd>",
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    // Without a chart or an identity, neither line.
    let plain = release(&snapshot(), "payments-prod").body.into_string();
    assert!(!plain.contains("<dt>Chart</dt>") && !plain.contains("Deploys as"), "{plain}");
}

#[test]
fn an_environment_in_another_cluster_shows_it_and_whether_it_answers() {
    let mut s = snapshot();
    let prod = &mut s.environments[0];
    assert_eq!(prod.name_any(), "prod");
    prod.spec.cluster = Some(crate::api::ClusterRef {
        name: Some("prod-eu".into()),
        kube_config_secret_ref: Some(crate::api::KubeconfigSecretRef {
            name: "prod".into(),
            key: "kubeconfig".into(),
        }),
        agent: None,
    });
    let reachable = pipeline(&s, ts(NOW)).body.into_string();
    assert!(
        reachable.contains(
            r#"<span class="badge cluster" title="Runs in cluster prod-eu">cluster prod-eu</span>"#
        ),
        "{reachable}"
    );
    assert!(!reachable.contains("unreachable"), "{reachable}");
    let page = release(&s, "payments-prod").body.into_string();
    assert!(page.contains("<dt>Cluster</dt><dd>prod-eu</dd>"), "{page}");

    s.environments[0].status = Some(crate::api::EnvironmentStatus {
        conditions: vec![condition(
            "Ready",
            "False",
            "ClusterUnreachable",
            "cluster prod-eu cannot be reached (connection refused)",
        )],
        ..Default::default()
    });
    let down = pipeline(&s, ts(NOW)).body.into_string();
    assert!(
        down.contains(r#"<span class="badge unreachable" title="ClusterUnreachable: cluster prod-eu cannot be reached (connection refused)">unreachable</span>"#),
        "{down}"
    );
    let page = release(&s, "payments-prod").body.into_string();
    assert!(
        page.contains("<dt>Cluster</dt><dd>prod-eu — ClusterUnreachable: cluster prod-eu cannot be reached"),
        "{page}"
    );
    // In the operator's own cluster: no badge, no line.
    let plain = pipeline(&snapshot(), ts(NOW)).body.into_string();
    assert!(!plain.contains("badge cluster"), "{plain}");
}

#[test]
fn the_pipeline_page_lists_its_products_with_their_apps() {
    use crate::api::{ProductAppStatus, ProductRelease, ProductReleaseSpec, ProductReleaseStatus};
    let mut s = snapshot();
    let mut p = ProductRelease::new(
        "platform-prod",
        ProductReleaseSpec { product: "platform".into(), environment: "prod".into(), ..Default::default() },
    );
    p.status = Some(ProductReleaseStatus {
        current_version: Some("1.3.10".into()),
        phase: Some(Phase::Healthy),
        apps: vec![ProductAppStatus {
            app: "ledger<b>".into(),
            version: "1.3.4".into(),
            release: "platform-prod.ledger".into(),
            phase: Some(Phase::Healthy),
            current_version: Some("1.3.4".into()),
        }],
        ..Default::default()
    });
    s.products = vec![p];
    let html = pipeline(&s, ts(NOW)).body.into_string();
    assert!(
        html.contains("<th scope=\"row\">platform</th><td>prod</td><td>1.3.10</td><td>Healthy</td>"),
        "{html}"
    );
    assert!(html.contains("ledger&lt;b&gt; 1.3.4 Healthy"), "names are escaped: {html}");
    // Without products, no table.
    assert!(!pipeline(&snapshot(), ts(NOW)).body.into_string().contains("table class=\"products\""));
}
