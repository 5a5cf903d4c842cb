use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::api::{HistoryEntry, RolloutResult};

fn t(secs: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
}

fn check(name: &str, url: &str) -> Check {
    serde_json::from_value(json!({"name": name, "http": {"url": url}})).unwrap()
}

#[test]
fn a_releases_check_replaces_the_environments_of_the_same_name() {
    let mut env = crate::api::fixtures::environment("dev", crate::api::Tier::Dev);
    env.spec.verify = vec![check("smoke", "http://env/smoke"), check("api", "http://env/api")];
    let mut rel = crate::api::fixtures::release_running("pay-dev", "pay", "dev", "1.0.0");
    rel.spec.verify = vec![check("api", "http://rel/api"), check("extra", "http://rel/extra")];
    let got: Vec<(&str, &str)> = checks_for(&env, &rel)
        .iter()
        .map(|c| (c.name.as_str(), c.http.as_ref().unwrap().url.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![("smoke", "http://env/smoke"), ("api", "http://rel/api"), ("extra", "http://rel/extra")]
    );
}

fn status_with(history: &[(&str, i64, RolloutResult)], recorded: Option<(&str, &str)>) -> ReleaseStatus {
    ReleaseStatus {
        history: history
            .iter()
            .map(|(v, at, result)| HistoryEntry {
                version: v.to_string(),
                started_at: t(*at),
                finished_at: None,
                result: *result,
                message: None,
                rollback_of: None,
                approvers: Vec::new(),
                held: None,
                requester: Default::default(),
                generation: None,
            })
            .collect(),
        verification: recorded.map(|(run, version)| VerificationStatus {
            run: run.into(),
            version: version.into(),
            result: VerificationResult::Passed,
            finished_at: None,
            checks: vec![],
        }),
        ..Default::default()
    }
}

#[test]
fn run_key_table() {
    let done = status_with(&[("1.1.0", 100, RolloutResult::Succeeded)], Some(("1.1.0 rollout r", "1.1.0")));
    let cases: Vec<(&str, Option<String>, Option<String>)> = vec![
        // A rollout in flight is its own run.
        (
            "in flight",
            run_key(&done, "1.2.0", Some(&t(200)), None),
            Some(format!("1.2.0 rollout {}", t(200).0)),
        ),
        // A request made after the version's rollout started is a new run.
        (
            "request",
            run_key(&done, "1.1.0", None, Some(t(300).0)),
            Some(format!("1.1.0 requested {}", t(300).0)),
        ),
        // A request older than the rollout says nothing about it: the recorded run stands.
        ("old request", run_key(&done, "1.1.0", None, Some(t(50).0)), Some("1.1.0 rollout r".into())),
        ("nothing new", run_key(&done, "1.1.0", None, None), Some("1.1.0 rollout r".into())),
        // Another version's record is not this version's.
        ("other version", run_key(&done, "1.0.0", None, None), None),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn a_rollout_is_in_flight_only_while_its_entry_progresses() {
    let mut s = status_with(&[("1.2.0", 10, RolloutResult::Progressing)], None);
    s.desired_version = Some("1.2.0".into());
    assert_eq!(rollout_in_flight(&s), Some(&t(10)));
    s.history[0].result = RolloutResult::Succeeded;
    assert_eq!(rollout_in_flight(&s), None);
    s.history[0].result = RolloutResult::Progressing;
    s.desired_version = Some("1.1.0".into());
    assert_eq!(rollout_in_flight(&s), None, "the entry is not the desired version's");
    s.desired_version = Some("1.2.0".into());
    s.history[0].rollback_of = Some("1.3.0".into());
    assert_eq!(rollout_in_flight(&s), None, "a rollback is not verified");
}

fn states(list: &[(&str, CheckState)]) -> Vec<(String, CheckState)> {
    list.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()
}

#[test]
fn judge_table() {
    use CheckState::*;
    let (run, p, r, f) =
        ("1.0.0 rollout x", Passed("ok".into()), Running("job".into()), Failed("HTTP 500".into()));
    let cases = vec![
        (states(&[("a", p.clone()), ("b", p.clone())]), VerificationResult::Passed),
        (states(&[("a", p.clone()), ("b", r.clone())]), VerificationResult::Running),
        (states(&[("a", r.clone()), ("b", f.clone())]), VerificationResult::Failed),
        (states(&[("a", f.clone())]), VerificationResult::Failed),
    ];
    for (i, (s, want)) in cases.into_iter().enumerate() {
        let v = judge(run.into(), "1.0.0", &s, None, &t(5));
        assert_eq!(v.result, want, "case {i}");
        assert_eq!(v.finished_at.is_some(), want.is_final(), "case {i}");
        assert_eq!(v.checks.len(), s.len());
    }
}

#[test]
fn a_repeated_verdict_is_the_same_status() {
    let s = states(&[("a", CheckState::Passed("ok".into()))]);
    let first = judge("r".into(), "1.0.0", &s, None, &t(5));
    let again = judge("r".into(), "1.0.0", &s, Some(&first), &t(50));
    assert_eq!(first, again, "nothing to write the second time");
}

#[test]
fn health_names_what_runs_and_what_failed() {
    let s = states(&[
        ("smoke", CheckState::Passed("Job smoke-1 completed".into())),
        ("api", CheckState::Failed("got HTTP 503, expected 200: down".into())),
    ]);
    let v = judge("r".into(), "1.0.0", &s, None, &t(1));
    match health_of(&v) {
        Health::VerificationFailed { message } => {
            assert!(message.contains("api: got HTTP 503"), "{message}");
            assert!(!message.contains("smoke"), "only what failed: {message}");
        }
        other => panic!("{other:?}"),
    }
    let running = judge(
        "r".into(),
        "1.0.0",
        &states(&[("smoke", CheckState::Running("Job smoke-1 running".into()))]),
        None,
        &t(1),
    );
    assert!(
        matches!(health_of(&running), Health::Verifying { message } if message.contains("smoke: Job smoke-1 running"))
    );
}

#[test]
fn job_names_are_short_stable_and_distinct() {
    let a = job_name("finance", "pay-dev", "smoke", "1.0.0 rollout t1");
    assert_eq!(a, job_name("finance", "pay-dev", "smoke", "1.0.0 rollout t1"));
    assert_ne!(a, job_name("finance", "pay-dev", "smoke", "1.0.0 rollout t2"));
    assert_ne!(a, job_name("finance", "pay-test", "smoke", "1.0.0 rollout t1"));
    let long = job_name("ns", "r", &"c".repeat(40), "run");
    assert!(long.len() <= 63, "{long}");
    assert!(a.starts_with("smoke-"));
}

#[test]
fn job_state_table() {
    let job = |status: serde_json::Value| -> Job {
        serde_json::from_value(json!({"metadata": {"name": "smoke-1"}, "status": status})).unwrap()
    };
    let cond = |t: &str, s: &str| json!({"conditions": [{"type": t, "status": s, "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    assert!(matches!(job_state(&job(json!(null))), CheckState::Running(_)));
    assert!(matches!(job_state(&job(json!({"active": 1}))), CheckState::Running(m) if m.contains("running")));
    assert!(matches!(job_state(&job(cond("Complete", "True"))), CheckState::Passed(_)));
    assert!(matches!(job_state(&job(cond("Complete", "False"))), CheckState::Running(_)));
    assert!(matches!(
        job_state(&job(cond("Failed", "True"))),
        CheckState::Failed(m) if m.contains("BackoffLimitExceeded: Job has reached")
    ));
}

#[test]
fn http_verdict_table() {
    let re = regex::Regex::new(r#""version":"1\.4\.0""#).unwrap();
    type Case<'a> = (u16, &'a str, u16, Option<&'a regex::Regex>, bool, &'a str);
    let cases: Vec<Case> = vec![
        (200, "ok", 200, None, true, "HTTP 200"),
        (204, "", 204, None, true, "HTTP 204"),
        (503, "upstream down\n", 200, None, false, "got HTTP 503, expected 200 (body of 14 bytes)"),
        (200, r#"{"version":"1.4.0"}"#, 200, Some(&re), true, "HTTP 200"),
        (200, r#"{"version":"1.3.9"}"#, 200, Some(&re), false, "does not match"),
        (500, "", 200, None, false, "(empty body)"),
        // What the service answered is never quoted (a tenant picks the URL).
        (500, "secret-token-123", 200, None, false, "got HTTP 500, expected 200 (body of 16 bytes)"),
    ];
    for (status, body, expect, re, pass, says) in cases {
        let got = http_verdict(status, body, expect, re);
        assert_eq!(got.is_ok(), pass, "{status} {body}: {got:?}");
        let text = got.unwrap_or_else(|e| e);
        assert!(text.contains(says), "{text}");
    }
    let huge = "x".repeat(10_000);
    assert!(http_verdict(500, &huge, 200, None).unwrap_err().len() < 400, "a long body is cut");
}
