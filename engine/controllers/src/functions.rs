//! Function pipelines on the live control plane.
//!
//! A Composition revision composes either natively (a compiled `mode: Resources` form, rendered
//! by [`strata_core::render`]) or through a function pipeline kept as written
//! (`spec.pipeline`, a step Strata does not run in-process): `Composer` is that choice, made
//! once per revision. A pipeline runs with the same runner as `strata render`
//! ([`strata_functions::run::run_pipeline`]): native steps in-process, every other step called
//! over gRPC at the endpoint the operator configured for its Function ([`FunctionSettings`]),
//! with the TTL response cache in front. Its outcome is turned into the [`RenderOutput`] the XR
//! controller applies, so applying, pruning, readiness and connection details are one code path
//! for both; what only pipelines have (step results, function conditions, the TTL, the graph
//! edges) travels beside it in `PipelineOutcome`.
//!
//! Steps are native by their Function's package (the `pkg.crossplane.io` Functions
//! the `package` controller sees), or without a Function object by their input kind (and auto-ready by
//! its name), as `strata render` decides.
//! Required resources are read live from the API server, required schemas from the CRD that
//! serves the kind. A step's `credentials` are read from their Secrets for each run and never
//! logged.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Map, Value, json};
use strata_core::compile::CompiledComposition;
use strata_core::connection::ConnectionDetails;
use strata_core::load::SourcedValue;
use strata_core::model::CompositionSpec;
use strata_core::pipeline::{self, Pipeline, Ready};
use strata_core::readiness::Readiness;
use strata_core::render::{DesiredResource, ObservedResources, RenderOutput, Withheld};
use strata_core::wire;
use strata_functions::cache::Cached;
use strata_functions::proto;
use strata_functions::run::{
    FunctionCondition, PipelineError, PipelineInputs, RequiredResources, Severity, StepResult,
    run_pipeline,
};
use strata_functions::transport::{CallError, FunctionEndpoint, GrpcFunctions};
use strata_schema::pointer::Pointer;

use crate::kinds::Kinds;

/// Where the operator's functions are reached, from start-up configuration only: an API object
/// can name a Function but never make Strata dial an address or start a process.
#[derive(Clone, Debug)]
pub struct FunctionSettings {
    /// By Function name (`functionRef.name` of a step).
    pub endpoints: BTreeMap<String, FunctionEndpoint>,
    /// How long one call may take, connecting included.
    pub timeout: Duration,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self {
            endpoints: BTreeMap::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// How many responses the TTL cache keeps.
const CACHE_CAPACITY: usize = 4096;

/// The function runner the XR controllers share.
pub(crate) struct Functions {
    runner: Cached<GrpcFunctions>,
}

impl Functions {
    pub(crate) fn new(settings: &FunctionSettings) -> Result<Self, CallError> {
        let grpc = GrpcFunctions::new(settings.endpoints.clone(), settings.timeout)?;
        Ok(Self {
            runner: Cached::new(grpc, CACHE_CAPACITY),
        })
    }
}

/// How one Composition revision composes.
#[derive(Debug)]
pub(crate) enum Composer {
    Native(Box<CompiledComposition>),
    Pipeline(Pipeline),
}

impl Composer {
    /// Compiles a revision's Composition: its pipeline when it keeps one, else its resources.
    /// A step is native by its Function's package (`packages`, by Function name), else by its
    /// input kind.
    pub(crate) fn compile(
        name: &str,
        spec: &CompositionSpec,
        packages: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        if spec.pipeline.is_empty() {
            return CompiledComposition::compile(spec)
                .map(|c| Composer::Native(Box::new(c)))
                .map_err(|e| e.to_string());
        }
        let doc = SourcedValue {
            source: format!("Composition {name}"),
            document: 1,
            value: json!({
                "apiVersion": format!("{}/v1", wire::CROSSPLANE_GROUP_APIEXTENSIONS),
                "kind": "Composition",
                "metadata": {"name": name},
                "spec": {
                    "compositeTypeRef": spec.composite_type_ref,
                    "mode": "Pipeline",
                    "pipeline": spec.pipeline,
                },
            }),
        };
        let mut pipeline = Pipeline::load(&doc, packages)
            .map_err(|e| e.message)?
            .ok_or_else(|| "spec.pipeline: not a pipeline".to_owned())?;
        pipeline.compile_native_steps().map_err(|e| e.to_string())?;
        Ok(Composer::Pipeline(pipeline))
    }

    /// The deletion waves (template names, dependents first) a native Composition gives;
    /// `None` for a pipeline, whose graph is recorded on the composed resources instead.
    pub(crate) fn deletion_waves(&self) -> Option<Vec<Vec<String>>> {
        let Composer::Native(c) = self else {
            return None;
        };
        Some(
            c.graph
                .deletion_waves()
                .iter()
                .map(|w| w.iter().map(|i| c.resources[*i].name.clone()).collect())
                .collect(),
        )
    }

    /// How many render rounds one pass may take at most.
    pub(crate) fn round_bound(&self) -> usize {
        match self {
            Composer::Native(c) => c.resources.len(),
            // Every step may release at most what it produced; the graph is known after a run.
            Composer::Pipeline(p) => p.steps.len().max(1) * 4,
        }
    }
}

/// What a pipeline run gives the XR controller.
pub(crate) struct PipelineOutcome {
    pub(crate) output: RenderOutput,
    pub(crate) results: Vec<StepResult>,
    /// The shortest TTL a function asked for: the XR is looked at again by then.
    pub(crate) ttl: Option<Duration>,
}

/// How many results are kept in the XR's status, and how long a message may be there.
pub(crate) const MAX_KEPT_RESULTS: usize = 16;
const MAX_RESULT_MESSAGE: usize = 1024;

/// Runs the pipeline for one XR.
pub(crate) async fn run(
    functions: &Functions,
    kinds: &Kinds,
    pipeline: &Pipeline,
    composite: &Value,
    observed: &ObservedResources,
    environment: Option<&Value>,
) -> Result<PipelineOutcome, PipelineError> {
    let secrets = read_credentials(kinds, pipeline)
        .await
        .map_err(|(step, message)| PipelineError::Input {
            function: pipeline
                .steps
                .iter()
                .find(|s| s.name == step)
                .map(|s| s.function.clone())
                .unwrap_or_default(),
            step,
            message,
        })?;
    let required = LiveResources {
        kinds,
        namespace: composite
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let run = run_pipeline(
        pipeline,
        &functions.runner,
        PipelineInputs {
            observed: pipeline::Observed {
                composite,
                resources: observed,
            },
            environment,
            context: Map::new(),
            secrets: &secrets,
            required: &required,
        },
    )
    .await?;
    let f = run.finished;
    let mut predecessors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (before, after) in &f.edges {
        predecessors.entry(after).or_default().push(before);
    }
    let resources = f
        .resources
        .iter()
        .enumerate()
        .map(|(index, (name, resource, ready))| {
            let mut resource = resource.clone();
            record_dependencies(&mut resource, predecessors.get(name.as_str()));
            DesiredResource {
                name: name.clone(),
                index,
                resource,
                readiness: if *ready == Ready::True {
                    Readiness::Ready
                } else {
                    Readiness::NotReady
                },
            }
        })
        .collect();
    let mut composite_status = f.composite_status;
    add_conditions(&mut composite_status, &run.conditions);
    let output = RenderOutput {
        composite_status,
        resources,
        withheld: f
            .withheld
            .into_iter()
            .map(|w| Withheld {
                reason: format!("waiting for {} to be Ready", w.waiting_for.join(", ")),
                required: None,
                name: w.name,
            })
            .collect(),
        skipped: Vec::new(),
        unready: f.unready,
        connection_details: f.connection_details,
        environment: json!({}),
        warnings: run.warnings,
    };
    Ok(PipelineOutcome {
        output,
        results: run.results,
        ttl: run.ttl,
    })
}

/// Records a composed resource's predecessors in the graph on it
/// (`strata.dev/depends-on: a,b`), so deletion runs in reverse order from the objects alone,
/// without running the pipeline again.
fn record_dependencies(resource: &mut Value, predecessors: Option<&Vec<&str>>) {
    let Some(preds) = predecessors.filter(|p| !p.is_empty()) else {
        return;
    };
    let Some(meta) = resource.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(a) = annotations {
        let mut preds = preds.clone();
        preds.sort_unstable();
        preds.dedup();
        a.insert(wire::ANNOTATION_DEPENDS_ON.into(), json!(preds.join(",")));
    }
}

/// Functions' conditions join the XR's status conditions (Crossplane sets them on the XR).
fn add_conditions(status: &mut Value, conditions: &[FunctionCondition]) {
    if conditions.is_empty() {
        return;
    }
    let Some(o) = status.as_object_mut() else {
        return;
    };
    let list = o.entry("conditions").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for c in conditions {
        list.retain(|existing| existing.get("type").and_then(Value::as_str) != Some(&c.kind));
        let mut v = json!({"type": c.kind, "status": c.status, "reason": c.reason});
        if let (Some(m), Some(o)) = (&c.message, v.as_object_mut()) {
            o.insert("message".into(), json!(m));
        }
        list.push(v);
    }
}

/// The results kept in the XR's status (`status.functionResults`): the newest
/// [`MAX_KEPT_RESULTS`], messages cut at 1 KiB, so a failure stays visible after its event.
pub(crate) fn kept_results(results: &[StepResult]) -> Value {
    let skip = results.len().saturating_sub(MAX_KEPT_RESULTS);
    Value::Array(
        results[skip..]
            .iter()
            .map(|r| {
                let mut message = r.message.clone();
                if message.len() > MAX_RESULT_MESSAGE {
                    let mut cut = MAX_RESULT_MESSAGE;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                    message.push('…');
                }
                let mut v = json!({
                    "step": r.step,
                    "severity": severity(r.severity),
                    "message": message,
                });
                if let (Some(reason), Some(o)) = (&r.reason, v.as_object_mut()) {
                    o.insert("reason".into(), json!(reason));
                }
                v
            })
            .collect(),
    )
}

/// A severity as Kubernetes events and Crossplane's conditions name it.
pub(crate) fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Fatal => "Fatal",
        Severity::Warning => "Warning",
        Severity::Normal => "Normal",
    }
}

/// Reads the Secrets the pipeline's steps take as credentials. An error names the step.
async fn read_credentials(
    kinds: &Kinds,
    pipeline: &Pipeline,
) -> Result<BTreeMap<(String, String), ConnectionDetails>, (String, String)> {
    let mut out = BTreeMap::new();
    for step in &pipeline.steps {
        for c in &step.credentials {
            let key = (c.secret_namespace.clone(), c.secret_name.clone());
            if out.contains_key(&key) {
                continue;
            }
            let api: Api<Secret> = Api::namespaced(kinds.client(), &c.secret_namespace);
            let secret = api.get_opt(&c.secret_name).await.map_err(|e| {
                (
                    step.name.clone(),
                    format!(
                        "credentials {:?}: reading Secret {}/{}: {e}",
                        c.name, c.secret_namespace, c.secret_name
                    ),
                )
            })?;
            // A missing Secret is reported by the runner, naming the step and the credential.
            if let Some(s) = secret {
                let data: ConnectionDetails = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                out.insert(key, data);
            }
        }
    }
    Ok(out)
}

/// Required resources and schemas, read from the API server.
struct LiveResources<'a> {
    kinds: &'a Kinds,
    /// The XR's namespace: a namespaced kind selected without a namespace is looked up there
    /// by name, and across namespaces by labels.
    namespace: Option<String>,
}

impl RequiredResources for LiveResources<'_> {
    async fn select(&self, selector: &proto::ResourceSelector) -> Result<Vec<Value>, String> {
        let kind = self
            .kinds
            .resolve(&selector.api_version, &selector.kind)
            .await
            .map_err(|e| e.to_string())?;
        let client = self.kinds.client();
        let namespace = selector
            .namespace
            .clone()
            .or_else(|| self.namespace.clone());
        let api: Api<DynamicObject> = match (kind.namespaced, &namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, &kind.resource),
            _ => Api::all_with(client, &kind.resource),
        };
        let to_value = |o: DynamicObject| serde_json::to_value(o).map_err(|e| e.to_string());
        match &selector.r#match {
            Some(proto::resource_selector::Match::MatchName(name)) => {
                match api.get_opt(name).await.map_err(|e| e.to_string())? {
                    Some(o) => Ok(vec![to_value(o)?]),
                    None => Ok(Vec::new()),
                }
            }
            Some(proto::resource_selector::Match::MatchLabels(m)) => {
                let api: Api<DynamicObject> = match (kind.namespaced, &selector.namespace) {
                    (true, Some(ns)) => {
                        Api::namespaced_with(self.kinds.client(), ns, &kind.resource)
                    }
                    _ => Api::all_with(self.kinds.client(), &kind.resource),
                };
                let labels: Vec<String> =
                    m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let list = api
                    .list(&ListParams::default().labels(&labels.join(",")))
                    .await
                    .map_err(|e| e.to_string())?;
                list.items.into_iter().map(to_value).collect()
            }
            None => Err("a selector needs matchName or matchLabels".to_owned()),
        }
    }

    async fn schema(&self, api_version: &str, kind: &str) -> Result<Option<Value>, String> {
        let Ok(resolved) = self.kinds.resolve(api_version, kind).await else {
            return Ok(None);
        };
        let r = &resolved.resource;
        if r.group.is_empty() {
            return Ok(None);
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.kinds.client());
        let Some(crd) = crds
            .get_opt(&format!("{}.{}", r.plural, r.group))
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        Ok(crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == r.version)
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok()))
    }
}

/// The template names of composed resources in deletion waves (dependents first), from the
/// predecessors each one recorded (`strata.dev/depends-on`). Unknown names are ignored; a cycle
/// (only possible by hand-edited annotations) puts the rest in one last wave.
pub(crate) fn waves_from_dependencies(recorded: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let names: Vec<&str> = recorded.iter().map(|(n, _)| n.as_str()).collect();
    let mut remaining: Vec<&str> = names.clone();
    let mut waves = Vec::new();
    while !remaining.is_empty() {
        // Deletable now: nothing remaining depends on it.
        let wave: Vec<&str> = remaining
            .iter()
            .copied()
            .filter(|n| {
                !recorded.iter().any(|(other, preds)| {
                    remaining.contains(&other.as_str())
                        && other != n
                        && preds.iter().any(|p| p == n)
                })
            })
            .collect();
        if wave.is_empty() {
            waves.push(remaining.iter().map(|s| (*s).to_owned()).collect());
            break;
        }
        remaining.retain(|n| !wave.contains(n));
        waves.push(wave.into_iter().map(str::to_owned).collect());
    }
    waves
}

/// The predecessors a composed object recorded.
pub(crate) fn recorded_dependencies(object: &DynamicObject) -> Vec<String> {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(wire::ANNOTATION_DEPENDS_ON))
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn rec(name: &str, preds: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            preds.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    #[test]
    fn deletion_waves_remove_dependents_before_what_they_depend_on() {
        let waves = waves_from_dependencies(&[
            rec("network", &[]),
            rec("subnet", &["network"]),
            rec("db", &["subnet", "network"]),
            rec("bucket", &[]),
        ]);
        assert_eq!(
            waves,
            vec![vec!["db", "bucket"], vec!["subnet"], vec!["network"]]
        );
    }

    #[test]
    fn a_recorded_cycle_ends_in_one_last_wave() {
        let waves = waves_from_dependencies(&[rec("a", &["b"]), rec("b", &["a"]), rec("c", &[])]);
        assert_eq!(waves, vec![vec!["c"], vec!["a", "b"]]);
    }

    #[test]
    fn kept_results_are_the_newest_with_long_messages_cut() {
        let results: Vec<StepResult> = (0..20)
            .map(|i| StepResult {
                step: format!("s{i}"),
                severity: Severity::Warning,
                reason: (i == 19).then(|| "Slow".to_owned()),
                message: if i == 19 {
                    "é".repeat(1000)
                } else {
                    "m".to_owned()
                },
                claim: false,
            })
            .collect();
        let kept = kept_results(&results);
        let kept = kept.as_array().unwrap();
        assert_eq!(kept.len(), MAX_KEPT_RESULTS);
        assert_eq!(kept[0]["step"], "s4");
        assert_eq!(kept[15]["reason"], "Slow");
        assert_eq!(kept[15]["severity"], "Warning");
        let m = kept[15]["message"].as_str().unwrap();
        assert!(
            m.len() <= MAX_RESULT_MESSAGE + 3 && m.ends_with('…'),
            "{}",
            m.len()
        );
    }

    #[test]
    fn function_conditions_replace_the_same_type() {
        let mut status = json!({"conditions": [{"type": "DatabaseReady", "status": "False"}]});
        add_conditions(
            &mut status,
            &[FunctionCondition {
                kind: "DatabaseReady".into(),
                status: "True",
                reason: "Available".into(),
                message: Some("up".into()),
                claim: false,
            }],
        );
        assert_eq!(
            status["conditions"],
            json!([{"type": "DatabaseReady", "status": "True", "reason": "Available", "message": "up"}])
        );
    }

    #[test]
    fn a_pipeline_revision_compiles_to_a_pipeline_and_names_a_bad_step() {
        let spec: CompositionSpec = serde_json::from_value(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDB"},
            "mode": "Pipeline",
            "resources": [],
            "pipeline": [
                {"step": "py", "functionRef": {"name": "function-pythonic"},
                 "input": {"apiVersion": "pythonic.fn.crossplane.io/v1alpha1", "kind": "Composite"}},
                {"step": "ready", "functionRef": {"name": "function-auto-ready"}},
            ],
        }))
        .unwrap();
        let Composer::Pipeline(p) = Composer::compile("c", &spec, &BTreeMap::new()).unwrap() else {
            panic!("a pipeline")
        };
        assert_eq!(p.steps.len(), 2);
        assert!(p.has_remote_steps());
        let mut bad = spec.clone();
        bad.pipeline[1] = json!({"step": "ready"});
        let e = Composer::compile("c", &bad, &BTreeMap::new()).unwrap_err();
        // A Function named otherwise runs in-process by its package.
        let mut renamed = spec.clone();
        renamed.pipeline[1] = json!({"step": "ready", "functionRef": {"name": "ready"}});
        let packages = BTreeMap::from([(
            "ready".to_owned(),
            "registry.example/crossplane-contrib/function-auto-ready:v0.5.0".to_owned(),
        )]);
        let Composer::Pipeline(p) = Composer::compile("c", &renamed, &packages).unwrap() else {
            panic!("a pipeline")
        };
        assert_eq!(
            p.steps[1].native,
            Some(strata_core::pipeline::NativeFunction::AutoReady)
        );
        assert!(e.contains("spec.pipeline[1].functionRef.name"), "{e}");
    }
}
