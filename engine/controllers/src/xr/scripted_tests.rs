//! The XR controller's I/O sequences against a scripted API ([`strata_test_support::scripted`]):
//! a real `kube::Client` over a mock service that keeps the XR and its composed ConfigMaps as
//! an API server would (merge patches, server-side applies, deletes, resource versions) and
//! records every request. Each test drives the controller's entry point, [`super::reconcile`],
//! and asserts the exact requests — method, path and the fields that matter in their bodies —
//! in order, with nothing else sent. The emulator tests cover the same flows end to end; these
//! pin down which writes each step makes, and that a converged XR makes none.
//!
//! The Composition composes two ConfigMaps, declared `app` first, where `app` depends on
//! `config`: the dependency order, not the declaration order, decides what is applied first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http::{Method, StatusCode};
use kube::api::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;

use crate::cached::Cached;
use serde_json::{Value, json};
use strata_core::model::{CompositeResourceDefinition, Composition, CompositionRevision};
use strata_core::wire;
use strata_test_support::scripted::{
    self, APPLY_PATCH, Answer, MERGE_PATCH, ScriptedApi, Seen, assert_request, condition,
    conditions,
};

use super::{XrContext, reconcile};
use crate::kinds::Kind;
use crate::shared::Shared;

const XR: &str = "/apis/test.strata.dev/v1alpha1/xwidgets/xw1";
const XR_STATUS: &str = "/apis/test.strata.dev/v1alpha1/xwidgets/xw1/status";
const CONFIG: &str = "/api/v1/namespaces/default/configmaps/xw1-config";
const APP: &str = "/api/v1/namespaces/default/configmaps/xw1-app";
const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
/// The settings' default resync: how soon a converged XR is looked at again.
const RESYNC: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The scripted API server
// ---------------------------------------------------------------------------------------------

/// What the scripted API server holds: the XR, the composed objects by path, and the composed
/// objects whose apply it refuses.
struct Objects {
    xr: Value,
    composed: BTreeMap<String, Value>,
    refuse_apply: Vec<String>,
    rv: u64,
}

impl Objects {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// A merge patch of the XR (or its status), guarded by the resourceVersion it carries.
    fn patch_xr(&mut self, patch: &Value, status: bool) -> Answer {
        let guard = patch.pointer("/metadata/resourceVersion");
        if guard.is_some_and(|rv| Some(rv) != self.xr.pointer("/metadata/resourceVersion")) {
            return scripted::status(StatusCode::CONFLICT, "Conflict", "the object was modified");
        }
        let mut patch = patch.clone();
        if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        if status {
            // The status subresource ignores everything but the status.
            patch = json!({ "status": patch["status"] });
        }
        scripted::merge(&mut self.xr, &patch);
        self.xr["metadata"]["resourceVersion"] = json!(self.next_rv());
        (StatusCode::OK, self.xr.clone())
    }

    /// A server-side apply of a composed object: it becomes the applied object.
    fn apply(&mut self, path: &str, body: &Value) -> Answer {
        if self.refuse_apply.iter().any(|p| p == path) {
            return scripted::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "ConfigMap \"xw1-config\" is invalid: data: too long",
            );
        }
        let mut object = body.clone();
        object["metadata"]["uid"] = json!(format!("uid-{}", path.rsplit('/').next().unwrap_or("")));
        object["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.composed.insert(path.to_owned(), object.clone());
        (StatusCode::OK, object)
    }

    fn answer(&mut self, request: &Seen) -> Answer {
        let path = request.path.as_str();
        match (&request.method, path) {
            (&Method::PATCH, XR) => self.patch_xr(&request.body, false),
            (&Method::PATCH, XR_STATUS) => self.patch_xr(&request.body, true),
            (&Method::PATCH, p) if p.starts_with("/api/v1/namespaces/") => {
                self.apply(p, &request.body)
            }
            (&Method::GET, p) => match self.composed.get(p) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => scripted::not_found(p),
            },
            (&Method::DELETE, p) => match self.composed.remove(p) {
                Some(object) => (StatusCode::OK, object),
                None => scripted::not_found(p),
            },
            (&Method::POST, REVIEWS) => {
                let mut review = request.body.clone();
                review["status"] = json!({ "allowed": true });
                (StatusCode::CREATED, review)
            }
            (&Method::POST, EVENTS) => (StatusCode::CREATED, request.body.clone()),
            (_, p) => scripted::not_found(p),
        }
    }
}

/// The scripted API holding `xr`, and the controller's context over it.
struct Harness {
    objects: Arc<Mutex<Objects>>,
    api: ScriptedApi,
    ctx: Arc<XrContext>,
}

impl Harness {
    fn start(xr: Value) -> Self {
        let objects = Arc::new(Mutex::new(Objects {
            xr,
            composed: BTreeMap::new(),
            refuse_apply: Vec::new(),
            rv: 100,
        }));
        let served = objects.clone();
        let (client, api) =
            ScriptedApi::start(move |request| served.lock().unwrap().answer(request));
        let config_maps = Kind {
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("", "v1", "ConfigMap"),
                "configmaps",
            ),
            namespaced: true,
        };
        let shared = Shared::scripted(
            client,
            vec![composition()],
            vec![revision()],
            &[config_maps],
        )
        .expect("the shared state");
        let ctx = Arc::new(XrContext {
            shared,
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("test.strata.dev", "v1alpha1", "XWidget"),
                "xwidgets",
            ),
            namespaced: false,
            xrd: Arc::new(RwLock::new(xrd())),
        });
        Self { objects, api, ctx }
    }

    /// The XR as the API server has it now.
    fn xr(&self) -> Value {
        self.objects.lock().unwrap().xr.clone()
    }

    /// One reconcile of the XR as the API server has it.
    async fn reconcile(&self) -> Action {
        let xr: Cached = serde_json::from_value(self.xr()).unwrap();
        reconcile(Arc::new(xr), self.ctx.clone())
            .await
            .expect("reconcile")
    }

    /// Drops the controller's side and asserts that it sent nothing after the last `take`.
    async fn finish(self) {
        self.ctx.shared.stop();
        drop(self.ctx);
        let rest = self.api.finish().await;
        assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
    }
}

fn xrd() -> CompositeResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": { "name": "xwidgets.test.strata.dev" },
        "spec": {
            "group": "test.strata.dev",
            "names": { "kind": "XWidget", "plural": "xwidgets" },
            "versions": [{ "name": "v1alpha1" }],
            "defaultCompositionRef": { "name": "widgets" },
        },
    }))
    .unwrap()
}

/// The Composition's spec: `app` (declared first) depends on `config`.
fn composition_spec() -> Value {
    let config_map = |data: Value| {
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "namespace": "default" }, "data": data })
    };
    json!({
        "compositeTypeRef": { "apiVersion": "test.strata.dev/v1alpha1", "kind": "XWidget" },
        "resources": [
            { "name": "app", "dependsOn": ["config"],
              "base": config_map(json!({ "role": "app" })),
              "readinessChecks": [{ "type": "None" }] },
            { "name": "config",
              "base": config_map(json!({})),
              "patches": [{ "type": "FromCompositeFieldPath",
                            "fromFieldPath": "spec.size", "toFieldPath": "data.size" }],
              "readinessChecks": [{ "type": "None" }] },
        ],
    })
}

fn composition() -> Composition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": { "name": "widgets", "uid": "widgets-uid" },
        "spec": composition_spec(),
    }))
    .unwrap()
}

fn revision() -> CompositionRevision {
    let mut spec = composition_spec();
    spec["revision"] = json!(1);
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositionRevision",
        "metadata": { "name": "widgets-1", "uid": "widgets-1-uid",
                      "labels": { wire::LABEL_COMPOSITION_NAME: "widgets" } },
        "spec": spec,
    }))
    .unwrap()
}

/// A new XR `xw1`: no finalizer, no selection, no inventory, no status.
fn new_xr() -> Value {
    json!({
        "apiVersion": "test.strata.dev/v1alpha1",
        "kind": "XWidget",
        "metadata": { "name": "xw1", "uid": "xw1-uid", "resourceVersion": "100", "generation": 1 },
        "spec": { "size": "small" },
    })
}

/// The names in an XR patch's `spec.resourceRefs`.
fn inventory(patch: &Value) -> Vec<&str> {
    patch["spec"]["resourceRefs"]
        .as_array()
        .expect("spec.resourceRefs")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect()
}

/// Asserts a server-side apply of a composed ConfigMap by Strata's field manager.
#[track_caller]
fn assert_apply(seen: &Seen, path: &str, template: &str) {
    assert_request(seen, Method::PATCH, path);
    assert_eq!(seen.content_type.as_deref(), Some(APPLY_PATCH), "{seen:#?}");
    assert!(
        seen.query
            .contains(&format!("fieldManager={}", wire::FIELD_MANAGER))
            && seen.query.contains("force=true"),
        "{seen:#?}"
    );
    assert_eq!(
        seen.body["metadata"]["annotations"][wire::ANNOTATION_RESOURCE_NAME],
        template,
        "{seen:#?}"
    );
    assert_eq!(
        seen.body["metadata"]["ownerReferences"][0]["uid"], "xw1-uid",
        "{seen:#?}"
    );
}

/// Asserts a merge patch of the XR guarded by resourceVersion `rv`.
#[track_caller]
fn assert_xr_patch(seen: &Seen, path: &str, rv: &str) {
    assert_request(seen, Method::PATCH, path);
    assert_eq!(seen.content_type.as_deref(), Some(MERGE_PATCH), "{seen:#?}");
    assert_eq!(seen.body["metadata"]["resourceVersion"], rv, "{seen:#?}");
}

// ---------------------------------------------------------------------------------------------
// The sequences
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_xr_is_composed_in_dependency_order_and_its_status_written_once() {
    let h = Harness::start(new_xr());

    assert_eq!(h.reconcile().await, Action::requeue(RESYNC));
    let seen = h.api.take();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    // One access review for ConfigMaps in `default`, asked once for both.
    assert_request(&seen[0], Method::POST, REVIEWS);
    let attributes = &seen[0].body["spec"]["resourceAttributes"];
    assert_eq!(
        (
            &attributes["verb"],
            &attributes["resource"],
            &attributes["namespace"]
        ),
        (&json!("patch"), &json!("configmaps"), &json!("default")),
        "{seen:#?}"
    );
    // The finalizer, the selection and the first wave's inventory, before anything is created.
    assert_xr_patch(&seen[1], XR, "100");
    assert_eq!(
        seen[1].body["metadata"]["finalizers"],
        json!([wire::FINALIZER_COMPOSITE])
    );
    assert_eq!(
        seen[1].body["spec"]["compositionRef"],
        json!({ "name": "widgets" })
    );
    assert_eq!(
        seen[1].body["spec"]["compositionRevisionRef"],
        json!({ "name": "widgets-1" })
    );
    assert_eq!(inventory(&seen[1].body), vec!["xw1-config"]);
    // `config` first: `app` waits for it although it is declared first.
    assert_apply(&seen[2], CONFIG, "config");
    assert_eq!(seen[2].body["data"], json!({ "size": "small" }));
    // The second wave: recorded, then applied, in the same pass.
    assert_xr_patch(&seen[3], XR, "101");
    assert!(
        seen[3].body["metadata"].get("finalizers").is_none(),
        "{seen:#?}"
    );
    assert!(
        seen[3].body["spec"].get("compositionRef").is_none(),
        "{seen:#?}"
    );
    assert_eq!(inventory(&seen[3].body), vec!["xw1-config", "xw1-app"]);
    assert_apply(&seen[4], APP, "app");
    assert_eq!(seen[4].body["data"], json!({ "role": "app" }));
    // The status, once, after every wave: Synced and Ready.
    assert_xr_patch(&seen[5], XR_STATUS, "103");
    assert_eq!(
        conditions(&seen[5].body["status"]),
        vec![
            condition("Ready", "True", "Available"),
            condition("Synced", "True", "ReconcileSuccess"),
        ]
    );

    h.finish().await;
}

#[tokio::test]
async fn a_converged_xr_is_only_read() {
    let h = Harness::start(new_xr());
    h.reconcile().await;
    h.api.take();

    // Nothing changed: the recorded composed resources are read, and nothing is written.
    assert_eq!(h.reconcile().await, Action::requeue(RESYNC));
    let seen = h.api.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::GET, APP);

    h.finish().await;
}

#[tokio::test]
async fn a_deleted_xr_tears_down_in_reverse_order_and_releases_its_finalizer_last() {
    let h = Harness::start(new_xr());
    h.reconcile().await;
    h.api.take();
    {
        let mut objects = h.objects.lock().unwrap();
        objects.xr["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        // Another controller's finalizer must survive ours being removed.
        objects.xr["metadata"]["finalizers"] =
            json!(["example.com/keep", wire::FINALIZER_COMPOSITE]);
    }
    let poll = Action::requeue(Duration::from_secs(1));

    // The dependent first: `app`, while `config` stays.
    assert_eq!(h.reconcile().await, poll);
    let seen = h.api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::GET, APP);
    assert_request(&seen[2], Method::DELETE, APP);
    assert_eq!(seen[2].body["propagationPolicy"], "Background", "{seen:#?}");

    // Then what it depended on.
    assert_eq!(h.reconcile().await, poll);
    let seen = h.api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::GET, APP);
    assert_request(&seen[2], Method::DELETE, CONFIG);

    // Everything is gone: the finalizer goes, guarded by the version, and only ours.
    let rv = h.xr()["metadata"]["resourceVersion"].clone();
    assert_eq!(h.reconcile().await, Action::await_change());
    let seen = h.api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::GET, APP);
    assert_request(&seen[2], Method::PATCH, XR);
    assert_eq!(
        seen[2].body,
        json!({ "metadata": { "finalizers": ["example.com/keep"], "resourceVersion": rv } })
    );
    assert!(h.objects.lock().unwrap().composed.is_empty());

    h.finish().await;
}

#[tokio::test]
async fn a_failed_apply_names_the_object_in_synced_and_writes_nothing_further() {
    let h = Harness::start(new_xr());
    h.objects.lock().unwrap().refuse_apply = vec![CONFIG.to_owned()];

    assert_eq!(h.reconcile().await, Action::requeue(Duration::from_secs(5)));
    let seen = h.api.take();
    assert_eq!(seen.len(), 5, "{seen:#?}");
    assert_request(&seen[0], Method::POST, REVIEWS);
    assert_xr_patch(&seen[1], XR, "100");
    assert_eq!(inventory(&seen[1].body), vec!["xw1-config"]);
    assert_apply(&seen[2], CONFIG, "config");
    // No further wave (`app` waits for `config`), no prune: the status says what failed.
    assert_xr_patch(&seen[3], XR_STATUS, "101");
    let status = &seen[3].body["status"];
    let synced = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Synced"))
        .expect("a Synced condition");
    assert_eq!(
        (&synced["status"], &synced["reason"]),
        (&json!("False"), &json!("ReconcileError"))
    );
    let message = synced["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("config:") && message.contains("ConfigMap default/xw1-config"),
        "Synced does not name the object: {message}"
    );
    assert!(message.contains("too long"), "{message}");
    // And one Warning event about the XR, naming the template and the object.
    assert_request(&seen[4], Method::POST, EVENTS);
    assert_eq!(seen[4].body["reason"], wire::REASON_APPLY_RESOURCE);
    assert_eq!(seen[4].body["type"], "Warning");
    assert_eq!(seen[4].body["regarding"]["name"], "xw1");
    let note = seen[4].body["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("resource `config` (ConfigMap default/xw1-config)"),
        "{note}"
    );
    assert!(h.objects.lock().unwrap().composed.is_empty());

    h.finish().await;
}
