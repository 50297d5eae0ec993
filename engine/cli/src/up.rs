//! `strata up`: run the embedded, Kubernetes-compatible control plane until Ctrl-C or SIGTERM.
//!
//! It logs as `strata run` does (`RUST_LOG`, `--log-format text|json`, on stderr), so the
//! controllers' warnings and errors are visible; the start-up lines on stdout stay for people.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use strata_apiserver::{Server, ServerConfig};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Directory holding the durable store and the generated kubeconfig.
    #[arg(long, default_value = ".strata")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig (default: <data-dir>/kubeconfig).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Serve the API only, without Strata's controllers.
    #[arg(long)]
    pub no_controllers: bool,
    /// Static users: a CSV file in kube-apiserver's format, `token,user,uid[,"group1,group2"]`.
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// The issuer (`iss`) of ServiceAccount tokens and of the OIDC discovery document, an
    /// https:// URL (default: the server's URL).
    #[arg(long, value_name = "URL")]
    pub service_account_issuer: Option<String>,
    /// Sign ServiceAccount tokens with a new key from now on; the old key keeps verifying the
    /// tokens it signed until they expire.
    #[arg(long)]
    pub rotate_service_account_key: bool,
    /// Time a client has to send a request's headers, from the connection's accept or a
    /// request's first byte; slower connections are closed (kube-apiserver: 32s).
    #[arg(long, default_value = "32s", value_parser = crate::render_functions::parse_duration)]
    pub request_header_timeout: std::time::Duration,
    /// Time a keep-alive connection may stay open with no request in flight (kube-apiserver: 90s).
    #[arg(long, default_value = "90s", value_parser = crate::render_functions::parse_duration)]
    pub idle_connection_timeout: std::time::Duration,
    /// Open connections allowed from one client address; more are closed at once, with a warning.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,
    /// Open connections allowed from all clients together.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Encrypt Secrets with a new key from now on (kept in <data-dir>/encryption-keys.json); every
    /// stored Secret is re-encrypted at this start, and older keys are kept to read backups.
    #[arg(long)]
    pub rotate_encryption_key: bool,
    /// Log format (filtered by RUST_LOG, default `info`).
    #[arg(long, value_enum, default_value_t = crate::run::LogFormat::Text)]
    pub log_format: crate::run::LogFormat,
    #[command(flatten)]
    pub functions: crate::functions_config::FunctionFlags,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    crate::run::init_logging(args.log_format);
    // Checked and started before the control plane, so a bad file changes nothing; the
    // processes stop when this function returns.
    let (functions, processes) = args.functions.start(None).await?;
    for p in &processes {
        println!("strata up: function {} serving on {}", p.name, p.address);
    }
    let mut config = ServerConfig::new(args.data_dir.clone(), args.listen);
    config.kubeconfig = args.kubeconfig;
    config.token_auth_file = args.token_auth_file;
    config.service_account_issuer = args.service_account_issuer;
    config.rotate_service_account_key = args.rotate_service_account_key;
    config.rotate_encryption_key = args.rotate_encryption_key;
    config.connections = strata_apiserver::connections::Limits {
        request_header_timeout: args.request_header_timeout,
        idle_timeout: args.idle_connection_timeout,
        max_connections_per_client: args.max_connections_per_client as usize,
        max_connections: args.max_connections as usize,
    };
    let server = Server::start(config)
        .await
        .with_context(|| format!("starting the control plane in {}", args.data_dir.display()))?;
    println!("strata up: serving the Kubernetes API on {}", server.url());
    println!(
        "strata up: kubeconfig written to {}",
        server.kubeconfig_path().display()
    );
    println!(
        "strata up: service-account token issuer {}",
        server.service_account_issuer()
    );
    tracing::info!(addr = %server.addr(), controllers = !args.no_controllers, "control plane started");
    if args.no_controllers {
        println!("strata up: controllers disabled (--no-controllers)");
        wait_for_signal().await?;
    } else {
        // The controllers talk to the embedded server exactly as they would to any cluster,
        // through a kube::Client, as their own least-privilege identity
        // (`system:strata:controllers`, bound to the `strata:controllers` ClusterRole), from a
        // kubeconfig held in memory only.
        let client =
            strata_controllers::client_from_kubeconfig_yaml(server.controllers_kubeconfig())
                .await
                .context("connecting the controllers to the embedded control plane")?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut reconcilers = tokio::spawn(crate::reconcilers::run(
            client,
            // The embedded control plane is a team's: claim kinds reach `edit` and `view`.
            strata_controllers::Settings {
                aggregate_to_user_roles: true,
                aggregate_to_controllers: true,
                functions,
                ..Default::default()
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        println!("strata up: controllers and providers running");
        let signal = wait_for_signal();
        tokio::pin!(signal);
        tokio::select! {
            r = &mut signal => {
                r?;
                let _ = stop_tx.send(());
                match reconcilers.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "reconcilers stopped with an error"),
                    Err(e) => tracing::warn!(error = %e, "reconcilers task failed"),
                }
            }
            r = &mut reconcilers => {
                server.shutdown().await;
                match r {
                    Ok(Ok(())) => anyhow::bail!("the reconcilers stopped unexpectedly"),
                    Ok(Err(e)) => return Err(e.context("the reconcilers failed")),
                    Err(e) => return Err(anyhow::Error::new(e).context("the reconcilers task failed")),
                }
            }
        }
    }
    println!("strata up: shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
