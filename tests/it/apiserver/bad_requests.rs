//! Bad requests get the right status code and a Status body, and the server stays up.

use http::Request;
use kube::client::Body;
use serde_json::Value;

use super::fixture::ControlPlane;

async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_requests_get_status_bodies_and_the_server_stays_up() {
    let cp = ControlPlane::start("bad");
    let client = cp.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    // (method, uri, content type, body, expected code, why)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            cms,
            "application/json",
            b"{not json".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/frobnicators",
            "application/json",
            Vec::new(),
            404,
            "unknown resource",
        ),
        (
            "GET",
            "/apis/nope.example.com/v1/things",
            "application/json",
            Vec::new(),
            404,
            "unknown group",
        ),
        (
            "POST",
            cms,
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
            413,
            "body over 3 MiB",
        ),
        (
            "POST",
            cms,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "kind does not match the URL",
        ),
        (
            "POST",
            cms,
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#.to_vec(),
            422,
            "invalid name",
        ),
        (
            "POST",
            "/api/v1/namespaces/missing/configmaps",
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec(),
            404,
            "namespace does not exist",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/none",
            "application/merge-patch+json",
            b"{}".to_vec(),
            404,
            "patching a missing object",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default",
            "text/plain",
            b"{}".to_vec(),
            415,
            "unknown patch type",
        ),
    ];
    for (method, uri, ct, body, want, why) in cases {
        let (code, status) = send(&client, method, uri, ct, body).await;
        assert_eq!(code, want, "{why}: {status}");
        assert_eq!(status["kind"], "Status", "{why}");
        assert_eq!(status["code"], want, "{why}");
        assert_eq!(status["status"], "Failure", "{why}");
    }

    let kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.auth_info.token = Some("wrong".to_owned().into());
    strata_apiserver::tls::install_default_crypto_provider();
    let intruder = kube::Client::try_from(config).unwrap();
    let (code, status) = send(&intruder, "GET", cms, "application/json", Vec::new()).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (401, Some("Unauthorized"))
    );

    let (code, _) = send(&client, "GET", cms, "application/json", Vec::new()).await;
    assert_eq!(code, 200, "the server is still up");
}

#[test]
fn namespace_names_are_dns_labels_like_kube_apiserver_checks_them() {
    let cp = ControlPlane::start("ns-names");
    let (at_limit, over_limit) = ("a".repeat(63), "a".repeat(64));
    // (name, accepted, why)
    let cases = [
        ("a.b", false, "a dot makes a subdomain, not a label"),
        (
            over_limit.as_str(),
            false,
            "64 characters is one over the limit",
        ),
        (at_limit.as_str(), true, "63 characters is the limit"),
        ("team-a", true, "an ordinary name"),
    ];
    for (name, accepted, why) in cases {
        let out = cp.kubectl(&["create", "namespace", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), accepted, "{why}: {stderr}");
        if !accepted {
            assert!(
                stderr.contains("is invalid: metadata.name"),
                "{why}: a 422 naming the field: {stderr}"
            );
        }
    }
}
