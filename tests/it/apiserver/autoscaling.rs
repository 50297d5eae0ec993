//! HorizontalPodAutoscalers through the real kubectl: `kubectl autoscale` (which writes
//! autoscaling/v1 over protobuf), kube-apiserver's `kubectl get hpa` columns, and one object
//! read and written through autoscaling/v1 and autoscaling/v2, converted as kube-apiserver does.

use serde_json::{Value, json};

use super::fixture::ControlPlane;

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";

fn get_json(cp: &ControlPlane, resource: &str) -> Value {
    serde_json::from_str(&cp.kubectl_ok(&["get", resource, "web", "-o", "json"])).unwrap()
}

fn write(cp: &ControlPlane, name: &str, value: &Value) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn kubectl_autoscale_makes_one_hpa_served_as_autoscaling_v1_and_v2() {
    let cp = ControlPlane::start("autoscaling");
    cp.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    let out = cp.kubectl_ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=80",
    ]);
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );

    let table = cp.kubectl_ok(&["get", "hpa"]);
    let mut lines = table.lines();
    assert_eq!(
        columns(lines.next().unwrap()),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(
        columns(lines.next().unwrap())[..6],
        ["web", "Deployment/web", "cpu: <unknown>/80%", "2", "5", "0"],
        "{table}"
    );

    // One object, two shapes (kubectl keeps the version of a full resource name; a short
    // name's expansion would drop it).
    let v2 = get_json(&cp, "horizontalpodautoscalers.v2.autoscaling");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]})
    );
    let v1 = get_json(&cp, "horizontalpodautoscalers.v1.autoscaling");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(
        v1["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80})
    );
    assert_eq!(v1["metadata"]["uid"], v2["metadata"]["uid"]);

    // `kubectl explain` reads each version's schema.
    let explained = cp.kubectl_ok(&[
        "explain",
        "hpa.spec.targetCPUUtilizationPercentage",
        "--api-version=autoscaling/v1",
    ]);
    assert!(
        explained.contains("VERSION:    v1")
            && explained.contains("FIELD: targetCPUUtilizationPercentage <integer>"),
        "{explained}"
    );
    let explained = cp.kubectl_ok(&["explain", "hpa.spec.metrics"]);
    assert!(explained.contains("VERSION:    v2"), "{explained}");

    // A v1 patch (merge and strategic) shows in v2.
    cp.kubectl_ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":50}}"#,
    ]);
    cp.kubectl_ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-p",
        r#"{"spec":{"maxReplicas":7}}"#,
    ]);
    let v2 = get_json(&cp, "horizontalpodautoscalers.v2.autoscaling");
    assert_eq!(v2["spec"]["maxReplicas"], 7);
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );

    // A metric v1 cannot express rides in an annotation of the v1 object, and a v1
    // read-modify-write (`kubectl replace`) keeps it.
    let mut v2 = v2;
    v2["spec"]["metrics"].as_array_mut().unwrap().push(json!(
        {"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "200Mi"}}}));
    let path = write(&cp, "v2.json", &v2);
    cp.kubectl_ok(&["replace", "-f", &path]);
    let mut v1 = get_json(&cp, "horizontalpodautoscalers.v1.autoscaling");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    let other: Value =
        serde_json::from_str(v1["metadata"]["annotations"][METRICS].as_str().unwrap()).unwrap();
    assert_eq!(
        other,
        json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "200Mi"}}])
    );
    v1["spec"]["minReplicas"] = json!(3);
    let path = write(&cp, "v1.json", &v1);
    cp.kubectl_ok(&["replace", "-f", &path]);
    let v2 = get_json(&cp, "horizontalpodautoscalers.v2.autoscaling");
    assert_eq!(v2["spec"]["minReplicas"], 3);
    assert_eq!(
        v2["spec"]["metrics"],
        json!([
            {"type": "Resource", "resource": {"name": "memory",
                "target": {"type": "AverageValue", "averageValue": "200Mi"}}},
            {"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]),
        "the memory metric survives the v1 write; the CPU one comes after it, as in Kubernetes"
    );
    assert!(
        v2["metadata"]
            .get("annotations")
            .and_then(|a| a.get(METRICS))
            .is_none(),
        "v2 never shows the round-trip annotations: {v2}"
    );
    // Server-side apply of a v1 configuration sets the CPU target and keeps the other metric.
    let path = cp.dir.join("apply-v1.yaml");
    std::fs::write(
        &path,
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\n\
         spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  \
         minReplicas: 3\n  maxReplicas: 7\n  targetCPUUtilizationPercentage: 60\n",
    )
    .unwrap();
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    let v2 = get_json(&cp, "horizontalpodautoscalers.v2.autoscaling");
    assert_eq!(
        v2["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"], 60,
        "{v2}"
    );
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["name"], "memory");
    let table = cp.kubectl_ok(&["get", "horizontalpodautoscalers.v1.autoscaling", "web"]);
    assert!(
        table.contains("cpu: <unknown>/60%") && table.contains("memory: <unknown>/200Mi"),
        "{table}"
    );
}
