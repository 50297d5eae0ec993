//! The `kubernetes` Service in `default`, with its Endpoints and EndpointSlice, pointing at this
//! server's own address, as kube-apiserver publishes them: in-cluster clients and tools that
//! read `kubernetes.default` (the Python clients' in-cluster config, `kubectl cluster-info`'s
//! neighbours, service meshes) find the API there. Written at every start, since the port of
//! a control plane on `127.0.0.1:0` changes between runs.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::cluster::{Cluster, Subresource};
use crate::error::ApiError;

/// The first address of the service range, which kube-apiserver reserves for this Service
/// (the allocator in `builtin::allocate_service` starts after it).
pub const CLUSTER_IP: &str = "10.96.0.1";
const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
const MANAGER: &str = "kube-apiserver";

fn service(port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP],
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}})
}

fn endpoints(addr: SocketAddr) -> Value {
    json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": addr.ip().to_string()}],
            "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]}]})
}

fn endpoint_slice(addr: SocketAddr) -> Value {
    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": family,
        "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]})
}

/// Creates the three objects, or brings existing ones to `addr` (the address clients reach
/// this server at). Other fields an operator set on them are replaced, as kube-apiserver's
/// reconciler does.
pub async fn publish(cluster: &Cluster, addr: SocketAddr) -> Result<(), ApiError> {
    let wanted = [
        ("", "services", service(addr.port())),
        ("", "endpoints", endpoints(addr)),
        ("discovery.k8s.io", "endpointslices", endpoint_slice(addr)),
    ];
    for (group, resource, mut body) in wanted {
        let target = cluster
            .target(group, "v1", resource, NAMESPACE)
            .ok_or_else(|| ApiError::Internal(format!("{resource} are not served")))?;
        match cluster.get(&target, NAME) {
            Ok(existing) => {
                let unchanged = match resource {
                    "services" => same_service_spec(&existing, &body),
                    "endpoints" => existing.get("subsets") == body.get("subsets"),
                    _ => ["endpoints", "ports", "addressType"]
                        .iter()
                        .all(|k| existing.get(*k) == body.get(*k)),
                };
                if unchanged {
                    continue;
                }
                body["metadata"]["resourceVersion"] =
                    json!(crate::object::resource_version(&existing));
                cluster
                    .update(&target, NAME, body, Subresource::Main, MANAGER)
                    .await?;
            }
            Err(ApiError::NotFound(_)) => match cluster.create(&target, body, MANAGER).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The stored Service carries defaults the wanted one leaves out: compare what is published.
fn same_service_spec(existing: &Value, wanted: &Value) -> bool {
    existing.pointer("/spec/ports") == wanted.pointer("/spec/ports")
        && existing.pointer("/spec/clusterIP") == wanted.pointer("/spec/clusterIP")
}
