//! Strata's controllers: all of the engine's Kubernetes I/O.
//!
//! - `xrd`: XRD → XR CRD (+ claim CRD), and one XR (and claim) controller per XRD;
//! - [`xr`]: composes each XR with [`strata_core::render::render`] or its function pipeline
//!   ([`functions`]), applies in graph order,
//!   prunes after clean passes, deletes in reverse waves from the recorded inventory;
//! - [`claim`]: binds claims to XRs and copies status and connection Secrets back;
//! - `composition`: snapshots every Composition change as a CompositionRevision;
//! - `mirror`: serves Crossplane's own kinds by converting each into the native one
//!   (`crossplane` decides), unless Crossplane itself runs on the cluster;
//! - `package`: `pkg.crossplane.io` Functions' status: how each is reached.
//!
//! The decisions are pure modules (`select`, `inventory`, `revision`, `binding`,
//! `environment`, `conditions`, `shape`, `crossplane`), unit-tested; the controllers
//! observe, call them, then act.
//! [`run`] starts everything on one `kube::Client`, so `strata run` (any cluster) and
//! `strata up` (the embedded control plane) share one code path.
//!
//! The public surface is what the binary, the benchmarks and the integration tests use:
//! [`run`] and its [`Settings`], the clients, [`trace`], the [`shared`] caches and one XR
//! reconcile ([`xr::reconcile`], over a [`cached::Cached`] XR) for tests that drive a pass by hand. Everything else is
//! private to the crate.

#![warn(missing_docs, unreachable_pub)]

mod binding;
pub mod cached;
pub mod claim;
mod composition;
mod conditions;
mod crossplane;
mod environment;
mod error;
pub mod functions;
mod holds;
mod inventory;
pub mod kinds;
pub use strata_leader as leader;
pub mod metrics;
mod mirror;
mod package;
pub mod process;
mod relist;
mod revision;
mod roles;
mod select;
mod shape;
pub mod shared;
pub mod trace;
pub mod xr;
mod xrd;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use strata_core::model::{CompositeResourceDefinition, Composition, CompositionRevision};
use strata_core::wire;

pub use error::{Error, ErrorClass, Result};

/// Validated settings of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a converged object is looked at again when nothing notified us.
    pub resync: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// The name events are reported under.
    pub controller_name: String,
    /// Apply Strata's own CRDs (XRD, Composition, CompositionRevision, EnvironmentConfig) at start.
    pub install_crds: bool,
    /// Run only while holding this Lease; `None` runs unconditionally (one replica).
    pub leader_election: Option<leader::LeaderElection>,
    /// How long the XR and claim controllers wait after a change before reconciling, so a
    /// burst of changes (an XR's composed resources appearing one after another) costs one
    /// pass. Every further change in the window extends it.
    pub debounce: Duration,
    /// How many CompositionRevisions to keep per Composition (the newest by number); older
    /// ones are deleted unless an XR still uses them.
    pub revision_history_limit: usize,
    /// How many objects each XR and claim controller reconciles at once (0: no limit). Every
    /// pass in flight holds its objects and an API connection; a bound keeps memory flat when
    /// thousands of claims arrive together. 32 keeps two cores busy: with the embedded API
    /// server computing writes outside its state lock, 1,000 and 10,000 claims arriving at
    /// once are Ready about 5 % sooner than with 16, and 64 is no faster (the claims bench,
    /// `STRATA_BENCH_CONCURRENCY`).
    pub concurrency: u16,
    /// Write, per XRD, the ClusterRoles that aggregate its claim kinds (and namespaced XR kinds)
    /// into Kubernetes' `edit` and `view`. Needs the right to create ClusterRoles
    /// with those rules, so it is off unless asked for (`strata up` asks).
    pub aggregate_to_user_roles: bool,
    /// Write, per XRD, a ClusterRole labelled `rbac.strata.dev/aggregate-to-controllers` that
    /// grants its XR and claim kinds to the controllers' own role: on `strata up`
    /// the controllers hold only what that role aggregates. Needs the right to create
    /// ClusterRoles (with `escalate`), so it is off unless asked for (`strata up` asks).
    pub aggregate_to_controllers: bool,
    /// Where function pipelines' functions are reached (operator configuration).
    pub functions: functions::FunctionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(3600),
            metrics_addr: None,
            controller_name: "strata".to_owned(),
            install_crds: true,
            leader_election: None,
            debounce: Duration::from_millis(100),
            revision_history_limit: 10,
            concurrency: 32,
            aggregate_to_user_roles: false,
            aggregate_to_controllers: false,
            functions: functions::FunctionSettings::default(),
        }
    }
}

/// Runs every controller until `shutdown` resolves: the XRD and Composition controllers,
/// through them one XR (and claim) controller per XRD, and Crossplane's kinds when Crossplane
/// itself does not serve them.
///
/// With leader election, first waits for the Lease (returning `Ok` if shut down meanwhile).
/// Fails when the CRDs cannot be installed, the caches do not sync, the metrics server fails,
/// or the Lease is lost: the process should stop rather than risk two replicas writing.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let metrics_task = settings
        .metrics_addr
        .map(|addr| tokio::spawn(metrics::serve(addr, metrics.clone(), stopped())));
    let election = settings.leader_election.clone();
    let leading = async {
        if let Some(cfg) = &election {
            // A follower is healthy and ready to take over: report ready, or rolling updates of
            // several replicas would wait forever for a pod that cannot lead yet.
            metrics.set_ready();
            leader::acquire(&client, cfg).await?;
        }
        Ok::<(), Error>(())
    };
    tokio::pin!(shutdown);
    tokio::select! {
        r = leading => r?,
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            return Ok(());
        }
    }
    let lost = async {
        match &election {
            Some(cfg) => leader::hold(&client, cfg).await,
            None => std::future::pending().await,
        }
    };
    if settings.install_crds {
        install_crds(&client, strata_core::crd::engine_crds()).await?;
    }
    // Crossplane's kinds are an addition: failing to look at them never stops the native kinds.
    let crossplane = match mirror::prepare(&client, settings.install_crds).await {
        Ok(serve) => serve,
        Err(e) => {
            tracing::error!(error = %e, "not serving Crossplane's apiextensions.crossplane.io kinds");
            false
        }
    };
    let shared = shared::Shared::start(client.clone(), settings, metrics.clone())?;
    let work = async {
        shared.wait_ready().await?;
        metrics.set_ready();
        tracing::info!("caches synced; controllers running");
        let xrd_ctx = Arc::new(xrd::XrdContext::new(shared.clone()));
        let xrds: Api<CompositeResourceDefinition> = Api::all(client.clone());
        let xrd_controller = relist::controller(xrds, watcher::Config::default(), ())
            .graceful_shutdown_on(stopped())
            .run(xrd::reconcile, xrd::error_policy, xrd_ctx.clone())
            .for_each(|_| async {});
        let compositions: Api<Composition> = Api::all(client.clone());
        let revisions: Api<CompositionRevision> = Api::all(client.clone());
        let composition_controller =
            relist::controller(compositions, watcher::Config::default(), ())
                .owns(revisions, watcher::Config::default())
                .graceful_shutdown_on(stopped())
                .run(
                    composition::reconcile,
                    composition::error_policy,
                    shared.clone(),
                )
                .for_each(|_| async {});
        let mirrors = async {
            if crossplane {
                futures_util::future::join(
                    mirror::run(shared.clone(), stopped.clone()),
                    package::run(shared.clone(), stopped()),
                )
                .await;
            }
        };
        futures_util::future::join3(xrd_controller, composition_controller, mirrors).await;
        xrd_ctx.stop_all();
        Ok::<(), Error>(())
    };
    let result = tokio::select! {
        r = work => r,
        e = lost => Err(Error::from(e)),
        () = shutdown => Ok(()),
    };
    let _ = stop_tx.send(true);
    shared.stop();
    if let Some(t) = metrics_task
        && let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), t).await
    {
        return Err(e);
    }
    result
}

/// Applies CRDs Strata generates when they differ from the cluster's.
async fn install_crds(client: &Client, crds: Vec<CustomResourceDefinition>) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.name_any();
        let what = format!("CustomResourceDefinition {name}");
        let mut desired = serde_json::to_value(&crd).map_err(|source| Error::Serialize {
            object: what.clone(),
            source,
        })?;
        if let Some(o) = desired.as_object_mut() {
            o.insert("apiVersion".into(), json!("apiextensions.k8s.io/v1"));
            o.insert("kind".into(), json!("CustomResourceDefinition"));
            o.remove("status");
        }
        let observed = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("reading", what.clone(), e))?;
        let observed = observed
            .map(|c| serde_json::to_value(&c))
            .transpose()
            .map_err(|source| Error::Serialize {
                object: what.clone(),
                source,
            })?;
        if observed
            .as_ref()
            .is_some_and(|o| conditions::contains(o, &json!({"spec": desired.get("spec")})))
        {
            continue;
        }
        api.patch(
            &name,
            &PatchParams::apply(wire::FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(|e| Error::kube("applying", what, e))?;
    }
    Ok(())
}

/// Selects ring as the process's TLS crypto provider, once; later calls do nothing.
///
/// Two rustls providers are linked into Strata (ring, which every TLS path here uses, and
/// aws-lc-rs, which the function SDK's gRPC stack brings), and rustls then cannot pick a process
/// default by itself; kube-rs builds its client TLS from that default. Every process that makes a
/// kube client calls this first ([`client`] does). The API server has its own
/// (`strata_apiserver::tls`), as the controllers do not link it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client from a kubeconfig held in memory (YAML), as `strata up` hands its controllers
/// their own identity without writing it to disk.
pub async fn client_from_kubeconfig_yaml(yaml: &str) -> Result<Client> {
    install_crypto_provider();
    let file = kube::config::Kubeconfig::from_yaml(yaml)
        .map_err(|e| Error::invalid("the controllers' kubeconfig", e.to_string()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::invalid("the controllers' kubeconfig", e.to_string()))?;
    Client::try_from(config)
        .map_err(|e| Error::kube("creating a client for", "the Kubernetes API", e))
}

/// A client from a kubeconfig file, or inferred (`KUBECONFIG`, `~/.kube/config`, in-cluster)
/// when `kubeconfig` is `None`. An unreadable or invalid configuration is an
/// [`Error::Invalid`] naming the file, if there is one.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                Error::invalid(format!("kubeconfig {}", path.display()), e.to_string())
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    Error::invalid(format!("kubeconfig {}", path.display()), e.to_string())
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::invalid("the Kubernetes client configuration", e.to_string()))?,
    };
    Client::try_from(config)
        .map_err(|e| Error::kube("creating a client for", "the Kubernetes API", e))
}
