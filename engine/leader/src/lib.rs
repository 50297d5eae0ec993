//! Leader election with a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one reconciles. The decision is pure ([`decide`]); [`acquire`] waits for the lease and
//! [`hold`] renews it, returning when it is lost (the process then stops rather than risk two
//! leaders writing).
//!
//! Expiry is judged as client-go judges it: by how long the Lease's record (holder and renew
//! time) has stayed unchanged as seen by this process's own clock ([`Observation`]), never by
//! comparing the holder's `renewTime` with the local clock — replicas whose clocks differ neither
//! steal a live lease nor wait on a dead one. A replica that has just started waits one lease
//! duration before taking over a lease it has not seen renewed.

#![warn(missing_docs, unreachable_pub)]

pub mod relist;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// Why a lease could not be read or written, or why it was lost.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a read or write of the Lease.
    #[error("{doing} {what}: {source}")]
    Kube {
        /// `reading` or `writing`.
        doing: &'static str,
        /// Which Lease.
        what: String,
        /// What the API server or the connection said.
        #[source]
        source: kube::Error,
    },
    /// Leadership ended: the process stops rather than risk two leaders writing.
    #[error("leader election stopped: {0}")]
    Lost(String),
}

/// A result of leader election.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Which Lease, and who we are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
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
    Follow {
        /// Who holds it.
        holder: String,
    },
}

/// What this process last saw of the Lease, and when by its own clock (client-go's
/// `observedTime`).
#[derive(Clone, Debug, Default)]
pub struct Observation {
    record: Option<(String, Option<MicroTime>)>,
    at: Option<Instant>,
}

impl Observation {
    /// Records the Lease as read at `now`; the time moves only when the record changed.
    pub fn see(&mut self, spec: Option<&LeaseSpec>, now: Instant) {
        let record = spec.map(|s| {
            (
                s.holder_identity.clone().unwrap_or_default(),
                s.renew_time.clone(),
            )
        });
        if record != self.record || self.at.is_none() {
            self.record = record;
            self.at = Some(now);
        }
    }
}

/// Decides from the observed Lease spec and when its record last changed here.
pub fn decide(
    spec: Option<&LeaseSpec>,
    me: &str,
    observation: &Observation,
    now: Instant,
) -> LeaseStep {
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
    let seconds = u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(0);
    let duration = Duration::from_secs(seconds);
    let expired = observation
        .at
        .is_none_or(|at| now.saturating_duration_since(at) >= duration);
    if expired {
        LeaseStep::Acquire
    } else {
        LeaseStep::Follow {
            holder: holder.to_owned(),
        }
    }
}

/// One attempt: `Ok(true)` when we hold the lease afterwards.
async fn try_hold(
    api: &Api<Lease>,
    cfg: &LeaderElection,
    observation: &mut Observation,
) -> Result<bool> {
    let what = format!("Lease {}/{}", cfg.namespace, cfg.name);
    let observed = api.get_opt(&cfg.name).await.map_err(|e| Error::Kube {
        doing: "reading",
        what: what.clone(),
        source: e,
    })?;
    let spec_seen = observed.as_ref().and_then(|l| l.spec.as_ref());
    observation.see(spec_seen, Instant::now());
    let step = decide(spec_seen, &cfg.identity, observation, Instant::now());
    // What we write is a wall-clock time, as the API defines renewTime; no one compares it.
    let now = Timestamp::now();
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
        Err(e) => Err(Error::Kube {
            doing: "writing",
            what,
            source: e,
        }),
    }
}

/// Waits until this process holds the lease.
pub async fn acquire(client: &Client, cfg: &LeaderElection) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let retry = cfg.lease_duration / 3;
    let mut observation = Observation::default();
    loop {
        match try_hold(&api, cfg, &mut observation).await {
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
    let mut observation = Observation::default();
    loop {
        tokio::time::sleep(period).await;
        match try_hold(&api, cfg, &mut observation).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                return Error::Lost("another replica took the lease".into());
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the lease");
                if last_renewal.elapsed() >= cfg.lease_duration {
                    return Error::Lost(format!("lease not renewed: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// A Lease whose holder's clock says it renewed at `renewed` (seconds of its own clock).
    fn lease(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    fn seen(spec: &LeaseSpec, at: Instant) -> Observation {
        let mut o = Observation::default();
        o.see(Some(spec), at);
        o
    }

    #[test]
    fn a_missing_or_unheld_lease_is_acquired() {
        let now = Instant::now();
        let o = Observation::default();
        assert_eq!(decide(None, "me", &o, now), LeaseStep::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "me", &o, now),
            LeaseStep::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let l = lease("me", 1_000);
        let t0 = Instant::now();
        assert_eq!(
            decide(Some(&l), "me", &seen(&l, t0), t0 + Duration::from_secs(100)),
            LeaseStep::Renew
        );
    }

    #[test]
    fn another_replicas_lease_is_followed_until_unchanged_here_for_its_duration() {
        // The holder's clock is far behind ours: only what this process saw counts.
        let l = lease("other", 1);
        let t0 = Instant::now();
        let o = seen(&l, t0);
        let follow = LeaseStep::Follow {
            holder: "other".into(),
        };
        assert_eq!(decide(Some(&l), "me", &o, t0), follow);
        assert_eq!(
            decide(Some(&l), "me", &o, t0 + Duration::from_secs(14)),
            follow
        );
        assert_eq!(
            decide(Some(&l), "me", &o, t0 + Duration::from_secs(15)),
            LeaseStep::Acquire
        );
    }

    #[test]
    fn a_renewal_seen_here_restarts_the_wait_whatever_the_holders_clock_says() {
        let t0 = Instant::now();
        let mut o = seen(&lease("other", 5_000_000_000), t0);
        // Renewed (to an earlier time by its own clock) 10 s later.
        let renewed = lease("other", 4_000_000_000);
        o.see(Some(&renewed), t0 + Duration::from_secs(10));
        assert_eq!(
            decide(Some(&renewed), "me", &o, t0 + Duration::from_secs(20)),
            LeaseStep::Follow {
                holder: "other".into()
            }
        );
        // Seen again unchanged: the wait keeps counting from the renewal.
        o.see(Some(&renewed), t0 + Duration::from_secs(24));
        assert_eq!(
            decide(Some(&renewed), "me", &o, t0 + Duration::from_secs(25)),
            LeaseStep::Acquire
        );
    }
}
