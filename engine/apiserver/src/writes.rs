//! A count of write requests by verb, for benchmarks and diagnostics: every POST, PUT, PATCH and
//! DELETE the HTTP surface receives, whatever its outcome.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;

/// Write requests received so far, by verb.
#[derive(Debug, Default)]
pub struct WriteCounter {
    post: AtomicU64,
    put: AtomicU64,
    patch: AtomicU64,
    delete: AtomicU64,
}

/// A snapshot of [`WriteCounter`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    /// Creates (`POST`).
    pub post: u64,
    /// Replacements (`PUT`), including status and scale subresources.
    pub put: u64,
    /// Patches of any patch type.
    pub patch: u64,
    /// Deletions, of one object or a collection.
    pub delete: u64,
}

impl WriteCounter {
    /// Counts one request if `method` is a write verb.
    pub fn record(&self, method: &Method) {
        let counter = match *method {
            Method::POST => &self.post,
            Method::PUT => &self.put,
            Method::PATCH => &self.patch,
            Method::DELETE => &self.delete,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far; each verb is read on its own, so a snapshot taken under load may be off
    /// by writes in flight.
    pub fn snapshot(&self) -> WriteCounts {
        WriteCounts {
            post: self.post.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            patch: self.patch.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
        }
    }
}

impl WriteCounts {
    /// All writes, whatever the verb.
    pub fn total(&self) -> u64 {
        self.post + self.put + self.patch + self.delete
    }

    /// The writes made between `earlier` and `self`.
    pub fn since(&self, earlier: &WriteCounts) -> WriteCounts {
        WriteCounts {
            post: self.post.saturating_sub(earlier.post),
            put: self.put.saturating_sub(earlier.put),
            patch: self.patch.saturating_sub(earlier.patch),
            delete: self.delete.saturating_sub(earlier.delete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_verbs_are_counted_each_under_its_own_verb() {
        let c = WriteCounter::default();
        for m in [
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
        ] {
            c.record(&m);
        }
        let s = c.snapshot();
        assert_eq!(
            s,
            WriteCounts {
                post: 1,
                put: 1,
                patch: 2,
                delete: 1
            }
        );
        assert_eq!(s.total(), 5);
        assert_eq!(
            s.since(&WriteCounts {
                post: 1,
                ..Default::default()
            })
            .total(),
            4
        );
    }
}
