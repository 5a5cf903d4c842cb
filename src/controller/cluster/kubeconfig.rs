//! A cluster's kubeconfig from a Secret, checked before it is used: everything must be inline. A
//! kubeconfig may run a command (`exec`, `auth-provider`) or read a file (`tokenFile`,
//! `client-certificate`, `certificate-authority`…); from a Secret that anyone with write access to
//! the pipeline namespace can edit, either would run code in the operator or hand it the
//! operator's own files (its ServiceAccount token), so both are refused.

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why a kubeconfig cannot be used (said in the `ClusterConfigInvalid` condition).
pub type Invalid = String;

/// Parses and checks `text`; the client configuration of its current context.
pub async fn config_of(text: &str) -> Result<Config, Invalid> {
    // The parser's message quotes the text around the error: the key may hold anything (a TLS
    // key, a password), and conditions and Events are readable by more people than the Secret.
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|_| {
        "not a kubeconfig (it does not parse as one; its content is not quoted here)".to_string()
    })?;
    check(&kubeconfig)?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig cannot be used: {e}"))
}

/// Pure: refuses what would make the operator run a command or read a file.
pub fn check(kubeconfig: &Kubeconfig) -> Result<(), Invalid> {
    let mut refused = Vec::new();
    for named in &kubeconfig.auth_infos {
        let Some(a) = &named.auth_info else { continue };
        let user = &named.name;
        if a.exec.is_some() {
            refused.push(format!("user {user} runs a command (exec)"));
        }
        if a.auth_provider.is_some() {
            refused.push(format!("user {user} uses an auth-provider plugin"));
        }
        for (field, path) in [
            ("tokenFile", &a.token_file),
            ("client-certificate", &a.client_certificate),
            ("client-key", &a.client_key),
        ] {
            if path.is_some() {
                refused.push(format!("user {user} reads a file ({field}; use the inline -data form)"));
            }
        }
    }
    for named in &kubeconfig.clusters {
        if named.cluster.as_ref().is_some_and(|c| c.certificate_authority.is_some()) {
            refused.push(format!(
                "cluster {} reads a file (certificate-authority; use certificate-authority-data)",
                named.name
            ));
        }
    }
    if refused.is_empty() { Ok(()) } else { Err(format!("kubeconfig refused: {}", refused.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INLINE: &str = r#"
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: deployer, user: {token: abc}}]
contexts: [{name: test, context: {cluster: test, user: deployer}}]
current-context: test
"#;

    #[tokio::test]
    async fn an_inline_kubeconfig_gives_the_server_and_token() {
        let config = config_of(INLINE).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
    }

    #[tokio::test]
    async fn commands_and_files_are_refused_by_name() {
        let table = [
            (
                "users: [{name: deployer, user: {token: abc}}]",
                "users: [{name: deployer, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}}}]",
                "runs a command (exec)",
            ),
            (
                "users: [{name: deployer, user: {token: abc}}]",
                "users: [{name: deployer, user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}}]",
                "tokenFile",
            ),
            (
                "users: [{name: deployer, user: {token: abc}}]",
                "users: [{name: deployer, user: {client-certificate: /etc/x.crt, client-key: /etc/x.key}}]",
                "client-key",
            ),
            (
                "insecure-skip-tls-verify: true",
                "certificate-authority: /etc/ca.crt",
                "certificate-authority-data",
            ),
            (
                "users: [{name: deployer, user: {token: abc}}]",
                "users: [{name: deployer, user: {auth-provider: {name: oidc, config: {}}}}]",
                "auth-provider",
            ),
        ];
        for (from, to, expected) in table {
            let text = INLINE.replace(from, to);
            assert_ne!(text, INLINE, "{from}");
            let err = config_of(&text).await.err().unwrap_or_else(|| panic!("{to} was accepted"));
            assert!(err.contains(expected), "{to}: {err}");
        }
    }

    #[tokio::test]
    async fn text_that_is_no_kubeconfig_says_so_without_quoting_it() {
        let err = config_of("not: [a kubeconfig").await.err().unwrap();
        assert!(err.starts_with("not a kubeconfig"), "{err}");
        let secret =
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let err = config_of(secret).await.err().unwrap();
        assert!(!err.contains("MIIEvQ") && !err.contains("PRIVATE"), "{err}");
        let err = config_of("clusters: hunter2-password").await.err().unwrap();
        assert!(!err.contains("hunter2"), "{err}");
        let err = config_of(&INLINE.replace("current-context: test", "current-context: other"))
            .await
            .err()
            .unwrap();
        assert!(err.contains("cannot be used"), "{err}");
    }
}
