//! Applies one compiled patch: read the source (observed), run the transforms, write the
//! destination (desired) with the `toFieldPath` policy.
//!
//! The caller picks source and destination by patch type; this module only moves values and
//! reports whether the source was missing, so the caller can apply Crossplane's
//! `fromFieldPath` policy (skip, withhold, or fail).

use serde_json::{Map, Value};

use crate::compile::{CompiledPatch, PatchSource};
use crate::fieldpath::{AccessError, FieldPath};
use crate::model::ToFieldPathPolicy;
use crate::transform::{TransformError, apply_all, gofmt};

/// What happened when a patch ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The value was written (or the destination already held it).
    Applied,
    /// The source value does not exist.
    SourceMissing(MissingSource),
}

/// A patch source that is not there (yet): which path the patch reads and what was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSource {
    /// The path the patch reads: its `fromFieldPath`, or for a Combine patch the variable
    /// that is missing.
    pub from_field_path: String,
    /// The part of it that was not found and why (`spec.parameters: no such field`).
    pub not_found: String,
}

impl std::fmt::Display for MissingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.not_found)
    }
}

/// Why a patch failed. The render adds which resource and which patch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The source path runs through a value of the wrong type.
    #[error("{0}")]
    Read(String),
    /// A transform refused the value read.
    #[error("{0}")]
    Transform(#[from] TransformError),
    /// The value cannot be written at the destination.
    #[error("{path}: {message}")]
    Write {
        /// The destination path.
        path: String,
        /// Why it cannot be written (the wrong type on the way, an index beyond the cap, a
        /// merge of incompatible values).
        message: String,
    },
    /// A `toFieldPath` with `[*]` matches no existing field; holds the path.
    #[error("cannot expand ToFieldPath {0}: no field matches")]
    NoWildcardMatch(String),
}

/// Runs `patch` from `source` onto `destination`.
pub fn apply(
    patch: &CompiledPatch,
    source: &Value,
    destination: &mut Value,
) -> Result<Outcome, PatchError> {
    match &patch.source {
        PatchSource::Path(path) => apply_read(patch, path.get(source), destination),
        PatchSource::Combine { variables, format } => {
            let mut values = Vec::with_capacity(variables.len());
            for v in variables {
                match v.get(source) {
                    Ok(value) => values.push(value),
                    Err(AccessError::NotFound { path, what }) => {
                        return Ok(Outcome::SourceMissing(MissingSource {
                            from_field_path: v.to_string(),
                            not_found: format!("{path}: {what}"),
                        }));
                    }
                    Err(e) => return Err(PatchError::Read(e.to_string())),
                }
            }
            let combined = Value::String(gofmt::sprintf(format, &values));
            transform_and_write(patch, &combined, destination)
        }
    }
}

/// Runs a `fromFieldPath` patch whose source was already read: `read` is what
/// [`FieldPath::get`] of the patch's source path returned.
pub fn apply_read(
    patch: &CompiledPatch,
    read: Result<&Value, AccessError>,
    destination: &mut Value,
) -> Result<Outcome, PatchError> {
    match read {
        Ok(input) => transform_and_write(patch, input, destination),
        Err(AccessError::NotFound { path, what }) => Ok(Outcome::SourceMissing(MissingSource {
            from_field_path: match &patch.source {
                PatchSource::Path(from) => from.to_string(),
                // A Combine patch reports its missing variable from `apply`; this is not reached.
                PatchSource::Combine { .. } => path.clone(),
            },
            not_found: format!("{path}: {what}"),
        })),
        Err(e) => Err(PatchError::Read(e.to_string())),
    }
}

/// Runs the transforms on the source value and writes the result. The source is borrowed: a
/// transform chain reads it in place, and only a plain copy clones it.
fn transform_and_write(
    patch: &CompiledPatch,
    input: &Value,
    destination: &mut Value,
) -> Result<Outcome, PatchError> {
    let output = if patch.transforms.is_empty() {
        let mut copy = input.clone();
        normalize_numbers(&mut copy);
        copy
    } else {
        // Normalized already: an integral float left after `apply_all` is beyond 2^63.
        apply_all(&patch.transforms, input)?
    };
    if let Some(slot) = patch
        .to_position
        .as_deref()
        .and_then(|p| at_position(destination, p))
    {
        *slot = output;
        return Ok(Outcome::Applied);
    }
    if patch.to_present && patch.to_policy == ToFieldPathPolicy::Replace && !patch.to_wildcard {
        // Usually the destination exists: replaced after one lookup per field.
        match patch.to.replace_existing(destination, output) {
            Ok(()) => return Ok(Outcome::Applied),
            Err(value) => return write_to(patch, value, destination),
        }
    }
    write_to(patch, output, destination)
}

fn write_to(
    patch: &CompiledPatch,
    output: Value,
    destination: &mut Value,
) -> Result<Outcome, PatchError> {
    write(
        &patch.to,
        patch.to_wildcard,
        output,
        patch.to_policy,
        destination,
    )?;
    Ok(Outcome::Applied)
}

/// The value at `position` (see [`CompiledPatch::to_position`]): the `n`th value of each object
/// on the way.
pub(crate) fn at_position<'v>(root: &'v mut Value, position: &[usize]) -> Option<&'v mut Value> {
    position
        .iter()
        .try_fold(root, |v, &n| nth_value(v.as_object_mut()?, n))
}

/// The `n`th value of `map` in key order, walked to from the nearer end.
pub(crate) fn nth_value(map: &mut Map<String, Value>, n: usize) -> Option<&mut Value> {
    let len = map.len();
    if n < len / 2 {
        map.values_mut().nth(n)
    } else {
        map.values_mut().nth_back(len.checked_sub(n + 1)?)
    }
}

/// Writes `value` at `to` in `destination` with the given policy, expanding `[*]` if asked.
pub fn write(
    to: &FieldPath,
    wildcard: bool,
    value: Value,
    policy: ToFieldPathPolicy,
    destination: &mut Value,
) -> Result<(), PatchError> {
    let write_err = |path: &FieldPath, e: AccessError| PatchError::Write {
        path: path.to_string(),
        message: match e {
            AccessError::Invalid(m) => m,
            nf @ AccessError::NotFound { .. } => nf.to_string(),
        },
    };
    if !wildcard {
        return write_one(to, value, policy, destination).map_err(|e| match e {
            WriteError::Access(e) => write_err(to, e),
            WriteError::Merge(m) => PatchError::Write {
                path: to.to_string(),
                message: m,
            },
        });
    }
    let paths = match to.expand_wildcards(destination) {
        Ok(paths) => paths,
        // A wildcard over a null value: nothing to write to, the patch is skipped.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(write_err(to, e)),
    };
    if paths.is_empty() {
        return Err(PatchError::NoWildcardMatch(to.to_string()));
    }
    // Crossplane merges into every expanded path with the same toFieldPath policy.
    for path in &paths {
        write_one(path, value.clone(), policy, destination).map_err(|e| match e {
            WriteError::Access(e) => write_err(path, e),
            WriteError::Merge(m) => PatchError::Write {
                path: path.to_string(),
                message: m,
            },
        })?;
    }
    Ok(())
}

enum WriteError {
    Access(AccessError),
    Merge(String),
}

fn write_one(
    path: &FieldPath,
    value: Value,
    policy: ToFieldPathPolicy,
    destination: &mut Value,
) -> Result<(), WriteError> {
    let (keep, append) = match policy {
        ToFieldPathPolicy::Replace => {
            return path.set(destination, value).map_err(WriteError::Access);
        }
        ToFieldPathPolicy::MergeObjects => (true, false),
        ToFieldPathPolicy::MergeObjectsAppendArrays => (true, true),
        ToFieldPathPolicy::ForceMergeObjects => (false, false),
        ToFieldPathPolicy::ForceMergeObjectsAppendArrays => (false, true),
    };
    let current = path
        .get_opt(destination)
        .map_err(WriteError::Access)?
        .cloned();
    let merged = merge(current, value, keep, append).map_err(WriteError::Merge)?;
    path.set(destination, merged).map_err(WriteError::Access)
}

/// Crossplane's merge of a patch value into the destination value (mergo semantics):
/// `keep` keeps existing non-empty destination values (MergeObjects), otherwise the source wins;
/// `append` appends arrays, dropping source items already in a top-level destination array.
pub fn merge(
    destination: Option<Value>,
    source: Value,
    keep: bool,
    append: bool,
) -> Result<Value, String> {
    let destination = match destination {
        None | Some(Value::Null) => return Ok(source),
        Some(d) => d,
    };
    if source.is_null() {
        return Ok(source);
    }
    let source = match (&destination, source) {
        (Value::Array(d), Value::Array(s)) if append => {
            Value::Array(s.into_iter().filter(|item| !d.contains(item)).collect())
        }
        (_, s) => s,
    };
    // Merge through a one-key wrapper so that top-level arrays and scalars follow map rules.
    let mut dst = Map::new();
    dst.insert("arg".to_owned(), destination);
    let mut src = Map::new();
    src.insert("arg".to_owned(), source);
    merge_maps(&mut dst, src, !keep, append)?;
    Ok(dst.remove("arg").unwrap_or(Value::Null))
}

fn merge_maps(
    dst: &mut Map<String, Value>,
    src: Map<String, Value>,
    overwrite: bool,
    append: bool,
) -> Result<(), String> {
    for (key, s) in src {
        let d = dst.get_mut(&key);
        match (s, d) {
            (Value::Null, _) => {
                if overwrite {
                    dst.insert(key, Value::Null);
                }
            }
            (Value::Object(sm), Some(Value::Object(dm))) => merge_maps(dm, sm, overwrite, append)?,
            (Value::Array(sa), Some(Value::Array(da))) if append => da.extend(sa),
            (Value::Array(sa), d) if append => match d {
                None | Some(Value::Null) => {
                    dst.insert(key, Value::Array(sa));
                }
                Some(other) => {
                    return Err(format!(
                        "failed to merge values: cannot append an array to a {}",
                        type_name(other)
                    ));
                }
            },
            (s, d) => {
                if overwrite || d.is_none_or(|d| is_empty(d)) {
                    dst.insert(key, s);
                }
            }
        }
    }
    Ok(())
}

/// Go's notion of an empty value, which mergo lets a source value replace.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Crossplane writes every patched value through a JSON round trip into Go's `any`: a float64
/// with an integral value prints as an integer. Normalise the same way.
pub fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(i) = integral_float(n) {
                *v = Value::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// The integer [`normalize_numbers`] writes for `n`: `Some` only for a float with an integral
/// value that an `i64` holds exactly.
pub fn integral_float(n: &serde_json::Number) -> Option<i64> {
    if !n.is_f64() {
        return None;
    }
    n.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
        .map(|f| f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_modes_follow_crossplane() {
        let dst = json!({"a": 1, "b": {"x": 1, "l": [1]}, "l": [1, 2], "e": ""});
        let src = json!({"a": 2, "b": {"y": 2, "l": [3]}, "l": [2, 3], "e": "filled", "n": null});
        // (keep, append, expected, reason)
        let cases = [
            (
                true,
                false,
                json!({"a": 1, "b": {"x": 1, "y": 2, "l": [1]}, "l": [1, 2], "e": "filled"}),
                "MergeObjects: destination wins, arrays kept, empty destination values are filled",
            ),
            (
                false,
                false,
                json!({"a": 2, "b": {"x": 1, "y": 2, "l": [3]}, "l": [2, 3], "e": "filled", "n": null}),
                "ForceMergeObjects: source wins, arrays replaced",
            ),
            (
                true,
                true,
                json!({"a": 1, "b": {"x": 1, "y": 2, "l": [1, 3]}, "l": [1, 2, 2, 3], "e": "filled"}),
                "MergeObjectsAppendArrays: nested arrays appended as they are",
            ),
            (
                false,
                true,
                json!({"a": 2, "b": {"x": 1, "y": 2, "l": [1, 3]}, "l": [1, 2, 2, 3], "e": "filled", "n": null}),
                "ForceMergeObjectsAppendArrays",
            ),
        ];
        for (keep, append, want, why) in cases {
            assert_eq!(
                merge(Some(dst.clone()), src.clone(), keep, append),
                Ok(want),
                "{why}"
            );
        }
    }

    #[test]
    fn appending_top_level_arrays_removes_duplicates() {
        let got = merge(Some(json!([1, 2])), json!([2, 3]), true, true);
        assert_eq!(got, Ok(json!([1, 2, 3])));
    }

    #[test]
    fn merging_into_nothing_sets_the_value() {
        assert_eq!(
            merge(None, json!({"a": 1}), true, false),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            merge(Some(Value::Null), json!([1]), true, true),
            Ok(json!([1]))
        );
    }

    #[test]
    fn top_level_scalars_keep_or_replace() {
        assert_eq!(
            merge(Some(json!("a")), json!("b"), true, false),
            Ok(json!("a"))
        );
        assert_eq!(
            merge(Some(json!("a")), json!("b"), false, false),
            Ok(json!("b"))
        );
    }

    #[test]
    fn wildcard_writes_merge_into_every_match_with_the_policy() {
        let to = FieldPath::parse("items[*].tags").expect("parses");
        let mut dst = json!({"items": [{"tags": {"a": 1}}, {"tags": {"b": 2}}]});
        write(
            &to,
            true,
            json!({"c": 3}),
            ToFieldPathPolicy::MergeObjects,
            &mut dst,
        )
        .expect("writes");
        assert_eq!(
            dst,
            json!({"items": [{"tags": {"a": 1, "c": 3}}, {"tags": {"b": 2, "c": 3}}]})
        );
    }

    #[test]
    fn integral_floats_become_integers() {
        let mut v = json!({"a": 3.0, "b": [2.5, 1e3]});
        normalize_numbers(&mut v);
        assert_eq!(v, json!({"a": 3, "b": [2.5, 1000]}));
    }
}
