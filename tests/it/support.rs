//! The built `strata` binary (known only to this test target), and the shared helpers of
//! `strata-test-support` the tests here use by this module's name.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use strata_test_support::{Killed, eventually};
pub use strata_test_support::{TempDir, repo_root};

/// Runs the `strata` binary built for this test run.
pub fn strata(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the strata binary runs")
}

/// `strata up` serving the API only (no controllers) on a free loopback port from `data_dir`.
pub fn strata_up(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .args([
            "up",
            "--no-controllers",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir);
    command
}

/// Starts [`strata_up`] on `data_dir` and waits up to `timeout` until it has written its
/// kubeconfig there (an earlier one is removed first). Killed by PID when dropped.
pub fn strata_up_started(data_dir: &Path, timeout: Duration) -> Killed {
    let kubeconfig = data_dir.join("kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let child = Killed(
        strata_up(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata up starts"),
    );
    eventually(
        &format!("strata up to write {}", kubeconfig.display()),
        timeout,
        || kubeconfig.exists().then_some(()),
    );
    child
}
