//! The Google Cloud provider's Kubernetes kinds: `storage.gcp.strata.dev/v1alpha1 Bucket` and
//! `gcp.strata.dev/v1alpha1 ProviderConfig`. Both are cluster scoped, like Crossplane's.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strata_provider::{ResourceSpec, ResourceStatus, SecretKeySelector};

/// A Cloud Storage bucket.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storage.gcp.strata.dev",
    version = "v1alpha1",
    kind = "Bucket",
    doc = "A Google Cloud Storage bucket managed by Strata.",
    status = "BucketStatus",
    category = "managed",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"EXTERNAL-NAME","type":"string","jsonPath":".metadata.annotations.strata\\.dev/external-name"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// The bucket as it should be in Cloud Storage; unset optional fields are late-initialized
    /// from GCS. The object's external name is the bucket's name.
    pub for_provider: BucketParameters,
    /// The fields every managed resource shares: management and deletion policies, the
    /// ProviderConfig and the connection Secret.
    #[serde(flatten)]
    pub resource: ResourceSpec,
}

/// The desired state of a bucket. Unset optional fields are late-initialized from GCS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketParameters {
    /// The project that owns the bucket (immutable).
    pub project: String,
    /// `US`, `EU`, `europe-west1`, … (immutable).
    pub location: String,
    /// `STANDARD`, `NEARLINE`, `COLDLINE`, `ARCHIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// When set, the bucket carries exactly these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Whether the bucket keeps noncurrent versions of overwritten and deleted objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<bool>,
    /// Whether access is granted by bucket IAM only, with object ACLs disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform_bucket_level_access: Option<bool>,
    /// When set, the bucket carries exactly these lifecycle rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_rules: Option<Vec<LifecycleRule>>,
    /// Minimum object retention, in seconds; `0` removes the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period_seconds: Option<u64>,
}

/// One object lifecycle rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// What happens to an object the condition matches.
    pub action: LifecycleAction,
    /// Which objects the action applies to; every set field must hold.
    #[serde(default)]
    pub condition: LifecycleCondition,
}

/// What a lifecycle rule does.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAction {
    /// `Delete`, `SetStorageClass` or `AbortIncompleteMultipartUpload`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `SetStorageClass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// When a lifecycle rule applies; every set field must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleCondition {
    /// Days since creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<i32>,
    /// Matches a noncurrent version with at least this many newer versions (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_newer_versions: Option<i32>,
    /// `true` matches live objects, `false` noncurrent versions (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_live: Option<bool>,
    /// Days since the object became noncurrent (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_since_noncurrent_time: Option<i32>,
    /// Matches objects in any of these storage classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches_storage_class: Option<Vec<String>>,
}

/// Observed state of a Bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketStatus {
    /// The Ready and Synced conditions every managed resource reports.
    #[serde(flatten)]
    pub resource: ResourceStatus,
    /// The bucket as last observed; absent until it has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<BucketObservation>,
}

/// What GCS reports about the bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketObservation {
    /// The bucket's JSON API URL on the configured endpoint (`…/storage/v1/b/NAME`).
    pub self_link: String,
    /// `gs://NAME`.
    pub url: String,
    /// When the bucket was created (RFC 3339), as GCS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_created: Option<String>,
    /// The bucket metadata's generation: GCS increments it on every metadata change.
    pub metageneration: i64,
}

/// How the Google Cloud provider authenticates.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "gcp.strata.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    doc = "Credentials and endpoint for the Google Cloud provider.",
    printcolumn = r#"{"name":"SOURCE","type":"string","jsonPath":".spec.credentials.source"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// How to authenticate to Google Cloud.
    pub credentials: Credentials,
    /// Overrides the Cloud Storage endpoint (scheme, host and port), e.g. an emulator's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The longest one Cloud Storage call may take (30 by default): an endpoint that accepts
    /// connections and never answers fails the call (Synced=False) instead of holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_seconds: Option<u32>,
}

/// Where credentials come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Which kind of credentials; the matching field below must be set where one exists.
    pub source: CredentialsSource,
    /// For `Secret`: the key holding a service-account key JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// For `WorkloadIdentityFederation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// The credential sources.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CredentialsSource {
    /// A service-account key JSON in a Secret.
    Secret,
    /// Application default credentials (GKE workload identity, metadata server, `GOOGLE_APPLICATION_CREDENTIALS`).
    InjectedIdentity,
    /// An OIDC token file exchanged at Google STS (an external account): no keys anywhere.
    WorkloadIdentityFederation,
    /// No credentials at all: only for emulators.
    Anonymous,
}

/// Workload identity federation from a token file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    pub audience: String,
    /// The OIDC token file (a projected service-account token).
    pub token_file: String,
    /// A service account to impersonate after the exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_email: Option<String>,
    /// Overrides Google's token exchange endpoint (`https://sts.googleapis.com/v1/token`), e.g.
    /// a Private Service Connect endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
}

/// One member of one role on a bucket's IAM policy. The identity is `(bucket, role, member)`
/// from `spec.forProvider`, not the external name: several BucketIAMMembers share one policy and
/// each adds and removes only its own member.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storage.gcp.strata.dev",
    version = "v1alpha1",
    kind = "BucketIAMMember",
    doc = "A member granted a role on a Google Cloud Storage bucket, managed by Strata.",
    status = "BucketIAMMemberStatus",
    category = "managed",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"BUCKET","type":"string","jsonPath":".spec.forProvider.bucket"}"#,
    printcolumn = r#"{"name":"ROLE","type":"string","jsonPath":".spec.forProvider.role"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketIAMMemberSpec {
    /// The binding to hold on the bucket's policy. Exactly one of `member` and
    /// `kubernetesServiceAccount` names the principal.
    pub for_provider: BucketIAMMemberParameters,
    /// The fields every managed resource shares: management and deletion policies, the
    /// ProviderConfig and the connection Secret.
    #[serde(flatten)]
    pub resource: ResourceSpec,
}

/// Who gets which role on which bucket. Exactly one of `member` and
/// `kubernetesServiceAccount` names the principal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketIAMMemberParameters {
    /// The bucket's name.
    pub bucket: String,
    /// `roles/storage.objectViewer`, `roles/storage.objectUser`, a custom role, …
    pub role: String,
    /// Any IAM principal: `user:…`, `serviceAccount:…`, `group:…`, `principal://…`,
    /// `principalSet://…`, `allUsers`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// A Kubernetes ServiceAccount through workload identity federation: the member
    /// `principal://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/subject/system:serviceaccount:NAMESPACE:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_service_account: Option<WorkloadIdentityMember>,
}

/// A Kubernetes ServiceAccount as a workload identity federation principal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityMember {
    /// The number (not the id) of the project that owns the pool.
    pub project_number: String,
    /// The workload identity pool id.
    pub pool: String,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

/// Observed state of a BucketIAMMember.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketIAMMemberStatus {
    /// The Ready and Synced conditions every managed resource reports.
    #[serde(flatten)]
    pub resource: ResourceStatus,
    /// The binding last granted; after a spec change, the old one until it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<BucketIAMMemberObservation>,
}

/// The binding this object holds on the policy.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct BucketIAMMemberObservation {
    /// The bucket's name.
    pub bucket: String,
    /// The role the member holds.
    pub role: String,
    /// The principal as IAM spells it (a Kubernetes ServiceAccount resolved to its
    /// `principal://…`).
    pub member: String,
}
