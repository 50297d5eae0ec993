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
//! - Type checking at CRD write (the `cel` crate parses but does not check): types are
//!   inferred from the schema (`integer` → int, `number` → double, `date-time` → timestamp,
//!   `additionalProperties` → map, ...) and through literals, operators, macros and the common
//!   functions, and an operator or function applied to operands it has no overload for is
//!   refused with cel-go's text and position (`compilation failed: ERROR: <input>:1:15: found
//!   no matching overload for '_+_' applied to '(int, string)'` and the source line with a
//!   caret), as are a rule whose type is not bool ("cel expression must evaluate to a bool")
//!   and a `messageExpression` whose type is not string. `x-kubernetes-int-or-string` and
//!   preserved unknown fields are `dyn` and pass every operator, as in cel-go; so does
//!   anything this checker has no signature for (less common library functions), where cel-go
//!   would check further.
//! - `x-kubernetes-validations` under `allOf`, `anyOf`, `oneOf` or `not` make the schema
//!   non-structural for kube-apiserver (`ValidateStructural` forbids them in a CRD; only its
//!   declarative validation of built-in types allows them under `allOf`), so such a CRD is
//!   refused with its "must be empty to be structural" error.
//! - [`Validator::validate`] walks an object with the schema, binding `self` to the value at
//!   each node that declares rules (scalars, objects, maps, lists; property names escaped as
//!   `__dash__`, `__dot__`, ...; `date-time`, `duration` and `byte` strings as timestamps,
//!   durations and bytes, `date` strings as timestamps at midnight UTC; `number` fields as
//!   doubles) and `oldSelf` to the correlated old value: map keys and object fields by name,
//!   items of `x-kubernetes-list-type: map` lists by their keys, nothing else. Transition rules run only when an old value exists, unless
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
//! Runtime cost: as kube-apiserver, one evaluation of a rule or `messageExpression` may cost
//! up to 1,000,000 (`PerCallLimit`) and all evaluations for one object 10,000,000
//! (`RuntimeCELCostBudget`); running out of either stops every further rule with the API
//! server's errors ("'operation cancelled: actual cost limit exceeded': no further validation
//! rules will be run due to call cost exceeds limit for rule: ..." and "validation failed due
//! to running out of cost budget, no further validation rules will be run"). The `cel`
//! interpreter has no cost meter, so `Meter` evaluates the expression itself and counts as
//! cel-go's cost tracker does, on the actual values: 1 per variable, field selection, index
//! and call, nothing for constants (lists and maps of constants, conversions of constants and
//! `in` a constant list included, which cel-go folds), 10 per list and 30 per map built at
//! run time; comprehensions (the macros) cost their range, then per item their loop condition
//! and step as evaluated, stopping where the condition fails; `&&`, `||` and `?:` only what they evaluate. Calls cost what cel-go's `costCall` and
//! Kubernetes' library estimator charge for the operand sizes (characters, bytes, items):
//! string equality and ordering a tenth of the shorter side, `+` on strings a tenth of both,
//! `contains` the product of both tenths, `matches`/`find` the string's tenth times a quarter
//! of the pattern, `in` a list's length, `startsWith`, `lowerAscii`, `trim`, `url`, `ip`,
//! `quantity`, `semver`, ... a tenth, `replace`/`split` a fifth, `join` a fifth of the
//! result, `sum`/`min`/`max`/`isSorted`/`indexOf` a traversal of the list, everything else 1.
//! It matches cel-go for the standard operators, macros and those functions; other library
//! functions count 1 where Kubernetes may charge a size-dependent cost (`sets.*` count the
//! product of both sizes, an approximation), and errors are values in cel-go, so an
//! evaluation that fails may stop a few units earlier here than there. The meter walks
//! variables, selections, indexes, literals and comprehensions on shared values and hands
//! each other call to the interpreter with its operands, so results are the interpreter's
//! (`type()` and type names such as `int`, which the interpreter lacks, it answers itself);
//! because the interpreter copies operands it is handed (where cel-go shares them), the values
//! copied per object are bounded too (twice the cost budget), an evaluation past that is
//! stopped as over its cost limit — no ordinary rule comes near it.

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

/// kube-apiserver's error when the rules of one object have spent the request's budget.
const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

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
            .get_or_init(|| self.schema.as_deref().and_then(Validator::stored))
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
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let mut nested = Vec::new();
        nested_rules(schema, "", false, &mut nested);
        if !nested.is_empty() {
            nested.sort();
            causes.extend(nested.into_iter().map(|path| crate::error::FieldCause {
                field: format!("{base}.{path}"),
                message: "Forbidden: must be empty to be structural".into(),
            }));
            continue;
        }
        if let Err(errors) = Validator::compile(schema) {
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

/// The paths of `x-kubernetes-validations` under `allOf`, `anyOf`, `oneOf` or `not`, which
/// kube-apiserver refuses in a CRD (a structural schema keeps rules out of its logical junctors;
/// its validator would not know which branch a rule belongs to).
fn nested_rules(schema: &Value, path: &str, nested: bool, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    let join = |segment: &str| {
        if path.is_empty() {
            segment.to_owned()
        } else {
            format!("{path}.{segment}")
        }
    };
    if nested
        && map
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    {
        out.push(join("x-kubernetes-validations"));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            nested_rules(sub, &join(&format!("properties[{name}]")), nested, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get(key) {
            nested_rules(sub, &join(key), nested, out);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in map
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            nested_rules(sub, &join(&format!("{key}[{i}]")), true, out);
        }
    }
    if let Some(sub) = map.get("not") {
        nested_rules(sub, &join("not"), true, out);
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
    Date,
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
    message_expression: Option<String>,
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
    /// Keep a rule that parses but fails the type checks (see [`Validator::stored`]).
    keep_ill_typed: bool,
    /// (schema path of the expression, estimated cost × cardinality)
    costs: Vec<(String, u64)>,
}

impl Validator {
    /// Compiles every rule of an `openAPIV3Schema`; `Err` lists each rule that kube-apiserver
    /// would refuse, with its path and the error's body.
    pub fn compile(schema: &Value) -> Result<Self, Vec<RuleError>> {
        Self::build(schema, false)
    }

    /// The rules of a stored CRD. It was admitted when written, but by an earlier build that
    /// did not check types: a rule that parses and now fails the type checks still runs (and
    /// fails where its types do), instead of the version losing all of its rules.
    fn stored(schema: &Value) -> Option<Self> {
        Self::build(schema, false)
            .or_else(|_| Self::build(schema, true))
            .ok()
    }

    fn build(schema: &Value, keep_ill_typed: bool) -> Result<Self, Vec<RuleError>> {
        let mut b = Builder {
            nodes: Vec::new(),
            errors: Vec::new(),
            keep_ill_typed,
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
        let mut budget = Budget {
            cost: RUNTIME_COST_BUDGET as i64,
            work: WORK_BUDGET,
        };
        BASE.with(|base| self.walk(base, 0, obj, old, false, None, &mut budget, &mut out));
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
        budget: &mut Budget,
        out: &mut Vec<Violation>,
    ) {
        let node = &self.nodes[index];
        if !node.has_rules || value.is_null() || budget.cost < 0 {
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
            self.evaluate(base, index, value, old, unchanged, path, budget, out);
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
                            budget,
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
                            budget,
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
                        self.walk(
                            base,
                            items_index,
                            item,
                            old_item,
                            inherited,
                            Some(&p),
                            budget,
                            out,
                        );
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
        budget: &mut Budget,
        out: &mut Vec<Violation>,
    ) {
        let node = &self.nodes[index];
        let field = path.unwrap_or("<nil>");
        let type_value = go_quote(&node.ty);
        let invalid = |at: &str, text: String| Violation {
            field: at.to_owned(),
            message: format!("Invalid value: {type_value}: {text}"),
            ratcheted: false,
        };
        if budget.cost <= 0 {
            out.push(invalid(field, OUT_OF_BUDGET.into()));
            budget.cost = -1;
            return;
        }
        let self_cel = self.to_cel(index, value);
        let old_cel = old.map(|o| self.to_cel(index, o));
        for rule in &node.rules {
            if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut vars = vec![("self".to_owned(), self_cel.clone())];
            if rule.uses_old_self {
                let bound = match (&old_cel, rule.optional_old_self) {
                    (Some(o), false) => o.clone(),
                    (Some(o), true) => Cel::Opaque(Arc::new(OptionalValue::of(o.clone()))),
                    (None, _) => Cel::Opaque(Arc::new(OptionalValue::none())),
                };
                vars.push(("oldSelf".to_owned(), bound));
            }
            let error_string = rule
                .message
                .clone()
                .unwrap_or_else(|| rule.rule.trim().to_owned());
            // As kube-apiserver: one evaluation may cost up to the per-call limit, and what it
            // cost comes out of the request's budget; either running out stops all rules.
            let limit = PER_CALL_LIMIT.min(u64::try_from(budget.cost).unwrap_or(0));
            let run = Meter::run(
                rule.program.expression(),
                base,
                vars.clone(),
                limit,
                budget.work,
            );
            budget.work = budget.work.saturating_sub(run.work);
            if run.cost > u64::try_from(budget.cost).unwrap_or(0) {
                out.push(invalid(field, OUT_OF_BUDGET.into()));
                budget.cost = -1;
                return;
            }
            let Some(result) = run.value else {
                out.push(invalid(
                    field,
                    format!("'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {error_string}"),
                ));
                budget.cost = -1;
                return;
            };
            budget.cost -= i64::try_from(run.cost).unwrap_or(i64::MAX);
            match result {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => {
                    let at = match (&rule.field_path, path) {
                        (Some(fp), Some(p)) => format!("{p}.{fp}"),
                        (Some(fp), None) => fp.clone(),
                        (None, _) => field.to_owned(),
                    };
                    let ratcheted = unchanged && !rule.uses_old_self;
                    let mut detail = None;
                    if let Some(p) = &rule.message_program {
                        let limit = PER_CALL_LIMIT.min(u64::try_from(budget.cost).unwrap_or(0));
                        let run =
                            Meter::run(p.expression(), base, vars.clone(), limit, budget.work);
                        budget.work = budget.work.saturating_sub(run.work);
                        if run.cost > u64::try_from(budget.cost).unwrap_or(0) || run.value.is_none()
                        {
                            let text = if run.cost > u64::try_from(budget.cost).unwrap_or(0) {
                                "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run".to_owned()
                            } else {
                                format!(
                                    "no further validation rules will be run due to call cost exceeds limit for messageExpression: {}",
                                    go_quote(
                                        rule.message_expression.as_deref().unwrap_or_default()
                                    )
                                )
                            };
                            let mut v = invalid(&at, text);
                            v.ratcheted = ratcheted;
                            out.push(v);
                            budget.cost = -1;
                            return;
                        }
                        budget.cost -= i64::try_from(run.cost).unwrap_or(i64::MAX);
                        if let Some(Ok(Cel::String(s))) = run.value {
                            let t = s.trim();
                            if !t.is_empty() && !t.contains('\n') && t.len() <= 5120 {
                                detail = Some(t.to_owned());
                            }
                        }
                    }
                    let detail = detail.unwrap_or_else(|| match &rule.message {
                        Some(m) => m.clone(),
                        None => format!("failed rule: {}", rule.rule.trim()),
                    });
                    let message = match rule.reason {
                        Reason::Invalid => format!("Invalid value: {type_value}: {detail}"),
                        Reason::Forbidden => format!("Forbidden: {detail}"),
                        Reason::Required => format!("Required value: {detail}"),
                        Reason::Duplicate => format!("Duplicate value: {type_value}"),
                    };
                    out.push(Violation {
                        field: at,
                        message,
                        ratcheted,
                    });
                }
                Ok(other) => out.push(invalid(
                    field,
                    format!(
                        "rule did not evaluate to bool (got {}) evaluating rule: {error_string}",
                        other.type_of()
                    ),
                )),
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
                    out.push(invalid(field, text));
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

fn string_value(s: &str, format: Format, int_or_string: bool) -> Cel {
    if int_or_string {
        return Cel::String(Arc::new(s.to_owned()));
    }
    match format {
        Format::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Cel::Timestamp(t.and_utc().fixed_offset()))
            .unwrap_or_else(|| Cel::String(Arc::new(s.to_owned()))),
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
            "date" => Format::Date,
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

    /// Type-checks an expression with `self` at a node and estimates its cost: (cost, result
    /// type, errors at expression ids).
    fn check(
        &self,
        index: usize,
        program: &Program,
        optional_old_self: bool,
    ) -> (u64, Ty, Vec<(u64, String)>) {
        let mut checker = Checker {
            b: self,
            self_node: index,
            optional_old_self,
            scopes: Vec::new(),
            accumulators: Vec::new(),
            errors: Vec::new(),
        };
        let (cost, _, ty) = checker.expr(program.expression());
        (cost, ty, checker.errors)
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
        let optional_old_self = raw.get("optionalOldSelf").and_then(Value::as_bool);
        let program = match Program::compile(&rule) {
            Ok(p) => p,
            Err(e) => {
                fail(
                    self,
                    "rule",
                    format!(
                        "Invalid value: {}: compilation failed: {}",
                        go_rule(raw),
                        parse_issues(&rule, &e)
                    ),
                );
                return None;
            }
        };
        let uses_old_self = program.references().has_variable("oldSelf");
        let (cost, ty, errors) = self.check(index, &program, optional_old_self == Some(true));
        let ill_typed = !errors.is_empty() || ty.known() && ty != Ty::Bool || ty == Ty::Dyn;
        if ill_typed && self.keep_ill_typed {
            // Checked when its CRD was written, by the rules of that time.
        } else if !errors.is_empty() {
            fail(
                self,
                "rule",
                format!(
                    "Invalid value: {}: compilation failed: {}",
                    go_rule(raw),
                    check_issues(&rule, &errors)
                ),
            );
            return None;
        } else if ty.known() && ty != Ty::Bool || ty == Ty::Dyn {
            fail(
                self,
                "rule",
                format!(
                    "Invalid value: {}: cel expression must evaluate to a bool",
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
                    let (c, ty, errors) = self.check(index, &p, optional_old_self == Some(true));
                    if self.keep_ill_typed {
                        // As for the rule.
                    } else if !errors.is_empty() {
                        fail(
                            self,
                            "messageExpression",
                            format!(
                                "Invalid value: {}: messageExpression compilation failed: {}",
                                go_rule(raw),
                                check_issues(&expr, &errors)
                            ),
                        );
                    } else if ty.known() && ty != Ty::String || ty == Ty::Dyn {
                        fail(
                            self,
                            "messageExpression",
                            format!(
                                "Invalid value: {}: messageExpression must evaluate to a string",
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
                            parse_issues(&expr, &e)
                        ),
                    );
                    None
                }
            },
        };
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
            message_expression: text("messageExpression"),
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

/// A CEL type as the checker infers it from the schema and the expression. `Dyn` is the
/// schema's own dynamic type (`x-kubernetes-int-or-string`, preserved unknown fields);
/// `Unknown` is where this checker does not model the type (a function it has no signature
/// for, an error already reported), which passes everywhere.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Int,
    Uint,
    Double,
    String,
    Bool,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// An object the schema declares the properties of.
    Object,
    Optional(Box<Ty>),
    /// A type as a value (`type(x)`, `int`).
    Type,
    Dyn,
    Unknown,
}

impl Ty {
    /// Known well enough to refuse an operator or function that does not take it.
    fn known(&self) -> bool {
        !matches!(self, Ty::Dyn | Ty::Unknown)
    }

    /// A type without type parameters, the ones whose mismatch is certain.
    fn scalar(&self) -> bool {
        matches!(
            self,
            Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::String
                | Ty::Bool
                | Ty::Bytes
                | Ty::Timestamp
                | Ty::Duration
                | Ty::Type
        )
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// The type's name as cel-go prints it in an overload error.
    fn name(&self) -> String {
        match self {
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Bool => "bool".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Null => "null_type".into(),
            Ty::Timestamp => "google.protobuf.Timestamp".into(),
            Ty::Duration => "google.protobuf.Duration".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Ty::Object => "object".into(),
            Ty::Optional(t) => format!("optional_type({})", t.name()),
            Ty::Type => "type".into(),
            Ty::Dyn | Ty::Unknown => "dyn".into(),
        }
    }

    /// Either side when they agree, else the known one, else unknown.
    fn join(a: &Ty, b: &Ty) -> Ty {
        if a == b || !b.known() {
            a.clone()
        } else if !a.known() {
            b.clone()
        } else {
            Ty::Unknown
        }
    }
}

/// Walks a rule's syntax tree: estimates its worst-case cost (kube-apiserver's model, coarser:
/// a comprehension costs its range's size times its body, string and list functions their
/// operand's size), infers types from the schema and reports what cel-go's checker would:
/// variables and fields that do not exist, operators and functions applied to types they do not
/// take. Errors carry the id of the expression they are at, for their position.
struct Checker<'a> {
    b: &'a Builder,
    self_node: usize,
    /// `oldSelf` is an optional (`optionalOldSelf: true`).
    optional_old_self: bool,
    scopes: Vec<(String, Shape, Ty)>,
    /// The accumulators of the comprehensions being walked.
    accumulators: Vec<String>,
    errors: Vec<(u64, String)>,
}

impl Checker<'_> {
    fn size_of(&self, shape: Shape) -> u64 {
        match shape {
            Shape::Node(i) => self.b.size(i),
            Shape::Sized(n) => n,
        }
    }

    /// The CEL type of values at a schema node, as kube-apiserver declares it.
    fn node_ty(&self, index: usize) -> Ty {
        let n = &self.b.nodes[index];
        if n.int_or_string {
            return Ty::Dyn;
        }
        match n.ty.as_str() {
            "integer" => Ty::Int,
            "number" => Ty::Double,
            "boolean" => Ty::Bool,
            "string" => match n.format {
                Format::DateTime | Format::Date => Ty::Timestamp,
                Format::Duration => Ty::Duration,
                Format::Bytes => Ty::Bytes,
                Format::None => Ty::String,
            },
            "array" => Ty::List(Box::new(
                n.items.map(|i| self.node_ty(i)).unwrap_or(Ty::Dyn),
            )),
            "object" => match n.additional {
                Some(a) => Ty::Map(Box::new(Ty::String), Box::new(self.node_ty(a))),
                None if !n.properties.is_empty() || n.resource_root => Ty::Object,
                None => Ty::Dyn,
            },
            _ => Ty::Dyn,
        }
    }

    fn fail(&mut self, id: u64, message: String) -> Ty {
        self.errors.push((id, message));
        Ty::Unknown
    }

    fn no_overload(&mut self, id: u64, name: &str, target: Option<&Ty>, args: &[Ty]) -> Ty {
        let args = args.iter().map(Ty::name).collect::<Vec<_>>().join(", ");
        let applied = match target {
            Some(t) => format!("{}.({args})", t.name()),
            None => format!("({args})"),
        };
        self.fail(
            id,
            format!("found no matching overload for '{name}' applied to '{applied}'"),
        )
    }

    fn expr(&mut self, e: &IdedExpr) -> (u64, Shape, Ty) {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, shape, ty)) = self.scopes.iter().rev().find(|(n, _, _)| n == name) {
                    return (1, *shape, ty.clone());
                }
                match name.as_str() {
                    t if TYPE_NAMES.contains(&t) => (0, Shape::Sized(1), Ty::Type),
                    "self" => (1, Shape::Node(self.self_node), self.node_ty(self.self_node)),
                    "oldSelf" => {
                        let ty = self.node_ty(self.self_node);
                        let ty = if self.optional_old_self {
                            Ty::Optional(Box::new(ty))
                        } else {
                            ty
                        };
                        (1, Shape::Node(self.self_node), ty)
                    }
                    _ => {
                        let ty = self.fail(
                            e.id,
                            format!("undeclared reference to '{name}' (in container '')"),
                        );
                        (1, Shape::Sized(1), ty)
                    }
                }
            }
            Expr::Literal(lit) => {
                use kube_cel::cel::common::ast::LiteralValue;
                let (size, ty) = match lit {
                    LiteralValue::String(s) => (s.inner().len() as u64, Ty::String),
                    LiteralValue::Bytes(b) => (b.inner().len() as u64, Ty::Bytes),
                    LiteralValue::Boolean(_) => (1, Ty::Bool),
                    LiteralValue::Double(_) => (1, Ty::Double),
                    LiteralValue::Int(_) => (1, Ty::Int),
                    LiteralValue::UInt(_) => (1, Ty::Uint),
                    LiteralValue::Null => (1, Ty::Null),
                };
                (0, Shape::Sized(size), ty)
            }
            Expr::Select(sel) => {
                let (c, shape, ty) = self.expr(&sel.operand);
                let (shape, field_ty) = self.select(e.id, shape, &ty, &sel.field);
                let ty = if sel.test { Ty::Bool } else { field_ty };
                (c.saturating_add(1), shape, ty)
            }
            Expr::List(list) => {
                let mut cost = 1u64;
                let mut elem = Ty::Unknown;
                for (i, el) in list.elements.iter().enumerate() {
                    let (c, _, t) = self.expr(el);
                    cost = cost.saturating_add(c);
                    elem = if i == 0 { t } else { Ty::join(&elem, &t) };
                }
                (
                    cost,
                    Shape::Sized(list.elements.len() as u64),
                    Ty::List(Box::new(elem)),
                )
            }
            Expr::Map(map) => {
                let mut cost = 1u64;
                let (mut key, mut value) = (Ty::Unknown, Ty::Unknown);
                for (i, entry) in map.entries.iter().enumerate() {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        let (kc, _, kt) = self.expr(&m.key);
                        let (vc, _, vt) = self.expr(&m.value);
                        cost = cost.saturating_add(kc).saturating_add(vc);
                        if i == 0 {
                            (key, value) = (kt, vt);
                        } else {
                            (key, value) = (Ty::join(&key, &kt), Ty::join(&value, &vt));
                        }
                    }
                }
                (
                    cost,
                    Shape::Sized(map.entries.len() as u64),
                    Ty::Map(Box::new(key), Box::new(value)),
                )
            }
            Expr::Struct(s) => {
                let mut cost = 1u64;
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => cost = cost.saturating_add(self.expr(&m.value).0),
                        EntryExpr::StructField(f) => {
                            cost = cost.saturating_add(self.expr(&f.value).0)
                        }
                    }
                }
                (cost, Shape::Sized(1), Ty::Unknown)
            }
            Expr::Comprehension(c) => {
                let (range_cost, range, range_ty) = self.expr(&c.iter_range);
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
                let element_ty = match &range_ty {
                    Ty::List(t) => (**t).clone(),
                    Ty::Map(k, _) => (**k).clone(),
                    Ty::Dyn | Ty::Unknown => range_ty.clone(),
                    other => {
                        let other = other.clone();
                        self.fail(
                            c.iter_range.id,
                            format!(
                                "expression of type '{}' cannot be range of a comprehension (must be list, map, or dynamic)",
                                other.name()
                            ),
                        )
                    }
                };
                let (init_cost, _, init_ty) = self.expr(&c.accu_init);
                self.scopes.push((c.iter_var.clone(), element, element_ty));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes
                        .push((v2.clone(), Shape::Sized(MAX_REQUEST_SIZE), Ty::Unknown));
                }
                self.scopes
                    .push((c.accu_var.clone(), Shape::Sized(n), init_ty.clone()));
                self.accumulators.push(c.accu_var.clone());
                let (cond, _, _) = self.expr(&c.loop_cond);
                let (step, _, step_ty) = self.expr(&c.loop_step);
                // The accumulator takes the type the step gives it (`map`'s `[] + [f(x)]`).
                if let Some(accu) = self.scopes.last_mut() {
                    accu.2 = Ty::join(&step_ty, &init_ty);
                }
                let (result, _, result_ty) = self.expr(&c.result);
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
                (cost, Shape::Sized(n), result_ty)
            }
            Expr::Call(call) => self.call(e.id, call),
            Expr::Unspecified => (1, Shape::Sized(1), Ty::Unknown),
        }
    }

    fn select(&mut self, id: u64, shape: Shape, ty: &Ty, field: &str) -> (Shape, Ty) {
        let unknown = (Shape::Sized(MAX_REQUEST_SIZE), Ty::Unknown);
        match ty {
            Ty::Map(_, v) => {
                let shape = match shape {
                    Shape::Node(i) => self.b.nodes[i]
                        .additional
                        .map(Shape::Node)
                        .unwrap_or(unknown.0),
                    Shape::Sized(_) => unknown.0,
                };
                return (shape, (**v).clone());
            }
            Ty::Object => {}
            Ty::Optional(_) => return unknown,
            Ty::Dyn | Ty::Unknown => {
                // Declared properties still resolve below a dynamic value's node.
            }
            other => {
                let other = other.clone();
                self.fail(
                    id,
                    format!("type '{}' does not support field selection", other.name()),
                );
                return unknown;
            }
        }
        let Shape::Node(i) = shape else {
            return unknown;
        };
        let node = &self.b.nodes[i];
        if let Some((_, child)) = node
            .properties
            .iter()
            .find(|(name, _)| escape(name).as_deref() == Some(field))
        {
            let child = *child;
            return (Shape::Node(child), self.node_ty(child));
        }
        if let Some(additional) = node.additional {
            return (Shape::Node(additional), self.node_ty(additional));
        }
        if node.resource_root && matches!(field, "apiVersion" | "kind") {
            return (Shape::Sized(MAX_REQUEST_SIZE), Ty::String);
        }
        if node.resource_root && field == "metadata" {
            return (
                Shape::Sized(MAX_REQUEST_SIZE),
                Ty::Map(Box::new(Ty::String), Box::new(Ty::String)),
            );
        }
        if node.ty == "object" && !node.properties.is_empty() && *ty == Ty::Object {
            self.fail(id, format!("undefined field '{field}'"));
        }
        unknown
    }

    fn call(&mut self, id: u64, call: &kube_cel::cel::common::ast::CallExpr) -> (u64, Shape, Ty) {
        // A qualified function (`sets.contains`, `optional.none`) may parse as a call on an
        // identifier that is no variable: that identifier is a namespace.
        let (target_cost, target, target_ty) = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) if ns != "self"
                && ns != "oldSelf"
                && !self.scopes.iter().any(|(n, _, _)| n == ns) =>
            {
                (0, None, None)
            }
            Some(t) => {
                let (c, s, ty) = self.expr(t);
                (c, Some(s), Some(ty))
            }
            None => (0, None, None),
        };
        // Logical operators and the conditional cost only what they evaluate (the costlier
        // branch of a conditional).
        let name = call.func_name.as_str();
        if matches!(
            name,
            "_&&_" | "_||_" | "!_" | "@not_strictly_false" | "_?_:_"
        ) {
            let mut costs = Vec::with_capacity(call.args.len());
            let mut tys = Vec::with_capacity(call.args.len());
            for a in &call.args {
                let (c, _, t) = self.expr(a);
                costs.push(c);
                tys.push(t);
            }
            let cost = if let (true, Some((condition, branches))) =
                (name == "_?_:_", costs.split_first())
            {
                condition.saturating_add(branches.iter().copied().max().unwrap_or(0))
            } else {
                costs.iter().fold(0u64, |sum, c| sum.saturating_add(*c))
            };
            let ty = match (name, tys.as_slice()) {
                ("_?_:_", [c, a, b]) => {
                    if (c.known() && *c != Ty::Bool) || (a.scalar() && b.scalar() && a != b) {
                        self.no_overload(id, name, None, &tys)
                    } else {
                        Ty::join(a, b)
                    }
                }
                ("@not_strictly_false", _) => Ty::Bool,
                (_, tys) if tys.iter().any(|t| t.known() && *t != Ty::Bool) => {
                    self.no_overload(id, name, None, tys)
                }
                _ => Ty::Bool,
            };
            return (cost, Shape::Sized(1), ty);
        }
        let mut cost = target_cost.saturating_add(1);
        let mut args = Vec::with_capacity(call.args.len());
        let mut tys = Vec::with_capacity(call.args.len());
        for a in &call.args {
            let (c, s, t) = self.expr(a);
            cost = cost.saturating_add(c);
            args.push(s);
            tys.push(t);
        }
        let ty = self.call_type(id, name, target_ty.as_ref(), &tys);
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
                (cost, shape, ty)
            }
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let n = args.iter().map(|s| self.size_of(*s)).min().unwrap_or(1);
                let traversal = if n > 1 { linear(n) } else { 0 };
                (cost.saturating_add(traversal), Shape::Sized(1), ty)
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
                    return (cost, Shape::Sized(n), ty);
                }
                (cost.saturating_add(linear(n)), Shape::Sized(n), ty)
            }
            "@in" => {
                let n = args.get(1).map(|s| self.size_of(*s)).unwrap_or(1);
                (cost.saturating_add(n), Shape::Sized(1), ty)
            }
            "startsWith" | "endsWith" => {
                let n = args.iter().map(|s| self.size_of(*s)).max().unwrap_or(1);
                (cost.saturating_add(linear(n)), Shape::Sized(1), ty)
            }
            "contains" | "matches" | "find" | "lowerAscii" | "upperAscii" | "trim" | "indexOf"
            | "lastIndexOf" | "substring" | "charAt" | "replace" | "reverse" | "isURL" | "url"
            | "isIP" | "ip" | "isCIDR" | "cidr" | "quantity" | "isQuantity" | "semver"
            | "isSemver" | "string" | "bytes" | "format" | "validate" => {
                let args_size = args
                    .iter()
                    .fold(0u64, |sum, s| sum.saturating_add(self.size_of(*s)));
                let n = linear(first_size).saturating_mul(linear(args_size).max(1));
                (cost.saturating_add(n), Shape::Sized(first_size), ty)
            }
            "split" | "findAll" | "join" => (
                cost.saturating_add(linear(first_size)),
                Shape::Sized(first_size),
                ty,
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
                    ty,
                )
            }
            _ => (cost, Shape::Sized(first_size), ty),
        }
    }

    /// The result type of an operator or function, or cel-go's overload error when its
    /// operands are known not to fit. Functions without a modelled signature are `Unknown`.
    fn call_type(&mut self, id: u64, name: &str, target: Option<&Ty>, args: &[Ty]) -> Ty {
        use Ty::*;
        let refuse = |c: &mut Self| c.no_overload(id, name, target, args);
        let any_unknown = args.iter().chain(target).any(|t| !t.known());
        match (name, target, args) {
            ("_+_", None, [a, b]) => match (a, b) {
                _ if !a.known() || !b.known() => Ty::join(a, b),
                (Int, Int)
                | (Uint, Uint)
                | (Double, Double)
                | (String, String)
                | (Bytes, Bytes)
                | (Duration, Duration) => a.clone(),
                (Timestamp, Duration) | (Duration, Timestamp) => Timestamp,
                (List(x), List(y)) => List(Box::new(Ty::join(x, y))),
                _ => refuse(self),
            },
            ("_-_", None, [a, b]) => match (a, b) {
                _ if !a.known() || !b.known() => Ty::join(a, b),
                (Int, Int) | (Uint, Uint) | (Double, Double) | (Duration, Duration) => a.clone(),
                (Timestamp, Timestamp) => Duration,
                (Timestamp, Duration) => Timestamp,
                _ => refuse(self),
            },
            ("_*_" | "_/_", None, [a, b]) => match (a, b) {
                _ if !a.known() || !b.known() => Ty::join(a, b),
                (Int, Int) | (Uint, Uint) | (Double, Double) => a.clone(),
                _ => refuse(self),
            },
            ("_%_", None, [a, b]) => match (a, b) {
                _ if !a.known() || !b.known() => Ty::join(a, b),
                (Int, Int) | (Uint, Uint) => a.clone(),
                _ => refuse(self),
            },
            ("-_", None, [a]) => match a {
                Int | Double | Dyn | Unknown => a.clone(),
                _ => refuse(self),
            },
            ("_<_" | "_<=_" | "_>_" | "_>=_", None, [a, b]) => {
                let ok = !a.known()
                    || !b.known()
                    || (a.numeric() && b.numeric())
                    || (a == b && matches!(a, String | Bytes | Bool | Timestamp | Duration));
                if ok { Bool } else { refuse(self) }
            }
            ("_==_" | "_!=_", None, [a, b]) => {
                if a.scalar() && b.scalar() && a != b {
                    refuse(self)
                } else {
                    Bool
                }
            }
            ("@in", None, [a, b]) => match b {
                List(e) if a.scalar() && e.scalar() && a != &**e => refuse(self),
                Map(k, _) if a.scalar() && k.scalar() && a != &**k => refuse(self),
                List(_) | Map(_, _) | Dyn | Unknown => Bool,
                _ => refuse(self),
            },
            ("_[_]", None, [a, i]) => match a {
                List(e) if matches!(i, Int | Uint | Dyn | Unknown) => (**e).clone(),
                Map(k, v) if !(i.scalar() && k.scalar() && i != &**k) => (**v).clone(),
                Dyn | Unknown | Object | Optional(_) => Unknown,
                _ => refuse(self),
            },
            ("size", None, [a]) | ("size", Some(a), []) => match a {
                String | Bytes | List(_) | Map(_, _) | Dyn | Unknown => Int,
                _ => refuse(self),
            },
            ("int", None, [_]) => Int,
            ("uint", None, [_]) => Uint,
            ("double", None, [_]) => Double,
            ("string", None, [_]) => String,
            ("bytes", None, [_]) => Bytes,
            ("bool", None, [_]) => Bool,
            ("timestamp", None, [_]) => Timestamp,
            ("duration", None, [_]) => Duration,
            ("dyn", None, [_]) => Dyn,
            ("type", None, [_]) => Type,
            ("contains" | "startsWith" | "endsWith" | "matches", Some(t), [a]) => {
                if any_unknown || (*t == String && *a == String) {
                    Bool
                } else {
                    refuse(self)
                }
            }
            ("matches", None, [t, a]) => {
                if any_unknown || (*t == String && *a == String) {
                    Bool
                } else {
                    refuse(self)
                }
            }
            ("lowerAscii" | "upperAscii" | "trim", Some(t), []) => match t {
                String | Dyn | Unknown => String,
                _ => refuse(self),
            },
            ("isURL" | "isIP" | "isCIDR" | "isQuantity" | "isSemver", None, [a]) => match a {
                String | Dyn | Unknown => Bool,
                _ => refuse(self),
            },
            _ => Unknown,
        }
    }
}

/// One compile error as cel-go prints it: location, message, and the source line with a caret.
fn issue(source: &str, line: usize, column: usize, message: &str) -> String {
    let snippet = source
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or_default();
    let dots: String = snippet
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c.len_utf8() > 1 { '\u{ff0e}' } else { '.' })
        .collect();
    format!("ERROR: <input>:{line}:{column}: {message}\n | {snippet}\n | {dots}^")
}

/// cel-go's rendering of parse errors.
fn parse_issues(source: &str, errors: &kube_cel::cel::ParseErrors) -> String {
    errors
        .errors
        .iter()
        .map(|e| {
            issue(
                source,
                usize::try_from(e.pos.0).unwrap_or(1),
                usize::try_from(e.pos.1).unwrap_or(1),
                &e.msg,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders checker errors at the positions of their expressions. The parser keeps positions
/// only when it fails, so the source is parsed again with a stray `)` after it: the parser skips
/// that token and builds the same tree with the same ids, and its error carries the positions.
fn check_issues(source: &str, errors: &[(u64, String)]) -> String {
    let info = kube_cel::cel::parser::Parser::default()
        .parse(&format!("{source} )"))
        .err()
        .and_then(|e| e.errors.into_iter().find_map(|e| e.source_info));
    let mut located: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|(id, message)| {
            let offset = info
                .as_ref()
                .and_then(|i| i.offset_for(*id))
                .map(|(start, _)| start as usize)
                .unwrap_or(0);
            let before = source.get(..offset).unwrap_or(source);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .unwrap_or_default()
                .chars()
                .count()
                + 1;
            (line, column, message.as_str())
        })
        .collect();
    located.sort();
    located.dedup();
    located
        .into_iter()
        .map(|(line, column, message)| issue(source, line, column, message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// kube-apiserver's limit on the actual cost of one evaluation of one expression
/// (`PerCallLimit`).
pub(crate) const PER_CALL_LIMIT: u64 = 1_000_000;
/// kube-apiserver's budget for the actual cost of all rules run for one object
/// (`RuntimeCELCostBudget`).
pub(crate) const RUNTIME_COST_BUDGET: u64 = 10_000_000;

/// cel-go's cost factors: a character of a traversed string, and of a regular expression.
/// How many values the meter may copy into the interpreter for one request (operands handed
/// to it, lists concatenated). cel-go shares these where the interpreter copies them, so a rule
/// can make the copies far outrun its cost (`(self.xs + self.ys).size()` in a loop over
/// `self.xs` costs a few units per item and copies both lists each time). An evaluation that
/// would copy more is stopped as if over its cost limit; ordinary rules copy a tiny fraction.
const WORK_BUDGET: u64 = 2 * RUNTIME_COST_BUDGET;

/// What the rules of one request may still spend: kube-apiserver's cost budget, and the copies
/// above.
struct Budget {
    cost: i64,
    work: u64,
}

const STRING_TRAVERSAL: f64 = 0.1;
const REGEX_LENGTH: f64 = 0.25;

/// Why a metered evaluation stopped short of a value.
#[derive(Debug)]
enum Halt {
    /// The running cost passed the limit; evaluation stopped there, as cel-go cancels it.
    Limit,
    /// An evaluation error (a value in CEL: `&&`, `||` and `@not_strictly_false` absorb it).
    Error(kube_cel::cel::ExecutionError),
}

impl From<kube_cel::cel::ExecutionError> for Halt {
    fn from(e: kube_cel::cel::ExecutionError) -> Self {
        Halt::Error(e)
    }
}

/// The outcome of a metered evaluation: the value (or error, or `None` when the limit stopped
/// it) and the actual cost spent.
struct Metered {
    value: Option<Result<Cel, kube_cel::cel::ExecutionError>>,
    cost: u64,
    work: u64,
}

/// Evaluates an expression while counting its actual cost the way cel-go's cost tracker does
/// (see the module doc). Variables, field selection, indexing, literals, comprehensions and the
/// logical operators are evaluated here on shared values (a value is never copied to be looked
/// at); every other function or operator is handed to the interpreter with its operands bound
/// as variables, so values and errors are the interpreter's own.
struct Meter<'c> {
    cost: u64,
    limit: u64,
    /// Values copied so far, and how many may be ([`WORK_BUDGET`]).
    work: u64,
    work_limit: u64,
    /// The interpreter's context: functions only.
    base: &'c Context<'c>,
    /// Variables in scope, innermost last: `self`, `oldSelf`, then comprehension variables.
    vars: Vec<(String, Cel)>,
}

/// The variable names operands are bound to when a step is handed to the interpreter; `@` keeps
/// them apart from anything a rule can name.
const OPERANDS: [&str; 8] = ["@a0", "@a1", "@a2", "@a3", "@a4", "@a5", "@a6", "@a7"];

fn ident(id: u64, name: &str) -> IdedExpr {
    IdedExpr {
        id,
        expr: Expr::Ident(name.to_owned()),
    }
}

/// cel-go's `actualSize`: characters of a string, bytes, items of a list or map, else 1.
fn actual_size(v: &Cel) -> u64 {
    match v {
        Cel::String(s) => s.chars().count() as u64,
        Cel::Bytes(b) => b.len() as u64,
        Cel::List(l) => l.len() as u64,
        Cel::Map(m) => m.map.len() as u64,
        _ => 1,
    }
}

/// How many values the interpreter copies to take this one: itself and everything inside.
fn values_in(v: &Cel) -> u64 {
    match v {
        Cel::List(l) => l
            .iter()
            .fold(1u64, |sum, i| sum.saturating_add(values_in(i))),
        Cel::Map(m) => m
            .map
            .values()
            .fold(1u64, |sum, i| sum.saturating_add(values_in(i))),
        _ => 1,
    }
}

fn scaled(size: u64, factor: f64) -> u64 {
    (size as f64 * factor).ceil() as u64
}

/// Kubernetes' `traversalCost`: the cost of walking a value as a data tree.
fn traversal_cost(v: &Cel) -> u64 {
    match v {
        Cel::String(s) => (s.len() as f64 * STRING_TRAVERSAL) as u64,
        Cel::Bytes(b) => (b.len() as f64 * STRING_TRAVERSAL) as u64,
        Cel::List(l) => l
            .iter()
            .fold(0u64, |sum, i| sum.saturating_add(traversal_cost(i))),
        Cel::Map(m) => m.map.iter().fold(0u64, |sum, (k, v)| {
            let key = match k {
                Key::String(s) => (s.len() as f64 * STRING_TRAVERSAL) as u64,
                _ => 1,
            };
            sum.saturating_add(key).saturating_add(traversal_cost(v))
        }),
        _ => 1,
    }
}

/// The actual cost of one call with its evaluated operands (the receiver first), as cel-go's
/// `costCall` and Kubernetes' library estimator (`CallCost`) charge it.
fn call_cost(name: &str, args: &[Cel], result: &Cel) -> u64 {
    let size = |i: usize| args.get(i).map(actual_size).unwrap_or(1);
    let textual = |i: usize| matches!(args.get(i), Some(Cel::String(_) | Cel::Bytes(_)));
    match name {
        "isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf" => {
            args.first().map(traversal_cost).unwrap_or(0)
        }
        "url" | "lowerAscii" | "upperAscii" | "substring" | "trim" | "cidr" | "isIP" | "isCIDR"
        | "quantity" | "isQuantity" | "isURL" | "semver" | "isSemver" => {
            scaled(size(0), STRING_TRAVERSAL)
        }
        "ip" if textual(0) => scaled(size(0), STRING_TRAVERSAL),
        "replace" | "split" => scaled(size(0), 2.0 * STRING_TRAVERSAL),
        "join" => scaled(actual_size(result), 2.0 * STRING_TRAVERSAL),
        "find" | "findAll" | "matches" => {
            scaled(size(0) + 1, STRING_TRAVERSAL).saturating_mul(scaled(size(1), REGEX_LENGTH))
        }
        "contains" if textual(0) => {
            scaled(size(0), STRING_TRAVERSAL).saturating_mul(scaled(size(1), STRING_TRAVERSAL))
        }
        "startsWith" | "endsWith" => scaled(size(0), STRING_TRAVERSAL),
        // The conversions between strings and bytes (not a string's to itself).
        "string" if matches!(args.first(), Some(Cel::Bytes(_))) => {
            scaled(size(0), STRING_TRAVERSAL)
        }
        "bytes" if matches!(args.first(), Some(Cel::String(_))) => {
            scaled(size(0), STRING_TRAVERSAL)
        }
        "@in" if matches!(args.get(1), Some(Cel::List(_))) => size(1),
        "_==_" | "_!=_" => scaled(size(0).min(size(1)), STRING_TRAVERSAL),
        "_<_" | "_<=_" | "_>_" | "_>=_" if textual(0) && textual(1) => {
            scaled(size(0).min(size(1)), STRING_TRAVERSAL)
        }
        "_+_" if textual(0) && textual(1) => {
            scaled(size(0).saturating_add(size(1)), STRING_TRAVERSAL)
        }
        "sets.contains" | "sets.equivalent" | "sets.intersects" => size(0).saturating_mul(size(1)),
        _ => 1,
    }
}

/// A literal, or a list or map of constants: cel-go folds these into constants, which cost
/// nothing to evaluate.
fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) => true,
        Expr::List(l) => {
            l.optional_indices.is_empty() && l.elements.iter().all(|x| is_constant(&x.expr))
        }
        Expr::Map(m) => m.entries.iter().all(|x| match &x.expr {
            EntryExpr::MapEntry(m) => {
                !m.optional && is_constant(&m.key.expr) && is_constant(&m.value.expr)
            }
            EntryExpr::StructField(_) => false,
        }),
        _ => false,
    }
}

/// A call cel-go's planner answers without calling anything (`OptOptimize`): a type conversion
/// of constants (`duration('1h')`) becomes a constant, and `in` a constant list a set lookup.
fn folded(call: &kube_cel::cel::common::ast::CallExpr) -> bool {
    match (
        call.func_name.as_str(),
        call.target.as_deref(),
        call.args.as_slice(),
    ) {
        (
            "bool" | "bytes" | "double" | "duration" | "dyn" | "int" | "string" | "timestamp"
            | "type" | "uint",
            None,
            args,
        ) => !args.is_empty() && args.iter().all(|a| matches!(a.expr, Expr::Literal(_))),
        ("@in", None, [_, list]) => {
            matches!(&list.expr, Expr::List(l) if l.elements.iter().all(|x| matches!(x.expr, Expr::Literal(_))))
        }
        _ => false,
    }
}

/// The type names a rule can use as values (`type(self) == string`).
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// A CEL type as a value (`type(x)`, `int`), which the `cel` interpreter has none of: the meter
/// answers `type()` and type names itself, and compares them.
#[derive(Debug, PartialEq, Eq)]
struct TypeValue(&'static str);

impl kube_cel::cel::objects::Opaque for TypeValue {
    fn runtime_type_name(&self) -> &str {
        "type"
    }
}

fn type_value(v: &Cel) -> Option<&TypeValue> {
    match v {
        Cel::Opaque(o) => o.downcast_ref::<TypeValue>(),
        _ => None,
    }
}

/// The name of a value's CEL type, as `type()` gives it.
fn type_name(v: &Cel) -> &'static str {
    match v {
        Cel::Bool(_) => "bool",
        Cel::Bytes(_) => "bytes",
        Cel::Float(_) => "double",
        Cel::Int(_) => "int",
        Cel::List(_) => "list",
        Cel::Map(_) => "map",
        Cel::Null => "null_type",
        Cel::String(_) => "string",
        Cel::UInt(_) => "uint",
        Cel::Timestamp(_) => "google.protobuf.Timestamp",
        Cel::Duration(_) => "google.protobuf.Duration",
        Cel::Opaque(o) if o.downcast_ref::<TypeValue>().is_some() => "type",
        Cel::Opaque(o) if o.downcast_ref::<OptionalValue>().is_some() => "optional_type",
        _ => "dyn",
    }
}

fn map_key(v: &Cel) -> Option<Key> {
    match v {
        Cel::String(s) => Some(Key::String(s.clone())),
        Cel::Int(i) => Some(Key::Int(*i)),
        Cel::UInt(u) => Some(Key::Uint(*u)),
        Cel::Bool(b) => Some(Key::Bool(*b)),
        _ => None,
    }
}

fn optional(v: &Cel) -> Option<&OptionalValue> {
    match v {
        Cel::Opaque(o) => o.downcast_ref::<OptionalValue>(),
        _ => None,
    }
}

impl<'c> Meter<'c> {
    /// Evaluates `e` with `vars` bound, stopping once the cost passes `limit`.
    fn run(
        e: &IdedExpr,
        base: &'c Context<'c>,
        vars: Vec<(String, Cel)>,
        limit: u64,
        work_limit: u64,
    ) -> Metered {
        let mut meter = Meter {
            cost: 0,
            limit,
            work: 0,
            work_limit,
            base,
            vars,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| meter.eval(e)));
        let value = match outcome {
            Ok(Ok(v)) => Some(Ok(v)),
            Ok(Err(Halt::Error(e))) => Some(Err(e)),
            Ok(Err(Halt::Limit)) => None,
            Err(_) => Some(Err(kube_cel::cel::ExecutionError::function_error(
                "evaluation",
                "internal error in the expression interpreter",
            ))),
        };
        Metered {
            value,
            cost: meter.cost,
            work: meter.work,
        }
    }

    fn charge(&mut self, cost: u64) -> Result<(), Halt> {
        self.cost = self.cost.saturating_add(cost);
        if self.cost > self.limit {
            return Err(Halt::Limit);
        }
        Ok(())
    }

    /// Counts values copied; past the work budget the evaluation stops as over its limit.
    fn copy(&mut self, values: u64) -> Result<(), Halt> {
        self.work = self.work.saturating_add(values);
        if self.work > self.work_limit {
            return Err(Halt::Limit);
        }
        Ok(())
    }

    /// Hands one step to the interpreter: `step` refers to its operands as `@a0`, `@a1`, ...
    fn delegate(&mut self, step: &IdedExpr, operands: &[Cel]) -> Result<Cel, Halt> {
        self.copy(operands.iter().map(values_in).sum())?;
        let mut scope = self.base.new_inner_scope();
        for (name, v) in OPERANDS.iter().zip(operands) {
            scope.add_variable_from_value(*name, v.clone());
        }
        Ok(Cel::resolve(step, &scope)?)
    }

    fn variable(&self, name: &str) -> Option<&Cel> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn eval_bool(
        &mut self,
        e: &IdedExpr,
    ) -> Result<Result<bool, kube_cel::cel::ExecutionError>, Halt> {
        match self.eval(e) {
            Ok(Cel::Bool(b)) => Ok(Ok(b)),
            Ok(_) => Ok(Err(kube_cel::cel::ExecutionError::NoSuchOverload)),
            Err(Halt::Error(e)) => Ok(Err(e)),
            Err(Halt::Limit) => Err(Halt::Limit),
        }
    }

    fn eval(&mut self, e: &IdedExpr) -> Result<Cel, Halt> {
        use kube_cel::cel::ExecutionError as E;
        match &e.expr {
            Expr::Literal(_) => Ok(Cel::resolve(e, self.base)?),
            Expr::List(_) | Expr::Map(_) if is_constant(&e.expr) => Ok(Cel::resolve(e, self.base)?),
            Expr::Ident(name) => {
                if self.variable(name).is_none()
                    && let Some(t) = TYPE_NAMES.iter().find(|t| *t == name)
                {
                    // A type name is a constant in cel-go.
                    return Ok(Cel::Opaque(Arc::new(TypeValue(t))));
                }
                self.charge(1)?;
                match self.variable(name) {
                    Some(v) => Ok(v.clone()),
                    None => Err(Halt::Error(E::undeclared_reference(name))),
                }
            }
            Expr::Select(sel) => {
                let operand = self.eval(&sel.operand)?;
                self.charge(1)?;
                let Cel::Map(m) = &operand else {
                    return Ok(Cel::Bool(false));
                };
                let key = Key::String(Arc::new(sel.field.clone()));
                match (m.get(&key), sel.test) {
                    (found, true) => Ok(Cel::Bool(found.is_some())),
                    (Some(v), false) => Ok(v.clone()),
                    (None, false) => Err(Halt::Error(E::no_such_key(&sel.field))),
                }
            }
            Expr::List(list) => {
                let mut items = Vec::with_capacity(list.elements.len());
                for el in &list.elements {
                    items.push(self.eval(el)?);
                }
                self.charge(10)?;
                if list.optional_indices.is_empty() {
                    return Ok(Cel::List(Arc::new(items)));
                }
                // Optional elements (`[?x]`) are unwrapped by the interpreter.
                if items.len() > OPERANDS.len() {
                    return Err(Halt::Error(E::function_error(
                        "list",
                        "too many optional elements",
                    )));
                }
                let step = IdedExpr {
                    id: e.id,
                    expr: Expr::List(kube_cel::cel::common::ast::ListExpr {
                        elements: (0..items.len()).map(|i| ident(e.id, OPERANDS[i])).collect(),
                        optional_indices: list.optional_indices.clone(),
                    }),
                };
                self.delegate(&step, &items)
            }
            Expr::Map(map) => {
                let mut out = HashMap::with_capacity(map.entries.len());
                for entry in &map.entries {
                    let EntryExpr::MapEntry(m) = &entry.expr else {
                        return Err(Halt::Error(E::function_error(
                            "map",
                            "struct field in a map",
                        )));
                    };
                    let k = self.eval(&m.key)?;
                    let v = self.eval(&m.value)?;
                    let key = map_key(&k).ok_or(E::UnsupportedKeyType(k))?;
                    match (m.optional, optional(&v)) {
                        (true, Some(o)) => {
                            if let Some(inner) = o.value() {
                                out.insert(key, inner.clone());
                            }
                        }
                        _ => {
                            out.insert(key, v);
                        }
                    }
                }
                self.charge(30)?;
                Ok(Cel::Map(Map { map: Arc::new(out) }))
            }
            Expr::Struct(_) | Expr::Unspecified => {
                self.charge(40)?;
                Err(Halt::Error(E::function_error(
                    "struct",
                    "message construction is not supported",
                )))
            }
            Expr::Comprehension(c) => {
                let init = self.eval(&c.accu_init)?;
                let range = self.eval(&c.iter_range)?;
                let items: Vec<Cel> = match range {
                    Cel::List(l) => l.iter().cloned().collect(),
                    Cel::Map(m) => m
                        .map
                        .keys()
                        .map(|k| match k {
                            Key::Int(i) => Cel::Int(*i),
                            Key::Uint(u) => Cel::UInt(*u),
                            Key::Bool(b) => Cel::Bool(*b),
                            Key::String(s) => Cel::String(s.clone()),
                        })
                        .collect(),
                    _ => return Err(Halt::Error(E::NoSuchOverload)),
                };
                let depth = self.vars.len();
                self.vars.push((c.accu_var.clone(), init));
                let accu = self.vars.len() - 1;
                self.vars.push((c.iter_var.clone(), Cel::Null));
                let item_slot = self.vars.len() - 1;
                let mut outcome = Ok(());
                for item in items {
                    // The interpreter checks the condition before binding the item.
                    match self.eval_bool(&c.loop_cond) {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => break,
                        Ok(Err(e)) => {
                            outcome = Err(Halt::Error(e));
                            break;
                        }
                        Err(h) => {
                            outcome = Err(h);
                            break;
                        }
                    }
                    self.vars[item_slot].1 = item;
                    match self.eval(&c.loop_step) {
                        Ok(v) => self.vars[accu].1 = v,
                        Err(h) => {
                            outcome = Err(h);
                            break;
                        }
                    }
                }
                let result = outcome.and_then(|()| self.eval(&c.result));
                self.vars.truncate(depth);
                result
            }
            Expr::Call(call) => self.call(e, call),
        }
    }

    fn call(
        &mut self,
        e: &IdedExpr,
        call: &kube_cel::cel::common::ast::CallExpr,
    ) -> Result<Cel, Halt> {
        use kube_cel::cel::ExecutionError as E;
        let name = call.func_name.as_str();
        match (name, call.target.as_deref(), call.args.as_slice()) {
            ("_?_:_", None, [cond, yes, no]) => {
                return match self.eval_bool(cond)? {
                    Ok(true) => self.eval(yes),
                    Ok(false) => self.eval(no),
                    Err(e) => Err(Halt::Error(e)),
                };
            }
            ("_||_" | "_&&_", None, [lhs, rhs]) => {
                let short = name == "_||_";
                let left = self.eval_bool(lhs)?;
                if left == Ok(short) {
                    return Ok(Cel::Bool(short));
                }
                let right = match self.eval(rhs)? {
                    Cel::Bool(b) => Some(b),
                    _ => None,
                };
                return match (left, right) {
                    (Ok(_), Some(r)) => Ok(Cel::Bool(r)),
                    (Err(_), Some(r)) if r == short => Ok(Cel::Bool(short)),
                    (l, _) => Err(Halt::Error(l.err().unwrap_or(E::NoSuchOverload))),
                };
            }
            ("@not_strictly_false", None, [arg]) => {
                let v = self.eval_bool(arg)?;
                self.charge(1)?;
                return Ok(Cel::Bool(v.unwrap_or(true)));
            }
            // A macro's accumulator growing by a list (`map`, `filter`): the accumulator is
            // moved, not copied, so the list grows in place as in the interpreter.
            (
                "_+_",
                None,
                [
                    IdedExpr {
                        expr: Expr::Ident(accu),
                        ..
                    },
                    rhs,
                ],
            ) if accu.starts_with('@') => {
                let right = self.eval(rhs)?;
                self.charge(1)?;
                let slot = self.vars.iter().rposition(|(n, _)| n == accu);
                let left = match slot {
                    Some(i) => std::mem::replace(&mut self.vars[i].1, Cel::Null),
                    None => return Err(Halt::Error(E::undeclared_reference(accu))),
                };
                self.charge(1)?;
                if let (Cel::List(_), Cel::List(_)) = (&left, &right) {
                    self.copy(values_in(&right))?;
                    return Ok((left + right)?);
                }
                return self.generic(e, call, None, vec![left, right]);
            }
            _ => {}
        }
        // A qualified function (`sets.contains`) parses as a call on a namespace, which is no
        // value: the interpreter gets it as written.
        let target = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) if self.variable(ns).is_none() => None,
            Some(t) => Some(self.eval(t)?),
            None => None,
        };
        let mut operands = Vec::with_capacity(call.args.len() + 1);
        operands.extend(target.clone());
        for a in &call.args {
            operands.push(self.eval(a)?);
        }
        // Steps on values that may be large, answered here so that nothing is copied.
        let direct = match (name, target.is_some(), operands.as_slice()) {
            ("size", _, [v]) => match v {
                Cel::String(s) => Some(Cel::Int(s.chars().count() as i64)),
                Cel::Bytes(b) => Some(Cel::Int(b.len() as i64)),
                Cel::List(l) => Some(Cel::Int(l.len() as i64)),
                Cel::Map(m) => Some(Cel::Int(m.map.len() as i64)),
                _ => None,
            },
            ("_[_]", false, [Cel::List(l), i]) => match i {
                Cel::Int(i) => usize::try_from(*i).ok().and_then(|i| l.get(i)).cloned(),
                Cel::UInt(u) => usize::try_from(*u).ok().and_then(|i| l.get(i)).cloned(),
                _ => None,
            },
            ("_[_]", false, [Cel::Map(m), k]) => map_key(k).and_then(|k| m.get(&k)).cloned(),
            ("@in", false, [k, Cel::List(l)]) if !matches!(k, Cel::Opaque(_)) => {
                Some(Cel::Bool(l.iter().any(|x| x == k)))
            }
            ("@in", false, [k, Cel::Map(m)]) => map_key(k).map(|k| Cel::Bool(m.get(&k).is_some())),
            ("_==_" | "_!=_", false, [a, b])
                if (!matches!(a, Cel::Opaque(_)) && !matches!(b, Cel::Opaque(_)))
                    || (type_value(a).is_some() && type_value(b).is_some()) =>
            {
                Some(Cel::Bool((a == b) == (name == "_==_")))
            }
            ("hasValue", true, [o]) => optional(o).map(|o| Cel::Bool(o.value().is_some())),
            ("value", true, [o]) => optional(o).and_then(|o| o.value().cloned()),
            ("dyn", false, [v]) => Some(v.clone()),
            ("type", false, [v]) => Some(Cel::Opaque(Arc::new(TypeValue(type_name(v))))),
            _ => None,
        };
        if let Some(v) = direct {
            let cost = match name {
                "_[_]" => 1,
                _ if folded(call) => 0,
                _ => call_cost(name, &operands, &v),
            };
            self.charge(cost)?;
            return Ok(v);
        }
        self.generic(e, call, target.as_ref().map(|_| ()), operands)
    }

    /// A call handed to the interpreter; `target`: the first operand is the receiver.
    fn generic(
        &mut self,
        e: &IdedExpr,
        call: &kube_cel::cel::common::ast::CallExpr,
        target: Option<()>,
        operands: Vec<Cel>,
    ) -> Result<Cel, Halt> {
        use kube_cel::cel::ExecutionError as E;
        let name = call.func_name.as_str();
        if operands.len() > OPERANDS.len() {
            return Err(Halt::Error(E::function_error(name, "too many arguments")));
        }
        let first_arg = usize::from(target.is_some());
        let step = IdedExpr {
            id: e.id,
            expr: Expr::Call(kube_cel::cel::common::ast::CallExpr {
                func_name: call.func_name.clone(),
                target: match (target, call.target.as_deref()) {
                    (Some(()), Some(t)) => Some(Box::new(ident(t.id, OPERANDS[0]))),
                    // A namespace, as written.
                    (None, Some(t)) => Some(Box::new(t.clone())),
                    (_, None) => None,
                },
                args: call
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| ident(a.id, OPERANDS[first_arg + i]))
                    .collect(),
            }),
        };
        let result = self.delegate(&step, &operands);
        let cost = match (&result, name) {
            // Indexing and optional selection are qualifiers on an attribute in cel-go.
            (_, "_[_]" | "_[?_]" | "_?._") => 1,
            (Ok(_), _) if folded(call) => 0,
            (Ok(v), _) => call_cost(name, &operands, v),
            (Err(_), _) => 1,
        };
        self.charge(cost)?;
        result
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
                "timeout": {"type": "string", "format": "duration"},
                "since": {"type": "string", "format": "date"}
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
            {"rule": "self.since < timestamp('2024-06-01T00:00:00Z')"},
            {"rule": "self.labels.all(k, k.startsWith('app'))"},
            {"rule": "self.mode.matches('^[a-z]+$') && self.mode.upperAscii() == 'ABC'"},
        ]);
        let good = json!({"my-field": "x", "ratio": 1, "expires": "2025-01-01T00:00:00Z",
            "timeout": "30m", "labels": {"app.kubernetes.io/name": "x"}, "mode": "abc",
            "since": "2024-05-31"});
        assert_eq!(run(rules.clone(), good, None), Vec::<String>::new());
        let bad = json!({"my-field": "y", "ratio": 0, "expires": "2023-01-01T00:00:00Z",
            "timeout": "2h", "labels": {"team": "x"}, "mode": "ABC", "since": "2024-06-01"});
        assert_eq!(run(rules, bad, None).len(), 7);
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
            errors[0].ends_with(
                "compilation failed: ERROR: <input>:1:5: undefined field 'replica'\n | self.replica > 0\n | ....^"
            ),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "foo > 0"}]));
        assert!(
            errors[0].ends_with(
                "ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo > 0\n | ^"
            ),
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
    fn operators_and_functions_on_the_wrong_types_are_refused_as_cel_go_reports_them() {
        let refused = |rule: &str| -> String {
            let errors = compile_errors(json!([{ "rule": rule }]));
            assert_eq!(errors.len(), 1, "{rule}: {errors:?}");
            let (_, detail) = errors[0]
                .split_once("compilation failed: ")
                .unwrap_or_else(|| panic!("{rule}: {errors:?}"));
            detail.to_owned()
        };
        assert_eq!(
            refused("self.replicas + \"a\" > 0"),
            "ERROR: <input>:1:15: found no matching overload for '_+_' applied to '(int, string)'\n | self.replicas + \"a\" > 0\n | ..............^"
        );
        assert_eq!(
            refused("self.mode > 3"),
            "ERROR: <input>:1:11: found no matching overload for '_>_' applied to '(string, int)'\n | self.mode > 3\n | ..........^"
        );
        assert_eq!(
            refused("size(self.replicas) > 0"),
            "ERROR: <input>:1:5: found no matching overload for 'size' applied to '(int)'\n | size(self.replicas) > 0\n | ....^"
        );
        assert!(
            refused("self.ratio == 'x'")
                .contains("found no matching overload for '_==_' applied to '(double, string)'")
        );
        assert!(
            refused("self.mode.startsWith(1)")
                .contains("found no matching overload for 'startsWith' applied to 'string.(int)'")
        );
        assert!(
            refused("self.expires + self.expires < self.expires")
                .contains("applied to '(google.protobuf.Timestamp, google.protobuf.Timestamp)'")
        );
        assert!(
            refused("self.ports.all(p, p.port + 'x' == '')")
                .contains("'_+_' applied to '(int, string)'")
        );
        assert!(refused("self.replicas && true").contains("'_&&_' applied to '(int, bool)'"));
        // Two errors on one line are both reported, in order.
        let both = refused("self.mode > 3 || self.replicas < 'a'");
        assert_eq!(both.matches("ERROR: <input>:1:").count(), 2, "{both}");

        // Well-typed rules, dynamic values and functions without a modelled signature pass.
        for rule in [
            "self.replicas + 1 > self.maxReplicas - 2",
            "self.ratio > 1 && self.ratio < 2.5",
            "self.expires - duration('1h') < timestamp('2030-01-01T00:00:00Z')",
            "size(self.mode) < 10 && self.mode.size() < 10",
            "self.labels.all(k, self.labels[k].size() < 10)",
            "self.ports.map(p, p.port).all(x, x > 0)",
            "self.ports.exists(p, p.name == 'http')",
            "'a' in self.labels && self.mode in ['a', 'b']",
            "self.mode.matches('^a') ? self.replicas > 0 : self.replicas == 0",
            "isURL(self.mode) || quantity('1Gi').isGreaterThan(quantity('1Mi'))",
            "string(self.replicas) + 'x' != ''",
            "type(self.replicas) == int && type(self.mode) != uint",
        ] {
            assert_eq!(
                compile_errors(json!([{ "rule": rule }])),
                Vec::<String>::new(),
                "{rule}"
            );
        }
    }

    #[test]
    fn a_rule_must_be_bool_and_a_message_expression_a_string() {
        let errors = compile_errors(json!([{"rule": "self.replicas"}]));
        assert!(
            errors[0].ends_with("}: cel expression must evaluate to a bool"),
            "{errors:?}"
        );
        let errors = compile_errors(json!([{"rule": "self.replicas + 1"}]));
        assert!(
            errors[0].ends_with("cel expression must evaluate to a bool"),
            "{errors:?}"
        );
        let errors =
            compile_errors(json!([{"rule": "true", "messageExpression": "self.replicas"}]));
        assert!(
            errors[0].contains(".messageExpression: Invalid value: apiextensions.ValidationRule{")
                && errors[0].ends_with("}: messageExpression must evaluate to a string"),
            "{errors:?}"
        );
        assert!(
            compile_errors(
                json!([{"rule": "true", "messageExpression": "'n=' + string(self.replicas)"}])
            )
            .is_empty()
        );
    }

    #[test]
    fn a_stored_crd_with_a_rule_that_now_fails_the_type_checks_keeps_its_rules() {
        let s = schema(json!([
            {"rule": "self.mode > 3", "message": "mode"},
            {"rule": "self.replicas < 3", "message": "too many"}
        ]));
        assert!(Validator::compile(&s).is_err());
        let v = Validator::stored(&s).unwrap();
        let got = v.validate(&json!({"spec": {"mode": "a", "replicas": 5}}), None);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].message, "Invalid value: \"object\": too many");
        assert!(Rules::new(Some(&s)).get().is_some());
    }

    #[test]
    fn int_or_string_and_preserved_fields_stay_dynamic() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": true, "x-kubernetes-validations": [
                {"rule": "type(self) == int ? self > 0 : self.matches('^[a-z]+$')",
                 "message": "a positive port or a name"}]},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        },
        "x-kubernetes-validations": [
            {"rule": "self.port == 80 || self.port == 'http'"},
            {"rule": "!has(self.extra) || self.extra.depth + 1 > 0"},
            {"rule": "!has(self.extra) || self.extra.name.startsWith('x')"}
        ]}}});
        let v = Validator::compile(&s).unwrap();
        let obj = json!({"spec": {"port": "http", "extra": {"depth": 1, "name": "xy"}}});
        assert_eq!(v.validate(&obj, None), Vec::<Violation>::new());
        let obj = json!({"spec": {"port": 0, "extra": {"depth": 1, "name": "xy"}}});
        let got = v.validate(&obj, None);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got.iter().any(|v| v.field == "spec.port"
                && v.message == "Invalid value: \"\": a positive port or a name"),
            "{got:?}"
        );
        // A rule that is only the dynamic value is not known to be a bool.
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"port": {"x-kubernetes-int-or-string": true}},
            "x-kubernetes-validations": [{"rule": "self.port"}]}}});
        let errors = Validator::compile(&s).unwrap_err();
        assert!(
            errors[0]
                .message
                .ends_with("cel expression must evaluate to a bool")
        );
    }

    /// The actual cost of a rule with `self` bound to `spec`, as the meter counts it.
    fn actual_cost(
        rule: &str,
        spec: Value,
    ) -> (u64, Option<Result<Cel, kube_cel::cel::ExecutionError>>) {
        let v = Validator::compile(&schema(json!([]))).unwrap();
        let spec_node = v.nodes[0].properties[0].1;
        let program = Program::compile(rule).unwrap();
        BASE.with(|base| {
            let vars = vec![("self".to_owned(), v.to_cel(spec_node, &spec))];
            let run = Meter::run(
                program.expression(),
                base,
                vars,
                PER_CALL_LIMIT,
                WORK_BUDGET,
            );
            (run.cost, run.value)
        })
    }

    #[test]
    fn the_cost_walk_counts_as_cel_go_does() {
        // Identifiers and selections cost 1 each; constants nothing; a call 1.
        assert_eq!(
            actual_cost("self.replicas > 0", json!({"replicas": 1})).0,
            3
        );
        assert_eq!(actual_cost("[1, 2] == [1, 2]", json!({})).0, 1);
        // Conversions of constants and membership in a constant list are folded by cel-go.
        assert_eq!(
            actual_cost("self.timeout < duration('1h')", json!({"timeout": "1m"})).0,
            3
        );
        assert_eq!(
            actual_cost("self.mode in ['a', 'b', 'c']", json!({"mode": "a"})).0,
            2
        );
        assert_eq!(
            actual_cost("self.mode in [self.mode]", json!({"mode": "a"})).0,
            2 + 2 + 10 + 1
        );
        // A list built at run time costs 10, a map 30.
        assert_eq!(
            actual_cost("[self.replicas, 1].size() == 2", json!({"replicas": 1})).0,
            14
        );
        assert_eq!(
            actual_cost("{'a': self.replicas}.size() == 1", json!({"replicas": 1})).0,
            34
        );
        // all(): the range, then per item the loop condition (2) and the step (3), then the result.
        let xs = json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}, {"name": "c", "port": 3}]});
        assert_eq!(
            actual_cost("self.ports.all(p, p.port > 0)", xs.clone()).0,
            2 + 3 * 6 + 1
        );
        // It stops at the first false: the condition is checked once more, then the result.
        assert_eq!(
            actual_cost("self.ports.all(p, p.port > 1)", xs.clone()).0,
            2 + 6 + 2 + 1
        );
        // && and || evaluate their right side only when needed.
        assert_eq!(
            actual_cost(
                "self.replicas > 5 && self.mode == 'a'",
                json!({"replicas": 1, "mode": "a"})
            )
            .0,
            3
        );
        assert_eq!(
            actual_cost(
                "self.replicas > 5 || self.mode == 'a'",
                json!({"replicas": 1, "mode": "a"})
            )
            .0,
            6
        );
        // Strings: equality traverses the shorter side, contains multiplies both, matches
        // multiplies the string by a quarter of the pattern.
        let long = "x".repeat(1000);
        assert_eq!(
            actual_cost("self.mode == self.mode", json!({"mode": long})).0,
            4 + 100
        );
        assert_eq!(
            actual_cost(
                "self.mode.contains('xxxxxxxxxxxxxxxxxxxx')",
                json!({"mode": long})
            )
            .0,
            2 + 100 * 2
        );
        assert_eq!(
            actual_cost("self.mode.matches('^x+$|^y+$')", json!({"mode": long})).0,
            2 + 101 * 3
        );
        // The value is the interpreter's.
        let (_, value) = actual_cost("self.ports.map(p, p.port).filter(x, x > 1).size() == 2", xs);
        assert_eq!(value.map(|v| v.ok()), Some(Some(Cel::Bool(true))));
        // Past the limit the walk stops without a value.
        let many: Vec<Value> = (0..2000).map(|i| json!({"name": "p", "port": i})).collect();
        let (cost, value) = actual_cost(
            "self.ports.all(a, self.ports.all(b, a.port == b.port || a.port != b.port))",
            json!({"ports": many}),
        );
        assert!(
            value.is_none() && cost > PER_CALL_LIMIT && cost < PER_CALL_LIMIT + 100,
            "{cost}"
        );
        // A rule that costs little but would have the interpreter copy both lists per item is
        // stopped all the same.
        let v = Validator::compile(&schema(json!([]))).unwrap();
        let ports: Vec<Value> = (0..100).map(|i| json!({"name": "p", "port": i})).collect();
        let program =
            Program::compile("self.ports.all(p, (self.ports + self.ports).size() > 0)").unwrap();
        let run = |work_limit: u64| {
            BASE.with(|base| {
                let vars = vec![(
                    "self".to_owned(),
                    v.to_cel(v.nodes[0].properties[0].1, &json!({"ports": ports})),
                )];
                Meter::run(program.expression(), base, vars, PER_CALL_LIMIT, work_limit)
            })
        };
        // Each item copies both lists of 100 two-field objects: 602 values, and two integers.
        let done = run(100_000);
        assert!(
            done.value.is_some() && done.work == 100 * 604,
            "{}",
            done.work
        );
        let stopped = run(50 * 602);
        assert!(
            stopped.value.is_none() && stopped.cost < 1000,
            "{}",
            stopped.cost
        );
    }

    fn nested_lists(max: u64, rules: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "groups": {"type": "array", "maxItems": 16, "items": {"type": "object",
                "properties": {
                    "xs": {"type": "array", "maxItems": max, "items": {"type": "integer"}},
                    "ys": {"type": "array", "maxItems": max, "items": {"type": "integer"}}
                },
                "x-kubernetes-validations": rules}},
            "xs": {"type": "array", "maxItems": max, "items": {"type": "integer"}},
            "ys": {"type": "array", "maxItems": max, "items": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": "!has(self.xs) || self.xs.all(x, self.ys.all(y, x != y))", "message": "xs and ys overlap"}]}}})
    }

    fn disjoint(n: i64) -> (Vec<i64>, Vec<i64>) {
        ((0..n).collect(), (n..2 * n).collect())
    }

    #[test]
    fn a_rule_admitted_by_its_estimate_is_stopped_at_the_per_call_limit() {
        // 1000 × 1000 comparisons: an estimate of about 5M is within the 10M a CRD may declare,
        // but running it over full lists passes the 1M one evaluation may spend.
        let v = Validator::compile(&nested_lists(1000, json!([]))).unwrap();
        let (xs, ys) = disjoint(100);
        assert!(
            v.validate(&json!({"spec": {"xs": xs, "ys": ys}}), None)
                .is_empty()
        );
        let (xs, ys) = disjoint(1000);
        assert_eq!(
            v.validate(&json!({"spec": {"xs": xs, "ys": ys}}), None),
            [Violation {
                field: "spec".into(),
                message: "Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: xs and ys overlap".into(),
                ratcheted: false,
            }]
        );
    }

    #[test]
    fn a_message_expression_is_metered_like_its_rule() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {
                "xs": {"type": "array", "maxItems": 1000, "items": {"type": "integer"}},
                "ys": {"type": "array", "maxItems": 1000, "items": {"type": "integer"}}},
            "x-kubernetes-validations": [
                {"rule": "size(self.xs) < 5",
                 "messageExpression": "self.xs.all(x, self.ys.all(y, x != y)) ? 'too many' : 'overlap'"},
                {"rule": "false", "message": "never reached"}]}}});
        let v = Validator::compile(&s).unwrap();
        let (xs, ys) = disjoint(10);
        assert_eq!(
            v.validate(&json!({"spec": {"xs": xs, "ys": ys}}), None)
                .into_iter()
                .map(|v| v.message)
                .collect::<Vec<_>>(),
            [
                "Invalid value: \"object\": too many",
                "Invalid value: \"object\": never reached"
            ]
        );
        let (xs, ys) = disjoint(1000);
        assert_eq!(
            v.validate(&json!({"spec": {"xs": xs, "ys": ys}}), None),
            [Violation {
                field: "spec".into(),
                message: "Invalid value: \"object\": no further validation rules will be run due to call cost exceeds limit for messageExpression: \"self.xs.all(x, self.ys.all(y, x != y)) ? 'too many' : 'overlap'\"".into(),
                ratcheted: false,
            }]
        );
    }

    #[test]
    fn rules_each_within_the_per_call_limit_run_out_of_the_request_budget() {
        // Four rules on each of up to 16 items, each about 200k per run: every rule's estimate
        // times 16 is within the limits, but 16 full items need about 13M of the 10M budget.
        let rules = json!([
            {"rule": "self.xs.all(x, self.ys.all(y, x != y))"},
            {"rule": "self.xs.all(x, self.ys.all(y, x < y))"},
            {"rule": "self.xs.all(x, self.ys.all(y, x + 1 <= y))"},
            {"rule": "self.ys.all(y, self.xs.all(x, y > x))"}
        ]);
        let v = Validator::compile(&nested_lists(200, rules)).unwrap();
        let (xs, ys) = disjoint(200);
        let groups = |n: usize| json!({"spec": {"groups": vec![json!({"xs": xs, "ys": ys}); n]}});
        assert!(v.validate(&groups(8), None).is_empty());
        let got = v.validate(&groups(16), None);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].field.starts_with("spec.groups["), "{got:?}");
        assert_eq!(
            got[0].message,
            "Invalid value: \"object\": validation failed due to running out of cost budget, no further validation rules will be run"
        );
    }

    #[test]
    fn rules_under_logical_junctors_are_not_structural() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "allOf": [{"x-kubernetes-validations": [{"rule": "true"}]}],
            "anyOf": [{"properties": {"a": {"x-kubernetes-validations": [{"rule": "true"}]}}}],
            "not": {"x-kubernetes-validations": [{"rule": "true"}]}}}});
        let mut paths = Vec::new();
        nested_rules(&s, "", false, &mut paths);
        paths.sort();
        assert_eq!(
            paths,
            [
                "properties[spec].allOf[0].x-kubernetes-validations",
                "properties[spec].anyOf[0].properties[a].x-kubernetes-validations",
                "properties[spec].not.x-kubernetes-validations",
            ]
        );
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
