//! Compiles a [`CompositionSpec`] once into an immutable [`CompiledComposition`]: PatchSets
//! expanded, field paths parsed, transforms checked, the dependency graph built. Every render of
//! every XR reuses it, so nothing here runs per reconcile.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fieldpath::FieldPath;
use crate::graph::{DependencyGraph, EdgeKind, EdgeSpec, GraphError};
use crate::model::{
    CompositionMode, CompositionSpec, ConnectionDetail, FromFieldPathPolicy, Patch, PatchType,
    ReadinessCheck, ToFieldPathPolicy, TypeReference,
};
use crate::rules;
use crate::transform::{CompiledTransform, TransformError};

/// A Composition, ready to render.
#[derive(Clone, Debug)]
pub struct CompiledComposition {
    /// The kind of XR the Composition composes (`compositeTypeRef`).
    pub composite_type: TypeReference,
    /// How the Composition was written ([`CompositionSpec::mode`]): it decides whether a failing
    /// patch is fatal, which withheld resources the XR waits for, and the XR's scope.
    pub mode: Option<CompositionMode>,
    /// The composed resource templates, in declaration order: a resource's index here is its node
    /// in [`Self::graph`].
    pub resources: Vec<CompiledResource>,
    /// Patches between the XR and the environment, PatchSets expanded; they run before any
    /// resource's.
    pub environment_patches: Vec<CompiledPatch>,
    /// Environment data the render starts from, before selected EnvironmentConfigs.
    pub environment_defaults: Option<Value>,
    /// Which resources wait for which (`dependsOn`, `FromResourceFieldPath` and inferred edges),
    /// acyclic.
    pub graph: DependencyGraph,
    /// The namespace of a v1 XR's connection Secret, unless the XR names one.
    pub write_connection_secrets_to_namespace: Option<String>,
    /// The distinct `fromFieldPath`s resource patches read from the XR
    /// ([`CompiledPatch::composite_read`] indexes them): a render reads each once.
    pub composite_reads: Vec<FieldPath>,
    /// The connection Secret a v2 XR's connection details are composed into.
    pub connection_secret: CompiledConnectionSecret,
}

/// The composition resource name of the connection Secret composed for a v2 XR.
pub const CONNECTION_SECRET_RESOURCE: &str = "connection-secret";

/// The Secret type Crossplane gives connection Secrets.
pub const CONNECTION_SECRET_TYPE: &str = "connection.crossplane.io/v1alpha1";

/// Where the connection details of a v2 XR are written
/// ([`crate::model::CompositionSpec::write_connection_secret_to_ref`]), compiled.
#[derive(Clone, Debug)]
pub struct CompiledConnectionSecret {
    /// The Secret's name as written (empty counts as unset); patches may replace it.
    pub name: Option<String>,
    /// The Secret's namespace as written (empty counts as unset); patches may replace it.
    pub namespace: Option<String>,
    /// `FromCompositeFieldPath`/`CombineFromComposite` patches onto `{name, namespace}`.
    pub patches: Vec<CompiledPatch>,
    /// The Secret as a template ([`CONNECTION_SECRET_RESOURCE`]), stamped as every composed
    /// resource is.
    pub template: CompiledResource,
}

/// One composed resource template, compiled.
#[derive(Clone, Debug)]
pub struct CompiledResource {
    /// The template's name, unique within the Composition.
    pub name: String,
    /// The resource as written, before patches.
    pub base: Value,
    /// The patches in order, PatchSets expanded.
    pub patches: Vec<CompiledPatch>,
    /// What the resource contributes to the XR's connection details.
    pub connection_details: Vec<CompiledConnectionDetail>,
    /// Empty means the default check: the `Ready` condition is `True`.
    pub readiness_checks: Vec<CompiledReadinessCheck>,
    /// The template name as a DNS label, for composed resource names (computed once).
    pub name_suffix: String,
    /// `base` with the metadata every render sets anyway (see `render::prestamp`).
    pub stamped_base: Value,
    /// `stamped_base` holds no integral float, so normalizing its numbers changes nothing (and
    /// a render need not walk the whole resource again: patches write normalized values).
    pub stamped_base_normalized: bool,
    /// `stamped_base` with placeholders at the keys a render writes, when they cannot be seen
    /// (see [`crate::render::Skeleton`]): a render starts from it instead.
    pub skeleton: Option<crate::render::Skeleton>,
}

/// Where a patch reads from.
#[derive(Clone, Debug)]
pub enum PatchSource {
    /// One field path (every patch type but the `Combine*` ones).
    Path(FieldPath),
    /// Several field paths, formatted into one string (`Combine*` patches).
    Combine {
        /// The paths read, in the order the format consumes them.
        variables: Vec<FieldPath>,
        /// A Go `fmt` format with one verb per variable.
        format: String,
    },
}

/// A patch with parsed paths and compiled transforms.
#[derive(Clone, Debug)]
pub struct CompiledPatch {
    /// Position in the resource's patch list after PatchSets are expanded (as Crossplane counts).
    pub index: usize,
    /// The patch type; decides the source and the destination.
    pub kind: PatchType,
    /// Where in the source the value is read.
    pub source: PatchSource,
    /// Where in the destination the value is written (`toFieldPath`, or `fromFieldPath` when
    /// unset).
    pub to: FieldPath,
    /// `toFieldPath` contains `[*]`: write to every existing match.
    pub to_wildcard: bool,
    /// `FromResourceFieldPath`: the declaration index of the resource read.
    pub from_resource: Option<usize>,
    /// Applied in order to the value read.
    pub transforms: Vec<CompiledTransform>,
    /// What a missing source does.
    pub from_policy: FromFieldPathPolicy,
    /// How the value is written over an existing one (`mergeOptions` already mapped onto it).
    pub to_policy: ToFieldPathPolicy,
    /// A resource's `FromCompositeFieldPath`: its source's index in
    /// [`CompiledComposition::composite_reads`].
    pub composite_read: Option<usize>,
    /// The placeholder of `to` in the resource's [`CompiledResource::skeleton`], if it has one.
    pub slot: Option<usize>,
    /// `to` usually exists when the patch writes it (in the template's base or skeleton): the
    /// write looks it up before inserting.
    pub to_present: bool,
    /// Where `to` is in the resource's [`CompiledResource::skeleton`]: the position of each field
    /// among its sorted siblings. The patch replaces the value there without a lookup.
    pub to_position: Option<Vec<usize>>,
}

/// A connection detail with its type resolved.
#[derive(Clone, Debug)]
pub enum CompiledConnectionDetail {
    /// A key of the composed resource's own connection Secret.
    FromConnectionSecretKey {
        /// The key in the XR's connection details.
        name: String,
        /// The key in the resource's connection Secret.
        key: String,
    },
    /// A field of the observed composed resource.
    FromFieldPath {
        /// The key in the XR's connection details.
        name: String,
        /// The field read; a missing one contributes nothing.
        path: FieldPath,
    },
    /// A literal value.
    FromValue {
        /// The key in the XR's connection details.
        name: String,
        /// The value.
        value: String,
    },
}

/// A readiness check with parsed paths.
#[derive(Clone, Debug)]
pub enum CompiledReadinessCheck {
    /// Always passes.
    None,
    /// The field exists.
    NonEmpty(FieldPath),
    /// The field is this string.
    MatchString(FieldPath, String),
    /// The field is this integer.
    MatchInteger(FieldPath, i64),
    /// The field is `true`.
    MatchTrue(FieldPath),
    /// The field is `false`.
    MatchFalse(FieldPath),
    /// A status condition of this type has this status.
    MatchCondition {
        /// The condition type, such as `Ready`.
        kind: String,
        /// The status wanted, such as `True`.
        status: String,
    },
    /// A check whose `fieldPath` does not parse: it never passes (a warning when evaluated).
    Malformed(String),
}

/// Where in a Composition a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A resource template, by name.
    Resource(String),
    /// The environment's patches.
    Environment,
    /// A PatchSet, by name.
    PatchSet(String),
    /// `writeConnectionSecretToRef`.
    ConnectionSecret,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Resource(r) => write!(f, "resource `{r}`"),
            Location::Environment => f.write_str("environment"),
            Location::PatchSet(p) => write!(f, "patchSet `{p}`"),
            Location::ConnectionSecret => f.write_str("writeConnectionSecretToRef"),
        }
    }
}

/// Why a Composition does not compile. Every variant says where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A patch breaks a rule.
    #[error("{at}: patch {index} ({kind}): {field}: {message}")]
    Patch {
        /// Where the patch is.
        at: Location,
        /// The patch's position in its list, PatchSets expanded.
        index: usize,
        /// The patch type.
        kind: &'static str,
        /// The patch's field at fault (`toFieldPath`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A transform of a patch has invalid options.
    #[error("{at}: patch {index} ({kind}): {source}")]
    Transform {
        /// Where the patch is.
        at: Location,
        /// The patch's position in its list, PatchSets expanded.
        index: usize,
        /// The patch type.
        kind: &'static str,
        /// The transform and what is wrong with it.
        #[source]
        source: TransformError,
    },
    /// A field of a resource template, connection detail or readiness check is missing or invalid.
    #[error("{at}: {field}: {message}")]
    Field {
        /// The template (or environment) the field belongs to.
        at: Location,
        /// The field, relative to the template (`base.kind`, `connectionDetails[0].name`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resources' dependencies do not form an acyclic graph of known resources.
    #[error("{0}")]
    Graph(#[from] GraphError),
}

impl CompiledComposition {
    /// Compiles a Composition. Fails on the first problem; [`crate::lint`] reports all of them.
    pub fn compile(spec: &CompositionSpec) -> Result<Self, CompileError> {
        let patch_sets: BTreeMap<&str, &[Patch]> = spec
            .patch_sets
            .iter()
            .map(|s| (s.name.as_str(), s.patches.as_slice()))
            .collect();
        for set in &spec.patch_sets {
            for (index, p) in set.patches.iter().enumerate() {
                if p.kind != PatchType::PatchSet {
                    continue;
                }
                let (_, problems) = rules::patch_set_reference(p, true, &patch_sets);
                if let Some(problem) = rules::first_error(&problems) {
                    let at = Location::PatchSet(set.name.clone());
                    return Err(patch_refusal(&at, index, p.kind, problem));
                }
            }
        }
        let names: Vec<String> = spec.resources.iter().map(|r| r.name.clone()).collect();
        let mut resources = Vec::with_capacity(spec.resources.len());
        for template in &spec.resources {
            let at = Location::Resource(template.name.clone());
            if let Some(problem) = rules::first_error(&rules::resource_template(template)) {
                let (field, message) = match &problem.refusal {
                    Some(rules::Refusal::Field { field, message }) => {
                        ((*field).to_owned(), (*message).to_owned())
                    }
                    _ => (problem.field.clone(), problem.message.clone()),
                };
                return Err(CompileError::Field { at, field, message });
            }
            let expanded = expand_patch_sets(&at, &template.patches, &patch_sets)?;
            let mut patches = Vec::with_capacity(expanded.len());
            for (index, patch) in expanded.iter().enumerate() {
                patches.push(compile_patch(&at, index, patch, &names, false)?);
            }
            let connection_details = template
                .connection_details
                .iter()
                .enumerate()
                .map(|(i, d)| compile_connection_detail(&at, i, d))
                .collect::<Result<_, _>>()?;
            let readiness_checks = template
                .readiness_checks
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| compile_readiness_check(&at, i, c))
                .collect::<Result<_, _>>()?;
            let stamped_base =
                crate::render::prestamp(&template.base, &template.name, &spec.composite_type_ref);
            let skeleton = crate::render::skeleton(&stamped_base, &mut patches);
            let mut normalized = stamped_base.clone();
            crate::patch::normalize_numbers(&mut normalized);
            resources.push(CompiledResource {
                name: template.name.clone(),
                base: template.base.clone(),
                patches,
                connection_details,
                readiness_checks,
                name_suffix: crate::render::dns_label(&template.name),
                stamped_base_normalized: normalized == stamped_base,
                stamped_base,
                skeleton,
            });
        }
        let mut environment_patches = Vec::new();
        if let Some(env) = &spec.environment {
            let expanded = expand_patch_sets(&Location::Environment, &env.patches, &patch_sets)?;
            for (index, patch) in expanded.iter().enumerate() {
                environment_patches.push(compile_patch(
                    &Location::Environment,
                    index,
                    patch,
                    &names,
                    true,
                )?);
            }
        }
        let mut edges = Vec::new();
        let resource_index = |name: &str| names.iter().position(|n| n == name);
        let resource_hint =
            |name: &str| crate::suggest::did_you_mean(name, names.iter().map(String::as_str));
        for (to, template) in spec.resources.iter().enumerate() {
            let (found, problems) = rules::depends_on(template, &resource_index, &resource_hint);
            if let Some(problem) = rules::first_error(&problems) {
                return Err(match &problem.refusal {
                    Some(rules::Refusal::Graph(e)) => e.clone().into(),
                    _ => CompileError::Field {
                        at: Location::Resource(template.name.clone()),
                        field: problem.field.clone(),
                        message: problem.message.clone(),
                    },
                });
            }
            edges.extend(found.into_iter().map(|from| EdgeSpec {
                from,
                to,
                kind: EdgeKind::DependsOn,
                detail: format!("dependsOn {}", names[from]),
            }));
        }
        for (to, resource) in resources.iter().enumerate() {
            for patch in &resource.patches {
                if let (Some(from), PatchSource::Path(path)) = (patch.from_resource, &patch.source)
                {
                    edges.push(EdgeSpec {
                        from,
                        to,
                        kind: EdgeKind::ResourceRef,
                        detail: path.to_string(),
                    });
                }
            }
        }
        edges.extend(inferred_edges(&resources));
        let composite_reads = index_composite_reads(&mut resources);
        let connection_secret = compile_connection_secret(spec, &names)?;
        let graph = DependencyGraph::build(&names, &edges)?;
        Ok(Self {
            composite_type: spec.composite_type_ref.clone(),
            mode: spec.mode,
            resources,
            environment_patches,
            environment_defaults: spec
                .environment
                .as_ref()
                .and_then(|e| e.default_data.clone()),
            graph,
            write_connection_secrets_to_namespace: spec
                .write_connection_secrets_to_namespace
                .clone(),
            composite_reads,
            connection_secret,
        })
    }

    /// The declaration index of a resource template by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.resources.iter().position(|r| r.name == name)
    }
}

/// The connection Secret reference and its patches, checked as function-patch-and-transform
/// checks them, and the Secret's template.
fn compile_connection_secret(
    spec: &CompositionSpec,
    names: &[String],
) -> Result<CompiledConnectionSecret, CompileError> {
    let at = Location::ConnectionSecret;
    let reference = spec
        .write_connection_secret_to_ref
        .clone()
        .unwrap_or_default();
    let mut patches = Vec::with_capacity(reference.patches.len());
    for (index, patch) in reference.patches.iter().enumerate() {
        if !matches!(
            patch.kind,
            PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite
        ) {
            return Err(CompileError::Patch {
                at: at.clone(),
                index,
                kind: patch.kind.as_str(),
                field: "type",
                message: "connection Secret patches support only FromCompositeFieldPath and \
                          CombineFromComposite"
                    .into(),
            });
        }
        let compiled = compile_patch(&at, index, patch, names, false)?;
        let to = compiled.to.to_string();
        if to != "name" && to != "namespace" {
            return Err(CompileError::Patch {
                at: at.clone(),
                index,
                kind: patch.kind.as_str(),
                field: "toFieldPath",
                message: format!("must be \"name\" or \"namespace\", not {to:?}"),
            });
        }
        patches.push(compiled);
    }
    let base = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": CONNECTION_SECRET_TYPE,
    });
    let stamped_base =
        crate::render::prestamp(&base, CONNECTION_SECRET_RESOURCE, &spec.composite_type_ref);
    Ok(CompiledConnectionSecret {
        name: reference.name.filter(|n| !n.is_empty()),
        namespace: reference.namespace.filter(|n| !n.is_empty()),
        patches,
        template: CompiledResource {
            name: CONNECTION_SECRET_RESOURCE.to_owned(),
            base,
            patches: Vec::new(),
            connection_details: Vec::new(),
            readiness_checks: Vec::new(),
            name_suffix: crate::render::dns_label(CONNECTION_SECRET_RESOURCE),
            stamped_base_normalized: true,
            stamped_base,
            skeleton: None,
        },
    })
}

/// Numbers the distinct XR paths the resources' `FromCompositeFieldPath` patches read, so that
/// a render reads each path once however many patches share it.
fn index_composite_reads(resources: &mut [CompiledResource]) -> Vec<FieldPath> {
    let mut reads: Vec<FieldPath> = Vec::new();
    for patch in resources.iter_mut().flat_map(|r| r.patches.iter_mut()) {
        let PatchSource::Path(path) = &patch.source else {
            continue;
        };
        if patch.kind != PatchType::FromCompositeFieldPath {
            continue;
        }
        let index = match reads.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                reads.push(path.clone());
                reads.len() - 1
            }
        };
        patch.composite_read = Some(index);
    }
    reads
}

/// Edges for data flowing through the XR: a resource writing `status.x` (To*Composite) and a
/// resource reading an overlapping path (From*Composite).
fn inferred_edges(resources: &[CompiledResource]) -> Vec<EdgeSpec> {
    let mut edges = Vec::new();
    for (w, writer) in resources.iter().enumerate() {
        for wp in writer.patches.iter().filter(|p| {
            matches!(
                p.kind,
                PatchType::ToCompositeFieldPath | PatchType::CombineToComposite
            )
        }) {
            for (r, reader) in resources.iter().enumerate() {
                if r == w {
                    continue;
                }
                for rp in reader.patches.iter().filter(|p| {
                    matches!(
                        p.kind,
                        PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite
                    )
                }) {
                    let reads: Vec<&FieldPath> = match &rp.source {
                        PatchSource::Path(p) => vec![p],
                        PatchSource::Combine { variables, .. } => variables.iter().collect(),
                    };
                    if let Some(read) = reads.into_iter().find(|p| p.overlaps(&wp.to)) {
                        edges.push(EdgeSpec {
                            from: w,
                            to: r,
                            kind: EdgeKind::ThroughComposite,
                            detail: read.to_string(),
                        });
                    }
                }
            }
        }
    }
    edges
}

fn expand_patch_sets(
    at: &Location,
    patches: &[Patch],
    sets: &BTreeMap<&str, &[Patch]>,
) -> Result<Vec<Patch>, CompileError> {
    let mut out = Vec::with_capacity(patches.len());
    for (index, patch) in patches.iter().enumerate() {
        if patch.kind != PatchType::PatchSet {
            out.push(patch.clone());
            continue;
        }
        let (set, problems) = rules::patch_set_reference(patch, false, sets);
        let Some(set) = set else {
            return Err(rules::first_error(&problems).map_or_else(
                || CompileError::Patch {
                    at: at.clone(),
                    index,
                    kind: patch.kind.as_str(),
                    field: "patchSetName",
                    message: "cannot be resolved".into(),
                },
                |problem| patch_refusal(at, index, patch.kind, problem),
            ));
        };
        out.extend(set.iter().cloned());
    }
    Ok(out)
}

fn compile_patch(
    at: &Location,
    index: usize,
    patch: &Patch,
    names: &[String],
    environment: bool,
) -> Result<CompiledPatch, CompileError> {
    let kind = patch.kind;
    let resource_index = |name: &str| names.iter().position(|n| n == name);
    let resource_hint =
        |name: &str| crate::suggest::did_you_mean(name, names.iter().map(String::as_str));
    let checked = rules::patch(
        patch,
        &rules::PatchContext {
            environment,
            resource_index: &resource_index,
            resource_hint: &resource_hint,
        },
    );
    let refused = |problem: &rules::Problem| patch_refusal(at, index, kind, problem);
    let Some(parts) = checked.compiled else {
        return Err(rules::first_error(&checked.problems).map_or_else(
            || CompileError::Patch {
                at: at.clone(),
                index,
                kind: kind.as_str(),
                field: "type",
                message: "cannot be compiled".into(),
            },
            refused,
        ));
    };
    let policy = patch.policy.clone().unwrap_or_default();
    let to_policy = match (policy.to_field_path, &policy.merge_options) {
        (Some(p), _) => p,
        (None, None) => ToFieldPathPolicy::Replace,
        // Crossplane's deprecated mergeOptions map onto the same merge modes.
        (None, Some(m)) => match (
            m.keep_map_values == Some(true),
            m.append_slice == Some(true),
        ) {
            (true, true) => ToFieldPathPolicy::MergeObjectsAppendArrays,
            (true, false) => ToFieldPathPolicy::MergeObjects,
            (false, true) => ToFieldPathPolicy::ForceMergeObjectsAppendArrays,
            (false, false) => ToFieldPathPolicy::ForceMergeObjects,
        },
    };
    Ok(CompiledPatch {
        index,
        kind,
        source: parts.source,
        to_wildcard: parts.to_wildcard,
        to: parts.to,
        from_resource: parts.from_resource,
        transforms: parts.transforms,
        from_policy: policy.from_field_path.unwrap_or_default(),
        to_policy,
        composite_read: None,
        slot: None,
        to_present: false,
        to_position: None,
    })
}

/// A patch's problem as compile words it (see [`rules::Refusal`]).
fn patch_refusal(
    at: &Location,
    index: usize,
    kind: PatchType,
    problem: &rules::Problem,
) -> CompileError {
    match &problem.refusal {
        Some(rules::Refusal::Transform(source)) => CompileError::Transform {
            at: at.clone(),
            index,
            kind: kind.as_str(),
            source: source.clone(),
        },
        Some(rules::Refusal::Patch { field, message }) => CompileError::Patch {
            at: at.clone(),
            index,
            kind: kind.as_str(),
            field,
            message: message.clone(),
        },
        _ => CompileError::Field {
            at: at.clone(),
            field: format!("patches[{index}].{}", problem.field),
            message: problem.message.clone(),
        },
    }
}

/// The patch types allowed in `spec.environment.patches`: Crossplane's built-in names (the
/// composite's view) and function-patch-and-transform's (the environment's view, where
/// `ToEnvironmentFieldPath` copies XR -> environment).
pub fn allowed_in_environment(kind: PatchType) -> bool {
    matches!(
        kind,
        PatchType::FromCompositeFieldPath
            | PatchType::ToCompositeFieldPath
            | PatchType::CombineFromComposite
            | PatchType::CombineToComposite
            | PatchType::ToEnvironmentFieldPath
            | PatchType::FromEnvironmentFieldPath
            | PatchType::CombineToEnvironment
            | PatchType::CombineFromEnvironment
    )
}

/// The message for a patch type not allowed in environment patches.
pub const ENVIRONMENT_PATCH_TYPES: &str = "environment patches support only FromCompositeFieldPath, \
     ToCompositeFieldPath, CombineFromComposite, CombineToComposite, ToEnvironmentFieldPath, \
     FromEnvironmentFieldPath, CombineToEnvironment and CombineFromEnvironment";

fn compile_connection_detail(
    at: &Location,
    index: usize,
    d: &ConnectionDetail,
) -> Result<CompiledConnectionDetail, CompileError> {
    let (compiled, problems) = rules::connection_detail(d);
    compiled_or_first_error(
        at,
        &format!("connectionDetails[{index}]"),
        compiled,
        &problems,
    )
}

/// The compiled item, or its first problem as a [`CompileError::Field`] under `prefix`.
fn compiled_or_first_error<T>(
    at: &Location,
    prefix: &str,
    compiled: Option<T>,
    problems: &[rules::Problem],
) -> Result<T, CompileError> {
    compiled.ok_or_else(|| {
        let (field, message) = rules::first_error(problems)
            .map_or(("", "cannot be compiled"), |p| {
                (p.field.as_str(), p.message.as_str())
            });
        CompileError::Field {
            at: at.clone(),
            field: format!("{prefix}.{field}"),
            message: message.to_owned(),
        }
    })
}

fn compile_readiness_check(
    at: &Location,
    index: usize,
    c: &ReadinessCheck,
) -> Result<CompiledReadinessCheck, CompileError> {
    let (compiled, problems) = rules::readiness_check(c);
    let refused: Vec<rules::Problem> = rules::readiness_refusal(&problems)
        .into_iter()
        .cloned()
        .collect();
    compiled_or_first_error(at, &format!("readinessChecks[{index}]"), compiled, &refused)
}
