//! Claim ↔ composite resource binding: the pure part. What a claim's XR looks like, which of the
//! claim's spec fields flow to the XR, and what flows back to the claim's status.

use serde_json::{Map, Value, json};
use strata_core::wire;
use strata_schema::pointer::Pointer;

/// The claim binding itself lives in the core, so `strata render` binds a claim as this
/// controller does.
pub(crate) use strata_core::definition::{composite_name, composite_spec_from_claim};

/// The identity of a claim, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClaimIdentity {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) namespace: String,
}

impl ClaimIdentity {
    pub(crate) fn of(claim: &Value) -> Option<Self> {
        let s = |p: &str| claim.at(p).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            api_version: s("/apiVersion")?,
            kind: s("/kind")?,
            name: s("/metadata/name")?,
            namespace: s("/metadata/namespace")?,
        })
    }
}

/// A new XR for a claim: `generateName` from the claim name, the claim labels (Strata's and
/// Crossplane's, which Crossplane Compositions patch from), `spec.claimRef` and the claim's spec.
pub(crate) fn new_composite(
    claim: &Value,
    id: &ClaimIdentity,
    xr_api_version: &str,
    xr_kind: &str,
) -> Value {
    let mut spec = composite_spec_from_claim(claim);
    spec.insert(
        "claimRef".into(),
        json!({"apiVersion": id.api_version, "kind": id.kind, "name": id.name, "namespace": id.namespace}),
    );
    json!({
        "apiVersion": xr_api_version,
        "kind": xr_kind,
        "metadata": {
            "generateName": format!("{}-", id.name),
            "labels": {
                wire::LABEL_CLAIM_NAME: id.name,
                wire::LABEL_CLAIM_NAMESPACE: id.namespace,
                wire::CROSSPLANE_LABEL_CLAIM_NAME: id.name,
                wire::CROSSPLANE_LABEL_CLAIM_NAMESPACE: id.namespace,
            },
        },
        "spec": Value::Object(spec),
    })
}

/// True when the XR is bound to this claim (its `spec.claimRef` names it).
pub(crate) fn bound_to(xr: &Value, id: &ClaimIdentity) -> bool {
    let s = |p: &str| xr.at(p).and_then(Value::as_str);
    s("/spec/claimRef/name") == Some(id.name.as_str())
        && s("/spec/claimRef/namespace") == Some(id.namespace.as_str())
}

/// The claim's status as copied from its XR: every XR status field except the XR-only
/// `claimConditionTypes` and `functionResults` (the claim's CRD has neither: copying them would
/// be pruned and written again every pass).
pub(crate) fn claim_status_from_composite(xr: &Value) -> Value {
    let mut status = match xr.get("status") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    status.remove("claimConditionTypes");
    status.remove("functionResults");
    Value::Object(status)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn claim() -> Value {
        json!({
            "apiVersion": "example.org/v1",
            "kind": "Database",
            "metadata": {"name": "db", "namespace": "team"},
            "spec": {
                "size": "small",
                "compositionRef": {"name": "c"},
                "resourceRef": {"apiVersion": "example.org/v1", "kind": "XDatabase", "name": "db-x1"},
                "writeConnectionSecretToRef": {"name": "db-conn"},
                "compositeDeletePolicy": "Foreground",
            },
        })
    }

    #[test]
    fn claim_only_fields_do_not_reach_the_composite() {
        let spec = composite_spec_from_claim(&claim());
        assert_eq!(
            Value::Object(spec),
            json!({"size": "small", "compositionRef": {"name": "c"}})
        );
    }

    #[test]
    fn a_new_composite_is_generated_from_the_claim_name_and_bound_to_it() {
        let c = claim();
        let id = ClaimIdentity::of(&c).unwrap();
        let xr = new_composite(&c, &id, "example.org/v1", "XDatabase");
        assert_eq!(xr["metadata"]["generateName"], "db-");
        assert_eq!(
            xr["metadata"]["labels"][wire::LABEL_CLAIM_NAMESPACE],
            "team"
        );
        assert_eq!(
            xr["metadata"]["labels"]["crossplane.io/claim-namespace"], "team",
            "Crossplane Compositions patch the namespace from Crossplane's label"
        );
        assert_eq!(xr["metadata"]["labels"]["crossplane.io/claim-name"], "db");
        assert_eq!(xr["spec"]["size"], "small");
        assert!(xr["spec"].get("resourceRef").is_none());
        assert!(bound_to(&xr, &id));
    }

    #[test]
    fn a_composite_bound_to_another_claim_is_not_ours() {
        let c = claim();
        let id = ClaimIdentity::of(&c).unwrap();
        let xr = json!({"spec": {"claimRef": {"name": "db", "namespace": "other"}}});
        assert!(!bound_to(&xr, &id));
    }

    #[test]
    fn the_claim_status_copies_everything_but_the_composites_own_fields() {
        let xr = json!({"status": {"address": "x", "conditions": [{"type": "Ready"}], "claimConditionTypes": ["A"], "functionResults": []}});
        assert_eq!(
            claim_status_from_composite(&xr),
            json!({"address": "x", "conditions": [{"type": "Ready"}]})
        );
    }
}
