//! The authorizer against a table of (subject, verb, resource, namespace) → allowed, with the
//! default roles plus a few bindings a team would make. Each row's answer is what kube-apiserver's
//! RBAC gives for the same objects; the reason column cites the rule of Kubernetes it rests on.

use serde_json::{Value, json};

use super::*;

fn rb(ns: &str, name: &str, role_kind: &str, role: &str, subjects: Value) -> (Kind, Value) {
    (
        Kind::RoleBinding,
        json!({"metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
            "subjects": subjects}),
    )
}

fn crb(name: &str, role: &str, subjects: Value) -> (Kind, Value) {
    (
        Kind::ClusterRoleBinding,
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects}),
    )
}

/// The default roles and bindings plus a team's own.
fn team_objects() -> Vec<(Kind, Value)> {
    let mut objects = bootstrap::objects();
    objects.extend([
        rb("team-a", "alice-edit", "ClusterRole", "edit", json!([{"kind": "User", "name": "alice"}])),
        rb("team-b", "devs-view", "ClusterRole", "view", json!([{"kind": "Group", "name": "devs"}])),
        crb("ops-admin", "admin", json!([{"kind": "Group", "name": "ops"}])),
        (
            Kind::Role,
            json!({"metadata": {"name": "db-secret", "namespace": "team-b"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}]}),
        ),
        rb("team-b", "bob-db", "Role", "db-secret", json!([{"kind": "User", "name": "bob"}])),
        (
            Kind::Role,
            json!({"metadata": {"name": "logs", "namespace": "team-a"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}]}),
        ),
        rb("team-a", "ci-logs", "Role", "logs", json!([{"kind": "ServiceAccount", "name": "ci"}])),
        (
            Kind::ClusterRole,
            json!({"metadata": {"name": "widgets-view",
                    "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": ["example.org"], "resources": ["widgets"]}]}),
        ),
        (
            Kind::ClusterRole,
            json!({"metadata": {"name": "debug"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]}]}),
        ),
        crb("carol-debug", "debug", json!([{"kind": "User", "name": "carol"}])),
        (
            Kind::ClusterRole,
            json!({"metadata": {"name": "compose-widgets",
                    "labels": {"rbac.crossplane.io/aggregate-to-crossplane": "true"}},
                "rules": [{"verbs": ["patch"], "apiGroups": ["example.org"], "resources": ["widgets"]}]}),
        ),
        rb("team-a", "erin-missing", "Role", "nope", json!([{"kind": "User", "name": "erin"}])),
    ]);
    objects
}

fn index() -> Index {
    let objects = team_objects();
    Index::build(objects.iter().map(|(k, o)| (*k, o)))
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    }
}

const AUTH: &str = "system:authenticated";

#[test]
fn the_authorizer_answers_as_kube_apiserver_rbac_for_the_same_bindings() {
    let alice = user("alice", &[AUTH]);
    let dave = user("dave", &["devs", AUTH]);
    let bob = user("bob", &[AUTH]);
    let ci = user(
        "system:serviceaccount:team-a:ci",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            AUTH,
        ],
    );
    let anonymous = user("system:anonymous", &["system:unauthenticated"]);
    let carol = user("carol", &[AUTH]);
    let olga = user("olga", &["ops", AUTH]);
    let admin = UserInfo::admin();
    let controllers = user(
        bootstrap::CONTROLLERS_USER,
        &[bootstrap::CONTROLLERS_GROUP, AUTH],
    );
    let r = Attributes::resource;
    let u = Attributes::non_resource;
    // (user, request, allowed, why — the Kubernetes rule the answer rests on)
    let rows: Vec<(&UserInfo, Attributes, bool, &str)> = vec![
        (
            &alice,
            r("create", "", "configmaps", "team-a", ""),
            true,
            "edit writes configmaps (system:aggregate-to-edit)",
        ),
        (
            &alice,
            r("get", "", "secrets", "team-a", "db"),
            true,
            "edit reads secrets in its namespace",
        ),
        (
            &alice,
            r("list", "", "secrets", "team-b", ""),
            false,
            "a RoleBinding grants only in its own namespace",
        ),
        (
            &alice,
            r("list", "", "secrets", "", ""),
            false,
            "a RoleBinding never grants at the cluster scope",
        ),
        (
            &alice,
            r("create", RBAC_GROUP, "rolebindings", "team-a", ""),
            false,
            "edit has no RBAC powers; admin does",
        ),
        (
            &alice,
            r("create", "", "serviceaccounts/token", "team-a", "ci"),
            true,
            "edit creates ServiceAccount tokens (kubectl create token)",
        ),
        (
            &alice,
            r("create", "", "serviceaccounts/token", "team-b", "ci"),
            false,
            "only in its namespace",
        ),
        (
            &alice,
            r("impersonate", "", "serviceaccounts", "team-a", "ci"),
            true,
            "edit may impersonate service accounts",
        ),
        (
            &alice,
            r("list", "example.org", "widgets", "team-a", ""),
            true,
            "aggregated to view, view aggregated to edit",
        ),
        (
            &alice,
            r("delete", "example.org", "widgets", "team-a", "w"),
            false,
            "the aggregated rule grants reads only",
        ),
        (
            &alice,
            r("get", "", "namespaces", "team-a", "team-a"),
            true,
            "view reads the namespace a binding is in",
        ),
        (
            &alice,
            r("list", "", "namespaces", "", ""),
            false,
            "listing namespaces is cluster scope",
        ),
        (
            &alice,
            r(
                "create",
                AUTHORIZATION_GROUP,
                "selfsubjectaccessreviews",
                "",
                "",
            ),
            true,
            "system:basic-user to system:authenticated",
        ),
        (
            &alice,
            u("get", "/healthz"),
            true,
            "system:public-info-viewer",
        ),
        (
            &alice,
            u("get", "/apis/example.org/v1"),
            true,
            "system:discovery to system:authenticated",
        ),
        (
            &alice,
            u("get", "/metrics"),
            false,
            "no rule names /metrics for alice",
        ),
        (
            &alice,
            u("get", "/openid/v1/jwks"),
            true,
            "issuer discovery: bound to everyone here (see bootstrap)",
        ),
        (
            &dave,
            r("list", "", "configmaps", "team-b", ""),
            true,
            "view through the devs group",
        ),
        (
            &dave,
            r("get", "", "secrets", "team-b", "db"),
            false,
            "view never reads secrets",
        ),
        (
            &dave,
            r("create", "", "configmaps", "team-b", ""),
            false,
            "view does not write",
        ),
        (
            &dave,
            r("watch", "example.org", "widgets", "team-b", ""),
            true,
            "aggregation reaches view",
        ),
        (
            &bob,
            r("get", "", "secrets", "team-b", "db"),
            true,
            "resourceNames allows the named secret",
        ),
        (
            &bob,
            r("get", "", "secrets", "team-b", "other"),
            false,
            "and no other",
        ),
        (
            &bob,
            r("list", "", "secrets", "team-b", ""),
            false,
            "a list has no name, so resourceNames cannot allow it",
        ),
        (
            &ci,
            r("get", "", "pods/log", "team-a", "web"),
            true,
            "a service account subject without namespace is the binding's",
        ),
        (
            &ci,
            r("get", "", "pods", "team-a", "web"),
            false,
            "pods/log does not grant pods",
        ),
        (
            &ci,
            u("get", "/.well-known/openid-configuration"),
            true,
            "system:service-account-issuer-discovery to system:serviceaccounts",
        ),
        (
            &anonymous,
            u("get", "/healthz"),
            true,
            "public-info-viewer is bound to system:unauthenticated",
        ),
        (&anonymous, u("get", "/version"), true, "so is /version"),
        (
            &anonymous,
            u("get", "/api"),
            false,
            "discovery is for authenticated users only (since 1.14)",
        ),
        (
            &anonymous,
            u("get", "/.well-known/openid-configuration"),
            true,
            "a cloud reads the issuer's discovery anonymously",
        ),
        (
            &anonymous,
            u("get", "/.well-known/other"),
            false,
            "only the two issuer documents",
        ),
        (
            &anonymous,
            r("list", "", "configmaps", "default", ""),
            false,
            "default deny",
        ),
        (
            &carol,
            u("get", "/debug/pprof/heap"),
            true,
            "a trailing * matches the prefix",
        ),
        (
            &carol,
            u("post", "/debug/pprof/heap"),
            false,
            "the rule's verbs are get only",
        ),
        (
            &olga,
            r("create", RBAC_GROUP, "rolebindings", "team-b", ""),
            true,
            "admin bound cluster-wide applies in every namespace",
        ),
        (
            &olga,
            r("list", RBAC_GROUP, "roles", "", ""),
            true,
            "and at the cluster scope for its namespaced rules",
        ),
        (
            &olga,
            r("create", RBAC_GROUP, "clusterroles", "", ""),
            false,
            "admin does not grant ClusterRoles",
        ),
        (
            &admin,
            r(
                "delete",
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "",
                "x",
            ),
            true,
            "system:masters may do anything",
        ),
        (
            &admin,
            u("put", "/anything"),
            true,
            "including any non-resource URL",
        ),
        (
            &controllers,
            r(
                "create",
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "",
                "",
            ),
            true,
            "strata:controllers:base, aggregated into strata:controllers",
        ),
        (
            &controllers,
            r("patch", "", "configmaps", "team-a", "x"),
            true,
            "ConfigMaps are in the controllers' base role",
        ),
        (
            &controllers,
            r("patch", "apps", "deployments", "team-a", "x"),
            false,
            "other composed kinds need a labelled ClusterRole",
        ),
        (
            &controllers,
            r("delete", "", "namespaces", "", "team-a"),
            false,
            "namespaces are only read",
        ),
        (
            &controllers,
            r("impersonate", "", "users", "", "strata-admin"),
            false,
            "no impersonation",
        ),
        (
            &controllers,
            r("patch", "example.org", "widgets", "team-a", "x"),
            true,
            "a ClusterRole with Crossplane's aggregate-to-crossplane label grants it",
        ),
    ];
    let index = index();
    for (who, attrs, want, why) in rows {
        assert_eq!(
            index.authorize(who, &attrs).allowed(),
            want,
            "{} {attrs:?}: {why}",
            who.name
        );
    }
}

#[test]
fn a_binding_to_a_missing_role_denies_with_the_reason_kube_apiserver_gives() {
    let decision = index().authorize(
        &user("erin", &[AUTH]),
        &Attributes::resource("get", "", "configmaps", "team-a", ""),
    );
    assert_eq!(
        decision,
        Decision::Deny {
            reason: r#"RBAC: role.rbac.authorization.k8s.io "nope" not found"#.into()
        }
    );
}

#[test]
fn a_denial_is_worded_as_kube_apiserver_words_it() {
    let alice = user("alice", &[AUTH]);
    let err = forbidden(
        &alice,
        &Attributes::resource("list", "", "secrets", "team-b", ""),
        "",
    );
    assert_eq!(err.code(), 403);
    assert_eq!(
        err.to_string(),
        r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team-b""#
    );
    let status = err.status();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"], json!({"kind": "secrets"}));
    let err = forbidden(
        &alice,
        &Attributes::resource("get", RBAC_GROUP, "clusterroles", "", "edit"),
        "",
    );
    assert_eq!(
        err.to_string(),
        r#"clusterroles.rbac.authorization.k8s.io "edit" is forbidden: User "alice" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
    );
    let err = forbidden(&alice, &Attributes::non_resource("get", "/metrics"), "");
    assert_eq!(
        err.to_string(),
        r#"forbidden: User "alice" cannot get path "/metrics""#
    );
}

#[test]
fn nested_aggregation_gathers_view_into_edit_and_edit_into_admin_in_name_order() {
    let index = index();
    let aggregated: std::collections::BTreeMap<String, Vec<PolicyRule>> = index
        .aggregated_roles()
        .into_iter()
        .map(|(n, r)| (n, r.as_ref().clone()))
        .collect();
    let view = &aggregated["view"];
    assert_eq!(
        view.last().unwrap().resources,
        ["widgets"],
        "system:aggregate-to-view then widgets-view, by name"
    );
    let edit = &aggregated["edit"];
    assert!(
        view.iter().all(|r| edit.contains(r)),
        "edit holds all of view"
    );
    let admin = &aggregated["admin"];
    assert!(
        edit.iter().all(|r| admin.contains(r)),
        "admin holds all of edit"
    );
    assert!(
        admin
            .iter()
            .any(|r| r.resources.contains(&"rolebindings".to_owned())),
        "and admin's own part"
    );
}

#[test]
fn index_follows_changes_and_removals() {
    let mut index = index();
    let bob = user("bob", &[AUTH]);
    let get_db = Attributes::resource("get", "", "secrets", "team-b", "db");
    assert!(index.authorize(&bob, &get_db).allowed());
    // The binding now names someone else: bob loses access.
    let (_, moved) = rb(
        "team-b",
        "bob-db",
        "Role",
        "db-secret",
        json!([{"kind": "User", "name": "zed"}]),
    );
    index.apply(Kind::RoleBinding, "team-b", "bob-db", Some(&moved));
    assert!(!index.authorize(&bob, &get_db).allowed());
    assert!(index.authorize(&user("zed", &[]), &get_db).allowed());
    // The role is deleted: nobody keeps access through the binding.
    index.apply(Kind::Role, "team-b", "db-secret", None);
    assert!(!index.authorize(&user("zed", &[]), &get_db).allowed());
    let before = index.binding_count();
    index.apply(Kind::RoleBinding, "team-b", "bob-db", None);
    assert_eq!(index.binding_count(), before - 1);
    // A new aggregated part reaches edit at once.
    let alice = user("alice", &[AUTH]);
    let create_gadget = Attributes::resource("create", "example.org", "gadgets", "team-a", "");
    assert!(!index.authorize(&alice, &create_gadget).allowed());
    let part = json!({"metadata": {"name": "gadgets-edit",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
        "rules": [{"verbs": ["create"], "apiGroups": ["example.org"], "resources": ["gadgets"]}]});
    index.apply(Kind::ClusterRole, "", "gadgets-edit", Some(&part));
    assert!(index.authorize(&alice, &create_gadget).allowed());
}

fn escalation(index: &Index, who: &UserInfo, kind: Kind, mut obj: Value) -> Result<(), ApiError> {
    escalation::admit(index, Some(who), kind, None, &mut obj)
}

#[test]
fn escalation_is_refused_unless_the_user_holds_the_rules_or_escalate_or_bind() {
    let mut idx = index();
    let alice = user("alice", &[AUTH]);
    let olga = user("olga", &["ops", AUTH]);
    let role =
        |rules: Value| json!({"metadata": {"name": "r", "namespace": "team-b"}, "rules": rules});
    // olga (admin everywhere) may create a Role with rules admin holds…
    escalation(
        &idx,
        &olga,
        Kind::Role,
        role(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}])),
    )
    .unwrap();
    // …but not one granting what admin lacks.
    let err = escalation(
        &idx,
        &olga,
        Kind::Role,
        role(json!([{"verbs": ["create"], "apiGroups": [RBAC_GROUP], "resources": ["clusterroles"]}])),
    )
    .unwrap_err();
    assert_eq!(err.code(), 403);
    assert_eq!(
        err.to_string(),
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"olga\" (groups=[\"ops\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"rbac.authorization.k8s.io\"], Resources:[\"clusterroles\"], Verbs:[\"create\"]}"
    );
    // olga may bind edit in team-b (she holds all of it there), alice may not (she holds it
    // only in team-a).
    let binding = |ns: &str| {
        json!({"metadata": {"name": "b", "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "mallory"}]})
    };
    escalation(&idx, &olga, Kind::RoleBinding, binding("team-b")).unwrap();
    escalation(&idx, &alice, Kind::RoleBinding, binding("team-a")).unwrap();
    assert_eq!(
        escalation(&idx, &alice, Kind::RoleBinding, binding("team-b"))
            .unwrap_err()
            .code(),
        403
    );
    // With `bind` on the ClusterRole edit, alice may bind it anywhere.
    let (k, binder) = (
        Kind::ClusterRole,
        json!({"metadata": {"name": "edit-binder"},
            "rules": [{"verbs": ["bind"], "apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "resourceNames": ["edit"]}]}),
    );
    idx.apply(k, "", "edit-binder", Some(&binder));
    let (k, b) = crb(
        "alice-binds",
        "edit-binder",
        json!([{"kind": "User", "name": "alice"}]),
    );
    idx.apply(k, "", "alice-binds", Some(&b));
    escalation(&idx, &alice, Kind::RoleBinding, binding("team-b")).unwrap();
    // A binding to a role that does not exist is a 404 (unless the user may bind it).
    let missing = json!({"metadata": {"name": "m", "namespace": "team-b"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "nope"}, "subjects": []});
    assert_eq!(
        escalation(&idx, &olga, Kind::RoleBinding, missing)
            .unwrap_err()
            .code(),
        404
    );
    // Only cluster-admins may set an aggregationRule.
    let aggregating = json!({"metadata": {"name": "gather"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}});
    let err = escalation(&idx, &olga, Kind::ClusterRole, aggregating.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("must have cluster-admin privileges to use the aggregationRule"),
        "{err}"
    );
    escalation(&idx, &UserInfo::admin(), Kind::ClusterRole, aggregating).unwrap();
}

#[test]
fn rbac_objects_are_validated_with_the_field_named() {
    let idx = index();
    let invalid = |kind: Kind, obj: Value| {
        let err = escalation::admit(&idx, None, kind, None, &mut obj.clone()).unwrap_err();
        assert_eq!(err.code(), 422, "{err}");
        err.to_string()
    };
    assert!(
        invalid(
            Kind::Role,
            json!({"metadata": {"name": "r", "namespace": "a"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]})
        )
        .contains("rules[0].nonResourceURLs: Invalid value: [\"/x\"]: namespaced rules cannot apply to non-resource URLs")
    );
    assert!(
        invalid(
            Kind::ClusterRole,
            json!({"metadata": {"name": "r"}, "rules": [{"verbs": [], "apiGroups": [""], "resources": ["pods"]}]})
        )
        .contains("rules[0].verbs: Required value")
    );
    assert!(
        invalid(
            Kind::ClusterRoleBinding,
            json!({"metadata": {"name": "b"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "x"}, "subjects": []})
        )
        .contains("roleRef.kind: Unsupported value: \"Role\"")
    );
    assert!(
        invalid(
            Kind::ClusterRoleBinding,
            json!({"metadata": {"name": "b"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "x"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci"}]})
        )
        .contains("subjects[0].namespace: Required value")
    );
    // roleRef cannot change on update.
    let old = json!({"metadata": {"name": "b", "namespace": "a"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"}});
    let mut new = json!({"metadata": {"name": "b", "namespace": "a"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "edit"}});
    let err = escalation::admit(&idx, None, Kind::RoleBinding, Some(&old), &mut new).unwrap_err();
    assert!(err.to_string().contains("cannot change roleRef"), "{err}");
    // A User subject's apiGroup is defaulted.
    let mut b = json!({"metadata": {"name": "b", "namespace": "a"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}]});
    escalation::admit(&idx, None, Kind::RoleBinding, None, &mut b).unwrap();
    assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
}

#[test]
fn reviews_answer_for_the_requester_or_the_named_subject() {
    use review::{ReviewKind, review};
    let idx = index();
    let alice = user("alice", &[AUTH]);
    let ssar = |ns: &str| {
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": {"resourceAttributes": {"verb": "create", "resource": "secrets", "namespace": ns}}})
    };
    let answer = |kind, ns, body: Value| {
        review(&idx, &alice, kind, ns, &body).unwrap()["status"]["allowed"].clone()
    };
    assert_eq!(
        answer(ReviewKind::SelfSubjectAccess, None, ssar("team-a")),
        json!(true)
    );
    assert_eq!(
        answer(ReviewKind::SelfSubjectAccess, None, ssar("team-b")),
        json!(false)
    );
    let sar = json!({"spec": {"user": "dave", "groups": ["devs"],
        "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "team-b"}}});
    assert_eq!(
        answer(ReviewKind::SubjectAccess, None, sar.clone()),
        json!(true)
    );
    assert_eq!(
        review(
            &idx,
            &alice,
            ReviewKind::LocalSubjectAccess,
            Some("team-a"),
            &sar
        )
        .unwrap_err()
        .code(),
        422,
        "a local review must ask about its own namespace"
    );
    let rules = review(
        &idx,
        &alice,
        ReviewKind::SelfSubjectRules,
        None,
        &json!({"spec": {"namespace": "team-a"}}),
    )
    .unwrap();
    let resource_rules = rules["status"]["resourceRules"].as_array().unwrap();
    assert!(
        resource_rules
            .iter()
            .any(|r| r["resources"]
                == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"]))
    );
    assert!(resource_rules.iter().any(|r| {
        r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("secrets"))
    }));
    assert_eq!(rules["status"]["incomplete"], json!(false));
    assert!(
        rules["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/healthz")))
    );
}

#[test]
fn impersonation_needs_the_impersonate_verb_and_then_runs_as_the_impersonated_user() {
    use axum::http::HeaderValue;
    let rbac = Rbac::new(index());
    let mut headers = HeaderMap::new();
    headers.insert("impersonate-user", HeaderValue::from_static("alice"));
    let path = "/api/v1/namespaces/team-a/secrets";
    // alice may not impersonate users: 403 on the impersonation itself.
    let err = authorize_request(
        &rbac,
        Mode::Rbac,
        user("alice", &[AUTH]),
        "GET",
        path,
        None,
        &headers,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"users "alice" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    // The admin may; the request is then decided as alice.
    let as_alice = authorize_request(
        &rbac,
        Mode::Rbac,
        UserInfo::admin(),
        "GET",
        path,
        None,
        &headers,
    )
    .unwrap();
    assert_eq!(as_alice.name, "alice");
    let err = authorize_request(
        &rbac,
        Mode::Rbac,
        UserInfo::admin(),
        "GET",
        "/api/v1/namespaces/team-b/secrets",
        None,
        &headers,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team-b""#
    );
    // alice (edit in team-a) may impersonate a service account there, not elsewhere.
    let mut sa = HeaderMap::new();
    sa.insert(
        "impersonate-user",
        HeaderValue::from_static("system:serviceaccount:team-a:ci"),
    );
    let as_ci = authorize_request(
        &rbac,
        Mode::Rbac,
        user("alice", &[AUTH]),
        "GET",
        "/api/v1/namespaces/team-a/pods/web/log",
        None,
        &sa,
    )
    .unwrap();
    assert_eq!(as_ci.name, "system:serviceaccount:team-a:ci");
    sa.insert(
        "impersonate-user",
        HeaderValue::from_static("system:serviceaccount:team-b:ci"),
    );
    assert_eq!(
        authorize_request(
            &rbac,
            Mode::Rbac,
            user("alice", &[AUTH]),
            "GET",
            "/healthz",
            None,
            &sa
        )
        .unwrap_err()
        .code(),
        403
    );
    // Without RBAC everything passes, and impersonation still takes effect.
    let as_alice = authorize_request(
        &rbac,
        Mode::AlwaysAllow,
        user("x", &[]),
        "GET",
        path,
        None,
        &headers,
    )
    .unwrap();
    assert_eq!(as_alice.name, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_creates_what_is_missing_and_keeps_what_an_operator_changed() {
    let dir = std::env::temp_dir().join(format!("strata-rbac-bootstrap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let cluster = crate::cluster::Cluster::open(crate::store::Store::open(&dir).unwrap())
            .await
            .unwrap();
        let all = bootstrap::objects().len();
        assert_eq!(bootstrap::ensure(&cluster).await.unwrap(), all);
        assert_eq!(bootstrap::ensure(&cluster).await.unwrap(), 0, "idempotent");
        let t = cluster
            .target(RBAC_GROUP, "v1", "clusterroles", "")
            .unwrap();
        // An operator narrows view: a restart-time ensure restores the default rules while the
        // role is marked for autoupdate, as kube-apiserver does...
        let narrow = |autoupdate: &'static str| {
            move |o: &mut Value| {
                o["rules"] =
                    json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]);
                o["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
                    json!(autoupdate);
            }
        };
        cluster
            .modify(&t, "system:aggregate-to-view", "operator", narrow("true"))
            .await
            .unwrap();
        assert_eq!(bootstrap::ensure(&cluster).await.unwrap(), 0);
        let restored = cluster.get(&t, "system:aggregate-to-view").unwrap();
        assert!(policy::rules_of(&restored).len() > 1, "{restored}");
        // ...and leaves it so once the operator turned autoupdate off.
        cluster
            .modify(&t, "system:aggregate-to-view", "operator", narrow("false"))
            .await
            .unwrap();
        assert_eq!(bootstrap::ensure(&cluster).await.unwrap(), 0);
        let kept = cluster.get(&t, "system:aggregate-to-view").unwrap();
        assert_eq!(policy::rules_of(&kept).len(), 1);
        // The index saw the change: view no longer lists configmaps… only gets them.
        let viewer = user("v", &[]);
        let (_, b) = crb("v-view", "view", json!([{"kind": "User", "name": "v"}]));
        let bt = cluster
            .target(RBAC_GROUP, "v1", "clusterrolebindings", "")
            .unwrap();
        cluster.create(&bt, b, "test").await.unwrap();
        {
            let idx = cluster.rbac.read();
            assert!(
                idx.authorize(
                    &viewer,
                    &Attributes::resource("get", "", "configmaps", "x", "c")
                )
                .allowed()
            );
            assert!(
                !idx.authorize(
                    &viewer,
                    &Attributes::resource("list", "", "configmaps", "x", "")
                )
                .allowed()
            );
        }
        // A deleted default comes back.
        cluster
            .delete(&t, "view", &crate::cluster::DeleteOptions::default())
            .await
            .unwrap();
        assert_eq!(bootstrap::ensure(&cluster).await.unwrap(), 1);
    }
    // Reopened (once the writer thread has let go of the store), the index is rebuilt from it.
    let mut store = crate::store::Store::open(&dir);
    for _ in 0..100 {
        if store.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store = crate::store::Store::open(&dir);
    }
    let cluster = crate::cluster::Cluster::open(store.unwrap()).await.unwrap();
    assert!(
        cluster
            .rbac
            .read()
            .authorize(
                &user("v", &[]),
                &Attributes::resource("get", "", "configmaps", "x", "c")
            )
            .allowed()
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
