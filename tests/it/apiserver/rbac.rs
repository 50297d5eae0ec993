//! RBAC enforced on `strata up`, driven by the real kubectl. Until more users can authenticate,
//! the admin acts as a developer through impersonation (`--as`, `--as-group`), which runs each
//! request as that user: the same authorization path a developer's own credentials take.

use std::time::{Duration, Instant};

use super::fixture::ControlPlane;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_developer_with_edit_in_team_a_works_there_and_is_refused_team_b_secrets() {
    let cp = ControlPlane::start("rbac-team");
    for ns in ["team-a", "team-b"] {
        cp.kubectl_ok(&["create", "namespace", ns]);
        cp.kubectl_ok(&[
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=s3cret",
        ]);
    }
    cp.kubectl_ok(&[
        "-n",
        "team-a",
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    let alice = |args: &[&str]| {
        let mut all = vec!["--as", "alice"];
        all.extend_from_slice(args);
        cp.kubectl(&all)
    };

    // In team-a: create a ConfigMap, read the Secret.
    let out = alice(&[
        "-n",
        "team-a",
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = alice(&[
        "-n",
        "team-a",
        "get",
        "secret",
        "db",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "czNjcmV0");

    // In team-b: every Secret request is a 403 in kube-apiserver's words.
    let out = alice(&["-n", "team-b", "get", "secrets"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team-b""#
        ),
        "{}",
        stderr(&out)
    );
    let out = alice(&["-n", "team-b", "get", "secret", "db"]);
    assert!(
        stderr(&out).contains(
            r#"secrets "db" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "team-b""#
        ),
        "{}",
        stderr(&out)
    );
    let out = alice(&["-n", "team-b", "delete", "secret", "db"]);
    assert!(stderr(&out).contains("(Forbidden)"), "{}", stderr(&out));
    let out = alice(&["get", "secrets", "--all-namespaces"]);
    assert!(
        stderr(&out).contains("at the cluster scope"),
        "{}",
        stderr(&out)
    );
    cp.kubectl_ok(&["-n", "team-b", "get", "secret", "db"]);

    // `kubectl auth can-i` agrees with what happened.
    for (args, want) in [
        (vec!["create", "secrets", "-n", "team-a"], "yes"),
        (vec!["create", "secrets", "-n", "team-b"], "no"),
        (vec!["get", "secrets/db", "-n", "team-a"], "yes"),
        (vec!["create", "configmaps", "-n", "team-a"], "yes"),
        (vec!["create", "rolebindings", "-n", "team-a"], "no"),
        (vec!["list", "namespaces"], "no"),
    ] {
        let mut all = vec!["auth", "can-i"];
        all.extend(args.iter());
        let out = alice(&all);
        assert_eq!(
            stdout(&out).trim(),
            want,
            "can-i {args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            out.status.success(),
            want == "yes",
            "exit code of can-i {args:?}"
        );
    }
    let out = alice(&["auth", "can-i", "--list", "-n", "team-a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("secrets ") && l.contains("[get list watch")),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );

    // A group through --as-group: view in team-b reads ConfigMaps, never Secrets.
    cp.kubectl_ok(&[
        "-n",
        "team-b",
        "create",
        "rolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=devs",
    ]);
    let bob = |args: &[&str]| {
        let mut all = vec!["--as", "bob", "--as-group", "devs"];
        all.extend_from_slice(args);
        cp.kubectl(&all)
    };
    let out = bob(&["-n", "team-b", "get", "configmaps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bob(&["-n", "team-b", "get", "secrets"]);
    assert!(stderr(&out).contains("(Forbidden)"), "{}", stderr(&out));
    let out = cp.kubectl(&["--as", "bob", "-n", "team-b", "get", "configmaps"]);
    assert!(
        stderr(&out).contains(r#"User "bob" cannot list resource "configmaps""#),
        "without the group bob has nothing: {}",
        stderr(&out)
    );
}

#[test]
fn a_namespace_admin_cannot_grant_more_than_it_holds() {
    let cp = ControlPlane::start("rbac-escalation");
    cp.kubectl_ok(&["create", "namespace", "team-b"]);
    cp.kubectl_ok(&[
        "-n",
        "team-b",
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
    ]);
    let alice = |args: &[&str]| {
        let mut all = vec!["--as", "alice", "-n", "team-b"];
        all.extend_from_slice(args);
        cp.kubectl(&all)
    };
    // What admin holds in team-b may be granted there.
    let out = alice(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = alice(&[
        "create",
        "role",
        "reader",
        "--verb=get",
        "--resource=secrets",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // More is refused, naming what is missing.
    let out = alice(&[
        "create",
        "rolebinding",
        "alice-root",
        "--clusterrole=cluster-admin",
        "--user=alice",
    ]);
    assert!(
        stderr(&out).contains(
            r#"rolebindings.rbac.authorization.k8s.io "alice-root" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held"#
        ),
        "{}",
        stderr(&out)
    );
    let out = alice(&[
        "create",
        "role",
        "nodes",
        "--verb=create",
        "--resource=clusterroles",
    ]);
    assert!(
        stderr(&out).contains(r#"Resources:["clusterroles"], Verbs:["create"]"#),
        "{}",
        stderr(&out)
    );
    // Nothing was stored by the refused requests.
    let out = cp.kubectl(&["-n", "team-b", "get", "rolebinding", "alice-root"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}

#[test]
fn default_roles_exist_and_aggregated_roles_gather_their_parts() {
    let cp = ControlPlane::start("rbac-bootstrap");
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
    ] {
        cp.kubectl_ok(&["get", "clusterrole", role]);
    }
    let bindings = cp.kubectl_ok(&[
        "get",
        "clusterrolebinding",
        "system:public-info-viewer",
        "-o",
        "jsonpath={.subjects[*].name}",
    ]);
    assert_eq!(bindings, "system:authenticated system:unauthenticated");
    // The aggregation controller writes what edit gathers into edit itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resources = cp.kubectl_ok(&[
            "get",
            "clusterrole",
            "edit",
            "-o",
            "jsonpath={.rules[*].resources}",
        ]);
        if resources.contains("secrets") && resources.contains("configmaps") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edit never aggregated: {resources}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new part labelled for view reaches edit (nested aggregation), and so a developer.
    let part = cp.dir.join("part.yaml");
    std::fs::write(
        &part,
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: events-api-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [events.k8s.io], resources: [events], verbs: [get, list, watch]}
"#,
    )
    .unwrap();
    cp.kubectl_ok(&["apply", "-f", part.to_str().unwrap()]);
    cp.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    let out = cp.kubectl(&[
        "--as",
        "alice",
        "auth",
        "can-i",
        "list",
        "events.events.k8s.io",
    ]);
    assert_eq!(stdout(&out).trim(), "yes", "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cp
        .kubectl_ok(&[
            "get",
            "clusterrole",
            "edit",
            "-o",
            "jsonpath={.rules[*].apiGroups}",
        ])
        .contains("events.k8s.io")
    {
        assert!(
            Instant::now() < deadline,
            "edit never gathered events.k8s.io"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_token_file_user_is_authorized_as_itself_and_may_not_impersonate_without_the_verb() {
    let dir = super::fixture::temp_dir("rbac-users-file");
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.csv");
    std::fs::write(&users, "alice-token,alice,1001,\"dev\"\n").unwrap();
    let cp = ControlPlane::start_with("rbac-users", |c| {
        c.token_auth_file = Some(users.clone());
    });
    for ns in ["team-a", "team-b"] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }
    cp.kubectl_ok(&[
        "-n",
        "team-a",
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--group=dev",
    ]);
    cp.kubectl_ok(&["-n", "team-a", "create", "serviceaccount", "ci"]);
    let alice = |args: &[&str]| {
        let mut all = vec!["--token", "alice-token"];
        all.extend_from_slice(args);
        cp.kubectl(&all)
    };
    // Her own credentials, her group's binding.
    let out = alice(&[
        "-n",
        "team-a",
        "create",
        "configmap",
        "c",
        "--from-literal=a=b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = alice(&["-n", "team-b", "get", "secrets"]);
    assert!(
        stderr(&out).contains(
            r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team-b""#
        ),
        "{}",
        stderr(&out)
    );
    let out = alice(&["auth", "can-i", "create", "secrets", "-n", "team-a"]);
    assert_eq!(stdout(&out).trim(), "yes", "{}", stderr(&out));
    // Impersonating a user needs `impersonate` on users: refused, never ignored.
    let out = alice(&["--as", "admin", "-n", "team-b", "get", "secrets"]);
    assert!(
        stderr(&out).contains(
            r#"users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{}",
        stderr(&out)
    );
    let out = alice(&[
        "--as",
        "alice",
        "--as-group",
        "system:masters",
        "get",
        "namespaces",
    ]);
    assert!(
        stderr(&out).contains(r#"cannot impersonate resource "users""#),
        "{}",
        stderr(&out)
    );
    // edit may impersonate its namespace's ServiceAccounts; the request then runs as the account.
    let out = alice(&[
        "--as",
        "system:serviceaccount:team-a:ci",
        "-n",
        "team-a",
        "get",
        "configmaps",
    ]);
    assert!(
        stderr(&out).contains(
            r#"User "system:serviceaccount:team-a:ci" cannot list resource "configmaps""#
        ),
        "{}",
        stderr(&out)
    );
    // And her token for the account works, as the account.
    let token = alice(&["-n", "team-a", "create", "token", "ci"]);
    assert!(token.status.success(), "{}", stderr(&token));
    let out = cp.kubectl(&[
        "--token",
        stdout(&token).trim(),
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(
        stdout(&out),
        "system:serviceaccount:team-a:ci",
        "{}",
        stderr(&out)
    );
    drop(cp);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn edit_writes_the_workload_kinds_and_view_only_reads_them() {
    let cp = ControlPlane::start("rbac-workloads");
    cp.kubectl_ok(&["create", "namespace", "apps"]);
    for (binding, role, user) in [("alice-edit", "edit", "alice"), ("bob-view", "view", "bob")] {
        cp.kubectl_ok(&[
            "-n",
            "apps",
            "create",
            "rolebinding",
            binding,
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
        ]);
    }
    let as_user = |user: &str, args: &[&str]| {
        let mut all = vec!["--as", user, "-n", "apps"];
        all.extend_from_slice(args);
        cp.kubectl(&all)
    };
    // `kubectl autoscale` sends protobuf, not decoded for HorizontalPodAutoscalers yet: a file.
    let hpa = cp.dir.join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 3\n",
    )
    .unwrap();
    let hpa = hpa.to_string_lossy().into_owned();
    // edit and view gather their parts in the background: wait until edit holds Deployments.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stdout(&as_user(
        "alice",
        &["auth", "can-i", "create", "deployments.apps"],
    ))
    .trim()
        != "yes"
    {
        assert!(Instant::now() < deadline, "edit never gathered deployments");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        &["create", "deployment", "web", "--image=nginx:1.27"][..],
        &["create", "job", "once", "--image=busybox"],
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 3 * * *",
        ],
        &["scale", "deployment", "web", "--replicas=2"],
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ],
        &["create", "-f", &hpa],
        &["create", "ingress", "web", "--rule=shop.example/=web:80"],
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    ] {
        let out = as_user("alice", args);
        assert!(out.status.success(), "edit: {args:?}: {}", stderr(&out));
    }
    let listed = as_user(
        "bob",
        &[
            "get",
            "deploy,job,cronjob,pdb,hpa,ingress,svc,endpointslices",
            "-o",
            "name",
        ],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    for name in [
        "deployment.apps/web",
        "job.batch/once",
        "cronjob.batch/nightly",
        "poddisruptionbudget.policy/web",
        "horizontalpodautoscaler.autoscaling/web",
        "ingress.networking.k8s.io/web",
        "service/web",
    ] {
        assert!(
            stdout(&listed).contains(name),
            "view lists {name}: {}",
            stdout(&listed)
        );
    }
    let scale = as_user(
        "bob",
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/apps/deployments/web/scale",
        ],
    );
    assert!(
        scale.status.success(),
        "view reads the scale: {}",
        stderr(&scale)
    );
    for (args, verb, resource) in [
        (
            &["create", "deployment", "other", "--image=nginx"][..],
            "create",
            "deployments",
        ),
        (
            &["scale", "deployment", "web", "--replicas=5"],
            "patch",
            "deployments/scale",
        ),
        (&["delete", "job", "once"], "delete", "jobs"),
        (
            &["create", "job", "again", "--image=busybox"],
            "create",
            "jobs",
        ),
    ] {
        let out = as_user("bob", args);
        assert!(!out.status.success(), "view may not {args:?}");
        assert!(
            stderr(&out).contains(&format!(
                r#"User "bob" cannot {verb} resource "{resource}""#
            )),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        cp.kubectl_ok(&[
            "-n",
            "apps",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2",
        "view's scale was refused"
    );
    // Secrets stay out of view, and edit may not write EndpointSlices, as in Kubernetes.
    let out = as_user("bob", &["auth", "can-i", "get", "secrets"]);
    assert_eq!(stdout(&out).trim(), "no");
    let out = as_user(
        "alice",
        &["auth", "can-i", "create", "endpointslices.discovery.k8s.io"],
    );
    assert_eq!(stdout(&out).trim(), "no");
}
