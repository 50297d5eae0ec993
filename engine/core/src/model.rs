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
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CompositionMode {
    Resources,
    Pipeline,
}

/// `apiVersion` + `kind` of a type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TypeReference {
    pub api_version: String,
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
    pub name: String,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_details: Vec<ConnectionDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_checks: Option<Vec<ReadinessCheck>>,
    /// Strata extension: names of resources that must exist and be Ready before this one is created,
    /// and that are deleted only after this one is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// The kinds of patch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
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
    #[serde(default, rename = "type")]
    pub kind: PatchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_set_name: Option<String>,
    /// Strata extension (`FromResourceFieldPath`): the composed resource to read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_resource: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PatchPolicy>,
}

/// How several source values are combined into one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Combine {
    pub variables: Vec<CombineVariable>,
    /// Only `string` is defined.
    pub strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<CombineString>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CombineVariable {
    pub from_field_path: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CombineString {
    pub fmt: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<FromFieldPathPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<ToFieldPathPolicy>,
    /// Deprecated Crossplane field, mapped onto `toFieldPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_options: Option<MergeOptions>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FromFieldPathPolicy {
    #[default]
    Optional,
    Required,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_map_values: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_slice: Option<bool>,
}

/// A connection detail a composed resource contributes to the XR's connection secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConnectionDetailType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_connection_secret_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConnectionDetailType {
    FromConnectionSecretKey,
    FromFieldPath,
    FromValue,
}

/// A check that decides whether a composed resource is ready.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessCheck {
    #[serde(rename = "type")]
    pub kind: ReadinessCheckType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_integer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_condition: Option<MatchConditionCheck>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchConditionCheck {
    #[serde(rename = "type", default = "ready_type")]
    pub kind: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub policy: Option<Value>,
}

/// One source of environment data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSource {
    #[serde(rename = "type", default)]
    pub kind: EnvironmentSourceType,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<NameReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<EnvironmentSelector>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EnvironmentSourceType {
    #[default]
    Reference,
    Selector,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameReference {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSelector {
    /// `Single` (default) or `Multiple`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_match: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_match: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_labels: Vec<EnvironmentSelectorLabel>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSelectorLabel {
    pub key: String,
    /// `FromCompositeFieldPath` (default) or `Value`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
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
    #[serde(default)]
    pub metadata: kube::core::ObjectMeta,
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
    pub group: String,
    pub names: Names,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_names: Option<Names>,
    /// `LegacyCluster` (the default: the v1 shape, with claims), `Namespaced` or `Cluster` (the
    /// Crossplane v2 shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<XrScope>,
    pub versions: Vec<XrdVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_secret_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composition_ref: Option<NameReference>,
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
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdatePolicy {
    #[default]
    Automatic,
    Manual,
}

/// Kubernetes-style resource names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Names {
    pub kind: String,
    pub plural: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singular: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XrdVersion {
    pub name: String,
    #[serde(default = "yes")]
    pub served: bool,
    #[serde(default = "yes")]
    pub referenceable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<XrdSchema>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_list")]
    pub additional_printer_columns: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
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
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
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

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XrdSchema {
    #[serde(rename = "openAPIV3Schema", default)]
    #[schemars(schema_with = "preserve_unknown")]
    pub open_api_v3_schema: Value,
}

/// Status of an XRD, written by the XRD controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct XrdStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Kubernetes-style status condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Free-form object (used for composed resource bases and environment data).
pub type Object = BTreeMap<String, Value>;
