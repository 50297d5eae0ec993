//! CompositionRevisions: the pure part. Each distinct Composition spec gets one immutable
//! revision named `<composition>-<short hash>`, numbered in order of creation.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Length of the hash suffix in a revision name.
const SHORT_HASH: usize = 7;

/// The content hash of a Composition spec (its JSON with sorted keys).
pub(crate) fn spec_hash(spec: &Value) -> String {
    let digest = Sha256::digest(spec.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<composition>-<short hash>`, shortened to stay a valid 63-character name.
pub(crate) fn revision_name(composition: &str, hash: &str) -> String {
    let short = &hash[..SHORT_HASH.min(hash.len())];
    let keep = 63 - SHORT_HASH - 1;
    let prefix: String = composition.chars().take(keep).collect();
    format!("{}-{short}", prefix.trim_end_matches('-'))
}

/// What the revision controller must do for a Composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RevisionStep {
    /// The newest revision already snapshots this spec.
    UpToDate,
    /// Create a new revision.
    Create { name: String, revision: i64 },
    /// An older revision has this spec again (a rollback): renumber it to be the newest.
    Promote { name: String, revision: i64 },
}

/// Decides from the revisions that exist for the Composition, as `(name, revision)`.
pub(crate) fn plan_revision(
    composition: &str,
    hash: &str,
    existing: &[(String, i64)],
) -> RevisionStep {
    let name = revision_name(composition, hash);
    let newest = existing.iter().map(|(_, n)| *n).max().unwrap_or(0);
    match existing.iter().find(|(n, _)| *n == name) {
        Some((_, n)) if *n == newest => RevisionStep::UpToDate,
        Some(_) => RevisionStep::Promote {
            name,
            revision: newest + 1,
        },
        None => RevisionStep::Create {
            name,
            revision: newest + 1,
        },
    }
}

/// The revisions to garbage-collect: all but the newest `limit` by number. The newest revision
/// and every revision in `in_use` (pinned or rendered with by an XR) are always kept, so the
/// history can grow past `limit` while XRs hold on to old revisions. Sorted by name.
pub(crate) fn to_collect(
    existing: &[(String, i64)],
    limit: usize,
    in_use: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut by_age: Vec<&(String, i64)> = existing.iter().collect();
    // Newest first; equal numbers (never written so, but possible by hand) by name.
    by_age.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out: Vec<String> = by_age
        .iter()
        .skip(limit.max(1))
        .filter(|(name, _)| !in_use.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod gc_tests {
    use std::collections::BTreeSet;

    use super::*;

    fn history(n: i64) -> Vec<(String, i64)> {
        (1..=n).map(|i| (format!("c-{i:02}"), i)).collect()
    }

    #[test]
    fn only_revisions_beyond_the_newest_limit_are_collected() {
        let gone = to_collect(&history(13), 10, &BTreeSet::new());
        assert_eq!(gone, vec!["c-01", "c-02", "c-03"]);
        assert!(to_collect(&history(10), 10, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_revision_an_xr_uses_is_never_collected() {
        let in_use: BTreeSet<String> = ["c-02".to_owned()].into();
        assert_eq!(to_collect(&history(13), 10, &in_use), vec!["c-01", "c-03"]);
    }

    #[test]
    fn the_newest_revision_survives_a_limit_of_zero() {
        assert_eq!(
            to_collect(&history(3), 0, &BTreeSet::new()),
            vec!["c-01", "c-02"]
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_hash_ignores_key_order() {
        assert_eq!(
            spec_hash(&json!({"a": 1, "b": 2})),
            spec_hash(&json!({"b": 2, "a": 1}))
        );
        assert_ne!(spec_hash(&json!({"a": 1})), spec_hash(&json!({"a": 2})));
    }

    #[test]
    fn revision_names_carry_a_short_hash_and_fit_in_63_characters() {
        assert_eq!(revision_name("db", "abcdef0123"), "db-abcdef0");
        assert!(revision_name(&"x".repeat(80), "abcdef0123").len() <= 63);
    }

    #[test]
    fn the_first_revision_is_number_one() {
        assert_eq!(
            plan_revision("db", "abcdef0", &[]),
            RevisionStep::Create {
                name: "db-abcdef0".into(),
                revision: 1
            }
        );
    }

    #[test]
    fn an_unchanged_spec_needs_nothing() {
        let existing = vec![("db-abcdef0".to_owned(), 1)];
        assert_eq!(
            plan_revision("db", "abcdef0", &existing),
            RevisionStep::UpToDate
        );
    }

    #[test]
    fn a_changed_spec_gets_the_next_number() {
        let existing = vec![("db-abcdef0".to_owned(), 1)];
        assert_eq!(
            plan_revision("db", "1234567", &existing),
            RevisionStep::Create {
                name: "db-1234567".into(),
                revision: 2
            }
        );
    }

    #[test]
    fn a_rollback_renumbers_the_old_revision() {
        let existing = vec![("db-abcdef0".to_owned(), 1), ("db-1234567".to_owned(), 2)];
        assert_eq!(
            plan_revision("db", "abcdef0", &existing),
            RevisionStep::Promote {
                name: "db-abcdef0".into(),
                revision: 3
            }
        );
    }
}
