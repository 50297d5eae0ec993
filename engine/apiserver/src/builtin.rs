//! What the built-in kinds need beyond storage: the shape a resource that shares another's
//! storage is served in (events.k8s.io/v1 Events are core/v1 Events), the versions a kind
//! is converted between (autoscaling/v1 and v2 HorizontalPodAutoscalers, see [`autoscaling`]),
//! the defaults Kubernetes applies that change what a client sees, and validation against the
//! Kubernetes types.

mod autoscaling;

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::cluster::Target;
use crate::resource::ResourceType;
use strata_schema::pointer::Pointer;

/// events.k8s.io/v1 field ↔ core/v1 field, as kube-apiserver's conversion maps them.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_api(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.resource == "events"
}

fn rename(obj: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let moved: Vec<(&str, Value)> = pairs
        .filter_map(|(from, to)| obj.remove(from).map(|v| (to, v)))
        .collect();
    for (to, value) in moved {
        obj.insert(to.to_owned(), value);
    }
}

fn is_hpa(rt: &ResourceType) -> bool {
    rt.builtin && rt.group == "autoscaling" && rt.resource == "horizontalpodautoscalers"
}

/// An object as stored, in the shape `rt` serves it at `version`.
pub(crate) fn present(rt: &ResourceType, version: &str, stored: &Value) -> Value {
    let mut out = if is_hpa(rt) && version == "v1" {
        autoscaling::to_v1(stored)
    } else {
        stored.clone()
    };
    if let Value::Object(m) = &mut out {
        if is_events_api(rt) {
            rename(m, EVENT_FIELDS.iter().map(|(e, c)| (*c, *e)));
        }
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
    }
    out
}

/// An object as the request's target serves it: converted where the target's version is not
/// the storage version's shape, else [`Target::present`] (borrowed when nothing changes).
pub(crate) fn served<'a>(t: &Target, stored: &'a Value) -> Cow<'a, Value> {
    if is_hpa(&t.rt) && t.version != t.rt.storage_version() {
        return Cow::Owned(present(&t.rt, &t.version, stored));
    }
    t.present(stored)
}

/// A written object in the shape it is stored in (the identity for most kinds).
pub(crate) fn to_storage(rt: &ResourceType, mut body: Value) -> Value {
    if is_events_api(rt)
        && let Value::Object(m) = &mut body
    {
        rename(m, EVENT_FIELDS.iter().copied());
        m.insert("apiVersion".into(), json!(rt.storage_api_version()));
    }
    if is_hpa(rt) {
        // Every change in v1 is made to the object as v1 shows it (`Target::editable`), so a
        // v1 body is all v1.
        if body.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1") {
            body = autoscaling::to_v2(body);
            body["apiVersion"] = json!(rt.storage_api_version());
        } else {
            autoscaling::drop_round_trip_annotations(&mut body);
        }
    }
    body
}

/// Sets `obj[key]` to `value` unless it is present.
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Value::Object(m) = obj
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_owned(), value);
    }
}

fn at<'a>(obj: &'a mut Value, pointer: &str) -> Option<&'a mut Value> {
    obj.at_mut(pointer).filter(|v| v.is_object())
}

fn each_item(obj: &mut Value, pointer: &str, f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(items)) = obj.at_mut(pointer) {
        items.iter_mut().for_each(f);
    }
}

/// The pod spec defaults of `SetDefaults_PodSpec` / `SetDefaults_Container` a client sees.
fn default_pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["/containers", "/initContainers"] {
        each_item(spec, list, |c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            // `:latest` or no tag (a digest pins the image) is pulled always.
            let last = image.rsplit('/').next().unwrap_or(image);
            let pull = if !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
            {
                "Always"
            } else {
                "IfNotPresent"
            };
            default(c, "imagePullPolicy", json!(pull));
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            default(c, "resources", json!({}));
            each_item(c, "/ports", |p| default(p, "protocol", json!("TCP")));
        });
    }
}

fn default_template(obj: &mut Value, pointer: &str) {
    if let Some(spec) = at(obj, pointer) {
        default_pod_spec(spec);
    }
}

/// A rolling update strategy: `RollingUpdate` unless another type is named, with `rolling`'s
/// values for what its `rollingUpdate` leaves out.
fn default_strategy(spec: &mut Value, key: &str, rolling: Value) {
    default(spec, key, json!({}));
    let strategy = &mut spec[key];
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        default(strategy, "rollingUpdate", json!({}));
        if let Value::Object(values) = rolling {
            for (k, v) in values {
                default(&mut strategy["rollingUpdate"], &k, v);
            }
        }
    }
}

/// The QoS class kube-apiserver records in a new Pod's status.
fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let (mut any, mut guaranteed) = (false, !containers.is_empty());
    for c in containers {
        let requests = c.at("/resources/requests").and_then(Value::as_object);
        let limits = c.at("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty());
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|m| m.get(r));
            let request = requests.and_then(|m| m.get(r)).or(limit);
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The defaults Kubernetes applies to built-in kinds where they change what a client sees
/// (`kubectl get` columns, `-o yaml`): replicas, strategies, history limits, a Service's type
/// and session affinity, a Job's completions and selector, pod template defaults, a new Pod's
/// phase and QoS class. `creating` is true for a new object.
pub(crate) fn apply_defaults(rt: &ResourceType, obj: &mut Value, creating: bool) {
    if !obj.is_object() {
        return;
    }
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => {
            if let Some(spec) = at(obj, "/spec") {
                default_pod_spec(spec);
                default(spec, "serviceAccountName", json!("default"));
                default(spec, "enableServiceLinks", json!(true));
                default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                default(spec, "priority", json!(0));
            }
            if creating {
                let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
        }
        ("", "services") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "type", json!("ClusterIP"));
                default(spec, "sessionAffinity", json!("None"));
                let external = spec.get("type").and_then(Value::as_str) != Some("ExternalName");
                if external {
                    default(spec, "internalTrafficPolicy", json!("Cluster"));
                }
                if matches!(
                    spec.get("type").and_then(Value::as_str),
                    Some("NodePort" | "LoadBalancer")
                ) {
                    default(spec, "externalTrafficPolicy", json!("Cluster"));
                }
                each_item(spec, "/ports", |p| {
                    default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        default(p, "targetPort", port);
                    }
                });
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "replicas", json!(1));
                default_strategy(
                    spec,
                    "strategy",
                    json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
                );
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
            }
            default_template(obj, "/spec/template/spec");
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default_strategy(spec, "updateStrategy", json!({"partition": 0}));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            default_template(obj, "/spec/template/spec");
        }
        ("apps", "daemonsets") => {
            if let Some(spec) = at(obj, "/spec") {
                default_strategy(
                    spec,
                    "updateStrategy",
                    json!({"maxUnavailable": 1, "maxSurge": 0}),
                );
                default(spec, "revisionHistoryLimit", json!(10));
            }
            default_template(obj, "/spec/template/spec");
        }
        ("", "replicationcontrollers") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "replicas", json!(1));
            }
            default_template(obj, "/spec/template/spec");
        }
        ("", "persistentvolumes") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
            if creating {
                obj["status"] = json!({"phase": "Pending"});
            }
        }
        ("apps", "replicasets") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "replicas", json!(1));
            }
            default_template(obj, "/spec/template/spec");
        }
        ("batch", "jobs") => {
            let uid = crate::object::uid(obj).to_owned();
            default_job_spec(obj, "/spec", &uid, crate::object::name(obj).to_owned());
        }
        ("batch", "cronjobs") => {
            if let Some(spec) = at(obj, "/spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
            }
            default_template(obj, "/spec/jobTemplate/spec/template/spec");
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            if let Some(spec) = at(obj, "/spec") {
                autoscaling::apply_defaults(spec);
            }
        }
        _ => {}
    }
}

/// `SetDefaults_Job` and the selector and labels kube-apiserver generates for a Job.
fn default_job_spec(obj: &mut Value, pointer: &str, uid: &str, name: String) {
    let Some(spec) = at(obj, pointer) else {
        return;
    };
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        spec["completions"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && spec.get("selector").is_none() && !uid.is_empty() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        if let Some(template) = at(spec, "/template") {
            default(template, "metadata", json!({}));
            default(&mut template["metadata"], "labels", json!({}));
            if let Value::Object(labels) = &mut template["metadata"]["labels"] {
                for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
                    labels.insert(key.into(), json!(uid));
                }
                for key in ["batch.kubernetes.io/job-name", "job-name"] {
                    labels.insert(key.into(), json!(name));
                }
            }
        }
    }
    if let Some(pod) = at(spec, "/template/spec") {
        default_pod_spec(pod);
    }
}

/// The unknown fields of a built-in object by its Kubernetes type's schema, pruned from `obj`
/// (kube-apiserver drops them when decoding); `None` for kinds without a known schema.
pub(crate) fn prune_unknown(rt: &ResourceType, obj: &mut Value) -> Vec<String> {
    let Some(schema) = schema_for(rt) else {
        return Vec::new();
    };
    // managedFields' field sets are free-form; the server keeps them itself.
    let managed = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    let pruned = schema.prune(obj);
    if let Some(mf) = managed
        && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.insert("managedFields".into(), mf);
    }
    pruned
}

type Compiled = std::sync::Arc<strata_schema::StructuralSchema>;

fn schema_of<T: schemars::JsonSchema>() -> Option<Compiled> {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<T>()).ok()?;
    if let Value::Object(m) = &mut schema {
        m.retain(|k, _| !k.starts_with('$') && k != "title" && k != "definitions");
    }
    strata_schema::StructuralSchema::compile(&schema)
        .ok()
        .map(std::sync::Arc::new)
}

type MakeSchema = fn() -> Option<Compiled>;

/// The built-in kinds validated by their k8s-openapi type, each with how its schema is made.
const SCHEMAS: &[(&str, &str, MakeSchema)] = {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        networking::v1 as networking, policy::v1 as policy,
    };
    &[
        ("", "pods", schema_of::<core::Pod>),
        ("", "services", schema_of::<core::Service>),
        ("", "endpoints", schema_of::<core::Endpoints>),
        ("", "serviceaccounts", schema_of::<core::ServiceAccount>),
        (
            "",
            "persistentvolumeclaims",
            schema_of::<core::PersistentVolumeClaim>,
        ),
        ("", "events", schema_of::<core::Event>),
        // Stored (and so validated) as core Events.
        ("events.k8s.io", "events", schema_of::<core::Event>),
        ("", "limitranges", schema_of::<core::LimitRange>),
        (
            "",
            "replicationcontrollers",
            schema_of::<core::ReplicationController>,
        ),
        ("", "persistentvolumes", schema_of::<core::PersistentVolume>),
        ("", "resourcequotas", schema_of::<core::ResourceQuota>),
        ("", "configmaps", schema_of::<core::ConfigMap>),
        ("", "secrets", schema_of::<core::Secret>),
        ("", "namespaces", schema_of::<core::Namespace>),
        ("apps", "deployments", schema_of::<apps::Deployment>),
        ("apps", "statefulsets", schema_of::<apps::StatefulSet>),
        ("apps", "daemonsets", schema_of::<apps::DaemonSet>),
        ("apps", "replicasets", schema_of::<apps::ReplicaSet>),
        ("batch", "jobs", schema_of::<batch::Job>),
        ("batch", "cronjobs", schema_of::<batch::CronJob>),
        (
            "networking.k8s.io",
            "ingresses",
            schema_of::<networking::Ingress>,
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            schema_of::<networking::NetworkPolicy>,
        ),
        (
            "policy",
            "poddisruptionbudgets",
            schema_of::<policy::PodDisruptionBudget>,
        ),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            schema_of::<autoscaling::HorizontalPodAutoscaler>,
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            schema_of::<discovery::EndpointSlice>,
        ),
        (
            "coordination.k8s.io",
            "leases",
            schema_of::<coordination::Lease>,
        ),
    ]
};

/// The compiled schema of a built-in kind, from its k8s-openapi type (compiled on first use,
/// then read without locking).
fn schema_for(rt: &ResourceType) -> Option<Compiled> {
    use std::sync::OnceLock;
    static COMPILED: [OnceLock<Option<Compiled>>; SCHEMAS.len()] =
        [const { OnceLock::new() }; SCHEMAS.len()];
    let i = SCHEMAS
        .iter()
        .position(|(g, r, _)| *g == rt.group && *r == rt.resource)?;
    COMPILED[i].get_or_init(SCHEMAS[i].2).clone()
}

/// A Service's cluster IP and node ports, allocated as kube-apiserver's allocators do (from
/// 10.96.0.0/12 and 30000-32767, the lowest free), unless the client chose them.
pub(crate) fn allocate_service(svc: &mut Value, existing: &[&Value]) {
    let Some(spec) = at(svc, "/spec") else {
        return;
    };
    let type_ = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if type_ == "ExternalName" {
        return;
    }
    let used_ips: std::collections::HashSet<&str> = existing
        .iter()
        .filter_map(|s| s.at("/spec/clusterIP").and_then(Value::as_str))
        .collect();
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_owned(),
        _ => (2u32..(1 << 20))
            .map(|n| {
                let addr = (10u32 << 24) | (96 << 16) | n;
                std::net::Ipv4Addr::from(addr).to_string()
            })
            .find(|ip| !used_ips.contains(ip.as_str()))
            .unwrap_or_default(),
    };
    spec["clusterIP"] = json!(ip);
    default(spec, "clusterIPs", json!([ip]));
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if matches!(type_.as_str(), "NodePort" | "LoadBalancer") {
        let mut used_ports: std::collections::HashSet<i64> = existing
            .iter()
            .flat_map(|s| {
                s.at("/spec/ports")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            })
            .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect();
        each_item(spec, "/ports", |p| {
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                used_ports.insert(n);
            }
        });
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports {
                if p.get("nodePort").is_none_or(Value::is_null)
                    && let Some(n) = (30000..=32767).find(|n| !used_ports.contains(n))
                {
                    used_ports.insert(n);
                    p["nodePort"] = json!(n);
                }
            }
        }
        if type_ == "LoadBalancer" {
            default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
    }
}

/// An update keeps what the server allocated when the client left it out (a Service's cluster
/// IPs and node ports), as kube-apiserver does.
pub(crate) fn keep_allocated(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !(rt.group.is_empty() && rt.resource == "services") {
        return;
    }
    let Some(spec) = at(new, "/spec") else {
        return;
    };
    for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if let Some(v) = old.at(&format!("/spec/{key}")) {
            default(spec, key, v.clone());
        }
    }
    let old_ports = old
        .at("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    each_item(spec, "/ports", |p| {
        let same = old_ports
            .iter()
            .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"));
        if let Some(n) = same.and_then(|o| o.get("nodePort")) {
            default(p, "nodePort", n.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{GroupResource, Registry};

    #[test]
    fn an_events_api_event_is_stored_as_a_core_event_and_served_back_unchanged() {
        let registry = Registry::with_builtins();
        let rt = registry
            .get(&GroupResource::new("events.k8s.io", "events"))
            .unwrap();
        let written = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "team"},
            "regarding": {"kind": "Deployment", "name": "web", "namespace": "team"},
            "note": "scaled", "reason": "Scaled", "type": "Normal",
            "reportingController": "strata", "reportingInstance": "strata-1",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T00:00:00.000000Z"},
            "deprecatedCount": 3, "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Scale"});
        let stored = to_storage(&rt, written.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "scaled");
        assert_eq!(stored["reportingComponent"], "strata");
        assert_eq!(stored["count"], 3);
        assert_eq!(stored["series"]["count"], 3);
        assert!(stored.get("regarding").is_none() && stored.get("note").is_none());
        assert_eq!(present(&rt, "v1", &stored), written);
    }

    #[test]
    fn every_builtin_kind_with_a_kubernetes_type_has_a_compiled_schema() {
        let registry = Registry::with_builtins();
        for rt in registry.all().filter(|t| t.builtin) {
            let expected = !matches!(
                rt.group.as_str(),
                crate::resource::CRD_GROUP | crate::rbac::RBAC_GROUP
            );
            assert_eq!(
                schema_for(rt).is_some(),
                expected,
                "{}",
                rt.group_resource()
            );
        }
    }

    #[test]
    fn unknown_fields_of_a_deployment_are_found_and_pruned_metadata_kept() {
        let registry = Registry::with_builtins();
        let rt = registry
            .get(&GroupResource::new("apps", "deployments"))
            .unwrap();
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 1, "replica": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolice": "x",
                        "resources": {"limits": {"cpu": 1}}}]}}}});
        let pruned = prune_unknown(&rt, &mut d);
        assert_eq!(
            pruned,
            [
                "spec.replica",
                "spec.template.spec.containers[0].imagePullPolice"
            ]
        );
        assert!(d["spec"].get("replica").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            1
        );
        assert_eq!(
            d["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {}})
        );
    }

    #[test]
    fn visible_defaults_are_applied() {
        let registry = Registry::with_builtins();
        let get = |g: &str, r: &str| registry.get(&GroupResource::new(g, r)).unwrap();
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}});
        apply_defaults(&get("apps", "deployments"), &mut d, true);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        apply_defaults(&get("", "services"), &mut s, true);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let mut j = json!({"metadata": {"name": "once", "uid": "u-1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        apply_defaults(&get("batch", "jobs"), &mut j, true);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "once"
        );
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }
}
