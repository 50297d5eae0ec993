//! The composition model: Strata's own `apiextensions.strata.dev/v1alpha1` kinds.
//!
//! The field names mirror Crossplane's `apiextensions.crossplane.io/v1` so that a Crossplane
//! Composition deserializes into the same structs (see [`crate::load`] for the conversion of
//! Crossplane's pipeline form). Strata's extensions are `dependsOn` on a composed resource and
//! the `FromResourceFieldPath` patch type.
//!
//! These types are the *wire* form: strings are not yet parsed. [`crate::compile`] turns a
//! [`CompositionSpec`] into an immutable compiled form once, and every render reuses it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transform::Transform;

/// The API group of Strata's composition machinery.
pub const GROUP: &str = "apiextensions.strata.dev";
/// The version of Strata's composition machinery.
pub const VERSION: &str = "v1alpha1";

/// Marks a field as free-form JSON in the generated schema (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn preserve_unknown(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Any JSON value, kept as it is (`x-kubernetes-preserve-unknown-fields`, no type).
pub(crate) fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

// ---------------------------------------------------------------------------------------------
// Composition
// ---------------------------------------------------------------------------------------------

/// A Composition: how to turn one composite resource (XR) into composed resources.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apiextensions.strata.dev",
    version = "v1alpha1",
    kind = "Composition",
    doc = "A Composition: how to turn one composite resource (XR) into composed resources.",
    shortname = "comp",
    printcolumn = r#"{"name":"XR-KIND","type":"string","jsonPath":".spec.compositeTypeRef.kind"}"#,
    printcolumn = r#"{"name":"XR-APIVERSION","type":"string","jsonPath":".spec.compositeTypeRef.apiVersion"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompositionSpec {
    /// The kind of composite resource this Composition composes.
    pub composite_type_ref: TypeReference,
    /// How a Crossplane Composition was written. `Resources` (Crossplane's built-in composer): a
    /// patch that fails skips that one resource with a warning. `Pipeline` (its
    /// patch-and-transform step folded in): a failing patch is fatal. Unset (Strata's native
    /// form): a failing patch is fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CompositionMode>,
    /// Named groups of patches that resources reference with `type: PatchSet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch_sets: Vec<PatchSet>,
    /// Environment selection and the patches between the XR and the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentSpec>,
    /// The composed resources, in declaration order.
    #[serde(default)]
    pub resources: Vec<ComposedTemplate>,
    /// Where the XR's connection Secret is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secrets_to_namespace: Option<String>,
    /// The connection Secret composed for a Crossplane v2 XR (one with `spec.crossplane`), as
    /// function-patch-and-transform's `writeConnectionSecretToRef` input: v2 XRs have no
    /// connection details of their own, so the details the resources contribute become a
    /// composed Secret. Unset: `{xr-name}-connection` in the XR's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<ConnectionSecretRef>,
    /// A Crossplane function pipeline with a step Strata does not run in-process, kept as
    /// written (`spec.pipeline` of a `mode: Pipeline` Composition): the controllers run it with
    /// [`crate::pipeline::Pipeline`], calling functions over gRPC. A pipeline of native steps
    /// only is folded into `resources` instead and this stays empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_list")]
    pub pipeline: Vec<Value>,
}

/// How a Composition composes: Crossplane's built-in composer, or a pipeline of functions.
///
/// Values:
/// - `Resources`: Crossplane's built-in composer (`spec.resources`): a failing patch skips that
///   resource with a warning.
/// - `Pipeline`: A function pipeline (`spec.pipeline`): a failing patch is fatal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum CompositionMode {
    Resources,
    Pipeline,
}

/// `apiVersion` + `kind` of a type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TypeReference {
    /// `group/version`, or just `version` for the core group.
    pub api_version: String,
    /// The kind, as in the object's `kind` field.
    pub kind: String,
}

impl TypeReference {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// Where the composed connection Secret of a v2 XR goes
/// ([`CompositionSpec::write_connection_secret_to_ref`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionSecretRef {
    /// The Secret's name; with `namespace` unset too, the XR's own
    /// `spec.writeConnectionSecretToRef` or `{xr-name}-connection` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Secret's namespace; a namespaced XR's Secret is always in the XR's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Patches from the XR to the reference: `FromCompositeFieldPath` or
    /// `CombineFromComposite`, with `toFieldPath` `name` or `namespace`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
}

/// A named, reusable list of patches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchSet {
    /// What `type: PatchSet` patches name in `patchSetName`; unique within the Composition.
    pub name: String,
    /// Patches expanded in place, in order, wherever the set is referenced.
    pub patches: Vec<Patch>,
}

/// One composed resource template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComposedTemplate {
    /// Unique within the Composition; identifies the composed resource across renders.
    pub name: String,
    /// The resource as it is before patches.
    #[schemars(schema_with = "preserve_unknown")]
    pub base: Value,
    /// Patches applied to `base` in order on every render (PatchSets expanded in place).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Details this resource contributes to the XR's connection Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_details: Vec<ConnectionDetail>,
    /// All must pass for the resource to be Ready. Unset or empty: its `Ready` condition must be
    /// `True`; a `None` check: Ready as soon as it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_checks: Option<Vec<ReadinessCheck>>,
    /// Strata extension: names of resources that must exist and be Ready before this one is created,
    /// and that are deleted only after this one is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// The kinds of patch.
///
/// Values:
/// - `FromCompositeFieldPath`: Copies an XR field into the composed resource.
/// - `ToCompositeFieldPath`: Copies a field of the observed composed resource into the XR.
/// - `CombineFromComposite`: Combines several XR fields into one composed resource field.
/// - `CombineToComposite`: Combines several fields of the observed composed resource into one XR
///   field.
/// - `FromEnvironmentFieldPath`: Copies an environment field into the composed resource.
/// - `ToEnvironmentFieldPath`: Copies a field of the observed composed resource into the
///   environment.
/// - `CombineFromEnvironment`: Combines several environment fields into one composed resource
///   field.
/// - `CombineToEnvironment`: Combines several fields of the observed composed resource into one
///   environment field.
/// - `PatchSet`: Expands the PatchSet named by `patchSetName` in place.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum PatchType {
    #[default]
    FromCompositeFieldPath,
    ToCompositeFieldPath,
    CombineFromComposite,
    CombineToComposite,
    FromEnvironmentFieldPath,
    ToEnvironmentFieldPath,
    CombineFromEnvironment,
    CombineToEnvironment,
    PatchSet,
    /// Strata extension: reads a field of another composed resource (observed).
    FromResourceFieldPath,
}

impl PatchType {
    /// The name as written in a Composition's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchType::FromCompositeFieldPath => "FromCompositeFieldPath",
            PatchType::ToCompositeFieldPath => "ToCompositeFieldPath",
            PatchType::CombineFromComposite => "CombineFromComposite",
            PatchType::CombineToComposite => "CombineToComposite",
            PatchType::FromEnvironmentFieldPath => "FromEnvironmentFieldPath",
            PatchType::ToEnvironmentFieldPath => "ToEnvironmentFieldPath",
            PatchType::CombineFromEnvironment => "CombineFromEnvironment",
            PatchType::CombineToEnvironment => "CombineToEnvironment",
            PatchType::PatchSet => "PatchSet",
            PatchType::FromResourceFieldPath => "FromResourceFieldPath",
        }
    }
}

/// A patch between the XR, the environment, other composed resources and a composed resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// The patch type; `FromCompositeFieldPath` when unset.
    #[serde(default, rename = "type")]
    pub kind: PatchType,
    /// The field read from the source the type names (XR, environment or composed resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    /// The field written in the destination; defaults to `fromFieldPath`. `[*]` writes every
    /// existing element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<String>,
    /// How a `Combine*` patch turns its variables into one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
    /// The PatchSet a `type: PatchSet` patch expands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_set_name: Option<String>,
    /// Strata extension (`FromResourceFieldPath`): the composed resource to read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_resource: Option<String>,
    /// Applied in order to the value read, before it is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// What a missing source does, and how the value is written into an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PatchPolicy>,
}

/// How several source values are combined into one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Combine {
    /// The field paths read, in the order the format consumes them.
    pub variables: Vec<CombineVariable>,
    /// Only `string` is defined.
    pub strategy: String,
    /// The format of the `string` strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<CombineString>,
}

/// One value a `combine` reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CombineVariable {
    /// A field path in the patch's source.
    pub from_field_path: String,
}

/// The `string` strategy of a `combine`: the variables formatted into one string.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CombineString {
    /// A Go `fmt` format with one verb per variable (`%s-%d`).
    pub fmt: String,
}

/// How a patch treats a missing source and an existing destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchPolicy {
    /// `Optional` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<FromFieldPathPolicy>,
    /// `Replace` when unset (and no `mergeOptions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<ToFieldPathPolicy>,
    /// Deprecated Crossplane field, mapped onto `toFieldPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_options: Option<MergeOptions>,
}

/// What a patch does when its source field does not exist.
///
/// Values:
/// - `Optional`: The patch is skipped.
/// - `Required`: The patch fails: a composed resource not yet created is withheld until the field
///   exists.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum FromFieldPathPolicy {
    #[default]
    Optional,
    Required,
}

/// How a patch writes a value where the destination may already hold one.
///
/// Values:
/// - `Replace`: The value replaces whatever is there.
/// - `MergeObjects`: Objects merge deeply, keeping the destination's existing values; arrays are
///   replaced.
/// - `MergeObjectsAppendArrays`: Objects merge deeply, keeping the destination's existing values;
///   arrays are appended to.
/// - `ForceMergeObjects`: Objects merge deeply, the patched values winning; arrays are replaced.
/// - `ForceMergeObjectsAppendArrays`: Objects merge deeply, the patched values winning; arrays are
///   appended to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum ToFieldPathPolicy {
    #[default]
    Replace,
    MergeObjects,
    MergeObjectsAppendArrays,
    ForceMergeObjects,
    ForceMergeObjectsAppendArrays,
}

/// Crossplane's deprecated merge options (`keepMapValues`, `appendSlice`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeOptions {
    /// `true`: existing object values win over the patched ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_map_values: Option<bool>,
    /// `true`: arrays are appended to instead of replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_slice: Option<bool>,
}

/// A connection detail a composed resource contributes to the XR's connection secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionDetail {
    /// The key in the connection Secret; for `FromConnectionSecretKey` it defaults to that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Inferred from which of the other fields is set when unset.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConnectionDetailType>,
    /// A key of the composed resource's own connection Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_connection_secret_key: Option<String>,
    /// A field of the observed composed resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Where a connection detail's value comes from.
///
/// Values:
/// - `FromConnectionSecretKey`: `fromConnectionSecretKey` of the composed resource's connection
///   Secret.
/// - `FromFieldPath`: `fromFieldPath` of the observed composed resource.
/// - `FromValue`: The literal `value`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum ConnectionDetailType {
    FromConnectionSecretKey,
    FromFieldPath,
    FromValue,
}

/// A check that decides whether a composed resource is ready.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessCheck {
    /// What the check compares; `NonEmpty` when unset.
    #[serde(rename = "type")]
    pub kind: ReadinessCheckType,
    /// The field of the observed composed resource the check reads (all types but `MatchCondition`
    /// and `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    /// The value `MatchString` wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_string: Option<String>,
    /// The value `MatchInteger` wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_integer: Option<i64>,
    /// The condition `MatchCondition` wants; `Ready=True` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_condition: Option<MatchConditionCheck>,
}

/// What a readiness check compares.
///
/// Values:
/// - `NonEmpty`: The field exists.
/// - `MatchString`: The field is the string `matchString`.
/// - `MatchInteger`: The field is the integer `matchInteger`.
/// - `MatchTrue`: The field is `true`.
/// - `MatchFalse`: The field is `false`.
/// - `MatchCondition`: A status condition has the type and status of `matchCondition`.
/// - `None`: Always passes: the resource is Ready once it exists.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum ReadinessCheckType {
    #[default]
    NonEmpty,
    MatchString,
    MatchInteger,
    MatchTrue,
    MatchFalse,
    MatchCondition,
    None,
}

/// The status condition a `MatchCondition` readiness check wants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchConditionCheck {
    /// The condition type; `Ready` when unset.
    #[serde(rename = "type", default = "ready_type")]
    pub kind: String,
    /// The condition status; `True` when unset.
    #[serde(default = "true_status")]
    pub status: String,
}

impl Default for MatchConditionCheck {
    fn default() -> Self {
        Self {
            kind: ready_type(),
            status: true_status(),
        }
    }
}

fn ready_type() -> String {
    "Ready".to_owned()
}
fn true_status() -> String {
    "True".to_owned()
}

/// Environment configuration of a Composition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// EnvironmentConfigs to merge, in order (selected by the controllers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_configs: Vec<EnvironmentSource>,
    /// Patches between the XR and the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Data the environment starts with, before any EnvironmentConfig is merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub default_data: Option<Value>,
    /// `resolution: Optional` skips a referenced EnvironmentConfig that does not exist instead of
    /// failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub policy: Option<Value>,
}

/// One source of environment data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSource {
    /// `Reference` when unset.
    #[serde(rename = "type", default)]
    pub kind: EnvironmentSourceType,
    /// The EnvironmentConfig a `Reference` source names.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<NameReference>,
    /// How a `Selector` source picks EnvironmentConfigs by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<EnvironmentSelector>,
}

/// How an environment source finds its EnvironmentConfigs.
///
/// Values:
/// - `Reference`: By name (`ref.name`).
/// - `Selector`: By labels (`selector`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum EnvironmentSourceType {
    #[default]
    Reference,
    Selector,
}

/// A reference to a cluster-scoped object by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameReference {
    /// The object's `metadata.name`.
    pub name: String,
}

/// Selects EnvironmentConfigs by label.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSelector {
    /// `Single` (default) or `Multiple`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `Multiple` only: the field the matches are sorted by; `metadata.name` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by_field_path: Option<String>,
    /// `Multiple` only: keep at most this many matches, after sorting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_match: Option<u64>,
    /// `Multiple` only: fewer matches than this is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_match: Option<u64>,
    /// Labels a config must all carry; a selector whose labels are all skipped selects nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_labels: Vec<EnvironmentSelectorLabel>,
}

/// One label an EnvironmentConfig must carry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSelectorLabel {
    /// The label key.
    pub key: String,
    /// `FromCompositeFieldPath` (default) or `Value`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `FromCompositeFieldPath`: the XR field holding the label value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_field_path: Option<String>,
    /// `Value`: the label value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A missing `valueFromFieldPath` skips the label (`Optional`, the default) or is an error
    /// (`Required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path_policy: Option<FromFieldPathPolicy>,
}

// ---------------------------------------------------------------------------------------------
// CompositionRevision
// ---------------------------------------------------------------------------------------------

/// An immutable snapshot of a Composition, numbered in order of creation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apiextensions.strata.dev",
    version = "v1alpha1",
    kind = "CompositionRevision",
    doc = "An immutable snapshot of a Composition, numbered in order of creation.",
    shortname = "comprev",
    printcolumn = r#"{"name":"REVISION","type":"string","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"XR-KIND","type":"string","jsonPath":".spec.compositeTypeRef.kind"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionRevisionSpec {
    /// Monotonic per Composition, starting at 1.
    pub revision: i64,
    /// The Composition's spec as it was when the revision was taken.
    #[serde(flatten)]
    pub composition: CompositionSpec,
}

// ---------------------------------------------------------------------------------------------
// EnvironmentConfig
// ---------------------------------------------------------------------------------------------

/// Shared configuration data that Compositions read through environment patches.
///
/// Unlike most kinds it has no `spec`: the payload is the top-level `data` field.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfig {
    /// Standard object metadata; selectors match its labels.
    #[serde(default)]
    pub metadata: kube::core::ObjectMeta,
    /// The configuration, any JSON object; environment patches read and write it.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown")]
    pub data: Value,
}

impl kube::Resource for EnvironmentConfig {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;
    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "EnvironmentConfig".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "environmentconfigs".into()
    }
    fn meta(&self) -> &kube::core::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::core::ObjectMeta {
        &mut self.metadata
    }
}

// ---------------------------------------------------------------------------------------------
// CompositeResourceDefinition
// ---------------------------------------------------------------------------------------------

/// Defines a new composite resource kind (and optionally a namespaced claim kind).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apiextensions.strata.dev",
    version = "v1alpha1",
    kind = "CompositeResourceDefinition",
    doc = "Defines a new composite resource kind (and optionally a namespaced claim kind).",
    shortname = "xrd",
    status = "XrdStatus",
    printcolumn = r#"{"name":"ESTABLISHED","type":"string","jsonPath":".status.conditions[?(@.type=='Established')].status"}"#,
    printcolumn = r#"{"name":"OFFERED","type":"string","jsonPath":".status.conditions[?(@.type=='Offered')].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompositeResourceDefinitionSpec {
    /// The API group of the defined kinds (the XR's and the claim's).
    pub group: String,
    /// Names of the composite resource kind.
    pub names: Names,
    /// Names of the namespaced claim kind; unset means no claims. Only the `LegacyCluster` scope
    /// allows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_names: Option<Names>,
    /// `LegacyCluster` (the default: the v1 shape, with claims), `Namespaced` or `Cluster` (the
    /// Crossplane v2 shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<XrScope>,
    /// The versions served; exactly one is referenceable.
    pub versions: Vec<XrdVersion>,
    /// The connection Secret keys the defined kind publishes, as Crossplane declares them.
    /// Accepted, not enforced: the Secret holds every key the resources contribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_secret_keys: Vec<String>,
    /// The Composition an XR uses when it selects none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composition_ref: Option<NameReference>,
    /// The Composition every XR uses, whatever it selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_composition_ref: Option<NameReference>,
    /// `Automatic` (default) or `Manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composition_update_policy: Option<UpdatePolicy>,
    /// `Background` (default) or `Foreground`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composite_delete_policy: Option<String>,
}

/// The scope of an XRD's composite resources, and with it their shape, as in Crossplane v2.
///
/// `LegacyCluster` (the default here, and Crossplane's for `apiextensions.crossplane.io/v1`) is
/// the v1 shape: cluster-scoped, composition machinery directly under `spec`, claims allowed.
/// `Namespaced` (Crossplane's default for v2) and `Cluster` are the v2 shape: the machinery lives
/// under `spec.crossplane`, and there are no claims.
///
/// Values:
/// - `Cluster`: Cluster-scoped, v2 shape.
/// - `Namespaced`: Namespaced, v2 shape.
/// - `LegacyCluster`: Cluster-scoped, v1 shape.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum XrScope {
    Cluster,
    Namespaced,
    #[default]
    LegacyCluster,
}

impl XrScope {
    /// True for the v1 shape (machinery under `spec`, claims allowed).
    pub fn is_legacy(self) -> bool {
        self == XrScope::LegacyCluster
    }
}

/// Whether an XR moves to a Composition's new revision by itself.
///
/// Values:
/// - `Automatic`: The XR takes the newest revision.
/// - `Manual`: The XR keeps its `spec.compositionRevisionRef` once set.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
// The values are documented on the enum: doc comments on them would turn the generated
// CRD schema's `enum` into a `oneOf` and replace the fields' descriptions.
#[allow(missing_docs)]
pub enum UpdatePolicy {
    #[default]
    Automatic,
    Manual,
}

/// Kubernetes-style resource names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Names {
    /// The kind, in CamelCase.
    pub kind: String,
    /// The lower-case plural, used in the resource's URL.
    pub plural: String,
    /// The lower-case singular; the lower-cased kind when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singular: Option<String>,
    /// The kind of lists; `{kind}List` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_kind: Option<String>,
    /// Short names `kubectl` accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Groups of resources the kind belongs to (`kubectl get all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// One version of the kinds an XRD defines.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XrdVersion {
    /// The version, such as `v1alpha1`.
    pub name: String,
    /// Served by the API; `true` when unset.
    #[serde(default = "yes")]
    pub served: bool,
    /// The version Compositions target; exactly one version is. `true` when unset.
    #[serde(default = "yes")]
    pub referenceable: bool,
    /// The schema of the version's objects; unset accepts any object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<XrdSchema>,
    /// Columns `kubectl get` prints, as a CRD's `additionalPrinterColumns`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_list")]
    pub additional_printer_columns: Vec<Value>,
    /// The API warns clients that use a deprecated version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
    /// The warning a deprecated version's clients get instead of the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_warning: Option<String>,
    /// Subresources of the generated CRD besides `status` (which it always has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresources: Option<XrdSubresources>,
}

/// `versions[].subresources` of an XRD.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XrdSubresources {
    /// The scale subresource of the generated CRD, as Kubernetes defines it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleSubresource>,
}

/// Where the scale subresource reads and writes replicas (JSON paths like `.spec.replicas`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSubresource {
    /// Where the desired replicas are (`.spec.replicas`).
    pub spec_replicas_path: String,
    /// Where the observed replicas are (`.status.replicas`).
    pub status_replicas_path: String,
    /// Where the label selector (in string form) for the replicas is, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector_path: Option<String>,
}

fn yes() -> bool {
    true
}

fn preserve_unknown_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// The schema of one XRD version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XrdSchema {
    /// A structural OpenAPI v3 schema, as in a CRD; Strata adds the composition machinery's fields.
    #[serde(rename = "openAPIV3Schema", default)]
    #[schemars(schema_with = "preserve_unknown")]
    pub open_api_v3_schema: Value,
}

/// Status of an XRD, written by the XRD controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct XrdStatus {
    /// `Established` (the CRDs are served) and `Offered` (the claim CRD is served).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Kubernetes-style status condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, such as `Ready`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Free-form object (used for composed resource bases and environment data).
pub type Object = BTreeMap<String, Value>;
