//! ProviderConfig → AWS SDK configuration. Every source goes through `aws-config`'s loader;
//! `WebIdentity` adds a credentials provider that exchanges the token file with STS at the
//! configured endpoint (the SDK's built-in one reads its STS endpoint only from the process
//! environment, which a ProviderConfig cannot set).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_smithy_http_client::tls;
use strata_provider::{ProviderError, Secrets};

use crate::crd::{CredentialsSource, ProviderConfigSpec};

/// The region the loader starts from; every RDS client overrides it with `forProvider.region`.
const LOADER_REGION: &str = "us-east-1";
/// How long one cloud call may take, retries included, unless the ProviderConfig says otherwise.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every call bounded: connecting, each attempt and the whole call with its retries. The SDK sets
/// only a connect timeout by default, so a stalled endpoint would hold a call forever.
pub(crate) fn timeouts(spec: &ProviderConfigSpec) -> TimeoutConfig {
    let call = spec
        .call_timeout_seconds
        .map(|seconds| Duration::from_secs(u64::from(seconds.max(1))))
        .unwrap_or(DEFAULT_CALL_TIMEOUT);
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(call))
        .operation_attempt_timeout(call)
        .operation_timeout(call)
        .build()
}

/// Builds the SDK configuration for one ProviderConfig.
pub(crate) async fn sdk_config(
    config_name: &str,
    spec: &ProviderConfigSpec,
    secrets: &dyn Secrets,
) -> Result<SdkConfig, ProviderError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let endpoint = spec.endpoint.as_ref().map(|endpoint| endpoint.url.clone());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http.clone())
        .timeout_config(timeouts(spec))
        .region(Region::from_static(LOADER_REGION));
    if let Some(url) = &endpoint {
        loader = loader.endpoint_url(url.clone());
    }
    let target = format!("ProviderConfig {config_name}");
    match spec.credentials.source {
        CredentialsSource::Environment => {}
        CredentialsSource::Secret => {
            let reference = spec.credentials.secret_ref.as_ref().ok_or_else(|| {
                ProviderError::terminal(
                    "read credentials",
                    &target,
                    "spec.credentials.secretRef is required for source Secret",
                )
            })?;
            let data = secrets.get(reference).await?.ok_or_else(|| {
                ProviderError::new(
                    strata_provider::ErrorClass::NotReadyYet,
                    "read credentials",
                    &target,
                    format!(
                        "spec.credentials.secretRef: Secret {}/{} does not exist",
                        reference.namespace, reference.name
                    ),
                )
            })?;
            let key = |name: &str| {
                data.get(name).cloned().ok_or_else(|| {
                    ProviderError::terminal(
                        "read credentials",
                        &target,
                        format!(
                            "spec.credentials.secretRef: Secret {}/{} has no key `{name}`",
                            reference.namespace, reference.name
                        ),
                    )
                })
            };
            let credentials = aws_credential_types::Credentials::new(
                key("aws_access_key_id")?,
                key("aws_secret_access_key")?,
                data.get("aws_session_token").cloned(),
                None,
                "StrataSecret",
            );
            loader = loader.credentials_provider(credentials);
        }
        CredentialsSource::WebIdentity => {
            let web = spec.credentials.web_identity.as_ref().ok_or_else(|| {
                ProviderError::terminal(
                    "read credentials",
                    &target,
                    "spec.credentials.webIdentity is required for source WebIdentity",
                )
            })?;
            let mut sts = aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .http_client(http)
                .timeout_config(timeouts(spec))
                .region(Region::from_static(LOADER_REGION));
            if let Some(url) = &endpoint {
                sts = sts.endpoint_url(url.clone());
            }
            loader = loader.credentials_provider(WebIdentityCredentials {
                sts: aws_sdk_sts::Client::from_conf(sts.build()),
                role_arn: web.role_arn.clone(),
                token_file: PathBuf::from(&web.token_file),
                session_name: web
                    .role_session_name
                    .clone()
                    .unwrap_or_else(|| format!("strata-{config_name}")),
            });
        }
    }
    Ok(loader.load().await)
}

/// AssumeRoleWithWebIdentity with a token file; the SDK's identity cache refreshes before expiry.
#[derive(Debug)]
struct WebIdentityCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    token_file: PathBuf,
    session_name: String,
}

impl WebIdentityCredentials {
    async fn assume_role(&self) -> provider::Result {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|error| {
                CredentialsError::invalid_configuration(format!(
                    "read web identity token file {}: {error}",
                    self.token_file.display()
                ))
            })?;
        let output = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.trim())
            .send()
            .await
            .map_err(|error| {
                CredentialsError::provider_error(format!(
                    "AssumeRoleWithWebIdentity for {}: {}",
                    self.role_arn,
                    aws_sdk_sts::error::DisplayErrorContext(&error)
                ))
            })?;
        let credentials = output.credentials().ok_or_else(|| {
            CredentialsError::unhandled(format!(
                "AssumeRoleWithWebIdentity for {} returned no credentials",
                self.role_arn
            ))
        })?;
        Ok(aws_credential_types::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            SystemTime::try_from(*credentials.expiration()).ok(),
            "StrataWebIdentity",
        ))
    }
}

impl ProvideCredentials for WebIdentityCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.assume_role())
    }
}
