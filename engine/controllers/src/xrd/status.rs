//! The XRD's `Established`/`Offered` conditions: [`Progress::conditions`] decides them from how
//! far a pass got (pure); [`write`] writes them only when they change the status.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use strata_core::model::CompositeResourceDefinition;

use super::XrdContext;
use crate::conditions::{self, ESTABLISHED, OFFERED, Wanted};
use crate::error::{Error, Result};
use crate::shared;

/// How far a pass brought the XRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// The XRD does not make valid CRDs: fixed only by changing it.
    Invalid(String),
    /// A CRD could not be applied.
    ApplyFailed(String),
    /// The CRDs are applied; the API server does not serve them yet.
    Pending,
    /// The kinds are served and their controllers run; `offered` when there is a claim kind.
    Established { offered: bool },
    /// Being deleted while XRs of the kind exist.
    Terminating(String),
}

impl Progress {
    /// The conditions that say so.
    pub(super) fn conditions(&self) -> Vec<Wanted> {
        match self {
            Progress::Invalid(m) => vec![Wanted::no(ESTABLISHED, "InvalidDefinition", m.clone())],
            Progress::ApplyFailed(m) => vec![Wanted::no(ESTABLISHED, "ApplyFailed", m.clone())],
            Progress::Pending => vec![Wanted::no(
                ESTABLISHED,
                "Pending",
                "waiting for the API server to serve the CRDs",
            )],
            Progress::Established { offered } => {
                let mut wanted = vec![Wanted::yes(ESTABLISHED, "WatchingCompositeResource")];
                if *offered {
                    wanted.push(Wanted::yes(OFFERED, "WatchingCompositeResourceClaim"));
                }
                wanted
            }
            Progress::Terminating(m) => vec![Wanted::no(ESTABLISHED, "Terminating", m.clone())],
        }
    }
}

/// The XRD's status with `progress`'s conditions set; `None` when the observed status already
/// is that.
fn desired_status(observed: Option<&Value>, progress: &Progress, now: &str) -> Option<Value> {
    let desired =
        conditions::with_conditions(observed.unwrap_or(&json!({})), &progress.conditions(), now);
    conditions::differs(observed, &desired).then_some(desired)
}

/// Writes `progress`'s conditions to the XRD when they change its status.
pub(super) async fn write(
    xrd: &CompositeResourceDefinition,
    ctx: &XrdContext,
    progress: &Progress,
) -> Result<()> {
    let name = xrd.name_any();
    let observed = serde_json::to_value(&xrd.status).unwrap_or(Value::Null);
    let observed = observed.is_object().then_some(observed);
    let Some(desired) = desired_status(observed.as_ref(), progress, &shared::now()) else {
        return Ok(());
    };
    let api: Api<CompositeResourceDefinition> = Api::all(ctx.shared.client.clone());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": desired})),
    )
    .await
    .map_err(|e| Error::kube("writing the status of", format!("XRD {name}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-02T03:04:05Z";

    fn condition(kind: &str, status: &str, reason: &str, message: Option<&str>, at: &str) -> Value {
        let mut c =
            json!({"type": kind, "status": status, "reason": reason, "lastTransitionTime": at});
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    }

    #[test]
    fn the_xrd_status_follows_its_table() {
        let established = json!({"conditions": [
            condition("Established", "True", "WatchingCompositeResource", None, "earlier"),
        ]});
        let rows = [
            (
                None,
                Progress::Established { offered: true },
                Some(json!({"conditions": [
                    condition("Established", "True", "WatchingCompositeResource", None, NOW),
                    condition("Offered", "True", "WatchingCompositeResourceClaim", None, NOW),
                ]})),
                "a new XRD with a claim kind is established and offered",
            ),
            (
                Some(established.clone()),
                Progress::Established { offered: false },
                None,
                "an established XRD writes nothing",
            ),
            (
                Some(established.clone()),
                Progress::Pending,
                Some(json!({"conditions": [
                    condition("Established", "False", "Pending", Some("waiting for the API server to serve the CRDs"), NOW),
                ]})),
                "CRDs not served yet",
            ),
            (
                None,
                Progress::Invalid("spec.versions[0]: bad".into()),
                Some(json!({"conditions": [
                    condition("Established", "False", "InvalidDefinition", Some("spec.versions[0]: bad"), NOW),
                ]})),
                "an invalid XRD says why",
            ),
            (
                None,
                Progress::ApplyFailed("denied".into()),
                Some(json!({"conditions": [
                    condition("Established", "False", "ApplyFailed", Some("denied"), NOW),
                ]})),
                "a CRD that cannot be applied says why",
            ),
            (
                Some(established),
                Progress::Terminating("XRs exist".into()),
                Some(json!({"conditions": [
                    condition("Established", "False", "Terminating", Some("XRs exist"), NOW),
                ]})),
                "deletion waits for the XRs",
            ),
        ];
        for (observed, progress, expected, reason) in rows {
            assert_eq!(
                desired_status(observed.as_ref(), &progress, NOW),
                expected,
                "{reason}"
            );
        }
    }
}
