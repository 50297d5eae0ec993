//! TLS for the API: a self-signed CA kept in the data dir (so kubeconfigs stay valid across
//! restarts), a server certificate issued at every start for the listen address, client
//! certificates requested (optional) and verified against the CA. Connections are accepted and
//! handshaken by [`crate::connections`].
//!
//! The CA is two owner-only files in the data dir, [`CA_CERT_FILE`] and [`CA_KEY_FILE`], so
//! `strata kubeconfig` can sign a user's client certificate while the server runs (the store is
//! locked by the server). Data dirs from before kept the CA in the store; it is copied out to the
//! files at the first start.
//!
//! kubectl sends credentials only over TLS, so the API is always served over TLS.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::store::{Store, StoreError};

/// Where earlier versions kept the CA in the store's settings.
const CA_KEY: &str = "ca-key";
const CA_CERT: &str = "ca-cert";
/// The CA certificate (PEM) in the data dir.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA's private key (PKCS#8 PEM) in the data dir, owner-only.
pub const CA_KEY_FILE: &str = "ca.key";
const CA_COMMON_NAME: &str = "strata-apiserver-ca";

/// Why the TLS material could not be loaded, created or turned into a server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the serving certificate in the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Generating or signing a certificate failed; `doing` names the step.
    #[error("TLS: {doing}: {source}")]
    Certificate {
        /// The step that failed.
        doing: &'static str,
        /// The certificate library's error.
        source: rcgen::Error,
    },
    /// rustls refused the certificate or key.
    #[error("TLS: building the server configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA could not be installed as the verifier of client certificates.
    #[error("TLS: trusting the CA for client certificates: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// Reading or writing a CA file in the data dir failed.
    #[error("TLS: {doing} {}: {source}", .path.display())]
    CaFile {
        /// What was being done, e.g. reading.
        doing: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
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
    /// The CA certificate (PEM) that clients, kubeconfigs and in-process controllers trust.
    pub ca_pem: String,
    /// The server's rustls configuration: its certificate for the serving addresses, and client
    /// certificates verified against the CA but optional (bearer tokens are the alternative).
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

/// The CA of a data dir: certificate and key, PEM.
pub struct CaFiles {
    /// The CA certificate.
    pub cert_pem: String,
    /// The CA's private key; whoever holds it can issue any client certificate.
    pub key_pem: String,
}

/// Reads the CA files of `data_dir`; `None` when they do not exist yet.
pub fn read_ca(data_dir: &Path) -> Result<Option<CaFiles>, TlsError> {
    let cert_path = data_dir.join(CA_CERT_FILE);
    let key_path = data_dir.join(CA_KEY_FILE);
    if !cert_path.exists() && !key_path.exists() {
        return Ok(None);
    }
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| TlsError::CaFile {
            doing: "reading",
            path,
            source,
        })
    };
    Ok(Some(CaFiles {
        cert_pem: read(cert_path)?,
        key_pem: read(key_path)?,
    }))
}

fn write_ca(data_dir: &Path, ca: &CaFiles) -> Result<(), TlsError> {
    for (file, text) in [(CA_KEY_FILE, &ca.key_pem), (CA_CERT_FILE, &ca.cert_pem)] {
        let path = data_dir.join(file);
        crate::store::private::write_file(&path, text.as_bytes()).map_err(|source| {
            TlsError::CaFile {
                doing: "writing",
                path,
                source,
            }
        })?;
    }
    Ok(())
}

/// Loads the CA of `data_dir` (from its files, else from the store of an earlier version, else
/// a new one; the files are written in the last two cases) and issues a server certificate for
/// localhost, 127.0.0.1, ::1 and `listen_ip`.
pub fn load_or_create(
    data_dir: &Path,
    store: &Store,
    listen_ip: IpAddr,
) -> Result<TlsMaterial, TlsError> {
    let ca = match read_ca(data_dir)? {
        Some(ca) => {
            for file in [CA_KEY_FILE, CA_CERT_FILE] {
                let path = data_dir.join(file);
                crate::store::private::tighten(&path, crate::store::private::FILE_MODE).map_err(
                    |source| TlsError::CaFile {
                        doing: "making owner-only",
                        path,
                        source,
                    },
                )?;
            }
            ca
        }
        None => {
            let ca = match (store.meta(CA_KEY)?, store.meta(CA_CERT)?) {
                (Some(key_pem), Some(cert_pem)) => CaFiles { cert_pem, key_pem },
                _ => {
                    let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
                    let cert = ca_params()?
                        .self_signed(&key)
                        .map_err(cert_err("self-signing the CA"))?;
                    CaFiles {
                        cert_pem: cert.pem(),
                        key_pem: key.serialize_pem(),
                    }
                }
            };
            write_ca(data_dir, &ca)?;
            ca
        }
    };
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err("reading the CA key"))?;
    let ca_pem = ca.cert_pem;
    let ca_der = CertificateDer::from(rustls_pem_der(&ca_pem).ok_or(TlsError::Certificate {
        doing: "reading the CA certificate",
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
    // Client certificates are asked for, not required: token users connect without one.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.clone())?;
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            vec![server_cert.der().clone(), ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    // HTTP/2 first, as kube-apiserver offers it (client-go prefers it); HTTP/1.1 for the rest.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
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
