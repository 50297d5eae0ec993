//! Everything that reconciles, side by side until shutdown: the composition controllers and the
//! managed-resource runtime with every provider. `strata run` and `strata up` both start it.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use strata_provider::Provider;
use tokio::sync::watch;

/// The Lease the managed-resource runtime's leader holds.
const MANAGED_LEASE: &str = "strata-managed";

/// Every provider built into this binary.
pub fn providers() -> Vec<Arc<dyn Provider>> {
    vec![
        Arc::new(strata_provider_aws::AwsRdsProvider),
        Arc::new(strata_provider_aws::AwsIamRoleProvider),
        Arc::new(strata_provider_aws::AwsIamOidcProvider),
        Arc::new(strata_provider_gcp::GcsBucketProvider),
        Arc::new(strata_provider_gcp::GcsBucketIamMemberProvider),
    ]
}

/// Runs the controllers and the managed-resource runtime until `shutdown` completes, then stops
/// both and waits for them. If either stops on its own, the other is stopped and that is an error.
pub async fn run(
    client: kube::Client,
    settings: strata_controllers::Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // The runtime elects its own leader on a Lease of its own (one Lease per renewal loop): of
    // several replicas exactly one calls the cloud APIs.
    let managed_settings = strata_managed::Settings {
        leader_election: settings.leader_election.clone().map(|election| {
            strata_controllers::leader::LeaderElection {
                name: MANAGED_LEASE.to_owned(),
                ..election
            }
        }),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut controllers = tokio::spawn(strata_controllers::run(
        client.clone(),
        settings,
        stopped(stop_rx.clone()),
    ));
    let mut managed = tokio::spawn(strata_managed::run(
        client,
        providers(),
        managed_settings,
        stopped(stop_rx),
    ));
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            let (c, m) = tokio::join!(controllers, managed);
            c.context("the controllers task failed")?.context("the controllers failed")?;
            m.context("the managed-resource task failed")?.context("the managed-resource runtime failed")?;
            return Ok(());
        }
        r = &mut controllers => {
            let _ = stop_tx.send(true);
            let _ = managed.await;
            r.context("the controllers task failed")?.context("the controllers failed")
        }
        r = &mut managed => {
            let _ = stop_tx.send(true);
            let _ = controllers.await;
            r.context("the managed-resource task failed")?.context("the managed-resource runtime failed")
        }
    };
    outcome?;
    anyhow::bail!("the reconcilers stopped unexpectedly")
}
