//! `CIDROverlap` (docs/checks.md, "CIDROverlap"): every address range of the
//! hybrid cluster that must stay apart from another, gathered with where it
//! came from, and compared.
//!
//! Pure: [`gather`] reads a [`Cluster`], [`conflicts`] compares, [`check`]
//! words the result. The comparison is a sweep over the distinct ranges in
//! address order, not all pairs: two CIDRs overlap only when one holds the
//! other, so the ranges holding a given one form a chain (at most 33 for
//! IPv4, 129 for IPv6) and a stack of that chain is all the sweep keeps. A
//! range listed many times (the VPC by every cloud node) is one entry with a
//! count, so 10,000 nodes cost 10,000 entries, never their pairs.

use crate::pure::cluster::{some_of, Cluster};
use crate::pure::scope::identity;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use terway_hybrid_api::{CheckName, CheckResult, Severity};

/// flannel's ConfigMap, in the namespace of either of its manifests.
pub const FLANNEL_CONFIG: &str = "kube-flannel-cfg";
/// Cilium's ConfigMap.
const CILIUM_CONFIG: &str = "cilium-config";
/// Every CNI ConfigMap read, as (namespace, name) (docs/contracts.md §7).
pub const CNI_CONFIG_MAPS: [(&str, &str); 3] =
    [("kube-flannel", FLANNEL_CONFIG), ("kube-system", FLANNEL_CONFIG), ("kube-system", CILIUM_CONFIG)];
/// The keys of those ConfigMaps that hold pod ranges; nothing else of them is kept.
pub const CNI_CONFIG_KEYS: [&str; 3] = ["net-conf.json", "cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"];

/// Most ranges read from one field (a list in a ConfigMap, an Installation's
/// pools, a node's addresses): the rest are named as not read.
const PER_FIELD: usize = 64;
/// Most items a message lists before "and N more" (docs/contracts.md §2).
const LIST: usize = 8;
/// Most characters of a value quoted in a message.
const QUOTE: usize = 64;

/// Whether `namespace/name` is one of [`CNI_CONFIG_MAPS`].
pub fn is_cni_config(namespace: &str, name: &str) -> bool {
    CNI_CONFIG_MAPS.contains(&(namespace, name))
}

/// The on-prem CNIs whose own configuration names pod ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cni {
    Calico,
    Flannel,
    Cilium,
}

/// What a range is, which decides what it must not overlap ([`Rules::conflict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An on-prem node's `spec.podCIDRs`, which kube-controller-manager
    /// allocates from its cluster CIDR.
    NodePods,
    /// A pod range of an on-prem CNI's own configuration.
    CniPods(Cni),
    /// The Service range (ServiceCIDR, eni-config, the kubernetes ClusterIP).
    Service,
    Vpc,
    VSwitch,
    OnPremNode,
    CloudNode,
    /// `spec.crossSite.onPremNetworks`: the IDC's own networks.
    Declared,
}

impl Kind {
    fn is_cloud(self) -> bool {
        matches!(self, Kind::Vpc | Kind::VSwitch | Kind::CloudNode)
    }

    fn is_pods(self) -> bool {
        matches!(self, Kind::NodePods | Kind::CniPods(_))
    }

    /// Only the VPC and its vSwitches come from the cloud reports.
    fn is_cloud_network(self) -> bool {
        matches!(self, Kind::Vpc | Kind::VSwitch)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::NodePods => "on-prem pod CIDR",
            Kind::CniPods(Cni::Calico) => "Calico pool",
            Kind::CniPods(Cni::Flannel) => "flannel network",
            Kind::CniPods(Cni::Cilium) => "Cilium pool",
            Kind::Service => "Service range",
            Kind::Vpc => "VPC",
            Kind::VSwitch => "vSwitch",
            Kind::OnPremNode => "on-prem node address",
            Kind::CloudNode => "cloud node address",
            Kind::Declared => "on-prem network",
        })
    }
}

/// Which pairs of kinds must be disjoint (docs/checks.md, "CIDROverlap").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Canal runs: Calico's pools and flannel's network are one CNI's.
    pub canal: bool,
}

impl Rules {
    /// `a` and `b` may not overlap. Symmetric. Legitimate overlaps, which
    /// are containment by design:
    /// - two sources of one CNI's range (an Installation's ipPools and the
    ///   IPPools the operator made of them), and with Canal, Calico's pools
    ///   and flannel's network;
    /// - node podCIDRs and any CNI's pools: flannel (and host-local IPAM)
    ///   allocate inside the cluster CIDR the node ranges come from, and
    ///   Calico's and Cilium's pools usually are that CIDR;
    /// - several sources of the Service range; the VPC and its vSwitches
    ///   and the cloud nodes in them; the IDC's declared networks and the
    ///   on-prem nodes and pods they carry;
    /// - an on-prem and a cloud node address (the VPC, when known, holds the
    ///   cloud side: an on-prem node inside it fails there).
    pub fn conflict(self, a: Kind, b: Kind) -> bool {
        use Kind::*;
        let one_way = |a: Kind, b: Kind| match (a, b) {
            (CniPods(x), CniPods(y)) => {
                let canal = matches!((x, y), (Cni::Calico, Cni::Flannel) | (Cni::Flannel, Cni::Calico));
                x != y && !(self.canal && canal)
            }
            (Service, Service) => false,
            (Service, _) => true,
            (p, c) if p.is_pods() && c.is_cloud() => true,
            // Not a cloud node's address: an on-prem node sharing it is
            // caught by the VPC that holds it, and node addresses that are
            // not unique (loopback on a test cluster) say nothing of routing.
            (OnPremNode, Vpc | VSwitch) => true,
            (Declared, c) if c.is_cloud() => true,
            _ => false,
        };
        one_way(a, b) || one_way(b, a)
    }
}

/// One range and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub net: IpNet,
    pub kind: Kind,
    /// Object and field: `IPPool default-ipv4-ippool spec.cidr`.
    pub source: String,
}

/// Everything [`gather`] found.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub ranges: Vec<Range>,
    /// Values that are not CIDRs (or addresses), by object and field.
    pub unreadable: Vec<String>,
    /// Cloud nodes whose current report carries no `status.cloudNetwork`.
    pub cloud_nodes_without_network: Vec<String>,
    pub rules: Rules,
}

impl Gathered {
    fn net(&mut self, text: &str, kind: Kind, source: impl Into<String>) {
        let source = source.into();
        match parse_net(text) {
            Some(net) => self.ranges.push(Range { net, kind, source }),
            None => self.unreadable.push(format!("{source} {} is not a CIDR", quote(text))),
        }
    }

    fn address(&mut self, text: &str, kind: Kind, source: impl Into<String>) {
        let source = source.into();
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => self.ranges.push(Range { net: IpNet::from(ip), kind, source }),
            Err(_) => self.unreadable.push(format!("{source} {} is not an IP address", quote(text))),
        }
    }

    /// Each of `items` (at most [`PER_FIELD`]) by `each`; the rest named.
    fn each<'t>(
        &mut self,
        items: impl IntoIterator<Item = &'t str>,
        source: &str,
        mut each: impl FnMut(&mut Self, &'t str),
    ) {
        let mut items = items.into_iter();
        for item in items.by_ref().take(PER_FIELD) {
            each(self, item);
        }
        let more = items.count();
        if more > 0 {
            self.unreadable.push(format!("{source}: {more} entries past the first {PER_FIELD} not read"));
        }
    }
}

/// `text` as a network: host bits dropped, as the API server does for a
/// Service CIDR and Calico for a pool.
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.trim().parse::<IpNet>().ok().map(|n| n.trunc())
}

/// A value from the cluster, cut for a message (the renderers escape it).
fn quote(text: &str) -> String {
    let mut cut: String = text.chars().take(QUOTE).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Every range the check compares, from the view (docs/checks.md lists the
/// sources).
pub fn gather(c: &Cluster) -> Gathered {
    let mut g = Gathered {
        rules: Rules { canal: c.on_prem_cnis.iter().any(|d| identity(d).1 == "canal") },
        ..Gathered::default()
    };
    g.nodes(c);
    g.calico_pools(c);
    g.cni_configs(c);
    g.service_ranges(c);
    g.declared(c);
    g
}

impl Gathered {
    /// On-prem nodes' pod ranges, every node's InternalIP, the cloud reports' VPC and vSwitches.
    fn nodes(&mut self, c: &Cluster) {
        for n in c.nodes.values() {
            let name = n.name();
            let on_prem = n.role == terway_hybrid_api::Role::OnPrem;
            if on_prem {
                let spec = n.node.spec.as_ref();
                let pod_cidrs = spec.and_then(|s| s.pod_cidrs.as_deref()).filter(|p| !p.is_empty());
                let (field, cidrs): (&str, Vec<&str>) = match pod_cidrs {
                    Some(p) => ("spec.podCIDRs", p.iter().map(String::as_str).collect()),
                    None => ("spec.podCIDR", spec.and_then(|s| s.pod_cidr.as_deref()).into_iter().collect()),
                };
                let source = format!("Node {name} {field}");
                self.each(cidrs, &source, |g, p| g.net(p, Kind::NodePods, source.clone()));
            }
            let kind = if on_prem { Kind::OnPremNode } else { Kind::CloudNode };
            let addresses = n.node.status.as_ref().and_then(|s| s.addresses.as_deref()).unwrap_or_default();
            let internal = addresses.iter().filter(|a| a.type_ == "InternalIP").map(|a| a.address.as_str());
            let source = format!("Node {name} InternalIP");
            self.each(internal, &source, |g, a| g.address(a, kind, source.clone()));
            if !on_prem {
                match n
                    .current_report()
                    .and_then(|r| r.status.as_ref())
                    .and_then(|s| s.cloud_network.as_ref())
                {
                    None => self.cloud_nodes_without_network.push(name.to_owned()),
                    Some(net) => {
                        let report = format!("NodeNetworkReport {name}");
                        if let Some(vpc) = &net.vpc_cidr {
                            self.net(vpc, Kind::Vpc, format!("{report} status.cloudNetwork.vpcCidr"));
                        }
                        let source = format!("{report} status.cloudNetwork.vswitchCidrs");
                        self.each(net.vswitch_cidrs.iter().map(String::as_str), &source, |g, v| {
                            g.net(v, Kind::VSwitch, source.clone())
                        });
                    }
                }
            }
        }
    }

    /// Calico's IPPools, and the Tigera Installation's.
    fn calico_pools(&mut self, c: &Cluster) {
        for pool in &c.view.ip_pools {
            let name = pool.metadata.name.as_deref().unwrap_or("");
            let source = format!("IPPool {name} spec.cidr");
            match pool.data.get("spec").and_then(|s| s.get("cidr")) {
                Some(serde_json::Value::String(cidr)) => self.net(cidr, Kind::CniPods(Cni::Calico), source),
                _ => self.unreadable.push(format!("{source}: missing or not a string")),
            }
        }
        if let Some(inst) = &c.view.installation {
            let pools = inst.data.pointer("/spec/calicoNetwork/ipPools").and_then(|p| p.as_array());
            let source = "Installation default spec.calicoNetwork.ipPools";
            let pools = pools.map(Vec::as_slice).unwrap_or_default();
            self.each(
                pools.iter().map(|p| p.get("cidr").and_then(|c| c.as_str()).unwrap_or("")),
                source,
                |g, cidr| g.net(cidr, Kind::CniPods(Cni::Calico), format!("{source}[].cidr")),
            );
        }
    }

    /// flannel's `net-conf.json` and Cilium's cluster-pool ranges.
    fn cni_configs(&mut self, c: &Cluster) {
        let mut cni_configs: Vec<_> = c.view.cni_configs.iter().collect();
        cni_configs.sort_by_key(|cm| (cm.metadata.namespace.clone(), cm.metadata.name.clone()));
        for cm in cni_configs {
            let (ns, name) =
                (cm.metadata.namespace.as_deref().unwrap_or(""), cm.metadata.name.as_deref().unwrap_or(""));
            if !is_cni_config(ns, name) {
                continue;
            }
            let data = cm.data.as_ref();
            let object = format!("ConfigMap {ns}/{name}");
            if name == FLANNEL_CONFIG {
                let Some(text) = data.and_then(|d| d.get("net-conf.json")) else { continue };
                match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(conf) => {
                        for field in ["Network", "IPv6Network"] {
                            match conf.get(field) {
                                None | Some(serde_json::Value::Null) => {}
                                Some(serde_json::Value::String(net)) => self.net(
                                    net,
                                    Kind::CniPods(Cni::Flannel),
                                    format!("{object} net-conf.json {field}"),
                                ),
                                Some(_) => self
                                    .unreadable
                                    .push(format!("{object} net-conf.json {field}: not a string")),
                            }
                        }
                    }
                    Err(e) => self.unreadable.push(format!(
                        "{object} net-conf.json is not JSON ({}line {} column {})",
                        crate::pure::cluster::json_error_kind(&e),
                        e.line(),
                        e.column()
                    )),
                }
            } else {
                for key in ["cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"] {
                    let Some(text) = data.and_then(|d| d.get(key)) else { continue };
                    let source = format!("{object} {key}");
                    let parts =
                        text.split(|ch: char| ch.is_whitespace() || ch == ',').filter(|p| !p.is_empty());
                    self.each(parts, &source, |g, p| g.net(p, Kind::CniPods(Cni::Cilium), source.clone()));
                }
            }
        }
    }

    /// The Service range: ServiceCIDRs, eni-config, else the `kubernetes` ClusterIPs.
    fn service_ranges(&mut self, c: &Cluster) {
        for s in &c.view.service_cidrs {
            let source = format!("ServiceCIDR {} spec.cidrs", s.metadata.name.as_deref().unwrap_or(""));
            let cidrs = s.spec.as_ref().and_then(|s| s.cidrs.as_deref()).unwrap_or_default();
            self.each(cidrs.iter().map(String::as_str), &source, |g, cidr| {
                g.net(cidr, Kind::Service, source.clone())
            });
        }
        if let Some(Ok(conf)) = &c.eni_conf {
            if let Some(text) = &conf.service_cidr {
                let source = "ConfigMap kube-system/eni-config eni_conf service_cidr";
                let parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
                self.each(parts, source, |g, p| g.net(p, Kind::Service, source));
            }
        }
        // The ClusterIP only hints at the Service range: compared when nothing
        // names the range itself (it lies inside it, and would repeat each overlap).
        let service_range_known = self.ranges.iter().any(|r| r.kind == Kind::Service);
        let kubernetes = c.view.kubernetes_service.as_ref().filter(|_| !service_range_known);
        if let Some(spec) = kubernetes.and_then(|s| s.spec.as_ref()) {
            let ips: Vec<&str> = match spec.cluster_ips.as_deref().filter(|ips| !ips.is_empty()) {
                Some(ips) => ips.iter().map(String::as_str).collect(),
                None => spec.cluster_ip.as_deref().into_iter().collect(),
            };
            let source = "Service default/kubernetes spec.clusterIPs";
            self.each(ips, source, |g, ip| g.address(ip, Kind::Service, source));
        }
    }

    /// The IDC's networks the TerwayRollout declares.
    fn declared(&mut self, c: &Cluster) {
        let source = "TerwayRollout default spec.crossSite.onPremNetworks";
        self.each(c.spec.cross_site.on_prem_networks.iter().map(String::as_str), source, |g, n| {
            g.net(n, Kind::Declared, source)
        });
    }
}

/// A range with every source that named it (of one kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub net: IpNet,
    pub kind: Kind,
    /// The first source, in gathering order.
    pub source: String,
    /// How many more sources named the same range as the same kind.
    pub others: usize,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({}", self.kind, self.net, self.source)?;
        if self.others > 0 {
            write!(f, " and {} more", self.others)?;
        }
        f.write_str(")")
    }
}

/// Two ranges that overlap and must not: `outer` holds `inner` (or equals it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub outer: Side,
    pub inner: Side,
}

/// A network as an ordered key: family, first address, prefix length.
/// Ordered so that a range comes before the ranges it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct NetKey {
    v6: bool,
    start: u128,
    len: u8,
}

impl NetKey {
    fn of(net: &IpNet) -> NetKey {
        match net {
            IpNet::V4(n) => NetKey { v6: false, start: u32::from(n.network()).into(), len: n.prefix_len() },
            IpNet::V6(n) => NetKey { v6: true, start: u128::from(n.network()), len: n.prefix_len() },
        }
    }

    fn contains(&self, other: &NetKey) -> bool {
        if self.v6 != other.v6 || self.len > other.len {
            return false;
        }
        let width: u32 = if self.v6 { 128 } else { 32 };
        let host_bits = width - u32::from(self.len);
        // A shift by the full width is no network bits at all: /0 holds all.
        host_bits >= 128 || (self.start >> host_bits) == (other.start >> host_bits)
    }
}

/// Every pair of gathered ranges that overlap and must not, found by one
/// sweep in address order (see the module's comment). Each distinct
/// (range, kind) appears once, with its first source and a count of the others.
pub fn conflicts(ranges: &[Range], rules: Rules) -> Vec<Conflict> {
    /// The kinds one range was named as: kind -> (first source, how many).
    type Kinds<'s> = BTreeMap<Kind, (&'s str, usize)>;
    let mut groups: BTreeMap<NetKey, (IpNet, Kinds)> = BTreeMap::new();
    for r in ranges {
        let (_, kinds) = groups.entry(NetKey::of(&r.net)).or_insert_with(|| (r.net, BTreeMap::new()));
        kinds.entry(r.kind).or_insert((r.source.as_str(), 0)).1 += 1;
    }
    let side = |net: IpNet, kind: Kind, (source, count): (&str, usize)| Side {
        net,
        kind,
        source: source.to_owned(),
        others: count - 1,
    };
    let mut out = Vec::new();
    type Group<'g, 's> = (NetKey, IpNet, &'g Kinds<'s>);
    let mut holding: Vec<Group> = Vec::new();
    for (key, (net, kinds)) in &groups {
        // What does not hold this range ends before it, and before every later one.
        while holding.last().is_some_and(|(outer, _, _)| !outer.contains(key)) {
            holding.pop();
        }
        for (outer_key, outer_net, outer_kinds) in &holding {
            debug_assert!(outer_key.contains(key));
            for (&a, &sa) in outer_kinds.iter() {
                for (&b, &sb) in kinds.iter() {
                    if rules.conflict(a, b) {
                        out.push(Conflict { outer: side(*outer_net, a, sa), inner: side(*net, b, sb) });
                    }
                }
            }
        }
        let same: Vec<(&Kind, &(&str, usize))> = kinds.iter().collect();
        for (i, (&a, &sa)) in same.iter().enumerate() {
            for (&b, &sb) in same.iter().skip(i + 1) {
                if rules.conflict(a, b) {
                    out.push(Conflict { outer: side(*net, a, sa), inner: side(*net, b, sb) });
                }
            }
        }
        holding.push((*key, *net, kinds));
    }
    out
}

/// The check: fails naming both sides of each conflict and each value that
/// could not be read; without any cloud report's `cloudNetwork` it skips
/// (what the VPC would be compared with was not), saying what it did compare.
pub fn check(c: &Cluster) -> CheckResult {
    let name = CheckName::CIDROverlap;
    let g = gather(c);
    let found = conflicts(&g.ranges, g.rules);
    let compared = summary(&g.ranges);
    if !found.is_empty() {
        let lines: Vec<String> = found.iter().map(|x| format!("{} overlaps {}", x.outer, x.inner)).collect();
        let mut message = format!(
            "{}: these ranges must be disjoint, or traffic between them is routed to the wrong place; \
             renumber one side of each pair",
            some_of(&lines, LIST)
        );
        if !g.unreadable.is_empty() {
            message.push_str(&format!("; not read: {}", some_of(&g.unreadable, LIST)));
        }
        return CheckResult::fail(name, Severity::Error, "Overlap", message);
    }
    if !g.unreadable.is_empty() {
        return CheckResult::fail(
            name,
            Severity::Error,
            "Unreadable",
            format!(
                "cannot compare {}: correct or remove each; compared the rest ({compared}) and found no overlap",
                some_of(&g.unreadable, LIST)
            ),
        );
    }
    let cloud_known = g.ranges.iter().any(|r| r.kind.is_cloud_network());
    if !cloud_known {
        let why = if c.cloud().next().is_none() {
            "there is no cloud node".to_owned()
        } else {
            "no cloud node's report carries status.cloudNetwork (an agent older than the field, \
             the ECS metadata service unreachable, or a dump without reports)"
                .to_owned()
        };
        return CheckResult::skip(
            name,
            Severity::Error,
            "CloudNetworkUnknown",
            format!(
                "the VPC and vSwitch CIDRs are not known: {why}, so on-prem pod ranges, on-prem node \
                 addresses, the Service range and the declared on-prem networks were not compared with \
                 the VPC; compared {compared} and found no overlap"
            ),
        );
    }
    let mut message = format!("compared {compared}: no overlap");
    if !g.cloud_nodes_without_network.is_empty() {
        message.push_str(&format!(
            "; not compared: the vSwitches of {}, whose reports carry no status.cloudNetwork",
            some_of(&g.cloud_nodes_without_network, LIST)
        ));
    }
    CheckResult::pass(name, Severity::Error, "Disjoint", message)
}

/// "172.16.0.0/12 (VPC), 10.244.0.0/16 (Calico pool), 3 on-prem pod CIDRs
/// and 5 node addresses": the distinct cluster-wide ranges listed, the
/// per-node ones (thousands on a big cluster) counted.
fn summary(ranges: &[Range]) -> String {
    let mut distinct: BTreeMap<(Kind, NetKey), IpNet> = BTreeMap::new();
    let mut pod_cidrs = std::collections::BTreeSet::new();
    let mut addresses = std::collections::BTreeSet::new();
    for r in ranges {
        match r.kind {
            Kind::OnPremNode | Kind::CloudNode => {
                addresses.insert(NetKey::of(&r.net));
            }
            Kind::NodePods => {
                pod_cidrs.insert(NetKey::of(&r.net));
            }
            kind => {
                distinct.insert((kind, NetKey::of(&r.net)), r.net);
            }
        }
    }
    let mut listed: Vec<String> = distinct.iter().map(|((kind, _), net)| format!("{net} ({kind})")).collect();
    // The VPC and vSwitches first: what the check is about.
    listed.sort_by_key(|l| !(l.ends_with("(VPC)") || l.ends_with("(vSwitch)")));
    let mut parts = Vec::new();
    if !listed.is_empty() {
        parts.push(some_of(&listed, LIST));
    }
    parts.push(format!("{} on-prem pod CIDRs", pod_cidrs.len()));
    format!("{} and {} node addresses", parts.join(", "), addresses.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::view::ClusterView;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use terway_hybrid_api::CheckStatus;

    fn node(
        name: &str,
        cloud: bool,
        ip: &str,
        pod_cidr: Option<&str>,
    ) -> Arc<k8s_openapi::api::core::v1::Node> {
        let mut labels = json!({});
        if cloud {
            labels = json!({"alibabacloud.com/external": "true"});
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"podCIDRs": pod_cidr.map(|p| vec![p]).unwrap_or_default()},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}
        }))
        .map(Arc::new)
        .unwrap()
    }

    fn cloud_report(
        name: &str,
        vpc: Option<&str>,
        vswitches: &[&str],
    ) -> Arc<terway_hybrid_api::NodeNetworkReport> {
        let mut status = json!({
            "scenario": "unknown", "plugin": "none", "confidence": "low", "role": "cloud",
            "kernelVersion": "5.10", "evidence": [], "checks": [], "ready": true,
            "lastDetected": "2026-11-30T08:00:00Z", "agentVersion": "0.1.0"
        });
        if vpc.is_some() || !vswitches.is_empty() {
            status["cloudNetwork"] = json!({"vpcCidr": vpc, "vswitchCidrs": vswitches});
        }
        serde_json::from_value(json!({
            "apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                "name": name, "uid": format!("uid-{name}")}]},
            "spec": {"nodeName": name}, "status": status
        }))
        .map(Arc::new)
        .unwrap()
    }

    fn config_map(ns: &str, name: &str, data: serde_json::Value) -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "data": data})).unwrap()
    }

    fn ip_pool(name: &str, cidr: serde_json::Value) -> kube::api::DynamicObject {
        serde_json::from_value(json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": {"cidr": cidr, "ipipMode": "Always"}}))
        .unwrap()
    }

    /// Two on-prem nodes (Calico pool 10.244.0.0/16, podCIDRs inside it),
    /// a cloud node in VPC 192.168.0.0/16, Services in 10.96.0.0/16.
    fn healthy() -> ClusterView {
        ClusterView {
            nodes: vec![
                node("onprem-1", false, "10.10.0.11", Some("10.244.1.0/24")),
                node("onprem-2", false, "10.10.0.12", Some("10.244.2.0/24")),
                node("cloud-1", true, "192.168.3.10", None),
            ],
            reports: vec![cloud_report("cloud-1", Some("192.168.0.0/16"), &["192.168.3.0/24"])],
            ip_pools: vec![ip_pool("default-ipv4-ippool", json!("10.244.0.0/16"))],
            installation: Some(
                serde_json::from_value(json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
                    "metadata": {"name": "default"},
                    "spec": {"calicoNetwork": {"ipPools": [{"cidr": "10.244.0.0/16"}]}}}))
                .unwrap(),
            ),
            service_cidrs: vec![serde_json::from_value(
                json!({"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/16"]}}),
            )
            .unwrap()],
            kubernetes_service: Some(
                serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "kubernetes"},
                    "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]}}))
                .unwrap(),
            ),
            ..ClusterView::default()
        }
    }

    fn run(view: &ClusterView) -> CheckResult {
        check(&Cluster::new(view))
    }

    #[test]
    fn a_healthy_plan_passes_and_lists_what_it_compared() {
        let r = run(&healthy());
        assert_eq!((r.status, r.reason.as_str()), (CheckStatus::Pass, "Disjoint"), "{}", r.message);
        for shown in [
            "192.168.0.0/16 (VPC)",
            "10.244.0.0/16 (Calico pool)",
            "10.96.0.0/16 (Service range)",
            "3 node addresses",
        ] {
            assert!(r.message.contains(shown), "{shown}: {}", r.message);
        }
    }

    #[test]
    fn each_forbidden_overlap_fails_naming_both_sides() {
        type Edit = fn(&mut ClusterView);
        let cases: [(&str, Edit, &[&str]); 9] = [
            ("pod range in the VPC", |v| v.ip_pools[0] = ip_pool("p", json!("192.168.128.0/17")), &[
                "VPC 192.168.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr) overlaps Calico pool 192.168.128.0/17 (IPPool p spec.cidr)",
            ]),
            ("node podCIDR in the vSwitch", |v| v.nodes[0] = node("onprem-1", false, "10.10.0.11", Some("192.168.3.0/25")), &[
                "vSwitch 192.168.3.0/24 (NodeNetworkReport cloud-1 status.cloudNetwork.vswitchCidrs) overlaps on-prem pod CIDR 192.168.3.0/25 (Node onprem-1 spec.podCIDRs)",
            ]),
            ("on-prem node address in the VPC", |v| v.nodes[1] = node("onprem-2", false, "192.168.9.9", Some("10.244.2.0/24")), &[
                "VPC 192.168.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr) overlaps on-prem node address 192.168.9.9/32 (Node onprem-2 InternalIP)",
            ]),
            ("Service range over the pods", |v| v.service_cidrs[0].spec.as_mut().unwrap().cidrs = Some(vec!["10.244.0.0/15".into()]), &[
                "Service range 10.244.0.0/15 (ServiceCIDR kubernetes spec.cidrs) overlaps Calico pool 10.244.0.0/16 (IPPool default-ipv4-ippool spec.cidr and 1 more)",
            ]),
            ("Service range in the VPC", |v| v.service_cidrs[0].spec.as_mut().unwrap().cidrs = Some(vec!["192.168.200.0/24".into()]), &[
                "VPC 192.168.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr) overlaps Service range 192.168.200.0/24 (ServiceCIDR kubernetes spec.cidrs)",
            ]),
            ("only the ClusterIP, in the VPC", |v| {
                v.service_cidrs.clear();
                v.kubernetes_service.as_mut().unwrap().spec.as_mut().unwrap().cluster_ips = Some(vec!["192.168.7.1".into()]);
            }, &[
                "VPC 192.168.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr) overlaps Service range 192.168.7.1/32 (Service default/kubernetes spec.clusterIPs)",
            ]),
            ("flannel next to Calico", |v| v.cni_configs.push(config_map("kube-flannel", FLANNEL_CONFIG,
                json!({"net-conf.json": "{\"Network\": \"10.0.0.0/8\", \"Backend\": {\"Type\": \"vxlan\"}}"}))), &[
                "flannel network 10.0.0.0/8 (ConfigMap kube-flannel/kube-flannel-cfg net-conf.json Network) overlaps Calico pool 10.244.0.0/16 (IPPool default-ipv4-ippool spec.cidr and 1 more)",
            ]),
            ("declared network in the VPC", |v| {
                let mut r = terway_hybrid_api::TerwayRollout::new("default", Default::default());
                r.spec.cross_site.on_prem_networks = vec!["192.168.0.0/20".into(), "172.16.0.0/12".into()];
                v.rollout = Some(r);
            }, &[
                "VPC 192.168.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr) overlaps on-prem network 192.168.0.0/20 (TerwayRollout default spec.crossSite.onPremNetworks)",
                "on-prem network 192.168.0.0/20 (TerwayRollout default spec.crossSite.onPremNetworks) overlaps cloud node address 192.168.3.10/32 (Node cloud-1 InternalIP)",
            ]),
            ("Cilium pool holding a cloud node", |v| v.cni_configs.push(config_map("kube-system", CILIUM_CONFIG,
                json!({"cluster-pool-ipv4-cidr": "192.168.3.0/28 10.250.0.0/16"}))), &[
                "Cilium pool 192.168.3.0/28 (ConfigMap kube-system/cilium-config cluster-pool-ipv4-cidr) overlaps cloud node address 192.168.3.10/32 (Node cloud-1 InternalIP)",
            ]),
        ];
        for (what, edit, expected) in cases {
            let mut view = healthy();
            edit(&mut view);
            let r = run(&view);
            assert_eq!(
                (r.status, r.reason.as_str()),
                (CheckStatus::Fail, "Overlap"),
                "{what}: {}",
                r.message
            );
            for line in expected {
                assert!(r.message.contains(line), "{what}: {line}\nnot in: {}", r.message);
            }
        }
    }

    /// Containment by design is no conflict: the Installation's pool and the
    /// IPPool made of it, podCIDRs inside the pool, the cloud node in its
    /// vSwitch in its VPC, the ClusterIP in the Service range, several
    /// cloud nodes naming one VPC, and Canal's Calico pool equal to flannel's network.
    #[test]
    fn legitimate_containment_passes() {
        let mut view = healthy();
        view.nodes.push(node("cloud-2", true, "192.168.3.11", None));
        view.reports.push(cloud_report("cloud-2", Some("192.168.0.0/16"), &["192.168.3.0/24"]));
        view.daemon_sets.push(
            serde_json::from_value(json!({"metadata": {"namespace": "kube-system", "name": "canal"}}))
                .unwrap(),
        );
        view.cni_configs.push(config_map(
            "kube-system",
            FLANNEL_CONFIG,
            json!({"net-conf.json": "{\"Network\": \"10.244.0.0/16\"}"}),
        ));
        let r = run(&view);
        assert_eq!(r.status, CheckStatus::Pass, "{}", r.message);
        // Without Canal, flannel's network next to Calico's pool is two CNIs claiming one range.
        view.daemon_sets.clear();
        let r = run(&view);
        assert_eq!(r.reason, "Overlap", "{}", r.message);
    }

    #[test]
    fn without_the_cloud_network_it_skips_and_says_what_it_did_not_compare() {
        let mut view = healthy();
        view.reports.clear();
        let r = run(&view);
        assert_eq!(
            (r.status, r.reason.as_str()),
            (CheckStatus::Skip, "CloudNetworkUnknown"),
            "{}",
            r.message
        );
        assert!(r.message.contains("no cloud node's report carries status.cloudNetwork"), "{}", r.message);
        assert!(r.message.contains("were not compared with the VPC"), "{}", r.message);
        assert!(r.message.contains("10.244.0.0/16 (Calico pool)"), "{}", r.message);
        view.nodes.retain(|n| n.metadata.name.as_deref() != Some("cloud-1"));
        assert!(run(&view).message.contains("there is no cloud node"));
        // What can be compared still fails: a pod range holding a cloud node's address.
        let mut view = healthy();
        view.reports.clear();
        view.ip_pools[0] = ip_pool("p", json!("192.168.0.0/16"));
        assert_eq!(run(&view).reason, "Overlap");
    }

    #[test]
    fn a_cloud_node_without_its_network_is_named_on_a_pass() {
        let mut view = healthy();
        view.nodes.push(node("cloud-2", true, "192.168.4.11", None));
        let r = run(&view);
        assert_eq!(r.status, CheckStatus::Pass, "{}", r.message);
        assert!(r.message.contains("not compared: the vSwitches of cloud-2"), "{}", r.message);
    }

    #[test]
    fn a_malformed_value_is_named_with_its_object_and_field() {
        type Edit = fn(&mut ClusterView);
        let cases: [(Edit, &str); 6] = [
            (|v| v.ip_pools.push(ip_pool("bad", json!("10.0.0.0/33"))), "IPPool bad spec.cidr \"10.0.0.0/33\" is not a CIDR"),
            (|v| v.ip_pools.push(ip_pool("num", json!(7))), "IPPool num spec.cidr: missing or not a string"),
            (|v| v.cni_configs.push(config_map("kube-flannel", FLANNEL_CONFIG, json!({"net-conf.json": "{\"Network\": "}))),
                "ConfigMap kube-flannel/kube-flannel-cfg net-conf.json is not JSON (it ends early at line 1 column 12)"),
            (|v| v.cni_configs.push(config_map("kube-system", CILIUM_CONFIG, json!({"cluster-pool-ipv4-cidr": "10.250.0.0/16,\u{1b}[31m"}))),
                "ConfigMap kube-system/cilium-config cluster-pool-ipv4-cidr \"\\u{1b}[31m\" is not a CIDR"),
            (|v| Arc::make_mut(&mut v.nodes[0]).status.as_mut().unwrap().addresses.as_mut().unwrap()[0].address = "x".repeat(5000),
                "Node onprem-1 InternalIP \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\" is not an IP address"),
            (|v| Arc::make_mut(&mut v.reports[0]).status.as_mut().unwrap().cloud_network.as_mut().unwrap().vpc_cidr = Some("vpc".into()),
                "NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr \"vpc\" is not a CIDR"),
        ];
        for (edit, named) in cases {
            let mut view = healthy();
            edit(&mut view);
            let r = run(&view);
            assert_eq!((r.status, r.reason.as_str()), (CheckStatus::Fail, "Unreadable"), "{}", r.message);
            assert!(r.message.contains(named), "{named}\nnot in: {}", r.message);
            assert!(r.message.len() < 2_000, "{}", r.message.len());
        }
    }

    /// 10,000 on-prem nodes whose addresses all sit in the VPC, 5,000 cloud
    /// nodes each reporting it: linear work, a bounded message.
    #[test]
    fn ten_thousand_nodes_stay_linear_and_bounded() {
        let mut view = healthy();
        for i in 0..10_000u32 {
            let ip = format!("192.168.{}.{}", 100 + i / 250, 1 + i % 250);
            view.nodes.push(node(
                &format!("onprem-x{i}"),
                false,
                &ip,
                Some(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256)),
            ));
        }
        for i in 0..5_000 {
            let name = format!("cloud-x{i}");
            view.nodes.push(node(&name, true, &format!("192.168.{}.{}", 4 + i / 250, 1 + i % 250), None));
            view.reports.push(cloud_report(&name, Some("192.168.0.0/16"), &["192.168.3.0/24"]));
        }
        let start = std::time::Instant::now();
        let r = run(&view);
        let took = start.elapsed();
        assert_eq!(r.reason, "Overlap");
        assert!(r.message.contains("and 9992 more"), "{}", &r.message[..300.min(r.message.len())]);
        assert!(
            r.message.contains("(NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr and 5000 more)"),
            "{}",
            r.message
        );
        assert!(r.message.len() < 4_096, "{} bytes", r.message.len());
        // Debug builds are slow; all pairs would be 10^8 comparisons and take minutes.
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn rules_are_symmetric_and_as_documented() {
        use Kind::*;
        let kinds = [
            NodePods,
            CniPods(Cni::Calico),
            CniPods(Cni::Flannel),
            CniPods(Cni::Cilium),
            Service,
            Vpc,
            VSwitch,
            OnPremNode,
            CloudNode,
            Declared,
        ];
        for canal in [false, true] {
            let rules = Rules { canal };
            for a in kinds {
                for b in kinds {
                    assert_eq!(rules.conflict(a, b), rules.conflict(b, a), "{a:?} {b:?}");
                }
            }
            let must: BTreeSet<(Kind, Kind)> = kinds
                .iter()
                .flat_map(|&a| kinds.iter().map(move |&b| (a, b)))
                .filter(|&(a, b)| a <= b && rules.conflict(a, b))
                .collect();
            let mut expected: BTreeSet<(Kind, Kind)> = [
                (NodePods, Service),
                (NodePods, Vpc),
                (NodePods, VSwitch),
                (NodePods, CloudNode),
                (CniPods(Cni::Calico), CniPods(Cni::Cilium)),
                (CniPods(Cni::Flannel), CniPods(Cni::Cilium)),
                (Service, Vpc),
                (Service, VSwitch),
                (Service, OnPremNode),
                (Service, CloudNode),
                (Service, Declared),
                (Vpc, OnPremNode),
                (Vpc, Declared),
                (VSwitch, OnPremNode),
                (VSwitch, Declared),
                (CloudNode, Declared),
            ]
            .into_iter()
            .collect();
            for cni in [Cni::Calico, Cni::Flannel, Cni::Cilium] {
                for k in [Service, Vpc, VSwitch, CloudNode] {
                    expected.insert((CniPods(cni), k).min((k, CniPods(cni))));
                }
            }
            if !canal {
                expected.insert((CniPods(Cni::Calico), CniPods(Cni::Flannel)));
            }
            assert_eq!(must, expected, "canal {canal}");
        }
    }

    #[test]
    fn netkey_containment() {
        let k = |s: &str| NetKey::of(&parse_net(s).unwrap());
        assert!(k("0.0.0.0/0").contains(&k("255.255.255.255/32")));
        assert!(!k("0.0.0.0/0").contains(&k("::/0")));
        assert!(k("::/0").contains(&k("ffff::1/128")));
        assert!(k("10.0.0.0/8").contains(&k("10.255.0.0/16")));
        assert!(!k("10.0.0.0/8").contains(&k("11.0.0.0/16")));
        assert!(!k("10.1.0.0/16").contains(&k("10.0.0.0/8")));
        assert!(k("10.1.2.3/32").contains(&k("10.1.2.3/32")));
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8", "host bits dropped");
    }

    fn arb_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::NodePods),
            Just(Kind::CniPods(Cni::Calico)),
            Just(Kind::CniPods(Cni::Flannel)),
            Just(Kind::CniPods(Cni::Cilium)),
            Just(Kind::Service),
            Just(Kind::Vpc),
            Just(Kind::VSwitch),
            Just(Kind::OnPremNode),
            Just(Kind::CloudNode),
            Just(Kind::Declared),
        ]
    }

    /// Small address spaces so that ranges nest and repeat often: IPv4 in
    /// 10.0.0.0/28 and IPv6 in fd00::/124.
    fn arb_range() -> impl Strategy<Value = Range> {
        (any::<bool>(), 0u8..16, 0u8..=4, arb_kind(), 0u8..3).prop_map(|(v6, host, len, kind, src)| {
            let net: IpNet = if v6 {
                format!("fd00::{host:x}/{}", 124 + len).parse().unwrap()
            } else {
                format!("10.0.0.{host}/{}", 28 + len).parse().unwrap()
            };
            Range { net: net.trunc(), kind, source: format!("s{src}") }
        })
    }

    type Pair = ((IpNet, Kind), (IpNet, Kind));

    fn normalized(a: (IpNet, Kind), b: (IpNet, Kind)) -> Pair {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    proptest! {
        /// The sweep finds exactly the conflicting (range, kind) pairs that
        /// comparing every pair of ranges finds, and counts the sources.
        #[test]
        fn the_sweep_agrees_with_all_pairs(ranges in proptest::collection::vec(arb_range(), 0..40), canal in any::<bool>()) {
            let rules = Rules { canal };
            let mut brute = BTreeSet::new();
            for (i, a) in ranges.iter().enumerate() {
                for b in &ranges[i + 1..] {
                    let overlap = a.net.contains(&b.net) || b.net.contains(&a.net);
                    if overlap && rules.conflict(a.kind, b.kind) {
                        brute.insert(normalized((a.net, a.kind), (b.net, b.kind)));
                    }
                }
            }
            let found = conflicts(&ranges, rules);
            let swept: BTreeSet<Pair> =
                found.iter().map(|c| normalized((c.outer.net, c.outer.kind), (c.inner.net, c.inner.kind))).collect();
            prop_assert_eq!(swept.len(), found.len(), "each pair once");
            prop_assert_eq!(&swept, &brute);
            for c in &found {
                prop_assert!(c.outer.net.contains(&c.inner.net));
                for side in [&c.outer, &c.inner] {
                    let named: Vec<&Range> = ranges.iter().filter(|r| r.net == side.net && r.kind == side.kind).collect();
                    prop_assert_eq!(side.others + 1, named.len());
                    prop_assert_eq!(&side.source, &named[0].source, "the first source");
                }
            }
        }
    }
}
