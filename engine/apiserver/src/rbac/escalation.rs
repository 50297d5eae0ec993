//! Admission of RBAC objects: their validation (422 naming the field, as kube-apiserver's
//! `rbac/validation`) and escalation prevention — a user may create or update a Role or
//! ClusterRole only with rules it already holds (or the `escalate` verb on it), and a binding
//! only to a role whose rules it holds (or the `bind` verb on that role), exactly as
//! kube-apiserver's policy-based RBAC storage decides. `system:masters` is exempt.
//!
//! The cluster calls [`admit`] under its state lock with the final object (after any patch), so
//! what is checked is what is stored.

use serde_json::{Value, json};

use super::attributes::{Attributes, ResourceAttributes};
use super::index::{Index, RoleRef};
use super::policy::{PolicyRule, rules_of, uncovered};
use super::{Kind, RBAC_GROUP, forbidden_on};
use crate::auth::{GROUP_MASTERS, UserInfo};
use crate::error::{ApiError, ErrorTarget, FieldCause};

/// Validates (and defaults) an RBAC object, then, when a user makes the write, refuses it if it
/// would grant more than that user holds.
pub fn admit(
    index: &Index,
    requester: Option<&UserInfo>,
    kind: Kind,
    previous: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let target = ErrorTarget::new(RBAC_GROUP, kind.kind(), crate::object::name(obj));
    let causes = if kind.is_binding() {
        default_subjects(obj);
        validate_binding(kind, previous, obj)
    } else {
        validate_role(kind, obj)
    };
    if !causes.is_empty() {
        return Err(ApiError::Invalid { target, causes });
    }
    let Some(user) = requester else {
        return Ok(());
    };
    if user.groups.iter().any(|g| g == GROUP_MASTERS)
        || previous.is_some_and(|old| only_collection_fields_changed(old, obj))
    {
        return Ok(());
    }
    let namespace = crate::object::namespace(obj).to_owned();
    let name = crate::object::name(obj).to_owned();
    let denied = |message: String| {
        forbidden_on(
            Some(ErrorTarget::new(RBAC_GROUP, kind.resource(), &name)),
            message,
        )
    };
    if kind.is_binding() {
        let Some(role_ref) = RoleRef::from_binding(obj) else {
            return Ok(());
        };
        let bind = rbac_attributes("bind", role_ref.resource(), role_ref.name(), &namespace);
        if index.authorize(user, &bind).allowed() {
            return Ok(());
        }
        let rules = index.role_ref_rules(&role_ref, &namespace).ok_or_else(|| {
            let resource = match role_ref {
                RoleRef::Role(_) => "role",
                RoleRef::ClusterRole(_) => "clusterrole",
            };
            ApiError::NotFound(ErrorTarget::new(RBAC_GROUP, resource, role_ref.name()))
        })?;
        return confirm_no_escalation(index, user, &namespace, &rules).map_err(denied);
    }
    let escalate = rbac_attributes("escalate", kind.resource(), &name, &namespace);
    if index.authorize(user, &escalate).allowed() {
        return Ok(());
    }
    confirm_no_escalation(index, user, &namespace, &rules_of(obj)).map_err(denied)?;
    if kind == Kind::ClusterRole && obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        let full = [
            PolicyRule::resource(&["*"], &["*"], &["*"]),
            PolicyRule::urls(&["*"], &["*"]),
        ];
        confirm_no_escalation(index, user, "", &full).map_err(|_| {
            denied("must have cluster-admin privileges to use the aggregationRule".into())
        })?;
    }
    Ok(())
}

fn rbac_attributes(verb: &str, resource: &str, name: &str, namespace: &str) -> Attributes {
    Attributes::Resource(ResourceAttributes {
        verb: verb.into(),
        api_group: RBAC_GROUP.into(),
        api_version: "*".into(),
        resource: resource.into(),
        subresource: String::new(),
        name: name.into(),
        namespace: namespace.into(),
    })
}

/// `ConfirmNoEscalation`: the user's rules in `namespace` must cover `rules`.
fn confirm_no_escalation(
    index: &Index,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owned, errors) = index.rules_for(user, namespace);
    let missing = uncovered(&owned, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut descriptions: Vec<String> = missing.iter().map(PolicyRule::compact).collect();
    descriptions.sort();
    descriptions.dedup();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut msg = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        descriptions.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    Err(msg)
}

/// True when an update touches only what garbage collection and deletion change (finalizers,
/// owner references), which kube-apiserver lets through without an escalation check.
fn only_collection_fields_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "finalizers",
                "ownerReferences",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// Subjects of kind User or Group default their `apiGroup` (`SetDefaults_Subject`).
fn default_subjects(obj: &mut Value) {
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
            let empty = s
                .get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if empty && (kind == "User" || kind == "Group") {
                s["apiGroup"] = json!(RBAC_GROUP);
            }
        }
    }
}

fn cause(field: String, message: String) -> FieldCause {
    FieldCause { field, message }
}

fn validate_role(kind: Kind, obj: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let rules = match obj.get("rules") {
        None | Some(Value::Null) => return causes,
        Some(Value::Array(rules)) => rules,
        Some(other) => {
            return vec![cause(
                "rules".into(),
                format!("Invalid value: {other}: must be a list of policy rules"),
            )];
        }
    };
    for (i, raw) in rules.iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        let rule: PolicyRule = match serde_json::from_value(raw.clone()) {
            Ok(r) => r,
            Err(e) => {
                causes.push(cause(format!("rules[{i}]"), format!("Invalid value: {e}")));
                continue;
            }
        };
        if rule.verbs.is_empty() {
            causes.push(cause(
                field("verbs"),
                "Required value: verbs must contain at least one value".into(),
            ));
        }
        if !rule.non_resource_urls.is_empty() {
            if kind.namespaced() {
                causes.push(cause(
                    field("nonResourceURLs"),
                    format!(
                        "Invalid value: {:?}: namespaced rules cannot apply to non-resource URLs",
                        rule.non_resource_urls
                    ),
                ));
            }
            if !rule.api_groups.is_empty() || !rule.resources.is_empty() {
                causes.push(cause(
                    field("nonResourceURLs"),
                    format!(
                        "Invalid value: {:?}: rules cannot apply to both regular resources and non-resource URLs",
                        rule.non_resource_urls
                    ),
                ));
            }
            continue;
        }
        if rule.api_groups.is_empty() {
            causes.push(cause(
                field("apiGroups"),
                "Required value: resource rules must supply at least one api group".into(),
            ));
        }
        if rule.resources.is_empty() {
            causes.push(cause(
                field("resources"),
                "Required value: resource rules must supply at least one resource".into(),
            ));
        }
    }
    causes
}

fn validate_binding(kind: Kind, previous: Option<&Value>, obj: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let text = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let group = text(obj, "/roleRef/apiGroup");
    if group != RBAC_GROUP {
        causes.push(cause(
            "roleRef.apiGroup".into(),
            format!("Unsupported value: {group:?}: supported values: \"{RBAC_GROUP}\""),
        ));
    }
    let ref_kind = text(obj, "/roleRef/kind");
    let kinds: &[&str] = if kind == Kind::RoleBinding {
        &["ClusterRole", "Role"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&ref_kind.as_str()) {
        let supported: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        causes.push(cause(
            "roleRef.kind".into(),
            format!(
                "Unsupported value: {ref_kind:?}: supported values: {}",
                supported.join(", ")
            ),
        ));
    }
    if text(obj, "/roleRef/name").is_empty() {
        causes.push(cause("roleRef.name".into(), "Required value".into()));
    }
    if let Some(old) = previous
        && old.get("roleRef") != obj.get("roleRef")
    {
        causes.push(cause(
            "roleRef".into(),
            format!(
                "Invalid value: {}: cannot change roleRef",
                obj.get("roleRef").cloned().unwrap_or(Value::Null)
            ),
        ));
    }
    let subjects = match obj.get("subjects") {
        None | Some(Value::Null) => return causes,
        Some(Value::Array(s)) => s.as_slice(),
        Some(other) => {
            causes.push(cause(
                "subjects".into(),
                format!("Invalid value: {other}: must be a list of subjects"),
            ));
            return causes;
        }
    };
    for (i, s) in subjects.iter().enumerate() {
        let field = |f: &str| format!("subjects[{i}].{f}");
        let s_kind = text(s, "/kind");
        let api_group = text(s, "/apiGroup");
        if text(s, "/name").is_empty() {
            causes.push(cause(field("name"), "Required value".into()));
        }
        match s_kind.as_str() {
            "ServiceAccount" => {
                if !api_group.is_empty() {
                    causes.push(cause(
                        field("apiGroup"),
                        format!("Unsupported value: {api_group:?}: supported values: \"\""),
                    ));
                }
                if kind == Kind::ClusterRoleBinding && text(s, "/namespace").is_empty() {
                    causes.push(cause(field("namespace"), "Required value".into()));
                }
            }
            "User" | "Group" => {
                if api_group != RBAC_GROUP {
                    causes.push(cause(
                        field("apiGroup"),
                        format!(
                            "Unsupported value: {api_group:?}: supported values: \"{RBAC_GROUP}\""
                        ),
                    ));
                }
            }
            other => causes.push(cause(
                field("kind"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"Group\", \"ServiceAccount\", \"User\""
                ),
            )),
        }
    }
    causes
}
