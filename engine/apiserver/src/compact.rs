//! `metadata.managedFields` held as JSON text.
//!
//! Field sets are most of a small object's memory: a claim is about 1.4 KB as JSON, but as a
//! `serde_json` tree its `managedFields` alone took about 9 KB, since every map of a field set
//! (`{"f:name": {}}`) is a B-tree node with room for eleven entries. Only writes read them
//! (field ownership in `fields`), so the stored copy of every object keeps its managedFields as
//! one string of their JSON ([`compact`]); writes decode them ([`managed_fields`]) and responses
//! splice the text into the object's JSON unparsed ([`write_object`]), so serving an object
//! costs no more than before.
//!
//! Which values are compact is decided by position, never by content: only the top-level
//! `metadata.managedFields` of an object the cluster stored. Kubernetes types managedFields as a
//! list, and every write path replaces what a client sent there with what the server computed
//! (`fields`), so a string in that place was written by [`compact`] from a list the server
//! built; [`check_input`] refuses a client's string there all the same, as kube-apiserver's
//! decoder does.
//!
//! Written by hand: splicing pre-serialized JSON through serde needs serde_json's `raw_value`
//! feature, which would change (and rebuild) every crate of the workspace that depends on
//! serde_json; the writer here is the few lines of serde_json's compact format for the two maps
//! on the path to the text, with everything else serialized by serde_json itself.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::ApiError;

const MANAGED_FIELDS: &str = "managedFields";

/// The compact text of `obj`'s managedFields, if they are held compactly.
fn packed(obj: &Value) -> Option<&str> {
    obj.get("metadata")?.get(MANAGED_FIELDS)?.as_str()
}

/// Replaces `obj`'s managedFields list by its JSON text, as the cluster stores it. An empty list
/// is dropped (Kubernetes does not keep one); anything else but a list is left alone.
pub(crate) fn compact(obj: &mut Value) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    match meta.get(MANAGED_FIELDS) {
        Some(Value::Array(list)) if list.is_empty() => {
            meta.remove(MANAGED_FIELDS);
        }
        Some(list @ Value::Array(_)) => {
            let text = serde_json::to_string(list).unwrap_or_default();
            meta.insert(MANAGED_FIELDS.into(), Value::String(text));
        }
        _ => {}
    }
}

/// Decodes compact managedFields back into a list in place (a copy about to be edited or
/// handed on as a tree).
pub(crate) fn expand(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        expand_meta(meta);
    }
}

/// [`expand`] for an object's metadata map.
fn expand_meta(meta: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = meta.get(MANAGED_FIELDS) {
        match serde_json::from_str::<Value>(text) {
            Ok(list) => {
                meta.insert(MANAGED_FIELDS.into(), list);
            }
            Err(_) => {
                meta.remove(MANAGED_FIELDS);
            }
        }
    }
}

/// `obj` with its managedFields as a list: borrowed when they already are one.
pub(crate) fn expanded(obj: &Value) -> Cow<'_, Value> {
    if packed(obj).is_none() {
        return Cow::Borrowed(obj);
    }
    let mut copy = obj.clone();
    expand(&mut copy);
    Cow::Owned(copy)
}

/// `obj`'s managedFields entries, decoded when held compactly.
pub(crate) fn managed_fields(obj: &Value) -> Cow<'_, [Value]> {
    entries(obj.get("metadata").and_then(|m| m.get(MANAGED_FIELDS)))
}

/// The entries of a `managedFields` value, list or compact.
pub(crate) fn entries(value: Option<&Value>) -> Cow<'_, [Value]> {
    match value {
        Some(Value::Array(list)) => Cow::Borrowed(list.as_slice()),
        Some(Value::String(text)) => {
            Cow::Owned(serde_json::from_str::<Vec<Value>>(text).unwrap_or_default())
        }
        _ => Cow::Borrowed(&[]),
    }
}

/// Refuses a request body (or a patch's result) whose managedFields are not a list, with the
/// error kube-apiserver's decoder gives. Objects from inside the server may be compact: the
/// cluster expands what it is handed before deciding on it.
pub(crate) fn check_input(obj: &Value) -> Result<(), ApiError> {
    match obj.get("metadata").and_then(|m| m.get(MANAGED_FIELDS)) {
        None | Some(Value::Array(_) | Value::Null) => Ok(()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.managedFields of type []v1.ManagedFieldsEntry",
            json_type(other)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Appends `obj` as compact JSON, managedFields as a list: byte for byte what serde_json writes
/// for the expanded object.
pub(crate) fn write_object(out: &mut Vec<u8>, obj: &Value) {
    match (obj, packed(obj)) {
        (Value::Object(top), Some(text)) => write_map(out, top, |out, key, value| match value {
            Value::Object(meta) if key == "metadata" => {
                write_map(out, meta, |out, key, value| match value {
                    Value::String(_) if key == MANAGED_FIELDS => {
                        out.extend_from_slice(text.as_bytes())
                    }
                    _ => write_value(out, value),
                });
            }
            _ => write_value(out, value),
        }),
        _ => write_value(out, obj),
    }
}

/// `obj` as compact JSON, managedFields as a list.
pub(crate) fn object_json(obj: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_object(&mut out, obj);
    out
}

/// A list of objects as compact JSON: `head`'s fields (kind, apiVersion, metadata), then
/// `items`, each written by [`write_object`].
pub(crate) fn list_json<'a>(head: &Value, items: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_value(&mut out, head);
    if out.last() == Some(&b'}') {
        out.pop();
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"items\":[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_object(&mut out, item);
        }
        out.extend_from_slice(b"]}");
    }
    out
}

fn write_map(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &Value),
) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        value(out, k, v);
    }
    out.push(b'}');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    // Writing a `Value` to a Vec cannot fail: its keys are strings and its numbers finite.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object() -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a\"b", "namespace": "ns", "labels": {"x": "y"},
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}}]},
            "data": {"k": "v\n\u{1}"}
        })
    }

    #[test]
    fn compact_objects_serialize_exactly_as_expanded_ones() {
        let full = object();
        let mut held = full.clone();
        compact(&mut held);
        assert!(held["metadata"]["managedFields"].is_string());
        assert_eq!(object_json(&held), serde_json::to_vec(&full).unwrap());
        assert_eq!(*expanded(&held), full);
        assert_eq!(
            managed_fields(&held).as_ref(),
            full["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .as_slice()
        );
        let mut back = held.clone();
        expand(&mut back);
        assert_eq!(back, full);
        // An object without managedFields, and any other value, serializes as serde_json does.
        let plain = json!({"kind": "Status", "metadata": {}, "code": 404});
        assert_eq!(object_json(&plain), serde_json::to_vec(&plain).unwrap());
    }

    #[test]
    fn lists_hold_their_items_expanded() {
        let full = object();
        let mut held = full.clone();
        compact(&mut held);
        let head = json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}});
        let bytes = list_json(&head, [&held, &held]);
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        let mut expected = head.clone();
        expected["items"] = json!([full, full]);
        assert_eq!(parsed, expected);
        let empty: Value = serde_json::from_slice(&list_json(&head, [])).unwrap();
        assert_eq!(empty["items"], json!([]));
    }

    #[test]
    fn empty_lists_are_dropped_and_strings_from_clients_refused() {
        let mut obj = json!({"metadata": {"name": "a", "managedFields": []}});
        compact(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
        let sent = json!({"metadata": {"name": "a", "managedFields": "[{\"manager\":\"x\"}]"}});
        let err = check_input(&sent).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("cannot unmarshal string"), "{err}");
        assert!(check_input(&object()).is_ok());
    }
}
