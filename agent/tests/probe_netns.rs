//! `terway-hybrid-agent probe` across real network namespaces: an on-prem
//! node behind an IDC edge router, joined to it by a "leased line" of MTU
//! 1400, and two cloud nodes on the edge's other side. The on-prem node runs
//! the agent in its DaemonSet mode (`run`), which answers probes.
//!
//! - cloud-1's path crosses the leased line: the edge sends ICMP
//!   "fragmentation needed", the kernel learns 1400.
//! - cloud-2's link into the edge silently drops IP packets over 1300 bytes
//!   (the edge's side of the veth has MTU 1296: veth drops what exceeds the
//!   receiver's MTU plus a VLAN header, without any ICMP), so only the size
//!   search finds 1300.
//! - An address on the IDC subnet where nobody lives is unreachable.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test probe_netns`.

use std::time::{Duration, Instant};

use serde_json::Value;
use terway_hybrid_testkit::{require_root, veth_pair, wait_for_described, ChildGuard, NetNs};

const AGENT: &str = env!("CARGO_BIN_EXE_terway-hybrid-agent");
const IDC_NODE: &str = "10.31.9.2";

struct Sites {
    _agent: ChildGuard,
    _edge: NetNs,
    _idc: NetNs,
    cloud1: NetNs,
    cloud2: NetNs,
    _root: tempfile::TempDir,
    _log: tempfile::NamedTempFile,
}

fn sites() -> Sites {
    require_root();
    let edge = NetNs::new("edge");
    let idc = NetNs::new("idc");
    let cloud1 = NetNs::new("cloud1");
    let cloud2 = NetNs::new("cloud2");
    veth_pair(&edge, "line", "10.31.9.1/24", &idc, "eth0", "10.31.9.2/24");
    edge.ip("link set line mtu 1400");
    idc.ip("link set eth0 mtu 1400");
    veth_pair(&edge, "c1", "10.31.1.1/24", &cloud1, "eth0", "10.31.1.2/24");
    veth_pair(&edge, "c2", "10.31.2.1/24", &cloud2, "eth0", "10.31.2.2/24");
    edge.ip("link set c2 mtu 1296");
    idc.ip("route add default via 10.31.9.1");
    cloud1.ip("route add default via 10.31.1.1");
    cloud2.ip("route add default via 10.31.2.1");
    let sysctl = edge.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    assert!(sysctl.status.success(), "ip_forward: {sysctl:?}");
    let root = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let args = [
        "run",
        "--standalone",
        "--host-root",
        root.path().to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:9797",
    ];
    let agent = idc.spawn_logged(AGENT, &args, log.path());
    let sites = Sites { _agent: agent, _edge: edge, _idc: idc, cloud1, cloud2, _root: root, _log: log };
    // The agent answers once it has bound its probe port.
    wait_for_described(
        "the on-prem agent answering probes",
        Duration::from_secs(20),
        || probe(&sites.cloud1, &[IDC_NODE], 1000).0.then_some(()),
        || std::fs::read_to_string(sites._log.path()).unwrap_or_default(),
    );
    sites
}

/// Runs `probe --output json` in `ns`: (exit 0, the per-peer results).
fn probe(ns: &NetNs, peers: &[&str], timeout_ms: u64) -> (bool, Vec<Value>) {
    let mut args = vec!["probe", "--output", "json", "--timeout-ms"];
    let timeout = timeout_ms.to_string();
    args.push(&timeout);
    for p in peers {
        args.extend(["--peer", p]);
    }
    let out = ns.exec(AGENT, &args);
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {out:?}"));
    (out.status.success(), results)
}

#[test]
fn path_mtu_from_icmp_from_a_silent_path_and_an_unreachable_peer() {
    let sites = sites();

    // cloud-1: ICMP from the edge teaches the kernel the leased line's 1400.
    let (ok, r) = probe(&sites.cloud1, &[IDC_NODE], 5000);
    assert!(ok, "{r:#?}");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["peer"], format!("{IDC_NODE}:9799"));
    assert_eq!(r[0]["reachable"], true);
    assert_eq!(r[0]["pathMtu"], 1400, "{r:#?}");
    assert!(r[0]["rttMs"].as_f64().is_some_and(|ms| ms > 0.0), "{r:#?}");
    assert_eq!(r[0]["route"]["gateway"], "10.31.1.1", "{r:#?}");
    assert_eq!(r[0]["route"]["device"], "eth0", "{r:#?}");
    assert_eq!(r[0]["route"]["protocol"], "boot", "`ip route add` installs with proto boot: {r:#?}");

    // cloud-2: nothing over 1300 bytes arrives and nobody says so.
    let start = Instant::now();
    let (ok, r) = probe(&sites.cloud2, &[IDC_NODE], 5000);
    assert!(ok, "{r:#?}");
    assert_eq!(r[0]["pathMtu"], 1300, "the size search finds the silent limit: {r:#?}");
    assert!(start.elapsed() < Duration::from_secs(8), "within its timeout: {:?}", start.elapsed());

    // Nobody at .77: unreachable, exit 1, within the timeout; the peer
    // that answers is still reported.
    let start = Instant::now();
    let (ok, r) = probe(&sites.cloud1, &["10.31.9.77", IDC_NODE], 1500);
    assert!(!ok, "exit 1 when a peer is unreachable: {r:#?}");
    assert!(start.elapsed() < Duration::from_secs(6), "peers are probed in parallel: {:?}", start.elapsed());
    assert_eq!(r[0]["reachable"], false, "{r:#?}");
    assert_eq!(r[0]["pathMtu"], Value::Null);
    assert!(r[0]["note"].as_str().is_some_and(|n| n.contains("TCP")), "says what was tried: {r:#?}");
    assert_eq!(r[1]["reachable"], true, "{r:#?}");

    // The text table names the peer and the figures.
    let out = sites.cloud2.exec(AGENT, &["probe", "--peer", IDC_NODE]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("10.31.9.2:9799") && text.contains("1300") && text.contains("via 10.31.2.1"),
        "{text}"
    );
}

#[test]
fn respond_answers_probes_and_bad_peers_are_refused() {
    require_root();
    let a = NetNs::new("proba");
    let b = NetNs::new("probb");
    veth_pair(&a, "eth0", "10.32.0.1/24", &b, "eth0", "10.32.0.2/24");
    let log = tempfile::NamedTempFile::new().unwrap();
    let _responder = b.spawn_logged(AGENT, &["respond", "--probe-addr", "0.0.0.0:7000"], log.path());
    let (ok, r) = wait_for_described(
        "the responder",
        Duration::from_secs(20),
        || Some(probe(&a, &["10.32.0.2:7000"], 1000)).filter(|(ok, _)| *ok),
        || std::fs::read_to_string(log.path()).unwrap_or_default(),
    );
    assert!(ok);
    assert_eq!(r[0]["pathMtu"], 1500, "a plain veth: {r:#?}");
    assert_eq!(r[0]["route"]["protocol"], "kernel", "the connected route: {r:#?}");
    assert!(r[0]["route"].get("gateway").is_none(), "{r:#?}");

    // Bad input: exit 2 from clap, naming the value.
    let out = a.exec(AGENT, &["probe", "--peer", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"), "{out:?}");
}
