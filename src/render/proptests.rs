//! Properties of rendering: whatever an AppVersion's manifests hold, what comes out is namespaced,
//! in the Environment's namespace and named as it will be addressed, or an error with a reason.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::tests::{StaticCatalog, app_version, environment, release};
use super::{KindCatalog, RenderError, render, substitute};

/// apiVersion/kind pairs: served namespaced kinds, cluster-scoped ones, unknown, forbidden and
/// malformed ones.
fn type_meta() -> impl Strategy<Value = (Value, Value)> {
    let known = prop_oneof![
        Just(("v1", "ConfigMap")),
        Just(("v1", "Service")),
        Just(("v1", "Secret")),
        Just(("apps/v1", "Deployment")),
        Just(("apps/v1", "StatefulSet")),
        Just(("v1", "Namespace")),
        Just(("rbac.authorization.k8s.io/v1", "ClusterRole")),
        Just(("tuskfish.dev/v1alpha1", "Release")),
        Just(("example.com/v1", "Widget")),
        Just(("v1", "List")),
    ]
    .prop_map(|(a, k)| (json!(a), json!(k)));
    let arbitrary = (
        prop_oneof![
            any::<String>().prop_map(Value::from),
            Just(Value::Null),
            Just(json!(7)),
            "[a-z./ ?]{0,12}".prop_map(Value::from)
        ],
        prop_oneof![any::<String>().prop_map(Value::from), Just(Value::Null), Just(json!(["ConfigMap"]))],
    );
    prop_oneof![4 => known, 1 => arbitrary]
}

/// Names and namespaces, with variable references and the characters that break URLs.
fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z0-9][-a-z0-9.]{0,20}".prop_map(Value::from),
        "(\\$\\{(TUSKFISH_APP|TUSKFISH_NAMESPACE|OTHER_NS|SLASHY|UNDEFINED)\\}|\\$\\$\\{|[a-z/%?# .])*"
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::from("finance-prod")),
        Just(Value::from("kube-system")),
        Just(Value::from("")),
        Just(Value::Null),
        Just(json!(42)),
        Just(json!({"nested": true})),
    ]
}

fn manifest() -> impl Strategy<Value = Value> {
    (type_meta(), proptest::option::of(text()), proptest::option::of(text()), any::<bool>(), text()).prop_map(
        |((api_version, kind), name, namespace, labels_broken, data)| {
            let mut meta = serde_json::Map::new();
            if let Some(n) = name {
                meta.insert("name".into(), n);
            }
            if let Some(ns) = namespace {
                meta.insert("namespace".into(), ns);
            }
            if labels_broken {
                meta.insert("labels".into(), json!("not a map"));
            }
            json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "data": {"k": data},
                   "spec": {"ports": [{"port": 80}]}})
        },
    )
}

proptest! {
    #[test]
    fn rendered_objects_are_namespaced_and_stay_in_the_environment(
        manifests in proptest::collection::vec(manifest(), 0..4),
        with_workload in any::<bool>(),
    ) {
        let workload = with_workload.then(|| crate::api::Workload { image: "img".into(), ..Default::default() });
        let vars = [("OTHER_NS", "kube-system"), ("SLASHY", "../x")];
        let env = environment(&vars);
        let av = app_version(workload, manifests.clone());
        match render(&av, &env, &release(), &[], &StaticCatalog) {
            Ok(r) => {
                prop_assert_eq!(&r.namespace, &env.spec.namespace);
                // Manifests come after the workload's objects, in order, named as substituted.
                let mut all_vars: BTreeMap<String, String> =
                    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                all_vars.insert("TUSKFISH_APP".into(), "payments".into());
                all_vars.insert("TUSKFISH_NAMESPACE".into(), "finance-prod".into());
                let from_manifests = &r.objects[r.objects.len() - manifests.len()..];
                for (m, o) in manifests.iter().zip(from_manifests) {
                    let raw = m["metadata"]["name"].as_str().unwrap_or_default();
                    prop_assert_eq!(substitute(raw, &all_vars).ok(), Some(o.name.clone()));
                }
                for o in &r.objects {
                    let gvk = kube::core::GroupVersionKind::gvk(&o.resource.group, &o.resource.version, &o.resource.kind);
                    let namespaced = StaticCatalog.resolve(&gvk).map(|(_, n)| n);
                    prop_assert_eq!(namespaced, Some(true), "{} is not a namespaced kind", o.resource.kind);
                    prop_assert_eq!(&o.body["metadata"]["namespace"], &json!("finance-prod"));
                    prop_assert_eq!(&o.body["metadata"]["name"], &json!(o.name), "URL and body name differ");
                    prop_assert_eq!(&o.body["kind"], &json!(o.resource.kind));
                    prop_assert!(!o.name.is_empty() && o.name != "." && o.name != "..");
                    prop_assert!(!o.name.contains(['/', '%', '?', '#']), "{:?}", o.name);
                    prop_assert!(!o.name.chars().any(char::is_whitespace), "{:?}", o.name);
                    prop_assert_eq!(&o.body["metadata"]["labels"]["tuskfish.dev/release"], &json!("payments-prod"));
                    prop_assert!(o.resource.group != crate::api::GROUP);
                }
            }
            Err(e) => {
                prop_assert!(!e.reason().as_str().is_empty() && !e.to_string().is_empty());
                if let RenderError::ForeignNamespace { namespace, expected, .. } = &e {
                    prop_assert_ne!(namespace, expected);
                }
            }
        }
    }

    #[test]
    fn a_cluster_scoped_or_foreign_manifest_is_never_rendered(
        name in "[a-z][a-z0-9-]{0,10}",
        ns in prop_oneof![Just(None), Just(Some("kube-system")), Just(Some("default")), Just(Some("finance-prod"))],
        cluster_scoped in any::<bool>(),
        others in proptest::collection::vec(manifest(), 0..3),
    ) {
        let (api_version, kind) =
            if cluster_scoped { ("rbac.authorization.k8s.io/v1", "ClusterRole") } else { ("v1", "ConfigMap") };
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        let mut manifests = others;
        manifests.push(json!({"apiVersion": api_version, "kind": kind, "metadata": meta}));
        let result = render(&app_version(None, manifests), &environment(&[]), &release(), &[], &StaticCatalog);
        let foreign = ns.is_some_and(|n| n != "finance-prod");
        if cluster_scoped || foreign {
            prop_assert!(result.is_err(), "rendered {kind} in {ns:?}");
        }
    }

    #[test]
    fn manifests_are_named_and_placed_as_substituted(
        name in "[a-z]{1,4}(\\$\\{(TUSKFISH_APP|TUSKFISH_VERSION|SUFFIX)\\})?[a-z0-9]{0,3}",
        ns in prop_oneof![Just(None), Just(Some("${TUSKFISH_NAMESPACE}")), Just(Some("${ELSEWHERE}"))],
    ) {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        let av = app_version(None, vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})]);
        let env = environment(&[("SUFFIX", "-x"), ("ELSEWHERE", "kube-system")]);
        let result = render(&av, &env, &release(), &[], &StaticCatalog);
        if ns == Some("${ELSEWHERE}") {
            prop_assert_eq!(result.map_err(|e| e.reason().as_str()).err(), Some("ForeignNamespace"));
        } else {
            let want = name.replace("${TUSKFISH_APP}", "payments").replace("${TUSKFISH_VERSION}", "1.3.9").replace("${SUFFIX}", "-x");
            let r = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&r.objects[0].name, &want);
            prop_assert_eq!(&r.objects[0].body["metadata"]["name"], &json!(want));
        }
    }

    #[test]
    fn substitution_never_panics_and_only_replaces_references(
        input in prop_oneof![any::<String>(), "(\\$|\\{|\\}|A|B|x|ü){0,20}"],
    ) {
        let vars = BTreeMap::from([("A".to_string(), "1".to_string()), ("B".to_string(), "${A}".to_string())]);
        if let Ok(out) = substitute(&input, &vars) {
            if !input.contains('$') {
                prop_assert_eq!(&out, &input);
            }
            // Values are inserted as they are, never substituted again.
            if input == "${B}" {
                prop_assert_eq!(out, "${A}");
            }
        }
    }
}
