//! Object metadata the server owns: identity, timestamps, names and their validation.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorTarget, FieldCause};

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` suffix: five characters from kube-apiserver's alphabet.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes: [u8; 5] = rand::random();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
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

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or_default()
}

pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
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

pub fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

pub fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let m = meta_mut(obj);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
}

/// Owner references as (uid, blockOwnerDeletion).
pub fn owner_uids(obj: &Value) -> Vec<(String, bool)> {
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

/// Checks a name as kube-apiserver does: DNS subdomain for built-ins, a path segment for custom
/// resources.
pub fn validate_name(
    name: &str,
    dns_subdomain: bool,
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
    if dns_subdomain {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok_chars || !ok_ends || name.len() > 253 {
            return Err(invalid(format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            )));
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
        assert!(validate_name("Bad", true, &t).is_err());
        assert!(validate_name("Bad", false, &t).is_ok());
        assert!(validate_name("a/b", false, &t).is_err());
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
