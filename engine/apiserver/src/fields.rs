//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply.
//!
//! Fields are tracked per manager as a set of leaf paths. Lists are atomic: a list is owned as a
//! whole, which is how kube-apiserver treats lists without merge keys. Every function here is pure.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::FieldCause;

type FieldPath = Vec<String>;

/// A set of owned leaf paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

const IDENTITY_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

fn is_identity(path: &[String]) -> bool {
    match path {
        [top] => top == "apiVersion" || top == "kind",
        [meta, field, ..] => meta == "metadata" && IDENTITY_METADATA.contains(&field.as_str()),
        _ => false,
    }
}

impl FieldSet {
    /// The leaf paths of an object (lists and empty maps are leaves), identity fields excluded.
    pub fn leaves(value: &Value) -> Self {
        let mut set = BTreeSet::new();
        collect_leaves(value, &mut Vec::new(), &mut set);
        FieldSet(set)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, p: &FieldPath) -> bool {
        self.0.contains(p)
    }

    /// FieldsV1 JSON: `{"f:spec":{"f:size":{}}}`.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for part in path {
                let entry = node
                    .entry(format!("f:{part}"))
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = entry else { break };
                node = next;
            }
        }
        Value::Object(root)
    }

    /// Reads FieldsV1; keyed list items (`k:`/`v:`) collapse to the list, which is owned whole.
    pub fn from_fields_v1(v: &Value) -> Self {
        let mut set = BTreeSet::new();
        read_fields_v1(v, &mut Vec::new(), &mut set);
        FieldSet(set)
    }
}

fn collect_leaves(value: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    if is_identity(path) {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                collect_leaves(v, path, out);
                path.pop();
            }
        }
        _ if path.is_empty() => {}
        _ => {
            out.insert(path.clone());
        }
    }
}

fn read_fields_v1(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Value::Object(map) = v else { return };
    let children: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    let keyed = map
        .keys()
        .any(|k| k.starts_with("k:") || k.starts_with("v:") || k.starts_with("i:"));
    if (children.is_empty() || keyed) && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, child) in children {
        path.push(k[2..].to_owned());
        read_fields_v1(child, path, out);
        path.pop();
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |node, part| node.get(part))
}

fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for part in parents {
        match node.get_mut(part) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Value::Object(map) = node {
        map.remove(last);
    }
}

fn display_path(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let text = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| Entry {
                    manager: text(e, "manager"),
                    operation: text(e, "operation"),
                    api_version: text(e, "apiVersion"),
                    time: text(e, "time"),
                    subresource: text(e, "subresource"),
                    fields: e
                        .get("fieldsV1")
                        .map(FieldSet::from_fields_v1)
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing: manager name, the apiVersion used, the subresource ("" or "status"), and when.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
}

/// Records an update: the writer takes ownership of every field it changed, others lose them.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_leaves = FieldSet::leaves(new);
    let changed: BTreeSet<FieldPath> = match old {
        None => new_leaves.0.clone(),
        Some(old) => {
            let old_leaves = FieldSet::leaves(old);
            new_leaves
                .0
                .iter()
                .chain(old_leaves.0.iter())
                .filter(|p| value_at(old, p) != value_at(new, p))
                .cloned()
                .collect()
        }
    };
    if changed.is_empty() {
        write_entries(new, entries);
        return;
    }
    for e in &mut entries {
        e.fields.0.retain(|p| !changed.contains(p));
    }
    let owned: BTreeSet<FieldPath> = changed
        .into_iter()
        .filter(|p| new_leaves.contains(p))
        .collect();
    let pos = entries.iter().position(|e| {
        e.manager == w.manager && e.operation == "Update" && e.subresource == w.subresource
    });
    match pos {
        Some(i) => {
            entries[i].fields.0.extend(owned);
            entries[i].time = w.now.to_owned();
            entries[i].api_version = w.api_version.to_owned();
        }
        None => entries.push(Entry {
            manager: w.manager.to_owned(),
            operation: "Update".into(),
            api_version: w.api_version.to_owned(),
            time: w.now.to_owned(),
            subresource: w.subresource.to_owned(),
            fields: FieldSet(owned),
        }),
    }
    write_entries(new, entries);
}

/// Fields another manager owns with a different value than the applied configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyConflicts {
    pub messages: Vec<String>,
    pub causes: Vec<FieldCause>,
}

/// Server-side apply of `config` by `w` onto `live` (absent: the object is created).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyConflicts> {
    let mut entries = live.map(read_entries).unwrap_or_default();
    let applied = FieldSet::leaves(config);
    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for e in entries
            .iter()
            .filter(|e| !(e.manager == w.manager && e.operation == "Apply"))
        {
            if e.subresource != w.subresource {
                continue;
            }
            for p in applied.0.iter().filter(|p| e.fields.contains(p)) {
                if value_at(live, p) != value_at(config, p) {
                    // kube-apiserver names the version of managers that wrote by update.
                    let who = if e.operation == "Update" {
                        format!("\"{}\" using {}", e.manager, e.api_version)
                    } else {
                        format!("\"{}\"", e.manager)
                    };
                    conflicts.push((who, p.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyConflicts {
            messages: conflicts
                .iter()
                .map(|(who, p)| format!("conflict with {who}: {}", display_path(p)))
                .collect(),
            causes: conflicts
                .iter()
                .map(|(who, p)| FieldCause {
                    field: display_path(p),
                    message: format!("conflict with {who}"),
                })
                .collect(),
        });
    }
    let mine = |e: &Entry| {
        e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource
    };
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.fields
            .0
            .retain(|p| !(force && applied.contains(p) && conflicts.iter().any(|(_, c)| c == p)));
    }
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    for p in previous.0.iter().filter(|p| !applied.contains(p)) {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !mine(e))
            .any(|e| e.fields.contains(p));
        if !owned_elsewhere {
            remove_at(&mut result, p);
        }
    }
    deep_merge(&mut result, config);
    let entry = Entry {
        manager: w.manager.to_owned(),
        operation: "Apply".into(),
        api_version: w.api_version.to_owned(),
        time: w.now.to_owned(),
        subresource: w.subresource.to_owned(),
        fields: applied,
    };
    // Replaced in place: re-applying must not reorder managedFields (that would be a write).
    match entries.iter().position(mine) {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_entries(&mut result, entries);
    Ok(result)
}

fn deep_merge(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// The object as no-op detection compares it: without its resource version and without the
/// timestamps of `managedFields`, so re-applying or re-writing the same content changes nothing
/// while a change of field ownership still counts.
pub fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(Value::Object(meta)) = v.get_mut("metadata") {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries.iter_mut() {
                if let Value::Object(e) = e {
                    e.remove("time");
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: "",
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn fields_v1_round_trips_leaf_paths() {
        let set = FieldSet::leaves(
            &json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"l": [1]}}),
        );
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:l": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), set);
    }

    #[test]
    fn applying_a_field_another_manager_set_differently_conflicts_unless_forced() {
        let live = apply(None, &cm(json!({"a": "1"})), &writer("one"), false).unwrap();
        let err = apply(Some(&live), &cm(json!({"a": "2"})), &writer("two"), false).unwrap_err();
        assert_eq!(err.messages, vec!["conflict with \"one\": .data.a"]);
        let forced = apply(Some(&live), &cm(json!({"a": "2"})), &writer("two"), true).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(
            managers,
            vec!["two"],
            "the forced field moved to the new manager, leaving `one` with nothing"
        );
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let live = apply(None, &cm(json!({"a": "1"})), &writer("one"), false).unwrap();
        let shared = apply(Some(&live), &cm(json!({"a": "1"})), &writer("two"), false).unwrap();
        assert_eq!(
            shared["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_field_no_longer_applied_is_removed_unless_someone_else_owns_it() {
        let live = apply(
            None,
            &cm(json!({"a": "1", "b": "2"})),
            &writer("one"),
            false,
        )
        .unwrap();
        let live = apply(Some(&live), &cm(json!({"b": "2"})), &writer("two"), false).unwrap();
        let after = apply(Some(&live), &cm(json!({"c": "3"})), &writer("one"), false).unwrap();
        assert_eq!(after["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn reapplying_the_same_configuration_compares_equal_but_new_ownership_does_not() {
        let live = apply(None, &cm(json!({"a": "1"})), &writer("one"), false).unwrap();
        let later = Writer {
            now: "2027-01-01T00:00:00Z",
            ..writer("one")
        };
        let again = apply(Some(&live), &cm(json!({"a": "1"})), &later, false).unwrap();
        assert_eq!(
            comparable(&live),
            comparable(&again),
            "only the timestamp moved"
        );
        let shared = apply(Some(&live), &cm(json!({"a": "1"})), &writer("two"), false).unwrap();
        assert_ne!(
            comparable(&live),
            comparable(&shared),
            "a second owner is recorded"
        );
        let first_again = apply(Some(&shared), &cm(json!({"a": "1"})), &later, false).unwrap();
        assert_eq!(
            comparable(&shared),
            comparable(&first_again),
            "re-applying keeps the entry order"
        );
    }

    #[test]
    fn an_update_takes_ownership_of_changed_fields_from_the_applier() {
        let live = apply(None, &cm(json!({"a": "1"})), &writer("one"), false).unwrap();
        let mut updated = live.clone();
        updated["data"]["a"] = json!("9");
        record_update(Some(&live), &mut updated, &writer("editor"));
        let entries = read_entries(&updated);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "editor");
    }
}
