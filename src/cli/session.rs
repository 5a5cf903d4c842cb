//! One CLI invocation's connection: the client, the pipeline namespace, the output format, and the
//! lookups every verb shares (with errors that name what exists).

use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::error::{CliError, CliResult};
use super::output::Output;
use crate::api::{AppVersion, Approval, Environment, Release};
use crate::client::Target;
use crate::telemetry::RequestCounter;

pub use crate::api::CLI_FIELD_MANAGER;

#[derive(Clone)]
pub struct Session {
    pub client: Client,
    /// The namespace holding the Environments, AppVersions and Releases.
    pub ns: String,
    pub output: Output,
    /// Colour only on a terminal, and never when `NO_COLOR` is set.
    pub color: bool,
    pub target: Target,
    /// Where the verbs' messages go when they are not printed (the web view's actions).
    pub sink: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

impl Session {
    pub async fn connect(target: Target, namespace: Option<String>, output: Output) -> CliResult<Self> {
        let mut config = target.config().await?;
        // A CLI should say "unreachable" quickly rather than hang for the default 30 s.
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = None;
        let ns = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| CliError::Unreachable(format!("building the client: {e}")))?
            .with_layer(&RequestCounter::default())
            // `status -A` and `web` list every tenant's objects: one nested too deep must not fail them.
            .with_layer(&crate::bounded::BoundedLines::OWN)
            .build();
        let color =
            std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none();
        Ok(Self { client, ns, output, color, target, sink: None })
    }

    /// This session in `namespace`, its messages collected instead of printed.
    pub fn collecting(&self, namespace: String) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let sink = std::sync::Arc::default();
        let s = Self {
            ns: namespace,
            output: Output::Table,
            color: false,
            sink: Some(std::sync::Arc::clone(&sink)),
            ..self.clone()
        };
        (s, sink)
    }

    /// Who the API server says runs the CLI (a SelfSubjectReview): the name an Approval must carry,
    /// since the admission policy compares it with the request's authenticated user.
    pub async fn whoami(&self) -> CliResult<String> {
        Ok(self.identity().await?.0)
    }

    /// The user name and groups the API server authenticates the CLI as (SelfSubjectReview): what
    /// an Approval records, since the admission policy compares both with the request.
    pub async fn identity(&self) -> CliResult<(String, Vec<String>)> {
        crate::client::identity(&self.client)
            .await
            .map_err(|e| CliError::api("asking the API server who you are (SelfSubjectReview)", e))?
            .ok_or_else(|| CliError::Failed("the API server's SelfSubjectReview named no user".into()))
    }

    /// Who runs the CLI, for audit Events: the API server's word, else the kubeconfig user, else
    /// `$USER` (an Event is a note, not a proof).
    pub async fn actor(&self) -> String {
        match self.whoami().await {
            Ok(u) => u,
            Err(_) => self
                .target
                .user_name()
                .or_else(|| std::env::var("USER").ok())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "someone".into()),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A JSON merge patch as the CLI's field manager; a `metadata.resourceVersion` in `patch` makes
    /// it a compare-and-swap.
    pub async fn merge_patch<K>(&self, name: &str, patch: serde_json::Value) -> CliResult<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let pp = PatchParams { field_manager: Some(CLI_FIELD_MANAGER.into()), ..PatchParams::default() };
        self.api::<K>()
            .patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map_err(|e| CliError::api(&format!("updating {} {name}", K::kind(&())), e))
    }

    async fn list<K>(&self, what: &str) -> CliResult<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let list = self
            .api::<K>()
            .list(&ListParams::default())
            .await
            .map_err(|e| CliError::api(&format!("listing {what} in namespace {}", self.ns), e))?;
        Ok(list.items)
    }

    pub async fn environments(&self) -> CliResult<Vec<Environment>> {
        self.list("Environments").await
    }

    pub async fn releases(&self) -> CliResult<Vec<Release>> {
        self.list("Releases").await
    }

    pub async fn app_versions(&self) -> CliResult<Vec<AppVersion>> {
        self.list("AppVersions").await
    }

    pub async fn product_versions(&self) -> CliResult<Vec<crate::api::ProductVersion>> {
        self.list("ProductVersions").await
    }

    pub async fn product_releases(&self) -> CliResult<Vec<crate::api::ProductRelease>> {
        self.list("ProductReleases").await
    }

    pub async fn approvals(&self) -> CliResult<Vec<Approval>> {
        self.list("Approvals").await
    }

    /// The Environment called `name`, or an error listing the ones that exist.
    pub async fn environment(&self, name: &str) -> CliResult<Environment> {
        let envs = self.environments().await?;
        let known: Vec<String> = envs.iter().map(|e| e.name_any()).collect();
        envs.into_iter().find(|e| e.name_any() == name).ok_or_else(|| {
            CliError::NotFound(format!(
                "unknown environment {name:?} in namespace {} (known: {}); pick another with -n",
                self.ns,
                list_or_none(&known)
            ))
        })
    }

    /// The Release running `app` in `env`, if there is one; two are an error.
    pub async fn release_of(&self, app: &str, env: &str) -> CliResult<Option<Release>> {
        the_release_of(&self.releases().await?, app, env)
    }

    /// Like [`Self::release_of`], but a missing Release is an error that lists where the app runs.
    pub async fn existing_release(&self, app: &str, env: &str) -> CliResult<Release> {
        let releases = self.releases().await?;
        if let Some(r) = the_release_of(&releases, app, env)? {
            return Ok(r);
        }
        self.environment(env).await?;
        let envs: Vec<String> =
            releases.into_iter().filter(|r| r.spec.app == app).map(|r| r.spec.environment).collect();
        Err(CliError::NotFound(format!(
            "no Release of {app:?} in environment {env:?} (it runs in: {}); create one with `tuskfish deploy {app} VERSION --env {env}`",
            list_or_none(&envs)
        )))
    }

    /// The AppVersion of `app` at `version`, or an error listing the newest ones that exist.
    pub async fn app_version(&self, app: &str, version: &semver::Version) -> CliResult<AppVersion> {
        let of_app: Vec<AppVersion> =
            self.app_versions().await?.into_iter().filter(|a| a.spec.app == app).collect();
        let mut versions: Vec<semver::Version> =
            of_app.iter().filter_map(|a| semver::Version::parse(a.spec.version.trim()).ok()).collect();
        if let Some(av) = of_app
            .into_iter()
            .find(|a| semver::Version::parse(a.spec.version.trim()).is_ok_and(|v| &v == version))
        {
            return Ok(av);
        }
        if versions.is_empty() {
            return Err(CliError::NotFound(format!(
                "app {app:?} has no AppVersions in namespace {}; publish one first (see `tuskfish version --emit-appversion`)",
                self.ns
            )));
        }
        versions.sort();
        let newest: Vec<String> = versions.iter().rev().take(5).map(ToString::to_string).collect();
        Err(CliError::NotFound(format!(
            "{app} {version} not found in namespace {} (newest: {})",
            self.ns,
            newest.join(", ")
        )))
    }
}

/// The one Release of `app` in `env` among `releases`; two are an error.
fn the_release_of(releases: &[Release], app: &str, env: &str) -> CliResult<Option<Release>> {
    let mut found: Vec<&Release> =
        releases.iter().filter(|r| r.spec.app == app && r.spec.environment == env).collect();
    if found.len() > 1 {
        let names: Vec<String> = found.iter().map(|r| r.name_any()).collect();
        return Err(CliError::Failed(format!(
            "{} Releases run {app} in {env} ({}); delete all but one",
            found.len(),
            names.join(", ")
        )));
    }
    Ok(found.pop().cloned())
}

pub fn parse_version(s: &str) -> CliResult<semver::Version> {
    semver::Version::parse(s.trim().trim_start_matches('v')).map_err(|e| {
        CliError::Usage(format!("{s:?} is not a semantic version like 1.4.0 or 1.4.0-rc.1: {e}"))
    })
}

pub fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}
