//! The audit records' retention: Ledgers of months past it are deleted, once a day. A schedule,
//! not a watch: the operator keeps no cache of Ledgers (they are written, never read, by it).

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};

use crate::api::{Ledger, MONTH_LABEL, labels};
use crate::plan::audit::expired;
use crate::plan::shards::Share;

/// How often the retention looks.
const EVERY: Duration = Duration::from_secs(24 * 3600);
/// Ledgers listed per page.
const PAGE: u32 = 500;

/// Which Ledgers this operator keeps: those of `scope` (one namespace) or all, of `share` (a
/// shard's pipelines) or all, for `keep`.
pub struct Retention {
    pub client: Client,
    pub scope: Option<String>,
    pub share: Option<Share>,
    pub keep: Duration,
}

impl Retention {
    /// Sweeps now and then once a day until `stop`.
    pub async fn run_while(self, stop: impl std::future::Future<Output = ()>) {
        let sweeps = async {
            loop {
                match self.sweep(Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "Ledgers past the audit retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "Ledgers past the audit retention not swept"),
                }
                tokio::time::sleep(EVERY).await;
            }
        };
        tokio::select! {
            () = sweeps => {}
            () = stop => {}
        }
    }

    /// Deletes the Ledgers of months that ended more than `keep` before `now`; how many.
    pub async fn sweep(&self, now: Timestamp) -> Result<usize, kube::Error> {
        let api: Api<Ledger> = match &self.scope {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let selector = format!("{}={},{MONTH_LABEL}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
        let mut params = ListParams::default().labels(&selector).limit(PAGE);
        let mut deleted = 0;
        loop {
            let page = api.list_metadata(&params).await?;
            for l in &page.items {
                let (Some(ns), Some(name)) = (l.metadata.namespace.as_deref(), l.metadata.name.as_deref())
                else {
                    continue;
                };
                let month = l.metadata.labels.as_ref().and_then(|m| m.get(MONTH_LABEL));
                let ours = self.share.is_none_or(|s| s.owns(ns));
                if ours && month.is_some_and(|m| expired(m, now, self.keep)) {
                    let scoped: Api<Ledger> = Api::namespaced(self.client.clone(), ns);
                    match scoped.delete(name, &DeleteParams::default()).await {
                        Ok(_) => deleted += 1,
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(deleted),
            }
        }
    }
}
