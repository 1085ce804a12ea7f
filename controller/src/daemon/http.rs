//! `/metrics`, `/healthz` and `/readyz` on `--metrics-addr` (default :9798).
//! Ready once every watch delivered its first list, on the leader and on the
//! standby alike (the standby must be able to take over at once).

use crate::daemon::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use terway_hybrid_api::http::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};

#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    synced: Arc<AtomicBool>,
}

impl Health {
    pub fn new(metrics: Metrics) -> Self {
        Health { metrics, synced: Arc::new(AtomicBool::new(false)) }
    }

    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route(
            METRICS_PATH,
            get(|State(h): State<Health>| async move {
                ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], h.metrics.render())
            }),
        )
        .route(HEALTHZ_PATH, get(|| async { "ok\n" }))
        .route(
            READYZ_PATH,
            get(|State(h): State<Health>| async move {
                if h.synced.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready\n").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet\n").into_response()
                }
            }),
        )
        .with_state(health)
}
