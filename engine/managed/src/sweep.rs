//! Steady-state observation by sweep: one listing call reads many resources.
//!
//! A resource that has been seen in the cloud before is polled for drift (and, while it is not
//! ready, for readiness). Instead of one read per resource and poll, the runtime lists the whole
//! scope (an RDS region, a GCS project) a page at a time and answers every poll of that scope
//! from the listing while it is fresh. A listing is only trusted for a resource when it was taken
//! after the runtime's own last write to that resource, and only to say what is there: a
//! resource the listing lacks is read on its own, so nothing is ever created, or found gone, on
//! the word of a listing.
//!
//! [`Sweeps`] holds the listings and the time of the last write per resource; [`plan`] is the
//! pure decision of where an observation comes from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_provider::{CloudRecord, ExternalName, NOT_READY_POLL};

/// One listing of a scope.
pub(crate) struct Snapshot {
    /// When the listing started: everything it holds is at least this new.
    pub(crate) taken: Instant,
    pub(crate) records: HashMap<ExternalName, CloudRecord>,
}

/// Where one observation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Read the resource on its own.
    Read,
    /// The current listing of the scope answers.
    Listing,
    /// List the scope again first, then answer from the new listing.
    Relist,
}

/// What [`plan`] decides from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts {
    /// The provider can list its resources.
    pub(crate) can_sweep: bool,
    /// The object is being deleted: deletion needs a read of its own.
    pub(crate) deleting: bool,
    /// The resource was seen in the cloud before (`status.atProvider` is set): a poll, not a
    /// first look that may lead to a create.
    pub(crate) seen_before: bool,
    /// It was ready when last seen: its polls are for drift, not for readiness.
    pub(crate) ready: bool,
    /// When the runtime last created, updated or deleted it, if since the process started.
    pub(crate) last_write: Option<Instant>,
    /// When the scope's current listing was taken, if there is one.
    pub(crate) listing_taken: Option<Instant>,
    pub(crate) now: Instant,
    /// The drift-detection poll interval.
    pub(crate) poll_interval: Duration,
}

/// How old a listing may be to answer a poll: half a poll interval for a ready resource (drift
/// is seen within one and a half intervals), at most [`NOT_READY_POLL`] for one that is not
/// ready yet.
pub(crate) fn max_age(ready: bool, poll_interval: Duration) -> Duration {
    let half = poll_interval / 2;
    if ready {
        half
    } else {
        half.min(NOT_READY_POLL)
    }
}

/// Decides where an observation comes from. Pure.
pub(crate) fn plan(facts: &Facts) -> Source {
    if !facts.can_sweep || facts.deleting || !facts.seen_before {
        return Source::Read;
    }
    let fresh = |taken: Instant| {
        facts.now.saturating_duration_since(taken) <= max_age(facts.ready, facts.poll_interval)
    };
    let after_our_write = |taken: Instant| facts.last_write.is_none_or(|write| taken > write);
    match facts.listing_taken {
        Some(taken) if fresh(taken) && after_our_write(taken) => Source::Listing,
        // The listing is fresh but predates our own change: one read is cheaper than a relist.
        Some(taken) if fresh(taken) => Source::Read,
        // Our write is recent enough that a new listing would be its only reader right now.
        _ if facts
            .last_write
            .is_some_and(|write| fresh(write) && !facts.ready) =>
        {
            Source::Read
        }
        _ => Source::Relist,
    }
}

/// A scope: the ProviderConfig and the provider's scope within it.
pub(crate) type ScopeKey = (String, String);

/// The listings of every scope and the runtime's writes, shared by one provider's reconciles.
#[derive(Default)]
pub(crate) struct Sweeps {
    /// One lock per scope, so concurrent polls of a scope wait for one listing, not one each.
    listings: Mutex<HashMap<ScopeKey, Arc<tokio::sync::Mutex<Option<Snapshot>>>>>,
    writes: Mutex<HashMap<String, Instant>>,
}

impl Sweeps {
    /// The lock of a scope's listing.
    pub(crate) fn listing(&self, scope: &ScopeKey) -> Arc<tokio::sync::Mutex<Option<Snapshot>>> {
        self.listings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(scope.clone())
            .or_default()
            .clone()
    }

    /// Records that the runtime just changed the cloud resource of object `name`.
    pub(crate) fn wrote(&self, name: &str) {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_owned(), Instant::now());
    }

    /// When the runtime last changed the cloud resource of object `name`.
    pub(crate) fn last_write(&self, name: &str) -> Option<Instant> {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .copied()
    }

    /// Forgets an object whose cloud side is settled and whose finalizer is gone.
    pub(crate) fn forget(&self, name: &str) {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(60);

    fn facts(now: Instant) -> Facts {
        Facts {
            can_sweep: true,
            deleting: false,
            seen_before: true,
            ready: true,
            last_write: None,
            listing_taken: None,
            now,
            poll_interval: POLL,
        }
    }

    #[test]
    fn plan_follows_the_decision_table() {
        let now = Instant::now() + Duration::from_secs(3600);
        let secs = |s: u64| now - Duration::from_secs(s);
        struct Row {
            reason: &'static str,
            facts: Facts,
            expected: Source,
        }
        let rows = [
            Row {
                reason: "a provider that cannot list reads",
                facts: Facts {
                    can_sweep: false,
                    listing_taken: Some(secs(1)),
                    ..facts(now)
                },
                expected: Source::Read,
            },
            Row {
                reason: "deletion reads on its own",
                facts: Facts {
                    deleting: true,
                    listing_taken: Some(secs(1)),
                    ..facts(now)
                },
                expected: Source::Read,
            },
            Row {
                reason: "a first look (it may lead to a create) reads on its own",
                facts: Facts {
                    seen_before: false,
                    listing_taken: Some(secs(1)),
                    ..facts(now)
                },
                expected: Source::Read,
            },
            Row {
                reason: "a fresh listing answers a drift poll",
                facts: Facts {
                    listing_taken: Some(secs(29)),
                    ..facts(now)
                },
                expected: Source::Listing,
            },
            Row {
                reason: "a listing older than half the poll interval is taken again",
                facts: Facts {
                    listing_taken: Some(secs(31)),
                    ..facts(now)
                },
                expected: Source::Relist,
            },
            Row {
                reason: "no listing yet: list",
                facts: facts(now),
                expected: Source::Relist,
            },
            Row {
                reason: "a resource that is not ready accepts only a listing as new as its poll",
                facts: Facts {
                    ready: false,
                    listing_taken: Some(secs(6)),
                    ..facts(now)
                },
                expected: Source::Relist,
            },
            Row {
                reason: "a fresh listing taken before our own write is not trusted: read",
                facts: Facts {
                    last_write: Some(secs(2)),
                    listing_taken: Some(secs(3)),
                    ..facts(now)
                },
                expected: Source::Read,
            },
            Row {
                reason: "a fresh listing taken after our write answers",
                facts: Facts {
                    last_write: Some(secs(3)),
                    listing_taken: Some(secs(2)),
                    ..facts(now)
                },
                expected: Source::Listing,
            },
            Row {
                reason: "right after our write to a resource that is not ready, a read beats a relist",
                facts: Facts {
                    ready: false,
                    last_write: Some(secs(4)),
                    listing_taken: Some(secs(20)),
                    ..facts(now)
                },
                expected: Source::Read,
            },
            Row {
                reason: "a write long ago does not stop a relist",
                facts: Facts {
                    last_write: Some(secs(600)),
                    listing_taken: Some(secs(40)),
                    ..facts(now)
                },
                expected: Source::Relist,
            },
        ];
        for row in rows {
            assert_eq!(plan(&row.facts), row.expected, "{}", row.reason);
        }
    }

    #[test]
    fn max_age_is_half_a_poll_and_at_most_the_not_ready_poll_while_not_ready() {
        assert_eq!(max_age(true, POLL), Duration::from_secs(30));
        assert_eq!(max_age(false, POLL), NOT_READY_POLL);
        assert_eq!(
            max_age(false, Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }
}
