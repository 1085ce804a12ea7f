//! Writes this node's NodeNetworkReport with server-side apply, only when
//! its content changed, retrying with backoff while the API is unavailable.

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::report::{content_hash, report_identity, FIELD_MANAGER};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use std::future::Future;
use std::time::Duration;
use terway_hybrid_api::cross_site::ProbeResult;
use terway_hybrid_api::{NodeNetworkReport, NodeNetworkReportStatus};
use tokio::sync::watch;

/// Every API call gets this long; kube's own default waits for minutes.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{op}: {source}")]
    Api {
        op: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{op}: no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { op: &'static str },
    #[error("node {0} has no name or uid yet")]
    IncompleteNode(String),
}

async fn call<T>(op: &'static str, f: impl Future<Output = Result<T, kube::Error>>) -> Result<T, WriteError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|source| WriteError::Api { op, source }),
        Err(_) => Err(WriteError::Timeout { op }),
    }
}

/// Reads the agent's own Node (for its role and uid).
#[derive(Clone)]
pub struct NodeSource {
    nodes: Api<Node>,
    name: String,
}

impl NodeSource {
    pub fn new(client: Client, name: &str) -> Self {
        NodeSource { nodes: Api::all(client), name: name.to_owned() }
    }

    pub async fn get(&self) -> Result<Node, WriteError> {
        call("get node", self.nodes.get(&self.name)).await
    }
}

/// What should be written: the latest detection's status for the node.
#[derive(Clone, Debug)]
pub struct Desired {
    pub node: Node,
    pub status: NodeNetworkReportStatus,
}

/// The one status written: the latest detection with the latest probe
/// results. The status is applied whole by one field manager, so its two
/// sources meet here, in the only task that writes, and neither can
/// overwrite the other's part with a stale copy.
fn compose(detection: &Desired, probes: &[ProbeResult]) -> Desired {
    let mut d = detection.clone();
    d.status.probes = probes.to_vec();
    d
}

pub struct ReportWriter {
    reports: Api<NodeNetworkReport>,
    /// The Node uid the report's identity (labels, owner) was applied for.
    identity_for: Option<String>,
    status_hash: Option<u64>,
}

impl ReportWriter {
    pub fn new(client: Client) -> Self {
        ReportWriter { reports: Api::all(client), identity_for: None, status_hash: None }
    }

    /// Applies what changed since the last successful write; false when
    /// nothing did (and nothing was sent).
    pub async fn write(&mut self, desired: &Desired) -> Result<bool, WriteError> {
        let node_name = desired.node.metadata.name.clone().unwrap_or_default();
        let identity = report_identity(&desired.node).ok_or(WriteError::IncompleteNode(node_name.clone()))?;
        let uid = desired.node.metadata.uid.clone();
        let hash = content_hash(&desired.status);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut wrote = false;
        if self.identity_for != uid {
            call("apply report", self.reports.patch(&node_name, &params, &Patch::Apply(&identity))).await?;
            self.identity_for = uid;
            wrote = true;
        }
        if self.status_hash != Some(hash) {
            let body = serde_json::json!({
                "apiVersion": NodeNetworkReport::api_version(&()),
                "kind": NodeNetworkReport::kind(&()),
                "metadata": { "name": node_name },
                "status": desired.status,
            });
            call("apply report status", self.reports.patch_status(&node_name, &params, &Patch::Apply(&body)))
                .await?;
            self.status_hash = Some(hash);
            wrote = true;
        }
        Ok(wrote)
    }
}

/// Keeps the report in step with the latest desired content until shutdown.
///
/// A newer desired content replaces a pending one; failures are retried with
/// backoff. A write in flight when shutdown comes is finished, not dropped.
pub async fn run_writer(
    writer: ReportWriter,
    desired: watch::Receiver<Option<Desired>>,
    shutdown: watch::Receiver<bool>,
    metrics: Metrics,
) {
    let (_no_probes, probes) = watch::channel(Vec::new());
    run_writer_with_probes(writer, desired, probes, shutdown, metrics).await
}

/// [`run_writer`], the status carrying the latest probe results too
/// ([`compose`]); a change of either source wakes the writer, and the
/// content hash decides whether it writes.
pub async fn run_writer_with_probes(
    mut writer: ReportWriter,
    mut desired: watch::Receiver<Option<Desired>>,
    mut probes: watch::Receiver<Vec<ProbeResult>>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Metrics,
) {
    let mut backoff = Backoff::default();
    // A closed probe channel (no probing) would make `changed` return at once, forever.
    let mut probing = true;
    loop {
        let detection = desired.borrow_and_update().clone();
        let current = detection.map(|d| compose(&d, &probes.borrow_and_update()));
        if let Some(current) = current {
            match writer.write(&current).await {
                Ok(wrote) => {
                    backoff.reset();
                    if wrote {
                        metrics.report_written(crate::metrics::WRITE_SUCCESS);
                        tracing::info!(scenario = %current.status.scenario, plugin = %current.status.plugin, "report written");
                    }
                }
                Err(e) => {
                    metrics.report_written(crate::metrics::WRITE_ERROR);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "report not written");
                    tokio::select! {
                        // Retry with whatever is newest by then.
                        _ = tokio::time::sleep(delay) => continue,
                        changed = desired.changed() => if changed.is_ok() { continue } else { return },
                        changed = probes.changed(), if probing => probing = changed.is_ok(),
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { return },
            changed = probes.changed(), if probing => probing = changed.is_ok(),
            _ = shutdown.changed() => return,
        }
    }
}
