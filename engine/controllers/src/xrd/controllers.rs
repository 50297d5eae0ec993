//! The controllers one XRD runs: one watch of the XR kind that fills the XR controller's cache
//! and tells the claim controller which claim's XR changed, the XR controller (triggered also
//! by composed resources, revisions of its Compositions and EnvironmentConfigs), and the claim
//! controller. Which XRs a revision or an EnvironmentConfig change concerns is decided by the
//! pure filters [`on_composition`] and [`may_select_environment`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures_util::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use serde_json::Value;
use strata_core::model::{CompositeResourceDefinition, CompositionRevision, XrScope};
use strata_core::wire;
use strata_schema::pointer::Pointer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Running, XrdContext};
use crate::cached::{self, Cached};
use crate::claim::{self, ClaimContext};
use crate::shape::Shape;
use crate::shared::Shared;
use crate::xr::{self, XrContext};

/// Starts (or, for an unchanged kind, refreshes the XRD snapshot of) the XR and claim
/// controllers of `xrd`.
pub(super) fn start(
    xrd: &CompositeResourceDefinition,
    ctx: &XrdContext,
    composite: ApiResource,
    claim: Option<ApiResource>,
) {
    let name = xrd.name_any();
    let mut running = ctx.running.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = running.get(&name)
        && r.composite == composite
        && r.claim == claim
    {
        *r.xrd.write().unwrap_or_else(|e| e.into_inner()) = xrd.clone();
        return;
    }
    if let Some(old) = running.remove(&name) {
        ctx.shared.unroute(&old.composite);
    }
    let namespaced = xrd.spec.scope == Some(XrScope::Namespaced);
    let snapshot = Arc::new(RwLock::new(xrd.clone()));
    let shared = ctx.shared.clone();

    // The XR controller: its own watch, composed-resource changes routed in, and revisions of
    // the Composition an XR uses.
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<Cached>>();
    shared.route(&composite, namespaced, tx);
    // One watch of the XR kind fills the XR controller's cache (compact: `cached`), triggers it,
    // and tells the claim controller which claim's XR changed.
    let (xr_tx, xr_rx) = mpsc::unbounded_channel::<Cached>();
    let (claim_tx, claim_rx) = mpsc::unbounded_channel::<ObjectRef<Cached>>();
    let writer = reflector::store::Writer::new(composite.clone());
    let xr_store = writer.as_reader();
    let mut tasks = vec![watch_composites(
        &shared,
        &composite,
        claim.clone(),
        writer,
        (xr_tx, claim_tx),
    )];
    let xr_ctx = Arc::new(XrContext {
        shared: shared.clone(),
        resource: composite.clone(),
        namespaced,
        xrd: snapshot.clone(),
    });
    tasks.push(run_composite_controller(
        xr_ctx,
        xr_store,
        xr_rx,
        receive(rx),
    ));
    if let Some(claim_ar) = &claim {
        let claim_ctx = Arc::new(ClaimContext {
            shared: shared.clone(),
            claim: claim_ar.clone(),
            composite: composite.clone(),
        });
        tasks.push(run_claim_controller(claim_ctx, claim_rx));
    }
    tracing::info!(xrd = %name, kind = %composite.kind, claim = ?claim.as_ref().map(|c| &c.kind), "started controllers");
    running.insert(
        name,
        Running {
            composite,
            claim,
            xrd: snapshot,
            tasks,
        },
    );
}

/// The one watch of the XR kind: it fills `writer` (the XR controller's cache), sends every XR
/// to the XR controller, and the claim of an XR whose claim-facing part changed to the claim
/// controller.
fn watch_composites(
    shared: &Shared,
    composite: &ApiResource,
    claim_type: Option<ApiResource>,
    mut writer: reflector::store::Writer<Cached>,
    (xr_tx, claim_tx): (
        mpsc::UnboundedSender<Cached>,
        mpsc::UnboundedSender<ObjectRef<Cached>>,
    ),
) -> JoinHandle<()> {
    let xr_api: Api<DynamicObject> = Api::all_with(shared.client.clone(), composite);
    tokio::spawn(async move {
        let stream = watcher(xr_api, watcher::Config::default()).default_backoff();
        futures_util::pin_mut!(stream);
        // The claim controller copies status, so it hears of an XR only when its status (or
        // deletion) changed: our own metadata and inventory writes are not its business.
        let mut told: HashMap<String, u64> = HashMap::new();
        // A relist's XRs and claims are held until its `InitDone` puts them in the caches
        // (`relist`): a pass started before that would not find a new object and be dropped.
        let mut held: Option<(Vec<Cached>, Vec<ObjectRef<Cached>>)> = None;
        while let Some(event) = stream.next().await {
            // What the claim controller needs is read from the decoded XR; the cache and the
            // XR controller get it packed.
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "composite watch failed; retrying");
                    continue;
                }
            };
            let mut claim = None;
            match &event {
                watcher::Event::Apply(xr) | watcher::Event::InitApply(xr) => {
                    if let Some(t) = &claim_type
                        && let Some(r) = claim_of(xr, t)
                    {
                        let seen = claim_facing_hash(xr);
                        if told.insert(xr.uid().unwrap_or_default(), seen) != Some(seen) {
                            claim = Some(r);
                        }
                    }
                }
                watcher::Event::Delete(xr) => {
                    told.remove(&xr.uid().unwrap_or_default());
                    if let Some(t) = &claim_type {
                        claim = claim_of(xr, t);
                    }
                }
                // A relist that starts over lists every XR again, but the claims already
                // noted are not noted twice (`told`): they stay held.
                watcher::Event::Init => {
                    let claims = held.take().map(|(_, claims)| claims).unwrap_or_default();
                    held = Some((Vec::new(), claims));
                }
                watcher::Event::InitDone => {}
            }
            let event = cached::event(event);
            writer.apply_watcher_event(&event);
            match (event, &mut held) {
                (watcher::Event::InitApply(xr), Some((xrs, claims))) => {
                    xrs.push(xr);
                    claims.extend(claim);
                }
                (
                    watcher::Event::Apply(xr)
                    | watcher::Event::InitApply(xr)
                    | watcher::Event::Delete(xr),
                    _,
                ) => {
                    if let Some(r) = claim {
                        let _ = claim_tx.send(r);
                    }
                    let _ = xr_tx.send(xr);
                }
                (watcher::Event::InitDone, _) => {
                    let (xrs, claims) = held.take().unwrap_or_default();
                    for r in claims {
                        let _ = claim_tx.send(r);
                    }
                    for xr in xrs {
                        let _ = xr_tx.send(xr);
                    }
                }
                (watcher::Event::Init, _) => {}
            }
        }
    })
}

/// The XR controller over the watch's cache, triggered by the watch (`xr_rx`), by composed
/// resources (`composed`), by revisions of the Compositions its XRs use, and by
/// EnvironmentConfig changes.
fn run_composite_controller(
    xr_ctx: Arc<XrContext>,
    xr_store: Store<Cached>,
    xr_rx: mpsc::UnboundedReceiver<Cached>,
    composed: impl futures_util::Stream<Item = ObjectRef<Cached>> + Send + 'static,
) -> JoinHandle<()> {
    let shared = xr_ctx.shared.clone();
    let composite = xr_ctx.resource.clone();
    let trigger = receive(xr_rx).map(Ok);
    let controller = Controller::for_stream_with(trigger, xr_store, composite.clone());
    let store = controller.store();
    let revisions: Api<CompositionRevision> = Api::all(shared.client.clone());
    let dyntype = composite.clone();
    let controller = controller.reconcile_on(composed).watches(
        revisions,
        watcher::Config::default(),
        move |rev| {
            let composition = rev
                .labels()
                .get(wire::LABEL_COMPOSITION_NAME)
                .cloned()
                .unwrap_or_default();
            store
                .state()
                .into_iter()
                .filter(|x| on_composition(x, &composition))
                .map(|x| object_ref(&x, &dyntype))
                .collect::<Vec<_>>()
        },
    );
    // A changed EnvironmentConfig re-reconciles the XRs that may have selected it: those naming
    // configs in spec.environmentConfigRefs, and those whose revision selects environments.
    // A superset of the XRs that did select it; a pass that changes nothing writes nothing.
    let (env_tx, env_rx) = mpsc::unbounded_channel::<()>();
    shared.on_environment_change(env_tx);
    let store = controller.store();
    let revisions = shared.revisions.clone();
    let dyntype = composite;
    let controller = controller.reconcile_on(receive(env_rx).flat_map(move |()| {
        let with_environment: HashSet<String> = revisions
            .state()
            .iter()
            .filter(|r| {
                r.spec
                    .composition
                    .environment
                    .as_ref()
                    .is_some_and(|e| !e.environment_configs.is_empty())
            })
            .map(|r| r.name_any())
            .collect();
        let refs: Vec<ObjectRef<Cached>> = store
            .state()
            .into_iter()
            .filter(|x| may_select_environment(x, &with_environment))
            .map(|x| object_ref(&x, &dyntype))
            .collect();
        futures_util::stream::iter(refs)
    }));
    let controller = controller.with_config(controller_config(&shared));
    tokio::spawn(async move {
        controller
            .run(xr::reconcile, xr::error_policy, xr_ctx)
            .for_each(|_| async {})
            .await;
    })
}

/// The claim controller over its own watch, triggered also by the XR watch (`claim_rx`).
fn run_claim_controller(
    claim_ctx: Arc<ClaimContext>,
    claim_rx: mpsc::UnboundedReceiver<ObjectRef<Cached>>,
) -> JoinHandle<()> {
    let shared = &claim_ctx.shared;
    let claim_ar = &claim_ctx.claim;
    let claims: Api<DynamicObject> = Api::all_with(shared.client.clone(), claim_ar);
    let writer = reflector::store::Writer::new(claim_ar.clone());
    let claim_store = writer.as_reader();
    let memo = claim_ctx.shared.clone();
    let claim_watch = watcher(claims, watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |event| {
            if let watcher::Event::Apply(claim) | watcher::Event::InitApply(claim) = event {
                memo.newest.caught_up(&claim.metadata);
            }
        })
        .map_ok(cached::event)
        .reflect(writer);
    let claim_watch = crate::relist::touched_after_relist(claim_watch)
        .predicate_filter(claim_desired_state, PredicateConfig::default());
    let controller = Controller::for_stream_with(claim_watch, claim_store, claim_ar.clone())
        .reconcile_on(receive(claim_rx))
        .with_config(controller_config(shared));
    tokio::spawn(async move {
        controller
            .run(claim::reconcile, claim::error_policy, claim_ctx)
            .for_each(|_| async {})
            .await;
    })
}

/// What a claim's own change must touch to start a claim pass: its generation (the spec),
/// labels, annotations, finalizers or deletion — Crossplane's `DesiredStateChanged`. The status
/// the claim controller writes itself starts none; the cache still holds it, and the XR's
/// changes start passes through the XR watch.
fn claim_desired_state(claim: &Cached) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &claim.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// The XR and claim controllers' debounce and concurrency, from the settings.
fn controller_config(shared: &Shared) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .debounce(shared.settings.debounce)
        .concurrency(shared.settings.concurrency)
}

/// An XR on `composition`, or not bound to a revision yet (waiting for one): a new revision
/// of the Composition concerns it.
fn on_composition(xr: &Cached, composition: &str) -> bool {
    let data = xr.data();
    let shape = Shape::observed(&data);
    let on = data
        .at(&shape.pointer("compositionRef/name"))
        .and_then(Value::as_str);
    on == Some(composition)
        || data
            .at(&shape.pointer("compositionRevisionRef/name"))
            .is_none()
}

/// An XR that may have selected a changed EnvironmentConfig: it names configs in
/// `spec.environmentConfigRefs`, or its revision is one that selects environments
/// (`with_environment`).
fn may_select_environment(xr: &Cached, with_environment: &HashSet<String>) -> bool {
    let data = xr.data();
    data.at("/spec/environmentConfigRefs").is_some()
        || data
            .at(&Shape::observed(&data).pointer("compositionRevisionRef/name"))
            .and_then(Value::as_str)
            .is_some_and(|r| with_environment.contains(r))
}

/// The XR as a reference of its kind.
fn object_ref(xr: &Cached, dyntype: &ApiResource) -> ObjectRef<Cached> {
    let r = ObjectRef::new_with(&xr.name_any(), dyntype.clone());
    match xr.namespace() {
        Some(ns) => r.within(&ns),
        None => r,
    }
}

/// The claim an XR is bound to (`spec.claimRef`), as a reference of the claim kind.
fn claim_of(xr: &DynamicObject, claim: &ApiResource) -> Option<ObjectRef<Cached>> {
    let s = |p: &str| xr.data.at(p).and_then(Value::as_str);
    match (s("/spec/claimRef/name"), s("/spec/claimRef/namespace")) {
        (Some(n), Some(ns)) => Some(ObjectRef::new_with(n, claim.clone()).within(ns)),
        _ => None,
    }
}

/// A hash of what the claim controller reads from an XR: its status, the spec it dictates
/// (without what the XR controller records: inventory and selected revision) and deletion.
fn claim_facing_hash(xr: &DynamicObject) -> u64 {
    use std::hash::{Hash, Hasher};
    // The JSON of those parts, one per line, written into one buffer: no copy of the spec
    // without the recorded fields. Serializing JSON to a `Vec` cannot fail.
    fn put<T: serde::Serialize + ?Sized>(json: &mut Vec<u8>, v: &T) {
        let _ = serde_json::to_writer(&mut *json, v);
        json.push(b'\n');
    }
    let mut json = Vec::with_capacity(1024);
    match xr.data.get("status") {
        Some(status) => put(&mut json, status),
        None => json.push(b'\n'),
    }
    match xr.data.get("spec") {
        Some(Value::Object(spec)) => {
            for (k, v) in spec {
                if k != "resourceRefs" && k != "compositionRevisionRef" {
                    put(&mut json, k);
                    put(&mut json, v);
                }
            }
        }
        spec => put(&mut json, spec.unwrap_or(&Value::Null)),
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    xr.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// The items of a channel as a stream.
fn receive<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn xr(data: Value) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..ObjectMeta::default()
            },
            data,
        }
    }

    #[test]
    fn a_revision_concerns_the_xrs_on_its_composition_and_those_waiting() {
        let rows = [
            (
                json!({"spec": {"compositionRef": {"name": "c"}, "compositionRevisionRef": {"name": "c-1"}}}),
                true,
                "on the Composition",
            ),
            (
                json!({"spec": {"compositionRef": {"name": "d"}, "compositionRevisionRef": {"name": "d-1"}}}),
                false,
                "on another Composition",
            ),
            (json!({"spec": {}}), true, "waiting for a revision"),
            (
                json!({"spec": {"crossplane": {"compositionRef": {"name": "c"}, "compositionRevisionRef": {"name": "c-1"}}}}),
                true,
                "v2 shape on the Composition",
            ),
            (
                json!({"spec": {"crossplane": {"compositionRef": {"name": "d"}, "compositionRevisionRef": {"name": "d-1"}}}}),
                false,
                "v2 shape on another",
            ),
        ];
        for (data, expected, reason) in rows {
            assert_eq!(
                on_composition(&Cached::from(xr(data)), "c"),
                expected,
                "{reason}"
            );
        }
    }

    #[test]
    fn an_environment_change_concerns_the_xrs_that_may_have_selected_it() {
        let selecting = HashSet::from(["c-2".to_owned()]);
        let rows = [
            (
                json!({"spec": {"environmentConfigRefs": [{"name": "e"}]}}),
                true,
                "names configs",
            ),
            (
                json!({"spec": {"compositionRevisionRef": {"name": "c-2"}}}),
                true,
                "its revision selects",
            ),
            (
                json!({"spec": {"compositionRevisionRef": {"name": "c-1"}}}),
                false,
                "its revision does not",
            ),
            (json!({"spec": {}}), false, "no revision, no references"),
        ];
        for (data, expected, reason) in rows {
            assert_eq!(
                may_select_environment(&Cached::from(xr(data)), &selecting),
                expected,
                "{reason}"
            );
        }
    }

    #[test]
    fn a_claim_pass_starts_on_its_desired_state_not_on_its_status() {
        let mut claim = xr(json!({"spec": {"size": 1}, "status": {"a": 1}}));
        claim.metadata.generation = Some(1);
        let state = |c: &DynamicObject| claim_desired_state(&Cached::from(c.clone()));
        let base = state(&claim);
        let mut status = claim.clone();
        status.data["status"]["a"] = json!(2);
        status.metadata.resource_version = Some("99".into());
        assert_eq!(state(&status), base, "its own status write starts no pass");
        let mut changes: Vec<(&str, DynamicObject)> = Vec::new();
        let mut c = claim.clone();
        c.metadata.generation = Some(2);
        changes.push(("the spec (generation)", c));
        let mut c = claim.clone();
        c.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
        changes.push(("labels", c));
        let mut c = claim.clone();
        c.metadata.annotations = Some([("note".to_owned(), "x".to_owned())].into());
        changes.push(("annotations", c));
        let mut c = claim.clone();
        c.metadata.finalizers = Some(vec!["f".to_owned()]);
        changes.push(("finalizers", c));
        let mut c = claim.clone();
        c.metadata.deletion_timestamp = serde_json::from_value(json!("2026-01-01T00:00:00Z")).ok();
        assert!(c.metadata.deletion_timestamp.is_some());
        changes.push(("deletion", c));
        for (what, changed) in changes {
            assert_ne!(state(&changed), base, "{what} starts a pass");
        }
    }

    #[test]
    fn the_claim_hears_of_status_and_claim_spec_changes_only() {
        let base = json!({"spec": {"size": 1, "claimRef": {"name": "c", "namespace": "n"}}, "status": {"a": 1}});
        let hash = |data: &Value| claim_facing_hash(&xr(data.clone()));
        let mut inventory = base.clone();
        inventory["spec"]["resourceRefs"] = json!([{"name": "r"}]);
        inventory["spec"]["compositionRevisionRef"] = json!({"name": "c-1"});
        assert_eq!(
            hash(&base),
            hash(&inventory),
            "the XR controller's records are not the claim's business"
        );
        let mut status = base.clone();
        status["status"]["a"] = json!(2);
        assert_ne!(hash(&base), hash(&status), "a status change is");
        let mut spec = base.clone();
        spec["spec"]["size"] = json!(2);
        assert_ne!(hash(&base), hash(&spec), "a spec change is");
        let mut renamed = base.clone();
        renamed["spec"] =
            json!({"size": 1, "claimRef": {"name": "c", "namespace": "n"}, "extra": null});
        assert_ne!(hash(&base), hash(&renamed), "a new spec field is");
        let no_status = json!({"spec": base["spec"].clone()});
        assert_ne!(hash(&base), hash(&no_status), "a status going away is");
        assert_ne!(
            hash(&json!({"spec": {}, "status": null})),
            hash(&json!({"spec": {}})),
            "a null status is not a missing one"
        );
    }
}
