//! What one pipeline namespace may touch, from the PipelinePolicies a cluster admin wrote: pure
//! functions over plain data. Nothing else decides which namespaces an Environment may claim or
//! where the operator connects on a pipeline's behalf.

use crate::api::{ClusterGrant, ClusterRef, GroupKind, KindGrant, PipelinePolicy, PodSecurity, glob};
use crate::egress::EgressRule;

/// A pipeline's grants, all policies naming it merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    pipeline: String,
    /// Namespace patterns (`{pipeline}` already replaced).
    namespaces: Vec<String>,
    /// The policies these come from (for messages); empty: no policy names this pipeline.
    pub from: Vec<String>,
    /// No policy lists namespaces for it: `namespaces` is the default, which never reaches into
    /// another pipeline's namespaces or the system's.
    default_namespaces: bool,
    /// The other pipeline namespaces (for the default's bounds).
    others: Vec<String>,
    /// The least level its namespaces enforce.
    pub pod_security: PodSecurity,
    /// `None`: anywhere not denied by default; `Some`: only these.
    pub egress: Option<Vec<EgressRule>>,
    /// Kinds allowed (empty: all) and denied, with the policies that say so.
    kinds_allowed: Vec<(GroupKind, String)>,
    kinds_denied: Vec<(GroupKind, String)>,
    /// Kubeconfig Secrets and agents its Environments may name (none: the operator's cluster only).
    cluster_secrets: Vec<String>,
    agents: Vec<String>,
    /// The policies that require every Environment to name a ServiceAccount (empty: none does).
    pub service_account_required_by: Vec<String>,
}

/// What a pipeline no policy names may claim.
pub const DEFAULT_NAMESPACES: &str = "{pipeline}-*";

impl Grants {
    /// The grants of `pipeline` from `policies` (any order), the operator's `level` the least;
    /// `others`: the other pipeline namespaces there are (those named `{pipeline}-…` are the ones
    /// the default grant could reach).
    pub fn of(pipeline: &str, policies: &[&PipelinePolicy], level: PodSecurity, others: Vec<String>) -> Self {
        let mut naming: Vec<&PipelinePolicy> =
            policies.iter().copied().filter(|p| p.spec.pipelines.iter().any(|g| glob(g, pipeline))).collect();
        naming.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let listed: Vec<String> = naming.iter().flat_map(|p| p.spec.namespaces.iter().cloned()).collect();
        let default_namespaces = listed.is_empty();
        let patterns = if default_namespaces { vec![DEFAULT_NAMESPACES.to_string()] } else { listed };
        let pod_security = naming.iter().filter_map(|p| p.spec.pod_security).fold(level, PodSecurity::max);
        let allowed: Vec<&str> = naming
            .iter()
            .filter_map(|p| p.spec.egress.as_ref())
            .flat_map(|e| e.allow.iter().map(String::as_str))
            .collect();
        let restricts = naming.iter().any(|p| p.spec.egress.as_ref().is_some_and(|e| !e.allow.is_empty()));
        let kinds = |pick: fn(&KindGrant) -> &Vec<GroupKind>| -> Vec<(GroupKind, String)> {
            naming
                .iter()
                .flat_map(|p| {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    p.spec
                        .kinds
                        .as_ref()
                        .map(pick)
                        .into_iter()
                        .flatten()
                        .map(move |k| (k.clone(), name.clone()))
                })
                .collect()
        };
        let (kinds_allowed, kinds_denied) = (kinds(|k| &k.allow), kinds(|k| &k.deny));
        let clusters = |pick: fn(&ClusterGrant) -> &Vec<String>| -> Vec<String> {
            naming
                .iter()
                .filter_map(|p| p.spec.clusters.as_ref())
                .flat_map(|c| pick(c).iter().cloned())
                .collect()
        };
        let (cluster_secrets, agents) = (clusters(|c| &c.kube_config_secrets), clusters(|c| &c.agents));
        let service_account_required_by = naming
            .iter()
            .filter(|p| p.spec.require_service_account)
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        Self {
            pipeline: pipeline.to_string(),
            namespaces: patterns.iter().map(|p| p.replace("{pipeline}", pipeline)).collect(),
            from: naming.iter().filter_map(|p| p.metadata.name.clone()).collect(),
            default_namespaces,
            others: others.into_iter().filter(|o| o != pipeline).collect(),
            pod_security,
            egress: restricts.then(|| allowed.into_iter().filter_map(EgressRule::parse).collect()),
            kinds_allowed,
            kinds_denied,
            cluster_secrets,
            agents,
            service_account_required_by,
        }
    }

    /// An agent's: the hub judged the namespace grant (an agent cannot read PipelinePolicies, and
    /// its Environment is Ready only when granted); the Pod Security level is the agent's own.
    pub fn judged_by_hub(pipeline: &str, level: PodSecurity) -> Self {
        Self {
            pipeline: pipeline.to_string(),
            namespaces: vec!["*".into()],
            from: Vec::new(),
            default_namespaces: false,
            others: Vec::new(),
            pod_security: level,
            egress: None,
            kinds_allowed: Vec::new(),
            kinds_denied: Vec::new(),
            // The hub judged the agent's grant; an agent deploys only where it runs.
            cluster_secrets: Vec::new(),
            agents: vec!["*".into()],
            service_account_required_by: Vec::new(),
        }
    }

    /// Whether an Environment of this pipeline may claim `namespace`; `Err` says why not and how
    /// an admin grants it.
    pub fn namespace(&self, namespace: &str) -> Result<(), String> {
        if self.namespaces.iter().any(|p| glob(p, namespace)) {
            return match self.default_namespaces.then(|| self.beyond_default(namespace)).flatten() {
                Some(why) => Err(format!(
                    "namespace {namespace} is not granted to pipeline {}: {why}; a cluster admin grants it with a \
                     PipelinePolicy (spec.pipelines: [{}], spec.namespaces: [...])",
                    self.pipeline, self.pipeline
                )),
                None => Ok(()),
            };
        }
        let by = if self.default_namespaces {
            "no PipelinePolicy lists namespaces for this pipeline, so it has".to_string()
        } else {
            format!("PipelinePolicy {} grants", self.from.join(", "))
        };
        Err(format!(
            "namespace {namespace} is not granted to pipeline {}: {by} only {}; a cluster admin grants more with a \
             PipelinePolicy (spec.pipelines: [{}], spec.namespaces: [...])",
            self.pipeline,
            if self.namespaces.is_empty() { "nothing".to_string() } else { self.namespaces.join(", ") },
            self.pipeline
        ))
    }

    /// Whether an Environment of this pipeline may deploy to `cluster` (`None`: the operator's
    /// own, always); `Err` says why not and how an admin grants it.
    pub fn cluster(&self, cluster: Option<&ClusterRef>) -> Result<(), String> {
        let Some(c) = cluster else { return Ok(()) };
        let (what, name, granted, field) = match (&c.kube_config_secret_ref, &c.agent) {
            (Some(secret), _) => {
                ("kubeconfig Secret", secret.name.as_str(), &self.cluster_secrets, "kubeConfigSecrets")
            }
            (None, Some(agent)) => ("agent", agent.as_str(), &self.agents, "agents"),
            (None, None) => return Ok(()),
        };
        if granted.iter().any(|g| glob(g, name)) {
            return Ok(());
        }
        Err(format!(
            "{what} {name} is not granted to pipeline {}: without a PipelinePolicy granting it \
             (spec.clusters.{field}), a pipeline deploys into the operator's own cluster only",
            self.pipeline
        ))
    }

    /// Whether a Release of this pipeline may apply an object of `group`/`kind`; `Err` says which
    /// policy refuses it.
    pub fn kind(&self, group: &str, kind: &str) -> Result<(), String> {
        let names = |k: &GroupKind| glob(&k.group, group) && glob(&k.kind, kind);
        let what = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        if let Some((_, by)) = self.kinds_denied.iter().find(|(k, _)| names(k)) {
            return Err(format!(
                "{what} is denied to pipeline {} by PipelinePolicy {by} (spec.kinds.deny)",
                self.pipeline
            ));
        }
        if self.kinds_allowed.is_empty() || self.kinds_allowed.iter().any(|(k, _)| names(k)) {
            return Ok(());
        }
        let mut by: Vec<&str> = self.kinds_allowed.iter().map(|(_, p)| p.as_str()).collect();
        by.dedup();
        Err(format!(
            "{what} is not among the kinds PipelinePolicy {} allows pipeline {} (spec.kinds.allow)",
            by.join(", "),
            self.pipeline
        ))
    }

    /// Why the default grant does not reach `namespace` after all: a system namespace, another
    /// pipeline's namespace, or one under a longer pipeline's own prefix (pipeline `team` does not
    /// take `team-a-prod` from pipeline `team-a`).
    fn beyond_default(&self, namespace: &str) -> Option<String> {
        if ["kube-", "openshift-"].iter().any(|p| namespace.starts_with(p)) {
            return Some("the default grant never reaches kube-* or openshift-* namespaces".into());
        }
        if self.others.iter().any(|o| o == namespace) {
            return Some(format!("{namespace} is another pipeline's namespace"));
        }
        self.others
            .iter()
            .find(|o| o.len() > self.pipeline.len() && namespace.starts_with(&format!("{o}-")))
            .map(|o| format!("{namespace} is under pipeline {o}'s own prefix ({o}-*)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EgressGrant, PipelinePolicySpec};

    fn policy(name: &str, pipelines: &[&str], namespaces: &[&str]) -> PipelinePolicy {
        PipelinePolicy::new(
            name,
            PipelinePolicySpec {
                pipelines: pipelines.iter().map(|s| s.to_string()).collect(),
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("finance", "finance", true),
            ("finance", "finance2", false),
            ("team-*", "team-a", true),
            ("team-*", "team-", true),
            ("team-*", "team", false),
            ("*", "anything", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-x-c", true),
            ("a*b*c", "acb", false),
            ("*-prod", "finance-prod", true),
            ("*-prod", "finance-prod-eu", false),
            ("x*x", "x", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob(pattern, text), want, "{pattern:?} {text:?}");
        }
    }

    #[test]
    fn a_pipeline_no_policy_names_claims_only_its_own_prefix() {
        let g = Grants::of("finance", &[], PodSecurity::Baseline, vec![]);
        assert!(g.namespace("finance-dev").is_ok());
        for squatted in ["kube-system", "default", "finance", "ledger-prod", "financex-dev"] {
            let why = g.namespace(squatted).unwrap_err();
            assert!(why.contains("no PipelinePolicy lists namespaces") && why.contains("finance-*"), "{why}");
        }
        assert_eq!((g.pod_security, g.egress), (PodSecurity::Baseline, None));
    }

    #[test]
    fn policies_naming_a_pipeline_add_up_and_the_strictest_level_wins() {
        let mut strict = policy("b-strict", &["team-*"], &["shared-{pipeline}"]);
        strict.spec.pod_security = Some(PodSecurity::Restricted);
        strict.spec.egress = Some(EgressGrant { allow: vec!["10.0.0.0/8".into()] });
        let mut loose = policy("a-loose", &["team-a"], &["payments-*"]);
        loose.spec.pod_security = Some(PodSecurity::Privileged);
        loose.spec.egress = Some(EgressGrant { allow: vec!["hooks.slack.com".into()] });
        let other = policy("c-other", &["finance"], &["*"]);
        let g = Grants::of("team-a", &[&strict, &loose, &other], PodSecurity::Baseline, vec![]);
        assert_eq!(g.from, vec!["a-loose", "b-strict"]);
        assert!(g.namespace("payments-prod").is_ok());
        assert!(g.namespace("shared-team-a").is_ok());
        // Named by a policy, the default prefix is no longer implied.
        let why = g.namespace("team-a-dev").unwrap_err();
        assert!(
            why.contains("PipelinePolicy a-loose, b-strict grants only payments-*, shared-team-a"),
            "{why}"
        );
        assert_eq!(g.pod_security, PodSecurity::Restricted, "a policy only makes it stricter");
        assert_eq!(g.egress.as_ref().map(Vec::len), Some(2));
        // A policy without egress leaves the default.
        assert_eq!(Grants::of("finance", &[&other], PodSecurity::Baseline, vec![]).egress, None);
    }

    #[test]
    fn the_default_grant_stays_out_of_other_pipelines_and_the_system() {
        let others = vec!["team".to_string(), "team-a".to_string(), "kube".to_string()];
        let team = Grants::of("team", &[], PodSecurity::Baseline, others.clone());
        assert!(team.namespace("team-dev").is_ok());
        for (ns, says) in [
            ("team-a", "another pipeline's namespace"),
            ("team-a-prod", "under pipeline team-a's own prefix"),
        ] {
            let why = team.namespace(ns).unwrap_err();
            assert!(why.contains(says), "{ns}: {why}");
        }
        assert!(
            Grants::of("team-a", &[], PodSecurity::Baseline, others.clone()).namespace("team-a-prod").is_ok()
        );
        let kube = Grants::of("kube", &[], PodSecurity::Baseline, others.clone());
        assert!(kube.namespace("kube-system").unwrap_err().contains("never reaches kube-*"));
        // A policy that only sets egress keeps the default namespaces; one that lists them is the
        // admin's word, bounds and all.
        let mut egress_only = policy("egress", &["team"], &[]);
        egress_only.spec.egress = Some(EgressGrant { allow: vec!["10.0.0.0/8".into()] });
        assert!(
            Grants::of("team", &[&egress_only], PodSecurity::Baseline, others.clone())
                .namespace("team-dev")
                .is_ok()
        );
        let explicit = policy("explicit", &["team"], &["team-*"]);
        assert!(
            Grants::of("team", &[&explicit], PodSecurity::Baseline, others).namespace("team-a-prod").is_ok()
        );
    }

    #[test]
    fn kinds_are_allowed_unless_a_policy_says_otherwise() {
        let gk = |group: &str, kind: &str| GroupKind { group: group.into(), kind: kind.into() };
        assert!(
            Grants::of("team", &[], PodSecurity::Baseline, vec![])
                .kind("rbac.authorization.k8s.io", "RoleBinding")
                .is_ok()
        );
        let mut deny = policy("no-rbac", &["team"], &[]);
        deny.spec.kinds = Some(KindGrant { allow: vec![], deny: vec![gk("rbac.authorization.k8s.io", "*")] });
        let mut allow = policy("workloads", &["team"], &[]);
        allow.spec.kinds = Some(KindGrant {
            allow: vec![gk("apps", "*"), gk("", "ConfigMap"), gk("", "Service")],
            deny: vec![],
        });
        let g = Grants::of("team", &[&deny, &allow], PodSecurity::Baseline, vec![]);
        assert!(g.kind("apps", "Deployment").is_ok());
        assert!(g.kind("", "ConfigMap").is_ok());
        let why = g.kind("rbac.authorization.k8s.io", "RoleBinding").unwrap_err();
        assert!(
            why.contains("RoleBinding.rbac.authorization.k8s.io is denied") && why.contains("no-rbac"),
            "{why}"
        );
        let why = g.kind("", "Secret").unwrap_err();
        assert!(why.contains("Secret is not among the kinds PipelinePolicy workloads allows"), "{why}");
    }

    #[test]
    fn other_clusters_only_where_a_policy_grants_them() {
        use crate::api::KubeconfigSecretRef;
        let secret = |name: &str| ClusterRef {
            name: None,
            kube_config_secret_ref: Some(KubeconfigSecretRef { name: name.into(), key: "kubeconfig".into() }),
            agent: None,
        };
        let agent =
            |name: &str| ClusterRef { name: None, kube_config_secret_ref: None, agent: Some(name.into()) };
        let none = Grants::of("team", &[], PodSecurity::Baseline, vec![]);
        assert!(none.cluster(None).is_ok(), "the operator's own cluster");
        let why = none.cluster(Some(&secret("prod"))).unwrap_err();
        assert!(
            why.contains("kubeconfig Secret prod is not granted")
                && why.contains("spec.clusters.kubeConfigSecrets"),
            "{why}"
        );
        assert!(none.cluster(Some(&agent("prod-eu"))).unwrap_err().contains("spec.clusters.agents"));
        let mut p = policy("remote", &["team"], &[]);
        p.spec.clusters =
            Some(ClusterGrant { kube_config_secrets: vec!["prod-*".into()], agents: vec!["prod-eu".into()] });
        let g = Grants::of("team", &[&p], PodSecurity::Baseline, vec![]);
        assert!(g.cluster(Some(&secret("prod-us"))).is_ok());
        assert!(g.cluster(Some(&secret("staging"))).is_err());
        assert!(g.cluster(Some(&agent("prod-eu"))).is_ok());
        assert!(g.cluster(Some(&agent("prod-us"))).is_err());
    }
}
