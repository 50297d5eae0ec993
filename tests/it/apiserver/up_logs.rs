//! `strata up` logs as `strata run` does: `RUST_LOG` and `--log-format`, with the controllers'
//! warnings visible.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::fixture::{Killed, kubectl, temp_dir};

/// An XRD the API server stores but the XRD controller rejects: its name is not plural.group.
const MISNAMED_XRD: &str = r#"
apiVersion: apiextensions.strata.dev/v1alpha1
kind: CompositeResourceDefinition
metadata: {name: wrong.example.org}
spec:
  group: example.org
  names: {kind: XWidget, plural: xwidgets}
  versions:
  - name: v1
    served: true
    referenceable: true
    schema: {openAPIV3Schema: {type: object}}
"#;

#[test]
fn strata_up_logs_json_lines_with_the_controllers_warnings() {
    let dir = temp_dir("up-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "up",
                "--log-format",
                "json",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let xrd = dir.join("xrd.yaml");
    std::fs::write(&xrd, MISNAMED_XRD).unwrap();
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            // The line being written may be incomplete; every complete line is JSON.
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let mut applied = false;
    for _ in 0..600 {
        if !applied && kubeconfig.exists() {
            // Retried until the controllers have installed the XRD kind.
            applied = kubectl(&kubeconfig, &["apply", "-f", xrd.to_str().unwrap()])
                .status
                .success();
        }
        let warned = lines().iter().any(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("metadata.name must be"))
        });
        if warned {
            let all = lines();
            assert!(
                all.iter()
                    .any(|l| l["fields"]["message"] == "control plane started"),
                "the start is logged too: {all:?}"
            );
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no WARN line about the misnamed XRD (applied: {applied}):\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}
