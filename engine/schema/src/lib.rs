//! Kubernetes structural schemas (`openAPIV3Schema`): validation, defaulting, pruning and lookup.
//!
//! This crate owns what kube-apiserver does with a CustomResourceDefinition's schema, so the
//! embedded API server, `strata validate` and `strata render --xrd` agree with a real cluster:
//!
//! - [`StructuralSchema::compile`] turns the schema (a [`serde_json::Value`]) into an immutable,
//!   cheaply cloned tree once; regular expressions are compiled there and nowhere else.
//! - [`StructuralSchema::validate`] reports every violation as a [`FieldError`] whose path and
//!   message read like kube-apiserver's (`spec.replicas: Invalid value: "string": …`).
//! - [`StructuralSchema::apply_defaults`] applies `default`s the way the API server does, after
//!   dropping non-nullable `null`s that have no default.
//! - [`StructuralSchema::prune`] drops the fields the schema does not declare.
//! - [`StructuralSchema::lookup`] answers "may this field path be written?" for lint.
//!
//! Data enters as JSON values and leaves as values, error lists and path strings; nothing here
//! does I/O. As in Kubernetes, `apiVersion`, `kind` and `metadata` are always allowed at the root
//! (and inside `x-kubernetes-embedded-resource` objects), and `metadata` is never validated,
//! defaulted or pruned by the schema: it is an `ObjectMeta`, checked elsewhere.
//!
//! Not covered: `x-kubernetes-validations` (CEL rules) are accepted and ignored, as are formats
//! this module does not know (Kubernetes ignores unknown formats too). Patterns use the `regex`
//! crate, whose syntax is RE2's like Go's `regexp` (no look-around, no back-references); its
//! `\d`/`\w` are Unicode-aware where Go's are ASCII-only.
//!
//! Its own crate because these are API server semantics, not composition: the embedded API server
//! uses it without linking the composition core, which uses it for XRD to CRD and `strata validate`.

#![warn(missing_docs, unreachable_pub)]

pub mod pointer;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine as _;
use indexmap::IndexMap;
use regex::Regex;
use serde_json::{Map, Number, Value};

/// Schemas nested deeper than this are refused by [`StructuralSchema::compile`], so that no walk
/// over a compiled schema can exhaust the stack.
pub const MAX_SCHEMA_DEPTH: usize = 128;

/// The prefix of every schema path in a [`SchemaError`].
const SCHEMA_ROOT: &str = "openAPIV3Schema";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why an `openAPIV3Schema` could not be compiled. `path` names the offending schema node or
/// keyword, e.g. `openAPIV3Schema.properties[spec].properties[size].pattern`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// A schema position holds something other than a JSON object.
    #[error("compiling schema: {path}: must be a schema object, found {found}")]
    NotASchema {
        /// The offending schema node or keyword.
        path: String,
        /// The JSON type found there (`array`, `string`, ...).
        found: &'static str,
    },
    /// `type` names something other than the six OpenAPI types.
    #[error(
        "compiling schema: {path}: unknown type {name:?} (expected object, array, string, integer, number or boolean)"
    )]
    UnknownType {
        /// The offending schema node or keyword.
        path: String,
        /// The type name as written.
        name: String,
    },
    /// A keyword holds a value of the wrong JSON type.
    #[error("compiling schema: {path}: must be {expected}")]
    KeywordType {
        /// The offending schema node or keyword.
        path: String,
        /// What the keyword must hold, e.g. `a string` or `a non-negative integer`.
        expected: &'static str,
    },
    /// A `pattern` the regular-expression engine cannot compile.
    #[error("compiling schema: {path}: pattern {pattern:?} does not compile: {source}")]
    Pattern {
        /// The offending schema node or keyword.
        path: String,
        /// The pattern as written.
        pattern: String,
        /// Why the regular-expression engine refused it.
        #[source]
        source: regex::Error,
    },
    /// `multipleOf` is zero or negative.
    #[error("compiling schema: {path}: must be greater than zero")]
    MultipleOfNotPositive {
        /// The offending schema node or keyword.
        path: String,
    },
    /// `x-kubernetes-list-type` is not `atomic`, `set` or `map`.
    #[error(
        "compiling schema: {path}: unsupported list type {value:?} (expected atomic, set or map)"
    )]
    ListType {
        /// The offending schema node or keyword.
        path: String,
        /// The list type as written.
        value: String,
    },
    /// `x-kubernetes-list-type: map` without any `x-kubernetes-list-map-keys`.
    #[error(
        "compiling schema: {path}: x-kubernetes-list-type map requires x-kubernetes-list-map-keys"
    )]
    ListMapWithoutKeys {
        /// The offending schema node or keyword.
        path: String,
    },
    /// A keyword structural schemas forbid (`$ref`, `patternProperties`, ...): honouring it
    /// silently wrong would be worse than refusing it.
    #[error("compiling schema: {path}: {keyword} is not supported in structural schemas")]
    Unsupported {
        /// The offending schema node or keyword.
        path: String,
        /// The forbidden keyword.
        keyword: &'static str,
    },
    /// The schema nests deeper than [`MAX_SCHEMA_DEPTH`].
    #[error("compiling schema: {path}: nested deeper than {limit} levels")]
    TooDeep {
        /// The offending schema node or keyword.
        path: String,
        /// The depth limit, [`MAX_SCHEMA_DEPTH`].
        limit: usize,
    },
}

/// The class of a [`FieldError`]; mirrors Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `Not found`.
    NotFound,
    /// `Required value`: a required field is absent.
    Required,
    /// `Duplicate value`: an item repeats in a `set` or `map` list.
    Duplicate,
    /// `Invalid value`: the value breaks a constraint (bounds, pattern, length, ...).
    Invalid,
    /// `Unsupported value`: the value is not one of the `enum` values.
    NotSupported,
    /// `Forbidden`.
    Forbidden,
    /// `Too long`: a string exceeds `maxLength`.
    TooLong,
    /// `Too many`: an array or object exceeds `maxItems` / `maxProperties`.
    TooMany,
    /// `Internal error`.
    Internal,
    /// `Invalid value` of the wrong JSON type or format.
    TypeInvalid,
}

impl FieldErrorKind {
    /// The human-readable type, as Kubernetes prints it (`Invalid value`, `Required value`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// The `reason` of a `StatusCause` in a 422 response (`FieldValueInvalid`, ...).
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// Kubernetes prints no bad value for these kinds.
    fn omits_value(self) -> bool {
        matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

/// One schema violation at one field path.
///
/// Displays like kube-apiserver: `spec.replicas: Invalid value: "string": spec.replicas in body
/// must be of type integer: "string"`, `spec.name: Required value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path: `spec.forProvider.size`, `spec.items[2].name`, `<root>` for the object.
    pub path: String,
    /// What kind of violation this is.
    pub kind: FieldErrorKind,
    /// The offending value as Kubernetes reports it (`None` when it reports none).
    pub value: Option<Value>,
    /// The detail after the value, e.g. `spec.size in body should be less than or equal to 10`.
    pub message: String,
}

impl FieldError {
    /// The error without its leading path, as Go's `field.Error.ErrorBody()`:
    /// `Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
    pub fn body(&self) -> String {
        let mut body = self.kind.as_str().to_owned();
        if let Some(value) = self.value.as_ref().filter(|_| !self.kind.omits_value()) {
            body.push_str(": ");
            body.push_str(&BadValue(value).to_string());
        }
        if !self.message.is_empty() {
            body.push_str(": ");
            body.push_str(&self.message);
        }
        body
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind.as_str())?;
        if let Some(value) = self.value.as_ref().filter(|_| !self.kind.omits_value()) {
            write!(f, ": {}", BadValue(value))?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// Formats a bad value as Go's `field.Error` does: strings quoted, numbers and booleans bare,
/// `null` as `"null"`, objects and arrays as JSON.
struct BadValue<'a>(&'a Value);

impl fmt::Display for BadValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("\"null\""),
            Value::Number(n) => f.write_str(&go_number(n)),
            other => write!(f, "{other}"),
        }
    }
}

/// Prints a number as Go's `%v` prints the float64 or int64 it decodes to (`1.0` prints `1`).
fn go_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e21 => {
            format!("{f:.0}")
        }
        _ => n.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// One step of a field path: a field name or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A field of an object, by name.
    Field(String),
    /// An item of an array, by position.
    Index(usize),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => f.write_str(name),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// What the schema says about a field path (see [`StructuralSchema::lookup`]).
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// The schema declares the path; here is its schema.
    Allowed(&'a SchemaNode),
    /// The schema rules the path out.
    Forbidden {
        /// A sentence naming the offending field.
        reason: String,
    },
    /// The path goes past a point the schema leaves open (`x-kubernetes-preserve-unknown-fields`,
    /// `additionalProperties: true`, an array without `items`, an untyped node's items, or
    /// `metadata`); anything may be there.
    Unknown,
}

impl Lookup<'_> {
    /// True unless the schema rules the path out.
    pub fn is_allowed_or_unknown(&self) -> bool {
        !matches!(self, Self::Forbidden { .. })
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Renders path segments as Kubernetes prints field paths: `spec.items[2].name`.
pub fn display_path(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            PathSegment::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            PathSegment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn display_path_or_root(path: &[PathSegment]) -> String {
    if path.is_empty() {
        ROOT_PATH.to_owned()
    } else {
        display_path(path)
    }
}

/// How the object itself is named in a [`FieldError`] about the root.
const ROOT_PATH: &str = "<root>";

/// A path segment borrowed from the schema or the value, so a valid walk allocates nothing.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Field(&'a str),
    Index(usize),
}

fn render_segs(segs: &[Seg<'_>]) -> String {
    if segs.is_empty() {
        return ROOT_PATH.to_owned();
    }
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Compiled schema
// ---------------------------------------------------------------------------------------------

/// The six OpenAPI types a structural schema may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// `object`: a JSON object.
    Object,
    /// `array`: a JSON array.
    Array,
    /// `string`: a JSON string.
    String,
    /// `integer`: a JSON number without a fraction.
    Integer,
    /// `number`: any JSON number.
    Number,
    /// `boolean`: `true` or `false`.
    Boolean,
}

impl SchemaType {
    /// The name as written in a schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Array => "array",
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "object" => Self::Object,
            "array" => Self::Array,
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            _ => return None,
        })
    }
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The default: the list is one value.
    Atomic,
    /// Items are unique scalars.
    Set,
    /// Items are objects identified by the values of these keys.
    Map(Vec<String>),
}

/// What `additionalProperties` allows.
#[derive(Debug)]
enum Additional {
    /// Not given: undeclared fields are pruned.
    Absent,
    /// `false`, written out: undeclared fields are a validation error too.
    Denied,
    /// `true`: any field with any value.
    Any,
    /// Every undeclared field's value follows this schema.
    Schema(Box<SchemaNode>),
}

/// A numeric bound (`minimum`/`maximum` with its `exclusive…` flag).
#[derive(Debug, Clone)]
struct Bound {
    limit: Number,
    exclusive: bool,
}

/// The string formats this module checks. Others are accepted as Kubernetes accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DateTime,
    Date,
    Byte,
    Uuid,
    UuidVersion(u8),
    Ipv4,
    Ipv6,
    Cidr,
    Int32,
    Int64,
}

impl Format {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "date-time" | "datetime" => Self::DateTime,
            "date" => Self::Date,
            "byte" => Self::Byte,
            "uuid" => Self::Uuid,
            "uuid3" => Self::UuidVersion(3),
            "uuid4" => Self::UuidVersion(4),
            "uuid5" => Self::UuidVersion(5),
            "ipv4" => Self::Ipv4,
            "ipv6" => Self::Ipv6,
            "cidr" => Self::Cidr,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            _ => return None,
        })
    }
}

/// A compiled `pattern`: the source for messages, the regex for matching.
#[derive(Debug)]
struct Pattern {
    source: String,
    regex: Regex,
}

/// One compiled node of a structural schema. Read-only; obtained from [`Lookup::Allowed`] or the
/// accessors of another node.
#[derive(Debug)]
pub struct SchemaNode {
    ty: Option<SchemaType>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown_fields: bool,
    embedded_resource: bool,
    description: Option<String>,
    default: Option<Value>,
    properties: IndexMap<String, SchemaNode>,
    required: Vec<String>,
    additional: Additional,
    items: Option<Box<SchemaNode>>,
    list_type: ListType,
    enum_values: Option<Vec<Value>>,
    pattern: Option<Pattern>,
    format: Option<Format>,
    format_name: Option<String>,
    minimum: Option<Bound>,
    maximum: Option<Bound>,
    multiple_of: Option<Number>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    all_of: Vec<SchemaNode>,
    any_of: Vec<SchemaNode>,
    one_of: Vec<SchemaNode>,
    not: Option<Box<SchemaNode>>,
}

impl SchemaNode {
    fn empty() -> Self {
        Self {
            ty: None,
            nullable: false,
            int_or_string: false,
            preserve_unknown_fields: false,
            embedded_resource: false,
            description: None,
            default: None,
            properties: IndexMap::new(),
            required: Vec::new(),
            additional: Additional::Absent,
            items: None,
            list_type: ListType::Atomic,
            enum_values: None,
            pattern: None,
            format: None,
            format_name: None,
            minimum: None,
            maximum: None,
            multiple_of: None,
            min_length: None,
            max_length: None,
            min_items: None,
            max_items: None,
            unique_items: false,
            min_properties: None,
            max_properties: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
        }
    }

    /// The declared `type`, if any.
    pub fn schema_type(&self) -> Option<SchemaType> {
        self.ty
    }

    /// `nullable: true`.
    pub fn is_nullable(&self) -> bool {
        self.nullable
    }

    /// `x-kubernetes-int-or-string: true`.
    pub fn is_int_or_string(&self) -> bool {
        self.int_or_string
    }

    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.preserve_unknown_fields
    }

    /// `x-kubernetes-embedded-resource: true`.
    pub fn is_embedded_resource(&self) -> bool {
        self.embedded_resource
    }

    /// The `description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `default`.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// The `enum` values.
    pub fn enum_values(&self) -> Option<&[Value]> {
        self.enum_values.as_deref()
    }

    /// The declared properties, in schema order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &SchemaNode)> {
        self.properties
            .iter()
            .map(|(name, node)| (name.as_str(), node))
    }

    /// The schema of one declared property.
    pub fn property(&self, name: &str) -> Option<&SchemaNode> {
        self.properties.get(name)
    }

    /// The `required` property names.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// The schema of array items.
    pub fn items(&self) -> Option<&SchemaNode> {
        self.items.as_deref()
    }

    /// The schema of undeclared properties, when `additionalProperties` is a schema.
    pub fn additional_properties(&self) -> Option<&SchemaNode> {
        match &self.additional {
            Additional::Schema(node) => Some(node),
            _ => None,
        }
    }

    /// `x-kubernetes-list-type` (`Atomic` when absent).
    pub fn list_type(&self) -> &ListType {
        &self.list_type
    }

    /// Validates `value` against this node alone, with paths relative to it. Unlike
    /// [`StructuralSchema::validate`] nothing is special about `metadata` here.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut walk = Walk::default();
        walk.node(self, value, false);
        walk.errors
    }

    /// The schema of field `name` of an object (declared or `additionalProperties`).
    fn child(&self, name: &str) -> Option<&SchemaNode> {
        self.properties
            .get(name)
            .or_else(|| self.additional_properties())
    }

    /// The name of what this node holds, for lookup messages.
    fn shape_name(&self) -> &'static str {
        if self.int_or_string {
            "integer-or-string"
        } else {
            self.ty.map_or("value", SchemaType::as_str)
        }
    }
}

/// The compiled pieces behind a [`StructuralSchema`], shared by clones.
#[derive(Debug)]
struct Compiled {
    root: SchemaNode,
    /// Stands for `apiVersion`/`kind` at the root or in embedded resources when undeclared.
    string_node: SchemaNode,
    /// Stands for `metadata` at the root or in embedded resources: open below.
    metadata_node: SchemaNode,
}

/// A compiled, immutable structural schema; cloning shares it.
///
/// `x-kubernetes-validations` (CEL rules) are out of scope and ignored.
#[derive(Debug, Clone)]
pub struct StructuralSchema {
    inner: Arc<Compiled>,
}

impl StructuralSchema {
    /// Compiles an `openAPIV3Schema`. Errors name the schema path of the problem.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        let root = *compile_node(schema, SCHEMA_ROOT, 0)?;
        let string_node = SchemaNode {
            ty: Some(SchemaType::String),
            ..SchemaNode::empty()
        };
        let metadata_node = SchemaNode {
            ty: Some(SchemaType::Object),
            preserve_unknown_fields: true,
            ..SchemaNode::empty()
        };
        Ok(Self {
            inner: Arc::new(Compiled {
                root,
                string_node,
                metadata_node,
            }),
        })
    }

    /// The root node.
    pub fn root(&self) -> &SchemaNode {
        &self.inner.root
    }

    /// Every violation, in document order (per object: size limits, missing required fields,
    /// then each present field in the value's order), each with its field path. Never stops at
    /// the first. Undeclared fields are not errors (the API server prunes them first; see
    /// [`Self::prune`]) unless the schema says `additionalProperties: false`.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut walk = Walk::default();
        walk.node(&self.inner.root, value, true);
        walk.errors
    }

    /// Applies `default`s like kube-apiserver: first drops `null`s of non-nullable fields that
    /// have no default, then, in every present object (recursively, through array items and
    /// `additionalProperties`), sets each absent property that has a default, and each
    /// non-nullable property that is `null`. Defaults are inserted as written: neither pruned
    /// nor validated again. Defaulted objects are themselves defaulted below.
    pub fn apply_defaults(&self, value: &mut Value) {
        drop_non_nullable_nulls(&self.inner.root, value, true);
        apply_defaults_at(&self.inner.root, value, true);
    }

    /// Drops the fields the schema does not declare, unless a node keeps unknown fields
    /// (`x-kubernetes-preserve-unknown-fields: true`, `additionalProperties: true`). Returns the
    /// field paths it dropped, in document order.
    pub fn prune(&self, value: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        let mut path = String::new();
        prune_at(&self.inner.root, value, true, &mut path, &mut pruned);
        pruned
    }

    /// What the schema says about `path`: [`Lookup::Allowed`] with the node the schema declares
    /// there, [`Lookup::Forbidden`] when the schema rules it out, [`Lookup::Unknown`] past a
    /// point the schema leaves open. The empty path is the root.
    pub fn lookup(&self, path: &[PathSegment]) -> Lookup<'_> {
        let compiled = &*self.inner;
        let mut node = &compiled.root;
        let mut resource_root = true;
        for (at, segment) in path.iter().enumerate() {
            let embedded = resource_root || node.embedded_resource;
            resource_root = false;
            match segment {
                PathSegment::Field(name) => {
                    if embedded && name == "metadata" {
                        // ObjectMeta is not described by the CRD schema.
                        node = &compiled.metadata_node;
                        continue;
                    }
                    if let Some(child) = node.properties.get(name.as_str()) {
                        node = child;
                        continue;
                    }
                    if embedded && (name == "apiVersion" || name == "kind") {
                        node = &compiled.string_node;
                        continue;
                    }
                    if node.int_or_string || matches!(node.ty, Some(t) if t != SchemaType::Object) {
                        let found = node.shape_name();
                        return Lookup::Forbidden {
                            reason: format!(
                                "{} is {} {found}, not an object",
                                display_path_or_root(&path[..at]),
                                article(found)
                            ),
                        };
                    }
                    match &node.additional {
                        Additional::Schema(child) => node = child,
                        Additional::Any => return Lookup::Unknown,
                        Additional::Absent | Additional::Denied => {
                            if node.preserve_unknown_fields {
                                return Lookup::Unknown;
                            }
                            // Pruning would drop it, as it drops every field of `{}`.
                            return Lookup::Forbidden {
                                reason: format!(
                                    "{} declares no field {name:?}",
                                    display_path_or_root(&path[..at])
                                ),
                            };
                        }
                    }
                }
                PathSegment::Index(_) => {
                    if let Some(items) = node.items.as_deref() {
                        node = items;
                        continue;
                    }
                    // Without an items schema nothing in the array is pruned or checked.
                    if node.ty == Some(SchemaType::Array)
                        || (node.ty.is_none() && !node.int_or_string)
                    {
                        return Lookup::Unknown;
                    }
                    let found = node.shape_name();
                    return Lookup::Forbidden {
                        reason: format!(
                            "{} is {} {found}, not an array",
                            display_path_or_root(&path[..at]),
                            article(found)
                        ),
                    };
                }
            }
        }
        Lookup::Allowed(node)
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads the keywords of one schema object.
struct Keywords<'v> {
    map: &'v Map<String, Value>,
    path: &'v str,
}

impl<'v> Keywords<'v> {
    fn path_of(&self, keyword: &str) -> String {
        format!("{}.{keyword}", self.path)
    }

    fn wrong(&self, keyword: &str, expected: &'static str) -> SchemaError {
        SchemaError::KeywordType {
            path: self.path_of(keyword),
            expected,
        }
    }

    fn bool(&self, keyword: &str) -> Result<Option<bool>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(keyword, "a boolean")),
        }
    }

    fn str(&self, keyword: &str) -> Result<Option<&'v str>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(keyword, "a string")),
        }
    }

    fn number(&self, keyword: &str) -> Result<Option<Number>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(_) => Err(self.wrong(keyword, "a number")),
        }
    }

    fn count(&self, keyword: &str) -> Result<Option<u64>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(count) => Ok(Some(count)),
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(self.wrong(keyword, "a non-negative integer")),
                },
            },
            Some(_) => Err(self.wrong(keyword, "a non-negative integer")),
        }
    }

    fn strings(&self, keyword: &str) -> Result<Vec<String>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.wrong(keyword, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(self.wrong(keyword, "a list of strings")),
        }
    }

    fn schemas(&self, keyword: &str, depth: usize) -> Result<Vec<SchemaNode>, SchemaError> {
        match self.map.get(keyword) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    compile_node(item, &format!("{}.{keyword}[{i}]", self.path), depth + 1)
                        .map(|node| *node)
                })
                .collect(),
            Some(_) => Err(self.wrong(keyword, "a list of schemas")),
        }
    }
}

/// Keywords structural schemas forbid and this module will not pretend to honour.
const UNSUPPORTED_KEYWORDS: [&str; 5] = [
    "$ref",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
];

/// Compiles one schema node and, recursively, its children. The node is built on the heap and
/// the keyword parsing lives in [`read_keywords`], so each level of recursion costs a small
/// stack frame even in debug builds.
fn compile_node(value: &Value, path: &str, depth: usize) -> Result<Box<SchemaNode>, SchemaError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(SchemaError::TooDeep {
            path: path.to_owned(),
            limit: MAX_SCHEMA_DEPTH,
        });
    }
    let Value::Object(map) = value else {
        return Err(SchemaError::NotASchema {
            path: path.to_owned(),
            found: json_type_name(value),
        });
    };
    let kw = Keywords { map, path };
    let mut node = Box::new(SchemaNode::empty());
    read_keywords(&kw, &mut node)?;

    match map.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(properties)) => {
            for (name, schema) in properties {
                let child = compile_node(schema, &format!("{path}.properties[{name}]"), depth + 1)?;
                node.properties.insert(name.clone(), *child);
            }
        }
        Some(_) => return Err(kw.wrong("properties", "an object of schemas")),
    }
    node.additional = match map.get("additionalProperties") {
        None | Some(Value::Null) => Additional::Absent,
        Some(Value::Bool(true)) => Additional::Any,
        Some(Value::Bool(false)) => Additional::Denied,
        Some(schema @ Value::Object(_)) => Additional::Schema(compile_node(
            schema,
            &kw.path_of("additionalProperties"),
            depth + 1,
        )?),
        Some(_) => return Err(kw.wrong("additionalProperties", "a boolean or a schema")),
    };
    node.items = match map.get("items") {
        None | Some(Value::Null) => None,
        Some(schema @ Value::Object(_)) => {
            Some(compile_node(schema, &kw.path_of("items"), depth + 1)?)
        }
        Some(_) => return Err(kw.wrong("items", "a single schema")),
    };
    node.all_of = kw.schemas("allOf", depth)?;
    node.any_of = kw.schemas("anyOf", depth)?;
    node.one_of = kw.schemas("oneOf", depth)?;
    node.not = match map.get("not") {
        None | Some(Value::Null) => None,
        Some(schema) => Some(compile_node(schema, &kw.path_of("not"), depth + 1)?),
    };
    Ok(node)
}

/// Reads every keyword of a node that holds no sub-schema.
#[inline(never)]
fn read_keywords(kw: &Keywords<'_>, node: &mut SchemaNode) -> Result<(), SchemaError> {
    for keyword in UNSUPPORTED_KEYWORDS {
        if kw.map.contains_key(keyword) {
            return Err(SchemaError::Unsupported {
                path: kw.path_of(keyword),
                keyword,
            });
        }
    }
    if let Some(name) = kw.str("type")?
        && !name.is_empty()
    {
        node.ty = Some(
            SchemaType::parse(name).ok_or_else(|| SchemaError::UnknownType {
                path: kw.path_of("type"),
                name: name.to_owned(),
            })?,
        );
    }
    node.nullable = kw.bool("nullable")?.unwrap_or(false);
    node.int_or_string = kw.bool("x-kubernetes-int-or-string")?.unwrap_or(false);
    node.preserve_unknown_fields = kw
        .bool("x-kubernetes-preserve-unknown-fields")?
        .unwrap_or(false);
    node.embedded_resource = kw.bool("x-kubernetes-embedded-resource")?.unwrap_or(false);
    node.description = kw.str("description")?.map(str::to_owned);
    node.default = kw.map.get("default").cloned();
    node.required = kw.strings("required")?;

    let map_keys = kw.strings("x-kubernetes-list-map-keys")?;
    node.list_type = match kw.str("x-kubernetes-list-type")? {
        None | Some("atomic") => ListType::Atomic,
        Some("set") => ListType::Set,
        Some("map") if map_keys.is_empty() => {
            return Err(SchemaError::ListMapWithoutKeys {
                path: kw.path_of("x-kubernetes-list-type"),
            });
        }
        Some("map") => ListType::Map(map_keys),
        Some(other) => {
            return Err(SchemaError::ListType {
                path: kw.path_of("x-kubernetes-list-type"),
                value: other.to_owned(),
            });
        }
    };

    node.enum_values = match kw.map.get("enum") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => Some(values.clone()),
        Some(_) => return Err(kw.wrong("enum", "a list of values")),
    };
    if let Some(source) = kw.str("pattern")? {
        let regex = Regex::new(source).map_err(|source_err| SchemaError::Pattern {
            path: kw.path_of("pattern"),
            pattern: source.to_owned(),
            source: source_err,
        })?;
        node.pattern = Some(Pattern {
            source: source.to_owned(),
            regex,
        });
    }
    if let Some(name) = kw.str("format")? {
        node.format = Format::parse(name);
        node.format_name = Some(name.to_owned());
    }
    let exclusive_minimum = kw.bool("exclusiveMinimum")?.unwrap_or(false);
    let exclusive_maximum = kw.bool("exclusiveMaximum")?.unwrap_or(false);
    node.minimum = kw.number("minimum")?.map(|limit| Bound {
        limit,
        exclusive: exclusive_minimum,
    });
    node.maximum = kw.number("maximum")?.map(|limit| Bound {
        limit,
        exclusive: exclusive_maximum,
    });
    if let Some(factor) = kw.number("multipleOf")? {
        if num_cmp(&factor, &Number::from(0)) != Some(Ordering::Greater) {
            return Err(SchemaError::MultipleOfNotPositive {
                path: kw.path_of("multipleOf"),
            });
        }
        node.multiple_of = Some(factor);
    }
    node.min_length = kw.count("minLength")?;
    node.max_length = kw.count("maxLength")?;
    node.min_items = kw.count("minItems")?;
    node.max_items = kw.count("maxItems")?;
    node.unique_items = kw.bool("uniqueItems")?.unwrap_or(false);
    node.min_properties = kw.count("minProperties")?;
    node.max_properties = kw.count("maxProperties")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// A JSON number as an exact integer when it is one, a float otherwise.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Num::Int(i128::from(u))
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn as_f64(n: &Num) -> f64 {
    match *n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

/// Compares two numbers exactly when both are integers.
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (x, y) => as_f64(&x).partial_cmp(&as_f64(&y)),
    }
}

/// Whether a number is integral, as the `integer` type requires.
fn is_integral(n: &Number) -> bool {
    match num(n) {
        Num::Int(_) => true,
        Num::Float(f) => f.is_finite() && f.fract() == 0.0,
    }
}

fn is_multiple_of(value: &Number, factor: &Number) -> bool {
    match (num(value), num(factor)) {
        (Num::Int(v), Num::Int(f)) if f != 0 => v % f == 0,
        (v, f) => {
            let quotient = as_f64(&v) / as_f64(&f);
            if !quotient.is_finite() {
                return false;
            }
            // go-openapi tolerates float rounding in the quotient.
            (quotient - quotient.round()).abs() <= 1e-9 * quotient.abs().max(1.0)
        }
    }
}

/// The type name Kubernetes reports for a value of the wrong type.
fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        other => json_type_name(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// One validation pass: the current field path (borrowed, reused) and the errors so far.
#[derive(Default)]
struct Walk<'a> {
    path: Vec<Seg<'a>>,
    errors: Vec<FieldError>,
}

impl<'a> Walk<'a> {
    fn report(
        &mut self,
        kind: FieldErrorKind,
        value: Option<Value>,
        message: impl FnOnce(&str) -> String,
    ) {
        let path = render_segs(&self.path);
        let message = message(&path);
        self.errors.push(FieldError {
            path,
            kind,
            value,
            message,
        });
    }

    fn report_at(
        &mut self,
        seg: Seg<'a>,
        kind: FieldErrorKind,
        value: Option<Value>,
        message: &str,
    ) {
        self.path.push(seg);
        self.report(kind, value, |_| message.to_owned());
        self.path.pop();
    }

    /// Runs `node` on `value` with its own error list, leaving ours untouched.
    fn isolated(
        &mut self,
        node: &'a SchemaNode,
        value: &'a Value,
        resource_root: bool,
    ) -> Vec<FieldError> {
        let saved = std::mem::take(&mut self.errors);
        self.node(node, value, resource_root);
        std::mem::replace(&mut self.errors, saved)
    }

    fn node(&mut self, node: &'a SchemaNode, value: &'a Value, resource_root: bool) {
        if value.is_null() {
            if node.nullable {
                return;
            }
            if node.ty.is_some() || node.int_or_string {
                self.type_error(node, "null");
                return;
            }
        }
        if !self.type_matches(node, value) {
            return;
        }
        if let Some(allowed) = &node.enum_values
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", other.to_string()),
                })
                .collect();
            let detail = format!("supported values: {}", supported.join(", "));
            self.report(FieldErrorKind::NotSupported, Some(value.clone()), |_| {
                detail
            });
        }
        match value {
            Value::String(s) => self.string(node, s),
            Value::Number(n) => self.number(node, n),
            Value::Array(items) => self.array(node, items),
            Value::Object(map) => self.object(node, map, resource_root),
            Value::Null | Value::Bool(_) => {}
        }
        self.combinators(node, value, resource_root);
    }

    fn type_error(&mut self, node: &SchemaNode, actual: &str) {
        let expected = if node.int_or_string {
            "integer,string"
        } else {
            node.ty.map_or("", SchemaType::as_str)
        };
        self.report(
            FieldErrorKind::TypeInvalid,
            Some(Value::String(actual.to_owned())),
            |path| format!("{path} in body must be of type {expected}: {actual:?}"),
        );
    }

    fn type_matches(&mut self, node: &SchemaNode, value: &Value) -> bool {
        let matches = if node.int_or_string {
            matches!(value, Value::String(_)) || matches!(value, Value::Number(n) if is_integral(n))
        } else {
            match node.ty {
                None => true,
                Some(SchemaType::Object) => value.is_object(),
                Some(SchemaType::Array) => value.is_array(),
                Some(SchemaType::String) => value.is_string(),
                Some(SchemaType::Boolean) => value.is_boolean(),
                Some(SchemaType::Number) => value.is_number(),
                Some(SchemaType::Integer) => matches!(value, Value::Number(n) if is_integral(n)),
            }
        };
        if !matches {
            self.type_error(node, value_type_name(value));
        }
        matches
    }

    fn string(&mut self, node: &SchemaNode, s: &str) {
        if node.max_length.is_some() || node.min_length.is_some() {
            // Go counts runes: Unicode code points.
            let length = s.chars().count() as u64;
            if let Some(max) = node.max_length.filter(|max| length > *max) {
                let unit = if max == 1 { "byte" } else { "bytes" };
                self.report(
                    FieldErrorKind::TooLong,
                    Some(Value::String(s.to_owned())),
                    |_| format!("may not be more than {max} {unit}"),
                );
            }
            if let Some(min) = node.min_length.filter(|min| length < *min) {
                self.report(
                    FieldErrorKind::Invalid,
                    Some(Value::String(s.to_owned())),
                    |path| format!("{path} in body should be at least {min} chars long"),
                );
            }
        }
        if let Some(pattern) = &node.pattern
            && !pattern.regex.is_match(s)
        {
            let source = &pattern.source;
            self.report(
                FieldErrorKind::Invalid,
                Some(Value::String(s.to_owned())),
                |path| format!("{path} in body should match '{source}'"),
            );
        }
        if let (Some(format), Some(name)) = (node.format, &node.format_name)
            && !string_has_format(format, s)
        {
            self.report(
                FieldErrorKind::TypeInvalid,
                Some(Value::String(s.to_owned())),
                |path| format!("{path} in body must be of type {name}: {s:?}"),
            );
        }
    }

    fn number(&mut self, node: &SchemaNode, n: &Number) {
        if let Some(Bound { limit, exclusive }) = &node.maximum {
            let ordering = num_cmp(n, limit);
            let fails = if *exclusive {
                ordering != Some(Ordering::Less)
            } else {
                ordering == Some(Ordering::Greater) || ordering.is_none()
            };
            if fails {
                let relation = if *exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.report(
                    FieldErrorKind::Invalid,
                    Some(Value::Number(n.clone())),
                    |path| format!("{path} in body should be {relation} {}", go_number(limit)),
                );
            }
        }
        if let Some(Bound { limit, exclusive }) = &node.minimum {
            let ordering = num_cmp(n, limit);
            let fails = if *exclusive {
                ordering != Some(Ordering::Greater)
            } else {
                ordering == Some(Ordering::Less) || ordering.is_none()
            };
            if fails {
                let relation = if *exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.report(
                    FieldErrorKind::Invalid,
                    Some(Value::Number(n.clone())),
                    |path| format!("{path} in body should be {relation} {}", go_number(limit)),
                );
            }
        }
        if let Some(factor) = &node.multiple_of
            && !is_multiple_of(n, factor)
        {
            self.report(
                FieldErrorKind::Invalid,
                Some(Value::Number(n.clone())),
                |path| {
                    format!(
                        "{path} in body should be a multiple of {}",
                        go_number(factor)
                    )
                },
            );
        }
        let out_of_range = match (node.format, num(n)) {
            (Some(Format::Int32), Num::Int(i)) => i32::try_from(i).is_err(),
            (Some(Format::Int32), Num::Float(f)) => {
                f < f64::from(i32::MIN) || f > f64::from(i32::MAX)
            }
            (Some(Format::Int64), Num::Int(i)) => i64::try_from(i).is_err(),
            (Some(Format::Int64), Num::Float(f)) => {
                !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
            }
            _ => false,
        };
        if let (true, Some(name)) = (out_of_range, &node.format_name) {
            let shown = go_number(n);
            self.report(
                FieldErrorKind::TypeInvalid,
                Some(Value::Number(n.clone())),
                |path| format!("{path} in body must be of type {name}: {shown:?}"),
            );
        }
    }

    fn array(&mut self, node: &'a SchemaNode, items: &'a [Value]) {
        let length = items.len() as u64;
        if let Some(max) = node.max_items.filter(|max| length > *max) {
            let noun = if max == 1 { "item" } else { "items" };
            self.report(FieldErrorKind::TooMany, Some(Value::from(length)), |_| {
                format!("must have at most {max} {noun}")
            });
        }
        if let Some(min) = node.min_items.filter(|min| length < *min) {
            self.report(FieldErrorKind::Invalid, Some(Value::from(length)), |path| {
                format!("{path} in body should have at least {min} items")
            });
        }
        if node.unique_items && !duplicates(items, hash_value, |a, b| a == b).is_empty() {
            self.report(FieldErrorKind::Invalid, None, |path| {
                format!("{path} in body shouldn't contain duplicates")
            });
        }
        match &node.list_type {
            ListType::Atomic => {}
            ListType::Set => {
                for index in duplicates(items, hash_value, |a, b| a == b) {
                    self.report_at(
                        Seg::Index(index),
                        FieldErrorKind::Duplicate,
                        Some(items[index].clone()),
                        "",
                    );
                }
            }
            ListType::Map(keys) => {
                let key_hash = |item: &Value| {
                    let mut hasher = DefaultHasher::new();
                    for key in keys {
                        match item.get(key) {
                            Some(v) => hash_value_into(v, &mut hasher, 0),
                            None => hasher.write_u8(0xff),
                        }
                    }
                    hasher.finish()
                };
                let same_keys = |a: &Value, b: &Value| {
                    a.is_object()
                        && b.is_object()
                        && keys.iter().all(|key| a.get(key) == b.get(key))
                };
                for index in duplicates(items, key_hash, same_keys) {
                    let identity: Map<String, Value> = keys
                        .iter()
                        .filter_map(|key| items[index].get(key).map(|v| (key.clone(), v.clone())))
                        .collect();
                    self.report_at(
                        Seg::Index(index),
                        FieldErrorKind::Duplicate,
                        Some(Value::Object(identity)),
                        "",
                    );
                }
            }
        }
        if let Some(item_node) = node.items.as_deref() {
            for (index, item) in items.iter().enumerate() {
                self.path.push(Seg::Index(index));
                self.node(item_node, item, item_node.embedded_resource);
                self.path.pop();
            }
        }
    }

    fn object(&mut self, node: &'a SchemaNode, map: &'a Map<String, Value>, resource_root: bool) {
        let embedded = resource_root || node.embedded_resource;
        let count = map.len() as u64;
        if let Some(max) = node.max_properties.filter(|max| count > *max) {
            let noun = if max == 1 { "item" } else { "items" };
            self.report(FieldErrorKind::TooMany, Some(Value::from(count)), |_| {
                format!("must have at most {max} {noun}")
            });
        }
        if let Some(min) = node.min_properties.filter(|min| count < *min) {
            self.report(FieldErrorKind::Invalid, Some(Value::from(count)), |path| {
                format!("{path} in body should have at least {min} properties")
            });
        }
        for name in &node.required {
            if !map.contains_key(name) {
                self.report_at(Seg::Field(name), FieldErrorKind::Required, None, "");
            }
        }
        if node.embedded_resource {
            self.embedded_type_fields(map);
        }
        for (key, value) in map {
            if embedded && key == "metadata" {
                continue;
            }
            let child = match node.properties.get(key.as_str()) {
                Some(child) => child,
                None => match &node.additional {
                    Additional::Schema(child) => child,
                    Additional::Denied
                        if !node.preserve_unknown_fields
                            && !(embedded && (key == "apiVersion" || key == "kind")) =>
                    {
                        self.report(
                            FieldErrorKind::Invalid,
                            Some(Value::String(key.clone())),
                            |path| format!("{path}.{key} in body is a forbidden property"),
                        );
                        continue;
                    }
                    _ => continue,
                },
            };
            self.path.push(Seg::Field(key));
            self.node(child, value, child.embedded_resource);
            self.path.pop();
        }
    }

    /// An embedded resource needs a non-empty string `apiVersion` and `kind` (not `metadata`).
    fn embedded_type_fields(&mut self, map: &'a Map<String, Value>) {
        for field in ["apiVersion", "kind"] {
            match map.get(field) {
                None => self.report_at(
                    Seg::Field(field),
                    FieldErrorKind::Required,
                    None,
                    "must not be empty",
                ),
                Some(Value::String(s)) if s.is_empty() => {
                    self.report_at(
                        Seg::Field(field),
                        FieldErrorKind::Invalid,
                        Some(Value::String(String::new())),
                        "must not be empty",
                    );
                }
                Some(Value::String(_)) => {}
                Some(other) => {
                    self.report_at(
                        Seg::Field(field),
                        FieldErrorKind::Invalid,
                        Some(other.clone()),
                        "must be a string",
                    );
                }
            }
        }
    }

    fn combinators(&mut self, node: &'a SchemaNode, value: &'a Value, resource_root: bool) {
        for sub in &node.all_of {
            self.node(sub, value, resource_root);
        }
        if !node.any_of.is_empty() {
            let mut best: Option<Vec<FieldError>> = None;
            for sub in &node.any_of {
                let errors = self.isolated(sub, value, resource_root);
                if errors.is_empty() {
                    best = None;
                    break;
                }
                if best.as_ref().is_none_or(|b| errors.len() < b.len()) {
                    best = Some(errors);
                }
            }
            if let Some(errors) = best {
                self.report(FieldErrorKind::Invalid, None, |path| {
                    format!("{path:?} must validate at least one schema (anyOf)")
                });
                self.errors.extend(errors);
            }
        }
        if !node.one_of.is_empty() {
            let mut valid = 0usize;
            let mut best: Option<Vec<FieldError>> = None;
            for sub in &node.one_of {
                let errors = self.isolated(sub, value, resource_root);
                if errors.is_empty() {
                    valid += 1;
                } else if best.as_ref().is_none_or(|b| errors.len() < b.len()) {
                    best = Some(errors);
                }
            }
            if valid == 0 {
                self.report(FieldErrorKind::Invalid, None, |path| {
                    format!(
                        "{path:?} must validate one and only one schema (oneOf). Found none valid"
                    )
                });
                self.errors.extend(best.unwrap_or_default());
            } else if valid > 1 {
                self.report(FieldErrorKind::Invalid, None, |path| {
                    format!("{path:?} must validate one and only one schema (oneOf). Found {valid} valid alternatives")
                });
            }
        }
        if let Some(not) = node.not.as_deref()
            && self.isolated(not, value, resource_root).is_empty()
        {
            self.report(FieldErrorKind::Invalid, None, |path| {
                format!("{path:?} must not validate the schema (not)")
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicates
// ---------------------------------------------------------------------------------------------

/// Below this many items duplicates are found pairwise, without allocating.
const PAIRWISE_LIMIT: usize = 16;
/// Hashing stops this deep; equality still decides, so this only costs collisions.
const HASH_DEPTH: usize = 32;

/// Indices of items equal (by `eq`) to an earlier item, ascending.
fn duplicates(
    items: &[Value],
    hash: impl Fn(&Value) -> u64,
    eq: impl Fn(&Value, &Value) -> bool,
) -> Vec<usize> {
    let mut found = Vec::new();
    if items.len() <= PAIRWISE_LIMIT {
        for (i, item) in items.iter().enumerate() {
            if items[..i].iter().any(|earlier| eq(earlier, item)) {
                found.push(i);
            }
        }
        return found;
    }
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let bucket = seen.entry(hash(item)).or_default();
        if bucket.iter().any(|&earlier| eq(&items[earlier], item)) {
            found.push(i);
        } else {
            bucket.push(i);
        }
    }
    found
}

fn hash_value(value: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    hash_value_into(value, &mut hasher, 0);
    hasher.finish()
}

/// Hashes consistently with `Value`'s equality: object keys in any order hash alike.
fn hash_value_into(value: &Value, hasher: &mut DefaultHasher, depth: usize) {
    if depth > HASH_DEPTH {
        return;
    }
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Bool(b) => {
            hasher.write_u8(1);
            b.hash(hasher);
        }
        Value::Number(n) => {
            hasher.write_u8(2);
            match num(n) {
                Num::Int(i) => i.hash(hasher),
                // 0.0 and -0.0 are equal and must hash alike.
                Num::Float(f) => (if f == 0.0 { 0 } else { f.to_bits() }).hash(hasher),
            }
        }
        Value::String(s) => {
            hasher.write_u8(3);
            s.hash(hasher);
        }
        Value::Array(items) => {
            hasher.write_u8(4);
            items.len().hash(hasher);
            for item in items {
                hash_value_into(item, hasher, depth + 1);
            }
        }
        Value::Object(map) => {
            hasher.write_u8(5);
            map.len().hash(hasher);
            let mut combined = 0u64;
            for (key, item) in map {
                let mut entry = DefaultHasher::new();
                key.hash(&mut entry);
                hash_value_into(item, &mut entry, depth + 1);
                combined = combined.wrapping_add(entry.finish());
            }
            combined.hash(hasher);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------

fn string_has_format(format: Format, s: &str) -> bool {
    match format {
        Format::DateTime => is_date_time(s),
        Format::Date => is_date(s),
        Format::Byte => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        Format::Uuid => uuid_version(s).is_some(),
        Format::UuidVersion(version) => uuid_version(s) == Some(version),
        Format::Ipv4 => s.parse::<Ipv4Addr>().is_ok(),
        Format::Ipv6 => s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
        Format::Cidr => is_cidr(s),
        // Numeric formats say nothing about strings.
        Format::Int32 | Format::Int64 => true,
    }
}

/// The version nibble of a UUID (`8-4-4-4-12` hex digits, or 32 without dashes), if it is one.
fn uuid_version(s: &str) -> Option<u8> {
    let bytes = s.as_bytes();
    let hex: Vec<u8> = match bytes.len() {
        36 => {
            for dash in [8, 13, 18, 23] {
                if bytes[dash] != b'-' {
                    return None;
                }
            }
            bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| ![8, 13, 18, 23].contains(i))
                .map(|(_, b)| *b)
                .collect()
        }
        32 => bytes.to_vec(),
        _ => return None,
    };
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    char::from(hex[12])
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn is_cidr(s: &str) -> bool {
    let Some((address, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    if address.parse::<Ipv4Addr>().is_ok() {
        prefix <= 32
    } else {
        address.parse::<Ipv6Addr>().is_ok() && prefix <= 128
    }
}

/// Takes exactly `n` ASCII digits from the front of `s`.
fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD`, a real calendar date; returns what follows it.
fn parse_date(s: &str) -> Option<&str> {
    let (year, rest) = digits(s, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (month, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = digits(rest, 2)?;
    ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)).then_some(rest)
}

fn is_date(s: &str) -> bool {
    parse_date(s).is_some_and(str::is_empty)
}

/// RFC 3339 date-times and the relaxed ISO 8601 forms Go's strfmt accepts: `T`, `t` or a space
/// between date and time, seconds and fraction optional, zone `Z`, `±HH:MM`, `±HHMM` or none.
fn is_date_time(s: &str) -> bool {
    let Some(rest) = parse_date(s) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else {
        return false;
    };
    let Some((hour, rest)) = digits(rest, 2) else {
        return false;
    };
    let Some((minute, mut rest)) = rest.strip_prefix(':').and_then(|r| digits(r, 2)) else {
        return false;
    };
    let mut second = 0;
    if let Some(after) = rest.strip_prefix(':') {
        let Some((sec, after)) = digits(after, 2) else {
            return false;
        };
        second = sec;
        rest = after;
        if let Some(fraction) = rest.strip_prefix('.') {
            let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if length == 0 {
                return false;
            }
            rest = &fraction[length..];
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    match rest {
        "" | "Z" | "z" => true,
        zone => {
            let Some(offset) = zone.strip_prefix(['+', '-']).filter(|o| o.is_ascii()) else {
                return false;
            };
            let (hours, minutes) = match offset.len() {
                5 if offset.as_bytes()[2] == b':' => (&offset[..2], &offset[3..]),
                4 => (&offset[..2], &offset[2..]),
                _ => return false,
            };
            matches!((digits(hours, 2), digits(minutes, 2)), (Some((h, "")), Some((m, ""))) if h <= 23 && m <= 59)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// Kubernetes' `PruneNonNullableNullsWithoutDefaults`: a `null` the schema neither allows nor
/// can default is dropped instead of failing validation.
fn drop_non_nullable_nulls(node: &SchemaNode, value: &mut Value, resource_root: bool) {
    match value {
        Value::Object(map) => {
            let embedded = resource_root || node.embedded_resource;
            map.retain(|key, child_value| {
                if embedded && key == "metadata" {
                    return true;
                }
                let Some(child) = node.child(key) else {
                    return true;
                };
                if child_value.is_null() && !child.nullable && child.default.is_none() {
                    return false;
                }
                drop_non_nullable_nulls(child, child_value, child.embedded_resource);
                true
            });
        }
        Value::Array(items) => {
            if let Some(item_node) = node.items.as_deref() {
                for item in items {
                    drop_non_nullable_nulls(item_node, item, item_node.embedded_resource);
                }
            }
        }
        _ => {}
    }
}

/// Kubernetes' structural `Default`: fill absent (or non-nullable `null`) properties of present
/// objects, then descend into every field that has a schema.
fn apply_defaults_at(node: &SchemaNode, value: &mut Value, resource_root: bool) {
    match value {
        Value::Object(map) => {
            let embedded = resource_root || node.embedded_resource;
            for (name, property) in &node.properties {
                let Some(default) = &property.default else {
                    continue;
                };
                if embedded && name == "metadata" {
                    continue;
                }
                match map.get_mut(name.as_str()) {
                    None => {
                        map.insert(name.clone(), default.clone());
                    }
                    Some(current) if current.is_null() && !property.nullable => {
                        *current = default.clone()
                    }
                    Some(_) => {}
                }
            }
            for (key, child_value) in map.iter_mut() {
                if embedded && key == "metadata" {
                    continue;
                }
                if let Some(child) = node.child(key) {
                    apply_defaults_at(child, child_value, child.embedded_resource);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = node.items.as_deref() {
                for item in items {
                    apply_defaults_at(item_node, item, item_node.embedded_resource);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------------

/// Kubernetes pruning: undeclared fields go unless the node keeps unknown fields; `apiVersion`,
/// `kind` and `metadata` stay at the root and in embedded resources. `path` is a reused buffer.
fn prune_at(
    node: &SchemaNode,
    value: &mut Value,
    resource_root: bool,
    path: &mut String,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let embedded = resource_root || node.embedded_resource;
            map.retain(|key, child_value| {
                let parent_length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let keep = if embedded && key == "metadata" {
                    true
                } else if let Some(child) = node.child(key) {
                    prune_at(child, child_value, child.embedded_resource, path, pruned);
                    true
                } else if node.preserve_unknown_fields
                    || matches!(node.additional, Additional::Any)
                    || (embedded && (key == "apiVersion" || key == "kind"))
                {
                    true
                } else {
                    pruned.push(path.clone());
                    false
                };
                path.truncate(parent_length);
                keep
            });
        }
        Value::Array(items) => {
            if let Some(item_node) = node.items.as_deref() {
                for (index, item) in items.iter_mut().enumerate() {
                    let parent_length = path.len();
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                    prune_at(item_node, item, item_node.embedded_resource, path, pruned);
                    path.truncate(parent_length);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(schema: Value) -> StructuralSchema {
        StructuralSchema::compile(&schema).unwrap()
    }

    fn messages(schema: &StructuralSchema, value: &Value) -> Vec<String> {
        schema
            .validate(value)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// A root schema whose `spec.x` follows `field`.
    fn spec_x(field: Value) -> StructuralSchema {
        compiled(json!({
            "type": "object",
            "properties": { "spec": { "type": "object", "properties": { "x": field } } }
        }))
    }

    #[test]
    fn every_keyword_reports_like_kube_apiserver() {
        let rows: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            (
                "a string where an integer is declared names the actual type",
                json!({"type": "integer"}),
                json!("3"),
                vec![
                    r#"spec.x: Invalid value: "string": spec.x in body must be of type integer: "string""#,
                ],
            ),
            (
                "a fractional number is not an integer",
                json!({"type": "integer"}),
                json!(1.5),
                vec![
                    r#"spec.x: Invalid value: "number": spec.x in body must be of type integer: "number""#,
                ],
            ),
            (
                "an integral number is an integer",
                json!({"type": "integer"}),
                json!(3),
                vec![],
            ),
            (
                "a number accepts integers",
                json!({"type": "number"}),
                json!(3),
                vec![],
            ),
            (
                "a string is not a boolean",
                json!({"type": "boolean"}),
                json!("true"),
                vec![
                    r#"spec.x: Invalid value: "string": spec.x in body must be of type boolean: "string""#,
                ],
            ),
            (
                "an array is not an object",
                json!({"type": "object"}),
                json!([]),
                vec![
                    r#"spec.x: Invalid value: "array": spec.x in body must be of type object: "array""#,
                ],
            ),
            (
                "null is a type error without nullable",
                json!({"type": "string"}),
                Value::Null,
                vec![
                    r#"spec.x: Invalid value: "null": spec.x in body must be of type string: "null""#,
                ],
            ),
            (
                "null is accepted with nullable",
                json!({"type": "string", "nullable": true, "minLength": 3}),
                Value::Null,
                vec![],
            ),
            (
                "a value outside the enum lists the supported values",
                json!({"type": "string", "enum": ["postgres", "mysql"]}),
                json!("oracle"),
                vec![
                    r#"spec.x: Unsupported value: "oracle": supported values: "postgres", "mysql""#,
                ],
            ),
            (
                "non-string enum values are quoted JSON",
                json!({"type": "integer", "enum": [1, 2]}),
                json!(3),
                vec![r#"spec.x: Unsupported value: 3: supported values: "1", "2""#],
            ),
            (
                "a pattern mismatch quotes the pattern",
                json!({"type": "string", "pattern": "^[a-z]+$"}),
                json!("Abc"),
                vec![r#"spec.x: Invalid value: "Abc": spec.x in body should match '^[a-z]+$'"#],
            ),
            (
                "patterns are unanchored like Go's MatchString",
                json!({"type": "string", "pattern": "b"}),
                json!("abc"),
                vec![],
            ),
            (
                "maxLength counts code points, not bytes",
                json!({"type": "string", "maxLength": 3}),
                json!("héé"),
                vec![],
            ),
            (
                "a string over maxLength is too long",
                json!({"type": "string", "maxLength": 3}),
                json!("abcd"),
                vec!["spec.x: Too long: may not be more than 3 bytes"],
            ),
            (
                "a string under minLength is invalid",
                json!({"type": "string", "minLength": 2}),
                json!("a"),
                vec![
                    r#"spec.x: Invalid value: "a": spec.x in body should be at least 2 chars long"#,
                ],
            ),
            (
                "a number under minimum",
                json!({"type": "integer", "minimum": 1}),
                json!(0),
                vec![
                    "spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1",
                ],
            ),
            (
                "a number equal to an exclusive minimum",
                json!({"type": "integer", "minimum": 1, "exclusiveMinimum": true}),
                json!(1),
                vec!["spec.x: Invalid value: 1: spec.x in body should be greater than 1"],
            ),
            (
                "a number over maximum",
                json!({"type": "integer", "maximum": 10}),
                json!(11),
                vec![
                    "spec.x: Invalid value: 11: spec.x in body should be less than or equal to 10",
                ],
            ),
            (
                "a number equal to an exclusive maximum",
                json!({"type": "integer", "maximum": 10, "exclusiveMaximum": true}),
                json!(10),
                vec!["spec.x: Invalid value: 10: spec.x in body should be less than 10"],
            ),
            (
                "a fractional maximum prints as written",
                json!({"type": "number", "maximum": 2.5}),
                json!(3),
                vec![
                    "spec.x: Invalid value: 3: spec.x in body should be less than or equal to 2.5",
                ],
            ),
            (
                "a number that is not a multiple",
                json!({"type": "integer", "multipleOf": 5}),
                json!(12),
                vec!["spec.x: Invalid value: 12: spec.x in body should be a multiple of 5"],
            ),
            (
                "float multiples tolerate rounding",
                json!({"type": "number", "multipleOf": 0.1}),
                json!(0.3),
                vec![],
            ),
            (
                "an array over maxItems",
                json!({"type": "array", "maxItems": 2, "items": {"type": "integer"}}),
                json!([1, 2, 3]),
                vec!["spec.x: Too many: 3: must have at most 2 items"],
            ),
            (
                "an array under minItems",
                json!({"type": "array", "minItems": 1, "items": {"type": "integer"}}),
                json!([]),
                vec!["spec.x: Invalid value: 0: spec.x in body should have at least 1 items"],
            ),
            (
                "uniqueItems finds a repeated value",
                json!({"type": "array", "uniqueItems": true, "items": {"type": "integer"}}),
                json!([1, 2, 1]),
                vec!["spec.x: Invalid value: spec.x in body shouldn't contain duplicates"],
            ),
            (
                "an object under minProperties",
                json!({"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}),
                json!({}),
                vec!["spec.x: Invalid value: 0: spec.x in body should have at least 1 properties"],
            ),
            (
                "an object over maxProperties",
                json!({"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}),
                json!({"a": "1", "b": "2"}),
                vec!["spec.x: Too many: 2: must have at most 1 item"],
            ),
            (
                "an RFC 3339 date-time",
                json!({"type": "string", "format": "date-time"}),
                json!("2024-01-02T03:04:05Z"),
                vec![],
            ),
            (
                "a date-time with fraction and offset",
                json!({"type": "string", "format": "date-time"}),
                json!("2024-01-02T03:04:05.123+02:00"),
                vec![],
            ),
            (
                "a string that is no date-time",
                json!({"type": "string", "format": "date-time"}),
                json!("yesterday"),
                vec![
                    r#"spec.x: Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday""#,
                ],
            ),
            (
                "a leap day is a date",
                json!({"type": "string", "format": "date"}),
                json!("2024-02-29"),
                vec![],
            ),
            (
                "February 30th is no date",
                json!({"type": "string", "format": "date"}),
                json!("2024-02-30"),
                vec![
                    r#"spec.x: Invalid value: "2024-02-30": spec.x in body must be of type date: "2024-02-30""#,
                ],
            ),
            (
                "base64 is a byte string",
                json!({"type": "string", "format": "byte"}),
                json!("aGVsbG8="),
                vec![],
            ),
            (
                "text is not base64",
                json!({"type": "string", "format": "byte"}),
                json!("not base64!"),
                vec![
                    r#"spec.x: Invalid value: "not base64!": spec.x in body must be of type byte: "not base64!""#,
                ],
            ),
            (
                "a canonical UUID",
                json!({"type": "string", "format": "uuid"}),
                json!("123e4567-e89b-12d3-a456-426614174000"),
                vec![],
            ),
            (
                "a malformed UUID",
                json!({"type": "string", "format": "uuid"}),
                json!("123e4567-e89b-12d3-a456"),
                vec![
                    r#"spec.x: Invalid value: "123e4567-e89b-12d3-a456": spec.x in body must be of type uuid: "123e4567-e89b-12d3-a456""#,
                ],
            ),
            (
                "an integer beyond int32",
                json!({"type": "integer", "format": "int32"}),
                json!(3_000_000_000_u64),
                vec![
                    r#"spec.x: Invalid value: 3000000000: spec.x in body must be of type int32: "3000000000""#,
                ],
            ),
            (
                "unknown formats are ignored",
                json!({"type": "string", "format": "no-such-format"}),
                json!("x"),
                vec![],
            ),
            (
                "int-or-string accepts an integer",
                json!({"x-kubernetes-int-or-string": true}),
                json!(80),
                vec![],
            ),
            (
                "int-or-string accepts a string",
                json!({"x-kubernetes-int-or-string": true}),
                json!("80%"),
                vec![],
            ),
            (
                "int-or-string rejects a boolean",
                json!({"x-kubernetes-int-or-string": true}),
                json!(true),
                vec![
                    r#"spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean""#,
                ],
            ),
            (
                "a set list reports the repeated item",
                json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
                json!(["a", "b", "a"]),
                vec![r#"spec.x[2]: Duplicate value: "a""#],
            ),
            (
                "a map list reports the repeated key",
                json!({
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
                }),
                json!([{"name": "a", "port": 1}, {"name": "b", "port": 1}, {"name": "a", "port": 2}]),
                vec![r#"spec.x[2]: Duplicate value: {"name":"a"}"#],
            ),
            (
                "additionalProperties schemas validate every value",
                json!({"type": "object", "additionalProperties": {"type": "integer"}}),
                json!({"a": 1, "b": "x"}),
                vec![
                    r#"spec.x.b: Invalid value: "string": spec.x.b in body must be of type integer: "string""#,
                ],
            ),
            (
                "additionalProperties false forbids undeclared fields",
                json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}),
                json!({"a": 1, "b": 2}),
                vec![r#"spec.x: Invalid value: "b": spec.x.b in body is a forbidden property"#],
            ),
            (
                "a missing required field",
                json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}),
                json!({}),
                vec!["spec.x.name: Required value"],
            ),
            (
                "an embedded resource needs apiVersion and kind",
                json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}),
                json!({"metadata": {"name": "a"}}),
                vec![
                    "spec.x.apiVersion: Required value: must not be empty",
                    "spec.x.kind: Required value: must not be empty",
                ],
            ),
            (
                "anyOf with no passing branch reports the closest one",
                json!({
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "anyOf": [{"required": ["a"]}, {"required": ["b"]}]
                }),
                json!({}),
                vec![
                    r#"spec.x: Invalid value: "spec.x" must validate at least one schema (anyOf)"#,
                    "spec.x.a: Required value",
                ],
            ),
            (
                "oneOf with two passing branches",
                json!({"type": "integer", "oneOf": [{"minimum": 1}, {"maximum": 10}]}),
                json!(5),
                vec![
                    r#"spec.x: Invalid value: "spec.x" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
                ],
            ),
            (
                "not rejects what its schema accepts",
                json!({"type": "string", "not": {"enum": ["forbidden"]}}),
                json!("forbidden"),
                vec![r#"spec.x: Invalid value: "spec.x" must not validate the schema (not)"#],
            ),
            (
                "allOf applies every branch",
                json!({"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]}),
                json!(7),
                vec!["spec.x: Invalid value: 7: spec.x in body should be less than or equal to 5"],
            ),
            (
                "an untyped preserve-unknown-fields node accepts anything",
                json!({"x-kubernetes-preserve-unknown-fields": true}),
                json!({"any": [1, "two", null]}),
                vec![],
            ),
            (
                "CEL rules are ignored",
                json!({"type": "string", "x-kubernetes-validations": [{"rule": "false"}]}),
                json!("a"),
                vec![],
            ),
        ];
        for (reason, field, value, expected) in rows {
            let schema = spec_x(field);
            let got = messages(&schema, &json!({"spec": {"x": value}}));
            assert_eq!(got, expected, "{reason}");
        }
    }

    #[test]
    fn every_error_is_reported_at_once_in_document_order_with_item_paths() {
        let schema = compiled(json!({
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {"type": "object", "properties": {
                "engine": {"type": "string", "enum": ["postgres", "mysql"]},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "port": {"type": "integer", "maximum": 65535}}
                }},
                "replicas": {"type": "integer"}
            }}}
        }));
        let value = json!({"spec": {
            "engine": "oracle",
            "items": [{"name": "a", "port": 80}, {"port": 70000}, {"name": 3, "port": "x"}],
            "replicas": "3"
        }});
        assert_eq!(
            messages(&schema, &value),
            vec![
                r#"spec.engine: Unsupported value: "oracle": supported values: "postgres", "mysql""#,
                "spec.items[1].name: Required value",
                "spec.items[1].port: Invalid value: 70000: spec.items[1].port in body should be less than or equal to 65535",
                r#"spec.items[2].name: Invalid value: "integer": spec.items[2].name in body must be of type string: "integer""#,
                r#"spec.items[2].port: Invalid value: "string": spec.items[2].port in body must be of type integer: "string""#,
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            ]
        );
        let errors = schema.validate(&value);
        assert_eq!(errors[1].body(), "Required value");
        assert_eq!(
            errors[5].body(),
            r#"Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        );
        assert_eq!(errors[1].kind, FieldErrorKind::Required);
        assert_eq!(errors[3].kind, FieldErrorKind::TypeInvalid);
        assert_eq!(errors[0].kind.cause_reason(), "FieldValueNotSupported");
    }

    #[test]
    fn a_missing_required_top_level_field_is_named_without_prefix() {
        let schema = compiled(
            json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}),
        );
        assert_eq!(
            messages(&schema, &json!({"apiVersion": "v1", "kind": "X"})),
            vec!["spec: Required value"]
        );
    }

    #[test]
    fn root_api_version_kind_and_metadata_are_always_allowed_and_metadata_is_not_validated() {
        let schema = compiled(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 1}}},
                "spec": {"type": "object"}
            }
        }));
        let value = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "long-name", "labels": {"a": "b"}}});
        assert_eq!(messages(&schema, &value), Vec::<String>::new());
    }

    #[test]
    fn a_valid_object_produces_no_errors() {
        let schema = compiled(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "size": {"type": "string", "enum": ["small", "large"]},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
            }}}}),
        );
        assert!(
            schema
                .validate(&json!({"spec": {"size": "small", "tags": ["a", "b"]}}))
                .is_empty()
        );
    }

    #[test]
    fn compile_errors_name_the_schema_path() {
        let rows: Vec<(&str, Value, &str)> = vec![
            (
                "a pattern the regex engine rejects",
                json!({"type": "object", "properties": {"spec": {"type": "string", "pattern": "(?<=a)b"}}}),
                "openAPIV3Schema.properties[spec].pattern",
            ),
            (
                "an unknown type name",
                json!({"type": "object", "properties": {"spec": {"type": "thing"}}}),
                "openAPIV3Schema.properties[spec].type",
            ),
            (
                "properties that are not an object",
                json!({"type": "object", "properties": []}),
                "openAPIV3Schema.properties",
            ),
            (
                "a schema that is not an object",
                json!("string"),
                "openAPIV3Schema",
            ),
            (
                "a property schema that is not an object",
                json!({"type": "object", "properties": {"a": 1}}),
                "openAPIV3Schema.properties[a]",
            ),
            (
                "a zero multipleOf",
                json!({"type": "integer", "multipleOf": 0}),
                "openAPIV3Schema.multipleOf",
            ),
            (
                "a negative maxLength",
                json!({"type": "string", "maxLength": -1}),
                "openAPIV3Schema.maxLength",
            ),
            (
                "a $ref",
                json!({"$ref": "#/definitions/x"}),
                "openAPIV3Schema.$ref",
            ),
            (
                "a map list without keys",
                json!({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}),
                "openAPIV3Schema.x-kubernetes-list-type",
            ),
            (
                "an unknown list type",
                json!({"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}),
                "openAPIV3Schema.x-kubernetes-list-type",
            ),
            (
                "items given as an array",
                json!({"type": "array", "items": [{"type": "string"}]}),
                "openAPIV3Schema.items",
            ),
            (
                "a required list of non-strings",
                json!({"type": "object", "required": [1]}),
                "openAPIV3Schema.required",
            ),
            (
                "an allOf branch that is not a schema",
                json!({"type": "object", "allOf": [true]}),
                "openAPIV3Schema.allOf[0]",
            ),
        ];
        for (reason, schema, path) in rows {
            let err = StructuralSchema::compile(&schema).expect_err(reason);
            assert!(
                err.to_string().contains(&format!("{path}:")),
                "{reason}: {err}"
            );
        }
    }

    #[test]
    fn schemas_deeper_than_the_limit_are_refused() {
        let mut schema = json!({"type": "string"});
        for _ in 0..=MAX_SCHEMA_DEPTH {
            schema = json!({"type": "object", "properties": {"a": schema}});
        }
        assert!(matches!(
            StructuralSchema::compile(&schema),
            Err(SchemaError::TooDeep { .. })
        ));

        // At the limit, compiling and every walk fit a default 2 MiB test-thread stack.
        let mut shallow = json!({"type": "string", "default": "d"});
        let mut value = json!("v");
        for _ in 0..MAX_SCHEMA_DEPTH {
            shallow = json!({"type": "object", "properties": {"a": shallow}, "anyOf": [{"required": ["a"]}]});
            value = json!({"a": value, "extra": 1});
        }
        let schema = StructuralSchema::compile(&shallow).unwrap();
        assert!(schema.validate(&value).is_empty());
        assert_eq!(schema.prune(&mut value).len(), MAX_SCHEMA_DEPTH);
        schema.apply_defaults(&mut value);
        let path: Vec<PathSegment> = (0..MAX_SCHEMA_DEPTH).map(|_| field("a")).collect();
        assert!(matches!(schema.lookup(&path), Lookup::Allowed(_)));
    }

    #[test]
    fn defaults_are_applied_like_kube_apiserver() {
        let rows: Vec<(&str, Value, Value, Value)> = vec![
            (
                "an absent property gets its default",
                json!({"type": "object", "properties": {"size": {"type": "string", "default": "small"}}}),
                json!({}),
                json!({"size": "small"}),
            ),
            (
                "a present property keeps its value",
                json!({"type": "object", "properties": {"size": {"type": "string", "default": "small"}}}),
                json!({"size": "large"}),
                json!({"size": "large"}),
            ),
            (
                "a non-nullable null gets the default",
                json!({"type": "object", "properties": {"size": {"type": "string", "default": "small"}}}),
                json!({"size": null}),
                json!({"size": "small"}),
            ),
            (
                "a nullable null stays null",
                json!({"type": "object", "properties": {"size": {"type": "string", "nullable": true, "default": "small"}}}),
                json!({"size": null}),
                json!({"size": null}),
            ),
            (
                "a non-nullable null without a default is dropped",
                json!({"type": "object", "properties": {"size": {"type": "string"}}}),
                json!({"size": null}),
                json!({}),
            ),
            (
                "items of arrays are defaulted",
                json!({"type": "object", "properties": {"ports": {"type": "array", "items": {
                    "type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}
                }}}}),
                json!({"ports": [{"port": 80}, {"protocol": "UDP"}]}),
                json!({"ports": [{"port": 80, "protocol": "TCP"}, {"protocol": "UDP"}]}),
            ),
            (
                "values under additionalProperties are defaulted",
                json!({"type": "object", "properties": {"pools": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"size": {"type": "integer", "default": 1}}
                }}}}),
                json!({"pools": {"a": {}, "b": {"size": 3}}}),
                json!({"pools": {"a": {"size": 1}, "b": {"size": 3}}}),
            ),
            (
                "an absent parent without a default is not created",
                json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "string", "default": "small"}
                }}}}),
                json!({}),
                json!({}),
            ),
            (
                "a defaulted object is itself defaulted",
                json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
                    "size": {"type": "string", "default": "small"}
                }}}}),
                json!({}),
                json!({"spec": {"size": "small"}}),
            ),
            (
                "metadata is left alone",
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
                    "name": {"type": "string", "default": "x"}
                }}}}),
                json!({"metadata": {}}),
                json!({"metadata": {}}),
            ),
            (
                "defaults are inserted as written, undeclared fields included",
                json!({"type": "object", "properties": {"spec": {"type": "object", "default": {"extra": 1}, "properties": {}}}}),
                json!({}),
                json!({"spec": {"extra": 1}}),
            ),
        ];
        for (reason, schema, mut value, expected) in rows {
            compiled(schema).apply_defaults(&mut value);
            assert_eq!(value, expected, "{reason}");
        }
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_reports_their_paths() {
        let schema = compiled(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
                "parameters": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                    "known": {"type": "object", "properties": {"a": {"type": "string"}}}
                }},
                "port": {"x-kubernetes-int-or-string": true},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {
                    "spec": {"type": "object", "properties": {}}
                }},
                "empty": {"type": "object"}
            }}}
        }));
        let mut value = json!({
            "apiVersion": "x/v1",
            "kind": "X",
            "metadata": {"name": "a", "labels": {"k": "v"}},
            "spec": {
                "empty": {"a": 1},
                "items": [{"name": "a"}, {"name": "b", "extra": true}],
                "labels": {"l": {"v": "1", "w": "2"}},
                "parameters": {"free": {"deep": 1}, "known": {"a": "1", "b": "2"}},
                "port": "80",
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"c": 1}, "status": {}}
            },
            "unknownTop": 1
        });
        let pruned = schema.prune(&mut value);
        let mut expected_pruned = vec![
            "spec.empty.a",
            "spec.items[1].extra",
            "spec.labels.l.w",
            "spec.parameters.known.b",
            "spec.template.spec.c",
            "spec.template.status",
            "unknownTop",
        ];
        let mut sorted = pruned.clone();
        sorted.sort();
        expected_pruned.sort();
        assert_eq!(sorted, expected_pruned);
        assert_eq!(
            value,
            json!({
                "apiVersion": "x/v1",
                "kind": "X",
                "metadata": {"name": "a", "labels": {"k": "v"}},
                "spec": {
                    "empty": {},
                    "items": [{"name": "a"}, {"name": "b"}],
                    "labels": {"l": {"v": "1"}},
                    "parameters": {"free": {"deep": 1}, "known": {"a": "1"}},
                    "port": "80",
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
                }
            })
        );
    }

    #[test]
    fn pruning_reports_paths_in_document_order() {
        let schema = compiled(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "list": {"type": "array", "items": {"type": "object", "properties": {}}}
            }}}}),
        );
        let mut value = json!({"spec": {"list": [{"a": 1}, {"b": 1}, {"c": 1}]}});
        assert_eq!(
            schema.prune(&mut value),
            vec!["spec.list[0].a", "spec.list[1].b", "spec.list[2].c"]
        );
    }

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.to_owned())
    }

    #[test]
    fn lookup_tells_allowed_forbidden_and_unknown_paths_apart() {
        let schema = compiled(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "size": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "integer"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "parameters": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true},
                "empty": {"type": "object"}
            }}}}),
        );
        enum Expect {
            Allowed(Option<SchemaType>),
            Forbidden(&'static str),
            Unknown,
        }
        let rows: Vec<(&str, Vec<PathSegment>, Expect)> = vec![
            (
                "the empty path is the root",
                vec![],
                Expect::Allowed(Some(SchemaType::Object)),
            ),
            (
                "a declared field",
                vec![field("spec"), field("size")],
                Expect::Allowed(Some(SchemaType::String)),
            ),
            (
                "a field of an array item",
                vec![
                    field("spec"),
                    field("items"),
                    PathSegment::Index(3),
                    field("name"),
                ],
                Expect::Allowed(Some(SchemaType::Integer)),
            ),
            (
                "a key under additionalProperties",
                vec![field("spec"), field("labels"), field("team")],
                Expect::Allowed(Some(SchemaType::String)),
            ),
            (
                "apiVersion at the root",
                vec![field("apiVersion")],
                Expect::Allowed(Some(SchemaType::String)),
            ),
            (
                "below metadata anything goes",
                vec![field("metadata"), field("labels"), field("a")],
                Expect::Unknown,
            ),
            (
                "below preserve-unknown-fields anything goes",
                vec![
                    field("spec"),
                    field("parameters"),
                    field("a"),
                    PathSegment::Index(0),
                ],
                Expect::Unknown,
            ),
            (
                "an undeclared field",
                vec![field("spec"), field("nope")],
                Expect::Forbidden(r#"spec declares no field "nope""#),
            ),
            (
                "an undeclared top-level field",
                vec![field("nope")],
                Expect::Forbidden(r#"<root> declares no field "nope""#),
            ),
            (
                "a field below a string",
                vec![field("spec"), field("size"), field("x")],
                Expect::Forbidden("spec.size is a string, not an object"),
            ),
            (
                "an index into a string",
                vec![field("spec"), field("size"), PathSegment::Index(0)],
                Expect::Forbidden("spec.size is a string, not an array"),
            ),
            (
                "a field of an array",
                vec![field("spec"), field("items"), field("name")],
                Expect::Forbidden("spec.items is an array, not an object"),
            ),
            (
                "an index into an object",
                vec![field("spec"), PathSegment::Index(0)],
                Expect::Forbidden("spec is an object, not an array"),
            ),
            (
                "a field of an object without properties would be pruned",
                vec![field("spec"), field("empty"), field("a")],
                Expect::Forbidden(r#"spec.empty declares no field "a""#),
            ),
            (
                "a field below int-or-string",
                vec![field("spec"), field("port"), field("x")],
                Expect::Forbidden("spec.port is an integer-or-string, not an object"),
            ),
        ];
        for (reason, path, expected) in rows {
            match (schema.lookup(&path), expected) {
                (Lookup::Allowed(node), Expect::Allowed(ty)) => {
                    assert_eq!(node.schema_type(), ty, "{reason}")
                }
                (Lookup::Forbidden { reason: got }, Expect::Forbidden(want)) => {
                    assert_eq!(got, want, "{reason}")
                }
                (Lookup::Unknown, Expect::Unknown) => {}
                (got, _) => panic!("{reason}: got {got:?}"),
            }
        }
    }

    #[test]
    fn clones_share_one_compiled_schema() {
        let schema = compiled(json!({"type": "object"}));
        let clone = schema.clone();
        assert!(std::ptr::eq(schema.root(), clone.root()));
    }

    #[test]
    fn huge_and_odd_numbers_never_panic() {
        let schema = spec_x(
            json!({"type": "integer", "minimum": -1e300, "maximum": 1e300, "multipleOf": 3, "format": "int64"}),
        );
        for value in [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e308),
            json!(-1e308),
            json!(0),
        ] {
            let _ = schema.validate(&json!({"spec": {"x": value}}));
        }
        let errors = schema.validate(&json!({"spec": {"x": u64::MAX}}));
        assert!(
            errors.iter().any(|e| e.message.contains("int64")),
            "{errors:?}"
        );
    }

    #[test]
    fn values_deeper_than_the_schema_are_not_walked() {
        let schema = compiled(
            json!({"type": "object", "properties": {"spec": {"x-kubernetes-preserve-unknown-fields": true}}}),
        );
        // serde_json drops values recursively, so the test itself cannot go much deeper.
        let mut deep = json!(1);
        for _ in 0..500 {
            deep = Value::Array(vec![deep]);
        }
        let mut value = json!({"spec": deep});
        assert!(schema.validate(&value).is_empty());
        schema.apply_defaults(&mut value);
        assert!(schema.prune(&mut value).is_empty());
    }

    #[test]
    fn unique_items_are_found_in_long_arrays_and_objects_compare_by_content() {
        let schema = spec_x(json!({"type": "array", "x-kubernetes-list-type": "set", "items": {}}));
        let mut items: Vec<Value> = (0..100).map(|i| json!(i)).collect();
        items.push(json!(42));
        items.push(json!({"a": 1, "b": 2}));
        items.push(json!({"b": 2, "a": 1}));
        let errors = schema.validate(&json!({"spec": {"x": items}}));
        let found: Vec<(&str, FieldErrorKind, Option<&Value>)> = errors
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.value.as_ref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("spec.x[100]", FieldErrorKind::Duplicate, Some(&json!(42))),
                (
                    "spec.x[102]",
                    FieldErrorKind::Duplicate,
                    Some(&json!({"a": 1, "b": 2}))
                ),
            ]
        );
        assert_eq!(errors[0].to_string(), "spec.x[100]: Duplicate value: 42");
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::super::StructuralSchema;

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|i| json!(i)),
                any::<u64>().prop_map(|u| json!(u)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                "[a-z0-9 é-]{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(6, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        "(spec|x|name|port|items|type|properties|[a-z]{1,4})",
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn rich_schema() -> StructuralSchema {
            StructuralSchema::compile(&json!({
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "name": {"type": "string", "pattern": "^[a-z]", "maxLength": 5, "format": "date-time"},
                    "port": {"x-kubernetes-int-or-string": true, "default": 80},
                    "n": {"type": "number", "multipleOf": 0.5, "minimum": 0, "format": "int32"},
                    "items": {"type": "array", "uniqueItems": true, "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string", "default": "a"}}}},
                    "free": {"x-kubernetes-preserve-unknown-fields": true},
                    "map": {"type": "object", "additionalProperties": {"type": "integer", "nullable": true}},
                    "x": {"anyOf": [{"type": "string"}, {"type": "integer"}], "oneOf": [{"minimum": 1}], "not": {"enum": [3]}}
                }}}
            }))
            .unwrap()
        }

        proptest! {
            #[test]
            fn no_value_makes_validation_defaulting_or_pruning_panic(value in any_json()) {
                let schema = rich_schema();
                let _ = schema.validate(&value);
                let mut wrapped = json!({"spec": value.clone()});
                let _ = schema.validate(&wrapped);
                schema.apply_defaults(&mut wrapped);
                let _ = schema.prune(&mut wrapped);
                let mut top = value;
                schema.apply_defaults(&mut top);
                let _ = schema.prune(&mut top);
            }

            #[test]
            fn no_schema_makes_compilation_panic(schema in any_json()) {
                if let Ok(compiled) = StructuralSchema::compile(&schema) {
                    let mut value = json!({"spec": {"x": [1, "a", null]}});
                    let _ = compiled.validate(&value);
                    compiled.apply_defaults(&mut value);
                    let _ = compiled.prune(&mut value);
                }
            }

            #[test]
            fn pruned_values_have_nothing_left_to_prune(value in any_json()) {
                let schema = rich_schema();
                let mut wrapped = json!({"spec": value});
                let _ = schema.prune(&mut wrapped);
                prop_assert!(schema.prune(&mut wrapped).is_empty());
            }
        }
    }
}
