//! A real Calico-like BGP node: two namespaces on one LAN, BIRD 2 on each
//! (as calico-node runs BIRD), the session Established, BIRD's routes in the
//! kernel, and `terway-hybrid-agent detect` in node 1 with BIRD's control
//! socket where calico-node puts it (`/var/run/calico/bird.ctl`).
//!
//! Run as root with bird2 installed:
//! `cargo test -p terway-hybrid-agent --test detect_bgp`.

use std::time::Duration;

use terway_hybrid_api::{CheckName, CheckStatus, Confidence, Plugin, Scenario};
use terway_hybrid_testkit::agent_node::{detect_in, snapshot_in, CALICO_CONFLIST};
use terway_hybrid_testkit::{bird, require_root, veth_pair, wait_for_described, HostRoot, NetNs};

const ASN: u32 = 64512;
const NODE1_IP: &str = "192.168.88.1";
const NODE2_IP: &str = "192.168.88.2";
/// node 1's IPAM block; node 2 owns two.
const NODE1_BLOCKS: [&str; 1] = ["10.244.0.0/26"];
const NODE2_BLOCKS: [&str; 2] = ["10.244.1.0/26", "10.244.1.64/26"];

#[test]
fn calico_bgp_node_with_live_bird_is_bgp() {
    require_root();
    // Declared first, dropped last: BIRD and the pods go before the nodes.
    let node1 = NetNs::new("bgpnode1");
    let node2 = NetNs::new("bgpnode2");
    let root1 = HostRoot::new();
    let root2 = HostRoot::new();
    veth_pair(&node1, "eth0", &format!("{NODE1_IP}/24"), &node2, "eth0", &format!("{NODE2_IP}/24"));

    // Two Calico workloads on node 1, from its block.
    let mut pods = Vec::new();
    for (host_if, ip) in [("cali1f3c9a2b7d4", "10.244.0.5"), ("cali8e2d04c6a91", "10.244.0.6")] {
        let pod = NetNs::new("bgppod");
        node1.ip_args(&["link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", pod.name()]);
        pod.ip_args(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
        pod.ip("link set eth0 up");
        pod.ip("route add 169.254.1.1 dev eth0 scope link");
        pod.ip("route add default via 169.254.1.1 dev eth0");
        node1.ip_args(&["link", "set", host_if, "up"]);
        node1.ip_args(&["route", "add", ip, "dev", host_if, "scope", "link"]);
        pods.push(pod);
    }
    root1.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    root1.write("var/lib/calico/nodename", "node-1\n");

    let bird1 = bird::start(
        &node1,
        &bird::calico_like_config(NODE1_IP, ASN, NODE2_IP, &NODE1_BLOCKS),
        &root1.path().join("var/run/calico/bird.ctl"),
    );
    let bird2 = bird::start(
        &node2,
        &bird::calico_like_config(NODE2_IP, ASN, NODE1_IP, &NODE2_BLOCKS),
        &root2.path().join("var/run/calico/bird.ctl"),
    );
    bird1.wait_established(Duration::from_secs(30));
    bird2.wait_established(Duration::from_secs(30));

    // BIRD's kernel protocol exports the peer's blocks into node 1's kernel.
    let bird_routes = || node1.ip_output(&["route", "show", "proto", "bird"]);
    wait_for_described(
        "node 2's blocks as proto bird routes in node 1's kernel",
        Duration::from_secs(30),
        || {
            let routes = bird_routes();
            NODE2_BLOCKS
                .iter()
                .all(|b| routes.lines().any(|l| l.starts_with(b) && l.contains(&format!("via {NODE2_IP}"))))
                .then_some(())
        },
        || format!("{}\n--- bird 1 ---\n{}", bird_routes(), bird1.show_protocols()),
    );

    let (detection, raw, _) = detect_in(&node1, root1.path());
    eprintln!("detect in {}:\n{raw}", node1.name());
    let context = || {
        format!(
            "\n--- detect ---\n{raw}\n--- snapshot ---\n{:#}\n--- proto bird routes ---\n{}\n--- bird ---\n{}",
            snapshot_in(&node1, root1.path()),
            bird_routes(),
            bird1.show_protocols()
        )
    };
    let d = &detection.detection;
    assert!(
        d.scenario == Scenario::Bgp && d.plugin == Plugin::CalicoBgp,
        "expected bgp/calico-bgp, got {}/{}{}",
        d.scenario,
        d.plugin,
        context()
    );
    assert_eq!(d.confidence, Confidence::High, "{}", context());
    let has = |signal: &str, needles: &[&str]| {
        d.evidence.iter().any(|e| e.signal == signal && needles.iter().all(|n| e.detail.contains(n)))
    };
    assert!(
        has("bird", &["1 of 1 BGP sessions Established"]),
        "expected BIRD's answer as evidence{}",
        context()
    );
    assert!(
        has("bgp-socket", &["TCP 179", NODE2_IP]),
        "expected the BGP session's socket as evidence{}",
        context()
    );
    assert!(has("routes", &["proto bird"]), "expected BIRD's kernel routes as evidence{}", context());
    assert!(
        has("cni-config", &["10-calico.conflist"]),
        "expected the calico config as evidence{}",
        context()
    );
    let scenario_check = detection
        .checks
        .iter()
        .find(|c| c.name == CheckName::ScenarioDetected)
        .expect("a ScenarioDetected check");
    assert_eq!(scenario_check.status, CheckStatus::Pass, "{}", context());
    assert!(d.stale.is_empty(), "nothing here is stale{}", context());

    // The snapshot carries BIRD's own view of its protocols.
    let snap = snapshot_in(&node1, root1.path());
    assert_eq!(snap["bird"]["state"], "answered", "{snap:#}");
    let protocols = snap["bird"]["protocols"].as_array().expect("protocols");
    assert!(
        protocols.iter().any(|p| p["name"] == "peer1" && p["proto"] == "BGP" && p["established"] == true),
        "{snap:#}"
    );

    // Each session, as `detect --output json` prints it: node 2 announces
    // its two blocks, and BIRD lists them as imported from the session.
    let peers = serde_json::to_value(&detection.bgp_peers).unwrap();
    assert_eq!(
        peers,
        serde_json::json!([{
            "peer": NODE2_IP,
            "state": "Established",
            "importedRoutes": NODE2_BLOCKS.len(),
            "importedPrefixes": NODE2_BLOCKS,
        }]),
        "{}",
        context()
    );
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["bgpPeers"], peers, "the JSON output carries them");
    // The pods' MTU: the cali* veths' (1500, a veth's default).
    assert_eq!(raw["podMtu"], 1500, "{}", context());

    // BIRD on node 2 stops: the session leaves Established, nothing is
    // imported any more.
    drop(bird2);
    let down = wait_for_described(
        "node 1's session with node 2 to go down",
        Duration::from_secs(30),
        || {
            let (d, _, _) = detect_in(&node1, root1.path());
            d.bgp_peers.first().filter(|p| !p.is_up()).cloned()
        },
        || bird1.show_protocols(),
    );
    assert_eq!((down.peer.as_str(), down.imported_routes), (NODE2_IP, 0), "{down:?}");
    assert!(down.imported_prefixes.is_empty(), "{down:?}");
}
