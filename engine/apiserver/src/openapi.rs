//! The OpenAPI documents kubectl and client-go read: `/openapi/v3` (an index of group-versions,
//! each with a hash of what it serves) and one OpenAPI v3 document per group-version, with the
//! real schemas of every served kind; `/openapi/v2` (see [`v2`]).
//!
//! The built-in kinds' schemas are the Kubernetes OpenAPI definitions themselves, generated into
//! `openapi_definitions.json` by `scripts/gen-openapi-definitions.py` (a test checks the file is
//! current). They are hand-carried rather than derived from k8s-openapi's `schemars`
//! implementations because those carry no `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-patch-strategy` or `x-kubernetes-patch-merge-key`: what `kubectl apply` merges
//! lists by on the client, and what server-side apply owns list items by on the server
//! ([`crate::fields`] walks the same definitions). A CRD's kind is its `openAPIV3Schema`, with
//! `metadata` pointing at `ObjectMeta` as kube-apiserver publishes it.
//!
//! Documents are built when first asked for and kept per group-version with the hash the index
//! advertises; a CRD change changes its group-version's hash, and the next request builds anew.
//! Nothing here runs on the object read and write paths.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use serde_json::{Map, Value, json};

use crate::discovery::{HANDLED, HandledResource, served_groups};
use crate::resource::{Registry, ResourceType};

pub(crate) mod v2;

/// Where OpenAPI v3 documents point at a component schema.
pub(crate) const REF_PREFIX: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const GVK: &str = "x-kubernetes-group-version-kind";

/// The Kubernetes OpenAPI definitions of the built-in kinds and all they reference, by name.
pub(crate) fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        // A test parses the file; an unparsable file leaves every built-in kind without schema.
        serde_json::from_str(include_str!("openapi_definitions.json")).unwrap_or_default()
    })
}

/// The name of the definition of a built-in kind, found by its `x-kubernetes-group-version-kind`.
pub(crate) fn definition_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    static BY_GVK: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    BY_GVK
        .get_or_init(|| {
            let mut by_gvk = HashMap::new();
            for (name, schema) in definitions() {
                for gvk in schema
                    .get(GVK)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let part = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("");
                    let key = format!("{}/{}/{}", part("group"), part("version"), part("kind"));
                    by_gvk.insert(key, name.as_str());
                }
            }
            by_gvk
        })
        .get(&format!("{group}/{version}/{kind}"))
        .copied()
}

/// The definition of a built-in kind.
pub(crate) fn definition(group: &str, version: &str, kind: &str) -> Option<&'static Value> {
    definition_name(group, version, kind).and_then(|n| definitions().get(n))
}

/// `node` with its reference followed: a `$ref`, or an `allOf` of one reference (the form a
/// field with a description of its own takes).
pub(crate) fn resolve(mut node: &'static Value) -> &'static Value {
    for _ in 0..8 {
        let target = node
            .get("$ref")
            .or_else(|| node.get("allOf")?.get(0)?.get("$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .and_then(|name| definitions().get(name));
        match target {
            Some(t) => node = t,
            None => break,
        }
    }
    node
}

/// The schema of field `name` of an object node: its property, else its `additionalProperties`
/// (a map's values); `None` where the definitions say nothing of it.
pub(crate) fn property(node: &'static Value, name: &str) -> Option<&'static Value> {
    let node = resolve(node);
    node.get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
}

/// The schema of the items of an array node.
pub(crate) fn items(node: &'static Value) -> Option<&'static Value> {
    resolve(node).get("items")
}

/// `ObjectMeta`'s definition: the `metadata` of every object, built-in or custom.
pub(crate) fn object_meta() -> Option<&'static Value> {
    definitions().get(OBJECT_META)
}

/// The definitions `roots` reference, directly or through others, themselves included.
fn closure<'a>(roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'static str> {
    fn refs(node: &Value, found: &mut Vec<String>) {
        match node {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => {
                            if let Some(name) = r.strip_prefix(REF_PREFIX) {
                                found.push(name.to_owned());
                            }
                        }
                        _ => refs(v, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }
    let defs = definitions();
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().map(str::to_owned).collect();
    while let Some(name) = todo.pop() {
        let Some((key, schema)) = defs.get_key_value(&name) else {
            continue;
        };
        if out.insert(key.as_str()) {
            refs(schema, &mut todo);
        }
    }
    out
}

/// The index and path prefix of a group-version: `api/v1` or `apis/G/V`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group-versions served (the registry's and the review kinds').
fn served(registry: &Registry) -> Vec<(String, String)> {
    served_groups(registry)
        .into_iter()
        .flat_map(|(g, vs)| vs.into_iter().map(move |v| (g.clone(), v)))
        .collect()
}

/// The types served at `group/version`.
fn types_in<'r>(
    registry: &'r Registry,
    group: &'r str,
    version: &'r str,
) -> impl Iterator<Item = &'r Arc<ResourceType>> + 'r {
    registry
        .all()
        .filter(move |t| t.group == group && t.version(version).is_some())
}

/// A fingerprint of what `group/version` serves: its resources and the CRDs' schemas, and the
/// generated definitions' size (a regenerated file changes it).
fn hash(registry: &Registry, group: &str, version: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(include_str!("openapi_definitions.json").len().to_le_bytes());
    let mut types: Vec<&Arc<ResourceType>> = types_in(registry, group, version).collect();
    types.sort_by(|a, b| a.resource.cmp(&b.resource));
    for t in types {
        h.update(t.resource.as_bytes());
        h.update([0, u8::from(t.namespaced), u8::from(t.builtin)]);
        h.update(t.kind.as_bytes());
        h.update(t.short_names.join(",").as_bytes());
        if let Some(v) = t.version(version) {
            h.update([
                u8::from(v.status_subresource),
                u8::from(v.scale.is_some()),
                u8::from(v.schema.is_some()),
            ]);
            if let Some(schema) = &v.schema {
                h.update(schema.to_string().as_bytes());
            }
        }
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// `/openapi/v3`: every served group-version with the URL of its document, the hash in it.
pub(crate) fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, version) in served(registry) {
        let key = gv_key(&group, &version);
        let url = format!(
            "/openapi/v3/{key}?hash={}",
            hash(registry, &group, &version)
        );
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// The documents built so far, per group-version with the hash they were built at.
#[derive(Default)]
pub(crate) struct Cache {
    v3: Mutex<HashMap<String, (String, Bytes)>>,
    v2: Mutex<Option<(String, Arc<v2::Encoded>)>>,
}

impl Cache {
    /// The serialized OpenAPI v3 document of `group/version` (`None`: nothing served there).
    pub(crate) fn group_version(
        &self,
        registry: &Registry,
        group: &str,
        version: &str,
    ) -> Option<Bytes> {
        let key = gv_key(group, version);
        let hash = hash(registry, group, version);
        if let Some((h, doc)) = self.lock_v3().get(&key)
            && *h == hash
        {
            return Some(doc.clone());
        }
        let doc = Bytes::from(serde_json::to_vec(&group_version(registry, group, version)?).ok()?);
        self.lock_v3().insert(key, (hash, doc.clone()));
        Some(doc)
    }

    /// The OpenAPI v2 document of everything served, in JSON and protobuf.
    pub(crate) fn v2(&self, registry: &Registry) -> Arc<v2::Encoded> {
        let hash: String = served(registry)
            .iter()
            .map(|(g, v)| hash(registry, g, v))
            .collect();
        let mut cached = self
            .v2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((h, doc)) = cached.as_ref()
            && *h == hash
        {
            return doc.clone();
        }
        let doc = Arc::new(v2::encode(registry));
        *cached = Some((hash, doc.clone()));
        doc
    }

    fn lock_v3(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Bytes)>> {
        self.v3
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The name kube-apiserver gives a CRD's schema: the group reversed, the version, the kind
/// (`com.example.v1.Widget`).
fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

/// A CRD version's schema as kube-apiserver publishes it: `metadata` is `ObjectMeta`,
/// `apiVersion` and `kind` described, the kind's group-version-kind attached.
fn crd_schema(t: &ResourceType, version: &str) -> Value {
    let mut schema = t
        .version(version)
        .and_then(|v| v.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    // Every kind describes `apiVersion`, `kind` and `metadata` alike: a Deployment's words.
    let described = |field: &str| {
        definition("apps", "v1", "Deployment")
            .and_then(|d| d.pointer(&format!("/properties/{field}")))
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}))
    };
    if let Value::Object(m) = &mut schema {
        m.entry("type").or_insert(json!("object"));
        if let Value::Object(props) = m.entry("properties").or_insert(json!({})) {
            props.insert("apiVersion".into(), described("apiVersion"));
            props.insert("kind".into(), described("kind"));
            props.insert("metadata".into(), described("metadata"));
        }
        m.insert(GVK.into(), json!([gvk(&t.group, version, &t.kind)]));
    }
    schema
}

/// The schema name of a kind served at `group/version`, and whether it is a definition.
fn schema_name(t: &ResourceType, version: &str) -> (String, bool) {
    match definition_name(&t.group, version, &t.kind) {
        Some(name) if t.builtin => (name.to_owned(), true),
        _ => (crd_schema_name(&t.group, version, &t.kind), false),
    }
}

fn query_param(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// The operations of one path: `(method, action, kind schema, what the body is)`.
struct Operations<'a> {
    gvk: Value,
    schema: &'a str,
    strategic: bool,
}

impl Operations<'_> {
    fn op(&self, action: &str, id: &str, body: bool, patch: bool) -> Value {
        let mut params = vec![query_param("pretty", "string")];
        if body {
            params.extend([
                query_param("dryRun", "string"),
                query_param("fieldManager", "string"),
                query_param("fieldValidation", "string"),
            ]);
        }
        if patch {
            params.push(query_param("force", "boolean"));
        }
        let content = |schema: Value| {
            json!({"application/json": {"schema": schema},
                "application/yaml": {"schema": schema},
                "application/vnd.kubernetes.protobuf": {"schema": schema}})
        };
        let kind = reference(self.schema);
        let mut op = json!({
            "operationId": id,
            "parameters": params,
            "responses": {"200": {"description": "OK", "content": content(kind.clone())},
                "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": action,
            GVK: self.gvk,
        });
        if patch {
            let patch_body = json!({"schema": {"type": "object"}});
            let mut types = Map::new();
            for t in [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ] {
                types.insert(t.into(), patch_body.clone());
            }
            if self.strategic {
                types.insert("application/strategic-merge-patch+json".into(), patch_body);
            }
            op["requestBody"] = json!({"content": types, "required": true});
            op["responses"]["201"] = json!({"description": "Created", "content": content(kind)});
        } else if body {
            op["requestBody"] = json!({"content": content(kind.clone()), "required": true});
            op["responses"]["201"] = json!({"description": "Created", "content": content(kind)});
        }
        op
    }
}

/// `/api/v1/namespaces/{namespace}/pods`-like: the collection path of a kind.
fn collection(prefix: &str, resource: &str, namespaced: bool) -> String {
    if namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{resource}")
    } else {
        format!("{prefix}/{resource}")
    }
}

fn operation_name(kind: &str) -> String {
    kind.to_owned()
}

/// The paths of a served kind: the collection, the object, its subresources.
fn kind_paths(paths: &mut Map<String, Value>, t: &ResourceType, version: &str, schema: &str) {
    let prefix = format!("/{}", gv_key(&t.group, version));
    let ops = Operations {
        gvk: gvk(&t.group, version, &t.kind),
        schema,
        strategic: t.builtin,
    };
    let kind = operation_name(&t.kind);
    let scope = if t.namespaced { "Namespaced" } else { "" };
    let ns = t.namespaced.then(|| path_param("namespace"));
    let with =
        |extra: Vec<Value>| -> Value { Value::Array(ns.iter().cloned().chain(extra).collect()) };
    let coll = collection(&prefix, &t.resource, t.namespaced);
    paths.insert(
        coll.clone(),
        json!({
            "get": ops.op("list", &format!("list{scope}{kind}"), false, false),
            "post": ops.op("post", &format!("create{scope}{kind}"), true, false),
            "delete": ops.op("deletecollection", &format!("deleteCollection{scope}{kind}"), false, false),
            "parameters": with(vec![]),
        }),
    );
    if t.namespaced {
        paths.insert(
            format!("{prefix}/{}", t.resource),
            json!({"get": ops.op("list", &format!("list{kind}ForAllNamespaces"), false, false)}),
        );
    }
    paths.insert(
        format!("{coll}/{{name}}"),
        json!({
            "get": ops.op("get", &format!("read{scope}{kind}"), false, false),
            "put": ops.op("put", &format!("replace{scope}{kind}"), true, false),
            "patch": ops.op("patch", &format!("patch{scope}{kind}"), true, true),
            "delete": ops.op("delete", &format!("delete{scope}{kind}"), false, false),
            "parameters": with(vec![path_param("name")]),
        }),
    );
    if t.version(version).is_some_and(|v| v.status_subresource) {
        paths.insert(
            format!("{coll}/{{name}}/status"),
            json!({
                "get": ops.op("get", &format!("read{scope}{kind}Status"), false, false),
                "put": ops.op("put", &format!("replace{scope}{kind}Status"), true, false),
                "patch": ops.op("patch", &format!("patch{scope}{kind}Status"), true, true),
                "parameters": with(vec![path_param("name")]),
            }),
        );
    }
    if t.version(version).is_some_and(|v| v.scale.is_some()) {
        let scale = Operations {
            gvk: gvk("autoscaling", "v1", "Scale"),
            schema: "io.k8s.api.autoscaling.v1.Scale",
            strategic: true,
        };
        paths.insert(
            format!("{coll}/{{name}}/scale"),
            json!({
                "get": scale.op("get", &format!("read{scope}{kind}Scale"), false, false),
                "put": scale.op("put", &format!("replace{scope}{kind}Scale"), true, false),
                "patch": scale.op("patch", &format!("patch{scope}{kind}Scale"), true, true),
                "parameters": with(vec![path_param("name")]),
            }),
        );
    }
}

/// The create-only paths of a review kind (and a ServiceAccount's `token`).
fn handled_paths(paths: &mut Map<String, Value>, h: &HandledResource) -> Option<&'static str> {
    let name = definition_name(h.group, h.version, h.kind)?;
    let ops = Operations {
        gvk: gvk(h.group, h.version, h.kind),
        schema: name,
        strategic: false,
    };
    let prefix = format!("/{}", gv_key(h.group, h.version));
    let path = collection(&prefix, h.resource, h.namespaced);
    let mut item = json!({"post": ops.op("post", &format!("create{}", h.kind), true, false)});
    if h.namespaced {
        item["parameters"] = json!([path_param("namespace")]);
    }
    paths.insert(path, item);
    Some(name)
}

/// The OpenAPI v3 document of `group/version`, `None` when nothing is served there.
pub(crate) fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut roots: Vec<&'static str> = Vec::new();
    let mut types: Vec<&Arc<ResourceType>> = types_in(registry, group, version).collect();
    types.sort_by(|a, b| a.resource.cmp(&b.resource));
    for t in types {
        let (name, builtin) = schema_name(t, version);
        kind_paths(&mut paths, t, version, &name);
        if t.version(version).is_some_and(|v| v.scale.is_some()) {
            roots.push("io.k8s.api.autoscaling.v1.Scale");
        }
        if builtin {
            if let Some((key, _)) = definitions().get_key_value(&name) {
                roots.push(key);
            }
        } else {
            roots.push(OBJECT_META);
            schemas.insert(name, crd_schema(t, version));
        }
        if t.builtin && t.group.is_empty() && t.resource == "serviceaccounts" {
            let token = Operations {
                gvk: gvk(
                    crate::authn_api::GROUP,
                    crate::authn_api::VERSION,
                    "TokenRequest",
                ),
                schema: "io.k8s.api.authentication.v1.TokenRequest",
                strategic: false,
            };
            paths.insert(
                format!("/api/{version}/namespaces/{{namespace}}/serviceaccounts/{{name}}/token"),
                json!({"post": token.op("post", "createNamespacedServiceAccountToken", true, false),
                    "parameters": [path_param("namespace"), path_param("name")]}),
            );
            roots.push("io.k8s.api.authentication.v1.TokenRequest");
        }
    }
    for h in HANDLED
        .iter()
        .filter(|h| h.group == group && h.version == version)
    {
        roots.extend(handled_paths(&mut paths, h));
    }
    if paths.is_empty() {
        return None;
    }
    roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
    for name in closure(roots) {
        if let Some(schema) = definitions().get(name) {
            schemas.insert(name.to_owned(), schema.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_and_review_kind_has_its_kubernetes_definition() {
        let registry = Registry::with_builtins();
        for t in registry.all() {
            let v = t.storage_version();
            let schema = definition(&t.group, v, &t.kind)
                .unwrap_or_else(|| panic!("no definition of {}/{v} {}", t.group, t.kind));
            assert!(schema["description"].is_string(), "{}", t.kind);
        }
        for h in HANDLED {
            assert!(
                definition(h.group, h.version, h.kind).is_some(),
                "{}",
                h.kind
            );
        }
    }

    #[test]
    fn a_deployment_carries_descriptions_and_list_markers() {
        let spec = resolve(&definition("apps", "v1", "Deployment").unwrap()["properties"]["spec"]);
        assert!(
            spec["properties"]["replicas"]["description"]
                .as_str()
                .unwrap()
                .contains("Number of desired pods")
        );
        let pod = resolve(&resolve(&spec["properties"]["template"])["properties"]["spec"]);
        let containers = &pod["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let ports = &resolve(&containers["items"])["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
    }

    #[test]
    fn every_reference_of_a_group_version_document_resolves_within_it() {
        let registry = Registry::with_builtins();
        for (g, v) in served(&registry) {
            let doc = group_version(&registry, &g, &v).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let text = doc.to_string();
            for part in text.split(REF_PREFIX).skip(1) {
                let name = part.split('"').next().unwrap();
                assert!(schemas.contains_key(name), "{g}/{v}: {name} is missing");
            }
        }
    }

    #[test]
    fn a_horizontal_pod_autoscaler_is_described_in_each_version_it_is_served_at() {
        let registry = Registry::with_builtins();
        let path = "/apis/autoscaling/{v}/namespaces/{namespace}/horizontalpodautoscalers/{name}";
        for (v, field) in [("v1", "targetCPUUtilizationPercentage"), ("v2", "metrics")] {
            let doc = group_version(&registry, "autoscaling", v).unwrap();
            let schemas = &doc["components"]["schemas"];
            let name = format!("io.k8s.api.autoscaling.{v}.HorizontalPodAutoscaler");
            assert_eq!(schemas[&name][GVK][0]["version"], v);
            let spec = resolve(&definitions()[&name]["properties"]["spec"]);
            assert!(spec["properties"][field].is_object(), "{v}: {field}");
            let get = &doc["paths"][path.replace("{v}", v)]["get"];
            assert_eq!(get[GVK]["version"], v);
        }
        let v2 = super::v2::document(&registry);
        for v in ["v1", "v2"] {
            let name = format!("io.k8s.api.autoscaling.{v}.HorizontalPodAutoscaler");
            assert!(v2["definitions"][&name].is_object(), "{name}");
        }
    }

    #[test]
    fn a_crd_schema_is_published_under_its_reversed_group_with_object_meta() {
        assert_eq!(
            crd_schema_name("example.com", "v1", "Widget"),
            "com.example.v1.Widget"
        );
    }

    #[test]
    fn the_patch_of_a_builtin_kind_takes_strategic_merge_and_a_crds_does_not() {
        let registry = Registry::with_builtins();
        let doc = group_version(&registry, "apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object()
        );
        assert_eq!(patch[GVK]["kind"], "Deployment");
        let index = index(&registry);
        assert!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }

    #[test]
    fn the_generated_definitions_are_current() {
        // The generator reads the definitions a Python package ships (tests/requirements.txt).
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/gen-openapi-definitions.py"
        );
        let out = std::process::Command::new("python3")
            .args([script, "--check"])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
