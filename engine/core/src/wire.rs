//! Wire strings shared by every part of Strata: annotations, labels, finalizers, field managers.
//! One place, so a typo cannot split a contract in two.

/// Names the Composition template a composed resource was rendered from.
pub const ANNOTATION_RESOURCE_NAME: &str = "strata.dev/composition-resource-name";
/// Crossplane's equivalent of [`ANNOTATION_RESOURCE_NAME`], accepted on observed resources.
pub const CROSSPLANE_ANNOTATION_RESOURCE_NAME: &str = "crossplane.io/composition-resource-name";
/// The external (cloud) name of a managed resource.
pub const ANNOTATION_EXTERNAL_NAME: &str = "strata.dev/external-name";
/// Stops reconciliation of the annotated object.
pub const ANNOTATION_PAUSED: &str = "strata.dev/paused";
/// Set before a cloud create is attempted.
pub const ANNOTATION_EXTERNAL_CREATE_PENDING: &str = "strata.dev/external-create-pending";
/// Set after a cloud create succeeded.
pub const ANNOTATION_EXTERNAL_CREATE_SUCCEEDED: &str = "strata.dev/external-create-succeeded";
/// Set after a cloud create failed.
pub const ANNOTATION_EXTERNAL_CREATE_FAILED: &str = "strata.dev/external-create-failed";
/// Label naming the composite resource that owns a composed resource.
pub const LABEL_COMPOSITE: &str = "strata.dev/composite";
/// Label naming the claim bound to a composite resource.
pub const LABEL_CLAIM_NAME: &str = "strata.dev/claim-name";
/// Label naming the namespace of the claim bound to a composite resource.
pub const LABEL_CLAIM_NAMESPACE: &str = "strata.dev/claim-namespace";
/// The field manager of every server-side apply Strata performs.
pub const FIELD_MANAGER: &str = "strata";
/// API group of the composition machinery.
pub const GROUP_APIEXTENSIONS: &str = "apiextensions.strata.dev";
/// Crossplane's composition API group.
pub const CROSSPLANE_GROUP_APIEXTENSIONS: &str = "apiextensions.crossplane.io";
/// The input kind of Crossplane's patch-and-transform function.
pub const CROSSPLANE_PT_INPUT_API_VERSION: &str = "pt.fn.crossplane.io/v1beta1";
