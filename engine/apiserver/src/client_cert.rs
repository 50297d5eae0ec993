//! Client certificates: who a TLS client certificate says the caller is, and issuing one.
//!
//! As with kube-apiserver, a certificate signed by the control plane's CA authenticates its
//! holder as the subject's common name (CN) with every organization (O) as a group. The TLS
//! layer ([`crate::tls`]) has already verified the chain to the CA, the validity period and the
//! client-auth usage before a connection reaches the API; here the verified leaf certificate of a
//! connection becomes a [`UserInfo`] once, when the connection is accepted ([`ClientIdentity`]).
//!
//! [`issue`] signs a client certificate for `strata kubeconfig --user`: a new P-256 key, subject
//! `O=group…, CN=user`, client-auth usage. rcgen (which makes the CA and the server certificate)
//! keeps one value per attribute type and so cannot write several O attributes; the RustCrypto
//! `x509-cert` builder can, and it also parses subjects here.

use std::time::Duration;

use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{SetOfVec, Utf8StringRef};
use x509_cert::der::{Any, Decode, DecodePem, EncodePem, Tag, Tagged};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use crate::auth::UserInfo;

const OID_COMMON_NAME: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::db::rfc4519::COMMON_NAME;
const OID_ORGANIZATION: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::db::rfc4519::ORGANIZATION_NAME;
const OID_CLIENT_AUTH: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::db::rfc5280::ID_KP_CLIENT_AUTH;

/// The user a connection's verified client certificate names, if it sent one: the connection
/// info of every request on that connection.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity(pub Option<UserInfo>);

impl ClientIdentity {
    /// The identity of a TLS connection whose handshake completed (the chain is verified).
    pub fn of(connection: &tokio_rustls::rustls::ServerConnection) -> Self {
        ClientIdentity(
            connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| user_from_certificate(leaf)),
        )
    }
}

/// The user of a (verified) certificate: CN is the name, every O a group; none without a CN.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let cert = Certificate::from_der(der).ok()?;
    let mut name = None;
    let mut groups = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            let Some(value) = attribute_text(&atv.value) else {
                continue;
            };
            if atv.oid == OID_COMMON_NAME && name.is_none() {
                name = Some(value.to_owned());
            } else if atv.oid == OID_ORGANIZATION {
                groups.push(value.to_owned());
            }
        }
    }
    let name = name.filter(|n| !n.is_empty())?;
    Some(
        UserInfo {
            name,
            uid: String::new(),
            groups,
            extra: Default::default(),
        }
        .authenticated(),
    )
}

fn attribute_text(value: &Any) -> Option<&str> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok()
        }
        _ => None,
    }
}

/// Why a client certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A key or certificate operation failed; `doing` names the step, `detail` the cause.
    #[error("issuing a client certificate: {doing}: {detail}")]
    Failed {
        /// The step that failed, e.g. signing the certificate.
        doing: &'static str,
        /// The underlying error's message.
        detail: String,
    },
    /// The user name (the certificate's common name) is empty, which would authenticate no one.
    #[error("issuing a client certificate: the user name is empty")]
    EmptyUser,
}

fn failed<E: std::fmt::Display>(doing: &'static str) -> impl FnOnce(E) -> IssueError {
    move |e| IssueError::Failed {
        doing,
        detail: e.to_string(),
    }
}

/// A client certificate and its private key, both PEM.
pub struct IssuedCertificate {
    /// The certificate, signed by the cluster CA, with the user as common name and groups as
    /// organizations.
    pub certificate_pem: String,
    /// The certificate's private key; whoever holds it is the user.
    pub private_key_pem: String,
}

fn rdn(
    oid: x509_cert::der::oid::ObjectIdentifier,
    text: &str,
) -> Result<RelativeDistinguishedName, IssueError> {
    let value =
        Any::encode_from(&Utf8StringRef::new(text).map_err(failed("encoding the subject"))?)
            .map_err(failed("encoding the subject"))?;
    let set = SetOfVec::try_from(vec![x509_cert::attr::AttributeTypeAndValue { oid, value }])
        .map_err(failed("encoding the subject"))?;
    Ok(RelativeDistinguishedName(set))
}

/// Signs a client certificate for `user` in `groups`, valid for `validity` from now, with the
/// CA whose certificate and (P-256, PKCS#8) key are given in PEM.
pub fn issue(
    ca_certificate_pem: &str,
    ca_key_pem: &str,
    user: &str,
    groups: &[String],
    validity: Duration,
) -> Result<IssuedCertificate, IssueError> {
    use p256::pkcs8::DecodePrivateKey;
    if user.is_empty() {
        return Err(IssueError::EmptyUser);
    }
    let ca =
        Certificate::from_pem(ca_certificate_pem).map_err(failed("reading the CA certificate"))?;
    let ca_key = p256::ecdsa::SigningKey::from_pkcs8_pem(ca_key_pem)
        .map_err(failed("reading the CA key (a P-256 PKCS#8 key)"))?;
    let key = rcgen::KeyPair::generate().map_err(failed("generating the key"))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
            .map_err(failed("reading the new public key"))?;
    let mut rdns = Vec::with_capacity(groups.len() + 1);
    for group in groups {
        rdns.push(rdn(OID_ORGANIZATION, group)?);
    }
    rdns.push(rdn(OID_COMMON_NAME, user)?);
    let subject = Name::from(RdnSequence(rdns));
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let serial = SerialNumber::new(&serial).map_err(failed("making a serial number"))?;
    let validity = Validity::from_now(validity).map_err(failed("setting the validity"))?;
    let profile = Profile::Leaf {
        issuer: ca.tbs_certificate.subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: false,
    };
    let mut builder = CertificateBuilder::new(profile, serial, validity, subject, spki, &ca_key)
        .map_err(failed("building"))?;
    builder
        .add_extension(&ExtendedKeyUsage(vec![OID_CLIENT_AUTH]))
        .map_err(failed("adding the client-auth usage"))?;
    let cert = builder
        .build::<p256::ecdsa::DerSignature>()
        .map_err(failed("signing"))?;
    Ok(IssuedCertificate {
        certificate_pem: cert
            .to_pem(x509_cert::der::pem::LineEnding::LF)
            .map_err(failed("encoding"))?,
        private_key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn der(pem: &str) -> Vec<u8> {
        use x509_cert::der::Encode;
        Certificate::from_pem(pem).unwrap().to_der().unwrap()
    }

    #[test]
    fn an_issued_certificate_names_the_user_and_every_group() {
        let (ca_pem, ca_key) = ca();
        let groups = vec!["dev".to_owned(), "team-a".to_owned(), "ops".to_owned()];
        let issued = issue(
            &ca_pem,
            &ca_key,
            "alice",
            &groups,
            Duration::from_secs(3600),
        )
        .unwrap();
        let user = user_from_certificate(&der(&issued.certificate_pem)).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(
            user.groups,
            ["dev", "team-a", "ops", "system:authenticated"]
        );
        assert!(issued.private_key_pem.contains("PRIVATE KEY"));
        let cert = Certificate::from_pem(&issued.certificate_pem).unwrap();
        assert_eq!(
            cert.tbs_certificate.issuer,
            Certificate::from_pem(&ca_pem)
                .unwrap()
                .tbs_certificate
                .subject,
            "issued by the CA"
        );
    }

    #[test]
    fn a_certificate_without_a_common_name_is_nobody() {
        let (ca_pem, ca_key) = ca();
        assert!(matches!(
            issue(&ca_pem, &ca_key, "", &[], Duration::from_secs(60)),
            Err(IssueError::EmptyUser)
        ));
        // The CA itself has a CN; a bare certificate without one authenticates nobody.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "dev");
        let cert = params.self_signed(&key).unwrap();
        assert!(user_from_certificate(cert.der()).is_none());
        assert_eq!(
            user_from_certificate(&der(&ca_pem)).unwrap().name,
            "test-ca"
        );
    }
}
