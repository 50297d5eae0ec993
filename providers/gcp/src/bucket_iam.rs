//! The verbs of the BucketIAMMember external client: etag-checked read-modify-write of the
//! bucket's IAM policy through [`JsonApi`], with the edits themselves in [`crate::iam_member`].
//!
//! Every write sends the etag of the policy it edited; when Cloud Storage refuses it (412, or
//! 409) another writer got in between, so the policy is read and edited again. Concurrent
//! members of one bucket therefore never drop each other.

use serde_json::Value;
use strata_provider::{
    BoxFuture, CloudRecord, Created, ErrorClass, External, Managed, Present, ProviderError,
};

use crate::crd::{BucketIAMMemberObservation, BucketIAMMemberParameters};
use crate::iam_member::{self, ObservedPolicy};
use crate::storage::JsonApi;

const READ: &str = "get bucket IAM policy";
const GRANT: &str = "grant bucket role";
const REVOKE: &str = "revoke bucket role";
const REGRANT: &str = "move bucket role";

/// How many times a write refused for a changed policy is read and tried again in one verb.
pub(crate) const MAX_ATTEMPTS: usize = 5;

/// A connected BucketIAMMember client.
pub(crate) struct BucketIamExternal {
    api: JsonApi,
}

/// What a read-modify-write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    /// The policy was written.
    Changed,
    /// The edit found nothing to change.
    Unchanged,
    /// The bucket does not exist.
    NoBucket,
}

impl BucketIamExternal {
    pub(crate) fn new(api: JsonApi) -> Self {
        Self { api }
    }

    /// Reads the policy, edits it and writes it back with the etag read, until the write is
    /// accepted or the edit has nothing to do.
    async fn read_modify_write(
        &self,
        operation: &'static str,
        bucket: &str,
        edit: impl Fn(&Value) -> Option<Value>,
    ) -> Result<Written, ProviderError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(policy) = self.api.get_iam_policy(operation, bucket).await? else {
                return Ok(Written::NoBucket);
            };
            let Some(edited) = edit(&policy) else {
                return Ok(Written::Unchanged);
            };
            if self.api.set_iam_policy(operation, bucket, &edited).await? {
                return Ok(Written::Changed);
            }
        }
        Err(ProviderError::new(
            ErrorClass::Transient,
            operation,
            bucket,
            format!(
                "the bucket's IAM policy changed under every one of {MAX_ATTEMPTS} attempts; trying again later"
            ),
        ))
    }
}

/// Parses `spec.forProvider` and the binding it asks for.
fn desired(managed: &Managed) -> Result<BucketIAMMemberObservation, ProviderError> {
    let params: BucketIAMMemberParameters = serde_json::from_value(managed.for_provider.clone())
        .map_err(|error| {
            ProviderError::terminal(
                "read spec.forProvider",
                managed.name.as_str(),
                error.to_string(),
            )
        })?;
    iam_member::desired(&params).map_err(|invalid| {
        ProviderError::terminal(
            "validate BucketIAMMember",
            managed.name.as_str(),
            invalid.to_string(),
        )
    })
}

fn observed<'a>(
    managed: &Managed,
    record: &'a CloudRecord,
) -> Result<&'a ObservedPolicy, ProviderError> {
    record.get::<ObservedPolicy>().ok_or_else(|| {
        ProviderError::terminal(
            "assess bucket IAM member",
            managed.name.as_str(),
            "the record is not a bucket IAM policy",
        )
    })
}

impl External for BucketIamExternal {
    /// Policy writes are limited per bucket.
    fn scope(&self, managed: &Managed) -> String {
        managed
            .for_provider
            .get("bucket")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move {
            let desired = desired(managed)?;
            let Some(policy) = self.api.get_iam_policy(READ, &desired.bucket).await? else {
                return Ok(None);
            };
            let observed =
                iam_member::observe(policy, desired, iam_member::recorded(&managed.at_provider));
            Ok(observed.exists().then(|| CloudRecord::new(observed)))
        })
    }

    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>> {
        Box::pin(async move {
            let observed = observed(managed, record)?;
            Ok(Present {
                up_to_date: observed.up_to_date(),
                late_init: None,
                connection_details: Default::default(),
                at_provider: serde_json::to_value(observed.at_provider()).unwrap_or(Value::Null),
                ready: observed.granted(),
            })
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let desired = desired(managed)?;
            let written = self
                .read_modify_write(GRANT, &desired.bucket, |policy| {
                    iam_member::with_member(policy, &desired.role, &desired.member)
                })
                .await?;
            if written == Written::NoBucket {
                // Composed next to its bucket, the member may be created first: wait for it.
                return Err(ProviderError::new(
                    ErrorClass::NotReadyYet,
                    GRANT,
                    &desired.bucket,
                    "the bucket does not exist (yet)",
                ));
            }
            Ok(Created::default())
        })
    }

    fn update<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let desired = desired(managed)?;
            let stale = observed(managed, record)?.stale.clone();
            // One write moves the grant: the new member is added and the old one removed.
            self.read_modify_write(REGRANT, &desired.bucket, |policy| {
                let without_stale = stale
                    .as_ref()
                    .and_then(|old| iam_member::without_member(policy, &old.role, &old.member));
                let base = without_stale.as_ref().unwrap_or(policy);
                iam_member::with_member(base, &desired.role, &desired.member).or(without_stale)
            })
            .await?;
            Ok(())
        })
    }

    /// Removes only this object's member (and a stale one it recorded); the bucket being gone
    /// is success.
    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let desired = desired(managed)?;
            let recorded = iam_member::recorded(&managed.at_provider)
                .filter(|old| *old != desired && old.bucket == desired.bucket);
            self.read_modify_write(REVOKE, &desired.bucket, |policy| {
                let first = iam_member::without_member(policy, &desired.role, &desired.member);
                let base = first.as_ref().unwrap_or(policy);
                recorded
                    .as_ref()
                    .and_then(|old| iam_member::without_member(base, &old.role, &old.member))
                    .or(first)
            })
            .await?;
            Ok(())
        })
    }
}
