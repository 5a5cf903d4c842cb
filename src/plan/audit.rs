//! Pure: the audit records a status change makes (see [`crate::api::Ledger`]). A rollout is
//! recorded once it has ended, with its start: one write per rollout.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    AppVersion, Approval, Decision, FreezeWindow, HistoryEntry, REQUESTED_BY_ANNOTATION,
    REQUESTED_GENERATION_ANNOTATION, Record, RecordKind, Release, ReleaseSpec, ReleaseStatus, Requester,
    RolloutResult, Veto, digest,
};

/// What the operator knows of a version when it records a rollout of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionFacts {
    pub changes: Vec<String>,
    pub published_at: Option<Time>,
}

/// The rollouts that ended between `prev` and `next` (two histories of one Release, newest
/// first), each with the version that ran before it, oldest first.
pub fn ended_rollouts<'a>(
    prev: &[HistoryEntry],
    next: &'a [HistoryEntry],
) -> Vec<(&'a HistoryEntry, Option<&'a str>)> {
    let ended_before = |e: &HistoryEntry| {
        prev.iter().any(|p| {
            p.version == e.version && p.started_at == e.started_at && p.result != RolloutResult::Progressing
        })
    };
    next.iter()
        .enumerate()
        .filter(|(_, e)| e.result != RolloutResult::Progressing && !ended_before(e))
        .map(|(i, e)| (e, next.get(i + 1).map(|before| before.version.as_str())))
        .rev()
        .collect()
}

/// What asked for a rollout: the Release's mode, or the rollback it was.
pub fn asked_by(spec: &ReleaseSpec, entry: &HistoryEntry) -> String {
    if let Some(failed) = &entry.rollback_of {
        return format!("rollback from {failed}");
    }
    if spec.rollback_to() == Some(entry.version.as_str()) {
        return "manual rollback".into();
    }
    match (&spec.version, &spec.track, &spec.promote_from) {
        (Some(_), ..) => "pinned".into(),
        (_, Some(range), _) => format!("tracking {range}"),
        (.., Some(from)) => format!("promoted from {}", from.environment),
        _ => "unknown".into(),
    }
}

/// Who asked for the rollout `rel` starts now (`history`: its rollouts so far, newest first): the
/// user of a verified request claim (see [`REQUESTED_BY_ANNOTATION`]) made with the spec's current
/// generation, for the first rollout of that generation only (a later one of the same spec was
/// started by something else: an Environment's change, a new version a range takes in, a veto
/// lifted); and the field manager that wrote the field choosing the version.
pub fn requester(rel: &Release, history: &[HistoryEntry]) -> Requester {
    let annotation = |key: &str| rel.metadata.annotations.as_ref().and_then(|a| a.get(key));
    let generation = rel.metadata.generation;
    let claimed = annotation(REQUESTED_GENERATION_ANNOTATION)
        .is_some_and(|g| generation.is_some_and(|now| g == &now.to_string()));
    let first = !history.iter().any(|h| h.generation.is_some() && h.generation >= generation);
    let requested_by = annotation(REQUESTED_BY_ANNOTATION)
        .filter(|u| claimed && first && !u.is_empty())
        .map(|u| cut(u, MAX_NAME));
    let managed = rel.metadata.managed_fields.as_deref().unwrap_or_default();
    let applied_by = rel
        .spec
        .version_source()
        .and_then(|source| crate::fields::writer(managed, source.path()))
        .map(|m| cut(m, MAX_MANAGER));
    Requester { requested_by, applied_by }
}

/// The record of an Approval (or a rejection) of a version for `release`; none for one the API
/// server has not stamped with a creation time.
pub fn approval_record(release: &str, approval: &Approval) -> Option<Record> {
    let at = approval.metadata.creation_timestamp.clone()?;
    let kind = match approval.spec.decision() {
        Decision::Approve => RecordKind::Approval,
        Decision::Reject => RecordKind::Rejection,
    };
    let by = approval.spec.approver.as_deref().map(|a| cut(a, MAX_NAME));
    // Its uid: an Approval made again under the same name is another record.
    let source = Some(format!("Approval/{}", approval.metadata.uid.as_deref()?));
    Some(Record {
        release: release.to_string(),
        version: Some(cut(approval.spec.version.trim(), MAX_VERSION)),
        approvers: by.iter().cloned().collect(),
        by,
        note: approval.spec.reason.as_deref().map(|r| cut(r, MAX_NOTE)),
        ..record(kind, at, source)
    })
}

/// An empty record of `kind` at `at`, from `source`, for filling in.
fn record(kind: RecordKind, at: Time, source: Option<String>) -> Record {
    Record {
        kind,
        at,
        release: String::new(),
        version: None,
        from: None,
        started_at: None,
        result: None,
        rollback_of: None,
        by: None,
        approvers: Vec::new(),
        changes: Vec::new(),
        published_at: None,
        note: None,
        held: None,
        requester: Requester::default(),
        source: source.map(|s| cut(&s, MAX_NAME)),
    }
}

/// How a veto is kept in an AppVersion's status once recorded: who, when (as the CLI set it; the
/// veto policy lets nobody else change it), why.
pub fn veto_mark(veto: &Veto) -> String {
    cut(
        &format!("{}|{}|{}", veto.by.as_deref().unwrap_or(""), veto.at.as_deref().unwrap_or(""), veto.reason),
        MAX_NOTE,
    )
}

/// The records a veto on `av` makes, given the one recorded before (`recorded`, see
/// [`veto_mark`]): a new veto, or the lifting of the recorded one. Both are dated when the
/// operator sees them (a time a tenant writes would pick the Ledger's month) and keyed by the
/// veto, so that writing them again after a crash adds nothing.
pub fn veto_records(av: &AppVersion, recorded: Option<&str>, now: &Time) -> Vec<Record> {
    let veto = Veto::of(av);
    let mark = veto.as_ref().map(veto_mark);
    if mark.as_deref() == recorded {
        return Vec::new();
    }
    let uid = av.metadata.uid.as_deref().unwrap_or_default();
    let version = Some(cut(&av.spec.version, MAX_VERSION));
    match (veto, mark) {
        (Some(v), Some(mark)) => {
            let source = format!("AppVersion/{uid} veto {}", digest(&mark));
            let mut r = record(RecordKind::Veto, now.clone(), Some(source));
            r.by = v.by.as_deref().map(|b| cut(b, MAX_NAME));
            r.note = Some(cut(&v.reason, MAX_NOTE));
            vec![Record { version, ..r }]
        }
        _ => {
            let was = recorded.unwrap_or_default();
            let source = format!("AppVersion/{uid} lifted {}", digest(was));
            let mut r = record(RecordKind::VetoLifted, now.clone(), Some(source));
            let reason = was.splitn(3, '|').nth(2).unwrap_or_default();
            r.note = Some(cut(&format!("the veto ({reason}) was lifted"), MAX_NOTE));
            vec![Record { version, ..r }]
        }
    }
}

/// How a freeze window is kept in an Environment's status once recorded: a digest of it and how
/// it reads (what its removal's record says), small whatever the window.
pub fn freeze_marks(windows: &[FreezeWindow]) -> Vec<String> {
    windows.iter().map(|w| format!("{} {}", window_digest(w), cut(&describe(w), MAX_MARK_NOTE))).collect()
}

/// The records a change of an Environment's freeze windows makes (`generation`: the spec's that
/// made it), given the marks recorded before: one per window added (a line stop for `tuskfish
/// freeze --all`'s), one per window removed.
pub fn freeze_records(
    environment_uid: &str,
    generation: i64,
    windows: &[FreezeWindow],
    recorded: &[String],
    now: &Time,
) -> Vec<Record> {
    let digest_of = |mark: &str| mark.split_once(' ').map_or(mark, |(d, _)| d).to_string();
    let known: Vec<String> = recorded.iter().map(|m| digest_of(m)).collect();
    let current: Vec<String> = windows.iter().map(window_digest).collect();
    let source =
        |what: &str, d: &str| format!("Environment/{environment_uid} generation {generation} {what} {d}");
    let added = windows.iter().zip(&current).filter(|(_, d)| !known.contains(d)).map(|(w, d)| {
        let kind = if w.line_stop { RecordKind::LineStop } else { RecordKind::Freeze };
        Record {
            note: Some(cut(&describe(w), MAX_NOTE)),
            ..record(kind, now.clone(), Some(source("added", d)))
        }
    });
    let removed = recorded.iter().filter(|m| !current.contains(&digest_of(m))).map(|m| {
        let note = m.split_once(' ').map_or("", |(_, n)| n).to_string();
        Record {
            note: Some(note),
            ..record(RecordKind::Unfreeze, now.clone(), Some(source("removed", &digest_of(m))))
        }
    });
    added.chain(removed).collect()
}

/// A freeze window as people read it: `year end (from … until …)`.
fn describe(w: &FreezeWindow) -> String {
    let when = match (&w.start, &w.end, &w.weekly, &w.recurrence) {
        (Some(s), Some(e), ..) => format!("from {s} until {e}"),
        (Some(s), None, ..) => format!("from {s} until removed"),
        (_, _, Some(wk), _) => format!("weekly {} {}-{}", wk.days.join(","), wk.from, wk.to),
        (_, _, _, Some(r)) => format!("recurring {}", r.rule),
        _ => "until removed".to_string(),
    };
    format!("{} ({when})", w.reason.as_deref().unwrap_or("no reason given"))
}

fn window_digest(w: &FreezeWindow) -> String {
    digest(&serde_json::to_string(w).unwrap_or_default())
}

/// The records of a Release deleted at `deleted_at` once what it ran is removed (`now`): the
/// rollout it was in the middle of, ended, and the removal itself.
pub fn removal_records(
    release: &str,
    spec: &ReleaseSpec,
    status: &ReleaseStatus,
    deleted_at: &Time,
    now: &Time,
) -> Vec<Record> {
    let mut records = Vec::new();
    if let Some(running) = status.history.first().filter(|h| h.result == RolloutResult::Progressing) {
        let ended = HistoryEntry {
            finished_at: Some(now.clone()),
            result: RolloutResult::Superseded,
            message: Some("the Release was deleted during this rollout".into()),
            ..running.clone()
        };
        let before = status.history.get(1).map(|h| h.version.as_str());
        records.push(rollout_record(release, spec, (&ended, before), VersionFacts::default()));
    }
    records.push(Record {
        release: release.to_string(),
        version: status.current_version.clone().or_else(|| status.desired_version.clone()),
        started_at: Some(deleted_at.clone()),
        note: Some("the Release was deleted; what it ran was removed".into()),
        ..record(RecordKind::Removed, now.clone(), None)
    });
    records
}

/// True when a Ledger of `month` (`YYYY-MM`) is past a retention of `keep` at `now`: the whole
/// month ended more than `keep` ago. A month that does not read as one is kept (it was not ours).
pub fn expired(month: &str, now: jiff::Timestamp, keep: std::time::Duration) -> bool {
    let Ok(first) = jiff::civil::Date::strptime("%Y-%m-%d", format!("{month}-01")) else { return false };
    let Some(end) = first.checked_add(jiff::Span::new().months(1)).ok() else { return false };
    let Ok(end) = end.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()) else { return false };
    let keep = jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(end) > keep
}

/// The Ledger schema's bounds (see `crate::api::Record`).
const MAX_NOTE: usize = 2048;
const MAX_APPROVERS: usize = 32;
const MAX_NAME: usize = 253;
const MAX_VERSION: usize = 128;
/// How much of a freeze window's description its status mark keeps.
const MAX_MARK_NOTE: usize = 256;
const MAX_CHANGES: usize = 200;
const MAX_MANAGER: usize = 128;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The record of one ended rollout of `release`.
pub fn rollout_record(
    release: &str,
    spec: &ReleaseSpec,
    (entry, from): (&HistoryEntry, Option<&str>),
    facts: VersionFacts,
) -> Record {
    // Within the Ledger's schema, or the API server would refuse the record for ever.
    let note = entry.message.as_deref().map(|n| cut(n, MAX_NOTE));
    let mut approvers = entry.approvers.clone();
    approvers.truncate(MAX_APPROVERS);
    approvers.iter_mut().for_each(|a| *a = cut(a, MAX_NAME));
    let mut changes = facts.changes;
    changes.truncate(MAX_CHANGES);
    Record {
        kind: RecordKind::Rollout,
        at: entry.finished_at.clone().unwrap_or_else(|| entry.started_at.clone()),
        release: release.to_string(),
        version: Some(entry.version.clone()),
        from: from.map(String::from),
        started_at: Some(entry.started_at.clone()),
        result: Some(entry.result),
        rollback_of: entry.rollback_of.clone(),
        by: Some(asked_by(spec, entry)),
        approvers,
        changes,
        published_at: facts.published_at,
        note,
        held: entry.held.clone(),
        requester: entry.requester.clone(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PromoteFrom;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn entry(version: &str, started: &str, result: RolloutResult) -> HistoryEntry {
        HistoryEntry {
            version: version.into(),
            started_at: t(started),
            finished_at: (result != RolloutResult::Progressing).then(|| t("2026-12-07T12:00:00Z")),
            result,
            message: None,
            rollback_of: None,
            approvers: Vec::new(),
            held: None,
            requester: Default::default(),
            generation: None,
        }
    }

    use RolloutResult::*;

    /// A name, the history before, the history after, and the rollouts recorded (version, from).
    type Case =
        (&'static str, Vec<HistoryEntry>, Vec<HistoryEntry>, Vec<(&'static str, Option<&'static str>)>);

    #[test]
    fn a_rollout_is_recorded_once_when_it_ends() {
        let running = entry("1.3.10", "2026-12-07T10:00:00Z", Progressing);
        let done = entry("1.3.10", "2026-12-07T10:00:00Z", Succeeded);
        let before = entry("1.3.9", "2026-12-01T10:00:00Z", Succeeded);
        let table: Vec<Case> = vec![
            ("started: nothing yet", vec![before.clone()], vec![running.clone(), before.clone()], vec![]),
            (
                "ended",
                vec![running.clone(), before.clone()],
                vec![done.clone(), before.clone()],
                vec![("1.3.10", Some("1.3.9"))],
            ),
            (
                "seen again: nothing new",
                vec![done.clone(), before.clone()],
                vec![done.clone(), before.clone()],
                vec![],
            ),
            // Superseded by a new rollout, and that one failed at once: both, oldest first.
            (
                "two in one change",
                vec![running.clone(), before.clone()],
                vec![
                    entry("1.3.11", "2026-12-07T11:00:00Z", Failed),
                    entry("1.3.10", "2026-12-07T10:00:00Z", Superseded),
                    before.clone(),
                ],
                vec![("1.3.10", Some("1.3.9")), ("1.3.11", Some("1.3.10"))],
            ),
            // The first rollout here, refused at once: recorded with its first status.
            (
                "first status",
                vec![],
                vec![entry("1.3.9", "2026-12-01T10:00:00Z", Failed)],
                vec![("1.3.9", None)],
            ),
        ];
        for (name, prev, next, want) in table {
            let got: Vec<(&str, Option<&str>)> = ended_rollouts(&prev, &next)
                .into_iter()
                .map(|(e, from)| (e.version.as_str(), from))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_release_deleted_mid_rollout_records_that_rollout_ended_and_its_removal() {
        let spec = ReleaseSpec { app: "payments".into(), environment: "prod".into(), ..Default::default() };
        let status = ReleaseStatus {
            current_version: Some("1.3.9".into()),
            history: vec![
                entry("1.3.10", "2026-12-07T10:00:00Z", Progressing),
                entry("1.3.9", "2026-12-01T10:00:00Z", Succeeded),
            ],
            ..Default::default()
        };
        let (deleted, now) = (t("2026-12-07T10:05:00Z"), t("2026-12-07T10:06:00Z"));
        let records = removal_records("payments-prod", &spec, &status, &deleted, &now);
        let seen: Vec<_> =
            records.iter().map(|r| (r.kind, r.version.as_deref(), r.from.as_deref(), r.result)).collect();
        assert_eq!(
            seen,
            vec![
                (RecordKind::Rollout, Some("1.3.10"), Some("1.3.9"), Some(Superseded)),
                (RecordKind::Removed, Some("1.3.9"), None, None),
            ]
        );
        // Written again after a crash, the same records under the same keys.
        let again = removal_records("payments-prod", &spec, &status, &deleted, &t("2026-12-07T10:09:00Z"));
        assert_eq!(
            records.iter().map(Record::key).collect::<Vec<_>>(),
            again.iter().map(Record::key).collect::<Vec<_>>()
        );
        let settled = ReleaseStatus { history: status.history[1..].to_vec(), ..status.clone() };
        assert_eq!(removal_records("payments-prod", &spec, &settled, &deleted, &now).len(), 1);
    }

    #[test]
    fn approvals_and_rejections_are_records_of_their_own_even_in_the_same_second() {
        let approval = |name: &str, who: &str, decision: Decision| -> Approval {
            let mut a = Approval::new(
                name,
                crate::api::ApprovalSpec {
                    release: "payments-prod".into(),
                    version: "1.3.10".into(),
                    approver: Some(who.into()),
                    decision: Some(decision),
                    reason: Some("CAB-42".into()),
                    ..Default::default()
                },
            );
            a.metadata.creation_timestamp = Some(t("2026-12-07T09:00:00Z"));
            a.metadata.uid = Some(format!("uid-{name}"));
            a
        };
        let yes = audit_of(&approval("a1", "maria", Decision::Approve));
        let no = audit_of(&approval("a2", "bob", Decision::Reject));
        assert_eq!(
            (yes.kind, yes.by.as_deref(), yes.note.as_deref()),
            (RecordKind::Approval, Some("maria"), Some("CAB-42"))
        );
        assert_eq!((no.kind, no.by.as_deref()), (RecordKind::Rejection, Some("bob")));
        let again = audit_of(&approval("a1", "maria", Decision::Reject));
        assert_ne!(yes.key(), again.key(), "an approval and a rejection");
        assert_ne!(
            audit_of(&approval("a1", "m", Decision::Approve)).key(),
            audit_of(&approval("a3", "m", Decision::Approve)).key()
        );
        let mut unstamped = approval("a4", "maria", Decision::Approve);
        unstamped.metadata.creation_timestamp = None;
        assert!(approval_record("payments-prod", &unstamped).is_none());
    }

    fn audit_of(a: &Approval) -> Record {
        approval_record("payments-prod", a).unwrap()
    }

    #[test]
    fn a_veto_is_recorded_once_and_so_is_its_lifting() {
        use crate::api::{VETO_ANNOTATION, VETOED_AT_ANNOTATION, VETOED_BY_ANNOTATION};
        let now = t("2026-12-07T12:00:00Z");
        let mut av = AppVersion::new("payments-1.3.11", Default::default());
        av.spec.app = "payments".into();
        av.spec.version = "1.3.11".into();
        assert!(veto_records(&av, None, &now).is_empty(), "no veto, none recorded: nothing");
        av.metadata.annotations = Some(
            [
                (VETO_ANNOTATION, "FX rounding"),
                (VETOED_BY_ANNOTATION, "maria.keller"),
                (VETOED_AT_ANNOTATION, "2026-12-07T11:58:00Z"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let vetoed = veto_records(&av, None, &now);
        let seen: Vec<_> =
            vetoed.iter().map(|r| (r.kind, r.by.as_deref(), r.note.as_deref(), r.at.clone())).collect();
        assert_eq!(
            seen,
            // Dated when seen: the annotation's time is the CLI's word, not the API server's.
            vec![(RecordKind::Veto, Some("maria.keller"), Some("FX rounding"), now.clone())]
        );
        let mark = veto_mark(&Veto::of(&av).unwrap());
        assert!(veto_records(&av, Some(&mark), &now).is_empty(), "recorded already");
        // Written again after a crash (the mark not yet in status): the same key, later.
        assert_eq!(veto_records(&av, None, &t("2026-12-07T12:05:00Z"))[0].key(), vetoed[0].key());
        av.metadata.annotations = None;
        let lifted = veto_records(&av, Some(&mark), &now);
        assert_eq!(lifted.len(), 1);
        assert_eq!(lifted[0].kind, RecordKind::VetoLifted);
        assert_eq!(lifted[0].note.as_deref(), Some("the veto (FX rounding) was lifted"));
    }

    #[test]
    fn each_freeze_window_added_or_removed_is_one_record() {
        let now = t("2026-12-07T12:00:00Z");
        let year_end = FreezeWindow {
            reason: Some("year end".into()),
            start: Some("2026-12-20T00:00:00Z".into()),
            end: Some("2027-01-02T00:00:00Z".into()),
            ..Default::default()
        };
        let stop = FreezeWindow {
            reason: Some("line stopped: incident 7 (by bob)".into()),
            line_stop: true,
            ..Default::default()
        };
        let kinds = |records: Vec<Record>| {
            records.into_iter().map(|r| (r.kind, r.note.unwrap_or_default())).collect::<Vec<_>>()
        };
        let records = |windows: &[FreezeWindow], recorded: &[String], generation| {
            freeze_records("uid-1", generation, windows, recorded, &now)
        };
        let both = [year_end.clone(), stop.clone()];
        assert_eq!(
            kinds(records(&both, &[], 1)),
            vec![
                (
                    RecordKind::Freeze,
                    "year end (from 2026-12-20T00:00:00Z until 2027-01-02T00:00:00Z)".to_string()
                ),
                (RecordKind::LineStop, "line stopped: incident 7 (by bob) (until removed)".to_string()),
            ]
        );
        let marks = freeze_marks(&both);
        assert!(records(&both, &marks, 2).is_empty(), "nothing changed");
        assert_eq!(
            kinds(records(std::slice::from_ref(&year_end), &marks, 3)),
            vec![(RecordKind::Unfreeze, "line stopped: incident 7 (by bob) (until removed)".to_string())]
        );
        // Written again at the same generation (a crash before the status): the same keys; the
        // same window added again by a later change: a record of its own.
        let keys = |rs: Vec<Record>| rs.iter().map(Record::key).collect::<Vec<_>>();
        assert_eq!(keys(records(&both, &[], 1)), keys(records(&both, &[], 1)));
        assert_ne!(keys(records(&both, &[], 1)), keys(records(&both, &[], 4)));
        // A mark stays small whatever the window says.
        let long = FreezeWindow { reason: Some("x".repeat(5000)), ..Default::default() };
        assert!(freeze_marks(&[long])[0].len() <= 16 + 1 + 256);
    }

    #[test]
    fn a_ledger_is_kept_until_its_whole_month_is_past_the_retention() {
        let day = std::time::Duration::from_secs(86_400);
        let now: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let table = [
            // December 2025 ended 2026-01-01: 340 days and 10 hours before now.
            ("2025-12", 400, false),
            ("2025-12", 341, false),
            ("2025-12", 340, true),
            ("2025-11", 400, false),
            ("2024-10", 400, true),
            ("2026-12", 0, false),
            ("2026-11", 0, true),
            ("not-a-month", 0, false),
            ("2026-13", 0, false),
        ];
        for (month, days, want) in table {
            assert_eq!(expired(month, now, day * days), want, "{month} kept {days} days");
        }
    }

    #[test]
    fn a_rollback_to_a_version_rolled_out_in_the_same_second_is_a_record_of_its_own() {
        let spec = ReleaseSpec::default();
        let at = "2026-12-07T10:00:00Z";
        let record = |from: &str| {
            rollout_record(
                "pay-dev",
                &spec,
                (&entry("1.1.0", at, Succeeded), Some(from)),
                VersionFacts::default(),
            )
        };
        let (first, back) = (record("1.0.0"), record("1.2.0"));
        assert_ne!(first.key(), back.key());
        assert_eq!(back.key(), record("1.2.0").key(), "written again after a crash: the same key");
        assert!(back.key().len() <= 192, "{}", back.key());
    }

    #[test]
    fn who_asked_is_a_verified_claim_on_the_current_generation_and_the_tool_that_wrote_the_version() {
        use crate::api::{Release, ReleaseSpec, RollbackSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let written = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(serde_json::json!({ "f:spec": fields }))),
            ..Default::default()
        };
        let release = |generation: i64, claim: Option<(&str, &str)>, spec: ReleaseSpec| {
            let mut r = Release::new("pay-prod", spec);
            r.metadata.generation = Some(generation);
            r.metadata.annotations = claim.map(|(by, g)| {
                [
                    (REQUESTED_BY_ANNOTATION.to_string(), by.to_string()),
                    (REQUESTED_GENERATION_ANNOTATION.to_string(), g.to_string()),
                ]
                .into()
            });
            r.metadata.managed_fields = Some(vec![
                written("kubectl-client-side-apply", serde_json::json!({"f:track": {}})),
                written("tuskfish-cli", serde_json::json!({"f:version": {}})),
                written("argocd-controller", serde_json::json!({"f:rollback": {"f:to": {}}})),
            ]);
            r
        };
        let pinned = ReleaseSpec { version: Some("1.3.10".into()), ..Default::default() };
        let tracking = ReleaseSpec { track: Some("~1.3".into()), ..Default::default() };
        let rolled_back = ReleaseSpec {
            rollback: Some(RollbackSpec { to: Some("1.3.9".into()), ..Default::default() }),
            ..pinned.clone()
        };
        let who = |by: Option<&str>, applied: Option<&str>| Requester {
            requested_by: by.map(String::from),
            applied_by: applied.map(String::from),
        };
        let table = [
            (
                "claimed with this generation",
                release(4, Some(("carol", "4")), pinned.clone()),
                who(Some("carol"), Some("tuskfish-cli")),
            ),
            (
                "changed since by someone else",
                release(5, Some(("carol", "4")), pinned.clone()),
                who(None, Some("tuskfish-cli")),
            ),
            ("no claim", release(4, None, tracking.clone()), who(None, Some("kubectl-client-side-apply"))),
            ("an empty name", release(4, Some(("", "4")), pinned.clone()), who(None, Some("tuskfish-cli"))),
            (
                "a rollback's field",
                release(4, Some(("carol", "4")), rolled_back),
                who(Some("carol"), Some("argocd-controller")),
            ),
        ];
        for (name, rel, want) in table {
            assert_eq!(requester(&rel, &[]), want, "{name}");
        }
        // A claim vouches for the first rollout of its generation: the next one of the same spec
        // (an Environment's change, a version a range takes in) is nobody's request.
        let rel = release(4, Some(("carol", "4")), pinned.clone());
        let rolled = |generation: Option<i64>| HistoryEntry {
            generation,
            ..entry("1.3.10", "2026-12-07T10:00:00Z", Succeeded)
        };
        for (history, by) in [
            (vec![rolled(Some(3)), rolled(None)], Some("carol")),
            (vec![rolled(Some(4)), rolled(Some(3))], None),
            (vec![rolled(Some(3)), rolled(Some(4))], None),
        ] {
            assert_eq!(requester(&rel, &history).requested_by.as_deref(), by, "{history:?}");
        }
    }

    #[test]
    fn a_record_says_who_asked_and_who_approved() {
        let mut e = entry("1.3.10", "2026-12-07T10:00:00Z", Succeeded);
        e.message =
            Some("approved by maria.keller at 2026-12-07T09:00:00Z: CAB-7, bob; freeze override: 42".into());
        e.approvers = vec!["maria.keller".into(), "bob".into()];
        let mut spec =
            ReleaseSpec { app: "payments".into(), environment: "prod".into(), ..Default::default() };
        spec.promote_from = Some(PromoteFrom { environment: "test".into(), soak: None });
        let facts =
            VersionFacts { changes: vec!["FIN-142".into()], published_at: Some(t("2026-12-06T09:00:00Z")) };
        let r = rollout_record("payments-prod", &spec, (&e, Some("1.3.9")), facts);
        assert_eq!(r.approvers, vec!["maria.keller", "bob"]);
        assert_eq!(r.by.as_deref(), Some("promoted from test"));
        assert_eq!((r.from.as_deref(), r.result), (Some("1.3.9"), Some(Succeeded)));
        assert_eq!(r.at, t("2026-12-07T12:00:00Z"));
        assert_eq!(r.changes, vec!["FIN-142"]);
        e.rollback_of = Some("1.3.11".into());
        assert_eq!(asked_by(&spec, &e), "rollback from 1.3.11");
        spec.promote_from = None;
        spec.track = Some("~1.3".into());
        e.rollback_of = None;
        assert_eq!(asked_by(&spec, &e), "tracking ~1.3");
        // Whatever the inputs, the record fits the Ledger's schema.
        e.message = Some("x".repeat(5000));
        e.approvers = vec!["ö".repeat(200); 40];
        let many =
            VersionFacts { changes: (0..500).map(|i| format!("FIN-{i}")).collect(), published_at: None };
        let r = rollout_record("payments-prod", &spec, (&e, None), many);
        assert_eq!((r.approvers.len(), r.changes.len()), (32, 200));
        assert!(r.note.as_deref().is_some_and(|n| n.len() <= 2048));
        assert!(r.approvers.iter().all(|a| a.len() <= 253));
    }
}
