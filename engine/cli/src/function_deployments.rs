//! `runtime: Deployment` in the functions file of `strata run`: on a cluster, Strata runs a
//! Function package itself as a Deployment and a Service with its certificates, as Crossplane's
//! package manager does, so no Crossplane installation is needed.
//!
//! Started from the operator's configuration at start, never from an API object. Per function,
//! in its namespace (default `strata-system`): a CA Secret `strata-function-ca` (kept, so the
//! functions' certificates outlive a restart of Strata), a Secret `FUNCTION-tls` with the
//! server certificate for `FUNCTION.NAMESPACE.svc` in the layout every function SDK reads
//! (`tls.crt`, `tls.key`, `ca.crt`, mounted at `TLS_SERVER_CERTS_DIR`), a Deployment running the
//! package's image with its default `--address :9443`, and a Service on port 9443. Strata dials
//! the Service with a client certificate from the same CA. An object already as desired is not
//! written again.

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use strata_functions::certs::FunctionCa;
use strata_functions::transport::ClientTls;

/// The port Crossplane's functions serve on.
pub const PORT: u16 = 9443;
const CA_SECRET: &str = "strata-function-ca";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn decoded(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Runs `package` as a Deployment + Service named `name` in `namespace`; returns the address
/// to dial and the client certificates.
pub async fn deploy(
    client: &kube::Client,
    name: &str,
    package: &str,
    namespace: &str,
) -> Result<(String, ClientTls)> {
    let what = |w: &str| format!("function {name}: {w}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(namespace)
        .await
        .with_context(|| what("reading its namespace"))?
        .is_none()
    {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
            )
            .await
            .with_context(|| what("creating its namespace"))?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let ca = match secrets
        .get_opt(CA_SECRET)
        .await
        .with_context(|| what("reading the function CA"))?
    {
        Some(s) => {
            let (Some(cert), Some(key)) = (decoded(&s, "tls.crt"), decoded(&s, "tls.key")) else {
                anyhow::bail!(
                    "Secret {namespace}/{CA_SECRET}: tls.crt and tls.key are required (delete it to \
                     make a new CA)"
                );
            };
            FunctionCa::from_pem(&cert, &key).with_context(|| what("reading the function CA"))?
        }
        None => {
            let ca = FunctionCa::new()?;
            let (cert, key) = ca.pem();
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": {"name": CA_SECRET, "labels": labels(CA_SECRET)},
                        "type": "kubernetes.io/tls",
                        "data": {"tls.crt": b64(&cert), "tls.key": b64(&key)},
                    }))?,
                )
                .await
                .with_context(|| what("storing the function CA"))?;
            ca
        }
    };
    let (ca_pem, _) = ca.pem();
    let host = format!("{name}.{namespace}.svc");
    // The server certificate is kept while it is the current CA's.
    let tls_secret = format!("{name}-tls");
    let current = secrets
        .get_opt(&tls_secret)
        .await
        .with_context(|| what("reading its certificates"))?;
    if current
        .as_ref()
        .and_then(|s| decoded(s, "ca.crt"))
        .as_deref()
        != Some(ca_pem.as_str())
    {
        let (cert, key) = ca.server_certificate(&[
            host.clone(),
            format!("{host}.cluster.local"),
            name.to_owned(),
        ])?;
        let desired = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": tls_secret, "namespace": namespace, "labels": labels(name)},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&cert), "tls.key": b64(&key), "ca.crt": b64(&ca_pem)},
        });
        apply(
            client,
            &resource("", "v1", "Secret", "secrets"),
            namespace,
            &desired,
        )
        .await?;
    }
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"strata.dev/function": name}},
            "template": {
                "metadata": {"labels": {"strata.dev/function": name}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true},
                    "containers": [{
                        "name": "function",
                        "image": package,
                        "env": [{"name": "TLS_SERVER_CERTS_DIR", "value": "/tls/server"}],
                        "ports": [{"name": "grpc", "containerPort": PORT}],
                        "readinessProbe": {"tcpSocket": {"port": PORT}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "tls", "mountPath": "/tls/server", "readOnly": true}],
                    }],
                    "volumes": [{"name": "tls", "secret": {"secretName": tls_secret}}],
                },
            },
        },
    });
    apply(
        client,
        &resource("apps", "v1", "Deployment", "deployments"),
        namespace,
        &deployment,
    )
    .await?;
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name)},
        "spec": {
            "selector": {"strata.dev/function": name},
            "ports": [{"name": "grpc", "port": PORT, "targetPort": PORT}],
        },
    });
    apply(
        client,
        &resource("", "v1", "Service", "services"),
        namespace,
        &service,
    )
    .await?;
    let mut tls = ca.client_tls();
    tls.server_name = host.clone();
    Ok((format!("{host}:{PORT}"), tls))
}

fn labels(name: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "strata", "strata.dev/function": name})
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Server-side applies `desired` unless the object already is what Strata last applied.
async fn apply(
    client: &kube::Client,
    ar: &ApiResource,
    namespace: &str,
    desired: &Value,
) -> Result<()> {
    let name = desired
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let what = format!("{} {namespace}/{name}", ar.kind);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let observed = strata_controllers::shared::get_json(&api, name)
        .await
        .with_context(|| format!("reading {what}"))?;
    let (stamped, current) = strata_controllers::shared::plan_apply(desired, observed.as_ref());
    if !current {
        strata_controllers::shared::apply::<serde_json::Value>(&api, name, &stamped, &what)
            .await
            .with_context(|| format!("applying {what}"))?;
    }
    Ok(())
}
