//! A cache of API discovery answers: which kinds exist and whether they are namespaced.

use std::collections::HashMap;
use std::sync::RwLock;

use kube::Client;
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};

use super::error::{Error, Result};
use crate::render::KindCatalog;

/// Kinds are resolved on first use, one discovery call per unknown kind; unknown ones are asked
/// again next time (a CRD may have been installed since).
#[derive(Default)]
pub struct Catalog {
    known: RwLock<HashMap<GroupVersionKind, (ApiResource, bool)>>,
}

impl Catalog {
    /// Makes sure every kind in `gvks` has been looked up. A kind the server does not serve is
    /// simply left out; rendering then reports it.
    pub async fn learn(&self, client: &Client, gvks: &[GroupVersionKind]) -> Result<()> {
        for gvk in gvks {
            if self.resolve(gvk).is_some() {
                continue;
            }
            match pinned_kind(client, gvk).await {
                Ok((ar, caps)) => {
                    let namespaced = matches!(caps.scope, Scope::Namespaced);
                    if let Ok(mut known) = self.known.write() {
                        known.insert(gvk.clone(), (ar, namespaced));
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Discovery(_)) => {}
                Err(source) => {
                    return Err(Error::Discovery { gvk: format!("{gvk:?}"), source });
                }
            }
        }
        Ok(())
    }
}

impl KindCatalog for Catalog {
    fn resolve(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, bool)> {
        self.known.read().ok()?.get(gvk).cloned()
    }
}
