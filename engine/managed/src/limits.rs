//! Client-side rate limits per account or project, and retry delays with jitter.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use strata_core::provider::{ErrorClass, RateLimit, retry_delay};

/// One token bucket per rate key (`aws/<ProviderConfig>`, `gcp/<ProviderConfig>`).
pub struct RateLimits {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Waits until one more call against `key` is allowed.
    pub async fn acquire(&self, key: &str) {
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

/// Consecutive failures per object, for exponential backoff.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Records a failure of `name` and returns the delay before the next attempt: the core's
    /// delay for the class plus up to 20 % jitter, or `fallback` for terminal errors.
    pub fn record(&self, name: &str, class: ErrorClass, fallback: Duration) -> Duration {
        let attempt = {
            let mut failures = self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = failures.entry(name.to_owned()).or_insert(0);
            let attempt = *count;
            *count = count.saturating_add(1);
            attempt
        };
        match retry_delay(class, attempt) {
            Some(base) => {
                let jitter_ms = u64::try_from(base.as_millis() / 5).unwrap_or(0);
                base + Duration::from_millis(rand::random_range(0..=jitter_ms))
            }
            None => fallback,
        }
    }

    pub fn clear(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
    }
}
