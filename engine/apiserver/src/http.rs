//! The HTTP surface: authentication, routing of Kubernetes API paths, and the mapping of every
//! `ApiError` to a `Status` response. Handlers parse the request, call [`Cluster`], and render.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use strata_schema::pointer::Pointer;
use tokio::sync::{broadcast, mpsc};

use crate::cluster::{Cluster, DeleteOptions, Propagation, Subresource, Target};
use crate::error::{ApiError, ApiResult, ErrorTarget, FieldCause};
use crate::patch::PatchKind;
use crate::selector::Selector;
use crate::watch::{EventType, WatchEvent};

/// The largest request body accepted, as kube-apiserver's limit.
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;
/// Bookmarks are sent this often on watches that allow them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub(crate) struct AppState {
    pub cluster: Arc<Cluster>,
    /// Who a request is: [`crate::auth`].
    pub authn: Arc<crate::auth::Authenticator>,
    pub server_address: String,
    /// Turns true when the server stops: open watches end so shutdown does not wait on them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Every write request received, by verb.
    pub writes: Arc<crate::writes::WriteCounter>,
    /// How requests are authorized (RBAC unless measuring without it).
    pub authorization: crate::rbac::Mode,
    /// The OpenAPI documents built so far.
    pub openapi: crate::openapi::Cache,
}

pub(crate) fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(app): State<Arc<AppState>>, req: Request) -> Response {
    app.writes.record(req.method());
    let yaml = wants_yaml(req.headers());
    let response = match handle(&app, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if yaml {
        return yaml_response(response).await;
    }
    response
}

/// `/openapi/v2` in the encoding asked for: protobuf when client-go asks for it first, else JSON,
/// and 406 for anything else, as kube-apiserver answers.
fn openapi_v2(app: &AppState, accept: &str) -> ApiResult<Response> {
    use crate::openapi::v2;
    if !v2::acceptable(accept) {
        let mut r = Response::new(Body::from("406: Not Acceptable"));
        *r.status_mut() = StatusCode::NOT_ACCEPTABLE;
        return Ok(r);
    }
    let doc = app.openapi.v2(&app.cluster.registry());
    if v2::wants_protobuf(accept) {
        let mut r = bytes_response(StatusCode::OK, doc.protobuf.clone());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(v2::PROTOBUF_CONTENT_TYPE),
        );
        return Ok(r);
    }
    Ok(bytes_response(StatusCode::OK, doc.json.clone()))
}

/// The client asks for YAML first (`Accept: application/yaml`), as kube-apiserver serves it.
fn wants_yaml(headers: &HeaderMap) -> bool {
    header_str(headers, header::ACCEPT)
        .split(',')
        .next()
        .is_some_and(|first| first.trim().starts_with("application/yaml"))
}

/// Re-encodes a JSON response as YAML; anything else (a watch stream, a table, protobuf) is
/// left as it is.
async fn yaml_response(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_response(&ApiError::Internal(
            "reading a response to encode as YAML".into(),
        ));
    };
    let yaml = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| serde_saphyr::to_string(&v).ok());
    match yaml {
        Some(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/yaml"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    json_response(
        StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_response(code: StatusCode, bytes: impl Into<Body>) -> Response {
    let mut r = Response::new(bytes.into());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn ok(body: &Value) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, body))
}

/// An object the cluster stored (or a Status in its place), its managedFields written out.
fn ok_object(obj: &Value) -> ApiResult<Response> {
    Ok(object_response(StatusCode::OK, obj))
}

/// A stored object as `t` serves it: the bytes the store wrote for it when `t` shows it as
/// stored and it is the object of one of the newest events (just written or recently
/// changed), else serialized.
fn stored_response(cluster: &Cluster, code: StatusCode, t: &Target, obj: &Arc<Value>) -> Response {
    let served = crate::builtin::served(t, obj);
    if matches!(served, std::borrow::Cow::Borrowed(_))
        && let Some(json) = cluster.hub.stored_json(obj)
    {
        return bytes_response(code, json);
    }
    object_response(code, &served)
}

/// [`stored_response`] with 200.
fn ok_stored(cluster: &Cluster, t: &Target, obj: &Arc<Value>) -> ApiResult<Response> {
    Ok(stored_response(cluster, StatusCode::OK, t, obj))
}

fn object_response(code: StatusCode, obj: &Value) -> Response {
    bytes_response(code, crate::compact::object_json(obj))
}

struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// Which part of the API a path names.
enum ApiPath<'a> {
    Collection {
        ns: Option<&'a str>,
        resource: &'a str,
    },
    Object {
        ns: Option<&'a str>,
        resource: &'a str,
        name: &'a str,
        sub: Option<&'a str>,
    },
}

fn parse_resource_path<'a>(rest: &[&'a str]) -> Option<ApiPath<'a>> {
    match rest {
        [resource] => Some(ApiPath::Collection { ns: None, resource }),
        ["namespaces", name, sub @ ("status" | "finalize")] => Some(ApiPath::Object {
            ns: None,
            resource: "namespaces",
            name,
            sub: Some(sub),
        }),
        ["namespaces", ns, resource] => Some(ApiPath::Collection {
            ns: Some(ns),
            resource,
        }),
        ["namespaces", ns, resource, name] => Some(ApiPath::Object {
            ns: Some(ns),
            resource,
            name,
            sub: None,
        }),
        ["namespaces", ns, resource, name, sub] => Some(ApiPath::Object {
            ns: Some(ns),
            resource,
            name,
            sub: Some(sub),
        }),
        [resource, name] => Some(ApiPath::Object {
            ns: None,
            resource,
            name,
            sub: None,
        }),
        [resource, name, sub] => Some(ApiPath::Object {
            ns: None,
            resource,
            name,
            sub: Some(sub),
        }),
        _ => None,
    }
}

/// Bodies past this are not even drained: the connection is dropped after the 413.
const MAX_DRAINED: usize = 64 * 1024 * 1024;

/// Reads the body; one over [`MAX_BODY`] is read to its end (up to [`MAX_DRAINED`]) and
/// discarded, so the client gets the 413 rather than a broken connection.
async fn read_body(body: Body) -> ApiResult<Bytes> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
        seen += chunk.len();
        if seen > MAX_DRAINED {
            break;
        }
        if seen <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::RequestTooLarge { limit: MAX_BODY });
    }
    Ok(Bytes::from(buf))
}

/// Who sends `req`: the user of its credentials, or the anonymous user on a public path;
/// otherwise 401, as kube-apiserver answers.
fn authenticate(app: &AppState, req: &Request) -> ApiResult<crate::auth::UserInfo> {
    use crate::auth::Authentication;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The user of the connection's verified client certificate, recorded when it was accepted.
    let client_certificate = req
        .extensions()
        .get::<crate::client_cert::ClientIdentity>()
        .and_then(|c| c.0.as_ref());
    let now = jiff::Timestamp::now().as_second();
    match app
        .authn
        .authenticate(authorization, client_certificate, &*app.cluster, now)
    {
        Authentication::User(user) => Ok(user),
        Authentication::Anonymous => {
            let segments: Vec<&str> = req
                .uri()
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            if crate::auth::is_public(&segments) {
                Ok(crate::auth::UserInfo::anonymous())
            } else {
                Err(ApiError::Unauthorized)
            }
        }
        Authentication::Refused(why) => {
            tracing::debug!(path = req.uri().path(), %why, "authentication refused");
            Err(ApiError::Unauthorized)
        }
    }
}

fn post_only(m: &Method) -> ApiResult<()> {
    if m == Method::POST {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

async fn handle(app: &AppState, req: Request) -> ApiResult<Response> {
    let user = authenticate(app, &req)?;
    let user = Arc::new(crate::rbac::authorize_request(
        &app.cluster.rbac,
        app.authorization,
        user,
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    )?);
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let query = Query::parse(parts.uri.query());
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::UnknownResource { path: path.clone() };
    let get_only = |m: &Method| {
        if m == Method::GET {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    };
    let registry = || app.cluster.registry();
    let aggregated_discovery = crate::discovery::wants_aggregated(
        parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let now = || jiff::Timestamp::now().as_second();
    match segments.as_slice() {
        ["version"] => ok(&crate::discovery::version()),
        [".well-known", "openid-configuration"] => {
            get_only(&parts.method).and_then(|()| ok(&app.authn.service_accounts().discovery()))
        }
        ["openid", "v1", "jwks"] => get_only(&parts.method).map(|()| {
            let mut r = json_response(StatusCode::OK, &app.authn.service_accounts().jwks());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(crate::authn_api::JWKS_CONTENT_TYPE),
            );
            r
        }),
        [
            "apis",
            crate::authn_api::GROUP,
            crate::authn_api::VERSION,
            "selfsubjectreviews",
        ] => post_only(&parts.method).map(|()| {
            json_response(
                StatusCode::CREATED,
                &crate::authn_api::self_subject_review(&user),
            )
        }),
        [
            "apis",
            crate::authn_api::GROUP,
            crate::authn_api::VERSION,
            "tokenreviews",
        ] => {
            post_only(&parts.method)?;
            let body = json_body(&parts.headers, &body)?;
            let review = crate::authn_api::token_review(&app.authn, &*app.cluster, &body, now())?;
            Ok(json_response(StatusCode::CREATED, &review))
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] => {
            post_only(&parts.method)?;
            let body = json_body(&parts.headers, &body)?;
            let issued =
                crate::authn_api::token_request(&app.authn, &*app.cluster, ns, name, &body, now())?;
            Ok(json_response(StatusCode::CREATED, &issued))
        }
        ["healthz" | "livez" | "readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain"),
            );
            Ok(r)
        }
        ["api" | "apis"] if aggregated_discovery => get_only(&parts.method).map(|()| {
            let doc = crate::discovery::aggregated(&registry(), segments[0] == "api");
            let mut r = json_response(StatusCode::OK, &doc);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(crate::discovery::AGGREGATED_DISCOVERY),
            );
            r
        }),
        ["api"] => get_only(&parts.method)
            .and_then(|()| ok(&crate::discovery::core_versions(&app.server_address))),
        ["apis"] => {
            get_only(&parts.method).and_then(|()| ok(&crate::discovery::group_list(&registry())))
        }
        ["api", "v1"] => crate::discovery::resource_list(&registry(), "", "v1")
            .ok_or_else(not_found)
            .and_then(|d| ok(&d)),
        ["apis", group] => crate::discovery::group(&registry(), group)
            .ok_or_else(not_found)
            .and_then(|d| ok(&d)),
        ["apis", group, version] => crate::discovery::resource_list(&registry(), group, version)
            .ok_or_else(not_found)
            .and_then(|d| ok(&d)),
        ["openapi", "v3"] => {
            get_only(&parts.method).and_then(|()| ok(&crate::openapi::index(&registry())))
        }
        ["openapi", "v3", "api", version] => {
            get_only(&parts.method)?;
            app.openapi
                .group_version(&registry(), "", version)
                .ok_or_else(not_found)
                .map(|doc| bytes_response(StatusCode::OK, doc))
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only(&parts.method)?;
            app.openapi
                .group_version(&registry(), group, version)
                .ok_or_else(not_found)
                .map(|doc| bytes_response(StatusCode::OK, doc))
        }
        ["openapi", "v2"] => {
            get_only(&parts.method)?;
            openapi_v2(app, header_str(&parts.headers, header::ACCEPT))
        }
        ["apis", crate::rbac::AUTHORIZATION_GROUP, "v1", rest @ ..]
            if crate::rbac::review::ReviewKind::from_path(rest).is_some() =>
        {
            post_only(&parts.method)?;
            let (kind, ns) =
                crate::rbac::review::ReviewKind::from_path(rest).ok_or_else(not_found)?;
            let body = parse_json_body(&json_body(&parts.headers, &body)?)?;
            let reviewed =
                crate::rbac::review::review(&app.cluster.rbac.read(), &user, kind, ns, &body)?;
            Ok(json_response(StatusCode::CREATED, &reviewed))
        }
        ["api", "v1", rest @ ..] => {
            let p = parse_resource_path(rest).ok_or_else(not_found)?;
            resource_request(
                app,
                &user,
                "",
                "v1",
                p,
                &parts.method,
                &parts.headers,
                &query,
                &body,
                &path,
            )
            .await
        }
        ["apis", group, version, rest @ ..] => {
            let p = parse_resource_path(rest).ok_or_else(not_found)?;
            resource_request(
                app,
                &user,
                group,
                version,
                p,
                &parts.method,
                &parts.headers,
                &query,
                &body,
                &path,
            )
            .await
        }
        _ => Err(not_found()),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The field manager of a write: `fieldManager`, else the client's user-agent name.
fn field_manager(query: &Query, headers: &HeaderMap) -> String {
    query
        .get("fieldManager")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let agent = header_str(headers, header::USER_AGENT);
            let name = agent.split('/').next().unwrap_or_default();
            if name.is_empty() {
                "unknown".into()
            } else {
                name.to_owned()
            }
        })
}

fn parse_json_body(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    crate::compact::check_input(&v)?;
    Ok(v)
}

/// The request body as JSON: protobuf (which kubectl's generators send) and YAML
/// (`application/yaml`) decoded, CBOR refused.
fn json_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> ApiResult<std::borrow::Cow<'a, [u8]>> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    if !body.is_empty() && content_type.starts_with("application/vnd.kubernetes.protobuf") {
        Ok(std::borrow::Cow::Owned(
            serde_json::to_vec(&crate::protobuf::decode(body)?).unwrap_or_default(),
        ))
    } else if !body.is_empty() && content_type.starts_with("application/yaml") {
        let value: Value = serde_saphyr::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("the request body is not valid YAML: {e}"))
        })?;
        Ok(std::borrow::Cow::Owned(
            serde_json::to_vec(&value).unwrap_or_default(),
        ))
    } else if !body.is_empty() && content_type.contains("cbor") {
        Err(ApiError::UnsupportedMediaType {
            accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf"
                .into(),
        })
    } else {
        Ok(std::borrow::Cow::Borrowed(body))
    }
}

/// A resource request, with the warnings it collected (`fieldValidation=Warn`, the default) as
/// `Warning` headers on its response.
#[allow(clippy::too_many_arguments)]
async fn resource_request(
    app: &AppState,
    user: &Arc<crate::auth::UserInfo>,
    group: &str,
    version: &str,
    p: ApiPath<'_>,
    method: &Method,
    headers: &HeaderMap,
    query: &Query,
    body: &[u8],
    path: &str,
) -> ApiResult<Response> {
    let validation = FieldValidation::parse(query.get("fieldValidation"))?;
    let warnings = crate::validation::Warnings::default();
    let mut response = resource_request_inner(
        app, user, group, version, p, method, headers, query, body, path, validation, &warnings,
    )
    .await?;
    for text in warnings.take() {
        if let Ok(value) = header::HeaderValue::from_str(&crate::validation::warning_header(&text))
        {
            response.headers_mut().append("Warning", value);
        }
    }
    Ok(response)
}

/// `fieldValidation`: what to do with unknown and duplicate fields of a written object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    /// The default, as kube-apiserver: the write succeeds with a `Warning` header per field.
    Warn,
    Strict,
}

impl FieldValidation {
    fn parse(value: Option<&str>) -> ApiResult<Self> {
        match value {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation: unsupported value \"{other}\": supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_request_inner(
    app: &AppState,
    user: &Arc<crate::auth::UserInfo>,
    group: &str,
    version: &str,
    p: ApiPath<'_>,
    method: &Method,
    headers: &HeaderMap,
    query: &Query,
    body: &[u8],
    path: &str,
    validation: FieldValidation,
    warnings: &crate::validation::Warnings,
) -> ApiResult<Response> {
    if let Some(other) = query.get("dryRun").filter(|d| *d != "All") {
        return Err(ApiError::BadRequest(format!(
            "dryRun: unsupported value \"{other}\": supported values: \"All\""
        )));
    }
    let body = json_body(headers, body)?;
    let body = body.as_ref();
    let cluster = &app.cluster;
    let (ns, resource) = match &p {
        ApiPath::Collection { ns, resource } | ApiPath::Object { ns, resource, .. } => {
            (*ns, *resource)
        }
    };
    let t = cluster
        .target(group, version, resource, ns.unwrap_or_default())
        .ok_or_else(|| ApiError::UnknownResource {
            path: path.to_owned(),
        })?;
    if let Some(text) =
        t.rt.version(&t.version)
            .and_then(|v| v.deprecation_warning.clone())
    {
        warnings.extend([text]);
    }
    let t = Target {
        strict_fields: validation == FieldValidation::Strict,
        // Strict refuses unknown fields before warning of them; the warnings of validation
        // rules that ratchet are sent under Strict too.
        warnings: (validation != FieldValidation::Ignore).then(|| warnings.clone()),
        dry_run: query.get("dryRun") == Some("All"),
        requester: Some(user.clone()),
        ..t
    };
    // Duplicate fields in the body (the last one would silently win).
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && validation != FieldValidation::Ignore
    {
        let duplicates = crate::validation::duplicate_fields(body);
        if !duplicates.is_empty() {
            let found: Vec<String> = duplicates
                .iter()
                .map(|d| format!("duplicate field \"{d}\""))
                .collect();
            if validation == FieldValidation::Strict {
                return Err(ApiError::BadRequest(format!(
                    "{} in version \"{version}\" cannot be handled as a {}: strict decoding error: {}",
                    t.rt.kind,
                    t.rt.kind,
                    found.join(", ")
                )));
            }
            warnings.extend(found);
        }
    }
    if !t.rt.namespaced && ns.is_some()
        || (t.rt.namespaced && ns.is_none() && matches!(p, ApiPath::Object { .. }))
    {
        return Err(ApiError::UnknownResource {
            path: path.to_owned(),
        });
    }
    let accept = header_str(headers, header::ACCEPT);
    let manager = field_manager(query, headers);
    match p {
        ApiPath::Collection { .. } => {
            let all_namespaces = t.rt.namespaced && ns.is_none();
            let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?
                .resolve_fields(&t.rt.kind, |label| {
                    t.rt.field_selector_path(&t.version, label)
                })?;
            match *method {
                Method::GET if query.flag("watch") => {
                    watch(app, t, all_namespaces, selector, query, accept)
                }
                Method::GET => list(cluster, &t, all_namespaces, &selector, query, accept).await,
                Method::POST => {
                    if all_namespaces {
                        return Err(ApiError::MethodNotAllowed);
                    }
                    let created = cluster.create(&t, parse_json_body(body)?, &manager).await?;
                    Ok(stored_response(cluster, StatusCode::CREATED, &t, &created))
                }
                Method::DELETE => {
                    let opts = delete_options(query, body)?;
                    let t = Target {
                        dry_run: t.dry_run || body_dry_run(body),
                        ..t
                    };
                    let page = cluster.list(&t, all_namespaces, &selector, None, None)?;
                    let mut deleted = Vec::new();
                    for obj in page.items {
                        let t = Target {
                            namespace: crate::object::namespace(&obj).to_owned(),
                            ..t.clone()
                        };
                        match cluster.delete(&t, crate::object::name(&obj), &opts).await {
                            Ok(o) => deleted.push(crate::builtin::served(&t, &o).into_owned()),
                            Err(ApiError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let head = json!({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version(&t.version),
                        "metadata": {"resourceVersion": cluster.resource_version().to_string()}});
                    Ok(bytes_response(
                        StatusCode::OK,
                        crate::compact::list_json(&head, &deleted),
                    ))
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        ApiPath::Object { name, sub, .. } => {
            if t.rt.group.is_empty()
                && t.rt.resource == "pods"
                && let Some(sub @ ("log" | "exec" | "attach" | "portforward")) = sub
            {
                return pod_connect(cluster, &t, name, sub, method, query);
            }
            if sub == Some("scale")
                && let Some(scale) = t.rt.scale(&t.version).cloned()
            {
                return scale_request(cluster, &t, name, &scale, method, headers, body, &manager)
                    .await;
            }
            let sub = match sub {
                None | Some("finalize") => Subresource::Main,
                Some("status") if t.rt.has_status_subresource() => Subresource::Status,
                Some(_) => {
                    return Err(ApiError::UnknownResource {
                        path: path.to_owned(),
                    });
                }
            };
            match *method {
                Method::GET => {
                    let obj = cluster.get(&t, name)?;
                    let rv = crate::object::resource_version(&obj).parse().unwrap_or(0);
                    cluster.wait_durable(rv).await?;
                    if crate::table::wants_table(accept) {
                        let table = crate::table::table(
                            &t.rt,
                            &t.version,
                            &[obj],
                            true,
                            query.get("includeObject") == Some("Object"),
                            json!({}),
                        );
                        return ok(&table);
                    }
                    ok_stored(cluster, &t, &obj)
                }
                Method::PUT => {
                    let updated = cluster
                        .update(&t, name, parse_json_body(body)?, sub, &manager)
                        .await?;
                    ok_stored(cluster, &t, &updated)
                }
                Method::PATCH => {
                    let content_type = header_str(headers, header::CONTENT_TYPE);
                    let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
                        ApiError::UnsupportedMediaType {
                            accepted: crate::patch::accepted_patch_types(),
                        }
                    })?;
                    let manager = if kind == PatchKind::Apply {
                        query.get("fieldManager")
                    } else {
                        Some(manager.as_str())
                    };
                    let patched = cluster
                        .patch(&t, name, kind, body, sub, manager, query.flag("force"))
                        .await?;
                    ok_stored(cluster, &t, &patched)
                }
                Method::DELETE => {
                    let opts = delete_options(query, body)?;
                    let t = Target {
                        dry_run: t.dry_run || body_dry_run(body),
                        ..t
                    };
                    let deleted = cluster.delete(&t, name, &opts).await?;
                    ok_object(&delete_answer(&t, &deleted))
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
    }
}

/// What deleting one object answers, as kube-apiserver: the object while finalizers hold it,
/// and always for the kinds whose storage returns the deleted object (Pods, Services,
/// Namespaces, PersistentVolumeClaims and PersistentVolumes, CRDs and custom resources); for
/// every other built-in kind a `Success` Status naming it (kube-rs's `delete` tells the two
/// apart; the Python clients hand the body on as it came).
fn delete_answer(t: &Target, deleted: &Value) -> Value {
    let returns_object = !t.rt.builtin
        || t.rt.group == crate::resource::CRD_GROUP
        || (t.rt.group.is_empty()
            && matches!(
                t.rt.resource.as_str(),
                "pods" | "services" | "namespaces" | "persistentvolumeclaims" | "persistentvolumes"
            ));
    if returns_object || !crate::object::finalizers(deleted).is_empty() {
        return crate::builtin::served(t, deleted).into_owned();
    }
    let mut details = json!({
        "name": crate::object::name(deleted),
        "kind": t.rt.resource,
        "uid": crate::object::uid(deleted),
    });
    if !t.rt.group.is_empty() {
        details["group"] = json!(t.rt.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": details})
}

/// A Pod's `log`, `exec`, `attach` and `portforward`, answered as kube-apiserver answers them
/// for a Pod no node runs (this control plane has none): the container is checked first, then
/// a log is empty (204, no stream to proxy) and a connection is refused with "does not have a
/// host assigned". A Pod whose `spec.nodeName` names a node is refused with the node not found,
/// as there is no node to proxy to.
fn pod_connect(
    cluster: &Cluster,
    t: &Target,
    name: &str,
    sub: &str,
    method: &Method,
    query: &Query,
) -> ApiResult<Response> {
    let allowed = if sub == "log" {
        *method == Method::GET
    } else {
        matches!(*method, Method::GET | Method::POST)
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed);
    }
    let pod = cluster.get(t, name)?;
    let names = |key: &str| -> Vec<String> {
        pod.at(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if sub != "portforward" {
        let containers = names("containers");
        let init = names("initContainers");
        let ephemeral = names("ephemeralContainers");
        match query.get("container") {
            None if containers.len() == 1 => {}
            None if containers.is_empty() => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}"
                )));
            }
            None if sub == "log" => {
                let all: Vec<&String> = init.iter().chain(&containers).chain(&ephemeral).collect();
                let all: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )));
            }
            None => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                return Err(ApiError::BadRequest(message));
            }
            Some(c) => {
                if !containers
                    .iter()
                    .chain(&init)
                    .chain(&ephemeral)
                    .any(|n| n == c)
                {
                    return Err(ApiError::BadRequest(format!(
                        "container {c} is not valid for pod {name}"
                    )));
                }
            }
        }
    }
    let node = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    match node {
        None if sub == "log" => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        None => Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        ))),
        Some(node) => Err(ApiError::NotFound(crate::error::ErrorTarget::new(
            "", "nodes", node,
        ))),
    }
}

/// The `/scale` subresource of a custom resource that has one, or of a Deployment, StatefulSet
/// or ReplicaSet: an `autoscaling/v1 Scale` read from and written to the paths its CRD names
/// (`.spec.replicas` / `.status.replicas` for the built-ins). A write changes only the replicas (and checks
/// the Scale's resourceVersion when it carries one).
#[allow(clippy::too_many_arguments)]
async fn scale_request(
    cluster: &Cluster,
    t: &Target,
    name: &str,
    scale: &crate::resource::ScaleSubresource,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    manager: &str,
) -> ApiResult<Response> {
    let current = cluster.get(t, name)?;
    let view = scale_view(&current, scale);
    let wanted = match *method {
        Method::GET => return ok(&view),
        Method::PUT => parse_json_body(body)?,
        Method::PATCH => {
            let content_type = header_str(headers, header::CONTENT_TYPE);
            let kind = PatchKind::from_content_type(content_type)
                .filter(|k| *k != PatchKind::Apply)
                .ok_or_else(|| ApiError::UnsupportedMediaType {
                    accepted: crate::patch::accepted_patch_types(),
                })?;
            crate::patch::apply_patch(kind, view, body)?
        }
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let invalid = |message: &str| ApiError::Invalid {
        target: ErrorTarget::new(&t.rt.group, "Scale", name),
        causes: vec![FieldCause {
            field: "spec.replicas".into(),
            message: message.into(),
        }],
    };
    let replicas = match wanted.at("/spec/replicas") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| invalid("Invalid value: must be an integer"))?,
        None | Some(Value::Null) => 0,
        Some(_) => return Err(invalid("Invalid value: must be an integer")),
    };
    if replicas < 0 {
        return Err(invalid("Invalid value: must be greater than or equal to 0"));
    }
    let mut updated = crate::compact::expanded(&current).into_owned();
    set_pointer(&mut updated, &scale.spec_replicas, json!(replicas));
    if let Some(rv) = wanted
        .at("/metadata/resourceVersion")
        .filter(|v| !v.is_null())
        && let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    let written = cluster
        .update(t, name, updated, Subresource::Main, manager)
        .await?;
    ok(&scale_view(&written, scale))
}

/// An object as its `autoscaling/v1 Scale`.
fn scale_view(obj: &Value, scale: &crate::resource::ScaleSubresource) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let mut status = json!({
        "replicas": obj.at(&scale.status_replicas).and_then(Value::as_i64).unwrap_or(0),
    });
    if let Some(selector) = scale
        .label_selector
        .as_deref()
        .and_then(|p| obj.at(p))
        .and_then(Value::as_str)
    {
        status["selector"] = json!(selector);
    }
    if scale.selector_from_spec {
        status["selector"] = json!(crate::printers::selector_string(obj.at("/spec/selector")));
    }
    let mut metadata = json!({
        "name": pick("name"),
        "uid": pick("uid"),
        "resourceVersion": pick("resourceVersion"),
        "creationTimestamp": pick("creationTimestamp"),
    });
    if let Some(ns) = meta.get("namespace") {
        metadata["namespace"] = ns.clone();
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": metadata,
        "spec": {"replicas": obj.at(&scale.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    })
}

/// Sets the value at a JSON pointer, making the objects on the way.
fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let mut node = obj;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        node = map.entry((*part).to_owned()).or_insert_with(|| json!({}));
    }
}

/// `DeleteOptions.dryRun: ["All"]`: kubectl sends delete's dry run in the body.
fn body_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|o| o.get("dryRun").and_then(Value::as_array).cloned())
        .is_some_and(|d| d.iter().any(|v| v.as_str() == Some("All")))
}

fn delete_options(query: &Query, body: &[u8]) -> ApiResult<DeleteOptions> {
    let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json_body(body)?
    };
    let policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(query.get("propagationPolicy"));
    let orphan = opts
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let propagation = match policy {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some("Background") => Propagation::Background,
        None if orphan => Propagation::Orphan,
        None => Propagation::Background,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown propagationPolicy `{other}`"
            )));
        }
    };
    let text = |p: &str| opts.at(p).and_then(Value::as_str).map(str::to_owned);
    Ok(DeleteOptions {
        propagation,
        precondition_uid: text("/preconditions/uid"),
        precondition_rv: text("/preconditions/resourceVersion"),
    })
}

async fn list(
    cluster: &Cluster,
    t: &Target,
    all_namespaces: bool,
    selector: &Selector,
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit `{l}`")))?,
        )
        .filter(|&n| n > 0),
        None => None,
    };
    let exact = match (
        query.get("resourceVersionMatch"),
        query.get("resourceVersion"),
    ) {
        (Some("Exact"), Some(rv)) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion `{rv}`")))?,
        ),
        _ => None,
    };
    let page = cluster.list_at(
        t,
        all_namespaces,
        selector,
        limit,
        query.get("continue"),
        exact,
    )?;
    cluster.wait_durable(page.resource_version).await?;
    let mut list_meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        list_meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        list_meta["remainingItemCount"] = json!(r);
    }
    if crate::table::wants_table(accept) {
        return ok(&crate::table::table(
            &t.rt,
            &t.version,
            &page.items,
            true,
            query.get("includeObject") == Some("Object"),
            list_meta,
        ));
    }
    // Serialized straight from the stored objects, without copying them.
    let head = json!({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version(&t.version),
        "metadata": list_meta});
    let items: Vec<std::borrow::Cow<'_, Value>> = page
        .items
        .iter()
        .map(|o| crate::builtin::served(t, o))
        .collect();
    let bytes = crate::compact::list_json(&head, items.iter().map(|o| &**o));
    Ok(bytes_response(StatusCode::OK, bytes))
}

/// How one watch renders and filters events.
struct WatchView {
    t: Target,
    all_namespaces: bool,
    selector: Selector,
    table: bool,
    columns_sent: bool,
}

impl WatchView {
    fn in_scope(&self, obj: &Value) -> bool {
        (self.all_namespaces
            || !self.t.rt.namespaced
            || crate::object::namespace(obj) == self.t.namespace)
            && self.selector.matches(obj)
    }

    /// The event type this watcher sees for a committed event, if any, with the object when
    /// telling needed it: only a watch with a selector looks at the object and at what the
    /// change replaced (an old event's are parsed for it, [`WatchEvent`]).
    fn visible(&self, e: &WatchEvent) -> Option<(EventType, Option<Arc<Value>>)> {
        if !self.t.rt.is_stored_as(&e.gr) {
            return None;
        }
        if self.selector.is_empty() {
            // Seen or not by namespace alone, which no change moves: what the change replaced
            // was in scope exactly when the object is, and the change is seen as it happened.
            let seen =
                self.all_namespaces || !self.t.rt.namespaced || e.in_namespace(&self.t.namespace);
            return seen.then_some((e.type_, None));
        }
        let object = e.object();
        let now = self.in_scope(&object);
        let before = e.previous().map_or(now, |p| self.in_scope(&p));
        let type_ = match (e.type_, before, now) {
            (EventType::Added, _, true) => Some(EventType::Added),
            (EventType::Deleted, b, n) if b || n => Some(EventType::Deleted),
            (EventType::Modified, true, true) => Some(EventType::Modified),
            (EventType::Modified, false, true) => Some(EventType::Added),
            (EventType::Modified, true, false) => Some(EventType::Deleted),
            _ => None,
        }?;
        Some((type_, Some(object)))
    }

    /// The line of an event this watcher sees ([`WatchView::visible`]). An old event's JSON is
    /// sent as it is, unparsed, to a watcher that sees the object as stored.
    fn event_line(
        &mut self,
        type_: EventType,
        e: &WatchEvent,
        object: Option<Arc<Value>>,
    ) -> Bytes {
        if object.is_none()
            && let Some(json) = e.json_alone()
            && self.sends_as_stored(&json)
        {
            return framed(type_.as_str(), |out| out.extend_from_slice(&json));
        }
        let object = object.unwrap_or_else(|| e.object());
        self.line(type_.as_str(), &object, e.json().as_deref())
    }

    /// Whether this watcher sends an object exactly as stored, told from the `apiVersion` and
    /// `kind` of its JSON without parsing the rest: [`crate::builtin::served`] converts or
    /// restamps an object by its resource, the version asked for and those two fields alone
    /// (`watch_lines_send_an_old_events_json_unparsed_only_in_the_stored_shape` holds it to that).
    fn sends_as_stored(&self, json: &[u8]) -> bool {
        /// The two fields; every other is skipped unread.
        #[derive(serde::Deserialize)]
        struct TypeMeta {
            #[serde(rename = "apiVersion", default)]
            api_version: Option<String>,
            #[serde(default)]
            kind: Option<String>,
        }
        if self.table {
            return false;
        }
        let Ok(meta) = serde_json::from_slice::<TypeMeta>(json) else {
            return false;
        };
        let head = json!({"apiVersion": meta.api_version, "kind": meta.kind});
        matches!(
            crate::builtin::served(&self.t, &head),
            std::borrow::Cow::Borrowed(_)
        )
    }

    /// One event line; `json` is `obj` as compact JSON when the caller has it already.
    fn line(&mut self, type_: &str, obj: &Value, json: Option<&[u8]>) -> Bytes {
        let object = if self.table {
            let include = !self.columns_sent;
            self.columns_sent = true;
            std::borrow::Cow::Owned(crate::table::table(
                &self.t.rt,
                &self.t.version,
                &[Arc::new(obj.clone())],
                include,
                false,
                json!({"resourceVersion": crate::object::resource_version(obj)}),
            ))
        } else {
            crate::builtin::served(&self.t, obj)
        };
        // Serialized straight from the stored object: a `json!` line copied its tree twice
        // (`into_owned`, then `json!`'s `to_value`) for every watcher of every event.
        framed(type_, |bytes| match (&object, json) {
            // The watcher sees the object as stored: its bytes are the ones the store wrote.
            (std::borrow::Cow::Borrowed(served), Some(json)) if std::ptr::eq(*served, obj) => {
                bytes.extend_from_slice(json);
            }
            _ => crate::compact::write_object(bytes, &object),
        })
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.t.rt.kind, "apiVersion": self.t.rt.api_version(&self.t.version), "metadata": meta});
        let mut bytes =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

/// A watch line, `{"type":…,"object":…}`, the object written by `object`.
fn framed(type_: &str, object: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut bytes = Vec::with_capacity(1024);
    bytes.extend_from_slice(b"{\"type\":");
    let _ = serde_json::to_writer(&mut bytes, type_);
    bytes.extend_from_slice(b",\"object\":");
    object(&mut bytes);
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.status()})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn watch(
    app: &AppState,
    t: Target,
    all_namespaces: bool,
    selector: Selector,
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    let cluster = app.cluster.clone();
    let mut stopping = app.stopping.clone();
    let rv_param = query.get("resourceVersion").filter(|rv| *rv != "0");
    let send_initial = query.flag("sendInitialEvents");
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds `{s}`")))?,
        ),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    let mut view = WatchView {
        t,
        all_namespaces,
        selector,
        table: crate::table::wants_table(accept),
        columns_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(WATCH_BUFFER);
    let start = match rv_param {
        Some(rv) if !send_initial => {
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion `{rv}`")))?;
            match cluster.hub.subscribe_after(rv) {
                Ok((replay, live)) => WatchStart {
                    initial: Vec::new(),
                    replay,
                    live,
                    from: rv,
                },
                Err(e) => {
                    let line = error_line(&e);
                    tokio::spawn(async move {
                        let _ = tx.send(line).await;
                    });
                    return Ok(stream_response(rx));
                }
            }
        }
        _ => {
            let live = cluster.hub.subscribe();
            let page = cluster.list(&view.t, all_namespaces, &view.selector, None, None)?;
            WatchStart {
                initial: page.items,
                replay: Vec::new(),
                live,
                from: page.resource_version,
            }
        }
    };
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let WatchStart {
            initial,
            replay,
            mut live,
            from,
        } = start;
        let mut last = from;
        if let Err(e) = cluster.wait_durable(from).await {
            let _ = tx.send(error_line(&e)).await;
            return;
        }
        for obj in &initial {
            if !deliver(&tx, view.line("ADDED", obj, None)).await {
                return;
            }
        }
        if send_initial && !deliver(&tx, view.bookmark(from, true)).await {
            return;
        }
        for e in replay {
            last = last.max(e.rv);
            if let Some((ty, object)) = view.visible(&e)
                && !deliver(&tx, view.event_line(ty, &e, object)).await
            {
                return;
            }
        }
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        loop {
            let line = tokio::select! {
                received = live.recv() => match received {
                    Ok(e) if e.rv <= last => continue,
                    Ok(e) => {
                        last = e.rv;
                        match view.visible(&e) {
                            Some((ty, object)) => view.event_line(ty, &e, object),
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(error_line(&ApiError::Expired { requested: last, oldest: cluster.hub.head() })).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => view.bookmark(last, false),
                () = tokio::time::sleep_until(deadline) => return,
                () = tx.closed() => return,
                _ = stopping.changed() => return,
            };
            if !deliver(&tx, line).await {
                return;
            }
        }
    });
    Ok(stream_response(rx))
}

/// How many lines a watch holds for a client that is slow to read.
const WATCH_BUFFER: usize = 64;
/// A watcher that reads nothing for this long while its buffer is full is closed (the client
/// lists again, as after kube-apiserver closes an unresponsive watcher): a stalled client
/// holds at most [`WATCH_BUFFER`] lines, never a growing backlog.
const WATCH_STALL: Duration = Duration::from_secs(5);

/// Sends one line of a watch; `false` when the watch must end (client gone or stalled).
async fn deliver(tx: &mpsc::Sender<Bytes>, line: Bytes) -> bool {
    match tokio::time::timeout(WATCH_STALL, tx.send(line)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("closing a watch whose client stopped reading");
            false
        }
    }
}

struct WatchStart {
    initial: Vec<Arc<Value>>,
    replay: Vec<Arc<WatchEvent>>,
    live: broadcast::Receiver<Arc<WatchEvent>>,
    from: u64,
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use strata_test_support::TempDir;

    use super::*;
    use crate::store::Store;

    fn view(cluster: &Cluster, version: &str) -> WatchView {
        WatchView {
            t: cluster
                .target(
                    "autoscaling",
                    version,
                    "horizontalpodautoscalers",
                    "default",
                )
                .expect("HPAs are served"),
            all_namespaces: false,
            selector: Selector::parse(None, None).expect("no selector"),
            table: false,
            columns_sent: false,
        }
    }

    fn parsed(line: &Bytes) -> Value {
        serde_json::from_slice(line).expect("a JSON line")
    }

    /// A durable object layer in a temporary directory (removed when the first is dropped).
    async fn object_layer(name: &str) -> (TempDir, Arc<Cluster>) {
        let dir = TempDir::new(name);
        let cluster = Cluster::open(Store::open(dir.path()).expect("a store"))
            .await
            .expect("the object layer");
        (dir, cluster)
    }

    /// An autoscaling/v2 HPA whose v1 form has `targetCPUUtilizationPercentage: 70`.
    fn web_hpa() -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}}]}})
    }

    /// A committed event carries the bytes the store wrote; a watcher or a response that shows
    /// the object as stored sends them, and one that shows it converted (autoscaling/v1 of a v2
    /// HPA) does not.
    #[tokio::test]
    async fn watch_lines_and_responses_send_the_stored_json_only_in_the_stored_shape() {
        let (_dir, cluster) = object_layer("watch-line").await;
        let mut events = cluster.hub.subscribe();
        let v2 = view(&cluster, "v2");
        let hpa = web_hpa();
        let created = cluster.create(&v2.t, hpa, "test").await.expect("create");
        let event = events.recv().await.expect("the create's event");
        let stored = event.json().expect("a committed event carries its JSON");
        assert_eq!(
            &stored[..],
            &crate::compact::object_json(&event.object())[..],
            "the event's bytes are its object's"
        );
        // Responses find them by the object itself, not by an equal copy.
        assert_eq!(cluster.hub.stored_json(&created), Some(stored.clone()));
        assert_eq!(cluster.hub.stored_json(&Arc::new((*created).clone())), None);
        let body = |r: Response| async move {
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .expect("a body")
        };
        assert_eq!(
            body(ok_stored(&cluster, &v2.t, &created).expect("a response")).await,
            stored
        );
        let as_v1: Value = serde_json::from_slice(
            &body(ok_stored(&cluster, &view(&cluster, "v1").t, &created).expect("a response"))
                .await,
        )
        .expect("JSON");
        assert_eq!(as_v1["apiVersion"], "autoscaling/v1");
        assert_eq!(as_v1["spec"]["targetCPUUtilizationPercentage"], 70);

        let mut v2 = v2;
        let from_bytes = v2.line("ADDED", &event.object(), Some(&stored));
        assert_eq!(from_bytes, v2.line("ADDED", &event.object(), None));
        assert_eq!(
            parsed(&from_bytes)["object"]["apiVersion"],
            "autoscaling/v2"
        );
        assert!(
            parsed(&from_bytes)["object"]["metadata"]["managedFields"].is_array(),
            "managedFields are sent as a list"
        );

        // Bytes that are not the object's show whether they were used.
        let mut v1 = view(&cluster, "v1");
        let marker = Bytes::from_static(b"{\"kind\":\"NotThisObject\"}");
        let line = parsed(&v1.line("ADDED", &event.object(), Some(&marker)));
        assert_eq!(line["object"]["apiVersion"], "autoscaling/v1");
        assert_eq!(line["object"]["spec"]["targetCPUUtilizationPercentage"], 70);
        let line = parsed(&v2.line("MODIFIED", &event.object(), Some(&marker)));
        assert_eq!(
            line["object"]["kind"], "NotThisObject",
            "a watcher of the stored shape sends the bytes it is given"
        );
    }

    /// An old event (its object held as JSON alone) goes to a watcher that sees the object as
    /// stored as those very bytes, unparsed, and to one that sees it converted (autoscaling/v1
    /// of a v2 HPA) from its parsed object: the same lines a recent event gives.
    #[tokio::test]
    async fn watch_lines_send_an_old_events_json_unparsed_only_in_the_stored_shape() {
        use crate::watch::{Hub, RECENT};
        let (_dir, cluster) = object_layer("watch-old-line").await;
        let mut events = cluster.hub.subscribe();
        let (mut v1, mut v2) = (view(&cluster, "v1"), view(&cluster, "v2"));
        let hpa = web_hpa();
        cluster.create(&v2.t, hpa, "test").await.expect("create");
        let recent = events.recv().await.expect("the create's event");
        let stored = recent.json().expect("a committed event carries its JSON");
        // Written with spaces, as no serializer here writes: bytes sent as they are keep them.
        let spaced = Bytes::from(
            serde_json::to_string_pretty(&serde_json::from_slice::<Value>(&stored).expect("JSON"))
                .expect("JSON"),
        );
        // A history loaded with more than the newest events holds its oldest as JSON alone.
        let filler = |rv| {
            WatchEvent::new(
                rv,
                EventType::Added,
                crate::resource::GroupResource::new("", "configmaps"),
                Arc::new(json!({"metadata": {"name": format!("c{rv}")}})),
                None,
            )
        };
        let first = WatchEvent::new(1, recent.type_, recent.gr.clone(), recent.object(), None)
            .with_json(spaced.clone());
        let loaded: Vec<WatchEvent> = std::iter::once(first)
            .chain((2..=RECENT as u64 + 1).map(filler))
            .collect();
        let hub = Hub::new(loaded, RECENT as u64 + 1, RECENT as u64 * 2);
        let (replay, _live) = hub.subscribe_after(0).expect("the history");
        let old = &replay[0];
        assert_eq!(old.json_alone(), Some(spaced.clone()), "the event is old");

        let (ty, object) = v2.visible(old).expect("a watcher of its namespace sees it");
        assert!(
            object.is_none(),
            "a watcher without a selector does not parse it"
        );
        let mut elsewhere = view(&cluster, "v2");
        elsewhere.t.namespace = "other".into();
        assert!(
            elsewhere.visible(old).is_none(),
            "nor one of another namespace"
        );
        elsewhere.all_namespaces = true;
        assert!(
            elsewhere.visible(old).is_some(),
            "one of every namespace does"
        );
        let line = v2.event_line(ty, old, object);
        let mut expected = b"{\"type\":\"ADDED\",\"object\":".to_vec();
        expected.extend_from_slice(&spaced);
        expected.extend_from_slice(b"}\n");
        assert_eq!(
            line, expected,
            "the stored shape is sent as the old event's very bytes"
        );
        assert_eq!(
            parsed(&line),
            parsed(&v2.line("ADDED", &recent.object(), None)),
            "and says what a recent event's line says"
        );

        let (ty, object) = v1.visible(old).expect("seen");
        let line = v1.event_line(ty, old, object);
        assert_eq!(
            line,
            v1.line("ADDED", &recent.object(), None),
            "a converted watcher's line is the recent event's"
        );
        assert_eq!(parsed(&line)["object"]["apiVersion"], "autoscaling/v1");
        assert_eq!(
            parsed(&line)["object"]["spec"]["targetCPUUtilizationPercentage"],
            70
        );
    }
}
