//! mTLS for the functions Strata starts, as Crossplane does it: a CA of Strata's own issues
//! each function a server certificate and Strata a client certificate; the function reads its
//! certificate, key and the CA from `TLS_SERVER_CERTS_DIR` (`tls.crt`, `tls.key`, `ca.crt`, the
//! layout every Crossplane function SDK reads) and requires a client certificate from that CA.
//!
//! The CA lives in memory for one Strata process: the certificates are only ever used between
//! this process and the functions it started, so nothing needs to survive a restart. Each
//! function's directory is private (0700, files 0600) and removed when it stops.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::transport::ClientTls;

/// The name every function's server certificate is issued for and checked against.
pub const SERVER_NAME: &str = "localhost";

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A key or certificate could not be generated, signed or parsed.
    #[error("{doing}: {source}")]
    Certificate {
        /// The step that failed (`self-signing the function CA`).
        doing: &'static str,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A function's certificate directory or file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn cert_err(doing: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |source| CertError::Certificate { doing, source }
}

/// The CA of one Strata process, and its client certificate.
pub struct FunctionCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    client: ClientTls,
}

fn ca_params() -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(cert_err("building the function CA parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "strata-functions-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl FunctionCa {
    /// A fresh CA with a new key, living as long as this value; fails only if the key or the
    /// self-signed certificate cannot be generated.
    pub fn new() -> Result<Self, CertError> {
        let key = KeyPair::generate().map_err(cert_err("generating the function CA key"))?;
        let ca = ca_params()?
            .self_signed(&key)
            .map_err(cert_err("self-signing the function CA"))?;
        Self::with(ca.pem(), key)
    }

    /// A CA kept elsewhere (a Secret on a cluster, so functions' certificates outlive a
    /// restart of Strata): its certificate and key, PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err("reading the function CA key"))?;
        Self::with(cert_pem.to_owned(), key)
    }

    /// The CA's certificate and key, PEM.
    pub fn pem(&self) -> (String, String) {
        (self.ca_pem.clone(), self.issuer.key().serialize_pem())
    }

    /// A server certificate and key (PEM) for these DNS names.
    pub fn server_certificate(&self, names: &[String]) -> Result<(String, String), CertError> {
        let key = KeyPair::generate().map_err(cert_err("generating a function key"))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(cert_err("building a function certificate"))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err("signing a function certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn with(ca_pem: String, key: KeyPair) -> Result<Self, CertError> {
        let issuer = Issuer::new(ca_params()?, key);
        let (cert, key) = issue(&issuer, "strata", false)?;
        let client = ClientTls {
            ca: ca_pem.clone().into_bytes(),
            cert: cert.into_bytes(),
            key: key.into_bytes(),
            server_name: SERVER_NAME.to_owned(),
        };
        Ok(Self {
            issuer,
            ca_pem,
            client,
        })
    }

    /// What Strata dials a function it started with.
    pub fn client_tls(&self) -> ClientTls {
        self.client.clone()
    }

    /// Writes a server certificate for `function` into a new private directory under `parent`
    /// (`tls.crt`, `tls.key`, `ca.crt`) and returns the directory.
    pub fn server_dir(&self, parent: &Path, function: &str) -> Result<PathBuf, CertError> {
        let (cert, key) = issue(&self.issuer, function, true)?;
        let dir = parent.join(format!("{function}-{}", std::process::id()));
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CertError::Write { path, source }
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(write_err(&dir))?;
        for (file, text) in [
            ("tls.key", key.as_str()),
            ("tls.crt", cert.as_str()),
            ("ca.crt", self.ca_pem.as_str()),
        ] {
            let path = dir.join(file);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(write_err(&path))?;
        }
        Ok(dir)
    }
}

/// A certificate and key signed by the CA: a server certificate for localhost and 127.0.0.1,
/// or a client certificate.
fn issue(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    server: bool,
) -> Result<(String, String), CertError> {
    let key = KeyPair::generate().map_err(cert_err("generating a function key"))?;
    let mut params = if server {
        let mut p = CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .map_err(cert_err("building a function certificate"))?;
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        p
    } else {
        CertificateParams::new(Vec::<String>::new())
            .map_err(cert_err("building the client certificate"))?
    };
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err("signing a function certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_ca_read_back_from_its_pem_signs_as_before() {
        let ca = FunctionCa::new().unwrap();
        let (cert, key) = ca.pem();
        let again = FunctionCa::from_pem(&cert, &key).unwrap();
        assert_eq!(again.pem(), (cert, key));
        let (server, _) = again
            .server_certificate(&["fn.strata-system.svc".to_owned()])
            .unwrap();
        assert!(server.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn a_function_gets_a_private_directory_in_crossplanes_layout() {
        let ca = FunctionCa::new().unwrap();
        let parent = strata_test_support::TempDir::new("certs-test");
        let dir = ca.server_dir(parent.path(), "function-x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in ["tls.crt", "tls.key", "ca.crt"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(
            std::fs::read(dir.join("ca.crt")).unwrap(),
            ca.client_tls().ca
        );
    }
}
