//! Which Composition revision and which environment an XR composes with: the store reads, then
//! the pure selections of [`crate::select`] and [`crate::environment`].

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use serde_json::{Map, Value, json};
use strata_core::model::{CompositionRevision, EnvironmentSpec, UpdatePolicy};
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::XrContext;
use crate::environment;
use crate::error::{Error, Result};
use crate::functions::Composer;
use crate::select::{self, CompositionCandidate, RevisionCandidate, SelectionInput};
use crate::shape::Shape;

/// Selects the Composition and revision; returns the revision and the spec fields to write back.
pub(super) fn choose_revision(
    value: &Value,
    ctx: &XrContext,
    id: &str,
) -> Result<(Arc<CompositionRevision>, Option<Value>)> {
    let sh = &ctx.shared;
    let xrd = ctx.xrd.read().unwrap_or_else(|e| e.into_inner());
    let s = |p: &str| value.at(p).and_then(Value::as_str).map(str::to_owned);
    let shape = Shape::of(xrd.spec.scope);
    let at = |field: &str| shape.pointer(field);
    let input = SelectionInput {
        api_version: s("/apiVersion").unwrap_or_default(),
        kind: s("/kind").unwrap_or_default(),
        enforced_ref: xrd
            .spec
            .enforced_composition_ref
            .as_ref()
            .map(|r| r.name.clone()),
        composition_ref: s(&at("compositionRef/name")),
        selector: value
            .at(&at("compositionSelector/matchLabels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            }),
        default_ref: xrd
            .spec
            .default_composition_ref
            .as_ref()
            .map(|r| r.name.clone()),
    };
    let candidates: Vec<CompositionCandidate> = sh
        .compositions
        .state()
        .iter()
        .map(|c| CompositionCandidate {
            name: c.name_any(),
            labels: c.labels().clone(),
            composite_api_version: c.spec.composite_type_ref.api_version.clone(),
            composite_kind: c.spec.composite_type_ref.kind.clone(),
        })
        .collect();
    let composition = select::select_composition(&input, &candidates)
        .map_err(|e| Error::waiting(id, e.to_string()))?;

    let policy = match s(&at("compositionUpdatePolicy")).as_deref() {
        Some("Manual") => UpdatePolicy::Manual,
        Some(_) => UpdatePolicy::Automatic,
        None => xrd
            .spec
            .default_composition_update_policy
            .unwrap_or_default(),
    };
    let all = sh.revisions.state();
    let revision_selector: Option<BTreeMap<String, String>> = value
        .at(&at("compositionRevisionSelector/matchLabels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        });
    let candidates: Vec<RevisionCandidate> = all
        .iter()
        .filter(|r| select::revision_matches(r.labels(), revision_selector.as_ref()))
        .filter_map(|r| {
            Some(RevisionCandidate {
                name: r.name_any(),
                composition: r.labels().get(wire::LABEL_COMPOSITION_NAME)?.clone(),
                revision: r.spec.revision,
            })
        })
        .collect();
    let pinned = s(&at("compositionRevisionRef/name"));
    let Some(revision_name) =
        select::select_revision(&composition, policy, pinned.as_deref(), &candidates)
    else {
        return Err(Error::waiting(
            id,
            format!("Composition `{composition}` has no CompositionRevision yet"),
        ));
    };
    let Some(revision) = all.iter().find(|r| r.name_any() == revision_name).cloned() else {
        return Err(Error::waiting(
            id,
            format!("CompositionRevision `{revision_name}` is not cached yet"),
        ));
    };
    let mut patch = Map::new();
    if s(&at("compositionRef/name")).as_deref() != Some(composition.as_str()) {
        patch.insert("compositionRef".into(), json!({"name": composition}));
    }
    if pinned.as_deref() != Some(revision_name.as_str()) {
        patch.insert(
            "compositionRevisionRef".into(),
            json!({"name": revision_name}),
        );
    }
    Ok((
        revision,
        (!patch.is_empty()).then_some(Value::Object(patch)),
    ))
}

/// The environment the XR composes with: the revision's selection (a pipeline's from its
/// environment step) over the cached EnvironmentConfigs.
pub(super) fn environment(
    value: &Value,
    composer: &Composer,
    revision: &CompositionRevision,
    ctx: &XrContext,
    id: &str,
) -> Result<Option<Value>> {
    let selection = match composer {
        Composer::Native(_) => Ok(revision.spec.composition.environment.clone()),
        Composer::Pipeline(p) => p
            .environment_selection()
            .map_err(|e| Error::invalid(id, e.to_string())),
    };
    selection.and_then(|s| select_environment(value, s.as_ref(), ctx))
}

fn select_environment(
    value: &Value,
    spec: Option<&EnvironmentSpec>,
    ctx: &XrContext,
) -> Result<Option<Value>> {
    let sources = spec
        .map(|e| e.environment_configs.as_slice())
        .unwrap_or_default();
    let xr_refs = strata_core::environment::xr_config_refs(value);
    if sources.is_empty() && xr_refs.is_empty() {
        return Ok(None);
    }
    let configs: Vec<environment::Config> = ctx
        .shared
        .environments
        .state()
        .iter()
        .map(|c| environment::Config {
            name: c.name_any(),
            labels: c.labels().clone(),
            data: c.data.clone(),
        })
        .collect();
    let what = || {
        format!(
            "environment of {}",
            value
                .at("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )
    };
    environment::resolve(value, &xr_refs, spec, &configs)
        .map_err(|e| Error::waiting(what(), e.to_string()))
}
