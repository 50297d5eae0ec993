//! The Kubernetes side of the core's [`Secrets`] port, and the connection-secret writer. Both
//! read before writing and write only the keys that differ (JSON merge patch: other keys are
//! never removed), creating the Secret when it is missing. The connection-secret writer also
//! makes the managed resource an owner of the Secret, so it is deleted with it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use strata_provider::{BoxFuture, ErrorClass, ProviderError, SecretReference, Secrets};

/// Secrets read and written through the Kubernetes API.
#[derive(Clone)]
pub(crate) struct KubeSecrets {
    client: Client,
}

impl KubeSecrets {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, secret: &SecretReference) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &secret.namespace)
    }

    /// Makes `secret` carry every key of `data` and, when given, `owner` among its owner
    /// references (other owners are kept); returns whether anything was written.
    pub(crate) async fn ensure_keys(
        &self,
        secret: &SecretReference,
        data: &BTreeMap<String, String>,
        owner: Option<&OwnerReference>,
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
        let current_owners = existing
            .as_ref()
            .and_then(|s| s.metadata.owner_references.clone())
            .unwrap_or_default();
        // A merge patch replaces the whole list, so the new list keeps every existing owner.
        let owners = owner
            .filter(|owner| !current_owners.iter().any(|have| have.uid == owner.uid))
            .map(|owner| {
                let mut owners = current_owners.clone();
                owners.push(owner.clone());
                owners
            });
        if missing.is_empty() && (existing.is_none() || owners.is_none()) {
            return Ok(false);
        }
        let encoded: BTreeMap<String, ByteString> = missing
            .into_iter()
            .map(|(key, value)| (key.clone(), ByteString(value.as_bytes().to_vec())))
            .collect();
        if existing.is_some() {
            let mut patch = json!({});
            if !encoded.is_empty() {
                patch["data"] = json!(encoded);
            }
            if let Some(owners) = &owners {
                patch["metadata"] = json!({ "ownerReferences": owners });
            }
            api.patch(&secret.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        } else {
            let created = Secret {
                metadata: ObjectMeta {
                    name: Some(secret.name.clone()),
                    namespace: Some(secret.namespace.clone()),
                    owner_references: owner.map(|owner| vec![owner.clone()]),
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
            self.ensure_keys(secret, &data, None)
                .await
                .map_err(|e| port_error("write", secret, e))?;
            Ok(())
        })
    }
}
