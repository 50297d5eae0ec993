//! The object layer's I/O: which writes reach the store for each request, over a real store in
//! a temporary directory. The store's writer counts what it committed
//! ([`Cluster::commit_stats`]) and publishes every committed write to the watch hub, after the
//! commit and before the request is answered; a tap on the hub therefore sees exactly the
//! writes that reached the store, in order. Each test asserts them after every request: a no-op
//! and a failed precondition write nothing, a deletion held by finalizers writes its marking,
//! and the garbage collector's sweeps write one change per dependent.

use std::sync::Arc;

use serde_json::{Value, json};
use strata_test_support::TempDir;
use tokio::sync::broadcast;

use crate::cluster::{Cluster, DeleteOptions, Propagation, Subresource, Target};
use crate::error::ApiResult;
use crate::patch::PatchKind;
use crate::store::Store;
use crate::watch::{EventType, WatchEvent};

/// Sees the writes that reach the store.
struct Tap {
    cluster: Arc<Cluster>,
    events: broadcast::Receiver<Arc<WatchEvent>>,
    committed: u64,
    _dir: TempDir,
}

impl Tap {
    async fn open(name: &str) -> Self {
        let dir = TempDir::new(name);
        let cluster = Cluster::open(Store::open(dir.path()).expect("a store"))
            .await
            .expect("the object layer");
        let events = cluster.hub.subscribe();
        let committed = cluster.commit_stats().1;
        Self {
            cluster,
            events,
            committed,
            _dir: dir,
        }
    }

    /// The writes committed since the last call: `(type, name, resourceVersion)` in order.
    fn writes(&mut self) -> Vec<(EventType, String, u64)> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            let name = event.object()["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.push((event.type_, name, event.rv));
        }
        let committed = self.cluster.commit_stats().1;
        assert_eq!(
            committed - self.committed,
            out.len() as u64,
            "the store committed other writes than the hub saw: {out:?}"
        );
        self.committed = committed;
        out
    }

    /// Only the kinds and names of [`Tap::writes`].
    fn changes(&mut self) -> Vec<(EventType, String)> {
        self.writes()
            .into_iter()
            .map(|(type_, name, _)| (type_, name))
            .collect()
    }

    fn config_maps(&self) -> Target {
        self.cluster
            .target("", "v1", "configmaps", "default")
            .expect("ConfigMaps are served")
    }

    async fn create(&self, body: Value) -> Arc<Value> {
        self.cluster
            .create(&self.config_maps(), body, "test")
            .await
            .expect("create")
    }

    async fn merge(&self, name: &str, patch: Value) -> crate::error::ApiResult<Arc<Value>> {
        self.cluster
            .patch(
                &self.config_maps(),
                name,
                PatchKind::Merge,
                patch.to_string().as_bytes(),
                Subresource::Main,
                Some("test"),
                false,
            )
            .await
    }

    async fn delete(
        &self,
        name: &str,
        opts: &DeleteOptions,
    ) -> crate::error::ApiResult<Arc<Value>> {
        self.cluster.delete(&self.config_maps(), name, opts).await
    }
}

fn config_map(name: &str, data: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": "default" }, "data": data })
}

fn added(name: &str) -> (EventType, String) {
    (EventType::Added, name.to_owned())
}

fn modified(name: &str) -> (EventType, String) {
    (EventType::Modified, name.to_owned())
}

fn deleted(name: &str) -> (EventType, String) {
    (EventType::Deleted, name.to_owned())
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .expect("a resourceVersion")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_and_an_update_write_once_each_and_a_no_op_update_writes_nothing() {
    let mut tap = Tap::open("cluster-io-update").await;

    let created = tap.create(config_map("a", json!({ "k": "1" }))).await;
    let writes = tap.writes();
    assert_eq!(writes, vec![(EventType::Added, "a".into(), rv(&created))]);

    // The same object again: the stored one is returned, nothing is written.
    let t = tap.config_maps();
    let same = tap
        .cluster
        .update(&t, "a", (*created).clone(), Subresource::Main, "test")
        .await
        .expect("a no-op update");
    assert_eq!(rv(&same), rv(&created));
    assert_eq!(tap.changes(), vec![]);

    // A change: one write, at the next version.
    let mut changed = (*created).clone();
    changed["data"]["k"] = json!("2");
    let updated = tap
        .cluster
        .update(&t, "a", changed.clone(), Subresource::Main, "test")
        .await
        .expect("an update");
    assert_eq!(
        tap.writes(),
        vec![(EventType::Modified, "a".into(), rv(&updated))]
    );
    assert!(rv(&updated) > rv(&created));

    let mut stale = changed;
    stale["data"]["k"] = json!("3");
    stale["metadata"]["resourceVersion"] = json!(rv(&created).to_string());
    // A stale resourceVersion: a conflict, and nothing written.
    let error = tap
        .cluster
        .update(&t, "a", stale, Subresource::Main, "test")
        .await
        .expect_err("a stale update");
    assert_eq!(error.code(), 409, "{error}");
    assert_eq!(tap.changes(), vec![]);
    assert_eq!(tap.cluster.get(&t, "a").unwrap()["data"]["k"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_writes_only_what_changes_and_its_precondition_fails_without_a_write() {
    let mut tap = Tap::open("cluster-io-patch").await;
    let created = tap.create(config_map("a", json!({ "k": "1" }))).await;
    assert_eq!(tap.changes(), vec![added("a")]);

    // A patch that sets what is there: no write.
    let same = tap
        .merge("a", json!({ "data": { "k": "1" } }))
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&created));
    assert_eq!(tap.changes(), vec![]);

    // A change: one write.
    let patched = tap
        .merge("a", json!({ "data": { "k": "2" } }))
        .await
        .unwrap();
    assert_eq!(
        tap.writes(),
        vec![(EventType::Modified, "a".into(), rv(&patched))]
    );

    // Guarded by a version that is no longer current: a conflict, nothing written.
    let stale = json!({ "metadata": { "resourceVersion": rv(&created).to_string() },
                        "data": { "k": "3" } });
    let error = tap.merge("a", stale).await.expect_err("a stale patch");
    assert_eq!(error.code(), 409, "{error}");
    // A patch of an object that does not exist: not found, nothing written.
    let error = tap
        .merge("missing", json!({ "data": { "k": "1" } }))
        .await
        .expect_err("a patch of nothing");
    assert_eq!(error.code(), 404, "{error}");
    assert_eq!(tap.changes(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_held_by_finalizers_marks_once_and_the_last_finalizer_removes() {
    let mut tap = Tap::open("cluster-io-finalizers").await;
    let mut body = config_map("a", json!({}));
    body["metadata"]["finalizers"] = json!(["example.com/one", "example.com/two"]);
    let created = tap.create(body).await;
    assert_eq!(tap.changes(), vec![added("a")]);

    // A precondition on another uid: a conflict, nothing written.
    let error = tap
        .delete(
            "a",
            &DeleteOptions {
                precondition_uid: Some("another".into()),
                ..DeleteOptions::default()
            },
        )
        .await
        .expect_err("a delete of another uid");
    assert_eq!(error.code(), 409, "{error}");
    assert_eq!(tap.changes(), vec![]);

    // Finalizers hold it: one write marks it deleted.
    let marked = tap.delete("a", &DeleteOptions::default()).await.unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        tap.writes(),
        vec![(EventType::Modified, "a".into(), rv(&marked))]
    );
    // Deleting it again changes nothing.
    let again = tap.delete("a", &DeleteOptions::default()).await.unwrap();
    assert_eq!(rv(&again), rv(&marked));
    assert_eq!(tap.changes(), vec![]);

    // One finalizer goes: one write; the last goes: the object is removed, in one write.
    tap.merge(
        "a",
        json!({ "metadata": { "finalizers": ["example.com/two"] } }),
    )
    .await
    .unwrap();
    assert_eq!(tap.changes(), vec![modified("a")]);
    tap.merge("a", json!({ "metadata": { "finalizers": null } }))
        .await
        .unwrap();
    assert_eq!(tap.changes(), vec![deleted("a")]);
    let error = tap
        .cluster
        .get(&tap.config_maps(), "a")
        .expect_err("the object is gone");
    assert_eq!(error.code(), 404);
    assert!(rv(&created) < rv(&marked));
}

/// An owner ConfigMap and two dependents that block its foreground deletion; the sweeps
/// before any deletion write nothing.
async fn family(tap: &mut Tap) {
    let owner = tap.create(config_map("owner", json!({}))).await;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_owned();
    for name in ["child-1", "child-2"] {
        let mut body = config_map(name, json!({}));
        body["metadata"]["ownerReferences"] = json!([{ "apiVersion": "v1", "kind": "ConfigMap",
            "name": "owner", "uid": uid, "blockOwnerDeletion": true }]);
        tap.create(body).await;
    }
    while crate::gc::sweep(&tap.cluster).await.is_some() {}
    assert_eq!(
        tap.changes(),
        vec![added("owner"), added("child-1"), added("child-2")]
    );
}

/// Sweeps until there is nothing left to do; the changes of each sweep, sorted by name.
async fn sweeps(tap: &mut Tap) -> Vec<Vec<(EventType, String)>> {
    let mut out = Vec::new();
    while let Some(failed) = crate::gc::sweep(&tap.cluster).await {
        assert_eq!(failed, Vec::<String>::new());
        let mut changes = tap.changes();
        changes.sort_by(|a, b| a.1.cmp(&b.1));
        out.push(changes);
        assert!(out.len() < 10, "the sweeps do not settle: {out:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_garbage_collector_deletes_each_orphaned_dependent_with_one_write() {
    let mut tap = Tap::open("cluster-io-gc-background").await;
    family(&mut tap).await;

    tap.delete("owner", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(tap.changes(), vec![deleted("owner")]);
    assert_eq!(
        sweeps(&mut tap).await,
        vec![vec![deleted("child-1"), deleted("child-2")]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_deletion_removes_the_dependents_first_and_the_owner_last() {
    let mut tap = Tap::open("cluster-io-gc-foreground").await;
    family(&mut tap).await;

    let opts = DeleteOptions {
        propagation: Propagation::Foreground,
        ..DeleteOptions::default()
    };
    let marked = tap.delete("owner", &opts).await.unwrap();
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(tap.changes(), vec![modified("owner")]);

    // The dependents are deleted in the foreground too (marked, then removed once they have
    // no dependents of their own); the owner's finalizer goes only after them.
    let all: Vec<(EventType, String)> = sweeps(&mut tap).await.into_iter().flatten().collect();
    assert_eq!(all.last(), Some(&deleted("owner")), "{all:?}");
    let mut children: Vec<(EventType, String)> = all[..all.len() - 1].to_vec();
    children.sort_by_key(|(type_, name)| (name.clone(), type_.as_str()));
    assert_eq!(
        children,
        vec![
            deleted("child-1"),
            modified("child-1"),
            deleted("child-2"),
            modified("child-2"),
        ]
    );
    let position = |change: &(EventType, String)| all.iter().position(|c| c == change);
    for child in ["child-1", "child-2"] {
        assert!(
            position(&modified(child)) < position(&deleted(child)),
            "{all:?}"
        );
    }
}

/// Server-side apply, as `manager`, of ConfigMap `name` with the one data key `key`.
async fn apply_data(
    cluster: &Cluster,
    t: &Target,
    name: &str,
    key: &str,
    manager: &str,
) -> ApiResult<Arc<Value>> {
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {key: "v"}});
    cluster
        .patch(
            t,
            name,
            PatchKind::Apply,
            applied.to_string().as_bytes(),
            Subresource::Main,
            Some(manager),
            false,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_and_applies_of_one_object_all_land() {
    let mut tap = Tap::open("concurrent-writes").await;
    let (cluster, t) = (tap.cluster.clone(), tap.config_maps());
    let created = tap
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}}))
        .await;
    tap.changes();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (cluster, t) = (cluster.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let patch = json!({"metadata": {"labels": {format!("p{i}"): "x"}}});
                cluster
                    .patch(
                        &t,
                        "shared",
                        PatchKind::Merge,
                        patch.to_string().as_bytes(),
                        Subresource::Main,
                        Some("patcher"),
                        false,
                    )
                    .await
            } else {
                apply_data(&cluster, &t, "shared", &format!("k{i}"), &format!("m{i}")).await
            }
        }));
    }
    // And a new object applied by several managers at once: one create, then updates.
    for i in 0..6 {
        let (cluster, t) = (cluster.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("f{i}");
            apply_data(&cluster, &t, "fresh", &key, &key).await
        }));
    }
    let mut uids = std::collections::BTreeSet::new();
    for task in tasks {
        let obj = task.await.expect("a task").expect("a write");
        if obj["metadata"]["name"].as_str().unwrap_or_default() == "fresh" {
            uids.insert(
                obj["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let writes = tap.changes();
    assert_eq!(writes.len(), 30, "each write made one version: {writes:?}");
    let shared = cluster.get(&t, "shared").expect("shared");
    let mut expected_labels: Vec<String> = (0..24).step_by(2).map(|i| format!("p{i}")).collect();
    expected_labels.sort();
    let labels: Vec<String> = shared["metadata"]["labels"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(labels, expected_labels, "no patch lost");
    let data = shared["data"].as_object().expect("data");
    assert_eq!(data.len(), 12, "no apply lost: {data:?}");
    let managers: std::collections::BTreeSet<String> = crate::compact::managed_fields(&shared)
        .iter()
        .filter_map(|e| e.get("manager").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for i in (1..24).step_by(2) {
        assert!(managers.contains(&format!("m{i}")), "m{i} owns its field");
    }
    let fresh = cluster.get(&t, "fresh").expect("fresh");
    assert_eq!(
        fresh["data"].as_object().map(|d| d.len()),
        Some(6),
        "{fresh}"
    );
    assert_eq!(uids.len(), 1, "created once");
    assert_eq!(created["metadata"]["name"], "shared");
}

#[tokio::test]
async fn an_applied_body_is_read_as_json_or_as_yaml_with_one_outcome() {
    let mut tap = Tap::open("apply-bodies").await;
    let (cluster, t) = (tap.cluster.clone(), tap.config_maps());
    let apply = |name: &'static str, body: &'static str| {
        let (cluster, t) = (cluster.clone(), t.clone());
        async move {
            cluster
                .patch(
                    &t,
                    name,
                    PatchKind::Apply,
                    body.as_bytes(),
                    Subresource::Main,
                    Some("bodies"),
                    false,
                )
                .await
        }
    };
    // Block YAML (not JSON): read by the YAML parser.
    let yaml = apply(
        "from-yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  size: \"1\"\n  on: \"yes\"\n",
    )
    .await
    .expect("a YAML body applies");
    // JSON, as every client sends it: the same object.
    let json = apply(
        "from-json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-json"}, "data": {"size": "1", "on": "yes"}}"#,
    )
    .await
    .expect("a JSON body applies");
    assert_eq!(yaml["data"], json!({"size": "1", "on": "yes"}));
    assert_eq!(yaml["data"], json["data"]);
    // A duplicate key in JSON: the last one wins, as for a create (the HTTP layer warned or,
    // under fieldValidation=Strict, refused it first).
    let dup = apply(
        "dup",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}, "data": {"size": "1", "size": "2"}}"#,
    )
    .await
    .expect("a JSON body with a duplicate key applies");
    assert_eq!(dup["data"], json!({"size": "2"}));
    // Neither JSON nor YAML: one error, nothing written.
    tap.changes();
    let err = apply("broken", "{\"apiVersion\": \"v1\", \"kind\": [")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("error decoding YAML"), "{err}");
    assert!(tap.changes().is_empty(), "nothing written");
}
