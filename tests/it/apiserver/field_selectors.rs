//! Field selectors as kube-apiserver supports them per kind: an unsupported label is a 400 naming
//! it, never silently ignored.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::fixture::ControlPlane;

fn api_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn an_unsupported_field_selector_is_a_bad_request_naming_the_field() {
    let cp = ControlPlane::start("field-selectors");
    let client = cp.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    for name in ["a", "b"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"mode": name}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let tls: Secret = serde_json::from_value(json!({"metadata": {"name": "cert"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}))
    .unwrap();
    secrets.create(&PostParams::default(), &tls).await.unwrap();
    let opaque: Secret = serde_json::from_value(json!({"metadata": {"name": "plain"}})).unwrap();
    secrets
        .create(&PostParams::default(), &opaque)
        .await
        .unwrap();

    // (selector on configmaps, expected names or error code, why)
    let err = cms
        .list(&ListParams::default().fields("data.mode=a"))
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        400,
        "a ConfigMap has no data.mode field selector"
    );
    assert!(err.to_string().contains("data.mode"), "{err}");

    let named = cms
        .list(&ListParams::default().fields("metadata.name!=a"))
        .await
        .unwrap();
    let names: Vec<_> = named
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert!(
        names.contains(&"b".to_owned()) && !names.contains(&"a".to_owned()),
        "{names:?}"
    );

    let typed = secrets
        .list(&ListParams::default().fields("type=kubernetes.io/tls"))
        .await
        .unwrap();
    let names: Vec<_> = typed
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["cert"], "a Secret's type is a field selector");

    // kubectl reports the server's message naming the field.
    let out = cp.kubectl(&["get", "configmaps", "--field-selector", "data.mode=a"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("field label not supported: data.mode"),
        "{stderr}"
    );
    let out = cp.kubectl(&[
        "get",
        "namespaces",
        "--field-selector",
        "status.phase=Active",
        "-o",
        "name",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace/default"),
        "a Namespace's phase is a field selector: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
