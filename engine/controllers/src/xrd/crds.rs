//! The XRD's generated CRDs: applied when they differ from what the API server has, and
//! whether the API server serves their kinds yet.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use strata_core::wire;

use super::XrdContext;
use crate::conditions;
use crate::error::{Error, Result};

/// Applies a CRD when it differs from what the API server has.
pub(super) async fn apply_crd(
    api: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
) -> Result<()> {
    let name = crd.name_any();
    let what = format!("CustomResourceDefinition {name}");
    let mut desired = serde_json::to_value(crd).map_err(|source| Error::Serialize {
        object: what.clone(),
        source,
    })?;
    if let Some(o) = desired.as_object_mut() {
        o.insert("apiVersion".into(), json!("apiextensions.k8s.io/v1"));
        o.insert("kind".into(), json!("CustomResourceDefinition"));
        o.remove("status");
    }
    let observed = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", what.clone(), e))?;
    let observed = observed
        .map(|c| serde_json::to_value(&c))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: what.clone(),
            source,
        })?;
    if let Some(o) = &observed
        && conditions::contains(o, &json!({"spec": desired.get("spec")}))
    {
        return Ok(());
    }
    api.patch(
        &name,
        &PatchParams::apply(wire::FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|e| Error::kube("applying", what, e))?;
    Ok(())
}

/// True once the API server lists the kind.
pub(super) async fn served(ctx: &XrdContext, resource: &ApiResource) -> bool {
    let api: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), resource);
    api.list(&ListParams::default().limit(1)).await.is_ok()
}
