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
use strata_schema::pointer::Pointer;

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
        .at("/spec/claimRef")
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::BTreeMap;

    use strata_core::render::RenderOutput;

    use super::*;
    use crate::holds::Hold;

    const NOW: &str = "2026-01-02T03:04:05Z";
    const EARLIER: &str = "2026-01-01T00:00:00Z";
    const RESYNC: Duration = Duration::from_secs(600);

    fn output(conditions: Value, unready: &[&str]) -> RenderOutput {
        RenderOutput {
            composite_status: json!({"conditions": conditions}),
            resources: Vec::new(),
            withheld: Vec::new(),
            skipped: Vec::new(),
            unready: unready.iter().map(|s| (*s).to_owned()).collect(),
            connection_details: BTreeMap::new(),
            environment: Value::Null,
            warnings: Vec::new(),
        }
    }

    fn pass(status: Value, output: RenderOutput) -> Pass {
        Pass {
            output,
            status,
            failures: Vec::new(),
            ttl: None,
            results: Vec::new(),
            holds: BTreeMap::new(),
        }
    }

    fn ready(status: &str, reason: &str) -> Value {
        json!({"type": "Ready", "status": status, "reason": reason})
    }

    fn stamped(mut c: Value, at: &str) -> Value {
        c["lastTransitionTime"] = json!(at);
        c
    }

    fn synced_ok(at: &str) -> Value {
        stamped(
            json!({"type": "Synced", "status": "True", "reason": "ReconcileSuccess"}),
            at,
        )
    }

    fn pending() -> Hold {
        Hold::CreatePending {
            kind: "Bucket".into(),
            name: "b-1".into(),
        }
    }

    /// The converged XR: what a clean pass of `pass(…, ready True)` decides.
    fn converged() -> Value {
        json!({"status": {"address": "x", "conditions": [
            stamped(ready("True", "Available"), EARLIER),
            synced_ok(EARLIER),
        ]}})
    }

    #[test]
    fn the_status_decision_follows_its_table() {
        let fresh = json!({"metadata": {"name": "xr"}});
        let composed_ready = || {
            pass(
                json!({"address": "x"}),
                output(json!([ready("True", "Available")]), &[]),
            )
        };
        struct Row {
            reason: &'static str,
            xr: Value,
            outcome: Result<Pass>,
            status: Value,
            write: bool,
            requeue: Duration,
            hold_events: usize,
        }
        let rows = [
            Row {
                reason: "a first clean pass writes the render's status, Ready and Synced",
                xr: fresh.clone(),
                outcome: Ok(composed_ready()),
                status: json!({"address": "x", "conditions": [
                    stamped(ready("True", "Available"), NOW),
                    synced_ok(NOW),
                ]}),
                write: true,
                requeue: RESYNC,
                hold_events: 0,
            },
            Row {
                reason: "a converged XR writes nothing and keeps its transition times",
                xr: converged(),
                outcome: Ok(composed_ready()),
                status: converged()["status"].clone(),
                write: false,
                requeue: RESYNC,
                hold_events: 0,
            },
            Row {
                reason: "a pipeline's TTL shortens the requeue",
                xr: converged(),
                outcome: Ok(Pass {
                    ttl: Some(Duration::from_secs(30)),
                    ..composed_ready()
                }),
                status: converged()["status"].clone(),
                write: false,
                requeue: Duration::from_secs(30),
                hold_events: 0,
            },
            Row {
                reason: "a TTL below the floor is raised to it",
                xr: converged(),
                outcome: Ok(Pass {
                    ttl: Some(Duration::from_millis(10)),
                    ..composed_ready()
                }),
                status: converged()["status"].clone(),
                write: false,
                requeue: MIN_TTL,
                hold_events: 0,
            },
            Row {
                reason: "a TTL above the resync interval is cut to it",
                xr: converged(),
                outcome: Ok(Pass {
                    ttl: Some(Duration::from_secs(86_400)),
                    ..composed_ready()
                }),
                status: converged()["status"].clone(),
                write: false,
                requeue: RESYNC,
                hold_events: 0,
            },
            Row {
                reason: "failed applies are named in Synced and retried soon",
                xr: converged(),
                outcome: Ok(Pass {
                    failures: vec![
                        ("db".into(), "denied".into()),
                        ("net".into(), "timeout".into()),
                    ],
                    ..composed_ready()
                }),
                status: json!({"address": "x", "conditions": [
                    stamped(ready("True", "Available"), EARLIER),
                    stamped(json!({"type": "Synced", "status": "False", "reason": "ReconcileError",
                        "message": "cannot apply composed resources: db: denied; net: timeout"}), NOW),
                ]}),
                write: true,
                requeue: FAILED_APPLY_RETRY,
                hold_events: 0,
            },
            Row {
                reason: "a hold replaces the render's Ready and raises its event once",
                xr: fresh.clone(),
                outcome: Ok(Pass {
                    holds: BTreeMap::from([("bucket".to_owned(), pending())]),
                    ..pass(
                        json!({}),
                        output(json!([ready("False", "Creating")]), &["bucket"]),
                    )
                }),
                status: json!({"conditions": [
                    stamped(json!({"type": "Ready", "status": "False", "reason": "Creating",
                        "message": format!("Unready resources: bucket ({})", pending().explain())}), NOW),
                    synced_ok(NOW),
                ]}),
                write: true,
                requeue: RESYNC,
                hold_events: 1,
            },
            Row {
                reason: "a hold the observed Ready message already names raises no event",
                xr: json!({"status": {"conditions": [
                    stamped(json!({"type": "Ready", "status": "False", "reason": "Creating",
                        "message": format!("Unready resources: bucket ({})", pending().explain())}), EARLIER),
                    synced_ok(EARLIER),
                ]}}),
                outcome: Ok(Pass {
                    holds: BTreeMap::from([("bucket".to_owned(), pending())]),
                    ..pass(
                        json!({}),
                        output(json!([ready("False", "Creating")]), &["bucket"]),
                    )
                }),
                status: json!({"conditions": [
                    stamped(json!({"type": "Ready", "status": "False", "reason": "Creating",
                        "message": format!("Unready resources: bucket ({})", pending().explain())}), EARLIER),
                    synced_ok(EARLIER),
                ]}),
                write: false,
                requeue: RESYNC,
                hold_events: 0,
            },
            Row {
                reason: "missing data waits: Synced says Waiting, and a new XR is not Ready yet",
                xr: fresh.clone(),
                outcome: Err(Error::waiting("XDb db", "no CompositionRevision yet")),
                status: json!({"conditions": [
                    stamped(json!({"type": "Synced", "status": "False", "reason": "Waiting",
                        "message": Error::waiting("XDb db", "no CompositionRevision yet").to_string()}), NOW),
                    stamped(json!({"type": "Ready", "status": "False", "reason": "Creating",
                        "message": "the composite resource has not been composed yet"}), NOW),
                ]}),
                write: true,
                requeue: Duration::from_secs(5),
                hold_events: 0,
            },
            Row {
                reason: "a mistake keeps the XR's Ready and waits for the resync",
                xr: converged(),
                outcome: Err(Error::invalid("XDb db", "does not compile")),
                status: json!({"address": "x", "conditions": [
                    stamped(ready("True", "Available"), EARLIER),
                    stamped(json!({"type": "Synced", "status": "False", "reason": "ReconcileError",
                        "message": Error::invalid("XDb db", "does not compile").to_string()}), NOW),
                ]}),
                write: true,
                requeue: RESYNC,
                hold_events: 0,
            },
        ];
        for row in rows {
            let got = decide(&StatusFacts {
                xr: &row.xr,
                outcome: &row.outcome,
                now: NOW,
                resync: RESYNC,
            });
            assert_eq!(got.status, row.status, "{}: status", row.reason);
            assert_eq!(got.write, row.write, "{}: write", row.reason);
            assert_eq!(got.requeue, row.requeue, "{}: requeue", row.reason);
            assert_eq!(
                got.hold_events.len(),
                row.hold_events,
                "{}: hold events",
                row.reason
            );
        }
    }
}
