//! Starting and stopping the control plane: data dir, credentials (admin token, token file,
//! ServiceAccount signing keys, Secret encryption keys), listener, kubeconfig, background
//! controllers, and the credentials of Strata's own controllers.
//!
//! The controllers' identity ([`Server::controllers_kubeconfig`]) is a client certificate for
//! `system:strata:controllers` in `system:strata`, signed by the data dir's CA at every start
//! and kept in memory only: its key is never written, so no other local user can read it (a
//! new key and certificate at every start; like any client certificate it cannot be revoked,
//! which matters only if this process's memory is read).

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
    /// Where the store, the CA, the signing keys and the kubeconfig live; created if missing.
    pub data_dir: PathBuf,
    /// The HTTPS address; port 0 picks a free one (see [`Server::addr`]).
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
    /// Connection bounds and timeouts.
    pub connections: crate::connections::Limits,
    /// Seal Secrets with a new encryption key from this start on (all are re-sealed at start).
    pub rotate_encryption_key: bool,
}

impl ServerConfig {
    /// The defaults `strata up` uses: RBAC, the default event history and connection limits, no
    /// token file, the server's URL as issuer, no key rotation.
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
            connections: crate::connections::Limits::default(),
            rotate_encryption_key: false,
        }
    }
}

/// Why a control plane could not start. Each names what was being done; none leaves a server
/// half-running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Opening the store in the data dir failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Loading the stored objects failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA or the serving certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The connection limits are unusable.
    #[error(transparent)]
    Limits(#[from] crate::connections::LimitsError),
    /// The Secret encryption keys could not be loaded, made or rotated.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),
    /// Writing the default RBAC roles and bindings failed.
    #[error("creating the default RBAC roles: {0}")]
    Bootstrap(crate::error::ApiError),
    /// The token file could not be read or has a malformed line.
    #[error(transparent)]
    TokenFile(#[from] crate::token_file::TokenFileError),
    /// The ServiceAccount signing keys could not be loaded, made or rotated.
    #[error(transparent)]
    ServiceAccountKeys(#[from] crate::service_account::KeyError),
    /// The in-process controllers' client certificate could not be issued.
    #[error("the controllers' client certificate: {0}")]
    ControllersIdentity(#[from] crate::client_cert::IssueError),
    /// The admin kubeconfig could not be written.
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig's path.
        path: PathBuf,
        /// The I/O error.
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
    controllers_kubeconfig: String,
    shutdown: Option<oneshot::Sender<()>>,
    stopping: tokio::sync::watch::Sender<bool>,
    serve: JoinHandle<()>,
    gc: JoinHandle<()>,
    aggregation: JoinHandle<()>,
    writes: Arc<crate::writes::WriteCounter>,
    cluster: Arc<crate::cluster::Cluster>,
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
        config.connections.validate()?;
        let store = Store::open(&config.data_dir)?.with_event_history(config.event_history);
        // Read after the store is locked, so two servers never write the keys file at once.
        let secret_keys = crate::encryption::Keyring::load_or_create(
            &config.data_dir,
            config.rotate_encryption_key,
        )?;
        let store = store.with_secret_encryption(secret_keys)?;
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
        crate::kubernetes_service::publish(&cluster, SocketAddr::new(host, addr.port()))
            .await
            .map_err(ServerError::Bootstrap)?;
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
        let controllers_kubeconfig = controllers_kubeconfig(&config.data_dir, &url, &tls.ca_pem)?;
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
            openapi: Default::default(),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = crate::http::router(state);
        let serve = tokio::spawn(crate::connections::serve(
            listener,
            tls.config,
            app,
            config.connections,
            async move {
                let _ = shutdown_rx.await;
            },
        ));
        let aggregation = tokio::spawn(crate::rbac::aggregation::run(cluster.clone()));
        let gc = tokio::spawn(crate::gc::run(cluster.clone()));
        Ok(Server {
            addr,
            url,
            token,
            ca_pem: tls.ca_pem,
            issuer: issuer_url,
            kubeconfig,
            controllers_kubeconfig,
            shutdown: Some(shutdown_tx),
            stopping,
            serve,
            gc,
            aggregation,
            writes,
            cluster,
        })
    }

    /// The address the server listens on, with the port actually bound.
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

    /// The admin bearer token (user `strata-admin`, group `system:masters`), as in the kubeconfig.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where the admin kubeconfig was written.
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// A kubeconfig (YAML, in memory only) for Strata's own controllers: user
    /// `system:strata:controllers` in group `system:strata`, bound to the `strata:controllers`
    /// ClusterRole, by a client certificate valid while this process runs.
    pub fn controllers_kubeconfig(&self) -> &str {
        &self.controllers_kubeconfig
    }

    /// The write requests (POST, PUT, PATCH, DELETE) received since the server started.
    pub fn write_counts(&self) -> crate::writes::WriteCounts {
        self.writes.snapshot()
    }

    /// What the store has committed since the server started: `(durable transactions, writes)`.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.cluster.commit_stats()
    }

    /// How many objects the server stores and their size as JSON (O(objects): for benchmarks).
    pub fn object_stats(&self) -> crate::cluster::ObjectStats {
        self.cluster.object_stats()
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

/// How long the controllers' certificate is valid: longer than any process runs. Its key lives
/// in this process's memory only and a new one is issued at every start.
const CONTROLLERS_CERTIFICATE_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Issues the controllers' client certificate with the data dir's CA and wraps it in a
/// kubeconfig, without writing either.
fn controllers_kubeconfig(
    data_dir: &std::path::Path,
    url: &str,
    ca_pem: &str,
) -> Result<String, ServerError> {
    use crate::rbac::bootstrap::{CONTROLLERS_GROUP, CONTROLLERS_USER};
    let ca =
        crate::tls::read_ca(data_dir)?.ok_or_else(|| crate::client_cert::IssueError::Failed {
            doing: "reading the CA",
            detail: format!("{} has no CA files", data_dir.display()),
        })?;
    let issued = crate::client_cert::issue(
        &ca.cert_pem,
        &ca.key_pem,
        CONTROLLERS_USER,
        &[CONTROLLERS_GROUP.to_owned()],
        CONTROLLERS_CERTIFICATE_VALIDITY,
    )?;
    crate::auth::kubeconfig_text(
        url,
        ca_pem,
        CONTROLLERS_USER,
        &crate::auth::Credentials::ClientCertificate {
            certificate_pem: &issued.certificate_pem,
            key_pem: &issued.private_key_pem,
        },
    )
    .map_err(|source| ServerError::Kubeconfig {
        path: std::path::PathBuf::from("(the controllers' kubeconfig, in memory)"),
        source,
    })
}
