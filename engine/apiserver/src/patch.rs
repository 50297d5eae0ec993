//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
//! patch for the built-in kinds. Pure functions of (current object, patch body).
//!
//! Strategic merge reads how each list merges from the kind's Kubernetes OpenAPI definition
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`: the `+patchStrategy` and
//! `+patchMergeKey` markers kube-apiserver merges by), walked with [`crate::openapi`]'s lookup
//! as server-side apply walks it. Hand-written: no crate implements strategic merge patch;
//! the directives covered are `$patch` (`replace`, `delete`, `merge`, in maps and list items),
//! `$retainKeys`, `$deleteFromPrimitiveList/` and `$setElementOrder/`.

use serde_json::{Map, Value};

use crate::error::ApiError;

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

/// Applies a merge, JSON or strategic patch to `target` (the current object, taken: a patch is
/// applied to a copy the caller has made already), returning the patched object.
pub fn apply_patch(kind: PatchKind, mut target: Value, body: &[u8]) -> Result<Value, ApiError> {
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
            let text = |k: &str| target.get(k).and_then(Value::as_str).unwrap_or_default();
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

/// Where a strategic merge is in a built-in kind's Kubernetes OpenAPI definition
/// ([`crate::openapi::definitions`], the ones `/openapi/v3` serves and server-side apply walks).
#[derive(Debug, Clone, Copy)]
enum PatchSchema {
    /// A node of the definitions.
    Def(&'static Value),
    /// The root of an object without a definition: only its `metadata` is known.
    UnknownRoot,
    /// Nothing is known: every list is replaced.
    Unknown,
}

impl PatchSchema {
    /// The definition of `kind` at `apiVersion`.
    fn of(api_version: &str, kind: &str) -> Self {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        crate::openapi::definition(group, version, kind)
            .map_or(PatchSchema::UnknownRoot, PatchSchema::Def)
    }

    fn node(node: Option<&'static Value>) -> Self {
        node.map_or(PatchSchema::Unknown, PatchSchema::Def)
    }

    /// The schema of the value of field `name`.
    fn field(self, name: &str) -> Self {
        match self {
            PatchSchema::Def(node) => Self::node(crate::openapi::property(node, name)),
            PatchSchema::UnknownRoot if name == "metadata" => {
                Self::node(crate::openapi::object_meta())
            }
            PatchSchema::UnknownRoot | PatchSchema::Unknown => PatchSchema::Unknown,
        }
    }

    /// The schema of the items of this list.
    fn items(self) -> Self {
        match self {
            PatchSchema::Def(node) => Self::node(crate::openapi::items(node)),
            _ => PatchSchema::Unknown,
        }
    }

    /// How this list merges: its `x-kubernetes-patch-strategy` (`merge`, possibly with
    /// `retainKeys`) and `x-kubernetes-patch-merge-key`, the `+patchStrategy` and
    /// `+patchMergeKey` markers of the Kubernetes types; a list without them is replaced.
    fn list_strategy(self) -> ListStrategy {
        let PatchSchema::Def(node) = self else {
            return ListStrategy::Replace;
        };
        let ext = |k: &str| node.get(k).and_then(Value::as_str);
        let merge = ext("x-kubernetes-patch-strategy")
            .is_some_and(|s| s.split(',').any(|s| s.trim() == "merge"));
        match (merge, ext("x-kubernetes-patch-merge-key")) {
            (true, Some(key)) => ListStrategy::MergeByKey(key),
            (true, None) => ListStrategy::MergePrimitives,
            (false, _) => ListStrategy::Replace,
        }
    }
}

/// How a list field merges under strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    Replace,
    MergePrimitives,
    MergeByKey(&'static str),
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
    schema: PatchSchema,
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
    if let Some(retain) = patch_map.get(RETAIN_KEYS) {
        retain_keys(target_map, patch_map, retain, path)?;
    }
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
        let child = schema.field(key);
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
                strategic_merge(entry, value, &child_path, child)?;
            }
            Value::Array(items) => {
                let order = patch_map
                    .get(&format!("{SET_ELEMENT_ORDER}{key}"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice);
                let merged = merge_list(target_map.get(key), items, order, &child_path, child)?;
                target_map.insert(key.clone(), merged);
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    // A list named only by its order directive (every item of it unchanged) is reordered.
    for (key, order) in patch_map {
        if let Some(list_key) = key.strip_prefix(SET_ELEMENT_ORDER)
            && !patch_map.contains_key(list_key)
            && let (Some(Value::Array(items)), Some(order)) =
                (target_map.get(list_key), order.as_array())
        {
            let strategy = schema.field(list_key).list_strategy();
            let reordered = set_element_order(items, &[], order, strategy);
            target_map.insert(list_key.to_owned(), Value::Array(reordered));
        }
    }
    Ok(())
}

/// `$retainKeys`: the fields of the object that stay (the others are cleared before the
/// merge); every field the patch sets must be among them, as Kubernetes requires.
fn retain_keys(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &str,
) -> Result<(), ApiError> {
    let bad = || {
        ApiError::UnprocessablePatch(format!(
            "{path}: invalid patch format of retainKeys: `$retainKeys` must list every field the patch sets"
        ))
    };
    let keep: Vec<&str> = retain
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|k| k.as_str().ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    let directive = |k: &str| {
        k == DIRECTIVE
            || k == RETAIN_KEYS
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
    };
    if patch
        .iter()
        .any(|(k, v)| !v.is_null() && !directive(k) && !keep.contains(&k.as_str()))
    {
        return Err(bad());
    }
    target.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

/// The identity of a list item under `strategy`: its merge key's value, or itself.
fn item_identity(item: &Value, strategy: ListStrategy) -> Option<&Value> {
    match strategy {
        ListStrategy::MergeByKey(key) => item.get(key),
        _ => Some(item),
    }
}

/// `$setElementOrder`: the patched items in the order the client gave, merged with the items
/// only the server had in their own order (Kubernetes' `normalizeElementOrder`).
fn set_element_order(
    merged: &[Value],
    original: &[Value],
    order: &[Value],
    strategy: ListStrategy,
) -> Vec<Value> {
    let id = |v: &Value| item_identity(v, strategy).cloned();
    let position = |list: &[Value], item: &Value| {
        let want = id(item);
        list.iter().position(|o| id(o) == want && want.is_some())
    };
    let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .iter()
        .cloned()
        .partition(|item| position(order, item).is_some());
    patched.sort_by_key(|item| position(order, item));
    server_only.sort_by_key(|item| position(original, item).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(merged.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patched.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => match (position(original, l), position(original, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

fn merge_list(
    current: Option<&Value>,
    patch: &[Value],
    order: Option<&[Value]>,
    path: &str,
    schema: PatchSchema,
) -> Result<Value, ApiError> {
    let current = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let strategy = schema.list_strategy();
    let directive = |i: &Value| i.get(DIRECTIVE).and_then(Value::as_str).map(str::to_owned);
    let merged = match strategy {
        ListStrategy::Replace => {
            if patch.iter().any(|i| i.get(DIRECTIVE).is_some()) {
                return Err(ApiError::UnprocessablePatch(format!(
                    "{path}: `$patch` directives are not supported in this list, it is replaced as a whole"
                )));
            }
            return Ok(Value::Array(patch.to_vec()));
        }
        // `{"$patch": "replace"}` among the items: the list is the other items.
        _ if patch
            .iter()
            .any(|i| directive(i).as_deref() == Some("replace")) =>
        {
            return Ok(Value::Array(
                patch
                    .iter()
                    .filter(|i| directive(i).is_none())
                    .cloned()
                    .collect(),
            ));
        }
        ListStrategy::MergePrimitives => {
            let mut out = current.clone();
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            out
        }
        ListStrategy::MergeByKey(merge_key) => {
            let items = schema.items();
            let mut out = current.clone();
            for item in patch {
                let key = item.get(merge_key).cloned().ok_or_else(|| {
                    ApiError::UnprocessablePatch(format!(
                        "{path}: list item has no merge key `{merge_key}`"
                    ))
                })?;
                let pos = out.iter().position(|o| o.get(merge_key) == Some(&key));
                match (pos, directive(item).as_deref()) {
                    (Some(i), Some("delete")) => {
                        out.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => strategic_merge(&mut out[i], item, path, items)?,
                    (None, _) => {
                        // A new item is merged into nothing: its own directives apply too.
                        let mut new = Value::Object(Map::new());
                        strategic_merge(&mut new, item, path, items)?;
                        out.push(new);
                    }
                }
            }
            out
        }
    };
    Ok(Value::Array(match order {
        Some(order) => set_element_order(&merged, &current, order, strategy),
        None => merged,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_operation_failure_is_unprocessable() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        let patch = br#"[{"op":"test","path":"/metadata/finalizers","value":["b"]},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        let err = apply_patch(PatchKind::Json, obj.clone(), patch).unwrap_err();
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn json_patch_test_for_null_passes_on_a_missing_path_like_kube_apiserver() {
        let patch = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        let out = apply_patch(PatchKind::Json, json!({"metadata": {}}), patch).unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["f"]}}));
    }

    #[test]
    fn merge_patch_null_removes_a_key() {
        let obj = json!({"data": {"a": "1", "b": "2"}});
        let out = apply_patch(PatchKind::Merge, obj.clone(), br#"{"data":{"a":null}}"#).unwrap();
        assert_eq!(out, json!({"data": {"b": "2"}}));
    }

    #[test]
    fn strategic_patch_merges_finalizers_and_replaces_other_lists() {
        let obj = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}}, "list": [1, 2]});
        let patch = br#"{"metadata":{"finalizers":["b"],"labels":{"y":"2"}},"list":[3]}"#;
        let out = apply_patch(PatchKind::Strategic, obj.clone(), patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "list": [3]})
        );
    }

    #[test]
    fn strategic_patch_directives_delete_and_retain_keys() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}, "data": {"k": "v", "j": "w"}, "spec": {"x": 1, "y": 2}});
        let patch = br#"{"$deleteFromPrimitiveList/finalizers":["a"],"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]},"data":{"$patch":"delete"},"spec":{"$retainKeys":["x"],"x":3}}"#;
        let out = apply_patch(PatchKind::Strategic, obj.clone(), patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"x": 3}})
        );
    }

    #[test]
    fn unknown_strategic_directive_is_rejected() {
        let err = apply_patch(
            PatchKind::Strategic,
            json!({}),
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
        let out = apply_patch(PatchKind::Strategic, current.clone(), patch).unwrap();
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
        let out = apply_patch(PatchKind::Strategic, pod.clone(), patch).unwrap();
        assert_eq!(
            out["spec"]["ephemeralContainers"][0]["env"],
            serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
    }
    fn strategic(current: &Value, patch: &str) -> Result<Value, ApiError> {
        apply_patch(PatchKind::Strategic, current.clone(), patch.as_bytes())
    }

    #[test]
    fn lists_merge_by_the_keys_of_the_kubernetes_definitions_not_only_by_name() {
        // (what, current, patch, pointer, expected, why)
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443}]}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "ports": [{"containerPort": 80}, {"containerPort": 9090, "name": "metrics"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "volumes": [{"name": "data", "emptyDir": {}}]}});
        let cases: [(&str, &Value, &str, &str, Value, &str); 7] = [
            (
                "service ports",
                &svc,
                r#"{"spec":{"ports":[{"port":443,"targetPort":8443}]}}"#,
                "/spec/ports",
                json!([{"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443}]),
                "Service ports merge by port",
            ),
            (
                "container ports",
                &pod,
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":9090,"protocol":"TCP"},{"containerPort":8080}]}]}}"#,
                "/spec/containers/0/ports",
                json!([{"containerPort": 80},
                    {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}, {"containerPort": 8080}]),
                "container ports merge by containerPort",
            ),
            (
                "volume mounts",
                &pod,
                r#"{"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/tmp","readOnly":true}]}]}}"#,
                "/spec/containers/0/volumeMounts",
                json!([{"name": "data", "mountPath": "/data"},
                    {"name": "tmp", "mountPath": "/tmp", "readOnly": true}]),
                "volumeMounts merge by mountPath",
            ),
            (
                "env delete",
                &pod,
                r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","$patch":"delete"},{"name":"C","value":"3"}]}]}}"#,
                "/spec/containers/0/env",
                json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]),
                "env merges by name and $patch: delete removes one",
            ),
            (
                "tolerations",
                &pod,
                r#"{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}"#,
                "/spec/tolerations",
                json!([{"key": "b", "operator": "Exists"}]),
                "tolerations have no patch strategy: replaced",
            ),
            (
                "volumes retainKeys",
                &pod,
                r#"{"spec":{"volumes":[{"name":"data","$retainKeys":["name","configMap"],"configMap":{"name":"cfg"}}]}}"#,
                "/spec/volumes",
                json!([{"name": "data", "configMap": {"name": "cfg"}}]),
                "volumes merge by name with retainKeys: the emptyDir source goes",
            ),
            (
                "replace directive",
                &pod,
                r#"{"spec":{"containers":[{"name":"c","env":[{"$patch":"replace"},{"name":"Z","value":"9"}]}]}}"#,
                "/spec/containers/0/env",
                json!([{"name": "Z", "value": "9"}]),
                "a {$patch: replace} item replaces the merged list",
            ),
        ];
        for (what, current, patch, pointer, expected, why) in cases {
            let out = strategic(current, patch).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(out.pointer(pointer), Some(&expected), "{what}: {why}");
        }
    }

    #[test]
    fn a_deployment_strategy_switched_to_recreate_keeps_only_the_retained_keys() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}});
        let out = strategic(
            &d,
            r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = strategic(
            &d,
            r#"{"spec":{"strategy":{"$retainKeys":["rollingUpdate"],"type":"Recreate"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422, "a set field missing from $retainKeys");
    }

    #[test]
    fn set_element_order_orders_patched_items_and_keeps_server_only_ones_in_place() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "injected"}, {"name": "b"}]}});
        let out = strategic(
            &pod,
            r#"{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],"containers":[{"name":"b","image":"x"}]}}"#,
        )
        .unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["injected", "b", "a"]);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["x", "y"]}});
        let out = strategic(
            &cm,
            r#"{"metadata":{"$setElementOrder/finalizers":["y","x"]}}"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
    }

    #[test]
    fn a_service_accounts_secrets_and_an_owner_reference_merge_by_their_definition_keys() {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa",
            "ownerReferences": [{"uid": "1", "name": "a", "kind": "K", "apiVersion": "v1"}]},
            "secrets": [{"name": "s1"}]});
        let out = strategic(
            &sa,
            r#"{"metadata":{"ownerReferences":[{"uid":"2","name":"b","kind":"K","apiVersion":"v1"}]},"secrets":[{"name":"s2"}]}"#,
        )
        .unwrap();
        assert_eq!(out["secrets"], json!([{"name": "s1"}, {"name": "s2"}]));
        assert_eq!(
            out["metadata"]["ownerReferences"].as_array().unwrap().len(),
            2
        );
    }
}
