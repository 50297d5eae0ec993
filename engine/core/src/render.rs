//! `render`: one composite resource (XR) + its compiled Composition + what is observed →
//! the desired composed resources, the XR's status, readiness and connection details.
//!
//! This is the only implementation of composition: the controllers, `strata render`,
//! `strata validate` and the tests all call [`render`]. It is a pure function.
//!
//! Semantics follow Crossplane's patch-and-transform: patch sources are always *observed*
//! objects (the observed XR, the environment, observed composed resources), destinations are
//! always *desired* ones; patches run in order and resources in declaration order; only the XR's
//! status survives from XR-bound patches. Strata adds the dependency graph: a resource with a
//! gating dependency (`dependsOn`, `FromResourceFieldPath`) that is not yet observed Ready is
//! withheld while it does not exist, and released resources are returned in graph order.
//!
//! How errors count depends on how the Composition was written
//! ([`crate::model::CompositionMode`]): in Crossplane's `mode: Resources` a failing patch skips
//! that one resource with a warning ([`RenderOutput::skipped`]) and the XR is taken to be
//! cluster-scoped; in a pipeline (and Strata's native form) it fails the render, and a pipeline's
//! XR does not wait for a resource a `Required` patch withholds, as the function leaves it out.

use std::collections::BTreeMap;

use serde_json::map::Entry;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strata_schema::pointer::Pointer;

use crate::compile::{CompiledComposition, CompiledPatch, CompiledResource, PatchSource};
use crate::connection::{self, ConnectionDetails};
use crate::fieldpath::{AccessError, FieldPath, Segment};
use crate::model::{CompositionMode, FromFieldPathPolicy, PatchType, ToFieldPathPolicy};
use crate::patch::{self, Outcome, PatchError};
use crate::readiness::{self, Readiness};
use crate::wire;

/// An observed composed resource and the data of its connection secret.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The resource as the cluster returned it.
    pub resource: Value,
    /// The data of its connection Secret (empty when it has none).
    pub connection_details: ConnectionDetails,
}

/// Observed composed resources by Composition template name.
pub type ObservedResources = BTreeMap<String, Observed>;

/// Everything a render reads.
#[derive(Clone, Copy, Debug)]
pub struct RenderInput<'a> {
    /// The observed XR (schema defaults already applied).
    pub composite: &'a Value,
    /// The composed resources that exist; a template missing here is to be created.
    pub observed: &'a ObservedResources,
    /// The merged environment data (an object), if any EnvironmentConfig was selected.
    pub environment: Option<&'a Value>,
}

/// A composed resource the render wants to exist.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredResource {
    /// The Composition template name.
    pub name: String,
    /// Declaration index of the template.
    pub index: usize,
    /// The resource to apply: the template's base, patched and stamped with Strata's metadata.
    pub resource: Value,
    /// The readiness checks' verdict on the *observed* resource (not ready when none exists).
    pub readiness: Readiness,
}

/// A composed resource the render does not release yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withheld {
    /// The Composition template name.
    pub name: String,
    /// What it waits for, or why it was skipped, for events and the XR's Ready message.
    pub reason: String,
    /// Set when a `Required` patch's source is missing: the data the resource waits for.
    pub required: Option<RequiredSource>,
}

/// The `Required` patch that withholds a resource and the source path it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredSource {
    /// The patch's index in the resource's patch list (PatchSets expanded).
    pub patch: usize,
    /// The patch's type.
    pub kind: PatchType,
    /// The `fromFieldPath` that is missing (a Combine patch's missing variable).
    pub from_field_path: String,
    /// For a `FromResourceFieldPath` patch, the template name of the resource it reads.
    pub from_resource: Option<String>,
}

impl RequiredSource {
    /// `waiting for spec.parameters.region: Required patch 2 FromCompositeFieldPath`: what the
    /// XR's Ready message, its events and `strata render` say about the withheld resource.
    pub fn explain(&self) -> String {
        let of = match &self.from_resource {
            Some(r) => format!(" of `{r}`"),
            None => String::new(),
        };
        format!(
            "waiting for {}{of}: Required patch {} {}",
            self.from_field_path,
            self.patch,
            self.kind.as_str()
        )
    }
}

/// Everything a render produces.
///
/// The XR with its new status is not copied here: [`RenderOutput::composite`] views the observed
/// XR with [`RenderOutput::merged_status`] in place of its status.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOutput {
    /// Only the status the render wants on the XR: what patches wrote and the `Ready` condition.
    pub composite_status: Value,
    /// Released resources in graph order (dependencies first, ties by declaration order).
    pub resources: Vec<DesiredResource>,
    /// Resources not created yet because a dependency is missing or not Ready, or a `Required`
    /// patch's source is missing. Only resources that do not exist are ever withheld.
    pub withheld: Vec<Withheld>,
    /// Resources a failing patch left out of this render (a Crossplane `mode: Resources`
    /// Composition, whose composer skips such a resource with a warning). One that exists
    /// stays as it is: it is neither applied nor pruned.
    pub skipped: Vec<Withheld>,
    /// Template names that are not Ready, sorted.
    pub unready: Vec<String>,
    /// The XR's connection details, merged from every resource's (the last writer of a key wins).
    pub connection_details: ConnectionDetails,
    /// The environment after environment and resource patches.
    pub environment: Value,
    /// Problems that did not fail the render (withheld or skipped resources, skipped patches,
    /// checks that could not be evaluated), for events and `strata render`.
    pub warnings: Vec<String>,
}

impl RenderOutput {
    /// True when every composed resource is Ready (nothing in [`RenderOutput::unready`]).
    pub fn ready(&self) -> bool {
        self.unready.is_empty()
    }

    /// The status of the observed XR `xr` (the one this output was rendered from) with
    /// [`RenderOutput::composite_status`] merged in: objects merged deeply, conditions by type,
    /// integral floats written as integers.
    pub fn merged_status(&self, xr: &Value) -> Value {
        merge_status(xr, &self.composite_status)
    }

    /// The observed XR `xr` (the one this output was rendered from) with
    /// [`RenderOutput::merged_status`] as its status: what `strata render` prints. It borrows the
    /// XR and serializes exactly as [`Composite::to_value`] would.
    pub fn composite<'a>(&self, xr: &'a Value) -> Composite<'a> {
        Composite {
            xr,
            status: self.merged_status(xr),
        }
    }
}

/// The observed XR with the status a render wants merged in ([`RenderOutput::composite`]),
/// borrowed: serializing it copies nothing. Integral floats serialize as integers, as Crossplane
/// prints them.
#[derive(Clone, Debug, PartialEq)]
pub struct Composite<'a> {
    xr: &'a Value,
    status: Value,
}

impl Composite<'_> {
    /// The merged status.
    pub fn status(&self) -> &Value {
        &self.status
    }

    /// The XR as an owned value.
    pub fn to_value(&self) -> Value {
        let mut out = self.xr.clone();
        patch::normalize_numbers(&mut out);
        if let Some(obj) = out.as_object_mut() {
            obj.insert("status".to_owned(), self.status.clone());
        }
        out
    }
}

impl serde::Serialize for Composite<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(xr) = self.xr.as_object() else {
            return Normalized(self.xr).serialize(serializer);
        };
        let has_status = xr.contains_key("status");
        let mut map = serializer.serialize_map(Some(xr.len() + usize::from(!has_status)))?;
        // Keys in the order of the owned object's map: sorted, `status` in its place.
        let mut status_done = false;
        for (k, v) in xr {
            if !status_done && k.as_str() >= "status" {
                map.serialize_entry("status", &self.status)?;
                status_done = true;
                if k == "status" {
                    continue;
                }
            }
            map.serialize_entry(k, &Normalized(v))?;
        }
        if !status_done {
            map.serialize_entry("status", &self.status)?;
        }
        map.end()
    }
}

/// Serializes a value as [`patch::normalize_numbers`] would leave it, without copying it.
struct Normalized<'a>(&'a Value);

impl serde::Serialize for Normalized<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Number(n) => match patch::integral_float(n) {
                Some(i) => serde_json::Number::from(i).serialize(serializer),
                None => n.serialize(serializer),
            },
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Normalized(item))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = serializer.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Normalized(v))?;
                }
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Why a render failed. Every variant names the object and, for patches, the index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The XR itself is malformed (not an object, no `apiVersion`), or so is the environment.
    #[error("composite resource: {0}")]
    Composite(String),
    /// The XR is not of the kind the Composition composes.
    #[error(
        "composite resource {found} does not match the Composition's compositeTypeRef {expected}"
    )]
    TypeMismatch {
        /// The XR's `apiVersion` and `kind`.
        found: String,
        /// The Composition's `compositeTypeRef`.
        expected: String,
    },
    /// A resource's patch failed (fatal unless the Composition is `mode: Resources`).
    #[error("resource `{resource}`: patch {index} ({kind}): {source}")]
    Patch {
        /// The template name.
        resource: String,
        /// The patch's position, PatchSets expanded.
        index: usize,
        /// The patch type.
        kind: &'static str,
        /// Why it failed.
        #[source]
        source: PatchError,
    },
    /// An environment patch failed.
    #[error("environment: patch {index} ({kind}): {source}")]
    EnvironmentPatch {
        /// The patch's position, PatchSets expanded.
        index: usize,
        /// The patch type.
        kind: &'static str,
        /// Why it failed.
        #[source]
        source: PatchError,
    },
    /// A `Required` environment patch's source is missing.
    #[error("environment: patch {index} ({kind}): required source is missing: {path}")]
    EnvironmentRequired {
        /// The patch's position, PatchSets expanded.
        index: usize,
        /// The patch type.
        kind: &'static str,
        /// The not-found message (`spec.a: no such field`).
        path: String,
    },
    /// A resource cannot be composed for a reason other than a patch (the v2 connection
    /// Secret's name or namespace cannot be decided).
    #[error("resource `{resource}`: {message}")]
    Resource {
        /// The template name.
        resource: String,
        /// What is wrong.
        message: String,
    },
}

/// Renders one XR. Pure: same input, same output, byte for byte.
pub fn render(
    comp: &CompiledComposition,
    input: RenderInput<'_>,
) -> Result<RenderOutput, RenderError> {
    let xr = input.composite;
    let meta = CompositeMeta::read(xr, comp)?;
    let mut warnings = Vec::new();

    let mut environment = match (&comp.environment_defaults, input.environment) {
        (Some(d), Some(e)) => patch::merge(Some(d.clone()), e.clone(), false, false)
            .map_err(|m| RenderError::Composite(format!("environment: {m}")))?,
        (Some(d), None) => d.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => Value::Object(Map::new()),
    };
    if !environment.is_object() {
        return Err(RenderError::Composite(
            "environment: must be an object".into(),
        ));
    }
    // The desired XR: only what patches write; its status is kept at the end.
    let mut desired_xr = Value::Object(Map::new());
    for p in &comp.environment_patches {
        let result = match p.kind {
            // XR -> environment, in Crossplane's and in function-patch-and-transform's names.
            PatchType::FromCompositeFieldPath
            | PatchType::CombineFromComposite
            | PatchType::ToEnvironmentFieldPath
            | PatchType::CombineToEnvironment => patch::apply(p, xr, &mut environment),
            // Environment -> XR.
            _ => patch::apply(p, &environment, &mut desired_xr),
        };
        match result {
            Ok(Outcome::Applied) => {}
            Ok(Outcome::SourceMissing(missing)) => {
                if p.from_policy == FromFieldPathPolicy::Required {
                    return Err(RenderError::EnvironmentRequired {
                        index: p.index,
                        kind: p.kind.as_str(),
                        path: missing.not_found,
                    });
                }
            }
            Err(source) => {
                return Err(RenderError::EnvironmentPatch {
                    index: p.index,
                    kind: p.kind.as_str(),
                    source,
                });
            }
        }
    }

    let mut rendered: Vec<Option<DesiredResource>> = vec![None; comp.resources.len()];
    let mut withheld = Vec::new();
    let mut skipped: Vec<Withheld> = Vec::new();
    // Resources withheld by a Required patch; a pipeline's XR does not wait for them (they are
    // not in the function's desired state), Crossplane's built-in composer's does.
    let mut not_desired: Vec<String> = Vec::new();
    let mut skipped_unready: Vec<String> = Vec::new();
    let mut connection_details = ConnectionDetails::new();
    let mut composite_reads = CompositeReads::new(xr, &comp.composite_reads);
    for (index, template) in comp.resources.iter().enumerate() {
        let observed = input.observed.get(&template.name);
        if observed.is_none()
            && let Some(reason) = waiting_for(comp, index, input.observed)
        {
            warnings.push(format!("resource `{}` withheld: {reason}", template.name));
            withheld.push(Withheld {
                name: template.name.clone(),
                reason,
                required: None,
            });
            continue;
        }
        let (mut desired, slots) = match &template.skeleton {
            Some(s) => (
                s.bases[usize::from(meta.uid.is_some())].clone(),
                s.slots.as_slice(),
            ),
            None => (template.stamped_base.clone(), &[][..]),
        };
        // The skeleton's placeholders that patches wrote.
        let mut filled = 0u64;
        let mut release = true;
        for p in &template.patches {
            let result = apply_resource_patch(
                p,
                &mut composite_reads,
                &mut environment,
                &mut desired_xr,
                &mut desired,
                observed,
                input.observed,
                comp,
            );
            match result {
                Ok(Outcome::Applied) => {
                    if let Some(slot) = p.slot {
                        filled |= 1 << slot;
                    }
                }
                Ok(Outcome::SourceMissing(missing)) => {
                    if p.from_policy != FromFieldPathPolicy::Required {
                        continue;
                    }
                    if observed.is_none() {
                        let required = RequiredSource {
                            patch: p.index,
                            kind: p.kind,
                            from_field_path: missing.from_field_path,
                            from_resource: p.from_resource.map(|i| comp.resources[i].name.clone()),
                        };
                        let reason = required.explain();
                        warnings.push(format!("resource `{}` withheld: {reason}", template.name));
                        withheld.push(Withheld {
                            name: template.name.clone(),
                            reason,
                            required: Some(required),
                        });
                        if comp.mode == Some(CompositionMode::Pipeline) {
                            not_desired.push(template.name.clone());
                        }
                        release = false;
                        break;
                    }
                    warnings.push(format!(
                        "resource `{}`: required patch {} ({}) skipped: {missing}",
                        template.name,
                        p.index,
                        p.kind.as_str()
                    ));
                }
                Err(source) => {
                    let error = RenderError::Patch {
                        resource: template.name.clone(),
                        index: p.index,
                        kind: p.kind.as_str(),
                        source,
                    };
                    if comp.mode != Some(CompositionMode::Resources) {
                        return Err(error);
                    }
                    // Crossplane's built-in composer: a warning, and this resource is not
                    // composed this time; the others are.
                    let reason = error.to_string();
                    warnings.push(format!("{reason}; the resource is skipped"));
                    skipped.push(Withheld {
                        name: template.name.clone(),
                        reason,
                        required: None,
                    });
                    release = false;
                    break;
                }
            }
        }
        if !release {
            // A skipped resource that exists keeps the readiness it has.
            let was_skipped = skipped.last().is_some_and(|s| s.name == template.name);
            if was_skipped
                && !observed.is_some_and(|o| {
                    readiness::evaluate(&template.readiness_checks, &o.resource).is_ready()
                })
            {
                skipped_unready.push(template.name.clone());
            }
            continue;
        }
        // Every key stays where the skeleton has it unless a placeholder is removed.
        let mut intact = true;
        for (slot, path) in slots.iter().enumerate() {
            if filled & (1 << slot) == 0 {
                remove_placeholder(&mut desired, path);
                intact = false;
            }
        }
        // Crossplane serialises every composed resource through Go's JSON: a float64 with an
        // integral value, even one written in the base, prints as an integer. Patches write
        // normalized values, so only a base with such a float needs the walk.
        if !template.stamped_base_normalized {
            patch::normalize_numbers(&mut desired);
        }
        meta.check_namespace(&desired, &template.name)?;
        let at = match &template.skeleton {
            Some(Skeleton {
                stamp: Some(at), ..
            }) if intact => Some(&at[usize::from(meta.uid.is_some())]),
            _ => None,
        };
        meta.stamp(&mut desired, template, observed.map(|o| &o.resource), at);
        let readiness = match observed {
            Some(o) => {
                connection::extract(
                    &template.connection_details,
                    &o.resource,
                    &o.connection_details,
                    &mut connection_details,
                );
                readiness::evaluate(&template.readiness_checks, &o.resource)
            }
            None => Readiness::NotReady,
        };
        if let Readiness::Unknown(why) = &readiness {
            warnings.push(format!("resource `{}`: {why}", template.name));
        }
        rendered[index] = Some(DesiredResource {
            name: template.name.clone(),
            index,
            resource: desired,
            readiness,
        });
    }

    let mut unready: Vec<String> = Vec::with_capacity(rendered.len());
    unready.extend(
        rendered
            .iter()
            .flatten()
            .filter(|r| !r.readiness.is_ready())
            .map(|r| r.name.clone())
            .chain(
                withheld
                    .iter()
                    .filter(|w| !not_desired.contains(&w.name))
                    .map(|w| w.name.clone()),
            )
            .chain(skipped_unready),
    );
    unready.sort();
    let mut resources: Vec<DesiredResource> = Vec::with_capacity(rendered.len());
    resources.extend(
        comp.graph
            .order()
            .iter()
            .filter_map(|i| rendered[*i].take()),
    );

    if let Some(secret) =
        compose_connection_secret(comp, xr, &meta, &connection_details, &mut warnings)?
    {
        resources.push(secret);
    }

    let mut status = match desired_xr.get_mut("status").map(Value::take) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    status.insert(
        "conditions".to_owned(),
        Value::Array(vec![ready_condition(&unready)]),
    );
    Ok(RenderOutput {
        composite_status: Value::Object(status),
        resources,
        withheld,
        skipped,
        unready,
        connection_details,
        environment,
        warnings,
    })
}

/// The connection Secret of a Crossplane v2 XR (one with a `spec.crossplane` object), as
/// function-patch-and-transform composes it: a v2 XR has no connection details of its own, so
/// `details` (what the resources contributed) become a composed Secret of type
/// `connection.crossplane.io/v1alpha1`, ready as soon as it is desired. `None` for a v1 XR or
/// while there are no details. Used by [`render`] and by the pipeline's patch-and-transform step
/// (with the details every step so far set).
pub fn connection_secret(
    comp: &CompiledComposition,
    xr: &Value,
    details: &ConnectionDetails,
) -> Result<(Option<DesiredResource>, Vec<String>), RenderError> {
    let meta = CompositeMeta::read(xr, comp)?;
    let mut warnings = Vec::new();
    let secret = compose_connection_secret(comp, xr, &meta, details, &mut warnings)?;
    Ok((secret, warnings))
}

fn compose_connection_secret(
    comp: &CompiledComposition,
    xr: &Value,
    meta: &CompositeMeta<'_>,
    details: &ConnectionDetails,
    warnings: &mut Vec<String>,
) -> Result<Option<DesiredResource>, RenderError> {
    use base64::Engine as _;
    let cs = &comp.connection_secret;
    let v2 = xr.at("/spec/crossplane").is_some_and(Value::is_object);
    if !v2 || details.is_empty() {
        return Ok(None);
    }
    let fail = |message: String| RenderError::Resource {
        resource: cs.template.name.clone(),
        message,
    };
    if comp.index_of(&cs.template.name).is_some() {
        warnings.push(format!(
            "connection details not composed into a Secret: a resource is already named `{}`",
            cs.template.name
        ));
        return Ok(None);
    }
    // The reference: the Composition's, else the XR's own, else `{xr-name}-connection`.
    let xr_ref = xr.at("/spec/writeConnectionSecretToRef");
    let xr_string = |key: &str| {
        xr_ref
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (name, namespace) = if cs.name.is_some() || cs.namespace.is_some() {
        (cs.name.clone(), cs.namespace.clone())
    } else if let Some(name) = xr_string("name") {
        (Some(name), xr_string("namespace"))
    } else {
        (
            Some(format!("{}-connection", meta.name)),
            meta.namespace.map(str::to_owned),
        )
    };
    let mut reference = json!({"name": name, "namespace": namespace});
    for p in &cs.patches {
        match patch::apply(p, xr, &mut reference) {
            Ok(Outcome::Applied) => {}
            Ok(Outcome::SourceMissing(path)) => {
                if p.from_policy == FromFieldPathPolicy::Required {
                    return Err(fail(format!(
                        "writeConnectionSecretToRef.patches[{}] ({}): required source is missing: \
                         {path}",
                        p.index,
                        p.kind.as_str()
                    )));
                }
            }
            Err(e) => {
                return Err(fail(format!(
                    "writeConnectionSecretToRef.patches[{}] ({}): {e}",
                    p.index,
                    p.kind.as_str()
                )));
            }
        }
    }
    let text = |key: &str| {
        reference
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let Some(name) = text("name") else {
        return Err(fail(
            "writeConnectionSecretToRef.name: Required value".into(),
        ));
    };
    let namespace = match (meta.namespace, text("namespace")) {
        (Some(xr_ns), Some(ns)) if ns != xr_ns => {
            return Err(fail(format!(
                "writeConnectionSecretToRef.namespace: {ns:?} is outside the composite \
                 resource's namespace {xr_ns:?}"
            )));
        }
        (Some(xr_ns), _) => xr_ns.to_owned(),
        (None, Some(ns)) => ns,
        (None, None) => {
            return Err(fail(
                "writeConnectionSecretToRef.namespace: Required value: a cluster-scoped \
                 composite resource's connection Secret needs a namespace"
                    .into(),
            ));
        }
    };
    let data: Map<String, Value> = details
        .iter()
        .map(|(k, v)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            (k.clone(), Value::String(encoded))
        })
        .collect();
    let mut desired = cs.template.stamped_base.clone();
    if let Some(obj) = desired.as_object_mut() {
        obj.insert("data".to_owned(), Value::Object(data));
        if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.insert("name".to_owned(), Value::String(name));
            m.insert("namespace".to_owned(), Value::String(namespace));
        }
    }
    meta.stamp(&mut desired, &cs.template, None, None);
    Ok(Some(DesiredResource {
        name: cs.template.name.clone(),
        index: comp.resources.len(),
        resource: desired,
        readiness: Readiness::Ready,
    }))
}

/// The observed XR, each of the Composition's `composite_reads` read from it at most once per
/// render (it does not change during a render).
struct CompositeReads<'a> {
    xr: &'a Value,
    paths: &'a [FieldPath],
    reads: Vec<Option<Result<&'a Value, AccessError>>>,
}

impl<'a> CompositeReads<'a> {
    fn new(xr: &'a Value, paths: &'a [FieldPath]) -> Self {
        Self {
            xr,
            paths,
            reads: vec![None; paths.len()],
        }
    }

    /// What `FieldPath::get` of `composite_reads[index]` returns on the XR.
    fn get(&mut self, index: usize) -> Result<&'a Value, AccessError> {
        let (xr, paths) = (self.xr, self.paths);
        match self.reads.get_mut(index) {
            Some(slot) => slot.get_or_insert_with(|| paths[index].get(xr)).clone(),
            None => paths[index].get(xr),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_resource_patch(
    p: &CompiledPatch,
    composite: &mut CompositeReads<'_>,
    environment: &mut Value,
    desired_xr: &mut Value,
    desired: &mut Value,
    observed: Option<&Observed>,
    all_observed: &ObservedResources,
    comp: &CompiledComposition,
) -> Result<Outcome, PatchError> {
    match p.kind {
        PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite => {
            match p.composite_read {
                Some(read) => patch::apply_read(p, composite.get(read), desired),
                None => patch::apply(p, composite.xr, desired),
            }
        }
        PatchType::FromEnvironmentFieldPath | PatchType::CombineFromEnvironment => {
            patch::apply(p, environment, desired)
        }
        PatchType::FromResourceFieldPath => {
            let from = p
                .from_resource
                .map(|i| comp.resources[i].name.as_str())
                .unwrap_or_default();
            match all_observed.get(from) {
                Some(o) => patch::apply(p, &o.resource, desired),
                None => Ok(Outcome::SourceMissing(patch::MissingSource {
                    from_field_path: match &p.source {
                        PatchSource::Path(path) => path.to_string(),
                        PatchSource::Combine { variables, .. } => variables
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                    not_found: format!("resource `{from}` does not exist yet"),
                })),
            }
        }
        // Patches from a composed resource need it to exist; until then there is nothing to copy.
        PatchType::ToCompositeFieldPath | PatchType::CombineToComposite => match observed {
            Some(o) => patch::apply(p, &o.resource, desired_xr),
            None => Ok(Outcome::Applied),
        },
        PatchType::ToEnvironmentFieldPath | PatchType::CombineToEnvironment => match observed {
            Some(o) => patch::apply(p, &o.resource, environment),
            None => Ok(Outcome::Applied),
        },
        // Expanded at compile time.
        PatchType::PatchSet => Ok(Outcome::Applied),
    }
}

/// Why a resource that does not exist yet must wait, if it must.
fn waiting_for(
    comp: &CompiledComposition,
    index: usize,
    observed: &ObservedResources,
) -> Option<String> {
    // Several edges may lead to one dependency (`dependsOn` and patches reading it): name it once.
    let mut deps: Vec<usize> = comp
        .graph
        .dependencies(index)
        .into_iter()
        .filter(|(_, kind)| kind.gates_creation())
        .map(|(dep, _)| dep)
        .collect();
    deps.sort_unstable();
    deps.dedup();
    let waiting: Vec<String> = deps
        .into_iter()
        .filter_map(|dep| {
            let template = &comp.resources[dep];
            match observed.get(&template.name) {
                None => Some(format!("`{}` (does not exist yet)", template.name)),
                Some(o)
                    if !readiness::evaluate(&template.readiness_checks, &o.resource).is_ready() =>
                {
                    Some(format!("`{}` (not Ready)", template.name))
                }
                Some(_) => None,
            }
        })
        .collect();
    (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))
}

/// The XR's `Ready` condition, naming what it waits for (first three, sorted, as Crossplane).
fn ready_condition(unready: &[String]) -> Value {
    let condition = |status: &str, reason: &str, message: Option<String>| {
        let mut c = Map::new();
        c.insert("type".to_owned(), Value::String("Ready".to_owned()));
        c.insert("status".to_owned(), Value::String(status.to_owned()));
        c.insert("reason".to_owned(), Value::String(reason.to_owned()));
        if let Some(message) = message {
            c.insert("message".to_owned(), Value::String(message));
        }
        Value::Object(c)
    };
    if unready.is_empty() {
        return condition("True", "Available", None);
    }
    // "Unready resources: a, b, c, and 2 more", written into one string.
    let shown = &unready[..unready.len().min(3)];
    let mut message = String::with_capacity(40 + shown.iter().map(|n| n.len() + 2).sum::<usize>());
    message.push_str("Unready resources: ");
    for (i, name) in shown.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        message.push_str(name);
    }
    if unready.len() > 3 {
        use std::fmt::Write as _;
        let _ = write!(message, ", and {} more", unready.len() - 3);
    }
    condition("False", "Creating", Some(message))
}

/// The status of the observed XR `xr` with `status` (what a pass wants) merged in: objects merged
/// deeply, conditions by type, integral floats written as integers.
pub fn merge_status(xr: &Value, status: &Value) -> Value {
    let mut out = merged_status(xr.get("status"), status);
    patch::normalize_numbers(&mut out);
    out
}

/// The observed status (when it is an object) with the desired status merged in; conditions are
/// merged by type.
fn merged_status(observed: Option<&Value>, status: &Value) -> Value {
    let mut out = match observed {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Object(Map::new()),
    };
    if let (Some(current), Some(desired)) = (out.as_object_mut(), status.as_object()) {
        for (k, v) in desired {
            if k == "conditions" {
                continue;
            }
            match (current.get_mut(k), v) {
                (Some(existing @ Value::Object(_)), Value::Object(_)) => deep_merge(existing, v),
                _ => {
                    current.insert(k.clone(), v.clone());
                }
            }
        }
        let mut conditions: Vec<Value> = match current.get("conditions") {
            Some(Value::Array(cs)) => cs.clone(),
            _ => Vec::new(),
        };
        for c in status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = c.get("type");
            match conditions.iter_mut().find(|e| e.get("type") == kind) {
                Some(e) => *e = c.clone(),
                None => conditions.push(c.clone()),
            }
        }
        current.insert("conditions".into(), Value::Array(conditions));
    }
    out
}

fn deep_merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// What a render needs to know about the XR to stamp composed resources.
struct CompositeMeta<'a> {
    name: &'a str,
    namespace: Option<&'a str>,
    api_version: &'a str,
    kind: &'a str,
    uid: Option<&'a str>,
    composite_label: &'a str,
    claim_name: Option<&'a str>,
    claim_namespace: Option<&'a str>,
}

impl<'a> CompositeMeta<'a> {
    fn read(xr: &'a Value, comp: &CompiledComposition) -> Result<Self, RenderError> {
        if !xr.is_object() {
            return Err(RenderError::Composite("must be an object".into()));
        }
        let metadata = xr.get("metadata");
        let meta_string = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
        let api_version = xr
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| RenderError::Composite("apiVersion: required string".into()))?;
        let kind = xr
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| RenderError::Composite("kind: required string".into()))?;
        let name = meta_string("name")
            .ok_or_else(|| RenderError::Composite("metadata.name: required string".into()))?;
        let expected = &comp.composite_type;
        if api_version != expected.api_version || kind != expected.kind {
            return Err(RenderError::TypeMismatch {
                found: format!("{api_version}/{kind}"),
                expected: format!("{}/{}", expected.api_version, expected.kind),
            });
        }
        let labels = metadata.and_then(|m| m.get("labels"));
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        Ok(Self {
            name,
            // Crossplane's built-in composer (mode: Resources) only ever composed for
            // cluster-scoped XRs: a namespace the XR carries is not theirs to push.
            namespace: meta_string("namespace")
                .filter(|_| comp.mode != Some(CompositionMode::Resources)),
            api_version,
            kind,
            uid: meta_string("uid"),
            composite_label: label(wire::LABEL_COMPOSITE).unwrap_or(name),
            claim_name: label(wire::LABEL_CLAIM_NAME),
            claim_namespace: label(wire::LABEL_CLAIM_NAMESPACE),
        })
    }

    /// Stamps the metadata Strata relies on, after the patches ran (as Crossplane's function
    /// composer does, so a patch that replaces `metadata.labels` cannot drop them): the name,
    /// the namespace, the composite and claim labels, the template annotation and the controller
    /// reference. Templates are pre-stamped at compile time (see [`prestamp`]), so usually only
    /// the per-XR values are written here.
    ///
    /// `at` says where a fresh skeleton has placeholders for these values (see
    /// [`StampPositions`]): those are written without a lookup.
    fn stamp(
        &self,
        desired: &mut Value,
        template: &CompiledResource,
        observed: Option<&Value>,
        at: Option<&StampPositions>,
    ) {
        let observed_meta = observed.and_then(|o| o.get("metadata"));
        let observed_name = observed_meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str);
        let observed_namespace = observed_meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str);
        let Some(obj) = desired.as_object_mut() else {
            return;
        };
        if let Some(at) = at
            && let Some(Value::Object(meta)) = obj.values_mut().nth(at.metadata)
        {
            self.stamp_metadata(meta, template, observed_name, at);
            if let Some(ns) = observed_namespace {
                set_string(meta, "namespace", ns);
            }
            return;
        }
        in_object(obj, "metadata", |meta| {
            self.stamp_metadata(meta, template, observed_name, &StampPositions::default());
            if let Some(ns) = observed_namespace {
                set_string(meta, "namespace", ns);
            }
        });
    }

    fn stamp_metadata(
        &self,
        meta: &mut Map<String, Value>,
        template: &CompiledResource,
        observed_name: Option<&str>,
        at: &StampPositions,
    ) {
        // Placeholders first, while every key is where the skeleton has it.
        if at.name.is_some() || at.labels.is_some() || at.owner.is_some() {
            for (i, v) in meta.values_mut().enumerate() {
                if at.name == Some(i) {
                    *v = Value::String(match observed_name {
                        Some(name) => name.to_owned(),
                        None => self.composed_name(template),
                    });
                } else if let Some((_, composite)) = at.labels.filter(|(l, _)| *l == i) {
                    if let Some(labels) = v.as_object_mut() {
                        if let Some(slot) = labels.values_mut().nth(composite) {
                            *slot = Value::String(self.composite_label.to_owned());
                        }
                        self.stamp_claim_labels(labels);
                    }
                } else if let Some((_, name, uid)) = at.owner.filter(|(r, ..)| *r == i)
                    && let Some(owner) = v
                        .as_array_mut()
                        .and_then(|refs| refs.last_mut())
                        .and_then(Value::as_object_mut)
                {
                    for (j, slot) in owner.values_mut().enumerate() {
                        if j == name {
                            *slot = Value::String(self.name.to_owned());
                        } else if Some(j) == uid
                            && let Some(u) = self.uid
                        {
                            *slot = Value::String(u.to_owned());
                        }
                    }
                }
            }
        }
        if at.name.is_none() {
            match observed_name {
                Some(name) => set_string(meta, "name", name),
                None => match meta.get_mut("name") {
                    Some(Value::String(_)) => {}
                    Some(slot) => *slot = Value::String(self.composed_name(template)),
                    None => {
                        meta.insert(
                            "name".to_owned(),
                            Value::String(self.composed_name(template)),
                        );
                    }
                },
            }
        }
        if let Some(ns) = self.namespace {
            set_string(meta, "namespace", ns);
        }
        if at.labels.is_none() {
            in_object(meta, "labels", |labels| {
                put_string(labels, wire::LABEL_COMPOSITE, self.composite_label);
                self.stamp_claim_labels(labels);
            });
        }
        if !at.annotations {
            in_object(meta, "annotations", |annotations| {
                set_string(annotations, wire::ANNOTATION_RESOURCE_NAME, &template.name);
            });
        }
        if at.owner.is_none() {
            match meta.get_mut("ownerReferences") {
                Some(Value::Array(refs)) => self.stamp_owner(refs),
                _ => {
                    let mut refs = Vec::with_capacity(1);
                    self.stamp_owner(&mut refs);
                    meta.insert("ownerReferences".to_owned(), Value::Array(refs));
                }
            }
        }
    }

    fn stamp_claim_labels(&self, labels: &mut Map<String, Value>) {
        if let Some(c) = self.claim_name {
            set_string(labels, wire::LABEL_CLAIM_NAME, c);
        }
        if let Some(c) = self.claim_namespace {
            set_string(labels, wire::LABEL_CLAIM_NAMESPACE, c);
        }
    }

    /// `<xr>-<template>`, or the hashed form when that is not a valid name.
    fn composed_name(&self, template: &CompiledResource) -> String {
        let len = self.name.len() + 1 + template.name_suffix.len();
        if len <= 63 && !template.name_suffix.is_empty() && !self.name.contains('.') {
            let mut name = String::with_capacity(len);
            name.push_str(self.name);
            name.push('-');
            name.push_str(&template.name_suffix);
            name
        } else {
            composed_name(self.name, &template.name)
        }
    }

    /// Makes the last owner reference the XR's controller reference.
    fn stamp_owner(&self, refs: &mut Vec<Value>) {
        let is_ours = |r: &Value| {
            r.get("controller") == Some(&Value::Bool(true))
                && r.get("apiVersion").and_then(Value::as_str) == Some(self.api_version)
                && r.get("kind").and_then(Value::as_str) == Some(self.kind)
        };
        if !refs.last().is_some_and(is_ours) {
            refs.retain(|r| r.get("controller") != Some(&Value::Bool(true)));
            refs.push(json!({
                "apiVersion": self.api_version,
                "kind": self.kind,
                "controller": true,
                "blockOwnerDeletion": true,
            }));
        }
        if let Some(owner) = refs.last_mut().and_then(Value::as_object_mut) {
            set_string(owner, "name", self.name);
            if let Some(uid) = self.uid {
                set_string(owner, "uid", uid);
            }
        }
    }

    /// A namespaced XR composes only in its own namespace.
    fn check_namespace(&self, desired: &Value, resource: &str) -> Result<(), RenderError> {
        let Some(ns) = self.namespace else {
            return Ok(());
        };
        match desired.at("/metadata/namespace").and_then(Value::as_str) {
            Some(found) if found != ns => Err(RenderError::Resource {
                resource: resource.to_owned(),
                message: format!(
                    "metadata.namespace: {found:?} is outside the composite resource's namespace {ns:?}"
                ),
            }),
            _ => Ok(()),
        }
    }
}

fn object_entry<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    // Looked up before inserting, so that an existing key costs no allocation.
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), Value::Object(Map::new()));
    }
    match map.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made an object"),
    }
}

/// [`set_string`] for a key that is usually missing (labels a patch replaced): one lookup, and
/// the key is allocated even when it exists.
fn put_string(map: &mut Map<String, Value>, key: &str, value: &str) {
    match map.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(Value::String(value.to_owned()));
        }
        Entry::Occupied(mut slot) => {
            if slot.get().as_str() != Some(value) {
                slot.insert(Value::String(value.to_owned()));
            }
        }
    }
}

/// Runs `f` on the object at `map[key]`, which is made an empty object first when it is missing
/// or not an object. An existing object costs one lookup and no allocation.
fn in_object(map: &mut Map<String, Value>, key: &str, f: impl FnOnce(&mut Map<String, Value>)) {
    match map.get_mut(key) {
        Some(Value::Object(m)) => f(m),
        Some(other) => {
            let mut m = Map::new();
            f(&mut m);
            *other = Value::Object(m);
        }
        None => {
            let mut m = Map::new();
            f(&mut m);
            map.insert(key.to_owned(), Value::Object(m));
        }
    }
}

/// Sets `map[key]` to the string `value`, allocating only what changes: an equal string is kept,
/// an existing key is reused.
fn set_string(map: &mut Map<String, Value>, key: &str, value: &str) {
    match map.get_mut(key) {
        Some(Value::String(s)) if s == value => {}
        Some(slot) => *slot = Value::String(value.to_owned()),
        None => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Everything of a template's metadata that does not depend on the XR, done once at compile
/// time: the template annotation, the labels map, and the controller reference to the composite
/// type (its name and uid are filled in per XR by `stamp`).
pub(crate) fn prestamp(
    base: &Value,
    template: &str,
    composite: &crate::model::TypeReference,
) -> Value {
    let mut out = base.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Some(meta) = meta.as_object_mut() else {
        return out;
    };
    object_entry(meta, "labels");
    object_entry(meta, "annotations").insert(
        wire::ANNOTATION_RESOURCE_NAME.into(),
        Value::String(template.to_owned()),
    );
    let owner = json!({
        "apiVersion": composite.api_version,
        "kind": composite.kind,
        "controller": true,
        "blockOwnerDeletion": true,
    });
    match meta.get_mut("ownerReferences") {
        Some(Value::Array(refs)) => {
            refs.retain(|r| r.get("controller") != Some(&Value::Bool(true)));
            refs.push(owner);
        }
        _ => {
            meta.insert("ownerReferences".into(), Value::Array(vec![owner]));
        }
    }
    out
}

/// A template's `stamped_base` with a null placeholder at each key a render writes there: the
/// metadata `stamp` sets (the name, the composite label, the controller reference's name and uid)
/// and the destinations of the patches. Writing a placeholder replaces a value instead of
/// inserting a key, which costs a lookup, a key allocation and a shift of the node's entries; the
/// skeleton's clone allocates the keys instead, in one go. A patch destination no patch wrote is
/// removed again, and `stamp` always fills the others, so a render from the skeleton yields what
/// a render from `stamped_base` does.
#[derive(Clone, Debug)]
pub struct Skeleton {
    /// For an XR without a `uid` and with one.
    pub bases: [Value; 2],
    /// The patch destinations with a placeholder, which [`CompiledPatch::slot`] indexes.
    pub slots: Vec<FieldPath>,
    /// Where `stamp` writes in each base, when no patch writes there.
    pub stamp: Option<[StampPositions; 2]>,
}

/// Where `stamp` writes in a skeleton, by position among sorted siblings. `None` (or `false`)
/// where a patch may write, or `stamped_base` had a value: `stamp` looks those up.
#[derive(Clone, Debug, Default)]
pub struct StampPositions {
    /// `metadata` in the resource.
    pub metadata: usize,
    /// The name placeholder in `metadata`.
    pub name: Option<usize>,
    /// `labels` in `metadata` and the composite label's placeholder in it.
    pub labels: Option<(usize, usize)>,
    /// The template annotation is as `prestamp` set it.
    pub annotations: bool,
    /// `ownerReferences` in `metadata`; in the controller reference, the name's and the uid's
    /// placeholders.
    pub owner: Option<(usize, usize, Option<usize>)>,
}

/// At most this many patch destinations per skeleton: a render tracks them in a `u64`.
const MAX_SLOTS: usize = 64;

/// Whether a patch of this type writes the composed resource.
fn writes_resource(kind: PatchType) -> bool {
    matches!(
        kind,
        PatchType::FromCompositeFieldPath
            | PatchType::CombineFromComposite
            | PatchType::FromEnvironmentFieldPath
            | PatchType::CombineFromEnvironment
            | PatchType::FromResourceFieldPath
    )
}

/// The object fields of `path`, or `None` when it has an index.
fn fields(path: &FieldPath) -> Option<Vec<&str>> {
    path.segments()
        .iter()
        .map(|s| match s {
            Segment::Field(f) => Some(f.as_str()),
            Segment::Index(_) => None,
        })
        .collect()
}

/// The skeleton of a template, when placeholders cannot be seen: every patch that writes the
/// resource replaces the value at a path of plain fields whose parents are objects of
/// `stamped_base`, and no such path runs through another (so nothing reads, merges into, expands
/// or walks through a placeholder, and none is removed from under another write). Sets each
/// patch's [`CompiledPatch::slot`] and [`CompiledPatch::to_present`].
pub(crate) fn skeleton(stamped: &Value, patches: &mut [CompiledPatch]) -> Option<Skeleton> {
    for p in patches.iter_mut() {
        p.to_present = fields(&p.to).is_some_and(|f| lookup(stamped, &f).is_some());
    }
    let mut paths: Vec<Vec<&str>> = Vec::new();
    for p in patches.iter().filter(|p| writes_resource(p.kind)) {
        if p.to_policy != ToFieldPathPolicy::Replace || p.to_wildcard || p.to.has_wildcard() {
            return None;
        }
        let path = fields(&p.to)?;
        let (_, parents) = path.split_last()?;
        if !lookup(stamped, parents).is_some_and(Value::is_object) {
            return None;
        }
        paths.push(path);
    }
    for a in &paths {
        if paths.iter().any(|b| b.len() > a.len() && b.starts_with(a)) {
            return None;
        }
    }
    // A patch that replaces a value holding a placeholder would only drop it.
    let replaced = |target: &[&str]| {
        paths
            .iter()
            .any(|p| p.len() < target.len() && target.starts_with(p))
    };
    let mut base = stamped.clone();
    if let Some(meta) = base.get_mut("metadata").and_then(Value::as_object_mut) {
        if !replaced(&["metadata", "name"]) {
            meta.entry("name").or_insert(Value::Null);
        }
        if !replaced(&["metadata", "labels", wire::LABEL_COMPOSITE])
            && let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut)
        {
            labels.entry(wire::LABEL_COMPOSITE).or_insert(Value::Null);
        }
        if !replaced(&["metadata", "ownerReferences", "name"])
            && let Some(owner) = controller_reference(meta)
        {
            owner.entry("name").or_insert(Value::Null);
        }
    }
    let mut slots: Vec<FieldPath> = Vec::new();
    let mut patch_slots = Vec::new();
    for (i, p) in patches.iter().enumerate() {
        if !writes_resource(p.kind) || lookup(stamped, &fields(&p.to)?).is_some() {
            continue;
        }
        let slot = match slots.iter().position(|s| *s == p.to) {
            Some(slot) => slot,
            None => {
                if slots.len() == MAX_SLOTS {
                    return None;
                }
                slots.push(p.to.clone());
                slots.len() - 1
            }
        };
        patch_slots.push((i, slot));
    }
    for path in &slots {
        let fields = fields(path)?;
        let (last, parents) = fields.split_last()?;
        let parent = lookup_mut(&mut base, parents)?.as_object_mut()?;
        parent.entry(*last).or_insert(Value::Null);
    }
    let mut with_uid = base.clone();
    if !replaced(&["metadata", "ownerReferences", "uid"])
        && let Some(owner) = with_uid
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(controller_reference)
    {
        owner.entry("uid").or_insert(Value::Null);
    }
    let stamp = stamp_positions(&base, &paths).zip(stamp_positions(&with_uid, &paths));
    let positions: Vec<Option<Vec<usize>>> = patches
        .iter()
        .map(|p| {
            writes_resource(p.kind)
                .then(|| fields(&p.to).and_then(|f| position(&base, &f)))
                .flatten()
        })
        .collect();
    for (i, slot) in patch_slots {
        patches[i].slot = Some(slot);
        patches[i].to_present = true;
    }
    for (p, position) in patches.iter_mut().zip(positions) {
        p.to_position = position;
    }
    Some(Skeleton {
        bases: [base, with_uid],
        slots,
        stamp: stamp.map(|(a, b)| [a, b]),
    })
}

/// The position of each field of `path` among its sorted siblings, when the path exists.
fn position(root: &Value, path: &[&str]) -> Option<Vec<usize>> {
    let mut node = root;
    let mut out = Vec::with_capacity(path.len());
    for f in path {
        let map = node.as_object()?;
        out.push(map.keys().position(|k| k == f)?);
        node = map.get(*f)?;
    }
    Some(out)
}

/// Where `stamp` writes in `base`, a skeleton the patches write at `paths`; `None` when a patch
/// may replace `metadata`.
fn stamp_positions(base: &Value, paths: &[Vec<&str>]) -> Option<StampPositions> {
    // A patch writes `target`, or a value that holds it, or a value inside it.
    let touches = |target: &[&str]| {
        paths
            .iter()
            .any(|p| p.starts_with(target) || target.starts_with(p))
    };
    if paths.iter().any(|p| ["metadata"].starts_with(p)) {
        return None;
    }
    let metadata = position(base, &["metadata"])?[0];
    let meta = base.get("metadata")?;
    let at = |key: &str| position(meta, &[key]).map(|p| p[0]);
    let placeholder = |path: &[&str]| lookup(meta, path).is_some_and(Value::is_null);
    let name = (!touches(&["metadata", "name"]) && placeholder(&["name"]))
        .then(|| at("name"))
        .flatten();
    let labels = (!touches(&["metadata", "labels", wire::LABEL_COMPOSITE])
        && placeholder(&["labels", wire::LABEL_COMPOSITE]))
    .then(|| {
        Some((
            at("labels")?,
            position(meta, &["labels", wire::LABEL_COMPOSITE])?[1],
        ))
    })
    .flatten();
    let annotations = !touches(&["metadata", "annotations", wire::ANNOTATION_RESOURCE_NAME]);
    let owner = (!touches(&["metadata", "ownerReferences"]))
        .then(|| {
            let refs = at("ownerReferences")?;
            let owner = meta.get("ownerReferences")?.as_array()?.last()?;
            let name = position(owner, &["name"])?[0];
            let uid = position(owner, &["uid"]).map(|p| p[0]);
            owner
                .get("name")
                .is_some_and(Value::is_null)
                .then_some((refs, name, uid))
        })
        .flatten();
    Some(StampPositions {
        metadata,
        name,
        labels,
        annotations,
        owner,
    })
}

/// The controller reference `prestamp` appended to a template's metadata.
fn controller_reference(meta: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    meta.get_mut("ownerReferences")?
        .as_array_mut()?
        .last_mut()?
        .as_object_mut()
}

fn lookup<'v>(root: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, f| v.get(*f))
}

fn lookup_mut<'v>(root: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    path.iter().try_fold(root, |v, f| v.get_mut(*f))
}

/// Removes the placeholder at `path` (a skeleton slot: plain fields whose parents exist).
fn remove_placeholder(desired: &mut Value, path: &FieldPath) {
    let Some((Segment::Field(last), parents)) = path.segments().split_last() else {
        return;
    };
    let mut node = desired;
    for s in parents {
        let Segment::Field(f) = s else {
            return;
        };
        match node.get_mut(f.as_str()) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last.as_str());
    }
}

/// The deterministic name of a composed resource: `<xr>-<template>` when it is a valid
/// DNS label of at most 63 characters, otherwise shortened with a hash suffix.
pub fn composed_name(xr: &str, template: &str) -> String {
    let sanitized: String = template
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let candidate = format!("{xr}-{}", sanitized.trim_matches('-'));
    if candidate.len() <= 63 && candidate == template_safe(&candidate) {
        return candidate;
    }
    let digest = Sha256::digest(format!("{xr}/{template}").as_bytes());
    let suffix: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let prefix: String = template_safe(&candidate).chars().take(63 - 7).collect();
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

/// A template name as the tail of a DNS label: lowercase alphanumerics and dashes.
pub(crate) fn dns_label(template: &str) -> String {
    template_safe(template)
}

fn template_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CompositionSpec;

    /// Renders `xr` with `comp` and no environment.
    pub(super) fn render_plain(
        comp: &CompiledComposition,
        xr: &Value,
        observed: &ObservedResources,
    ) -> Result<RenderOutput, RenderError> {
        render(
            comp,
            RenderInput {
                composite: xr,
                observed,
                environment: None,
            },
        )
    }

    fn compile(spec: serde_json::Value) -> CompiledComposition {
        let spec: CompositionSpec = serde_json::from_value(spec).expect("valid spec");
        CompiledComposition::compile(&spec).expect("compiles")
    }

    /// A Composition whose one resource contributes a `host` connection detail, observed.
    fn connection_case(reference: Value) -> (CompiledComposition, ObservedResources) {
        let mut spec = json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "resources": [{"name": "db", "base": {"apiVersion": "example.org/v1", "kind": "DB"},
                "connectionDetails": [{"name": "host", "fromFieldPath": "status.host"}]}],
        });
        if !reference.is_null() {
            spec["writeConnectionSecretToRef"] = reference;
        }
        let observed = ObservedResources::from([(
            "db".to_owned(),
            Observed {
                resource: json!({"apiVersion": "example.org/v1", "kind": "DB",
                    "metadata": {"name": "x-db"}, "status": {"host": "db.example"}}),
                connection_details: Default::default(),
            },
        )]);
        (compile(spec), observed)
    }

    fn secret_of(out: &RenderOutput) -> Option<&Value> {
        out.resources
            .iter()
            .find(|r| r.name == crate::compile::CONNECTION_SECRET_RESOURCE)
            .map(|r| &r.resource)
    }

    #[test]
    fn a_v2_composite_gets_its_connection_details_as_a_composed_secret_named_after_it() {
        let (comp, observed) = connection_case(Value::Null);
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR",
            "metadata": {"name": "x", "namespace": "team-a", "uid": "u1"},
            "spec": {"crossplane": {}}});
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        let secret = secret_of(&out).expect("a composed Secret");
        assert_eq!(secret["metadata"]["name"], "x-connection");
        assert_eq!(secret["metadata"]["namespace"], "team-a");
        assert_eq!(secret["type"], "connection.crossplane.io/v1alpha1");
        assert_eq!(secret["data"], json!({"host": "ZGIuZXhhbXBsZQ=="}));
        assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(out.unready, ["db"], "the Secret is ready once desired");
    }

    #[test]
    fn a_v1_composite_or_one_without_details_gets_no_composed_secret() {
        let (comp, observed) = connection_case(Value::Null);
        let v1 = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
            "spec": {}});
        let out = render_plain(&comp, &v1, &observed).expect("renders");
        assert!(secret_of(&out).is_none());
        assert_eq!(
            out.connection_details.len(),
            1,
            "v1 keeps its details on the XR"
        );
        let v2 = json!({"apiVersion": "example.org/v1", "kind": "XR",
            "metadata": {"name": "x", "namespace": "a"}, "spec": {"crossplane": {}}});
        let out = render_plain(&comp, &v2, &ObservedResources::new()).expect("renders");
        assert!(secret_of(&out).is_none(), "no details yet, no Secret");
    }

    #[test]
    fn the_composites_own_reference_is_used_and_a_cluster_composite_needs_a_namespace() {
        let (comp, observed) = connection_case(Value::Null);
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
            "spec": {"crossplane": {}, "writeConnectionSecretToRef": {"name": "s", "namespace": "ops"}}});
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        let secret = secret_of(&out).expect("a composed Secret");
        assert_eq!(
            (
                &secret["metadata"]["name"],
                &secret["metadata"]["namespace"]
            ),
            (&json!("s"), &json!("ops"))
        );
        let cluster = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
            "spec": {"crossplane": {}}});
        let err = render_plain(&comp, &cluster, &observed).expect_err("no namespace");
        assert_eq!(
            err.to_string(),
            "resource `connection-secret`: writeConnectionSecretToRef.namespace: Required value: \
             a cluster-scoped composite resource's connection Secret needs a namespace"
        );
    }

    #[test]
    fn connection_secret_patches_name_it_and_a_required_missing_source_is_an_error() {
        let (comp, observed) = connection_case(json!({"namespace": "ops", "patches": [
            {"fromFieldPath": "spec.secret", "toFieldPath": "name",
             "transforms": [{"type": "string", "string": {"type": "Format", "fmt": "%s-conn"}}]},
            {"fromFieldPath": "spec.absent", "toFieldPath": "namespace"},
        ]}));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
            "spec": {"crossplane": {}, "secret": "orders"}});
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        let secret = secret_of(&out).expect("a composed Secret");
        assert_eq!(secret["metadata"]["name"], "orders-conn");
        assert_eq!(
            secret["metadata"]["namespace"], "ops",
            "an optional missing source is skipped"
        );
        let (comp, observed) =
            connection_case(json!({"name": "n", "namespace": "ops", "patches": [
            {"fromFieldPath": "spec.absent", "toFieldPath": "name",
             "policy": {"fromFieldPath": "Required"}}]}));
        let err = render_plain(&comp, &xr, &observed).expect_err("required");
        assert!(
            err.to_string()
                .contains("writeConnectionSecretToRef.patches[0] (FromCompositeFieldPath): required source is missing: spec.absent"),
            "{err}"
        );
    }

    #[test]
    fn a_connection_secret_patch_may_only_write_name_or_namespace_from_the_composite() {
        let spec = |patch: Value| -> CompositionSpec {
            serde_json::from_value(json!({
                "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
                "writeConnectionSecretToRef": {"patches": [patch]},
            }))
            .expect("valid spec")
        };
        let err = CompiledComposition::compile(&spec(
            json!({"fromFieldPath": "spec.a", "toFieldPath": "data.a"}),
        ))
        .expect_err("bad toFieldPath");
        assert_eq!(
            err.to_string(),
            "writeConnectionSecretToRef: patch 0 (FromCompositeFieldPath): toFieldPath: must be \
             \"name\" or \"namespace\", not \"data.a\""
        );
        let err = CompiledComposition::compile(&spec(
            json!({"type": "ToCompositeFieldPath", "fromFieldPath": "a", "toFieldPath": "name"}),
        ))
        .expect_err("bad type");
        assert!(
            err.to_string()
                .contains("support only FromCompositeFieldPath and CombineFromComposite"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_required_environment_source_says_what_is_missing_once() {
        let comp = compile(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "environment": {"patches": [{"fromFieldPath": "spec.a.b", "toFieldPath": "a",
                "policy": {"fromFieldPath": "Required"}}]},
        }));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"}, "spec": {}});
        let observed = ObservedResources::new();
        let err = render_plain(&comp, &xr, &observed).expect_err("required");
        assert_eq!(
            err.to_string(),
            "environment: patch 0 (FromCompositeFieldPath): required source is missing: spec.a: no such field"
        );
    }

    #[test]
    fn a_resource_withheld_by_a_required_patch_names_the_patch_and_the_missing_path() {
        let comp = compile(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "resources": [
                {"name": "database", "base": {"apiVersion": "v1", "kind": "T"}, "patches": [
                    {"fromFieldPath": "spec.size", "toFieldPath": "spec.size"},
                    {"fromFieldPath": "spec.name", "toFieldPath": "spec.name",
                     "policy": {"fromFieldPath": "Required"}},
                    {"type": "CombineFromComposite", "toFieldPath": "spec.label",
                     "policy": {"fromFieldPath": "Required"},
                     "combine": {"strategy": "string", "string": {"fmt": "%s-%s"}, "variables": [
                        {"fromFieldPath": "spec.size"}, {"fromFieldPath": "spec.parameters.region"}]}},
                ]},
            ],
        }));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
            "spec": {"size": "S", "name": "n"}});
        let out = render_plain(&comp, &xr, &ObservedResources::new()).expect("renders");
        let required = RequiredSource {
            patch: 2,
            kind: PatchType::CombineFromComposite,
            from_field_path: "spec.parameters.region".into(),
            from_resource: None,
        };
        assert_eq!(
            out.withheld,
            vec![Withheld {
                name: "database".into(),
                reason: required.explain(),
                required: Some(required),
            }]
        );
        assert_eq!(
            out.warnings,
            [
                "resource `database` withheld: waiting for spec.parameters.region: Required patch 2 CombineFromComposite"
            ]
        );
        assert_eq!(out.unready, ["database"]);
    }

    #[test]
    fn environment_patches_accept_function_patch_and_transform_names() {
        let comp = compile(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "environment": {"patches": [
                {"type": "ToEnvironmentFieldPath", "fromFieldPath": "spec.size", "toFieldPath": "size"},
                {"type": "CombineToEnvironment", "toFieldPath": "label", "combine": {"strategy": "string",
                    "variables": [{"fromFieldPath": "spec.size"}], "string": {"fmt": "size-%s"}}},
                {"type": "FromEnvironmentFieldPath", "fromFieldPath": "size", "toFieldPath": "status.size"},
                {"type": "CombineFromEnvironment", "toFieldPath": "status.label", "combine": {"strategy": "string",
                    "variables": [{"fromFieldPath": "label"}], "string": {"fmt": "%s!"}}}
            ]},
        }));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"}, "spec": {"size": "L"}});
        let observed = ObservedResources::new();
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        assert_eq!(out.environment, json!({"size": "L", "label": "size-L"}));
        let status = out.merged_status(&xr);
        assert_eq!(status["size"], json!("L"));
        assert_eq!(status["label"], json!("size-L!"));
    }

    #[test]
    fn integral_floats_in_a_base_or_the_xr_render_as_integers() {
        let comp = compile(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "resources": [{"name": "a", "base": {"apiVersion": "v1", "kind": "T", "spec": {"f": 2.0, "h": 1.5}}}]
        }));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"}, "spec": {"f": 3.0}});
        let observed = ObservedResources::new();
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        assert_eq!(out.resources[0].resource["spec"], json!({"f": 2, "h": 1.5}));
        assert!(out.resources[0].resource["spec"]["f"].is_i64());
        assert!(out.composite(&xr).to_value()["spec"]["f"].is_i64());
    }

    #[test]
    fn the_composite_view_serializes_as_the_owned_xr() {
        let comp = compile(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XR"},
            "resources": [{"name": "a", "base": {"apiVersion": "v1", "kind": "T"},
                "patches": [{"type": "ToCompositeFieldPath", "fromFieldPath": "status.n",
                    "toFieldPath": "status.n"}]}]
        }));
        let observed: ObservedResources = [(
            "a".to_owned(),
            Observed {
                resource: json!({"apiVersion": "v1", "kind": "T", "metadata": {"name": "x-a"},
                    "status": {"n": 4.0, "conditions": [{"type": "Ready", "status": "True"}]}}),
                connection_details: Default::default(),
            },
        )]
        .into();
        let xrs = [
            // No status; keys after `status`.
            json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
                "spec": {"f": 3.0, "g": [1.0, 1.5]}, "zz": {"h": -0.0}}),
            // A status to merge into, with a condition of another type and a float.
            json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
                "status": {"m": 2.0, "conditions": [{"type": "Synced", "status": "True"}]}}),
            // A status that is not an object.
            json!({"apiVersion": "example.org/v1", "kind": "XR", "metadata": {"name": "x"},
                "status": "broken", "z": 1}),
        ];
        for xr in xrs {
            let out = render_plain(&comp, &xr, &observed).expect("renders");
            let view = out.composite(&xr);
            let owned = view.to_value();
            assert_eq!(owned["status"], out.merged_status(&xr));
            assert_eq!(owned["status"]["n"], json!(4));
            assert_eq!(
                serde_json::to_string(&view).expect("serializes"),
                serde_json::to_string(&owned).expect("serializes"),
                "{xr}"
            );
            assert_eq!(
                serde_saphyr::to_string(&view).expect("serializes"),
                serde_saphyr::to_string(&owned).expect("serializes"),
                "{xr}"
            );
        }
    }
}

#[cfg(test)]
mod skeleton_tests {
    use super::*;
    use crate::model::CompositionSpec;

    /// The same Composition rendering from `stamped_base` with lookups only.
    fn without_skeletons(comp: &CompiledComposition) -> CompiledComposition {
        let mut comp = comp.clone();
        for r in &mut comp.resources {
            r.skeleton = None;
            for p in &mut r.patches {
                p.slot = None;
                p.to_present = false;
                p.to_position = None;
            }
        }
        comp
    }

    #[test]
    fn a_render_from_a_skeleton_equals_one_from_the_stamped_base() {
        let patches = json!([
            {"fromFieldPath": "spec.region", "toFieldPath": "data.region"},
            {"fromFieldPath": "spec.missing", "toFieldPath": "data.missing"},
            {"fromFieldPath": "spec.labels", "toFieldPath": "metadata.labels"},
            {"fromFieldPath": "spec.n", "toFieldPath": "data.n"},
        ]);
        let spec: CompositionSpec = serde_json::from_value(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
            "resources": [
                {"name": "plain", "base": {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"namespace": "default"}, "data": {"static": "value"}},
                 "patches": patches},
                {"name": "filled", "base": {"apiVersion": "v1", "kind": "ConfigMap",
                    "data": {"static": "value"}},
                 "patches": [{"fromFieldPath": "spec.region", "toFieldPath": "data.region"}]},
                {"name": "named", "base": {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"labels": {"a": "b"}}},
                 "patches": [
                    {"fromFieldPath": "spec.name", "toFieldPath": "metadata.name"},
                    {"fromFieldPath": "spec.team", "toFieldPath": "metadata.labels.team"},
                    {"fromFieldPath": "spec.note", "toFieldPath": "metadata.annotations.note"},
                 ]},
                {"name": "no-patches", "base": {"apiVersion": "v1", "kind": "ConfigMap"}},
            ]
        }))
        .expect("valid spec");
        let comp = CompiledComposition::compile(&spec).expect("compiles");
        assert!(comp.resources.iter().all(|r| r.skeleton.is_some()));
        let plain = without_skeletons(&comp);
        let observed: ObservedResources = [(
            "named".to_owned(),
            Observed {
                resource: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "taken"}}),
                connection_details: Default::default(),
            },
        )]
        .into();
        let specs = [
            json!({"region": "eu", "labels": {"team": "a"}, "n": 2.0, "name": "n", "team": "t",
                "note": "x"}),
            json!({"missing": "here", "labels": "not-an-object"}),
            json!({}),
        ];
        let metas = [
            json!({"name": "app", "uid": "u-1"}),
            json!({"name": "app"}),
            json!({"name": "app", "namespace": "ns", "labels": {
                "strata.dev/claim-name": "c", "strata.dev/claim-namespace": "cns"}}),
            json!({"name": "a.b", "uid": "u-2", "labels": {"strata.dev/composite": "root"}}),
        ];
        for xr_spec in &specs {
            for meta in &metas {
                for observed in [&ObservedResources::new(), &observed] {
                    let xr = json!({"apiVersion": "example.org/v1", "kind": "XApp",
                        "metadata": meta, "spec": xr_spec});
                    let input = RenderInput {
                        composite: &xr,
                        observed,
                        environment: None,
                    };
                    let fast = render(&comp, input);
                    let slow = render(&plain, input);
                    assert_eq!(fast, slow, "{xr}");
                    if let Ok(out) = fast {
                        for r in &out.resources {
                            assert!(!has_null(&r.resource), "{}", r.resource);
                        }
                    }
                }
            }
        }
    }

    fn has_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(items) => items.iter().any(has_null),
            Value::Object(m) => m.values().any(has_null),
            _ => false,
        }
    }
}

#[cfg(test)]
mod stamping_tests {
    use super::tests::render_plain;
    use super::*;
    use crate::model::CompositionSpec;

    fn compiled(resources: Value) -> CompiledComposition {
        let spec: CompositionSpec = serde_json::from_value(json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
            "resources": resources,
        }))
        .expect("valid spec");
        CompiledComposition::compile(&spec).expect("compiles")
    }

    #[test]
    fn a_patch_replacing_labels_cannot_drop_the_composite_label_or_owner() {
        let comp = compiled(json!([{
            "name": "cm",
            "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}},
            "patches": [
                {"fromFieldPath": "spec.labels", "toFieldPath": "metadata.labels"},
                {"fromFieldPath": "spec.refs", "toFieldPath": "metadata.ownerReferences"}
            ]
        }]));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XApp",
            "metadata": {"name": "app", "uid": "u-1"},
            "spec": {"labels": {"team": "a"}, "refs": [{"apiVersion": "v1", "kind": "X", "name": "y", "controller": true}]}});
        let observed = ObservedResources::new();
        let out = render_plain(&comp, &xr, &observed).expect("renders");
        let meta = &out.resources[0].resource["metadata"];
        assert_eq!(
            meta["labels"],
            json!({"team": "a", "strata.dev/composite": "app"})
        );
        assert_eq!(
            meta["annotations"][wire::ANNOTATION_RESOURCE_NAME],
            json!("cm")
        );
        assert_eq!(
            meta["ownerReferences"],
            json!([{"apiVersion": "example.org/v1", "kind": "XApp",
            "name": "app", "uid": "u-1", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(meta["name"], json!("app-cm"));
    }

    #[test]
    fn a_namespaced_composite_refuses_a_resource_in_another_namespace() {
        let comp = compiled(json!([{
            "name": "cm",
            "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "other"}}
        }]));
        let xr = json!({"apiVersion": "example.org/v1", "kind": "XApp", "metadata": {"name": "app", "namespace": "team-a"}});
        let observed = ObservedResources::new();
        let err = render_plain(&comp, &xr, &observed).expect_err("outside");
        assert!(
            err.to_string()
                .starts_with("resource `cm`: metadata.namespace"),
            "{err}"
        );
    }
}
