//! Client-side rate limits per account or project, and retry delays with jitter.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use strata_provider::{ErrorClass, RateLimit, retry_delay};

/// One token bucket per rate key (`aws/<ProviderConfig>`, `gcp/<ProviderConfig>`).
pub(crate) struct RateLimits {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Waits until one more call against `key` is allowed.
    pub(crate) async fn acquire(&self, key: &str) {
        let bucket = {
            let mut buckets = self
                .buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            buckets
                .entry(key.to_owned())
                .or_insert_with(|| {
                    let burst = NonZeroU32::new(self.limit.burst).unwrap_or(NonZeroU32::MIN);
                    let quota = Quota::with_period(self.limit.replenish_every)
                        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                        .allow_burst(burst);
                    Arc::new(RateLimiter::direct(quota))
                })
                .clone()
        };
        bucket
            .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(50)))
            .await;
    }
}

/// Consecutive failures per object, for exponential backoff, and when each object may be tried
/// again. The retry time is kept per (generation, deleting): our own annotation and status writes
/// wake the object through its watch, and without this gate every such wake-up would retry at
/// once — a hot loop against the cloud. A spec change (new generation) or a deletion retries
/// immediately.
#[derive(Default)]
pub(crate) struct Failures(Mutex<HashMap<String, Backoff>>);

/// One object's failure record.
struct Backoff {
    attempts: u32,
    retry_at: Instant,
    key: RetryKey,
}

/// What must stay the same for a recorded backoff to hold: the spec (`metadata.generation`) and
/// whether the object is being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryKey {
    pub(crate) generation: Option<i64>,
    pub(crate) deleting: bool,
}

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a failure of `name` and returns the delay before the next attempt: the core's
    /// delay for the class plus up to 20 % jitter, or `fallback` for terminal errors.
    pub(crate) fn record(
        &self,
        name: &str,
        key: RetryKey,
        class: ErrorClass,
        fallback: Duration,
    ) -> Duration {
        let mut failures = self.lock();
        let entry = failures.entry(name.to_owned()).or_insert(Backoff {
            attempts: 0,
            retry_at: Instant::now(),
            key,
        });
        let attempt = entry.attempts;
        entry.attempts = entry.attempts.saturating_add(1);
        let delay = match retry_delay(class, attempt) {
            Some(base) => {
                let jitter_ms = u64::try_from(base.as_millis() / 5).unwrap_or(0);
                base + Duration::from_millis(rand::random_range(0..=jitter_ms))
            }
            None => fallback,
        };
        entry.retry_at = Instant::now() + delay;
        entry.key = key;
        delay
    }

    /// How long `name` must still wait after its last failure, when that failure was recorded
    /// for the same spec and deletion state; `None` when it may be tried now.
    pub(crate) fn wait_left(&self, name: &str, key: RetryKey) -> Option<Duration> {
        let failures = self.lock();
        let entry = failures.get(name).filter(|entry| entry.key == key)?;
        let left = entry.retry_at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    pub(crate) fn clear(&self, name: &str) {
        self.lock().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: RetryKey = RetryKey {
        generation: Some(1),
        deleting: false,
    };

    #[test]
    fn a_failure_holds_retries_of_the_same_spec_until_its_delay_passes() {
        let failures = Failures::default();
        let delay = failures.record("db", KEY, ErrorClass::Throttled, Duration::from_secs(60));
        assert!(delay >= Duration::from_secs(2));
        let left = failures.wait_left("db", KEY).unwrap();
        assert!(left <= delay && left > Duration::from_secs(1));
        assert_eq!(failures.wait_left("other", KEY), None);
    }

    #[test]
    fn a_new_generation_or_a_deletion_retries_at_once() {
        let failures = Failures::default();
        failures.record("db", KEY, ErrorClass::Terminal, Duration::from_secs(60));
        let changed = RetryKey {
            generation: Some(2),
            ..KEY
        };
        let deleting = RetryKey {
            deleting: true,
            ..KEY
        };
        assert_eq!(failures.wait_left("db", changed), None);
        assert_eq!(failures.wait_left("db", deleting), None);
        failures.clear("db");
        assert_eq!(failures.wait_left("db", KEY), None);
    }

    #[test]
    fn consecutive_failures_back_off_exponentially() {
        let failures = Failures::default();
        let first = failures.record("db", KEY, ErrorClass::Transient, Duration::ZERO);
        let second = failures.record("db", KEY, ErrorClass::Transient, Duration::ZERO);
        let third = failures.record("db", KEY, ErrorClass::Transient, Duration::ZERO);
        assert!(first < Duration::from_millis(601), "{first:?}");
        assert!(second >= Duration::from_secs(1), "{second:?}");
        assert!(third >= Duration::from_secs(2), "{third:?}");
    }
}
