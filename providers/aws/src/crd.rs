//! The AWS provider's Kubernetes kinds: `rds.aws.strata.dev/v1alpha1 DBInstance`,
//! `iam.aws.strata.dev/v1alpha1 Role` and `OpenIDConnectProvider`, and `aws.strata.dev/v1alpha1
//! ProviderConfig`. All are cluster scoped, like Crossplane's.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strata_provider::{ResourceSpec, ResourceStatus, SecretKeySelector, SecretReference};

/// An RDS database instance.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rds.aws.strata.dev",
    version = "v1alpha1",
    kind = "DBInstance",
    doc = "An AWS RDS database instance managed by Strata.",
    status = "DBInstanceStatus",
    category = "managed",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"EXTERNAL-NAME","type":"string","jsonPath":".metadata.annotations.strata\\.dev/external-name"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceSpec {
    /// The instance as it should be in RDS; unset optional fields are late-initialized from
    /// AWS. The object's external name is the instance identifier.
    pub for_provider: DBInstanceParameters,
    /// The fields every managed resource shares: management and deletion policies, the
    /// ProviderConfig and the connection Secret.
    #[serde(flatten)]
    pub resource: ResourceSpec,
}

/// The desired state of an RDS instance. Unset optional fields are late-initialized from AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceParameters {
    /// The AWS region the instance lives in, e.g. `us-east-1`.
    pub region: String,
    /// `postgres`, `mysql`, … (immutable).
    pub engine: String,
    /// The engine version: `16.3`, or `16` to pin only the major version. A change is applied
    /// as an upgrade, major upgrades allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The compute and memory class, e.g. `db.t3.micro`.
    pub db_instance_class: String,
    /// Storage to allocate, in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_storage: Option<i32>,
    /// Initial database name (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_name: Option<String>,
    /// Master user name (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_username: Option<String>,
    /// Where the master password lives. When the key is missing a password is generated and
    /// stored there before the instance is created. When unset, the `password` key of
    /// `spec.writeConnectionSecretToRef` is used the same way. Ignored when
    /// `manageMasterUserPassword` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_password_secret_ref: Option<SecretKeySelector>,
    /// RDS generates the master password and keeps it in AWS Secrets Manager: it is never in
    /// Kubernetes, and `status.atProvider.masterUserSecretArn` names the secret. Turning it off
    /// again is not supported in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_master_user_password: Option<bool>,
    /// Database users may authenticate with an IAM auth token (`rds-db:connect`) instead of a
    /// password.
    #[serde(
        default,
        rename = "enableIAMDatabaseAuthentication",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_iam_database_authentication: Option<bool>,
    /// The DB subnet group that places the instance in a VPC; the account's default VPC when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_subnet_group_name: Option<String>,
    /// The VPC security groups (`sg-…`) attached to the instance. When set, exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_security_group_ids: Option<Vec<String>>,
    /// Whether the endpoint resolves to a public address reachable from outside the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publicly_accessible: Option<bool>,
    /// Whether storage is encrypted at rest (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_encrypted: Option<bool>,
    /// Days automated backups are kept; `0` turns automated backups off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention_period: Option<i32>,
    /// While true, RDS refuses to delete the instance: deleting the object fails (Synced=False)
    /// until it is turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// Skip the final snapshot on delete; defaults to true unless `finalDBSnapshotIdentifier` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_final_snapshot: Option<bool>,
    /// The identifier of the snapshot taken when the instance is deleted.
    #[serde(
        default,
        rename = "finalDBSnapshotIdentifier",
        skip_serializing_if = "Option::is_none"
    )]
    pub final_db_snapshot_identifier: Option<String>,
    /// When set, the instance carries exactly these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Observed state of a DBInstance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceStatus {
    /// The Ready and Synced conditions every managed resource reports.
    #[serde(flatten)]
    pub resource: ResourceStatus,
    /// The instance as last observed; absent until it has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<DBInstanceObservation>,
}

/// What AWS reports about the instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceObservation {
    /// `creating`, `available`, `modifying`, `deleting`, …
    pub status: String,
    /// Where clients connect; absent until RDS has assigned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// The instance's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The instance's immutable, region-unique id (`db-…`), which IAM database authentication
    /// policies name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Whether IAM database authentication is on.
    #[serde(
        default,
        rename = "iamDatabaseAuthenticationEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub iam_database_authentication_enabled: Option<bool>,
    /// The Secrets Manager secret holding the RDS-managed master password (its ARN, never its
    /// value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_user_secret_arn: Option<String>,
}

/// A network endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Endpoint {
    /// The DNS name of the instance.
    pub address: String,
    /// The TCP port the database listens on.
    pub port: i32,
}

/// How the AWS provider authenticates.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aws.strata.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    doc = "Credentials and endpoint for the AWS provider.",
    printcolumn = r#"{"name":"SOURCE","type":"string","jsonPath":".spec.credentials.source"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// How to authenticate to AWS.
    pub credentials: Credentials,
    /// Overrides every AWS endpoint (RDS, IAM and STS), e.g. an emulator's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointOverride>,
    /// The longest one cloud call may take, retries included (30 by default): an endpoint that
    /// accepts connections and never answers fails the call (Synced=False) instead of holding
    /// the resource without a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_seconds: Option<u32>,
}

/// Where credentials come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Which kind of credentials; the matching field below must be set where one exists.
    pub source: CredentialsSource,
    /// For `Secret`: a Secret with keys `aws_access_key_id`, `aws_secret_access_key` and
    /// optionally `aws_session_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// For `WebIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentity>,
}

/// The credential sources.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CredentialsSource {
    /// A static access key pair in a Secret.
    Secret,
    /// The SDK's default chain (environment, profile, web identity from `AWS_ROLE_ARN`, IMDS).
    Environment,
    /// An OIDC token file exchanged for role credentials with AssumeRoleWithWebIdentity: no
    /// long-lived keys anywhere (the recommended source).
    WebIdentity,
}

/// The role to assume with an OIDC token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentity {
    /// The role whose credentials the token is exchanged for.
    pub role_arn: String,
    /// A projected service-account token, re-read on every refresh.
    pub token_file: String,
    /// The session name CloudTrail records; `strata-` and the ProviderConfig's name by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
}

/// A custom endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EndpointOverride {
    /// Scheme, host and port, e.g. `http://127.0.0.1:5000`.
    pub url: String,
}

/// Free-form JSON in the generated schema (a policy document given as an object or a string).
fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A map of names to free-form JSON values (inline policy documents).
fn any_value_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// An IAM role. The external name is the role name.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.aws.strata.dev",
    version = "v1alpha1",
    kind = "Role",
    doc = "An AWS IAM role managed by Strata.",
    status = "RoleStatus",
    category = "managed",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"EXTERNAL-NAME","type":"string","jsonPath":".metadata.annotations.strata\\.dev/external-name"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// The role as it should be in IAM. Exactly one of `assumeRolePolicy` and
    /// `trustServiceAccount` says who may assume it; the external name is the role name.
    pub for_provider: RoleParameters,
    /// The fields every managed resource shares: management and deletion policies, the
    /// ProviderConfig and the connection Secret.
    #[serde(flatten)]
    pub resource: ResourceSpec,
}

/// The desired state of an IAM role. Exactly one of `assumeRolePolicy` and
/// `trustServiceAccount` says who may assume it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleParameters {
    /// The trust policy: a policy document as a JSON string or as an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub assume_role_policy: Option<serde_json::Value>,
    /// Trust one Kubernetes ServiceAccount through an IAM OIDC identity provider: the trust
    /// policy allows `sts:AssumeRoleWithWebIdentity` when the token's `sub` is
    /// `system:serviceaccount:NAMESPACE:NAME` and its `aud` is the audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_service_account: Option<ServiceAccountTrust>,
    /// Inline policies by name, each a policy document as a JSON string or an object. When set,
    /// the role carries exactly these inline policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_map")]
    pub inline_policies: Option<BTreeMap<String, serde_json::Value>>,
    /// A human-readable description, at most 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `/` by default; starts and ends with `/` (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When set, the role carries exactly these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A Kubernetes ServiceAccount allowed to assume a role with its OIDC token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTrust {
    /// The IAM OIDC identity provider of the cluster's issuer,
    /// `arn:aws:iam::ACCOUNT:oidc-provider/ISSUER-HOST-AND-PATH`.
    pub oidc_provider_arn: String,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
    /// The token audience the role accepts; `sts.amazonaws.com` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Observed state of a Role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// The Ready and Synced conditions every managed resource reports.
    #[serde(flatten)]
    pub resource: ResourceStatus,
    /// The role as last observed; absent until it has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<RoleObservation>,
}

/// What IAM reports about the role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleObservation {
    /// The role's ARN, also published as the connection detail `roleArn`.
    pub arn: String,
    /// IAM's unique id for the role (`AROA…`), which changes if the role is deleted and
    /// recreated under the same name.
    pub role_id: String,
}

/// An IAM OIDC identity provider: lets tokens of one issuer (a cluster's service-account
/// issuer) be exchanged for role credentials. Identified by its URL (one per URL and account).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.aws.strata.dev",
    version = "v1alpha1",
    kind = "OpenIDConnectProvider",
    doc = "An AWS IAM OpenID Connect identity provider managed by Strata.",
    status = "OpenIDConnectProviderStatus",
    category = "managed",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.forProvider.url"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OpenIDConnectProviderSpec {
    /// The identity provider as it should be in IAM.
    pub for_provider: OpenIDConnectProviderParameters,
    /// The fields every managed resource shares: management and deletion policies, the
    /// ProviderConfig and the connection Secret.
    #[serde(flatten)]
    pub resource: ResourceSpec,
}

/// The desired state of an IAM OIDC provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIDConnectProviderParameters {
    /// The issuer URL, `https://…` (immutable).
    pub url: String,
    /// The audiences accepted; `[sts.amazonaws.com]` by default. Exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "clientIDList")]
    pub client_id_list: Option<Vec<String>>,
    /// SHA-1 fingerprints (40 hex digits) of the issuer's TLS certificate chain. When set,
    /// exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint_list: Option<Vec<String>>,
    /// When set, the provider carries exactly these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Observed state of an OpenIDConnectProvider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIDConnectProviderStatus {
    /// The Ready and Synced conditions every managed resource reports.
    #[serde(flatten)]
    pub resource: ResourceStatus,
    /// The identity provider as last observed; absent until it has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<OpenIDConnectProviderObservation>,
}

/// What IAM reports about the provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIDConnectProviderObservation {
    /// What `trustServiceAccount.oidcProviderArn` of a Role names.
    pub arn: String,
}
