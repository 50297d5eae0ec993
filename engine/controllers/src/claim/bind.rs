//! Binding a claim to its XR: the finalizer and the XR's name go on the claim first
//! ([`binding_patch`] decides), then the claim's spec is applied to the XR under the claim's own
//! field manager ([`composite_step`] decides whether it is needed, and refuses an XR bound to
//! another claim).

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::{CLAIM_FIELD_MANAGER, Pass};
use crate::binding::{self, ClaimIdentity};
use crate::error::{Error, Result};
use crate::shared;

/// What the claim says about its binding.
struct BindingFacts<'a> {
    /// The XR named in `spec.resourceRef`, if one was recorded.
    bound: Option<&'a str>,
    uid: &'a str,
    finalizers: &'a [String],
    resource_version: Option<&'a str>,
    /// The XR kind's `apiVersion` and `kind`.
    composite: (&'a str, &'a str),
    claim_name: &'a str,
}

/// The XR's name and the merge patch that records the finalizer and the XR's name on the claim
/// (`None` when both are there). The name is derived from the claim's uid, so a repeated pass
/// never creates a second XR.
fn binding_patch(facts: &BindingFacts<'_>) -> (String, Option<Value>) {
    let name = match facts.bound {
        Some(n) => n.to_owned(),
        None => binding::composite_name(facts.claim_name, facts.uid),
    };
    let finalizers = shared::finalizers_with(facts.finalizers, wire::FINALIZER_CLAIM, true);
    if finalizers.is_none() && facts.bound.is_some() {
        return (name, None);
    }
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(facts.resource_version));
    if let Some(f) = finalizers {
        meta.insert("finalizers".into(), json!(f));
    }
    let mut patch = json!({"metadata": meta});
    if facts.bound.is_none() {
        let (api_version, kind) = facts.composite;
        patch["spec"] =
            json!({"resourceRef": {"apiVersion": api_version, "kind": kind, "name": name}});
    }
    (name, Some(patch))
}

/// What to do with the claim's XR.
#[derive(Debug, PartialEq)]
enum CompositeStep {
    /// The XR of that name is bound to another claim: a mistake, nothing is written.
    Foreign,
    /// The XR already is what the claim asks for: it is the observed object.
    Current(Value),
    /// Server-side apply this (stamped with its applied hash); `create` when no XR exists.
    Apply { stamped: Value, create: bool },
}

/// Decides whether the observed XR (`existing`) needs the claim's `desired` spec applied.
fn composite_step(existing: Option<Value>, id: &ClaimIdentity, desired: &Value) -> CompositeStep {
    if let Some(x) = &existing
        && !binding::bound_to(x, id)
    {
        return CompositeStep::Foreign;
    }
    let (stamped, current) = shared::plan_apply(desired, existing.as_ref());
    match existing {
        Some(x) if current => CompositeStep::Current(x),
        _ => CompositeStep::Apply {
            create: existing.is_none(),
            stamped,
        },
    }
}

/// The XR the claim asks for, under its decided `name`.
fn desired_composite(
    claim: &Value,
    id: &ClaimIdentity,
    composite: (&str, &str),
    name: &str,
) -> Value {
    let mut desired = binding::new_composite(claim, id, composite.0, composite.1);
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("generateName");
        meta.insert("name".into(), Value::String(name.to_owned()));
    }
    desired
}

impl Pass<'_> {
    /// The finalizer and the XR's name go on the claim in one write, before the XR exists: a
    /// deleted claim then always finds (and deletes) its XR. Returns the claim as written (or
    /// as it was) and the XR's name.
    pub(super) async fn bind(
        &self,
        claim: &DynamicObject,
        value: &Value,
    ) -> Result<(DynamicObject, String)> {
        let uid = claim.uid().unwrap_or_default();
        let resource_version = claim.resource_version();
        let composite = &self.ctx.composite;
        let (name, patch) = binding_patch(&BindingFacts {
            bound: value.at("/spec/resourceRef/name").and_then(Value::as_str),
            uid: &uid,
            finalizers: claim.finalizers(),
            resource_version: resource_version.as_deref(),
            composite: (&composite.api_version, &composite.kind),
            claim_name: &self.id.name,
        });
        let Some(patch) = patch else {
            return Ok((claim.clone(), name));
        };
        let written = self
            .claims
            .patch(
                &self.id.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    "recording the finalizer and composite on",
                    self.what.clone(),
                    e,
                )
            })?;
        self.ctx.shared.newest.wrote(claim, &written);
        Ok((written, name))
    }

    /// Claim → XR with server-side apply under the claim's own field manager: a field removed
    /// from the claim's spec leaves the applied set, and the API server removes it from the XR.
    /// The applied hash makes a converged XR cost no write. Returns the XR.
    pub(super) async fn apply_composite(
        &self,
        claim: &DynamicObject,
        value: &Value,
        name: &str,
    ) -> Result<Value> {
        let composite = &self.ctx.composite;
        let existing = shared::get_json(&self.composites, name)
            .await
            .map_err(|e| Error::kube("reading", format!("the composite of {}", self.what), e))?;
        let kind = (composite.api_version.as_str(), composite.kind.as_str());
        let desired = desired_composite(value, &self.id, kind, name);
        let (stamped, create) = match composite_step(existing, &self.id, &desired) {
            CompositeStep::Foreign => {
                return Err(Error::invalid(
                    self.what.clone(),
                    format!("{} {name} is bound to another claim", composite.kind),
                ));
            }
            CompositeStep::Current(xr) => return Ok(xr),
            CompositeStep::Apply { stamped, create } => (stamped, create),
        };
        let written: Value =
            shared::apply_as(&self.composites, name, &stamped, CLAIM_FIELD_MANAGER)
                .await
                .map_err(|e| {
                    Error::kube(
                        "applying the claim's spec to",
                        format!("{} {name}", composite.kind),
                        e,
                    )
                })?;
        if create {
            self.ctx
                .shared
                .normal(
                    &claim.object_ref(&self.ctx.claim),
                    wire::REASON_BIND_COMPOSITE,
                    format!("created {} {name}", composite.kind),
                )
                .await;
        }
        Ok(written)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn facts<'a>(bound: Option<&'a str>, finalizers: &'a [String]) -> BindingFacts<'a> {
        BindingFacts {
            bound,
            uid: "0123456789",
            finalizers,
            resource_version: Some("7"),
            composite: ("example.org/v1", "XDatabase"),
            claim_name: "db",
        }
    }

    #[test]
    fn the_binding_patch_follows_its_table() {
        let none: Vec<String> = Vec::new();
        let ours = vec![wire::FINALIZER_CLAIM.to_owned()];
        let derived = binding::composite_name("db", "0123456789");
        let rows: [(BindingFacts<'_>, &str, Option<Value>, &str); 4] = [
            (
                facts(None, &none),
                &derived,
                Some(json!({
                    "metadata": {"resourceVersion": "7", "finalizers": [wire::FINALIZER_CLAIM]},
                    "spec": {"resourceRef": {"apiVersion": "example.org/v1", "kind": "XDatabase", "name": derived}},
                })),
                "a new claim records the finalizer and the XR's derived name in one write",
            ),
            (
                facts(Some("db-abc"), &none),
                "db-abc",
                Some(
                    json!({"metadata": {"resourceVersion": "7", "finalizers": [wire::FINALIZER_CLAIM]}}),
                ),
                "a bound claim that lost its finalizer gets only the finalizer",
            ),
            (
                facts(None, &ours),
                &derived,
                Some(json!({
                    "metadata": {"resourceVersion": "7"},
                    "spec": {"resourceRef": {"apiVersion": "example.org/v1", "kind": "XDatabase", "name": derived}},
                })),
                "a claim with the finalizer but no reference gets the reference",
            ),
            (
                facts(Some("db-abc"), &ours),
                "db-abc",
                None,
                "a bound claim with its finalizer writes nothing",
            ),
        ];
        for (facts, name, patch, reason) in rows {
            assert_eq!(binding_patch(&facts), (name.to_owned(), patch), "{reason}");
        }
    }

    #[test]
    fn the_composite_step_follows_its_table() {
        let claim = json!({
            "apiVersion": "example.org/v1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "team", "uid": "u1"},
            "spec": {"size": "small"},
        });
        let id = ClaimIdentity::of(&claim).unwrap();
        let desired = desired_composite(&claim, &id, ("example.org/v1", "XDatabase"), "db-abc");
        let (stamped, _) = shared::plan_apply(&desired, None);
        let applied = stamped.clone();
        let mut drifted = stamped.clone();
        drifted["metadata"]["annotations"] = json!({});
        let mut changed = desired.clone();
        changed["spec"]["size"] = json!("large");
        let foreign = json!({"spec": {"claimRef": {"name": "db", "namespace": "other"}}});
        let rows = [
            (
                None,
                &desired,
                CompositeStep::Apply {
                    stamped: stamped.clone(),
                    create: true,
                },
                "no XR yet: create it",
            ),
            (
                Some(applied.clone()),
                &desired,
                CompositeStep::Current(applied.clone()),
                "the applied XR costs no write",
            ),
            (
                Some(applied.clone()),
                &changed,
                CompositeStep::Apply {
                    stamped: shared::plan_apply(&changed, None).0,
                    create: false,
                },
                "a changed claim spec is applied",
            ),
            (
                Some(drifted),
                &desired,
                CompositeStep::Apply {
                    stamped: stamped.clone(),
                    create: false,
                },
                "an XR without the applied hash is applied again",
            ),
            (
                Some(foreign),
                &desired,
                CompositeStep::Foreign,
                "an XR bound to another claim is refused",
            ),
        ];
        for (existing, desired, expected, reason) in rows {
            assert_eq!(composite_step(existing, &id, desired), expected, "{reason}");
        }
    }

    #[test]
    fn the_desired_composite_has_the_decided_name_and_no_generate_name() {
        let claim = json!({
            "apiVersion": "example.org/v1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "team"},
            "spec": {"size": "small"},
        });
        let id = ClaimIdentity::of(&claim).unwrap();
        let xr = desired_composite(&claim, &id, ("example.org/v1", "XDatabase"), "db-abc");
        assert_eq!(xr["metadata"]["name"], "db-abc");
        assert!(xr["metadata"].get("generateName").is_none());
        assert!(binding::bound_to(&xr, &id));
    }
}
