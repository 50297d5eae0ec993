//! The controllers end to end through the real binaries: `strata up` (the embedded control
//! plane, API only) and `strata run --kubeconfig` as child processes on 127.0.0.1, driven by the
//! real kubectl. A claim composes a chain a → b → c of ConfigMaps (FromResourceFieldPath, with
//! readiness checks) and a Secret d that dependsOn c.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Template names in the order they were created and in the order they were deleted.
type SeenOrder = Arc<Mutex<(Vec<String>, Vec<String>)>>;

use serde_json::Value;

/// A child process killed by PID when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `strata up` + `strata run` on a temp data dir, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    // Dropped in order: the controllers before the control plane.
    _run: Killed,
    _up: Killed,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn start(name: &str, resync_seconds: u64) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "strata-it-controllers-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        let mut up = Killed(
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args([
                    "up",
                    "--no-controllers",
                    "--listen",
                    "127.0.0.1:0",
                    "--data-dir",
                ])
                .arg(dir.join("data"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("strata up starts"),
        );
        let stdout = up.0.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("strata up prints its address").unwrap();
            if line.contains("serving the Kubernetes API on") {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let run = Killed(
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args([
                    "run",
                    "--resync",
                    &resync_seconds.to_string(),
                    "--kubeconfig",
                ])
                .arg(&kubeconfig)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("strata run starts"),
        );
        let cluster = Cluster {
            dir,
            kubeconfig,
            _run: run,
            _up: up,
        };
        cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n");
        // The controllers install Strata's CRDs at start.
        cluster.eventually("the Composition CRD", 60, || {
            cluster
                .kubectl(&["get", "crd", "compositions.apiextensions.strata.dev"])
                .status
                .success()
                .then_some(())
        });
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get", "-o", "json"];
        full.extend_from_slice(args);
        let out = self.kubectl(&full);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn eventually<T>(&self, what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(t) = check() {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {seconds}s waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Records the template names of composed objects of `resource` as they appear and go.
    fn watch_order(&self, resource: &str) -> (Killed, SeenOrder) {
        let mut child = Killed(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args([
                    "get",
                    resource,
                    "-A",
                    "-l",
                    "strata.dev/composite",
                    "--watch",
                    "--output-watch-events",
                    "-o",
                    "json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("kubectl runs"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let order = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let sink = order.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            for event in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(event) = event else { break };
                let object = &event["object"];
                let template =
                    object["metadata"]["annotations"]["strata.dev/composition-resource-name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let mut o = sink.lock().unwrap();
                match event["type"].as_str() {
                    Some("ADDED") | Some("MODIFIED") if seen.insert(name.clone()) => {
                        o.0.push(template)
                    }
                    Some("DELETED") => o.1.push(template),
                    _ => {}
                }
            }
        });
        (child, order)
    }
}

fn condition(object: &Value, kind: &str) -> Option<Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

const XRD: &str = r#"
apiVersion: apiextensions.strata.dev/v1alpha1
kind: CompositeResourceDefinition
metadata:
  name: xdatabases.example.org
spec:
  group: example.org
  names: {kind: XDatabase, plural: xdatabases}
  claimNames: {kind: Database, plural: databases}
  versions:
    - name: v1
      served: true
      referenceable: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: string}
            status:
              type: object
              properties:
                address: {type: string}
"#;

fn composition(name: &str, cycle: bool) -> String {
    let cycle_patch = if cycle {
        "\n        - {type: FromResourceFieldPath, fromResource: c, fromFieldPath: data.fromB, toFieldPath: data.fromC}"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: apiextensions.strata.dev/v1alpha1
kind: Composition
metadata:
  name: {name}
spec:
  compositeTypeRef: {{apiVersion: example.org/v1, kind: XDatabase}}
  writeConnectionSecretsToNamespace: default
  resources:
    - name: a
      base: {{apiVersion: v1, kind: ConfigMap, metadata: {{namespace: default}}, data: {{}}}}
      patches:
        - {{fromFieldPath: "metadata.labels[strata.dev/claim-namespace]", toFieldPath: metadata.namespace}}
        - {{fromFieldPath: spec.size, toFieldPath: data.size}}{cycle_patch}
      readinessChecks: [{{type: NonEmpty, fieldPath: data.size}}]
      connectionDetails: [{{name: size, type: FromFieldPath, fromFieldPath: data.size}}]
    - name: b
      base: {{apiVersion: v1, kind: ConfigMap, metadata: {{namespace: default}}, data: {{}}}}
      patches:
        - {{fromFieldPath: "metadata.labels[strata.dev/claim-namespace]", toFieldPath: metadata.namespace}}
        - {{type: FromResourceFieldPath, fromResource: a, fromFieldPath: data.size, toFieldPath: data.fromA}}
        - {{type: ToCompositeFieldPath, fromFieldPath: metadata.name, toFieldPath: status.address}}
      readinessChecks: [{{type: NonEmpty, fieldPath: data.fromA}}]
    - name: c
      base: {{apiVersion: v1, kind: ConfigMap, metadata: {{namespace: default}}, data: {{}}}}
      patches:
        - {{fromFieldPath: "metadata.labels[strata.dev/claim-namespace]", toFieldPath: metadata.namespace}}
        - {{type: FromResourceFieldPath, fromResource: b, fromFieldPath: data.fromA, toFieldPath: data.fromB}}
      readinessChecks: [{{type: NonEmpty, fieldPath: data.fromB}}]
    - name: d
      dependsOn: [c]
      base: {{apiVersion: v1, kind: Secret, metadata: {{namespace: default}}, data: {{token: aGVsbG8=}}}}
      patches:
        - {{fromFieldPath: "metadata.labels[strata.dev/claim-namespace]", toFieldPath: metadata.namespace}}
      readinessChecks: [{{type: None}}]
      connectionDetails: [{{name: user, type: FromValue, value: admin}}]
"#
    )
}

fn claim_yaml(size: &str) -> String {
    format!(
        r#"
apiVersion: example.org/v1
kind: Database
metadata: {{name: db, namespace: team}}
spec:
  size: {size}
  compositionRef: {{name: chain}}
  writeConnectionSecretToRef: {{name: db-conn}}
"#
    )
}

fn establish(c: &Cluster) {
    c.apply(XRD);
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "xrd/xdatabases.example.org",
        "--timeout=60s",
    ]);
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Offered",
        "xrd/xdatabases.example.org",
        "--timeout=60s",
    ]);
}

#[test]
fn a_claim_composes_in_graph_order_converges_without_writes_and_deletes_in_reverse() {
    let c = Cluster::start("claim", 2);
    establish(&c);
    c.apply(&composition("chain", false));
    let (_cm_watch, cm_order) = c.watch_order("configmaps");
    let (_secret_watch, secret_order) = c.watch_order("secrets");

    c.apply(&claim_yaml("small"));
    c.eventually("the claim to bind", 60, || {
        c.get_json(&["database", "db", "-n", "team"])?["spec"]["resourceRef"]["name"]
            .as_str()
            .map(str::to_owned)
    });
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "database/db",
        "-n",
        "team",
        "--timeout=60s",
    ]);
    let claim = c.get_json(&["database", "db", "-n", "team"]).unwrap();
    assert_eq!(
        condition(&claim, "Synced").unwrap()["status"],
        "True",
        "{}",
        claim["status"]
    );
    let xr = claim["spec"]["resourceRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        xr.starts_with("db-"),
        "the XR is generated from the claim name: {xr}"
    );
    assert_eq!(
        claim["status"]["address"],
        format!("{xr}-b"),
        "status flows XR → claim"
    );
    c.eventually("the watch to see a, b and c", 10, || {
        (cm_order.lock().unwrap().0.len() == 3).then_some(())
    });
    assert_eq!(
        cm_order.lock().unwrap().0,
        ["a", "b", "c"],
        "created in graph order"
    );
    let cm_c = c
        .get_json(&["configmap", &format!("{xr}-c"), "-n", "team"])
        .unwrap();
    assert_eq!(cm_c["data"]["fromB"], "small");

    let secret = c.eventually("the claim's connection secret", 30, || {
        c.get_json(&["secret", "db-conn", "-n", "team"])
    });
    assert_eq!(secret["data"]["size"], "c21hbGw=", "{}", secret["data"]);
    assert_eq!(secret["data"]["user"], "YWRtaW4=", "{}", secret["data"]);

    // `strata trace` shows claim → XR → composed resources.
    let trace = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["trace", "database/db", "-n", "team", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&trace.stdout);
    assert!(
        trace.status.success(),
        "{}",
        String::from_utf8_lossy(&trace.stderr)
    );
    assert!(
        tree.starts_with("Database/team/db  synced=True ready=True"),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("XDatabase/{xr}  synced=True ready=True")),
        "{tree}"
    );
    for t in ["a", "b", "c"] {
        assert!(
            tree.contains(&format!("ConfigMap/team/{xr}-{t} ({t})")),
            "{tree}"
        );
    }
    assert!(tree.contains(&format!("Secret/team/{xr}-d (d)")), "{tree}");

    // `strata trace --watch` prints the tree again whenever an object in it changes, and stops
    // by itself when the claim is gone.
    let mut live = Killed(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "trace",
                "database/db",
                "-n",
                "team",
                "--watch",
                "-o",
                "json",
                "--kubeconfig",
            ])
            .arg(&c.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let trees: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reader = {
        let trees = trees.clone();
        let stdout = live.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                trees
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        })
    };
    c.eventually("the first live tree", 30, || {
        trees.lock().unwrap().first().cloned()
    });

    // Several 2-second resyncs of the converged XR write nothing.
    let versions = || -> Vec<Value> {
        let mut v = vec![
            c.get_json(&["database", "db", "-n", "team"]).unwrap()["metadata"]["resourceVersion"].clone(),
            c.get_json(&["xdatabase", &xr]).unwrap()["metadata"]["resourceVersion"].clone(),
            c.get_json(&["secret", "db-conn", "-n", "team"]).unwrap()["metadata"]["resourceVersion"].clone(),
            c.get_json(&["secret", &format!("{xr}-d"), "-n", "team"]).unwrap()["metadata"]["resourceVersion"].clone(),
        ];
        for t in ["a", "b", "c"] {
            v.push(
                c.get_json(&["configmap", &format!("{xr}-{t}"), "-n", "team"])
                    .unwrap()["metadata"]["resourceVersion"]
                    .clone(),
            );
        }
        v
    };
    std::thread::sleep(Duration::from_secs(2));
    let before = versions();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        before,
        versions(),
        "a converged XR gets zero writes on resync"
    );

    // A claim update flows down the chain.
    c.apply(&claim_yaml("large"));
    c.eventually("the update to reach c", 30, || {
        (c.get_json(&["configmap", &format!("{xr}-c"), "-n", "team"])?["data"]["fromB"] == "large")
            .then_some(())
    });

    // Deleting the claim deletes everything, dependents first; in the foreground, so the live
    // trace follows the composed resources going.
    c.kubectl_ok(&[
        "patch",
        "database",
        "db",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"spec": {"compositeDeletePolicy": "Foreground"}}"#,
    ]);
    c.kubectl_ok(&["delete", "database", "db", "-n", "team", "--wait=false"]);
    c.eventually(
        "the claim, the XR and the composed resources to go",
        60,
        || {
            let claim_gone = c.get_json(&["database", "db", "-n", "team"]).is_none();
            let xr_gone = c.get_json(&["xdatabase", &xr]).is_none();
            let left =
                c.get_json(&["configmaps,secrets", "-A", "-l", "strata.dev/composite"])?["items"]
                    .as_array()?
                    .len();
            (claim_gone && xr_gone && left == 0).then_some(())
        },
    );
    c.eventually("the watch to see the deletions", 10, || {
        (cm_order.lock().unwrap().1.len() == 3).then_some(())
    });
    let status = c.eventually("the live trace to stop with its object", 30, || {
        live.0.try_wait().unwrap()
    });
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut live.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("database/db is gone"), "{stderr}");
    let trees = trees.lock().unwrap();
    assert_eq!(trees[0]["ready"], "True", "{}", trees[0]);
    assert_eq!(
        trees[0]["children"][0]["children"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let missing = |tree: &Value| tree.to_string().contains(r#""exists":false"#);
    assert!(!missing(&trees[0]), "{}", trees[0]);
    assert!(
        trees.iter().skip(1).any(missing),
        "a later tree shows composed resources going: {trees:#?}"
    );
    assert_eq!(
        cm_order.lock().unwrap().1,
        ["c", "b", "a"],
        "deleted in reverse graph order"
    );
    assert_eq!(
        secret_order.lock().unwrap().1.first().map(String::as_str),
        Some("d"),
        "d (which depends on c) goes first"
    );
}

#[test]
fn a_composition_with_a_cycle_gets_a_clear_condition_and_no_partial_apply() {
    let c = Cluster::start("cycle", 3600);
    establish(&c);
    c.apply(&composition("cyclic", true));
    c.apply(
        r#"
apiVersion: example.org/v1
kind: XDatabase
metadata: {name: loop}
spec:
  size: small
  compositionRef: {name: cyclic}
"#,
    );
    let xr = c.eventually("Synced=False", 60, || {
        let xr = c.get_json(&["xdatabase", "loop"])?;
        (condition(&xr, "Synced")?["status"] == "False").then_some(xr)
    });
    let message = condition(&xr, "Synced").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("dependency cycle: a -> b -> c -> a"),
        "{message}"
    );
    assert!(
        xr["spec"].get("resourceRefs").is_none(),
        "nothing recorded: {}",
        xr["spec"]
    );
    let composed = c
        .get_json(&["configmaps,secrets", "-A", "-l", "strata.dev/composite"])
        .unwrap();
    assert_eq!(
        composed["items"].as_array().unwrap().len(),
        0,
        "nothing applied"
    );
}
