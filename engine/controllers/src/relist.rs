//! Controllers over their own watch, triggered once a relist has reached their cache
//! ([`strata_leader::relist`] says why): kube-runtime's `Controller::new` with the held trigger.

use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
pub(crate) use strata_leader::relist::touched_after_relist;

/// A controller over its own watch of `api`, as `Controller::new_with`, triggered through
/// [`touched_after_relist`].
pub(crate) fn controller<K>(
    api: Api<K>,
    config: watcher::Config,
    dyntype: <K as Resource>::DynamicType,
) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync + Unpin,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let reader = writer.as_reader();
    let trigger = touched_after_relist(watcher(api, config).reflect(writer));
    Controller::for_stream_with(trigger, reader, dyntype)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures_util::StreamExt;
    use http::StatusCode;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::Api;
    use kube::runtime::controller::Action;
    use kube::runtime::watcher;
    use serde_json::json;
    use strata_test_support::scripted::ScriptedApi;

    use super::*;

    fn config_map(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default", "uid": name, "resourceVersion": "5"}})
    }

    fn list(
        items: Vec<serde_json::Value>,
        rv: &str,
        next: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        (
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "ConfigMapList",
                   "metadata": {"resourceVersion": rv, "continue": next.unwrap_or_default()},
                   "items": items}),
        )
    }

    /// The watch fails with 410 Gone, and the relist (two pages, the second slow) brings a
    /// ConfigMap created meanwhile: it is reconciled once the relist completes. With
    /// kube-runtime's own trigger (`Controller::new`) its pass started before the cache had it
    /// and was dropped: never reconciled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_created_while_the_watch_was_down_is_reconciled_after_the_relist() {
        let mut lists = 0;
        let mut watches = 0;
        let (client, _api) = ScriptedApi::start(move |seen| {
            if seen.query.contains("watch=true") {
                watches += 1;
                if watches == 1 {
                    return (
                        StatusCode::OK,
                        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                               "status": "Failure", "reason": "Expired", "code": 410,
                               "message": "too old resource version"}}),
                    );
                }
                // Later watches: nothing happens (a bookmark, after a pause).
                std::thread::sleep(Duration::from_millis(200));
                return (
                    StatusCode::OK,
                    json!({"type": "BOOKMARK", "object": {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"resourceVersion": "20"}}}),
                );
            }
            lists += 1;
            match lists {
                1 => list(vec![config_map("old")], "10", Some("first")),
                2 => list(Vec::new(), "10", None),
                3 => list(vec![config_map("new")], "20", Some("second")),
                _ => {
                    // The relist's last page is slow: the first page's objects wait for it.
                    std::thread::sleep(Duration::from_millis(500));
                    list(vec![config_map("old")], "20", None)
                }
            }
        });
        let api: Api<ConfigMap> = Api::all(client);
        let reconciled = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = reconciled.clone();
        let run = tokio::spawn(
            controller(api, watcher::Config::default().page_size(1), ())
                .run(
                    |cm: Arc<ConfigMap>, seen: Arc<Mutex<BTreeSet<String>>>| async move {
                        let name = cm.metadata.name.clone().unwrap_or_default();
                        seen.lock().unwrap().insert(name);
                        Ok::<_, kube::Error>(Action::await_change())
                    },
                    |_, _, _| Action::await_change(),
                    seen,
                )
                .for_each(|_| async {}),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !reconciled.lock().unwrap().contains("new") && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        run.abort();
        assert_eq!(
            *reconciled.lock().unwrap(),
            BTreeSet::from(["new".to_owned(), "old".to_owned()])
        );
    }
}
