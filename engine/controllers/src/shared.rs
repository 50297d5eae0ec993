//! State every controller shares: the client, settings, metrics, the event recorder, discovery,
//! caches of Compositions / revisions / EnvironmentConfigs (reflectors), compiled revisions, and
//! the watches on composed kinds that route changes back to their owning XR.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::functions::{Composer, Functions};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strata_core::model::{Composition, CompositionRevision, EnvironmentConfig};
use strata_core::wire;
use strata_schema::pointer::Pointer;
use tokio::sync::mpsc;

use crate::Settings;
use crate::cached::Cached;
use crate::error::{Error, Result};
use crate::kinds::Kinds;
use crate::metrics::Metrics;

/// A compiled revision, or why it does not compile (cached too: revisions are immutable).
pub(crate) type Compiled = Arc<std::result::Result<Composer, String>>;

/// Where the composed-resource watches send an XR that needs a reconcile.
type Route = (ApiResource, bool, mpsc::UnboundedSender<ObjectRef<Cached>>);

/// What every controller of one process shares, started once by [`Shared::start`]: the caches
/// the controllers read, the compiled revisions, the routes from composed kinds back to their
/// XRs, and what the API server said the controllers may do. Dropping it stops its watches.
pub struct Shared {
    pub(crate) client: Client,
    pub(crate) settings: Settings,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) kinds: Kinds,
    /// Event recorders, one per shard of regarded objects (see [`RECORDER_SHARDS`]).
    recorders: Vec<Recorder>,
    pub(crate) compositions: Store<Composition>,
    pub(crate) revisions: Store<CompositionRevision>,
    pub(crate) environments: Store<EnvironmentConfig>,
    /// Calls the functions of pipeline Compositions.
    pub(crate) functions: Functions,
    /// The package of every `pkg.crossplane.io` Function by name, with a generation that
    /// changes with them (kept by [`crate::package`]).
    pub(crate) function_packages: std::sync::RwLock<(u64, BTreeMap<String, String>)>,
    compiled: Mutex<HashMap<String, Compiled>>,
    watched: Mutex<HashSet<(String, String)>>,
    routes: Arc<Mutex<HashMap<(String, String), Route>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The objects our own writes returned, read instead of a cache that lags behind them.
    pub(crate) newest: Newest,
    /// What the API server said these controllers may do (`SelfSubjectAccessReview`), allowed
    /// answers only: a grant is looked up once, a denial again at every pass until granted.
    allowed: Mutex<HashSet<Access>>,
    /// Who these controllers are to the API server (`SelfSubjectReview`), asked at the first
    /// denial, for messages worded as the API server's.
    user: Mutex<Option<String>>,
    environment_listeners: Listeners,
}

/// One permission: verb, API group, resource (plural) and namespace ("" at cluster scope).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// The verb, e.g. `create` or `patch`.
    pub verb: &'static str,
    /// The API group; empty for the core group.
    pub group: String,
    /// The resource's plural name, e.g. `configmaps`.
    pub resource: String,
    /// The namespace; empty at cluster scope.
    pub namespace: String,
}

impl Access {
    /// `RESOURCE[.GROUP]`, as kube-apiserver names a resource in its messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `in the namespace "NS"` or `at the cluster scope`, as kube-apiserver says it.
    pub fn scope(&self) -> String {
        if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", self.namespace)
        }
    }
}

/// A write the controllers may not make: the permission, the object's name and who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The permission that is missing.
    pub access: Access,
    /// The object the write was for.
    pub name: String,
    /// The user the controllers act as, as the API server names it.
    pub user: String,
}

/// kube-runtime's `Recorder` keeps every event it published in the last minutes (to turn a
/// repeated one into a series) and sweeps that whole cache at each publish: with one event per
/// claim, the cost of an event grew with the number of claims. Events of one object always go
/// through the same shard, so series still form, and each sweep covers 1/1024 of the events (at
/// 10,000 claims about ten, where 64 shards left about 160). A recorder is a few pointers until
/// it publishes.
const RECORDER_SHARDS: usize = 1024;

/// Who is told that an EnvironmentConfig changed, once the cache holds the change.
type Listeners = Arc<Mutex<Vec<mpsc::UnboundedSender<()>>>>;

/// The newest version of objects this process wrote, per uid: what the API returned for our
/// last write, and every resourceVersion that write (or an earlier one of ours) superseded.
///
/// A controller reads from a watch cache, which can still hold a version from before our own
/// last write when the next reconcile starts (events of composed resources arrive first). Acting
/// on it would repeat writes that change nothing, or fail with a 409 on a stale guard. A cached
/// object whose resourceVersion we superseded is replaced by the object our write returned.
/// Versions are only compared for equality, as the API requires: a version we neither wrote
/// nor superseded is newer than ours (someone else wrote), and the entry is dropped.
#[derive(Default)]
pub(crate) struct Newest(Mutex<HashMap<String, Superseding>>);

/// The object our last write returned (packed as the caches hold objects: a fraction of its
/// tree's size) and the versions our writes replaced.
struct Superseding {
    object: Cached,
    superseded: Vec<String>,
    /// When the last write was recorded.
    at: std::time::Instant,
}

/// How long an entry may outlive the watch catching up unnoticed (its event arrived before
/// the write was recorded): far longer than a cache lags behind a write.
const MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The memo's size from which, at each power of two, entries older than [`MEMO_TTL`] go.
const MEMO_SWEEP_FROM: usize = 1024;

impl Newest {
    /// `cached`, or the object our last write returned when `cached` is a version we replaced.
    pub(crate) fn of(&self, cached: &Cached) -> DynamicObject {
        let (Some(uid), Some(version)) = (
            cached.metadata.uid.as_deref(),
            cached.metadata.resource_version.as_deref(),
        ) else {
            return cached.object();
        };
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = memo.get(uid) else {
            drop(memo);
            return cached.object();
        };
        if entry.superseded.iter().any(|v| v == version) {
            return entry.object.object();
        }
        // The cache caught up with our write, or moved past it.
        memo.remove(uid);
        drop(memo);
        cached.object()
    }

    /// Records that a write over `before` returned `after`.
    pub(crate) fn wrote(&self, before: &DynamicObject, after: &DynamicObject) {
        let (Some(uid), Some(old), Some(new)) = (
            after.metadata.uid.as_deref(),
            before.metadata.resource_version.as_deref(),
            after.metadata.resource_version.as_deref(),
        ) else {
            return;
        };
        if old == new {
            return;
        }
        let object = Cached::from(after);
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = std::time::Instant::now();
        match memo.get_mut(uid) {
            Some(entry) => {
                entry.superseded.push(old.to_owned());
                entry.object = object;
                entry.at = at;
            }
            None => {
                memo.insert(
                    uid.to_owned(),
                    Superseding {
                        object,
                        superseded: vec![old.to_owned()],
                        at,
                    },
                );
                if memo.len() >= MEMO_SWEEP_FROM && memo.len().is_power_of_two() {
                    memo.retain(|_, e| at.duration_since(e.at) < MEMO_TTL);
                }
            }
        }
    }

    /// Drops the entry of an object once the watch delivers a version our writes did not
    /// supersede (the one we wrote, or a newer one): the cache has caught up, and no pass may
    /// come to read it (a claim's own status write starts none).
    pub(crate) fn caught_up(&self, meta: &ObjectMeta) {
        let (Some(uid), Some(version)) = (meta.uid.as_deref(), meta.resource_version.as_deref())
        else {
            return;
        };
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if memo
            .get(uid)
            .is_some_and(|entry| !entry.superseded.iter().any(|v| v == version))
        {
            memo.remove(uid);
        }
    }

    /// Forgets an object (it is gone).
    pub(crate) fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

impl Shared {
    /// Starts the reflectors; [`Shared::wait_ready`] waits for their first list.
    pub fn start(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Result<Arc<Self>> {
        let functions = Functions::new(&settings.functions)?;
        let reporter = Reporter {
            controller: settings.controller_name.clone(),
            instance: None,
        };
        let mut tasks = Vec::new();
        let compositions = reflect::<Composition>(&client, &mut tasks, None);
        let revisions = reflect::<CompositionRevision>(&client, &mut tasks, None);
        let environment_listeners: Listeners = Arc::default();
        let listeners = environment_listeners.clone();
        let environments = reflect::<EnvironmentConfig>(
            &client,
            &mut tasks,
            Some(Box::new(move || {
                listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|tx| tx.send(()).is_ok());
            })),
        );
        Ok(Arc::new(Self {
            recorders: (0..RECORDER_SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
            functions,
            function_packages: Default::default(),
            kinds: Kinds::new(client.clone()),
            client,
            settings,
            metrics,
            compositions,
            revisions,
            environments,
            compiled: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashSet::new()),
            routes: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(tasks),
            newest: Newest::default(),
            allowed: Mutex::new(HashSet::new()),
            user: Mutex::new(None),
            environment_listeners,
        }))
    }

    /// The user name these controllers act as (`kubectl auth whoami`), asked once; `None` when
    /// the API server cannot say.
    pub(crate) async fn user_name(&self) -> Option<String> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        if let Some(name) = self.user.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(name);
        }
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = api
            .create(&Default::default(), &SelfSubjectReview::default())
            .await
            .ok()?;
        let name = review.status?.user_info?.username?;
        *self.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
        Some(name)
    }

    /// Whether these controllers may do `access` to the object `name`, asked of the API server
    /// with a `SelfSubjectAccessReview` unless it said yes before for every name. A grant
    /// limited by `resourceNames` is asked about by name (and not remembered). A review that
    /// cannot be made (an API server without reviews) answers yes: the write itself is then
    /// what is refused.
    pub(crate) async fn may(&self, access: &Access, name: &str) -> bool {
        if self
            .allowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(access)
        {
            return true;
        }
        if self.review(access, None).await {
            self.allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(access.clone());
            return true;
        }
        self.review(access, Some(name)).await
    }

    /// One `SelfSubjectAccessReview`: allowed, or the review could not be made.
    async fn review(&self, access: &Access, name: Option<&str>) -> bool {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(access.verb.to_owned()),
                    group: Some(access.group.clone()),
                    resource: Some(access.resource.clone()),
                    namespace: (!access.namespace.is_empty()).then(|| access.namespace.clone()),
                    name: name.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        match api.create(&Default::default(), &review).await {
            Ok(answer) => answer.status.is_none_or(|s| s.allowed),
            Err(e) => {
                tracing::debug!(error = %e, "access review failed; the write will tell");
                true
            }
        }
    }

    /// Waits until the Composition, CompositionRevision and EnvironmentConfig caches hold their
    /// first list; an [`Error::Stopped`] names a cache that stopped before it did.
    pub async fn wait_ready(&self) -> Result<()> {
        for (what, r) in [
            ("Compositions", self.compositions.wait_until_ready().await),
            (
                "CompositionRevisions",
                self.revisions.wait_until_ready().await,
            ),
            (
                "EnvironmentConfigs",
                self.environments.wait_until_ready().await,
            ),
        ] {
            r.map_err(|e| Error::Stopped {
                controller: "cache",
                message: format!("{what}: {e}"),
            })?;
        }
        Ok(())
    }

    /// Stops every background task this struct started (the caches' watches and what they
    /// feed); the caches then serve what they last saw. Calling it again does nothing.
    pub fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Publishes a Warning event about `object`; failures to publish are logged, not returned.
    pub(crate) async fn warn(&self, object: &ObjectReference, reason: &str, note: String) {
        tracing::warn!(object = ?object.name, namespace = ?object.namespace, kind = ?object.kind, reason, "{note}");
        self.publish(object, EventType::Warning, reason, note).await;
    }

    /// Publishes a Normal event about `object`.
    pub(crate) async fn normal(&self, object: &ObjectReference, reason: &str, note: String) {
        tracing::info!(object = ?object.name, namespace = ?object.namespace, kind = ?object.kind, reason, "{note}");
        self.publish(object, EventType::Normal, reason, note).await;
    }

    async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let mut note = note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&object.namespace, &object.name, &object.uid).hash(&mut h);
            usize::try_from(h.finish() % RECORDER_SHARDS as u64).unwrap_or(0)
        };
        if let Err(e) = self.recorders[shard].publish(&ev, object).await {
            tracing::debug!(error = %e, reason, "cannot publish event");
        }
    }

    /// The compiled form of a revision, compiled once.
    pub(crate) fn compiled(&self, revision: &CompositionRevision) -> Compiled {
        let name = revision.name_any();
        let packages = self
            .function_packages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A pipeline's steps are classified by their Functions' packages: a change of those
        // compiles the revision again.
        let key = format!(
            "{name}@{}@{}",
            revision.metadata.uid.as_deref().unwrap_or_default(),
            packages.0
        );
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return c.clone();
        }
        let compiled = Arc::new(Composer::compile(
            &name,
            &revision.spec.composition,
            &packages.1,
        ));
        cache.insert(key, compiled.clone());
        compiled
    }

    /// Records a Function's package (`None`: the Function is gone); a change moves the
    /// generation the compiled revisions are keyed by.
    pub(crate) fn set_function_package(&self, name: &str, package: Option<&str>) {
        let mut p = self
            .function_packages
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let changed = match package {
            Some(pkg) => p.1.insert(name.to_owned(), pkg.to_owned()).as_deref() != Some(pkg),
            None => p.1.remove(name).is_some(),
        };
        if changed {
            p.0 += 1;
        }
    }

    /// Sends `()` to `tx` after every change of an EnvironmentConfig, once
    /// [`Shared::environments`] holds it (so a reconcile it triggers reads the new data).
    pub(crate) fn on_environment_change(&self, tx: mpsc::UnboundedSender<()>) {
        self.environment_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
    }

    /// Routes changes of resources controlled by XRs of `(apiVersion, kind)` to `sender`.
    pub(crate) fn route(
        &self,
        xr: &ApiResource,
        namespaced: bool,
        sender: mpsc::UnboundedSender<ObjectRef<Cached>>,
    ) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (xr.api_version.clone(), xr.kind.clone()),
                (xr.clone(), namespaced, sender),
            );
    }

    pub(crate) fn unroute(&self, xr: &ApiResource) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(xr.api_version.clone(), xr.kind.clone()));
    }

    /// Makes sure composed objects of this kind are watched (once per kind, for every XR).
    pub(crate) fn watch_composed(&self, kind: &ApiResource) {
        let key = (kind.api_version.clone(), kind.kind.clone());
        if !self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
        {
            return;
        }
        // Read as `Owned`: the owner references are all a route needs.
        let api: Api<crate::cached::Owned> = Api::all_with(self.client.clone(), kind);
        let routes = self.routes.clone();
        let config = watcher::Config::default().labels(wire::LABEL_COMPOSITE);
        let task = tokio::spawn(async move {
            let stream = watcher(api, config).default_backoff().touched_objects();
            futures_util::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                let Ok(obj) = item else { continue };
                let Some(owner) = obj
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                else {
                    continue;
                };
                let routes = routes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((ar, namespaced, tx)) =
                    routes.get(&(owner.api_version.clone(), owner.kind.clone()))
                {
                    let mut r = ObjectRef::new_with(&owner.name, ar.clone());
                    if *namespaced && let Some(ns) = obj.namespace() {
                        r = r.within(&ns);
                    }
                    let _ = tx.send(r);
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }
}

#[cfg(test)]
impl Shared {
    /// For unit tests against a scripted API: no reflectors and no watches. The caches hold
    /// `compositions` and `revisions` (and no EnvironmentConfig), and `kinds` are resolved and
    /// watched already, so the only requests are the ones a pass makes.
    pub(crate) fn scripted(
        client: Client,
        compositions: Vec<Composition>,
        revisions: Vec<CompositionRevision>,
        kinds: &[crate::kinds::Kind],
    ) -> Result<Arc<Self>> {
        fn cached<K>(objects: Vec<K>) -> Store<K>
        where
            K: Resource<DynamicType = ()> + Clone + 'static,
        {
            let (store, mut writer) = reflector::store();
            for object in objects {
                writer.apply_watcher_event(&watcher::Event::Apply(object));
            }
            store
        }
        let settings = Settings::default();
        let reporter = Reporter {
            controller: settings.controller_name.clone(),
            instance: None,
        };
        let resolved = Kinds::new(client.clone());
        for kind in kinds {
            resolved.know(kind.clone());
        }
        Ok(Arc::new(Self {
            recorders: (0..RECORDER_SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
            functions: Functions::new(&settings.functions)?,
            function_packages: Default::default(),
            kinds: resolved,
            client,
            metrics: Arc::new(Metrics::default()),
            settings,
            compositions: cached(compositions),
            revisions: cached(revisions),
            environments: cached(Vec::new()),
            compiled: Mutex::new(HashMap::new()),
            watched: Mutex::new(
                kinds
                    .iter()
                    .map(|k| (k.resource.api_version.clone(), k.resource.kind.clone()))
                    .collect(),
            ),
            routes: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(Vec::new()),
            newest: Newest::default(),
            allowed: Mutex::new(HashSet::new()),
            user: Mutex::new(None),
            environment_listeners: Arc::default(),
        }))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Called after the cache took in a change.
type OnChange = Box<dyn Fn() + Send + Sync>;

fn reflect<K>(
    client: &Client,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    on_change: Option<OnChange>,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    tasks.push(tokio::spawn(async move {
        // A relist's objects are announced once the cache holds them all (`relist`).
        let stream = crate::relist::touched_after_relist(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer),
        );
        futures_util::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {
                    if let Some(f) = &on_change {
                        f();
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
            }
        }
    }));
    store
}

/// The current time as a Kubernetes timestamp (seconds precision).
pub(crate) fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The hash Strata records in [`wire::ANNOTATION_APPLIED_HASH`] for a desired object.
pub(crate) fn applied_hash(desired: &Value) -> String {
    // The bytes of `desired.to_string()`, hashed in one piece: serialized straight into the
    // hasher, every token is a call into it, which cost three times the serialization.
    // Serializing a `Value` (string keys) cannot fail.
    let mut json = Vec::with_capacity(2048);
    let _ = serde_json::to_writer(&mut json, desired);
    let mut hex = String::with_capacity(32);
    for b in Sha256::digest(&json).iter().take(16) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The desired object stamped with its applied hash, and whether the observed object already
/// is that (same hash recorded, every desired field present): then no write is needed.
pub fn plan_apply(desired: &Value, observed: Option<&Value>) -> (Value, bool) {
    let stamped = stamp(desired.clone(), applied_hash(desired));
    let current = observed.is_some_and(|o| crate::conditions::contains(o, &stamped));
    (stamped, current)
}

/// `desired` with `hash` recorded in its applied-hash annotation.
fn stamp(mut desired: Value, hash: String) -> Value {
    if let Some(meta) = desired.as_object_mut().and_then(|o| {
        o.entry("metadata").or_insert_with(|| json!({}));
        o.get_mut("metadata")
    }) && let Some(meta) = meta.as_object_mut()
    {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(wire::ANNOTATION_APPLIED_HASH.into(), Value::String(hash));
        }
    }
    desired
}

/// Whether `observed` already is `desired` as [`plan_apply`] stamps it (its second answer),
/// without copying `desired`: a pass asks this of every composed object, and most are current.
pub fn is_applied(desired: &Value, observed: Option<&Value>) -> bool {
    let Some(observed) = observed else {
        return false;
    };
    let annotations = desired.at("/metadata/annotations");
    let plain = match desired.get("metadata") {
        None => true,
        Some(Value::Object(_)) => match annotations {
            None => true,
            Some(Value::Object(a)) => !a.contains_key(wire::ANNOTATION_APPLIED_HASH),
            Some(_) => false,
        },
        Some(_) => false,
    };
    if !plain {
        // Stamping is not a plain insert here (odd metadata, or a hash already written):
        // compare with the stamped copy itself.
        return plan_apply(desired, Some(observed)).1;
    }
    let recorded = observed
        .at("/metadata/annotations")
        .and_then(|a| a.get(wire::ANNOTATION_APPLIED_HASH))
        .and_then(Value::as_str);
    recorded.is_some()
        && crate::conditions::contains(observed, desired)
        && recorded == Some(applied_hash(desired).as_str())
}

/// `desired` stamped with its applied hash, for an apply (see [`plan_apply`]).
pub fn stamped(desired: &Value) -> Value {
    stamp(desired.clone(), applied_hash(desired))
}

/// Server-side applies `object` through `api` with Strata's field manager, forcing conflicts.
/// The answer is read as `K`: a `serde_json::Value` for callers that work on the object as JSON,
/// which skips the buffering a `DynamicObject` costs (its flattened fields make serde hold the
/// whole object once more while it is read) and the conversion back.
pub async fn apply<K: serde::de::DeserializeOwned>(
    api: &Api<DynamicObject>,
    name: &str,
    object: &Value,
    what: &str,
) -> Result<K> {
    apply_as(api, name, object, wire::FIELD_MANAGER)
        .await
        .map_err(|e| Error::kube("applying", what.to_owned(), e))
}

/// Server-side applies `object` through `api` as `manager`, forcing conflicts; the answer read
/// as `K` (see [`apply`]).
pub(crate) async fn apply_as<K: serde::de::DeserializeOwned>(
    api: &Api<DynamicObject>,
    name: &str,
    object: &Value,
    manager: &str,
) -> kube::Result<K> {
    let params = PatchParams::apply(manager).force();
    let mut req = kube::core::Request::new(api.resource_url())
        .patch(name, &params, &Patch::Apply(object))
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("patch");
    api.clone().into_client().request::<K>(req).await
}

/// The object `name` through `api` as JSON, `None` when there is none; read straight into a
/// `serde_json::Value` for the reasons given at [`apply`] (and, for a typed `api`, without the
/// round trip through its Rust type).
pub async fn get_json<K: kube::Resource + Clone>(
    api: &Api<K>,
    name: &str,
) -> kube::Result<Option<Value>> {
    let mut req = kube::core::Request::new(api.resource_url())
        .get(name, &kube::api::GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("get");
    match api.clone().into_client().request::<Value>(req).await {
        Ok(obj) => Ok(Some(obj)),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The finalizer list with `finalizer` added or removed; `None` when nothing changes.
pub(crate) fn finalizers_with(
    current: &[String],
    finalizer: &str,
    present: bool,
) -> Option<Vec<String>> {
    let has = current.iter().any(|f| f == finalizer);
    match (has, present) {
        (true, true) | (false, false) => None,
        (false, true) => Some(
            current
                .iter()
                .cloned()
                .chain([finalizer.to_owned()])
                .collect(),
        ),
        (true, false) => Some(
            current
                .iter()
                .filter(|f| *f != finalizer)
                .cloned()
                .collect(),
        ),
    }
}

/// Adds (`present`) or removes `finalizer` on an object; `Ok(false)` when nothing had to change.
/// Removing from an object that is already gone is success.
pub(crate) async fn set_finalizer<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
    present: bool,
    what: &str,
) -> Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(list) = finalizers_with(object.finalizers(), finalizer, present) else {
        return Ok(false);
    };
    let patch = finalizer_patch(&list, object.resource_version().as_deref());
    let action = if present {
        "adding the finalizer to"
    } else {
        "removing the finalizer from"
    };
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if !present && crate::error::is_not_found(&e) => Ok(true),
        Err(e) => Err(Error::kube(action, what.to_owned(), e)),
    }
}

/// A merge patch that sets `metadata.finalizers`, guarded by the observed resourceVersion so a
/// concurrent change of the list is retried instead of overwritten.
pub(crate) fn finalizer_patch(finalizers: &[String], resource_version: Option<&str>) -> Value {
    let mut meta = json!({"finalizers": finalizers});
    if let (Some(rv), Some(m)) = (resource_version, meta.as_object_mut()) {
        m.insert("resourceVersion".into(), Value::String(rv.to_owned()));
    }
    json!({"metadata": meta})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn the_applied_hash_is_of_the_objects_compact_json() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a\"b"}, "data": {"k": "é"}});
        let digest = Sha256::digest(desired.to_string().as_bytes());
        let expected: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_eq!(applied_hash(&desired), expected);
        assert_eq!(expected.len(), 32);
    }

    #[test]
    fn an_unchanged_desired_object_that_is_present_needs_no_write() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let (stamped, current) = plan_apply(&desired, None);
        assert!(!current);
        let mut observed = stamped.clone();
        observed["metadata"]["resourceVersion"] = json!("7");
        let (_, current) = plan_apply(&desired, Some(&observed));
        assert!(current);
    }

    #[test]
    fn drift_or_a_new_desired_state_needs_a_write() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let (stamped, _) = plan_apply(&desired, None);
        let mut drifted = stamped.clone();
        drifted["data"]["k"] = json!("changed by hand");
        assert!(!plan_apply(&desired, Some(&drifted)).1);
        let mut removed = desired.clone();
        removed["data"] = json!({});
        // A field removed from the desired state changes the hash, so the stale object is rewritten.
        assert!(!plan_apply(&removed, Some(&stamped)).1);
    }

    #[test]
    fn is_applied_answers_as_the_stamped_copy_does() {
        let hash_key = wire::ANNOTATION_APPLIED_HASH;
        let desireds = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}),
            json!({"metadata": {"name": "a", "annotations": {"x": "1"}}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a", "annotations": {hash_key: "mine"}}}),
            json!({"metadata": {"name": "a", "annotations": null}}),
            json!({"metadata": "odd", "data": {}}),
        ];
        for desired in &desireds {
            let (copy, _) = plan_apply(desired, None);
            let mut edited = copy.clone();
            if let Some(m) = edited.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), json!("7"));
            }
            let mut drifted = copy.clone();
            drifted["data"] = json!({"k": "changed by hand"});
            let mut rehashed = copy.clone();
            if let Some(a) = rehashed.pointer_mut("/metadata/annotations") {
                a[hash_key] = json!("another");
            }
            let observed = [
                None,
                Some(&copy),
                Some(&edited),
                Some(&drifted),
                Some(&rehashed),
                Some(desired),
            ];
            for o in observed {
                assert_eq!(
                    is_applied(desired, o),
                    plan_apply(desired, o).1,
                    "{desired} against {o:?}"
                );
            }
            assert_eq!(stamped(desired), copy);
        }
        assert!(is_applied(
            &desireds[0],
            Some(&plan_apply(&desireds[0], None).0)
        ));
    }

    #[test]
    fn finalizers_are_added_and_removed_once() {
        let none: Vec<String> = vec![];
        assert_eq!(
            finalizers_with(&none, "a", true),
            Some(vec!["a".to_owned()])
        );
        assert_eq!(finalizers_with(&["a".to_owned()], "a", true), None);
        assert_eq!(
            finalizers_with(&["a".to_owned(), "b".to_owned()], "a", false),
            Some(vec!["b".to_owned()])
        );
        assert_eq!(finalizers_with(&none, "a", false), None);
    }
}

#[cfg(test)]
mod write_memo_tests {
    use super::*;

    fn object(uid: &str, version: &str, data: Value) -> DynamicObject {
        let mut o = DynamicObject::new(
            "x",
            &ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("example.org", "v1", "X")),
        )
        .data(data);
        o.metadata.uid = Some(uid.to_owned());
        o.metadata.resource_version = Some(version.to_owned());
        o
    }

    #[test]
    fn a_cache_behind_our_own_writes_is_read_as_what_our_last_write_returned() {
        let newest = Newest::default();
        let v1 = object("u", "1", json!({"spec": {}}));
        let v2 = object("u", "2", json!({"spec": {"a": 1}}));
        let v3 = object("u", "3", json!({"spec": {"a": 2}}));
        newest.wrote(&v1, &v2);
        newest.wrote(&v2, &v3);
        // What a pass starts from when the cache holds `o`.
        let read = |o: &DynamicObject| newest.of(&Cached::from(o.clone())).data;
        assert_eq!(read(&v1), v3.data, "two writes behind");
        assert_eq!(read(&v2), v3.data, "one write behind");
        assert_eq!(read(&v3), v3.data, "caught up");
        assert_eq!(read(&v1), v1.data, "once caught up, the memo is gone");
    }

    #[test]
    fn the_memo_is_dropped_when_the_watch_catches_up_without_a_pass() {
        let newest = Newest::default();
        let v1 = object("u", "1", json!({"spec": {}}));
        let v2 = object("u", "2", json!({"spec": {"a": 1}}));
        newest.wrote(&v1, &v2);
        newest.caught_up(&v1.metadata);
        let read = |o: &DynamicObject| newest.of(&Cached::from(o.clone())).data;
        assert_eq!(read(&v1), v2.data, "a superseded version keeps the memo");
        newest.caught_up(&v2.metadata);
        assert!(
            newest.0.lock().unwrap().is_empty(),
            "the version we wrote arrived: nothing held"
        );
        assert_eq!(read(&v1), v1.data);
    }

    #[test]
    fn a_version_someone_else_wrote_wins_over_our_memo() {
        let newest = Newest::default();
        let v1 = object("u", "1", json!({"spec": {}}));
        let v2 = object("u", "2", json!({"spec": {"a": 1}}));
        let theirs = object("u", "9", json!({"spec": {"a": "theirs"}}));
        newest.wrote(&v1, &v2);
        assert_eq!(newest.of(&Cached::from(theirs.clone())).data, theirs.data);
    }
}
