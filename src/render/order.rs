//! The order objects are applied in: what others depend on first (a ServiceAccount before the
//! Deployment that runs as it, a Role before its RoleBinding), as Helm installs them. Kinds Helm
//! does not know come last, in the order they were rendered.

use super::RenderedObject;

/// Helm's install order (`releaseutil.InstallOrder`), less the cluster-scoped kinds tuskfish never
/// applies.
const INSTALL_ORDER: &[&str] = &[
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
];

/// Pure: `objects` in install order (stable: objects of one kind keep their rendered order).
pub fn install_order(objects: &[RenderedObject]) -> Vec<&RenderedObject> {
    let rank = |o: &RenderedObject| {
        INSTALL_ORDER.iter().position(|k| *k == o.resource.kind).unwrap_or(INSTALL_ORDER.len())
    };
    let mut ordered: Vec<&RenderedObject> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ApiResource, GroupVersionKind};

    fn object(kind: &str, name: &str) -> RenderedObject {
        let group = if kind == "Widget" { "example.com" } else { "" };
        RenderedObject {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind)),
            name: name.into(),
            body: serde_json::Value::Null,
        }
    }

    #[test]
    fn what_others_depend_on_goes_first_and_unknown_kinds_last() {
        let rendered = [
            object("Deployment", "web"),
            object("Widget", "w"),
            object("RoleBinding", "rb"),
            object("Role", "r"),
            object("Secret", "b"),
            object("ServiceAccount", "sa"),
            object("Secret", "a"),
            object("Service", "svc"),
        ];
        let names: Vec<&str> = install_order(&rendered).iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["sa", "b", "a", "r", "rb", "svc", "web", "w"]);
    }
}
