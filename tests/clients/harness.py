"""What the client conformance scripts share: the command line, the check runner and report,
and the objects every client writes (a CRD with status and scale subresources among them).

Each script is run as `python3 SCRIPT KUBECONFIG NAMESPACE HISTORY` by
tests/it/apiserver/python_clients.rs against a control plane whose watch history holds HISTORY
events. It prints one JSON object: the checks that passed, and for each that failed its
traceback. A failed check fails the Rust test, which shows the traceback.
"""

import json
import sys
import time
import traceback

GROUP = "clients.strata.test"
KIND = "Widget"
PLURAL = "widgets"


def args():
    kubeconfig, namespace, history = sys.argv[1:4]
    return kubeconfig, namespace, int(history)


class Checks:
    def __init__(self):
        self.passed = []
        self.failed = {}
        self.facts = {}

    def run(self, name, fn, *a):
        try:
            fn(*a)
            self.passed.append(name)
        except Exception:  # every failure is reported, and the next check still runs
            self.failed[name] = traceback.format_exc()

    def report(self):
        print(json.dumps({"passed": self.passed, "failed": self.failed, "facts": self.facts}))
        sys.exit(1 if self.failed else 0)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def crd():
    """A namespaced CRD with status and scale subresources, printer columns and a selector field."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer", "minimum": 0},
                    "color": {"type": "string", "enum": ["red", "green", "blue"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "selector": {"type": "string"},
                    "phase": {"type": "string"},
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": "WidgetList"},
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
            }],
        },
    }


def widget(name, namespace, color="red", replicas=1):
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "widgets"}},
        "spec": {"replicas": replicas, "color": color, "tags": ["a"]},
    }


def deployment(name, namespace, replicas=1):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "busybox:1.36"},
                ]},
            },
        },
    }


def service(name, namespace):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def until(what, fn, timeout=10.0):
    """Polls fn until it returns a true value (for a condition the server sets after a write)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
