//! Pure conversion between the Bucket spec and what GCS reports: drift, late initialization,
//! `atProvider`, and the insert and patch bodies. No I/O.

use std::collections::{BTreeMap, HashMap};

use gcloud_storage::http::buckets::insert::{BucketCreationConfig, RetentionPolicyCreationConfig};
use gcloud_storage::http::buckets::lifecycle::{Rule, rule};
use gcloud_storage::http::buckets::{IamConfiguration, Lifecycle, Versioning, iam_configuration};
use serde_json::{Map, Value};

use crate::crd::{BucketObservation, BucketParameters, LifecycleRule};

/// The bucket state Strata compares against.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ObservedBucket {
    pub(crate) location: String,
    pub(crate) storage_class: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) versioning: bool,
    pub(crate) uniform_bucket_level_access: bool,
    pub(crate) lifecycle_rules: Vec<LifecycleRule>,
    pub(crate) retention_period_seconds: u64,
    pub(crate) time_created: Option<String>,
    pub(crate) metageneration: i64,
}

/// Reads the fields Strata manages out of a JSON API bucket resource; everything else in it is
/// ignored. Label values that are not strings are skipped; int64 fields may be strings (as the
/// API writes them) or numbers.
pub(crate) fn observed_bucket(bucket: &Value) -> Result<ObservedBucket, String> {
    let text = |pointer: &str| {
        bucket
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let flag = |pointer: &str| {
        bucket
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let int64 = |pointer: &str| -> Result<Option<i64>, String> {
        match bucket.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("bucket {pointer}: `{text}` is not an integer")),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("bucket {pointer}: {value} is not an integer")),
        }
    };
    let lifecycle_rules = match bucket.pointer("/lifecycle/rule") {
        None | Some(Value::Null) => Vec::new(),
        Some(rules) => serde_json::from_value(rules.clone())
            .map_err(|error| format!("bucket /lifecycle/rule: {error}"))?,
    };
    let retention = int64("/retentionPolicy/retentionPeriod")?.unwrap_or(0);
    Ok(ObservedBucket {
        location: text("/location"),
        storage_class: text("/storageClass"),
        labels: bucket
            .get("labels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        versioning: flag("/versioning/enabled"),
        uniform_bucket_level_access: flag("/iamConfiguration/uniformBucketLevelAccess/enabled"),
        lifecycle_rules,
        retention_period_seconds: u64::try_from(retention).map_err(|_| {
            format!("bucket /retentionPolicy/retentionPeriod: {retention} is negative")
        })?,
        time_created: bucket
            .get("timeCreated")
            .and_then(Value::as_str)
            .map(str::to_owned),
        metageneration: int64("/metageneration")?.unwrap_or(0),
    })
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
pub(crate) struct Drift {
    pub(crate) changed: Vec<&'static str>,
    pub(crate) immutable: Vec<&'static str>,
}

impl Drift {
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.immutable.is_empty()
    }
}

/// Compares only fields the spec sets.
pub(crate) fn drift(desired: &BucketParameters, observed: &ObservedBucket) -> Drift {
    let mut drift = Drift::default();
    if !same_location(&desired.location, &observed.location) {
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
pub(crate) fn late_init(desired: &BucketParameters, observed: &ObservedBucket) -> Option<Value> {
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
pub(crate) fn at_provider(
    name: &str,
    endpoint: &str,
    observed: &ObservedBucket,
) -> BucketObservation {
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
pub(crate) fn creation_config(desired: &BucketParameters) -> Result<BucketCreationConfig, String> {
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

/// The body of a JSON-API PATCH that changes exactly the managed fields that drifted and names
/// nothing else, so settings Strata does not manage (CORS, website, logging, ACLs, soft delete,
/// …) are left as they are: PATCH merges the body into the bucket, and a field sent as `null`
/// is cleared.
///
/// Labels are merged key by key, so a label the spec no longer carries is sent as `null`. An
/// empty rule list or a zero retention clears the setting.
pub(crate) fn patch_body(
    desired: &BucketParameters,
    observed: &ObservedBucket,
) -> Result<Value, String> {
    let changed = drift(desired, observed).changed;
    let mut body = Map::new();
    for field in changed {
        match field {
            "storageClass" => {
                if let Some(class) = &desired.storage_class {
                    body.insert(field.into(), Value::from(class.clone()));
                }
            }
            "labels" => {
                if let Some(labels) = &desired.labels {
                    let mut patch: Map<String, Value> = observed
                        .labels
                        .keys()
                        .filter(|key| !labels.contains_key(*key))
                        .map(|key| (key.clone(), Value::Null))
                        .collect();
                    for (key, value) in labels {
                        patch.insert(key.clone(), Value::from(value.clone()));
                    }
                    body.insert(field.into(), Value::Object(patch));
                }
            }
            "versioning" => {
                if let Some(enabled) = desired.versioning {
                    body.insert(field.into(), serde_json::json!({ "enabled": enabled }));
                }
            }
            "uniformBucketLevelAccess" => {
                if let Some(enabled) = desired.uniform_bucket_level_access {
                    body.insert(
                        "iamConfiguration".into(),
                        serde_json::json!({ "uniformBucketLevelAccess": { "enabled": enabled } }),
                    );
                }
            }
            "lifecycleRules" => {
                if let Some(rules) = &desired.lifecycle_rules {
                    // Validates every action type; the CRD's rule has the API's JSON shape.
                    lifecycle(rules)?;
                    let value = if rules.is_empty() {
                        Value::Null
                    } else {
                        serde_json::json!({ "rule": rules })
                    };
                    body.insert("lifecycle".into(), value);
                }
            }
            "retentionPeriodSeconds" => {
                if let Some(seconds) = desired.retention_period_seconds {
                    // The JSON API writes int64 values as strings.
                    let value = if seconds == 0 {
                        Value::Null
                    } else {
                        serde_json::json!({ "retentionPeriod": seconds.to_string() })
                    };
                    body.insert("retentionPolicy".into(), value);
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(body))
}

/// Whether a spec location names the location GCS reports. GCS reports a bucket's location
/// upper-cased exactly as it was requested (`us` → `US`, `europe-west1` → `EUROPE-WEST1`,
/// `nam4` → `NAM4`); no multi-region or dual-region name is reported as another, and a
/// configurable dual-region reports its multi-region (`US`) with the regions in
/// `customPlacementConfig`, which Strata does not manage. So names compare case-insensitively
/// and anything else is a real difference.
pub(crate) fn same_location(desired: &str, observed: &str) -> bool {
    desired.trim().eq_ignore_ascii_case(observed.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LifecycleAction, LifecycleCondition};

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
    fn lifecycle_rules_written_on_create_read_back_as_the_same_rules() {
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
        let mut wanted = desired();
        wanted.lifecycle_rules = Some(vec![rule.clone()]);
        let written = serde_json::to_value(creation_config(&wanted).unwrap()).unwrap();
        let observed = observed_bucket(&written).unwrap();
        assert_eq!(observed.lifecycle_rules, vec![rule]);
    }

    #[test]
    fn a_bucket_resource_is_read_for_the_managed_fields_only() {
        let bucket = serde_json::json!({
            "location": "US-CENTRAL1",
            "storageClass": "STANDARD",
            "labels": {"team": "web", "broken": null},
            "versioning": {"enabled": true},
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true}},
            "retentionPolicy": {"retentionPeriod": "86400"},
            "metageneration": "7",
            "timeCreated": "2026-01-02T03:04:05.000Z",
            "cors": [{"origin": ["*"], "method": ["GET"]}],
            "website": {"mainPageSuffix": "index.html"}
        });
        let observed = observed_bucket(&bucket).unwrap();
        assert_eq!(
            observed,
            ObservedBucket {
                location: "US-CENTRAL1".into(),
                storage_class: "STANDARD".into(),
                labels: BTreeMap::from([("team".into(), "web".into())]),
                versioning: true,
                uniform_bucket_level_access: true,
                lifecycle_rules: Vec::new(),
                retention_period_seconds: 86_400,
                time_created: Some("2026-01-02T03:04:05.000Z".into()),
                metageneration: 7,
            }
        );
    }

    #[test]
    fn a_malformed_metageneration_names_the_field() {
        let error = observed_bucket(&serde_json::json!({"metageneration": "seven"})).unwrap_err();
        assert!(error.contains("/metageneration"), "{error}");
    }

    #[test]
    fn the_patch_body_names_only_the_managed_fields_that_drifted() {
        let mut found = observed();
        found.versioning = false;
        let body = patch_body(&desired(), &found).unwrap();
        assert_eq!(body, serde_json::json!({"versioning": {"enabled": true}}));
    }

    #[test]
    fn a_matching_bucket_gets_an_empty_patch_body() {
        assert_eq!(
            patch_body(&desired(), &observed()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn labels_the_spec_dropped_are_sent_as_null_so_they_are_removed() {
        let mut found = observed();
        found.labels.insert("stale".into(), "yes".into());
        let body = patch_body(&desired(), &found).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"labels": {"stale": null, "team": "web"}})
        );
    }

    #[test]
    fn emptied_rules_and_zero_retention_clear_their_settings() {
        let mut found = observed();
        found.retention_period_seconds = 60;
        found.lifecycle_rules = vec![LifecycleRule::default()];
        let mut wanted = desired();
        wanted.retention_period_seconds = Some(0);
        wanted.lifecycle_rules = Some(Vec::new());
        let body = patch_body(&wanted, &found).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"lifecycle": null, "retentionPolicy": null})
        );
    }

    #[test]
    fn new_rules_retention_class_and_access_are_written_in_the_api_shape() {
        let mut wanted = desired();
        wanted.storage_class = Some("NEARLINE".into());
        wanted.uniform_bucket_level_access = Some(true);
        wanted.retention_period_seconds = Some(86_400);
        wanted.lifecycle_rules = Some(vec![LifecycleRule {
            action: LifecycleAction {
                type_: "Delete".into(),
                storage_class: None,
            },
            condition: LifecycleCondition {
                age: Some(30),
                ..Default::default()
            },
        }]);
        let body = patch_body(&wanted, &observed()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "storageClass": "NEARLINE",
                "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true}},
                "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"age": 30}}]},
                "retentionPolicy": {"retentionPeriod": "86400"},
            })
        );
    }

    #[test]
    fn an_unknown_lifecycle_action_is_refused_before_patching() {
        let mut wanted = desired();
        wanted.lifecycle_rules = Some(vec![LifecycleRule {
            action: LifecycleAction {
                type_: "Shred".into(),
                storage_class: None,
            },
            ..Default::default()
        }]);
        let error = patch_body(&wanted, &observed()).unwrap_err();
        assert!(error.contains("lifecycleRules[0].action.type"), "{error}");
    }

    #[test]
    fn locations_compare_case_insensitively_and_differ_otherwise() {
        assert!(same_location("us", "US"));
        assert!(same_location("europe-west1", "EUROPE-WEST1"));
        assert!(same_location("nam4", "NAM4"));
        assert!(!same_location("EU", "US-CENTRAL1"));
        assert!(!same_location("US", "US-CENTRAL1"));
    }
}
