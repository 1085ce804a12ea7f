//! `spec.crossSite.gateWaves` on a real control plane: the responder
//! DaemonSet (installed with terway-hybrid) runs on the on-prem nodes and
//! on each cloud node as its gate opens, the controller gives those nodes
//! pod-path probe targets, and a wave counts as healthy only when its pods
//! reach the on-prem pods. Here the pods of the last cloud node (waves go in
//! name order, one node each) cannot: the waves before it complete, its
//! wave halts the rollout (`Degraded`, reason `CrossSiteUnreachable`,
//! naming the node) and no gate opens after it.
//!
//! kwok nodes have no network and no agent: the test kit answers the
//! targets the controller assigns, as the agents would
//! ([`Cluster::answer_probes_with`]).
//!
//! `cargo test -p terway-hybrid-controller --test cluster_gate_waves` as root.

use std::time::Duration;

use serde_json::Value;
use terway_hybrid_testkit::cluster::{
    daemonset, gated_terway, Cluster, ADDON_SECRET, ENI_CONFIG, GATE_LABEL, OFF_CLOUD,
};
use terway_hybrid_testkit::require_root;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");

/// The pod-path targets in `node`'s report.
fn pod_targets(cluster: &Cluster, node: &str) -> Vec<Value> {
    cluster.get(&["nodenetworkreport", node])["spec"]["probeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["path"] == "Pod")
        .cloned()
        .collect()
}

fn gate_open(cluster: &Cluster, node: &str) -> bool {
    cluster.get(&["node", node])["metadata"]["labels"][GATE_LABEL] == "open"
}

#[test]
fn a_wave_whose_pods_cannot_reach_the_on_prem_pods_halts_the_rollout() {
    require_root();
    let mut cluster = Cluster::new();
    let (_onprem, mut cloud) = cluster.add_sites(2, 3);
    cloud.sort();
    let bad = cloud.last().unwrap().clone();
    let unreachable_from = bad.clone();
    cluster.answer_probes_with(move |from, target| !(from == unreachable_from && target["path"] == "Pod"));
    cluster.apply(ENI_CONFIG);
    cluster.apply(ADDON_SECRET);
    cluster.apply(&daemonset("kube-system", "calico-node", OFF_CLOUD));
    cluster.apply(
        "apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\nspec:\n  mode: Auto\n  \
         maxUnavailable: 1\n  readinessTimeout: 45s\n  crossSite:\n    gateWaves: true\n",
    );
    let controller = cluster.start_controller(CONTROLLER, "gate-waves");
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(90), &[&controller]);
    cluster.apply(&gated_terway("terway-eniip"));

    let halted = cluster.wait_condition(
        "Degraded",
        "True",
        Some("CrossSiteUnreachable"),
        Duration::from_secs(240),
        &[&controller],
    );
    let message = halted["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(&bad), "the halt names {bad}: {message}");

    // The waves before it completed with their pods reaching the on-prem
    // pods: the controller had given them pod-path targets (their
    // responder pods ran once their gates opened).
    for node in &cloud {
        assert!(gate_open(&cluster, node), "{node}'s gate opened in its wave: {halted:#}");
        assert!(
            !pod_targets(&cluster, node).is_empty(),
            "{node} has pod-path targets: {}",
            cluster.get(&["nodenetworkreport", node])
        );
    }
    // Halted: nothing more happens (no new wave, the condition stays).
    let wave = halted["status"]["currentWave"].clone();
    std::thread::sleep(Duration::from_secs(5));
    let later = cluster.rollout().unwrap();
    assert_eq!(later["status"]["currentWave"], wave, "{later:#}");
    assert_eq!(cluster.condition(&later, "Degraded").map(|c| c.1), Some("CrossSiteUnreachable".to_owned()));

    // With the pods reaching again, the wave completes and the rollout is Available.
    cluster.stop_probe_answers();
    cluster.answer_probes();
    cluster.wait_condition("Available", "True", None, Duration::from_secs(120), &[&controller]);
}
