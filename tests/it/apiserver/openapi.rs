//! The OpenAPI documents through the real kubectl: `explain` of built-in kinds and CRDs (also
//! `--recursive` and from the protobuf OpenAPI v2 document), the generators and client-side
//! apply that read the documents, and server-side apply of a Deployment's containers by two
//! field managers, owned item by item by the list types of the Kubernetes definitions.

use serde_json::Value;

use super::fixture::ControlPlane;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A gadget somebody built.
        properties:
          spec:
            type: object
            description: What the gadget should be.
            properties:
              size:
                type: integer
                description: How many sprockets the gadget turns.
              colour: {type: string, description: The paint on the gadget.}
"#;

fn write(cp: &ControlPlane, name: &str, text: &str) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn add_crd(cp: &ControlPlane, text: &str) {
    let crd = write(cp, "crd.yaml", text);
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=10s",
    ]);
}

#[test]
fn kubectl_explains_builtin_kinds_and_crd_fields_with_their_descriptions() {
    let cp = ControlPlane::start("openapi-explain");
    let replicas = cp.kubectl_ok(&["explain", "deployment.spec.replicas"]);
    assert!(replicas.contains("GROUP:      apps"), "{replicas}");
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
    assert!(
        replicas.contains("Number of desired pods"),
        "the Kubernetes description: {replicas}"
    );

    let target_port = cp.kubectl_ok(&["explain", "services.spec.ports.targetPort"]);
    assert!(
        target_port.contains("FIELD: targetPort <IntOrString>"),
        "{target_port}"
    );
    let limits = cp.kubectl_ok(&["explain", "pods.spec.containers.resources.limits"]);
    assert!(limits.contains("<map[string]Quantity>"), "{limits}");

    let containers = cp.kubectl_ok(&["explain", "pods.spec.containers", "--recursive"]);
    for field in ["containerPort", "mountPath", "readinessProbe", "valueFrom"] {
        assert!(
            containers.contains(field),
            "{field} in the recursive tree: {containers}"
        );
    }

    add_crd(&cp, CRD);
    let size = cp.kubectl_ok(&["explain", "gadgets.spec.size"]);
    assert!(
        size.contains("How many sprockets the gadget turns."),
        "{size}"
    );
    assert!(size.contains("FIELD: size <integer>"), "{size}");
    let gadget = cp.kubectl_ok(&["explain", "gadget"]);
    assert!(gadget.contains("A gadget somebody built."), "{gadget}");
    assert!(gadget.contains("metadata\t<ObjectMeta>"), "{gadget}");

    // A new field in the CRD changes the group-version's hash: kubectl sees it at once.
    add_crd(
        &cp,
        &CRD.replace(
            "              colour:",
            "              weight: {type: number, description: Heavier is sturdier.}\n              colour:",
        ),
    );
    let weight = cp.kubectl_ok(&["explain", "gadgets.spec.weight"]);
    assert!(weight.contains("Heavier is sturdier."), "{weight}");

    // The OpenAPI v2 document, which kubectl reads as protobuf.
    let v2 = cp.kubectl_ok(&[
        "explain",
        "deployment.spec.replicas",
        "--output=plaintext-openapiv2",
    ]);
    assert!(v2.contains("Number of desired pods"), "{v2}");
    let v2_crd = cp.kubectl_ok(&[
        "explain",
        "gadgets.spec.weight",
        "--output=plaintext-openapiv2",
    ]);
    assert!(v2_crd.contains("Heavier is sturdier."), "{v2_crd}");
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports: [{containerPort: 80}]
"#;

fn containers(cp: &ControlPlane) -> Vec<(String, String)> {
    let json = cp.kubectl_ok(&["get", "deployment", "web", "-o", "json"]);
    let d: Value = serde_json::from_str(&json).unwrap();
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["image"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn kubectl_generators_and_client_side_apply_work_from_the_served_openapi() {
    let cp = ControlPlane::start("openapi-generators");
    let yaml = cp.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--dry-run=server",
        "-o",
        "yaml",
    ]);
    assert!(yaml.contains("replicas: 1"), "defaulted: {yaml}");
    assert!(yaml.contains("image: nginx:1.27"), "{yaml}");
    assert!(
        cp.kubectl(&["get", "deployment", "web"])
            .status
            .code()
            .is_some_and(|c| c != 0),
        "a server dry run stores nothing"
    );

    // Client-side apply merges the containers by name (the patch strategy and merge key of the
    // served schema): a container another writer added survives a re-apply of the file.
    let file = write(&cp, "web.yaml", DEPLOYMENT);
    let out = cp.kubectl(&["apply", "-f", &file]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "{out:?}"
    );
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#,
    ]);
    let file = write(
        &cp,
        "web.yaml",
        &DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"),
    );
    let out = cp.kubectl(&["apply", "-f", &file, "-v=6"]);
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("/openapi/v3/apis/apps/v1?hash="),
        "kubectl read the apps/v1 document: {log}"
    );
    assert!(!log.contains("warning"), "{log}");
    assert_eq!(
        containers(&cp),
        [
            ("app".to_owned(), "nginx:1.28".to_owned()),
            ("sidecar".to_owned(), "busybox:1.36".to_owned())
        ]
    );
}

fn deployment_with(container: &str, image: &str) -> String {
    DEPLOYMENT
        .replace("name: app", &format!("name: {container}"))
        .replace("nginx:1.27", image)
        .replace(
            "ports: [{containerPort: 80}]",
            "env: [{name: MODE, value: fast}]",
        )
}

#[test]
fn two_field_managers_applying_different_containers_keep_both_and_conflict_per_field() {
    let cp = ControlPlane::start("openapi-ssa");
    let apply = |manager: &str, container: &str, image: &str, extra: &[&str]| {
        let file = write(
            &cp,
            &format!("{manager}.yaml"),
            &deployment_with(container, image),
        );
        let mut args = vec![
            "apply",
            "--server-side",
            "--field-manager",
            manager,
            "-f",
            &file,
        ];
        args.extend_from_slice(extra);
        cp.kubectl(&args)
    };
    assert!(apply("team-a", "api", "api:1", &[]).status.success());
    let b = apply("team-b", "worker", "worker:1", &[]);
    assert!(b.status.success(), "{b:?}");
    assert_eq!(
        containers(&cp),
        [
            ("api".to_owned(), "api:1".to_owned()),
            ("worker".to_owned(), "worker:1".to_owned())
        ],
        "each manager's container is kept"
    );
    let json = cp.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let d: Value = serde_json::from_str(&json).unwrap();
    let owned = |manager: &str| {
        d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .clone()
    };
    assert!(
        owned("team-a")[r#"k:{"name":"api"}"#]["f:env"][r#"k:{"name":"MODE"}"#].is_object(),
        "containers and env are keyed by name: {json}"
    );
    assert!(owned("team-a").get(r#"k:{"name":"worker"}"#).is_none());

    // team-b re-applies its container and changes team-a's image: a conflict on that field only.
    let both = format!(
        "{}\n      - name: api\n        image: api:2\n",
        deployment_with("worker", "worker:1").trim_end()
    );
    let file = write(&cp, "both.yaml", &both);
    let out = cp.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager",
        "team-b",
        "-f",
        &file,
    ]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"conflict with "team-a""#)
            && err.contains(r#".spec.template.spec.containers[name="api"].image"#),
        "{err}"
    );
    assert!(!err.contains(r#"containers[name="worker"]"#), "{err}");
    // Forced, team-b takes the image over; both containers stay.
    let forced = cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "team-b",
        "-f",
        &file,
    ]);
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(
        containers(&cp),
        [
            ("api".to_owned(), "api:2".to_owned()),
            ("worker".to_owned(), "worker:1".to_owned())
        ]
    );
    // team-a applying the image team-b set now shares the field without a conflict.
    let out = apply("team-a", "api", "api:2", &[]);
    assert!(out.status.success(), "{out:?}");
}
