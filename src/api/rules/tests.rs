//! The CRD rules refuse nothing the operator accepts (and, where the operator's parser is the whole
//! check, accept nothing it refuses). CEL's `matches` is RE2; the `regex` crate reads the same
//! syntax for everything these patterns use.

use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::duration::parse_duration;
use crate::plan::proptests::{duration_text, range_text, version_text};

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap()
}

#[test]
fn every_rule_and_length_lands_in_its_crd() {
    use kube::CustomResourceExt;
    for mut crd in [
        crate::api::AppVersion::crd(),
        crate::api::Environment::crd(),
        crate::api::Release::crd(),
        crate::api::Approval::crd(),
        crate::api::Ledger::crd(),
        crate::api::ProductVersion::crd(),
        crate::api::ProductRelease::crd(),
    ] {
        let kind = crd.spec.names.kind.clone();
        let schema = crd.spec.versions[0].schema.as_mut().unwrap().open_api_v3_schema.as_mut().unwrap();
        assert_eq!(apply(&kind, schema), Vec::<String>::new(), "{kind}: rules at paths the schema lacks");
    }
    let kinds: std::collections::BTreeSet<_> = schema_rules().iter().map(|r| r.kind).collect();
    assert_eq!(kinds.len(), 7, "every kind has rules");
}

#[test]
fn rules_quote_no_pattern_that_would_end_their_cel_string() {
    for r in schema_rules() {
        assert!(!r.rule.contains('\\'), "{}: no backslashes in CEL strings", r.rule);
        assert_eq!(r.rule.matches('\'').count() % 2, 0, "{}", r.rule);
        assert!(!r.message.is_empty());
    }
}

#[test]
fn versions_table() {
    let v = re(SEMVER);
    for ok in ["1.3.9", "1.4.0-rc.1", "0.0.0", "1.3.10+b7", "10.20.30-alpha.beta.1+exp.sha.5114f85"] {
        assert!(v.is_match(ok), "{ok}");
    }
    for bad in ["1.3", "v1.3.9", "01.3.9", "1.3.9-01", " 1.3.9", "1.3.9 ", "latest", "", "1.3.9-", "1.3.9+"] {
        assert!(!v.is_match(bad), "{bad}");
    }
}

#[test]
fn ranges_table() {
    let r = re(&semver_range());
    for ok in ["*", "~1.3", "^1", ">=1.4.0-0", ">=1.4.0, <2", "=1.3.9", "1.3.x", ">= 1.4.0-0, < 1.5.0", "1.*"]
    {
        assert!(r.is_match(ok), "{ok}");
        semver::VersionReq::parse(ok).unwrap();
    }
    for bad in ["", "latest", "1.3 || 1.4", ">=1.4.0;", "~1.3!"] {
        assert!(!r.is_match(bad), "{bad}");
    }
}

#[test]
fn clock_and_days_table() {
    let c = re(CLOCK);
    for h in 0..24 {
        for m in [0, 5, 30, 59] {
            assert!(c.is_match(&format!("{h:02}:{m:02}")));
            assert!(c.is_match(&format!("{h}:{m}")));
        }
    }
    for bad in ["24:00", "16:60", "1600", "16-00", "", "16:00:00"] {
        assert!(!c.is_match(bad), "{bad}");
    }
    let d = re(WEEKDAY);
    for ok in ["Mon", "mon", "MONDAY", "Friday", "sun"] {
        assert!(d.is_match(ok), "{ok}");
    }
    for bad in ["Mo", "Someday", "", "Frei"] {
        assert!(!d.is_match(bad), "{bad}");
    }
}

#[test]
fn rfc3339_accepts_what_the_cli_writes() {
    let t = re(RFC3339);
    let now = jiff::Timestamp::now();
    assert!(t.is_match(&now.to_string()), "{now}");
    assert!(t.is_match(&now.round(jiff::Unit::Second).unwrap().to_string()));
    for ok in ["2026-12-20T00:00:00Z", "2026-12-20T00:00:00+01:00", "2026-12-20T00:00:00.5-05:30"] {
        assert!(t.is_match(ok), "{ok}");
        ok.parse::<jiff::Timestamp>().unwrap();
    }
    for bad in ["2026-12-20", "tomorrow", "2026-12-20T00:00:00", ""] {
        assert!(!t.is_match(bad), "{bad}");
    }
}

proptest! {
    #[test]
    fn a_version_the_rule_admits_is_one_the_operator_reads(s in version_text()) {
        let admitted = re(SEMVER).is_match(&s);
        let parsed = semver::Version::parse(s.trim()).is_ok();
        prop_assert!(!admitted || parsed, "{s:?} admitted but not semver");
        // The rule refuses only surrounding white space beyond the operator.
        prop_assert!(admitted || !parsed || s.trim() != s, "{s:?} is semver but refused");
    }

    #[test]
    fn a_range_the_operator_reads_is_one_the_rule_admits(s in range_text()) {
        if semver::VersionReq::parse(&s).is_ok() && !s.contains(['\t', '\n', '\r']) {
            prop_assert!(re(&semver_range()).is_match(&s), "{s:?} is a range but refused");
        }
    }

    #[test]
    fn a_duration_the_operator_reads_is_one_the_rule_admits(s in duration_text()) {
        let admitted = re(DURATION).is_match(&s);
        if parse_duration(&s).is_some() && !s.contains(['\t', '\n', '\r']) {
            prop_assert!(admitted, "{s:?} is a duration but refused");
        }
        if admitted {
            // Only numbers too large for the operator pass the shape and fail the parse.
            prop_assert!(parse_duration(&s).is_some() || s.trim().len() > 15, "{s:?}");
        }
    }

    #[test]
    fn a_clock_time_the_rule_admits_is_one_the_gate_reads(h in 0u8..30, m in 0u8..70) {
        let s = format!("{h}:{m:02}");
        let ok = h < 24 && m < 60;
        prop_assert_eq!(re(CLOCK).is_match(&s), ok, "{}", s);
    }
}
