//! Deleting a claim: its XR is deleted (always in the background: the XR's own finalizer
//! deletes its composed resources in reverse waves, which a foreground cascade would bypass),
//! and the claim's finalizer goes at once (`compositeDeletePolicy: Background`) or once the XR
//! is gone (`Foreground`). [`step`] decides.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::runtime::controller::Action;
use serde_json::Value;
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::Pass;
use crate::binding;
use crate::error::{Error, Result, is_not_found};
use crate::shared;

/// How often a claim waiting for its XR to go (`Foreground`) looks again.
const FOREGROUND_POLL: Duration = Duration::from_secs(1);

/// The bound XR as deletion sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Composite {
    Absent,
    Present { deleting: bool },
}

/// What happens after the XR's delete (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Look again soon: the claim waits for its XR to go.
    Wait,
    /// Remove the claim's finalizer.
    Release,
}

/// What one deletion pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    /// Delete the XR (it exists and is not being deleted yet).
    delete_composite: bool,
    then: Then,
}

/// Decides a deletion pass from the bound XR and the claim's `compositeDeletePolicy`.
fn step(composite: Composite, foreground: bool) -> Step {
    match composite {
        Composite::Absent => Step {
            delete_composite: false,
            then: Then::Release,
        },
        Composite::Present { deleting } => Step {
            delete_composite: !deleting,
            then: if foreground {
                Then::Wait
            } else {
                Then::Release
            },
        },
    }
}

impl Pass<'_> {
    /// Observe the bound XR, decide with [`step`], act.
    pub(super) async fn delete(&self, claim: &DynamicObject, value: &Value) -> Result<Action> {
        let foreground = value
            .at("/spec/compositeDeletePolicy")
            .and_then(Value::as_str)
            == Some("Foreground");
        let recorded = value.at("/spec/resourceRef/name").and_then(Value::as_str);
        let xr = self.bound_composite(recorded).await?;
        let composite = match &xr {
            None => Composite::Absent,
            Some(xr) => Composite::Present {
                deleting: xr.metadata.deletion_timestamp.is_some(),
            },
        };
        let decided = step(composite, foreground);
        if let (true, Some(xr)) = (decided.delete_composite, &xr) {
            match self
                .composites
                .delete(&xr.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(Error::kube(
                        "deleting",
                        format!("the composite of {}", self.what),
                        e,
                    ));
                }
            }
        }
        match decided.then {
            Then::Wait => Ok(Action::requeue(FOREGROUND_POLL)),
            Then::Release => {
                shared::set_finalizer(
                    &self.claims,
                    claim,
                    wire::FINALIZER_CLAIM,
                    false,
                    &self.what,
                )
                .await?;
                Ok(Action::await_change())
            }
        }
    }

    /// The XR bound to the claim: the recorded `spec.resourceRef`, or else an XR labelled for
    /// the claim whose `spec.claimRef` names it (the reference write may not have reached this
    /// pass's copy of the claim, and a second XR must never be created).
    async fn bound_composite(&self, recorded: Option<&str>) -> Result<Option<DynamicObject>> {
        let (id, what) = (&self.id, &self.what);
        let found = match recorded {
            Some(name) => self
                .composites
                .get_opt(name)
                .await
                .map_err(|e| Error::kube("reading", format!("the composite of {what}"), e))?,
            None => {
                let selector = format!(
                    "{}={},{}={}",
                    wire::LABEL_CLAIM_NAME,
                    id.name,
                    wire::LABEL_CLAIM_NAMESPACE,
                    id.namespace
                );
                self.composites
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| Error::kube("listing", format!("the composites of {what}"), e))?
                    .items
                    .into_iter()
                    .next()
            }
        };
        Ok(found.filter(|x| serde_json::to_value(x).is_ok_and(|v| binding::bound_to(&v, id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deletion_step_follows_its_table() {
        let live = Composite::Present { deleting: false };
        let going = Composite::Present { deleting: true };
        let rows = [
            (
                Composite::Absent,
                false,
                false,
                Then::Release,
                "no XR: the claim goes",
            ),
            (
                Composite::Absent,
                true,
                false,
                Then::Release,
                "no XR left to wait for",
            ),
            (
                live,
                false,
                true,
                Then::Release,
                "background: delete the XR and let go",
            ),
            (
                live,
                true,
                true,
                Then::Wait,
                "foreground: delete the XR and wait",
            ),
            (
                going,
                false,
                false,
                Then::Release,
                "an XR already going is not deleted twice",
            ),
            (
                going,
                true,
                false,
                Then::Wait,
                "foreground waits until the XR is gone",
            ),
        ];
        for (composite, foreground, delete_composite, then, reason) in rows {
            assert_eq!(
                step(composite, foreground),
                Step {
                    delete_composite,
                    then
                },
                "{reason}"
            );
        }
    }
}
