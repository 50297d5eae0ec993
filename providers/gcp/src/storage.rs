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
use strata_provider::{
    BoxFuture, CloudRecord, Created, ErrorClass, External, ExternalName, Managed, Present,
    ProviderError, SweepPage,
};
use token_source::TokenSource;

use crate::convert::{self, ObservedBucket};
use crate::crd::BucketParameters;
use crate::spacing::UpdateSpacing;

const GET: &str = "get bucket";
const CREATE: &str = "create bucket";
const UPDATE: &str = "update bucket";
const DELETE: &str = "delete bucket";
const LIST: &str = "list buckets";

/// Buckets per page of a sweep (the API's maximum is 1,000).
const SWEEP_PAGE_SIZE: u32 = 1_000;

/// The Cloud Storage JSON API over HTTP with the provider's credentials, for the calls the SDK
/// cannot make faithfully.
pub(crate) struct JsonApi {
    http: reqwest::Client,
    endpoint: Url,
    token_source: Option<Arc<dyn TokenSource>>,
}

impl JsonApi {
    /// `endpoint` is the scheme, host and port (and an optional path prefix) of the API;
    /// `token_source` is `None` for anonymous access.
    pub(crate) fn new(
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
    pub(crate) async fn get_bucket(&self, name: &str) -> Result<Option<Value>, ProviderError> {
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
    /// `metageneration` (`0`: unconditionally). Returns the bucket as the API reports it after
    /// the change.
    pub(crate) async fn patch_bucket(
        &self,
        name: &str,
        metageneration: i64,
        body: &Value,
    ) -> Result<Value, ProviderError> {
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
            return response
                .json()
                .await
                .map_err(|error| classify(UPDATE, name, None, error));
        }
        Err(failure(UPDATE, name, code, response).await)
    }

    /// `GET /storage/v1/b/NAME/iam` (policy version 3, so conditional bindings are shown as
    /// they are), or `None` when there is no such bucket.
    pub(crate) async fn get_iam_policy(
        &self,
        operation: &'static str,
        bucket: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let mut url = self.bucket_url(operation, bucket)?;
        url.path_segments_mut()
            .map_err(|()| {
                ProviderError::terminal(operation, bucket, "the endpoint cannot carry a path")
            })?
            .push("iam");
        url.query_pairs_mut()
            .append_pair("optionsRequestedPolicyVersion", "3");
        let response = self.send(operation, bucket, self.http.get(url)).await?;
        match response.status().as_u16() {
            404 => Ok(None),
            code if (200..300).contains(&code) => response
                .json()
                .await
                .map(Some)
                .map_err(|error| classify(operation, bucket, None, error)),
            code => Err(failure(operation, bucket, code, response).await),
        }
    }

    /// `PUT /storage/v1/b/NAME/iam` with `policy`, which carries the etag it was read with:
    /// `Ok(false)` when the policy changed since (412 or 409) and must be read again.
    pub(crate) async fn set_iam_policy(
        &self,
        operation: &'static str,
        bucket: &str,
        policy: &Value,
    ) -> Result<bool, ProviderError> {
        let mut url = self.bucket_url(operation, bucket)?;
        url.path_segments_mut()
            .map_err(|()| {
                ProviderError::terminal(operation, bucket, "the endpoint cannot carry a path")
            })?
            .push("iam");
        let response = self
            .send(operation, bucket, self.http.put(url).json(policy))
            .await?;
        match response.status().as_u16() {
            412 | 409 => Ok(false),
            code if (200..300).contains(&code) => Ok(true),
            code => Err(failure(operation, bucket, code, response).await),
        }
    }

    /// One page of `GET /storage/v1/b?project=PROJECT`: the buckets and the next page's token.
    pub(crate) async fn list_buckets(
        &self,
        project: &str,
        page: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ProviderError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ProviderError::terminal(
                    LIST,
                    project,
                    format!("the endpoint {} cannot carry a path", self.endpoint),
                )
            })?
            .pop_if_empty()
            .extend(["storage", "v1", "b"]);
        url.query_pairs_mut()
            .append_pair("project", project)
            .append_pair("maxResults", &SWEEP_PAGE_SIZE.to_string());
        if let Some(page) = page {
            url.query_pairs_mut().append_pair("pageToken", page);
        }
        let response = self.send(LIST, project, self.http.get(url)).await?;
        let code = response.status().as_u16();
        if !(200..300).contains(&code) {
            return Err(failure(LIST, project, code, response).await);
        }
        let mut listing: Value = response
            .json()
            .await
            .map_err(|error| classify(LIST, project, None, error))?;
        let items = match listing.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let next = listing
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .map(str::to_owned);
        Ok((items, next))
    }
}

/// The classified error of a JSON API response that is not a success.
pub(crate) async fn failure(
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
pub(crate) struct BucketExternal {
    config_name: String,
    endpoint: String,
    client: Client,
    api: JsonApi,
    updates: UpdateSpacing,
}

impl BucketExternal {
    pub(crate) fn new(config_name: String, endpoint: String, client: Client, api: JsonApi) -> Self {
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
        read_bucket(GET, name, &bucket).map(Some)
    }
}

/// The bucket a JSON API resource describes, or a terminal error naming what is malformed.
fn read_bucket(
    operation: &'static str,
    name: &str,
    bucket: &Value,
) -> Result<ObservedBucket, ProviderError> {
    convert::observed_bucket(bucket)
        .map_err(|message| ProviderError::terminal(operation, name, message))
}

/// The bucket a record holds: this provider's records always do.
fn bucket<'a>(
    managed: &Managed,
    record: &'a CloudRecord,
) -> Result<&'a ObservedBucket, ProviderError> {
    record.get::<ObservedBucket>().ok_or_else(|| {
        ProviderError::terminal(
            GET,
            managed.external_name.as_str(),
            "the record is not a Cloud Storage bucket",
        )
    })
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
pub(crate) fn classify(
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
    /// GCS limits bucket creation and deletion per project.
    fn scope(&self, managed: &Managed) -> String {
        managed
            .for_provider
            .get("project")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move {
            let observed = self.get(managed.external_name.as_str()).await?;
            Ok(observed.map(CloudRecord::new))
        })
    }

    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let name = managed.external_name.as_str();
            let observed = bucket(managed, record)?;
            let at_provider = convert::at_provider(name, &self.endpoint, observed);
            Ok(Present {
                up_to_date: convert::drift(&params, observed).is_empty(),
                late_init: convert::late_init(&params, observed),
                connection_details: [
                    ("bucket".to_owned(), name.to_owned()),
                    ("url".to_owned(), at_provider.url.clone()),
                    ("project".to_owned(), params.project.clone()),
                ]
                .into(),
                at_provider: serde_json::to_value(at_provider).unwrap_or(Value::Null),
                ready: true,
            })
        })
    }

    fn can_sweep(&self) -> bool {
        true
    }

    /// The project's buckets, up to 1,000 per call.
    fn sweep_page<'a>(
        &'a self,
        scope: &'a str,
        page: Option<String>,
    ) -> BoxFuture<'a, Result<SweepPage, ProviderError>> {
        Box::pin(async move {
            let (items, next) = self.api.list_buckets(scope, page.as_deref()).await?;
            let mut records = Vec::with_capacity(items.len());
            for item in &items {
                let Some(name) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                records.push((
                    ExternalName::new(name),
                    CloudRecord::new(read_bucket(LIST, name, item)?),
                ));
            }
            Ok(SweepPage { records, next })
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
            let created = self
                .client
                .insert_bucket(&request)
                .await
                .map_err(|error| classify(CREATE, name, status(&error), error))?;
            // The insert answers with the bucket; if its form cannot be read, the runtime reads
            // the bucket again instead.
            let record = serde_json::to_value(&created)
                .ok()
                .and_then(|bucket| convert::observed_bucket(&bucket).ok())
                .map(CloudRecord::new);
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
            let observed = bucket(managed, record)?;
            let body = convert::patch_body(&params, observed)
                .map_err(|message| ProviderError::terminal(UPDATE, name, message))?;
            if let Some(fields) = body.as_object().filter(|fields| !fields.is_empty()) {
                self.updates.wait_turn(name).await;
                let after = self
                    .api
                    .patch_bucket(name, observed.metageneration, &body)
                    .await?;
                let after = read_bucket(UPDATE, name, &after)?;
                let unapplied = convert::patch_body(&params, &after)
                    .map_err(|message| ProviderError::terminal(UPDATE, name, message))?;
                let unapplied: Vec<&str> = unapplied
                    .as_object()
                    .into_iter()
                    .flat_map(|left| left.keys())
                    .filter(|field| fields.contains_key(*field))
                    .map(String::as_str)
                    .collect();
                if !unapplied.is_empty() {
                    // Patching again would change nothing: say so instead of writing every poll.
                    return Err(ProviderError::terminal(
                        UPDATE,
                        name,
                        format!(
                            "the storage endpoint {} (ProviderConfig {}) accepted the update but \
                             did not store {}; it does not support these settings",
                            self.endpoint,
                            self.config_name,
                            unapplied.join(", ")
                        ),
                    ));
                }
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
