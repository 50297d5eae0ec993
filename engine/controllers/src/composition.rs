//! The Composition revision controller: every distinct Composition spec becomes one immutable
//! CompositionRevision `<composition>-<short hash>`, numbered in order, carrying the
//! Composition's labels plus [`wire::LABEL_COMPOSITION_NAME`], owned by the Composition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use strata_core::model::{Composition, CompositionRevision, CompositionRevisionSpec};
use strata_core::wire;
use strata_schema::pointer::Pointer;

use crate::error::{Error, ErrorClass, Result, is_conflict, is_not_found};
use crate::revision::{self, RevisionStep};
use crate::shared::Shared;

pub(crate) const CONTROLLER: &str = "composition-revision";

pub(crate) async fn reconcile(comp: Arc<Composition>, shared: Arc<Shared>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_composition(&comp, &shared).await;
    shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    if let Err(e) = &result {
        shared
            .warn(
                &comp.object_ref(&()),
                wire::REASON_CREATE_REVISION,
                e.to_string(),
            )
            .await;
    }
    result
}

pub(crate) fn error_policy(_comp: Arc<Composition>, error: &Error, shared: Arc<Shared>) -> Action {
    Action::requeue(error.retry_after(shared.settings.resync))
}

async fn reconcile_composition(comp: &Composition, shared: &Shared) -> Result<Action> {
    let name = comp.name_any();
    if comp.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let what = format!("Composition {name}");
    let spec = serde_json::to_value(&comp.spec).map_err(|source| Error::Serialize {
        object: what.clone(),
        source,
    })?;
    let hash = revision::spec_hash(&spec);
    let existing: Vec<(String, i64)> = shared
        .revisions
        .state()
        .iter()
        .filter(|r| r.labels().get(wire::LABEL_COMPOSITION_NAME) == Some(&name))
        .map(|r| (r.name_any(), r.spec.revision))
        .collect();
    let api: Api<CompositionRevision> = Api::all(shared.client.clone());
    match revision::plan_revision(&name, &hash, &existing) {
        RevisionStep::UpToDate => {}
        RevisionStep::Create {
            name: rev_name,
            revision,
        } => {
            let mut labels: BTreeMap<String, String> = comp.labels().clone();
            labels.insert(wire::LABEL_COMPOSITION_NAME.into(), name.clone());
            labels.insert(
                wire::LABEL_COMPOSITION_HASH.into(),
                hash[..hash.len().min(63)].to_owned(),
            );
            let rev = CompositionRevision {
                metadata: ObjectMeta {
                    name: Some(rev_name.clone()),
                    labels: Some(labels),
                    owner_references: comp.controller_owner_ref(&()).map(|o| vec![o]),
                    ..Default::default()
                },
                spec: CompositionRevisionSpec {
                    revision,
                    composition: comp.spec.clone(),
                },
            };
            match api.create(&PostParams::default(), &rev).await {
                Ok(_) => {
                    shared
                        .normal(
                            &comp.object_ref(&()),
                            wire::REASON_CREATE_REVISION,
                            format!("created revision {revision} ({rev_name})"),
                        )
                        .await;
                }
                // The cache was behind; the next event brings it up to date.
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(Error::kube("creating a revision of", what, e)),
            }
        }
        RevisionStep::Promote {
            name: rev_name,
            revision,
        } => {
            api.patch(
                &rev_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"revision": revision}})),
            )
            .await
            .map_err(|e| {
                Error::kube("renumbering", format!("CompositionRevision {rev_name}"), e)
            })?;
        }
    }
    collect_revisions(comp, shared, &existing).await?;
    Ok(Action::requeue(shared.settings.resync))
}

/// Deletes the revisions beyond the history limit that no XR uses. XRs are listed only when
/// there is something to collect, from the kinds the revisions compose.
async fn collect_revisions(
    comp: &Composition,
    shared: &Shared,
    existing: &[(String, i64)],
) -> Result<()> {
    let limit = shared.settings.revision_history_limit;
    if existing.len() <= limit.max(1) {
        return Ok(());
    }
    let name = comp.name_any();
    let own: Vec<Arc<CompositionRevision>> = shared
        .revisions
        .state()
        .into_iter()
        .filter(|r| r.labels().get(wire::LABEL_COMPOSITION_NAME) == Some(&name))
        .collect();
    let kinds: BTreeSet<(String, String)> = own
        .iter()
        .map(|r| {
            let t = &r.spec.composition.composite_type_ref;
            (t.api_version.clone(), t.kind.clone())
        })
        .collect();
    // A revision converted from a Crossplane CompositionRevision is its owner's to delete: the
    // mirror controller would only bring it back.
    let mut in_use: BTreeSet<String> = own
        .iter()
        .filter(|r| {
            r.owner_references().iter().any(|o| {
                o.api_version
                    .starts_with(&format!("{}/", wire::CROSSPLANE_GROUP_APIEXTENSIONS))
            })
        })
        .map(|r| r.name_any())
        .collect();
    for (api_version, kind) in kinds {
        let k = match shared.kinds.resolve(&api_version, &kind).await {
            Ok(k) => k,
            // A kind no longer served has no XRs left to use a revision.
            Err(e) if e.class() != ErrorClass::Transient => continue,
            Err(e) => return Err(e),
        };
        let xrs: Api<DynamicObject> = Api::all_with(shared.client.clone(), &k.resource);
        let list = match xrs.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => {
                return Err(Error::kube(
                    "listing the composite resources using",
                    format!("Composition {name}"),
                    e,
                ));
            }
        };
        in_use.extend(list.items.iter().filter_map(|x| {
            x.data
                .at(&crate::shape::Shape::observed(&x.data).pointer("compositionRevisionRef/name"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        }));
    }
    let api: Api<CompositionRevision> = Api::all(shared.client.clone());
    for old in revision::to_collect(existing, limit, &in_use) {
        match api.delete(&old, &DeleteParams::background()).await {
            Ok(_) => {
                tracing::info!(composition = %name, revision = %old, "deleted an old revision")
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(Error::kube(
                    "deleting",
                    format!("CompositionRevision {old}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}
