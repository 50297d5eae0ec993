//! TLS for the API: a self-signed CA kept in the store (so kubeconfigs stay valid across
//! restarts), a server certificate issued at every start for the listen address, and a listener
//! that completes TLS handshakes off the accept loop.
//!
//! kubectl sends credentials only over TLS, so the API is always served over TLS.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

use crate::store::{Store, StoreError};

const CA_KEY: &str = "ca-key";
const CA_CERT: &str = "ca-cert";
const CA_COMMON_NAME: &str = "strata-apiserver-ca";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {doing}: {source}")]
    Certificate {
        doing: &'static str,
        source: rcgen::Error,
    },
    #[error("TLS: building the server configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Makes ring the process-wide rustls provider, for every TLS client in the process (kube-rs,
/// cloud SDKs). rustls cannot pick one by itself once a dependency also enables aws-lc-rs, and
/// then panics at the first client; ring is the workspace's choice. Idempotent.
pub fn install_default_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn cert_err(doing: &'static str) -> impl FnOnce(rcgen::Error) -> TlsError {
    move |source| TlsError::Certificate { doing, source }
}

/// What serving TLS needs: the CA clients trust and the server's configuration.
pub struct TlsMaterial {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(cert_err("building the CA parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2126, 1, 1);
    Ok(params)
}

/// Loads the CA from the store (creating it at first start) and issues a server certificate
/// for localhost, 127.0.0.1, ::1 and `listen_ip`.
pub fn load_or_create(store: &Store, listen_ip: IpAddr) -> Result<TlsMaterial, TlsError> {
    let (ca_key, ca_pem) = match (store.meta(CA_KEY)?, store.meta(CA_CERT)?) {
        (Some(key), Some(cert)) => (
            KeyPair::from_pem(&key).map_err(cert_err("reading the stored CA key"))?,
            cert,
        ),
        _ => {
            let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
            let cert = ca_params()?
                .self_signed(&key)
                .map_err(cert_err("self-signing the CA"))?;
            store.put_meta(&[(CA_KEY, &key.serialize_pem()), (CA_CERT, &cert.pem())])?;
            (key, cert.pem())
        }
    };
    let ca_der = CertificateDer::from(rustls_pem_der(&ca_pem).ok_or(TlsError::Certificate {
        doing: "reading the stored CA certificate",
        source: rcgen::Error::CouldNotParseCertificate,
    })?);
    let issuer = Issuer::new(ca_params()?, ca_key);
    let server_key = KeyPair::generate().map_err(cert_err("generating the server key"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(cert_err("building the server certificate parameters"))?;
    let mut ips = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if !ips.contains(&listen_ip) && !listen_ip.is_unspecified() {
        ips.push(listen_ip);
    }
    params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    params
        .distinguished_name
        .push(DnType::CommonName, "strata-apiserver");
    params.not_after = rcgen::date_time_ymd(2126, 1, 1);
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(cert_err("issuing the server certificate"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        config: Arc::new(config),
    })
}

/// The DER bytes of the first PEM block.
fn rustls_pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Accepts TCP connections and hands out those whose TLS handshake completed.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                if tx.is_closed() {
                    return;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped, so this never resolves.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
