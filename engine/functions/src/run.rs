//! Running a whole pipeline: native steps through [`strata_core::pipeline`], remote steps over
//! [`FunctionRunner`], the protocol duties between them, and the core's `finish` at the end.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use function_sdk_rust::resource::{json_to_struct, struct_to_json};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strata_core::connection::ConnectionDetails;
use strata_core::pipeline::{
    self, DesiredComposed, DesiredState, ENVIRONMENT_CONTEXT_KEY, FinishError, Finished,
    NativeFunction, Observed, Pipeline, PipelineStep, Ready, SequenceRules, StepError,
};

use crate::proto;
use crate::transport::{CallError, FunctionRunner};

/// How often a step runs while its requirements keep changing (Crossplane's limit).
pub const MAX_REQUIREMENT_ITERATIONS: usize = 5;

/// Answers a step's `requirements`: the resources a selector names (empty when none match).
pub trait RequiredResources: Send + Sync {
    /// The resources `selector` matches ([`selector_matches`]); `Err` when they cannot be
    /// read, which fails the step.
    fn select(
        &self,
        selector: &proto::ResourceSelector,
    ) -> impl Future<Output = Result<Vec<Value>, String>> + Send;
    /// The OpenAPI v3 schema of a kind, `None` when unknown.
    fn schema(
        &self,
        api_version: &str,
        kind: &str,
    ) -> impl Future<Output = Result<Option<Value>, String>> + Send;
}

/// Required resources from a fixed list (`strata render --required-resources`).
#[derive(Clone, Debug, Default)]
pub struct StaticResources {
    /// Every resource a selector may match, in the order they are answered.
    pub resources: Vec<Value>,
    /// Schemas by `apiVersion/kind`.
    pub schemas: BTreeMap<String, Value>,
}

impl RequiredResources for StaticResources {
    async fn select(&self, selector: &proto::ResourceSelector) -> Result<Vec<Value>, String> {
        Ok(self
            .resources
            .iter()
            .filter(|r| selector_matches(selector, r))
            .cloned()
            .collect())
    }

    async fn schema(&self, api_version: &str, kind: &str) -> Result<Option<Value>, String> {
        Ok(self.schemas.get(&format!("{api_version}/{kind}")).cloned())
    }
}

/// True when `object` is what `selector` asks for: its apiVersion and kind, its namespace when
/// the selector names one, and its name or every label.
pub fn selector_matches(selector: &proto::ResourceSelector, object: &Value) -> bool {
    let s = |p: &str| object.pointer(p).and_then(Value::as_str);
    if s("/apiVersion") != Some(selector.api_version.as_str())
        || s("/kind") != Some(selector.kind.as_str())
    {
        return false;
    }
    if let Some(ns) = &selector.namespace
        && s("/metadata/namespace") != Some(ns.as_str())
    {
        return false;
    }
    match &selector.r#match {
        Some(proto::resource_selector::Match::MatchName(name)) => {
            s("/metadata/name") == Some(name.as_str())
        }
        Some(proto::resource_selector::Match::MatchLabels(m)) => m.labels.iter().all(|(k, v)| {
            object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v.as_str())
        }),
        None => false,
    }
}

/// Everything a pipeline run reads besides the Composition.
pub struct PipelineInputs<'a, Q> {
    /// The observed XR and composed resources, sent to every step.
    pub observed: Observed<'a>,
    /// The merged environment (EnvironmentConfigs), passed under Crossplane's context key.
    pub environment: Option<&'a Value>,
    /// Context the first step starts from (`strata render --context-files/--context-values`).
    pub context: Map<String, Value>,
    /// Secret data by `(namespace, name)`, for steps' `credentials`.
    pub secrets: &'a BTreeMap<(String, String), ConnectionDetails>,
    /// Answers the steps' `requirements`.
    pub required: &'a Q,
}

/// A result a step returned, kept with the step's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// The step that returned it.
    pub step: String,
    /// How bad it is; `Fatal` stops the pipeline.
    pub severity: Severity,
    /// A CamelCase reason, when the function gave one (the event reason).
    pub reason: Option<String>,
    /// The function's message.
    pub message: String,
    /// The result is meant for the claim too.
    pub claim: bool,
}

/// A result's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The pipeline stops; nothing is applied.
    Fatal,
    /// Recorded as a Warning event.
    Warning,
    /// Recorded as a Normal event.
    Normal,
}

impl Severity {
    /// As `crossplane render` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "SEVERITY_FATAL",
            Self::Warning => "SEVERITY_WARNING",
            Self::Normal => "SEVERITY_NORMAL",
        }
    }
}

/// A condition a function set on the XR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionCondition {
    /// The condition type; never empty.
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// A CamelCase reason; never empty.
    pub reason: String,
    /// The function's message, if any.
    pub message: Option<String>,
    /// The condition is meant for the claim too.
    pub claim: bool,
}

/// What a pipeline run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineRun {
    /// The desired state gated, ordered and stamped, with the XR's Ready condition.
    pub finished: Finished,
    /// Every step's results, in order.
    pub results: Vec<StepResult>,
    /// Conditions the steps set on the XR, in order.
    pub conditions: Vec<FunctionCondition>,
    /// The context after the last step.
    pub context: Map<String, Value>,
    /// The shortest TTL any function asked for.
    pub ttl: Option<Duration>,
    /// Warnings of the native steps (a native patch-and-transform step's render warnings).
    pub warnings: Vec<String>,
}

/// Why a pipeline stopped. Each names the step and its function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The function could not be called, or answered with an error status.
    #[error("step {step:?} (function {function:?}): {source}")]
    Call {
        /// The step's name.
        step: String,
        /// The step's `functionRef.name`.
        function: String,
        /// Why the call failed.
        #[source]
        source: CallError,
    },
    /// The function returned a `Fatal` result.
    #[error("step {step:?} (function {function:?}) returned a fatal result: {message}")]
    Fatal {
        /// The step's name.
        step: String,
        /// The step's `functionRef.name`.
        function: String,
        /// The fatal result's message.
        message: String,
        /// Every result up to and including the fatal one.
        results: Vec<StepResult>,
    },
    /// The function's response breaks the protocol (a condition without a type, a resource
    /// that is not an object).
    #[error("step {step:?} (function {function:?}): malformed response: {message}")]
    Malformed {
        /// The step's name.
        step: String,
        /// The step's `functionRef.name`.
        function: String,
        /// What is wrong with the response.
        message: String,
    },
    /// The step asked for different resources on each of [`MAX_REQUIREMENT_ITERATIONS`] runs.
    #[error(
        "step {step:?} (function {function:?}): requirements still changing after {MAX_REQUIREMENT_ITERATIONS} runs"
    )]
    Requirements {
        /// The step's name.
        step: String,
        /// The step's `functionRef.name`.
        function: String,
    },
    /// The step's request could not be built (a credentials Secret is missing, a required
    /// resource cannot be read).
    #[error("step {step:?} (function {function:?}): {message}")]
    Input {
        /// The step's name.
        step: String,
        /// The step's `functionRef.name`.
        function: String,
        /// What is missing.
        message: String,
    },
    /// A native step failed.
    #[error(transparent)]
    Native(#[from] StepError),
    /// The desired state could not be finished (a dependency cycle, an unknown dependency).
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// Runs every step in order and finishes the desired state.
pub async fn run_pipeline<R: FunctionRunner, Q: RequiredResources>(
    pipeline: &Pipeline,
    runner: &R,
    mut inputs: PipelineInputs<'_, Q>,
) -> Result<PipelineRun, PipelineError> {
    let mut desired = DesiredState {
        composite: json!({}),
        ..Default::default()
    };
    let mut context = std::mem::take(&mut inputs.context);
    if let Some(env) = inputs.environment {
        context.insert(ENVIRONMENT_CONTEXT_KEY.to_owned(), env.clone());
    }
    let mut results = Vec::new();
    let mut conditions = Vec::new();
    let mut sequences = Vec::new();
    let mut warnings = Vec::new();
    let mut ttl: Option<Duration> = None;
    for step in &pipeline.steps {
        match step.native {
            Some(NativeFunction::PatchAndTransform) => {
                let env = context.get(ENVIRONMENT_CONTEXT_KEY).cloned();
                let report = pipeline::run_patch_and_transform(
                    pipeline,
                    step,
                    inputs.observed,
                    env.as_ref(),
                    &mut desired,
                )?;
                let env_after = report.environment;
                if env.is_some() || env_after.as_object().is_some_and(|o| !o.is_empty()) {
                    context.insert(ENVIRONMENT_CONTEXT_KEY.to_owned(), env_after);
                }
                warnings.extend(
                    report
                        .warnings
                        .into_iter()
                        .map(|w| format!("step {:?}: {w}", step.name)),
                );
                // As the function reports a resource it cannot render: a Warning result, here
                // for the claim too (its user is the one who can supply the missing field).
                results.extend(
                    report
                        .required_withheld
                        .into_iter()
                        .map(|(name, r)| StepResult {
                            step: step.name.clone(),
                            severity: Severity::Warning,
                            reason: Some(
                                strata_core::wire::REASON_REQUIRED_SOURCE_MISSING.to_owned(),
                            ),
                            message: format!("resource `{name}` withheld: {}", r.explain()),
                            claim: true,
                        }),
                );
            }
            Some(NativeFunction::AutoReady) => {
                pipeline::run_auto_ready(inputs.observed, &mut desired)
            }
            Some(NativeFunction::Sequencer) => sequences.push(SequenceRules::from_input(step)?),
            // The environment was selected before the pipeline and is already in the context.
            Some(NativeFunction::EnvironmentConfigs) => {}
            None => {
                let response = run_remote(step, runner, &inputs, &desired, &context).await?;
                let outcome = absorb(step, response, &mut desired)?;
                context = outcome.context;
                if let Some(t) = outcome.ttl {
                    ttl = Some(ttl.map_or(t, |old| old.min(t)));
                }
                conditions.extend(outcome.conditions);
                let fatal = outcome
                    .results
                    .iter()
                    .find(|r| r.severity == Severity::Fatal)
                    .map(|r| r.message.clone());
                results.extend(outcome.results);
                if let Some(message) = fatal {
                    return Err(PipelineError::Fatal {
                        step: step.name.clone(),
                        function: step.function.clone(),
                        message,
                        results,
                    });
                }
            }
        }
    }
    let finished = pipeline::finish(inputs.observed, &desired, &sequences)?;
    Ok(PipelineRun {
        finished,
        results,
        conditions,
        context,
        ttl,
        warnings,
    })
}

/// Calls a remote step, re-running it while its requirements change.
async fn run_remote<R: FunctionRunner, Q: RequiredResources>(
    step: &PipelineStep,
    runner: &R,
    inputs: &PipelineInputs<'_, Q>,
    desired: &DesiredState,
    context: &Map<String, Value>,
) -> Result<proto::RunFunctionResponse, PipelineError> {
    let input_err = |message: String| PipelineError::Input {
        step: step.name.clone(),
        function: step.function.clone(),
        message,
    };
    let mut request = proto::RunFunctionRequest {
        meta: None,
        observed: Some(observed_state(inputs.observed)),
        desired: Some(desired_state(desired)),
        input: step
            .input
            .as_ref()
            .and_then(Value::as_object)
            .map(json_to_struct),
        context: Some(json_to_struct(context)),
        ..Default::default()
    };
    for c in &step.credentials {
        let key = (c.secret_namespace.clone(), c.secret_name.clone());
        let Some(data) = inputs.secrets.get(&key) else {
            return Err(input_err(format!(
                "credentials {:?}: Secret {}/{} not found",
                c.name, c.secret_namespace, c.secret_name
            )));
        };
        request.credentials.insert(
            c.name.clone(),
            proto::Credentials {
                source: Some(proto::credentials::Source::CredentialData(
                    proto::CredentialData {
                        data: data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    },
                )),
            },
        );
    }
    let mut last_requirements: Option<proto::Requirements> = None;
    for _ in 0..MAX_REQUIREMENT_ITERATIONS {
        request.meta = Some(proto::RequestMeta {
            tag: String::new(),
            capabilities: capabilities(),
        });
        let tag = tag(&request);
        if let Some(meta) = request.meta.as_mut() {
            meta.tag = tag;
        }
        let response = runner
            .run(&step.function, request.clone())
            .await
            .map_err(|source| PipelineError::Call {
                step: step.name.clone(),
                function: step.function.clone(),
                source,
            })?;
        let requirements = response.requirements.clone().unwrap_or_default();
        let unchanged = last_requirements.as_ref() == Some(&requirements);
        let empty = requirements.resources.is_empty()
            && requirements.extra_resources.is_empty()
            && requirements.schemas.is_empty();
        if empty || unchanged {
            return Ok(response);
        }
        // Answer every requirement, then run the step again with the answers.
        request.required_resources = resolve(inputs.required, &requirements.resources)
            .await
            .map_err(&input_err)?;
        request.extra_resources = resolve(inputs.required, &requirements.extra_resources)
            .await
            .map_err(&input_err)?;
        request.required_schemas.clear();
        for (key, sel) in &requirements.schemas {
            let schema = inputs
                .required
                .schema(&sel.api_version, &sel.kind)
                .await
                .map_err(&input_err)?;
            request.required_schemas.insert(
                key.clone(),
                proto::Schema {
                    openapi_v3: schema
                        .as_ref()
                        .and_then(Value::as_object)
                        .map(json_to_struct),
                },
            );
        }
        last_requirements = Some(requirements);
    }
    Err(PipelineError::Requirements {
        step: step.name.clone(),
        function: step.function.clone(),
    })
}

async fn resolve<Q: RequiredResources>(
    required: &Q,
    selectors: &HashMap<String, proto::ResourceSelector>,
) -> Result<HashMap<String, proto::Resources>, String> {
    let mut out = HashMap::with_capacity(selectors.len());
    for (key, sel) in selectors {
        let items = required
            .select(sel)
            .await?
            .iter()
            .map(|r| proto::Resource {
                resource: r.as_object().map(json_to_struct),
                ..Default::default()
            })
            .collect();
        out.insert(key.clone(), proto::Resources { items });
    }
    Ok(out)
}

/// The capabilities Strata honours (all of v1's).
fn capabilities() -> Vec<i32> {
    [
        proto::Capability::Capabilities,
        proto::Capability::RequiredResources,
        proto::Capability::Credentials,
        proto::Capability::Conditions,
        proto::Capability::RequiredSchemas,
    ]
    .into_iter()
    .map(|c| c as i32)
    .collect()
}

/// `meta.tag`: hex SHA-256 of the request (without its tag) in canonical JSON, so identical
/// requests have identical tags whatever the order of protobuf maps.
pub fn tag(request: &proto::RunFunctionRequest) -> String {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("tag");
    }
    let mut hasher = Sha256::new();
    write_canonical(&value, &mut hasher);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_canonical(value: &Value, out: &mut Sha256) {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.update(b"{");
            for k in keys {
                out.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                out.update(b":");
                write_canonical(&m[k], out);
                out.update(b",");
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for item in items {
                write_canonical(item, out);
                out.update(b",");
            }
            out.update(b"]");
        }
        other => out.update(other.to_string().as_bytes()),
    }
}

fn to_resource(value: &Value, details: &ConnectionDetails, ready: Ready) -> proto::Resource {
    proto::Resource {
        resource: value.as_object().map(json_to_struct),
        connection_details: details
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ready: match ready {
            Ready::Unspecified => proto::Ready::Unspecified,
            Ready::True => proto::Ready::True,
            Ready::False => proto::Ready::False,
        } as i32,
    }
}

fn observed_state(observed: Observed<'_>) -> proto::State {
    proto::State {
        composite: Some(to_resource(
            observed.composite,
            &ConnectionDetails::new(),
            Ready::Unspecified,
        )),
        resources: observed
            .resources
            .iter()
            .map(|(name, o)| {
                (
                    name.clone(),
                    to_resource(&o.resource, &o.connection_details, Ready::Unspecified),
                )
            })
            .collect(),
    }
}

fn desired_state(desired: &DesiredState) -> proto::State {
    proto::State {
        composite: Some(to_resource(
            &desired.composite,
            &desired.composite_connection_details,
            Ready::Unspecified,
        )),
        resources: desired
            .resources
            .iter()
            .map(|(name, d)| {
                (
                    name.clone(),
                    to_resource(&d.resource, &d.connection_details, d.ready),
                )
            })
            .collect(),
    }
}

struct Outcome {
    context: Map<String, Value>,
    ttl: Option<Duration>,
    results: Vec<StepResult>,
    conditions: Vec<FunctionCondition>,
}

/// Takes a response's desired state as the new desired state (a function returns the full
/// intent: what it leaves out is no longer desired), keeping the order resources first appeared
/// in and adding new ones by name.
fn absorb(
    step: &PipelineStep,
    response: proto::RunFunctionResponse,
    desired: &mut DesiredState,
) -> Result<Outcome, PipelineError> {
    let malformed = |message: String| PipelineError::Malformed {
        step: step.name.clone(),
        function: step.function.clone(),
        message,
    };
    let mut results = Vec::with_capacity(response.results.len());
    for r in &response.results {
        let severity = match proto::Severity::try_from(r.severity) {
            Ok(proto::Severity::Fatal) => Severity::Fatal,
            Ok(proto::Severity::Warning) => Severity::Warning,
            Ok(proto::Severity::Normal) => Severity::Normal,
            _ => {
                return Err(malformed(format!(
                    "result with unknown severity {}",
                    r.severity
                )));
            }
        };
        results.push(StepResult {
            step: step.name.clone(),
            severity,
            reason: r.reason.clone(),
            message: r.message.clone(),
            claim: r.target == Some(proto::Target::CompositeAndClaim as i32),
        });
    }
    let mut conditions = Vec::with_capacity(response.conditions.len());
    for c in &response.conditions {
        let status = match proto::Status::try_from(c.status) {
            Ok(proto::Status::ConditionTrue) => "True",
            Ok(proto::Status::ConditionFalse) => "False",
            Ok(proto::Status::ConditionUnknown) => "Unknown",
            _ => {
                return Err(malformed(format!(
                    "condition {:?} without a status",
                    c.r#type
                )));
            }
        };
        if c.r#type.is_empty() || c.reason.is_empty() {
            return Err(malformed("a condition needs a type and a reason".into()));
        }
        conditions.push(FunctionCondition {
            kind: c.r#type.clone(),
            status,
            reason: c.reason.clone(),
            message: c.message.clone(),
            claim: c.target == Some(proto::Target::CompositeAndClaim as i32),
        });
    }
    let fatal = results.iter().any(|r| r.severity == Severity::Fatal);
    let context = match &response.context {
        Some(s) => match struct_to_json(s) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        None => Map::new(),
    };
    let ttl = response
        .meta
        .as_ref()
        .and_then(|m| m.ttl.as_ref())
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
    if !fatal {
        let Some(state) = response.desired else {
            return Err(malformed("no desired state".into()));
        };
        let composite = state.composite.unwrap_or_default();
        desired.composite = composite
            .resource
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_else(|| json!({}));
        desired.composite_connection_details = composite.connection_details.into_iter().collect();
        let mut next: IndexMap<String, DesiredComposed> =
            IndexMap::with_capacity(state.resources.len());
        let mut incoming: BTreeMap<String, proto::Resource> = state.resources.into_iter().collect();
        let known: Vec<String> = desired.resources.keys().cloned().collect();
        for name in known
            .iter()
            .chain(incoming.keys().cloned().collect::<Vec<_>>().iter())
        {
            let Some(r) = incoming.remove(name) else {
                continue;
            };
            let resource = r
                .resource
                .as_ref()
                .map(struct_to_json)
                .unwrap_or(Value::Null);
            if !resource.is_object() {
                return Err(malformed(format!(
                    "desired resource {name:?} has no object"
                )));
            }
            let ready = match proto::Ready::try_from(r.ready) {
                Ok(proto::Ready::True) => Ready::True,
                Ok(proto::Ready::False) => Ready::False,
                _ => Ready::Unspecified,
            };
            next.insert(
                name.clone(),
                DesiredComposed {
                    resource,
                    ready,
                    connection_details: r.connection_details.into_iter().collect(),
                },
            );
        }
        desired.resources = next;
    }
    Ok(Outcome {
        context,
        ttl,
        results,
        conditions,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::sync::Mutex;

    use function_sdk_rust::response;
    use strata_core::load::SourcedValue;
    use strata_core::render::{Observed as ObservedResource, ObservedResources};

    use super::*;

    /// A function scripted in-process: answers each call with `answer(call number, request)`
    /// and records every request.
    struct Scripted<F> {
        answer: F,
        calls: Mutex<Vec<proto::RunFunctionRequest>>,
    }

    impl<F> Scripted<F>
    where
        F: Fn(usize, &proto::RunFunctionRequest) -> proto::RunFunctionResponse + Send + Sync,
    {
        fn new(answer: F) -> Self {
            Self {
                answer,
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl<F> FunctionRunner for Scripted<F>
    where
        F: Fn(usize, &proto::RunFunctionRequest) -> proto::RunFunctionResponse + Send + Sync,
    {
        async fn run(
            &self,
            function: &str,
            request: proto::RunFunctionRequest,
        ) -> Result<proto::RunFunctionResponse, CallError> {
            if function != "fn" {
                return Err(CallError::UnknownFunction(function.to_owned()));
            }
            let mut calls = self.calls.lock().unwrap();
            let answer = (self.answer)(calls.len(), &request);
            calls.push(request);
            Ok(answer)
        }
    }

    fn pipeline(steps: Value) -> Pipeline {
        let doc = SourcedValue {
            source: "test".into(),
            document: 1,
            value: json!({
                "apiVersion": "apiextensions.crossplane.io/v1",
                "kind": "Composition",
                "metadata": {"name": "c"},
                "spec": {
                    "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
                    "mode": "Pipeline",
                    "pipeline": steps,
                },
            }),
        };
        Pipeline::load(&doc, &BTreeMap::new()).unwrap().unwrap()
    }

    fn xr() -> Value {
        json!({
            "apiVersion": "example.org/v1", "kind": "XApp",
            "metadata": {"name": "app", "uid": "u-1"},
            "spec": {"region": "eu"},
        })
    }

    fn config_map(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
    }

    async fn run(
        p: &Pipeline,
        runner: &impl FunctionRunner,
        observed: &ObservedResources,
        required: &StaticResources,
    ) -> Result<PipelineRun, PipelineError> {
        let xr = xr();
        let secrets = BTreeMap::from([(
            ("ns".to_owned(), "creds".to_owned()),
            ConnectionDetails::from([("token".to_owned(), b"s3cr3t".to_vec())]),
        )]);
        run_pipeline(
            p,
            runner,
            PipelineInputs {
                observed: Observed {
                    composite: &xr,
                    resources: observed,
                },
                environment: Some(&json!({"tier": "gold"})),
                context: Map::new(),
                secrets: &secrets,
                required,
            },
        )
        .await
    }

    /// Runs `p` with nothing observed and nothing to require.
    async fn run_alone(
        p: &Pipeline,
        runner: &impl FunctionRunner,
    ) -> Result<PipelineRun, PipelineError> {
        run(
            p,
            runner,
            &ObservedResources::new(),
            &StaticResources::default(),
        )
        .await
    }

    fn desired_resource(
        rsp: &mut proto::RunFunctionResponse,
        name: &str,
        value: Value,
        ready: bool,
    ) {
        let r = response::desired_composed(rsp, name);
        r.resource = Some(json_to_struct(value.as_object().unwrap()));
        if ready {
            r.ready = proto::Ready::True as i32;
        }
    }

    #[tokio::test]
    async fn a_native_step_reports_a_resource_a_required_patch_withholds_as_a_warning_for_the_claim()
     {
        let p = pipeline(json!([
            {"step": "pt", "functionRef": {"name": "function-patch-and-transform"},
             "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources", "resources": [
                {"name": "first", "base": config_map("x"), "readinessChecks": [{"type": "None"}]},
                {"name": "replica", "base": config_map("r"), "patches": [
                    {"fromFieldPath": "spec.region", "toFieldPath": "data.region"},
                    {"fromFieldPath": "spec.replicaRegion", "toFieldPath": "data.replica",
                     "policy": {"fromFieldPath": "Required"}}]}]}},
        ]));
        let runner = Scripted::new(|_, req| response::to(req, Duration::from_secs(60)));
        let out = run_alone(&p, &runner).await.unwrap();
        assert_eq!(
            out.results,
            [StepResult {
                step: "pt".into(),
                severity: Severity::Warning,
                reason: Some("RequiredSourceMissing".into()),
                message: "resource `replica` withheld: waiting for spec.replicaRegion: Required patch 1 FromCompositeFieldPath".into(),
                claim: true,
            }]
        );
        let names: Vec<&str> = out
            .finished
            .resources
            .iter()
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(names, ["first"], "the function leaves it out");
    }

    #[tokio::test]
    async fn a_remote_step_sees_context_environment_credentials_and_accumulated_desired_state() {
        let p = pipeline(json!([
            {"step": "pt", "functionRef": {"name": "function-patch-and-transform"},
             "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources", "resources": [
                {"name": "first", "base": config_map("x"), "readinessChecks": [{"type": "None"}]}]}},
            {"step": "remote", "functionRef": {"name": "fn"}, "input": {"apiVersion": "x/v1", "kind": "In", "n": 1},
             "credentials": [{"name": "c", "source": "Secret", "secretRef": {"namespace": "ns", "name": "creds"}}]},
        ]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(30));
            desired_resource(&mut rsp, "second", config_map("y"), false);
            rsp
        });
        let out = run_alone(&p, &runner).await.unwrap();
        let calls = runner.calls.lock().unwrap();
        let req = &calls[0];
        let context = struct_to_json(req.context.as_ref().unwrap());
        assert_eq!(context[ENVIRONMENT_CONTEXT_KEY], json!({"tier": "gold"}));
        assert_eq!(struct_to_json(req.input.as_ref().unwrap())["n"], json!(1));
        let Some(proto::credentials::Source::CredentialData(data)) = &req.credentials["c"].source
        else {
            panic!("credential data expected");
        };
        assert_eq!(data.data["token"], b"s3cr3t");
        assert!(
            req.desired
                .as_ref()
                .unwrap()
                .resources
                .contains_key("first")
        );
        let meta = req.meta.as_ref().unwrap();
        assert_eq!(meta.tag, tag(req), "the tag is the hash of the request");
        assert_eq!(meta.tag.len(), 64);
        assert!(
            meta.capabilities
                .contains(&(proto::Capability::RequiredResources as i32))
        );
        let names: Vec<&str> = out
            .finished
            .resources
            .iter()
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(names, ["first", "second"], "pipeline order is kept");
        assert_eq!(out.ttl, Some(Duration::from_secs(30)));
        assert_eq!(
            out.finished.resources[1].1.pointer("/metadata/name"),
            Some(&json!("y")),
            "a name the function set is kept"
        );
        assert_eq!(
            out.finished.resources[1].1["metadata"]["ownerReferences"][0]["uid"],
            json!("u-1")
        );
    }

    #[tokio::test]
    async fn requirements_are_answered_and_the_step_reruns_until_they_settle() {
        let p = pipeline(json!([{"step": "remote", "functionRef": {"name": "fn"}}]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            let found = req
                .required_resources
                .get("cfg")
                .map(|r| r.items.len())
                .unwrap_or(0);
            rsp.requirements = Some(proto::Requirements {
                resources: HashMap::from([(
                    "cfg".to_owned(),
                    proto::ResourceSelector {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        namespace: Some("default".into()),
                        r#match: Some(proto::resource_selector::Match::MatchName(
                            "settings".into(),
                        )),
                    },
                )]),
                ..Default::default()
            });
            if found == 1 {
                desired_resource(&mut rsp, "from-required", config_map("z"), true);
            }
            rsp
        });
        let required = StaticResources {
            resources: vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "default"}}),
            ],
            schemas: BTreeMap::new(),
        };
        let out = run(&p, &runner, &ObservedResources::new(), &required)
            .await
            .unwrap();
        assert_eq!(
            runner.calls.lock().unwrap().len(),
            2,
            "one run to ask, one with the answer"
        );
        assert_eq!(out.finished.resources.len(), 1);
    }

    #[tokio::test]
    async fn requirements_that_never_settle_stop_after_five_runs() {
        let p = pipeline(json!([{"step": "remote", "functionRef": {"name": "fn"}}]));
        let runner = Scripted::new(|n, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            rsp.requirements = Some(proto::Requirements {
                resources: HashMap::from([(
                    format!("r{n}"),
                    proto::ResourceSelector {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        namespace: None,
                        r#match: Some(proto::resource_selector::Match::MatchName(format!("n{n}"))),
                    },
                )]),
                ..Default::default()
            });
            rsp
        });
        let err = run_alone(&p, &runner).await.unwrap_err();
        assert!(matches!(err, PipelineError::Requirements { .. }), "{err}");
        assert_eq!(
            runner.calls.lock().unwrap().len(),
            MAX_REQUIREMENT_ITERATIONS
        );
    }

    #[tokio::test]
    async fn a_fatal_result_stops_the_pipeline_and_names_the_step() {
        let p = pipeline(json!([
            {"step": "boom", "functionRef": {"name": "fn"}},
            {"step": "never", "functionRef": {"name": "other"}},
        ]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            response::warning(&mut rsp, "careful");
            response::fatal(&mut rsp, "cannot compose");
            rsp
        });
        let err = run_alone(&p, &runner).await.unwrap_err();
        let PipelineError::Fatal {
            step,
            message,
            results,
            ..
        } = &err
        else {
            panic!("fatal expected: {err}");
        };
        assert_eq!(
            (step.as_str(), message.as_str()),
            ("boom", "cannot compose")
        );
        assert_eq!(
            results.len(),
            2,
            "the warning before the fatal result is kept"
        );
        assert!(err.to_string().contains("\"boom\""), "{err}");
    }

    #[tokio::test]
    async fn an_unknown_function_is_one_error_naming_the_step() {
        let p = pipeline(json!([{"step": "s", "functionRef": {"name": "missing"}}]));
        let runner = Scripted::new(|_, req| response::to(req, Duration::from_secs(1)));
        let err = run_alone(&p, &runner).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "step \"s\" (function \"missing\"): no Function named \"missing\" is known (no functions file entry or Function object)"
        );
    }

    #[tokio::test]
    async fn only_ready_true_counts_and_auto_ready_marks_observed_ready_resources() {
        let p = pipeline(json!([
            {"step": "remote", "functionRef": {"name": "fn"}},
            {"step": "ready", "functionRef": {"name": "function-auto-ready"}},
        ]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            desired_resource(&mut rsp, "a", config_map("a"), false);
            desired_resource(&mut rsp, "b", config_map("b"), false);
            rsp
        });
        let mut ready_a = config_map("a");
        ready_a["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let observed = ObservedResources::from([(
            "a".to_owned(),
            ObservedResource {
                resource: ready_a,
                connection_details: ConnectionDetails::new(),
            },
        )]);
        let out = run(&p, &runner, &observed, &StaticResources::default())
            .await
            .unwrap();
        assert_eq!(out.finished.unready, ["b"]);
        let ready = out.finished.composite_status["conditions"][0].clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "Unready resources: b");
    }

    #[tokio::test]
    async fn a_sequencer_withholds_later_resources_until_earlier_ones_are_ready() {
        let p = pipeline(json!([
            {"step": "remote", "functionRef": {"name": "fn"}},
            {"step": "order", "functionRef": {"name": "function-sequencer"},
             "input": {"apiVersion": "sequencer.fn.crossplane.io/v1beta1", "kind": "Input",
                       "rules": [{"sequence": ["db", "app-.*"]}]}},
        ]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            for n in ["app-1", "app-2", "db"] {
                desired_resource(&mut rsp, n, config_map(n), false);
            }
            rsp
        });
        let out = run_alone(&p, &runner).await.unwrap();
        let names: Vec<&str> = out
            .finished
            .resources
            .iter()
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(names, ["db"]);
        let withheld: Vec<&str> = out
            .finished
            .withheld
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        assert_eq!(withheld, ["app-1", "app-2"]);
        assert_eq!(out.finished.withheld[0].waiting_for, ["db"]);
    }

    #[tokio::test]
    async fn depends_on_annotations_that_form_a_cycle_name_every_member() {
        let p = pipeline(json!([{"step": "remote", "functionRef": {"name": "fn"}}]));
        let runner = Scripted::new(|_, req| {
            let mut rsp = response::to(req, Duration::from_secs(60));
            for (n, dep) in [("a", "c"), ("b", "a"), ("c", "b")] {
                let mut cm = config_map(n);
                cm["metadata"]["annotations"] = json!({"strata.dev/depends-on": dep});
                desired_resource(&mut rsp, n, cm, false);
            }
            rsp
        });
        let err = run_alone(&p, &runner).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("dependency cycle between composed resources: "),
            "{text}"
        );
        for n in ["a", "b", "c"] {
            assert!(text.contains(n), "{text}");
        }
    }

    #[test]
    fn a_selector_matches_by_kind_namespace_name_or_labels() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"env": "prod"}}});
        let sel = |ns: Option<&str>, m: proto::resource_selector::Match| proto::ResourceSelector {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: ns.map(str::to_owned),
            r#match: Some(m),
        };
        use proto::resource_selector::Match;
        let labels = |k: &str, v: &str| {
            Match::MatchLabels(proto::MatchLabels {
                labels: HashMap::from([(k.to_owned(), v.to_owned())]),
            })
        };
        let rows = [
            ("by name", sel(None, Match::MatchName("a".into())), true),
            (
                "another name",
                sel(None, Match::MatchName("b".into())),
                false,
            ),
            ("by label", sel(Some("ns"), labels("env", "prod")), true),
            (
                "a label that differs",
                sel(None, labels("env", "dev")),
                false,
            ),
            (
                "another namespace",
                sel(Some("other"), Match::MatchName("a".into())),
                false,
            ),
        ];
        for (reason, s, want) in rows {
            assert_eq!(selector_matches(&s, &obj), want, "{reason}");
        }
    }
}
