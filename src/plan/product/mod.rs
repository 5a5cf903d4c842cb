//! A product in an Environment, decided purely: which product version it runs (pinned, tracked,
//! promoted, rolled back to), whether the Environment's gates let a new one in, how far its apps'
//! rollouts are, and when all of them go back. The controller feeds it the cached objects and
//! carries out what it says (the status, each app's Release spec).

pub mod choose;
pub mod snapshot;
pub mod version;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::choose::{Choice, Stop as ChooseStop};
use super::gates::{self, GateFacts, Stop};
use super::rollback::record_failed;
use super::target::MAX_RECHECK;
use super::wait::{Blocked, Held};
use crate::api::{
    Admitted, Approval, ConditionType, ConditionUpdate, Dependency, Environment, HISTORY_LIMIT, HistoryEntry,
    Phase, ProductApp, ProductAppStatus, ProductRelease, ProductReleaseStatus, ProductVersion, RanHealthy,
    Reason, Release, ReleaseSpec, RollbackSpec, RolloutResult, child_release_name, set_condition,
};

/// Everything one product's decision reads.
pub struct ProductInputs<'a> {
    pub product: &'a ProductRelease,
    pub env: Option<&'a Environment>,
    /// The ProductVersions of this product in the namespace.
    pub versions: Vec<&'a ProductVersion>,
    /// For `promoteFrom`: the ProductReleases of this product in the upstream Environment.
    pub upstream: Vec<&'a ProductRelease>,
    /// Approvals naming this ProductRelease.
    pub approvals: Vec<&'a Approval>,
    /// The Releases it runs (by app): those named and owned as its own, nothing else.
    pub children: BTreeMap<String, &'a Release>,
    /// Other Releases already running one of its apps in the Environment: app → Release name.
    pub squatters: BTreeMap<String, String>,
    pub now: jiff::Timestamp,
}

/// What the product does now: its next status, each app's Release spec (by Release name), what to
/// tell, and when to look again.
#[derive(Debug)]
pub struct ProductStep {
    pub status: ProductReleaseStatus,
    pub children: Vec<(String, ReleaseSpec)>,
    /// Events to publish: reason, message, and whether it is a warning.
    pub events: Vec<(Reason, String, bool)>,
    pub recheck_in: Option<Duration>,
}

/// How an admitted product version's apps are doing.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Healthy,
    /// Waiting: for which app first, and what to say.
    Progressing {
        first: String,
        message: String,
    },
    Failed {
        app: String,
        message: String,
    },
}

/// Decides the product's next step from `inputs` (its status included).
pub fn step(inputs: &ProductInputs<'_>) -> ProductStep {
    let product = inputs.product;
    let now = Time(inputs.now);
    let prev = product.status.clone().unwrap_or_default();
    let mut st = ProductReleaseStatus { observed_generation: product.metadata.generation, ..prev.clone() };
    let mut events = Vec::new();
    let (held, blocked) = match choose::choose(inputs, &st) {
        Ok(choice) if !admits(&st, &choice) => match admit(inputs, &choice) {
            Ok((notes, approvers)) => {
                let generation = product.metadata.generation;
                start(&mut st, &choice, notes, approvers, None, &now, generation);
                events.push((Reason::RolloutStarted, format!("rolling out {}", choice.version), false));
                (None, None)
            }
            Err(Stop::Held(h)) => (Some(h), None),
            Err(Stop::Blocked(b)) => (None, Some(b)),
        },
        Ok(_) => (None, None),
        Err(ChooseStop::Held(h)) => (Some(h), None),
        Err(ChooseStop::Blocked(b)) => (None, Some(b)),
    };
    // A timer of years would overflow the queue's clock: a day at most (see `MAX_RECHECK`).
    let recheck_in = held
        .as_ref()
        .and_then(|h| h.recheck_in)
        .or(blocked.as_ref().and_then(|b| b.recheck_in))
        .map(|d| d.min(MAX_RECHECK));
    st.held_version = held.as_ref().and_then(|h| h.version.clone());
    set_held(&mut st, held.as_ref(), &now);
    // Nothing admitted yet: nothing runs, and the status says why.
    if st.admitted.is_none() {
        let b = blocked.clone().or_else(|| {
            held.map(|h| Blocked {
                phase: Phase::Pending,
                reason: h.reason,
                message: h.message,
                recheck_in: None,
            })
        });
        if let Some(b) = b {
            st.phase = Some(b.phase);
            set_ready(&mut st, false, b.reason, b.message, &now);
            return ProductStep { status: st, children: Vec::new(), events, recheck_in };
        }
    }
    // What was admitted keeps running (a newer version held, or the spec broken meanwhile); the
    // Ready condition says what is wrong with the spec first, then how the apps do.
    let mut deadline_in = None;
    let (ok, reason, message) = judge_and_record(inputs, &mut st, &mut events, &now, &mut deadline_in);
    let recheck_in = match (recheck_in, deadline_in) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match &blocked {
        Some(b) => {
            if b.phase == Phase::Failed {
                st.phase = Some(Phase::Failed);
            }
            set_ready(&mut st, false, b.reason, b.message.clone(), &now);
        }
        None => set_ready(&mut st, ok, reason, message, &now),
    }
    let children = st.admitted.as_ref().map(|a| desired_children(product, a)).unwrap_or_default();
    ProductStep { status: st, children, events, recheck_in }
}

/// Whether `choice` is what already runs: the same version of the same ProductVersion.
fn admits(st: &ProductReleaseStatus, choice: &Choice) -> bool {
    // A rollback asked for to what rolls out now makes it a rollback (not rolled back again).
    st.admitted.as_ref().is_some_and(|a| {
        a.version == choice.version.to_string()
            && a.uid == choice.uid
            && (a.manual || !choice.explicit_rollback)
    })
}

/// The checks a product version passes before it is admitted: its Releases' names fit, no other
/// Release runs one of its apps here, and (unless a person asked to go back to it) the
/// Environment's gates; with what they note and who approved.
fn admit(inputs: &ProductInputs<'_>, choice: &Choice) -> Result<(Vec<String>, Vec<String>), Stop> {
    if let Some(b) = too_long(inputs.product, &choice.apps).or_else(|| squatting(inputs, &choice.apps)) {
        return Err(Stop::Blocked(b));
    }
    let Some(env) = inputs.env else { return Ok(Default::default()) };
    if choice.explicit_rollback {
        return Ok((vec![format!("manual rollback to {}", choice.version)], Vec::new()));
    }
    let facts = GateFacts { approvals: &inputs.approvals, peers: &[], now: inputs.now };
    let passed = gates::check_product(inputs.product, choice.created, env, &choice.version, &facts)?;
    Ok((passed.notes, passed.approvers))
}

/// The longest name of a ProductRelease's Release of an app: it labels what it applies, and a
/// label value holds 63 characters.
pub const CHILD_NAME_LIMIT: usize = 63;

/// A Release name the product cannot give (too long for the labels it goes into).
fn too_long(product: &ProductRelease, apps: &[ProductApp]) -> Option<Blocked> {
    let name = product.metadata.name.as_deref().unwrap_or_default();
    let long = apps.iter().map(|a| child_release_name(name, &a.app)).find(|n| n.len() > CHILD_NAME_LIMIT)?;
    Some(Blocked {
        phase: Phase::Failed,
        reason: Reason::NameTooLong,
        message: format!(
            "the Release of an app would be named {long:?}, longer than {CHILD_NAME_LIMIT} characters; give the ProductRelease a shorter name"
        ),
        recheck_in: None,
    })
}

/// An app of `apps` that another Release already runs in the Environment (and no Release of the
/// product does yet): the product does not take it over.
fn squatting(inputs: &ProductInputs<'_>, apps: &[ProductApp]) -> Option<Blocked> {
    let taken: Vec<String> = apps
        .iter()
        .filter(|a| !inputs.children.contains_key(&a.app))
        .filter_map(|a| inputs.squatters.get(&a.app).map(|r| format!("{} (Release {r})", a.app)))
        .collect();
    (!taken.is_empty()).then(|| Blocked {
        phase: Phase::Failed,
        reason: Reason::AppRunByRelease,
        message: format!(
            "already run in Environment {:?} by a Release of its own: {}; delete that Release, or leave the app out of the product",
            inputs.product.spec.environment,
            taken.join(", ")
        ),
        recheck_in: None,
    })
}

/// Admits `choice`: its apps may now run, and a rollout of it begins in history.
fn start(
    st: &mut ProductReleaseStatus,
    choice: &Choice,
    notes: Vec<String>,
    approvers: Vec<String>,
    rollback_of: Option<String>,
    now: &Time,
    generation: Option<i64>,
) {
    for h in st.history.iter_mut().filter(|h| h.result == RolloutResult::Progressing) {
        h.result = RolloutResult::Superseded;
        h.finished_at = Some(now.clone());
    }
    let version = choice.version.to_string();
    st.admitted = Some(Admitted {
        version: version.clone(),
        uid: choice.uid.clone(),
        apps: choice.apps.to_vec(),
        started_at: now.clone(),
        rollback_of: rollback_of.clone(),
        manual: choice.explicit_rollback,
        notes,
        approvers: approvers.clone(),
    });
    st.desired_version = Some(version.clone());
    st.changes = choice.changes.to_vec();
    st.history.insert(
        0,
        HistoryEntry {
            version,
            started_at: now.clone(),
            finished_at: None,
            result: RolloutResult::Progressing,
            message: None,
            rollback_of,
            approvers,
            held: None,
            requester: Default::default(),
            generation,
        },
    );
    st.history.truncate(HISTORY_LIMIT);
}

/// Reads how the admitted apps are doing; a failure marks the version failed and, with automatic
/// rollback, admits again the app versions that last ran healthy here, all apps at once. Returns
/// what the Ready condition says of the apps.
fn judge_and_record(
    inputs: &ProductInputs<'_>,
    st: &mut ProductReleaseStatus,
    events: &mut Vec<(Reason, String, bool)>,
    now: &Time,
    deadline_in: &mut Option<Duration>,
) -> (bool, Reason, String) {
    let Some(admitted) = st.admitted.clone() else {
        return (false, Reason::NoVersion, "nothing admitted".into());
    };
    st.apps = app_rows(inputs, &admitted);
    // The product's deadline runs only during a rollout, and only while its Environment can be
    // deployed to (not while it is not Ready, its cluster unreachable).
    let timed = st
        .history
        .first()
        .is_some_and(|h| h.version == admitted.version && h.result == RolloutResult::Progressing)
        && crate::plan::target::ready(inputs.env, &inputs.product.spec.environment).is_ok();
    let (progress, wake) =
        progress_by(inputs.product, &admitted, &inputs.children, timed.then_some(inputs.now));
    *deadline_in = wake;
    match progress {
        Progress::Healthy => {
            if let Some(h) = rollout_of(st, &admitted.version) {
                h.result = RolloutResult::Succeeded;
                h.finished_at = Some(now.clone());
                events.push((
                    Reason::RolloutComplete,
                    format!("{} runs healthy, every app", admitted.version),
                    false,
                ));
            }
            // Healthy since now when this is another product version than ran healthy before, even
            // under the same version (made again since): what downstream soaks count from.
            let same = st
                .ran_healthy
                .first()
                .is_some_and(|r| r.version == admitted.version && r.uid == admitted.uid);
            if st.current_version.as_deref() != Some(admitted.version.as_str())
                || st.healthy_since.is_none()
                || !same
            {
                st.current_version = Some(admitted.version.clone());
                st.healthy_since = Some(now.clone());
            }
            remember_healthy(st, &admitted);
            st.phase = Some(Phase::Healthy);
            (
                true,
                Reason::RolloutComplete,
                format!("{} runs healthy: {}", admitted.version, versions_of(&admitted)),
            )
        }
        Progress::Progressing { message, .. } => {
            st.phase = Some(Phase::Progressing);
            (false, Reason::RolloutInProgress, message)
        }
        Progress::Failed { app, message } => {
            let why = format!("{app}: {message}");
            let failed = (false, Reason::ProductRolloutFailed, format!("{} failed: {why}", admitted.version));
            st.phase = Some(Phase::Degraded);
            let Some(h) = rollout_of(st, &admitted.version) else { return failed };
            h.result = RolloutResult::Failed;
            h.finished_at = Some(now.clone());
            h.message = Some(why.clone());
            events.push((Reason::ProductRolloutFailed, format!("{} failed: {why}", admitted.version), true));
            record_failed(&mut st.failed_versions, admitted.version.clone());
            // A rollback (automatic or asked for) that fails is not rolled back again: a person
            // decides.
            if !auto_rollback(inputs.product) || admitted.rollback_of.is_some() || admitted.manual {
                return failed;
            }
            let Some(back) = st.ran_healthy.iter().find(|r| r.version != admitted.version).cloned() else {
                return failed;
            };
            let choice = Choice {
                version: match semver::Version::parse(&back.version) {
                    Ok(v) => v,
                    Err(_) => return failed,
                },
                uid: back.uid.clone(),
                created: None,
                apps: back.apps.clone(),
                changes: back.changes.clone(),
                explicit_rollback: false,
            };
            // The way back passes the same checks as the way in (bar the gates: a rollback).
            if let Some(b) =
                too_long(inputs.product, &choice.apps).or_else(|| squatting(inputs, &choice.apps))
            {
                return (
                    false,
                    b.reason,
                    format!(
                        "{} failed ({why}); cannot go back to {}: {}",
                        admitted.version, back.version, b.message
                    ),
                );
            }
            let note = format!(
                "product {} back to {} because {} failed in {}: {why}",
                inputs.product.spec.product,
                choice.version,
                admitted.version,
                inputs.product.spec.environment
            );
            events.push((Reason::RollingBack, note.clone(), true));
            let generation = inputs.product.metadata.generation;
            start(
                st,
                &choice,
                vec![note.clone()],
                Vec::new(),
                Some(admitted.version.clone()),
                now,
                generation,
            );
            if let Some(a) = st.admitted.clone() {
                st.apps = app_rows(inputs, &a);
            }
            st.phase = Some(Phase::Progressing);
            (false, Reason::RollingBack, note)
        }
    }
}

/// Keeps the app versions of a product version that ran healthy here (what a rollback goes back
/// to: exactly what ran, whatever its ProductVersion has become since), newest first.
fn remember_healthy(st: &mut ProductReleaseStatus, admitted: &Admitted) {
    if st.ran_healthy.first().is_some_and(|r| r.version == admitted.version && r.uid == admitted.uid) {
        return;
    }
    st.ran_healthy.retain(|r| r.version != admitted.version);
    st.ran_healthy.insert(
        0,
        RanHealthy {
            version: admitted.version.clone(),
            uid: admitted.uid.clone(),
            apps: admitted.apps.clone(),
            changes: st.changes.clone(),
        },
    );
    st.ran_healthy.truncate(HISTORY_LIMIT);
}

/// Whether the product goes back on its own when an app fails (default: yes, whatever the mode).
pub fn auto_rollback(p: &ProductRelease) -> bool {
    p.spec.rollback.as_ref().and_then(|r| r.auto).unwrap_or(true)
}

/// The rollout of `version` under way in history, if there is one.
fn rollout_of<'s>(st: &'s mut ProductReleaseStatus, version: &str) -> Option<&'s mut HistoryEntry> {
    st.history.first_mut().filter(|h| h.version == version && h.result == RolloutResult::Progressing)
}

/// How the apps of `admitted` do, in rollout order: the first failure, else the first not yet
/// healthy at its version, else healthy.
fn progress(admitted: &Admitted, children: &BTreeMap<String, &Release>) -> Progress {
    let mut waiting = Vec::new();
    for app in in_rollout_order(admitted) {
        let Some(child) = children.get(&app.app) else {
            waiting.push((app.app.clone(), format!("{} (no Release yet)", app.app)));
            continue;
        };
        let s = child.status.clone().unwrap_or_default();
        let at_version = s.desired_version.as_deref() == Some(app.version.as_str())
            && child.spec.version.as_deref() == Some(app.version.as_str());
        let healthy = at_version
            && s.phase == Some(Phase::Healthy)
            && s.current_version.as_deref() == Some(&app.version);
        if healthy {
            continue;
        }
        if at_version && matches!(s.phase, Some(Phase::Degraded | Phase::Failed)) {
            let ready = crate::api::find_condition(&s.conditions, ConditionType::Ready);
            let message =
                ready.map_or_else(|| "failed".to_string(), |c| format!("{}: {}", c.reason, c.message));
            return Progress::Failed { app: app.app.clone(), message };
        }
        waiting.push((app.app.clone(), format!("{} {}", app.app, app.version)));
    }
    match waiting.first() {
        None => Progress::Healthy,
        Some((first, _)) => Progress::Progressing {
            first: first.clone(),
            message: format!(
                "waiting for {}",
                waiting.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

/// The admitted apps, wave by wave (as listed, should their order not resolve).
fn in_rollout_order(admitted: &Admitted) -> Vec<&ProductApp> {
    let Ok(waves) = version::waves(&admitted.apps) else { return admitted.apps.iter().collect() };
    waves.iter().flatten().filter_map(|name| admitted.apps.iter().find(|a| &a.app == name)).collect()
}

/// Slack on top of the product's deadline, for the apps' Releases to be made and their statuses
/// to settle.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// How long a product version may take here, all apps: each wave its apps' progress deadline, plus
/// slack. Past it, an app that has not reached its version (held, refused, stuck) fails the
/// product version as its own deadline would (an app's own deadline counts only from its rollout's
/// start, which may never come).
pub fn deadline(product: &ProductRelease, admitted: &Admitted) -> Duration {
    let waves = version::waves(&admitted.apps).map_or(admitted.apps.len(), |w| w.len()).max(1);
    let per_app =
        product.spec.progress_deadline_seconds.unwrap_or(crate::api::DEFAULT_PROGRESS_DEADLINE_SECONDS);
    let per_app = Duration::from_secs(u64::try_from(per_app).unwrap_or(0));
    per_app.saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX)).saturating_add(DEADLINE_SLACK)
}

/// `progress`, with the product's deadline: still waiting past it is a failure of the first app
/// not there; before it, when to look again.
fn progress_by(
    product: &ProductRelease,
    admitted: &Admitted,
    children: &BTreeMap<String, &Release>,
    now: Option<jiff::Timestamp>,
) -> (Progress, Option<Duration>) {
    match progress(admitted, children) {
        Progress::Progressing { first, message } => {
            let Some(now) = now else { return (Progress::Progressing { first, message }, None) };
            let limit = deadline(product, admitted);
            let spent = Duration::try_from(now.duration_since(admitted.started_at.0)).unwrap_or_default();
            match limit.checked_sub(spent).filter(|left| !left.is_zero()) {
                Some(left) => (Progress::Progressing { first, message }, Some(left)),
                None => {
                    let why = format!("not there within the product's {}s ({message})", limit.as_secs());
                    (Progress::Failed { app: first, message: why }, None)
                }
            }
        }
        other => (other, None),
    }
}

/// Each admitted app's row: its version, Release and how it does.
fn app_rows(inputs: &ProductInputs<'_>, admitted: &Admitted) -> Vec<ProductAppStatus> {
    let name = inputs.product.metadata.name.as_deref().unwrap_or_default();
    admitted
        .apps
        .iter()
        .map(|a| {
            let s = inputs.children.get(&a.app).and_then(|c| c.status.clone()).unwrap_or_default();
            ProductAppStatus {
                app: a.app.clone(),
                version: a.version.clone(),
                release: child_release_name(name, &a.app),
                phase: s.phase,
                current_version: s.current_version,
            }
        })
        .collect()
}

fn versions_of(admitted: &Admitted) -> String {
    admitted.apps.iter().map(|a| format!("{} {}", a.app, a.version)).collect::<Vec<_>>().join(", ")
}

/// The spec of each app's Release: pinned at the admitted version, after the apps it names (at
/// their admitted versions), without a rollback of its own (the product's goes for all).
pub fn desired_children(product: &ProductRelease, admitted: &Admitted) -> Vec<(String, ReleaseSpec)> {
    let name = product.metadata.name.as_deref().unwrap_or_default();
    admitted
        .apps
        .iter()
        .map(|a| {
            let depends_on = a
                .after
                .iter()
                .map(|d| Dependency {
                    app: d.clone(),
                    version: admitted.version_of(d).map(|v| format!("={v}")),
                })
                .collect();
            let spec = ReleaseSpec {
                app: a.app.clone(),
                environment: product.spec.environment.clone(),
                version: Some(a.version.clone()),
                depends_on,
                rollback: Some(RollbackSpec { auto: Some(false), to: None }),
                progress_deadline_seconds: product.spec.progress_deadline_seconds,
                ..Default::default()
            };
            (child_release_name(name, &a.app), spec)
        })
        .collect()
}

/// Whether a Release already has the parts of `want` the product sets (its other fields are its
/// users': values, checks).
pub fn child_matches(have: &ReleaseSpec, want: &ReleaseSpec) -> bool {
    have.app == want.app
        && have.environment == want.environment
        && have.version == want.version
        && have.track.is_none()
        && have.promote_from.is_none()
        && have.depends_on == want.depends_on
        && have.rollback.as_ref().and_then(|r| r.auto) == Some(false)
        && have.rollback.as_ref().and_then(|r| r.to.as_ref()).is_none()
        && have.progress_deadline_seconds == want.progress_deadline_seconds
}

fn set_ready(st: &mut ProductReleaseStatus, ok: bool, reason: Reason, message: String, now: &Time) {
    let generation = st.observed_generation;
    set_condition(
        &mut st.conditions,
        ConditionUpdate::new(ConditionType::Ready, ok, reason, message),
        generation,
        now,
    );
}

fn set_held(st: &mut ProductReleaseStatus, held: Option<&Held>, now: &Time) {
    let generation = st.observed_generation;
    let update = match held {
        Some(h) => ConditionUpdate::new(ConditionType::Held, true, h.reason, h.message.clone()),
        None => {
            ConditionUpdate::new(ConditionType::Held, false, Reason::NothingHeld, "no newer version waits")
        }
    };
    set_condition(&mut st.conditions, update, generation, now);
}

#[cfg(test)]
mod tests;
