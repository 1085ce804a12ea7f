//! The controller's part over time, for the tests that play `plan` step by
//! step (`plan_rollout.rs`, `plan_properties.rs`): the clock, applying a
//! plan's labels and status back into the view, Terway's readiness, and the
//! events a status change deserves.

use crate::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use terway_hybrid_api::rollout::{GATE_LABEL, GATE_OPEN};
use terway_hybrid_controller::pure::plan::{Plan, PlannedEvent};
use terway_hybrid_controller::pure::view::ClusterView;

/// Plays the controller: the nodes get the labels of their rows (the gate
/// label removed where the row has none) and the rollout gets the status.
pub fn apply(view: &mut ClusterView, plan: &Plan) {
    for r in &plan.nodes {
        let node = node_mut(view, &r.name);
        let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
        if !r.labels.iter().any(|(k, _)| k == GATE_LABEL) {
            labels.remove(GATE_LABEL);
        }
        for (k, v) in &r.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    rollout_mut(view).status = Some(plan.status.clone());
}

/// `t0` plus `mins` minutes.
pub fn at(mins: i64) -> Timestamp {
    at_secs(mins * 60)
}

/// `t0` plus `secs` seconds.
pub fn at_secs(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

/// Events as `Type=Status Reason`, read back from their messages.
pub fn event_keys(events: &[PlannedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let (type_, rest) =
                e.message.split_once(" is ").expect("an event message is `Type is Status: ...`");
            let status = rest.split(':').next().unwrap_or_default();
            format!("{type_}={status} {}", e.reason)
        })
        .collect()
}

/// The events `previous -> current` deserve: one per condition whose status
/// or reason changed (or that is new).
pub fn expected_event_reasons(previous: &[Condition], current: &[Condition]) -> Vec<String> {
    current
        .iter()
        .filter(|c| {
            !previous.iter().any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason)
        })
        .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
        .collect()
}

/// Whether the node carries the open gate label.
pub fn gated_in(view: &ClusterView, node: &str) -> bool {
    view.nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(GATE_LABEL))
        .is_some_and(|v| v == GATE_OPEN)
}

pub fn set_label(view: &mut ClusterView, node: &str, key: &str, value: Option<&str>) {
    let labels = node_mut(view, node).metadata.labels.get_or_insert_with(BTreeMap::new);
    match value {
        Some(v) => {
            labels.insert(key.to_owned(), v.to_owned());
        }
        None => {
            labels.remove(key);
        }
    }
}

pub fn set_terway_ready(view: &mut ClusterView, node: &str, ready: bool) {
    set_pod_ready(view, TERWAY_NS, TERWAY, node, ready);
}
