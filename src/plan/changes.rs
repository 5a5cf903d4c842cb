//! Stories and bugs across environments: what one has that another lacks, and fixes shipped on an
//! older version line that the newer line does not contain yet (forward ports).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::AppVersion;

/// A version running somewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped<'a> {
    pub environment: &'a str,
    pub version: semver::Version,
}

/// A change shipped on an older line and missing from the newest version of a newer one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub change: String,
    /// Where it shipped: version → environments.
    pub shipped_in: BTreeMap<String, BTreeSet<String>>,
    /// The newest version of the newer line, which lacks it.
    pub missing_from: String,
}

/// The change ids of a version, sorted and deduplicated, at most `limit`.
pub fn ids_of(av: &AppVersion, limit: usize) -> Vec<String> {
    let ids: BTreeSet<&str> = av.spec.changes.iter().map(|c| c.id.as_str()).collect();
    ids.into_iter().take(limit).map(str::to_string).collect()
}

/// Change ids of `a` that `b` does not have.
pub fn only_in<'a>(a: &'a AppVersion, b: &AppVersion) -> Vec<&'a str> {
    let theirs: BTreeSet<&str> = b.spec.changes.iter().map(|c| c.id.as_str()).collect();
    let mut ids: Vec<&str> =
        a.spec.changes.iter().map(|c| c.id.as_str()).filter(|id| !theirs.contains(id)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn line(v: &semver::Version) -> (u64, u64) {
    (v.major, v.minor)
}

/// Forward-port gaps for a Release running `current`: changes in versions of older lines running
/// anywhere (`shipped`) that the newest AppVersion of `current`'s line does not contain.
/// `app_versions` are the published versions of the app.
pub fn forward_port_gaps(
    current: &semver::Version,
    app_versions: &[(semver::Version, &AppVersion)],
    shipped: &[Shipped<'_>],
) -> Vec<Gap> {
    let Some((newest_v, newest)) =
        app_versions.iter().filter(|(v, _)| line(v) == line(current)).max_by(|a, b| a.0.cmp(&b.0))
    else {
        return Vec::new();
    };
    let has: BTreeSet<&str> = newest.spec.changes.iter().map(|c| c.id.as_str()).collect();
    let mut gaps: BTreeMap<String, Gap> = BTreeMap::new();
    for s in shipped.iter().filter(|s| line(&s.version) < line(current)) {
        let Some((_, av)) = app_versions.iter().find(|(v, _)| v == &s.version) else { continue };
        for c in av.spec.changes.iter().filter(|c| !has.contains(c.id.as_str())) {
            let gap = gaps.entry(c.id.clone()).or_insert_with(|| Gap {
                change: c.id.clone(),
                shipped_in: BTreeMap::new(),
                missing_from: newest_v.to_string(),
            });
            gap.shipped_in.entry(s.version.to_string()).or_default().insert(s.environment.to_string());
        }
    }
    gaps.into_values().collect()
}

/// One line a person can read, at most `max` gaps spelled out.
pub fn describe(gaps: &[Gap], max: usize) -> String {
    let mut parts: Vec<String> = gaps
        .iter()
        .take(max)
        .map(|g| {
            let wheres: Vec<String> = g
                .shipped_in
                .iter()
                .map(|(v, envs)| format!("{v} in {}", envs.iter().cloned().collect::<Vec<_>>().join(", ")))
                .collect();
            format!("{} ({})", g.change, wheres.join("; "))
        })
        .collect();
    if gaps.len() > max {
        parts.push(format!("and {} more", gaps.len() - max));
    }
    let missing_from = gaps.first().map(|g| g.missing_from.as_str()).unwrap_or_default();
    format!("not forward-ported to {missing_from}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppVersionSpec, Change};

    fn av(version: &str, changes: &[&str]) -> AppVersion {
        AppVersion::new(
            &format!("pay-{version}"),
            AppVersionSpec {
                app: "pay".into(),
                version: version.into(),
                changes: changes.iter().map(|c| Change { id: c.to_string(), ..Default::default() }).collect(),
                ..Default::default()
            },
        )
    }

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn hotfix_on_the_old_line_is_reported_until_the_new_line_has_it() {
        let avs = [
            av("1.3.9", &["FIN-101"]),
            av("1.3.10", &["FIN-101", "FIN-142"]),
            av("1.4.0-rc.1", &["FIN-101", "FIN-150"]),
        ];
        let published: Vec<_> = avs.iter().map(|a| (v(&a.spec.version), a)).collect();
        let shipped = [
            Shipped { environment: "prod", version: v("1.3.9") },
            Shipped { environment: "dev-1-3", version: v("1.3.10") },
            Shipped { environment: "test", version: v("1.3.10") },
            Shipped { environment: "dev-1-4", version: v("1.4.0-rc.1") },
        ];
        let gaps = forward_port_gaps(&v("1.4.0-rc.1"), &published, &shipped);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].change, "FIN-142");
        assert_eq!(gaps[0].missing_from, "1.4.0-rc.1");
        assert_eq!(
            describe(&gaps, 10),
            "not forward-ported to 1.4.0-rc.1: FIN-142 (1.3.10 in dev-1-3, test)"
        );
        // The old line itself has nothing to forward-port.
        assert!(forward_port_gaps(&v("1.3.10"), &published, &shipped).is_empty());

        // A newer 1.4 build with the fix clears it, even before it is deployed anywhere.
        let fixed = av("1.4.0-rc.2", &["FIN-101", "FIN-142", "FIN-150"]);
        let mut published = published;
        published.push((v("1.4.0-rc.2"), &fixed));
        assert!(forward_port_gaps(&v("1.4.0-rc.1"), &published, &shipped).is_empty());
    }

    #[test]
    fn diff_and_long_lists() {
        let a = av("1.3.10", &["FIN-142", "FIN-101", "FIN-142"]);
        let b = av("1.3.9", &["FIN-101"]);
        assert_eq!(only_in(&a, &b), ["FIN-142"]);
        assert_eq!(ids_of(&a, 10), ["FIN-101", "FIN-142"]);
        assert_eq!(ids_of(&a, 1), ["FIN-101"]);
        assert!(only_in(&b, &a).is_empty());
        let gaps: Vec<Gap> = (0..30)
            .map(|i| Gap {
                change: format!("X-{i}"),
                shipped_in: BTreeMap::new(),
                missing_from: "2.0.0".into(),
            })
            .collect();
        assert!(describe(&gaps, 5).ends_with("and 25 more"));
    }
}
