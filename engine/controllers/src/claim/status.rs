//! XR status → claim status: [`status_patch`] decides the write (none when the claim already
//! shows it).

use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::Pass;
use crate::binding;
use crate::conditions;
use crate::error::{Error, Result};

/// The merge patch that copies the XR's status to the claim, guarded by the claim's
/// `resource_version`; `None` when the claim's status already shows it.
fn status_patch(
    claim_status: Option<&Value>,
    resource_version: Option<&str>,
    xr: &Value,
) -> Option<Value> {
    let status = binding::claim_status_from_composite(xr);
    conditions::differs(claim_status, &status)
        .then(|| json!({"metadata": {"resourceVersion": resource_version}, "status": status}))
}

impl Pass<'_> {
    /// Copies the XR's status to the claim when it differs.
    pub(super) async fn copy_status(&self, claim: &DynamicObject, xr: &Value) -> Result<()> {
        let resource_version = claim.resource_version();
        let Some(patch) = status_patch(claim.data.get("status"), resource_version.as_deref(), xr)
        else {
            return Ok(());
        };
        let written = self
            .claims
            .patch_status(
                &self.id.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| Error::kube("writing the status of", self.what.clone(), e))?;
        self.ctx.shared.newest.wrote(claim, &written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_patch_follows_its_table() {
        let ready = json!({"type": "Ready", "status": "True"});
        let xr = json!({"status": {"address": "x", "conditions": [ready], "claimConditionTypes": ["A"]}});
        let shown = json!({"address": "x", "conditions": [ready]});
        let rows = [
            (
                None,
                Some(json!({"metadata": {"resourceVersion": "3"}, "status": shown})),
                "a new claim gets the XR's status (without the XR-only fields)",
            ),
            (
                Some(shown.clone()),
                None,
                "a claim that shows it writes nothing",
            ),
            (
                Some(json!({"address": "x", "conditions": [ready], "extra": 1})),
                None,
                "fields only the claim has are not the copy's business",
            ),
            (
                Some(json!({"address": "old", "conditions": [ready]})),
                Some(json!({"metadata": {"resourceVersion": "3"}, "status": shown})),
                "a changed XR status is copied",
            ),
        ];
        for (claim_status, expected, reason) in rows {
            assert_eq!(
                status_patch(claim_status.as_ref(), Some("3"), &xr),
                expected,
                "{reason}"
            );
        }
        assert_eq!(
            status_patch(None, Some("3"), &json!({})),
            None,
            "an XR without status leaves a claim without status alone"
        );
    }
}
