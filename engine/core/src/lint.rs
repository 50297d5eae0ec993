//! Linting Compositions: every problem at once, each at the field it is in.
//!
//! [`CompiledComposition::compile`](crate::compile::CompiledComposition::compile) stops at the
//! first error because a render needs a whole, valid Composition. `strata validate` wants the
//! complete list, so [`lint_composition`] walks the wire form ([`CompositionSpec`]) and reports
//! every problem compile would refuse, plus what compile cannot see because it has no XRD:
//! patches that write into (or read from) fields the composite resource's schema rules out.
//!
//! Data enters as a typed Composition and the XRDs loaded next to it; it leaves as a list of
//! [`Finding`]s in document order (compositeTypeRef, patchSets, resources, environment, then the
//! dependency graph). Nothing here reads files or prints.
//!
//! Decisions worth knowing:
//! - `compositeTypeRef` naming no loaded XRD is a *warning*, and only when at least one XRD was
//!   loaded: a Composition is often validated without its XRD, and an XRD elsewhere is not a
//!   mistake. Naming a loaded XRD but a version that XRD does not define is an error.
//! - Schema checks use the generated XR CRD ([`crate::crd::xrd_to_crds`]), so the engine's
//!   machinery fields (`spec.compositionRef`, `status.conditions`, ...) are known. When the XRD
//!   cannot be turned into a CRD the schema checks are skipped: validating the XRD reports why.
//! - A write to the XR outside `status` is a warning: a render writes back only the XR's status.
//! - Paths are those of the native form (`spec.resources[1].patches[0]`); a Crossplane
//!   `mode: Pipeline` Composition is linted after its patch-and-transform step was folded in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::crd::xrd_to_crds;
use crate::fieldpath::{FieldPath, Segment};
use crate::graph::{DependencyGraph, EdgeKind, EdgeSpec, GraphError};
use crate::model::{
    CompositeResourceDefinition, CompositionSpec, ConnectionDetail, EnvironmentSource,
    EnvironmentSourceType, Patch, PatchType, ReadinessCheck,
};
use crate::rules;
use crate::suggest;
use strata_schema::{Lookup, PathSegment, SchemaType, StructuralSchema};

/// How bad a finding is: errors make `strata validate` fail, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object would be refused, or would not work.
    Error,
    /// The object works, but likely not as meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as `strata validate` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in one object, at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Whether `strata validate` fails on it.
    pub severity: Severity,
    /// `Kind/name`, e.g. `Composition/aws-postgres`.
    pub object: String,
    /// The field path inside the object, e.g. `spec.resources[1].patches[0].toFieldPath`.
    pub field: String,
    /// What is wrong, and where it helps, what was probably meant.
    pub message: String,
}

impl Finding {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `Composition/name: spec.resources[0].name: required`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// Every problem of a Composition named `name`, checked against the loaded XRDs.
///
/// Reports what [`CompiledComposition::compile`](crate::compile::CompiledComposition::compile)
/// would refuse (so a Composition with no error findings compiles) and schema problems only an
/// XRD can reveal. Never stops at the first problem.
pub fn lint_composition(
    name: &str,
    spec: &CompositionSpec,
    xrds: &[&CompositeResourceDefinition],
) -> Vec<Finding> {
    let mut lint = Lint {
        object: format!("Composition/{name}"),
        spec,
        patch_sets: first_positions(spec.patch_sets.iter().map(|s| s.name.as_str())),
        resources: first_positions(spec.resources.iter().map(|r| r.name.as_str())),
        xr: None,
        findings: Vec::new(),
    };
    lint.composite_type_ref(xrds);
    lint.patch_sets();
    for index in 0..spec.resources.len() {
        lint.resource(index);
    }
    lint.environment();
    lint.dependency_cycles();
    lint.findings
}

/// Name → position of its first occurrence.
fn first_positions<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut out = BTreeMap::new();
    for (i, name) in names.enumerate() {
        out.entry(name).or_insert(i);
    }
    out
}

/// The composite resource a Composition composes, as far as its XRD tells.
struct CompositeSchema {
    /// `XPostgres v1alpha1`, for messages.
    label: String,
    schema: StructuralSchema,
}

/// Where a patch sits, which decides what it may do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    /// A composed resource's patch list (declaration index of the resource).
    Resource(usize),
    /// `spec.environment.patches`: between the XR and the environment.
    Environment,
    /// Inside `spec.patchSets[]`: expanded where it is referenced.
    PatchSet,
}

struct Lint<'a> {
    object: String,
    spec: &'a CompositionSpec,
    patch_sets: BTreeMap<&'a str, usize>,
    resources: BTreeMap<&'a str, usize>,
    xr: Option<CompositeSchema>,
    findings: Vec<Finding>,
}

impl<'a> Lint<'a> {
    fn report(&mut self, severity: Severity, field: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.report(Severity::Error, field, message);
    }

    fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.report(Severity::Warning, field, message);
    }

    // -----------------------------------------------------------------------------------------
    // compositeTypeRef
    // -----------------------------------------------------------------------------------------

    fn composite_type_ref(&mut self, xrds: &[&CompositeResourceDefinition]) {
        let reference = &self.spec.composite_type_ref;
        let field = "spec.compositeTypeRef";
        let Some((group, version)) = reference.api_version.rsplit_once('/') else {
            self.error(
                format!("{field}.apiVersion"),
                format!(
                    "{:?} must be GROUP/VERSION: a composite resource is never in the core group",
                    reference.api_version
                ),
            );
            return;
        };
        if group.is_empty() || version.is_empty() {
            self.error(
                format!("{field}.apiVersion"),
                format!("{:?} must be GROUP/VERSION", reference.api_version),
            );
            return;
        }
        if reference.kind.is_empty() {
            self.error(format!("{field}.kind"), "required");
            return;
        }
        if xrds.is_empty() {
            return;
        }
        let Some(xrd) = xrds
            .iter()
            .find(|x| x.spec.group == group && x.spec.names.kind == reference.kind)
        else {
            let kinds: Vec<&str> = xrds
                .iter()
                .filter(|x| x.spec.group == group)
                .map(|x| x.spec.names.kind.as_str())
                .collect();
            let known = if kinds.is_empty() {
                format!("no loaded XRD has group {group}")
            } else {
                format!("XRDs of group {group} define {}", kinds.join(", "))
            };
            self.warning(
                field,
                format!(
                    "no loaded XRD defines kind {} in {group} ({known})",
                    reference.kind
                ),
            );
            return;
        };
        let xrd_name = xrd
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{group}", xrd.spec.names.plural));
        let Some(defined) = xrd.spec.versions.iter().find(|v| v.name == version) else {
            let versions: Vec<&str> = xrd.spec.versions.iter().map(|v| v.name.as_str()).collect();
            self.error(
                format!("{field}.apiVersion"),
                format!(
                    "XRD {xrd_name} defines no version {version} (versions: {})",
                    versions.join(", ")
                ),
            );
            return;
        };
        if !defined.referenceable {
            let referenceable: Vec<&str> = xrd
                .spec
                .versions
                .iter()
                .filter(|v| v.referenceable)
                .map(|v| v.name.as_str())
                .collect();
            self.warning(
                format!("{field}.apiVersion"),
                format!(
                    "version {version} of XRD {xrd_name} is not referenceable (referenceable: {}); \
                     Compositions are selected by the referenceable version",
                    if referenceable.is_empty() {
                        "none".to_owned()
                    } else {
                        referenceable.join(", ")
                    }
                ),
            );
        }
        self.xr = composite_schema(xrd, version);
    }

    // -----------------------------------------------------------------------------------------
    // patchSets
    // -----------------------------------------------------------------------------------------

    fn patch_sets(&mut self) {
        let spec = self.spec;
        for (s, set) in spec.patch_sets.iter().enumerate() {
            let at = format!("spec.patchSets[{s}]");
            if set.name.is_empty() {
                self.error(
                    format!("{at}.name"),
                    "required: resources reference a PatchSet by name",
                );
            } else if let Some(first) = self
                .patch_sets
                .get(set.name.as_str())
                .filter(|first| **first != s)
            {
                self.error(
                    format!("{at}.name"),
                    format!(
                        "duplicate PatchSet name `{}` (first at spec.patchSets[{first}])",
                        set.name
                    ),
                );
            }
            for (p, patch) in set.patches.iter().enumerate() {
                self.patch(&format!("{at}.patches[{p}]"), patch, Site::PatchSet);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // resources
    // -----------------------------------------------------------------------------------------

    fn resource(&mut self, index: usize) {
        let spec = self.spec;
        let template = &spec.resources[index];
        let at = format!("spec.resources[{index}]");
        let problems = rules::resource_template(template);
        let (name, base): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.field == "name");
        self.problems(&at, name);
        if let Some(first) = self
            .resources
            .get(template.name.as_str())
            .filter(|first| **first != index && !template.name.is_empty())
        {
            self.error(
                format!("{at}.name"),
                format!(
                    "duplicate resource name `{}` (first at spec.resources[{first}])",
                    template.name
                ),
            );
        }
        self.problems(&at, base);
        for (p, patch) in template.patches.iter().enumerate() {
            self.patch(&format!("{at}.patches[{p}]"), patch, Site::Resource(index));
        }
        for (d, detail) in template.connection_details.iter().enumerate() {
            self.connection_detail(&format!("{at}.connectionDetails[{d}]"), detail);
        }
        for (c, check) in template.readiness_checks.iter().flatten().enumerate() {
            self.readiness_check(&format!("{at}.readinessChecks[{c}]"), check);
        }
        let resources = &self.resources;
        let resource_index = |name: &str| resources.get(name).copied();
        let resource_hint = |name: &str| suggest::did_you_mean(name, resources.keys().copied());
        let (_, problems) = rules::depends_on(template, &resource_index, &resource_hint);
        self.problems(&at, problems);
    }

    fn connection_detail(&mut self, at: &str, detail: &ConnectionDetail) {
        let (_, problems) = rules::connection_detail(detail);
        self.problems(at, problems);
    }

    fn readiness_check(&mut self, at: &str, check: &ReadinessCheck) {
        let (_, problems) = rules::readiness_check(check);
        self.problems(at, problems);
    }

    /// The problems the shared rules found in the item at `at`, as findings.
    fn problems(&mut self, at: &str, problems: Vec<rules::Problem>) {
        for problem in problems {
            self.report(
                problem.severity,
                format!("{at}.{}", problem.field),
                problem.message,
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // environment
    // -----------------------------------------------------------------------------------------

    fn environment(&mut self) {
        let Some(environment) = &self.spec.environment else {
            return;
        };
        for (e, source) in environment.environment_configs.iter().enumerate() {
            self.environment_source(&format!("spec.environment.environmentConfigs[{e}]"), source);
        }
        for (p, patch) in environment.patches.iter().enumerate() {
            self.patch(
                &format!("spec.environment.patches[{p}]"),
                patch,
                Site::Environment,
            );
        }
    }

    /// One EnvironmentConfig source: a reference by name, or a label selector.
    fn environment_source(&mut self, at: &str, source: &EnvironmentSource) {
        match source.kind {
            EnvironmentSourceType::Reference => {
                if source.reference.as_ref().is_none_or(|r| r.name.is_empty()) {
                    self.error(format!("{at}.ref.name"), "required for type Reference");
                }
            }
            EnvironmentSourceType::Selector => {
                let Some(selector) = &source.selector else {
                    self.error(format!("{at}.selector"), "required for type Selector");
                    return;
                };
                let at = format!("{at}.selector");
                if let Some(mode) = selector.mode.as_deref()
                    && !matches!(mode, "Single" | "Multiple")
                {
                    self.error(
                        format!("{at}.mode"),
                        format!("unknown mode {mode:?}; supported: Single, Multiple"),
                    );
                }
                if let (Some(min), Some(max)) = (selector.min_match, selector.max_match)
                    && min > max
                {
                    self.error(
                        format!("{at}.minMatch"),
                        format!("{min} is more than maxMatch {max}"),
                    );
                }
                if let Some(raw) = selector.sort_by_field_path.as_deref() {
                    self.parse_path(&format!("{at}.sortByFieldPath"), raw);
                }
                for (l, label) in selector.match_labels.iter().enumerate() {
                    let at = format!("{at}.matchLabels[{l}]");
                    match label.kind.as_deref() {
                        None | Some("FromCompositeFieldPath") => {
                            let field = format!("{at}.valueFromFieldPath");
                            match label.value_from_field_path.as_deref() {
                                None => {
                                    self.error(field, "required for type FromCompositeFieldPath")
                                }
                                Some(raw) => {
                                    if let Some(path) = self.parse_path(&field, raw) {
                                        self.composite_read(&field, &path);
                                    }
                                }
                            }
                        }
                        Some("Value") => {
                            if label.value.is_none() {
                                self.error(format!("{at}.value"), "required for type Value");
                            }
                        }
                        Some(other) => self.error(
                            format!("{at}.type"),
                            format!(
                                "unknown type {other:?}; supported: FromCompositeFieldPath, Value"
                            ),
                        ),
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // patches
    // -----------------------------------------------------------------------------------------

    fn patch(&mut self, at: &str, patch: &Patch, site: Site) {
        let kind = patch.kind;
        if kind == PatchType::PatchSet {
            self.patch_set_reference(at, patch, site);
            return;
        }
        let resources = &self.resources;
        let resource_index = |name: &str| resources.get(name).copied();
        let resource_hint = |name: &str| suggest::did_you_mean(name, resources.keys().copied());
        let checked = rules::patch(
            patch,
            &rules::PatchContext {
                environment: site == Site::Environment,
                resource_index: &resource_index,
                resource_hint: &resource_hint,
            },
        );
        let at_field = |(field, path): (String, FieldPath)| (format!("{at}.{field}"), path);
        let reads: Vec<(String, FieldPath)> = checked.reads.into_iter().map(at_field).collect();
        let write = checked.write.map(at_field);
        self.problems(at, checked.problems);
        self.self_read(at, patch, site);
        match kind {
            PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite => {
                for (field, path) in &reads {
                    self.composite_read(field, path);
                }
            }
            PatchType::ToCompositeFieldPath | PatchType::CombineToComposite => {
                if let Some((field, path)) = &write {
                    self.composite_write(field, path);
                }
            }
            _ => {}
        }
    }

    /// A `type: PatchSet` patch: the name must resolve, and nothing nests.
    fn patch_set_reference(&mut self, at: &str, patch: &Patch, site: Site) {
        let (set, problems) =
            rules::patch_set_reference(patch, site == Site::PatchSet, &self.patch_sets);
        let Some(&s) = set else {
            return self.problems(at, problems);
        };
        let name = self.spec.patch_sets[s].name.as_str();
        // The set's own patches are linted once, under spec.patchSets; here only what depends on
        // where the set is expanded.
        let spec = self.spec;
        for (p, inner) in spec.patch_sets[s].patches.iter().enumerate() {
            let inside = format!("spec.patchSets[{s}].patches[{p}]");
            match site {
                Site::Environment
                    if inner.kind != PatchType::PatchSet
                        && !crate::compile::allowed_in_environment(inner.kind) =>
                {
                    self.error(
                        format!("{at}.patchSetName"),
                        format!(
                            "PatchSet `{name}` has a {} patch ({inside}); {}",
                            inner.kind.as_str(),
                            crate::compile::ENVIRONMENT_PATCH_TYPES
                        ),
                    );
                }
                Site::Resource(own) if inner.kind == PatchType::FromResourceFieldPath => {
                    let reads_self =
                        inner.from_resource.as_deref() == Some(spec.resources[own].name.as_str());
                    if reads_self {
                        self.error(
                            format!("{at}.patchSetName"),
                            format!(
                                "PatchSet `{name}` makes resource `{}` read itself ({inside}.fromResource)",
                                spec.resources[own].name
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// A resource's `FromResourceFieldPath` patch must not read the resource itself (a rule of
    /// the dependency graph in compile, reported here where it is written).
    fn self_read(&mut self, at: &str, patch: &Patch, site: Site) {
        if patch.kind != PatchType::FromResourceFieldPath {
            return;
        }
        if let (Site::Resource(own), Some(name)) = (site, patch.from_resource.as_deref())
            && self.spec.resources[own].name == name
        {
            self.error(
                format!("{at}.fromResource"),
                format!("resource `{name}` cannot read itself"),
            );
        }
    }

    /// Parses a field path, reporting a malformed one.
    fn parse_path(&mut self, field: &str, raw: &str) -> Option<FieldPath> {
        match FieldPath::parse(raw) {
            Ok(path) => Some(path),
            Err(e) => {
                self.error(field, e.to_string());
                None
            }
        }
    }

    /// A patch writes `path` of the XR: the schema must allow it, and only status survives.
    fn composite_write(&mut self, field: &str, path: &FieldPath) {
        if let Some(Segment::Field(first)) = path.segments().first()
            && first != "status"
        {
            self.warning(
                field,
                format!("`{path}` is outside the XR's status; a render writes back only the status, so this write is dropped"),
            );
        }
        let Some(xr) = &self.xr else { return };
        if let Lookup::Forbidden { reason } = xr.schema.lookup(&schema_path(&xr.schema, path)) {
            let message = format!("the {} schema does not allow `{path}`: {reason}", xr.label);
            self.error(field, message);
        }
    }

    /// A patch reads `path` of the XR: a path the schema rules out is never there.
    fn composite_read(&mut self, field: &str, path: &FieldPath) {
        let Some(xr) = &self.xr else { return };
        if let Lookup::Forbidden { reason } = xr.schema.lookup(&schema_path(&xr.schema, path)) {
            let message = format!(
                "the {} schema does not allow `{path}`, so the patch never finds a value: {reason}",
                xr.label
            );
            self.warning(field, message);
        }
    }

    // -----------------------------------------------------------------------------------------
    // dependency graph
    // -----------------------------------------------------------------------------------------

    /// Reports every cycle of creation-gating edges (`dependsOn`, `fromResource`), each naming
    /// all of its members. Unknown and self references are reported where they are written.
    fn dependency_cycles(&mut self) {
        let spec = self.spec;
        // Names must be unique to build a graph; duplicates were reported already.
        let names: Vec<String> = spec
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| match self.resources.get(r.name.as_str()) {
                Some(first) if *first != i => format!("{}#{i}", r.name),
                _ => r.name.clone(),
            })
            .collect();
        let mut edges = Vec::new();
        let mut edge = |from: Option<&usize>, to: usize, kind: EdgeKind, detail: String| {
            if let Some(&from) = from
                && from != to
            {
                edges.push(EdgeSpec {
                    from,
                    to,
                    kind,
                    detail,
                });
            }
        };
        for (to, template) in spec.resources.iter().enumerate() {
            for dependency in &template.depends_on {
                edge(
                    self.resources.get(dependency.as_str()),
                    to,
                    EdgeKind::DependsOn,
                    format!("dependsOn {dependency}"),
                );
            }
            for patch in &template.patches {
                let expanded: &[Patch] = match (patch.kind, patch.patch_set_name.as_deref()) {
                    (PatchType::PatchSet, Some(set)) => match self.patch_sets.get(set) {
                        Some(&s) => &spec.patch_sets[s].patches,
                        None => &[],
                    },
                    _ => std::slice::from_ref(patch),
                };
                for p in expanded
                    .iter()
                    .filter(|p| p.kind == PatchType::FromResourceFieldPath)
                {
                    if let Some(source) = p.from_resource.as_deref() {
                        let detail = p.from_field_path.clone().unwrap_or_default();
                        edge(
                            self.resources.get(source),
                            to,
                            EdgeKind::ResourceRef,
                            detail,
                        );
                    }
                }
            }
        }
        // One cycle per build: report it, cut its internal edges, look again.
        while let Err(GraphError::Cycle { members }) = DependencyGraph::build(&names, &edges) {
            let positions: BTreeSet<usize> = members
                .iter()
                .filter_map(|m| names.iter().position(|n| n == m))
                .collect();
            let Some(&first) = positions.first() else {
                break;
            };
            self.error(
                format!("spec.resources[{first}]"),
                format!("dependency cycle: {}", members.join(" -> ")),
            );
            let before = edges.len();
            edges.retain(|e| !(positions.contains(&e.from) && positions.contains(&e.to)));
            if edges.len() == before {
                break;
            }
        }
    }
}

/// The schema of version `version` of the XR an XRD defines, machinery fields included.
/// `None` when the XRD does not generate a CRD or its schema does not compile: validating the XRD
/// itself reports those.
fn composite_schema(xrd: &CompositeResourceDefinition, version: &str) -> Option<CompositeSchema> {
    let generated = xrd_to_crds(xrd).ok()?;
    let crd_version = generated
        .composite
        .spec
        .versions
        .into_iter()
        .find(|v| v.name == version)?;
    let props = crd_version.schema?.open_api_v3_schema?;
    let value = serde_json::to_value(props).ok()?;
    let schema = StructuralSchema::compile(&value).ok()?;
    Some(CompositeSchema {
        label: format!("{} {version}", xrd.spec.names.kind),
        schema,
    })
}

/// A field path as schema segments. A wildcard over array items becomes item 0 (every item has
/// the same schema); a wildcard over object fields ends the path, so only its prefix is checked.
fn schema_path(schema: &StructuralSchema, path: &FieldPath) -> Vec<PathSegment> {
    let mut out = Vec::with_capacity(path.segments().len());
    for segment in path.segments() {
        match segment {
            Segment::Index(i) => out.push(PathSegment::Index(*i as usize)),
            Segment::Field(f) if f == "*" => match schema.lookup(&out) {
                Lookup::Allowed(node) if node.schema_type() == Some(SchemaType::Array) => {
                    out.push(PathSegment::Index(0))
                }
                _ => break,
            },
            Segment::Field(f) => out.push(PathSegment::Field(f.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::CompiledComposition;
    use crate::load;

    const XRD: &str = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata: {name: xdatabases.example.org}
spec:
  group: example.org
  names: {kind: XDatabase, plural: xdatabases}
  claimNames: {kind: Database, plural: databases}
  versions:
  - name: v1
    served: true
    referenceable: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              region: {type: string}
          status:
            type: object
            properties:
              address: {type: string}
  - name: v1beta1
    served: true
    referenceable: false
    schema:
      openAPIV3Schema: {type: object}
"#;

    fn xrd() -> CompositeResourceDefinition {
        let docs = load::parse_stream(XRD, "xrd.yaml").expect("parses");
        load::xrd(&docs[0]).expect("a valid XRD")
    }

    fn spec(yaml: &str) -> CompositionSpec {
        serde_saphyr::from_str(yaml).expect("a well-formed CompositionSpec")
    }

    /// Lints a spec (YAML of `spec` only) against the test XRD.
    fn lint_with_xrd(yaml: &str) -> Vec<Finding> {
        let xrd = xrd();
        lint_composition("c", &spec(yaml), &[&xrd])
    }

    fn lint(yaml: &str) -> Vec<Finding> {
        lint_composition("c", &spec(yaml), &[])
    }

    /// `(severity, field, message)` of every finding, for compact assertions.
    fn summary(findings: &[Finding]) -> Vec<(Severity, String, String)> {
        findings
            .iter()
            .map(|f| (f.severity, f.field.clone(), f.message.clone()))
            .collect()
    }

    fn errors_at(findings: &[Finding]) -> Vec<&str> {
        findings
            .iter()
            .filter(|f| f.is_error())
            .map(|f| f.field.as_str())
            .collect()
    }

    const HEAD: &str = "compositeTypeRef: {apiVersion: example.org/v1, kind: XDatabase}\n";

    fn with_resources(resources: &str) -> String {
        format!("{HEAD}resources:\n{resources}")
    }

    #[test]
    fn a_valid_composition_has_no_findings_and_compiles() {
        let yaml = format!(
            "{HEAD}{}",
            r#"patchSets:
- name: common
  patches:
  - {fromFieldPath: spec.region, toFieldPath: spec.forProvider.region}
resources:
- name: net
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: PatchSet, patchSetName: common}
  - {type: ToCompositeFieldPath, fromFieldPath: status.atProvider.address, toFieldPath: status.address}
  readinessChecks:
  - {type: MatchString, fieldPath: status.phase, matchString: Ready}
  connectionDetails:
  - {name: address, fromFieldPath: status.atProvider.address}
- name: db
  dependsOn: [net]
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: FromResourceFieldPath, fromResource: net, fromFieldPath: data.id, toFieldPath: data.net}
  - type: CombineFromComposite
    combine:
      variables: [{fromFieldPath: spec.region}, {fromFieldPath: metadata.name}]
      strategy: string
      string: {fmt: "%s-%s"}
    toFieldPath: data.name
    transforms:
    - {type: string, string: {type: Convert, convert: ToUpper}}
"#
        );
        assert_eq!(lint_with_xrd(&yaml), vec![]);
        CompiledComposition::compile(&spec(&yaml))
            .expect("a Composition without findings compiles");
    }

    #[test]
    fn an_unknown_patch_set_name_is_reported() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  patches:\n  - {type: PatchSet, patchSetName: nope}\n",
        ));
        assert_eq!(
            summary(&findings),
            vec![(
                Severity::Error,
                "spec.resources[0].patches[0].patchSetName".into(),
                "cannot find PatchSet by name nope (defined: none)".into()
            )]
        );
    }

    #[test]
    fn a_patch_set_inside_a_patch_set_is_reported() {
        let yaml = format!(
            "{HEAD}patchSets:\n- name: outer\n  patches:\n  - {{type: PatchSet, patchSetName: outer}}\nresources: []\n"
        );
        assert_eq!(
            summary(&lint(&yaml)),
            vec![(
                Severity::Error,
                "spec.patchSets[0].patches[0].type".into(),
                "a PatchSet cannot contain another PatchSet".into()
            )]
        );
    }

    #[test]
    fn a_patch_set_patch_without_a_name_is_reported() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  patches:\n  - {type: PatchSet}\n",
        ));
        assert_eq!(
            errors_at(&findings),
            vec!["spec.resources[0].patches[0].patchSetName"]
        );
        assert_eq!(findings[0].message, "required for type PatchSet");
    }

    #[test]
    fn field_path_patches_without_from_field_path_are_reported_for_every_type() {
        for kind in [
            "FromCompositeFieldPath",
            "ToCompositeFieldPath",
            "FromEnvironmentFieldPath",
            "ToEnvironmentFieldPath",
        ] {
            let findings = lint(&with_resources(&format!(
                "- name: a\n  base: {{apiVersion: v1, kind: ConfigMap}}\n  patches:\n  - {{type: {kind}, toFieldPath: status.x}}\n"
            )));
            assert_eq!(
                summary(&findings),
                vec![(
                    Severity::Error,
                    "spec.resources[0].patches[0].fromFieldPath".into(),
                    format!("required for type {kind}")
                )],
                "{kind}"
            );
        }
    }

    #[test]
    fn combine_patches_report_every_missing_part() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: CombineFromComposite}
  - type: CombineFromEnvironment
    combine: {variables: [], strategy: concat}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].patches[0].combine".into(),
                    "required for type CombineFromComposite".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[0].toFieldPath".into(),
                    "required for type CombineFromComposite".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].combine.variables".into(),
                    "at least one variable is required".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].combine.strategy".into(),
                    "combine strategy \"concat\" is not supported; supported: string".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].combine.string".into(),
                    "required for strategy string (with fmt)".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].toFieldPath".into(),
                    "required for type CombineFromEnvironment".into()
                ),
            ]
        );
    }

    #[test]
    fn a_from_resource_patch_needs_a_known_other_resource() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: FromResourceFieldPath, fromFieldPath: data.x}
  - {type: FromResourceFieldPath, fromResource: ghost, fromFieldPath: data.x}
  - {type: FromResourceFieldPath, fromResource: a, fromFieldPath: data.x}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].patches[0].fromResource".into(),
                    "required for type FromResourceFieldPath".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].fromResource".into(),
                    "unknown resource `ghost`".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[2].fromResource".into(),
                    "resource `a` cannot read itself".into()
                ),
            ]
        );
    }

    #[test]
    fn malformed_field_paths_are_reported_wherever_they_are() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {fromFieldPath: "spec..size", toFieldPath: "data[x"}
  - type: CombineFromComposite
    combine: {variables: [{fromFieldPath: ".a"}], strategy: string, string: {fmt: "%s"}}
    toFieldPath: "a]"
  connectionDetails:
  - {name: n, fromFieldPath: "status.[0]"}
  readinessChecks:
  - {type: NonEmpty, fieldPath: "status."}
"#,
        ));
        assert_eq!(
            errors_at(&findings),
            vec![
                "spec.resources[0].patches[0].fromFieldPath",
                "spec.resources[0].patches[0].toFieldPath",
                "spec.resources[0].patches[1].combine.variables[0].fromFieldPath",
                "spec.resources[0].patches[1].toFieldPath",
                "spec.resources[0].connectionDetails[0].fromFieldPath",
            ]
        );
        // A readiness check that cannot be evaluated is a warning and not-ready, as in
        // Crossplane, not an error.
        assert!(
            findings
                .iter()
                .any(|f| !f.is_error()
                    && f.field == "spec.resources[0].readinessChecks[0].fieldPath"),
            "{findings:?}"
        );
        assert!(
            findings[0]
                .message
                .starts_with("invalid field path \"spec..size\""),
            "{}",
            findings[0]
        );
    }

    #[test]
    fn an_empty_destination_is_reported() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  patches:\n  - {fromFieldPath: \"\"}\n  - {fromFieldPath: spec.x, toFieldPath: \"\"}\n",
        ));
        assert_eq!(
            errors_at(&findings),
            vec![
                "spec.resources[0].patches[0].toFieldPath",
                "spec.resources[0].patches[1].toFieldPath"
            ]
        );
    }

    #[test]
    fn transform_option_errors_are_reported_with_the_transform_index_and_option() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - fromFieldPath: spec.x
    toFieldPath: data.x
    transforms:
    - {type: string, string: {type: Convert, convert: ToUpper}}
    - {type: math}
    - {type: match, match: {patterns: [{type: regexp, regexp: "(", result: 1}]}}
"#,
        ));
        let fields = errors_at(&findings);
        assert_eq!(fields.len(), 2, "{findings:?}");
        assert!(
            fields[0].starts_with("spec.resources[0].patches[0].transforms[1]"),
            "{findings:?}"
        );
        assert!(
            fields[1].starts_with("spec.resources[0].patches[0].transforms[2]"),
            "{findings:?}"
        );
    }

    #[test]
    fn readiness_checks_missing_their_options_are_reported() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  readinessChecks:
  - {type: MatchString}
  - {type: MatchInteger, fieldPath: status.n}
  - {type: MatchCondition}
  - {type: MatchTrue}
  - {type: None}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].readinessChecks[0].fieldPath".into(),
                    "required for type MatchString".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].readinessChecks[0].matchString".into(),
                    "required for type MatchString".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].readinessChecks[1].matchInteger".into(),
                    "required for type MatchInteger".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].readinessChecks[2].matchCondition".into(),
                    "required for type MatchCondition".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].readinessChecks[3].fieldPath".into(),
                    "required for type MatchTrue".into()
                ),
            ]
        );
    }

    #[test]
    fn connection_details_missing_their_options_are_reported() {
        let findings = lint(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  connectionDetails:
  - {name: only-a-name}
  - {type: FromValue}
  - {type: FromFieldPath, fromFieldPath: status.x}
  - {type: FromConnectionSecretKey, name: k}
"#,
        ));
        assert_eq!(
            errors_at(&findings),
            vec![
                "spec.resources[0].connectionDetails[0].type",
                "spec.resources[0].connectionDetails[1].value",
                "spec.resources[0].connectionDetails[1].name",
                "spec.resources[0].connectionDetails[2].name",
                "spec.resources[0].connectionDetails[3].fromConnectionSecretKey",
            ]
        );
    }

    #[test]
    fn depending_on_an_unknown_resource_or_on_itself_is_reported() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  dependsOn: [ghost, a]\n",
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].dependsOn[0]".into(),
                    "unknown resource `ghost`".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].dependsOn[1]".into(),
                    "resource `a` cannot depend on itself".into()
                ),
            ]
        );
    }

    #[test]
    fn every_dependency_cycle_is_reported_naming_all_its_members() {
        let findings = lint(&with_resources(
            r#"- {name: a, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [c]}
- {name: b, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [a]}
- name: c
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: FromResourceFieldPath, fromResource: b, fromFieldPath: data.x, toFieldPath: data.y}
- {name: d, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [e]}
- {name: e, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [d]}
- {name: f, base: {apiVersion: v1, kind: ConfigMap}, dependsOn: [a]}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0]".into(),
                    "dependency cycle: a -> b -> c -> a".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[3]".into(),
                    "dependency cycle: d -> e -> d".into()
                ),
            ]
        );
    }

    #[test]
    fn duplicate_and_empty_resource_names_are_reported() {
        let findings = lint(&with_resources(
            r#"- {name: a, base: {apiVersion: v1, kind: ConfigMap}}
- {name: "", base: {apiVersion: v1, kind: ConfigMap}}
- {name: a, base: {apiVersion: v1, kind: ConfigMap}}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[1].name".into(),
                    "required: every resource needs a name".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[2].name".into(),
                    "duplicate resource name `a` (first at spec.resources[0])".into()
                ),
            ]
        );
    }

    #[test]
    fn a_base_without_api_version_or_kind_is_reported() {
        let findings = lint(&with_resources(
            r#"- {name: a, base: {metadata: {name: x}}}
- {name: b, base: {apiVersion: v1, kind: 3}}
- {name: c, base: [1]}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].base.apiVersion".into(),
                    "required".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].base.kind".into(),
                    "required".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[1].base.kind".into(),
                    "must be a string, found a number".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[2].base".into(),
                    "must be an object with apiVersion and kind".into()
                ),
            ]
        );
    }

    #[test]
    fn a_composite_type_ref_matching_no_loaded_xrd_is_a_warning_only_when_xrds_are_loaded() {
        let yaml = "compositeTypeRef: {apiVersion: example.org/v1, kind: XCache}\nresources: []\n";
        assert_eq!(
            lint(yaml),
            vec![],
            "without XRDs there is nothing to match against"
        );
        assert_eq!(
            summary(&lint_with_xrd(yaml)),
            vec![(
                Severity::Warning,
                "spec.compositeTypeRef".into(),
                "no loaded XRD defines kind XCache in example.org (XRDs of group example.org define XDatabase)".into()
            )]
        );
    }

    #[test]
    fn a_composite_type_ref_to_a_version_the_xrd_lacks_is_an_error_and_a_non_referenceable_one_a_warning()
     {
        let missing = lint_with_xrd(
            "compositeTypeRef: {apiVersion: example.org/v2, kind: XDatabase}\nresources: []\n",
        );
        assert_eq!(
            summary(&missing),
            vec![(
                Severity::Error,
                "spec.compositeTypeRef.apiVersion".into(),
                "XRD xdatabases.example.org defines no version v2 (versions: v1, v1beta1)".into()
            )]
        );
        let old = lint_with_xrd(
            "compositeTypeRef: {apiVersion: example.org/v1beta1, kind: XDatabase}\nresources: []\n",
        );
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].severity, Severity::Warning);
        assert!(
            old[0]
                .message
                .contains("not referenceable (referenceable: v1)"),
            "{}",
            old[0]
        );
        let core = lint("compositeTypeRef: {apiVersion: v1, kind: XDatabase}\nresources: []\n");
        assert_eq!(errors_at(&core), vec!["spec.compositeTypeRef.apiVersion"]);
    }

    #[test]
    fn writing_into_a_field_the_xr_schema_forbids_is_an_error() {
        let findings = lint_with_xrd(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {type: ToCompositeFieldPath, fromFieldPath: data.x, toFieldPath: status.adress}
  - type: CombineToComposite
    combine: {variables: [{fromFieldPath: data.x}], strategy: string, string: {fmt: "%s"}}
    toFieldPath: status.address.host
  - {type: ToCompositeFieldPath, fromFieldPath: data.x, toFieldPath: status.address}
"#,
        ));
        assert_eq!(
            summary(&findings),
            vec![
                (
                    Severity::Error,
                    "spec.resources[0].patches[0].toFieldPath".into(),
                    "the XDatabase v1 schema does not allow `status.adress`: status declares no field \"adress\"".into()
                ),
                (
                    Severity::Error,
                    "spec.resources[0].patches[1].toFieldPath".into(),
                    "the XDatabase v1 schema does not allow `status.address.host`: status.address is a string, not an object"
                        .into()
                ),
            ]
        );
    }

    #[test]
    fn reading_a_field_the_xr_schema_forbids_is_a_warning() {
        let findings = lint_with_xrd(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {fromFieldPath: spec.sise, toFieldPath: data.size}
  - type: CombineFromComposite
    combine: {variables: [{fromFieldPath: spec.region}, {fromFieldPath: spec.zone}], strategy: string, string: {fmt: "%s%s"}}
    toFieldPath: data.where
"#,
        ));
        assert_eq!(
            findings
                .iter()
                .map(|f| (f.severity, f.field.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    Severity::Warning,
                    "spec.resources[0].patches[0].fromFieldPath"
                ),
                (
                    Severity::Warning,
                    "spec.resources[0].patches[1].combine.variables[1].fromFieldPath"
                ),
            ]
        );
        assert!(
            findings[0].message.contains("never finds a value"),
            "{}",
            findings[0]
        );
    }

    #[test]
    fn the_engines_machinery_fields_and_metadata_of_the_xr_are_known_to_the_schema() {
        let findings = lint_with_xrd(&with_resources(
            r#"- name: a
  base: {apiVersion: v1, kind: ConfigMap}
  patches:
  - {fromFieldPath: spec.compositionRef.name, toFieldPath: data.composition}
  - {fromFieldPath: spec.writeConnectionSecretToRef.name, toFieldPath: data.secret}
  - {fromFieldPath: "metadata.labels[example.org/team]", toFieldPath: data.team}
  - {type: ToCompositeFieldPath, fromFieldPath: data.x, toFieldPath: "status.conditions[0].reason"}
"#,
        ));
        assert_eq!(findings, vec![]);
    }

    #[test]
    fn a_write_to_the_xr_outside_status_is_a_warning() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  patches:\n  - {type: ToCompositeFieldPath, fromFieldPath: data.x, toFieldPath: spec.size}\n",
        ));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            findings[0].field,
            "spec.resources[0].patches[0].toFieldPath"
        );
    }

    #[test]
    fn environment_patches_of_resource_types_are_reported_directly_and_through_patch_sets() {
        let yaml = format!(
            "{HEAD}{}",
            r#"patchSets:
- name: env
  patches:
  - {type: FromResourceFieldPath, fromResource: a, fromFieldPath: x, toFieldPath: data.x}
resources: []
environment:
  patches:
  - {type: FromResourceFieldPath, fromResource: a, fromFieldPath: spec.x, toFieldPath: x}
  - {type: PatchSet, patchSetName: env}
  - {fromFieldPath: spec.region, toFieldPath: region}
"#
        );
        assert_eq!(
            errors_at(&lint(&yaml)),
            vec![
                "spec.patchSets[0].patches[0].fromResource",
                "spec.environment.patches[0].type",
                "spec.environment.patches[0].fromResource",
                "spec.environment.patches[1].patchSetName",
            ]
        );
    }

    #[test]
    fn environment_config_sources_missing_their_options_are_reported() {
        let yaml = format!(
            "{HEAD}{}",
            r#"resources: []
environment:
  environmentConfigs:
  - {type: Reference}
  - {type: Selector}
  - type: Selector
    selector:
      mode: Some
      minMatch: 3
      maxMatch: 1
      sortByFieldPath: "data..x"
      matchLabels:
      - {key: a}
      - {key: b, type: Value}
      - {key: c, type: Label, value: x}
      - {key: d, valueFromFieldPath: spec.zone}
"#
        );
        let findings = lint_with_xrd(&yaml);
        let at = "spec.environment.environmentConfigs";
        assert_eq!(
            findings
                .iter()
                .map(|f| (f.severity, f.field.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (Severity::Error, format!("{at}[0].ref.name").as_str()),
                (Severity::Error, &format!("{at}[1].selector")),
                (Severity::Error, &format!("{at}[2].selector.mode")),
                (Severity::Error, &format!("{at}[2].selector.minMatch")),
                (
                    Severity::Error,
                    &format!("{at}[2].selector.sortByFieldPath")
                ),
                (
                    Severity::Error,
                    &format!("{at}[2].selector.matchLabels[0].valueFromFieldPath")
                ),
                (
                    Severity::Error,
                    &format!("{at}[2].selector.matchLabels[1].value")
                ),
                (
                    Severity::Error,
                    &format!("{at}[2].selector.matchLabels[2].type")
                ),
                (
                    Severity::Warning,
                    &format!("{at}[2].selector.matchLabels[3].valueFromFieldPath")
                ),
            ]
        );
    }

    #[test]
    fn a_from_resource_on_another_patch_type_is_a_warning() {
        let findings = lint(&with_resources(
            "- name: a\n  base: {apiVersion: v1, kind: ConfigMap}\n  patches:\n  - {fromFieldPath: spec.x, toFieldPath: data.x, fromResource: a}\n",
        ));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            (findings[0].severity, findings[0].field.as_str()),
            (
                Severity::Warning,
                "spec.resources[0].patches[0].fromResource"
            )
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = format!(
            "{HEAD}{}",
            r#"patchSets:
- name: s
  patches:
  - {type: PatchSet, patchSetName: s}
resources:
- name: a
  base: {apiVersion: v1}
  dependsOn: [b]
  patches:
  - {type: PatchSet, patchSetName: missing}
  - {type: ToCompositeFieldPath, fromFieldPath: data.x, toFieldPath: status.nope}
  - {fromFieldPath: "spec..x", toFieldPath: data.x, transforms: [{type: math}]}
  readinessChecks:
  - {type: MatchString, fieldPath: status.phase}
  connectionDetails:
  - {type: FromValue, name: password}
- name: b
  base: {apiVersion: v1, kind: ConfigMap}
  dependsOn: [a]
- name: b
  base: {apiVersion: v1, kind: ConfigMap}
"#
        );
        let findings = lint_with_xrd(&yaml);
        let fields = errors_at(&findings);
        for expected in [
            "spec.patchSets[0].patches[0].type",
            "spec.resources[0].base.kind",
            "spec.resources[0].patches[0].patchSetName",
            "spec.resources[0].patches[1].toFieldPath",
            "spec.resources[0].patches[2].fromFieldPath",
            "spec.resources[0].readinessChecks[0].matchString",
            "spec.resources[0].connectionDetails[0].value",
            "spec.resources[2].name",
            "spec.resources[0]",
        ] {
            assert!(
                fields.contains(&expected),
                "missing {expected} in {findings:#?}"
            );
        }
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("spec.resources[0].patches[2].transforms[0]")),
            "missing the transform error in {findings:#?}"
        );
        assert!(findings.iter().all(|f| f.object == "Composition/c"));
        assert!(
            CompiledComposition::compile(&spec(&yaml)).is_err(),
            "compile refuses it too"
        );
    }

    #[test]
    fn a_finding_displays_object_field_and_message() {
        let finding = Finding {
            severity: Severity::Error,
            object: "Composition/c".into(),
            field: "spec.resources[0].name".into(),
            message: "required".into(),
        };
        assert_eq!(
            finding.to_string(),
            "Composition/c: spec.resources[0].name: required"
        );
    }
}
