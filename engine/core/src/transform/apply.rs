//! Compiling and applying transforms, with Crossplane's semantics and error wording.
//!
//! [`Transform::compile`] validates the options once (required blocks present, regexes compiled,
//! map and match values decoded) and yields a [`CompiledTransform`]; [`CompiledTransform::apply`]
//! is then a pure function of the input value. Values between transforms keep Go's types: a
//! `convert` to `float64` of `3` is the float `3.0`, and map, match and JSON-decoded values carry
//! their numbers as `float64`, as `encoding/json` decodes them. [`apply_all`] finally passes the
//! result through the JSON round trip Crossplane's output takes (integral floats become integers).
//!
//! The behaviour follows function-patch-and-transform (`pt/transforms.go`, `pt/validate.go`);
//! where it differs from it, the difference is documented on the item.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use regex::Regex;
use serde_json::{Number, Value};
use sha1::Digest as _;
use thiserror::Error;

use super::gofmt::{self, GoValue};
use super::quantity::parse_quantity;
use super::{
    ConvertFormat, ConvertType, MatchFallbackTo, MatchPatternType, MathType, StringConversion,
    StringTransformType, Transform, TransformType,
};

/// A transform that could not be compiled or applied. Displays as
/// `transform 1 (math): input is required to be a number for math transformer, got string`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("transform {index} ({kind}): {reason}")]
pub struct TransformError {
    /// Position of the transform in its patch's `transforms` list.
    pub index: usize,
    /// The transform's type.
    pub kind: TransformType,
    /// What was wrong.
    pub reason: TransformErrorReason,
}

/// What went wrong; both kinds are terminal for the render.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransformErrorReason {
    /// The options are invalid; found when compiling. `field` is relative to the transform
    /// (`math.multiply`, `match.patterns[1].regexp`).
    #[error("{field}: {message}")]
    Invalid {
        /// The option, relative to the transform.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The transform cannot handle this input; the message is Crossplane's.
    #[error("{0}")]
    Failed(String),
}

impl TransformType {
    /// The wire name (`map`, `match`, `math`, `string`, `convert`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransformType::Map => "map",
            TransformType::Match => "match",
            TransformType::Math => "math",
            TransformType::String => "string",
            TransformType::Convert => "convert",
        }
    }
}

impl fmt::Display for TransformType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated transform, ready to apply to any number of inputs.
#[derive(Debug, Clone)]
pub struct CompiledTransform {
    index: usize,
    kind: TransformType,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// Values are decoded as Go decodes them; `None` is a `null` value, which Crossplane's
    /// decoder turns into an empty raw message that fails to parse when selected.
    Map(BTreeMap<String, Option<Value>>),
    Match {
        patterns: Vec<(Matcher, Value)>,
        fallback: Fallback,
    },
    Multiply(i64),
    ClampMin(i64),
    ClampMax(i64),
    Format(String),
    Convert(StringConversion),
    TrimPrefix(String),
    TrimSuffix(String),
    Regexp {
        re: Regex,
        source: String,
        group: usize,
    },
    Join(String),
    Replace {
        search: String,
        replace: String,
    },
    ConvertTo {
        to: ConvertType,
        format: ConvertFormat,
    },
}

#[derive(Debug, Clone)]
enum Matcher {
    Literal(String),
    Regexp(Regex),
}

#[derive(Debug, Clone)]
enum Fallback {
    Value(Value),
    Input,
}

impl Transform {
    /// Validate the options and compile regexes once. The transform's index is 0; use
    /// [`compile_all`] for a patch's list.
    pub fn compile(&self) -> Result<CompiledTransform, TransformError> {
        self.compile_at(0)
    }

    pub(crate) fn compile_at(&self, index: usize) -> Result<CompiledTransform, TransformError> {
        let invalid = |field: &str, message: &str| TransformError {
            index,
            kind: self.kind,
            reason: TransformErrorReason::Invalid {
                field: field.to_string(),
                message: message.to_string(),
            },
        };
        let op = match self.kind {
            TransformType::Map => {
                let map = self.map.as_ref().ok_or_else(|| {
                    invalid("map", "given transform type map requires configuration")
                })?;
                if map.is_empty() {
                    return Err(invalid(
                        "map",
                        "at least one pair must be specified if a map transform is specified",
                    ));
                }
                Op::Map(
                    map.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                if v.is_null() {
                                    None
                                } else {
                                    Some(go_decoded(v))
                                },
                            )
                        })
                        .collect(),
                )
            }
            TransformType::Match => {
                let m = self.match_.as_ref().ok_or_else(|| {
                    invalid("match", "given transform type match requires configuration")
                })?;
                if m.patterns.is_empty() {
                    return Err(invalid(
                        "match.patterns",
                        "at least one pattern must be specified if a match transform is specified",
                    ));
                }
                let mut patterns = Vec::with_capacity(m.patterns.len());
                for (i, p) in m.patterns.iter().enumerate() {
                    let matcher = match p.kind {
                        MatchPatternType::Literal => {
                            let literal = p.literal.as_ref().ok_or_else(|| {
                                invalid(
                                    &format!("match.patterns[{i}].literal"),
                                    "literal pattern type requires a literal",
                                )
                            })?;
                            Matcher::Literal(literal.clone())
                        }
                        MatchPatternType::Regexp => {
                            let field = format!("match.patterns[{i}].regexp");
                            let source = p.regexp.as_ref().ok_or_else(|| {
                                invalid(&field, "regexp pattern type requires a regexp")
                            })?;
                            let re = go_regex(source).map_err(|e| {
                                invalid(
                                    &field,
                                    &format!(
                                        "invalid regexp {}: {}",
                                        gofmt::quote(source, false),
                                        regex_reason(&e)
                                    ),
                                )
                            })?;
                            Matcher::Regexp(re)
                        }
                    };
                    patterns.push((matcher, go_decoded(&p.result)));
                }
                // Crossplane reports both fallbacks only when no pattern matches; the mistake is
                // in the options, so it is reported here, once, for every input.
                let fallback = match (m.fallback_to, &m.fallback_value) {
                    (Some(MatchFallbackTo::Input), Some(_)) => {
                        return Err(invalid(
                            "match",
                            "cannot set both a fallback value and the fallback to input flag",
                        ));
                    }
                    (Some(MatchFallbackTo::Input), None) => Fallback::Input,
                    (_, value) => {
                        Fallback::Value(value.as_ref().map(go_decoded).unwrap_or(Value::Null))
                    }
                };
                Op::Match { patterns, fallback }
            }
            TransformType::Math => {
                let m = self.math.as_ref().ok_or_else(|| {
                    invalid("math", "given transform type math requires configuration")
                })?;
                // The Composition CRD defaults `type` to Multiply (function-patch-and-transform's
                // validation would demand it instead).
                match m.kind.unwrap_or(MathType::Multiply) {
                    MathType::Multiply => Op::Multiply(m.multiply.ok_or_else(|| {
                        invalid(
                            "math.multiply",
                            "must specify a value if a multiply math transform is specified",
                        )
                    })?),
                    MathType::ClampMin => Op::ClampMin(m.clamp_min.ok_or_else(|| {
                        invalid(
                            "math.clampMin",
                            "must specify a value if a clamp min math transform is specified",
                        )
                    })?),
                    MathType::ClampMax => Op::ClampMax(m.clamp_max.ok_or_else(|| {
                        invalid(
                            "math.clampMax",
                            "must specify a value if a clamp max math transform is specified",
                        )
                    })?),
                }
            }
            TransformType::String => {
                let s = self.string.as_ref().ok_or_else(|| {
                    invalid(
                        "string",
                        "given transform type string requires configuration",
                    )
                })?;
                // As for math, the CRD default for `type` is Format.
                match s.kind.unwrap_or(StringTransformType::Format) {
                    StringTransformType::Format => Op::Format(s.fmt.clone().ok_or_else(|| {
                        invalid("string.fmt", "format transform requires a format")
                    })?),
                    StringTransformType::Convert => Op::Convert(s.convert.ok_or_else(|| {
                        invalid(
                            "string.convert",
                            "convert transform requires a conversion type",
                        )
                    })?),
                    StringTransformType::TrimPrefix => {
                        Op::TrimPrefix(s.trim.clone().ok_or_else(|| {
                            invalid("string.trim", "trim transform requires a trim value")
                        })?)
                    }
                    StringTransformType::TrimSuffix => {
                        Op::TrimSuffix(s.trim.clone().ok_or_else(|| {
                            invalid("string.trim", "trim transform requires a trim value")
                        })?)
                    }
                    StringTransformType::Regexp => {
                        let r = s.regexp.as_ref().ok_or_else(|| {
                            invalid("string.regexp", "regexp transform requires a regexp")
                        })?;
                        if r.match_.is_empty() {
                            return Err(invalid(
                                "string.regexp.match",
                                "regexp transform requires a match",
                            ));
                        }
                        let re = go_regex(&r.match_).map_err(|e| {
                            invalid(
                                "string.regexp.match",
                                &format!(
                                    "invalid regexp {}: {}",
                                    gofmt::quote(&r.match_, false),
                                    regex_reason(&e)
                                ),
                            )
                        })?;
                        // Crossplane indexes the match with a negative group and panics; refuse it up front.
                        let group = usize::try_from(r.group.unwrap_or(0)).map_err(|_| {
                            invalid("string.regexp.group", "group must not be negative")
                        })?;
                        Op::Regexp {
                            re,
                            source: r.match_.clone(),
                            group,
                        }
                    }
                    StringTransformType::Join => Op::Join(
                        s.join
                            .as_ref()
                            .ok_or_else(|| {
                                invalid("string.join", "join transform requires a join")
                            })?
                            .separator
                            .clone(),
                    ),
                    StringTransformType::Replace => {
                        let r = s.replace.as_ref().ok_or_else(|| {
                            invalid("string.replace", "replace transform requires a replace")
                        })?;
                        if r.search.is_empty() {
                            return Err(invalid(
                                "string.replace.search",
                                "replace transform requires a search",
                            ));
                        }
                        Op::Replace {
                            search: r.search.clone(),
                            replace: r.replace.clone(),
                        }
                    }
                }
            }
            TransformType::Convert => {
                let c = self.convert.as_ref().ok_or_else(|| {
                    invalid(
                        "convert",
                        "given transform type convert requires configuration",
                    )
                })?;
                Op::ConvertTo {
                    to: c.to_type,
                    format: c.format.unwrap_or(ConvertFormat::None),
                }
            }
        };
        Ok(CompiledTransform {
            index,
            kind: self.kind,
            op,
        })
    }
}

/// Compile a patch's transforms; an error names the failing transform's index.
pub fn compile_all(ts: &[Transform]) -> Result<Vec<CompiledTransform>, TransformError> {
    ts.iter()
        .enumerate()
        .map(|(i, t)| t.compile_at(i))
        .collect()
}

/// Apply transforms in order, then normalise numbers as Crossplane's JSON round trip does.
/// An error names the failing transform's index (its position in `ts`).
pub fn apply_all(ts: &[CompiledTransform], input: &Value) -> Result<Value, TransformError> {
    // The first transform reads the input where it is; only its result is owned.
    let Some((first, rest)) = ts.split_first() else {
        return Ok(normalize_numbers(input.clone()));
    };
    let mut value = first
        .apply(input)
        .map_err(|e| TransformError { index: 0, ..e })?;
    for (i, t) in rest.iter().enumerate() {
        value = t
            .apply(&value)
            .map_err(|e| TransformError { index: i + 1, ..e })?;
    }
    normalize_in_place(&mut value);
    Ok(value)
}

/// The JSON round trip of Crossplane's output: floats with an integral value that fits `int64`
/// become integers (Go encodes `3.0` as `3`, and Kubernetes decodes `3` as an `int64`).
pub fn normalize_numbers(mut value: Value) -> Value {
    normalize_in_place(&mut value);
    value
}

/// [`normalize_numbers`] in place: nothing is rebuilt or moved, only numbers are rewritten.
fn normalize_in_place(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() || n.as_i64().is_none() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // -2^63 <= f < 2^63 is exactly the range an int64 holds.
            if f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                *value = Value::from(f as i64);
            } else if let Some(float) = Number::from_f64(f) {
                // An integer beyond int64 is a float64 in Go (and loses its low digits there).
                *n = float;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_in_place),
        Value::Object(map) => map.values_mut().for_each(normalize_in_place),
        _ => {}
    }
}

impl CompiledTransform {
    /// Position of the transform in its patch's `transforms` list
    /// ([`TransformError::index`]).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The transform's type.
    pub fn kind(&self) -> TransformType {
        self.kind
    }

    /// Apply to one input. Numbers keep Go's types (see the module docs); [`apply_all`]
    /// normalises them at the end of the chain.
    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        self.apply_op(input).map_err(|message| TransformError {
            index: self.index,
            kind: self.kind,
            reason: TransformErrorReason::Failed(message),
        })
    }

    fn apply_op(&self, input: &Value) -> Result<Value, String> {
        let go = GoValue::of(input);
        match &self.op {
            Op::Map(pairs) => match go {
                GoValue::Str(key) => match pairs.get(key) {
                    Some(Some(v)) => Ok(v.clone()),
                    Some(None) => Err(format!(
                        "value for key {key} is not valid JSON: unexpected end of JSON input"
                    )),
                    None => Err(format!("key {key} is not found in map")),
                },
                _ => Err(format!(
                    "type {} is not supported for map transform",
                    go.type_name()
                )),
            },
            Op::Match { patterns, fallback } => {
                for (i, (matcher, result)) in patterns.iter().enumerate() {
                    let matched = match (matcher, go) {
                        (Matcher::Literal(l), GoValue::Str(s)) => s == l,
                        (Matcher::Regexp(re), GoValue::Str(s)) => re.is_match(s),
                        (Matcher::Regexp(_), GoValue::Nil) => {
                            return Err(format!(
                                "cannot match pattern at index {i}: unsupported input type 'null'"
                            ));
                        }
                        (_, other) => {
                            return Err(format!(
                                "cannot match pattern at index {i}: unsupported input type '{}'",
                                other.type_name()
                            ));
                        }
                    };
                    if matched {
                        return Ok(result.clone());
                    }
                }
                Ok(match fallback {
                    Fallback::Value(v) => v.clone(),
                    Fallback::Input => input.clone(),
                })
            }
            Op::Multiply(m) => match go {
                GoValue::Int(i) => Ok(Value::from(i.wrapping_mul(*m))),
                GoValue::Float(f) => float_value(f * *m as f64),
                other => Err(not_a_number(other)),
            },
            Op::ClampMin(min) => clamp(go, input, |i| i < *min, *min),
            Op::ClampMax(max) => clamp(go, input, |i| i > *max, *max),
            Op::Format(format) => Ok(Value::String(gofmt::sprintf(format, &[input]))),
            Op::Convert(conversion) => string_convert(*conversion, input).map(Value::String),
            Op::TrimPrefix(trim) => {
                let s = gofmt::sprint_value(input);
                Ok(Value::String(
                    s.strip_prefix(trim.as_str()).unwrap_or(&s).to_string(),
                ))
            }
            Op::TrimSuffix(trim) => {
                let s = gofmt::sprint_value(input);
                Ok(Value::String(
                    s.strip_suffix(trim.as_str()).unwrap_or(&s).to_string(),
                ))
            }
            Op::Regexp { re, source, group } => {
                let s = gofmt::sprint_value(input);
                re.captures(&s)
                    .and_then(|caps| {
                        if *group < caps.len() {
                            Some(
                                caps.get(*group)
                                    .map(|m| m.as_str().to_string())
                                    .unwrap_or_default(),
                            )
                        } else {
                            None
                        }
                    })
                    .map(Value::String)
                    .ok_or_else(|| {
                        format!(
                            "regexp {} had no matches for group {group}",
                            gofmt::quote(source, false)
                        )
                    })
            }
            Op::Join(separator) => match go {
                GoValue::Slice(items) => Ok(Value::String(join_like_crossplane(items, separator))),
                _ => Err("could not parse input array".to_string()),
            },
            Op::Replace { search, replace } => Ok(Value::String(
                gofmt::sprint_value(input).replace(search.as_str(), replace),
            )),
            Op::ConvertTo { to, format } => convert(go, input, *to, *format),
        }
    }
}

/// function-patch-and-transform appends the separator after every element and then cuts the
/// last *byte* when the separator is not empty, so a separator longer than one byte leaves its
/// remainder at the end (`", "` joins `[a b]` as `a, b,`). A cut inside a multi-byte character
/// leaves bytes Go later encodes as one U+FFFD each.
fn join_like_crossplane(items: &[Value], separator: &str) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut joined = String::new();
    for item in items {
        joined.push_str(&gofmt::sprint_value(item));
        joined.push_str(separator);
    }
    if separator.is_empty() {
        return joined;
    }
    let mut bytes = joined.into_bytes();
    bytes.pop();
    go_lossy_utf8(&bytes)
}

/// Bytes as Go's JSON encoder writes a string holding them: each byte of an invalid sequence
/// becomes U+FFFD.
fn go_lossy_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{FFFD}');
                bytes = &rest[1..];
            }
        }
    }
}

/// A float result. Go carries NaN and infinities until it encodes the object, which then fails;
/// a JSON value cannot hold them, so the transform that produces one fails with Go's message.
fn float_value(f: f64) -> Result<Value, String> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| {
        format!(
            "json: unsupported value: {}",
            gofmt::format_float(f, b'g', -1)
        )
    })
}

fn not_a_number(go: GoValue<'_>) -> String {
    format!(
        "input is required to be a number for math transformer, got {}",
        go.type_name()
    )
}

/// Go's `int64(f)` on amd64: truncation, with the "integer indefinite" value for NaN and
/// out-of-range inputs.
fn go_float_to_int(f: f64) -> i64 {
    if f.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn clamp(
    go: GoValue<'_>,
    input: &Value,
    beyond: impl Fn(i64) -> bool,
    limit: i64,
) -> Result<Value, String> {
    let i = match go {
        GoValue::Int(i) => i,
        GoValue::Float(f) => go_float_to_int(f),
        other => return Err(not_a_number(other)),
    };
    Ok(if beyond(i) {
        Value::from(limit)
    } else {
        input.clone()
    })
}

/// A JSON value as Go's `json.Unmarshal` into `interface{}` yields it: every number a float64.
fn go_decoded(v: &Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(go_decoded).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), go_decoded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// string Convert
// ---------------------------------------------------------------------------------------------

fn string_convert(conversion: StringConversion, input: &Value) -> Result<String, String> {
    match conversion {
        StringConversion::ToUpper => Ok(go_to_upper(&gofmt::sprint_value(input))),
        StringConversion::ToLower => Ok(go_to_lower(&gofmt::sprint_value(input))),
        StringConversion::ToJson => {
            gofmt::go_json(input).map_err(|e| format!("cannot marshal to JSON: {e}"))
        }
        StringConversion::ToBase64 => {
            Ok(base64::engine::general_purpose::STANDARD
                .encode(gofmt::sprint_value(input).as_bytes()))
        }
        StringConversion::FromBase64 => go_base64_decode(&gofmt::sprint_value(input))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| format!("string is not valid base64: {e}")),
        StringConversion::ToSha1 => hash_input(input).map(|b| hex(&sha1::Sha1::digest(b))),
        StringConversion::ToSha256 => hash_input(input).map(|b| hex(&sha2::Sha256::digest(b))),
        StringConversion::ToSha512 => hash_input(input).map(|b| hex(&sha2::Sha512::digest(b))),
        StringConversion::ToAdler32 => hash_input(input)
            .map(|b| adler32(&b).to_string())
            .map_err(|e| e.replace("cannot generate hash", "unable to generate Adler checksum")),
    }
}

/// The bytes Crossplane hashes: a string's own bytes, anything else's JSON encoding.
fn hash_input(input: &Value) -> Result<Vec<u8>, String> {
    match input {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => gofmt::go_json(other)
            .map(String::into_bytes)
            .map_err(|e| format!("cannot generate hash: cannot marshal to JSON: {e}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Go's `strings.ToUpper`: simple (one-to-one) case mapping per rune.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToLower`: simple (one-to-one) case mapping per rune.
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut low = c.to_lowercase();
            match (low.next(), low.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

/// Go's `base64.StdEncoding.DecodeString`: padding required, `\r` and `\n` ignored, non-zero
/// trailing bits accepted. Errors read like Go's `illegal base64 data at input byte N`.
fn go_base64_decode(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let cleaned: String = s.chars().filter(|&c| c != '\r' && c != '\n').collect();
    ENGINE.decode(cleaned.as_bytes()).map_err(|e| {
        let offset = match e {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            base64::DecodeError::InvalidLength(len) => len - len % 4,
            base64::DecodeError::InvalidPadding => cleaned.find('=').unwrap_or(cleaned.len()),
        };
        format!("illegal base64 data at input byte {offset}")
    })
}

// ---------------------------------------------------------------------------------------------
// convert
// ---------------------------------------------------------------------------------------------

fn format_name(format: ConvertFormat) -> &'static str {
    match format {
        ConvertFormat::None => "none",
        ConvertFormat::Quantity => "quantity",
        ConvertFormat::Json => "json",
    }
}

fn type_name(t: ConvertType) -> &'static str {
    match t {
        ConvertType::String => "string",
        ConvertType::Int | ConvertType::Int64 => "int64",
        ConvertType::Bool => "bool",
        ConvertType::Float64 => "float64",
        ConvertType::Object => "object",
        ConvertType::Array => "array",
    }
}

/// Crossplane's conversion table. `quantity` applies only to string → float64: Crossplane has no
/// string → int64 quantity conversion, so that pair is "not supported" as it is there.
fn convert(
    go: GoValue<'_>,
    input: &Value,
    to: ConvertType,
    format: ConvertFormat,
) -> Result<Value, String> {
    let to = if to == ConvertType::Int {
        ConvertType::Int64
    } else {
        to
    };
    let from = match go {
        GoValue::Str(_) => ConvertType::String,
        GoValue::Int(_) => ConvertType::Int64,
        GoValue::Float(_) => ConvertType::Float64,
        GoValue::Bool(_) => ConvertType::Bool,
        other => return Err(format!("invalid input type {}", other.type_name())),
    };
    if from == to {
        return Ok(input.clone());
    }
    let unsupported = || {
        format!(
            "conversion from {} to {} is not supported with format {}",
            type_name(from),
            type_name(to),
            format_name(format)
        )
    };
    match (go, to, format) {
        (GoValue::Str(s), ConvertType::Int64, ConvertFormat::None) => {
            go_parse_int(s).map(Value::from)
        }
        (GoValue::Str(s), ConvertType::Bool, ConvertFormat::None) => {
            go_parse_bool(s).map(Value::Bool)
        }
        (GoValue::Str(s), ConvertType::Float64, ConvertFormat::None) => {
            go_parse_float(s).and_then(float_value)
        }
        (GoValue::Str(s), ConvertType::Float64, ConvertFormat::Quantity) => parse_quantity(s)
            .map_err(|e| e.to_string())
            .and_then(|q| float_value(q.to_f64())),
        (GoValue::Str(s), ConvertType::Object, ConvertFormat::Json) => {
            go_unmarshal(s, "map[string]interface {}", |v| {
                matches!(v, Value::Object(_))
            })
        }
        (GoValue::Str(s), ConvertType::Array, ConvertFormat::Json) => {
            go_unmarshal(s, "[]interface {}", |v| matches!(v, Value::Array(_)))
        }
        (GoValue::Int(i), ConvertType::String, ConvertFormat::None) => {
            Ok(Value::String(i.to_string()))
        }
        (GoValue::Int(i), ConvertType::Bool, ConvertFormat::None) => Ok(Value::Bool(i == 1)),
        (GoValue::Int(i), ConvertType::Float64, ConvertFormat::None) => float_value(i as f64),
        (GoValue::Bool(b), ConvertType::String, ConvertFormat::None) => {
            Ok(Value::String(b.to_string()))
        }
        (GoValue::Bool(b), ConvertType::Int64, ConvertFormat::None) => {
            Ok(Value::from(i64::from(b)))
        }
        (GoValue::Bool(b), ConvertType::Float64, ConvertFormat::None) => {
            float_value(if b { 1.0 } else { 0.0 })
        }
        (GoValue::Float(f), ConvertType::String, ConvertFormat::None) => {
            Ok(Value::String(gofmt::format_float(f, b'f', -1)))
        }
        (GoValue::Float(f), ConvertType::Int64, ConvertFormat::None) => {
            Ok(Value::from(go_float_to_int(f)))
        }
        (GoValue::Float(f), ConvertType::Bool, ConvertFormat::None) => Ok(Value::Bool(f == 1.0)),
        _ => Err(unsupported()),
    }
}

fn num_error(func: &str, s: &str, what: &str) -> String {
    format!("strconv.{func}: parsing {}: {what}", gofmt::quote(s, false))
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(num_error("ParseInt", s, "invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| num_error("ParseInt", s, "value out of range"))
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(num_error("ParseBool", s, "invalid syntax")),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input (and `inf`, `infinity`, `nan`).
/// Hexadecimal floats and `_` digit separators, which Go also accepts, are rejected.
fn go_parse_float(s: &str) -> Result<f64, String> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let decimal_syntax = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !special && !decimal_syntax {
        return Err(num_error("ParseFloat", s, "invalid syntax"));
    }
    let f: f64 = s
        .parse()
        .map_err(|_| num_error("ParseFloat", s, "invalid syntax"))?;
    if f.is_infinite() && !special {
        return Err(num_error("ParseFloat", s, "value out of range"));
    }
    Ok(f)
}

/// Go's `json.Unmarshal([]byte(s), &target)` where the target is a map or a slice: `null`
/// leaves it nil, other JSON kinds are a type error, numbers decode as float64.
fn go_unmarshal(s: &str, target: &str, fits: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| {
        if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            format!("invalid JSON: {e}")
        }
    })?;
    if v.is_null() || fits(&v) {
        return Ok(go_decoded(&v));
    }
    let kind = match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        _ => "object",
    };
    Err(format!(
        "json: cannot unmarshal {kind} into Go value of type {target}"
    ))
}

// ---------------------------------------------------------------------------------------------
// Go regular expressions
// ---------------------------------------------------------------------------------------------

/// Compile an RE2 pattern with Go's semantics: `\d \w \s \b` are ASCII-only in Go (Unicode in
/// the `regex` crate), `[` inside a class is literal, `\Q…\E` quotes text, a brace that does
/// not start a repetition is literal and `\123` is an octal escape. Not reproduced: Go's limit of
/// 1000 on repetition counts.
pub(crate) fn go_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&translate_go_regex(pattern))
        .octal(true)
        .build()
}

/// Why a pattern does not compile, on one line. The regex crate prints the pattern with a caret
/// under the fault and the reason below; the pattern is already quoted beside this, and the caret
/// would point into the translated pattern, so only the reason is kept.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

fn translate_go_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut class_start = false; // just after `[` or `[^`
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            i += 2;
            class_start = false;
            let replacement = match (e, in_class) {
                ('d', false) => Some("[0-9]"),
                ('D', _) => Some("[^0-9]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('W', _) => Some("[^0-9A-Za-z_]"),
                ('s', false) => Some("[\\t\\n\\f\\r ]"),
                ('S', _) => Some("[^\\t\\n\\f\\r ]"),
                ('d', true) => Some("0-9"),
                ('w', true) => Some("0-9A-Za-z_"),
                ('s', true) => Some("\\t\\n\\f\\r "),
                ('b', false) => Some("(?-u:\\b)"),
                ('B', false) => Some("(?-u:\\B)"),
                _ => None,
            };
            if let Some(r) = replacement {
                out.push_str(r);
            } else if e == 'Q' {
                let mut literal = String::new();
                while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                    literal.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    i += 2;
                }
                for ch in literal.chars() {
                    if in_class {
                        out.push('\\');
                        out.push(ch);
                    } else {
                        out.push_str(&regex::escape(&ch.to_string()));
                    }
                }
            } else {
                out.push('\\');
                out.push(e);
            }
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => {
                    in_class = false;
                    out.push(']');
                }
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class like [:alpha:]; copy through its closing ":]".
                    let rest: String = chars[i..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        class_start = false;
                        continue;
                    }
                    out.push_str("\\[");
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if out.ends_with('-') => out.push_str("\\-"),
                _ => out.push(c),
            }
            class_start = class_start && c == '^' && out.ends_with("[^");
            i += 1;
            continue;
        }
        if c == '{' && !is_repetition(&chars[i..]) {
            // RE2 reads a brace that does not start `{n}`, `{n,}` or `{n,m}` literally.
            out.push_str("\\{");
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
            out.push('[');
            if chars.get(i + 1) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `s` (starting at `{`) is a counted repetition `{n}`, `{n,}` or `{n,m}`.
fn is_repetition(s: &[char]) -> bool {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if i < s.len() && s[i] == ',' {
        i += 1;
        digits(&mut i);
    }
    i < s.len() && s[i] == '}'
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn transform(v: Value) -> Transform {
        serde_json::from_value(v).unwrap()
    }

    fn run(t: Value, input: Value) -> Result<Value, String> {
        let compiled = compile_all(&[transform(t)]).map_err(|e| e.to_string())?;
        apply_all(&compiled, &input).map_err(|e| e.to_string())
    }

    /// (transform, input, expected output, why)
    fn check_ok(rows: Vec<(Value, Value, Value, &str)>) {
        for (t, input, want, reason) in rows {
            assert_eq!(
                run(t.clone(), input.clone()),
                Ok(want),
                "{reason}: {t} on {input}"
            );
        }
    }

    /// (transform, input, expected error, why)
    fn check_err(rows: Vec<(Value, Value, &str, &str)>) {
        for (t, input, want, reason) in rows {
            assert_eq!(
                run(t.clone(), input.clone()),
                Err(want.to_string()),
                "{reason}: {t} on {input}"
            );
        }
    }

    #[test]
    fn map_transforms_look_up_string_keys() {
        check_ok(vec![
            (
                json!({"type": "map", "map": {"us": "us-east-1"}}),
                json!("us"),
                json!("us-east-1"),
                "string value",
            ),
            (
                json!({"type": "map", "map": {"a": {"x": [1, 2]}}}),
                json!("a"),
                json!({"x": [1, 2]}),
                "any JSON value",
            ),
            (
                json!({"type": "map", "map": {"a": 1.5}}),
                json!("a"),
                json!(1.5),
                "float value",
            ),
            (
                json!({"type": "map", "map": {"a": 2}}),
                json!("a"),
                json!(2),
                "numbers come back as integers after the round trip",
            ),
        ]);
        check_err(vec![
            (
                json!({"type": "map", "map": {"a": 1}}),
                json!("b"),
                "transform 0 (map): key b is not found in map",
                "missing key",
            ),
            (
                json!({"type": "map", "map": {"a": 1}}),
                json!(1),
                "transform 0 (map): type int64 is not supported for map transform",
                "input must be a string",
            ),
            (
                json!({"type": "map", "map": {"a": 1}}),
                Value::Null,
                "transform 0 (map): type <nil> is not supported for map transform",
                "nil input",
            ),
            (
                json!({"type": "map", "map": {"a": null}}),
                json!("a"),
                "transform 0 (map): value for key a is not valid JSON: unexpected end of JSON input",
                "a null value is an empty raw message in Crossplane",
            ),
            (
                json!({"type": "map"}),
                json!("a"),
                "transform 0 (map): map: given transform type map requires configuration",
                "no map block",
            ),
            (
                json!({"type": "map", "map": {}}),
                json!("a"),
                "transform 0 (map): map: at least one pair must be specified if a map transform is specified",
                "empty map",
            ),
        ]);
    }

    #[test]
    fn map_values_are_go_floats_until_the_round_trip() {
        let t = compile_all(&[
            transform(json!({"type": "map", "map": {"a": 2}})),
            transform(json!({"type": "string", "string": {"fmt": "%d"}})),
        ])
        .unwrap();
        assert_eq!(apply_all(&t, &json!("a")).unwrap(), json!("%!d(float64=2)"));
    }

    #[test]
    fn match_transforms_pick_the_first_matching_pattern() {
        let lit = |l: &str, r: Value| json!({"type": "literal", "literal": l, "result": r});
        let re = |p: &str, r: Value| json!({"type": "regexp", "regexp": p, "result": r});
        check_ok(vec![
            (
                json!({"type": "match", "match": {"patterns": [lit("a", json!(1)), lit("b", json!(2))]}}),
                json!("b"),
                json!(2),
                "literal",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("^a", json!("x")), lit("abc", json!("y"))]}}),
                json!("abc"),
                json!("x"),
                "first match wins",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("b", json!(true))]}}),
                json!("abc"),
                json!(true),
                "regexps are unanchored",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("^b$", json!(true))]}}),
                json!("abc"),
                Value::Null,
                "no match and no fallback is null",
            ),
            (
                json!({"type": "match", "match": {"patterns": [lit("x", json!(1))], "fallbackValue": "fb"}}),
                json!("y"),
                json!("fb"),
                "fallback value",
            ),
            (
                json!({"type": "match", "match": {"patterns": [lit("x", json!(1))], "fallbackTo": "Input"}}),
                json!("y"),
                json!("y"),
                "fallback to input",
            ),
            (
                json!({"type": "match", "match": {"patterns": [lit("x", json!(1))], "fallbackTo": "Value", "fallbackValue": 3}}),
                json!("y"),
                json!(3),
                "explicit fallback to value",
            ),
            (
                json!({"type": "match", "match": {"patterns": [{"literal": "x", "result": 1}]}}),
                json!("x"),
                json!(1),
                "pattern type defaults to literal",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("^\\d+$", json!("digits"))], "fallbackValue": "other"}}),
                json!("١٢"),
                json!("other"),
                "\\d is ASCII-only as in Go",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("[[]", json!("bracket"))]}}),
                json!("a[b"),
                json!("bracket"),
                "[ inside a class is literal as in Go",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("\\Qa.b\\E", json!("quoted"))], "fallbackValue": "no"}}),
                json!("axb"),
                json!("no"),
                "\\Q quotes metacharacters",
            ),
        ]);
        check_err(vec![
            (
                json!({"type": "match", "match": {"patterns": [lit("a", json!(1))]}}),
                json!(5),
                "transform 0 (match): cannot match pattern at index 0: unsupported input type 'int64'",
                "literal patterns need a string",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("a", json!(1))]}}),
                Value::Null,
                "transform 0 (match): cannot match pattern at index 0: unsupported input type 'null'",
                "regexp patterns name nil as null",
            ),
            (
                json!({"type": "match", "match": {"patterns": [lit("a", json!(1))]}}),
                Value::Null,
                "transform 0 (match): cannot match pattern at index 0: unsupported input type '<nil>'",
                "literal patterns name nil by its Go type",
            ),
            (
                json!({"type": "match", "match": {"patterns": [re("a", json!(1))]}}),
                json!([1]),
                "transform 0 (match): cannot match pattern at index 0: unsupported input type '[]interface {}'",
                "regexp patterns need a string",
            ),
            (
                json!({"type": "match"}),
                json!("a"),
                "transform 0 (match): match: given transform type match requires configuration",
                "no match block",
            ),
            (
                json!({"type": "match", "match": {"patterns": []}}),
                json!("a"),
                "transform 0 (match): match.patterns: at least one pattern must be specified if a match transform is specified",
                "no patterns",
            ),
            (
                json!({"type": "match", "match": {"patterns": [{"type": "literal", "result": 1}]}}),
                json!("a"),
                "transform 0 (match): match.patterns[0].literal: literal pattern type requires a literal",
                "literal missing",
            ),
            (
                json!({"type": "match", "match": {"patterns": [{"type": "regexp", "result": 1}]}}),
                json!("a"),
                "transform 0 (match): match.patterns[0].regexp: regexp pattern type requires a regexp",
                "regexp missing",
            ),
            (
                json!({"type": "match", "match": {"patterns": [lit("a", json!(1))], "fallbackTo": "Input", "fallbackValue": "x"}}),
                json!("a"),
                "transform 0 (match): match: cannot set both a fallback value and the fallback to input flag",
                "both fallbacks",
            ),
        ]);
        let bad = run(
            json!({"type": "match", "match": {"patterns": [re("(", json!(1))]}}),
            json!("a"),
        )
        .unwrap_err();
        assert_eq!(
            bad,
            "transform 0 (match): match.patterns[0].regexp: invalid regexp \"(\": unclosed group"
        );
        let bad = run(
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "a[z-a]"}}}),
            json!("a"),
        )
        .unwrap_err();
        assert!(
            bad.starts_with(
                "transform 0 (string): string.regexp.match: invalid regexp \"a[z-a]\": "
            ) && !bad.contains('\n'),
            "one line naming the field and the reason: {bad}"
        );
    }

    #[test]
    fn math_transforms_multiply_and_clamp() {
        check_ok(vec![
            (
                json!({"type": "math", "math": {"multiply": 3}}),
                json!(2),
                json!(6),
                "type defaults to Multiply",
            ),
            (
                json!({"type": "math", "math": {"type": "Multiply", "multiply": 2}}),
                json!(1.5),
                json!(3),
                "float input, integral result normalised",
            ),
            (
                json!({"type": "math", "math": {"type": "Multiply", "multiply": 2}}),
                json!(1.25),
                json!(2.5),
                "float input stays float",
            ),
            (
                json!({"type": "math", "math": {"type": "Multiply", "multiply": 2}}),
                json!(i64::MAX),
                json!(-2),
                "int64 overflow wraps as in Go",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 10}}),
                json!(5),
                json!(10),
                "below the minimum",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 10}}),
                json!(15),
                json!(15),
                "above the minimum",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 10}}),
                json!(9.9),
                json!(10),
                "floats compare truncated",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 10}}),
                json!(10.5),
                json!(10.5),
                "the untouched float is returned",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 10}}),
                json!(10.9),
                json!(10.9),
                "truncated 10 is not above 10",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 10}}),
                json!(11),
                json!(10),
                "above the maximum",
            ),
        ]);
        check_err(vec![
            (
                json!({"type": "math", "math": {"multiply": 2}}),
                json!("3"),
                "transform 0 (math): input is required to be a number for math transformer, got string",
                "strings are not numbers",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 1}}),
                Value::Null,
                "transform 0 (math): input is required to be a number for math transformer, got <nil>",
                "nil is not a number",
            ),
            (
                json!({"type": "math"}),
                json!(1),
                "transform 0 (math): math: given transform type math requires configuration",
                "no math block",
            ),
            (
                json!({"type": "math", "math": {"type": "Multiply"}}),
                json!(1),
                "transform 0 (math): math.multiply: must specify a value if a multiply math transform is specified",
                "multiply missing",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMin"}}),
                json!(1),
                "transform 0 (math): math.clampMin: must specify a value if a clamp min math transform is specified",
                "clampMin missing",
            ),
            (
                json!({"type": "math", "math": {"type": "ClampMax"}}),
                json!(1),
                "transform 0 (math): math.clampMax: must specify a value if a clamp max math transform is specified",
                "clampMax missing",
            ),
            (
                json!({"type": "math", "math": {"multiply": 10}}),
                json!(1e308),
                "transform 0 (math): json: unsupported value: +Inf",
                "an infinite result cannot be encoded",
            ),
        ]);
        assert!(
            serde_json::from_value::<Transform>(
                json!({"type": "math", "math": {"type": "multiply", "multiply": 1}})
            )
            .is_err()
        );
    }

    #[test]
    fn string_transforms_format_and_convert() {
        let s = |v: Value| json!({"type": "string", "string": v});
        check_ok(vec![
            (
                s(json!({"fmt": "db-%s"})),
                json!("x"),
                json!("db-x"),
                "type defaults to Format",
            ),
            (
                s(json!({"type": "Format", "fmt": "%d-%s"})),
                json!(1),
                json!("1-%!s(MISSING)"),
                "Go's missing-argument marker",
            ),
            (
                s(json!({"type": "Format", "fmt": "fixed"})),
                json!("x"),
                json!("fixed%!(EXTRA string=x)"),
                "Go's extra-argument marker",
            ),
            (
                s(json!({"type": "Format", "fmt": "%v"})),
                json!({"b": 1, "a": [true]}),
                json!("map[a:[true] b:1]"),
                "maps print like Go",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToUpper"})),
                json!("abc"),
                json!("ABC"),
                "upper",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToUpper"})),
                json!("straße"),
                json!("STRAßE"),
                "Go maps runes one to one",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToLower"})),
                json!("ABC"),
                json!("abc"),
                "lower",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToUpper"})),
                json!(true),
                json!("TRUE"),
                "non-strings print with %v first",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToBase64"})),
                json!("hello"),
                json!("aGVsbG8="),
                "base64",
            ),
            (
                s(json!({"type": "Convert", "convert": "FromBase64"})),
                json!("aGVsbG8="),
                json!("hello"),
                "from base64",
            ),
            (
                s(json!({"type": "Convert", "convert": "FromBase64"})),
                json!("aGVs\nbG8="),
                json!("hello"),
                "newlines are ignored as in Go",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToJson"})),
                json!({"b": "<", "a": 1.5}),
                json!("{\"a\":1.5,\"b\":\"\\u003c\"}"),
                "Go's JSON encoding",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToJson"})),
                json!("x"),
                json!("\"x\""),
                "JSON of a string",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToSha1"})),
                json!("hello"),
                json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
                "sha1 of the raw string",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToSha256"})),
                json!("hello"),
                json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
                "sha256",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToSha512"})),
                json!(""),
                json!(
                    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
                ),
                "sha512 of the empty string",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToSha256"})),
                json!({"a": 1}),
                json!("015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"),
                "non-strings hash their JSON encoding",
            ),
            (
                s(json!({"type": "Convert", "convert": "ToAdler32"})),
                json!("hello"),
                json!("103547413"),
                "adler32 in decimal",
            ),
            (
                s(json!({"type": "TrimPrefix", "trim": "db-"})),
                json!("db-main"),
                json!("main"),
                "trim prefix",
            ),
            (
                s(json!({"type": "TrimSuffix", "trim": "-x"})),
                json!("a-x"),
                json!("a"),
                "trim suffix",
            ),
            (
                s(json!({"type": "TrimPrefix", "trim": "z"})),
                json!("abc"),
                json!("abc"),
                "absent prefix is untouched",
            ),
            (
                s(json!({"type": "TrimSuffix", "trim": "5"})),
                json!(1.5),
                json!("1."),
                "numbers trim their %v form",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "my-([0-9]+)-x"}})),
                json!("my-12-x"),
                json!("my-12-x"),
                "whole match by default",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "my-([0-9]+)-x", "group": 1}})),
                json!("a my-12-x"),
                json!("12"),
                "capture group",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "a(z)?", "group": 1}})),
                json!("a"),
                json!(""),
                "an unmatched optional group is empty",
            ),
            (
                s(json!({"type": "Join", "join": {"separator": ", "}})),
                json!(["a", 1, 1.5, true, null]),
                json!("a, 1, 1.5, true, <nil>,"),
                "join prints %v and, like Crossplane, cuts only one byte of the last separator",
            ),
            (
                s(json!({"type": "Join", "join": {"separator": ","}})),
                json!(["a", "b"]),
                json!("a,b"),
                "single-byte separator",
            ),
            (
                s(json!({"type": "Join", "join": {"separator": "→"}})),
                json!(["a", "b"]),
                json!("a→b\u{FFFD}\u{FFFD}"),
                "cutting one byte of a multi-byte separator leaves invalid bytes",
            ),
            (
                s(json!({"type": "Join", "join": {"separator": ""}})),
                json!([]),
                json!(""),
                "empty array",
            ),
            (
                s(json!({"type": "Replace", "replace": {"search": "a", "replace": "b"}})),
                json!("banana"),
                json!("bbnbnb"),
                "replace all",
            ),
            (
                s(json!({"type": "Replace", "replace": {"search": "a"}})),
                json!("banana"),
                json!("bnn"),
                "replace defaults to removal",
            ),
        ]);
        check_err(vec![
            (
                s(json!({"type": "Convert", "convert": "FromBase64"})),
                json!("a$"),
                "transform 0 (string): string is not valid base64: illegal base64 data at input byte 1",
                "bad base64",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "x(y)"}})),
                json!("abc"),
                "transform 0 (string): regexp \"x(y)\" had no matches for group 0",
                "no match",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "a", "group": 1}})),
                json!("abc"),
                "transform 0 (string): regexp \"a\" had no matches for group 1",
                "missing group",
            ),
            (
                s(json!({"type": "Join", "join": {"separator": ","}})),
                json!("a"),
                "transform 0 (string): could not parse input array",
                "join needs an array",
            ),
            (
                json!({"type": "string"}),
                json!("a"),
                "transform 0 (string): string: given transform type string requires configuration",
                "no string block",
            ),
            (
                s(json!({"type": "Format"})),
                json!("a"),
                "transform 0 (string): string.fmt: format transform requires a format",
                "fmt missing",
            ),
            (
                s(json!({})),
                json!("a"),
                "transform 0 (string): string.fmt: format transform requires a format",
                "default Format without fmt",
            ),
            (
                s(json!({"type": "Convert"})),
                json!("a"),
                "transform 0 (string): string.convert: convert transform requires a conversion type",
                "convert missing",
            ),
            (
                s(json!({"type": "TrimPrefix"})),
                json!("a"),
                "transform 0 (string): string.trim: trim transform requires a trim value",
                "trim missing",
            ),
            (
                s(json!({"type": "Regexp"})),
                json!("a"),
                "transform 0 (string): string.regexp: regexp transform requires a regexp",
                "regexp missing",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": ""}})),
                json!("a"),
                "transform 0 (string): string.regexp.match: regexp transform requires a match",
                "empty match",
            ),
            (
                s(json!({"type": "Regexp", "regexp": {"match": "a", "group": -1}})),
                json!("a"),
                "transform 0 (string): string.regexp.group: group must not be negative",
                "negative group",
            ),
            (
                s(json!({"type": "Join"})),
                json!("a"),
                "transform 0 (string): string.join: join transform requires a join",
                "join missing",
            ),
            (
                s(json!({"type": "Replace"})),
                json!("a"),
                "transform 0 (string): string.replace: replace transform requires a replace",
                "replace missing",
            ),
            (
                s(json!({"type": "Replace", "replace": {"search": "", "replace": "x"}})),
                json!("a"),
                "transform 0 (string): string.replace.search: replace transform requires a search",
                "empty search",
            ),
        ]);
    }

    #[test]
    fn convert_transforms_change_scalar_types() {
        let c = |to: &str| json!({"type": "convert", "convert": {"toType": to}});
        let cf =
            |to: &str, f: &str| json!({"type": "convert", "convert": {"toType": to, "format": f}});
        check_ok(vec![
            (c("int64"), json!("42"), json!(42), "string to int64"),
            (c("int"), json!("-7"), json!(-7), "int means int64"),
            (c("int"), json!(7), json!(7), "same type is a no-op"),
            (
                c("string"),
                json!("x"),
                json!("x"),
                "string to string is a no-op",
            ),
            (c("bool"), json!("True"), json!(true), "ParseBool spellings"),
            (c("bool"), json!("0"), json!(false), "ParseBool zero"),
            (c("float64"), json!("1.5"), json!(1.5), "string to float"),
            (
                c("float64"),
                json!("2"),
                json!(2),
                "integral floats normalise to integers",
            ),
            (
                cf("float64", "quantity"),
                json!("1500m"),
                json!(1.5),
                "quantity to float",
            ),
            (
                cf("float64", "quantity"),
                json!("2Gi"),
                json!(2147483648i64),
                "binary quantity",
            ),
            (
                cf("object", "json"),
                json!("{\"a\": [1, 2.5]}"),
                json!({"a": [1, 2.5]}),
                "JSON object",
            ),
            (
                cf("array", "json"),
                json!("[1, \"x\"]"),
                json!([1, "x"]),
                "JSON array",
            ),
            (
                cf("object", "json"),
                json!("null"),
                Value::Null,
                "JSON null decodes to nil",
            ),
            (c("string"), json!(42), json!("42"), "int to string"),
            (c("bool"), json!(1), json!(true), "one is true"),
            (c("bool"), json!(2), json!(false), "only one is true"),
            (
                c("float64"),
                json!(3),
                json!(3),
                "int to float, normalised at the end",
            ),
            (c("string"), json!(true), json!("true"), "bool to string"),
            (c("int64"), json!(true), json!(1), "bool to int"),
            (c("float64"), json!(false), json!(0), "bool to float"),
            (c("string"), json!(1.5), json!("1.5"), "float to string"),
            (
                c("string"),
                json!(1e21),
                json!("1000000000000000000000"),
                "float to string never uses an exponent",
            ),
            (c("int64"), json!(-2.9), json!(-2), "float to int truncates"),
            (c("bool"), json!(1.0), json!(true), "float one is true"),
        ]);
        check_err(vec![
            (
                c("int64"),
                json!("abc"),
                "transform 0 (convert): strconv.ParseInt: parsing \"abc\": invalid syntax",
                "not an integer",
            ),
            (
                c("int64"),
                json!("99999999999999999999"),
                "transform 0 (convert): strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
                "integer overflow",
            ),
            (
                c("bool"),
                json!("yes"),
                "transform 0 (convert): strconv.ParseBool: parsing \"yes\": invalid syntax",
                "not a bool",
            ),
            (
                c("float64"),
                json!("1e400"),
                "transform 0 (convert): strconv.ParseFloat: parsing \"1e400\": value out of range",
                "float overflow",
            ),
            (
                c("float64"),
                json!("x1"),
                "transform 0 (convert): strconv.ParseFloat: parsing \"x1\": invalid syntax",
                "not a float",
            ),
            (
                cf("float64", "quantity"),
                json!("1x"),
                "transform 0 (convert): quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "bad quantity",
            ),
            (
                cf("int64", "quantity"),
                json!("1Gi"),
                "transform 0 (convert): conversion from string to int64 is not supported with format quantity",
                "Crossplane only converts quantities to float64",
            ),
            (
                c("object"),
                json!("{}"),
                "transform 0 (convert): conversion from string to object is not supported with format none",
                "objects need the json format",
            ),
            (
                cf("object", "json"),
                json!("[1]"),
                "transform 0 (convert): json: cannot unmarshal array into Go value of type map[string]interface {}",
                "wrong JSON kind",
            ),
            (
                cf("array", "json"),
                json!(""),
                "transform 0 (convert): unexpected end of JSON input",
                "empty JSON",
            ),
            (
                c("string"),
                json!({"a": 1}),
                "transform 0 (convert): invalid input type map[string]interface {}",
                "objects are not convertible",
            ),
            (
                c("object"),
                json!({"a": 1}),
                "transform 0 (convert): invalid input type map[string]interface {}",
                "not even to object",
            ),
            (
                c("string"),
                Value::Null,
                "transform 0 (convert): invalid input type <nil>",
                "nil input",
            ),
            (
                cf("bool", "json"),
                json!(1),
                "transform 0 (convert): conversion from int64 to bool is not supported with format json",
                "the format is part of the pair",
            ),
            (
                json!({"type": "convert"}),
                json!(1),
                "transform 0 (convert): convert: given transform type convert requires configuration",
                "no convert block",
            ),
        ]);
    }

    #[test]
    fn chains_keep_go_types_between_transforms() {
        let t = compile_all(&[
            transform(json!({"type": "convert", "convert": {"toType": "float64"}})),
            transform(json!({"type": "string", "string": {"fmt": "%T"}})),
        ])
        .unwrap();
        assert_eq!(apply_all(&t, &json!(3)).unwrap(), json!("float64"));
        let t = compile_all(&[
            transform(json!({"type": "convert", "convert": {"toType": "float64"}})),
            transform(json!({"type": "string", "string": {"fmt": "%d"}})),
        ])
        .unwrap();
        assert_eq!(apply_all(&t, &json!(3)).unwrap(), json!("%!d(float64=3)"));
    }

    #[test]
    fn errors_name_the_failing_transform_index_and_type() {
        let t = compile_all(&[
            transform(json!({"type": "string", "string": {"fmt": "%s"}})),
            transform(json!({"type": "math", "math": {"multiply": 2}})),
        ])
        .unwrap();
        let err = apply_all(&t, &json!("x")).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.kind, TransformType::Math);
        assert_eq!(
            err.to_string(),
            "transform 1 (math): input is required to be a number for math transformer, got string"
        );

        let err = compile_all(&[
            transform(json!({"type": "math", "math": {"multiply": 2}})),
            transform(json!({"type": "map", "map": {}})),
        ])
        .unwrap_err();
        assert_eq!(err.index, 1);
        assert!(matches!(err.reason, TransformErrorReason::Invalid { .. }));
    }

    #[test]
    fn normalisation_turns_integral_floats_into_integers_everywhere() {
        let v = json!({"a": [1.0, 2.5, {"b": -0.0}], "c": 9.3e18, "d": 1e300, "e": u64::MAX});
        assert_eq!(
            normalize_numbers(v),
            json!({"a": [1, 2.5, {"b": 0}], "c": 9.3e18, "d": 1e300, "e": 1.8446744073709552e19})
        );
    }

    #[test]
    fn go_regex_translation_keeps_go_semantics() {
        let rows: &[(&str, &str, bool, &str)] = &[
            ("^\\w+$", "héllo", false, "\\w is ASCII"),
            ("^\\w+$", "hello_1", true, "\\w matches ASCII words"),
            ("^[\\d.]+$", "1.5", true, "\\d inside a class"),
            ("^\\s$", "\u{a0}", false, "\\s is ASCII"),
            ("a\\b", "a b", true, "ASCII word boundary"),
            ("^[a&&b]$", "&", true, "&& is literal in Go classes"),
            ("^[]a]$", "]", true, "a leading ] is literal"),
            ("^[[:alpha:]]+$", "abc", true, "POSIX classes"),
            ("(?i)ABC", "xabcx", true, "flags"),
            (
                "^\\${name}$",
                "${name}",
                true,
                "a brace without a count is literal",
            ),
            ("^a{2}$", "aa", true, "counted repetition"),
            ("^a{1,}$", "aaa", true, "open repetition"),
        ];
        for (pattern, input, want, reason) in rows {
            let re = go_regex(pattern).unwrap_or_else(|e| panic!("{reason}: {pattern}: {e}"));
            assert_eq!(
                re.is_match(input),
                *want,
                "{reason}: {pattern} on {input:?}"
            );
        }
    }

    mod fuzz {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::super::*;

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1e20f64..1e20).prop_map(Value::from),
                "\\PC{0,6}".prop_map(Value::from),
                prop_oneof![
                    "-?[0-9]{1,4}",
                    "[0-9.]{1,4}(m|Ki|Gi|e3|E|n)?",
                    "true|false|1|0|True|t",
                    "\\{\"a\": ?[0-9.]{1,3}\\}",
                    "\\[[0-9], ?\"x\"\\]",
                    "[A-Za-z0-9+/]{0,6}={0,2}",
                ]
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-c]", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn opt<T: std::fmt::Debug + Clone + 'static>(
            s: impl Strategy<Value = T> + 'static,
        ) -> BoxedStrategy<Option<T>> {
            prop_oneof![Just(None), s.prop_map(Some)].boxed()
        }

        fn set(m: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>) {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        }

        fn arb_transform() -> impl Strategy<Value = Value> {
            let pattern_text = "[a-c.*+?()\\[\\]^$\\\\{}0-9dws|]{0,6}";
            let map = prop::collection::btree_map("[a-c]{0,2}", arb_json(), 0..3)
                .prop_map(|m| json!({"type": "map", "map": m}));
            let pattern = (
                prop_oneof![Just("literal"), Just("regexp")],
                opt(pattern_text),
                opt(pattern_text),
                arb_json(),
            )
                .prop_map(|(kind, literal, regexp, result)| {
                    let mut p = serde_json::Map::new();
                    p.insert("type".into(), json!(kind));
                    set(&mut p, "literal", literal.map(Value::from));
                    set(&mut p, "regexp", regexp.map(Value::from));
                    p.insert("result".into(), result);
                    Value::Object(p)
                });
            let matcher = (
                prop::collection::vec(pattern, 0..3),
                opt(arb_json()),
                opt(prop_oneof![Just("Value"), Just("Input")]),
            )
                .prop_map(|(patterns, fallback_value, fallback_to)| {
                    let mut m = serde_json::Map::new();
                    m.insert("patterns".into(), Value::Array(patterns));
                    set(&mut m, "fallbackValue", fallback_value);
                    set(&mut m, "fallbackTo", fallback_to.map(Value::from));
                    json!({"type": "match", "match": m})
                });
            let math = (
                opt(prop_oneof![
                    Just("Multiply"),
                    Just("ClampMin"),
                    Just("ClampMax")
                ]),
                opt(any::<i64>()),
                opt(any::<i64>()),
                opt(any::<i64>()),
            )
                .prop_map(|(kind, multiply, min, max)| {
                    let mut m = serde_json::Map::new();
                    set(&mut m, "type", kind.map(Value::from));
                    set(&mut m, "multiply", multiply.map(Value::from));
                    set(&mut m, "clampMin", min.map(Value::from));
                    set(&mut m, "clampMax", max.map(Value::from));
                    json!({"type": "math", "math": m})
                });
            let string = (
                opt(prop_oneof![
                    Just("Format"),
                    Just("Convert"),
                    Just("TrimPrefix"),
                    Just("TrimSuffix"),
                    Just("Regexp"),
                    Just("Join"),
                    Just("Replace")
                ]),
                opt("([a-z]|%[-+# 0]{0,2}[0-9*.]{0,3}[a-zA-Z%])*"),
                opt(prop_oneof![
                    Just("ToUpper"),
                    Just("ToLower"),
                    Just("ToBase64"),
                    Just("FromBase64"),
                    Just("ToJson"),
                    Just("ToSha1"),
                    Just("ToSha256"),
                    Just("ToSha512"),
                    Just("ToAdler32")
                ]),
                opt("[a-c]{0,2}"),
                opt((pattern_text, opt(-2i64..4))),
                opt("[,; ]{0,2}"),
                opt(("[a-c]{0,2}", "[x-z]{0,2}")),
            )
                .prop_map(|(kind, fmt, convert, trim, regexp, join, replace)| {
                    let mut m = serde_json::Map::new();
                    set(&mut m, "type", kind.map(Value::from));
                    set(&mut m, "fmt", fmt.map(Value::from));
                    set(&mut m, "convert", convert.map(Value::from));
                    set(&mut m, "trim", trim.map(Value::from));
                    set(
                        &mut m,
                        "regexp",
                        regexp.map(|(p, g)| match g {
                            Some(g) => json!({"match": p, "group": g}),
                            None => json!({"match": p}),
                        }),
                    );
                    set(&mut m, "join", join.map(|s| json!({"separator": s})));
                    set(
                        &mut m,
                        "replace",
                        replace.map(|(a, b)| json!({"search": a, "replace": b})),
                    );
                    json!({"type": "string", "string": m})
                });
            let convert = (
                prop_oneof![
                    Just("string"),
                    Just("int"),
                    Just("int64"),
                    Just("bool"),
                    Just("float64"),
                    Just("object"),
                    Just("array")
                ],
                opt(prop_oneof![Just("none"), Just("quantity"), Just("json")]),
            )
                .prop_map(|(to, format)| {
                    let mut m = serde_json::Map::new();
                    m.insert("toType".into(), json!(to));
                    set(&mut m, "format", format.map(Value::from));
                    json!({"type": "convert", "convert": m})
                });
            let bare = prop_oneof![
                Just("map"),
                Just("match"),
                Just("math"),
                Just("string"),
                Just("convert")
            ]
            .prop_map(|kind| json!({"type": kind}));
            prop_oneof![map, matcher, math, string, convert, bare]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]
            #[test]
            fn arbitrary_transforms_never_panic_and_errors_name_their_index(
                raw in prop::collection::vec(arb_transform(), 1..4),
                input in arb_json(),
            ) {
                let ts: Vec<Transform> = raw.iter().map(|t| serde_json::from_value(t.clone()).unwrap()).collect();
                match compile_all(&ts) {
                    Err(e) => {
                        prop_assert!(e.index < ts.len());
                        prop_assert_eq!(e.kind, ts[e.index].kind);
                        let prefix = format!("transform {} ({}): ", e.index, e.kind);
                        prop_assert!(e.to_string().starts_with(&prefix));
                    }
                    Ok(compiled) => match apply_all(&compiled, &input) {
                        Err(e) => {
                            prop_assert!(e.index < ts.len());
                            prop_assert_eq!(e.kind, ts[e.index].kind);
                            prop_assert!(matches!(e.reason, TransformErrorReason::Failed(_)));
                        }
                        Ok(out) => prop_assert_eq!(normalize_numbers(out.clone()), out),
                    },
                }
            }
        }
    }
}
