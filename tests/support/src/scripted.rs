//! A scripted Kubernetes API for unit tests of controllers' I/O sequences: a real
//! [`kube::Client`] over a mock service (tower-test's pair, as kube's own tests do). Every
//! request is answered by the test's `answer` function and recorded — method, path, query,
//! content type and JSON body — so a test can assert the exact requests a reconcile made, in
//! order, with nothing else sent.
//!
//! Hand-written because what the tests need is the record of requests a real client sent, and
//! answers that follow the test's own state; a mock HTTP server crate would add a listener and
//! a second client stack for the same thing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock;

/// The content type of a JSON merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// The content type of a server-side apply patch.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// One request as the API saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string (`fieldManager=strata&force=true`), empty when there is none.
    pub query: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as JSON (`null` when empty; apply patches are sent as JSON too).
    pub body: Value,
}

/// The answer to one request: a status code and a JSON body.
pub type Answer = (StatusCode, Value);

/// The API side: answers every request with the test's function and records it.
pub struct ScriptedApi {
    seen: Arc<Mutex<Vec<Seen>>>,
    server: JoinHandle<()>,
}

impl ScriptedApi {
    /// A client whose requests `answer` answers, and the API that records them. The API stops
    /// once every clone of the client is dropped.
    pub fn start(mut answer: impl FnMut(&Seen) -> Answer + Send + 'static) -> (Client, Self) {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or_default().to_owned();
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("a request body");
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("a JSON request body")
                };
                let seen = Seen {
                    method,
                    path,
                    query,
                    content_type,
                    body,
                };
                let (status, answer) = answer(&seen);
                record.lock().expect("the record").push(seen);
                let response = Response::builder()
                    .status(status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        serde_json::to_vec(&answer).expect("a JSON answer"),
                    ))
                    .expect("a response");
                respond.send_response(response);
            }
        });
        (Client::new(service, "default"), Self { seen, server })
    }

    /// The requests made since the last call, in order.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("the record"))
    }

    /// Waits until every client is gone and returns what was requested after the last
    /// [`ScriptedApi::take`].
    pub async fn finish(self) -> Vec<Seen> {
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the client is still alive")
            .expect("the scripted API");
        std::mem::take(&mut *self.seen.lock().expect("the record"))
    }
}

/// A Kubernetes `Status` answer: `code`, `reason` and `message`.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Answer {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": reason, "code": code.as_u16(), "message": message }),
    )
}

/// `404 NotFound`, as the API server answers for an object that does not exist.
pub fn not_found(path: &str) -> Answer {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{path} not found"),
    )
}

/// Asserts the request's method and path.
#[track_caller]
pub fn assert_request(seen: &Seen, method: Method, path: &str) {
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&method, path),
        "request: {seen:#?}"
    );
}

/// The `(type, status, reason)` of each of a status's conditions, in order.
#[track_caller]
pub fn conditions(status: &Value) -> Vec<(String, String, String)> {
    status["conditions"]
        .as_array()
        .expect("status.conditions")
        .iter()
        .map(|c| {
            let field = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
            (field("type"), field("status"), field("reason"))
        })
        .collect()
}

/// One `(type, status, reason)` for comparing with [`conditions`].
pub fn condition(type_: &str, status: &str, reason: &str) -> (String, String, String) {
    (type_.to_owned(), status.to_owned(), reason.to_owned())
}

/// `target` with the JSON merge patch `patch` applied (RFC 7386), as the API server merges it.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(into) = target {
        for (key, value) in fields {
            if value.is_null() {
                into.remove(key);
            } else {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
