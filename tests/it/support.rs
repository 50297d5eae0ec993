//! The built `strata` binary (known only to this test target), and the shared helpers of
//! `strata-test-support` the tests here use by this module's name.

use std::path::Path;
use std::process::{Command, Output};

pub use strata_test_support::{TempDir, repo_root};

/// Runs the `strata` binary built for this test run.
pub fn strata(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the strata binary runs")
}
