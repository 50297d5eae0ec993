//! What holds a composite resource (XR) back, said on the XR and its claim: the composed
//! resources it waits for that a person has to act on.
//!
//! The render's `Ready` condition only names unready resources ("Unready resources: database").
//! This module explains each one that is stuck rather than merely in progress, from what a pass
//! already has (the render output and the observed composed resources): pure functions, called
//! by the XR controller ([`crate::xr`]), which writes the condition and the events.
//!
//! - A resource a `Required` patch withholds: which patch, and the source path it waits for.
//! - A managed resource the create-pending guard stopped (`Synced=False`, reason
//!   [`wire::REASON_EXTERNAL_CREATE_PENDING`]): which object, what to check, how to release it.
//! - Any other composed resource that is not Ready and reports `Synced=False`: its reason and
//!   message. Crossplane does not surface a composed resource's `Synced` on the XR; Strata does
//!   for unready resources, because the claim is what a developer looks at. A Ready resource
//!   whose update fails is left to its own conditions and events: it still serves.
//!
//! The explanations go into the XR's `Ready=False` message (which the claim copies). The first
//! two kinds also become one Warning event on the XR and one on its claim, only when the observed
//! XR's `Ready` message does not say it yet: a stuck XR does not repeat the event every pass.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strata_core::render::{ObservedResources, RenderOutput, RequiredSource};
use strata_core::wire;
use strata_schema::pointer::Pointer;

/// How many unready resources the Ready message names (Crossplane names three).
const SHOWN: usize = 3;

/// Why one composed resource holds the XR back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A `Required` patch's source is missing: the resource is not created until it exists.
    RequiredSource(RequiredSource),
    /// The managed runtime's create-pending guard stopped the resource.
    CreatePending { kind: String, name: String },
    /// The composed resource is not Ready and reports `Synced=False`.
    NotSynced {
        kind: String,
        name: String,
        reason: String,
        message: String,
    },
}

impl Hold {
    /// The explanation that follows the template name in the Ready message.
    pub(crate) fn explain(&self) -> String {
        match self {
            Hold::RequiredSource(r) => r.explain(),
            Hold::CreatePending { kind, name } => format!(
                "{kind} {name} is stopped by the create-pending guard: a create may have reached \
                 the cloud without being recorded; check whether the cloud resource exists, then \
                 either remove the annotation {} (it does not exist: it is created) or set {} to \
                 its name (it exists: it is adopted)",
                wire::ANNOTATION_EXTERNAL_CREATE_PENDING,
                wire::ANNOTATION_EXTERNAL_NAME
            ),
            Hold::NotSynced {
                kind,
                name,
                reason,
                message,
            } => {
                if message.is_empty() {
                    format!("{kind} {name} is not synced: {reason}")
                } else {
                    format!("{kind} {name} is not synced: {reason}: {message}")
                }
            }
        }
    }

    /// The reason of the Warning event this hold deserves, if any.
    pub(crate) fn event_reason(&self) -> Option<&'static str> {
        match self {
            Hold::RequiredSource(_) => Some(wire::REASON_REQUIRED_SOURCE_MISSING),
            Hold::CreatePending { .. } => Some(wire::REASON_EXTERNAL_CREATE_PENDING),
            Hold::NotSynced { .. } => None,
        }
    }
}

/// What holds each unready resource back, by template name; resources merely in progress
/// (created, not Ready yet, nothing wrong) are not listed.
pub(crate) fn holds(output: &RenderOutput, observed: &ObservedResources) -> BTreeMap<String, Hold> {
    let mut out = BTreeMap::new();
    for name in &output.unready {
        let required = output
            .withheld
            .iter()
            .find(|w| &w.name == name)
            .and_then(|w| w.required.clone());
        if let Some(r) = required {
            out.insert(name.clone(), Hold::RequiredSource(r));
            continue;
        }
        if let Some(hold) = observed.get(name).and_then(|o| not_synced(&o.resource)) {
            out.insert(name.clone(), hold);
        }
    }
    out
}

/// The hold of an observed composed resource whose `Synced` condition is False.
fn not_synced(resource: &Value) -> Option<Hold> {
    let synced = resource
        .at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Synced"))?;
    let field = |k: &str| synced.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("status") != "False" {
        return None;
    }
    let kind = resource
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = resource
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(if field("reason") == wire::REASON_EXTERNAL_CREATE_PENDING {
        Hold::CreatePending { kind, name }
    } else {
        Hold::NotSynced {
            kind,
            name,
            reason: field("reason").to_owned(),
            message: field("message").to_owned(),
        }
    })
}

/// `database (waiting for spec.region: Required patch 2 FromCompositeFieldPath)`.
fn entry(name: &str, hold: &Hold) -> String {
    format!("{name} ({})", hold.explain())
}

/// The XR's `Ready=False` condition naming `unready` with each hold explained (explained ones
/// first, so they are never cut off), or `None` when nothing is held: the render's condition
/// stands as it is.
pub(crate) fn ready_condition(unready: &[String], holds: &BTreeMap<String, Hold>) -> Option<Value> {
    if holds.is_empty() {
        return None;
    }
    let mut named: Vec<String> = holds.iter().map(|(n, h)| entry(n, h)).collect();
    named.extend(unready.iter().filter(|n| !holds.contains_key(*n)).cloned());
    let total = named.len();
    let mut message = format!(
        "Unready resources: {}",
        named[..total.min(SHOWN)].join(", ")
    );
    if total > SHOWN {
        message.push_str(&format!(", and {} more", total - SHOWN));
    }
    let mut c = Map::new();
    c.insert("type".into(), Value::String("Ready".into()));
    c.insert("status".into(), Value::String("False".into()));
    c.insert("reason".into(), Value::String("Creating".into()));
    c.insert("message".into(), Value::String(message));
    Some(Value::Object(c))
}

/// The Warning events (reason, note) the holds call for that the observed XR's `Ready`
/// message (`observed_ready`) does not say yet.
pub(crate) fn new_events(
    holds: &BTreeMap<String, Hold>,
    observed_ready: Option<&str>,
) -> Vec<(&'static str, String)> {
    holds
        .iter()
        .filter(|(n, h)| !observed_ready.is_some_and(|m| m.contains(&entry(n, h))))
        .filter_map(|(n, h)| {
            let reason = h.event_reason()?;
            let note = match h {
                Hold::RequiredSource(_) => format!("resource `{n}` withheld: {}", h.explain()),
                _ => format!("resource `{n}`: {}", h.explain()),
            };
            Some((reason, note))
        })
        .collect()
}

/// The message of the observed XR's `Ready` condition.
pub(crate) fn observed_ready_message(xr: &Value) -> Option<&str> {
    xr.at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?
        .get("message")?
        .as_str()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;
    use strata_core::model::PatchType;
    use strata_core::render::{Observed, Withheld};

    use super::*;

    fn output(unready: &[&str], withheld: Vec<Withheld>) -> RenderOutput {
        RenderOutput {
            composite_status: json!({}),
            resources: Vec::new(),
            withheld,
            skipped: Vec::new(),
            unready: unready.iter().map(|s| s.to_string()).collect(),
            connection_details: Default::default(),
            environment: json!({}),
            warnings: Vec::new(),
        }
    }

    fn region() -> RequiredSource {
        RequiredSource {
            patch: 2,
            kind: PatchType::FromCompositeFieldPath,
            from_field_path: "spec.parameters.region".into(),
            from_resource: None,
        }
    }

    fn observed(name: &str, synced: Value) -> (String, Observed) {
        (
            name.to_owned(),
            Observed {
                resource: json!({"apiVersion": "rds.aws.strata.dev/v1alpha1", "kind": "DBInstance",
                    "metadata": {"name": format!("x-{name}")},
                    "status": {"conditions": [synced]}}),
                connection_details: Default::default(),
            },
        )
    }

    #[test]
    fn each_stuck_resource_is_explained_and_resources_in_progress_are_not() {
        let withheld = vec![Withheld {
            name: "database".into(),
            reason: region().explain(),
            required: Some(region()),
        }];
        let observed: ObservedResources = [
            observed(
                "guarded",
                json!({"type": "Synced", "status": "False", "reason": "ExternalCreatePending", "message": "m"}),
            ),
            observed(
                "failing",
                json!({"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "cannot connect"}),
            ),
            observed(
                "creating",
                json!({"type": "Synced", "status": "True", "reason": "ReconcileSuccess"}),
            ),
        ]
        .into_iter()
        .collect();
        let out = output(&["creating", "database", "failing", "guarded"], withheld);
        let holds = holds(&out, &observed);
        assert_eq!(
            holds.keys().collect::<Vec<_>>(),
            ["database", "failing", "guarded"],
            "a resource with Synced=True is in progress, not held"
        );
        assert_eq!(
            holds["guarded"],
            Hold::CreatePending {
                kind: "DBInstance".into(),
                name: "x-guarded".into()
            }
        );
        assert_eq!(
            holds["failing"].explain(),
            "DBInstance x-failing is not synced: ReconcileError: cannot connect"
        );
    }

    #[test]
    fn the_ready_message_puts_explained_resources_first_and_caps_at_three() {
        let holds: BTreeMap<String, Hold> =
            [("database".to_owned(), Hold::RequiredSource(region()))].into();
        let unready: Vec<String> = ["a", "b", "c", "database"].map(String::from).to_vec();
        let condition = ready_condition(&unready, &holds).unwrap();
        assert_eq!(
            condition,
            json!({"type": "Ready", "status": "False", "reason": "Creating",
                "message": "Unready resources: database (waiting for spec.parameters.region: Required patch 2 FromCompositeFieldPath), a, b, and 1 more"})
        );
        assert_eq!(
            ready_condition(&unready, &BTreeMap::new()),
            None,
            "nothing held: the render's condition stands"
        );
    }

    #[test]
    fn an_event_is_due_only_while_the_observed_ready_message_does_not_say_it_yet() {
        let holds: BTreeMap<String, Hold> = [
            ("database".to_owned(), Hold::RequiredSource(region())),
            (
                "failing".to_owned(),
                Hold::NotSynced {
                    kind: "DBInstance".into(),
                    name: "x".into(),
                    reason: "ReconcileError".into(),
                    message: "m".into(),
                },
            ),
        ]
        .into();
        let events = new_events(&holds, Some("Unready resources: database"));
        assert_eq!(
            events,
            [(
                "RequiredSourceMissing",
                "resource `database` withheld: waiting for spec.parameters.region: Required patch 2 FromCompositeFieldPath".to_owned()
            )],
            "a composed resource's own Synced error is its own event, not the XR's"
        );
        let said = ready_condition(&["database".to_owned()], &holds).unwrap();
        assert!(new_events(&holds, said["message"].as_str()).is_empty());
    }
}
