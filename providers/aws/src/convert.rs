//! Pure conversion between the DBInstance spec and what RDS reports: the observed snapshot,
//! drift (what ModifyDBInstance must change, which tags to add or remove, which immutable fields
//! differ), late initialization and connection details. No SDK calls, no I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use strata_provider::ConnectionDetails;

use crate::crd::{DBInstanceObservation, DBInstanceParameters, Endpoint};

/// The RDS state Strata compares against, extracted once from the SDK's `DBInstance`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ObservedInstance {
    pub(crate) status: String,
    pub(crate) engine: String,
    pub(crate) engine_version: Option<String>,
    pub(crate) db_instance_class: Option<String>,
    pub(crate) allocated_storage: Option<i32>,
    pub(crate) db_name: Option<String>,
    pub(crate) master_username: Option<String>,
    pub(crate) db_subnet_group_name: Option<String>,
    /// Sorted.
    pub(crate) vpc_security_group_ids: Vec<String>,
    pub(crate) publicly_accessible: Option<bool>,
    pub(crate) storage_encrypted: Option<bool>,
    pub(crate) backup_retention_period: Option<i32>,
    pub(crate) deletion_protection: Option<bool>,
    pub(crate) endpoint: Option<Endpoint>,
    pub(crate) arn: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) iam_database_authentication_enabled: Option<bool>,
    /// The ARN of the RDS-managed master password's secret, when RDS manages it.
    pub(crate) master_user_secret_arn: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl ObservedInstance {
    /// `status.atProvider`.
    pub(crate) fn at_provider(&self) -> DBInstanceObservation {
        DBInstanceObservation {
            status: self.status.clone(),
            endpoint: self.endpoint.clone(),
            arn: self.arn.clone(),
            resource_id: self.resource_id.clone(),
            iam_database_authentication_enabled: self.iam_database_authentication_enabled,
            master_user_secret_arn: self.master_user_secret_arn.clone(),
        }
    }

    /// Usable by clients.
    pub(crate) fn ready(&self) -> bool {
        self.status == "available"
    }
}

/// The fields ModifyDBInstance must set; `None` means unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Modification {
    pub(crate) engine_version: Option<String>,
    pub(crate) db_instance_class: Option<String>,
    pub(crate) allocated_storage: Option<i32>,
    pub(crate) db_subnet_group_name: Option<String>,
    pub(crate) vpc_security_group_ids: Option<Vec<String>>,
    pub(crate) publicly_accessible: Option<bool>,
    pub(crate) backup_retention_period: Option<i32>,
    pub(crate) deletion_protection: Option<bool>,
    pub(crate) enable_iam_database_authentication: Option<bool>,
    /// Only ever `Some(true)`: handing the password to RDS.
    pub(crate) manage_master_user_password: Option<bool>,
}

impl Modification {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Modification::default()
    }
}

/// Everything that differs between the spec and AWS.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Drift {
    pub(crate) modify: Modification,
    pub(crate) tags_to_add: BTreeMap<String, String>,
    pub(crate) tags_to_remove: Vec<String>,
    /// Spec fields that differ but RDS cannot change in place.
    pub(crate) immutable: Vec<&'static str>,
}

impl Drift {
    pub(crate) fn is_empty(&self) -> bool {
        self.modify.is_empty()
            && self.tags_to_add.is_empty()
            && self.tags_to_remove.is_empty()
            && self.immutable.is_empty()
    }
}

/// `16` matches `16.3`: a major version pins only the major.
fn engine_version_matches(desired: &str, observed: &str) -> bool {
    observed == desired
        || observed
            .strip_prefix(desired)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Compares only fields the spec sets; unset fields are the cloud's to choose (and get
/// late-initialized).
pub(crate) fn drift(desired: &DBInstanceParameters, observed: &ObservedInstance) -> Drift {
    fn differs<T: PartialEq + Clone>(desired: &Option<T>, observed: &Option<T>) -> Option<T> {
        desired
            .as_ref()
            .filter(|value| observed.as_ref() != Some(*value))
            .cloned()
    }
    let mut drift = Drift::default();
    if !desired.engine.eq_ignore_ascii_case(&observed.engine) {
        drift.immutable.push("engine");
    }
    if differs(&desired.db_name, &observed.db_name).is_some() {
        drift.immutable.push("dbName");
    }
    if differs(&desired.master_username, &observed.master_username).is_some() {
        drift.immutable.push("masterUsername");
    }
    if differs(&desired.storage_encrypted, &observed.storage_encrypted).is_some() {
        drift.immutable.push("storageEncrypted");
    }
    let managed_password = observed.master_user_secret_arn.is_some();
    match desired.manage_master_user_password {
        Some(true) if !managed_password => drift.modify.manage_master_user_password = Some(true),
        // Taking the password back from RDS needs a new password from somewhere; that is a
        // decision for a human, not for a reconcile.
        Some(false) if managed_password => drift.immutable.push("manageMasterUserPassword"),
        _ => {}
    }
    let modify = &mut drift.modify;
    modify.engine_version = desired.engine_version.clone().filter(|wanted| {
        !observed
            .engine_version
            .as_deref()
            .is_some_and(|actual| engine_version_matches(wanted, actual))
    });
    modify.db_instance_class = differs(
        &Some(desired.db_instance_class.clone()),
        &observed.db_instance_class,
    );
    modify.allocated_storage = differs(&desired.allocated_storage, &observed.allocated_storage);
    modify.db_subnet_group_name = differs(
        &desired.db_subnet_group_name,
        &observed.db_subnet_group_name,
    );
    modify.vpc_security_group_ids = desired.vpc_security_group_ids.as_ref().and_then(|ids| {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        (sorted != observed.vpc_security_group_ids).then_some(sorted)
    });
    modify.publicly_accessible =
        differs(&desired.publicly_accessible, &observed.publicly_accessible);
    modify.backup_retention_period = differs(
        &desired.backup_retention_period,
        &observed.backup_retention_period,
    );
    modify.deletion_protection =
        differs(&desired.deletion_protection, &observed.deletion_protection);
    // RDS omits the flag when it was never set; absent means off.
    modify.enable_iam_database_authentication =
        desired.enable_iam_database_authentication.filter(|wanted| {
            *wanted
                != observed
                    .iam_database_authentication_enabled
                    .unwrap_or(false)
        });
    if let Some(tags) = &desired.tags {
        drift.tags_to_add = tags
            .iter()
            .filter(|(key, value)| observed.tags.get(*key) != Some(*value))
            .map(|(k, v)| (k.clone(), v.clone()))
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

/// A merge patch for `spec.forProvider` filling the fields the user left unset, or `None` when
/// every such field is already set (so a second pass reports nothing).
pub(crate) fn late_init(
    desired: &DBInstanceParameters,
    observed: &ObservedInstance,
) -> Option<Value> {
    let mut patch = Map::new();
    let mut fill = |name: &str, unset: bool, value: Option<Value>| {
        if let (true, Some(value)) = (unset, value) {
            patch.insert(name.to_owned(), value);
        }
    };
    fill(
        "engineVersion",
        desired.engine_version.is_none(),
        observed.engine_version.clone().map(Value::from),
    );
    fill(
        "allocatedStorage",
        desired.allocated_storage.is_none(),
        observed.allocated_storage.map(Value::from),
    );
    fill(
        "dbName",
        desired.db_name.is_none(),
        observed.db_name.clone().map(Value::from),
    );
    fill(
        "masterUsername",
        desired.master_username.is_none(),
        observed.master_username.clone().map(Value::from),
    );
    fill(
        "dbSubnetGroupName",
        desired.db_subnet_group_name.is_none(),
        observed.db_subnet_group_name.clone().map(Value::from),
    );
    fill(
        "vpcSecurityGroupIds",
        desired.vpc_security_group_ids.is_none() && !observed.vpc_security_group_ids.is_empty(),
        Some(json!(observed.vpc_security_group_ids)),
    );
    fill(
        "publiclyAccessible",
        desired.publicly_accessible.is_none(),
        observed.publicly_accessible.map(Value::from),
    );
    fill(
        "storageEncrypted",
        desired.storage_encrypted.is_none(),
        observed.storage_encrypted.map(Value::from),
    );
    fill(
        "backupRetentionPeriod",
        desired.backup_retention_period.is_none(),
        observed.backup_retention_period.map(Value::from),
    );
    fill(
        "deletionProtection",
        desired.deletion_protection.is_none(),
        observed.deletion_protection.map(Value::from),
    );
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// The engines CreateDBInstance accepts.
pub(crate) const RDS_ENGINES: &[&str] = &[
    "aurora-mysql",
    "aurora-postgresql",
    "custom-oracle-ee",
    "custom-oracle-ee-cdb",
    "custom-oracle-se2",
    "custom-oracle-se2-cdb",
    "custom-sqlserver-dev",
    "custom-sqlserver-ee",
    "custom-sqlserver-se",
    "custom-sqlserver-web",
    "db2-ae",
    "db2-se",
    "mariadb",
    "mysql",
    "oracle-ee",
    "oracle-ee-cdb",
    "oracle-se2",
    "oracle-se2-cdb",
    "postgres",
    "sqlserver-dev-ee",
    "sqlserver-ee",
    "sqlserver-ex",
    "sqlserver-se",
    "sqlserver-web",
];

/// The largest `allocatedStorage` RDS accepts, in GiB.
pub(crate) const MAX_ALLOCATED_STORAGE: i32 = 65_536;

/// A `forProvider` field RDS would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spec.forProvider.{field}: {problem}")]
pub(crate) struct InvalidParameter {
    pub(crate) field: &'static str,
    pub(crate) problem: String,
}

/// Rejects what RDS would reject, before any call: an unknown engine, a storage size out of
/// range, an empty region or a class that is not a DB instance class.
pub(crate) fn validate(params: &DBInstanceParameters) -> Result<(), InvalidParameter> {
    let invalid = |field, problem: String| Err(InvalidParameter { field, problem });
    if params.region.trim().is_empty() {
        return invalid("region", "must name an AWS region".into());
    }
    if !RDS_ENGINES
        .iter()
        .any(|engine| engine.eq_ignore_ascii_case(&params.engine))
    {
        return invalid(
            "engine",
            format!(
                "`{}` is not an RDS engine (expected one of {})",
                params.engine,
                RDS_ENGINES.join(", ")
            ),
        );
    }
    if !params.db_instance_class.starts_with("db.") {
        return invalid(
            "dbInstanceClass",
            format!(
                "`{}` is not a DB instance class (e.g. db.t3.micro)",
                params.db_instance_class
            ),
        );
    }
    if params.manage_master_user_password == Some(true)
        && params.master_password_secret_ref.is_some()
    {
        return invalid(
            "masterPasswordSecretRef",
            "must not be set with manageMasterUserPassword: RDS keeps the password".into(),
        );
    }
    if let Some(storage) = params
        .allocated_storage
        .filter(|gib| !(1..=MAX_ALLOCATED_STORAGE).contains(gib))
    {
        return invalid(
            "allocatedStorage",
            format!("{storage} GiB is out of range (1 to {MAX_ALLOCATED_STORAGE})"),
        );
    }
    Ok(())
}

/// `endpoint`, `port`, `username` and (when known) `password`. With an RDS-managed password
/// there is none to give: the password stays in AWS.
pub(crate) fn connection_details(
    observed: &ObservedInstance,
    password: Option<&str>,
) -> ConnectionDetails {
    let mut details = ConnectionDetails::new();
    if let Some(endpoint) = &observed.endpoint {
        details.insert("endpoint".into(), endpoint.address.clone());
        details.insert("port".into(), endpoint.port.to_string());
    }
    if let Some(username) = &observed.master_username {
        details.insert("username".into(), username.clone());
    }
    if let Some(password) = password {
        details.insert("password".into(), password.to_owned());
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DBInstanceParameters {
        DBInstanceParameters {
            region: "us-east-1".into(),
            engine: "postgres".into(),
            engine_version: Some("16".into()),
            db_instance_class: "db.t3.micro".into(),
            allocated_storage: Some(20),
            master_username: Some("app".into()),
            tags: Some(BTreeMap::from([("team".into(), "orders".into())])),
            ..Default::default()
        }
    }

    fn observed() -> ObservedInstance {
        ObservedInstance {
            status: "available".into(),
            engine: "postgres".into(),
            engine_version: Some("16.3".into()),
            db_instance_class: Some("db.t3.micro".into()),
            allocated_storage: Some(20),
            master_username: Some("app".into()),
            backup_retention_period: Some(1),
            publicly_accessible: Some(false),
            tags: BTreeMap::from([("team".into(), "orders".into())]),
            ..Default::default()
        }
    }

    #[test]
    fn matching_instance_has_no_drift_even_with_a_minor_engine_version() {
        assert_eq!(drift(&desired(), &observed()), Drift::default());
    }

    #[test]
    fn changed_class_and_storage_modify_only_those_fields() {
        let mut wanted = desired();
        wanted.db_instance_class = "db.t3.small".into();
        wanted.allocated_storage = Some(50);
        let found = drift(&wanted, &observed());
        assert_eq!(
            found.modify,
            Modification {
                db_instance_class: Some("db.t3.small".into()),
                allocated_storage: Some(50),
                ..Default::default()
            }
        );
        assert!(found.immutable.is_empty());
    }

    #[test]
    fn tags_are_reconciled_to_exactly_the_spec() {
        let mut wanted = desired();
        wanted.tags = Some(BTreeMap::from([("env".into(), "prod".into())]));
        let found = drift(&wanted, &observed());
        assert_eq!(
            found.tags_to_add,
            BTreeMap::from([("env".into(), "prod".into())])
        );
        assert_eq!(found.tags_to_remove, vec!["team".to_owned()]);
    }

    #[test]
    fn immutable_differences_are_reported_by_field_name() {
        let mut wanted = desired();
        wanted.engine = "mysql".into();
        wanted.master_username = Some("root".into());
        assert_eq!(
            drift(&wanted, &observed()).immutable,
            vec!["engine", "masterUsername"]
        );
    }

    #[test]
    fn unset_fields_are_not_drift() {
        let mut wanted = desired();
        wanted.engine_version = None;
        wanted.allocated_storage = None;
        wanted.tags = None;
        assert!(drift(&wanted, &observed()).is_empty());
    }

    #[test]
    fn late_init_fills_only_unset_fields_and_then_reports_nothing() {
        let mut wanted = desired();
        wanted.engine_version = None;
        let patch = late_init(&wanted, &observed()).unwrap();
        assert_eq!(
            patch,
            json!({"engineVersion": "16.3", "publiclyAccessible": false, "backupRetentionPeriod": 1})
        );
        let mut merged = serde_json::to_value(&wanted).unwrap();
        json_merge(&mut merged, &patch);
        let filled: DBInstanceParameters = serde_json::from_value(merged).unwrap();
        assert_eq!(late_init(&filled, &observed()), None);
    }

    fn json_merge(target: &mut Value, patch: &Value) {
        if let (Some(target), Some(patch)) = (target.as_object_mut(), patch.as_object()) {
            for (key, value) in patch {
                target.insert(key.clone(), value.clone());
            }
        }
    }

    #[test]
    fn validate_rejects_what_rds_would_reject_and_names_the_field() {
        assert_eq!(validate(&desired()), Ok(()));
        type Breaker = fn(&mut DBInstanceParameters);
        let cases: [(Breaker, &str, &str); 5] = [
            (
                |p| p.engine = "postgress".into(),
                "engine",
                "unknown engine",
            ),
            (
                |p| p.allocated_storage = Some(-5),
                "allocatedStorage",
                "negative storage",
            ),
            (
                |p| p.allocated_storage = Some(0),
                "allocatedStorage",
                "zero storage",
            ),
            (|p| p.region = " ".into(), "region", "blank region"),
            (
                |p| p.db_instance_class = "t3.micro".into(),
                "dbInstanceClass",
                "class without db.",
            ),
        ];
        for (break_it, field, reason) in cases {
            let mut params = desired();
            break_it(&mut params);
            let error = validate(&params).unwrap_err();
            assert_eq!(error.field, field, "{reason}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("spec.forProvider.{field}: ")),
                "{reason}: {error}"
            );
        }
        let mut upper = desired();
        upper.engine = "Postgres".into();
        assert_eq!(
            validate(&upper),
            Ok(()),
            "engines compare case-insensitively"
        );
    }

    #[test]
    fn iam_authentication_is_modified_in_place_and_absent_means_off() {
        let mut wanted = desired();
        wanted.enable_iam_database_authentication = Some(true);
        assert_eq!(
            drift(&wanted, &observed()).modify,
            Modification {
                enable_iam_database_authentication: Some(true),
                ..Default::default()
            }
        );
        let mut enabled = observed();
        enabled.iam_database_authentication_enabled = Some(true);
        assert!(drift(&wanted, &enabled).is_empty());
        wanted.enable_iam_database_authentication = Some(false);
        assert!(
            drift(&wanted, &observed()).is_empty(),
            "an instance that never reported the flag has it off"
        );
    }

    #[test]
    fn handing_the_password_to_rds_is_a_modification_and_taking_it_back_is_refused() {
        let mut wanted = desired();
        wanted.manage_master_user_password = Some(true);
        assert_eq!(
            drift(&wanted, &observed())
                .modify
                .manage_master_user_password,
            Some(true)
        );
        let mut managed = observed();
        managed.master_user_secret_arn =
            Some("arn:aws:secretsmanager:us-east-1:1:secret:rds!db".into());
        assert!(drift(&wanted, &managed).is_empty());
        wanted.manage_master_user_password = Some(false);
        assert_eq!(
            drift(&wanted, &managed).immutable,
            vec!["manageMasterUserPassword"]
        );
        wanted.master_password_secret_ref = Some(strata_provider::SecretKeySelector {
            name: "pw".into(),
            namespace: "default".into(),
            key: "password".into(),
        });
        wanted.manage_master_user_password = Some(true);
        assert_eq!(
            validate(&wanted).unwrap_err().field,
            "masterPasswordSecretRef",
            "a password Secret contradicts an RDS-managed password"
        );
    }

    #[test]
    fn connection_details_carry_endpoint_port_username_and_password() {
        let mut found = observed();
        found.endpoint = Some(Endpoint {
            address: "db.local".into(),
            port: 5432,
        });
        let details = connection_details(&found, Some("s3cret"));
        assert_eq!(
            details.get("endpoint").map(String::as_str),
            Some("db.local")
        );
        assert_eq!(details.get("port").map(String::as_str), Some("5432"));
        assert_eq!(details.get("username").map(String::as_str), Some("app"));
        assert_eq!(details.get("password").map(String::as_str), Some("s3cret"));
    }
}
