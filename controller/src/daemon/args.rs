//! The `terway-hybrid-controller` binary's flags (docs/contracts.md §13),
//! in the library so the deploy manifests' tests read their defaults from
//! clap's command rather than from the source text.

use crate::daemon::run::{Config, WebhookConfig};
use crate::daemon::webhook::ClientConfig;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// Turns the nodes' NodeNetworkReports into the cluster preflight, labels
/// the nodes, and opens the Terway gate on cloud nodes in waves (TerwayRollout
/// `default`). Run two replicas: one holds the leader Lease and acts.
#[derive(Parser)]
#[command(name = "terway-hybrid-controller", version, about, long_about = None)]
pub struct ControllerArgs {
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

/// The API server calls admission webhooks over https:// only.
#[derive(Debug, thiserror::Error)]
#[error("--webhook-url {0}: the API server calls webhooks over https:// only")]
pub struct WebhookUrlNotHttps(pub String);

impl ControllerArgs {
    pub fn config(self) -> Result<Config, WebhookUrlNotHttps> {
        if let Some(url) = self.webhook_url.as_deref().filter(|u| !u.starts_with("https://")) {
            return Err(WebhookUrlNotHttps(url.to_owned()));
        }
        let client = match self.webhook_url.clone() {
            Some(url) => ClientConfig::Url(url),
            None => ClientConfig::Service {
                namespace: self.lease_namespace.clone(),
                name: self.webhook_service.clone(),
                port: self.webhook_service_port,
            },
        };
        let webhook = WebhookConfig {
            addr: self.webhook_addr,
            client,
            ca_secret: (self.lease_namespace.clone(), self.webhook_ca_secret.clone()),
            rotate: Duration::from_secs(self.webhook_cert_rotate_seconds.max(1)),
        };
        Ok(Config {
            webhook,
            metrics_addr: self.metrics_addr,
            lease: (!self.no_leader_election).then_some((self.lease_namespace, self.lease_name)),
            identity: self.identity,
            coalesce: Duration::from_millis(500),
            resync: Duration::from_secs(self.resync_seconds.max(1)),
            probe_port: self.probe_port,
        })
    }
}
