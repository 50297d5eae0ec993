//! Secret and ConfigMap payloads as kube-apiserver keeps them: `stringData` folded into `data`,
//! `immutable: true` freezing the payload. Driven by kube-rs and the real kubectl.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::fixture::ControlPlane;

fn secret(name: &str, data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s.string_data = Some(
        string_data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    s
}

fn decoded(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn secret_string_data_is_merged_into_data_on_every_write_and_never_returned() {
    let cp = ControlPlane::start("secret-string-data");
    let secrets: Api<Secret> = Api::namespaced(cp.client().await, "default");

    let created = secrets
        .create(
            &PostParams::default(),
            &secret(
                "db",
                &[("user", "old"), ("host", "h")],
                &[("user", "admin")],
            ),
        )
        .await
        .unwrap();
    assert_eq!(decoded(&created), map(&[("host", "h"), ("user", "admin")]));
    assert_eq!(
        created.string_data, None,
        "create answers without stringData"
    );

    let mut replaced = created.clone();
    replaced.string_data = Some(map(&[("password", "s3cr3t")]));
    let replaced = secrets
        .replace("db", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        decoded(&replaced),
        map(&[("host", "h"), ("password", "s3cr3t"), ("user", "admin")])
    );

    let patched = secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"host": "db.internal"}})),
        )
        .await
        .unwrap();
    assert_eq!(decoded(&patched)["host"], "db.internal");
    assert_eq!(patched.string_data, None);

    let applied = secrets
        .patch(
            "applied",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "applied"}, "stringData": {"token": "t0k"}})),
        )
        .await
        .unwrap();
    assert_eq!(decoded(&applied), map(&[("token", "t0k")]));

    let read = secrets.get("db").await.unwrap();
    assert_eq!(read.string_data, None, "a read never shows stringData");
    assert_eq!(decoded(&read), decoded(&patched));

    // kubectl's create and get see the same: data holds the merged values, base64.
    let path = cp.dir.join("secret.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: from-kubectl}\nstringData: {url: 'postgres://x'}\n",
    )
    .unwrap();
    cp.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let out: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "secret", "from-kubectl", "-o", "json"]))
            .unwrap();
    assert_eq!(out["data"], json!({"url": "cG9zdGdyZXM6Ly94"}));
    assert!(out.get("stringData").is_none(), "{out}");
}

fn invalid_fields(e: &kube::Error) -> (u16, Vec<String>) {
    match e {
        kube::Error::Api(s) => (
            s.code,
            s.details
                .as_ref()
                .map(|d| d.causes.iter().map(|c| c.field.clone()).collect())
                .unwrap_or_default(),
        ),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn immutable_config_maps_and_secrets_reject_payload_changes_naming_the_field() {
    let cp = ControlPlane::start("immutable-payloads");
    let client = cp.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let frozen: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "frozen"},
        "immutable": true, "data": {"mode": "fast"}}))
    .unwrap();
    cms.create(&PostParams::default(), &frozen).await.unwrap();

    // (merge patch, fields named in the 422, why)
    let cases = [
        (
            json!({"data": {"mode": "slow"}}),
            vec!["data"],
            "data changed",
        ),
        (
            json!({"binaryData": {"blob": "AA=="}}),
            vec!["binaryData"],
            "binaryData added",
        ),
        (
            json!({"immutable": false}),
            vec!["immutable"],
            "immutable unset",
        ),
        (
            json!({"immutable": null, "data": null}),
            vec!["immutable", "data"],
            "both at once",
        ),
    ];
    for (patch, want, why) in cases {
        let err = cms
            .patch("frozen", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_err();
        assert_eq!(
            invalid_fields(&err),
            (422, want.iter().map(|f| (*f).to_owned()).collect()),
            "{why}"
        );
    }
    let labelled = cms
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.data,
        Some(map(&[("mode", "fast")])),
        "metadata may still change"
    );

    let mut sealed = secret("sealed", &[("user", "admin")], &[]);
    sealed.immutable = Some(true);
    secrets
        .create(&PostParams::default(), &sealed)
        .await
        .unwrap();
    let err = secrets
        .patch(
            "sealed",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"user": "root"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid_fields(&err),
        (422, vec!["data".to_owned()]),
        "a change through stringData"
    );
    let same = secrets
        .patch(
            "sealed",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"user": "admin"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        decoded(&same),
        map(&[("user", "admin")]),
        "stringData that changes nothing is accepted"
    );

    // kubectl shows kube-apiserver's message; deletion stays possible.
    let out = cp.kubectl(&[
        "patch",
        "configmap",
        "frozen",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{stderr}"
    );
    cp.kubectl_ok(&["delete", "configmap", "frozen"]);
}
