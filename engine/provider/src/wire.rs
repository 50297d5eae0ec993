//! The managed-resource wire strings: the annotations, finalizer, field manager and condition
//! reason the managed-resource runtime writes and the controllers read. Defined once here;
//! `strata_core::wire` re-exports them next to the rest of Strata's wire strings.

/// The external (cloud) name of a managed resource.
pub const ANNOTATION_EXTERNAL_NAME: &str = "strata.dev/external-name";
/// Stops reconciliation of the annotated object.
pub const ANNOTATION_PAUSED: &str = "strata.dev/paused";
/// The finalizer the managed-resource runtime keeps on a managed resource until its external
/// resource is deleted (or orphaned).
pub const FINALIZER_MANAGED: &str = "strata.dev/managed-resource";
/// Set before a cloud create is attempted.
pub const ANNOTATION_EXTERNAL_CREATE_PENDING: &str = "strata.dev/external-create-pending";
/// Set after a cloud create succeeded.
pub const ANNOTATION_EXTERNAL_CREATE_SUCCEEDED: &str = "strata.dev/external-create-succeeded";
/// Set after a cloud create failed.
pub const ANNOTATION_EXTERNAL_CREATE_FAILED: &str = "strata.dev/external-create-failed";
/// The field manager of every server-side apply Strata performs: the managed-resource runtime's
/// and the controllers'.
pub const FIELD_MANAGER: &str = "strata";
/// The create-pending guard stopped a managed resource: its `Synced=False` reason, and the
/// reason of the Warning event on the XR and claim that compose it.
pub const REASON_EXTERNAL_CREATE_PENDING: &str = "ExternalCreatePending";
