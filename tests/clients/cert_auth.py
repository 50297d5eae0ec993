"""The three clients authenticate with the client certificate of a kubeconfig `strata kubeconfig`
minted: each asks who it is and lists namespaces. Run as `python3 cert_auth.py KUBECONFIG`;
prints {client: [username, namespaces listed]}."""

import asyncio
import json
import sys

import kr8s
from kubernetes import client, config
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Namespace

KUBECONFIG = sys.argv[1]
seen = {}

api = config.new_client_from_config(config_file=KUBECONFIG)
who = client.AuthenticationV1Api(api).create_self_subject_review({})
seen["kubernetes"] = [who.status.user_info.username,
                      sorted(n.metadata.name for n in client.CoreV1Api(api).list_namespace().items)]

lk = Client(config=KubeConfig.from_file(KUBECONFIG))
seen["lightkube"] = [None, sorted(n.metadata.name for n in lk.list(Namespace))]

k = kr8s.api(kubeconfig=KUBECONFIG)
seen["kr8s"] = [k.whoami(), sorted(n.name for n in k.get("namespaces"))]
print(json.dumps(seen))
