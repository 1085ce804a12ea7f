//! The agent's Prometheus metrics (docs/contracts.md §8), plus the process
//! metrics of the `prometheus` crate.

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use terway_hybrid_api::cross_site::{ProbePath, ProbeResult};
use terway_hybrid_api::{CheckStatus, NodeDetection};

/// The `result` of a NodeNetworkReport write (`report_writes_total`).
pub const WRITE_SUCCESS: &str = "success";
pub const WRITE_ERROR: &str = "error";
pub const REPORT_WRITE_RESULTS: [&str; 2] = [WRITE_SUCCESS, WRITE_ERROR];

/// Cheap to clone: every field is a handle to the same registered metric.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    scenario_info: IntGaugeVec,
    node_ready: IntGauge,
    check_passed: IntGaugeVec,
    detection_duration: Histogram,
    report_writes: IntCounterVec,
    bgp_session_up: IntGaugeVec,
    bgp_imported_routes: IntGaugeVec,
    /// No labels: a vector only so that an unseen MTU leaves no series.
    pod_mtu: IntGaugeVec,
    probe_success: GaugeVec,
    probe_rtt: GaugeVec,
    probe_path_mtu: IntGaugeVec,
    build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let scenario_info = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_scenario_info",
                "The detected scenario and plugin of this node (always 1)",
            ),
            &["scenario", "plugin"],
        )
        .expect("valid metric");
        let node_ready = IntGauge::new(
            "terway_hybrid_agent_node_ready",
            "1 when a detection finished and no error-severity node check fails",
        )
        .expect("valid metric");
        let check_passed = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_check_passed",
                "1 unless the node check failed (skipped checks count as 1)",
            ),
            &["check"],
        )
        .expect("valid metric");
        let detection_duration = Histogram::with_opts(
            HistogramOpts::new(
                "terway_hybrid_agent_detection_duration_seconds",
                "Time to collect the node's state and classify it",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .expect("valid metric");
        let report_writes = IntCounterVec::new(
            Opts::new("terway_hybrid_agent_report_writes_total", "NodeNetworkReport writes by result"),
            &["result"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("terway_hybrid_agent_build_info", "The agent's version (always 1)"),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // One series per BGP session: at most 32 per node (the report's bound).
        let bgp_session_up = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_bgp_session_up",
                "1 while the BGP session with the peer is Established",
            ),
            &["peer"],
        )
        .expect("valid metric");
        let bgp_imported_routes = IntGaugeVec::new(
            Opts::new("terway_hybrid_agent_bgp_imported_routes", "Routes imported from the BGP peer"),
            &["peer"],
        )
        .expect("valid metric");
        let pod_mtu = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_pod_mtu_bytes",
                "The MTU this node's pods use, as the CNI's devices show it (absent when unseen)",
            ),
            &[],
        )
        .expect("valid metric");
        // One series per probed peer: at most 8 (the controller's bound).
        let probe_success = GaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_probe_success",
                "Share of this node's probe targets on the other site reachable at the last round (0 to 1)",
            ),
            &["peer_site"],
        )
        .expect("valid metric");
        let probe_rtt = GaugeVec::new(
            Opts::new("terway_hybrid_agent_probe_rtt_seconds", "Round trip to the peer at the last round"),
            &["peer"],
        )
        .expect("valid metric");
        let probe_path_mtu = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_agent_probe_path_mtu_bytes",
                "The largest IP packet that reached the peer with fragmentation forbidden",
            ),
            &["peer"],
        )
        .expect("valid metric");
        // Both results exist from the start, so rate() works on the first error.
        for result in REPORT_WRITE_RESULTS {
            report_writes.with_label_values(&[result]);
        }
        let metrics = Metrics {
            registry: Registry::new(),
            scenario_info,
            node_ready,
            check_passed,
            detection_duration,
            report_writes,
            bgp_session_up,
            bgp_imported_routes,
            pod_mtu,
            probe_success,
            probe_rtt,
            probe_path_mtu,
            build_info,
        };
        for m in metrics.collectors() {
            metrics.registry.register(m).expect("metric names are unique");
        }
        metrics
    }

    /// Every family's collector, registered or not yet: tests list the
    /// families from their descriptions (the exposition omits a family
    /// without series, a dashboard may not).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.scenario_info.clone()),
            Box::new(self.node_ready.clone()),
            Box::new(self.check_passed.clone()),
            Box::new(self.detection_duration.clone()),
            Box::new(self.report_writes.clone()),
            Box::new(self.bgp_session_up.clone()),
            Box::new(self.bgp_imported_routes.clone()),
            Box::new(self.pod_mtu.clone()),
            Box::new(self.probe_success.clone()),
            Box::new(self.probe_rtt.clone()),
            Box::new(self.probe_path_mtu.clone()),
            Box::new(self.build_info.clone()),
            Box::new(ProcessCollector::for_self()),
        ]
    }

    /// Records a probe round: the share reachable (every path), and each
    /// peer's round trip and path MTU (its host path when it has one, else
    /// its pod path). A peer no longer probed leaves no series behind.
    pub fn observe_probes(&self, results: &[ProbeResult], peer_site: &str) {
        self.probe_success.reset();
        self.probe_rtt.reset();
        self.probe_path_mtu.reset();
        if !results.is_empty() {
            let reachable = results.iter().filter(|r| r.reachable).count();
            self.probe_success.with_label_values(&[peer_site]).set(reachable as f64 / results.len() as f64);
        }
        // Pod results first, so a host result of the same peer overwrites it.
        let mut ordered: Vec<&ProbeResult> = results.iter().collect();
        ordered.sort_by_key(|r| r.path != ProbePath::Pod);
        for r in ordered {
            let peer = r.node.as_str();
            match r.rtt_ms {
                Some(ms) => self.probe_rtt.with_label_values(&[peer]).set(ms / 1000.0),
                None => {
                    let _ = self.probe_rtt.remove_label_values(&[peer]);
                }
            }
            match r.path_mtu {
                Some(mtu) => self.probe_path_mtu.with_label_values(&[peer]).set(i64::from(mtu)),
                None => {
                    let _ = self.probe_path_mtu.remove_label_values(&[peer]);
                }
            }
        }
    }

    /// Records a finished detection and its checks.
    pub fn observe(&self, d: &NodeDetection, seconds: f64) {
        self.detection_duration.observe(seconds);
        self.scenario_info.reset();
        self.scenario_info
            .with_label_values(&[d.detection.scenario.as_str(), d.detection.plugin.as_str()])
            .set(1);
        for c in &d.checks {
            self.check_passed
                .with_label_values(&[c.name.as_str()])
                .set(i64::from(c.status != CheckStatus::Fail));
        }
        self.node_ready.set(i64::from(!d.checks.iter().any(|c| c.is_blocking())));
        // A session that went away leaves no series behind.
        self.bgp_session_up.reset();
        self.bgp_imported_routes.reset();
        for p in &d.bgp_peers {
            self.bgp_session_up.with_label_values(&[p.peer.as_str()]).set(i64::from(p.is_up()));
            let routes = i64::try_from(p.imported_routes).unwrap_or(i64::MAX);
            self.bgp_imported_routes.with_label_values(&[p.peer.as_str()]).set(routes);
        }
        self.pod_mtu.reset();
        if let Some(mtu) = d.pod_mtu {
            self.pod_mtu.with_label_values(&[] as &[&str]).set(i64::from(mtu));
        }
    }

    pub fn report_written(&self, result: &str) {
        self.report_writes.with_label_values(&[result]).inc();
    }

    pub fn node_ready(&self) -> bool {
        self.node_ready.get() == 1
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terway_hybrid_api::{Confidence, Detection, Plugin};

    fn detection(pod_mtu: Option<u32>) -> NodeDetection {
        NodeDetection {
            detection: Detection {
                scenario: Plugin::CalicoBgp.scenario(),
                plugin: Plugin::CalicoBgp,
                confidence: Confidence::High,
                evidence: vec![],
                stale: vec![],
            },
            checks: vec![],
            kernel_version: String::new(),
            bgp_peers: vec![],
            pod_mtu,
            cloud_network: None,
        }
    }

    /// The pod MTU is a series while it is seen, and no series (not 0)
    /// once it is not: an alert comparing it never fires on a made-up value.
    #[test]
    fn pod_mtu_series_follows_the_detection() {
        let m = Metrics::new();
        m.observe(&detection(Some(1450)), 0.01);
        assert!(m.render().contains("\nterway_hybrid_agent_pod_mtu_bytes 1450\n"), "{}", m.render());
        m.observe(&detection(None), 0.01);
        assert!(!m.render().contains("\nterway_hybrid_agent_pod_mtu_bytes "), "{}", m.render());
    }
}
