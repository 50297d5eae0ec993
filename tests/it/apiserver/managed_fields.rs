//! Field ownership as clients see it: the server holds `managedFields` compactly, and every way
//! an object leaves it (get, list, watch, tables, YAML, writes' answers, deletecollection, the
//! store across a restart) shows them as Kubernetes does, a list of entries whose `fieldsV1` is
//! an object.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use http::header::{ACCEPT, CONTENT_TYPE};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use strata_apiserver::{Server, ServerConfig};

use super::fixture::{client_for, restart, temp_dir};

const PATH: &str = "/api/v1/namespaces/default/configmaps";

/// The managers of `obj`'s managedFields, each checked to be a Kubernetes entry.
fn managers(obj: &Value) -> Vec<String> {
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("managedFields are a list: {obj}"));
    entries
        .iter()
        .map(|e| {
            assert_eq!(e["fieldsType"], "FieldsV1", "{e}");
            assert!(e["fieldsV1"].is_object(), "fieldsV1 is an object: {e}");
            e["manager"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn raw(client: &kube::Client, method: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(ACCEPT, accept)
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect_bytes().await.unwrap().to_vec(),
    )
}

async fn json(client: &kube::Client, method: &str, path: &str, accept: &str) -> Value {
    let (status, body) = raw(client, method, path, accept).await;
    assert_eq!(
        status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn managed_fields_leave_the_server_as_lists_of_entries_everywhere() {
    let dir = temp_dir("managed-fields");
    let config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config.clone()).await.unwrap();
    let client = client_for(server.kubeconfig_path()).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();

    // Two managers: one by update, one by server-side apply; the answers of both writes.
    let created: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "owned"}, "data": {"a": "1"}
    }))
    .unwrap();
    let created = api.create(&Default::default(), &created).await.unwrap();
    let created = serde_json::to_value(&created).unwrap();
    assert_eq!(managers(&created).len(), 1, "the creator");
    let applied = api
        .patch(
            "owned",
            &PatchParams::apply("applier"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "owned"}, "data": {"b": "2"}})),
        )
        .await
        .unwrap();
    let applied = serde_json::to_value(&applied).unwrap();
    let both = managers(&applied);
    assert!(
        both.contains(&"applier".to_owned()) && both.len() == 2,
        "{both:?}"
    );
    let merged = api
        .patch(
            "owned",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(managers(&serde_json::to_value(&merged).unwrap()).len(), 2);

    // Get, list, a table with the objects, YAML.
    let got = json(&client, "GET", &format!("{PATH}/owned"), "application/json").await;
    assert_eq!(managers(&got).len(), 2);
    let listed = json(&client, "GET", PATH, "application/json").await;
    assert_eq!(managers(&listed["items"][0]).len(), 2);
    let table = json(
        &client,
        "GET",
        &format!("{PATH}?includeObject=Object"),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    assert_eq!(managers(&table["rows"][0]["object"]).len(), 2);
    let (status, yaml) = raw(&client, "GET", &format!("{PATH}/owned"), "application/yaml").await;
    assert_eq!(status, 200);
    let from_yaml: Value = serde_saphyr::from_slice(&yaml).unwrap();
    assert_eq!(managers(&from_yaml).len(), 2);

    // Every watch event.
    let mut seen = 0;
    while seen < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                managers(&serde_json::to_value(&cm).unwrap());
                seen += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    // A no-op apply writes nothing (the stored form compares equal to the recomputed one).
    let rv = got["metadata"]["resourceVersion"].clone();
    let again = api
        .patch(
            "owned",
            &PatchParams::apply("applier"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "owned"}, "data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(json!(again.metadata.resource_version), rv, "a no-op apply");

    // A client cannot hand the server managedFields that are not a list.
    let (status, body) = {
        let req = http::Request::builder()
            .method("PATCH")
            .uri(format!("{PATH}/owned"))
            .header(CONTENT_TYPE, "application/merge-patch+json")
            .body(br#"{"metadata":{"managedFields":"[{}]"}}"#.to_vec())
            .unwrap();
        let resp = client
            .send(req.map(kube::client::Body::from))
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect_bytes().await.unwrap())
    };
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("managedFields"));

    // Across a restart (the store holds the objects as Kubernetes JSON).
    drop(watch);
    server.shutdown().await;
    let server = restart(&config).await;
    let client = client_for(server.kubeconfig_path()).await;
    let got = json(&client, "GET", &format!("{PATH}/owned"), "application/json").await;
    assert_eq!(managers(&got).len(), 2, "after a restart");
    let resumed = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let list = resumed.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    // Deletecollection answers with the deleted objects.
    let deleted = json(&client, "DELETE", PATH, "application/json").await;
    assert_eq!(managers(&deleted["items"][0]).len(), 2);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
