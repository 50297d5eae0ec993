//! Client-side spacing of bucket metadata updates. GCS accepts about one metadata update per
//! second per bucket and answers faster ones with 429, so a burst of updates to one bucket is
//! spaced here instead: each waits for its turn, and buckets never wait for each other.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// GCS's published limit: one metadata update per second per bucket.
pub(crate) const BUCKET_UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// When each bucket may next be updated.
#[derive(Debug)]
pub(crate) struct UpdateSpacing {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Default for UpdateSpacing {
    fn default() -> Self {
        Self::new(BUCKET_UPDATE_INTERVAL)
    }
}

impl UpdateSpacing {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `bucket` may be updated and takes that turn: a bucket's first update goes at
    /// once, each later one at least `interval` after the turn before it. A turn is taken when
    /// the wait starts, so concurrent callers queue in the order they arrived.
    pub(crate) async fn wait_turn(&self, bucket: &str) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            // Buckets whose spacing has passed need no entry.
            next.retain(|_, at| *at > now);
            let turn = next.get(bucket).copied().unwrap_or(now).max(now);
            next.insert(bucket.to_owned(), turn + self.interval);
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn finish_times(spacing: Arc<UpdateSpacing>, buckets: &[&'static str]) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = buckets
            .iter()
            .map(|&bucket| {
                let spacing = spacing.clone();
                tokio::spawn(async move {
                    spacing.wait_turn(bucket).await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_updates_to_one_bucket_is_spaced_one_second_apart() {
        let spacing = Arc::new(UpdateSpacing::default());
        let times = finish_times(spacing, &["logs", "logs", "logs"]).await;
        assert_eq!(
            times,
            [0, 1, 2].map(Duration::from_secs).to_vec(),
            "each update waits for the one before it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn updates_to_different_buckets_do_not_wait_for_each_other() {
        let spacing = Arc::new(UpdateSpacing::default());
        let times = finish_times(spacing, &["logs", "media", "assets", "logs"]).await;
        assert_eq!(times, [0, 0, 0, 1].map(Duration::from_secs).to_vec());
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_after_a_quiet_second_goes_at_once() {
        let spacing = UpdateSpacing::default();
        spacing.wait_turn("logs").await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let start = Instant::now();
        spacing.wait_turn("logs").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        spacing.wait_turn("logs").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "the next one is spaced again"
        );
    }
}
