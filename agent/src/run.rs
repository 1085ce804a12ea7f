//! `terway-hybrid-agent run`: the DaemonSet's loop. Detect at start, again
//! when the kernel's links, addresses or routes change (debounced) and on a
//! slow resync; publish metrics and readiness; hand the report to the writer.
//!
//! The API being down never stops the loop: metrics and probes keep being
//! served, and the writer retries in the background.

use crate::collect::{self, Progress, Sources};
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::report::report_status;
use crate::watch::{ChangeSource, Debounce, KernelEvents};
use crate::writer::{self, Desired, NodeSource, ReportWriter};
use crate::{detect, node_context, probe, targets};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use terway_hybrid_api::{role_of, NodeDetection, Role};
use tokio::sync::watch;

/// How long a SIGTERM waits for an in-flight report write.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long one detection may take. A detection at 300,000 routes takes about
/// 2 s at the DaemonSet's CPU limit; BIRD and the ECS probe 1 s each at most.
pub const DETECTION_DEADLINE: Duration = Duration::from_secs(30);

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
    /// How long one detection may take ([`DETECTION_DEADLINE`]).
    pub detection_deadline: Duration,
    /// Probe the report's targets again this often (`--probe-interval`;
    /// zero: only on start and when they change).
    pub probe_interval: Duration,
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

/// The API side: the agent's Node, the report writer fed through a channel,
/// and the probing of the report's targets.
struct Api {
    node: NodeSource,
    desired: watch::Sender<Option<Desired>>,
    writer: tokio::task::JoinHandle<()>,
    /// This node's role, for the probe metrics' `peer_site`.
    role: watch::Sender<Option<Role>>,
    targets_watch: tokio::task::JoinHandle<()>,
}

impl Api {
    /// Starts the report writer, the watch of this node's report's probe
    /// targets and the probe loop, all ending when `stopped` turns true.
    fn start(
        client: kube::Client,
        cfg: &RunConfig,
        metrics: &Metrics,
        stopped: &watch::Receiver<bool>,
    ) -> Result<Api, RunError> {
        let name = cfg.node_name.clone().ok_or(RunError::NoNodeName)?;
        let (desired, rx) = watch::channel(None);
        let (results, probes) = watch::channel(Vec::new());
        let writer = tokio::spawn(writer::run_writer_with_probes(
            ReportWriter::new(client.clone()),
            rx,
            probes,
            stopped.clone(),
            metrics.clone(),
        ));
        // The targets of this node's report only: the cost per agent stays
        // constant however large the cluster grows.
        let (targets_tx, targets) = watch::channel(None);
        let targets_watch = tokio::spawn(targets::watch_own_targets(
            kube::Api::all(client.clone()),
            name.clone(),
            targets_tx,
        ));
        let (role, role_rx) = watch::channel(cfg.role);
        let probing = targets::ProbeLoop {
            node_name: name.clone(),
            interval: cfg.probe_interval,
            timeout: targets::PROBE_TIMEOUT,
        };
        tokio::spawn(targets::probe_loop(
            probing,
            targets,
            role_rx,
            results,
            metrics.clone(),
            stopped.clone(),
        ));
        Ok(Api { node: NodeSource::new(client, &name), desired, writer, role, targets_watch })
    }
}

pub async fn run(cfg: RunConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let client = if cfg.standalone { None } else { Some(kube::Client::try_default().await?) };
    run_with(cfg, client, shutdown).await
}

/// Collects and classifies, saying where it is in the [`Progress`]; blocks.
type Detector =
    Arc<dyn Fn(&RunConfig, Option<Role>, &Progress) -> Result<NodeDetection, String> + Send + Sync>;

/// [`run`] with the client made (`None` when standalone).
async fn run_with(
    cfg: RunConfig,
    client: Option<kube::Client>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_detecting(cfg, client, shutdown, Arc::new(detect_blocking)).await
}

/// [`run_with`] with the detection given, so a test can make one that hangs.
async fn run_detecting(
    cfg: RunConfig,
    client: Option<kube::Client>,
    shutdown: impl Future<Output = ()>,
    detector: Detector,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let health = Health::new(metrics.clone(), cfg.detection_deadline);
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
    tokio::spawn(probe::serve_on(probe_udp, probe_tcp, None, until_true(stopped.clone())));
    let mut events = KernelEvents::subscribe().map_err(RunError::Subscribe)?;

    let api = match client {
        None => None,
        Some(client) => Some(Api::start(client, &cfg, &metrics, &stopped)?),
    };

    let mut node: Option<Node> = None;
    tokio::pin!(shutdown);
    loop {
        // SIGTERM ends the process whatever this iteration waits on (the
        // API, or a detection stuck in a system call).
        let iteration = async {
            if let Some(api) = &api {
                match api.node.get().await {
                    Ok(n) => node = Some(n),
                    Err(e) => tracing::warn!(error = %e, "cannot read this node; keeping what was known"),
                }
            }
            let role = cfg.role.or(node.as_ref().map(|n| role_of(n, &cfg.cloud_node_selector)));
            if let Some(api) = &api {
                api.role.send_if_modified(|r| std::mem::replace(r, role) != role);
            }
            match detect_once(&cfg, role, &health, &detector).await {
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
                        let status =
                            report_status(&detection, role, Time(k8s_openapi::jiff::Timestamp::now()));
                        api.desired.send_replace(Some(Desired { node: node.clone(), status }));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "detection failed; retrying on the next change or resync")
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            () = iteration => {}
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
        api.targets_watch.abort();
        if tokio::time::timeout(SHUTDOWN_GRACE, api.writer).await.is_err() {
            tracing::warn!("the report write in flight did not finish in {SHUTDOWN_GRACE:?}");
        }
    }
    let _ = server.await;
    Ok(())
}

/// Collection and classification block on netlink, files and sockets: off
/// the runtime, under the deadline. A detection that overruns it keeps its
/// thread (a system call cannot be cancelled), is reported by `/healthz`, and
/// no new one starts until it ends, so stuck threads cannot pile up.
async fn detect_once(
    cfg: &RunConfig,
    role: Option<Role>,
    health: &Health,
    detector: &Detector,
) -> Result<(NodeDetection, Duration), String> {
    if let Some((took, step)) = health.running() {
        return Err(format!("the previous detection is still running, {step}, after {}s", took.as_secs()));
    }
    let progress = Progress::default();
    let running = health.detection_started(progress.clone());
    let (cfg, detector) = (cfg.clone(), detector.clone());
    let deadline = cfg.detection_deadline;
    let task = tokio::task::spawn_blocking(move || {
        let _running = running;
        let started = Instant::now();
        let detection = detector(&cfg, role, &progress)?;
        Ok((detection, started.elapsed()))
    });
    match tokio::time::timeout(deadline, task).await {
        Ok(joined) => joined.map_err(|e| format!("detection task: {e}"))?,
        Err(_) => Err(format!(
            "detection did not finish within {}s (stuck {}); /healthz fails until it does",
            deadline.as_secs_f32(),
            health.running().map_or("-", |(_, step)| step)
        )),
    }
}

fn detect_blocking(
    cfg: &RunConfig,
    role: Option<Role>,
    progress: &Progress,
) -> Result<NodeDetection, String> {
    let snapshot = collect::collect_tracked(&cfg.sources, progress).map_err(|e| e.to_string())?;
    progress.set("probing the ECS metadata service");
    let ctx = node_context(role, &cfg.ecs_metadata_url);
    progress.set("classifying");
    Ok(detect(&snapshot, &ctx))
}

async fn until_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET path` with HTTP/1.0: (status, body); (0, error) when nothing answers.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await?;
            std::io::Result::Ok(text)
        };
        match tokio::time::timeout(Duration::from_secs(5), exchange).await {
            Ok(Ok(text)) => {
                let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
            }
            Ok(Err(e)) => (0, e.to_string()),
            Err(_) => (0, "timed out".to_owned()),
        }
    }

    /// A detection that never returns (its thread blocked for good):
    /// `/healthz` fails once the deadline passes, naming where it is stuck,
    /// and a shutdown still ends `run` at once.
    #[test]
    fn a_stuck_detection_fails_liveness_and_does_not_hold_shutdown() {
        // A free port: bound and released; nothing else binds loopback ports here.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cfg = RunConfig {
            sources: Sources::new("/nonexistent"),
            metrics_addr: addr,
            probe_addr: "127.0.0.1:0".parse().unwrap(),
            standalone: true,
            node_name: None,
            role: None,
            cloud_node_selector: BTreeMap::new(),
            ecs_metadata_url: String::new(),
            resync: Duration::from_secs(300),
            debounce: Debounce::default(),
            detection_deadline: Duration::from_millis(300),
            probe_interval: Duration::ZERO,
        };
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Mutex::new(blocked);
        let detector: Detector = Arc::new(move |_, _, progress| {
            progress.set("asking BIRD (bird.ctl)");
            let _ = blocked.lock().unwrap().recv();
            Err("released".to_owned())
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (result, took) = runtime.block_on(async {
            let run = run_detecting(
                cfg,
                None,
                async {
                    let _ = stopped.await;
                },
                detector,
            );
            let probe = async {
                let start = Instant::now();
                let body = loop {
                    let (status, body) = get(addr, "/healthz").await;
                    if status == 503 {
                        break body;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "/healthz never failed: {status} {body}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                assert!(body.contains("stuck asking BIRD (bird.ctl)"), "{body}");
                let (status, body) = get(addr, "/readyz").await;
                assert_eq!((status, body.as_str()), (503, "no detection finished yet\n"));
                let _ = stop.send(());
                Instant::now()
            };
            let (result, stopped_at) = tokio::join!(run, probe);
            (result, stopped_at.elapsed())
        });
        runtime.shutdown_background();
        let _ = release.send(());
        result.unwrap();
        assert!(took < Duration::from_secs(2), "run took {took:?} to stop");
    }
}
