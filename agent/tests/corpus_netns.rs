//! The corpus cases marked `netns: yes`, rebuilt in a network namespace from
//! their pasted state and classified by the real `terway-hybrid-agent detect
//! --output json`: the parser, the collector and the classifier must agree.
//!
//! Run as root. Only device types this kernel can create are rebuilt
//! (veth, bridge, vxlan, tun); a case needing another one (ipip, geneve,
//! bond, wireguard) stays a snapshot case and must not be marked `netns`.

use terway_hybrid_api::snapshot::{Family, Link, RouteType};
use terway_hybrid_testkit::agent_node::{detect_in, snapshot_in};
use terway_hybrid_testkit::corpus;
use terway_hybrid_testkit::corpus::{Case, ParsedNode, Route};
use terway_hybrid_testkit::{require_root, HostRoot, NetNs};

/// Device kinds a rebuild can create.
fn rebuild_kind(link: &Link) -> Result<&'static str, String> {
    let name = link.name.as_str();
    let tunnel_name = name.starts_with("flannel.") || name == "vxlan.calico" || name == "cilium_vxlan";
    match link.kind.as_deref() {
        Some("vxlan") => Ok("vxlan"),
        None if tunnel_name => Ok("vxlan"),
        Some("bridge") => Ok("bridge"),
        None if ["cni0", "docker0", "kube-bridge"].contains(&name) => Ok("bridge"),
        Some("tun") => Ok("tun"),
        None if name.strip_prefix("tun").is_some_and(|n| n.parse::<u32>().is_ok()) => Ok("tun"),
        None if name == "cilium_host" => Ok("cilium_host"),
        None if name == "cilium_net" => Ok("skip"),
        Some("veth") | None => Ok("veth"),
        Some(other) => Err(format!("this kernel cannot rebuild a {other} device ({name})")),
    }
}

/// `ip link add` for a VXLAN device as its CNI creates it, from `ip -d`
/// when the thread shows it, else the CNI's defaults.
fn vxlan_args(link: &Link) -> Vec<String> {
    let mut args: Vec<String> =
        vec!["link".into(), "add".into(), link.name.clone(), "type".into(), "vxlan".into()];
    let (vni, port, external) = match &link.vxlan {
        Some(v) if v.vni != 0 || v.flow_based => {
            (v.vni, if v.port == 0 { 8472 } else { v.port }, v.flow_based)
        }
        _ if link.name == "vxlan.calico" => (4096, 4789, false),
        _ if link.name == "cilium_vxlan" => (0, 8472, true),
        _ => (link.name.strip_prefix("flannel.").and_then(|n| n.parse().ok()).unwrap_or(1), 8472, false),
    };
    if external {
        args.push("external".into());
    } else {
        args.extend(["id".into(), vni.to_string(), "nolearning".into()]);
    }
    args.extend(["dstport".into(), port.to_string()]);
    args
}

fn route_line(r: &Route) -> Option<String> {
    if matches!(r.route_type, RouteType::Local | RouteType::Broadcast | RouteType::Other)
        || r.table.as_deref() == Some("local")
        || !r.nexthops.is_empty()
    {
        return None;
    }
    let mut line =
        String::from(if r.family == Family::Ipv6 { "-6 route replace " } else { "route replace " });
    match r.route_type {
        RouteType::Blackhole => line.push_str("blackhole "),
        RouteType::Unreachable => line.push_str("unreachable "),
        RouteType::Prohibit => line.push_str("prohibit "),
        _ => {}
    }
    line.push_str(&r.dst);
    if let Some(gw) = &r.gateway {
        line.push_str(&format!(" via {gw}"));
    }
    if let (Some(dev), RouteType::Unicast) = (&r.device, r.route_type) {
        line.push_str(&format!(" dev {dev}"));
    }
    line.push_str(&format!(" proto {}", r.protocol));
    if r.onlink {
        line.push_str(" onlink");
    }
    if let Some(t) = &r.table {
        line.push_str(&format!(" table {t}"));
    }
    Some(line)
}

/// Builds the node in `ns` (its NICs' peers in `lan`) and its files under `root`.
fn rebuild(case: &Case, node: &ParsedNode, ns: &NetNs, lan: &NetNs, root: &HostRoot) {
    for (i, link) in node.links.iter().enumerate().filter(|(_, l)| l.name != "lo") {
        let kind = rebuild_kind(link).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        match kind {
            "vxlan" => ns.ip_args(&vxlan_args(link).iter().map(String::as_str).collect::<Vec<_>>()),
            "bridge" => ns.ip_args(&["link", "add", &link.name, "type", "bridge"]),
            "tun" => ns.ip_args(&["tuntap", "add", "mode", "tun", "name", &link.name]),
            "cilium_host" => ns.ip("link add cilium_host type veth peer name cilium_net"),
            "skip" => continue,
            _ => {
                let peer = format!("p{i}");
                ns.ip_args(&[
                    "link",
                    "add",
                    &link.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &peer,
                    "netns",
                    lan.name(),
                ]);
                lan.ip_args(&["link", "set", &peer, "up"]);
            }
        }
        if link.up {
            ns.ip_args(&["link", "set", &link.name, "up"]);
            if kind == "cilium_host" {
                ns.ip("link set cilium_net up");
            }
        }
        for addr in link.addresses.iter().filter(|a| !a.starts_with("fe80:")) {
            let mut args = vec!["addr", "add", addr.as_str(), "dev", link.name.as_str()];
            if addr.contains(':') {
                args.push("nodad");
            }
            ns.ip_args(&args);
        }
    }
    // Routes without a gateway first: they make the gateways reachable.
    let (direct, via): (Vec<&Route>, Vec<&Route>) = node.routes.iter().partition(|r| r.gateway.is_none());
    let lines: Vec<String> = direct.into_iter().chain(via).filter_map(route_line).collect();
    if !lines.is_empty() {
        ns.ip_batch(&(lines.join("\n") + "\n"));
    }
    for (name, text) in &node.cni {
        let rel = if name.contains('/') { name.clone() } else { format!("etc/cni/net.d/{name}") };
        root.write(&rel, text);
    }
    if let Some(env) = &node.subnet_env {
        root.write("run/flannel/subnet.env", env);
    }
    if let Some(n) = &node.nodename {
        root.write("var/lib/calico/nodename", format!("{n}\n"));
    }
}

#[test]
fn netns_corpus_cases_classify_as_their_snapshots() {
    require_root();
    let cases: Vec<Case> = corpus::load_all().into_iter().filter(|c| c.netns).collect();
    assert!(cases.len() >= 5, "only {} netns cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let node = case.node(true).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        assert!(
            !case.sections.iter().any(|s| s.kind == "calicoctl node status" || s.kind == "netstat"),
            "{}: a rebuild has no BIRD and no BGP sessions; keep the case a snapshot case",
            case.file
        );
        let ns = NetNs::new("corpus");
        let lan = NetNs::new("lan");
        let root = HostRoot::new();
        rebuild(case, &node, &ns, &lan, &root);
        let (d, raw, _) = detect_in(&ns, root.path());
        let det = &d.detection;
        let got = corpus::Expect { scenario: det.scenario, plugin: det.plugin, confidence: det.confidence };
        let mut why = Vec::new();
        if got != case.expect {
            why.push(format!("got {got}, want {}", case.expect));
        }
        for signal in &case.evidence {
            if !det.evidence.iter().any(|e| e.signal == *signal) {
                why.push(format!("no {signal:?} evidence"));
            }
        }
        if !why.is_empty() {
            let snap = serde_json::to_string_pretty(&snapshot_in(&ns, root.path())).unwrap_or_default();
            failures.push(format!("{}: {}\n{raw}\n--- snapshot ---\n{snap}", case.file, why.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn netns_cases_use_only_devices_this_kernel_has() {
    for case in corpus::load_all().into_iter().filter(|c| c.netns) {
        let node = case.node(true).unwrap();
        for link in node.links.iter().filter(|l| l.name != "lo") {
            rebuild_kind(link).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        }
    }
}
