//! `web`: the pipeline pages without running the operator (a laptop, a second cluster view), with
//! the CLI's verbs as buttons, run as the person who started it. Keeps caches of its own: one watch
//! per kind however many pages are open.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::cli::error::{CliError, CliResult};
use crate::cli::operator::shutdown_signal;
use crate::cli::session::Session;
use crate::watch::scoped;
use crate::web::actions::{Action, Actions, Actor};
use crate::web::{self, Page};

/// The web view's actions: the CLI's own verbs, run in the page's namespace, their messages
/// collected for the result page.
struct Verbs {
    session: Session,
}

impl Actor for Verbs {
    fn act(&self, namespace: String, action: Action) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let (s, said) = self.session.collecting(namespace);
        Box::pin(async move {
            run(&s, action).await.map_err(|e| e.to_string())?;
            let lines = said.lock().map(|l| l.clone()).unwrap_or_default();
            Ok(lines)
        })
    }

    fn preview(
        &self,
        namespace: String,
        app: String,
        env: String,
        version: String,
    ) -> BoxFuture<'static, Result<String, String>> {
        let (s, _) = self.session.collecting(namespace);
        Box::pin(async move {
            let version = crate::cli::session::parse_version(&version).map_err(|e| e.to_string())?;
            super::preview::preview_text(&s, &app, &env, &version).await.map_err(|e| e.to_string())
        })
    }
}

async fn run(s: &Session, action: Action) -> CliResult<()> {
    use super::{approve, deploy, freeze};
    match action {
        Action::Deploy { app, env, version } => deploy::deploy(s, &app, &version, &env, None, None).await,
        Action::Promote { app, from, to } => deploy::promote(s, &app, &from, &to, None, None).await,
        Action::Rollback { app, env } => deploy::rollback(s, &app, &env, None, false, None).await,
        Action::Approve { app, env, version, reason } => {
            let decision = crate::api::Decision::Approve;
            let args = approve::ApproveArgs {
                app: &app,
                version: &version,
                env: &env,
                reason,
                approver: None,
                decision,
                wait_for: None,
            };
            approve::approve(s, args).await
        }
        Action::Reject { app, env, version, reason } => {
            let decision = crate::api::Decision::Reject;
            let args = approve::ApproveArgs {
                app: &app,
                version: &version,
                env: &env,
                reason: Some(reason),
                approver: None,
                decision,
                wait_for: None,
            };
            approve::approve(s, args).await
        }
        Action::Freeze { env, reason } => freeze::freeze(s, &env, &reason, freeze::Until::Open).await,
        Action::Unfreeze { env } => freeze::unfreeze(s, &env, None).await,
    }
}

pub async fn web(
    s: &Session,
    addr: SocketAddr,
    all_namespaces: bool,
    read_only: bool,
    allow_hosts: Vec<String>,
) -> CliResult<()> {
    let namespace = (!all_namespaces).then_some(s.ns.as_str());
    // Fail now, with the CLI's exit codes, rather than serve a page that waits on a watch the
    // server refuses (RBAC) or cannot answer.
    let probe = kube::api::ListParams::default().limit(1);
    for (kind, result) in [
        ("Environments", readable::<crate::api::Environment>(s, namespace, &probe).await),
        ("Releases", readable::<crate::api::Release>(s, namespace, &probe).await),
        ("AppVersions", readable::<crate::api::AppVersion>(s, namespace, &probe).await),
    ] {
        result.map_err(|e| CliError::api(&format!("listing {kind}"), e))?;
    }
    let (mut view, drivers) = web::watch(&s.client, namespace);
    view.allowed_hosts = allow_hosts.into();
    if !read_only {
        let actor = Arc::new(Verbs { session: s.clone() });
        let actions =
            Actions::new(actor).map_err(|e| CliError::Failed(format!("making the form token: {e}")))?;
        view.actions = Some(Arc::new(actions));
    }
    let server = web::serve(addr, view, shutdown_signal())
        .await
        .map_err(|e| CliError::Usage(format!("{e} (pick another with --addr)")))?;
    let start = match namespace {
        Some(ns) => Page::Pipeline { namespace: ns.to_string() }.href(),
        None => Page::Index.href(),
    };
    let mode = if read_only { "read-only" } else { "actions act as you" };
    eprintln!("serving the pipeline at http://{addr}{start} ({mode}; Ctrl-C to stop)");
    tokio::select! {
        r = server => r.map_err(|e| CliError::Failed(format!("web view: {e}"))),
        _ = futures::future::join_all(drivers) => Err(CliError::Unreachable("the watches ended".into())),
    }
}

async fn readable<K>(
    s: &Session,
    namespace: Option<&str>,
    probe: &kube::api::ListParams,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    scoped::<K>(&s.client, namespace).list_metadata(probe).await.map(|_| ())
}
