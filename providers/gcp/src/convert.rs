//! Pure conversion between the Bucket spec and what GCS reports: drift, late initialization,
//! `atProvider`, and the insert and patch bodies. No I/O.

use std::collections::{BTreeMap, HashMap};

use gcloud_storage::http::buckets::insert::{BucketCreationConfig, RetentionPolicyCreationConfig};
use gcloud_storage::http::buckets::lifecycle::{Rule, rule};
use gcloud_storage::http::buckets::patch::BucketPatchConfig;
use gcloud_storage::http::buckets::{
    Bucket, IamConfiguration, Lifecycle, Versioning, iam_configuration,
};
use serde_json::{Map, Value};

use crate::crd::{
    BucketObservation, BucketParameters, LifecycleAction, LifecycleCondition, LifecycleRule,
};

/// The bucket state Strata compares against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedBucket {
    pub location: String,
    pub storage_class: String,
    pub labels: BTreeMap<String, String>,
    pub versioning: bool,
    pub uniform_bucket_level_access: bool,
    pub lifecycle_rules: Vec<LifecycleRule>,
    pub retention_period_seconds: u64,
    pub time_created: Option<String>,
    pub metageneration: i64,
}

/// Reads the fields Strata manages out of the SDK's bucket.
pub fn observed_bucket(bucket: &Bucket) -> ObservedBucket {
    ObservedBucket {
        location: bucket.location.clone(),
        storage_class: bucket.storage_class.clone(),
        labels: bucket
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        versioning: bucket
            .versioning
            .as_ref()
            .is_some_and(|versioning| versioning.enabled),
        uniform_bucket_level_access: bucket
            .iam_configuration
            .as_ref()
            .and_then(|iam| iam.uniform_bucket_level_access.as_ref())
            .is_some_and(|ubla| ubla.enabled),
        lifecycle_rules: bucket
            .lifecycle
            .as_ref()
            .map(|lifecycle| lifecycle.rule.iter().map(from_rule).collect())
            .unwrap_or_default(),
        retention_period_seconds: bucket
            .retention_policy
            .as_ref()
            .map_or(0, |policy| policy.retention_period),
        time_created: bucket.time_created.and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        metageneration: bucket.metageneration,
    }
}

fn from_rule(rule: &Rule) -> LifecycleRule {
    let action = rule.action.as_ref().map(|action| LifecycleAction {
        type_: match action.r#type {
            rule::ActionType::Delete => "Delete",
            rule::ActionType::SetStorageClass => "SetStorageClass",
            rule::ActionType::AbortIncompleteMultipartUpload => "AbortIncompleteMultipartUpload",
        }
        .to_owned(),
        storage_class: action.storage_class.clone(),
    });
    let condition = rule.condition.as_ref().map(|condition| LifecycleCondition {
        age: condition.age,
        num_newer_versions: condition.num_newer_versions,
        is_live: condition.is_live,
        days_since_noncurrent_time: condition.days_since_noncurrent_time,
        matches_storage_class: condition.matches_storage_class.clone(),
    });
    LifecycleRule {
        action: action.unwrap_or_default(),
        condition: condition.unwrap_or_default(),
    }
}

/// A lifecycle action type the API accepts; anything else is a spec error naming the rule.
fn to_rule(index: usize, rule: &LifecycleRule) -> Result<Rule, String> {
    let action_type = match rule.action.type_.as_str() {
        "Delete" => rule::ActionType::Delete,
        "SetStorageClass" => rule::ActionType::SetStorageClass,
        "AbortIncompleteMultipartUpload" => rule::ActionType::AbortIncompleteMultipartUpload,
        other => {
            return Err(format!(
                "spec.forProvider.lifecycleRules[{index}].action.type: `{other}` is not Delete, SetStorageClass or AbortIncompleteMultipartUpload"
            ));
        }
    };
    Ok(Rule {
        action: Some(rule::Action {
            r#type: action_type,
            storage_class: rule.action.storage_class.clone(),
        }),
        condition: Some(rule::Condition {
            age: rule.condition.age,
            num_newer_versions: rule.condition.num_newer_versions,
            is_live: rule.condition.is_live,
            days_since_noncurrent_time: rule.condition.days_since_noncurrent_time,
            matches_storage_class: rule.condition.matches_storage_class.clone(),
            ..Default::default()
        }),
    })
}

/// The spec fields that differ from GCS, by field name; immutable ones are listed separately.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    pub changed: Vec<&'static str>,
    pub immutable: Vec<&'static str>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.immutable.is_empty()
    }
}

/// Compares only fields the spec sets.
pub fn drift(desired: &BucketParameters, observed: &ObservedBucket) -> Drift {
    let mut drift = Drift::default();
    if !desired.location.eq_ignore_ascii_case(&observed.location) {
        drift.immutable.push("location");
    }
    if desired
        .storage_class
        .as_ref()
        .is_some_and(|class| !class.eq_ignore_ascii_case(&observed.storage_class))
    {
        drift.changed.push("storageClass");
    }
    if desired
        .labels
        .as_ref()
        .is_some_and(|labels| *labels != observed.labels)
    {
        drift.changed.push("labels");
    }
    if desired
        .versioning
        .is_some_and(|enabled| enabled != observed.versioning)
    {
        drift.changed.push("versioning");
    }
    if desired
        .uniform_bucket_level_access
        .is_some_and(|enabled| enabled != observed.uniform_bucket_level_access)
    {
        drift.changed.push("uniformBucketLevelAccess");
    }
    if desired
        .lifecycle_rules
        .as_ref()
        .is_some_and(|rules| *rules != observed.lifecycle_rules)
    {
        drift.changed.push("lifecycleRules");
    }
    if desired
        .retention_period_seconds
        .is_some_and(|seconds| seconds != observed.retention_period_seconds)
    {
        drift.changed.push("retentionPeriodSeconds");
    }
    drift
}

/// A merge patch for `spec.forProvider` filling unset fields, or `None` when nothing is unset.
pub fn late_init(desired: &BucketParameters, observed: &ObservedBucket) -> Option<Value> {
    let mut patch = Map::new();
    if desired.storage_class.is_none() && !observed.storage_class.is_empty() {
        patch.insert(
            "storageClass".into(),
            Value::from(observed.storage_class.clone()),
        );
    }
    if desired.versioning.is_none() {
        patch.insert("versioning".into(), Value::from(observed.versioning));
    }
    if desired.uniform_bucket_level_access.is_none() {
        patch.insert(
            "uniformBucketLevelAccess".into(),
            Value::from(observed.uniform_bucket_level_access),
        );
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// `status.atProvider`.
pub fn at_provider(name: &str, endpoint: &str, observed: &ObservedBucket) -> BucketObservation {
    BucketObservation {
        self_link: format!("{}/storage/v1/b/{name}", endpoint.trim_end_matches('/')),
        url: format!("gs://{name}"),
        time_created: observed.time_created.clone(),
        metageneration: observed.metageneration,
    }
}

fn lifecycle(rules: &[LifecycleRule]) -> Result<Lifecycle, String> {
    Ok(Lifecycle {
        rule: rules
            .iter()
            .enumerate()
            .map(|(index, rule)| to_rule(index, rule))
            .collect::<Result<_, _>>()?,
    })
}

fn labels(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn iam(enabled: bool) -> IamConfiguration {
    IamConfiguration {
        uniform_bucket_level_access: Some(iam_configuration::UniformBucketLevelAccess {
            enabled,
            locked_time: None,
        }),
        public_access_prevention: None,
    }
}

/// The insert body.
pub fn creation_config(desired: &BucketParameters) -> Result<BucketCreationConfig, String> {
    Ok(BucketCreationConfig {
        location: desired.location.clone(),
        storage_class: desired.storage_class.clone(),
        labels: desired.labels.as_ref().map(labels),
        versioning: desired.versioning.map(|enabled| Versioning { enabled }),
        iam_configuration: desired.uniform_bucket_level_access.map(iam),
        lifecycle: desired
            .lifecycle_rules
            .as_deref()
            .map(lifecycle)
            .transpose()?,
        retention_policy: desired
            .retention_period_seconds
            .filter(|seconds| *seconds > 0)
            .map(|retention_period| RetentionPolicyCreationConfig { retention_period }),
        ..Default::default()
    })
}

/// The patch body: the desired value of every managed field the spec sets. The SDK sends unset
/// fields as `null` (which clears them), so managed fields the spec leaves open are copied from
/// the observed bucket rather than cleared.
pub fn patch_config(
    desired: &BucketParameters,
    observed: &ObservedBucket,
) -> Result<BucketPatchConfig, String> {
    Ok(BucketPatchConfig {
        storage_class: Some(
            desired
                .storage_class
                .clone()
                .unwrap_or_else(|| observed.storage_class.clone()),
        ),
        labels: Some(labels(desired.labels.as_ref().unwrap_or(&observed.labels))),
        versioning: Some(Versioning {
            enabled: desired.versioning.unwrap_or(observed.versioning),
        }),
        iam_configuration: Some(iam(desired
            .uniform_bucket_level_access
            .unwrap_or(observed.uniform_bucket_level_access))),
        // An empty rule list or a zero retention is sent as `null`, which removes the setting.
        lifecycle: Some(
            desired
                .lifecycle_rules
                .as_deref()
                .unwrap_or(&observed.lifecycle_rules),
        )
        .filter(|rules| !rules.is_empty())
        .map(lifecycle)
        .transpose()?,
        retention_policy: Some(
            desired
                .retention_period_seconds
                .unwrap_or(observed.retention_period_seconds),
        )
        .filter(|seconds| *seconds > 0)
        .map(|retention_period| RetentionPolicyCreationConfig { retention_period }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> BucketParameters {
        BucketParameters {
            project: "demo".into(),
            location: "US".into(),
            storage_class: Some("STANDARD".into()),
            labels: Some(BTreeMap::from([("team".into(), "web".into())])),
            versioning: Some(true),
            ..Default::default()
        }
    }

    fn observed() -> ObservedBucket {
        ObservedBucket {
            location: "us".into(),
            storage_class: "STANDARD".into(),
            labels: BTreeMap::from([("team".into(), "web".into())]),
            versioning: true,
            metageneration: 1,
            ..Default::default()
        }
    }

    #[test]
    fn matching_bucket_has_no_drift_and_location_case_is_ignored() {
        assert!(drift(&desired(), &observed()).is_empty());
    }

    #[test]
    fn changed_labels_and_versioning_are_named() {
        let mut found = observed();
        found.labels.clear();
        found.versioning = false;
        assert_eq!(
            drift(&desired(), &found).changed,
            vec!["labels", "versioning"]
        );
    }

    #[test]
    fn a_different_location_is_immutable() {
        let mut wanted = desired();
        wanted.location = "EU".into();
        assert_eq!(drift(&wanted, &observed()).immutable, vec!["location"]);
    }

    #[test]
    fn late_init_fills_unset_fields_only_once() {
        let mut wanted = desired();
        wanted.storage_class = None;
        let patch = late_init(&wanted, &observed()).unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"storageClass": "STANDARD", "uniformBucketLevelAccess": false})
        );
        wanted.storage_class = Some("STANDARD".into());
        wanted.uniform_bucket_level_access = Some(false);
        assert_eq!(late_init(&wanted, &observed()), None);
    }

    #[test]
    fn an_unknown_lifecycle_action_names_the_rule() {
        let mut wanted = desired();
        wanted.lifecycle_rules = Some(vec![LifecycleRule {
            action: LifecycleAction {
                type_: "Shred".into(),
                storage_class: None,
            },
            ..Default::default()
        }]);
        let error = creation_config(&wanted).unwrap_err();
        assert!(error.contains("lifecycleRules[0].action.type"), "{error}");
    }

    #[test]
    fn lifecycle_rules_round_trip_through_the_sdk_types() {
        let rule = LifecycleRule {
            action: LifecycleAction {
                type_: "SetStorageClass".into(),
                storage_class: Some("COLDLINE".into()),
            },
            condition: LifecycleCondition {
                age: Some(30),
                ..Default::default()
            },
        };
        let sdk = to_rule(0, &rule).unwrap();
        assert_eq!(from_rule(&sdk), rule);
    }
}
