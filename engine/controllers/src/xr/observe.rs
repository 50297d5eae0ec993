//! Reading the composed resources an XR recorded, and their connection Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use strata_core::render::{Observed, ObservedResources};
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::XrContext;
use crate::error::{Error, Result};
use crate::inventory::ResourceRef;

/// Reads every recorded composed resource (and its connection Secret). Returns the observed
/// resources by template name and the recorded references that still exist.
pub(super) async fn observe(
    ctx: &XrContext,
    recorded: &[ResourceRef],
) -> Result<(ObservedResources, Vec<ResourceRef>)> {
    let mut observed = ObservedResources::new();
    let mut present = Vec::new();
    for r in recorded {
        let (api, _) = ctx.shared.kinds.api_for(r).await?;
        let Some(resource) = crate::shared::get_json(&api, &r.name)
            .await
            .map_err(|e| Error::kube("reading", r.display(), e))?
        else {
            continue;
        };
        present.push(r.clone());
        let annotation = |key: &str| {
            resource
                .at("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let template = annotation(wire::ANNOTATION_RESOURCE_NAME)
            .or_else(|| annotation(wire::CROSSPLANE_ANNOTATION_RESOURCE_NAME));
        let connection_details = read_connection_secret(ctx, &resource, r).await?;
        if let Some(t) = template {
            observed.insert(
                t,
                Observed {
                    resource,
                    connection_details,
                },
            );
        }
    }
    Ok((observed, present))
}

/// The data of a composed resource's connection Secret (`spec.writeConnectionSecretToRef`).
pub(super) async fn read_connection_secret(
    ctx: &XrContext,
    resource: &Value,
    r: &ResourceRef,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let Some(name) = resource
        .at("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str)
    else {
        return Ok(BTreeMap::new());
    };
    let Some(ns) = resource
        .at("/spec/writeConnectionSecretToRef/namespace")
        .and_then(Value::as_str)
        .or(r.namespace.as_deref())
    else {
        return Ok(BTreeMap::new());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ns);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| Error::kube("reading the connection Secret of", r.display(), e))?;
    Ok(secret
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}
