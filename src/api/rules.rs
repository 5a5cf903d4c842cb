//! The checks the API server makes itself, as CEL rules (`x-kubernetes-validations`) in the CRDs:
//! one table, so that what `kubectl apply` refuses, and with which words, is read in one place.
//!
//! The operator keeps its own checks (a cluster may run an older CRD, and some rules need other
//! objects); the patterns here are written to refuse nothing the operator's parsers accept, and
//! `tests` below holds them to it. Patterns avoid backslashes, which CEL string literals would
//! otherwise need doubled.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, ValidationRule,
};

/// A semantic version (semver.org 2.0.0, as the `semver` crate parses it): `1.4.0`, `1.4.0-rc.1`.
pub const SEMVER: &str = "^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)\
    (-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)([.](0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?\
    ([+][0-9a-zA-Z-]+([.][0-9a-zA-Z-]+)*)?$";

/// One comparator of a semver range: an optional operator and a (partial, wildcard) version.
const COMPARATOR: &str = "[ ]*(>=|<=|[=<>~^])?[ ]*([0-9]+|[*xX])([.]([0-9]+|[*xX])([.]([0-9]+|[*xX])\
    (-[0-9A-Za-z.-]+)?([+][0-9A-Za-z.-]+)?)?)?[ ]*";

/// A semver range as the `semver` crate parses it: comparators separated by commas (`~1.3`,
/// `>=1.4.0-0, <1.5.0`, `*`). The shape only: the operator still parses it.
pub fn semver_range() -> String {
    format!("^{COMPARATOR}(,{COMPARATOR})*$")
}

/// A duration as `crate::duration::parse_duration` reads it: `90s`, `30m`, `2h`, `1d`, `1500ms`, `45`.
pub const DURATION: &str = "^[ ]*[0-9]+(ms|s|m|h|d)?[ ]*$";

/// An RFC 3339 time with an offset, as `timestamp()` in CEL and the operator read it.
/// Field ranges are checked too, so that `timestamp()` in the end-after-start rule seldom meets a
/// date it cannot read (a 31 February still gets CEL's own evaluation error).
pub const RFC3339: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\
    ([.][0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// `HH:MM` on a 24-hour clock.
pub const CLOCK: &str = "^([01]?[0-9]|2[0-3]):[0-5]?[0-9]$";

/// A weekday, as the freeze gate reads it (the first three letters, any case).
pub const WEEKDAY: &str = "^(?i)(mon|tue|wed|thu|fri|sat|sun)";

/// An `http://` or `https://` URL (what the HTTP check can request).
pub const URL: &str = "^https?://[^ ]+$";
const URL_MESSAGE: &str = "a verify check's http.url must be an http:// or https:// URL";
const INTERVAL_MESSAGE: &str = "a verify check's http.interval must be a duration such as 5s";
const TIMEOUT_MESSAGE: &str = "a verify check's http.timeout must be a duration such as 10s";
const ONE_CHECK: &str = "has(self.job) != has(self.http)";
const UNIQUE_CHECKS: &str = "self.all(c, self.exists_one(d, d.name == c.name))";

/// One rule at one place of a CRD's schema.
pub struct SchemaRule {
    pub kind: &'static str,
    /// Property names from the root; `[]` steps into the items of a list, `{}` into the values
    /// of a map.
    pub path: &'static [&'static str],
    pub rule: String,
    pub message: String,
}

fn matches(kind: &'static str, path: &'static [&'static str], pattern: &str, message: &str) -> SchemaRule {
    rule(kind, path, format!("self.matches('{pattern}')"), message)
}

fn rule(kind: &'static str, path: &'static [&'static str], rule: String, message: &str) -> SchemaRule {
    SchemaRule { kind, path, rule, message: message.to_string() }
}

/// The rules of one list of windows (`freezeWindows` or `allowWindows`, called `what` in messages).
macro_rules! window_rules {
    ($list:literal, $what:literal) => {
        vec![
            rule(
                "Environment",
                &["spec", $list, "[]"],
                "(has(self.start) ? 1 : 0) + (has(self.weekly) ? 1 : 0) + (has(self.recurrence) ? 1 : 0) == 1 \
                 && (!has(self.end) || has(self.start))"
                    .into(),
                concat!($what, " has exactly one of start (and optionally end), weekly and recurrence"),
            ),
            matches(
                "Environment",
                &["spec", $list, "[]", "start"],
                RFC3339,
                concat!($what, "'s start must be an RFC 3339 time such as 2026-12-20T00:00:00Z"),
            ),
            matches(
                "Environment",
                &["spec", $list, "[]", "end"],
                RFC3339,
                concat!($what, "'s end must be an RFC 3339 time such as 2027-01-02T00:00:00Z"),
            ),
            rule(
                "Environment",
                &["spec", $list, "[]"],
                format!(
                    "!has(self.start) || !has(self.end) || !self.start.matches('{RFC3339}') || \
                     !self.end.matches('{RFC3339}') || timestamp(self.end) > timestamp(self.start)"
                ),
                concat!($what, " must end after it starts"),
            ),
            matches("Environment", &["spec", $list, "[]", "weekly", "from"], CLOCK, WEEKLY_FROM),
            matches("Environment", &["spec", $list, "[]", "weekly", "to"], CLOCK, WEEKLY_TO),
            matches("Environment", &["spec", $list, "[]", "weekly", "days", "[]"], WEEKDAY, WEEKLY_DAYS),
            matches("Environment", &["spec", $list, "[]", "recurrence", "rule"], RRULE, RRULE_MESSAGE),
            matches("Environment", &["spec", $list, "[]", "recurrence", "start"], LOCAL_TIME, LOCAL_TIME_MESSAGE),
            matches("Environment", &["spec", $list, "[]", "recurrence", "duration"], DURATION, LENGTH_MESSAGE),
        ]
    };
}

const WEEKLY_FROM: &str = "weekly.from must be a time of day HH:MM such as 16:00";
const WEEKLY_TO: &str = "weekly.to must be a time of day HH:MM such as 23:59";
const WEEKLY_DAYS: &str = "weekly.days must be weekdays: Mon, Tue, Wed, Thu, Fri, Sat, Sun";
/// The shape of an RFC 5545 `RRULE` value with a frequency of an hour or more (the operator
/// parses the rest).
pub const RRULE: &str =
    "^(RRULE:)?([A-Z]+=[^;]+;)*FREQ=(HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY)(;[A-Z]+=[^;]+)*$";
const RRULE_MESSAGE: &str = "recurrence.rule must be an RFC 5545 RRULE with FREQ HOURLY, DAILY, WEEKLY, MONTHLY or \
     YEARLY, such as FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,-1";
/// A local date and time, without offset (`DTSTART` in a time zone).
pub const LOCAL_TIME: &str =
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$";
const LOCAL_TIME_MESSAGE: &str =
    "recurrence.start must be a local date and time without offset, such as 2026-01-01T09:00:00";
const LENGTH_MESSAGE: &str = "recurrence.duration must be a duration such as 4h or 1d";

/// Every rule, by kind and place.
pub fn schema_rules() -> Vec<SchemaRule> {
    let range = semver_range();
    let windows = window_rules!("freezeWindows", "a freeze window")
        .into_iter()
        .chain(window_rules!("allowWindows", "an allow window"));
    windows
        .chain(vec![
        // AppVersion
        rule(
            "AppVersion",
            &["spec"],
            "self == oldSelf".into(),
            "an AppVersion cannot be changed once created (a published build is immutable): \
             publish a new version instead",
        ),
        matches(
            "AppVersion",
            &["spec", "version"],
            SEMVER,
            "spec.version must be a semantic version such as 1.4.0 or 1.4.0-rc.1",
        ),
        rule(
            "AppVersion",
            &["spec"],
            "has(self.workload) || has(self.helm) || (has(self.manifests) && size(self.manifests) > 0)".into(),
            "nothing to deploy: set spec.workload (an image), spec.helm (a chart) or spec.manifests",
        ),
        matches(
            "AppVersion",
            &["spec", "helm", "version"],
            SEMVER,
            "spec.helm.version must be the chart's exact semantic version, such as 1.3.10",
        ),
        // Environment
        matches(
            "Environment",
            &["spec", "versionLine"],
            &range,
            "spec.versionLine must be a semver range such as ~1.3 or >=1.4.0-0, <1.5.0",
        ),
        matches(
            "Environment",
            &["spec", "approvalPolicy", "expireAfter"],
            DURATION,
            "approvalPolicy.expireAfter must be a duration such as 24h or 7d",
        ),
        rule(
            "Environment",
            &["spec", "verify", "[]"],
            ONE_CHECK.into(),
            "a verify check has exactly one of job and http",
        ),
        rule("Environment", &["spec", "verify"], UNIQUE_CHECKS.into(), "verify check names must be unique"),
        rule(
            "Environment",
            &["spec", "cluster"],
            "has(self.kubeConfigSecretRef) != has(self.agent)".into(),
            "spec.cluster has exactly one of kubeConfigSecretRef (the operator deploys there) and agent (an agent in that cluster does)",
        ),
        matches("Environment", &["spec", "verify", "[]", "http", "url"], URL, URL_MESSAGE),
        matches("Environment", &["spec", "verify", "[]", "http", "interval"], DURATION, INTERVAL_MESSAGE),
        matches("Environment", &["spec", "verify", "[]", "http", "timeout"], DURATION, TIMEOUT_MESSAGE),
        // Ledger: what was written stays as it was written.
        rule(
            "Ledger",
            &["spec"],
            "self.environment == oldSelf.environment && self.app == oldSelf.app && self.month == oldSelf.month"
                .into(),
            "a Ledger's environment, app and month cannot be changed",
        ),
        // On `spec`, not `records`: a rule on `records` does not run when the whole map is
        // removed (`records: null`).
        rule(
            "Ledger",
            &["spec"],
            "!has(oldSelf.records) || (has(self.records) && oldSelf.records.all(k, k in self.records))".into(),
            "an audit record cannot be removed from its Ledger",
        ),
        matches("Ledger", &["spec", "month"], "^[0-9]{4}-(0[1-9]|1[0-2])$", "spec.month is YYYY-MM"),
        rule(
            "Ledger",
            &["spec", "records", "{}"],
            "self == oldSelf".into(),
            "an audit record cannot be changed once written",
        ),
        rule("Ledger", &["spec", "records"], "self.all(k, size(k) <= 192)".into(), "a record's key is at most 192 characters"),
        // Release
        rule(
            "Release",
            &["spec"],
            "(has(self.version) ? 1 : 0) + (has(self.track) ? 1 : 0) + (has(self.promoteFrom) ? 1 : 0) == 1"
                .into(),
            "set exactly one of spec.version (a pinned version), spec.track (a semver range) and \
             spec.promoteFrom (an upstream Environment)",
        ),
        // What a Release deploys where is fixed at creation: its approvals, gates and history are
        // those of one app in one Environment, so moving it would carry them somewhere else.
        rule(
            "Release",
            &["spec", "app"],
            "self == oldSelf".into(),
            "spec.app cannot be changed: a Release deploys one app (its approvals and history are that app's); \
             create a Release for the other app",
        ),
        rule(
            "Release",
            &["spec", "environment"],
            "self == oldSelf".into(),
            "spec.environment cannot be changed: a Release deploys into one Environment (its approvals, gates \
             and history are that Environment's); create a Release in the other Environment",
        ),
        matches(
            "Release",
            &["spec", "version"],
            SEMVER,
            "spec.version must be a semantic version such as 1.3.10 or 1.4.0-rc.2",
        ),
        matches(
            "Release",
            &["spec", "track"],
            &range,
            "spec.track must be a semver range such as ~1.3 or >=1.4.0-0",
        ),
        matches(
            "Release",
            &["spec", "promoteFrom", "soak"],
            DURATION,
            "spec.promoteFrom.soak must be a duration such as 90s, 30m, 2h or 1d",
        ),
        matches(
            "Release",
            &["spec", "rollback", "to"],
            SEMVER,
            "spec.rollback.to must be a semantic version (one that ran healthy here)",
        ),
        rule(
            "Release",
            &["spec"],
            "!has(self.dependsOn) || self.dependsOn.all(d, d.app != self.app)".into(),
            "spec.dependsOn names the Release's own app: an app cannot wait for itself",
        ),
        matches(
            "Release",
            &["spec", "dependsOn", "[]", "version"],
            &range,
            "dependsOn[].version must be a semver range such as >=2.1",
        ),
        rule(
            "Release",
            &["spec", "verify", "[]"],
            ONE_CHECK.into(),
            "a verify check has exactly one of job and http",
        ),
        rule("Release", &["spec", "verify"], UNIQUE_CHECKS.into(), "verify check names must be unique"),
        matches("Release", &["spec", "verify", "[]", "http", "url"], URL, URL_MESSAGE),
        matches("Release", &["spec", "verify", "[]", "http", "interval"], DURATION, INTERVAL_MESSAGE),
        matches("Release", &["spec", "verify", "[]", "http", "timeout"], DURATION, TIMEOUT_MESSAGE),
        // ProductVersion: what was tested together stays what it was.
        rule(
            "ProductVersion",
            &["spec"],
            "self == oldSelf".into(),
            "a ProductVersion cannot be changed once created (it is what was tested together): \
             create a new version instead",
        ),
        matches(
            "ProductVersion",
            &["spec", "version"],
            SEMVER,
            "spec.version must be a semantic version such as 1.3.10 or 1.4.0-rc.1",
        ),
        matches(
            "ProductVersion",
            &["spec", "apps", "[]", "version"],
            SEMVER,
            "apps[].version must be an app's exact semantic version, such as 1.3.10",
        ),
        rule(
            "ProductVersion",
            &["spec", "apps"],
            "self.all(a, self.exists_one(b, b.app == a.app))".into(),
            "each app is named once in spec.apps",
        ),
        rule(
            "ProductVersion",
            &["spec", "apps", "[]"],
            "!has(self.after) || self.after.all(d, d != self.app)".into(),
            "apps[].after names the app itself: an app cannot roll out after itself",
        ),
        // ProductRelease: as a Release, one product in one Environment, one version source.
        rule(
            "ProductRelease",
            &["spec"],
            "(has(self.version) ? 1 : 0) + (has(self.track) ? 1 : 0) + (has(self.promoteFrom) ? 1 : 0) == 1"
                .into(),
            "set exactly one of spec.version (a pinned product version), spec.track (a semver range) and \
             spec.promoteFrom (an upstream Environment)",
        ),
        rule(
            "ProductRelease",
            &["spec", "product"],
            "self == oldSelf".into(),
            "spec.product cannot be changed: create a ProductRelease for the other product",
        ),
        rule(
            "ProductRelease",
            &["spec", "environment"],
            "self == oldSelf".into(),
            "spec.environment cannot be changed: create a ProductRelease in the other Environment",
        ),
        matches(
            "ProductRelease",
            &["spec", "version"],
            SEMVER,
            "spec.version must be a semantic version such as 1.3.10 or 1.4.0-rc.2",
        ),
        matches(
            "ProductRelease",
            &["spec", "track"],
            &range,
            "spec.track must be a semver range such as ~1.3 or >=1.4.0-0",
        ),
        matches(
            "ProductRelease",
            &["spec", "promoteFrom", "soak"],
            DURATION,
            "spec.promoteFrom.soak must be a duration such as 90s, 30m, 2h or 1d",
        ),
        matches(
            "ProductRelease",
            &["spec", "rollback", "to"],
            SEMVER,
            "spec.rollback.to must be a semantic version (one that ran healthy here)",
        ),
        // Approval
        rule(
            "Approval",
            &["spec"],
            "self == oldSelf".into(),
            "an Approval cannot be changed (it is an audit record): delete it and approve again",
        ),
        matches(
            "Approval",
            &["spec", "version"],
            SEMVER,
            "spec.version must be the semantic version being approved, such as 1.3.10",
        ),
    ])
        .collect()
}

/// Lengths the rules' cost estimate needs (CEL refuses rules on strings of unbounded length) and
/// that no real value comes near.
pub const MAX_LENGTHS: &[(&str, &[&str], i64)] = &[
    ("Environment", &["spec", "versionLine"], 256),
    ("Environment", &["spec", "freezeWindows", "[]", "start"], 64),
    ("Environment", &["spec", "freezeWindows", "[]", "reason"], 1024),
    ("Environment", &["spec", "freezeWindows", "[]", "end"], 64),
    ("Environment", &["spec", "freezeWindows", "[]", "weekly", "from"], 5),
    ("Environment", &["spec", "freezeWindows", "[]", "weekly", "to"], 5),
    ("Environment", &["spec", "freezeWindows", "[]", "weekly", "days", "[]"], 16),
    ("Environment", &["spec", "freezeWindows", "[]", "recurrence", "rule"], 512),
    ("Environment", &["spec", "freezeWindows", "[]", "recurrence", "start"], 32),
    ("Environment", &["spec", "freezeWindows", "[]", "recurrence", "duration"], 32),
    ("Environment", &["spec", "allowWindows", "[]", "start"], 64),
    ("Environment", &["spec", "allowWindows", "[]", "end"], 64),
    ("Environment", &["spec", "allowWindows", "[]", "weekly", "from"], 5),
    ("Environment", &["spec", "allowWindows", "[]", "weekly", "to"], 5),
    ("Environment", &["spec", "allowWindows", "[]", "weekly", "days", "[]"], 16),
    ("Environment", &["spec", "allowWindows", "[]", "recurrence", "rule"], 512),
    ("Environment", &["spec", "allowWindows", "[]", "recurrence", "start"], 32),
    ("Environment", &["spec", "allowWindows", "[]", "recurrence", "duration"], 32),
    ("Environment", &["spec", "approvalPolicy", "expireAfter"], 32),
    ("Environment", &["spec", "verify", "[]", "http", "interval"], 32),
    ("Environment", &["spec", "verify", "[]", "http", "timeout"], 32),
    ("Release", &["spec", "verify", "[]", "http", "interval"], 32),
    ("Release", &["spec", "verify", "[]", "http", "timeout"], 32),
    ("Release", &["spec", "version"], 128),
    ("Release", &["spec", "track"], 256),
    ("Release", &["spec", "promoteFrom", "soak"], 32),
    ("Release", &["spec", "rollback", "to"], 128),
    ("Release", &["spec", "dependsOn", "[]", "version"], 256),
    ("ProductVersion", &["spec", "version"], 128),
    ("ProductVersion", &["spec", "apps", "[]", "version"], 128),
    ("ProductVersion", &["spec", "apps", "[]", "after", "[]"], 53),
    ("ProductRelease", &["spec", "version"], 128),
    ("ProductRelease", &["spec", "track"], 256),
    ("ProductRelease", &["spec", "promoteFrom", "soak"], 32),
    ("ProductRelease", &["spec", "rollback", "to"], 128),
];

/// List sizes the rules' cost estimate needs (a rule on each item of an unbounded list costs
/// without bound), far above any real pipeline's.
pub const MAX_ITEMS: &[(&str, &[&str], i64)] = &[
    ("Environment", &["spec", "freezeWindows"], 64),
    ("Environment", &["spec", "freezeWindows", "[]", "weekly", "days"], 7),
    ("Environment", &["spec", "allowWindows"], 64),
    ("Environment", &["spec", "allowWindows", "[]", "weekly", "days"], 7),
    ("Environment", &["spec", "verify"], 10),
    ("Release", &["spec", "dependsOn"], 64),
    ("Release", &["spec", "verify"], 10),
    ("ProductVersion", &["spec", "apps"], 64),
    ("ProductVersion", &["spec", "apps", "[]", "after"], 64),
    ("ProductVersion", &["spec", "changes"], 200),
];

/// The schema node at `path`, if the schema has it.
fn node<'a>(schema: &'a mut JSONSchemaProps, path: &[&str]) -> Option<&'a mut JSONSchemaProps> {
    let Some((first, rest)) = path.split_first() else { return Some(schema) };
    let next = if *first == "[]" {
        match schema.items.as_mut()? {
            JSONSchemaPropsOrArray::Schema(s) => s.as_mut(),
            JSONSchemaPropsOrArray::Schemas(_) => return None,
        }
    } else if *first == "{}" {
        match schema.additional_properties.as_mut()? {
            JSONSchemaPropsOrBool::Schema(s) => s.as_mut(),
            JSONSchemaPropsOrBool::Bool(_) => return None,
        }
    } else {
        schema.properties.as_mut()?.get_mut(*first)?
    };
    node(next, rest)
}

/// Puts the rules and lengths of `kind` into its schema; returns the paths it did not find (a
/// table entry that has drifted from the types: `tests` keeps this empty).
pub fn apply(kind: &str, schema: &mut JSONSchemaProps) -> Vec<String> {
    let mut missing = Vec::new();
    let mut at = |path: &[&str], set: &mut dyn FnMut(&mut JSONSchemaProps)| match node(schema, path) {
        Some(n) => set(n),
        None => missing.push(format!("{kind} {}", path.join("."))),
    };
    for r in schema_rules().into_iter().filter(|r| r.kind == kind) {
        let rule = ValidationRule { rule: r.rule, message: Some(r.message), ..Default::default() };
        at(r.path, &mut |n| n.x_kubernetes_validations.get_or_insert_with(Vec::new).push(rule.clone()));
    }
    for (_, path, len) in MAX_LENGTHS.iter().filter(|(k, ..)| *k == kind) {
        at(path, &mut |n| n.max_length = Some(n.max_length.map_or(*len, |m| m.min(*len))));
    }
    for (_, path, items) in MAX_ITEMS.iter().filter(|(k, ..)| *k == kind) {
        at(path, &mut |n| n.max_items = Some(*items));
    }
    missing
}

#[cfg(test)]
mod tests;
