//! Crossplane's own kinds, the pure part: how an `apiextensions.crossplane.io` object becomes
//! the native `apiextensions.strata.dev` object of the same name, what the mirror controller
//! ([`crate::mirror`]) must do about it, and what the Crossplane object's status says.
//!
//! Why a conversion and not a second set of controllers: the native kinds already have one
//! implementation of every rule (CRD generation, revisions, selection, rendering), and
//! [`strata_core::load`] already reads Crossplane's forms for `strata render`. A Crossplane
//! object is loaded with it and server-side applied as the native object, owned by the
//! Crossplane object (deleting it deletes the native one) and labelled with its origin. The
//! native status (an XRD's `Established` / `Offered`) is copied back, next to a `Synced`
//! condition that says whether the conversion succeeded. A native object of the same name that
//! a user made is never overwritten: that is a `Synced=False` condition naming it.
//!
//! On a cluster that already runs Crossplane, its CRDs of `apiextensions.crossplane.io` exist
//! and are not Strata's ([`coexistence`]): Strata then serves only its native kinds.

use std::collections::BTreeMap;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};
use strata_core::load::{self, SourcedValue};
use strata_core::model::XrScope;
use strata_core::wire;

use crate::conditions::{self, SYNCED, Wanted};

/// Crossplane's label naming a CompositionRevision's Composition.
const CROSSPLANE_LABEL_COMPOSITION_NAME: &str = "crossplane.io/composition-name";

/// The Crossplane kinds Strata serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrossplaneKind {
    Xrd,
    Composition,
    CompositionRevision,
    EnvironmentConfig,
}

impl CrossplaneKind {
    pub(crate) const ALL: [CrossplaneKind; 4] = [
        CrossplaneKind::Xrd,
        CrossplaneKind::Composition,
        CrossplaneKind::CompositionRevision,
        CrossplaneKind::EnvironmentConfig,
    ];

    pub(crate) fn kind(self) -> &'static str {
        match self {
            CrossplaneKind::Xrd => "CompositeResourceDefinition",
            CrossplaneKind::Composition => "Composition",
            CrossplaneKind::CompositionRevision => "CompositionRevision",
            CrossplaneKind::EnvironmentConfig => "EnvironmentConfig",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            CrossplaneKind::Xrd => "compositeresourcedefinitions",
            CrossplaneKind::Composition => "compositions",
            CrossplaneKind::CompositionRevision => "compositionrevisions",
            CrossplaneKind::EnvironmentConfig => "environmentconfigs",
        }
    }

    /// The version the controllers read and write (the CRD's storage version).
    fn storage_version(self) -> &'static str {
        match self {
            CrossplaneKind::EnvironmentConfig => "v1beta1",
            _ => "v1",
        }
    }

    /// The Crossplane resource.
    pub(crate) fn crossplane(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                wire::CROSSPLANE_GROUP_APIEXTENSIONS,
                self.storage_version(),
                self.kind(),
            ),
            self.plural(),
        )
    }

    /// The native resource it is converted to.
    pub(crate) fn native(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                wire::GROUP_APIEXTENSIONS,
                strata_core::model::VERSION,
                self.kind(),
            ),
            self.plural(),
        )
    }

    /// The CRD's name (`plural.group`).
    pub(crate) fn crd_name(self) -> String {
        format!("{}.{}", self.plural(), wire::CROSSPLANE_GROUP_APIEXTENSIONS)
    }
}

/// Why a Crossplane object has no native counterpart.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConvertError {
    /// The object does not load as Strata reads Crossplane's form (the message names the field
    /// or the pipeline step).
    #[error("{0}")]
    Invalid(String),
    #[error("the object has no metadata.name or metadata.uid yet")]
    Unnamed,
}

/// The native object (for server-side apply) that a Crossplane object converts to.
pub(crate) fn convert(kind: CrossplaneKind, object: &Value) -> Result<Value, ConvertError> {
    let s = |p: &str| object.pointer(p).and_then(Value::as_str);
    let (Some(name), Some(uid)) = (s("/metadata/name"), s("/metadata/uid")) else {
        return Err(ConvertError::Unnamed);
    };
    let api_version = s("/apiVersion").unwrap_or_default();
    // What the loader reads: the user's content, without server-set metadata and status.
    let mut input = object.clone();
    if let Some(o) = input.as_object_mut() {
        o.remove("status");
        o.insert("metadata".into(), json!({"name": name}));
    }
    let doc = |value: Value| SourcedValue {
        source: format!("{} {name}", kind.kind()),
        document: 1,
        value,
    };
    let invalid = |e: load::LoadError| ConvertError::Invalid(e.message);
    let mut labels: BTreeMap<String, String> = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let (field, payload) = match kind {
        CrossplaneKind::Xrd => {
            let mut xrd = load::xrd(&doc(input)).map_err(invalid)?;
            if xrd.spec.scope.is_none() {
                // The CRD defaults it per version; an object stored before that still converts.
                xrd.spec.scope = Some(if api_version.ends_with("/v2") {
                    XrScope::Namespaced
                } else {
                    XrScope::LegacyCluster
                });
            }
            ("spec", to_value(&xrd.spec)?)
        }
        CrossplaneKind::Composition => {
            let c = load::composition(&doc(input)).map_err(invalid)?;
            ("spec", to_value(&c.spec)?)
        }
        CrossplaneKind::CompositionRevision => {
            // A revision is a Composition's spec and a number.
            let mut spec = input.get("spec").cloned().unwrap_or(Value::Null);
            let revision = spec
                .as_object_mut()
                .and_then(|o| o.remove("revision"))
                .unwrap_or(Value::Null);
            let Some(revision) = revision.as_i64() else {
                return Err(ConvertError::Invalid(format!(
                    "spec.revision: required integer, got {revision}"
                )));
            };
            let composition = json!({
                "apiVersion": format!("{}/v1", wire::CROSSPLANE_GROUP_APIEXTENSIONS),
                "kind": "Composition",
                "metadata": {"name": name},
                "spec": spec,
            });
            let c = load::composition(&doc(composition)).map_err(invalid)?;
            let mut spec = to_value(&c.spec)?;
            if let Some(o) = spec.as_object_mut() {
                o.insert("revision".into(), json!(revision));
            }
            if let Some(composition) = labels.remove(CROSSPLANE_LABEL_COMPOSITION_NAME) {
                labels.insert(wire::LABEL_COMPOSITION_NAME.to_owned(), composition);
            }
            ("spec", spec)
        }
        CrossplaneKind::EnvironmentConfig => {
            let c = load::environment_config(&doc(input)).map_err(invalid)?;
            let data = if c.data.is_null() { json!({}) } else { c.data };
            ("data", data)
        }
    };
    labels.insert(
        wire::LABEL_ORIGIN.to_owned(),
        wire::CROSSPLANE_GROUP_APIEXTENSIONS.to_owned(),
    );
    let native = kind.native();
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(native.api_version));
    out.insert("kind".into(), json!(native.kind));
    out.insert(
        "metadata".into(),
        json!({
            "name": name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": api_version,
                "kind": kind.kind(),
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        }),
    );
    out.insert(field.into(), payload);
    Ok(Value::Object(out))
}

fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, ConvertError> {
    serde_json::to_value(t).map_err(|e| ConvertError::Invalid(e.to_string()))
}

/// What the mirror controller does for one Crossplane object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MirrorStep {
    /// Server-side apply the native object.
    Apply(Value),
    /// The native object already is what the conversion gives.
    Current,
    /// A native object of this name exists and was not made from this Crossplane object.
    Clash(String),
    /// The Crossplane object does not convert.
    Invalid(String),
}

/// Decides from the Crossplane object and the native object of the same name, if any.
pub(crate) fn plan(kind: CrossplaneKind, object: &Value, native: Option<&Value>) -> MirrorStep {
    let desired = match convert(kind, object) {
        Ok(d) => d,
        Err(e) => return MirrorStep::Invalid(e.to_string()),
    };
    let Some(native) = native else {
        return MirrorStep::Apply(desired);
    };
    let uid = object.pointer("/metadata/uid");
    let ours = native
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == uid));
    if !ours {
        let native_ref = kind.native();
        return MirrorStep::Clash(format!(
            "{} {} `{}` already exists and was not made from this object; Strata does not \
             overwrite it: delete or rename one of them",
            native_ref.api_version,
            native_ref.kind,
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    if conditions::contains(native, &desired) {
        MirrorStep::Current
    } else {
        MirrorStep::Apply(desired)
    }
}

/// The Crossplane object's status: the native object's conditions as they are, and `Synced`
/// saying whether the conversion holds.
pub(crate) fn status(
    step: &MirrorStep,
    observed: Option<&Value>,
    native: Option<&Value>,
    now: &str,
) -> Value {
    let mut base = match observed {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let ours: Vec<Value> = base
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(SYNCED))
        .cloned()
        .collect();
    let mut conditions: Vec<Value> = match step {
        // The native object's conditions are only the Crossplane object's while it mirrors it.
        MirrorStep::Apply(_) | MirrorStep::Current => native
            .and_then(|n| n.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some(SYNCED))
            .collect(),
        MirrorStep::Clash(_) | MirrorStep::Invalid(_) => Vec::new(),
    };
    conditions.extend(ours);
    base.insert("conditions".into(), Value::Array(conditions));
    let synced = match step {
        MirrorStep::Apply(_) | MirrorStep::Current => Wanted::yes(SYNCED, "Converted"),
        MirrorStep::Clash(m) => Wanted::no(SYNCED, "NameClash", m.clone()),
        MirrorStep::Invalid(m) => Wanted::no(SYNCED, "ConversionFailed", m.clone()),
    };
    let out = conditions::with_conditions(&Value::Object(base), &[synced], now);
    sort_conditions(out)
}

/// Conditions in a stable order (by type), so an unchanged status compares equal.
fn sort_conditions(mut status: Value) -> Value {
    if let Some(cs) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        cs.sort_by(|a, b| {
            let t = |c: &Value| {
                c.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            t(a).cmp(&t(b))
        });
    }
    status
}

/// Whether Strata serves Crossplane's group on this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Coexistence {
    /// No CRD of Crossplane's kinds exists, or only Strata's: install them and mirror.
    Serve,
    /// Crossplane (or someone else) owns these CRDs: leave them alone, serve only the native kinds.
    Skip { foreign: Vec<String> },
}

/// Decides from the labels of the Crossplane CRDs that exist (`None`: the CRD does not exist).
pub(crate) fn coexistence(observed: &[(String, Option<BTreeMap<String, String>>)]) -> Coexistence {
    let (key, value) = strata_core::crd::CROSSPLANE_CRD_LABEL;
    let foreign: Vec<String> = observed
        .iter()
        .filter(|(_, labels)| {
            labels
                .as_ref()
                .is_some_and(|l| l.get(key).map(String::as_str) != Some(value))
        })
        .map(|(name, _)| name.clone())
        .collect();
    if foreign.is_empty() {
        Coexistence::Serve
    } else {
        Coexistence::Skip { foreign }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn meta(name: &str) -> Value {
        json!({"name": name, "uid": "u-1", "resourceVersion": "7", "labels": {"team": "a"},
               "managedFields": [{"manager": "kubectl"}]})
    }

    fn xrd(api_version: &str, scope: Option<&str>) -> Value {
        let mut x = json!({
            "apiVersion": api_version,
            "kind": "CompositeResourceDefinition",
            "metadata": meta("xapps.example.org"),
            "spec": {
                "group": "example.org",
                "names": {"kind": "XApp", "plural": "xapps"},
                "versions": [{"name": "v1", "served": true, "referenceable": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        });
        if let Some(s) = scope {
            x["spec"]["scope"] = json!(s);
        }
        x
    }

    fn pipeline(function: &str, input: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.crossplane.io/v1",
            "kind": "Composition",
            "metadata": meta("app"),
            "spec": {
                "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
                "mode": "Pipeline",
                "pipeline": [{"step": "render", "functionRef": {"name": function}, "input": input}],
            },
        })
    }

    fn pt_input() -> Value {
        json!({"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources", "resources": [
            {"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"},
             "patches": [{"fromFieldPath": "spec.x", "toFieldPath": "data.x"}]}]})
    }

    #[test]
    fn an_xrd_converts_to_the_native_xrd_owned_by_and_labelled_after_the_crossplane_one() {
        let native = convert(
            CrossplaneKind::Xrd,
            &xrd("apiextensions.crossplane.io/v1", Some("LegacyCluster")),
        )
        .unwrap();
        assert_eq!(native["apiVersion"], "apiextensions.strata.dev/v1alpha1");
        assert_eq!(native["kind"], "CompositeResourceDefinition");
        assert_eq!(
            native["metadata"],
            json!({"name": "xapps.example.org",
                   "labels": {"team": "a", "strata.dev/origin": "apiextensions.crossplane.io"},
                   "ownerReferences": [{"apiVersion": "apiextensions.crossplane.io/v1",
                       "kind": "CompositeResourceDefinition", "name": "xapps.example.org",
                       "uid": "u-1", "controller": true, "blockOwnerDeletion": true}]}),
            "server-set metadata is not copied"
        );
        assert_eq!(native["spec"]["scope"], "LegacyCluster");
        assert!(
            native.get("status").is_none(),
            "the status is the native controller's"
        );
    }

    #[test]
    fn an_xrd_without_a_scope_takes_crossplane_s_default_of_its_version() {
        let v1 = convert(
            CrossplaneKind::Xrd,
            &xrd("apiextensions.crossplane.io/v1", None),
        )
        .unwrap();
        assert_eq!(v1["spec"]["scope"], "LegacyCluster");
        let v2 = convert(
            CrossplaneKind::Xrd,
            &xrd("apiextensions.crossplane.io/v2", None),
        )
        .unwrap();
        assert_eq!(v2["spec"]["scope"], "Namespaced");
    }

    #[test]
    fn a_pipeline_composition_converts_to_the_native_resources_it_runs() {
        let native = convert(
            CrossplaneKind::Composition,
            &pipeline("function-patch-and-transform", pt_input()),
        )
        .unwrap();
        assert_eq!(native["spec"]["resources"][0]["name"], "cm");
        assert_eq!(native["spec"]["compositeTypeRef"]["kind"], "XApp");
    }

    #[test]
    fn a_pipeline_with_a_function_step_converts_keeping_its_steps() {
        let step = plan(
            CrossplaneKind::Composition,
            &pipeline(
                "function-go-templating",
                json!({"apiVersion": "gotemplating.fn.crossplane.io/v1beta1", "kind": "GoTemplate"}),
            ),
            None,
        );
        let MirrorStep::Apply(native) = step else {
            panic!("{step:?}")
        };
        assert_eq!(native["spec"]["mode"], "Pipeline");
        assert_eq!(
            native["spec"]["pipeline"][0]["functionRef"]["name"],
            "function-go-templating"
        );
        assert_eq!(native["spec"]["resources"], json!([]));
    }

    #[test]
    fn a_step_without_a_function_is_an_invalid_conversion_naming_the_step() {
        let mut composition = pipeline(
            "function-go-templating",
            json!({"apiVersion": "gotemplating.fn.crossplane.io/v1beta1", "kind": "GoTemplate"}),
        );
        composition["spec"]["pipeline"][0]
            .as_object_mut()
            .unwrap()
            .remove("functionRef");
        let step = plan(CrossplaneKind::Composition, &composition, None);
        let MirrorStep::Invalid(message) = step else {
            panic!("{step:?}")
        };
        assert!(
            message.contains("spec.pipeline[0].functionRef.name"),
            "{message}"
        );
    }

    #[test]
    fn a_revision_converts_with_its_number_and_its_composition_label_in_strata_s_name() {
        let mut rev = pipeline("function-patch-and-transform", pt_input());
        rev["kind"] = json!("CompositionRevision");
        rev["metadata"]["labels"] = json!({"crossplane.io/composition-name": "app"});
        rev["spec"]["revision"] = json!(3);
        let native = convert(CrossplaneKind::CompositionRevision, &rev).unwrap();
        assert_eq!(native["spec"]["revision"], 3);
        assert_eq!(native["spec"]["resources"][0]["name"], "cm");
        assert_eq!(
            native["metadata"]["labels"]["strata.dev/composition-name"],
            "app"
        );
        rev["spec"].as_object_mut().unwrap().remove("revision");
        assert_eq!(
            convert(CrossplaneKind::CompositionRevision, &rev),
            Err(ConvertError::Invalid(
                "spec.revision: required integer, got null".into()
            ))
        );
    }

    #[test]
    fn an_environment_config_converts_its_data() {
        let env = json!({"apiVersion": "apiextensions.crossplane.io/v1beta1",
            "kind": "EnvironmentConfig", "metadata": meta("prod"), "data": {"region": "eu"}});
        let native = convert(CrossplaneKind::EnvironmentConfig, &env).unwrap();
        assert_eq!(native["data"], json!({"region": "eu"}));
        assert_eq!(native["kind"], "EnvironmentConfig");
    }

    #[test]
    fn mirror_steps_with_a_reason_per_row() {
        let x = xrd("apiextensions.crossplane.io/v1", Some("LegacyCluster"));
        let desired = convert(CrossplaneKind::Xrd, &x).unwrap();
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("native-uid");
        live["status"] = json!({"conditions": []});
        let mut changed = live.clone();
        changed["spec"]["group"] = json!("other.org");
        let mut users = desired.clone();
        users["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        let rows: Vec<(&str, Option<&Value>, &str)> = vec![
            ("no native object yet: apply", None, "apply"),
            (
                "the native object is the conversion: nothing to write",
                Some(&live),
                "current",
            ),
            (
                "the native object drifted: apply again",
                Some(&changed),
                "apply",
            ),
            (
                "a user's own native object of the same name: never overwritten",
                Some(&users),
                "clash",
            ),
        ];
        for (reason, native, want) in rows {
            let got = match plan(CrossplaneKind::Xrd, &x, native) {
                MirrorStep::Apply(d) => {
                    assert_eq!(d, desired, "{reason}");
                    "apply"
                }
                MirrorStep::Current => "current",
                MirrorStep::Clash(m) => {
                    assert!(m.contains("apiextensions.strata.dev/v1alpha1 CompositeResourceDefinition `xapps.example.org` already exists"), "{m}");
                    "clash"
                }
                MirrorStep::Invalid(m) => panic!("{reason}: {m}"),
            };
            assert_eq!(got, want, "{reason}");
        }
    }

    #[test]
    fn the_status_copies_native_conditions_and_adds_synced() {
        let native = json!({"status": {"conditions": [
            {"type": "Offered", "status": "True", "reason": "WatchingCompositeResourceClaim", "lastTransitionTime": "t0"},
            {"type": "Established", "status": "True", "reason": "WatchingCompositeResource", "lastTransitionTime": "t0"}]}});
        let s = status(&MirrorStep::Current, None, Some(&native), "t1");
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Established", "Offered", "Synced"]);
        assert_eq!(s["conditions"][2]["reason"], "Converted");
        assert_eq!(
            status(&MirrorStep::Current, Some(&s), Some(&native), "t2"),
            s,
            "deciding the same status again changes nothing"
        );
        let failed = status(
            &MirrorStep::Invalid("spec.x: bad".into()),
            Some(&s),
            Some(&native),
            "t3",
        );
        assert_eq!(
            failed["conditions"],
            json!([{"type": "Synced", "status": "False", "reason": "ConversionFailed",
                    "message": "spec.x: bad", "lastTransitionTime": "t3"}]),
            "a native object that is not this object's mirror lends it no conditions"
        );
    }

    #[test]
    fn coexistence_with_a_reason_per_row() {
        let ours = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "strata".to_owned(),
        )]));
        let theirs = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "crossplane".to_owned(),
        )]));
        let n = |s: &str| s.to_owned();
        type Observed = Vec<(String, Option<BTreeMap<String, String>>)>;
        let rows: Vec<(&str, Observed, Coexistence)> = vec![
            (
                "a fresh cluster: serve",
                vec![(n("a"), None), (n("b"), None)],
                Coexistence::Serve,
            ),
            (
                "our own CRDs from an earlier start: serve",
                vec![(n("a"), ours.clone()), (n("b"), None)],
                Coexistence::Serve,
            ),
            (
                "Crossplane's CRDs: skip, naming them",
                vec![
                    (n("a"), ours.clone()),
                    (n("b"), theirs),
                    (n("c"), Some(BTreeMap::new())),
                ],
                Coexistence::Skip {
                    foreign: vec![n("b"), n("c")],
                },
            ),
        ];
        for (reason, observed, want) in rows {
            assert_eq!(coexistence(&observed), want, "{reason}");
        }
    }
}
