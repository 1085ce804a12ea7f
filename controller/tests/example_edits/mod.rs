//! Reading a plan and editing the shipped examples' views, for the tests
//! built on the examples (`plan_checks.rs`, `plan_rollout.rs`): a check or
//! row of the plan, the gates it opens, reports, the gate requirement,
//! affinities, scenarios and failing node checks.

use crate::common::*;
use k8s_openapi::api::core::v1::Affinity;
use terway_hybrid_api::{
    CheckName, CheckResult, NodeNetworkReport, NodeNetworkReportStatus, Scenario, Severity,
};
use terway_hybrid_controller::pure::affinity;
use terway_hybrid_controller::pure::plan::{NodeRow, Plan};
use terway_hybrid_controller::pure::view::ClusterView;

pub fn check(plan: &Plan, name: CheckName) -> &CheckResult {
    plan.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in the plan"))
}

pub fn row<'a>(plan: &'a Plan, node: &str) -> &'a NodeRow {
    plan.nodes.iter().find(|r| r.name == node).unwrap_or_else(|| panic!("no row for node {node}"))
}

/// The nodes whose gate the plan wants open, in name order.
pub fn gated_rows(plan: &Plan) -> Vec<String> {
    plan.nodes.iter().filter(|r| r.gate).map(|r| r.name.clone()).collect()
}

pub fn report_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut NodeNetworkReport {
    view.reports
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .map(std::sync::Arc::make_mut)
        .unwrap_or_else(|| panic!("no report {name}"))
}

pub fn report_status_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut NodeNetworkReportStatus {
    report_mut(view, name).status.as_mut().expect("a report with a status")
}

/// Adds the gate requirement to Terway's DaemonSet, as the controller does
/// when it applies `plan.terway_gate`.
pub fn require_gate(view: &mut ClusterView) {
    let ds = terway_mut(view);
    let current = affinity::daemon_set_affinity(ds).cloned();
    let spec = ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("a pod template");
    spec.affinity = Some(affinity::require_gate(current.as_ref()));
}

/// Sets (or, with `None`, removes) a DaemonSet's pod affinity.
pub fn set_affinity(view: &mut ClusterView, ns: &str, ds: &str, a: Option<Affinity>) {
    let ds = daemon_set_mut(view, ns, ds);
    ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("template").affinity = a;
}

pub fn set_scenario(view: &mut ClusterView, node: &str, s: Scenario) {
    report_status_mut(view, node).scenario = s;
}

/// `node`'s agent reports a failing error-severity node check.
pub fn fail_node_check(view: &mut ClusterView, node: &str) {
    let s = report_status_mut(view, node);
    s.ready = false;
    s.checks.push(CheckResult::fail(
        CheckName::KernelVersion,
        Severity::Error,
        "TooOldForIPvlan",
        "kernel 4.18 is older than 4.19",
    ));
}
