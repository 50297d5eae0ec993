//! Deleting an XRD: refused while XRs of its kind exist; otherwise its controllers stop, its
//! CRDs are deleted and the finalizer goes.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strata_core::model::CompositeResourceDefinition;
use strata_core::wire;

use super::status::{self, Progress};
use super::{XrdContext, resources};
use crate::error::{Error, Result, is_not_found};
use crate::shared;

/// Deletes the XRD's CRDs once no XR of its kind is left, then lets the XRD go.
pub(super) async fn delete(
    xrd: &CompositeResourceDefinition,
    ctx: &XrdContext,
    api: &Api<CompositeResourceDefinition>,
    what: &str,
) -> Result<Action> {
    if !xrd.finalizers().iter().any(|f| f == wire::FINALIZER_XRD) {
        return Ok(Action::await_change());
    }
    if let Some((composite, claim)) = resources(xrd) {
        let xrs: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), &composite);
        match xrs.list(&ListParams::default().limit(1)).await {
            Ok(list) if !list.items.is_empty() => {
                let message = format!(
                    "cannot delete: {} composite resources still exist; delete them first",
                    composite.kind
                );
                status::write(xrd, ctx, &Progress::Terminating(message)).await?;
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(Error::kube(
                    "listing the composite resources of",
                    what.to_owned(),
                    e,
                ));
            }
        }
        {
            let mut running = ctx.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = running.remove(&xrd.name_any()) {
                ctx.shared.unroute(&r.composite);
            }
        }
        let crds: Api<CustomResourceDefinition> = Api::all(ctx.shared.client.clone());
        let names = std::iter::once(format!("{}.{}", composite.plural, composite.group))
            .chain(claim.map(|c| format!("{}.{}", c.plural, c.group)));
        for crd in names {
            match crds.delete(&crd, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    ctx.shared
                        .warn(
                            &xrd.object_ref(&()),
                            wire::REASON_DELETE_CRD,
                            format!("{crd}: {e}"),
                        )
                        .await;
                    return Err(Error::kube(
                        "deleting",
                        format!("CustomResourceDefinition {crd}"),
                        e,
                    ));
                }
            }
        }
        ctx.shared
            .kinds
            .forget(&composite.api_version, &composite.kind);
    }
    shared::set_finalizer(api, xrd, wire::FINALIZER_XRD, false, what).await?;
    Ok(Action::await_change())
}
