//! Admission of incoming objects: what the server checks and fills in before a write, per kind.
//!
//! CRDs are checked for the fields that define a resource and get their `Established` and
//! `NamesAccepted` status here; custom objects are validated against their version's schema at
//! the single call site [`admit_custom_object`]. Secrets and ConfigMaps get the two rules of
//! kube-apiserver that change what clients read back: `stringData` is folded into `data`
//! ([`fold_string_data`]) and `immutable: true` freezes the payload ([`check_immutable`]).

use serde_json::{Value, json};
use strata_schema::pointer::Pointer;

use crate::error::{ApiError, ErrorTarget, FieldCause};
use crate::resource::ResourceType;

fn invalid(target: &ErrorTarget, field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        target: target.clone(),
        causes: vec![FieldCause {
            field: field.into(),
            message: message.into(),
        }],
    }
}

/// Checks a CRD defines a servable resource and fills its status as kube-apiserver reports it.
pub(crate) fn admit_crd(crd: &mut Value, previous: Option<&Value>) -> Result<(), ApiError> {
    let name = crate::object::name(crd).to_owned();
    let target = ErrorTarget::new(
        crate::resource::CRD_GROUP,
        "CustomResourceDefinition",
        &name,
    );
    let text = |p: &str| {
        crd.at(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    if group.is_empty() {
        return Err(invalid(&target, "spec.group", "Required value"));
    }
    if plural.is_empty() {
        return Err(invalid(&target, "spec.names.plural", "Required value"));
    }
    if text("/spec/names/kind").is_empty() {
        return Err(invalid(&target, "spec.names.kind", "Required value"));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            &target,
            "metadata.name",
            "Invalid value: must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = text("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        return Err(invalid(
            &target,
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = crd
        .at("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            &target,
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&str> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if storage.len() != 1 {
        return Err(invalid(
            &target,
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.at("/schema/openAPIV3Schema")
            && let Err(message) = crate::validation::compile_schema(schema)
        {
            return Err(invalid(
                &target,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                &message,
            ));
        }
    }
    crate::cel::admit_crd_rules(&versions, &target)?;
    let stored: Vec<Value> = {
        let mut s: Vec<Value> = previous
            .and_then(|p| p.at("/status/storedVersions"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !s.iter().any(|v| v.as_str() == Some(storage[0])) {
            s.push(json!(storage[0]));
        }
        s
    };
    let since = |condition: &str| -> String {
        previous
            .and_then(|p| p.at("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(condition))
            })
            .and_then(|c| c.get("lastTransitionTime").and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(crate::object::now)
    };
    let accepted_names = crd.at("/spec/names").cloned().unwrap_or_else(|| json!({}));
    crd["status"] = json!({
        "acceptedNames": accepted_names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "storedVersions": stored,
    });
    Ok(())
}

/// Validates and defaults a custom object against the schema of the version it was sent in.
/// With `strict` (`fieldValidation=Strict`), fields the schema does not know are an error
/// instead of being pruned; with `warnings` (`Warn`) they are pruned and named there.
/// `old` is the stored object on update, for the CEL rules' `oldSelf`.
pub(crate) fn admit_custom_object(
    rt: &ResourceType,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
    strict: bool,
    warnings: Option<&crate::validation::Warnings>,
) -> Result<(), ApiError> {
    let Some(served) = rt.version(version) else {
        return Ok(());
    };
    let Some(schema) = served.compiled.as_ref() else {
        return Ok(());
    };
    let target = ErrorTarget::new(&rt.group, &rt.kind, crate::object::name(obj));
    let checked = crate::validation::validate_and_default(schema, obj);
    let pruned = crate::cel::admit(&served.cel, obj, old, checked, warnings)
        .map_err(|causes| ApiError::Invalid { target, causes })?;
    if strict && !pruned.is_empty() {
        let unknown: Vec<String> = pruned
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(ApiError::BadRequest(format!(
            "{} in version \"{version}\" cannot be handled as a {}: strict decoding error: {}",
            rt.kind,
            rt.kind,
            unknown.join(", ")
        )));
    }
    if let Some(warnings) = warnings {
        warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
    }
    Ok(())
}

/// Checks the byte fields of a Secret (`data`) or ConfigMap (`binaryData`) hold base64, as
/// kube-apiserver's decoding of the request does: anything else is a 400 in its words
/// (`Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3`),
/// never stored for a reader to fail on.
pub(crate) fn check_base64(obj: &Value, kind: &str, field: &str) -> Result<(), ApiError> {
    use base64::Engine;
    let Some(Value::Object(entries)) = obj.get(field) else {
        return Ok(());
    };
    let refused = |why: String| {
        ApiError::BadRequest(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {why}"
        ))
    };
    for value in entries.values() {
        match value {
            Value::String(text) => {
                if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
                    let at = match e {
                        base64::DecodeError::InvalidByte(at, _)
                        | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                        _ => text.len(),
                    };
                    return Err(refused(format!("illegal base64 data at input byte {at}")));
                }
            }
            Value::Null => {}
            other => {
                let found = match other {
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::Array(_) => "array",
                    _ => "object",
                };
                return Err(refused(format!(
                    "json: cannot unmarshal {found} into Go struct field {kind}.{field} of type []uint8"
                )));
            }
        }
    }
    Ok(())
}

/// Folds a Secret's `stringData` into `data` (base64), as kube-apiserver's conversion does:
/// `stringData` wins over `data` for the same key and is never stored or returned.
pub(crate) fn fold_string_data(secret: &mut Value, target: &ErrorTarget) -> Result<(), ApiError> {
    use base64::Engine;
    let Value::Object(obj) = secret else {
        return Ok(());
    };
    let Some(string_data) = obj.remove("stringData") else {
        return Ok(());
    };
    let entries = match string_data {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => {
            return Err(invalid(
                target,
                "stringData",
                &format!("Invalid value: {other}: must be a map of strings"),
            ));
        }
    };
    let mut encoded = serde_json::Map::new();
    for (key, value) in entries {
        let text = match value {
            Value::String(text) => text,
            other => {
                return Err(invalid(
                    target,
                    &format!("stringData[{key}]"),
                    &format!("Invalid value: {other}: must be a string"),
                ));
            }
        };
        encoded.insert(
            key,
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
    if encoded.is_empty() {
        return Ok(());
    }
    match obj.get_mut("data") {
        Some(Value::Object(data)) => data.extend(encoded),
        _ => {
            obj.insert("data".into(), Value::Object(encoded));
        }
    }
    Ok(())
}

/// The payload fields `immutable: true` freezes, per kind (Secrets' `stringData` is folded into
/// `data` before this check, so a change made through it shows as a change of `data`).
pub(crate) fn immutable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "ConfigMap" => &["data", "binaryData"],
        "Secret" => &["data"],
        _ => &[],
    }
}

/// Rejects an update of an `immutable: true` ConfigMap or Secret that changes its payload or
/// unsets `immutable`, with one cause per changed field, as kube-apiserver does.
/// An absent map and an empty one are the same payload.
pub(crate) fn check_immutable(
    kind: &str,
    old: &Value,
    new: &Value,
    target: &ErrorTarget,
) -> Result<(), ApiError> {
    let frozen = immutable_fields(kind);
    if frozen.is_empty() || old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    const MESSAGE: &str = "Forbidden: field is immutable when `immutable` is set";
    let payload = |obj: &Value, field: &str| match obj.get(field) {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(v) => v.clone(),
    };
    let mut causes = Vec::new();
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(FieldCause {
            field: "immutable".into(),
            message: MESSAGE.into(),
        });
    }
    for field in frozen {
        if payload(old, field) != payload(new, field) {
            causes.push(FieldCause {
                field: (*field).into(),
                message: MESSAGE.into(),
            });
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        target: target.clone(),
        causes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}})
    }

    #[test]
    fn an_admitted_crd_is_established_with_its_storage_version_recorded() {
        let mut c = crd();
        admit_crd(&mut c, None).unwrap();
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn a_crd_whose_name_is_not_plural_dot_group_is_invalid() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widget.example.com");
        let err = admit_crd(&mut c, None).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("metadata.name"), "{err}");
    }

    #[test]
    fn readmitting_keeps_condition_transition_times() {
        let mut c = crd();
        admit_crd(&mut c, None).unwrap();
        let mut again = c.clone();
        admit_crd(&mut again, Some(&c)).unwrap();
        assert_eq!(again["status"], c["status"]);
    }

    fn gadgets() -> ResourceType {
        ResourceType::from_crd(&json!({"metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object",
                    "x-kubernetes-validations": [{"rule": "self.replicas <= self.max", "message": "replicas above max"}],
                    "properties": {"replicas": {"type": "integer", "maximum": 100},
                        "max": {"type": "integer", "default": 3}}}}}}}]}}))
        .unwrap()
    }

    fn causes(rt: &ResourceType, spec: Value, old: Option<Value>) -> Vec<String> {
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec});
        let old = old.map(|s| json!({"spec": s}));
        match admit_custom_object(rt, "v1", &mut obj, old.as_ref(), false, None) {
            Ok(()) => Vec::new(),
            Err(ApiError::Invalid { causes, .. }) => causes
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn validation_rules_run_after_defaults_and_beside_non_blocking_schema_errors() {
        let rt = gadgets();
        assert!(
            causes(&rt, json!({"replicas": 3}), None).is_empty(),
            "default max 3"
        );
        assert_eq!(
            causes(&rt, json!({"replicas": 4}), None),
            ["spec: Invalid value: \"object\": replicas above max"]
        );
        // A bound violated: the rules still run, as in kube-apiserver.
        let both = causes(&rt, json!({"replicas": 101}), None);
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(
            both[0].starts_with("spec.replicas: Invalid value: 101"),
            "{both:?}"
        );
        assert_eq!(
            both[1],
            "spec: Invalid value: \"object\": replicas above max"
        );
        // A wrong type blocks them, with the error saying so.
        let blocked = causes(&rt, json!({"replicas": "many"}), None);
        assert_eq!(
            blocked.last().map(String::as_str),
            Some(
                "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
            ),
            "{blocked:?}"
        );
        // An update that leaves a failing value as it was is not refused (ratcheting).
        assert!(
            causes(
                &rt,
                json!({"replicas": 4}),
                Some(json!({"replicas": 4, "max": 3}))
            )
            .is_empty()
        );
    }

    fn secret_target() -> ErrorTarget {
        ErrorTarget::new("", "Secret", "db")
    }

    #[test]
    fn string_data_is_encoded_into_data_and_wins_over_data_for_the_same_key() {
        let mut s = json!({"data": {"user": "b2xk", "keep": "a2VlcA=="},
            "stringData": {"user": "admin", "password": "s3cr3t"}});
        fold_string_data(&mut s, &secret_target()).unwrap();
        assert_eq!(
            s,
            json!({"data": {"user": "YWRtaW4=", "keep": "a2VlcA==", "password": "czNjcjN0"}})
        );
    }

    #[test]
    fn a_secret_with_only_string_data_gets_data_and_a_null_string_data_is_dropped() {
        let mut s = json!({"stringData": {"k": "v"}});
        fold_string_data(&mut s, &secret_target()).unwrap();
        assert_eq!(s, json!({"data": {"k": "dg=="}}));
        let mut n = json!({"stringData": null, "data": {"k": "dg=="}});
        fold_string_data(&mut n, &secret_target()).unwrap();
        assert_eq!(n, json!({"data": {"k": "dg=="}}));
    }

    #[test]
    fn a_string_data_value_that_is_not_a_string_is_invalid_naming_its_key() {
        let mut s = json!({"stringData": {"port": 5432}});
        let err = fold_string_data(&mut s, &secret_target()).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("stringData[port]"), "{err}");
    }

    #[test]
    fn immutable_payloads_reject_changes_field_by_field() {
        let t = ErrorTarget::new("", "ConfigMap", "settings");
        let old = json!({"immutable": true, "data": {"a": "1"}});
        // (new object, kind, fields expected in the error, why)
        let cases = [
            (
                json!({"immutable": true, "data": {"a": "1"}, "metadata": {"labels": {"x": "y"}}}),
                "ConfigMap",
                vec![],
                "metadata may change",
            ),
            (
                json!({"immutable": true, "data": {"a": "2"}}),
                "ConfigMap",
                vec!["data"],
                "data changed",
            ),
            (
                json!({"immutable": true, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}),
                "ConfigMap",
                vec!["binaryData"],
                "binaryData added",
            ),
            (
                json!({"immutable": false, "data": {"a": "1"}}),
                "ConfigMap",
                vec!["immutable"],
                "immutable unset",
            ),
            (
                json!({"data": {}}),
                "ConfigMap",
                vec!["immutable", "data"],
                "both",
            ),
            (
                json!({"immutable": true, "data": {"a": "2"}}),
                "Secret",
                vec!["data"],
                "a secret's data",
            ),
            (
                json!({"data": {"a": "2"}}),
                "Namespace",
                vec![],
                "other kinds have no immutable payload",
            ),
        ];
        for (new, kind, want, why) in cases {
            let got: Vec<String> = match check_immutable(kind, &old, &new, &t) {
                Ok(()) => Vec::new(),
                Err(ApiError::Invalid { causes, .. }) => {
                    causes.into_iter().map(|c| c.field).collect()
                }
                Err(other) => panic!("{why}: unexpected {other}"),
            };
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn a_mutable_object_may_become_immutable_and_change_in_the_same_write() {
        let t = ErrorTarget::new("", "ConfigMap", "settings");
        let old = json!({"data": {"a": "1"}});
        let new = json!({"immutable": true, "data": {"a": "2"}});
        check_immutable("ConfigMap", &old, &new, &t).unwrap();
        let absent = json!({"immutable": true});
        let empty = json!({"immutable": true, "data": {}});
        check_immutable("ConfigMap", &absent, &empty, &t).unwrap();
    }
}
