//! Whether a ProductVersion can be published: each app named once, `after` naming only its own
//! apps and forming no cycle, every AppVersion it names published. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{CHANGES_LIMIT, ProductApp, ProductVersionSpec, Reason};

/// What the catalog says of one app version a product version names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    NotPublished,
    /// Published and vetoed since (the veto, described).
    Vetoed(String),
    /// Published, with its change ids.
    Published(Vec<String>),
}

/// A published product version: its rollout order and change ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub waves: Vec<Vec<String>>,
    pub changes: Vec<String>,
}

/// Why a product version is not published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
    /// Waiting may fix it (an AppVersion not yet there or published); else the spec must change.
    pub transient: bool,
}

impl Problem {
    fn broken(reason: Reason, message: String) -> Self {
        Self { reason, message, transient: false }
    }
}

/// Judges `spec`: its rollout order, then each app version through `found`.
pub fn publication(
    spec: &ProductVersionSpec,
    found: impl Fn(&ProductApp) -> Found,
) -> Result<Publication, Problem> {
    if let Err(e) = semver::Version::parse(spec.version.trim()) {
        let message = format!("spec.version {:?} is not a semantic version: {e}", spec.version);
        return Err(Problem::broken(Reason::InvalidVersion, message));
    }
    let waves = waves(&spec.apps)?;
    let mut missing = Vec::new();
    let mut unpublished = Vec::new();
    let mut vetoed = Vec::new();
    let mut changes: BTreeSet<String> = spec.changes.iter().map(|c| c.id.clone()).collect();
    for app in &spec.apps {
        match found(app) {
            Found::Missing => missing.push(format!("{} {}", app.app, app.version)),
            Found::NotPublished => unpublished.push(format!("{} {}", app.app, app.version)),
            Found::Vetoed(why) => vetoed.push(format!("{} {} ({why})", app.app, app.version)),
            Found::Published(ids) => changes.extend(ids),
        }
    }
    if !vetoed.is_empty() {
        let message =
            format!("it holds a vetoed version: {}; make a product version without it", vetoed.join(", "));
        return Err(Problem { reason: Reason::VersionVetoed, message, transient: true });
    }
    if !missing.is_empty() {
        let message = format!("no AppVersion in this namespace for {}", missing.join(", "));
        return Err(Problem { reason: Reason::AppVersionNotFound, message, transient: true });
    }
    if !unpublished.is_empty() {
        let message = format!("waiting for {} to be published", unpublished.join(", "));
        return Err(Problem { reason: Reason::AppVersionNotPublished, message, transient: true });
    }
    Ok(Publication { waves, changes: changes.into_iter().take(CHANGES_LIMIT).collect() })
}

/// The apps in rollout order: each wave's apps roll out after every app they name in `after`.
/// Refused: an app named twice, `after` naming an app not in the list, a cycle (named).
pub fn waves(apps: &[ProductApp]) -> Result<Vec<Vec<String>>, Problem> {
    let mut after: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in apps {
        if after.insert(a.app.as_str(), a.after.iter().map(String::as_str).collect()).is_some() {
            let message = format!("app {} is named more than once; name each app once", a.app);
            return Err(Problem::broken(Reason::DuplicateApp, message));
        }
    }
    for a in apps {
        if let Some(unknown) = a.after.iter().find(|d| !after.contains_key(d.as_str())) {
            let message =
                format!("{} rolls out after {unknown}, which is not an app of this product version", a.app);
            return Err(Problem::broken(Reason::UnknownApp, message));
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut waves = Vec::new();
    while done.len() < after.len() {
        let wave: Vec<&str> = after
            .iter()
            .filter(|(app, deps)| !done.contains(*app) && deps.iter().all(|d| done.contains(d)))
            .map(|(app, _)| *app)
            .collect();
        if wave.is_empty() {
            let cycle = cycle(&after, &done);
            let message = format!("the apps' order forms a cycle: {}", cycle.join(" after "));
            return Err(Problem::broken(Reason::DependencyCycle, message));
        }
        done.extend(wave.iter().copied());
        waves.push(wave.into_iter().map(str::to_string).collect());
    }
    Ok(waves)
}

/// A cycle among the apps not `done` (each of them waits on another one not done): follow the
/// first such wait from any of them until an app repeats.
fn cycle<'a>(after: &BTreeMap<&'a str, BTreeSet<&'a str>>, done: &BTreeSet<&'a str>) -> Vec<&'a str> {
    let Some(start) = after.keys().find(|a| !done.contains(*a)) else { return Vec::new() };
    let mut path = vec![*start];
    loop {
        let last = path[path.len() - 1];
        let next = after.get(last).and_then(|deps| deps.iter().find(|d| !done.contains(*d)));
        let Some(next) = next.copied() else { return path };
        if let Some(at) = path.iter().position(|a| *a == next) {
            let mut cycle = path.split_off(at);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, after: &[&str]) -> ProductApp {
        ProductApp {
            app: name.into(),
            version: "1.0.0".into(),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn apps_roll_out_in_waves_and_a_broken_order_is_refused_with_its_reason() {
        type Case = (Vec<ProductApp>, Result<Vec<Vec<&'static str>>, Reason>);
        let cases: Vec<Case> = vec![
            (
                vec![app("payments", &["ledger"]), app("ledger", &[])],
                Ok(vec![vec!["ledger"], vec!["payments"]]),
            ),
            (vec![app("a", &[]), app("b", &[])], Ok(vec![vec!["a", "b"]])),
            (
                vec![
                    app("gw", &["payments", "risk"]),
                    app("payments", &["ledger"]),
                    app("risk", &[]),
                    app("ledger", &[]),
                ],
                Ok(vec![vec!["ledger", "risk"], vec!["payments"], vec!["gw"]]),
            ),
            (vec![app("a", &[]), app("a", &[])], Err(Reason::DuplicateApp)),
            (vec![app("a", &["ghost"])], Err(Reason::UnknownApp)),
            (vec![app("a", &["b"]), app("b", &["c"]), app("c", &["a"])], Err(Reason::DependencyCycle)),
            (vec![app("a", &["a"])], Err(Reason::DependencyCycle)),
        ];
        for (apps, want) in cases {
            let got = waves(&apps).map_err(|p| p.reason);
            let want =
                want.map(|w| w.into_iter().map(|v| v.into_iter().map(String::from).collect()).collect());
            assert_eq!(got, want, "{apps:?}");
        }
    }

    #[test]
    fn a_cycle_is_named_app_by_app() {
        let err = waves(&[app("x", &[]), app("a", &["b"]), app("b", &["a"])]).unwrap_err();
        assert_eq!(err.message, "the apps' order forms a cycle: a after b after a");
    }

    #[test]
    fn published_only_when_every_app_version_is_and_the_changes_are_all_of_theirs() {
        let spec = ProductVersionSpec {
            product: "platform".into(),
            version: "1.3.10".into(),
            apps: vec![app("payments", &["ledger"]), app("ledger", &[])],
            changes: vec![crate::api::Change { id: "PLAT-1".into(), ..Default::default() }],
        };
        let all = |a: &ProductApp| Found::Published(vec![format!("{}-1", a.app.to_uppercase())]);
        let ok = publication(&spec, all).unwrap();
        assert_eq!(ok.changes, ["LEDGER-1", "PAYMENTS-1", "PLAT-1"]);
        let missing =
            publication(&spec, |a| if a.app == "ledger" { Found::Missing } else { all(a) }).unwrap_err();
        assert_eq!((missing.reason, missing.transient), (Reason::AppVersionNotFound, true));
        assert!(missing.message.contains("ledger 1.0.0"), "{}", missing.message);
        let waiting = publication(&spec, |_| Found::NotPublished).unwrap_err();
        assert_eq!(waiting.reason, Reason::AppVersionNotPublished);
        let bad = ProductVersionSpec { version: "1.3".into(), ..spec };
        assert_eq!(publication(&bad, all).unwrap_err().reason, Reason::InvalidVersion);
    }
}
