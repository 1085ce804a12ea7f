//! The controller's Prometheus metrics (docs/contracts.md §8).

use crate::pure::plan::Plan;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use terway_hybrid_api::{CheckStatus, Role};

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
        let registry = Registry::new();
        for m in [
            Box::new(preflight_passed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(check_passed.clone()),
            Box::new(nodes.clone()),
            Box::new(rollout_wave.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(leader.clone()),
            Box::new(build_info),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Metrics {
            registry,
            preflight_passed,
            check_passed,
            nodes,
            rollout_wave,
            reconcile_duration,
            reconcile_errors,
            leader,
        }
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
            for (state, n) in [
                ("total", rows.len()),
                ("reported", reported),
                ("preflight_passed", rows.iter().filter(|n| n.preflight).count()),
                ("gated", rows.iter().filter(|n| n.gate).count()),
                ("terway_ready", rows.iter().filter(|n| n.terway_ready == Some(true)).count()),
            ] {
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
