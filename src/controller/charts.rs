//! Charts at the controllers' edge: the repository credentials from the AppVersion's Secret, the
//! digest recorded at publish, and the chart's output for one Release.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use tracing::warn;

use super::context::Context;
use super::kept_renders::{KeptError, KeptRenders, Owner};
use crate::api::{AppVersion, Environment, Reason, Release};
use crate::egress::Egress;
use crate::helm::{ChartError, Credentials, Helm};
use crate::render::{self, chart::ChartOutput};

use super::refusal::Refusal;
use super::served_apis::ServedApis;

/// The cluster a chart is rendered for: what its `.Capabilities` are asked of (only when Helm runs).
#[derive(Clone)]
pub struct Target {
    pub apis: Arc<ServedApis>,
    pub client: Client,
}

/// Helm and the client to read Secrets with: the operator's, or the CLI user's for a dry run.
pub struct ChartAccess<'a> {
    pub helm: &'a Result<Arc<Helm>, String>,
    pub client: &'a Client,
    /// The operator's: where each pipeline's repositories may be, and the tasks Helm runs in
    /// (`None`: the CLI, which pulls as the person running it, from their machine, and waits).
    pub operator: Option<&'a Context>,
}

impl<'a> From<&'a Context> for ChartAccess<'a> {
    fn from(ctx: &'a Context) -> Self {
        Self { helm: &ctx.helm, client: &ctx.client, operator: Some(ctx) }
    }
}

impl ChartAccess<'_> {
    fn helm(&self) -> Result<Arc<Helm>, ChartError> {
        self.helm.clone().map_err(ChartError::Unavailable)
    }

    /// Where the operator may fetch charts from for `av`'s pipeline (`None`: anywhere, the CLI).
    fn egress(&self, av: &AppVersion) -> Option<Egress> {
        self.operator.map(|ctx| ctx.egress(&av.namespace().unwrap_or_default()))
    }
}

/// Whether the operator may fetch `chart` from its repository. Helm resolves the name again
/// itself, so this bounds where a chart comes from, not every byte.
async fn may_reach(egress: Option<&Egress>, chart: &crate::api::HelmChart) -> Result<(), ChartError> {
    let Some(egress) = egress else { return Ok(()) };
    egress.allows_url(&chart.repository).await.map_err(ChartError::EgressDenied)
}

/// Pulls the chart of a version being published: its digest (`None`: the version has no chart).
/// `Pending` while Helm pulls it (the AppVersion is woken when it is done).
pub async fn publish(
    access: ChartAccess<'_>,
    av: &AppVersion,
) -> Pending<Result<Option<String>, ChartError>> {
    let Some(chart) = av.spec.helm.clone() else { return Pending::Done(Ok(None)) };
    let helm = match access.helm() {
        Ok(helm) => helm,
        Err(e) => return Pending::Done(Err(e)),
    };
    let (egress, client, owned) = (access.egress(av), access.client.clone(), av.clone());
    let work = move || async move {
        may_reach(egress.as_ref(), &chart).await?;
        let creds = credentials(&client, &owned).await?;
        helm.publish(&owned.namespace().unwrap_or_default(), &chart, creds.as_ref()).await.map(Some)
    };
    // Keyed by what is published: an edit of the spec meanwhile makes the pull a new one.
    let key = format!("{:?}/{}", av.metadata.uid, crate::plan::spec_hash(&av.spec));
    match access.operator {
        None => Pending::Done(work().await),
        Some(ctx) => ctx.publishes.result(ObjectRef::from_obj(av), &key, work).await.into(),
    }
}

/// A result that may not be there yet: the work runs in the background and wakes its object.
#[derive(Debug)]
pub enum Pending<T> {
    Done(T),
    Running,
}

impl<T> From<Option<T>> for Pending<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Pending::Running, Pending::Done)
    }
}

/// What Helm renders of `av`'s chart for `rel` in `env` (`None`: the AppVersion has no chart);
/// `Pending::Running` while Helm renders it (the Release is woken when it is done).
pub async fn output(
    access: ChartAccess<'_>,
    target: &Target,
    av: &AppVersion,
    env: &Environment,
    rel: &Release,
) -> Pending<Result<Option<Arc<ChartOutput>>, Refusal>> {
    match prepare(&access, target, av, env, rel) {
        Err(refusal) => Pending::Done(Err(refusal)),
        Ok(Prepared::Plain) => Pending::Done(Ok(None)),
        Ok(Prepared::Kept(output)) => {
            // A result the background kept for this Release is the same output: not kept twice.
            if let Some(ctx) = access.operator {
                ctx.renders.forget(&ObjectRef::from_obj(rel));
            }
            Pending::Done(Ok(Some(output)))
        }
        Ok(Prepared::Render(render)) => {
            let key = render.key.clone();
            let work = move || render.run();
            let result = match access.operator {
                None => Some(work().await),
                Some(ctx) => ctx.renders.result(ObjectRef::from_obj(rel), &key, work).await,
            };
            match result {
                None => Pending::Running,
                Some(Ok(output)) => Pending::Done(Ok(Some(output))),
                Some(Err(refusal)) => Pending::Done(Err(refusal)),
            }
        }
    }
}

/// What [`output`] has without running Helm.
enum Prepared {
    /// The AppVersion has no chart.
    Plain,
    /// Rendered before (the steady state: asks nothing).
    Kept(Arc<ChartOutput>),
    Render(Box<Render>),
}

fn prepare(
    access: &ChartAccess<'_>,
    target: &Target,
    av: &AppVersion,
    env: &Environment,
    rel: &Release,
) -> Result<Prepared, Refusal> {
    let Some(chart) = av.spec.helm.as_ref() else { return Ok(Prepared::Plain) };
    let helm = access.helm()?;
    // Only published versions are selected, and publishing records the digest.
    let digest = av.status.as_ref().and_then(|s| s.chart_digest.clone()).ok_or_else(|| Refusal {
        reason: Reason::AppVersionNotPublished,
        message: format!("AppVersion {} has no chart digest yet", av.name_any()),
        transient: true,
    })?;
    let variables = render::variables_for(env, rel, &av.spec.app, &av.spec.version);
    let values = render::chart_values(
        &[chart.values.as_ref(), env.spec.helm_values.as_ref(), rel.spec.helm_values.as_ref()],
        &variables,
    )?;
    let release = rel.metadata.name.clone().unwrap_or_default();
    // Per pipeline and cluster: the same names elsewhere are another tenant's output (a chart that
    // generates a secret at render time must not hand one tenant's to another).
    let scope = format!("{}/{}", av.namespace().unwrap_or_default(), env.cluster_name());
    let key = Helm::output_key(&scope, &digest, &release, &env.spec.namespace, &values);
    let kept = access.operator.and_then(|ctx| ctx.kept_renders.clone());
    let uid = rel.metadata.uid.clone().unwrap_or_default();
    let pipeline = av.namespace().unwrap_or_default();
    let owner = Owner { pipeline: &pipeline, release: &release, uid: &uid };
    // In memory, and kept (or nowhere to keep it): the steady state, which asks nothing. An output
    // in memory that the store does not hold (values changed back, a rollback) is not used: it was
    // replaced there, and would be rendered anew after a restart.
    if let Some(output) = helm.rendered(&key).filter(|_| kept.as_ref().is_none_or(|k| k.holds(&owner, &key)))
    {
        return Ok(Prepared::Kept(output));
    }
    // What failed lately is not run again before its time (it would fail the same way, and hold
    // a Helm permit meanwhile): the Release is told when the next try is.
    if let Some((error, next_try)) = helm.remembered_failure(&key) {
        return Err(Refusal::from(error).tried_again_at(next_try));
    }
    Ok(Prepared::Render(Box::new(Render {
        kept,
        uid,
        helm,
        client: access.client.clone(),
        target: target.clone(),
        egress: access.egress(av),
        av: av.clone(),
        digest,
        release,
        namespace: env.spec.namespace.clone(),
        values,
        key,
    })))
}

/// One chart output to render, with everything it needs (it runs as a task of its own).
struct Render {
    /// Where what a rollout rendered is kept (`None`: in memory only, as in the CLI).
    kept: Option<KeptRenders>,
    /// The Release's uid (a Release made again under its name keeps nothing of this one).
    uid: String,
    helm: Arc<Helm>,
    client: Client,
    /// Its `.Capabilities` are asked as it is rendered, never for a kept output: a rollout is
    /// rendered once, with what the cluster served then (a CRD installed later shows in the next
    /// rollout, as with `helm upgrade`).
    target: Target,
    egress: Option<Egress>,
    av: AppVersion,
    digest: String,
    release: String,
    namespace: String,
    values: serde_json::Value,
    key: String,
}

impl Render {
    async fn run(self: Box<Self>) -> Result<Arc<ChartOutput>, Refusal> {
        let Self { kept, helm, client, target, egress, av, digest, release, uid, namespace, values, key } =
            *self;
        let pipeline = av.namespace().unwrap_or_default();
        let owner = Owner { pipeline: &pipeline, release: &release, uid: &uid };
        let kept_error = |e: KeptError| ChartError::Kept(e.to_string());
        let rendered = async {
            // What this rollout rendered before (another process, before a restart) is what it
            // applied: taken as it is, never rendered anew. One that no longer reads (a stricter
            // parser, a lower output limit) is rendered anew and replaced.
            if let Some(store) = &kept
                && let Some(manifest) =
                    store.load(&owner, &key, helm.max_output()).await.map_err(kept_error)?
            {
                match helm.adopt(&key, &manifest) {
                    Ok(output) => return Ok(output),
                    Err(e) => {
                        warn!(%release, namespace = %pipeline, error = %e, "a kept chart output is rendered anew")
                    }
                }
            }
            let chart = av
                .spec
                .helm
                .as_ref()
                .ok_or_else(|| ChartError::Unavailable("the version has no chart".into()))?;
            // The Secret is read only when the chart must be pulled: a kept chart needs no credentials.
            let path = match helm.kept_chart(&digest).await {
                Some(path) => path,
                None => {
                    may_reach(egress.as_ref(), chart).await?;
                    let creds = credentials(&client, &av).await?;
                    helm.pull_checked(&pipeline, chart, &digest, creds.as_ref()).await?
                }
            };
            let capabilities = target.apis.capabilities(&target.client).await?;
            let (output, manifest) =
                helm.template(&pipeline, &path, &release, &namespace, &values, &capabilities).await?;
            // Used only once kept: a render after a restart could differ from it.
            if let Some(store) = &kept {
                match store.save(&owner, &key, &manifest).await {
                    Ok(()) => {}
                    // Too large to keep: used from memory, rendered anew after a restart (as it
                    // always was before outputs were kept).
                    Err(e @ KeptError::TooLarge { .. }) => {
                        warn!(%release, namespace = %pipeline, error = %e, "chart output not kept");
                        store.cannot_keep(&owner, &key);
                    }
                    Err(e) => return Err(kept_error(e)),
                }
            }
            helm.remember_rendered(&key, output.clone());
            Ok(output)
        };
        match rendered.await {
            Ok(output) => {
                helm.forget_failure(&key);
                Ok(output)
            }
            Err(error) => {
                let next_try = helm.remember_failure(&key, &error);
                Err(Refusal::from(error).tried_again_at(next_try))
            }
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
