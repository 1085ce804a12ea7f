//! Probing the other site in `run` (docs/architecture.md, "Probing between
//! the sites"): the agent watches its own report's `spec.probeTargets` (the
//! controller's choice, docs/contracts.md §3), probes them on start, on
//! change and on a slow timer, and hands the results to the report writer,
//! which writes them with the detection as one status.
//!
//! Host targets are probed from here (the agent is hostNetwork). Pod targets
//! are probed by this node's responder pod, the `Pod` target that names this
//! node itself: the agent asks it over TCP ([`probe::delegate`]), since it
//! has no pod address to send from and no privilege to get one.

use crate::metrics::Metrics;
use crate::probe::{self, PeerProbe, RouteEvidence};
use crate::text;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::Api;
use std::net::SocketAddr;
use std::time::Duration;
use terway_hybrid_api::cross_site::{
    ProbePath, ProbeResult, ProbeTarget, MAX_PROBE_RESULTS, MAX_PROBE_TARGETS,
};
use terway_hybrid_api::{NodeNetworkReport, Role};
use tokio::sync::watch;

/// How long each peer may take, host and pod path alike.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A watch the server does not end by itself within this long is dead.
const WATCH_IDLE: Duration = Duration::from_secs(330);
const WATCH_SECONDS: u32 = 290;
const MAX_ROUTE: usize = 256;
const MAX_NOTE: usize = 512;

/// What one round probes: the host targets, the pod targets, and the
/// responder pod that sends the pod-path probes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Round {
    pub host: Vec<ProbeTarget>,
    pub pod: Vec<ProbeTarget>,
    pub responder: Option<ProbeTarget>,
}

/// Splits the controller's targets (at most [`MAX_PROBE_TARGETS`] are read).
fn round_of(targets: &[ProbeTarget], own_node: &str) -> Round {
    let mut round = Round::default();
    for t in targets.iter().take(MAX_PROBE_TARGETS) {
        match t.path {
            ProbePath::Host => round.host.push(t.clone()),
            ProbePath::Pod if t.node == own_node => {
                round.responder.get_or_insert_with(|| t.clone());
            }
            ProbePath::Pod => round.pod.push(t.clone()),
        }
    }
    round
}

/// `via GATEWAY dev DEVICE proto PROTOCOL`, bounded.
fn render_route(r: &RouteEvidence) -> String {
    let via = r.gateway.map(|g| format!("via {g} ")).unwrap_or_default();
    let line = format!("{via}dev {} proto {}", r.device.as_deref().unwrap_or("?"), r.protocol);
    text::bounded(&line, MAX_ROUTE).into_owned()
}

/// A target's result from its probe, or unreachable with `why` when it
/// could not be probed.
fn result_of(target: &ProbeTarget, probe: Result<&PeerProbe, &str>, now: &Time) -> ProbeResult {
    let mut r = ProbeResult {
        node: target.node.clone(),
        address: target.address.clone(),
        path: target.path,
        reachable: false,
        rtt_ms: None,
        path_mtu: None,
        route: None,
        note: None,
        probed: now.clone(),
    };
    match probe {
        Ok(p) => {
            r.reachable = p.reachable;
            r.rtt_ms = p.rtt_ms.filter(|v| v.is_finite());
            r.path_mtu = p.path_mtu;
            r.route = p.route.as_ref().map(render_route);
            r.note = p.note.as_deref().map(|n| text::bounded(n, MAX_NOTE).into_owned());
        }
        Err(why) => r.note = Some(text::bounded(why, MAX_NOTE).into_owned()),
    }
    r
}

/// One round: host targets from here, pod targets through the responder
/// pod, all at once, each within `timeout`. Results in the targets' order,
/// host ones first, at most [`MAX_PROBE_RESULTS`].
async fn probe_round(round: &Round, timeout: Duration) -> Vec<ProbeResult> {
    let parse = |t: &ProbeTarget| t.address.parse::<SocketAddr>().ok();
    let host_peers: Vec<SocketAddr> = round.host.iter().filter_map(parse).collect();
    let pod_peers: Vec<SocketAddr> = round.pod.iter().filter_map(parse).collect();
    let host = probe::probe_all(&host_peers, timeout);
    let pod = async {
        match (&round.responder, pod_peers.is_empty()) {
            (_, true) => Ok(vec![]),
            (None, false) => Err("no responder pod on this node to send pod-network probes from".to_owned()),
            (Some(r), false) => match r.address.parse::<SocketAddr>() {
                Ok(at) => probe::delegate(at, &pod_peers, timeout)
                    .await
                    .map_err(|e| format!("this node's responder pod ({at}) did not probe: {e}")),
                Err(_) => Err(format!("this node's responder pod has no IP:PORT address ({:?})", r.address)),
            },
        }
    };
    let (host, pod) = tokio::join!(host, pod);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut out = Vec::new();
    let mut answers = host.iter();
    for t in &round.host {
        match parse(t) {
            Some(_) => out.push(result_of(t, answers.next().ok_or("no result"), &now)),
            None => out.push(result_of(t, Err("the address is not IP:PORT"), &now)),
        }
    }
    let mut answers = pod.as_ref().map(|v| v.iter());
    for t in &round.pod {
        let result = match (&mut answers, parse(t)) {
            (_, None) => Err("the address is not IP:PORT".to_owned()),
            (Ok(a), Some(_)) => a.next().ok_or_else(|| "no result".to_owned()),
            (Err(e), Some(_)) => Err(e.clone()),
        };
        match result {
            Ok(p) => out.push(result_of(t, Ok(p), &now)),
            Err(e) => out.push(result_of(t, Err(&e), &now)),
        }
    }
    out.truncate(MAX_PROBE_RESULTS);
    out
}

/// The site this node's targets are on (the other one).
pub fn peer_site(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Cloud) => "on-prem",
        Some(Role::OnPrem) => "cloud",
        None => "unknown",
    }
}

#[derive(Debug, Clone)]
pub struct ProbeLoop {
    pub node_name: String,
    /// Probe again this often (with up to a tenth more, so agents started
    /// together spread out); zero: only on start and on change.
    pub interval: Duration,
    pub timeout: Duration,
}

/// Probes whenever the targets change and on the timer, until `shutdown`.
/// Nothing is probed before the targets are known (the first list of the
/// report). `role` is this node's, for the `peer_site` label.
pub async fn probe_loop(
    cfg: ProbeLoop,
    mut targets: watch::Receiver<Option<Vec<ProbeTarget>>>,
    role: watch::Receiver<Option<Role>>,
    results: watch::Sender<Vec<ProbeResult>>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<Round> = None;
    loop {
        let current = targets.borrow_and_update().clone();
        if let Some(list) = current {
            let round = round_of(&list, &cfg.node_name);
            let probed = tokio::select! {
                r = probe_round(&round, cfg.timeout) => r,
                _ = shutdown.changed() => return,
            };
            if last.as_ref() != Some(&round) {
                tracing::info!(host = round.host.len(), pod = round.pod.len(), "probe targets");
            }
            metrics.observe_probes(&probed, peer_site(*role.borrow()));
            results.send_replace(probed);
            last = Some(round);
        }
        let timer = async {
            if cfg.interval.is_zero() || last.is_none() {
                std::future::pending::<()>().await;
            }
            let jitter = cfg.interval.mul_f64(rand::random::<f64>() / 10.0);
            tokio::time::sleep(cfg.interval + jitter).await;
        };
        tokio::select! {
            changed = targets.changed() => if changed.is_err() { return },
            () = timer => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Keeps `tx` at this node's report's `spec.probeTargets`: a list and then a
/// watch of the one report (`fieldSelector=metadata.name=<node>`), again
/// after any error, with backoff. A report that does not exist has none.
pub async fn watch_own_targets(
    reports: Api<NodeNetworkReport>,
    node_name: String,
    tx: watch::Sender<Option<Vec<ProbeTarget>>>,
) {
    let field = format!("metadata.name={node_name}");
    let mut backoff = crate::backoff::Backoff::default();
    let set = |report: Option<&NodeNetworkReport>| {
        let mut list = report.map(|r| r.spec.probe_targets.clone()).unwrap_or_default();
        list.truncate(MAX_PROBE_TARGETS);
        tx.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&list);
            *current = Some(list);
            changed
        });
    };
    loop {
        let listed = tokio::time::timeout(
            crate::writer::REQUEST_TIMEOUT,
            reports.list(&ListParams::default().fields(&field)),
        )
        .await;
        let version = match listed {
            Ok(Ok(list)) => {
                set(list.items.first());
                list.metadata.resource_version.unwrap_or_default()
            }
            Ok(Err(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot list this node's report for its probe targets");
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let params = WatchParams::default().fields(&field).timeout(WATCH_SECONDS);
        let stream = match reports.watch(&params, &version).await {
            Ok(s) => s,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot watch this node's report");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        futures::pin_mut!(stream);
        loop {
            match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
                Ok(Some(Ok(WatchEvent::Added(r) | WatchEvent::Modified(r)))) => set(Some(&r)),
                Ok(Some(Ok(WatchEvent::Deleted(_)))) => set(None),
                Ok(Some(Ok(WatchEvent::Bookmark(_)))) => {}
                // Expired (410) or any other error: list again.
                Ok(Some(Ok(WatchEvent::Error(_)) | Err(_))) | Ok(None) | Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(node: &str, address: &str, path: ProbePath) -> ProbeTarget {
        ProbeTarget { node: node.into(), address: address.into(), path }
    }

    #[test]
    fn a_round_splits_host_pod_and_the_own_responder() {
        let targets = vec![
            t("ecs-1", "10.1.0.1:9799", ProbePath::Host),
            t("idc-0", "172.16.0.1:9799", ProbePath::Pod),
            t("ecs-1", "172.17.0.1:9799", ProbePath::Pod),
            t("idc-0", "172.16.0.9:9799", ProbePath::Pod),
        ];
        let round = round_of(&targets, "idc-0");
        assert_eq!(round.host, targets[..1]);
        assert_eq!(round.responder.as_ref(), Some(&targets[1]), "the first one naming this node");
        assert_eq!(round.pod, targets[2..3]);
        let many: Vec<ProbeTarget> =
            (0..40).map(|i| t(&format!("n{i}"), "10.0.0.1:1", ProbePath::Host)).collect();
        assert_eq!(round_of(&many, "x").host.len(), MAX_PROBE_TARGETS);
    }

    #[test]
    fn results_are_bounded_and_routes_rendered() {
        let probe = PeerProbe {
            peer: "10.1.0.1:9799".parse().unwrap(),
            reachable: true,
            rtt_ms: Some(f64::NAN),
            path_mtu: Some(1400),
            route: Some(RouteEvidence {
                gateway: Some("10.0.0.254".parse().unwrap()),
                device: Some("x".repeat(1000)),
                protocol: "bird".into(),
                source: None,
            }),
            note: Some("n".repeat(5000)),
        };
        let now = Time(Timestamp::UNIX_EPOCH);
        let r = result_of(&t("ecs-1", "10.1.0.1:9799", ProbePath::Host), Ok(&probe), &now);
        assert!(r.reachable);
        assert_eq!(r.rtt_ms, None, "NaN is no figure (and no valid JSON number)");
        assert_eq!(r.path_mtu, Some(1400));
        assert!(r.route.as_ref().unwrap().starts_with("via 10.0.0.254 dev xxx"));
        assert!(r.route.as_ref().unwrap().len() <= MAX_ROUTE + 40);
        assert!(r.note.as_ref().unwrap().len() <= MAX_NOTE + 40);
        let plain = RouteEvidence { gateway: None, device: None, protocol: "kernel".into(), source: None };
        assert_eq!(render_route(&plain), "dev ? proto kernel");
        let failed = result_of(&t("ecs-1", "bad", ProbePath::Pod), Err("why"), &now);
        assert_eq!(
            (failed.reachable, failed.note.as_deref(), failed.path),
            (false, Some("why"), ProbePath::Pod)
        );
    }

    /// Without a responder pod, pod targets fail with the reason (and host
    /// targets with an unusable address say so), without sending anything.
    #[tokio::test]
    async fn pod_targets_without_a_responder_say_why() {
        let round = Round {
            host: vec![t("ecs-1", "not-an-address", ProbePath::Host)],
            pod: vec![t("ecs-1", "172.17.0.1:9799", ProbePath::Pod)],
            responder: None,
        };
        let results = probe_round(&round, Duration::from_millis(100)).await;
        let notes: Vec<(&str, Option<&str>)> =
            results.iter().map(|r| (r.address.as_str(), r.note.as_deref())).collect();
        assert_eq!(
            notes,
            [
                ("not-an-address", Some("the address is not IP:PORT")),
                ("172.17.0.1:9799", Some("no responder pod on this node to send pod-network probes from")),
            ]
        );
    }
}
