//! Test doubles around the Cloud Storage emulators (started by the shared `emulators` module): a
//! recording proxy, and the token endpoints Google runs (OAuth for service-account keys, STS for
//! external accounts), which no emulator provides. Everything binds 127.0.0.1 on a free port.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use strata_provider::{
    BoxFuture, External, ExternalName, Managed, Observation, Present, Provider, ProviderError,
    SecretReference, Secrets,
};
use strata_provider_gcp::GcsBucketProvider;

pub use strata_test_support::{Emulator, TempDir};

/// An HTTP server on 127.0.0.1, stopped on drop.
pub struct Served {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn serve(listener: tokio::net::TcpListener, url: String, router: Router) -> Served {
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { url, task }
}

/// A plain HTTP client for the tests' own calls. reqwest is built without a bundled crypto
/// provider; ring is the workspace's choice.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// One request as the proxy forwarded it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub type Log = Arc<Mutex<Vec<Recorded>>>;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    log: Log,
}

/// A proxy in front of an emulator that records every request: what Strata sent, and with
/// which credentials.
pub async fn recording_proxy(upstream: &str) -> (Served, Log) {
    let log = Log::default();
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: http(),
        log: log.clone(),
    };
    let (listener, url) = bind().await;
    let router = Router::new().fallback(forward).with_state(proxy);
    (serve(listener, url, router), log)
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap().to_owned());
    proxy.log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut upstream = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body.to_vec());
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        upstream = upstream.header("content-type", content_type.to_str().unwrap());
    }
    let response = upstream.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_else(|| "application/json".to_owned());
    let bytes = response.bytes().await.unwrap();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes.to_vec()))
        .unwrap()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn form(body: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// A token endpoint and how many tokens it issued.
pub struct TokenEndpoint {
    pub served: Served,
    pub issued: Arc<AtomicUsize>,
}

impl TokenEndpoint {
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct OAuth {
    url: String,
    client_email: String,
    public_key: jsonwebtoken::DecodingKey,
    access_token: &'static str,
    issued: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct Assertion {
    scope: String,
}

/// Google's OAuth token endpoint for service-account keys: accepts only a JWT-bearer grant
/// whose assertion is signed by `public_key_pem`, issued by `client_email`, addressed to this
/// endpoint and asking for a Cloud Storage scope; answers with `access_token`.
pub async fn oauth_token_endpoint(
    public_key_pem: &str,
    client_email: &str,
    access_token: &'static str,
) -> TokenEndpoint {
    let (listener, url) = bind().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let state = OAuth {
        url: url.clone(),
        client_email: client_email.to_owned(),
        public_key: jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes()).unwrap(),
        access_token,
        issued: issued.clone(),
    };
    let router = Router::new().fallback(oauth_grant).with_state(state);
    TokenEndpoint {
        served: serve(listener, url, router),
        issued,
    }
}

async fn oauth_grant(State(oauth): State<OAuth>, body: String) -> Response {
    let form = form(&body);
    let refuse = |why: String| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": why}),
        )
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse("grant_type".into());
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("no assertion".into());
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[oauth.url.as_str()]);
    validation.set_issuer(&[oauth.client_email.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Assertion>(assertion, &oauth.public_key, &validation)
    {
        Ok(data) => data.claims,
        Err(error) => return refuse(format!("assertion: {error}")),
    };
    if !claims
        .scope
        .split(' ')
        .any(|scope| scope == "https://www.googleapis.com/auth/devstorage.full_control")
    {
        return refuse(format!("scope {}", claims.scope));
    }
    oauth.issued.fetch_add(1, Ordering::SeqCst);
    json_response(
        StatusCode::OK,
        json!({"access_token": oauth.access_token, "token_type": "Bearer", "expires_in": 3600}),
    )
}

#[derive(Clone)]
struct Sts {
    audience: String,
    subject_token: String,
    access_token: &'static str,
    issued: Arc<AtomicUsize>,
}

/// Google STS: exchanges exactly `subject_token` (an OIDC JWT) for `audience` into
/// `access_token`.
pub async fn sts_endpoint(
    audience: &str,
    subject_token: &str,
    access_token: &'static str,
) -> TokenEndpoint {
    let (listener, url) = bind().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let state = Sts {
        audience: audience.to_owned(),
        subject_token: subject_token.to_owned(),
        access_token,
        issued: issued.clone(),
    };
    let router = Router::new().fallback(sts_exchange).with_state(state);
    TokenEndpoint {
        served: serve(listener, url, router),
        issued,
    }
}

async fn sts_exchange(State(sts): State<Sts>, headers: HeaderMap, body: String) -> Response {
    let form = form(&body);
    let field = |name: &str| form.get(name).map(|value| value.trim()).unwrap_or_default();
    let expected = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("audience", sts.audience.as_str()),
        ("subject_token", sts.subject_token.as_str()),
    ];
    for (name, value) in expected {
        if field(name) != value {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant", "error_description": format!("{name} is wrong")}),
            );
        }
    }
    if headers.get(header::AUTHORIZATION).is_some() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_client", "error_description": "an OIDC exchange carries no client secret"}),
        );
    }
    sts.issued.fetch_add(1, Ordering::SeqCst);
    json_response(
        StatusCode::OK,
        json!({
            "access_token": sts.access_token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600
        }),
    )
}

/// A fresh RSA key pair as PEM (private PKCS#8, public SPKI), made by `openssl`.
pub fn rsa_key_pair(dir: &Path) -> (String, String) {
    let private = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl genpkey");
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .expect("openssl runs");
    assert!(public.status.success(), "openssl pkey -pubout");
    (
        std::fs::read_to_string(&private).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

/// A service-account key JSON whose token URI is `token_uri`.
pub fn service_account_key(private_key_pem: &str, client_email: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "test-key-1",
        "private_key": private_key_pem,
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

/// Secrets held in memory.
#[derive(Default)]
pub struct MemorySecrets(Mutex<BTreeMap<(String, String), BTreeMap<String, String>>>);

impl MemorySecrets {
    pub fn insert(&self, namespace: &str, name: &str, key: &str, value: &str) {
        self.0
            .lock()
            .unwrap()
            .entry((namespace.into(), name.into()))
            .or_default()
            .insert(key.into(), value.into());
    }
}

impl Secrets for MemorySecrets {
    fn get<'a>(
        &'a self,
        secret: &'a SecretReference,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, ProviderError>> {
        let found = self
            .0
            .lock()
            .unwrap()
            .get(&(secret.namespace.clone(), secret.name.clone()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn put_key<'a>(
        &'a self,
        secret: &'a SecretReference,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.insert(&secret.namespace, &secret.name, key, value);
        Box::pin(async { Ok(()) })
    }
}

/// Connects the Bucket provider with a ProviderConfig `spec`.
pub async fn connect(
    spec: Value,
    secrets: Arc<MemorySecrets>,
) -> Result<Arc<dyn External>, ProviderError> {
    GcsBucketProvider
        .connect(
            &json!({"metadata": {"name": "test"}, "spec": spec}),
            secrets,
        )
        .await
}

/// The provider against the endpoint at `url` without credentials, as the emulators take it.
pub async fn anonymous(url: &str) -> Arc<dyn External> {
    connect(
        json!({"credentials": {"source": "Anonymous"}, "endpoint": url}),
        Arc::new(MemorySecrets::default()),
    )
    .await
    .expect("an anonymous ProviderConfig connects")
}

pub fn bucket(external_name: &str, location: &str) -> Managed {
    Managed {
        name: external_name.into(),
        external_name: ExternalName::new(external_name),
        for_provider: json!({
            "project": "demo",
            "location": location,
            "storageClass": "STANDARD",
            "versioning": false,
            "uniformBucketLevelAccess": false
        }),
        at_provider: Value::Null,
        connection_secret: None,
    }
}

/// Reads the bucket and updates it from that record, as the runtime does.
pub async fn update(external: &dyn External, managed: &Managed) -> Result<(), ProviderError> {
    let record = external
        .read(managed)
        .await?
        .expect("the bucket to update exists");
    external.update(managed, &record).await
}

pub fn present(observation: Observation) -> Present {
    match observation {
        Observation::Present(present) => present,
        Observation::Absent => panic!("expected the bucket to exist"),
    }
}

/// The `Authorization` headers of every recorded request.
pub fn authorizations(log: &Log) -> Vec<Option<String>> {
    log.lock()
        .unwrap()
        .iter()
        .map(|request| request.authorization.clone())
        .collect()
}
