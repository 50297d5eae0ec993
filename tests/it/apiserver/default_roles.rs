//! The default aggregated roles through `kubectl auth can-i`: `edit` (and so `admin`) reads and
//! writes coordination.k8s.io Leases as Kubernetes' bootstrap policy grants since 1.25, `view`
//! does not; core Events are readable by `view` and writable by `edit`, events.k8s.io Events
//! by neither, as in Kubernetes.

use super::fixture::ControlPlane;

fn can_i(cp: &ControlPlane, user: &str, verb: &str, resource: &str) -> String {
    let out = cp.kubectl(&["--as", user, "-n", "team", "auth", "can-i", verb, resource]);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        out.status.success(),
        answer == "yes",
        "exit code of can-i {verb} {resource} as {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer
}

#[test]
fn edit_and_admin_cover_leases_and_core_events_and_view_reads_core_events_only() {
    let cp = ControlPlane::start("default-roles");
    cp.kubectl_ok(&["create", "namespace", "team"]);
    for (user, role) in [("ed", "edit"), ("vi", "view"), ("ad", "admin")] {
        cp.kubectl_ok(&[
            "-n",
            "team",
            "create",
            "rolebinding",
            &format!("{user}-{role}"),
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
        ]);
    }
    // (user, verb, resource, answer, why)
    let cases = [
        (
            "ed",
            "create",
            "leases.coordination.k8s.io",
            "yes",
            "edit writes Leases",
        ),
        (
            "ed",
            "list",
            "leases.coordination.k8s.io",
            "yes",
            "edit reads Leases",
        ),
        (
            "ed",
            "delete",
            "leases.coordination.k8s.io",
            "yes",
            "edit deletes Leases",
        ),
        (
            "ad",
            "update",
            "leases.coordination.k8s.io",
            "yes",
            "admin aggregates edit",
        ),
        (
            "vi",
            "get",
            "leases.coordination.k8s.io",
            "no",
            "view has no Leases",
        ),
        ("ed", "create", "events", "yes", "edit writes core Events"),
        ("vi", "list", "events", "yes", "view reads core Events"),
        ("vi", "create", "events", "no", "view writes nothing"),
        (
            "ed",
            "list",
            "events.events.k8s.io",
            "no",
            "no role names events.k8s.io",
        ),
        (
            "vi",
            "list",
            "events.events.k8s.io",
            "no",
            "no role names events.k8s.io",
        ),
        (
            "ad",
            "create",
            "events.events.k8s.io",
            "no",
            "no role names events.k8s.io",
        ),
        (
            "ed",
            "create",
            "replicationcontrollers",
            "yes",
            "edit writes RCs",
        ),
        (
            "vi",
            "get",
            "replicationcontrollers/status",
            "yes",
            "view reads RC status",
        ),
        (
            "ed",
            "patch",
            "horizontalpodautoscalers.autoscaling",
            "yes",
            "edit writes HPAs",
        ),
    ];
    for (user, verb, resource, want, why) in cases {
        assert_eq!(
            can_i(&cp, user, verb, resource),
            want,
            "{user} {verb} {resource}: {why}"
        );
    }
    // What can-i says is what happens: an editor takes a Lease, a viewer may not read it.
    let lease = cp.dir.join("lease.yaml");
    std::fs::write(
        &lease,
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader, namespace: team}\nspec: {holderIdentity: ed-1, leaseDurationSeconds: 15}\n",
    )
    .unwrap();
    let path = lease.to_str().unwrap();
    cp.kubectl_ok(&["--as", "ed", "create", "-f", path]);
    let out = cp.kubectl(&["--as", "vi", "-n", "team", "get", "lease", "leader"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            r#"leases.coordination.k8s.io "leader" is forbidden: User "vi" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "team""#
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
