//! `strata render` of a function pipeline: the Composition's steps run through
//! [`strata_functions::run::run_pipeline`] (native steps in-process, every other function called
//! over gRPC), exactly the runner the controllers use.
//!
//! As `crossplane render`: the functions file holds `pkg.crossplane.io` Function objects; a
//! Function annotated `render.crossplane.io/runtime: Development` is dialled at
//! `render.crossplane.io/runtime-development-target` (default `localhost:9443`) without TLS, as a
//! function started with `--insecure` serves. Strata never starts a container or a process for
//! a render. A Composition whose steps are all native renders without a functions file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use strata_core::connection::ConnectionDetails;
use strata_core::load;
use strata_core::pipeline::{Observed, Pipeline};
use strata_functions::run::{
    PipelineError, PipelineInputs, PipelineRun, StaticResources, run_pipeline,
};
use strata_functions::transport::{FunctionEndpoint, GrpcFunctions, ProtocolVersion};

use crate::input::{read_documents, read_text};
use crate::render::{self, RenderArgs};

const ANNOTATION_RUNTIME: &str = "render.crossplane.io/runtime";
const ANNOTATION_TARGET: &str = "render.crossplane.io/runtime-development-target";
const DEFAULT_TARGET: &str = "localhost:9443";

/// Flags of `strata render` that only function pipelines read.
#[derive(clap::Args, Debug)]
pub struct FunctionArgs {
    /// Resources a function may require (`--required-resources`; `--extra-resources` is the
    /// older name): a file or directory of objects matched against each requirement.
    #[arg(long = "required-resources", visible_alias = "extra-resources")]
    pub required_resources: Option<PathBuf>,
    /// Context the first step starts with: `KEY=FILE` (a JSON or YAML value), repeatable.
    #[arg(long = "context-files", value_delimiter = ',')]
    pub context_files: Vec<String>,
    /// Context the first step starts with: `KEY=JSON`, repeatable.
    #[arg(long = "context-values", value_delimiter = ',')]
    pub context_values: Vec<String>,
    /// Secrets that steps' `credentials` name: a file or directory of v1 Secrets.
    #[arg(long = "function-credentials")]
    pub function_credentials: Option<PathBuf>,
    /// Print each step's results as `render.crossplane.io/v1beta1 Result` documents.
    #[arg(long = "include-function-results")]
    pub include_function_results: bool,
    /// Print the context after the last step as a `render.crossplane.io/v1beta1 Context`.
    #[arg(long = "include-context", short = 'c')]
    pub include_context: bool,
    /// Print the whole XR (spec and metadata), not only its apiVersion, kind, name and status.
    #[arg(long = "include-full-xr", short = 'x')]
    pub include_full_xr: bool,
    /// How long a function may take to answer: `30s`, `2m`, `500ms`.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl Default for FunctionArgs {
    fn default() -> Self {
        Self {
            required_resources: None,
            context_files: Vec::new(),
            context_values: Vec::new(),
            function_credentials: None,
            include_function_results: false,
            include_context: false,
            include_full_xr: false,
            timeout: Duration::from_secs(60),
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 30s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A pipeline run of `strata render` (or `strata graph`): its inputs and its outcome.
pub(crate) struct Executed {
    pub(crate) inputs: render::Inputs,
    pub(crate) outcome: Result<PipelineRun, PipelineError>,
}

/// Runs the render when the Composition is a pipeline with a step that needs a function;
/// `None` leaves it to the native render.
pub fn try_run(args: &RenderArgs) -> Result<Option<ExitCode>> {
    let Some(executed) = execute(args)? else {
        return Ok(None);
    };
    Ok(Some(print(args, executed)?))
}

/// Runs the Composition's pipeline when a step needs a function; `None` when every step is
/// native (or the Composition is not a pipeline).
pub(crate) fn execute(args: &RenderArgs) -> Result<Option<Executed>> {
    let text = read_text(&args.composition)?;
    let docs = load::parse_stream(&text, &args.composition.display().to_string())?;
    let Some(doc) = docs
        .iter()
        .find(|d| d.value.get("kind").and_then(Value::as_str) == Some("Composition"))
    else {
        return Ok(None);
    };
    let functions = match &args.functions {
        Some(path) => functions_file(path)?,
        None => BTreeMap::new(),
    };
    let packages = functions
        .iter()
        .map(|(name, f)| (name.clone(), f.package.clone()))
        .collect();
    let Some(mut pipeline) = Pipeline::load(doc, &packages)? else {
        return Ok(None);
    };
    if !pipeline.has_remote_steps() {
        return Ok(None);
    }
    if let Err(e) = pipeline.compile_native_steps() {
        return Ok(Some(Executed {
            inputs: render::prepare_inputs(
                args,
                render::single_object(&args.composite)?,
                &pipeline.composite_type,
            )?,
            outcome: Err(e.into()),
        }));
    }
    let mut endpoints = BTreeMap::new();
    for step in pipeline.steps.iter().filter(|s| s.native.is_none()) {
        let Some(f) = functions.get(&step.function) else {
            bail!(
                "{}: step {:?} uses function {:?}, which is not in the functions file{}",
                doc.location(),
                step.name,
                step.function,
                if args.functions.is_none() {
                    " (give one: strata render XR COMPOSITION FUNCTIONS)"
                } else {
                    ""
                }
            );
        };
        let target = f.target.as_deref().with_context(|| {
            format!(
                "Function {}: runtime {:?} is not supported by strata render (no Docker); run the \
                 function yourself and annotate it {ANNOTATION_RUNTIME}: Development with \
                 {ANNOTATION_TARGET}: HOST:PORT",
                step.function, f.runtime
            )
        })?;
        endpoints.insert(
            step.function.clone(),
            FunctionEndpoint {
                address: target.to_owned(),
                tls: None,
                protocol: ProtocolVersion::V1,
            },
        );
    }
    Ok(Some(run(args, &pipeline, endpoints)?))
}

fn run(
    args: &RenderArgs,
    pipeline: &Pipeline,
    endpoints: BTreeMap<String, FunctionEndpoint>,
) -> Result<Executed> {
    let object = render::single_object(&args.composite)?;
    let prepared = render::prepare_inputs(args, object, &pipeline.composite_type)?;
    // The environment: what function-environment-configs steps select from the configs given
    // (all of them, in order, when nothing selects), on top of their default data.
    let selection = pipeline.environment_selection()?;
    let environment = match &prepared.environment {
        Some(input) => render::resolve_environment(input, &prepared.composite, selection.as_ref())
            .map_err(|e| anyhow::anyhow!("environment: {e}"))?,
        None => None,
    };
    let environment = match (selection.and_then(|s| s.default_data), environment) {
        (Some(d), Some(e)) => Some(
            strata_core::patch::merge(Some(d), e, false, false)
                .map_err(|m| anyhow::anyhow!("environment: {m}"))?,
        ),
        (d, e) => e.or(d),
    };
    let fa = &args.function_args;
    let required = StaticResources {
        resources: match &fa.required_resources {
            Some(p) => read_documents(p)?.into_iter().map(|d| d.value).collect(),
            None => Vec::new(),
        },
        schemas: BTreeMap::new(),
    };
    let secrets = match &fa.function_credentials {
        Some(p) => secrets(p)?,
        None => BTreeMap::new(),
    };
    let context = initial_context(fa)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Channels connect lazily on the runtime they are made in.
    let _entered = runtime.enter();
    let runner = GrpcFunctions::new(endpoints, fa.timeout)?;
    let observed = Observed {
        composite: &prepared.composite,
        resources: &prepared.observed,
    };
    let result = runtime.block_on(run_pipeline(
        pipeline,
        &runner,
        PipelineInputs {
            observed,
            environment: environment.as_ref(),
            context,
            secrets: &secrets,
            required: &required,
        },
    ));
    Ok(Executed {
        inputs: prepared,
        outcome: result,
    })
}

fn print(args: &RenderArgs, executed: Executed) -> Result<ExitCode> {
    let fa = &args.function_args;
    let prepared = executed.inputs;
    let run = match executed.outcome {
        Ok(run) => run,
        Err(e) => {
            if let PipelineError::Fatal { results, .. } = &e {
                for r in results {
                    eprintln!("{}: step {:?}: {}", r.severity.as_str(), r.step, r.message);
                }
            }
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &run.warnings {
        eprintln!("warning: {w}");
    }
    for w in &run.finished.withheld {
        eprintln!(
            "warning: resource {:?} is withheld: waiting for {} to exist and be Ready",
            w.name,
            w.waiting_for.join(", ")
        );
    }
    let mut status =
        strata_core::render::merge_status(&prepared.composite, &run.finished.composite_status);
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in &run.conditions {
            conditions.retain(|x| x.get("type").and_then(Value::as_str) != Some(c.kind.as_str()));
            let mut cond = json!({"type": c.kind, "status": c.status, "reason": c.reason});
            if let Some(m) = &c.message {
                cond["message"] = json!(m);
            }
            conditions.push(cond);
        }
    }
    let composite = composite_doc(&prepared.composite, status, fa.include_full_xr);
    let mut docs: Vec<Value> = Vec::with_capacity(run.finished.resources.len() + 2);
    docs.push(composite);
    docs.extend(run.finished.resources.into_iter().map(|(_, r, _)| r));
    if args.include_connection_details {
        docs.push(render::connection_secret(
            &prepared.composite,
            &run.finished.connection_details,
        ));
    }
    if fa.include_function_results {
        for r in &run.results {
            let mut doc = json!({
                "apiVersion": "render.crossplane.io/v1beta1",
                "kind": "Result",
                "step": r.step,
                "severity": r.severity.as_str(),
                "message": r.message,
            });
            if let Some(reason) = &r.reason {
                doc["reason"] = json!(reason);
            }
            docs.push(doc);
        }
    }
    if fa.include_context {
        docs.push(json!({
            "apiVersion": "render.crossplane.io/v1beta1",
            "kind": "Context",
            "fields": Value::Object(run.context),
        }));
    }
    print!("{}", render::format_documents(&docs, args.output)?);
    Ok(ExitCode::SUCCESS)
}

/// The selection of the pipeline's function-environment-configs steps (their
/// `spec.environmentConfigs` in order, the last step's `policy` and `defaultData`), as the
/// function reads its input; `None` without such a step.
/// The XR as `crossplane render` prints it: identity and status, or everything with
/// `--include-full-xr`.
fn composite_doc(xr: &Value, status: Value, full: bool) -> Value {
    let mut out = if full {
        xr.clone()
    } else {
        let mut meta = Map::new();
        for key in ["name", "namespace"] {
            if let Some(v) = xr.pointer(&format!("/metadata/{key}")) {
                meta.insert(key.to_owned(), v.clone());
            }
        }
        json!({
            "apiVersion": xr.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": xr.get("kind").cloned().unwrap_or(Value::Null),
            "metadata": meta,
        })
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("status".to_owned(), status);
    }
    out
}

/// A Function from the functions file.
struct FunctionEntry {
    package: String,
    runtime: String,
    /// Set for the Development runtime.
    target: Option<String>,
}

fn functions_file(path: &Path) -> Result<BTreeMap<String, FunctionEntry>> {
    let mut out = BTreeMap::new();
    for doc in read_documents(path)? {
        let v = &doc.value;
        let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        if !matches!(api, "pkg.crossplane.io/v1" | "pkg.crossplane.io/v1beta1")
            || kind != "Function"
        {
            bail!(
                "{}: expected a pkg.crossplane.io/v1 Function, found {api} {kind}",
                doc.location()
            );
        }
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .with_context(|| format!("{}: metadata.name: required", doc.location()))?;
        let package = v
            .pointer("/spec/package")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let annotation = |k: &str| {
            v.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
        };
        let runtime = annotation(ANNOTATION_RUNTIME)
            .unwrap_or("Docker")
            .to_owned();
        let target = (runtime == "Development").then(|| {
            annotation(ANNOTATION_TARGET)
                .unwrap_or(DEFAULT_TARGET)
                .to_owned()
        });
        if out
            .insert(
                name.to_owned(),
                FunctionEntry {
                    package,
                    runtime,
                    target,
                },
            )
            .is_some()
        {
            bail!("{}: Function {name:?} is defined twice", doc.location());
        }
    }
    Ok(out)
}

fn secrets(path: &Path) -> Result<BTreeMap<(String, String), ConnectionDetails>> {
    let mut out = BTreeMap::new();
    for doc in read_documents(path)? {
        let v = &doc.value;
        if v.get("kind").and_then(Value::as_str) != Some("Secret") {
            bail!("{}: expected a v1 Secret", doc.location());
        }
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        out.insert(
            (s("/metadata/namespace"), s("/metadata/name")),
            render::secret_data(v).with_context(|| doc.location())?,
        );
    }
    Ok(out)
}

fn initial_context(fa: &FunctionArgs) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for item in &fa.context_files {
        let (key, file) = item
            .split_once('=')
            .with_context(|| format!("--context-files {item:?}: expected KEY=FILE"))?;
        let mut docs = read_documents(Path::new(file))?;
        if docs.len() != 1 {
            bail!("--context-files {key}: {file} must hold exactly one document");
        }
        out.insert(key.to_owned(), docs.remove(0).value);
    }
    for item in &fa.context_values {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--context-values {item:?}: expected KEY=JSON"))?;
        let value: Value = serde_json::from_str(value)
            .with_context(|| format!("--context-values {key}: not JSON"))?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}
