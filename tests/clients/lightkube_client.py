"""lightkube against the control plane: typed resources, subresources, server-side apply,
generic resources for CRDs (declared and loaded from the cluster), watches and the async
client. See harness.py for how it is run."""

import asyncio
import base64
import threading
import time

import yaml

from lightkube import ApiError, AsyncClient, Client, KubeConfig, codecs
from lightkube.generic_resource import (create_namespaced_resource, get_generic_resource,
                                        load_in_cluster_generic_resources)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Endpoints, Event as CoreEvent, Namespace, Pod, Secret, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.events_v1 import Event
from lightkube.types import OnErrorAction, OnErrorResult, PatchType

import harness
from harness import eq

KUBECONFIG, NS, HISTORY = harness.args()
config = KubeConfig.from_file(KUBECONFIG)
client = Client(config=config, field_manager="lightkube", timeout=30)
checks = harness.Checks()


def api_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ApiError as e:
        return e.status
    raise AssertionError(f"{fn.__name__} succeeded")


def namespaces():
    ns = client.create(Namespace(metadata=ObjectMeta(name=NS, labels={"suite": "clients"})))
    eq(ns.status.phase, "Active", "phase")
    eq([n.metadata.name for n in client.list(Namespace, labels={"suite": "clients"})], [NS], "by label")


def configmaps():
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="cm1", labels={"app": "demo"}), data={"k": "v"}),
                       namespace=NS)
    rv = cm.metadata.resourceVersion
    got = client.get(ConfigMap, "cm1", namespace=NS)
    eq(got.data, {"k": "v"}, "get")
    got.data["k2"] = "v2"
    replaced = client.replace(got)
    assert replaced.metadata.resourceVersion != rv
    status = api_error(client.replace, cm)
    eq((status.code, status.reason), (409, "Conflict"), "stale replace")
    merged = client.patch(ConfigMap, "cm1", {"data": {"k": None, "k3": "v3"}}, namespace=NS,
                          patch_type=PatchType.MERGE)
    eq(merged.data, {"k2": "v2", "k3": "v3"}, "merge patch")
    patched = client.patch(ConfigMap, "cm1", [{"op": "add", "path": "/data/k4", "value": "v4"}],
                           namespace=NS, patch_type=PatchType.JSON)
    eq(patched.data["k4"], "v4", "json patch")
    strategic = client.patch(ConfigMap, "cm1", {"metadata": {"labels": {"tier": "b"}}}, namespace=NS)
    eq(strategic.metadata.labels, {"app": "demo", "tier": "b"}, "strategic patch")
    client.delete(ConfigMap, "cm1", namespace=NS)
    status = api_error(client.get, ConfigMap, "cm1", namespace=NS)
    eq((status.code, status.reason, status.details.name), (404, "NotFound", "cm1"), "deleted")


def server_side_apply():
    desired = ConfigMap(metadata=ObjectMeta(name="applied", namespace=NS), data={"a": "1"})
    applied = client.apply(desired, field_manager="one")
    eq(applied.data, {"a": "1"}, "created by apply")
    eq([(m.manager, m.operation) for m in applied.metadata.managedFields], [("one", "Apply")], "managers")
    desired.data = {"a": "2"}
    status = api_error(client.apply, desired, field_manager="two")
    eq((status.code, status.reason), (409, "Conflict"), "conflict")
    forced = client.apply(desired, field_manager="two", force=True)
    eq(forced.data, {"a": "2"}, "forced")
    again = client.patch(ConfigMap, "applied", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "applied"}, "data": {"a": "2", "b": "3"}},
                         namespace=NS, patch_type=PatchType.APPLY, field_manager="two")
    eq(again.data, {"a": "2", "b": "3"}, "apply patch")


def secrets():
    client.create(Secret(metadata=ObjectMeta(name="s1"), stringData={"password": "s3cret"}), namespace=NS)
    got = client.get(Secret, "s1", namespace=NS)
    eq(base64.b64decode(got.data["password"]).decode(), "s3cret", "stringData merged into data")
    eq(got.stringData, None, "stringData not stored")


def deployments():
    client.create(codecs.from_dict(harness.deployment("web", NS)))
    scale = client.get(Deployment.Scale, "web", namespace=NS)
    eq(scale.spec.replicas, 1, "scale")
    scaled = client.patch(Deployment.Scale, "web", {"spec": {"replicas": 3}}, namespace=NS)
    eq(scaled.spec.replicas, 3, "patched scale")
    scale = client.get(Deployment.Scale, "web", namespace=NS)
    scale.spec.replicas = 2
    eq(client.replace(scale, "web", namespace=NS).spec.replicas, 2, "replaced scale")
    status = client.patch(Deployment.Status, "web", {"status": {"replicas": 2, "availableReplicas": 1}},
                          namespace=NS, patch_type=PatchType.MERGE)
    eq(status.status.availableReplicas, 1, "status patch")
    d = client.get(Deployment, "web", namespace=NS)
    eq((d.spec.replicas, d.status.availableReplicas), (2, 1), "deployment after scale and status")
    patched = client.patch(Deployment, "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}}}, namespace=NS)
    eq({c.name: c.image for c in patched.spec.template.spec.containers},
       {"app": "nginx:1.27", "sidecar": "busybox:1.37"}, "strategic merge of containers")
    applied = client.apply(codecs.from_dict(harness.deployment("applied", NS, replicas=2)), force=True)
    eq(applied.spec.replicas, 2, "server-side apply of a deployment")
    # Apply again with one container changed: the list merges on name, nothing else changes.
    changed = harness.deployment("applied", NS, replicas=2)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    again = client.apply(codecs.from_dict(changed))
    eq([c.image for c in again.spec.template.spec.containers], ["nginx:1.28", "busybox:1.36"], "re-apply")


def services():
    svc = client.create(codecs.from_dict(harness.service("web", NS)))
    assert svc.spec.clusterIP.startswith("10.96."), svc.spec.clusterIP
    k = client.get(Service, "kubernetes", namespace="default")
    eq((k.spec.clusterIP, k.spec.ports[0].port), ("10.96.0.1", 443), "the kubernetes service")
    server = [c["cluster"]["server"] for c in yaml.safe_load(open(KUBECONFIG))["clusters"]][0]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    ep = client.get(Endpoints, "kubernetes", namespace="default")
    eq((ep.subsets[0].addresses[0].ip, ep.subsets[0].ports[0].port), (host, int(port)), "endpoints")
    slices = list(client.list(EndpointSlice, namespace="default",
                              labels={"kubernetes.io/service-name": "kubernetes"}))
    eq([s.endpoints[0].addresses for s in slices], [[host]], "endpoint slice")


def selectors_and_pages():
    for i in range(7):
        client.create(ConfigMap(metadata=ObjectMeta(name=f"page-{i}", labels={"set": "pages", "parity": str(i % 2)})),
                      namespace=NS)
    odd = client.list(ConfigMap, namespace=NS, labels={"set": "pages", "parity": "1"})
    eq(sorted(c.metadata.name for c in odd), ["page-1", "page-3", "page-5"], "labels")
    from lightkube import operators
    notin = list(client.list(ConfigMap, namespace=NS, labels={"set": "pages", "parity": operators.not_in(["1"])}))
    eq(len(notin), 4, "not_in")
    one = list(client.list(ConfigMap, namespace=NS, fields={"metadata.name": "page-2"}))
    eq([c.metadata.name for c in one], ["page-2"], "fields")
    neg = list(client.list(ConfigMap, namespace=NS, labels={"set": "pages"},
                           fields={"metadata.name": operators.not_equal("page-2")}))
    eq(len(neg), 6, "field !=")
    # chunk_size pages with limit/continue behind the iterator.
    pages = client.list(ConfigMap, namespace=NS, labels={"set": "pages"}, chunk_size=2)
    eq(sorted(c.metadata.name for c in pages), [f"page-{i}" for i in range(7)], "chunked list")
    status = api_error(lambda: list(client.list(ConfigMap, namespace=NS, fields={"data.x": "y"})))
    eq(status.code, 400, "an unsupported field selector")


def watches():
    rv = client.get(ConfigMap, "page-0", namespace=NS).metadata.resourceVersion

    def writes():
        time.sleep(0.3)
        client.create(ConfigMap(metadata=ObjectMeta(name="watched"), data={"n": "1"}), namespace=NS)
        client.patch(ConfigMap, "watched", {"data": {"n": "2"}}, namespace=NS)
        client.delete(ConfigMap, "watched", namespace=NS)

    t = threading.Thread(target=writes)
    t.start()
    seen = []
    for kind, obj in client.watch(ConfigMap, namespace=NS, fields={"metadata.name": "watched"},
                                  resource_version=rv, server_timeout=5):
        seen.append((kind, obj.data))
        if kind == "DELETED":
            break
    t.join()
    eq(seen, [("ADDED", {"n": "1"}), ("MODIFIED", {"n": "2"}), ("DELETED", {"n": "2"})], "events")
    old = client.create(ConfigMap(metadata=ObjectMeta(name="old")), namespace=NS).metadata.resourceVersion
    for i in range(HISTORY + 5):
        client.patch(ConfigMap, "old", {"data": {"n": str(i)}}, namespace=NS)
    errors = []

    def on_error(e, count):
        errors.append(e.status.code if isinstance(e, ApiError) else repr(e))
        return OnErrorResult(OnErrorAction.RETRY if count < 2 else OnErrorAction.STOP)

    # The 410 restarts the watch without a version: it then lists what exists.
    first = None
    for kind, obj in client.watch(ConfigMap, namespace=NS, fields={"metadata.name": "old"},
                                  resource_version=old, on_error=on_error, server_timeout=2):
        first = (kind, obj.data["n"])
        break
    eq(errors, [410], "the expired watch was reported")
    eq(first, ("ADDED", str(HISTORY + 4)), "restarted from a fresh listing")


def errors():
    status = api_error(client.get, ConfigMap, "missing", namespace=NS)
    eq((status.code, status.reason, status.details.kind), (404, "NotFound", "configmaps"), "404")
    client.create(ConfigMap(metadata=ObjectMeta(name="dup")), namespace=NS)
    status = api_error(client.create, ConfigMap(metadata=ObjectMeta(name="dup")), namespace=NS)
    eq((status.code, status.reason), (409, "AlreadyExists"), "409")
    status = api_error(client.create, ConfigMap(metadata=ObjectMeta(name="Bad_Name")), namespace=NS)
    eq((status.code, status.reason), (422, "Invalid"), "422")
    assert any(c.field == "metadata.name" for c in status.details.causes), status.details


def generic_resources():
    client.create(codecs.from_dict(harness.crd()))
    harness.until("the CRD established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in (client.get(CustomResourceDefinition, f"{harness.PLURAL}.{harness.GROUP}").status.conditions or [])))
    Widget = create_namespaced_resource(harness.GROUP, "v1", harness.KIND, harness.PLURAL)
    w = client.create(Widget(harness.widget("w1", NS)))
    eq(w.spec["color"], "red", "created")
    w = client.patch(Widget, "w1", {"spec": {"color": "green"}}, namespace=NS, patch_type=PatchType.MERGE)
    eq(w.spec["color"], "green", "merge patch")
    st = client.patch(Widget.Status, "w1", {"status": {"phase": "Ready", "replicas": 1, "selector": "app=widgets"}},
                      namespace=NS, patch_type=PatchType.MERGE)
    eq(st.status["phase"], "Ready", "status")
    scale = client.get(Widget.Scale, "w1", namespace=NS)
    eq((scale.spec.replicas, scale.status.selector), (1, "app=widgets"), "scale")
    client.patch(Widget.Scale, "w1", {"spec": {"replicas": 4}}, namespace=NS, patch_type=PatchType.MERGE)
    eq(client.get(Widget, "w1", namespace=NS).spec["replicas"], 4, "scaled")
    # The CRDs in the cluster, loaded as generic resources.
    load_in_cluster_generic_resources(client)
    Loaded = get_generic_resource(f"{harness.GROUP}/v1", harness.KIND)
    assert Loaded is not None
    applied = client.apply(Loaded(harness.widget("w2", NS, color="blue")), field_manager="generic")
    eq(applied.spec["color"], "blue", "apply of a loaded generic resource")
    eq(sorted(x.metadata.name for x in client.list(Loaded, namespace=NS, labels={"app": "widgets"})),
       ["w1", "w2"], "list")
    status = api_error(client.create, Widget(harness.widget("w3", NS, color="purple")))
    eq((status.code, status.reason), (422, "Invalid"), "schema validation")
    client.delete(Widget, "w1", namespace=NS)
    eq(api_error(client.get, Widget, "w1", namespace=NS).code, 404, "deleted")


def events_both_apis():
    # events.k8s.io requires eventTime (kube-apiserver serves null without it, which the model refuses).
    client.create(CoreEvent(metadata=ObjectMeta(name="core-ev"), reason="Tested", message="from core",
                            eventTime="2026-01-01T00:00:00.000000Z", reportingComponent="conformance",
                            reportingInstance="one", action="Test",
                            involvedObject={"kind": "ConfigMap", "name": "dup", "namespace": NS},
                            type="Normal"), namespace=NS)
    ev = client.get(Event, "core-ev", namespace=NS)
    eq((ev.note, ev.regarding.name), ("from core", "dup"), "core event via events.k8s.io")


def pods_without_nodes():
    client.create(Pod(metadata=ObjectMeta(name="p"), spec={"containers": [{"name": "c", "image": "busybox"}]}),
                  namespace=NS)
    eq(list(client.log("p", namespace=NS)), [], "the log of a pod no node runs")


async def async_client():
    ac = AsyncClient(config=config, field_manager="lightkube-async")
    try:
        await ac.create(ConfigMap(metadata=ObjectMeta(name="async"), data={"a": "1"}), namespace=NS)
        got = await ac.get(ConfigMap, "async", namespace=NS)
        eq(got.data, {"a": "1"}, "async get")
        names = [c.metadata.name async for c in ac.list(ConfigMap, namespace=NS, fields={"metadata.name": "async"})]
        eq(names, ["async"], "async list")
        async for kind, obj in ac.watch(ConfigMap, namespace=NS, fields={"metadata.name": "async"},
                                        server_timeout=2):
            eq((kind, obj.metadata.name), ("ADDED", "async"), "async watch")
            break
        await ac.delete(ConfigMap, "async", namespace=NS)
    finally:
        await ac.close()


checks.run("namespaces", namespaces)
checks.run("configmaps", configmaps)
checks.run("server_side_apply", server_side_apply)
checks.run("secrets", secrets)
checks.run("deployments", deployments)
checks.run("services", services)
checks.run("selectors_and_pages", selectors_and_pages)
checks.run("watches", watches)
checks.run("errors", errors)
checks.run("generic_resources", generic_resources)
checks.run("events", events_both_apis)
checks.run("pods_without_nodes", pods_without_nodes)
checks.run("async_client", lambda: asyncio.run(async_client()))
checks.report()
