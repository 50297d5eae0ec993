//! Transforms: the value pipeline of a patch (`map`, `match`, `math`, `string`, `convert`).
//!
//! [`Transform`] is the wire form, field for field Crossplane's. [`Transform::compile`] checks
//! the options once (regexes compiled, required options present) and yields a
//! [`CompiledTransform`] whose [`CompiledTransform::apply`] is a pure function of the input value.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::any_value;

mod apply;
pub mod gofmt;
pub mod quantity;

pub use apply::{
    CompiledTransform, TransformError, TransformErrorReason, apply_all, compile_all,
    normalize_numbers,
};

/// The kinds of transform.
///
/// Values:
/// - `Map`: Looks the input string up in `map`.
/// - `Match`: The result of the first of `match.patterns` the input matches.
/// - `Math`: Arithmetic on a number (`math`).
/// - `String`: A string operation (`string`).
/// - `Convert`: Changes the type of a scalar (`convert`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum TransformType {
    Map,
    Match,
    Math,
    String,
    Convert,
}

/// One transform of a patch (wire form).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transform {
    /// Which transform this is; its options are in the field of the same name.
    #[serde(rename = "type")]
    pub kind: TransformType,
    /// `map`: input string to output value; an input that is not a key is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "map_schema")]
    pub map: Option<BTreeMap<String, Value>>,
    /// `match`: patterns tried in order.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchTransform>,
    /// `math`: the operation and its operand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub math: Option<MathTransform>,
    /// `string`: the operation and its options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringTransform>,
    /// `convert`: the target type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<ConvertTransform>,
}

fn map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// `match`: the first matching pattern's result, or the fallback.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchTransform {
    /// Tried in order; the first that matches gives the result.
    #[serde(default)]
    pub patterns: Vec<MatchPattern>,
    /// The result when no pattern matches and `fallbackTo` is `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub fallback_value: Option<Value>,
    /// `Value` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to: Option<MatchFallbackTo>,
}

/// What a `match` transform returns when no pattern matches.
///
/// Values:
/// - `Value`: `fallbackValue` (`null` when unset).
/// - `Input`: The input, unchanged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum MatchFallbackTo {
    #[default]
    Value,
    Input,
}

/// One pattern of a `match` transform.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchPattern {
    /// `literal` when unset.
    #[serde(rename = "type", default)]
    pub kind: MatchPatternType,
    /// `literal`: the string the input must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// `regexp`: a regular expression the input string must match (anywhere, unless anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
    /// The transform's output when this pattern matches.
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub result: Value,
}

/// How a `match` pattern compares the input.
///
/// Values:
/// - `Literal`: Equality with `literal`.
/// - `Regexp`: A match of `regexp`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum MatchPatternType {
    #[default]
    Literal,
    Regexp,
}

/// `math`: `Multiply` (default), `ClampMin`, `ClampMax`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MathTransform {
    /// `Multiply` when unset.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MathType>,
    /// `Multiply`: the factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiply: Option<i64>,
    /// `ClampMin`: inputs below it become it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_min: Option<i64>,
    /// `ClampMax`: inputs above it become it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_max: Option<i64>,
}

/// The operation of a `math` transform.
///
/// Values:
/// - `Multiply`: The input times `multiply`.
/// - `ClampMin`: The input, at least `clampMin`.
/// - `ClampMax`: The input, at most `clampMax`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum MathType {
    Multiply,
    ClampMin,
    ClampMax,
}

/// `string`: `Format` (default), `Convert`, `TrimPrefix`, `TrimSuffix`, `Regexp`, `Join`, `Replace`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringTransform {
    /// `Format` when unset.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StringTransformType>,
    /// `Format`: a Go `fmt` format with one verb for the input (`db-%s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmt: Option<String>,
    /// `Convert`: the conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<StringConversion>,
    /// `TrimPrefix`/`TrimSuffix`: the prefix or suffix removed (if present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<String>,
    /// `Regexp`: the expression and the group extracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<StringRegexp>,
    /// `Join`: the separator an array's elements are joined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<StringJoin>,
    /// `Replace`: what is replaced, and with what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<StringReplace>,
}

/// The operation of a `string` transform.
///
/// Values:
/// - `Format`: Formats the input with `fmt`.
/// - `Convert`: Converts the input as `convert` names.
/// - `TrimPrefix`: Removes `trim` from the start.
/// - `TrimSuffix`: Removes `trim` from the end.
/// - `Regexp`: Extracts a group of the first match of `regexp.match`; no match is an error.
/// - `Join`: Joins an array's elements with `join.separator`.
/// - `Replace`: Replaces every occurrence of `replace.search` with `replace.replace`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum StringTransformType {
    Format,
    Convert,
    TrimPrefix,
    TrimSuffix,
    Regexp,
    Join,
    Replace,
}

/// A conversion of a `string` transform's `Convert` type.
///
/// Values:
/// - `ToUpper`: Upper case.
/// - `ToLower`: Lower case.
/// - `ToBase64`: Standard base64 with padding.
/// - `FromBase64`: Decodes standard base64; invalid input is an error.
/// - `ToJson`: The input's JSON encoding, as Go's `encoding/json` writes it.
/// - `ToSha1`: Hex SHA-1 of a string's bytes, or of any other value's JSON encoding.
/// - `ToSha256`: Hex SHA-256 of a string's bytes, or of any other value's JSON encoding.
/// - `ToSha512`: Hex SHA-512 of a string's bytes, or of any other value's JSON encoding.
/// - `ToAdler32`: The Adler-32 checksum, in decimal, of a string's bytes or any other value's JSON
///   encoding.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum StringConversion {
    ToUpper,
    ToLower,
    ToBase64,
    FromBase64,
    ToJson,
    ToSha1,
    ToSha256,
    ToSha512,
    ToAdler32,
}

/// The options of a `string` transform's `Regexp` type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringRegexp {
    /// The regular expression (RE2 syntax, as Go's).
    #[serde(rename = "match")]
    pub match_: String,
    /// The capture group returned; 0 (the whole match) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
}

/// The options of a `string` transform's `Join` type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringJoin {
    /// Put between elements; empty when unset.
    #[serde(default)]
    pub separator: String,
}

/// The options of a `string` transform's `Replace` type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringReplace {
    /// The substring replaced, every occurrence.
    #[serde(default)]
    pub search: String,
    /// What it is replaced with; empty deletes it.
    #[serde(default)]
    pub replace: String,
}

/// `convert`: change the type of a scalar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvertTransform {
    /// The type of the output.
    pub to_type: ConvertType,
    /// How a string input is parsed; `none` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ConvertFormat>,
}

/// The output type of a `convert` transform.
///
/// Values:
/// - `String`: A string.
/// - `Int`: A 64-bit integer (the same as `int64`).
/// - `Int64`: A 64-bit integer.
/// - `Bool`: A boolean.
/// - `Float64`: A 64-bit float.
/// - `Object`: An object; from a string with `format: json` only.
/// - `Array`: An array; from a string with `format: json` only.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum ConvertType {
    String,
    Int,
    Int64,
    Bool,
    Float64,
    Object,
    Array,
}

/// How a `convert` transform parses a string input.
///
/// Values:
/// - `None`: As Go's `strconv` parses the target type.
/// - `Quantity`: A Kubernetes quantity (`250m`, `1Gi`), to `float64` only.
/// - `Json`: JSON, to `object` or `array` only.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum ConvertFormat {
    None,
    Quantity,
    Json,
}
