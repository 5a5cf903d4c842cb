//! `deploy … --dry-run` / `promote … --dry-run`: what a deploy would do, without doing it. The
//! target version is rendered for the Environment as the operator would, each object is applied
//! server-side with `dryRun=All` against what is live (so admission, defaults and conflicts all
//! answer), and the preview lists a diff per object, what would be pruned, the change ids that would
//! ship and leave, and the gates that would hold it.

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use crate::api::{AppVersion, Environment, FIELD_MANAGER, Release, ReleaseSpec};
use crate::cli::error::{CliError, CliResult};
use crate::cli::helm_args;
use crate::cli::output;
use crate::cli::session::Session;
use crate::controller::Catalog;
use crate::controller::charts::{self, ChartAccess};
use crate::matrix::frozen;
use crate::render;

/// What a deploy would do.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub release: String,
    pub environment: String,
    pub from: Option<String>,
    pub to: String,
    pub namespace: String,
    pub objects: Vec<ObjectChange>,
    pub pruned: Vec<String>,
    pub ships: Vec<String>,
    pub leaves: Vec<String>,
    pub gates: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// `Kind/name`.
    pub object: String,
    /// `create`, `update`, `unchanged`, or `refused`.
    pub change: &'static str,
    /// A unified diff of the live object and the object as it would be (`refused`: the reason).
    pub diff: String,
}

pub async fn preview(s: &Session, app: &str, env_name: &str, version: &semver::Version) -> CliResult<()> {
    let p = preview_of(s, app, env_name, version).await?;
    output::print(s.output, &p, || render_text(&p))
}

/// The preview as text (what the web view shows).
pub async fn preview_text(
    s: &Session,
    app: &str,
    env_name: &str,
    version: &semver::Version,
) -> CliResult<String> {
    Ok(render_text(&preview_of(s, app, env_name, version).await?))
}

async fn preview_of(s: &Session, app: &str, env_name: &str, version: &semver::Version) -> CliResult<Preview> {
    let env = s.environment(env_name).await?;
    let av = s.app_version(app, version).await?;
    let existing = s.release_of(app, env_name).await?;
    plan(s, &env, &av, existing.as_ref(), app, version).await
}

async fn plan(
    s: &Session,
    env: &Environment,
    av: &AppVersion,
    existing: Option<&Release>,
    app: &str,
    version: &semver::Version,
) -> CliResult<Preview> {
    let env_name = env.name_any();
    let v = version.to_string();
    let mut target = existing.cloned().unwrap_or_else(|| {
        let spec = ReleaseSpec { app: app.into(), environment: env_name.clone(), ..Default::default() };
        let mut r = Release::new(&format!("{app}-{env_name}"), spec);
        r.metadata.namespace = Some(s.ns.clone());
        r
    });
    target.spec.version = Some(v.clone());
    target.spec.track = None;
    target.spec.promote_from = None;
    let rendered = render_for(s, env, &target, av).await?;
    let mut objects = Vec::new();
    let dry = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    for obj in &rendered.objects {
        let api: Api<DynamicObject> =
            Api::namespaced_with(s.client.clone(), &rendered.namespace, &obj.resource);
        let name = format!("{}/{}", obj.resource.kind, obj.name);
        let live = api.get_opt(&obj.name).await.map_err(|e| CliError::api(&format!("reading {name}"), e))?;
        let change = match api.patch(&obj.name, &dry, &Patch::Apply(&obj.body)).await {
            Ok(would) => {
                let (before, after) = (live.as_ref().map(comparable).unwrap_or_default(), comparable(&would));
                let diff = similar::TextDiff::from_lines(&before, &after)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("live {name}"), &format!("{name} at {v}"))
                    .to_string();
                let change = match (&live, before == after) {
                    (None, _) => "create",
                    (Some(_), true) => "unchanged",
                    (Some(_), false) => "update",
                };
                ObjectChange {
                    object: name,
                    change,
                    diff: if change == "unchanged" { String::new() } else { diff },
                }
            }
            Err(kube::Error::Api(e)) => ObjectChange { object: name, change: "refused", diff: e.message },
            Err(e) => return Err(CliError::api(&format!("previewing {name}"), e)),
        };
        objects.push(change);
    }
    let status = existing.and_then(|r| r.status.clone()).unwrap_or_default();
    let rendered_names: Vec<(String, String)> =
        rendered.objects.iter().map(|o| (o.resource.kind.clone(), o.name.clone())).collect();
    let pruned = status
        .inventory
        .iter()
        .flat_map(|i| i.objects.iter())
        .filter(|e| !rendered_names.contains(&(e.kind.clone(), e.name.clone())))
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    let target_ids: Vec<String> = av.spec.changes.iter().map(|c| c.id.clone()).collect();
    let ships = target_ids.iter().filter(|c| !status.changes.contains(c)).cloned().collect();
    let leaves = status.changes.iter().filter(|c| !target_ids.contains(c)).cloned().collect();
    let mut gates = Vec::new();
    if env.spec.requires_approval() {
        let approved = s.approvals().await?.iter().any(|a| {
            a.spec.release == target.name_any()
                && semver::Version::parse(&a.spec.version).is_ok_and(|x| &x == version)
        });
        gates.push(if approved {
            format!(
                "{env_name} requires approval: {v} has one (the approval policy decides whether it is enough)"
            )
        } else {
            format!(
                "{env_name} requires approval: {v} waits until `tuskfish approve {app} {v} --env {env_name}`"
            )
        });
    }
    if let Some(f) = frozen(env, jiff::Timestamp::now()) {
        gates.push(format!("{env_name} is frozen {f}: {v} waits"));
    }
    Ok(Preview {
        release: target.name_any(),
        environment: env_name,
        from: status.current_version.clone(),
        to: v,
        namespace: rendered.namespace,
        objects,
        pruned,
        ships,
        leaves,
        gates,
    })
}

/// What the operator would render for `release` in `env` at `av` (kinds looked up by discovery).
pub async fn render_for(
    s: &Session,
    env: &Environment,
    release: &Release,
    av: &AppVersion,
) -> CliResult<render::Rendered> {
    let catalog = Catalog::default();
    let what = format!("{} {}", av.spec.app, av.spec.version);
    let refused =
        |e: String| CliError::Failed(format!("{what} would not render for {}: {e}", env.name_any()));
    // A chart is rendered here as the operator renders it: the published digest, the same values.
    let helm = if av.spec.helm.is_some() { helm_args::for_cli() } else { Err(String::new()) };
    let access = ChartAccess { helm: &helm, client: &s.client, operator: None };
    // The CLI's cluster: an Environment in another cluster is previewed with this one's APIs.
    let target = charts::Target { apis: Default::default(), client: s.client.clone() };
    let charts::Pending::Done(chart) = charts::output(access, &target, av, env, release).await else {
        return Err(refused("Helm did not render the chart".into()));
    };
    let chart = chart.map_err(|r| refused(r.message))?;
    let objects = chart.as_deref().map_or(&[][..], |c| &c.objects[..]);
    catalog
        .learn(&s.client, &render::required_kinds(av, objects))
        .await
        .map_err(|e| CliError::Failed(format!("looking up the kinds {what} uses: {e}")))?;
    render::render(av, env, release, objects, &catalog).map_err(|e| refused(e.to_string()))
}

/// An object as YAML without what the server keeps for itself (so the diff shows the change).
fn comparable(o: &DynamicObject) -> String {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"] {
            meta.remove(k);
        }
    }
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
    }
    serde_saphyr::to_string(&v).unwrap_or_default()
}

fn render_text(p: &Preview) -> String {
    let mut out = format!(
        "dry run: {} in {} from {} to {} (nothing was changed)\n",
        p.release,
        p.environment,
        p.from.as_deref().unwrap_or("nothing"),
        p.to
    );
    for o in &p.objects {
        out.push_str(&format!("\n{} {}\n", o.change, o.object));
        if !o.diff.is_empty() {
            out.push_str(&o.diff);
        }
    }
    let list = |ids: &[String]| if ids.is_empty() { "-".to_string() } else { ids.join(", ") };
    out.push_str(&format!("\nwould prune: {}\n", list(&p.pruned)));
    out.push_str(&format!("change ids that ship: {}\n", list(&p.ships)));
    out.push_str(&format!("change ids that leave: {}\n", list(&p.leaves)));
    out.push_str(&format!(
        "gates: {}\n",
        if p.gates.is_empty() { "none holds it".into() } else { p.gates.join("; ") }
    ));
    out
}
