//! Shared helpers for the real-kernel detection tests: a node (network
//! namespace with an uplink), pods wired the way each CNI wires them, the
//! CNI files the CNIs write, and running `terway-hybrid-agent detect` /
//! `snapshot` inside the node.
//!
//! Every namespace is a testkit [`NetNs`], deleted on drop (also when a test
//! panics), so tests stay independent and can run in parallel.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::{ChildGuard, HostRoot, NetNs};
use terway_hybrid_api::{CheckName, CheckResult, CheckStatus, Confidence, NodeDetection, Plugin, Scenario};

/// The agent binary built by cargo for these tests.
/// The `terway-hybrid-agent` binary cargo built for the running test: it
/// sits next to the test binary's `deps/` folder (where cargo's
/// `CARGO_BIN_EXE_terway-hybrid-agent` points an agent test).
pub fn agent_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe.parent().and_then(Path::parent).map(|d| d.join("terway-hybrid-agent"));
        match bin.filter(|b| b.is_file()) {
            Some(b) => b.to_string_lossy().into_owned(),
            None => {
                panic!("no terway-hybrid-agent next to {}: run the agent's tests with cargo", exe.display())
            }
        }
    })
}

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
    /// Held, not read: the LAN namespace lives as long as the node.
    _lan: NetNs,
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
        Node { ns, root: HostRoot::new(), pods: Vec::new(), _lan: lan }
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
    let out = ns.exec(agent_bin(), args);
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

// ---------------------------------------------------------------------------
// `run` mode: a running agent, its endpoints and its metrics
// ---------------------------------------------------------------------------

/// Where a test's agent serves /metrics, /healthz and /readyz: the loopback
/// of the test's own namespace, so every test can use the same port.
pub const METRICS_ADDR: &str = "127.0.0.1:9797";

/// Writes `proc/sys/net/ipv4/ip_forward` under the host root (the agent's
/// IPForwarding check reads it there).
pub fn set_ip_forward(root: &HostRoot, on: bool) {
    root.write("proc/sys/net/ipv4/ip_forward", if on { "1\n" } else { "0\n" });
}

/// `terway-hybrid-agent run --standalone` inside a namespace, serving on
/// [`METRICS_ADDR`]; killed when dropped (or when its namespace is). Its
/// output (RUST_LOG=info) goes to a log file quoted in failure messages.
pub struct RunningAgent<'a> {
    ns: &'a NetNs,
    child: std::cell::RefCell<ChildGuard>,
    /// Declared after `child` so the log outlives the process writing it.
    log: tempfile::NamedTempFile,
}

impl<'a> RunningAgent<'a> {
    /// Starts `run --standalone --host-root <root> --metrics-addr METRICS_ADDR <extra...>` in `ns`.
    pub fn start(ns: &'a NetNs, root: &Path, extra: &[&str]) -> RunningAgent<'a> {
        Self::start_wrapped(ns, root, &[], extra)
    }

    /// [`RunningAgent::start`] under `wrapper` (a program that execs the
    /// rest, e.g. `["prlimit", "--nofile=1024"]`), so the pid is still the agent's.
    pub fn start_wrapped(ns: &'a NetNs, root: &Path, wrapper: &[&str], extra: &[&str]) -> RunningAgent<'a> {
        let log = tempfile::Builder::new()
            .prefix("thtest-agent-")
            .suffix(".log")
            .tempfile()
            .unwrap_or_else(|e| panic!("cannot create the agent's log file: {e}"));
        let mut args: Vec<&str> = wrapper.iter().skip(1).copied().collect();
        if !wrapper.is_empty() {
            args.push("env");
        }
        args.extend([
            "RUST_LOG=info",
            "NO_COLOR=1",
            agent_bin(),
            "run",
            "--standalone",
            "--host-root",
            root_str(root),
            "--metrics-addr",
            METRICS_ADDR,
        ]);
        args.extend_from_slice(extra);
        // `env` execs the agent, so the child's pid is the agent's own.
        let child = ns.spawn_logged(wrapper.first().copied().unwrap_or("env"), &args, log.path());
        RunningAgent { ns, child: std::cell::RefCell::new(child), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_else(|e| format!("(cannot read the log: {e})"))
    }

    /// The exit status if the agent has exited.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.borrow_mut().child_mut().try_wait().ok().flatten()
    }

    /// Panics with the log if the agent is gone: waiting on would only turn
    /// a crash into a vague timeout.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("the agent exited ({status})\n--- agent log ---\n{}", self.log());
        }
    }

    /// GET `path` with curl inside the namespace: (HTTP status, body); the
    /// status is 0 when nothing answered.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.ns, &format!("http://{METRICS_ADDR}{path}"))
    }

    /// /metrics parsed, or None while the agent does not answer.
    pub fn metrics(&self) -> Option<Exposition> {
        match self.get("/metrics") {
            (200, text) => Some(Exposition::parse(&text)),
            _ => None,
        }
    }

    /// Waits until `terway_hybrid_agent_detection_duration_seconds_count` is
    /// at least `n`; returns that exposition.
    pub fn wait_detections(&self, n: u64, timeout: Duration) -> Exposition {
        self.wait_metrics(&format!("{n} detection(s)"), timeout, |m| m.detections() >= n)
    }

    /// Waits until the agent's `scenario_info` is exactly `scenario`/`plugin`.
    pub fn wait_scenario(&self, scenario: &str, plugin: &str, timeout: Duration) -> Exposition {
        self.wait_metrics(&format!("scenario_info {scenario}/{plugin}"), timeout, |m| {
            m.scenarios() == [(scenario.to_owned(), plugin.to_owned())]
        })
    }

    /// Polls /metrics until `ok` holds; panics with the last exposition and
    /// the agent's log otherwise.
    pub fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        let last = std::cell::RefCell::new(String::from("(no answer yet)"));
        crate::wait_for_described(
            &format!("the agent in {} to report {what}", self.ns.name()),
            timeout,
            || {
                self.assert_running();
                let m = self.metrics()?;
                last.replace(m.text.clone());
                ok(&m).then_some(m)
            },
            || format!("--- last /metrics ---\n{}\n--- agent log ---\n{}", last.borrow(), self.log()),
        )
    }

    /// Waits until `path` answers `status`; returns the body.
    pub fn wait_status(&self, path: &str, status: u16, timeout: Duration) -> String {
        let last = std::cell::RefCell::new((0, String::new()));
        crate::wait_for_described(
            &format!("{path} of the agent in {} to answer {status}", self.ns.name()),
            timeout,
            || {
                self.assert_running();
                let (code, body) = self.get(path);
                last.replace((code, body.clone()));
                (code == status).then_some(body)
            },
            || format!("last answer: {:?}\n--- agent log ---\n{}", last.borrow(), self.log()),
        )
    }

    /// Sends SIGTERM (with kill(1): the agent crate does not enable nix's
    /// `signal` feature).
    pub fn terminate(&self) {
        let pid = self.pid().to_string();
        let out = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .output()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(out.status.success(), "{}", describe_output("kill -TERM failed", &out));
    }

    /// Waits up to `timeout` for the agent to exit; None if it still runs.
    pub fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// GET `url` with curl inside `ns`: (HTTP status, body); status 0 when the
/// connection failed.
pub fn http_get(ns: &NetNs, url: &str) -> (u16, String) {
    let out = ns.exec("curl", &["-s", "--max-time", "5", "-w", "\n%{http_code}", url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.rsplit_once('\n') {
        Some((body, code)) => (code.trim().parse().unwrap_or(0), body.to_owned()),
        None => (0, text),
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition (comments skipped), with its text.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the text format; a sample line that does not parse panics,
    /// since the agent must never serve one.
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparsable sample line {l:?} in:\n{text}")))
            .collect();
        Exposition { text: text.to_owned(), samples }
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .collect()
    }

    /// The value of the single sample `name{labels}`, if there is exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels).as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }

    /// How many detections finished (the duration histogram's count).
    pub fn detections(&self) -> u64 {
        self.value("terway_hybrid_agent_detection_duration_seconds_count", &[]).unwrap_or(0.0) as u64
    }

    /// Every (scenario, plugin) pair `scenario_info` reports with value 1.
    pub fn scenarios(&self) -> Vec<(String, String)> {
        self.find("terway_hybrid_agent_scenario_info", &[])
            .into_iter()
            .filter(|s| s.value == 1.0)
            .map(|s| {
                let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                (label("scenario"), label("plugin"))
            })
            .collect()
    }
}

/// `name{k="v",...} value` or `name value` (no timestamps: the agent sends none).
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.trim_end().rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, Default::default()),
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

fn parse_labels(mut rest: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut escaped = false;
        let end = after.char_indices().find_map(|(i, c)| match c {
            _ if escaped => {
                escaped = false;
                None
            }
            '\\' => {
                escaped = true;
                None
            }
            '"' => Some(i),
            _ => None,
        })?;
        labels.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
    }
    Some(labels)
}
