//! The mirror controllers: one per Crossplane kind (`apiextensions.crossplane.io` XRD,
//! Composition, CompositionRevision, EnvironmentConfig), each keeping the native object of the
//! same name equal to the Crossplane object's conversion and the Crossplane object's status
//! equal to the native one's. The decisions are [`crate::crossplane`]'s; this module observes,
//! calls them and acts. Watching the native objects they own brings their status changes in.
//!
//! At start, [`prepare`] decides whether Crossplane's group is served at all: not when its
//! CRDs exist and are not Strata's (Crossplane runs on this cluster).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use strata_core::wire;

use crate::conditions;
use crate::crossplane::{self, Coexistence, CrossplaneKind, MirrorStep};
use crate::error::{Error, Result};
use crate::shared::{self, Shared};

/// The metrics name of these controllers.
pub(crate) const CONTROLLER: &str = "crossplane";

/// What one mirror controller needs.
pub(crate) struct MirrorContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) kind: CrossplaneKind,
}

/// Decides whether to serve Crossplane's kinds, installing their CRDs when `install` is set.
/// Returns `false` (after one clear error log) when another owner's CRDs are in the way, or
/// when the CRDs are absent and not to be installed.
pub(crate) async fn prepare(client: &kube::Client, install: bool) -> Result<bool> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut observed = Vec::new();
    for kind in CrossplaneKind::ALL {
        let name = kind.crd_name();
        let crd = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("reading", format!("CustomResourceDefinition {name}"), e))?;
        observed.push((name, crd.map(|c| c.labels().clone())));
    }
    match crossplane::coexistence(&observed) {
        Coexistence::Skip { foreign } => {
            tracing::error!(
                crds = %foreign.join(", "),
                "Crossplane's CRDs exist on this cluster and are not Strata's (is Crossplane running?): \
                 Strata does not serve apiextensions.crossplane.io here and leaves those objects to \
                 their owner; the native apiextensions.strata.dev kinds are served"
            );
            Ok(false)
        }
        Coexistence::Serve if install => {
            crate::install_crds(client, strata_core::crd::crossplane_crds()).await?;
            Ok(true)
        }
        Coexistence::Serve => Ok(observed.iter().all(|(_, labels)| labels.is_some())),
    }
}

/// Runs one mirror controller per Crossplane kind until `stopped` resolves.
pub(crate) async fn run<F, S>(shared: Arc<Shared>, stopped: S)
where
    S: Fn() -> F,
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let controllers = CrossplaneKind::ALL.map(|kind| {
        let crossplane_ar = kind.crossplane();
        let native_ar = kind.native();
        let objects: Api<DynamicObject> = Api::all_with(shared.client.clone(), &crossplane_ar);
        let natives: Api<DynamicObject> = Api::all_with(shared.client.clone(), &native_ar);
        let ctx = Arc::new(MirrorContext {
            shared: shared.clone(),
            kind,
        });
        crate::relist::controller(objects, watcher::Config::default(), crossplane_ar)
            .owns_with(natives, native_ar, watcher::Config::default())
            .graceful_shutdown_on(stopped())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {})
    });
    futures_util::future::join_all(controllers).await;
}

pub(crate) fn error_policy(
    _obj: Arc<DynamicObject>,
    error: &Error,
    ctx: Arc<MirrorContext>,
) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

pub(crate) async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<MirrorContext>) -> Result<Action> {
    let start = Instant::now();
    let result = mirror(&obj, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

async fn mirror(obj: &DynamicObject, ctx: &MirrorContext) -> Result<Action> {
    let kind = ctx.kind;
    let name = obj.name_any();
    let id = format!("{} {} {name}", kind.crossplane().api_version, kind.kind());
    if obj.metadata.deletion_timestamp.is_some() {
        // The native object is owned by this one: the garbage collector deletes it.
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(obj).map_err(|source| Error::Serialize {
        object: id.clone(),
        source,
    })?;
    let natives: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), &kind.native());
    let native_id = format!("{} {name}", kind.native().kind);
    let native = natives
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", native_id.clone(), e))?
        .map(|n| serde_json::to_value(&n))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: native_id.clone(),
            source,
        })?;
    let step = crossplane::plan(kind, &value, native.as_ref());
    let native = match &step {
        MirrorStep::Apply(desired) => {
            let live = natives
                .patch(
                    &name,
                    &PatchParams::apply(wire::FIELD_MANAGER_CROSSPLANE).force(),
                    &Patch::Apply(desired),
                )
                .await
                .map_err(|e| Error::kube("applying", native_id.clone(), e))?;
            Some(
                serde_json::to_value(&live).map_err(|source| Error::Serialize {
                    object: native_id.clone(),
                    source,
                })?,
            )
        }
        MirrorStep::Current | MirrorStep::Clash(_) | MirrorStep::Invalid(_) => native,
    };
    let observed_status = value.get("status");
    let desired = crossplane::status(&step, observed_status, native.as_ref(), &shared::now());
    if conditions::differs(observed_status, &desired) {
        let objects: Api<DynamicObject> =
            Api::all_with(ctx.shared.client.clone(), &kind.crossplane());
        objects
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": desired})),
            )
            .await
            .map_err(|e| Error::kube("writing the status of", id.clone(), e))?;
        // An event only when the outcome changed, never once per pass.
        if let MirrorStep::Clash(m) | MirrorStep::Invalid(m) = &step {
            ctx.shared
                .warn(
                    &obj.object_ref(&kind.crossplane()),
                    wire::REASON_CONVERT_CROSSPLANE,
                    m.clone(),
                )
                .await;
        }
    }
    Ok(match step {
        // A clash resolves when the other object goes, which no watch of ours reports.
        MirrorStep::Clash(_) => Action::requeue(Duration::from_secs(10)),
        _ => Action::requeue(ctx.shared.settings.resync),
    })
}
