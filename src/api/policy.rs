//! The admission policies that make a person's name on a decision the verified identity of whoever
//! made it: an Approval's `spec.approver`, and the user named on a veto of an AppVersion.
//! ValidatingAdmissionPolicies (CEL, evaluated by the API server itself, no webhook) and their
//! bindings. Installed with the CRDs (`tuskfish crd`), by the chart and by the tests.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicyBindingSpec, ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{GROUP, VETO_ANNOTATION, VETOED_BY_ANNOTATION};

/// Name of the Approval policy and of its binding.
pub const APPROVAL_IDENTITY: &str = "tuskfish-approval-identity";
/// Name of the veto policy and of its binding.
pub const VETO_IDENTITY: &str = "tuskfish-veto-identity";

/// Every policy with its binding, in the order they are installed.
pub fn identity_policies() -> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
    vec![
        (approval_identity_policy(), binding(APPROVAL_IDENTITY)),
        (veto_identity_policy(), binding(VETO_IDENTITY)),
    ]
}

fn matching(operations: &[&str], resource: &str) -> Option<MatchResources> {
    Some(MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![GROUP.into()]),
            api_versions: Some(vec!["*".into()]),
            operations: Some(operations.iter().map(|o| o.to_string()).collect()),
            resources: Some(vec![resource.into()]),
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

/// Refuses a veto (an AppVersion's veto annotation, set or changed) that does not name its author
/// as `tuskfish.dev/vetoed-by`. Lifting a veto (removing its reason) is up to RBAC alone; the CLI
/// records who lifted it in an Event.
pub fn veto_identity_policy() -> ValidatingAdmissionPolicy {
    let annotation = |object: &str, key: &str| Variable {
        name: String::new(),
        expression: format!(
            "{object} != null && has({object}.metadata.annotations) && '{key}' in {object}.metadata.annotations ? {object}.metadata.annotations['{key}'] : ''"
        ),
    };
    let named = |name: &str, v: Variable| Variable { name: name.into(), ..v };
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(VETO_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: matching(&["CREATE", "UPDATE"], "appversions"),
            variables: Some(vec![
                named("veto", annotation("object", VETO_ANNOTATION)),
                named("by", annotation("object", VETOED_BY_ANNOTATION)),
                named("oldVeto", annotation("oldObject", VETO_ANNOTATION)),
                named("oldBy", annotation("oldObject", VETOED_BY_ANNOTATION)),
            ]),
            validations: Some(vec![Validation {
                expression: "(variables.veto == variables.oldVeto && variables.by == variables.oldBy) || variables.veto == '' || variables.by == request.userInfo.username".into(),
                message_expression: Some(VETO_MESSAGE.into()),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
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
