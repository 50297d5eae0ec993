//! Wire strings shared by every part of Strata: annotations, labels, finalizers, field managers.
//! One place, so a typo cannot split a contract in two. The managed-resource strings (external
//! name, paused, the managed finalizer, the create bookkeeping annotations, the field manager)
//! are defined by the provider contract, which the providers and the managed runtime use without
//! this crate, and re-exported here.

pub use strata_provider::wire::{
    ANNOTATION_EXTERNAL_CREATE_FAILED, ANNOTATION_EXTERNAL_CREATE_PENDING,
    ANNOTATION_EXTERNAL_CREATE_SUCCEEDED, ANNOTATION_EXTERNAL_NAME, ANNOTATION_PAUSED,
    FIELD_MANAGER, FINALIZER_MANAGED, REASON_EXTERNAL_CREATE_PENDING,
};

/// Names the Composition template a composed resource was rendered from.
pub const ANNOTATION_RESOURCE_NAME: &str = "strata.dev/composition-resource-name";
/// Crossplane's equivalent of [`ANNOTATION_RESOURCE_NAME`], accepted on observed resources.
pub const CROSSPLANE_ANNOTATION_RESOURCE_NAME: &str = "crossplane.io/composition-resource-name";
/// On a composed resource a function produced: the composition resource names (comma
/// separated) that must exist and be Ready before it is created; they are deleted after it.
pub const ANNOTATION_DEPENDS_ON: &str = "strata.dev/depends-on";
/// Label naming the composite resource that owns a composed resource.
pub const LABEL_COMPOSITE: &str = "strata.dev/composite";
/// Label naming the claim bound to a composite resource.
pub const LABEL_CLAIM_NAME: &str = "strata.dev/claim-name";
/// Label naming the namespace of the claim bound to a composite resource.
pub const LABEL_CLAIM_NAMESPACE: &str = "strata.dev/claim-namespace";
/// Crossplane's label naming the claim bound to a composite resource, set next to Strata's so
/// that Crossplane Compositions patching from it work unchanged.
pub const CROSSPLANE_LABEL_CLAIM_NAME: &str = "crossplane.io/claim-name";
/// Crossplane's label naming the namespace of the claim bound to a composite resource.
pub const CROSSPLANE_LABEL_CLAIM_NAMESPACE: &str = "crossplane.io/claim-namespace";
/// API group of the composition machinery.
pub const GROUP_APIEXTENSIONS: &str = "apiextensions.strata.dev";
/// Crossplane's composition API group.
pub const CROSSPLANE_GROUP_APIEXTENSIONS: &str = "apiextensions.crossplane.io";
/// Crossplane's package group (`Function`).
pub const CROSSPLANE_GROUP_PKG: &str = "pkg.crossplane.io";
/// The input kind of Crossplane's patch-and-transform function.
pub const CROSSPLANE_PT_INPUT_API_VERSION: &str = "pt.fn.crossplane.io/v1beta1";

// --- Controllers: finalizers, labels, annotations and event reasons. ---

/// Finalizer the XRD controller holds until the XRD's CRDs are deleted.
pub const FINALIZER_XRD: &str = "strata.dev/xrd";
/// Finalizer the XR controller holds until every composed resource is deleted, wave by wave.
pub const FINALIZER_COMPOSITE: &str = "strata.dev/composite";
/// Finalizer the claim controller holds until the claim's composite resource is deleted.
pub const FINALIZER_CLAIM: &str = "strata.dev/claim";
/// Label naming the Composition a CompositionRevision snapshots.
pub const LABEL_COMPOSITION_NAME: &str = "strata.dev/composition-name";
/// Label on a native object converted from one of Crossplane's (`apiextensions.crossplane.io`);
/// its value is that API group.
pub const LABEL_ORIGIN: &str = "strata.dev/origin";
/// The field manager that applies native objects converted from Crossplane's.
pub const FIELD_MANAGER_CROSSPLANE: &str = "strata-crossplane";
/// Label carrying the content hash of a CompositionRevision.
pub const LABEL_COMPOSITION_HASH: &str = "strata.dev/composition-hash";
/// Hash of the desired state last applied to a composed resource or connection Secret; a pass
/// whose desired state hashes the same and is still present skips the write.
pub const ANNOTATION_APPLIED_HASH: &str = "strata.dev/applied-hash";
// Event reasons: each names the step of a reconcile that failed, on the Warning event the
// controller records against the object it reconciles.

/// No Composition (or revision) could be selected for an XR.
pub const REASON_SELECT_COMPOSITION: &str = "SelectComposition";
/// The XR's Composition does not compile.
pub const REASON_COMPILE_COMPOSITION: &str = "CompileComposition";
/// The XR's render (or function pipeline) failed.
pub const REASON_RENDER: &str = "RenderComposition";
/// A composed resource could not be applied.
pub const REASON_APPLY_RESOURCE: &str = "ApplyComposedResource";
/// The XR's composed resources could not be read.
pub const REASON_OBSERVE_RESOURCE: &str = "ObserveComposedResource";
/// A composed resource the XR no longer wants could not be deleted.
pub const REASON_PRUNE_RESOURCE: &str = "PruneComposedResource";
/// A composed resource of a deleted XR could not be deleted.
pub const REASON_DELETE_RESOURCE: &str = "DeleteComposedResource";
/// The XR's connection Secret could not be written.
pub const REASON_CONNECTION_SECRET: &str = "PublishConnectionSecret";
/// The XR's environment could not be assembled.
pub const REASON_ENVIRONMENT: &str = "SelectEnvironment";
/// An XRD's CRDs could not be generated or applied.
pub const REASON_APPLY_CRD: &str = "ApplyCustomResourceDefinition";
/// A deleted XRD's CRDs could not be deleted.
pub const REASON_DELETE_CRD: &str = "DeleteCustomResourceDefinition";
/// A claim could not be bound to its XR.
pub const REASON_BIND_COMPOSITE: &str = "BindCompositeResource";
/// A Composition's revision could not be created.
pub const REASON_CREATE_REVISION: &str = "CreateCompositionRevision";
/// One of Crossplane's objects could not be converted to Strata's.
pub const REASON_CONVERT_CROSSPLANE: &str = "ConvertCrossplaneObject";
/// A function's Warning result, as Crossplane reports function results.
pub const REASON_FUNCTION_RESULT: &str = "ComposeResources";
/// A composed resource is withheld because a `Required` patch's source is missing (a Warning
/// event on the XR and its claim).
pub const REASON_REQUIRED_SOURCE_MISSING: &str = "RequiredSourceMissing";
