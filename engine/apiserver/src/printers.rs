//! The Table columns of the built-in kinds, as kube-apiserver's printers compute them (what
//! `kubectl get` shows; `-o wide` adds the priority-1 columns).
//!
//! Hand-written: these cells are computed (`ready/desired`, `80:30080/TCP`, `deployment/web`),
//! not read by one JSONPath, and kube-apiserver defines them in Go code the same way.

use serde_json::{Value, json};

/// How a cell is computed from an object and the current time.
pub(crate) type CellFn = fn(&Value, jiff::Timestamp) -> Value;

/// One built-in column: name, type, priority and how its cell is computed.
pub(crate) struct BuiltinColumn {
    pub name: &'static str,
    pub type_: &'static str,
    pub priority: i64,
    pub cell: CellFn,
}

const fn col(name: &'static str, type_: &'static str, cell: CellFn) -> BuiltinColumn {
    BuiltinColumn {
        name,
        type_,
        priority: 0,
        cell,
    }
}

const fn wide(name: &'static str, type_: &'static str, cell: CellFn) -> BuiltinColumn {
    BuiltinColumn {
        name,
        type_,
        priority: 1,
        cell,
    }
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or(s: String, default: &str) -> String {
    if s.is_empty() { default.to_owned() } else { s }
}

/// An IntOrString (or any scalar) as Go prints it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `translateTimestampSince`: a duration since `ts`, `<unknown>` when unset.
pub(crate) fn since(ts: &str, now: jiff::Timestamp) -> String {
    if ts.is_empty() {
        return "<unknown>".into();
    }
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now.as_second() - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

/// `duration.HumanDuration` of Kubernetes' apimachinery.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(o: &Value, now: jiff::Timestamp) -> Value {
    json!(since(text(o, "/metadata/creationTimestamp"), now))
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect()
        })
        .unwrap_or_default();
    or(pairs.join(","), "<none>")
}

/// A label selector in its string form (`app=web,tier in (a,b)`), "" when it selects everything.
pub(crate) fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    // A ReplicationController's selector is a plain map of labels.
    let plain = sel.get("matchLabels").is_none() && sel.get("matchExpressions").is_none();
    let labels = if plain {
        sel.as_object()
    } else {
        sel.get("matchLabels").and_then(Value::as_object)
    };
    if let Some(m) = labels {
        for (k, v) in m {
            parts.push((k.clone(), format!("{k}={}", scalar(v))));
        }
    }
    for e in items(sel, "/matchExpressions") {
        let key = text(e, "/key").to_owned();
        let mut values: Vec<String> = items(e, "/values").iter().map(scalar).collect();
        values.sort();
        let s = match text(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        };
        parts.push((key, s));
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

fn containers(o: &Value, pointer: &str, field: &str) -> Value {
    let names: Vec<&str> = items(o, pointer)
        .iter()
        .map(|c| c.get(field).and_then(Value::as_str).unwrap_or(""))
        .collect();
    json!(names.join(","))
}

fn template_containers(o: &Value, n: jiff::Timestamp) -> Value {
    let _ = n;
    containers(o, "/spec/template/spec/containers", "name")
}

fn template_images(o: &Value, _: jiff::Timestamp) -> Value {
    containers(o, "/spec/template/spec/containers", "image")
}

fn spec_selector(o: &Value, _: jiff::Timestamp) -> Value {
    json!(selector_string(o.pointer("/spec/selector")))
}

fn name(o: &Value, _: jiff::Timestamp) -> Value {
    o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)
}

fn name_column() -> BuiltinColumn {
    col("Name", "string", name)
}

/// A list shortened as kube-apiserver does: the first `max`, then ` + N more...`.
fn first_of(list: Vec<String>, max: usize, sep: &str) -> String {
    if list.len() > max {
        format!("{} + {} more...", list[..max].join(sep), list.len() - max)
    } else {
        list.join(sep)
    }
}

fn event_first(o: &Value, now: jiff::Timestamp) -> String {
    match text(o, "/firstTimestamp") {
        "" => since(text(o, "/eventTime"), now),
        t => since(t, now),
    }
}

fn event_last(o: &Value, now: jiff::Timestamp) -> String {
    if let Some(t) = o
        .pointer("/series/lastObservedTime")
        .and_then(Value::as_str)
    {
        return since(t, now);
    }
    match text(o, "/lastTimestamp") {
        "" => event_first(o, now),
        t => since(t, now),
    }
}

fn pod_status(o: &Value) -> String {
    let mut reason = match text(o, "/status/reason") {
        "" => text(o, "/status/phase").to_owned(),
        r => r.to_owned(),
    };
    if items(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    for s in items(o, "/status/containerStatuses").iter().rev() {
        if let Some(r) = s.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_owned();
        } else if let Some(r) = s
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            reason = r.to_owned();
        }
    }
    let terminal = matches!(text(o, "/status/phase"), "Succeeded" | "Failed");
    if o.pointer("/metadata/deletionTimestamp").is_some() && !terminal {
        reason = "Terminating".into();
    }
    reason
}

fn service_external_ip(o: &Value) -> String {
    let external: Vec<String> = items(o, "/spec/externalIPs").iter().map(scalar).collect();
    match text(o, "/spec/type") {
        "ExternalName" => text(o, "/spec/externalName").to_owned(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = items(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname").to_owned(),
                    ip => ip.to_owned(),
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.extend(external);
            or(ips.join(","), "<pending>")
        }
        _ => or(external.join(","), "<none>"),
    }
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = items(o, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                p => p,
            };
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node => format!("{}:{node}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    or(ports.join(","), "<none>")
}

fn endpoints(o: &Value) -> String {
    let mut list = Vec::new();
    for subset in items(o, "/subsets") {
        let ports = items(subset, "/ports");
        for a in items(subset, "/addresses") {
            let ip = text(a, "/ip");
            if ports.is_empty() {
                list.push(ip.to_owned());
            }
            for p in ports {
                list.push(format!("{ip}:{}", int(p, "/port")));
            }
        }
    }
    or(first_of(list, 3, ","), "<none>")
}

fn access_modes(modes: &[Value]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(mode)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn quota_column(o: &Value, limits: bool) -> String {
    let hard = o.pointer("/status/hard").and_then(Value::as_object);
    let mut names: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter(|n| n.starts_with("limits.") == limits)
        .map(|n| {
            let used = o
                .pointer(&format!(
                    "/status/used/{}",
                    n.replace('~', "~0").replace('/', "~1")
                ))
                .map(scalar)
                .unwrap_or_else(|| "0".into());
            let hard = hard.and_then(|h| h.get(n)).map(scalar).unwrap_or_default();
            format!("{n}: {used}/{hard}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn optional_scalar(o: &Value, pointer: &str, absent: &str) -> Value {
    json!(
        o.pointer(pointer)
            .map(scalar)
            .unwrap_or_else(|| absent.to_owned())
    )
}

fn has_condition(o: &Value, type_: &str) -> bool {
    items(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == type_ && text(c, "/status") == "True")
}

fn job_status(o: &Value) -> &'static str {
    if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_completions(o: &Value) -> String {
    let succeeded = int(o, "/status/succeeded");
    if let Some(c) = o.pointer("/spec/completions").and_then(Value::as_i64) {
        return format!("{succeeded}/{c}");
    }
    match int(o, "/spec/parallelism") {
        p if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

fn job_duration(o: &Value, now: jiff::Timestamp) -> String {
    let Ok(start) = text(o, "/status/startTime").parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let end = text(o, "/status/completionTime")
        .parse::<jiff::Timestamp>()
        .unwrap_or(now);
    human_duration(end.as_second() - start.as_second())
}

fn hpa_targets(o: &Value) -> String {
    let specs = items(o, "/spec/metrics");
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = items(o, "/status/currentMetrics");
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i);
            let current = |p: &str| status.and_then(|s| s.pointer(p));
            match text(spec, "/type") {
                "Resource" | "ContainerResource" => {
                    let key = if text(spec, "/type") == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let rname = text(spec, &format!("/{key}/name"));
                    if let Some(target) = spec.pointer(&format!("/{key}/target/averageValue")) {
                        let cur = current(&format!("/{key}/current/averageValue"))
                            .map(scalar)
                            .unwrap_or_else(|| "<unknown>".into());
                        format!("{rname}: {cur}/{}", scalar(target))
                    } else {
                        let cur = current(&format!("/{key}/current/averageUtilization"))
                            .map(|v| format!("{}%", scalar(v)))
                            .unwrap_or_else(|| "<unknown>".into());
                        let target = spec
                            .pointer(&format!("/{key}/target/averageUtilization"))
                            .map(|v| format!("{}%", scalar(v)))
                            .unwrap_or_else(|| "<auto>".into());
                        format!("{rname}: {cur}/{target}")
                    }
                }
                other => {
                    let key = match other {
                        "Pods" => "pods",
                        "Object" => "object",
                        _ => "external",
                    };
                    let target = spec
                        .pointer(&format!("/{key}/target/averageValue"))
                        .or_else(|| spec.pointer(&format!("/{key}/target/value")))
                        .map(scalar)
                        .unwrap_or_default();
                    let cur = current(&format!("/{key}/current/averageValue"))
                        .or_else(|| current(&format!("/{key}/current/value")))
                        .map(scalar)
                        .unwrap_or_else(|| "<unknown>".into());
                    let metric = text(spec, &format!("/{key}/metric/name"));
                    format!("{metric}: {cur}/{target}")
                }
            }
        })
        .collect();
    first_of(list, 2, ", ")
}

/// The columns of a built-in kind, `None` for kinds shown with Name and Age only.
pub(crate) fn columns(group: &str, resource: &str) -> Option<Vec<BuiltinColumn>> {
    Some(match (group, resource) {
        ("", "events") | ("events.k8s.io", "events") => vec![
            col("Last Seen", "string", |o, n| json!(event_last(o, n))),
            col("Type", "string", |o, _| json!(text(o, "/type"))),
            col("Reason", "string", |o, _| json!(text(o, "/reason"))),
            col("Object", "string", |o, _| {
                let kind = text(o, "/involvedObject/kind").to_lowercase();
                json!(match text(o, "/involvedObject/name") {
                    "" => kind,
                    name => format!("{kind}/{name}"),
                })
            }),
            wide("Subobject", "string", |o, _| {
                json!(text(o, "/involvedObject/fieldPath"))
            }),
            wide("Source", "string", |o, _| {
                let component = match text(o, "/source/component") {
                    "" => text(o, "/reportingComponent"),
                    c => c,
                };
                let host = match text(o, "/source/host") {
                    "" => text(o, "/reportingInstance"),
                    h => h,
                };
                json!(if host.is_empty() {
                    component.to_owned()
                } else {
                    format!("{component}, {host}")
                })
            }),
            col("Message", "string", |o, _| {
                json!(text(o, "/message").trim())
            }),
            wide("First Seen", "string", |o, n| json!(event_first(o, n))),
            wide("Count", "string", |o, _| {
                let count = match o.pointer("/series/count").and_then(Value::as_i64) {
                    Some(c) => c,
                    None => match int(o, "/count") {
                        0 => 1,
                        c => c,
                    },
                };
                json!(count)
            }),
            wide("Name", "string", name),
        ],
        ("", "pods") => vec![
            name_column(),
            col("Ready", "string", |o, _| {
                let total = items(o, "/spec/containers").len();
                let ready = items(o, "/status/containerStatuses")
                    .iter()
                    .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                    .count();
                json!(format!("{ready}/{total}"))
            }),
            col("Status", "string", |o, _| json!(pod_status(o))),
            col("Restarts", "string", |o, _| {
                let restarts: i64 = items(o, "/status/containerStatuses")
                    .iter()
                    .map(|s| int(s, "/restartCount"))
                    .sum();
                json!(restarts.to_string())
            }),
            col("Age", "string", age),
            wide("IP", "string", |o, _| {
                json!(or(text(o, "/status/podIPs/0/ip").to_owned(), "<none>"))
            }),
            wide("Node", "string", |o, _| {
                json!(or(text(o, "/spec/nodeName").to_owned(), "<none>"))
            }),
            wide("Nominated Node", "string", |o, _| {
                json!(or(
                    text(o, "/status/nominatedNodeName").to_owned(),
                    "<none>"
                ))
            }),
            wide("Readiness Gates", "string", |o, _| {
                let gates = items(o, "/spec/readinessGates");
                if gates.is_empty() {
                    return json!("<none>");
                }
                let ready = gates
                    .iter()
                    .filter(|g| has_condition(o, text(g, "/conditionType")))
                    .count();
                json!(format!("{ready}/{}", gates.len()))
            }),
        ],
        ("", "services") => vec![
            name_column(),
            col("Type", "string", |o, _| json!(text(o, "/spec/type"))),
            col("Cluster-IP", "string", |o, _| {
                json!(or(text(o, "/spec/clusterIPs/0").to_owned(), "<none>"))
            }),
            col("External-IP", "string", |o, _| {
                json!(service_external_ip(o))
            }),
            col("Port(s)", "string", |o, _| json!(service_ports(o))),
            col("Age", "string", age),
            wide("Selector", "string", |o, _| {
                json!(format_labels(o.pointer("/spec/selector")))
            }),
        ],
        ("", "endpoints") => vec![
            name_column(),
            col("Endpoints", "string", |o, _| json!(endpoints(o))),
            col("Age", "string", age),
        ],
        ("", "serviceaccounts") => vec![
            name_column(),
            col("Secrets", "integer", |o, _| {
                json!(items(o, "/secrets").len())
            }),
            col("Age", "string", age),
        ],
        ("", "persistentvolumeclaims") => vec![
            name_column(),
            col("Status", "string", |o, _| {
                json!(if o.pointer("/metadata/deletionTimestamp").is_some() {
                    "Terminating"
                } else {
                    text(o, "/status/phase")
                })
            }),
            col("Volume", "string", |o, _| {
                json!(text(o, "/spec/volumeName"))
            }),
            col("Capacity", "string", |o, _| {
                json!(if text(o, "/spec/volumeName").is_empty() {
                    String::new()
                } else {
                    o.pointer("/status/capacity/storage")
                        .map(scalar)
                        .unwrap_or_default()
                })
            }),
            col("Access Modes", "string", |o, _| {
                json!(if text(o, "/spec/volumeName").is_empty() {
                    String::new()
                } else {
                    access_modes(items(o, "/status/accessModes"))
                })
            }),
            col("StorageClass", "string", |o, _| {
                json!(match text(o, "/spec/storageClassName") {
                    "" => text(
                        o,
                        "/metadata/annotations/volume.beta.kubernetes.io~1storage-class"
                    ),
                    c => c,
                })
            }),
            col("VolumeAttributesClass", "string", |o, _| {
                json!(or(
                    text(o, "/spec/volumeAttributesClassName").to_owned(),
                    "<unset>"
                ))
            }),
            col("Age", "string", age),
            wide("VolumeMode", "string", |o, _| {
                json!(or(text(o, "/spec/volumeMode").to_owned(), "<unset>"))
            }),
        ],
        ("", "replicationcontrollers") => vec![
            name_column(),
            col("Desired", "integer", |o, _| json!(int(o, "/spec/replicas"))),
            col("Current", "integer", |o, _| {
                json!(int(o, "/status/replicas"))
            }),
            col("Ready", "integer", |o, _| {
                json!(int(o, "/status/readyReplicas"))
            }),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
            wide("Selector", "string", |o, _| {
                json!(format_labels(o.pointer("/spec/selector")))
            }),
        ],
        ("", "persistentvolumes") => vec![
            name_column(),
            col("Capacity", "string", |o, _| {
                json!(
                    o.pointer("/spec/capacity/storage")
                        .map(scalar)
                        .unwrap_or_default()
                )
            }),
            col("Access Modes", "string", |o, _| {
                json!(access_modes(items(o, "/spec/accessModes")))
            }),
            col("Reclaim Policy", "string", |o, _| {
                json!(text(o, "/spec/persistentVolumeReclaimPolicy"))
            }),
            col("Status", "string", |o, _| {
                json!(if o.pointer("/metadata/deletionTimestamp").is_some() {
                    "Terminating"
                } else {
                    text(o, "/status/phase")
                })
            }),
            col("Claim", "string", |o, _| {
                json!(match text(o, "/spec/claimRef/name") {
                    "" => String::new(),
                    name => format!("{}/{name}", text(o, "/spec/claimRef/namespace")),
                })
            }),
            col("StorageClass", "string", |o, _| {
                json!(text(o, "/spec/storageClassName"))
            }),
            col("VolumeAttributesClass", "string", |o, _| {
                json!(or(
                    text(o, "/spec/volumeAttributesClassName").to_owned(),
                    "<unset>"
                ))
            }),
            col("Reason", "string", |o, _| json!(text(o, "/status/reason"))),
            col("Age", "string", age),
            wide("VolumeMode", "string", |o, _| {
                json!(or(text(o, "/spec/volumeMode").to_owned(), "<unset>"))
            }),
        ],
        ("", "limitranges") => vec![
            name_column(),
            col("Created At", "date", |o, _| {
                json!(text(o, "/metadata/creationTimestamp"))
            }),
        ],
        ("", "resourcequotas") => vec![
            name_column(),
            col("Age", "string", age),
            col("Request", "string", |o, _| json!(quota_column(o, false))),
            col("Limit", "string", |o, _| json!(quota_column(o, true))),
        ],
        ("apps", "deployments") => vec![
            name_column(),
            col("Ready", "string", |o, _| {
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    int(o, "/spec/replicas")
                ))
            }),
            col("Up-to-date", "integer", |o, _| {
                json!(int(o, "/status/updatedReplicas"))
            }),
            col("Available", "integer", |o, _| {
                json!(int(o, "/status/availableReplicas"))
            }),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
            wide("Selector", "string", spec_selector),
        ],
        ("apps", "statefulsets") => vec![
            name_column(),
            col("Ready", "string", |o, _| {
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    int(o, "/spec/replicas")
                ))
            }),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
        ],
        ("apps", "daemonsets") => vec![
            name_column(),
            col("Desired", "integer", |o, _| {
                json!(int(o, "/status/desiredNumberScheduled"))
            }),
            col("Current", "integer", |o, _| {
                json!(int(o, "/status/currentNumberScheduled"))
            }),
            col("Ready", "integer", |o, _| {
                json!(int(o, "/status/numberReady"))
            }),
            col("Up-to-date", "integer", |o, _| {
                json!(int(o, "/status/updatedNumberScheduled"))
            }),
            col("Available", "integer", |o, _| {
                json!(int(o, "/status/numberAvailable"))
            }),
            col("Node Selector", "string", |o, _| {
                json!(format_labels(o.pointer("/spec/template/spec/nodeSelector")))
            }),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
            wide("Selector", "string", spec_selector),
        ],
        ("apps", "replicasets") => vec![
            name_column(),
            col("Desired", "integer", |o, _| json!(int(o, "/spec/replicas"))),
            col("Current", "integer", |o, _| {
                json!(int(o, "/status/replicas"))
            }),
            col("Ready", "integer", |o, _| {
                json!(int(o, "/status/readyReplicas"))
            }),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
            wide("Selector", "string", spec_selector),
        ],
        ("batch", "jobs") => vec![
            name_column(),
            col("Status", "string", |o, _| json!(job_status(o))),
            col("Completions", "string", |o, _| json!(job_completions(o))),
            col("Duration", "string", |o, n| json!(job_duration(o, n))),
            col("Age", "string", age),
            wide("Containers", "string", template_containers),
            wide("Images", "string", template_images),
            wide("Selector", "string", spec_selector),
        ],
        ("batch", "cronjobs") => vec![
            name_column(),
            col("Schedule", "string", |o, _| {
                json!(text(o, "/spec/schedule"))
            }),
            col("Timezone", "string", |o, _| {
                json!(or(text(o, "/spec/timeZone").to_owned(), "<none>"))
            }),
            col("Suspend", "boolean", |o, _| {
                json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                })
            }),
            col("Active", "integer", |o, _| {
                json!(items(o, "/status/active").len())
            }),
            col("Last Schedule", "string", |o, n| {
                json!(match text(o, "/status/lastScheduleTime") {
                    "" => "<none>".to_owned(),
                    t => since(t, n),
                })
            }),
            col("Age", "string", age),
            wide("Containers", "string", |o, _| {
                containers(o, "/spec/jobTemplate/spec/template/spec/containers", "name")
            }),
            wide("Images", "string", |o, _| {
                containers(
                    o,
                    "/spec/jobTemplate/spec/template/spec/containers",
                    "image",
                )
            }),
            wide("Selector", "string", |o, _| {
                json!(selector_string(
                    o.pointer("/spec/jobTemplate/spec/selector")
                ))
            }),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            name_column(),
            col("Class", "string", |o, _| {
                json!(or(text(o, "/spec/ingressClassName").to_owned(), "<none>"))
            }),
            col("Hosts", "string", |o, _| {
                let rules = items(o, "/spec/rules");
                let hosts: Vec<String> = rules
                    .iter()
                    .take(3)
                    .map(|r| text(r, "/host").to_owned())
                    .filter(|h| !h.is_empty())
                    .collect();
                if hosts.is_empty() {
                    return json!("*");
                }
                json!(if rules.len() > 3 {
                    format!("{} + {} more...", hosts.join(","), rules.len() - 3)
                } else {
                    hosts.join(",")
                })
            }),
            col("Address", "string", |o, _| {
                let addrs: Vec<String> = items(o, "/status/loadBalancer/ingress")
                    .iter()
                    .map(|i| match text(i, "/ip") {
                        "" => text(i, "/hostname").to_owned(),
                        ip => ip.to_owned(),
                    })
                    .collect();
                json!(addrs.join(","))
            }),
            col("Ports", "string", |o, _| {
                json!(if items(o, "/spec/tls").is_empty() {
                    "80"
                } else {
                    "80, 443"
                })
            }),
            col("Age", "string", age),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            name_column(),
            col("Pod-Selector", "string", |o, _| {
                json!(or(
                    selector_string(o.pointer("/spec/podSelector")),
                    "<none>"
                ))
            }),
            col("Age", "string", age),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            name_column(),
            col("Min Available", "string", |o, _| {
                optional_scalar(o, "/spec/minAvailable", "N/A")
            }),
            col("Max Unavailable", "string", |o, _| {
                optional_scalar(o, "/spec/maxUnavailable", "N/A")
            }),
            col("Allowed Disruptions", "integer", |o, _| {
                json!(int(o, "/status/disruptionsAllowed"))
            }),
            col("Age", "string", age),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            name_column(),
            col("Reference", "string", |o, _| {
                json!(format!(
                    "{}/{}",
                    text(o, "/spec/scaleTargetRef/kind"),
                    text(o, "/spec/scaleTargetRef/name")
                ))
            }),
            col("Targets", "string", |o, _| json!(hpa_targets(o))),
            col("MinPods", "string", |o, _| {
                optional_scalar(o, "/spec/minReplicas", "<unset>")
            }),
            col("MaxPods", "integer", |o, _| {
                json!(int(o, "/spec/maxReplicas"))
            }),
            col("Replicas", "integer", |o, _| {
                json!(int(o, "/status/currentReplicas"))
            }),
            col("Age", "string", age),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            name_column(),
            col("AddressType", "string", |o, _| {
                json!(text(o, "/addressType"))
            }),
            col("Ports", "string", |o, _| {
                let ports: Vec<String> = items(o, "/ports")
                    .iter()
                    .map(|p| match p.get("port") {
                        Some(v) if !v.is_null() => scalar(v),
                        _ => "<unset>".into(),
                    })
                    .collect();
                json!(or(first_of(ports, 3, ","), "<unset>"))
            }),
            col("Endpoints", "string", |o, _| {
                let addrs: Vec<String> = items(o, "/endpoints")
                    .iter()
                    .flat_map(|e| items(e, "/addresses").iter().map(scalar))
                    .collect();
                json!(or(first_of(addrs, 3, ","), "<unset>"))
            }),
            col("Age", "string", age),
        ],
        ("coordination.k8s.io", "leases") => vec![
            name_column(),
            col("Holder", "string", |o, _| {
                json!(text(o, "/spec/holderIdentity"))
            }),
            col("Age", "string", age),
        ],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, resource: &str, obj: &Value, wide_too: bool) -> Vec<Value> {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        columns(group, resource)
            .unwrap()
            .iter()
            .filter(|c| wide_too || c.priority == 0)
            .map(|c| (c.cell)(obj, now))
            .collect()
    }

    #[test]
    fn durations_read_like_kubectl() {
        for (secs, want) in [
            (45, "45s"),
            (300, "5m"),
            (312, "5m12s"),
            (3600, "60m"),
            (4 * 3600 + 60, "4h1m"),
            (86400, "24h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn cells_are_computed_as_kube_apiserver_prints_them() {
        let created = json!({"name": "web", "creationTimestamp": "2026-01-01T23:59:15Z"});
        let deploy = json!({"metadata": created, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "redis"}]}}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2}});
        assert_eq!(
            row("apps", "deployments", &deploy, true),
            [
                json!("web"),
                json!("1/3"),
                json!(2),
                json!(0),
                json!("45s"),
                json!("c,d"),
                json!("nginx,redis"),
                json!("app=web,tier in (a,b)")
            ]
        );
        let svc = json!({"metadata": created, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web"}}});
        assert_eq!(
            row("", "services", &svc, true),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("45s"),
                json!("app=web")
            ]
        );
        let event = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Synced",
            "involvedObject": {"kind": "Deployment", "name": "web"}, "message": " done ",
            "eventTime": "2026-01-01T23:59:00.000000Z", "reportingComponent": "strata"});
        assert_eq!(
            row("", "events", &event, true),
            [
                json!("60s"),
                json!("Normal"),
                json!("Synced"),
                json!("deployment/web"),
                json!(""),
                json!("strata"),
                json!("done"),
                json!("60s"),
                json!(1),
                json!("web.1")
            ]
        );
        let job = json!({"metadata": created, "spec": {"completions": 1, "parallelism": 1}});
        assert_eq!(
            row("batch", "jobs", &job, false),
            [
                json!("web"),
                json!("Running"),
                json!("0/1"),
                json!(""),
                json!("45s")
            ]
        );
        let hpa = json!({"metadata": created, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        assert_eq!(
            row("autoscaling", "horizontalpodautoscalers", &hpa, false),
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5),
                json!(0),
                json!("45s")
            ]
        );
        let quota = json!({"metadata": created, "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"},
            "used": {"pods": "1"}}});
        assert_eq!(
            row("", "resourcequotas", &quota, false)[2..],
            [
                json!("pods: 1/10, requests.memory: 0/1Gi"),
                json!("limits.cpu: 0/2")
            ]
        );
    }
}
