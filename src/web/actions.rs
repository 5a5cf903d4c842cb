//! The write actions of `tuskfish web` — deploy, promote, rollback, approve, reject, freeze,
//! unfreeze — run by the person who started it, with their credentials (their RBAC decides; a
//! refusal is shown). The operator-served view never has them. Every action is a POST carrying the
//! process's random token, which only pages this process served contain (no cross-site request can
//! act); the page that offers an action is its confirmation (version, gates, change ids).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use futures::future::BoxFuture;

/// One action, as a form asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Deploy { app: String, env: String, version: String },
    Promote { app: String, from: String, to: String },
    Rollback { app: String, env: String },
    Approve { app: String, env: String, version: String, reason: Option<String> },
    Reject { app: String, env: String, version: String, reason: String },
    Freeze { env: String, reason: String },
    Unfreeze { env: String },
}

impl Action {
    /// Reads a submitted form; `Err` names what is missing.
    pub fn from_form(form: &HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| {
            form.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the form has no {k}"))
        };
        let reason = form.get("reason").map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        Ok(match get("action")?.as_str() {
            "deploy" => Action::Deploy { app: get("app")?, env: get("env")?, version: get("version")? },
            "promote" => Action::Promote { app: get("app")?, from: get("from")?, to: get("env")? },
            "rollback" => Action::Rollback { app: get("app")?, env: get("env")? },
            "approve" => {
                Action::Approve { app: get("app")?, env: get("env")?, version: get("version")?, reason }
            }
            "reject" => Action::Reject {
                app: get("app")?,
                env: get("env")?,
                version: get("version")?,
                reason: reason.ok_or("a rejection needs a reason")?,
            },
            "freeze" => Action::Freeze { env: get("env")?, reason: reason.ok_or("a freeze needs a reason")? },
            "unfreeze" => Action::Unfreeze { env: get("env")? },
            other => return Err(format!("no action {other:?}")),
        })
    }

    /// What the action does, in a sentence.
    pub fn describe(&self) -> String {
        match self {
            Action::Deploy { app, env, version } => format!("deploy {app} {version} to {env}"),
            Action::Promote { app, from, to } => format!("promote {app} from {from} to {to}"),
            Action::Rollback { app, env } => format!("roll {app} back in {env}"),
            Action::Approve { app, env, version, .. } => format!("approve {app} {version} for {env}"),
            Action::Reject { app, env, version, .. } => format!("reject {app} {version} for {env}"),
            Action::Freeze { env, .. } => format!("freeze {env}"),
            Action::Unfreeze { env } => format!("unfreeze {env}"),
        }
    }
}

/// Carries an action out in a namespace: `Ok` with what was done (line by line), `Err` with why not.
pub trait Actor: Send + Sync + 'static {
    fn act(&self, namespace: String, action: Action) -> BoxFuture<'static, Result<Vec<String>, String>>;

    /// What deploying `version` of `app` to `env` would do (a dry run), as text.
    fn preview(
        &self,
        namespace: String,
        app: String,
        env: String,
        version: String,
    ) -> BoxFuture<'static, Result<String, String>>;
}

pub struct Actions {
    pub actor: Arc<dyn Actor>,
    token: String,
}

impl Actions {
    pub fn new(actor: Arc<dyn Actor>) -> std::io::Result<Self> {
        Ok(Self { actor, token: random_token()? })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a form carries this process's token (compared in constant time).
    pub fn authentic(&self, form: &HashMap<String, String>) -> bool {
        let Some(given) = form.get("token") else { return false };
        given.len() == self.token.len()
            && given.bytes().zip(self.token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// 32 bytes from the kernel's random source, as hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn forms_become_actions_or_say_what_is_missing() {
        let deploy = form(&[("action", "deploy"), ("app", "pay"), ("env", "prod"), ("version", "1.3.10")]);
        assert_eq!(
            Action::from_form(&deploy),
            Ok(Action::Deploy { app: "pay".into(), env: "prod".into(), version: "1.3.10".into() })
        );
        assert_eq!(
            Action::from_form(&form(&[("action", "deploy"), ("app", "pay")])),
            Err("the form has no env".into())
        );
        assert_eq!(
            Action::from_form(&form(&[
                ("action", "reject"),
                ("app", "p"),
                ("env", "e"),
                ("version", "1.0.0")
            ])),
            Err("a rejection needs a reason".into())
        );
        assert_eq!(
            Action::from_form(&form(&[("action", "delete-everything")])),
            Err(r#"no action "delete-everything""#.into())
        );
    }

    struct Nobody;
    impl Actor for Nobody {
        fn act(&self, _: String, _: Action) -> BoxFuture<'static, Result<Vec<String>, String>> {
            Box::pin(async { Err("nobody".into()) })
        }

        fn preview(
            &self,
            _: String,
            _: String,
            _: String,
            _: String,
        ) -> BoxFuture<'static, Result<String, String>> {
            Box::pin(async { Err("nobody".into()) })
        }
    }

    #[test]
    fn only_the_processes_token_is_authentic() {
        let a = Actions::new(Arc::new(Nobody)).unwrap();
        let b = Actions::new(Arc::new(Nobody)).unwrap();
        assert_eq!(a.token().len(), 64);
        assert_ne!(a.token(), b.token());
        assert!(a.authentic(&form(&[("token", a.token())])));
        assert!(!a.authentic(&form(&[("token", b.token())])));
        assert!(!a.authentic(&form(&[])));
        assert!(!a.authentic(&form(&[("token", "")])));
    }
}
