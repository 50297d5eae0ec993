//! ClusterRoles that give Kubernetes' namespace roles an XRD's namespaced kinds, as Crossplane's
//! RBAC manager does with its aggregation labels: one role labelled to aggregate into `view`
//! (read the claims, or the XRs of a `Namespaced` XRD, and their status) and one into `edit`
//! (write them; `edit` aggregates into `admin`). A developer bound to `edit` in a namespace can
//! then claim a database there, and gains nothing in any other namespace.
//!
//! [`controller_role`] is the third, for Strata's own controllers (Crossplane v2's model): the
//! XR and claim kinds with their status, labelled `rbac.strata.dev/aggregate-to-controllers` so
//! the `strata:controllers` ClusterRole of `strata up` aggregates it.
//!
//! Cluster-scoped XRs are left out: a namespace role cannot grant them, and they stay the
//! platform team's. [`user_roles`] decides the roles from the XRD (pure); [`apply`] writes the
//! ones that differ from what the API server has, owned by the XRD so they go with it.

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use strata_core::model::{CompositeResourceDefinition, XrScope};
use strata_core::wire;

use crate::conditions;
use crate::error::{Error, Result};

pub(crate) const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub(crate) const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
pub(crate) const CROSSPLANE_AGGREGATE_TO_EDIT: &str = "rbac.crossplane.io/aggregate-to-edit";
pub(crate) const CROSSPLANE_AGGREGATE_TO_VIEW: &str = "rbac.crossplane.io/aggregate-to-view";
/// A ClusterRole with this label grants its rules to Strata's controllers (`strata up`'s
/// `strata:controllers` role aggregates it).
pub(crate) const AGGREGATE_TO_CONTROLLERS: &str = "rbac.strata.dev/aggregate-to-controllers";
/// Crossplane's label for the same purpose, which `strata up` accepts too.
pub(crate) const CROSSPLANE_AGGREGATE_TO_CROSSPLANE: &str =
    "rbac.crossplane.io/aggregate-to-crossplane";
/// Names the XRD a role was made for.
pub(crate) const LABEL_XRD: &str = "rbac.crossplane.io/xrd";

const READ: [&str; 3] = ["get", "list", "watch"];
const CONTROL: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];
const WRITE: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The plurals of the XRD's namespaced kinds: its claim kind, and its XR kind when namespaced.
fn namespaced_plurals(xrd: &CompositeResourceDefinition) -> Vec<String> {
    let spec = &xrd.spec;
    let mut plurals: Vec<String> = spec.claim_names.iter().map(|n| n.plural.clone()).collect();
    if spec.scope == Some(XrScope::Namespaced) {
        plurals.push(spec.names.plural.clone());
    }
    plurals
}

/// The ClusterRoles for `xrd` (none when it has no namespaced kind), in the form applied.
pub(crate) fn user_roles(xrd: &CompositeResourceDefinition) -> Vec<Value> {
    let plurals = namespaced_plurals(xrd);
    if plurals.is_empty() {
        return Vec::new();
    }
    let name = xrd.name_any();
    let group = &xrd.spec.group;
    let with_status: Vec<String> = plurals
        .iter()
        .flat_map(|p| [p.clone(), format!("{p}/status")])
        .collect();
    let role = |suffix: &str, labels: [&str; 2], rules: Value| {
        let mut metadata = json!({
            "name": format!("crossplane:composite:{name}:aggregate-to-{suffix}"),
            "labels": {labels[0]: "true", labels[1]: "true", LABEL_XRD: name},
        });
        if let Some(owner) = xrd.controller_owner_ref(&()) {
            metadata["ownerReferences"] = json!([owner]);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": metadata, "rules": rules})
    };
    vec![
        role(
            "edit",
            [AGGREGATE_TO_EDIT, CROSSPLANE_AGGREGATE_TO_EDIT],
            json!([{"apiGroups": [group], "resources": plurals, "verbs": WRITE}]),
        ),
        role(
            "view",
            [AGGREGATE_TO_VIEW, CROSSPLANE_AGGREGATE_TO_VIEW],
            json!([{"apiGroups": [group], "resources": with_status, "verbs": READ}]),
        ),
    ]
}

/// The ClusterRole granting the controllers the XRD's XR kind and claim kind (with status).
pub(crate) fn controller_role(xrd: &CompositeResourceDefinition) -> Value {
    let name = xrd.name_any();
    let spec = &xrd.spec;
    let resources: Vec<String> = std::iter::once(&spec.names.plural)
        .chain(spec.claim_names.iter().map(|n| &n.plural))
        .flat_map(|p| [p.clone(), format!("{p}/status")])
        .collect();
    let mut metadata = json!({
        "name": format!("strata:composite:{name}:aggregate-to-controllers"),
        "labels": {AGGREGATE_TO_CONTROLLERS: "true", LABEL_XRD: name},
    });
    if let Some(owner) = xrd.controller_owner_ref(&()) {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata,
        "rules": [{"apiGroups": [spec.group], "resources": resources, "verbs": CONTROL}]})
}

/// Applies the roles of `xrd` (the controllers' one when `controllers`, then the `edit`/`view`
/// ones when `users`) that differ from the API server's; writes nothing otherwise.
pub(crate) async fn apply(
    client: &Client,
    xrd: &CompositeResourceDefinition,
    controllers: bool,
    users: bool,
) -> Result<()> {
    let api: Api<ClusterRole> = Api::all(client.clone());
    let mut roles = Vec::new();
    if controllers {
        roles.push(controller_role(xrd));
    }
    if users {
        roles.extend(user_roles(xrd));
    }
    for desired in roles {
        let name = desired["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let what = format!("ClusterRole {name}");
        let observed = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("reading", what.clone(), e))?;
        let observed = observed
            .map(|r| serde_json::to_value(&r))
            .transpose()
            .map_err(|source| Error::Serialize {
                object: what.clone(),
                source,
            })?;
        if observed
            .as_ref()
            .is_some_and(|o| conditions::contains(o, &desired))
        {
            continue;
        }
        api.patch(
            &name,
            &PatchParams::apply(wire::FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(|e| Error::kube("applying", what, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xrd(scope: Option<&str>, claims: bool) -> CompositeResourceDefinition {
        let mut spec = json!({"group": "platform.example.org",
            "names": {"kind": "XDatabase", "plural": "xdatabases"},
            "versions": [{"name": "v1", "served": true, "referenceable": true}]});
        if claims {
            spec["claimNames"] = json!({"kind": "Database", "plural": "databases"});
        }
        if let Some(s) = scope {
            spec["scope"] = json!(s);
        }
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.strata.dev/v1alpha1",
            "kind": "CompositeResourceDefinition",
            "metadata": {"name": "xdatabases.platform.example.org", "uid": "u1"},
            "spec": spec}))
        .unwrap()
    }

    #[test]
    fn claims_aggregate_into_edit_for_writes_and_view_for_reads() {
        let roles = user_roles(&xrd(None, true));
        assert_eq!(roles.len(), 2);
        let edit = &roles[0];
        assert_eq!(
            edit["metadata"]["name"],
            "crossplane:composite:xdatabases.platform.example.org:aggregate-to-edit"
        );
        assert_eq!(edit["metadata"]["labels"][AGGREGATE_TO_EDIT], "true");
        assert_eq!(
            edit["rules"],
            json!([{"apiGroups": ["platform.example.org"], "resources": ["databases"], "verbs": WRITE}])
        );
        let view = &roles[1];
        assert_eq!(view["metadata"]["labels"][AGGREGATE_TO_VIEW], "true");
        assert_eq!(
            view["rules"][0]["resources"],
            json!(["databases", "databases/status"])
        );
        assert_eq!(
            view["metadata"]["ownerReferences"][0]["uid"], "u1",
            "owned by the XRD, so they go with it"
        );
    }

    #[test]
    fn the_controllers_get_the_xr_and_claim_kinds_whatever_the_scope() {
        let role = controller_role(&xrd(Some("Cluster"), true));
        assert_eq!(
            role["metadata"]["name"],
            "strata:composite:xdatabases.platform.example.org:aggregate-to-controllers"
        );
        assert_eq!(role["metadata"]["labels"][AGGREGATE_TO_CONTROLLERS], "true");
        assert_eq!(
            role["rules"],
            json!([{"apiGroups": ["platform.example.org"],
                "resources": ["xdatabases", "xdatabases/status", "databases", "databases/status"],
                "verbs": CONTROL}])
        );
        assert_eq!(role["metadata"]["ownerReferences"][0]["uid"], "u1");
    }

    #[test]
    fn namespaced_xrs_are_aggregated_and_cluster_scoped_ones_are_not() {
        let roles = user_roles(&xrd(Some("Namespaced"), false));
        assert_eq!(roles[0]["rules"][0]["resources"], json!(["xdatabases"]));
        assert!(
            user_roles(&xrd(Some("Cluster"), false)).is_empty(),
            "no namespaced kind, no roles"
        );
    }
}
