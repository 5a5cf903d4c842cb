//! What can go wrong getting or rendering a chart, told apart by what a user does about it. Helm
//! says it in words only, so its message is classified here (pure, table-tested).

use crate::api::Reason;
use crate::render::chart::OutputError;

/// Helm's message is quoted to the user up to this many bytes (a condition message must stay small).
const MESSAGE_LIMIT: usize = 1024;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChartError {
    #[error("this operator has no Helm to render charts with: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0} (retrying)")]
    Unreachable(String),
    #[error("{0}")]
    Credentials(String),
    #[error(
        "the chart's content changed after it was published (published {recorded}, now {found}); a published version is never rolled out with other content: restore the chart or publish a new version"
    )]
    DigestChanged { recorded: String, found: String },
    #[error("helm template failed: {0}")]
    Render(String),
    #[error("the values do not fit the chart's values.schema.json: {0}")]
    Values(String),
    #[error("the chart rendered more than {limit} bytes; split it, or raise --helm-max-output")]
    OutputTooLarge { limit: usize },
    #[error("helm {what} did not finish within {seconds}s (retrying)")]
    Timeout { what: &'static str, seconds: u64 },
    #[error("{0}")]
    Output(#[from] OutputError),
    /// The output kept for this rollout cannot be read or kept (see `controller::kept_renders`):
    /// nothing is rendered anew or applied until it can (a new render could differ).
    #[error("{0} (retrying)")]
    Kept(String),
    /// The target cluster did not say what it serves (Helm's `.Capabilities`): nothing is rendered
    /// without it, as a chart could silently drop objects.
    #[error("{0} (retrying)")]
    Capabilities(String),
    /// The repository is somewhere the pipeline may not reach (see `crate::egress`).
    #[error("spec.helm.repository: {0}")]
    EgressDenied(String),
}

impl ChartError {
    pub fn reason(&self) -> Reason {
        match self {
            ChartError::Unavailable(_) => Reason::HelmUnavailable,
            ChartError::NotFound(_) => Reason::ChartNotFound,
            ChartError::Unreachable(_) => Reason::ChartRepositoryUnreachable,
            ChartError::Credentials(_) => Reason::ChartCredentialsRejected,
            ChartError::DigestChanged { .. } => Reason::ChartDigestChanged,
            ChartError::Render(_) | ChartError::Output(_) | ChartError::Kept(_) => Reason::ChartRenderFailed,
            ChartError::Values(_) => Reason::ChartValuesInvalid,
            ChartError::OutputTooLarge { .. } => Reason::ChartOutputTooLarge,
            ChartError::Timeout { what, .. } if *what == "pull" => Reason::ChartRepositoryUnreachable,
            ChartError::Timeout { .. } => Reason::ChartRenderFailed,
            ChartError::EgressDenied(_) => Reason::EgressDenied,
            ChartError::Capabilities(_) => Reason::ClusterUnreachable,
        }
    }

    /// True when trying again later may succeed with nothing changed (the repository was down, a
    /// Secret not created yet).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ChartError::Unreachable(_)
                | ChartError::Timeout { .. }
                | ChartError::Credentials(_)
                | ChartError::Kept(_)
                | ChartError::Capabilities(_)
        )
    }
}

/// Classifies a failed `helm pull` of `what` (e.g. `payments 1.3.10 from oci://…`).
pub fn pull_failed(what: &str, stderr: &str) -> ChartError {
    let said = helm_message(stderr);
    let lower = said.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["server gave http response to https client"]) {
        return ChartError::Unreachable(format!(
            "{what}: the registry speaks plain HTTP; set spec.helm.plainHttp: true ({said})"
        ));
    }
    // Connection trouble first: a refused connection says nothing about credentials, and the URL
    // in the message may hold anything (a port 38403 is no 403).
    if has(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "timeout",
        "connection reset",
        "eof",
        "tls handshake",
        "network is unreachable",
        "too many requests",
    ]) || status_in(&said, &["500", "502", "503", "504", "429"])
    {
        return ChartError::Unreachable(format!("{what}: the repository cannot be reached: {said}"));
    }
    if status_in(&said, &["401", "403"])
        || has(&["unauthorized", "forbidden", "denied", "authentication required"])
    {
        return ChartError::Credentials(format!(
            "{what}: the repository refused the credentials (check spec.helm.secretRef): {said}"
        ));
    }
    if has(&["not found", "no chart version", "no chart name"]) || status_in(&said, &["404"]) {
        return ChartError::NotFound(format!("{what}: not in the repository: {said}"));
    }
    // Anything else (a URL Helm cannot read, a broken index) will not heal by waiting.
    ChartError::NotFound(format!("{what}: {said}"))
}

/// Whether `text` holds one of these HTTP status codes as a number of its own (not inside a port
/// or a digest).
fn status_in(text: &str, codes: &[&str]) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| codes.contains(&word))
}

/// Classifies a failed `helm template`.
pub fn template_failed(stderr: &str) -> ChartError {
    let said = helm_message(stderr);
    if said.contains("values don't meet the specifications of the schema") {
        return ChartError::Values(said);
    }
    ChartError::Render(said)
}

/// Helm's own words without its `Error: ` prefix and `--debug` hint, on one line, bounded.
pub fn helm_message(stderr: &str) -> String {
    let text: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Use --debug flag"))
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    let mut said = text.join(" ");
    if said.is_empty() {
        said = "helm failed without a message".into();
    }
    if said.len() > MESSAGE_LIMIT {
        let mut cut = MESSAGE_LIMIT;
        while !said.is_char_boundary(cut) {
            cut -= 1;
        }
        said.truncate(cut);
        said.push('…');
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_failures_are_told_apart_by_what_the_user_does() {
        let cases = [
            (
                r#"Error: failed to perform "FetchReference" on source: 127.0.0.1:5055/charts/payments:9.9.9: not found"#,
                Reason::ChartNotFound,
                false,
            ),
            (
                r#"Error: chart "payments" version "9.9.9" not found in http://127.0.0.1:5056/ repository"#,
                Reason::ChartNotFound,
                false,
            ),
            (
                r#"Error: looks like "http://127.0.0.1:5056/nothere/" is not a valid chart repository or cannot be reached: failed to fetch http://127.0.0.1:5056/nothere/index.yaml : 404 File not found"#,
                Reason::ChartNotFound,
                false,
            ),
            (
                r#"Error: failed to perform "FetchReference" on source: Get "http://127.0.0.1:5999/v2/charts/payments/manifests/1.0.0": dial tcp 127.0.0.1:5999: connect: connection refused"#,
                Reason::ChartRepositoryUnreachable,
                true,
            ),
            (
                r#"Error: looks like "http://127.0.0.1:5999/" is not a valid chart repository or cannot be reached: Get "http://127.0.0.1:5999/index.yaml": dial tcp 127.0.0.1:5999: connect: connection refused"#,
                Reason::ChartRepositoryUnreachable,
                true,
            ),
            (
                r#"Error: looks like "http://127.0.0.1:5056/" is not a valid chart repository or cannot be reached: failed to fetch http://127.0.0.1:5056/index.yaml : 401 Unauthorized"#,
                Reason::ChartCredentialsRejected,
                true,
            ),
            (
                r#"Error: failed to perform "FetchReference" on source: GET "http://r/v2/charts/payments/manifests/1.0.0": response status code 401: unauthorized: authentication required"#,
                Reason::ChartCredentialsRejected,
                true,
            ),
            (
                r#"Error: failed to perform "FetchReference" on source: Get "https://127.0.0.1:5055/v2/charts/payments/manifests/1.3.9": http: server gave HTTP response to HTTPS client"#,
                Reason::ChartRepositoryUnreachable,
                true,
            ),
            (
                "Error: Get \"https://charts.example.com/index.yaml\": dial tcp: lookup charts.example.com: no such host",
                Reason::ChartRepositoryUnreachable,
                true,
            ),
        ];
        for (stderr, reason, transient) in cases {
            let e = pull_failed("payments 1.3.9", stderr);
            assert_eq!((e.reason(), e.is_transient()), (reason, transient), "{stderr}");
            assert!(e.to_string().starts_with("payments 1.3.9"), "{e}");
            assert!(!e.to_string().contains("Error: "), "{e}");
        }
        let plain = pull_failed("x", "Error: http: server gave HTTP response to HTTPS client");
        assert!(plain.to_string().contains("plainHttp"), "{plain}");
    }

    #[test]
    fn template_failures_quote_helm() {
        let schema = "Error: values don't meet the specifications of the schema(s) in the following chart(s):\npayments:\n- at '/replicaCount': got string, want integer\n";
        let e = template_failed(schema);
        assert_eq!(e.reason(), Reason::ChartValuesInvalid);
        assert!(e.to_string().contains("at '/replicaCount': got string, want integer"), "{e}");
        let fail = "Error: execution error at (payments/templates/fail.yaml:1:3): db.host is required\n\nUse --debug flag to render out invalid YAML\n";
        let e = template_failed(fail);
        assert_eq!(e.reason(), Reason::ChartRenderFailed);
        assert_eq!(
            e.to_string(),
            "helm template failed: execution error at (payments/templates/fail.yaml:1:3): db.host is required"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = format!("Error: {}", "é".repeat(2000));
        let said = helm_message(&long);
        assert!(said.len() <= MESSAGE_LIMIT + '…'.len_utf8());
        assert!(said.ends_with('…'));
    }
}
