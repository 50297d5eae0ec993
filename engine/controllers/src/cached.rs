//! How the XR and claim controllers cache the objects they reconcile: metadata parsed, the rest
//! of the object (spec, status, anything else) held as its compact JSON text.
//!
//! Both controllers keep every XR and every claim of their kinds in memory (kube-runtime's
//! reflector store), while a pass reads one object and the mappers that fan a change out to
//! XRs read metadata and a few fields. As a `serde_json` tree an object takes four to five times
//! its JSON (every non-empty map is a B-tree node with room for eleven entries), and with ten
//! thousand claims those trees were about 175 MB of the process: another full copy of what the
//! embedded API server already holds. [`Cached`] keeps the metadata (what the controller's
//! queue, the mappers and the gates read) and the body as one string; a pass parses the body
//! once ([`Cached::object`]), reading one contiguous string instead of cloning a tree scattered
//! over the heap.
//!
//! The watch still decodes each event into a [`DynamicObject`] (what the watch's own consumers
//! read), which [`Cached::from`] then packs; `managedFields` are dropped on the way, as the
//! controllers never read them.
//!
//! Written by hand: kube offers metadata-only objects (`PartialObjectMeta`, with no body at all)
//! but nothing that keeps a body compactly, and serde_json's `RawValue` needs its `raw_value`
//! feature, which would change (and rebuild) every crate of the workspace that uses serde_json;
//! a string of the body's JSON is all this needs.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, TypeMeta};
use kube::core::DynamicResourceScope;
use kube::runtime::watcher;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An object as the XR and claim controllers cache it (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    /// apiVersion and kind, when the object carried them.
    pub types: Option<TypeMeta>,
    /// The object's metadata, without `managedFields`.
    pub metadata: ObjectMeta,
    /// Every other top-level field, as compact JSON text of one map.
    body: Box<str>,
}

impl Cached {
    /// The whole object, its body parsed.
    pub fn object(&self) -> DynamicObject {
        DynamicObject {
            types: self.types.clone(),
            metadata: self.metadata.clone(),
            data: self.data(),
        }
    }

    /// The object's body (everything but apiVersion, kind and metadata), parsed. Packed by
    /// [`Cached::from`] from a map, so it parses back into one; an empty map otherwise.
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

impl From<&DynamicObject> for Cached {
    /// Packed from a borrowed object: its body serialized in place, its metadata copied
    /// without `managedFields`.
    fn from(object: &DynamicObject) -> Self {
        let m = &object.metadata;
        let metadata = ObjectMeta {
            annotations: m.annotations.clone(),
            creation_timestamp: m.creation_timestamp.clone(),
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp.clone(),
            finalizers: m.finalizers.clone(),
            generate_name: m.generate_name.clone(),
            generation: m.generation,
            labels: m.labels.clone(),
            managed_fields: None,
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            owner_references: m.owner_references.clone(),
            resource_version: m.resource_version.clone(),
            self_link: m.self_link.clone(),
            uid: m.uid.clone(),
        };
        let body = serde_json::to_string(&object.data).unwrap_or_else(|_| "{}".into());
        Self {
            types: object.types.clone(),
            metadata,
            body: body.into_boxed_str(),
        }
    }
}

impl From<DynamicObject> for Cached {
    fn from(object: DynamicObject) -> Self {
        let DynamicObject {
            types,
            mut metadata,
            data,
        } = object;
        metadata.managed_fields = None;
        // Serializing a `Value` cannot fail: its map keys are strings.
        let body = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
        Self {
            types,
            metadata,
            body: body.into_boxed_str(),
        }
    }
}

/// Decoded as a [`DynamicObject`], then packed, so a `Controller<Cached>` can be built like
/// any other.
impl<'de> Deserialize<'de> for Cached {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DynamicObject::deserialize(deserializer).map(Self::from)
    }
}

/// Of the kind its [`ApiResource`] names, like [`DynamicObject`].
macro_rules! dynamic_resource {
    ($type:ty) => {
        impl Resource for $type {
            type DynamicType = ApiResource;
            type Scope = DynamicResourceScope;

            fn group(dt: &ApiResource) -> Cow<'_, str> {
                dt.group.as_str().into()
            }

            fn version(dt: &ApiResource) -> Cow<'_, str> {
                dt.version.as_str().into()
            }

            fn kind(dt: &ApiResource) -> Cow<'_, str> {
                dt.kind.as_str().into()
            }

            fn api_version(dt: &ApiResource) -> Cow<'_, str> {
                dt.api_version.as_str().into()
            }

            fn plural(dt: &ApiResource) -> Cow<'_, str> {
                dt.plural.as_str().into()
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

dynamic_resource!(Cached);
dynamic_resource!(Owned);

/// A composed object as the composed watches read it: which XR controls it, nothing else.
///
/// Those watches only route a change to the controlling XR, but decoded as a
/// [`DynamicObject`] every event built the whole object as trees (its `managedFields`
/// included, and the body buffered once more for the flattened fields). This reads the
/// metadata's identity and owner references and skips the rest unparsed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "OwnedWire")]
pub struct Owned {
    /// Name, namespace, uid, resourceVersion and owner references; nothing else.
    pub metadata: ObjectMeta,
}

#[derive(Deserialize)]
struct OwnedWire {
    #[serde(default)]
    metadata: OwnedMeta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<OwnedWire> for Owned {
    fn from(wire: OwnedWire) -> Self {
        let m = wire.metadata;
        Owned {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                owner_references: m.owner_references,
                ..ObjectMeta::default()
            },
        }
    }
}

/// A watch event of whole objects as one of cached objects, for the reflector's store.
pub(crate) fn event(event: watcher::Event<DynamicObject>) -> watcher::Event<Cached> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(o.into()),
        watcher::Event::Delete(o) => watcher::Event::Delete(o.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(o.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn xr() -> DynamicObject {
        DynamicObject {
            types: Some(TypeMeta {
                api_version: "example.org/v1".into(),
                kind: "XDatabase".into(),
            }),
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("team-a".into()),
                resource_version: Some("42".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: json!({
                "spec": {"size": 20, "tags": ["a", "b"], "empty": {}, "none": null},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                "extra": "kept",
            }),
        }
    }

    #[test]
    fn a_cached_object_gives_back_the_object_without_managed_fields() {
        let original = xr();
        let cached = Cached::from(original.clone());
        let mut expected = original;
        expected.metadata.managed_fields = None;
        assert_eq!(cached.object(), expected);
        assert_eq!(cached.data(), expected.data);
        assert_eq!(cached.meta().labels, expected.metadata.labels);
        assert_eq!(
            serde_json::to_value(cached.object()).unwrap(),
            serde_json::to_value(&expected).unwrap(),
            "the same JSON as the object it was made from"
        );
    }

    #[test]
    fn packing_a_borrowed_object_equals_packing_it_whole() {
        let original = xr();
        assert_eq!(Cached::from(&original), Cached::from(original.clone()));
    }

    #[test]
    fn a_cached_object_decodes_from_the_wire_like_a_dynamic_object() {
        let wire = json!({
            "apiVersion": "example.org/v1",
            "kind": "XDatabase",
            "metadata": {"name": "db", "managedFields": [{"manager": "m", "operation": "Apply"}]},
            "spec": {"size": 20},
        });
        let cached: Cached = serde_json::from_value(wire).unwrap();
        assert_eq!(cached.metadata.name.as_deref(), Some("db"));
        assert_eq!(cached.metadata.managed_fields, None);
        assert_eq!(cached.data(), json!({"spec": {"size": 20}}));
        assert_eq!(
            cached.types.as_ref().map(|t| t.kind.as_str()),
            Some("XDatabase")
        );
    }

    #[test]
    fn an_owned_object_reads_its_identity_and_owners_only() {
        let wire = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "db-config",
                "namespace": "team-a",
                "uid": "u-1",
                "resourceVersion": "42",
                "labels": {"a": "b"},
                "ownerReferences": [{
                    "apiVersion": "example.org/v1", "kind": "XDatabase", "name": "db",
                    "uid": "u-0", "controller": true
                }],
                "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {}}}],
            },
            "data": {"k": "v"},
        });
        let owned: Owned = serde_json::from_value(wire).unwrap();
        assert_eq!(owned.meta().name.as_deref(), Some("db-config"));
        assert_eq!(owned.meta().namespace.as_deref(), Some("team-a"));
        assert_eq!(owned.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(owned.meta().uid.as_deref(), Some("u-1"));
        let owners = owned.meta().owner_references.as_deref().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].name.as_str()),
            ("XDatabase", "db")
        );
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(
            owned.meta().labels,
            None,
            "what routing does not read is skipped"
        );
        assert_eq!(owned.meta().managed_fields, None);
        let bare: Owned = serde_json::from_value(json!({"kind": "ConfigMap"})).unwrap();
        assert_eq!(bare.metadata, ObjectMeta::default());
    }

    #[test]
    fn every_watch_event_keeps_its_kind() {
        let applied = event(watcher::Event::Apply(xr()));
        assert!(matches!(applied, watcher::Event::Apply(c) if c.data()["extra"] == "kept"));
        assert!(matches!(
            event(watcher::Event::Delete(xr())),
            watcher::Event::Delete(_)
        ));
        assert!(matches!(
            event(watcher::Event::InitApply(xr())),
            watcher::Event::InitApply(_)
        ));
        assert!(matches!(event(watcher::Event::Init), watcher::Event::Init));
        assert!(matches!(
            event(watcher::Event::InitDone),
            watcher::Event::InitDone
        ));
    }
}
