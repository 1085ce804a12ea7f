//! `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`.
//!
//! `/readyz` answers 200 only once a detection finished and no error-severity
//! node check fails, so the DaemonSet's READY column counts the nodes that
//! pass preflight. `/healthz` answers 200 unless a detection has been stuck
//! past its deadline: then a restart is the only way out.
//!
//! The port is on the host network, so the server bounds what any client can
//! hold: a connection must send its request head within
//! [`HEADER_READ_TIMEOUT`] (and, kept alive, its next one within the same
//! time), lives at most [`MAX_CONNECTION_AGE`], and at most
//! [`MAX_CONNECTIONS`] are open: a new one closes the oldest, so a flood of
//! idle connections can neither exhaust the file descriptors nor lock the
//! kubelet's probes out.

use crate::collect::Progress;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use terway_hybrid_api::http::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};
use tokio::task::AbortHandle;

/// A request head (or, on a kept-alive connection, the next one) must arrive
/// within this; the kubelet and Prometheus send theirs at once.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Then the connection finishes the request in flight and closes (a client
/// that never reads its answer cannot hold it longer); Prometheus reconnects.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// How long a connection closing at its age may take to finish its answer.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Open connections; the default limit of 1,024 file descriptors leaves
/// plenty beside them for netlink, the API client and the files read.
const MAX_CONNECTIONS: usize = 128;

#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    detected: Arc<AtomicBool>,
    /// The detection running now: when it started and where it is.
    running: Arc<Mutex<Option<(Instant, Progress)>>>,
    deadline: Duration,
}

/// Marks a detection as running until dropped (when its thread ends, even
/// by a panic).
pub struct Running(Arc<Mutex<Option<(Instant, Progress)>>>);

impl Drop for Running {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

impl Health {
    /// `deadline`: how long one detection may run before `/healthz` fails.
    pub fn new(metrics: Metrics, deadline: Duration) -> Self {
        Health { metrics, detected: Arc::new(AtomicBool::new(false)), running: Default::default(), deadline }
    }

    pub fn detection_finished(&self) {
        self.detected.store(true, Ordering::Relaxed);
    }

    /// A detection starts; it counts as running until the guard is dropped.
    pub fn detection_started(&self, progress: Progress) -> Running {
        *lock(&self.running) = Some((Instant::now(), progress));
        Running(self.running.clone())
    }

    /// How long the running detection has run and where it is, if one runs.
    pub fn running(&self) -> Option<(Duration, &'static str)> {
        let running = lock(&self.running);
        running.as_ref().map(|(since, progress)| (since.elapsed(), progress.step()))
    }

    /// Why the process is not healthy, if it is not.
    pub fn stuck(&self) -> Option<String> {
        stuck_message(self.running(), self.deadline)
    }

    pub fn ready(&self) -> bool {
        self.detected.load(Ordering::Relaxed) && self.metrics.node_ready()
    }
}

/// A detection that overran its deadline is stuck in a system call no
/// timeout reaches (a hung mount, say): only a restart frees it.
fn stuck_message(running: Option<(Duration, &str)>, deadline: Duration) -> Option<String> {
    let (took, step) = running.filter(|(took, _)| *took > deadline)?;
    Some(format!(
        "a detection has been stuck {step} for {}s (deadline {}s)\n",
        took.as_secs(),
        deadline.as_secs_f32()
    ))
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], h.metrics.render())
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    match h.stuck() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
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

/// Serves until `shutdown` resolves; then every open connection is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(health);
    // Open connections by age (ids only grow): the first is the oldest.
    let open: Arc<Mutex<BTreeMap<u64, AbortHandle>>> = Default::default();
    tokio::pin!(shutdown);
    for id in 0u64.. {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: the connection is still queued; try again shortly.
                    tracing::warn!(error = %e, "accepting a connection on the metrics port");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut connections = lock(&open);
        if connections.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = connections.pop_first() {
                oldest.abort();
            }
        }
        let service = TowerToHyperService::new(router.clone());
        let registry = open.clone();
        // Registered under the lock the task must take to deregister, so it
        // cannot finish before it is registered.
        let task = tokio::spawn(async move {
            serve_connection(stream, service).await;
            lock(&registry).remove(&id);
        });
        connections.insert(id, task.abort_handle());
    }
    for (_, connection) in std::mem::take(&mut *lock(&open)) {
        connection.abort();
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve_connection(stream: tokio::net::TcpStream, service: TowerToHyperService<Router>) {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_past_the_deadline() {
        let deadline = Duration::from_secs(30);
        assert_eq!(stuck_message(None, deadline), None);
        assert_eq!(stuck_message(Some((Duration::from_secs(29), "reading routes")), deadline), None);
        let why = stuck_message(Some((Duration::from_secs(31), "asking BIRD (bird.ctl)")), deadline).unwrap();
        assert_eq!(why, "a detection has been stuck asking BIRD (bird.ctl) for 31s (deadline 30s)\n");
    }

    #[test]
    fn running_ends_with_its_guard() {
        let h = Health::new(Metrics::new(), Duration::ZERO);
        let progress = Progress::default();
        let guard = h.detection_started(progress.clone());
        progress.set("reading routes (netlink)");
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.stuck().unwrap().contains("reading routes"));
        drop(guard);
        assert_eq!(h.running(), None);
        assert_eq!(h.stuck(), None);
    }
}
