//! Decoding of the Kubernetes protobuf wire format for the built-in kinds kubectl's generators
//! send that way (`kubectl create namespace|configmap|secret|serviceaccount|token|role|rolebinding|…`
//! and `kubectl auth can-i` post `application/vnd.kubernetes.protobuf`). Responses are always
//! JSON, which clients accept.
//!
//! Only the fields those kinds carry are read; anything else is rejected rather than dropped.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

const MAGIC: &[u8] = b"k8s\x00";

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("decoding protobuf: {what}"))
}

/// One protobuf field: its number and its payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length too large"))?;
                if len > self.buf.len() {
                    return Err(bad("truncated field"));
                }
                let (bytes, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Bytes(bytes)
            }
            other => {
                return Err(bad(&format!(
                    "unsupported wire type {other} in field {number}"
                )));
            }
        };
        Ok(Some((number, field)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn text(f: &Field<'_>) -> Result<String, ApiError> {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8")),
        Field::Varint(_) => Err(bad("expected a string")),
    }
}

fn bytes<'a>(f: &Field<'a>) -> Result<&'a [u8], ApiError> {
    match f {
        Field::Bytes(b) => Ok(b),
        Field::Varint(_) => Err(bad("expected bytes")),
    }
}

/// A `map<string, V>` entry: key = 1, value = 2.
fn map_entry<'a>(f: &Field<'a>) -> Result<(String, Option<Field<'a>>), ApiError> {
    let mut key = String::new();
    let mut value = None;
    for (n, inner) in fields(bytes(f)?)? {
        match n {
            1 => key = text(&inner)?,
            2 => value = Some(inner),
            _ => {}
        }
    }
    Ok((key, value))
}

fn string_map_insert(
    target: &mut Map<String, Value>,
    f: &Field<'_>,
    base64_values: bool,
) -> Result<(), ApiError> {
    let (k, v) = map_entry(f)?;
    let v = match (&v, base64_values) {
        (Some(v), true) => json!(base64::engine::general_purpose::STANDARD.encode(bytes(v)?)),
        (Some(v), false) => json!(text(v)?),
        (None, _) => json!(""),
    };
    target.insert(k, v);
    Ok(())
}

fn owner_reference(buf: &[u8]) -> Result<Value, ApiError> {
    let mut r = Map::new();
    for (n, f) in fields(buf)? {
        match (n, &f) {
            (1, _) => drop(r.insert("kind".into(), json!(text(&f)?))),
            (3, _) => drop(r.insert("name".into(), json!(text(&f)?))),
            (4, _) => drop(r.insert("uid".into(), json!(text(&f)?))),
            (5, _) => drop(r.insert("apiVersion".into(), json!(text(&f)?))),
            (6, Field::Varint(v)) => drop(r.insert("controller".into(), json!(*v != 0))),
            (7, Field::Varint(v)) => drop(r.insert("blockOwnerDeletion".into(), json!(*v != 0))),
            _ => return Err(bad(&format!("unsupported OwnerReference field {n}"))),
        }
    }
    Ok(Value::Object(r))
}

fn object_meta(buf: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    let mut owners = Vec::new();
    for (n, f) in fields(buf)? {
        match n {
            1 => drop(m.insert("name".into(), json!(text(&f)?))),
            2 => drop(m.insert("generateName".into(), json!(text(&f)?))),
            3 => drop(m.insert("namespace".into(), json!(text(&f)?))),
            // selfLink, uid, resourceVersion, generation, timestamps: set by the server.
            4..=10 | 17 => {}
            11 => string_map_insert(&mut labels, &f, false)?,
            12 => string_map_insert(&mut annotations, &f, false)?,
            13 => owners.push(owner_reference(bytes(&f)?)?),
            14 => finalizers.push(json!(text(&f)?)),
            _ => return Err(bad(&format!("unsupported ObjectMeta field {n}"))),
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    Ok(Value::Object(m))
}

/// `authentication.k8s.io/v1` TokenRequestSpec: audiences = 1, boundObjectRef = 3,
/// expirationSeconds = 4 (as `kubectl create token` sends it).
fn token_request_spec(buf: &[u8]) -> Result<Value, ApiError> {
    let mut spec = Map::new();
    let mut audiences = Vec::new();
    for (n, f) in fields(buf)? {
        match (n, &f) {
            (1, _) => audiences.push(json!(text(&f)?)),
            (3, _) => {
                let mut r = Map::new();
                for (rn, rf) in fields(bytes(&f)?)? {
                    let key = match rn {
                        1 => "kind",
                        2 => "apiVersion",
                        3 => "name",
                        4 => "uid",
                        _ => {
                            return Err(bad(&format!(
                                "unsupported BoundObjectReference field {rn}"
                            )));
                        }
                    };
                    r.insert(key.into(), json!(text(&rf)?));
                }
                spec.insert("boundObjectRef".into(), Value::Object(r));
            }
            (4, Field::Varint(v)) => {
                drop(spec.insert("expirationSeconds".into(), json!(*v as i64)))
            }
            _ => return Err(bad(&format!("unsupported TokenRequestSpec field {n}"))),
        }
    }
    if !audiences.is_empty() {
        spec.insert("audiences".into(), Value::Array(audiences));
    }
    Ok(Value::Object(spec))
}

/// The JSON form of a protobuf-encoded Namespace, ConfigMap, Secret, ServiceAccount (metadata
/// only) or TokenRequest.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(unknown)? {
        match n {
            1 => {
                for (tn, tf) in fields(bytes(&f)?)? {
                    match tn {
                        1 => api_version = text(&tf)?,
                        2 => kind = text(&tf)?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(&f)?,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    if let Some(schema) = schema_of(&kind) {
        for (n, f) in fields(raw)? {
            if n == 1 {
                obj.insert("metadata".into(), object_meta(bytes(&f)?)?);
            } else {
                decode_field(&mut obj, schema, n, &f, &kind)?;
            }
        }
        return Ok(Value::Object(obj));
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n) {
            (_, 1) => drop(obj.insert("metadata".into(), object_meta(bytes(&f)?)?)),
            ("ConfigMap", 2) => string_map_insert(&mut data, &f, false)?,
            ("ConfigMap", 3) => string_map_insert(&mut binary, &f, true)?,
            ("ConfigMap", 4) | ("Secret", 5) => {
                if let Field::Varint(v) = f {
                    obj.insert("immutable".into(), json!(v != 0));
                }
            }
            ("Secret", 2) => string_map_insert(&mut data, &f, true)?,
            ("Secret", 3) => drop(obj.insert("type".into(), json!(text(&f)?))),
            ("Secret", 4) => string_map_insert(&mut string_data, &f, false)?,
            ("Namespace", 2 | 3) => {}
            ("TokenRequest", 2) => drop(obj.insert("spec".into(), token_request_spec(bytes(&f)?)?)),
            ("TokenRequest", 3) => {}
            _ => {
                return Err(ApiError::UnsupportedMediaType {
                    accepted: format!(
                        "application/json (protobuf is read for Namespace, ConfigMap and Secret only, not {kind} field {n})"
                    ),
                });
            }
        }
    }
    for (key, map) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !map.is_empty() {
            obj.insert(key.into(), Value::Object(map));
        }
    }
    Ok(Value::Object(obj))
}

/// How a field of a message decodes (the RBAC and access-review kinds, read by schema).
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Strs,
    Msg(&'static [(u64, &'static str, Ty)]),
    Msgs(&'static [(u64, &'static str, Ty)]),
    StrMap,
    /// `map<string, ExtraValue>` where `ExtraValue` is `repeated string items = 1`.
    ExtraMap,
    /// Read and dropped (status the server computes).
    Ignored,
}

const POLICY_RULE: &[(u64, &str, Ty)] = &[
    (1, "verbs", Ty::Strs),
    (2, "apiGroups", Ty::Strs),
    (3, "resources", Ty::Strs),
    (4, "resourceNames", Ty::Strs),
    (5, "nonResourceURLs", Ty::Strs),
];
const SELECTOR_REQUIREMENT: &[(u64, &str, Ty)] = &[
    (1, "key", Ty::Str),
    (2, "operator", Ty::Str),
    (3, "values", Ty::Strs),
];
const LABEL_SELECTOR: &[(u64, &str, Ty)] = &[
    (1, "matchLabels", Ty::StrMap),
    (2, "matchExpressions", Ty::Msgs(SELECTOR_REQUIREMENT)),
];
const AGGREGATION_RULE: &[(u64, &str, Ty)] =
    &[(1, "clusterRoleSelectors", Ty::Msgs(LABEL_SELECTOR))];
const SUBJECT: &[(u64, &str, Ty)] = &[
    (1, "kind", Ty::Str),
    (2, "apiGroup", Ty::Str),
    (3, "name", Ty::Str),
    (4, "namespace", Ty::Str),
];
const ROLE_REF: &[(u64, &str, Ty)] = &[
    (1, "apiGroup", Ty::Str),
    (2, "kind", Ty::Str),
    (3, "name", Ty::Str),
];
const ROLE: &[(u64, &str, Ty)] = &[(2, "rules", Ty::Msgs(POLICY_RULE))];
const CLUSTER_ROLE: &[(u64, &str, Ty)] = &[
    (2, "rules", Ty::Msgs(POLICY_RULE)),
    (3, "aggregationRule", Ty::Msg(AGGREGATION_RULE)),
];
const BINDING: &[(u64, &str, Ty)] = &[
    (2, "subjects", Ty::Msgs(SUBJECT)),
    (3, "roleRef", Ty::Msg(ROLE_REF)),
];
const RESOURCE_ATTRIBUTES: &[(u64, &str, Ty)] = &[
    (1, "namespace", Ty::Str),
    (2, "verb", Ty::Str),
    (3, "group", Ty::Str),
    (4, "version", Ty::Str),
    (5, "resource", Ty::Str),
    (6, "subresource", Ty::Str),
    (7, "name", Ty::Str),
    (8, "fieldSelector", Ty::Ignored),
    (9, "labelSelector", Ty::Ignored),
];
const NON_RESOURCE_ATTRIBUTES: &[(u64, &str, Ty)] = &[(1, "path", Ty::Str), (2, "verb", Ty::Str)];
const SELF_ACCESS_SPEC: &[(u64, &str, Ty)] = &[
    (1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const ACCESS_SPEC: &[(u64, &str, Ty)] = &[
    (1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
    (3, "user", Ty::Str),
    (4, "groups", Ty::Strs),
    (5, "extra", Ty::ExtraMap),
    (6, "uid", Ty::Str),
];
const RULES_SPEC: &[(u64, &str, Ty)] = &[(1, "namespace", Ty::Str)];
const SELF_ACCESS_REVIEW: &[(u64, &str, Ty)] = &[
    (2, "spec", Ty::Msg(SELF_ACCESS_SPEC)),
    (3, "status", Ty::Ignored),
];
const ACCESS_REVIEW: &[(u64, &str, Ty)] = &[
    (2, "spec", Ty::Msg(ACCESS_SPEC)),
    (3, "status", Ty::Ignored),
];
const RULES_REVIEW: &[(u64, &str, Ty)] =
    &[(2, "spec", Ty::Msg(RULES_SPEC)), (3, "status", Ty::Ignored)];

/// The fields after `metadata` (field 1) of the kinds read by schema.
fn schema_of(kind: &str) -> Option<&'static [(u64, &'static str, Ty)]> {
    Some(match kind {
        "Role" => ROLE,
        "ClusterRole" => CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        "SelfSubjectAccessReview" => SELF_ACCESS_REVIEW,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => ACCESS_REVIEW,
        "SelfSubjectRulesReview" => RULES_REVIEW,
        _ => return None,
    })
}

fn message(buf: &[u8], schema: &[(u64, &str, Ty)], kind: &str) -> Result<Value, ApiError> {
    let mut obj = Map::new();
    for (n, f) in fields(buf)? {
        decode_field(&mut obj, schema, n, &f, kind)?;
    }
    Ok(Value::Object(obj))
}

fn decode_field(
    obj: &mut Map<String, Value>,
    schema: &[(u64, &str, Ty)],
    n: u64,
    f: &Field<'_>,
    kind: &str,
) -> Result<(), ApiError> {
    let Some((_, name, ty)) = schema.iter().find(|(number, _, _)| *number == n) else {
        return Err(ApiError::UnsupportedMediaType {
            accepted: format!("application/json (protobuf field {n} of {kind} is not read)"),
        });
    };
    let name = (*name).to_owned();
    match ty {
        Ty::Str => drop(obj.insert(name, json!(text(f)?))),
        Ty::Strs => push(obj, name, json!(text(f)?)),
        Ty::Msg(inner) => drop(obj.insert(name, message(bytes(f)?, inner, kind)?)),
        Ty::Msgs(inner) => push(obj, name, message(bytes(f)?, inner, kind)?),
        Ty::StrMap => {
            let entry = obj.entry(name).or_insert_with(|| json!({}));
            if let Value::Object(m) = entry {
                string_map_insert(m, f, false)?;
            }
        }
        Ty::ExtraMap => {
            let (key, value) = map_entry(f)?;
            let mut items = Vec::new();
            if let Some(v) = value {
                for (inner_n, item) in fields(bytes(&v)?)? {
                    if inner_n == 1 {
                        items.push(json!(text(&item)?));
                    }
                }
            }
            let entry = obj.entry(name).or_insert_with(|| json!({}));
            if let Value::Object(m) = entry {
                m.insert(key, Value::Array(items));
            }
        }
        Ty::Ignored => {}
    }
    Ok(())
}

fn push(obj: &mut Map<String, Value>, name: String, value: Value) {
    if let Value::Array(items) = obj.entry(name).or_insert_with(|| json!([])) {
        items.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from((n << 3) | 2).unwrap(),
            u8::try_from(payload.len()).unwrap(),
        ];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_configmap_in_its_envelope_decodes_to_json() {
        let meta = [
            field(1, b"cfg"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let configmap = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &configmap)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn a_role_binding_and_an_access_review_decode_by_schema() {
        let subject = [
            field(1, b"User"),
            field(2, b"rbac.authorization.k8s.io"),
            field(3, b"alice"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"ClusterRole"),
            field(3, b"edit"),
        ]
        .concat();
        let binding = [
            field(1, &field(1, b"b")),
            field(2, &subject),
            field(3, &role_ref),
        ]
        .concat();
        let type_meta = [
            field(1, b"rbac.authorization.k8s.io/v1"),
            field(2, b"RoleBinding"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &binding)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}})
        );
        let attrs = [
            field(1, b"team-b"),
            field(2, b"create"),
            field(3, b""),
            field(5, b"secrets"),
        ]
        .concat();
        let review = [field(1, b""), field(2, &field(1, &attrs)), field(3, b"")].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &review)].concat();
        assert_eq!(
            decode(&body).unwrap()["spec"],
            json!({"resourceAttributes": {"namespace": "team-b", "verb": "create", "group": "", "resource": "secrets"}})
        );
    }

    #[test]
    fn a_token_request_decodes_its_audiences_lifetime_and_bound_object() {
        let bound = [field(1, b"Secret"), field(2, b"v1"), field(3, b"db")].concat();
        // expirationSeconds = 4 as a varint: 600 = 0xd8 0x04.
        let spec = [
            field(1, b"sts"),
            field(1, b"api"),
            field(3, &bound),
            vec![4 << 3, 0xd8, 0x04],
        ]
        .concat();
        let request = [field(1, &field(1, b"app")), field(2, &spec)].concat();
        let type_meta = [
            field(1, b"authentication.k8s.io/v1"),
            field(2, b"TokenRequest"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &request)].concat();
        assert_eq!(
            decode(&body).unwrap()["spec"],
            json!({"audiences": ["sts", "api"], "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "db"}})
        );
    }

    #[test]
    fn bodies_without_the_envelope_or_truncated_are_bad_requests() {
        assert_eq!(decode(b"{}").unwrap_err().code(), 400);
        assert_eq!(decode(b"k8s\x00\x0a\x05ab").unwrap_err().code(), 400);
    }
}
