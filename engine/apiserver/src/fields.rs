//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply.
//!
//! Fields are tracked per manager as a set of paths, as structured-merge-diff does: leaves are
//! scalars, empty maps and atomic lists; items of associative lists are owned one by one. A list's
//! kind comes from its schema ([`FieldSchema`]): `x-kubernetes-list-type: map` items are identified
//! by their `x-kubernetes-list-map-keys` (`k:{"type":"Ready"}`), `set` items by their value
//! (`v:"a"`), and anything else (the default for custom resources) is atomic and owned whole.
//! Built-in kinds are walked through their Kubernetes OpenAPI definitions
//! ([`crate::openapi::definitions`], the ones `/openapi/v3` serves), so a Deployment's containers
//! are keyed by `name`, their ports by `containerPort` and `protocol`, their env by `name`; a
//! definition list without a list type but with a `merge` patch strategy is keyed by its patch
//! merge key, as structured-merge-diff reads them. Every object's `metadata` is `ObjectMeta`'s
//! definition (`finalizers` a set, `ownerReferences` keyed by `uid`). Every function here is pure.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::{Map, Value, json};
use strata_schema::{ListType, SchemaNode, StructuralSchema};

use crate::error::FieldCause;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Element {
    /// A field of an object (`f:name`). Shared, not owned: a walk copies its whole path into
    /// the set at every leaf, and the names are what those copies would allocate.
    Field(Rc<str>),
    /// An item of a map list, by its key fields: (name, JSON value) sorted by name (`k:{…}`).
    Key(Vec<(String, String)>),
    /// An item of a set list, by its JSON value (`v:…`).
    Value(String),
    /// An item of a plain list, by position (`i:0`); read from FieldsV1, never produced here.
    Index(usize),
}

type FieldPath = Vec<Element>;

impl Element {
    fn fields_v1_key(&self) -> String {
        match self {
            Element::Field(name) => format!("f:{name}"),
            Element::Key(key) => format!("k:{}", key_json(key)),
            Element::Value(v) => format!("v:{v}"),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    fn from_fields_v1_key(key: &str) -> Option<Self> {
        let (prefix, rest) = key.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Element::Field(rest.into())),
            "k:" => {
                let Value::Object(fields) = serde_json::from_str(rest).ok()? else {
                    return None;
                };
                let mut key: Vec<(String, String)> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect();
                key.sort();
                Some(Element::Key(key))
            }
            "v:" => serde_json::from_str::<Value>(rest)
                .ok()
                .map(|v| Element::Value(v.to_string())),
            "i:" => rest.parse().ok().map(Element::Index),
            _ => None,
        }
    }

    /// Kubernetes' rendering in conflict messages: `.name`, `[type="Ready"]`, `[="a"]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Element::Field(name) => format!(".{name}"),
            Element::Key(key) => {
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Element::Value(v) => format!("[={v}]"),
            Element::Index(i) => format!("[{i}]"),
        }
    }

    /// Whether this element names a list item (its path is owned as a node of its own).
    fn is_item(&self) -> bool {
        !matches!(self, Element::Field(_))
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            Element::Key(key) => key
                .iter()
                .all(|(k, v)| key_value(item, k).is_some_and(|x| x == *v)),
            Element::Value(v) => encode(item) == *v,
            Element::Field(_) | Element::Index(_) => false,
        }
    }
}

/// The compact JSON text items are identified by in paths (`v:"a"`, `k:{"type":"Ready"}`).
fn encode(v: &Value) -> String {
    v.to_string()
}

fn key_json(key: &[(String, String)]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The encoded value of an item's key field, a port's `protocol` defaulted.
fn key_value(item: &Value, key: &str) -> Option<String> {
    match item.get(key) {
        Some(v) => Some(encode(v)),
        None if key == "protocol" => Some("\"TCP\"".to_owned()),
        None => None,
    }
}

/// The key of a map-list item, or `None` when a key field is missing. A port's `protocol` is a
/// key that Kubernetes defaults (`TCP`), so an item without one is keyed as the defaulted item
/// it becomes (ports of containers, Services and EndpointSlices).
fn item_key(item: &Value, keys: &[String]) -> Option<Element> {
    let mut key: Vec<(String, String)> = keys
        .iter()
        .map(|k| key_value(item, k).map(|v| (k.clone(), v)))
        .collect::<Option<_>>()?;
    key.sort();
    Some(Element::Key(key))
}

/// The list markers objects are walked with: a built-in kind's Kubernetes OpenAPI definition
/// or a CRD schema.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldSchema<'a> {
    /// A built-in kind: its definition ([`crate::openapi::definition`]; none: all lists atomic).
    Builtin(Option<&'static Value>),
    /// A custom resource: the structural schema of the version written (none: all lists atomic).
    Custom(Option<&'a StructuralSchema>),
}

impl FieldSchema<'_> {
    /// The schema of the built-in kind `group/version` `kind`.
    pub(crate) fn builtin(group: &str, version: &str, kind: &str) -> Self {
        FieldSchema::Builtin(crate::openapi::definition(group, version, kind))
    }
}

/// Where a walk is in the schema.
#[derive(Debug, Clone, Copy)]
enum Cursor<'a> {
    /// A node of the Kubernetes OpenAPI definitions: inside a built-in kind, or inside the
    /// `metadata` (`ObjectMeta`) of any object or embedded resource.
    Def(&'static Value),
    /// A CRD schema node; `resource` when the node is an object's root (it has `metadata`).
    Node {
        node: &'a SchemaNode,
        resource: bool,
    },
    /// Nothing is known: every list is atomic.
    Unknown,
}

fn object_meta() -> Cursor<'static> {
    crate::openapi::definitions()
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .map_or(Cursor::Unknown, Cursor::Def)
}

/// The list type of a definition's array node, as structured-merge-diff reads the Kubernetes
/// OpenAPI: `x-kubernetes-list-type` (with its map keys) when given, else a `merge` patch
/// strategy makes a map keyed by the patch merge key (a set without one), else atomic.
fn definition_list_type(node: &Value) -> ListType {
    let ext = |k: &str| node.get(k).and_then(Value::as_str);
    match ext("x-kubernetes-list-type") {
        Some("map") => ListType::Map(
            node.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
        ),
        Some("set") => ListType::Set,
        Some(_) => ListType::Atomic,
        None => match ext("x-kubernetes-patch-strategy") {
            Some(s) if s.split(',').any(|s| s == "merge") => {
                match ext("x-kubernetes-patch-merge-key") {
                    Some(key) => ListType::Map(vec![key.to_owned()]),
                    None => ListType::Set,
                }
            }
            _ => ListType::Atomic,
        },
    }
}

impl<'a> Cursor<'a> {
    fn root(schema: FieldSchema<'a>) -> Self {
        match schema {
            FieldSchema::Builtin(Some(def)) => Cursor::Def(def),
            FieldSchema::Custom(Some(s)) => Cursor::Node {
                node: s.root(),
                resource: true,
            },
            FieldSchema::Builtin(None) | FieldSchema::Custom(None) => Cursor::Unknown,
        }
    }

    fn field(&self, name: &str) -> Self {
        match self {
            Cursor::Def(node) => {
                let node = crate::openapi::resolve(node);
                node.get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
                    .map_or(Cursor::Unknown, Cursor::Def)
            }
            Cursor::Node { resource: true, .. } if name == "metadata" => object_meta(),
            Cursor::Node { node, .. } => {
                match node.property(name).or_else(|| node.additional_properties()) {
                    Some(child) => Cursor::Node {
                        node: child,
                        resource: child.is_embedded_resource(),
                    },
                    None => Cursor::Unknown,
                }
            }
            Cursor::Unknown => Cursor::Unknown,
        }
    }

    fn item(&self) -> Self {
        match self {
            Cursor::Def(node) => crate::openapi::resolve(node)
                .get("items")
                .map_or(Cursor::Unknown, Cursor::Def),
            Cursor::Node { node, .. } => match node.items() {
                Some(child) => Cursor::Node {
                    node: child,
                    resource: child.is_embedded_resource(),
                },
                None => Cursor::Unknown,
            },
            Cursor::Unknown => Cursor::Unknown,
        }
    }

    fn list_type(&self) -> ListType {
        match self {
            Cursor::Def(node) => definition_list_type(node),
            Cursor::Node { node, .. } => node.list_type().clone(),
            Cursor::Unknown => ListType::Atomic,
        }
    }
}

/// How a list value is owned: whole, or item by item with each item's path element.
enum ListShape {
    Atomic,
    Items(Vec<Element>),
}

/// The elements of a list's items, or `Atomic` when the schema says so or the items cannot be
/// told apart (a missing key field, a duplicate, a non-scalar set item).
fn list_shape(items: &[Value], list_type: &ListType) -> ListShape {
    let elements: Option<Vec<Element>> = match list_type {
        ListType::Atomic => None,
        ListType::Set => items
            .iter()
            .map(|i| (!i.is_object() && !i.is_array()).then(|| Element::Value(i.to_string())))
            .collect(),
        ListType::Map(keys) => items.iter().map(|i| item_key(i, keys)).collect(),
    };
    match elements {
        Some(els) if els.iter().collect::<BTreeSet<_>>().len() == els.len() => {
            ListShape::Items(els)
        }
        _ => ListShape::Atomic,
    }
}

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(BTreeSet<FieldPath>);

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

fn is_identity(path: &[Element]) -> bool {
    match path {
        [Element::Field(top)] => &**top == "apiVersion" || &**top == "kind",
        [Element::Field(meta), Element::Field(field), ..] => {
            &**meta == "metadata" && IDENTITY_METADATA.contains(&&**field)
        }
        _ => false,
    }
}

impl FieldSet {
    /// The owned paths of an object, identity fields excluded: leaves (scalars, empty maps,
    /// atomic lists) and, for associative lists, each item and the leaves within it.
    pub(crate) fn of(value: &Value, schema: FieldSchema<'_>) -> Self {
        let mut set = BTreeSet::new();
        collect(value, &Cursor::root(schema), &mut Vec::new(), &mut set);
        FieldSet(set)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, p: &[Element]) -> bool {
        self.0.contains(p)
    }

    /// Whether `p` or anything below it is in the set.
    fn covers(&self, p: &[Element]) -> bool {
        self.0
            .range::<[Element], _>((std::ops::Bound::Included(p), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    /// FieldsV1 JSON: `{"f:spec":{"f:size":{}}}`; a path that is owned and has owned paths below
    /// it carries `".": {}`, as in `{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{}}}`.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let paths: Vec<&[Element]> = self
            .0
            .iter()
            .map(Vec::as_slice)
            .filter(|p| !p.is_empty())
            .collect();
        Value::Object(fields_v1_nodes(&paths, 0))
    }

    /// Reads FieldsV1; keys this server does not understand are skipped.
    pub(crate) fn from_fields_v1(v: &Value) -> Self {
        let mut set = BTreeSet::new();
        read_fields_v1(v, &mut Vec::new(), &mut set);
        FieldSet(set)
    }
}

/// The FieldsV1 nodes at `depth` of `paths`, which are sorted, share their first `depth`
/// elements and are longer than that. Paths under one element are adjacent and a path comes
/// before the paths below it, so each node's key is formatted once, from its group.
fn fields_v1_nodes(paths: &[&[Element]], depth: usize) -> Map<String, Value> {
    let mut nodes = Map::new();
    let mut rest = paths;
    while let Some(first) = rest.first() {
        let element = &first[depth];
        let end = rest.iter().take_while(|p| &p[depth] == element).count();
        let (group, after) = rest.split_at(end);
        let owned = first.len() == depth + 1;
        let below = if owned { &group[1..] } else { group };
        let mut node = fields_v1_nodes(below, depth + 1);
        if owned && !node.is_empty() {
            node.insert(".".into(), Value::Object(Map::new()));
        }
        nodes.insert(element.fields_v1_key(), Value::Object(node));
        rest = after;
    }
    nodes
}

fn collect(
    value: &Value,
    cursor: &Cursor<'_>,
    path: &mut FieldPath,
    out: &mut BTreeSet<FieldPath>,
) {
    if is_identity(path) {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(Element::Field(k.as_str().into()));
                collect(v, &cursor.field(k), path, out);
                path.pop();
            }
        }
        _ if path.is_empty() => {}
        Value::Array(items) => match list_shape(items, &cursor.list_type()) {
            ListShape::Atomic => {
                out.insert(path.clone());
            }
            ListShape::Items(elements) => {
                let item_cursor = cursor.item();
                for (item, element) in items.iter().zip(elements) {
                    path.push(element);
                    out.insert(path.clone());
                    if let Value::Object(fields) = item {
                        for (k, v) in fields {
                            path.push(Element::Field(k.as_str().into()));
                            collect(v, &item_cursor.field(k), path, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn read_fields_v1(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Value::Object(map) = v else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in map {
        if k == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        let Some(element) = Element::from_fields_v1_key(k) else {
            continue;
        };
        path.push(element);
        read_fields_v1(child, path, out);
        path.pop();
    }
}

fn child<'a>(node: &'a Value, element: &Element) -> Option<&'a Value> {
    match element {
        Element::Field(name) => node.get(&**name),
        Element::Index(i) => node.get(i),
        Element::Key(_) | Element::Value(_) => {
            node.as_array()?.iter().find(|item| element.matches(item))
        }
    }
}

fn child_mut<'a>(node: &'a mut Value, element: &Element) -> Option<&'a mut Value> {
    match element {
        Element::Field(name) => node.get_mut(&**name),
        Element::Index(i) => node.get_mut(i),
        Element::Key(_) | Element::Value(_) => node
            .as_array_mut()?
            .iter_mut()
            .find(|item| element.matches(item)),
    }
}

fn value_at<'a>(obj: &'a Value, path: &[Element]) -> Option<&'a Value> {
    path.iter().try_fold(obj, child)
}

fn remove_at(obj: &mut Value, path: &[Element]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for part in parents {
        match child_mut(node, part) {
            Some(next) => node = next,
            None => return,
        }
    }
    match (node, last) {
        (Value::Object(map), Element::Field(name)) => {
            map.remove(&**name);
        }
        (Value::Array(items), Element::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        (Value::Array(items), Element::Key(_) | Element::Value(_)) => {
            if let Some(i) = items.iter().position(|item| last.matches(item)) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Whether a path's value differs between two objects. An item of an associative list differs
/// only by appearing or disappearing; what changed inside it shows in its own fields' paths.
fn differs(old: &Value, new: &Value, p: &[Element]) -> bool {
    let (a, b) = (value_at(old, p), value_at(new, p));
    match p.last() {
        Some(last) if last.is_item() => a.is_some() != b.is_some(),
        _ => a != b,
    }
}

/// Whether the path is a key field of a map-list item (`…[type="Ready"].type`).
fn is_key_field(path: &[Element]) -> bool {
    match path {
        [.., Element::Key(key), Element::Field(name)] => key.iter().any(|(k, _)| **k == **name),
        _ => false,
    }
}

fn display_path(path: &[Element]) -> String {
    path.iter().map(Element::display).collect()
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
    /// The FieldsV1 the entry was read from, while `fields` still holds what it did: written
    /// back as it is instead of rebuilt from the set. Most writes change one manager's fields
    /// and leave the others' entries alone, and rebuilding every entry was most of the cost of
    /// recording a write.
    read_as: Option<Value>,
}

impl Entry {
    /// Keeps the paths `keep` accepts; the entry is rebuilt when written if any went.
    fn retain(&mut self, keep: impl FnMut(&FieldPath) -> bool) {
        let before = self.fields.0.len();
        self.fields.0.retain(keep);
        if self.fields.0.len() != before {
            self.read_as = None;
        }
    }

    /// Adds `paths`; the entry is rebuilt when written if any was new.
    fn extend(&mut self, paths: impl IntoIterator<Item = FieldPath>) {
        let before = self.fields.0.len();
        self.fields.0.extend(paths);
        if self.fields.0.len() != before {
            self.read_as = None;
        }
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let text = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // A stored object's entries are decoded from their compact text, so taking their FieldsV1
    // copies nothing.
    crate::compact::managed_fields(obj)
        .into_owned()
        .into_iter()
        .map(|mut e| {
            let read_as = e.get_mut("fieldsV1").map(Value::take);
            Entry {
                manager: text(&e, "manager"),
                operation: text(&e, "operation"),
                api_version: text(&e, "apiVersion"),
                time: text(&e, "time"),
                subresource: text(&e, "subresource"),
                fields: read_as
                    .as_ref()
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
                read_as,
            }
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let fields_v1 = match e.read_as {
                Some(read_as) => read_as,
                None => e.fields.to_fields_v1(),
            };
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1,
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

/// Who is writing: manager name, the apiVersion used, the subresource ("" or "status"), when,
/// and the schema whose list markers say how lists are owned and merged.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
    pub schema: FieldSchema<'a>,
}

/// The owned paths of `old` and of `new` below the subtrees where the two differ (`old_out`,
/// `new_out`): what [`FieldSet::of`] gives for each, without the parts the two share. A path
/// under a field whose value is the same in both cannot differ, so only the differing subtrees
/// are walked; an update that changes a status condition walks the status, not the spec.
fn collect_differing(
    old: Option<&Value>,
    new: Option<&Value>,
    cursor: &Cursor<'_>,
    path: &mut FieldPath,
    old_out: &mut BTreeSet<FieldPath>,
    new_out: &mut BTreeSet<FieldPath>,
) {
    if is_identity(path) {
        return;
    }
    match (old, new) {
        (Some(a), Some(b)) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) if !a.is_empty() && !b.is_empty() => {
            let only_new = b.keys().filter(|k| !a.contains_key(*k));
            for k in a.keys().chain(only_new) {
                path.push(Element::Field(k.as_str().into()));
                collect_differing(a.get(k), b.get(k), &cursor.field(k), path, old_out, new_out);
                path.pop();
            }
        }
        (a, b) => {
            if let Some(a) = a {
                collect(a, cursor, path, old_out);
            }
            if let Some(b) = b {
                collect(b, cursor, path, new_out);
            }
        }
    }
}

/// What an update changes: the paths of either object whose value differs, and of those the
/// ones `new` has (which the writer comes to own).
fn changed_fields(
    old: Option<&Value>,
    new: &Value,
    schema: FieldSchema<'_>,
) -> (BTreeSet<FieldPath>, BTreeSet<FieldPath>) {
    let Some(old) = old else {
        let all = FieldSet::of(new, schema).0;
        return (all.clone(), all);
    };
    let (mut old_part, mut new_part) = (BTreeSet::new(), BTreeSet::new());
    collect_differing(
        Some(old),
        Some(new),
        &Cursor::root(schema),
        &mut Vec::new(),
        &mut old_part,
        &mut new_part,
    );
    // A path both objects have is checked once.
    let changed: BTreeSet<FieldPath> = new_part
        .union(&old_part)
        .filter(|p| differs(old, new, p))
        .cloned()
        .collect();
    let owned = changed
        .iter()
        .filter(|p| new_part.contains(*p))
        .cloned()
        .collect();
    (changed, owned)
}

/// Records an update: the writer takes ownership of every field it changed, others lose them.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let (changed, owned) = changed_fields(old, new, w.schema);
    if changed.is_empty() {
        write_entries(new, entries);
        return;
    }
    for e in &mut entries {
        e.retain(|p| !changed.contains(p));
    }
    let pos = entries.iter().position(|e| {
        e.manager == w.manager && e.operation == "Update" && e.subresource == w.subresource
    });
    match pos {
        Some(i) => {
            entries[i].extend(owned);
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
            read_as: None,
        }),
    }
    write_entries(new, entries);
}

/// Fields another manager owns with a different value than the applied configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApplyConflicts {
    pub messages: Vec<String>,
    pub causes: Vec<FieldCause>,
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApplyError {
    /// Other managers own applied fields with other values (409 unless forced).
    Conflicts(ApplyConflicts),
    /// The configuration repeats an item of an associative list (422).
    Duplicate { field: String, message: String },
}

/// Rejects applied configurations whose associative lists repeat an item, as kube-apiserver does.
fn check_unique_items(
    value: &Value,
    cursor: &Cursor<'_>,
    path: &mut FieldPath,
) -> Result<(), ApplyError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Element::Field(k.as_str().into()));
                check_unique_items(v, &cursor.field(k), path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            let list_type = cursor.list_type();
            let elements: Vec<Element> = match &list_type {
                ListType::Atomic => return Ok(()),
                ListType::Set => items
                    .iter()
                    .map(|i| Element::Value(i.to_string()))
                    .collect(),
                ListType::Map(keys) => items.iter().filter_map(|i| item_key(i, keys)).collect(),
            };
            let mut seen = BTreeSet::new();
            for element in &elements {
                if !seen.insert(element) {
                    let (what, shown) = match element {
                        Element::Key(key) => ("key", key_json(key)),
                        other => ("value", other.display()),
                    };
                    return Err(ApplyError::Duplicate {
                        field: display_path(path).trim_start_matches('.').to_owned(),
                        message: format!("duplicate entries for {what}: {shown}"),
                    });
                }
            }
            if let ListShape::Items(elements) = list_shape(items, &list_type) {
                let item_cursor = cursor.item();
                for (item, element) in items.iter().zip(elements) {
                    path.push(element);
                    check_unique_items(item, &item_cursor, path)?;
                    path.pop();
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// kubectl's field manager for server-side apply.
const KUBECTL_MANAGER: &str = "kubectl";
/// The annotation kubectl's client-side apply records its configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of the configuration client-side apply last recorded on `live`, if any.
fn last_applied_fields(live: &Value, w: &Writer<'_>) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let recorded: Value = serde_json::from_str(text).ok()?;
    Some(FieldSet::of(&recorded, w.schema))
}

/// The conflicts of an apply that is taken as forced: every field another manager owns with a
/// different value (their ownership moves to the applier).
fn recompute_conflicts(
    live: Option<&Value>,
    config: &Value,
    entries: &[Entry],
    applied: &FieldSet,
    w: &Writer<'_>,
) -> Vec<(String, FieldPath)> {
    let Some(live) = live else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !(e.manager == w.manager && e.operation == "Apply"))
        .filter(|e| e.subresource == w.subresource)
    {
        for p in applied.0.iter().filter(|p| e.fields.contains(p)) {
            if differs(live, config, p) {
                out.push((e.manager.clone(), p.clone()));
            }
        }
    }
    out
}

/// Server-side apply of `config` by `w` onto `live` (absent: the object is created).
pub(crate) fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    check_unique_items(config, &Cursor::root(w.schema), &mut Vec::new())?;
    let mut entries = live.map(read_entries).unwrap_or_default();
    let applied = FieldSet::of(config, w.schema);
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
                if differs(live, config, p) {
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
    // kube-apiserver's upgrade from client-side apply: kubectl's server-side apply may take over
    // the fields its client-side apply recorded in the last-applied annotation.
    let mut force = force;
    if !conflicts.is_empty()
        && w.manager == KUBECTL_MANAGER
        && let Some(allowed) = live.and_then(|l| last_applied_fields(l, w))
    {
        conflicts.retain(|(_, p)| !allowed.contains(p));
        if conflicts.is_empty() {
            // Every conflict was client-side apply's own: apply as if forced.
            force = true;
            conflicts = recompute_conflicts(live, config, &entries, &applied, w);
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(ApplyConflicts {
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
        }));
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
        e.retain(|p| !(force && applied.contains(p) && conflicts.iter().any(|(_, c)| c == p)));
    }
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    // Shallowest first: a released item goes whole; a kept item keeps its key fields.
    for p in previous
        .0
        .iter()
        .filter(|p| !applied.covers(p) && !is_key_field(p))
    {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !mine(e))
            .any(|e| e.fields.covers(p));
        if !owned_elsewhere {
            remove_at(&mut result, p);
        }
    }
    merge(&mut result, config, &Cursor::root(w.schema));
    // kubectl's server-side apply keeps the client-side annotation current, so a later
    // client-side apply computes its patch from what was applied last.
    if w.manager == KUBECTL_MANAGER
        && let Some(annotations) = result
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        && annotations.contains_key(LAST_APPLIED)
    {
        let mut recorded = config.clone();
        if let Some(a) = recorded
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(LAST_APPLIED);
        }
        annotations.insert(LAST_APPLIED.into(), Value::String(recorded.to_string()));
    }
    let entry = Entry {
        manager: w.manager.to_owned(),
        operation: "Apply".into(),
        api_version: w.api_version.to_owned(),
        time: w.now.to_owned(),
        subresource: w.subresource.to_owned(),
        fields: applied,
        read_as: None,
    };
    // Replaced in place: re-applying must not reorder managedFields (that would be a write).
    match entries.iter().position(mine) {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_entries(&mut result, entries);
    Ok(result)
}

/// Merges an applied configuration into the live object: maps field by field, associative lists
/// item by item (live order kept, new items appended), anything else replaced.
fn merge(target: &mut Value, config: &Value, cursor: &Cursor<'_>) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(existing)
                        if (existing.is_object() && v.is_object())
                            || (existing.is_array() && v.is_array()) =>
                    {
                        merge(existing, v, &cursor.field(k))
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(c)) => {
            let list_type = cursor.list_type();
            let ListShape::Items(elements) = list_shape(c, &list_type) else {
                *t = c.clone();
                return;
            };
            let item_cursor = cursor.item();
            for (item, element) in c.iter().zip(elements) {
                match t.iter_mut().find(|existing| element.matches(existing)) {
                    Some(existing) => merge(existing, item, &item_cursor),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// Whether a write of `new` over `old` changes nothing: equal but for the resource version and
/// the timestamps of `managedFields`, so re-applying or re-writing the same content is no write
/// while a change of field ownership still counts. Either may hold its managedFields compactly.
pub(crate) fn unchanged(old: &Value, new: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        return old == new;
    };
    if a.len() != b.len() {
        return false;
    }
    let same_meta = |x: &Value, y: &Value| {
        let (Value::Object(x), Value::Object(y)) = (x, y) else {
            return x == y;
        };
        let others = |m: &'_ Map<String, Value>| {
            m.iter()
                .filter(|(k, _)| *k != "resourceVersion" && *k != "managedFields")
                .count()
        };
        others(x) == others(y)
            && x.iter()
                .filter(|(k, _)| *k != "resourceVersion" && *k != "managedFields")
                .all(|(k, v)| y.get(k) == Some(v))
            && same_ownership(x, y)
    };
    // Metadata last: comparing ownership may decode it, and most writes differ elsewhere.
    a.iter()
        .filter(|(k, _)| *k != "metadata")
        .all(|(k, v)| b.get(k) == Some(v))
        && match (a.get("metadata"), b.get("metadata")) {
            (Some(v), Some(w)) => same_meta(v, w),
            (x, y) => x == y,
        }
}

/// Whether two metadata maps record the same field ownership (timestamps aside).
fn same_ownership(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    let (mx, my) = (x.get("managedFields"), y.get("managedFields"));
    if mx == my {
        return true;
    }
    let entries = |m: Option<&Value>| {
        crate::compact::entries(m)
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Value::Object(e) = &mut e {
                    e.remove("time");
                }
                e
            })
            .collect::<Vec<_>>()
    };
    entries(mx) == entries(my)
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
            schema: FieldSchema::builtin("", "v1", "ConfigMap"),
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn fields_v1_round_trips_leaf_paths() {
        let set = FieldSet::of(
            &json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"l": [1]}}),
            FieldSchema::Custom(None),
        );
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:l": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), set);
    }

    #[test]
    fn kubectls_server_side_apply_takes_over_what_its_client_side_apply_recorded() {
        // `kubectl apply` (client-side): an update by kubectl-client-side-apply with the
        // configuration in the last-applied annotation.
        let recorded = cm(json!({"a": "1", "b": "2"}));
        let mut live = recorded.clone();
        live["metadata"]["annotations"] = json!({LAST_APPLIED: recorded.to_string()});
        record_update(None, &mut live, &writer("kubectl-client-side-apply"));
        // `kubectl apply --server-side` of a changed configuration does not conflict with it.
        let applied = apply(
            Some(&live),
            &cm(json!({"a": "3"})),
            &writer("kubectl"),
            false,
        )
        .expect("no conflict with client-side apply's own fields");
        assert_eq!(applied["data"]["a"], "3");
        let owner_of_a: Vec<&str> = applied["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["fieldsV1"]["f:data"].get("f:a").is_some())
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(owner_of_a, ["kubectl"]);
        let annotation: Value = serde_json::from_str(
            applied["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            annotation["data"],
            json!({"a": "3"}),
            "the annotation follows"
        );
        // Another manager's fields, or another applier, still conflict.
        let mut other = live.clone();
        record_update(
            Some(&live),
            &mut other,
            &writer("kubectl-client-side-apply"),
        );
        let mut edited = other.clone();
        edited["data"]["c"] = json!("9");
        record_update(Some(&other), &mut edited, &writer("someone"));
        let Err(ApplyError::Conflicts(err)) = apply(
            Some(&edited),
            &cm(json!({"a": "3", "c": "0"})),
            &writer("kubectl"),
            false,
        ) else {
            panic!("a field outside the annotation still conflicts");
        };
        assert_eq!(
            err.messages,
            vec!["conflict with \"someone\" using v1: .data.c"]
        );
        assert!(
            apply(Some(&live), &cm(json!({"a": "3"})), &writer("flux"), false).is_err(),
            "only kubectl's own manager upgrades"
        );
    }

    #[test]
    fn applying_a_field_another_manager_set_differently_conflicts_unless_forced() {
        let live = apply(None, &cm(json!({"a": "1"})), &writer("one"), false).unwrap();
        let Err(ApplyError::Conflicts(err)) =
            apply(Some(&live), &cm(json!({"a": "2"})), &writer("two"), false)
        else {
            panic!("expected a conflict");
        };
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
        assert!(unchanged(&live, &again), "only the timestamp moved");
        let mut held = live.clone();
        crate::compact::compact(&mut held);
        assert!(
            unchanged(&held, &again),
            "the stored (compact) form compares equal to a recomputed one"
        );
        let shared = apply(Some(&held), &cm(json!({"a": "1"})), &writer("two"), false).unwrap();
        assert!(!unchanged(&live, &shared), "a second owner is recorded");
        assert!(!unchanged(&held, &shared), "a second owner is recorded");
        let first_again = apply(Some(&shared), &cm(json!({"a": "1"})), &later, false).unwrap();
        assert!(
            unchanged(&shared, &first_again),
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

    fn crd_schema() -> StructuralSchema {
        StructuralSchema::compile(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "ports": {"type": "array", "items": {"type": "integer"}},
                    "env": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "scope"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "scope": {"type": "string"}, "value": {"type": "string"}}}}
                }},
                "status": {"type": "object", "properties": {
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"}}}}
                }}
            }
        }))
        .unwrap()
    }

    fn custom<'a>(manager: &'a str, schema: &'a StructuralSchema) -> Writer<'a> {
        Writer {
            schema: FieldSchema::Custom(Some(schema)),
            ..writer(manager)
        }
    }

    fn widget(body: Value) -> Value {
        let mut obj =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        deep_extend(&mut obj, body);
        obj
    }

    fn deep_extend(obj: &mut Value, body: Value) {
        if let (Value::Object(o), Value::Object(b)) = (obj, body) {
            o.extend(b);
        }
    }

    fn conditions(obj: &Value) -> Vec<(String, String)> {
        obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn fields_of<'v>(obj: &'v Value, manager: &str) -> &'v Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| &e["fieldsV1"])
            .unwrap()
    }

    #[test]
    fn two_managers_applying_different_conditions_both_keep_theirs() {
        let schema = crd_schema();
        let ready =
            widget(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let synced =
            widget(json!({"status": {"conditions": [{"type": "Synced", "status": "False"}]}}));
        let live = apply(None, &ready, &custom("a", &schema), false).unwrap();
        let live = apply(Some(&live), &synced, &custom("b", &schema), false).unwrap();
        assert_eq!(
            conditions(&live),
            vec![
                ("Ready".into(), "True".into()),
                ("Synced".into(), "False".into())
            ]
        );
        assert_eq!(
            fields_of(&live, "a"),
            &json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}}),
            "items are owned by key, like kube-apiserver records them"
        );
        let again = apply(Some(&live), &ready, &custom("a", &schema), false).unwrap();
        assert!(unchanged(&again, &live), "re-applying changes nothing");
    }

    /// What an update changes as it was computed before the walk skipped shared subtrees:
    /// every path of both objects, kept when its value differs. [`changed_fields`] must agree.
    fn changed_by_full_walk(
        old: Option<&Value>,
        new: &Value,
        schema: FieldSchema<'_>,
    ) -> (BTreeSet<FieldPath>, BTreeSet<FieldPath>) {
        let new_fields = FieldSet::of(new, schema);
        let changed: BTreeSet<FieldPath> = match old {
            None => new_fields.0.clone(),
            Some(old) => new_fields
                .0
                .iter()
                .chain(FieldSet::of(old, schema).0.iter())
                .filter(|p| differs(old, new, p))
                .cloned()
                .collect(),
        };
        let owned = changed
            .iter()
            .filter(|p| new_fields.contains(p))
            .cloned()
            .collect();
        (changed, owned)
    }

    #[test]
    fn the_changed_fields_of_an_update_are_those_of_a_walk_of_both_whole_objects() {
        let schema = crd_schema();
        let ready = |status: &str| {
            widget(
                json!({"spec": {"tags": ["a", "b"], "env": [{"name": "X", "scope": "s", "value": "1"}]},
                "status": {"conditions": [{"type": "Ready", "status": status}]}}),
            )
        };
        let cases = [
            (ready("True"), ready("False")),
            (ready("True"), ready("True")),
            (
                ready("True"),
                widget(json!({"spec": {"tags": ["b"], "env": []}, "status": {}})),
            ),
            (
                ready("True"),
                widget(json!({"spec": "scalar", "status": {"conditions": 3}})),
            ),
            (
                widget(json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": "1"}})),
                widget(
                    json!({"metadata": {"labels": {"a": "2", "b": "1"}, "resourceVersion": "2"}}),
                ),
            ),
        ];
        for (old, new) in &cases {
            for s in [
                FieldSchema::Custom(Some(&schema)),
                FieldSchema::Custom(None),
            ] {
                assert_eq!(
                    changed_fields(Some(old), new, s),
                    changed_by_full_walk(Some(old), new, s),
                    "{old} -> {new}"
                );
                assert_eq!(
                    changed_fields(None, new, s),
                    changed_by_full_walk(None, new, s)
                );
            }
        }
        // Containers, ports and env of a Deployment: lists keyed by name, port and name.
        let old = deployment(json!([{"name": "a", "image": "a:1",
            "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}]}]));
        let new = deployment(json!([{"name": "a", "image": "a:2",
            "ports": [{"containerPort": 80}, {"containerPort": 81}]}, {"name": "b"}]));
        let s = FieldSchema::builtin("apps", "v1", "Deployment");
        assert_eq!(
            changed_fields(Some(&old), &new, s),
            changed_by_full_walk(Some(&old), &new, s)
        );
        assert!(!changed_fields(Some(&old), &new, s).0.is_empty());
    }

    /// Objects of a few field names, shaped to meet the CRD schema's set and map lists.
    fn arbitrary_object() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0..3i64).prop_map(Value::from),
            prop::sample::select(vec!["a", "b", "X", "Ready"]).prop_map(Value::from),
        ];
        let keys = prop::sample::select(vec![
            "spec",
            "status",
            "tags",
            "env",
            "conditions",
            "name",
            "scope",
            "type",
            "value",
        ]);
        leaf.prop_recursive(4, 48, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_update_changes_the_fields_a_walk_of_both_whole_objects_finds(
            old in arbitrary_object(),
            patch in arbitrary_object(),
        ) {
            let schema = crd_schema();
            let old = widget(json!({"spec": old.clone(), "status": old}));
            let mut new = old.clone();
            json_patch::merge(&mut new, &json!({"spec": patch.clone(), "status": patch}));
            for s in [FieldSchema::Custom(Some(&schema)), FieldSchema::Custom(None)] {
                proptest::prop_assert_eq!(
                    changed_fields(Some(&old), &new, s),
                    changed_by_full_walk(Some(&old), &new, s)
                );
            }
        }
    }

    proptest::proptest! {
        /// The FieldsV1 this server writes reads back as the same set and writes out the same:
        /// an entry no write touched is written back as it was read, which equals rebuilding it.
        #[test]
        fn an_untouched_entry_is_written_back_as_rebuilding_it_would(
            first in arbitrary_object(),
            second in arbitrary_object(),
            third in arbitrary_object(),
        ) {
            let schema = crd_schema();
            let body = |v: &Value| widget(json!({"spec": v.clone(), "status": v.clone()}));
            let mut live = body(&first);
            record_update(None, &mut live, &custom("a", &schema));
            let mut next = body(&second);
            json_patch::merge(&mut next, &json!({"metadata": live["metadata"].clone()}));
            record_update(Some(&live), &mut next, &custom("b", &schema));
            let config = body(&third);
            let applied = match apply(Some(&next), &config, &custom("c", &schema), true) {
                Ok(applied) => applied,
                Err(_) => next,
            };
            let rebuilt = {
                let mut entries = read_entries(&applied);
                for e in &mut entries {
                    e.read_as = None;
                }
                let mut obj = applied.clone();
                write_entries(&mut obj, entries);
                obj
            };
            let reused = {
                let mut obj = applied.clone();
                write_entries(&mut obj, read_entries(&applied));
                obj
            };
            proptest::prop_assert_eq!(
                &rebuilt["metadata"]["managedFields"],
                &reused["metadata"]["managedFields"]
            );
            proptest::prop_assert_eq!(
                &reused["metadata"]["managedFields"],
                &applied["metadata"]["managedFields"]
            );
        }
    }

    #[test]
    fn an_update_rebuilds_only_the_entries_whose_fields_it_changed() {
        let schema = crd_schema();
        let mut live = widget(json!({"spec": {"tags": ["a"]}, "status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}));
        record_update(None, &mut live, &custom("creator", &schema));
        let mut next = live.clone();
        next["status"]["conditions"][0]["status"] = json!("False");
        record_update(Some(&live), &mut next, &custom("status-writer", &schema));
        let entries = read_entries(&next);
        assert_eq!(entries.len(), 2, "{next}");
        // A FieldsV1 key this server does not read marks the creator's entry as read.
        let mut marked = next.clone();
        marked["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["x:unread"] = json!({});
        let mut after = marked.clone();
        after["status"]["conditions"][0]["reason"] = json!("Why");
        record_update(Some(&marked), &mut after, &custom("status-writer", &schema));
        assert_eq!(
            fields_of(&after, "creator"),
            fields_of(&marked, "creator"),
            "the entry the update did not touch is written as it was read"
        );
        assert_eq!(
            fields_of(&after, "status-writer"),
            &json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {
                "f:reason": {}, "f:status": {}}}}}),
            "the writer's entry is rebuilt with what it now owns (the item stays the creator's)"
        );
        // The creator loses spec.tags to another writer: its entry is rebuilt without them.
        let mut taken = after.clone();
        taken["spec"]["tags"] = json!(["b"]);
        record_update(Some(&after), &mut taken, &custom("tagger", &schema));
        assert!(
            fields_of(&taken, "creator")
                .pointer("/f:spec/x:unread")
                .is_none(),
            "rebuilt from its set: {}",
            fields_of(&taken, "creator")
        );
    }

    fn deployment_writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "apps/v1",
            subresource: "",
            now: "2026-01-01T00:00:00Z",
            schema: FieldSchema::builtin("apps", "v1", "Deployment"),
        }
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn a_deployments_containers_ports_and_env_are_owned_by_their_kubernetes_keys() {
        let a = deployment(json!([{"name": "a", "image": "a:1",
            "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}]}]));
        let b = deployment(json!([{"name": "b", "image": "b:1"}]));
        let live = apply(None, &a, &deployment_writer("ma"), false).unwrap();
        let live = apply(Some(&live), &b, &deployment_writer("mb"), false).unwrap();
        let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let owned = &fields_of(&live, "ma")["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"a"}"#];
        assert!(owned["f:env"][r#"k:{"name":"X"}"#]["f:value"].is_object());
        assert!(
            owned["f:ports"][r#"k:{"containerPort":80,"protocol":"TCP"}"#].is_object(),
            "a port without a protocol is keyed as the TCP port it is defaulted to: {owned}"
        );
        // The live port, defaulted, is the same item the applier owns.
        let mut defaulted = live.clone();
        defaulted["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] =
            json!("TCP");
        let again = apply(Some(&defaulted), &a, &deployment_writer("ma"), false).unwrap();
        assert_eq!(
            again["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        let clash = deployment(json!([{"name": "a", "image": "a:2"}]));
        let Err(ApplyError::Conflicts(c)) =
            apply(Some(&live), &clash, &deployment_writer("mb"), false)
        else {
            panic!("a conflict")
        };
        let shown = c.messages.join("\n");
        assert!(
            shown.contains(r#".spec.template.spec.containers[name="a"].image"#),
            "{shown}"
        );
    }

    #[test]
    fn a_manager_that_stops_applying_an_item_removes_only_its_item() {
        let schema = crd_schema();
        let both = widget(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Extra", "status": "True"}]}}));
        let live = apply(None, &both, &custom("a", &schema), false).unwrap();
        let synced =
            widget(json!({"status": {"conditions": [{"type": "Synced", "status": "False"}]}}));
        let live = apply(Some(&live), &synced, &custom("b", &schema), false).unwrap();
        let ready =
            widget(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let live = apply(Some(&live), &ready, &custom("a", &schema), false).unwrap();
        assert_eq!(
            conditions(&live),
            vec![
                ("Ready".into(), "True".into()),
                ("Synced".into(), "False".into())
            ]
        );
        let nothing = widget(json!({}));
        let live = apply(Some(&live), &nothing, &custom("b", &schema), false).unwrap();
        assert_eq!(conditions(&live), vec![("Ready".into(), "True".into())]);
    }

    #[test]
    fn an_item_another_manager_still_has_fields_in_stays_with_only_those_fields() {
        let schema = crd_schema();
        let full = widget(
            json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]}}),
        );
        let live = apply(None, &full, &custom("a", &schema), false).unwrap();
        let mut updated = live.clone();
        updated["status"]["conditions"][0]["reason"] = json!("Checked");
        record_update(Some(&live), &mut updated, &custom("controller", &schema));
        let live = apply(
            Some(&updated),
            &widget(json!({})),
            &custom("a", &schema),
            false,
        )
        .unwrap();
        assert_eq!(
            live["status"]["conditions"],
            json!([{"type": "Ready", "reason": "Checked"}]),
            "the applier's status goes, the controller's reason and the item's key stay"
        );
    }

    #[test]
    fn conflicts_are_per_item_and_name_the_item_key() {
        let schema = crd_schema();
        let ready =
            widget(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let live = apply(None, &ready, &custom("a", &schema), false).unwrap();
        let other = widget(json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "Synced", "status": "True"}]}}));
        let Err(ApplyError::Conflicts(c)) =
            apply(Some(&live), &other, &custom("b", &schema), false)
        else {
            panic!("expected a conflict");
        };
        assert_eq!(
            c.messages,
            vec!["conflict with \"a\": .status.conditions[type=\"Ready\"].status"]
        );
        let forced = apply(Some(&live), &other, &custom("b", &schema), true).unwrap();
        assert_eq!(
            conditions(&forced),
            vec![
                ("Ready".into(), "False".into()),
                ("Synced".into(), "True".into())
            ]
        );
        assert_eq!(
            fields_of(&forced, "a"),
            &json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:type": {}}}}}),
            "the forced field moved, the item and its key stay shared"
        );
    }

    #[test]
    fn set_items_are_owned_by_value_and_atomic_lists_whole() {
        let schema = crd_schema();
        let a = widget(json!({"spec": {"tags": ["x"], "ports": [1]}}));
        let live = apply(None, &a, &custom("a", &schema), false).unwrap();
        assert_eq!(
            fields_of(&live, "a"),
            &json!({"f:spec": {"f:ports": {}, "f:tags": {"v:\"x\"": {}}}})
        );
        let b = widget(json!({"spec": {"tags": ["y"]}}));
        let live = apply(Some(&live), &b, &custom("b", &schema), false).unwrap();
        assert_eq!(live["spec"]["tags"], json!(["x", "y"]));
        let Err(ApplyError::Conflicts(_)) = apply(
            Some(&live),
            &widget(json!({"spec": {"ports": [2]}})),
            &custom("b", &schema),
            false,
        ) else {
            panic!("an atomic list owned by another manager conflicts as a whole");
        };
    }

    #[test]
    fn map_lists_with_several_keys_match_on_all_of_them() {
        let schema = crd_schema();
        let a = widget(json!({"spec": {"env": [{"name": "A", "scope": "x", "value": "1"}]}}));
        let live = apply(None, &a, &custom("a", &schema), false).unwrap();
        let b = widget(json!({"spec": {"env": [{"name": "A", "scope": "y", "value": "2"}]}}));
        let live = apply(Some(&live), &b, &custom("b", &schema), false).unwrap();
        assert_eq!(live["spec"]["env"].as_array().unwrap().len(), 2);
        assert!(
            fields_of(&live, "b")["f:spec"]["f:env"]
                .get("k:{\"name\":\"A\",\"scope\":\"y\"}")
                .is_some()
        );
    }

    #[test]
    fn applying_duplicate_items_of_an_associative_list_is_invalid() {
        let schema = crd_schema();
        let dup = widget(json!({"status": {"conditions": [{"type": "Ready"}, {"type": "Ready"}]}}));
        let err = apply(None, &dup, &custom("a", &schema), false).unwrap_err();
        assert!(
            matches!(err, ApplyError::Duplicate { ref field, .. } if field == "status.conditions")
        );
    }

    #[test]
    fn finalizers_are_a_set_and_owner_references_are_keyed_by_uid_for_every_kind() {
        let with = |body: Value| {
            let mut obj = cm(json!({}));
            obj["metadata"]
                .as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            obj
        };
        let live = apply(
            None,
            &with(json!({"finalizers": ["a/x"], "ownerReferences": [{"uid": "1", "name": "o"}]})),
            &writer("one"),
            false,
        )
        .unwrap();
        let live = apply(
            Some(&live),
            &with(json!({"finalizers": ["b/y"], "ownerReferences": [{"uid": "2", "name": "p"}]})),
            &writer("two"),
            false,
        )
        .unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["a/x", "b/y"]));
        assert_eq!(
            live["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let live = apply(Some(&live), &cm(json!({})), &writer("one"), false).unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["b/y"]));
        assert_eq!(
            live["metadata"]["ownerReferences"],
            json!([{"uid": "2", "name": "p"}])
        );
    }

    #[test]
    fn fields_v1_with_items_round_trips() {
        let v1 = json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}},
            "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}});
        assert_eq!(FieldSet::from_fields_v1(&v1).to_fields_v1(), v1);
    }
}
