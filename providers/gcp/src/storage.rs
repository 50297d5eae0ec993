//! The Cloud Storage seam and the thin verbs of the Bucket external client. Each verb converts
//! the spec with [`crate::convert`], makes one call and classifies failures by HTTP status.
//!
//! Inserts and deletes go through `gcloud-storage`. Reads and updates go through [`JsonApi`],
//! with the same credentials: the SDK's patch type serializes every field it does not set as
//! `null`, and a `null` in a PATCH clears that setting, so it would wipe CORS, website, logging
//! and every other setting Strata does not manage; and its bucket type rejects some valid
//! settings Strata does not manage, so a read of such a bucket would fail.

use std::fmt::Display;
use std::sync::Arc;

use gcloud_storage::client::Client;
use gcloud_storage::http::Error as GcsError;
use gcloud_storage::http::buckets::delete::DeleteBucketRequest;
use gcloud_storage::http::buckets::insert::{InsertBucketParam, InsertBucketRequest};
use reqwest::Url;
use serde_json::Value;
use strata_core::provider::{
    BoxFuture, Created, ErrorClass, External, Managed, Observation, Present, ProviderError,
};
use token_source::TokenSource;

use crate::convert::{self, ObservedBucket};
use crate::crd::BucketParameters;
use crate::spacing::UpdateSpacing;

const GET: &str = "get bucket";
const CREATE: &str = "create bucket";
const UPDATE: &str = "update bucket";
const DELETE: &str = "delete bucket";

/// The Cloud Storage JSON API over HTTP with the provider's credentials, for the calls the SDK
/// cannot make faithfully.
pub struct JsonApi {
    http: reqwest::Client,
    endpoint: Url,
    token_source: Option<Arc<dyn TokenSource>>,
}

impl JsonApi {
    /// `endpoint` is the scheme, host and port (and an optional path prefix) of the API;
    /// `token_source` is `None` for anonymous access.
    pub fn new(
        http: reqwest::Client,
        endpoint: Url,
        token_source: Option<Arc<dyn TokenSource>>,
    ) -> Self {
        Self {
            http,
            endpoint,
            token_source,
        }
    }

    /// `ENDPOINT/storage/v1/b/NAME`, the bucket's resource.
    fn bucket_url(&self, operation: &'static str, name: &str) -> Result<Url, ProviderError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ProviderError::terminal(
                    operation,
                    name,
                    format!("the endpoint {} cannot carry a path", self.endpoint),
                )
            })?
            .pop_if_empty()
            .extend(["storage", "v1", "b", name]);
        Ok(url)
    }

    /// Sends `request` with the provider's credentials; any HTTP status is returned.
    async fn send(
        &self,
        operation: &'static str,
        name: &str,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        if let Some(token_source) = &self.token_source {
            // The error names what failed, never the token.
            let authorization = token_source.token().await.map_err(|error| {
                ProviderError::new(
                    ErrorClass::Transient,
                    operation,
                    name,
                    format!("get an access token: {error}"),
                )
            })?;
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        request
            .send()
            .await
            .map_err(|error| classify(operation, name, error.status().map(|s| s.as_u16()), error))
    }

    /// `GET /storage/v1/b/NAME` as JSON, or `None` when there is no such bucket. The bucket is
    /// read as plain JSON because the SDK's bucket type rejects valid settings Strata does not
    /// manage (a CORS entry without `responseHeader`, say).
    pub async fn get_bucket(&self, name: &str) -> Result<Option<Value>, ProviderError> {
        let url = self.bucket_url(GET, name)?;
        let response = self.send(GET, name, self.http.get(url)).await?;
        match response.status().as_u16() {
            404 => Ok(None),
            code if (200..300).contains(&code) => response
                .json()
                .await
                .map(Some)
                .map_err(|error| classify(GET, name, None, error)),
            code => Err(failure(GET, name, code, response).await),
        }
    }

    /// `PATCH /storage/v1/b/NAME` with exactly `body`, only if the bucket is still at
    /// `metageneration` (`0`: unconditionally).
    pub async fn patch_bucket(
        &self,
        name: &str,
        metageneration: i64,
        body: &Value,
    ) -> Result<(), ProviderError> {
        let mut url = self.bucket_url(UPDATE, name)?;
        // GCS always reports a metageneration; a bucket read without one is patched as is.
        if metageneration > 0 {
            url.query_pairs_mut()
                .append_pair("ifMetagenerationMatch", &metageneration.to_string());
        }
        let response = self
            .send(UPDATE, name, self.http.patch(url).json(body))
            .await?;
        let code = response.status().as_u16();
        if (200..300).contains(&code) {
            return Ok(());
        }
        Err(failure(UPDATE, name, code, response).await)
    }
}

/// The classified error of a JSON API response that is not a success.
async fn failure(
    operation: &'static str,
    name: &str,
    code: u16,
    response: reqwest::Response,
) -> ProviderError {
    let text = response.text().await.unwrap_or_default();
    classify(operation, name, Some(code), api_message(&text))
}

/// The `error.message` of a JSON API error body, or the body itself.
fn api_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().chars().take(500).collect())
}

/// A connected Bucket client.
pub struct BucketExternal {
    config_name: String,
    endpoint: String,
    client: Client,
    api: JsonApi,
    updates: UpdateSpacing,
}

impl BucketExternal {
    pub fn new(config_name: String, endpoint: String, client: Client, api: JsonApi) -> Self {
        Self {
            config_name,
            endpoint,
            client,
            api,
            updates: UpdateSpacing::default(),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ObservedBucket>, ProviderError> {
        let Some(bucket) = self.api.get_bucket(name).await? else {
            return Ok(None);
        };
        convert::observed_bucket(&bucket)
            .map(Some)
            .map_err(|message| ProviderError::terminal(GET, name, message))
    }
}

fn parameters(managed: &Managed) -> Result<BucketParameters, ProviderError> {
    serde_json::from_value(managed.for_provider.clone()).map_err(|error| {
        ProviderError::terminal(
            "read spec.forProvider",
            managed.name.as_str(),
            error.to_string(),
        )
    })
}

fn status(error: &GcsError) -> Option<u16> {
    match error {
        GcsError::Response(response) => Some(response.code),
        GcsError::HttpClient(error) | GcsError::RawResponse(error, _) => {
            error.status().map(|status| status.as_u16())
        }
        _ => None,
    }
}

/// Classifies a failure by HTTP status: 429 throttled; 408, 5xx, no status at all (transport,
/// credentials) and a 412 on update (the bucket changed since it was read) transient; the rest
/// terminal.
fn classify(
    operation: &'static str,
    name: &str,
    status: Option<u16>,
    detail: impl Display,
) -> ProviderError {
    let class = match status {
        Some(429) => ErrorClass::Throttled,
        Some(408 | 500..=599) | None => ErrorClass::Transient,
        Some(412) if operation == UPDATE => ErrorClass::Transient,
        Some(_) => ErrorClass::Terminal,
    };
    let message = match (operation, status) {
        (CREATE, Some(409)) => format!(
            "409 Conflict: a bucket with this name already exists and bucket names are global; \
             choose another name, or adopt your own bucket by setting strata.dev/external-name ({detail})"
        ),
        (DELETE, Some(code @ (409 | 412))) => format!(
            "{code}: the bucket is not empty; delete its objects first or set \
             spec.deletionPolicy: Orphan ({detail})"
        ),
        (UPDATE, Some(412)) => format!(
            "412 Precondition Failed: the bucket changed since it was read; it is read again \
             and updated on the next attempt ({detail})"
        ),
        (_, Some(code)) => format!("{code}: {detail}"),
        (_, None) => detail.to_string(),
    };
    ProviderError::new(class, operation, name, message)
}

impl External for BucketExternal {
    fn rate_key(&self) -> String {
        format!("gcp/{}", self.config_name)
    }

    fn observe<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Observation, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let Some(observed) = self.get(name).await? else {
                return Ok(Observation::Absent);
            };
            let at_provider = convert::at_provider(name, &self.endpoint, &observed);
            Ok(Observation::Present(Present {
                up_to_date: convert::drift(&params, &observed).is_empty(),
                late_init: convert::late_init(&params, &observed),
                connection_details: [
                    ("bucket".to_owned(), name.to_owned()),
                    ("url".to_owned(), at_provider.url.clone()),
                    ("project".to_owned(), params.project.clone()),
                ]
                .into(),
                at_provider: serde_json::to_value(at_provider).unwrap_or(Value::Null),
                ready: true,
            }))
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let bucket = convert::creation_config(&params)
                .map_err(|message| ProviderError::terminal(CREATE, name, message))?;
            let request = InsertBucketRequest {
                name: name.to_owned(),
                param: InsertBucketParam {
                    project: params.project.clone(),
                    ..Default::default()
                },
                bucket,
            };
            // Bucket names are global, so a 409 after observe found nothing means someone else's
            // bucket: that is reported, never silently adopted.
            self.client
                .insert_bucket(&request)
                .await
                .map_err(|error| classify(CREATE, name, status(&error), error))?;
            Ok(Created::default())
        })
    }

    fn update<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let Some(observed) = self.get(name).await? else {
                return Err(ProviderError::new(
                    ErrorClass::Transient,
                    UPDATE,
                    name,
                    "the bucket no longer exists",
                ));
            };
            let body = convert::patch_body(&params, &observed)
                .map_err(|message| ProviderError::terminal(UPDATE, name, message))?;
            if body.as_object().is_some_and(|fields| !fields.is_empty()) {
                self.updates.wait_turn(name).await;
                self.api
                    .patch_bucket(name, observed.metageneration, &body)
                    .await?;
            }
            if !convert::same_location(&params.location, &observed.location) {
                return Err(ProviderError::terminal(
                    UPDATE,
                    name,
                    format!(
                        "spec.forProvider.location is {} but the bucket is in {}; a bucket's \
                         location cannot be changed in place (create a new bucket, or set the \
                         spec to the bucket's location)",
                        params.location, observed.location
                    ),
                ));
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let name = managed.external_name.as_str();
            let request = DeleteBucketRequest {
                bucket: name.to_owned(),
                ..Default::default()
            };
            match self.client.delete_bucket(&request).await {
                Ok(()) => Ok(()),
                Err(error) if status(&error) == Some(404) => Ok(()),
                Err(error) => Err(classify(DELETE, name, status(&error), error)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precondition_failure_on_update_is_retried_not_reported_as_non_empty() {
        let error = classify(UPDATE, "logs", Some(412), "conditionNotMet");
        assert_eq!(error.class, ErrorClass::Transient);
        assert!(
            error.message.contains("changed since it was read"),
            "{error}"
        );
    }

    #[test]
    fn a_conflict_on_delete_means_the_bucket_is_not_empty() {
        let error = classify(
            DELETE,
            "logs",
            Some(409),
            "The bucket you tried to delete is not empty",
        );
        assert_eq!(error.class, ErrorClass::Terminal);
        assert!(error.message.contains("not empty"), "{error}");
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert_eq!(
            classify(UPDATE, "logs", Some(429), "slow down").class,
            ErrorClass::Throttled
        );
        assert_eq!(
            classify(GET, "logs", Some(503), "busy").class,
            ErrorClass::Transient
        );
        assert_eq!(
            classify(GET, "logs", None, "connection refused").class,
            ErrorClass::Transient
        );
        assert_eq!(
            classify(CREATE, "logs", Some(400), "bad").class,
            ErrorClass::Terminal
        );
    }

    #[test]
    fn api_errors_are_read_from_the_json_body() {
        assert_eq!(
            api_message(r#"{"error": {"code": 400, "message": "Invalid argument."}}"#),
            "Invalid argument."
        );
        assert_eq!(api_message(" plain text \n"), "plain text");
    }
}
