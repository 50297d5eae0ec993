//! Function pipelines: a Crossplane `mode: Pipeline` Composition as a list of steps, the desired
//! state the steps accumulate, the native steps and the final pass.
//!
//! What lives here is pure: reading the pipeline ([`Pipeline::load`]), deciding which steps are
//! native ([`NativeFunction`]), running the native steps on the accumulated [`DesiredState`]
//! ([`run_patch_and_transform`], [`run_auto_ready`]), and [`finish`], which turns the desired
//! state into what the controllers apply: the ordering edges (function-sequencer's rules and the
//! `strata.dev/depends-on` annotation) become a dependency graph that gates creation, every
//! composed resource is stamped with Strata's metadata, and the XR's Ready condition is decided
//! from the readiness the functions reported (only `READY_TRUE` counts, as in Crossplane).
//!
//! The gRPC calls to every other function, and the protocol duties around them (tag, context,
//! requirements, results), are I/O and live in the `strata-functions` crate, which calls into
//! this module between remote steps.
//!
//! A Composition whose steps are all native still renders through [`crate::render`] (its steps are
//! folded into one patch-and-transform spec by [`crate::load`]), so Crossplane 1.x Compositions
//! keep their byte-identical output; this module is used when a step needs a function.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::compile::CompiledComposition;
use crate::connection::ConnectionDetails;
use crate::load::{LoadError, SourcedValue};
use crate::model::{EnvironmentSpec, TypeReference};
use crate::render::{self, ObservedResources, RenderInput};
use crate::wire;

/// The context key under which Crossplane passes the environment from step to step.
pub const ENVIRONMENT_CONTEXT_KEY: &str = "apiextensions.crossplane.io/environment";

/// The functions Strata runs in-process instead of calling them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeFunction {
    /// function-patch-and-transform: the render of a `mode: Resources` Composition.
    PatchAndTransform,
    /// function-environment-configs: selects and merges EnvironmentConfigs into the context.
    EnvironmentConfigs,
    /// function-auto-ready: marks Ready the desired resources whose observed resource is.
    AutoReady,
    /// function-sequencer: withholds resources until those sequenced before them are Ready.
    Sequencer,
}

impl NativeFunction {
    /// By a Function's package (`registry.example/crossplane-contrib/function-auto-ready:v0.5.0`):
    /// the repository's last path segment, without tag or digest.
    pub fn from_package(package: &str) -> Option<Self> {
        let without_digest = package.split('@').next().unwrap_or(package);
        let repo = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let name = repo.split(':').next().unwrap_or(repo);
        match name {
            "function-patch-and-transform" => Some(Self::PatchAndTransform),
            "function-environment-configs" => Some(Self::EnvironmentConfigs),
            "function-auto-ready" => Some(Self::AutoReady),
            "function-sequencer" => Some(Self::Sequencer),
            _ => None,
        }
    }

    /// Without a Function object (`strata render` with no functions file): by the step's input
    /// kind, or for auto-ready, which takes no input, by the function's name.
    pub fn from_step(function: &str, input: Option<&Value>) -> Option<Self> {
        let group = input
            .and_then(|i| i.get("apiVersion"))
            .and_then(Value::as_str)
            .and_then(|av| av.rsplit_once('/'))
            .map(|(g, _)| g);
        match group {
            Some("pt.fn.crossplane.io") => Some(Self::PatchAndTransform),
            Some("environmentconfigs.fn.crossplane.io") => Some(Self::EnvironmentConfigs),
            Some("sequencer.fn.crossplane.io") => Some(Self::Sequencer),
            Some(_) => None,
            None if function.contains("auto-ready") => Some(Self::AutoReady),
            None => None,
        }
    }

    /// The function's package name (`function-auto-ready`), as results and errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PatchAndTransform => "function-patch-and-transform",
            Self::EnvironmentConfigs => "function-environment-configs",
            Self::AutoReady => "function-auto-ready",
            Self::Sequencer => "function-sequencer",
        }
    }
}

/// A Secret a step receives as credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSource {
    /// The credential's name, under which the function finds it in its request.
    pub name: String,
    /// `secretRef.namespace`.
    pub secret_namespace: String,
    /// `secretRef.name`.
    pub secret_name: String,
}

/// One step of a pipeline.
#[derive(Clone, Debug)]
pub struct PipelineStep {
    /// `step`: the step's name, unique within the pipeline.
    pub name: String,
    /// `functionRef.name`.
    pub function: String,
    /// The step's `input`, as written; the function validates it.
    pub input: Option<Value>,
    /// The Secrets passed to the function (only `source: Secret` is supported).
    pub credentials: Vec<CredentialSource>,
    /// Set when Strata runs the step in-process.
    pub native: Option<NativeFunction>,
    /// A native patch-and-transform step's input, compiled once when the pipeline is loaded.
    pub compiled: Option<Arc<CompiledComposition>>,
}

/// A Composition in `mode: Pipeline`.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The Composition's name, for messages.
    pub composition: String,
    /// The kind of XR the Composition composes.
    pub composite_type: TypeReference,
    /// The steps in order.
    pub steps: Vec<PipelineStep>,
}

impl Pipeline {
    /// Reads the pipeline of a Composition document; `None` when it is not in `mode: Pipeline`.
    /// `packages` maps a Function's name to its package; a step whose Function is in it is
    /// native by its package, any other by its input kind ([`NativeFunction::from_step`]).
    pub fn load(
        doc: &SourcedValue,
        packages: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, LoadError> {
        let err = |message: String| LoadError {
            location: doc.location(),
            message,
        };
        let spec = doc.value.get("spec");
        if spec.and_then(|s| s.get("mode")).and_then(Value::as_str) != Some("Pipeline") {
            return Ok(None);
        }
        let composite_type: TypeReference = serde_json::from_value(
            spec.and_then(|s| s.get("compositeTypeRef"))
                .cloned()
                .unwrap_or(Value::Null),
        )
        .map_err(|e| err(format!("spec.compositeTypeRef: {e}")))?;
        let Some(steps) = spec
            .and_then(|s| s.get("pipeline"))
            .and_then(Value::as_array)
        else {
            return Err(err(
                "spec.pipeline: required list with spec.mode: Pipeline".into()
            ));
        };
        let mut out = Vec::with_capacity(steps.len());
        let mut names = BTreeSet::new();
        for (i, step) in steps.iter().enumerate() {
            let at = format!("spec.pipeline[{i}]");
            let name = step
                .get("step")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| err(format!("{at}.step: required string")))?;
            if !names.insert(name) {
                return Err(err(format!("{at}.step: duplicate step name {name:?}")));
            }
            let function = step
                .pointer("/functionRef/name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| err(format!("{at}.functionRef.name: required string")))?;
            let input = step.get("input").filter(|v| !v.is_null()).cloned();
            if input.as_ref().is_some_and(|i| !i.is_object()) {
                return Err(err(format!("{at}.input: must be an object")));
            }
            let native = match packages.get(function) {
                Some(package) => NativeFunction::from_package(package),
                None => NativeFunction::from_step(function, input.as_ref()),
            };
            let mut credentials = Vec::new();
            for (j, c) in step
                .get("credentials")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let cat = format!("{at}.credentials[{j}]");
                let s = |p: &str| c.pointer(p).and_then(Value::as_str).unwrap_or_default();
                if s("/source") != "Secret" {
                    return Err(err(format!("{cat}.source: only Secret is supported")));
                }
                let (cname, ns, sname) =
                    (s("/name"), s("/secretRef/namespace"), s("/secretRef/name"));
                if cname.is_empty() || ns.is_empty() || sname.is_empty() {
                    return Err(err(format!(
                        "{cat}: name, secretRef.namespace and secretRef.name are required"
                    )));
                }
                credentials.push(CredentialSource {
                    name: cname.to_owned(),
                    secret_namespace: ns.to_owned(),
                    secret_name: sname.to_owned(),
                });
            }
            out.push(PipelineStep {
                name: name.to_owned(),
                function: function.to_owned(),
                input,
                credentials,
                native,
                compiled: None,
            });
        }
        let composition = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(Some(Self {
            composition,
            composite_type,
            steps: out,
        }))
    }

    /// Compiles every native patch-and-transform step once, so each run renders without
    /// reading and compiling its input again. A step that does not compile is an error naming it.
    pub fn compile_native_steps(&mut self) -> Result<(), StepError> {
        for i in 0..self.steps.len() {
            if self.steps[i].native != Some(NativeFunction::PatchAndTransform)
                || self.steps[i].compiled.is_some()
            {
                continue;
            }
            let compiled = self
                .compile_patch_and_transform(&self.steps[i])
                .map_err(|message| StepError::Native {
                    step: self.steps[i].name.clone(),
                    function: NativeFunction::PatchAndTransform.name(),
                    message,
                })?;
            self.steps[i].compiled = Some(Arc::new(compiled));
        }
        Ok(())
    }

    /// A patch-and-transform step's input as a one-step Composition, read by the same loader
    /// as every Composition and compiled.
    fn compile_patch_and_transform(
        &self,
        step: &PipelineStep,
    ) -> Result<CompiledComposition, String> {
        let doc = SourcedValue {
            source: format!("Composition {}", self.composition),
            document: 1,
            value: json!({
                "apiVersion": "apiextensions.crossplane.io/v1",
                "kind": "Composition",
                "metadata": {"name": self.composition},
                "spec": {
                    "compositeTypeRef": {
                        "apiVersion": self.composite_type.api_version,
                        "kind": self.composite_type.kind,
                    },
                    "mode": "Pipeline",
                    "pipeline": [{
                        "step": step.name,
                        "functionRef": {"name": step.function},
                        "input": step.input.clone().unwrap_or(Value::Null),
                    }],
                },
            }),
        };
        let composition = crate::load::composition(&doc).map_err(|e| e.message)?;
        CompiledComposition::compile(&composition.spec).map_err(|e| e.to_string())
    }

    /// True when some step needs a function to be called.
    pub fn has_remote_steps(&self) -> bool {
        self.steps.iter().any(|s| s.native.is_none())
    }

    /// What the pipeline's function-environment-configs steps select, as one environment
    /// spec (their config lists in step order; the last policy and default data win); `None`
    /// without such a step. The environment is selected before the pipeline runs and passed to
    /// every step in the context, by the controllers and by `strata render` alike.
    pub fn environment_selection(&self) -> Result<Option<EnvironmentSpec>, StepError> {
        let mut configs = Vec::new();
        let mut extra = Map::new();
        let mut found = None;
        for step in &self.steps {
            if step.native != Some(NativeFunction::EnvironmentConfigs) {
                continue;
            }
            let err = |message: String| StepError::Native {
                step: step.name.clone(),
                function: NativeFunction::EnvironmentConfigs.name(),
                message,
            };
            found = Some(err);
            let spec = step.input.as_ref().and_then(|i| i.get("spec"));
            if let Some(list) = spec.and_then(|s| s.get("environmentConfigs")) {
                let Some(items) = list.as_array() else {
                    return Err(err("input.spec.environmentConfigs: expected a list".into()));
                };
                configs.extend(items.iter().cloned());
            }
            for key in ["policy", "defaultData"] {
                if let Some(v) = spec.and_then(|s| s.get(key)) {
                    extra.insert(key.to_owned(), v.clone());
                }
            }
        }
        let Some(err) = found else {
            return Ok(None);
        };
        extra.insert("environmentConfigs".to_owned(), Value::Array(configs));
        serde_json::from_value(Value::Object(extra))
            .map(Some)
            .map_err(|e| err(format!("input.spec: {e}")))
    }
}

/// A function's readiness verdict for a composed resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ready {
    /// No step said; the resource counts as not Ready.
    #[default]
    Unspecified,
    /// Ready.
    True,
    /// Not Ready.
    False,
}

/// A desired composed resource as the steps left it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredComposed {
    /// The resource as the steps want it, not yet stamped with Strata's metadata.
    pub resource: Value,
    /// The last verdict a step gave.
    pub ready: Ready,
    /// Connection details the steps attached to the resource.
    pub connection_details: ConnectionDetails,
}

/// The desired state accumulated step by step (Crossplane's `State`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    /// The desired XR: only what functions set (its status is what is applied back).
    pub composite: Value,
    /// The XR's connection details, as the steps set them.
    pub composite_connection_details: ConnectionDetails,
    /// By composition resource name, in the order the steps first produced them.
    pub resources: IndexMap<String, DesiredComposed>,
}

/// The observed inputs of a pipeline run.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The observed XR (schema defaults applied).
    pub composite: &'a Value,
    /// The composed resources that exist, by composition resource name.
    pub resources: &'a ObservedResources,
}

/// Why a native step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The step's input is invalid, or the step could not compute its output.
    #[error("step {step:?} ({function}): {message}")]
    Native {
        /// The step's name.
        step: String,
        /// The native function ([`NativeFunction::name`]).
        function: &'static str,
        /// What went wrong, naming the input field where there is one.
        message: String,
    },
}

/// What a native function-patch-and-transform step reports besides the desired state.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchAndTransformReport {
    /// The environment after the step's environment patches.
    pub environment: Value,
    /// The render's warnings ([`crate::render::RenderOutput::warnings`]).
    pub warnings: Vec<String>,
    /// Resources a `Required` patch left out of the desired state (template name, the patch
    /// and its missing source): the function reports each as a Warning result.
    pub required_withheld: Vec<(String, render::RequiredSource)>,
}

/// Runs a function-patch-and-transform step in-process: the same render as a `mode: Resources`
/// Composition, its output merged into the desired state as the function merges it (resources
/// by name, the XR's status deeply, connection details by key).
pub fn run_patch_and_transform(
    pipeline: &Pipeline,
    step: &PipelineStep,
    observed: Observed<'_>,
    environment: Option<&Value>,
    desired: &mut DesiredState,
) -> Result<PatchAndTransformReport, StepError> {
    let fail = |message: String| StepError::Native {
        step: step.name.clone(),
        function: NativeFunction::PatchAndTransform.name(),
        message,
    };
    let compiled = match &step.compiled {
        Some(c) => Arc::clone(c),
        None => Arc::new(pipeline.compile_patch_and_transform(step).map_err(fail)?),
    };
    let out = render::render(
        compiled.as_ref(),
        RenderInput {
            composite: observed.composite,
            observed: observed.resources,
            environment,
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut status = out.composite_status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        // The pipeline's end decides the XR's Ready condition, not one step.
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("Ready"));
        if conditions.is_empty()
            && let Some(obj) = status.as_object_mut()
        {
            obj.remove("conditions");
        }
    }
    if status.as_object().is_some_and(|s| !s.is_empty()) {
        let composite = object(&mut desired.composite);
        let current = composite.remove("status").unwrap_or(Value::Null);
        composite.insert("status".into(), merge_objects(current, status));
    }
    for (k, v) in &out.connection_details {
        desired
            .composite_connection_details
            .insert(k.clone(), v.clone());
    }
    // The connection Secret of a v2 XR carries every detail set so far, not only this step's.
    let templates = compiled.resources.len();
    for r in out.resources {
        if r.index == templates {
            continue;
        }
        let exists = observed.resources.contains_key(&r.name);
        let ready = if exists && r.readiness.is_ready() {
            Ready::True
        } else {
            Ready::Unspecified
        };
        let entry = desired.resources.entry(r.name).or_default();
        entry.resource = r.resource;
        entry.ready = ready;
    }
    let mut warnings = out.warnings;
    let (secret, more) = render::connection_secret(
        compiled.as_ref(),
        observed.composite,
        &desired.composite_connection_details,
    )
    .map_err(|e| fail(e.to_string()))?;
    for w in more {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if let Some(secret) = secret {
        let entry = desired.resources.entry(secret.name).or_default();
        entry.resource = secret.resource;
        entry.ready = Ready::True;
    }
    Ok(PatchAndTransformReport {
        environment: out.environment,
        warnings,
        required_withheld: out
            .withheld
            .into_iter()
            .filter_map(|w| Some((w.name, w.required?)))
            .collect(),
    })
}

/// function-auto-ready: a desired resource that exists is ready when its observed object is
/// healthy, unless a step already said otherwise. Healthy as the current function decides it:
/// standard Kubernetes kinds by their own health checks ([`kubernetes_health`]), every other
/// kind by a `Ready=True` condition.
pub fn run_auto_ready(observed: Observed<'_>, desired: &mut DesiredState) {
    for (name, d) in desired.resources.iter_mut() {
        if d.ready != Ready::Unspecified {
            continue;
        }
        let Some(o) = observed.resources.get(name) else {
            continue;
        };
        let healthy = kubernetes_health(&o.resource)
            .unwrap_or_else(|| condition_status(&o.resource, "Ready") == Some("True"));
        if healthy {
            d.ready = Ready::True;
        }
    }
}

/// function-auto-ready's health checks of standard Kubernetes kinds; `None` for other kinds.
/// ConfigMaps, Secrets, ServiceAccounts, Namespaces and RBAC objects are ready when they
/// exist; a Service when it is not a LoadBalancer or has an ingress; a Deployment when every
/// replica is updated and available and its `Available` condition is true.
pub fn kubernetes_health(object: &Value) -> Option<bool> {
    let api_version = object.get("apiVersion").and_then(Value::as_str)?;
    let kind = object.get("kind").and_then(Value::as_str)?;
    let int = |p: &str| object.pointer(p).and_then(Value::as_i64);
    match (api_version, kind) {
        ("v1", "ConfigMap" | "Secret" | "ServiceAccount" | "Namespace")
        | (
            "rbac.authorization.k8s.io/v1",
            "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding",
        ) => Some(true),
        ("v1", "Service") => {
            let load_balancer =
                object.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
            Some(
                !load_balancer
                    || object
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .is_some_and(|i| !i.is_empty()),
            )
        }
        ("apps/v1", "Deployment") => {
            let replicas = int("/spec/replicas").unwrap_or(1);
            Some(
                int("/status/availableReplicas").unwrap_or(0) == replicas
                    && int("/status/updatedReplicas").unwrap_or(0) == replicas
                    && condition_status(object, "Available") == Some("True"),
            )
        }
        _ => None,
    }
}

/// function-sequencer's input: each rule's `sequence` (resource names or regular expressions,
/// matched whole) orders every resource matched by an entry after those matched by the entries
/// before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceRules {
    /// Each rule's `sequence`, in order, as written.
    pub rules: Vec<Vec<String>>,
}

impl SequenceRules {
    /// Reads `rules[].sequence` from a sequencer step's input.
    pub fn from_input(step: &PipelineStep) -> Result<Self, StepError> {
        let fail = |message: String| StepError::Native {
            step: step.name.clone(),
            function: NativeFunction::Sequencer.name(),
            message,
        };
        let mut rules = Vec::new();
        let items = step
            .input
            .as_ref()
            .and_then(|i| i.get("rules"))
            .and_then(Value::as_array)
            .ok_or_else(|| fail("input.rules: required list".into()))?;
        for (i, rule) in items.iter().enumerate() {
            let seq = rule
                .get("sequence")
                .and_then(Value::as_array)
                .ok_or_else(|| fail(format!("input.rules[{i}].sequence: required list")))?;
            let mut names = Vec::with_capacity(seq.len());
            for (j, s) in seq.iter().enumerate() {
                let s = s.as_str().ok_or_else(|| {
                    fail(format!("input.rules[{i}].sequence[{j}]: must be a string"))
                })?;
                regex::Regex::new(&format!("^(?:{s})$")).map_err(|e| {
                    fail(format!(
                        "input.rules[{i}].sequence[{j}]: invalid regular expression: {}",
                        e.to_string().lines().last().unwrap_or_default()
                    ))
                })?;
                names.push(s.to_owned());
            }
            rules.push(names);
        }
        Ok(Self { rules })
    }
}

/// A composed resource held back until its predecessors are Ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withheld {
    /// The composition resource name.
    pub name: String,
    /// The predecessors it waits for, each named once.
    pub waiting_for: Vec<String>,
}

/// What a pipeline produces, ready for the controllers to apply or `strata render` to print.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// Only the status the pipeline wants on the XR, with its `Ready` condition.
    pub composite_status: Value,
    /// Released resources in graph order (dependencies first, ties by pipeline order), stamped.
    pub resources: Vec<(String, Value, Ready)>,
    /// Resources that do not exist yet and wait for a predecessor to exist and be Ready.
    pub withheld: Vec<Withheld>,
    /// Desired resources not Ready (released or withheld), sorted.
    pub unready: Vec<String>,
    /// The XR's connection details.
    pub connection_details: ConnectionDetails,
    /// Every desired resource, released or withheld, in graph order.
    pub order: Vec<String>,
    /// Edges `(before, after)` of the dependency graph, for `strata graph`.
    pub edges: Vec<(String, String)>,
}

/// Why the final pass failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FinishError {
    /// The sequencer's rules and `dependsOn` annotations form a cycle; holds its members, the
    /// first repeated at the end.
    #[error("dependency cycle between composed resources: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A resource names an unknown dependency, or cannot be stamped.
    #[error("resource `{resource}`: {message}")]
    Resource {
        /// The composition resource name.
        resource: String,
        /// What is wrong.
        message: String,
    },
}

/// Gates, orders and stamps the desired state; decides the XR's Ready condition.
pub fn finish(
    observed: Observed<'_>,
    desired: &DesiredState,
    sequences: &[SequenceRules],
) -> Result<Finished, FinishError> {
    let names: Vec<&str> = desired.resources.keys().map(String::as_str).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut preds: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); names.len()];
    for rules in sequences {
        for rule in &rules.rules {
            let matched: Vec<Vec<usize>> = rule
                .iter()
                .map(|pattern| {
                    let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok();
                    names
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| re.as_ref().is_some_and(|re| re.is_match(n)))
                        .map(|(i, _)| i)
                        .collect()
                })
                .collect();
            for (pos, after) in matched.iter().enumerate() {
                for before in matched[..pos].iter().flatten() {
                    for a in after {
                        if a != before {
                            preds[*a].insert(*before);
                        }
                    }
                }
            }
        }
    }
    for (i, (name, d)) in desired.resources.iter().enumerate() {
        let Some(list) = d
            .resource
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(wire::ANNOTATION_DEPENDS_ON))
            .and_then(Value::as_str)
        else {
            continue;
        };
        for dep in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some(&j) = index.get(dep) else {
                return Err(FinishError::Resource {
                    resource: name.clone(),
                    message: format!(
                        "annotation {}: no desired resource named {dep:?}",
                        wire::ANNOTATION_DEPENDS_ON
                    ),
                });
            };
            if j != i {
                preds[i].insert(j);
            }
        }
    }
    let order = topological_order(&names, &preds)?;
    let exists = |i: usize| observed.resources.contains_key(names[i]);
    let ready = |i: usize| desired.resources[i].ready == Ready::True;
    let mut resources = Vec::with_capacity(names.len());
    let mut withheld = Vec::new();
    let mut unready = Vec::new();
    let meta = Stamp::read(observed.composite);
    for &i in &order {
        let name = names[i];
        let d = &desired.resources[i];
        let waiting: Vec<String> = preds[i]
            .iter()
            .filter(|&&p| !(exists(p) && ready(p)))
            .map(|&p| names[p].to_owned())
            .collect();
        if !ready(i) {
            unready.push(name.to_owned());
        }
        if !exists(i) && !waiting.is_empty() {
            withheld.push(Withheld {
                name: name.to_owned(),
                waiting_for: waiting,
            });
            continue;
        }
        let mut resource = d.resource.clone();
        meta.stamp(
            &mut resource,
            name,
            observed.resources.get(name).map(|o| &o.resource),
        )
        .map_err(|message| FinishError::Resource {
            resource: name.to_owned(),
            message,
        })?;
        resources.push((name.to_owned(), resource, d.ready));
    }
    unready.sort();
    let mut status = desired
        .composite
        .get("status")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let ready_condition = if unready.is_empty() {
        json!({"type": "Ready", "status": "True", "reason": "Available"})
    } else {
        let mut message = format!("Unready resources: {}", unready.join(", "));
        if !withheld.is_empty() {
            let waits: Vec<String> = withheld
                .iter()
                .map(|w| format!("{} waits for {}", w.name, w.waiting_for.join(", ")))
                .collect();
            message.push_str("; ");
            message.push_str(&waits.join("; "));
        }
        json!({"type": "Ready", "status": "False", "reason": "Creating", "message": message})
    };
    let status_obj = object(&mut status);
    let conditions = status_obj
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c.get("type").and_then(Value::as_str) != Some("Ready"));
        list.push(ready_condition);
    }
    let mut edges = Vec::new();
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            edges.push((names[p].to_owned(), names[i].to_owned()));
        }
    }
    Ok(Finished {
        composite_status: status,
        resources,
        withheld,
        unready,
        connection_details: desired.composite_connection_details.clone(),
        order: order.iter().map(|&i| names[i].to_owned()).collect(),
        edges,
    })
}

/// Kahn's algorithm with ties broken by pipeline order; a cycle names every member.
fn topological_order(names: &[&str], preds: &[BTreeSet<usize>]) -> Result<Vec<usize>, FinishError> {
    let mut remaining: Vec<usize> = preds.iter().map(BTreeSet::len).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            succs[p].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..names.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(names.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &s in &succs[i] {
            remaining[s] -= 1;
            if remaining[s] == 0 {
                ready.insert(s);
            }
        }
    }
    if order.len() == names.len() {
        return Ok(order);
    }
    // Walk predecessors among the unsorted until a node repeats: that walk is a cycle.
    let unsorted: BTreeSet<usize> = (0..names.len()).filter(|i| !order.contains(i)).collect();
    let mut path = Vec::new();
    let mut at = unsorted.first().copied().unwrap_or_default();
    while !path.contains(&at) {
        path.push(at);
        at = preds[at]
            .iter()
            .copied()
            .find(|p| unsorted.contains(p))
            .unwrap_or(at);
    }
    let start = path.iter().position(|&p| p == at).unwrap_or_default();
    let mut cycle: Vec<String> = path[start..]
        .iter()
        .rev()
        .map(|&i| names[i].to_owned())
        .collect();
    cycle.push(names[at].to_owned());
    Err(FinishError::Cycle(cycle))
}

/// The XR's identity as composed resources carry it.
struct Stamp<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
    uid: Option<&'a str>,
    labels: Option<&'a Map<String, Value>>,
}

impl<'a> Stamp<'a> {
    fn read(xr: &'a Value) -> Self {
        let s = |p: &str| xr.pointer(p).and_then(Value::as_str);
        Self {
            api_version: s("/apiVersion").unwrap_or_default(),
            kind: s("/kind").unwrap_or_default(),
            name: s("/metadata/name").unwrap_or_default(),
            namespace: s("/metadata/namespace"),
            uid: s("/metadata/uid"),
            labels: xr.pointer("/metadata/labels").and_then(Value::as_object),
        }
    }

    /// The metadata the function composer writes on every composed resource (as render does
    /// for templates): name (the observed one, the function's, or `<xr>-<resource>`), the XR's
    /// namespace for a namespaced XR, the composite and claim labels, the resource-name
    /// annotation and the controller reference.
    fn stamp(
        &self,
        resource: &mut Value,
        name: &str,
        observed: Option<&Value>,
    ) -> Result<(), String> {
        let obj = resource
            .as_object_mut()
            .ok_or_else(|| "must be an object".to_owned())?;
        for field in ["apiVersion", "kind"] {
            if !obj.get(field).is_some_and(Value::is_string) {
                return Err(format!("{field}: required string"));
            }
        }
        let meta = object(obj.entry("metadata").or_insert_with(|| json!({})));
        let observed_name = observed
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str);
        match (observed_name, meta.get("name").and_then(Value::as_str)) {
            (Some(n), _) => {
                meta.insert("name".into(), json!(n));
            }
            (None, Some(_)) => {}
            (None, None) => {
                meta.insert("name".into(), json!(render::composed_name(self.name, name)));
            }
        }
        if let Some(ns) = self.namespace {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(other) if other != ns => {
                    return Err(format!(
                        "metadata.namespace: {other:?} is not the namespace of the composite resource ({ns:?})"
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        }
        let labels = object(meta.entry("labels").or_insert_with(|| json!({})));
        let composite = self
            .labels
            .and_then(|l| l.get(wire::LABEL_COMPOSITE))
            .and_then(Value::as_str)
            .unwrap_or(self.name);
        labels.insert(wire::LABEL_COMPOSITE.into(), json!(composite));
        for key in [wire::LABEL_CLAIM_NAME, wire::LABEL_CLAIM_NAMESPACE] {
            if let Some(v) = self.labels.and_then(|l| l.get(key)) {
                labels.insert(key.into(), v.clone());
            }
        }
        let annotations = object(meta.entry("annotations").or_insert_with(|| json!({})));
        annotations.insert(wire::ANNOTATION_RESOURCE_NAME.into(), json!(name));
        let refs = meta
            .entry("ownerReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(refs) = refs.as_array_mut() {
            refs.retain(|r| r.get("controller") != Some(&Value::Bool(true)));
            let mut owner = json!({
                "apiVersion": self.api_version,
                "kind": self.kind,
                "name": self.name,
                "controller": true,
                "blockOwnerDeletion": true,
            });
            if let Some(uid) = self.uid {
                owner["uid"] = json!(uid);
            }
            refs.push(owner);
        }
        Ok(())
    }
}

/// The status of a condition type on an object.
pub fn condition_status<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?
        .get("status")?
        .as_str()
}

/// The value as an object, replacing a non-object with an empty one.
fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(m) => m,
        _ => unreachable!("replaced by an object above"),
    }
}

/// Deep merge, `patch` wins; objects merged key by key, everything else replaced.
fn merge_objects(base: Value, patch: Value) -> Value {
    match (base, patch) {
        (Value::Object(mut b), Value::Object(p)) => {
            for (k, v) in p {
                let merged = match b.remove(&k) {
                    Some(old) => merge_objects(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (_, p) => p,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn auto_ready_checks_standard_kinds_by_their_health_and_others_by_ready() {
        let cases = [
            (json!({"apiVersion": "v1", "kind": "ConfigMap"}), Some(true)),
            (
                json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}}),
                Some(true),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}}),
                Some(false),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"},
                       "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}),
                Some(true),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2},
                       "status": {"availableReplicas": 1, "updatedReplicas": 2,
                                  "conditions": [{"type": "Available", "status": "True"}]}}),
                Some(false),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2},
                       "status": {"availableReplicas": 2, "updatedReplicas": 2,
                                  "conditions": [{"type": "Available", "status": "True"}]}}),
                Some(true),
            ),
            (
                json!({"apiVersion": "example.org/v1", "kind": "Bucket"}),
                None,
            ),
        ];
        for (object, want) in cases {
            assert_eq!(kubernetes_health(&object), want, "{object}");
        }
    }

    fn doc(pipeline: Value) -> SourcedValue {
        SourcedValue {
            source: "test.yaml".into(),
            document: 1,
            value: json!({
                "apiVersion": "apiextensions.crossplane.io/v1",
                "kind": "Composition",
                "metadata": {"name": "c"},
                "spec": {
                    "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
                    "mode": "Pipeline",
                    "pipeline": pipeline,
                },
            }),
        }
    }

    #[test]
    fn native_functions_are_known_by_package_whatever_the_registry_tag_or_digest() {
        let rows = [
            (
                "registry.example/crossplane-contrib/function-auto-ready:v0.5.0",
                Some(NativeFunction::AutoReady),
            ),
            (
                "registry.example/fns/function-patch-and-transform@sha256:ab",
                Some(NativeFunction::PatchAndTransform),
            ),
            ("function-sequencer", Some(NativeFunction::Sequencer)),
            (
                "registry.example/crossplane-contrib/function-environment-configs:v0.4.0",
                Some(NativeFunction::EnvironmentConfigs),
            ),
            (
                "registry.example/crossplane-contrib/function-kcl:v0.11.0",
                None,
            ),
            ("example.org/function-auto-ready-fork:v1", None),
        ];
        for (package, want) in rows {
            assert_eq!(NativeFunction::from_package(package), want, "{package}");
        }
    }

    #[test]
    fn a_step_is_native_by_its_functions_package_before_its_input_kind() {
        let d = doc(json!([
            {"step": "a", "functionRef": {"name": "pt"}, "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources"}},
            {"step": "b", "functionRef": {"name": "kcl"}, "input": {"apiVersion": "krm.kcl.dev/v1alpha1", "kind": "KCLInput"}},
            {"step": "c", "functionRef": {"name": "function-auto-ready"}},
            {"step": "d", "functionRef": {"name": "ready-by-package"}},
        ]));
        let packages = BTreeMap::from([
            (
                "ready-by-package".to_owned(),
                "registry.example/crossplane-contrib/function-auto-ready:v0.5.0".to_owned(),
            ),
            (
                // A Function named like a native one but running another package is remote.
                "pt".to_owned(),
                "example.org/my-pt-fork:v1".to_owned(),
            ),
        ]);
        let p = Pipeline::load(&d, &packages).unwrap().unwrap();
        let natives: Vec<Option<NativeFunction>> = p.steps.iter().map(|s| s.native).collect();
        assert_eq!(
            natives,
            [
                None,
                None,
                Some(NativeFunction::AutoReady),
                Some(NativeFunction::AutoReady)
            ]
        );
        assert!(p.has_remote_steps());
    }

    #[test]
    fn malformed_steps_are_one_error_naming_the_field() {
        let rows = [
            (
                json!([{"functionRef": {"name": "f"}}]),
                "spec.pipeline[0].step: required string",
            ),
            (
                json!([{"step": "a"}]),
                "spec.pipeline[0].functionRef.name: required string",
            ),
            (
                json!([{"step": "a", "functionRef": {"name": "f"}}, {"step": "a", "functionRef": {"name": "g"}}]),
                "spec.pipeline[1].step: duplicate step name \"a\"",
            ),
            (
                json!([{"step": "a", "functionRef": {"name": "f"}, "input": "x"}]),
                "spec.pipeline[0].input: must be an object",
            ),
            (
                json!([{"step": "a", "functionRef": {"name": "f"}, "credentials": [{"name": "c", "source": "None"}]}]),
                "spec.pipeline[0].credentials[0].source: only Secret is supported",
            ),
        ];
        for (steps, want) in rows {
            let err = Pipeline::load(&doc(steps), &BTreeMap::new()).unwrap_err();
            assert_eq!(err.message, want);
            assert_eq!(err.location, "test.yaml (document 1, Composition/c)");
        }
    }

    #[test]
    fn a_patch_and_transform_step_composes_every_detail_so_far_into_a_v2_connection_secret() {
        let d = doc(json!([
            {"step": "earlier", "functionRef": {"name": "function-python"}},
            {"step": "pt", "functionRef": {"name": "function-patch-and-transform"},
             "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources",
                "writeConnectionSecretToRef": {"name": "app-conn"},
                "resources": [{"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"},
                    "connectionDetails": [{"name": "port", "value": "8080"}]}]}},
        ]));
        let mut p = Pipeline::load(&d, &BTreeMap::new()).unwrap().unwrap();
        p.compile_native_steps().unwrap();
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XApp",
            "metadata": {"name": "web", "namespace": "team-a"}, "spec": {"crossplane": {}}});
        let observed = ObservedResources::from([(
            "cm".to_owned(),
            crate::render::Observed {
                resource: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "web-cm", "namespace": "team-a"}}),
                connection_details: Default::default(),
            },
        )]);
        let mut desired = DesiredState::default();
        // What the earlier (remote) step set on the XR.
        desired
            .composite_connection_details
            .insert("token".into(), b"t0".to_vec());
        let obs = Observed {
            composite: &xr,
            resources: &observed,
        };
        run_patch_and_transform(&p, &p.steps[1], obs, None, &mut desired).unwrap();
        let secret = &desired.resources[crate::compile::CONNECTION_SECRET_RESOURCE];
        assert_eq!(secret.ready, Ready::True);
        assert_eq!(secret.resource["metadata"]["name"], "app-conn");
        assert_eq!(
            secret.resource["data"],
            json!({"port": "ODA4MA==", "token": "dDA="}),
            "this step's details and the earlier step's"
        );
    }

    #[test]
    fn a_resources_mode_composition_is_not_a_pipeline() {
        let mut d = doc(json!([]));
        d.value["spec"].as_object_mut().unwrap().remove("mode");
        assert!(Pipeline::load(&d, &BTreeMap::new()).unwrap().is_none());
    }

    #[test]
    fn finish_stamps_a_namespaced_composites_resources_and_refuses_another_namespace() {
        let xr = json!({"apiVersion": "example.org/v1", "kind": "App",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "u"}});
        let observed = ObservedResources::new();
        let mut desired = DesiredState::default();
        desired.resources.insert(
            "cm".into(),
            DesiredComposed {
                resource: json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                ..Default::default()
            },
        );
        let obs = Observed {
            composite: &xr,
            resources: &observed,
        };
        let out = finish(obs, &desired, &[]).unwrap();
        let meta = &out.resources[0].1["metadata"];
        assert_eq!(meta["name"], "web-cm");
        assert_eq!(meta["namespace"], "team-a");
        assert_eq!(meta["labels"][wire::LABEL_COMPOSITE], "web");
        assert_eq!(meta["annotations"][wire::ANNOTATION_RESOURCE_NAME], "cm");
        assert_eq!(meta["ownerReferences"][0]["uid"], "u");
        desired.resources[0].resource["metadata"] = json!({"namespace": "team-b"});
        let err = finish(obs, &desired, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource `cm`: metadata.namespace: \"team-b\" is not the namespace of the composite resource (\"team-a\")"
        );
    }
}
