//! `strata render`: one XR (or, with its XRD, a claim) + one Composition (+ observed resources,
//! environment, XRD) → the desired state as a YAML stream, computed in-process by the same
//! `render` the controllers use.
//!
//! Exit codes: 0 success; 1 render error, an XR or claim its XRD refuses, or an environment the
//! Composition's step cannot assemble; 2 bad usage or unparseable input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use strata_core::compile::CompiledComposition;
use strata_core::connection::ConnectionDetails;
use strata_core::definition::{self, Definition, Role, object_name};
use strata_core::environment;
use strata_core::load::{self, Document};
use strata_core::model::{EnvironmentSpec, TypeReference};
use strata_core::position;
use strata_core::render::{Observed, ObservedResources, RenderInput, render};
use strata_core::wire;

use crate::input::{read_documents, read_text};

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The composite resource (XR), a YAML or JSON file.
    pub(crate) composite: PathBuf,
    /// The Composition (Strata or Crossplane format).
    pub(crate) composition: PathBuf,
    /// The Functions a pipeline's steps call (`pkg.crossplane.io` Function objects, as for
    /// `crossplane render`). Not needed when every step is native.
    pub(crate) functions: Option<PathBuf>,
    /// Observed composed resources (file or directory), matched to templates by the
    /// `strata.dev/composition-resource-name` (or `crossplane.io/...`) annotation. Secrets in it
    /// are used as the connection secrets of resources whose `writeConnectionSecretToRef` names them.
    #[arg(long = "observed-resources", short = 'r')]
    pub(crate) observed_resources: Option<PathBuf>,
    /// Environment data: plain YAML objects (merged in order), and EnvironmentConfigs, of which
    /// the Composition's environment step selects (as the controller does); without a selection
    /// every EnvironmentConfig given is merged in order.
    #[arg(long, short = 'e')]
    pub(crate) environment: Option<PathBuf>,
    /// The XRD of the XR: the XR is admitted as the API server would (pruned, defaulted,
    /// validated; refused with exit 1), and a claim is bound to the XR it becomes.
    #[arg(long)]
    pub(crate) xrd: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Yaml)]
    pub(crate) output: Format,
    /// Also print the XR's connection details as a Secret (values base64-encoded).
    #[arg(long)]
    pub(crate) include_connection_details: bool,
    #[command(flatten)]
    pub(crate) function_args: crate::render_functions::FunctionArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// Input problems exit 2; an XR (or claim) its XRD refuses and render problems exit 1.
pub fn run(args: RenderArgs) -> Result<ExitCode> {
    match crate::render_functions::try_run(&args) {
        Ok(Some(code)) => return Ok(code),
        Ok(None) => {}
        Err(e) if e.is::<Refused>() => return Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    }
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(e) if e.is::<Refused>() => return Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let compiled = match CompiledComposition::compile(&prepared.composition) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", args.composition.display());
            return Ok(ExitCode::from(1));
        }
    };
    let environment = match &prepared.environment {
        None => None,
        Some(input) => match resolve_environment(
            input,
            &prepared.composite,
            prepared.composition.environment.as_ref(),
        ) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: environment: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let output = match render(
        &compiled,
        RenderInput {
            composite: &prepared.composite,
            observed: &prepared.observed,
            environment: environment.as_ref(),
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &output.warnings {
        eprintln!("warning: {w}");
    }
    let secret = args
        .include_connection_details
        .then(|| connection_secret(&prepared.composite, &output.connection_details));
    let mut docs: Vec<Doc<'_>> = Vec::with_capacity(output.resources.len() + 2);
    docs.push(Doc::Composite(output.composite(&prepared.composite)));
    docs.extend(output.resources.iter().map(|r| Doc::Value(&r.resource)));
    docs.extend(secret.as_ref().map(Doc::Value));
    print!("{}", format_documents(&docs, args.output)?);
    Ok(ExitCode::SUCCESS)
}

struct Prepared {
    composite: Value,
    composition: strata_core::model::CompositionSpec,
    observed: ObservedResources,
    environment: Option<EnvironmentInput>,
}

/// The XR (or claim) was refused by its XRD's schema; the findings are already printed.
#[derive(Debug)]
pub(crate) struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by its XRD")
    }
}

impl std::error::Error for Refused {}

fn prepare(args: &RenderArgs) -> Result<Prepared> {
    let object = single_object(&args.composite)?;
    let text = read_text(&args.composition)?;
    let (composition, ignored) =
        load::composition_from_str(&text, &args.composition.display().to_string())?;
    for warning in ignored {
        eprintln!("warning: {warning}");
    }
    let composition = composition.spec;
    let inputs = prepare_inputs(args, object, &composition.composite_type_ref)?;
    Ok(Prepared {
        composite: inputs.composite,
        composition,
        observed: inputs.observed,
        environment: inputs.environment,
    })
}

/// What a render reads besides the Composition.
pub(crate) struct Inputs {
    pub(crate) composite: Value,
    pub(crate) observed: ObservedResources,
    pub(crate) environment: Option<EnvironmentInput>,
}

/// The XR (admitted to its XRD, a claim bound to its XR), the observed resources and the
/// environment as given, for a Composition of `composite_type`.
pub(crate) fn prepare_inputs(
    args: &RenderArgs,
    object: Value,
    composite_type: &TypeReference,
) -> Result<Inputs> {
    let composite = match &args.xrd {
        Some(path) => admit_composite(path, &args.composite, &object)?,
        None => {
            refuse_claim_without_xrd(&args.composite, &object, composite_type)?;
            object
        }
    };
    let observed = match &args.observed_resources {
        Some(p) => observed_resources(p)?,
        None => ObservedResources::new(),
    };
    let environment = match &args.environment {
        Some(p) => Some(environment_input(p)?),
        None => None,
    };
    Ok(Inputs {
        composite,
        observed,
        environment,
    })
}

pub(crate) fn single_object(path: &Path) -> Result<Value> {
    let mut docs = read_documents(path)?;
    match docs.len() {
        1 => Ok(docs.remove(0).value),
        0 => bail!("{}: no object found", path.display()),
        n => bail!(
            "{}: expected one composite resource, found {n} documents",
            path.display()
        ),
    }
}

/// Without an XRD a claim cannot be bound: an object of the composite type's group but of
/// another kind is most likely a claim, and rendering it needs `--xrd`.
fn refuse_claim_without_xrd(path: &Path, object: &Value, composite: &TypeReference) -> Result<()> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if group == composite.group() && kind != composite.kind {
        bail!(
            "{}: {} is not the Composition's composite type {} {}; a claim is rendered as the XR \
             it becomes, which needs its XRD: pass it with --xrd",
            path.display(),
            object_name(object),
            composite.api_version,
            composite.kind
        );
    }
    Ok(())
}

/// Admits the object to its XRD as the API server would (prune, default, validate; the same
/// checks and messages as `strata validate`), and binds a claim to the XR it becomes. Findings
/// are printed; errors refuse the render.
fn admit_composite(xrd_path: &Path, path: &Path, object: &Value) -> Result<Value> {
    let mut definitions = Vec::new();
    for doc in &read_documents(xrd_path)? {
        let Document::Xrd(xrd) = load::classify(doc)? else {
            continue;
        };
        let (defined, problems) = definition::definitions(&xrd);
        if let Some(problem) = problems.first() {
            bail!("{}: {}: {}", doc.location(), problem.field, problem.message);
        }
        definitions.extend(defined);
    }
    // Findings about the object as written carry its line, as `strata validate` prints them;
    // findings about a claim's XR (derived, not in the file) carry none.
    let text = read_text(path)?;
    let admitted = |definition: &Definition, object: &Value, in_file: bool| -> Result<Value> {
        let admission = definition::admit(definition, object);
        for finding in &admission.findings {
            let line = in_file
                .then(|| position::line_of(&text, 1, &finding.field))
                .flatten()
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            eprintln!("{}: {}{line}: {finding}", finding.severity, path.display());
        }
        if admission.is_admitted() {
            Ok(admission.object)
        } else {
            Err(Refused.into())
        }
    };
    let Some(defined) = definition::find(&definitions, object) else {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        bail!(
            "{}: no XRD defines {api_version} {kind}",
            xrd_path.display()
        )
    };
    let admitted_object = admitted(defined, object, true)?;
    match &defined.role {
        Role::Composite => Ok(admitted_object),
        Role::Claim { composite } => {
            let xr = definition::composite_for_claim(&admitted_object, composite)
                .with_context(|| path.display().to_string())?;
            let Some(xr_definition) = definition::find(&definitions, &xr) else {
                bail!(
                    "{}: no XRD defines {} {}",
                    xrd_path.display(),
                    composite.api_version,
                    composite.kind
                )
            };
            admitted(xr_definition, &xr, false)
        }
    }
}

fn template_name(object: &Value) -> Option<&str> {
    let annotations = object.pointer("/metadata/annotations")?;
    annotations
        .get(wire::ANNOTATION_RESOURCE_NAME)
        .or_else(|| annotations.get(wire::CROSSPLANE_ANNOTATION_RESOURCE_NAME))
        .and_then(Value::as_str)
}

fn observed_resources(path: &Path) -> Result<ObservedResources> {
    let docs = read_documents(path)?;
    let mut secrets: BTreeMap<(String, String), ConnectionDetails> = BTreeMap::new();
    for doc in &docs {
        let v = &doc.value;
        if v.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && v.get("kind").and_then(Value::as_str) == Some("Secret")
        {
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let namespace = v
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            secrets.insert(
                (namespace, name),
                secret_data(v).with_context(|| doc.location())?,
            );
        }
    }
    let mut out = ObservedResources::new();
    for doc in &docs {
        let Some(name) = template_name(&doc.value) else {
            continue;
        };
        let connection_details = match doc.value.pointer("/spec/writeConnectionSecretToRef") {
            Some(r) => {
                let name = r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let namespace = r
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                secrets.get(&(namespace, name)).cloned().unwrap_or_default()
            }
            None => ConnectionDetails::new(),
        };
        if out
            .insert(
                name.to_owned(),
                Observed {
                    resource: doc.value.clone(),
                    connection_details,
                },
            )
            .is_some()
        {
            bail!(
                "{}: two observed resources claim template {name:?}",
                doc.location()
            );
        }
    }
    Ok(out)
}

pub(crate) fn secret_data(secret: &Value) -> Result<ConnectionDetails> {
    let mut out = ConnectionDetails::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let s = v
                .as_str()
                .with_context(|| format!("data.{k}: expected a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .with_context(|| format!("data.{k}: invalid base64"))?;
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            let s = v
                .as_str()
                .with_context(|| format!("stringData.{k}: expected a string"))?;
            out.insert(k.clone(), s.as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// What `--environment` holds: EnvironmentConfigs to select from, and plain objects (data).
#[derive(Default)]
pub(crate) struct EnvironmentInput {
    configs: Vec<environment::Config>,
    /// Plain objects merged in order: the environment as given.
    plain: Option<Value>,
}

fn environment_input(path: &Path) -> Result<EnvironmentInput> {
    let docs = read_documents(path)?;
    let mut input = EnvironmentInput::default();
    for doc in &docs {
        match load::classify(doc)? {
            Document::EnvironmentConfig(e) => input.configs.push(environment::Config {
                name: e.metadata.name.clone().unwrap_or_default(),
                labels: e.metadata.labels.clone().unwrap_or_default(),
                data: e.data,
            }),
            Document::Object(v) if v.get("kind").is_none() => {
                if !v.is_null() {
                    input.plain = Some(
                        strata_core::patch::merge(input.plain.take(), v, false, false)
                            .map_err(anyhow::Error::msg)?,
                    );
                }
            }
            Document::Object(_) | Document::Xrd(_) | Document::Composition(_) => {
                bail!(
                    "{}: expected an EnvironmentConfig or a plain object",
                    doc.location()
                )
            }
        }
    }
    Ok(input)
}

/// The environment of the render: the plain objects given, then the EnvironmentConfigs the
/// Composition's environment step selects, as function-environment-configs does (the same
/// selection as the XR controller's); without a selection (no sources in the Composition, no
/// `spec.environmentConfigRefs` on the XR) every config given is merged in order.
pub(crate) fn resolve_environment(
    input: &EnvironmentInput,
    composite: &Value,
    spec: Option<&EnvironmentSpec>,
) -> Result<Option<Value>, environment::EnvironmentError> {
    let xr_refs = environment::xr_config_refs(composite);
    let selects = spec.is_some_and(|e| !e.environment_configs.is_empty()) || !xr_refs.is_empty();
    let selected = if selects {
        environment::resolve(composite, &xr_refs, spec, &input.configs)?
    } else {
        let names: Vec<String> = input.configs.iter().map(|c| c.name.clone()).collect();
        environment::merge(&names, &input.configs)?
    };
    Ok(match (input.plain.clone(), selected) {
        (None, None) => None,
        (Some(p), None) => Some(p),
        (None, Some(s)) => Some(s),
        (Some(p), Some(s)) => Some(strata_core::patch::merge(Some(p), s, false, false).map_err(
            |message| environment::EnvironmentError::Merge {
                name: "(plain objects)".into(),
                message,
            },
        )?),
    })
}

pub(crate) fn connection_secret(composite: &Value, details: &ConnectionDetails) -> Value {
    let reference = composite.pointer("/spec/writeConnectionSecretToRef");
    let xr_name = composite
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("composite");
    let name = reference
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("{xr_name}-connection"), str::to_owned);
    let mut metadata = json!({ "name": name });
    if let Some(ns) = reference
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
    {
        metadata["namespace"] = Value::String(ns.to_owned());
    }
    let data: serde_json::Map<String, Value> = details
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "connection.strata.dev/v1alpha1", "data": data})
}

/// One printed document, borrowed.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Doc<'a> {
    /// The XR with its new status.
    Composite(strata_core::render::Composite<'a>),
    Value(&'a Value),
}

/// A JSON `v1/List`, keys in the order `json!` would sort them.
#[derive(serde::Serialize)]
struct List<'a, T> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    items: &'a [T],
    kind: &'static str,
}

/// A YAML stream (`---` before every document) or a JSON `v1/List`.
pub fn format_documents<T: serde::Serialize>(docs: &[T], format: Format) -> Result<String> {
    match format {
        Format::Yaml => {
            let mut out = String::new();
            for doc in docs {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(doc)?);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Ok(out)
        }
        Format::Json => {
            let list = List {
                api_version: "v1",
                items: docs,
                kind: "List",
            };
            Ok(format!("{}\n", serde_json::to_string_pretty(&list)?))
        }
    }
}
