#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The web view in a real browser: the seed story from `examples/`, `tuskfish web` serving it, and
//! headless Chromium (Debian's `chromium` + `chromium-driver`, driven over WebDriver) reading the
//! matrix, following a change without reloading, opening a Release's history and the diff view.
//! Screenshots land in `target/tmp/web/`.

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use common::{Proc, TestNs, apply_examples, apply_yaml_file, examples, free_port, wait_listening, within};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use futures::FutureExt;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tuskfish::api::{Environment, Phase, Release};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `program`, logging into the test output, killed when the test ends, pass or fail.
fn spawn(program: &str, args: &[&str], log: &str) -> Proc {
    assert!(
        std::path::Path::new(program).exists(),
        "{program} is missing (`make test` installs Debian's chromium and chromium-driver)"
    );
    common::process(program, args, &output_dir().join(log))
}

async fn browser(driver_port: u16) -> Browser {
    let profile = tempdir("chromium-profile");
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            // As root in a sandbox without a network: no sandbox, no GPU, no calls home.
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,720",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap_or_else(|e| panic!("starting headless Chromium through chromedriver: {e}"))
}

fn tempdir(what: &str) -> PathBuf {
    let dir = output_dir().join(format!("{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `release name → (version, phase)` as the page shows them.
async fn page_cells(b: &Browser) -> BTreeMap<String, (String, String)> {
    let cells = b
        .execute(
            "return Array.from(document.querySelectorAll('td[data-release]'))
                .map(td => [td.dataset.release, td.dataset.version, td.dataset.phase]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value::<Vec<(String, String, String)>>(cells)
        .unwrap()
        .into_iter()
        .map(|(r, v, p)| (r, (v, p)))
        .collect()
}

/// The same, from the API server.
async fn cluster_cells(releases: &Api<Release>) -> BTreeMap<String, (String, String)> {
    releases
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            let name = r.metadata.name.clone().unwrap();
            (
                name,
                (s.current_version.unwrap_or_default(), s.phase.map_or("Pending", Phase::as_str).to_string()),
            )
        })
        .collect()
}

/// The text of the element `css` selects. Read in one script: a live update may replace the
/// element between a WebDriver find and a separate read.
async fn text_of(b: &Browser, css: &str) -> String {
    let text = b
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    text.as_str().unwrap_or_else(|| panic!("nothing matches {css}")).to_string()
}

/// Clicks the element `css` selects, retrying when a live update replaced it mid-way or the page
/// has not shown it yet (a page served while its process's caches still list comes back with it).
async fn click(b: &Browser, css: &str) {
    use fantoccini::error::{CmdError, ErrorStatus};
    let retry = |e: &CmdError| matches!(e, CmdError::Standard(e) if matches!(e.error, ErrorStatus::StaleElementReference | ErrorStatus::NoSuchElement));
    for _ in 0..100 {
        let clicked = match b.find(Locator::Css(css)).await {
            Ok(element) => element.click().await,
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if retry(&e) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("{css} never shown, or kept being replaced");
}

async fn screenshot(b: &Browser, name: &str) -> PathBuf {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: not a real screenshot");
    let path = output_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Polls the page (the browser, not the API server) until `cond` holds.
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The status line the web view answers `method path` with.
async fn status_line(port: u16, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_pipeline_page_in_a_real_browser() {
    let t = TestNs::new("web").await;
    apply_examples(&t.client).await;
    let releases: Api<Release> = Api::namespaced(t.client.clone(), "finance");

    let web_port = free_port();
    let addr = format!("127.0.0.1:{web_port}");
    let kubeconfig = common::kubeconfig();
    let _web = spawn(
        env!("CARGO_BIN_EXE_tuskfish"),
        &["--kubeconfig", &kubeconfig, "-n", "finance", "web", "--addr", &addr],
        "tuskfish-web.log",
    );
    let driver_port = free_port();
    let _driver = spawn(CHROMEDRIVER, &[&format!("--port={driver_port}")], "chromedriver.log");
    wait_listening(web_port, "tuskfish web listening").await;
    wait_listening(driver_port, "chromedriver listening").await;
    let b = browser(driver_port).await;
    // The browser is closed however the scenario ends: a panic must not leave Chromium running.
    let outcome = AssertUnwindSafe(scenario(&t, &b, web_port, &releases)).catch_unwind().await;
    let _ = b.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(t: &TestNs, b: &Browser, web_port: u16, releases: &Api<Release>) {
    let base = format!("http://127.0.0.1:{web_port}");

    // The matrix shows what the cluster says, environments in pipeline order.
    b.goto(&format!("{base}/ns/finance")).await.unwrap();
    until("the page shows the cluster's Releases", || async {
        let want = cluster_cells(releases).await;
        want.len() == 4 && page_cells(b).await == want && want.values().all(|(_, p)| p == "Healthy")
    })
    .await;
    let headers: Vec<String> = serde_json::from_value(
        b.execute(
            "return Array.from(document.querySelectorAll('thead th[data-env]')).map(th => th.dataset.env);",
            vec![],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let envs =
        Api::<Environment>::namespaced(t.client.clone(), "finance").list(&Default::default()).await.unwrap();
    let rels = releases.list(&Default::default()).await.unwrap();
    assert_eq!(headers, tuskfish::matrix::pipeline_order(&envs.items, &rels.items));
    assert_eq!(headers, ["dev-1-3", "dev-1-4", "test", "prod"]);
    assert!(text_of(b, r#"td[data-release="payments-dev-1-4"]"#).await.contains("forward-port missing"));
    assert!(text_of(b, r#"th[data-env="prod"]"#).await.contains("approval"));
    screenshot(b, "pipeline.png").await;

    // A change in the cluster reaches the open page without a reload.
    b.execute("window.tuskfishMarker = 'same page';", vec![]).await.unwrap();
    let patch = json!({"spec": {"version": "1.3.10"}});
    releases.patch("payments-prod", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let prod = r#"td[data-release="payments-prod"]"#;
    until("the prod cell shows the approval gate", || async {
        text_of(b, prod).await.contains("1.3.10 awaiting approval")
    })
    .await;
    screenshot(b, "pipeline-awaiting-approval.png").await;
    apply_yaml_file(&t.client, &examples().join("demo/60-approve-prod-1.3.10.yaml")).await;
    until("the prod cell shows the approved hotfix running", || async {
        page_cells(b).await.get("payments-prod") == Some(&("1.3.10".into(), "Healthy".into()))
    })
    .await;
    let marker = b.execute("return window.tuskfishMarker;", vec![]).await.unwrap();
    assert_eq!(marker, Value::from("same page"), "the page was reloaded instead of updated");
    let updates = b.execute("return Number(document.body.dataset.updates);", vec![]).await.unwrap();
    assert!(updates.as_u64().unwrap() >= 2, "updates pushed: {updates}");
    assert!(text_of(b, "#live-status").await.starts_with("live"));

    // A cell opens the Release: history with the approver, change ids with their titles.
    click(b, &format!("{prod} a")).await;
    until("the Release page", || async {
        b.current_url().await.unwrap().path() == "/ns/finance/releases/payments-prod"
    })
    .await;
    assert_eq!(text_of(b, "h1").await, "payments in prod");
    let history = text_of(b, "table.history").await;
    assert!(history.contains("1.3.10") && history.contains("approved by"), "{history}");
    let changes = text_of(b, "table.changes").await;
    assert!(changes.contains("FIN-142"), "{changes}");
    screenshot(b, "release.png").await;

    // The diff view: dev-1-3 has the FX fix that dev-1-4's build lacks.
    b.goto(&format!("{base}/ns/finance/diff?a=dev-1-3&b=dev-1-4")).await.unwrap();
    let row = text_of(b, r#"table.diff tr[data-app="payments"]"#).await;
    assert!(row.contains("FIN-142") && row.contains("not forward-ported"), "{row}");
    screenshot(b, "diff.png").await;

    // The audit page: prod's records with the approver the API server verified, and the weekly
    // chart of deploys and lead time drawn inline.
    b.goto(&format!("{base}/ns/finance/audit?env=prod")).await.unwrap();
    assert_eq!(text_of(b, "h1").await, "Audit · finance");
    let records = text_of(b, "table.records").await;
    assert!(
        records.contains("1.3.10") && records.contains("maria.keller") && records.contains("Approval"),
        "{records}"
    );
    let figures = text_of(b, "table.figures").await;
    assert!(figures.contains("prod") && figures.contains("payments"), "{figures}");
    let bars =
        b.execute("return document.querySelectorAll('figure.chart svg rect').length;", vec![]).await.unwrap();
    assert!(bars.as_u64().is_some_and(|n| n >= 12), "a bar per week over 90 days: {bars}");
    screenshot(b, "audit.png").await;
    assert_eq!(
        status_line(web_port, "GET", "/ns/finance/audit?days=nonsense").await,
        "HTTP/1.1 404 Not Found"
    );

    // Pages themselves never write: their forms are GETs, and other methods are refused.
    let forms = b.execute("return Array.from(document.forms).map(f => f.method);", vec![]).await.unwrap();
    assert_eq!(forms, json!(["get"]));
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        assert_eq!(
            status_line(web_port, method, "/ns/finance").await,
            "HTTP/1.1 405 Method Not Allowed",
            "{method}"
        );
    }

    // One click: a cell's "act…" opens the confirmation (versions and what each brings, the
    // gates); a deploy there acts as the person running `tuskfish web`, and the page follows.
    b.goto(&format!("{base}/ns/finance")).await.unwrap();
    click(b, r#"td[data-release="payments-dev-1-3"] a.act"#).await;
    until("the action page", || async { b.current_url().await.unwrap().path() == "/ns/finance/act" }).await;
    assert_eq!(text_of(b, "h1").await, "payments in dev-1-3");
    assert!(text_of(b, "dl.summary").await.contains("version line ~1.3"));
    screenshot(b, "act.png").await;
    // The preview: a dry run against the live objects, then the same button.
    click(b, r#"tr[data-version="1.3.9"] a.preview"#).await;
    until("the preview", || async { text_of(b, "h1").await == "Preview: deploy payments 1.3.9 to dev-1-3" })
        .await;
    let preview = text_of(b, "pre.preview").await;
    assert!(preview.contains("dry run: payments-dev-1-3 in dev-1-3 from 1.3.10 to 1.3.9"), "{preview}");
    assert!(
        preview.contains("update Deployment/payments") && preview.contains("change ids that leave"),
        "{preview}"
    );
    screenshot(b, "preview.png").await;
    assert_eq!(
        releases.get("payments-dev-1-3").await.unwrap().spec.version,
        None,
        "a preview changes nothing"
    );
    click(b, "form.act button").await;
    until("the action is done", || async {
        text_of(b, "h1").await == "Done: deploy payments 1.3.9 to dev-1-3"
    })
    .await;
    assert!(text_of(b, "ul.done").await.contains("deploying 1.3.9 to dev-1-3"));
    let pinned = releases.get("payments-dev-1-3").await.unwrap();
    assert_eq!(pinned.spec.version.as_deref(), Some("1.3.9"));
    b.goto(&format!("{base}/ns/finance")).await.unwrap();
    until("the page follows the deploy", || async {
        page_cells(b).await.get("payments-dev-1-3") == Some(&("1.3.9".into(), "Healthy".into()))
    })
    .await;

    // A form without this process's token acts on nothing.
    let forged = "action=deploy&app=payments&env=dev-1-3&version=1.3.10";
    assert_eq!(post_form(web_port, "/ns/finance/act", forged).await, "HTTP/1.1 403 Forbidden");
    let with_wrong = format!("{forged}&token={}", "0".repeat(64));
    assert_eq!(post_form(web_port, "/ns/finance/act", &with_wrong).await, "HTTP/1.1 403 Forbidden");
    assert_eq!(releases.get("payments-dev-1-3").await.unwrap().spec.version.as_deref(), Some("1.3.9"));
    strangers_act_on_nothing(web_port, releases).await;
    story_board_and_graph_match_the_cluster(t, b, &base, releases).await;
    acting_without_rbac(t, b).await;
    approving_with_a_quorum(t, b, releases).await;
}

/// The story board's cells and the graph's boxes and arrows say what the cluster says.
async fn story_board_and_graph_match_the_cluster(
    t: &TestNs,
    b: &Browser,
    base: &str,
    releases: &Api<Release>,
) {
    b.goto(&format!("{base}/ns/finance/changes")).await.unwrap();
    let rels = releases.list(&Default::default()).await.unwrap().items;
    for r in &rels {
        let env = &r.spec.environment;
        let changes = r.status.as_ref().map(|s| s.changes.clone()).unwrap_or_default();
        for id in ["FIN-142", "FIN-150"] {
            let cell = text_of(b, &format!(r#"tr[data-change="{id}"] td[data-env="{env}"]"#)).await;
            let runs = changes.iter().any(|c| c == id);
            assert_eq!(cell.starts_with('✓'), runs, "{id} in {env}: page says {cell:?}, cluster {changes:?}");
            assert_eq!(cell == "missing", !runs, "{id} in {env}: {cell:?}");
        }
    }
    screenshot(b, "story-board.png").await;
    b.goto(&format!("{base}/ns/finance")).await.unwrap();
    let drawn = b
        .execute(
            "return [Array.from(document.querySelectorAll('svg.graph g.node')).map(g => g.dataset.env).sort(),
                     Array.from(document.querySelectorAll('svg.graph g.edge')).map(g => g.dataset.from + '>' + g.dataset.to).sort()];",
            vec![],
        )
        .await
        .unwrap();
    let envs =
        Api::<Environment>::namespaced(t.client.clone(), "finance").list(&Default::default()).await.unwrap();
    let mut names: Vec<String> = envs.items.iter().map(|e| e.metadata.name.clone().unwrap()).collect();
    names.sort();
    let mut edges: Vec<String> = rels
        .iter()
        .filter_map(|r| Some(format!("{}>{}", r.spec.promote_from.as_ref()?.environment, r.spec.environment)))
        .collect();
    edges.sort();
    edges.dedup();
    assert_eq!(drawn, json!([names, edges]));
}

/// Two approvers, each in their own `tuskfish web`: the first approval leaves one more needed, the
/// second lets the version roll out.
async fn approving_with_a_quorum(t: &TestNs, b: &Browser, releases: &Api<Release>) {
    let policy = json!({"spec": {"approvalPolicy": {"minApprovals": 2}}});
    Api::<Environment>::namespaced(t.client.clone(), "finance")
        .patch("prod", &PatchParams::default(), &Patch::Merge(&policy))
        .await
        .unwrap();
    let deploy = json!({"spec": {"version": "1.3.9"}});
    releases.patch("payments-prod", &PatchParams::default(), &Patch::Merge(&deploy)).await.unwrap();
    let kubeconfig = common::kubeconfig();
    let mut servers = Vec::new();
    for who in ["maria.keller", "li.wei"] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let args = [
            "--kubeconfig",
            &kubeconfig,
            "--as",
            who,
            "--as-group",
            common::APPROVERS_GROUP,
            "-n",
            "finance",
            "web",
            "--addr",
            &addr,
        ];
        servers
            .push((spawn(env!("CARGO_BIN_EXE_tuskfish"), &args, &format!("tuskfish-web-{who}.log")), addr));
        wait_listening(port, "an approver's tuskfish web listening").await;
    }
    for (i, (_, addr)) in servers.iter().enumerate() {
        b.goto(&format!("http://{addr}/ns/finance/act?app=payments&env=prod")).await.unwrap();
        until("the approval form", || async { text_of(b, "main").await.contains("Approve 1.3.9") }).await;
        b.find(Locator::Css(r#"form.act input[name="reason"]"#))
            .await
            .unwrap()
            .send_keys("CAB-2060")
            .await
            .unwrap();
        click(b, "form.act:has(input[value=approve]) button").await;
        until("the approval is done", || async {
            text_of(b, "h1").await == "Done: approve payments 1.3.9 for prod"
        })
        .await;
        if i == 0 {
            let held = t
                .wait_for_in::<Release>("finance", "payments-prod", |r| {
                    r.status.as_ref().is_some_and(|s| {
                        tuskfish::api::find_condition(&s.conditions, "Held")
                            .is_some_and(|c| c.message.contains("1 of 2 approvals"))
                    })
                })
                .await;
            assert_eq!(held.status.unwrap().current_version.as_deref(), Some("1.3.10"));
        }
    }
    let r = t
        .wait_for_in::<Release>("finance", "payments-prod", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.current_version.as_deref() == Some("1.3.9") && s.phase == Some(Phase::Healthy)
            })
        })
        .await;
    let note = r.status.unwrap().history[0].message.clone().unwrap_or_default();
    assert!(note.contains("maria.keller") && note.contains("li.wei"), "{note}");
}

/// Someone whose RBAC only lets them look: the action is refused by the API server, and the page
/// says so.
async fn acting_without_rbac(t: &TestNs, b: &Browser) {
    for doc in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer", "namespace": "finance"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "viewer", "namespace": "finance"},
            "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["environments", "releases", "appversions", "approvals"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "viewer", "namespace": "finance"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "finance"}]}),
    ] {
        common::apply_value(&t.client, None, doc).await.unwrap();
    }
    let kubeconfig = common::service_account_kubeconfig(&t.client, "finance", "viewer").await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _web = spawn(
        env!("CARGO_BIN_EXE_tuskfish"),
        &["--kubeconfig", kubeconfig.to_str().unwrap(), "-n", "finance", "web", "--addr", &addr],
        "tuskfish-web-viewer.log",
    );
    wait_listening(port, "the viewer's tuskfish web listening").await;
    // Served as soon as it listens: until its caches have listed, the page has no versions yet.
    let page = format!("http://{addr}/ns/finance/act?app=payments&env=prod");
    until("the viewer's page lists the versions", || async {
        b.goto(&page).await.unwrap();
        let found = b
            .execute(
                "return document.querySelector(arguments[0]) !== null;",
                vec![json!(r#"tr[data-version="1.3.9"] button"#)],
            )
            .await
            .unwrap();
        found.as_bool() == Some(true)
    })
    .await;
    click(b, r#"tr[data-version="1.3.9"] button"#).await;
    until("the refusal is shown", || async {
        text_of(b, "h1").await.starts_with("Not done: deploy payments 1.3.9 to prod")
    })
    .await;
    let why = text_of(b, "p.error").await;
    assert!(why.contains("not allowed") && why.contains("system:serviceaccount:finance:viewer"), "{why}");
    screenshot(b, "act-refused.png").await;
}

/// POSTs a URL-encoded form; the status line of the answer.
async fn post_form(port: u16, path: &str, body: &str) -> String {
    let answer = raw(port, &form_request(path, "localhost", &[], body)).await;
    answer.lines().next().unwrap_or_default().to_string()
}

/// A POST of a URL-encoded form to `host`, with `headers` (`Name: value` lines).
fn form_request(path: &str, host: &str, headers: &[String], body: &str) -> String {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one HTTP/1.1 request as written; the whole answer.
async fn raw(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    response
}

/// A GET of `path` for `host` (with `cookie`, if any): the whole answer.
async fn get_as(port: u16, path: &str, host: &str, cookie: Option<&str>) -> String {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    raw(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n")).await
}

/// The session cookie an answer sets (`name=value`), and the form token of its page.
fn session_and_token(answer: &str) -> (String, String) {
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {answer}"))
        .to_string();
    let at = answer.find(r#"name="token" value=""#).unwrap_or_else(|| panic!("no token: {answer}"));
    let token = answer[at + r#"name="token" value=""#.len()..].split('"').next().unwrap().to_string();
    (cookie, token)
}

/// DNS rebinding and stolen tokens: a page of another site whose name resolves to 127.0.0.1
/// reaches the view but is refused before any page (so it never sees a token), a POST from
/// another origin acts on nothing, and a token acts only with the session it was made for.
async fn strangers_act_on_nothing(port: u16, releases: &Api<Release>) {
    let page = "/ns/finance/act?app=payments&env=dev-1-3";
    let rebound = get_as(port, page, &format!("rebind.attacker.example:{port}"), None).await;
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    assert!(!rebound.contains("token"), "a token was served to a foreign host: {rebound}");
    let mine = get_as(port, page, "localhost", None).await;
    assert!(mine.starts_with("HTTP/1.1 200"), "{mine}");
    let (cookie, token) = session_and_token(&mine);
    let (other_cookie, _) = session_and_token(&get_as(port, page, "localhost", None).await);
    let deploy = format!("action=deploy&app=payments&env=dev-1-3&version=1.3.10&token={token}");
    let post = |host: &str, headers: Vec<String>| form_request("/ns/finance/act", host, &headers, &deploy);
    let cases = [
        ("the token of another session", post("localhost", vec![format!("Cookie: {other_cookie}")])),
        ("no session at all", post("localhost", vec![])),
        (
            "another site's form",
            post("localhost", vec![format!("Cookie: {cookie}"), "Origin: http://attacker.example".into()]),
        ),
        (
            "a cross-site fetch",
            post("localhost", vec![format!("Cookie: {cookie}"), "Sec-Fetch-Site: cross-site".into()]),
        ),
        ("a rebound name", post("rebind.attacker.example", vec![format!("Cookie: {cookie}")])),
    ];
    for (what, request) in cases {
        let answer = raw(port, &request).await;
        let status = answer.lines().next().unwrap_or_default();
        assert!(status.starts_with("HTTP/1.1 403") || status.starts_with("HTTP/1.1 421"), "{what}: {answer}");
    }
    assert_eq!(releases.get("payments-dev-1-3").await.unwrap().spec.version.as_deref(), Some("1.3.9"));
}
