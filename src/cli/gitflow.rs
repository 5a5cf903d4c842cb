//! The next version from Gitflow: which branch we are on, the release tags it contains and how many
//! commits it has. Pure; `git.rs` gathers the facts.

use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};

/// What the version is derived from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GitFacts {
    pub branch: String,
    /// Versions tagged on HEAD (`v1.4.0`, `1.4.0-rc.2`).
    pub head_tags: Vec<Version>,
    /// The newest release version (no pre-release) tagged on a commit HEAD contains.
    pub latest_release: Option<Version>,
    /// Commits on HEAD since `latest_release` (all commits without one).
    pub commits_since_release: u64,
    /// Commits on HEAD since it left its base branch (for `release/` and `hotfix/`).
    pub commits_on_branch: u64,
}

/// The kinds of Gitflow branches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Branch {
    Main,
    Develop,
    Release(Version),
    Hotfix(Version),
    /// `feature/NAME` and any other branch: a pre-release named after the branch.
    Topic(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GitflowError {
    #[error(
        "{branch} has no version tag on HEAD (latest release: {latest}); tag the release commit (git tag v1.2.3) or build from its release/ or hotfix/ branch"
    )]
    UntaggedMain { branch: String, latest: String },
    #[error("branch {0:?} should name its version like release/1.4, release/1.4.0 or hotfix/1.3.10")]
    BadVersionBranch(String),
    #[error("the latest release {0} has the largest possible minor version, so there is no next one")]
    NoNextMinor(String),
}

pub fn classify(branch: &str) -> Result<Branch, GitflowError> {
    let version_of = |rest: &str, patch_optional: bool| {
        let parts: Vec<Option<u64>> =
            rest.trim_start_matches('v').split('.').map(|s| s.parse().ok()).collect();
        match parts.as_slice() {
            [Some(major), Some(minor)] if patch_optional => Ok(Version::new(*major, *minor, 0)),
            [Some(major), Some(minor), Some(patch)] => Ok(Version::new(*major, *minor, *patch)),
            _ => Err(GitflowError::BadVersionBranch(branch.to_string())),
        }
    };
    Ok(match branch {
        "main" | "master" => Branch::Main,
        "develop" | "development" => Branch::Develop,
        _ => match branch.split_once('/') {
            Some(("release", rest)) => Branch::Release(version_of(rest, true)?),
            Some(("hotfix", rest)) => Branch::Hotfix(version_of(rest, false)?),
            Some(("feature", rest)) => Branch::Topic(format!("feature-{rest}")),
            _ => Branch::Topic(branch.to_string()),
        },
    })
}

/// The version of HEAD:
/// - a version tag on HEAD wins on any branch (the newest if several);
/// - `main`/`master`: must be tagged;
/// - `release/X.Y[.Z]`: `X.Y.Z-rc.N`, N = commits since the branch left develop;
/// - `hotfix/X.Y.Z`: `X.Y.Z-rc.N`, N = commits since the branch left main;
/// - `develop`: the next minor after the latest release, `-develop.N` (N = commits since it);
/// - `feature/NAME` and others: the next minor, `-feature-name.N`.
pub fn next_version(facts: &GitFacts) -> Result<Version, GitflowError> {
    if let Some(tagged) = facts.head_tags.iter().max() {
        return Ok(tagged.clone());
    }
    let latest = facts.latest_release.clone().unwrap_or_else(|| Version::new(0, 0, 0));
    // A tag like v1.18446744073709551615.0 is valid semver; its next minor does not exist.
    let next_minor = || {
        let minor =
            latest.minor.checked_add(1).ok_or_else(|| GitflowError::NoNextMinor(format!("v{latest}")))?;
        Ok(Version::new(latest.major, minor, 0))
    };
    let with_pre = |base: Version, ident: &str, n: u64| Version {
        pre: prerelease(&format!("{ident}.{n}")),
        build: BuildMetadata::EMPTY,
        ..base
    };
    Ok(match classify(&facts.branch)? {
        Branch::Main => {
            return Err(GitflowError::UntaggedMain {
                branch: facts.branch.clone(),
                latest: facts.latest_release.as_ref().map_or("none".into(), |v| format!("v{v}")),
            });
        }
        Branch::Release(v) | Branch::Hotfix(v) => with_pre(v, "rc", facts.commits_on_branch),
        Branch::Develop => with_pre(next_minor()?, "develop", facts.commits_since_release),
        Branch::Topic(name) => with_pre(next_minor()?, &identifier(&name), facts.commits_since_release),
    })
}

fn prerelease(s: &str) -> Prerelease {
    // Only built from `identifier` output and numbers, which are always valid.
    Prerelease::new(s).unwrap_or(Prerelease::EMPTY)
}

/// A branch name as one semver pre-release identifier: lowercase ASCII letters, digits and `-`,
/// at most 40 characters, never empty and never all digits.
pub fn identifier(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() || out.chars().all(|c| c.is_ascii_digit()) { format!("b{out}") } else { out }
}

/// A change id found in a commit subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundChange {
    pub id: String,
    /// The subject without the id marker.
    pub title: String,
    /// `bug` for `fix…` subjects, `story` for `feat…`, else none.
    pub kind: Option<&'static str>,
}

/// Default change id pattern: a tracker key in brackets, e.g. `[FIN-142] Fix rounding`.
pub const DEFAULT_CHANGE_PATTERN: &str = r"\[([A-Z][A-Z0-9]+-[0-9]+)\]";

/// Change ids in commit subjects (newest first); the first capture group is the id (the whole match
/// without one). Each id once, at its newest mention.
pub fn changes_in(subjects: &[String], pattern: &Regex) -> Vec<FoundChange> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for subject in subjects {
        let title = pattern.replace_all(subject, " ").split_whitespace().collect::<Vec<_>>().join(" ");
        for caps in pattern.captures_iter(subject) {
            let Some(id) = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str().to_string()) else {
                continue;
            };
            if id.is_empty() || !seen.insert(id.clone()) {
                continue;
            }
            let title = title.clone();
            let lower = title.to_ascii_lowercase();
            let kind = if lower.starts_with("fix") {
                Some("bug")
            } else if lower.starts_with("feat") {
                Some("story")
            } else {
                None
            };
            out.push(FoundChange { id, title, kind });
        }
    }
    out
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn facts(branch: &str, head: &[&str], latest: Option<&str>, since: u64, on_branch: u64) -> GitFacts {
        GitFacts {
            branch: branch.into(),
            head_tags: head.iter().map(|t| v(t)).collect(),
            latest_release: latest.map(v),
            commits_since_release: since,
            commits_on_branch: on_branch,
        }
    }

    #[test]
    fn versions_by_branch() {
        let cases = [
            (facts("main", &["1.3.9"], Some("1.3.9"), 0, 0), "1.3.9"),
            (facts("master", &["1.3.9", "1.4.0"], Some("1.4.0"), 0, 0), "1.4.0"),
            (facts("release/1.4", &[], Some("1.3.9"), 12, 3), "1.4.0-rc.3"),
            (facts("release/1.4.2", &[], Some("1.4.1"), 2, 0), "1.4.2-rc.0"),
            (facts("release/1.4", &["1.4.0"], Some("1.4.0"), 0, 3), "1.4.0"),
            (facts("hotfix/1.3.10", &[], Some("1.3.9"), 2, 2), "1.3.10-rc.2"),
            (facts("hotfix/v1.3.10", &["1.3.10"], Some("1.3.10"), 0, 2), "1.3.10"),
            (facts("develop", &[], Some("1.3.9"), 7, 0), "1.4.0-develop.7"),
            (facts("develop", &[], None, 3, 0), "0.1.0-develop.3"),
            (
                facts("feature/FIN-142_new report", &[], Some("1.3.9"), 9, 0),
                "1.4.0-feature-fin-142-new-report.9",
            ),
            (facts("renovate/serde-1.x", &[], Some("2.0.1"), 1, 0), "2.1.0-renovate-serde-1-x.1"),
            (facts("develop", &["1.4.0-rc.2"], Some("1.3.9"), 7, 0), "1.4.0-rc.2"),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(next_version(f).map(|v| v.to_string()).as_deref(), Ok(*want), "case {i}: {f:?}");
        }
    }

    #[test]
    fn untagged_main_and_malformed_version_branches_are_errors() {
        let e = next_version(&facts("main", &[], Some("1.3.9"), 2, 0)).unwrap_err();
        assert!(e.to_string().contains("latest release: v1.3.9"), "{e}");
        for branch in ["release/next", "hotfix/1.3", "release/1.x", "hotfix/"] {
            assert_eq!(
                next_version(&facts(branch, &[], None, 1, 1)),
                Err(GitflowError::BadVersionBranch(branch.into())),
                "{branch}"
            );
        }
    }

    #[test]
    fn identifiers_are_valid_semver() {
        for (name, want) in [
            ("feature-ABC", "feature-abc"),
            ("--x--y--", "x-y"),
            ("007", "b007"),
            ("ü", "b"),
            ("a".repeat(60).as_str(), &"a".repeat(40)),
        ] {
            let id = identifier(name);
            assert_eq!(id, want);
            assert!(Prerelease::new(&format!("{id}.1")).is_ok(), "{id}");
        }
    }

    #[test]
    fn change_ids_from_subjects() {
        let subjects: Vec<String> = [
            "fix: [FIN-142] rounding of cents",
            "[FIN-200] feat: instant payouts [FIN-201]",
            "chore: bump deps",
            "[FIN-142] earlier mention",
            "[fin-9] lowercase is not a key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found = changes_in(&subjects, &Regex::new(DEFAULT_CHANGE_PATTERN).unwrap());
        let got: Vec<(&str, &str, Option<&str>)> =
            found.iter().map(|c| (c.id.as_str(), c.title.as_str(), c.kind)).collect();
        assert_eq!(
            got,
            [
                ("FIN-142", "fix: rounding of cents", Some("bug")),
                ("FIN-200", "feat: instant payouts", Some("story")),
                ("FIN-201", "feat: instant payouts", Some("story")),
            ]
        );
        let custom = changes_in(&subjects, &Regex::new(r"#\d+|FIN-\d+").unwrap());
        assert_eq!(custom.first().map(|c| c.id.as_str()), Some("FIN-142"));
    }
}
