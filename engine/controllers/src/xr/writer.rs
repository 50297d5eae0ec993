//! The XR's own metadata and spec writes during a pass: the finalizer, the selected Composition
//! and revision, and the inventory. What to write is decided by [`XrWriter::patch`] (pure);
//! [`XrWriter::flush`] writes it.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};
use strata_core::wire;

use super::XrContext;
use crate::error::{Error, Result};
use crate::inventory::ResourceRef;
use crate::shape::Shape;
use crate::shared;

/// The XR as this pass knows it, and the metadata and spec fields still to write to it. All of
/// them (finalizer, selected Composition and revision, inventory) go out as one merge patch
/// guarded by the resourceVersion they were decided on: a concurrent write makes it fail with
/// a 409 and the pass is retried on the newer version instead of overwriting it.
pub(super) struct XrWriter<'a> {
    ctx: &'a XrContext,
    api: Api<DynamicObject>,
    /// The newest version: what the last write returned, or what the pass started from.
    pub(super) current: DynamicObject,
    /// `current` as JSON, made once per version: a pass reads it at every step (selection,
    /// each render round, the connection details, the status).
    json: Option<Arc<Value>>,
    id: String,
    /// Machinery fields to write with the next flush (under `spec`, or `spec.crossplane`).
    spec: Map<String, Value>,
    shape: Shape,
}

impl<'a> XrWriter<'a> {
    pub(super) fn new(
        ctx: &'a XrContext,
        api: Api<DynamicObject>,
        current: DynamicObject,
        id: String,
    ) -> Self {
        Self {
            ctx,
            api,
            current,
            json: None,
            id,
            spec: Map::new(),
            shape: ctx.shape(),
        }
    }

    /// `current` as JSON.
    pub(super) fn value(&mut self) -> Result<Arc<Value>> {
        if let Some(json) = &self.json {
            return Ok(json.clone());
        }
        let json =
            Arc::new(
                serde_json::to_value(&self.current).map_err(|source| Error::Serialize {
                    object: self.id.clone(),
                    source,
                })?,
            );
        self.json = Some(json.clone());
        Ok(json)
    }

    /// Queues spec fields (the selection) for the next flush.
    pub(super) fn record_spec(&mut self, fields: Map<String, Value>) {
        self.spec.extend(fields);
    }

    /// Queues the inventory `refs` for the next flush.
    pub(super) fn record_inventory(&mut self, refs: &[ResourceRef]) {
        self.spec.insert(
            "resourceRefs".into(),
            json!(ResourceRef::to_inventory(
                refs,
                self.current.namespace().as_deref()
            )),
        );
    }

    /// The merge patch the next flush writes: the pending spec fields, and the finalizer when
    /// it is missing; `None` when there is nothing to write.
    fn patch(&mut self) -> Option<Value> {
        let finalizers =
            shared::finalizers_with(self.current.finalizers(), wire::FINALIZER_COMPOSITE, true);
        if finalizers.is_none() && self.spec.is_empty() {
            return None;
        }
        let mut meta = Map::new();
        meta.insert(
            "resourceVersion".into(),
            json!(self.current.resource_version()),
        );
        if let Some(f) = finalizers {
            meta.insert("finalizers".into(), json!(f));
        }
        let mut patch = json!({"metadata": meta});
        if !self.spec.is_empty()
            && let Some(o) = patch.as_object_mut()
        {
            let fields = std::mem::take(&mut self.spec);
            o.insert("spec".into(), Value::Object(self.shape.spec_patch(fields)));
        }
        Some(patch)
    }

    /// Writes the pending spec fields, and the finalizer when it is missing, in one patch.
    pub(super) async fn flush(&mut self) -> Result<()> {
        let Some(patch) = self.patch() else {
            return Ok(());
        };
        let written = self
            .api
            .patch(
                &self.current.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    "recording the selection and inventory of",
                    self.id.clone(),
                    e,
                )
            })?;
        self.ctx.shared.newest.wrote(&self.current, &written);
        self.current = written;
        self.json = None;
        Ok(())
    }
}
