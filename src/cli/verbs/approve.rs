//! `approve APP VERSION --env ENV` / `reject …`: creates the Approval (or rejection) the
//! environment's gate waits for, in the name and with the groups the API server authenticates.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::PostParams;

use super::deploy::{finish, say};
use crate::api::{Approval, ApprovalSpec, Decision};
use crate::cli::error::{CliError, CliResult};
use crate::cli::session::{CLI_FIELD_MANAGER, Session, parse_version};
use crate::cli::wait::Goal;

/// A DNS-1123 subdomain from free text (`payments-prod-1.3.10-rc.1`).
pub fn object_name(s: &str) -> String {
    let mut name: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    name.truncate(253);
    name.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

pub struct ApproveArgs<'a> {
    pub app: &'a str,
    pub version: &'a str,
    pub env: &'a str,
    pub reason: Option<String>,
    pub approver: Option<String>,
    pub decision: Decision,
    pub wait_for: Option<Duration>,
}

pub async fn approve(s: &Session, args: ApproveArgs<'_>) -> CliResult<()> {
    let version = parse_version(args.version)?;
    let release = s.existing_release(args.app, args.env).await?;
    s.app_version(args.app, &version).await?;
    let env = s.environment(args.env).await?;
    if !env.spec.requires_approval() {
        say(s, &format!("note: {} does not require approval; the Approval is recorded anyway", args.env));
    }
    let (user, groups) = s.identity().await?;
    let approver = approver_for(&user, args.approver.as_deref())?;
    let release_name = release.name_any();
    // One Approval per approver and decision: a quorum needs several, and an approver who changes
    // their mind adds a rejection beside the approval (each is an immutable audit record).
    let (verb, suffix) = match args.decision {
        Decision::Approve => ("approved", ""),
        Decision::Reject => ("rejected", "-rejected"),
    };
    let name = object_name(&format!("{release_name}-{version}-{approver}{suffix}"));
    let approval = Approval::new(
        &name,
        ApprovalSpec {
            release: release_name.clone(),
            version: version.to_string(),
            app: Some(release.spec.app.clone()),
            environment: Some(release.spec.environment.clone()),
            product: None,
            approver: Some(approver.clone()),
            approver_groups: groups,
            decision: (args.decision == Decision::Reject).then_some(Decision::Reject),
            reason: args.reason.filter(|r| !r.is_empty()),
        },
    );
    let pp = PostParams { field_manager: Some(CLI_FIELD_MANAGER.into()), ..Default::default() };
    match s.api::<Approval>().create(&pp, &approval).await {
        Ok(_) => say(
            s,
            &format!("{verb} {} {version} for {} (Approval {name}, approver {approver})", args.app, args.env),
        ),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            say(s, &format!("{} {version} was already {verb} for {} by {approver}", args.app, args.env));
        }
        Err(e) => return Err(CliError::api(&format!("creating Approval {name}"), e)),
    }
    if args.decision == Decision::Reject {
        return Ok(());
    }
    let goal = Goal {
        release: release_name,
        version: Some(version),
        generation: release.metadata.generation.unwrap_or(0),
    };
    finish(s, release, goal, args.wait_for).await
}

/// The approver is whoever the API server authenticated: `--approver` may only repeat it (the
/// admission policy refuses any other name, so say so before asking).
fn approver_for(verified: &str, asked: Option<&str>) -> CliResult<String> {
    match asked.filter(|a| !a.is_empty()) {
        Some(a) if a != verified => Err(CliError::Usage(format!(
            "--approver {a:?} is not you: the API server records an Approval under the identity of whoever \
             creates it, and you are {verified:?}; run `tuskfish approve` with {a}'s own kubeconfig"
        ))),
        _ => Ok(verified.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{approver_for, object_name};

    #[test]
    fn the_approver_is_the_verified_user() {
        assert_eq!(approver_for("maria.keller", None).unwrap(), "maria.keller");
        assert_eq!(approver_for("maria.keller", Some("maria.keller")).unwrap(), "maria.keller");
        assert_eq!(approver_for("maria.keller", Some("")).unwrap(), "maria.keller");
        let e = approver_for("alex.dev", Some("maria.keller")).unwrap_err().to_string();
        assert!(e.contains("you are \"alex.dev\"") && e.contains("maria.keller"), "{e}");
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        assert_eq!(object_name("payments-prod-1.3.10-rc.1"), "payments-prod-1.3.10-rc.1");
        assert_eq!(object_name("Payments-prod-1.3.10+build_7"), "payments-prod-1.3.10-build-7");
        assert_eq!(object_name(&"a".repeat(300)).len(), 253);
    }
}
