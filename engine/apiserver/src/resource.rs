//! The registry of served resource types: the built-in kinds and every established CRD.
//!
//! Built-ins are fixed at start; CRDs enter through [`ResourceType::from_crd`] whenever a
//! `CustomResourceDefinition` object is written, and leave when it is finally removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// A resource within an API group: the unit objects are stored under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// An `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone)]
pub struct ResourceVersion {
    pub name: String,
    pub storage: bool,
    pub status_subresource: bool,
    pub printer_columns: Vec<PrinterColumn>,
    /// The `openAPIV3Schema` of a CRD version.
    pub schema: Option<Value>,
    /// The compiled schema custom objects of this version are validated against.
    pub compiled: Option<strata_schema::StructuralSchema>,
    /// A CRD version's `selectableFields`, as field selector labels (`spec.color`).
    pub selectable_fields: Vec<String>,
    /// A CRD version's scale subresource.
    pub scale: Option<ScaleSubresource>,
    /// The version's `x-kubernetes-validations`, compiled once on first use.
    pub cel: crate::cel::Rules,
    /// `deprecated: true`: the `Warning` every request to this version is answered with.
    pub deprecation_warning: Option<String>,
}

/// Where a custom resource keeps what its `/scale` subresource shows: JSON pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSubresource {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
    /// The Scale's selector is the string form of the object's `spec.selector` (the built-in
    /// workloads), not a string read at `label_selector`.
    pub selector_from_spec: bool,
}

impl ScaleSubresource {
    /// From a CRD's `subresources.scale` (`.spec.replicas` style paths).
    fn of(v: &Value) -> Option<Self> {
        let pointer = |key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .filter(|p| p.starts_with('.') && p.len() > 1)
                .map(|p| p.replace('.', "/"))
        };
        Some(Self {
            spec_replicas: pointer("specReplicasPath")?,
            status_replicas: pointer("statusReplicasPath")?,
            label_selector: pointer("labelSelectorPath"),
            selector_from_spec: false,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub versions: Vec<ResourceVersion>,
    /// Built-in kinds accept strategic merge patches; custom resources do not.
    pub builtin: bool,
    /// Another resource whose storage this one shares, with the `apiVersion` objects are stored
    /// in (events.k8s.io/v1 Events are core/v1 Events, each served in its own shape).
    pub stored_as: Option<(GroupResource, &'static str)>,
}

/// The warning kube-apiserver answers requests to a deprecated CRD version with: its
/// `deprecationWarning`, or `group/version Kind is deprecated; use group/newer Kind` naming the
/// newest served, not deprecated version newer than it.
fn deprecation_warning(v: &Value, spec: &Value, group: &str, kind: &str) -> Option<String> {
    if v.get("deprecated").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    if let Some(text) = v.get("deprecationWarning").and_then(Value::as_str) {
        return Some(text.to_owned());
    }
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut text = format!("{group}/{name} {kind} is deprecated");
    let newer = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter(|o| o.get("deprecated").and_then(Value::as_bool) != Some(true))
        .filter_map(|o| o.get("name").and_then(Value::as_str))
        .filter(|o| kube_version_order(o) > kube_version_order(name))
        .max_by_key(|o| kube_version_order(o));
    if let Some(newer) = newer {
        text.push_str(&format!("; use {group}/{newer} {kind}"));
    }
    Some(text)
}

/// Orders version names as Kubernetes does: `v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`
/// > names of another form.
fn kube_version_order(name: &str) -> (u8, u64, u8, u64) {
    let Some(rest) = name.strip_prefix('v') else {
        return (0, 0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return (0, 0, 0, 0);
    };
    let tail = &rest[digits..];
    if tail.is_empty() {
        return (1, major, 3, 0);
    }
    for (stage, rank) in [("beta", 2), ("alpha", 1)] {
        if let Some(n) = tail.strip_prefix(stage)
            && let Ok(minor) = n.parse::<u64>()
        {
            return (1, major, rank, minor);
        }
    }
    (0, 0, 0, 0)
}

impl ResourceType {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.resource)
    }

    /// The resource objects of this type are stored under.
    pub fn storage_gr(&self) -> GroupResource {
        match &self.stored_as {
            Some((gr, _)) => gr.clone(),
            None => self.group_resource(),
        }
    }

    /// Whether objects of this type are stored under `gr`; [`Self::storage_gr`] without the
    /// copy, for checks made per event and watcher.
    pub fn is_stored_as(&self, gr: &GroupResource) -> bool {
        match &self.stored_as {
            Some((stored, _)) => stored == gr,
            None => self.group == gr.group && self.resource == gr.resource,
        }
    }

    /// The `apiVersion` objects of this type are stored in.
    pub fn storage_api_version(&self) -> String {
        match &self.stored_as {
            Some((_, api_version)) => (*api_version).to_owned(),
            None => self.api_version(self.storage_version()),
        }
    }

    pub fn version(&self, name: &str) -> Option<&ResourceVersion> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn storage_version(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.storage)
            .or(self.versions.first())
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The field selector labels kube-apiserver accepts for this kind in `version`, each with the
    /// object path it compares: `metadata.name` and `metadata.namespace` everywhere (only the
    /// name and phase for Namespaces), the per-kind labels of the served built-ins, and a CRD
    /// version's `selectableFields`.
    pub fn field_selector_path(&self, version: &str, label: &str) -> Option<String> {
        let builtin_labels: &[&str] = match (self.builtin, self.group.as_str(), self.kind.as_str())
        {
            (true, "", "Namespace") => {
                return ["metadata.name", "status.phase"]
                    .contains(&label)
                    .then(|| label.to_owned());
            }
            (true, "", "Secret") => &["type"],
            (true, "", "Event") => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            _ => &[],
        };
        if label == "metadata.name" || label == "metadata.namespace" {
            return Some(label.to_owned());
        }
        if builtin_labels.contains(&label) {
            // An Event's `source` label is the reporting component of its source.
            return Some(if label == "source" {
                "source.component".to_owned()
            } else {
                label.to_owned()
            });
        }
        self.version(version)
            .filter(|v| v.selectable_fields.iter().any(|f| f == label))
            .map(|_| label.to_owned())
    }

    /// True when any version serves a `/status` subresource (status changes are isolated).
    pub fn has_status_subresource(&self) -> bool {
        self.versions.iter().any(|v| v.status_subresource)
    }

    /// The scale subresource of `version`, if it has one.
    pub fn scale(&self, version: &str) -> Option<&ScaleSubresource> {
        self.version(version).and_then(|v| v.scale.as_ref())
    }

    pub fn has_scale_subresource(&self) -> bool {
        self.versions.iter().any(|v| v.scale.is_some())
    }

    fn builtin(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        ResourceType {
            group: group.to_owned(),
            resource: resource.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            versions: vec![ResourceVersion {
                name: version.to_owned(),
                storage: true,
                status_subresource: status,
                printer_columns: Vec::new(),
                schema: None,
                compiled: None,
                selectable_fields: Vec::new(),
                scale: None,
                cel: Default::default(),
                deprecation_warning: None,
            }],
            builtin: true,
            stored_as: None,
        }
    }

    fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// With the `/scale` subresource of the built-in workloads (`kubectl scale`).
    fn with_scale(mut self) -> Self {
        for v in &mut self.versions {
            v.scale = Some(ScaleSubresource {
                spec_replicas: "/spec/replicas".into(),
                status_replicas: "/status/replicas".into(),
                label_selector: None,
                selector_from_spec: true,
            });
        }
        self
    }

    /// Also served at `version`, converted from and to the storage version (listed after it:
    /// discovery prefers the storage version).
    fn also_served_at(mut self, version: &str) -> Self {
        if let Some(first) = self.versions.first() {
            self.versions.push(ResourceVersion {
                name: version.to_owned(),
                storage: false,
                ..first.clone()
            });
        }
        self
    }

    /// In the `all` category (`kubectl get all`), as kube-apiserver puts the workload kinds.
    fn in_all(mut self) -> Self {
        self.categories = vec!["all".to_owned()];
        self
    }

    /// Reads a CRD object into a resource type; `None` when the CRD lacks the fields that
    /// identify a resource (validation rejects such CRDs before they are stored).
    pub fn from_crd(crd: &Value) -> Option<Self> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let group = spec.get("group")?.as_str()?.to_owned();
        let resource = names.get("plural")?.as_str()?.to_owned();
        let kind = names.get("kind")?.as_str()?.to_owned();
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let versions = spec
            .get("versions")?
            .as_array()?
            .iter()
            .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(|v| {
                Some(ResourceVersion {
                    name: v.get("name")?.as_str()?.to_owned(),
                    storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                    status_subresource: v.pointer("/subresources/status").is_some(),
                    printer_columns: v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .map(|cols| cols.iter().filter_map(printer_column).collect())
                        .unwrap_or_default(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    compiled: v
                        .pointer("/schema/openAPIV3Schema")
                        .and_then(|s| strata_schema::StructuralSchema::compile(s).ok()),
                    selectable_fields: v
                        .get("selectableFields")
                        .and_then(Value::as_array)
                        .map(|fields| {
                            fields
                                .iter()
                                .filter_map(|f| f.get("jsonPath")?.as_str())
                                .map(|p| p.trim_start_matches('.').to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                    scale: v
                        .pointer("/subresources/scale")
                        .and_then(ScaleSubresource::of),
                    cel: crate::cel::Rules::new(v.pointer("/schema/openAPIV3Schema")),
                    deprecation_warning: deprecation_warning(v, spec, &group, &kind),
                })
            })
            .collect::<Vec<_>>();
        if versions.is_empty() {
            return None;
        }
        Some(ResourceType {
            group,
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| kind.to_lowercase()),
            list_kind: names
                .get("listKind")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{kind}List")),
            kind,
            resource,
            namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            versions,
            builtin: false,
            stored_as: None,
        })
    }
}

fn printer_column(col: &Value) -> Option<PrinterColumn> {
    let text = |k: &str| {
        col.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(PrinterColumn {
        name: col.get("name")?.as_str()?.to_owned(),
        type_: text("type"),
        format: text("format"),
        description: text("description"),
        priority: col.get("priority").and_then(Value::as_i64).unwrap_or(0),
        json_path: col.get("jsonPath")?.as_str()?.to_owned(),
    })
}

pub(crate) const CRD_GROUP: &str = "apiextensions.k8s.io";
pub(crate) const CRD_RESOURCE: &str = "customresourcedefinitions";
const RBAC: &str = crate::rbac::RBAC_GROUP;

/// The resource types served by the control plane, keyed by group and plural.
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<GroupResource, Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let b = ResourceType::builtin;
        let builtins = [
            b("", "v1", "namespaces", "Namespace", false, true).with_short_names(&["ns"]),
            b("", "v1", "secrets", "Secret", true, false),
            b("", "v1", "configmaps", "ConfigMap", true, false).with_short_names(&["cm"]),
            b("", "v1", "events", "Event", true, false).with_short_names(&["ev"]),
            b("", "v1", "serviceaccounts", "ServiceAccount", true, false).with_short_names(&["sa"]),
            // Workloads and networking are stored and served (nothing runs them: the control
            // plane has no nodes), so a Composition can compose them and clients see them.
            b("", "v1", "pods", "Pod", true, true)
                .with_short_names(&["po"])
                .in_all(),
            b("", "v1", "services", "Service", true, true)
                .with_short_names(&["svc"])
                .in_all(),
            b("", "v1", "endpoints", "Endpoints", true, false).with_short_names(&["ep"]),
            b(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
                true,
            )
            .with_short_names(&["pvc"]),
            b("", "v1", "limitranges", "LimitRange", true, false).with_short_names(&["limits"]),
            b(
                "",
                "v1",
                "replicationcontrollers",
                "ReplicationController",
                true,
                true,
            )
            .with_short_names(&["rc"])
            .with_scale()
            .in_all(),
            b(
                "",
                "v1",
                "persistentvolumes",
                "PersistentVolume",
                false,
                true,
            )
            .with_short_names(&["pv"]),
            b("", "v1", "resourcequotas", "ResourceQuota", true, true).with_short_names(&["quota"]),
            b("apps", "v1", "deployments", "Deployment", true, true)
                .with_scale()
                .with_short_names(&["deploy"])
                .in_all(),
            b("apps", "v1", "statefulsets", "StatefulSet", true, true)
                .with_scale()
                .with_short_names(&["sts"])
                .in_all(),
            b("apps", "v1", "daemonsets", "DaemonSet", true, true)
                .with_short_names(&["ds"])
                .in_all(),
            b("apps", "v1", "replicasets", "ReplicaSet", true, true)
                .with_scale()
                .with_short_names(&["rs"])
                .in_all(),
            b("batch", "v1", "jobs", "Job", true, true).in_all(),
            b("batch", "v1", "cronjobs", "CronJob", true, true)
                .with_short_names(&["cj"])
                .in_all(),
            b(
                "networking.k8s.io",
                "v1",
                "ingresses",
                "Ingress",
                true,
                true,
            )
            .with_short_names(&["ing"]),
            b(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                false,
            )
            .with_short_names(&["netpol"]),
            b(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
                true,
            )
            .with_short_names(&["pdb"]),
            b(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
                true,
            )
            .with_short_names(&["hpa"])
            .also_served_at("v1")
            .in_all(),
            b(
                "discovery.k8s.io",
                "v1",
                "endpointslices",
                "EndpointSlice",
                true,
                false,
            ),
            ResourceType {
                stored_as: Some((GroupResource::new("", "events"), "v1")),
                ..b("events.k8s.io", "v1", "events", "Event", true, false).with_short_names(&["ev"])
            },
            b("coordination.k8s.io", "v1", "leases", "Lease", true, false),
            b(
                CRD_GROUP,
                "v1",
                CRD_RESOURCE,
                "CustomResourceDefinition",
                false,
                true,
            )
            .with_short_names(&["crd", "crds"]),
            b(RBAC, "v1", "roles", "Role", true, false),
            b(RBAC, "v1", "rolebindings", "RoleBinding", true, false),
            b(RBAC, "v1", "clusterroles", "ClusterRole", false, false),
            b(
                RBAC,
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                false,
            ),
        ];
        Registry {
            types: builtins
                .into_iter()
                .map(|t| (t.group_resource(), Arc::new(t)))
                .collect(),
        }
    }

    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.types.get(gr).cloned()
    }

    /// The type served at `group/version` under plural `resource`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&GroupResource::new(group, resource))
            .filter(|t| t.version(version).is_some())
            .cloned()
    }

    /// Registers a CRD's resource; built-in resources are never replaced.
    pub fn insert(&mut self, t: ResourceType) {
        if self
            .types
            .get(&t.group_resource())
            .is_some_and(|existing| existing.builtin)
        {
            return;
        }
        self.types.insert(t.group_resource(), Arc::new(t));
    }

    pub fn remove(&mut self, gr: &GroupResource) {
        if self.types.get(gr).is_some_and(|t| !t.builtin) {
            self.types.remove(gr);
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Groups in discovery order (core first, then by name) with their versions, the preferred
    /// first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            let versions = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !versions.contains(&v.name) {
                    versions.push(v.name.clone());
                }
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selector_labels_are_those_kube_apiserver_supports_per_kind() {
        let builtins = Registry::with_builtins();
        let builtin = |group: &str, resource: &str| {
            builtins.get(&GroupResource::new(group, resource)).unwrap()
        };
        let crd = ResourceType::from_crd(
            &json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "selectableFields": [{"jsonPath": ".spec.color"}]},
                {"name": "v2", "served": true, "storage": false}]}}),
        )
        .unwrap();
        // (type, version, label, the path compared or None when unsupported, why)
        let cases: Vec<(ResourceType, &str, &str, Option<&str>, &str)> = vec![
            (
                (*builtin("", "configmaps")).clone(),
                "v1",
                "metadata.name",
                Some("metadata.name"),
                "every kind",
            ),
            (
                (*builtin("", "configmaps")).clone(),
                "v1",
                "data.mode",
                None,
                "a ConfigMap indexes no data",
            ),
            (
                (*builtin("", "secrets")).clone(),
                "v1",
                "type",
                Some("type"),
                "a Secret's type",
            ),
            (
                (*builtin("", "namespaces")).clone(),
                "v1",
                "status.phase",
                Some("status.phase"),
                "a Namespace's phase",
            ),
            (
                (*builtin("", "namespaces")).clone(),
                "v1",
                "metadata.namespace",
                None,
                "Namespaces have no namespace label",
            ),
            (
                (*builtin("", "events")).clone(),
                "v1",
                "source",
                Some("source.component"),
                "an Event's source is its component",
            ),
            (
                (*builtin("events.k8s.io", "events")).clone(),
                "v1",
                "reason",
                None,
                "events.k8s.io has only the defaults",
            ),
            (
                crd.clone(),
                "v1",
                "spec.color",
                Some("spec.color"),
                "a selectable field of v1",
            ),
            (
                crd.clone(),
                "v2",
                "spec.color",
                None,
                "selectable fields are per version",
            ),
        ];
        for (rt, version, label, want, why) in cases {
            assert_eq!(
                rt.field_selector_path(version, label).as_deref(),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn crd_with_two_served_versions_yields_both_with_storage_flag() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                {"name": "v0", "served": false, "storage": false}]}});
        let t = ResourceType::from_crd(&crd).unwrap();
        assert_eq!(t.versions.len(), 2);
        assert_eq!(t.storage_version(), "v1");
        assert!(!t.namespaced);
        assert_eq!(t.list_kind, "WidgetList");
        assert!(t.has_status_subresource());
    }

    #[test]
    fn a_deprecated_version_warns_with_its_text_or_names_the_newest_replacement() {
        let crd = |versions: Value| {
            json!({"spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "kind": "Gadget"}, "versions": versions}})
        };
        let t = ResourceType::from_crd(&crd(json!([
            {"name": "v1alpha1", "served": true, "storage": false, "deprecated": true},
            {"name": "v1beta1", "served": true, "storage": false, "deprecated": true,
             "deprecationWarning": "use v2"},
            {"name": "v1", "served": true, "storage": false},
            {"name": "v2", "served": true, "storage": true},
            {"name": "v3", "served": false, "storage": false},
        ])))
        .unwrap();
        let warning = |v: &str| t.version(v).unwrap().deprecation_warning.clone();
        assert_eq!(
            warning("v1alpha1").as_deref(),
            Some("example.com/v1alpha1 Gadget is deprecated; use example.com/v2 Gadget")
        );
        assert_eq!(warning("v1beta1").as_deref(), Some("use v2"));
        assert_eq!(warning("v1"), None);
        let only = ResourceType::from_crd(&crd(json!([
            {"name": "v1", "served": true, "storage": true, "deprecated": true}])))
        .unwrap();
        assert_eq!(
            only.version("v1").unwrap().deprecation_warning.as_deref(),
            Some("example.com/v1 Gadget is deprecated")
        );
    }

    #[test]
    fn ga_versions_are_preferred_over_beta_and_alpha() {
        let mut v = vec!["v1alpha1".to_owned(), "v1".to_owned(), "v2beta1".to_owned()];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, ["v1", "v2beta1", "v1alpha1"]);
    }
}
