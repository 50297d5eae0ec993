//! API errors and their one mapping to Kubernetes `Status` responses.
//!
//! Every handler returns `Result<_, ApiError>`; the HTTP layer turns an `ApiError` into a
//! `meta/v1 Status` body exactly shaped like kube-apiserver's (kind, apiVersion, metadata, status,
//! message, reason, details, code).

use serde_json::{Value, json};

/// Names the object an error is about, for the `details` of a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTarget {
    /// The API group; "" for the core group.
    pub group: String,
    /// What `details.kind` says and the message qualifies the name with: the plural resource for
    /// lookups (`secrets "db" not found`), the kind for validation, as kube-apiserver does.
    pub kind: String,
    /// The object's name; "" when the error is about no single object.
    pub name: String,
}

impl ErrorTarget {
    /// A target from its three parts.
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
    /// The field's path, e.g. `spec.replicas` or `metadata.labels[app]`.
    pub field: String,
    /// What is wrong with it, starting with the Kubernetes cause type (`Required value`,
    /// `Unsupported value: …`), which sets the cause's `reason`.
    pub message: String,
}

/// Why a request failed. Each variant is one kube-apiserver `Status` reason and HTTP code (see
/// [`ApiError::code`] and [`ApiError::reason`]); the `Display` text is the `Status` message, worded
/// as kube-apiserver words it, since clients and tests match on it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the object does not exist.
    #[error("{} \"{}\" not found", .0.qualified_kind(), .0.name)]
    NotFound(ErrorTarget),
    /// 404: no API resource is served at the path.
    #[error("the server could not find the requested resource")]
    UnknownResource {
        /// The request path.
        path: String,
    },
    /// 409: a create named an object that exists.
    #[error("{} \"{}\" already exists", .0.qualified_kind(), .0.name)]
    AlreadyExists(ErrorTarget),
    /// 409: a write lost an optimistic-concurrency race (stale `resourceVersion`) or hit a state
    /// that forbids it (e.g. a namespace being deleted).
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", .target.qualified_kind(), .target.name)]
    Conflict {
        /// The object written.
        target: ErrorTarget,
        /// Why, e.g. "the object has been modified; please apply your changes to the latest
        /// version and try again".
        message: String,
    },
    /// 409: server-side apply would take fields another manager owns; `force` overrides.
    #[error("Apply failed with {} conflict{}: {}", .conflicts.len(), if .conflicts.len() == 1 { "" } else { "s" }, .conflicts.join("\n"))]
    ApplyConflict {
        /// The object applied.
        target: ErrorTarget,
        /// One line per conflicting field: its owner and path.
        conflicts: Vec<String>,
        /// The same conflicts as `FieldManagerConflict` causes.
        causes: Vec<FieldCause>,
    },
    /// 422: the object fails validation; one cause per bad field.
    #[error("{} \"{}\" is invalid: {}", .target.qualified_kind(), .target.name, invalid_summary(.causes))]
    Invalid {
        /// The object written.
        target: ErrorTarget,
        /// The failing fields; never empty.
        causes: Vec<FieldCause>,
    },
    /// 400: the request itself is malformed (undecodable body, bad query parameter, mismatched
    /// name or namespace).
    #[error("{0}")]
    BadRequest(String),
    /// 403 with a complete message and no target.
    #[error("{0}")]
    Forbidden(String),
    /// A 403 about one resource (authorization): the message is complete, the target fills the
    /// `details`.
    #[error("{message}")]
    ForbiddenOn {
        /// The resource the request was refused on.
        target: ErrorTarget,
        /// The complete message, naming the user and the verb.
        message: String,
    },
    /// 401: the request's credentials authenticate no one.
    #[error("Unauthorized")]
    Unauthorized,
    /// 405: the resource does not support the verb.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 415: the body's content type is not one the endpoint decodes.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType {
        /// The content types the endpoint accepts, comma-separated.
        accepted: String,
    },
    /// 413: the body exceeds the size limit.
    #[error("the request is too large: the body must be at most {limit} bytes")]
    RequestTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 410: a watch or list asked for a `resourceVersion` older than the history kept.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still kept.
        oldest: u64,
    },
    /// 410: a paginated list's continue token refers to a revision the store no longer keeps.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
    )]
    ContinueExpired,
    /// 422: the patch cannot be applied to the object (a failed JSON-patch `test`, a path that does
    /// not exist).
    #[error("{0}")]
    UnprocessablePatch(String),
    /// 500: the server failed, not the request (storage, encoding).
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
    /// The HTTP status code.
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

    /// The `Status` `reason`, the machine-readable cause clients branch on (`IsNotFound`,
    /// `IsConflict`, …).
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

/// The result of an API operation.
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
