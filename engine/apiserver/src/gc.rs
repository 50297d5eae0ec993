//! The embedded control plane's own controllers: garbage collection by ownerReferences
//! (background, foreground with `blockOwnerDeletion`, orphan), namespace deletion and CRD
//! instance cleanup.
//!
//! A sweep first decides every action from one snapshot ([`plan`], pure), then carries them out
//! through the cluster like any client. Sweeps run when a write may have given them work.

use std::collections::{BTreeMap, BTreeSet};
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

type Entry = (Arc<ResourceType>, Arc<Value>);

/// One thing a sweep does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete a dependent (or namespace content, or CRD instance) with this propagation.
    Delete {
        index: usize,
        propagation: Propagation,
    },
    /// Remove owner references to these uids (their owners orphan their dependents).
    DropOwners {
        index: usize,
        uids: BTreeSet<String>,
    },
    /// Remove a server-managed finalizer: its work is done.
    RemoveFinalizer {
        index: usize,
        finalizer: &'static str,
    },
    /// A terminating namespace is empty: remove it.
    RemoveNamespace { index: usize },
}

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == CRD_GROUP && rt.resource == CRD_RESOURCE
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.builtin && rt.group.is_empty() && rt.resource == "namespaces"
}

/// Decides every action for one snapshot of all objects.
pub fn plan(objects: &[Entry]) -> Vec<Action> {
    let by_uid: BTreeMap<&str, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, (_, o))| (object::uid(o), i))
        .collect();
    let mut dependents: BTreeMap<&str, Vec<(usize, bool)>> = BTreeMap::new();
    for (i, (_, o)) in objects.iter().enumerate() {
        for (owner, block) in object::owner_uids(o) {
            if let Some(&owner_index) = by_uid.get(owner.as_str()) {
                dependents
                    .entry(object::uid(&objects[owner_index].1))
                    .or_default()
                    .push((i, block));
            }
        }
    }
    let mut actions = Vec::new();
    for (i, (rt, o)) in objects.iter().enumerate() {
        let owners = object::owner_uids(o);
        if !owners.is_empty() && !object::is_deleting(o) {
            let present: Vec<&Value> = owners
                .iter()
                .filter_map(|(u, _)| by_uid.get(u.as_str()))
                .map(|&j| &*objects[j].1)
                .collect();
            let orphaning: BTreeSet<String> = present
                .iter()
                .filter(|owner| {
                    object::is_deleting(owner)
                        && object::finalizers(owner)
                            .iter()
                            .any(|f| f == ORPHAN_FINALIZER)
                })
                .map(|owner| object::uid(owner).to_owned())
                .collect();
            if present.is_empty() {
                actions.push(Action::Delete {
                    index: i,
                    propagation: Propagation::Background,
                });
            } else if !orphaning.is_empty() {
                actions.push(Action::DropOwners {
                    index: i,
                    uids: orphaning,
                });
            } else if present.iter().all(|owner| {
                object::is_deleting(owner)
                    && object::finalizers(owner)
                        .iter()
                        .any(|f| f == FOREGROUND_FINALIZER)
            }) {
                actions.push(Action::Delete {
                    index: i,
                    propagation: Propagation::Foreground,
                });
            }
        }
        if !object::is_deleting(o) {
            continue;
        }
        let finalizers = object::finalizers(o);
        let deps = dependents.get(object::uid(o)).cloned().unwrap_or_default();
        if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
            && !deps.iter().any(|(_, block)| *block)
        {
            actions.push(Action::RemoveFinalizer {
                index: i,
                finalizer: FOREGROUND_FINALIZER,
            });
        }
        if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) && deps.is_empty() {
            actions.push(Action::RemoveFinalizer {
                index: i,
                finalizer: ORPHAN_FINALIZER,
            });
        }
        if is_namespace(rt) {
            let ns = object::name(o);
            let contents: Vec<usize> = objects
                .iter()
                .enumerate()
                .filter(|(_, (t, c))| t.namespaced && object::namespace(c) == ns)
                .map(|(j, _)| j)
                .collect();
            if contents.is_empty() {
                if finalizers.is_empty() {
                    actions.push(Action::RemoveNamespace { index: i });
                }
            } else {
                actions.extend(
                    contents
                        .into_iter()
                        .filter(|&j| !object::is_deleting(&objects[j].1))
                        .map(|j| Action::Delete {
                            index: j,
                            propagation: Propagation::Background,
                        }),
                );
            }
        }
        if is_crd(rt) && finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            let Some(served) = ResourceType::from_crd(o) else {
                continue;
            };
            let instances: Vec<usize> = objects
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| {
                    t.group == served.group && t.resource == served.resource && !t.builtin
                })
                .map(|(j, _)| j)
                .collect();
            if instances.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    index: i,
                    finalizer: CRD_CLEANUP_FINALIZER,
                });
            } else {
                actions.extend(
                    instances
                        .into_iter()
                        .filter(|&j| !object::is_deleting(&objects[j].1))
                        .map(|j| Action::Delete {
                            index: j,
                            propagation: Propagation::Background,
                        }),
                );
            }
        }
    }
    actions
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

async fn act(cluster: &Cluster, objects: &[Entry], action: Action) -> bool {
    let result = match action {
        Action::Delete { index, propagation } => {
            let (rt, o) = &objects[index];
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
        Action::DropOwners { index, uids } => {
            let (rt, o) = &objects[index];
            cluster
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
                .map(drop)
        }
        Action::RemoveFinalizer { index, finalizer } => {
            let (rt, o) = &objects[index];
            cluster
                .modify(&target_of(rt, o), object::name(o), MANAGER, |obj| {
                    let remaining = object::finalizers(obj)
                        .into_iter()
                        .filter(|f| f != finalizer)
                        .collect();
                    object::set_finalizers(obj, remaining);
                })
                .await
                .map(drop)
        }
        Action::RemoveNamespace { index } => {
            let (rt, o) = &objects[index];
            cluster
                .purge(&target_of(rt, o), object::name(o), object::uid(o))
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            if e.code() != 404 && e.code() != 409 {
                tracing::warn!("garbage collector: {e}");
            }
            false
        }
    }
}

/// Runs sweeps until the process ends: after every wake-up, and every few seconds as a backstop.
pub async fn run(cluster: Arc<Cluster>) {
    loop {
        let objects = cluster.snapshot();
        let mut progress = false;
        for action in plan(&objects) {
            progress |= act(&cluster, &objects, action).await;
        }
        if progress {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), cluster.gc_wake.notified()).await;
    }
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

    #[test]
    fn a_dependent_whose_owner_is_gone_is_deleted_in_the_background() {
        let objects = vec![cm("child", "c", json!([{"uid": "gone"}]), None)];
        assert_eq!(
            plan(&objects),
            vec![Action::Delete {
                index: 0,
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
                index: 1,
                propagation: Propagation::Foreground
            }]
        );
        assert_eq!(
            plan(&[owner]),
            vec![Action::RemoveFinalizer {
                index: 0,
                finalizer: FOREGROUND_FINALIZER
            }]
        );
    }

    #[test]
    fn orphaning_owner_drops_itself_from_dependents_then_releases() {
        let owner = cm("owner", "o", json!([]), Some(&["orphan"]));
        let child = cm("child", "c", json!([{"uid": "o"}]), None);
        let actions = plan(&[owner, child]);
        assert_eq!(
            actions,
            vec![Action::DropOwners {
                index: 1,
                uids: BTreeSet::from(["o".to_owned()])
            }]
        );
    }
}
