//! Server-side apply of rendered objects, and pruning of what is no longer rendered.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

use super::catalog::Catalog;
use super::error::{Error, Result};
use crate::api::{FIELD_MANAGER, Inventory, InventoryEntry, Reason, labels};
use crate::render::{KindCatalog, Rendered};

/// Which Release an object belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Why an apply did not go through.
#[derive(Debug)]
pub enum ApplyFailure {
    /// The API server refused the object, or it belongs to someone else: retrying the same input
    /// cannot help. `applied` lists what was applied before the refusal.
    Rejected { reason: Reason, message: String, applied: Vec<InventoryEntry> },
    /// Network, conflict or server trouble: retry later.
    Transient(Error),
}

fn owned_by(obj: &DynamicObject, owner: &Owner<'_>) -> Result<(), String> {
    let l = obj.metadata.labels.as_ref();
    let get = |k| l.and_then(|l| l.get(k)).map(String::as_str);
    match (get(labels::RELEASE), get(labels::RELEASE_NAMESPACE)) {
        (Some(n), Some(ns)) if n == owner.name && ns == owner.namespace => Ok(()),
        (Some(n), Some(ns)) => Err(format!("it belongs to Release {ns}/{n}")),
        _ => Err("it exists and is not managed by tuskfish (delete it, or label it to hand it over)".into()),
    }
}

/// Applies every rendered object with the operator's field manager. Refuses to take over an object
/// that another Release (or nobody in tuskfish) manages.
pub async fn apply_all(
    client: &Client,
    rendered: &Rendered,
    owner: &Owner<'_>,
) -> Result<Vec<InventoryEntry>, ApplyFailure> {
    let mut applied = Vec::with_capacity(rendered.objects.len());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for obj in &rendered.objects {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &rendered.namespace, &obj.resource);
        let what = format!("{} {}/{}", obj.resource.kind, rendered.namespace, obj.name);
        let existing = match api.get_opt(&obj.name).await {
            Ok(existing) => existing,
            // The identity may not even read it: as final as a refused apply.
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Err(ApplyFailure::Rejected {
                    reason: Reason::Forbidden,
                    message: format!("{what}: reading it was refused by the API server: {}", s.message),
                    applied,
                });
            }
            Err(source) => return Err(ApplyFailure::Transient(Error::Read { what: what.clone(), source })),
        };
        if let Some(existing) = existing
            && let Err(why) = owned_by(&existing, owner)
        {
            return Err(ApplyFailure::Rejected {
                reason: Reason::OwnershipConflict,
                message: format!("cannot apply {what}: {why}"),
                applied,
            });
        }
        match api.patch(&obj.name, &pp, &Patch::Apply(&obj.body)).await {
            Ok(live) => {
                let mut entry = obj.inventory_entry();
                entry.generation = live.metadata.generation;
                entry.uid = live.metadata.uid;
                applied.push(entry);
            }
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 404 | 422) || refused_as_500(&s) => {
                let reason = if s.code == 403 { Reason::Forbidden } else { Reason::ApplyRejected };
                return Err(ApplyFailure::Rejected {
                    reason,
                    message: format!("{what} was refused by the API server: {}", s.message),
                    applied,
                });
            }
            Err(source) => return Err(ApplyFailure::Transient(Error::Apply { what, source })),
        }
    }
    Ok(applied)
}

/// Server-side apply on 1.20 answers a field of the wrong type (a number where a string belongs, a
/// quantity that does not parse) with 500 rather than 422. Those 500s say so; retrying the same
/// object cannot help, unlike a 500 from an overloaded or restarting server.
fn refused_as_500(s: &kube::core::Status) -> bool {
    const TYPE_ERRORS: [&str; 3] = [
        "failed to create typed patch object",
        "unable to convert unstructured object",
        "failed to create typed live object",
    ];
    s.code == 500 && TYPE_ERRORS.iter().any(|m| s.message.contains(m))
}

pub(crate) fn gvk_of(e: &InventoryEntry) -> GroupVersionKind {
    let (group, version) = e.api_version.split_once('/').unwrap_or(("", e.api_version.as_str()));
    GroupVersionKind::gvk(group, version, &e.kind)
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Deletes the objects of `old` that are not in `keep` (matched by group, kind, name and
/// namespace), skipping any that no longer belong to `owner`. Returns what was deleted.
pub async fn prune(
    client: &Client,
    catalog: &Catalog,
    old: &Inventory,
    keep: Option<&Inventory>,
    owner: &Owner<'_>,
) -> Result<Vec<String>> {
    let kept: BTreeSet<(&str, &str, &str)> = keep
        .filter(|k| k.namespace == old.namespace)
        .map(|k| {
            k.objects.iter().map(|e| (group_of(&e.api_version), e.kind.as_str(), e.name.as_str())).collect()
        })
        .unwrap_or_default();
    let mut deleted = Vec::new();
    for e in &old.objects {
        if kept.contains(&(group_of(&e.api_version), e.kind.as_str(), e.name.as_str())) {
            continue;
        }
        let gvk = gvk_of(e);
        catalog.learn(client, std::slice::from_ref(&gvk)).await?;
        let Some((resource, _)) = catalog.resolve(&gvk) else {
            continue; // The kind is gone from the server, and so are its objects.
        };
        let what = format!("{} {}/{}", e.kind, old.namespace, e.name);
        if delete_if_owned(client, &old.namespace, &resource, &e.name, owner)
            .await
            .map_err(|source| Error::Prune { what: what.clone(), source })?
        {
            deleted.push(what);
        }
    }
    Ok(deleted)
}

async fn delete_if_owned(
    client: &Client,
    ns: &str,
    resource: &ApiResource,
    name: &str,
    owner: &Owner<'_>,
) -> Result<bool, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(false);
    };
    if owned_by(&obj, owner).is_err() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
