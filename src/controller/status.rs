//! Writing status only when it changed: the steady state makes no write calls.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{Error, Result};
use crate::api::FIELD_MANAGER;

/// Server-side applies `status` to the object's status subresource if it differs from `current`.
/// The write carries the resourceVersion the decision was based on, so a decision made on a stale
/// cache fails with a conflict (and is retried on fresh data) instead of overwriting newer status.
/// Returns whether a write was made.
pub async fn patch_status_if_changed<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": status,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Status { what: format!("{} {}", K::kind(&()), obj.name_any()), source })?;
    Ok(true)
}
