//! What the CLI's `product` verbs compute, purely: a snapshot of what runs healthy in an
//! Environment as a product version, and the difference between two product versions (or two
//! Environments) app by app, with the change ids one has and the other lacks.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Phase, ProductApp, ProductVersion, ProductVersionSpec, Release};

/// The product version of `product` at `version` made of what `releases` (an Environment's) run,
/// each app at its running version; the order of `previous` (what runs there, or the newest) is kept
/// for the apps it names. Refused, naming each, while any of them is not healthy at what it wants.
pub fn snapshot(
    product: &str,
    version: &semver::Version,
    releases: &[&Release],
    previous: Option<&ProductVersion>,
) -> Result<ProductVersionSpec, String> {
    if releases.is_empty() {
        return Err("no Release runs there: nothing to record".into());
    }
    let mut unhealthy = Vec::new();
    let mut apps = Vec::new();
    for r in releases {
        let s = r.status.clone().unwrap_or_default();
        match (s.phase, s.current_version.as_deref(), s.desired_version.as_deref()) {
            (Some(Phase::Healthy), Some(current), Some(desired)) if current == desired => {
                apps.push((r.spec.app.clone(), current.to_string()));
            }
            (phase, current, _) => unhealthy.push(format!(
                "{} ({}{})",
                r.spec.app,
                phase.map_or("Pending", Phase::as_str),
                current.map(|c| format!(", runs {c}")).unwrap_or_default()
            )),
        }
    }
    if !unhealthy.is_empty() {
        unhealthy.sort();
        return Err(format!(
            "not everything there runs healthy: {}; try again once it does",
            unhealthy.join(", ")
        ));
    }
    apps.sort();
    let names: BTreeSet<&str> = apps.iter().map(|(a, _)| a.as_str()).collect();
    let order: BTreeMap<&str, &[String]> = previous
        .map(|p| p.spec.apps.iter().map(|a| (a.app.as_str(), a.after.as_slice())).collect())
        .unwrap_or_default();
    let apps = apps
        .iter()
        .map(|(app, v)| ProductApp {
            app: app.clone(),
            version: v.clone(),
            after: order
                .get(app.as_str())
                .map(|after| after.iter().filter(|d| names.contains(d.as_str())).cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    Ok(ProductVersionSpec {
        product: product.into(),
        version: version.to_string(),
        apps,
        changes: Vec::new(),
    })
}

/// One app of a comparison.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppDiff {
    pub app: String,
    pub a: Option<String>,
    pub b: Option<String>,
    /// Change ids A's version has and B's lacks (a hotfix not yet forward-ported, read A → B).
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

/// Compares two sides (app → version), with `changes` telling an app version's change ids.
pub fn compare(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    changes: impl Fn(&str, &str) -> BTreeSet<String>,
) -> Vec<AppDiff> {
    let apps: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    apps.into_iter()
        .map(|app| {
            let of =
                |side: &BTreeMap<String, String>| side.get(app).map(|v| changes(app, v)).unwrap_or_default();
            let (ca, cb) = (of(a), of(b));
            AppDiff {
                app: app.clone(),
                a: a.get(app).cloned(),
                b: b.get(app).cloned(),
                only_in_a: ca.difference(&cb).cloned().collect(),
                only_in_b: cb.difference(&ca).cloned().collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReleaseSpec, ReleaseStatus};

    fn rel(app: &str, phase: Phase, current: &str, desired: &str) -> Release {
        let mut r = Release::new(app, ReleaseSpec { app: app.into(), ..Default::default() });
        r.status = Some(ReleaseStatus {
            phase: Some(phase),
            current_version: Some(current.into()),
            desired_version: Some(desired.into()),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_snapshot_records_what_runs_healthy_and_keeps_the_products_order() {
        let (p, l) = (
            rel("payments", Phase::Healthy, "1.4.0-rc.1", "1.4.0-rc.1"),
            rel("ledger", Phase::Healthy, "1.4.0", "1.4.0"),
        );
        let mut prev = ProductVersion::new("platform-1.3.9", Default::default());
        prev.spec.apps = vec![
            ProductApp {
                app: "payments".into(),
                version: "1.3.9".into(),
                after: vec!["ledger".into(), "gone".into()],
            },
            ProductApp { app: "ledger".into(), version: "1.3.3".into(), after: vec![] },
        ];
        let v = semver::Version::parse("1.4.0-rc.1").unwrap();
        let spec = snapshot("platform", &v, &[&p, &l], Some(&prev)).unwrap();
        let apps: Vec<(&str, &str, &[String])> =
            spec.apps.iter().map(|a| (a.app.as_str(), a.version.as_str(), a.after.as_slice())).collect();
        assert_eq!(
            apps,
            [("ledger", "1.4.0", &[][..]), ("payments", "1.4.0-rc.1", &["ledger".to_string()][..])]
        );
        // Anything not healthy (or still rolling out) refuses the snapshot, naming it.
        let rolling = rel("ledger", Phase::Progressing, "1.3.3", "1.4.0");
        let err = snapshot("platform", &v, &[&p, &rolling], None).unwrap_err();
        assert!(err.contains("ledger (Progressing, runs 1.3.3)"), "{err}");
        let half = rel("ledger", Phase::Healthy, "1.3.3", "1.4.0");
        assert!(snapshot("platform", &v, &[&p, &half], None).is_err());
        assert!(snapshot("platform", &v, &[], None).is_err());
    }

    #[test]
    fn a_comparison_names_per_app_the_change_ids_one_side_lacks() {
        let side =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(a, v)| (a.to_string(), v.to_string())).collect();
        let a = side(&[("payments", "1.3.10"), ("ledger", "1.3.4")]);
        let b = side(&[("payments", "1.4.0-rc.2"), ("ledger", "1.3.4"), ("risk", "1.0.0")]);
        let changes = |app: &str, v: &str| -> BTreeSet<String> {
            match (app, v) {
                ("payments", "1.3.10") => ["FIN-142".into(), "FIN-100".into()].into(),
                ("payments", "1.4.0-rc.2") => ["FIN-100".into(), "FIN-200".into()].into(),
                _ => BTreeSet::new(),
            }
        };
        let d = compare(&a, &b, changes);
        assert_eq!(d.iter().map(|x| x.app.as_str()).collect::<Vec<_>>(), ["ledger", "payments", "risk"]);
        assert_eq!(
            (d[1].only_in_a.clone(), d[1].only_in_b.clone()),
            (vec!["FIN-142".into()], vec!["FIN-200".into()])
        );
        assert_eq!((d[2].a.as_deref(), d[2].b.as_deref()), (None, Some("1.0.0")));
    }
}
