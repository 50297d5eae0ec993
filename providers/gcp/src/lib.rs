//! Strata's Google Cloud provider: `storage.gcp.strata.dev/v1alpha1 Bucket` and
//! `BucketIAMMember` managed resources and the `gcp.strata.dev/v1alpha1 ProviderConfig` that
//! says how to authenticate.
//!
//! [`GcsBucketProvider`] and [`GcsBucketIamMemberProvider`] implement the managed-resource
//! contract's [`Provider`] trait over the Cloud Storage JSON API (`gcloud-storage`): `connect`
//! turns a ProviderConfig into a client; the verbs (`storage`, `bucket_iam`) convert the spec
//! purely (`convert`, `iam_member`) and make a call or two each. Only the providers, the kinds
//! ([`crd`]) and [`crds`] are public: the runtime reaches everything else through the trait.

#![warn(missing_docs, unreachable_pub)]

mod bucket_iam;
mod convert;
pub mod crd;
mod iam_member;
mod spacing;
mod storage;

use std::sync::Arc;
use std::time::Duration;

use gcloud_storage::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_storage::client::{Client, ClientConfig};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;
use strata_provider::{
    BoxFuture, ErrorClass, External, Provider, ProviderError, RateLimit, RateLimitedVerbs,
    ResourceKind, Secrets,
};

use crate::crd::{Bucket, BucketIAMMember, CredentialsSource, ProviderConfig, ProviderConfigSpec};

/// The public Cloud Storage endpoint.
const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// Google's token exchange endpoint for workload identity federation.
const STS_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
/// How long one Cloud Storage call may take unless the ProviderConfig says otherwise.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The CRDs this provider serves, for `strata crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Bucket::crd(), BucketIAMMember::crd(), ProviderConfig::crd()]
}

/// The ProviderConfig kind every Google Cloud managed kind connects with.
fn gcp_provider_config_kind() -> ResourceKind {
    ResourceKind {
        group: "gcp.strata.dev",
        version: "v1alpha1",
        kind: "ProviderConfig",
        plural: "providerconfigs",
    }
}

/// A connected ProviderConfig: its name, endpoint, SDK client configuration and JSON API.
struct Connection {
    name: String,
    endpoint: String,
    config: ClientConfig,
    api: storage::JsonApi,
}

/// Turns a ProviderConfig object into credentials, an endpoint and the JSON API client.
async fn connect_config(
    provider_config: &Value,
    secrets: &dyn Secrets,
) -> Result<Connection, ProviderError> {
    // reqwest is built without a bundled crypto provider; ring is the workspace's choice.
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let name = provider_config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let spec: ProviderConfigSpec =
        serde_json::from_value(provider_config.get("spec").cloned().unwrap_or(Value::Null))
            .map_err(|error| {
                ProviderError::terminal("read ProviderConfig spec", &name, error.to_string())
            })?;
    let mut config = client_config(&name, &spec, secrets).await?;
    let endpoint = config.storage_endpoint.clone();
    let target = format!("ProviderConfig {name}");
    let url = reqwest::Url::parse(&endpoint).map_err(|error| {
        ProviderError::terminal(
            "read spec.endpoint",
            &target,
            format!("`{endpoint}` is not a URL: {error}"),
        )
    })?;
    let call_timeout = spec
        .call_timeout_seconds
        .map(|seconds| Duration::from_secs(u64::from(seconds.max(1))))
        .unwrap_or(HTTP_TIMEOUT);
    let http = reqwest::Client::builder()
        .timeout(call_timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(call_timeout))
        .build()
        .map_err(|error| {
            ProviderError::new(
                ErrorClass::Transient,
                "build the HTTP client",
                &target,
                error.to_string(),
            )
        })?;
    // The SDK client and the JSON API share one token source, so one cached token.
    let token_source = config
        .token_source_provider
        .as_ref()
        .map(|provider| provider.token_source());
    // The SDK's insert and delete use the same bounded client; its default has no timeout.
    config.http = Some(reqwest_middleware::ClientWithMiddleware::from(http.clone()));
    let api = storage::JsonApi::new(http, url, token_source);
    Ok(Connection {
        name,
        endpoint,
        config,
        api,
    })
}

/// The Cloud Storage Bucket provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcsBucketProvider;

impl Provider for GcsBucketProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: "storage.gcp.strata.dev",
            version: "v1alpha1",
            kind: "Bucket",
            plural: "buckets",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        gcp_provider_config_kind()
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![Bucket::crd(), ProviderConfig::crd()]
    }

    /// GCS allows about one bucket create or delete every two seconds per project.
    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: 1,
            replenish_every: Duration::from_secs(2),
            verbs: RateLimitedVerbs::CreateAndDelete,
        }
    }

    fn connect<'a>(
        &'a self,
        provider_config: &'a Value,
        secrets: Arc<dyn Secrets>,
    ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>> {
        Box::pin(async move {
            let connection = connect_config(provider_config, secrets.as_ref()).await?;
            Ok(Arc::new(storage::BucketExternal::new(
                connection.name,
                connection.endpoint,
                Client::new(connection.config),
                connection.api,
            )) as Arc<dyn External>)
        })
    }
}

/// The BucketIAMMember provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcsBucketIamMemberProvider;

impl Provider for GcsBucketIamMemberProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: "storage.gcp.strata.dev",
            version: "v1alpha1",
            kind: "BucketIAMMember",
            plural: "bucketiammembers",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        gcp_provider_config_kind()
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![BucketIAMMember::crd(), ProviderConfig::crd()]
    }

    /// A bucket's metadata, its IAM policy included, takes about one write per second; reads
    /// are not limited.
    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: 1,
            replenish_every: Duration::from_secs(1),
            verbs: RateLimitedVerbs::CreateAndDelete,
        }
    }

    fn validate(&self, managed: &strata_provider::Managed) -> Result<(), ProviderError> {
        let params: crd::BucketIAMMemberParameters =
            serde_json::from_value(managed.for_provider.clone()).map_err(|error| {
                ProviderError::terminal("read spec.forProvider", &managed.name, error.to_string())
            })?;
        iam_member::desired(&params).map(|_| ()).map_err(|invalid| {
            ProviderError::terminal(
                "validate BucketIAMMember",
                &managed.name,
                invalid.to_string(),
            )
        })
    }

    fn connect<'a>(
        &'a self,
        provider_config: &'a Value,
        secrets: Arc<dyn Secrets>,
    ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>> {
        Box::pin(async move {
            let connection = connect_config(provider_config, secrets.as_ref()).await?;
            Ok(Arc::new(bucket_iam::BucketIamExternal::new(connection.api)) as Arc<dyn External>)
        })
    }
}

async fn client_config(
    name: &str,
    spec: &ProviderConfigSpec,
    secrets: &dyn Secrets,
) -> Result<ClientConfig, ProviderError> {
    let target = format!("ProviderConfig {name}");
    let auth_error = |error: gcloud_storage::client::google_cloud_auth::error::Error| {
        ProviderError::new(
            ErrorClass::Transient,
            "authenticate",
            &target,
            error.to_string(),
        )
    };
    let mut config = ClientConfig::default();
    config = match spec.credentials.source {
        CredentialsSource::Anonymous => config.anonymous(),
        CredentialsSource::InjectedIdentity => config.with_auth().await.map_err(auth_error)?,
        CredentialsSource::Secret => {
            let selector = spec.credentials.secret_ref.as_ref().ok_or_else(|| {
                ProviderError::terminal(
                    "read credentials",
                    &target,
                    "spec.credentials.secretRef is required for source Secret",
                )
            })?;
            let key_json = secrets
                .get(&selector.secret())
                .await?
                .and_then(|mut data| data.remove(&selector.key))
                .ok_or_else(|| {
                    ProviderError::new(
                        ErrorClass::NotReadyYet,
                        "read credentials",
                        &target,
                        format!(
                            "Secret {}/{} has no key `{}`",
                            selector.namespace, selector.name, selector.key
                        ),
                    )
                })?;
            let file = CredentialsFile::new_from_str(&key_json)
                .await
                .map_err(|error| {
                    ProviderError::terminal(
                        "read credentials",
                        &target,
                        format!("service-account key JSON: {error}"),
                    )
                })?;
            config.with_credentials(file).await.map_err(auth_error)?
        }
        CredentialsSource::WorkloadIdentityFederation => {
            let workload = spec.credentials.workload_identity.as_ref().ok_or_else(|| {
                ProviderError::terminal(
                    "read credentials",
                    &target,
                    "spec.credentials.workloadIdentity is required for source WorkloadIdentityFederation",
                )
            })?;
            let mut external_account = serde_json::json!({
                "type": "external_account",
                "audience": workload.audience,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": workload.token_url.as_deref().unwrap_or(STS_TOKEN_URL),
                "credential_source": { "file": workload.token_file },
            });
            if let Some(email) = &workload.service_account_email {
                external_account["service_account_impersonation_url"] = Value::from(format!(
                    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
                ));
            }
            let file = CredentialsFile::new_from_str(&external_account.to_string())
                .await
                .map_err(|error| {
                    ProviderError::terminal(
                        "read credentials",
                        &target,
                        format!("external account: {error}"),
                    )
                })?;
            config.with_credentials(file).await.map_err(auth_error)?
        }
    };
    config.storage_endpoint = spec
        .endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_crds_are_what_the_types_generate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
        for (name, generated) in strata_core::crd::crd_files(&crds()).unwrap() {
            let path = dir.join(&name);
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                checked_in == generated,
                "crds/{name} is stale; run `cargo run -- crds`"
            );
        }
    }
}
