//! The pipeline as data: environments in pipeline order, apps × environments cells, and the
//! difference between two environments. Pure functions over the listed objects, shared by the CLI
//! (`status`, `diff`) and the web view.

pub mod graph;
pub mod stories;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{ConditionType, Environment, Phase, Reason, Release, RolloutResult, Tier, find_condition};
use crate::plan::gates::{FreezeEnd, active_until};

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub namespace: String,
    /// In pipeline order.
    pub environments: Vec<EnvColumn>,
    pub apps: Vec<AppRow>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvColumn {
    pub name: String,
    pub tier: Tier,
    pub namespace: String,
    pub approval_required: bool,
    /// Set while a freeze window is active: until when and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<String>,
    /// The cluster its apps run in (`in-cluster`: the operator's own).
    pub cluster: String,
    /// Set while that cluster cannot be used: the reason and the Environment's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_trouble: Option<String>,
}

/// Why an Environment's cluster cannot be used now, from its Ready condition (`None`: it can,
/// as far as the operator last saw).
pub fn cluster_trouble(env: &Environment) -> Option<String> {
    let ready = find_condition(&env.status.as_ref()?.conditions, ConditionType::Ready)?;
    let trouble = Reason::parse(&ready.reason).is_some_and(Reason::is_cluster_trouble);
    (ready.status == "False" && trouble).then(|| format!("{}: {}", ready.reason, ready.message))
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRow {
    pub app: String,
    /// By environment name; environments without a Release of this app are absent.
    pub environments: BTreeMap<String, CellState>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CellState {
    pub release: String,
    /// The version running (last healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `Ready` condition's message when the Release is not Healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_port_missing: Option<String>,
    /// When the newest rollout started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rollout: Option<String>,
}

/// How a cell looks at a glance: the CLI colours it, the web view styles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Healthy, nothing waiting.
    Good,
    /// Healthy or progressing with something under way or waiting.
    Busy,
    Bad,
    /// Nothing has run yet.
    Muted,
}

impl Tone {
    /// How a history entry looks: succeeded, under way, failed, or replaced before it finished.
    pub fn of_result(r: RolloutResult) -> Tone {
        match r {
            RolloutResult::Succeeded => Tone::Good,
            RolloutResult::Progressing => Tone::Busy,
            RolloutResult::Failed => Tone::Bad,
            RolloutResult::Superseded => Tone::Muted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Busy => "busy",
            Tone::Bad => "bad",
            Tone::Muted => "muted",
        }
    }
}

impl CellState {
    pub fn tone(&self) -> Tone {
        match self.phase {
            Some(Phase::Healthy) if self.pending.is_none() && self.forward_port_missing.is_none() => {
                Tone::Good
            }
            Some(Phase::Healthy | Phase::Progressing) => Tone::Busy,
            Some(Phase::Degraded | Phase::Failed) => Tone::Bad,
            Some(Phase::Pending) | None => Tone::Muted,
        }
    }
}

/// What waits in a cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub what: PendingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PendingKind {
    AwaitingApproval,
    Frozen,
    Soaking,
    WaitingForDependencies,
    RollingOut,
    RollingBack,
    /// The version failed here and is skipped.
    Failed,
    /// The version was vetoed in the whole pipeline.
    Vetoed,
    /// An approver rejected the version here.
    Rejected,
    /// Held for another reason (a failed version, an unhealthy upstream…).
    Held,
}

impl PendingKind {
    pub fn label(self) -> &'static str {
        match self {
            PendingKind::AwaitingApproval => "awaiting approval",
            PendingKind::Frozen => "frozen",
            PendingKind::Soaking => "soaking",
            PendingKind::WaitingForDependencies => "waiting for dependencies",
            PendingKind::RollingOut => "rolling out",
            PendingKind::RollingBack => "rolling back",
            PendingKind::Failed => "failed, skipped",
            PendingKind::Vetoed => "vetoed",
            PendingKind::Rejected => "rejected",
            PendingKind::Held => "held",
        }
    }
}

/// Environments in pipeline order: promotion edges (`promoteFrom`) first, then tier, then name.
/// Environments in a promotion cycle keep tier order among themselves.
pub fn pipeline_order(envs: &[Environment], releases: &[Release]) -> Vec<String> {
    let known: BTreeMap<String, Tier> = envs.iter().map(|e| (e.name_any(), e.spec.tier)).collect();
    let mut upstreams: BTreeMap<&str, BTreeSet<&str>> =
        known.keys().map(|k| (k.as_str(), BTreeSet::new())).collect();
    for r in releases {
        let Some(from) = &r.spec.promote_from else { continue };
        if from.environment != r.spec.environment
            && known.contains_key(&from.environment)
            && let Some(ups) = upstreams.get_mut(r.spec.environment.as_str())
        {
            ups.insert(from.environment.as_str());
        }
    }
    // Edges inside a promotion cycle say nothing about order: drop them, so tier decides there.
    let reaches = |from: &str, to: &str| {
        let mut stack = vec![from];
        let mut seen = BTreeSet::new();
        while let Some(e) = stack.pop() {
            if e == to {
                return true;
            }
            if seen.insert(e) {
                // `upstreams` maps downstream -> upstreams, so walk it backwards: who follows `e`.
                stack.extend(upstreams.iter().filter(|(_, ups)| ups.contains(e)).map(|(d, _)| *d));
            }
        }
        false
    };
    let cyclic: Vec<(&str, &str)> = upstreams
        .iter()
        .flat_map(|(down, ups)| ups.iter().map(move |up| (*down, *up)))
        .filter(|(down, up)| reaches(down, up))
        .collect();
    for (down, up) in cyclic {
        if let Some(ups) = upstreams.get_mut(down) {
            ups.remove(up);
        }
    }
    let key = |name: &str| (known.get(name).copied().unwrap_or(Tier::Prod), name.to_string());
    let mut order: Vec<String> = Vec::with_capacity(known.len());
    let mut left: BTreeSet<&str> = known.keys().map(String::as_str).collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .filter(|e| upstreams.get(*e).is_none_or(|ups| ups.iter().all(|u| !left.contains(u))))
            .min_by_key(|e| key(e));
        let Some(next) = ready.or_else(|| left.iter().min_by_key(|e| key(e))).copied() else { break };
        left.remove(next);
        order.push(next.to_string());
    }
    order
}

/// Builds the matrix at `now`.
pub fn matrix(namespace: &str, envs: &[Environment], releases: &[Release], now: Timestamp) -> Matrix {
    let order = pipeline_order(envs, releases);
    let by_name: BTreeMap<String, &Environment> = envs.iter().map(|e| (e.name_any(), e)).collect();
    let environments = order
        .iter()
        .filter_map(|name| by_name.get(name))
        .map(|e| EnvColumn {
            name: e.name_any(),
            tier: e.spec.tier,
            namespace: e.spec.namespace.clone(),
            approval_required: e.spec.requires_approval(),
            frozen: frozen(e, now),
            cluster: e.cluster_name().to_string(),
            cluster_trouble: cluster_trouble(e),
        })
        .collect();
    let mut apps: BTreeMap<String, BTreeMap<String, CellState>> = BTreeMap::new();
    for r in releases {
        apps.entry(r.spec.app.clone()).or_default().insert(r.spec.environment.clone(), cell(r));
    }
    Matrix {
        namespace: namespace.to_string(),
        environments,
        apps: apps.into_iter().map(|(app, environments)| AppRow { app, environments }).collect(),
    }
}

/// "until … (reason)" for an Environment inside a freeze window now.
pub fn frozen(env: &Environment, now: Timestamp) -> Option<String> {
    env.spec.freeze_windows.iter().find_map(|w| {
        let why = w.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        match active_until(w, now) {
            Ok(Some(FreezeEnd::At(t))) => Some(format!("until {t}{why}")),
            Ok(Some(FreezeEnd::WhenRemoved)) => Some(format!("until unfrozen{why}")),
            Ok(None) | Err(_) => None,
        }
    })
}

fn condition(r: &Release, type_: ConditionType) -> Option<&crate::api::Condition> {
    find_condition(&r.status.as_ref()?.conditions, type_)
}

pub fn cell(r: &Release) -> CellState {
    let status = r.status.clone().unwrap_or_default();
    let ready = condition(r, ConditionType::Ready);
    let healthy = status.phase == Some(Phase::Healthy);
    CellState {
        release: r.name_any(),
        version: status.current_version.clone(),
        phase: status.phase,
        message: ready.filter(|_| !healthy).map(|c| c.message.clone()).filter(|m| !m.is_empty()),
        pending: pending(r),
        forward_port_missing: condition(r, ConditionType::ForwardPortMissing)
            .filter(|c| c.status == "True")
            .map(|c| c.message.clone()),
        last_rollout: status.history.first().map(|h| h.started_at.0.to_string()),
    }
}

fn pending(r: &Release) -> Option<Pending> {
    let status = r.status.as_ref()?;
    let newest = status.history.first();
    if let Some(h) = newest.filter(|h| h.result == RolloutResult::Progressing) {
        return Some(Pending {
            what: if h.rollback_of.is_some() { PendingKind::RollingBack } else { PendingKind::RollingOut },
            version: Some(h.version.clone()),
            message: h.message.clone().unwrap_or_else(|| format!("rolling out {}", h.version)),
        });
    }
    let held = condition(r, ConditionType::Held).filter(|c| c.status == "True")?;
    let what = match Reason::parse(&held.reason) {
        Some(Reason::AwaitingApproval) => PendingKind::AwaitingApproval,
        Some(Reason::Frozen) => PendingKind::Frozen,
        Some(Reason::Soaking) => PendingKind::Soaking,
        Some(Reason::WaitingForDependencies) => PendingKind::WaitingForDependencies,
        Some(Reason::VersionFailed) => PendingKind::Failed,
        Some(Reason::VersionVetoed) => PendingKind::Vetoed,
        Some(Reason::Rejected) => PendingKind::Rejected,
        _ => PendingKind::Held,
    };
    Some(Pending { what, version: status.held_version.clone(), message: held.message.clone() })
}

/// One line per waiting or broken cell (`payments in prod: 1.3.10 needs an Approval …`) and per
/// forward-port gap, in row and pipeline order; rollouts simply under way are not listed.
pub fn cell_notes(m: &Matrix) -> Vec<String> {
    let mut notes = Vec::new();
    for row in &m.apps {
        for env in &m.environments {
            let Some(c) = row.environments.get(&env.name) else { continue };
            if let Some(msg) = &c.message {
                notes.push(format!("{} in {}: {msg}", row.app, env.name));
            } else if let Some(p) = c.pending.as_ref().filter(|p| p.what != PendingKind::RollingOut) {
                notes.push(format!("{} in {}: {}", row.app, env.name, p.message));
            }
            if let Some(f) = &c.forward_port_missing {
                notes.push(format!("{} in {}: {f}", row.app, env.name));
            }
        }
    }
    notes
}

/// One app's difference between two environments.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiffRow {
    pub app: String,
    /// Running version in the first environment (`None`: no Release, or nothing healthy yet).
    pub a: Option<String>,
    pub b: Option<String>,
    /// Change ids the first environment runs and the second does not.
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    /// `ForwardPortMissing` messages of either side.
    pub forward_port_missing: Vec<String>,
}

impl DiffRow {
    pub fn differs(&self) -> bool {
        self.a != self.b || !self.only_in_a.is_empty() || !self.only_in_b.is_empty()
    }
}

/// Every app that runs in `a` or `b`, by name.
pub fn diff(a: &str, b: &str, releases: &[Release]) -> Vec<DiffRow> {
    let mut apps: BTreeMap<&str, (Option<&Release>, Option<&Release>)> = BTreeMap::new();
    for r in releases {
        let slot = apps.entry(r.spec.app.as_str()).or_default();
        if r.spec.environment == a {
            slot.0 = Some(r);
        }
        if r.spec.environment == b {
            slot.1 = Some(r);
        }
    }
    let running =
        |r: Option<&Release>| r.and_then(|r| r.status.as_ref()).and_then(|s| s.current_version.clone());
    let changes = |r: Option<&Release>| -> BTreeSet<String> {
        r.and_then(|r| r.status.as_ref()).map(|s| s.changes.iter().cloned().collect()).unwrap_or_default()
    };
    apps.into_iter()
        .filter(|(_, (ra, rb))| ra.is_some() || rb.is_some())
        .map(|(app, (ra, rb))| {
            let (ca, cb) = (changes(ra), changes(rb));
            let forward_port_missing = [ra, rb]
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    condition(r, ConditionType::ForwardPortMissing).filter(|c| c.status == "True")
                })
                .map(|c| c.message.clone())
                .collect();
            DiffRow {
                app: app.to_string(),
                a: running(ra),
                b: running(rb),
                only_in_a: ca.difference(&cb).cloned().collect(),
                only_in_b: cb.difference(&ca).cloned().collect(),
                forward_port_missing,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
