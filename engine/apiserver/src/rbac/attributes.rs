//! What a request asks to do, as Kubernetes' RBAC sees it: the verb, API group, resource,
//! subresource, name and namespace of a resource request, or the verb and path of a non-resource
//! request — computed from the method, path and query exactly as kube-apiserver's
//! `RequestInfoFactory` does, so rules mean here what they mean on a cluster.

/// A resource request's attributes (`authorizer.Attributes` with `ResourceRequest` true).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    /// The RBAC verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special verb such as `impersonate`, `bind` or `escalate`.
    pub verb: String,
    /// The API group; "" for the core group.
    pub api_group: String,
    /// The API version; `*` when the request does not name one (reviews).
    pub api_version: String,
    /// The plural resource name.
    pub resource: String,
    /// The subresource (`status`, `scale`, …); "" for the object itself.
    pub subresource: String,
    /// The object's name; "" for a list, a collection delete or a create without one.
    pub name: String,
    /// The namespace; "" for cluster-scoped resources and requests across all namespaces.
    pub namespace: String,
}

/// What a request asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A request for an API resource.
    Resource(ResourceAttributes),
    /// A request for any other path (`/healthz`, `/version`, discovery): the lower-case HTTP verb
    /// and the path.
    NonResource {
        /// The verb, e.g. `get`.
        verb: String,
        /// The request path, without query.
        path: String,
    },
}

impl Attributes {
    /// The RBAC verb, whichever the request.
    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.verb,
            Attributes::NonResource { verb, .. } => verb,
        }
    }

    /// A resource request's attributes, for tests and reviews.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes::Resource(ResourceAttributes {
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            api_version: "*".to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    /// A non-resource request's attributes.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes::NonResource {
            verb: verb.to_owned(),
            path: path.to_owned(),
        }
    }
}

/// Verbs that come from the path instead of the method (`/api/v1/watch/...`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Subresources of a namespace that are not resources in their own right.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// The attributes of a request with `method` on `path` with the raw `query` string.
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let non_resource = || Attributes::NonResource {
        verb: method.to_ascii_lowercase(),
        path: path.to_owned(),
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 {
        return non_resource();
    }
    let (api_group, rest) = match parts[0] {
        "api" => ("", &parts[1..]),
        "apis" if parts.len() >= 4 => (parts[1], &parts[2..]),
        _ => return non_resource(),
    };
    let mut r = ResourceAttributes {
        api_group: api_group.to_owned(),
        api_version: rest[0].to_owned(),
        ..Default::default()
    };
    let mut current = &rest[1..];
    let mut verb_from_method = false;
    if SPECIAL_VERBS.contains(&current[0]) {
        if current.len() < 2 {
            // kube-apiserver rejects this request; an empty verb matches only `*` rules.
            return Attributes::Resource(r);
        }
        r.verb = current[0].to_owned();
        current = &current[1..];
    } else {
        verb_from_method = true;
        r.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }
    if current[0] == "namespaces" && current.len() > 1 {
        r.namespace = current[1].to_owned();
        if current.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&current[2]) {
            current = &current[2..];
        }
    }
    let no_subresource_verb = r.verb == "proxy";
    r.resource = current[0].to_owned();
    if current.len() >= 2 {
        r.name = current[1].to_owned();
    }
    if current.len() >= 3 && !no_subresource_verb {
        r.subresource = current[2].to_owned();
    }
    if verb_from_method && r.name.is_empty() && r.verb == "get" {
        let watch = query_value(query, "watch")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        r.verb = if watch { "watch" } else { "list" }.to_owned();
        if let Some(name) = query_value(query, "fieldSelector")
            .and_then(|s| exact_name(&s))
            .filter(|n| valid_path_segment(n))
        {
            r.name = name;
        }
    }
    if verb_from_method && r.name.is_empty() && r.verb == "delete" {
        r.verb = "deletecollection".to_owned();
    }
    Attributes::Resource(r)
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The name a field selector pins with `metadata.name=NAME` (or `==`), as `RequiresExactMatch`.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        Some(value.trim().to_owned())
    })
}

fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str, ns: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: verb.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: ns.into(),
        })
    }

    #[test]
    fn attributes_are_what_kube_apiserver_computes_from_method_path_and_query() {
        // (method, path, query, expected, why)
        let cases: Vec<(&str, &str, Option<&str>, Attributes, &str)> = vec![
            (
                "GET",
                "/api/v1/namespaces/team-a/secrets",
                None,
                res("list", "", "secrets", "", "", "team-a"),
                "a GET without a name is a list",
            ),
            (
                "GET",
                "/api/v1/namespaces/team-a/secrets",
                Some("watch=true&resourceVersion=5"),
                res("watch", "", "secrets", "", "", "team-a"),
                "watch=true makes it a watch",
            ),
            (
                "GET",
                "/api/v1/namespaces/team-a/secrets",
                Some("fieldSelector=metadata.name%3Ddb"),
                res("list", "", "secrets", "", "db", "team-a"),
                "a field selector pinning the name authorizes as that name",
            ),
            (
                "GET",
                "/api/v1/namespaces/team-a/secrets/db",
                None,
                res("get", "", "secrets", "", "db", "team-a"),
                "a GET with a name is a get",
            ),
            (
                "POST",
                "/apis/example.org/v1/namespaces/x/widgets",
                None,
                res("create", "example.org", "widgets", "", "", "x"),
                "POST is create",
            ),
            (
                "PUT",
                "/apis/example.org/v1/namespaces/x/widgets/w/status",
                None,
                res("update", "example.org", "widgets", "status", "w", "x"),
                "a subresource",
            ),
            (
                "PATCH",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit",
                None,
                res(
                    "patch",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "edit",
                    "",
                ),
                "cluster-scoped: no namespace",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/x/configmaps",
                None,
                res("deletecollection", "", "configmaps", "", "", "x"),
                "DELETE without a name is deletecollection",
            ),
            (
                "GET",
                "/api/v1/namespaces/team-a",
                None,
                res("get", "", "namespaces", "", "team-a", "team-a"),
                "a namespace is in its own namespace",
            ),
            (
                "PUT",
                "/api/v1/namespaces/team-a/finalize",
                None,
                res("update", "", "namespaces", "finalize", "team-a", "team-a"),
                "finalize is a namespace subresource",
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/x/pods",
                None,
                res("watch", "", "pods", "", "", "x"),
                "the legacy watch path",
            ),
            (
                "GET",
                "/api/v1",
                None,
                Attributes::non_resource("get", "/api/v1"),
                "discovery of the core group is a non-resource request",
            ),
            (
                "GET",
                "/apis/rbac.authorization.k8s.io/v1",
                None,
                Attributes::non_resource("get", "/apis/rbac.authorization.k8s.io/v1"),
                "so is a group version",
            ),
            (
                "GET",
                "/healthz",
                None,
                Attributes::non_resource("get", "/healthz"),
                "health",
            ),
            (
                "POST",
                "/openapi/v3/apis/x/v1",
                None,
                Attributes::non_resource("post", "/openapi/v3/apis/x/v1"),
                "the non-resource verb is the lower-case method",
            ),
        ];
        for (method, path, query, want, why) in cases {
            assert_eq!(request_attributes(method, path, query), want, "{why}");
        }
    }
}
