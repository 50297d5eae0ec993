//! The watch hub: committed events fan out to watchers, and a bounded history lets a watch resume
//! from a resource version without replaying the whole store.
//!
//! Events enter through [`Hub::publish`] (called by the store writer after a durable commit, in
//! resource-version order) and leave through [`Hub::subscribe_after`], which hands back the
//! retained events after a version plus a live receiver, taken atomically so nothing falls between.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resource::GroupResource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change. `previous` lets a filtered watch turn "stopped matching" into DELETED.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub type_: EventType,
    pub gr: GroupResource,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
    /// `object` as compact JSON ([`crate::compact::object_json`]) as it was written for the
    /// store, while the event is among the hub's [`RECENT_JSON`] newest: watchers and responses
    /// that show the object as stored send these bytes instead of serializing it again (once
    /// per watcher). Older events let them go, so the history holds no second copy.
    json: Mutex<Option<Bytes>>,
}

/// How many of the newest events keep their object's JSON ([`WatchEvent::json`]): a write's
/// response and its watch lines are sent right after the event is published.
pub(crate) const RECENT_JSON: usize = 1_024;

impl WatchEvent {
    /// A committed change, without its object's JSON.
    pub fn new(
        rv: u64,
        type_: EventType,
        gr: GroupResource,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) -> Self {
        WatchEvent {
            rv,
            type_,
            gr,
            object,
            previous,
            json: Mutex::new(None),
        }
    }

    /// The event with `json`, its object's compact JSON.
    pub(crate) fn with_json(self, json: Bytes) -> Self {
        WatchEvent {
            json: Mutex::new(Some(json)),
            ..self
        }
    }

    /// The object's compact JSON as the store wrote it, while the event is recent.
    pub fn json(&self) -> Option<Bytes> {
        self.json
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn take_json(&self) -> Option<Bytes> {
        self.json
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The durable form kept in the store's event history, from the object's serialized bytes.
    pub fn to_stored_with(&self, object_json: &[u8]) -> Vec<u8> {
        let head = json!({"type": self.type_.as_str(), "group": self.gr.group, "resource": self.gr.resource});
        let mut out = serde_json::to_vec(&head).unwrap_or_default();
        if out.last() == Some(&b'}') {
            out.pop();
            out.extend_from_slice(b",\"object\":");
            out.extend_from_slice(object_json);
            out.push(b'}');
        }
        out
    }

    pub fn from_stored(rv: u64, bytes: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(WatchEvent::new(
            rv,
            EventType::parse(v.get("type")?.as_str()?)?,
            GroupResource::new(v.get("group")?.as_str()?, v.get("resource")?.as_str()?),
            Arc::new({
                let mut object = v.get("object")?.clone();
                crate::compact::compact(&mut object);
                object
            }),
            None,
        ))
    }
}

struct HubState {
    history: VecDeque<Arc<WatchEvent>>,
    /// The first version whose event may be missing from history (everything before is gone).
    oldest: u64,
    head: u64,
    limit: u64,
}

/// Retained events to replay, and the live receiver that continues after them.
pub(crate) type Subscription = (Vec<Arc<WatchEvent>>, broadcast::Receiver<Arc<WatchEvent>>);

pub struct Hub {
    state: Mutex<HubState>,
    sender: broadcast::Sender<Arc<WatchEvent>>,
}

const LIVE_BUFFER: usize = 16_384;

impl Hub {
    /// A hub whose history holds `history` (ascending, at most `limit` kept) and whose last
    /// committed version is `head`.
    pub fn new(history: Vec<WatchEvent>, head: u64, limit: u64) -> Self {
        let history: VecDeque<Arc<WatchEvent>> = history.into_iter().map(Arc::new).collect();
        let oldest = history.front().map(|e| e.rv).unwrap_or(head + 1);
        let (sender, _) = broadcast::channel(LIVE_BUFFER);
        Hub {
            state: Mutex::new(HubState {
                history,
                oldest,
                head,
                limit,
            }),
            sender,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn publish(&self, events: Vec<Arc<WatchEvent>>) {
        // Events leaving the history are dropped after the lock is released: the last
        // reference to a replaced version frees its whole tree, which subscribers need not wait
        // for.
        let mut evicted = Vec::new();
        let mut released = Vec::new();
        {
            let mut state = self.lock();
            for e in events {
                state.head = state.head.max(e.rv);
                state.history.push_back(e.clone());
                let _ = self.sender.send(e);
                let older = state.history.len().checked_sub(RECENT_JSON + 1);
                if let Some(older) = older.and_then(|at| state.history.get(at)) {
                    released.extend(older.take_json());
                }
            }
            while state.history.len() as u64 > state.limit {
                evicted.extend(state.history.pop_front());
                state.oldest = state
                    .history
                    .front()
                    .map(|e| e.rv)
                    .unwrap_or(state.head + 1);
            }
        }
        drop(evicted);
        drop(released);
    }

    pub fn head(&self) -> u64 {
        self.lock().head
    }

    /// Retained events with a version above `rv` and a receiver for everything published later;
    /// `Expired` when events after `rv` have already been dropped from history.
    pub fn subscribe_after(&self, rv: u64) -> Result<Subscription, ApiError> {
        let state = self.lock();
        if rv + 1 < state.oldest && rv < state.head {
            return Err(ApiError::Expired {
                requested: rv,
                oldest: state.oldest.saturating_sub(1),
            });
        }
        let replay = state
            .history
            .iter()
            .filter(|e| e.rv > rv)
            .cloned()
            .collect();
        Ok((replay, self.sender.subscribe()))
    }

    /// `object`'s compact JSON as the store wrote it, when `object` is the very object of one of
    /// the [`RECENT_JSON`] newest events (a version just written or recently changed): a
    /// response sends these bytes instead of serializing the object again.
    pub fn stored_json(&self, object: &Arc<Value>) -> Option<Bytes> {
        let rv: u64 = crate::object::resource_version(object).parse().ok()?;
        let state = self.lock();
        let at = state.history.binary_search_by_key(&rv, |e| e.rv).ok()?;
        let event = &state.history[at];
        if Arc::ptr_eq(&event.object, object) {
            event.json()
        } else {
            None
        }
    }

    /// A live receiver only, for watches that start from a fresh listing.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        let _state = self.lock();
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rv: u64) -> WatchEvent {
        WatchEvent::new(
            rv,
            EventType::Added,
            GroupResource::new("", "secrets"),
            Arc::new(json!({"metadata": {"name": format!("s{rv}")}})),
            None,
        )
    }

    #[test]
    fn resuming_replays_only_events_after_the_version() {
        let hub = Hub::new(vec![event(5), event(6), event(7)], 7, 100);
        let (replay, _rx) = hub.subscribe_after(5).unwrap();
        assert_eq!(replay.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![6, 7]);
    }

    #[test]
    fn resuming_before_retained_history_is_expired() {
        let hub = Hub::new(vec![event(5), event(6)], 6, 100);
        assert!(
            hub.subscribe_after(4).is_ok(),
            "version 4 is just before the first retained event"
        );
        assert!(matches!(
            hub.subscribe_after(3),
            Err(ApiError::Expired { .. })
        ));
    }

    #[test]
    fn only_the_newest_events_keep_their_json_and_responses_find_it_by_the_object() {
        let limit = RECENT_JSON as u64 * 3;
        let hub = Hub::new(Vec::new(), 0, limit);
        let published: Vec<Arc<WatchEvent>> = (1..=RECENT_JSON as u64 + 2)
            .map(|rv| {
                let mut object = (*event(rv).object).clone();
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                let json = Bytes::from(serde_json::to_vec(&object).unwrap());
                Arc::new(
                    WatchEvent::new(rv, EventType::Added, event(rv).gr, Arc::new(object), None)
                        .with_json(json),
                )
            })
            .collect();
        hub.publish(published.clone());
        let kept: Vec<bool> = published.iter().map(|e| e.json().is_some()).collect();
        assert_eq!(kept.iter().filter(|k| !**k).count(), 2, "two fell out");
        assert!(!kept[0] && !kept[1] && kept[2..].iter().all(|k| *k));
        let newest = published.last().unwrap();
        assert_eq!(hub.stored_json(&newest.object), newest.json());
        assert_eq!(hub.stored_json(&published[0].object), None);
        // An equal object that is not the stored one is not answered from the history.
        assert_eq!(hub.stored_json(&Arc::new((*newest.object).clone())), None);
        // The history itself still holds every event, for watches that resume.
        let (replay, _rx) = hub.subscribe_after(0).unwrap();
        assert_eq!(replay.len(), RECENT_JSON + 2);
    }

    #[test]
    fn stored_form_round_trips() {
        let e = event(9);
        let json = crate::compact::object_json(&e.object);
        let back = WatchEvent::from_stored(9, &e.to_stored_with(&json)).unwrap();
        assert_eq!(back.gr, e.gr);
        assert_eq!(back.object, e.object);
        let bytes = serde_json::to_vec(&*e.object).unwrap();
        let spliced = WatchEvent::from_stored(9, &e.to_stored_with(&bytes)).unwrap();
        assert_eq!(spliced.object, e.object);
        assert_eq!(spliced.type_, EventType::Added);
    }
}
