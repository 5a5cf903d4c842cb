//! `web`: the read-only pipeline page without running the operator (a laptop, a second cluster
//! view). Keeps caches of its own: one watch per kind however many pages are open.

use std::net::SocketAddr;

use crate::cli::error::{CliError, CliResult};
use crate::cli::operator::shutdown_signal;
use crate::cli::session::Session;
use crate::controller::watch::scoped;
use crate::web::{self, Page};

pub async fn web(s: &Session, addr: SocketAddr, all_namespaces: bool) -> CliResult<()> {
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
    let (view, drivers) = web::watch(&s.client, namespace);
    let server = web::serve(addr, view, shutdown_signal())
        .await
        .map_err(|e| CliError::Usage(format!("{e} (pick another with --addr)")))?;
    let start = match namespace {
        Some(ns) => Page::Pipeline { namespace: ns.to_string() }.href(),
        None => Page::Index.href(),
    };
    eprintln!("serving the pipeline at http://{addr}{start} (read-only; Ctrl-C to stop)");
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
