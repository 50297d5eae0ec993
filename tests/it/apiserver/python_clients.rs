//! The third-party Python clients against `strata up`: the official `kubernetes` client,
//! lightkube and kr8s, each driven by a script under `tests/clients/` through the ordinary
//! operations of its API (typed and generic objects, patches of every kind, server-side apply,
//! status and scale subresources, selectors, pages, watches and their 410, error bodies,
//! events of both APIs, custom resources). The scripts assert on what the server returned and
//! report every check; a failed check fails the test with the client's traceback.
//!
//! The clients live in their own virtual environment, `tests/clients/.venv`, which the test
//! command (`scripts/test`) makes from `tests/clients/requirements.txt`: the official client
//! needs a newer PyYAML than the composition function pinned in `tests/requirements.txt`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fixture::{ControlPlane, Killed};

/// The watch history of the control plane: small, so a script can outrun it and see a 410.
const HISTORY: u64 = 40;
/// A script that has not finished by then is killed and fails the test.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn python() -> PathBuf {
    let python = clients_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, or `python3 -m venv tests/clients/.venv && \
         tests/clients/.venv/bin/pip install -r tests/clients/requirements.txt`",
        python.display()
    );
    python
}

/// Runs `script` with `args` in the clients' environment, killed after [`SCRIPT_TIMEOUT`];
/// returns its exit status, stdout and stderr (kept in files under `dir` meanwhile).
fn run_script(
    script: &str,
    args: &[&OsStr],
    dir: &std::path::Path,
) -> (std::process::ExitStatus, String, String) {
    let out_path = dir.join(format!("{script}.stdout"));
    let err_path = dir.join(format!("{script}.stderr"));
    let child = Command::new(python())
        .arg(clients_dir().join(script))
        .args(args)
        .current_dir(clients_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("a stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("a stderr file"))
        .spawn()
        .expect("the clients' python runs");
    let mut child = Killed(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waiting for the script") {
            break status;
        }
        assert!(
            started.elapsed() < SCRIPT_TIMEOUT,
            "{script} did not finish in {SCRIPT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// Runs `script` against a fresh control plane and returns its report once every check passed.
fn run(script: &str, namespace: &str) -> Value {
    let cp = ControlPlane::start_with(&format!("py-{namespace}"), |c| {
        c.event_history = HISTORY;
    });
    let (status, stdout, stderr) = run_script(
        script,
        &[
            cp.kubeconfig.as_os_str(),
            OsStr::new(namespace),
            OsStr::new(&HISTORY.to_string()),
        ],
        &cp.dir,
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{script} printed no report ({e}), exit {status}:\n{stdout}\n{stderr}")
    });
    let failed = report["failed"].as_object().cloned().unwrap_or_default();
    let details: Vec<String> = failed
        .iter()
        .map(|(name, trace)| format!("--- {name}\n{}", trace.as_str().unwrap_or_default()))
        .collect();
    assert!(
        failed.is_empty() && status.success(),
        "{script}: {} check(s) failed (exit {status}):\n{}\n{stderr}",
        failed.len(),
        details.join("\n")
    );
    report
}

fn assert_ran(report: &Value, checks: &[&str]) {
    let passed: Vec<&str> = report["passed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(passed, checks, "the checks that passed, in order");
}

#[test]
fn the_official_python_client_behaves_as_against_kube_apiserver() {
    let report = run("official.py", "official");
    assert_ran(
        &report,
        &[
            "namespaces",
            "configmaps",
            "server_side_apply",
            "secrets",
            "deployments",
            "services",
            "selectors_and_pages",
            "watches",
            "errors",
            "crds_and_custom_objects",
            "dynamic_client",
            "events",
            "pods_without_nodes",
            "collections_and_options",
        ],
    );
}

#[test]
fn lightkube_behaves_as_against_kube_apiserver() {
    let report = run("lightkube_client.py", "lightkube");
    assert_ran(
        &report,
        &[
            "namespaces",
            "configmaps",
            "server_side_apply",
            "secrets",
            "deployments",
            "services",
            "selectors_and_pages",
            "watches",
            "errors",
            "generic_resources",
            "events",
            "pods_without_nodes",
            "async_client",
        ],
    );
}

#[test]
fn kr8s_behaves_as_against_kube_apiserver() {
    let report = run("kr8s_client.py", "kr8s");
    assert_ran(
        &report,
        &[
            "basics",
            "namespaces",
            "configmaps",
            "secrets",
            "deployments",
            "services",
            "selectors",
            "watches",
            "errors",
            "custom_resources",
            "async_api",
        ],
    );
}

#[test]
fn the_python_clients_authenticate_with_a_client_certificate() {
    let cp = ControlPlane::start("py-cert");
    let carol = cp.dir.join("carol.kubeconfig");
    let out = super::super::support::strata(
        &[
            "kubeconfig",
            "--data-dir",
            cp.dir.to_str().unwrap(),
            "--user",
            "carol",
            "--group",
            "dev",
            "--out",
            carol.to_str().unwrap(),
        ],
        &cp.dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "dev-namespaces",
        "--clusterrole=view",
        "--group=dev",
    ]);
    // `view` bound cluster-wide reads Namespaces (aggregation fills it in the background).
    strata_test_support::eventually("view reads namespaces", Duration::from_secs(10), || {
        let out = super::fixture::kubectl(&carol, &["get", "namespaces", "-o", "name"]);
        out.status.success().then_some(())
    });
    let (status, stdout, stderr) = run_script("cert_auth.py", &[carol.as_os_str()], &cp.dir);
    assert!(status.success(), "{stderr}");
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let namespaces =
        serde_json::json!(["default", "kube-node-lease", "kube-public", "kube-system"]);
    assert_eq!(seen["kubernetes"], serde_json::json!(["carol", namespaces]));
    assert_eq!(seen["lightkube"][1], namespaces);
    assert_eq!(seen["kr8s"], serde_json::json!(["carol", namespaces]));
}
