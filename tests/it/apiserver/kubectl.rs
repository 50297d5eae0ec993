//! The real kubectl against the embedded control plane: CRDs and objects from YAML, tables with
//! printer columns, watches, selectors, every patch type, wait, finalizers, namespaces.

use std::process::Stdio;
use std::time::Duration;

use super::fixture::{ControlPlane, Killed};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, maximum: 10}
              color: {type: string, default: blue}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: small, namespace: team-a, labels: {tier: small}}
spec: {size: 2}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: large, namespace: team-a, labels: {tier: large}}
spec: {size: 9}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {mode: fast}
"#;

fn write(cp: &ControlPlane, name: &str, text: &str) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn kubectl_applies_crds_and_objects_and_reads_them_back() {
    let cp = ControlPlane::start("kubectl-apply");
    let crd = write(&cp, "crd.yaml", CRD);
    assert!(
        cp.kubectl_ok(&["apply", "-f", &crd])
            .contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created")
    );
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    let objects = write(&cp, "objects.yaml", OBJECTS);
    let applied = cp.kubectl_ok(&["apply", "-f", &objects]);
    assert!(
        applied.contains("widget.example.com/small created"),
        "{applied}"
    );
    assert!(
        cp.kubectl_ok(&["apply", "-f", &objects])
            .contains("widget.example.com/small unchanged")
    );

    let table = cp.kubectl_ok(&["get", "widgets", "-n", "team-a"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SIZE", "READY"],
        "printer columns: {table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["large", "9"]),
        "{table}"
    );

    let yaml = cp.kubectl_ok(&["get", "wd", "small", "-n", "team-a", "-o", "yaml"]);
    assert!(
        yaml.contains("color: blue"),
        "schema default applied: {yaml}"
    );
    let beta = cp.kubectl_ok(&[
        "get",
        "widgets.v1beta1.example.com",
        "small",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(
        beta, "example.com/v1beta1",
        "served versions present the same object"
    );

    let selected = cp.kubectl_ok(&[
        "get",
        "wd",
        "-n",
        "team-a",
        "-l",
        "tier=large",
        "-o",
        "name",
    ]);
    assert_eq!(selected.trim(), "widget.example.com/large");

    let junk = write(
        &cp,
        "junk.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: junk, namespace: team-a}\nspec: {size: 1, junk: true}\n",
    );
    let out = cp.kubectl(&["apply", "-f", &junk]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.junk\""),
        "strict field validation: {out:?}"
    );
    // Warn: the write succeeds, the field is dropped and named in a Warning header.
    let out = cp.kubectl(&["apply", "--validate=warn", "-f", &junk]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: unknown field \"spec.junk\""),
        "warned: {stderr}"
    );
    let spec = cp.kubectl_ok(&[
        "get",
        "wd",
        "junk",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.spec}",
    ]);
    assert!(!spec.contains("junk"), "pruned: {spec}");
    // Duplicate fields: refused under Strict, warned about by default (the last one wins).
    let dup = write(
        &cp,
        "dup.json",
        r#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "dup", "namespace": "team-a"}, "spec": {"size": 1, "size": 2}}"#,
    );
    let collection = "/apis/example.com/v1/namespaces/team-a/widgets";
    let out = cp.kubectl(&[
        "create",
        "--raw",
        &format!("{collection}?fieldValidation=Strict"),
        "-f",
        &dup,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(
        stderr.contains("strict decoding error: duplicate field \\\"spec.size\\\"")
            || stderr.contains("strict decoding error: duplicate field \"spec.size\""),
        "{stderr}"
    );
    let out = cp.kubectl(&["create", "--raw", collection, "-f", &dup]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("duplicate field \"spec.size\""),
        "warned: {stderr}"
    );

    let too_big = write(
        &cp,
        "big.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: huge, namespace: team-a}\nspec: {size: 50}\n",
    );
    let out = cp.kubectl(&["apply", "-f", &too_big]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.size"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubectl_patches_waits_and_deletes_with_finalizers() {
    let cp = ControlPlane::start("kubectl-patch");
    let crd = write(&cp, "crd.yaml", CRD);
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    let objects = write(&cp, "objects.yaml", OBJECTS);
    cp.kubectl_ok(&["apply", "-f", &objects]);
    let ns = ["-n", "team-a"];
    let get = |what: &[&str], path: &str| {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&ns);
        let jsonpath = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &jsonpath]);
        cp.kubectl_ok(&args)
    };

    let dry = write(
        &cp,
        "dry.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: dry, namespace: team-a}\nspec: {size: 1}\n",
    );
    assert!(
        cp.kubectl_ok(&["apply", "--dry-run=server", "-f", &dry])
            .contains("(server dry run)")
    );
    assert!(
        !cp.kubectl(&["get", "wd", "dry", "-n", "team-a"])
            .status
            .success(),
        "a dry run stores nothing"
    );
    cp.kubectl_ok(&["delete", "wd", "large", "-n", "team-a", "--dry-run=server"]);
    cp.kubectl_ok(&["get", "wd", "large", "-n", "team-a"]);
    let changed = OBJECTS.replace("spec: {size: 9}", "spec: {size: 8}");
    let changed = write(&cp, "changed.yaml", &changed);
    let diff = cp.kubectl(&["diff", "-f", &changed]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "kubectl diff reports the change: {diff:?}"
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+  size: 8"));

    cp.kubectl_ok(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":3}}"#,
    ]);
    assert_eq!(get(&["wd", "small"], "{.spec.size}"), "3");
    cp.kubectl_ok(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/size","value":4}]"#,
    ]);
    assert_eq!(get(&["wd", "small"], "{.spec.size}"), "4");
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        "team-a",
        "--type",
        "strategic",
        "-p",
        r#"{"data":{"extra":"yes"}}"#,
    ]);
    assert_eq!(
        get(&["cm", "settings"], "{.data.mode},{.data.extra}"),
        "fast,yes"
    );
    let refused = cp.kubectl(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"size":1}}"#,
    ]);
    assert!(
        !refused.status.success(),
        "strategic merge patch is not served for custom resources"
    );

    let ssa = write(
        &cp,
        "ssa.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: team-a}\ndata: {owner: me}\n",
    );
    assert!(
        cp.kubectl_ok(&["apply", "--server-side", "-f", &ssa])
            .contains("serverside-applied")
    );
    assert_eq!(
        get(&["cm", "ssa"], "{.metadata.managedFields[0].manager}"),
        "kubectl"
    );

    cp.kubectl_ok(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "wd/small",
        "-n",
        "team-a",
        "--timeout=10s",
    ]);
    let table = cp.kubectl_ok(&["get", "wd", "small", "-n", "team-a", "--no-headers"]);
    assert_eq!(
        table.split_whitespace().collect::<Vec<_>>(),
        ["small", "4", "True"]
    );

    cp.kubectl_ok(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    cp.kubectl_ok(&["delete", "wd", "small", "-n", "team-a", "--wait=false"]);
    assert!(
        !get(&["wd", "small"], "{.metadata.deletionTimestamp}").is_empty(),
        "the finalizer holds the object"
    );
    cp.kubectl_ok(&[
        "patch",
        "wd",
        "small",
        "-n",
        "team-a",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let gone = cp.kubectl(&["get", "wd", "small", "-n", "team-a"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );

    cp.kubectl_ok(&["delete", "namespace", "team-a", "--timeout=20s"]);
    let left = cp.kubectl_ok(&["get", "widgets,configmaps", "-A", "-o", "name"]);
    assert!(
        !left.contains("large") && !left.contains("settings"),
        "namespace contents are deleted: {left}"
    );
    cp.kubectl_ok(&["delete", "crd", "widgets.example.com", "--timeout=20s"]);
    let out = cp.kubectl(&["get", "widgets", "-A"]);
    assert!(!out.status.success(), "the resource is no longer served");
}

#[test]
fn kubectl_create_generators_work_over_protobuf() {
    let cp = ControlPlane::start("kubectl-create");
    cp.kubectl_ok(&["create", "namespace", "made"]);
    cp.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "made",
        "--from-literal=mode=fast",
    ]);
    cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "made",
        "--from-literal=password=hunter2",
    ]);
    cp.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "made"]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "made",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "fast"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "secret",
            "pw",
            "-n",
            "made",
            "-o",
            "jsonpath={.type} {.data.password}"
        ]),
        "Opaque aHVudGVyMg=="
    );
    assert!(
        cp.kubectl_ok(&["get", "sa", "-n", "made", "-o", "name"])
            .contains("serviceaccount/robot")
    );
}

#[test]
fn kubectl_get_watch_prints_changes_as_they_happen() {
    let cp = ControlPlane::start("kubectl-watch");
    let cm = write(
        &cp,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {v: '1'}\n",
    );
    cp.kubectl_ok(&["apply", "-f", &cm]);
    let out_path = cp.dir.join("watch.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut watch = Killed(
        strata_test_support::kubectl_command(&cp.kubeconfig)
            .args(["get", "configmaps", "-w", "-o", "name"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let table_path = cp.dir.join("watch-table.out");
    let table_out = std::fs::File::create(&table_path).unwrap();
    let mut table_watch = Killed(
        strata_test_support::kubectl_command(&cp.kubeconfig)
            .args(["get", "configmaps", "-w"])
            .stdout(table_out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let printed = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("configmap/watched"))
            .count()
    };
    let table_rows = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("watched"))
            .count()
    };
    for _ in 0..100 {
        if printed(&out_path) >= 1 && table_rows(&table_path) >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        printed(&out_path),
        1,
        "the watch lists the existing object first"
    );
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);
    cp.kubectl_ok(&["delete", "cm", "watched"]);
    let mut lines = 0;
    for _ in 0..50 {
        lines = printed(&out_path);
        if lines >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..50 {
        if std::fs::read_to_string(&table_path)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("watched"))
            .count()
            >= 3
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    watch.kill();
    table_watch.kill();
    let table = std::fs::read_to_string(&table_path).unwrap();
    assert_eq!(
        table.lines().filter(|l| l.starts_with("NAME")).count(),
        1,
        "one header: {table}"
    );
    assert!(
        table.lines().filter(|l| l.starts_with("watched")).count() >= 3,
        "table rows per change: {table}"
    );
    assert!(
        lines >= 3,
        "initial, modified and deleted are printed: {}",
        std::fs::read_to_string(&out_path).unwrap()
    );
}

#[test]
fn kubectl_scale_writes_the_replicas_a_crd_names_through_its_scale_subresource() {
    let cp = ControlPlane::start("kubectl-scale");
    let crd = write(
        &cp,
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pools.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: pools, singular: pool, kind: Pool}
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
        scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.size}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
            status: {type: object, properties: {size: {type: integer}}}
"#,
    );
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/pools.example.com",
        "--timeout=20s",
    ]);
    let pool = write(
        &cp,
        "pool.yaml",
        "apiVersion: example.com/v1\nkind: Pool\nmetadata: {name: p, namespace: default}\nspec: {size: 1}\n",
    );
    cp.kubectl_ok(&["apply", "-f", &pool]);
    cp.kubectl_ok(&["scale", "pool/p", "--replicas=3"]);
    assert_eq!(
        cp.kubectl_ok(&["get", "pool", "p", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    let scale: serde_json::Value = serde_json::from_str(&cp.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/pools/p/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["replicas"], 0);
    // A precondition that no longer holds is a conflict; a negative size is invalid.
    let stale = cp.kubectl(&["scale", "pool/p", "--replicas=5", "--resource-version=1"]);
    assert!(!stale.status.success());
    let negative = cp.kubectl(&["scale", "pool/p", "--replicas=-1"]);
    assert!(!negative.status.success());
    assert_eq!(
        cp.kubectl_ok(&["get", "pool", "p", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
}
