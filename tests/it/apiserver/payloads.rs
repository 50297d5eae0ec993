//! Secret payloads as kube-apiserver keeps them: `stringData` folded into `data`. Driven by
//! kube-rs and the real kubectl.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
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
