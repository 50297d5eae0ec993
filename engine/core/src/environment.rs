//! EnvironmentConfig selection and merging, as function-environment-configs does it: the one
//! implementation the XR controller and `strata render` both call ([`resolve`]).
//!
//! The XR's `spec.environmentConfigRefs` win when set. Otherwise the Composition's
//! `environment.environmentConfigs` sources are resolved in order:
//! - `Reference`: the config of that name. A missing one is an error, unless the environment's
//!   `policy.resolution` is `Optional`, when it is skipped.
//! - `Selector`: its `matchLabels` (values from the XR's `valueFromFieldPath`, or literal with
//!   `type: Value`; a missing XR value is an error under `fromFieldPathPolicy: Required`, and
//!   skips the label otherwise, while no label at all skips the source). `mode: Single` (the
//!   default) needs exactly one match; `Multiple` needs at least `minMatch`, sorts by
//!   `sortByFieldPath` (default `metadata.name`; values of one type: strings or numbers) and
//!   keeps the first `maxMatch`.
//!
//! Data merges in order, later configs winning (objects deeply, everything else replaced).
//! Data enters as the configs that exist and leaves as the merged environment; nothing here reads
//! the cluster.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use strata_schema::pointer::Pointer;

use crate::fieldpath::FieldPath;
use crate::model::{
    EnvironmentSource, EnvironmentSourceType, EnvironmentSpec, FromFieldPathPolicy,
};
use crate::patch;

/// An EnvironmentConfig as selection sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `metadata.name`: what references and `spec.environmentConfigRefs` name.
    pub name: String,
    /// `metadata.labels`: what selectors match.
    pub labels: BTreeMap<String, String>,
    /// The top-level `data`, merged into the environment.
    pub data: Value,
}

impl Config {
    /// The config as an object, for `sortByFieldPath`.
    fn object(&self) -> Value {
        json!({"metadata": {"name": self.name, "labels": self.labels}, "data": self.data})
    }
}

/// Why the environment could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    /// A referenced EnvironmentConfig does not exist and the resolution is not `Optional`;
    /// holds its name.
    #[error("Required environment config `{0}` not found")]
    Missing(String),
    /// A source is incomplete or cannot be evaluated (no `ref.name`, a `Required` label whose
    /// XR value is missing, configs that cannot be sorted).
    #[error("environmentConfigs[{index}]: {message}")]
    Source {
        /// The source's position in `environment.environmentConfigs`.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A selector matched a number of configs its mode does not allow.
    #[error("environmentConfigs[{index}]: selector matched {found} EnvironmentConfigs, {wanted}")]
    Count {
        /// The source's position in `environment.environmentConfigs`.
        index: usize,
        /// How many configs matched.
        found: usize,
        /// What the mode needs (`mode Single needs exactly one`).
        wanted: String,
    },
    /// A config's data cannot be merged into the environment.
    #[error("merging EnvironmentConfig `{name}`: {message}")]
    Merge {
        /// The config's name.
        name: String,
        /// Why the merge failed.
        message: String,
    },
}

/// The names the XR's `spec.environmentConfigRefs` list, in order (entries without a string
/// `name` are skipped): the references that, when set, win over the Composition's sources.
pub fn xr_config_refs(xr: &Value) -> Vec<String> {
    xr.at("/spec/environmentConfigRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The environment of one XR: the selected configs' data merged in order; `None` when nothing
/// is selected.
pub fn resolve(
    xr: &Value,
    xr_refs: &[String],
    environment: Option<&EnvironmentSpec>,
    configs: &[Config],
) -> Result<Option<Value>, EnvironmentError> {
    let sources = environment
        .map(|e| e.environment_configs.as_slice())
        .unwrap_or_default();
    let optional = environment
        .and_then(|e| e.policy.as_ref())
        .and_then(|p| p.get("resolution"))
        .and_then(Value::as_str)
        == Some("Optional");
    let names = select_with(xr, xr_refs, sources, optional, configs)?;
    merge(&names, configs)
}

/// The selected config names, in merge order (references must exist: `resolution: Required`).
pub fn select(
    xr: &Value,
    xr_refs: &[String],
    sources: &[EnvironmentSource],
    configs: &[Config],
) -> Result<Vec<String>, EnvironmentError> {
    select_with(xr, xr_refs, sources, false, configs)
}

fn select_with(
    xr: &Value,
    xr_refs: &[String],
    sources: &[EnvironmentSource],
    optional: bool,
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
                if configs.iter().any(|c| c.name == r.name) {
                    names.push(r.name.clone());
                } else if !optional {
                    return Err(EnvironmentError::Missing(r.name.clone()));
                }
            }
            EnvironmentSourceType::Selector => {
                names.extend(select_by_labels(xr, index, source, configs)?);
            }
        }
    }
    Ok(names)
}

fn select_by_labels(
    xr: &Value,
    index: usize,
    source: &EnvironmentSource,
    configs: &[Config],
) -> Result<Vec<String>, EnvironmentError> {
    let err = |message: String| EnvironmentError::Source { index, message };
    let Some(sel) = &source.selector else {
        return Err(err("selector is required".into()));
    };
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for label in &sel.match_labels {
        let value = match label.kind.as_deref() {
            Some("Value") => label.value.clone(),
            _ => {
                let raw = label.value_from_field_path.as_deref().unwrap_or_default();
                let path = FieldPath::parse(raw).map_err(|e| {
                    err(format!(
                        "matchLabels `{}`: valueFromFieldPath: {e}",
                        label.key
                    ))
                })?;
                match path.get_opt(xr) {
                    Ok(Some(Value::String(s))) => Some(s.clone()),
                    Ok(Some(other)) => Some(other.to_string()),
                    Ok(None) => None,
                    Err(e) => return Err(err(format!("matchLabels `{}`: {e}", label.key))),
                }
            }
        };
        match value {
            Some(v) => {
                wanted.insert(label.key.clone(), v);
            }
            None if label.from_field_path_policy == Some(FromFieldPathPolicy::Required) => {
                return Err(err(format!(
                    "matchLabels `{}`: required value not found",
                    label.key
                )));
            }
            // The function leaves an optional label out of the selector.
            None => {}
        }
    }
    // No label at all: the function requests nothing for this source.
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut matching: Vec<&Config> = configs
        .iter()
        .filter(|c| wanted.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    if sel.mode.as_deref() != Some("Multiple") {
        if matching.len() != 1 {
            return Err(EnvironmentError::Count {
                index,
                found: matching.len(),
                wanted: "mode Single needs exactly one".into(),
            });
        }
        return Ok(vec![matching[0].name.clone()]);
    }
    if let Some(min) = sel.min_match
        && (matching.len() as u64) < min
    {
        return Err(EnvironmentError::Count {
            index,
            found: matching.len(),
            wanted: format!("minMatch is {min}"),
        });
    }
    let sort_path = sel.sort_by_field_path.as_deref().unwrap_or("metadata.name");
    sort_by_field_path(&mut matching, sort_path).map_err(err)?;
    if let Some(max) = sel.max_match {
        matching.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    Ok(matching.into_iter().map(|c| c.name.clone()).collect())
}

/// Sorts (stably) by the value at `path`: all strings or all numbers; a missing value sorts as
/// the type's zero value, as the function does.
fn sort_by_field_path(configs: &mut [&Config], path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("cannot sort by empty field path".into());
    }
    let parsed = FieldPath::parse(path).map_err(|e| format!("sortByFieldPath: {e}"))?;
    let mut keyed: Vec<(Option<Value>, &Config)> = Vec::with_capacity(configs.len());
    for c in configs.iter() {
        let object = c.object();
        let value = parsed
            .get_opt(&object)
            .map_err(|e| format!("sortByFieldPath: {e}"))?
            .filter(|v| !v.is_null())
            .cloned();
        keyed.push((value, *c));
    }
    let kind = |v: &Value| match v {
        Value::String(_) => Some("string"),
        Value::Number(_) => Some("number"),
        _ => None,
    };
    let mut seen: Option<&'static str> = None;
    for (value, _) in &keyed {
        let Some(v) = value else { continue };
        let Some(k) = kind(v) else {
            return Err(format!(
                "sortByFieldPath {path}: cannot sort values of type {v}"
            ));
        };
        match seen {
            None => seen = Some(k),
            Some(s) if s != k => {
                return Err(format!(
                    "sortByFieldPath {path}: cannot sort values of different types {s} and {k}"
                ));
            }
            Some(_) => {}
        }
    }
    let zero = match seen {
        None => return Ok(()),
        Some("string") => Value::String(String::new()),
        Some(_) => json!(0),
    };
    keyed.sort_by(|(a, _), (b, _)| {
        let (a, b) = (a.as_ref().unwrap_or(&zero), b.as_ref().unwrap_or(&zero));
        match (a, b) {
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        }
    });
    for (slot, (_, c)) in configs.iter_mut().zip(keyed) {
        *slot = c;
    }
    Ok(())
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

    use super::*;
    use crate::model::{EnvironmentSelector, EnvironmentSelectorLabel, NameReference};

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

    #[test]
    fn xr_config_refs_lists_the_named_refs_in_order() {
        let xr = json!({"spec": {"environmentConfigRefs": [
            {"name": "b"}, {"kind": "EnvironmentConfig"}, {"name": 3}, {"name": "a"}
        ]}});
        assert_eq!(xr_config_refs(&xr), ["b", "a"]);
        assert!(xr_config_refs(&json!({"spec": {}})).is_empty());
        assert!(xr_config_refs(&json!({"spec": {"environmentConfigRefs": "x"}})).is_empty());
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

    fn multiple(sort: Option<&str>, min: Option<u64>, max: Option<u64>) -> EnvironmentSource {
        EnvironmentSource {
            kind: EnvironmentSourceType::Selector,
            reference: None,
            selector: Some(EnvironmentSelector {
                mode: Some("Multiple".into()),
                sort_by_field_path: sort.map(str::to_owned),
                min_match: min,
                max_match: max,
                match_labels: vec![EnvironmentSelectorLabel {
                    key: "team".into(),
                    kind: Some("Value".into()),
                    value: Some("a".into()),
                    ..Default::default()
                }],
            }),
        }
    }

    fn spec(sources: Vec<EnvironmentSource>, optional: bool) -> EnvironmentSpec {
        EnvironmentSpec {
            environment_configs: sources,
            policy: optional.then(|| json!({"resolution": "Optional"})),
            ..Default::default()
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
    fn a_missing_reference_is_an_error_unless_the_resolution_is_optional() {
        let sources = vec![by_ref("nope"), by_ref("base")];
        assert_eq!(
            resolve(
                &json!({}),
                &[],
                Some(&spec(sources.clone(), false)),
                &configs()
            ),
            Err(EnvironmentError::Missing("nope".into()))
        );
        assert_eq!(
            resolve(&json!({}), &[], Some(&spec(sources, true)), &configs()),
            Ok(Some(json!({"region": "eu", "tier": {"a": 1}})))
        );
    }

    #[test]
    fn multiple_mode_sorts_bounds_and_truncates_its_matches() {
        let team = |name: &str, priority: i64| {
            cfg(
                name,
                &[("team", "a")],
                json!({"priority": priority, "from": name}),
            )
        };
        let configs = vec![
            team("c", 1),
            team("a", 3),
            team("b", 2),
            cfg("x", &[], json!({})),
        ];
        let pick = |source| select(&json!({}), &[], &[source], &configs);
        for (source, want, reason) in [
            (
                multiple(None, None, None),
                Ok(vec!["a", "b", "c"]),
                "by name by default",
            ),
            (
                multiple(Some("data.priority"), None, Some(2)),
                Ok(vec!["c", "b"]),
                "by a number, then the first maxMatch",
            ),
            (
                multiple(None, Some(4), None),
                Err("environmentConfigs[0]: selector matched 3 EnvironmentConfigs, minMatch is 4"),
                "fewer than minMatch",
            ),
        ] {
            let got = pick(source).map_err(|e| e.to_string());
            let want = want
                .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>())
                .map_err(str::to_owned);
            assert_eq!(got, want, "{reason}");
        }
    }
}
