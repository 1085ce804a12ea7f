//! The rollout in `Auto` mode on a real control plane: the controller (two
//! replicas) opens the Terway gate on cloud nodes in waves of
//! `maxUnavailable`, the DaemonSet controller and the scheduler place Terway
//! pods, kwok makes them Ready, and the rollout reaches `Available`, while
//! the test kills the leader and restarts kube-apiserver in the middle. At
//! the end SIGTERM ends the new leader cleanly, and it frees the Lease.
//!
//! A watch on Nodes and Terway pods, running from before the rollout,
//! records every gate and readiness change: no node is gated twice, no
//! on-prem node is ever gated, and never more than `maxUnavailable` gated
//! nodes wait for a Ready Terway pod.
//!
//! The Terway DaemonSet is created with the gate requirement already in its
//! affinity, as the controller's webhook stores it; an add-on manager's
//! ungated DaemonSet is the subject of `cluster_admission.rs`.
//!
//! `cargo test -p terway-hybrid-controller --test cluster_rollout` as root.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;
use terway_hybrid_testkit::cluster::{
    daemonset, gated_terway, Cluster, ADDON_SECRET, ENI_CONFIG, GATE_LABEL, OFF_CLOUD,
};
use terway_hybrid_testkit::wait_for_described;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");

const MAX_UNAVAILABLE: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Gate { node: String, open: bool },
    TerwayReady { node: String, ready: bool },
}

type Log = Arc<Mutex<Vec<(Instant, Change)>>>;

/// Watches Nodes and Terway pods from a thread of its own (with its own
/// runtime: the test is synchronous) and appends every change of a node's
/// gate or of its Terway pod's readiness to the log. Watches resume after
/// the API server restarts, as the controller's do.
fn record(cluster: &Cluster, log: Log) {
    let cp = cluster.cp;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let client = cp.admin_client().await;
            let nodes = watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let pods = watcher::watcher(
                Api::<Pod>::namespaced(client, "kube-system"),
                watcher::Config::default().labels("app=terway-eniip"),
            )
            .default_backoff()
            .applied_objects();
            let mut gates: BTreeMap<String, bool> = BTreeMap::new();
            let mut ready: BTreeMap<String, bool> = BTreeMap::new();
            // Errors (the API server restarting) are retried by the
            // watchers' backoff; only objects are recorded.
            let mut nodes = std::pin::pin!(nodes.filter_map(|r| async move { r.ok() }));
            let mut pods = std::pin::pin!(pods.filter_map(|r| async move { r.ok() }));
            loop {
                tokio::select! {
                    Some(node) = nodes.next() => {
                        let name = node.metadata.name.clone().unwrap_or_default();
                        let open = node.metadata.labels.as_ref().and_then(|l| l.get(GATE_LABEL)).is_some_and(|v| v == "open");
                        if gates.insert(name.clone(), open).unwrap_or(false) != open {
                            log.lock().unwrap().push((Instant::now(), Change::Gate { node: name, open }));
                        }
                    }
                    Some(pod) = pods.next() => {
                        let Some(name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
                        let is_ready = pod.metadata.deletion_timestamp.is_none() && pod.status.as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                        if ready.insert(name.clone(), is_ready).unwrap_or(false) != is_ready {
                            log.lock().unwrap().push((Instant::now(), Change::TerwayReady { node: name, ready: is_ready }));
                        }
                    }
                    else => break,
                }
            }
        });
    });
}

/// The largest number of nodes that had an open gate and no Ready Terway
/// pod at once, and the nodes whose gate opened more than once.
fn analyse(log: &[(Instant, Change)]) -> (usize, BTreeMap<String, usize>) {
    let mut gated = BTreeSet::new();
    let mut ready = BTreeSet::new();
    let mut opened: BTreeMap<String, usize> = BTreeMap::new();
    let mut worst = 0;
    for (_, change) in log {
        match change {
            Change::Gate { node, open: true } => {
                gated.insert(node.clone());
                *opened.entry(node.clone()).or_default() += 1;
            }
            Change::Gate { node, open: false } => {
                gated.remove(node);
            }
            Change::TerwayReady { node, ready: true } => {
                ready.insert(node.clone());
            }
            Change::TerwayReady { node, ready: false } => {
                ready.remove(node);
            }
        }
        worst = worst.max(gated.difference(&ready).count());
    }
    (worst, opened.into_iter().filter(|(_, n)| *n > 1).collect())
}

#[test]
fn auto_rollout_in_waves_survives_a_leader_kill_and_an_apiserver_restart() {
    terway_hybrid_testkit::require_root();
    let mut cluster = Cluster::new();
    // kwok nodes have no agents: answer the controller's probe targets as
    // healthy agents would (CrossSiteConnectivity wants their results).
    cluster.answer_probes();
    let cp = cluster.cp;
    let (onprem, cloud) = cluster.add_sites(2, 10);
    cluster.apply(ENI_CONFIG);
    cluster.apply(ADDON_SECRET);
    // calico-node already kept off the cloud nodes.
    cluster.apply(&daemonset("kube-system", "calico-node", OFF_CLOUD));
    cluster.apply(&format!(
        "apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\nspec:\n  mode: Auto\n  \
         maxUnavailable: {MAX_UNAVAILABLE}\n  readinessTimeout: 2m\n"
    ));

    let log: Log = Arc::default();
    record(&cluster, log.clone());
    let mut a = cluster.start_controller(CONTROLLER, "replica-a");
    let mut b = cluster.start_controller(CONTROLLER, "replica-b");
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(90), &[&a, &b]);

    // Terway as the add-on installs it, stored with the gate requirement
    // admission adds.
    cluster.apply(&gated_terway("terway-eniip"));

    // Mid-rollout 1: as soon as the first wave is open, kill the leader.
    let gated_count =
        || log.lock().unwrap().iter().filter(|(_, c)| matches!(c, Change::Gate { open: true, .. })).count();
    wait_for_described(
        "the first wave to open",
        Duration::from_secs(60),
        || (gated_count() > 0).then_some(()),
        || format!("{}\n{}", a.tail(20), b.tail(20)),
    );
    let lease = cluster.get(&["lease", "terway-hybrid-controller", "--namespace", "terway-hybrid"]);
    let leader = lease["spec"]["holderIdentity"].as_str().unwrap_or_default().to_owned();
    let (killed, survivor) = if leader == a.identity { (&mut a, &b) } else { (&mut b, &a) };
    killed.guard.child_mut().kill().unwrap();
    let killed_at = gated_count();
    // The survivor takes the Lease (after it expires: 15 s) and goes on.
    wait_for_described(
        "the other replica to take the Lease",
        Duration::from_secs(60),
        || {
            let lease = cluster.get(&["lease", "terway-hybrid-controller", "--namespace", "terway-hybrid"]);
            (lease["spec"]["holderIdentity"] == survivor.identity.as_str()).then_some(())
        },
        || survivor.tail(30),
    );

    // Mid-rollout 2: restart kube-apiserver once the survivor opened a wave.
    wait_for_described(
        "the new leader to open a wave",
        Duration::from_secs(90),
        || (gated_count() > killed_at).then_some(()),
        || survivor.tail(30),
    );
    if gated_count() < cloud.len() {
        cp.restart("kube-apiserver");
    }
    let done = cluster.wait_condition("Available", "True", None, Duration::from_secs(180), &[survivor]);
    assert_eq!(done["status"]["nodes"]["gated"], cloud.len(), "{done:#}");
    assert_eq!(done["status"]["nodes"]["terwayReady"], cloud.len(), "{done:#}");

    // What the watch saw.
    std::thread::sleep(Duration::from_secs(1));
    let log = log.lock().unwrap().clone();
    let (worst, twice) = analyse(&log);
    let changes: Vec<&Change> = log.iter().map(|(_, c)| c).collect();
    assert!(
        worst <= MAX_UNAVAILABLE,
        "{worst} nodes were in flight at once (max {MAX_UNAVAILABLE}): {changes:#?}"
    );
    assert!(twice.is_empty(), "nodes gated more than once: {twice:?}\n{changes:#?}");
    let ever_gated: BTreeSet<&str> = log
        .iter()
        .filter_map(|(_, c)| match c {
            Change::Gate { node, open: true } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    for n in &onprem {
        assert!(!ever_gated.contains(n.as_str()), "on-prem node {n} was gated");
    }
    for n in &cloud {
        assert!(ever_gated.contains(n.as_str()), "cloud node {n} was never gated");
    }
    let terway_nodes = cluster.nodes_with_pods("kube-system", "terway-eniip");
    assert_eq!(terway_nodes, cloud.iter().cloned().collect(), "Terway runs exactly on the cloud nodes");
    // In normal operation (not while the API server restarted) the
    // controller met no 403.
    let denied: Vec<_> =
        cp.outside_restarts(cluster.controller_requests()).into_iter().filter(|e| e.code == 403).collect();
    assert!(denied.is_empty(), "the controller met 403s: {denied:#?}");

    // SIGTERM, as a rolling update of the Deployment sends it: the leader
    // exits cleanly and frees the Lease on its way out, so its successor
    // need not wait for it to expire.
    let survivor_identity = survivor.identity.clone();
    let leader = if a.identity == survivor_identity { &mut a } else { &mut b };
    let status = leader.terminate();
    assert!(status.success(), "the leader's exit on SIGTERM: {status}\n{}", leader.tail(30));
    let lease = cluster.get(&["lease", "terway-hybrid-controller", "--namespace", "terway-hybrid"]);
    assert!(
        lease["spec"]["holderIdentity"].as_str().unwrap_or_default().is_empty(),
        "the Lease after its holder's SIGTERM: {lease:#}"
    );
}
