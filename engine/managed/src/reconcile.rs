//! One reconcile of one managed resource: read → decide the gates → connect → observe → decide →
//! act → record. Every decision is the core's pure [`next_step`]: first from the object alone
//! (a deletion no longer ours, pause, policies, validation, finalizer and external name, a
//! failure's backoff), and, when it asks to [`Step::Observe`], again with the observation. This
//! module only gathers its facts and performs the I/O it asks for. Every exit writes conditions
//! (when they change) and returns when to look again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use strata_provider::wire::{
    ANNOTATION_EXTERNAL_CREATE_FAILED, ANNOTATION_EXTERNAL_CREATE_PENDING,
    ANNOTATION_EXTERNAL_CREATE_SUCCEEDED, ANNOTATION_EXTERNAL_NAME, ANNOTATION_PAUSED,
};
use strata_provider::{
    CloudRecord, Condition, ConnectionDetails, CreateRecord, DeletionPolicy, ErrorClass, External,
    ExternalName, Facts, Managed, ManagementPolicies, Observation, Provider, ProviderError,
    RateLimitedVerbs, ResourceSpec, Step, StopReason, next_step,
};

use crate::limits::{Failures, RateLimits, RetryKey};
use crate::secrets::KubeSecrets;
use crate::status::{self, Desired};
use crate::sweep::{self, Snapshot, Source, Sweeps};
use crate::{DEFAULT_PROVIDER_CONFIG, FINALIZER, Settings, api_resource};

/// Errors of the Kubernetes side of a reconcile; cloud errors become conditions instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("managed resource without metadata.name")]
    MissingName,
    #[error("{kind} {name}: {action}: {source}")]
    Kube {
        kind: String,
        name: String,
        action: &'static str,
        source: Box<kube::Error>,
    },
}

/// Shared state of one provider's controller.
pub(crate) struct Context {
    client: Client,
    provider: Arc<dyn Provider>,
    resource: ApiResource,
    provider_configs: ApiResource,
    settings: Settings,
    recorder: Recorder,
    secrets: KubeSecrets,
    limits: RateLimits,
    failures: Failures,
    sweeps: Sweeps,
    /// Connected clients by ProviderConfig name and resourceVersion: a changed config reconnects.
    connections: Mutex<HashMap<(String, String), Arc<dyn External>>>,
}

impl Context {
    pub(crate) fn new(
        client: Client,
        provider: Arc<dyn Provider>,
        settings: Settings,
        recorder: Recorder,
    ) -> Self {
        Self {
            resource: api_resource(&provider.managed_kind()),
            provider_configs: api_resource(&provider.provider_config_kind()),
            limits: RateLimits::new(provider.rate_limit()),
            secrets: KubeSecrets::new(client.clone()),
            failures: Failures::default(),
            sweeps: Sweeps::default(),
            connections: Mutex::new(HashMap::new()),
            client,
            provider,
            settings,
            recorder,
        }
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &self.resource)
    }

    async fn connect(&self, config_name: &str) -> Result<Arc<dyn External>, ProviderError> {
        let configs: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &self.provider_configs);
        let target = format!("{} {config_name}", self.provider_configs.kind);
        let config = configs
            .get_opt(config_name)
            .await
            .map_err(|error| {
                ProviderError::new(
                    ErrorClass::Transient,
                    "read ProviderConfig",
                    &target,
                    error.to_string(),
                )
            })?
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorClass::NotReadyYet,
                    "read ProviderConfig",
                    &target,
                    format!("spec.providerConfigRef names {target}, which does not exist"),
                )
            })?;
        let key = (
            config_name.to_owned(),
            config.resource_version().unwrap_or_default(),
        );
        if let Some(external) = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(external.clone());
        }
        let value = serde_json::to_value(&config).map_err(|error| {
            ProviderError::terminal("read ProviderConfig", &target, error.to_string())
        })?;
        let external = self
            .provider
            .connect(&value, Arc::new(self.secrets.clone()))
            .await?;
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.retain(|(name, _), _| name != config_name);
        connections.insert(key, external.clone());
        Ok(external)
    }

    /// Waits for the client-side rate limit of `scope` when it counts `call`.
    async fn limited(&self, scope: &str, call: Call) {
        let counted = match self.limits.limit().verbs {
            RateLimitedVerbs::All => true,
            RateLimitedVerbs::CreateAndDelete => matches!(call, Call::Create | Call::Delete),
        };
        if counted {
            self.limits.acquire(scope).await;
        }
    }
}

/// An observation and the record it was assessed from (for an update).
struct Observed {
    observation: Observation,
    record: Option<CloudRecord>,
}

/// Where a resource's calls are counted and listed.
struct Scope {
    /// `<ProviderConfig>/<scope>`: the client-side rate limit's key.
    rate_key: String,
    /// The listing's key.
    key: sweep::ScopeKey,
}

/// A kind of cloud call, for the client-side rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Read,
    Create,
    Update,
    Delete,
}

/// Everything read from the object once at the start of a reconcile.
struct Object {
    name: String,
    /// The ProviderConfig to connect with.
    config_name: String,
    spec: ResourceSpec,
    deleting: bool,
    has_finalizer: bool,
    annotations: BTreeMap<String, String>,
    conditions: Vec<Condition>,
    status: Value,
    managed: Managed,
    retry_key: RetryKey,
    /// The owner reference the connection Secret carries, so it is deleted with this object.
    /// `None` when the object has no uid or kind (never from the API server).
    owner: Option<OwnerReference>,
}

fn millis(annotations: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    annotations
        .get(key)
        .and_then(|value| value.parse::<jiff::Timestamp>().ok())
        .map(|at| at.as_millisecond())
}

fn retry_key(object: &DynamicObject) -> RetryKey {
    RetryKey {
        generation: object.metadata.generation,
        deleting: object.metadata.deletion_timestamp.is_some(),
    }
}

fn read_object(object: &DynamicObject) -> Result<Result<Object, String>, Error> {
    let name = object.metadata.name.clone().ok_or(Error::MissingName)?;
    let spec_value = object.data.get("spec").cloned().unwrap_or(Value::Null);
    let spec: ResourceSpec = match serde_json::from_value(spec_value.clone()) {
        Ok(spec) => spec,
        Err(error) => return Ok(Err(format!("spec: {error}"))),
    };
    let annotations = object.annotations().clone();
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let conditions: Vec<Condition> = status
        .get("conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let external_name = annotations
        .get(ANNOTATION_EXTERNAL_NAME)
        .filter(|value| !value.is_empty())
        .cloned()
        .unwrap_or_else(|| name.clone());
    let managed = Managed {
        name: name.clone(),
        external_name: ExternalName::new(external_name),
        for_provider: spec_value
            .get("forProvider")
            .cloned()
            .unwrap_or(Value::Null),
        at_provider: status.get("atProvider").cloned().unwrap_or(Value::Null),
        connection_secret: spec.write_connection_secret_to_ref.clone(),
    };
    let config_name = spec
        .provider_config_ref
        .as_ref()
        .map_or(DEFAULT_PROVIDER_CONFIG, |reference| reference.name.as_str())
        .to_owned();
    Ok(Ok(Object {
        config_name,
        retry_key: retry_key(object),
        deleting: object.metadata.deletion_timestamp.is_some(),
        has_finalizer: object.finalizers().iter().any(|f| f == FINALIZER),
        annotations,
        conditions,
        status,
        owner: connection_owner(object),
        managed,
        spec,
        name,
    }))
}

/// The managed resource as the owner of its connection Secret: the API server's garbage
/// collector deletes the Secret once the object is gone (a namespaced dependent may have a
/// cluster-scoped owner). Not a controller reference, and it does not block the owner's deletion.
fn connection_owner(object: &DynamicObject) -> Option<OwnerReference> {
    let types = object.types.as_ref()?;
    Some(OwnerReference {
        api_version: types.api_version.clone(),
        kind: types.kind.clone(),
        name: object.metadata.name.clone()?,
        uid: object.metadata.uid.clone()?,
        ..Default::default()
    })
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn condition_time() -> String {
    now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The controller's entry point.
pub(crate) async fn reconcile(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let run = Run {
        ctx: &ctx,
        object: &object,
    };
    let parsed = match read_object(&object)? {
        Ok(parsed) => parsed,
        Err(message) => {
            let name = object.name_any();
            run.record(
                &name,
                &[],
                &Value::Null,
                vec![Desired::sync_error(message)],
                None,
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    run.reconcile(parsed).await
}

/// Requeue after a Kubernetes error (cloud errors are handled inside `reconcile`).
pub(crate) fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, name = %object.name_any(), "managed-resource reconcile error");
    Action::requeue(ctx.failures.record(
        &object.name_any(),
        retry_key(&object),
        ErrorClass::Transient,
        Duration::from_secs(5),
    ))
}

struct Run<'a> {
    ctx: &'a Context,
    object: &'a DynamicObject,
}

impl Run<'_> {
    fn kube_error(&self, name: &str, action: &'static str) -> impl FnOnce(kube::Error) -> Error {
        let kind = self.ctx.resource.kind.clone();
        let name = name.to_owned();
        move |source| Error::Kube {
            kind,
            name,
            action,
            source: Box::new(source),
        }
    }

    async fn patch(&self, name: &str, action: &'static str, body: Value) -> Result<(), Error> {
        self.ctx
            .api()
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
            .map(|_| ())
            .map_err(self.kube_error(name, action))
    }

    async fn annotate(&self, name: &str, key: &str) -> Result<(), Error> {
        let at = now().to_string();
        self.patch(
            name,
            "record create annotation",
            json!({ "metadata": { "annotations": { key: at } } }),
        )
        .await
    }

    /// Writes conditions and `atProvider` when they differ from the object's, and emits one
    /// event per transition.
    async fn record(
        &self,
        name: &str,
        existing: &[Condition],
        current_status: &Value,
        desired: Vec<Desired>,
        at_provider: Option<&Value>,
    ) -> Result<(), Error> {
        let (conditions, transitions) = status::merge(existing, &desired, &condition_time());
        let conditions_value = serde_json::to_value(&conditions).unwrap_or(Value::Null);
        let conditions_changed = current_status.get("conditions").unwrap_or(&Value::Null)
            != &conditions_value
            && !(conditions.is_empty() && current_status.get("conditions").is_none());
        let at_provider_changed =
            at_provider.is_some_and(|at| current_status.get("atProvider") != Some(at));
        if conditions_changed || at_provider_changed {
            let mut patch = json!({ "status": { "conditions": conditions_value } });
            if let Some(at) = at_provider.filter(|_| at_provider_changed) {
                patch["status"]["atProvider"] = at.clone();
            }
            self.ctx
                .api()
                .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(self.kube_error(name, "write status"))?;
        }
        for transition in transitions {
            let type_ = if transition.status
                || (transition.type_ == status::TYPE_READY
                    && transition.reason != status::REASON_UNAVAILABLE)
            {
                EventType::Normal
            } else {
                EventType::Warning
            };
            let note = if transition.message.is_empty() {
                format!(
                    "{} is now {} ({})",
                    transition.type_, transition.status, transition.reason
                )
            } else {
                transition.message.clone()
            };
            let event = Event {
                type_,
                reason: transition.reason.to_owned(),
                note: Some(note.chars().take(1000).collect()),
                action: transition.type_.to_owned(),
                secondary: None,
            };
            let reference = self.object.object_ref(&self.ctx.resource);
            if let Err(error) = self.ctx.recorder.publish(&event, &reference).await {
                tracing::debug!(%error, name, "cannot publish event");
            }
        }
        Ok(())
    }

    /// Writes the connection details into the object's connection Secret, which the object owns
    /// unless its deletion policy is `Orphan` (the cloud resource and its details outlive it).
    async fn publish_connection(
        &self,
        object: &Object,
        details: &ConnectionDetails,
    ) -> Result<(), Error> {
        let Some(secret) = object
            .managed
            .connection_secret
            .as_ref()
            .filter(|_| !details.is_empty())
        else {
            return Ok(());
        };
        let owner = object
            .owner
            .as_ref()
            .filter(|_| object.spec.deletion_policy == DeletionPolicy::Delete);
        self.ctx
            .secrets
            .ensure_keys(secret, details, owner)
            .await
            .map_err(self.kube_error(&secret.name, "write connection secret"))?;
        Ok(())
    }

    /// A failed verb: Synced=False with the cloud's message, and a retry after the class's delay.
    async fn fail(
        &self,
        object: &Object,
        ready: Option<Desired>,
        at_provider: Option<&Value>,
        error: ProviderError,
    ) -> Result<Action, Error> {
        let mut desired = vec![Desired::sync_error(error.to_string())];
        desired.extend(ready);
        self.record(
            &object.name,
            &object.conditions,
            &object.status,
            desired,
            at_provider,
        )
        .await?;
        let delay = self.ctx.failures.record(
            &object.name,
            object.retry_key,
            error.class,
            self.ctx.settings.poll_interval,
        );
        Ok(Action::requeue(delay))
    }

    /// Observe → decide → act. The gates are decided by [`next_step`] from the object alone;
    /// only when it asks to [`Step::Observe`] does the pass connect and observe the cloud, and
    /// then it decides again with the observation.
    async fn reconcile(&self, object: Object) -> Result<Action, Error> {
        let name = object.name.clone();
        let policies = ManagementPolicies::parse(&object.spec.management_policies);
        let validation = self.ctx.provider.validate(&object.managed);
        let facts = Facts {
            observation: None,
            deleting: object.deleting,
            has_finalizer: object.has_finalizer,
            external_name_recorded: object.annotations.contains_key(ANNOTATION_EXTERNAL_NAME),
            paused: object
                .annotations
                .get(ANNOTATION_PAUSED)
                .is_some_and(|value| value == "true"),
            policies: policies.as_ref(),
            validation: validation.as_ref().map(|_| ()),
            backoff: self.ctx.failures.wait_left(&name, object.retry_key),
            deletion_policy: object.spec.deletion_policy,
            create: CreateRecord {
                pending: millis(&object.annotations, ANNOTATION_EXTERNAL_CREATE_PENDING),
                succeeded: millis(&object.annotations, ANNOTATION_EXTERNAL_CREATE_SUCCEEDED),
                failed: millis(&object.annotations, ANNOTATION_EXTERNAL_CREATE_FAILED),
            },
            now: now().as_millisecond(),
        };
        let step = next_step(&facts);
        if step != Step::Observe {
            tracing::debug!(name, ?step, "managed-resource gate");
            return self.settle(&object, step).await;
        }
        let external = match self.ctx.connect(&object.config_name).await {
            Ok(external) => external,
            Err(error) => {
                // Say which object could not connect: the ProviderConfig's own errors name only it.
                let error = ProviderError::new(
                    error.class,
                    "connect",
                    format!("{} {name}", self.ctx.resource.kind),
                    error.to_string(),
                );
                return self.fail(&object, None, None, error).await;
            }
        };
        let scope = Scope {
            rate_key: format!("{}/{}", object.config_name, external.scope(&object.managed)),
            key: (object.config_name.clone(), external.scope(&object.managed)),
        };
        let observed = match self.observe(&object, external.as_ref(), &scope).await {
            Ok(observed) => observed,
            Err(error) => return self.fail(&object, None, None, error).await,
        };
        let step = next_step(&Facts {
            observation: Some(&observed.observation),
            now: now().as_millisecond(),
            ..facts
        });
        tracing::debug!(name, ?step, "managed-resource step");
        self.act(object, observed, step, &facts, external.as_ref(), &scope)
            .await
    }

    /// Performs a step decided without an observation: the gates. None calls the cloud.
    async fn settle(&self, object: &Object, step: Step) -> Result<Action, Error> {
        let name = &object.name;
        let record = |desired| self.record(name, &object.conditions, &object.status, desired, None);
        match step {
            Step::Released => Ok(Action::await_change()),
            Step::Stop {
                reason: StopReason::Paused,
            } => {
                record(vec![Desired::paused()]).await?;
                Ok(Action::await_change())
            }
            Step::Refuse { message } => {
                record(vec![Desired::sync_error(message)]).await?;
                Ok(Action::await_change())
            }
            Step::AddFinalizer => {
                // One metadata write; its watch event brings us back.
                let mut finalizers = self.object.finalizers().to_vec();
                if !object.has_finalizer {
                    finalizers.push(FINALIZER.to_owned());
                }
                let body = json!({ "metadata": {
                    "finalizers": finalizers,
                    "annotations": { ANNOTATION_EXTERNAL_NAME: object.managed.external_name.as_str() },
                    "resourceVersion": self.object.resource_version(),
                }});
                self.patch(name, "add finalizer and external name", body)
                    .await?;
                Ok(Action::await_change())
            }
            Step::Backoff(left) => Ok(Action::requeue(left)),
            // The observed steps are decided only with an observation (`act` performs them);
            // asked for without one, the pass looks again soon.
            step => {
                tracing::debug!(name, ?step, "an observed step without an observation");
                Ok(Action::requeue(strata_provider::NOT_READY_POLL))
            }
        }
    }

    /// Observes the cloud resource: from the scope's listing when it can answer, else by a read
    /// of its own.
    async fn observe(
        &self,
        object: &Object,
        external: &dyn External,
        scope: &Scope,
    ) -> Result<Observed, ProviderError> {
        let managed = &object.managed;
        let mut facts = sweep::Facts {
            can_sweep: external.can_sweep(),
            deleting: object.deleting,
            seen_before: !managed.at_provider.is_null(),
            ready: status::is_true(&object.conditions, status::TYPE_READY),
            last_write: self.ctx.sweeps.last_write(&object.name),
            listing_taken: None,
            now: std::time::Instant::now(),
            poll_interval: self.ctx.settings.poll_interval,
        };
        let mut record = None;
        if sweep::plan(&facts) != Source::Read {
            // Concurrent polls of one scope wait here for a single listing.
            let listing = self.ctx.sweeps.listing(&scope.key);
            let mut listing = listing.lock().await;
            facts.listing_taken = listing.as_ref().map(|snapshot| snapshot.taken);
            facts.now = std::time::Instant::now();
            let source = sweep::plan(&facts);
            if source == Source::Relist {
                *listing = Some(self.list(external, scope).await?);
            }
            if source != Source::Read {
                record = listing
                    .as_ref()
                    .and_then(|snapshot| snapshot.records.get(&managed.external_name).cloned());
            }
        }
        // A resource the listing lacks is read on its own: absence is never taken from a listing.
        let record = match record {
            Some(record) => Some(record),
            None => {
                self.ctx.limited(&scope.rate_key, Call::Read).await;
                external.read(managed).await?
            }
        };
        match record {
            None => Ok(Observed {
                observation: Observation::Absent,
                record: None,
            }),
            Some(record) => Ok(Observed {
                observation: Observation::Present(external.assess(managed, &record).await?),
                record: Some(record),
            }),
        }
    }

    /// Lists a whole scope, a page at a time, each page counted against the rate limit.
    async fn list(
        &self,
        external: &dyn External,
        scope: &Scope,
    ) -> Result<Snapshot, ProviderError> {
        let taken = std::time::Instant::now();
        let mut records = HashMap::new();
        let mut page = None;
        loop {
            self.ctx.limited(&scope.rate_key, Call::Read).await;
            let listed = external.sweep_page(&scope.key.1, page).await?;
            records.extend(listed.records);
            match listed.next {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        tracing::debug!(scope = %scope.rate_key, resources = records.len(), "listed");
        Ok(Snapshot { taken, records })
    }

    /// Creates the cloud resource behind the create-pending mark, and decides on the create's
    /// answer at once ([`next_step`] with it as the observation).
    async fn create(
        &self,
        object: &Object,
        facts: &Facts<'_>,
        external: &dyn External,
        scope: &Scope,
    ) -> Result<Action, Error> {
        let name = &object.name;
        let poll = self.ctx.settings.poll_interval;
        // Pending first: if we crash after the cloud call, the next pass sees a pending
        // mark newer than any outcome and stops instead of creating a duplicate.
        self.annotate(name, ANNOTATION_EXTERNAL_CREATE_PENDING)
            .await?;
        self.ctx.limited(&scope.rate_key, Call::Create).await;
        let created = external.create(&object.managed).await;
        self.ctx.sweeps.wrote(name);
        match created {
            Ok(created) => {
                self.annotate(name, ANNOTATION_EXTERNAL_CREATE_SUCCEEDED)
                    .await?;
                self.ctx.failures.clear(name);
                // What the create answered is as good as a read: a resource the cloud
                // made synchronously is Ready now, without another call.
                let present = match &created.record {
                    Some(record) => external.assess(&object.managed, record).await.ok(),
                    None => None,
                };
                let mut details = created.connection_details;
                if let Some(present) = &present {
                    details.extend(present.connection_details.clone());
                }
                self.publish_connection(object, &details).await?;
                // Decide on the answer at once: a late initialization is written now
                // (its spec change brings us back), and only a resource with nothing
                // left to do is Ready.
                let follow = present.as_ref().map(|present| {
                    let observation = Observation::Present(present.clone());
                    next_step(&Facts {
                        observation: Some(&observation),
                        create: CreateRecord::default(),
                        now: now().as_millisecond(),
                        ..*facts
                    })
                });
                let done = follow == Some(Step::Nothing);
                let desired = vec![
                    if done {
                        Desired::ready(true, status::REASON_AVAILABLE)
                    } else {
                        Desired::ready(false, status::REASON_CREATING)
                    },
                    Desired::synced(),
                ];
                let at_provider = present.as_ref().map(|p| &p.at_provider);
                self.record(
                    name,
                    &object.conditions,
                    &object.status,
                    desired,
                    at_provider,
                )
                .await?;
                match (follow, present.and_then(|p| p.late_init)) {
                    (Some(Step::LateInitialize), Some(patch)) => {
                        self.patch(
                            name,
                            "late-initialize spec.forProvider",
                            json!({ "spec": { "forProvider": patch } }),
                        )
                        .await?;
                        Ok(Action::await_change())
                    }
                    _ if done => Ok(Action::requeue(poll)),
                    _ => Ok(Action::requeue(strata_provider::NOT_READY_POLL)),
                }
            }
            Err(error) => {
                self.annotate(name, ANNOTATION_EXTERNAL_CREATE_FAILED)
                    .await?;
                self.fail(
                    object,
                    Some(Desired::ready(false, status::REASON_UNAVAILABLE)),
                    None,
                    error,
                )
                .await
            }
        }
    }

    async fn act(
        &self,
        object: Object,
        Observed {
            observation,
            record,
        }: Observed,
        step: Step,
        facts: &Facts<'_>,
        external: &dyn External,
        scope: &Scope,
    ) -> Result<Action, Error> {
        let name = object.name.clone();
        let present = match &observation {
            Observation::Present(present) => Some(present),
            Observation::Absent => None,
        };
        let at_provider = present.map(|p| &p.at_provider);
        let ready_now = match present {
            Some(p) if p.ready => Desired::ready(true, status::REASON_AVAILABLE),
            Some(_) => Desired::ready(false, status::not_ready_reason(&object.conditions)),
            None => Desired::ready(false, status::REASON_UNAVAILABLE),
        };
        if let Some(present) = present.filter(|_| !object.deleting) {
            self.publish_connection(&object, &present.connection_details)
                .await?;
        }
        let poll = self.ctx.settings.poll_interval;
        match step {
            Step::Nothing => {
                self.ctx.failures.clear(&name);
                self.record(
                    &name,
                    &object.conditions,
                    &object.status,
                    vec![ready_now, Desired::synced()],
                    at_provider,
                )
                .await?;
                Ok(Action::requeue(poll))
            }
            Step::Wait(delay) => {
                let desired = if object.deleting {
                    Desired::ready(false, status::REASON_DELETING)
                } else {
                    ready_now
                };
                self.record(
                    &name,
                    &object.conditions,
                    &object.status,
                    vec![desired, Desired::synced()],
                    at_provider,
                )
                .await?;
                Ok(Action::requeue(delay))
            }
            // The gates are decided (and performed) before the observation.
            step @ (Step::Released
            | Step::Refuse { .. }
            | Step::AddFinalizer
            | Step::Backoff(_)
            | Step::Observe
            | Step::Stop {
                reason: StopReason::Paused,
            }) => self.settle(&object, step).await,
            Step::Stop { reason } => {
                let desired = vec![Desired::stopped(reason), ready_now];
                self.record(
                    &name,
                    &object.conditions,
                    &object.status,
                    desired,
                    at_provider,
                )
                .await?;
                Ok(Action::requeue(poll))
            }
            Step::LateInitialize => {
                let patch = present
                    .and_then(|p| p.late_init.clone())
                    .unwrap_or(Value::Null);
                self.patch(
                    &name,
                    "late-initialize spec.forProvider",
                    json!({ "spec": { "forProvider": patch } }),
                )
                .await?;
                Ok(Action::await_change())
            }
            Step::Create => self.create(&object, facts, external, scope).await,
            Step::Update => {
                let Some(record) = &record else {
                    // `next_step` updates only what it observed.
                    return Ok(Action::requeue(strata_provider::NOT_READY_POLL));
                };
                self.ctx.limited(&scope.rate_key, Call::Update).await;
                let updated = external.update(&object.managed, record).await;
                self.ctx.sweeps.wrote(&name);
                match updated {
                    Ok(()) => {
                        self.ctx.failures.clear(&name);
                        self.record(
                            &name,
                            &object.conditions,
                            &object.status,
                            vec![ready_now, Desired::synced()],
                            at_provider,
                        )
                        .await?;
                        Ok(Action::requeue(strata_provider::NOT_READY_POLL))
                    }
                    Err(error) => {
                        self.fail(&object, Some(ready_now), at_provider, error)
                            .await
                    }
                }
            }
            Step::Delete => {
                let deleting = Desired::ready(false, status::REASON_DELETING);
                self.ctx.limited(&scope.rate_key, Call::Delete).await;
                let deleted = external.delete(&object.managed).await;
                self.ctx.sweeps.wrote(&name);
                match deleted {
                    Ok(()) => {
                        self.record(
                            &name,
                            &object.conditions,
                            &object.status,
                            vec![deleting, Desired::synced()],
                            at_provider,
                        )
                        .await?;
                        Ok(Action::requeue(strata_provider::NOT_READY_POLL))
                    }
                    Err(error) => self.fail(&object, Some(deleting), None, error).await,
                }
            }
            Step::RemoveFinalizer => {
                let finalizers: Vec<&String> = self
                    .object
                    .finalizers()
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .collect();
                let body = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": self.object.resource_version() } });
                self.patch(&name, "remove finalizer", body).await?;
                self.ctx.failures.clear(&name);
                self.ctx.sweeps.forget(&name);
                Ok(Action::await_change())
            }
        }
    }
}
