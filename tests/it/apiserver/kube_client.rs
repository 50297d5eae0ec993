//! kube-rs against the embedded control plane: watches, conflicts, server-side apply,
//! finalizers through a Controller, garbage collection, no-op writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use serde_json::json;

use super::fixture::ControlPlane;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some(
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    );
    c
}

fn api_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

/// Waits up to 5 s until `check` holds.
async fn eventually<F: Fn() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, check: F) {
    strata_test_support::eventually_async(what, Duration::from_secs(5), async || {
        check().await.then_some(())
    })
    .await
}

#[tokio::test]
async fn watcher_sees_creates_updates_and_deletes() {
    let cp = ControlPlane::start("watcher");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    let mut seen = Vec::new();
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            api.create(&PostParams::default(), &cm("a", &[("k", "1")]))
                .await
                .unwrap();
            api.patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": "2"}})),
            )
            .await
            .unwrap();
            api.delete("a", &DeleteParams::default()).await.unwrap();
        })
    };
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Apply(c) => seen.push(format!("apply {}", c.data.unwrap()["k"])),
            watcher::Event::Delete(c) => seen.push(format!("delete {}", c.metadata.name.unwrap())),
            _ => {}
        }
    }
    writer.await.unwrap();
    assert_eq!(seen, ["apply 1", "apply 2", "delete a"]);
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_conflicts() {
    let cp = ControlPlane::start("conflict");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let created = api
        .create(&PostParams::default(), &cm("c", &[("k", "1")]))
        .await
        .unwrap();
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    api.replace("c", &PostParams::default(), &fresh)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("k".into(), "3".into())]));
    let err = api
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let kube::Error::Api(status) = err else {
        unreachable!()
    };
    assert_eq!(status.reason, "Conflict");
    let again = api
        .create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&again),
        409,
        "creating an existing name is AlreadyExists"
    );
    assert_eq!(api_code(&api.get("missing").await.unwrap_err()), 404);
}

#[tokio::test]
async fn server_side_apply_tracks_owners_conflicts_and_force() {
    let cp = ControlPlane::start("ssa");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let one = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1", "b": "1"}});
    api.patch("s", &PatchParams::apply("one"), &Patch::Apply(&one))
        .await
        .unwrap();
    let two = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "2"}});
    let err = api
        .patch("s", &PatchParams::apply("two"), &Patch::Apply(&two))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    assert!(err.to_string().contains("conflict with \"one\""), "{err}");
    let forced = api
        .patch("s", &PatchParams::apply("two").force(), &Patch::Apply(&two))
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "2");
    let one_without_b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}});
    let after = api
        .patch(
            "s",
            &PatchParams::apply("one"),
            &Patch::Apply(&one_without_b),
        )
        .await
        .unwrap();
    assert_eq!(
        after.data.unwrap(),
        BTreeMap::from([("a".to_owned(), "2".to_owned())]),
        "b is dropped once its only manager stops applying it"
    );
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["two"]);
}

#[tokio::test]
async fn a_write_that_changes_nothing_keeps_the_resource_version_and_emits_no_event() {
    let cp = ControlPlane::start("noop");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let created = api
        .create(&PostParams::default(), &cm("n", &[("k", "1")]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let same = api
        .patch(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let replaced = api
        .replace("n", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}, "data": {"k": "1"}});
    let applied = api
        .patch("n", &PatchParams::apply("m"), &Patch::Apply(&apply))
        .await
        .unwrap();
    let applied_again = api
        .patch("n", &PatchParams::apply("m"), &Patch::Apply(&apply))
        .await
        .unwrap();
    assert_eq!(
        applied.metadata.resource_version, applied_again.metadata.resource_version,
        "re-applying is a no-op"
    );
    let mut events = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Modified(c) = ev {
            events.push(c.metadata.resource_version.unwrap());
        }
    }
    assert_eq!(
        events.len(),
        1,
        "only the first apply writes (it records the new owner); re-applying does not: {events:?}"
    );
}

#[tokio::test]
async fn a_watch_resumes_after_a_version_and_expired_versions_get_410() {
    let cp = ControlPlane::start_with("resume", |c| c.event_history = 5);
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let first = api
        .create(&PostParams::default(), &cm("r0", &[]))
        .await
        .unwrap();
    let first_rv = first.metadata.resource_version.unwrap();
    let second = api
        .create(&PostParams::default(), &cm("r1", &[]))
        .await
        .unwrap();
    let second_rv = second.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &cm("r2", &[]))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &second_rv)
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Added(c) = ev {
            names.push(c.metadata.name.unwrap());
        }
    }
    assert_eq!(names, ["r2"], "only events after the version are sent");
    for i in 3..12 {
        api.create(&PostParams::default(), &cm(&format!("r{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &first_rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn selectors_and_pagination_narrow_lists() {
    let cp = ControlPlane::start("select");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    for i in 0..5 {
        let mut c = cm(&format!("p{i}"), &[]);
        c.metadata.labels = Some(BTreeMap::from([(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        )]));
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let even = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 3);
    let named = api
        .list(&ListParams::default().fields("metadata.name=p1"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert!(rest.metadata.continue_.is_none());
    let all: Api<ConfigMap> = Api::all(cp.client().await);
    assert_eq!(
        all.list(&ListParams::default().labels("parity"))
            .await
            .unwrap()
            .items
            .len(),
        5
    );
}

#[tokio::test]
async fn deletion_waits_for_finalizers_and_garbage_collects_dependents() {
    let cp = ControlPlane::start("gc");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let mut owner = cm("owner", &[]);
    owner.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let owner_ref = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        block_owner_deletion: Some(true),
        ..Default::default()
    };
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner_ref]);
    api.create(&PostParams::default(), &child).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let marked = api.get("owner").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    eventually("the foreground owner's dependent is deleted", || async {
        api.get_opt("child").await.unwrap().is_none()
    })
    .await;
    eventually(
        "foregroundDeletion is released once no blocking dependent remains",
        || async {
            api.get("owner").await.unwrap().metadata.finalizers
                == Some(vec!["example.com/hold".to_owned()])
        },
    )
    .await;
    api.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(
        "the owner goes once its last finalizer is removed",
        || async { api.get_opt("owner").await.unwrap().is_none() },
    )
    .await;

    let orphan_owner = api
        .create(&PostParams::default(), &cm("o2", &[]))
        .await
        .unwrap();
    let mut kept = cm("kept", &[]);
    kept.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "o2".into(),
        uid: orphan_owner.metadata.uid.unwrap(),
        ..Default::default()
    }]);
    api.create(&PostParams::default(), &kept).await.unwrap();
    api.delete("o2", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaning owner is gone", || async {
        api.get_opt("o2").await.unwrap().is_none()
    })
    .await;
    let kept = api.get("kept").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "the dependent was orphaned, not deleted"
    );
}

#[derive(Debug)]
struct ReconcileError(String);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reconcile failed: {}", self.0)
    }
}

impl std::error::Error for ReconcileError {}

#[tokio::test]
async fn a_controller_with_a_finalizer_converges_and_cleans_up() {
    let cp = ControlPlane::start("controller");
    let client = cp.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let controller_api = api.clone();
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(
                move |obj: Arc<ConfigMap>, _ctx: Arc<()>| {
                    let api = controller_api.clone();
                    async move {
                        finalizer(&api, "example.com/cleanup", obj, |event| async {
                            match event {
                                Finalizer::Apply(c) => {
                                    let name = c.metadata.name.clone().unwrap_or_default();
                                    let patch = json!({"metadata": {"annotations": {"example.com/reconciled": "yes"}}});
                                    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                                        .await
                                        .map_err(|e| ReconcileError(e.to_string()))?;
                                    Ok(Action::await_change())
                                }
                                Finalizer::Cleanup(_) => Ok::<_, ReconcileError>(Action::await_change()),
                            }
                        })
                        .await
                        .map_err(|e| ReconcileError(e.to_string()))
                    }
                },
                |_obj, _err: &ReconcileError, _ctx| Action::requeue(Duration::from_millis(100)),
                Arc::new(()),
            )
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &cm("managed", &[]))
        .await
        .unwrap();
    eventually(
        "the controller adds its finalizer and reconciles",
        || async {
            let c = api.get("managed").await.unwrap();
            c.metadata
                .finalizers
                .unwrap_or_default()
                .contains(&"example.com/cleanup".to_owned())
                && c.metadata
                    .annotations
                    .unwrap_or_default()
                    .get("example.com/reconciled")
                    .map(String::as_str)
                    == Some("yes")
        },
    )
    .await;
    let settled = api.get("managed").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get("managed").await.unwrap().metadata.resource_version,
        settled,
        "a converged controller stops writing"
    );
    api.delete("managed", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the controller's cleanup releases the object", || async {
        api.get_opt("managed").await.unwrap().is_none()
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn status_is_isolated_and_generation_counts_only_spec_changes() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let cp = ControlPlane::start("status");
    let client = cp.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = crds.get("gadgets.example.com").await.unwrap();
    let conditions = established.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let gadget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
        "spec": {"size": 1}, "status": {"phase": "ignored on create"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &gadget).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is not taken from a create"
    );

    let main = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "sneaky"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );
    assert!(
        main.data.get("status").is_none(),
        "the main endpoint ignores status"
    );

    let status = api
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 99}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["phase"], "Ready");
    assert_eq!(status.data["spec"]["size"], 2, "/status ignores spec");
    assert_eq!(
        status.metadata.generation,
        Some(2),
        "a status change does not bump generation"
    );

    let labelled = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(2),
        "a metadata change does not bump generation"
    );
}
