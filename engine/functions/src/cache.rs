//! Responses re-used within their TTL: a function's response is kept under its request's tag
//! (the hash of everything the function sees), so a reconcile whose inputs did not change gets
//! the last answer without a call until the function's `ttl` runs out — as Crossplane's
//! function response cache does. Bounded: expired entries go first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proto::{RunFunctionRequest, RunFunctionResponse};
use crate::run::tag;
use crate::transport::{CallError, FunctionRunner};

/// How many responses are kept at most.
pub const DEFAULT_CAPACITY: usize = 4096;

struct Entry {
    response: RunFunctionResponse,
    expires: Instant,
}

/// Wraps a runner with a TTL cache keyed by function and request tag.
pub struct Cached<R> {
    inner: R,
    capacity: usize,
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl<R> Cached<R> {
    /// Wraps `inner`, holding at most `capacity` responses (at least one).
    pub fn new(inner: R, capacity: usize) -> Self {
        Self {
            inner,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How many responses are held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ttl_of(response: &RunFunctionResponse) -> Duration {
    response
        .meta
        .as_ref()
        .and_then(|m| m.ttl.as_ref())
        .map_or(Duration::ZERO, |d| {
            Duration::new(
                u64::try_from(d.seconds).unwrap_or(0),
                u32::try_from(d.nanos).unwrap_or(0),
            )
        })
}

impl<R: FunctionRunner> FunctionRunner for Cached<R> {
    async fn run(
        &self,
        function: &str,
        request: RunFunctionRequest,
    ) -> Result<RunFunctionResponse, CallError> {
        let key = (
            function.to_owned(),
            request
                .meta
                .as_ref()
                .map(|m| m.tag.clone())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| tag(&request)),
        );
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(&key)
            && e.expires > now
        {
            return Ok(e.response.clone());
        }
        let response = self.inner.run(function, request).await?;
        let ttl = ttl_of(&response);
        let fatal = response
            .results
            .iter()
            .any(|r| r.severity == crate::proto::Severity::Fatal as i32);
        if ttl > Duration::ZERO
            && !fatal
            && let Ok(mut entries) = self.entries.lock()
        {
            let now = Instant::now();
            entries.retain(|_, e| e.expires > now);
            while entries.len() >= self.capacity {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
            entries.insert(
                key,
                Entry {
                    response: response.clone(),
                    expires: now + ttl,
                },
            );
        }
        Ok(response)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use function_sdk_rust::response;

    use super::*;

    struct Counting {
        calls: AtomicUsize,
        ttl: Duration,
        fatal: bool,
    }

    impl FunctionRunner for Counting {
        async fn run(
            &self,
            _: &str,
            request: RunFunctionRequest,
        ) -> Result<RunFunctionResponse, CallError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut rsp = response::to(&request, self.ttl);
            if self.fatal {
                response::fatal(&mut rsp, "no");
            }
            Ok(rsp)
        }
    }

    fn request(n: i32) -> RunFunctionRequest {
        RunFunctionRequest {
            input: Some(function_sdk_rust::resource::json_to_struct(
                serde_json::json!({"n": n}).as_object().unwrap(),
            )),
            ..Default::default()
        }
    }

    fn cached(ttl: Duration, fatal: bool, capacity: usize) -> Cached<Counting> {
        Cached::new(
            Counting {
                calls: AtomicUsize::new(0),
                ttl,
                fatal,
            },
            capacity,
        )
    }

    #[tokio::test]
    async fn the_same_request_within_its_ttl_is_answered_without_a_call() {
        let c = cached(Duration::from_secs(60), false, 8);
        c.run("f", request(1)).await.unwrap();
        c.run("f", request(1)).await.unwrap();
        assert_eq!(c.inner.calls.load(Ordering::SeqCst), 1);
        c.run("f", request(2)).await.unwrap();
        c.run("g", request(1)).await.unwrap();
        assert_eq!(
            c.inner.calls.load(Ordering::SeqCst),
            3,
            "other inputs or another function are calls"
        );
    }

    #[tokio::test]
    async fn no_ttl_and_fatal_responses_are_never_reused() {
        for (ttl, fatal) in [(Duration::ZERO, false), (Duration::from_secs(60), true)] {
            let c = cached(ttl, fatal, 8);
            c.run("f", request(1)).await.unwrap();
            c.run("f", request(1)).await.unwrap();
            assert_eq!(
                c.inner.calls.load(Ordering::SeqCst),
                2,
                "ttl {ttl:?} fatal {fatal}"
            );
        }
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let c = cached(Duration::from_secs(60), false, 2);
        for n in 0..5 {
            c.run("f", request(n)).await.unwrap();
        }
        assert_eq!(c.len(), 2);
    }
}
