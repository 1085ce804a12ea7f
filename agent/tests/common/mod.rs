//! Shared helpers for the real-kernel detection tests: a node (network
//! namespace with an uplink), pods wired the way each CNI wires them, the
//! CNI files the CNIs write, and running `terway-hybrid-agent detect` /
//! `snapshot` inside the node.
//!
//! Every namespace is a testkit [`NetNs`], deleted on drop (also when a test
//! panics), so tests stay independent and can run in parallel.
#![allow(dead_code)] // each test binary uses a different subset

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use terway_hybrid_api::{CheckName, CheckResult, CheckStatus, Confidence, NodeDetection, Plugin, Scenario};
use terway_hybrid_testkit::{HostRoot, NetNs};

/// The agent binary built by cargo for these tests.
pub const AGENT: &str = env!("CARGO_BIN_EXE_terway-hybrid-agent");

/// flannel's kube-flannel.yml `cni-conf.json`, as the install-cni container
/// copies it to `/etc/cni/net.d/10-flannel.conflist`.
pub const FLANNEL_CONFLIST: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
"#;

/// `/run/flannel/subnet.env` as flanneld writes it for the node owning 10.244.0.0/24.
pub const FLANNEL_SUBNET_ENV: &str = "FLANNEL_NETWORK=10.244.0.0/16\n\
FLANNEL_SUBNET=10.244.0.1/24\n\
FLANNEL_MTU=1450\n\
FLANNEL_IPMASQ=true\n";

/// calico-node's install-cni output, `/etc/cni/net.d/10-calico.conflist`.
pub const CALICO_CONFLIST: &str = r#"{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "log_file_path": "/var/log/calico/cni/cni.log",
      "datastore_type": "kubernetes",
      "nodename": "node-1",
      "mtu": 0,
      "ipam": {
        "type": "calico-ipam"
      },
      "policy": {
        "type": "k8s"
      },
      "kubernetes": {
        "kubeconfig": "/etc/cni/net.d/calico-kubeconfig"
      }
    },
    {
      "type": "portmap",
      "snat": true,
      "capabilities": {"portMappings": true}
    },
    {
      "type": "bandwidth",
      "capabilities": {"bandwidth": true}
    }
  ]
}
"#;

/// canal's install-cni output, `/etc/cni/net.d/10-canal.conflist`: the
/// calico plugin (policy) with host-local IPAM on flannel's pod CIDR.
pub const CANAL_CONFLIST: &str = r#"{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "log_file_path": "/var/log/calico/cni/cni.log",
      "datastore_type": "kubernetes",
      "nodename": "node-1",
      "mtu": 1450,
      "ipam": {
        "type": "host-local",
        "subnet": "usePodCidr"
      },
      "policy": {
        "type": "k8s"
      },
      "kubernetes": {
        "kubeconfig": "/etc/cni/net.d/calico-kubeconfig"
      }
    },
    {
      "type": "portmap",
      "snat": true,
      "capabilities": {"portMappings": true}
    }
  ]
}
"#;

/// cilium-agent's `/etc/cni/net.d/05-cilium.conflist`.
pub const CILIUM_CONFLIST: &str = r#"{
  "cniVersion": "0.3.1",
  "name": "cilium",
  "plugins": [
    {
       "type": "cilium-cni",
       "enable-debug": false,
       "log-file": "/var/run/cilium/cilium-cni.log"
    }
  ]
}
"#;

/// kube-router's `cni-conf.json`, installed as `/etc/cni/net.d/10-kuberouter.conflist`.
pub const KUBE_ROUTER_CONFLIST: &str = r#"{
  "cniVersion": "0.3.0",
  "name": "mynet",
  "plugins": [
    {
      "name": "kubernetes",
      "type": "bridge",
      "bridge": "kube-bridge",
      "isDefaultGateway": true,
      "ipam": {
        "type": "host-local"
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "snat": true,
        "portMappings": true
      }
    }
  ]
}
"#;

/// One Kubernetes node: a network namespace whose `eth0` is a veth to a
/// second namespace holding the LAN gateway, its pods (each in its own
/// namespace, as the container runtime makes them) and a fake host root.
pub struct Node {
    pub ns: NetNs,
    pub root: HostRoot,
    pods: Vec<NetNs>,
    lan: NetNs,
}

impl Node {
    /// A node with `eth0` = `node_cidr` and a default route via `gateway`,
    /// which lives in a separate LAN namespace. IPv6 addresses skip DAD so
    /// they are usable at once.
    pub fn new(prefix: &str, node_cidr: &str, gateway: &str) -> Node {
        let ns = NetNs::new(prefix);
        let lan = NetNs::new("lan");
        let prefix_len = node_cidr.split_once('/').map(|(_, p)| p).expect("node_cidr has a prefix length");
        let v6 = node_cidr.contains(':');
        lan.ip_args(&["link", "add", "gw0", "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        let gw_cidr = format!("{gateway}/{prefix_len}");
        let mut lan_addr = vec!["addr", "add", gw_cidr.as_str(), "dev", "gw0"];
        let mut node_addr = vec!["addr", "add", node_cidr, "dev", "eth0"];
        if v6 {
            lan_addr.push("nodad");
            node_addr.push("nodad");
        }
        lan.ip_args(&lan_addr);
        lan.ip("link set gw0 up");
        ns.ip_args(&node_addr);
        ns.ip("link set eth0 up");
        ns.ip_args(&["route", "add", "default", "via", gateway, "dev", "eth0"]);
        Node { ns, root: HostRoot::new(), pods: Vec::new(), lan }
    }

    /// `ip -n <node> <args>`, split on whitespace.
    pub fn ip(&self, args: &str) {
        self.ns.ip(args);
    }

    /// Several `ip` commands, one per line (without the leading `ip`).
    pub fn batch(&self, lines: &str) {
        self.ns.ip_batch(lines);
    }

    /// A Calico workload: veth `host_if` (cali + 11 hex) to the pod's
    /// `eth0` with `pod_ip/32`; the pod routes via 169.254.1.1 (proxy ARP);
    /// the node has `pod_ip dev host_if scope link` (Felix's device route,
    /// RTPROT_BOOT by default).
    pub fn calico_pod(&mut self, host_if: &str, pod_ip: &str) {
        let pod = self.new_pod(host_if);
        let pod_cidr = format!("{pod_ip}/32");
        pod.ip_args(&["addr", "add", &pod_cidr, "dev", "eth0"]);
        pod.ip("link set eth0 up");
        pod.ip("route add 169.254.1.1 dev eth0 scope link");
        pod.ip("route add default via 169.254.1.1 dev eth0");
        self.ns.ip_args(&["link", "set", host_if, "up"]);
        self.ns.ip_args(&["route", "add", pod_ip, "dev", host_if, "scope", "link"]);
        self.pods.push(pod);
    }

    /// A pod behind a Linux bridge (flannel's `cni0`, kube-router's
    /// `kube-bridge`): veth `host_if` enslaved to `bridge`, the pod's `eth0`
    /// has `pod_cidr` and a default route via `gateway` (the bridge address).
    pub fn bridge_pod(&mut self, bridge: &str, host_if: &str, pod_cidr: &str, gateway: &str) {
        let pod = self.new_pod(host_if);
        let mut addr = vec!["addr", "add", pod_cidr, "dev", "eth0"];
        if pod_cidr.contains(':') {
            addr.push("nodad");
        }
        pod.ip_args(&addr);
        pod.ip("link set eth0 up");
        pod.ip_args(&["route", "add", "default", "via", gateway, "dev", "eth0"]);
        self.ns.ip_args(&["link", "set", host_if, "master", bridge, "up"]);
        self.pods.push(pod);
    }

    /// A Cilium endpoint: veth `host_if` (lxc + 12 hex) to the pod's `eth0`
    /// with `pod_ip/32`, the pod routing via the router IP on cilium_host.
    /// Cilium adds no per-endpoint kernel route: BPF delivers to the veth.
    pub fn lxc_pod(&mut self, host_if: &str, pod_ip: &str, router_ip: &str) {
        let pod = self.new_pod(host_if);
        let pod_cidr = format!("{pod_ip}/32");
        pod.ip_args(&["addr", "add", &pod_cidr, "dev", "eth0"]);
        pod.ip("link set eth0 up");
        pod.ip_args(&["route", "add", router_ip, "dev", "eth0", "scope", "link"]);
        pod.ip_args(&["route", "add", "default", "via", router_ip, "dev", "eth0"]);
        self.ns.ip_args(&["link", "set", host_if, "up"]);
        self.pods.push(pod);
    }

    /// A pod namespace joined to the node by a veth (`host_if` on the node,
    /// `eth0` in the pod).
    fn new_pod(&self, host_if: &str) -> NetNs {
        let pod = NetNs::new("pod");
        self.ns.ip_args(&[
            "link",
            "add",
            host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod.name(),
        ]);
        pod
    }

    /// flannel's VXLAN backend for the node owning `10.244.<own>.0/24`, with
    /// `local_ip` the node address: `flannel.1` as flanneld creates it and the
    /// per-peer routes `10.244.<p>.0/24 via 10.244.<p>.0 dev flannel.1 onlink`
    /// (proto boot, iproute2's default).
    pub fn flannel_vxlan(&self, local_ip: &str, own: u8, peers: &[u8]) {
        self.ns.ip_args(&[
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
            local_ip,
            "dev",
            "eth0",
        ]);
        self.ip(&format!("addr add 10.244.{own}.0/32 dev flannel.1"));
        self.ip("link set flannel.1 mtu 1450 up");
        let mut routes = String::new();
        for p in peers {
            writeln!(routes, "route add 10.244.{p}.0/24 via 10.244.{p}.0 dev flannel.1 onlink").unwrap();
        }
        if !routes.is_empty() {
            self.batch(&routes);
        }
    }

    /// The `cni0` bridge the flannel CNI plugin (via the bridge plugin)
    /// creates for the node's pod subnet `10.244.<own>.0/24`.
    pub fn cni0(&self, own: u8) {
        self.ip("link add cni0 type bridge");
        self.ip(&format!("addr add 10.244.{own}.1/24 dev cni0"));
        self.ip("link set cni0 mtu 1450 up");
    }

    /// Cilium's host device pair: `cilium_host` (with the router IP as a
    /// /32) and `cilium_net`, both up, with the routes cilium-agent
    /// installs for the local pod CIDR (Cilium uses proto kernel).
    pub fn cilium_host(&self, router_ip: &str, local_cidr: &str) {
        self.ip("link add cilium_host type veth peer name cilium_net");
        self.ip("link set cilium_net up");
        self.ip("link set cilium_host up");
        self.ip(&format!("addr add {router_ip}/32 dev cilium_host"));
        self.batch(&format!(
            "route add {router_ip} dev cilium_host proto kernel scope link\n\
             route add {local_cidr} via {router_ip} dev cilium_host proto kernel src {router_ip}\n"
        ));
    }

    /// Runs `detect --output json` in the node and takes a snapshot right
    /// after, so a failing assertion can show the facts behind the answer.
    pub fn detect(&self) -> Detected {
        let (detection, raw, _) = detect_in(&self.ns, self.root.path());
        // Captured by the test harness; shown with `--nocapture`.
        eprintln!("detect in {}:\n{raw}", self.ns.name());
        let snapshot = snapshot_in(&self.ns, self.root.path());
        Detected { detection, raw, snapshot: serde_json::to_string_pretty(&snapshot).unwrap_or_default() }
    }

    /// `snapshot` in the node, parsed as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        snapshot_in(&self.ns, self.root.path())
    }
}

/// Runs the agent with `args` inside `ns`; returns its output and how long it took.
pub fn run_agent(ns: &NetNs, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = ns.exec(AGENT, args);
    (out, start.elapsed())
}

fn describe_output(what: &str, out: &Output) -> String {
    format!(
        "{what} ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn root_str(root: &Path) -> &str {
    root.to_str().expect("the host root path is UTF-8")
}

/// `detect --host-root <root> --output json` in `ns`: the parsed detection,
/// the raw JSON and the run time. Panics with stdout and stderr if the agent
/// fails, panics, or prints something that is not a detection.
pub fn detect_in(ns: &NetNs, root: &Path) -> (NodeDetection, String, Duration) {
    let (out, took) = run_agent(ns, &["detect", "--host-root", root_str(root), "--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{}",
        describe_output("detect failed", &out)
    );
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let detection = serde_json::from_str(&raw).unwrap_or_else(|e| {
        panic!("{}", describe_output(&format!("detect printed no NodeDetection JSON: {e}"), &out))
    });
    (detection, raw, took)
}

/// `snapshot --host-root <root>` in `ns`, parsed as JSON (checked to be a
/// NodeSnapshot too); panics with stdout and stderr otherwise.
pub fn snapshot_in(ns: &NetNs, root: &Path) -> serde_json::Value {
    snapshot_timed(ns, root).0
}

pub fn snapshot_timed(ns: &NetNs, root: &Path) -> (serde_json::Value, Duration) {
    let (out, took) = run_agent(ns, &["snapshot", "--host-root", root_str(root)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{}",
        describe_output("snapshot failed", &out)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}", describe_output(&format!("snapshot printed no JSON: {e}"), &out)));
    if let Err(e) = serde_json::from_value::<terway_hybrid_api::NodeSnapshot>(value.clone()) {
        panic!("{}", describe_output(&format!("snapshot is not a NodeSnapshot: {e}"), &out));
    }
    (value, took)
}

/// A detection with the raw JSON and the snapshot of the same node, for
/// assertions whose failure message explains itself.
pub struct Detected {
    pub detection: NodeDetection,
    pub raw: String,
    pub snapshot: String,
}

impl Detected {
    /// The detection JSON and the snapshot, appended to every failure.
    pub fn context(&self) -> String {
        format!(
            "\n--- detect --output json ---\n{}\n--- snapshot ---\n{}",
            self.raw.trim_end(),
            self.snapshot
        )
    }

    pub fn expect(&self, scenario: Scenario, plugin: Plugin) -> &Self {
        let d = &self.detection.detection;
        assert!(
            d.scenario == scenario && d.plugin == plugin,
            "expected {scenario}/{plugin}, detected {}/{}{}",
            d.scenario,
            d.plugin,
            self.context()
        );
        self
    }

    pub fn expect_confidence(&self, confidence: Confidence) -> &Self {
        let got = self.detection.detection.confidence;
        assert_eq!(got, confidence, "expected {confidence} confidence, got {got}{}", self.context());
        self
    }

    /// The details of every evidence entry with `signal`.
    pub fn evidence(&self, signal: &str) -> Vec<&str> {
        self.detection
            .detection
            .evidence
            .iter()
            .filter(|e| e.signal == signal)
            .map(|e| e.detail.as_str())
            .collect()
    }

    /// Some `signal` evidence mentions every one of `needles`.
    pub fn expect_evidence(&self, signal: &str, needles: &[&str]) -> &Self {
        let found = self.evidence(signal).iter().any(|d| needles.iter().all(|n| d.contains(n)));
        assert!(found, "expected a {signal:?} evidence mentioning {needles:?}{}", self.context());
        self
    }

    /// No evidence detail mentions `needle` (a statement the facts contradict).
    pub fn expect_no_evidence_mentioning(&self, needle: &str) -> &Self {
        let bad: Vec<_> =
            self.detection.detection.evidence.iter().filter(|e| e.detail.contains(needle)).collect();
        assert!(bad.is_empty(), "no evidence should say {needle:?}, but: {bad:?}{}", self.context());
        self
    }

    pub fn check(&self, name: CheckName) -> &CheckResult {
        self.detection
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check{}", self.context()))
    }

    pub fn expect_check(&self, name: CheckName, status: CheckStatus) -> &Self {
        let c = self.check(name);
        assert_eq!(c.status, status, "{name}: expected {status:?}, got {c:?}{}", self.context());
        self
    }

    /// `StaleOverlayDevices` fails as a warning and names every one of `needles`.
    pub fn expect_stale(&self, needles: &[&str]) -> &Self {
        let c = self.check(CheckName::StaleOverlayDevices);
        assert!(
            c.status == CheckStatus::Fail
                && c.severity == terway_hybrid_api::Severity::Warning
                && needles.iter().all(|n| c.message.contains(n)),
            "expected StaleOverlayDevices to fail (warning) naming {needles:?}, got {c:?}{}",
            self.context()
        );
        self
    }

    /// Nothing is reported as stale.
    pub fn expect_nothing_stale(&self) -> &Self {
        self.expect_check(CheckName::StaleOverlayDevices, CheckStatus::Pass)
    }
}
