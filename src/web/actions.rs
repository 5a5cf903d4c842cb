//! The write actions of `tuskfish web` — deploy, promote, rollback, approve, reject, freeze,
//! unfreeze — run by the person who started it, with their credentials (their RBAC decides; a
//! refusal is shown). The operator-served view never has them. Every action is a POST from this
//! origin carrying the token of the browser's session (see [`super::guard`]), which only pages this
//! process served to that session contain; the page that offers an action is its confirmation
//! (version, gates, change ids).

use std::collections::HashMap;
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
    /// Made at start, never shown: form tokens are keyed hashes of a browser's session with it.
    key: String,
}

impl Actions {
    pub fn new(actor: Arc<dyn Actor>) -> std::io::Result<Self> {
        Ok(Self { actor, key: super::guard::random_hex()? })
    }

    /// The token the forms of `session`'s pages carry.
    pub fn token(&self, session: &str) -> String {
        super::guard::token_for(&self.key, session)
    }

    /// Whether a form carries the token of the session it came with.
    pub fn authentic(&self, form: &HashMap<String, String>, session: Option<&str>) -> bool {
        match (form.get("token"), session) {
            (Some(given), Some(session)) => super::guard::equal(given, &self.token(session)),
            _ => false,
        }
    }
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
    fn only_this_processes_token_for_this_session_is_authentic() {
        let a = Actions::new(Arc::new(Nobody)).unwrap();
        let b = Actions::new(Arc::new(Nobody)).unwrap();
        let (mine, theirs) = ("1".repeat(64), "2".repeat(64));
        let token = a.token(&mine);
        assert_eq!(token.len(), 64);
        assert_ne!(token, b.token(&mine), "another process");
        assert_ne!(token, a.token(&theirs), "another session");
        assert!(a.authentic(&form(&[("token", &token)]), Some(&mine)));
        assert!(!a.authentic(&form(&[("token", &token)]), Some(&theirs)));
        assert!(!a.authentic(&form(&[("token", &token)]), None));
        assert!(!a.authentic(&form(&[("token", &b.token(&mine))]), Some(&mine)));
        assert!(!a.authentic(&form(&[]), Some(&mine)));
        assert!(!a.authentic(&form(&[("token", "")]), Some(&mine)));
    }
}
