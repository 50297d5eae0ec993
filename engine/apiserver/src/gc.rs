//! The embedded control plane's own controllers: garbage collection by ownerReferences
//! (background, foreground with `blockOwnerDeletion`, orphan), namespace deletion and CRD
//! instance cleanup.
//!
//! The object layer keeps an [`Index`] current on every write and removal: objects by uid, and
//! for every owner uid the uids of its dependents. Each write marks the few objects whose
//! collection decision it may have changed (the written object, the dependents of an owner that
//! went or started deleting, the owners of a dependent that went or changed owners, a
//! terminating namespace or CRD that lost content). A sweep decides only for those ([`decide`],
//! pure over a [`Lookup`]), then carries the actions out through the cluster like any client.
//! A sweep's cost is that of the changes since the last one, never of the number of objects: the
//! one full pass is at start, when every object with owners or a deletion in progress is marked
//! (dependents whose owner went while the server was down are collected then).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{
    CRD_CLEANUP_FINALIZER, Cluster, DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER,
    Propagation, Target,
};
use crate::object;
use crate::resource::{CRD_GROUP, CRD_RESOURCE, ResourceType};

const MANAGER: &str = "strata-garbage-collector";

/// An object with its resource type.
pub(crate) type Entry = (Arc<ResourceType>, Arc<Value>);

/// One thing a sweep does, to the object with this uid.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete a dependent (or namespace content, or CRD instance) with this propagation.
    Delete {
        uid: String,
        propagation: Propagation,
    },
    /// Remove owner references to these uids (their owners orphan their dependents).
    DropOwners { uid: String, uids: BTreeSet<String> },
    /// Remove a server-managed finalizer: its work is done.
    RemoveFinalizer {
        uid: String,
        finalizer: &'static str,
    },
    /// A terminating namespace is empty: remove it.
    RemoveNamespace { uid: String },
}

impl Action {
    /// The uid of the object the action is for.
    pub fn uid(&self) -> &str {
        match self {
            Action::Delete { uid, .. }
            | Action::DropOwners { uid, .. }
            | Action::RemoveFinalizer { uid, .. }
            | Action::RemoveNamespace { uid } => uid,
        }
    }
}

pub(crate) fn is_crd(rt: &ResourceType) -> bool {
    rt.group == CRD_GROUP && rt.resource == CRD_RESOURCE
}

pub(crate) fn is_namespace(rt: &ResourceType) -> bool {
    rt.builtin && rt.group.is_empty() && rt.resource == "namespaces"
}

/// What [`decide`] reads besides the object it decides for.
pub(crate) trait Lookup {
    /// The object with this uid, if it exists.
    fn object(&self, uid: &str) -> Option<Entry>;
    /// The existing objects naming `uid` among their owners.
    fn dependents(&self, uid: &str) -> Vec<Entry>;
    /// The namespaced objects in namespace `ns`.
    fn namespace_contents(&self, ns: &str) -> Vec<Entry>;
    /// The objects of the custom resource `group`/`resource`.
    fn instances(&self, group: &str, resource: &str) -> Vec<Entry>;
}

fn has_finalizer(o: &Value, finalizer: &str) -> bool {
    object::finalizers(o).iter().any(|f| f == finalizer)
}

/// Decides the actions for one object, from what `lookup` says about its owners, its
/// dependents, and (for a terminating namespace or CRD) its contents.
pub(crate) fn decide(lookup: &impl Lookup, (rt, o): &Entry) -> Vec<Action> {
    let mut actions = Vec::new();
    let uid = object::uid(o);
    let owners = object::owner_uids(o);
    if !owners.is_empty() && !object::is_deleting(o) {
        let present: Vec<Arc<Value>> = owners
            .iter()
            .filter_map(|(u, _)| lookup.object(u))
            .map(|(_, owner)| owner)
            .collect();
        let orphaning: BTreeSet<String> = present
            .iter()
            .filter(|owner| object::is_deleting(owner) && has_finalizer(owner, ORPHAN_FINALIZER))
            .map(|owner| object::uid(owner).to_owned())
            .collect();
        if present.is_empty() {
            actions.push(Action::Delete {
                uid: uid.to_owned(),
                propagation: Propagation::Background,
            });
        } else if !orphaning.is_empty() {
            actions.push(Action::DropOwners {
                uid: uid.to_owned(),
                uids: orphaning,
            });
        } else if present
            .iter()
            .all(|owner| object::is_deleting(owner) && has_finalizer(owner, FOREGROUND_FINALIZER))
        {
            actions.push(Action::Delete {
                uid: uid.to_owned(),
                propagation: Propagation::Foreground,
            });
        }
    }
    if !object::is_deleting(o) {
        return actions;
    }
    let finalizers = object::finalizers(o);
    let waits_for_dependents = finalizers
        .iter()
        .any(|f| f == FOREGROUND_FINALIZER || f == ORPHAN_FINALIZER);
    if waits_for_dependents {
        let deps = lookup.dependents(uid);
        let blocking = deps.iter().any(|(_, d)| {
            object::owner_uids(d)
                .iter()
                .any(|(owner, block)| *block && owner == uid)
        });
        if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) && !blocking {
            actions.push(Action::RemoveFinalizer {
                uid: uid.to_owned(),
                finalizer: FOREGROUND_FINALIZER,
            });
        }
        if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) && deps.is_empty() {
            actions.push(Action::RemoveFinalizer {
                uid: uid.to_owned(),
                finalizer: ORPHAN_FINALIZER,
            });
        }
    }
    if is_namespace(rt) {
        let contents = lookup.namespace_contents(object::name(o));
        if contents.is_empty() {
            if finalizers.is_empty() {
                actions.push(Action::RemoveNamespace {
                    uid: uid.to_owned(),
                });
            }
        } else {
            actions.extend(delete_all(contents));
        }
    }
    if is_crd(rt)
        && finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER)
        && let Some(served) = ResourceType::from_crd(o)
    {
        let instances = lookup.instances(&served.group, &served.resource);
        if instances.is_empty() {
            actions.push(Action::RemoveFinalizer {
                uid: uid.to_owned(),
                finalizer: CRD_CLEANUP_FINALIZER,
            });
        } else {
            actions.extend(delete_all(instances));
        }
    }
    actions
}

/// Background deletions of those of `objects` not being deleted already.
fn delete_all(objects: Vec<Entry>) -> impl Iterator<Item = Action> {
    objects
        .into_iter()
        .filter(|(_, o)| !object::is_deleting(o))
        .map(|(_, o)| Action::Delete {
            uid: object::uid(&o).to_owned(),
            propagation: Propagation::Background,
        })
}

/// Objects by uid and owners' dependents, kept current by every write, and the uids whose
/// collection decision a write may have changed since the last sweep.
#[derive(Default)]
pub(crate) struct Index {
    by_uid: HashMap<Box<str>, Entry>,
    /// Owner uid (of an existing owner or not) → uids of the existing objects naming it.
    dependents: HashMap<Box<str>, BTreeSet<Box<str>>>,
    marked: BTreeSet<Box<str>>,
}

/// What of an object the collector's decisions depend on.
#[derive(PartialEq)]
struct Facts {
    owners: Vec<(String, bool)>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Facts {
    fn of(o: &Value) -> Facts {
        Facts {
            owners: object::owner_uids(o),
            deleting: object::is_deleting(o),
            finalizers: object::finalizers(o),
        }
    }
}

impl Index {
    /// An index of `objects`, with every object that has owners or is being deleted marked
    /// (the one full pass: at start).
    pub(crate) fn build(objects: impl IntoIterator<Item = Entry>) -> Index {
        let mut index = Index::default();
        for (rt, o) in objects {
            index.note(&rt, None, Some(&o));
        }
        index
    }

    /// Records a write: `old` was replaced by `new` (`None`: absent before / removed now), and
    /// marks what the change may concern.
    pub(crate) fn note(
        &mut self,
        rt: &Arc<ResourceType>,
        old: Option<&Arc<Value>>,
        new: Option<&Arc<Value>>,
    ) {
        let Some(uid) = new.or(old).map(|o| object::uid(o)) else {
            return;
        };
        if uid.is_empty() {
            return;
        }
        let before = old.map(|o| Facts::of(o));
        let after = new.map(|o| Facts::of(o));
        if before == after && old.is_some() {
            // Nothing the collector reads changed; keep the stored version current.
            if let Some(o) = new {
                self.by_uid.insert(uid.into(), (rt.clone(), o.clone()));
            }
            return;
        }
        let owners_before: BTreeSet<&str> = before
            .iter()
            .flat_map(|f| f.owners.iter().map(|(u, _)| u.as_str()))
            .collect();
        let owners_after: BTreeSet<&str> = after
            .iter()
            .flat_map(|f| f.owners.iter().map(|(u, _)| u.as_str()))
            .collect();
        for owner in owners_before.difference(&owners_after) {
            if let Some(deps) = self.dependents.get_mut(*owner) {
                deps.remove(uid);
                if deps.is_empty() {
                    self.dependents.remove(*owner);
                }
            }
        }
        for owner in owners_after.difference(&owners_before) {
            self.dependents
                .entry((*owner).into())
                .or_default()
                .insert(uid.into());
        }
        match new {
            Some(o) => {
                self.by_uid.insert(uid.into(), (rt.clone(), o.clone()));
            }
            None => {
                self.by_uid.remove(uid);
            }
        }
        // The object itself: an owner may be missing, or its own deletion may be done.
        if let Some(f) = &after
            && (!f.owners.is_empty() || f.deleting)
        {
            self.mark(uid);
        }
        // Its dependents, when it went or its deletion (or deletion mode) changed.
        let deletion = |f: &Option<Facts>| f.as_ref().map(|f| (f.deleting, f.finalizers.clone()));
        if new.is_none() || deletion(&before) != deletion(&after) {
            let deps: Vec<Box<str>> = self
                .dependents
                .get(uid)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default();
            for d in deps {
                self.mark(&d);
            }
        }
        // Its former owners: one may be waiting for this dependent to go or to let go of it
        // (an owner a new dependent names has nothing to wait for that it did not before).
        let owners_changed =
            before.as_ref().map(|f| &f.owners) != after.as_ref().map(|f| &f.owners);
        if new.is_none() || owners_changed {
            let owners: Vec<String> = owners_before.iter().map(|s| (*s).to_owned()).collect();
            for owner in owners {
                self.mark(&owner);
            }
        }
    }

    /// Marks an existing object for the next sweep.
    pub(crate) fn mark(&mut self, uid: &str) {
        if self.by_uid.contains_key(uid) {
            self.marked.insert(uid.into());
        }
    }

    /// Whether anything is marked.
    pub(crate) fn has_marked(&self) -> bool {
        !self.marked.is_empty()
    }

    /// The marked objects, unmarked.
    pub(crate) fn take_marked(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.marked)
            .into_iter()
            .filter_map(|u| self.by_uid.get(&u).cloned())
            .collect()
    }

    /// The object with this uid.
    pub(crate) fn object(&self, uid: &str) -> Option<Entry> {
        self.by_uid.get(uid).cloned()
    }

    /// The existing objects naming `uid` among their owners.
    pub(crate) fn dependents(&self, uid: &str) -> Vec<Entry> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.by_uid.get(d).cloned())
            .collect()
    }

    /// How many objects the index holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_uid.len()
    }
}

/// A lookup over an index alone: contents are found by scanning every object (for tests and
/// [`plan`]; the cluster answers those from its ordered maps).
impl Lookup for Index {
    fn object(&self, uid: &str) -> Option<Entry> {
        Index::object(self, uid)
    }

    fn dependents(&self, uid: &str) -> Vec<Entry> {
        Index::dependents(self, uid)
    }

    fn namespace_contents(&self, ns: &str) -> Vec<Entry> {
        self.by_uid
            .values()
            .filter(|(t, o)| t.namespaced && object::namespace(o) == ns)
            .cloned()
            .collect()
    }

    fn instances(&self, group: &str, resource: &str) -> Vec<Entry> {
        self.by_uid
            .values()
            .filter(|(t, _)| t.group == group && t.resource == resource && !t.builtin)
            .cloned()
            .collect()
    }
}

/// Decides every action for a set of objects at once (a full pass, in the order given).
#[cfg(test)]
pub(crate) fn plan(objects: &[Entry]) -> Vec<Action> {
    let index = Index::build(objects.iter().cloned());
    objects.iter().flat_map(|e| decide(&index, e)).collect()
}

fn target_of(rt: &Arc<ResourceType>, obj: &Value) -> Target {
    Target {
        rt: rt.clone(),
        version: rt.storage_version().to_owned(),
        namespace: object::namespace(obj).to_owned(),
        strict_fields: false,
        warnings: None,
        dry_run: false,
        requester: None,
    }
}

/// Carries out one action on `(rt, o)`, the object it was decided for. `false`: it failed in a
/// way worth retrying (not found and conflicts mean the object changed, and its change marked
/// whatever needs deciding again).
async fn act(cluster: &Cluster, (rt, o): &Entry, action: Action) -> bool {
    let result = match action {
        Action::Delete { propagation, .. } => {
            let opts = DeleteOptions {
                propagation,
                precondition_uid: Some(object::uid(o).to_owned()),
                precondition_rv: None,
            };
            cluster
                .delete(&target_of(rt, o), object::name(o), &opts)
                .await
                .map(drop)
        }
        Action::DropOwners { uids, .. } => cluster
            .modify(&target_of(rt, o), object::name(o), MANAGER, |obj| {
                let m = object::meta_mut(obj);
                if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
                    refs.retain(|r| {
                        !r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| uids.contains(u))
                    });
                    if refs.is_empty() {
                        m.remove("ownerReferences");
                    }
                }
            })
            .await
            .map(drop),
        Action::RemoveFinalizer { finalizer, .. } => cluster
            .modify(&target_of(rt, o), object::name(o), MANAGER, |obj| {
                let remaining = object::finalizers(obj)
                    .into_iter()
                    .filter(|f| f != finalizer)
                    .collect();
                object::set_finalizers(obj, remaining);
            })
            .await
            .map(drop),
        Action::RemoveNamespace { .. } => cluster
            .purge(&target_of(rt, o), object::name(o), object::uid(o))
            .await
            .map(drop),
    };
    match result {
        Ok(()) => true,
        Err(e) if e.code() == 404 || e.code() == 409 => true,
        Err(e) => {
            tracing::warn!("garbage collector: {e}");
            false
        }
    }
}

/// How long a failed action waits before its object is decided again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs sweeps until the process ends: each over the objects marked since the previous one,
/// waiting for the object layer's wake-up when nothing is marked.
pub(crate) async fn run(cluster: Arc<Cluster>) {
    loop {
        let Some(failed) = sweep(&cluster).await else {
            cluster.gc_wake.notified().await;
            continue;
        };
        if !failed.is_empty() {
            tokio::time::sleep(RETRY_AFTER).await;
            cluster.gc_mark(failed.iter().map(String::as_str));
        }
    }
}

/// One sweep: carries out the actions for the objects marked since the previous sweep. `None`
/// when there was nothing to do; else the uids whose action failed in a way worth retrying.
pub(crate) async fn sweep(cluster: &Cluster) -> Option<Vec<String>> {
    let actions = cluster.gc_sweep();
    if actions.is_empty() {
        return None;
    }
    let mut failed = Vec::new();
    for (action, entry) in actions {
        let uid = action.uid().to_owned();
        if !act(cluster, &entry, action).await {
            failed.push(uid);
        }
    }
    Some(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{GroupResource, Registry};
    use serde_json::json;

    fn cm(name: &str, uid: &str, owners: Value, deleting: Option<&[&str]>) -> Entry {
        let rt = Registry::with_builtins()
            .get(&GroupResource::new("", "configmaps"))
            .unwrap();
        let mut o = json!({"metadata": {"name": name, "namespace": "default", "uid": uid, "ownerReferences": owners}});
        if let Some(f) = deleting {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            o["metadata"]["finalizers"] = json!(f);
        }
        (rt, Arc::new(o))
    }

    fn namespace(name: &str, uid: &str, deleting: bool) -> Entry {
        let rt = Registry::with_builtins()
            .get(&GroupResource::new("", "namespaces"))
            .unwrap();
        let mut o = json!({"metadata": {"name": name, "uid": uid}});
        if deleting {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        (rt, Arc::new(o))
    }

    fn marked_uids(index: &mut Index) -> Vec<String> {
        index
            .take_marked()
            .iter()
            .map(|(_, o)| object::uid(o).to_owned())
            .collect()
    }

    fn uids(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|(_, o)| object::uid(o).to_owned())
            .collect()
    }

    #[test]
    fn a_dependent_whose_owner_is_gone_is_deleted_in_the_background() {
        let objects = vec![cm("child", "c", json!([{"uid": "gone"}]), None)];
        assert_eq!(
            plan(&objects),
            vec![Action::Delete {
                uid: "c".into(),
                propagation: Propagation::Background
            }]
        );
    }

    #[test]
    fn foreground_owner_waits_for_blocking_dependents_then_releases() {
        let owner = cm("owner", "o", json!([]), Some(&["foregroundDeletion"]));
        let child = cm(
            "child",
            "c",
            json!([{"uid": "o", "blockOwnerDeletion": true}]),
            None,
        );
        let actions = plan(&[owner.clone(), child]);
        assert_eq!(
            actions,
            vec![Action::Delete {
                uid: "c".into(),
                propagation: Propagation::Foreground
            }]
        );
        assert_eq!(
            plan(&[owner]),
            vec![Action::RemoveFinalizer {
                uid: "o".into(),
                finalizer: FOREGROUND_FINALIZER
            }]
        );
    }

    #[test]
    fn a_foreground_owner_is_not_held_by_dependents_that_do_not_block() {
        let owner = cm("owner", "o", json!([]), Some(&["foregroundDeletion"]));
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let actions = plan(&[owner, child]);
        assert!(actions.contains(&Action::RemoveFinalizer {
            uid: "o".into(),
            finalizer: FOREGROUND_FINALIZER
        }));
    }

    #[test]
    fn orphaning_owner_drops_itself_from_dependents_then_releases() {
        let owner = cm("owner", "o", json!([]), Some(&["orphan"]));
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let actions = plan(&[owner.clone(), child]);
        assert_eq!(
            actions,
            vec![Action::DropOwners {
                uid: "c".into(),
                uids: BTreeSet::from(["o".to_owned()])
            }]
        );
        assert_eq!(
            plan(&[owner]),
            vec![Action::RemoveFinalizer {
                uid: "o".into(),
                finalizer: ORPHAN_FINALIZER
            }]
        );
    }

    #[test]
    fn a_terminating_namespace_deletes_its_contents_then_goes_once_empty() {
        let ns = namespace("team", "n", true);
        let (rt, _) = cm("x", "x", json!([]), None);
        let inside = (
            rt,
            Arc::new(json!({"metadata": {"name": "x", "namespace": "team", "uid": "x"}})),
        );
        assert_eq!(
            plan(&[ns.clone(), inside]),
            vec![Action::Delete {
                uid: "x".into(),
                propagation: Propagation::Background
            }]
        );
        assert_eq!(
            plan(&[ns]),
            vec![Action::RemoveNamespace { uid: "n".into() }]
        );
    }

    #[test]
    fn the_index_finds_dependents_by_owner_uid_and_forgets_removed_ones() {
        let owner = cm("owner", "o", json!([]), None);
        let a = cm("a", "a", json!([{"uid": "o"}]), None);
        let b = cm("b", "b", json!([{"uid": "o"}, {"uid": "p"}]), None);
        let mut index = Index::build([owner.clone(), a.clone(), b.clone()]);
        assert_eq!(uids(&index.dependents("o")), ["a", "b"]);
        assert_eq!(uids(&index.dependents("p")), ["b"]);
        assert_eq!(index.len(), 3);

        // b drops owner o: only a remains o's dependent.
        let b2 = cm("b", "b", json!([{"uid": "p"}]), None);
        index.note(&b2.0, Some(&b.1), Some(&b2.1));
        assert_eq!(uids(&index.dependents("o")), ["a"]);
        // a is removed: o has no dependents left, and the index no longer holds a.
        index.note(&a.0, Some(&a.1), None);
        assert!(index.dependents("o").is_empty());
        assert!(index.object("a").is_none());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn building_the_index_marks_only_objects_with_owners_or_a_deletion_in_progress() {
        let plain = cm("plain", "p", json!([]), None);
        let owned = cm("owned", "c", json!([{"uid": "p"}]), None);
        let deleting = cm("deleting", "d", json!([]), Some(&["example.com/hold"]));
        let mut index = Index::build([plain, owned, deleting]);
        assert_eq!(marked_uids(&mut index), ["c", "d"]);
        assert!(!index.has_marked(), "taking the marks clears them");
    }

    #[test]
    fn an_owner_going_marks_its_dependents_and_only_them() {
        let owner = cm("owner", "o", json!([]), None);
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let other = cm("other", "x", json!([{"uid": "y"}]), None);
        let unrelated = cm("y", "y", json!([]), None);
        let mut index = Index::build([owner.clone(), child, other, unrelated]);
        index.take_marked();
        index.note(&owner.0, Some(&owner.1), None);
        assert_eq!(marked_uids(&mut index), ["c"]);
        // The dependent, decided alone against the index, is collected.
        let child = index.object("c").unwrap();
        assert_eq!(
            decide(&index, &child),
            vec![Action::Delete {
                uid: "c".into(),
                propagation: Propagation::Background
            }]
        );
    }

    #[test]
    fn a_write_that_changes_nothing_the_collector_reads_marks_nothing() {
        let owner = cm("owner", "o", json!([]), None);
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let mut index = Index::build([owner.clone(), child.clone()]);
        index.take_marked();
        let mut changed = (*child.1).clone();
        changed["data"] = json!({"k": "v"});
        let changed = Arc::new(changed);
        index.note(&child.0, Some(&child.1), Some(&changed));
        assert!(!index.has_marked());
        assert_eq!(
            index.object("c").unwrap().1,
            changed,
            "the newest version is held"
        );
    }

    #[test]
    fn a_dependent_going_marks_its_waiting_owner() {
        let owner = cm("owner", "o", json!([]), Some(&["foregroundDeletion"]));
        let child = cm(
            "child",
            "c",
            json!([{"uid": "o", "blockOwnerDeletion": true}]),
            None,
        );
        let mut index = Index::build([owner, child.clone()]);
        index.take_marked();
        index.note(&child.0, Some(&child.1), None);
        assert_eq!(marked_uids(&mut index), ["o"]);
    }

    #[test]
    fn an_owner_starting_to_orphan_marks_its_dependents() {
        let owner = cm("owner", "o", json!([]), None);
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let mut index = Index::build([owner.clone(), child]);
        index.take_marked();
        let orphaning = cm("owner", "o", json!([]), Some(&["orphan"]));
        index.note(&orphaning.0, Some(&owner.1), Some(&orphaning.1));
        assert_eq!(marked_uids(&mut index), ["c", "o"]);
    }
}
