//! The authorizer's view of every Role, ClusterRole, RoleBinding and ClusterRoleBinding,
//! indexed for the question it answers on every request: which bindings name this user or one
//! of its groups, cluster-wide or in this namespace.
//!
//! The cluster keeps it current under its state lock as RBAC objects are written (see
//! [`Index::apply`]), so a request never scans the bindings: it looks up the user and each group
//! (cluster scope and the request's namespace) and checks only the rules those bindings grant.
//! Aggregated ClusterRoles are resolved here whenever a ClusterRole changes, with the rules
//! Kubernetes' aggregation controller would write, so authorization never waits for that write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::attributes::Attributes;
use super::policy::{LabelSelector, PolicyRule, Subject, labels_of, rules_of, subjects_of};
use super::{Kind, RBAC_GROUP};
use crate::auth::{GROUP_MASTERS, UserInfo};

/// What a binding grants: the rules of a Role in its namespace, or of a ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleRef {
    /// A Role, named, in the binding's namespace.
    Role(String),
    /// A ClusterRole, named.
    ClusterRole(String),
}

impl RoleRef {
    /// Reads a RoleBinding's or ClusterRoleBinding's `roleRef`; `None` if it is missing or names a
    /// kind other than Role or ClusterRole.
    pub fn from_binding(obj: &Value) -> Option<Self> {
        let r = obj.get("roleRef")?;
        let name = r.get("name")?.as_str()?.to_owned();
        match r.get("kind")?.as_str()? {
            "Role" => Some(RoleRef::Role(name)),
            "ClusterRole" => Some(RoleRef::ClusterRole(name)),
            _ => None,
        }
    }

    /// The resource a `bind` check names for this reference.
    pub fn resource(&self) -> &'static str {
        match self {
            RoleRef::Role(_) => "roles",
            RoleRef::ClusterRole(_) => "clusterroles",
        }
    }

    /// The referenced role's name.
    pub fn name(&self) -> &str {
        match self {
            RoleRef::Role(n) | RoleRef::ClusterRole(n) => n,
        }
    }

    fn not_found(&self) -> String {
        match self {
            RoleRef::Role(n) => format!("role.{RBAC_GROUP} \"{n}\" not found"),
            RoleRef::ClusterRole(n) => format!("clusterrole.{RBAC_GROUP} \"{n}\" not found"),
        }
    }
}

#[derive(Debug)]
struct Binding {
    /// "" for a ClusterRoleBinding.
    namespace: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Debug, Default)]
struct ClusterRole {
    rules: Arc<Vec<PolicyRule>>,
    labels: BTreeMap<String, String>,
    aggregation: Option<Vec<LabelSelector>>,
}

/// Bindings of one subject, by scope ("" for cluster-wide, else the namespace).
type Scoped = HashMap<String, Vec<Arc<Binding>>>;

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Some rule of a binding of the user or one of its groups allows the request.
    Allow,
    /// No rule allows it; `reason` carries resolution errors (a binding to a missing role), as
    /// kube-apiserver appends them to the 403 (`RBAC: role… not found`).
    Deny {
        /// Why, for the 403's message; may be empty.
        reason: String,
    },
}

impl Decision {
    /// Whether the decision is [`Decision::Allow`].
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Every RBAC object's rules and bindings, indexed by subject; see the module docs.
#[derive(Debug, Default)]
pub struct Index {
    roles: HashMap<String, HashMap<String, Arc<Vec<PolicyRule>>>>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    /// Every ClusterRole's rules as authorization uses them: aggregated ones resolved.
    effective: HashMap<String, Arc<Vec<PolicyRule>>>,
    bindings: HashMap<(Kind, String, String), Arc<Binding>>,
    users: HashMap<String, Scoped>,
    groups: HashMap<String, Scoped>,
}

impl Index {
    /// Builds the index from stored objects of the four RBAC kinds.
    pub fn build<'a>(objects: impl IntoIterator<Item = (Kind, &'a Value)>) -> Self {
        let mut index = Index::default();
        for (kind, obj) in objects {
            index.upsert(kind, obj, false);
        }
        index.resolve_aggregation();
        index
    }

    /// Records a change: `Some(obj)` is the object as now stored, `None` that it is gone.
    pub fn apply(&mut self, kind: Kind, namespace: &str, name: &str, obj: Option<&Value>) {
        match obj {
            Some(obj) => self.upsert(kind, obj, true),
            None => self.remove(kind, namespace, name),
        }
        if kind == Kind::ClusterRole {
            self.resolve_aggregation();
        }
    }

    fn upsert(&mut self, kind: Kind, obj: &Value, replace: bool) {
        let name = crate::object::name(obj).to_owned();
        let namespace = crate::object::namespace(obj).to_owned();
        match kind {
            Kind::Role => {
                self.roles
                    .entry(namespace)
                    .or_default()
                    .insert(name, Arc::new(rules_of(obj)));
            }
            Kind::ClusterRole => {
                let aggregation = obj
                    .pointer("/aggregationRule/clusterRoleSelectors")
                    .and_then(Value::as_array)
                    .map(|sels| sels.iter().map(LabelSelector::from_value).collect());
                self.cluster_roles.insert(
                    name,
                    ClusterRole {
                        rules: Arc::new(rules_of(obj)),
                        labels: labels_of(obj),
                        aggregation,
                    },
                );
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                if replace {
                    self.remove(kind, &namespace, &name);
                }
                let scope = if kind == Kind::RoleBinding {
                    namespace.clone()
                } else {
                    String::new()
                };
                let Some(role_ref) = RoleRef::from_binding(obj) else {
                    return;
                };
                let binding = Arc::new(Binding {
                    subjects: subjects_of(obj, &scope),
                    namespace: scope.clone(),
                    role_ref,
                });
                for subject in &binding.subjects {
                    let map = match subject {
                        Subject::User(u) => self.users.entry(u.clone()).or_default(),
                        Subject::Group(g) => self.groups.entry(g.clone()).or_default(),
                    };
                    map.entry(scope.clone()).or_default().push(binding.clone());
                }
                self.bindings.insert((kind, namespace, name), binding);
            }
        }
    }

    fn remove(&mut self, kind: Kind, namespace: &str, name: &str) {
        match kind {
            Kind::Role => {
                if let Some(m) = self.roles.get_mut(namespace) {
                    m.remove(name);
                }
            }
            Kind::ClusterRole => {
                self.cluster_roles.remove(name);
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                let key = (kind, namespace.to_owned(), name.to_owned());
                let Some(old) = self.bindings.remove(&key) else {
                    return;
                };
                for subject in &old.subjects {
                    let map = match subject {
                        Subject::User(u) => self.users.get_mut(u),
                        Subject::Group(g) => self.groups.get_mut(g),
                    };
                    if let Some(list) = map.and_then(|m| m.get_mut(&old.namespace)) {
                        list.retain(|b| !Arc::ptr_eq(b, &old));
                    }
                }
            }
        }
    }

    /// Resolves every aggregated ClusterRole: the rules of every other ClusterRole one of its
    /// selectors matches, in name order, without duplicates — nested aggregation included
    /// (`admin` gathers `edit`, which gathers `view`). A cycle stops at the role already being
    /// resolved, which contributes its own stored rules.
    fn resolve_aggregation(&mut self) {
        let mut effective = HashMap::with_capacity(self.cluster_roles.len());
        for name in self.cluster_roles.keys() {
            let mut visiting = BTreeSet::new();
            effective.insert(name.clone(), self.resolve(name, &mut visiting));
        }
        self.effective = effective;
    }

    fn resolve<'a>(
        &'a self,
        name: &'a str,
        visiting: &mut BTreeSet<&'a str>,
    ) -> Arc<Vec<PolicyRule>> {
        let Some(role) = self.cluster_roles.get(name) else {
            return Arc::default();
        };
        let Some(selectors) = &role.aggregation else {
            return role.rules.clone();
        };
        if !visiting.insert(name) {
            return role.rules.clone();
        }
        let mut rules: Vec<PolicyRule> = Vec::new();
        for (other, candidate) in &self.cluster_roles {
            if other == name || !selectors.iter().any(|s| s.matches(&candidate.labels)) {
                continue;
            }
            let gathered = if visiting.contains(other.as_str()) {
                candidate.rules.clone()
            } else {
                self.resolve(other, visiting)
            };
            for rule in gathered.iter() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        visiting.remove(name);
        Arc::new(rules)
    }

    /// The rules each aggregated ClusterRole should carry, for the aggregation controller.
    pub fn aggregated_roles(&self) -> Vec<(String, Arc<Vec<PolicyRule>>)> {
        self.cluster_roles
            .iter()
            .filter(|(_, r)| r.aggregation.is_some())
            .map(|(n, _)| {
                (
                    n.clone(),
                    self.effective.get(n).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The rules a role reference grants in `namespace`, `None` when the role does not exist.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Option<Arc<Vec<PolicyRule>>> {
        match role_ref {
            RoleRef::Role(n) => self.roles.get(namespace)?.get(n).cloned(),
            RoleRef::ClusterRole(n) => self.effective.get(n).cloned(),
        }
    }

    /// Calls `visit` with the rules of every binding that applies to `user` in `namespace`
    /// (cluster bindings first, then the namespace's), until it returns true. Returns whether it
    /// did, and the resolution errors met on the way.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&[PolicyRule]) -> bool,
    ) -> (bool, Vec<String>) {
        let scopes: &[&str] = if namespace.is_empty() {
            &[""]
        } else {
            &["", namespace]
        };
        let mut errors = Vec::new();
        let mut seen: Vec<*const Binding> = Vec::new();
        for scope in scopes {
            let lists = std::iter::once(self.users.get(&user.name))
                .chain(user.groups.iter().map(|g| self.groups.get(g)))
                .flatten()
                .filter_map(|m| m.get(*scope));
            for list in lists {
                for binding in list {
                    let ptr = Arc::as_ptr(binding);
                    if seen.contains(&ptr) {
                        continue;
                    }
                    seen.push(ptr);
                    match self.role_ref_rules(&binding.role_ref, &binding.namespace) {
                        Some(rules) => {
                            if visit(&rules) {
                                return (true, errors);
                            }
                        }
                        None => errors.push(binding.role_ref.not_found()),
                    }
                }
            }
        }
        (false, errors)
    }

    /// Whether `user` may do what `attrs` describe: `system:masters` always may; otherwise a
    /// rule of a binding that applies must allow it. Default deny.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == GROUP_MASTERS) {
            return Decision::Allow;
        }
        let namespace = match attrs {
            Attributes::Resource(r) => r.namespace.as_str(),
            Attributes::NonResource { .. } => "",
        };
        let (allowed, errors) = self.visit_rules(user, namespace, |rules| {
            rules.iter().any(|r| r.allows(attrs))
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: resolution_reason(&errors),
            }
        }
    }

    /// Every rule `user` holds in `namespace` (cluster-wide ones included) and the resolution
    /// errors met (`RulesFor`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut all = Vec::new();
        let (_, errors) = self.visit_rules(user, namespace, |rules| {
            all.extend(rules.iter().cloned());
            false
        });
        (all, errors)
    }

    /// How many bindings are indexed (for tests).
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }
}

/// kube-apiserver's deny reason for resolution errors: `RBAC: ERR`, or `RBAC: [ERR, ERR]`.
pub fn resolution_reason(errors: &[String]) -> String {
    match errors {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}
