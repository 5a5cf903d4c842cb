use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("DB_HOST".to_string(), "db.prod.internal".to_string())])
}

#[test]
fn values_precedence_appversion_then_environment_then_release() {
    // (appversion, environment, release, expected)
    let cases: Vec<(Value, Value, Value, Value)> = vec![
        // Each layer alone.
        (json!({"replicaCount": 1}), json!(null), json!(null), json!({"replicaCount": 1})),
        (json!(null), json!({"replicaCount": 2}), json!(null), json!({"replicaCount": 2})),
        (json!(null), json!(null), json!({"replicaCount": 3}), json!({"replicaCount": 3})),
        // The later layer wins a scalar.
        (json!({"replicaCount": 1}), json!({"replicaCount": 2}), json!(null), json!({"replicaCount": 2})),
        (
            json!({"replicaCount": 1}),
            json!({"replicaCount": 2}),
            json!({"replicaCount": 3}),
            json!({"replicaCount": 3}),
        ),
        // Maps merge key by key.
        (
            json!({"db": {"host": "a", "port": 5432}}),
            json!({"db": {"host": "b"}}),
            json!({"db": {"pool": 10}}),
            json!({"db": {"host": "b", "port": 5432, "pool": 10}}),
        ),
        // Lists are replaced, not appended.
        (json!({"hosts": ["a", "b"]}), json!({"hosts": ["c"]}), json!(null), json!({"hosts": ["c"]})),
        // A scalar replaces a map and a map a scalar.
        (json!({"db": {"host": "a"}}), json!({"db": "off"}), json!(null), json!({"db": "off"})),
        (json!({"db": "off"}), json!(null), json!({"db": {"host": "b"}}), json!({"db": {"host": "b"}})),
        // null is kept, so that Helm drops the chart's default.
        (
            json!({"ingress": {"enabled": true}}),
            json!(null),
            json!({"ingress": null}),
            json!({"ingress": null}),
        ),
        // ${VAR} is substituted after merging, in every layer's strings.
        (
            json!({"db": {"host": "${DB_HOST}"}}),
            json!({"url": "postgres://${DB_HOST}/x"}),
            json!(null),
            json!({"db": {"host": "db.prod.internal"}, "url": "postgres://db.prod.internal/x"}),
        ),
        // $${ is a literal.
        (json!({"s": "$${NOT}"}), json!(null), json!(null), json!({"s": "${NOT}"})),
    ];
    for (i, (av, env, rel, expected)) in cases.into_iter().enumerate() {
        let layer = |v: &Value| if v.is_null() { None } else { Some(v.clone()) };
        let (av, env, rel) = (layer(&av), layer(&env), layer(&rel));
        let got = chart_values(&[av.as_ref(), env.as_ref(), rel.as_ref()], &vars()).unwrap();
        assert_eq!(got, expected, "case {i}");
    }
}

#[test]
fn an_unknown_variable_in_values_is_named() {
    let av = json!({"db": {"host": "${NOPE}"}});
    let err = chart_values(&[Some(&av)], &vars()).unwrap_err();
    assert_eq!(err.reason(), crate::api::Reason::UnknownVariable);
    assert!(err.to_string().contains("${NOPE}") && err.to_string().contains("Helm values"), "{err}");
}

const OUTPUT: &str = r#"---
# Source: payments/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: rel-payments
---
# Source: payments/templates/empty.yaml
---
# Source: payments/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rel-payments
spec:
  template:
    spec:
      containers:
        - name: app
          args: ["--separator", "---"]
---
# Source: payments/templates/tests/test-connection.yaml
apiVersion: v1
kind: Pod
metadata:
  name: "rel-payments-test-connection"
  annotations:
    "helm.sh/hook": test
spec:
  containers: []
"#;

#[test]
fn output_is_split_by_template_and_hooks_are_set_aside() {
    let out = parse_output(OUTPUT).unwrap();
    let got: Vec<(&str, &str)> =
        out.objects.iter().map(|o| (o.source.as_str(), o.body["kind"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        vec![
            ("payments/templates/serviceaccount.yaml", "ServiceAccount"),
            ("payments/templates/deployment.yaml", "Deployment"),
        ]
    );
    assert_eq!(out.objects[1].body.pointer("/spec/template/spec/containers/0/args/1"), Some(&json!("---")));
    assert_eq!(out.hooks, vec!["Pod rel-payments-test-connection (test)".to_string()]);
}

#[test]
fn output_that_is_not_an_object_names_its_template() {
    let err = parse_output("---\n# Source: c/templates/x.yaml\n- a\n- b\n").unwrap_err();
    assert_eq!(err.source_name, "c/templates/x.yaml");
    let err = parse_output("---\n# Source: c/templates/y.yaml\nkey: [unclosed\n").unwrap_err();
    assert_eq!(err.source_name, "c/templates/y.yaml");
}

#[test]
fn crds_are_refused_by_name() {
    let crd = |name: &str| ChartObject {
        source: "c/crds/x.yaml".into(),
        body: json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name}}),
    };
    let cm = ChartObject {
        source: "c/templates/cm.yaml".into(),
        body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
    };
    assert_eq!(refuse_crds(std::slice::from_ref(&cm)), Ok(()));
    let err = refuse_crds(&[cm, crd("widgets.example.com"), crd("gadgets.example.com")]).unwrap_err();
    assert_eq!(err.reason(), crate::api::Reason::ChartHasCrds);
    assert!(err.to_string().contains("widgets.example.com, gadgets.example.com"), "{err}");
}
