//! The admission policy that makes an Approval's `spec.approver` the verified identity of whoever
//! created it: a ValidatingAdmissionPolicy (CEL, evaluated by the API server itself, no webhook)
//! and its binding. Installed with the CRDs (`tuskfish crd`), by the chart and by the tests.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicyBindingSpec, ValidatingAdmissionPolicySpec, Validation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::GROUP;

/// Name of the policy and of its binding.
pub const APPROVAL_IDENTITY: &str = "tuskfish-approval-identity";

/// What the API server answers to an Approval in someone else's name (a CEL string expression).
const MESSAGE: &str = "'spec.approver must be the user who creates the Approval (' + request.userInfo.username + \
    '): nobody can approve in another person\\'s name; `tuskfish approve` fills it in'";

/// Refuses, at creation, an Approval whose `spec.approver` is not the requesting user. Updates need
/// no check: the CRD makes an Approval's spec immutable, so the creator's name is the one kept.
pub fn approval_identity_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(APPROVAL_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![GROUP.into()]),
                    api_versions: Some(vec!["*".into()]),
                    operations: Some(vec!["CREATE".into()]),
                    resources: Some(vec!["approvals".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            validations: Some(vec![Validation {
                expression: "has(object.spec.approver) && object.spec.approver == request.userInfo.username"
                    .into(),
                message_expression: Some(MESSAGE.into()),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Binds the policy cluster-wide, denying what it refuses.
pub fn approval_identity_binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta { name: Some(APPROVAL_IDENTITY.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(APPROVAL_IDENTITY.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    }
}
