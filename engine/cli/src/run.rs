//! `strata run`: the controllers against any Kubernetes API (a kubeconfig, the environment, or
//! in-cluster configuration) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

/// How logs are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between resyncs of converged objects; watches drive everything else.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve /metrics, /healthz and /readyz on this address (loopback recommended).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Reconcile only while holding a coordination.k8s.io Lease, so several replicas can run.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "strata-system")]
    pub leader_election_namespace: String,
    /// Write per-XRD ClusterRoles aggregating claim kinds (and namespaced XR kinds) into the
    /// `edit` and `view` roles; the controllers then need `create`, `patch` and `escalate` on
    /// ClusterRoles.
    #[arg(long)]
    pub aggregate_to_user_roles: bool,
    /// Write per XRD a ClusterRole labelled `rbac.strata.dev/aggregate-to-controllers` granting
    /// its XR and claim kinds (`deploy/`'s `strata` ClusterRole aggregates it, as `strata up`'s
    /// `strata:controllers` does); the controllers then need `create`, `patch` and `escalate` on
    /// ClusterRoles.
    #[arg(long)]
    pub aggregate_to_controllers: bool,
    #[command(flatten)]
    pub functions: crate::functions_config::FunctionFlags,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let leader_election = args
        .leader_elect
        .then(|| strata_controllers::leader::LeaderElection {
            namespace: args.leader_election_namespace.clone(),
            name: "strata-controllers".to_owned(),
            identity: identity(),
            lease_duration: Duration::from_secs(15),
        });
    let client = strata_controllers::client(args.kubeconfig.as_deref())
        .await
        .context("connecting to the Kubernetes API")?;
    // Processes are stopped when this function returns.
    let (functions, _processes) = args.functions.start(Some(&client)).await?;
    let settings = strata_controllers::Settings {
        functions,
        resync: Duration::from_secs(args.resync),
        metrics_addr: args.metrics_addr,
        leader_election,
        aggregate_to_user_roles: args.aggregate_to_user_roles,
        aggregate_to_controllers: args.aggregate_to_controllers,
        ..Default::default()
    };
    tracing::info!(resync_seconds = args.resync, metrics = ?args.metrics_addr, "starting controllers");
    crate::reconcilers::run(client, settings, shutdown_signal())
        .await
        .context("running the controllers")?;
    tracing::info!("controllers stopped");
    Ok(())
}

/// This process's leader-election identity: the pod (host) name and the process id.
fn identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "strata".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Installs the log subscriber `strata run` and `strata up` share: `RUST_LOG` filters (default
/// `info`), `format` shapes each line, everything goes to stderr.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A subscriber may already be installed (when embedded); keep it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGTERM handler; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
