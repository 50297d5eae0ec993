//! Pure edits of a bucket's IAM policy for one member of one role, and the BucketIAMMember's
//! validation and observation. No I/O.
//!
//! A bucket has one IAM policy that many BucketIAMMembers share, so each edit adds or removes
//! exactly one member of the unconditional binding of one role and keeps everything else in the
//! policy as it was read (other bindings, conditional bindings, fields Strata does not know).
//! The caller writes the edited policy back with the etag it was read with, and reads again when
//! the write is refused because someone else changed the policy in between.

use serde_json::{Value, json};

use crate::crd::{BucketIAMMemberObservation, BucketIAMMemberParameters, WorkloadIdentityMember};

/// Member prefixes (and whole members) IAM accepts.
const MEMBER_PREFIXES: &[&str] = &[
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal://",
    "principalSet://",
    "projectOwner:",
    "projectEditor:",
    "projectViewer:",
    "deleted:",
];
const WHOLE_MEMBERS: &[&str] = &["allUsers", "allAuthenticatedUsers"];

/// A `forProvider` field IAM would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spec.forProvider.{field}: {problem}")]
pub(crate) struct InvalidMember {
    pub(crate) field: &'static str,
    pub(crate) problem: String,
}

/// The workload identity federation principal of a Kubernetes ServiceAccount.
pub(crate) fn workload_identity_principal(account: &WorkloadIdentityMember) -> String {
    format!(
        "principal://iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/subject/system:serviceaccount:{}:{}",
        account.project_number, account.pool, account.namespace, account.service_account
    )
}

/// The binding the spec asks for, validated: what IAM would reject is refused here by field.
pub(crate) fn desired(
    params: &BucketIAMMemberParameters,
) -> Result<BucketIAMMemberObservation, InvalidMember> {
    let invalid = |field, problem: &str| {
        Err(InvalidMember {
            field,
            problem: problem.to_owned(),
        })
    };
    if params.bucket.trim().is_empty() {
        return invalid("bucket", "must name a bucket");
    }
    if !(params.role.starts_with("roles/")
        || params.role.starts_with("projects/")
        || params.role.starts_with("organizations/"))
    {
        return invalid(
            "role",
            "must be `roles/…` or a custom role `projects/…/roles/…` or `organizations/…/roles/…`",
        );
    }
    let member = match (&params.member, &params.kubernetes_service_account) {
        (Some(member), None) => member.clone(),
        (None, Some(account)) => {
            for (field, value) in [
                (
                    "kubernetesServiceAccount.projectNumber",
                    &account.project_number,
                ),
                ("kubernetesServiceAccount.pool", &account.pool),
                ("kubernetesServiceAccount.namespace", &account.namespace),
                (
                    "kubernetesServiceAccount.serviceAccount",
                    &account.service_account,
                ),
            ] {
                if value.trim().is_empty() {
                    return invalid(field, "must not be empty");
                }
            }
            if !account.project_number.bytes().all(|b| b.is_ascii_digit()) {
                return invalid(
                    "kubernetesServiceAccount.projectNumber",
                    "is the project's number (digits), not its id",
                );
            }
            workload_identity_principal(account)
        }
        (Some(_), Some(_)) => {
            return invalid(
                "member",
                "set either member or kubernetesServiceAccount, not both",
            );
        }
        (None, None) => return invalid("member", "set member or kubernetesServiceAccount"),
    };
    if !(WHOLE_MEMBERS.contains(&member.as_str())
        || MEMBER_PREFIXES
            .iter()
            .any(|prefix| member.len() > prefix.len() && member.starts_with(prefix)))
    {
        return Err(InvalidMember {
            field: "member",
            problem: format!(
                "`{member}` is not an IAM principal (user:, serviceAccount:, group:, domain:, principal://, principalSet://, allUsers, …)"
            ),
        });
    }
    Ok(BucketIAMMemberObservation {
        bucket: params.bucket.clone(),
        role: params.role.clone(),
        member,
    })
}

/// The unconditional binding of `role`, if the policy has one.
fn binding<'a>(policy: &'a Value, role: &str) -> Option<&'a Value> {
    policy
        .get("bindings")?
        .as_array()?
        .iter()
        .find(|binding| binding["role"] == role && binding.get("condition").is_none())
}

/// Whether the policy grants `role` to `member` without a condition.
pub(crate) fn has_member(policy: &Value, role: &str, member: &str) -> bool {
    binding(policy, role)
        .and_then(|binding| binding["members"].as_array())
        .is_some_and(|members| members.iter().any(|m| m == member))
}

/// The policy with `member` added to the unconditional binding of `role` (created when
/// missing); `None` when it is already there.
pub(crate) fn with_member(policy: &Value, role: &str, member: &str) -> Option<Value> {
    if has_member(policy, role, member) {
        return None;
    }
    let mut edited = policy.clone();
    if !edited.is_object() {
        edited = json!({});
    }
    let bindings = edited
        .as_object_mut()?
        .entry("bindings")
        .or_insert_with(|| json!([]));
    if !bindings.is_array() {
        *bindings = json!([]);
    }
    let bindings = bindings.as_array_mut()?;
    match bindings
        .iter_mut()
        .find(|binding| binding["role"] == role && binding.get("condition").is_none())
    {
        Some(binding) => match binding.get_mut("members").and_then(Value::as_array_mut) {
            Some(members) => members.push(Value::from(member)),
            None => binding["members"] = json!([member]),
        },
        None => bindings.push(json!({"role": role, "members": [member]})),
    }
    Some(edited)
}

/// The policy with `member` removed from the unconditional binding of `role` (and the binding
/// dropped when it has no member left); `None` when the member is not there.
pub(crate) fn without_member(policy: &Value, role: &str, member: &str) -> Option<Value> {
    if !has_member(policy, role, member) {
        return None;
    }
    let mut edited = policy.clone();
    let bindings = edited.get_mut("bindings")?.as_array_mut()?;
    for binding in bindings.iter_mut() {
        if binding["role"] == role
            && binding.get("condition").is_none()
            && let Some(members) = binding.get_mut("members").and_then(Value::as_array_mut)
        {
            members.retain(|m| m != member);
        }
    }
    bindings.retain(|binding| {
        binding["members"]
            .as_array()
            .is_none_or(|members| !members.is_empty())
    });
    Some(edited)
}

/// A policy as read, judged against the desired binding and the one recorded in
/// `status.atProvider` (which differs when the spec changed since it was granted).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ObservedPolicy {
    /// The whole policy as read (with its etag).
    pub(crate) policy: Value,
    pub(crate) desired: BucketIAMMemberObservation,
    /// The binding granted for an earlier spec, still on the policy and to be removed.
    pub(crate) stale: Option<BucketIAMMemberObservation>,
}

impl ObservedPolicy {
    /// Whether the desired member is granted.
    pub(crate) fn granted(&self) -> bool {
        has_member(&self.policy, &self.desired.role, &self.desired.member)
    }

    /// Exists for the runtime when either binding is on the policy.
    pub(crate) fn exists(&self) -> bool {
        self.granted() || self.stale.is_some()
    }

    /// Granted, and no earlier binding left behind.
    pub(crate) fn up_to_date(&self) -> bool {
        self.granted() && self.stale.is_none()
    }

    /// `status.atProvider`: the binding still to clean up if any, else the desired one, so a
    /// failed update never forgets a stale binding.
    pub(crate) fn at_provider(&self) -> &BucketIAMMemberObservation {
        self.stale.as_ref().unwrap_or(&self.desired)
    }
}

/// Reads `status.atProvider` as a binding; `None` when absent or not one.
pub(crate) fn recorded(at_provider: &Value) -> Option<BucketIAMMemberObservation> {
    serde_json::from_value(at_provider.clone()).ok()
}

/// Judges a policy read for `desired`, given the binding `status.atProvider` recorded.
pub(crate) fn observe(
    policy: Value,
    desired: BucketIAMMemberObservation,
    recorded: Option<BucketIAMMemberObservation>,
) -> ObservedPolicy {
    let stale = recorded.filter(|old| {
        *old != desired
            && old.bucket == desired.bucket
            && has_member(&policy, &old.role, &old.member)
    });
    ObservedPolicy {
        policy,
        desired,
        stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEWER: &str = "roles/storage.objectViewer";

    fn policy() -> Value {
        json!({
            "kind": "storage#policy",
            "etag": "CAE=",
            "version": 1,
            "bindings": [
                {"role": VIEWER, "members": ["user:a@example.com"]},
                {"role": VIEWER, "members": ["user:c@example.com"], "condition": {"title": "t", "expression": "true"}},
                {"role": "roles/storage.admin", "members": ["group:ops@example.com"]},
            ],
        })
    }

    fn params() -> BucketIAMMemberParameters {
        BucketIAMMemberParameters {
            bucket: "assets".into(),
            role: VIEWER.into(),
            member: None,
            kubernetes_service_account: Some(WorkloadIdentityMember {
                project_number: "123456".into(),
                pool: "cluster".into(),
                namespace: "shop".into(),
                service_account: "orders".into(),
            }),
        }
    }

    #[test]
    fn a_kubernetes_service_account_becomes_its_workload_identity_principal() {
        assert_eq!(
            desired(&params()).unwrap().member,
            "principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/cluster/subject/system:serviceaccount:shop:orders"
        );
    }

    #[test]
    fn adding_a_member_keeps_every_other_binding_and_field() {
        let added = with_member(&policy(), VIEWER, "user:b@example.com").unwrap();
        assert_eq!(
            added["bindings"][0]["members"],
            json!(["user:a@example.com", "user:b@example.com"])
        );
        assert_eq!(
            added["bindings"][1],
            policy()["bindings"][1],
            "conditional binding untouched"
        );
        assert_eq!(added["bindings"][2], policy()["bindings"][2]);
        assert_eq!(added["etag"], "CAE=", "the etag read is written back");
        assert_eq!(
            with_member(&added, VIEWER, "user:b@example.com"),
            None,
            "idempotent"
        );
        let fresh = with_member(
            &json!({"etag": "x"}),
            "roles/storage.objectUser",
            "user:b@example.com",
        )
        .unwrap();
        assert_eq!(
            fresh["bindings"],
            json!([{"role": "roles/storage.objectUser", "members": ["user:b@example.com"]}])
        );
    }

    #[test]
    fn removing_a_member_removes_only_it_and_drops_an_empty_binding() {
        let two = with_member(&policy(), VIEWER, "user:b@example.com").unwrap();
        let one = without_member(&two, VIEWER, "user:b@example.com").unwrap();
        assert_eq!(one, policy(), "the other member stays");
        let none = without_member(&policy(), VIEWER, "user:a@example.com").unwrap();
        let roles: Vec<_> = none["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["role"].clone())
            .collect();
        assert_eq!(
            roles,
            vec![json!(VIEWER), json!("roles/storage.admin")],
            "only the conditional viewer binding is left"
        );
        assert!(
            !has_member(&none, VIEWER, "user:c@example.com"),
            "a conditional grant is not ours"
        );
        assert_eq!(
            without_member(&policy(), VIEWER, "user:z@example.com"),
            None
        );
    }

    #[test]
    fn a_changed_spec_leaves_the_old_binding_to_remove_until_it_is_gone() {
        let old = BucketIAMMemberObservation {
            bucket: "assets".into(),
            role: VIEWER.into(),
            member: "user:a@example.com".into(),
        };
        let mut new = old.clone();
        new.role = "roles/storage.admin".into();
        let observed = observe(policy(), new.clone(), Some(old.clone()));
        assert_eq!(observed.stale, Some(old.clone()));
        assert!(observed.exists() && !observed.up_to_date());
        assert_eq!(
            observed.at_provider(),
            &old,
            "the stale binding stays recorded"
        );
        let cleaned = without_member(&policy(), VIEWER, "user:a@example.com").unwrap();
        let observed = observe(cleaned, new.clone(), Some(old));
        assert_eq!(observed.stale, None);
        assert!(!observed.exists(), "neither binding is there");
    }

    #[test]
    fn bad_specs_are_refused_by_field() {
        type Breaker = fn(&mut BucketIAMMemberParameters);
        let cases: [(Breaker, &str, &str); 6] = [
            (|p| p.bucket = " ".into(), "bucket", "blank bucket"),
            (
                |p| p.role = "storage.objectViewer".into(),
                "role",
                "role without roles/",
            ),
            (
                |p| p.member = Some("user:x@example.com".into()),
                "member",
                "both member forms",
            ),
            (
                |p| p.kubernetes_service_account = None,
                "member",
                "no member",
            ),
            (
                |p| {
                    p.kubernetes_service_account = None;
                    p.member = Some("x@example.com".into());
                },
                "member",
                "a member without a type prefix",
            ),
            (
                |p| {
                    if let Some(account) = p.kubernetes_service_account.as_mut() {
                        account.project_number = "my-project".into();
                    }
                },
                "kubernetesServiceAccount.projectNumber",
                "a project id instead of its number",
            ),
        ];
        for (break_it, field, reason) in cases {
            let mut bad = params();
            break_it(&mut bad);
            assert_eq!(desired(&bad).unwrap_err().field, field, "{reason}");
        }
        let mut everyone = params();
        everyone.kubernetes_service_account = None;
        everyone.member = Some("allUsers".into());
        assert!(desired(&everyone).is_ok());
    }
}
