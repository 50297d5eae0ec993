//! Triggers from a watch that has to list again, held until its cache has the new list.
//!
//! When a watch cannot resume (the API server answers 410 Gone: the client fell further behind
//! than the server's event history, or its watch was closed as stalled), kube-runtime's watcher
//! lists everything again: `Init`, one `InitApply` per object, `InitDone`. Its reflector
//! collects the `InitApply` objects in a side buffer and swaps them into the cache only at
//! `InitDone`; kube-runtime's own trigger streams (`touched_objects`, `applied_objects`, and
//! `Controller::new`'s) hand every `InitApply` object to the controller at once. A pass started
//! before `InitDone` looks the object up in the old cache, and an object created while the watch
//! was down is not there: the pass is dropped (`ObjectNotFound`), and nothing starts it again:
//! its watch has nothing more to say about the object, and a pass that never ran asked for no
//! requeue. Under load (10,000 claims on one core) a relist lost a few hundred new claims this
//! way, never bound.
//!
//! [`touched_after_relist`] and [`applied_after_relist`] pass live changes through as they come
//! (the reflector has written them before the trigger sees them) and hold a relist's objects
//! until its `InitDone`, by which the cache holds every one. The hold costs the listed objects
//! once more, for the length of the list.
//!
//! Written here because kube-runtime has no trigger stream that waits for the cache's swap.

use futures_util::{Stream, StreamExt};
use kube::runtime::watcher;

/// Every object a watch applied or deleted, in order, with a relist's objects held until the
/// relist is complete (`InitDone`). A relist that starts over (`Init` again after a failed
/// page) drops what it held.
pub fn touched_after_relist<K, E>(
    events: impl Stream<Item = Result<watcher::Event<K>, E>>,
) -> impl Stream<Item = Result<K, E>> {
    after_relist(events, true)
}

/// As [`touched_after_relist`], without deleted objects (kube-runtime's `applied_objects`).
pub fn applied_after_relist<K, E>(
    events: impl Stream<Item = Result<watcher::Event<K>, E>>,
) -> impl Stream<Item = Result<K, E>> {
    after_relist(events, false)
}

fn after_relist<K, E>(
    events: impl Stream<Item = Result<watcher::Event<K>, E>>,
    deleted: bool,
) -> impl Stream<Item = Result<K, E>> {
    events
        .scan(Vec::new(), move |held, event| {
            let (now, listed) = match event {
                Ok(watcher::Event::Apply(obj)) => (Some(Ok(obj)), Vec::new()),
                Ok(watcher::Event::Delete(obj)) => (deleted.then_some(Ok(obj)), Vec::new()),
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

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use kube::runtime::watcher;

    use super::*;

    /// What `trigger` makes of the events `list`.
    fn run<S: Stream<Item = Result<u32, ()>>>(
        trigger: impl FnOnce(
            futures_util::stream::Iter<std::vec::IntoIter<Result<watcher::Event<u32>, ()>>>,
        ) -> S,
        list: Vec<watcher::Event<u32>>,
    ) -> Vec<u32> {
        let stream = futures_util::stream::iter(list.into_iter().map(Ok).collect::<Vec<_>>());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(trigger(stream).map(|r| r.unwrap()).collect::<Vec<_>>())
    }

    fn events(list: Vec<watcher::Event<u32>>) -> Vec<u32> {
        run(touched_after_relist, list)
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

    #[test]
    fn applied_objects_leave_out_deletions() {
        use watcher::Event::*;
        let out = run(
            applied_after_relist,
            vec![Apply(1), Delete(2), Init, InitApply(3), InitDone],
        );
        assert_eq!(out, vec![1, 3]);
    }
}
