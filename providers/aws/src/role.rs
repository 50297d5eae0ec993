//! Pure conversion between the IAM Role spec and what IAM reports: the trust policy (given, or
//! built for a Kubernetes ServiceAccount), policy-document equivalence, drift, validation and
//! connection details. No SDK calls, no I/O.
//!
//! Policy documents are compared by meaning, not by text: IAM returns them re-serialized (and,
//! on the wire, URL-encoded), and `"Action": "s3:GetObject"` means the same as
//! `"Action": ["s3:GetObject"]`. [`normalize`] is the equivalence used; it is hand-written
//! because no maintained crate implements IAM policy equivalence. Not covered: condition values
//! written as booleans versus strings, and principals written as an account id versus its root
//! ARN — such spellings are reported as drift and rewritten to the spec's spelling.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use strata_provider::ConnectionDetails;

use crate::convert::InvalidParameter;
use crate::crd::{RoleObservation, RoleParameters, ServiceAccountTrust};

/// The audience a ServiceAccount token for AWS carries unless the spec says otherwise.
pub(crate) const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// The connection-detail key of the role's ARN.
pub(crate) const ROLE_ARN_KEY: &str = "roleArn";

/// The IAM state Strata compares against, extracted once from GetRole and the inline policies.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ObservedRole {
    pub(crate) arn: String,
    pub(crate) role_id: String,
    pub(crate) path: String,
    pub(crate) description: Option<String>,
    /// The trust policy, parsed; `Null` when IAM returned none or an unreadable one.
    pub(crate) assume_role_policy: Value,
    pub(crate) tags: BTreeMap<String, String>,
    /// Inline policies by name, parsed.
    pub(crate) inline_policies: BTreeMap<String, Value>,
}

impl ObservedRole {
    /// `status.atProvider`.
    pub(crate) fn at_provider(&self) -> RoleObservation {
        RoleObservation {
            arn: self.arn.clone(),
            role_id: self.role_id.clone(),
        }
    }
}

/// Everything that differs between the spec and IAM.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RoleDrift {
    /// The trust policy to set (serialized), when it differs.
    pub(crate) assume_role_policy: Option<String>,
    /// The description to set, when it differs.
    pub(crate) description: Option<String>,
    pub(crate) tags_to_add: BTreeMap<String, String>,
    pub(crate) tags_to_remove: Vec<String>,
    /// Inline policies to put (serialized), by name.
    pub(crate) policies_to_put: BTreeMap<String, String>,
    pub(crate) policies_to_delete: Vec<String>,
    /// Spec fields that differ but IAM cannot change in place.
    pub(crate) immutable: Vec<&'static str>,
}

impl RoleDrift {
    pub(crate) fn is_empty(&self) -> bool {
        *self == RoleDrift::default()
    }
}

/// Parses a policy document IAM returned: plain JSON, or URL-encoded JSON as the IAM query API
/// sends it. `Null` when neither parses.
pub fn decode_policy(raw: &str) -> Value {
    if let Ok(value) = serde_json::from_str(raw) {
        return value;
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .and_then(|decoded| serde_json::from_str(&decoded).ok())
        .unwrap_or(Value::Null)
}

/// A policy document from the spec: a JSON object, or a string holding one.
pub(crate) fn policy_document(
    field: &'static str,
    value: &Value,
) -> Result<Value, InvalidParameter> {
    let document = match value {
        Value::String(text) => serde_json::from_str(text).map_err(|error| InvalidParameter {
            field,
            problem: format!("not a JSON policy document: {error}"),
        })?,
        other => other.clone(),
    };
    if !document.is_object() || document.get("Statement").is_none() {
        return Err(InvalidParameter {
            field,
            problem: "a policy document is a JSON object with a `Statement`".into(),
        });
    }
    Ok(document)
}

/// The trust policy letting one ServiceAccount assume the role with its OIDC token:
/// `sts:AssumeRoleWithWebIdentity` from the OIDC provider, with `ISSUER:sub` and `ISSUER:aud`
/// conditions (ISSUER is the provider ARN's part after `oidc-provider/`, as IAM expects).
pub(crate) fn service_account_trust_policy(
    trust: &ServiceAccountTrust,
) -> Result<Value, InvalidParameter> {
    let issuer = oidc_issuer(&trust.oidc_provider_arn).ok_or_else(|| InvalidParameter {
        field: "trustServiceAccount.oidcProviderArn",
        problem: format!(
            "`{}` is not an IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/ISSUER)",
            trust.oidc_provider_arn
        ),
    })?;
    for (field, value) in [
        ("trustServiceAccount.namespace", &trust.namespace),
        ("trustServiceAccount.serviceAccount", &trust.service_account),
    ] {
        if value.trim().is_empty() {
            return Err(InvalidParameter {
                field,
                problem: "must not be empty".into(),
            });
        }
    }
    let audience = trust.audience.as_deref().unwrap_or(DEFAULT_AUDIENCE);
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": trust.oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer}:sub"): format!("system:serviceaccount:{}:{}", trust.namespace, trust.service_account),
                format!("{issuer}:aud"): audience,
            }},
        }],
    }))
}

/// `host/path` of `arn:PARTITION:iam::ACCOUNT:oidc-provider/host/path`.
pub(crate) fn oidc_issuer(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_word, _partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if arn_word != "arn" || service != "iam" || !region.is_empty() || !valid_account {
        return None;
    }
    resource
        .strip_prefix("oidc-provider/")
        .filter(|issuer| !issuer.is_empty())
}

/// The trust policy the spec asks for.
pub(crate) fn desired_trust_policy(params: &RoleParameters) -> Result<Value, InvalidParameter> {
    match (&params.assume_role_policy, &params.trust_service_account) {
        (Some(policy), None) => policy_document("assumeRolePolicy", policy),
        (None, Some(trust)) => service_account_trust_policy(trust),
        (Some(_), Some(_)) => Err(InvalidParameter {
            field: "assumeRolePolicy",
            problem: "set either assumeRolePolicy or trustServiceAccount, not both".into(),
        }),
        (None, None) => Err(InvalidParameter {
            field: "assumeRolePolicy",
            problem: "a role needs a trust policy: set assumeRolePolicy or trustServiceAccount"
                .into(),
        }),
    }
}

/// The inline policies the spec asks for, parsed.
pub(crate) fn desired_inline_policies(
    params: &RoleParameters,
) -> Result<Option<BTreeMap<String, Value>>, InvalidParameter> {
    let Some(policies) = &params.inline_policies else {
        return Ok(None);
    };
    policies
        .iter()
        .map(|(name, document)| {
            if !valid_name(name, 128) {
                return Err(InvalidParameter {
                    field: "inlinePolicies",
                    problem: format!(
                        "`{name}` is not a policy name (1 to 128 of letters, digits and +=,.@_-)"
                    ),
                });
            }
            Ok((name.clone(), policy_document("inlinePolicies", document)?))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// IAM's name alphabet: letters, digits and `+=,.@_-`.
fn valid_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Rejects what IAM would reject, before any call.
pub(crate) fn validate(role_name: &str, params: &RoleParameters) -> Result<(), InvalidParameter> {
    if !valid_name(role_name, 64) {
        return Err(InvalidParameter {
            field: "metadata.annotations[strata.dev/external-name]",
            problem: format!(
                "`{role_name}` is not a role name (1 to 64 of letters, digits and +=,.@_-)"
            ),
        });
    }
    desired_trust_policy(params)?;
    desired_inline_policies(params)?;
    if let Some(path) = &params.path
        && !(path.starts_with('/') && path.ends_with('/') && path.len() <= 512)
    {
        return Err(InvalidParameter {
            field: "path",
            problem: format!("`{path}` must start and end with `/`"),
        });
    }
    if let Some(description) = &params.description
        && description.chars().count() > 1000
    {
        return Err(InvalidParameter {
            field: "description",
            problem: "longer than 1000 characters".into(),
        });
    }
    if params.tags.as_ref().is_some_and(|tags| tags.len() > 50) {
        return Err(InvalidParameter {
            field: "tags",
            problem: "IAM allows at most 50 tags".into(),
        });
    }
    Ok(())
}

/// A policy document in a canonical form: every array's elements normalized, sorted and
/// deduplicated, and a one-element array replaced by its element. Two documents IAM treats the
/// same compare equal after this (see the module doc for what is not covered).
pub(crate) fn normalize(document: &Value) -> Value {
    match document {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), normalize(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            let mut normalized: Vec<Value> = items.iter().map(normalize).collect();
            normalized.sort_by_cached_key(Value::to_string);
            normalized.dedup();
            if normalized.len() == 1 {
                normalized.pop().unwrap_or(Value::Null)
            } else {
                Value::Array(normalized)
            }
        }
        other => other.clone(),
    }
}

/// Whether IAM would treat the two documents the same.
pub(crate) fn equivalent(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

/// Compares only what the spec sets; unset optional fields are IAM's.
pub(crate) fn drift(
    params: &RoleParameters,
    observed: &ObservedRole,
) -> Result<RoleDrift, InvalidParameter> {
    let mut drift = RoleDrift::default();
    let trust = desired_trust_policy(params)?;
    if !equivalent(&trust, &observed.assume_role_policy) {
        drift.assume_role_policy = Some(trust.to_string());
    }
    if let Some(description) = &params.description
        && observed.description.as_ref() != Some(description)
    {
        drift.description = Some(description.clone());
    }
    if params.path.as_deref().unwrap_or("/") != observed.path {
        drift.immutable.push("path");
    }
    if let Some(tags) = &params.tags {
        drift.tags_to_add = tags
            .iter()
            .filter(|(key, value)| observed.tags.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        drift.tags_to_remove = observed
            .tags
            .keys()
            .filter(|key| !tags.contains_key(*key))
            .cloned()
            .collect();
    }
    if let Some(policies) = desired_inline_policies(params)? {
        drift.policies_to_put = policies
            .iter()
            .filter(|(name, document)| {
                !observed
                    .inline_policies
                    .get(*name)
                    .is_some_and(|found| equivalent(document, found))
            })
            .map(|(name, document)| (name.clone(), document.to_string()))
            .collect();
        drift.policies_to_delete = observed
            .inline_policies
            .keys()
            .filter(|name| !policies.contains_key(*name))
            .cloned()
            .collect();
    }
    Ok(drift)
}

/// `roleArn`: what a workload needs to assume the role (no secret).
pub(crate) fn connection_details(observed: &ObservedRole) -> ConnectionDetails {
    ConnectionDetails::from([(ROLE_ARN_KEY.to_owned(), observed.arn.clone())])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/127.0.0.1:6443";

    fn trust() -> ServiceAccountTrust {
        ServiceAccountTrust {
            oidc_provider_arn: PROVIDER.into(),
            namespace: "shop".into(),
            service_account: "orders".into(),
            audience: None,
        }
    }

    fn read_policy() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}]})
    }

    fn desired() -> RoleParameters {
        RoleParameters {
            trust_service_account: Some(trust()),
            inline_policies: Some(BTreeMap::from([("read".into(), read_policy())])),
            description: Some("orders".into()),
            tags: Some(BTreeMap::from([("team".into(), "orders".into())])),
            ..Default::default()
        }
    }

    fn observed() -> ObservedRole {
        ObservedRole {
            arn: "arn:aws:iam::123456789012:role/orders".into(),
            role_id: "AROA1".into(),
            path: "/".into(),
            description: Some("orders".into()),
            assume_role_policy: service_account_trust_policy(&trust()).unwrap(),
            tags: BTreeMap::from([("team".into(), "orders".into())]),
            inline_policies: BTreeMap::from([("read".into(), read_policy())]),
        }
    }

    #[test]
    fn service_account_trust_names_the_subject_and_audience_under_the_issuer() {
        let policy = service_account_trust_policy(&trust()).unwrap();
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(statement["Principal"]["Federated"], PROVIDER);
        let conditions = &statement["Condition"]["StringEquals"];
        assert_eq!(
            conditions["127.0.0.1:6443:sub"],
            "system:serviceaccount:shop:orders"
        );
        assert_eq!(conditions["127.0.0.1:6443:aud"], "sts.amazonaws.com");
    }

    #[test]
    fn an_arn_that_is_not_an_oidc_provider_is_rejected_by_field() {
        for (arn, reason) in [
            ("arn:aws:iam::123456789012:role/x", "a role ARN"),
            ("arn:aws:iam::1234:oidc-provider/issuer", "a short account"),
            ("arn:aws:iam::123456789012:oidc-provider/", "no issuer"),
            ("oidc-provider/issuer", "not an ARN"),
        ] {
            let mut bad = trust();
            bad.oidc_provider_arn = arn.into();
            let error = service_account_trust_policy(&bad).unwrap_err();
            assert_eq!(
                error.field, "trustServiceAccount.oidcProviderArn",
                "{reason}"
            );
        }
        assert_eq!(
            oidc_issuer("arn:aws-cn:iam::123456789012:oidc-provider/oidc.eks.example/id/AB"),
            Some("oidc.eks.example/id/AB"),
            "other partitions and issuer paths are accepted"
        );
    }

    #[test]
    fn matching_role_has_no_drift() {
        assert_eq!(
            drift(&desired(), &observed()).unwrap(),
            RoleDrift::default()
        );
    }

    #[test]
    fn policies_differing_only_in_spelling_are_equivalent() {
        let a = json!({"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["b", "a"]}});
        let b = json!({"Statement": [{"Resource": ["a", "b", "a"], "Action": ["s3:GetObject"], "Effect": "Allow"}]});
        assert!(equivalent(&a, &b));
        let c = json!({"Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["a", "b"]}]});
        assert!(
            !equivalent(&a, &c),
            "a different action is a different policy"
        );
    }

    #[test]
    fn url_encoded_documents_from_iam_are_decoded() {
        let encoded = "%7B%22Statement%22%3A%5B%5D%2C%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(
            decode_policy(encoded),
            json!({"Statement": [], "Version": "2012-10-17"})
        );
        assert_eq!(decode_policy("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(decode_policy("%7Bnot json"), Value::Null);
    }

    #[test]
    fn changed_trust_policy_inline_policies_and_tags_are_drift() {
        let mut found = observed();
        found.assume_role_policy["Statement"][0]["Condition"]["StringEquals"]["127.0.0.1:6443:sub"] =
            json!("system:serviceaccount:shop:intruder");
        found.inline_policies.insert("stale".into(), read_policy());
        found.inline_policies.insert(
            "read".into(),
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
        );
        found.tags.insert("extra".into(), "x".into());
        found.description = None;
        let drift = drift(&desired(), &found).unwrap();
        assert!(
            drift
                .assume_role_policy
                .as_deref()
                .is_some_and(|policy| policy.contains("system:serviceaccount:shop:orders")),
            "the trust policy is rewritten to the spec's subject"
        );
        assert_eq!(
            drift.policies_to_put.keys().collect::<Vec<_>>(),
            vec!["read"]
        );
        assert_eq!(drift.policies_to_delete, vec!["stale".to_owned()]);
        assert_eq!(drift.tags_to_remove, vec!["extra".to_owned()]);
        assert_eq!(drift.description.as_deref(), Some("orders"));
        assert!(drift.immutable.is_empty());
    }

    #[test]
    fn unset_inline_policies_tags_and_description_are_not_drift() {
        let mut wanted = desired();
        wanted.inline_policies = None;
        wanted.tags = None;
        wanted.description = None;
        let mut found = observed();
        found.inline_policies.insert("other".into(), read_policy());
        found.tags.insert("other".into(), "x".into());
        assert!(drift(&wanted, &found).unwrap().is_empty());
    }

    #[test]
    fn a_different_path_is_immutable_drift() {
        let mut wanted = desired();
        wanted.path = Some("/apps/".into());
        assert_eq!(drift(&wanted, &observed()).unwrap().immutable, vec!["path"]);
    }

    #[test]
    fn validate_rejects_what_iam_would_reject_and_names_the_field() {
        assert_eq!(validate("orders", &desired()), Ok(()));
        type Breaker = fn(&mut RoleParameters);
        let cases: [(Breaker, &str, &str); 6] = [
            (
                |p| p.trust_service_account = None,
                "assumeRolePolicy",
                "no trust policy",
            ),
            (
                |p| p.assume_role_policy = Some(json!({"Statement": []})),
                "assumeRolePolicy",
                "both trust forms",
            ),
            (
                |p| {
                    p.trust_service_account = None;
                    p.assume_role_policy = Some(json!("{not json"));
                },
                "assumeRolePolicy",
                "a string that is not JSON",
            ),
            (
                |p| p.inline_policies = Some(BTreeMap::from([("read".into(), json!([1]))])),
                "inlinePolicies",
                "a document that is not an object",
            ),
            (
                |p| p.inline_policies = Some(BTreeMap::from([("bad name".into(), read_policy())])),
                "inlinePolicies",
                "a policy name with a space",
            ),
            (
                |p| p.path = Some("apps".into()),
                "path",
                "a path without slashes",
            ),
        ];
        for (break_it, field, reason) in cases {
            let mut params = desired();
            break_it(&mut params);
            let error = validate("orders", &params).unwrap_err();
            assert_eq!(error.field, field, "{reason}: {error}");
        }
        assert!(
            validate("bad/name", &desired()).is_err(),
            "a role name with a slash"
        );
        let mut as_string = desired();
        as_string.trust_service_account = None;
        as_string.assume_role_policy = Some(json!(read_policy().to_string()));
        assert_eq!(
            validate("orders", &as_string),
            Ok(()),
            "a policy may be a JSON string"
        );
    }

    #[test]
    fn connection_details_carry_only_the_role_arn() {
        assert_eq!(
            connection_details(&observed()),
            ConnectionDetails::from([(
                "roleArn".to_owned(),
                "arn:aws:iam::123456789012:role/orders".to_owned()
            )])
        );
    }
}
