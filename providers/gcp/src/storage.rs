//! The Cloud Storage seam and the thin verbs of the Bucket external client. Each verb converts
//! the spec with [`crate::convert`], makes one call and classifies failures by HTTP status.

use gcloud_storage::client::Client;
use gcloud_storage::http::Error as GcsError;
use gcloud_storage::http::buckets::delete::DeleteBucketRequest;
use gcloud_storage::http::buckets::get::GetBucketRequest;
use gcloud_storage::http::buckets::insert::{InsertBucketParam, InsertBucketRequest};
use gcloud_storage::http::buckets::patch::PatchBucketRequest;
use serde_json::Value;
use strata_core::provider::{
    BoxFuture, Created, ErrorClass, External, Managed, Observation, Present, ProviderError,
};

use crate::convert::{self, ObservedBucket};
use crate::crd::BucketParameters;

/// A connected Bucket client.
pub struct BucketExternal {
    config_name: String,
    endpoint: String,
    client: Client,
}

impl BucketExternal {
    pub fn new(config_name: String, endpoint: String, client: Client) -> Self {
        Self {
            config_name,
            endpoint,
            client,
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ObservedBucket>, ProviderError> {
        let request = GetBucketRequest {
            bucket: name.to_owned(),
            ..Default::default()
        };
        match self.client.get_bucket(&request).await {
            Ok(bucket) => Ok(Some(convert::observed_bucket(&bucket))),
            Err(error) if status(&error) == Some(404) => Ok(None),
            Err(error) => Err(classify("get bucket", name, &error)),
        }
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

/// Classifies a failure by HTTP status: 429 throttled, 408/5xx and transport transient, the rest terminal.
fn classify(operation: &str, name: &str, error: &GcsError) -> ProviderError {
    let class = match status(error) {
        Some(429) => ErrorClass::Throttled,
        Some(408 | 500..=599) => ErrorClass::Transient,
        Some(_) => ErrorClass::Terminal,
        None if matches!(error, GcsError::TokenSource(_)) => ErrorClass::Transient,
        None => ErrorClass::Transient,
    };
    let message = match status(error) {
        Some(409) => format!(
            "409 Conflict: a bucket with this name already exists and bucket names are global; \
             choose another name, or adopt your own bucket by setting strata.dev/external-name ({error})"
        ),
        Some(412) => format!(
            "412 Precondition Failed: the bucket is not empty; delete its objects first or set \
             spec.deletionPolicy: Orphan ({error})"
        ),
        Some(code) => format!("{code}: {error}"),
        None => error.to_string(),
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
                .map_err(|message| ProviderError::terminal("create bucket", name, message))?;
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
                .map_err(|error| classify("create bucket", name, &error))?;
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
                    "update bucket",
                    name,
                    "the bucket no longer exists",
                ));
            };
            let drift = convert::drift(&params, &observed);
            if !drift.changed.is_empty() {
                let metadata = convert::patch_config(&params, &observed)
                    .map_err(|message| ProviderError::terminal("update bucket", name, message))?;
                let request = PatchBucketRequest {
                    bucket: name.to_owned(),
                    if_metageneration_match: Some(observed.metageneration),
                    metadata: Some(metadata),
                    ..Default::default()
                };
                self.client
                    .patch_bucket(&request)
                    .await
                    .map_err(|error| classify("update bucket", name, &error))?;
            }
            if !drift.immutable.is_empty() {
                return Err(ProviderError::terminal(
                    "update bucket",
                    name,
                    format!(
                        "spec.forProvider fields {} differ from GCS but cannot be changed in place",
                        drift.immutable.join(", ")
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
                Err(error) => Err(classify("delete bucket", name, &error)),
            }
        })
    }
}
