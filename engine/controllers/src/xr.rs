//! The composite resource (XR) controller, one per XR kind, over `DynamicObject`.
//!
//! A pass: select the Composition and its revision (written back to the XR spec, or to
//! `spec.crossplane` in Crossplane's v2 shape, see [`crate::shape`]), compile it
//! (cached per revision), observe the composed resources recorded in `spec.resourceRefs`, select
//! the environment, [`render`], record the inventory, server-side apply the released resources
//! in graph order, prune what left the desired set only when every apply succeeded, publish the
//! connection Secret when it changed, and write `Synced`/`Ready` only when the status changed.
//! Deletion runs in reverse dependency waves from the recorded inventory behind a finalizer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strata_core::model::{
    CompositeResourceDefinition, CompositionRevision, EnvironmentSpec, UpdatePolicy,
};
use strata_core::render::{self, Observed, ObservedResources, RenderInput, RenderOutput};
use strata_core::wire;
use strata_functions::run::{PipelineError, Severity, StepResult};

use crate::conditions::{self, READY, SYNCED, Wanted};
use crate::environment;
use crate::error::{Error, ErrorClass, Result, is_not_found};
use crate::functions::{self, Composer};
use crate::holds;
use crate::inventory::{self, DeletionStep, Observation, Prune, ResourceRef};
use crate::select::{self, CompositionCandidate, RevisionCandidate, SelectionInput};
use crate::shape::Shape;
use crate::shared::{self, Shared};

/// Everything one XR kind's controller needs.
pub struct XrContext {
    pub shared: Arc<Shared>,
    pub resource: ApiResource,
    pub namespaced: bool,
    /// The XRD, refreshed by the XRD controller on every change.
    pub xrd: Arc<RwLock<CompositeResourceDefinition>>,
}

impl XrContext {
    /// Where this kind's XRs keep their machinery, from the XRD's scope.
    fn shape(&self) -> Shape {
        Shape::of(
            self.xrd
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .spec
                .scope,
        )
    }
}

/// The metrics name of this controller.
pub const CONTROLLER: &str = "composite";

/// How often a deletion in progress looks again (watches usually come first).
const DELETION_POLL: Duration = Duration::from_secs(1);

pub async fn reconcile(xr: Arc<DynamicObject>, ctx: Arc<XrContext>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_xr(&xr, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

pub fn error_policy(_xr: Arc<DynamicObject>, error: &Error, ctx: Arc<XrContext>) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

/// `Kind name` or `Kind namespace/name`.
fn describe(kind: &str, xr: &DynamicObject) -> String {
    match xr.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", xr.name_any()),
        None => format!("{kind} {}", xr.name_any()),
    }
}

fn xr_api(ctx: &XrContext, xr: &DynamicObject) -> Api<DynamicObject> {
    match (ctx.namespaced, xr.namespace()) {
        (true, Some(ns)) => Api::namespaced_with(ctx.shared.client.clone(), &ns, &ctx.resource),
        _ => Api::all_with(ctx.shared.client.clone(), &ctx.resource),
    }
}

fn reference(ctx: &XrContext, xr: &DynamicObject) -> ObjectReference {
    xr.object_ref(&ctx.resource)
}

async fn reconcile_xr(cached: &DynamicObject, ctx: &XrContext) -> Result<Action> {
    // Our own last write, when the cache has not caught up with it yet.
    let xr = ctx.shared.newest.of(cached);
    let id = describe(&ctx.resource.kind, &xr);
    if xr
        .annotations()
        .get(wire::ANNOTATION_PAUSED)
        .is_some_and(|v| v == "true")
    {
        tracing::debug!(xr = %id, "paused");
        return Ok(Action::await_change());
    }
    let api = xr_api(ctx, &xr);
    if xr.metadata.deletion_timestamp.is_some() {
        return delete(&xr, ctx, &api, &id).await;
    }
    let mut writer = XrWriter {
        ctx,
        api: api.clone(),
        current: xr,
        id: id.clone(),
        spec: Map::new(),
        shape: ctx.shape(),
    };
    let mut events = Vec::new();
    let outcome = compose(&mut events, &mut writer, ctx, &id).await;
    if let Err(e) = &outcome
        && e.is_conflict()
    {
        // Someone wrote the XR between our read and our write: look again at their version.
        tracing::debug!(xr = %id, error = %e, "conflict; retrying");
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    // The finalizer and the selection are recorded even when a later step failed.
    writer.flush().await?;
    let xr = writer.current;
    let value = serde_json::to_value(&xr).map_err(|source| Error::Serialize {
        object: id.clone(),
        source,
    })?;
    let observed_status = value.get("status");
    let base = match observed_status {
        Some(Value::Object(_)) => observed_status.cloned().unwrap_or_else(|| json!({})),
        _ => json!({}),
    };
    let now = shared::now();
    let mut step_results = Vec::new();
    // Warnings about what holds the XR back that its Ready message does not say yet.
    let mut hold_events = Vec::new();
    let (desired_status, action, result) = match outcome {
        Ok(pass) => {
            step_results = pass.results;
            hold_events = holds::new_events(&pass.holds, holds::observed_ready_message(&value));
            // The render's status fields, with the observed conditions kept (for their timestamps).
            let mut status = pass.status;
            if let (Some(o), Some(cs)) = (status.as_object_mut(), base.get("conditions")) {
                o.insert("conditions".into(), cs.clone());
            }
            let mut produced: Vec<Value> = pass
                .output
                .composite_status
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // A Ready=False that a stuck composed resource causes says why.
            if let Some(ready) = holds::ready_condition(&pass.output.unready, &pass.holds) {
                produced.retain(|c| c.get("type").and_then(Value::as_str) != Some(READY));
                produced.push(ready);
            }
            conditions::merge_json_conditions(&mut status, &produced, &now);
            let synced = if pass.failures.is_empty() {
                Wanted::yes(SYNCED, "ReconcileSuccess")
            } else {
                let names: Vec<String> = pass
                    .failures
                    .iter()
                    .map(|(n, m)| format!("{n}: {m}"))
                    .collect();
                Wanted::no(
                    SYNCED,
                    "ReconcileError",
                    format!("cannot apply composed resources: {}", names.join("; ")),
                )
            };
            let status = conditions::with_conditions(&status, &[synced], &now);
            let action = if pass.failures.is_empty() {
                let resync = ctx.shared.settings.resync;
                Action::requeue(pass.ttl.map_or(resync, |t| t.clamp(MIN_TTL, resync)))
            } else {
                Action::requeue(Duration::from_secs(5))
            };
            (status, action, Ok(()))
        }
        Err(e) => {
            let reason = match e.class() {
                ErrorClass::Waiting => "Waiting",
                _ => "ReconcileError",
            };
            let mut wanted = vec![Wanted::no(SYNCED, reason, e.to_string())];
            if conditions::status_of(Some(&base), READY).is_none() {
                wanted.push(Wanted::no(
                    READY,
                    "Creating",
                    "the composite resource has not been composed yet",
                ));
            }
            let status = conditions::with_conditions(&base, &wanted, &now);
            let action = Action::requeue(e.retry_after(ctx.shared.settings.resync));
            (status, action, Err(e))
        }
    };
    if conditions::differs(observed_status, &desired_status) {
        let patch = json!({"metadata": {"resourceVersion": xr.resource_version()}, "status": desired_status});
        let written = match api
            .patch_status(
                &xr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(w) => w,
            Err(e) if crate::error::is_conflict(&e) => {
                tracing::debug!(xr = %id, error = %e, "conflict writing the status; retrying");
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Err(e) => return Err(Error::kube("writing the status of", id.clone(), e)),
        };
        ctx.shared.newest.wrote(&xr, &written);
        // Events only when the outcome changed: a stuck XR must not write an event every pass.
        let object = reference(ctx, &xr);
        for (reason, note) in events {
            ctx.shared.warn(&object, reason, note).await;
        }
        publish_holds(ctx, &object, &value, hold_events).await;
        publish_results(ctx, &object, &value, &step_results).await;
    } else {
        for (reason, note) in events {
            tracing::debug!(xr = %id, reason, "{note}");
        }
    }
    match result {
        Ok(()) => Ok(action),
        // Reported through the condition and an event; retried per class without an error log storm.
        Err(e) => {
            tracing::debug!(xr = %id, error = %e, "pass failed");
            Ok(action)
        }
    }
}

/// The shortest requeue a function's TTL may ask for.
const MIN_TTL: Duration = Duration::from_secs(1);

/// How soon a pass that lost a race with another writer (409) looks again.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// The XR as this pass knows it, and the metadata and spec fields still to write to it. All of
/// them (finalizer, selected Composition and revision, inventory) go out as one merge patch
/// guarded by the resourceVersion they were decided on: a concurrent write makes it fail with
/// a 409 and the pass is retried on the newer version instead of overwriting it.
struct XrWriter<'a> {
    ctx: &'a XrContext,
    api: Api<DynamicObject>,
    /// The newest version: what the last write returned, or what the pass started from.
    current: DynamicObject,
    id: String,
    /// Machinery fields to write with the next flush (under `spec`, or `spec.crossplane`).
    spec: Map<String, Value>,
    shape: Shape,
}

impl XrWriter<'_> {
    fn value(&self) -> Result<Value> {
        serde_json::to_value(&self.current).map_err(|source| Error::Serialize {
            object: self.id.clone(),
            source,
        })
    }

    /// Writes the pending spec fields, and the finalizer when it is missing, in one patch.
    async fn flush(&mut self) -> Result<()> {
        let finalizers =
            shared::finalizers_with(self.current.finalizers(), wire::FINALIZER_COMPOSITE, true);
        if finalizers.is_none() && self.spec.is_empty() {
            return Ok(());
        }
        let mut meta = Map::new();
        meta.insert(
            "resourceVersion".into(),
            json!(self.current.resource_version()),
        );
        if let Some(f) = finalizers {
            meta.insert("finalizers".into(), json!(f));
        }
        let mut patch = json!({"metadata": meta});
        if !self.spec.is_empty()
            && let Some(o) = patch.as_object_mut()
        {
            let fields = std::mem::take(&mut self.spec);
            o.insert("spec".into(), Value::Object(self.shape.spec_patch(fields)));
        }
        let written = self
            .api
            .patch(
                &self.current.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    "recording the selection and inventory of",
                    self.id.clone(),
                    e,
                )
            })?;
        self.ctx.shared.newest.wrote(&self.current, &written);
        self.current = written;
        Ok(())
    }
}

/// The result of a compose pass that rendered.
struct Pass {
    output: RenderOutput,
    /// The status of the rendered XR with the render's status merged in.
    status: Value,
    /// Template name and message of every apply that failed.
    failures: Vec<(String, String)>,
    /// A function pipeline's shortest TTL: the XR is composed again by then.
    ttl: Option<Duration>,
    /// A function pipeline's results: events on the XR (and its claim when they target it).
    results: Vec<StepResult>,
    /// What holds each stuck unready resource back (by template name).
    holds: BTreeMap<String, holds::Hold>,
}

/// Selection, compile, observe, then render and apply in rounds, prune, publish.
///
/// What an apply returns is the live object, so it is observed at once: the next round's render
/// releases the resources that waited for it, and the last render computes readiness over every
/// wave. A pass therefore composes all waves and the status is written once, instead of once per
/// wave after a watch event brings each wave back.
async fn compose(
    events: &mut Vec<(&'static str, String)>,
    w: &mut XrWriter<'_>,
    ctx: &XrContext,
    id: &str,
) -> Result<Pass> {
    let sh = &ctx.shared;
    let value = w.value()?;
    let (revision, spec_patch) = match choose_revision(&value, ctx, id) {
        Ok(r) => r,
        Err(e) => {
            events.push((wire::REASON_SELECT_COMPOSITION, e.to_string()));
            return Err(e);
        }
    };
    if let Some(Value::Object(p)) = spec_patch {
        w.spec.extend(p);
    }
    let compiled = sh.compiled(&revision);
    let composer: &Composer = match compiled.as_ref() {
        Ok(c) => c,
        Err(message) => {
            let e = Error::invalid(
                id,
                format!(
                    "Composition revision `{}` does not compile: {message}",
                    revision.name_any()
                ),
            );
            events.push((wire::REASON_COMPILE_COMPOSITION, e.to_string()));
            return Err(e);
        }
    };

    let mut recorded = ResourceRef::list_of(&value);
    let (mut observed, mut present) = match observe(ctx, &recorded).await {
        Ok(o) => o,
        Err(e) => {
            events.push((wire::REASON_OBSERVE_RESOURCE, e.to_string()));
            return Err(e);
        }
    };

    let selection = match composer {
        Composer::Native(_) => Ok(revision.spec.composition.environment.clone()),
        Composer::Pipeline(p) => p
            .environment_selection()
            .map_err(|e| Error::invalid(id, e.to_string())),
    };
    let env = match selection.and_then(|s| select_environment(&value, s.as_ref(), ctx)) {
        Ok(env) => env,
        Err(e) => {
            events.push((wire::REASON_ENVIRONMENT, e.to_string()));
            return Err(e);
        }
    };

    let mut failures: Vec<(String, String)> = Vec::new();
    let mut released: Vec<String> = Vec::new();
    let mut round = 0;
    let mut results = None;
    let mut ttl = None;
    let (output, desired_refs, status) = loop {
        let value = w.value()?;
        let output = match composer {
            Composer::Native(compiled) => render::render(
                compiled,
                RenderInput {
                    composite: &value,
                    observed: &observed,
                    environment: env.as_ref(),
                },
            )
            .map_err(|e| {
                Error::invalid(
                    id,
                    format!("render with revision `{}`: {e}", revision.name_any()),
                )
            }),
            Composer::Pipeline(pipeline) => functions::run(
                &sh.functions,
                &sh.kinds,
                pipeline,
                &value,
                &observed,
                env.as_ref(),
            )
            .await
            .map(|outcome| {
                results = Some(outcome.results);
                ttl = outcome.ttl;
                outcome.output
            })
            .map_err(|e| pipeline_error(id, &revision.name_any(), e)),
        };
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                events.push((wire::REASON_RENDER, e.to_string()));
                return Err(e);
            }
        };
        let mut desired_refs = Vec::with_capacity(output.resources.len());
        for d in &output.resources {
            let Some(r) = ResourceRef::of(&d.resource) else {
                return Err(Error::invalid(
                    id,
                    format!(
                        "resource `{}`: rendered without apiVersion, kind or metadata.name",
                        d.name
                    ),
                ));
            };
            desired_refs.push(r);
        }
        let names: Vec<String> = output.resources.iter().map(|d| d.name.clone()).collect();
        let grew = names.iter().any(|n| !released.contains(n));
        // Done when a round releases nothing new, after a failure, or (a safety bound) after
        // one round per template.
        if (round > 0 && !grew) || !failures.is_empty() || round > composer.round_bound() {
            let mut status = output.merged_status(&value);
            if let Some(results) = &results {
                keep_results(&mut status, &value, results);
            }
            break (output, desired_refs, status);
        }
        round += 1;
        released = names;
        for warning in &output.warnings {
            tracing::debug!(xr = %id, "render: {warning}");
        }
        // Every write of this round must be allowed before any is made: a kind the
        // controllers may not write fails the pass with nothing applied (no partial apply).
        if let Err(e) = check_access(ctx, &output.resources, &desired_refs, &observed).await {
            events.push((wire::REASON_APPLY_RESOURCE, e.to_string()));
            return Err(e);
        }
        // Record first: a crash after a create must never orphan the object.
        let inventory = inventory::before_apply(&present, &desired_refs);
        if inventory != recorded {
            w.spec.insert(
                "resourceRefs".into(),
                json!(ResourceRef::to_inventory(
                    &inventory,
                    w.current.namespace().as_deref()
                )),
            );
            recorded = inventory;
        }
        w.flush().await?;

        for (d, r) in output.resources.iter().zip(&desired_refs) {
            match apply_one(ctx, d, r, observed.get(&d.name).map(|o| &o.resource)).await {
                Ok(None) => {}
                Ok(Some(live)) => {
                    let connection_details = read_connection_secret(ctx, &live, r).await?;
                    observed.insert(
                        d.name.clone(),
                        Observed {
                            resource: live,
                            connection_details,
                        },
                    );
                    if !present.contains(r) {
                        present.push(r.clone());
                    }
                }
                Err(e) => {
                    events.push((
                        wire::REASON_APPLY_RESOURCE,
                        format!("resource `{}` ({}): {e}", d.name, r.display()),
                    ));
                    failures.push((d.name.clone(), e.to_string()));
                }
            }
        }
    };

    // A resource a failing patch skipped (a Crossplane `mode: Resources` Composition) stays as
    // it is: it is not desired this pass, but it is not stale either.
    let mut keep_refs = desired_refs.clone();
    keep_refs.extend(
        output
            .skipped
            .iter()
            .filter_map(|s| observed.get(&s.name))
            .filter_map(|o| ResourceRef::of(&o.resource)),
    );
    if let Prune::Delete { stale, keep } =
        inventory::prune(&recorded, &keep_refs, failures.is_empty())
    {
        let mut kept = keep;
        for r in &stale {
            if let Err(e) = delete_one(ctx, r).await {
                events.push((wire::REASON_PRUNE_RESOURCE, format!("{}: {e}", r.display())));
                failures.push((r.name.clone(), format!("cannot prune: {e}")));
                kept.push(r.clone());
            }
        }
        if kept != recorded {
            w.spec.insert(
                "resourceRefs".into(),
                json!(ResourceRef::to_inventory(
                    &kept,
                    w.current.namespace().as_deref()
                )),
            );
            w.flush().await?;
        }
    }

    let value = w.value()?;
    let namespace = revision
        .spec
        .composition
        .write_connection_secrets_to_namespace
        .as_deref();
    // A v2 XR has no connection Secret of its own: its details are a composed Secret
    // (`strata_core::render::connection_secret`), as function-patch-and-transform composes it.
    if ctx.shape() == Shape::V1
        && let Err(e) = publish_connection_secret(&w.current, &value, namespace, ctx, &output).await
    {
        events.push((wire::REASON_CONNECTION_SECRET, e.to_string()));
        failures.push(("connection secret".into(), e.to_string()));
    }
    let holds = holds::holds(&output, &observed);
    Ok(Pass {
        output,
        status,
        failures,
        ttl,
        results: results.unwrap_or_default(),
        holds,
    })
}

/// A pipeline that stopped, as the XR's error: a function that cannot be reached, times out,
/// answers badly or returns a fatal result (functions report what they wait for that way) is
/// retried soon; a step's bad input or a graph cycle waits for a change of the objects.
fn pipeline_error(id: &str, revision: &str, e: PipelineError) -> Error {
    let message = format!("pipeline of revision `{revision}`: {e}");
    match e {
        PipelineError::Call { .. }
        | PipelineError::Malformed { .. }
        | PipelineError::Fatal { .. }
        | PipelineError::Requirements { .. } => Error::waiting(id, message),
        PipelineError::Input { .. } | PipelineError::Native(_) | PipelineError::Finish(_) => {
            Error::invalid(id, message)
        }
    }
}

/// The claim an XR is bound to (`spec.claimRef`), if any.
fn claim_of(value: &Value) -> Option<ObjectReference> {
    value
        .pointer("/spec/claimRef")
        .and_then(|r| serde_json::from_value::<ObjectReference>(r.clone()).ok())
}

/// What holds the XR back, as Warning events on the XR and on its claim (the claim's user
/// is the one who can supply a missing parameter or release a guarded resource).
async fn publish_holds(
    ctx: &XrContext,
    xr: &ObjectReference,
    value: &Value,
    events: Vec<(&'static str, String)>,
) {
    let claim = claim_of(value);
    for (reason, note) in events {
        for target in std::iter::once(xr).chain(claim.as_ref()) {
            ctx.shared.warn(target, reason, note.clone()).await;
        }
    }
}

/// Functions' Warning and Normal results as events on the XR, and on its claim when a result
/// targets it (`TARGET_COMPOSITE_AND_CLAIM`), as Crossplane reports them.
async fn publish_results(
    ctx: &XrContext,
    xr: &ObjectReference,
    value: &Value,
    results: &[StepResult],
) {
    let claim = claim_of(value);
    for r in results {
        let note = format!("step {:?}: {}", r.step, r.message);
        let targets = std::iter::once(xr).chain(claim.as_ref().filter(|_| r.claim));
        for target in targets {
            match r.severity {
                Severity::Warning => {
                    ctx.shared
                        .warn(target, wire::REASON_FUNCTION_RESULT, note.clone())
                        .await
                }
                Severity::Normal => {
                    ctx.shared
                        .normal(target, wire::REASON_FUNCTION_RESULT, note.clone())
                        .await
                }
                Severity::Fatal => {}
            }
        }
    }
}

/// Keeps the steps' results in the XR's status (`status.functionResults`, bounded). The field
/// is cleared when a pass has no results.
fn keep_results(status: &mut Value, observed_xr: &Value, results: &[StepResult]) {
    let had = observed_xr.pointer("/status/functionResults").is_some();
    if let Some(o) = status.as_object_mut() {
        if results.is_empty() {
            if had {
                o.insert("functionResults".into(), json!([]));
            }
        } else {
            o.insert("functionResults".into(), functions::kept_results(results));
        }
    }
}

/// Selects the Composition and revision; returns the revision and the spec fields to write back.
fn choose_revision(
    value: &Value,
    ctx: &XrContext,
    id: &str,
) -> Result<(Arc<CompositionRevision>, Option<Value>)> {
    let sh = &ctx.shared;
    let xrd = ctx.xrd.read().unwrap_or_else(|e| e.into_inner()).clone();
    let s = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let shape = Shape::of(xrd.spec.scope);
    let at = |field: &str| shape.pointer(field);
    let input = SelectionInput {
        api_version: s("/apiVersion").unwrap_or_default(),
        kind: s("/kind").unwrap_or_default(),
        enforced_ref: xrd
            .spec
            .enforced_composition_ref
            .as_ref()
            .map(|r| r.name.clone()),
        composition_ref: s(&at("compositionRef/name")),
        selector: value
            .pointer(&at("compositionSelector/matchLabels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            }),
        default_ref: xrd
            .spec
            .default_composition_ref
            .as_ref()
            .map(|r| r.name.clone()),
    };
    let candidates: Vec<CompositionCandidate> = sh
        .compositions
        .state()
        .iter()
        .map(|c| CompositionCandidate {
            name: c.name_any(),
            labels: c.labels().clone(),
            composite_api_version: c.spec.composite_type_ref.api_version.clone(),
            composite_kind: c.spec.composite_type_ref.kind.clone(),
        })
        .collect();
    let composition = select::select_composition(&input, &candidates)
        .map_err(|e| Error::waiting(id, e.to_string()))?;

    let policy = match s(&at("compositionUpdatePolicy")).as_deref() {
        Some("Manual") => UpdatePolicy::Manual,
        Some(_) => UpdatePolicy::Automatic,
        None => xrd
            .spec
            .default_composition_update_policy
            .unwrap_or_default(),
    };
    let all = sh.revisions.state();
    let revision_selector: Option<BTreeMap<String, String>> = value
        .pointer(&at("compositionRevisionSelector/matchLabels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        });
    let candidates: Vec<RevisionCandidate> = all
        .iter()
        .filter(|r| select::revision_matches(r.labels(), revision_selector.as_ref()))
        .filter_map(|r| {
            Some(RevisionCandidate {
                name: r.name_any(),
                composition: r.labels().get(wire::LABEL_COMPOSITION_NAME)?.clone(),
                revision: r.spec.revision,
            })
        })
        .collect();
    let pinned = s(&at("compositionRevisionRef/name"));
    let Some(revision_name) =
        select::select_revision(&composition, policy, pinned.as_deref(), &candidates)
    else {
        return Err(Error::waiting(
            id,
            format!("Composition `{composition}` has no CompositionRevision yet"),
        ));
    };
    let Some(revision) = all.iter().find(|r| r.name_any() == revision_name).cloned() else {
        return Err(Error::waiting(
            id,
            format!("CompositionRevision `{revision_name}` is not cached yet"),
        ));
    };
    let mut patch = Map::new();
    if s(&at("compositionRef/name")).as_deref() != Some(composition.as_str()) {
        patch.insert("compositionRef".into(), json!({"name": composition}));
    }
    if pinned.as_deref() != Some(revision_name.as_str()) {
        patch.insert(
            "compositionRevisionRef".into(),
            json!({"name": revision_name}),
        );
    }
    Ok((
        revision,
        (!patch.is_empty()).then_some(Value::Object(patch)),
    ))
}

/// Reads every recorded composed resource (and its connection Secret). Returns the observed
/// resources by template name and the recorded references that still exist.
async fn observe(
    ctx: &XrContext,
    recorded: &[ResourceRef],
) -> Result<(ObservedResources, Vec<ResourceRef>)> {
    let mut observed = ObservedResources::new();
    let mut present = Vec::new();
    for r in recorded {
        let (api, _) = ctx.shared.kinds.api_for(r).await?;
        let Some(obj) = api
            .get_opt(&r.name)
            .await
            .map_err(|e| Error::kube("reading", r.display(), e))?
        else {
            continue;
        };
        present.push(r.clone());
        let template = obj
            .annotations()
            .get(wire::ANNOTATION_RESOURCE_NAME)
            .or_else(|| {
                obj.annotations()
                    .get(wire::CROSSPLANE_ANNOTATION_RESOURCE_NAME)
            })
            .cloned();
        let resource = serde_json::to_value(&obj).map_err(|source| Error::Serialize {
            object: r.display(),
            source,
        })?;
        let connection_details = read_connection_secret(ctx, &resource, r).await?;
        if let Some(t) = template {
            observed.insert(
                t,
                Observed {
                    resource,
                    connection_details,
                },
            );
        }
    }
    Ok((observed, present))
}

/// The data of a composed resource's connection Secret (`spec.writeConnectionSecretToRef`).
async fn read_connection_secret(
    ctx: &XrContext,
    resource: &Value,
    r: &ResourceRef,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let Some(name) = resource
        .pointer("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str)
    else {
        return Ok(BTreeMap::new());
    };
    let Some(ns) = resource
        .pointer("/spec/writeConnectionSecretToRef/namespace")
        .and_then(Value::as_str)
        .or(r.namespace.as_deref())
    else {
        return Ok(BTreeMap::new());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ns);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| Error::kube("reading the connection Secret of", r.display(), e))?;
    Ok(secret
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

fn select_environment(
    value: &Value,
    spec: Option<&EnvironmentSpec>,
    ctx: &XrContext,
) -> Result<Option<Value>> {
    let sources = spec
        .map(|e| e.environment_configs.as_slice())
        .unwrap_or_default();
    let xr_refs: Vec<String> = value
        .pointer("/spec/environmentConfigRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if sources.is_empty() && xr_refs.is_empty() {
        return Ok(None);
    }
    let configs: Vec<environment::Config> = ctx
        .shared
        .environments
        .state()
        .iter()
        .map(|c| environment::Config {
            name: c.name_any(),
            labels: c.labels().clone(),
            data: c.data.clone(),
        })
        .collect();
    let what = || {
        format!(
            "environment of {}",
            value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )
    };
    environment::resolve(value, &xr_refs, spec, &configs)
        .map_err(|e| Error::waiting(what(), e.to_string()))
}

/// Applies one desired resource unless the observed object already is it; returns the live
/// object an apply returned (`None` when nothing was written).
/// Fails with [`Error::Forbidden`] on the first released resource that needs a write the
/// controllers may not make (server-side apply is a `patch`, also when it creates).
async fn check_access(
    ctx: &XrContext,
    desired: &[render::DesiredResource],
    refs: &[ResourceRef],
    observed: &ObservedResources,
) -> Result<()> {
    for (d, r) in desired.iter().zip(refs) {
        let current = observed.get(&d.name).map(|o| &o.resource);
        if shared::plan_apply(&d.resource, current).1 {
            continue;
        }
        let (_, kind) = ctx.shared.kinds.api_for(r).await?;
        let namespace = match (kind.namespaced, &r.namespace) {
            (true, Some(ns)) => ns.clone(),
            _ => String::new(),
        };
        let access = shared::Access {
            verb: "patch",
            group: kind.resource.group.clone(),
            resource: kind.resource.plural.clone(),
            namespace,
        };
        if !ctx.shared.may(&access, &r.name).await {
            let user = ctx.shared.user_name().await;
            return Err(Error::Forbidden {
                template: d.name.clone(),
                object: r.display(),
                denial: Box::new(shared::Denial {
                    access,
                    name: r.name.clone(),
                    user: user.unwrap_or_else(|| "(these controllers)".to_owned()),
                }),
            });
        }
    }
    Ok(())
}

async fn apply_one(
    ctx: &XrContext,
    desired: &render::DesiredResource,
    r: &ResourceRef,
    observed: Option<&Value>,
) -> Result<Option<Value>> {
    let (api, kind) = ctx.shared.kinds.api_for(r).await?;
    ctx.shared.watch_composed(&kind.resource);
    let (stamped, current) = shared::plan_apply(&desired.resource, observed);
    if current {
        return Ok(None);
    }
    let live = shared::apply(&api, &r.name, &stamped, &r.display()).await?;
    let live = serde_json::to_value(&live).map_err(|source| Error::Serialize {
        object: r.display(),
        source,
    })?;
    Ok(Some(live))
}

async fn delete_one(ctx: &XrContext, r: &ResourceRef) -> Result<()> {
    let (api, _) = ctx.shared.kinds.api_for(r).await?;
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube("deleting", r.display(), e)),
    }
}

/// Where the XR's connection Secret goes: `spec.writeConnectionSecretToRef`, or the
/// Composition's `writeConnectionSecretsToNamespace` with the XR's UID as the name.
fn connection_secret_target(
    xr: &DynamicObject,
    value: &Value,
    namespace: Option<&str>,
) -> Option<(String, String)> {
    let name = value
        .pointer("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str);
    let ns = value
        .pointer("/spec/writeConnectionSecretToRef/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| xr.namespace());
    match (name, ns) {
        (Some(n), Some(ns)) => Some((ns, n.to_owned())),
        _ => {
            let ns = namespace?.to_owned();
            Some((ns, xr.uid()?))
        }
    }
}

async fn publish_connection_secret(
    xr: &DynamicObject,
    value: &Value,
    namespace: Option<&str>,
    ctx: &XrContext,
    output: &RenderOutput,
) -> Result<()> {
    let Some((ns, name)) = connection_secret_target(xr, value, namespace) else {
        return Ok(());
    };
    let data: BTreeMap<String, ByteString> = output
        .connection_details
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
        .collect();
    let mut owner = json!({
        "apiVersion": ctx.resource.api_version, "kind": ctx.resource.kind, "name": xr.name_any(),
        "controller": true, "blockOwnerDeletion": true,
    });
    if let (Some(uid), Some(o)) = (xr.uid(), owner.as_object_mut()) {
        o.insert("uid".into(), Value::String(uid));
    }
    let desired = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner]},
        "type": "connection.strata.dev/v1alpha1",
        "data": serde_json::to_value(&data).map_err(|source| Error::Serialize { object: format!("Secret {ns}/{name}"), source })?,
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &ns);
    let what = format!("connection Secret {ns}/{name}");
    let observed = secrets
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", what.clone(), e))?;
    let observed = observed
        .map(|s| serde_json::to_value(&s))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: what.clone(),
            source,
        })?;
    let (stamped, current) = shared::plan_apply(&desired, observed.as_ref());
    if current {
        return Ok(());
    }
    secrets
        .patch(
            &name,
            &PatchParams::apply(wire::FIELD_MANAGER).force(),
            &Patch::Apply(&stamped),
        )
        .await
        .map_err(|e| Error::kube("applying", what, e))?;
    Ok(())
}

/// Ordered deletion from the recorded inventory, then the finalizer goes.
async fn delete(
    xr: &DynamicObject,
    ctx: &XrContext,
    api: &Api<DynamicObject>,
    id: &str,
) -> Result<Action> {
    if !xr
        .finalizers()
        .iter()
        .any(|f| f == wire::FINALIZER_COMPOSITE)
    {
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(xr).map_err(|source| Error::Serialize {
        object: id.to_owned(),
        source,
    })?;
    let recorded = ResourceRef::list_of(&value);
    let mut waves = deletion_waves(&value, ctx);
    let mut observed = Vec::with_capacity(recorded.len());
    let mut dependencies = Vec::new();
    for r in &recorded {
        let (rapi, _) = ctx.shared.kinds.api_for(r).await?;
        let o = rapi
            .get_opt(&r.name)
            .await
            .map_err(|e| Error::kube("reading", r.display(), e))?;
        let observation = match o {
            None => Observation::Absent,
            Some(o) => {
                let template = o.annotations().get(wire::ANNOTATION_RESOURCE_NAME).cloned();
                if let Some(t) = &template {
                    dependencies.push((t.clone(), functions::recorded_dependencies(&o)));
                }
                Observation::Present {
                    template,
                    deleting: o.metadata.deletion_timestamp.is_some(),
                }
            }
        };
        observed.push((r.clone(), observation));
    }
    // A pipeline's graph (or a native one whose revision is gone) is recorded on the objects.
    if waves.is_none() && dependencies.iter().any(|(_, d)| !d.is_empty()) {
        waves = Some(functions::waves_from_dependencies(&dependencies));
    }
    match inventory::deletion_step(waves.as_deref(), &observed) {
        DeletionStep::Delete { wave, refs } => {
            tracing::info!(xr = %id, wave, count = refs.len(), "deleting composed resources");
            for r in &refs {
                if let Err(e) = delete_one(ctx, r).await {
                    ctx.shared
                        .warn(
                            &reference(ctx, xr),
                            wire::REASON_DELETE_RESOURCE,
                            format!("{}: {e}", r.display()),
                        )
                        .await;
                    return Err(e);
                }
            }
            Ok(Action::requeue(DELETION_POLL))
        }
        DeletionStep::Wait { wave, remaining } => {
            tracing::debug!(xr = %id, wave, remaining = remaining.len(), "waiting for a deletion wave");
            Ok(Action::requeue(DELETION_POLL))
        }
        DeletionStep::Done => {
            shared::set_finalizer(api, xr, wire::FINALIZER_COMPOSITE, false, id).await?;
            if let Some(uid) = xr.uid() {
                ctx.shared.newest.forget(&uid);
            }
            Ok(Action::await_change())
        }
    }
}

/// The deletion waves (template names) of the native revision recorded on the XR, if it still
/// exists and compiles; `None` for a pipeline (its graph is recorded on the composed resources)
/// or when the revision is gone.
fn deletion_waves(value: &Value, ctx: &XrContext) -> Option<Vec<Vec<String>>> {
    let name = value
        .pointer(&Shape::observed(value).pointer("compositionRevisionRef/name"))
        .and_then(Value::as_str)?;
    let revision = ctx
        .shared
        .revisions
        .state()
        .into_iter()
        .find(|r| r.name_any() == name)?;
    let compiled = ctx.shared.compiled(&revision);
    compiled.as_ref().as_ref().ok()?.deletion_waves()
}
