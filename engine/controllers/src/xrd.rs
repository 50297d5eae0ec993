//! The XRD controller: for each CompositeResourceDefinition, server-side apply the generated XR
//! CRD (and claim CRD), wait until the API serves them, and run one XR controller (and one claim
//! controller) for the kind, and (when enabled) the ClusterRoles that aggregate its namespaced
//! kinds into `edit`/`view` ([`crate::roles`]). `Established`/`Offered` report progress on the XRD. Deletion is
//! refused while XRs exist; otherwise the controllers stop and the CRDs are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strata_core::crd::xrd_to_crds;
use strata_core::model::{CompositeResourceDefinition, CompositionRevision, XrScope};
use strata_core::wire;
use tokio::sync::mpsc;

use crate::claim::{self, ClaimContext};
use crate::conditions::{self, ESTABLISHED, OFFERED, Wanted};
use crate::error::{Error, Result, is_not_found};
use crate::shape::Shape;
use crate::shared::{self, Shared};
use crate::xr::{self, XrContext};

pub const CONTROLLER: &str = "xrd";

/// The controllers running for one XRD.
struct Running {
    composite: ApiResource,
    claim: Option<ApiResource>,
    xrd: Arc<RwLock<CompositeResourceDefinition>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The XRD controller's context.
pub struct XrdContext {
    pub shared: Arc<Shared>,
    running: Mutex<HashMap<String, Running>>,
}

impl XrdContext {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Stops every XR and claim controller.
    pub fn stop_all(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            self.shared.unroute(&r.composite);
        }
    }
}

pub async fn reconcile(
    xrd: Arc<CompositeResourceDefinition>,
    ctx: Arc<XrdContext>,
) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_xrd(&xrd, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

pub fn error_policy(
    _xrd: Arc<CompositeResourceDefinition>,
    error: &Error,
    ctx: Arc<XrdContext>,
) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

/// The API resource of the XRD's composite kind (its referenceable version) or claim kind.
fn resources(xrd: &CompositeResourceDefinition) -> Option<(ApiResource, Option<ApiResource>)> {
    let spec = &xrd.spec;
    let version = spec
        .versions
        .iter()
        .find(|v| v.referenceable)
        .or_else(|| spec.versions.first())?;
    let ar = |names: &strata_core::model::Names| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&spec.group, &version.name, &names.kind),
            &names.plural,
        )
    };
    Some((ar(&spec.names), spec.claim_names.as_ref().map(ar)))
}

async fn write_status(
    xrd: &CompositeResourceDefinition,
    ctx: &XrdContext,
    wanted: &[Wanted],
) -> Result<()> {
    let name = xrd.name_any();
    let observed = serde_json::to_value(&xrd.status).unwrap_or(Value::Null);
    let observed = observed.is_object().then_some(observed);
    let desired = conditions::with_conditions(
        observed.as_ref().unwrap_or(&json!({})),
        wanted,
        &shared::now(),
    );
    if conditions::differs(observed.as_ref(), &desired) {
        let api: Api<CompositeResourceDefinition> = Api::all(ctx.shared.client.clone());
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": desired})),
        )
        .await
        .map_err(|e| Error::kube("writing the status of", format!("XRD {name}"), e))?;
    }
    Ok(())
}

async fn reconcile_xrd(xrd: &CompositeResourceDefinition, ctx: &XrdContext) -> Result<Action> {
    let name = xrd.name_any();
    let what = format!("XRD {name}");
    let api: Api<CompositeResourceDefinition> = Api::all(ctx.shared.client.clone());
    let object = xrd.object_ref(&());
    if xrd.metadata.deletion_timestamp.is_some() {
        return delete(xrd, ctx, &api, &what).await;
    }
    if shared::set_finalizer(&api, xrd, wire::FINALIZER_XRD, true, &what).await? {
        return Ok(Action::await_change());
    }
    let crds = match xrd_to_crds(xrd) {
        Ok(c) => c,
        Err(e) => {
            ctx.shared
                .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
                .await;
            write_status(
                xrd,
                ctx,
                &[Wanted::no(ESTABLISHED, "InvalidDefinition", e.to_string())],
            )
            .await?;
            return Ok(Action::requeue(ctx.shared.settings.resync));
        }
    };
    let Some((composite, claim)) = resources(xrd) else {
        return Err(Error::invalid(
            what,
            "spec.versions: at least one version is required",
        ));
    };
    let crd_api: Api<CustomResourceDefinition> = Api::all(ctx.shared.client.clone());
    for crd in std::iter::once(&crds.composite).chain(crds.claim.as_ref()) {
        if let Err(e) = apply_crd(&crd_api, crd).await {
            ctx.shared
                .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
                .await;
            write_status(
                xrd,
                ctx,
                &[Wanted::no(ESTABLISHED, "ApplyFailed", e.to_string())],
            )
            .await?;
            return Err(e);
        }
    }
    let settings = &ctx.shared.settings;
    if (settings.aggregate_to_controllers || settings.aggregate_to_user_roles)
        && let Err(e) = crate::roles::apply(
            &ctx.shared.client,
            xrd,
            settings.aggregate_to_controllers,
            settings.aggregate_to_user_roles,
        )
        .await
    {
        ctx.shared
            .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
            .await;
        return Err(e);
    }
    let claim_served = match &claim {
        Some(c) => served(ctx, c).await,
        None => true,
    };
    if !served(ctx, &composite).await || !claim_served {
        write_status(
            xrd,
            ctx,
            &[Wanted::no(
                ESTABLISHED,
                "Pending",
                "waiting for the API server to serve the CRDs",
            )],
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    ctx.shared
        .kinds
        .forget(&composite.api_version, &composite.kind);
    start_controllers(xrd, ctx, composite, claim.clone());
    let mut wanted = vec![Wanted::yes(ESTABLISHED, "WatchingCompositeResource")];
    if claim.is_some() {
        wanted.push(Wanted::yes(OFFERED, "WatchingCompositeResourceClaim"));
    }
    write_status(xrd, ctx, &wanted).await?;
    Ok(Action::requeue(ctx.shared.settings.resync))
}

/// Applies a CRD when it differs from what the API server has.
async fn apply_crd(
    api: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
) -> Result<()> {
    let name = crd.name_any();
    let what = format!("CustomResourceDefinition {name}");
    let mut desired = serde_json::to_value(crd).map_err(|source| Error::Serialize {
        object: what.clone(),
        source,
    })?;
    if let Some(o) = desired.as_object_mut() {
        o.insert("apiVersion".into(), json!("apiextensions.k8s.io/v1"));
        o.insert("kind".into(), json!("CustomResourceDefinition"));
        o.remove("status");
    }
    let observed = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", what.clone(), e))?;
    let observed = observed
        .map(|c| serde_json::to_value(&c))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: what.clone(),
            source,
        })?;
    if let Some(o) = &observed
        && conditions::contains(o, &json!({"spec": desired.get("spec")}))
    {
        return Ok(());
    }
    api.patch(
        &name,
        &PatchParams::apply(wire::FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|e| Error::kube("applying", what, e))?;
    Ok(())
}

/// True once the API server lists the kind.
async fn served(ctx: &XrdContext, resource: &ApiResource) -> bool {
    let api: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), resource);
    api.list(&ListParams::default().limit(1)).await.is_ok()
}

fn start_controllers(
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
    let mut tasks = Vec::new();

    // The XR controller: its own watch, composed-resource changes routed in, and revisions of
    // the Composition an XR uses.
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<DynamicObject>>();
    shared.route(&composite, namespaced, tx);
    let composed = receive(rx);
    // One watch of the XR kind fills the XR controller's cache (without managedFields), triggers
    // it, and tells the claim controller which claim's XR changed.
    let (xr_tx, xr_rx) = mpsc::unbounded_channel::<DynamicObject>();
    let (claim_tx, claim_rx) = mpsc::unbounded_channel::<ObjectRef<DynamicObject>>();
    let writer = reflector::store::Writer::new(composite.clone());
    let xr_store = writer.as_reader();
    let xr_api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &composite);
    let claim_type = claim.clone();
    tasks.push(tokio::spawn(async move {
        let stream = watcher(xr_api, watcher::Config::default())
            .default_backoff()
            .modify(shared::slim)
            .reflect(writer);
        futures_util::pin_mut!(stream);
        // The claim controller copies status, so it hears of an XR only when its status (or
        // deletion) changed: our own metadata and inventory writes are not its business.
        let mut told: HashMap<String, u64> = HashMap::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(xr) | watcher::Event::InitApply(xr)) => {
                    if let Some(t) = &claim_type
                        && let Some(r) = claim_of(&xr, t)
                    {
                        let seen = claim_facing_hash(&xr);
                        if told.insert(xr.uid().unwrap_or_default(), seen) != Some(seen) {
                            let _ = claim_tx.send(r);
                        }
                    }
                    let _ = xr_tx.send(xr);
                }
                Ok(watcher::Event::Delete(xr)) => {
                    told.remove(&xr.uid().unwrap_or_default());
                    if let Some(t) = &claim_type
                        && let Some(r) = claim_of(&xr, t)
                    {
                        let _ = claim_tx.send(r);
                    }
                    let _ = xr_tx.send(xr);
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(e) => tracing::warn!(error = %e, "composite watch failed; retrying"),
            }
        }
    }));
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
                // XRs on this Composition, and XRs not bound to a revision yet (waiting for one).
                .filter(|x| {
                    let shape = Shape::observed(&x.data);
                    let on = x
                        .data
                        .pointer(&shape.pointer("compositionRef/name"))
                        .and_then(Value::as_str);
                    on == Some(composition.as_str())
                        || x.data
                            .pointer(&shape.pointer("compositionRevisionRef/name"))
                            .is_none()
                })
                .map(|x| {
                    let r = ObjectRef::new_with(&x.name_any(), dyntype.clone());
                    match x.namespace() {
                        Some(ns) => r.within(&ns),
                        None => r,
                    }
                })
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
    let dyntype = composite.clone();
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
        let refs: Vec<ObjectRef<DynamicObject>> = store
            .state()
            .into_iter()
            .filter(|x| {
                x.data.pointer("/spec/environmentConfigRefs").is_some()
                    || x.data
                        .pointer(&Shape::observed(&x.data).pointer("compositionRevisionRef/name"))
                        .and_then(Value::as_str)
                        .is_some_and(|r| with_environment.contains(r))
            })
            .map(|x| {
                let r = ObjectRef::new_with(&x.name_any(), dyntype.clone());
                match x.namespace() {
                    Some(ns) => r.within(&ns),
                    None => r,
                }
            })
            .collect();
        futures_util::stream::iter(refs)
    }));
    let xr_ctx = Arc::new(XrContext {
        shared: shared.clone(),
        resource: composite.clone(),
        namespaced,
        xrd: snapshot.clone(),
    });
    let config = kube::runtime::controller::Config::default()
        .debounce(shared.settings.debounce)
        .concurrency(shared.settings.concurrency);
    let controller = controller.with_config(config.clone());
    tasks.push(tokio::spawn(async move {
        controller
            .run(xr::reconcile, xr::error_policy, xr_ctx)
            .for_each(|_| async {})
            .await;
    }));

    if let Some(claim_ar) = &claim {
        let claims: Api<DynamicObject> = Api::all_with(shared.client.clone(), claim_ar);
        let writer = reflector::store::Writer::new(claim_ar.clone());
        let claim_store = writer.as_reader();
        let claim_watch = watcher(claims, watcher::Config::default())
            .default_backoff()
            .modify(shared::slim)
            .reflect(writer)
            .touched_objects();
        let controller = Controller::for_stream_with(claim_watch, claim_store, claim_ar.clone())
            .reconcile_on(receive(claim_rx));
        let claim_ctx = Arc::new(ClaimContext {
            shared: shared.clone(),
            claim: claim_ar.clone(),
            composite: composite.clone(),
        });
        let controller = controller.with_config(config);
        tasks.push(tokio::spawn(async move {
            controller
                .run(claim::reconcile, claim::error_policy, claim_ctx)
                .for_each(|_| async {})
                .await;
        }));
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

/// The claim an XR is bound to (`spec.claimRef`), as a reference of the claim kind.
fn claim_of(xr: &DynamicObject, claim: &ApiResource) -> Option<ObjectRef<DynamicObject>> {
    let s = |p: &str| xr.data.pointer(p).and_then(Value::as_str);
    match (s("/spec/claimRef/name"), s("/spec/claimRef/namespace")) {
        (Some(n), Some(ns)) => Some(ObjectRef::new_with(n, claim.clone()).within(ns)),
        _ => None,
    }
}

/// A hash of what the claim controller reads from an XR: its status, the spec it dictates
/// (without what the XR controller records: inventory and selected revision) and deletion.
fn claim_facing_hash(xr: &DynamicObject) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    xr.data.get("status").map(Value::to_string).hash(&mut h);
    let mut spec = xr.data.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(o) = spec.as_object_mut() {
        o.remove("resourceRefs");
        o.remove("compositionRevisionRef");
    }
    spec.to_string().hash(&mut h);
    xr.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// The items of a channel as a stream.
fn receive<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

async fn delete(
    xrd: &CompositeResourceDefinition,
    ctx: &XrdContext,
    api: &Api<CompositeResourceDefinition>,
    what: &str,
) -> Result<Action> {
    if !xrd.finalizers().iter().any(|f| f == wire::FINALIZER_XRD) {
        return Ok(Action::await_change());
    }
    if let Some((composite, claim)) = resources(xrd) {
        let xrs: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), &composite);
        match xrs.list(&ListParams::default().limit(1)).await {
            Ok(list) if !list.items.is_empty() => {
                let message = format!(
                    "cannot delete: {} composite resources still exist; delete them first",
                    composite.kind
                );
                write_status(xrd, ctx, &[Wanted::no(ESTABLISHED, "Terminating", message)]).await?;
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(Error::kube(
                    "listing the composite resources of",
                    what.to_owned(),
                    e,
                ));
            }
        }
        {
            let mut running = ctx.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = running.remove(&xrd.name_any()) {
                ctx.shared.unroute(&r.composite);
            }
        }
        let crds: Api<CustomResourceDefinition> = Api::all(ctx.shared.client.clone());
        let names = std::iter::once(format!("{}.{}", composite.plural, composite.group))
            .chain(claim.map(|c| format!("{}.{}", c.plural, c.group)));
        for crd in names {
            match crds.delete(&crd, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    ctx.shared
                        .warn(
                            &xrd.object_ref(&()),
                            wire::REASON_DELETE_CRD,
                            format!("{crd}: {e}"),
                        )
                        .await;
                    return Err(Error::kube(
                        "deleting",
                        format!("CustomResourceDefinition {crd}"),
                        e,
                    ));
                }
            }
        }
        ctx.shared
            .kinds
            .forget(&composite.api_version, &composite.kind);
    }
    shared::set_finalizer(api, xrd, wire::FINALIZER_XRD, false, what).await?;
    Ok(Action::await_change())
}
