//! Job checks: one Job per check and run, created in the Environment's namespace and read from the
//! Job watch's cache (its events wake the Release).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::api::{FIELD_MANAGER, JobCheck, Release, labels};
use crate::controller::cluster::Cluster;
use crate::controller::error::{Error, Result};
use crate::plan::verification::{self as plan, CheckState};
use crate::render::check_job::check_job;

/// Where the Job of `check` for `run` stands; creates it when it does not exist yet.
pub(super) async fn state(
    cluster: &Cluster,
    rel: &Release,
    env: &crate::api::Environment,
    check: &str,
    job: &JobCheck,
    run: &str,
    vars: &BTreeMap<String, String>,
) -> Result<CheckState> {
    let ns = &env.spec.namespace;
    let name = plan::job_name(&rel.namespace().unwrap_or_default(), &rel.name_any(), check, run);
    // Checks run as the Environment's identity, like everything else deployed there.
    let client = match cluster.identities.client_for(&cluster.client, env) {
        Ok(client) => client,
        Err(e) => return Ok(CheckState::Failed(e.to_string())),
    };
    if let Some(found) = cluster.workloads.jobs.get(&ObjectRef::new(&name).within(ns)) {
        return Ok(match plan::job_state(&found) {
            CheckState::Failed(m) => CheckState::Failed(with_pod_messages(&client, ns, &name, m).await),
            other => other,
        });
    }
    let labels = job_labels(rel, &env.name_any(), check);
    let body = match check_job(&name, ns, &labels, job, vars) {
        Ok(body) => body,
        Err(why) => return Ok(CheckState::Failed(why)),
    };
    let api: Api<Job> = Api::namespaced(client, ns);
    // Applied, not created: a Job our cache has not seen yet is simply applied again, unchanged.
    match api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
        Ok(_) => Ok(CheckState::Running(format!("Job {name} started"))),
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
            Ok(CheckState::Failed(format!("the API server refused Job {name}: {}", s.message)))
        }
        Err(source) => Err(Error::Apply { what: format!("Job {ns}/{name}"), source }),
    }
}

fn job_labels(rel: &Release, env: &str, check: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string()),
        (labels::NAME.to_string(), rel.spec.app.clone()),
        (labels::RELEASE.to_string(), rel.name_any()),
        (labels::RELEASE_NAMESPACE.to_string(), rel.namespace().unwrap_or_default()),
        (labels::ENVIRONMENT.to_string(), env.to_string()),
        (labels::VERIFY_CHECK.to_string(), check.to_string()),
    ])
}

/// A failed Job's message with what its containers said when they ended (their termination
/// message, which is the log's tail unless the check wrote one). Best effort: the pods may be gone.
async fn with_pod_messages(client: &kube::Client, ns: &str, job: &str, message: String) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) =
        pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"))).await
    else {
        return message;
    };
    let said: Vec<String> = list
        .items
        .iter()
        .flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
        .filter_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            let text = t.message.as_deref().or(t.reason.as_deref()).unwrap_or_default().trim();
            Some(format!("{} exited {}: {text}", c.name, t.exit_code))
        })
        .collect();
    if said.is_empty() { message } else { format!("{message}; {}", said.join("; ")) }
}

/// Deletes the check Jobs of a Release that is going away (in the namespace of its Environment).
pub async fn remove(cluster: &Cluster, rel: &Release, namespace: &str) -> Result<()> {
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), namespace);
    let selector = format!(
        "{}={},{}={},{}",
        labels::RELEASE,
        rel.name_any(),
        labels::RELEASE_NAMESPACE,
        rel.namespace().unwrap_or_default(),
        labels::VERIFY_CHECK
    );
    let params = DeleteParams::background();
    match api.delete_collection(&params, &ListParams::default().labels(&selector)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Prune { what: format!("verification Jobs of {}", rel.name_any()), source }),
    }
}
