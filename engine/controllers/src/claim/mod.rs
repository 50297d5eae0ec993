//! The claim controller, one per claim kind, over `DynamicObject`, split by concern:
//!
//! - `bind`: a claim creates and binds one cluster-scoped XR (`generateName` from the claim
//!   name, the claim labels, `spec.claimRef`) and keeps the XR's spec in line with the claim's;
//! - `status`: copies the XR's status back to the claim;
//! - `connection`: copies the XR's connection Secret into the claim's namespace;
//! - `deletion`: deleting the claim deletes the XR (`compositeDeletePolicy`: `Background`
//!   lets go at once, `Foreground` waits).
//!
//! Each concern decides with a pure function of what was observed (tested beside it by a
//! table) and then acts; a reconcile here only sequences them.

mod bind;
mod connection;
mod deletion;
mod status;

use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strata_core::wire;

use crate::binding::ClaimIdentity;
use crate::cached::Cached;
use crate::error::{Error, Result};
use crate::shared::Shared;

/// The metrics name of this controller: its reconciles are counted under
/// `controller="claim"`.
pub const CONTROLLER: &str = "claim";

/// The field manager under which claims apply their spec to their XR.
pub(crate) const CLAIM_FIELD_MANAGER: &str = "strata-claim";

/// Everything one claim kind's controller needs.
pub(crate) struct ClaimContext {
    pub(crate) shared: Arc<Shared>,
    /// The claim kind.
    pub(crate) claim: ApiResource,
    /// The XR kind its claims bind to.
    pub(crate) composite: ApiResource,
}

pub(crate) async fn reconcile(claim: Arc<Cached>, ctx: Arc<ClaimContext>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_claim(&claim, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    if let Err(e) = &result
        && !e.is_conflict()
    {
        ctx.shared
            .warn(
                &claim.object_ref(&ctx.claim),
                wire::REASON_BIND_COMPOSITE,
                e.to_string(),
            )
            .await;
    }
    result
}

pub(crate) fn error_policy(_claim: Arc<Cached>, error: &Error, ctx: Arc<ClaimContext>) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

/// What a pass does with a claim, decided from its metadata alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// `strata.dev/paused: "true"`: nothing, until the claim changes.
    Paused,
    /// Being deleted without our finalizer: nothing is ours to do.
    Released,
    /// Being deleted behind our finalizer: delete the XR ([`deletion`]).
    Delete,
    /// Bind the XR and copy its status and Secret back.
    Bind,
}

/// The pass's gate: a paused claim is left alone even while it is being deleted.
fn gate(paused: bool, deleting: bool, has_finalizer: bool) -> Gate {
    match (paused, deleting, has_finalizer) {
        (true, _, _) => Gate::Paused,
        (false, true, false) => Gate::Released,
        (false, true, true) => Gate::Delete,
        (false, false, _) => Gate::Bind,
    }
}

/// One pass over one claim: the APIs it writes through and the claim's identity.
struct Pass<'a> {
    ctx: &'a ClaimContext,
    claims: Api<DynamicObject>,
    composites: Api<DynamicObject>,
    id: ClaimIdentity,
    /// `Kind namespace/name`, for errors.
    what: String,
}

/// Observe the claim, decide ([`gate`], then each concern's decision), act.
async fn reconcile_claim(cached: &Cached, ctx: &ClaimContext) -> Result<Action> {
    // Our own last write, when the cache has not caught up with it yet.
    let claim = ctx.shared.newest.of(cached);
    let value = serde_json::to_value(&claim).map_err(|source| Error::Serialize {
        object: claim.name_any(),
        source,
    })?;
    let Some(id) = ClaimIdentity::of(&value) else {
        return Err(Error::invalid(
            claim.name_any(),
            "a claim needs apiVersion, kind, name and namespace",
        ));
    };
    let pass = Pass {
        ctx,
        claims: Api::namespaced_with(ctx.shared.client.clone(), &id.namespace, &ctx.claim),
        composites: Api::all_with(ctx.shared.client.clone(), &ctx.composite),
        what: format!("{} {}/{}", id.kind, id.namespace, id.name),
        id,
    };
    let paused = claim
        .annotations()
        .get(wire::ANNOTATION_PAUSED)
        .is_some_and(|v| v == "true");
    let has_finalizer = claim
        .finalizers()
        .iter()
        .any(|f| f == wire::FINALIZER_CLAIM);
    match gate(
        paused,
        claim.metadata.deletion_timestamp.is_some(),
        has_finalizer,
    ) {
        Gate::Paused | Gate::Released => Ok(Action::await_change()),
        Gate::Delete => pass.delete(&claim, &value).await,
        Gate::Bind => {
            let (claim, name) = pass.bind(&claim, &value).await?;
            let xr = pass.apply_composite(&claim, &value, &name).await?;
            pass.copy_status(&claim, &xr).await?;
            pass.copy_connection_secret(&claim, &value, &xr).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_follows_its_table() {
        let rows = [
            (false, false, false, Gate::Bind, "a new claim is bound"),
            (
                false,
                false,
                true,
                Gate::Bind,
                "a bound claim is kept in line",
            ),
            (
                true,
                false,
                true,
                Gate::Paused,
                "a paused claim is left alone",
            ),
            (
                true,
                true,
                true,
                Gate::Paused,
                "a paused claim is not deleted",
            ),
            (
                false,
                true,
                true,
                Gate::Delete,
                "a deleted claim deletes its XR",
            ),
            (
                false,
                true,
                false,
                Gate::Released,
                "without the finalizer nothing is ours",
            ),
        ];
        for (paused, deleting, finalizer, expected, reason) in rows {
            assert_eq!(gate(paused, deleting, finalizer), expected, "{reason}");
        }
    }
}
