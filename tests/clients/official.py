"""The official Python client (`kubernetes`) against the control plane: typed APIs, the
CustomObjects API, the dynamic client and watches. See harness.py for how it is run."""

import base64
import json
import threading
import time

from kubernetes import client, config, dynamic, stream, watch
from kubernetes.client.rest import ApiException

import harness
from harness import eq

KUBECONFIG, NS, HISTORY = harness.args()
api = config.new_client_from_config(config_file=KUBECONFIG)
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
batch = client.BatchV1Api(api)
ext = client.ApiextensionsV1Api(api)
custom = client.CustomObjectsApi(api)
events = client.EventsV1Api(api)
checks = harness.Checks()
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"


def api_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ApiException as e:
        return e, json.loads(e.body)
    raise AssertionError(f"{fn.__name__} succeeded")


def namespaces():
    created = core.create_namespace({"metadata": {"name": NS, "labels": {"suite": "clients"}}})
    eq(created.status.phase, "Active", "phase")
    eq(core.read_namespace(NS).metadata.labels["suite"], "clients", "labels")
    names = [n.metadata.name for n in core.list_namespace(label_selector="suite=clients").items]
    eq(names, [NS], "namespaces by label")
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", NS} <= names, names


def configmaps():
    cm = core.create_namespaced_config_map(NS, {
        "metadata": {"name": "cm1", "labels": {"app": "demo", "tier": "a"}}, "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.resource_version, cm.metadata
    got = core.read_namespaced_config_map("cm1", NS)
    eq(got.data, {"k": "v"}, "data")
    got.data["k2"] = "v2"
    replaced = core.replace_namespaced_config_map("cm1", NS, got)
    assert replaced.metadata.resource_version != cm.metadata.resource_version
    eq(replaced.data, {"k": "v", "k2": "v2"}, "replaced data")
    # A replace from a stale copy is a conflict.
    cm.data = {"stale": "yes"}
    e, body = api_error(core.replace_namespaced_config_map, "cm1", NS, cm)
    eq((e.status, body["reason"], body["details"]["name"]), (409, "Conflict", "cm1"), "stale replace")
    merged = core.patch_namespaced_config_map("cm1", NS, {"data": {"k3": "v3", "k": None}},
                                              _content_type=MERGE)
    eq(merged.data, {"k2": "v2", "k3": "v3"}, "merge patch")
    patched = core.patch_namespaced_config_map(
        "cm1", NS, [{"op": "add", "path": "/data/k4", "value": "v4"},
                    {"op": "test", "path": "/data/k2", "value": "v2"}])
    eq(patched.data["k4"], "v4", "json patch")
    # A dict body is a strategic merge patch for the typed APIs.
    strategic = core.patch_namespaced_config_map("cm1", NS, {"metadata": {"labels": {"tier": "b"}}})
    eq(strategic.metadata.labels, {"app": "demo", "tier": "b"}, "strategic merge patch")
    e, body = api_error(core.patch_namespaced_config_map, "cm1", NS,
                        [{"op": "test", "path": "/data/k2", "value": "other"}])
    eq(e.status, 422, "a failed json patch test")
    core.delete_namespaced_config_map("cm1", NS)
    e, body = api_error(core.read_namespaced_config_map, "cm1", NS)
    eq((e.status, body["reason"], body["details"]["kind"]), (404, "NotFound", "configmaps"), "deleted")


def server_side_apply():
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "applied", "namespace": NS}, "data": {"a": "1"}}
    applied = core.patch_namespaced_config_map("applied", NS, body, field_manager="one",
                                               _content_type=APPLY)
    eq(applied.data, {"a": "1"}, "created by apply")
    managers = {(m.manager, m.operation) for m in applied.metadata.managed_fields}
    assert ("one", "Apply") in managers, managers
    body["data"] = {"a": "2"}
    e, status = api_error(core.patch_namespaced_config_map, "applied", NS, body,
                          field_manager="two", _content_type=APPLY)
    eq((e.status, status["reason"]), (409, "Conflict"), "a second manager conflicts")
    forced = core.patch_namespaced_config_map("applied", NS, body, field_manager="two",
                                              force=True, _content_type=APPLY)
    eq(forced.data, {"a": "2"}, "forced")


def secrets():
    s = core.create_namespaced_secret(NS, {"metadata": {"name": "s1"}, "type": "Opaque",
                                           "stringData": {"password": "s3cret"}})
    eq(s.string_data, None, "stringData is not returned")
    got = core.read_namespaced_secret("s1", NS)
    eq(base64.b64decode(got.data["password"]).decode(), "s3cret", "stringData merged into data")
    core.patch_namespaced_secret("s1", NS, {"stringData": {"user": "admin"}})
    got = core.read_namespaced_secret("s1", NS)
    eq(sorted(got.data), ["password", "user"], "keys after a stringData patch")
    e, body = api_error(core.create_namespaced_secret, NS, {
        "metadata": {"name": "s2"}, "data": {"x": "not base64!"}})
    eq((e.status, body["reason"], body["message"]), (400, "BadRequest", 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'), "data that is not base64")


def deployments():
    d = apps.create_namespaced_deployment(NS, harness.deployment("web", NS))
    eq(d.spec.strategy.type, "RollingUpdate", "defaulted strategy")
    scale = apps.read_namespaced_deployment_scale("web", NS)
    eq((scale.kind, scale.spec.replicas), ("Scale", 1), "scale")
    scaled = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    eq(scaled.spec.replicas, 3, "patched scale")
    scale = apps.read_namespaced_deployment_scale("web", NS)
    scale.spec.replicas = 4
    eq(apps.replace_namespaced_deployment_scale("web", NS, scale).spec.replicas, 4, "replaced scale")
    eq(apps.read_namespaced_deployment("web", NS).spec.replicas, 4, "replicas after scaling")
    # Strategic merge: the containers list merges on name, the sidecar stays.
    patched = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "nginx:1.28"}]}}}})
    containers = {c.name: c.image for c in patched.spec.template.spec.containers}
    eq(containers, {"app": "nginx:1.28", "sidecar": "busybox:1.36"}, "containers merged by name")
    # The status subresource: only status changes through it, and the main resource ignores status.
    status = apps.patch_namespaced_deployment_status("web", NS, {"status": {"replicas": 4,
                                                                          "readyReplicas": 2}})
    eq(status.status.ready_replicas, 2, "status patch")
    d = apps.read_namespaced_deployment_status("web", NS)
    eq(d.status.replicas, 4, "status read")
    apps.patch_namespaced_deployment("web", NS, {"status": {"readyReplicas": 9}}, _content_type=MERGE)
    eq(apps.read_namespaced_deployment("web", NS).status.ready_replicas, 2, "status via main")
    job = batch.create_namespaced_job(NS, {"metadata": {"name": "once"}, "spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    eq(job.spec.backoff_limit, 6, "defaulted backoffLimit")
    apps.delete_namespaced_deployment("web", NS, propagation_policy="Foreground")
    harness.until("the deployment gone",
                  lambda: "web" not in [x.metadata.name for x in apps.list_namespaced_deployment(NS).items])


def services():
    svc = core.create_namespaced_service(NS, harness.service("web", NS))
    assert svc.spec.cluster_ip.startswith("10.96."), svc.spec.cluster_ip
    eq(svc.spec.ports[0].target_port, 8080, "targetPort")
    k = core.read_namespaced_service("kubernetes", "default")
    eq((k.spec.cluster_ip, k.spec.ports[0].port, k.spec.ports[0].name), ("10.96.0.1", 443, "https"),
       "the kubernetes service")
    host, port = api.configuration.host.removeprefix("https://").rsplit(":", 1)
    ep = core.read_namespaced_endpoints("kubernetes", "default")
    eq((ep.subsets[0].addresses[0].ip, ep.subsets[0].ports[0].port), (host, int(port)),
       "the kubernetes endpoints are the server's address")
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items
    eq([(s.endpoints[0].addresses[0], s.ports[0].port) for s in slices], [(host, int(port))],
       "the kubernetes endpoint slice")


def selectors_and_pages():
    for i in range(7):
        core.create_namespaced_config_map(NS, {"metadata": {
            "name": f"page-{i}", "labels": {"set": "pages", "parity": str(i % 2)}}})
    odd = core.list_namespaced_config_map(NS, label_selector="set=pages,parity=1")
    eq(sorted(c.metadata.name for c in odd.items), ["page-1", "page-3", "page-5"], "label selector")
    notin = core.list_namespaced_config_map(NS, label_selector="set=pages,parity notin (1)")
    eq(len(notin.items), 4, "set-based selector")
    one = core.list_namespaced_config_map(NS, field_selector="metadata.name=page-2")
    eq([c.metadata.name for c in one.items], ["page-2"], "field selector")
    e, body = api_error(core.list_namespaced_config_map, NS, field_selector="data.k=v")
    eq(e.status, 400, "an unsupported field selector")
    names, cont, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(NS, label_selector="set=pages", limit=3, _continue=cont)
        pages += 1
        names += [c.metadata.name for c in page.items]
        cont = page.metadata._continue
        if not cont:
            break
        eq(page.metadata.remaining_item_count is None or page.metadata.remaining_item_count > 0,
           True, "remainingItemCount")
    eq((pages, sorted(names)), (3, [f"page-{i}" for i in range(7)]), "pages")


def watches():
    rv = core.list_namespaced_config_map(NS).metadata.resource_version

    def writes():
        time.sleep(0.3)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "watched"}, "data": {"n": "1"}})
        core.patch_namespaced_config_map("watched", NS, {"data": {"n": "2"}})
        core.delete_namespaced_config_map("watched", NS)

    t = threading.Thread(target=writes)
    t.start()
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv,
                       field_selector="metadata.name=watched", timeout_seconds=5):
        seen.append((ev["type"], ev["object"].data))
        if ev["type"] == "DELETED":
            w.stop()
    t.join()
    eq(seen, [("ADDED", {"n": "1"}), ("MODIFIED", {"n": "2"}), ("DELETED", {"n": "2"})], "events")
    # A watch that times out ends cleanly.
    started = time.monotonic()
    quiet = list(watch.Watch().stream(core.list_namespaced_config_map, NS,
                                      resource_version=core.list_namespaced_config_map(NS).metadata.resource_version,
                                      label_selector="never=seen", timeout_seconds=1))
    eq(quiet, [], "a quiet watch")
    assert time.monotonic() - started < 10
    # Past the retained history the watch is a 410, raised as ApiException by the client.
    old = core.create_namespaced_config_map(NS, {"metadata": {"name": "old"}}).metadata.resource_version
    for i in range(HISTORY + 5):
        core.patch_namespaced_config_map("old", NS, {"data": {"n": str(i)}})
    try:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=old,
                                      timeout_seconds=2):
            pass
        raise AssertionError("no 410")
    except ApiException as e:
        eq(e.status, 410, "expired watch")


def errors():
    e, body = api_error(core.read_namespaced_config_map, "missing", NS)
    eq((e.status, body["kind"], body["reason"], body["details"]["name"]),
       (404, "Status", "NotFound", "missing"), "404")
    core.create_namespaced_config_map(NS, {"metadata": {"name": "dup"}})
    e, body = api_error(core.create_namespaced_config_map, NS, {"metadata": {"name": "dup"}})
    eq((e.status, body["reason"]), (409, "AlreadyExists"), "409")
    e, body = api_error(core.create_namespaced_config_map, NS, {"metadata": {"name": "Bad_Name"}})
    eq((e.status, body["reason"]), (422, "Invalid"), "422")
    assert any(c["field"] == "metadata.name" for c in body["details"]["causes"]), body
    e, body = api_error(core.read_namespaced_config_map, "x", "no-such-namespace")
    eq(e.status, 404, "a missing namespace")


def crds_and_custom_objects():
    ext.create_custom_resource_definition(harness.crd())
    harness.until("the CRD established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in (ext.read_custom_resource_definition(f"{harness.PLURAL}.{harness.GROUP}").status.conditions or [])))
    g, v, p = harness.GROUP, "v1", harness.PLURAL
    harness.until("the custom resource served", lambda: _served(g, v, p))
    w = custom.create_namespaced_custom_object(g, v, NS, p, harness.widget("w1", NS))
    eq(w["spec"]["color"], "red", "created")
    w = custom.get_namespaced_custom_object(g, v, NS, p, "w1")
    w["spec"]["color"] = "green"
    w = custom.replace_namespaced_custom_object(g, v, NS, p, "w1", w)
    eq(w["spec"]["color"], "green", "replaced")
    # A dict body is a merge patch for custom objects (no strategic merge for them).
    w = custom.patch_namespaced_custom_object(g, v, NS, p, "w1", {"spec": {"tags": ["b"]}})
    eq(w["spec"]["tags"], ["b"], "merge patch of a custom object")
    w = custom.patch_namespaced_custom_object(g, v, NS, p, "w1",
                                              [{"op": "replace", "path": "/spec/color", "value": "blue"}],
                                              _content_type="application/json-patch+json")
    eq(w["spec"]["color"], "blue", "json patch of a custom object")
    st = custom.patch_namespaced_custom_object_status(g, v, NS, p, "w1", {"status": {
        "phase": "Ready", "replicas": 1, "selector": "app=widgets"}})
    eq(st["status"]["phase"], "Ready", "status subresource")
    scale = custom.get_namespaced_custom_object_scale(g, v, NS, p, "w1")
    eq((scale["spec"]["replicas"], scale["status"]["replicas"], scale["status"]["selector"]),
       (1, 1, "app=widgets"), "scale")
    custom.patch_namespaced_custom_object_scale(g, v, NS, p, "w1", {"spec": {"replicas": 5}})
    eq(custom.get_namespaced_custom_object(g, v, NS, p, "w1")["spec"]["replicas"], 5, "scaled")
    e, body = api_error(custom.create_namespaced_custom_object, g, v, NS, p,
                        harness.widget("w2", NS, color="purple"))
    eq((e.status, body["reason"]), (422, "Invalid"), "schema validation")
    assert "spec.color" in body["message"], body["message"]
    applied = custom.patch_namespaced_custom_object(
        g, v, NS, p, "w3", harness.widget("w3", NS), field_manager="conformance",
        _content_type=APPLY)
    eq(applied["metadata"]["managedFields"][0]["manager"], "conformance", "apply of a custom object")
    listed = custom.list_namespaced_custom_object(g, v, NS, p, label_selector="app=widgets", limit=1)
    eq(len(listed["items"]), 1, "a page of custom objects")
    assert listed["metadata"]["continue"], listed["metadata"]
    custom.delete_namespaced_custom_object(g, v, NS, p, "w1")
    e, body = api_error(custom.get_namespaced_custom_object, g, v, NS, p, "w1")
    eq(e.status, 404, "deleted custom object")


def _served(group, version, plural):
    try:
        return any(r.name == plural for r in custom.get_api_resources(group, version).resources)
    except ApiException:
        return False


def dynamic_client():
    dyn = dynamic.DynamicClient(api)
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    eq((deploys.name, deploys.namespaced), ("deployments", True), "discovered")
    d = deploys.create(body=harness.deployment("dyn", NS), namespace=NS)
    eq(d.metadata.name, "dyn", "created")
    eq(len(deploys.get(namespace=NS, label_selector="app=dyn").items), 1, "listed")
    scale = deploys.subresources["scale"]
    eq(scale.get(name="dyn", namespace=NS).spec.replicas, 1, "scale subresource")
    widgets = dyn.resources.get(api_version=f"{harness.GROUP}/v1", kind=harness.KIND)
    applied = widgets.server_side_apply(body=harness.widget("dyn", NS, color="blue"),
                                        field_manager="dynamic")
    eq(applied.spec.color, "blue", "server-side apply")
    patched = widgets.patch(body={"spec": {"color": "green"}}, name="dyn", namespace=NS,
                            content_type=MERGE)
    eq(patched.spec.color, "green", "patched")
    watched = []
    for ev in dyn.watch(widgets, namespace=NS, name="dyn", timeout=1):
        watched.append(ev["type"])
    assert watched and watched[0] == "ADDED", watched
    widgets.delete(name="dyn", namespace=NS)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    try:
        cms.get(name="missing", namespace=NS)
        raise AssertionError("no error")
    except dynamic.exceptions.NotFoundError as e:
        eq(e.status, 404, "dynamic NotFoundError")


def events_both_apis():
    now = "2026-01-01T00:00:00Z"
    # Without eventTime, events.k8s.io serves `"eventTime": null` as kube-apiserver does, which
    # this client's EventsV1Event refuses: a core Event read through both APIs carries one.
    core.create_namespaced_event(NS, {
        "metadata": {"name": "core-ev"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingComponent": "conformance", "reportingInstance": "one", "action": "Test",
        "involvedObject": {"kind": "ConfigMap", "name": "dup", "namespace": NS, "apiVersion": "v1"},
        "reason": "Tested", "message": "from core", "type": "Normal",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "source": {"component": "conformance"}})
    ev = events.read_namespaced_event("core-ev", NS)
    eq((ev.regarding.name, ev.note, ev.reason), ("dup", "from core", "Tested"), "core event via events.k8s.io")
    events.create_namespaced_event(NS, {
        "metadata": {"name": "new-ev"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "clients.strata.test/conformance", "reportingInstance": "one",
        "action": "Test", "reason": "Tested", "note": "from events.k8s.io", "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "dup", "namespace": NS, "apiVersion": "v1"}})
    listed = core.list_namespaced_event(NS, field_selector="involvedObject.name=dup")
    eq(sorted(e.message for e in listed.items), ["from core", "from events.k8s.io"], "both in core/v1")


def pods_without_nodes():
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    # No node, no stream: a 204, which this client returns as None.
    log = core.read_namespaced_pod_log("p", NS)
    eq(log, None, "the log of a pod with no node")
    e, body = api_error(core.read_namespaced_pod_log, "p", NS, container="nope")
    eq((e.status, body["reason"]), (400, "BadRequest"), "an unknown container")
    e, body = api_error(core.connect_get_namespaced_pod_portforward, "p", NS, ports="80")
    eq((e.status, body["message"]), (400, "pod p does not have a host assigned"), "portforward")
    e, body = api_error(core.connect_post_namespaced_pod_exec, "p", NS, command=["ls"])
    eq((e.status, body["message"]), (400, "pod p does not have a host assigned"), "exec")
    e, body = api_error(core.connect_post_namespaced_pod_attach, "p", NS, container="c")
    eq((e.status, body["message"]), (400, "pod p does not have a host assigned"), "attach")
    # The client's own exec over a WebSocket: the upgrade is refused with that Status.
    try:
        stream.stream(core.connect_get_namespaced_pod_exec, "p", NS, command=["ls"],
                      stderr=True, stdin=False, stdout=True, tty=False, _request_timeout=10)
        raise AssertionError("exec succeeded")
    except ApiException as e:
        assert "400" in str(e) and "does not have a host assigned" in str(e), str(e)


def collections_and_options():
    for i in range(3):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"bulk-{i}", "labels": {"bulk": "yes"}}})
    every = core.list_config_map_for_all_namespaces(label_selector="bulk=yes")
    eq(sorted((c.metadata.namespace, c.metadata.name) for c in every.items),
       [(NS, f"bulk-{i}") for i in range(3)], "list across namespaces")
    dry = core.create_namespaced_config_map(NS, {"metadata": {"name": "dry"}}, dry_run="All")
    eq(dry.metadata.name, "dry", "a dry run answers the object")
    eq(api_error(core.read_namespaced_config_map, "dry", NS)[0].status, 404, "and stores nothing")
    rv = every.metadata.resource_version
    fresh = core.list_namespaced_config_map(NS, resource_version=rv, resource_version_match="NotOlderThan")
    assert int(fresh.metadata.resource_version) >= int(rv), fresh.metadata
    status = core.delete_collection_namespaced_config_map(NS, label_selector="bulk=yes")
    eq(core.list_namespaced_config_map(NS, label_selector="bulk=yes").items, [], "deletecollection")
    gone = core.delete_namespaced_config_map("dup", NS, propagation_policy="Background", grace_period_seconds=0)
    # This client returns the body of a delete as it came: a Status for most built-in kinds.
    eq((gone["kind"], gone["status"], gone["details"]["name"], gone["details"]["kind"]),
       ("Status", "Success", "dup", "configmaps"), "a delete answers a Status")
    deleted = apps.delete_namespaced_deployment("dyn", NS)
    eq((deleted["status"], deleted["details"]["group"]), ("Success", "apps"), "a deployment's delete too")
    svc = core.delete_namespaced_service("web", NS)
    eq((svc.kind, svc.metadata.name), ("Service", "web"), "a Service's delete answers the Service (typed V1Service)")
    # Bookmarks asked for are sent or not, never an error; events still arrive.
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "marked"}})
    kinds = [ev["type"] for ev in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=rv, allow_watch_bookmarks=True,
        timeout_seconds=1)]
    assert "ADDED" in kinds and set(kinds) <= {"ADDED", "BOOKMARK"}, kinds
    who = client.AuthenticationV1Api(api).create_self_subject_review({})
    assert "system:masters" in who.status.user_info.groups, who.status.user_info
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "create", "resource": "deployments", "group": "apps",
                                         "namespace": NS}}})
    eq(review.status.allowed, True, "self subject access review")
    eq(client.VersionApi(api).get_code().major, "1", "version")


checks.run("namespaces", namespaces)
checks.run("configmaps", configmaps)
checks.run("server_side_apply", server_side_apply)
checks.run("secrets", secrets)
checks.run("deployments", deployments)
checks.run("services", services)
checks.run("selectors_and_pages", selectors_and_pages)
checks.run("watches", watches)
checks.run("errors", errors)
checks.run("crds_and_custom_objects", crds_and_custom_objects)
checks.run("dynamic_client", dynamic_client)
checks.run("events", events_both_apis)
checks.run("pods_without_nodes", pods_without_nodes)
checks.run("collections_and_options", collections_and_options)
checks.report()
