//! Pods of the views, for the tests that remove them or name the agent's
//! (`plan_checks.rs`, `plan_properties.rs`).

use terway_hybrid_controller::pure::view::ClusterView;

/// The namespace of the agent's pods.
pub const AGENT_NS: &str = "terway-hybrid";

/// Removes the pod DaemonSet `ds` runs on `node`.
pub fn remove_pod(view: &mut ClusterView, ds: &str, node: &str) {
    view.pods.retain(|p| {
        !(p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.owner_references.iter().flatten().any(|o| o.name == ds))
    });
}
