//! The composite resource (XR) controller, one per XR kind, over `DynamicObject`, split by
//! concern as kro splits its instance controller:
//!
//! - `apply`: select the Composition and its revision (`selection`; written back to the XR
//!   spec, or to `spec.crossplane` in Crossplane's v2 shape, see `crate::shape`), compile it
//!   (cached per revision), observe the composed resources recorded in `spec.resourceRefs`
//!   (`observe`), select the environment, [`render`](strata_core::render::render), record the
//!   inventory (`writer`), server-side apply the released resources in graph order, prune
//!   what left the desired set only when every apply succeeded, publish the connection Secret
//!   when it changed (`connection`);
//! - `status`: decide `Synced`/`Ready` and the requeue from the pass's outcome (pure), and
//!   write them only when the status changed;
//! - `deletion`: reverse dependency waves from the recorded inventory behind a finalizer.
//!
//! A reconcile here only sequences them: observe the XR, decide (`gate`, then the pass and
//! `status::decide`), act.

mod apply;
mod connection;
mod deletion;
mod observe;
#[cfg(test)]
mod scripted_tests;
mod selection;
mod status;
mod writer;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strata_core::model::CompositeResourceDefinition;
use strata_core::wire;

use crate::cached::Cached;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::shared::{self, Shared};
use status::{Recorded, StatusFacts};
use writer::XrWriter;

/// Everything one XR kind's controller needs.
pub struct XrContext {
    /// The caches, clients and settings of the whole process.
    pub shared: Arc<Shared>,
    /// The XR kind this controller reconciles.
    pub resource: ApiResource,
    /// Whether XRs of this kind are namespaced (Crossplane v2's shape) or cluster scoped.
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

/// One pass over one XR: compose it (or run its deletion waves), then record the decided
/// status, and say when to look again. A failed composition is reported through the `Synced`
/// condition and an event, not returned; an error is returned when the XR itself could not be
/// read or written, or a deletion wave failed.
pub async fn reconcile(xr: Arc<Cached>, ctx: Arc<XrContext>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_xr(&xr, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

pub(crate) fn error_policy(_xr: Arc<Cached>, error: &Error, ctx: Arc<XrContext>) -> Action {
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

/// What a pass does with an XR, decided from its metadata alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// `strata.dev/paused: "true"`: nothing, until the XR changes.
    Paused,
    /// Being deleted: the deletion waves.
    Delete,
    /// Compose it.
    Compose,
}

/// The pass's gate: a paused XR is left alone even while it is being deleted.
fn gate(paused: bool, deleting: bool) -> Gate {
    if paused {
        Gate::Paused
    } else if deleting {
        Gate::Delete
    } else {
        Gate::Compose
    }
}

/// How soon a pass that lost a race with another writer (409) looks again.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// Observe the XR, decide, act: compose it (or delete it), then record the decided status.
async fn reconcile_xr(cached: &Cached, ctx: &XrContext) -> Result<Action> {
    // Our own last write, when the cache has not caught up with it yet.
    let xr = ctx.shared.newest.of(cached);
    let id = describe(&ctx.resource.kind, &xr);
    let paused = xr
        .annotations()
        .get(wire::ANNOTATION_PAUSED)
        .is_some_and(|v| v == "true");
    let api = xr_api(ctx, &xr);
    match gate(paused, xr.metadata.deletion_timestamp.is_some()) {
        Gate::Paused => {
            tracing::debug!(xr = %id, "paused");
            return Ok(Action::await_change());
        }
        Gate::Delete => return deletion::delete(&xr, ctx, &api, &id).await,
        Gate::Compose => {}
    }
    let mut writer = XrWriter::new(ctx, api.clone(), xr, id.clone());
    let mut events = Vec::new();
    let outcome = apply::compose(&mut events, &mut writer, ctx, &id).await;
    if let Err(e) = &outcome
        && e.is_conflict()
    {
        // Someone wrote the XR between our read and our write: look again at their version.
        tracing::debug!(xr = %id, error = %e, "conflict; retrying");
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    // The finalizer and the selection are recorded even when a later step failed.
    writer.flush().await?;
    let value = writer.value()?;
    let xr = writer.current;
    let decision = status::decide(&StatusFacts {
        xr: &value,
        outcome: &outcome,
        now: &shared::now(),
        resync: ctx.shared.settings.resync,
    });
    let requeue = Action::requeue(decision.requeue);
    let (results, error) = match outcome {
        Ok(pass) => (pass.results, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let recorded = status::record(ctx, &api, (&xr, &value), &id, decision, events, &results);
    if recorded.await? == Recorded::Conflict {
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    if let Some(e) = error {
        // Reported through the condition and an event; retried per class without an error log
        // storm.
        tracing::debug!(xr = %id, error = %e, "pass failed");
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_follows_its_table() {
        let rows = [
            (false, false, Gate::Compose, "a live XR is composed"),
            (
                false,
                true,
                Gate::Delete,
                "a deleted XR runs its deletion waves",
            ),
            (true, false, Gate::Paused, "a paused XR is left alone"),
            (
                true,
                true,
                Gate::Paused,
                "a paused XR is not deleted either",
            ),
        ];
        for (paused, deleting, expected, reason) in rows {
            assert_eq!(gate(paused, deleting), expected, "{reason}");
        }
    }
}
