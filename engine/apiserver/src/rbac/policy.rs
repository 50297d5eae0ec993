//! Policy rules and how they match: a rule allowing a request (`RuleAllows`), one set of rules
//! covering another (`Covers`, for escalation checks), the label selectors of aggregation, and the
//! subjects of bindings — each as Kubernetes' `rbac/v1` helpers define them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::attributes::Attributes;

/// The wildcard of `verbs`: every verb.
pub const VERB_ALL: &str = "*";
/// The wildcard of `apiGroups`: every group.
pub const GROUP_ALL: &str = "*";
/// The wildcard of `resources`: every resource (and, as `*/sub`, every resource's subresource).
pub const RESOURCE_ALL: &str = "*";

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyRule {
    /// The verbs allowed, or [`VERB_ALL`].
    #[serde(default)]
    pub verbs: Vec<String>,
    /// The API groups of the resources ("" is the core group), or [`GROUP_ALL`].
    #[serde(default, rename = "apiGroups", skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// The resources, `resource/subresource` for a subresource, or [`RESOURCE_ALL`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(
        default,
        rename = "resourceNames",
        skip_serializing_if = "Vec::is_empty"
    )]
    /// When not empty, only objects with these names are covered.
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    /// Non-resource paths; a trailing `*` matches any suffix. Only meaningful in ClusterRoles.
    pub non_resource_urls: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl PolicyRule {
    /// A resource rule (bootstrap policy and tests).
    pub fn resource(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            api_groups: strings(groups),
            resources: strings(resources),
            ..Default::default()
        }
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            non_resource_urls: strings(urls),
            ..Default::default()
        }
    }

    /// This rule confined to the objects named `names`.
    pub fn with_names(mut self, names: &[&str]) -> Self {
        self.resource_names = strings(names);
        self
    }

    /// Whether this rule allows the request (`rbac.RuleAllows`).
    pub fn allows(&self, attrs: &Attributes) -> bool {
        match attrs {
            Attributes::Resource(r) => {
                self.verb_matches(&r.verb)
                    && self.group_matches(&r.api_group)
                    && self.resource_matches(&r.resource, &r.subresource)
                    && self.name_matches(&r.name)
            }
            Attributes::NonResource { verb, path } => {
                self.verb_matches(verb)
                    && self
                        .non_resource_urls
                        .iter()
                        .any(|rule| url_matches(rule, path))
            }
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == VERB_ALL || v == verb)
    }

    fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == GROUP_ALL || g == group)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == RESOURCE_ALL {
                return true;
            }
            if subresource.is_empty() {
                return r == resource;
            }
            // `pods/log`, or `*/log` for that subresource of every resource.
            match r.split_once('/') {
                Some((res, sub)) => sub == subresource && (res == resource || res == "*"),
                None => false,
            }
        })
    }

    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// Kubernetes' compact form of a rule, as escalation errors print it.
    pub fn compact(&self) -> String {
        let list = |k: &str, v: &[String]| {
            let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            format!("{k}:[{}]", quoted.join(" "))
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(list("APIGroups", &self.api_groups));
        }
        if !self.resources.is_empty() {
            parts.push(list("Resources", &self.resources));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(list("NonResourceURLs", &self.non_resource_urls));
        }
        if !self.resource_names.is_empty() {
            parts.push(list("ResourceNames", &self.resource_names));
        }
        parts.push(list("Verbs", &self.verbs));
        format!("{{{}}}", parts.join(", "))
    }

    /// The atomic rules this rule grants: one verb on one group/resource(/name), or one verb on
    /// one URL (`BreakdownRule`).
    pub fn breakdown(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let base = PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..Default::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for name in &self.resource_names {
                            out.push(PolicyRule {
                                resource_names: vec![name.clone()],
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(PolicyRule::urls(&[verb], &[url]));
            }
        }
        out
    }
}

/// A non-resource URL rule: exact, `*`, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// Whether `owner` grants everything `sub` does (`ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, VERB_ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, GROUP_ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, RESOURCE_ALL)
        || sub.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|u| owner.non_resource_urls.iter().any(|o| url_covers(o, u)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && urls && names
}

fn url_covers(owner: &str, sub: &str) -> bool {
    owner == sub
        || owner
            .strip_suffix('*')
            .is_some_and(|prefix| sub.starts_with(prefix.trim_end_matches('*')))
}

/// The atomic rules of `requested` that `owned` does not grant; empty when `owned` covers all
/// of them (`validation.Covers`).
pub fn uncovered(owned: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    requested
        .iter()
        .flat_map(PolicyRule::breakdown)
        .filter(|atom| !owned.iter().any(|o| rule_covers(o, atom)))
        .collect()
}

/// Reads `rules` of a Role or ClusterRole; unreadable entries are skipped (validation rejects
/// them before they are stored).
pub fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    obj.get("rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A `metav1.LabelSelector` of an aggregation rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    /// Reads a `labelSelector` object; unknown operators never match, so a malformed selector
    /// selects nothing rather than everything.
    pub fn from_value(v: &Value) -> Self {
        let match_labels = v
            .get("matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let expressions = v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(|exprs| {
                exprs
                    .iter()
                    .filter_map(|e| {
                        let values = e
                            .get("values")
                            .and_then(Value::as_array)
                            .map(|vs| {
                                vs.iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        Some((
                            e.get("key")?.as_str()?.to_owned(),
                            e.get("operator")?.as_str()?.to_owned(),
                            values,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        LabelSelector {
            match_labels,
            expressions,
        }
    }

    /// Whether labels match. As with `metav1.LabelSelectorAsSelector`, an empty selector
    /// matches everything; an unknown operator matches nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(key, op, values)| {
                let value = labels.get(key);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// An object's string-valued `metadata.labels`.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    crate::object::meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Who a binding's subject is, as authorization compares it: a user name (service accounts are
/// the user `system:serviceaccount:NS:NAME`) or a group name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A user name.
    User(String),
    /// A group name.
    Group(String),
}

/// The prefix of a ServiceAccount's user name, followed by `NAMESPACE:NAME`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The subjects of a binding in `namespace` ("" for a ClusterRoleBinding). A ServiceAccount
/// without a namespace means the binding's own namespace (`appliesToUser`); unknown kinds never
/// match anyone.
pub fn subjects_of(obj: &Value, namespace: &str) -> Vec<Subject> {
    let mut out: Vec<Subject> = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|subjects| {
            subjects
                .iter()
                .filter_map(|s| {
                    let kind = s.get("kind")?.as_str()?;
                    let name = s.get("name")?.as_str()?;
                    match kind {
                        "User" => Some(Subject::User(name.to_owned())),
                        "Group" => Some(Subject::Group(name.to_owned())),
                        "ServiceAccount" => {
                            let ns = s
                                .get("namespace")
                                .and_then(Value::as_str)
                                .filter(|n| !n.is_empty())
                                .unwrap_or(namespace);
                            (!ns.is_empty()).then(|| {
                                Subject::User(format!("{SERVICE_ACCOUNT_PREFIX}{ns}:{name}"))
                            })
                        }
                        _ => None,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subresource_rules_match_as_kubernetes_resource_matches() {
        let log = PolicyRule::resource(&["get"], &[""], &["pods/log"]);
        let any_status = PolicyRule::resource(&["get"], &[""], &["*/status"]);
        let pods = PolicyRule::resource(&["get"], &[""], &["pods"]);
        let get_log = Attributes::resource("get", "", "pods/log", "a", "p");
        let get_pod = Attributes::resource("get", "", "pods", "a", "p");
        let get_status = Attributes::resource("get", "", "pods/status", "a", "p");
        assert!(log.allows(&get_log));
        assert!(!log.allows(&get_pod), "pods/log does not grant pods");
        assert!(!pods.allows(&get_log), "pods does not grant pods/log");
        assert!(
            any_status.allows(&get_status),
            "*/status grants every status"
        );
        assert!(!any_status.allows(&get_pod));
    }

    #[test]
    fn resource_names_restrict_and_never_match_nameless_requests() {
        let rule = PolicyRule::resource(&["get", "list"], &[""], &["secrets"]).with_names(&["db"]);
        assert!(rule.allows(&Attributes::resource("get", "", "secrets", "a", "db")));
        assert!(!rule.allows(&Attributes::resource("get", "", "secrets", "a", "other")));
        assert!(
            !rule.allows(&Attributes::resource("list", "", "secrets", "a", "")),
            "a list has no name, so a named rule does not allow it"
        );
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let rule = PolicyRule::urls(&["get"], &["/healthz", "/apis/*"]);
        assert!(rule.allows(&Attributes::non_resource("get", "/healthz")));
        assert!(!rule.allows(&Attributes::non_resource("get", "/healthz/etcd")));
        assert!(rule.allows(&Attributes::non_resource("get", "/apis/x/v1")));
        assert!(!rule.allows(&Attributes::non_resource("get", "/apis")));
        assert!(!rule.allows(&Attributes::non_resource("post", "/healthz")));
        assert!(
            !rule.allows(&Attributes::resource("get", "", "pods", "", "")),
            "URL rules never grant resources"
        );
    }

    #[test]
    fn covers_finds_the_atomic_rules_an_owner_lacks() {
        let owned = vec![
            PolicyRule::resource(&["get", "list"], &[""], &["configmaps", "*/status"]),
            PolicyRule::resource(&["*"], &["example.org"], &["*"]),
            PolicyRule::urls(&["get"], &["/apis/*"]),
        ];
        assert!(
            uncovered(
                &owned,
                &[PolicyRule::resource(&["get"], &[""], &["configmaps"])]
            )
            .is_empty()
        );
        assert!(
            uncovered(
                &owned,
                &[PolicyRule::resource(&["get"], &[""], &["widgets/status"])]
            )
            .is_empty(),
            "*/status covers any status"
        );
        assert!(
            uncovered(
                &owned,
                &[PolicyRule::resource(&["get"], &[""], &["configmaps"]).with_names(&["a"])]
            )
            .is_empty(),
            "an unnamed rule covers a named one"
        );
        assert!(uncovered(&owned, &[PolicyRule::urls(&["get"], &["/apis/x"])]).is_empty());
        let missing = uncovered(
            &owned,
            &[PolicyRule::resource(
                &["get", "delete"],
                &[""],
                &["configmaps", "secrets"],
            )],
        );
        let missing: Vec<String> = missing.iter().map(PolicyRule::compact).collect();
        assert_eq!(
            missing,
            [
                r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}"#,
            ]
        );
    }

    #[test]
    fn label_selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> =
            [("a".to_owned(), "1".to_owned())].into_iter().collect();
        let sel = |v: Value| LabelSelector::from_value(&v);
        assert!(sel(json!({"matchLabels": {"a": "1"}})).matches(&labels));
        assert!(!sel(json!({"matchLabels": {"a": "2"}})).matches(&labels));
        assert!(
            sel(
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]})
            )
            .matches(&labels)
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "b", "operator": "Exists"}]}))
                .matches(&labels)
                .eq(&false)
        );
        assert!(sel(json!({})).matches(&labels), "empty matches everything");
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let binding = json!({"subjects": [
            {"kind": "ServiceAccount", "name": "ci"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": "ops"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Robot", "name": "r2"},
        ]});
        assert_eq!(
            subjects_of(&binding, "team-a"),
            [
                Subject::User("alice".into()),
                Subject::User("system:serviceaccount:ops:bot".into()),
                Subject::User("system:serviceaccount:team-a:ci".into()),
            ]
        );
        assert_eq!(
            subjects_of(&binding, ""),
            [
                Subject::User("alice".into()),
                Subject::User("system:serviceaccount:ops:bot".into()),
            ],
            "a cluster binding's service account needs a namespace"
        );
    }
}
