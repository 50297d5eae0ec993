//! Starting and stopping the control plane: data dir, token, listener, kubeconfig, background
//! controllers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, OpenError};
use crate::store::{Store, StoreError};

/// Validated settings for one control plane.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Where to write the kubeconfig; `<data_dir>/kubeconfig` when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// How many watch events are kept for resuming watches.
    pub event_history: u64,
    /// How requests are authorized: RBAC, unless a benchmark measures without it.
    pub authorization: crate::rbac::Mode,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir,
            listen,
            kubeconfig: None,
            event_history: crate::store::DEFAULT_EVENT_HISTORY,
            authorization: crate::rbac::Mode::Rbac,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("creating the default RBAC roles: {0}")]
    Bootstrap(crate::error::ApiError),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running control plane.
pub struct Server {
    addr: SocketAddr,
    url: String,
    token: String,
    ca_pem: String,
    kubeconfig: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    stopping: tokio::sync::watch::Sender<bool>,
    serve: JoinHandle<()>,
    gc: JoinHandle<()>,
    aggregation: JoinHandle<()>,
    writes: Arc<crate::writes::WriteCounter>,
}

impl Server {
    /// Opens the data dir, binds, writes the kubeconfig and starts serving in the background.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let store = Store::open(&config.data_dir)?.with_event_history(config.event_history);
        let token = match store.token()? {
            Some(t) => t,
            None => {
                let t = crate::auth::new_token();
                store.save_token(&t)?;
                t
            }
        };
        let tls = crate::tls::load_or_create(&store, config.listen.ip())?;
        let cluster = Cluster::open(store).await?;
        crate::rbac::bootstrap::ensure(&cluster)
            .await
            .map_err(ServerError::Bootstrap)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let host = if addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        };
        let url = format!("https://{}", SocketAddr::new(host, addr.port()));
        let kubeconfig = config
            .kubeconfig
            .clone()
            .unwrap_or_else(|| config.data_dir.join("kubeconfig"));
        crate::auth::write_kubeconfig(&kubeconfig, &url, &token, &tls.ca_pem).map_err(
            |source| ServerError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            },
        )?;
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let writes = Arc::new(crate::writes::WriteCounter::default());
        let state = Arc::new(crate::http::AppState {
            cluster: cluster.clone(),
            token: token.clone(),
            server_address: addr.to_string(),
            stopping: stopping_rx,
            writes: writes.clone(),
            authorization: config.authorization,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = crate::http::router(state);
        let listener = crate::tls::TlsListener::new(listener, tls.config).map_err(|source| {
            ServerError::Bind {
                addr: config.listen,
                source,
            }
        })?;
        let serve = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!("serving the API: {e}");
            }
        });
        let aggregation = tokio::spawn(crate::rbac::aggregation::run(cluster.clone()));
        let gc = tokio::spawn(crate::gc::run(cluster));
        Ok(Server {
            addr,
            url,
            token,
            ca_pem: tls.ca_pem,
            kubeconfig,
            shutdown: Some(shutdown_tx),
            stopping,
            serve,
            gc,
            aggregation,
            writes,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `https://` URL clients use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// The write requests (POST, PUT, PATCH, DELETE) received since the server started.
    pub fn write_counts(&self) -> crate::writes::WriteCounts {
        self.writes.snapshot()
    }

    /// Stops accepting requests, lets in-flight ones finish (watches are cut), and returns.
    pub async fn shutdown(mut self) {
        self.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.gc.abort();
        self.aggregation.abort();
        // Wait for the aborted controllers to drop their handles on the cluster (and so the
        // store).
        let _ = (&mut self.gc).await;
        let _ = (&mut self.aggregation).await;
        let serve = &mut self.serve;
        if tokio::time::timeout(std::time::Duration::from_secs(5), serve)
            .await
            .is_err()
        {
            self.serve.abort();
        }
    }
}
