//! The bridge to `strata_core::schema`: compiling CRD schemas and admitting custom objects
//! (prune, default, validate — kube-apiserver's order).

use serde_json::Value;
use strata_core::schema::StructuralSchema;

use crate::error::FieldCause;

/// Compiles an `openAPIV3Schema`, for rejecting CRDs whose schema cannot be served.
pub fn compile_schema(schema: &Value) -> Result<(), String> {
    StructuralSchema::compile(schema)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Prunes unknown fields, applies defaults and validates; every violation becomes a cause.
/// Returns the paths of the unknown fields it pruned.
pub fn validate_and_default(
    schema: &StructuralSchema,
    obj: &mut Value,
) -> Result<Vec<String>, Vec<FieldCause>> {
    let pruned = schema.prune(obj);
    schema.apply_defaults(obj);
    let errors = schema.validate(obj);
    if errors.is_empty() {
        return Ok(pruned);
    }
    Err(errors
        .into_iter()
        .map(|e| {
            let text = e.to_string();
            let message = text
                .strip_prefix(&format!("{}: ", e.path))
                .unwrap_or(&text)
                .to_owned();
            FieldCause {
                field: e.path,
                message,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wrongly_typed_field_is_reported_with_its_path_and_defaults_fill_absent_fields() {
        let schema = StructuralSchema::compile(&json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer"}, "tier": {"type": "string", "default": "small"}}}}}))
        .unwrap();
        let mut bad = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"size": "big"}});
        let causes = validate_and_default(&schema, &mut bad).unwrap_err();
        assert_eq!(causes[0].field, "spec.size");
        let mut good = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"size": 1, "junk": 1}});
        validate_and_default(&schema, &mut good).unwrap();
        assert_eq!(
            good["spec"],
            json!({"size": 1, "tier": "small"}),
            "unknown field pruned, default applied"
        );
    }
}
