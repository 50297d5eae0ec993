//! The rules a resource template, a PatchSet reference, a `dependsOn` entry, a patch, a
//! connection detail and a readiness check must follow, each written once.
//!
//! [`CompiledComposition::compile`](crate::compile::CompiledComposition::compile) and
//! [`lint_composition`](crate::lint::lint_composition) both call these checkers: a checker walks
//! one item, returns every [`Problem`] in it (named by the field path below the item) and the
//! compiled item when the compile accepts it. Compile turns the first error into its
//! [`CompileError`](crate::compile::CompileError) (worded as [`Problem::refusal`] says, when its
//! wording is older than the lint's); lint reports them all as findings.
//!
//! Problems come in the order compile has always reported them, so its first error is unchanged.
//! A rule that needs other parts of the Composition is given what it needs to look them up (the
//! PatchSets by name, a resource's position by name). Duplicate names and cycles need the whole
//! Composition, and the schema checks an XRD: they stay with their caller (the cycles with
//! [`DependencyGraph`](crate::graph::DependencyGraph), which both build).

use crate::compile::{
    CompiledConnectionDetail, CompiledReadinessCheck, ENVIRONMENT_PATCH_TYPES, PatchSource,
    allowed_in_environment,
};
use std::collections::BTreeMap;

use serde_json::Value;

use crate::fieldpath::FieldPath;
use crate::graph::GraphError;
use crate::lint::Severity;
use crate::model::{
    ComposedTemplate, ConnectionDetail, ConnectionDetailType, Patch, PatchType, ReadinessCheck,
    ReadinessCheckType,
};
use crate::transform::{CompiledTransform, TransformError, TransformErrorReason};

/// One broken rule at one field of the checked item.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    pub(crate) severity: Severity,
    /// The field below the item, as `strata validate` names it
    /// (`combine.variables[1].fromFieldPath`).
    pub(crate) field: String,
    /// The message `strata validate` prints.
    pub(crate) message: String,
    /// How a patch's compile error words it; `None` for problems compile words as `field` and
    /// `message` (or does not refuse: warnings).
    pub(crate) refusal: Option<Refusal>,
}

/// A problem as compile words it: a patch's [`crate::compile::CompileError::Patch`] or
/// `Transform`, a template's `Field`, or a `dependsOn` entry's `Graph` error.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Refusal {
    Patch {
        field: &'static str,
        message: String,
    },
    Transform(TransformError),
    Field {
        field: &'static str,
        message: &'static str,
    },
    Graph(GraphError),
}

/// The problems of one item, in order.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, field.into(), message.into(), None);
    }

    /// An error compile words as `refused` (a patch's field and message).
    fn refuse(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        refused: (&'static str, String),
    ) {
        let refusal = Refusal::Patch {
            field: refused.0,
            message: refused.1,
        };
        self.push(Severity::Error, field.into(), message.into(), Some(refusal));
    }

    fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, field.into(), message.into(), None);
    }

    fn push(&mut self, severity: Severity, field: String, message: String, r: Option<Refusal>) {
        self.0.push(Problem {
            severity,
            field,
            message,
            refusal: r,
        });
    }
}

/// A resource template's own fields: a name, and a base that is an object with string
/// `apiVersion` and `kind`. (Unique names need the whole Composition: the callers check them.)
pub(crate) fn resource_template(template: &ComposedTemplate) -> Vec<Problem> {
    let mut out = Problems::default();
    if template.name.is_empty() {
        let refusal = Refusal::Field {
            field: "name",
            message: "every resource needs a name",
        };
        let message = "required: every resource needs a name";
        out.push(
            Severity::Error,
            "name".into(),
            message.into(),
            Some(refusal),
        );
    }
    if !template.base.is_object() {
        out.error("base", "must be an object with apiVersion and kind");
        return out.0;
    }
    for field in ["base.apiVersion", "base.kind"] {
        let message = match template.base.get(&field["base.".len()..]) {
            Some(Value::String(s)) if !s.is_empty() => continue,
            Some(Value::String(_)) | None => "required".to_owned(),
            Some(other) => format!("must be a string, found {}", json_kind(other)),
        };
        let refusal = Refusal::Field {
            field,
            message: "required string",
        };
        out.push(Severity::Error, field.into(), message, Some(refusal));
    }
    out.0
}

/// What a JSON value is, for messages (`a number`).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `type: PatchSet` patch: it names a PatchSet of the Composition (`sets`, by name), and is
/// not itself inside one (`in_patch_set`). Returns what `sets` holds for the name, or the
/// problem (a `patchSetName` or `type` one), as the other checkers do.
pub(crate) fn patch_set_reference<'s, T>(
    patch: &Patch,
    in_patch_set: bool,
    sets: &'s BTreeMap<&str, T>,
) -> (Option<&'s T>, Vec<Problem>) {
    let mut out = Problems::default();
    let nested = "a PatchSet cannot contain another PatchSet";
    if in_patch_set {
        out.refuse("type", nested, ("type", nested.into()));
    } else if let Some(name) = patch.patch_set_name.as_deref() {
        if let Some(set) = sets.get(name) {
            return (Some(set), Vec::new());
        }
        let known: Vec<&str> = sets.keys().copied().collect();
        let hint = crate::suggest::did_you_mean(name, known.iter().copied());
        let defined = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        out.refuse(
            "patchSetName",
            format!("cannot find PatchSet by name {name} (defined: {defined}){hint}"),
            (
                "patchSetName",
                format!("cannot find PatchSet by name {name}{hint}"),
            ),
        );
    } else {
        out.refuse(
            "patchSetName",
            "required for type PatchSet",
            ("patchSetName", "required".into()),
        );
    }
    (None, out.0)
}

/// A resource's `dependsOn`: every entry names another resource of the Composition. Returns the
/// position of each dependency found (`resource_index`), and a problem (at `dependsOn[i]`) for
/// each entry that names an unknown resource or the resource itself.
pub(crate) fn depends_on(
    template: &ComposedTemplate,
    resource_index: &dyn Fn(&str) -> Option<usize>,
    resource_hint: &dyn Fn(&str) -> String,
) -> (Vec<usize>, Vec<Problem>) {
    let mut found = Vec::new();
    let mut out = Problems::default();
    for (d, dependency) in template.depends_on.iter().enumerate() {
        let field = format!("dependsOn[{d}]");
        let (message, refusal) = match resource_index(dependency) {
            None => {
                let hint = resource_hint(dependency);
                (
                    format!("unknown resource `{dependency}`{hint}"),
                    GraphError::Unknown {
                        resource: template.name.clone(),
                        missing: dependency.clone(),
                        hint,
                    },
                )
            }
            Some(_) if *dependency == template.name => (
                format!("resource `{dependency}` cannot depend on itself"),
                GraphError::SelfDependency {
                    resource: template.name.clone(),
                },
            ),
            Some(index) => {
                found.push(index);
                continue;
            }
        };
        out.push(
            Severity::Error,
            field,
            message,
            Some(Refusal::Graph(refusal)),
        );
    }
    (found, out.0)
}

/// The first error of a list of problems, if any.
pub(crate) fn first_error(problems: &[Problem]) -> Option<&Problem> {
    problems.iter().find(|p| p.severity == Severity::Error)
}

/// A connection detail: the compiled detail when compile accepts it, and every problem.
pub(crate) fn connection_detail(
    d: &ConnectionDetail,
) -> (Option<CompiledConnectionDetail>, Vec<Problem>) {
    let mut out = Problems::default();
    // Crossplane infers the type from the field that is set.
    let kind = match d.kind {
        Some(k) => k,
        None if d.value.is_some() => ConnectionDetailType::FromValue,
        None if d.from_connection_secret_key.is_some() => {
            ConnectionDetailType::FromConnectionSecretKey
        }
        None if d.from_field_path.is_some() => ConnectionDetailType::FromFieldPath,
        None => {
            out.error(
                "type",
                "cannot infer the type: set value, fromConnectionSecretKey or fromFieldPath",
            );
            return (None, out.0);
        }
    };
    if d.name.as_deref() == Some("") {
        out.error("name", "Required value: name is required");
    }
    let compiled = match kind {
        ConnectionDetailType::FromConnectionSecretKey => {
            match d.from_connection_secret_key.clone() {
                None => {
                    out.error(
                        "fromConnectionSecretKey",
                        "required for type FromConnectionSecretKey",
                    );
                    None
                }
                Some(key) => Some(CompiledConnectionDetail::FromConnectionSecretKey {
                    name: d.name.clone().unwrap_or_else(|| key.clone()),
                    key,
                }),
            }
        }
        ConnectionDetailType::FromFieldPath => {
            if d.from_field_path.is_none() {
                out.error("fromFieldPath", "required for type FromFieldPath");
            }
            if d.name.is_none() {
                out.error("name", "required for type FromFieldPath");
            }
            let path = d.from_field_path.as_deref().and_then(|raw| {
                FieldPath::parse(raw)
                    .map_err(|e| out.error("fromFieldPath", e.to_string()))
                    .ok()
            });
            path.zip(d.name.clone())
                .map(|(path, name)| CompiledConnectionDetail::FromFieldPath { name, path })
        }
        ConnectionDetailType::FromValue => {
            if d.value.is_none() {
                out.error("value", "required for type FromValue");
            }
            if d.name.is_none() {
                out.error("name", "required for type FromValue");
            }
            d.value
                .clone()
                .zip(d.name.clone())
                .map(|(value, name)| CompiledConnectionDetail::FromValue { name, value })
        }
    };
    let compiled = compiled.filter(|_| first_error(&out.0).is_none());
    (compiled, out.0)
}

/// A readiness check: the compiled check when compile accepts it, and every problem.
///
/// Problems are in `strata validate`'s order (the path first); compile reports a missing
/// `matchString`/`matchInteger` before a missing path ([`readiness_refusal`]).
///
/// A `fieldPath` that does not parse is the check's failure to evaluate, as in Crossplane: a
/// warning and a check that never passes ([`CompiledReadinessCheck::Malformed`]), never a
/// refused Composition.
pub(crate) fn readiness_check(
    c: &ReadinessCheck,
) -> (Option<CompiledReadinessCheck>, Vec<Problem>) {
    let mut out = Problems::default();
    let kind = c.kind;
    let reads_path = !matches!(
        kind,
        ReadinessCheckType::None | ReadinessCheckType::MatchCondition
    );
    let mut malformed = None;
    let mut path = None;
    if reads_path {
        match c.field_path.as_deref().map(FieldPath::parse) {
            Some(Ok(p)) => path = Some(p),
            Some(Err(e)) => {
                out.warning(
                    "fieldPath",
                    format!("{e}; the check never passes, so the resource is never ready"),
                );
                malformed = Some(CompiledReadinessCheck::Malformed(format!("fieldPath: {e}")));
            }
            None => {}
        }
    }
    let missing_path = |out: &mut Problems| {
        if c.field_path.is_none() {
            out.error("fieldPath", format!("required for type {kind:?}"));
        }
    };
    let compiled = match kind {
        ReadinessCheckType::None => Some(CompiledReadinessCheck::None),
        ReadinessCheckType::NonEmpty => {
            missing_path(&mut out);
            path.map(CompiledReadinessCheck::NonEmpty)
        }
        ReadinessCheckType::MatchString => {
            missing_path(&mut out);
            if c.match_string.is_none() {
                out.error("matchString", "required for type MatchString");
            }
            path.zip(c.match_string.clone())
                .map(|(p, s)| CompiledReadinessCheck::MatchString(p, s))
        }
        ReadinessCheckType::MatchInteger => {
            missing_path(&mut out);
            if c.match_integer.is_none() {
                out.error("matchInteger", "required for type MatchInteger");
            }
            path.zip(c.match_integer)
                .map(|(p, n)| CompiledReadinessCheck::MatchInteger(p, n))
        }
        ReadinessCheckType::MatchTrue => {
            missing_path(&mut out);
            path.map(CompiledReadinessCheck::MatchTrue)
        }
        ReadinessCheckType::MatchFalse => {
            missing_path(&mut out);
            path.map(CompiledReadinessCheck::MatchFalse)
        }
        ReadinessCheckType::MatchCondition => match c.match_condition.clone() {
            None => {
                out.error("matchCondition", "required for type MatchCondition");
                None
            }
            Some(m) => Some(CompiledReadinessCheck::MatchCondition {
                kind: m.kind,
                status: m.status,
            }),
        },
    };
    (malformed.or(compiled), out.0)
}

/// The problem compile refuses a readiness check for: a missing option before a missing path.
pub(crate) fn readiness_refusal(problems: &[Problem]) -> Option<&Problem> {
    let mut errors = problems.iter().filter(|p| p.severity == Severity::Error);
    errors
        .clone()
        .find(|p| p.field != "fieldPath")
        .or_else(|| errors.next())
}

/// Where a patch is checked, for the rules that depend on it.
pub(crate) struct PatchContext<'a> {
    /// `spec.environment.patches`: only the environment's patch types.
    pub(crate) environment: bool,
    /// The declaration index of a resource by name (its first occurrence).
    pub(crate) resource_index: &'a dyn Fn(&str) -> Option<usize>,
    /// The "did you mean" hint for an unknown resource name.
    pub(crate) resource_hint: &'a dyn Fn(&str) -> String,
}

/// A patch as its rules see it: what it reads and writes once parsed, and its problems.
pub(crate) struct CheckedPatch {
    /// Every problem, in the order compile reports them.
    pub(crate) problems: Vec<Problem>,
    /// The paths it reads, with their fields below the patch (`fromFieldPath`,
    /// `combine.variables[0].fromFieldPath`).
    pub(crate) reads: Vec<(String, FieldPath)>,
    /// The path it writes, with its field below the patch (`toFieldPath`, or `fromFieldPath`
    /// when the destination defaults to the source).
    pub(crate) write: Option<(String, FieldPath)>,
    /// The compiled parts, when the patch has no error.
    pub(crate) compiled: Option<PatchParts>,
}

/// The parts of a [`crate::compile::CompiledPatch`] the rules produce.
pub(crate) struct PatchParts {
    pub(crate) source: PatchSource,
    pub(crate) to: FieldPath,
    pub(crate) to_wildcard: bool,
    pub(crate) from_resource: Option<usize>,
    pub(crate) transforms: Vec<CompiledTransform>,
}

/// A patch other than `type: PatchSet` (PatchSets are expanded or checked by the caller).
pub(crate) fn patch(patch: &Patch, ctx: &PatchContext<'_>) -> CheckedPatch {
    let mut out = Problems::default();
    let kind = patch.kind;
    let required = |field: &'static str| (field, "required".to_owned());
    let for_type = format!("required for type {}", kind.as_str());
    if ctx.environment && !allowed_in_environment(kind) {
        out.refuse(
            "type",
            ENVIRONMENT_PATCH_TYPES,
            ("type", ENVIRONMENT_PATCH_TYPES.into()),
        );
    }
    let combine = matches!(
        kind,
        PatchType::CombineFromComposite
            | PatchType::CombineToComposite
            | PatchType::CombineFromEnvironment
            | PatchType::CombineToEnvironment
    );
    let mut reads: Vec<(String, FieldPath)> = Vec::new();
    let mut write: Option<(String, FieldPath)> = None;
    let mut source = None;
    let parse = |out: &mut Problems, field: String, refused: &'static str, raw: &str| {
        FieldPath::parse(raw)
            .map_err(|e| out.refuse(field, e.to_string(), (refused, e.to_string())))
            .ok()
    };
    let parse_write = |out: &mut Problems, raw: &str| {
        let path = parse(out, "toFieldPath".into(), "toFieldPath", raw)?;
        if path.is_empty() {
            out.refuse(
                "toFieldPath",
                "must name a field: an empty path would replace the whole object",
                required("toFieldPath"),
            );
            return None;
        }
        Some(path)
    };
    if combine {
        match &patch.combine {
            None => out.refuse("combine", for_type.clone(), required("combine")),
            Some(c) => {
                if c.variables.is_empty() {
                    out.refuse(
                        "combine.variables",
                        "at least one variable is required",
                        required("combine.variables"),
                    );
                }
                if c.strategy != "string" {
                    let message = format!(
                        "combine strategy {:?} is not supported; supported: string",
                        c.strategy
                    );
                    out.refuse(
                        "combine.strategy",
                        message.clone(),
                        ("combine.strategy", message),
                    );
                }
                if c.string.is_none() {
                    out.refuse(
                        "combine.string",
                        "required for strategy string (with fmt)",
                        required("combine.string"),
                    );
                }
                for (v, variable) in c.variables.iter().enumerate() {
                    if variable.from_field_path.is_empty() {
                        out.refuse(
                            format!("combine.variables[{v}].fromFieldPath"),
                            "Required value: fromFieldPath must be set for each combine variable",
                            (
                                "combine.variables.fromFieldPath",
                                format!(
                                    "Required value: fromFieldPath must be set for each combine \
                                     variable (variable {v})"
                                ),
                            ),
                        );
                    }
                }
                for (v, variable) in c.variables.iter().enumerate() {
                    if variable.from_field_path.is_empty() {
                        continue;
                    }
                    let field = format!("combine.variables[{v}].fromFieldPath");
                    let raw = &variable.from_field_path;
                    if let Some(path) = parse(
                        &mut out,
                        field.clone(),
                        "combine.variables.fromFieldPath",
                        raw,
                    ) {
                        reads.push((field, path));
                    }
                }
                if let Some(s) = &c.string
                    && !c.variables.is_empty()
                    && reads.len() == c.variables.len()
                {
                    source = Some(PatchSource::Combine {
                        variables: reads.iter().map(|(_, p)| p.clone()).collect(),
                        format: s.fmt.clone(),
                    });
                }
            }
        }
        match patch.to_field_path.as_deref() {
            None => out.refuse("toFieldPath", for_type.clone(), required("toFieldPath")),
            Some(raw) => write = parse_write(&mut out, raw).map(|p| ("toFieldPath".into(), p)),
        }
    } else {
        match patch.from_field_path.as_deref() {
            None => out.refuse("fromFieldPath", for_type.clone(), required("fromFieldPath")),
            Some(raw) => {
                if let Some(path) = parse(&mut out, "fromFieldPath".into(), "fromFieldPath", raw) {
                    source = Some(PatchSource::Path(path.clone()));
                    reads.push(("fromFieldPath".into(), path));
                }
            }
        }
        match patch.to_field_path.as_deref() {
            Some(raw) => write = parse_write(&mut out, raw).map(|p| ("toFieldPath".into(), p)),
            // `toFieldPath` defaults to `fromFieldPath`.
            None => match reads.first() {
                Some((_, from)) if from.is_empty() => out.refuse(
                    "toFieldPath",
                    "required when fromFieldPath is empty",
                    required("toFieldPath"),
                ),
                Some((field, from)) => write = Some((field.clone(), from.clone())),
                None => {}
            },
        }
    }
    let mut from_resource = None;
    if kind == PatchType::FromResourceFieldPath {
        match patch.from_resource.as_deref() {
            None => out.refuse(
                "fromResource",
                "required for type FromResourceFieldPath",
                required("fromResource"),
            ),
            Some(name) => match (ctx.resource_index)(name) {
                Some(i) => from_resource = Some(i),
                None => {
                    let message = format!("unknown resource `{name}`{}", (ctx.resource_hint)(name));
                    out.refuse("fromResource", message.clone(), ("fromResource", message));
                }
            },
        }
    } else if patch.from_resource.is_some() {
        out.warning(
            "fromResource",
            format!(
                "ignored: only FromResourceFieldPath patches read it, this is {}",
                kind.as_str()
            ),
        );
    }
    let mut transforms = Vec::with_capacity(patch.transforms.len());
    for (t, transform) in patch.transforms.iter().enumerate() {
        match transform.compile_at(t) {
            Ok(compiled) => transforms.push(compiled),
            Err(e) => {
                let (field, message) = match &e.reason {
                    TransformErrorReason::Invalid { field, message } => {
                        (format!("transforms[{t}].{field}"), message.clone())
                    }
                    TransformErrorReason::Failed(message) => {
                        (format!("transforms[{t}]"), message.clone())
                    }
                };
                let refusal = Refusal::Transform(e.clone());
                out.push(Severity::Error, field, message, Some(refusal));
            }
        }
    }
    let compiled = match (first_error(&out.0), source, &write) {
        (None, Some(source), Some((_, to))) => Some(PatchParts {
            source,
            to: to.clone(),
            to_wildcard: patch
                .to_field_path
                .as_deref()
                .or(patch.from_field_path.as_deref())
                .is_some_and(|raw| raw.contains("[*]")),
            from_resource,
            transforms,
        }),
        _ => None,
    };
    CheckedPatch {
        problems: out.0,
        reads,
        write,
        compiled,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn errors(problems: &[Problem]) -> Vec<(&str, &str)> {
        problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect()
    }

    fn check_patch(yaml: &str) -> CheckedPatch {
        let wire: Patch = serde_saphyr::from_str(yaml).unwrap();
        let index = |name: &str| (name == "a").then_some(0);
        let hint = |name: &str| crate::suggest::did_you_mean(name, ["a"]);
        patch(
            &wire,
            &PatchContext {
                environment: false,
                resource_index: &index,
                resource_hint: &hint,
            },
        )
    }

    #[test]
    fn one_broken_patch_rule_is_one_problem_with_the_compile_wording() {
        let rows: &[(&str, &str, &str, &str)] = &[
            (
                "{toFieldPath: data.x}",
                "fromFieldPath",
                "required for type FromCompositeFieldPath",
                "required",
            ),
            (
                "{fromFieldPath: spec.x, toFieldPath: 'a..b'}",
                "toFieldPath",
                "",
                "",
            ),
            (
                "{fromFieldPath: spec.x, toFieldPath: ''}",
                "toFieldPath",
                "must name a field: an empty path would replace the whole object",
                "required",
            ),
            (
                "{type: FromResourceFieldPath, fromFieldPath: x}",
                "fromResource",
                "required for type FromResourceFieldPath",
                "required",
            ),
            (
                "{type: CombineFromComposite, toFieldPath: x}",
                "combine",
                "required for type CombineFromComposite",
                "required",
            ),
        ];
        for (yaml, field, message, compile_message) in rows {
            let checked = check_patch(yaml);
            let found = errors(&checked.problems);
            assert_eq!(found.len(), 1, "{yaml}: {found:?}");
            assert_eq!(found[0].0, *field, "{yaml}");
            assert!(checked.compiled.is_none(), "{yaml}");
            if !message.is_empty() {
                assert_eq!(found[0].1, *message, "{yaml}");
                let Some(Refusal::Patch {
                    message: refused, ..
                }) = &checked.problems[0].refusal
                else {
                    panic!("{yaml}: no compile wording");
                };
                assert_eq!(refused, compile_message, "{yaml}");
            }
        }
    }

    #[test]
    fn a_bad_transform_is_refused_with_its_index() {
        let checked = check_patch(
            "{fromFieldPath: spec.x, transforms: [{type: string, string: {fmt: '%s'}}, {type: map}]}",
        );
        let found = errors(&checked.problems);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].0.starts_with("transforms[1]"), "{found:?}");
        let Some(Refusal::Transform(e)) = &checked.problems[0].refusal else {
            panic!("no transform refusal: {:?}", checked.problems);
        };
        assert_eq!(e.index, 1);
    }

    #[test]
    fn a_valid_patch_compiles_with_its_reads_and_write() {
        let checked = check_patch(
            "{type: FromResourceFieldPath, fromResource: a, fromFieldPath: 'status.x', toFieldPath: 'spec.y[*]'}",
        );
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
        let parts = checked.compiled.unwrap();
        assert_eq!(parts.from_resource, Some(0));
        assert!(parts.to_wildcard);
        assert_eq!(checked.reads[0].0, "fromFieldPath");
    }

    #[test]
    fn connection_details_and_readiness_checks_name_the_broken_field() {
        let detail: ConnectionDetail =
            serde_saphyr::from_str("{type: FromFieldPath, fromFieldPath: a}").unwrap();
        let (compiled, problems) = connection_detail(&detail);
        assert!(compiled.is_none());
        assert_eq!(
            errors(&problems),
            [("name", "required for type FromFieldPath")]
        );

        let check: ReadinessCheck = serde_saphyr::from_str("{type: MatchString}").unwrap();
        let (compiled, problems) = readiness_check(&check);
        assert!(compiled.is_none());
        assert_eq!(
            errors(&problems),
            [
                ("fieldPath", "required for type MatchString"),
                ("matchString", "required for type MatchString")
            ]
        );
        assert_eq!(readiness_refusal(&problems).unwrap().field, "matchString");

        let check: ReadinessCheck =
            serde_saphyr::from_str("{type: NonEmpty, fieldPath: 'a..b'}").unwrap();
        let (compiled, problems) = readiness_check(&check);
        assert!(matches!(
            compiled,
            Some(CompiledReadinessCheck::Malformed(_))
        ));
        assert!(errors(&problems).is_empty());
    }

    #[test]
    fn a_template_needs_a_name_and_a_base_with_string_api_version_and_kind() {
        type Expected = (&'static str, &'static str, Option<Refusal>);
        let rows: &[(&str, &[Expected])] = &[
            ("{name: a, base: {apiVersion: v1, kind: ConfigMap}}", &[]),
            (
                "{name: '', base: {apiVersion: v1, kind: ConfigMap}}",
                &[(
                    "name",
                    "required: every resource needs a name",
                    Some(Refusal::Field {
                        field: "name",
                        message: "every resource needs a name",
                    }),
                )],
            ),
            (
                "{name: a, base: [1]}",
                &[("base", "must be an object with apiVersion and kind", None)],
            ),
            (
                "{name: a, base: {apiVersion: '', kind: 3}}",
                &[
                    (
                        "base.apiVersion",
                        "required",
                        Some(Refusal::Field {
                            field: "base.apiVersion",
                            message: "required string",
                        }),
                    ),
                    (
                        "base.kind",
                        "must be a string, found a number",
                        Some(Refusal::Field {
                            field: "base.kind",
                            message: "required string",
                        }),
                    ),
                ],
            ),
        ];
        for (yaml, expected) in rows {
            let template: ComposedTemplate = serde_saphyr::from_str(yaml).unwrap();
            let problems = resource_template(&template);
            let found: Vec<(&str, &str, Option<Refusal>)> = problems
                .iter()
                .map(|p| (p.field.as_str(), p.message.as_str(), p.refusal.clone()))
                .collect();
            assert_eq!(found, expected.to_vec(), "{yaml}");
        }
    }

    #[test]
    fn a_patch_set_reference_resolves_by_name_outside_patch_sets_only() {
        let sets = BTreeMap::from([("common", 0), ("network", 1)]);
        let reference = |yaml: &str| -> Patch { serde_saphyr::from_str(yaml).unwrap() };
        let named = reference("{type: PatchSet, patchSetName: network}");
        assert_eq!(
            patch_set_reference(&named, false, &sets),
            (Some(&1), vec![])
        );

        let refused = |patch: &Patch, nested: bool| {
            let (set, mut problems) = patch_set_reference(patch, nested, &sets);
            assert_eq!((set, problems.len()), (None, 1));
            let problem = problems.remove(0);
            let Some(Refusal::Patch { field, message }) = problem.refusal else {
                panic!("not a patch refusal: {problem:?}");
            };
            (problem.field, problem.message, field, message)
        };
        assert_eq!(
            refused(&named, true),
            (
                "type".into(),
                "a PatchSet cannot contain another PatchSet".into(),
                "type",
                "a PatchSet cannot contain another PatchSet".into()
            )
        );
        assert_eq!(
            refused(&reference("{type: PatchSet, patchSetName: netwrk}"), false),
            (
                "patchSetName".into(),
                "cannot find PatchSet by name netwrk (defined: common, network); did you mean \
                 `network`?"
                    .into(),
                "patchSetName",
                "cannot find PatchSet by name netwrk; did you mean `network`?".into()
            )
        );
        assert_eq!(
            refused(&reference("{type: PatchSet}"), false),
            (
                "patchSetName".into(),
                "required for type PatchSet".into(),
                "patchSetName",
                "required".into()
            )
        );
    }

    #[test]
    fn a_dependency_names_another_known_resource() {
        let template: ComposedTemplate = serde_saphyr::from_str(
            "{name: db, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [net, ghost, db]}",
        )
        .unwrap();
        let index = |name: &str| ["net", "db"].iter().position(|n| *n == name);
        let hint = |name: &str| crate::suggest::did_you_mean(name, ["net", "db"]);
        let (found, problems) = depends_on(&template, &index, &hint);
        assert_eq!(found, vec![0]);
        let found: Vec<(&str, &str, String)> = problems
            .iter()
            .map(|p| match &p.refusal {
                Some(Refusal::Graph(e)) => (p.field.as_str(), p.message.as_str(), e.to_string()),
                other => panic!("not a graph refusal: {other:?}"),
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "dependsOn[1]",
                    "unknown resource `ghost`",
                    "resource `db` depends on unknown resource `ghost`".to_owned()
                ),
                (
                    "dependsOn[2]",
                    "resource `db` cannot depend on itself",
                    "resource `db` depends on itself".to_owned()
                ),
            ]
        );
    }
}
