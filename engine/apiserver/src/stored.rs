//! A stored object as the object layer holds it: the compact JSON the store wrote for it, not
//! its tree.
//!
//! A `serde_json` tree of a small object is about four times its JSON (every map is a B-tree
//! node with room for eleven entries, every key and string its own allocation): at 10,000
//! claims the trees were 459 MB of the claims benchmark's 800, and each write read its object's
//! tree, scattered over the heap, cold. The bytes are shared with the store's write and the
//! watch history's event (one allocation for all three); a tree is built from them when a write,
//! a selector or a conversion needs one, and is shared while anything still holds the one the
//! last write made (a response, a recent watch event, a write in flight): [`Stored::tree`].
//! Lists and watches that show objects as stored send the bytes unparsed ([`sends_as_stored`]).

use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde_json::Value;

use crate::cluster::Target;

/// One stored version of an object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object as compact JSON ([`crate::compact::object_json`]).
    json: Bytes,
    /// The tree the write that stored this version made, while anything else holds it.
    tree: Weak<Value>,
    /// `metadata.resourceVersion`.
    rv: u64,
    /// Whether `metadata.deletionTimestamp` is set.
    deleting: bool,
}

impl Stored {
    /// The version `tree` (as the cluster holds it, managedFields compact), whose JSON is `json`.
    pub(crate) fn new(tree: &Arc<Value>, json: Bytes) -> Stored {
        Stored {
            json,
            tree: Arc::downgrade(tree),
            rv: crate::object::resource_version(tree).parse().unwrap_or(0),
            deleting: crate::object::is_deleting(tree),
        }
    }

    /// A version known only as a tree (an older version a list restores): its JSON is written.
    pub(crate) fn of_tree(tree: &Arc<Value>) -> Stored {
        Stored::new(tree, Bytes::from(crate::compact::object_json(tree)))
    }

    /// A version read back from the store: its tree, for the indexes built at start, and the
    /// stored form. `None` when the bytes are not an object's JSON.
    pub(crate) fn load(json: Bytes) -> Result<(Stored, Arc<Value>), String> {
        let tree: Value = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        if crate::compact::check_input(&tree).is_err() {
            return Err("metadata.managedFields is not a list".into());
        }
        let tree = Arc::new(tree);
        Ok((Stored::new(&tree, json), tree))
    }

    /// The object as compact JSON.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The object's tree: the one its write made while that is still held (managedFields
    /// compact), else parsed from the JSON, which the object layer wrote and so always parses
    /// ([`parse`]: managedFields a list).
    pub fn tree(&self) -> Arc<Value> {
        if let Some(tree) = self.held_tree() {
            return tree;
        }
        Arc::new(parse(&self.json).unwrap_or(Value::Null))
    }

    /// The tree its write made, if anything still holds it.
    pub(crate) fn held_tree(&self) -> Option<Arc<Value>> {
        self.tree.upgrade()
    }

    /// Whether the tree its write made is still held (by anything but this).
    #[cfg(test)]
    pub(crate) fn tree_is_held(&self) -> bool {
        self.tree.strong_count() > 0
    }

    /// Its resource version.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Whether it is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.deleting
    }
}

/// A stored object's tree from its compact JSON. Its managedFields stay a list, as parsed: a
/// tree built again is read by a write (whose field ownership decodes them anyway) or a
/// selector, and dropped; packing them into text ([`crate::compact::compact`]) only to decode
/// them again was a third of a write's extra cost in the object-layer bench.
pub(crate) fn parse(json: &[u8]) -> Option<Value> {
    serde_json::from_slice(json).ok()
}

/// [`parse`] in the shape the cluster holds a tree it keeps (managedFields compact): an old
/// watch event's object, shown the same as when it was new.
pub(crate) fn parse_compact(json: &[u8]) -> Option<Value> {
    let mut object = parse(json)?;
    crate::compact::compact(&mut object);
    Some(object)
}

/// Tells whether `t` shows an object exactly as stored, from the `apiVersion` and `kind` of its
/// JSON without parsing the rest: [`crate::builtin::served`] converts or restamps an object by
/// its resource, the version asked for and those two fields alone
/// (`http::tests::watch_lines_send_an_old_events_json_unparsed_only_in_the_stored_shape` holds
/// it to that). The answer for the last pair seen is kept: a list's objects mostly share theirs.
pub(crate) struct AsStored<'t> {
    t: &'t Target,
    last: Option<(TypeMeta, bool)>,
}

/// The two fields; every other is skipped unread.
#[derive(serde::Deserialize, PartialEq)]
struct TypeMeta {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

impl<'t> AsStored<'t> {
    pub(crate) fn new(t: &'t Target) -> Self {
        AsStored { t, last: None }
    }

    /// Whether the object whose JSON is `json` is shown as stored.
    pub(crate) fn check(&mut self, json: &[u8]) -> bool {
        let Ok(meta) = serde_json::from_slice::<TypeMeta>(json) else {
            return false;
        };
        if let Some((last, answer)) = &self.last
            && *last == meta
        {
            return *answer;
        }
        let head = serde_json::json!({"apiVersion": meta.api_version, "kind": meta.kind});
        let answer = matches!(
            crate::builtin::served(self.t, &head),
            std::borrow::Cow::Borrowed(_)
        );
        self.last = Some((meta, answer));
        answer
    }

    /// Writes `stored` as the target shows it: its bytes when shown as stored, else its tree
    /// converted.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, stored: &Stored) {
        if self.check(&stored.json) {
            out.extend_from_slice(&stored.json);
        } else {
            let tree = stored.tree();
            crate::compact::write_object(out, &crate::builtin::served(self.t, &tree));
        }
    }
}

/// A page of a list as `t` shows it: `{"kind", "apiVersion", "metadata": list_meta, "items"}`,
/// each item's stored bytes copied when `t` shows it as stored.
pub fn list_json(t: &Target, page: &crate::cluster::ListPage, list_meta: Value) -> Vec<u8> {
    let head = serde_json::json!({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version(&t.version),
        "metadata": list_meta});
    let mut as_stored = AsStored::new(t);
    let size: usize = page.items.iter().map(|s| s.json.len() + 1).sum();
    crate::compact::list_json(&head, size, page.items.iter(), |out, item| {
        as_stored.write(out, item);
    })
}
