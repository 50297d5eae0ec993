//! The XRD controller: for each CompositeResourceDefinition, server-side apply the generated XR
//! CRD (and claim CRD) ([`crds`]), wait until the API serves them, and run one XR controller (and
//! one claim controller) for the kind ([`controllers`]), and (when enabled) the ClusterRoles that
//! aggregate its namespaced kinds into `edit`/`view` ([`crate::roles`]). `Established`/`Offered`
//! report progress on the XRD ([`status`] decides them from a [`status::Progress`]). Deletion is
//! refused while XRs exist; otherwise the controllers stop and the CRDs are deleted
//! ([`deletion`]).

mod controllers;
mod crds;
mod deletion;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strata_core::crd::xrd_to_crds;
use strata_core::model::CompositeResourceDefinition;
use strata_core::wire;

use crate::error::{Error, Result};
use crate::shared::{self, Shared};
use status::Progress;

pub(crate) const CONTROLLER: &str = "xrd";

/// The controllers running for one XRD.
struct Running {
    composite: ApiResource,
    claim: Option<ApiResource>,
    xrd: Arc<RwLock<CompositeResourceDefinition>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The XRD controller's context.
pub(crate) struct XrdContext {
    pub(crate) shared: Arc<Shared>,
    running: Mutex<HashMap<String, Running>>,
}

impl XrdContext {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Stops every XR and claim controller.
    pub(crate) fn stop_all(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            self.shared.unroute(&r.composite);
        }
    }
}

pub(crate) async fn reconcile(
    xrd: Arc<CompositeResourceDefinition>,
    ctx: Arc<XrdContext>,
) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_xrd(&xrd, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

pub(crate) fn error_policy(
    _xrd: Arc<CompositeResourceDefinition>,
    error: &Error,
    ctx: Arc<XrdContext>,
) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

/// The API resource of the XRD's composite kind (its referenceable version) or claim kind.
fn resources(xrd: &CompositeResourceDefinition) -> Option<(ApiResource, Option<ApiResource>)> {
    let spec = &xrd.spec;
    let version = spec
        .versions
        .iter()
        .find(|v| v.referenceable)
        .or_else(|| spec.versions.first())?;
    let ar = |names: &strata_core::model::Names| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&spec.group, &version.name, &names.kind),
            &names.plural,
        )
    };
    Some((ar(&spec.names), spec.claim_names.as_ref().map(ar)))
}

/// How soon a pass whose CRDs are not served yet looks again.
const SERVED_POLL: Duration = Duration::from_secs(1);

/// Observe the XRD, act on the CRDs and controllers, and report the [`Progress`].
async fn reconcile_xrd(xrd: &CompositeResourceDefinition, ctx: &XrdContext) -> Result<Action> {
    let name = xrd.name_any();
    let what = format!("XRD {name}");
    let api: Api<CompositeResourceDefinition> = Api::all(ctx.shared.client.clone());
    let object = xrd.object_ref(&());
    if xrd.metadata.deletion_timestamp.is_some() {
        return deletion::delete(xrd, ctx, &api, &what).await;
    }
    if shared::set_finalizer(&api, xrd, wire::FINALIZER_XRD, true, &what).await? {
        return Ok(Action::await_change());
    }
    let crds = match xrd_to_crds(xrd) {
        Ok(c) => c,
        Err(e) => {
            ctx.shared
                .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
                .await;
            status::write(xrd, ctx, &Progress::Invalid(e.to_string())).await?;
            return Ok(Action::requeue(ctx.shared.settings.resync));
        }
    };
    let Some((composite, claim)) = resources(xrd) else {
        return Err(Error::invalid(
            what,
            "spec.versions: at least one version is required",
        ));
    };
    let crd_api: Api<CustomResourceDefinition> = Api::all(ctx.shared.client.clone());
    for crd in std::iter::once(&crds.composite).chain(crds.claim.as_ref()) {
        if let Err(e) = crds::apply_crd(&crd_api, crd).await {
            ctx.shared
                .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
                .await;
            status::write(xrd, ctx, &Progress::ApplyFailed(e.to_string())).await?;
            return Err(e);
        }
    }
    let settings = &ctx.shared.settings;
    if (settings.aggregate_to_controllers || settings.aggregate_to_user_roles)
        && let Err(e) = crate::roles::apply(
            &ctx.shared.client,
            xrd,
            settings.aggregate_to_controllers,
            settings.aggregate_to_user_roles,
        )
        .await
    {
        ctx.shared
            .warn(&object, wire::REASON_APPLY_CRD, e.to_string())
            .await;
        return Err(e);
    }
    let claim_served = match &claim {
        Some(c) => crds::served(ctx, c).await,
        None => true,
    };
    if !crds::served(ctx, &composite).await || !claim_served {
        status::write(xrd, ctx, &Progress::Pending).await?;
        return Ok(Action::requeue(SERVED_POLL));
    }
    ctx.shared
        .kinds
        .forget(&composite.api_version, &composite.kind);
    let offered = claim.is_some();
    controllers::start(xrd, ctx, composite, claim);
    status::write(xrd, ctx, &Progress::Established { offered }).await?;
    Ok(Action::requeue(ctx.shared.settings.resync))
}
