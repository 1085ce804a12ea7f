//! Probe assignment on a real control plane: the controller (as its
//! ServiceAccount) gives every reported node targets on the other site in
//! `spec.probeTargets`, a real agent (`run`, its pod-bound token) reads its
//! own share and writes `status.probes` by probing a responder on loopback
//! (kwok gives every node the InternalIP 127.0.0.1), neither gets a 403,
//! the agent's applies never claim or clear the controller's field, and
//! once settled the controller writes nothing more.
//!
//! `cargo test -p terway-hybrid-controller --test cluster_probes` as root.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use terway_hybrid_testkit::cluster::{free_port, Cluster, CONTROLLER_USER};
use terway_hybrid_testkit::control_plane::BoundPod;
use terway_hybrid_testkit::{require_root, wait_for_described, ChildGuard, HostRoot};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");
const AGENT_USER: &str = "system:serviceaccount:terway-hybrid:terway-hybrid-agent";

/// The agent binary sits next to the test's own target directory.
fn agent_program() -> std::path::PathBuf {
    let controller = std::path::Path::new(CONTROLLER);
    controller.with_file_name("terway-hybrid-agent")
}

/// The managers of `spec.probeTargets` in a report's managedFields.
fn probe_target_managers(report: &Value) -> BTreeSet<String> {
    report["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["fieldsV1"]["f:spec"].get("f:probeTargets").is_some())
        .filter_map(|m| m["manager"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_controller_assigns_targets_and_an_agent_probes_its_own_share() {
    require_root();
    let agent = agent_program();
    assert!(
        agent.exists(),
        "build the agent first: cargo build -p terway-hybrid-agent ({})",
        agent.display()
    );
    let cluster = Cluster::new();
    let cp = cluster.cp;
    let (onprem, cloud) = cluster.add_sites(2, 2);
    let all: Vec<&String> = onprem.iter().chain(&cloud).collect();

    // The responder every node's address leads to.
    let port = free_port();
    let responder = ChildGuard::new(
        Command::new(&agent)
            .args(["respond", "--probe-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let controller =
        cluster.start_controller_with(CONTROLLER, "probes-0", &["--probe-port", &port.to_string()]);

    // Every report gets targets on the other site, as the controller's own field.
    let address = format!("127.0.0.1:{port}");
    for name in &all {
        let on_prem = onprem.contains(name);
        let report = wait_for_described(
            &format!("probe targets on {name}"),
            Duration::from_secs(60),
            || {
                let r = cluster.get(&["nodenetworkreport", name, "--show-managed-fields"]);
                r["spec"]["probeTargets"].as_array().is_some_and(|t| !t.is_empty()).then_some(r)
            },
            || controller.tail(30),
        );
        let targets = report["spec"]["probeTargets"].as_array().unwrap();
        for t in targets {
            let peer = t["node"].as_str().unwrap().to_owned();
            let other_site = if on_prem { cloud.contains(&peer) } else { onprem.contains(&peer) };
            assert!(other_site, "{name} probes {peer} on its own site: {report:#}");
            assert_eq!(t["address"], address.as_str(), "{report:#}");
            assert_eq!(t["path"], "Host");
        }
        assert_eq!(targets.len(), 2, "both nodes of the other site (peersPerNode 3): {report:#}");
        assert_eq!(probe_target_managers(&report), BTreeSet::from(["terway-hybrid-controller".to_owned()]));
        assert_eq!(report["spec"]["nodeName"], name.as_str(), "the agent's field is untouched");
    }

    // A real agent on the first on-prem node, with its pod's bound token.
    let node = onprem[0].clone();
    let pod = wait_for_described(
        &format!("the agent DaemonSet's pod on {node}"),
        Duration::from_secs(60),
        || {
            let pods = cluster.get(&[
                "pods",
                "--namespace",
                "terway-hybrid",
                "--selector",
                "app=terway-hybrid-agent",
                "--field-selector",
                &format!("spec.nodeName={node}"),
            ]);
            let pod = pods["items"].as_array()?.first()?.clone();
            Some(BoundPod {
                name: pod["metadata"]["name"].as_str()?.to_owned(),
                uid: pod["metadata"]["uid"].as_str()?.to_owned(),
            })
        },
        || cluster.get(&["pods", "--namespace", "terway-hybrid"]).to_string(),
    );
    let work = tempfile::tempdir().unwrap();
    let token = cp.token("terway-hybrid", "terway-hybrid-agent", Some(&pod));
    let kubeconfig = cp.token_kubeconfig(&token, &work.path().join("agent.kubeconfig"));
    let root = HostRoot::new();
    let log = work.path().join("agent.log");
    let file = std::fs::File::create(&log).unwrap();
    let _agent = ChildGuard::new(
        Command::new(&agent)
            .args(["run", "--host-root", root.path().to_str().unwrap()])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--probe-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--ecs-metadata-url", "http://127.0.0.1:9/", "--probe-interval", "2"])
            .env("KUBECONFIG", &kubeconfig)
            .env("NODE_NAME", &node)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap(),
    );
    let report = wait_for_described(
        &format!("status.probes of {node}"),
        Duration::from_secs(60),
        || {
            let r = cluster.get(&["nodenetworkreport", &node, "--show-managed-fields"]);
            r["status"]["probes"].as_array().is_some_and(|p| p.len() == 2).then_some(r)
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let probed: BTreeSet<&str> =
        report["status"]["probes"].as_array().unwrap().iter().map(|p| p["node"].as_str().unwrap()).collect();
    assert_eq!(probed, cloud.iter().map(String::as_str).collect(), "{report:#}");
    for p in report["status"]["probes"].as_array().unwrap() {
        assert_eq!(p["reachable"], true, "{report:#}");
        assert_eq!(p["address"], address.as_str());
        assert!(p["pathMtu"].as_u64().is_some_and(|m| m > 1000), "{report:#}");
        assert!(p["route"].as_str().is_some_and(|r| r.contains("dev lo")), "{report:#}");
    }
    // The agent's applies (identity and status) left the controller's field alone.
    assert_eq!(report["spec"]["probeTargets"].as_array().map(Vec::len), Some(2), "{report:#}");
    assert_eq!(probe_target_managers(&report), BTreeSet::from(["terway-hybrid-controller".to_owned()]));

    // The agent probes every 2 s; the round trips vary, nothing else does:
    // its writes stop, and so do the controller's.
    std::thread::sleep(Duration::from_secs(8));
    let writes = |user: &str| {
        cp.audit_events()
            .into_iter()
            .filter(|e| e.user == user && e.resource == "nodenetworkreports" && e.verb == "patch")
            .count()
    };
    let (agent_before, controller_before) = (writes(AGENT_USER), writes(CONTROLLER_USER));
    std::thread::sleep(Duration::from_secs(12));
    let (agent_after, controller_after) = (writes(AGENT_USER), writes(CONTROLLER_USER));
    assert_eq!(controller_after, controller_before, "the controller kept writing reports");
    assert_eq!(
        agent_after,
        agent_before,
        "the agent wrote for jitter:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // No request of either was forbidden.
    let forbidden: Vec<String> = cp
        .audit_events()
        .into_iter()
        .filter(|e| (e.user == AGENT_USER || e.user == CONTROLLER_USER) && e.code == 403)
        .map(|e| format!("{} {} {} {}", e.user, e.verb, e.resource, e.uri))
        .collect();
    assert!(forbidden.is_empty(), "{forbidden:#?}");
    drop(responder);
}
