//! The checked-in `crds/` must be exactly what `strata crds` generates.

use crate::support::{repo_root, strata};

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let root = repo_root();
    let out = strata(&["crds", "--check", "--out", "crds"], &root);
    assert!(
        out.status.success(),
        "crds/ is stale; run `cargo run --release -- crds`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generated_crds_are_written_deterministically() {
    let dir = strata_test_support::temp_dir("crds");
    let first = strata(
        &["crds", "--out", dir.to_str().expect("utf-8 path")],
        &repo_root(),
    );
    assert!(first.status.success());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("written")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    assert!(
        names.len() >= 4,
        "XRD, Composition, CompositionRevision and EnvironmentConfig: {names:?}"
    );
    let again = strata(
        &[
            "crds",
            "--check",
            "--out",
            dir.to_str().expect("utf-8 path"),
        ],
        &repo_root(),
    );
    assert!(
        again.status.success(),
        "a second generation is byte-identical"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
