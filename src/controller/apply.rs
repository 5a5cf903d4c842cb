//! Server-side apply of rendered objects, and pruning of what is no longer rendered.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

use super::catalog::Catalog;
use super::error::{Error, Result};
use crate::api::{FIELD_MANAGER, Inventory, InventoryEntry, Reason, labels, truncate_message};
use crate::render::{KindCatalog, Rendered, RenderedObject, install_order};

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

/// Applies every rendered object with the operator's field manager, all or nothing: each object is
/// first checked (whose it is, and a server-side dry run as the identity that applies it, in
/// install order), and nothing is written when any would be refused. Refuses to take over an
/// object that another Release (or nobody in tuskfish) manages.
pub async fn apply_all(
    client: &Client,
    rendered: &Rendered,
    owner: &Owner<'_>,
) -> Result<Vec<InventoryEntry>, ApplyFailure> {
    let ordered = install_order(&rendered.objects);
    let ns = &rendered.namespace;
    // The first object needs no dry run: if its apply is refused, nothing was applied yet.
    let mut refused = Vec::new();
    for (i, obj) in ordered.iter().enumerate() {
        if let Some(why) = check(client, ns, obj, owner, i > 0, &ordered).await? {
            refused.push(why);
        }
    }
    if !refused.is_empty() {
        // Then the first is asked too, so that the refusal names every object at once.
        if let Some(first) = ordered.first()
            && refused.first().is_none_or(|r| r.what != what_of(ns, first))
            && let Err(Attempt::Refused(why)) = patch(client, ns, first, true).await
            && !waits_for_the_rollout(&why, first, &ordered)
        {
            refused.insert(0, why);
        }
        let reason = refused.first().map_or(Reason::ApplyRejected, |r| r.reason);
        let message = refusal_message(&refused, ordered.len());
        return Err(ApplyFailure::Rejected { reason, message, applied: Vec::new() });
    }
    let mut applied = Vec::with_capacity(ordered.len());
    for obj in &ordered {
        match patch(client, ns, obj, false).await {
            Ok(live) => {
                let mut entry = obj.inventory_entry();
                entry.generation = live.metadata.generation;
                entry.uid = live.metadata.uid;
                applied.push(entry);
            }
            Err(Attempt::Refused(why)) if applied.is_empty() => {
                let message = refusal_message(std::slice::from_ref(&why), ordered.len());
                return Err(ApplyFailure::Rejected { reason: why.reason, message, applied });
            }
            // Refused although its dry run passed (something changed in between, or it needed an
            // object applied before it): what was applied is kept in the inventory.
            Err(Attempt::Refused(why)) => {
                let message = why.to_string();
                return Err(ApplyFailure::Rejected { reason: why.reason, message, applied });
            }
            Err(Attempt::Failed(e)) => return Err(ApplyFailure::Transient(e)),
        }
    }
    Ok(applied)
}

fn what_of(ns: &str, obj: &RenderedObject) -> String {
    format!("{} {ns}/{}", obj.resource.kind, obj.name)
}

/// One object the API server would not take, and why.
#[derive(Debug)]
struct Refused {
    what: String,
    /// What was refused: reading it, taking it over, or applying it.
    verb: &'static str,
    reason: Reason,
    said: String,
    /// The API server's status code (0: refused by tuskfish itself).
    code: u16,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} refused: {}", self.what, self.verb, self.said)
    }
}

enum Attempt {
    Refused(Refused),
    Failed(Error),
}

/// Objects named in one refusal message at most, and the bytes said of each: what fits a condition
/// message (`api::MESSAGE_LIMIT`) with the count before them and the rest counted after them.
const REFUSALS_NAMED: usize = 3;
const REFUSAL_LIMIT: usize = 280;

/// Pure: what a Release says when its rollout was refused before anything was applied.
fn refusal_message(refused: &[Refused], total: usize) -> String {
    // Each bounded, so that a long first one does not push the others out of the condition.
    let named: Vec<String> =
        refused.iter().take(REFUSALS_NAMED).map(|r| truncate_message(r.to_string(), REFUSAL_LIMIT)).collect();
    let more = refused.len().saturating_sub(REFUSALS_NAMED);
    let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
    format!(
        "nothing was applied: {} of {total} objects would be refused: {}{tail}",
        refused.len(),
        named.join("; ")
    )
}

/// Whether `obj` may be applied: it is this Release's (or no one's yet) and (with `dry_run`) a
/// server-side dry run of its apply passes. `None`: it may.
async fn check(
    client: &Client,
    ns: &str,
    obj: &RenderedObject,
    owner: &Owner<'_>,
    dry_run: bool,
    rollout: &[&RenderedObject],
) -> Result<Option<Refused>, ApplyFailure> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &obj.resource);
    let what = what_of(ns, obj);
    let refused =
        |verb, reason, said: String, code| Ok(Some(Refused { what: what.clone(), verb, reason, said, code }));
    match api.get_opt(&obj.name).await {
        Ok(Some(existing)) => {
            if let Err(why) = owned_by(&existing, owner) {
                return refused("taking it over", Reason::OwnershipConflict, why, 0);
            }
        }
        Ok(None) => {}
        // The identity may not even read it: as final as a refused apply.
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return refused("get", Reason::Forbidden, s.message, s.code);
        }
        Err(source) => return Err(ApplyFailure::Transient(Error::Read { what, source })),
    }
    if !dry_run {
        return Ok(None);
    }
    match patch(client, ns, obj, true).await {
        Ok(_) => Ok(None),
        Err(Attempt::Refused(why)) if waits_for_the_rollout(&why, obj, rollout) => Ok(None),
        Err(Attempt::Refused(why)) => Ok(Some(why)),
        Err(Attempt::Failed(e)) => Err(ApplyFailure::Transient(e)),
    }
}

/// Pure: whether a dry run was refused only for want of another object of the same rollout, not
/// there yet (a RoleBinding's Role, a Pod's ServiceAccount, applied before it): only the apply can
/// tell. The API server names what it did not find, in quotes. Anything else missing (a Role no
/// object of the rollout makes) is a refusal like any other, so nothing is applied.
fn waits_for_the_rollout(why: &Refused, obj: &RenderedObject, rollout: &[&RenderedObject]) -> bool {
    let missing = why.code == 404 || why.said.contains("not found");
    missing
        && rollout.iter().any(|o| {
            !(o.name == obj.name && o.resource == obj.resource)
                && why.said.contains(&format!("\"{}\"", o.name))
        })
}

/// Server-side applies `obj` (as a dry run: nothing is stored).
async fn patch(
    client: &Client,
    ns: &str,
    obj: &RenderedObject,
    dry_run: bool,
) -> Result<DynamicObject, Attempt> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &obj.resource);
    let what = what_of(ns, obj);
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = dry_run;
    match api.patch(&obj.name, &pp, &Patch::Apply(&obj.body)).await {
        Ok(live) => Ok(live),
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 404 | 422) || refused_as_500(&s) => {
            let reason = if s.code == 403 { Reason::Forbidden } else { Reason::ApplyRejected };
            Err(Attempt::Refused(Refused {
                what,
                verb: "apply (patch)",
                reason,
                said: s.message,
                code: s.code,
            }))
        }
        Err(source) => Err(Attempt::Failed(Error::Apply { what, source })),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ApiResource, GroupVersionKind};

    fn object(kind: &str, name: &str) -> RenderedObject {
        let group = if kind.starts_with("Role") { "rbac.authorization.k8s.io" } else { "" };
        RenderedObject {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind)),
            name: name.into(),
            body: serde_json::Value::Null,
        }
    }

    #[test]
    fn only_what_the_rollout_itself_brings_may_be_missing_at_its_dry_run() {
        let binding = object("RoleBinding", "payments");
        let role = object("Role", "payments");
        let config = object("ConfigMap", "settings");
        let not_found = |said: &str, code| Refused {
            what: "RoleBinding ns/payments".into(),
            verb: "apply (patch)",
            reason: Reason::ApplyRejected,
            said: said.into(),
            code,
        };
        let missing_role = not_found(r#"rolebindings.rbac.authorization.k8s.io "payments" not found"#, 404);
        assert!(waits_for_the_rollout(&missing_role, &binding, &[&role, &binding]));
        // The same name, but no Role in the rollout: it will not appear.
        assert!(!waits_for_the_rollout(&missing_role, &binding, &[&binding, &config]));
        let missing_account = not_found(
            r#"error looking up service account ns/settings: serviceaccount "settings" not found"#,
            403,
        );
        assert!(waits_for_the_rollout(&missing_account, &binding, &[&config, &binding]));
        let forbidden = not_found(r#"rolebindings "payments" is forbidden: cannot patch"#, 403);
        assert!(!waits_for_the_rollout(&forbidden, &binding, &[&role, &binding]));
    }

    #[test]
    fn a_refusal_names_each_object_and_verb_up_to_a_bound() {
        let refused = |i: usize| Refused {
            what: format!("Secret ns/s{i}"),
            verb: "get",
            reason: Reason::Forbidden,
            said: "no".into(),
            code: 403,
        };
        let two: Vec<Refused> = (0..2).map(refused).collect();
        assert_eq!(
            refusal_message(&two, 5),
            "nothing was applied: 2 of 5 objects would be refused: Secret ns/s0: get refused: no; Secret ns/s1: get refused: no"
        );
        let many: Vec<Refused> = (0..11).map(refused).collect();
        let said = refusal_message(&many, 40);
        assert!(said.ends_with("Secret ns/s2: get refused: no; and 8 more"), "{said}");
        assert!(!said.contains("ns/s3"), "{said}");
        let long: Vec<Refused> = (0..5).map(|i| Refused { said: "x".repeat(2000), ..refused(i) }).collect();
        let said = refusal_message(&long, 9);
        assert!(said.len() <= crate::api::MESSAGE_LIMIT, "{} bytes", said.len());
        assert!(said.ends_with("; and 2 more"), "{said}");
    }
}
