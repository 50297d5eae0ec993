//! The ClusterRole aggregation controller: writes into every ClusterRole with an
//! `aggregationRule` the rules of the ClusterRoles its selectors match, as kube-controller-
//! manager's `clusterrole-aggregation` controller does, so `kubectl get clusterrole edit -o yaml`
//! shows what `edit` grants. Authorization does not wait for this write: the index resolves
//! aggregation itself ([`super::index`]); this keeps the stored objects telling the same story.
//!
//! Each pass decides from the index and the stored roles ([`plan`], pure), then writes only the
//! roles whose rules differ; a pass that finds nothing to change writes nothing. Passes run at
//! start and after every committed ClusterRole change.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::policy::{PolicyRule, rules_of};
use super::{Kind, RBAC_GROUP};
use crate::cluster::Cluster;
use crate::resource::GroupResource;
use crate::selector::Selector;

const MANAGER: &str = "clusterrole-aggregation-controller";

/// The aggregated roles whose stored rules differ from what they aggregate, with the rules to
/// write.
pub fn plan(
    wanted: &[(String, Arc<Vec<PolicyRule>>)],
    stored: &BTreeMap<String, Vec<PolicyRule>>,
) -> Vec<(String, Vec<PolicyRule>)> {
    wanted
        .iter()
        .filter(|(name, rules)| stored.get(name).is_some_and(|s| s != rules.as_ref()))
        .map(|(name, rules)| (name.clone(), rules.as_ref().clone()))
        .collect()
}

/// One pass; returns how many roles were written.
pub async fn reconcile(cluster: &Cluster) -> usize {
    let Some(target) = cluster.target(RBAC_GROUP, "v1", Kind::ClusterRole.resource(), "") else {
        return 0;
    };
    let wanted = cluster.rbac.read().aggregated_roles();
    let Ok(page) = cluster.list(&target, false, &Selector::default(), None, None) else {
        return 0;
    };
    let stored: BTreeMap<String, Vec<PolicyRule>> = page
        .items
        .iter()
        .map(|o| (crate::object::name(o).to_owned(), rules_of(o)))
        .collect();
    let mut written = 0;
    for (name, rules) in plan(&wanted, &stored) {
        let result = cluster
            .modify(&target, &name, MANAGER, |obj: &mut Value| {
                obj["rules"] = json!(rules);
            })
            .await;
        match result {
            Ok(_) => written += 1,
            Err(e) if e.code() == 404 || e.code() == 409 => {}
            Err(e) => tracing::warn!("aggregating ClusterRole {name}: {e}"),
        }
    }
    written
}

/// Runs passes until the cluster's event hub closes.
pub async fn run(cluster: Arc<Cluster>) {
    let gr = GroupResource::new(RBAC_GROUP, Kind::ClusterRole.resource());
    let mut events = cluster.hub.subscribe();
    loop {
        reconcile(&cluster).await;
        loop {
            match events.recv().await {
                Ok(e) if e.gr == gr => break,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aggregated_roles_whose_rules_differ_are_written() {
        let view = vec![PolicyRule::resource(&["get"], &[""], &["configmaps"])];
        let wanted = vec![
            ("view".to_owned(), Arc::new(view.clone())),
            ("edit".to_owned(), Arc::new(view.clone())),
            ("gone".to_owned(), Arc::new(view.clone())),
        ];
        let stored: BTreeMap<String, Vec<PolicyRule>> = [
            ("view".to_owned(), view.clone()),
            ("edit".to_owned(), Vec::new()),
        ]
        .into_iter()
        .collect();
        assert_eq!(plan(&wanted, &stored), vec![("edit".to_owned(), view)]);
    }
}
