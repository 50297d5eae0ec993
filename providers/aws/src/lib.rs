//! Strata's AWS provider: `rds.aws.strata.dev/v1alpha1 DBInstance` managed resources and the
//! `aws.strata.dev/v1alpha1 ProviderConfig` that says how to authenticate.
//!
//! [`AwsRdsProvider`] implements the core's [`Provider`] trait: `connect` turns a ProviderConfig
//! into SDK configuration ([`credentials`]); the returned client's verbs ([`rds`]) convert the
//! spec purely ([`convert`]) and make a call or two to RDS.

pub mod convert;
pub mod crd;
pub mod credentials;
pub mod rds;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;
use strata_core::provider::{
    BoxFuture, External, Managed, Provider, ProviderError, RateLimit, RateLimitedVerbs,
    ResourceKind, Secrets,
};

use crate::crd::{DBInstance, ProviderConfig, ProviderConfigSpec};

/// The CRDs this provider serves, for `strata crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![DBInstance::crd(), ProviderConfig::crd()]
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
        ResourceKind {
            group: "aws.strata.dev",
            version: "v1alpha1",
            kind: "ProviderConfig",
            plural: "providerconfigs",
        }
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
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
            let name = provider_config
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned();
            let spec: ProviderConfigSpec =
                serde_json::from_value(provider_config.get("spec").cloned().unwrap_or(Value::Null))
                    .map_err(|error| {
                        ProviderError::terminal(
                            "read ProviderConfig spec",
                            &name,
                            error.to_string(),
                        )
                    })?;
            let sdk = credentials::sdk_config(&name, &spec, secrets.as_ref()).await?;
            Ok(Arc::new(rds::RdsExternal::new(name, sdk, secrets)) as Arc<dyn External>)
        })
    }
}
