//! `terway-hybrid-controller`: see `--help`.

use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use terway_hybrid_controller::daemon::run::{run, Config, WebhookConfig};
use terway_hybrid_controller::daemon::webhook::ClientConfig;

/// Turns the nodes' NodeNetworkReports into the cluster preflight, labels
/// the nodes, and opens the Terway gate on cloud nodes in waves (TerwayRollout
/// `default`). Run two replicas: one holds the leader Lease and acts.
#[derive(Parser)]
#[command(name = "terway-hybrid-controller", version, about, long_about = None)]
struct Cli {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9798")]
    metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease (the pod's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "terway-hybrid")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "terway-hybrid-controller")]
    lease_name: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "terway-hybrid-controller")]
    identity: String,
    /// Act without leader election (only ever with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Reconcile at least this often, in seconds.
    #[arg(long, default_value_t = 30)]
    resync_seconds: u64,
    /// Where the Terway gate's admission webhook is served (HTTPS).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// The URL the API server calls the webhook at, when it reaches the
    /// controller directly; without it, the Service --webhook-service.
    #[arg(long, value_name = "https://HOST:PORT/mutate/terway-gate")]
    webhook_url: Option<String>,
    /// The Service in front of the controller's pods (in the pod's namespace).
    #[arg(long, value_name = "NAME", default_value = "terway-hybrid-controller")]
    webhook_service: String,
    /// The Service's port that leads to --webhook-addr.
    #[arg(long, value_name = "PORT", default_value = "9443")]
    webhook_service_port: u16,
    /// The Secret (in the pod's namespace) holding the webhook's CA; created when missing.
    #[arg(long, value_name = "NAME", default_value = "terway-hybrid-webhook-ca")]
    webhook_ca_secret: String,
    /// Issue a new serving certificate this often, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    webhook_cert_rotate_seconds: u64,
    /// The port the agents (`run --probe-addr`) and the responder pods
    /// answer probes on: the port of every probe target the controller assigns.
    #[arg(long, value_name = "PORT", default_value_t = 9799)]
    probe_port: u16,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Some(url) = cli.webhook_url.as_deref().filter(|u| !u.starts_with("https://")) {
        eprintln!("error: --webhook-url {url}: the API server calls webhooks over https:// only");
        return ExitCode::from(2);
    }
    let client = match cli.webhook_url.clone() {
        Some(url) => ClientConfig::Url(url),
        None => ClientConfig::Service {
            namespace: cli.lease_namespace.clone(),
            name: cli.webhook_service.clone(),
            port: cli.webhook_service_port,
        },
    };
    let webhook = WebhookConfig {
        addr: cli.webhook_addr,
        client,
        ca_secret: (cli.lease_namespace.clone(), cli.webhook_ca_secret.clone()),
        rotate: Duration::from_secs(cli.webhook_cert_rotate_seconds.max(1)),
    };
    let cfg = Config {
        webhook,
        metrics_addr: cli.metrics_addr,
        lease: (!cli.no_leader_election).then_some((cli.lease_namespace, cli.lease_name)),
        identity: cli.identity,
        coalesce: Duration::from_millis(500),
        resync: Duration::from_secs(cli.resync_seconds.max(1)),
        probe_port: cli.probe_port,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        run(cfg, shutdown).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
