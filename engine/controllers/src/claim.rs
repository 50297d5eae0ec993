//! The claim controller, one per claim kind, over `DynamicObject`.
//!
//! A claim creates and binds one cluster-scoped XR (`generateName` from the claim name, the claim
//! labels, `spec.claimRef`), keeps the XR's spec in line with the claim's, copies the XR's status
//! back, and copies the XR's connection Secret into the claim's namespace. Deleting the claim
//! deletes the XR (`compositeDeletePolicy`: `Background` lets go at once, `Foreground` waits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strata_core::wire;

use crate::binding::{self, ClaimIdentity};
use crate::conditions;
use crate::error::{Error, Result, is_not_found};
use crate::shared::{self, Shared};

pub const CONTROLLER: &str = "claim";

/// Everything one claim kind's controller needs.
pub struct ClaimContext {
    pub shared: Arc<Shared>,
    pub claim: ApiResource,
    pub composite: ApiResource,
}

pub async fn reconcile(claim: Arc<DynamicObject>, ctx: Arc<ClaimContext>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_claim(&claim, &ctx).await;
    ctx.shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    if let Err(e) = &result {
        ctx.shared
            .warn(
                &claim.object_ref(&ctx.claim),
                wire::REASON_BIND_COMPOSITE,
                e.to_string(),
            )
            .await;
    }
    result
}

pub fn error_policy(_claim: Arc<DynamicObject>, error: &Error, ctx: Arc<ClaimContext>) -> Action {
    Action::requeue(error.retry_after(ctx.shared.settings.resync))
}

async fn reconcile_claim(claim: &DynamicObject, ctx: &ClaimContext) -> Result<Action> {
    let value = serde_json::to_value(claim).map_err(|source| Error::Serialize {
        object: claim.name_any(),
        source,
    })?;
    let Some(id) = ClaimIdentity::of(&value) else {
        return Err(Error::invalid(
            claim.name_any(),
            "a claim needs apiVersion, kind, name and namespace",
        ));
    };
    let what = format!("{} {}/{}", id.kind, id.namespace, id.name);
    if claim
        .annotations()
        .get(wire::ANNOTATION_PAUSED)
        .is_some_and(|v| v == "true")
    {
        return Ok(Action::await_change());
    }
    let claims: Api<DynamicObject> =
        Api::namespaced_with(ctx.shared.client.clone(), &id.namespace, &ctx.claim);
    let composites: Api<DynamicObject> = Api::all_with(ctx.shared.client.clone(), &ctx.composite);
    let bound = value
        .pointer("/spec/resourceRef/name")
        .and_then(Value::as_str)
        .map(str::to_owned);

    if claim.metadata.deletion_timestamp.is_some() {
        if !claim
            .finalizers()
            .iter()
            .any(|f| f == wire::FINALIZER_CLAIM)
        {
            return Ok(Action::await_change());
        }
        let foreground = value
            .pointer("/spec/compositeDeletePolicy")
            .and_then(Value::as_str)
            == Some("Foreground");
        if let Some(xr) = bound_composite(&composites, bound.as_deref(), &id, &what).await? {
            if xr.metadata.deletion_timestamp.is_none() {
                // Always a background delete: the XR's own finalizer deletes its composed
                // resources in reverse waves, which a foreground cascade would bypass.
                // `Foreground` means the claim waits below until the XR is gone.
                match composites
                    .delete(&xr.name_any(), &DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(Error::kube(
                            "deleting",
                            format!("the composite of {what}"),
                            e,
                        ));
                    }
                }
            }
            if foreground {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
        shared::set_finalizer(&claims, claim, wire::FINALIZER_CLAIM, false, &what).await?;
        return Ok(Action::await_change());
    }

    if shared::set_finalizer(&claims, claim, wire::FINALIZER_CLAIM, true, &what).await? {
        return Ok(Action::await_change());
    }

    // Find or create the bound XR. Without a recorded reference, an XR already labelled for this
    // claim is adopted: the reference write may not have reached this pass's copy of the claim.
    let existing = bound_composite(&composites, bound.as_deref(), &id, &what).await?;
    let xr = match existing {
        Some(xr) => xr,
        None => {
            let mut new = binding::new_composite(
                &value,
                &id,
                &ctx.composite.api_version,
                &ctx.composite.kind,
            );
            if let (Some(name), Some(meta)) = (
                &bound,
                new.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                // The recorded XR vanished: recreate it under the same name, keeping the binding stable.
                meta.remove("generateName");
                meta.insert("name".into(), Value::String(name.clone()));
            }
            let new: DynamicObject =
                serde_json::from_value(new).map_err(|source| Error::Serialize {
                    object: what.clone(),
                    source,
                })?;
            let created = composites
                .create(&PostParams::default(), &new)
                .await
                .map_err(|e| Error::kube("creating the composite of", what.clone(), e))?;
            ctx.shared
                .normal(
                    &claim.object_ref(&ctx.claim),
                    wire::REASON_BIND_COMPOSITE,
                    format!("created {} {}", ctx.composite.kind, created.name_any()),
                )
                .await;
            created
        }
    };
    let xr_value = serde_json::to_value(&xr).map_err(|source| Error::Serialize {
        object: xr.name_any(),
        source,
    })?;
    if !binding::bound_to(&xr_value, &id) {
        return Err(Error::invalid(
            what,
            format!(
                "{} {} is bound to another claim",
                ctx.composite.kind,
                xr.name_any()
            ),
        ));
    }
    if bound.as_deref() != Some(xr.name_any().as_str()) {
        let r = json!({"spec": {"resourceRef": {"apiVersion": ctx.composite.api_version, "kind": ctx.composite.kind, "name": xr.name_any()}}});
        claims
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&r))
            .await
            .map_err(|e| Error::kube("recording the composite on", what.clone(), e))?;
    }

    // Claim spec → XR spec, only when something differs.
    let from_claim = Value::Object(binding::composite_spec_from_claim(&value));
    if conditions::differs(xr_value.get("spec"), &from_claim) {
        composites
            .patch(
                &xr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": from_claim})),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    "propagating the claim's spec to",
                    format!("{} {}", ctx.composite.kind, xr.name_any()),
                    e,
                )
            })?;
    }

    // XR status → claim status.
    let status = binding::claim_status_from_composite(&xr_value);
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let version = claim.metadata.resource_version.clone().unwrap_or_default();
    if conditions::differs(value.get("status"), &status)
        && !ctx
            .shared
            .written
            .already_written("claim-status", &uid, &version, &status)
    {
        claims
            .patch_status(
                &id.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(|e| Error::kube("writing the status of", what.clone(), e))?;
        ctx.shared
            .written
            .remember("claim-status", &uid, &version, &status);
    }

    // XR connection Secret → claim namespace.
    let wants_secret = value
        .pointer("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str);
    if let Some(target) = wants_secret
        && !copy_connection_secret(claim, &xr_value, &id, target, ctx).await?
    {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    Ok(Action::requeue(ctx.shared.settings.resync))
}

/// Copies the XR's connection Secret into the claim's namespace. `false` while the XR has not
/// published one yet.
async fn copy_connection_secret(
    claim: &DynamicObject,
    xr: &Value,
    id: &ClaimIdentity,
    target: &str,
    ctx: &ClaimContext,
) -> Result<bool> {
    let s = |p: &str| xr.pointer(p).and_then(Value::as_str);
    let source = match (
        s("/spec/writeConnectionSecretToRef/name"),
        s("/spec/writeConnectionSecretToRef/namespace"),
    ) {
        (Some(n), Some(ns)) => Some((ns.to_owned(), n.to_owned())),
        _ => {
            // The Composition's writeConnectionSecretsToNamespace names the Secret by the XR's UID.
            let revision = s("/spec/compositionRevisionRef/name");
            let ns = revision.and_then(|r| {
                ctx.shared
                    .revisions
                    .state()
                    .into_iter()
                    .find(|x| x.name_any() == r)
                    .and_then(|x| {
                        x.spec
                            .composition
                            .write_connection_secrets_to_namespace
                            .clone()
                    })
            });
            match (ns, s("/metadata/uid")) {
                (Some(ns), Some(uid)) => Some((ns, uid.to_owned())),
                _ => None,
            }
        }
    };
    let Some((ns, name)) = source else {
        return Ok(false);
    };
    let from: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &ns);
    let Some(secret) = from
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", format!("connection Secret {ns}/{name}"), e))?
    else {
        return Ok(false);
    };
    let mut owner = json!({
        "apiVersion": ctx.claim.api_version, "kind": ctx.claim.kind, "name": id.name,
        "controller": true, "blockOwnerDeletion": true,
    });
    if let (Some(uid), Some(o)) = (claim.uid(), owner.as_object_mut()) {
        o.insert("uid".into(), Value::String(uid));
    }
    let desired = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": target, "namespace": id.namespace, "ownerReferences": [owner]},
        "type": "connection.strata.dev/v1alpha1",
        "data": serde_json::to_value(secret.data.unwrap_or_default())
            .map_err(|source| Error::Serialize { object: format!("Secret {ns}/{name}"), source })?,
    });
    let to: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &id.namespace);
    let what = format!("connection Secret {}/{target}", id.namespace);
    let observed = to
        .get_opt(target)
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
    if !current {
        to.patch(
            target,
            &PatchParams::apply(wire::FIELD_MANAGER).force(),
            &Patch::Apply(&stamped),
        )
        .await
        .map_err(|e| Error::kube("applying", what, e))?;
    }
    Ok(true)
}

/// The XR bound to the claim: the recorded `spec.resourceRef`, or else an XR labelled for the
/// claim whose `spec.claimRef` names it (the reference write may not have reached this pass's
/// copy of the claim, and a second XR must never be created).
async fn bound_composite(
    composites: &Api<DynamicObject>,
    recorded: Option<&str>,
    id: &ClaimIdentity,
    what: &str,
) -> Result<Option<DynamicObject>> {
    let found = match recorded {
        Some(name) => composites
            .get_opt(name)
            .await
            .map_err(|e| Error::kube("reading", format!("the composite of {what}"), e))?,
        None => {
            let selector = format!(
                "{}={},{}={}",
                wire::LABEL_CLAIM_NAME,
                id.name,
                wire::LABEL_CLAIM_NAMESPACE,
                id.namespace
            );
            composites
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| Error::kube("listing", format!("the composites of {what}"), e))?
                .items
                .into_iter()
                .next()
        }
    };
    Ok(found.filter(|x| serde_json::to_value(x).is_ok_and(|v| binding::bound_to(&v, id))))
}
