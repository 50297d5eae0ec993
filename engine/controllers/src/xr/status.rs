//! The XR's status after a pass: [`decide`] (pure) computes the conditions, whether they
//! changed and when to look again from what the pass ended with; [`record`] writes the status
//! and publishes the pass's events, only when the status changed, so a stuck XR does not write
//! an event every pass.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use strata_core::wire;
use strata_functions::run::{Severity, StepResult};

use super::XrContext;
use super::apply::{Events, Pass};
use crate::conditions::{self, READY, SYNCED, Wanted};
use crate::error::{Error, ErrorClass, Result};
use crate::holds;

/// The shortest requeue a function's TTL may ask for.
const MIN_TTL: Duration = Duration::from_secs(1);

/// How soon a pass whose composed resources failed to apply looks again.
const FAILED_APPLY_RETRY: Duration = Duration::from_secs(5);

/// Everything [`decide`] reads.
pub(super) struct StatusFacts<'a> {
    /// The XR as the pass left it (after its own metadata and spec writes).
    pub(super) xr: &'a Value,
    /// What the compose pass ended with.
    pub(super) outcome: &'a Result<Pass>,
    /// The clock reading for new condition transitions.
    pub(super) now: &'a str,
    /// The settings' resync interval: the longest wait.
    pub(super) resync: Duration,
}

/// What the pass does with the XR's status.
#[derive(Debug, PartialEq)]
pub(super) struct StatusDecision {
    /// The XR's status as decided.
    pub(super) status: Value,
    /// `status` changes the observed one: write it, and publish the pass's events.
    pub(super) write: bool,
    /// When to look again.
    pub(super) requeue: Duration,
    /// Warnings about what holds the XR back that its Ready message does not say yet.
    pub(super) hold_events: Events,
}

/// Decides the XR's status from the pass's outcome. A rendered pass: the render's status and
/// conditions (a stuck composed resource's hold explained in `Ready`), `Synced` naming every
/// failed write, and a requeue at the pipeline's TTL (clamped) or the resync interval. A failed
/// pass: `Synced=False` with the error (`Waiting` when data is not there yet), `Ready=False`
/// only when the XR has no `Ready` yet, and a retry per error class.
pub(super) fn decide(facts: &StatusFacts<'_>) -> StatusDecision {
    let observed = facts.xr.get("status");
    let base = match observed {
        Some(s @ Value::Object(_)) => s.clone(),
        _ => json!({}),
    };
    let (status, requeue, hold_events) = match facts.outcome {
        Ok(pass) => composed(facts, pass, &base),
        Err(e) => failed(facts, e, &base),
    };
    StatusDecision {
        write: conditions::differs(observed, &status),
        status,
        requeue,
        hold_events,
    }
}

fn composed(facts: &StatusFacts<'_>, pass: &Pass, base: &Value) -> (Value, Duration, Events) {
    let hold_events = holds::new_events(&pass.holds, holds::observed_ready_message(facts.xr));
    // The render's status fields, with the observed conditions kept (for their timestamps).
    let mut status = pass.status.clone();
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
    conditions::merge_json_conditions(&mut status, &produced, facts.now);
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
    let status = conditions::with_conditions(&status, &[synced], facts.now);
    let requeue = if pass.failures.is_empty() {
        pass.ttl
            .map_or(facts.resync, |t| t.clamp(MIN_TTL, facts.resync))
    } else {
        FAILED_APPLY_RETRY
    };
    (status, requeue, hold_events)
}

fn failed(facts: &StatusFacts<'_>, e: &Error, base: &Value) -> (Value, Duration, Events) {
    let reason = match e.class() {
        ErrorClass::Waiting => "Waiting",
        _ => "ReconcileError",
    };
    let mut wanted = vec![Wanted::no(SYNCED, reason, e.to_string())];
    if conditions::status_of(Some(base), READY).is_none() {
        wanted.push(Wanted::no(
            READY,
            "Creating",
            "the composite resource has not been composed yet",
        ));
    }
    let status = conditions::with_conditions(base, &wanted, facts.now);
    (status, e.retry_after(facts.resync), Vec::new())
}

/// What writing a decided status came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Written (or unchanged): the pass is done.
    Done,
    /// Someone wrote the XR since this pass read it (409): look again at their version.
    Conflict,
}

/// Writes the decided status when it changed, and then publishes the pass's events (Warnings,
/// holds on the XR and its claim, function results); when unchanged, the events are only
/// logged.
pub(super) async fn record(
    ctx: &XrContext,
    api: &Api<DynamicObject>,
    (xr, value): (&DynamicObject, &Value),
    id: &str,
    decision: StatusDecision,
    events: Events,
    results: &[StepResult],
) -> Result<Recorded> {
    if !decision.write {
        for (reason, note) in events {
            tracing::debug!(xr = %id, reason, "{note}");
        }
        return Ok(Recorded::Done);
    }
    let patch =
        json!({"metadata": {"resourceVersion": xr.resource_version()}, "status": decision.status});
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
            return Ok(Recorded::Conflict);
        }
        Err(e) => return Err(Error::kube("writing the status of", id.to_owned(), e)),
    };
    ctx.shared.newest.wrote(xr, &written);
    // Events only when the outcome changed: a stuck XR must not write an event every pass.
    let object = super::reference(ctx, xr);
    for (reason, note) in events {
        ctx.shared.warn(&object, reason, note).await;
    }
    publish_holds(ctx, &object, value, decision.hold_events).await;
    publish_results(ctx, &object, value, results).await;
    Ok(Recorded::Done)
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
