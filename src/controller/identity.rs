//! Who the operator is in an Environment's namespace. With `Environment.spec.serviceAccountName`
//! every apply, prune and read of that Environment's objects impersonates that ServiceAccount of
//! the target namespace (as Flux's multi-tenancy lockdown does), so what a pipeline may deploy is
//! what RBAC grants that ServiceAccount there, not the operator's own rights.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::{Client, Config};

use crate::api::{Environment, Reason};
use crate::telemetry::{RequestCounter, RequestCounts};

/// Why there is no client for an Environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "this operator requires every Environment to name the ServiceAccount it deploys as: set spec.serviceAccountName"
    )]
    Required,
    #[error("cannot act as ServiceAccount {user}: {why}")]
    Unavailable { user: String, why: String },
}

impl IdentityError {
    pub fn reason(&self) -> Reason {
        match self {
            IdentityError::Required => Reason::ServiceAccountRequired,
            IdentityError::Unavailable { .. } => Reason::Forbidden,
        }
    }
}

pub struct Identities {
    /// The operator's own client configuration, which impersonating clients start from (`None`:
    /// impersonation is not available, e.g. a client handed in without its configuration).
    base: Option<Config>,
    counts: Arc<RequestCounts>,
    /// `--require-service-account`: an Environment without one gets nothing deployed.
    required: bool,
    clients: Mutex<HashMap<String, Client>>,
}

impl Identities {
    pub fn new(base: Option<Config>, counts: Arc<RequestCounts>, required: bool) -> Self {
        Self { base, counts, required, clients: Mutex::default() }
    }

    /// The user an Environment's objects are handled as (`None`: the operator itself).
    pub fn user_of(env: &Environment) -> Option<String> {
        env.spec
            .service_account_name
            .as_deref()
            .map(|sa| format!("system:serviceaccount:{}:{sa}", env.spec.namespace))
    }

    /// The client for `env`'s objects: `own` when the Environment names no ServiceAccount,
    /// else one that impersonates it (made once per ServiceAccount and kept).
    pub fn client_for(&self, own: &Client, env: &Environment) -> Result<Client, IdentityError> {
        let Some(user) = Self::user_of(env) else {
            return if self.required { Err(IdentityError::Required) } else { Ok(own.clone()) };
        };
        // Only a map of clients: a lock poisoned elsewhere still holds good ones.
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&user) {
            return Ok(c.clone());
        }
        let unavailable = |why: String| IdentityError::Unavailable { user: user.clone(), why };
        let mut config = self.base.clone().ok_or_else(|| {
            unavailable("the operator has no client configuration to impersonate from".into())
        })?;
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = None;
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| unavailable(e.to_string()))?
            .with_layer(&RequestCounter::with_counts(self.counts.clone()))
            // Another cluster's server is a tenant's to choose (see `cluster::bounded`).
            .with_layer(&super::cluster::BoundedLines { limit: super::cluster::LINE_LIMIT })
            .build();
        clients.insert(user, client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Tier;

    #[test]
    fn the_user_is_the_service_account_of_the_target_namespace() {
        let mut env = crate::api::fixtures::environment("prod", Tier::Prod);
        assert_eq!(Identities::user_of(&env), None);
        env.spec.service_account_name = Some("deployer".into());
        assert_eq!(Identities::user_of(&env).as_deref(), Some("system:serviceaccount:finance-prod:deployer"));
    }

    #[tokio::test]
    async fn a_required_identity_is_never_replaced_by_the_operators_own() {
        let config = Config::new("http://127.0.0.1:9".parse().unwrap());
        let own = Client::try_from(config.clone()).unwrap();
        let mut env = crate::api::fixtures::environment("prod", Tier::Prod);
        let required = Identities::new(Some(config.clone()), Arc::default(), true);
        assert_eq!(required.client_for(&own, &env).err(), Some(IdentityError::Required));
        assert_eq!(IdentityError::Required.reason(), Reason::ServiceAccountRequired);
        env.spec.service_account_name = Some("deployer".into());
        assert!(required.client_for(&own, &env).is_ok());
        // Without a configuration to impersonate from, an identity is refused, not skipped.
        let blind = Identities::new(None, Arc::default(), false);
        let err = blind.client_for(&own, &env).err().unwrap();
        assert_eq!(err.reason(), Reason::Forbidden);
        assert!(err.to_string().contains("system:serviceaccount:finance-prod:deployer"), "{err}");
    }
}
