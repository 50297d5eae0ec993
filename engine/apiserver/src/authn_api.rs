//! The authentication API: `SelfSubjectReview` (`kubectl auth whoami`), `TokenReview`, the
//! ServiceAccount `token` subresource (TokenRequest, `kubectl create token`) and the OIDC issuer
//! documents. These kinds are not stored: each request is answered from the authenticator and
//! the cluster's current objects, as kube-apiserver does.
//!
//! Parsing and checking a request body are pure functions here; the HTTP layer routes to them
//! and renders. Which user may call them is authorization's part.

use serde_json::{Value, json};

use crate::auth::{Authenticator, BoundObjects, UserInfo};
use crate::error::{ApiError, ApiResult, ErrorTarget, FieldCause};
use crate::service_account::{
    DEFAULT_EXPIRATION_SECONDS, Grant, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, ObjectRef,
};

pub(crate) const GROUP: &str = "authentication.k8s.io";
pub(crate) const VERSION: &str = "v1";
const API_VERSION: &str = "authentication.k8s.io/v1";
/// The media type kube-apiserver serves the JWKS with.
pub(crate) const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";

fn user_info(user: &UserInfo) -> Value {
    let mut v = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        v["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        v["extra"] = json!(user.extra);
    }
    v
}

fn body_object(body: &[u8], kind: &str) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the {kind} is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the {kind} must be a JSON object"
        )));
    }
    Ok(v)
}

/// The answer to a `SelfSubjectReview`: the requesting user.
pub(crate) fn self_subject_review(user: &UserInfo) -> Value {
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user_info(user)},
    })
}

/// The answer to a `TokenReview`: whether `spec.token` authenticates (for `spec.audiences`, or
/// the API server's), as whom and for which audiences.
pub(crate) fn token_review(
    authn: &Authenticator,
    objects: &dyn BoundObjects,
    body: &[u8],
    now: i64,
) -> ApiResult<Value> {
    let review = body_object(body, "TokenReview")?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("token is required for TokenReview in authentication".into())
        })?;
    let audiences = strings(
        review.pointer("/spec/audiences"),
        "spec.audiences",
        "TokenReview",
    )?;
    let status = match authn.authenticate_token(
        token,
        (!audiences.is_empty()).then_some(audiences.as_slice()),
        objects,
        now,
    ) {
        Ok(t) => {
            json!({"authenticated": true, "user": user_info(&t.user), "audiences": t.audiences})
        }
        Err(why) => json!({"user": {}, "error": why}),
    };
    let mut spec = json!({"token": token});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

fn strings(value: Option<&Value>, field: &str, kind: &str) -> ApiResult<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::BadRequest(format!("{kind} {field}: every item must be a string"))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::BadRequest(format!(
            "{kind} {field}: must be a list of strings"
        ))),
    }
}

/// A TokenRequest's spec, checked: the audiences, the lifetime (defaulted and cut to the
/// longest allowed) and the bound object, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRequestSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub bound: Option<BoundRef>,
}

/// `spec.boundObjectRef`: a Secret (the only kind this control plane serves of those a token may
/// be bound to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundRef {
    pub name: String,
    pub uid: Option<String>,
}

/// Reads a TokenRequest for ServiceAccount `name`: one `Invalid` error listing every bad field.
pub(crate) fn token_request_spec(name: &str, body: &[u8]) -> ApiResult<TokenRequestSpec> {
    let request = body_object(body, "TokenRequest")?;
    let spec = request.get("spec").cloned().unwrap_or(json!({}));
    let mut causes = Vec::new();
    let mut cause = |field: &str, message: String| {
        causes.push(FieldCause {
            field: field.to_owned(),
            message,
        })
    };
    let audiences = match strings(spec.get("audiences"), "spec.audiences", "TokenRequest") {
        Ok(a) => a,
        Err(e) => {
            cause("spec.audiences", e.to_string());
            Vec::new()
        }
    };
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => match v.as_i64() {
            Some(s) if s < MIN_EXPIRATION_SECONDS => {
                cause(
                    "spec.expirationSeconds",
                    "may not specify a duration less than 10 minutes".into(),
                );
                s
            }
            Some(s) if s > 1 << 32 => {
                cause(
                    "spec.expirationSeconds",
                    "may not specify a duration larger than 2^32 seconds".into(),
                );
                s
            }
            Some(s) => s.min(MAX_EXPIRATION_SECONDS),
            None => {
                cause(
                    "spec.expirationSeconds",
                    format!("must be an integer, not {v}"),
                );
                0
            }
        },
    };
    let bound = match spec.get("boundObjectRef") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
            match (text("kind"), text("apiVersion")) {
                ("Secret", "v1" | "") if !text("name").is_empty() => Some(BoundRef {
                    name: text("name").to_owned(),
                    uid: Some(text("uid").to_owned()).filter(|u| !u.is_empty()),
                }),
                ("Secret", "v1" | "") => {
                    cause("spec.boundObjectRef.name", "Required value".into());
                    None
                }
                ("Pod" | "Node", "v1" | "") => {
                    cause(
                        "spec.boundObjectRef.kind",
                        format!(
                            "cannot bind a token to a {}: this control plane serves no {}s; bind it to a Secret",
                            text("kind"),
                            text("kind").to_lowercase()
                        ),
                    );
                    None
                }
                (kind, api_version) => {
                    cause(
                        "spec.boundObjectRef",
                        format!("cannot bind a token to object of type {api_version}, Kind={kind}"),
                    );
                    None
                }
            }
        }
    };
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            target: ErrorTarget::new(GROUP, "TokenRequest", name),
            causes,
        });
    }
    Ok(TokenRequestSpec {
        audiences,
        expiration_seconds,
        bound,
    })
}

/// Issues a token for ServiceAccount `namespace/name`: it must exist, as must the bound Secret
/// (with the given uid, when one is given).
pub(crate) fn token_request(
    authn: &Authenticator,
    objects: &dyn BoundObjects,
    namespace: &str,
    name: &str,
    body: &[u8],
    now: i64,
) -> ApiResult<Value> {
    let spec = token_request_spec(name, body)?;
    let sa_uid = objects
        .uid("serviceaccounts", namespace, name)
        .ok_or_else(|| ApiError::NotFound(ErrorTarget::new("", "serviceaccounts", name)))?;
    let secret = match &spec.bound {
        None => None,
        Some(b) => {
            let uid = objects
                .uid("secrets", namespace, &b.name)
                .ok_or_else(|| ApiError::NotFound(ErrorTarget::new("", "secrets", &b.name)))?;
            if b.uid.as_ref().is_some_and(|want| *want != uid) {
                return Err(ApiError::Conflict {
                    target: ErrorTarget::new("", "secrets", &b.name),
                    message: format!(
                        "the UID in the bound object reference ({}) does not match the UID in record ({uid}). The object might have been deleted and then recreated",
                        b.uid.as_deref().unwrap_or_default()
                    ),
                });
            }
            Some(ObjectRef {
                name: b.name.clone(),
                uid,
            })
        }
    };
    let grant = Grant {
        namespace: namespace.to_owned(),
        service_account: ObjectRef {
            name: name.to_owned(),
            uid: sa_uid,
        },
        audiences: spec.audiences.clone(),
        expiration_seconds: spec.expiration_seconds,
        secret,
    };
    let (token, claims) = authn
        .service_accounts()
        .issue(&grant, now, uuid::Uuid::new_v4().to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let time = |secs: i64| {
        jiff::Timestamp::from_second(secs)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let mut out_spec =
        json!({"audiences": claims.aud, "expirationSeconds": spec.expiration_seconds});
    if let Some(s) = &grant.secret {
        out_spec["boundObjectRef"] =
            json!({"kind": "Secret", "apiVersion": "v1", "name": s.name, "uid": s.uid});
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": time(now)},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": time(claims.exp)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_request_specs_are_defaulted_cut_and_checked() {
        let spec = |body: &str| token_request_spec("builder", body.as_bytes());
        let s = spec("").unwrap();
        assert_eq!(s.expiration_seconds, 3600, "an hour by default");
        assert!(s.audiences.is_empty() && s.bound.is_none());
        let s = spec(
            r#"{"spec":{"audiences":["sts.amazonaws.com"],"expirationSeconds":31536000,
            "boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"db","uid":"u1"}}}"#,
        )
        .unwrap();
        assert_eq!(s.audiences, ["sts.amazonaws.com"]);
        assert_eq!(s.expiration_seconds, MAX_EXPIRATION_SECONDS, "cut to 48 h");
        assert_eq!(
            s.bound,
            Some(BoundRef {
                name: "db".into(),
                uid: Some("u1".into())
            })
        );
        // (body, field named, why)
        let cases = [
            (
                r#"{"spec":{"expirationSeconds":599}}"#,
                "spec.expirationSeconds: may not specify a duration less than 10 minutes",
                "too short",
            ),
            (
                r#"{"spec":{"expirationSeconds":"1h"}}"#,
                "spec.expirationSeconds: must be an integer",
                "not a number",
            ),
            (
                r#"{"spec":{"audiences":"x"}}"#,
                "spec.audiences",
                "not a list",
            ),
            (
                r#"{"spec":{"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"p"}}}"#,
                "serves no pods",
                "no pods here",
            ),
            (
                r#"{"spec":{"boundObjectRef":{"kind":"ConfigMap","apiVersion":"v1","name":"c"}}}"#,
                "cannot bind a token to object of type v1, Kind=ConfigMap",
                "an unbindable kind",
            ),
            (
                r#"{"spec":{"boundObjectRef":{"kind":"Secret","apiVersion":"v1"}}}"#,
                "spec.boundObjectRef.name: Required value",
                "no name",
            ),
        ];
        for (body, want, why) in cases {
            let err = spec(body).unwrap_err();
            assert_eq!(err.code(), 422, "{why}");
            let msg = err.to_string();
            assert!(
                msg.starts_with("TokenRequest.authentication.k8s.io \"builder\" is invalid")
                    && msg.contains(want),
                "{why}: {msg}"
            );
        }
        assert_eq!(spec("[1]").unwrap_err().code(), 400);
    }

    struct Objects;

    impl BoundObjects for Objects {
        fn uid(&self, resource: &str, namespace: &str, name: &str) -> Option<String> {
            match (resource, namespace, name) {
                ("serviceaccounts", "team-a", "builder") => Some("sa-1".into()),
                ("secrets", "team-a", "db") => Some("secret-1".into()),
                _ => None,
            }
        }
    }

    fn authenticator() -> Authenticator {
        let keys = [crate::service_account::StoredKey::generate(0).unwrap()];
        let issuer =
            crate::service_account::TokenIssuer::new("https://127.0.0.1:6443", &keys).unwrap();
        Authenticator::new("admin".into(), Default::default(), issuer)
    }

    #[test]
    fn a_token_request_issues_a_token_for_an_existing_account_and_bound_secret_only() {
        let a = authenticator();
        let now = 1_800_000_000;
        let body = br#"{"spec":{"audiences":["sts.amazonaws.com"],"expirationSeconds":900,
            "boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"db","uid":"secret-1"}}}"#;
        let issued = token_request(&a, &Objects, "team-a", "builder", body, now).unwrap();
        assert_eq!(issued["kind"], "TokenRequest");
        assert_eq!(issued["spec"]["boundObjectRef"]["uid"], "secret-1");
        assert_eq!(
            issued["status"]["expirationTimestamp"],
            jiff::Timestamp::from_second(now + 900)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        );
        let token = issued["status"]["token"].as_str().unwrap();
        let review = token_review(
            &a,
            &Objects,
            json!({"spec": {"token": token, "audiences": ["sts.amazonaws.com"]}})
                .to_string()
                .as_bytes(),
            now + 1,
        )
        .unwrap();
        assert_eq!(review["status"]["authenticated"], true, "{review}");
        assert_eq!(
            review["status"]["user"]["username"],
            "system:serviceaccount:team-a:builder"
        );

        let missing = token_request(&a, &Objects, "team-a", "nobody", b"", now).unwrap_err();
        assert_eq!(missing.code(), 404);
        assert_eq!(missing.to_string(), "serviceaccounts \"nobody\" not found");
        let stale = br#"{"spec":{"boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"db","uid":"old"}}}"#;
        let err = token_request(&a, &Objects, "team-a", "builder", stale, now).unwrap_err();
        assert_eq!(err.code(), 409, "a recreated Secret: {err}");
        let gone = br#"{"spec":{"boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"x"}}}"#;
        assert_eq!(
            token_request(&a, &Objects, "team-a", "builder", gone, now)
                .unwrap_err()
                .code(),
            404
        );
        let empty = token_review(&a, &Objects, br#"{"spec":{}}"#, now).unwrap_err();
        assert_eq!(empty.code(), 400);
    }

    #[test]
    fn a_self_subject_review_shows_the_user_as_kubectl_reads_it() {
        let review = self_subject_review(&UserInfo::admin());
        assert_eq!(review["status"]["userInfo"]["username"], "strata-admin");
        assert_eq!(
            review["status"]["userInfo"]["groups"],
            json!(["system:masters", "system:authenticated"])
        );
        assert!(review["status"]["userInfo"].get("uid").is_none());
    }
}
