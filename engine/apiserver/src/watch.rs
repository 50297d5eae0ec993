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
///
/// The newest events ([`RECENT`] of them) hold their object and what it replaced as the trees
/// the store holds (shared, not copied), with the object's JSON as the commit wrote it. Older
/// ones hold JSON alone ([`Hub::publish`] demotes them): a replaced version is then freed
/// soon after it was replaced, while it is still warm, instead of when its last event leaves the
/// 10,000-event history (and the list undo log, which holds the same events), by then cold;
/// and the history holds a version as its JSON, a fifth of its tree. Reading an old event's
/// object (a watch resuming from an old version, a list continued at one) parses it.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub type_: EventType,
    pub gr: GroupResource,
    /// The resource version of what the change replaced, read when the event is made (while
    /// that object is warm), so turning the event old does not read the replaced tree again.
    previous_rv: Option<u64>,
    body: Mutex<Body>,
}

#[derive(Debug)]
enum Body {
    Recent {
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
        /// `object` as compact JSON ([`crate::compact::object_json`]) as written for the store:
        /// watchers and responses that show the object as stored send these bytes instead of
        /// serializing it again (once per watcher).
        json: Option<Bytes>,
    },
    Old {
        object: Bytes,
        previous: Option<Bytes>,
    },
}

/// How many of the newest events keep their objects as trees ([`WatchEvent`]): a write's
/// response and its watch lines are sent right after the event is published. Few, so that a
/// replaced version is freed a few dozen writes after the write that replaced it read it,
/// still in cache: counted over the claims bench's convergence at 2,000 claims
/// (`scripts/profile-claims`), 64 took a fifth of the last-level read misses per claim off,
/// where 1,024 freed the same trees cold and saved nothing.
pub(crate) const RECENT: usize = 64;

/// A stored object's tree from its compact JSON, in the shape the cluster holds it.
fn parse_stored(json: &[u8]) -> Option<Value> {
    let mut object: Value = serde_json::from_slice(json).ok()?;
    crate::compact::compact(&mut object);
    Some(object)
}

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
            previous_rv: previous
                .as_deref()
                .and_then(|p| crate::object::resource_version(p).parse().ok()),
            body: Mutex::new(Body::Recent {
                object,
                previous,
                json: None,
            }),
        }
    }

    /// The event with `json`, its object's compact JSON.
    pub(crate) fn with_json(self, json: Bytes) -> Self {
        let mut body = self
            .body
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Body::Recent { json: held, .. } = &mut body {
            *held = Some(json);
        }
        WatchEvent {
            body: Mutex::new(body),
            ..self
        }
    }

    fn body(&self) -> std::sync::MutexGuard<'_, Body> {
        self.body
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The object after the change (for an old event, parsed from its JSON).
    pub fn object(&self) -> Arc<Value> {
        let json = match &*self.body() {
            Body::Recent { object, .. } => return object.clone(),
            Body::Old { object, .. } => object.clone(),
        };
        Arc::new(parse_stored(&json).unwrap_or(Value::Null))
    }

    /// What the change replaced, if anything (for an old event, parsed from its JSON).
    pub fn previous(&self) -> Option<Arc<Value>> {
        let json = match &*self.body() {
            Body::Recent { previous, .. } => return previous.clone(),
            Body::Old { previous, .. } => previous.clone()?,
        };
        parse_stored(&json).map(Arc::new)
    }

    /// The object's compact JSON as the store wrote it, when the event has it (every
    /// committed event).
    pub fn json(&self) -> Option<Bytes> {
        match &*self.body() {
            Body::Recent { json, .. } => json.clone(),
            Body::Old { object, .. } => Some(object.clone()),
        }
    }

    /// The object's JSON when the event holds nothing else (an old one): a watcher that sends
    /// the object as stored sends these bytes without parsing them.
    pub fn json_alone(&self) -> Option<Bytes> {
        match &*self.body() {
            Body::Old { object, .. } => Some(object.clone()),
            Body::Recent { .. } => None,
        }
    }

    /// Whether the object is in namespace `ns` (`""` for a cluster-scoped object); an old
    /// event's is read from its JSON without building the rest.
    pub fn in_namespace(&self, ns: &str) -> bool {
        /// `metadata.namespace`; every other field is skipped unread.
        #[derive(serde::Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Metadata,
        }
        #[derive(serde::Deserialize, Default)]
        struct Metadata {
            #[serde(default)]
            namespace: String,
        }
        let json = match &*self.body() {
            Body::Recent { object, .. } => return crate::object::namespace(object) == ns,
            Body::Old { object, .. } => object.clone(),
        };
        serde_json::from_slice::<Object>(&json).is_ok_and(|o| o.metadata.namespace == ns)
    }

    /// The object's JSON if `object` is this event's very object (not an equal copy: a dry
    /// run's answer, say, keeps the version it changed).
    fn json_of(&self, object: &Arc<Value>) -> Option<Bytes> {
        match &*self.body() {
            Body::Recent {
                object: held, json, ..
            } if Arc::ptr_eq(held, object) => json.clone(),
            _ => None,
        }
    }

    /// Holds the event as JSON alone from now on. `previous_json` finds what the change replaced
    /// as JSON by its resource version (an older event's); failing that, it is serialized.
    /// The trees are dropped by the caller, outside any lock.
    fn demote(&self, previous_json: impl Fn(u64) -> Option<Bytes>) -> Option<Body> {
        let mut body = self.body();
        let Body::Recent {
            object,
            previous,
            json,
        } = &*body
        else {
            return None;
        };
        let object_json = json
            .clone()
            .unwrap_or_else(|| Bytes::from(crate::compact::object_json(object)));
        let previous_json = previous.as_ref().map(|p| {
            self.previous_rv
                .and_then(&previous_json)
                .unwrap_or_else(|| Bytes::from(crate::compact::object_json(p)))
        });
        Some(std::mem::replace(
            &mut *body,
            Body::Old {
                object: object_json,
                previous: previous_json,
            },
        ))
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

impl HubState {
    /// Turns the event at `at` old ([`WatchEvent`]), what it replaced found as JSON in the event
    /// that wrote it while that is still in the history. Returns the trees it held.
    fn demote(&self, at: usize) -> Option<Body> {
        self.history.get(at)?.demote(|rv| {
            let found = self.history.binary_search_by_key(&rv, |e| e.rv).ok()?;
            // An older event's: its lock is not the one `demote` holds.
            (found < at).then(|| self.history[found].json())?
        })
    }
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
        let state = HubState {
            history,
            oldest,
            head,
            limit,
        };
        for at in 0..state.history.len().saturating_sub(RECENT) {
            state.demote(at);
        }
        Hub {
            state: Mutex::new(state),
            sender,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn publish(&self, events: Vec<Arc<WatchEvent>>) {
        // What leaves the history, and the trees of events turned old, are dropped after the
        // lock is released: the last reference to a replaced version frees its whole tree,
        // which subscribers need not wait for.
        let mut evicted = Vec::new();
        let mut released = Vec::new();
        {
            let mut state = self.lock();
            for e in events {
                state.head = state.head.max(e.rv);
                state.history.push_back(e.clone());
                let _ = self.sender.send(e);
                if let Some(at) = state.history.len().checked_sub(RECENT + 1) {
                    released.extend(state.demote(at));
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
    /// the [`RECENT`] newest events (a version just written or recently changed): a
    /// response sends these bytes instead of serializing the object again.
    pub fn stored_json(&self, object: &Arc<Value>) -> Option<Bytes> {
        let rv: u64 = crate::object::resource_version(object).parse().ok()?;
        let state = self.lock();
        let at = state.history.binary_search_by_key(&rv, |e| e.rv).ok()?;
        state.history[at].json_of(object)
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

    /// Versions of three objects, each event replacing the one before for its object; the
    /// first three replace versions written before the history began.
    fn versions(count: u64) -> Vec<(Arc<WatchEvent>, Arc<Value>, Bytes)> {
        let mut newest: Vec<Arc<Value>> = (0..3)
            .map(|n| {
                Arc::new(
                    json!({"metadata": {"name": format!("s{n}"), "resourceVersion": "0",
                    "labels": {"team": "a"}}}),
                )
            })
            .collect();
        (1..=count)
            .map(|rv| {
                let slot = (rv % 3) as usize;
                let mut object = json!({"metadata": {"name": format!("s{slot}"),
                    "resourceVersion": rv.to_string(), "labels": {"team": "a"},
                    "managedFields": [{"manager": "m", "operation": "Update",
                        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
                    "data": {"n": rv.to_string()}});
                crate::compact::compact(&mut object);
                let object = Arc::new(object);
                let json = Bytes::from(crate::compact::object_json(&object));
                let previous = std::mem::replace(&mut newest[slot], object.clone());
                let event = WatchEvent::new(
                    rv,
                    EventType::Modified,
                    GroupResource::new("", "configmaps"),
                    object.clone(),
                    Some(previous),
                )
                .with_json(json.clone());
                (Arc::new(event), object, json)
            })
            .collect()
    }

    #[test]
    fn old_events_hold_json_alone_and_replaced_versions_are_freed_then() {
        let extra = 8;
        let hub = Hub::new(Vec::new(), 0, RECENT as u64 * 3);
        let written = versions(RECENT as u64 + extra);
        let trees: Vec<std::sync::Weak<Value>> =
            written.iter().map(|(_, o, _)| Arc::downgrade(o)).collect();
        let events: Vec<Arc<WatchEvent>> = written.iter().map(|(e, _, _)| e.clone()).collect();
        let jsons: Vec<Bytes> = written.iter().map(|(_, _, j)| j.clone()).collect();
        let expected: Vec<Value> = written.iter().map(|(_, o, _)| (**o).clone()).collect();
        // The store holds the newest version of each object; everything else only the events.
        let current: Vec<Arc<Value>> = written
            .iter()
            .rev()
            .take(3)
            .map(|(_, o, _)| o.clone())
            .collect();
        drop(written);
        hub.publish(events.clone());

        let old = extra as usize;
        for (at, event) in events.iter().enumerate() {
            // Old or recent, an event shows the same object, in the shape the cluster holds.
            assert_eq!(*event.object(), expected[at], "event {at}");
            assert_eq!(event.json().as_deref(), Some(&jsons[at][..]), "event {at}");
            let previous = event.previous().expect("each event replaced a version");
            assert_eq!(
                previous["metadata"]["name"],
                expected[at]["metadata"]["name"]
            );
            if at >= 3 {
                assert_eq!(*previous, expected[at - 3], "event {at}'s previous");
            }
            // A version's tree is freed once the events that wrote and replaced it are old
            // (the one replacing event `at` is `at + 3`); the recent ones keep theirs.
            assert_eq!(
                trees[at].upgrade().is_some(),
                at + 3 >= old,
                "event {at}'s tree"
            );
        }
        // An old event's previous is the JSON of the event that wrote it, not another copy.
        let Body::Old { previous, .. } = &*events[4].body() else {
            panic!("event 4 is old")
        };
        assert_eq!(
            previous.as_ref().map(|p| p.as_ptr()),
            Some(jsons[1].as_ptr())
        );
        // A response finds the JSON of a recent event by its very object, not by an equal copy.
        let newest = events.last().unwrap();
        assert_eq!(hub.stored_json(&current[0]), newest.json());
        assert_eq!(hub.stored_json(&Arc::new((*current[0]).clone())), None);
        assert_eq!(hub.stored_json(&events[0].object()), None);
        // The history still replays every event.
        let (replay, _rx) = hub.subscribe_after(0).unwrap();
        assert_eq!(replay.len(), RECENT + extra as usize);
    }

    #[test]
    fn a_loaded_history_is_held_as_json_but_for_its_newest_events() {
        let loaded: Vec<WatchEvent> = versions(RECENT as u64 + 2)
            .into_iter()
            .map(|(e, _, j)| WatchEvent::from_stored(e.rv, &e.to_stored_with(&j)).unwrap())
            .collect();
        let hub = Hub::new(loaded, RECENT as u64 + 2, RECENT as u64 * 3);
        let (replay, _rx) = hub.subscribe_after(0).unwrap();
        let old: Vec<bool> = replay
            .iter()
            .map(|e| matches!(&*e.body(), Body::Old { .. }))
            .collect();
        assert_eq!(old.iter().filter(|o| **o).count(), 2);
        assert!(old[0] && old[1]);
        assert_eq!(replay[0].object()["data"]["n"], "1");
        assert!(replay[0].object()["metadata"]["managedFields"].is_string());
    }

    #[test]
    fn stored_form_round_trips() {
        let e = event(9);
        let json = crate::compact::object_json(&e.object());
        let back = WatchEvent::from_stored(9, &e.to_stored_with(&json)).unwrap();
        assert_eq!(back.gr, e.gr);
        assert_eq!(back.object(), e.object());
        let bytes = serde_json::to_vec(&*e.object()).unwrap();
        let spliced = WatchEvent::from_stored(9, &e.to_stored_with(&bytes)).unwrap();
        assert_eq!(spliced.object(), e.object());
        assert_eq!(spliced.type_, EventType::Added);
    }
}
