//! The RDS seam and the thin verbs of the DBInstance external client. Each verb converts the
//! spec with [`crate::convert`], makes one or two SDK calls and classifies failures by error code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{Region, SdkConfig};
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rds::types::{DbInstance, Tag};
use serde_json::Value;
use strata_provider::{
    BoxFuture, CloudRecord, Created, ErrorClass, External, ExternalName, Managed, Present,
    ProviderError, SecretKeySelector, Secrets, SweepPage,
};

use crate::convert::{self, ObservedInstance};
use crate::crd::{DBInstanceParameters, Endpoint};

/// A connected DBInstance client: one SDK configuration, one RDS client per region.
pub(crate) struct RdsExternal {
    config_name: String,
    sdk: SdkConfig,
    clients: Mutex<BTreeMap<String, aws_sdk_rds::Client>>,
    secrets: Arc<dyn Secrets>,
}

impl RdsExternal {
    pub(crate) fn new(config_name: String, sdk: SdkConfig, secrets: Arc<dyn Secrets>) -> Self {
        Self {
            config_name,
            sdk,
            clients: Mutex::new(BTreeMap::new()),
            secrets,
        }
    }

    fn client(&self, region: &str) -> aws_sdk_rds::Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_rds::config::Builder::from(&self.sdk)
                    .region(Region::new(region.to_owned()))
                    .build();
                aws_sdk_rds::Client::from_conf(config)
            })
            .clone()
    }

    /// [`classify_sdk_error`], naming the endpoint and ProviderConfig when RDS was not reached.
    fn classify<E, R>(&self, operation: &str, id: &str, error: &SdkError<E, R>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        classify_at(
            "RDS",
            self.sdk.endpoint_url(),
            &self.config_name,
            operation,
            id,
            error,
        )
    }

    async fn describe(
        &self,
        params: &DBInstanceParameters,
        id: &str,
    ) -> Result<Option<ObservedInstance>, ProviderError> {
        let result = self
            .client(&params.region)
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.db_instances().first().map(observed_instance)),
            Err(error) if error_code(&error) == Some("DBInstanceNotFound") => Ok(None),
            Err(error) => Err(self.classify("describe DB instance", id, &error)),
        }
    }

    /// The password Secret key: `masterPasswordSecretRef`, else `password` in the connection Secret.
    fn password_ref(managed: &Managed, params: &DBInstanceParameters) -> Option<SecretKeySelector> {
        params.master_password_secret_ref.clone().or_else(|| {
            managed
                .connection_secret
                .as_ref()
                .map(|secret| SecretKeySelector {
                    name: secret.name.clone(),
                    namespace: secret.namespace.clone(),
                    key: "password".into(),
                })
        })
    }

    async fn read_password(
        &self,
        selector: &SecretKeySelector,
    ) -> Result<Option<String>, ProviderError> {
        let data = self.secrets.get(&selector.secret()).await?;
        Ok(data
            .and_then(|mut data| data.remove(&selector.key))
            .filter(|password| !password.is_empty()))
    }

    /// Reads the master password, generating and storing one first when the key is missing, so a
    /// crash after create can never lose it.
    async fn ensure_password(
        &self,
        managed: &Managed,
        params: &DBInstanceParameters,
    ) -> Result<String, ProviderError> {
        let selector = Self::password_ref(managed, params).ok_or_else(|| {
            ProviderError::terminal(
                "create DB instance",
                managed.external_name.as_str(),
                "spec.forProvider.masterPasswordSecretRef or spec.writeConnectionSecretToRef is required to hold the master password",
            )
        })?;
        if let Some(password) = self.read_password(&selector).await? {
            return Ok(password);
        }
        let password = uuid::Uuid::new_v4().simple().to_string();
        self.secrets
            .put_key(&selector.secret(), &selector.key, &password)
            .await?;
        Ok(password)
    }
}

/// Whether RDS keeps the master password (in Secrets Manager) instead of Strata.
fn manages_password(params: &DBInstanceParameters) -> bool {
    params.manage_master_user_password == Some(true)
}

/// The instance a record holds: this provider's records always do.
fn instance<'a>(
    managed: &Managed,
    record: &'a CloudRecord,
) -> Result<&'a ObservedInstance, ProviderError> {
    record.get::<ObservedInstance>().ok_or_else(|| {
        ProviderError::terminal(
            "assess DB instance",
            managed.external_name.as_str(),
            "the record is not an RDS DB instance",
        )
    })
}

/// Parses `spec.forProvider`.
pub(crate) fn parameters(managed: &Managed) -> Result<DBInstanceParameters, ProviderError> {
    serde_json::from_value(managed.for_provider.clone()).map_err(|error| {
        ProviderError::terminal(
            "read spec.forProvider",
            managed.name.as_str(),
            error.to_string(),
        )
    })
}

fn observed_instance(instance: &DbInstance) -> ObservedInstance {
    let mut vpc_security_group_ids: Vec<String> = instance
        .vpc_security_groups()
        .iter()
        .filter_map(|group| group.vpc_security_group_id().map(str::to_owned))
        .collect();
    vpc_security_group_ids.sort();
    ObservedInstance {
        status: instance.db_instance_status().unwrap_or_default().to_owned(),
        engine: instance.engine().unwrap_or_default().to_owned(),
        engine_version: instance.engine_version().map(str::to_owned),
        db_instance_class: instance.db_instance_class().map(str::to_owned),
        allocated_storage: instance.allocated_storage(),
        db_name: instance.db_name().map(str::to_owned),
        master_username: instance.master_username().map(str::to_owned),
        db_subnet_group_name: instance
            .db_subnet_group()
            .and_then(|group| group.db_subnet_group_name())
            .map(str::to_owned),
        vpc_security_group_ids,
        publicly_accessible: instance.publicly_accessible(),
        storage_encrypted: instance.storage_encrypted(),
        backup_retention_period: instance.backup_retention_period(),
        deletion_protection: instance.deletion_protection(),
        endpoint: instance.endpoint().and_then(|endpoint| {
            Some(Endpoint {
                address: endpoint.address()?.to_owned(),
                port: endpoint.port()?,
            })
        }),
        arn: instance.db_instance_arn().map(str::to_owned),
        resource_id: instance.dbi_resource_id().map(str::to_owned),
        iam_database_authentication_enabled: instance.iam_database_authentication_enabled(),
        master_user_secret_arn: instance
            .master_user_secret()
            .and_then(|secret| secret.secret_arn())
            .map(str::to_owned),
        tags: instance
            .tag_list()
            .iter()
            .filter_map(|tag| {
                Some((
                    tag.key()?.to_owned(),
                    tag.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    }
}

pub(crate) fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// [`classify_sdk_error`], naming the service's endpoint and the ProviderConfig when the
/// service was not reached (a transport failure, a timeout).
pub(crate) fn classify_at<E, R>(
    service: &str,
    endpoint: Option<&str>,
    config_name: &str,
    operation: &str,
    id: &str,
    error: &SdkError<E, R>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut classified = classify_sdk_error(operation, id, error);
    if !matches!(error, SdkError::ServiceError(_)) {
        let endpoint = endpoint.unwrap_or("the AWS default endpoint");
        classified.message = format!(
            "{} ({service} endpoint {endpoint} of ProviderConfig {config_name}, spec.endpoint)",
            classified.message
        );
    }
    classified
}

/// Classifies an SDK failure by its error code; transport failures are transient.
pub(crate) fn classify_sdk_error<E, R>(
    operation: &str,
    id: &str,
    error: &SdkError<E, R>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let class = match error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException",
            ) => ErrorClass::Throttled,
            Some("InvalidDBInstanceState" | "InvalidDBInstanceStateFault") => {
                ErrorClass::NotReadyYet
            }
            Some(
                "InternalFailure"
                | "ServiceUnavailable"
                | "InternalError"
                | "ServiceFailure"
                | "ConcurrentModification",
            ) => ErrorClass::Transient,
            _ => ErrorClass::Terminal,
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Terminal,
    };
    let message = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_rds::error::DisplayErrorContext(error).to_string(),
    };
    ProviderError::new(class, operation, id, message)
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

/// The largest page `DescribeDBInstances` returns.
const SWEEP_PAGE_SIZE: i32 = 100;

impl External for RdsExternal {
    /// RDS counts requests per account and region.
    fn scope(&self, managed: &Managed) -> String {
        managed
            .for_provider
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let observed = self
                .describe(&params, managed.external_name.as_str())
                .await?;
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
            let observed = instance(managed, record)?;
            let password = match Self::password_ref(managed, &params) {
                Some(selector) if !manages_password(&params) => {
                    self.read_password(&selector).await?
                }
                _ => None,
            };
            Ok(Present {
                up_to_date: convert::drift(&params, observed).is_empty(),
                late_init: convert::late_init(&params, observed),
                connection_details: convert::connection_details(observed, password.as_deref()),
                at_provider: serde_json::to_value(observed.at_provider()).unwrap_or(Value::Null),
                ready: observed.ready(),
            })
        })
    }

    fn can_sweep(&self) -> bool {
        true
    }

    /// `DescribeDBInstances` without an identifier: up to 100 instances of the region per call.
    fn sweep_page<'a>(
        &'a self,
        scope: &'a str,
        page: Option<String>,
    ) -> BoxFuture<'a, Result<SweepPage, ProviderError>> {
        Box::pin(async move {
            let output = self
                .client(scope)
                .describe_db_instances()
                .max_records(SWEEP_PAGE_SIZE)
                .set_marker(page)
                .send()
                .await
                .map_err(|error| self.classify("list DB instances", scope, &error))?;
            let records = output
                .db_instances()
                .iter()
                .filter_map(|instance| {
                    let id = instance.db_instance_identifier()?;
                    Some((
                        ExternalName::new(id),
                        CloudRecord::new(observed_instance(instance)),
                    ))
                })
                .collect();
            Ok(SweepPage {
                records,
                next: output.marker().map(str::to_owned),
            })
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let params = parameters(managed)?;
            let id = managed.external_name.as_str();
            // With an RDS-managed password no password exists outside AWS.
            let password = if manages_password(&params) {
                None
            } else {
                Some(self.ensure_password(managed, &params).await?)
            };
            let request = self
                .client(&params.region)
                .create_db_instance()
                .db_instance_identifier(id)
                .engine(&params.engine)
                .set_engine_version(params.engine_version.clone())
                .db_instance_class(&params.db_instance_class)
                .set_allocated_storage(params.allocated_storage)
                .set_db_name(params.db_name.clone())
                .set_master_username(params.master_username.clone())
                .set_master_user_password(password.clone())
                .set_manage_master_user_password(params.manage_master_user_password)
                .set_enable_iam_database_authentication(params.enable_iam_database_authentication)
                .set_db_subnet_group_name(params.db_subnet_group_name.clone())
                .set_vpc_security_group_ids(params.vpc_security_group_ids.clone())
                .set_publicly_accessible(params.publicly_accessible)
                .set_storage_encrypted(params.storage_encrypted)
                .set_backup_retention_period(params.backup_retention_period)
                .set_deletion_protection(params.deletion_protection)
                .set_tags(params.tags.as_ref().map(tags));
            let record = match request.send().await {
                // The identifier is unique per account and region, so an existing instance under
                // our external name is the one this create is about: creating is idempotent.
                Err(error) if error_code(&error) == Some("DBInstanceAlreadyExists") => None,
                Err(error) => return Err(self.classify("create DB instance", id, &error)),
                Ok(output) => output
                    .db_instance()
                    .map(|instance| CloudRecord::new(observed_instance(instance))),
            };
            Ok(Created {
                connection_details: password
                    .map(|password| ("password".to_owned(), password))
                    .into_iter()
                    .collect(),
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
            let id = managed.external_name.as_str();
            let observed = instance(managed, record)?;
            let drift = convert::drift(&params, observed);
            let client = self.client(&params.region);
            if !drift.modify.is_empty() {
                let modify = &drift.modify;
                client
                    .modify_db_instance()
                    .db_instance_identifier(id)
                    .apply_immediately(true)
                    .set_engine_version(modify.engine_version.clone())
                    .set_allow_major_version_upgrade(modify.engine_version.as_ref().map(|_| true))
                    .set_db_instance_class(modify.db_instance_class.clone())
                    .set_allocated_storage(modify.allocated_storage)
                    .set_db_subnet_group_name(modify.db_subnet_group_name.clone())
                    .set_vpc_security_group_ids(modify.vpc_security_group_ids.clone())
                    .set_publicly_accessible(modify.publicly_accessible)
                    .set_backup_retention_period(modify.backup_retention_period)
                    .set_deletion_protection(modify.deletion_protection)
                    .set_enable_iam_database_authentication(
                        modify.enable_iam_database_authentication,
                    )
                    .set_manage_master_user_password(modify.manage_master_user_password)
                    .send()
                    .await
                    .map_err(|error| self.classify("modify DB instance", id, &error))?;
            }
            if let Some(arn) = &observed.arn {
                if !drift.tags_to_add.is_empty() {
                    client
                        .add_tags_to_resource()
                        .resource_name(arn)
                        .set_tags(Some(tags(&drift.tags_to_add)))
                        .send()
                        .await
                        .map_err(|error| self.classify("tag DB instance", id, &error))?;
                }
                if !drift.tags_to_remove.is_empty() {
                    client
                        .remove_tags_from_resource()
                        .resource_name(arn)
                        .set_tag_keys(Some(drift.tags_to_remove.clone()))
                        .send()
                        .await
                        .map_err(|error| self.classify("untag DB instance", id, &error))?;
                }
            }
            if !drift.immutable.is_empty() {
                return Err(ProviderError::terminal(
                    "update DB instance",
                    id,
                    format!(
                        "spec.forProvider fields {} differ from AWS but cannot be changed in place",
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
            let id = managed.external_name.as_str();
            let skip_final_snapshot = params
                .skip_final_snapshot
                .unwrap_or(params.final_db_snapshot_identifier.is_none());
            let result = self
                .client(&params.region)
                .delete_db_instance()
                .db_instance_identifier(id)
                .skip_final_snapshot(skip_final_snapshot)
                .set_final_db_snapshot_identifier(if skip_final_snapshot {
                    None
                } else {
                    params.final_db_snapshot_identifier.clone()
                })
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(error) if error_code(&error) == Some("DBInstanceNotFound") => Ok(()),
                Err(error) => Err(self.classify("delete DB instance", id, &error)),
            }
        })
    }
}
