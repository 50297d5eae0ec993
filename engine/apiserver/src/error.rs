//! API errors and their one mapping to Kubernetes `Status` responses.
//!
//! Every handler returns `Result<_, ApiError>`; the HTTP layer turns an `ApiError` into a
//! `meta/v1 Status` body exactly shaped like kube-apiserver's (kind, apiVersion, metadata, status,
//! message, reason, details, code).

use serde_json::{Value, json};

/// Names the object an error is about, for the `details` of a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTarget {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl ErrorTarget {
    pub fn new(group: &str, kind: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }

    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{} \"{}\" not found", .0.qualified_kind(), .0.name)]
    NotFound(ErrorTarget),
    #[error("the server could not find the requested resource")]
    UnknownResource { path: String },
    #[error("{} \"{}\" already exists", .0.qualified_kind(), .0.name)]
    AlreadyExists(ErrorTarget),
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", .target.qualified_kind(), .target.name)]
    Conflict {
        target: ErrorTarget,
        message: String,
    },
    #[error("Apply failed with {} conflict{}: {}", .conflicts.len(), if .conflicts.len() == 1 { "" } else { "s" }, .conflicts.join("\n"))]
    ApplyConflict {
        target: ErrorTarget,
        conflicts: Vec<String>,
        causes: Vec<FieldCause>,
    },
    #[error("{} \"{}\" is invalid: {}", .target.qualified_kind(), .target.name, invalid_summary(.causes))]
    Invalid {
        target: ErrorTarget,
        causes: Vec<FieldCause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// A 403 about one resource (authorization): the message is complete, the target fills the
    /// `details`.
    #[error("{message}")]
    ForbiddenOn {
        target: ErrorTarget,
        message: String,
    },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
    #[error("the request is too large: the body must be at most {limit} bytes")]
    RequestTooLarge { limit: usize },
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
    )]
    ContinueExpired,
    #[error("{0}")]
    UnprocessablePatch(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn invalid_summary(causes: &[FieldCause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if parts.len() == 1 {
        parts.join("")
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownResource { .. } => 404,
            ApiError::AlreadyExists(_)
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Invalid { .. } | ApiError::UnprocessablePatch(_) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) | ApiError::ForbiddenOn { .. } => 403,
            ApiError::Unauthorized => 401,
            ApiError::MethodNotAllowed => 405,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::RequestTooLarge { .. } => 413,
            ApiError::Expired { .. } | ApiError::ContinueExpired => 410,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownResource { .. } => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::UnprocessablePatch(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) | ApiError::ForbiddenOn { .. } => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::RequestTooLarge { .. } => "RequestEntityTooLarge",
            ApiError::Expired { .. } | ApiError::ContinueExpired => "Expired",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let target = match self {
            ApiError::NotFound(t) | ApiError::AlreadyExists(t) => t,
            ApiError::Conflict { target, .. } | ApiError::ForbiddenOn { target, .. } => target,
            ApiError::ApplyConflict { target, causes, .. } => {
                return Some(details_json(target, causes, "FieldManagerConflict"));
            }
            ApiError::Invalid { target, causes } => {
                return Some(details_json(target, causes, "FieldValueInvalid"));
            }
            _ => return None,
        };
        Some(details_json(target, &[], ""))
    }

    /// The `meta/v1 Status` body for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

fn details_json(target: &ErrorTarget, causes: &[FieldCause], cause_reason: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !target.name.is_empty() {
        d.insert("name".into(), json!(target.name));
    }
    if !target.group.is_empty() {
        d.insert("group".into(), json!(target.group));
    }
    d.insert("kind".into(), json!(target.kind));
    if !causes.is_empty() {
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| {
                let reason = if cause_reason == "FieldValueInvalid" {
                    field_cause_reason(&c.message)
                } else {
                    cause_reason
                };
                json!({"reason": reason, "message": c.message, "field": c.field})
            })
            .collect();
        d.insert("causes".into(), Value::Array(causes));
    }
    Value::Object(d)
}

/// The `reason` of an `Invalid` error's cause, from the type its message starts with
/// (`Forbidden: ...` is `FieldValueForbidden`), as kube-apiserver's `field.Error` types map.
fn field_cause_reason(message: &str) -> &'static str {
    const TYPES: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Not found", "FieldValueNotFound"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Internal error", "InternalError"),
    ];
    TYPES
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map(|(_, reason)| *reason)
        .unwrap_or("FieldValueInvalid")
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kube_apiserver_shape() {
        let err = ApiError::NotFound(ErrorTarget::new("", "secrets", "db"));
        let status = err.status();
        assert_eq!(status["message"], "secrets \"db\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"], json!({"name": "db", "kind": "secrets"}));
    }

    #[test]
    fn invalid_causes_carry_the_reason_of_their_field_error_type() {
        let cause = |field: &str, message: &str| FieldCause {
            field: field.into(),
            message: message.into(),
        };
        let err = ApiError::Invalid {
            target: ErrorTarget::new("example.com", "Gadget", "g1"),
            causes: vec![
                cause("spec.replicas", "Invalid value: \"object\": too many"),
                cause("spec", "Forbidden: owner must name a team"),
                cause("spec.mode", "Required value: mode is required"),
                cause("spec.ports[1]", "Duplicate value: \"object\""),
            ],
        };
        let status = err.status();
        let reasons: Vec<&str> = status["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            reasons,
            [
                "FieldValueInvalid",
                "FieldValueForbidden",
                "FieldValueRequired",
                "FieldValueDuplicate"
            ]
        );
        assert_eq!(status["code"], 422);
    }

    #[test]
    fn conflict_message_names_group_qualified_resource() {
        let err = ApiError::Conflict {
            target: ErrorTarget::new("example.com", "widgets", "a"),
            message: "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        };
        assert!(
            err.to_string()
                .starts_with("Operation cannot be fulfilled on widgets.example.com \"a\"")
        );
        assert_eq!(err.code(), 409);
    }
}
