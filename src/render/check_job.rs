//! The Job of a verification check: the user's pod template, with the version and environment in
//! every container's environment and `${…}` substituted as in manifests (so a test image can be
//! `registry.example/pay-smoke:${TUSKFISH_VERSION}`), run once (no restarts unless `backoffLimit`
//! says so).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::JobCheck;

/// Default `activeDeadlineSeconds`: a check that hangs fails instead of holding the rollout.
pub const DEFAULT_CHECK_DEADLINE_SECONDS: i64 = 600;
/// Finished check Jobs are removed by the API server's TTL controller after a day.
pub const CHECK_JOB_TTL_SECONDS: i64 = 86_400;

/// The Job `name` in `namespace` for `check`, labelled `labels`, each container given `env`.
/// `Err`: what is wrong with the template.
pub fn check_job(
    name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    check: &JobCheck,
    env: &BTreeMap<String, String>,
) -> Result<Value, String> {
    if crate::depth::too_deep(&check.template) {
        return Err(format!(
            "job.template nests deeper than {} levels, which the operator does not read; flatten it",
            crate::depth::MAX_DEPTH
        ));
    }
    let mut template = check.template.clone();
    super::substitute_value(&mut template, env).map_err(|name| {
        format!(
            "job.template uses ${{{name}}}, which is not defined: define it in the Environment's \
             spec.variables (or write $${{{name}}} for a literal ${{{name}}})"
        )
    })?;
    let spec = template
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("job.template has no spec: give a pod template (metadata and spec with containers)")?;
    spec.entry("restartPolicy").or_insert_with(|| "Never".into());
    let mut containers = 0;
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else {
                return Err(format!("job.template.spec.{list} holds something that is not a container"));
            };
            with_env(c, env);
            // The check's output is then the log's tail when the container fails without a message.
            c.entry("terminationMessagePolicy").or_insert_with(|| "FallbackToLogsOnError".into());
            containers += usize::from(list == "containers");
        }
    }
    if containers == 0 {
        return Err("job.template.spec.containers is empty: the check needs a container to run".into());
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": check.backoff_limit.unwrap_or(0),
            "activeDeadlineSeconds": check.active_deadline_seconds.unwrap_or(DEFAULT_CHECK_DEADLINE_SECONDS),
            "ttlSecondsAfterFinished": CHECK_JOB_TTL_SECONDS,
            "template": template,
        },
    }))
}

/// Sets `env` in a container, replacing variables of the same names.
fn with_env(container: &mut Map<String, Value>, env: &BTreeMap<String, String>) {
    let list = container.entry("env").or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(list) = list.as_array_mut() {
        list.retain(|e| e.get("name").and_then(Value::as_str).is_none_or(|n| !env.contains_key(n)));
        list.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: Value) -> JobCheck {
        JobCheck { template, ..Default::default() }
    }

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("TUSKFISH_VERSION".to_string(), "1.4.0".to_string())])
    }

    #[test]
    fn the_job_runs_the_template_once_with_the_version() {
        let t = json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"containers": [
            {"name": "smoke", "image": "smoke:${TUSKFISH_VERSION}", "args": ["$${HOME}"], "env": [{"name": "TUSKFISH_VERSION", "value": "typed"}, {"name": "X", "value": "1"}]}
        ]}});
        let job = check_job("smoke-ab", "dev", &BTreeMap::new(), &check(t), &env()).unwrap();
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], DEFAULT_CHECK_DEADLINE_SECONDS);
        let pod = &job["spec"]["template"];
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["image"], "smoke:1.4.0");
        assert_eq!(c["args"][0], "${HOME}", "a doubled dollar is a literal");
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(
            c["env"],
            json!([{"name": "X", "value": "1"}, {"name": "TUSKFISH_VERSION", "value": "1.4.0"}]),
            "the operator's value replaces a typed one"
        );
    }

    #[test]
    fn a_template_without_containers_is_refused_with_a_reason() {
        for (t, says) in [
            (json!({}), "no spec"),
            (json!({"spec": {"containers": []}}), "empty"),
            (json!({"spec": {"containers": ["x"]}}), "not a container"),
            (json!("nonsense"), "no spec"),
            (
                json!({"spec": {"containers": [{"name": "c", "image": "${NOPE}"}]}}),
                "${NOPE}, which is not defined",
            ),
        ] {
            let err = check_job("n", "ns", &BTreeMap::new(), &check(t.clone()), &env()).unwrap_err();
            assert!(err.contains(says), "{t}: {err}");
        }
    }
}
