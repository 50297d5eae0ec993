//! The bridge to `strata_schema`: compiling CRD schemas and admitting custom objects
//! (prune, default, validate — kube-apiserver's order).

use serde_json::Value;
use strata_schema::StructuralSchema;

use crate::error::FieldCause;

/// Compiles an `openAPIV3Schema`, for rejecting CRDs whose schema cannot be served.
pub(crate) fn compile_schema(schema: &Value) -> Result<(), String> {
    StructuralSchema::compile(schema)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Prunes unknown fields, applies defaults and validates; every violation becomes a cause.
/// Returns the paths of the unknown fields it pruned.
pub(crate) fn validate_and_default(
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

/// Warnings a request collects for its response's `Warning` headers (shared by the clones of
/// its target).
#[derive(Clone, Debug, Default)]
pub struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    pub fn extend(&self, texts: impl IntoIterator<Item = String>) {
        if let Ok(mut w) = self.0.lock() {
            for text in texts {
                if !w.contains(&text) {
                    w.push(text);
                }
            }
        }
    }

    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// An HTTP `Warning` header value as kube-apiserver writes it: code 299, no agent, the text
/// quoted (RFC 7234).
pub(crate) fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

/// The dotted paths of keys that appear twice in one object of a JSON body
/// (`spec.replicas`), in the order met; empty for a body that is not JSON (its parse error is
/// reported where it is decoded). serde_json keeps the last of duplicate keys silently, so they
/// are found with a walk of their own, which borrows the keys from the body (every write's body
/// is walked: a key that needs no unescaping allocates nothing) and joins a path only for a
/// duplicate.
pub(crate) fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::cell::RefCell;

    /// A key as the body holds it: borrowed unless it had escapes.
    struct Key;
    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a key")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
    }

    struct Walk<'a, 'de> {
        path: &'a RefCell<Vec<Cow<'de, str>>>,
        found: &'a RefCell<Vec<String>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq
                .next_element_seed(Walk {
                    path: self.path,
                    found: self.found,
                })?
                .is_some()
            {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen: Vec<Cow<'de, str>> = Vec::new();
            while let Some(key) = map.next_key_seed(Key)? {
                if seen.contains(&key) {
                    let mut path = self.path.borrow().join(".");
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&key);
                    self.found.borrow_mut().push(path);
                    map.next_value::<IgnoredAny>()?;
                } else {
                    self.path.borrow_mut().push(key.clone());
                    map.next_value_seed(Walk {
                        path: self.path,
                        found: self.found,
                    })?;
                    self.path.borrow_mut().pop();
                    seen.push(key);
                }
            }
            Ok(())
        }
    }

    let path = RefCell::new(Vec::new());
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Walk {
        path: &path,
        found: &found,
    }
    .deserialize(&mut de);
    match walked {
        Ok(()) => found.into_inner(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_with_their_paths_at_every_depth() {
        let body = br#"{"spec": {"replicas": 1, "template": {"a": [{"x": 1, "x": 2}]}, "replicas": 2}, "kind": "K"}"#;
        assert_eq!(
            duplicate_fields(body),
            ["spec.template.a.x", "spec.replicas"]
        );
        assert!(duplicate_fields(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
        assert!(duplicate_fields(b"not json").is_empty());
        // Escaped keys are compared unescaped, as serde_json reads them.
        assert_eq!(
            duplicate_fields(
                br#"{"m\u0065ta": {"a": 1}, "meta": {"b": 2}, "x": {"\"q\"": 1, "\"q\"": 2}}"#
            ),
            ["meta", "x.\"q\""]
        );
    }

    #[test]
    fn a_warning_header_quotes_its_text_as_kube_apiserver_does() {
        assert_eq!(
            warning_header(r#"unknown field "spec.colour""#),
            r#"299 - "unknown field \"spec.colour\"""#
        );
    }
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
