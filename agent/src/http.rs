//! `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`.
//!
//! `/readyz` answers 200 only once a detection finished and no error-severity
//! node check fails, so the DaemonSet's READY column counts the nodes that
//! pass preflight.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    detected: Arc<AtomicBool>,
}

impl Health {
    pub fn new(metrics: Metrics) -> Self {
        Health { metrics, detected: Arc::new(AtomicBool::new(false)) }
    }

    pub fn detection_finished(&self) {
        self.detected.store(true, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.detected.load(Ordering::Relaxed) && self.metrics.node_ready()
    }
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], h.metrics.render())
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready() {
        (StatusCode::OK, "ready\n")
    } else if !h.detected.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "no detection finished yet\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "a node check with severity error fails: see terway_hybrid_agent_check_passed\n",
        )
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health)).with_graceful_shutdown(shutdown).await
}
