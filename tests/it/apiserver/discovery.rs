//! Aggregated discovery (`apidiscovery.k8s.io/v2`), which kubectl 1.32 asks for first.

use serde_json::{Value, json};

use super::fixture::ControlPlane;

const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

async fn get(client: &kube::Client, path: &str, accept: &str) -> (String, Value) {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let content_type = resp.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = resp.into_body().collect_bytes().await.unwrap();
    (content_type, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn api_and_apis_answer_aggregated_discovery_when_asked_and_plain_documents_otherwise() {
    let cp = ControlPlane::start("aggregated");
    let client = cp.client().await;
    let (content_type, core) = get(&client, "/api", KUBECTL_ACCEPT).await;
    assert_eq!(
        content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(core["kind"], "APIGroupDiscoveryList");
    let resources = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap();
    assert!(resources.iter().any(|r| r["resource"] == "namespaces"
        && r["scope"] == "Cluster"
        && r["subresources"][0]["subresource"] == "status"));

    let (_, groups) = get(&client, "/apis", KUBECTL_ACCEPT).await;
    let names: Vec<&str> = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"apiextensions.k8s.io"), "{names:?}");
    assert!(
        !names.contains(&""),
        "the core group is served on /api only"
    );

    let (content_type, plain) = get(&client, "/apis", "application/json").await;
    assert!(content_type.starts_with("application/json"));
    assert!(!content_type.contains("apidiscovery"));
    assert_eq!(plain["kind"], "APIGroupList");
}

#[test]
fn kubectl_discovers_new_crds_through_aggregated_discovery() {
    let cp = ControlPlane::start("aggregated-kubectl");
    let first = cp.kubectl(&["api-resources", "--no-headers", "-v=6"]);
    assert!(first.status.success());
    let before = String::from_utf8_lossy(&first.stdout);
    assert!(before.contains("configmaps"), "{before}");
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(
        log.contains("/apis?")
            && !log.contains("/api/v1?")
            && !log.contains("/apis/apiextensions.k8s.io/v1?"),
        "two aggregated requests replace the per-group-version documents:\n{log}"
    );
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let path = cp.dir.join("gizmo-crd.json");
    std::fs::write(&path, crd.to_string()).unwrap();
    cp.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gizmos.example.com",
        "--timeout=20s",
    ]);
    let after = cp.kubectl_ok(&["api-resources", "--api-group=example.com", "--no-headers"]);
    assert!(after.contains("gizmos") && after.contains("gz"), "{after}");
    let out = cp.kubectl_ok(&["get", "gz", "-n", "default"]);
    assert!(out.is_empty() || out.contains("No resources"), "{out}");
    let cache = cp.dir.join("kubectl-cache");
    assert!(
        cache.exists(),
        "kubectl used this control plane's own cache"
    );
}
