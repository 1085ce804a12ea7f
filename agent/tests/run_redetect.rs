//! `terway-hybrid-agent run --standalone` following a node's kernel: it
//! detects again after rtnetlink link/address/route changes, debounced, so a
//! CNI coming and going flips its metrics within seconds while a burst of
//! 100,000 route changes costs a handful of detections, not 100,000.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test run_redetect`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use terway_hybrid_testkit::agent_node::{
    set_ip_forward, Node, RunningAgent, FLANNEL_CONFLIST, FLANNEL_SUBNET_ENV,
};
use terway_hybrid_testkit::{require_program, require_root};

const NODE_IP: &str = "192.168.50.10";
const NODE_CIDR: &str = "192.168.50.10/24";
const GATEWAY: &str = "192.168.50.1";

const FIRST_DETECTION: Duration = Duration::from_secs(10);

/// A node with nothing but its uplink (host network), IP forwarding on.
fn host_network_node(prefix: &str) -> Node {
    let node = Node::new(prefix, NODE_CIDR, GATEWAY);
    set_ip_forward(&node.root, true);
    node
}

/// flannel arrives on a host-network node and leaves again: the agent's
/// scenario follows both ways within seconds (debounce 500 ms), with a
/// bounded number of detections.
#[test]
fn scenario_follows_flannel_coming_and_going() {
    require_root();
    require_program("curl", "curl");
    let node = host_network_node("redetect");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &["--debounce-ms", "500"]);
    agent.wait_scenario("host-network", "none", FIRST_DETECTION);

    // Files alone change no link, address or route: written first, they are
    // picked up by the detection the device and routes trigger.
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);
    let t = Instant::now();
    node.flannel_vxlan(NODE_IP, 0, &[1, 2, 3]);
    let m = agent.wait_scenario("overlay", "flannel-vxlan", Duration::from_secs(5));
    eprintln!(
        "overlay/flannel-vxlan {:?} after flannel.1 came up ({} detections)",
        t.elapsed(),
        m.detections()
    );

    std::fs::remove_file(node.root.path().join("etc/cni/net.d/10-flannel.conflist"))
        .expect("remove conflist");
    std::fs::remove_file(node.root.path().join("run/flannel/subnet.env")).expect("remove subnet.env");
    let t = Instant::now();
    node.ip("link del flannel.1");
    let m = agent.wait_scenario("host-network", "none", Duration::from_secs(5));
    eprintln!("host-network/none {:?} after flannel.1 went ({} detections)", t.elapsed(), m.detections());

    // Let late notifications (IPv6 DAD finishing, ...) settle, then count.
    std::thread::sleep(Duration::from_secs(1));
    let m = agent.metrics().expect("/metrics answers");
    assert_eq!(m.scenarios(), [("host-network".to_owned(), "none".to_owned())], "{}", m.text);
    let detections = m.detections();
    eprintln!("{detections} detections in all");
    assert!(detections <= 10, "{detections} detections for two changes of the node\n{}", agent.log());
    assert_eq!(agent.get("/readyz").0, 200);
}

/// 100,000 BGP-style routes loaded in one `ip -batch` (100,000 netlink
/// notifications, more than the agent's socket buffer holds) cost a handful
/// of detections with the default 2 s debounce, and the agent stays healthy.
#[test]
fn route_burst_costs_a_handful_of_detections() {
    const ROUTES: u32 = 100_000;
    require_root();
    require_program("curl", "curl");
    let node = host_network_node("burst");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &["--resync-seconds", "3600"]);
    let before = agent.wait_detections(1, FIRST_DETECTION).detections();

    let mut batch = String::with_capacity(ROUTES as usize * 64);
    for i in 0..ROUTES {
        let (a, b, c) = (i >> 16, (i >> 8) & 0xff, i & 0xff);
        writeln!(batch, "route add 10.{a}.{b}.{c}/32 via {GATEWAY} dev eth0 proto bird").unwrap();
    }
    let t = Instant::now();
    node.batch(&batch);
    let load = t.elapsed();

    // Done when the count moved and then held still for 4 s (twice the
    // debounce): a detection still owed would have come by then.
    let loaded = Instant::now();
    let deadline = loaded + Duration::from_secs(30);
    let (mut count, mut since) = (agent.metrics().map_or(before, |m| m.detections()), Instant::now());
    loop {
        agent.assert_running();
        let now = agent.metrics().map_or(count, |m| m.detections());
        if now != count {
            (count, since) = (now, Instant::now());
        }
        if count > before && since.elapsed() >= Duration::from_secs(4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "detections did not settle within 30 s of the load: {before} before, {count} now\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let burst = count - before;
    eprintln!(
        "{ROUTES} routes loaded in {load:?}; {burst} detection(s) for the burst ({before} before, {count} after), \
         the last {:?} after the load",
        since.duration_since(loaded)
    );
    assert!((1..=5).contains(&burst), "{burst} detections for one burst of {ROUTES} routes\n{}", agent.log());

    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));
    let m = agent.metrics().expect("/metrics answers");
    // BIRD routes without Calico's veths or blackholes: not Calico, and not a CNI.
    assert_eq!(m.scenarios(), [("host-network".to_owned(), "none".to_owned())], "{}", m.text);
    let rss = m.value("process_resident_memory_bytes", &[]).unwrap_or_default();
    eprintln!("agent RSS after the burst: {:.1} MiB", rss / 1048576.0);

    // The routes are really there: the kernel state the last detection read.
    let snapshot = node.snapshot();
    let bird_routes: u64 = snapshot["routes"]["groups"]
        .as_array()
        .expect("route groups")
        .iter()
        .filter(|g| g["protocol"] == 12)
        .map(|g| g["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(bird_routes, u64::from(ROUTES), "proto bird routes in the snapshot");
}
