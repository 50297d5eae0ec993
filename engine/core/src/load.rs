//! Loading documents: YAML/JSON streams → typed objects.
//!
//! Accepts Strata's native `apiextensions.strata.dev/v1alpha1` kinds and Crossplane's
//! `apiextensions.crossplane.io/v1` and `v2` XRDs and Compositions. A Crossplane Composition in
//! `mode: Pipeline` is converted when its steps are ones Strata runs in-process:
//! function-patch-and-transform (input `pt.fn.crossplane.io/v1beta1 Resources`),
//! function-environment-configs (its selection becomes the Composition's environment), and
//! function-auto-ready (Strata's default readiness already does what it does). A pipeline with
//! any other step (a function called over gRPC, function-sequencer) is kept as written in
//! `spec.pipeline`, its steps checked by [`crate::pipeline::Pipeline::load`] and its native
//! patch-and-transform inputs compiled, and runs step by step.
//!
//! Every error names where it is: the source, the document, the object and the field path.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model::{CompositeResourceDefinition, Composition, CompositionSpec, EnvironmentConfig};
use crate::wire;

/// Inputs larger than this are refused before parsing.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;

/// A loading error with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct LoadError {
    /// The source and document ([`SourcedValue::location`]), or just the source when the
    /// stream itself does not parse.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// One parsed document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedValue {
    /// Where the stream came from, as the caller names it (usually a file path).
    pub source: String,
    /// 1-based position in the stream.
    pub document: usize,
    /// The document, as JSON.
    pub value: Value,
}

impl SourcedValue {
    /// `file.yaml (document 2, Composition/name)`.
    pub fn location(&self) -> String {
        let kind = self
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let name = self
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        format!(
            "{} (document {}, {kind}/{name})",
            self.source, self.document
        )
    }

    fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            location: self.location(),
            message: message.into(),
        }
    }
}

/// A classified document.
#[derive(Debug, Clone)]
pub enum Document {
    /// A CompositeResourceDefinition, Strata's or Crossplane's, converted to Strata's.
    Xrd(Box<CompositeResourceDefinition>),
    /// A Composition, Strata's or Crossplane's (its pipeline folded in where it can be).
    Composition(Box<Composition>),
    /// An EnvironmentConfig, Strata's or Crossplane's.
    EnvironmentConfig(Box<EnvironmentConfig>),
    /// Anything else: an XR, a claim, an observed resource.
    Object(Value),
}

/// Parses a YAML (or JSON) stream into its non-empty documents.
pub fn parse_stream(text: &str, source: &str) -> Result<Vec<SourcedValue>, LoadError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(LoadError {
            location: source.to_owned(),
            message: format!(
                "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
                text.len()
            ),
        });
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| LoadError {
        location: source.to_owned(),
        message: first_lines(&e.to_string()),
    })?;
    let mut out = Vec::with_capacity(docs.len());
    for (i, value) in docs.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let doc = SourcedValue {
            source: source.to_owned(),
            document: i + 1,
            value,
        };
        if !doc.value.is_object() {
            return Err(doc.error("a document must be an object with apiVersion and kind"));
        }
        out.push(doc);
    }
    Ok(out)
}

/// The YAML library's messages carry a source snippet after the first line (`--> <input>:3:1`,
/// gutters); keep only the first line, which already has the position, for one-line findings.
fn first_lines(message: &str) -> String {
    let first = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

fn api_version(v: &Value) -> &str {
    v.get("apiVersion").and_then(Value::as_str).unwrap_or("")
}

fn kind(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Classifies a document by apiVersion and kind, converting Crossplane forms.
pub fn classify(doc: &SourcedValue) -> Result<Document, LoadError> {
    let group = group_of(api_version(&doc.value));
    let is_machinery =
        group == wire::GROUP_APIEXTENSIONS || group == wire::CROSSPLANE_GROUP_APIEXTENSIONS;
    if !is_machinery {
        return Ok(Document::Object(doc.value.clone()));
    }
    match kind(&doc.value) {
        "CompositeResourceDefinition" => xrd(doc).map(|x| Document::Xrd(Box::new(x))),
        "Composition" => composition(doc).map(|c| Document::Composition(Box::new(c))),
        "EnvironmentConfig" => {
            environment_config(doc).map(|e| Document::EnvironmentConfig(Box::new(e)))
        }
        "CompositionRevision" => Ok(Document::Object(doc.value.clone())),
        other => Err(doc.error(format!(
            "unknown kind {other:?} in {group}; expected CompositeResourceDefinition, Composition, \
             CompositionRevision or EnvironmentConfig"
        ))),
    }
}

fn check_version(doc: &SourcedValue, supported: &[&str]) -> Result<(), LoadError> {
    let av = api_version(&doc.value);
    if supported.contains(&av) {
        return Ok(());
    }
    Err(doc.error(format!(
        "apiVersion {av:?} is not supported; supported: {}",
        supported.join(", ")
    )))
}

fn typed<T: DeserializeOwned>(doc: &SourcedValue, value: Value) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| typed_error(doc, e))
}

fn typed_error(doc: &SourcedValue, e: serde_path_to_error::Error<serde_json::Error>) -> LoadError {
    let path = e.path().to_string();
    let inner = crate::suggest::unknown_field_message(&e.into_inner().to_string());
    if path == "." || path.is_empty() {
        doc.error(inner)
    } else {
        doc.error(format!("{path}: {inner}"))
    }
}

/// Loads an XRD (native, or Crossplane v1/v2).
pub fn xrd(doc: &SourcedValue) -> Result<CompositeResourceDefinition, LoadError> {
    check_version(
        doc,
        &[
            "apiextensions.strata.dev/v1alpha1",
            "apiextensions.crossplane.io/v1",
            "apiextensions.crossplane.io/v2",
        ],
    )?;
    let mut value = doc.value.clone();
    // Crossplane's v2 XRDs are namespaced unless they say otherwise (v1's default, LegacyCluster,
    // is the native default too).
    let v2 = api_version(&value) == "apiextensions.crossplane.io/v2";
    normalise_header(&mut value, "CompositeResourceDefinition");
    if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) {
        // Crossplane fields with no meaning for Strata's engine.
        for ignored in ["conversion", "metadata"] {
            spec.remove(ignored);
        }
        if v2 && !spec.contains_key("scope") {
            spec.insert("scope".into(), Value::String("Namespaced".into()));
        }
    }
    typed(doc, value)
}

/// Loads an EnvironmentConfig (native, or Crossplane v1alpha1/v1beta1/v1).
pub fn environment_config(doc: &SourcedValue) -> Result<EnvironmentConfig, LoadError> {
    check_version(
        doc,
        &[
            "apiextensions.strata.dev/v1alpha1",
            "apiextensions.crossplane.io/v1alpha1",
            "apiextensions.crossplane.io/v1beta1",
            "apiextensions.crossplane.io/v1",
        ],
    )?;
    let mut value = doc.value.clone();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("apiVersion");
        obj.remove("kind");
    }
    let config: EnvironmentConfig = typed(doc, value)?;
    if !(config.data.is_object() || config.data.is_null()) {
        return Err(doc.error("data: must be an object"));
    }
    Ok(config)
}

/// The document as the typed Composition reads it: header normalised, Crossplane-only fields
/// dropped, a pipeline converted, `spec.mode` recorded. Warnings (what a function ignores) go
/// to `warnings`.
fn composition_value(
    doc: &SourcedValue,
    warnings: &mut Vec<LoadError>,
) -> Result<Value, LoadError> {
    check_version(
        doc,
        &[
            "apiextensions.strata.dev/v1alpha1",
            "apiextensions.crossplane.io/v1",
        ],
    )?;
    let crossplane = group_of(api_version(&doc.value)) == wire::CROSSPLANE_GROUP_APIEXTENSIONS;
    let mut value = doc.value.clone();
    normalise_header(&mut value, "Composition");
    let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(doc.error("spec: required object"));
    };
    // Crossplane fields with no meaning for an in-process engine.
    for ignored in [
        "publishConnectionDetailsWithStoreConfigRef",
        "revisionActivationPolicy",
    ] {
        spec.remove(ignored);
    }
    let mode = match spec.remove("mode") {
        // Crossplane v1's default; Strata's native form has no mode.
        None if crossplane => Some("Resources".to_owned()),
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(other) => return Err(doc.error(format!("spec.mode: expected a string, got {other}"))),
    };
    let pipeline = spec.remove("pipeline");
    match (mode.as_deref(), pipeline) {
        (None, None) => {}
        (None | Some("Resources"), Some(_)) => {
            return Err(doc.error("spec.pipeline: only allowed with spec.mode: Pipeline"));
        }
        (Some("Resources"), None) => name_anonymous_resources(doc, spec)?,
        (Some("Pipeline"), Some(Value::Array(steps))) => {
            if spec
                .get("resources")
                .is_some_and(|r| r.as_array().is_none_or(|a| !a.is_empty()))
            {
                return Err(doc.error("spec.resources: not allowed with spec.mode: Pipeline"));
            }
            if steps.iter().all(foldable) {
                convert_pipeline(doc, spec, steps, warnings)?;
            } else {
                // A step needs a function (or an ordering step): the pipeline runs as written.
                let mut pipeline = crate::pipeline::Pipeline::load(doc, &Default::default())?
                    .ok_or_else(|| doc.error("spec.pipeline: required list"))?;
                pipeline
                    .compile_native_steps()
                    .map_err(|e| doc.error(format!("spec.pipeline: {e}")))?;
                spec.insert("pipeline".into(), Value::Array(steps));
            }
        }
        // A native Composition converted from a Crossplane pipeline already.
        (Some("Pipeline"), None) if !crossplane => {}
        (Some("Pipeline"), _) => {
            return Err(doc.error("spec.pipeline: required list with spec.mode: Pipeline"));
        }
        (Some(other), _) => {
            return Err(doc.error(format!(
                "spec.mode: unknown mode {other:?}; supported: Resources, Pipeline"
            )));
        }
    }
    if let Some(mode) = mode {
        spec.insert("mode".into(), Value::String(mode));
    }
    Ok(value)
}

/// Crossplane 1.x allowed `mode: Resources` templates without names, all or none, and tracked
/// them by index. Unnamed templates are named `resource-<index>` here, so they are tracked by
/// index under a name (the composed resources' template annotation carries it).
fn name_anonymous_resources(
    doc: &SourcedValue,
    spec: &mut Map<String, Value>,
) -> Result<(), LoadError> {
    let Some(Value::Array(resources)) = spec.get_mut("resources") else {
        return Ok(());
    };
    let named = |r: &Value| r.get("name").is_some_and(|n| n.as_str() != Some(""));
    let Some(first_named) = resources.iter().position(named) else {
        for (i, resource) in resources.iter_mut().enumerate() {
            if let Some(r) = resource.as_object_mut() {
                r.insert("name".into(), Value::String(format!("resource-{i}")));
            }
        }
        return Ok(());
    };
    match resources.iter().position(|r| !named(r)) {
        None => Ok(()),
        Some(unnamed) => Err(doc.error(format!(
            "spec.resources[{unnamed}].name: Required value: either every resource has a name or \
             none has (spec.resources[{first_named}] is named)"
        ))),
    }
}

/// Loads a Composition (native, or Crossplane v1 `Resources`/`Pipeline`).
pub fn composition(doc: &SourcedValue) -> Result<Composition, LoadError> {
    composition_with_warnings(doc).map(|(c, _)| c)
}

/// How many unknown fields of a patch-and-transform input are ignored at most.
const MAX_IGNORED_FIELDS: usize = 100;

/// Loads a Composition, with what loading it ignored. A patch-and-transform step's input is
/// decoded as the function decodes it (Go's JSON): an unknown field is ignored, with a warning
/// at its path in the folded-in form (`spec.resources[0].patches[1].fromResourc`). Elsewhere, and
/// in Strata's native form, an unknown field is an error.
pub fn composition_with_warnings(
    doc: &SourcedValue,
) -> Result<(Composition, Vec<LoadError>), LoadError> {
    let mut warnings = Vec::new();
    let mut value = composition_value(doc, &mut warnings)?;
    let lenient = group_of(api_version(&doc.value)) == wire::CROSSPLANE_GROUP_APIEXTENSIONS
        && value.pointer("/spec/mode").and_then(Value::as_str) == Some("Pipeline");
    loop {
        let error = match serde_path_to_error::deserialize::<_, Composition>(value.clone()) {
            Ok(composition) => return Ok((composition, warnings)),
            Err(e) => e,
        };
        let mut steps = Vec::new();
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => steps.push(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => steps.push(Step::Key(key.clone())),
                _ => {}
            }
        }
        let inner = error.inner().to_string();
        let in_input = matches!(
            steps.get(..2),
            Some([Step::Key(spec), Step::Key(part)])
                if spec == "spec" && ["resources", "patchSets", "environment"].contains(&part.as_str())
        );
        if lenient
            && in_input
            && inner.starts_with("unknown field")
            && warnings.len() < MAX_IGNORED_FIELDS
            && remove_key(&mut value, &steps)
        {
            let hint = crate::suggest::unknown_field_message(&inner);
            let folded = render_steps(&steps);
            warnings.push(doc.error(format!(
                "{}: unknown field ignored, as function-patch-and-transform ignores it{}",
                pipeline_field(&doc.value, &folded).unwrap_or(folded),
                hint.strip_prefix(inner.as_str()).unwrap_or_default()
            )));
            continue;
        }
        return Err(typed_error(doc, error));
    }
}

/// Where a field of a pipeline Composition's folded-in form (`spec.resources[3].name`,
/// `spec.patchSets[0]`, `spec.environment.patches[1]`) is in the document as written
/// (`spec.pipeline[1].input.resources[0].name`): the patch-and-transform steps' lists are folded
/// in step order. `None` for any other field or document.
pub fn pipeline_field(document: &Value, field: &str) -> Option<String> {
    let steps = document.pointer("/spec/pipeline")?.as_array()?;
    let (part, pointer) = [
        ("spec.resources[", "/input/resources"),
        ("spec.patchSets[", "/input/patchSets"),
        ("spec.environment.patches[", "/input/environment/patches"),
    ]
    .into_iter()
    .find(|(prefix, _)| field.starts_with(prefix))?;
    let rest = &field[part.len()..];
    let end = rest.find(']')?;
    let mut index: usize = rest[..end].parse().ok()?;
    let tail = &rest[end + 1..];
    for (step, value) in steps.iter().enumerate() {
        if value.pointer("/input/apiVersion").and_then(Value::as_str)
            != Some(wire::CROSSPLANE_PT_INPUT_API_VERSION)
        {
            continue;
        }
        let len = value
            .pointer(pointer)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if index < len {
            let list = pointer.trim_start_matches("/input/").replace('/', ".");
            return Some(format!("spec.pipeline[{step}].input.{list}[{index}]{tail}"));
        }
        index -= len;
    }
    None
}

/// The value at `steps`, if every step exists.
fn walk_mut<'a>(value: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(value, |at, step| match step {
        Step::Key(key) => at.get_mut(key.as_str()),
        Step::Index(i) => at.get_mut(*i),
    })
}

/// Removes the object key at `steps` (whose last step is a key); false when there is none.
fn remove_key(value: &mut Value, steps: &[Step]) -> bool {
    let Some((Step::Key(last), parents)) = steps.split_last() else {
        return false;
    };
    let Some(at) = walk_mut(value, parents) else {
        return false;
    };
    at.as_object_mut().is_some_and(|m| m.remove(last).is_some())
}

/// A Composition loaded for linting past its structural errors (see [`composition_salvaged`]).
#[derive(Debug)]
pub struct Salvaged {
    /// Every structural error, each at its field path in the document as written.
    pub errors: Vec<LoadError>,
    /// The Composition without the list items that held those errors, when what is left can be
    /// linted with findings at the right paths ([`Salvaged::original_field`] maps them back).
    pub composition: Option<Composition>,
    removed: Vec<Vec<Step>>,
}

/// One step of a field path: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl Salvaged {
    /// The field path (as lint writes it: `spec.resources[1].patches[0].toFieldPath`) in the
    /// document as written, for a path into the salvaged Composition.
    pub fn original_field(&self, field: &str) -> String {
        let mut steps = Vec::new();
        for token in field.split('.') {
            let (key, mut rest) = token.split_at(token.find('[').unwrap_or(token.len()));
            steps.push(Step::Key(key.to_owned()));
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(end) = inner.find(']') else { break };
                match inner[..end].parse() {
                    Ok(index) => steps.push(Step::Index(index)),
                    // Not an index (a key in brackets): the field cannot be mapped.
                    Err(_) => return field.to_owned(),
                }
                rest = &inner[end + 1..];
            }
        }
        render_steps(&self.original(&steps))
    }

    /// Maps list indices of a path into the salvaged value to the document as written.
    fn original(&self, steps: &[Step]) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Key(_) => out.push(step.clone()),
                Step::Index(index) => {
                    let mut gone: Vec<usize> = self
                        .removed
                        .iter()
                        .filter(|r| r.len() == out.len() + 1 && r[..out.len()] == out[..])
                        .filter_map(|r| match r.last() {
                            Some(Step::Index(i)) => Some(*i),
                            _ => None,
                        })
                        .collect();
                    gone.sort_unstable();
                    let mut original = *index;
                    for g in gone {
                        if g <= original {
                            original += 1;
                        }
                    }
                    out.push(Step::Index(original));
                }
            }
        }
        out
    }
}

/// `spec.resources[0].patches[1]`, as serde_path_to_error and lint print paths.
fn render_steps(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Loads a Composition and reports every structural error, not only the first: each list item
/// (a resource, a patch, a transform, a check…) that does not parse is reported at its path and
/// left out, and the rest is parsed again. What is left is returned for linting when only items
/// inside composed resources were left out (their patches, transforms, readiness checks and
/// connection details), so lint's findings elsewhere keep their meaning; otherwise the
/// structural errors alone are reported.
pub fn composition_salvaged(doc: &SourcedValue) -> Salvaged {
    let mut salvaged = Salvaged {
        errors: Vec::new(),
        composition: None,
        removed: Vec::new(),
    };
    let mut value = match composition_value(doc, &mut Vec::new()) {
        Ok(value) => value,
        Err(e) => {
            salvaged.errors.push(e);
            return salvaged;
        }
    };
    // Each round removes one list item, so the rounds are bounded by the document's size; past
    // MAX_SALVAGED_ERRORS reading stops, as each round parses the whole document again.
    loop {
        if salvaged.errors.len() == MAX_SALVAGED_ERRORS {
            salvaged.errors.push(doc.error(format!(
                "more than {MAX_SALVAGED_ERRORS} structural errors; the rest are not reported"
            )));
            return salvaged;
        }
        let error = match serde_path_to_error::deserialize::<_, Composition>(value.clone()) {
            Ok(composition) => {
                let lintable = salvaged.removed.iter().all(|r| {
                    r.len() > 4
                        && r[..2] == [Step::Key("spec".into()), Step::Key("resources".into())]
                });
                if lintable {
                    salvaged.composition = Some(composition);
                }
                return salvaged;
            }
            Err(e) => e,
        };
        let mut steps = Vec::new();
        let mut navigable = true;
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => steps.push(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => steps.push(Step::Key(key.clone())),
                _ => navigable = false,
            }
        }
        let inner = crate::suggest::unknown_field_message(&error.into_inner().to_string());
        let original = salvaged.original(&steps);
        salvaged.errors.push(if original.is_empty() {
            doc.error(inner)
        } else {
            doc.error(format!("{}: {inner}", render_steps(&original)))
        });
        let cut = steps.iter().rposition(|s| matches!(s, Step::Index(_)));
        let removed = match cut {
            Some(cut) if navigable => remove_item(&mut value, &steps[..=cut]),
            _ => false,
        };
        if !removed {
            return salvaged;
        }
        if let Some(cut) = cut {
            salvaged.removed.push(original[..=cut].to_vec());
        }
    }
}

/// How many structural errors of one Composition [`composition_salvaged`] reports at most.
pub const MAX_SALVAGED_ERRORS: usize = 100;

/// Removes the list item at `steps` (whose last step is an index); false when there is none.
fn remove_item(value: &mut Value, steps: &[Step]) -> bool {
    let Some((Step::Index(last), parents)) = steps.split_last() else {
        return false;
    };
    let Some(at) = walk_mut(value, parents) else {
        return false;
    };
    match at.as_array_mut() {
        Some(items) if *last < items.len() => {
            items.remove(*last);
            true
        }
        _ => false,
    }
}

/// Rewrites the header to the native kind so the typed structs accept it.
fn normalise_header(value: &mut Value, kind: &str) {
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "apiVersion".into(),
            Value::String(format!(
                "{}/{}",
                wire::GROUP_APIEXTENSIONS,
                crate::model::VERSION
            )),
        );
        obj.insert("kind".into(), Value::String(kind.to_owned()));
    }
}

/// Whether a pipeline step folds into a Resources-mode spec: patch-and-transform,
/// environment-configs, and auto-ready (Strata's default readiness). Any other step keeps the
/// pipeline as written, run step by step.
fn foldable(step: &Value) -> bool {
    let input = step.get("input").filter(|i| !i.is_null());
    let function = step
        .pointer("/functionRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let input_api = input.map(api_version).unwrap_or("");
    (input_api == wire::CROSSPLANE_PT_INPUT_API_VERSION && input.map(kind) == Some("Resources"))
        || group_of(input_api) == "environmentconfigs.fn.crossplane.io"
        || (input.is_none() && function.contains("auto-ready"))
}

/// Folds the supported pipeline steps into a Resources-mode spec.
fn convert_pipeline(
    doc: &SourcedValue,
    spec: &mut Map<String, Value>,
    steps: Vec<Value>,
    warnings: &mut Vec<LoadError>,
) -> Result<(), LoadError> {
    let mut resources: Vec<Value> = Vec::new();
    let mut patch_sets: Vec<Value> = Vec::new();
    let mut env_patches: Vec<Value> = Vec::new();
    let mut env_configs: Vec<Value> = Vec::new();
    let mut env_extra: Map<String, Value> = Map::new();
    let mut connection_secret: Option<Value> = None;
    for (i, step) in steps.into_iter().enumerate() {
        let at = format!("spec.pipeline[{i}]");
        let name = step
            .get("step")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let function = step
            .pointer("/functionRef/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if function.is_empty() {
            return Err(doc.error(format!("{at}.functionRef.name: required")));
        }
        let input = step.get("input");
        let input_api = input.map(api_version).unwrap_or("");
        let input_kind = input.map(kind).unwrap_or("");
        if input_api == wire::CROSSPLANE_PT_INPUT_API_VERSION && input_kind == "Resources" {
            let Some(Value::Object(input)) = input.cloned() else {
                continue;
            };
            let composes = (resources.len(), env_patches.len());
            for (key, value) in input {
                match key.as_str() {
                    "apiVersion" | "kind" | "metadata" => {}
                    "resources" => resources.extend(list(doc, &at, "input.resources", value)?),
                    "patchSets" => patch_sets.extend(list(doc, &at, "input.patchSets", value)?),
                    "environment" => {
                        let patches = value.get("patches").cloned().unwrap_or(Value::Null);
                        env_patches.extend(list(doc, &at, "input.environment.patches", patches)?);
                    }
                    // The connection Secret of a v2 XR; the last step's wins.
                    "writeConnectionSecretToRef" if !value.is_null() => {
                        connection_secret = Some(value);
                    }
                    "writeConnectionSecretToRef" => {}
                    // The function decodes its input leniently (Go's JSON).
                    other => warnings.push(doc.error(format!(
                        "{at}.input.{other}: unknown field ignored, as function-patch-and-transform \
                         ignores it"
                    ))),
                }
            }
            // The function's own input validation.
            if composes == (resources.len(), env_patches.len()) {
                return Err(doc.error(format!(
                    "{at}.input.resources: Required value: resources or environment patches are \
                     required"
                )));
            }
        } else if group_of(input_api) == "environmentconfigs.fn.crossplane.io" {
            let configs = input
                .and_then(|i| i.pointer("/spec/environmentConfigs"))
                .cloned()
                .unwrap_or(Value::Null);
            env_configs.extend(list(doc, &at, "input.spec.environmentConfigs", configs)?);
            // The resolution policy and the data the environment starts from.
            for key in ["policy", "defaultData"] {
                if let Some(v) = input.and_then(|i| i.get("spec")).and_then(|s| s.get(key)) {
                    env_extra.insert(key.to_owned(), v.clone());
                }
            }
        } else if input.is_none() && function.contains("auto-ready") {
            // Strata's default readiness (the Ready condition) is what function-auto-ready does.
        } else {
            return Err(doc.error(format!(
                "{at} (step {name:?}): function {function:?} cannot run in-process; supported: \
                 function-patch-and-transform (input {} Resources), function-environment-configs \
                 (input environmentconfigs.fn.crossplane.io), function-auto-ready",
                wire::CROSSPLANE_PT_INPUT_API_VERSION
            )));
        }
    }
    spec.insert("resources".into(), Value::Array(resources));
    if let Some(reference) = connection_secret {
        spec.insert("writeConnectionSecretToRef".into(), reference);
    }
    if !patch_sets.is_empty() {
        spec.insert("patchSets".into(), Value::Array(patch_sets));
    }
    if !env_patches.is_empty() || !env_configs.is_empty() || !env_extra.is_empty() {
        let mut env_obj = env_extra;
        if !env_patches.is_empty() {
            env_obj.insert("patches".into(), Value::Array(env_patches));
        }
        if !env_configs.is_empty() {
            env_obj.insert("environmentConfigs".into(), Value::Array(env_configs));
        }
        spec.insert("environment".into(), Value::Object(env_obj));
    }
    Ok(())
}

fn list(doc: &SourcedValue, at: &str, field: &str, value: Value) -> Result<Vec<Value>, LoadError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        _ => Err(doc.error(format!("{at}.{field}: expected a list"))),
    }
}

/// Reads a Composition from a single-document source (a convenience for the CLI and tests), with
/// what loading it ignored ([`composition_with_warnings`]).
pub fn composition_from_str(
    text: &str,
    source: &str,
) -> Result<(Composition, Vec<LoadError>), LoadError> {
    let docs = parse_stream(text, source)?;
    let mut found = docs.iter().filter(|d| kind(&d.value) == "Composition");
    let Some(doc) = found.next() else {
        return Err(LoadError {
            location: source.to_owned(),
            message: "no Composition found".into(),
        });
    };
    if found.next().is_some() {
        return Err(LoadError {
            location: source.to_owned(),
            message: "more than one Composition found".into(),
        });
    }
    composition_with_warnings(doc)
}

/// The composition spec of a typed Composition (a shorthand used across the crate).
pub fn spec_of(c: &Composition) -> &CompositionSpec {
    &c.spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Document, LoadError> {
        let docs = parse_stream(text, "test.yaml")?;
        classify(&docs[0])
    }

    #[test]
    fn a_crossplane_v2_xrd_without_a_scope_is_namespaced_and_v1_is_legacy_cluster() {
        let scope = |api_version: &str, scope: &str| {
            let text = format!(
                "apiVersion: {api_version}\nkind: CompositeResourceDefinition\nmetadata: {{name: xapps.example.org}}\n\
                 spec: {{group: example.org, names: {{kind: XApp, plural: xapps}}, {scope}versions: [{{name: v1}}]}}\n"
            );
            match one(&text) {
                Ok(Document::Xrd(x)) => x.spec.scope.unwrap_or_default(),
                other => panic!("{other:?}"),
            }
        };
        use crate::model::XrScope;
        assert_eq!(
            scope("apiextensions.crossplane.io/v2", ""),
            XrScope::Namespaced
        );
        assert_eq!(
            scope("apiextensions.crossplane.io/v2", "scope: Cluster, "),
            XrScope::Cluster
        );
        assert_eq!(
            scope("apiextensions.crossplane.io/v1", ""),
            XrScope::LegacyCluster
        );
    }

    fn salvage(text: &str) -> Salvaged {
        let docs = parse_stream(text, "test.yaml").expect("parses");
        composition_salvaged(&docs[0])
    }

    /// The field path each structural error names.
    fn error_paths(rest: &Salvaged) -> Vec<&str> {
        rest.errors
            .iter()
            .map(|e| e.message.split(':').next().unwrap_or_default())
            .collect()
    }

    const SALVAGE_HEAD: &str = "apiVersion: apiextensions.crossplane.io/v1\nkind: Composition\n\
        metadata: {name: c}\nspec:\n  compositeTypeRef: {apiVersion: example.org/v1, kind: XApp}\n";

    #[test]
    fn a_composition_is_read_past_each_broken_item_with_paths_as_written() {
        let rest = salvage(&format!(
            "{SALVAGE_HEAD}  resources:
  - name: a
    base: {{apiVersion: v1, kind: ConfigMap}}
    patches:
    - {{type: Nope, fromFieldPath: spec.x}}
    - {{type: Nope, fromFieldPath: spec.y}}
    - fromFieldPath: spec.z
      toFieldPath: data.z
      transforms: [{{type: nope}}, {{type: string, string: {{type: Format, fmt: '%s'}}}}, {{type: nope}}]
    - {{fromFieldPath: spec.w, toFieldPath: data.w}}
"
        ));
        assert_eq!(
            error_paths(&rest),
            [
                "spec.resources[0].patches[0].type",
                "spec.resources[0].patches[1].type",
                "spec.resources[0].patches[2].transforms[0].type",
                "spec.resources[0].patches[2].transforms[2].type",
            ]
        );
        let composition = rest.composition.as_ref().expect("the rest can be linted");
        let patches = &composition.spec.resources[0].patches;
        assert_eq!(patches.len(), 2, "the two broken patches are left out");
        assert_eq!(
            patches[0].transforms.len(),
            1,
            "so are the broken transforms"
        );
        // Paths lint writes into what is left, mapped back to the document as written.
        for (salvaged, original) in [
            (
                "spec.resources[0].patches[1].toFieldPath",
                "spec.resources[0].patches[3].toFieldPath",
            ),
            (
                "spec.resources[0].patches[0].transforms[0].string",
                "spec.resources[0].patches[2].transforms[1].string",
            ),
            ("spec.resources[0].base.kind", "spec.resources[0].base.kind"),
            ("spec.compositeTypeRef", "spec.compositeTypeRef"),
        ] {
            assert_eq!(rest.original_field(salvaged), original);
        }
    }

    #[test]
    fn a_broken_resource_is_reported_without_linting_the_rest() {
        let rest = salvage(&format!(
            "{SALVAGE_HEAD}  resources:
  - name: [a]
    base: {{apiVersion: v1, kind: ConfigMap}}
  - name: b
    base: {{apiVersion: v1, kind: ConfigMap}}
    patches: [{{type: Nope}}]
"
        ));
        assert_eq!(
            error_paths(&rest),
            [
                "spec.resources[0].name",
                "spec.resources[1].patches[0].type"
            ]
        );
        assert!(
            rest.composition.is_none(),
            "lint would name resources by shifted indices"
        );
    }

    #[test]
    fn a_composition_with_very_many_broken_items_reports_a_bounded_number() {
        let patches = "    - {type: Nope}\n".repeat(MAX_SALVAGED_ERRORS + 50);
        let rest = salvage(&format!(
            "{SALVAGE_HEAD}  resources:\n  - name: a\n    base: {{apiVersion: v1, kind: ConfigMap}}\n    patches:\n{patches}"
        ));
        assert_eq!(rest.errors.len(), MAX_SALVAGED_ERRORS + 1);
        assert!(
            rest.errors[MAX_SALVAGED_ERRORS - 1]
                .message
                .starts_with(&format!(
                    "spec.resources[0].patches[{}].type",
                    MAX_SALVAGED_ERRORS - 1
                )),
            "{:?}",
            rest.errors[MAX_SALVAGED_ERRORS - 1]
        );
        assert!(
            rest.errors[MAX_SALVAGED_ERRORS]
                .message
                .contains("the rest are not reported")
        );
        assert!(rest.composition.is_none());
    }

    #[test]
    fn a_composition_broken_outside_any_list_is_one_error() {
        let rest = salvage(&format!("{SALVAGE_HEAD}  resources: 5\n"));
        assert_eq!(rest.errors.len(), 1, "{:?}", rest.errors);
        assert!(
            rest.errors[0].message.starts_with("spec.resources: "),
            "{:?}",
            rest.errors
        );
        assert!(rest.composition.is_none());
    }

    #[test]
    fn a_folded_field_maps_back_to_its_pipeline_step() {
        let docs = parse_stream(
            r#"
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: c}
spec:
  mode: Pipeline
  pipeline:
  - step: a
    functionRef: {name: function-patch-and-transform}
    input: {apiVersion: pt.fn.crossplane.io/v1beta1, kind: Resources, resources: [{name: x}, {name: y}]}
  - step: env
    functionRef: {name: function-environment-configs}
    input: {apiVersion: environmentconfigs.fn.crossplane.io/v1beta1, kind: Input}
  - step: b
    functionRef: {name: function-patch-and-transform}
    input: {apiVersion: pt.fn.crossplane.io/v1beta1, kind: Resources, resources: [{name: z}]}
"#,
            "c.yaml",
        )
        .expect("parses");
        let doc = &docs[0].value;
        for (folded, written) in [
            (
                "spec.resources[1].name",
                Some("spec.pipeline[0].input.resources[1].name"),
            ),
            (
                "spec.resources[2].patches[0]",
                Some("spec.pipeline[2].input.resources[0].patches[0]"),
            ),
            ("spec.resources[3]", None),
            ("spec.compositeTypeRef", None),
        ] {
            assert_eq!(pipeline_field(doc, folded).as_deref(), written, "{folded}");
        }
    }

    #[test]
    fn a_yaml_syntax_error_is_one_line_with_its_position() {
        let err = parse_stream("a:\n  b: 1\n c: 2\n", "in.yaml").expect_err("bad indentation");
        assert!(
            !err.message.contains('\n') && !err.message.contains("-->"),
            "{}",
            err.message
        );
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[test]
    fn reads_a_crossplane_pipeline_composition() {
        let text = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: c}
spec:
  compositeTypeRef: {apiVersion: example.org/v1, kind: XDB}
  mode: Pipeline
  pipeline:
  - step: patch-and-transform
    functionRef: {name: function-patch-and-transform}
    input:
      apiVersion: pt.fn.crossplane.io/v1beta1
      kind: Resources
      resources:
      - name: db
        base: {apiVersion: v1, kind: ConfigMap}
        patches:
        - {type: FromCompositeFieldPath, fromFieldPath: spec.size, toFieldPath: data.size}
  - step: ready
    functionRef: {name: function-auto-ready}
"#;
        let Ok(Document::Composition(c)) = one(text) else {
            panic!("expected a composition")
        };
        assert_eq!(c.spec.resources.len(), 1);
        assert_eq!(
            c.spec.resources[0].patches[0].to_field_path.as_deref(),
            Some("data.size")
        );
    }

    #[test]
    fn a_pipeline_with_a_function_step_is_kept_as_written() {
        let text = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: c}
spec:
  compositeTypeRef: {apiVersion: example.org/v1, kind: XDB}
  mode: Pipeline
  pipeline:
  - step: kcl
    functionRef: {name: function-kcl}
    input: {apiVersion: krm.kcl.dev/v1alpha1, kind: KCLInput}
"#;
        let Ok(Document::Composition(c)) = one(text) else {
            panic!("expected a composition")
        };
        assert!(c.spec.resources.is_empty());
        assert_eq!(c.spec.pipeline.len(), 1);
        assert_eq!(c.spec.pipeline[0]["functionRef"]["name"], "function-kcl");
        // A patch-and-transform step of such a pipeline is still checked at load.
        let broken = text.replace(
            "  - step: kcl",
            "  - step: pt\n    functionRef: {name: function-patch-and-transform}\n    input: {apiVersion: pt.fn.crossplane.io/v1beta1, kind: Resources, resources: [{name: a, base: {apiVersion: v1, kind: ConfigMap}, patches: [{type: Bogus}]}]}\n  - step: kcl",
        );
        let err = one(&broken).expect_err("a bad patch");
        assert!(err.message.contains("spec.pipeline: step \"pt\""), "{err}");
        assert!(err.location.contains("Composition/c"), "{err}");
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let text = r#"
apiVersion: apiextensions.strata.dev/v1alpha1
kind: Composition
metadata: {name: c}
spec:
  compositeTypeRef: {apiVersion: example.org/v1, kind: XDB}
  resources:
  - name: db
    base: {apiVersion: v1, kind: ConfigMap}
    patches:
    - {fromFieldPth: spec.size}
"#;
        let err = one(text).expect_err("unknown field");
        assert!(
            err.message.starts_with(
                "spec.resources[0].patches[0].fromFieldPth: unknown field `fromFieldPth`"
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_and_wrong_versions_are_errors() {
        assert!(parse_stream("a: [1, 2", "x.yaml").is_err());
        let err = one(
            "apiVersion: apiextensions.crossplane.io/v9\nkind: Composition\nmetadata: {name: c}\n",
        )
        .expect_err("bad version");
        assert!(err.message.contains("not supported"), "{err}");
        assert!(
            parse_stream("- 1\n- 2\n", "x.yaml").is_err(),
            "a list is not an object"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_stream(&deep, "deep.yaml").is_err());
    }
}
