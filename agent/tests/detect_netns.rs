//! `terway-hybrid-agent detect` against real kernel state: each test builds
//! one node in a fresh network namespace the way the CNI itself builds it
//! (devices, addresses, routes with the CNI's protocol numbers, pods in their
//! own namespaces, the files the CNI writes under a temporary host root) and
//! checks the scenario, plugin, evidence and node checks the agent reports.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test detect_netns`.
//! This kernel has no ipip, geneve, dummy or ipvlan modules; those datapaths
//! (Calico IPIP, Cilium Geneve, kube-router's dummy interface) are covered by
//! snapshot-based unit tests instead.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use terway_hybrid_api::{CheckName, CheckStatus, Confidence, Plugin, Scenario, Severity};
use terway_hybrid_testkit::agent_node::{
    detect_in, snapshot_timed, Node, CALICO_CONFLIST, CANAL_CONFLIST, CILIUM_CONFLIST, FLANNEL_CONFLIST,
    FLANNEL_SUBNET_ENV, KUBE_ROUTER_CONFLIST,
};
use terway_hybrid_testkit::require_root;

/// The node address every single-node test uses; peers are .11 and .12.
const NODE_IP: &str = "192.168.50.10";
const NODE_CIDR: &str = "192.168.50.10/24";
const GATEWAY: &str = "192.168.50.1";

/// What a whole `detect` may take even when BIRD's socket never answers
/// (the agent gives BIRD one second).
const DETECT_BUDGET: Duration = Duration::from_secs(2);

fn node(prefix: &str) -> Node {
    Node::new(prefix, NODE_CIDR, GATEWAY)
}

// ---------------------------------------------------------------------------
// Overlay
// ---------------------------------------------------------------------------

#[test]
fn flannel_vxlan_node_is_overlay() {
    require_root();
    let mut node = node("flannel");
    node.flannel_vxlan(NODE_IP, 0, &[1, 2, 3]);
    node.cni0(0);
    node.bridge_pod("cni0", "veth3f2a9c1d", "10.244.0.2/24", "10.244.0.1");
    node.bridge_pod("cni0", "veth81be04a7", "10.244.0.3/24", "10.244.0.1");
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);

    node.detect()
        .expect(Scenario::Overlay, Plugin::FlannelVxlan)
        .expect_confidence(Confidence::High)
        .expect_evidence("tunnel-device", &["flannel.1", "VNI 1", "8472", "3 routes"])
        .expect_evidence("flannel-subnet", &["10.244.0.0/16", "10.244.0.1/24"])
        .expect_evidence("cni-config", &["10-flannel.conflist", "flannel"])
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_nothing_stale();
}

/// `vxlan.calico` (VNI 4096, port 4789) with the tunnel address from the
/// node's IPAM block, as Felix configures it.
fn calico_vxlan_device(node: &Node, tunnel_ip: &str) {
    node.ns.ip_args(&[
        "link",
        "add",
        "vxlan.calico",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "nolearning",
        "local",
        NODE_IP,
        "dev",
        "eth0",
    ]);
    node.ip(&format!("addr add {tunnel_ip}/32 dev vxlan.calico"));
    node.ip("link set vxlan.calico mtu 1450 up");
}

/// Calico VXLAN with FelixConfiguration `deviceRouteProtocol: 80`: every
/// route Felix programs carries proto 80 (tunnel routes, workload routes,
/// the blackhole for the local block).
#[test]
fn calico_vxlan_node_is_overlay() {
    require_root();
    let mut node = node("calicovx");
    calico_vxlan_device(&node, "10.244.120.64");
    node.batch(
        "route add 10.244.205.192/26 via 10.244.205.192 dev vxlan.calico onlink proto 80\n\
         route add 10.244.33.128/26 via 10.244.33.128 dev vxlan.calico onlink proto 80\n\
         route add blackhole 10.244.120.64/26 proto 80\n",
    );
    node.calico_pod("cali1f3c9a2b7d4", "10.244.120.65");
    node.calico_pod("cali8e2d04c6a91", "10.244.120.66");
    node.ip("route change 10.244.120.65 dev cali1f3c9a2b7d4 scope link proto 80");
    node.ip("route change 10.244.120.66 dev cali8e2d04c6a91 scope link proto 80");
    node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    node.root.write("var/lib/calico/nodename", "node-1\n");

    node.detect()
        .expect(Scenario::Overlay, Plugin::CalicoVxlan)
        .expect_confidence(Confidence::High)
        .expect_evidence("tunnel-device", &["vxlan.calico", "VNI 4096", "4789", "2 routes"])
        .expect_evidence("routes", &["proto 80"])
        .expect_evidence("routes", &["1 blackhole"])
        .expect_evidence("cni-config", &["10-calico.conflist", "calico"])
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_nothing_stale();
}

/// VXLANCrossSubnet with Felix's defaults: tunnel and workload routes keep
/// RTPROT_BOOT, same-subnet peers get direct routes with proto 80 via the
/// node subnet, the local block a proto 80 blackhole. Still an overlay: the
/// tunnel is what reaches nodes in other subnets (the cloud nodes).
#[test]
fn calico_vxlan_cross_subnet_is_still_overlay() {
    require_root();
    let mut node = node("calicoxs");
    calico_vxlan_device(&node, "10.244.120.64");
    node.batch(
        "route add 10.244.205.192/26 via 10.244.205.192 dev vxlan.calico onlink\n\
         route add 10.244.33.128/26 via 10.244.33.128 dev vxlan.calico onlink\n\
         route add 10.244.17.0/26 via 192.168.50.11 dev eth0 proto 80\n\
         route add 10.244.91.64/26 via 192.168.50.12 dev eth0 proto 80\n\
         route add blackhole 10.244.120.64/26 proto 80\n",
    );
    node.calico_pod("cali1f3c9a2b7d4", "10.244.120.65");
    node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    node.root.write("var/lib/calico/nodename", "node-1\n");

    node.detect()
        .expect(Scenario::Overlay, Plugin::CalicoVxlan)
        .expect_confidence(Confidence::High)
        .expect_evidence("tunnel-device", &["vxlan.calico", "2 routes"])
        .expect_evidence("cross-subnet", &["2 direct routes"])
        .expect_nothing_stale();
}

/// Canal: flanneld's `flannel.1` carries pod traffic, Calico's CNI plugin
/// (host-local IPAM on flannel's subnet) makes cali* veths for policy.
#[test]
fn canal_node_is_overlay_canal() {
    require_root();
    let mut node = node("canal");
    node.flannel_vxlan(NODE_IP, 0, &[1, 2]);
    node.calico_pod("cali5b1e8f0a3c2", "10.244.0.5");
    node.calico_pod("calid09a7e61f4b", "10.244.0.6");
    node.root.write("etc/cni/net.d/10-canal.conflist", CANAL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);

    node.detect()
        .expect(Scenario::Overlay, Plugin::Canal)
        .expect_confidence(Confidence::High)
        .expect_evidence("tunnel-device", &["flannel.1", "2 routes"])
        .expect_evidence("veths", &["2 cali*"])
        .expect_evidence("cni-config", &["10-canal.conflist"])
        .expect_nothing_stale();
}

/// Cilium in tunnel mode after a migration from flannel: cilium-agent
/// (cni.exclusive) renamed flannel's config to `*.cilium_bak`.
#[test]
fn cilium_vxlan_node_is_overlay_and_flags_renamed_flannel_config() {
    require_root();
    let mut node = node("ciliumvx");
    node.cilium_host("10.0.0.137", "10.0.0.0/24");
    node.batch(
        "route add 10.0.1.0/24 via 10.0.0.137 dev cilium_host proto kernel src 10.0.0.137 mtu 1450\n\
         route add 10.0.2.0/24 via 10.0.0.137 dev cilium_host proto kernel src 10.0.0.137 mtu 1450\n",
    );
    node.ip("link add cilium_vxlan type vxlan external dstport 8472");
    node.ip("link set cilium_vxlan up");
    node.lxc_pod("lxc_health", "10.0.0.200", "10.0.0.137");
    node.lxc_pod("lxc1a2b3c4d5e6f", "10.0.0.21", "10.0.0.137");
    node.lxc_pod("lxc9e8d7c6b5a41", "10.0.0.57", "10.0.0.137");
    node.root.write("etc/cni/net.d/05-cilium.conflist", CILIUM_CONFLIST);
    node.root.write("etc/cni/net.d/10-flannel.conflist.cilium_bak", FLANNEL_CONFLIST);

    node.detect()
        .expect(Scenario::Overlay, Plugin::CiliumVxlan)
        .expect_confidence(Confidence::High)
        .expect_evidence("cilium-host", &["cilium_host", "up", "3 lxc*"])
        .expect_evidence("tunnel-device", &["cilium_vxlan", "port 8472", "flow-based"])
        .expect_evidence("cni-config", &["05-cilium.conflist", "cilium-cni"])
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_stale(&["10-flannel.conflist.cilium_bak"]);
}

/// The contradiction: flannel's VXLAN is live (device up, routes through
/// it) and so is Cilium's tunnel. Which one the pods use cannot be told
/// from the node, so the answer must be `unknown`, never a guess. This is
/// the middle of Cilium's documented migration from flannel, which moves
/// Cilium's tunnel to port 8473 because flannel.1 holds 8472 (the kernel
/// refuses a second VXLAN device on the same port).
#[test]
fn flannel_and_cilium_both_live_is_a_conflict() {
    require_root();
    let mut node = node("conflict");
    node.flannel_vxlan(NODE_IP, 0, &[1, 2]);
    node.cni0(0);
    node.bridge_pod("cni0", "veth3f2a9c1d", "10.244.0.2/24", "10.244.0.1");
    node.cilium_host("10.0.0.137", "10.0.0.0/24");
    node.ip("link add cilium_vxlan type vxlan external dstport 8473");
    node.ip("link set cilium_vxlan up");
    node.lxc_pod("lxc1a2b3c4d5e6f", "10.0.0.21", "10.0.0.137");
    node.root.write("etc/cni/net.d/05-cilium.conflist", CILIUM_CONFLIST);
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);

    let d = node.detect();
    d.expect(Scenario::Unknown, Plugin::Unknown)
        .expect_evidence("conflict", &["flannel-vxlan", "cilium-vxlan"]);
    let check = d.check(CheckName::ScenarioDetected);
    assert!(
        check.status == CheckStatus::Fail && check.severity == Severity::Error,
        "ScenarioDetected must fail as an error, got {check:?}{}",
        d.context()
    );
}

/// IPv6-only flannel: flanneld names the device `flannel-v6.1`.
#[test]
fn ipv6_only_flannel_is_overlay() {
    require_root();
    let mut node = Node::new("flannel6", "fd00:50::10/64", "fd00:50::1");
    node.ns.ip_args(&[
        "link",
        "add",
        "flannel-v6.1",
        "type",
        "vxlan",
        "id",
        "1",
        "dstport",
        "8472",
        "nolearning",
        "local",
        "fd00:50::10",
        "dev",
        "eth0",
    ]);
    node.ip("addr add fd00:10:244::/128 dev flannel-v6.1 nodad");
    node.ip("link set flannel-v6.1 mtu 1430 up");
    node.batch(
        "route add fd00:10:244:1::/64 via fd00:10:244:1:: dev flannel-v6.1 onlink\n\
         route add fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel-v6.1 onlink\n",
    );
    node.ip("link add cni0 type bridge");
    node.ip("addr add fd00:10:244::1/64 dev cni0 nodad");
    node.ip("link set cni0 mtu 1430 up");
    node.bridge_pod("cni0", "veth3f2a9c1d", "fd00:10:244::2/64", "fd00:10:244::1");
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write(
        "run/flannel/subnet.env",
        "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\n\
         FLANNEL_IPV6_SUBNET=fd00:10:244::1/64\n\
         FLANNEL_MTU=1430\n\
         FLANNEL_IPMASQ=true\n",
    );

    node.detect()
        .expect(Scenario::Overlay, Plugin::FlannelVxlan)
        .expect_confidence(Confidence::High)
        .expect_evidence("tunnel-device", &["flannel-v6.1", "VNI 1", "2 routes"])
        .expect_nothing_stale();
}

// ---------------------------------------------------------------------------
// BGP / direct routing
// ---------------------------------------------------------------------------

/// Cilium native routing (`routingMode: native`, `autoDirectNodeRoutes`):
/// no tunnel device; other nodes' pod CIDRs via their node IPs.
#[test]
fn cilium_native_routing_node_is_bgp() {
    require_root();
    let mut node = node("ciliumnat");
    node.cilium_host("10.0.0.137", "10.0.0.0/24");
    node.batch(
        "route add 10.0.1.0/24 via 192.168.50.11 dev eth0 proto kernel\n\
         route add 10.0.2.0/24 via 192.168.50.12 dev eth0 proto kernel\n",
    );
    node.lxc_pod("lxc_health", "10.0.0.200", "10.0.0.137");
    node.lxc_pod("lxc1a2b3c4d5e6f", "10.0.0.21", "10.0.0.137");
    node.root.write("etc/cni/net.d/05-cilium.conflist", CILIUM_CONFLIST);

    node.detect()
        .expect(Scenario::Bgp, Plugin::CiliumNative)
        .expect_confidence(Confidence::High)
        .expect_evidence("cilium-host", &["cilium_host", "2 lxc*"])
        .expect_evidence("native-routing", &["native routing"])
        .expect_evidence("cni-config", &["05-cilium.conflist"])
        .expect_nothing_stale();
}

/// kube-router: pods on `kube-bridge`, peers' pod CIDRs learned over BGP
/// and installed with proto 17.
#[test]
fn kube_router_node_is_bgp() {
    require_root();
    let mut node = node("kuberouter");
    node.ip("link add kube-bridge type bridge");
    node.ip("addr add 10.244.0.1/24 dev kube-bridge");
    node.ip("link set kube-bridge up");
    node.bridge_pod("kube-bridge", "veth5d1e0c2a", "10.244.0.2/24", "10.244.0.1");
    node.bridge_pod("kube-bridge", "veth0b9f3e71", "10.244.0.3/24", "10.244.0.1");
    node.batch(
        "route add 10.244.1.0/24 via 192.168.50.11 dev eth0 proto 17\n\
         route add 10.244.2.0/24 via 192.168.50.12 dev eth0 proto 17\n",
    );
    node.root.write("etc/cni/net.d/10-kuberouter.conflist", KUBE_ROUTER_CONFLIST);

    node.detect()
        .expect(Scenario::Bgp, Plugin::KubeRouter)
        .expect_confidence(Confidence::High)
        .expect_evidence("bridge", &["kube-bridge"])
        .expect_evidence("routes", &["2 routes", "proto 17"])
        .expect_evidence("cni-config", &["10-kuberouter.conflist"])
        .expect_nothing_stale();
}

/// A Calico BGP node as its kernel shows it: cali* workloads, BIRD's
/// routes to the peers' blocks via their node IPs (proto bird, not onlink,
/// no tunnel) and BIRD's blackhole for the local block. BIRD's control
/// socket is not visible (no BIRD runs here).
fn calico_bgp_node(prefix: &str) -> Node {
    let mut node = node(prefix);
    node.calico_pod("cali1f3c9a2b7d4", "10.244.0.5");
    node.calico_pod("cali8e2d04c6a91", "10.244.0.6");
    node.batch(
        "route add 10.244.1.0/26 via 192.168.50.11 dev eth0 proto bird\n\
         route add 10.244.1.64/26 via 192.168.50.11 dev eth0 proto bird\n\
         route add 10.244.2.0/26 via 192.168.50.12 dev eth0 proto bird\n\
         route add blackhole 10.244.0.0/26 proto bird\n",
    );
    node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    node.root.write("var/lib/calico/nodename", "node-1\n");
    node
}

#[test]
fn calico_bgp_from_kernel_state_only_is_bgp() {
    require_root();
    let node = calico_bgp_node("calicobgp");
    node.detect()
        .expect(Scenario::Bgp, Plugin::CalicoBgp)
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_nothing_stale();
}

/// The same node: three live proto bird routes via peer node IPs plus
/// BIRD's blackhole for the local block, next to cali* veths and the
/// runtime's calico config, are a live Calico BGP datapath confirmed by the
/// config. The detection must say so (high confidence, the BIRD routes as
/// evidence), not that there are "no BGP routes yet".
#[test]
fn calico_bgp_routes_count_as_evidence_without_the_bird_socket() {
    require_root();
    let node = calico_bgp_node("calicobgp2");
    node.detect()
        .expect(Scenario::Bgp, Plugin::CalicoBgp)
        .expect_no_evidence_mentioning("no BGP routes yet")
        .expect_evidence("routes", &["3 routes", "proto bird"])
        .expect_confidence(Confidence::High);
}

/// flannel host-gw: routes to the peers' subnets via their node IPs
/// (proto boot), no flannel.1, flanneld's subnet.env. No tunnel reaches the
/// cloud nodes, so it is grouped with bgp.
#[test]
fn flannel_host_gw_node_is_bgp() {
    require_root();
    let mut node = node("flannelhgw");
    node.batch(
        "route add 10.244.1.0/24 via 192.168.50.11 dev eth0\n\
         route add 10.244.2.0/24 via 192.168.50.12 dev eth0\n",
    );
    node.cni0(0);
    node.bridge_pod("cni0", "veth3f2a9c1d", "10.244.0.2/24", "10.244.0.1");
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);

    node.detect()
        .expect(Scenario::Bgp, Plugin::FlannelHostGw)
        .expect_confidence(Confidence::High)
        .expect_evidence("routes", &["2 routes", "no flannel VXLAN device"])
        .expect_nothing_stale();
}

// ---------------------------------------------------------------------------
// Host network, stale state
// ---------------------------------------------------------------------------

#[test]
fn host_network_node_is_host_network() {
    require_root();
    let node = node("hostnet");
    node.detect()
        .expect(Scenario::HostNetwork, Plugin::None)
        .expect_confidence(Confidence::High)
        .expect_evidence("cni-config", &["no /etc/cni/net.d"])
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_nothing_stale();
}

/// flannel's device as flanneld left it: VNI 1, port 8472, its /32 address.
fn leftover_flannel_device(node: &Node) {
    node.ns.ip_args(&[
        "link",
        "add",
        "flannel.1",
        "type",
        "vxlan",
        "id",
        "1",
        "dstport",
        "8472",
        "nolearning",
        "local",
        NODE_IP,
        "dev",
        "eth0",
    ]);
    node.ip("addr add 10.244.0.0/32 dev flannel.1");
    node.ip("link set flannel.1 mtu 1450");
}

/// A migration from flannel to Calico BGP left `flannel.1` behind, down.
#[test]
fn stale_flannel_device_down_does_not_outvote_calico_bgp() {
    require_root();
    let node = calico_bgp_node("stalefl");
    leftover_flannel_device(&node);

    node.detect()
        .expect(Scenario::Bgp, Plugin::CalicoBgp)
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_stale(&["flannel.1"]);
}

/// Same, with `flannel.1` still up but no route through it any more.
#[test]
fn stale_flannel_device_up_without_routes_does_not_outvote_calico_bgp() {
    require_root();
    let node = calico_bgp_node("stalefl2");
    leftover_flannel_device(&node);
    node.ip("link set flannel.1 up");

    node.detect()
        .expect(Scenario::Bgp, Plugin::CalicoBgp)
        .expect_check(CheckName::ScenarioDetected, CheckStatus::Pass)
        .expect_stale(&["flannel.1"]);
}

// ---------------------------------------------------------------------------
// Bad input under the host root
// ---------------------------------------------------------------------------

/// A binary file where flannel's config should be, a subnet.env full of
/// junk, a regular file where BIRD's socket should be: detect still answers
/// (exit 0, quickly, no panic) and the snapshot records each problem.
#[test]
fn garbage_files_are_recorded_not_fatal() {
    require_root();
    let node = node("garbage");
    let mut binary = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    binary.extend((0u8..=255).rev());
    node.root.write("etc/cni/net.d/10-flannel.conflist", &binary);
    node.root.write(
        "run/flannel/subnet.env",
        "<html><body>502 Bad Gateway</body></html>\nFLANNEL_MTU=fourteen-fifty\nFLANNEL_IPMASQ=maybe\n",
    );
    node.root.write("var/run/calico/bird.ctl", "not a socket\n");

    let (detection, raw, took) = detect_in(&node.ns, node.root.path());
    eprintln!("detect took {took:?}:\n{raw}");
    assert!(took < DETECT_BUDGET, "detect took {took:?}");
    assert_eq!(
        (detection.detection.scenario, detection.detection.plugin),
        (Scenario::Unknown, Plugin::Unknown),
        "an unloadable CNI config is not a host-network node:\n{raw}"
    );
    assert!(
        detection
            .detection
            .evidence
            .iter()
            .any(|e| e.signal == "cni-config" && e.detail.contains("10-flannel.conflist")),
        "the evidence should name the broken config:\n{raw}"
    );

    let (snap, took) = snapshot_timed(&node.ns, node.root.path());
    assert!(took < DETECT_BUDGET, "snapshot took {took:?}");
    let pretty = serde_json::to_string_pretty(&snap).unwrap();
    let file = &snap["cni"]["files"][0];
    assert_eq!(file["name"], "10-flannel.conflist", "{pretty}");
    assert_eq!(file["loadable"], true, "{pretty}");
    assert!(
        file["error"].as_str().is_some_and(|e| e.contains("UTF-8")),
        "the binary config's error should be recorded:\n{pretty}"
    );
    let env = &snap["flannelSubnet"];
    assert_eq!(env["state"], "ok", "{pretty}");
    assert!(
        env["value"]["problems"].as_array().is_some_and(|p| p.len() == 3),
        "all three junk lines of subnet.env should be recorded as problems:\n{pretty}"
    );
    assert_eq!(snap["bird"]["state"], "not-socket", "{pretty}");
    assert!(
        snap["bird"]["path"].as_str().is_some_and(|p| p.ends_with("var/run/calico/bird.ctl")),
        "{pretty}"
    );
}

/// A real unix socket at BIRD's path that accepts connections but never
/// says a word (a hung BIRD): the agent gives up within its deadline.
#[test]
fn silent_bird_socket_times_out() {
    require_root();
    let mut node = node("silentbird");
    node.calico_pod("cali1f3c9a2b7d4", "10.244.0.5");
    node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    let dir = node.root.mkdir("run/calico");
    // Bound in the test process: path-based unix sockets are reachable from
    // any network namespace. The kernel completes connects into the backlog;
    // nobody ever accepts or writes.
    let listener = UnixListener::bind(dir.join("bird.ctl")).expect("bind the silent socket");

    let (detection, raw, took) = detect_in(&node.ns, node.root.path());
    eprintln!("detect took {took:?}:\n{raw}");
    assert!(took < DETECT_BUDGET, "detect took {took:?} with a silent BIRD socket");
    assert!(
        !detection.detection.evidence.iter().any(|e| e.signal == "bird"),
        "a BIRD that never answered is no evidence of BGP sessions:\n{raw}"
    );

    let (snap, took) = snapshot_timed(&node.ns, node.root.path());
    assert!(took < DETECT_BUDGET, "snapshot took {took:?} with a silent BIRD socket");
    let pretty = serde_json::to_string_pretty(&snap).unwrap();
    assert_eq!(snap["bird"]["state"], "no-answer", "{pretty}");
    assert!(snap["bird"]["error"].as_str().is_some_and(|e| e.contains("no answer")), "{pretty}");
    drop(listener);
}

// ---------------------------------------------------------------------------
// A cluster's first (or only) node: the tunnel is up but has no peer yet
// ---------------------------------------------------------------------------

/// Calico VXLAN on a node with no peer yet (a one-node on-prem cluster, or
/// the first node): Felix has created and addressed `vxlan.calico` and
/// written the proto 80 blackhole for the node's block (in BGP mode BIRD
/// writes that blackhole, as proto bird), but there is no remote block to
/// route through the tunnel. The network is Calico's VXLAN overlay; calling
/// it `bgp` would send the rollout down the Terway path.
#[test]
fn calico_vxlan_lone_node_is_overlay() {
    require_root();
    let mut node = node("calicolone");
    calico_vxlan_device(&node, "10.244.120.64");
    node.ip("route add blackhole 10.244.120.64/26 proto 80");
    node.calico_pod("cali1f3c9a2b7d4", "10.244.120.65");
    node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
    node.root.write("var/lib/calico/nodename", "node-1\n");

    node.detect().expect(Scenario::Overlay, Plugin::CalicoVxlan).expect_nothing_stale();
}

/// flannel VXLAN on a node with no peer yet: flanneld has written
/// subnet.env and created `flannel.1` with its subnet's address, the
/// runtime loads flannel's config, only the per-peer routes are missing.
#[test]
fn flannel_vxlan_lone_node_is_overlay() {
    require_root();
    let mut node = node("flannellone");
    node.flannel_vxlan(NODE_IP, 0, &[]);
    node.cni0(0);
    node.bridge_pod("cni0", "veth3f2a9c1d", "10.244.0.2/24", "10.244.0.1");
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);

    node.detect().expect(Scenario::Overlay, Plugin::FlannelVxlan).expect_nothing_stale();
}
