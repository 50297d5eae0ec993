//! `/openapi/v2`: one Swagger 2.0 document of everything served, made from the group-versions'
//! OpenAPI v3 documents, in JSON and in the protobuf form client-go asks for first
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's `openapi.v2.Document`).
//!
//! The protobuf is hand-encoded: no maintained crate carries gnostic's OpenAPI v2 messages, and
//! the handful of messages a Kubernetes document uses (document, path items, operations,
//! parameters, responses, schemas and their vendor extensions) are a few length-delimited
//! fields each. Vendor extensions are gnostic `Any` values holding YAML, which JSON is.

use serde_json::{Map, Value, json};

use crate::resource::Registry;

/// The media type client-go asks `/openapi/v2` for.
pub(crate) const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The content type the protobuf document is answered with: kube-apiserver's, whose `.` in
/// place of the `@` keeps it a media type Go's `mime` package parses.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The document in both encodings.
pub(crate) struct Encoded {
    pub json: axum::body::Bytes,
    pub protobuf: axum::body::Bytes,
}

/// Builds and encodes the v2 document of `registry`.
pub(crate) fn encode(registry: &Registry) -> Encoded {
    let doc = document(registry);
    let mut protobuf = Vec::new();
    write_document(&mut protobuf, &doc);
    Encoded {
        json: serde_json::to_vec(&doc).unwrap_or_default().into(),
        protobuf: protobuf.into(),
    }
}

/// Whether an `Accept` header takes the protobuf form before JSON.
pub(crate) fn wants_protobuf(accept: &str) -> bool {
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or_default().trim();
        match media {
            PROTOBUF => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// Whether an `Accept` header takes either form (kube-apiserver answers 406 otherwise).
pub(crate) fn acceptable(accept: &str) -> bool {
    accept.is_empty()
        || accept.split(',').any(|range| {
            let media = range.split(';').next().unwrap_or_default().trim();
            matches!(
                media,
                PROTOBUF | "application/json" | "application/*" | "*/*"
            )
        })
}

const V3_REF: &str = super::REF_PREFIX;
const V2_REF: &str = "#/definitions/";

/// A v3 schema in v2 form: references into `#/definitions/`, a field's `allOf` of one reference
/// back to a `$ref` beside its description, and the v3-only keywords of CRD schemas left out.
fn schema(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "$ref" => {
                if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(V3_REF)) {
                    out.insert(k.clone(), json!(format!("{V2_REF}{name}")));
                }
            }
            "allOf" => match v.as_array().map(Vec::as_slice) {
                Some([one]) if one.get("$ref").is_some() => {
                    if let Value::Object(r) = schema(one) {
                        out.extend(r);
                    }
                }
                _ => {}
            },
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), schema(p)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), schema(v));
            }
            "type" if v.is_string() => {
                out.insert(k.clone(), v.clone());
            }
            // int-or-string and quantity: v3's `oneOf` of JSON types is a formatted string in v2.
            "oneOf" => {
                let types: Vec<&str> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get("type").and_then(Value::as_str))
                    .collect();
                if types.contains(&"string") {
                    out.insert("type".into(), json!("string"));
                    if types.contains(&"integer") {
                        out.insert("format".into(), json!("int-or-string"));
                    }
                }
            }
            "description" | "format" | "required" | "additionalProperties" => {
                out.insert(k.clone(), v.clone());
            }
            _ if k.starts_with("x-kubernetes-") => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// A v3 operation in v2 form: parameters with their type beside them, the body a parameter.
fn operation(op: &Value) -> Value {
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(parameter)
        .collect();
    let mut consumes = Vec::new();
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        consumes = content.keys().cloned().collect();
        let body = content
            .values()
            .next()
            .map(|c| schema(&c["schema"]))
            .unwrap_or_else(|| json!({"type": "object"}));
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": body}));
    }
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut response = json!({"description": r["description"]});
        if let Some(s) = r
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.values().next())
        {
            response["schema"] = schema(&s["schema"]);
        }
        responses.insert(code.clone(), response);
    }
    let mut out = json!({
        "operationId": op["operationId"],
        "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
        "parameters": params,
        "responses": responses,
    });
    if !consumes.is_empty() {
        out["consumes"] = json!(consumes);
    }
    for (k, v) in op.as_object().into_iter().flatten() {
        if k.starts_with("x-kubernetes-") {
            out[k] = v.clone();
        }
    }
    out
}

fn parameter(p: &Value) -> Value {
    let mut out = json!({"name": p["name"], "in": p["in"],
        "type": p.pointer("/schema/type").cloned().unwrap_or(json!("string"))});
    if p["required"] == true {
        out["required"] = json!(true);
    }
    if p.pointer("/schema/uniqueItems") == Some(&json!(true)) {
        out["uniqueItems"] = json!(true);
    }
    out
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The Swagger 2.0 document of every group-version served.
pub(crate) fn document(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, version) in super::served(registry) {
        let Some(doc) = super::group_version(registry, &group, &version) else {
            continue;
        };
        for (name, s) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if !definitions.contains_key(name) {
                definitions.insert(name.clone(), schema(s));
            }
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut out = Map::new();
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.insert(m.into(), operation(op));
                }
            }
            if let Some(ps) = item.get("parameters").and_then(Value::as_array) {
                out.insert(
                    "parameters".into(),
                    Value::Array(ps.iter().map(parameter).collect()),
                );
            }
            paths.insert(path.clone(), Value::Object(out));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

// The protobuf encoding of gnostic's `openapi.v2` messages, field numbers as in its
// `OpenAPIv2.proto`.

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn bytes(buf: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(buf, (field << 3) | 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn string(buf: &mut Vec<u8>, field: u64, v: &Value) {
    if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
        bytes(buf, field, s.as_bytes());
    }
}

fn boolean(buf: &mut Vec<u8>, field: u64, v: &Value) {
    if v == &Value::Bool(true) {
        varint(buf, field << 3);
        varint(buf, 1);
    }
}

fn message(buf: &mut Vec<u8>, field: u64, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(buf, field, &inner);
}

fn strings(buf: &mut Vec<u8>, field: u64, v: &Value) {
    for s in v.as_array().into_iter().flatten() {
        string(buf, field, s);
    }
}

/// `NamedAny` vendor extensions: each value an `Any` whose `yaml` (field 2) is the JSON text.
fn extensions(buf: &mut Vec<u8>, field: u64, obj: &Value) {
    for (k, v) in obj.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            message(buf, field, |named| {
                string(named, 1, &json!(k));
                message(named, 2, |any| bytes(any, 2, v.to_string().as_bytes()));
            });
        }
    }
}

/// `Schema`.
fn write_schema(buf: &mut Vec<u8>, s: &Value) {
    string(buf, 1, &s["$ref"]);
    string(buf, 2, &s["format"]);
    string(buf, 4, &s["description"]);
    strings(buf, 19, &s["required"]);
    match &s["additionalProperties"] {
        Value::Object(_) => message(buf, 21, |a| {
            message(a, 1, |inner| {
                write_schema(inner, &s["additionalProperties"])
            })
        }),
        Value::Bool(b) => message(buf, 21, |a| boolean(a, 2, &json!(b))),
        _ => {}
    }
    if s["type"].is_string() {
        message(buf, 22, |t| string(t, 1, &s["type"]));
    }
    if s["items"].is_object() {
        message(buf, 23, |items| {
            message(items, 1, |inner| write_schema(inner, &s["items"]))
        });
    }
    if let Some(props) = s["properties"].as_object() {
        message(buf, 25, |p| {
            for (name, prop) in props {
                message(p, 1, |named| named_schema(named, name, prop));
            }
        });
    }
    extensions(buf, 31, s);
}

/// `NamedSchema`.
fn named_schema(buf: &mut Vec<u8>, name: &str, s: &Value) {
    string(buf, 1, &json!(name));
    message(buf, 2, |inner| write_schema(inner, s));
}

/// `ParametersItem` → `Parameter` → a body or a query/path parameter.
fn write_parameter(buf: &mut Vec<u8>, p: &Value) {
    message(buf, 1, |param| match p["in"].as_str() {
        Some("body") => message(param, 1, |body| {
            string(body, 2, &p["name"]);
            string(body, 3, &p["in"]);
            boolean(body, 4, &p["required"]);
            message(body, 5, |s| write_schema(s, &p["schema"]));
        }),
        Some("path") => message(param, 2, |non_body| {
            message(non_body, 4, |path| {
                boolean(path, 1, &p["required"]);
                string(path, 2, &p["in"]);
                string(path, 4, &p["name"]);
                string(path, 5, &p["type"]);
                boolean(path, 19, &p["uniqueItems"]);
            })
        }),
        _ => message(param, 2, |non_body| {
            message(non_body, 3, |query| {
                boolean(query, 1, &p["required"]);
                string(query, 2, &p["in"]);
                string(query, 4, &p["name"]);
                string(query, 6, &p["type"]);
                boolean(query, 20, &p["uniqueItems"]);
            })
        }),
    });
}

/// `Operation`.
fn write_operation(buf: &mut Vec<u8>, op: &Value) {
    string(buf, 5, &op["operationId"]);
    strings(buf, 6, &op["produces"]);
    strings(buf, 7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        message(buf, 8, |item| write_parameter(item, p));
    }
    message(buf, 9, |responses| {
        for (code, r) in op["responses"].as_object().into_iter().flatten() {
            message(responses, 1, |named| {
                string(named, 1, &json!(code));
                message(named, 2, |value| {
                    message(value, 1, |response| {
                        string(response, 1, &r["description"]);
                        if r["schema"].is_object() {
                            message(response, 2, |item| {
                                message(item, 1, |s| write_schema(s, &r["schema"]))
                            });
                        }
                    })
                });
            });
        }
    });
    extensions(buf, 13, op);
}

/// `Document`.
fn write_document(buf: &mut Vec<u8>, doc: &Value) {
    string(buf, 1, &doc["swagger"]);
    message(buf, 2, |info| {
        string(info, 1, &doc["info"]["title"]);
        string(info, 2, &doc["info"]["version"]);
    });
    message(buf, 8, |paths| {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            message(paths, 2, |named| {
                string(named, 1, &json!(path));
                message(named, 2, |pi| {
                    for (field, m) in [
                        (2, "get"),
                        (3, "put"),
                        (4, "post"),
                        (5, "delete"),
                        (8, "patch"),
                    ] {
                        if item[m].is_object() {
                            message(pi, field, |op| write_operation(op, &item[m]));
                        }
                    }
                    for p in item["parameters"].as_array().into_iter().flatten() {
                        message(pi, 9, |i| write_parameter(i, p));
                    }
                });
            });
        }
    });
    message(buf, 9, |defs| {
        for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
            message(defs, 1, |named| named_schema(named, name, s));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_gos_accept_header_selects_protobuf_and_json_is_kept_for_others() {
        let client_go =
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json";
        assert!(wants_protobuf(client_go));
        assert!(!wants_protobuf("application/json"));
        assert!(acceptable(client_go) && acceptable("") && acceptable("*/*"));
        assert!(!acceptable("text/html"));
    }

    #[test]
    fn the_v2_document_keeps_the_list_markers_with_references_into_definitions() {
        let doc = document(&Registry::with_builtins());
        let spec = &doc["definitions"]["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            spec["properties"]["containers"]["x-kubernetes-list-type"],
            "map"
        );
        assert_eq!(
            spec["properties"]["containers"]["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let template =
            &doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"];
        assert_eq!(
            template["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
        );
        assert!(template["description"].is_string());
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(
            doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"],
            json!({"type": "string", "format": "int-or-string"})
        );
        assert!(!encode(&Registry::with_builtins()).protobuf.is_empty());
    }
}
