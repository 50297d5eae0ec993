"""kr8s against the control plane: its sync and async APIs, objects, scaling, watches, label
and field selectors, and classes for custom resources. See harness.py for how it is run."""

import asyncio
import base64
import threading
import time

import kr8s
import kr8s.asyncio
from kr8s.objects import ConfigMap, Deployment, Namespace, Pod, Secret, Service, new_class

import harness
from harness import eq

KUBECONFIG, NS, HISTORY = harness.args()
api = kr8s.api(kubeconfig=KUBECONFIG)
checks = harness.Checks()


def server_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except kr8s.ServerError as e:
        return e.response.status_code, e.status
    raise AssertionError(f"{fn} succeeded")


def basics():
    eq(api.version()["major"], "1", "version")
    who = api.whoami()
    assert who, who
    kinds = {r["name"] for r in api.api_resources()}
    assert {"configmaps", "deployments", "customresourcedefinitions"} <= kinds, kinds


def namespaces():
    Namespace({"metadata": {"name": NS, "labels": {"suite": "clients"}}}, api=api).create()
    ns = Namespace.get(NS, api=api)
    eq(ns.status.phase, "Active", "phase")
    eq([n.name for n in list(api.get("namespaces", label_selector={"suite": "clients"}))], [NS], "by label")


def configmaps():
    cm = ConfigMap({"metadata": {"name": "cm1", "namespace": NS, "labels": {"app": "demo"}},
                    "data": {"k": "v"}}, api=api)
    cm.create()
    rv = cm.metadata.resourceVersion
    assert rv and cm.metadata.uid
    got = ConfigMap.get("cm1", namespace=NS, api=api)
    eq(dict(got.raw["data"]), {"k": "v"}, "get")
    got.patch({"data": {"k": None, "k2": "v2"}})
    eq(dict(got.raw["data"]), {"k2": "v2"}, "merge patch")
    got.patch([{"op": "add", "path": "/data/k3", "value": "v3"}], type="json")
    eq(dict(got.raw["data"]), {"k2": "v2", "k3": "v3"}, "json patch")
    got.label(tier="b")
    got.refresh()
    eq(dict(got.labels), {"app": "demo", "tier": "b"}, "label")
    assert got.metadata.resourceVersion != rv
    assert got.exists()
    got.delete()
    assert not ConfigMap({"metadata": {"name": "cm1", "namespace": NS}}, api=api).exists()
    try:
        ConfigMap.get("cm1", namespace=NS, api=api)
        raise AssertionError("found")
    except kr8s.NotFoundError:
        pass


def secrets():
    Secret({"metadata": {"name": "s1", "namespace": NS}, "stringData": {"password": "s3cret"}}, api=api).create()
    s = Secret.get("s1", namespace=NS, api=api)
    eq(base64.b64decode(s.raw["data"]["password"]).decode(), "s3cret", "stringData merged into data")
    eq(s.raw.get("stringData"), None, "stringData not stored")


def deployments():
    d = Deployment(harness.deployment("web", NS), api=api)
    d.create()
    d.scale(3)
    eq(Deployment.get("web", namespace=NS, api=api).replicas, 3, "scaled")
    d.patch({"status": {"replicas": 3, "readyReplicas": 3}}, subresource="status")
    eq(d.raw["status"]["readyReplicas"], 3, "status subresource")
    d.patch({"spec": {"replicas": 2}}, subresource="scale")
    d.refresh()
    eq(d.replicas, 2, "scale subresource")
    pods = Pod({"metadata": {"name": "web-1", "namespace": NS, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, api=api)
    pods.create()
    eq([p.name for p in d.pods()], ["web-1"], "pods of the deployment by its selector")


def services():
    svc = Service(harness.service("web", NS), api=api)
    svc.create()
    assert svc.spec.clusterIP.startswith("10.96."), svc.spec.clusterIP
    k = Service.get("kubernetes", namespace="default", api=api)
    eq((k.spec.clusterIP, k.spec.ports[0].port), ("10.96.0.1", 443), "the kubernetes service")
    ep = list(api.get("endpoints", "kubernetes", namespace="default"))
    eq(len(ep), 1, "the kubernetes endpoints")


def selectors():
    for i in range(7):
        ConfigMap({"metadata": {"name": f"page-{i}", "namespace": NS,
                                "labels": {"set": "pages", "parity": str(i % 2)}}}, api=api).create()
    odd = list(api.get("configmaps", namespace=NS, label_selector={"set": "pages", "parity": "1"}))
    eq(sorted(c.name for c in odd), ["page-1", "page-3", "page-5"], "labels")
    one = list(api.get("configmaps", namespace=NS, field_selector={"metadata.name": "page-2"}))
    eq([c.name for c in one], ["page-2"], "fields")
    notin = list(api.get("configmaps", namespace=NS, label_selector="set=pages,parity notin (1)"))
    eq(len(notin), 4, "set-based selector")
    code, status = server_error(lambda: list(api.get("configmaps", namespace=NS, field_selector="data.x=y")))
    eq(code, 400, "an unsupported field selector")


def watches():
    rv = ConfigMap.get("page-0", namespace=NS, api=api).metadata.resourceVersion

    def writes():
        time.sleep(0.3)
        cm = ConfigMap({"metadata": {"name": "watched", "namespace": NS}, "data": {"n": "1"}}, api=api)
        cm.create()
        cm.patch({"data": {"n": "2"}})
        cm.delete()

    t = threading.Thread(target=writes)
    t.start()
    seen = []
    for kind, obj in api.watch("configmaps", namespace=NS, field_selector="metadata.name=watched", since=rv):
        seen.append((kind, dict(obj.raw.get("data", {}))))
        if kind == "DELETED":
            break
    t.join()
    eq(seen, [("ADDED", {"n": "1"}), ("MODIFIED", {"n": "2"}), ("DELETED", {"n": "2"})], "events")


def errors():
    ConfigMap({"metadata": {"name": "dup", "namespace": NS}}, api=api).create()
    code, status = server_error(ConfigMap({"metadata": {"name": "dup", "namespace": NS}}, api=api).create)
    eq((code, status["reason"]), (409, "AlreadyExists"), "409")
    code, status = server_error(ConfigMap({"metadata": {"name": "Bad_Name", "namespace": NS}}, api=api).create)
    eq((code, status["reason"]), (422, "Invalid"), "422")


def custom_resources():
    from kr8s.objects import CustomResourceDefinition
    crd = CustomResourceDefinition(harness.crd(), api=api)
    crd.create()
    crd.wait("condition=Established", timeout=10)
    Widget = new_class(kind=harness.KIND, version=f"{harness.GROUP}/v1", namespaced=True, scalable=True,
                       scalable_spec="replicas", asyncio=False)
    w = Widget(harness.widget("w1", NS), api=api)
    w.create()
    w.patch({"spec": {"color": "green"}})
    eq(w.spec.color, "green", "patched")
    w.patch({"status": {"phase": "Ready", "replicas": 1}}, subresource="status")
    eq(w.status.phase, "Ready", "status")
    w.scale(3)
    eq(Widget.get("w1", namespace=NS, api=api).spec.replicas, 3, "scaled")
    listed = list(api.get(f"{harness.PLURAL}.{harness.GROUP}", namespace=NS, label_selector={"app": "widgets"}))
    eq([x.name for x in listed], ["w1"], "listed by plural.group")
    code, status = server_error(Widget(harness.widget("w2", NS, color="purple"), api=api).create)
    eq((code, status["reason"]), (422, "Invalid"), "schema validation")
    w.delete()


async def async_api():
    aapi = await kr8s.asyncio.api(kubeconfig=KUBECONFIG)
    from kr8s.asyncio.objects import ConfigMap as AsyncConfigMap
    cm = await AsyncConfigMap({"metadata": {"name": "async", "namespace": NS}, "data": {"a": "1"}}, api=aapi)
    await cm.create()
    got = await AsyncConfigMap.get("async", namespace=NS, api=aapi)
    eq(dict(got.raw["data"]), {"a": "1"}, "async get")
    names = [c.name async for c in aapi.get("configmaps", namespace=NS, field_selector="metadata.name=async")]
    eq(names, ["async"], "async list")

    async def later():
        await asyncio.sleep(0.3)
        await got.patch({"data": {"a": "2"}})

    task = asyncio.create_task(later())
    async for kind, obj in aapi.watch("configmaps", namespace=NS, field_selector="metadata.name=async",
                                      since=got.metadata.resourceVersion):
        eq((kind, obj.raw["data"]["a"]), ("MODIFIED", "2"), "async watch")
        break
    await task
    await got.delete()


checks.run("basics", basics)
checks.run("namespaces", namespaces)
checks.run("configmaps", configmaps)
checks.run("secrets", secrets)
checks.run("deployments", deployments)
checks.run("services", services)
checks.run("selectors", selectors)
checks.run("watches", watches)
checks.run("errors", errors)
checks.run("custom_resources", custom_resources)
checks.run("async_api", lambda: asyncio.run(async_api()))
checks.report()
