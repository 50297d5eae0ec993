//! Where an XR keeps its composition machinery (`compositionRef`, `compositionSelector`,
//! `compositionRevisionRef`, `compositionRevisionSelector`, `compositionUpdatePolicy`,
//! `resourceRefs`): directly under `spec` in the v1 shape (scope `LegacyCluster`), under
//! `spec.crossplane` in Crossplane's v2 shape (`Namespaced`, `Cluster`). Pure.

use serde_json::{Map, Value};
use strata_core::model::XrScope;
use strata_schema::pointer::Pointer;

/// The shape of an XR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Machinery under `spec`.
    V1,
    /// Machinery under `spec.crossplane`.
    V2,
}

impl Shape {
    /// The shape an XRD's scope gives its XRs.
    pub(crate) fn of(scope: Option<XrScope>) -> Self {
        if scope.unwrap_or_default().is_legacy() {
            Shape::V1
        } else {
            Shape::V2
        }
    }

    /// The shape of an XR read without its XRD: v2 when it has a `spec.crossplane` object.
    pub(crate) fn observed(xr: &Value) -> Self {
        if xr.at("/spec/crossplane").is_some_and(Value::is_object) {
            Shape::V2
        } else {
            Shape::V1
        }
    }

    /// The JSON pointer of a machinery field (`compositionRef`, `resourceRefs`, ...).
    pub(crate) fn pointer(self, field: &str) -> String {
        match self {
            Shape::V1 => format!("/spec/{field}"),
            Shape::V2 => format!("/spec/crossplane/{field}"),
        }
    }

    /// Machinery fields as the content of a `spec` patch.
    pub(crate) fn spec_patch(self, fields: Map<String, Value>) -> Map<String, Value> {
        match self {
            Shape::V1 => fields,
            Shape::V2 => Map::from_iter([("crossplane".to_owned(), Value::Object(fields))]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_cluster_and_an_unset_scope_keep_machinery_under_spec() {
        assert_eq!(Shape::of(None), Shape::V1);
        assert_eq!(Shape::of(Some(XrScope::LegacyCluster)), Shape::V1);
        assert_eq!(Shape::V1.pointer("compositionRef"), "/spec/compositionRef");
    }

    #[test]
    fn namespaced_and_cluster_keep_machinery_under_spec_crossplane() {
        assert_eq!(Shape::of(Some(XrScope::Namespaced)), Shape::V2);
        assert_eq!(Shape::of(Some(XrScope::Cluster)), Shape::V2);
        assert_eq!(
            Shape::V2.pointer("resourceRefs"),
            "/spec/crossplane/resourceRefs"
        );
        let patch = Shape::V2.spec_patch(Map::from_iter([(
            "compositionRef".to_owned(),
            json!({"name": "c"}),
        )]));
        assert_eq!(
            Value::Object(patch),
            json!({"crossplane": {"compositionRef": {"name": "c"}}})
        );
    }

    #[test]
    fn an_xr_read_without_its_xrd_shows_its_shape() {
        assert_eq!(
            Shape::observed(&json!({"spec": {"crossplane": {}}})),
            Shape::V2
        );
        assert_eq!(
            Shape::observed(&json!({"spec": {"resourceRefs": []}})),
            Shape::V1
        );
    }
}
