//! The `pkg.crossplane.io` Function controller: a Function object names a composition function
//! and its package; its status says how Strata reaches it.
//!
//! Strata never pulls or runs a package because an API object asks: a function runs in-process
//! when its package is one Strata implements natively (patch-and-transform, auto-ready,
//! sequencer, environment-configs), or where the operator's start-up configuration puts it
//! (`--functions`: an address, or a command Strata supervises). A Function is `Installed` and
//! `Healthy` (Crossplane's condition types, so `kubectl get functions` reads as on Crossplane)
//! when it runs in-process or its configured endpoint accepts connections; otherwise both
//! conditions say what is missing. Health is looked at again every minute. Each Function's
//! package is shared with the XR controllers, which classify pipeline steps by it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::{Value, json};
use strata_core::pipeline::NativeFunction;
use strata_core::wire;

use crate::conditions::{self, Wanted};
use crate::error::{Error, Result};
use crate::shared::{self, Shared};

/// The metrics name of this controller.
pub(crate) const CONTROLLER: &str = "function";
const INSTALLED: &str = "Installed";
const HEALTHY: &str = "Healthy";
/// How often a Function's health is looked at again.
const HEALTH_INTERVAL: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `pkg.crossplane.io/v1 Function`.
pub(crate) fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(wire::CROSSPLANE_GROUP_PKG, "v1", "Function"),
        "functions",
    )
}

/// How Strata reaches a Function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Its package is one Strata runs in-process.
    Native(NativeFunction),
    /// The operator configured an endpoint for it.
    Endpoint(String),
    NotConfigured,
}

/// Decides how a Function is reached: by its package, then by the operator's configuration.
pub(crate) fn reach(package: &str, endpoint: Option<&str>) -> Reach {
    if let Some(native) = NativeFunction::from_package(package) {
        return Reach::Native(native);
    }
    match endpoint {
        Some(a) => Reach::Endpoint(a.to_owned()),
        None => Reach::NotConfigured,
    }
}

/// The conditions a Function gets; `reachable` is whether its endpoint accepted a connection.
pub(crate) fn conditions_for(name: &str, reach: &Reach, reachable: bool) -> Vec<Wanted> {
    match reach {
        Reach::Native(n) => vec![
            Wanted::yes(INSTALLED, "ActivePackageRevision"),
            Wanted {
                message: Some(format!("{} runs in-process", n.name())),
                ..Wanted::yes(HEALTHY, "HealthyPackageRevision")
            },
        ],
        Reach::Endpoint(a) if reachable => vec![
            Wanted::yes(INSTALLED, "ActivePackageRevision"),
            Wanted {
                message: Some(format!("serving at {a}")),
                ..Wanted::yes(HEALTHY, "HealthyPackageRevision")
            },
        ],
        Reach::Endpoint(a) => vec![
            Wanted::yes(INSTALLED, "ActivePackageRevision"),
            Wanted::no(
                HEALTHY,
                "UnhealthyPackageRevision",
                format!("the function does not accept connections at {a}"),
            ),
        ],
        Reach::NotConfigured => {
            let message = format!(
                "Strata does not pull or run packages by itself: configure function {name:?} in \
                 the --functions file of strata up or strata run (an address, or a command to \
                 supervise)"
            );
            vec![
                Wanted::no(INSTALLED, "NotConfigured", message.clone()),
                Wanted::no(HEALTHY, "NotConfigured", message),
            ]
        }
    }
}

/// Runs the Function controller until `stopped` resolves.
pub(crate) async fn run<F>(shared: Arc<Shared>, stopped: F)
where
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let ar = resource();
    let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &ar);
    crate::relist::controller(api, watcher::Config::default(), ar)
        .graceful_shutdown_on(stopped)
        .run(reconcile, error_policy, shared)
        .for_each(|_| async {})
        .await;
}

fn error_policy(_obj: Arc<DynamicObject>, error: &Error, shared: Arc<Shared>) -> Action {
    Action::requeue(error.retry_after(shared.settings.resync))
}

async fn reconcile(obj: Arc<DynamicObject>, shared: Arc<Shared>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_function(&obj, &shared).await;
    shared
        .metrics
        .observe(CONTROLLER, start.elapsed(), result.is_ok());
    result
}

async fn reconcile_function(obj: &DynamicObject, shared: &Shared) -> Result<Action> {
    let name = obj.name_any();
    if obj.metadata.deletion_timestamp.is_some() {
        shared.set_function_package(&name, None);
        return Ok(Action::await_change());
    }
    let package = obj
        .data
        .pointer("/spec/package")
        .and_then(Value::as_str)
        .unwrap_or_default();
    shared.set_function_package(&name, Some(package));
    let endpoint = shared
        .settings
        .functions
        .endpoints
        .get(&name)
        .map(|e| e.address.as_str());
    let reach = reach(package, endpoint);
    let reachable = match &reach {
        Reach::Endpoint(a) => accepts(a).await,
        _ => false,
    };
    let wanted = conditions_for(&name, &reach, reachable);
    let observed = obj.data.get("status");
    let base = observed.cloned().unwrap_or_else(|| json!({}));
    let desired = conditions::with_conditions(&base, &wanted, &shared::now());
    if conditions::differs(observed, &desired) {
        let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &resource());
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": desired})),
        )
        .await
        .map_err(|e| Error::kube("writing the status of", format!("Function {name}"), e))?;
    }
    Ok(match reach {
        Reach::Endpoint(_) => Action::requeue(HEALTH_INTERVAL),
        _ => Action::requeue(shared.settings.resync),
    })
}

/// Whether `address` (`host:port`) accepts a TCP connection within the timeout.
async fn accepts(address: &str) -> bool {
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_reached_natively_by_package_then_as_configured() {
        let pt = "registry.example/crossplane-contrib/function-patch-and-transform:v0.8.2";
        assert_eq!(
            reach(pt, Some("127.0.0.1:1")),
            Reach::Native(NativeFunction::PatchAndTransform)
        );
        assert_eq!(
            reach(
                "registry.example/function-pythonic:v0.1.4",
                Some("127.0.0.1:9")
            ),
            Reach::Endpoint("127.0.0.1:9".into())
        );
        assert_eq!(
            reach("registry.example/function-kcl:v0.11", None),
            Reach::NotConfigured
        );
    }

    #[test]
    fn conditions_say_how_a_function_runs_and_what_is_missing() {
        let statuses = |r: &Reach, ok: bool| -> Vec<(bool, String)> {
            conditions_for("f", r, ok)
                .into_iter()
                .map(|w| (w.status, w.reason))
                .collect()
        };
        let healthy = vec![
            (true, "ActivePackageRevision".to_owned()),
            (true, "HealthyPackageRevision".to_owned()),
        ];
        assert_eq!(
            statuses(&Reach::Native(NativeFunction::AutoReady), false),
            healthy
        );
        assert_eq!(statuses(&Reach::Endpoint("a:1".into()), true), healthy);
        assert_eq!(
            statuses(&Reach::Endpoint("a:1".into()), false)[1],
            (false, "UnhealthyPackageRevision".to_owned())
        );
        let missing = conditions_for("f", &Reach::NotConfigured, false);
        assert!(!missing[0].status);
        assert!(
            missing[0]
                .message
                .as_deref()
                .unwrap()
                .contains("--functions"),
            "{missing:?}"
        );
    }
}
