//! Node simulator for control planes without kubelets: registers fake Nodes, binds pending pods to
//! them and reports the pods Running/Ready, so the real Deployment/StatefulSet controllers complete
//! (or fail) rollouts. Pods can ask for failure:
//!
//! - annotation `sim.tuskfish.dev/behavior: never-ready` (or an image whose reference contains
//!   `never-ready`): the container crash-loops and never becomes Ready;
//! - annotation `sim.tuskfish.dev/ready-after: "5s"`: Running at once, Ready after the delay.

mod behavior;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

pub use behavior::{Behavior, behavior_of};

/// Label on the simulator's Nodes.
pub const NODE_LABEL: &str = "sim.tuskfish.dev/node";

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("registering node {name}: {source}")]
    Node { name: String, source: kube::Error },
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub node_prefix: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { nodes: 3, node_prefix: "sim-node-".into() }
    }
}

struct Sim {
    client: Client,
    nodes: Vec<String>,
    next_node: AtomicUsize,
    next_ip: AtomicU32,
}

/// Runs until the task is dropped: watch errors are retried, never fatal.
pub async fn run(client: Client, config: SimConfig) -> Result<(), SimError> {
    let nodes: Vec<String> = (0..config.nodes.max(1)).map(|i| format!("{}{i}", config.node_prefix)).collect();
    for name in &nodes {
        register_node(&client, name).await.map_err(|source| SimError::Node { name: name.clone(), source })?;
    }
    info!(nodes = nodes.len(), "node simulator ready");
    let sim = Arc::new(Sim {
        client: client.clone(),
        nodes,
        next_node: AtomicUsize::new(0),
        next_ip: AtomicU32::new(1),
    });
    let pods: Api<Pod> = Api::all(client);
    // A watch error (the API server restarting, say) must not end the simulator: the watcher
    // re-lists after its backoff, and the re-list replays every pod, pending ones included.
    watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .for_each_concurrent(32, |pod| {
            let sim = sim.clone();
            async move {
                match pod {
                    Ok(pod) => {
                        if let Err(e) = sim.handle(pod).await {
                            debug!(error = %e, "pod step failed (will retry on the next event)");
                        }
                    }
                    Err(e) => warn!(error = %e, "pod watch interrupted; retrying with backoff"),
                }
            }
        })
        .await;
    Ok(())
}

async fn register_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {NODE_LABEL: "true", "kubernetes.io/hostname": name}},
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
    let status = json!({"status": {
        "capacity": capacity, "allocatable": capacity,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "simulated by tuskfish", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
        "nodeInfo": {"kubeletVersion": "v1.20.2-sim", "containerRuntimeVersion": "sim://1", "architecture": "amd64",
                     "operatingSystem": "linux", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                     "machineID": "", "systemUUID": "", "bootID": ""}
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}

impl Sim {
    async fn handle(&self, pod: Pod) -> Result<(), kube::Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            // No kubelet will confirm termination; finish the graceful delete ourselves.
            if node.as_ref().is_some_and(|n| self.nodes.contains(n)) {
                let dp = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
                api.delete(&name, &dp).await?;
            }
            return Ok(());
        }
        match node {
            None => self.bind(&api, &name).await,
            Some(n) if self.nodes.contains(&n) => self.report_status(&api, &pod).await,
            Some(_) => Ok(()),
        }
    }

    async fn bind(&self, api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
        let i = self.next_node.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.nodes[i]},
        });
        let _: serde_json::Value =
            api.create_subresource("binding", name, &PostParams::default(), &binding).await?;
        Ok(())
    }

    async fn report_status(&self, api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
        let behavior = behavior_of(pod);
        let ready_now = match behavior {
            Behavior::Ready => true,
            Behavior::NeverReady => false,
            Behavior::ReadyAfter(d) => started_for(pod) >= Some(d),
        };
        if status_matches(pod, ready_now, behavior) {
            if let Behavior::ReadyAfter(d) = behavior
                && !ready_now
            {
                self.schedule_ready(api.clone(), pod.name_any(), d, started_for(pod).unwrap_or_default());
            }
            return Ok(());
        }
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_else(|| self.next_pod_ip());
        let patch = status_patch(pod, ready_now, behavior, &ip);
        api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        if let Behavior::ReadyAfter(d) = behavior
            && !ready_now
        {
            self.schedule_ready(api.clone(), pod.name_any(), d, Duration::ZERO);
        }
        Ok(())
    }

    /// Marks the pod Ready once its delay has passed (a one-off timer, not a poll).
    fn schedule_ready(&self, api: Api<Pod>, name: String, delay: Duration, elapsed: Duration) {
        tokio::spawn(async move {
            tokio::time::sleep(delay.saturating_sub(elapsed)).await;
            let Ok(pod) = api.get(&name).await else { return };
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            let patch = status_patch(&pod, true, Behavior::Ready, &ip);
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                warn!(pod = %name, error = %e, "could not mark pod ready");
            }
        });
    }

    fn next_pod_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        // Documentation-only range (RFC 5737 style), never routed: the pods do not really exist.
        format!("10.{}.{}.{}", 200 + (n >> 16) % 50, (n >> 8) & 0xff, n & 0xff)
    }
}

fn started_for(pod: &Pod) -> Option<Duration> {
    let start = pod.status.as_ref()?.start_time.as_ref()?.0;
    let d = jiff::Timestamp::now().duration_since(start);
    Some(Duration::try_from(d).unwrap_or_default())
}

fn is_ready(pod: &Pod) -> Option<bool> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    conds.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
}

fn status_matches(pod: &Pod, ready: bool, behavior: Behavior) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let want_ready = ready && behavior != Behavior::NeverReady;
    running && is_ready(pod) == Some(want_ready)
}

fn status_patch(pod: &Pod, ready: bool, behavior: Behavior, ip: &str) -> serde_json::Value {
    let now = now();
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or(now.clone());
    let crash = behavior == Behavior::NeverReady;
    let ready = ready && !crash;
    let r = if ready { "True" } else { "False" };
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = if crash {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "simulated crash (sim.tuskfish.dev)"}})
            } else {
                json!({"running": {"startedAt": start}})
            };
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "sim://image",
                   "ready": ready, "started": !crash, "restartCount": if crash { 3 } else { 0 }, "state": state})
        })
        .collect();
    let cond = |t: &str, s: &str| json!({"type": t, "status": s, "lastTransitionTime": now});
    json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.199.0.1", "startTime": start,
        "conditions": [cond("PodScheduled", "True"), cond("Initialized", "True"),
                       cond("ContainersReady", r), cond("Ready", r)],
        "containerStatuses": containers,
    }})
}
