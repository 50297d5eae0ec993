//! CRD validation rules: `x-kubernetes-validations` (CEL) on custom resources, as
//! kube-apiserver evaluates them.
//!
//! The expression language and Kubernetes' CEL libraries (strings, lists, sets, regex, URLs,
//! IPs, quantities, semver, format, math) come from `kube-cel` on top of the `cel` crate.
//! What this module adds is what the API server does around them, written here because
//! `kube-cel`'s own validator differs from kube-apiserver where clients can see it (it pairs old
//! list items by index, formats errors its own way and has no cost limits):
//!
//! - [`Validator::compile`] reads a version's `openAPIV3Schema` once, compiles every rule and
//!   `messageExpression`, checks them as the API server does when a CRD is written (syntax,
//!   undeclared variables, fields the schema does not declare, `reason`, `fieldPath`, `oldSelf`
//!   on the uncorrelatable part of a schema, `optionalOldSelf` without `oldSelf`) and estimates
//!   each rule's worst-case cost from the schema's `maxItems`/`maxLength`/`maxProperties`
//!   (or, where absent, from the largest request body, as the API server does). A rule over
//!   the per-expression limit, or a schema whose rules together exceed the per-schema limit,
//!   is refused with the API server's "estimated rule cost exceeds budget" error. The result
//!   is cached with the resource type ([`Rules`]), so requests never compile.
//! - [`Validator::validate`] walks an object with the schema, binding `self` to the value at
//!   each node that declares rules (scalars, objects, maps, lists; property names escaped as
//!   `__dash__`, `__dot__`, ...; `date-time`, `duration` and `byte` strings as timestamps,
//!   durations and bytes; `number` fields as doubles) and `oldSelf` to the correlated old
//!   value: map keys and object fields by name, items of `x-kubernetes-list-type: map` lists
//!   by their keys, nothing else. Transition rules run only when an old value exists, unless
//!   `optionalOldSelf` binds `oldSelf` as an optional.
//! - Failures become kube-apiserver's field errors: `spec.replicas: Invalid value: "integer":
//!   <message>` (the schema type stands for the value, as kube-apiserver up to 1.33 prints it),
//!   `Forbidden: <message>`, `Required value: <message>`, `Duplicate value: "object"` for the
//!   rule's `reason`, at the rule's `fieldPath` when given; `messageExpression` replaces
//!   `message` unless it fails or yields an empty string. A rule at the root reports `<nil>`.
//! - Ratcheting (on by default since Kubernetes 1.30): on update, a rule without `oldSelf`
//!   that fails on a value equal to its correlated old value answers with a `Warning` instead
//!   of refusing the write, so a rule added later does not freeze existing objects.
//!
//! Runtime cost: the `cel` interpreter has no cost meter, so the bound is static. Rules run only
//! on objects that passed the structural schema (bounds included; otherwise the rules are
//! skipped with kube-apiserver's "some validation rules were not checked" error) and every
//! compiled rule's estimate is within the per-expression limit, so no single request can make
//! a rule loop longer than its admitted estimate.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use kube_cel::KubeCelExt as _;
use kube_cel::cel::common::ast::{EntryExpr, Expr};
use kube_cel::cel::objects::{Key, Map, OptionalValue};
use kube_cel::cel::{Context, IdedExpr, Program, Value as Cel};
use serde_json::Value;

/// kube-apiserver's limit on one expression's estimated cost (`StaticEstimatedCostLimit`).
pub(crate) const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// kube-apiserver's limit on the estimated cost of all rules of one schema, each multiplied by
/// how many times it can run (`StaticEstimatedCRDCostLimit`).
pub(crate) const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;
/// The request size kube-apiserver assumes for lists, maps and strings without bounds.
const MAX_REQUEST_SIZE: u64 = 3 * 1024 * 1024;

/// The error kube-apiserver adds when structural errors keep the rules from running.
pub(crate) const NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// A compiled version's rules, compiled on first use and shared by the clones of its resource
/// type. `None` inside: the schema has no rules (or could not be compiled, which admission
/// refuses before a CRD is stored).
#[derive(Clone, Default)]
pub struct Rules {
    schema: Option<Arc<Value>>,
    compiled: Arc<OnceLock<Option<Validator>>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

impl Rules {
    /// Rules for an `openAPIV3Schema`; nothing is compiled until [`Rules::get`].
    pub fn new(schema: Option<&Value>) -> Self {
        Self {
            schema: schema.filter(|s| has_rules(s)).cloned().map(Arc::new),
            compiled: Arc::default(),
        }
    }

    /// The compiled validator, compiling it the first time.
    pub fn get(&self) -> Option<&Validator> {
        self.compiled
            .get_or_init(|| {
                self.schema
                    .as_deref()
                    .and_then(|s| Validator::compile(s).ok())
            })
            .as_ref()
    }
}

/// Adds the rules' verdict to the structural one (`checked`: the pruned fields, or the
/// schema's causes). As kube-apiserver, rules run when the object is structurally valid or its
/// errors are not of a blocking kind (wrong type, missing, unsupported, too long, too many);
/// otherwise they are skipped with one cause saying so.
pub(crate) fn admit(
    rules: &Rules,
    obj: &Value,
    old: Option<&Value>,
    checked: Result<Vec<String>, Vec<crate::error::FieldCause>>,
    warnings: Option<&crate::validation::Warnings>,
) -> Result<Vec<String>, Vec<crate::error::FieldCause>> {
    let Some(validator) = rules.get() else {
        return checked;
    };
    let blocking = |c: &crate::error::FieldCause| {
        [
            "Required value",
            "Unsupported value",
            "Too long",
            "Too many",
        ]
        .iter()
        .any(|p| c.message.starts_with(p))
            || c.message.contains("must be of type")
    };
    let failures = |causes: &mut Vec<crate::error::FieldCause>| {
        for v in validator.validate(obj, old) {
            if v.ratcheted {
                if let Some(w) = warnings {
                    w.extend([format!("{}: {}", v.field, v.message)]);
                }
            } else {
                causes.push(crate::error::FieldCause {
                    field: v.field,
                    message: v.message,
                });
            }
        }
    };
    let mut causes = match checked {
        Ok(pruned) => {
            let mut causes = Vec::new();
            failures(&mut causes);
            if causes.is_empty() {
                return Ok(pruned);
            }
            return Err(causes);
        }
        Err(causes) if causes.iter().any(blocking) => {
            let mut causes = causes;
            causes.push(crate::error::FieldCause {
                field: "<nil>".into(),
                message: format!("Invalid value: \"null\": {NOT_CHECKED}"),
            });
            return Err(causes);
        }
        Err(causes) => causes,
    };
    failures(&mut causes);
    if causes.is_empty() {
        return Ok(Vec::new());
    }
    Err(causes)
}

/// Refuses a CRD whose versions declare rules kube-apiserver would not admit, naming each
/// rule's path (`spec.versions[0].schema.openAPIV3Schema.properties[spec]
/// .x-kubernetes-validations[0].rule`).
pub(crate) fn admit_crd_rules(
    versions: &[Value],
    target: &crate::error::ErrorTarget,
) -> Result<(), crate::error::ApiError> {
    let mut causes = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let Some(schema) = v
            .pointer("/schema/openAPIV3Schema")
            .filter(|s| has_rules(s))
        else {
            continue;
        };
        if let Err(errors) = Validator::compile(schema) {
            let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
            causes.extend(errors.into_iter().map(|e| crate::error::FieldCause {
                field: if e.path.is_empty() {
                    base.clone()
                } else {
                    format!("{base}.{}", e.path)
                },
                message: e.message,
            }));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(crate::error::ApiError::Invalid {
            target: target.clone(),
            causes,
        })
    }
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || m.values().any(has_rules)
        }
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// A rule that cannot be admitted: `path` is relative to `openAPIV3Schema`
/// (`properties[spec].x-kubernetes-validations[0].rule`), `message` is the field error's body
/// (`Invalid value: ...: compilation failed: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

/// A failed rule on an object: `field` as kube-apiserver prints it and the error's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
    /// The value was not changed by this update: kube-apiserver's ratcheting answers such a
    /// failure with a `Warning` instead of refusing the write.
    pub ratcheted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    None,
    DateTime,
    Duration,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

struct CompiledRule {
    rule: String,
    message: Option<String>,
    program: Program,
    message_program: Option<Program>,
    reason: Reason,
    /// `fieldPath` normalized to kube-apiserver's form (`spec.x`, `labels[k]`).
    field_path: Option<String>,
    uses_old_self: bool,
    optional_old_self: bool,
}

struct Node {
    ty: String,
    format: Format,
    int_or_string: bool,
    properties: Vec<(String, usize)>,
    additional: Option<usize>,
    items: Option<usize>,
    /// `x-kubernetes-list-map-keys` of a `map` list: its items are correlated by these.
    map_keys: Option<Vec<String>>,
    /// The root of a resource (the object, or an `x-kubernetes-embedded-resource`).
    resource_root: bool,
    max_items: Option<u64>,
    max_length: Option<u64>,
    max_properties: Option<u64>,
    rules: Vec<CompiledRule>,
    /// This node or one below it declares rules.
    has_rules: bool,
}

/// The compiled rules of one schema, in a tree shaped like the schema.
pub struct Validator {
    nodes: Vec<Node>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

thread_local! {
    static BASE: Context<'static> = Context::default().with_all();
}

/// CEL's reserved words, which property names are escaped from (`__in__`).
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as CEL sees it, or `None` when it cannot be expressed (kube-apiserver
/// leaves such properties out of `self`).
fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/')) {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// Go's `%q` of a string, close enough for the ASCII texts of rules.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `apiextensions.ValidationRule{...}` as Go's `%#v` prints the rule in a CRD error.
fn go_rule(raw: &Value) -> String {
    let text = |k: &str| go_quote(raw.get(k).and_then(Value::as_str).unwrap_or_default());
    let reason = match raw.get("reason").and_then(Value::as_str) {
        Some(r) => format!("(*apiextensions.FieldValueErrorReason)({})", go_quote(r)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".into(),
    };
    let optional = match raw.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    )
}

struct Builder {
    nodes: Vec<Node>,
    errors: Vec<RuleError>,
    /// (schema path of the expression, estimated cost × cardinality)
    costs: Vec<(String, u64)>,
}

impl Validator {
    /// Compiles every rule of an `openAPIV3Schema`; `Err` lists each rule that kube-apiserver
    /// would refuse, with its path and the error's body.
    pub fn compile(schema: &Value) -> Result<Self, Vec<RuleError>> {
        let mut b = Builder {
            nodes: Vec::new(),
            errors: Vec::new(),
            costs: Vec::new(),
        };
        b.node(schema, true, "", None, 1);
        let total = b
            .costs
            .iter()
            .fold(0u64, |sum, (_, c)| sum.saturating_add(*c));
        if b.errors.is_empty() && total > STATIC_ESTIMATED_CRD_COST_LIMIT {
            let mut expensive = b.costs.clone();
            expensive.sort_by_key(|b| std::cmp::Reverse(b.1));
            for (path, _) in expensive.into_iter().take(4) {
                b.errors.push(RuleError {
                    path,
                    message: "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema".into(),
                });
            }
            b.errors.push(RuleError {
                path: String::new(),
                message: format!(
                    "Forbidden: {}",
                    cost_message(
                        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                        total,
                        STATIC_ESTIMATED_CRD_COST_LIMIT
                    )
                ),
            });
        }
        if b.errors.is_empty() {
            Ok(Self { nodes: b.nodes })
        } else {
            Err(b.errors)
        }
    }

    /// Evaluates the rules against an object (already defaulted and structurally valid) and,
    /// on update, its stored predecessor.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Violation> {
        let mut out = Vec::new();
        BASE.with(|base| self.walk(base, 0, obj, old, false, None, &mut out));
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        base: &Context<'static>,
        index: usize,
        value: &Value,
        old: Option<&Value>,
        unchanged_ancestor: bool,
        path: Option<&str>,
        out: &mut Vec<Violation>,
    ) {
        let node = &self.nodes[index];
        if !node.has_rules || value.is_null() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        // Ratcheting: a value equal to its correlated old value, or inside an uncorrelatable
        // list that did not change, keeps its failures as warnings.
        let unchanged = match old {
            Some(o) => o == value,
            None => unchanged_ancestor,
        };
        if !node.rules.is_empty() {
            self.evaluate(base, index, value, old, unchanged, path, out);
        }
        let child = |segment: &str| match path {
            None => segment.to_owned(),
            Some(p) => format!("{p}.{segment}"),
        };
        match value {
            Value::Object(map) => {
                for (name, child_index) in &node.properties {
                    if let Some(v) = map.get(name) {
                        let p = child(name);
                        self.walk(
                            base,
                            *child_index,
                            v,
                            old.and_then(|o| o.get(name)),
                            false,
                            Some(&p),
                            out,
                        );
                    }
                }
                if let Some(additional) = node.additional {
                    for (key, v) in map {
                        let p = format!("{}[{key}]", path.unwrap_or_default());
                        self.walk(
                            base,
                            additional,
                            v,
                            old.and_then(|o| o.get(key)),
                            false,
                            Some(&p),
                            out,
                        );
                    }
                }
            }
            Value::Array(items) => {
                if let Some(items_index) = node.items {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = match (&node.map_keys, old) {
                            (Some(keys), Some(Value::Array(olds))) => olds
                                .iter()
                                .find(|o| keys.iter().all(|k| o.get(k) == item.get(k))),
                            _ => None,
                        };
                        let p = format!("{}[{i}]", path.unwrap_or_default());
                        let inherited = node.map_keys.is_none() && unchanged;
                        self.walk(base, items_index, item, old_item, inherited, Some(&p), out);
                    }
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        base: &Context<'static>,
        index: usize,
        value: &Value,
        old: Option<&Value>,
        unchanged: bool,
        path: Option<&str>,
        out: &mut Vec<Violation>,
    ) {
        let node = &self.nodes[index];
        let field = path.unwrap_or("<nil>");
        let type_value = go_quote(&node.ty);
        let mut ctx = base.new_inner_scope();
        ctx.add_variable_from_value("self", self.to_cel(index, value));
        let old_cel = old.map(|o| self.to_cel(index, o));
        for rule in &node.rules {
            if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut scope = ctx.new_inner_scope();
            if rule.uses_old_self {
                let bound = match (&old_cel, rule.optional_old_self) {
                    (Some(o), false) => o.clone(),
                    (Some(o), true) => Cel::Opaque(Arc::new(OptionalValue::of(o.clone()))),
                    (None, _) => Cel::Opaque(Arc::new(OptionalValue::none())),
                };
                scope.add_variable_from_value("oldSelf", bound);
            }
            let error_string = rule
                .message
                .clone()
                .unwrap_or_else(|| rule.rule.trim().to_owned());
            match execute(&rule.program, &scope) {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => {
                    let detail = rule
                        .message_program
                        .as_ref()
                        .and_then(|p| match execute(p, &scope) {
                            Ok(Cel::String(s)) => {
                                let t = s.trim();
                                (!t.is_empty() && !t.contains(['\n', '\r']) && t.len() <= 5120)
                                    .then(|| t.to_owned())
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| match &rule.message {
                            Some(m) => m.clone(),
                            None => format!("failed rule: {}", rule.rule.trim()),
                        });
                    let at = match (&rule.field_path, path) {
                        (Some(fp), Some(p)) => format!("{p}.{fp}"),
                        (Some(fp), None) => fp.clone(),
                        (None, _) => field.to_owned(),
                    };
                    let message = match rule.reason {
                        Reason::Invalid => format!("Invalid value: {type_value}: {detail}"),
                        Reason::Forbidden => format!("Forbidden: {detail}"),
                        Reason::Required => format!("Required value: {detail}"),
                        Reason::Duplicate => format!("Duplicate value: {type_value}"),
                    };
                    out.push(Violation {
                        field: at,
                        message,
                        ratcheted: unchanged && !rule.uses_old_self,
                    });
                }
                Ok(other) => out.push(Violation {
                    ratcheted: false,
                    field: field.to_owned(),
                    message: format!(
                        "Invalid value: {type_value}: rule did not evaluate to bool (got {}) evaluating rule: {error_string}",
                        other.type_of()
                    ),
                }),
                Err(e) => {
                    let text = match &e {
                        kube_cel::cel::ExecutionError::NoSuchOverload => format!(
                            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {error_string}"
                        ),
                        kube_cel::cel::ExecutionError::NoSuchKey(k) => {
                            format!("no such key: {k} evaluating rule: {error_string}")
                        }
                        other => format!("{other} evaluating rule: {error_string}"),
                    };
                    out.push(Violation {
                        field: field.to_owned(),
                        message: format!("Invalid value: {type_value}: {text}"),
                        ratcheted: false,
                    });
                }
            }
        }
    }

    /// The CEL value of a JSON value at a schema node.
    fn to_cel(&self, index: usize, value: &Value) -> Cel {
        let node = &self.nodes[index];
        match value {
            Value::Null => Cel::Null,
            Value::Bool(b) => Cel::Bool(*b),
            Value::Number(n) => {
                if node.ty == "number" {
                    Cel::Float(n.as_f64().unwrap_or(f64::NAN))
                } else if let Some(i) = n.as_i64() {
                    Cel::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Cel::UInt(u)
                } else {
                    Cel::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => string_value(s, node.format, node.int_or_string),
            Value::Array(items) => Cel::List(Arc::new(
                items
                    .iter()
                    .map(|v| match node.items {
                        Some(i) => self.to_cel(i, v),
                        None => dynamic(v),
                    })
                    .collect(),
            )),
            Value::Object(map) => {
                let mut out: HashMap<Key, Cel> = HashMap::new();
                if !node.properties.is_empty() || node.resource_root {
                    for (name, child) in &node.properties {
                        if let (Some(v), Some(escaped)) = (map.get(name), escape(name)) {
                            out.insert(Key::String(Arc::new(escaped)), self.to_cel(*child, v));
                        }
                    }
                    if node.resource_root {
                        for k in ["apiVersion", "kind"] {
                            if let Some(Value::String(s)) = map.get(k) {
                                out.insert(
                                    Key::String(Arc::new(k.to_owned())),
                                    Cel::String(Arc::new(s.clone())),
                                );
                            }
                        }
                        if let Some(meta) = map.get("metadata") {
                            let mut m: HashMap<Key, Cel> = HashMap::new();
                            for k in ["name", "generateName"] {
                                if let Some(Value::String(s)) = meta.get(k) {
                                    m.insert(
                                        Key::String(Arc::new(k.to_owned())),
                                        Cel::String(Arc::new(s.clone())),
                                    );
                                }
                            }
                            out.insert(
                                Key::String(Arc::new("metadata".into())),
                                Cel::Map(Map { map: Arc::new(m) }),
                            );
                        }
                    }
                } else if let Some(additional) = node.additional {
                    for (k, v) in map {
                        out.insert(Key::String(Arc::new(k.clone())), self.to_cel(additional, v));
                    }
                } else {
                    return dynamic(value);
                }
                Cel::Map(Map { map: Arc::new(out) })
            }
        }
    }
}

/// Runs a program; a panic inside the interpreter (a bug there) becomes an evaluation error
/// instead of unwinding through the caller, which holds the cluster's lock.
fn execute(program: &Program, ctx: &Context<'_>) -> Result<Cel, kube_cel::cel::ExecutionError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(ctx))).unwrap_or_else(
        |_| {
            Err(kube_cel::cel::ExecutionError::function_error(
                "evaluation",
                "internal error in the expression interpreter",
            ))
        },
    )
}

fn string_value(s: &str, format: Format, int_or_string: bool) -> Cel {
    if int_or_string {
        return Cel::String(Arc::new(s.to_owned()));
    }
    match format {
        Format::DateTime => chrono::DateTime::parse_from_rfc3339(s)
            .map(Cel::Timestamp)
            .unwrap_or_else(|_| Cel::String(Arc::new(s.to_owned()))),
        Format::Duration => go_duration(s)
            .map(Cel::Duration)
            .unwrap_or_else(|| Cel::String(Arc::new(s.to_owned()))),
        Format::Bytes => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| Cel::Bytes(Arc::new(b)))
                .unwrap_or_else(|_| Cel::String(Arc::new(s.to_owned())))
        }
        Format::None => Cel::String(Arc::new(s.to_owned())),
    }
}

/// A JSON value where the schema says nothing of its shape.
fn dynamic(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Cel::Int)
            .or_else(|| n.as_u64().map(Cel::UInt))
            .unwrap_or_else(|| Cel::Float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(dynamic).collect())),
        Value::Object(m) => Cel::Map(Map {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), dynamic(v)))
                    .collect(),
            ),
        }),
    }
}

/// Parses a Go duration (`1h30m`, `250ms`, `-1.5s`), the `duration` format's syntax.
fn go_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(nanos as i64);
    Some(if negative { -d } else { d })
}

fn cost_message(name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_owned()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

/// Normalizes a rule's `fieldPath` (`.spec.x`, `.labels['a.b']`) against the schema below the
/// rule, as kube-apiserver's `ValidFieldPath`; `Err` when it names no declared field.
fn normalize_field_path(path: &str, schema: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut schema = schema;
    let mut rest = path;
    let mut step = |name: &str, bracket: bool, schema: &mut &Value| -> Result<(), String> {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        if let Some(p) = props {
            *schema = p.get(name).ok_or("does not refer to a valid field")?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
        } else if let Some(a) = additional {
            *schema = a;
            out.push_str(&format!("[{name}]"));
        } else {
            return Err("does not refer to a valid field".into());
        }
        let _ = bracket;
        Ok(())
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").ok_or("unexpected end of JSON path")?;
            step(&r[..end], true, &mut schema)?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err("unexpected end of JSON path".into());
            }
            step(&r[..end], false, &mut schema)?;
            rest = &r[end..];
        } else {
            return Err(format!(
                "expected [ or . but got: {}",
                rest.chars().next().unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

fn u64_of(schema: &Value, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

impl Builder {
    /// Adds the node for `schema` and everything below; `uncorrelatable` names the list or map
    /// above that makes `oldSelf` meaningless here; `cardinality` is how many times a rule here
    /// can run for one object.
    fn node(
        &mut self,
        schema: &Value,
        resource_root: bool,
        path: &str,
        uncorrelatable: Option<&str>,
        cardinality: u64,
    ) -> usize {
        let index = self.nodes.len();
        let text = |k: &str| schema.get(k).and_then(Value::as_str).unwrap_or_default();
        let format = match text("format") {
            "date-time" => Format::DateTime,
            "duration" => Format::Duration,
            "byte" => Format::Bytes,
            _ => Format::None,
        };
        self.nodes.push(Node {
            ty: text("type").to_owned(),
            format,
            int_or_string: schema
                .get("x-kubernetes-int-or-string")
                .and_then(Value::as_bool)
                == Some(true),
            properties: Vec::new(),
            additional: None,
            items: None,
            map_keys: (text("x-kubernetes-list-type") == "map").then(|| {
                schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            resource_root: resource_root
                || schema
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true),
            max_items: u64_of(schema, "maxItems"),
            max_length: u64_of(schema, "maxLength"),
            max_properties: u64_of(schema, "maxProperties"),
            rules: Vec::new(),
            has_rules: false,
        });
        let join = |segment: &str| {
            if path.is_empty() {
                segment.to_owned()
            } else {
                format!("{path}.{segment}")
            }
        };
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let i = self.node(
                    sub,
                    false,
                    &join(&format!("properties[{name}]")),
                    uncorrelatable,
                    cardinality,
                );
                self.nodes[index].properties.push((name.clone(), i));
            }
        }
        if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            let size = self.size(index);
            let i = self.node(
                sub,
                false,
                &join("additionalProperties"),
                uncorrelatable,
                cardinality.saturating_mul(size),
            );
            self.nodes[index].additional = Some(i);
        }
        if let Some(sub) = schema.get("items").filter(|a| a.is_object()) {
            let size = self.size(index);
            let here = if path.is_empty() {
                "openAPIV3Schema".to_owned()
            } else {
                format!("openAPIV3Schema.{path}")
            };
            let below = if self.nodes[index].map_keys.is_some() {
                uncorrelatable.map(str::to_owned)
            } else {
                Some(uncorrelatable.map(str::to_owned).unwrap_or(here))
            };
            let i = self.node(
                sub,
                false,
                &join("items"),
                below.as_deref(),
                cardinality.saturating_mul(size),
            );
            self.nodes[index].items = Some(i);
        }
        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for (i, raw) in rules.iter().enumerate() {
                let rule_path = join(&format!("x-kubernetes-validations[{i}]"));
                if let Some(r) =
                    self.rule(index, schema, raw, &rule_path, uncorrelatable, cardinality)
                {
                    self.nodes[index].rules.push(r);
                }
            }
        }
        let below = {
            let n = &self.nodes[index];
            !n.rules.is_empty()
                || n.properties.iter().any(|(_, c)| self.nodes[*c].has_rules)
                || n.additional.is_some_and(|c| self.nodes[c].has_rules)
                || n.items.is_some_and(|c| self.nodes[c].has_rules)
        };
        self.nodes[index].has_rules = below;
        index
    }

    /// The most elements (items, properties, characters) a value at this node can have.
    fn size(&self, index: usize) -> u64 {
        let n = &self.nodes[index];
        match n.ty.as_str() {
            "integer" | "number" | "boolean" => 1,
            "array" => n.max_items.unwrap_or(MAX_REQUEST_SIZE / 2),
            "object" if n.additional.is_none() && !n.properties.is_empty() => {
                n.properties.len() as u64 + 3
            }
            "object" => n.max_properties.unwrap_or(MAX_REQUEST_SIZE / 6),
            "string" => n.max_length.unwrap_or(MAX_REQUEST_SIZE),
            _ => n
                .max_length
                .or(n.max_items)
                .or(n.max_properties)
                .unwrap_or(MAX_REQUEST_SIZE),
        }
    }

    fn rule(
        &mut self,
        index: usize,
        schema: &Value,
        raw: &Value,
        path: &str,
        uncorrelatable: Option<&str>,
        cardinality: u64,
    ) -> Option<CompiledRule> {
        let fail = |b: &mut Builder, at: &str, message: String| {
            b.errors.push(RuleError {
                path: format!("{path}.{at}"),
                message,
            });
        };
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        let Some(rule) = text("rule").filter(|r| !r.trim().is_empty()) else {
            fail(self, "rule", "Required value: rule is not specified".into());
            return None;
        };
        let message = text("message");
        if let Some(m) = &message {
            if m.trim().is_empty() {
                fail(
                    self,
                    "message",
                    format!(
                        "Invalid value: {}: message must be non-empty if specified",
                        go_quote(m)
                    ),
                );
            } else if m.trim().contains(['\n', '\r']) {
                fail(
                    self,
                    "message",
                    format!(
                        "Invalid value: {}: message must not contain line breaks",
                        go_quote(m)
                    ),
                );
            }
        } else if rule.trim().contains(['\n', '\r']) {
            fail(
                self,
                "message",
                "Required value: message must be specified if rule contains line breaks".into(),
            );
        }
        let reason = match text("reason").as_deref() {
            None | Some("FieldValueInvalid") => Reason::Invalid,
            Some("FieldValueForbidden") => Reason::Forbidden,
            Some("FieldValueRequired") => Reason::Required,
            Some("FieldValueDuplicate") => Reason::Duplicate,
            Some(other) => {
                fail(
                    self,
                    "reason",
                    format!(
                        "Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                        go_quote(other)
                    ),
                );
                Reason::Invalid
            }
        };
        let field_path = match text("fieldPath") {
            None => None,
            Some(fp) if fp.trim().is_empty() => {
                fail(
                    self,
                    "fieldPath",
                    format!(
                        "Invalid value: {}: fieldPath must be non-empty if specified",
                        go_quote(&fp)
                    ),
                );
                None
            }
            Some(fp) => match normalize_field_path(fp.trim(), schema) {
                Ok(p) => Some(p),
                Err(_) => {
                    fail(
                        self,
                        "fieldPath",
                        format!(
                            "Invalid value: {}: fieldPath must be a valid path",
                            go_quote(&fp)
                        ),
                    );
                    None
                }
            },
        };
        let program = match Program::compile(&rule) {
            Ok(p) => p,
            Err(e) => {
                fail(
                    self,
                    "rule",
                    format!(
                        "Invalid value: {}: compilation failed: {}",
                        go_rule(raw),
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                );
                return None;
            }
        };
        let uses_old_self = program.references().has_variable("oldSelf");
        let mut checker = Checker {
            b: self,
            self_node: index,
            scopes: Vec::new(),
            accumulators: Vec::new(),
            errors: Vec::new(),
        };
        let (cost, _) = checker.expr(&program.expression().expr);
        let type_errors = std::mem::take(&mut checker.errors);
        if let Some(first) = type_errors.first() {
            fail(
                self,
                "rule",
                format!(
                    "Invalid value: {}: compilation failed: ERROR: <input>: {first}",
                    go_rule(raw)
                ),
            );
            return None;
        }
        let cost = cost.saturating_mul(cardinality.max(1));
        if cost > STATIC_ESTIMATED_COST_LIMIT {
            fail(
                self,
                "rule",
                format!(
                    "Forbidden: {}",
                    cost_message("estimated rule cost", cost, STATIC_ESTIMATED_COST_LIMIT)
                ),
            );
        }
        self.costs.push((format!("{path}.rule"), cost));
        let message_program = match text("messageExpression") {
            None => None,
            Some(expr) if expr.trim().is_empty() => {
                fail(
                    self,
                    "messageExpression",
                    "Required value: messageExpression must be non-empty if specified".into(),
                );
                None
            }
            Some(expr) => match Program::compile(&expr) {
                Ok(p) => {
                    let mut checker = Checker {
                        b: self,
                        self_node: index,
                        scopes: Vec::new(),
                        accumulators: Vec::new(),
                        errors: Vec::new(),
                    };
                    let (c, _) = checker.expr(&p.expression().expr);
                    let errors = std::mem::take(&mut checker.errors);
                    if let Some(first) = errors.first() {
                        fail(
                            self,
                            "messageExpression",
                            format!(
                                "Invalid value: {}: messageExpression compilation failed: ERROR: <input>: {first}",
                                go_rule(raw)
                            ),
                        );
                    }
                    let c = c.saturating_mul(cardinality.max(1));
                    if c > STATIC_ESTIMATED_COST_LIMIT {
                        fail(
                            self,
                            "messageExpression",
                            format!(
                                "Forbidden: {}",
                                cost_message(
                                    "estimated messageExpression cost",
                                    c,
                                    STATIC_ESTIMATED_COST_LIMIT
                                )
                            ),
                        );
                    }
                    self.costs.push((format!("{path}.messageExpression"), c));
                    Some(p)
                }
                Err(e) => {
                    fail(
                        self,
                        "messageExpression",
                        format!(
                            "Invalid value: {}: messageExpression compilation failed: {}",
                            go_rule(raw),
                            e.to_string().lines().next().unwrap_or_default()
                        ),
                    );
                    None
                }
            },
        };
        let optional_old_self = raw.get("optionalOldSelf").and_then(Value::as_bool);
        if uses_old_self {
            if let Some(within) = uncorrelatable {
                fail(
                    self,
                    "rule",
                    format!(
                        "Invalid value: {}: oldSelf cannot be used on the uncorrelatable portion of the schema within {within}",
                        go_quote(&rule)
                    ),
                );
            }
        } else if let Some(o) = optional_old_self {
            fail(
                self,
                "optionalOldSelf",
                format!("Invalid value: {o}: may not be set if oldSelf is not used in rule"),
            );
        }
        Some(CompiledRule {
            rule,
            message: message.map(|m| m.trim().to_owned()),
            program,
            message_program,
            reason,
            field_path,
            uses_old_self,
            optional_old_self: optional_old_self == Some(true),
        })
    }
}

/// What an expression's value is known to be, for the cost estimate and field checks.
#[derive(Clone, Copy)]
enum Shape {
    /// A value at this schema node.
    Node(usize),
    /// Something else with at most this many elements.
    Sized(u64),
}

/// Walks a rule's syntax tree: estimates its worst-case cost (kube-apiserver's model, coarser:
/// a comprehension costs its range's size times its body, string and list functions their
/// operand's size) and reports variables and fields that do not exist.
struct Checker<'a> {
    b: &'a Builder,
    self_node: usize,
    scopes: Vec<(String, Shape)>,
    /// The accumulators of the comprehensions being walked.
    accumulators: Vec<String>,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn size_of(&self, shape: Shape) -> u64 {
        match shape {
            Shape::Node(i) => self.b.size(i),
            Shape::Sized(n) => n,
        }
    }

    fn expr(&mut self, e: &Expr) -> (u64, Shape) {
        match e {
            Expr::Ident(name) => {
                if let Some((_, shape)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
                    return (1, *shape);
                }
                match name.as_str() {
                    "self" | "oldSelf" => (1, Shape::Node(self.self_node)),
                    _ => {
                        self.errors.push(format!(
                            "undeclared reference to '{name}' (in container '')"
                        ));
                        (1, Shape::Sized(1))
                    }
                }
            }
            Expr::Literal(lit) => {
                use kube_cel::cel::common::ast::LiteralValue;
                let size = match lit {
                    LiteralValue::String(s) => s.inner().len() as u64,
                    LiteralValue::Bytes(b) => b.inner().len() as u64,
                    _ => 1,
                };
                (0, Shape::Sized(size))
            }
            Expr::Select(sel) => {
                let (c, shape) = self.expr(&sel.operand.expr);
                (
                    c.saturating_add(1),
                    self.select(shape, &sel.field, sel.test),
                )
            }
            Expr::List(list) => {
                let mut cost = 1u64;
                for el in &list.elements {
                    cost = cost.saturating_add(self.expr(&el.expr).0);
                }
                (cost, Shape::Sized(list.elements.len() as u64))
            }
            Expr::Map(map) => {
                let mut cost = 1u64;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        cost = cost
                            .saturating_add(self.expr(&m.key.expr).0)
                            .saturating_add(self.expr(&m.value.expr).0);
                    }
                }
                (cost, Shape::Sized(map.entries.len() as u64))
            }
            Expr::Struct(s) => {
                let mut cost = 1u64;
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            cost = cost.saturating_add(self.expr(&m.value.expr).0)
                        }
                        EntryExpr::StructField(f) => {
                            cost = cost.saturating_add(self.expr(&f.value.expr).0)
                        }
                    }
                }
                (cost, Shape::Sized(1))
            }
            Expr::Comprehension(c) => {
                let (range_cost, range) = self.expr(&c.iter_range.expr);
                let n = self.size_of(range);
                let element = match range {
                    Shape::Node(i) => {
                        let node = &self.b.nodes[i];
                        match (node.items, node.additional) {
                            (Some(items), _) => Shape::Node(items),
                            // Iterating a map binds its keys.
                            _ => Shape::Sized(MAX_REQUEST_SIZE),
                        }
                    }
                    Shape::Sized(_) => Shape::Sized(MAX_REQUEST_SIZE),
                };
                let (init_cost, _) = self.expr(&c.accu_init.expr);
                self.scopes.push((c.iter_var.clone(), element));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes
                        .push((v2.clone(), Shape::Sized(MAX_REQUEST_SIZE)));
                }
                self.scopes.push((c.accu_var.clone(), Shape::Sized(n)));
                self.accumulators.push(c.accu_var.clone());
                let (cond, _) = self.expr(&c.loop_cond.expr);
                let (step, _) = self.expr(&c.loop_step.expr);
                let (result, _) = self.expr(&c.result.expr);
                self.accumulators.pop();
                self.scopes.pop();
                if c.iter_var2.is_some() {
                    self.scopes.pop();
                }
                self.scopes.pop();
                let cost = range_cost
                    .saturating_add(init_cost)
                    .saturating_add(n.saturating_mul(cond.saturating_add(step).max(1)))
                    .saturating_add(result);
                (cost, Shape::Sized(n))
            }
            Expr::Call(call) => self.call(call),
            Expr::Unspecified => (1, Shape::Sized(1)),
        }
    }

    fn select(&mut self, shape: Shape, field: &str, test: bool) -> Shape {
        let Shape::Node(i) = shape else {
            return Shape::Sized(MAX_REQUEST_SIZE);
        };
        let node = &self.b.nodes[i];
        if let Some((_, child)) = node
            .properties
            .iter()
            .find(|(name, _)| escape(name).as_deref() == Some(field))
        {
            return Shape::Node(*child);
        }
        if let Some(additional) = node.additional {
            return Shape::Node(additional);
        }
        if node.resource_root && matches!(field, "apiVersion" | "kind" | "metadata") {
            return Shape::Sized(MAX_REQUEST_SIZE);
        }
        if node.ty == "object" && !node.properties.is_empty() {
            let _ = test;
            self.errors.push(format!("undefined field '{field}'"));
        }
        Shape::Sized(MAX_REQUEST_SIZE)
    }

    fn call(&mut self, call: &kube_cel::cel::common::ast::CallExpr) -> (u64, Shape) {
        // A qualified function (`sets.contains`, `optional.none`) may parse as a call on an
        // identifier that is no variable: that identifier is a namespace.
        let (target_cost, target) = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) if ns != "self" && ns != "oldSelf" && !self.scopes.iter().any(|(n, _)| n == ns) => {
                (0, None)
            }
            Some(t) => {
                let (c, s) = self.expr(&t.expr);
                (c, Some(s))
            }
            None => (0, None),
        };
        // Logical operators and the conditional cost only what they evaluate (the costlier
        // branch of a conditional).
        let name = call.func_name.as_str();
        if matches!(
            name,
            "_&&_" | "_||_" | "!_" | "@not_strictly_false" | "_?_:_"
        ) {
            let costs: Vec<u64> = call.args.iter().map(|a| self.expr(&a.expr).0).collect();
            let cost = if let (true, Some((condition, branches))) =
                (name == "_?_:_", costs.split_first())
            {
                condition.saturating_add(branches.iter().copied().max().unwrap_or(0))
            } else {
                costs.iter().fold(0u64, |sum, c| sum.saturating_add(*c))
            };
            return (cost, Shape::Sized(1));
        }
        let mut cost = target_cost.saturating_add(1);
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            let (c, s) = self.expr(&a.expr);
            cost = cost.saturating_add(c);
            args.push(s);
        }
        let first = target.or_else(|| args.first().copied());
        let first_size = first.map(|s| self.size_of(s)).unwrap_or(1);
        let linear = |n: u64| n / 10 + 1;
        match name {
            "_[_]" => {
                let shape = match args.first() {
                    Some(Shape::Node(i)) => {
                        let node = &self.b.nodes[*i];
                        node.items
                            .or(node.additional)
                            .map(Shape::Node)
                            .unwrap_or(Shape::Sized(MAX_REQUEST_SIZE))
                    }
                    _ => Shape::Sized(MAX_REQUEST_SIZE),
                };
                (cost, shape)
            }
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let n = args.iter().map(|s| self.size_of(*s)).min().unwrap_or(1);
                let traversal = if n > 1 { linear(n) } else { 0 };
                (cost.saturating_add(traversal), Shape::Sized(1))
            }
            "_+_" => {
                let n = args
                    .iter()
                    .fold(0u64, |sum, s| sum.saturating_add(self.size_of(*s)));
                // A macro's accumulator growing by an element (`map`, `filter`) is
                // amortized constant, as in kube-apiserver's estimate.
                let appends_to_accumulator = call.args.first().is_some_and(
                    |a| matches!(&a.expr, Expr::Ident(name) if self.accumulators.contains(name)),
                );
                if appends_to_accumulator {
                    return (cost, Shape::Sized(n));
                }
                (cost.saturating_add(linear(n)), Shape::Sized(n))
            }
            "@in" => {
                let n = args.get(1).map(|s| self.size_of(*s)).unwrap_or(1);
                (cost.saturating_add(n), Shape::Sized(1))
            }
            "startsWith" | "endsWith" => {
                let n = args.iter().map(|s| self.size_of(*s)).max().unwrap_or(1);
                (cost.saturating_add(linear(n)), Shape::Sized(1))
            }
            "contains" | "matches" | "find" | "lowerAscii" | "upperAscii" | "trim" | "indexOf"
            | "lastIndexOf" | "substring" | "charAt" | "replace" | "reverse" | "isURL" | "url"
            | "isIP" | "ip" | "isCIDR" | "cidr" | "quantity" | "isQuantity" | "semver"
            | "isSemver" | "string" | "bytes" | "format" | "validate" => {
                let args_size = args
                    .iter()
                    .fold(0u64, |sum, s| sum.saturating_add(self.size_of(*s)));
                let n = linear(first_size).saturating_mul(linear(args_size).max(1));
                (cost.saturating_add(n), Shape::Sized(first_size))
            }
            "split" | "findAll" | "join" => (
                cost.saturating_add(linear(first_size)),
                Shape::Sized(first_size),
            ),
            "sum" | "min" | "max" | "isSorted" | "distinct" | "sort" | "flatten" | "slice"
            | "sets.contains" | "sets.equivalent" | "sets.intersects" => {
                let n = args
                    .iter()
                    .chain(target.iter())
                    .fold(0u64, |sum, s| sum.saturating_add(self.size_of(*s)));
                (
                    cost.saturating_add(n.saturating_mul(n.min(1 << 16))),
                    Shape::Sized(n),
                )
            }
            _ => (cost, Shape::Sized(first_size)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(rules_on_spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "maxReplicas": {"type": "integer"},
                "mode": {"type": "string", "maxLength": 16},
                "ratio": {"type": "number"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                "ports": {"type": "array", "maxItems": 16, "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string", "maxLength": 15},
                        "port": {"type": "integer", "x-kubernetes-validations": [
                            {"rule": "self == oldSelf", "message": "port is immutable"}]}}}},
                "my-field": {"type": "string", "maxLength": 8},
                "expires": {"type": "string", "format": "date-time"},
                "timeout": {"type": "string", "format": "duration"}
            },
            "x-kubernetes-validations": rules_on_spec
        }}})
    }

    fn run(rules: Value, spec: Value, old: Option<Value>) -> Vec<String> {
        let v = Validator::compile(&schema(rules)).unwrap();
        let obj = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": spec});
        let old = old.map(|s| json!({"spec": s}));
        v.validate(&obj, old.as_ref())
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn a_failed_rule_reads_like_kube_apiserver_with_the_schema_type_for_the_value() {
        let rules = json!([{"rule": "self.replicas <= self.maxReplicas", "message": "replicas must be no more than maxReplicas"}]);
        assert!(
            run(
                rules.clone(),
                json!({"replicas": 2, "maxReplicas": 3}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            run(rules, json!({"replicas": 5, "maxReplicas": 3}), None),
            ["spec: Invalid value: \"object\": replicas must be no more than maxReplicas"]
        );
        assert_eq!(
            run(
                json!([{"rule": "self.replicas > 0"}]),
                json!({"replicas": 0}),
                None
            ),
            ["spec: Invalid value: \"object\": failed rule: self.replicas > 0"]
        );
    }

    #[test]
    fn message_expression_reason_and_field_path_shape_the_error() {
        let rules = json!([{"rule": "self.replicas <= self.maxReplicas",
            "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds ' + string(self.maxReplicas)",
            "fieldPath": ".replicas", "reason": "FieldValueForbidden"}]);
        assert_eq!(
            run(rules, json!({"replicas": 5, "maxReplicas": 3}), None),
            ["spec.replicas: Forbidden: replicas 5 exceeds 3"]
        );
        let required = json!([{"rule": "has(self.mode)", "message": "mode is required", "reason": "FieldValueRequired"}]);
        assert_eq!(
            run(required, json!({}), None),
            ["spec: Required value: mode is required"]
        );
        let duplicate = json!([{"rule": "false", "reason": "FieldValueDuplicate"}]);
        assert_eq!(
            run(duplicate, json!({}), None),
            ["spec: Duplicate value: \"object\""]
        );
        // A messageExpression that fails, or yields nothing, falls back to the message.
        let failing = json!([{"rule": "false", "message": "static", "messageExpression": "self.nope"}, {"rule": "false", "message": "static2", "messageExpression": "''"}]);
        assert!(
            Validator::compile(&schema(failing.clone())).is_err(),
            "undefined field is a compile error"
        );
        let failing = json!([{"rule": "false", "message": "static", "messageExpression": "self.labels['x']"}, {"rule": "false", "message": "static2", "messageExpression": "''"}]);
        assert_eq!(
            run(failing, json!({"labels": {}}), None),
            [
                "spec: Invalid value: \"object\": static",
                "spec: Invalid value: \"object\": static2"
            ]
        );
    }

    #[test]
    fn transition_rules_run_only_with_an_old_value_correlated_by_list_map_keys() {
        let rules = json!([{"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"}]);
        assert!(
            run(rules.clone(), json!({"mode": "a"}), None).is_empty(),
            "create: skipped"
        );
        assert!(
            run(
                rules.clone(),
                json!({"mode": "a"}),
                Some(json!({"mode": "a"}))
            )
            .is_empty()
        );
        assert_eq!(
            run(rules, json!({"mode": "b"}), Some(json!({"mode": "a"}))),
            ["spec: Invalid value: \"object\": mode is immutable"]
        );
        // Items of a map list pair with the old item of the same key, wherever it was.
        let old = json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]});
        assert!(run(json!([]), json!({"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}, {"name": "c", "port": 9}]}), Some(old.clone())).is_empty());
        assert_eq!(
            run(
                json!([]),
                json!({"ports": [{"name": "b", "port": 3}]}),
                Some(old)
            ),
            ["spec.ports[0].port: Invalid value: \"integer\": port is immutable"]
        );
    }

    #[test]
    fn an_unchanged_failing_value_ratchets_to_a_warning_on_update() {
        let v = Validator::compile(&schema(
            json!([{"rule": "self.replicas < 3", "message": "too many"}]),
        ))
        .unwrap();
        let obj = |r: i64, mode: &str| json!({"spec": {"replicas": r, "mode": mode}});
        let ratcheted = |new: Value, old: Option<Value>| -> Vec<bool> {
            v.validate(&new, old.as_ref())
                .iter()
                .map(|x| x.ratcheted)
                .collect()
        };
        assert_eq!(ratcheted(obj(5, "a"), None), [false], "create");
        assert_eq!(
            ratcheted(obj(5, "a"), Some(obj(5, "a"))),
            [true],
            "unchanged"
        );
        assert_eq!(
            ratcheted(obj(5, "b"), Some(obj(5, "a"))),
            [false],
            "spec changed"
        );
    }

    #[test]
    fn optional_old_self_binds_an_optional_on_create() {
        let rules = json!([{"rule": "!oldSelf.hasValue() || self.mode == oldSelf.value().mode",
            "optionalOldSelf": true, "message": "mode is immutable"}]);
        assert!(run(rules.clone(), json!({"mode": "a"}), None).is_empty());
        assert_eq!(
            run(rules, json!({"mode": "b"}), Some(json!({"mode": "a"}))).len(),
            1
        );
    }

    #[test]
    fn values_are_typed_by_the_schema_and_names_escaped() {
        let rules = json!([
            {"rule": "self.my__dash__field == 'x'"},
            {"rule": "self.ratio > 0.5"},
            {"rule": "self.expires > timestamp('2024-01-01T00:00:00Z')"},
            {"rule": "self.timeout <= duration('1h')"},
            {"rule": "self.labels.all(k, k.startsWith('app'))"},
            {"rule": "self.mode.matches('^[a-z]+$') && self.mode.upperAscii() == 'ABC'"},
        ]);
        let good = json!({"my-field": "x", "ratio": 1, "expires": "2025-01-01T00:00:00Z",
            "timeout": "30m", "labels": {"app.kubernetes.io/name": "x"}, "mode": "abc"});
        assert_eq!(run(rules.clone(), good, None), Vec::<String>::new());
        let bad = json!({"my-field": "y", "ratio": 0, "expires": "2023-01-01T00:00:00Z",
            "timeout": "2h", "labels": {"team": "x"}, "mode": "ABC"});
        assert_eq!(run(rules, bad, None).len(), 6);
    }

    #[test]
    fn a_rule_at_the_root_sees_metadata_name_and_reports_nil() {
        let s = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('w-')", "message": "name must start with w-"}],
            "properties": {"spec": {"type": "object"}}});
        let v = Validator::compile(&s).unwrap();
        assert!(
            v.validate(&json!({"metadata": {"name": "w-1"}}), None)
                .is_empty()
        );
        assert_eq!(
            v.validate(&json!({"metadata": {"name": "x"}}), None),
            [Violation {
                field: "<nil>".into(),
                message: "Invalid value: \"object\": name must start with w-".into(),
                ratcheted: false,
            }]
        );
    }

    #[test]
    fn hostile_expressions_fail_as_errors() {
        for rule in [
            "9223372036854775807 + self.replicas > 0",
            "-9223372036854775808 - self.replicas < 0",
            "self.replicas * 9223372036854775807 > 0",
            "self.mode.substring(50) == ''",
            "self.mode.charAt(99) == ''",
            "[1, 2][self.replicas + 5] == 1",
            "{'a': 1}[self.mode] == 1",
            "self.replicas % 0 == 1",
            "int(self.mode) > 0",
            "self.mode.matches('(')",
            "self.mode.split('').size() > 0",
        ] {
            let got = run(
                json!([{"rule": rule}]),
                json!({"replicas": 1, "mode": "abc"}),
                None,
            );
            assert!(got.len() <= 1, "{rule}: {got:?}");
        }
    }

    #[test]
    fn runtime_errors_are_reported_not_panicked() {
        assert_eq!(
            run(
                json!([{"rule": "self.replicas / 0 > 1"}]),
                json!({"replicas": 1}),
                None
            )
            .len(),
            1
        );
        let missing = run(json!([{"rule": "self.mode == 'a'"}]), json!({}), None);
        assert_eq!(
            missing,
            [
                "spec: Invalid value: \"object\": no such key: mode evaluating rule: self.mode == 'a'"
            ]
        );
    }

    fn compile_errors(rules: Value) -> Vec<String> {
        Validator::compile(&schema(rules))
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn rules_that_do_not_compile_are_refused_naming_their_path() {
        let errors = compile_errors(json!([{"rule": "self.replicas >"}]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas >\""),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("compilation failed: ERROR: <input>:1:"),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "self.replica > 0"}]));
        assert!(
            errors[0].ends_with("undefined field 'replica'"),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "foo > 0"}]));
        assert!(
            errors[0].ends_with("undeclared reference to 'foo' (in container '')"),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "true", "reason": "Nope"}]));
        assert!(
            errors[0].contains(".reason: Unsupported value: \"Nope\""),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "true", "fieldPath": ".nope"}]));
        assert!(
            errors[0]
                .contains(".fieldPath: Invalid value: \".nope\": fieldPath must be a valid path"),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "true", "messageExpression": "'a' +"}]));
        assert!(
            errors[0].contains(".messageExpression: Invalid value: "),
            "{errors:?}"
        );
    }

    #[test]
    fn old_self_on_an_uncorrelatable_list_item_is_refused() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "tags": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 8,
                "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}}});
        let errors = Validator::compile(&s).unwrap_err();
        assert_eq!(
            errors[0].message,
            "Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within openAPIV3Schema.properties[spec].properties[tags]"
        );
    }

    #[test]
    fn unbounded_nested_loops_exceed_the_cost_limit_and_bounded_ones_do_not() {
        let s = |max: Option<u64>| {
            let mut items = json!({"type": "array", "items": {"type": "integer"}});
            if let Some(m) = max {
                items["maxItems"] = json!(m);
            }
            json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"xs": items},
                "x-kubernetes-validations": [{"rule": "self.xs.all(a, self.xs.all(b, a != b || true))"}]}}})
        };
        let errors = Validator::compile(&s(None)).unwrap_err();
        assert_eq!(
            errors[0].message,
            "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
        assert_eq!(
            errors[0].path,
            "properties[spec].x-kubernetes-validations[0].rule"
        );
        Validator::compile(&s(Some(100))).unwrap();
        // One pass over an unbounded list is within the limit, filter and map included.
        let single = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"xs": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [
                {"rule": "self.xs.filter(x, x > 0).size() < 3"},
                {"rule": "self.xs.exists_one(x, x == 1)"}]}}});
        Validator::compile(&single).unwrap();
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(
            go_duration("-250ms"),
            Some(chrono::Duration::milliseconds(-250))
        );
        assert_eq!(
            go_duration("1.5s"),
            Some(chrono::Duration::milliseconds(1500))
        );
        assert_eq!(go_duration("1d"), None);
    }

    #[test]
    fn property_names_escape_as_kubernetes_does() {
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("1abc"), None);
    }
}
