//! The default ClusterRoles and ClusterRoleBindings kube-apiserver creates at start
//! (`bootstrappolicy`), limited to the kinds this control plane serves: `cluster-admin`, the
//! aggregated `admin`/`edit`/`view` with their `system:aggregate-to-*` parts and labels, the
//! discovery, basic-user, public-info-viewer and service-account-issuer-discovery roles, and
//! their bindings to `system:masters`, `system:authenticated`, `system:unauthenticated` and
//! `system:serviceaccounts`. One deliberate difference: the issuer-discovery role is also bound
//! to everyone, since this control plane is an OIDC issuer clouds must reach anonymously.
//!
//!
//! Strata's own controllers (`strata up`) are one more identity here, least privilege as
//! Crossplane v2 has it: user [`CONTROLLERS_USER`] in [`CONTROLLERS_GROUP`] is bound to the
//! aggregated ClusterRole [`CONTROLLERS_ROLE`], which holds every ClusterRole labelled
//! [`AGGREGATE_TO_CONTROLLERS`] (or Crossplane's [`CROSSPLANE_AGGREGATE_TO_CROSSPLANE`], or
//! `deploy/`'s [`AGGREGATE_TO_STRATA`], so files written for either work unchanged). The base
//! part, [`CONTROLLERS_BASE_ROLE`], lists what the controllers and the managed-resource
//! runtime touch themselves; the controllers add one labelled role per XRD (its XR and claim
//! kinds), and the platform team one per other kind its Compositions compose.
//!
//! [`ensure`] creates what is missing and, as kube-apiserver does, adds the default rules a
//! default ClusterRole marked `rbac.authorization.kubernetes.io/autoupdate: "true"` lacks; an
//! operator who changes a default role and sets that annotation to `"false"` keeps the change
//! across restarts, and deleting one restores the default.

use serde_json::{Value, json};

use super::policy::PolicyRule;
use super::{Kind, RBAC_GROUP};
use crate::cluster::{Cluster, Subresource};
use crate::error::ApiError;

/// Label on a ClusterRole whose rules the default `admin` role aggregates.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// Label on a ClusterRole whose rules the default `edit` (and so `admin`) role aggregates.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// Label on a ClusterRole whose rules the default `view` (and so `edit` and `admin`) role
/// aggregates.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The user Strata's in-process controllers authenticate as (a client certificate).
pub const CONTROLLERS_USER: &str = "system:strata:controllers";
/// The group of that user.
pub const CONTROLLERS_GROUP: &str = "system:strata";
/// The aggregated ClusterRole bound to the controllers.
pub const CONTROLLERS_ROLE: &str = "strata:controllers";
/// What the controllers need whatever is composed.
pub const CONTROLLERS_BASE_ROLE: &str = "strata:controllers:base";
/// A ClusterRole with this label set to `"true"` grants its rules to the controllers.
pub const AGGREGATE_TO_CONTROLLERS: &str = "rbac.strata.dev/aggregate-to-controllers";
/// Crossplane's label for the same purpose, accepted unchanged.
pub const CROSSPLANE_AGGREGATE_TO_CROSSPLANE: &str = "rbac.crossplane.io/aggregate-to-crossplane";
/// The label `deploy/`'s ClusterRole `strata` aggregates on a cluster, accepted too.
pub const AGGREGATE_TO_STRATA: &str = "rbac.strata.dev/aggregate-to-strata";

const MANAGER: &str = "strata-apiserver";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"name": name, "labels": l,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> Value {
    json!({"apiVersion": format!("{RBAC_GROUP}/v1"), "kind": "ClusterRole",
        "metadata": metadata(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selects: &str) -> Value {
    let mut r = role(name, labels, Vec::new());
    r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]});
    r
}

fn binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": g}))
        .collect();
    json!({"apiVersion": format!("{RBAC_GROUP}/v1"), "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects})
}

/// Everything but `deletecollection` and `escalate`/`bind`: what the controllers do to a kind.
const CONTROL: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The base rules of the controllers, from what the controllers and the managed-resource
/// runtime read and write (engine/controllers, engine/managed). ConfigMaps and Secrets are in
/// it: Secrets carry connection details, and ConfigMaps are what the getting-started and most
/// first Compositions compose. Any other composed kind (a Deployment, a Service, another
/// provider's kind) needs a labelled ClusterRole.
fn controllers_base_rules() -> Vec<PolicyRule> {
    let r = PolicyRule::resource;
    let with_status = |plurals: &[&str]| -> Vec<String> {
        plurals
            .iter()
            .flat_map(|p| [(*p).to_owned(), format!("{p}/status")])
            .collect()
    };
    let rule = |verbs: &[&str], group: &str, resources: Vec<String>| {
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        r(verbs, &[group], &resources)
    };
    let apiextensions = [
        "compositeresourcedefinitions",
        "compositions",
        "compositionrevisions",
        "environmentconfigs",
    ];
    vec![
        // XRDs, Compositions, revisions, EnvironmentConfigs: the native kinds, and Crossplane's,
        // which are converted to native ones and get their conditions written back.
        rule(
            CONTROL,
            "apiextensions.strata.dev",
            with_status(&apiextensions),
        ),
        rule(
            CONTROL,
            "apiextensions.crossplane.io",
            with_status(&apiextensions),
        ),
        rule(CONTROL, "pkg.crossplane.io", with_status(&["functions"])),
        // Strata's CRDs at start, and the XR and claim CRDs of every XRD.
        r(
            CONTROL,
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
        ),
        // Connection Secrets, composed ConfigMaps and Secrets, the Namespaces claims live in.
        r(CONTROL, &[""], &["secrets", "configmaps"]),
        r(READ, &[""], &["namespaces"]),
        // Events on XRs, claims and managed resources (both APIs), leader election.
        r(
            &["create", "update", "patch"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        r(CONTROL, &["coordination.k8s.io"], &["leases"]),
        // Managed resources and ProviderConfigs of the built-in providers.
        rule(CONTROL, "rds.aws.strata.dev", with_status(&["dbinstances"])),
        rule(
            CONTROL,
            "iam.aws.strata.dev",
            with_status(&["roles", "openidconnectproviders"]),
        ),
        rule(
            CONTROL,
            "storage.gcp.strata.dev",
            with_status(&["buckets", "bucketiammembers"]),
        ),
        rule(CONTROL, "aws.strata.dev", with_status(&["providerconfigs"])),
        rule(CONTROL, "gcp.strata.dev", with_status(&["providerconfigs"])),
        // The per-XRD ClusterRoles (for the controllers, and for edit/view): they grant kinds
        // the controllers do not hold yet, hence `escalate`.
        r(
            &[
                "get", "list", "watch", "create", "update", "patch", "delete", "escalate",
            ],
            &[RBAC_GROUP],
            &["clusterroles"],
        ),
    ]
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let r = PolicyRule::resource;
    let mut controllers = role(CONTROLLERS_ROLE, &[], Vec::new());
    controllers["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {AGGREGATE_TO_CONTROLLERS: "true"}},
        {"matchLabels": {CROSSPLANE_AGGREGATE_TO_CROSSPLANE: "true"}},
        {"matchLabels": {AGGREGATE_TO_STRATA: "true"}},
    ]});
    vec![
        controllers,
        role(
            CONTROLLERS_BASE_ROLE,
            &[(AGGREGATE_TO_CONTROLLERS, "true")],
            controllers_base_rules(),
        ),
        role(
            "cluster-admin",
            &[],
            vec![r(&["*"], &["*"], &["*"]), PolicyRule::urls(&["*"], &["*"])],
        ),
        role(
            "system:discovery",
            &[],
            vec![PolicyRule::urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                r(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![PolicyRule::urls(
                &["get"],
                &["/livez", "/readyz", "/healthz", "/version", "/version/"],
            )],
        ),
        role(
            "system:service-account-issuer-discovery",
            &[],
            vec![PolicyRule::urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                r(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            aggregate_to_edit_rules(),
        ),
        role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            aggregate_to_view_rules(),
        ),
    ]
}

/// What `edit` adds to `view`: Kubernetes' `system:aggregate-to-edit`, for the kinds served
/// here (no `extensions` group). Like Kubernetes since 1.22, it does not write Endpoints or
/// EndpointSlices; like Kubernetes since 1.25 it reads and writes coordination.k8s.io Leases
/// (leader election by namespace editors); like Kubernetes, it grants no events.k8s.io Events,
/// only core Events (a ClusterRole labelled `aggregate-to-edit` adds them).
fn aggregate_to_edit_rules() -> Vec<PolicyRule> {
    let r = PolicyRule::resource;
    vec![
        r(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ],
        ),
        r(&["impersonate"], &[""], &["serviceaccounts"]),
        r(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ],
        ),
        r(&["create"], &[""], &["pods/eviction"]),
        r(
            WRITE,
            &[""],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        r(&["create"], &[""], &["serviceaccounts/token"]),
        r(
            WRITE,
            &["apps"],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        r(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        r(WRITE, &["batch"], &["jobs", "cronjobs"]),
        r(WRITE, &["policy"], &["poddisruptionbudgets"]),
        r(
            WRITE,
            &["networking.k8s.io"],
            &["networkpolicies", "ingresses"],
        ),
        r(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
    ]
}

/// What `view` reads: Kubernetes' `system:aggregate-to-view` for the kinds served here;
/// Secrets are deliberately not in it, and neither are Leases nor events.k8s.io Events (core
/// Events are), as in Kubernetes.
fn aggregate_to_view_rules() -> Vec<PolicyRule> {
    let r = PolicyRule::resource;
    vec![
        r(
            READ,
            &[""],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        r(
            READ,
            &[""],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        r(READ, &[""], &["namespaces"]),
        r(READ, &["discovery.k8s.io"], &["endpointslices"]),
        r(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
            ],
        ),
        r(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        r(
            READ,
            &["batch"],
            &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
        ),
        r(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        r(
            READ,
            &["networking.k8s.io"],
            &["networkpolicies", "ingresses", "ingresses/status"],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut controllers = binding(CONTROLLERS_ROLE, &[]);
    controllers["subjects"] =
        json!([{"kind": "User", "apiGroup": RBAC_GROUP, "name": CONTROLLERS_USER}]);
    vec![
        controllers,
        binding("cluster-admin", &["system:masters"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        // Kubernetes binds only `system:serviceaccounts`, and its documentation has the admin of
        // a cluster that is an issuer for a cloud add `system:unauthenticated`: this control
        // plane is such an issuer (a cloud fetches its discovery document and keys with no
        // credentials), so the binding says so from the start.
        binding(
            "system:service-account-issuer-discovery",
            &[
                "system:serviceaccounts",
                "system:authenticated",
                "system:unauthenticated",
            ],
        ),
    ]
}

/// Every default object with its kind.
pub fn objects() -> Vec<(Kind, Value)> {
    cluster_roles()
        .into_iter()
        .map(|o| (Kind::ClusterRole, o))
        .chain(
            cluster_role_bindings()
                .into_iter()
                .map(|o| (Kind::ClusterRoleBinding, o)),
        )
        .collect()
}

/// An existing default ClusterRole still marked `autoupdate: "true"` with the default rules it
/// lacks added (its other rules kept), as kube-apiserver reconciles its bootstrap roles at
/// start: a data dir from an earlier version gains the rules of newly served kinds. `None`
/// when nothing is missing, the operator turned autoupdate off, or the role is aggregated.
fn reconciled(existing: &Value, default: &Value) -> Option<Value> {
    let autoupdate = existing
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str);
    if autoupdate != Some("true") || default.get("aggregationRule").is_some() {
        return None;
    }
    let rules = |obj: &Value| -> Vec<PolicyRule> {
        obj.get("rules")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default()
    };
    let have = rules(existing);
    let missing: Vec<PolicyRule> = rules(default)
        .into_iter()
        .filter(|r| !have.contains(r))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut updated = existing.clone();
    updated["rules"] = json!(have.into_iter().chain(missing).collect::<Vec<_>>());
    Some(updated)
}

/// Creates every default object that does not exist, and reconciles the rules of existing
/// default ClusterRoles (`reconciled`); bindings and roles an operator changed are left alone.
/// Returns how many were created.
pub async fn ensure(cluster: &Cluster) -> Result<usize, ApiError> {
    let mut created = 0;
    for (kind, obj) in objects() {
        let target = cluster
            .target(RBAC_GROUP, "v1", kind.resource(), "")
            .ok_or_else(|| ApiError::Internal(format!("{} are not served", kind.resource())))?;
        let name = crate::object::name(&obj).to_owned();
        match cluster.get(&target, &name) {
            Ok(existing) => {
                if let Some(updated) = reconciled(&existing, &obj) {
                    match cluster
                        .update(&target, &name, updated, Subresource::Main, MANAGER)
                        .await
                    {
                        Ok(_) | Err(ApiError::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        match cluster.create(&target, obj, MANAGER).await {
            Ok(_) => created += 1,
            Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_role(name: &str) -> Value {
        cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap()
    }

    fn rules(role: &Value) -> Vec<PolicyRule> {
        serde_json::from_value(role["rules"].clone()).unwrap()
    }

    #[test]
    fn an_autoupdated_default_role_gains_the_missing_rules_and_keeps_its_own() {
        let default = default_role("system:aggregate-to-view");
        let mut old = default.clone();
        old["rules"] = json!([
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]},
            {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["things"]},
        ]);
        let updated = reconciled(&old, &default).expect("rules were missing");
        let have = rules(&updated);
        assert!(have.contains(&PolicyRule::resource(
            &["get"],
            &["example.com"],
            &["things"]
        )));
        for rule in rules(&default) {
            assert!(have.contains(&rule), "{rule:?}");
        }
        assert_eq!(
            have.len(),
            rules(&default).len() + 1,
            "no rule twice: {have:?}"
        );
        assert!(
            reconciled(&updated, &default).is_none(),
            "nothing more to add"
        );

        old["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
            json!("false");
        assert!(
            reconciled(&old, &default).is_none(),
            "autoupdate turned off"
        );
        let edit = default_role("edit");
        assert!(
            reconciled(&edit, &edit).is_none(),
            "aggregated roles are the controller's"
        );
    }
}
