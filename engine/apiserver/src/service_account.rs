//! ServiceAccount tokens: the signing keys, issuing a token for a TokenRequest, verifying one,
//! and what OIDC discovery publishes (the discovery document and the JWKS).
//!
//! Tokens are JWTs signed with ES256 and carry Kubernetes' claims (`iss`, `sub` =
//! `system:serviceaccount:NS:NAME`, `aud`, `exp`, `iat`, `nbf`, `jti` and the `kubernetes.io`
//! claim naming the namespace, the ServiceAccount and the bound Secret with their uids), so any
//! OIDC library verifies them from discovery alone. ES256 rather than kube-apiserver's default
//! RS256: a P-256 key is generated instantly by the TLS stack the server already has, and every
//! consumer that matters (AWS and GCP federation, PyJWT, Kubernetes) accepts it.
//!
//! Keys live in the store (the data dir is 0700, the store 0600). At start the stored keys are
//! planned by [`plan_keys`]: the first start creates one; `--rotate-service-account-key` retires
//! the signing key and creates a new one. A retired key no longer signs but stays in the JWKS and
//! still verifies until every token it can have signed has expired (retired + the longest token
//! lifetime, [`MAX_EXPIRATION_SECONDS`]), and is dropped at the first start after that. So a
//! rotation never invalidates an unexpired token.
//!
//! What is checked against the cluster (the ServiceAccount and bound Secret still exist with the
//! uids in the token) is the caller's part: see [`crate::auth`]. JWT encoding, signatures and JWKs
//! are the `jsonwebtoken` crate's; nothing here is hand-written cryptography.

use std::collections::BTreeMap;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the keys are kept in the store's settings.
pub(crate) const SIGNING_KEYS_META: &str = "service-account-signing-keys";
/// The signing algorithm of every token.
pub(crate) const ALGORITHM: Algorithm = Algorithm::ES256;
/// A TokenRequest without `expirationSeconds` gets an hour, as with kube-apiserver.
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for (kube-apiserver's).
pub(crate) const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longer requests are cut to this (kube-apiserver's `--service-account-max-token-expiration`,
/// here fixed at 48 h); it is also how long a retired key keeps verifying.
pub(crate) const MAX_EXPIRATION_SECONDS: i64 = 48 * 3600;
/// Tolerated clock skew for `nbf`.
const NOT_BEFORE_LEEWAY: i64 = 60;
/// The path of the JWKS, relative to the issuer (kube-apiserver's).
pub(crate) const JWKS_PATH: &str = "/openid/v1/jwks";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("service-account signing key: {doing}: {detail}")]
    Key { doing: &'static str, detail: String },
    #[error("service-account signing keys in the store are corrupt: {0}")]
    Stored(String),
    #[error(
        "--service-account-issuer `{0}`: must be an https:// URL without query or fragment, so OIDC discovery can be served under it"
    )]
    Issuer(String),
}

fn key_err(doing: &'static str) -> impl FnOnce(jsonwebtoken::errors::Error) -> KeyError {
    move |e| KeyError::Key {
        doing,
        detail: e.to_string(),
    }
}

/// One signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The JWK thumbprint (RFC 7638, SHA-256) of the public key: the tokens' `kid`.
    pub kid: String,
    /// PKCS#8 PEM of the P-256 private key.
    pub private_key_pem: String,
    /// Unix seconds.
    pub created: i64,
    /// When it stopped signing (Unix seconds); `None` for the signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<i64>,
}

impl StoredKey {
    /// A fresh P-256 key.
    pub fn generate(now: i64) -> Result<StoredKey, KeyError> {
        let pair = rcgen::KeyPair::generate().map_err(|e| KeyError::Key {
            doing: "generating",
            detail: e.to_string(),
        })?;
        let pem = pair.serialize_pem();
        let kid = public_jwk(&pem)?
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(key_err("computing the key id"))?;
        Ok(StoredKey {
            kid,
            private_key_pem: pem,
            created: now,
            retired: None,
        })
    }
}

fn public_jwk(private_key_pem: &str) -> Result<Jwk, KeyError> {
    let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes())
        .map_err(key_err("reading the private key"))?;
    Jwk::from_encoding_key(&key, ALGORITHM).map_err(key_err("deriving the public key"))
}

/// The keys to keep after this start, and whether they differ from the stored ones (and so
/// must be written back): a signing key always exists, `rotate` retires it for a new one, and
/// retired keys are dropped once no token they signed can still be unexpired.
pub(crate) fn plan_keys(
    stored: Vec<StoredKey>,
    rotate: bool,
    now: i64,
    generate: impl FnOnce() -> Result<StoredKey, KeyError>,
) -> Result<(Vec<StoredKey>, bool), KeyError> {
    let before = stored.clone();
    let mut keys: Vec<StoredKey> = stored
        .into_iter()
        .filter(|k| k.retired.is_none_or(|r| r + MAX_EXPIRATION_SECONDS > now))
        .collect();
    let has_signing = keys.iter().any(|k| k.retired.is_none());
    if rotate || !has_signing {
        for k in keys.iter_mut().filter(|k| k.retired.is_none()) {
            k.retired = Some(now);
        }
        keys.insert(0, generate()?);
    }
    let changed = keys != before;
    Ok((keys, changed))
}

/// Reads the stored keys (none at first start).
pub(crate) fn parse_stored(text: Option<&str>) -> Result<Vec<StoredKey>, KeyError> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| KeyError::Stored(e.to_string())),
    }
}

/// A reference to an object by name and uid, as in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// What a token is issued for (a validated TokenRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub namespace: String,
    pub service_account: ObjectRef,
    /// Empty: the API server's audiences.
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub secret: Option<ObjectRef>,
}

/// The username of a ServiceAccount.
pub(crate) fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Signs and verifies ServiceAccount tokens for one issuer.
pub struct TokenIssuer {
    issuer: String,
    jwks_uri: String,
    api_audiences: Vec<String>,
    signing_kid: String,
    signing: EncodingKey,
    verifying: BTreeMap<String, DecodingKey>,
    jwks: JwkSet,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

/// Checks an issuer URL: https, no query or fragment; a trailing `/` is dropped.
pub(crate) fn validate_issuer(issuer: &str) -> Result<String, KeyError> {
    let trimmed = issuer.trim_end_matches('/');
    let host = trimmed.strip_prefix("https://").unwrap_or_default();
    if host.is_empty()
        || host.starts_with('/')
        || trimmed.contains(['?', '#'])
        || trimmed.chars().any(char::is_whitespace)
    {
        return Err(KeyError::Issuer(issuer.to_owned()));
    }
    Ok(trimmed.to_owned())
}

impl TokenIssuer {
    /// `keys` as planned by [`plan_keys`] (the signing key is the one not retired); `issuer` is
    /// validated by [`validate_issuer`]. The API accepts tokens for the audience `issuer`.
    pub fn new(issuer: &str, keys: &[StoredKey]) -> Result<TokenIssuer, KeyError> {
        let issuer = validate_issuer(issuer)?;
        let signing_key = keys
            .iter()
            .find(|k| k.retired.is_none())
            .ok_or_else(|| KeyError::Stored("no signing key".into()))?;
        let mut verifying = BTreeMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for k in keys {
            let mut jwk = public_jwk(&k.private_key_pem)?;
            jwk.common.key_id = Some(k.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            verifying.insert(
                k.kid.clone(),
                DecodingKey::from_jwk(&jwk).map_err(key_err("reading the public key"))?,
            );
            jwks.keys.push(jwk);
        }
        Ok(TokenIssuer {
            jwks_uri: format!("{issuer}{JWKS_PATH}"),
            api_audiences: vec![issuer.clone()],
            issuer,
            signing_kid: signing_key.kid.clone(),
            signing: EncodingKey::from_ec_pem(signing_key.private_key_pem.as_bytes())
                .map_err(key_err("reading the private key"))?,
            verifying,
            jwks,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences a token must carry (one of) to call the API.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Signs a token for `grant` at `now` with the id `jti`.
    pub fn issue(
        &self,
        grant: &Grant,
        now: i64,
        jti: String,
    ) -> Result<(String, Claims), KeyError> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: username(&grant.namespace, &grant.service_account.name),
            aud: if grant.audiences.is_empty() {
                self.api_audiences.clone()
            } else {
                grant.audiences.clone()
            },
            exp: now + grant.expiration_seconds,
            iat: now,
            nbf: now,
            jti,
            kubernetes: KubernetesClaims {
                namespace: grant.namespace.clone(),
                serviceaccount: grant.service_account.clone(),
                secret: grant.secret.clone(),
            },
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(key_err("signing a token"))?;
        Ok((token, claims))
    }

    /// The claims of `token` when this issuer signed it (with any key in the JWKS) for itself
    /// and it is valid at `now`; otherwise why not. Audiences are the caller's to match.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT".to_owned())?;
        if header.alg != ALGORITHM {
            return Err(format!("unexpected signing algorithm {:?}", header.alg));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or_else(|| "signed by an unknown key".to_owned())?;
        let mut validation = Validation::new(ALGORITHM);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| format!("invalid token: {e}"))?
            .claims;
        if claims.iss != self.issuer {
            return Err(format!(
                "token issuer `{}` is not this server's `{}`",
                claims.iss, self.issuer
            ));
        }
        if now >= claims.exp {
            return Err("token has expired".into());
        }
        if now + NOT_BEFORE_LEEWAY < claims.nbf {
            return Err("token is not valid yet".into());
        }
        Ok(claims)
    }

    /// The OIDC discovery document (as kube-apiserver serves it).
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// The public keys, signing key first, then the retired ones still verifying.
    pub fn jwks(&self) -> Value {
        serde_json::to_value(&self.jwks).unwrap_or_else(|_| json!({"keys": []}))
    }
}

/// The audiences of `token_audiences` that are also `wanted`, in `wanted`'s order.
pub(crate) fn matching_audiences(token_audiences: &[String], wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| token_audiences.contains(w))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://127.0.0.1:6443";

    fn grant() -> Grant {
        Grant {
            namespace: "team-a".into(),
            service_account: ObjectRef {
                name: "builder".into(),
                uid: "sa-uid".into(),
            },
            audiences: Vec::new(),
            expiration_seconds: 3600,
            secret: None,
        }
    }

    fn issuer_with(keys: &[StoredKey]) -> TokenIssuer {
        TokenIssuer::new(ISSUER, keys).unwrap()
    }

    #[test]
    fn a_token_carries_kubernetes_claims_and_verifies_until_it_expires() {
        let keys = vec![StoredKey::generate(NOW).unwrap()];
        let issuer = issuer_with(&keys);
        let (token, claims) = issuer.issue(&grant(), NOW, "jti-1".into()).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:team-a:builder");
        assert_eq!(claims.aud, [ISSUER], "the API audience by default");
        assert_eq!(claims.exp, NOW + 3600);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys[0].kid.as_str()));
        assert_eq!(issuer.verify(&token, NOW + 10).unwrap(), claims);
        assert_eq!(
            issuer.verify(&token, NOW + 3600).unwrap_err(),
            "token has expired"
        );
        assert_eq!(
            issuer.verify(&token, NOW - 120).unwrap_err(),
            "token is not valid yet"
        );
    }

    #[test]
    fn tokens_of_another_key_issuer_or_a_tampered_payload_are_refused() {
        let ours = issuer_with(&[StoredKey::generate(NOW).unwrap()]);
        let theirs = issuer_with(&[StoredKey::generate(NOW).unwrap()]);
        let (token, _) = theirs.issue(&grant(), NOW, "j".into()).unwrap();
        assert_eq!(
            ours.verify(&token, NOW).unwrap_err(),
            "signed by an unknown key"
        );

        let keys = vec![StoredKey::generate(NOW).unwrap()];
        let elsewhere = TokenIssuer::new("https://example.com", &keys).unwrap();
        let (token, _) = elsewhere.issue(&grant(), NOW, "j".into()).unwrap();
        assert!(
            issuer_with(&keys)
                .verify(&token, NOW)
                .unwrap_err()
                .contains("token issuer `https://example.com`")
        );

        let (token, _) = issuer_with(&keys).issue(&grant(), NOW, "j".into()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let (_, other) = issuer_with(&keys)
            .issue(
                &Grant {
                    namespace: "team-b".into(),
                    ..grant()
                },
                NOW,
                "j".into(),
            )
            .unwrap();
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&other).unwrap());
        assert!(
            issuer_with(&keys)
                .verify(&parts.join("."), NOW)
                .unwrap_err()
                .starts_with("invalid token"),
            "a payload swapped under the signature"
        );
        assert_eq!(ours.verify("abc", NOW).unwrap_err(), "not a JWT");
    }

    #[test]
    fn key_plans_create_rotate_keep_and_drop_keys() {
        let key = |kid: &str, retired: Option<i64>| StoredKey {
            kid: kid.into(),
            private_key_pem: String::new(),
            created: 0,
            retired,
        };
        let new = || Ok(key("new", None));
        let kids = |keys: &[StoredKey]| -> Vec<(String, Option<i64>)> {
            keys.iter().map(|k| (k.kid.clone(), k.retired)).collect()
        };
        // (stored, rotate, kept keys, changed, why)
        type Case = (
            Vec<StoredKey>,
            bool,
            Vec<(&'static str, Option<i64>)>,
            bool,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                vec![],
                false,
                vec![("new", None)],
                true,
                "the first start creates the signing key",
            ),
            (
                vec![key("a", None)],
                false,
                vec![("a", None)],
                false,
                "a restart keeps the key and writes nothing",
            ),
            (
                vec![key("a", None)],
                true,
                vec![("new", None), ("a", Some(NOW))],
                true,
                "rotation retires the signing key, which keeps verifying",
            ),
            (
                vec![
                    key("a", None),
                    key("old", Some(NOW - MAX_EXPIRATION_SECONDS + 1)),
                ],
                false,
                vec![("a", None), ("old", Some(NOW - MAX_EXPIRATION_SECONDS + 1))],
                false,
                "a retired key stays while a token it signed may be unexpired",
            ),
            (
                vec![
                    key("a", None),
                    key("old", Some(NOW - MAX_EXPIRATION_SECONDS)),
                ],
                false,
                vec![("a", None)],
                true,
                "a retired key goes once every token it signed has expired",
            ),
        ];
        for (stored, rotate, want, want_changed, why) in cases {
            let (keys, changed) = plan_keys(stored, rotate, NOW, new).unwrap();
            let want: Vec<(String, Option<i64>)> =
                want.into_iter().map(|(k, r)| (k.to_owned(), r)).collect();
            assert_eq!(kids(&keys), want, "{why}");
            assert_eq!(changed, want_changed, "{why}");
        }
    }

    #[test]
    fn after_rotation_old_tokens_verify_new_ones_use_the_new_key_and_both_are_published() {
        let first = StoredKey::generate(NOW).unwrap();
        let (before, _) = plan_keys(vec![], false, NOW, || Ok(first.clone())).unwrap();
        let (old_token, _) = issuer_with(&before)
            .issue(&grant(), NOW, "old".into())
            .unwrap();
        let (after, changed) =
            plan_keys(before, true, NOW + 60, || StoredKey::generate(NOW + 60)).unwrap();
        assert!(changed);
        let issuer = issuer_with(&after);
        assert!(issuer.verify(&old_token, NOW + 120).is_ok());
        let (new_token, _) = issuer.issue(&grant(), NOW + 60, "new".into()).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid,
            Some(after[0].kid.clone())
        );
        assert_ne!(after[0].kid, first.kid);
        let jwks = issuer.jwks();
        let published: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(published, [after[0].kid.as_str(), first.kid.as_str()]);
        assert_eq!(jwks["keys"][0]["use"], "sig");
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
    }

    #[test]
    fn the_issuer_must_be_an_https_url_for_discovery() {
        assert_eq!(
            validate_issuer("https://oidc.example.com/cluster/").unwrap(),
            "https://oidc.example.com/cluster"
        );
        for bad in [
            "http://example.com",
            "https://",
            "kubernetes/serviceaccount",
            "https://x?y",
        ] {
            assert!(validate_issuer(bad).is_err(), "{bad}");
        }
        let issuer = issuer_with(&[StoredKey::generate(NOW).unwrap()]);
        assert_eq!(
            issuer.discovery()["jwks_uri"],
            format!("{ISSUER}/openid/v1/jwks")
        );
    }

    #[test]
    fn audiences_match_by_intersection() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            matching_audiences(&s(&["a", "b"]), &s(&["b", "c"])),
            s(&["b"])
        );
        assert!(matching_audiences(&s(&["a"]), &s(&["c"])).is_empty());
    }
}
