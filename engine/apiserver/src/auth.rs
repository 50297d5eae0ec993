//! Authentication: who a request is ([`UserInfo`], Kubernetes' `user.Info`), from a verified
//! client certificate ([`crate::client_cert`]), the admin token, a token-file user
//! (`token_file`) or a ServiceAccount token (`service_account`); and the
//! kubeconfigs that carry those credentials to clients.
//!
//! As in kube-apiserver: the `Authorization` scheme is case-insensitive; a request without
//! credentials is anonymous (`system:anonymous`, group `system:unauthenticated`) and is served
//! only on the public paths ([`is_public`]); invalid credentials are refused everywhere; every
//! authenticated user is in `system:authenticated`. What a user may do is authorization's part.

use std::path::Path;

use serde_json::json;

/// A fresh random token: 32 bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The group whose members may do anything (kube-apiserver's superuser group).
pub const GROUP_MASTERS: &str = "system:masters";
/// The group every authenticated request belongs to.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of every ServiceAccount (`system:serviceaccounts:NS` for those of namespace NS).
pub const GROUP_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// The admin user of the generated kubeconfig.
pub const ADMIN_USER: &str = "strata-admin";

/// Who a request is: what authentication found and authorization decides on (Kubernetes'
/// `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, e.g. `system:serviceaccount:default:builder`; what RBAC subjects of kind
    /// `User` match.
    pub name: String,
    /// A stable id for the user, if the authenticator knows one ("" otherwise).
    pub uid: String,
    /// Including `system:authenticated` for every authenticated user.
    pub groups: Vec<String>,
    /// Further facts an authenticator recorded (e.g. a ServiceAccount token's credential id),
    /// passed on to SubjectAccessReviews and impersonation checks.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The admin of the generated kubeconfig: a member of `system:masters`.
    pub fn admin() -> Self {
        Self {
            name: ADMIN_USER.to_owned(),
            uid: String::new(),
            groups: vec![GROUP_MASTERS.to_owned(), GROUP_AUTHENTICATED.to_owned()],
            extra: Default::default(),
        }
    }

    /// The user of a request without credentials.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS_USER.to_owned(),
            uid: String::new(),
            groups: vec![GROUP_UNAUTHENTICATED.to_owned()],
            extra: Default::default(),
        }
    }

    /// The same user with `system:authenticated` among its groups (once).
    pub fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == GROUP_AUTHENTICATED) {
            self.groups.push(GROUP_AUTHENTICATED.to_owned());
        }
        self
    }
}

/// What a request's credentials establish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Credentials that name a user.
    User(UserInfo),
    /// No credentials at all: only the public paths ([`is_public`]) are served.
    Anonymous,
    /// Credentials were presented and are not valid (401 everywhere, as kube-apiserver does,
    /// even on public paths): why, for the log.
    Refused(String),
}

/// The paths served without credentials, as kube-apiserver serves them to anyone: health,
/// version and OIDC discovery (`segments`: the path split at `/`, empty parts dropped).
pub fn is_public(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["healthz" | "livez" | "readyz" | "version"]
            | [".well-known", "openid-configuration"]
            | ["openid", "v1", "jwks"]
    )
}

/// The bearer token of an `Authorization` header value, as kube-apiserver reads it: the scheme
/// in any case, the token the next space-separated field. Another scheme is no credential.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let mut parts = header?.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The uids of the objects a ServiceAccount token refers to, as the cluster has them now.
pub trait BoundObjects {
    /// The uid of the object of core/v1 `resource` (`serviceaccounts`, `secrets`), `None` when it
    /// does not exist.
    fn uid(&self, resource: &str, namespace: &str, name: &str) -> Option<String>;
}

impl BoundObjects for crate::cluster::Cluster {
    fn uid(&self, resource: &str, namespace: &str, name: &str) -> Option<String> {
        let t = self.target("", "v1", resource, namespace)?;
        let obj = self.get(&t, name).ok()?;
        Some(crate::object::uid(&obj).to_owned())
    }
}

/// A token's user and the audiences it was accepted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The authenticated user.
    pub user: UserInfo,
    /// The token's audiences among those asked for (the API server's by default); never empty, as
    /// a token with none of them does not authenticate.
    pub audiences: Vec<String>,
}

/// Who the credentials of a request are: a verified client certificate first, then the bearer
/// token, tried as the admin token, a token-file user and a ServiceAccount token.
pub struct Authenticator {
    admin_token: String,
    users: crate::token_file::TokenFile,
    service_accounts: crate::service_account::TokenIssuer,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("service_accounts", &self.service_accounts)
            .finish_non_exhaustive()
    }
}

/// The `extra` key kube-apiserver records a ServiceAccount token's id under.
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

impl Authenticator {
    /// Builds an authenticator from the admin bearer token, the static token-file users and the
    /// ServiceAccount token issuer.
    pub fn new(
        admin_token: String,
        users: crate::token_file::TokenFile,
        service_accounts: crate::service_account::TokenIssuer,
    ) -> Self {
        Authenticator {
            admin_token,
            users,
            service_accounts,
        }
    }

    /// The issuer that signs and verifies ServiceAccount tokens (TokenRequest uses it to mint
    /// them).
    pub fn service_accounts(&self) -> &crate::service_account::TokenIssuer {
        &self.service_accounts
    }

    /// Authenticates a request from its `Authorization` header and the user of its connection's
    /// client certificate, at `now` (Unix seconds).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client_certificate: Option<&UserInfo>,
        objects: &dyn BoundObjects,
        now: i64,
    ) -> Authentication {
        if let Some(user) = client_certificate {
            return Authentication::User(user.clone());
        }
        match bearer_token(authorization) {
            None => Authentication::Anonymous,
            Some(token) => match self.authenticate_token(token, None, objects, now) {
                Ok(t) => Authentication::User(t.user),
                Err(why) => Authentication::Refused(why),
            },
        }
    }

    /// Authenticates a bearer token for `audiences` (the API server's when `None`), as a
    /// TokenReview does: the user and the audiences it is valid for, or why it is not.
    pub fn authenticate_token(
        &self,
        token: &str,
        audiences: Option<&[String]>,
        objects: &dyn BoundObjects,
        now: i64,
    ) -> Result<TokenUser, String> {
        let api = self.service_accounts.api_audiences();
        let wanted = audiences.filter(|a| !a.is_empty()).unwrap_or(api);
        let static_user = if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            Some(UserInfo::admin())
        } else {
            self.users.user(token).cloned()
        };
        if let Some(user) = static_user {
            // Audience-agnostic tokens are good for the API server's audiences only.
            let audiences = crate::service_account::matching_audiences(api, wanted);
            if audiences.is_empty() {
                return Err(format!(
                    "token audiences {api:?} is invalid for the target audiences {wanted:?}"
                ));
            }
            return Ok(TokenUser { user, audiences });
        }
        let claims = self
            .service_accounts
            .verify(token, now)
            .map_err(|why| format!("invalid bearer token: {why}"))?;
        let audiences = crate::service_account::matching_audiences(&claims.aud, wanted);
        if audiences.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {wanted:?}",
                claims.aud
            ));
        }
        let k = &claims.kubernetes;
        match objects.uid("serviceaccounts", &k.namespace, &k.serviceaccount.name) {
            None => {
                return Err(format!(
                    "service account {}/{} has been deleted",
                    k.namespace, k.serviceaccount.name
                ));
            }
            Some(uid) if uid != k.serviceaccount.uid => {
                return Err(format!(
                    "service account UID ({uid}) does not match claim ({})",
                    k.serviceaccount.uid
                ));
            }
            Some(_) => {}
        }
        if let Some(secret) = &k.secret {
            match objects.uid("secrets", &k.namespace, &secret.name) {
                Some(uid) if uid == secret.uid => {}
                Some(uid) => {
                    return Err(format!(
                        "secret {}/{} UID ({uid}) does not match claim ({})",
                        k.namespace, secret.name, secret.uid
                    ));
                }
                None => {
                    return Err(format!(
                        "secret {}/{} the token is bound to has been deleted",
                        k.namespace, secret.name
                    ));
                }
            }
        }
        let user = UserInfo {
            name: crate::service_account::username(&k.namespace, &k.serviceaccount.name),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                GROUP_SERVICE_ACCOUNTS.to_owned(),
                format!("{GROUP_SERVICE_ACCOUNTS}:{}", k.namespace),
            ],
            extra: [(
                EXTRA_CREDENTIAL_ID.to_owned(),
                vec![format!("JTI={}", claims.jti)],
            )]
            .into(),
        }
        .authenticated();
        Ok(TokenUser { user, audiences })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a kubeconfig's user presents.
pub enum Credentials<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate and its private key, both PEM, for mutual TLS.
    ClientCertificate {
        /// The certificate.
        certificate_pem: &'a str,
        /// The certificate's private key.
        key_pem: &'a str,
    },
}

/// Writes a kubeconfig (owner-only) for `server` (an `https://` URL) trusting `ca_pem`, with
/// `credentials` as the user `user_name`.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user_name: &str,
    credentials: &Credentials<'_>,
) -> std::io::Result<()> {
    let text = kubeconfig_text(server, ca_pem, user_name, credentials)?;
    crate::store::private::write_file(path, text.as_bytes())
}

/// The YAML of a kubeconfig for `server` trusting `ca_pem`, with `credentials` as `user_name`.
pub fn kubeconfig_text(
    server: &str,
    ca_pem: &str,
    user_name: &str,
    credentials: &Credentials<'_>,
) -> std::io::Result<String> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = match credentials {
        Credentials::Token(token) => json!({"token": token}),
        Credentials::ClientCertificate {
            certificate_pem,
            key_pem,
        } => {
            json!({"client-certificate-data": b64(certificate_pem), "client-key-data": b64(key_pem)})
        }
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "strata", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "strata", "context": {"cluster": "strata", "user": user_name, "namespace": "default"}}],
        "current-context": "strata",
        "preferences": {},
    });
    serde_saphyr::to_string(&config).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_account::{Grant, ObjectRef, StoredKey, TokenIssuer};
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://127.0.0.1:6443";

    /// The cluster's objects, by (resource, namespace, name) → uid.
    struct Objects(BTreeMap<(&'static str, &'static str, &'static str), &'static str>);

    impl BoundObjects for Objects {
        fn uid(&self, resource: &str, namespace: &str, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|((r, n, o), _)| *r == resource && *n == namespace && *o == name)
                .map(|(_, uid)| (*uid).to_owned())
        }
    }

    fn authenticator() -> Authenticator {
        let users = crate::token_file::TokenFile::parse(
            Path::new("users.csv"),
            "alice-token,alice,1001,\"dev,team-a\"\n",
        )
        .unwrap();
        let issuer = TokenIssuer::new(ISSUER, &[StoredKey::generate(NOW).unwrap()]).unwrap();
        Authenticator::new("admin-token".into(), users, issuer)
    }

    fn sa_token(a: &Authenticator, audiences: &[&str], secret: Option<(&str, &str)>) -> String {
        let grant = Grant {
            namespace: "team-a".into(),
            service_account: ObjectRef {
                name: "builder".into(),
                uid: "sa-1".into(),
            },
            audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
            expiration_seconds: 3600,
            secret: secret.map(|(name, uid)| ObjectRef {
                name: name.into(),
                uid: uid.into(),
            }),
        };
        a.service_accounts()
            .issue(&grant, NOW, "jti-1".into())
            .unwrap()
            .0
    }

    fn objects(sa_uid: &'static str) -> Objects {
        Objects(
            [
                (("serviceaccounts", "team-a", "builder"), sa_uid),
                (("secrets", "team-a", "bound"), "secret-1"),
            ]
            .into(),
        )
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_no_credentials() {
        // (header, token found, why)
        let cases = [
            (Some("Bearer abc"), Some("abc"), "the usual spelling"),
            (
                Some("bearer abc"),
                Some("abc"),
                "lower case, as Kubernetes accepts",
            ),
            (
                Some("BEARER abc extra"),
                Some("abc"),
                "the second field is the token",
            ),
            (
                Some("  Bearer abc  "),
                Some("abc"),
                "surrounding spaces are trimmed",
            ),
            (Some("Basic YWxpY2U6cHc="), None, "another scheme"),
            (Some("Bearer "), None, "an empty token"),
            (Some("abc"), None, "no scheme"),
            (None, None, "no header"),
        ];
        for (header, want, why) in cases {
            assert_eq!(bearer_token(header), want, "{why}");
        }
    }

    #[test]
    fn each_credential_authenticates_as_its_user_or_is_refused() {
        let a = authenticator();
        let objs = objects("sa-1");
        let user = |auth: Authentication| match auth {
            Authentication::User(u) => u,
            other => panic!("not a user: {other:?}"),
        };
        let admin = user(a.authenticate(Some("bearer admin-token"), None, &objs, NOW));
        assert_eq!(admin, UserInfo::admin());
        let alice = user(a.authenticate(Some("Bearer alice-token"), None, &objs, NOW));
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "team-a", "system:authenticated"]);

        let token = sa_token(&a, &[], None);
        let sa = user(a.authenticate(Some(&format!("Bearer {token}")), None, &objs, NOW + 1));
        assert_eq!(sa.name, "system:serviceaccount:team-a:builder");
        assert_eq!(sa.uid, "sa-1");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team-a",
                "system:authenticated"
            ]
        );
        assert_eq!(sa.extra[EXTRA_CREDENTIAL_ID], ["JTI=jti-1"]);

        let cert_user = UserInfo {
            name: "carol".into(),
            ..Default::default()
        }
        .authenticated();
        assert_eq!(
            user(a.authenticate(Some("Bearer wrong"), Some(&cert_user), &objs, NOW)),
            cert_user,
            "a verified client certificate wins, as kube-apiserver tries it first"
        );
        assert_eq!(
            a.authenticate(None, None, &objs, NOW),
            Authentication::Anonymous
        );
        assert!(matches!(
            a.authenticate(Some("Bearer wrong"), None, &objs, NOW),
            Authentication::Refused(_)
        ));
    }

    #[test]
    fn service_account_tokens_are_refused_when_their_objects_or_audience_do_not_match() {
        let a = authenticator();
        let refused = |token: &str, objs: &Objects, audiences: Option<&[String]>, now: i64| {
            a.authenticate_token(token, audiences, objs, now)
                .unwrap_err()
        };
        let plain = sa_token(&a, &[], None);
        let why = refused(&plain, &objects("sa-2"), None, NOW);
        assert!(
            why.contains("UID (sa-2) does not match claim (sa-1)"),
            "{why}"
        );
        let why = refused(&plain, &Objects(BTreeMap::new()), None, NOW);
        assert!(why.contains("team-a/builder has been deleted"), "{why}");
        let why = refused(&plain, &objects("sa-1"), None, NOW + 3600);
        assert!(why.contains("expired"), "{why}");

        let sts = sa_token(&a, &["sts.amazonaws.com"], None);
        let why = refused(&sts, &objects("sa-1"), None, NOW);
        assert!(why.contains("invalid for the target audiences"), "{why}");
        let wanted = ["sts.amazonaws.com".to_owned()];
        let ok = a
            .authenticate_token(&sts, Some(&wanted), &objects("sa-1"), NOW)
            .unwrap();
        assert_eq!(
            ok.audiences, wanted,
            "a TokenReview for the token's audience"
        );

        let bound = sa_token(&a, &[], Some(("bound", "secret-1")));
        assert!(
            a.authenticate_token(&bound, None, &objects("sa-1"), NOW)
                .is_ok()
        );
        let gone = Objects([(("serviceaccounts", "team-a", "builder"), "sa-1")].into());
        let why = refused(&bound, &gone, None, NOW);
        assert!(why.contains("bound to has been deleted"), "{why}");

        let why = a
            .authenticate_token("alice-token", Some(&wanted), &objects("sa-1"), NOW)
            .unwrap_err();
        assert!(
            why.contains("invalid for the target audiences"),
            "static tokens are good for the API audience only: {why}"
        );
    }

    #[test]
    fn only_health_version_and_oidc_discovery_are_public() {
        fn split(p: &str) -> Vec<&str> {
            p.split('/').filter(|s| !s.is_empty()).collect()
        }
        for public in [
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/version/",
            "/.well-known/openid-configuration",
            "/openid/v1/jwks",
        ] {
            assert!(is_public(&split(public)), "{public}");
        }
        for private in [
            "/api",
            "/apis",
            "/api/v1/namespaces",
            "/openapi/v3",
            "/healthz/etcd",
            "/",
        ] {
            assert!(!is_public(&split(private)), "{private}");
        }
    }
}
