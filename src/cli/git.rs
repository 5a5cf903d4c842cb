//! Reading a Git work tree with the `git` CLI (present wherever a build runs; no libgit2 to link).

use std::path::{Path, PathBuf};
use std::process::Command;

use semver::Version;

use super::error::{CliError, CliResult};
use super::gitflow::{Branch, GitFacts, classify};

/// A work tree and what `version` needs from it.
pub struct Repo {
    dir: PathBuf,
}

/// Where HEAD came from, for the AppVersion's `source`.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub commit: String,
    pub branch: String,
    /// `origin`'s URL without credentials.
    pub repo: Option<String>,
    /// Subjects of the commits since the latest release (newest first, at most 1000).
    pub subjects: Vec<String>,
}

/// CI systems check out a detached HEAD and name the branch in one of these.
const CI_BRANCH_VARS: [&str; 5] =
    ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH"];

impl Repo {
    pub fn open(dir: &Path) -> CliResult<Self> {
        let repo = Repo { dir: dir.to_path_buf() };
        let inside = repo.git(&["rev-parse", "--is-inside-work-tree"]).map_err(|_| {
            CliError::Usage(format!(
                "{} is not inside a Git work tree (run `tuskfish version` in your repository)",
                dir.display()
            ))
        })?;
        if inside != "true" {
            return Err(CliError::Usage(format!("{} is not inside a Git work tree", dir.display())));
        }
        if repo.git(&["rev-parse", "--is-shallow-repository"])? == "true" {
            return Err(CliError::Usage(
                "this is a shallow clone, so commit counts and tags are incomplete: fetch the full history (`git fetch --unshallow --tags`, or fetch-depth: 0 in CI)".into(),
            ));
        }
        repo.git(&["rev-parse", "--verify", "-q", "HEAD"])
            .map_err(|_| CliError::Usage("the repository has no commits yet".into()))?;
        Ok(repo)
    }

    fn git(&self, args: &[&str]) -> CliResult<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| CliError::Usage(format!("running git (is it installed?): {e}")))?;
        if !out.status.success() {
            return Err(CliError::Failed(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn count(&self, range: &str) -> CliResult<u64> {
        let n = self.git(&["rev-list", "--count", range])?;
        n.parse().map_err(|e| CliError::Failed(format!("git rev-list --count {range}: {n:?}: {e}")))
    }

    fn exists(&self, reference: &str) -> bool {
        self.git(&["rev-parse", "--verify", "-q", &format!("{reference}^{{commit}}")]).is_ok()
    }

    /// The branch: `explicit`, else the checked-out branch, else what the CI system says.
    fn branch(&self, explicit: Option<&str>) -> CliResult<String> {
        if let Some(b) = explicit {
            return Ok(b.to_string());
        }
        if let Ok(b) = self.git(&["symbolic-ref", "--short", "-q", "HEAD"])
            && !b.is_empty()
        {
            return Ok(b);
        }
        CI_BRANCH_VARS.iter().find_map(|v| std::env::var(v).ok().filter(|b| !b.is_empty())).ok_or_else(|| {
            CliError::Usage(format!(
                "HEAD is detached and no CI variable ({}) names the branch: pass --branch",
                CI_BRANCH_VARS.join(", ")
            ))
        })
    }

    /// Version tags (`v1.2.3` or `1.2.3`) as versions with their tag names.
    fn tags(&self, args: &[&str]) -> CliResult<Vec<(Version, String)>> {
        let list = self.git(args)?;
        Ok(list
            .lines()
            .filter_map(|t| {
                Version::parse(t.trim().trim_start_matches('v')).ok().map(|v| (v, t.trim().to_string()))
            })
            .collect())
    }

    pub fn facts(&self, explicit_branch: Option<&str>) -> CliResult<(GitFacts, Origin)> {
        let branch = self.branch(explicit_branch)?;
        let kind = classify(&branch).map_err(|e| CliError::Usage(e.to_string()))?;
        let head_tags = self.tags(&["tag", "--points-at", "HEAD"])?.into_iter().map(|(v, _)| v).collect();
        let latest = self
            .tags(&["tag", "--merged", "HEAD"])?
            .into_iter()
            .filter(|(v, _)| v.pre.is_empty())
            .max_by(|a, b| a.0.cmp(&b.0));
        let since_release = latest.as_ref().map_or("HEAD".to_string(), |(_, tag)| format!("{tag}..HEAD"));
        let commits_since_release = self.count(&since_release)?;
        let bases: &[&str] = match kind {
            Branch::Release(_) => {
                &["develop", "origin/develop", "main", "origin/main", "master", "origin/master"]
            }
            Branch::Hotfix(_) => &["main", "origin/main", "master", "origin/master"],
            _ => &[],
        };
        let base = bases.iter().find(|b| **b != branch && self.exists(b));
        let commits_on_branch = match base {
            Some(base) => {
                let fork = self.git(&["merge-base", "HEAD", base])?;
                self.count(&format!("{fork}..HEAD"))?
            }
            None => commits_since_release,
        };
        let subjects = self.git(&["log", "-n", "1000", "--format=%s", &since_release])?;
        let origin = Origin {
            commit: self.git(&["rev-parse", "HEAD"])?,
            branch: branch.clone(),
            repo: self.git(&["remote", "get-url", "origin"]).ok().map(|u| without_credentials(&u)),
            subjects: subjects.lines().map(String::from).collect(),
        };
        let facts = GitFacts {
            branch,
            head_tags,
            latest_release: latest.map(|(v, _)| v),
            commits_since_release,
            commits_on_branch,
        };
        Ok((facts, origin))
    }
}

/// `https://user:token@host/x.git` → `https://host/x.git`: tokens must not end up in a manifest.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn credentials_are_stripped_from_remote_urls() {
        for (url, want) in [
            (
                "https://ci:s3cret@git.example.com/finance/payments.git",
                "https://git.example.com/finance/payments.git",
            ),
            ("https://git.example.com/a@b/payments.git", "https://git.example.com/a@b/payments.git"),
            ("git@github.com:finance/payments.git", "git@github.com:finance/payments.git"),
            ("ssh://git@host:22/x", "ssh://host:22/x"),
        ] {
            assert_eq!(without_credentials(url), want);
        }
    }
}
