//! Agents: a `tuskfish agent` runs inside a cluster the hub cannot reach, reads the pipeline of
//! one namespace from the hub, deploys the Environments assigned to it (`spec.cluster.agent`) into
//! its own cluster and writes their Releases' status back to the hub. It says it is alive by
//! renewing a Lease on the hub, from which the hub's operator tells whether it is connected.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Config};
use tracing::{debug, warn};

use crate::api::{ClusterRef, Environment, labels};
use crate::plan::agent_link::lease_name;

/// Which Environments a process serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The operator: every Environment no agent serves.
    Operator,
    /// `tuskfish agent --name NAME`: only the Environments that name it.
    Agent(String),
}

impl Role {
    /// Whether this process handles a Release of `env`. Without the Environment (deleted first),
    /// whoever applied its objects (`applied`: the cluster of its inventory) cleans them up.
    pub fn serves(&self, env: Option<&Environment>, applied: Option<&ClusterRef>) -> bool {
        let agent = match env {
            Some(env) => env.agent(),
            None => applied.and_then(|c| c.agent.as_deref()),
        };
        match self {
            Role::Operator => agent.is_none(),
            Role::Agent(name) => agent == Some(name.as_str()),
        }
    }
}

/// How an agent runs.
#[derive(Clone)]
pub struct AgentSettings {
    pub name: String,
    /// The pipeline namespace on the hub it serves (its Lease is there too).
    pub namespace: String,
    /// Its own cluster, where it deploys.
    pub local: Client,
    pub local_config: Config,
    /// How long the hub counts it connected after a renewal (renewed every third of it).
    pub lease_duration: Duration,
}

/// Renews the agent's Lease on the hub until `stop` resolves; a renewal that fails is tried again
/// soon (the hub reports `AgentNotConnected` only once the lease has lapsed).
pub async fn heartbeat(hub: Client, agent: AgentSettings, stop: impl std::future::Future<Output = ()>) {
    let api: Api<Lease> = Api::namespaced(hub, &agent.namespace);
    let name = lease_name(&agent.name);
    let every = agent.lease_duration / 3;
    let seconds = i32::try_from(agent.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let renew = async {
        loop {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(labels::AGENT.to_string(), agent.name.clone())])),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(agent.name.clone()),
                    lease_duration_seconds: Some(seconds),
                    renew_time: Some(MicroTime(jiff::Timestamp::now())),
                    ..Default::default()
                }),
            };
            // Bounded: a stalled link to the hub is a failed renewal (tried again), not a wait for
            // ever while the hub's view of this agent lapses.
            let (pp, body) = (PatchParams::apply("tuskfish-agent").force(), Patch::Apply(&lease));
            let renewed =
                tokio::time::timeout(every, api.patch(&name, &pp, &body)).await.unwrap_or_else(|_| {
                    Err(kube::Error::Service(format!("the hub did not answer within {every:?}").into()))
                });
            let wait = match renewed {
                Ok(_) => {
                    debug!(lease = %name, "agent lease renewed");
                    every
                }
                Err(error) => {
                    warn!(lease = %name, %error, "renewing the agent's lease on the hub failed; retrying");
                    Duration::from_secs(1).min(every)
                }
            };
            tokio::time::sleep(wait).await;
        }
    };
    tokio::select! { () = renew => {}, () = stop => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClusterRef, Tier};

    #[test]
    fn the_operator_serves_what_no_agent_does_and_each_agent_only_its_own() {
        let mine = |agent: Option<&str>| {
            let mut env = crate::api::fixtures::environment("prod", Tier::Prod);
            env.spec.cluster =
                agent.map(|a| ClusterRef { name: None, kube_config_secret_ref: None, agent: Some(a.into()) });
            env
        };
        let (local, prod, other) = (mine(None), mine(Some("prod")), mine(Some("dr")));
        let operator = Role::Operator;
        let agent = Role::Agent("prod".into());
        // Where the Release's objects were applied, for when its Environment is gone.
        let by_agent = prod.spec.cluster.clone();
        let table = [
            (&operator, Some(&local), None, true),
            (&operator, Some(&prod), None, false),
            (&operator, None, None, true),
            (&operator, None, by_agent.as_ref(), false),
            (&agent, Some(&prod), None, true),
            (&agent, Some(&other), None, false),
            (&agent, Some(&local), None, false),
            (&agent, None, None, false),
            (&agent, None, by_agent.as_ref(), true),
            // The Environment, while it exists, decides (not where the objects once went).
            (&agent, Some(&local), by_agent.as_ref(), false),
        ];
        for (role, env, applied, serves) in table {
            assert_eq!(
                role.serves(env, applied),
                serves,
                "{role:?} {:?} {applied:?}",
                env.map(|e| e.agent())
            );
        }
    }
}
