//! autoscaling/v1 HorizontalPodAutoscalers over the autoscaling/v2 storage, converted both ways
//! as kube-apiserver converts them (its `pkg/apis/autoscaling/v1` conversion).
//!
//! v1 has one metric, `spec.targetCPUUtilizationPercentage`, and one current value,
//! `status.currentCPUUtilizationPercentage`: the first CPU `Resource` metric with a
//! `Utilization` target. Everything else v2 holds rides along in annotations of the v1 object,
//! JSON-encoded in v1's (v2beta1-shaped) metric types: the other metrics
//! ([`METRICS`]), every current metric ([`CURRENT_METRICS`]), the conditions ([`CONDITIONS`])
//! and the scaling behavior ([`BEHAVIOR`], in Kubernetes' internal field names, as it writes
//! them). A v1 write reads them back, so a v1 read-modify-write keeps what v1 cannot express;
//! the annotations never reach storage, and v2 never shows them.
//!
//! Hand-written: the conversion is between two JSON shapes of one kind, and no crate carries
//! kube-apiserver's conversion functions; k8s-openapi's types would only add a round trip
//! through Rust structs around the same field-by-field mapping.

use serde_json::{Map, Value, json};

/// The v2 metrics a v1 object cannot express, in v1's metric shape.
pub(crate) const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Every v2 current metric, in v1's metric status shape.
pub(crate) const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// The v2 status conditions.
pub(crate) const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// The v2 scaling behavior, in Kubernetes' internal (Go) field names.
pub(crate) const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP: [&str; 4] = [METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR];

/// kube-apiserver's CPU utilization target where none is given.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

fn get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

/// Inserts `value` at `key` unless it is absent.
fn put(m: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        m.insert(key.to_owned(), v.clone());
    }
}

/// A quantity Go writes even when unset (a non-pointer `resource.Quantity`): `"0"`.
fn quantity_or_zero(v: Option<&Value>) -> Value {
    v.filter(|v| !v.is_null()).cloned().unwrap_or(json!("0"))
}

fn annotations_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()
}

/// Removes the round-trip annotations (kube-apiserver drops them on every conversion, so a
/// client cannot smuggle them into storage), and an annotation map they leave empty.
pub(crate) fn drop_round_trip_annotations(obj: &mut Value) {
    let Some(annotations) = annotations_mut(obj) else {
        return;
    };
    for key in ROUND_TRIP {
        annotations.remove(key);
    }
    if annotations.is_empty()
        && let Some(Value::Object(meta)) = obj.get_mut("metadata")
    {
        meta.remove("annotations");
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && get(metric, "/resource/name").and_then(Value::as_str) == Some("cpu")
        && get(metric, "/resource/target/averageUtilization").is_some()
}

/// Which half of a metric a conversion reads: the spec's `target` or the status's `current`.
/// v1 (v2beta1-shaped) prefixes its fields with the same word, and makes some of them plain
/// (zero when unset) quantities where v2 has optional ones.
#[derive(Clone, Copy)]
struct Half {
    /// `target` or `current`: the v2 sub-object, and the prefix of v1's field names.
    word: &'static str,
    /// v1's Resource average value and External value are plain quantities (the status's).
    plain_quantities: bool,
}

const SPEC: Half = Half {
    word: "target",
    plain_quantities: false,
};
const STATUS: Half = Half {
    word: "current",
    plain_quantities: true,
};

/// A v2 `MetricSpec` in v1's (v2beta1) shape.
fn metric_spec_to_v1(m: &Value) -> Value {
    metric_to_v1(m, SPEC)
}

/// A v2 `MetricStatus` in v1's shape.
fn metric_status_to_v1(m: &Value) -> Value {
    metric_to_v1(m, STATUS)
}

fn metric_to_v1(m: &Value, half: Half) -> Value {
    let type_ = m.get("type").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("type".into(), type_.clone());
    let value = |key: &str, field: &str| get(m, &format!("/{key}/{}/{field}", half.word));
    let named = |field: &str| format!("{}{field}", half.word);
    // A v1 field that is a plain quantity on this half (zero when unset), else optional.
    let quantity = |out: &mut Map<String, Value>, field: &str, v: Option<&Value>, plain: bool| {
        if plain {
            out.insert(named(field), quantity_or_zero(v));
        } else {
            put(out, &named(field), v);
        }
    };
    match type_.as_str().unwrap_or_default() {
        kind @ ("Resource" | "ContainerResource") => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let mut r = Map::new();
            put(&mut r, "name", get(m, &format!("/{key}/name")));
            put(
                &mut r,
                &named("AverageUtilization"),
                value(key, "averageUtilization"),
            );
            quantity(
                &mut r,
                "AverageValue",
                value(key, "averageValue"),
                half.plain_quantities,
            );
            if kind == "ContainerResource" {
                put(&mut r, "container", get(m, "/containerResource/container"));
            }
            out.insert(key.into(), Value::Object(r));
        }
        "Pods" => {
            let mut p = Map::new();
            put(&mut p, "metricName", get(m, "/pods/metric/name"));
            quantity(&mut p, "AverageValue", value("pods", "averageValue"), true);
            put(&mut p, "selector", get(m, "/pods/metric/selector"));
            out.insert("pods".into(), Value::Object(p));
        }
        "Object" => {
            let mut o = Map::new();
            put(&mut o, "target", get(m, "/object/describedObject"));
            put(&mut o, "metricName", get(m, "/object/metric/name"));
            quantity(&mut o, "Value", value("object", "value"), true);
            put(&mut o, "selector", get(m, "/object/metric/selector"));
            put(&mut o, "averageValue", value("object", "averageValue"));
            out.insert("object".into(), Value::Object(o));
        }
        "External" => {
            let mut e = Map::new();
            put(&mut e, "metricName", get(m, "/external/metric/name"));
            put(
                &mut e,
                "metricSelector",
                get(m, "/external/metric/selector"),
            );
            quantity(
                &mut e,
                "Value",
                value("external", "value"),
                half.plain_quantities,
            );
            put(
                &mut e,
                &named("AverageValue"),
                value("external", "averageValue"),
            );
            out.insert("external".into(), Value::Object(e));
        }
        _ => {}
    }
    Value::Object(out)
}

fn metric_identifier(name: Option<&Value>, selector: Option<&Value>) -> Value {
    let mut id = Map::new();
    put(&mut id, "name", name);
    put(&mut id, "selector", selector);
    Value::Object(id)
}

/// A v1 (v2beta1-shaped) metric in v2's shape: the source's identity nested as v2 nests it
/// (resource name and container, described object, metric name and selector), with `leaf`
/// (`target` of a spec, `current` of a status) made by `values` from the source's key and the v1
/// source object.
fn metric_to_v2(
    m: &Value,
    leaf: &str,
    values: impl Fn(&str, &Value) -> Map<String, Value>,
) -> Value {
    let type_ = m.get("type").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("type".into(), type_.clone());
    let key = match type_.as_str().unwrap_or_default() {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return Value::Object(out),
    };
    let v1 = m.get(key).unwrap_or(&Value::Null);
    let src = |f: &str| v1.get(f).filter(|v| !v.is_null());
    let mut source = Map::new();
    match key {
        "resource" | "containerResource" => {
            put(&mut source, "name", src("name"));
            if key == "containerResource" {
                put(&mut source, "container", src("container"));
            }
        }
        "object" => {
            put(&mut source, "describedObject", src("target"));
            let id = metric_identifier(src("metricName"), src("selector"));
            source.insert("metric".into(), id);
        }
        "pods" => {
            let id = metric_identifier(src("metricName"), src("selector"));
            source.insert("metric".into(), id);
        }
        _ => {
            let id = metric_identifier(src("metricName"), src("metricSelector"));
            source.insert("metric".into(), id);
        }
    }
    source.insert(leaf.into(), Value::Object(values(key, v1)));
    out.insert(key.into(), Value::Object(source));
    Value::Object(out)
}

/// A v1 (v2beta1-shaped) `MetricSpec` in v2's shape.
fn metric_spec_to_v2(m: &Value) -> Value {
    metric_to_v2(m, "target", |key, v1| {
        let src = |f: &str| v1.get(f).filter(|v| !v.is_null());
        let mut target = Map::new();
        let (type_, average_value) = match key {
            "resource" | "containerResource" => {
                put(
                    &mut target,
                    "averageUtilization",
                    src("targetAverageUtilization"),
                );
                let average = src("targetAverageValue");
                let type_ = if average.is_some() {
                    "AverageValue"
                } else {
                    "Utilization"
                };
                (type_, average)
            }
            "pods" => ("AverageValue", src("targetAverageValue")),
            _ => {
                put(&mut target, "value", src("targetValue"));
                let average = src(if key == "object" {
                    "averageValue"
                } else {
                    "targetAverageValue"
                });
                let type_ = if average.is_some() {
                    "AverageValue"
                } else {
                    "Value"
                };
                (type_, average)
            }
        };
        target.insert("type".into(), json!(type_));
        put(&mut target, "averageValue", average_value);
        target
    })
}

/// A v1 `MetricStatus` in v2's shape.
fn metric_status_to_v2(m: &Value) -> Value {
    metric_to_v2(m, "current", |key, v1| {
        let src = |f: &str| v1.get(f).filter(|v| !v.is_null());
        let mut current = Map::new();
        match key {
            "resource" | "containerResource" => {
                put(
                    &mut current,
                    "averageUtilization",
                    src("currentAverageUtilization"),
                );
                put(&mut current, "averageValue", src("currentAverageValue"));
            }
            "pods" => put(&mut current, "averageValue", src("currentAverageValue")),
            "object" => {
                put(&mut current, "value", src("currentValue"));
                put(&mut current, "averageValue", src("averageValue"));
            }
            _ => {
                put(&mut current, "value", src("currentValue"));
                put(&mut current, "averageValue", src("currentAverageValue"));
            }
        }
        current
    })
}

/// The (JSON name, Go field name) pairs of the behavior types, as Kubernetes' internal
/// `HorizontalPodAutoscalerBehavior` (fields without JSON tags) is written to the annotation.
const BEHAVIOR_FIELDS: [(&str, &str); 2] = [("scaleUp", "ScaleUp"), ("scaleDown", "ScaleDown")];
const RULES_FIELDS: [(&str, &str); 4] = [
    ("stabilizationWindowSeconds", "StabilizationWindowSeconds"),
    ("selectPolicy", "SelectPolicy"),
    ("policies", "Policies"),
    ("tolerance", "Tolerance"),
];
const POLICY_FIELDS: [(&str, &str); 3] = [
    ("type", "Type"),
    ("value", "Value"),
    ("periodSeconds", "PeriodSeconds"),
];

/// Renames an object's fields by `pairs` (`from_json`: JSON → Go names, else back), every
/// field of the pairs present (null when unset, as Go writes a nil pointer) going to Go.
fn rename_fields(
    v: &Value,
    pairs: &[(&str, &str)],
    to_go: bool,
    inner: impl Fn(&str, &Value) -> Value,
) -> Value {
    let Value::Object(m) = v else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (json_name, go_name) in pairs {
        let (from, to) = if to_go {
            (json_name, go_name)
        } else {
            (go_name, json_name)
        };
        let value = m.get(*from).map(|x| inner(json_name, x));
        match value {
            Some(x) if !x.is_null() => drop(out.insert((*to).to_owned(), x)),
            _ if to_go => drop(out.insert((*to).to_owned(), Value::Null)),
            _ => {}
        }
    }
    Value::Object(out)
}

fn behavior_names(behavior: &Value, to_go: bool) -> Value {
    let policies = |p: &Value| match p {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| rename_fields(i, &POLICY_FIELDS, to_go, |_, x| x.clone()))
                .collect(),
        ),
        _ => Value::Null,
    };
    let rules = |r: &Value| {
        rename_fields(r, &RULES_FIELDS, to_go, |name, x| {
            if name == "policies" {
                policies(x)
            } else {
                x.clone()
            }
        })
    };
    rename_fields(behavior, &BEHAVIOR_FIELDS, to_go, |_, x| rules(x))
}

fn annotate(out: &mut Value, key: &str, value: &Value) {
    let Some(meta) = out
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert(json!({})))
    else {
        return;
    };
    if !meta.is_object() {
        *meta = json!({});
    }
    let annotations = meta
        .as_object_mut()
        .map(|m| m.entry("annotations").or_insert(json!({})));
    if let Some(Value::Object(a)) = annotations {
        a.insert(key.to_owned(), json!(value.to_string()));
    }
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    get(v, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A stored (v2) HorizontalPodAutoscaler as autoscaling/v1 serves it.
pub(crate) fn to_v1(stored: &Value) -> Value {
    let mut out = stored.clone();
    drop_round_trip_annotations(&mut out);
    let metrics = items(stored, "/spec/metrics");
    if let Some(Value::Object(spec)) = stored.get("spec") {
        let mut v1 = Map::new();
        for key in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
            put(&mut v1, key, spec.get(key));
        }
        let first_cpu = metrics.iter().find(|m| {
            m.get("type").and_then(Value::as_str) == Some("Resource")
                && get(m, "/resource/name").and_then(Value::as_str) == Some("cpu")
        });
        put(
            &mut v1,
            "targetCPUUtilizationPercentage",
            first_cpu.and_then(|m| get(m, "/resource/target/averageUtilization")),
        );
        out["spec"] = Value::Object(v1);
    }
    let current = items(stored, "/status/currentMetrics");
    let conditions = items(stored, "/status/conditions");
    if let Some(Value::Object(status)) = stored.get("status") {
        let mut v1 = Map::new();
        for key in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            put(&mut v1, key, status.get(key));
        }
        // The last CPU resource metric with a utilization, as kube-apiserver's loop leaves it.
        let cpu = current
            .iter()
            .filter(|m| {
                m.get("type").and_then(Value::as_str) == Some("Resource")
                    && get(m, "/resource/name").and_then(Value::as_str) == Some("cpu")
            })
            .filter_map(|m| get(m, "/resource/current/averageUtilization"))
            .next_back();
        put(&mut v1, "currentCPUUtilizationPercentage", cpu);
        out["status"] = Value::Object(v1);
    }
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_to_v1)
        .collect();
    if !other.is_empty() {
        annotate(&mut out, METRICS, &Value::Array(other));
    }
    if !current.is_empty() {
        let v1: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
        annotate(&mut out, CURRENT_METRICS, &Value::Array(v1));
    }
    if let Some(behavior) = get(stored, "/spec/behavior") {
        annotate(&mut out, BEHAVIOR, &behavior_names(behavior, true));
    }
    if !conditions.is_empty() {
        annotate(&mut out, CONDITIONS, &Value::Array(conditions.to_vec()));
    }
    out
}

/// The JSON an annotation holds, `None` when it is absent or not JSON (kube-apiserver ignores
/// an annotation it cannot decode).
fn annotation_json(obj: &Value, key: &str) -> Option<Value> {
    let text = obj
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()?;
    serde_json::from_str(text).ok()
}

/// An autoscaling/v1 HorizontalPodAutoscaler in the v2 shape it is stored in.
pub(crate) fn to_v2(v1: Value) -> Value {
    let mut out = v1.clone();
    if let Some(Value::Object(spec)) = v1.get("spec") {
        let mut v2 = Map::new();
        for key in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
            put(&mut v2, key, spec.get(key));
        }
        let cpu = spec
            .get("targetCPUUtilizationPercentage")
            .filter(|v| !v.is_null())
            .map(|pct| {
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": pct}}})
            });
        // The other metrics first, then the CPU target (kube-apiserver's order).
        let mut metrics: Vec<Value> = match annotation_json(&v1, METRICS) {
            Some(Value::Array(other)) => other.iter().map(metric_spec_to_v2).collect(),
            _ => Vec::new(),
        };
        metrics.extend(cpu);
        if metrics.is_empty() {
            metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}));
        }
        v2.insert("metrics".into(), Value::Array(metrics));
        if let Some(behavior) = annotation_json(&v1, BEHAVIOR)
            .map(|b| behavior_names(&b, false))
            .filter(|b| b.as_object().is_some_and(|m| !m.is_empty()))
        {
            v2.insert("behavior".into(), behavior);
        }
        out["spec"] = Value::Object(v2);
    }
    if let Some(Value::Object(status)) = v1.get("status") {
        let mut v2 = Map::new();
        for key in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            put(&mut v2, key, status.get(key));
        }
        // The annotation has more than the one percentage, so it wins.
        let current = match annotation_json(&v1, CURRENT_METRICS) {
            Some(Value::Array(all)) => Some(all.iter().map(metric_status_to_v2).collect()),
            _ => status
                .get("currentCPUUtilizationPercentage")
                .filter(|v| !v.is_null())
                .map(|pct| {
                    vec![json!({"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": pct}}})]
                }),
        };
        if let Some(current) = current.filter(|c: &Vec<Value>| !c.is_empty()) {
            v2.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(Value::Array(conditions)) = annotation_json(&v1, CONDITIONS)
            && !conditions.is_empty()
        {
            v2.insert("conditions".into(), Value::Array(conditions));
        }
        out["status"] = Value::Object(v2);
    }
    drop_round_trip_annotations(&mut out);
    out
}

/// The defaults autoscaling/v2 gives a HorizontalPodAutoscaler (`SetDefaults_
/// HorizontalPodAutoscaler`): one replica at least, a CPU utilization target of 80 %, and a
/// given behavior completed with the default scale-up and scale-down rules.
pub(crate) fn apply_defaults(spec: &mut Value) {
    let Value::Object(s) = spec else {
        return;
    };
    if s.get("minReplicas").is_none_or(Value::is_null) {
        s.insert("minReplicas".into(), json!(1));
    }
    if s.get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        s.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]),
        );
    }
    let Some(Value::Object(behavior)) = s.get_mut("behavior") else {
        return;
    };
    let defaults = [
        (
            "scaleUp",
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (direction, window, policies) in defaults {
        let rules = behavior.entry(direction).or_insert(json!({}));
        if !rules.is_object() {
            *rules = json!({});
        }
        if let Value::Object(r) = rules {
            for (key, value) in [
                ("stabilizationWindowSeconds", json!(window)),
                ("selectPolicy", json!("Max")),
                ("policies", policies),
            ] {
                if r.get(key).is_none_or(Value::is_null) {
                    r.insert(key.into(), value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "team", "annotations": {"team": "a"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "200Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
                        "target": {"type": "Value", "value": "30"}}},
                    {"type": "Object", "object": {"describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"}, "target": {"type": "Value", "value": "2k"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 91, "averageValue": "910m"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    }

    fn annotation(v1: &Value, key: &str) -> Value {
        serde_json::from_str(v1["metadata"]["annotations"][key].as_str().unwrap()).unwrap()
    }

    #[test]
    fn v1_shows_the_cpu_target_and_keeps_what_it_cannot_express_in_annotations() {
        let v1 = to_v1(&stored());
        assert_eq!(
            v1["spec"],
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70})
        );
        assert_eq!(
            v1["status"],
            json!({"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 91})
        );
        assert_eq!(v1["metadata"]["annotations"]["team"], "a");
        assert_eq!(
            annotation(&v1, METRICS),
            json!([
                {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "200Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
                {"type": "External", "external": {"metricName": "queue",
                    "metricSelector": {"matchLabels": {"q": "jobs"}}, "targetValue": "30"}},
                {"type": "Object", "object": {"target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                    "metricName": "rps", "targetValue": "2k"}}]),
            "the CPU utilization metric is v1's own field, not in the annotation"
        );
        assert_eq!(
            annotation(&v1, CURRENT_METRICS),
            json!([
                {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 91, "currentAverageValue": "910m"}},
                {"type": "Pods", "pods": {"metricName": "qps", "currentAverageValue": "12"}}])
        );
        assert_eq!(
            annotation(&v1, BEHAVIOR),
            json!({"ScaleUp": null, "ScaleDown": {"StabilizationWindowSeconds": 60, "SelectPolicy": "Min",
                "Policies": [{"Type": "Pods", "Value": 1, "PeriodSeconds": 30}], "Tolerance": null}}),
            "behavior in Kubernetes' internal field names, nil pointers as null"
        );
        assert_eq!(annotation(&v1, CONDITIONS)[0]["reason"], "ReadyForNewScale");
    }

    #[test]
    fn a_v1_read_modify_write_keeps_every_v2_field_with_the_cpu_metric_moved_last() {
        let mut v1 = to_v1(&stored());
        v1["apiVersion"] = json!("autoscaling/v1");
        v1["spec"]["targetCPUUtilizationPercentage"] = json!(50);
        let v2 = to_v2(v1);
        let before = stored();
        let metrics = v2["spec"]["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 5);
        assert_eq!(
            metrics[..4],
            before["spec"]["metrics"].as_array().unwrap()[1..]
        );
        assert_eq!(
            metrics[4],
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}})
        );
        assert_eq!(v2["spec"]["behavior"], before["spec"]["behavior"]);
        assert_eq!(v2["status"]["conditions"], before["status"]["conditions"]);
        assert_eq!(
            v2["status"]["currentMetrics"],
            before["status"]["currentMetrics"]
        );
        assert_eq!(
            v2["metadata"]["annotations"],
            json!({"team": "a"}),
            "the round-trip annotations never reach storage"
        );
    }

    #[test]
    fn a_plain_v1_object_becomes_a_cpu_utilization_metric_or_the_default_one() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 80},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 12}});
        let v2 = to_v2(v1.clone());
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(
            v2["status"]["currentMetrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}])
        );
        assert!(v2["metadata"].get("annotations").is_none());
        let mut bare = v1;
        bare["spec"]
            .as_object_mut()
            .unwrap()
            .remove("targetCPUUtilizationPercentage");
        assert_eq!(
            to_v2(bare)["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }

    #[test]
    fn a_smuggled_round_trip_annotation_is_dropped_and_an_undecodable_one_ignored() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {METRICS: "not json", BEHAVIOR: "{}"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 60}});
        let v2 = to_v2(v1);
        assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
        assert!(v2["spec"].get("behavior").is_none());
        assert!(v2["metadata"].get("annotations").is_none());
        let mut stored = stored();
        stored["metadata"]["annotations"][CONDITIONS] = json!("[]");
        assert!(annotation(&to_v1(&stored), CONDITIONS).is_array());
    }

    #[test]
    fn v2_defaults_fill_a_given_behavior_and_the_cpu_target() {
        let mut spec = json!({"maxReplicas": 3, "behavior": {"scaleUp": {"selectPolicy": "Min"}}});
        apply_defaults(&mut spec);
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            spec["behavior"]["scaleUp"],
            json!({"selectPolicy": "Min", "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        assert_eq!(
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            300
        );
        let mut plain = json!({"maxReplicas": 3});
        apply_defaults(&mut plain);
        assert!(plain.get("behavior").is_none());
    }
}
