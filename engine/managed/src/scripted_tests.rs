//! The managed reconciler's I/O sequences against a scripted API: a real `kube::Client` over a
//! mock service (the tests' shared [`strata_test_support::scripted`] API) that answers every
//! request and records it, and an in-process cloud behind the provider contract that logs every
//! call. Each test drives the public entry point, [`reconcile`], and asserts the exact requests —
//! method, path and the fields that matter in their bodies — in order, with nothing else sent,
//! and the exact cloud calls. The emulator tests cover the same flows end to end; these pin down which
//! writes each step makes (and that an in-sync or paused resource makes none).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{Method, StatusCode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use strata_provider::wire::{
    ANNOTATION_EXTERNAL_CREATE_PENDING, ANNOTATION_EXTERNAL_CREATE_SUCCEEDED,
    ANNOTATION_EXTERNAL_NAME, ANNOTATION_PAUSED,
};
use strata_provider::{
    CloudRecord, ConnectionDetails, Created, External, Managed, Present, Provider, ProviderError,
    RateLimit, RateLimitedVerbs, ResourceKind, Secrets,
};
use strata_test_support::scripted::{self, MERGE_PATCH, ScriptedApi, Seen, condition, conditions};

use crate::reconcile::{Context, reconcile};
use crate::{FINALIZER, Settings};

const GROUP: &str = "test.strata.dev";
const WIDGETS: &str = "/apis/test.strata.dev/v1alpha1/widgets";
const CONFIG: &str = "/apis/test.strata.dev/v1alpha1/widgetproviderconfigs/default";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const POLL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The in-process cloud and its provider
// ---------------------------------------------------------------------------------------------

/// Widgets by external name (their `forProvider`), and every call made, in order.
#[derive(Default)]
struct Cloud {
    widgets: Mutex<BTreeMap<String, Value>>,
    calls: Mutex<Vec<String>>,
}

impl Cloud {
    fn log(&self, verb: &str, managed: &Managed) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{verb} {}", managed.external_name));
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// A provider whose every connection reaches the same [`Cloud`].
struct WidgetProvider {
    cloud: Arc<Cloud>,
}

/// A widget's `atProvider`: its id and its size as the cloud has it.
fn at_provider(external_name: &str, for_provider: &Value) -> Value {
    json!({ "id": format!("widget-{external_name}"), "size": for_provider["size"] })
}

impl Provider for WidgetProvider {
    fn managed_kind(&self) -> ResourceKind {
        ResourceKind {
            group: GROUP,
            version: "v1alpha1",
            kind: "Widget",
            plural: "widgets",
        }
    }

    fn provider_config_kind(&self) -> ResourceKind {
        ResourceKind {
            group: GROUP,
            version: "v1alpha1",
            kind: "WidgetProviderConfig",
            plural: "widgetproviderconfigs",
        }
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        Vec::new()
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: 100,
            replenish_every: Duration::from_millis(1),
            verbs: RateLimitedVerbs::All,
        }
    }

    fn connect<'a>(
        &'a self,
        provider_config: &'a Value,
        _secrets: Arc<dyn Secrets>,
    ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>> {
        let cloud = self.cloud.clone();
        let region = provider_config["spec"]["region"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Box::pin(async move { Ok(Arc::new(WidgetExternal { cloud, region }) as Arc<dyn External>) })
    }
}

struct WidgetExternal {
    cloud: Arc<Cloud>,
    region: String,
}

impl External for WidgetExternal {
    fn scope(&self, _managed: &Managed) -> String {
        self.region.clone()
    }

    fn read<'a>(
        &'a self,
        managed: &'a Managed,
    ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
        Box::pin(async move {
            self.cloud.log("read", managed);
            let widgets = self.cloud.widgets.lock().unwrap();
            Ok(widgets
                .get(managed.external_name.as_str())
                .map(|spec| CloudRecord::new(spec.clone())))
        })
    }

    fn assess<'a>(
        &'a self,
        managed: &'a Managed,
        record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<Present, ProviderError>> {
        Box::pin(async move {
            let spec = record.get::<Value>().cloned().unwrap_or(Value::Null);
            Ok(Present {
                up_to_date: spec == managed.for_provider,
                late_init: None,
                connection_details: ConnectionDetails::new(),
                at_provider: at_provider(managed.external_name.as_str(), &spec),
                ready: true,
            })
        })
    }

    fn create<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            self.cloud.log("create", managed);
            self.cloud.widgets.lock().unwrap().insert(
                managed.external_name.as_str().to_owned(),
                managed.for_provider.clone(),
            );
            Ok(Created {
                connection_details: ConnectionDetails::new(),
                record: Some(CloudRecord::new(managed.for_provider.clone())),
            })
        })
    }

    fn update<'a>(
        &'a self,
        managed: &'a Managed,
        _record: &'a CloudRecord,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.cloud.log("update", managed);
            self.cloud.widgets.lock().unwrap().insert(
                managed.external_name.as_str().to_owned(),
                managed.for_provider.clone(),
            );
            Ok(())
        })
    }

    fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.cloud.log("delete", managed);
            self.cloud
                .widgets
                .lock()
                .unwrap()
                .remove(managed.external_name.as_str());
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted API
// ---------------------------------------------------------------------------------------------

/// Serves `client`'s requests: the ProviderConfig `default`, any write to a widget (answered
/// with `widget`, as the API server answers with the object) and event creation.
fn start(widget: Value) -> (Client, ScriptedApi) {
    ScriptedApi::start(
        move |request| match (&request.method, request.path.as_str()) {
            (&Method::GET, CONFIG) => (StatusCode::OK, provider_config()),
            (&Method::PATCH, p) if p.starts_with(WIDGETS) => (StatusCode::OK, widget.clone()),
            (&Method::POST, EVENTS) => (StatusCode::CREATED, request.body.clone()),
            (_, path) => scripted::not_found(path),
        },
    )
}

fn provider_config() -> Value {
    json!({
        "apiVersion": "test.strata.dev/v1alpha1",
        "kind": "WidgetProviderConfig",
        "metadata": { "name": "default", "resourceVersion": "7", "uid": "pc-uid" },
        "spec": { "region": "eu-west-1" },
    })
}

fn context(client: Client, cloud: &Arc<Cloud>) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "strata-managed-test".into(),
            instance: None,
        },
    );
    let settings = Settings {
        poll_interval: POLL,
        ..Settings::default()
    };
    let provider = Arc::new(WidgetProvider {
        cloud: cloud.clone(),
    });
    Arc::new(Context::new(client, provider, settings, recorder))
}

/// A Widget named `w1` with `spec.forProvider.size` 3; `metadata` and `status` are merged in.
fn widget(metadata: Value, status: Value) -> Value {
    let mut object = json!({
        "apiVersion": "test.strata.dev/v1alpha1",
        "kind": "Widget",
        "metadata": { "name": "w1", "uid": "w1-uid", "resourceVersion": "41", "generation": 1 },
        "spec": { "forProvider": { "size": 3 } },
    });
    if let (Some(into), Some(from)) = (object["metadata"].as_object_mut(), metadata.as_object()) {
        into.extend(from.clone());
    }
    if !status.is_null() {
        object["status"] = status;
    }
    object
}

/// The metadata of a widget the runtime has already taken on.
fn adopted(extra: Value) -> Value {
    let mut metadata = json!({
        "finalizers": [FINALIZER],
        "annotations": { ANNOTATION_EXTERNAL_NAME: "w1" },
    });
    if let (Some(into), Some(from)) = (metadata.as_object_mut(), extra.as_object()) {
        for (key, value) in from {
            if key == "annotations" {
                if let (Some(a), Some(b)) = (into["annotations"].as_object_mut(), value.as_object())
                {
                    a.extend(b.clone());
                }
            } else {
                into.insert(key.clone(), value.clone());
            }
        }
    }
    metadata
}

/// The status of a widget in sync with the cloud.
fn in_sync_status() -> Value {
    json!({
        "conditions": [
            { "type": "Ready", "status": "True", "reason": "Available",
              "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Synced", "status": "True", "reason": "ReconcileSuccess",
              "lastTransitionTime": "2026-01-01T00:00:00Z" },
        ],
        "atProvider": at_provider("w1", &json!({ "size": 3 })),
    })
}

async fn run(ctx: &Arc<Context>, object: &Value) -> Action {
    let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    reconcile(Arc::new(object), ctx.clone())
        .await
        .expect("reconcile")
}

fn assert_request(seen: &Seen, method: Method, path: &str) {
    scripted::assert_request(seen, method.clone(), path);
    if method == Method::PATCH {
        assert_eq!(seen.content_type.as_deref(), Some(MERGE_PATCH), "{seen:?}");
    }
}

/// Asserts an event about `w1` with `reason`, in the order the transitions happened.
fn assert_event(seen: &Seen, reason: &str) {
    assert_request(seen, Method::POST, EVENTS);
    assert_eq!(seen.body["reason"], reason, "{seen:?}");
    assert_eq!(seen.body["regarding"]["kind"], "Widget", "{seen:?}");
    assert_eq!(seen.body["regarding"]["name"], "w1", "{seen:?}");
}

fn assert_timestamp(value: &Value) {
    let text = value.as_str().expect("a timestamp annotation");
    assert!(
        text.parse::<jiff::Timestamp>().is_ok(),
        "not a timestamp: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The sequences
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_resource_gets_its_finalizer_then_is_created_and_recorded() {
    let cloud = Arc::new(Cloud::default());
    let fresh = widget(json!({}), Value::Null);
    let (client, api) = start(fresh.clone());
    let ctx = context(client, &cloud);

    // First pass: one metadata write, nothing else (its watch event brings the next pass).
    assert_eq!(run(&ctx, &fresh).await, Action::await_change());
    let seen = api.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_request(&seen[0], Method::PATCH, &format!("{WIDGETS}/w1"));
    assert_eq!(
        seen[0].body,
        json!({ "metadata": {
            "finalizers": [FINALIZER],
            "annotations": { ANNOTATION_EXTERNAL_NAME: "w1" },
            "resourceVersion": "41",
        }})
    );
    assert_eq!(cloud.take_calls(), Vec::<String>::new());

    // Second pass, on the object as the API server now has it.
    let taken_on = widget(adopted(json!({ "resourceVersion": "42" })), Value::Null);
    assert_eq!(run(&ctx, &taken_on).await, Action::requeue(POLL));
    let seen = api.take();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    // Pending before the cloud call, succeeded after it.
    assert_request(&seen[1], Method::PATCH, &format!("{WIDGETS}/w1"));
    let pending = &seen[1].body["metadata"]["annotations"];
    assert_eq!(pending.as_object().map(|a| a.len()), Some(1), "{seen:#?}");
    assert_timestamp(&pending[ANNOTATION_EXTERNAL_CREATE_PENDING]);
    assert_request(&seen[2], Method::PATCH, &format!("{WIDGETS}/w1"));
    let succeeded = &seen[2].body["metadata"]["annotations"];
    assert_eq!(succeeded.as_object().map(|a| a.len()), Some(1), "{seen:#?}");
    assert_timestamp(&succeeded[ANNOTATION_EXTERNAL_CREATE_SUCCEEDED]);
    // The create answered with the resource: Ready at once, with its atProvider.
    assert_request(&seen[3], Method::PATCH, &format!("{WIDGETS}/w1/status"));
    assert_eq!(
        conditions(&seen[3].body["status"]),
        vec![
            condition("Ready", "True", "Available"),
            condition("Synced", "True", "ReconcileSuccess"),
        ]
    );
    assert_eq!(
        seen[3].body["status"]["atProvider"],
        json!({ "id": "widget-w1", "size": 3 })
    );
    assert_event(&seen[4], "Available");
    assert_event(&seen[5], "ReconcileSuccess");
    assert_eq!(cloud.take_calls(), vec!["read w1", "create w1"]);
    assert_eq!(
        cloud.widgets.lock().unwrap().get("w1"),
        Some(&json!({ "size": 3 }))
    );

    drop(ctx);
    let rest = api.finish().await;
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}

#[tokio::test]
async fn an_in_sync_resource_is_only_observed() {
    let cloud = Arc::new(Cloud::default());
    cloud
        .widgets
        .lock()
        .unwrap()
        .insert("w1".into(), json!({ "size": 3 }));
    let object = widget(adopted(json!({})), in_sync_status());
    let (client, api) = start(object.clone());
    let ctx = context(client, &cloud);

    assert_eq!(run(&ctx, &object).await, Action::requeue(POLL));
    let seen = api.take();
    // Only the ProviderConfig is read: no status, metadata or event write.
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_eq!(cloud.take_calls(), vec!["read w1"]);

    drop(ctx);
    let rest = api.finish().await;
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}

#[tokio::test]
async fn a_drifted_resource_is_updated_without_a_kubernetes_write() {
    let cloud = Arc::new(Cloud::default());
    cloud
        .widgets
        .lock()
        .unwrap()
        .insert("w1".into(), json!({ "size": 2 }));
    let mut status = in_sync_status();
    status["atProvider"] = at_provider("w1", &json!({ "size": 2 }));
    let object = widget(adopted(json!({})), status);
    let (client, api) = start(object.clone());
    let ctx = context(client, &cloud);

    assert_eq!(
        run(&ctx, &object).await,
        Action::requeue(strata_provider::NOT_READY_POLL)
    );
    let seen = api.take();
    // Nothing to record: the conditions stay, and the atProvider observed before the update is
    // the one the object already has. The next pass (soon) observes the update.
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_eq!(cloud.take_calls(), vec!["read w1", "update w1"]);
    assert_eq!(
        cloud.widgets.lock().unwrap().get("w1"),
        Some(&json!({ "size": 3 }))
    );

    drop(ctx);
    let rest = api.finish().await;
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}

#[tokio::test]
async fn a_deleted_resource_deletes_the_cloud_side_then_releases_its_finalizer() {
    let cloud = Arc::new(Cloud::default());
    cloud
        .widgets
        .lock()
        .unwrap()
        .insert("w1".into(), json!({ "size": 3 }));
    // Another controller's finalizer must survive ours being removed.
    let metadata = adopted(json!({
        "finalizers": ["example.com/keep", FINALIZER],
        "deletionTimestamp": "2026-01-01T00:00:00Z",
        "generation": 2,
    }));
    let object = widget(metadata.clone(), in_sync_status());
    let (client, api) = start(object.clone());
    let ctx = context(client, &cloud);

    // First pass: the cloud delete, then Ready=False (Deleting).
    assert_eq!(
        run(&ctx, &object).await,
        Action::requeue(strata_provider::NOT_READY_POLL)
    );
    let seen = api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::PATCH, &format!("{WIDGETS}/w1/status"));
    assert_eq!(
        conditions(&seen[1].body["status"]),
        vec![
            condition("Ready", "False", "Deleting"),
            condition("Synced", "True", "ReconcileSuccess"),
        ]
    );
    assert_event(&seen[2], "Deleting");
    assert_eq!(cloud.take_calls(), vec!["read w1", "delete w1"]);

    // Second pass: the cloud resource is gone, so the finalizer goes (guarded by the version).
    let mut status = in_sync_status();
    status["conditions"][0] = json!({ "type": "Ready", "status": "False", "reason": "Deleting",
                                      "lastTransitionTime": "2026-01-01T00:00:01Z" });
    let mut metadata = metadata;
    metadata["resourceVersion"] = json!("43");
    let deleting = widget(metadata, status);
    assert_eq!(run(&ctx, &deleting).await, Action::await_change());
    let seen = api.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_request(&seen[0], Method::GET, CONFIG);
    assert_request(&seen[1], Method::PATCH, &format!("{WIDGETS}/w1"));
    assert_eq!(
        seen[1].body,
        json!({ "metadata": { "finalizers": ["example.com/keep"], "resourceVersion": "43" } })
    );
    assert_eq!(cloud.take_calls(), vec!["read w1"]);

    drop(ctx);
    let rest = api.finish().await;
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}

#[tokio::test]
async fn a_paused_resource_calls_no_cloud_and_writes_only_its_paused_condition_once() {
    let cloud = Arc::new(Cloud::default());
    cloud
        .widgets
        .lock()
        .unwrap()
        .insert("w1".into(), json!({ "size": 2 }));
    // Drifted, so an unpaused reconcile would update the cloud.
    let paused = adopted(json!({ "annotations": { ANNOTATION_PAUSED: "true" } }));
    let object = widget(paused.clone(), in_sync_status());
    let (client, api) = start(object.clone());
    let ctx = context(client, &cloud);

    // The first paused pass says so in Synced, and only that.
    assert_eq!(run(&ctx, &object).await, Action::await_change());
    let seen = api.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_request(&seen[0], Method::PATCH, &format!("{WIDGETS}/w1/status"));
    assert_eq!(
        conditions(&seen[0].body["status"]),
        vec![
            condition("Ready", "True", "Available"),
            condition("Synced", "False", "ReconcilePaused"),
        ]
    );
    assert!(
        seen[0].body["status"].get("atProvider").is_none(),
        "{seen:#?}"
    );
    assert_event(&seen[1], "ReconcilePaused");

    // Once the condition says paused, a pass makes no request at all.
    let mut status = in_sync_status();
    status["conditions"] = seen[0].body["status"]["conditions"].clone();
    let still_paused = widget(paused, status);
    assert_eq!(run(&ctx, &still_paused).await, Action::await_change());
    let seen = api.take();
    assert!(seen.is_empty(), "a paused resource wrote: {seen:#?}");
    assert_eq!(cloud.take_calls(), Vec::<String>::new());
    assert_eq!(
        cloud.widgets.lock().unwrap().get("w1"),
        Some(&json!({ "size": 2 }))
    );

    drop(ctx);
    let rest = api.finish().await;
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}
