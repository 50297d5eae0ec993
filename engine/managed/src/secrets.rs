//! The Kubernetes side of the core's [`Secrets`] port, and the connection-secret writer. Both
//! read before writing and write only the keys that differ (JSON merge patch: other keys are
//! never removed), creating the Secret when it is missing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use strata_core::provider::{BoxFuture, ErrorClass, ProviderError, SecretReference, Secrets};

/// Secrets read and written through the Kubernetes API.
#[derive(Clone)]
pub struct KubeSecrets {
    client: Client,
}

impl KubeSecrets {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, secret: &SecretReference) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &secret.namespace)
    }

    /// Makes `secret` carry every key of `data`; returns whether anything was written.
    pub async fn ensure_keys(
        &self,
        secret: &SecretReference,
        data: &BTreeMap<String, String>,
    ) -> Result<bool, kube::Error> {
        let api = self.api(secret);
        let existing = api.get_opt(&secret.name).await?;
        let current = existing
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default();
        let missing: BTreeMap<&String, &String> = data
            .iter()
            .filter(|(key, value)| {
                current
                    .get(*key)
                    .is_none_or(|have| have.0 != value.as_bytes())
            })
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        let encoded: BTreeMap<String, ByteString> = missing
            .into_iter()
            .map(|(key, value)| (key.clone(), ByteString(value.as_bytes().to_vec())))
            .collect();
        if existing.is_some() {
            api.patch(
                &secret.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": encoded })),
            )
            .await?;
        } else {
            let created = Secret {
                metadata: ObjectMeta {
                    name: Some(secret.name.clone()),
                    namespace: Some(secret.namespace.clone()),
                    ..Default::default()
                },
                type_: Some("connection.strata.dev/v1alpha1".into()),
                data: Some(encoded),
                ..Default::default()
            };
            api.create(&PostParams::default(), &created).await?;
        }
        Ok(true)
    }
}

fn port_error(operation: &str, secret: &SecretReference, error: kube::Error) -> ProviderError {
    let class = match &error {
        kube::Error::Api(status) if status.code == 403 => ErrorClass::Terminal,
        _ => ErrorClass::Transient,
    };
    ProviderError::new(
        class,
        operation,
        format!("Secret {}/{}", secret.namespace, secret.name),
        error.to_string(),
    )
}

impl Secrets for KubeSecrets {
    fn get<'a>(
        &'a self,
        secret: &'a SecretReference,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, ProviderError>> {
        Box::pin(async move {
            let found = self
                .api(secret)
                .get_opt(&secret.name)
                .await
                .map_err(|e| port_error("read", secret, e))?;
            Ok(found.map(|s| {
                let mut data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
                    .collect();
                data.extend(s.string_data.unwrap_or_default());
                data
            }))
        })
    }

    fn put_key<'a>(
        &'a self,
        secret: &'a SecretReference,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let data = BTreeMap::from([(key.to_owned(), value.to_owned())]);
            self.ensure_keys(secret, &data)
                .await
                .map_err(|e| port_error("write", secret, e))?;
            Ok(())
        })
    }
}
