//! A recording, fault-injecting HTTP/1.1 proxy between a cloud SDK and an emulator, for tests and
//! benchmarks: every request is classified (operation and resource), timed and counted; an
//! injector may answer a request itself with a throttling error or a 503 instead of forwarding
//! it. One request per upstream connection (`Connection: close`), so no response parsing is
//! needed beyond the status line.
//!
//! Used by the providers' integration tests and the managed-resource benchmark example.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest one request and its response may take through the proxy.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Call {
    /// When the proxy received the request.
    pub at: Instant,
    /// The API operation (`DescribeDBInstances`, `buckets.get`, …).
    pub operation: String,
    /// The resource the request names (a DB instance identifier, a bucket), or empty.
    pub resource: String,
    /// The status the proxy answered with itself, when it injected a fault.
    pub injected: Option<u16>,
    /// The status the emulator answered with (when forwarded).
    pub upstream_status: Option<u16>,
    /// The emulator's answer was a throttling error.
    pub throttled: bool,
    /// The access key id an AWS Signature V4 `Authorization` header names, if any.
    pub access_key: Option<String>,
}

/// An error the proxy answers with instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// RDS (query protocol) `Throttling`, HTTP 400.
    Throttling,
    /// HTTP 503 `ServiceUnavailable`.
    ServiceUnavailable,
}

/// Names a request: `(operation, resource)` from method, path and body.
pub type Classifier = fn(&str, &str, &[u8]) -> (String, String);
/// Decides, per request, whether to inject a fault; sees the request and every earlier call.
pub type Injector = Box<dyn FnMut(&str, &str, &[Call]) -> Option<Fault> + Send>;

/// A running proxy; stops when dropped.
pub struct CloudProxy {
    /// Where the proxy listens (`http://127.0.0.1:<port>`); point the SDK's endpoint here.
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    task: JoinHandle<()>,
}

impl Drop for CloudProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    classify: Classifier,
    inject: Mutex<Option<Injector>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CloudProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str, classify: Classifier, inject: Option<Injector>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            classify,
            inject: Mutex::new(inject),
            calls: calls.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    // A stalled exchange is dropped (the client sees a transport error and
                    // retries) rather than holding its reconcile forever.
                    let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, serve(stream, &shared)).await;
                });
            }
        });
        CloudProxy { url, calls, task }
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Calls of `operation` (any resource).
    pub fn count(&self, operation: &str) -> usize {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|call| call.operation == operation)
            .count()
    }

    /// Calls naming `resource` (any operation).
    pub fn count_for(&self, resource: &str) -> usize {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|call| call.resource == resource)
            .count()
    }
}

/// Serves one request of a client connection; every response says `Connection: close`, so the
/// client opens a new connection for the next one.
async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let Some((head, body)) = read_request(&mut client, &mut buffer).await? else {
        return Ok(());
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (operation, resource) = (shared.classify)(&method, &path, &body);
    let access_key = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').next())
        .map(str::to_owned);
    let fault = {
        let mut inject = shared.inject.lock().expect("injector");
        let calls = shared.calls.lock().expect("calls").clone();
        inject
            .as_mut()
            .and_then(|inject| inject(&operation, &resource, &calls))
    };
    let mut call = Call {
        at: Instant::now(),
        operation,
        resource,
        injected: None,
        upstream_status: None,
        throttled: false,
        access_key,
    };
    let response = match fault {
        Some(fault) => {
            let (status, response) = fault_response(fault);
            call.injected = Some(status);
            response
        }
        None => {
            let response = forward(&shared.upstream, &request_line, lines, &body).await?;
            call.upstream_status = status_of(&response);
            call.throttled = is_throttling(&response);
            with_connection_close(&response)
        }
    };
    shared.calls.lock().expect("calls").push(call);
    client.write_all(&response).await?;
    client.flush().await?;
    client.shutdown().await
}

/// Reads one request (head and Content-Length body); `None` when the client closed first.
async fn read_request(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at;
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Ok(Some((head, body)))
}

async fn forward<'a>(
    upstream: &str,
    request_line: &str,
    headers: impl Iterator<Item = &'a str>,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut request = format!("{request_line}\r\n");
    for header in headers {
        let name = header.split(':').next().unwrap_or_default().trim();
        if !["connection", "keep-alive", "proxy-connection"]
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop))
        {
            request.push_str(header);
            request.push_str("\r\n");
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut stream = TcpStream::connect(upstream).await?;
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn status_of(response: &[u8]) -> Option<u16> {
    let line_end = find(response, b"\r\n")?;
    String::from_utf8_lossy(&response[..line_end])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

fn is_throttling(response: &[u8]) -> bool {
    status_of(response) == Some(429)
        || find(response, b"<Code>Throttling</Code>").is_some()
        || find(response, b"RequestLimitExceeded").is_some()
}

/// The response with its `Connection` header replaced by `Connection: close`.
fn with_connection_close(response: &[u8]) -> Vec<u8> {
    let Some(head_end) = find(response, b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&response[head_end + 4..]);
    bytes
}

fn fault_response(fault: Fault) -> (u16, Vec<u8>) {
    let (status, reason, type_, code, message) = match fault {
        Fault::Throttling => (400, "Bad Request", "Sender", "Throttling", "Rate exceeded"),
        Fault::ServiceUnavailable => (
            503,
            "Service Unavailable",
            "Receiver",
            "ServiceUnavailable",
            "Service unavailable",
        ),
    };
    let body = format!(
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>{type_}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>strata-test-proxy</RequestId></ErrorResponse>"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    (status, response.into_bytes())
}

/// RDS (query protocol): the `Action` and `DBInstanceIdentifier` form fields.
pub fn rds_call(_method: &str, _path: &str, body: &[u8]) -> (String, String) {
    let mut operation = String::new();
    let mut resource = String::new();
    for pair in String::from_utf8_lossy(body).split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "Action" => operation = value.to_owned(),
            "DBInstanceIdentifier" => resource = value.to_owned(),
            _ => {}
        }
    }
    (operation, resource)
}

/// GCS JSON API: `buckets.insert|get|list|patch|delete` and the bucket name from the path (for
/// inserts, the name is in the JSON body).
pub fn gcs_call(method: &str, path: &str, body: &[u8]) -> (String, String) {
    let path = path.split('?').next().unwrap_or_default();
    let rest = path
        .trim_start_matches("/storage/v1/b")
        .trim_start_matches('/');
    let bucket = rest.split('/').next().unwrap_or_default().to_owned();
    let operation = match (method, bucket.is_empty(), rest.contains('/')) {
        ("GET", false, true) if rest.ends_with("/iam") => "buckets.getIamPolicy",
        ("PUT", false, true) if rest.ends_with("/iam") => "buckets.setIamPolicy",
        (_, false, true) => "objects",
        ("POST", true, _) => "buckets.insert",
        ("GET", true, _) => "buckets.list",
        ("GET", false, _) => "buckets.get",
        ("PATCH" | "PUT", false, _) => "buckets.patch",
        ("DELETE", false, _) => "buckets.delete",
        _ => "other",
    };
    let bucket = if operation == "buckets.insert" {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value["name"].as_str().map(str::to_owned))
            .unwrap_or_default()
    } else {
        bucket
    };
    (operation.to_owned(), bucket)
}
