//! A CRD's schema in `/openapi/v2` through the real kubectl: published as kube-apiserver
//! publishes CRDs in OpenAPI v2 (nullable, junctor and int-or-string constructs reduced, enum
//! and default kept), and `kubectl explain --output=plaintext-openapiv2` reading it from the
//! protobuf document.

use serde_json::{Value, json};

use super::fixture::ControlPlane;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [mode, note]
            properties:
              mode: {type: string, enum: [fast, safe], default: safe, description: How it runs.}
              note: {type: string, nullable: true, description: "A remark, or null."}
              port:
                x-kubernetes-int-or-string: true
                anyOf: [{type: integer}, {type: string}]
                description: A number or a name.
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[test]
fn a_crd_is_published_in_openapi_v2_as_kube_apiserver_publishes_it() {
    let cp = ControlPlane::start("openapi-v2-crds");
    let path = cp.dir.join("crd.yaml");
    std::fs::write(&path, CRD).unwrap();
    cp.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gizmos.example.com",
        "--timeout=10s",
    ]);
    let doc: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    let spec = &doc["definitions"]["com.example.v1.Gizmo"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["mode"],
        json!({"type": "string", "enum": ["fast", "safe"], "default": "safe", "description": "How it runs."})
    );
    assert_eq!(
        spec["properties"]["note"],
        json!({"description": "A remark, or null."}),
        "a nullable field has no type in v2"
    );
    assert_eq!(
        spec["properties"]["port"],
        json!({"x-kubernetes-int-or-string": true, "description": "A number or a name."})
    );
    assert_eq!(
        spec["properties"]["extra"],
        json!({"x-kubernetes-preserve-unknown-fields": true})
    );
    assert_eq!(
        spec["required"],
        json!(["mode"]),
        "a nullable field is not required in v2"
    );

    let explained = cp.kubectl_ok(&[
        "explain",
        "gizmos.spec.mode",
        "--output=plaintext-openapiv2",
    ]);
    assert!(explained.contains("How it runs."), "{explained}");
    let explained = cp.kubectl_ok(&["explain", "gizmos.spec", "--output=plaintext-openapiv2"]);
    for field in ["mode", "note", "port", "extra"] {
        assert!(explained.contains(field), "{field}: {explained}");
    }
}
