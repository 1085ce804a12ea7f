//! One reconcile: view -> plan -> actions -> writes. It never looks at what
//! triggered it; run it again on the same view and it sends nothing.

use crate::daemon::apply::Applier;
use crate::daemon::metrics::Metrics;
use crate::pure::actions::{actions, probe_actions, Action};
use crate::pure::plan::{plan, Plan};
use crate::pure::probe_plan::{self, DEFAULT_PROBE_PORT};
use crate::pure::view::ClusterView;
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Instant;

/// Node label and probe-target writes in flight at once. Each is one small
/// server-side apply to a different object; one at a time, a loaded API
/// server (tens of ms per write) took a minute to label 1,200 joining nodes.
const LABEL_WRITES_IN_FLIGHT: usize = 16;

/// Probe-target writes one reconcile sends at most; the loop starts the next
/// reconcile at once for the rest. Unbounded, one change of membership could
/// move thousands of targets and hold the labels and status of every node
/// that reported meanwhile for a minute (52 s at 5,000 nodes).
pub const PROBE_WRITES_PER_RECONCILE: usize = 256;

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub writes: usize,
    pub errors: Vec<String>,
    /// Probe-target writes left for the next reconcile (over the budget).
    pub deferred: usize,
}

/// Remembers remediation requests already sent, so a dry run (which changes
/// nothing in the cluster, and so never shows up in the view) is not resent
/// on every reconcile.
#[derive(Debug, Default)]
pub struct Memo {
    remediations: HashSet<String>,
}

pub async fn reconcile(
    view: &ClusterView,
    applier: &Applier,
    metrics: &Metrics,
    memo: &mut Memo,
) -> (Plan, Outcome) {
    reconcile_probing(view, applier, metrics, memo, DEFAULT_PROBE_PORT).await
}

/// [`reconcile`], with the port agents answer probes on (`--probe-port`).
pub async fn reconcile_probing(
    view: &ClusterView,
    applier: &Applier,
    metrics: &Metrics,
    memo: &mut Memo,
    probe_port: u16,
) -> (Plan, Outcome) {
    let started = Instant::now();
    let mut probe_writes = probe_actions(view, &probe_plan::targets(view, probe_port));
    // The plan judges the cluster as it will be once these targets land: a
    // target about to be assigned has no result yet, so neither
    // CrossSiteConnectivity nor a wave may pass on the strength of never
    // having asked.
    let assigned;
    let judged = if probe_writes.is_empty() {
        view
    } else {
        assigned = with_targets(view, &probe_writes);
        &assigned
    };
    let plan = plan(judged, k8s_openapi::jiff::Timestamp::now());
    let mut outcome = Outcome::default();
    let mut status_failed = false;
    let is_label = |a: &Action| matches!(a, Action::NodeLabels { .. });
    let mut first = actions(view, &plan);
    // What comes before the first label write (creating the TerwayRollout)
    // goes first.
    let later = first.split_off(first.iter().position(is_label).unwrap_or(first.len()));
    for action in first {
        run_one(action, view, applier, memo, &mut outcome, &mut status_failed).await;
    }
    // Then the node labels side by side: each touches one node and none
    // depends on another's result. The rest keeps its order.
    let (labels, later): (Vec<Action>, Vec<Action>) = later.into_iter().partition(is_label);
    side_by_side(labels, view, applier, &mut outcome).await;
    for action in later {
        run_one(action, view, applier, memo, &mut outcome, &mut status_failed).await;
    }
    // Probe targets last, so a node's labels and the status never wait for
    // them, and only as many as the budget allows.
    outcome.deferred = probe_writes.len().saturating_sub(PROBE_WRITES_PER_RECONCILE);
    probe_writes.truncate(PROBE_WRITES_PER_RECONCILE);
    side_by_side(probe_writes, view, applier, &mut outcome).await;
    metrics.observe(&plan, started.elapsed().as_secs_f64(), outcome.errors.len());
    (plan, outcome)
}

/// Writes to one object each, `LABEL_WRITES_IN_FLIGHT` at a time.
async fn side_by_side(writes: Vec<Action>, view: &ClusterView, applier: &Applier, outcome: &mut Outcome) {
    let results: Vec<_> = futures::stream::iter(writes)
        .map(|action| async move { applier.run(&action, view.rollout.as_ref()).await })
        .buffer_unordered(LABEL_WRITES_IN_FLIGHT)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(()) => outcome.writes += 1,
            Err(e) => {
                tracing::warn!(error = %e, "write failed; the next reconcile retries it");
                outcome.errors.push(e.to_string());
            }
        }
    }
}

/// `view` with the probe-target writes in `writes` applied to its reports.
fn with_targets(view: &ClusterView, writes: &[Action]) -> ClusterView {
    let new: std::collections::HashMap<&str, &Vec<terway_hybrid_api::ProbeTarget>> = writes
        .iter()
        .filter_map(|a| match a {
            Action::ProbeTargets { node, targets } => Some((node.as_str(), targets)),
            _ => None,
        })
        .collect();
    // Shares every report but the ones whose targets change.
    let mut view = view.clone();
    for r in &mut view.reports {
        if let Some(targets) = r.metadata.name.as_deref().and_then(|n| new.get(n)) {
            std::sync::Arc::make_mut(r).spec.probe_targets = (*targets).clone();
        }
    }
    view
}

/// One write, in order: a remediation already sent is not sent again, and
/// Events wait for the status write that records their conditions.
async fn run_one(
    action: Action,
    view: &ClusterView,
    applier: &Applier,
    memo: &mut Memo,
    outcome: &mut Outcome,
    status_failed: &mut bool,
) {
    let key = match &action {
        Action::Remediate(r) => Some(serde_json::to_string(r).unwrap_or_default()),
        _ => None,
    };
    if key.as_ref().is_some_and(|k| memo.remediations.contains(k)) {
        return;
    }
    if *status_failed && matches!(action, Action::Event(_)) {
        return;
    }
    match applier.run(&action, view.rollout.as_ref()).await {
        Ok(()) => {
            outcome.writes += 1;
            if let Some(k) = key {
                memo.remediations.insert(k);
            }
        }
        Err(e) => {
            *status_failed |= matches!(action, Action::RolloutStatus(_));
            tracing::warn!(error = %e, "write failed; the next reconcile retries it");
            outcome.errors.push(e.to_string());
        }
    }
}
