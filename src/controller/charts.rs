//! Charts at the controllers' edge: the repository credentials from the AppVersion's Secret, the
//! digest recorded at publish, and the chart's output for one Release.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::context::Context;
use crate::api::{AppVersion, Environment, Reason, Release};
use crate::helm::{ChartError, Credentials, Helm};
use crate::render::{self, chart::ChartOutput};

/// Why a chart cannot be rendered, as a condition says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub transient: bool,
}

impl Refusal {
    /// What a Release records for it.
    pub fn into_outcome(self) -> crate::plan::Outcome {
        let Self { reason, message, transient } = self;
        crate::plan::Outcome::Failed { reason, message, transient }
    }

    /// Says when a remembered failure is tried again (the same words until then: no status write).
    fn tried_again_at(mut self, next_try: jiff::Timestamp) -> Self {
        self.message = format!("{} (not tried again before {next_try})", self.message);
        self
    }
}

impl From<ChartError> for Refusal {
    fn from(e: ChartError) -> Self {
        Self { reason: e.reason(), transient: e.is_transient(), message: e.to_string() }
    }
}

impl From<super::identity::IdentityError> for Refusal {
    fn from(e: super::identity::IdentityError) -> Self {
        // Who the operator may act as does not change by waiting.
        Self { reason: e.reason(), message: e.to_string(), transient: false }
    }
}

impl From<render::RenderError> for Refusal {
    fn from(e: render::RenderError) -> Self {
        Self { reason: e.reason(), transient: e.is_transient(), message: e.to_string() }
    }
}

/// Helm and the client to read Secrets with: the operator's, or the CLI user's for a dry run.
pub struct ChartAccess<'a> {
    pub helm: &'a Result<Arc<Helm>, String>,
    pub client: &'a Client,
    /// The operator's: where each pipeline's repositories may be (`None`: the CLI, which pulls
    /// as the person running it, from their machine).
    pub egress: Option<&'a Context>,
}

impl<'a> From<&'a Context> for ChartAccess<'a> {
    fn from(ctx: &'a Context) -> Self {
        Self { helm: &ctx.helm, client: &ctx.client, egress: Some(ctx) }
    }
}

impl ChartAccess<'_> {
    fn helm(&self) -> Result<&Helm, ChartError> {
        self.helm.as_deref().map_err(|why| ChartError::Unavailable(why.clone()))
    }

    /// Whether the operator may fetch `av`'s chart from its repository for its pipeline. Helm
    /// resolves the name again itself, so this bounds where a chart comes from, not every byte.
    async fn may_reach(&self, av: &AppVersion, chart: &crate::api::HelmChart) -> Result<(), ChartError> {
        let Some(ctx) = self.egress else { return Ok(()) };
        let egress = ctx.egress(&av.namespace().unwrap_or_default());
        egress.allows_url(&chart.repository).await.map_err(ChartError::EgressDenied)
    }
}

/// Pulls the chart of a version being published; its digest.
pub async fn publish(access: ChartAccess<'_>, av: &AppVersion) -> Result<Option<String>, ChartError> {
    let Some(chart) = av.spec.helm.as_ref() else { return Ok(None) };
    let helm = access.helm()?;
    access.may_reach(av, chart).await?;
    let creds = credentials(access.client, av).await?;
    helm.publish(&av.namespace().unwrap_or_default(), chart, creds.as_ref()).await.map(Some)
}

/// What Helm renders of `av`'s chart for `rel` in `env` (`None`: the AppVersion has no chart).
pub async fn output(
    access: ChartAccess<'_>,
    av: &AppVersion,
    env: &Environment,
    rel: &Release,
) -> Result<Option<Arc<ChartOutput>>, Refusal> {
    let Some(chart) = av.spec.helm.as_ref() else { return Ok(None) };
    let helm = access.helm()?;
    // Only published versions are selected, and publishing records the digest.
    let digest = av.status.as_ref().and_then(|s| s.chart_digest.as_deref()).ok_or_else(|| Refusal {
        reason: Reason::AppVersionNotPublished,
        message: format!("AppVersion {} has no chart digest yet", av.name_any()),
        transient: true,
    })?;
    let variables = render::variables_for(env, rel, &av.spec.app, &av.spec.version);
    let values = render::chart_values(
        &[chart.values.as_ref(), env.spec.helm_values.as_ref(), rel.spec.helm_values.as_ref()],
        &variables,
    )?;
    let release = rel.metadata.name.as_deref().unwrap_or_default();
    let key = Helm::output_key(digest, release, &env.spec.namespace, &values);
    // What failed lately is not run again before its time (it would fail the same way, and hold
    // a Helm permit meanwhile): the Release is told when the next try is.
    if let Some((error, next_try)) = helm.remembered_failure(&key) {
        return Err(Refusal::from(error).tried_again_at(next_try));
    }
    let pipeline = av.namespace().unwrap_or_default();
    let rendered = async {
        // The Secret is read only when the chart must be pulled: a kept chart needs no credentials.
        let path = match helm.kept_chart(digest).await {
            Some(path) => path,
            None => {
                access.may_reach(av, chart).await?;
                let creds = credentials(access.client, av).await?;
                helm.pull_checked(&pipeline, chart, digest, creds.as_ref()).await?
            }
        };
        helm.template(&pipeline, &path, digest, release, &env.spec.namespace, &values).await
    };
    match rendered.await {
        Ok(output) => {
            helm.forget_failure(&key);
            Ok(Some(output))
        }
        Err(error) => {
            let next_try = helm.remember_failure(&key, &error);
            Err(Refusal::from(error).tried_again_at(next_try))
        }
    }
}

/// The repository credentials of `av`, read when a pull needs them (rarely: charts are kept).
async fn credentials(client: &Client, av: &AppVersion) -> Result<Option<Credentials>, ChartError> {
    let Some(name) = av.spec.helm.as_ref().and_then(|h| h.secret_ref.as_ref()).map(|r| r.name.as_str())
    else {
        return Ok(None);
    };
    let ns = av.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let missing = |what: String| ChartError::Credentials(format!("spec.helm.secretRef: {what}"));
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| missing(format!("reading Secret {ns}/{name}: {e}")))?
        .ok_or_else(|| missing(format!("Secret {ns}/{name} does not exist")))?;
    let key = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .ok_or_else(|| missing(format!("Secret {ns}/{name} has no {k:?} key")))
    };
    Ok(Some(Credentials { username: key("username")?, password: key("password")? }))
}
