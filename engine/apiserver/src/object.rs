//! Object metadata the server owns: identity, timestamps, names and their validation.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorTarget, FieldCause};

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` suffix: five characters from kube-apiserver's alphabet.
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes: [u8; 5] = rand::random();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub(crate) fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub(crate) fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub(crate) fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or_default()
}

pub(crate) fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

pub(crate) fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or_default()
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

pub(crate) fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let m = meta_mut(obj);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
}

/// Owner references as (uid, blockOwnerDeletion).
pub(crate) fn owner_uids(obj: &Value) -> Vec<(String, bool)> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    Some((
                        r.get("uid")?.as_str()?.to_owned(),
                        r.get("blockOwnerDeletion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Which rule a kind's object names follow in kube-apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// Custom resources: anything usable as a path segment.
    PathSegment,
    /// Most built-in kinds: a lowercase RFC 1123 subdomain (at most 253 characters).
    DnsSubdomain,
    /// Namespaces: a lowercase RFC 1123 label (at most 63 characters, no dots).
    DnsLabel,
}

/// Checks a name as kube-apiserver does for a kind following `rule`.
pub(crate) fn validate_name(
    name: &str,
    rule: NameRule,
    target: &ErrorTarget,
) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::Invalid {
        target: target.clone(),
        causes: vec![FieldCause {
            field: "metadata.name".into(),
            message,
        }],
    };
    if name.is_empty() {
        return Err(invalid(
            "Required value: name or generateName is required".into(),
        ));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Err(invalid(format!(
            "Invalid value: \"{name}\": may not contain '/' or '%' and may not be '.' or '..'"
        )));
    }
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let lower_alnum_or = |extra: &[char]| {
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
    };
    match rule {
        NameRule::PathSegment => {}
        NameRule::DnsSubdomain => {
            if !lower_alnum_or(&['-', '.']) || !ok_ends || name.len() > 253 {
                return Err(invalid(format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                )));
            }
        }
        NameRule::DnsLabel => {
            if name.len() > 63 {
                return Err(invalid(format!(
                    "Invalid value: \"{name}\": must be no more than 63 characters"
                )));
            }
            if !lower_alnum_or(&['-']) || !ok_ends {
                return Err(invalid(format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_names_are_invalid_for_built_ins_but_allowed_for_custom_resources() {
        let t = ErrorTarget::new("", "ConfigMap", "Bad");
        assert!(validate_name("Bad", NameRule::DnsSubdomain, &t).is_err());
        assert!(validate_name("Bad", NameRule::PathSegment, &t).is_ok());
        assert!(validate_name("a/b", NameRule::PathSegment, &t).is_err());
    }

    #[test]
    fn namespace_names_are_dns_labels_without_dots_and_at_most_63_characters() {
        let t = ErrorTarget::new("", "Namespace", "x");
        let (at_limit, over_limit) = ("a".repeat(63), "a".repeat(64));
        // (name, valid as a label, why)
        let cases = [
            ("team-a", true, "letters, digits and dashes"),
            (
                "a.b",
                false,
                "a dot is allowed in a subdomain, not in a label",
            ),
            (at_limit.as_str(), true, "63 characters is the limit"),
            (over_limit.as_str(), false, "64 characters is one too many"),
            ("-a", false, "must start with an alphanumeric character"),
            ("A", false, "lowercase only"),
        ];
        for (name, valid, why) in cases {
            assert_eq!(
                validate_name(name, NameRule::DnsLabel, &t).is_ok(),
                valid,
                "{why}: {name}"
            );
        }
        assert!(validate_name("a.b", NameRule::DnsSubdomain, &t).is_ok());
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
