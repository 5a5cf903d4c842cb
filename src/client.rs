//! Building the kube client the same way for the operator, the CLI and tests.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::telemetry::RequestCounter;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: kube::config::KubeconfigError },
    #[error("no usable cluster configuration (set KUBECONFIG or --kubeconfig, or run in a pod): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("invalid cluster configuration: {0}")]
    Config(#[from] kube::config::KubeconfigError),
    #[error("building the client: {0}")]
    Build(#[from] kube::Error),
}

/// Where to find the cluster: an explicit kubeconfig/context, else the usual inference
/// (`KUBECONFIG`, `~/.kube/config`, in-cluster).
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Act as this user (`--as`, as kubectl: the kubeconfig's user must be allowed to impersonate).
    pub impersonate: Option<String>,
    /// ... in these groups (`--as-group`).
    pub impersonate_groups: Vec<String>,
}

impl Target {
    /// A target for one kubeconfig file, as it is.
    pub fn kubeconfig(path: impl Into<PathBuf>) -> Self {
        Self { kubeconfig: Some(path.into()), ..Self::default() }
    }

    pub async fn config(&self) -> Result<Config, ClientError> {
        let mut config = self.base_config().await?;
        if let Some(user) = &self.impersonate {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.impersonate_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(self.impersonate_groups.clone());
        }
        Ok(config)
    }

    async fn base_config(&self) -> Result<Config, ClientError> {
        let options = KubeConfigOptions { context: self.context.clone(), ..KubeConfigOptions::default() };
        match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|source| ClientError::Kubeconfig { path: path.clone(), source })?;
                Ok(Config::from_custom_kubeconfig(kc, &options).await?)
            }
            None if self.context.is_some() => Ok(Config::from_kubeconfig(&options).await?),
            None => Ok(Config::infer().await?),
        }
    }

    /// The kubeconfig user of the context in use (e.g. for recording who approved), if there is a
    /// kubeconfig at all.
    pub fn user_name(&self) -> Option<String> {
        if self.impersonate.is_some() {
            return self.impersonate.clone();
        }
        let kc = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).ok()?,
            None => Kubeconfig::read().ok()?,
        };
        let context = self.context.clone().or(kc.current_context)?;
        kc.contexts.into_iter().find(|c| c.name == context)?.context?.user
    }

    /// A client whose requests are counted by `counter`.
    pub async fn client(&self, counter: &RequestCounter) -> Result<Client, ClientError> {
        let mut config = self.config().await?;
        // No read timeout (it would cut quiet watches); a non-watch request that gets no answer
        // within its bound (a stalled connection) fails instead, so no reconcile waits for ever.
        config.read_timeout = None;
        config.connect_timeout = Some(std::time::Duration::from_secs(10));
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(counter)
            .with_layer(&crate::bounded::BoundedLines::OWN)
            .build())
    }
}

/// Who the API server authenticates `client` as (a SelfSubjectReview): the user name admission
/// policies see in `request.userInfo.username`. `None` when the review names no user.
pub async fn whoami(client: &Client) -> Result<Option<String>, kube::Error> {
    Ok(identity(client).await?.map(|(user, _)| user))
}

/// The user name and groups the API server authenticates `client` as (`request.userInfo`).
pub async fn identity(client: &Client) -> Result<Option<(String, Vec<String>)>, kube::Error> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let reviews: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    let review = reviews.create(&kube::api::PostParams::default(), &SelfSubjectReview::default()).await?;
    let Some(user) = review.status.and_then(|s| s.user_info) else { return Ok(None) };
    let name = user.username.filter(|u| !u.is_empty());
    Ok(name.map(|n| (n, user.groups.unwrap_or_default())))
}
