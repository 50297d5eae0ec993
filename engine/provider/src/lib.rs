//! The managed-resource contract: the provider trait every cloud crate implements, and the pure
//! decision of what the managed-resource runtime does next.
//!
//! Data enters as a [`Managed`] view of one managed resource (its external name, `forProvider`
//! and last `atProvider`), built by the runtime from the Kubernetes object. A provider
//! [`connect`](Provider::connect)s with a ProviderConfig to get an [`External`] client whose verbs
//! talk to the cloud. The runtime observes, feeds the [`Observation`] and the object's annotations
//! into [`next_step`], and executes the returned [`Step`]. Nothing here touches Kubernetes: the
//! only way a provider reaches a Secret is the [`Secrets`] port the runtime hands it.
//!
//! Its own crate so that the providers and the managed-resource runtime build on the contract
//! alone, without the composition core. The managed-resource wire strings live in [`wire`].

#![warn(missing_docs, unreachable_pub)]

pub mod wire;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A boxed, sendable future: what every provider verb returns, so the traits stay `dyn`-usable.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Keys and values of a connection Secret (endpoint, port, username, password, …).
pub type ConnectionDetails = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------------
// Identifiers and policies
// ---------------------------------------------------------------------------------------------

/// The name of a resource in the cloud (`strata.dev/external-name`), distinct from its
/// Kubernetes name so that an existing cloud resource can be adopted under any object name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalName(String);

impl ExternalName {
    /// Wraps a cloud name. The runtime only builds one from a non-empty annotation or object name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The cloud name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing a management policy may allow the runtime to do to the cloud resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ManagementAction {
    /// Read the cloud resource and report it in `status.atProvider`.
    Observe,
    /// Create the cloud resource when it is absent.
    Create,
    /// Bring the cloud resource in line with `spec.forProvider`.
    Update,
    /// Delete the cloud resource when the object is deleted.
    Delete,
    /// Copy values the cloud defaulted into unset `spec.forProvider` fields.
    LateInitialize,
}

impl ManagementAction {
    const ALL: [ManagementAction; 5] = [
        ManagementAction::Observe,
        ManagementAction::Create,
        ManagementAction::Update,
        ManagementAction::Delete,
        ManagementAction::LateInitialize,
    ];

    fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == word)
    }

    /// The spelling used in `spec.managementPolicies`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagementAction::Observe => "Observe",
            ManagementAction::Create => "Create",
            ManagementAction::Update => "Update",
            ManagementAction::Delete => "Delete",
            ManagementAction::LateInitialize => "LateInitialize",
        }
    }
}

/// What the runtime may do to a cloud resource (`spec.managementPolicies`): `["*"]` (the
/// default) or a subset of `Observe Create Update Delete LateInitialize`. `["Observe"]` alone
/// imports an existing resource read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementPolicies(BTreeSet<ManagementAction>);

/// A `spec.managementPolicies` list that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A word that names no policy.
    #[error(
        "spec.managementPolicies: unknown policy `{0}` (expected `*` or one of Observe, Create, Update, Delete, LateInitialize)"
    )]
    Unknown(String),
    /// A set without Observe: the runtime cannot act without reading first.
    #[error("spec.managementPolicies: every policy set must include Observe (or be `*`)")]
    MissingObserve,
}

impl ManagementPolicies {
    /// `["*"]`: full control.
    pub fn all() -> Self {
        Self(ManagementAction::ALL.into_iter().collect())
    }

    /// `["Observe"]`: read-only import.
    pub fn observe_only() -> Self {
        Self(BTreeSet::from([ManagementAction::Observe]))
    }

    /// Parses `spec.managementPolicies`; an empty or absent list means `*`.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Self, PolicyError> {
        if words.is_empty() {
            return Ok(Self::all());
        }
        let mut set = BTreeSet::new();
        for word in words {
            let word = word.as_ref();
            if word == "*" {
                set.extend(ManagementAction::ALL);
            } else {
                set.insert(
                    ManagementAction::parse(word)
                        .ok_or_else(|| PolicyError::Unknown(word.to_owned()))?,
                );
            }
        }
        if !set.contains(&ManagementAction::Observe) {
            return Err(PolicyError::MissingObserve);
        }
        Ok(Self(set))
    }

    /// Whether the policies allow `action`.
    pub fn allows(&self, action: ManagementAction) -> bool {
        self.0.contains(&action)
    }
}

/// What happens to the cloud resource when its Kubernetes object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the cloud resource, then release the object.
    #[default]
    Delete,
    /// Leave the cloud resource in place and only release the object.
    Orphan,
}

// ---------------------------------------------------------------------------------------------
// What providers see and return
// ---------------------------------------------------------------------------------------------

/// A namespaced Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretReference {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace.
    pub namespace: String,
}

/// One key of a namespaced Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace.
    pub namespace: String,
    /// The key within the Secret.
    pub key: String,
}

impl SecretKeySelector {
    /// The Secret this key lives in.
    pub fn secret(&self) -> SecretReference {
        SecretReference {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Names the ProviderConfig a managed resource uses (`default` when absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderConfigReference {
    /// The ProviderConfig's name (ProviderConfigs are cluster scoped).
    pub name: String,
}

/// The spec fields every managed resource shares, flattened into each kind's spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// `*` (the default) or a subset of Observe, Create, Update, Delete, LateInitialize.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_policies: Vec<String>,
    /// `Delete` (the default) or `Orphan`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The ProviderConfig to connect with; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_config_ref: Option<ProviderConfigReference>,
    /// The Secret that receives the connection details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<SecretReference>,
}

/// A status condition (`Ready`, `Synced`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, `Ready` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, e.g. `ReconcileError`.
    pub reason: String,
    /// A human-readable explanation; empty when there is nothing to add.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The status fields every managed resource shares, flattened into each kind's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The `Ready` and `Synced` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The provider's view of one managed resource, built by the runtime from the object.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    /// The Kubernetes object name (for messages).
    pub name: String,
    /// The cloud identifier the provider must use.
    pub external_name: ExternalName,
    /// `spec.forProvider`: the desired cloud state.
    pub for_provider: Value,
    /// `status.atProvider` from the last observation (`Null` before the first).
    pub at_provider: Value,
    /// `spec.writeConnectionSecretToRef`, if any.
    pub connection_secret: Option<SecretReference>,
}

/// What [`External::observe`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// No cloud resource carries this external name.
    Absent,
    /// The cloud resource exists.
    Present(Present),
}

/// The state of an existing cloud resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Present {
    /// Whether every field of `forProvider` matches the cloud.
    pub up_to_date: bool,
    /// A JSON merge patch for `spec.forProvider` filling fields the user left unset with the
    /// cloud's values. `None` when it would change nothing: a provider must never report a late
    /// initialization that is already applied, or the runtime would spin.
    pub late_init: Option<Value>,
    /// Connection details readable now (they may grow after create, e.g. an endpoint).
    pub connection_details: ConnectionDetails,
    /// The value for `status.atProvider`.
    pub at_provider: Value,
    /// Whether the resource is usable (RDS `available`; a bucket always is).
    pub ready: bool,
}

/// What [`External::create`] returns beyond success.
#[derive(Clone, Debug, Default)]
pub struct Created {
    /// Details only known at create time (a generated password, say).
    pub connection_details: ConnectionDetails,
    /// The resource as the create call reported it, when it did: the runtime assesses it
    /// instead of reading the resource again (a cloud that creates synchronously is Ready at
    /// once).
    pub record: Option<CloudRecord>,
}

/// One cloud resource as a read returned it. Opaque to the runtime: only the provider that
/// read it interprets it, in [`External::assess`] and [`External::update`].
#[derive(Clone)]
pub struct CloudRecord(Arc<dyn Any + Send + Sync>);

impl CloudRecord {
    /// Wraps a provider's own record type.
    pub fn new<T: Any + Send + Sync>(record: T) -> Self {
        Self(Arc::new(record))
    }

    /// The record as the provider's own type; `None` if it holds another type.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for CloudRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CloudRecord(..)")
    }
}

/// One page of a sweep: the records of every resource in a scope, a page at a time.
#[derive(Clone, Debug, Default)]
pub struct SweepPage {
    /// The resources on this page, by external name.
    pub records: Vec<(ExternalName, CloudRecord)>,
    /// The token of the next page; `None` on the last.
    pub next: Option<String>,
}

/// How the runtime should react to a failed verb. Classified once, by the provider, from the
/// cloud's error code — the runtime never inspects messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying will not help until the spec or the world changes (bad input, already exists
    /// elsewhere, access denied, a non-empty bucket).
    Terminal,
    /// The cloud asked us to slow down.
    Throttled,
    /// A network or server hiccup; retry soon.
    Transient,
    /// The resource is in a state that forbids the verb for now (RDS `creating`, `modifying`).
    NotReadyYet,
}

/// A failed provider verb: what was being done, to what, why, and how to react.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} `{target}`: {message}")]
pub struct ProviderError {
    /// How the runtime should react.
    pub class: ErrorClass,
    /// The verb or setup step, e.g. `create DB instance`.
    pub operation: String,
    /// The external name, ProviderConfig or field concerned.
    pub target: String,
    /// The cloud's (or our) explanation, meant for the Synced condition.
    pub message: String,
}

impl ProviderError {
    /// An error of the given class.
    pub fn new(
        class: ErrorClass,
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            operation: operation.into(),
            target: target.into(),
            message: message.into(),
        }
    }

    /// A terminal error: bad input or a state only a human can fix.
    pub fn terminal(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorClass::Terminal, operation, target, message)
    }
}

/// The runtime's Secret port: the only way a provider reads credentials or stores a generated
/// password. Implementations must be idempotent; `put_key` writes only when the value differs.
pub trait Secrets: Send + Sync {
    /// All keys of a Secret, decoded as UTF-8; `None` when the Secret does not exist.
    fn get<'a>(
        &'a self,
        secret: &'a SecretReference,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, ProviderError>>;

    /// Sets one key of a Secret, creating the Secret when missing.
    fn put_key<'a>(
        &'a self,
        secret: &'a SecretReference,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// Group, version, kind and plural of a Kubernetes kind a provider serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// The API group, e.g. `rds.aws.strata.dev`.
    pub group: &'static str,
    /// The API version, e.g. `v1alpha1`.
    pub version: &'static str,
    /// The kind, e.g. `DBInstance`.
    pub kind: &'static str,
    /// The plural resource name, e.g. `dbinstances`.
    pub plural: &'static str,
}

impl ResourceKind {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// Which verbs a client-side rate limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitedVerbs {
    /// Every cloud call, observe included (RDS counts every API request).
    All,
    /// Only create and delete (GCS limits bucket creation and deletion per project).
    CreateAndDelete,
}

/// A client-side token bucket per account or project, so a burst of claims stays under the
/// cloud's published limits instead of collecting throttling errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed back to back.
    pub burst: u32,
    /// One more call is allowed every `replenish_every`.
    pub replenish_every: Duration,
    /// Which verbs the limit counts.
    pub verbs: RateLimitedVerbs,
}

/// A cloud provider: the kinds it serves and how to get a client for one ProviderConfig.
pub trait Provider: Send + Sync {
    /// The managed-resource kind (e.g. `rds.aws.strata.dev/v1alpha1 DBInstance`). Cluster scoped.
    fn managed_kind(&self) -> ResourceKind;

    /// The ProviderConfig kind (cluster scoped) that `spec.providerConfigRef.name` names.
    fn provider_config_kind(&self) -> ResourceKind;

    /// The CRDs of the managed kind and the ProviderConfig kind.
    fn crds(&self) -> Vec<CustomResourceDefinition>;

    /// The client-side limit per [`External::rate_key`].
    fn rate_limit(&self) -> RateLimit;

    /// Checks `forProvider` before anything talks to the cloud: a bad spec becomes a terminal
    /// error naming the field, and nothing is created. Pure (no I/O). The runtime skips it while
    /// deleting, so an invalid object can always be deleted.
    fn validate(&self, managed: &Managed) -> Result<(), ProviderError> {
        let _ = managed;
        Ok(())
    }

    /// Builds a client from a ProviderConfig object (`spec` as JSON), reading any credential
    /// Secret through `secrets`. Must not call the cloud's resource APIs; may exchange tokens.
    fn connect<'a>(
        &'a self,
        provider_config: &'a Value,
        secrets: Arc<dyn Secrets>,
    ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>>;
}

/// A connected cloud client for one kind. The contract every implementation keeps:
/// - `read`, `assess` and `sweep_page` never mutate the cloud;
/// - every verb is idempotent — calling it twice has the effect of calling it once;
/// - `delete` treats "not found" as success;
/// - errors carry an [`ErrorClass`] derived from the cloud's error code, never from text.
///
/// Observing is split in two so that one listing call can serve many resources: `read` (or a
/// page of `sweep_page`) fetches the cloud's record, `assess` compares it with `forProvider`.
pub trait External: Send + Sync {
    /// The account region or project `managed` lives in. Client-side rate limits count calls
    /// per scope (and ProviderConfig), and a sweep lists one scope.
    fn scope(&self, managed: &Managed) -> String;

    /// Reads the cloud resource named by `managed.external_name`; `None` when there is none.
    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>>;

    /// Compares a record of this resource (from `read`, a sweep or `create`) with `forProvider`.
    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>>;

    /// Reads the resource and assesses it.
    fn observe<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Observation, ProviderError>> {
        Box::pin(async move {
            match self.read(managed).await? {
                None => Ok(Observation::Absent),
                Some(record) => Ok(Observation::Present(self.assess(managed, &record).await?)),
            }
        })
    }

    /// Whether [`External::sweep_page`] lists resources (one call for many reads).
    fn can_sweep(&self) -> bool {
        false
    }

    /// One page of every resource of this kind in `scope` (a value [`External::scope`]
    /// returned), starting at `page` (`None`: the first). Only called when `can_sweep`.
    fn sweep_page<'a>(
        &'a self,
        scope: &'a str,
        page: Option<String>,
    ) -> BoxFuture<'a, Result<SweepPage, ProviderError>> {
        let _ = (scope, page);
        Box::pin(async { Ok(SweepPage::default()) })
    }

    /// Creates the cloud resource under `managed.external_name`.
    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>>;

    /// Changes the cloud resource so it matches `forProvider`, touching only differing fields.
    /// `record` is the observation the runtime decided on; a provider whose update is guarded
    /// by a version (a GCS metageneration) fails with a retryable error if it is stale.
    fn update<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Starts or completes deletion; not-found is success.
    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>>;
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

/// How long after a recorded successful create an `Absent` observation is read as the cloud's
/// eventual consistency rather than as a vanished resource.
pub const CREATE_GRACE: Duration = Duration::from_secs(30);
/// How often to look again at a resource that exists but is not ready yet.
pub const NOT_READY_POLL: Duration = Duration::from_secs(5);

/// The create bookkeeping annotations, as Unix milliseconds. Written before and after every
/// cloud create so that a crash in between is visible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateRecord {
    /// When a create was last about to be attempted.
    pub pending: Option<i64>,
    /// When a create last succeeded.
    pub succeeded: Option<i64>,
    /// When a create last failed.
    pub failed: Option<i64>,
}

impl CreateRecord {
    /// A pending mark newer than both outcomes: a create may have reached the cloud without us
    /// recording it, so creating again could make a duplicate.
    pub fn incomplete(&self) -> bool {
        match self.pending {
            None => false,
            Some(pending) => {
                self.succeeded.is_none_or(|at| pending > at)
                    && self.failed.is_none_or(|at| pending > at)
            }
        }
    }

    /// Time left in the grace period after the last successful create, if any.
    fn grace_left(&self, now: i64) -> Option<Duration> {
        let succeeded = self.succeeded?;
        let grace = i64::try_from(CREATE_GRACE.as_millis()).unwrap_or(i64::MAX);
        let elapsed = now.saturating_sub(succeeded);
        (0..grace)
            .contains(&elapsed)
            .then(|| Duration::from_millis(u64::try_from(grace - elapsed).unwrap_or(0)))
    }
}

/// Everything [`next_step`] decides from: the object's gates (finalizer, pause, policies,
/// validation, a failure's backoff) and, once the gates let the cloud be observed, the
/// observation.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// What observing the cloud found; `None` before it was observed (the gates decide first,
    /// and [`Step::Observe`] asks for it).
    pub observation: Option<&'a Observation>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The runtime's finalizer is on the object.
    pub has_finalizer: bool,
    /// The external name is recorded in its annotation (`strata.dev/external-name`).
    pub external_name_recorded: bool,
    /// `strata.dev/paused: "true"`.
    pub paused: bool,
    /// `spec.managementPolicies`, parsed, or why they cannot be honoured.
    pub policies: Result<&'a ManagementPolicies, &'a PolicyError>,
    /// The provider's validation of the spec ([`Provider::validate`]).
    pub validation: Result<(), &'a ProviderError>,
    /// Time left before a failure of this same spec may be retried; `None` when it may be now.
    pub backoff: Option<Duration>,
    /// `spec.deletionPolicy`.
    pub deletion_policy: DeletionPolicy,
    /// The create bookkeeping annotations.
    pub create: CreateRecord,
    /// Unix milliseconds, supplied by the caller so the decision stays a pure function.
    pub now: i64,
}

/// Why the runtime does nothing and says so in a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `strata.dev/paused` is set.
    Paused,
    /// A create may have happened without being recorded; a human must check the cloud and
    /// then remove `strata.dev/external-create-pending` (or set the external name).
    CreateIncomplete,
    /// The resource does not exist and the policies forbid creating it (an import of
    /// something that is not there).
    AbsentAndCreateForbidden,
}

impl StopReason {
    /// The message for the Synced condition.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::Paused => "reconciliation is paused by the strata.dev/paused annotation",
            StopReason::CreateIncomplete => {
                "a previous create may have succeeded without being recorded: check the cloud, then \
                 remove the strata.dev/external-create-pending annotation or set strata.dev/external-name"
            }
            StopReason::AbsentAndCreateForbidden => {
                "the external resource does not exist and spec.managementPolicies does not allow Create"
            }
        }
    }
}

/// What the runtime does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Being deleted and the runtime's finalizer is gone: nothing is ours to do.
    Released,
    /// Refuse the spec (`Synced=False` with this message) until it changes; nothing reaches
    /// the cloud.
    Refuse {
        /// Why, for the `Synced` condition.
        message: String,
    },
    /// Record the finalizer and the external name on the object before any cloud call.
    AddFinalizer,
    /// A failure of this same spec is still backing off: look again after this long, without
    /// a cloud call.
    Backoff(Duration),
    /// The gates let the cloud be observed: observe it, then decide again with the observation.
    Observe,
    /// Create the cloud resource.
    Create,
    /// Update the cloud resource to match `spec.forProvider`.
    Update,
    /// Write the observation's `late_init` patch into `spec.forProvider`.
    LateInitialize,
    /// Delete the cloud resource.
    Delete,
    /// The cloud side is finished (gone, orphaned or not ours to delete): release the object.
    RemoveFinalizer,
    /// Look again after this long.
    Wait(Duration),
    /// Do nothing and say why in the Synced condition.
    Stop {
        /// Why the runtime stops.
        reason: StopReason,
    },
    /// In sync: come back at the drift-detection poll interval.
    Nothing,
}

/// Decides the next step of a managed resource from plain facts. Order of precedence: a
/// deletion that is no longer ours, pause, management policies that cannot be honoured, a spec
/// the provider refuses, the finalizer and external name, a failure's backoff; then, with the
/// observation, deletion, absence (create or refuse), late initialization, update, readiness.
pub fn next_step(facts: &Facts<'_>) -> Step {
    if facts.deleting && !facts.has_finalizer {
        return Step::Released;
    }
    if facts.paused {
        return Step::Stop {
            reason: StopReason::Paused,
        };
    }
    let policies = match facts.policies {
        Ok(policies) => policies,
        Err(error) => {
            return Step::Refuse {
                message: error.to_string(),
            };
        }
    };
    if !facts.deleting {
        // A bad spec never reaches the cloud; the next spec change brings us back.
        if let Err(error) = facts.validation {
            return Step::Refuse {
                message: error.to_string(),
            };
        }
        if !facts.has_finalizer || !facts.external_name_recorded {
            return Step::AddFinalizer;
        }
    }
    // Still backing off from a failure of this same spec: our own status and annotation
    // writes woke us, not a change worth a cloud call.
    if let Some(left) = facts.backoff {
        return Step::Backoff(left);
    }
    let Some(observation) = facts.observation else {
        return Step::Observe;
    };
    observed_step(facts, policies, observation)
}

/// The step once the gates passed and the cloud was observed.
fn observed_step(
    facts: &Facts<'_>,
    policies: &ManagementPolicies,
    observation: &Observation,
) -> Step {
    let allows = |action| policies.allows(action);
    if facts.deleting {
        let ours_to_delete =
            facts.deletion_policy == DeletionPolicy::Delete && allows(ManagementAction::Delete);
        return match observation {
            Observation::Present(_) if ours_to_delete => Step::Delete,
            _ => Step::RemoveFinalizer,
        };
    }
    match observation {
        Observation::Absent => {
            if facts.create.incomplete() {
                Step::Stop {
                    reason: StopReason::CreateIncomplete,
                }
            } else if !allows(ManagementAction::Create) {
                Step::Stop {
                    reason: StopReason::AbsentAndCreateForbidden,
                }
            } else if let Some(left) = facts.create.grace_left(facts.now) {
                Step::Wait(left)
            } else {
                Step::Create
            }
        }
        Observation::Present(present) => {
            if present.late_init.is_some() && allows(ManagementAction::LateInitialize) {
                Step::LateInitialize
            } else if !present.up_to_date && allows(ManagementAction::Update) {
                Step::Update
            } else if !present.ready {
                Step::Wait(NOT_READY_POLL)
            } else {
                Step::Nothing
            }
        }
    }
}

/// The base delay before retrying after an error of `class` on the `attempt`-th consecutive
/// failure (0-based), before jitter. `None` for terminal errors: those wait for a change to the
/// object or the drift-detection poll, never a fast retry.
pub fn retry_delay(class: ErrorClass, attempt: u32) -> Option<Duration> {
    let exponential = |base: Duration, cap: Duration| {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(cap)
    };
    match class {
        ErrorClass::Terminal => None,
        ErrorClass::Throttled => Some(exponential(
            Duration::from_secs(2),
            Duration::from_secs(300),
        )),
        ErrorClass::Transient => Some(exponential(
            Duration::from_millis(500),
            Duration::from_secs(120),
        )),
        ErrorClass::NotReadyYet => Some(NOT_READY_POLL),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn present(up_to_date: bool, late_init: bool, ready: bool) -> Observation {
        Observation::Present(Present {
            up_to_date,
            late_init: late_init.then(|| json!({"engineVersion": "16.3"})),
            connection_details: ConnectionDetails::new(),
            at_provider: Value::Null,
            ready,
        })
    }

    /// An object past every gate (finalized, named, valid, not backing off), observed.
    fn facts<'a>(observation: &'a Observation, policies: &'a ManagementPolicies) -> Facts<'a> {
        Facts {
            observation: Some(observation),
            deleting: false,
            has_finalizer: true,
            external_name_recorded: true,
            paused: false,
            policies: Ok(policies),
            validation: Ok(()),
            backoff: None,
            deletion_policy: DeletionPolicy::Delete,
            create: CreateRecord::default(),
            now: 1_000_000,
        }
    }

    /// A new object before any gate: no finalizer, no external name, not observed.
    fn new_object(policies: &ManagementPolicies) -> Facts<'_> {
        Facts {
            observation: None,
            has_finalizer: false,
            external_name_recorded: false,
            policies: Ok(policies),
            validation: Ok(()),
            deleting: false,
            paused: false,
            backoff: None,
            deletion_policy: DeletionPolicy::Delete,
            create: CreateRecord::default(),
            now: 1_000_000,
        }
    }

    #[test]
    fn the_gates_decide_before_the_cloud_is_observed() {
        let all = ManagementPolicies::all();
        let bad_policies = PolicyError::MissingObserve;
        let invalid = ProviderError::terminal("validate", "db", "spec.forProvider.size: required");
        let synced = present(true, false, true);
        let gated = Facts {
            has_finalizer: true,
            external_name_recorded: true,
            ..new_object(&all)
        };
        struct Row<'a> {
            reason: &'a str,
            facts: Facts<'a>,
            expected: Step,
        }
        let rows = [
            Row {
                reason: "a deleted object without our finalizer is not ours any more",
                facts: Facts {
                    deleting: true,
                    paused: true,
                    policies: Err(&bad_policies),
                    ..new_object(&all)
                },
                expected: Step::Released,
            },
            Row {
                reason: "paused wins over every other gate",
                facts: Facts {
                    paused: true,
                    policies: Err(&bad_policies),
                    validation: Err(&invalid),
                    backoff: Some(Duration::from_secs(3)),
                    ..new_object(&all)
                },
                expected: Step::Stop {
                    reason: StopReason::Paused,
                },
            },
            Row {
                reason: "paused blocks a deletion behind our finalizer",
                facts: Facts {
                    paused: true,
                    deleting: true,
                    ..gated
                },
                expected: Step::Stop {
                    reason: StopReason::Paused,
                },
            },
            Row {
                reason: "policies that cannot be honoured are refused, with their error",
                facts: Facts {
                    policies: Err(&bad_policies),
                    ..gated
                },
                expected: Step::Refuse {
                    message: bad_policies.to_string(),
                },
            },
            Row {
                reason: "policies that cannot be honoured block a deletion too",
                facts: Facts {
                    policies: Err(&bad_policies),
                    deleting: true,
                    ..gated
                },
                expected: Step::Refuse {
                    message: bad_policies.to_string(),
                },
            },
            Row {
                reason: "a spec the provider refuses never reaches the cloud",
                facts: Facts {
                    validation: Err(&invalid),
                    ..new_object(&all)
                },
                expected: Step::Refuse {
                    message: invalid.to_string(),
                },
            },
            Row {
                reason: "an invalid spec is still deleted",
                facts: Facts {
                    validation: Err(&invalid),
                    deleting: true,
                    ..gated
                },
                expected: Step::Observe,
            },
            Row {
                reason: "a new object gets the finalizer and external name first",
                facts: new_object(&all),
                expected: Step::AddFinalizer,
            },
            Row {
                reason: "an object that lost its external-name annotation records it again",
                facts: Facts {
                    external_name_recorded: false,
                    ..gated
                },
                expected: Step::AddFinalizer,
            },
            Row {
                reason: "the finalizer is recorded before a backoff is honoured",
                facts: Facts {
                    backoff: Some(Duration::from_secs(3)),
                    ..new_object(&all)
                },
                expected: Step::AddFinalizer,
            },
            Row {
                reason: "a failure of the same spec backs off without a cloud call",
                facts: Facts {
                    backoff: Some(Duration::from_secs(3)),
                    ..gated
                },
                expected: Step::Backoff(Duration::from_secs(3)),
            },
            Row {
                reason: "a deletion backs off after its failure too",
                facts: Facts {
                    backoff: Some(Duration::from_secs(3)),
                    deleting: true,
                    ..gated
                },
                expected: Step::Backoff(Duration::from_secs(3)),
            },
            Row {
                reason: "past every gate, the cloud is observed",
                facts: gated,
                expected: Step::Observe,
            },
            Row {
                reason: "a deletion behind our finalizer observes before it decides",
                facts: Facts {
                    deleting: true,
                    external_name_recorded: false,
                    ..gated
                },
                expected: Step::Observe,
            },
            Row {
                reason: "with the observation, the observed step",
                facts: Facts {
                    observation: Some(&synced),
                    ..gated
                },
                expected: Step::Nothing,
            },
        ];
        for row in rows {
            assert_eq!(next_step(&row.facts), row.expected, "{}", row.reason);
        }
    }

    #[test]
    fn next_step_follows_the_decision_table() {
        let all = ManagementPolicies::all();
        let observe = ManagementPolicies::observe_only();
        let no_delete =
            ManagementPolicies::parse(&["Observe", "Create", "Update", "LateInitialize"]).unwrap();
        let no_late_init =
            ManagementPolicies::parse(&["Observe", "Create", "Update", "Delete"]).unwrap();
        let absent = Observation::Absent;
        let synced = present(true, false, true);
        let drifted = present(false, false, true);
        let drifted_late = present(false, true, true);
        let creating = present(true, false, false);
        let pending = CreateRecord {
            pending: Some(900_000),
            succeeded: None,
            failed: None,
        };
        let recorded = CreateRecord {
            pending: Some(900_000),
            succeeded: Some(900_010),
            failed: None,
        };
        let just_created = CreateRecord {
            pending: Some(999_000),
            succeeded: Some(999_500),
            failed: None,
        };
        let failed = CreateRecord {
            pending: Some(900_000),
            succeeded: None,
            failed: Some(900_010),
        };
        let retried_after_failure = CreateRecord {
            pending: Some(900_020),
            succeeded: None,
            failed: Some(900_010),
        };

        struct Row<'a> {
            reason: &'a str,
            facts: Facts<'a>,
            expected: Step,
        }
        let rows = [
            Row {
                reason: "paused wins over everything",
                facts: Facts {
                    paused: true,
                    ..facts(&absent, &all)
                },
                expected: Step::Stop {
                    reason: StopReason::Paused,
                },
            },
            Row {
                reason: "paused blocks deletion too",
                facts: Facts {
                    paused: true,
                    deleting: true,
                    ..facts(&synced, &all)
                },
                expected: Step::Stop {
                    reason: StopReason::Paused,
                },
            },
            Row {
                reason: "absent with full control creates",
                facts: facts(&absent, &all),
                expected: Step::Create,
            },
            Row {
                reason: "absent after a recorded create past the grace period creates again",
                facts: Facts {
                    create: recorded,
                    ..facts(&absent, &all)
                },
                expected: Step::Create,
            },
            Row {
                reason: "absent after a failed create retries the create",
                facts: Facts {
                    create: failed,
                    ..facts(&absent, &all)
                },
                expected: Step::Create,
            },
            Row {
                reason: "an unrecorded create stops instead of duplicating",
                facts: Facts {
                    create: pending,
                    ..facts(&absent, &all)
                },
                expected: Step::Stop {
                    reason: StopReason::CreateIncomplete,
                },
            },
            Row {
                reason: "a pending newer than a failure is also unrecorded",
                facts: Facts {
                    create: retried_after_failure,
                    ..facts(&absent, &all)
                },
                expected: Step::Stop {
                    reason: StopReason::CreateIncomplete,
                },
            },
            Row {
                reason: "absent right after create is eventual consistency",
                facts: Facts {
                    create: just_created,
                    ..facts(&absent, &all)
                },
                expected: Step::Wait(Duration::from_millis(29_500)),
            },
            Row {
                reason: "observe-only import of a missing resource refuses",
                facts: facts(&absent, &observe),
                expected: Step::Stop {
                    reason: StopReason::AbsentAndCreateForbidden,
                },
            },
            Row {
                reason: "present and matching does nothing",
                facts: facts(&synced, &all),
                expected: Step::Nothing,
            },
            Row {
                reason: "drift is corrected by update",
                facts: facts(&drifted, &all),
                expected: Step::Update,
            },
            Row {
                reason: "observe-only never updates drift",
                facts: facts(&drifted, &observe),
                expected: Step::Nothing,
            },
            Row {
                reason: "late initialization comes before update",
                facts: facts(&drifted_late, &all),
                expected: Step::LateInitialize,
            },
            Row {
                reason: "late initialization needs its policy",
                facts: facts(&drifted_late, &no_late_init),
                expected: Step::Update,
            },
            Row {
                reason: "observe-only neither late-initializes nor updates",
                facts: facts(&drifted_late, &observe),
                expected: Step::Nothing,
            },
            Row {
                reason: "an existing resource that is not ready is polled",
                facts: facts(&creating, &all),
                expected: Step::Wait(NOT_READY_POLL),
            },
            Row {
                reason: "deleting a present resource deletes it",
                facts: Facts {
                    deleting: true,
                    ..facts(&synced, &all)
                },
                expected: Step::Delete,
            },
            Row {
                reason: "deleting a gone resource releases the object",
                facts: Facts {
                    deleting: true,
                    ..facts(&absent, &all)
                },
                expected: Step::RemoveFinalizer,
            },
            Row {
                reason: "orphan policy never deletes in the cloud",
                facts: Facts {
                    deleting: true,
                    deletion_policy: DeletionPolicy::Orphan,
                    ..facts(&synced, &all)
                },
                expected: Step::RemoveFinalizer,
            },
            Row {
                reason: "without the Delete policy the cloud resource is kept",
                facts: Facts {
                    deleting: true,
                    ..facts(&synced, &no_delete)
                },
                expected: Step::RemoveFinalizer,
            },
            Row {
                reason: "observe-only import is released without deletion",
                facts: Facts {
                    deleting: true,
                    ..facts(&synced, &observe)
                },
                expected: Step::RemoveFinalizer,
            },
            Row {
                reason: "deletion ignores an incomplete create",
                facts: Facts {
                    deleting: true,
                    create: pending,
                    ..facts(&absent, &all)
                },
                expected: Step::RemoveFinalizer,
            },
        ];
        for row in rows {
            assert_eq!(next_step(&row.facts), row.expected, "{}", row.reason);
        }
    }

    #[test]
    fn create_record_is_incomplete_only_when_pending_is_newest() {
        let cases = [
            (CreateRecord::default(), false, "nothing recorded"),
            (
                CreateRecord {
                    pending: Some(5),
                    ..Default::default()
                },
                true,
                "pending alone",
            ),
            (
                CreateRecord {
                    pending: Some(5),
                    succeeded: Some(5),
                    failed: None,
                },
                false,
                "same instant counts as recorded",
            ),
            (
                CreateRecord {
                    pending: Some(5),
                    succeeded: Some(4),
                    failed: None,
                },
                true,
                "pending after success",
            ),
            (
                CreateRecord {
                    pending: Some(5),
                    succeeded: None,
                    failed: Some(6),
                },
                false,
                "failure after pending",
            ),
            (
                CreateRecord {
                    pending: None,
                    succeeded: Some(6),
                    failed: None,
                },
                false,
                "imported, never pending",
            ),
        ];
        for (record, expected, reason) in cases {
            assert_eq!(record.incomplete(), expected, "{reason}");
        }
    }

    #[test]
    fn management_policies_parse_star_subsets_and_reject_nonsense() {
        assert_eq!(
            ManagementPolicies::parse::<&str>(&[]).unwrap(),
            ManagementPolicies::all()
        );
        assert_eq!(
            ManagementPolicies::parse(&["*"]).unwrap(),
            ManagementPolicies::all()
        );
        assert_eq!(
            ManagementPolicies::parse(&["Observe"]).unwrap(),
            ManagementPolicies::observe_only()
        );
        let subset = ManagementPolicies::parse(&["Observe", "Delete"]).unwrap();
        assert!(subset.allows(ManagementAction::Delete));
        assert!(!subset.allows(ManagementAction::Create));
        assert_eq!(
            ManagementPolicies::parse(&["Create"]),
            Err(PolicyError::MissingObserve)
        );
        assert_eq!(
            ManagementPolicies::parse(&["Observe", "Destroy"]),
            Err(PolicyError::Unknown("Destroy".into()))
        );
    }

    #[test]
    fn retry_delay_backs_off_by_class_and_caps() {
        assert_eq!(retry_delay(ErrorClass::Terminal, 0), None);
        assert_eq!(
            retry_delay(ErrorClass::Transient, 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_delay(ErrorClass::Transient, 3),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            retry_delay(ErrorClass::Transient, 40),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_delay(ErrorClass::Throttled, 1),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            retry_delay(ErrorClass::Throttled, 100),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            retry_delay(ErrorClass::NotReadyYet, 7),
            Some(NOT_READY_POLL)
        );
    }

    #[test]
    fn provider_error_message_names_operation_and_target() {
        let error = ProviderError::terminal(
            "create DB instance",
            "orders-db",
            "DBInstanceAlreadyExists: taken",
        );
        assert_eq!(
            error.to_string(),
            "create DB instance `orders-db`: DBInstanceAlreadyExists: taken"
        );
    }
}
