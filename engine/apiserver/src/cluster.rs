//! The object state machine: every read and write of objects, with Kubernetes semantics
//! (identity, resource versions, generation, preconditions, finalizers, status isolation,
//! managedFields) applied before anything is written.
//!
//! All decisions happen under one state lock, which also assigns resource versions and queues the
//! write to the group-commit writer in order; callers then wait, outside the lock, until the write
//! is durable. A write that changes nothing returns the stored object and writes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

use crate::error::{ApiError, ApiResult, ErrorTarget, FieldCause};
use crate::fields;
use crate::object::{self, meta_mut};
use crate::patch::{PatchKind, apply_patch};
use crate::resource::{CRD_GROUP, CRD_RESOURCE, GroupResource, Registry, ResourceType};
use crate::selector::Selector;
use crate::store::{Pending, Store, StoreError, Write};
use crate::watch::{EventType, Hub, WatchEvent};
use compact_str::CompactString;

/// An object's namespace and name, each held inline when short (up to 24 bytes, as most are):
/// looking an object up compares keys inside the map's nodes rather than following two pointers
/// per key compared, which at tens of thousands of objects are mostly cache misses.
type ObjectKey = (CompactString, CompactString);

/// Finalizers the server itself manages.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Deletion with `propagationPolicy: Orphan`: the garbage collector removes this object's
/// `ownerReferences` from its dependents before the object goes.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Set on a CustomResourceDefinition being deleted until all its custom objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The longest a read or no-op waits for the store to make what it shows durable.
const DURABILITY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Which part of an object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself; its `status` is kept as stored (for resources with a status subresource).
    Main,
    /// The `status` subresource: only `status` changes, whatever else the body says.
    Status,
}

impl Subresource {
    fn as_str(self) -> &'static str {
        match self {
            Subresource::Main => "",
            Subresource::Status => "status",
        }
    }
}

/// Where a request points: a resource type, the version it speaks, and a namespace ("" for
/// cluster-scoped).
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type: group, kind, plural, scope, versions and schema.
    pub rt: Arc<ResourceType>,
    /// The API version the request speaks; bodies are converted from and to it.
    pub version: String,
    /// The namespace; "" for cluster-scoped resources (and, for lists, across all namespaces when
    /// asked so).
    pub namespace: String,
    /// `fieldValidation=Strict`: unknown fields of custom objects are rejected, not pruned.
    pub strict_fields: bool,
    /// `fieldValidation=Warn` (the default for users' requests): unknown fields are pruned and
    /// named here, for the response's `Warning` headers; under `Strict` only the warnings of
    /// ratcheted validation rules land here. `None`: pruned silently.
    pub warnings: Option<crate::validation::Warnings>,
    /// `dryRun=All`: every check runs and the result is returned, nothing is stored.
    pub dry_run: bool,
    /// The user making the request; `None` for the control plane's own writes. RBAC writes by a
    /// user are checked for escalation ([`crate::rbac::escalation`]).
    pub requester: Option<Arc<crate::auth::UserInfo>>,
}

impl Target {
    fn error_target(&self, name: &str) -> ErrorTarget {
        ErrorTarget::new(&self.rt.group, &self.rt.resource, name)
    }

    fn key(&self, name: &str) -> ObjectKey {
        (
            CompactString::from(self.namespace.as_str()),
            CompactString::from(name),
        )
    }

    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    /// The list markers objects of `version` are owned and merged by (see [`fields`]).
    fn field_schema(&self, version: &str) -> fields::FieldSchema<'_> {
        if self.rt.builtin {
            fields::FieldSchema::builtin(&self.rt.group, version, &self.rt.kind)
        } else {
            fields::FieldSchema::Custom(self.rt.version(version).and_then(|v| v.compiled.as_ref()))
        }
    }

    /// The object as this target's version presents it.
    /// Borrowed when the stored form already speaks this version (the common case).
    pub fn present<'a>(&self, obj: &'a Value) -> std::borrow::Cow<'a, Value> {
        if self.rt.stored_as.is_some() {
            return std::borrow::Cow::Owned(crate::builtin::present(&self.rt, &self.version, obj));
        }
        let api_version = self.api_version();
        if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
            && obj.get("kind").and_then(Value::as_str) == Some(self.rt.kind.as_str())
        {
            return std::borrow::Cow::Borrowed(obj);
        }
        let mut out = obj.clone();
        if let Value::Object(m) = &mut out {
            m.insert("apiVersion".into(), json!(api_version));
            m.insert("kind".into(), json!(self.rt.kind));
        }
        std::borrow::Cow::Owned(out)
    }

    /// A copy of the stored `obj` as the target's version shows it (converted where that
    /// version has another shape), with its managedFields decoded: the base a patch or a
    /// change in that version is applied to.
    pub(crate) fn editable(&self, obj: &Value) -> Value {
        let mut out = crate::builtin::served(self, obj).into_owned();
        crate::compact::expand(&mut out);
        out
    }
}

/// What deleting an object does to its dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector deletes its dependents afterwards (the default).
    Background,
    /// The object stays, marked with the foreground finalizer, until dependents that block owner
    /// deletion are gone.
    Foreground,
    /// The dependents stay, with their owner reference to this object removed.
    Orphan,
}

/// A delete request's options.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// What happens to dependents.
    pub propagation: Propagation,
    /// Delete only if the object's uid is this; otherwise a 409.
    pub precondition_uid: Option<String>,
    /// Delete only if the object's `resourceVersion` is this; otherwise a 409.
    pub precondition_rv: Option<String>,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        DeleteOptions {
            propagation: Propagation::Background,
            precondition_uid: None,
            precondition_rv: None,
        }
    }
}

/// What [`Cluster::object_stats`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectStats {
    /// Stored objects, of every resource.
    pub objects: usize,
    /// Their total size as JSON.
    pub json_bytes: usize,
}

/// One page of a list, consistent at one revision.
pub struct ListPage {
    /// The matching objects, ordered by namespace and name.
    pub items: Vec<Arc<Value>>,
    /// The revision the page shows; later pages of the same list show the same one.
    pub resource_version: u64,
    /// The token for the next page; `None` on the last.
    pub continue_token: Option<String>,
    /// How many matching objects later pages hold (`remainingItemCount`), when there are any.
    pub remaining: Option<usize>,
}

struct State {
    rv: u64,
    registry: Registry,
    objects: BTreeMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    undo: UndoLog,
    /// The garbage collector's index, kept current by every commit and removal.
    gc: crate::gc::Index,
}

/// One change, whose event tells what the object was before it (`None`: it did not exist).
struct Undo {
    /// The event's, kept here: the log reads it for every entry it drops or passes over.
    rv: u64,
    key: ObjectKey,
    event: Arc<WatchEvent>,
}

/// The most recent changes, oldest first, so later pages of a list can be served as of the
/// version of its first page. The events are the watch history's: as they turn old, the
/// versions they replaced are held as JSON and parsed when a list reads them.
struct UndoLog {
    entries: std::collections::VecDeque<Undo>,
    /// Every change after this version is in `entries`.
    complete_after: u64,
    limit: usize,
}

impl UndoLog {
    fn record(&mut self, undo: Undo) {
        if self.entries.len() >= self.limit
            && let Some(dropped) = self.entries.pop_front()
        {
            self.complete_after = dropped.rv;
        }
        self.entries.push_back(undo);
    }

    /// For objects of `gr` changed after `rv`: what each was at `rv` (`None`: absent then).
    /// `None` when changes after `rv` are no longer all remembered.
    fn as_of(
        &self,
        gr: &GroupResource,
        rv: u64,
    ) -> Option<BTreeMap<ObjectKey, Option<Arc<Value>>>> {
        if rv < self.complete_after {
            return None;
        }
        let mut then = BTreeMap::new();
        for u in self
            .entries
            .iter()
            .filter(|u| u.rv > rv && &u.event.gr == gr)
        {
            then.entry(u.key.clone())
                .or_insert_with(|| u.event.previous());
        }
        Some(then)
    }
}

/// A decided write, waiting to become durable.
struct Outcome {
    object: Arc<Value>,
    durable: Option<oneshot::Receiver<Result<(), String>>>,
}

/// The control plane's state: every object in memory under one lock, each write decided there,
/// handed to the store's writer and acknowledged once durable, then fanned out to watchers. Readers
/// never see a write that is not yet durable.
///
/// A patch or server-side apply of an existing object computes its new version outside the lock,
/// from the stored version it read, and commits only if that version is still the stored one
/// (else computes again from the newer one), as kube-apiserver's optimistic `GuaranteedUpdate`
/// does: decoding, field ownership, merging and admission are most of a write's work, and done
/// under the lock they kept every other request waiting ([`Cluster::update_from`]).
pub struct Cluster {
    state: Mutex<State>,
    /// The state's registry as last committed, republished under the state lock whenever a
    /// CustomResourceDefinition changes it: resolving a request's resource (every request does)
    /// then takes no lock, where it used to queue behind writes for the state's.
    served: arc_swap::ArcSwap<Registry>,
    writer: crate::store::Writer<Arc<WatchEvent>>,
    /// The highest resource version known durable; reads wait for it so no client ever sees
    /// a write a crash could still lose.
    durable: tokio::sync::watch::Sender<u64>,
    /// The watch fan-out: every committed change is published here in revision order.
    pub hub: Arc<Hub>,
    /// Woken whenever a write may give the garbage collector work.
    pub gc_wake: Arc<Notify>,
    /// The authorizer's index of RBAC objects, kept current by every commit.
    pub rbac: crate::rbac::Rbac,
}

/// Why the stored state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored object's key or JSON cannot be read; Strata refuses to start rather than drop it.
    #[error("store: object `{key}` is corrupt: {detail}")]
    CorruptObject {
        /// The store key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The store key of an object: group, resource, namespace and name joined by `|`, so objects of
/// one resource (and namespace) are adjacent.
pub fn store_key(gr: &GroupResource, ns: &str, name: &str) -> String {
    format!("{}|{}|{}|{}", gr.group, gr.resource, ns, name)
}

fn parse_store_key(key: &str) -> Option<(GroupResource, ObjectKey)> {
    let mut parts = key.splitn(4, '|');
    let (g, r, ns, n) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((GroupResource::new(g, r), (ns.into(), n.into())))
}

impl Cluster {
    /// Loads the store into memory and starts the writer; the default namespaces are created when
    /// missing.
    pub async fn open(store: Store) -> Result<Arc<Cluster>, OpenError> {
        let loaded = store.load()?;
        let mut registry = Registry::with_builtins();
        let mut objects: BTreeMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>> = BTreeMap::new();
        for (key, bytes) in loaded.objects {
            let (gr, okey) = parse_store_key(&key).ok_or_else(|| OpenError::CorruptObject {
                key: key.clone(),
                detail: "malformed key".into(),
            })?;
            let mut value: Value =
                serde_json::from_slice(&bytes).map_err(|e| OpenError::CorruptObject {
                    key: key.clone(),
                    detail: e.to_string(),
                })?;
            if crate::compact::check_input(&value).is_err() {
                return Err(OpenError::CorruptObject {
                    key,
                    detail: "metadata.managedFields is not a list".into(),
                });
            }
            crate::compact::compact(&mut value);
            if gr.group == CRD_GROUP
                && gr.resource == CRD_RESOURCE
                && let Some(t) = ResourceType::from_crd(&value)
            {
                registry.insert(t);
            }
            objects.entry(gr).or_default().insert(okey, Arc::new(value));
        }
        let history: Vec<WatchEvent> = loaded
            .events
            .iter()
            .filter_map(|(rv, bytes)| WatchEvent::from_stored(*rv, bytes))
            .collect();
        let history_limit = store.event_history();
        let hub = Arc::new(Hub::new(history, loaded.resource_version, history_limit));
        let rbac = crate::rbac::Rbac::new(crate::rbac::Index::build(objects.iter().flat_map(
            |(gr, objs)| {
                crate::rbac::Kind::of(gr)
                    .into_iter()
                    .flat_map(move |kind| objs.values().map(move |o| (kind, &**o)))
            },
        )));
        let gc = crate::gc::Index::build(objects.iter().flat_map(|(gr, objs)| {
            let rt = registry.get(gr);
            objs.values()
                .filter_map(move |o| rt.clone().map(|rt| (rt, o.clone())))
        }));
        let gc_wake = Arc::new(Notify::new());
        if gc.has_marked() {
            gc_wake.notify_one();
        }
        let publish_hub = hub.clone();
        let (durable, _) = tokio::sync::watch::channel(loaded.resource_version);
        let publish_durable = durable.clone();
        let writer = crate::store::Writer::start(store, move |events: Vec<Arc<WatchEvent>>| {
            if let Some(last) = events.iter().map(|e| e.rv).max() {
                publish_durable.send_if_modified(|d| {
                    let advanced = last > *d;
                    *d = (*d).max(last);
                    advanced
                });
            }
            publish_hub.publish(events);
        });
        let cluster = Arc::new(Cluster {
            served: arc_swap::ArcSwap::from_pointee(registry.clone()),
            state: Mutex::new(State {
                rv: loaded.resource_version,
                registry,
                objects,
                undo: UndoLog {
                    entries: std::collections::VecDeque::new(),
                    complete_after: loaded.resource_version,
                    limit: usize::try_from(history_limit).unwrap_or(usize::MAX),
                },
                gc,
            }),
            writer,
            durable,
            hub,
            gc_wake,
            rbac,
        });
        cluster.move_to_shared_storage().await?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let target = cluster.target("", "v1", "namespaces", "").ok_or_else(|| {
                OpenError::CorruptObject {
                    key: "namespaces".into(),
                    detail: "the namespace resource is not registered".into(),
                }
            })?;
            if cluster.get(&target, ns).is_err() {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                cluster
                    .create(&target, body, "strata-apiserver")
                    .await
                    .map_err(|e| OpenError::CorruptObject {
                        key: format!("namespace {ns}"),
                        detail: e.to_string(),
                    })?;
            }
        }
        Ok(cluster)
    }

    /// Objects an earlier version stored under a resource that now shares another's storage
    /// (events.k8s.io Events, now core Events) move there, converted, once.
    async fn move_to_shared_storage(&self) -> Result<(), OpenError> {
        let outcomes = {
            let mut st = self.lock();
            let shared: Vec<Arc<ResourceType>> = st
                .registry
                .all()
                .filter(|t| t.stored_as.is_some())
                .cloned()
                .collect();
            let mut outcomes = Vec::new();
            for rt in shared {
                let legacy_gr = rt.group_resource();
                let Some(legacy_objects) = st.objects.remove(&legacy_gr) else {
                    continue;
                };
                let Some(storage_rt) = st.registry.get(&rt.storage_gr()) else {
                    continue;
                };
                st.objects.insert(legacy_gr, legacy_objects.clone());
                // The type as it was stored before: under its own resource.
                let legacy_rt = Arc::new(ResourceType {
                    stored_as: None,
                    ..(*rt).clone()
                });
                for ((ns, name), obj) in legacy_objects {
                    let target = |rt: &Arc<ResourceType>| Target {
                        rt: rt.clone(),
                        version: rt.storage_version().to_owned(),
                        namespace: ns.to_string(),
                        strict_fields: false,
                        warnings: None,
                        dry_run: false,
                        requester: None,
                    };
                    let taken = st
                        .objects
                        .get(&storage_rt.storage_gr())
                        .is_some_and(|m| m.contains_key(&(ns.clone(), name.clone())));
                    if !taken {
                        let mut moved = crate::builtin::to_storage(
                            &rt,
                            crate::compact::expanded(&obj).into_owned(),
                        );
                        moved["kind"] = json!(storage_rt.kind);
                        outcomes.push(self.commit(&mut st, &target(&storage_rt), None, moved));
                    }
                    let last = (*obj).clone();
                    outcomes.push(self.remove(&mut st, &target(&legacy_rt), &obj, last));
                }
                st.objects.remove(&rt.group_resource());
            }
            outcomes
        };
        for outcome in outcomes {
            self.finish(outcome)
                .await
                .map_err(|e| OpenError::CorruptObject {
                    key: "events.k8s.io events".into(),
                    detail: format!("moving them to the core Events they share storage with: {e}"),
                })?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A snapshot of the served resource types (built-in and from CustomResourceDefinitions).
    pub fn registry(&self) -> Registry {
        Registry::clone(&self.served.load())
    }

    /// The target for `group/version/resource` in `namespace`, if that resource is served.
    pub fn target(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
    ) -> Option<Target> {
        let rt = self.served.load().lookup(group, version, resource)?;
        let namespace = if rt.namespaced {
            namespace.to_owned()
        } else {
            String::new()
        };
        Some(Target {
            rt,
            version: version.to_owned(),
            namespace,
            strict_fields: false,
            warnings: None,
            dry_run: false,
            requester: None,
        })
    }

    /// The latest committed revision.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The stored object `name` in the target's namespace; [`ApiError::NotFound`] if there is
    /// none.
    pub fn get(&self, t: &Target, name: &str) -> ApiResult<Arc<Value>> {
        self.existing(&self.lock(), t, name)
    }

    /// Objects of `t` (all namespaces when `all_namespaces`), filtered, paged after `continue`.
    ///
    /// Pages after the first are served as of the first page's resource version, like an etcd
    /// snapshot read; once the changes since then are no longer remembered the answer is 410
    /// Expired and the client starts over.
    pub fn list(
        &self,
        t: &Target,
        all_namespaces: bool,
        selector: &Selector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<ListPage> {
        self.list_at(t, all_namespaces, selector, limit, continue_token, None)
    }

    /// [`Self::list`] as of resource version `exact` (`resourceVersionMatch=Exact`): 410 Expired
    /// when that version is newer than the store or its changes are no longer remembered.
    pub fn list_at(
        &self,
        t: &Target,
        all_namespaces: bool,
        selector: &Selector,
        limit: Option<usize>,
        continue_token: Option<&str>,
        exact: Option<u64>,
    ) -> ApiResult<ListPage> {
        let start = continue_token.map(decode_continue).transpose()?;
        let st = self.lock();
        let gr = t.rt.storage_gr();
        let snapshot_rv = match (&start, exact) {
            (Some(token), _) => token.rv.unwrap_or(st.rv).min(st.rv),
            (None, Some(rv)) if rv > st.rv => {
                return Err(ApiError::Expired {
                    requested: rv,
                    oldest: st.rv,
                });
            }
            (None, Some(rv)) => rv,
            (None, None) => st.rv,
        };
        let then = if snapshot_rv < st.rv {
            st.undo.as_of(&gr, snapshot_rv).ok_or(match start {
                Some(_) => ApiError::ContinueExpired,
                None => ApiError::Expired {
                    requested: snapshot_rv,
                    oldest: st.undo.complete_after,
                },
            })?
        } else {
            BTreeMap::new()
        };
        let empty = BTreeMap::new();
        let now = st.objects.get(&gr).unwrap_or(&empty);
        // Keys sort by namespace first: a namespaced list starts at its namespace and ends
        // after it, so it costs what that namespace holds, not what every namespace does.
        let lower = match &start {
            Some(token) if all_namespaces || token.after.0.as_str() >= t.namespace.as_str() => {
                std::ops::Bound::Excluded(token.after.clone())
            }
            _ if all_namespaces => std::ops::Bound::Unbounded,
            _ => std::ops::Bound::Included((t.namespace.as_str().into(), CompactString::default())),
        };
        let current = now
            .range((lower.clone(), std::ops::Bound::Unbounded))
            .filter(|(k, _)| !then.contains_key(*k));
        let restored = then
            .range((lower, std::ops::Bound::Unbounded))
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)));
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut next = None;
        for (key, obj) in merge_by_key(current, restored) {
            if !all_namespaces && key.0 != t.namespace {
                break;
            }
            if !selector.matches(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                // As kube-apiserver, a filtered list does not count what remains
                // (`remainingItemCount` is for unfiltered lists): one more match is enough to
                // know a next page exists, and a page costs no more the more objects follow it.
                if !selector.is_empty() {
                    break;
                }
                continue;
            }
            items.push(obj.clone());
            next = Some(key.clone());
        }
        let continue_token = if remaining > 0 {
            next.map(|after| encode_continue(&after, snapshot_rv))
        } else {
            None
        };
        Ok(ListPage {
            items,
            resource_version: snapshot_rv,
            continue_token,
            remaining: if remaining > 0 && selector.is_empty() {
                Some(remaining)
            } else {
                None
            },
        })
    }

    /// The garbage collector's actions for the objects marked since the last sweep, each with
    /// the object it is for (see the `gc` module).
    pub fn gc_sweep(&self) -> Vec<(crate::gc::Action, crate::gc::Entry)> {
        let mut st = self.lock();
        let marked = st.gc.take_marked();
        let view = GcView { st: &st };
        let mut seen = std::collections::BTreeSet::new();
        marked
            .iter()
            .flat_map(|e| crate::gc::decide(&view, e))
            .filter(|a| seen.insert(format!("{a:?}")))
            .filter_map(|a| st.gc.object(a.uid()).map(|e| (a, e)))
            .collect()
    }

    /// How many objects are stored and their size as stored JSON. Serializes every object:
    /// O(objects), for benchmarks and diagnostics.
    pub fn object_stats(&self) -> ObjectStats {
        let st = self.lock();
        let mut stats = ObjectStats::default();
        for o in st.objects.values().flat_map(BTreeMap::values) {
            stats.objects += 1;
            stats.json_bytes += crate::compact::object_json(o).len();
        }
        stats
    }

    /// Marks objects for the garbage collector's next sweep and wakes it.
    pub fn gc_mark<'a>(&self, uids: impl IntoIterator<Item = &'a str>) {
        let mut st = self.lock();
        for uid in uids {
            st.gc.mark(uid);
        }
        drop(st);
        self.gc_wake.notify_one();
    }

    /// Waits until every write up to `rv` is durable (bounded: a failed store errors instead).
    pub async fn wait_durable(&self, rv: u64) -> ApiResult<()> {
        let mut rx = self.durable.subscribe();
        match tokio::time::timeout(DURABILITY_WAIT, rx.wait_for(|d| *d >= rv)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::Internal(format!(
                "resource version {rv} is not durable yet: the store is not committing"
            ))),
        }
    }

    async fn finish(&self, outcome: Outcome) -> ApiResult<Arc<Value>> {
        let Some(durable) = outcome.durable else {
            // A no-op answers with the stored object, which must itself be durable.
            let rv = object::resource_version(&outcome.object)
                .parse()
                .unwrap_or(0);
            self.wait_durable(rv).await?;
            return Ok(outcome.object);
        };
        {
            durable
                .await
                .map_err(|_| {
                    ApiError::Internal(
                        "the store writer stopped before the write was durable".into(),
                    )
                })?
                .map_err(|e| ApiError::Internal(format!("storing the write failed: {e}")))?;
        }
        Ok(outcome.object)
    }

    /// Creates `body` in the target's namespace as `manager` (recorded in `managedFields`) and
    /// returns it once durable, with uid, `resourceVersion` and timestamps set. Errors: 400 for a
    /// body that is not an object of the target's kind or names another namespace, 422 when
    /// validation fails, 409 when the name is taken.
    pub async fn create(&self, t: &Target, body: Value, manager: &str) -> ApiResult<Arc<Value>> {
        let mut obj = self.prepare_create(t, body)?;
        let now = object::now();
        let w = fields::Writer {
            manager,
            api_version: &t.api_version(),
            subresource: "",
            now: &now,
            schema: t.field_schema(t.rt.storage_version()),
        };
        fields::record_update(None, &mut obj, &w);
        let outcome = {
            let mut st = self.lock();
            self.complete_create(&st, t, &mut obj)?;
            self.insert_new(&mut st, t, obj)?
        };
        self.finish(outcome).await
    }

    fn insert_new(&self, st: &mut State, t: &Target, obj: Value) -> ApiResult<Outcome> {
        let name = object::name(&obj).to_owned();
        if st
            .objects
            .get(&t.rt.storage_gr())
            .is_some_and(|m| m.contains_key(&t.key(&name)))
        {
            return Err(ApiError::AlreadyExists(t.error_target(&name)));
        }
        Ok(self.commit(st, t, None, obj))
    }

    /// A new object from `body`, checked and admitted, outside the lock; what depends on other
    /// objects is checked again, and completed, under it ([`Cluster::complete_create`]).
    fn prepare_create(&self, t: &Target, mut body: Value) -> ApiResult<Value> {
        check_type_meta(t, &body)?;
        crate::compact::expand(&mut body);
        if !body.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        let mut body = crate::builtin::to_storage(&t.rt, body);
        let m = meta_mut(&mut body);
        let body_ns = m
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if t.rt.namespaced && !body_ns.is_empty() && body_ns != t.namespace {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty()
            && let Some(prefix) = m.get("generateName").and_then(Value::as_str)
        {
            name = format!("{prefix}{}", object::name_suffix());
        }
        let target = ErrorTarget::new(&t.rt.group, &t.rt.kind, &name);
        let rule = match (t.rt.builtin, t.rt.group.as_str(), t.rt.resource.as_str()) {
            (true, "", "namespaces") => object::NameRule::DnsLabel,
            // RBAC names are path segments (`system:discovery`), as `ValidateRBACName`.
            (true, crate::rbac::RBAC_GROUP, _) => object::NameRule::PathSegment,
            (true, _, _) => object::NameRule::DnsSubdomain,
            (false, _, _) => object::NameRule::PathSegment,
        };
        object::validate_name(&name, rule, &target)?;
        m.insert("name".into(), json!(name));
        if t.rt.namespaced {
            m.insert("namespace".into(), json!(t.namespace));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(object::new_uid()));
        m.insert("creationTimestamp".into(), json!(object::now()));
        m.insert("generation".into(), json!(1));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        // Where kube-apiserver's namespace lifecycle admission would refuse it: before
        // anything is validated.
        Self::namespace_open(&self.lock(), t, &name)?;
        if t.rt.has_status_subresource()
            && !(t.rt.builtin && t.rt.resource == "namespaces")
            && let Value::Object(m) = &mut body
        {
            m.remove("status");
        }
        if t.rt.builtin
            && t.rt.group.is_empty()
            && t.rt.resource == "secrets"
            && body
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            body["type"] = json!("Opaque");
        }
        if t.rt.builtin && t.rt.resource == "namespaces" {
            body["status"] = json!({"phase": "Active"});
        }
        self.admit(t, None, &mut body)?;
        body["apiVersion"] = json!(t.rt.storage_api_version());
        body["kind"] = json!(t.rt.kind);
        Ok(body)
    }

    /// Under the lock, what a create depends on other objects for: its namespace is still
    /// there and not terminating, and a Service gets its cluster IP and node ports.
    fn complete_create(&self, st: &State, t: &Target, obj: &mut Value) -> ApiResult<()> {
        Self::namespace_open(st, t, object::name(obj))?;
        if t.rt.builtin && t.rt.group.is_empty() && t.rt.resource == "services" {
            let existing: Vec<&Value> = st
                .objects
                .get(&t.rt.storage_gr())
                .map(|m| m.values().map(|v| &**v).collect())
                .unwrap_or_default();
            crate::builtin::allocate_service(obj, &existing);
        }
        Ok(())
    }

    /// Whether objects may be created in the target's namespace (always, when not namespaced).
    fn namespace_open(st: &State, t: &Target, name: &str) -> ApiResult<()> {
        if !t.rt.namespaced {
            return Ok(());
        }
        let ns_gr = GroupResource::new("", "namespaces");
        match st
            .objects
            .get(&ns_gr)
            .and_then(|m| m.get(&(CompactString::default(), t.namespace.as_str().into())))
        {
            None => Err(ApiError::NotFound(ErrorTarget::new(
                "",
                "namespaces",
                &t.namespace,
            ))),
            Some(ns) if object::is_deleting(ns) => Err(ApiError::Forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                t.rt.resource, t.namespace
            ))),
            Some(_) => Ok(()),
        }
    }

    fn admit(&self, t: &Target, previous: Option<&Value>, obj: &mut Value) -> ApiResult<()> {
        if t.rt.builtin
            && let Some(kind) = crate::rbac::Kind::of(&t.rt.group_resource())
        {
            crate::rbac::escalation::admit(
                &self.rbac.read(),
                t.requester.as_deref(),
                kind,
                previous,
                obj,
            )?;
        }
        if t.rt.builtin {
            let pruned = crate::builtin::prune_unknown(&t.rt, obj);
            if t.strict_fields && !pruned.is_empty() {
                let unknown: Vec<String> = pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    t.rt.kind,
                    t.version,
                    t.rt.kind,
                    unknown.join(", ")
                )));
            }
            if let Some(warnings) = &t.warnings {
                warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
            }
            crate::builtin::apply_defaults(&t.rt, obj, previous.is_none());
            if let Some(old) = previous {
                crate::builtin::keep_allocated(&t.rt, old, obj);
            }
            let target = ErrorTarget::new(&t.rt.group, &t.rt.kind, object::name(obj));
            match (t.rt.group.as_str(), t.rt.resource.as_str()) {
                (CRD_GROUP, CRD_RESOURCE) => crate::admission::admit_crd(obj, previous)?,
                ("", "secrets") => {
                    crate::admission::check_base64(obj, "Secret", "data")?;
                    crate::admission::fold_string_data(obj, &target)?;
                }
                ("", "configmaps") => {
                    crate::admission::check_base64(obj, "ConfigMap", "binaryData")?
                }
                _ => {}
            }
            if let Some(old) = previous {
                crate::admission::check_immutable(&t.rt.kind, old, obj, &target)?;
            }
            return Ok(());
        }
        crate::admission::admit_custom_object(
            &t.rt,
            &t.version,
            obj,
            previous,
            t.strict_fields,
            t.warnings.as_ref(),
        )
    }

    /// Replaces an object (PUT); `sub` decides which part of the body is taken.
    pub async fn update(
        &self,
        t: &Target,
        name: &str,
        body: Value,
        sub: Subresource,
        manager: &str,
    ) -> ApiResult<Arc<Value>> {
        let outcome = {
            let mut st = self.lock();
            let old = self.existing(&st, t, name)?;
            check_type_meta(t, &body)?;
            let body_name = object::name(&body);
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let new =
                self.prepare_update(t, &old, body, sub, ManagedFields::RecordUpdate(manager))?;
            self.write_update(&mut st, t, old, new)?
        };
        self.finish(outcome).await
    }

    fn existing(&self, st: &State, t: &Target, name: &str) -> ApiResult<Arc<Value>> {
        stored(st, t, name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(t.error_target(name)))
    }

    fn prepare_update(
        &self,
        t: &Target,
        old: &Value,
        mut body: Value,
        sub: Subresource,
        managed: ManagedFields<'_>,
    ) -> ApiResult<Value> {
        crate::compact::expand(&mut body);
        let mut body = crate::builtin::to_storage(&t.rt, body);
        let requested_rv = object::resource_version(&body).to_owned();
        if !requested_rv.is_empty() && requested_rv != object::resource_version(old) {
            return Err(ApiError::Conflict {
                target: t.error_target(object::name(old)),
                message: "the object has been modified; please apply your changes to the latest version and try again".into(),
            });
        }
        let isolate_status = t.rt.has_status_subresource();
        let mut new = match sub {
            Subresource::Main => {
                let mut new = body;
                if isolate_status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut new {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
            Subresource::Status => {
                let mut new = old.clone();
                // The body's status is moved, not copied: nothing reads the body's after this.
                match body.as_object_mut().and_then(|b| b.remove("status")) {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Value::Object(m) = &mut new {
                            m.remove("status");
                        }
                    }
                }
                // Server-side apply to /status hands over the ownership it recorded.
                if let ManagedFields::Given = managed {
                    let applied = object::meta(&body).and_then(|m| m.get("managedFields"));
                    let m = meta_mut(&mut new);
                    match applied {
                        Some(mf) => m.insert("managedFields".into(), mf.clone()),
                        None => m.remove("managedFields"),
                    };
                }
                new
            }
        };
        let old_meta = object::meta(old);
        {
            let m = meta_mut(&mut new);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.and_then(|o| o.get(f)) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            m.remove("selfLink");
            // What was sent is not kept: recording the update below writes the entries anew
            // from the old object's (the stored, compact ones are never part of a new body).
            if let ManagedFields::RecordUpdate(_) = managed {
                m.remove("managedFields");
            }
        }
        if sub == Subresource::Main {
            self.admit(t, Some(old), &mut new)?;
        } else if !t.rt.builtin {
            crate::admission::admit_custom_object(
                &t.rt,
                &t.version,
                &mut new,
                Some(old),
                t.strict_fields,
                t.warnings.as_ref(),
            )?;
        }
        new["apiVersion"] = json!(t.rt.storage_api_version());
        new["kind"] = json!(t.rt.kind);
        if spec_changed(old, &new, isolate_status) {
            let generation = old_meta
                .and_then(|o| o.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(1)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if let ManagedFields::RecordUpdate(manager) = managed {
            let now = object::now();
            let w = fields::Writer {
                manager,
                api_version: &t.api_version(),
                subresource: sub.as_str(),
                now: &now,
                schema: t.field_schema(t.rt.storage_version()),
            };
            fields::record_update(Some(old), &mut new, &w);
        }
        Ok(new)
    }

    /// Stores `new` in place of `old` unless nothing changed; removes the object when it is being
    /// deleted and its last finalizer just went.
    fn write_update(
        &self,
        st: &mut State,
        t: &Target,
        old: Arc<Value>,
        new: Value,
    ) -> ApiResult<Outcome> {
        if fields::unchanged(&old, &new) {
            return Ok(Outcome {
                object: old,
                durable: None,
            });
        }
        if object::is_deleting(&new) && object::finalizers(&new).is_empty() {
            return Ok(self.remove(st, t, &old, new));
        }
        Ok(self.commit(st, t, Some(old), new))
    }

    /// Assigns the next resource version, updates memory and queues the durable write.
    fn commit(
        &self,
        st: &mut State,
        t: &Target,
        old: Option<Arc<Value>>,
        mut obj: Value,
    ) -> Outcome {
        if t.dry_run {
            return Outcome {
                object: Arc::new(obj),
                durable: None,
            };
        }
        st.rv += 1;
        let rv = st.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        crate::compact::compact(&mut obj);
        let gr = t.rt.storage_gr();
        let name = object::name(&obj).to_owned();
        let obj = Arc::new(obj);
        st.objects
            .entry(gr.clone())
            .or_default()
            .insert(t.key(&name), obj.clone());
        st.gc.note(&t.rt, old.as_ref(), Some(&obj));
        if st.gc.has_marked() {
            self.gc_wake.notify_one();
        }
        if t.rt.group == CRD_GROUP
            && t.rt.resource == CRD_RESOURCE
            && let Some(crd_type) = ResourceType::from_crd(&obj)
        {
            st.registry.insert(crd_type);
            self.served.store(Arc::new(st.registry.clone()));
        }
        if let Some(kind) = crate::rbac::Kind::of(&gr) {
            self.rbac
                .apply(kind, &t.namespace, &name, Some(obj.as_ref()));
        }
        let type_ = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let event = WatchEvent::new(rv, type_, gr.clone(), obj.clone(), old);
        let (durable, event) = self.queue(&gr, &t.namespace, &name, true, event);
        st.undo.record(Undo {
            rv,
            key: t.key(&name),
            event,
        });
        Outcome {
            object: obj,
            durable: Some(durable),
        }
    }

    fn remove(&self, st: &mut State, t: &Target, old: &Arc<Value>, mut last: Value) -> Outcome {
        if t.dry_run {
            return Outcome {
                object: Arc::new(last),
                durable: None,
            };
        }
        st.rv += 1;
        let rv = st.rv;
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        crate::compact::compact(&mut last);
        let gr = t.rt.storage_gr();
        let name = object::name(old).to_owned();
        if let Some(m) = st.objects.get_mut(&gr) {
            m.remove(&t.key(&name));
        }
        st.gc.note(&t.rt, Some(old), None);
        // A terminating namespace or CRD waits for its last content to go.
        let containers = [
            t.rt.namespaced.then(|| {
                (
                    GroupResource::new("", "namespaces"),
                    (CompactString::default(), t.namespace.as_str().into()),
                )
            }),
            (!t.rt.builtin).then(|| {
                (
                    GroupResource::new(CRD_GROUP, CRD_RESOURCE),
                    (
                        CompactString::default(),
                        compact_str::format_compact!("{}.{}", gr.resource, gr.group),
                    ),
                )
            }),
        ];
        for (cgr, key) in containers.into_iter().flatten() {
            let uid = st
                .objects
                .get(&cgr)
                .and_then(|m| m.get(&key))
                .filter(|c| object::is_deleting(c))
                .map(|c| object::uid(c).to_owned());
            if let Some(uid) = uid {
                st.gc.mark(&uid);
            }
        }
        if st.gc.has_marked() {
            self.gc_wake.notify_one();
        }
        let last = Arc::new(last);
        let event = WatchEvent::new(
            rv,
            EventType::Deleted,
            gr.clone(),
            last.clone(),
            Some(old.clone()),
        );
        let (durable, event) = self.queue(&gr, &t.namespace, &name, false, event);
        st.undo.record(Undo {
            rv,
            key: t.key(&name),
            event,
        });
        if let Some(kind) = crate::rbac::Kind::of(&gr) {
            self.rbac.apply(kind, &t.namespace, &name, None);
        }
        if t.rt.group == CRD_GROUP && t.rt.resource == CRD_RESOURCE {
            self.drop_custom_resource(st, old);
        }
        Outcome {
            object: last,
            durable: Some(durable),
        }
    }

    /// A CRD is gone: its resource stops being served and any instance left is removed.
    fn drop_custom_resource(&self, st: &mut State, crd: &Value) {
        let Some(crd_type) = ResourceType::from_crd(crd) else {
            return;
        };
        let gr = crd_type.group_resource();
        let Some(rt) = st.registry.get(&gr) else {
            return;
        };
        let leftovers: Vec<Arc<Value>> = st
            .objects
            .get(&gr)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for obj in leftovers {
            let t = Target {
                rt: rt.clone(),
                version: rt.storage_version().to_owned(),
                namespace: object::namespace(&obj).to_owned(),
                strict_fields: false,
                warnings: None,
                dry_run: false,
                requester: None,
            };
            let last = (*obj).clone();
            // Durability of these removals rides on the CRD's own write: same batch or later.
            let _ = self.remove(st, &t, &obj, last);
        }
        st.objects.remove(&gr);
        st.registry.remove(&gr);
        self.served.store(Arc::new(st.registry.clone()));
    }

    /// What the store has committed: `(durable transactions, writes)`.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.writer.stats().snapshot()
    }

    fn queue(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        stored: bool,
        event: WatchEvent,
    ) -> (oneshot::Receiver<Result<(), String>>, Arc<WatchEvent>) {
        let (ack, durable) = oneshot::channel();
        // The object's JSON is written once: the store keeps it (unless the write deletes the
        // object), the event history holds it inside the event's bytes, and watchers send it.
        let mut json = crate::compact::object_json(&event.object());
        // Held by the watch history as long as the event: without the spare room the
        // serializer grew into.
        json.shrink_to_fit();
        let json = bytes::Bytes::from(json);
        let write = Write {
            rv: event.rv,
            key: store_key(gr, ns, name),
            object: stored.then(|| json.clone()),
            event: event.to_stored_with(&json),
        };
        let event = Arc::new(event.with_json(json));
        if let Err(e) = self.writer.submit(Pending {
            write,
            payload: event.clone(),
            ack,
        }) {
            tracing::error!("queueing a write: {e}");
        }
        (durable, event)
    }

    /// PATCH: merge, JSON, strategic or server-side apply.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        t: &Target,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        sub: Subresource,
        manager: Option<&str>,
        force: bool,
    ) -> ApiResult<Arc<Value>> {
        if kind == PatchKind::Strategic && !t.rt.builtin {
            return Err(ApiError::UnsupportedMediaType {
                accepted: crate::patch::accepted_patch_types()
                    .replace(", application/strategic-merge-patch+json", ""),
            });
        }
        let outcome = if kind == PatchKind::Apply {
            let manager = manager.filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::BadRequest("PATCH with apply requires a non-empty fieldManager".into())
            })?;
            self.server_side_apply(t, name, body, sub, manager, force)?
        } else {
            let manager = manager.unwrap_or("unknown");
            let read = self.get(t, name)?;
            self.update_from(t, name, read, |old| {
                let patched = apply_patch(kind, t.editable(old), body)?;
                crate::compact::check_input(&patched)?;
                self.prepare_update(t, old, patched, sub, ManagedFields::RecordUpdate(manager))
            })
            .unwrap_or_else(|| Err(ApiError::NotFound(t.error_target(name))))?
        };
        self.finish(outcome).await
    }

    /// Updates `name` from `old`, a version read earlier, to what `change` makes of it: computed
    /// outside the lock, committed under it only if `old` is still the stored version, and
    /// computed again from the newer version otherwise. An error `change` returns stands only
    /// if the version it was computed from is still the stored one (so a precondition or
    /// conflict is always judged against the current object). `None`: the object was deleted
    /// meanwhile.
    fn update_from(
        &self,
        t: &Target,
        name: &str,
        mut old: Arc<Value>,
        mut change: impl FnMut(&Arc<Value>) -> ApiResult<Value>,
    ) -> Option<ApiResult<Outcome>> {
        loop {
            let new = change(&old);
            let mut st = self.lock();
            let newer = match stored(&st, t, name) {
                Some(now) if Arc::ptr_eq(now, &old) => None,
                Some(now) => Some(now.clone()),
                None => return None,
            };
            match newer {
                None => return Some(new.and_then(|new| self.write_update(&mut st, t, old, new))),
                Some(now) => old = now,
            }
        }
    }

    /// Server-side apply of `body` (YAML or JSON) to `name`: decoded once, outside the lock; an
    /// existing object is updated by [`Cluster::update_from`], a new one created under the lock.
    fn server_side_apply(
        &self,
        t: &Target,
        name: &str,
        body: &[u8],
        sub: Subresource,
        manager: &str,
        force: bool,
    ) -> ApiResult<Outcome> {
        let config = decode_apply_body(body)?;
        if !config.is_object() {
            return Err(ApiError::BadRequest(
                "the applied configuration must be an object".into(),
            ));
        }
        check_type_meta(t, &config)?;
        let cfg_name = object::name(&config);
        if cfg_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let now = object::now();
        let api_version = t.api_version();
        let w = fields::Writer {
            manager,
            api_version: &api_version,
            subresource: sub.as_str(),
            now: &now,
            schema: t.field_schema(&t.version),
        };
        let conflict = |e: fields::ApplyError| match e {
            fields::ApplyError::Conflicts(c) => ApiError::ApplyConflict {
                target: t.error_target(name),
                conflicts: c.messages,
                causes: c.causes,
            },
            fields::ApplyError::Duplicate { field, message } => ApiError::Invalid {
                target: t.error_target(name),
                causes: vec![FieldCause { field, message }],
            },
        };
        loop {
            if let Ok(read) = self.get(t, name) {
                let updated = self.update_from(t, name, read, |old| {
                    // Field ownership reads the stored (compact) managedFields itself.
                    let live = crate::builtin::served(t, old);
                    let applied =
                        fields::apply(Some(&live), &config, &w, force).map_err(conflict)?;
                    self.prepare_update(t, old, applied, sub, ManagedFields::Given)
                });
                match updated {
                    Some(outcome) => return outcome,
                    // Deleted since: applied again, as a create.
                    None => continue,
                }
            }
            if sub == Subresource::Status {
                return Err(ApiError::NotFound(t.error_target(name)));
            }
            let applied = fields::apply(None, &config, &w, force).map_err(conflict)?;
            let managed = object::meta(&applied)
                .and_then(|m| m.get("managedFields"))
                .cloned();
            let mut obj = self.prepare_create(t, applied)?;
            if let Some(mf) = managed {
                meta_mut(&mut obj).insert("managedFields".into(), mf);
            }
            let mut st = self.lock();
            if stored(&st, t, name).is_some() {
                // Created since: applied again, as an update.
                continue;
            }
            self.complete_create(&st, t, &mut obj)?;
            return self.insert_new(&mut st, t, obj);
        }
    }

    /// Changes an object by a function under the state lock (used by the garbage collector).
    pub async fn modify(
        &self,
        t: &Target,
        name: &str,
        manager: &str,
        change: impl FnOnce(&mut Value),
    ) -> ApiResult<Arc<Value>> {
        let outcome = {
            let mut st = self.lock();
            let old = self.existing(&st, t, name)?;
            let mut new = t.editable(&old);
            change(&mut new);
            let new = self.prepare_update(
                t,
                &old,
                new,
                Subresource::Main,
                ManagedFields::RecordUpdate(manager),
            )?;
            self.write_update(&mut st, t, old, new)?
        };
        self.finish(outcome).await
    }

    /// Removes an object that is being deleted regardless of its finalizers (a namespace whose
    /// contents are gone). `uid` guards against removing a re-created object of the same name.
    pub async fn purge(&self, t: &Target, name: &str, uid: &str) -> ApiResult<Arc<Value>> {
        let outcome = {
            let mut st = self.lock();
            let old = self.existing(&st, t, name)?;
            if object::uid(&old) != uid || !object::is_deleting(&old) {
                return Err(ApiError::Conflict {
                    target: t.error_target(name),
                    message: "the object is not being deleted".into(),
                });
            }
            let last = (*old).clone();
            self.remove(&mut st, t, &old, last)
        };
        self.finish(outcome).await
    }

    /// DELETE: removes the object now, or marks it for deletion while finalizers remain.
    pub async fn delete(
        &self,
        t: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Arc<Value>> {
        let outcome: ApiResult<Outcome> = {
            let mut st = self.lock();
            let old = self.existing(&st, t, name)?;
            if opts
                .precondition_uid
                .as_deref()
                .is_some_and(|u| u != object::uid(&old))
            {
                return Err(ApiError::Conflict {
                    target: t.error_target(name),
                    message: format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        opts.precondition_uid.as_deref().unwrap_or_default(),
                        object::uid(&old)
                    ),
                });
            }
            if opts
                .precondition_rv
                .as_deref()
                .is_some_and(|rv| rv != object::resource_version(&old))
            {
                return Err(ApiError::Conflict {
                    target: t.error_target(name),
                    message: "the object has been modified; please apply your changes to the latest version and try again".into(),
                });
            }
            let mut finalizers = object::finalizers(&old);
            let is_namespace = t.rt.builtin && t.rt.resource == "namespaces";
            let is_crd = t.rt.group == CRD_GROUP && t.rt.resource == CRD_RESOURCE;
            let extra = match opts.propagation {
                _ if is_crd => Some(CRD_CLEANUP_FINALIZER),
                Propagation::Foreground => Some(FOREGROUND_FINALIZER),
                Propagation::Orphan => Some(ORPHAN_FINALIZER),
                Propagation::Background => None,
            };
            if object::is_deleting(&old) {
                Ok(Outcome {
                    object: old,
                    durable: None,
                })
            } else {
                if let Some(f) = extra
                    && !finalizers.iter().any(|x| x == f)
                {
                    finalizers.push(f.to_owned());
                }
                if finalizers.is_empty() && !is_namespace {
                    let last = (*old).clone();
                    Ok(self.remove(&mut st, t, &old, last))
                } else {
                    let mut new = (*old).clone();
                    object::set_finalizers(&mut new, finalizers);
                    let m = meta_mut(&mut new);
                    m.insert("deletionTimestamp".into(), json!(object::now()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    if !t.rt.builtin {
                        let generation =
                            m.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
                        m.insert("generation".into(), json!(generation));
                    }
                    if is_namespace {
                        new["status"] = json!({"phase": "Terminating"});
                    }
                    Ok(self.commit(&mut st, t, Some(old), new))
                }
            }
        };
        self.finish(outcome?).await
    }
}

/// The garbage collector's view of the state, under the lock.
struct GcView<'a> {
    st: &'a State,
}

impl crate::gc::Lookup for GcView<'_> {
    fn object(&self, uid: &str) -> Option<crate::gc::Entry> {
        self.st.gc.object(uid)
    }

    fn dependents(&self, uid: &str) -> Vec<crate::gc::Entry> {
        self.st.gc.dependents(uid)
    }

    fn namespace_contents(&self, ns: &str) -> Vec<crate::gc::Entry> {
        let from: ObjectKey = (ns.into(), CompactString::default());
        self.st
            .objects
            .iter()
            .filter_map(|(gr, objs)| self.st.registry.get(gr).map(|rt| (rt, objs)))
            .filter(|(rt, _)| rt.namespaced)
            .flat_map(|(rt, objs)| {
                objs.range(from.clone()..)
                    .take_while(|(k, _)| k.0 == ns)
                    .map(move |(_, o)| (rt.clone(), o.clone()))
            })
            .collect()
    }

    fn instances(&self, group: &str, resource: &str) -> Vec<crate::gc::Entry> {
        let gr = GroupResource::new(group, resource);
        match (self.st.registry.get(&gr), self.st.objects.get(&gr)) {
            (Some(rt), Some(objs)) if !rt.builtin => {
                objs.values().map(|o| (rt.clone(), o.clone())).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// How managedFields are maintained on an update.
enum ManagedFields<'a> {
    /// Record the change for this manager (operation Update).
    RecordUpdate(&'a str),
    /// The body's managedFields were computed already (server-side apply).
    Given,
}

/// Checks that the body's `apiVersion` and `kind`, when given, name this resource in one of its
/// served versions.
fn check_type_meta(t: &Target, body: &Value) -> ApiResult<()> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let served =
        t.rt.versions
            .iter()
            .any(|v| t.rt.api_version(&v.name) == api_version);
    if !api_version.is_empty() && !served {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            t.api_version()
        )));
    }
    if !kind.is_empty() && kind != t.rt.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    Ok(())
}

/// A server-side apply body, which is YAML by its media type (`application/apply-patch+yaml`)
/// and JSON as kube-rs, client-go and kubectl send it. JSON is read by `serde_json` first: the
/// YAML parser took ten times as long on the same bytes and was a tenth of the instructions of
/// the claims benchmark (`scripts/profile-claims`). Both give the same tree for JSON without
/// duplicate keys; with duplicates the last one wins, as for a create or an update (the request
/// was warned or, under `fieldValidation=Strict`, refused before it got here). Anything that
/// is not JSON is read as YAML.
fn decode_apply_body(body: &[u8]) -> ApiResult<Value> {
    if let Ok(config) = serde_json::from_slice::<Value>(body) {
        return Ok(config);
    }
    serde_saphyr::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
}

/// The stored version of `name` in the target's resource.
fn stored<'s>(st: &'s State, t: &Target, name: &str) -> Option<&'s Arc<Value>> {
    st.objects
        .get(&t.rt.storage_gr())
        .and_then(|m| m.get(&t.key(name)))
}

/// Whether a write changes what `generation` counts: everything but metadata (and status, when
/// status is a subresource).
fn spec_changed(old: &Value, new: &Value, isolate_status: bool) -> bool {
    let counted = |k: &String| match k.as_str() {
        "metadata" | "apiVersion" | "kind" => false,
        "status" => !isolate_status,
        _ => true,
    };
    match (old, new) {
        // Compared field by field in place, not on copies stripped of the rest.
        (Value::Object(a), Value::Object(b)) => {
            a.keys().filter(|k| counted(k)).count() != b.keys().filter(|k| counted(k)).count()
                || a.iter()
                    .filter(|(k, _)| counted(k))
                    .any(|(k, v)| b.get(k) != Some(v))
        }
        _ => old != new,
    }
}

/// Two key-ordered sequences of distinct keys as one.
fn merge_by_key<'a>(
    a: impl Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)>,
    b: impl Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)>,
) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// Where a paginated list continues: after this key, as of this resource version.
struct ContinueToken {
    after: ObjectKey,
    /// Absent in tokens of older servers: those pages are served as of now.
    rv: Option<u64>,
}

fn encode_continue(key: &ObjectKey, rv: u64) -> String {
    use base64::Engine;
    let raw = json!({"ns": key.0.as_str(), "name": key.1.as_str(), "rv": rv}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("invalid continue token `{token}`"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(CompactString::from)
            .ok_or_else(bad)
    };
    Ok(ContinueToken {
        after: (text("ns")?, text("name")?),
        rv: v.get("rv").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(obj: &Value) -> Vec<String> {
        obj.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_patch_computed_from_a_version_replaced_meanwhile_is_computed_again() {
        let dir = strata_test_support::TempDir::new("optimistic");
        let cluster = Cluster::open(Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        let t = cluster.target("", "v1", "configmaps", "default").unwrap();
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
        cluster.create(&t, body, "test").await.unwrap();
        let mut calls = 0;
        let read = cluster.get(&t, "cm").unwrap();
        let outcome = cluster
            .update_from(&t, "cm", read, |old| {
                calls += 1;
                if calls == 1 {
                    // Another write lands while this one is being computed, outside the lock.
                    let mut intruder = t.editable(old);
                    intruder["metadata"]["labels"] = json!({"intruder": "yes"});
                    let mut st = cluster.lock();
                    let new = cluster.prepare_update(
                        &t,
                        old,
                        intruder,
                        Subresource::Main,
                        ManagedFields::RecordUpdate("intruder"),
                    )?;
                    cluster.write_update(&mut st, &t, old.clone(), new)?;
                }
                let mut mine = t.editable(old);
                mine["data"] = json!({"mine": "yes"});
                cluster.prepare_update(
                    &t,
                    old,
                    mine,
                    Subresource::Main,
                    ManagedFields::RecordUpdate("me"),
                )
            })
            .expect("still stored")
            .unwrap();
        assert_eq!(calls, 2, "computed again from the newer version");
        assert_eq!(
            labels(&outcome.object),
            ["intruder"],
            "the other write is kept"
        );
        assert_eq!(outcome.object["data"]["mine"], "yes");
        let stored = cluster.get(&t, "cm").unwrap();
        assert_eq!(
            stored["metadata"]["resourceVersion"],
            outcome.object["metadata"]["resourceVersion"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_stored_under_events_k8s_io_by_an_earlier_version_move_to_core_events() {
        let dir =
            std::env::temp_dir().join(format!("strata-shared-storage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let cluster = Cluster::open(Store::open(&dir).unwrap()).await.unwrap();
            let t = cluster
                .target("events.k8s.io", "v1", "events", "default")
                .unwrap();
            // As an earlier version stored them: under events.k8s.io, in its shape.
            let legacy = Target {
                rt: Arc::new(ResourceType {
                    stored_as: None,
                    ..(*t.rt).clone()
                }),
                ..t
            };
            let body = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "old"}, "note": "from before", "reason": "Old",
                "regarding": {"kind": "Deployment", "name": "web"}});
            cluster.create(&legacy, body, "test").await.unwrap();
        }
        for _ in 0..2 {
            // Reopened once the writer thread has let go of the store.
            let mut store = Store::open(&dir);
            for _ in 0..100 {
                if store.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                store = Store::open(&dir);
            }
            let cluster = Cluster::open(store.unwrap()).await.unwrap();
            let core = cluster.target("", "v1", "events", "default").unwrap();
            let moved = cluster.get(&core, "old").unwrap();
            assert_eq!(moved["apiVersion"], "v1");
            assert_eq!(moved["message"], "from before");
            assert_eq!(moved["involvedObject"]["name"], "web");
            let events_api = cluster
                .target("events.k8s.io", "v1", "events", "default")
                .unwrap();
            let page = cluster
                .list(&events_api, true, &Selector::default(), None, None)
                .unwrap();
            assert_eq!(page.items.len(), 1, "one event, served by both APIs");
            assert!(
                cluster
                    .lock()
                    .objects
                    .get(&GroupResource::new("events.k8s.io", "events"))
                    .is_none_or(BTreeMap::is_empty),
                "nothing is left under the old key"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
