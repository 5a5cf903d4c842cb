//! Who the operator is in an Environment's namespace. With `Environment.spec.serviceAccountName`
//! every apply, prune and read of that Environment's objects impersonates that ServiceAccount of
//! the target namespace (as Flux's multi-tenancy lockdown does), so what a pipeline may deploy is
//! what RBAC grants that ServiceAccount there, not the operator's own rights.
//!
//! With a deployer role (`--deployer-cluster-role`, the chart's default), an Environment that
//! names none deploys as the ServiceAccount [`DEPLOYER`], which the operator creates in the
//! namespace with a RoleBinding to that ClusterRole: every write is then bounded to the one
//! namespace, whatever else the operator may do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::{Client, Config};

use crate::api::labels;

/// The ServiceAccount (and RoleBinding) the operator creates for Environments that name none,
/// when it has a deployer role.
pub const DEPLOYER: &str = "tuskfish-deployer";

/// Impersonating clients kept at most (one per ServiceAccount in use).
const CLIENTS_KEPT: usize = 256;

/// Who Environments deploy as, by the operator's flags.
#[derive(Clone, Debug, Default)]
pub struct IdentityRule {
    /// `--require-service-account`: an Environment with no ServiceAccount (its own or the
    /// deployer) gets nothing deployed.
    pub required: bool,
    /// `--deployer-cluster-role`: the ClusterRole the [`DEPLOYER`] ServiceAccount is bound to in
    /// each namespace (`None`: Environments without one deploy with the operator's own rights).
    pub deployer_role: Option<String>,
}

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
    rule: IdentityRule,
    /// What the clients' answers are bounded by (another cluster's, by default).
    bounds: crate::bounded::BoundedLines,
    clients: Mutex<HashMap<String, Client>>,
    /// Namespaces where this process found (or made) the deployer: looked at once per process.
    provisioned: Mutex<HashSet<String>>,
}

impl Identities {
    pub fn new(base: Option<Config>, counts: Arc<RequestCounts>, rule: IdentityRule) -> Self {
        let bounds = crate::bounded::BoundedLines::REMOTE;
        Self { base, counts, rule, bounds, clients: Mutex::default(), provisioned: Mutex::default() }
    }

    /// For the operator's own cluster: its API server is trusted, and its admission webhooks may
    /// take their time (up to 30 s).
    pub fn of_own_cluster(self) -> Self {
        Self { bounds: crate::bounded::BoundedLines::OWN, ..self }
    }

    /// The ServiceAccount an Environment's objects are handled as (`None`: the operator itself).
    pub fn service_account_of<'a>(&self, env: &'a Environment) -> Option<&'a str> {
        let deployer = self.rule.deployer_role.is_some().then_some(DEPLOYER);
        env.spec.service_account_name.as_deref().or(deployer)
    }

    /// The user an Environment's objects are handled as (`None`: the operator itself).
    pub fn user_of(&self, env: &Environment) -> Option<String> {
        self.service_account_of(env).map(|sa| format!("system:serviceaccount:{}:{sa}", env.spec.namespace))
    }

    /// Makes sure the deployer ServiceAccount and its RoleBinding exist in `env`'s namespace when
    /// the Environment deploys as the deployer (read once per namespace and process; created
    /// when missing, never changed: one an admin made is theirs).
    pub async fn ensure_deployer(&self, own: &Client, env: &Environment) -> Result<(), kube::Error> {
        let Some(role) = self.rule.deployer_role.as_deref() else { return Ok(()) };
        if env.spec.service_account_name.is_some() {
            return Ok(());
        }
        let ns = env.spec.namespace.as_str();
        let done = |set: &Mutex<HashSet<String>>| {
            set.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(ns)
        };
        if done(&self.provisioned) {
            return Ok(());
        }
        let meta = ObjectMeta {
            name: Some(DEPLOYER.into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_VALUE.to_string(),
            )])),
            ..ObjectMeta::default()
        };
        let account = ServiceAccount { metadata: meta.clone(), ..ServiceAccount::default() };
        create_missing(&Api::namespaced(own.clone(), ns), &account).await?;
        let binding = RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: DEPLOYER.into(),
                namespace: Some(ns.into()),
                ..Subject::default()
            }]),
        };
        create_missing(&Api::namespaced(own.clone(), ns), &binding).await?;
        self.provisioned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(ns.to_string());
        Ok(())
    }

    /// The client for `env`'s objects: `own` when the Environment deploys as no ServiceAccount,
    /// else one that impersonates it (made once per ServiceAccount and kept).
    pub fn client_for(&self, own: &Client, env: &Environment) -> Result<Client, IdentityError> {
        let Some(user) = self.user_of(env) else {
            return if self.rule.required { Err(IdentityError::Required) } else { Ok(own.clone()) };
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
            // Another cluster's server is a tenant's to choose (see `cluster::bounded`); our own is bounded too.
            .with_layer(&self.bounds)
            .build();
        // A tenant can name any number of ServiceAccounts over time; the clients of the ones no
        // longer named are dropped now and then (each is rebuilt cheaply on its next use).
        if clients.len() >= CLIENTS_KEPT {
            clients.clear();
        }
        clients.insert(user, client.clone());
        Ok(client)
    }
}

/// Creates `object` unless it exists (read first: at rest this asks, and writes, nothing more).
async fn create_missing<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    match api.create(&PostParams::default(), object).await {
        // Made meanwhile by someone else: theirs stands.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Tier;

    #[test]
    fn the_user_is_the_service_account_of_the_target_namespace() {
        let mut env = crate::api::fixtures::environment("prod", Tier::Prod);
        let own = Identities::new(None, Arc::default(), IdentityRule::default());
        let rule = IdentityRule { required: true, deployer_role: Some("tuskfish-apply".into()) };
        let deployer = Identities::new(None, Arc::default(), rule);
        assert_eq!(own.user_of(&env), None);
        assert_eq!(
            deployer.user_of(&env).as_deref(),
            Some("system:serviceaccount:finance-prod:tuskfish-deployer")
        );
        env.spec.service_account_name = Some("deployer".into());
        for ids in [own, deployer] {
            assert_eq!(ids.user_of(&env).as_deref(), Some("system:serviceaccount:finance-prod:deployer"));
        }
    }

    #[tokio::test]
    async fn a_required_identity_is_never_replaced_by_the_operators_own() {
        let config = Config::new("http://127.0.0.1:9".parse().unwrap());
        let own = Client::try_from(config.clone()).unwrap();
        let mut env = crate::api::fixtures::environment("prod", Tier::Prod);
        let rule = IdentityRule { required: true, deployer_role: None };
        let required = Identities::new(Some(config.clone()), Arc::default(), rule);
        assert_eq!(required.client_for(&own, &env).err(), Some(IdentityError::Required));
        assert_eq!(IdentityError::Required.reason(), Reason::ServiceAccountRequired);
        env.spec.service_account_name = Some("deployer".into());
        assert!(required.client_for(&own, &env).is_ok());
        // Without a configuration to impersonate from, an identity is refused, not skipped.
        let blind = Identities::new(None, Arc::default(), IdentityRule::default());
        let err = blind.client_for(&own, &env).err().unwrap();
        assert_eq!(err.reason(), Reason::Forbidden);
        assert!(err.to_string().contains("system:serviceaccount:finance-prod:deployer"), "{err}");
    }
}
