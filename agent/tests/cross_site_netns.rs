//! Two sites on the real kernel (docs/testing.md, "Cross-site"): an on-prem
//! site of two Calico-like BGP nodes (BIRD, full-mesh iBGP; op-1 also
//! peers eBGP with the VBR), an IDC edge router, a "leased line" of MTU 1400
//! from the edge to the VBR, a VBR running BIRD that announces the VPC's
//! route and learns the on-prem ones, and a cloud site of two nodes behind
//! the VBR. Every node runs `terway-hybrid-agent respond`; the real agent
//! binary detects (`detect --output json`, BIRD's socket where calico-node
//! puts it) and probes (`probe --output json`) from inside the nodes.
//!
//! The on-prem nodes have no default route: they reach the VPC only through
//! the route BIRD learns from the VBR, as a BGP site does.
//!
//! Cases, one topology, in order: (a) healthy, (c) the leased line's 1400
//! below the pods' 1450/1500, (d) cloud-2's link silently dropping IP
//! packets over 1300 bytes, (e) cloud-2 unreachable, (b) the VBR's BIRD
//! stopped. Each case also writes what the agents found as a
//! `preflight --from-dump` directory ([`write_dump`]) and asserts the
//! verdicts of `BGPPeers`, `CrossSiteConnectivity` and `PathMTU` on it.
//!
//! Run as root with bird2 installed, after building the CLI:
//! `cargo build -p terway-hybrid-controller --bin terway-hybrid &&
//!  cargo test -p terway-hybrid-agent --test cross_site_netns`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use terway_hybrid_agent::report::{report_identity, report_status};
use terway_hybrid_api::cross_site::{CloudNetwork, ProbePath, ProbeResult, ProbeTarget, MAX_PROBE_RESULTS};
use terway_hybrid_api::vocabulary::CLOUD_LABEL;
use terway_hybrid_api::{NodeDetection, Plugin, Role};
use terway_hybrid_testkit::{bird, require_root, veth_pair, wait_for_described, ChildGuard, HostRoot, NetNs};

const AGENT: &str = env!("CARGO_BIN_EXE_terway-hybrid-agent");
const ONPREM_AS: u32 = 64512;
const VBR_AS: u32 = 45104;
/// The VBR's end of the leased line: its BGP address.
const VBR_IP: &str = "10.40.9.2";
const EDGE_LINE_IP: &str = "10.40.9.1";
const VPC: &str = "10.20.0.0/16";
const LINE_MTU: u32 = 1400;
/// Pods' MTU on each site (the veths the CNIs make).
const ONPREM_POD_MTU: u32 = 1450;
const CLOUD_POD_MTU: u32 = 1500;
const PROBE_TIMEOUT_MS: &str = "2000";

const CALICO_CONFLIST: &str = r#"{"name": "k8s-pod-network", "cniVersion": "0.3.1",
 "plugins": [{"type": "calico", "ipam": {"type": "calico-ipam"}}, {"type": "portmap"}]}"#;
const TERWAY_CONFLIST: &str = r#"{"name": "terway", "cniVersion": "0.4.0",
 "plugins": [{"type": "terway", "eniip_virtual_type": "Veth"}]}"#;

/// One Kubernetes node: its namespace, host root, responder and role.
struct SiteNode {
    name: &'static str,
    ip: &'static str,
    role: Role,
    ns: NetNs,
    root: HostRoot,
    _responder: Option<ChildGuard>,
}

/// The whole world. Field order is drop order: daemons and nodes before
/// the routers they hang off.
struct World {
    vbr_bird: Option<bird::Bird>,
    op_birds: Vec<bird::Bird>,
    nodes: Vec<SiteNode>,
    vbr: NetNs,
    _edge: NetNs,
    logs: tempfile::TempDir,
}

impl World {
    fn node(&self, name: &str) -> &SiteNode {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    fn on_site(&self, role: Role) -> impl Iterator<Item = &SiteNode> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    /// BIRD's view and every node's routes, for a failure message.
    fn describe(&self) -> String {
        let mut out = String::new();
        for b in self.op_birds.iter().chain(&self.vbr_bird) {
            out += &format!("--- {} ---\n{}\n", b.socket().display(), b.birdc(&["show", "protocols"]));
        }
        for n in &self.nodes {
            out += &format!("--- {} routes ---\n{}", n.name, n.ns.ip_output(&["route"]));
        }
        out
    }
}

fn sysctl_forward(ns: &NetNs) {
    let out = ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    assert!(out.status.success(), "ip_forward in {}: {out:?}", ns.name());
}

/// A Calico-like node's BIRD: its block announced as a blackhole, the
/// kernel protocol exporting what it learns (proto bird), a full iBGP mesh
/// (next hop self, so the VPC route op-1 learns is usable on op-2) and,
/// on op-1, the eBGP session to the VBR over the edge (multihop, the VBR's
/// address reached through a static route).
fn onprem_bird(router_id: &str, mesh: &[&str], block: &str, vbr: bool) -> String {
    let mut conf = format!(
        r#"log stderr all;
router id {router_id};
protocol device {{}}
protocol kernel kernel1 {{
  learn off;
  ipv4 {{ import none; export where proto != "to_vbr"; }};
}}
protocol static static_blocks {{
  ipv4;
  route {block} blackhole;
}}
protocol static to_vbr {{
  ipv4;
  route 10.40.9.0/30 via 10.40.1.1;
}}
"#
    );
    for peer in mesh {
        conf += &format!(
            r#"protocol bgp Mesh_{name} {{
  local as {ONPREM_AS};
  neighbor {peer} as {ONPREM_AS};
  direct;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 {{ import all; export where proto = "static_blocks" || proto = "vbr"; next hop self; }};
}}
"#,
            name = peer.replace('.', "_")
        );
    }
    if vbr {
        conf += &format!(
            r#"protocol bgp vbr {{
  local as {ONPREM_AS};
  neighbor {VBR_IP} as {VBR_AS};
  multihop 2;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 {{ import all; export where proto = "static_blocks" || proto ~ "Mesh_*"; }};
}}
"#
        );
    }
    conf
}

/// The VBR: announces the VPC, learns the on-prem routes (kept in BIRD:
/// the VBR's kernel reaches the IDC by the leased line's static route).
fn vbr_bird(peers: &[&str]) -> String {
    let mut conf = format!(
        r#"log stderr all;
router id {VBR_IP};
protocol device {{}}
protocol static vpc {{
  ipv4;
  route {VPC} blackhole;
}}
protocol static to_idc {{
  ipv4;
  route 10.40.1.0/24 via {EDGE_LINE_IP};
}}
"#
    );
    for (i, peer) in peers.iter().enumerate() {
        conf += &format!(
            r#"protocol bgp idc{i} {{
  local as {VBR_AS};
  neighbor {peer} as {ONPREM_AS};
  multihop 2;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 {{ import all; export where proto = "vpc"; }};
}}
"#
        );
    }
    conf
}

fn world() -> World {
    require_root();
    let logs = tempfile::Builder::new().prefix("thtest-xsite-").tempdir().unwrap();
    let edge = NetNs::new("xs-edge");
    let vbr = NetNs::new("xs-vbr");
    // The IDC LAN: a bridge on the edge, 10.40.1.0/24.
    edge.ip("link add br0 type bridge");
    edge.ip("addr add 10.40.1.1/24 dev br0");
    edge.ip("link set br0 up");
    // The leased line, MTU 1400 on both ends.
    veth_pair(&edge, "line", &format!("{EDGE_LINE_IP}/30"), &vbr, "line", &format!("{VBR_IP}/30"));
    edge.ip(&format!("link set line mtu {LINE_MTU}"));
    vbr.ip(&format!("link set line mtu {LINE_MTU}"));
    // The edge's static route into the VPC; the VBR's back to the IDC LAN.
    edge.ip(&format!("route add {VPC} via {VBR_IP}"));
    vbr.ip(&format!("route add 10.40.1.0/24 via {EDGE_LINE_IP}"));
    sysctl_forward(&edge);
    sysctl_forward(&vbr);

    let mut nodes = Vec::new();
    for (name, ip, block, host_if) in [
        ("op-1", "10.40.1.11", "10.244.11.0/26", "cali1a2b3c4d5e6"),
        ("op-2", "10.40.1.12", "10.244.12.0/26", "cali6e5d4c3b2a1"),
    ] {
        let ns = NetNs::new("xs-op");
        edge.ip_args(&["link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        edge.ip_args(&["link", "set", name, "master", "br0", "up"]);
        ns.ip_args(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns.ip("link set eth0 up");
        // What reaches the VBR's BGP address; no default route.
        ns.ip("route add 10.40.9.0/30 via 10.40.1.1");
        sysctl_forward(&ns);
        // A pod's host-side veth, as Calico makes it with MTU 1450.
        ns.ip_args(&[
            "link",
            "add",
            host_if,
            "mtu",
            &ONPREM_POD_MTU.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            "pod0",
        ]);
        ns.ip_args(&["link", "set", host_if, "up"]);
        let root = HostRoot::new();
        root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
        root.write("var/lib/calico/nodename", format!("{name}\n"));
        nodes.push((name, ip, block, ns, root));
    }
    let mut site = Vec::new();
    let mut op_birds = Vec::new();
    let ips: Vec<&str> = nodes.iter().map(|n| n.1).collect();
    for (name, ip, block, ns, root) in nodes {
        let mesh: Vec<&str> = ips.iter().copied().filter(|p| *p != ip).collect();
        let conf = onprem_bird(ip, &mesh, block, name == "op-1");
        op_birds.push(bird::start(&ns, &conf, &root.path().join("var/run/calico/bird.ctl")));
        site.push(SiteNode { name, ip, role: Role::OnPrem, ns, root, _responder: None });
    }
    let vbr_socket = logs.path().join("vbr/bird.ctl");
    let vbr_bird = bird::start(&vbr, &vbr_bird(&["10.40.1.11"]), &vbr_socket);

    // The cloud site: each node on its own vSwitch link into the VBR.
    for (name, ip, gw, port) in
        [("cloud-1", "10.20.1.11", "10.20.1.1", "vc1"), ("cloud-2", "10.20.2.11", "10.20.2.1", "vc2")]
    {
        let ns = NetNs::new("xs-cloud");
        veth_pair(&vbr, port, &format!("{gw}/24"), &ns, "eth0", &format!("{ip}/24"));
        ns.ip_args(&["route", "add", "default", "via", gw]);
        ns.ip_args(&[
            "link",
            "add",
            "cali0c1d2e3f4a5",
            "mtu",
            &CLOUD_POD_MTU.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            "pod0",
        ]);
        ns.ip("link set cali0c1d2e3f4a5 up");
        let root = HostRoot::new();
        root.write("etc/cni/net.d/10-terway.conflist", TERWAY_CONFLIST);
        site.push(SiteNode { name, ip, role: Role::Cloud, ns, root, _responder: None });
    }
    for n in &mut site {
        let log = logs.path().join(format!("{}-respond.log", n.name));
        n._responder = Some(n.ns.spawn_logged(AGENT, &["respond", "--probe-addr", "0.0.0.0:9799"], &log));
    }
    World { vbr_bird: Some(vbr_bird), op_birds, nodes: site, vbr, _edge: edge, logs }
}

fn stdout_json(what: &str, out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}), {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `detect --output json` in the node, parsed.
fn detect(n: &SiteNode) -> NodeDetection {
    let root = n.root.path().to_str().unwrap();
    let out = n.ns.exec(AGENT, &["detect", "--host-root", root, "--output", "json"]);
    assert!(out.status.success(), "detect in {}: {out:?}", n.name);
    serde_json::from_value(stdout_json("detect", &out))
        .unwrap_or_else(|e| panic!("detect in {}: {e}", n.name))
}

/// `probe --output json` from `from` to every node of the other site, in
/// one run (the agent probes peers in parallel): results in peer order.
fn probe(from: &SiteNode, peers: &[&SiteNode]) -> Vec<Value> {
    let mut args = vec!["probe", "--output", "json", "--timeout-ms", PROBE_TIMEOUT_MS];
    for p in peers {
        args.extend(["--peer", p.ip]);
    }
    let out = from.ns.exec(AGENT, &args);
    let results = stdout_json("probe", &out);
    let results = results.as_array().unwrap_or_else(|| panic!("probe printed no list: {results}")).clone();
    assert_eq!(results.len(), peers.len(), "{results:#?}");
    // Exit 0 exactly when every peer answered.
    let all = results.iter().all(|r| r["reachable"] == true);
    assert_eq!(out.status.code(), Some(if all { 0 } else { 1 }), "{results:#?}");
    results
}

/// What one case found: every node's detection and its probes toward the
/// other site, as (peer node, result).
struct Found {
    detections: Vec<(String, NodeDetection)>,
    probes: Vec<(String, Vec<(String, Value)>)>,
}

impl Found {
    fn detection(&self, node: &str) -> &NodeDetection {
        &self.detections.iter().find(|(n, _)| n == node).unwrap().1
    }

    fn probe(&self, from: &str, to: &str) -> &Value {
        let list = &self.probes.iter().find(|(n, _)| n == from).unwrap().1;
        &list.iter().find(|(n, _)| n == to).unwrap().1
    }
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (node, d) in &self.detections {
            writeln!(
                f,
                "{node}: {} podMtu {:?} bgpPeers {}",
                d.detection.plugin,
                d.pod_mtu,
                json!(d.bgp_peers)
            )?;
        }
        for (from, list) in &self.probes {
            for (to, r) in list {
                writeln!(f, "{from} -> {to}: {r}")?;
            }
        }
        Ok(())
    }
}

/// Detects on every node and probes from every node to every node of the
/// other site, all nodes at once.
fn observe(w: &World) -> Found {
    std::thread::scope(|s| {
        let jobs: Vec<_> = w
            .nodes
            .iter()
            .map(|n| {
                s.spawn(move || {
                    let other = if n.role == Role::OnPrem { Role::Cloud } else { Role::OnPrem };
                    let peers: Vec<&SiteNode> = w.on_site(other).collect();
                    let results = probe(n, &peers);
                    let named = peers.iter().map(|p| p.name.to_owned()).zip(results).collect();
                    ((n.name.to_owned(), detect(n)), (n.name.to_owned(), named))
                })
            })
            .collect();
        let (detections, probes) = jobs.into_iter().map(|j| j.join().expect("a node's observation")).unzip();
        Found { detections, probes }
    })
}

/// A probe's JSON as the report's `ProbeResult`.
fn probe_result(peer_node: &str, r: &Value, probed: Timestamp) -> ProbeResult {
    let route = r.get("route").filter(|v| v.is_object()).map(|route| {
        let mut parts = Vec::new();
        for (word, key) in [("via", "gateway"), ("dev", "device"), ("proto", "protocol")] {
            if let Some(v) = route[key].as_str() {
                parts.push(format!("{word} {v}"));
            }
        }
        parts.join(" ")
    });
    ProbeResult {
        node: peer_node.to_owned(),
        address: r["peer"].as_str().unwrap_or_default().to_owned(),
        path: ProbePath::Host,
        reachable: r["reachable"] == true,
        rtt_ms: r["rttMs"].as_f64(),
        path_mtu: r["pathMtu"].as_u64().and_then(|m| u32::try_from(m).ok()),
        route,
        note: r["note"].as_str().map(str::to_owned),
        probed: Time(probed),
    }
}

fn k8s_node(n: &SiteNode) -> Node {
    let mut labels = std::collections::BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), n.name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
    ]);
    if n.role == Role::Cloud {
        labels.insert(CLOUD_LABEL.to_owned(), "true".to_owned());
    }
    Node {
        metadata: ObjectMeta {
            name: Some(n.name.to_owned()),
            uid: Some(format!("uid-{}", n.name)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: n.ip.into() }]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

/// Writes what the agents found as a directory `preflight --from-dump`
/// reads (docs/contracts.md §9; laid out like `examples/*/`): the Nodes,
/// one NodeNetworkReport per node whose status is what its agent would
/// write (`report_status` of its detection, its probes as `status.probes`)
/// and a TerwayRollout naming the VBR's BGP address in `spec.crossSite`.
fn write_dump(w: &World, found: &Found, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let now = Timestamp::now();
    let mut nodes = Vec::new();
    let mut reports = Vec::new();
    for n in &w.nodes {
        let node = k8s_node(n);
        let mut report = report_identity(&node).expect("a node with a name and uid");
        let mut status = report_status(found.detection(n.name), n.role, Time(now));
        let probes = &found.probes.iter().find(|(f, _)| f == n.name).unwrap().1;
        status.probes =
            probes.iter().take(MAX_PROBE_RESULTS).map(|(peer, r)| probe_result(peer, r, now)).collect();
        // What the controller would have asked for: the peers probed.
        report.spec.probe_targets = status
            .probes
            .iter()
            .map(|p| ProbeTarget { node: p.node.clone(), address: p.address.clone(), path: ProbePath::Host })
            .collect();
        // What a cloud agent reads from the ECS metadata service (absent here).
        if n.role == Role::Cloud {
            status.cloud_network =
                Some(CloudNetwork { vpc_cidr: Some(VPC.to_owned()), vswitch_cidrs: vec![] });
        }
        report.status = Some(status);
        nodes.push(serde_json::to_value(&node).unwrap());
        reports.push(serde_json::to_value(&report).unwrap());
    }
    let write = |name: &str, v: &Value| {
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(v).unwrap()).unwrap()
    };
    write("nodes.json", &list(nodes));
    write("nodenetworkreports.json", &list(reports));
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\n  generation: 1\n\
             spec:\n  mode: Auto\n  crossSite:\n    vbrPeers: [\"{VBR_IP}\"]\n"
        ),
    )
    .unwrap();
}

/// The `terway-hybrid` CLI, built beside the agent (an agent test cannot
/// name another package's binary through cargo).
fn cli() -> PathBuf {
    let cli = Path::new(AGENT).with_file_name("terway-hybrid");
    assert!(
        cli.is_file(),
        "{} is missing: build it first (cargo build -p terway-hybrid-controller --bin terway-hybrid)",
        cli.display()
    );
    cli
}

/// `terway-hybrid preflight --from-dump DIR --output json`: the cross-site
/// checks' verdicts on what the agents found, as `name -> (status, reason,
/// message)`.
fn preflight(dir: &Path) -> BTreeMap<String, (String, String, String)> {
    let out = std::process::Command::new(cli())
        .args(["preflight", "--from-dump", dir.to_str().unwrap(), "--output", "json"])
        .output()
        .unwrap();
    // 0 passed, 1 a check failed; 2 would be unreadable input.
    assert!(matches!(out.status.code(), Some(0 | 1)), "preflight on {}: {out:?}", dir.display());
    let plan = stdout_json("preflight", &out);
    let verdicts: BTreeMap<String, (String, String, String)> = plan["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            ["BGPPeers", "CrossSiteConnectivity", "PathMTU"].contains(&c["name"].as_str().unwrap_or(""))
        })
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (field("name"), (field("status"), field("reason"), field("message")))
        })
        .collect();
    assert_eq!(verdicts.len(), 3, "the cross-site checks in {}: {plan:#}", dir.display());
    verdicts
}

/// Asserts `check`'s status and that its message names each of `words`.
fn verdict(v: &BTreeMap<String, (String, String, String)>, check: &str, status: &str, words: &[&str]) {
    let (got, reason, message) = &v[check];
    assert_eq!(got, status, "{check}: {reason}: {message}");
    for w in words {
        assert!(message.contains(w), "{check} names {w:?}: {reason}: {message}");
    }
}

fn peer_of<'a>(d: &'a NodeDetection, peer: &str) -> Option<&'a terway_hybrid_api::BgpPeer> {
    d.bgp_peers.iter().find(|p| p.peer == peer)
}

#[test]
fn two_sites_over_a_leased_line() {
    let start = Instant::now();
    let mut w = world();
    let context = |w: &World| w.describe();
    for b in &w.op_birds {
        b.wait_established(Duration::from_secs(30));
    }
    w.vbr_bird.as_ref().unwrap().wait_established(Duration::from_secs(30));
    // The VPC's route, through BIRD, in both on-prem kernels.
    for n in w.on_site(Role::OnPrem) {
        wait_for_described(
            &format!("{VPC} as a proto bird route in {}", n.name),
            Duration::from_secs(20),
            || n.ns.ip_output(&["route", "show", VPC, "proto", "bird"]).contains(VPC).then_some(()),
            || context(&w),
        );
    }
    // The VBR learned the on-prem blocks.
    let vbr_routes = w.vbr_bird.as_ref().unwrap().birdc(&["show", "route", "protocol", "idc0"]);
    assert!(vbr_routes.contains("10.244.11.0/26") && vbr_routes.contains("10.244.12.0/26"), "{vbr_routes}");

    // (a) healthy, (c) the leased line's MTU below the pods'.
    let a = observe(&w);
    let dumps = w.logs.path().join("dumps");
    write_dump(&w, &a, &dumps.join("healthy"));
    let why = || format!("{a}\n{}", context(&w));
    let op1 = a.detection("op-1");
    assert_eq!(op1.detection.plugin, Plugin::CalicoBgp, "{}", why());
    let vbr = peer_of(op1, VBR_IP).unwrap_or_else(|| panic!("no VBR session: {}", why()));
    assert!(vbr.is_up(), "{}", why());
    assert_eq!(vbr.imported_prefixes, [VPC], "the VBR's session imports the VPC route: {}", why());
    let mesh = peer_of(op1, "10.40.1.12").unwrap_or_else(|| panic!("no mesh session: {}", why()));
    assert!(mesh.is_up() && mesh.imported_prefixes.contains(&"10.244.12.0/26".to_owned()), "{}", why());
    assert!(peer_of(a.detection("op-2"), "10.40.1.11").is_some_and(|p| p.is_up()), "{}", why());
    for n in &w.nodes {
        let d = a.detection(n.name);
        let want = if n.role == Role::OnPrem { ONPREM_POD_MTU } else { CLOUD_POD_MTU };
        assert_eq!(d.pod_mtu, Some(want), "{}'s podMtu: {}", n.name, why());
    }
    assert_eq!(a.detection("cloud-1").detection.plugin, Plugin::Terway, "{}", why());
    for (from, list) in &a.probes {
        for (to, r) in list {
            assert_eq!(r["reachable"], true, "{from} -> {to}: {}", why());
            assert_eq!(r["peer"], format!("{}:9799", w.node(to).ip), "{}", why());
        }
    }
    // Across the leased line both ways: ICMP from the line's ends teaches 1400.
    for (from, to) in [("op-1", "cloud-1"), ("op-2", "cloud-2"), ("cloud-1", "op-1"), ("cloud-2", "op-2")] {
        assert_eq!(a.probe(from, to)["pathMtu"], LINE_MTU, "{from} -> {to}: {}", why());
    }
    assert_eq!(a.probe("op-1", "cloud-1")["route"]["protocol"], "bird", "the route BIRD learned: {}", why());
    assert_eq!(
        a.probe("op-2", "cloud-1")["route"]["gateway"],
        "10.40.1.11",
        "via op-1 (next hop self): {}",
        why()
    );
    let v = preflight(&dumps.join("healthy"));
    verdict(&v, "BGPPeers", "pass", &[]);
    verdict(&v, "CrossSiteConnectivity", "pass", &[]);
    // 1400 on the line, 1450 and 1500 in the pods: large packets vanish.
    verdict(&v, "PathMTU", "fail", &["1400", "1500"]);

    // (d) cloud-2's link drops what is over 1300 bytes, without a word:
    // only the size search finds it (and cloud-2's own sends stop at 1296).
    w.node("cloud-2").ns.ip("link set eth0 mtu 1296");
    let d = observe(&w);
    write_dump(&w, &d, &dumps.join("silent-1300"));
    let why = || format!("{d}\n{}", context(&w));
    for from in ["op-1", "op-2"] {
        assert_eq!(d.probe(from, "cloud-2")["reachable"], true, "{}", why());
        assert_eq!(d.probe(from, "cloud-2")["pathMtu"], 1300, "{from} -> cloud-2: {}", why());
        assert_eq!(d.probe(from, "cloud-1")["pathMtu"], LINE_MTU, "cloud-1 untouched: {}", why());
    }
    assert_eq!(d.probe("cloud-2", "op-1")["pathMtu"], 1296, "{}", why());
    let v = preflight(&dumps.join("silent-1300"));
    verdict(&v, "CrossSiteConnectivity", "pass", &[]);
    verdict(&v, "PathMTU", "fail", &["cloud-2", "1296"]);

    // (e) cloud-2 gone from the VPC: named, unreachable; cloud-1 still fine.
    w.vbr.ip("link set vc2 down");
    let e = observe(&w);
    write_dump(&w, &e, &dumps.join("cloud-2-unreachable"));
    let why = || format!("{e}\n{}", context(&w));
    for from in ["op-1", "op-2"] {
        let r = e.probe(from, "cloud-2");
        assert_eq!((&r["peer"], &r["reachable"]), (&json!("10.20.2.11:9799"), &json!(false)), "{}", why());
        assert!(r["note"].as_str().is_some_and(|n| !n.is_empty()), "says why: {}", why());
        assert_eq!(e.probe(from, "cloud-1")["reachable"], true, "{}", why());
    }
    let v = preflight(&dumps.join("cloud-2-unreachable"));
    verdict(&v, "CrossSiteConnectivity", "fail", &["cloud-2", "10.20.2.11:9799"]);
    verdict(&v, "BGPPeers", "pass", &[]);
    w.vbr.ip("link set vc2 up");

    // (b) the VBR's BIRD stops: op-1's session leaves Established, the VPC
    // route leaves both on-prem kernels, and nothing crosses any more.
    drop(w.vbr_bird.take());
    for n in w.on_site(Role::OnPrem) {
        wait_for_described(
            &format!("{VPC} to leave {}'s kernel", n.name),
            Duration::from_secs(20),
            || (!n.ns.ip_output(&["route", "show", VPC]).contains(VPC)).then_some(()),
            || context(&w),
        );
    }
    let b = observe(&w);
    write_dump(&w, &b, &dumps.join("vbr-down"));
    let why = || format!("{b}\n{}", context(&w));
    let vbr =
        peer_of(b.detection("op-1"), VBR_IP).unwrap_or_else(|| panic!("the VBR session is gone: {}", why()));
    assert!(!vbr.is_up() && vbr.imported_prefixes.is_empty(), "{}", why());
    assert!(
        peer_of(b.detection("op-1"), "10.40.1.12").is_some_and(|p| p.is_up()),
        "the mesh stays: {}",
        why()
    );
    for (from, list) in &b.probes {
        for (to, r) in list {
            assert_eq!(r["reachable"], false, "{from} -> {to}: {}", why());
        }
    }
    let v = preflight(&dumps.join("vbr-down"));
    verdict(&v, "BGPPeers", "fail", &[VBR_IP]);
    verdict(&v, "CrossSiteConnectivity", "fail", &["op-1", "cloud-1"]);

    eprintln!("cross-site test took {:?}", start.elapsed());
}
