//! Triggers from a watch that has to list again, held until its cache has the new list.
//!
//! When a watch cannot resume (the API server answers 410 Gone: the client fell further behind
//! than the server's event history, or its watch was closed as stalled), kube-runtime's watcher
//! lists everything again: `Init`, one `InitApply` per object, `InitDone`. Its reflector
//! collects the `InitApply` objects in a side buffer and swaps them into the cache only at
//! `InitDone`; kube-runtime's own trigger streams (`touched_objects`, and `Controller::new`'s)
//! hand every `InitApply` object to the controller at once. A pass started before `InitDone`
//! looks the object up in the old cache, and an object created while the watch was down is not
//! there: the pass is dropped (`ObjectNotFound`), and nothing starts it again: its watch has
//! nothing more to say about the object, and a pass that never ran asked for no requeue. Under
//! load (10,000 claims on one core) a relist lost a few hundred new claims this way, never
//! bound.
//!
//! [`touched_after_relist`] passes `Apply` and `Delete` objects through as they come (the
//! reflector has written them before the trigger sees them) and holds a relist's objects until
//! its `InitDone`, by which the cache holds every one. [`controller`] is `Controller::new` with
//! that trigger. The hold costs the listed objects once more, for the length of the list.
//!
//! Written here because kube-runtime has no trigger stream that waits for the cache's swap.

use futures_util::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// Every object a watch applied or deleted, in order, with a relist's objects held until the
/// relist is complete (`InitDone`). A relist that starts over (`Init` again after a failed
/// page) drops what it held.
pub(crate) fn touched_after_relist<K, E>(
    events: impl Stream<Item = Result<watcher::Event<K>, E>>,
) -> impl Stream<Item = Result<K, E>> {
    events
        .scan(Vec::new(), |held, event| {
            let (now, listed) = match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::Delete(obj)) => {
                    (Some(Ok(obj)), Vec::new())
                }
                Ok(watcher::Event::Init) => {
                    held.clear();
                    (None, Vec::new())
                }
                Ok(watcher::Event::InitApply(obj)) => {
                    held.push(obj);
                    (None, Vec::new())
                }
                Ok(watcher::Event::InitDone) => (None, std::mem::take(held)),
                Err(e) => (Some(Err(e)), Vec::new()),
            };
            let ok: fn(K) -> Result<K, E> = Ok;
            futures_util::future::ready(Some(futures_util::stream::iter(
                now.into_iter().chain(listed.into_iter().map(ok)),
            )))
        })
        .flatten()
}

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

    fn events(list: Vec<watcher::Event<u32>>) -> Vec<u32> {
        let stream = futures_util::stream::iter(list.into_iter().map(Ok::<_, ()>));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(
                touched_after_relist(stream)
                    .map(|r| r.unwrap())
                    .collect::<Vec<_>>(),
            )
    }

    #[test]
    fn a_relists_objects_come_after_it_is_complete() {
        use watcher::Event::*;
        assert_eq!(
            events(vec![Apply(1), Init, InitApply(2), InitApply(3)]),
            vec![1],
            "nothing of an unfinished relist"
        );
        assert_eq!(
            events(vec![
                Init,
                InitApply(2),
                InitApply(3),
                InitDone,
                Delete(2),
                Apply(4)
            ]),
            vec![2, 3, 2, 4]
        );
        assert_eq!(
            events(vec![Init, InitApply(2), Init, InitApply(3), InitDone]),
            vec![3],
            "a relist started over forgets the first attempt's objects"
        );
    }

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
