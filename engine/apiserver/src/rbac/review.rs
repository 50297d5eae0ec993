//! The access reviews of `authorization.k8s.io/v1`, answered from the same index requests are
//! authorized by: `SelfSubjectAccessReview` (`kubectl auth can-i`), `SubjectAccessReview`,
//! `LocalSubjectAccessReview` and `SelfSubjectRulesReview` (`kubectl auth can-i --list`).
//! Reviews are create-only and stored nowhere; the request itself is authorized like any other
//! (`create` on the review resource), so only a permitted user learns about others.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::AUTHORIZATION_GROUP;
use super::attributes::{Attributes, ResourceAttributes};
use super::index::{Decision, Index, resolution_reason};
use super::policy::PolicyRule;
use crate::auth::UserInfo;
use crate::error::{ApiError, ErrorTarget, FieldCause};

/// One of the review resources of `authorization.k8s.io/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    /// Whether the requesting user may do one thing (`kubectl auth can-i`).
    SelfSubjectAccess,
    /// Whether a named user (with groups) may do one thing, in any namespace.
    SubjectAccess,
    /// Like `SubjectAccess`, but confined to the review's own namespace.
    LocalSubjectAccess,
    /// Every rule the requesting user has in a namespace (`kubectl auth can-i --list`).
    SelfSubjectRules,
}

impl ReviewKind {
    /// Every review kind.
    pub const ALL: [ReviewKind; 4] = [
        ReviewKind::SelfSubjectAccess,
        ReviewKind::SubjectAccess,
        ReviewKind::LocalSubjectAccess,
        ReviewKind::SelfSubjectRules,
    ];

    /// The plural resource name, as it appears in paths and discovery.
    pub fn resource(self) -> &'static str {
        match self {
            ReviewKind::SelfSubjectAccess => "selfsubjectaccessreviews",
            ReviewKind::SubjectAccess => "subjectaccessreviews",
            ReviewKind::LocalSubjectAccess => "localsubjectaccessreviews",
            ReviewKind::SelfSubjectRules => "selfsubjectrulesreviews",
        }
    }

    /// The `kind` of the review's request and response bodies.
    pub fn kind(self) -> &'static str {
        match self {
            ReviewKind::SelfSubjectAccess => "SelfSubjectAccessReview",
            ReviewKind::SubjectAccess => "SubjectAccessReview",
            ReviewKind::LocalSubjectAccess => "LocalSubjectAccessReview",
            ReviewKind::SelfSubjectRules => "SelfSubjectRulesReview",
        }
    }

    /// Whether the resource is namespaced (only LocalSubjectAccessReview is).
    pub fn namespaced(self) -> bool {
        self == ReviewKind::LocalSubjectAccess
    }

    /// The review a path under `/apis/authorization.k8s.io/v1/` names, with its namespace.
    pub fn from_path<'a>(rest: &[&'a str]) -> Option<(ReviewKind, Option<&'a str>)> {
        let (ns, resource) = match rest {
            [resource] => (None, *resource),
            ["namespaces", ns, resource] => (Some(*ns), *resource),
            _ => return None,
        };
        let kind = ReviewKind::ALL
            .into_iter()
            .find(|k| k.resource() == resource)?;
        (kind.namespaced() == ns.is_some()).then_some((kind, ns))
    }
}

fn invalid(kind: ReviewKind, field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        target: ErrorTarget::new(AUTHORIZATION_GROUP, kind.kind(), ""),
        causes: vec![FieldCause {
            field: field.into(),
            message: message.into(),
        }],
    }
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The attributes a review's `spec` asks about.
fn spec_attributes(kind: ReviewKind, spec: &Value) -> Result<Attributes, ApiError> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes::Resource(ResourceAttributes {
            verb: text(r, "/verb"),
            api_group: text(r, "/group"),
            api_version: text(r, "/version"),
            resource: text(r, "/resource"),
            subresource: text(r, "/subresource"),
            name: text(r, "/name"),
            namespace: text(r, "/namespace"),
        })),
        (None, Some(n)) => Ok(Attributes::NonResource {
            verb: text(n, "/verb"),
            path: text(n, "/path"),
        }),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The user a SubjectAccessReview asks about.
fn spec_user(spec: &Value) -> UserInfo {
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), strings(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    UserInfo {
        name: text(spec, "/user"),
        uid: text(spec, "/uid"),
        groups: strings(spec.get("groups")),
        extra,
    }
}

/// Answers one review created by `requester` (`namespace`: the path's, for local reviews).
pub fn review(
    index: &Index,
    requester: &UserInfo,
    kind: ReviewKind,
    namespace: Option<&str>,
    body: &Value,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    let given_kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !given_kind.is_empty() && given_kind != kind.kind() {
        return Err(ApiError::BadRequest(format!(
            "the body is a {given_kind}, not a {}",
            kind.kind()
        )));
    }
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match kind {
        ReviewKind::SelfSubjectRules => {
            let ns = text(&spec, "/namespace");
            if ns.is_empty() {
                return Err(ApiError::BadRequest("no namespace on request".into()));
            }
            rules_status(index, requester, &ns)
        }
        ReviewKind::SelfSubjectAccess => {
            access_status(index.authorize(requester, &spec_attributes(kind, &spec)?))
        }
        ReviewKind::SubjectAccess | ReviewKind::LocalSubjectAccess => {
            let user = spec_user(&spec);
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            let attrs = spec_attributes(kind, &spec)?;
            if let Some(ns) = namespace {
                match &attrs {
                    Attributes::Resource(r) if r.namespace == ns => {}
                    Attributes::Resource(r) => {
                        return Err(invalid(
                            kind,
                            "spec.resourceAttributes.namespace",
                            &format!(
                                "Invalid value: {:?}: must match metadata.namespace",
                                r.namespace
                            ),
                        ));
                    }
                    Attributes::NonResource { .. } => {
                        return Err(invalid(
                            kind,
                            "spec.nonResourceAttributes",
                            "Invalid value: disallowed on this kind of request",
                        ));
                    }
                }
            }
            access_status(index.authorize(&user, &attrs))
        }
    };
    let mut metadata = json!({"creationTimestamp": null});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    Ok(json!({
        "kind": kind.kind(),
        "apiVersion": format!("{AUTHORIZATION_GROUP}/v1"),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }))
}

fn access_status(decision: Decision) -> Value {
    match decision {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny { reason } if reason.is_empty() => json!({"allowed": false}),
        Decision::Deny { reason } => json!({"allowed": false, "reason": reason}),
    }
}

fn rules_status(index: &Index, user: &UserInfo, namespace: &str) -> Value {
    let (rules, errors) = index.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if rule.non_resource_urls.is_empty() {
            resource_rules.push(json!({
                "verbs": rule.verbs,
                "apiGroups": rule.api_groups,
                "resources": rule.resources,
                "resourceNames": rule.resource_names,
            }));
        } else {
            let PolicyRule {
                verbs,
                non_resource_urls,
                ..
            } = rule;
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(resolution_reason(&errors));
    }
    status
}
