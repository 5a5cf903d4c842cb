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
        answer(args, &out)
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
        self.facts_at(&branch, "HEAD")
    }

    /// The facts of `branch` at commit `at` (HEAD, or the branch itself for a line not checked out).
    fn facts_at(&self, branch: &str, at: &str) -> CliResult<(GitFacts, Origin)> {
        let branch = branch.to_string();
        let kind = classify(&branch).map_err(|e| CliError::Usage(e.to_string()))?;
        let head_tags = self.tags(&["tag", "--points-at", at])?.into_iter().map(|(v, _)| v).collect();
        let latest = self
            .tags(&["tag", "--merged", at])?
            .into_iter()
            .filter(|(v, _)| v.pre.is_empty())
            .max_by(|a, b| a.0.cmp(&b.0));
        let since_release = latest.as_ref().map_or(at.to_string(), |(_, tag)| format!("{tag}..{at}"));
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
                let fork = self.git(&["merge-base", at, base])?;
                self.count(&format!("{fork}..{at}"))?
            }
            None => commits_since_release,
        };
        let subjects = self.git(&["log", "-n", "1000", "--format=%s", &since_release])?;
        let origin = Origin {
            commit: self.git(&["rev-parse", at])?,
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

/// What a `flow` command did.
#[derive(Debug, Default)]
pub struct Done {
    /// `branch: old..new` for each branch moved, created or deleted.
    pub moved: Vec<String>,
    pub tag: Option<String>,
}

impl Repo {
    /// Local branches and version tags.
    pub fn layout(&self) -> CliResult<crate::cli::flow::Layout> {
        let branches = self.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"])?;
        Ok(crate::cli::flow::Layout {
            branches: branches.lines().map(String::from).collect(),
            tags: self.tags(&["tag", "--list"])?.into_iter().map(|(v, _)| v).collect(),
        })
    }

    /// Refuses to touch a work tree with uncommitted changes or an unfinished merge.
    pub fn require_clean(&self) -> CliResult<()> {
        let dirty = self.git(&["status", "--porcelain", "--untracked-files=no"])?;
        if !dirty.is_empty() {
            // `XY path`, the status letters of one side possibly blank.
            let files: Vec<&str> = dirty
                .lines()
                .map(|l| l.trim_start().split_once(' ').map_or(l, |(_, f)| f.trim()))
                .take(5)
                .collect();
            return Err(CliError::Usage(format!(
                "the work tree has uncommitted changes ({}): commit or stash them first",
                files.join(", ")
            )));
        }
        if self.git(&["rev-parse", "-q", "--verify", "MERGE_HEAD"]).is_ok() {
            return Err(CliError::Usage("a merge is in progress: finish or abort it first".into()));
        }
        Ok(())
    }

    fn commit_of(&self, reference: &str) -> CliResult<String> {
        self.git(&["rev-parse", "--verify", "-q", &format!("{reference}^{{commit}}")])
            .map_err(|_| CliError::NotFound(format!("{reference} is not a branch, tag or commit here")))
    }

    /// Carries out `plan`: every merge is computed first without touching any branch or file (`git
    /// merge-tree`), so a conflict leaves the repository exactly as it was; then all branches and
    /// the tag move in one ref transaction, and the end branch is checked out.
    pub fn carry_out(&self, plan: &crate::cli::flow::Plan) -> CliResult<Done> {
        use std::collections::BTreeMap;
        let mut done = Done::default();
        // Where each branch the plan touches is now, and will be.
        let mut tips: BTreeMap<String, String> = BTreeMap::new();
        let mut updates: Vec<String> = Vec::new();
        if let Some((branch, from)) = &plan.create {
            let at = self.commit_of(from)?;
            updates.push(format!("create refs/heads/{branch} {at}"));
            done.moved.push(format!("{branch}: created at {from} ({})", short(&at)));
        }
        let mut merged_into: BTreeMap<String, String> = BTreeMap::new();
        for m in &plan.merges {
            let into = match tips.get(&m.into) {
                Some(t) => t.clone(),
                None => self.commit_of(&m.into)?,
            };
            // A branch this plan already merged into counts as merged (main, back into develop).
            let from = match tips.get(&m.from) {
                Some(t) => t.clone(),
                None => self.commit_of(&m.from)?,
            };
            let tree = self.merge_tree(&m.into, &into, &m.from, &from)?;
            let message = format!("Merge branch '{}' into {}", m.from, m.into);
            let commit = self.git(&["commit-tree", &tree, "-p", &into, "-p", &from, "-m", &message])?;
            tips.insert(m.into.clone(), commit.clone());
            merged_into.insert(m.into.clone(), into);
        }
        for (branch, new) in &tips {
            let old = &merged_into[branch];
            updates.push(format!("update refs/heads/{branch} {new} {old}"));
            done.moved.push(format!(
                "{branch}: {}..{} (merged {})",
                short(old),
                short(new),
                plan.merges[0].from
            ));
        }
        if let Some((tag, on)) = &plan.tag {
            let target = tips.get(on).cloned().map_or_else(|| self.commit_of(on), Ok)?;
            let object = self.annotated_tag(tag, &target)?;
            updates.push(format!("create refs/tags/{tag} {object}"));
            done.tag = Some(format!("{tag} on {on} ({})", short(&target)));
        }
        if let Some(branch) = &plan.delete {
            let old = self.commit_of(branch)?;
            updates.push(format!("delete refs/heads/{branch} {old}"));
            done.moved.push(format!("{branch}: deleted (was {})", short(&old)));
        }
        // The work tree follows the branch it is on only through a checkout: leave every branch
        // the transaction moves, keeping the same files (all committed: the tree is clean).
        self.git(&["checkout", "-q", "--detach"])?;
        let script = format!(
            "start
{}
prepare
commit
",
            updates.join(
                "
"
            )
        );
        if let Err(e) = self.git_stdin(&["update-ref", "--stdin"], &script) {
            let _ = self.git(&["checkout", "-q", "-"]);
            return Err(e);
        }
        self.git(&["checkout", "-q", &plan.end_on])?;
        Ok(done)
    }

    /// The tree of merging `from` into `into`; a conflict names the branch and the files.
    fn merge_tree(&self, into_name: &str, into: &str, from_name: &str, from: &str) -> CliResult<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["merge-tree", "--write-tree", "--name-only", "--no-messages", into, from])
            .output()
            .map_err(|e| CliError::Usage(format!("running git (is it installed?): {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let tree = lines.next().unwrap_or_default().trim().to_string();
        match out.status.code() {
            Some(0) => Ok(tree),
            Some(1) => {
                let files: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
                Err(CliError::Failed(format!(
                    "merging {from_name} into {into_name} conflicts in {}: nothing was changed; merge it by hand (git checkout {into_name} && git merge {from_name}), then finish again",
                    files.join(", ")
                )))
            }
            _ => Err(CliError::Failed(format!(
                "git merge-tree {into_name} {from_name}: {} (git 2.38 or newer is needed)",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// An annotated tag object for `target`, by the committer git would use (no ref yet).
    fn annotated_tag(&self, tag: &str, target: &str) -> CliResult<String> {
        let tagger = self.git(&["var", "GIT_COMMITTER_IDENT"])?;
        let body = format!(
            "object {target}
type commit
tag {tag}
tagger {tagger}

Release {tag}
"
        );
        self.git_stdin(&["mktag"], &body)
    }

    fn git_stdin(&self, args: &[&str], input: &str) -> CliResult<String> {
        use std::io::Write;
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| CliError::Usage(format!("running git (is it installed?): {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| CliError::Failed(format!("git {}: {e}", args.join(" "))))?;
        }
        let out =
            child.wait_with_output().map_err(|e| CliError::Failed(format!("git {}: {e}", args.join(" "))))?;
        answer(args, &out)
    }

    /// Pushes the branches and tag a flow command moved, and deletes the finished branch remotely,
    /// all or nothing (`--atomic`).
    pub fn push(&self, plan: &crate::cli::flow::Plan) -> CliResult<()> {
        let mut refs: Vec<String> = plan.merges.iter().map(|m| m.into.clone()).collect();
        refs.dedup();
        if let Some((branch, _)) = &plan.create {
            refs.push(branch.clone());
        }
        if let Some((tag, _)) = &plan.tag {
            refs.push(format!("refs/tags/{tag}"));
        }
        if let Some(branch) = &plan.delete
            && self.exists(&format!("refs/remotes/origin/{branch}"))
        {
            refs.push(format!(":refs/heads/{branch}"));
        }
        let mut args = vec!["push", "--atomic", "origin"];
        args.extend(refs.iter().map(String::as_str));
        self.git(&args).map(|_| ())
    }

    /// The next version of each Gitflow line (main, develop, open releases) as `version` computes it.
    pub fn next_versions(&self) -> CliResult<Vec<(String, String)>> {
        let layout = self.layout()?;
        let mut out = Vec::new();
        for b in &layout.branches {
            let line = matches!(classify(b), Ok(Branch::Main | Branch::Develop | Branch::Release(_)));
            if !line {
                continue;
            }
            let (facts, _) = self.facts_at(b, b)?;
            let next =
                crate::cli::gitflow::next_version(&facts).map_or_else(|e| e.to_string(), |v| v.to_string());
            out.push((b.clone(), next));
        }
        Ok(out)
    }
}

/// Where a Release lives in a GitOps checkout, and the commit that changes its version.
pub struct GitEdit<'a> {
    pub dir: &'a Path,
    pub push: bool,
}

impl GitEdit<'_> {
    /// Sets `spec.version` of Release `namespace/name` in the one file of the checkout that holds
    /// it, commits that file alone with `message`; returns the commit, the file and the line before
    /// and after.
    pub fn set_version(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
        message: &str,
    ) -> CliResult<(String, PathBuf, String, String)> {
        let repo = Repo::open(self.dir)?;
        let mut found = Vec::new();
        for file in yaml_files(self.dir) {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let edited = crate::cli::gitops::set_release_version(&text, name, namespace, version)
                .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
            if let Some(e) = edited {
                found.push((file, e));
            }
        }
        let (file, edited) = match found.len() {
            0 => {
                return Err(CliError::NotFound(format!(
                    "no file under {} defines Release {name} (namespace {namespace})",
                    self.dir.display()
                )));
            }
            1 => found.remove(0),
            _ => {
                let files: Vec<String> = found.iter().map(|(f, _)| f.display().to_string()).collect();
                return Err(CliError::Failed(format!(
                    "Release {name} is defined in several files: {}",
                    files.join(", ")
                )));
            }
        };
        std::fs::write(&file, &edited.text)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", file.display())))?;
        let path = file.to_string_lossy().to_string();
        repo.git(&["add", "--", &path])?;
        repo.git(&["commit", "-q", "-m", message, "--", &path])?;
        let commit = repo.git(&["rev-parse", "--short", "HEAD"])?;
        if self.push {
            repo.git(&["push", "-q", "origin", "HEAD"])?;
        }
        Ok((commit, file, edited.before, edited.after))
    }
}

/// The YAML files under `dir` (not in `.git`), in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// What git printed, or its complaint as the error.
fn answer(args: &[&str], out: &std::process::Output) -> CliResult<String> {
    if !out.status.success() {
        return Err(CliError::Failed(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn short(commit: &str) -> &str {
    commit.get(..8).unwrap_or(commit)
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
