//! The corpus of real node states: what users and maintainers pasted in
//! public issue threads (`ip addr`, `ip -d link`, `ip route`, `route -n`,
//! `brctl show`, CNI configs, `calicoctl node status`, `netstat`), one text
//! file per node under `agent/tests/corpus/cases/`, turned into a
//! [`NodeSnapshot`] here, or rebuilt in a network namespace
//! (`corpus_netns.rs`).
//!
//! A case file is a header of `key: value` lines, then sections:
//!
//! ```text
//! id: calico-ipip-tunl0-unaddressed
//! source: projectcalico/calico#6883 (https://github.com/...)
//! cni: calico
//! mode: ipip
//! truth: calico-ipip            (or `ambiguous: why`)
//! expect: overlay calico-ipip high
//! without-added: overlay calico-ipip medium   (required when a section is added)
//! evidence: tunnel-device routes              (signals that must appear)
//! stale: flannel.1                            (text the stale list must hold)
//! netns: yes                                  (also rebuilt in a namespace)
//! note: free text, as many lines as needed
//!
//! === ip addr
//! ...pasted output...
//! === ip route [added]
//! ...a signal the thread implies but does not show...
//! === cni 10-calico.conflist [added]
//! { ... }
//! ```
//!
//! Sections: `ip addr`, `ip link`, `ip -d link` (merged by interface name),
//! `ip route`, `ip -6 route`, `route -n` (also `netstat -rn`; option
//! `proto=NAME` says which protocol the non-connected routes had, which
//! `route -n` does not show: that is an added signal), `brctl show`,
//! `cni NAME`, `subnet.env`, `nodename`, `calicoctl node status`, `netstat`
//! (the `:179` sockets). `[added]` marks a section the thread does not show:
//! every case is also classified without its added sections and options.
//!
//! The parsers are bounded: a case file is at most [`MAX_CASE`] bytes and a
//! line that does not parse is an error, never skipped silently.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use terway_hybrid_api::snapshot::{
    BgpSockets, BirdProtocol, BirdState, CniDir, CniFile, Family, FileState, Link, NextHop, RouteGroup,
    RouteSummary, RouteType, SubnetEnv, Vxlan,
};
use terway_hybrid_api::{Confidence, NodeSnapshot, Plugin, Scenario};

/// No pasted node state comes near this.
pub const MAX_CASE: usize = 64 * 1024;

pub fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/corpus/cases")
}

/// Every case file, sorted by name; panics on a file that does not parse.
pub fn load_all() -> Vec<Case> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("the corpus directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    names.sort();
    names.iter().map(|p| load(p)).collect()
}

pub fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    parse_case(&name, &text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub scenario: Scenario,
    pub plugin: Plugin,
    pub confidence: Confidence,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.scenario, self.plugin, self.confidence)
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub file: String,
    pub id: String,
    pub source: String,
    pub cni: String,
    pub mode: String,
    /// The plugin the thread says the node runs; None when it is ambiguous.
    pub truth: Option<Plugin>,
    pub expect: Expect,
    pub without_added: Option<Expect>,
    pub evidence: Vec<String>,
    pub stale: Vec<String>,
    pub netns: bool,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub kind: String,
    /// The file name of a `cni` section.
    pub arg: Option<String>,
    pub added: bool,
    /// `route -n`'s `proto=NAME` option (an added signal).
    pub proto: Option<u8>,
    pub body: String,
}

impl Case {
    pub fn has_added(&self) -> bool {
        self.sections.iter().any(|s| s.added || s.proto.is_some())
    }

    /// Does the expected answer agree with the ground truth? For an
    /// ambiguous thread, only `unknown` or low confidence agrees; for a
    /// node whose state does not show its CNI's datapath (a broken node),
    /// `unknown` does too: it is never a wrong answer.
    pub fn agrees(&self, e: &Expect) -> bool {
        match self.truth {
            Some(p) => e.plugin == p || e.plugin == Plugin::Unknown,
            None => e.plugin == Plugin::Unknown || e.confidence == Confidence::Low,
        }
    }

    /// Right: the thread's plugin. Honest: unknown (or, for an ambiguous
    /// thread, low confidence). Anything else is wrong.
    pub fn score(&self, e: &Expect) -> &'static str {
        match self.truth {
            Some(p) if e.plugin == p => "right",
            _ if self.agrees(e) => "honest",
            _ => "wrong",
        }
    }

    /// The node as parsed: every section, or only those the thread shows.
    pub fn node(&self, with_added: bool) -> Result<ParsedNode, String> {
        let mut node = ParsedNode::default();
        for s in self.sections.iter().filter(|s| with_added || !s.added) {
            let proto = if with_added { s.proto } else { None };
            node.add_section(s, proto).map_err(|e| format!("section {}: {e}", s.kind))?;
        }
        node.finish().map_err(|e| format!("section route -n: {e}"))
    }

    pub fn snapshot(&self, with_added: bool) -> NodeSnapshot {
        self.node(with_added).unwrap_or_else(|e| panic!("{}: {e}", self.file)).snapshot()
    }
}

pub fn parse_case(file: &str, text: &str) -> Result<Case, String> {
    if text.len() > MAX_CASE {
        return Err(format!("larger than {MAX_CASE} bytes"));
    }
    let mut header: BTreeMap<String, String> = BTreeMap::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("=== ") {
            sections.push(parse_section_head(head)?);
        } else if let Some(s) = sections.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
        } else if let Some((k, v)) = line.split_once(':') {
            let entry = header.entry(k.trim().to_owned()).or_default();
            if !entry.is_empty() {
                entry.push(' ');
            }
            entry.push_str(v.trim());
        } else if !line.trim().is_empty() {
            return Err(format!("header line without a key: {line:?}"));
        }
    }
    let get = |k: &str| header.get(k).cloned().ok_or_else(|| format!("no {k:?} in the header"));
    let list = |k: &str| -> Vec<String> {
        header.get(k).map(|v| v.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
    };
    let truth = get("truth")?;
    let truth = if truth.starts_with("ambiguous") { None } else { Some(plugin(truth.trim())?) };
    let case = Case {
        file: file.to_owned(),
        id: get("id")?,
        source: get("source")?,
        cni: get("cni")?,
        mode: get("mode")?,
        truth,
        expect: parse_expect(&get("expect")?)?,
        without_added: header.get("without-added").map(|v| parse_expect(v)).transpose()?,
        evidence: list("evidence"),
        stale: header
            .get("stale")
            .map(|v| v.split(';').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default(),
        netns: header.get("netns").is_some_and(|v| v == "yes"),
        sections,
    };
    if case.has_added() && case.without_added.is_none() {
        return Err("has added signals but no `without-added:` expectation".to_owned());
    }
    if !case.has_added() && case.without_added.is_some() {
        return Err("`without-added:` but nothing is marked added".to_owned());
    }
    Ok(case)
}

fn parse_section_head(head: &str) -> Result<Section, String> {
    let mut words: Vec<&str> = head.split_whitespace().collect();
    let added = words.last() == Some(&"[added]");
    if added {
        words.pop();
    }
    let mut proto = None;
    if let Some(opt) = words.last().and_then(|w| w.strip_prefix("[proto=")) {
        proto = Some(protocol(opt.trim_end_matches(']'))?);
        words.pop();
    }
    let (kind, arg) = match words.as_slice() {
        ["cni", name] => ("cni".to_owned(), Some((*name).to_owned())),
        _ => (words.join(" "), None),
    };
    const KINDS: [&str; 13] = [
        "ip addr",
        "ip link",
        "ip -d link",
        "ip route",
        "ip -6 route",
        "route -n",
        "brctl show",
        "cni",
        "subnet.env",
        "nodename",
        "calicoctl node status",
        "netstat",
        "uname -r",
    ];
    if !KINDS.contains(&kind.as_str()) {
        return Err(format!("unknown section {kind:?}"));
    }
    if proto.is_some() && kind != "route -n" {
        return Err("[proto=] is for route -n sections".to_owned());
    }
    Ok(Section { kind, arg, added, proto, body: String::new() })
}

fn parse_expect(v: &str) -> Result<Expect, String> {
    let w: Vec<&str> = v.split_whitespace().collect();
    let [scenario, p, confidence] = w.as_slice() else {
        return Err(format!("expectation is `scenario plugin confidence`, got {v:?}"));
    };
    let expect =
        Expect { scenario: enum_value(scenario)?, plugin: plugin(p)?, confidence: enum_value(confidence)? };
    if expect.plugin.scenario() != expect.scenario {
        return Err(format!("{} is not a {} plugin", expect.plugin, expect.scenario));
    }
    Ok(expect)
}

fn plugin(v: &str) -> Result<Plugin, String> {
    enum_value(v)
}

fn enum_value<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|e| format!("{v:?}: {e}"))
}

/// rtm_protocol by the names iproute2 prints (`/etc/iproute2/rt_protos`).
pub fn protocol(name: &str) -> Result<u8, String> {
    Ok(match name {
        "redirect" => 1,
        "kernel" => 2,
        "boot" => 3,
        "static" => 4,
        "ra" => 9,
        "zebra" => 11,
        "bird" => 12,
        "dhcp" => 16,
        "keepalived" => 18,
        "babel" => 42,
        "bgp" => 186,
        "isis" => 187,
        "ospf" => 188,
        "rip" => 189,
        n => n.parse().map_err(|_| format!("unknown route protocol {n:?}"))?,
    })
}

// ---------------------------------------------------------------------------
// The parsed node
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct ParsedNode {
    pub kernel: String,
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
    pub cni: Vec<(String, String)>,
    pub subnet_env: Option<String>,
    pub nodename: Option<String>,
    pub bird: BirdState,
    pub sockets: BgpSockets,
    /// `route -n` sections are resolved once every link's addresses are known.
    pending_route_n: Vec<(String, Option<u8>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub family: Family,
    pub route_type: RouteType,
    /// Destination in CIDR notation (`0.0.0.0/0` for default).
    pub dst: String,
    pub prefix_len: u8,
    pub gateway: Option<String>,
    pub device: Option<String>,
    pub protocol: u8,
    pub onlink: bool,
    /// Other next hops of a multipath route: (gateway, device).
    pub nexthops: Vec<(Option<String>, Option<String>)>,
    /// A table other than main (`local` routes are rebuilt by the kernel).
    pub table: Option<String>,
}

impl ParsedNode {
    fn link_mut(&mut self, name: &str) -> &mut Link {
        if let Some(i) = self.links.iter().position(|l| l.name == name) {
            return &mut self.links[i];
        }
        let index = self.links.len() as u32 + 1;
        self.links.push(Link { index, name: name.to_owned(), up: true, mtu: 1500, ..Link::default() });
        self.links.last_mut().unwrap()
    }

    fn add_section(&mut self, s: &Section, proto: Option<u8>) -> Result<(), String> {
        match s.kind.as_str() {
            "ip addr" | "ip link" | "ip -d link" => self.ip_link(&s.body),
            "ip route" => self.ip_route(&s.body, None),
            "ip -6 route" => self.ip_route(&s.body, Some(Family::Ipv6)),
            "route -n" => {
                self.pending_route_n.push((s.body.clone(), proto));
                Ok(())
            }
            "brctl show" => self.brctl(&s.body),
            "cni" => {
                self.cni.push((s.arg.clone().unwrap_or_default(), s.body.clone()));
                Ok(())
            }
            "subnet.env" => {
                self.subnet_env = Some(s.body.clone());
                Ok(())
            }
            "nodename" => {
                self.nodename = Some(s.body.trim().to_owned());
                Ok(())
            }
            "calicoctl node status" => self.calicoctl(&s.body),
            "netstat" => self.netstat(&s.body),
            "uname -r" => {
                self.kernel = s.body.trim().to_owned();
                Ok(())
            }
            other => Err(format!("unknown section {other}")),
        }
    }

    /// `ip addr` / `ip link` / `ip -d link` output.
    fn ip_link(&mut self, body: &str) -> Result<(), String> {
        let mut current: Option<String> = None;
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            if !line.starts_with(char::is_whitespace) {
                let (index, rest) =
                    line.split_once(": ").ok_or_else(|| format!("not a link line: {line:?}"))?;
                index.trim().parse::<u32>().map_err(|_| format!("not a link line: {line:?}"))?;
                let (name, rest) = rest.split_once(':').ok_or_else(|| format!("no name: {line:?}"))?;
                let name = name.split('@').next().unwrap().trim().to_owned();
                let flags = rest.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(f, _)| f);
                let flags = flags.ok_or_else(|| format!("no <FLAGS>: {line:?}"))?;
                let mtu = word_after(rest, "mtu").and_then(|m| m.parse().ok());
                let link = self.link_mut(&name);
                link.up = flags.split(',').any(|f| f == "UP");
                if let Some(mtu) = mtu {
                    link.mtu = mtu;
                }
                current = Some(name);
                continue;
            }
            let name = current.clone().ok_or_else(|| format!("detail before any link: {line:?}"))?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let link = self.link_mut(&name);
            match words[0] {
                // `inet <tab> scope global flannel.1`: a blank address, as
                // some pastes show it; nothing to record.
                "inet" | "inet6" if words.get(1).is_none_or(|w| *w == "scope") => {}
                "inet" | "inet6" => {
                    let addr = words[1];
                    let addr = if addr.contains('/') {
                        addr.to_owned()
                    } else if words[0] == "inet" {
                        format!("{addr}/32")
                    } else {
                        format!("{addr}/128")
                    };
                    addr_prefix(&addr).ok_or_else(|| format!("bad address: {line:?}"))?;
                    if !link.addresses.contains(&addr) {
                        link.addresses.push(addr);
                    }
                }
                "link/ipip" if link.kind.is_none() => link.kind = Some("ipip".to_owned()),
                kind if LINK_KINDS.contains(&kind) && link.kind.is_none() => {
                    link.kind = Some(kind.to_owned());
                    if kind == "vxlan" {
                        link.vxlan = Some(Vxlan {
                            vni: word_after(line, "id").and_then(|v| v.parse().ok()).unwrap_or(0),
                            port: word_after(line, "dstport").and_then(|v| v.parse().ok()).unwrap_or(0),
                            local: word_after(line, "local").map(str::to_owned),
                            flow_based: words.contains(&"external"),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `ip route` / `ip route show table all` / `ip -6 route`.
    fn ip_route(&mut self, body: &str, family: Option<Family>) -> Result<(), String> {
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words[0] == "nexthop" {
                let last =
                    self.routes.last_mut().ok_or_else(|| format!("nexthop without a route: {line:?}"))?;
                let hop =
                    (word_after(line, "via").map(str::to_owned), word_after(line, "dev").map(str::to_owned));
                if last.gateway.is_none() && last.device.is_none() {
                    (last.gateway, last.device) = hop;
                } else {
                    last.nexthops.push(hop);
                }
                continue;
            }
            let route = parse_ip_route(&words, family).map_err(|e| format!("{e}: {line:?}"))?;
            if let Some(dev) = &route.device {
                self.link_mut(dev);
            }
            self.routes.push(route);
        }
        Ok(())
    }

    /// `route -n` / `netstat -rn`: no protocol, no onlink flag. A route
    /// without a gateway into a subnet the device is addressed in is the
    /// kernel's connected route; a gateway outside every connected subnet of
    /// the device was added onlink; every other route gets `proto` (an added
    /// signal) or, not knowing better, boot (what `ip route add` gives).
    fn route_n(&mut self, body: &str, proto: Option<u8>) -> Result<(), String> {
        let mut rows = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let is_dst = w[0] == "default" || w[0].parse::<std::net::Ipv4Addr>().is_ok();
            if !is_dst {
                continue; // the title and column header lines, in any language
            }
            if w.len() < 5 {
                return Err(format!("short route -n line: {line:?}"));
            }
            let mask: std::net::Ipv4Addr = w[2].parse().map_err(|_| format!("bad genmask: {line:?}"))?;
            let len = u32::from(mask).count_ones() as u8;
            let dst = if w[0] == "default" { "0.0.0.0".to_owned() } else { w[0].to_owned() };
            let gateway = match w[1] {
                "0.0.0.0" | "*" => None,
                g => Some(g.to_owned()),
            };
            let flags = w[3];
            let iface = w[w.len() - 1].to_owned();
            rows.push((format!("{dst}/{len}"), len, gateway, flags.to_owned(), iface));
        }
        // Connected subnets: the devices' addresses and the gateway-less routes.
        let mut connected: Vec<(String, String)> = Vec::new();
        for l in &self.links {
            for a in &l.addresses {
                connected.push((l.name.clone(), a.clone()));
            }
        }
        for (dst, len, gw, _, iface) in &rows {
            if gw.is_none() && *len < 32 && *len > 0 {
                connected.push((iface.clone(), dst.clone()));
            }
        }
        for (dst, len, gateway, flags, iface) in rows {
            let reject = flags.contains('!');
            let blackhole = iface == "*" || iface == "-";
            let device = if blackhole { None } else { Some(iface.clone()) };
            if let Some(d) = &device {
                self.link_mut(d);
            }
            // With the device's addresses unknown, a gateway-less network
            // route (not a host route, flag H) is taken as the connected one.
            let is_connected = gateway.is_none()
                && !blackhole
                && !reject
                && self.links.iter().any(|l| {
                    l.name == iface
                        && (l.addresses.iter().any(|a| same_net(a, &dst, len))
                            || (l.addresses.is_empty() && len < 32 && !flags.contains('H')))
                });
            let onlink = gateway
                .as_ref()
                .is_some_and(|g| !connected.iter().any(|(d, net)| *d == iface && contains(net, g)));
            let protocol = if is_connected {
                2
            } else if gateway.is_some() || blackhole || reject {
                proto.unwrap_or(3)
            } else {
                3
            };
            self.routes.push(Route {
                family: Family::Ipv4,
                route_type: if reject {
                    RouteType::Unreachable
                } else if blackhole {
                    RouteType::Blackhole
                } else {
                    RouteType::Unicast
                },
                dst,
                prefix_len: len,
                gateway,
                device,
                protocol,
                onlink,
                nexthops: vec![],
                table: None,
            });
        }
        Ok(())
    }

    /// `brctl show`: the bridges and their ports exist.
    fn brctl(&mut self, body: &str) -> Result<(), String> {
        for line in body.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            if !line.starts_with(char::is_whitespace) {
                let bridge = self.link_mut(w[0]);
                bridge.kind.get_or_insert_with(|| "bridge".to_owned());
                if let Some(port) = w.get(3) {
                    self.link_mut(port).kind.get_or_insert_with(|| "veth".to_owned());
                }
            } else {
                self.link_mut(w[0]).kind.get_or_insert_with(|| "veth".to_owned());
            }
        }
        Ok(())
    }

    /// `calicoctl node status`: what BIRD's socket told calicoctl.
    fn calicoctl(&mut self, body: &str) -> Result<(), String> {
        if body.contains("is not running") {
            self.bird = BirdState::Absent;
            return Ok(());
        }
        let mut protocols = Vec::new();
        for line in body.lines().filter(|l| l.trim_start().starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
            if cells.len() < 5 || cells[0] == "PEER ADDRESS" {
                continue;
            }
            let prefix = if cells[1].contains("mesh") { "Mesh" } else { "Node" };
            let name = format!("{prefix}_{}", cells[0].replace(['.', ':'], "_"));
            protocols.push(BirdProtocol {
                name,
                proto: "BGP".to_owned(),
                state: cells[2].to_owned(),
                info: cells[4].to_owned(),
                established: cells[4].starts_with("Established"),
                neighbor: Some(cells[0].to_owned()),
                ..Default::default()
            });
        }
        self.bird = BirdState::Answered { path: "/var/run/calico/bird.ctl".to_owned(), protocols };
        if self.nodename.is_none() {
            // calico-node writes its nodename before BIRD starts.
            self.nodename = Some("(calico-node)".to_owned());
        }
        Ok(())
    }

    /// `netstat -lantp` / `ss -tanp` lines on port 179.
    fn netstat(&mut self, body: &str) -> Result<(), String> {
        for line in body.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let addrs: Vec<&str> =
                w.iter().copied().filter(|x| x.contains(':') && x.rsplit_once(':').is_some()).collect();
            let (Some(local), Some(remote)) = (addrs.first(), addrs.get(1)) else { continue };
            let port = |a: &str| a.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default();
            let host = |a: &str| a.rsplit_once(':').map(|(h, _)| h.to_owned()).unwrap_or_default();
            if line.contains("LISTEN") && port(local) == "179" {
                self.sockets.listening = true;
            } else if line.contains("ESTAB") {
                if port(local) == "179" {
                    self.sockets.established_inbound += 1;
                    self.sockets.peers.push(host(remote));
                } else if port(remote) == "179" {
                    self.sockets.established_outbound += 1;
                    self.sockets.peers.push(host(remote));
                }
            }
        }
        self.sockets.peers.truncate(3);
        Ok(())
    }

    /// Resolves `route -n` sections against the links every other section
    /// named: a route's protocol and onlink flag depend on them.
    fn finish(mut self) -> Result<ParsedNode, String> {
        for (body, proto) in std::mem::take(&mut self.pending_route_n) {
            self.route_n(&body, proto)?;
        }
        Ok(self)
    }

    pub fn snapshot(&self) -> NodeSnapshot {
        let node = self;
        NodeSnapshot {
            kernel_version: node.kernel.clone(),
            routes: fold(&node.routes),
            cni: cni_dir(&node.cni),
            flannel_subnet: match &node.subnet_env {
                Some(text) => {
                    FileState::Ok { path: "/run/flannel/subnet.env".to_owned(), value: subnet_env(text) }
                }
                None => FileState::Absent,
            },
            bird: node.bird.clone(),
            calico_nodename: match &node.nodename {
                Some(n) => FileState::Ok { path: "/var/lib/calico/nodename".to_owned(), value: n.clone() },
                None => FileState::Absent,
            },
            bgp_sockets: node.sockets.clone(),
            ip_forward: FileState::Ok { path: "/proc/sys/net/ipv4/ip_forward".to_owned(), value: true },
            links: node.links.clone(),
        }
    }
}

/// Link kinds `ip -d link` prints on the line after `link/...`.
const LINK_KINDS: [&str; 19] = [
    "vxlan",
    "veth",
    "bridge",
    "ipip",
    "vlan",
    "bond",
    "geneve",
    "wireguard",
    "tun",
    "dummy",
    "ipvlan",
    "macvlan",
    "gre",
    "sit",
    "ip6tnl",
    "openvswitch",
    "team",
    "vrf",
    "gretap",
];

fn word_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            return it.next();
        }
    }
    None
}

const ROUTE_TYPES: [&str; 10] = [
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
];
/// `ip route` keys followed by a value.
const ROUTE_KEYS: [&str; 22] = [
    "via", "dev", "proto", "scope", "src", "metric", "table", "mtu", "pref", "weight", "expires", "realms",
    "advmss", "hoplimit", "initcwnd", "initrwnd", "nhid", "from", "tos", "error", "rto_min", "congctl",
];
const ROUTE_FLAGS: [&str; 7] = ["onlink", "linkdown", "dead", "pervasive", "offload", "trap", "rt_offload"];

fn parse_ip_route(words: &[&str], family: Option<Family>) -> Result<Route, String> {
    let mut i = 0;
    let mut route_type = RouteType::Unicast;
    if ROUTE_TYPES.contains(&words[0]) {
        route_type = match words[0] {
            "unicast" => RouteType::Unicast,
            "local" => RouteType::Local,
            "broadcast" => RouteType::Broadcast,
            "anycast" => RouteType::Anycast,
            "multicast" => RouteType::Multicast,
            "blackhole" => RouteType::Blackhole,
            "unreachable" => RouteType::Unreachable,
            "prohibit" => RouteType::Prohibit,
            _ => RouteType::Other,
        };
        i = 1;
    }
    let dst = *words.get(i).ok_or("no destination")?;
    i += 1;
    let mut r = Route {
        family: Family::Ipv4,
        route_type,
        dst: dst.to_owned(),
        prefix_len: 0,
        gateway: None,
        device: None,
        // iproute2 leaves out `proto boot`.
        protocol: 3,
        onlink: false,
        nexthops: vec![],
        table: None,
    };
    while i < words.len() {
        let w = words[i];
        if ROUTE_FLAGS.contains(&w) {
            r.onlink |= w == "onlink";
            i += 1;
            continue;
        }
        if !ROUTE_KEYS.contains(&w) {
            return Err(format!("unknown route word {w:?}"));
        }
        let mut value = *words.get(i + 1).ok_or_else(|| format!("{w} without a value"))?;
        i += 2;
        if w == "via" && (value == "inet" || value == "inet6") {
            value = *words.get(i).ok_or("via without an address")?;
            i += 1;
        }
        match w {
            "via" => r.gateway = Some(value.to_owned()),
            "dev" => r.device = Some(value.to_owned()),
            "proto" => r.protocol = protocol(value)?,
            "table" if value != "main" => r.table = Some(value.to_owned()),
            _ => {}
        }
    }
    let v6 = family == Some(Family::Ipv6)
        || dst.contains(':')
        || r.gateway.as_deref().is_some_and(|g| g.contains(':'));
    r.family = if v6 { Family::Ipv6 } else { Family::Ipv4 };
    let host_len = if v6 { 128 } else { 32 };
    (r.dst, r.prefix_len) = if dst == "default" {
        (if v6 { "::/0" } else { "0.0.0.0/0" }.to_owned(), 0)
    } else if let Some((_, len)) = dst.split_once('/') {
        (dst.to_owned(), len.parse().map_err(|_| format!("bad prefix {dst:?}"))?)
    } else {
        (format!("{dst}/{host_len}"), host_len)
    };
    Ok(r)
}

fn addr_prefix(cidr: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = cidr.split_once('/')?;
    Some((a.parse().ok()?, l.parse().ok()?))
}

/// Is `ip` inside `net` (CIDR)?
fn contains(net: &str, ip: &str) -> bool {
    let (Some((n, len)), Ok(ip)) = (addr_prefix(net), ip.parse::<IpAddr>()) else { return false };
    match (n, ip) {
        (IpAddr::V4(n), IpAddr::V4(ip)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            u32::from(n) & mask == u32::from(ip) & mask
        }
        _ => false,
    }
}

/// Is the address `cidr`'s network `dst`/`len`?
fn same_net(cidr: &str, dst: &str, len: u8) -> bool {
    addr_prefix(cidr).is_some_and(|(_, l)| l == len) && contains(cidr, dst.split('/').next().unwrap_or(""))
}

// ---------------------------------------------------------------------------
// Into the snapshot, the way the collector folds it
// ---------------------------------------------------------------------------

const FOLDED: [&str; 4] = ["cali", "lxc", "veth", "tun-"];

fn device_label(dev: &str) -> String {
    match FOLDED.iter().find(|p| dev.starts_with(*p)) {
        Some(p) => format!("{p}*"),
        None => dev.to_owned(),
    }
}

pub fn fold(routes: &[Route]) -> RouteSummary {
    type Key = (Family, u8, Option<String>, RouteType, NextHop, bool);
    let mut groups: BTreeMap<Key, (u64, Vec<String>)> = BTreeMap::new();
    let (mut ipv4, mut ipv6) = (0, 0);
    for r in routes {
        match r.family {
            Family::Ipv4 => ipv4 += 1,
            Family::Ipv6 => ipv6 += 1,
        }
        let next_hop = if !r.nexthops.is_empty() {
            NextHop::Multipath
        } else if r.gateway.is_some() && r.onlink {
            NextHop::Onlink
        } else if r.gateway.is_some() {
            NextHop::Gateway
        } else {
            NextHop::Direct
        };
        let key = (
            r.family,
            r.protocol,
            r.device.as_deref().map(device_label),
            r.route_type,
            next_hop,
            r.prefix_len == 0,
        );
        let (count, samples) = groups.entry(key).or_default();
        *count += 1;
        if samples.len() < 3 {
            samples.push(r.dst.clone());
        }
    }
    let mut groups: Vec<RouteGroup> = groups
        .into_iter()
        .map(|((family, protocol, device, route_type, next_hop, default), (count, samples))| RouteGroup {
            family,
            protocol,
            device,
            route_type,
            next_hop,
            default,
            count,
            samples,
        })
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    RouteSummary { ipv4, ipv6, groups }
}

fn cni_dir(files: &[(String, String)]) -> CniDir {
    if files.is_empty() {
        return CniDir::default();
    }
    let mut out: Vec<CniFile> = files
        .iter()
        .map(|(name, text)| {
            let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            let mut f = CniFile {
                name: name.clone(),
                loadable: ["conf", "conflist", "json"].contains(&ext),
                ..CniFile::default()
            };
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => {
                    f.network = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                    let type_of =
                        |p: &serde_json::Value| p.get("type").and_then(|t| t.as_str()).map(str::to_owned);
                    f.plugin_types = match v.get("plugins").and_then(|p| p.as_array()) {
                        Some(list) => list.iter().filter_map(type_of).collect(),
                        None => type_of(&v).into_iter().collect(),
                    };
                    if f.plugin_types.is_empty() {
                        f.error = Some("names no plugin \"type\"".to_owned());
                    }
                }
                Err(e) => f.error = Some(format!("not valid JSON: {e}")),
            }
            f
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    CniDir { present: true, error: None, files: out }
}

fn subnet_env(text: &str) -> SubnetEnv {
    let mut env = SubnetEnv::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some(("FLANNEL_NETWORK", v)) => env.network = Some(v.to_owned()),
            Some(("FLANNEL_SUBNET", v)) => env.subnet = Some(v.to_owned()),
            Some(("FLANNEL_IPV6_NETWORK", v)) => env.ipv6_network = Some(v.to_owned()),
            Some(("FLANNEL_IPV6_SUBNET", v)) => env.ipv6_subnet = Some(v.to_owned()),
            Some(("FLANNEL_MTU", v)) => env.mtu = v.parse().ok(),
            Some(("FLANNEL_IPMASQ", v)) => env.ipmasq = v.parse().ok(),
            _ => env.problems.push(line.to_owned()),
        }
    }
    env
}

// ---------------------------------------------------------------------------
// The parsers' own tests (run by every test binary that includes this module)
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addr_merges_links_and_reads_kinds() {
        let mut n = ParsedNode::default();
        n.ip_link(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n\
             4: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1440 qdisc noqueue state UNKNOWN\n    link/ipip 0.0.0.0 brd 0.0.0.0\n\
             \x20   inet 10.253.252.128/32 scope global tunl0\n\
             8: flannel.1: <BROADCAST,MULTICAST> mtu 1450 qdisc noqueue state DOWN\n    link/ether da:83 brd ff\n\
             \x20   vxlan id 1 local 10.0.0.5 dev ens32 srcport 0 0 dstport 8472 nolearning ageing 300\n\
             9: cali70620a858ec@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n",
        )
        .unwrap();
        n.ip_link(
            "8: flannel.1: <BROADCAST,MULTICAST> mtu 1450\n    inet \t scope global flannel.1\n\
             \x20   inet 10.244.0.0/32 scope global flannel.1\n",
        )
        .unwrap();
        let tunl0 = n.links.iter().find(|l| l.name == "tunl0").unwrap();
        assert_eq!((tunl0.kind.as_deref(), tunl0.up, tunl0.mtu), (Some("ipip"), true, 1440));
        assert_eq!(tunl0.addresses, ["10.253.252.128/32"]);
        let fl = n.links.iter().find(|l| l.name == "flannel.1").unwrap();
        assert!(!fl.up);
        assert_eq!(fl.vxlan.as_ref().map(|v| (v.vni, v.port)), Some((1, 8472)));
        assert_eq!(fl.addresses, ["10.244.0.0/32"]);
        assert!(n.links.iter().any(|l| l.name == "cali70620a858ec"));
        assert!(n.ip_link("garbage line\n").is_err());
    }

    #[test]
    fn ip_route_reads_types_protocols_and_onlink() {
        let mut n = ParsedNode::default();
        n.ip_route(
            "default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100\n\
             blackhole 10.65.1.0/26 proto bird\n\
             10.65.2.0/26 via 10.0.0.6 dev tunl0 proto bird onlink\n\
             10.65.1.2 dev cali1 scope link\n\
             local 10.0.0.5 dev eth0 table local proto kernel scope host src 10.0.0.5\n\
             10.9.0.0/24 proto bird\n\tnexthop via 10.0.0.6 dev eth0 weight 1\n\tnexthop via 10.0.0.7 dev eth0 weight 1\n\
             fe80::/64 dev eth0 proto kernel metric 256 pref medium\n",
            None,
        )
        .unwrap();
        let r = &n.routes;
        assert_eq!((r[0].prefix_len, r[0].protocol, r[0].gateway.is_some()), (0, 16, true));
        assert_eq!((r[1].route_type, r[1].protocol), (RouteType::Blackhole, 12));
        assert!(r[2].onlink);
        assert_eq!((r[3].prefix_len, r[3].protocol), (32, 3));
        assert_eq!((r[4].route_type, r[4].table.as_deref()), (RouteType::Local, Some("local")));
        assert_eq!((r[5].nexthops.len(), r[5].device.as_deref()), (1, Some("eth0")));
        assert_eq!(r[6].family, Family::Ipv6);
        assert!(n.ip_route("10.0.0.0/8 frobnicate 3\n", None).is_err());
        let s = fold(&n.routes);
        assert_eq!((s.ipv4, s.ipv6), (6, 1));
        assert_eq!(s.carried_by("tunl0"), 1);
        assert_eq!(s.carried_by("cali*"), 1);
    }

    #[test]
    fn route_n_infers_connected_onlink_and_blackholes() {
        let mut n = ParsedNode::default();
        n.route_n(
            "Kernel IP routing table\n\
             Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n\
             0.0.0.0         192.168.1.254   0.0.0.0         UG    100    0        0 ens192\n\
             192.168.1.0     0.0.0.0         255.255.255.0   U     100    0        0 ens192\n\
             10.151.17.0     172.16.0.43     255.255.255.0   UG    0      0        0 tunl0\n\
             10.244.1.0      192.168.1.20    255.255.255.0   UG    0      0        0 ens192\n\
             192.242.27.128  0.0.0.0         255.255.255.192 U     0      0        0 *\n",
            Some(12),
        )
        .unwrap();
        let r = &n.routes;
        assert_eq!((r[0].prefix_len, r[0].onlink), (0, false));
        // No address is known for ens192: its gateway-less network route is the connected one.
        assert_eq!(r[1].protocol, 2);
        assert_eq!((r[2].device.as_deref(), r[2].onlink, r[2].protocol), (Some("tunl0"), true, 12));
        assert!(!r[3].onlink);
        assert_eq!((r[4].route_type, r[4].device.as_deref()), (RouteType::Blackhole, None));
        assert!(n.links.iter().any(|l| l.name == "tunl0"), "a routed device exists");
    }

    #[test]
    fn calicoctl_and_netstat_become_bird_and_sockets() {
        let mut n = ParsedNode::default();
        n.calicoctl(
            "Calico process is running.\n\nIPv4 BGP status\n\
             +---------------+-------------------+-------+------------+-------------+\n\
             | PEER ADDRESS  |     PEER TYPE     | STATE |   SINCE    |    INFO     |\n\
             +---------------+-------------------+-------+------------+-------------+\n\
             | 10.0.0.6      | node-to-node mesh | up    | 2017-04-19 | Established |\n\
             | 47.93.161.177 | node-to-node mesh | start | 2017-04-19 | Connect     |\n",
        )
        .unwrap();
        assert_eq!(n.bird.bgp_sessions(), (2, 1));
        n.netstat(
            "tcp 0 0 0.0.0.0:179 0.0.0.0:* LISTEN 14035/bird\n\
             tcp 0 0 192.168.1.230:48429 192.168.1.176:179 ESTABLISHED 14035/bird\n",
        )
        .unwrap();
        assert!(n.sockets.listening);
        assert_eq!((n.sockets.established_outbound, n.sockets.peers.len()), (1, 1));
    }

    #[test]
    fn a_case_with_added_signals_needs_both_expectations() {
        let text =
            "id: x\nsource: s\ncni: c\nmode: m\ntruth: flannel-vxlan\nexpect: overlay flannel-vxlan high\n\
                    === cni 10-flannel.conflist [added]\n{\"name\":\"cbr0\",\"type\":\"flannel\"}\n";
        assert!(parse_case("x.txt", text).unwrap_err().contains("without-added"));
        let ok = text.replace(
            "expect: overlay flannel-vxlan high\n",
            "expect: overlay flannel-vxlan high\nwithout-added: overlay flannel-vxlan medium\n",
        );
        let case = parse_case("x.txt", &ok).unwrap();
        assert!(case.has_added());
        assert_eq!(case.snapshot(true).cni.files.len(), 1);
        assert!(case.snapshot(false).cni.files.is_empty());
        assert!(parse_case("x.txt", "id: x\n=== frobnicate\n").is_err());
        assert!(parse_case("x.txt", &"x".repeat(MAX_CASE + 1)).is_err());
    }
}
