//! Label and field selectors as lists and watches take them (`labelSelector`, `fieldSelector`).

use std::borrow::Cow;

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, PartialEq)]
enum FieldRequirement {
    Equals(String, String),
    NotEquals(String, String),
}

/// A parsed label and field selector pair; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

/// Splits on commas that are not inside parentheses (`env in (a,b),tier`).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(s: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unable to parse requirement: `{whole}`: expected a (value,...) set"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_label(req: &str) -> Result<LabelRequirement, ApiError> {
    if let Some(key) = req.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(key.trim().to_owned()));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            k.trim().to_owned(),
            v.trim().to_owned(),
        ));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            k.trim().to_owned(),
            v.trim().to_owned(),
        ));
    }
    let words: Vec<&str> = req.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(LabelRequirement::NotIn(
                (*key).to_owned(),
                parse_set(set, req)?,
            ));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(LabelRequirement::In(
                (*key).to_owned(),
                parse_set(set, req)?,
            ));
        }
        return Err(ApiError::BadRequest(format!(
            "unable to parse requirement: `{req}`"
        )));
    }
    Ok(LabelRequirement::Exists(req.trim().to_owned()))
}

fn parse_field(req: &str) -> Result<FieldRequirement, ApiError> {
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(FieldRequirement::NotEquals(
            k.trim().to_owned(),
            v.trim().to_owned(),
        ));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(FieldRequirement::Equals(
            k.trim().to_owned(),
            v.trim().to_owned(),
        ));
    }
    Err(ApiError::BadRequest(format!(
        "invalid field selector: `{req}`: expected field=value or field!=value"
    )))
}

impl Selector {
    /// Parses a list request's `labelSelector` and `fieldSelector` query parameters (either may be
    /// absent). Field requirements still name field labels; [`Selector::resolve_fields`] maps them
    /// to object paths once the kind is known. A malformed requirement is a 400
    /// (`ApiError::BadRequest`) quoting it.
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = label_selector
            .map(split_top_level)
            .unwrap_or_default()
            .into_iter()
            .map(parse_label)
            .collect::<Result<_, _>>()?;
        let fields = field_selector
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(parse_field)
            .collect::<Result<_, _>>()?;
        Ok(Selector { labels, fields })
    }

    /// Checks every field requirement against the labels this kind supports and rewrites each to
    /// the object path it compares (`path_of` answers `None` for an unsupported label). An
    /// unsupported label is a 400 naming it, as kube-apiserver answers; it is never ignored.
    pub fn resolve_fields(
        mut self,
        kind: &str,
        path_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ApiError> {
        for requirement in &mut self.fields {
            let (FieldRequirement::Equals(label, _) | FieldRequirement::NotEquals(label, _)) =
                requirement;
            let path = path_of(label).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "field label not supported: {label} (not a field selector of {kind})"
                ))
            })?;
            *label = path;
        }
        Ok(self)
    }

    /// Whether the selector has no requirement, so every object matches.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `object` meets every label and field requirement. A missing label fails `=`, `in`
    /// and `exists` and satisfies `!=` and `notin`; a missing field compares as the empty string.
    pub fn matches(&self, object: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels = object.get("metadata").and_then(|m| m.get("labels"));
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, set) => label(k).is_some_and(|l| set.iter().any(|s| s == l)),
            LabelRequirement::NotIn(k, set) => {
                !label(k).is_some_and(|l| set.iter().any(|s| s == l))
            }
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|r| match r {
                FieldRequirement::Equals(k, v) => field_value(object, k) == *v,
                FieldRequirement::NotEquals(k, v) => field_value(object, k) != *v,
            })
    }
}

/// A field's value as field selectors compare it: scalars as text, absent as "".
fn field_value<'a>(object: &'a Value, path: &str) -> Cow<'a, str> {
    let found = path.split('.').try_fold(object, |v, key| match v {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(key),
    });
    match found {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Null) | None => Cow::Borrowed(""),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_based_and_equality_label_requirements_combine() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"env": "prod", "tier": "db"}}});
        let cases = [
            ("env=prod", true, "equality"),
            ("env==prod,tier", true, "double equals and existence"),
            ("env in (dev, prod)", true, "set membership"),
            ("env notin (prod)", false, "set exclusion"),
            ("!tier", false, "non-existence"),
            ("env!=dev", true, "inequality"),
        ];
        for (sel, want, why) in cases {
            assert_eq!(
                Selector::parse(Some(sel), None).unwrap().matches(&obj),
                want,
                "{why}: {sel}"
            );
        }
    }

    #[test]
    fn field_selectors_match_name_and_namespace() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            Selector::parse(None, Some("metadata.name=a,metadata.namespace=ns"))
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !Selector::parse(None, Some("metadata.name!=a"))
                .unwrap()
                .matches(&obj)
        );
    }

    #[test]
    fn field_selectors_compare_scalars_as_text_and_absent_fields_as_empty() {
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": 3, "paused": false, "gone": null}});
        for (sel, want) in [
            ("spec.replicas=3", true),
            ("spec.replicas=4", false),
            ("spec.paused=false", true),
            ("spec.gone=", true),
            ("spec.absent=", true),
            ("spec.absent!=", false),
            ("metadata.name.deeper=", true),
        ] {
            assert_eq!(
                Selector::parse(None, Some(sel)).unwrap().matches(&obj),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn an_unsupported_field_label_is_a_bad_request_naming_it() {
        let path_of = |l: &str| (l == "metadata.name").then(|| l.to_owned());
        let err = Selector::parse(None, Some("metadata.name=a,spec.size=3"))
            .unwrap()
            .resolve_fields("Widget", path_of)
            .unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("spec.size"), "{err}");
        let ok = Selector::parse(None, Some("metadata.name=a"))
            .unwrap()
            .resolve_fields("Widget", path_of);
        assert!(ok.is_ok());
    }

    #[test]
    fn a_label_resolves_to_the_path_it_compares() {
        let obj = json!({"metadata": {"name": "e"}, "source": {"component": "kubelet"}});
        let sel = Selector::parse(None, Some("source=kubelet"))
            .unwrap()
            .resolve_fields("Event", |_| Some("source.component".into()))
            .unwrap();
        assert!(sel.matches(&obj));
    }
}
