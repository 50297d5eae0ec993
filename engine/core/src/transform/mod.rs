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
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
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
    #[serde(rename = "type")]
    pub kind: TransformType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "map_schema")]
    pub map: Option<BTreeMap<String, Value>>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub math: Option<MathTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringTransform>,
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
    #[serde(default)]
    pub patterns: Vec<MatchPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub fallback_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to: Option<MatchFallbackTo>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MatchFallbackTo {
    #[default]
    Value,
    Input,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchPattern {
    #[serde(rename = "type", default)]
    pub kind: MatchPatternType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    pub result: Value,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchPatternType {
    #[default]
    Literal,
    Regexp,
}

/// `math`: `Multiply` (default), `ClampMin`, `ClampMax`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MathTransform {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MathType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiply: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_max: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MathType {
    Multiply,
    ClampMin,
    ClampMax,
}

/// `string`: `Format` (default), `Convert`, `TrimPrefix`, `TrimSuffix`, `Regexp`, `Join`, `Replace`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringTransform {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StringTransformType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<StringConversion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<StringRegexp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<StringJoin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<StringReplace>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StringTransformType {
    Format,
    Convert,
    TrimPrefix,
    TrimSuffix,
    Regexp,
    Join,
    Replace,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
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

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringRegexp {
    #[serde(rename = "match")]
    pub match_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringJoin {
    #[serde(default)]
    pub separator: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringReplace {
    #[serde(default)]
    pub search: String,
    #[serde(default)]
    pub replace: String,
}

/// `convert`: change the type of a scalar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvertTransform {
    pub to_type: ConvertType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ConvertFormat>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvertType {
    String,
    Int,
    Int64,
    Bool,
    Float64,
    Object,
    Array,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvertFormat {
    None,
    Quantity,
    Json,
}
