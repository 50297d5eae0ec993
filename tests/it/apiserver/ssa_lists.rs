//! Server-side apply of associative lists (`x-kubernetes-list-type: map`/`set`) through kube-rs
//! and `kubectl apply --server-side`: items are owned per key, by several managers at once.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use super::fixture::ControlPlane;

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "routers.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "routers", "singular": "router", "kind": "Router"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "routes": {"type": "array", "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["path"],
                            "items": {"type": "object", "required": ["path"], "properties": {
                                "path": {"type": "string"}, "backend": {"type": "string"}}}},
                        "tags": {"type": "array", "x-kubernetes-list-type": "set",
                            "items": {"type": "string"}}}},
                    "status": {"type": "object", "properties": {
                        "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["type"],
                            "items": {"type": "object", "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"},
                                "reason": {"type": "string"}}}}}}}}}}]}
    })
}

fn condition_types(obj: &DynamicObject) -> Vec<String> {
    obj.data["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["type"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn status_apply(conditions: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Router", "metadata": {"name": "r"},
        "status": {"conditions": conditions}})
}

#[tokio::test]
async fn managers_applying_different_conditions_each_keep_and_release_only_theirs() {
    let cp = ControlPlane::start("ssa-lists");
    let client = cp.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd()).unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Router"),
        "routers",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let router = json!({"apiVersion": "example.com/v1", "kind": "Router", "metadata": {"name": "r"},
        "spec": {"routes": [{"path": "/a", "backend": "one"}]}});
    api.patch(
        "r",
        &PatchParams::apply("spec-owner"),
        &Patch::Apply(&router),
    )
    .await
    .unwrap();

    let ready = status_apply(json!([{"type": "Ready", "status": "True"}]));
    let synced = status_apply(json!([{"type": "Synced", "status": "False"}]));
    api.patch_status("r", &PatchParams::apply("ready-ctl"), &Patch::Apply(&ready))
        .await
        .unwrap();
    let both = api
        .patch_status("r", &PatchParams::apply("sync-ctl"), &Patch::Apply(&synced))
        .await
        .unwrap();
    assert_eq!(condition_types(&both), ["Ready", "Synced"]);
    let ready_fields = both
        .metadata
        .managed_fields
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.manager.as_deref() == Some("ready-ctl"))
        .and_then(|m| m.fields_v1.clone())
        .unwrap();
    assert_eq!(
        ready_fields.0,
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );

    let stolen = status_apply(json!([{"type": "Ready", "status": "False"}]));
    let err = api
        .patch_status("r", &PatchParams::apply("sync-ctl"), &Patch::Apply(&stolen))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(".status.conditions[type=\"Ready\"].status"),
        "the conflict names the item: {err}"
    );

    let after = api
        .patch_status(
            "r",
            &PatchParams::apply("sync-ctl"),
            &Patch::Apply(&status_apply(json!([]))),
        )
        .await
        .unwrap();
    assert_eq!(
        condition_types(&after),
        ["Ready"],
        "the manager that stopped applying Synced removed only Synced"
    );
    assert_eq!(after.data["spec"]["routes"][0]["backend"], "one");
}

#[test]
fn kubectl_server_side_apply_merges_list_items_from_two_managers() {
    let cp = ControlPlane::start("ssa-kubectl");
    let crd_path = cp.dir.join("crd.json");
    std::fs::write(&crd_path, crd().to_string()).unwrap();
    cp.kubectl_ok(&["apply", "--server-side", "-f", crd_path.to_str().unwrap()]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/routers.example.com",
        "--timeout=20s",
    ]);
    let write = |name: &str, routes: &str, tags: &str| {
        let path = cp.dir.join(name);
        std::fs::write(
            &path,
            format!(
                "apiVersion: example.com/v1\nkind: Router\nmetadata: {{name: r, namespace: default}}\nspec:\n  routes: {routes}\n  tags: {tags}\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let team_a = write("a.yaml", "[{path: /a, backend: one}]", "[blue]");
    let team_b = write("b.yaml", "[{path: /b, backend: two}]", "[green]");
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-a",
        "-f",
        &team_a,
    ]);
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "-f",
        &team_b,
    ]);
    let routes = |cp: &ControlPlane| {
        cp.kubectl_ok(&[
            "get",
            "router",
            "r",
            "-o",
            "jsonpath={.spec.routes[*].path} {.spec.tags}",
        ])
    };
    assert_eq!(routes(&cp), "/a /b [\"blue\",\"green\"]");

    let conflicting = write("c.yaml", "[{path: /a, backend: three}]", "[green]");
    let out = cp.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "-f",
        &conflicting,
    ]);
    assert!(!out.status.success(), "changing team-a's route conflicts");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("conflict with \"team-a\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let team_a_less = write("a2.yaml", "[]", "[]");
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-a",
        "-f",
        &team_a_less,
    ]);
    assert_eq!(routes(&cp), "/b [\"green\"]");
}

#[test]
fn kubectl_server_side_apply_over_a_client_side_apply_upgrades_without_conflict() {
    let cp = ControlPlane::start("ssa-upgrade");
    let write = |name: &str, data: &str| {
        let path = cp.dir.join(name);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: default}}\ndata: {data}\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let first = write("first.yaml", "{a: '1', b: '2'}");
    let second = write("second.yaml", "{a: '3'}");
    cp.kubectl_ok(&["apply", "-f", &first]);
    // As against kube-apiserver: kubectl's server-side apply takes over what its client-side
    // apply recorded, and the annotation follows, so client-side apply still works after.
    cp.kubectl_ok(&["apply", "--server-side", "-f", &second]);
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]),
        "3"
    );
    cp.kubectl_ok(&["apply", "-f", &first]);
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "c", "-o", "jsonpath={.data.a},{.data.b}"]),
        "1,2"
    );
    // Another field manager still conflicts with client-side apply's fields.
    let out = cp.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=flux",
        "-f",
        &second,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("conflict"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
