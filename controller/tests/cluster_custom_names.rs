//! A TerwayRollout that names its own DaemonSets, on a real control plane:
//! a Terway DaemonSet called `terway-custom` and an on-prem CNI called
//! `my-calico`, whose pods carry their own labels. The running controller
//! must see their pods as the CLI does (its watches are scoped by the
//! rollout's spec, not by built-in label selectors): the rollout reaches
//! `Available` only if the controller sees the custom Terway pods Ready.
//!
//! The on-prem CNI starts on every node; with `onPremCNI.remediate: Apply`
//! the controller fixes its affinity itself, and the preflight passes only
//! once its pods have left the cloud nodes.
//!
//! Then two cloud nodes join that cannot run Terway (no CPU left for its
//! pod): their wave never becomes Ready and halts the rollout (`Degraded`,
//! `WaveFailed`), one node at a time (`maxUnavailable: 1`).
//!
//! `cargo test -p terway-hybrid-controller --test cluster_custom_names` as root.

use std::collections::BTreeSet;
use std::time::Duration;

use terway_hybrid_testkit::cluster::{
    cloud_status, daemonset, gated_terway, managers, used_rules, Cluster, ADDON_SECRET, ENI_CONFIG,
};
use terway_hybrid_testkit::unique_name;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");

#[test]
fn custom_daemonset_names_are_watched_and_a_wave_that_never_gets_ready_halts() {
    terway_hybrid_testkit::require_root();
    let mut cluster = Cluster::new();
    // kwok nodes have no agents: answer the controller's probe targets as
    // healthy agents would (CrossSiteConnectivity wants their results).
    cluster.answer_probes();
    let cp = cluster.cp;
    // The manifests let the controller patch the DaemonSets it knows by
    // name; a custom name is added to that rule, as docs/architecture.md
    // tells operators to.
    let role = cp.kubectl_ok(&["get", "clusterrole", "terway-hybrid-controller", "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_str(&role).unwrap();
    for rule in role["rules"].as_array_mut().unwrap() {
        if let Some(names) = rule["resourceNames"].as_array_mut() {
            if names.iter().any(|n| n == "terway-eniip") {
                names.push("terway-custom".into());
                names.push("my-calico".into());
            }
        }
    }
    role["metadata"] = serde_json::json!({"name": "terway-hybrid-controller"});
    cp.apply(&role.to_string());

    let (onprem, cloud) = cluster.add_sites(2, 3);
    cluster.apply(ENI_CONFIG);
    cluster.apply(ADDON_SECRET);
    // The on-prem CNI under a name of its own, on every node: the controller
    // fixes its affinity itself (`remediate: Apply`).
    cluster.apply(&daemonset("kube-system", "my-calico", ""));
    cluster.apply(
        "apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\nspec:\n  mode: Auto\n  \
         maxUnavailable: 1\n  readinessTimeout: 20s\n  terway: {namespace: kube-system, daemonSetName: terway-custom}\n  \
         onPremCNI:\n    daemonSets: [{namespace: kube-system, name: my-calico}]\n    remediate: Apply\n",
    );
    let a = cluster.start_controller(CONTROLLER, "replica-a");
    let logs = [&a];
    // The controller patches my-calico (verified against every node), the
    // DaemonSet controller takes its pods off the cloud nodes, and only then
    // does the preflight pass: a CNI pod that still runs there counts.
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(120), &logs);
    let onprem_set: BTreeSet<String> = onprem.iter().cloned().collect();
    assert_eq!(
        cluster.nodes_with_pods("kube-system", "my-calico"),
        onprem_set,
        "my-calico left the cloud nodes"
    );
    let fixed =
        cluster.get(&["daemonset", "my-calico", "--namespace", "kube-system", "--show-managed-fields"]);
    let terms = &fixed["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    assert!(terms.to_string().contains("NotIn"), "the exclusion is in every term: {terms}");
    let managers = managers(&fixed);
    assert!(managers.contains(&"terway-hybrid-controller"), "applied by the controller: {managers:?}");
    cluster.apply(&gated_terway("terway-custom"));
    let done = cluster.wait_condition("Available", "True", None, Duration::from_secs(120), &logs);
    assert_eq!(
        done["status"]["nodes"]["terwayReady"],
        cloud.len(),
        "the controller sees the custom pods: {done:#}"
    );
    let expected: BTreeSet<String> = cloud.iter().cloned().collect();
    assert_eq!(cluster.nodes_with_pods("kube-system", "terway-custom"), expected);

    // Two more cloud nodes with 15m CPU: the agent's pod (10m) fits, Terway's
    // (10m more) does not, so the scheduler leaves it Pending and their wave
    // never becomes Ready.
    let full: Vec<String> = (0..2).map(|_| unique_name("cloudfull")).collect();
    for n in &full {
        cluster.add_node_with_cpu(n, true, "15m");
        cluster.report(n, cloud_status());
    }
    let halted =
        cluster.wait_condition("Degraded", "True", Some("WaveFailed"), Duration::from_secs(120), &logs);
    let wave = halted["status"]["wave"]["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(wave.len(), 1, "a wave of maxUnavailable 1: {halted:#}");
    assert!(full.iter().any(|n| wave[0] == n.as_str()), "the halted wave is a full node: {halted:#}");
    let message = serde_json::to_string(&halted["status"]["conditions"]).unwrap();
    assert!(message.contains(wave[0].as_str().unwrap()), "the Degraded message names the node: {message}");
    // Halted: the other full node is never gated while the wave is failed.
    std::thread::sleep(Duration::from_secs(8));
    let gated: Vec<String> = full
        .iter()
        .filter(|n| cluster.get(&["node", n])["metadata"]["labels"]["terway-hybrid.io/terway-gate"] == "open")
        .cloned()
        .collect();
    assert_eq!(gated.len(), 1, "only the failed wave's node is gated: {gated:?}");
    let requests = cluster.controller_requests();
    assert!(requests.iter().all(|e| e.code != 403), "the controller met a 403");
    let used = used_rules(&requests);
    assert!(
        used.contains(&("daemonsets".to_owned(), "patch".to_owned())),
        "the controller patched DaemonSets: {used:?}"
    );
}
