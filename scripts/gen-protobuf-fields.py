#!/usr/bin/env python3
"""Generates engine/apiserver/src/protobuf_fields.rs: the protobuf field numbers and JSON names
of the built-in kinds the control plane decodes from protobuf.

Field numbers and wire types come from the k8s-pb crate's generated types (Kubernetes'
generated.proto), JSON names from the k8s-openapi crate (each type's serde keys). Both crates
must be in the local cargo registry (`cargo fetch` brings them).

    python3 scripts/gen-protobuf-fields.py | rustfmt --edition 2024 \
        > engine/apiserver/src/protobuf_fields.rs
"""
import glob
import os
import re
import sys

REG = os.path.expanduser("~/.cargo/registry/src")
PB = sorted(glob.glob(f"{REG}/*/k8s-pb-0.9.*/src"))[-1]
OA = sorted(glob.glob(f"{REG}/*/k8s-openapi-0.29.*/src/v1_33"))[-1]

ROOTS = [
    ("api/core/v1", "Pod"), ("api/core/v1", "Service"), ("api/core/v1", "Endpoints"),
    ("api/core/v1", "PersistentVolumeClaim"), ("api/core/v1", "LimitRange"),
    ("api/core/v1", "ResourceQuota"), ("api/core/v1", "Event"),
    ("api/core/v1", "ReplicationController"), ("api/core/v1", "PersistentVolume"),
    ("api/apps/v1", "Deployment"), ("api/apps/v1", "StatefulSet"),
    ("api/apps/v1", "DaemonSet"), ("api/apps/v1", "ReplicaSet"),
    ("api/batch/v1", "Job"), ("api/batch/v1", "CronJob"),
    ("api/networking/v1", "Ingress"), ("api/networking/v1", "NetworkPolicy"),
    ("api/policy/v1", "PodDisruptionBudget"),
    ("api/autoscaling/v2", "HorizontalPodAutoscaler"),
    ("api/autoscaling/v1", "HorizontalPodAutoscaler"),
    ("api/discovery/v1", "EndpointSlice"), ("api/coordination/v1", "Lease"),
]
# Messages with a JSON form of their own.
SPECIAL = {
    ("apimachinery/pkg/apis/meta/v1", "ObjectMeta"): "Ty::Meta",
    ("apimachinery/pkg/util/intstr", "IntOrString"): "Ty::IntOrString",
    ("apimachinery/pkg/api/resource", "Quantity"): "Ty::Quantity",
    ("apimachinery/pkg/apis/meta/v1", "Time"): "Ty::Time",
    ("apimachinery/pkg/apis/meta/v1", "MicroTime"): "Ty::Time",
}
# Go writes every non-pointer field to protobuf, zero or not, where its JSON omits the zero
# values: a zero scalar is left out unless the field is a pointer whose zero means something.
KEEP_ZERO = {
    "replicas", "revisionHistoryLimit", "terminationGracePeriodSeconds", "completions",
    "parallelism", "backoffLimit", "activeDeadlineSeconds", "minReplicas", "partition",
    "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds",
    "ttlSecondsAfterFinished", "automountServiceAccountToken", "enableServiceLinks",
    "readOnlyRootFilesystem", "runAsNonRoot", "allowPrivilegeEscalation", "privileged",
    "runAsUser", "runAsGroup", "fsGroup", "defaultMode", "optional", "hostUsers",
    "storageClassName", "suspend", "publishNotReadyAddresses", "maxSkew",
}
SCALARS = {"string": "Str", "int32": "Int", "int64": "Int", "bool": "Bool"}

FIELD = re.compile(
    r'#\[prost\((?P<attr>[^\]]*)\)\]\s*pub (?:r#)?(?P<name>\w+):\s*(?P<ty>.*?),\s*(?=#\[|///|\Z)', re.S)


def parse_module(path):
    text = open(f"{PB}/{path}/mod.rs").read()
    structs = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        body = m.group(2) + "\n"
        structs[m.group(1)] = [(f.group("attr"), f.group("name"), f.group("ty"))
                               for f in FIELD.finditer(body)]
    return structs


MODULES = {}


def module(path):
    if path not in MODULES:
        MODULES[path] = parse_module(path)
    return MODULES[path]


def resolve(path, rust_ty):
    """The (module, message) a Rust type path names, relative to module `path`."""
    inner = re.sub(r"\s", "", rust_ty)
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"):
        inner = inner.replace(wrapper, "")
    inner = inner.rstrip(">,")
    if "BTreeMap<" in inner:
        inner = inner.split(",", 1)[1]
    parts = inner.split("::")
    base = path.split("/")
    while parts and parts[0] == "super":
        parts.pop(0)
        base.pop()
    return "/".join(base + parts[:-1]), parts[-1]


OA_INDEX = {}


def openapi_names(path, name):
    """The JSON names of k8s-openapi's type for `name` (matched ignoring case: the protobuf
    names are `GcePersistentDisk…` where the API's are `GCEPersistentDisk…`), by lowercase."""
    if (path, name) in FLATTENED:
        return FLATTENED[(path, name)]
    if path not in OA_INDEX:
        OA_INDEX[path] = {}
        for f in glob.glob(f"{OA}/{path}/*.rs"):
            text = open(f).read()
            for m in re.finditer(r"pub struct (\w+) \{", text):
                keys = re.findall(r'"(\w+)" => Field::Key_(\w+)', text)
                OA_INDEX[path][m.group(1).lower()] = {k.lower(): k for k, _ in keys}
    return OA_INDEX[path].get(name.lower())


def const_name(path, name):
    pkg = path.replace("apimachinery/pkg/", "").replace("api/", "").replace("/", "_")
    return re.sub(r"\W", "_", f"{pkg}_{name}").upper()


ORDER, SEEN = [], set()


# Embedded messages the API flattens into their parent (IngressRule's IngressRuleValue): their
# JSON names are the parent's.
FLATTENED = {}


def embedded(path, field, rust_ty):
    target = resolve(path, rust_ty)
    return target if target[1].lower() == field.replace("_", "").lower() else None


def visit(path, name, stack=()):
    key = (path, name)
    if key not in SPECIAL and openapi_names(path, name) is None and stack:
        parent = stack[-1]
        for _, field, ty in module(parent[0])[parent[1]]:
            if embedded(parent[0], field, ty) == key:
                FLATTENED[key] = openapi_names(*parent)
    if key in SPECIAL or key in SEEN or openapi_names(path, name) is None:
        # Types newer than the served API version are not read (decoding rejects them).
        return
    if key in stack:
        sys.exit(f"cycle through {path}/{name}")
    fields = module(path)[name]
    for attr, field, ty in fields:
        if key in ROOTS and field == "status":
            continue  # the server computes status: read and dropped
        if attr.startswith("message") or "message" in attr.split("tag")[0]:
            visit(*resolve(path, ty), stack + (key,))
    SEEN.add(key)
    ORDER.append(key)


def ty_of(path, attr, rust_ty, top, field):
    if top and field == "status":
        return "Ty::Ignored"
    kind = attr.split(",")[0].strip()
    repeated = "repeated" in attr
    if kind.startswith("btree_map"):
        value = re.search(r'"string, (\w+)"', attr).group(1)
        if value == "string":
            return "Ty::StrMap"
        target = resolve(path, rust_ty)
        return f"Ty::MsgMap(&{SPECIAL.get(target) or f'Ty::Msg({const_name(*target)})'})"
    if kind.startswith("bytes"):
        kind = "bytes"
    if kind == "message":
        target = resolve(path, rust_ty)
        if target in SPECIAL:
            one = SPECIAL[target]
            return f"Ty::Many(&{one})" if repeated else one
        inner = const_name(*target)
        return f"Ty::Msgs({inner})" if repeated else f"Ty::Msg({inner})"
    scalar = SCALARS[kind]
    if repeated:
        return f"Ty::Many(&Ty::{scalar})"
    return f"Ty::{scalar}" if field in KEEP_ZERO else f"Ty::OmitZero(&Ty::{scalar})"


for path, name in ROOTS:
    visit(path, name)

print("//! Generated by scripts/gen-protobuf-fields.py from the Kubernetes protobuf definitions")
print("//! (k8s-pb) and JSON names (k8s-openapi): field number, JSON name and how each decodes.")
print("//! Do not edit by hand.")
print()
print("use super::Ty;")
print()
root_set = set(ROOTS)
for path, name in ORDER:
    names = openapi_names(path, name)
    rows = []
    for attr, field, rust_ty in module(path)[name]:
        if "message" in attr.split("tag")[0]:
            target = resolve(path, rust_ty)
            if target not in SPECIAL and openapi_names(*target) is None:
                continue
        tag = re.search(r'tag = "(\d+)"', attr).group(1)
        json_name = names.get(field.replace("_", "").lower())
        if json_name is None and attr.startswith("message"):
            # A Go embedded struct: its fields are inline in the JSON.
            target = resolve(path, rust_ty)
            if target[1].lower() == field.replace("_", "").lower():
                rows.append(f'    ({tag}, "", Ty::Inline({const_name(*target)})),')
                continue
        if json_name is None:
            # A field newer than the served API version: not read.
            print(f"skipped {path}/{name}.{field}", file=sys.stderr)
            continue
        if json_name == "metadata" and (path, name) in root_set:
            continue
        rows.append(f'    ({tag}, "{json_name}", {ty_of(path, attr, rust_ty, (path, name) in root_set, json_name)}),')
    print(f"pub(super) const {const_name(path, name)}: &[(u64, &str, Ty)] = &[")
    print("\n".join(rows))
    print("];")
print()
print("/// The fields after `metadata` of the kinds decoded by these tables, by `apiVersion` and kind.")
print("pub(super) fn root(api_version: &str, kind: &str) -> Option<&'static [(u64, &'static str, Ty)]> {")
print("    Some(match (api_version, kind) {")
for path, name in ROOTS:
    gv = path.split("/", 1)[1]
    group, version = gv.split("/")
    group = {"core": "", "networking": "networking.k8s.io", "discovery": "discovery.k8s.io",
             "coordination": "coordination.k8s.io"}.get(group, group)
    api_version = f"{group}/{version}" if group else version
    print(f'        ("{api_version}", "{name}") => {const_name(path, name)},')
print("        _ => return None,")
print("    })")
print("}")
