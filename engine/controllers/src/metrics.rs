//! Prometheus metrics (text format) and the `/metrics`, `/healthz`, `/readyz` endpoints.
//!
//! Counters are kept per controller: reconciles, errors, and a histogram of reconcile durations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::error::{Error, Result};

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Clone, Debug, Default)]
struct Counts {
    reconciles: u64,
    errors: u64,
    duration_sum: f64,
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
}

/// The controllers' metrics and readiness.
#[derive(Debug, Default)]
pub struct Metrics {
    controllers: Mutex<BTreeMap<String, Counts>>,
    ready: AtomicBool,
}

impl Metrics {
    /// Records one reconcile of `controller`.
    pub fn observe(&self, controller: &str, took: Duration, ok: bool) {
        let mut all = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.entry(controller.to_owned()).or_default();
        c.reconciles += 1;
        if !ok {
            c.errors += 1;
        }
        let secs = took.as_secs_f64();
        c.duration_sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                c.buckets[i] += 1;
            }
        }
    }

    /// `/readyz` answers 200 from now on.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let all = self
            .controllers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP strata_reconciles_total Reconciles run, per controller."
        );
        let _ = writeln!(out, "# TYPE strata_reconciles_total counter");
        for (name, c) in &all {
            let _ = writeln!(
                out,
                "strata_reconciles_total{{controller=\"{name}\"}} {}",
                c.reconciles
            );
        }
        let _ = writeln!(
            out,
            "# HELP strata_reconcile_errors_total Reconciles that failed, per controller."
        );
        let _ = writeln!(out, "# TYPE strata_reconcile_errors_total counter");
        for (name, c) in &all {
            let _ = writeln!(
                out,
                "strata_reconcile_errors_total{{controller=\"{name}\"}} {}",
                c.errors
            );
        }
        let _ = writeln!(
            out,
            "# HELP strata_reconcile_duration_seconds Reconcile duration, per controller."
        );
        let _ = writeln!(out, "# TYPE strata_reconcile_duration_seconds histogram");
        for (name, c) in &all {
            for (bound, count) in BUCKETS.iter().zip(c.buckets) {
                let _ = writeln!(
                    out,
                    "strata_reconcile_duration_seconds_bucket{{controller=\"{name}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "strata_reconcile_duration_seconds_bucket{{controller=\"{name}\",le=\"+Inf\"}} {}",
                c.reconciles
            );
            let _ = writeln!(
                out,
                "strata_reconcile_duration_seconds_sum{{controller=\"{name}\"}} {}",
                c.duration_sum
            );
            let _ = writeln!(
                out,
                "strata_reconcile_duration_seconds_count{{controller=\"{name}\"}} {}",
                c.reconciles
            );
        }
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    tracing::info!(%addr, "serving metrics and health endpoints");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Metrics { addr, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn reconciles_errors_and_durations_are_exposed_per_controller() {
        let m = Metrics::default();
        m.observe("composite", Duration::from_millis(3), true);
        m.observe("composite", Duration::from_millis(200), false);
        let text = m.render();
        assert!(
            text.contains("strata_reconciles_total{controller=\"composite\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("strata_reconcile_errors_total{controller=\"composite\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "strata_reconcile_duration_seconds_bucket{controller=\"composite\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "strata_reconcile_duration_seconds_bucket{controller=\"composite\",le=\"0.5\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn readiness_starts_false() {
        let m = Metrics::default();
        assert!(!m.is_ready());
        m.set_ready();
        assert!(m.is_ready());
    }
}
