//! Strategic merge patch through the real kubectl: client-side `kubectl apply` and `kubectl
//! patch --type strategic` on lists merged by keys other than `name` (Service ports by `port`,
//! container ports by `containerPort`, volume mounts by `mountPath`), env by `name` with
//! `$patch: delete`, atomic tolerations, and `$retainKeys` of a Deployment's strategy.

use serde_json::{Value, json};

use super::fixture::ControlPlane;

fn apply(cp: &ControlPlane, name: &str, text: &str) {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).unwrap();
    cp.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

fn get(cp: &ControlPlane, what: &str) -> Value {
    serde_json::from_str(&cp.kubectl_ok(&["get", what, "-o", "json"])).unwrap()
}

const SERVICE_V1: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
"#;

const SERVICE_V2: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 9443}
  - {name: metrics, port: 9090}
"#;

#[test]
fn service_ports_merge_by_port_under_kubectl_apply_and_patch() {
    let cp = ControlPlane::start("strategic-service");
    apply(&cp, "svc1.yaml", SERVICE_V1);
    let cluster_ip = get(&cp, "service/web")["spec"]["clusterIP"].clone();
    apply(&cp, "svc2.yaml", SERVICE_V2);
    let svc = get(&cp, "service/web");
    let ports: Vec<(i64, Value)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["targetPort"].clone()))
        .collect();
    assert_eq!(
        ports,
        [(80, json!(8080)), (443, json!(9443)), (9090, json!(9090))],
        "merged by port, the new port defaulted"
    );
    assert_eq!(svc["spec"]["clusterIP"], cluster_ip);

    cp.kubectl_ok(&[
        "patch",
        "service",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"ports":[{"port":80,"$patch":"delete"},{"port":9090,"name":"prom"}]}}"#,
    ]);
    let ports = get(&cp, "service/web")["spec"]["ports"].clone();
    let named: Vec<(i64, &str)> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(named, [(443, "https"), (9090, "prom")]);
}

const DEPLOYMENT_V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: spot, operator: Exists}]
      containers:
      - name: app
        image: nginx:1.27
        ports: [{containerPort: 80, name: http}, {containerPort: 9090, name: metrics}]
        volumeMounts:
        - {name: data, mountPath: /data}
        - {name: cache, mountPath: /cache}
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
      volumes:
      - {name: data, emptyDir: {}}
      - {name: cache, emptyDir: {}}
"#;

const DEPLOYMENT_V2: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    type: Recreate
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: gpu, operator: Exists}]
      containers:
      - name: app
        image: nginx:1.28
        ports: [{containerPort: 80, name: web}, {containerPort: 9090, name: metrics}]
        volumeMounts:
        - {name: data, mountPath: /data, readOnly: true}
        - {name: cache, mountPath: /cache}
        env:
        - {name: A, value: "1"}
      volumes:
      - {name: data, emptyDir: {}}
      - {name: cache, emptyDir: {}}
"#;

#[test]
fn a_deployments_containers_merge_by_their_keys_and_keep_what_another_client_added() {
    let cp = ControlPlane::start("strategic-deployment");
    apply(&cp, "d1.yaml", DEPLOYMENT_V1);
    // Another client adds an env var and a mount kubectl apply never heard of.
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app",
            "env":[{"name":"INJECTED","value":"yes"}],
            "volumeMounts":[{"name":"cache","mountPath":"/cache","readOnly":true},{"name":"data","mountPath":"/extra"}],
            "ports":[{"containerPort":9090,"protocol":"TCP"}]}]}}}}"#,
    ]);
    let c = &get(&cp, "deployment/web")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"},
            {"name": "cache", "mountPath": "/cache", "readOnly": true},
            {"name": "data", "mountPath": "/extra"}]),
        "merged by mountPath: the same volume mounted twice is two items"
    );
    assert_eq!(c["ports"].as_array().unwrap().len(), 2, "{c}");

    apply(&cp, "d2.yaml", DEPLOYMENT_V2);
    let d = get(&cp, "deployment/web");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "nginx:1.28");
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        ["A", "INJECTED"],
        "B left the manifest (kubectl sends `$patch: delete`); the injected one stays"
    );
    let ports: Vec<(i64, &str)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["containerPort"].as_i64().unwrap(),
                p["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [(80, "web"), (9090, "metrics")]);
    assert_eq!(c["volumeMounts"][0]["readOnly"], true);
    assert_eq!(c["volumeMounts"][2]["mountPath"], "/extra");
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "gpu", "operator": "Exists"}]),
        "tolerations are atomic: replaced"
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "Recreate"}),
        "kubectl's $retainKeys drops rollingUpdate"
    );

    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"A","$patch":"delete"}]}]}}}}"#,
    ]);
    let env =
        get(&cp, "deployment/web")["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    assert_eq!(env, json!([{"name": "INJECTED", "value": "yes"}]));
}
