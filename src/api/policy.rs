//! The admission policies that make a person's name on a decision the verified identity of whoever
//! made it: an Approval's `spec.approver`, the user named on a veto of an AppVersion, and the user
//! who asked for a Release's spec.
//! ValidatingAdmissionPolicies (CEL, evaluated by the API server itself, no webhook) and their
//! bindings. Installed with the CRDs (`tuskfish crd`), by the chart and by the tests.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicyBindingSpec, ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    GROUP, REQUESTED_BY_ANNOTATION, REQUESTED_GENERATION_ANNOTATION, VETO_ANNOTATION, VETOED_AT_ANNOTATION,
    VETOED_BY_ANNOTATION,
};

/// Name of the Approval policy and of its binding.
pub const APPROVAL_IDENTITY: &str = "tuskfish-approval-identity";
/// Name of the veto policy and of its binding.
pub const VETO_IDENTITY: &str = "tuskfish-veto-identity";
/// Name of the Release requester policy and of its binding.
pub const REQUESTER_IDENTITY: &str = "tuskfish-requester-identity";
/// Name of the Ledger policy and of its binding.
pub const LEDGER_WRITERS: &str = "tuskfish-ledger-writers";
/// The verb (on `ledgers`, granted cluster-wide) that lets a writer past [`ledger_writers_policy`].
pub const RECORD_VERB: &str = "record";

/// Every policy with its binding, in the order they are installed.
pub fn identity_policies() -> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
    vec![
        (approval_identity_policy(), binding(APPROVAL_IDENTITY)),
        (veto_identity_policy(), binding(VETO_IDENTITY)),
        (requester_identity_policy(), binding(REQUESTER_IDENTITY)),
        (ledger_writers_policy(), binding(LEDGER_WRITERS)),
    ]
}

fn matching(operations: &[&str], resource: &str) -> Option<MatchResources> {
    matching_all(operations, &[resource])
}

fn matching_all(operations: &[&str], resources: &[&str]) -> Option<MatchResources> {
    Some(MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![GROUP.into()]),
            api_versions: Some(vec!["*".into()]),
            operations: Some(operations.iter().map(|o| o.to_string()).collect()),
            resources: Some(resources.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        }]),
        ..Default::default()
    })
}

/// What the API server answers to an Approval in someone else's name (a CEL string expression).
const MESSAGE: &str = "'spec.approver must be the user who creates the Approval (' + request.userInfo.username + \
    '): nobody can approve in another person\\'s name; `tuskfish approve` fills it in'";

/// What the API server answers to an Approval claiming groups its author is not in.
const GROUPS_MESSAGE: &str = "'spec.approverGroups may only name groups of the user who creates the Approval (' + \
    request.userInfo.username + '); `tuskfish approve` fills them in'";

/// Refuses, at creation, an Approval whose `spec.approver` is not the requesting user, or whose
/// `spec.approverGroups` names a group the requesting user is not in. Updates need no check: the
/// CRD makes an Approval's spec immutable, so the creator's name and groups are the ones kept.
pub fn approval_identity_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(APPROVAL_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: matching(&["CREATE"], "approvals"),
            validations: Some(vec![
                Validation {
                    expression:
                        "has(object.spec.approver) && object.spec.approver == request.userInfo.username"
                            .into(),
                    message_expression: Some(MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
                Validation {
                    expression: "!has(object.spec.approverGroups) || object.spec.approverGroups.all(g, \
                                 has(request.userInfo.groups) && g in request.userInfo.groups)"
                        .into(),
                    message_expression: Some(GROUPS_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the API server answers to a veto in someone else's name.
const VETO_MESSAGE: &str = "'the tuskfish.dev/vetoed-by annotation must name the user who sets or changes the veto (' + \
    request.userInfo.username + '): nobody can veto in another person\\'s name; `tuskfish veto` fills it in'";

/// The group whose members may lift or change anyone's veto (besides its author).
pub const VETO_ADMINS_GROUP: &str = "tuskfish:veto-admins";

/// What the API server answers to deleting a published AppVersion or ProductVersion.
const PUBLISHED_MESSAGE: &str = "a published version is not deleted: one created again under its version would be \
    other content passing as what was approved, rolled out and soaked; publish a new version instead (a member \
    of tuskfish:veto-admins may delete it)";

/// What the API server answers to lifting or changing someone else's veto.
const VETO_OWNER_MESSAGE: &str = "'this version was vetoed by ' + variables.oldBy + ': only they, or a member of the \
    group tuskfish:veto-admins, may lift or change the veto (' + request.userInfo.username + ' is neither)'";

/// Refuses a veto (an AppVersion's veto annotation, set or changed) that does not name its author
/// as `tuskfish.dev/vetoed-by`, and lifting, changing or deleting a veto (the AppVersion with it)
/// by anyone but its author or a
/// member of [`VETO_ADMINS_GROUP`] (otherwise anyone who may patch AppVersions could undo a
/// release manager's stop, or overwrite it in their own name and then lift it). The CLI records
/// who lifted it in an Event.
pub fn veto_identity_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(VETO_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            // DELETE too: deleting a vetoed AppVersion and publishing it again would lift the
            // veto. A namespace being deleted takes its AppVersions with it, veto or not.
            // ProductVersions carry vetoes the same way.
            match_constraints: matching_all(&["CREATE", "UPDATE", "DELETE"], &["appversions", "productversions"]),
            variables: Some(vec![
                namespace_going(),
                annotation("veto", "object", VETO_ANNOTATION),
                annotation("by", "object", VETOED_BY_ANNOTATION),
                annotation("at", "object", VETOED_AT_ANNOTATION),
                annotation("oldVeto", "oldObject", VETO_ANNOTATION),
                annotation("oldBy", "oldObject", VETOED_BY_ANNOTATION),
                annotation("oldAt", "oldObject", VETOED_AT_ANNOTATION),
                // Its time too: a new time on someone's veto would be a new veto in their name
                // (the audit records one per veto).
                Variable {
                    name: "same".into(),
                    expression: "variables.namespaceGoing || (variables.veto == variables.oldVeto && variables.by == variables.oldBy && variables.at == variables.oldAt)"
                        .into(),
                },
            ]),
            validations: Some(vec![
                Validation {
                    expression: format!(
                        "variables.same || variables.oldVeto == '' || variables.oldBy == request.userInfo.username || (has(request.userInfo.groups) && '{VETO_ADMINS_GROUP}' in request.userInfo.groups)"
                    ),
                    message_expression: Some(VETO_OWNER_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
                Validation {
                    expression:
                        "variables.same || variables.veto == '' || variables.by == request.userInfo.username"
                            .into(),
                    message_expression: Some(VETO_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
                // What was published stays: deleting a published version and creating it again
                // would ship other content under a version already approved (an Approval names a
                // version), rolled out and soaked, and pass no gate.
                Validation {
                    expression: format!(
                        "request.operation != 'DELETE' || variables.namespaceGoing || \
                         !(has(oldObject.status) && (has(oldObject.status.specHash) || has(oldObject.status.publishedAt))) || \
                         (has(request.userInfo.groups) && '{VETO_ADMINS_GROUP}' in request.userInfo.groups)"
                    ),
                    message: Some(PUBLISHED_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A variable `name`: the annotation `key` of `object` (`object` or `oldObject`), `''` when it has none.
fn annotation(name: &str, object: &str, key: &str) -> Variable {
    Variable {
        name: name.into(),
        expression: format!(
            "{object} != null && has({object}.metadata.annotations) && '{key}' in {object}.metadata.annotations ? {object}.metadata.annotations['{key}'] : ''"
        ),
    }
}

/// A variable `name`: what chooses the version of `object` (`object` or `oldObject`), as
/// [`super::ReleaseSpec::version_source`] finds it: `rollback:1.3.9`, `version:1.4.0`,
/// `track:~1.4`, `promoteFrom:test`; `''` for none.
fn version_source(name: &str, object: &str) -> Variable {
    let o = object;
    Variable {
        name: name.into(),
        expression: format!(
            "{o} == null || !has({o}.spec) ? '' : \
             has({o}.spec.rollback) && has({o}.spec.rollback.to) ? 'rollback:' + {o}.spec.rollback.to : \
             has({o}.spec.version) ? 'version:' + {o}.spec.version : \
             has({o}.spec.track) ? 'track:' + {o}.spec.track : \
             has({o}.spec.promoteFrom) ? 'promoteFrom:' + {o}.spec.promoteFrom.environment : ''"
        ),
    }
}

/// What the API server answers to a request claimed in someone else's name.
const REQUESTER_MESSAGE: &str = "'the tuskfish.dev/requested-by annotation must name the user who writes it (' + \
    request.userInfo.username + '): nobody can ask for a rollout in another person\\'s name; `tuskfish deploy` fills it in'";

/// What the API server answers to a claim not made with the spec change it vouches for.
const REQUESTER_CHANGE_MESSAGE: &str = "'tuskfish.dev/requested-by and tuskfish.dev/requested-generation are set only \
    in the write that changes which version the Release runs (spec.rollback.to, version, track or \
    promoteFrom), naming the generation it makes (' + string(object.metadata.generation) + '): a \
    request cannot be claimed for someone else\\'s change; `tuskfish deploy` fills them in'";

/// Refuses a request claim on a Release (its [`REQUESTED_BY_ANNOTATION`] and
/// [`REQUESTED_GENERATION_ANNOTATION`], set or changed) that does not name the requesting user, or
/// is not made in the write that changes which version it runs (the field of
/// [`super::ReleaseSpec::version_source`], or its value), naming the generation that write makes
/// (the API server counts it before validating). So a claim vouches for exactly one spec, and one
/// its author chose the version of: the next change by anyone makes a generation it does not
/// name, and the audit trusts a claim only while it names the current one. Removing the user
/// (`requested-by`) is always allowed.
pub fn requester_identity_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(REQUESTER_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: matching(&["CREATE", "UPDATE"], "releases"),
            variables: Some(vec![
                annotation("by", "object", REQUESTED_BY_ANNOTATION),
                annotation("gen", "object", REQUESTED_GENERATION_ANNOTATION),
                annotation("oldBy", "oldObject", REQUESTED_BY_ANNOTATION),
                annotation("oldGen", "oldObject", REQUESTED_GENERATION_ANNOTATION),
                version_source("source", "object"),
                version_source("oldSource", "oldObject"),
                Variable {
                    name: "claimed".into(),
                    expression: "variables.by != '' && (variables.by != variables.oldBy || variables.gen != variables.oldGen)"
                        .into(),
                },
            ]),
            validations: Some(vec![
                Validation {
                    expression: "!variables.claimed || variables.by == request.userInfo.username".into(),
                    message_expression: Some(REQUESTER_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
                Validation {
                    expression: "!variables.claimed || (variables.gen == string(object.metadata.generation) && \
                                 variables.source != variables.oldSource)"
                        .into(),
                    message_expression: Some(REQUESTER_CHANGE_MESSAGE.into()),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the API server answers to anyone else writing a Ledger.
const LEDGER_MESSAGE: &str = "audit records are written by the tuskfish operator only: a Ledger is \
    created, changed or deleted only by a user granted the verb `record` on ledgers cluster-wide (the \
    operator, an agent); the records themselves never change";

/// Refuses any write of a Ledger (create, update, delete) by a user not granted the verb `record`
/// on `ledgers` in every namespace: the operator's ClusterRole grants it, a tenant's Role in its
/// own namespace cannot. Without this, a tenant who may edit Ledgers could write a record before
/// the operator does (the operator takes an existing record as its own), empty or delete a
/// Ledger, or hand it to the garbage collector with an owner reference. Write rights themselves
/// stay RBAC's, per namespace: the verb only says "a trusted writer". A namespace being deleted
/// takes its Ledgers with it.
pub fn ledger_writers_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(LEDGER_WRITERS.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: matching(&["CREATE", "UPDATE", "DELETE"], "ledgers"),
            variables: Some(vec![namespace_going()]),
            validations: Some(vec![Validation {
                expression: format!(
                    "variables.namespaceGoing || authorizer.group('{GROUP}').resource('ledgers').check('{RECORD_VERB}').allowed()"
                ),
                message: Some(LEDGER_MESSAGE.into()),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// True for a deletion in a namespace being deleted: the namespace controller takes everything in
/// it, vetoed AppVersions and Ledgers too (or the namespace would stay Terminating for ever).
/// A variable, not a match condition: `namespaceObject` is null in match conditions.
fn namespace_going() -> Variable {
    Variable {
        name: "namespaceGoing".into(),
        expression: "request.operation == 'DELETE' && namespaceObject != null && has(namespaceObject.metadata.deletionTimestamp)"
            .into(),
    }
}

/// Binds the policy `name` cluster-wide, denying what it refuses.
fn binding(name: &str) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(name.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    }
}
