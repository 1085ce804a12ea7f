//! The controller's Prometheus metrics (docs/contracts.md §8).

use crate::pure::plan::Plan;
use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use terway_hybrid_api::{CheckStatus, Role};

/// The `state` label of `terway_hybrid_controller_nodes`, in the order
/// [`Metrics::observe`] counts them.
pub const NODE_STATES: [&str; 5] = ["total", "reported", "preflight_passed", "gated", "terway_ready"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    preflight_passed: IntGauge,
    check_passed: IntGaugeVec,
    nodes: IntGaugeVec,
    rollout_wave: IntGauge,
    reconcile_duration: Histogram,
    reconcile_errors: IntCounter,
    leader: IntGauge,
    build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let preflight_passed = gauge(
            "terway_hybrid_controller_preflight_passed",
            "1 when every cluster check passes (after ignores)",
        );
        let check_passed = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_controller_check_passed",
                "1 unless the cluster check failed (skipped count as 1)",
            ),
            &["check"],
        )
        .expect("valid metric");
        let nodes = IntGaugeVec::new(
            Opts::new(
                "terway_hybrid_controller_nodes",
                "Nodes by role and state (total, reported, preflight_passed, gated, terway_ready)",
            ),
            &["role", "state"],
        )
        .expect("valid metric");
        let rollout_wave = gauge(
            "terway_hybrid_controller_rollout_wave",
            "The rollout wave in progress (0 before the first)",
        );
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "terway_hybrid_controller_reconcile_duration_seconds",
                "Time of one reconcile",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        let reconcile_errors = IntCounter::new(
            "terway_hybrid_controller_reconcile_errors_total",
            "Writes that failed during a reconcile",
        )
        .expect("valid metric");
        let leader = gauge("terway_hybrid_controller_leader", "1 on the replica holding the leader Lease");
        let build_info = IntGaugeVec::new(
            Opts::new("terway_hybrid_controller_build_info", "The controller's version (always 1)"),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let metrics = Metrics {
            registry: Registry::new(),
            preflight_passed,
            check_passed,
            nodes,
            rollout_wave,
            reconcile_duration,
            reconcile_errors,
            leader,
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
            Box::new(self.preflight_passed.clone()),
            Box::new(self.check_passed.clone()),
            Box::new(self.nodes.clone()),
            Box::new(self.rollout_wave.clone()),
            Box::new(self.reconcile_duration.clone()),
            Box::new(self.reconcile_errors.clone()),
            Box::new(self.leader.clone()),
            Box::new(self.build_info.clone()),
            Box::new(ProcessCollector::for_self()),
        ]
    }

    pub fn observe(&self, plan: &Plan, seconds: f64, errors: usize) {
        self.reconcile_duration.observe(seconds);
        self.reconcile_errors.inc_by(errors as u64);
        self.preflight_passed.set(i64::from(plan.passed));
        for c in &plan.checks {
            self.check_passed
                .with_label_values(&[c.name.as_str()])
                .set(i64::from(c.status != CheckStatus::Fail));
        }
        self.rollout_wave.set(i64::from(plan.status.current_wave));
        for role in [Role::OnPrem, Role::Cloud] {
            let rows: Vec<_> = plan.nodes.iter().filter(|n| n.role == role).collect();
            let reported = rows.iter().filter(|n| n.scenario.is_some()).count();
            let counts = [
                rows.len(),
                reported,
                rows.iter().filter(|n| n.preflight).count(),
                rows.iter().filter(|n| n.gate).count(),
                rows.iter().filter(|n| n.terway_ready == Some(true)).count(),
            ];
            for (state, n) in NODE_STATES.into_iter().zip(counts) {
                self.nodes.with_label_values(&[role.as_str(), state]).set(n as i64);
            }
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

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
