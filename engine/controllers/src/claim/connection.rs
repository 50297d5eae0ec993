//! XR connection Secret → the claim's namespace. [`source`] decides where the XR's Secret is,
//! [`desired_secret`] what the claim's copy holds, and [`requeue`] when to look again.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use strata_core::wire;
use strata_schema::pointer::Pointer;

use super::Pass;
use crate::error::{Error, Result};
use crate::shared;

/// How often a claim looks again for a connection Secret its XR has not published yet.
const SECRET_POLL: Duration = Duration::from_secs(5);

/// Where the XR's connection Secret is (namespace, name): its `spec.writeConnectionSecretToRef`,
/// or else the Composition's `writeConnectionSecretsToNamespace` (`composition_namespace`, of
/// the XR's revision) with the XR's UID as the name. `None` when neither says.
fn source(xr: &Value, composition_namespace: Option<String>) -> Option<(String, String)> {
    let s = |p: &str| xr.at(p).and_then(Value::as_str);
    match (
        s("/spec/writeConnectionSecretToRef/name"),
        s("/spec/writeConnectionSecretToRef/namespace"),
    ) {
        (Some(n), Some(ns)) => Some((ns.to_owned(), n.to_owned())),
        _ => match (composition_namespace, s("/metadata/uid")) {
            (Some(ns), Some(uid)) => Some((ns, uid.to_owned())),
            _ => None,
        },
    }
}

/// The claim's copy of the XR's connection Secret: `target` in the claim's namespace, owned by
/// the claim (`owner`: its apiVersion, kind, name and uid), holding `data`.
fn desired_secret(
    (api_version, kind, name, uid): (&str, &str, &str, Option<String>),
    namespace: &str,
    target: &str,
    data: Value,
) -> Value {
    let mut owner = json!({
        "apiVersion": api_version, "kind": kind, "name": name,
        "controller": true, "blockOwnerDeletion": true,
    });
    if let (Some(uid), Some(o)) = (uid, owner.as_object_mut()) {
        o.insert("uid".into(), Value::String(uid));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": target, "namespace": namespace, "ownerReferences": [owner]},
        "type": "connection.strata.dev/v1alpha1",
        "data": data,
    })
}

/// When to look again: soon while a wanted Secret (`wanted`) was not copied yet (`copied`),
/// else at the resync interval.
fn requeue(wanted: bool, copied: bool, resync: Duration) -> Duration {
    if wanted && !copied {
        SECRET_POLL
    } else {
        resync
    }
}

impl Pass<'_> {
    /// Copies the XR's connection Secret when the claim asks for one
    /// (`spec.writeConnectionSecretToRef`); returns when to look again.
    pub(super) async fn copy_connection_secret(
        &self,
        claim: &DynamicObject,
        value: &Value,
        xr: &Value,
    ) -> Result<Action> {
        let target = value
            .at("/spec/writeConnectionSecretToRef/name")
            .and_then(Value::as_str);
        let copied = match target {
            Some(target) => self.copy_secret(claim, xr, target).await?,
            None => false,
        };
        let resync = self.ctx.shared.settings.resync;
        Ok(Action::requeue(requeue(target.is_some(), copied, resync)))
    }

    /// The namespace the Composition of the XR's revision writes connection Secrets to.
    fn composition_namespace(&self, xr: &Value) -> Option<String> {
        let revision = xr
            .at("/spec/compositionRevisionRef/name")
            .and_then(Value::as_str)?;
        self.ctx
            .shared
            .revisions
            .state()
            .into_iter()
            .find(|x| x.name_any() == revision)
            .and_then(|x| {
                x.spec
                    .composition
                    .write_connection_secrets_to_namespace
                    .clone()
            })
    }

    /// Copies the XR's connection Secret into the claim's namespace as `target`. `false` while
    /// the XR has not published one yet.
    async fn copy_secret(&self, claim: &DynamicObject, xr: &Value, target: &str) -> Result<bool> {
        let has_ref = xr.at("/spec/writeConnectionSecretToRef/name").is_some()
            && xr
                .at("/spec/writeConnectionSecretToRef/namespace")
                .is_some();
        // The revision is looked up only when the XR does not name its Secret itself.
        let composition_namespace = if has_ref {
            None
        } else {
            self.composition_namespace(xr)
        };
        let Some((ns, name)) = source(xr, composition_namespace) else {
            return Ok(false);
        };
        let from: Api<Secret> = Api::namespaced(self.ctx.shared.client.clone(), &ns);
        let Some(secret) = from
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("reading", format!("connection Secret {ns}/{name}"), e))?
        else {
            return Ok(false);
        };
        let data = serde_json::to_value(secret.data.unwrap_or_default()).map_err(|source| {
            Error::Serialize {
                object: format!("Secret {ns}/{name}"),
                source,
            }
        })?;
        let claim_type = &self.ctx.claim;
        let owner = (
            claim_type.api_version.as_str(),
            claim_type.kind.as_str(),
            self.id.name.as_str(),
            claim.uid(),
        );
        let desired = desired_secret(owner, &self.id.namespace, target, data);
        let to: Api<Secret> = Api::namespaced(self.ctx.shared.client.clone(), &self.id.namespace);
        let what = format!("connection Secret {}/{target}", self.id.namespace);
        let observed = shared::get_json(&to, target)
            .await
            .map_err(|e| Error::kube("reading", what.clone(), e))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_source_follows_its_table() {
        let named = json!({"metadata": {"uid": "u1"}, "spec": {"writeConnectionSecretToRef": {"name": "s", "namespace": "ns"}}});
        let unnamed = json!({"metadata": {"uid": "u1"}, "spec": {}});
        let half = json!({"metadata": {"uid": "u1"}, "spec": {"writeConnectionSecretToRef": {"name": "s"}}});
        let rows = [
            (
                &named,
                Some("crossplane"),
                Some(("ns", "s")),
                "the XR's own reference wins",
            ),
            (
                &unnamed,
                Some("crossplane"),
                Some(("crossplane", "u1")),
                "the Composition's namespace, named by the XR's uid",
            ),
            (
                &half,
                Some("crossplane"),
                Some(("crossplane", "u1")),
                "a reference without a namespace does not say",
            ),
            (&unnamed, None, None, "neither says: nothing to copy yet"),
            (
                &json!({"spec": {}}),
                Some("crossplane"),
                None,
                "an XR without a uid has no Secret yet",
            ),
        ];
        for (xr, namespace, expected, reason) in rows {
            assert_eq!(
                source(xr, namespace.map(str::to_owned)),
                expected.map(|(ns, n)| (ns.to_owned(), n.to_owned())),
                "{reason}"
            );
        }
    }

    #[test]
    fn the_copy_is_owned_by_the_claim() {
        let s = desired_secret(
            ("example.org/v1", "Database", "db", Some("u2".into())),
            "team",
            "db-conn",
            json!({"password": "cA=="}),
        );
        assert_eq!(s["metadata"]["namespace"], "team");
        assert_eq!(s["metadata"]["name"], "db-conn");
        assert_eq!(
            s["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "example.org/v1", "kind": "Database", "name": "db", "uid": "u2", "controller": true, "blockOwnerDeletion": true})
        );
        assert_eq!(s["data"], json!({"password": "cA=="}));
    }

    #[test]
    fn the_requeue_follows_its_table() {
        let resync = Duration::from_secs(600);
        let rows = [
            (false, false, resync, "no Secret wanted"),
            (true, true, resync, "the Secret is copied"),
            (
                true,
                false,
                SECRET_POLL,
                "the XR has not published its Secret yet",
            ),
        ];
        for (wanted, copied, expected, reason) in rows {
            assert_eq!(requeue(wanted, copied, resync), expected, "{reason}");
        }
    }
}
