//! The IAM seam and the thin verbs of the Role external client. Each verb converts the spec
//! with [`crate::role`], makes the few IAM calls it needs and classifies failures by error code.
//!
//! IAM is global: one client per ProviderConfig, signed for `us-east-1`, and every role shares
//! the rate-limit scope [`IAM_SCOPE`].

use aws_config::SdkConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use serde_json::Value;
use strata_provider::{BoxFuture, CloudRecord, Created, External, Managed, Present, ProviderError};

use crate::crd::RoleParameters;
use crate::rds::{classify_at, error_code};
use crate::role::{self, ObservedRole};

/// The rate-limit scope of every IAM call: IAM has no regions.
pub(crate) const IAM_SCOPE: &str = "global";

/// IAM's not-found error code.
const NO_SUCH_ENTITY: &str = "NoSuchEntity";

/// A connected Role client.
pub(crate) struct IamExternal {
    api: IamApi,
}

/// An IAM client with what its errors name: the endpoint and the ProviderConfig. Shared by the
/// IAM Role and OpenID Connect provider externals.
pub(crate) struct IamApi {
    config_name: String,
    endpoint: Option<String>,
    pub(crate) client: aws_sdk_iam::Client,
}

impl IamApi {
    pub(crate) fn new(config_name: String, sdk: &SdkConfig) -> Self {
        Self {
            config_name,
            endpoint: sdk.endpoint_url().map(str::to_owned),
            client: aws_sdk_iam::Client::new(sdk),
        }
    }

    /// [`classify_at`]: the IAM endpoint and ProviderConfig are named when IAM was not reached.
    pub(crate) fn classify<E, R>(
        &self,
        operation: &str,
        id: &str,
        error: &SdkError<E, R>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        classify_at(
            "IAM",
            self.endpoint.as_deref(),
            &self.config_name,
            operation,
            id,
            error,
        )
    }
}

impl IamExternal {
    pub(crate) fn new(config_name: String, sdk: &SdkConfig) -> Self {
        Self {
            api: IamApi::new(config_name, sdk),
        }
    }

    /// Every inline policy name of the role, across pages; `None` when the role does not exist.
    async fn inline_policy_names(&self, name: &str) -> Result<Option<Vec<String>>, ProviderError> {
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let result = self
                .api
                .client
                .list_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .await;
            let page = match result {
                Ok(page) => page,
                Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => return Ok(None),
                Err(error) => return Err(self.api.classify("list role policies", name, &error)),
            };
            names.extend(page.policy_names().iter().cloned());
            match page.marker().filter(|_| page.is_truncated()) {
                Some(next) => marker = Some(next.to_owned()),
                None => return Ok(Some(names)),
            }
        }
    }

    /// GetRole plus the inline policies; `None` when the role does not exist.
    async fn describe(&self, name: &str) -> Result<Option<ObservedRole>, ProviderError> {
        let output = match self.api.client.get_role().role_name(name).send().await {
            Ok(output) => output,
            Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => return Ok(None),
            Err(error) => return Err(self.api.classify("get role", name, &error)),
        };
        let Some(found) = output.role() else {
            return Ok(None);
        };
        let mut observed = ObservedRole {
            arn: found.arn().to_owned(),
            role_id: found.role_id().to_owned(),
            path: found.path().to_owned(),
            description: found.description().map(str::to_owned),
            assume_role_policy: found
                .assume_role_policy_document()
                .map(role::decode_policy)
                .unwrap_or(Value::Null),
            tags: found
                .tags()
                .iter()
                .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
                .collect(),
            inline_policies: Default::default(),
        };
        // Deleted between GetRole and the listing: it is not there.
        let Some(policies) = self.inline_policy_names(name).await? else {
            return Ok(None);
        };
        for policy in policies {
            let document = match self
                .api
                .client
                .get_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
            {
                Ok(output) => role::decode_policy(output.policy_document()),
                // Deleted between the listing and this read: it is not there.
                Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => continue,
                Err(error) => return Err(self.api.classify("get role policy", name, &error)),
            };
            observed.inline_policies.insert(policy, document);
        }
        Ok(Some(observed))
    }

    async fn put_policies(
        &self,
        name: &str,
        policies: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ProviderError> {
        for (policy, document) in policies {
            self.api
                .client
                .put_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .policy_document(document)
                .send()
                .await
                .map_err(|error| {
                    self.api
                        .classify(&format!("put role policy {policy}"), name, &error)
                })?;
        }
        Ok(())
    }
}

/// Parses `spec.forProvider`.
pub(crate) fn parameters(managed: &Managed) -> Result<RoleParameters, ProviderError> {
    serde_json::from_value(managed.for_provider.clone()).map_err(|error| {
        ProviderError::terminal(
            "read spec.forProvider",
            managed.name.as_str(),
            error.to_string(),
        )
    })
}

fn invalid(managed: &Managed, error: crate::convert::InvalidParameter) -> ProviderError {
    ProviderError::terminal("validate Role", managed.name.as_str(), error.to_string())
}

fn observed_role<'a>(
    managed: &Managed,
    record: &'a CloudRecord,
) -> Result<&'a ObservedRole, ProviderError> {
    record.get::<ObservedRole>().ok_or_else(|| {
        ProviderError::terminal(
            "assess role",
            managed.external_name.as_str(),
            "the record is not an IAM role",
        )
    })
}

fn tags(tags: &std::collections::BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|error| ProviderError::terminal("build role tags", key, error.to_string()))
        })
        .collect()
}

impl External for IamExternal {
    fn scope(&self, _managed: &Managed) -> String {
        IAM_SCOPE.to_owned()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move {
            Ok(self
                .describe(managed.external_name.as_str())
                .await?
                .map(CloudRecord::new))
        })
    }

    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let observed = observed_role(managed, record)?;
            let drift = role::drift(&params, observed).map_err(|error| invalid(managed, error))?;
            Ok(Present {
                up_to_date: drift.is_empty(),
                late_init: None,
                connection_details: role::connection_details(observed),
                at_provider: serde_json::to_value(observed.at_provider()).unwrap_or(Value::Null),
                ready: true,
            })
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let trust =
                role::desired_trust_policy(&params).map_err(|error| invalid(managed, error))?;
            let policies =
                role::desired_inline_policies(&params).map_err(|error| invalid(managed, error))?;
            let result = self
                .api
                .client
                .create_role()
                .role_name(name)
                .assume_role_policy_document(trust.to_string())
                .set_path(params.path.clone())
                .set_description(params.description.clone())
                .set_tags(params.tags.as_ref().map(tags).transpose()?)
                .send()
                .await;
            match result {
                Ok(_) => {}
                // Role names are unique per account: an existing role under our external name is
                // the one this create is about, and the next observation reconciles it.
                Err(error) if error_code(&error) == Some("EntityAlreadyExists") => {}
                Err(error) => return Err(self.api.classify("create role", name, &error)),
            }
            // Inline policies exist only on an existing role; a failure here leaves the role
            // without them, which the next observation reports as drift.
            self.put_policies(
                name,
                policies
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(policy, document)| (policy, document.to_string())),
            )
            .await?;
            let record = self.describe(name).await?.map(CloudRecord::new);
            Ok(Created {
                connection_details: Default::default(),
                record,
            })
        })
    }

    fn update<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let observed = observed_role(managed, record)?;
            let drift = role::drift(&params, observed).map_err(|error| invalid(managed, error))?;
            if let Some(policy) = &drift.assume_role_policy {
                self.api
                    .client
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(policy)
                    .send()
                    .await
                    .map_err(|error| self.api.classify("update trust policy", name, &error))?;
            }
            if let Some(description) = &drift.description {
                self.api
                    .client
                    .update_role()
                    .role_name(name)
                    .description(description)
                    .send()
                    .await
                    .map_err(|error| self.api.classify("update role description", name, &error))?;
            }
            if !drift.tags_to_add.is_empty() {
                self.api
                    .client
                    .tag_role()
                    .role_name(name)
                    .set_tags(Some(tags(&drift.tags_to_add)?))
                    .send()
                    .await
                    .map_err(|error| self.api.classify("tag role", name, &error))?;
            }
            if !drift.tags_to_remove.is_empty() {
                self.api
                    .client
                    .untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(drift.tags_to_remove.clone()))
                    .send()
                    .await
                    .map_err(|error| self.api.classify("untag role", name, &error))?;
            }
            self.put_policies(name, drift.policies_to_put.clone())
                .await?;
            for policy in &drift.policies_to_delete {
                match self
                    .api
                    .client
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => {}
                    Err(error) => {
                        return Err(self.api.classify(
                            &format!("delete role policy {policy}"),
                            name,
                            &error,
                        ));
                    }
                }
            }
            if !drift.immutable.is_empty() {
                return Err(ProviderError::terminal(
                    "update role",
                    name,
                    format!(
                        "spec.forProvider fields {} differ from IAM but cannot be changed in place",
                        drift.immutable.join(", ")
                    ),
                ));
            }
            Ok(())
        })
    }

    /// IAM refuses to delete a role that still has policies: the inline policies are deleted
    /// and attached managed policies detached first. Instance profiles are left to the user
    /// (DeleteConflict names them).
    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let name = managed.external_name.as_str();
            let Some(policies) = self.inline_policy_names(name).await? else {
                return Ok(());
            };
            for policy in policies {
                match self
                    .api
                    .client
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => {}
                    Err(error) => {
                        return Err(self.api.classify("delete role policy", name, &error));
                    }
                }
            }
            let attached = self
                .api
                .client
                .list_attached_role_policies()
                .role_name(name)
                .send()
                .await;
            let attached = match attached {
                Ok(output) => output.attached_policies().to_vec(),
                Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => return Ok(()),
                Err(error) => {
                    return Err(self
                        .api
                        .classify("list attached role policies", name, &error));
                }
            };
            for policy in attached.iter().filter_map(|policy| policy.policy_arn()) {
                match self
                    .api
                    .client
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(policy)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => {}
                    Err(error) => {
                        return Err(self.api.classify("detach role policy", name, &error));
                    }
                }
            }
            match self.api.client.delete_role().role_name(name).send().await {
                Ok(_) => Ok(()),
                Err(error) if error_code(&error) == Some(NO_SUCH_ENTITY) => Ok(()),
                Err(error) => Err(self.api.classify("delete role", name, &error)),
            }
        })
    }
}
