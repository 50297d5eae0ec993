//! The XR's own connection Secret (Crossplane v1 shape): where it goes, and publishing the
//! render's connection details there when they changed.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use strata_core::render::RenderOutput;
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::XrContext;
use crate::error::{Error, Result};
use crate::shared;

/// Where the XR's connection Secret goes: `spec.writeConnectionSecretToRef`, or the
/// Composition's `writeConnectionSecretsToNamespace` with the XR's UID as the name.
fn connection_secret_target(
    xr: &DynamicObject,
    value: &Value,
    namespace: Option<&str>,
) -> Option<(String, String)> {
    let name = value
        .at("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str);
    let ns = value
        .at("/spec/writeConnectionSecretToRef/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| xr.namespace());
    match (name, ns) {
        (Some(n), Some(ns)) => Some((ns, n.to_owned())),
        _ => {
            let ns = namespace?.to_owned();
            Some((ns, xr.uid()?))
        }
    }
}

pub(super) async fn publish(
    xr: &DynamicObject,
    value: &Value,
    namespace: Option<&str>,
    ctx: &XrContext,
    output: &RenderOutput,
) -> Result<()> {
    let Some((ns, name)) = connection_secret_target(xr, value, namespace) else {
        return Ok(());
    };
    let data: BTreeMap<String, ByteString> = output
        .connection_details
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
        .collect();
    let mut owner = json!({
        "apiVersion": ctx.resource.api_version, "kind": ctx.resource.kind, "name": xr.name_any(),
        "controller": true, "blockOwnerDeletion": true,
    });
    if let (Some(uid), Some(o)) = (xr.uid(), owner.as_object_mut()) {
        o.insert("uid".into(), Value::String(uid));
    }
    let desired = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner]},
        "type": "connection.strata.dev/v1alpha1",
        "data": serde_json::to_value(&data).map_err(|source| Error::Serialize { object: format!("Secret {ns}/{name}"), source })?,
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &ns);
    let what = format!("connection Secret {ns}/{name}");
    let observed = secrets
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", what.clone(), e))?;
    let observed = observed
        .map(|s| serde_json::to_value(&s))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: what.clone(),
            source,
        })?;
    let (stamped, current) = shared::plan_apply(&desired, observed.as_ref());
    if current {
        return Ok(());
    }
    secrets
        .patch(
            &name,
            &PatchParams::apply(wire::FIELD_MANAGER).force(),
            &Patch::Apply(&stamped),
        )
        .await
        .map_err(|e| Error::kube("applying", what, e))?;
    Ok(())
}
