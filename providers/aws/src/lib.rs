//! Strata's AWS provider: `rds.aws.strata.dev/v1alpha1 DBInstance`, `iam.aws.strata.dev/v1alpha1
//! Role` and `OpenIDConnectProvider` managed resources and the `aws.strata.dev/v1alpha1
//! ProviderConfig` that says how to authenticate.
//!
//! [`AwsRdsProvider`], [`AwsIamRoleProvider`] and [`AwsIamOidcProvider`] implement the
//! managed-resource contract's [`Provider`] trait: `connect` turns a ProviderConfig into SDK
//! configuration (`credentials`); the returned client's verbs (`rds`, `iam`, `oidc`) convert the
//! spec purely (`convert`, `role`) and make a few calls to RDS or IAM. Only the providers, the
//! kinds ([`crd`]), [`crds`] and [`decode_policy`] are public: the runtime reaches everything
//! else through the trait.

#![warn(missing_docs, unreachable_pub)]

mod convert;
pub mod crd;
mod credentials;
mod iam;
mod oidc;
mod rds;
mod role;

pub use role::decode_policy;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;
use strata_provider::{
    BoxFuture, External, Managed, Provider, ProviderError, RateLimit, RateLimitedVerbs,
    ResourceKind, Secrets,
};

use crate::crd::{DBInstance, OpenIDConnectProvider, ProviderConfig, ProviderConfigSpec, Role};

/// The CRDs this provider serves, for `strata crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        DBInstance::crd(),
        Role::crd(),
        OpenIDConnectProvider::crd(),
        ProviderConfig::crd(),
    ]
}

/// The ProviderConfig kind every AWS managed kind connects with.
fn aws_provider_config_kind() -> ResourceKind {
    ResourceKind {
        group: "aws.strata.dev",
        version: "v1alpha1",
        kind: "ProviderConfig",
        plural: "providerconfigs",
    }
}

/// A ProviderConfig object's name and parsed spec.
fn read_provider_config(
    provider_config: &Value,
) -> Result<(String, ProviderConfigSpec), ProviderError> {
    let name = provider_config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let spec = serde_json::from_value(provider_config.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|error| {
            ProviderError::terminal("read ProviderConfig spec", &name, error.to_string())
        })?;
    Ok((name, spec))
}

/// The RDS DBInstance provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsRdsProvider;

impl Provider for AwsRdsProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: "rds.aws.strata.dev",
            version: "v1alpha1",
            kind: "DBInstance",
            plural: "dbinstances",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        aws_provider_config_kind()
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![DBInstance::crd(), ProviderConfig::crd()]
    }

    /// RDS allows a 300-request burst, then 12 requests per second per account.
    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: 300,
            replenish_every: Duration::from_millis(84),
            verbs: RateLimitedVerbs::All,
        }
    }

    fn validate(&self, managed: &Managed) -> Result<(), ProviderError> {
        let params = rds::parameters(managed)?;
        convert::validate(&params).map_err(|invalid| {
            ProviderError::terminal(
                "validate DBInstance",
                managed.name.as_str(),
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
            let (name, spec) = read_provider_config(provider_config)?;
            let sdk = credentials::sdk_config(&name, &spec, secrets.as_ref()).await?;
            Ok(Arc::new(rds::RdsExternal::new(name, sdk, secrets)) as Arc<dyn External>)
        })
    }
}

/// The IAM Role provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsIamRoleProvider;

impl Provider for AwsIamRoleProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: "iam.aws.strata.dev",
            version: "v1alpha1",
            kind: "Role",
            plural: "roles",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        aws_provider_config_kind()
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![Role::crd(), ProviderConfig::crd()]
    }

    /// IAM publishes no per-account request rate; its control plane is far slower than RDS's,
    /// so every call is held to a modest 10 per second after a burst of 50.
    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: 50,
            replenish_every: Duration::from_millis(100),
            verbs: RateLimitedVerbs::All,
        }
    }

    fn validate(&self, managed: &Managed) -> Result<(), ProviderError> {
        let params = iam::parameters(managed)?;
        role::validate(managed.external_name.as_str(), &params).map_err(|invalid| {
            ProviderError::terminal("validate Role", managed.name.as_str(), invalid.to_string())
        })
    }

    fn connect<'a>(
        &'a self,
        provider_config: &'a Value,
        secrets: Arc<dyn Secrets>,
    ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>> {
        Box::pin(async move {
            let (name, spec) = read_provider_config(provider_config)?;
            let sdk = credentials::sdk_config(&name, &spec, secrets.as_ref()).await?;
            Ok(Arc::new(iam::IamExternal::new(name, &sdk)) as Arc<dyn External>)
        })
    }
}

/// The IAM OpenIDConnectProvider provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsIamOidcProvider;

impl Provider for AwsIamOidcProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: "iam.aws.strata.dev",
            version: "v1alpha1",
            kind: "OpenIDConnectProvider",
            plural: "openidconnectproviders",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        aws_provider_config_kind()
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![OpenIDConnectProvider::crd(), ProviderConfig::crd()]
    }

    /// The same modest IAM budget as roles.
    fn rate_limit(&self) -> RateLimit {
        AwsIamRoleProvider.rate_limit()
    }

    fn validate(&self, managed: &Managed) -> Result<(), ProviderError> {
        let params = oidc::parameters(managed)?;
        oidc::validate(&params).map_err(|invalid| {
            ProviderError::terminal(
                "validate OpenIDConnectProvider",
                managed.name.as_str(),
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
            let (name, spec) = read_provider_config(provider_config)?;
            let sdk = credentials::sdk_config(&name, &spec, secrets.as_ref()).await?;
            Ok(Arc::new(oidc::OidcExternal::new(name, &sdk)) as Arc<dyn External>)
        })
    }
}
