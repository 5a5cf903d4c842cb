//! The web view: the pipeline graph and matrix, a Release's history and change ids, the difference
//! between two environments and the story board, drawn from watch caches (the operator's own, or
//! those of `tuskfish web`) and pushed to open pages with server-sent events. Every page is a GET
//! that reads a cache. Only `tuskfish web`, run by a person, adds [`actions`]: POSTs carried out
//! with that person's credentials; the operator's view has none.

pub mod actions;
mod audit;
mod graph;
pub mod guard;
mod live;
pub mod page;
pub mod pages;
mod source;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use kube::runtime::reflector::Store;

use crate::api::{AppVersion, Environment, ProductRelease, Release};
pub use page::Page;
use pages::{Rendered, Snapshot};
pub use source::watch;

/// What the pages are drawn from: caches and a counter bumped on every change to them.
#[derive(Clone)]
pub struct View {
    pub environments: Store<Environment>,
    pub releases: Store<Release>,
    pub app_versions: Store<AppVersion>,
    /// Products in Environments (not waited for: a cluster without the kind still has a view).
    pub product_releases: Store<ProductRelease>,
    pub revision: tokio::sync::watch::Receiver<u64>,
    /// Which objects each namespace holds, so a page reads its pipeline only.
    pub index: std::sync::Arc<crate::index::PipelineIndex>,
    /// The write actions, when a person runs the view (`tuskfish web`); `None` in the operator.
    pub actions: Option<std::sync::Arc<actions::Actions>>,
    /// Host names besides IP addresses and `localhost` that requests may be sent to.
    pub allowed_hosts: std::sync::Arc<[String]>,
    /// Reads what no cache keeps (the audit page's Ledgers), with the rights of whoever runs the
    /// view (`None`: the page says it cannot).
    pub client: Option<kube::Client>,
}

impl View {
    /// The pipeline as the operator's caches see it.
    pub fn of(operator: &crate::controller::Operator) -> Self {
        let s = operator.stores();
        Self {
            environments: s.environments.clone(),
            releases: s.releases.clone(),
            app_versions: s.app_versions.clone(),
            product_releases: s.product_releases.clone(),
            revision: operator.revision(),
            index: operator.index(),
            actions: None,
            allowed_hosts: std::sync::Arc::new([]),
            client: Some(operator.client()),
        }
    }

    /// True once every cache has its first full list (an empty page before that would lie).
    pub async fn ready(&self) -> bool {
        let (e, r, a) = futures::join!(
            self.environments.wait_until_ready(),
            self.releases.wait_until_ready(),
            self.app_versions.wait_until_ready()
        );
        e.is_ok() && r.is_ok() && a.is_ok()
    }

    /// One namespace's objects as cached now.
    pub fn snapshot(&self, namespace: &str) -> Snapshot {
        let (environments, releases, app_versions) = self.index.members(namespace);
        Snapshot {
            namespace: namespace.to_string(),
            actions: self.actions.is_some(),
            environments: in_namespace(&self.environments, namespace, environments),
            releases: in_namespace(&self.releases, namespace, releases),
            app_versions: in_namespace(&self.app_versions, namespace, app_versions),
            products: in_namespace(
                &self.product_releases,
                namespace,
                self.index.products.releases_in_namespace(namespace),
            ),
        }
    }

    /// Changes whenever what `page` shows may have changed (`None`: it shows every namespace).
    pub fn revision_of(&self, page: &Page) -> Option<u64> {
        page.namespace().map(|ns| self.index.revision(ns))
    }

    /// The page as of now.
    pub fn render(&self, page: &Page, now: Timestamp) -> Rendered {
        match page {
            Page::Index => pages::index(&self.index.pipelines()),
            Page::Pipeline { namespace } => pages::pipeline(&self.snapshot(namespace), now),
            Page::Release { namespace, name } => pages::release(&self.snapshot(namespace), name),
            Page::Diff { namespace, a, b } => {
                pages::diff_page(&self.snapshot(namespace), a.as_deref(), b.as_deref(), now)
            }
            Page::Changes { namespace, filter } => {
                pages::changes_page(&self.snapshot(namespace), filter, now)
            }
            // Read when asked (see `page`): never followed live.
            Page::Audit { .. } => pages::not_found("The audit page does not follow changes: reload it."),
        }
    }
}

fn in_namespace<K>(store: &Store<K>, namespace: &str, names: Vec<String>) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    crate::controller::cached(store, namespace, names).into_iter().map(|o| (*o).clone()).collect()
}

/// How long a request waits for the caches' first list before answering 503.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Whether the caches have listed (an empty page before that would lie); see [`unavailable`].
async fn caches_ready(view: &View) -> bool {
    matches!(tokio::time::timeout(READY_WAIT, view.ready()).await, Ok(true))
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "the caches have not listed yet; retry in a moment\n").into_response()
}

/// The actions and the page of namespace `ns`, when this view offers actions (see [`read_only`]).
fn acting(view: &View, ns: &str) -> Option<(std::sync::Arc<actions::Actions>, Page)> {
    Some((view.actions.clone()?, Page::parse(&format!("/ns/{ns}"), None)?))
}

fn read_only() -> Response {
    let r = pages::not_found("This view is read-only: run `tuskfish web` to preview and act.");
    (StatusCode::NOT_FOUND, pages::document(&Page::Index, &r, false)).into_response()
}

async fn page(State(view): State<View>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "read-only\n")
            .into_response();
    }
    let Some(page) = Page::parse(uri.path(), uri.query()) else {
        let r = pages::not_found(&format!("Nothing lives at {}.", uri.path()));
        return (StatusCode::NOT_FOUND, pages::document(&Page::Index, &r, false)).into_response();
    };
    if !caches_ready(&view).await {
        return unavailable();
    }
    if let Page::Audit { namespace, filter } = &page {
        let r = match &view.client {
            Some(client) => {
                let versions = view.snapshot(namespace).app_versions;
                audit::page(client, &versions, namespace, filter, Timestamp::now()).await
            }
            None => pages::not_found("This view cannot read audit records."),
        };
        let status = if r.found { StatusCode::OK } else { StatusCode::NOT_FOUND };
        return (status, pages::document(&page, &r, false)).into_response();
    }
    let r = view.render(&page, Timestamp::now());
    let status = if r.found { StatusCode::OK } else { StatusCode::NOT_FOUND };
    (status, pages::document(&page, &r, true)).into_response()
}

/// The browser's session (and, for a new one, the cookie that starts it): forms carry its token.
fn session(headers: &axum::http::HeaderMap) -> Result<(String, Option<HeaderValue>), String> {
    if let Some(id) = guard::session_of(headers) {
        return Ok((id, None));
    }
    let (id, cookie) = guard::new_session().map_err(|e| e.to_string())?;
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| e.to_string())?;
    Ok((id, Some(cookie)))
}

fn no_session(why: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("no session could be started: {why}\n")).into_response()
}

/// `response`, starting the browser's session when it is new.
fn with_session(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The page of one cell's actions (also their confirmation).
async fn action_page(
    State(view): State<View>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some((actions, page)) = acting(&view, &ns) else { return read_only() };
    if !caches_ready(&view).await {
        return unavailable();
    }
    let (session, cookie) = match session(&headers) {
        Ok(s) => s,
        Err(why) => return no_session(why),
    };
    let (app, env) = (q.get("app").cloned().unwrap_or_default(), q.get("env").cloned().unwrap_or_default());
    let token = actions.token(&session);
    let r = pages::action_page(&view.snapshot(&ns), &app, &env, &token, Timestamp::now());
    let status = if r.found { StatusCode::OK } else { StatusCode::NOT_FOUND };
    // Not live: a confirmation must not change under the user's pointer.
    with_session((status, pages::document(&page, &r, false)).into_response(), cookie)
}

/// A dry run of a deploy, shown before it is done.
async fn preview(
    State(view): State<View>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some((actions, page)) = acting(&view, &ns) else { return read_only() };
    let (session, cookie) = match session(&headers) {
        Ok(s) => s,
        Err(why) => return no_session(why),
    };
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (app, env, version) = (get("app"), get("env"), get("version"));
    let text = actions.actor.preview(ns.clone(), app.clone(), env.clone(), version.clone()).await;
    let r = pages::preview_page(&ns, &app, &env, &version, &actions.token(&session), &text);
    let status = if r.found { StatusCode::OK } else { StatusCode::CONFLICT };
    with_session((status, pages::document(&page, &r, false)).into_response(), cookie)
}

/// Carries out a submitted action, as the person running `tuskfish web`.
async fn act(
    State(view): State<View>,
    Path(ns): Path<String>,
    headers: axum::http::HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let (Some(actions), Some(page)) = (view.actions.clone(), Page::parse(&format!("/ns/{ns}"), None)) else {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "read-only\n")
            .into_response();
    };
    if !actions.authentic(&form, guard::session_of(&headers).as_deref()) {
        let r = pages::action_result(&ns, "nothing", &Err("this form did not come from this `tuskfish web` in this browser (its token is missing or wrong): reload the page and try again".into()));
        return (StatusCode::FORBIDDEN, pages::document(&page, &r, false)).into_response();
    }
    let action = match actions::Action::from_form(&form) {
        Ok(a) => a,
        Err(why) => {
            let r = pages::action_result(&ns, "nothing", &Err(why));
            return (StatusCode::BAD_REQUEST, pages::document(&page, &r, false)).into_response();
        }
    };
    let what = action.describe();
    let outcome = actions.actor.act(ns.clone(), action).await;
    let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::CONFLICT };
    (status, pages::document(&page, &pages::action_result(&ns, &what, &outcome), false)).into_response()
}

async fn events(State(view): State<View>, uri: Uri) -> Response {
    let path = uri.path().strip_prefix(page::EVENTS_PREFIX).unwrap_or_default();
    match Page::parse(path, uri.query()) {
        Some(page) => live::stream(view, page).into_response(),
        None => (StatusCode::NOT_FOUND, "no such page\n").into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Only our own files, no inline code, no framing: a page of cluster names and messages can
/// neither run injected script nor be embedded elsewhere.
async fn harden(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it browsers send `Origin: null` with the pages' own form POSTs,
    // and the origin check (see `guard`) needs the real one. Other sites still learn nothing.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

pub fn router(view: View) -> Router {
    Router::new()
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("assets/style.css")) }),
        )
        .route(
            "/assets/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/live.js")) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ns/{ns}/act", get(action_page).post(act))
        .route("/ns/{ns}/preview", get(preview))
        .route(&format!("{}/{{*page}}", page::EVENTS_PREFIX), get(events))
        .route(&format!("{}/", page::EVENTS_PREFIX), get(events))
        .fallback(page)
        .layer(axum::middleware::from_fn_with_state(view.clone(), guard::check))
        .layer(axum::middleware::map_response(harden))
        .with_state(view)
}

/// Binds `addr` (a taken port fails at start) and returns the server to run until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    view: View,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, std::io::Error> {
    crate::telemetry::http::serve_router(addr, "the web view", router(view), shutdown).await
}
