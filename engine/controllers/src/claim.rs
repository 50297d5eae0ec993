//! The claim controller, one per claim kind, over `DynamicObject`.
//!
//! A claim creates and binds one cluster-scoped XR (`generateName` from the claim name, the claim
//! labels, `spec.claimRef`), keeps the XR's spec in line with the claim's, copies the XR's status
//! back, and copies the XR's connection Secret into the claim's namespace. Deleting the claim
//! deletes the XR (`compositeDeletePolicy`: `Background` lets go at once, `Foreground` waits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strata_core::wire;

use crate::binding::{self, ClaimIdentity};
use crate::conditions;
use crate::error::{Error, Result, is_not_found};
use crate::shared::{self, Shared};

pub const CONTROLLER: &str = "claim";

/// The field manager under which claims apply their spec to their XR.
pub const CLAIM_FIELD_MANAGER: &str = "strata-claim";

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
    if let Err(e) = &result
        && !e.is_conflict()
    {
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

async fn reconcile_claim(cached: &DynamicObject, ctx: &ClaimContext) -> Result<Action> {
    // Our own last write, when the cache has not caught up with it yet.
    let newest = ctx.shared.newest.of(cached);
    let claim = &newest;
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

    // The finalizer and the XR's name go on the claim in one write, before the XR exists: a
    // deleted claim then always finds (and deletes) its XR, and the name is derived from the
    // claim's uid, so a repeated pass never creates a second XR.
    let name = match &bound {
        Some(n) => n.clone(),
        None => binding::composite_name(&id.name, &claim.uid().unwrap_or_default()),
    };
    let finalizers = shared::finalizers_with(claim.finalizers(), wire::FINALIZER_CLAIM, true);
    let mut claim_now = claim.clone();
    if finalizers.is_some() || bound.is_none() {
        let mut meta = serde_json::Map::new();
        meta.insert("resourceVersion".into(), json!(claim.resource_version()));
        if let Some(f) = finalizers {
            meta.insert("finalizers".into(), json!(f));
        }
        let mut patch = json!({"metadata": meta});
        if bound.is_none() {
            patch["spec"] = json!({"resourceRef": {"apiVersion": ctx.composite.api_version, "kind": ctx.composite.kind, "name": name}});
        }
        let written = claims
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                Error::kube("recording the finalizer and composite on", what.clone(), e)
            })?;
        ctx.shared.newest.wrote(claim, &written);
        claim_now = written;
    }
    let claim = &claim_now;

    // Claim → XR with server-side apply under the claim's own field manager: a field removed
    // from the claim's spec leaves the applied set, and the API server removes it from the XR.
    // The applied hash makes a converged XR cost no write.
    let existing = composites
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube("reading", format!("the composite of {what}"), e))?;
    let existing = existing
        .map(|x| serde_json::to_value(&x))
        .transpose()
        .map_err(|source| Error::Serialize {
            object: name.clone(),
            source,
        })?;
    if let Some(x) = &existing
        && !binding::bound_to(x, &id)
    {
        return Err(Error::invalid(
            what,
            format!("{} {name} is bound to another claim", ctx.composite.kind),
        ));
    }
    let mut desired =
        binding::new_composite(&value, &id, &ctx.composite.api_version, &ctx.composite.kind);
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("generateName");
        meta.insert("name".into(), Value::String(name.clone()));
    }
    let (stamped, current) = shared::plan_apply(&desired, existing.as_ref());
    let xr_value = match existing {
        Some(x) if current => x,
        _ => {
            let written = composites
                .patch(
                    &name,
                    &PatchParams::apply(CLAIM_FIELD_MANAGER).force(),
                    &Patch::Apply(&stamped),
                )
                .await
                .map_err(|e| {
                    Error::kube(
                        "applying the claim's spec to",
                        format!("{} {name}", ctx.composite.kind),
                        e,
                    )
                })?;
            if existing.is_none() {
                ctx.shared
                    .normal(
                        &claim.object_ref(&ctx.claim),
                        wire::REASON_BIND_COMPOSITE,
                        format!("created {} {name}", ctx.composite.kind),
                    )
                    .await;
            }
            serde_json::to_value(&written).map_err(|source| Error::Serialize {
                object: name.clone(),
                source,
            })?
        }
    };

    // XR status → claim status.
    let status = binding::claim_status_from_composite(&xr_value);
    let claim_status = claim.data.get("status");
    if conditions::differs(claim_status, &status) {
        let patch =
            json!({"metadata": {"resourceVersion": claim.resource_version()}, "status": status});
        let written = claims
            .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube("writing the status of", what.clone(), e))?;
        ctx.shared.newest.wrote(claim, &written);
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
