//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
//! patch for the built-in kinds. Pure functions of (current object, patch body).

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::protobuf::{ListMerge, PatchSchema};

/// Content type of a JSON merge patch (RFC 7386).
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Content type of a JSON patch (RFC 6902).
pub const JSON_PATCH: &str = "application/json-patch+json";
/// Content type of a strategic merge patch (built-in kinds only).
pub const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
/// Content type of a server-side apply request in YAML (or JSON).
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// How a PATCH body is applied, as chosen by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// JSON merge patch: objects merge recursively, `null` deletes, lists are replaced.
    Merge,
    /// JSON patch: a list of `add`/`remove`/`replace`/`move`/`copy`/`test` operations.
    Json,
    /// Strategic merge patch: like a merge patch, but lists merge by the key the kind's schema
    /// names.
    Strategic,
    /// Server-side apply: the body is the caller's full intent for the fields it manages.
    Apply,
}

impl PatchKind {
    /// The patch kind of a `Content-Type` header (parameters ignored); `None` for anything else,
    /// which the server answers with 415 listing [`accepted_patch_types`].
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        match base {
            MERGE_PATCH => Some(PatchKind::Merge),
            JSON_PATCH => Some(PatchKind::Json),
            STRATEGIC_PATCH => Some(PatchKind::Strategic),
            APPLY_PATCH => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// The patch content types the server accepts, comma-separated, for a 415 message.
pub fn accepted_patch_types() -> String {
    [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH].join(", ")
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
}

/// Applies a merge, JSON or strategic patch to `current`, returning the patched object.
pub fn apply_patch(kind: PatchKind, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    // A patch applies to the object in the version the request speaks.
    let current = &*crate::builtin::in_labelled_version(current);
    let mut target = current.clone();
    match kind {
        PatchKind::Merge => {
            let patch = parse_json(body)?;
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "merge patch must be a JSON object".into(),
                ));
            }
            json_patch::merge(&mut target, &patch);
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding JSON patch: {e}")))?;
            for op in &patch.0 {
                // As kube-apiserver's JSON patch: testing a missing path for null succeeds.
                if let json_patch::PatchOperation::Test(test) = op
                    && test.value.is_null()
                    && test.path.resolve(&target).is_err()
                {
                    continue;
                }
                json_patch::patch(&mut target, std::slice::from_ref(op))
                    .map_err(|e| ApiError::UnprocessablePatch(e.to_string()))?;
            }
        }
        PatchKind::Strategic => {
            let patch = parse_json(body)?;
            let text = |k: &str| current.get(k).and_then(Value::as_str).unwrap_or_default();
            let schema = PatchSchema::of(text("apiVersion"), text("kind"));
            strategic_merge(&mut target, &patch, "", schema)?;
        }
        PatchKind::Apply => {
            return Err(ApiError::Internal(
                "server-side apply is not a plain patch".into(),
            ));
        }
    }
    Ok(target)
}

/// How a list field merges under strategic merge patch, as the built-in types declare it.
enum ListStrategy {
    Replace,
    MergePrimitives,
    MergeByKey(&'static str, Option<PatchSchema>),
}

/// The strategy of a list: from the kind's schema where it has one (the workload and networking
/// kinds), else the object metadata's and the remaining kinds' by path.
fn list_strategy(path: &str, field: &str, schema: Option<PatchSchema>) -> ListStrategy {
    if let Some(schema) = schema {
        return match schema.list(field) {
            ListMerge::Replace => ListStrategy::Replace,
            ListMerge::ByKey(key, items) => ListStrategy::MergeByKey(key, Some(items)),
        };
    }
    match path {
        "/metadata/finalizers" => ListStrategy::MergePrimitives,
        "/metadata/ownerReferences" => ListStrategy::MergeByKey("uid", None),
        "/secrets" | "/imagePullSecrets" => ListStrategy::MergeByKey("name", None),
        _ => ListStrategy::Replace,
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Strategic merge patch over maps and the list strategies of the built-in kinds served here.
fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    path: &str,
    schema: Option<PatchSchema>,
) -> Result<(), ApiError> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get(DIRECTIVE).and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove(DIRECTIVE);
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::UnprocessablePatch(format!(
                "{path}: unknown patch directive `$patch: {other}`"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(list_key) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target_map.get_mut(list_key) {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        let child_path = format!("{path}/{key}");
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(m) if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") => {
                target_map.remove(key);
            }
            Value::Object(_) => {
                let entry = target_map
                    .entry(key.clone())
                    .or_insert(Value::Object(Map::new()));
                strategic_merge(entry, value, &child_path, schema.and_then(|s| s.field(key)))?;
            }
            Value::Array(items) => {
                let strategy = list_strategy(&child_path, key, schema);
                let merged = merge_list(target_map.get(key), items, &child_path, strategy)?;
                target_map.insert(key.clone(), merged);
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(retain) = patch_map.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| {
                ApiError::UnprocessablePatch(format!(
                    "{path}: $retainKeys must be a list of field names"
                ))
            })?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target_map.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(
    current: Option<&Value>,
    patch: &[Value],
    path: &str,
    strategy: ListStrategy,
) -> Result<Value, ApiError> {
    let current = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match strategy {
        ListStrategy::Replace => {
            if patch.iter().any(|i| i.get(DIRECTIVE).is_some()) {
                return Err(ApiError::UnprocessablePatch(format!(
                    "{path}: `$patch` directives are not supported in this list, it is replaced as a whole"
                )));
            }
            Ok(Value::Array(patch.to_vec()))
        }
        ListStrategy::MergePrimitives => {
            let mut out = current;
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::MergeByKey(merge_key, items) => {
            let mut out = current;
            for item in patch {
                let key = item.get(merge_key).cloned().ok_or_else(|| {
                    ApiError::UnprocessablePatch(format!(
                        "{path}: list item has no merge key `{merge_key}`"
                    ))
                })?;
                let pos = out.iter().position(|o| o.get(merge_key) == Some(&key));
                let delete = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => strategic_merge(&mut out[i], item, path, items)?,
                    (None, false) => out.push(item.clone()),
                }
            }
            Ok(Value::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_operation_failure_is_unprocessable() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        let patch = br#"[{"op":"test","path":"/metadata/finalizers","value":["b"]},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        let err = apply_patch(PatchKind::Json, &obj, patch).unwrap_err();
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn json_patch_test_for_null_passes_on_a_missing_path_like_kube_apiserver() {
        let patch = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        let out = apply_patch(PatchKind::Json, &json!({"metadata": {}}), patch).unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["f"]}}));
    }

    #[test]
    fn merge_patch_null_removes_a_key() {
        let obj = json!({"data": {"a": "1", "b": "2"}});
        let out = apply_patch(PatchKind::Merge, &obj, br#"{"data":{"a":null}}"#).unwrap();
        assert_eq!(out, json!({"data": {"b": "2"}}));
    }

    #[test]
    fn strategic_patch_merges_finalizers_and_replaces_other_lists() {
        let obj = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}}, "list": [1, 2]});
        let patch = br#"{"metadata":{"finalizers":["b"],"labels":{"y":"2"}},"list":[3]}"#;
        let out = apply_patch(PatchKind::Strategic, &obj, patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "list": [3]})
        );
    }

    #[test]
    fn strategic_patch_directives_delete_and_retain_keys() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}, "data": {"k": "v", "j": "w"}, "spec": {"x": 1, "y": 2}});
        let patch = br#"{"$deleteFromPrimitiveList/finalizers":["a"],"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]},"data":{"$patch":"delete"},"spec":{"$retainKeys":["x"],"x":3}}"#;
        let out = apply_patch(PatchKind::Strategic, &obj, patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"x": 3}})
        );
    }

    #[test]
    fn unknown_strategic_directive_is_rejected() {
        let err = apply_patch(
            PatchKind::Strategic,
            &json!({}),
            br#"{"spec":{"$patch":"explode"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn strategic_patch_merges_a_deployments_containers_by_name_and_ports_by_container_port() {
        let current = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["a"]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "envoy"}],
                "tolerations": [{"key": "a"}]}}}});
        let patch = br#"{"metadata": {"finalizers": ["b"]}, "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"name": "nginx", "image": "nginx:1.28", "ports": [{"containerPort": 80, "name": "http"}]}],
            "tolerations": [{"key": "b"}]}}}}"#;
        let out = apply_patch(PatchKind::Strategic, &current, patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2, "{out}");
        assert_eq!(containers[0]["image"], "nginx:1.28");
        assert_eq!(
            containers[0]["ports"],
            serde_json::json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
        assert_eq!(containers[1]["image"], "envoy");
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            serde_json::json!([{"key": "b"}]),
            "an atomic list is replaced"
        );
        assert_eq!(out["metadata"]["finalizers"], serde_json::json!(["a", "b"]));
        // An ephemeral container's fields are inline (EphemeralContainerCommon): merged by key too.
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox",
                "env": [{"name": "A", "value": "1"}]}]}});
        let patch = br#"{"spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "B", "value": "2"}]}]}}"#;
        let out = apply_patch(PatchKind::Strategic, &pod, patch).unwrap();
        assert_eq!(
            out["spec"]["ephemeralContainers"][0]["env"],
            serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
    }
}
