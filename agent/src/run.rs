//! `terway-hybrid-agent run`: the DaemonSet's loop. Detect at start, again
//! when the kernel's links, addresses or routes change (debounced) and on a
//! slow resync; publish metrics and readiness; hand the report to the writer.
//!
//! The API being down never stops the loop: metrics and probes keep being
//! served, and the writer retries in the background.

use crate::checks::NodeContext;
use crate::collect::{self, Sources};
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::report::report_status;
use crate::watch::{ChangeSource, Debounce, KernelEvents};
use crate::writer::{self, Desired, NodeSource, ReportWriter};
use crate::{detect, ecs, probe};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use terway_hybrid_api::{role_of, NodeDetection, Role};
use tokio::sync::watch;

/// How long a SIGTERM waits for an in-flight report write.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub sources: Sources,
    pub metrics_addr: SocketAddr,
    /// Where probes from the other site are answered (TCP and UDP).
    pub probe_addr: SocketAddr,
    /// No Kubernetes API at all: detection, checks, metrics and probes only.
    pub standalone: bool,
    /// The node this agent runs on (`NODE_NAME`, from the downward API).
    pub node_name: Option<String>,
    /// Overrides the role read from the Node's labels (and gives one in standalone mode).
    pub role: Option<Role>,
    /// The labels that make this node a cloud node (the TerwayRollout's
    /// `cloudNodeSelector`, which the controller reads).
    pub cloud_node_selector: BTreeMap<String, String>,
    pub ecs_metadata_url: String,
    pub resync: Duration,
    pub debounce: Debounce,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("subscribe to netlink link/address/route changes: {0}")]
    Subscribe(std::io::Error),
    #[error("netlink change notifications: {0}")]
    Events(std::io::Error),
    #[error("NODE_NAME is not set: set it from the downward API (spec.nodeName), or run with --standalone")]
    NoNodeName,
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// The API side: the agent's Node, and the report writer fed through a channel.
struct Api {
    node: NodeSource,
    desired: watch::Sender<Option<Desired>>,
    writer: tokio::task::JoinHandle<()>,
}

pub async fn run(cfg: RunConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let client = if cfg.standalone { None } else { Some(kube::Client::try_default().await?) };
    run_with(cfg, client, shutdown).await
}

/// [`run`] with the client made (`None` when standalone).
async fn run_with(
    cfg: RunConfig,
    client: Option<kube::Client>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let health = Health::new(metrics.clone());
    let listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .map_err(|source| RunError::Bind { addr: cfg.metrics_addr, source })?;
    tracing::info!(addr = %cfg.metrics_addr, standalone = cfg.standalone, "serving /metrics, /healthz, /readyz");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(http::serve(listener, health.clone(), until_true(stopped.clone())));
    let bind = |source| RunError::Bind { addr: cfg.probe_addr, source };
    let probe_udp = tokio::net::UdpSocket::bind(cfg.probe_addr).await.map_err(bind)?;
    let probe_tcp = tokio::net::TcpListener::bind(cfg.probe_addr).await.map_err(bind)?;
    tracing::info!(addr = %cfg.probe_addr, "answering probes (TCP and UDP)");
    tokio::spawn(probe::serve_on(probe_udp, probe_tcp, until_true(stopped.clone())));
    let mut events = KernelEvents::subscribe().map_err(RunError::Subscribe)?;

    let api = match client {
        None => None,
        Some(client) => {
            let name = cfg.node_name.clone().ok_or(RunError::NoNodeName)?;
            let (desired, rx) = watch::channel(None);
            let writer = tokio::spawn(writer::run_writer(
                ReportWriter::new(client.clone()),
                rx,
                stopped.clone(),
                metrics.clone(),
            ));
            Some(Api { node: NodeSource::new(client, &name), desired, writer })
        }
    };

    let mut node: Option<Node> = None;
    tokio::pin!(shutdown);
    loop {
        if let Some(api) = &api {
            match api.node.get().await {
                Ok(n) => node = Some(n),
                Err(e) => tracing::warn!(error = %e, "cannot read this node; keeping what was known"),
            }
        }
        let role = cfg.role.or(node.as_ref().map(|n| role_of(n, &cfg.cloud_node_selector)));
        match detect_once(&cfg, role).await {
            Ok((detection, took)) => {
                metrics.observe(&detection, took.as_secs_f64());
                health.detection_finished();
                tracing::info!(
                    scenario = %detection.detection.scenario,
                    plugin = %detection.detection.plugin,
                    ms = took.as_millis() as u64,
                    "detected"
                );
                if let (Some(api), Some(node), Some(role)) = (&api, &node, role) {
                    let status = report_status(&detection, role, Time(k8s_openapi::jiff::Timestamp::now()));
                    api.desired.send_replace(Some(Desired { node: node.clone(), status }));
                }
            }
            Err(e) => tracing::error!(error = %e, "detection failed; retrying on the next change or resync"),
        }

        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(cfg.resync) => {}
            r = events.changed() => {
                r.map_err(RunError::Events)?;
                tokio::select! {
                    _ = &mut shutdown => break,
                    r = cfg.debounce.settle(&mut events) => r.map_err(RunError::Events)?,
                }
            }
        }
    }

    tracing::info!("shutting down");
    let _ = stop.send(true);
    if let Some(api) = api {
        if tokio::time::timeout(SHUTDOWN_GRACE, api.writer).await.is_err() {
            tracing::warn!("the report write in flight did not finish in {SHUTDOWN_GRACE:?}");
        }
    }
    let _ = server.await;
    Ok(())
}

/// Collection and classification block on netlink and files: off the runtime.
async fn detect_once(cfg: &RunConfig, role: Option<Role>) -> Result<(NodeDetection, Duration), String> {
    let sources = cfg.sources.clone();
    let url = cfg.ecs_metadata_url.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let snapshot = collect::collect(&sources).map_err(|e| e.to_string())?;
        let ecs_metadata = (role == Some(Role::Cloud)).then(|| ecs::probe(&url, ecs::TIMEOUT));
        let detection = detect(&snapshot, &NodeContext { role, ecs_metadata });
        Ok((detection, started.elapsed()))
    })
    .await
    .map_err(|e| format!("detection task: {e}"))?
}

async fn until_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
