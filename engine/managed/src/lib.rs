//! Strata's managed-resource runtime: one generic reconciler that drives any provider's verbs.
//!
//! [`run`] starts one kube-runtime `Controller` per provider, over that provider's managed kind
//! as dynamic objects. Each reconcile (`reconcile`) reads the object, connects with its
//! ProviderConfig, observes the cloud, asks the provider contract's pure `next_step` what to do,
//! and does it: create (bracketed by the create-pending/succeeded/failed annotations), update,
//! late initialization, delete, finalizer removal. Every exit writes the Ready and Synced
//! conditions (only when they change), emits an event on each transition, and publishes
//! connection details.
//!
//! The public surface is what a binary needs to start the runtime: [`run`], its [`Settings`]
//! and [`Error`], and [`api_resource`] to address a provider's kind. The reconciler, its
//! conditions (`status`), rate limits and backoff (`limits`), shared cloud listings (`sweep`)
//! and the Secrets port (`secrets`) are private to it.

#![warn(missing_docs, unreachable_pub)]

mod limits;
mod reconcile;
mod secrets;
mod status;
mod sweep;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use strata_leader::{self as leader, LeaderElection};
use strata_provider::wire::FIELD_MANAGER;
use strata_provider::{Provider, ResourceKind};

use crate::reconcile::Context;

/// The finalizer the runtime holds until the cloud side of a managed resource is settled.
pub const FINALIZER: &str = strata_provider::wire::FINALIZER_MANAGED;
/// The ProviderConfig used when `spec.providerConfigRef` is absent.
pub const DEFAULT_PROVIDER_CONFIG: &str = "default";

/// Validated runtime settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often an in-sync resource is observed again to detect drift.
    pub poll_interval: Duration,
    /// The controller name on events.
    pub controller_name: String,
    /// Apply every provider's CRDs (server-side apply) before starting, and wait until served.
    pub install_crds: bool,
    /// Drive the clouds only while holding this Lease (the composition controllers' election,
    /// on a Lease of its own), so of several replicas exactly one calls the cloud APIs. `None`
    /// runs unconditionally (one replica).
    pub leader_election: Option<LeaderElection>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(60),
            controller_name: "strata-managed".into(),
            install_crds: true,
            leader_election: None,
        }
    }
}

/// Errors that stop the runtime itself (a single reconcile's errors never do).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A provider's managed kind cannot be listed, so its CRD is not installed (or, after
    /// installing, was not served within 30 seconds).
    #[error("managed kind {kind} is not served: {source}")]
    Watch {
        /// The managed kind, e.g. `DBInstance`.
        kind: String,
        /// The API server's answer to the list.
        source: kube::Error,
    },
    /// Applying one of a provider's CRDs was refused.
    #[error("install CRD {name}: {source}")]
    InstallCrd {
        /// The CRD's name, e.g. `dbinstances.rds.aws.strata.dev`.
        name: String,
        /// The API server's answer to the apply.
        source: kube::Error,
    },
    /// The Lease could not be acquired, or was lost while the controllers ran.
    #[error("leader election on Lease {lease}: {source}")]
    LeaderElection {
        /// The Lease as `NAMESPACE/NAME`.
        lease: String,
        /// What went wrong with it.
        source: strata_leader::Error,
    },
}

/// How long a freshly applied CRD may take to be served.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies `crds` and waits until `kind` can be listed.
async fn install_crds(client: &Client, provider: &dyn Provider) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in provider.crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|source| Error::InstallCrd {
            name: name.clone(),
            source,
        })?;
    }
    let resource = api_resource(&provider.managed_kind());
    let managed: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_TIMEOUT;
    loop {
        match managed.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(source) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Watch {
                    kind: resource.kind.clone(),
                    source,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What of a managed resource can change the runtime's next step: its spec (generation), its
/// deletion, its finalizers and its annotations except the create bookkeeping the runtime writes
/// itself. Status writes, ours or anyone's, never wake it; polls do.
pub fn wake_key(object: &DynamicObject) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &object.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    for (key, value) in meta.annotations.iter().flatten() {
        if !CREATE_BOOKKEEPING.contains(&key.as_str()) {
            (key, value).hash(&mut hasher);
        }
    }
    Some(hasher.finish())
}

/// The annotations the runtime writes around a cloud create.
const CREATE_BOOKKEEPING: [&str; 3] = [
    strata_provider::wire::ANNOTATION_EXTERNAL_CREATE_PENDING,
    strata_provider::wire::ANNOTATION_EXTERNAL_CREATE_SUCCEEDED,
    strata_provider::wire::ANNOTATION_EXTERNAL_CREATE_FAILED,
];

/// The Kubernetes API resource of a provider's kind.
pub fn api_resource(kind: &ResourceKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group, kind.version, kind.kind),
        kind.plural,
    )
}

/// Runs one controller per provider until `shutdown` completes. With leader election, first
/// waits for the Lease (returning `Ok` if shut down meanwhile), and returns an error when the
/// Lease is lost: the process should stop rather than risk two replicas calling the cloud.
pub async fn run(
    client: Client,
    providers: Vec<Arc<dyn Provider>>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.boxed().shared();
    let Some(election) = settings.leader_election.clone() else {
        return run_controllers(client, providers, settings, shutdown).await;
    };
    let lease = format!("{}/{}", election.namespace, election.name);
    tokio::select! {
        acquired = leader::acquire(&client, &election) => {
            acquired.map_err(|source| Error::LeaderElection { lease: lease.clone(), source })?;
        }
        () = shutdown.clone() => return Ok(()),
    }
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<strata_leader::Error>();
    let holder = {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = lost_tx.send(leader::hold(&client, &election).await);
        })
    };
    // `Error` is not `Clone`; the shared future hands out its message.
    let lost = async move {
        match lost_rx.await {
            Ok(error) => Some(error.to_string()),
            Err(_) => std::future::pending().await,
        }
    }
    .boxed()
    .shared();
    let stop = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                _ = lost => {}
            }
        }
        .boxed()
        .shared()
    };
    let result = run_controllers(client, providers, settings, stop).await;
    holder.abort();
    result?;
    match lost.now_or_never().flatten() {
        Some(message) => Err(Error::LeaderElection {
            lease,
            source: strata_leader::Error::Lost(message),
        }),
        None => Ok(()),
    }
}

async fn run_controllers(
    client: Client,
    providers: Vec<Arc<dyn Provider>>,
    settings: Settings,
    shutdown: futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>>,
) -> Result<(), Error> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: settings.controller_name.clone(),
            instance: None,
        },
    );
    let mut prepared = Vec::new();
    for provider in providers {
        if settings.install_crds {
            install_crds(&client, provider.as_ref()).await?;
        }
        let resource = api_resource(&provider.managed_kind());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        // Fail fast when the kind is not served (its CRD is not installed) instead of letting
        // the watcher retry forever.
        api.list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(|source| Error::Watch {
                kind: resource.kind.clone(),
                source,
            })?;
        prepared.push((provider, resource, api));
    }
    let controllers = prepared.into_iter().map(|(provider, resource, api)| {
        let context = Arc::new(Context::new(
            client.clone(),
            provider,
            settings.clone(),
            recorder.clone(),
        ));
        let stop = shutdown.clone();
        async move {
            tracing::info!(kind = %resource.kind, "managed-resource controller started");
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            // Wake only on what can change the decision: our own status and create-bookkeeping
            // writes would otherwise each cost one more cloud read.
            // A relist's objects trigger once the cache holds them (`strata_leader::relist`).
            let trigger = strata_leader::relist::applied_after_relist(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer),
            )
            .predicate_filter(wake_key, PredicateConfig::default());
            Controller::for_stream_with(trigger, store, resource)
                .graceful_shutdown_on(stop)
                .run(reconcile::reconcile, reconcile::error_policy, context)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "managed-resource reconcile failed");
                    }
                })
                .await;
        }
    });
    futures_util::future::join_all(controllers).await;
    Ok(())
}

#[cfg(test)]
mod scripted_tests;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(patch: serde_json::Value) -> DynamicObject {
        let mut base = json!({
            "apiVersion": "rds.aws.strata.dev/v1alpha1",
            "kind": "DBInstance",
            "metadata": {
                "name": "db", "uid": "u1", "generation": 1,
                "finalizers": [FINALIZER],
                "annotations": {"strata.dev/external-name": "db"},
            },
            "spec": {"forProvider": {"region": "us-east-1"}},
        });
        merge(&mut base, patch);
        serde_json::from_value(base).unwrap()
    }

    /// A JSON merge patch (RFC 7386).
    fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(target.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (target, patch) => *target = patch,
        }
    }

    #[test]
    fn only_what_can_change_the_next_step_wakes_the_runtime() {
        let before = wake_key(&object(json!({})));
        let same = [
            (
                "a status write",
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            (
                "the create bookkeeping",
                json!({"metadata": {"annotations": {
                    "strata.dev/external-create-pending": "2026-01-01T00:00:00Z",
                    "strata.dev/external-create-succeeded": "2026-01-01T00:00:01Z",
                }}}),
            ),
            ("a label", json!({"metadata": {"labels": {"team": "web"}}})),
        ];
        for (reason, patch) in same {
            assert_eq!(wake_key(&object(patch)), before, "{reason} does not wake");
        }
        let different = [
            ("a spec change", json!({"metadata": {"generation": 2}})),
            (
                "deletion",
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            ),
            (
                "an adopted external name",
                json!({"metadata": {"annotations": {"strata.dev/external-name": "legacy"}}}),
            ),
            (
                "pausing",
                json!({"metadata": {"annotations": {"strata.dev/paused": "true"}}}),
            ),
            (
                "a finalizer change",
                json!({"metadata": {"finalizers": []}}),
            ),
        ];
        for (reason, patch) in different {
            assert_ne!(wake_key(&object(patch)), before, "{reason} wakes");
        }
    }
}
