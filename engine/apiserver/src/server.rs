//! Starting and stopping the control plane: data dir, credentials (admin token, token file,
//! ServiceAccount signing keys), listener, kubeconfig, background controllers.

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
    /// Static users (kube-apiserver's `--token-auth-file` format).
    pub token_auth_file: Option<PathBuf>,
    /// The `iss` of ServiceAccount tokens and the OIDC discovery document; the server's URL
    /// when `None`.
    pub service_account_issuer: Option<String>,
    /// Retire the ServiceAccount signing key and sign with a new one from this start on.
    pub rotate_service_account_key: bool,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir,
            listen,
            kubeconfig: None,
            event_history: crate::store::DEFAULT_EVENT_HISTORY,
            authorization: crate::rbac::Mode::Rbac,
            token_auth_file: None,
            service_account_issuer: None,
            rotate_service_account_key: false,
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
    #[error(transparent)]
    TokenFile(#[from] crate::token_file::TokenFileError),
    #[error(transparent)]
    ServiceAccountKeys(#[from] crate::service_account::KeyError),
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
    issuer: String,
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
        // Settings are checked before anything is opened or written.
        let users = match &config.token_auth_file {
            Some(path) => crate::token_file::TokenFile::load(path)?,
            None => Default::default(),
        };
        if let Some(issuer) = &config.service_account_issuer {
            crate::service_account::validate_issuer(issuer)?;
        }
        let store = Store::open(&config.data_dir)?.with_event_history(config.event_history);
        let token = match store.token()? {
            Some(t) => t,
            None => {
                let t = crate::auth::new_token();
                store.save_token(&t)?;
                t
            }
        };
        let tls = crate::tls::load_or_create(&config.data_dir, &store, config.listen.ip())?;
        let now = jiff::Timestamp::now().as_second();
        let stored = crate::service_account::parse_stored(
            store
                .meta(crate::service_account::SIGNING_KEYS_META)?
                .as_deref(),
        )?;
        let (keys, changed) = crate::service_account::plan_keys(
            stored,
            config.rotate_service_account_key,
            now,
            || crate::service_account::StoredKey::generate(now),
        )?;
        if changed {
            let text = serde_json::to_string(&keys).unwrap_or_default();
            store.put_meta(&[(crate::service_account::SIGNING_KEYS_META, &text)])?;
        }
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
        let issuer = crate::service_account::TokenIssuer::new(
            config.service_account_issuer.as_deref().unwrap_or(&url),
            &keys,
        )?;
        crate::auth::write_kubeconfig(
            &kubeconfig,
            &url,
            &tls.ca_pem,
            "strata",
            &crate::auth::Credentials::Token(&token),
        )
        .map_err(|source| ServerError::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;
        let issuer_url = issuer.issuer().to_owned();
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let writes = Arc::new(crate::writes::WriteCounter::default());
        let state = Arc::new(crate::http::AppState {
            cluster: cluster.clone(),
            authn: Arc::new(crate::auth::Authenticator::new(
                token.clone(),
                users,
                issuer,
            )),
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
            let app =
                app.into_make_service_with_connect_info::<crate::client_cert::ClientIdentity>();
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
            issuer: issuer_url,
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

    /// The issuer (`iss`) of ServiceAccount tokens, where OIDC discovery is served from.
    pub fn service_account_issuer(&self) -> &str {
        &self.issuer
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
