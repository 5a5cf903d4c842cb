//! The story board: every change id (story, bug) the pipeline's AppVersions carry, the Environments
//! it has reached (running version, since when) and those of its app still without it. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{AppVersion, ProductRelease, Release, RolloutResult};

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Story {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub app: String,
    /// The published versions that carry it, oldest first.
    pub versions: Vec<String>,
    /// Where it runs, in pipeline order.
    pub reached: Vec<Reached>,
    /// Environments that run the app without it, in pipeline order.
    pub missing: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reached {
    pub environment: String,
    /// The version running there now.
    pub version: String,
    /// When the first version carrying it that the recent history shows finished rolling out there
    /// (RFC 3339); absent when the history no longer tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The product version that runs it there, when a product runs the app there
    /// (`platform 1.3.10`): which platform version shipped the story.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// What to show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub id: Option<String>,
    pub app: Option<String>,
    pub type_: Option<String>,
    /// Only stories that reached (or miss) this Environment.
    pub environment: Option<String>,
}

/// The board of `app_versions` and `releases`, Environments in `order` (pipeline order); stories
/// sorted by app, then id.
pub fn board(
    app_versions: &[AppVersion],
    releases: &[Release],
    order: &[String],
    filter: &Filter,
) -> Vec<Story> {
    let position = |env: &str| order.iter().position(|e| e == env).unwrap_or(usize::MAX);
    let version_of = |av: &AppVersion| semver::Version::parse(av.spec.version.trim()).ok();
    // (app, id) → the story, with the versions that carry it.
    let mut stories: BTreeMap<(String, String), (Story, Vec<semver::Version>)> = BTreeMap::new();
    for av in app_versions {
        let Some(v) = version_of(av) else { continue };
        for c in &av.spec.changes {
            let entry = stories.entry((av.spec.app.clone(), c.id.clone())).or_insert_with(|| {
                let story = Story {
                    id: c.id.clone(),
                    title: c.title.clone(),
                    type_: c.type_.clone(),
                    app: av.spec.app.clone(),
                    versions: Vec::new(),
                    reached: Vec::new(),
                    missing: Vec::new(),
                };
                (story, Vec::new())
            });
            entry.1.push(v.clone());
        }
    }
    let mut releases: Vec<&Release> = releases.iter().collect();
    releases.sort_by_key(|r| position(&r.spec.environment));
    let mut out = Vec::new();
    for ((app, id), (mut story, mut versions)) in stories {
        if filter.id.as_ref().is_some_and(|f| !f.eq_ignore_ascii_case(&id))
            || filter.app.as_ref().is_some_and(|f| *f != app)
            || filter.type_.as_ref().is_some_and(|f| story.type_.as_deref() != Some(f.as_str()))
        {
            continue;
        }
        versions.sort();
        versions.dedup();
        story.versions = versions.iter().map(ToString::to_string).collect();
        for r in releases.iter().filter(|r| r.spec.app == app) {
            let status = r.status.clone().unwrap_or_default();
            let Some(running) = status.current_version.clone() else { continue };
            if status.changes.contains(&id) {
                let carries = |v: &str| semver::Version::parse(v).is_ok_and(|v| versions.contains(&v));
                let since = status
                    .history
                    .iter()
                    .filter(|h| h.result == RolloutResult::Succeeded && carries(&h.version))
                    .filter_map(|h| h.finished_at.as_ref())
                    .min_by_key(|t| t.0)
                    .map(|t| t.0.to_string());
                story.reached.push(Reached {
                    environment: r.spec.environment.clone(),
                    version: running,
                    since,
                    product: None,
                });
            } else {
                story.missing.push(r.spec.environment.clone());
            }
        }
        let env_ok = filter
            .environment
            .as_ref()
            .is_none_or(|e| story.reached.iter().any(|x| &x.environment == e) || story.missing.contains(e));
        if env_ok {
            out.push(story);
        }
    }
    out
}

/// Names, where a product runs the app, the product version that shipped each story there: the
/// ProductRelease whose Release runs it (its own, by name and owner) and what it runs healthy.
pub fn through_products(stories: &mut [Story], releases: &[Release], products: &[ProductRelease]) {
    for story in stories.iter_mut() {
        for reached in story.reached.iter_mut() {
            let run_by = releases
                .iter()
                .filter(|r| r.spec.app == story.app && r.spec.environment == reached.environment)
                .find_map(|r| products.iter().find(|p| crate::api::owned_by(r, p)));
            reached.product = run_by.and_then(|p| {
                let current = p.status.as_ref()?.current_version.as_deref()?;
                Some(format!("{} {current}", p.spec.product))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::HistoryEntry;
    use crate::api::fixtures::{app_version_with_changes, release_running};

    fn released(name: &str, env: &str, version: &str, changes: &[&str], history: &[(&str, i64)]) -> Release {
        let mut r = release_running(name, "pay", env, version);
        let s = r.status.as_mut().unwrap();
        s.changes = changes.iter().map(|c| c.to_string()).collect();
        s.history = history
            .iter()
            .map(|(v, at)| HistoryEntry {
                version: v.to_string(),
                started_at: Time(jiff::Timestamp::from_second(1_800_000_000 + at - 10).unwrap()),
                finished_at: Some(Time(jiff::Timestamp::from_second(1_800_000_000 + at).unwrap())),
                result: RolloutResult::Succeeded,
                message: None,
                rollback_of: None,
                approvers: Vec::new(),
                held: None,
                requester: Default::default(),
                generation: None,
            })
            .collect();
        r
    }

    fn fixture() -> (Vec<AppVersion>, Vec<Release>, Vec<String>) {
        let avs = vec![
            app_version_with_changes("pay-1.3.9", "pay", "1.3.9", &["FIN-100"]),
            app_version_with_changes("pay-1.3.10", "pay", "1.3.10", &["FIN-100", "FIN-142"]),
            app_version_with_changes("pay-1.4.0", "pay", "1.4.0", &["FIN-100", "FIN-142", "FIN-200"]),
        ];
        let releases = vec![
            released("pay-prod", "prod", "1.3.9", &["FIN-100"], &[("1.3.9", 100)]),
            released(
                "pay-dev",
                "dev",
                "1.4.0",
                &["FIN-100", "FIN-142", "FIN-200"],
                &[("1.4.0", 300), ("1.3.10", 200)],
            ),
            released("pay-test", "test", "1.3.10", &["FIN-100", "FIN-142"], &[("1.3.10", 250)]),
        ];
        (avs, releases, vec!["dev".into(), "test".into(), "prod".into()])
    }

    #[test]
    fn where_each_story_is_and_where_it_is_missing() {
        let (avs, releases, order) = fixture();
        let b = board(&avs, &releases, &order, &Filter::default());
        let ids: Vec<&str> = b.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["FIN-100", "FIN-142", "FIN-200"]);
        let fin142 = &b[1];
        assert_eq!(fin142.versions, ["1.3.10", "1.4.0"]);
        let reached: Vec<(&str, &str)> =
            fin142.reached.iter().map(|r| (r.environment.as_str(), r.version.as_str())).collect();
        assert_eq!(reached, [("dev", "1.4.0"), ("test", "1.3.10")], "pipeline order");
        assert_eq!(fin142.missing, ["prod"]);
        // Since: the first rollout of a version carrying it (1.3.10 in dev, before 1.4.0).
        assert_eq!(
            fin142.reached[0].since.as_deref(),
            Some(jiff::Timestamp::from_second(1_800_000_200).unwrap().to_string().as_str())
        );
    }

    #[test]
    fn filters() {
        let (avs, releases, order) = fixture();
        let only =
            |f: Filter| board(&avs, &releases, &order, &f).into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(only(Filter { id: Some("fin-142".into()), ..Default::default() }), ["FIN-142"]);
        assert_eq!(only(Filter { app: Some("ledger".into()), ..Default::default() }), Vec::<String>::new());
        assert_eq!(only(Filter { type_: Some("bug".into()), ..Default::default() }), Vec::<String>::new());
        assert_eq!(only(Filter { environment: Some("prod".into()), ..Default::default() }).len(), 3);
        assert_eq!(
            only(Filter { environment: Some("staging".into()), ..Default::default() }),
            Vec::<String>::new()
        );
    }
}
