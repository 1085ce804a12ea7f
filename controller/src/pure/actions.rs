//! actions: what must be written to make the cluster match a plan. Pure: it
//! compares the plan with the view, so a reconcile where nothing changed
//! yields no action and sends no write.

use crate::pure::plan::{GatePatch, Plan, PlannedEvent, Remediation};
use crate::pure::view::ClusterView;
use std::collections::BTreeMap;
use terway_hybrid_api::cross_site::ProbeTarget;
use terway_hybrid_api::rollout::{GATE_LABEL, PREFLIGHT_LABEL, SCENARIO_LABEL};
use terway_hybrid_api::TerwayRolloutStatus;

/// The server-side-apply field manager of every controller write.
pub const FIELD_MANAGER: &str = "terway-hybrid-controller";
/// The labels the controller owns on Nodes.
const MANAGED_LABELS: [&str; 3] = [SCENARIO_LABEL, PREFLIGHT_LABEL, GATE_LABEL];

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// TerwayRollout `default` does not exist: create it with the defaults.
    CreateRollout,
    /// Apply the controller's labels on a node (server-side apply: labels it
    /// applied before and no longer lists are removed).
    NodeLabels {
        node: String,
        labels: BTreeMap<String, String>,
    },
    /// Remove the gate label from a node whatever manager set it (only ever
    /// for on-prem nodes, where it must never be).
    RemoveGate {
        node: String,
    },
    /// Add the gate requirement to the Terway DaemonSet's node affinity.
    TerwayGate(GatePatch),
    /// The opt-in on-prem CNI affinity fix (dry run or apply).
    Remediate(Remediation),
    RolloutStatus(Box<TerwayRolloutStatus>),
    /// Apply `spec.probeTargets` of a node's report (the controller's own
    /// field of the report; an empty list removes it).
    ProbeTargets {
        node: String,
        targets: Vec<ProbeTarget>,
    },
    Event(PlannedEvent),
}

pub fn actions(view: &ClusterView, plan: &Plan) -> Vec<Action> {
    let mut out = Vec::new();
    if view.rollout.is_none() {
        out.push(Action::CreateRollout);
    }
    let current: BTreeMap<&str, &BTreeMap<String, String>> = view
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?)))
        .collect();
    for row in &plan.nodes {
        let want: BTreeMap<String, String> = row.labels.iter().cloned().collect();
        let have = current.get(row.name.as_str());
        let get = |k: &str| have.and_then(|l| l.get(k));
        let differs = MANAGED_LABELS.iter().any(|k| get(k) != want.get(*k));
        let stray_gate = get(GATE_LABEL).is_some() && !want.contains_key(GATE_LABEL);
        if stray_gate {
            out.push(Action::RemoveGate { node: row.name.clone() });
        }
        if differs && !(stray_gate && only_gate_differs(have.copied(), &want)) {
            out.push(Action::NodeLabels { node: row.name.clone(), labels: want });
        }
    }
    if let Some(gate) = &plan.terway_gate {
        out.push(Action::TerwayGate(gate.clone()));
    }
    out.extend(plan.remediations.iter().cloned().map(Action::Remediate));
    // Without the object, status and Events wait for the next reconcile,
    // which sees the created one (Events need its uid).
    if let Some(rollout) = &view.rollout {
        if rollout.status.as_ref() != Some(&plan.status) {
            out.push(Action::RolloutStatus(Box::new(plan.status.clone())));
            // Events go with the status change that records them, so a retry
            // after a failed status write does not repeat them.
            out.extend(plan.events.iter().cloned().map(Action::Event));
        }
    }
    out
}

/// The probe-target writes a view needs: one per report whose targets
/// differ from `want`, only on reports the agent has written a status to
/// (a report without one belongs to an agent that has not reported: it is
/// not a member of the assignment) and whose node is in the view.
/// The probe-target writes that make the reports match `want`. A node that
/// has no targets yet comes first: when a reconcile sends only part of them,
/// a first assignment is worth more than a change to a working one.
pub fn probe_actions(view: &ClusterView, want: &BTreeMap<String, Vec<ProbeTarget>>) -> Vec<Action> {
    let nodes: std::collections::BTreeSet<&str> =
        view.nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    let none = Vec::new();
    let mut writes: Vec<(bool, Action)> = view
        .reports
        .iter()
        .filter(|r| r.status.is_some())
        .filter_map(|r| {
            let name = r.metadata.name.as_deref().filter(|n| nodes.contains(n))?;
            let targets = want.get(name).unwrap_or(&none);
            (r.spec.probe_targets != *targets).then(|| {
                let action = Action::ProbeTargets { node: name.to_owned(), targets: targets.clone() };
                (!r.spec.probe_targets.is_empty(), action)
            })
        })
        .collect();
    // Stable: otherwise in the reports' order.
    writes.sort_by_key(|(has_targets, _)| *has_targets);
    writes.into_iter().map(|(_, action)| action).collect()
}

fn only_gate_differs(have: Option<&BTreeMap<String, String>>, want: &BTreeMap<String, String>) -> bool {
    [SCENARIO_LABEL, PREFLIGHT_LABEL].iter().all(|k| have.and_then(|l| l.get(*k)) == want.get(*k))
}
