//! One resource's stored objects, by namespace and name.
//!
//! Lists read them in key order (a B-tree); everything else looks one up by its key: every
//! get, and every write before it decides anything. A B-tree search compares the key with a
//! dozen or more others, each a pair of strings elsewhere in memory; with tens of thousands of
//! objects those are out of cache, so the search costs more per object the more objects there
//! are (at 10,000 claims the lookups were the one part of the API server whose cost per claim
//! grew in profiles). So the objects are also hashed by key ([`IndexMap`], whose
//! [`Equivalent`] lets a lookup borrow the namespace and name instead of building a key), and
//! a lookup costs the same however many there are. Both maps hold the same `Arc`s; every
//! change goes through [`Objects::insert`] and [`Objects::remove`], which keep them equal.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::RangeBounds;
use std::sync::Arc;

use indexmap::{Equivalent, IndexMap};
use serde_json::Value;

/// An object's namespace (empty when cluster-scoped) and name.
pub(crate) type ObjectKey = (String, String);

#[derive(Default, Clone, Debug)]
pub(crate) struct Objects {
    ordered: BTreeMap<ObjectKey, Arc<Value>>,
    hashed: IndexMap<ObjectKey, Arc<Value>>,
}

/// A key borrowed for a lookup: hashes as the [`ObjectKey`] it equals.
#[derive(Clone, Copy)]
struct Borrowed<'a>(&'a str, &'a str);

impl Hash for Borrowed<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A tuple hashes its fields in order, and a `String` as its `str`.
        (self.0, self.1).hash(state);
    }
}

impl Equivalent<ObjectKey> for Borrowed<'_> {
    fn equivalent(&self, key: &ObjectKey) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl Objects {
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        self.hashed.get(&Borrowed(namespace, name))
    }

    pub(crate) fn contains(&self, namespace: &str, name: &str) -> bool {
        self.hashed.contains_key(&Borrowed(namespace, name))
    }

    /// Stores `obj` under `key`, returning what it replaces.
    pub(crate) fn insert(&mut self, key: ObjectKey, obj: Arc<Value>) -> Option<Arc<Value>> {
        match self.hashed.get_mut(&Borrowed(&key.0, &key.1)) {
            Some(held) => {
                let old = std::mem::replace(held, obj.clone());
                if let Some(held) = self.ordered.get_mut(&key) {
                    *held = obj;
                }
                Some(old)
            }
            None => {
                self.ordered.insert(key.clone(), obj.clone());
                self.hashed.insert(key, obj);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let (key, old) = self.hashed.swap_remove_entry(&Borrowed(namespace, name))?;
        self.ordered.remove(&key);
        Some(old)
    }

    /// The objects in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<Value>> {
        self.ordered.values()
    }

    /// The objects whose keys fall in `range`, in key order.
    pub(crate) fn range<R: RangeBounds<ObjectKey>>(
        &self,
        range: R,
    ) -> impl Iterator<Item = (&ObjectKey, &Arc<Value>)> {
        self.ordered.range(range)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hashed.is_empty()
    }
}

impl IntoIterator for Objects {
    type Item = (ObjectKey, Arc<Value>);
    type IntoIter = std::collections::btree_map::IntoIter<ObjectKey, Arc<Value>>;

    /// The objects in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.ordered.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(ns: &str, name: &str) -> ObjectKey {
        (ns.to_owned(), name.to_owned())
    }

    #[test]
    fn lookups_lists_and_removals_see_the_same_objects() {
        let mut objects = Objects::default();
        let a = Arc::new(json!({"v": 1}));
        let b = Arc::new(json!({"v": 2}));
        assert_eq!(objects.insert(key("ns", "b"), b.clone()), None);
        assert_eq!(objects.insert(key("ns", "a"), a.clone()), None);
        assert_eq!(objects.insert(key("", "c"), a.clone()), None);
        assert_eq!(objects.get("ns", "a"), Some(&a));
        assert!(objects.contains("", "c"));
        assert!(
            !objects.contains("ns", "c"),
            "the namespace is part of the key"
        );
        assert!(
            !objects.contains("n", "sa"),
            "the key is two strings, not one"
        );

        // Replacing keeps the key's place in the order and answers with what it replaced.
        let a2 = Arc::new(json!({"v": 3}));
        assert_eq!(objects.insert(key("ns", "a"), a2.clone()), Some(a.clone()));
        assert_eq!(objects.get("ns", "a"), Some(&a2));
        let listed: Vec<(String, Value)> = objects
            .range(key("ns", "")..)
            .map(|(k, v)| (k.1.clone(), (**v).clone()))
            .collect();
        assert_eq!(
            listed,
            vec![("a".into(), json!({"v": 3})), ("b".into(), json!({"v": 2}))]
        );

        assert_eq!(objects.remove("ns", "a"), Some(a2));
        assert_eq!(objects.remove("ns", "a"), None);
        assert_eq!(objects.get("ns", "a"), None);
        // The removal swapped another entry into the hashed map's freed place; both still
        // answer for it.
        assert_eq!(objects.get("ns", "b"), Some(&b));
        assert_eq!(objects.values().count(), 2);
        objects.remove("ns", "b");
        objects.remove("", "c");
        assert!(objects.is_empty());
        assert_eq!(objects.values().count(), 0);
    }
}
