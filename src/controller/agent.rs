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

use crate::api::{Environment, labels};
use crate::plan::agent::lease_name;

/// Which Environments a process serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The operator: every Environment no agent serves.
    Operator,
    /// `tuskfish agent --name NAME`: only the Environments that name it.
    Agent(String),
}

impl Role {
    /// Whether this process deploys the Releases of `env` (`None`: the Environment does not exist,
    /// which the operator reports and an agent leaves alone).
    pub fn serves(&self, env: Option<&Environment>) -> bool {
        match (self, env) {
            (Role::Operator, env) => env.and_then(Environment::agent).is_none(),
            (Role::Agent(name), Some(env)) => env.agent() == Some(name.as_str()),
            (Role::Agent(_), None) => false,
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
            let wait = match api
                .patch(&name, &PatchParams::apply("tuskfish-agent").force(), &Patch::Apply(&lease))
                .await
            {
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
        let table = [
            (&operator, Some(&local), true),
            (&operator, Some(&prod), false),
            (&operator, None, true),
            (&agent, Some(&prod), true),
            (&agent, Some(&other), false),
            (&agent, Some(&local), false),
            (&agent, None, false),
        ];
        for (role, env, serves) in table {
            assert_eq!(role.serves(env), serves, "{role:?} {:?}", env.map(|e| e.agent()));
        }
    }
}
