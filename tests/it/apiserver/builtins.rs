//! Built-in kinds through the real kubectl: events.k8s.io and core Events in one store,
//! workloads and networking kinds with kube-apiserver's columns, `kubectl get all`, unknown
//! fields under Strict and Warn, the defaults a client sees.

use super::fixture::ControlPlane;

fn write(cp: &ControlPlane, name: &str, text: &str) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const DEPLOYMENT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27"}]
"#;

#[test]
fn an_event_written_through_events_k8s_io_shows_in_kubectl_get_events_and_describe() {
    let cp = ControlPlane::start("builtins-events");
    let objects = write(&cp, "deploy.yaml", DEPLOYMENT);
    cp.kubectl_ok(&["apply", "-f", &objects]);
    let uid = cp.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let event = format!(
        r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {{name: web.scaled, namespace: team}}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: strata.dev/composer
reportingInstance: strata-0
action: Compose
reason: ComposedResources
type: Normal
note: "composed 2 resources"
regarding: {{apiVersion: apps/v1, kind: Deployment, name: web, namespace: team, uid: "{uid}"}}
"#
    );
    let event = write(&cp, "event.yaml", &event);
    cp.kubectl_ok(&["create", "-f", &event]);

    // One store: the core API sees the event in its own shape.
    let listed = cp.kubectl_ok(&["get", "events", "-n", "team"]);
    let header = listed.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{listed}"
    );
    assert!(
        listed.contains("ComposedResources")
            && listed.contains("deployment/web")
            && listed.contains("composed 2 resources"),
        "{listed}"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "events.v1.",
            "web.scaled",
            "-n",
            "team",
            "-o",
            "jsonpath={.apiVersion} {.involvedObject.name} {.message} {.reportingComponent}",
        ]),
        "v1 web composed 2 resources strata.dev/composer"
    );
    let described = cp.kubectl_ok(&["describe", "deployment", "web", "-n", "team"]);
    let events = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no events section: {described}"));
    assert!(
        events.contains("ComposedResources")
            && events.contains("strata.dev/composer")
            && events.contains("composed 2 resources"),
        "{described}"
    );

    // And an event written through the core API is served by events.k8s.io in its shape.
    let core = write(
        &cp,
        "core-event.yaml",
        r#"
apiVersion: v1
kind: Event
metadata: {name: web.legacy, namespace: team}
involvedObject: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: team}
reason: Legacy
message: "from the core API"
type: Warning
count: 4
source: {component: old-controller}
"#,
    );
    cp.kubectl_ok(&["create", "-f", &core]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "events.v1.events.k8s.io",
            "web.legacy",
            "-n",
            "team",
            "-o",
            "jsonpath={.apiVersion} {.regarding.name} {.note} {.deprecatedCount} {.deprecatedSource.component}",
        ]),
        "events.k8s.io/v1 web from the core API 4 old-controller"
    );
    let all = cp.kubectl_ok(&["get", "events.events.k8s.io", "-n", "team", "-o", "name"]);
    assert_eq!(all.lines().count(), 2, "{all}");
    cp.kubectl_ok(&["delete", "events.events.k8s.io", "web.legacy", "-n", "team"]);
    let left = cp.kubectl_ok(&["get", "events", "-n", "team", "-o", "name"]);
    assert_eq!(left.trim(), "event/web.scaled");
}

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27", ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: "postgres:17"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: backup, image: busybox}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;

fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{out}"))
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn kubectl_get_shows_builtin_kinds_with_kube_apiserver_columns_and_defaults() {
    let cp = ControlPlane::start("builtins-get");
    let objects = write(&cp, "workloads.yaml", WORKLOADS);
    cp.kubectl_ok(&["apply", "-f", &objects]);

    let deploy = cp.kubectl_ok(&["get", "deploy", "-n", "shop", "-o", "wide"]);
    assert_eq!(
        header(&deploy),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let r = row(&deploy, "web");
    assert_eq!((r[1], r[2], r[3]), ("0/3", "0", "0"), "{deploy}");
    assert_eq!(&r[5..], ["nginx", "nginx:1.27", "app=web"], "{deploy}");

    let svc = cp.kubectl_ok(&["get", "svc", "web", "-n", "shop"]);
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let r = row(&svc, "web");
    assert_eq!((r[1], r[3]), ("NodePort", "<none>"), "{svc}");
    assert!(
        r[2].starts_with("10.96."),
        "a cluster IP is allocated: {svc}"
    );
    assert!(
        r[4].starts_with("80:3") && r[4].ends_with("/TCP"),
        "a node port is allocated: {svc}"
    );

    // The defaults a client sees.
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.strategy.type} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.containers[0].imagePullPolicy} {.spec.template.spec.containers[0].ports[0].protocol}",
        ]),
        "RollingUpdate 10 600 IfNotPresent TCP"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "svc",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.sessionAffinity} {.spec.ports[0].targetPort} {.spec.externalTrafficPolicy}",
        ]),
        "None 80 Cluster"
    );

    // `kubectl apply` of a changed image sends a strategic merge patch with only the changed
    // fields of the container: merged by name, the container keeps its port.
    let changed = write(
        &cp,
        "workloads-2.yaml",
        &WORKLOADS.replace("image: \"nginx:1.27\"", "image: \"nginx:1.28\""),
    );
    cp.kubectl_ok(&["apply", "-f", &changed]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ]),
        "nginx:1.28 80"
    );

    let sts = cp.kubectl_ok(&["get", "sts", "-n", "shop"]);
    assert_eq!(header(&sts), ["NAME", "READY", "AGE"]);
    assert_eq!(row(&sts, "db")[1], "0/1");
    let cj = cp.kubectl_ok(&["get", "cj", "-n", "shop"]);
    assert_eq!(
        header(&cj),
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(
        &row(&cj, "nightly")[1..6],
        ["0 3 * * *", "<none>", "False", "0", "<none>"]
    );
    let pvc = cp.kubectl_ok(&["get", "pvc", "-n", "shop"]);
    assert_eq!(
        header(&pvc),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    let pdb = cp.kubectl_ok(&["get", "pdb", "-n", "shop"]);
    assert_eq!(
        header(&pdb),
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(&row(&pdb, "web")[1..4], ["2", "N/A", "0"]);
    let hpa = cp.kubectl_ok(&["get", "hpa", "-n", "shop"]);
    assert_eq!(
        header(&hpa),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert_eq!(
        &row(&hpa, "web")[1..6],
        ["Deployment/web", "cpu: <unknown>/80%", "1", "5", "0"]
    );
    let ing = cp.kubectl_ok(&["get", "ing", "-n", "shop"]);
    assert_eq!(
        header(&ing),
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    assert_eq!(&row(&ing, "web")[1..3], ["<none>", "shop.example.com"]);

    // `kubectl get all`: the workload kinds, not PVCs, PDBs or Ingresses.
    let all = cp.kubectl_ok(&["get", "all", "-n", "shop", "-o", "name"]);
    let mut names: Vec<&str> = all.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cronjob.batch/nightly",
            "deployment.apps/web",
            "horizontalpodautoscaler.autoscaling/web",
            "service/web",
            "statefulset.apps/db",
        ]
    );
}

#[test]
fn an_unknown_field_of_a_builtin_kind_is_rejected_under_strict_and_warned_under_warn() {
    let cp = ControlPlane::start("builtins-fields");
    let typo = write(
        &cp,
        "typo.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo, namespace: default}
spec:
  replica: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers: [{name: c, image: "nginx:1.27", imagePullPolice: Always}]
"#,
    );
    let out = cp.kubectl(&["apply", "-f", &typo]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "Strict is kubectl's default");
    assert!(
        stderr.contains("unknown field \"spec.replica\"")
            && stderr
                .contains("unknown field \"spec.template.spec.containers[0].imagePullPolice\""),
        "{stderr}"
    );
    let out = cp.kubectl(&["apply", "--validate=warn", "-f", &typo]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: unknown field \"spec.replica\""),
        "{stderr}"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "typo", "-o", "jsonpath={.spec.replicas}"]),
        "1",
        "the unknown field is dropped and the default applies"
    );
}

#[test]
fn kubectl_create_deployment_service_job_cronjob_and_run_work_over_protobuf_and_scale_works() {
    let cp = ControlPlane::start("builtins-create");
    cp.kubectl_ok(&["create", "namespace", "gen"]);
    cp.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "gen",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    cp.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "gen",
        "--tcp=80:8080",
    ]);
    cp.kubectl_ok(&[
        "create",
        "job",
        "once",
        "-n",
        "gen",
        "--image=busybox",
        "--",
        "date",
    ]);
    cp.kubectl_ok(&[
        "create",
        "cronjob",
        "nightly",
        "-n",
        "gen",
        "--image=busybox",
        "--schedule=0 3 * * *",
    ]);
    cp.kubectl_ok(&[
        "run",
        "shell",
        "-n",
        "gen",
        "--image=busybox",
        "--labels=app=shell",
        "--",
        "sleep",
        "3600",
    ]);

    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.containers[0].imagePullPolicy}",
        ]),
        "2 web nginx:1.27 80 25% IfNotPresent"
    );
    let deploy = cp.kubectl_ok(&["get", "deploy", "web", "-n", "gen", "-o", "json"]);
    let deploy: serde_json::Value = serde_json::from_str(&deploy).unwrap();
    assert!(
        deploy["spec"].get("minReadySeconds").is_none()
            && deploy["spec"].get("paused").is_none()
            && deploy["metadata"].get("generateName").is_none(),
        "protobuf's zero values are not JSON fields: {deploy}"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "svc",
            "web",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.ports[0].name} {.spec.selector.app}",
        ]),
        "ClusterIP 80 8080 80-8080 web"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "job",
            "once",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command} {.spec.template.spec.restartPolicy} {.spec.completions}",
        ]),
        r#"["date"] Never 1"#
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "cj",
            "nightly",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].image}",
        ]),
        "0 3 * * * busybox"
    );
    cp.kubectl_ok(&[
        "create",
        "ingress",
        "web",
        "-n",
        "gen",
        "--rule=shop.example.com/=web:80",
    ]);
    cp.kubectl_ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "-n",
        "gen",
        "--selector=app=web",
        "--min-available=1",
    ]);
    cp.kubectl_ok(&[
        "create",
        "quota",
        "small",
        "-n",
        "gen",
        "--hard=pods=10,requests.cpu=2",
    ]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "ingress",
            "web",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.rules[0].host} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].backend.service.port.number}",
        ]),
        "shop.example.com Exact 80"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "pdb,quota",
            "-n",
            "gen",
            "-o",
            "jsonpath={.items[0].spec.minAvailable} {.items[1].spec.hard.pods}",
        ]),
        "1 10"
    );
    cp.kubectl_ok(&["scale", "deployment", "web", "-n", "gen", "--replicas=5"]);
    let deploy = cp.kubectl_ok(&["get", "deploy", "web", "-n", "gen"]);
    assert_eq!(row(&deploy, "web")[1], "0/5", "{deploy}");
    let scale = cp.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/gen/deployments/web/scale",
    ]);
    assert!(scale.contains(r#""selector":"app=web""#), "{scale}");
    let pods = cp.kubectl_ok(&["get", "pods", "-n", "gen"]);
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(
        &row(&pods, "shell")[1..4],
        ["0/1", "Pending", "0"],
        "{pods}"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "pod",
            "shell",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.containers[0].args} {.metadata.labels.app} {.status.qosClass}",
        ]),
        r#"["sleep","3600"] shell BestEffort"#
    );
}

#[test]
fn the_external_name_column_of_a_managed_resource_shows_its_annotation() {
    let cp = ControlPlane::start("builtins-external-name");
    let crd = write(
        &cp,
        "crd.yaml",
        include_str!("../../../crds/storage.gcp.strata.dev_buckets.yaml"),
    );
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/buckets.storage.gcp.strata.dev",
    ]);
    let bucket = write(
        &cp,
        "bucket.yaml",
        r#"
apiVersion: storage.gcp.strata.dev/v1alpha1
kind: Bucket
metadata:
  name: assets
  annotations: {strata.dev/external-name: acme-assets-7f3a}
spec:
  forProvider: {location: EU, project: acme}
"#,
    );
    cp.kubectl_ok(&["apply", "-f", &bucket]);
    let out = cp.kubectl_ok(&["get", "buckets"]);
    assert_eq!(
        header(&out),
        ["NAME", "READY", "SYNCED", "EXTERNAL-NAME", "AGE"]
    );
    assert_eq!(row(&out, "assets")[1], "acme-assets-7f3a", "{out}");
}

#[test]
fn kubectl_cluster_info_and_apply_prune_work() {
    let cp = ControlPlane::start("builtins-prune");
    let info = cp.kubectl_ok(&["cluster-info"]);
    assert!(
        info.contains("Kubernetes control plane is running at https://127.0.0.1:"),
        "{info}"
    );
    let dir = cp.dir.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    let both = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default, labels: {app: shop}}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: \"nginx:1.27\"}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, labels: {app: shop}}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n";
    std::fs::write(dir.join("app.yaml"), both).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    cp.kubectl_ok(&["apply", "--prune", "-l", "app=shop", "-f", &dir_arg]);
    // The Service leaves the configuration: apply --prune deletes it.
    let only_deploy = both.split("\n---\n").next().unwrap();
    std::fs::write(dir.join("app.yaml"), only_deploy).unwrap();
    let out = cp.kubectl_ok(&[
        "apply",
        "--prune",
        "-l",
        "app=shop",
        "--prune-allowlist=core/v1/Service",
        "--prune-allowlist=apps/v1/Deployment",
        "-f",
        &dir_arg,
    ]);
    assert!(out.contains("service/web pruned"), "{out}");
    let left = cp.kubectl_ok(&["get", "deploy,svc", "-l", "app=shop", "-o", "name"]);
    assert_eq!(left.trim(), "deployment.apps/web");
}

#[test]
fn the_kubernetes_service_points_at_the_server_and_pods_without_a_node_answer_as_kube_apiserver() {
    let cp = ControlPlane::start("builtins-kubernetes");
    let port = cp.addr.port();
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "svc",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.metadata.labels.component}",
        ]),
        format!("10.96.0.1 https 443 {port} apiserver")
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ]),
        format!("127.0.0.1:{port}")
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kubernetes",
            "-o",
            "jsonpath={.items[*].endpoints[0].addresses[0]}:{.items[*].ports[0].port}",
        ]),
        format!("127.0.0.1:{port}")
    );
    // A service created afterwards gets another cluster IP.
    cp.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = cp.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");

    cp.kubectl_ok(&["run", "web", "--image=nginx:1.27"]);
    let logs = cp.kubectl(&["logs", "web"]);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(logs.stdout.is_empty(), "no node, no log");
    let exec = cp.kubectl(&["exec", "web", "--", "ls"]);
    let stderr = String::from_utf8_lossy(&exec.stderr);
    assert!(!exec.status.success());
    assert!(
        stderr.contains("pod web does not have a host assigned"),
        "{stderr}"
    );
    // kubectl checks the container itself: ask the server directly.
    let wrong = cp.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web/log?container=nope",
    ]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("Error from server (BadRequest): container nope is not valid for pod web"),
        "{stderr}"
    );
    let missing = cp.kubectl(&["logs", "nothing"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains(r#"pods "nothing" not found"#), "{stderr}");
}
