//! Which Composition, and which of its revisions, an XR uses. Pure decisions over plain
//! snapshots of the cluster, so every rule is unit-tested.
//!
//! Composition precedence (as Crossplane): the XRD's `enforcedCompositionRef`, the XR's
//! `spec.compositionRef`, the XR's `spec.compositionSelector.matchLabels`, the XRD's
//! `defaultCompositionRef`, and last any Composition whose `compositeTypeRef` is the XR's type
//! (Crossplane lists Compositions with an empty selector when nothing else is set). Where
//! Crossplane picks a random Composition among several candidates, Strata picks the first by
//! name, so the choice is reproducible; it is then written to `spec.compositionRef` and kept,
//! as in Crossplane. Revisions follow `compositionUpdatePolicy`: `Automatic`
//! takes the newest revision, `Manual` keeps `spec.compositionRevisionRef` once set.

use std::collections::BTreeMap;

use strata_core::model::UpdatePolicy;

/// What selection needs to know about one Composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompositionCandidate {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// `compositeTypeRef` as `apiVersion` and `kind`.
    pub(crate) composite_api_version: String,
    pub(crate) composite_kind: String,
}

/// The selection-relevant fields of an XR and its XRD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SelectionInput {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) enforced_ref: Option<String>,
    pub(crate) composition_ref: Option<String>,
    pub(crate) selector: Option<BTreeMap<String, String>>,
    pub(crate) default_ref: Option<String>,
}

/// Why no Composition could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectError {
    #[error("Composition `{name}` ({source_field}) does not exist")]
    Missing {
        name: String,
        source_field: &'static str,
    },
    #[error("Composition `{name}` ({source_field}) composes {found}, not {wanted}")]
    Incompatible {
        name: String,
        source_field: &'static str,
        found: String,
        wanted: String,
    },
    #[error("no compatible Composition matches the compositionSelector labels {labels:?}")]
    NoMatch { labels: BTreeMap<String, String> },
    #[error("no compatible Composition: no Composition has compositeTypeRef {wanted}")]
    NoneCompatible { wanted: String },
}

/// Chooses the Composition for an XR.
pub(crate) fn select_composition(
    input: &SelectionInput,
    candidates: &[CompositionCandidate],
) -> Result<String, SelectError> {
    let compatible = |c: &CompositionCandidate| {
        c.composite_api_version == input.api_version && c.composite_kind == input.kind
    };
    let by_name = |name: &str, source_field: &'static str| -> Result<String, SelectError> {
        let Some(c) = candidates.iter().find(|c| c.name == name) else {
            return Err(SelectError::Missing {
                name: name.to_owned(),
                source_field,
            });
        };
        if !compatible(c) {
            return Err(SelectError::Incompatible {
                name: name.to_owned(),
                source_field,
                found: format!("{}/{}", c.composite_api_version, c.composite_kind),
                wanted: format!("{}/{}", input.api_version, input.kind),
            });
        }
        Ok(c.name.clone())
    };
    if let Some(name) = &input.enforced_ref {
        return by_name(name, "the XRD's enforcedCompositionRef");
    }
    if let Some(name) = &input.composition_ref {
        return by_name(name, "spec.compositionRef");
    }
    if let Some(labels) = &input.selector {
        let mut matching: Vec<&CompositionCandidate> = candidates
            .iter()
            .filter(|c| compatible(c) && labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .collect();
        matching.sort_by(|a, b| a.name.cmp(&b.name));
        return match matching.first() {
            Some(c) => Ok(c.name.clone()),
            None => Err(SelectError::NoMatch {
                labels: labels.clone(),
            }),
        };
    }
    if let Some(name) = &input.default_ref {
        return by_name(name, "the XRD's defaultCompositionRef");
    }
    candidates
        .iter()
        .filter(|c| compatible(c))
        .map(|c| &c.name)
        .min()
        .cloned()
        .ok_or_else(|| SelectError::NoneCompatible {
            wanted: format!("{}/{}", input.api_version, input.kind),
        })
}

/// A CompositionRevision as revision selection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RevisionCandidate {
    pub(crate) name: String,
    pub(crate) composition: String,
    pub(crate) revision: i64,
}

/// True when a revision's labels satisfy the XR's `spec.compositionRevisionSelector.matchLabels`
/// (no selector matches everything).
pub(crate) fn revision_matches(
    labels: &BTreeMap<String, String>,
    selector: Option<&BTreeMap<String, String>>,
) -> bool {
    selector.is_none_or(|want| want.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Chooses the revision an XR renders with, or `None` while the chosen Composition has no
/// revision yet (the revision controller has not caught up).
pub(crate) fn select_revision(
    composition: &str,
    policy: UpdatePolicy,
    pinned: Option<&str>,
    revisions: &[RevisionCandidate],
) -> Option<String> {
    let own = || revisions.iter().filter(|r| r.composition == composition);
    if policy == UpdatePolicy::Manual
        && let Some(p) = pinned
        && own().any(|r| r.name == p)
    {
        return Some(p.to_owned());
    }
    own()
        .max_by(|a, b| {
            a.revision
                .cmp(&b.revision)
                .then_with(|| b.name.cmp(&a.name))
        })
        .map(|r| r.name.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn comp(name: &str, kind: &str, labels: &[(&str, &str)]) -> CompositionCandidate {
        CompositionCandidate {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            composite_api_version: "example.org/v1".into(),
            composite_kind: kind.into(),
        }
    }

    fn input() -> SelectionInput {
        SelectionInput {
            api_version: "example.org/v1".into(),
            kind: "XDb".into(),
            ..Default::default()
        }
    }

    fn candidates() -> Vec<CompositionCandidate> {
        vec![
            comp("small", "XDb", &[("size", "small")]),
            comp("large-b", "XDb", &[("size", "large")]),
            comp("large-a", "XDb", &[("size", "large")]),
            comp("bucket", "XBucket", &[("size", "small")]),
        ]
    }

    #[test]
    fn selection_follows_precedence_with_a_reason_per_row() {
        let labels = |v: &str| Some(BTreeMap::from([("size".to_owned(), v.to_owned())]));
        let rows: Vec<(&str, SelectionInput, Result<String, SelectError>)> = vec![
            (
                "enforced wins over everything",
                SelectionInput {
                    enforced_ref: Some("small".into()),
                    composition_ref: Some("large-a".into()),
                    default_ref: Some("large-b".into()),
                    ..input()
                },
                Ok("small".into()),
            ),
            (
                "an explicit ref wins over the selector and the default",
                SelectionInput {
                    composition_ref: Some("large-b".into()),
                    selector: labels("small"),
                    ..input()
                },
                Ok("large-b".into()),
            ),
            (
                "a selector picks the first match by name",
                SelectionInput {
                    selector: labels("large"),
                    default_ref: Some("small".into()),
                    ..input()
                },
                Ok("large-a".into()),
            ),
            (
                "a selector ignores Compositions of another kind",
                SelectionInput {
                    selector: labels("small"),
                    ..input()
                },
                Ok("small".into()),
            ),
            (
                "the default is the last resort",
                SelectionInput {
                    default_ref: Some("small".into()),
                    ..input()
                },
                Ok("small".into()),
            ),
            (
                "nothing set picks the first compatible Composition by name (`bucket`, earlier, composes another kind)",
                input(),
                Ok("large-a".into()),
            ),
            (
                "nothing set and no compatible Composition is an error naming the type",
                SelectionInput {
                    kind: "XQueue".into(),
                    ..input()
                },
                Err(SelectError::NoneCompatible {
                    wanted: "example.org/v1/XQueue".into(),
                }),
            ),
            (
                "a ref to a missing Composition is an error",
                SelectionInput {
                    composition_ref: Some("nope".into()),
                    ..input()
                },
                Err(SelectError::Missing {
                    name: "nope".into(),
                    source_field: "spec.compositionRef",
                }),
            ),
            (
                "a ref to another kind's Composition is an error",
                SelectionInput {
                    composition_ref: Some("bucket".into()),
                    ..input()
                },
                Err(SelectError::Incompatible {
                    name: "bucket".into(),
                    source_field: "spec.compositionRef",
                    found: "example.org/v1/XBucket".into(),
                    wanted: "example.org/v1/XDb".into(),
                }),
            ),
            (
                "a selector matching nothing is an error",
                SelectionInput {
                    selector: labels("huge"),
                    ..input()
                },
                Err(SelectError::NoMatch {
                    labels: BTreeMap::from([("size".into(), "huge".into())]),
                }),
            ),
        ];
        for (reason, input, want) in rows {
            assert_eq!(select_composition(&input, &candidates()), want, "{reason}");
        }
    }

    fn revs() -> Vec<RevisionCandidate> {
        vec![
            RevisionCandidate {
                name: "db-aaa".into(),
                composition: "db".into(),
                revision: 1,
            },
            RevisionCandidate {
                name: "db-bbb".into(),
                composition: "db".into(),
                revision: 2,
            },
            RevisionCandidate {
                name: "other-ccc".into(),
                composition: "other".into(),
                revision: 9,
            },
        ]
    }

    #[test]
    fn a_revision_selector_keeps_only_matching_revisions() {
        let labels = BTreeMap::from([("channel".to_owned(), "stable".to_owned())]);
        let stable = BTreeMap::from([("channel".to_owned(), "stable".to_owned())]);
        let beta = BTreeMap::from([("channel".to_owned(), "beta".to_owned())]);
        assert!(revision_matches(&labels, None));
        assert!(revision_matches(&labels, Some(&stable)));
        assert!(!revision_matches(&labels, Some(&beta)));
        assert!(!revision_matches(&BTreeMap::new(), Some(&stable)));
    }

    #[test]
    fn automatic_policy_follows_the_newest_revision_even_when_pinned() {
        assert_eq!(
            select_revision("db", UpdatePolicy::Automatic, Some("db-aaa"), &revs()),
            Some("db-bbb".into())
        );
    }

    #[test]
    fn manual_policy_keeps_the_pinned_revision() {
        assert_eq!(
            select_revision("db", UpdatePolicy::Manual, Some("db-aaa"), &revs()),
            Some("db-aaa".into())
        );
    }

    #[test]
    fn manual_policy_without_a_pin_starts_at_the_newest_revision() {
        assert_eq!(
            select_revision("db", UpdatePolicy::Manual, None, &revs()),
            Some("db-bbb".into())
        );
    }

    #[test]
    fn a_pin_to_another_compositions_revision_is_ignored() {
        assert_eq!(
            select_revision("db", UpdatePolicy::Manual, Some("other-ccc"), &revs()),
            Some("db-bbb".into())
        );
    }

    #[test]
    fn a_composition_without_revisions_yields_none() {
        assert_eq!(
            select_revision("new", UpdatePolicy::Automatic, None, &revs()),
            None
        );
    }
}
