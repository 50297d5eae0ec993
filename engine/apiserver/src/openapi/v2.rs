//! `/openapi/v2`: one Swagger 2.0 document of everything served, made from the group-versions'
//! OpenAPI v3 documents, in JSON and in the protobuf form client-go asks for first
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's `openapi.v2.Document`).
//!
//! The protobuf is hand-encoded: no maintained crate carries gnostic's OpenAPI v2 messages, and
//! the handful of messages a Kubernetes document uses (document, path items, operations,
//! parameters, responses, schemas and their vendor extensions) are a few length-delimited
//! fields each. Vendor extensions are gnostic `Any` values holding YAML, which JSON is.

use serde_json::{Map, Value, json};

use crate::resource::{Registry, ResourceType};

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

/// The keywords of a structural schema (kube-apiserver's `structuralschema.Structural`) that
/// OpenAPI v2 carries: its generic and value-validation fields less the junctors.
const STRUCTURAL_V2: [&str; 20] = [
    "type",
    "title",
    "description",
    "default",
    "format",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
];
/// The vendor extensions of a structural schema, each published when set.
const EXTENSIONS: [&str; 7] = [
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

fn is_true(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key) == Some(&Value::Bool(true))
}

/// A CRD schema node as kube-apiserver publishes it in OpenAPI v2 (its
/// `ToStructuralOpenAPIV2`): only structural keywords are kept (enum, default, formats and
/// bounds among them), the junctors (`allOf`, `anyOf`, `oneOf`, `not`) are dropped (so an
/// int-or-string is its `x-kubernetes-int-or-string` alone), a `nullable` node loses its type,
/// properties and items (and is no longer required by its parent; a nullable map value makes
/// nothing required), a node preserving unknown fields loses its properties and items and an
/// `object` type, and an array left without items loses its type.
pub(crate) fn crd_schema_node(node: &Value) -> Value {
    let Value::Object(m) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let key = k.as_str();
        if STRUCTURAL_V2.contains(&key) {
            out.insert(k.clone(), v.clone());
        } else if EXTENSIONS.contains(&key) {
            // Booleans are published when true, lists when not empty.
            let set = match v {
                Value::Bool(b) => *b,
                Value::Array(a) => !a.is_empty(),
                Value::Null => false,
                _ => true,
            };
            if set {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let nullable = is_true(m, "nullable");
    let preserve = is_true(m, "x-kubernetes-preserve-unknown-fields");
    if !nullable && !preserve {
        if let Some(Value::Object(props)) = m.get("properties") {
            let props: Map<String, Value> = props
                .iter()
                .map(|(name, p)| (name.clone(), crd_schema_node(p)))
                .collect();
            out.insert("properties".into(), Value::Object(props));
        }
        if let Some(items) = m.get("items").filter(|i| i.is_object()) {
            out.insert("items".into(), crd_schema_node(items));
        }
    }
    match m.get("additionalProperties") {
        Some(a @ Value::Object(_)) => {
            drop(out.insert("additionalProperties".into(), crd_schema_node(a)))
        }
        Some(b @ Value::Bool(_)) => drop(out.insert("additionalProperties".into(), b.clone())),
        _ => {}
    }
    if nullable {
        out.remove("type");
    }
    let type_ = out.get("type").and_then(Value::as_str);
    if (type_ == Some("array") && !out.contains_key("items"))
        || (preserve && type_ == Some("object"))
    {
        out.remove("type");
    }
    // A field that may be null is not required in v2.
    let nullable_map_values = m
        .get("additionalProperties")
        .and_then(Value::as_object)
        .is_some_and(|a| is_true(a, "nullable"));
    if let Some(Value::Array(required)) = out.get_mut("required") {
        let props = m.get("properties").and_then(Value::as_object);
        required.retain(|f| {
            !nullable_map_values
                && !f
                    .as_str()
                    .and_then(|f| props.and_then(|p| p.get(f)))
                    .and_then(Value::as_object)
                    .is_some_and(|p| is_true(p, "nullable"))
        });
        if required.is_empty() {
            out.remove("required");
        }
    }
    Value::Object(out)
}

/// The descriptions kube-apiserver gives the fields it adds to an embedded resource.
const EMBEDDED_API_VERSION: &str = "apiVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const EMBEDDED_KIND: &str = "kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const OBJECT_META_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn object_meta_ref() -> Value {
    json!({"$ref": format!("{V2_REF}{}", super::OBJECT_META), "description": OBJECT_META_DESCRIPTION})
}

/// `x-kubernetes-embedded-resource` nodes get `apiVersion`, `kind` (both required) and
/// `metadata`, unless they preserve unknown fields (kubectl would then refuse the unknown ones).
fn add_embedded_properties(node: &mut Value) {
    let Value::Object(m) = node else {
        return;
    };
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(add_embedded_properties);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = m.get_mut(key) {
            add_embedded_properties(child);
        }
    }
    if is_true(m, "x-kubernetes-preserve-unknown-fields")
        || !is_true(m, "x-kubernetes-embedded-resource")
    {
        return;
    }
    if let Value::Object(props) = m.entry("properties").or_insert(json!({})) {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": EMBEDDED_API_VERSION}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": EMBEDDED_KIND}),
        );
        props.insert("metadata".into(), object_meta_ref());
    }
    if let Value::Array(required) = m.entry("required").or_insert(json!([])) {
        for field in ["kind", "apiVersion"] {
            if !required.iter().any(|r| r == field) {
                required.push(json!(field));
            }
        }
    }
}

/// A CRD version's kind as kube-apiserver publishes it in OpenAPI v2: the structural v2 form
/// of its schema with `apiVersion`, `kind` and `metadata` described and embedded resources
/// completed; only `{type: object}` when the schema is missing, not structural, or preserves
/// unknown fields at its root (kubectl would otherwise refuse every field it does not list).
fn crd_definition(t: &ResourceType, version: &str) -> Value {
    let structural = t
        .version(version)
        .filter(|v| v.compiled.is_some())
        .and_then(|v| v.schema.as_ref())
        .map(crd_schema_node);
    let mut out = match structural {
        Some(Value::Object(mut root))
            if !is_true(&root, "x-kubernetes-preserve-unknown-fields") =>
        {
            if let Value::Object(props) = root.entry("properties").or_insert(json!({})) {
                let type_meta = |field: &str| {
                    super::definition("apps", "v1", "Deployment")
                        .and_then(|d| d.pointer(&format!("/properties/{field}")))
                        .map(schema)
                        .unwrap_or_else(|| json!({"type": "string"}))
                };
                props.insert("apiVersion".into(), type_meta("apiVersion"));
                props.insert("kind".into(), type_meta("kind"));
                props.insert("metadata".into(), object_meta_ref());
            }
            let mut root = Value::Object(root);
            add_embedded_properties(&mut root);
            root
        }
        _ => json!({"type": "object"}),
    };
    out[super::GVK] = json!([super::gvk(&t.group, version, &t.kind)]);
    out
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
        // A CRD's kind is published from its own schema, not from the v3 form.
        for t in super::types_in(registry, &group, &version) {
            if let (name, false) = super::schema_name(t, &version) {
                definitions.insert(name, crd_definition(t, &version));
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

fn double(buf: &mut Vec<u8>, field: u64, v: &Value) {
    if let Some(x) = v.as_f64() {
        varint(buf, (field << 3) | 1);
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

fn int64(buf: &mut Vec<u8>, field: u64, v: &Value) {
    if let Some(x) = v.as_i64() {
        varint(buf, field << 3);
        varint(buf, x as u64);
    }
}

/// An `Any` holding a value as YAML (its JSON text).
fn any(buf: &mut Vec<u8>, field: u64, v: &Value) {
    message(buf, field, |a| bytes(a, 2, v.to_string().as_bytes()));
}

/// `Schema`.
fn write_schema(buf: &mut Vec<u8>, s: &Value) {
    string(buf, 1, &s["$ref"]);
    string(buf, 2, &s["format"]);
    string(buf, 3, &s["title"]);
    string(buf, 4, &s["description"]);
    if let Some(default) = s.get("default") {
        any(buf, 5, default);
    }
    double(buf, 6, &s["multipleOf"]);
    double(buf, 7, &s["maximum"]);
    boolean(buf, 8, &s["exclusiveMaximum"]);
    double(buf, 9, &s["minimum"]);
    boolean(buf, 10, &s["exclusiveMinimum"]);
    int64(buf, 11, &s["maxLength"]);
    int64(buf, 12, &s["minLength"]);
    string(buf, 13, &s["pattern"]);
    int64(buf, 14, &s["maxItems"]);
    int64(buf, 15, &s["minItems"]);
    boolean(buf, 16, &s["uniqueItems"]);
    int64(buf, 17, &s["maxProperties"]);
    int64(buf, 18, &s["minProperties"]);
    strings(buf, 19, &s["required"]);
    for value in s["enum"].as_array().into_iter().flatten() {
        any(buf, 20, value);
    }
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
    fn crd(schema: Value) -> ResourceType {
        ResourceType::from_crd(
            &json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema}}]}}),
        )
        .unwrap()
    }

    #[test]
    fn a_crd_schema_is_published_in_v2_as_kube_apiserver_does_construct_by_construct() {
        let schema = json!({"type": "object", "description": "A widget.", "properties": {
            "spec": {"type": "object", "required": ["size", "note", "mode"], "example": {"size": 1},
                "externalDocs": {"url": "https://example.com"},
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3, "format": "int32"},
                    "mode": {"type": "string", "enum": ["fast", "safe"], "pattern": "^[a-z]+$", "title": "Mode"},
                    "note": {"type": "object", "nullable": true, "properties": {"text": {"type": "string"}}},
                    "port": {"x-kubernetes-int-or-string": true,
                        "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "choice": {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                        "not": {"required": ["c"]}, "allOf": [{"required": ["a"]}],
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
                    "tags": {"type": "array", "maxItems": 5, "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}},
                    "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"kept": {"type": "string"}}},
                    "anyList": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                        "items": {"type": "string"}},
                    "maybeList": {"type": "array", "nullable": true, "items": {"type": "string"}},
                    "labels": {"type": "object", "required": ["x"],
                        "additionalProperties": {"type": "string", "nullable": true}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": false,
                        "properties": {"spec": {"type": "object"}}},
                    "raw": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true},
                    "rules": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}}}}});
        let doc = crd_definition(&crd(schema), "v1");
        let spec = &doc["properties"]["spec"];
        let props = &spec["properties"];
        // (field, expected, why)
        let cases = [
            (
                "size",
                json!({"type": "integer", "minimum": 1, "maximum": 10, "default": 3, "format": "int32"}),
                "bounds, default and format are kept",
            ),
            (
                "mode",
                json!({"type": "string", "enum": ["fast", "safe"], "pattern": "^[a-z]+$", "title": "Mode"}),
                "enum, pattern and title are kept",
            ),
            (
                "note",
                json!({}),
                "a nullable node loses its type and properties",
            ),
            (
                "port",
                json!({"x-kubernetes-int-or-string": true}),
                "int-or-string is its extension alone: the anyOf is dropped",
            ),
            (
                "choice",
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}),
                "oneOf, allOf and not are dropped",
            ),
            (
                "tags",
                json!({"type": "array", "maxItems": 5, "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
                "list markers are kept",
            ),
            (
                "blob",
                json!({"x-kubernetes-preserve-unknown-fields": true}),
                "preserving unknown fields drops properties and the object type",
            ),
            (
                "anyList",
                json!({"x-kubernetes-preserve-unknown-fields": true}),
                "an array left without items loses its type",
            ),
            (
                "maybeList",
                json!({}),
                "a nullable array loses type and items",
            ),
            (
                "labels",
                json!({"type": "object", "additionalProperties": {}}),
                "nullable map values make nothing required and lose their type",
            ),
            (
                "raw",
                json!({"x-kubernetes-embedded-resource": true,
                "x-kubernetes-preserve-unknown-fields": true}),
                "an embedded resource preserving unknown fields gets no metadata fields",
            ),
            (
                "rules",
                json!({"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}),
                "validation rules are kept",
            ),
        ];
        for (field, expected, why) in cases {
            assert_eq!(props[field], expected, "{field}: {why}");
        }
        assert_eq!(
            spec["required"],
            json!(["size", "mode"]),
            "a nullable field is not required"
        );
        assert!(spec.get("example").is_none() && spec.get("externalDocs").is_none());
        let template = &props["template"];
        assert_eq!(template["required"], json!(["kind", "apiVersion"]));
        assert_eq!(
            template["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(template["properties"]["kind"]["type"], "string");
        assert!(
            template
                .get("x-kubernetes-preserve-unknown-fields")
                .is_none(),
            "false is not published"
        );
        assert_eq!(doc["description"], "A widget.");
        assert_eq!(
            doc["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(doc["properties"]["apiVersion"]["type"], "string");
        assert_eq!(
            doc[crate::openapi::GVK],
            json!([{"group": "example.com", "version": "v1", "kind": "Widget"}])
        );
    }

    #[test]
    fn a_crd_preserving_unknown_fields_at_its_root_is_a_bare_object_in_v2() {
        let doc = crd_definition(
            &crd(
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"spec": {"type": "object"}}}),
            ),
            "v1",
        );
        assert_eq!(
            doc,
            json!({"type": "object", "x-kubernetes-group-version-kind":
            [{"group": "example.com", "version": "v1", "kind": "Widget"}]})
        );
    }

    #[test]
    fn the_v2_document_carries_a_crds_enum_and_default_also_in_protobuf() {
        let mut registry = Registry::with_builtins();
        registry.insert(crd(json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"mode": {"type": "string", "enum": ["fast"], "default": "fast", "maxLength": 8}}}}})));
        let doc = document(&registry);
        let mode = &doc["definitions"]["com.example.v1.Widget"]["properties"]["spec"]["properties"]
            ["mode"];
        assert_eq!(
            mode,
            &json!({"type": "string", "enum": ["fast"], "default": "fast", "maxLength": 8})
        );
        let mut buf = Vec::new();
        write_schema(&mut buf, mode);
        let contains = |needle: &[u8]| buf.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(&[&[0x2a, 0x08, 0x12, 0x06][..], b"\"fast\""].concat()),
            "default: {buf:?}"
        );
        assert!(
            contains(&[&[0xa2, 0x01, 0x08, 0x12, 0x06][..], b"\"fast\""].concat()),
            "enum: {buf:?}"
        );
        assert!(contains(&[0x58, 0x08]), "maxLength: {buf:?}");
    }
}
