//! `product status | snapshot | diff`: products in the pipeline, a product version recorded from
//! what runs healthy in an Environment, and what differs between two product versions (or
//! Environments) app by app.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::api::PostParams;

use crate::api::{AppVersion, CLI_FIELD_MANAGER, Phase, ProductRelease, ProductVersion, Release};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Cell, Style, table};
use crate::cli::session::{Session, parse_version};
use crate::plan::product::snapshot::{AppDiff, compare, snapshot as snapshot_of};

/// Each ProductRelease: its product, Environment, versions, phase, and each app below it.
pub async fn status(s: &Session) -> CliResult<()> {
    let products = s.product_releases().await?;
    output::print(s.output, &products.iter().map(|p| &p.status).collect::<Vec<_>>(), || {
        render_status(&products, s.color)
    })
}

/// The products as rows, their apps below them (also under `tuskfish status`).
pub fn render_status(products: &[ProductRelease], color: bool) -> String {
    if products.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<&ProductRelease> = products.iter().collect();
    sorted.sort_by_key(|p| (p.spec.product.clone(), p.spec.environment.clone()));
    let mut rows = Vec::new();
    for p in sorted {
        let st = p.status.clone().unwrap_or_default();
        let style = match st.phase {
            Some(Phase::Healthy) => Style::Good,
            Some(Phase::Degraded | Phase::Failed) => Style::Bad,
            _ => Style::Busy,
        };
        let reason =
            st.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone()).unwrap_or_default();
        rows.push(vec![
            Cell { text: p.spec.product.clone(), style: Style::Bold },
            Cell::from(p.spec.environment.clone()),
            Cell::from(st.current_version.clone().unwrap_or_else(|| "-".into())),
            Cell { text: st.phase.map_or("Pending", Phase::as_str).to_string(), style },
            Cell::from(
                st.held_version.as_ref().map_or_else(|| reason.clone(), |h| format!("{h} held ({reason})")),
            ),
        ]);
        for a in &st.apps {
            rows.push(vec![
                Cell { text: format!("  {}", a.app), style: Style::Muted },
                Cell::from(String::new()),
                Cell::from(a.version.clone()),
                Cell::from(a.phase.map_or("Pending", Phase::as_str).to_string()),
                Cell { text: format!("Release {}", a.release), style: Style::Muted },
            ]);
        }
    }
    table(&["PRODUCT", "ENV", "VERSION", "PHASE", "NOTE"], &rows, color)
}

/// Records what runs healthy in `env` as `product` `version` (a ProductVersion), or says what
/// keeps it from being recorded.
pub async fn snapshot(
    s: &Session,
    env: &str,
    version: &str,
    product: Option<&str>,
    dry_run: bool,
) -> CliResult<()> {
    s.environment(env).await?;
    let version = parse_version(version)?;
    let (products, versions, releases) =
        (s.product_releases().await?, s.product_versions().await?, s.releases().await?);
    let product = match product {
        Some(p) => p.to_string(),
        None => {
            let names: BTreeSet<&str> = products
                .iter()
                .map(|p| p.spec.product.as_str())
                .chain(versions.iter().map(|v| v.spec.product.as_str()))
                .collect();
            match names.into_iter().collect::<Vec<_>>().as_slice() {
                [one] => one.to_string(),
                [] => return Err(CliError::Usage("no product yet: name it with --product".into())),
                many => {
                    return Err(CliError::Usage(format!(
                        "several products ({}): pick one with --product",
                        many.join(", ")
                    )));
                }
            }
        }
    };
    // The product's Releases there, if it runs there; else every Release of the Environment.
    let run_by = products.iter().find(|p| p.spec.product == product && p.spec.environment == env);
    let there: Vec<&Release> = releases
        .iter()
        .filter(|r| r.spec.environment == env)
        .filter(|r| run_by.is_none_or(|p| crate::api::owned_by(r, p)))
        .collect();
    // The order of what runs there (else of the newest version) is kept.
    let running = run_by.and_then(|p| p.status.as_ref()?.admitted.as_ref()).map(|a| a.version.as_str());
    let of_product = || versions.iter().filter(|v| v.spec.product == product);
    let previous = of_product()
        .find(|v| Some(v.spec.version.as_str()) == running)
        .or_else(|| of_product().max_by_key(|v| semver::Version::parse(&v.spec.version).ok()));
    let spec = snapshot_of(&product, &version, &there, previous)
        .map_err(|why| CliError::Failed(format!("cannot record {product} {version} from {env}: {why}")))?;
    if let Some(existing) =
        versions.iter().find(|v| v.spec.product == product && v.spec.version == version.to_string())
    {
        return Err(CliError::Failed(format!(
            "{product} {version} exists already (ProductVersion {}): a product version is recorded once; pick the next version",
            existing.name_any()
        )));
    }
    let name = format!("{product}-{version}").replace('+', "-");
    let mut pv = ProductVersion::new(&name, spec);
    pv.metadata.namespace = Some(s.ns.clone());
    let listed: Vec<String> = pv.spec.apps.iter().map(|a| format!("{} {}", a.app, a.version)).collect();
    if dry_run {
        println!("would record {product} {version} from {env}: {}", listed.join(", "));
        return Ok(());
    }
    let pp = PostParams { field_manager: Some(CLI_FIELD_MANAGER.into()), ..Default::default() };
    s.api::<ProductVersion>()
        .create(&pp, &pv)
        .await
        .map_err(|e| CliError::api(&format!("creating ProductVersion {name}"), e))?;
    println!("recorded {product} {version} from {env} (ProductVersion {name}): {}", listed.join(", "));
    Ok(())
}

/// Per app: the versions on each side and the change ids one has and the other lacks. A side is a
/// product version (`1.3.10`) or an Environment (what runs there). True when they differ.
pub async fn diff(s: &Session, a: &str, b: &str, product: Option<&str>) -> CliResult<bool> {
    let (versions, releases, envs, avs) =
        (s.product_versions().await?, s.releases().await?, s.environments().await?, s.app_versions().await?);
    let side = |which: &str| -> CliResult<BTreeMap<String, String>> {
        if envs.iter().any(|e| e.name_any() == which) {
            return Ok(releases
                .iter()
                .filter(|r| r.spec.environment == which)
                .filter_map(|r| Some((r.spec.app.clone(), r.status.as_ref()?.current_version.clone()?)))
                .collect());
        }
        let v = parse_version(which).map_err(|_| {
            CliError::NotFound(format!("{which:?} is neither an Environment nor a product version"))
        })?;
        let found: Vec<&ProductVersion> = versions
            .iter()
            .filter(|pv| product.is_none_or(|p| pv.spec.product == p))
            .filter(|pv| semver::Version::parse(&pv.spec.version).is_ok_and(|x| x == v))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.spec.apps.iter().map(|a| (a.app.clone(), a.version.clone())).collect()),
            [] => Err(CliError::NotFound(format!("no ProductVersion {v} in namespace {}", s.ns))),
            _ => {
                Err(CliError::Usage(format!("several products have a version {v}: pick one with --product")))
            }
        }
    };
    let (left, right) = (side(a)?, side(b)?);
    let changes = |app: &str, version: &str| -> BTreeSet<String> {
        let found = avs.iter().find(|av: &&AppVersion| av.spec.app == app && av.spec.version == version);
        found.map(|av| av.spec.changes.iter().map(|c| c.id.clone()).collect()).unwrap_or_default()
    };
    let rows = compare(&left, &right, changes);
    let differs = rows.iter().any(|r| r.a != r.b || !r.only_in_a.is_empty() || !r.only_in_b.is_empty());
    output::print(s.output, &rows, || render_diff(a, b, &rows, s.color))?;
    Ok(differs)
}

fn render_diff(a: &str, b: &str, rows: &[AppDiff], color: bool) -> String {
    let join = |ids: &[String]| if ids.is_empty() { "-".to_string() } else { ids.join(", ") };
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let style = if r.only_in_a.is_empty() { Style::Plain } else { Style::Bad };
            vec![
                Cell::from(r.app.clone()),
                Cell::from(r.a.clone().unwrap_or_else(|| "-".into())),
                Cell::from(r.b.clone().unwrap_or_else(|| "-".into())),
                Cell { text: join(&r.only_in_a), style },
                Cell::from(join(&r.only_in_b)),
            ]
        })
        .collect();
    let only_a = format!("ONLY IN {a}");
    let only_b = format!("ONLY IN {b}");
    table(&["APP", a, b, &only_a, &only_b], &cells, color)
}

/// The one ProductRelease of `product` (or of the only product there) in `env`.
async fn product_release_in(s: &Session, env: &str, product: Option<&str>) -> CliResult<ProductRelease> {
    s.environment(env).await?;
    let found: Vec<ProductRelease> = s
        .product_releases()
        .await?
        .into_iter()
        .filter(|p| p.spec.environment == env && product.is_none_or(|x| p.spec.product == x))
        .collect();
    match <[ProductRelease; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(v) if v.is_empty() => Err(CliError::NotFound(format!(
            "no ProductRelease{} in environment {env}",
            product.map(|p| format!(" of {p}")).unwrap_or_default()
        ))),
        Err(v) => {
            let names: Vec<String> = v.iter().map(|p| p.spec.product.clone()).collect();
            Err(CliError::Usage(format!(
                "several products run in {env} ({}): pick one with --product",
                names.join(", ")
            )))
        }
    }
}

/// Approves (or rejects) product version `version` in `env`: an Approval naming the ProductRelease
/// and the product (`spec.product`), in the name the API server verifies.
pub async fn approve(
    s: &Session,
    env: &str,
    version: &str,
    product: Option<&str>,
    reason: Option<String>,
    decision: crate::api::Decision,
) -> CliResult<()> {
    let version = parse_version(version)?;
    let pr = product_release_in(s, env, product).await?;
    let product = pr.spec.product.clone();
    let known = s.product_versions().await?;
    if !known.iter().any(|v| {
        v.spec.product == product && semver::Version::parse(&v.spec.version).is_ok_and(|x| x == version)
    }) {
        return Err(CliError::NotFound(format!(
            "no ProductVersion of {product} {version} in namespace {}",
            s.ns
        )));
    }
    let (user, groups) = s.identity().await?;
    let rejected = decision == crate::api::Decision::Reject;
    let name = super::approve::object_name(&format!(
        "{}-{version}-{user}{}",
        pr.name_any(),
        if rejected { "-rejected" } else { "" }
    ));
    let approval = crate::api::Approval::new(
        &name,
        crate::api::ApprovalSpec {
            release: pr.name_any(),
            version: version.to_string(),
            app: None,
            product: Some(product.clone()),
            environment: Some(env.to_string()),
            approver: Some(user.clone()),
            approver_groups: groups,
            decision: rejected.then_some(crate::api::Decision::Reject),
            reason: reason.filter(|r| !r.is_empty()),
        },
    );
    let pp = PostParams { field_manager: Some(CLI_FIELD_MANAGER.into()), ..Default::default() };
    let verb = if rejected { "rejected" } else { "approved" };
    match s.api::<crate::api::Approval>().create(&pp, &approval).await {
        Ok(_) => println!("{verb} {product} {version} for {env} (Approval {name}, approver {user})"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            println!("{product} {version} was already {verb} for {env} by {user}")
        }
        Err(e) => return Err(CliError::api(&format!("creating Approval {name}"), e)),
    }
    Ok(())
}

/// Pins the product in `env` to `version` (a merge patch of its ProductRelease's spec; the
/// Environment's gates still decide when it rolls out).
pub async fn deploy(s: &Session, env: &str, version: &str, product: Option<&str>) -> CliResult<()> {
    let version = parse_version(version)?;
    let pr = product_release_in(s, env, product).await?;
    let known = s.product_versions().await?;
    if !known.iter().any(|v| {
        v.spec.product == pr.spec.product
            && semver::Version::parse(&v.spec.version).is_ok_and(|x| x == version)
    }) {
        return Err(CliError::NotFound(format!(
            "no ProductVersion of {} {version} in namespace {}",
            pr.spec.product, s.ns
        )));
    }
    let patch =
        serde_json::json!({"spec": {"version": version.to_string(), "track": null, "promoteFrom": null}});
    s.merge_patch::<ProductRelease>(&pr.name_any(), patch).await?;
    println!("{} in {env}: pinned to {version} (ProductRelease {})", pr.spec.product, pr.name_any());
    Ok(())
}
