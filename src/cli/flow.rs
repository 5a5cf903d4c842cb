//! Gitflow, run: which branch a `flow` command creates, merges, tags and deletes, from what the
//! repository has. Pure; `git.rs` carries a plan out (all of it or, on a conflict, none of it).

use semver::Version;

use super::gitflow::{Branch, classify};

/// The kinds of Gitflow work branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Feature,
    Release,
    Hotfix,
}

/// What to do with the branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    Start,
    Finish,
}

/// What the repository has, as far as Gitflow is concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// Local branch names.
    pub branches: Vec<String>,
    /// Versions already tagged (`v1.3.9` or `1.3.9`).
    pub tags: Vec<Version>,
}

impl Layout {
    fn has(&self, b: &str) -> bool {
        self.branches.iter().any(|x| x == b)
    }

    /// `main`, or `master` in older repositories.
    fn main(&self) -> Result<&'static str, FlowError> {
        ["main", "master"].into_iter().find(|b| self.has(b)).ok_or(FlowError::Missing("main (or master)"))
    }

    fn develop(&self) -> Result<&'static str, FlowError> {
        ["develop", "development"].into_iter().find(|b| self.has(b)).ok_or(FlowError::Missing("develop"))
    }

    /// Open release branches with their versions.
    fn releases(&self) -> Vec<(String, Version)> {
        self.branches
            .iter()
            .filter_map(|b| match classify(b) {
                Ok(Branch::Release(v)) => Some((b.clone(), v)),
                _ => None,
            })
            .collect()
    }
}

/// One merge of a finish: `from` into `into`, with a merge commit (never a fast-forward, so the
/// branch's history stays visible).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub into: String,
    pub from: String,
}

/// What a `flow` command does, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Create this branch at this start point.
    pub create: Option<(String, String)>,
    pub merges: Vec<Merge>,
    /// Tag the result of the merge into this branch with this tag.
    pub tag: Option<(String, String)>,
    pub delete: Option<String>,
    /// The branch checked out at the end.
    pub end_on: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("the repository has no {0} branch; Gitflow needs it")]
    Missing(&'static str),
    #[error("branch {0} already exists")]
    Exists(String),
    #[error("there is no branch {0} to finish")]
    NoBranch(String),
    #[error("{0:?} is not a usable name: letters, digits, '.', '_' and '-' only, like FIN-142-rounding")]
    BadName(String),
    #[error("{0:?} is not a version: a release is X.Y or X.Y.Z (1.4, 1.4.0), a hotfix X.Y.Z (1.3.10)")]
    BadVersion(String),
    #[error("v{0} is already tagged: pick the next version")]
    Tagged(Version),
    #[error("{version} is not newer than the latest release v{latest}: a release starts a newer line")]
    NotNewer { version: Version, latest: Version },
}

/// The version a release or hotfix name stands for (`1.4` → `1.4.0`).
pub fn version_of(kind: Kind, name: &str) -> Result<Version, FlowError> {
    let bad = || FlowError::BadVersion(name.to_string());
    let parts: Vec<u64> = name
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match (kind, parts.as_slice()) {
        (Kind::Release, [major, minor]) => Ok(Version::new(*major, *minor, 0)),
        (Kind::Release | Kind::Hotfix, [major, minor, patch]) => Ok(Version::new(*major, *minor, *patch)),
        _ => Err(bad()),
    }
}

fn branch_of(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Feature => format!("feature/{name}"),
        Kind::Release => format!("release/{name}"),
        Kind::Hotfix => format!("hotfix/{name}"),
    }
}

/// `flow KIND start NAME`: the branch from its Gitflow base (`from` overrides it for a hotfix on an
/// older line, e.g. a `support/1.3` branch or the tag `v1.3.9`).
pub fn start(kind: Kind, name: &str, from: Option<&str>, layout: &Layout) -> Result<Plan, FlowError> {
    let branch = branch_of(kind, name);
    if layout.has(&branch) {
        return Err(FlowError::Exists(branch));
    }
    let base = match kind {
        Kind::Feature => {
            let ok = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && !name.starts_with(['.', '-'])
                && !name.ends_with(".lock")
                && !name.contains("..");
            if !ok {
                return Err(FlowError::BadName(name.to_string()));
            }
            layout.develop()?.to_string()
        }
        Kind::Release => {
            let v = version_of(kind, name)?;
            untagged(&v, layout)?;
            if let Some(latest) = layout.tags.iter().filter(|t| t.pre.is_empty()).max()
                && &v <= latest
            {
                return Err(FlowError::NotNewer { version: v, latest: latest.clone() });
            }
            layout.develop()?.to_string()
        }
        Kind::Hotfix => {
            untagged(&version_of(kind, name)?, layout)?;
            match from {
                Some(f) => f.to_string(),
                None => layout.main()?.to_string(),
            }
        }
    };
    Ok(Plan { create: Some((branch.clone(), base)), end_on: branch, ..Plan::default() })
}

fn untagged(v: &Version, layout: &Layout) -> Result<(), FlowError> {
    if layout.tags.contains(v) { Err(FlowError::Tagged(v.clone())) } else { Ok(()) }
}

/// `flow KIND finish NAME`:
/// - a feature goes into develop;
/// - a release into main (tagged), and the tagged main back into develop;
/// - a hotfix likewise, and into every open release branch of a newer line, so that a fix made for
///   the line in production reaches the lines being built.
///
/// The branch is deleted; develop is checked out.
pub fn finish(kind: Kind, name: &str, layout: &Layout) -> Result<Plan, FlowError> {
    let branch = branch_of(kind, name);
    if !layout.has(&branch) {
        return Err(FlowError::NoBranch(branch));
    }
    let develop = layout.develop()?.to_string();
    let merge = |into: &str| Merge { into: into.to_string(), from: branch.clone() };
    let mut plan = Plan { delete: Some(branch.clone()), end_on: develop.clone(), ..Plan::default() };
    match kind {
        Kind::Feature => plan.merges.push(merge(&develop)),
        Kind::Release | Kind::Hotfix => {
            let v = version_of(kind, name)?;
            untagged(&v, layout)?;
            let main = layout.main()?;
            plan.merges.push(merge(main));
            plan.tag = Some((format!("v{v}"), main.to_string()));
            // Back-merge the tagged commit, so develop's versions count from this release.
            plan.merges.push(Merge { into: develop.clone(), from: main.to_string() });
            if kind == Kind::Hotfix {
                let mut newer: Vec<(String, Version)> =
                    layout.releases().into_iter().filter(|(_, rv)| *rv > v).collect();
                newer.sort_by(|a, b| a.1.cmp(&b.1));
                plan.merges.extend(newer.iter().map(|(b, _)| merge(b)));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(branches: &[&str], tags: &[&str]) -> Layout {
        Layout {
            branches: branches.iter().map(|b| b.to_string()).collect(),
            tags: tags.iter().map(|t| Version::parse(t).unwrap()).collect(),
        }
    }

    fn merges(p: &Plan) -> Vec<(&str, &str)> {
        p.merges.iter().map(|m| (m.into.as_str(), m.from.as_str())).collect()
    }

    #[test]
    fn starts_branch_from_the_gitflow_base() {
        let l = layout(&["main", "develop"], &["1.3.9"]);
        let cases = [
            (Kind::Feature, "FIN-142-rounding", None, "feature/FIN-142-rounding", "develop"),
            (Kind::Release, "1.4", None, "release/1.4", "develop"),
            (Kind::Hotfix, "1.3.10", None, "hotfix/1.3.10", "main"),
            (Kind::Hotfix, "1.2.7", Some("support/1.2"), "hotfix/1.2.7", "support/1.2"),
        ];
        for (kind, name, from, branch, base) in cases {
            let p = start(kind, name, from, &l).unwrap();
            assert_eq!(p.create, Some((branch.to_string(), base.to_string())), "{kind:?} {name}");
            assert_eq!(p.end_on, branch);
        }
    }

    #[test]
    fn start_refuses_what_gitflow_would_not_do() {
        let l = layout(&["main", "develop", "feature/x", "release/1.4"], &["1.3.9", "1.3.10"]);
        let cases = [
            (Kind::Feature, "x", FlowError::Exists("feature/x".into())),
            (Kind::Feature, "two words", FlowError::BadName("two words".into())),
            (Kind::Feature, "../escape", FlowError::BadName("../escape".into())),
            (Kind::Release, "1.4", FlowError::Exists("release/1.4".into())),
            (Kind::Release, "next", FlowError::BadVersion("next".into())),
            (
                Kind::Release,
                "1.3",
                FlowError::NotNewer { version: Version::new(1, 3, 0), latest: Version::new(1, 3, 10) },
            ),
            (Kind::Hotfix, "1.3", FlowError::BadVersion("1.3".into())),
            (Kind::Hotfix, "1.3.10", FlowError::Tagged(Version::new(1, 3, 10))),
        ];
        for (kind, name, want) in cases {
            assert_eq!(start(kind, name, None, &l), Err(want), "{kind:?} {name}");
        }
        assert_eq!(
            start(Kind::Feature, "x2", None, &layout(&["main"], &[])),
            Err(FlowError::Missing("develop"))
        );
    }

    #[test]
    fn a_hotfix_reaches_main_develop_and_every_newer_release_line() {
        let l = layout(
            &[
                "main",
                "develop",
                "hotfix/1.3.10",
                "release/1.5",
                "release/1.4",
                "release/1.3.10-old",
                "release/1.2",
            ],
            &["1.3.9"],
        );
        let p = finish(Kind::Hotfix, "1.3.10", &l).unwrap();
        assert_eq!(
            merges(&p),
            vec![
                ("main", "hotfix/1.3.10"),
                ("develop", "main"),
                ("release/1.4", "hotfix/1.3.10"),
                ("release/1.5", "hotfix/1.3.10"),
            ],
            "release/1.2 is an older line; a branch that names no version is not a release line"
        );
        assert_eq!(p.tag, Some(("v1.3.10".into(), "main".into())));
        assert_eq!((p.delete.as_deref(), p.end_on.as_str()), (Some("hotfix/1.3.10"), "develop"));
    }

    #[test]
    fn releases_and_features_finish_where_gitflow_says() {
        let l = layout(&["master", "develop", "release/1.4", "feature/FIN-1"], &["1.3.9"]);
        let r = finish(Kind::Release, "1.4", &l).unwrap();
        assert_eq!(merges(&r), vec![("master", "release/1.4"), ("develop", "master")]);
        assert_eq!(r.tag, Some(("v1.4.0".into(), "master".into())));
        let f = finish(Kind::Feature, "FIN-1", &l).unwrap();
        assert_eq!(merges(&f), vec![("develop", "feature/FIN-1")]);
        assert_eq!(f.tag, None);
        assert_eq!(finish(Kind::Feature, "nope", &l), Err(FlowError::NoBranch("feature/nope".into())));
    }
}
