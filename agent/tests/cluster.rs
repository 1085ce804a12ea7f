//! Agents as real processes on a real control plane (`scripts/control-plane`:
//! kube-apiserver, etcd, controller-manager, scheduler, kwok), installed as
//! README.md says.
//!
//! Each node is a network namespace on one LAN, with a Node object of the
//! same name that kwok keeps Ready; the agent DaemonSet's pod on it (run by
//! kwok) is the pod the agent's ServiceAccount token is bound to, so the
//! server sees the node claim its admission policy checks. The agent process
//! runs in the node's namespace and reaches the API server at 127.0.0.1
//! through a unix-socket bridge (traffic never leaves loopback). Three
//! on-prem nodes run BIRD 2 as Calico's node-to-node mesh does; two are cloud
//! nodes (`alibabacloud.com/external=true`).
//!
//! kube-apiserver is restarted in the middle: the agents recover and a
//! change made afterwards reaches its report.
//!
//! Run as root with bird2 and socat installed:
//! `cargo test -p terway-hybrid-agent --test cluster`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use terway_hybrid_testkit::agent_node::{agent_bin, CALICO_CONFLIST};
use terway_hybrid_testkit::bird::{self, Bird};
use terway_hybrid_testkit::cluster::{granted_rules, used_rules};
use terway_hybrid_testkit::control_plane::{AuditEvent, BoundPod};
use terway_hybrid_testkit::{
    require_program, require_root, unique_name, wait_for_described, ChildGuard, ControlPlane, HostRoot, NetNs,
};

const ASN: u32 = 64512;
const AGENT_USER: &str = "system:serviceaccount:terway-hybrid:terway-hybrid-agent";
const CALICO_BLOCKS: [&str; 3] = ["10.244.0.0/26", "10.244.1.0/26", "10.244.2.0/26"];

/// One node: its namespace on the LAN, host root, Node object, and the
/// processes running on it. Fields drop in order: agent and BIRD before the
/// bridge and the namespace.
struct SimNode {
    agent: Option<ChildGuard>,
    bird: Option<Bird>,
    _bridge: ChildGuard,
    name: String,
    kubeconfig: PathBuf,
    log: PathBuf,
    root: HostRoot,
    ns: NetNs,
}

fn node_yaml(name: &str, cloud: bool) -> String {
    let cloud_label = if cloud { "\n    alibabacloud.com/external: \"true\"" } else { "" };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    kwok.x-k8s.io/node: fake\n  \
         labels:\n    kubernetes.io/hostname: {name}\n    kubernetes.io/os: linux\n    kubernetes.io/arch: amd64{cloud_label}\n\
         status:\n  capacity: {{cpu: \"16\", memory: 64Gi, pods: \"110\"}}\n  \
         allocatable: {{cpu: \"16\", memory: 64Gi, pods: \"110\"}}\n"
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The agent DaemonSet's pod on `node`, once the DaemonSet controller and
/// the scheduler have placed it.
fn agent_pod_on(cp: &ControlPlane, node: &str) -> BoundPod {
    let selector = format!("spec.nodeName={node}");
    wait_for_described(
        &format!("the agent DaemonSet's pod on {node}"),
        Duration::from_secs(60),
        || {
            let pods = json(&cp.kubectl_ok(&[
                "get",
                "pods",
                "--namespace",
                "terway-hybrid",
                "--selector",
                "app=terway-hybrid-agent",
                "--field-selector",
                &selector,
                "-o",
                "json",
            ]));
            let pod = pods["items"].as_array()?.first()?.clone();
            Some(BoundPod {
                name: pod["metadata"]["name"].as_str()?.to_owned(),
                uid: pod["metadata"]["uid"].as_str()?.to_owned(),
            })
        },
        || cp.kubectl_ok(&["get", "daemonset,pods", "--namespace", "terway-hybrid", "-o", "wide"]),
    )
}

fn report(cp: &ControlPlane, node: &str) -> Option<Value> {
    let mut cmd = cp.kubectl();
    cmd.args(["get", "nodenetworkreport", node, "-o", "json", "--ignore-not-found"]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && !text.trim().is_empty()).then(|| json(&text))
}

/// kubectl as the agent of `node` (its pod-bound token), with a user agent
/// of its own so these deliberate attempts are told apart from the agent's
/// own requests in the audit log.
fn kubectl_as(cp: &ControlPlane, node: &SimNode, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(cp.kubectl_program());
    cmd.env("KUBECONFIG", &node.kubeconfig).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn is_ours(event: &AuditEvent) -> bool {
    event.user == AGENT_USER && !event.user_agent.starts_with("kubectl")
}

#[test]
fn agents_report_on_a_real_cluster_and_only_for_their_own_node() {
    require_root();
    require_program("socat", "socat");
    let cp = ControlPlane::shared();
    cp.install();
    let work = tempfile::tempdir().unwrap();

    // The LAN: one bridge in a namespace of its own, a veth per node.
    let lan = NetNs::new("clan");
    lan.ip("link add br0 type bridge");
    lan.ip("link set br0 up");
    let onprem_ips = ["192.168.77.1", "192.168.77.2", "192.168.77.3"];
    let cloud_ips = ["192.168.77.11", "192.168.77.12"];
    let mut nodes: Vec<SimNode> = Vec::new();
    for (i, ip) in onprem_ips.iter().chain(cloud_ips.iter()).enumerate() {
        let cloud = i >= onprem_ips.len();
        let name = unique_name(if cloud { "cloud" } else { "onprem" });
        let ns = NetNs::new(if cloud { "ccloud" } else { "conprem" });
        let port = format!("p{i}");
        lan.ip_args(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        lan.ip_args(&["link", "set", &port, "master", "br0", "up"]);
        ns.ip_args(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns.ip("link set eth0 up");
        cp.apply(&node_yaml(&name, cloud));
        let pod = agent_pod_on(cp, &name);
        let token = cp.token("terway-hybrid", "terway-hybrid-agent", Some(&pod));
        let kubeconfig = cp.token_kubeconfig(&token, &work.path().join(format!("{name}.kubeconfig")));
        let bridge = cp.bridge_into(&ns);
        let root = HostRoot::new();
        let log = work.path().join(format!("{name}.log"));
        nodes.push(SimNode { agent: None, bird: None, _bridge: bridge, name, kubeconfig, log, root, ns });
    }

    // Calico on the on-prem nodes: its CNI config, its node name file, and
    // BIRD in a full mesh, each node announcing its IPAM block.
    for (i, node) in nodes.iter_mut().take(onprem_ips.len()).enumerate() {
        node.root.write("etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST);
        node.root.write("var/lib/calico/nodename", format!("{}\n", node.name));
        let peers: Vec<&str> = onprem_ips.iter().copied().filter(|p| *p != onprem_ips[i]).collect();
        let config = bird::calico_mesh_config(onprem_ips[i], ASN, &peers, &[CALICO_BLOCKS[i]]);
        node.bird = Some(bird::start(&node.ns, &config, &node.root.path().join("var/run/calico/bird.ctl")));
    }
    for node in nodes.iter().take(onprem_ips.len()) {
        node.bird.as_ref().unwrap().wait_established(Duration::from_secs(60));
    }

    // The agents, as the DaemonSet runs them (NODE_NAME, the host root, the
    // pod's token), in their nodes' namespaces.
    for node in &mut nodes {
        let root = node.root.path().to_str().unwrap().to_owned();
        let kubeconfig = node.kubeconfig.to_str().unwrap().to_owned();
        node.agent = Some(node.ns.spawn_logged_env(
            agent_bin(),
            &[
                "run",
                "--host-root",
                &root,
                "--metrics-addr",
                "127.0.0.1:9797",
                "--ecs-metadata-url",
                "http://127.0.0.1:9/",
                "--debounce-ms",
                "200",
                "--resync-seconds",
                "2",
            ],
            &[("KUBECONFIG", &kubeconfig), ("NODE_NAME", &node.name), ("RUST_LOG", "info")],
            &node.log,
        ));
    }
    let logs = |nodes: &[SimNode]| {
        nodes
            .iter()
            .map(|n| format!("== {}\n{}", n.name, std::fs::read_to_string(&n.log).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Every node's report appears, owned by its Node, with the right answer.
    for (i, node) in nodes.iter().enumerate() {
        let cloud = i >= onprem_ips.len();
        let report = wait_for_described(
            &format!("NodeNetworkReport {}", node.name),
            Duration::from_secs(60),
            || report(cp, &node.name).filter(|r| r["status"]["scenario"].is_string()),
            || logs(&nodes),
        );
        let node_uid =
            json(&cp.kubectl_ok(&["get", "node", &node.name, "-o", "json"]))["metadata"]["uid"].clone();
        let owners = report["metadata"]["ownerReferences"].as_array().expect("the report has owners");
        assert_eq!(owners.len(), 1, "{report}");
        assert_eq!(owners[0]["kind"], "Node");
        assert_eq!(owners[0]["name"], node.name.as_str());
        assert_eq!(owners[0]["uid"], node_uid, "owned by this Node object, not a namesake");
        assert_eq!(report["spec"]["nodeName"], node.name.as_str());
        if cloud {
            assert_eq!(report["status"]["role"], "cloud", "{report}");
        } else {
            assert_eq!(report["status"]["role"], "on-prem", "{report}");
            assert_eq!(report["status"]["scenario"], "bgp", "{report}");
            assert_eq!(report["status"]["plugin"], "calico-bgp", "{report}");
        }
    }

    // At rest the agents re-read their Node on every resync (2 s here) but
    // write nothing: a report changes only when the node does.
    let writes = |events: &[AuditEvent]| events.iter().filter(|e| is_ours(e) && e.verb == "patch").count();
    let node_reads = |events: &[AuditEvent]| {
        events.iter().filter(|e| is_ours(e) && e.verb == "get" && e.resource == "nodes").count()
    };
    std::thread::sleep(Duration::from_secs(3));
    let before = cp.audit_events();
    std::thread::sleep(Duration::from_secs(6));
    let after = cp.audit_events();
    assert!(node_reads(&after) > node_reads(&before), "the agents resync (read their Node) while idle");
    let new_writes: Vec<&AuditEvent> =
        after[before.len()..].iter().filter(|e| is_ours(e) && e.verb == "patch").collect();
    assert_eq!(writes(&after), writes(&before), "an idle agent wrote its report: {new_writes:#?}");

    // The admission policy: an agent may not write another node's report,
    // even with the same RBAC as the rightful one.
    let (victim, attacker) = (&nodes[1], &nodes[0]);
    let forged = format!(
        "apiVersion: terway-hybrid.io/v1alpha1\nkind: NodeNetworkReport\nmetadata:\n  name: {victim}\nspec:\n  nodeName: {victim}\n",
        victim = victim.name
    );
    let (ok, out) = kubectl_as(
        cp,
        attacker,
        &["apply", "--server-side", "--field-manager", "terway-hybrid-agent", "-f", "-"],
        Some(&forged),
    );
    assert!(!ok, "the agent of {} wrote {}'s report: {out}", attacker.name, victim.name);
    assert!(out.contains("may only write NodeNetworkReport"), "denied by the admission policy, said: {out}");
    // Its own report it may write (the same request, its own name).
    let own = forged.replace(&victim.name, &attacker.name);
    let (ok, out) = kubectl_as(
        cp,
        attacker,
        &["apply", "--server-side", "--field-manager", "terway-hybrid-agent", "-f", "-", "--dry-run=server"],
        Some(&own),
    );
    assert!(ok, "the agent may write its own report: {out}");
    // RBAC: no Secret, not even the add-on's.
    let (ok, out) = kubectl_as(
        cp,
        attacker,
        &["get", "secret", "alibaba-addon-secret", "--namespace", "kube-system"],
        None,
    );
    assert!(!ok && out.contains("forbidden"), "the agent may not read Secrets: {out}");

    // kube-apiserver restarts; the agents go on. A change on a cloud node
    // made while the server is back reaches its report: nothing is lost.
    let changed = &nodes[3];
    let before = report(cp, &changed.name).expect("the report exists")["status"].clone();
    cp.restart("kube-apiserver");
    changed.ns.ip("link add flannel.1 type vxlan id 1 dev eth0 dstport 8472 nolearning");
    changed.ns.ip("link set flannel.1 up");
    wait_for_described(
        &format!("{}'s report to show the new VXLAN device after the API server restart", changed.name),
        Duration::from_secs(60),
        || {
            let now = report(cp, &changed.name)?["status"].clone();
            (now["evidence"] != before["evidence"] || now["plugin"] != before["plugin"]).then_some(now)
        },
        || logs(&nodes),
    );

    // Garbage collection: deleting a Node deletes its report.
    let gone = &nodes[4];
    cp.kubectl_ok(&["delete", "node", &gone.name, "--wait=false"]);
    wait_for_described(
        &format!("NodeNetworkReport {} to be garbage-collected with its Node", gone.name),
        Duration::from_secs(60),
        || report(cp, &gone.name).is_none().then_some(()),
        || report(cp, &gone.name),
    );

    // The audit log: the agents met no 403 in normal operation, and every
    // rule of their ClusterRole was used by them.
    let events: Vec<AuditEvent> = cp.audit_events().into_iter().filter(is_ours).collect();
    assert!(!events.is_empty(), "the audit log has the agents' requests");
    let normal = cp.outside_restarts(events.clone());
    let forbidden: Vec<&AuditEvent> = normal.iter().filter(|e| e.code == 403).collect();
    assert!(forbidden.is_empty(), "the agents met 403s: {forbidden:#?}");
    let used = used_rules(&events);
    let rules = granted_rules(cp, "terway-hybrid", "terway-hybrid-agent");
    let unused: Vec<&(String, String)> = rules.difference(&used).collect();
    assert!(unused.is_empty(), "RBAC rules of the agent no test uses: {unused:?} (used: {used:?})");
}
