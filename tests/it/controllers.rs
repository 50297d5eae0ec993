//! The controllers end to end through the real binaries: `strata up` (the embedded control
//! plane, API only) and `strata run --kubeconfig` as child processes on 127.0.0.1, or `strata up`
//! with its in-process controllers, driven by the real kubectl. A claim composes a chain a → b → c of ConfigMaps (FromResourceFieldPath, with
//! readiness checks) and a Secret d that dependsOn c.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Template names in the order they were created and in the order they were deleted.
type SeenOrder = Arc<Mutex<(Vec<String>, Vec<String>)>>;

use serde_json::Value;
use strata_test_support::{Killed, eventually, kubectl, kubectl_ok, kubectl_stdin};

/// `strata up` + `strata run` on a temp data dir, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    /// What `strata up` printed before its address (the functions it started).
    startup: Vec<String>,
    // Dropped in order: the controllers before the control plane.
    _run: Option<Killed>,
    _up: Killed,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// `strata up` serving the API only and `strata run` as a second process.
    fn start(name: &str, resync_seconds: u64) -> Self {
        Self::start_with(name, resync_seconds, false)
    }

    /// `strata up` with its controllers in the same process (`in_process`), or API only plus
    /// `strata run`.
    fn start_with(name: &str, resync_seconds: u64, in_process: bool) -> Self {
        Self::start_with_args(name, resync_seconds, in_process, &[])
    }

    /// As [`Cluster::start_with`], with more arguments for the process running the controllers.
    fn start_with_args(name: &str, resync_seconds: u64, in_process: bool, extra: &[&str]) -> Self {
        let dir = strata_test_support::temp_dir(&format!("it-controllers-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        // Temporary files of strata up (its functions' certificates) go with the cluster.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut up = Command::new(env!("CARGO_BIN_EXE_strata"));
        up.arg("up").env("TMPDIR", &tmp);
        if in_process {
            up.args(extra);
        } else {
            up.arg("--no-controllers");
        }
        let mut up = Killed(
            up.args(["--listen", "127.0.0.1:0", "--data-dir"])
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
        let mut startup = Vec::new();
        loop {
            let line = lines.next().expect("strata up prints its address").unwrap();
            if line.contains("serving the Kubernetes API on") {
                break;
            }
            startup.push(line);
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let run = (!in_process).then(|| {
            Killed(
                Command::new(env!("CARGO_BIN_EXE_strata"))
                    .args([
                        "run",
                        "--resync",
                        &resync_seconds.to_string(),
                        "--kubeconfig",
                    ])
                    .arg(&kubeconfig)
                    .args(extra)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("strata run starts"),
            )
        });
        let cluster = Cluster {
            dir,
            kubeconfig,
            startup,
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
        kubectl(&self.kubeconfig, args)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_ok(&self.kubeconfig, args)
    }

    fn apply(&self, yaml: &str) {
        let out = kubectl_stdin(
            &self.kubeconfig,
            &["apply", "--server-side", "-f", "-"],
            yaml,
        );
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl apply -f -` (client-side, as a user types it), returning kubectl's output.
    fn kubectl_apply(&self, yaml: &str) -> Output {
        kubectl_stdin(&self.kubeconfig, &["apply", "-f", "-"], yaml)
    }

    fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get", "-o", "json"];
        full.extend_from_slice(args);
        let out = self.kubectl(&full);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn eventually<T>(&self, what: &str, seconds: u64, check: impl FnMut() -> Option<T>) -> T {
        eventually(what, Duration::from_secs(seconds), check)
    }

    /// Records the template names of composed objects of `resource` as they appear and go.
    fn watch_order(&self, resource: &str) -> (Killed, SeenOrder) {
        let mut child = Killed(
            strata_test_support::kubectl_command(&self.kubeconfig)
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
        // ConfigMaps have no Ready condition: the trace shows what their readiness checks decided.
        assert!(
            tree.contains(&format!(
                "ConfigMap/team/{xr}-{t} ({t})  synced=- ready=True"
            )),
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
fn a_developer_with_edit_in_team_a_claims_a_database_reads_its_secret_and_is_refused_team_b() {
    // `strata up` with its controllers aggregates the claim kind into edit and view.
    let c = Cluster::start_with("rbac-claim", 2, true);
    establish(&c);
    c.apply(&composition("chain", false));
    for ns in ["team-a", "team-b"] {
        c.kubectl_ok(&["create", "namespace", ns]);
        c.kubectl_ok(&[
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "other",
            "--from-literal=k=v",
        ]);
    }
    c.kubectl_ok(&[
        "-n",
        "team-a",
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    // Acting as alice (the admin impersonates her: the request is authorized as alice).
    let alice = |args: &[&str]| {
        let mut all = vec!["--as", "alice"];
        all.extend_from_slice(args);
        c.kubectl(&all)
    };
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&alice(&all).stdout)
            .trim()
            .to_owned()
    };
    c.eventually("the claim kind aggregated into edit", 30, || {
        (can(&["create", "databases.example.org", "-n", "team-a"]) == "yes").then_some(())
    });
    assert_eq!(
        can(&["create", "databases.example.org", "-n", "team-b"]),
        "no"
    );
    assert_eq!(
        can(&["create", "xdatabases.example.org"]),
        "no",
        "XRs stay the platform's"
    );
    let claim = c.dir.join("claim.yaml");
    std::fs::write(
        &claim,
        claim_yaml("small").replace("namespace: team}", "namespace: team-a}"),
    )
    .unwrap();
    let out = alice(&["apply", "-f", claim.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = c.eventually("the connection Secret in team-a, read as alice", 60, || {
        let out = alice(&[
            "-n",
            "team-a",
            "get",
            "secret",
            "db-conn",
            "-o",
            "jsonpath={.data.user}",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            .filter(|u| !u.is_empty())
    });
    assert_eq!(user, "YWRtaW4=");
    let out = alice(&["-n", "team-a", "get", "database", "db", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every Secret in team-b is refused, listed or named.
    for args in [
        vec!["-n", "team-b", "get", "secrets"],
        vec!["-n", "team-b", "get", "secret", "other"],
        vec!["-n", "team-b", "get", "secret", "db-conn"],
    ] {
        let out = alice(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("(Forbidden)") && err.contains(r#"User "alice""#),
            "{args:?}: {err}"
        );
    }
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

/// Crossplane's getting-started shape, unmodified: a v1 XRD offering a claim, a Pipeline
/// Composition running function-patch-and-transform (composing a ConfigMap, as `strata up`
/// serves no Deployments), and a claim that names no Composition.
const CROSSPLANE_PLATFORM: &str = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata:
  name: xapps.example.org
spec:
  group: example.org
  names:
    kind: XApp
    plural: xapps
  claimNames:
    kind: App
    plural: apps
  versions:
  - name: v1alpha1
    served: true
    referenceable: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color:
                type: string
            required:
            - color
          status:
            type: object
            properties:
              configName:
                type: string
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata:
  name: app-configmap
spec:
  compositeTypeRef:
    apiVersion: example.org/v1alpha1
    kind: XApp
  mode: Pipeline
  pipeline:
  - step: patch-and-transform
    functionRef:
      name: function-patch-and-transform
    input:
      apiVersion: pt.fn.crossplane.io/v1beta1
      kind: Resources
      resources:
      - name: settings
        base:
          apiVersion: v1
          kind: ConfigMap
          data: {}
        patches:
        - type: FromCompositeFieldPath
          fromFieldPath: metadata.labels[crossplane.io/claim-namespace]
          toFieldPath: metadata.namespace
        - type: FromCompositeFieldPath
          fromFieldPath: spec.color
          toFieldPath: data.color
          transforms:
          - type: string
            string:
              type: Convert
              convert: ToUpper
        - type: ToCompositeFieldPath
          fromFieldPath: metadata.name
          toFieldPath: status.configName
        readinessChecks:
        - type: NonEmpty
          fieldPath: data.color
---
apiVersion: apiextensions.crossplane.io/v1beta1
kind: EnvironmentConfig
metadata:
  name: site
data:
  region: eu-west-1
---
# Composes another type: selection must pass it by, although it comes first by name.
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata:
  name: aaa-other-type
spec:
  compositeTypeRef:
    apiVersion: example.org/v1alpha1
    kind: XOther
  mode: Pipeline
  pipeline:
  - step: templates
    functionRef:
      name: function-go-templating
    input:
      apiVersion: gotemplating.fn.crossplane.io/v1beta1
      kind: GoTemplate
      source: Inline
"#;

/// Crossplane v2: an XRD with no scope (namespaced by default) and its Composition; and a v2
/// XRD offering a claim.
const CROSSPLANE_V2: &str = r#"
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata:
  name: xstores.example.org
spec:
  group: example.org
  names:
    kind: XStore
    plural: xstores
  versions:
  - name: v1
    served: true
    referenceable: true
    subresources:
      scale:
        specReplicasPath: .spec.size
        statusReplicasPath: .status.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
          status:
            type: object
            properties:
              size:
                type: integer
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata:
  name: store
spec:
  compositeTypeRef:
    apiVersion: example.org/v1
    kind: XStore
  mode: Pipeline
  pipeline:
  - step: patch-and-transform
    functionRef:
      name: function-patch-and-transform
    input:
      apiVersion: pt.fn.crossplane.io/v1beta1
      kind: Resources
      resources:
      - name: settings
        base:
          apiVersion: v1
          kind: ConfigMap
          data: {}
        patches:
        - type: FromCompositeFieldPath
          fromFieldPath: spec.size
          toFieldPath: data.size
          transforms:
          - type: convert
            convert:
              toType: string
        readinessChecks:
        - type: NonEmpty
          fieldPath: data.size
        connectionDetails:
        - name: size
          type: FromFieldPath
          fromFieldPath: data.size
        - name: endpoint
          type: FromValue
          value: store.example.org
---
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata:
  name: xqueues.example.org
spec:
  group: example.org
  names:
    kind: XQueue
    plural: xqueues
  claimNames:
    kind: Queue
    plural: queues
  versions:
  - name: v1
    served: true
    referenceable: true
"#;

const CROSSPLANE_CLAIM: &str = r#"
apiVersion: example.org/v1alpha1
kind: App
metadata:
  name: demo
  namespace: team
spec:
  color: blue
"#;

#[test]
fn crossplane_getting_started_files_applied_with_kubectl_end_with_the_claim_ready_on_strata_up() {
    crossplane_getting_started(&Cluster::start_with("crossplane-up", 3600, true));
}

#[test]
fn crossplane_getting_started_files_applied_with_kubectl_end_with_the_claim_ready_on_strata_run() {
    let c = Cluster::start_with_args(
        "crossplane-run",
        3600,
        false,
        &["--aggregate-to-controllers"],
    );
    crossplane_getting_started(&c);
    // Asked to, `strata run` grants the XRDs' kinds to the controllers' role as `strata up` does.
    let role = c
        .get_json(&[
            "clusterrole",
            "strata:composite:xstores.example.org:aggregate-to-controllers",
        ])
        .expect("the per-XRD controllers' role");
    assert_eq!(
        role["metadata"]["labels"]["rbac.strata.dev/aggregate-to-controllers"], "true",
        "{role}"
    );
    assert_eq!(role["rules"][0]["resources"][0], "xstores", "{role}");
}

/// Crossplane's kinds applied unchanged, a claim without a Composition reference until it is
/// Ready, Crossplane's v2 shape next to it, then everything deleted.
fn crossplane_getting_started(c: &Cluster) {
    c.eventually("Crossplane's XRD kind to be served", 60, || {
        c.kubectl(&[
            "get",
            "crd",
            "compositeresourcedefinitions.apiextensions.crossplane.io",
        ])
        .status
        .success()
        .then_some(())
    });
    let out = c.kubectl_apply(CROSSPLANE_PLATFORM);
    assert!(
        out.status.success(),
        "kubectl apply of Crossplane's kinds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for condition in ["Established", "Offered"] {
        c.kubectl_ok(&[
            "wait",
            &format!("--for=condition={condition}"),
            "compositeresourcedefinitions.apiextensions.crossplane.io/xapps.example.org",
            "--timeout=60s",
        ]);
    }
    let native = c
        .get_json(&[
            "compositeresourcedefinitions.apiextensions.strata.dev",
            "xapps.example.org",
        ])
        .unwrap();
    assert_eq!(
        native["metadata"]["labels"]["strata.dev/origin"], "apiextensions.crossplane.io",
        "{native}"
    );

    let site = c.eventually("the native EnvironmentConfig", 60, || {
        c.get_json(&["environmentconfigs.apiextensions.strata.dev", "site"])
    });
    assert_eq!(site["data"]["region"], "eu-west-1", "{site}");

    // A pipeline with a function step converts keeping its steps (it runs live, calling the
    // function where the operator configured it).
    let other = c.eventually("the go-templating Composition's Synced=True", 60, || {
        let o = c.get_json(&["compositions.apiextensions.crossplane.io", "aaa-other-type"])?;
        (condition(&o, "Synced")?["status"] == "True").then_some(o)
    });
    let native = c
        .get_json(&["compositions.apiextensions.strata.dev", "aaa-other-type"])
        .unwrap();
    assert_eq!(
        native["spec"]["pipeline"][0]["functionRef"]["name"], "function-go-templating",
        "{other}"
    );
    c.eventually("the Composition's Synced=True", 60, || {
        let o = c.get_json(&["compositions.apiextensions.crossplane.io", "app-configmap"])?;
        (condition(&o, "Synced")?["status"] == "True").then_some(())
    });

    let out = c.kubectl_apply(CROSSPLANE_CLAIM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "app/demo",
        "-n",
        "team",
        "--timeout=90s",
    ]);
    let claim = c.get_json(&["app", "demo", "-n", "team"]).unwrap();
    let xr_name = claim["spec"]["resourceRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let xr = c.get_json(&["xapp", &xr_name]).unwrap();
    assert_eq!(
        xr["spec"]["compositionRef"]["name"], "app-configmap",
        "the compatible Composition is chosen and recorded: {}",
        xr["spec"]
    );
    let config_name = claim["status"]["configName"].as_str().unwrap().to_owned();
    let cm = c
        .get_json(&["configmap", &config_name, "-n", "team"])
        .unwrap();
    assert_eq!(cm["data"]["color"], "BLUE");

    // Crossplane's v2 shape side by side: a v2 XRD (namespaced by default) whose XR keeps its
    // machinery under spec.crossplane, and a v2 XRD that asks for claims, which v2 refuses.
    let out = c.kubectl_apply(CROSSPLANE_V2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "compositeresourcedefinitions.apiextensions.crossplane.io/xstores.example.org",
        "--timeout=60s",
    ]);
    let crd = c.get_json(&["crd", "xstores.example.org"]).unwrap();
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["scale"],
        serde_json::json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}),
        "the XRD's scale subresource reaches its CRD"
    );
    let refused = c.eventually("the v2 XRD with claims to be refused", 60, || {
        let x = c.get_json(&[
            "compositeresourcedefinitions.apiextensions.crossplane.io",
            "xqueues.example.org",
        ])?;
        (condition(&x, "Established")?["status"] == "False").then_some(x)
    });
    let message = condition(&refused, "Established").unwrap()["message"].to_string();
    assert!(message.contains("spec.claimNames"), "{message}");
    let out = c.kubectl_apply(
        "apiVersion: example.org/v1\nkind: XStore\nmetadata: {name: shop, namespace: team}\nspec: {size: 3}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "xstore/shop",
        "-n",
        "team",
        "--timeout=60s",
    ]);
    let store = c.get_json(&["xstore", "shop", "-n", "team"]).unwrap();
    let machinery = &store["spec"]["crossplane"];
    assert_eq!(machinery["compositionRef"]["name"], "store", "{store}");
    assert_eq!(machinery["compositionUpdatePolicy"], "Automatic", "{store}");
    assert_eq!(machinery["resourceRefs"][0]["kind"], "ConfigMap", "{store}");
    assert!(store["spec"].get("compositionRef").is_none(), "{store}");
    let cm = c
        .get_json(&["configmap", "shop-settings", "-n", "team"])
        .unwrap();
    assert_eq!(cm["data"]["size"], "3");
    // A v2 XR has no connection Secret of its own: its details are a composed Secret, named
    // `<xr>-connection` in its namespace, as function-patch-and-transform composes it.
    let secret = c.eventually("the composed connection Secret", 60, || {
        let s = c.get_json(&["secret", "shop-connection", "-n", "team"])?;
        (s["data"]["size"] == "Mw==").then_some(s)
    });
    assert_eq!(secret["type"], "connection.crossplane.io/v1alpha1");
    assert_eq!(
        secret["data"]["endpoint"], "c3RvcmUuZXhhbXBsZS5vcmc=",
        "{secret}"
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "XStore");
    let store = c.get_json(&["xstore", "shop", "-n", "team"]).unwrap();
    assert_eq!(
        store["spec"]["crossplane"]["resourceRefs"][1]["kind"], "Secret",
        "the Secret is a composed resource: {store}"
    );
    c.kubectl_ok(&["delete", "xstore", "shop", "-n", "team", "--timeout=60s"]);
    assert!(
        c.get_json(&["secret", "shop-connection", "-n", "team"])
            .is_none(),
        "the composed connection Secret goes with the XR"
    );

    // Deleting the claim deletes the XR and what it composed.
    c.kubectl_ok(&["delete", "app", "demo", "-n", "team", "--timeout=60s"]);
    c.eventually("the XR and the ConfigMap to go", 60, || {
        (c.get_json(&["xapp", &xr_name]).is_none()
            && c.get_json(&["configmap", &config_name, "-n", "team"])
                .is_none())
        .then_some(())
    });
    // Deleting the Crossplane objects deletes their native counterparts and the XR's API.
    let out = strata_test_support::kubectl_command(&c.kubeconfig)
        .args(["delete", "-f", "-", "--timeout=60s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(CROSSPLANE_PLATFORM.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.eventually("the native objects and the XR CRD to go", 60, || {
        let gone = |args: &[&str]| c.get_json(args).is_none();
        (gone(&[
            "compositeresourcedefinitions.apiextensions.strata.dev",
            "xapps.example.org",
        ]) && gone(&["compositions.apiextensions.strata.dev", "app-configmap"])
            && gone(&["environmentconfigs.apiextensions.strata.dev", "site"])
            && gone(&["crd", "xapps.example.org"]))
        .then_some(())
    });
}

/// A Crossplane v2 pipeline as platform teams write it: patch-and-transform (native), a
/// function-pythonic step (a real third-party function, started and supervised by Strata from
/// the operator's `--functions` file), function-sequencer (native: graph edges) and auto-ready.
const FUNCTION_PLATFORM: &str = r#"
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata: {name: function-pythonic}
spec: {package: registry.example/crossplane-contrib/function-pythonic:v0.1.4}
---
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata: {name: function-patch-and-transform}
spec: {package: registry.example/crossplane-contrib/function-patch-and-transform:v0.8.2}
---
apiVersion: pkg.crossplane.io/v1beta1
kind: Function
metadata: {name: function-kcl}
spec: {package: registry.example/crossplane-contrib/function-kcl:v0.11.0}
---
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata: {name: xservices.fn.example.org}
spec:
  group: fn.example.org
  names: {kind: XService, plural: xservices}
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
                region: {type: string}
            status:
              type: object
              properties:
                greeting: {type: string}
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: service-pipeline}
spec:
  compositeTypeRef: {apiVersion: fn.example.org/v1, kind: XService}
  mode: Pipeline
  pipeline:
    - step: settings
      functionRef: {name: function-patch-and-transform}
      input:
        apiVersion: pt.fn.crossplane.io/v1beta1
        kind: Resources
        resources:
          - name: settings
            base: {apiVersion: v1, kind: ConfigMap, data: {}}
            patches:
              - {fromFieldPath: spec.region, toFieldPath: data.region}
    - step: compose
      functionRef: {name: function-pythonic}
      input:
        apiVersion: pythonic.fn.crossplane.io/v1alpha1
        kind: Composite
        composite: |
          from crossplane.pythonic import BaseComposite

          class Composite(BaseComposite):
              def compose(self):
                  self.resources.db('v1', 'ConfigMap').data.engine = 'postgres'
                  for n in ('1', '2'):
                      self.resources['app-' + n]('v1', 'ConfigMap').data.region = str(self.spec.region)
                  self.status.greeting = 'hello from ' + str(self.spec.region)
                  self.events.warning('Preview', 'region ' + str(self.spec.region) + ' is in preview')
                  self.conditions.DatabaseReady('Available', 'the database answers', True)
    - step: order
      functionRef: {name: function-sequencer}
      input:
        apiVersion: sequencer.fn.crossplane.io/v1beta1
        kind: Input
        rules:
          - sequence: [db, app-.*]
    - step: ready
      functionRef: {name: function-auto-ready}
---
apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata: {name: xqueues.fn.example.org}
spec:
  group: fn.example.org
  names: {kind: XQueue, plural: xqueues}
  claimNames: {kind: Queue, plural: queues}
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
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: queue-pipeline}
spec:
  compositeTypeRef: {apiVersion: fn.example.org/v1, kind: XQueue}
  mode: Pipeline
  pipeline:
    - step: compose
      functionRef: {name: function-pythonic}
      input:
        apiVersion: pythonic.fn.crossplane.io/v1alpha1
        kind: Composite
        composite: |
          from crossplane.pythonic import BaseComposite

          class Composite(BaseComposite):
              def compose(self):
                  queue = self.resources.queue('v1', 'ConfigMap')
                  queue.metadata.namespace = self.metadata.labels['crossplane.io/claim-namespace']
                  queue.data.size = str(self.spec.size)
    - step: ready
      functionRef: {name: function-auto-ready}
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: service-kcl}
spec:
  compositeTypeRef: {apiVersion: fn.example.org/v1, kind: XService}
  mode: Pipeline
  pipeline:
    - step: templates
      functionRef: {name: function-kcl}
      input: {apiVersion: krm.kcl.dev/v1alpha1, kind: KCLInput, spec: {source: "items = []"}}
"#;

#[test]
fn a_function_pipeline_composes_in_graph_order_and_deletes_in_reverse_on_strata_up() {
    let dir = strata_test_support::temp_dir("it-fns");
    std::fs::create_dir_all(&dir).unwrap();
    let functions = dir.join("functions.yaml");
    std::fs::write(
        &functions,
        // mTLS as Crossplane runs functions: Strata's CA, TLS_SERVER_CERTS_DIR, client certs.
        "functions:\n- name: function-pythonic\n  command: [function-pythonic, --address, '{address}']\n",
    )
    .unwrap();
    let c = Cluster::start_with_args(
        "functions",
        3600,
        true,
        &["--functions", functions.to_str().unwrap()],
    );
    c.eventually("Crossplane's Function kind to be served", 60, || {
        c.kubectl(&["get", "crd", "functions.pkg.crossplane.io"])
            .status
            .success()
            .then_some(())
    });
    let out = c.kubectl_apply(FUNCTION_PLATFORM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Functions say how they run: configured, native by package, or not configured.
    for f in ["function-pythonic", "function-patch-and-transform"] {
        c.kubectl_ok(&[
            "wait",
            "--for=condition=Healthy",
            &format!("functions.pkg.crossplane.io/{f}"),
            "--timeout=60s",
        ]);
    }
    let kcl = c.eventually("function-kcl's Installed=False", 60, || {
        let f = c.get_json(&["functions.pkg.crossplane.io", "function-kcl"])?;
        (condition(&f, "Installed")?["status"] == "False").then_some(f)
    });
    assert!(
        condition(&kcl, "Installed").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("--functions"),
        "{kcl}"
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "compositeresourcedefinitions.apiextensions.crossplane.io/xservices.fn.example.org",
        "--timeout=60s",
    ]);
    c.eventually("the pipeline Composition's Synced=True", 60, || {
        let o = c.get_json(&[
            "compositions.apiextensions.crossplane.io",
            "service-pipeline",
        ])?;
        (condition(&o, "Synced")?["status"] == "True").then_some(())
    });

    let (_watch, order) = c.watch_order("configmaps");
    c.apply(
        "apiVersion: fn.example.org/v1\nkind: XService\nmetadata: {name: web, namespace: team}\n\
         spec:\n  region: eu-west-1\n  crossplane: {compositionRef: {name: service-pipeline}}\n",
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "xservice/web",
        "-n",
        "team",
        "--timeout=90s",
    ]);
    let xr = c.get_json(&["xservice", "web", "-n", "team"]).unwrap();
    assert_eq!(xr["status"]["greeting"], "hello from eu-west-1", "{xr}");
    // The function's condition lands on the XR; its Warning result is kept in the status and
    // shown by strata trace.
    let db_ready = condition(&xr, "DatabaseReady").unwrap();
    assert_eq!(
        (&db_ready["status"], &db_ready["reason"]),
        (&"True".into(), &"Available".into()),
        "{xr}"
    );
    assert_eq!(
        xr["status"]["functionResults"],
        serde_json::json!([{"step": "compose", "severity": "Warning", "reason": "Preview",
                            "message": "region eu-west-1 is in preview"}]),
        "{xr}"
    );
    let trace = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["trace", "xservice/web", "-n", "team", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&trace.stdout);
    assert!(
        trace.contains("! compose: Warning: region eu-west-1 is in preview"),
        "{trace}"
    );
    let events = c.eventually("the Warning result's event", 30, || {
        let e = c.kubectl_ok(&["get", "events.events.k8s.io", "-n", "team", "-o", "json"]);
        e.contains("region eu-west-1 is in preview").then_some(e)
    });
    assert!(events.contains("ComposeResources"), "{events}");
    let cms = c
        .get_json(&["configmaps", "-n", "team", "-l", "strata.dev/composite=web"])
        .unwrap();
    let by_template = |t: &str| {
        cms["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["metadata"]["annotations"]["strata.dev/composition-resource-name"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no composed {t}: {cms}"))
    };
    assert_eq!(by_template("settings")["data"]["region"], "eu-west-1");
    assert_eq!(by_template("db")["data"]["engine"], "postgres");
    let app = by_template("app-1");
    assert_eq!(app["data"]["region"], "eu-west-1");
    assert_eq!(
        app["metadata"]["annotations"]["strata.dev/depends-on"], "db",
        "the sequencer's edge is recorded on the object"
    );
    {
        let created = &order.lock().unwrap().0;
        let pos = |t: &str| created.iter().position(|x| x == t).unwrap();
        assert!(
            pos("db") < pos("app-1") && pos("db") < pos("app-2"),
            "created {created:?}"
        );
    }

    // A claim of a v1 XRD through a function pipeline: claim → XR → composed → Ready → gone.
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Offered",
        "compositeresourcedefinitions.apiextensions.crossplane.io/xqueues.fn.example.org",
        "--timeout=60s",
    ]);
    c.apply(
        "apiVersion: fn.example.org/v1\nkind: Queue\nmetadata: {name: jobs, namespace: team}\n\
         spec: {size: large}\n",
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "queue/jobs",
        "-n",
        "team",
        "--timeout=90s",
    ]);
    let queue = c.eventually("the claim's composed ConfigMap", 30, || {
        let list = c.get_json(&[
            "configmaps",
            "-n",
            "team",
            "-l",
            "strata.dev/claim-name=jobs",
        ])?;
        list["items"].as_array()?.first().cloned()
    });
    assert_eq!(queue["data"]["size"], "large", "{queue}");
    let queue_name = queue["metadata"]["name"].as_str().unwrap().to_owned();
    c.kubectl_ok(&["delete", "queue", "jobs", "-n", "team", "--timeout=90s"]);
    c.eventually("the claim's ConfigMap to go", 60, || {
        c.get_json(&["configmap", &queue_name, "-n", "team"])
            .is_none()
            .then_some(())
    });

    // A step whose function is not configured: one condition naming the step and the
    // function; nothing composed is touched and the controller keeps serving the other XR.
    c.apply(
        "apiVersion: fn.example.org/v1\nkind: XService\nmetadata: {name: other, namespace: team}\n\
         spec:\n  region: us-east-1\n  crossplane: {compositionRef: {name: service-kcl}}\n",
    );
    let other = c.eventually("the kcl XR's Synced=False", 60, || {
        let o = c.get_json(&["xservice", "other", "-n", "team"])?;
        (condition(&o, "Synced")?["status"] == "False").then_some(o)
    });
    let message = condition(&other, "Synced").unwrap()["message"].to_string();
    assert!(
        message.contains("\\\"templates\\\"") && message.contains("function-kcl"),
        "{message}"
    );
    assert_eq!(
        c.get_json(&["configmaps", "-n", "team", "-l", "strata.dev/composite=web"])
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    c.kubectl_ok(&["delete", "xservice", "web", "-n", "team", "--timeout=90s"]);
    let web = ["settings", "db", "app-1", "app-2"];
    c.eventually("every composed ConfigMap to go", 60, || {
        let o = order.lock().unwrap();
        web.iter()
            .all(|t| o.1.iter().any(|d| d == t))
            .then(|| o.1.clone())
    });
    let deleted = order.lock().unwrap().1.clone();
    let pos = |t: &str| deleted.iter().position(|x| x == t).unwrap();
    assert!(
        pos("app-1") < pos("db") && pos("app-2") < pos("db"),
        "deleted {deleted:?}"
    );

    // The supervised function dies with strata up, even when it is killed outright.
    let address = c
        .startup
        .iter()
        .find_map(|l| l.strip_prefix("strata up: function function-pythonic serving on "))
        .expect("strata up names the function it started")
        .to_owned();
    assert!(std::net::TcpStream::connect(&address).is_ok());
    drop(_watch);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "function-pythonic outlived strata up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strata_run_runs_a_function_package_as_a_deployment_and_service_with_its_certificates() {
    let dir = strata_test_support::temp_dir("it-fn-deploy");
    std::fs::create_dir_all(&dir).unwrap();
    let functions = dir.join("functions.yaml");
    std::fs::write(
        &functions,
        "functions:\n- name: function-kcl\n  package: registry.example/crossplane-contrib/function-kcl:v0.11.0\n  runtime: Deployment\n",
    )
    .unwrap();
    // strata up serves the API; strata run (the controllers, as on a cluster) runs the package.
    let c = Cluster::start_with_args(
        "fn-deploy",
        3600,
        false,
        &["--functions", functions.to_str().unwrap()],
    );
    let deployment = c.eventually("the function's Deployment", 60, || {
        c.get_json(&["deployment", "function-kcl", "-n", "strata-system"])
    });
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example/crossplane-contrib/function-kcl:v0.11.0"
    );
    assert_eq!(
        container["env"][0],
        serde_json::json!({"name": "TLS_SERVER_CERTS_DIR", "value": "/tls/server"})
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "function-kcl-tls"
    );
    let service = c
        .get_json(&["service", "function-kcl", "-n", "strata-system"])
        .unwrap();
    assert_eq!(service["spec"]["ports"][0]["port"], 9443);
    let certs = c
        .get_json(&["secret", "function-kcl-tls", "-n", "strata-system"])
        .unwrap();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(certs["data"][key].is_string(), "{key} in {certs}");
    }
    assert!(
        c.get_json(&["secret", "strata-function-ca", "-n", "strata-system"])
            .is_some(),
        "the CA is kept so certificates outlive a restart"
    );
    // The Function object says where it runs; nothing runs Pods here, so it is not healthy.
    c.eventually("Crossplane's Function kind to be served", 60, || {
        c.kubectl(&["get", "crd", "functions.pkg.crossplane.io"])
            .status
            .success()
            .then_some(())
    });
    c.apply(
        "apiVersion: pkg.crossplane.io/v1\nkind: Function\nmetadata: {name: function-kcl}\n\
         spec: {package: registry.example/crossplane-contrib/function-kcl:v0.11.0}\n",
    );
    let f = c.eventually("the Function's Healthy=False", 60, || {
        let f = c.get_json(&["functions.pkg.crossplane.io", "function-kcl"])?;
        (condition(&f, "Healthy")?["status"] == "False").then_some(f)
    });
    assert_eq!(condition(&f, "Installed").unwrap()["status"], "True", "{f}");
    assert!(
        condition(&f, "Healthy").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("function-kcl.strata-system.svc:9443"),
        "{f}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A v2 XR composing a ConfigMap (in the controllers' base role) and a Deployment (not) in the
/// same wave; the ClusterRole a platform team adds to grant Deployments, labelled as Crossplane
/// v2 asks.
const UNGRANTED_KIND: &str = r#"
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata: {name: xwebs.example.org}
spec:
  group: example.org
  names: {kind: XWeb, plural: xwebs}
  versions:
  - name: v1
    served: true
    referenceable: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {image: {type: string}}}
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata: {name: web}
spec:
  compositeTypeRef: {apiVersion: example.org/v1, kind: XWeb}
  mode: Pipeline
  pipeline:
  - step: patch-and-transform
    functionRef: {name: function-patch-and-transform}
    input:
      apiVersion: pt.fn.crossplane.io/v1beta1
      kind: Resources
      resources:
      - name: settings
        base: {apiVersion: v1, kind: ConfigMap, data: {tier: web}}
        readinessChecks:
        - type: None
      - name: server
        base:
          apiVersion: apps/v1
          kind: Deployment
          spec:
            selector: {matchLabels: {app: web}}
            template:
              metadata: {labels: {app: web}}
              spec: {containers: [{name: web, image: nginx}]}
        patches:
        - {fromFieldPath: spec.image, toFieldPath: "spec.template.spec.containers[0].image"}
        readinessChecks:
        - type: None
"#;

const DEPLOYMENT_GRANT: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: compose-deployments
  labels: {rbac.crossplane.io/aggregate-to-crossplane: "true"}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
"#;

#[test]
fn strata_up_controllers_are_least_privilege_and_an_ungranted_composed_kind_waits_for_a_labelled_role()
 {
    let c = Cluster::start_with("least-privilege", 3600, true);
    let as_controllers = ["--as", "system:strata:controllers"];
    let can_i = |args: &[&str]| {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        full.extend_from_slice(&as_controllers);
        String::from_utf8_lossy(&c.kubectl(&full).stdout)
            .trim()
            .to_owned()
    };
    // The controllers' rules, as the admin sees them by impersonation.
    let list = c.kubectl_ok(&[
        "auth",
        "can-i",
        "--list",
        "-n",
        "team",
        "--as",
        "system:strata:controllers",
    ]);
    for kind in [
        "customresourcedefinitions.apiextensions.k8s.io",
        "compositions.apiextensions.crossplane.io",
        "secrets",
        "leases.coordination.k8s.io",
        "dbinstances.rds.aws.strata.dev",
    ] {
        assert!(list.contains(kind), "{kind} missing from:\n{list}");
    }
    assert!(!list.contains("deployments.apps"), "{list}");
    assert_eq!(can_i(&["create", "deployments", "-n", "team"]), "no");
    assert_eq!(can_i(&["create", "configmaps", "-n", "team"]), "yes");
    assert_eq!(
        can_i(&["delete", "namespaces"]),
        "no",
        "no `*` on everything"
    );

    let out = c.kubectl_apply(UNGRANTED_KIND);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "compositeresourcedefinitions.apiextensions.crossplane.io/xwebs.example.org",
        "--timeout=60s",
    ]);
    // The XRD's own kind reaches the controllers through the role they write for it.
    c.eventually("the XR kind granted to the controllers", 30, || {
        (can_i(&["patch", "xwebs.example.org", "-n", "team"]) == "yes").then_some(())
    });
    let out = c.kubectl_apply(
        "apiVersion: example.org/v1\nkind: XWeb\nmetadata: {name: shop, namespace: team}\nspec: {image: nginx:1.27}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let synced = c.eventually("Synced=False naming the missing grant", 60, || {
        let xr = c.get_json(&["xweb", "shop", "-n", "team"])?;
        let s = condition(&xr, "Synced")?;
        (s["status"] == "False").then_some(s)
    });
    let message = synced["message"].as_str().unwrap();
    for part in [
        "resource `server`",
        r#"deployments.apps "shop-server" is forbidden: User "system:strata:controllers" cannot patch resource "deployments" in API group "apps" in the namespace "team""#,
        r#"rbac.strata.dev/aggregate-to-controllers: "true""#,
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    let configmaps = c.get_json(&["configmaps", "-n", "team"]).unwrap();
    assert!(
        !configmaps.to_string().contains("XWeb"),
        "no partial apply: the ConfigMap of the same wave is not created either: {configmaps}"
    );
    let xr = c.get_json(&["xweb", "shop", "-n", "team"]).unwrap();
    assert!(
        xr["spec"]["crossplane"]["resourceRefs"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "nothing recorded as composed: {}",
        xr["spec"]
    );

    // A labelled role granting just this Deployment by name is enough for the XR (the review
    // asks by name when a nameless one is refused): patch to apply it, get to observe it on the
    // passes after the first (without get, a later pass is refused reading it) ...
    let out = c.kubectl_apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: compose-shop-server
  labels: {rbac.strata.dev/aggregate-to-controllers: "true"}
rules:
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [shop-server]
  verbs: [get, patch]
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "xweb/shop",
        "-n",
        "team",
        "--timeout=60s",
    ]);
    // Ready and Synced may land in two status writes: wait for both.
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Synced",
        "xweb/shop",
        "-n",
        "team",
        "--timeout=60s",
    ]);
    let deployments = c.get_json(&["deployments", "-n", "team"]).unwrap();
    assert_eq!(
        deployments["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27",
        "{deployments}"
    );
    assert_eq!(can_i(&["create", "deployments", "-n", "team"]), "no");
    // ... and Crossplane's label grants every Deployment, unchanged.
    let out = c.kubectl_apply(DEPLOYMENT_GRANT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(can_i(&["create", "deployments", "-n", "team"]), "yes");
}
