//! Deleting an XR: its composed resources in reverse dependency waves from the recorded
//! inventory ([`inventory::deletion_step`] decides), then the finalizer goes.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use serde_json::Value;
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::apply::delete_one;
use super::{XrContext, reference};
use crate::error::{Error, Result};
use crate::functions;
use crate::inventory::{self, DeletionStep, Observation, ResourceRef};
use crate::shape::Shape;
use crate::shared;

/// How often a deletion in progress looks again (watches usually come first).
const DELETION_POLL: Duration = Duration::from_secs(1);

/// Ordered deletion from the recorded inventory, then the finalizer goes.
pub(super) async fn delete(
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
    let (observed, dependencies) = observe(ctx, &recorded).await?;
    // A pipeline's graph (or a native one whose revision is gone) is recorded on the objects.
    let waves = deletion_waves(&value, ctx).or_else(|| {
        dependencies
            .iter()
            .any(|(_, d)| !d.is_empty())
            .then(|| functions::waves_from_dependencies(&dependencies))
    });
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

/// Each recorded composed resource as deletion sees it, and the dependencies recorded on those
/// that exist (by template name).
async fn observe(
    ctx: &XrContext,
    recorded: &[ResourceRef],
) -> Result<(Vec<(ResourceRef, Observation)>, Vec<(String, Vec<String>)>)> {
    let mut observed = Vec::with_capacity(recorded.len());
    let mut dependencies = Vec::new();
    for r in recorded {
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
    Ok((observed, dependencies))
}

/// The deletion waves (template names) of the native revision recorded on the XR, if it still
/// exists and compiles; `None` for a pipeline (its graph is recorded on the composed resources)
/// or when the revision is gone.
fn deletion_waves(value: &Value, ctx: &XrContext) -> Option<Vec<Vec<String>>> {
    let name = value
        .at(&Shape::observed(value).pointer("compositionRevisionRef/name"))
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
