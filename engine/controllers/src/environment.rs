//! EnvironmentConfig selection and merging: the pure part. The XR's `spec.environmentConfigRefs`
//! win when set; otherwise the Composition's `environment.environmentConfigs` sources are
//! resolved in order (a reference by name, or a label selector whose values come from the XR or
//! are literal). Data merges in order, later configs winning.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_core::fieldpath::FieldPath;
use strata_core::model::{EnvironmentSource, EnvironmentSourceType, FromFieldPathPolicy};
use strata_core::patch;

/// An EnvironmentConfig as selection sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub data: Value,
}

/// Why the environment could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    #[error("EnvironmentConfig `{0}` does not exist")]
    Missing(String),
    #[error("environmentConfigs[{index}]: {message}")]
    Source { index: usize, message: String },
    #[error("environmentConfigs[{index}]: selector matched {found} EnvironmentConfigs, {wanted}")]
    Count {
        index: usize,
        found: usize,
        wanted: String,
    },
    #[error("merging EnvironmentConfig `{name}`: {message}")]
    Merge { name: String, message: String },
}

/// The selected config names, in merge order.
pub fn select(
    xr: &Value,
    xr_refs: &[String],
    sources: &[EnvironmentSource],
    configs: &[Config],
) -> Result<Vec<String>, EnvironmentError> {
    if !xr_refs.is_empty() {
        return Ok(xr_refs.to_vec());
    }
    let mut names = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        match source.kind {
            EnvironmentSourceType::Reference => {
                let Some(r) = &source.reference else {
                    return Err(EnvironmentError::Source {
                        index,
                        message: "ref.name is required".into(),
                    });
                };
                names.push(r.name.clone());
            }
            EnvironmentSourceType::Selector => {
                let Some(sel) = &source.selector else {
                    return Err(EnvironmentError::Source {
                        index,
                        message: "selector is required".into(),
                    });
                };
                let mut wanted: BTreeMap<String, String> = BTreeMap::new();
                let mut skip = false;
                for label in &sel.match_labels {
                    let value = match label.kind.as_deref() {
                        Some("Value") => label.value.clone(),
                        _ => {
                            let raw = label.value_from_field_path.as_deref().unwrap_or_default();
                            let path =
                                FieldPath::parse(raw).map_err(|e| EnvironmentError::Source {
                                    index,
                                    message: format!(
                                        "matchLabels `{}`: valueFromFieldPath: {e}",
                                        label.key
                                    ),
                                })?;
                            match path.get_opt(xr) {
                                Ok(Some(Value::String(s))) => Some(s.clone()),
                                Ok(Some(other)) => Some(other.to_string()),
                                Ok(None) => None,
                                Err(e) => {
                                    return Err(EnvironmentError::Source {
                                        index,
                                        message: format!("matchLabels `{}`: {e}", label.key),
                                    });
                                }
                            }
                        }
                    };
                    match value {
                        Some(v) => {
                            wanted.insert(label.key.clone(), v);
                        }
                        None if label.from_field_path_policy
                            == Some(FromFieldPathPolicy::Required) =>
                        {
                            return Err(EnvironmentError::Source {
                                index,
                                message: format!(
                                    "matchLabels `{}`: required value not found",
                                    label.key
                                ),
                            });
                        }
                        None => skip = true,
                    }
                }
                if skip {
                    continue;
                }
                let mut matching: Vec<&Config> = configs
                    .iter()
                    .filter(|c| wanted.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
                    .collect();
                matching.sort_by(|a, b| a.name.cmp(&b.name));
                let multiple = sel.mode.as_deref() == Some("Multiple");
                if !multiple {
                    if matching.len() != 1 {
                        return Err(EnvironmentError::Count {
                            index,
                            found: matching.len(),
                            wanted: "mode Single needs exactly one".into(),
                        });
                    }
                } else {
                    let min = sel.min_match.unwrap_or(0) as usize;
                    if matching.len() < min {
                        return Err(EnvironmentError::Count {
                            index,
                            found: matching.len(),
                            wanted: format!("minMatch is {min}"),
                        });
                    }
                    if let Some(max) = sel.max_match {
                        matching.truncate(max as usize);
                    }
                }
                names.extend(matching.into_iter().map(|c| c.name.clone()));
            }
        }
    }
    Ok(names)
}

/// Merges the data of the named configs in order; `None` when nothing was selected.
pub fn merge(names: &[String], configs: &[Config]) -> Result<Option<Value>, EnvironmentError> {
    let mut merged: Option<Value> = None;
    for name in names {
        let Some(c) = configs.iter().find(|c| &c.name == name) else {
            return Err(EnvironmentError::Missing(name.clone()));
        };
        let data = if c.data.is_null() {
            Value::Object(Default::default())
        } else {
            c.data.clone()
        };
        merged = Some(patch::merge(merged, data, false, false).map_err(|message| {
            EnvironmentError::Merge {
                name: name.clone(),
                message,
            }
        })?);
    }
    Ok(merged)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;
    use strata_core::model::{EnvironmentSelector, EnvironmentSelectorLabel, NameReference};

    use super::*;

    fn cfg(name: &str, labels: &[(&str, &str)], data: Value) -> Config {
        Config {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            data,
        }
    }

    fn configs() -> Vec<Config> {
        vec![
            cfg("base", &[], json!({"region": "eu", "tier": {"a": 1}})),
            cfg("prod", &[("env", "prod")], json!({"tier": {"b": 2}})),
            cfg("dev", &[("env", "dev")], json!({"region": "us"})),
        ]
    }

    fn by_ref(name: &str) -> EnvironmentSource {
        EnvironmentSource {
            kind: EnvironmentSourceType::Reference,
            reference: Some(NameReference { name: name.into() }),
            selector: None,
        }
    }

    fn by_label_from_xr(path: &str) -> EnvironmentSource {
        EnvironmentSource {
            kind: EnvironmentSourceType::Selector,
            reference: None,
            selector: Some(EnvironmentSelector {
                match_labels: vec![EnvironmentSelectorLabel {
                    key: "env".into(),
                    value_from_field_path: Some(path.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn references_and_selectors_resolve_in_order_and_merge_later_wins() {
        let xr = json!({"spec": {"env": "prod"}});
        let names = select(
            &xr,
            &[],
            &[by_ref("base"), by_label_from_xr("spec.env")],
            &configs(),
        )
        .unwrap();
        assert_eq!(names, vec!["base", "prod"]);
        let merged = merge(&names, &configs()).unwrap();
        assert_eq!(
            merged,
            Some(json!({"region": "eu", "tier": {"a": 1, "b": 2}}))
        );
    }

    #[test]
    fn the_xrs_own_refs_override_the_composition() {
        let names = select(&json!({}), &["dev".into()], &[by_ref("base")], &configs()).unwrap();
        assert_eq!(names, vec!["dev"]);
    }

    #[test]
    fn a_single_selector_matching_nothing_is_an_error() {
        let xr = json!({"spec": {"env": "staging"}});
        let err = select(&xr, &[], &[by_label_from_xr("spec.env")], &configs()).unwrap_err();
        assert!(
            matches!(err, EnvironmentError::Count { found: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_optional_label_whose_xr_field_is_missing_skips_the_source() {
        let names = select(&json!({}), &[], &[by_label_from_xr("spec.env")], &configs()).unwrap();
        assert!(names.is_empty());
        assert_eq!(merge(&names, &configs()).unwrap(), None);
    }

    #[test]
    fn a_reference_to_a_missing_config_is_an_error() {
        assert_eq!(
            merge(&["nope".into()], &configs()),
            Err(EnvironmentError::Missing("nope".into()))
        );
    }
}
