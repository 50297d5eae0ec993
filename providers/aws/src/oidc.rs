//! The IAM OpenIDConnectProvider: the pure part (validation, drift, the ARN suffix that
//! identifies a provider by its URL) and the thin verbs over IAM.
//!
//! A provider's ARN holds the account id, which the spec does not know, so a provider is found by
//! its URL: IAM allows one per URL and account, and its ARN ends in `:oidc-provider/HOST/PATH`.
//! Once observed, `status.atProvider.arn` names it directly.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_iam::types::Tag;
use serde_json::Value;
use strata_provider::{
    BoxFuture, CloudRecord, ConnectionDetails, Created, External, Managed, Present, ProviderError,
};

use crate::convert::InvalidParameter;
use crate::crd::{OpenIDConnectProviderObservation, OpenIDConnectProviderParameters};
use crate::iam::IAM_SCOPE;
use crate::rds::error_code;
use crate::role::DEFAULT_AUDIENCE;

/// The connection-detail key of the provider's ARN.
pub(crate) const OIDC_PROVIDER_ARN_KEY: &str = "oidcProviderArn";

/// What IAM holds for one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ObservedOidcProvider {
    pub(crate) arn: String,
    /// `HOST/PATH`, as IAM reports it (without `https://`).
    pub(crate) url: String,
    /// Sorted.
    pub(crate) client_ids: Vec<String>,
    /// Sorted, lower case.
    pub(crate) thumbprints: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

/// What differs between the spec and IAM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OidcDrift {
    pub(crate) client_ids_to_add: Vec<String>,
    pub(crate) client_ids_to_remove: Vec<String>,
    /// The whole list to set, when it differs.
    pub(crate) thumbprints: Option<Vec<String>>,
    pub(crate) tags_to_add: BTreeMap<String, String>,
    pub(crate) tags_to_remove: Vec<String>,
    pub(crate) immutable: Vec<&'static str>,
}

impl OidcDrift {
    pub(crate) fn is_empty(&self) -> bool {
        *self == OidcDrift::default()
    }
}

/// `HOST/PATH` of an `https://` issuer URL: how IAM names the provider.
pub(crate) fn issuer_host_path(url: &str) -> Option<&str> {
    url.strip_prefix("https://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|rest| !rest.is_empty() && !rest.contains(['?', '#']))
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

/// The audiences the spec asks for.
pub(crate) fn desired_client_ids(params: &OpenIDConnectProviderParameters) -> Vec<String> {
    sorted(
        params
            .client_id_list
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]),
    )
}

/// Rejects what IAM would reject, before any call.
pub(crate) fn validate(params: &OpenIDConnectProviderParameters) -> Result<(), InvalidParameter> {
    if issuer_host_path(&params.url).is_none() {
        return Err(InvalidParameter {
            field: "url",
            problem: format!(
                "`{}` is not an https:// issuer URL without query or fragment",
                params.url
            ),
        });
    }
    if desired_client_ids(params).is_empty() {
        return Err(InvalidParameter {
            field: "clientIDList",
            problem: "needs at least one audience".into(),
        });
    }
    if let Some(bad) = params.thumbprint_list.iter().flatten().find(|thumbprint| {
        thumbprint.len() != 40 || !thumbprint.bytes().all(|b| b.is_ascii_hexdigit())
    }) {
        return Err(InvalidParameter {
            field: "thumbprintList",
            problem: format!("`{bad}` is not a SHA-1 fingerprint (40 hex digits)"),
        });
    }
    Ok(())
}

/// Compares what the spec sets.
pub(crate) fn drift(
    params: &OpenIDConnectProviderParameters,
    observed: &ObservedOidcProvider,
) -> OidcDrift {
    let mut drift = OidcDrift::default();
    if issuer_host_path(&params.url) != Some(observed.url.trim_start_matches("https://")) {
        drift.immutable.push("url");
    }
    let wanted = desired_client_ids(params);
    drift.client_ids_to_add = wanted
        .iter()
        .filter(|id| !observed.client_ids.contains(id))
        .cloned()
        .collect();
    drift.client_ids_to_remove = observed
        .client_ids
        .iter()
        .filter(|id| !wanted.contains(id))
        .cloned()
        .collect();
    if let Some(thumbprints) = &params.thumbprint_list {
        let wanted = sorted(thumbprints.iter().map(|t| t.to_ascii_lowercase()).collect());
        if wanted != observed.thumbprints {
            drift.thumbprints = Some(wanted);
        }
    }
    if let Some(tags) = &params.tags {
        drift.tags_to_add = tags
            .iter()
            .filter(|(key, value)| observed.tags.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        drift.tags_to_remove = observed
            .tags
            .keys()
            .filter(|key| !tags.contains_key(*key))
            .cloned()
            .collect();
    }
    drift
}

// ---------------------------------------------------------------------------------------------
// The verbs
// ---------------------------------------------------------------------------------------------

/// A connected OpenIDConnectProvider client.
pub(crate) struct OidcExternal {
    api: crate::iam::IamApi,
}

/// Parses `spec.forProvider`.
pub(crate) fn parameters(
    managed: &Managed,
) -> Result<OpenIDConnectProviderParameters, ProviderError> {
    serde_json::from_value(managed.for_provider.clone()).map_err(|error| {
        ProviderError::terminal(
            "read spec.forProvider",
            managed.name.as_str(),
            error.to_string(),
        )
    })
}

fn tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|error| {
                    ProviderError::terminal("build OIDC provider tags", key, error.to_string())
                })
        })
        .collect()
}

impl OidcExternal {
    pub(crate) fn new(config_name: String, sdk: &SdkConfig) -> Self {
        Self {
            api: crate::iam::IamApi::new(config_name, sdk),
        }
    }

    /// The ARN of the provider: the one recorded in `status.atProvider`, else the listed one
    /// whose ARN ends in this URL's `HOST/PATH`.
    async fn find(
        &self,
        managed: &Managed,
        host_path: &str,
    ) -> Result<Option<String>, ProviderError> {
        if let Some(arn) = managed.at_provider.get("arn").and_then(Value::as_str) {
            return Ok(Some(arn.to_owned()));
        }
        let listed = self
            .api
            .client
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|error| self.api.classify("list OIDC providers", host_path, &error))?;
        let suffix = format!(":oidc-provider/{host_path}");
        Ok(listed
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|entry| entry.arn())
            .find(|arn| arn.ends_with(&suffix))
            .map(str::to_owned))
    }

    async fn describe(&self, arn: &str) -> Result<Option<ObservedOidcProvider>, ProviderError> {
        let output = match self
            .api
            .client
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if error_code(&error) == Some("NoSuchEntity") => return Ok(None),
            Err(error) => return Err(self.api.classify("get OIDC provider", arn, &error)),
        };
        Ok(Some(ObservedOidcProvider {
            arn: arn.to_owned(),
            url: output.url().unwrap_or_default().to_owned(),
            client_ids: sorted(output.client_id_list().to_vec()),
            thumbprints: sorted(
                output
                    .thumbprint_list()
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect(),
            ),
            tags: output
                .tags()
                .iter()
                .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
                .collect(),
        }))
    }

    async fn read_provider(
        &self,
        managed: &Managed,
    ) -> Result<Option<ObservedOidcProvider>, ProviderError> {
        let params = parameters(managed)?;
        let host_path = issuer_host_path(&params.url)
            .unwrap_or(&params.url)
            .to_owned();
        match self.find(managed, &host_path).await? {
            Some(arn) => self.describe(&arn).await,
            None => Ok(None),
        }
    }
}

fn observed<'a>(
    managed: &Managed,
    record: &'a CloudRecord,
) -> Result<&'a ObservedOidcProvider, ProviderError> {
    record.get::<ObservedOidcProvider>().ok_or_else(|| {
        ProviderError::terminal(
            "assess OIDC provider",
            managed.name.as_str(),
            "the record is not an IAM OIDC provider",
        )
    })
}

impl External for OidcExternal {
    fn scope(&self, _managed: &Managed) -> String {
        IAM_SCOPE.to_owned()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move { Ok(self.read_provider(managed).await?.map(CloudRecord::new)) })
    }

    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let observed = observed(managed, record)?;
            Ok(Present {
                up_to_date: drift(&params, observed).is_empty(),
                late_init: None,
                connection_details: ConnectionDetails::from([(
                    OIDC_PROVIDER_ARN_KEY.to_owned(),
                    observed.arn.clone(),
                )]),
                at_provider: serde_json::to_value(OpenIDConnectProviderObservation {
                    arn: observed.arn.clone(),
                })
                .unwrap_or(Value::Null),
                ready: true,
            })
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let result = self
                .api
                .client
                .create_open_id_connect_provider()
                .url(params.url.trim_end_matches('/'))
                .set_client_id_list(Some(desired_client_ids(&params)))
                .set_thumbprint_list(params.thumbprint_list.clone())
                .set_tags(params.tags.as_ref().map(tags).transpose()?)
                .send()
                .await;
            match result {
                Ok(_) => {}
                // One provider per URL and account: the existing one is this one.
                Err(error) if error_code(&error) == Some("EntityAlreadyExists") => {}
                Err(error) => {
                    return Err(self
                        .api
                        .classify("create OIDC provider", &params.url, &error));
                }
            }
            Ok(Created {
                connection_details: Default::default(),
                record: self.read_provider(managed).await?.map(CloudRecord::new),
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
            let observed = observed(managed, record)?;
            let arn = observed.arn.as_str();
            let drift = drift(&params, observed);
            for id in &drift.client_ids_to_add {
                self.api
                    .client
                    .add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .client_id(id)
                    .send()
                    .await
                    .map_err(|error| {
                        self.api.classify("add OIDC provider audience", arn, &error)
                    })?;
            }
            for id in &drift.client_ids_to_remove {
                self.api
                    .client
                    .remove_client_id_from_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .client_id(id)
                    .send()
                    .await
                    .map_err(|error| {
                        self.api
                            .classify("remove OIDC provider audience", arn, &error)
                    })?;
            }
            if let Some(thumbprints) = &drift.thumbprints {
                self.api
                    .client
                    .update_open_id_connect_provider_thumbprint()
                    .open_id_connect_provider_arn(arn)
                    .set_thumbprint_list(Some(thumbprints.clone()))
                    .send()
                    .await
                    .map_err(|error| {
                        self.api
                            .classify("update OIDC provider thumbprints", arn, &error)
                    })?;
            }
            if !drift.tags_to_add.is_empty() {
                self.api
                    .client
                    .tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .set_tags(Some(tags(&drift.tags_to_add)?))
                    .send()
                    .await
                    .map_err(|error| self.api.classify("tag OIDC provider", arn, &error))?;
            }
            if !drift.tags_to_remove.is_empty() {
                self.api
                    .client
                    .untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .set_tag_keys(Some(drift.tags_to_remove.clone()))
                    .send()
                    .await
                    .map_err(|error| self.api.classify("untag OIDC provider", arn, &error))?;
            }
            if !drift.immutable.is_empty() {
                return Err(ProviderError::terminal(
                    "update OIDC provider",
                    arn,
                    format!(
                        "spec.forProvider fields {} differ from IAM but cannot be changed in place",
                        drift.immutable.join(", ")
                    ),
                ));
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let host_path = issuer_host_path(&params.url)
                .unwrap_or(&params.url)
                .to_owned();
            let Some(arn) = self.find(managed, &host_path).await? else {
                return Ok(());
            };
            match self
                .api
                .client
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(error) if error_code(&error) == Some("NoSuchEntity") => Ok(()),
                Err(error) => Err(self.api.classify("delete OIDC provider", &arn, &error)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> OpenIDConnectProviderParameters {
        OpenIDConnectProviderParameters {
            url: "https://oidc.example.com/cluster".into(),
            client_id_list: None,
            thumbprint_list: Some(vec!["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280".into()]),
            tags: None,
        }
    }

    fn observed() -> ObservedOidcProvider {
        ObservedOidcProvider {
            arn: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/cluster".into(),
            url: "oidc.example.com/cluster".into(),
            client_ids: vec!["sts.amazonaws.com".into()],
            thumbprints: vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".into()],
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_matching_provider_has_no_drift_whatever_the_thumbprint_case() {
        assert_eq!(drift(&params(), &observed()), OidcDrift::default());
    }

    #[test]
    fn audiences_are_reconciled_to_exactly_the_spec_and_the_url_is_immutable() {
        let mut wanted = params();
        wanted.client_id_list = Some(vec!["vault".into()]);
        wanted.url = "https://other.example.com".into();
        let found = drift(&wanted, &observed());
        assert_eq!(found.client_ids_to_add, vec!["vault".to_owned()]);
        assert_eq!(
            found.client_ids_to_remove,
            vec!["sts.amazonaws.com".to_owned()]
        );
        assert_eq!(found.immutable, vec!["url"]);
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(validate(&params()), Ok(()));
        let mut http = params();
        http.url = "http://oidc.example.com".into();
        assert_eq!(validate(&http).unwrap_err().field, "url");
        let mut short = params();
        short.thumbprint_list = Some(vec!["abc".into()]);
        assert_eq!(validate(&short).unwrap_err().field, "thumbprintList");
        let mut empty = params();
        empty.client_id_list = Some(vec![]);
        assert_eq!(validate(&empty).unwrap_err().field, "clientIDList");
    }
}
