//! Composing an XR: select and compile the revision, observe the composed resources, select
//! the environment, then render and apply in rounds, prune what left the desired set, and
//! publish the connection Secret. The renders and the inventory and prune decisions are pure
//! ([`render`], [`functions::run`]'s pipeline, [`inventory`]); this module performs their writes.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use strata_core::model::CompositionRevision;
use strata_core::render::{self, Observed, ObservedResources, RenderInput, RenderOutput};
use strata_core::wire;
use strata_functions::run::{PipelineError, StepResult};
use strata_schema::pointer::Pointer;

use super::writer::XrWriter;
use super::{XrContext, connection, observe, selection};
use crate::error::{Error, Result, is_not_found};
use crate::functions::{self, Composer};
use crate::holds;
use crate::inventory::{self, Prune, ResourceRef};
use crate::shape::Shape;
use crate::shared;

/// Warning events a pass raises (reason, note): published only when the status changed.
pub(super) type Events = Vec<(&'static str, String)>;

/// The result of a compose pass that rendered.
pub(super) struct Pass {
    pub(super) output: RenderOutput,
    /// The status of the rendered XR with the render's status merged in.
    pub(super) status: Value,
    /// Template name and message of every apply that failed.
    pub(super) failures: Vec<(String, String)>,
    /// A function pipeline's shortest TTL: the XR is composed again by then.
    pub(super) ttl: Option<Duration>,
    /// A function pipeline's results: events on the XR (and its claim when they target it).
    pub(super) results: Vec<StepResult>,
    /// What holds each stuck unready resource back (by template name).
    pub(super) holds: BTreeMap<String, holds::Hold>,
}

/// The composed resources as this pass knows them, and the writes that failed so far.
struct Composed {
    /// The inventory recorded on the XR.
    recorded: Vec<ResourceRef>,
    /// The composed resources read or applied, by template name.
    observed: ObservedResources,
    /// The recorded references that exist.
    present: Vec<ResourceRef>,
    /// Template (or object) name and message of every write that failed.
    failures: Vec<(String, String)>,
}

/// One render: its output, its released resources' references, and a pipeline's results
/// and TTL (`None` for a native Composition).
struct Rendered {
    output: RenderOutput,
    refs: Vec<ResourceRef>,
    results: Option<Vec<StepResult>>,
    ttl: Option<Duration>,
}

/// `result`, with a Warning event of `reason` noted when it failed.
fn noted<T>(events: &mut Events, reason: &'static str, result: Result<T>) -> Result<T> {
    result.inspect_err(|e| events.push((reason, e.to_string())))
}

/// Selection, compile, observe, then render and apply in rounds, prune, publish.
///
/// What an apply returns is the live object, so it is observed at once: the next round's render
/// releases the resources that waited for it, and the last render computes readiness over every
/// wave. A pass therefore composes all waves and the status is written once, instead of once per
/// wave after a watch event brings each wave back.
pub(super) async fn compose(
    events: &mut Events,
    w: &mut XrWriter<'_>,
    ctx: &XrContext,
    id: &str,
) -> Result<Pass> {
    let value = w.value()?;
    let chosen = selection::choose_revision(&value, ctx, id);
    let (revision, spec_patch) = noted(events, wire::REASON_SELECT_COMPOSITION, chosen)?;
    if let Some(Value::Object(p)) = spec_patch {
        w.record_spec(p);
    }
    let compiled = ctx.shared.compiled(&revision);
    let composer = match compiled.as_ref() {
        Ok(c) => Ok(c),
        Err(message) => Err(Error::invalid(
            id,
            format!(
                "Composition revision `{}` does not compile: {message}",
                revision.name_any()
            ),
        )),
    };
    let composer = noted(events, wire::REASON_COMPILE_COMPOSITION, composer)?;
    let recorded = ResourceRef::list_of(&value);
    let read = observe::observe(ctx, &recorded).await;
    let (observed, present) = noted(events, wire::REASON_OBSERVE_RESOURCE, read)?;
    let env = selection::environment(&value, composer, &revision, ctx, id);
    let env = noted(events, wire::REASON_ENVIRONMENT, env)?;

    let mut composed = Composed {
        recorded,
        observed,
        present,
        failures: Vec::new(),
    };
    let (rendered, status) = render_and_apply(
        events,
        w,
        ctx,
        id,
        (&revision, composer),
        env.as_ref(),
        &mut composed,
    )
    .await?;
    prune(events, w, ctx, &rendered, &mut composed).await?;

    let value = w.value()?;
    let namespace = revision
        .spec
        .composition
        .write_connection_secrets_to_namespace
        .as_deref();
    // A v2 XR has no connection Secret of its own: its details are a composed Secret
    // (`strata_core::render::connection_secret`), as function-patch-and-transform composes it.
    if ctx.shape() == Shape::V1
        && let Err(e) =
            connection::publish(&w.current, &value, namespace, ctx, &rendered.output).await
    {
        events.push((wire::REASON_CONNECTION_SECRET, e.to_string()));
        composed
            .failures
            .push(("connection secret".into(), e.to_string()));
    }
    let holds = holds::holds(&rendered.output, &composed.observed);
    Ok(Pass {
        output: rendered.output,
        status,
        failures: composed.failures,
        ttl: rendered.ttl,
        results: rendered.results.unwrap_or_default(),
        holds,
    })
}

/// Whether the rounds are over: a round released nothing new, an apply failed, or (a safety
/// bound) there was one round per template. `round` counts the rounds applied so far.
fn rounds_done(round: usize, grew: bool, failed: bool, bound: usize) -> bool {
    (round > 0 && !grew) || failed || round > bound
}

/// Renders and applies in rounds until [`rounds_done`]; returns the last render and the XR's
/// status merged from it.
async fn render_and_apply(
    events: &mut Events,
    w: &mut XrWriter<'_>,
    ctx: &XrContext,
    id: &str,
    (revision, composer): (&CompositionRevision, &Composer),
    env: Option<&Value>,
    composed: &mut Composed,
) -> Result<(Rendered, Value)> {
    let mut released: Vec<String> = Vec::new();
    let mut round = 0;
    loop {
        let value = w.value()?;
        let rendered = render_once(ctx, id, revision, composer, &value, composed, env).await;
        let rendered = noted(events, wire::REASON_RENDER, rendered)?;
        let rendered = with_refs(rendered, id)?;
        let names: Vec<String> = rendered
            .output
            .resources
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let grew = names.iter().any(|n| !released.contains(n));
        let failed = !composed.failures.is_empty();
        if rounds_done(round, grew, failed, composer.round_bound()) {
            let mut status = rendered.output.merged_status(&value);
            if let Some(results) = &rendered.results {
                keep_results(&mut status, &value, results);
            }
            return Ok((rendered, status));
        }
        round += 1;
        released = names;
        for warning in &rendered.output.warnings {
            tracing::debug!(xr = %id, "render: {warning}");
        }
        apply_round(events, w, ctx, &rendered, composed).await?;
    }
}

/// One render of the XR `value` over what the pass observed.
async fn render_once(
    ctx: &XrContext,
    id: &str,
    revision: &CompositionRevision,
    composer: &Composer,
    value: &Value,
    composed: &Composed,
    env: Option<&Value>,
) -> Result<Rendered> {
    match composer {
        Composer::Native(compiled) => render::render(
            compiled,
            RenderInput {
                composite: value,
                observed: &composed.observed,
                environment: env,
            },
        )
        .map(|output| Rendered {
            output,
            refs: Vec::new(),
            results: None,
            ttl: None,
        })
        .map_err(|e| {
            Error::invalid(
                id,
                format!("render with revision `{}`: {e}", revision.name_any()),
            )
        }),
        Composer::Pipeline(pipeline) => functions::run(
            &ctx.shared.functions,
            &ctx.shared.kinds,
            pipeline,
            value,
            &composed.observed,
            env,
        )
        .await
        .map(|outcome| Rendered {
            output: outcome.output,
            refs: Vec::new(),
            results: Some(outcome.results),
            ttl: outcome.ttl,
        })
        .map_err(|e| pipeline_error(id, &revision.name_any(), e)),
    }
}

/// The render with the reference of every released resource; a resource rendered without
/// one is the Composition's mistake.
fn with_refs(mut rendered: Rendered, id: &str) -> Result<Rendered> {
    let mut refs = Vec::with_capacity(rendered.output.resources.len());
    for d in &rendered.output.resources {
        let Some(r) = ResourceRef::of(&d.resource) else {
            return Err(Error::invalid(
                id,
                format!(
                    "resource `{}`: rendered without apiVersion, kind or metadata.name",
                    d.name
                ),
            ));
        };
        refs.push(r);
    }
    rendered.refs = refs;
    Ok(rendered)
}

/// Applies one round's released resources: every write allowed first, the inventory recorded
/// before anything is created, then each resource applied and its live object observed.
async fn apply_round(
    events: &mut Events,
    w: &mut XrWriter<'_>,
    ctx: &XrContext,
    rendered: &Rendered,
    composed: &mut Composed,
) -> Result<()> {
    let (resources, refs) = (&rendered.output.resources, &rendered.refs);
    // Which resources already are as desired, decided once for the access check and the
    // applies (each answer hashes the desired object).
    let current: Vec<bool> = resources
        .iter()
        .map(|d| {
            let observed = composed.observed.get(&d.name).map(|o| &o.resource);
            shared::is_applied(&d.resource, observed)
        })
        .collect();
    // Every write of this round must be allowed before any is made: a kind the
    // controllers may not write fails the pass with nothing applied (no partial apply).
    let access = check_access(ctx, resources, refs, &current).await;
    noted(events, wire::REASON_APPLY_RESOURCE, access)?;
    // Record first: a crash after a create must never orphan the object.
    let inventory = inventory::before_apply(&composed.present, refs);
    if inventory != composed.recorded {
        w.record_inventory(&inventory);
        composed.recorded = inventory;
    }
    w.flush().await?;

    for ((d, r), current) in resources.iter().zip(refs).zip(current) {
        match apply_one(ctx, d, r, current).await {
            Ok(None) => {}
            Ok(Some(live)) => {
                let connection_details = observe::read_connection_secret(ctx, &live, r).await?;
                composed.observed.insert(
                    d.name.clone(),
                    Observed {
                        resource: live,
                        connection_details,
                    },
                );
                if !composed.present.contains(r) {
                    composed.present.push(r.clone());
                }
            }
            Err(e) => {
                events.push((
                    wire::REASON_APPLY_RESOURCE,
                    format!("resource `{}` ({}): {e}", d.name, r.display()),
                ));
                composed.failures.push((d.name.clone(), e.to_string()));
            }
        }
    }
    Ok(())
}

/// Deletes what left the desired set, only when every apply succeeded ([`inventory::prune`]
/// decides), and records the inventory that is left.
async fn prune(
    events: &mut Events,
    w: &mut XrWriter<'_>,
    ctx: &XrContext,
    rendered: &Rendered,
    composed: &mut Composed,
) -> Result<()> {
    // A resource a failing patch skipped (a Crossplane `mode: Resources` Composition) stays as
    // it is: it is not desired this pass, but it is not stale either.
    let mut keep_refs = rendered.refs.clone();
    keep_refs.extend(
        rendered
            .output
            .skipped
            .iter()
            .filter_map(|s| composed.observed.get(&s.name))
            .filter_map(|o| ResourceRef::of(&o.resource)),
    );
    let Prune::Delete { stale, keep } =
        inventory::prune(&composed.recorded, &keep_refs, composed.failures.is_empty())
    else {
        return Ok(());
    };
    let mut kept = keep;
    for r in &stale {
        if let Err(e) = delete_one(ctx, r).await {
            events.push((wire::REASON_PRUNE_RESOURCE, format!("{}: {e}", r.display())));
            composed
                .failures
                .push((r.name.clone(), format!("cannot prune: {e}")));
            kept.push(r.clone());
        }
    }
    if kept != composed.recorded {
        w.record_inventory(&kept);
        w.flush().await?;
    }
    Ok(())
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

/// Keeps the steps' results in the XR's status (`status.functionResults`, bounded). The field
/// is cleared when a pass has no results.
fn keep_results(status: &mut Value, observed_xr: &Value, results: &[StepResult]) {
    let had = observed_xr.at("/status/functionResults").is_some();
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

/// Fails with [`Error::Forbidden`] on the first released resource that needs a write the
/// controllers may not make (server-side apply is a `patch`, also when it creates).
async fn check_access(
    ctx: &XrContext,
    desired: &[render::DesiredResource],
    refs: &[ResourceRef],
    current: &[bool],
) -> Result<()> {
    for ((d, r), current) in desired.iter().zip(refs).zip(current) {
        if *current {
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

/// Applies one desired resource unless the observed object already is it (`current`, from
/// [`shared::is_applied`]); returns the live object an apply returned (`None` when nothing was
/// written). Its kind is watched either way.
async fn apply_one(
    ctx: &XrContext,
    desired: &render::DesiredResource,
    r: &ResourceRef,
    current: bool,
) -> Result<Option<Value>> {
    let (api, kind) = ctx.shared.kinds.api_for(r).await?;
    ctx.shared.watch_composed(&kind.resource);
    if current {
        return Ok(None);
    }
    let stamped = shared::stamped(&desired.resource);
    let live: Value = shared::apply(&api, &r.name, &stamped, &r.display()).await?;
    Ok(Some(live))
}

pub(super) async fn delete_one(ctx: &XrContext, r: &ResourceRef) -> Result<()> {
    let (api, _) = ctx.shared.kinds.api_for(r).await?;
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube("deleting", r.display(), e)),
    }
}
