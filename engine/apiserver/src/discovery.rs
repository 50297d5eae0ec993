//! Discovery documents (`/api`, `/apis`, group and group-version resource lists, `/version`),
//! built from the registry on every request so new CRDs appear at once. The OpenAPI documents
//! are [`crate::openapi`]'s.

use serde_json::{Value, json};

use crate::resource::{Registry, ResourceType};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A resource a handler answers instead of the store: the create-only review kinds.
pub(crate) struct HandledResource {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
}

/// The handled resources, listed in discovery beside the registry's.
pub(crate) const HANDLED: &[HandledResource] = &[
    HandledResource {
        group: crate::authn_api::GROUP,
        version: crate::authn_api::VERSION,
        resource: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
        verbs: &["create"],
    },
    HandledResource {
        group: crate::authn_api::GROUP,
        version: crate::authn_api::VERSION,
        resource: "tokenreviews",
        kind: "TokenReview",
        namespaced: false,
        verbs: &["create"],
    },
    HandledResource {
        group: crate::rbac::AUTHORIZATION_GROUP,
        version: "v1",
        resource: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        verbs: &["create"],
    },
    HandledResource {
        group: crate::rbac::AUTHORIZATION_GROUP,
        version: "v1",
        resource: "selfsubjectrulesreviews",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        verbs: &["create"],
    },
    HandledResource {
        group: crate::rbac::AUTHORIZATION_GROUP,
        version: "v1",
        resource: "subjectaccessreviews",
        kind: "SubjectAccessReview",
        namespaced: false,
        verbs: &["create"],
    },
    HandledResource {
        group: crate::rbac::AUTHORIZATION_GROUP,
        version: "v1",
        resource: "localsubjectaccessreviews",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
        verbs: &["create"],
    },
];

/// The registry's groups and versions with those of the handled resources.
pub(crate) fn served_groups(
    registry: &Registry,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut groups = registry.groups();
    for h in HANDLED {
        let versions = groups.entry(h.group.to_owned()).or_default();
        if !versions.iter().any(|v| v == h.version) {
            versions.push(h.version.to_owned());
        }
    }
    groups
}

fn handled_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static HandledResource> + 'a {
    HANDLED
        .iter()
        .filter(move |h| h.group == group && h.version == version)
}

/// A ServiceAccount's `token` subresource (TokenRequest).
fn is_service_accounts(t: &ResourceType) -> bool {
    t.builtin && t.group.is_empty() && t.resource == "serviceaccounts"
}

/// The Kubernetes version the control plane answers as.
pub(crate) const GIT_VERSION: &str = "v1.32.0-strata";

pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": GIT_VERSION, "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "", "goVersion": "", "compiler": "strata", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(json!({}));
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": preferred})
}

pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = served_groups(registry)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_doc(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn group(registry: &Registry, group: &str) -> Option<Value> {
    served_groups(registry)
        .get(group)
        .map(|v| group_doc(group, v))
}

fn resource_entries(t: &ResourceType) -> Vec<Value> {
    let mut main = json!({"name": t.resource, "singularName": t.singular, "namespaced": t.namespaced,
        "kind": t.kind, "verbs": VERBS});
    if !t.short_names.is_empty() {
        main["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        main["categories"] = json!(t.categories);
    }
    let mut out = vec![main];
    if t.has_status_subresource() {
        out.push(json!({"name": format!("{}/status", t.resource), "singularName": "", "namespaced": t.namespaced,
            "kind": t.kind, "verbs": ["get", "patch", "update"]}));
    }
    if t.has_scale_subresource() {
        out.push(json!({"name": format!("{}/scale", t.resource), "singularName": "", "namespaced": t.namespaced,
            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
    }
    if is_service_accounts(t) {
        out.push(
            json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
            "group": crate::authn_api::GROUP, "version": crate::authn_api::VERSION,
            "kind": "TokenRequest", "verbs": ["create"]}),
        );
    }
    out
}

/// The APIResourceList of `group/version`, `None` when nothing is served there.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = registry
        .all()
        .filter(|t| t.group == group && t.version(version).is_some())
        .flat_map(|t| resource_entries(t))
        .chain(handled_in(group, version).map(|h| {
            json!({"name": h.resource, "singularName": h.kind.to_lowercase(),
                "namespaced": h.namespaced, "kind": h.kind, "verbs": h.verbs})
        }))
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`), which kubectl asks for
/// first on `/api` and `/apis` to learn every resource in two requests.
pub(crate) const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header prefers aggregated discovery v2 over the plain documents: the first
/// media range that is either aggregated v2 or plain JSON decides.
pub(crate) fn wants_aggregated(accept: &str) -> bool {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        match (media, param("g")) {
            ("application/json", Some("apidiscovery.k8s.io"))
                if param("v") == Some("v2") && param("as") == Some("APIGroupDiscoveryList") =>
            {
                return true;
            }
            ("application/json" | "application/*" | "*/*", None) => return false,
            _ => {}
        }
    }
    false
}

fn discovery_resource(t: &ResourceType, version: &str) -> Value {
    let kind = json!({"group": t.group, "version": version, "kind": t.kind});
    let mut r = json!({"resource": t.resource, "responseKind": kind,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular, "verbs": VERBS});
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let mut subresources = Vec::new();
    if t.has_status_subresource() {
        subresources.push(json!({"subresource": "status", "responseKind": kind,
            "verbs": ["get", "patch", "update"]}));
    }
    if t.has_scale_subresource() {
        subresources.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"]}));
    }
    if is_service_accounts(t) {
        subresources.push(json!({"subresource": "token",
            "responseKind": {"group": crate::authn_api::GROUP, "version": crate::authn_api::VERSION, "kind": "TokenRequest"},
            "verbs": ["create"]}));
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

/// The `APIGroupDiscoveryList` of `/api` (`core`: the legacy group only) or `/apis` (every
/// named group), versions in preference order.
pub(crate) fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = served_groups(registry)
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .all()
                        .filter(|t| &t.group == group && t.version(v).is_some())
                        .map(|t| discovery_resource(t, v))
                        .chain(handled_in(group, v).map(|h| {
                            json!({"resource": h.resource,
                                "responseKind": {"group": h.group, "version": h.version, "kind": h.kind},
                                "scope": if h.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": h.kind.to_lowercase(), "verbs": h.verbs})
                        }))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_group_lists_namespaces_with_their_status_subresource() {
        let list = resource_list(&Registry::with_builtins(), "", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            names.contains(&"namespaces")
                && names.contains(&"namespaces/status")
                && names.contains(&"secrets")
        );
        assert!(
            !names.contains(&"leases"),
            "leases live in coordination.k8s.io"
        );
    }

    #[test]
    fn the_authentication_api_and_the_token_subresource_are_discovered() {
        let registry = Registry::with_builtins();
        let list = resource_list(&registry, "authentication.k8s.io", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["selfsubjectreviews", "tokenreviews"]);
        assert_eq!(list["resources"][0]["verbs"], json!(["create"]));
        assert!(group(&registry, "authentication.k8s.io").is_some());
        let core = resource_list(&registry, "", "v1").unwrap();
        let token = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts/token")
            .unwrap();
        assert_eq!(token["kind"], "TokenRequest");
        let aggregated_named = aggregated(&registry, false);
        let authn = aggregated_named["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "authentication.k8s.io")
            .unwrap();
        assert_eq!(
            authn["versions"][0]["resources"][0]["resource"],
            "selfsubjectreviews"
        );
        let aggregated_core = aggregated(&registry, true);
        let sa = aggregated_core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "serviceaccounts")
            .unwrap();
        assert_eq!(sa["subresources"][0]["subresource"], "token");
    }

    #[test]
    fn autoscaling_serves_hpas_at_v2_preferred_and_at_v1() {
        let registry = Registry::with_builtins();
        let doc = group(&registry, "autoscaling").unwrap();
        assert_eq!(doc["preferredVersion"]["version"], "v2");
        assert_eq!(doc["versions"][1]["groupVersion"], "autoscaling/v1");
        for v in ["v1", "v2"] {
            let list = resource_list(&registry, "autoscaling", v).unwrap();
            let names: Vec<&str> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert_eq!(
                names,
                [
                    "horizontalpodautoscalers",
                    "horizontalpodautoscalers/status"
                ],
                "{v}"
            );
        }
    }

    #[test]
    fn group_list_excludes_the_core_group() {
        let list = group_list(&Registry::with_builtins());
        let groups: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        assert_eq!(
            groups,
            vec![
                "apiextensions.k8s.io",
                "apps",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "autoscaling",
                "batch",
                "coordination.k8s.io",
                "discovery.k8s.io",
                "events.k8s.io",
                "networking.k8s.io",
                "policy",
                "rbac.authorization.k8s.io"
            ]
        );
    }

    #[test]
    fn kubectl_accept_header_selects_aggregated_discovery_and_plain_json_does_not() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(""));
    }

    #[test]
    fn aggregated_discovery_splits_the_core_group_from_named_groups() {
        let registry = Registry::with_builtins();
        let core = aggregated(&registry, true);
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let resources = items[0]["versions"][0]["resources"].as_array().unwrap();
        let cm = resources
            .iter()
            .find(|r| r["resource"] == "configmaps")
            .unwrap();
        assert_eq!(cm["scope"], "Namespaced");
        assert_eq!(cm["responseKind"]["kind"], "ConfigMap");
        let named = aggregated(&registry, false);
        assert!(
            named["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "apiextensions.k8s.io")
        );
    }
}
