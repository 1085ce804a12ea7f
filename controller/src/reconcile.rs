//! One reconcile: view -> plan -> actions -> writes. It never looks at what
//! triggered it; run it again on the same view and it sends nothing.

use crate::actions::{actions, Action};
use crate::apply::Applier;
use crate::metrics::Metrics;
use crate::plan::{plan, Plan};
use crate::view::ClusterView;
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Instant;

/// Node label writes in flight at once. Each is one small server-side apply
/// to a different Node; one at a time, a loaded API server (tens of ms per
/// write) took a minute to label 1,200 joining nodes.
const LABEL_WRITES_IN_FLIGHT: usize = 16;

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub writes: usize,
    pub errors: Vec<String>,
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
    let started = Instant::now();
    let plan = plan(view, k8s_openapi::jiff::Timestamp::now());
    let mut outcome = Outcome::default();
    let mut status_failed = false;
    // Label writes first, side by side: each touches one node and nothing
    // else depends on another's result. The rest keeps its order.
    let (labels, rest): (Vec<Action>, Vec<Action>) =
        actions(view, &plan).into_iter().partition(|a| matches!(a, Action::NodeLabels { .. }));
    let mut writes = futures::stream::iter(labels)
        .map(|action| async move { applier.run(&action, view.rollout.as_ref()).await })
        .buffer_unordered(LABEL_WRITES_IN_FLIGHT);
    while let Some(result) = writes.next().await {
        match result {
            Ok(()) => outcome.writes += 1,
            Err(e) => {
                tracing::warn!(error = %e, "write failed; the next reconcile retries it");
                outcome.errors.push(e.to_string());
            }
        }
    }
    for action in rest {
        let key = match &action {
            Action::Remediate(r) => Some(serde_json::to_string(r).unwrap_or_default()),
            _ => None,
        };
        if key.as_ref().is_some_and(|k| memo.remediations.contains(k)) {
            continue;
        }
        // Events belong to the status write that records their conditions.
        if status_failed && matches!(action, Action::Event(_)) {
            continue;
        }
        match applier.run(&action, view.rollout.as_ref()).await {
            Ok(()) => {
                outcome.writes += 1;
                if let Some(k) = key {
                    memo.remediations.insert(k);
                }
            }
            Err(e) => {
                status_failed |= matches!(action, Action::RolloutStatus(_));
                tracing::warn!(error = %e, "write failed; the next reconcile retries it");
                outcome.errors.push(e.to_string());
            }
        }
    }
    metrics.observe(&plan, started.elapsed().as_secs_f64(), outcome.errors.len());
    (plan, outcome)
}
