//! Helpers shared by Strata's integration tests, unit tests and benchmarks, so that each exists
//! once: waiting for a condition ([`eventually`]), running the real kubectl ([`kubectl`] and its
//! variants), temporary directories removed on drop ([`TempDir`]), free loopback ports
//! ([`free_port`]), child processes stopped by PID ([`Killed`]), the cloud emulators
//! ([`Emulator`]), a recording, fault-injecting proxy in front of them ([`cloud_proxy`]) and a
//! scripted Kubernetes API for unit tests of controllers' request sequences ([`scripted`]).
//!
//! A dev-dependency only. It depends on no Strata crate, so any crate's tests may use it without
//! building a second copy of that crate. Everything binds to 127.0.0.1 and stops what it started
//! by PID.

#![warn(missing_docs, unreachable_pub)]

pub mod cloud_proxy;
pub mod emulators;
pub mod scripted;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use emulators::Emulator;

/// How often [`eventually`] and [`eventually_async`] check again.
const POLL: Duration = Duration::from_millis(100);

/// The repository root.
pub fn repo_root() -> PathBuf {
    // This crate lives in `tests/support`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two levels below the repository root")
        .to_owned()
}

/// A port on 127.0.0.1 that was free when asked (the listener is closed before returning).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A free `127.0.0.1:<port>` address (see [`free_port`]).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The path of a fresh temporary directory `strata-<name>-<pid>`: whatever an earlier run left
/// there is removed, and the directory itself is not created (a server creates its data dir).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh, created temporary directory (`strata-<name>-<pid>-<n>`), removed on drop, also when
/// the test fails. `n` counts the directories this process made, so two made under one name
/// never share a path.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates the directory, removing what an earlier run left under the same path.
    pub fn new(name: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = temp_dir(&format!("{name}-{n}"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed by PID (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Killed {
    /// Kills and reaps the process now; dropping afterwards does nothing more.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Calls `check` until it returns a value, at most for `timeout`, and returns that value; fails
/// the test naming `what` when time runs out.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for an asynchronous check, sleeping on the Tokio timer between tries.
pub async fn eventually_async<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A `kubectl --kubeconfig <kubeconfig>` command, with a discovery cache next to the kubeconfig
/// (a port reused by a later control plane must not see stale discovery documents). Add the
/// arguments, and anything else (a working directory, stdin), before running it.
pub fn kubectl_command(kubeconfig: &Path) -> Command {
    let cache = kubeconfig
        .parent()
        .map(|dir| dir.join("kubectl-cache"))
        .unwrap_or_default();
    let mut command = Command::new("kubectl");
    command
        .env("KUBECACHEDIR", cache)
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

/// Runs the real kubectl against `kubeconfig` and returns what it did, successful or not.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_command(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs")
}

/// Runs kubectl and fails the test unless it succeeds; returns its stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    succeeded(args, kubectl(kubeconfig, args))
}

/// Runs kubectl in `dir` (relative `-f` paths are read from there) and fails the test unless it
/// succeeds; returns its stdout.
pub fn kubectl_ok_in(dir: &Path, kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl_command(kubeconfig)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kubectl runs");
    succeeded(args, out)
}

/// Runs kubectl with `stdin` as its standard input (e.g. `apply -f -`) and returns what it did.
pub fn kubectl_stdin(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = kubectl_command(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(stdin.as_bytes())
        .expect("kubectl reads its stdin");
    child.wait_with_output().expect("kubectl finishes")
}

/// [`kubectl`] from async code: runs on Tokio's blocking pool so the runtime keeps serving.
pub async fn kubectl_async(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = kubectl_command(kubeconfig);
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().expect("kubectl runs"))
        .await
        .expect("the blocking task finishes")
}

/// [`kubectl_ok`] from async code.
pub async fn kubectl_ok_async(kubeconfig: &Path, args: &[&str]) -> String {
    succeeded(args, kubectl_async(kubeconfig, args).await)
}

/// Fails the test unless kubectl succeeded; returns its stdout.
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
