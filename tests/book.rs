#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The book's examples run. Every YAML block a reader would paste is applied to the real API
//! server (a server-side dry run, in a namespace of this test's own): it must be accepted as
//! written. Every `tuskfish …` command line in a shell block must parse as the CLI parses it. A
//! block that is not meant to be pasted whole says so, and why, in an HTML comment on the line
//! before it: `<!-- illustrative: a fragment of an Environment's spec -->`.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use common::{TestNs, kubeconfig};
use serde_json::Value;

/// One fenced block: the page, its line, its language, its text, and why it is only illustrative.
struct Block {
    page: PathBuf,
    line: usize,
    lang: String,
    text: String,
    illustrative: Option<String>,
}

fn pages(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            pages(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

fn blocks() -> Vec<Block> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    pages(&root.join("docs"), &mut files);
    let mut out = Vec::new();
    for page in files {
        let text = std::fs::read_to_string(&page).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if let Some(lang) = lines[i].strip_prefix("```").filter(|l| !l.is_empty()) {
                let start = i;
                let end = (i + 1..lines.len()).find(|&j| lines[j] == "```").unwrap();
                let illustrative = start
                    .checked_sub(1)
                    .and_then(|k| lines[k].strip_prefix("<!-- illustrative:"))
                    .map(|r| r.trim_end_matches("-->").trim().to_string());
                out.push(Block {
                    page: page.strip_prefix(root).unwrap().to_path_buf(),
                    line: start + 1,
                    lang: lang.to_string(),
                    text: lines[start + 1..end].join("\n"),
                    illustrative,
                });
                i = end;
            }
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn every_yaml_example_is_accepted_by_the_api_server() {
    let t = TestNs::new("book").await;
    let mut failures = Vec::new();
    let mut applied = 0;
    for b in blocks().into_iter().filter(|b| b.lang == "yaml") {
        if let Some(why) = &b.illustrative {
            assert!(!why.is_empty(), "{}:{}: an illustrative block says why", b.page.display(), b.line);
            continue;
        }
        let mut docs: Vec<Value> = Vec::new();
        for doc in serde_saphyr::from_multiple::<Value>(&b.text)
            .unwrap_or_else(|e| panic!("{}:{}: not YAML: {e}", b.page.display(), b.line))
        {
            let mut doc = doc;
            // Into this test's namespace: the examples name the seed story's.
            if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("namespace");
            }
            docs.push(doc);
        }
        let yaml: String =
            docs.iter().map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect();
        let mut kubectl = std::process::Command::new("kubectl");
        kubectl.args(["--kubeconfig", &kubeconfig(), "-n", &t.ns, "apply", "--dry-run=server", "-f", "-"]);
        let out = common::run_with_stdin(kubectl, &yaml).await;
        if out.status.success() {
            applied += 1;
        } else {
            failures.push(format!(
                "{}:{}: {}",
                b.page.display(),
                b.line,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "refused:\n{}", failures.join("\n"));
    assert!(applied >= 6, "only {applied} YAML examples found");
}

#[test]
fn every_tuskfish_command_in_the_book_parses() {
    let mut failures = Vec::new();
    let mut parsed = 0;
    for b in blocks().into_iter().filter(|b| matches!(b.lang.as_str(), "sh" | "console" | "bash")) {
        if b.illustrative.is_some() {
            continue;
        }
        // A line ending in `\\` goes on on the next, as in a shell.
        let joined = b.text.replace("\\\n", " ");
        for (n, raw) in joined.lines().enumerate() {
            let line = raw.trim().trim_start_matches("$ ");
            let Some(words) =
                line.strip_prefix("tuskfish ").or_else(|| line.strip_prefix("kubectl tuskfish "))
            else {
                continue;
            };
            // A comment ends the command; a pipe or a substitution is the shell's business.
            let command =
                words.split(" # ").next().unwrap_or_default().split(" | ").next().unwrap_or_default();
            let command = command.split('#').next().unwrap_or_default().trim();
            let Some(args) = shlex::split(command) else {
                failures.push(format!("{}:{}: unbalanced quotes: {raw}", b.page.display(), b.line + n + 1));
                continue;
            };
            let argv = std::iter::once("tuskfish".to_string()).chain(args);
            match tuskfish::cli::Cli::try_parse_from(argv) {
                Ok(_) => parsed += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                    ) =>
                {
                    parsed += 1
                }
                Err(e) => failures.push(format!("{}:{}: {raw}\n{e}", b.page.display(), b.line + n + 1)),
            }
        }
    }
    assert!(failures.is_empty(), "commands the CLI refuses:\n{}", failures.join("\n"));
    assert!(parsed >= 20, "only {parsed} commands found");
}
