//! Pod-network probes sent by the node's responder pod for its hostNetwork
//! agent (`respond --delegate-from`, `probe --via`), across real network
//! namespaces wired as Calico wires a pod: the pod has a /32 behind a veth
//! whose node side has no address (proxy ARP, a host route), so the node
//! reaches the pod from its own address, `status.hostIP`.
//!
//! - `node`: the cloud node's host network, 10.33.0.2 on its uplink.
//! - `pod`: the responder pod, 10.244.1.2, its veth MTU 1450 (the pod MTU).
//! - `peer`: a responder on the other site, 10.33.0.3, routing the pod
//!   range back through the node.
//!
//! The delegated probe leaves from the pod: its path MTU is the pod's 1450
//! where the node's own path has 1500, and its route is the pod's. Requests
//! from another address, for another port or for too many peers get no answer.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test probe_delegate_netns`.

use std::time::Duration;

use serde_json::Value;
use terway_hybrid_testkit::{require_root, veth_pair, wait_for_described, NetNs};

const AGENT: &str = env!("CARGO_BIN_EXE_terway-hybrid-agent");

/// Runs `probe --output json [--via VIA] --peer ...` in `ns`: (exit code, stdout, stderr).
fn probe(ns: &NetNs, via: Option<&str>, peers: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["probe", "--output", "json", "--timeout-ms", "3000"];
    if let Some(v) = via {
        args.extend(["--via", v]);
    }
    for p in peers {
        args.extend(["--peer", p]);
    }
    let out = ns.exec(AGENT, &args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_responder_pod_probes_from_the_pod_network_for_its_own_node_only() {
    require_root();
    let node = NetNs::new("dnode");
    let pod = NetNs::new("dpod");
    let peer = NetNs::new("dpeer");
    veth_pair(&node, "eth0", "10.33.0.2/24", &peer, "eth0", "10.33.0.3/24");
    peer.ip("route add 10.244.1.0/24 via 10.33.0.2");
    // Proxy ARP answers for the pod's gateway 169.254.1.1 only when the node
    // routes it elsewhere: a real node's default route.
    node.ip("route add default via 10.33.0.3");
    // The pod as Calico makes it.
    node.ip_args(&["link", "add", "cali1", "type", "veth", "peer", "name", "eth0", "netns", pod.name()]);
    node.ip("link set cali1 up");
    node.ip("route add 10.244.1.2/32 dev cali1 scope link");
    for sysctl in ["net.ipv4.ip_forward=1", "net.ipv4.conf.cali1.proxy_arp=1"] {
        let out = node.exec("sysctl", &["-qw", sysctl]);
        assert!(out.status.success(), "{sysctl}: {out:?}");
    }
    pod.ip("addr add 10.244.1.2/32 dev eth0");
    pod.ip("link set eth0 mtu 1450");
    pod.ip("link set eth0 up");
    pod.ip("link set lo up");
    pod.ip("route add 169.254.1.1 dev eth0 scope link");
    pod.ip("route add default via 169.254.1.1 dev eth0");

    let logs = [tempfile::NamedTempFile::new().unwrap(), tempfile::NamedTempFile::new().unwrap()];
    let _remote = peer.spawn_logged(AGENT, &["respond"], logs[0].path());
    let _responder = pod.spawn_logged(AGENT, &["respond", "--delegate-from", "10.33.0.2"], logs[1].path());
    let log =
        || logs.iter().map(|l| std::fs::read_to_string(l.path()).unwrap_or_default()).collect::<String>();

    // The node's own path: 1500.
    let (code, out, err) = wait_for_described(
        "the peer's responder",
        Duration::from_secs(20),
        || Some(probe(&node, None, &["10.33.0.3"])).filter(|(code, _, _)| *code == Some(0)),
        log,
    );
    let host: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!((code, host[0]["pathMtu"].as_u64()), (Some(0), Some(1500)), "{out}");

    // Through the pod: the pod's 1450, the pod's route.
    let (code, out, err) = wait_for_described(
        "the responder pod",
        Duration::from_secs(20),
        || {
            Some(probe(&node, Some("10.244.1.2:9799"), &["10.33.0.3"]))
                .filter(|(code, _, _)| *code == Some(0))
        },
        log,
    );
    let via: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(code, Some(0));
    assert_eq!(via.len(), 1);
    assert_eq!(via[0]["peer"], "10.33.0.3:9799");
    assert_eq!(via[0]["reachable"], true, "{out}");
    assert_eq!(via[0]["pathMtu"], 1450, "sent from the pod, not the node: {out}");
    assert_eq!(via[0]["route"]["gateway"], "169.254.1.1", "the pod's route: {out}");
    assert_eq!(via[0]["route"]["device"], "eth0", "{out}");

    // An unreachable peer is reported as such, not as a failed delegation.
    let (code, out, _) = probe(&node, Some("10.244.1.2:9799"), &["10.33.0.99", "10.33.0.3"]);
    let r: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        (r[0]["reachable"].as_bool(), r[1]["reachable"].as_bool()),
        (Some(false), Some(true)),
        "{out}"
    );

    // Refused, with no answer: another port, too many peers, another source.
    let (code, _, err) = probe(&node, Some("10.244.1.2:9799"), &["10.33.0.3:22"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("the responder refused the request"), "{err}");
    let nine: Vec<String> = (1..=9).map(|i| format!("10.33.0.{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let (code, _, err) = probe(&node, Some("10.244.1.2:9799"), &nine);
    assert_eq!(code, Some(1));
    assert!(err.contains("at most 8 peers"), "the CLI says so first: {err}");
    let (code, _, err) = probe(&peer, Some("10.244.1.2:9799"), &["10.33.0.3"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the responder refused the request"),
        "only the node's own address is served: {err}"
    );
}
