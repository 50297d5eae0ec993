#!/usr/bin/env python3
"""Generates engine/apiserver/src/openapi_definitions.json: the OpenAPI v3 schemas of the built-in
kinds the control plane serves, and of every type they reference.

The source is the Kubernetes OpenAPI definitions of one release as the `kubernetes-validate`
package ships them (tests/requirements.txt pins it). That package rewrote them as JSON Schema:
optional fields are `type: [T, "null"]`, `apiVersion`/`kind` carry an `enum`, references point at
`#/$defs/`. This script undoes those rewrites, so the output has the shape kube-apiserver serves
under `components.schemas` (where int-or-string and quantity are a `oneOf` of their JSON types):
descriptions, `x-kubernetes-group-version-kind`, the list types and map keys and the strategic
merge patch strategies and keys kept as they are.

    python3 scripts/gen-openapi-definitions.py > engine/apiserver/src/openapi_definitions.json
    python3 scripts/gen-openapi-definitions.py --check   # exit 1 when the file is not current

One definition per line, sorted, so a change of release reads as a diff of the types it touched.
"""
import json
import os
import sys

# The release the built-in kinds' Rust types (k8s-openapi's `v1_33`) are validated by.
RELEASE = "v1.33.0"
OUT = os.path.join(os.path.dirname(__file__), "..", "engine", "apiserver", "src",
                   "openapi_definitions.json")

# The kinds served (engine/apiserver/src/resource.rs and discovery.rs's HANDLED), and the kinds
# their subresources answer with.
ROOTS = [
    "io.k8s.api.core.v1." + k for k in [
        "Namespace", "Secret", "ConfigMap", "Event", "ServiceAccount", "Pod", "Service",
        "Endpoints", "PersistentVolumeClaim", "LimitRange", "ReplicationController",
        "PersistentVolume", "ResourceQuota"]
] + [
    "io.k8s.api.apps.v1.Deployment", "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.apps.v1.DaemonSet", "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.batch.v1.Job", "io.k8s.api.batch.v1.CronJob",
    "io.k8s.api.networking.v1.Ingress", "io.k8s.api.networking.v1.NetworkPolicy",
    "io.k8s.api.policy.v1.PodDisruptionBudget",
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.api.events.v1.Event",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    "io.k8s.api.rbac.v1.Role", "io.k8s.api.rbac.v1.RoleBinding",
    "io.k8s.api.rbac.v1.ClusterRole", "io.k8s.api.rbac.v1.ClusterRoleBinding",
    "io.k8s.api.authentication.v1.SelfSubjectReview",
    "io.k8s.api.authentication.v1.TokenReview",
    "io.k8s.api.authentication.v1.TokenRequest",
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    "io.k8s.api.authorization.v1.SubjectAccessReview",
    "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]
REF = "#/$defs/"
COMPONENTS = "#/components/schemas/"


def source():
    import kubernetes_validate
    base = os.path.dirname(kubernetes_validate.__file__)
    path = os.path.join(base, "kubernetes-json-schema", f"{RELEASE}-local", "_definitions.json")
    with open(path) as f:
        return json.load(f)["$defs"]


def untype(node, gvk):
    """One schema node back in OpenAPI v3 form (`gvk`: the node is a kind's root)."""
    if isinstance(node, list):
        return [untype(n, False) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            value = types[0] if len(types) == 1 else types
        elif key == "$ref":
            value = COMPONENTS + value[len(REF):]
        elif key == "properties":
            value = {name: untype(p, False) for name, p in value.items()}
            if gvk:
                for name in ("apiVersion", "kind"):
                    if name in value:
                        value[name].pop("enum", None)
        else:
            value = untype(value, False)
        out[key] = value
    # A reference with siblings (a field's description, its list type) is an `allOf` of one, as
    # kube-apiserver writes it: OpenAPI 3.0 ignores what stands beside a `$ref`.
    if "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value[len(COMPONENTS):])
            elif key == "properties":
                refs(list(value.values()), found)
            else:
                refs(value, found)
    elif isinstance(node, list):
        for n in node:
            refs(n, found)


def generate():
    defs = source()
    out, todo = {}, list(ROOTS)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        raw = defs[name]
        schema = untype(raw, "x-kubernetes-group-version-kind" in raw)
        out[name] = schema
        found = set()
        refs(schema, found)
        todo.extend(sorted(found - out.keys()))
    lines = [json.dumps(name) + ": " + json.dumps(out[name], sort_keys=True, ensure_ascii=False)
             for name in sorted(out)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main():
    text = generate()
    if sys.argv[1:] == ["--check"]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUT} is not current: run scripts/gen-openapi-definitions.py", file=sys.stderr)
                sys.exit(1)
        return
    sys.stdout.write(text)


main()
