//! Properties of the Gitflow versioning: branch names come from git and CI variables, so any string
//! must give a valid version or a clear error, never a panic or a version that does not parse.

use proptest::prelude::*;
use regex::Regex;
use semver::{Prerelease, Version};

use super::{
    Branch, DEFAULT_CHANGE_PATTERN, GitFacts, GitflowError, changes_in, classify, identifier, next_version,
};

fn branch_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(main|master|develop|development|release/|hotfix/|feature/|)[-a-zA-Z0-9._/üß ]{0,30}",
        "(release|hotfix)/v?[0-9]{1,25}(\\.[0-9]{0,25}){0,3}",
        Just("release/18446744073709551616.0".to_string()),
        Just("hotfix/0.0.18446744073709551615".to_string()),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    let number = prop_oneof![0u64..20, Just(u64::MAX), any::<u64>()];
    (number.clone(), number.clone(), number, "(|rc\\.[0-9]{1,3}|beta)").prop_map(|(a, b, c, pre)| Version {
        pre: Prerelease::new(&pre).unwrap_or(Prerelease::EMPTY),
        ..Version::new(a, b, c)
    })
}

fn facts() -> impl Strategy<Value = GitFacts> {
    (
        branch_name(),
        proptest::collection::vec(version(), 0..3),
        proptest::option::of(version()),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(branch, head_tags, latest_release, since, on_branch)| GitFacts {
            branch,
            head_tags,
            latest_release,
            commits_since_release: since,
            commits_on_branch: on_branch,
        })
}

proptest! {
    #[test]
    fn identifiers_are_always_valid_prerelease_identifiers(name in any::<String>()) {
        let id = identifier(&name);
        prop_assert!(!id.is_empty() && id.len() <= 41, "{id:?}");
        prop_assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{id:?}");
        prop_assert!(!id.bytes().all(|b| b.is_ascii_digit()), "{id:?} is numeric");
        prop_assert!(Prerelease::new(&format!("{id}.7")).is_ok(), "{id:?}");
    }

    #[test]
    fn any_branch_gives_a_version_or_a_clear_error(f in facts()) {
        match next_version(&f) {
            Ok(v) => {
                // What CI writes into an AppVersion must read back as the same semantic version.
                prop_assert_eq!(Version::parse(&v.to_string()).ok(), Some(v.clone()));
                if let Some(tagged) = f.head_tags.iter().max() {
                    prop_assert_eq!(&v, tagged, "a tag on HEAD wins");
                } else {
                    prop_assert!(!v.pre.is_empty(), "untagged builds are pre-releases: {v}");
                }
            }
            Err(GitflowError::UntaggedMain { .. }) => {
                prop_assert!(f.head_tags.is_empty());
                prop_assert!(matches!(classify(&f.branch), Ok(Branch::Main)));
            }
            Err(GitflowError::BadVersionBranch(b)) => {
                prop_assert_eq!(&b, &f.branch);
                prop_assert!(f.head_tags.is_empty());
                prop_assert!(b.starts_with("release/") || b.starts_with("hotfix/"), "{b:?}");
            }
            Err(GitflowError::NoNextMinor(_)) => {
                prop_assert!(f.head_tags.is_empty());
                prop_assert_eq!(f.latest_release.as_ref().map(|l| l.minor), Some(u64::MAX));
            }
        }
    }

    #[test]
    fn change_ids_are_found_once_each(subjects in proptest::collection::vec(
        prop_oneof![any::<String>(), "(fix|feat|chore)?:? ?(\\[[A-Za-z0-9-]{0,8}\\] ?){0,3}[a-zü ]{0,10}"],
        0..8,
    )) {
        let found = changes_in(&subjects, &Regex::new(DEFAULT_CHANGE_PATTERN).unwrap());
        let mut ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "an id is reported twice");
        for c in &found {
            prop_assert!(subjects.iter().any(|s| s.contains(&format!("[{}]", c.id))), "{:?}", c.id);
            prop_assert!(!c.title.contains(&format!("[{}]", c.id)), "the marker stays in the title");
        }
    }
}

#[test]
fn huge_version_numbers_in_branch_names_are_errors_not_panics() {
    for branch in ["release/18446744073709551616.0", "hotfix/1.2.99999999999999999999"] {
        assert_eq!(classify(branch), Err(GitflowError::BadVersionBranch(branch.into())));
    }
    // The next minor of the largest release overflows u64 (a panic in debug builds, a wrong
    // version 1.0.0-develop.0 in release builds); it is an error instead.
    let f = GitFacts {
        branch: "develop".into(),
        latest_release: Some(Version::new(1, u64::MAX, 0)),
        ..Default::default()
    };
    assert_eq!(next_version(&f), Err(GitflowError::NoNextMinor("v1.18446744073709551615.0".into())));
}
