//! Leader election with a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one reconciles. The decision is pure ([`decide`]); [`acquire`] waits for the lease and
//! [`hold`] renews it, returning when it is lost (the process then stops rather than risk two
//! leaders writing).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::error::{Error, Result, is_conflict};

/// Which Lease, and who we are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    /// Unique per process (pod name plus a random or time-based suffix).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
}

/// What to do about the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStep {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a valid lease: wait.
    Follow { holder: String },
}

/// Decides from the observed Lease spec.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseStep {
    let Some(spec) = spec else {
        return LeaseStep::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return LeaseStep::Acquire;
    }
    if holder == me {
        return LeaseStep::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = match &spec.renew_time {
        Some(MicroTime(t)) => t.checked_add(duration).map(|end| end < now).unwrap_or(true),
        None => true,
    };
    if expired {
        LeaseStep::Acquire
    } else {
        LeaseStep::Follow {
            holder: holder.to_owned(),
        }
    }
}

/// One attempt: `Ok(true)` when we hold the lease afterwards.
async fn try_hold(api: &Api<Lease>, cfg: &LeaderElection) -> Result<bool> {
    let what = format!("Lease {}/{}", cfg.namespace, cfg.name);
    let observed = api
        .get_opt(&cfg.name)
        .await
        .map_err(|e| Error::kube("reading", what.clone(), e))?;
    let now = Timestamp::now();
    let step = decide(
        observed.as_ref().and_then(|l| l.spec.as_ref()),
        &cfg.identity,
        now,
    );
    let seconds = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let mut spec = observed
        .as_ref()
        .and_then(|l| l.spec.clone())
        .unwrap_or_default();
    match step {
        LeaseStep::Follow { holder } => {
            tracing::debug!(%holder, "another replica leads");
            return Ok(false);
        }
        LeaseStep::Acquire => {
            spec.holder_identity = Some(cfg.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + i32::from(observed.is_some()));
        }
        LeaseStep::Renew => {}
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds);
    let result = match observed {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        // `replace` carries the observed resourceVersion: a concurrent writer makes it fail.
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(Error::kube("writing", what, e)),
    }
}

/// Waits until this process holds the lease.
pub async fn acquire(client: &Client, cfg: &LeaderElection) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let retry = cfg.lease_duration / 3;
    loop {
        match try_hold(&api, cfg).await {
            Ok(true) => {
                tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Renews the lease until a renewal fails for a whole lease duration; returns the reason.
pub async fn hold(client: &Client, cfg: &LeaderElection) -> Error {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let period = cfg.lease_duration / 3;
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(period).await;
        match try_hold(&api, cfg).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                return Error::Stopped {
                    controller: "leader election",
                    message: "another replica took the lease".into(),
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the lease");
                if last_renewal.elapsed() >= cfg.lease_duration {
                    return Error::Stopped {
                        controller: "leader election",
                        message: format!("lease not renewed: {e}"),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                now()
                    .checked_sub(SignedDuration::from_secs(renewed_secs_ago))
                    .unwrap(),
            )),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_missing_or_unheld_lease_is_acquired() {
        assert_eq!(decide(None, "me", now()), LeaseStep::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "me", now()),
            LeaseStep::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(Some(&lease("me", 100)), "me", now()),
            LeaseStep::Renew
        );
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_followed() {
        assert_eq!(
            decide(Some(&lease("other", 5)), "me", now()),
            LeaseStep::Follow {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn an_expired_lease_of_another_replica_is_taken_over() {
        assert_eq!(
            decide(Some(&lease("other", 16)), "me", now()),
            LeaseStep::Acquire
        );
    }
}
