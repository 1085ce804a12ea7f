//! Cross-site readiness (docs/checks.md, "Cross-site checks"): the cluster
//! checks `BGPPeers`, `CrossSiteConnectivity` and `PathMTU`, and the
//! `gateWaves` verdict of the rollout. Pure functions over the reports
//! (`status.bgpPeers`, `status.probes`, `status.podMtu`,
//! `status.cloudNetwork`, `spec.probeTargets`) and the rollout's spec; the
//! agents and the controller's probe assignment fill those fields.
//!
//! Everything here reads outside input: lists are cut at the contract's
//! bounds before they are walked (a dump is not held to the CRD's), strings
//! are cut before they enter a message, and nothing is quadratic in the
//! number of nodes (per node work is bounded by those cuts).

use crate::pure::cluster::{some_of, Cluster};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use terway_hybrid_api::cross_site::{
    ProbePath, ProbeResult, ProbeTarget, MAX_BGP_PREFIXES, MAX_PROBE_RESULTS, MAX_PROBE_TARGETS,
};
use terway_hybrid_api::detection::BgpPeer;
use terway_hybrid_api::snapshot::MAX_BGP_PEERS;
use terway_hybrid_api::{CheckName, CheckResult, NodeNetworkReportStatus, Plugin, Role, Scenario, Severity};

/// Most items a message lists before "and N more".
const LIST: usize = 5;
/// Longest piece of report text (an address, a peer, a prefix) quoted in a message.
const QUOTE: usize = 64;

/// Terway's pod MTU on a cloud node when the node does not report one:
/// Terway gives pods the MTU of the ENI, and every ECS instance supports an
/// MTU of 1,500; some families (8th generation and later) also 8,500 with
/// jumbo frames (Alibaba Cloud, "Configure jumbo frames and change the
/// MTU", https://www.alibabacloud.com/help/en/ecs/user-guide/mtus/). A node
/// that reports its `podMtu` (its pods' veths seen) is taken at its word.
const TERWAY_DEFAULT_POD_MTU: u32 = 1500;

/// The smallest and largest MTU a check believes: IPv4's minimum (RFC 791)
/// and the largest IP packet. Anything else is a broken report, not a fact.
const PLAUSIBLE_MTU: std::ops::RangeInclusive<u32> = 68..=65535;

/// One node as the cross-site checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub name: &'a str,
    pub role: Role,
    /// The current report's status; None without one (AgentCoverage's business).
    pub status: Option<&'a NodeNetworkReportStatus>,
    /// `spec.probeTargets` of the current report.
    pub targets: &'a [ProbeTarget],
}

/// Every node, by name (sorted: every list made from it is too).
pub struct Sites<'a> {
    pub nodes: BTreeMap<&'a str, Site<'a>>,
}

impl<'a> Sites<'a> {
    pub fn new(c: &Cluster<'a>) -> Self {
        let nodes = c
            .nodes
            .values()
            .map(|n| {
                let report = n.current_report();
                let site = Site {
                    name: n.name(),
                    role: n.role,
                    status: report.and_then(|r| r.status.as_ref()),
                    targets: report.map(|r| r.spec.probe_targets.as_slice()).unwrap_or(&[]),
                };
                (n.name(), site)
            })
            .collect();
        Sites { nodes }
    }

    pub fn from_sites(sites: impl IntoIterator<Item = Site<'a>>) -> Self {
        Sites { nodes: sites.into_iter().map(|s| (s.name, s)).collect() }
    }

    fn of_role(&self, role: Role) -> impl Iterator<Item = &Site<'a>> {
        self.nodes.values().filter(move |s| s.role == role)
    }

    /// The node's probe results whose target is still assigned to it and
    /// whose peer node still exists, one per target (the first result wins).
    /// Stale results of removed targets are not evidence of anything.
    fn results(&self, site: &Site<'a>) -> Vec<(&'a ProbeResult, &Site<'a>)> {
        let Some(status) = site.status else { return vec![] };
        let assigned: BTreeSet<(&str, &str, ProbePath)> = site
            .targets
            .iter()
            .take(MAX_PROBE_TARGETS)
            .map(|t| (t.node.as_str(), t.address.as_str(), t.path))
            .collect();
        let mut seen = BTreeSet::new();
        status
            .probes
            .iter()
            .take(MAX_PROBE_RESULTS)
            .filter(|r| assigned.contains(&(r.node.as_str(), r.address.as_str(), r.path)))
            .filter(|r| seen.insert((r.node.as_str(), r.address.as_str(), r.path)))
            .filter_map(|r| Some((r, self.nodes.get(r.node.as_str())?)))
            .collect()
    }

    /// Targets assigned to the node whose peer still exists.
    fn live_targets(&self, site: &Site<'a>) -> usize {
        site.targets
            .iter()
            .take(MAX_PROBE_TARGETS)
            .filter(|t| self.nodes.contains_key(t.node.as_str()))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// `s`, cut to [`QUOTE`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn path_name(p: ProbePath) -> &'static str {
    match p {
        ProbePath::Host => "host",
        ProbePath::Pod => "pod",
    }
}

/// `A → B (address, path)`: how a pair is named everywhere.
fn pair(from: &str, r: &ProbeResult) -> String {
    format!("{} → {} ({}, {})", quote(from), quote(&r.node), quote(&r.address), path_name(r.path))
}

// ---- BGPPeers ----

/// Plugins whose nodes speak BGP themselves. flannel's host-gw is in the bgp
/// scenario (routed, no tunnel) but installs static routes: no session.
fn speaks_bgp(plugin: Plugin) -> bool {
    matches!(plugin, Plugin::CalicoBgp | Plugin::KubeRouter | Plugin::CiliumNative)
}

/// Whether a session's neighbour is `addr`: as IP addresses when both
/// parse (`10.0.0.1` and ` 10.0.0.1 ` are one), else as text.
fn same_peer(peer: &str, addr: &str) -> bool {
    match (peer.trim().parse::<IpAddr>(), addr.trim().parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => peer.trim().eq_ignore_ascii_case(addr.trim()),
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.trim().parse::<IpNet>().ok().map(|n| n.trunc())
}

pub fn bgp_peers(sites: &Sites, scenario: Scenario, vbr_peers: &[String]) -> CheckResult {
    let name = CheckName::BGPPeers;
    let sev = Severity::Error;
    if scenario != Scenario::Bgp {
        return CheckResult::skip(name, sev, "NotApplicable", format!("not the bgp scenario ({scenario})"));
    }
    // The CRD admits 8; a dump may hold anything.
    let vbrs: Vec<&str> = vbr_peers.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).take(8).collect();
    let speakers: Vec<(&str, &NodeNetworkReportStatus)> = sites
        .of_role(Role::OnPrem)
        .filter_map(|s| Some((s.name, s.status?)))
        .filter(|(_, st)| speaks_bgp(st.plugin))
        .collect();
    if speakers.is_empty() {
        let vbr_note = if vbrs.is_empty() {
            String::new()
        } else {
            format!(
                "; the sessions to the VBR ({}) are held outside the cluster (an edge router) and cannot be seen \
                 from here",
                some_of(&vbrs.iter().map(|v| quote(v)).collect::<Vec<_>>(), LIST)
            )
        };
        return CheckResult::skip(
            name,
            sev,
            "NoBGPSpeakers",
            format!(
                "no reporting on-prem node runs a BGP-speaking CNI (calico-bgp, kube-router, cilium-native): \
                 nothing to verify{vbr_note}"
            ),
        );
    }
    let sessions = Sessions::of(&speakers);
    if sessions.seen_nodes == 0 {
        return CheckResult::skip(
            name,
            sev,
            "NoSessionsSeen",
            format!(
                "none of the {} on-prem BGP nodes reports a BGP session ({}): the agent reads Calico's BIRD \
                 socket; kube-router's and Cilium's sessions, or a BIRD that does not answer, cannot be seen. \
                 Nothing was verified{}",
                speakers.len(),
                some_of(&sessions.unseen, LIST),
                if vbrs.is_empty() { "" } else { ", the VBR sessions included" }
            ),
        );
    }
    let vbr = (!vbrs.is_empty()).then(|| VbrSessions::of(&speakers, &vbrs));
    let route = vbr.as_ref().map(|v| vpc_route(sites, &v.holders)).unwrap_or_default();

    // The first problem found names the reason; all of them are in the message.
    let mut reason = None;
    let mut problems = Vec::new();
    if !sessions.down.is_empty() {
        reason = reason.or(Some("SessionsDown"));
        problems.push(format!(
            "{} of {} on-prem BGP nodes have no Established session: {}. Their routes are not exchanged: \
             check the peers' reachability (TCP 179) and the BGP configuration (`birdcl show protocols all` in \
             calico-node)",
            sessions.down.len(),
            sessions.seen_nodes,
            some_of(&sessions.down, LIST)
        ));
    }
    if let Some(unpeered) = vbr.as_ref().map(|v| &v.unpeered).filter(|u| !u.is_empty()) {
        reason = reason.or(Some("VBRNotPeered"));
        problems.push(format!(
            "no on-prem node holds an Established session to the VBR address{} {}: the VPC's routes cannot \
             reach the IDC. Check the BGP peer on the VBR (its peer IP and AS), the leased line or VPN, and \
             the on-prem BGPPeer that points at it",
            if unpeered.len() == 1 { "" } else { "es" },
            some_of(unpeered, LIST)
        ));
    }
    if !route.missing.is_empty() {
        reason = reason.or(Some("VPCRouteMissing"));
        problems.extend(route.missing);
    }
    let unseen_note = if sessions.unseen.is_empty() {
        String::new()
    } else {
        format!(
            "; {} report no session (not seen: {})",
            sessions.unseen.len(),
            some_of(&sessions.unseen, LIST)
        )
    };
    if let Some(reason) = reason {
        return CheckResult::fail(name, sev, reason, format!("{}{unseen_note}", problems.join("; ")));
    }
    let counted = format!(
        "{} Established BGP sessions on {} on-prem nodes{}{unseen_note}",
        sessions.established,
        sessions.seen_nodes,
        vbr.map(|v| format!(", {} of them to the VBR", v.holders.len())).unwrap_or_default()
    );
    if !route.unverified.is_empty() {
        return CheckResult::skip(
            name,
            sev,
            "VPCRouteUnverified",
            format!("{counted}; {}", route.unverified.join("; ")),
        );
    }
    CheckResult::pass(name, sev, "Established", counted)
}

/// The sessions the on-prem BGP speakers report. A node listing no session
/// at all is not evidence either way: the agent sees Calico's BIRD only, not
/// kube-router's or Cilium's sessions, and not a BIRD whose socket did not
/// answer.
struct Sessions<'a> {
    /// Nodes with sessions, none of them Established: `node (peer state, ...)`.
    down: Vec<String>,
    /// Nodes that list no session.
    unseen: Vec<&'a str>,
    established: usize,
    seen_nodes: usize,
}

impl<'a> Sessions<'a> {
    fn of(speakers: &[(&'a str, &NodeNetworkReportStatus)]) -> Self {
        let mut out = Sessions { down: vec![], unseen: vec![], established: 0, seen_nodes: 0 };
        for &(node, st) in speakers {
            let peers = listed_peers(st);
            if peers.is_empty() {
                out.unseen.push(node);
                continue;
            }
            out.seen_nodes += 1;
            let up = peers.iter().filter(|p| p.is_up()).count();
            out.established += up;
            if up == 0 {
                let states: Vec<String> =
                    peers.iter().take(3).map(|p| format!("{} {}", quote(&p.peer), quote(&p.state))).collect();
                out.down.push(format!("{} ({})", quote(node), states.join(", ")));
            }
        }
        out
    }
}

/// The sessions a report lists, at most as many as the CRD admits.
fn listed_peers(st: &NodeNetworkReportStatus) -> &[BgpPeer] {
    &st.bgp_peers[..st.bgp_peers.len().min(MAX_BGP_PEERS)]
}

/// The Established sessions to the VBR's addresses.
struct VbrSessions<'a> {
    /// Each Established session to a VBR address, with its node.
    holders: Vec<(&'a str, &'a BgpPeer)>,
    /// VBR addresses no on-prem node holds a session to, quoted.
    unpeered: Vec<String>,
}

impl<'a> VbrSessions<'a> {
    fn of(speakers: &[(&'a str, &'a NodeNetworkReportStatus)], vbrs: &[&str]) -> Self {
        let mut out = VbrSessions { holders: vec![], unpeered: vec![] };
        for vbr in vbrs {
            let before = out.holders.len();
            for &(node, st) in speakers {
                out.holders.extend(
                    listed_peers(st)
                        .iter()
                        .filter(|p| p.is_up() && same_peer(&p.peer, vbr))
                        .map(|p| (node, p)),
                );
            }
            if out.holders.len() == before {
                out.unpeered.push(quote(vbr));
            }
        }
        out
    }
}

/// Whether the VBR sessions import a route covering the VPC.
#[derive(Default)]
struct VpcRoute {
    /// One problem per VPC no session's route covers.
    missing: Vec<String>,
    /// What could not be verified, and why.
    unverified: Vec<String>,
}

fn vpc_route(sites: &Sites, holders: &[(&str, &BgpPeer)]) -> VpcRoute {
    let mut out = VpcRoute::default();
    let vpcs: BTreeSet<IpNet> = sites
        .of_role(Role::Cloud)
        .filter_map(|s| s.status?.cloud_network.as_ref()?.vpc_cidr.as_deref())
        .filter_map(parse_net)
        .take(8)
        .collect();
    if vpcs.is_empty() {
        out.unverified.push(
            "whether the VBR sends the VPC's route could not be verified: no cloud node reports \
             status.cloudNetwork.vpcCidr"
                .to_owned(),
        );
        return out;
    }
    if holders.is_empty() {
        return out;
    }
    let listed =
        |p: &'_ BgpPeer| p.imported_prefixes.iter().take(MAX_BGP_PREFIXES).cloned().collect::<Vec<_>>();
    // The agent lists the first 16 prefixes: a session that imported more
    // may hold the VPC's route further down.
    let cut = holders
        .iter()
        .any(|(_, p)| p.imported_routes > p.imported_prefixes.len().min(MAX_BGP_PREFIXES) as u64);
    for vpc in &vpcs {
        let covered = holders
            .iter()
            .any(|(_, p)| listed(p).iter().filter_map(|s| parse_net(s)).any(|net| net.contains(vpc)));
        if covered {
            continue;
        }
        if cut {
            out.unverified.push(format!(
                "no listed prefix of the VBR sessions covers the VPC {vpc}, but a session imported more \
                 routes than the agent lists (16): the route could not be verified"
            ));
            continue;
        }
        let imported: BTreeSet<String> =
            holders.iter().flat_map(|(_, p)| listed(p)).map(|s| quote(&s)).collect();
        let imported: Vec<String> = imported.into_iter().collect();
        out.missing.push(format!(
            "no session to the VBR imports a route covering the VPC {vpc} (imported: {}): advertise \
             the VPC's CIDR to the IDC from the VBR (its BGP network, or the route table of the \
             VBR's router interface)",
            if imported.is_empty() { "nothing".to_owned() } else { some_of(&imported, LIST) }
        ));
    }
    out
}

// ---- CrossSiteConnectivity ----

pub fn cross_site_connectivity(sites: &Sites) -> CheckResult {
    let name = CheckName::CrossSiteConnectivity;
    let sev = Severity::Error;
    let on_prem = sites.of_role(Role::OnPrem).count();
    let cloud = sites.of_role(Role::Cloud).count();
    if on_prem == 0 || cloud == 0 {
        return CheckResult::skip(
            name,
            sev,
            "OneSite",
            format!("{on_prem} on-prem and {cloud} cloud nodes: there is no pair of sites to probe between"),
        );
    }
    let mut probed = [0usize; 2];
    let mut assigned = 0usize;
    let mut unreachable = Vec::new();
    for site in sites.nodes.values() {
        assigned += sites.live_targets(site);
        for (r, _) in sites.results(site) {
            probed[usize::from(r.path == ProbePath::Pod)] += 1;
            if !r.reachable {
                unreachable.push(pair(site.name, r));
            }
        }
    }
    let total = probed[0] + probed[1];
    if total == 0 {
        return if assigned == 0 {
            CheckResult::skip(
                name,
                sev,
                "NotProbed",
                "no node has probe targets: the controller assigns them (spec.probeTargets of each report); \
                 a dump taken before it ran, or agents too old to probe, show none. Nothing was verified",
            )
        } else {
            CheckResult::fail(
                name,
                sev,
                "NotProbedYet",
                format!(
                    "{assigned} probe targets are assigned and no agent has reported a result for them yet: the \
                     agents probe on start and when their targets change, so this passes within a minute; if it \
                     stays, the agents do not probe (a version without the probe loop: upgrade the \
                     terway-hybrid-agent DaemonSet)"
                ),
            )
        };
    }
    let counted = format!(
        "{total} cross-site pairs probed ({} host, {} pod){}",
        probed[0],
        probed[1],
        if assigned > total {
            format!("; {} assigned targets not reported yet", assigned - total)
        } else {
            String::new()
        }
    );
    if unreachable.is_empty() {
        CheckResult::pass(name, sev, "Reachable", format!("{counted}, all reachable"))
    } else {
        CheckResult::fail(
            name,
            sev,
            "Unreachable",
            format!(
                "{} of {total} cross-site pairs are unreachable: {}. Host paths: the leased line or VPN, the \
                 routes to the other site's node addresses, and firewalls (the agents answer on TCP and UDP \
                 9799). Pod paths: the routes to the other site's pod ranges (BGP with the VBR, the VPC route \
                 table) and security groups. `terway-hybrid-agent probe --peer ADDR`, run on the first node of \
                 a pair, shows the route it takes",
                unreachable.len(),
                some_of(&unreachable, LIST)
            ),
        )
    }
}

// ---- PathMTU ----

/// Bytes a pod packet gains when the on-prem overlay carries it over the
/// host network (an overlay cluster extends to the cloud nodes).
fn overlay_overhead(plugin: Plugin) -> Option<u32> {
    match plugin {
        // 14 (inner Ethernet) + 8 (VXLAN/Geneve) + 8 (UDP) + 20 (outer IPv4).
        Plugin::FlannelVxlan
        | Plugin::CalicoVxlan
        | Plugin::Canal
        | Plugin::CiliumVxlan
        | Plugin::CiliumGeneve => Some(50),
        // The outer IPv4 header.
        Plugin::CalicoIpip => Some(20),
        _ => None,
    }
}

fn plausible(mtu: Option<u32>) -> Option<u32> {
    mtu.filter(|m| PLAUSIBLE_MTU.contains(m))
}

/// The packet that crosses the line, and how big it may be, for one probe
/// result: `(what must fit, the figure, where it comes from)`.
struct Need {
    bytes: u32,
    what: String,
}

fn need(scenario: Scenario, path: ProbePath, on_prem: &Site, cloud: &Site) -> (Option<Need>, Vec<String>) {
    let mut notes = Vec::new();
    let on_prem_status = on_prem.status;
    let on_prem_mtu = on_prem_status.and_then(|s| plausible(s.pod_mtu));
    if on_prem_status.is_some_and(|s| s.pod_mtu.is_some()) && on_prem_mtu.is_none() {
        notes.push(format!("{} reports an implausible podMtu", quote(on_prem.name)));
    }
    let cloud_reported = cloud.status.and_then(|s| s.pod_mtu);
    let cloud_mtu = match plausible(cloud_reported) {
        Some(m) => Some((m, "podMtu")),
        None => {
            if cloud_reported.is_some() {
                notes.push(format!("{} reports an implausible podMtu", quote(cloud.name)));
            }
            // Terway's ENI default, only where Terway is what the cloud pods use.
            (scenario.terway_required() == Some(true))
                .then_some((TERWAY_DEFAULT_POD_MTU, "Terway's ENI default"))
        }
    };
    // In an overlay cluster the overlay extends to the cloud nodes: a pod
    // packet crosses the line inside the tunnel on the host path. Elsewhere
    // pod traffic crosses routed, as it left the pod (and a pod-path probe
    // measures the pod packet itself).
    let overhead = match (scenario, path) {
        (Scenario::Overlay, ProbePath::Host) => {
            on_prem_status.and_then(|s| overlay_overhead(s.plugin)).map(|o| (o, "overlay"))
        }
        _ => None,
    };
    let mut best: Option<Need> = None;
    for (mtu, side, source) in
        [on_prem_mtu.map(|m| (m, on_prem.name, "podMtu")), cloud_mtu.map(|(m, src)| (m, cloud.name, src))]
            .into_iter()
            .flatten()
    {
        let (bytes, what) = match overhead {
            Some((o, kind)) => (
                mtu + o,
                format!("pod MTU {mtu} of {} ({source}) + {o} bytes of {kind} headers", quote(side)),
            ),
            None => (mtu, format!("pod MTU {mtu} of {} ({source})", quote(side))),
        };
        if best.as_ref().is_none_or(|b| bytes > b.bytes) {
            best = Some(Need { bytes, what });
        }
    }
    (best, notes)
}

pub fn path_mtu(sites: &Sites, scenario: Scenario) -> CheckResult {
    let name = CheckName::PathMTU;
    let sev = Severity::Warning;
    let mut compared = 0usize;
    let mut small = Vec::new();
    let mut notes = BTreeSet::new();
    let mut smallest: Option<u32> = None;
    for site in sites.nodes.values() {
        for (r, peer) in sites.results(site) {
            let (on_prem, cloud) = match (site.role, peer.role) {
                (Role::OnPrem, Role::Cloud) => (site, peer),
                (Role::Cloud, Role::OnPrem) => (peer, site),
                // Not a cross-site pair.
                _ => continue,
            };
            let Some(pmtu) = r.path_mtu.filter(|_| r.reachable) else { continue };
            if !PLAUSIBLE_MTU.contains(&pmtu) {
                notes.insert(format!("{} reports an implausible pathMtu", quote(site.name)));
                continue;
            }
            let (need, why) = need(scenario, r.path, on_prem, cloud);
            notes.extend(why);
            let Some(need) = need else { continue };
            compared += 1;
            if pmtu < need.bytes {
                smallest = Some(smallest.map_or(pmtu, |s| s.min(pmtu)));
                small.push(format!("{} path MTU {pmtu} < {}", pair(site.name, r), need.what));
            }
        }
    }
    let notes: Vec<String> = notes.into_iter().collect();
    let noted =
        if notes.is_empty() { String::new() } else { format!(" (ignored: {})", some_of(&notes, LIST)) };
    if !small.is_empty() {
        let pmtu = smallest.unwrap_or(0);
        return CheckResult::fail(
            name,
            sev,
            "PathMTUBelowPodMTU",
            format!(
                "{} of {compared} cross-site paths carry smaller packets than the pods send: {}. Large packets \
                 are dropped while pings work. Lower the pod MTU to at most {pmtu} (Calico: `veth_mtu` in the \
                 calico-config ConfigMap or `mtu` of the Installation; flannel: `MTU` in net-conf.json; Terway: \
                 the ENI MTU), or clamp TCP MSS on the edge router: `iptables -t mangle -A FORWARD -p tcp \
                 --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`{noted}",
                small.len(),
                some_of(&small, LIST)
            ),
        );
    }
    if compared == 0 {
        return CheckResult::skip(
            name,
            sev,
            "NoPathMTU",
            format!(
                "no cross-site probe result carries both a path MTU and a known pod MTU: nothing compared{noted}"
            ),
        );
    }
    CheckResult::pass(
        name,
        sev,
        "PathMTUFits",
        format!("{compared} cross-site paths carry the pods' largest packets{noted}"),
    )
}

// ---- gateWaves ----

/// Whether a wave's pods reach the on-prem pods (`spec.crossSite.gateWaves`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodReach<'a> {
    /// Nodes without a pod-path result for an assigned target yet.
    pub pending: Vec<&'a str>,
    /// Nodes with a failing pod-path probe...
    pub failing: Vec<&'a str>,
    /// ... and the failing pairs.
    pub pairs: Vec<String>,
}

impl PodReach<'_> {
    pub fn healthy(&self) -> bool {
        self.pending.is_empty() && self.failing.is_empty()
    }

    /// What holds the wave, for a message.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.pairs.is_empty() {
            parts.push(format!("unreachable: {}", some_of(&self.pairs, LIST)));
        }
        if !self.pending.is_empty() {
            parts.push(format!("no pod probe result yet from {}", some_of(&self.pending, LIST)));
        }
        parts.join("; ")
    }
}

/// The pod-path verdict of each of `nodes` (cloud nodes of a wave): healthy
/// when it has at least one pod-path result for an assigned target and
/// every one reaches its peer.
pub fn pod_reach<'a>(sites: &Sites<'a>, nodes: &[&'a str]) -> PodReach<'a> {
    let mut out = PodReach::default();
    for &node in nodes {
        let Some(site) = sites.nodes.get(node) else { continue };
        let results: Vec<&ProbeResult> =
            sites.results(site).into_iter().map(|(r, _)| r).filter(|r| r.path == ProbePath::Pod).collect();
        if results.is_empty() {
            out.pending.push(node);
            continue;
        }
        let failing: Vec<String> = results.iter().filter(|r| !r.reachable).map(|r| pair(node, r)).collect();
        if !failing.is_empty() {
            out.failing.push(node);
            out.pairs.extend(failing);
        }
    }
    out
}

/// Gated cloud nodes whose pod probes fail: with `gateWaves`, what the
/// rollout adopts as a wave when its status lost the recorded one.
pub fn failing_pod_probes<'a>(sites: &Sites<'a>, nodes: &[&'a str]) -> Vec<&'a str> {
    pod_reach(sites, nodes).failing
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use terway_hybrid_api::cross_site::CloudNetwork;
    use terway_hybrid_api::detection::BgpPeer;
    use terway_hybrid_api::{CheckStatus, Confidence};

    fn status(role: Role, plugin: Plugin) -> NodeNetworkReportStatus {
        NodeNetworkReportStatus {
            scenario: plugin.scenario(),
            plugin,
            confidence: Confidence::High,
            role,
            kernel_version: "5.10".into(),
            evidence: vec![],
            stale: vec![],
            checks: vec![],
            ready: true,
            last_detected: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            agent_version: "t".into(),
            bgp_peers: vec![],
            pod_mtu: None,
            cloud_network: None,
            probes: vec![],
        }
    }

    fn peer(addr: &str, state: &str, prefixes: &[&str]) -> BgpPeer {
        BgpPeer {
            peer: addr.into(),
            state: state.into(),
            imported_routes: prefixes.len() as u64,
            imported_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn target(node: &str, address: &str, path: ProbePath) -> ProbeTarget {
        ProbeTarget { node: node.into(), address: address.into(), path }
    }

    fn result(node: &str, address: &str, path: ProbePath, reachable: bool, pmtu: Option<u32>) -> ProbeResult {
        ProbeResult {
            node: node.into(),
            address: address.into(),
            path,
            reachable,
            rtt_ms: reachable.then_some(3.0),
            path_mtu: pmtu,
            route: None,
            note: None,
            probed: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    /// A node of the test world: its status and targets, owned.
    struct N {
        name: String,
        role: Role,
        status: Option<NodeNetworkReportStatus>,
        targets: Vec<ProbeTarget>,
    }

    fn on_prem(name: &str, plugin: Plugin) -> N {
        N {
            name: name.into(),
            role: Role::OnPrem,
            status: Some(status(Role::OnPrem, plugin)),
            targets: vec![],
        }
    }

    fn cloud(name: &str) -> N {
        N {
            name: name.into(),
            role: Role::Cloud,
            status: Some(status(Role::Cloud, Plugin::Terway)),
            targets: vec![],
        }
    }

    fn st(n: &mut N) -> &mut NodeNetworkReportStatus {
        n.status.as_mut().expect("a status")
    }

    fn sites(nodes: &[N]) -> Sites<'_> {
        Sites::from_sites(nodes.iter().map(|n| Site {
            name: &n.name,
            role: n.role,
            status: n.status.as_ref(),
            targets: &n.targets,
        }))
    }

    /// `from` probes `to` at `addr` over `path`: assigned, with this result.
    fn probe(world: &mut [N], from: usize, to: usize, path: ProbePath, reachable: bool, pmtu: Option<u32>) {
        let to_name = world[to].name.clone();
        let addr = format!("10.{}.0.{to}:9799", u8::from(path == ProbePath::Pod));
        world[from].targets.push(target(&to_name, &addr, path));
        st(&mut world[from]).probes.push(result(&to_name, &addr, path, reachable, pmtu));
    }

    fn vpc(n: &mut N, cidr: &str) {
        st(n).cloud_network = Some(CloudNetwork { vpc_cidr: Some(cidr.into()), vswitch_cidrs: vec![] });
    }

    /// What a case expects: status and reason.
    type Want = (CheckStatus, &'static str);
    /// Words the message must hold.
    type Words = &'static [&'static str];

    fn verdict(c: &CheckResult) -> (CheckStatus, &str) {
        (c.status, c.reason.as_str())
    }

    // ---- BGPPeers ----

    #[test]
    fn bgp_peers_cases() {
        use CheckStatus::*;
        type Setup = fn(&mut Vec<N>) -> Vec<String>;
        fn mesh(w: &mut [N]) {
            for (i, n) in w.iter_mut().take(2).enumerate() {
                st(n).bgp_peers = vec![peer(&format!("10.0.0.{}", 2 - i), "Established", &[])];
            }
        }
        #[rustfmt::skip]
        let cases: Vec<(&str, Scenario, Setup, Want, Words)> = vec![
            ("overlay skips", Scenario::Overlay, |_| vec![], (Skip, "NotApplicable"), &["overlay"]),
            ("unknown skips", Scenario::Unknown, |_| vec![], (Skip, "NotApplicable"), &[]),
            ("sessions up", Scenario::Bgp, |w| { mesh(w); vec![] }, (Pass, "Established"),
                &["2 Established BGP sessions on 2 on-prem nodes"]),
            ("no session listed anywhere is not a pass", Scenario::Bgp, |_| vec![], (Skip, "NoSessionsSeen"),
                &["op-0, op-1", "Nothing was verified"]),
            ("a node whose sessions are all down", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[1]).bgp_peers = vec![peer("10.0.0.1", "Active", &[]), peer("10.0.0.9", "Connect", &[])]; vec![] },
                (Fail, "SessionsDown"), &["1 of 2", "op-1 (10.0.0.1 Active, 10.0.0.9 Connect)"]),
            ("one session up is enough", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[1]).bgp_peers.push(peer("10.0.0.9", "Idle", &[])); vec![] },
                (Pass, "Established"), &[]),
            ("a node that lists none is not seen, not down", Scenario::Bgp,
                |w| { st(&mut w[0]).bgp_peers = vec![peer("10.0.0.2", "Established", &[])]; vec![] },
                (Pass, "Established"), &["1 report no session (not seen: op-1)"]),
            ("flannel host-gw speaks no BGP", Scenario::Bgp,
                |w| { st(&mut w[0]).plugin = Plugin::FlannelHostGw; st(&mut w[1]).plugin = Plugin::FlannelHostGw; vec![] },
                (Skip, "NoBGPSpeakers"), &[]),
            ("host-gw with a VBR: held outside the cluster", Scenario::Bgp,
                |w| { st(&mut w[0]).plugin = Plugin::FlannelHostGw; st(&mut w[1]).plugin = Plugin::FlannelHostGw; vec!["10.9.0.1".into()] },
                (Skip, "NoBGPSpeakers"), &["10.9.0.1", "edge router"]),
            ("a cloud node's sessions do not count", Scenario::Bgp,
                |w| { st(&mut w[2]).bgp_peers = vec![peer("1.1.1.1", "Established", &[])]; vec![] },
                (Skip, "NoSessionsSeen"), &[]),
            ("an on-prem node without a report is AgentCoverage's", Scenario::Bgp,
                |w| { mesh(w); w[1].status = None; vec![] }, (Pass, "Established"), &["on 1 on-prem nodes"]),
            ("VBR peered, VPC route imported", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["172.16.0.0/12"])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Pass, "Established"), &["3 Established BGP sessions on 2 on-prem nodes, 1 of them to the VBR"]),
            ("VBR address written differently", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("fd00::0001", "Established", &["172.16.0.0/16"])); vpc(&mut w[2], "172.16.0.0/16"); vec![" fd00::1 ".into()] },
                (Pass, "Established"), &[]),
            ("no session to one VBR address", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["172.16.0.0/16"])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into(), "10.9.0.2".into()] },
                (Fail, "VBRNotPeered"), &["VBR address 10.9.0.2"]),
            ("the VBR session is down", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Active", &[])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Fail, "VBRNotPeered"), &["10.9.0.1"]),
            ("the VBR sends no VPC route", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["192.168.0.0/24", "junk"])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Fail, "VPCRouteMissing"), &["VPC 172.16.0.0/16", "imported: 192.168.0.0/24, junk"]),
            ("a narrower prefix does not cover the VPC", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["172.16.1.0/24"])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Fail, "VPCRouteMissing"), &[]),
            ("a default route covers it", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["0.0.0.0/0"])); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Pass, "Established"), &[]),
            ("no VPC known: said, not passed", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["172.16.0.0/16"])); vec!["10.9.0.1".into()] },
                (Skip, "VPCRouteUnverified"), &["could not be verified", "vpcCidr"]),
            ("a garbage VPC is no VPC", Scenario::Bgp,
                |w| { mesh(w); st(&mut w[0]).bgp_peers.push(peer("10.9.0.1", "Established", &["172.16.0.0/16"])); vpc(&mut w[2], "not a cidr"); vec!["10.9.0.1".into()] },
                (Skip, "VPCRouteUnverified"), &[]),
            ("a cut prefix list cannot prove the route missing", Scenario::Bgp,
                |w| { mesh(w); let mut p = peer("10.9.0.1", "Established", &["192.168.0.0/24"]); p.imported_routes = 500; st(&mut w[0]).bgp_peers.push(p); vpc(&mut w[2], "172.16.0.0/16"); vec!["10.9.0.1".into()] },
                (Skip, "VPCRouteUnverified"), &["more routes than the agent lists"]),
            ("down sessions outrank the VBR", Scenario::Bgp,
                |w| { st(&mut w[0]).bgp_peers = vec![peer("10.9.0.1", "Active", &[])]; vec!["10.9.0.1".into()] },
                (Fail, "SessionsDown"), &["op-0", "VBR address 10.9.0.1"]),
        ];
        for (what, scenario, setup, want, words) in cases {
            let mut w =
                vec![on_prem("op-0", Plugin::CalicoBgp), on_prem("op-1", Plugin::CalicoBgp), cloud("cl-0")];
            let vbrs = setup(&mut w);
            let c = bgp_peers(&sites(&w), scenario, &vbrs);
            assert_eq!(verdict(&c), want, "{what}: {}", c.message);
            assert_eq!(c.severity, Severity::Error, "{what}");
            for word in words {
                assert!(c.message.contains(word), "{what}: {:?} lacks {word:?}", c.message);
            }
        }
    }

    #[test]
    fn bgp_peers_with_hostile_reports_stays_bounded() {
        // 5,000 on-prem nodes of 40 sessions each (the contract says 32),
        // every one down, with long peer names: the message names five
        // nodes, with cut strings.
        let long = "x".repeat(300);
        let mut w: Vec<N> = (0..5000).map(|i| on_prem(&format!("op-{i:04}"), Plugin::CalicoBgp)).collect();
        for n in &mut w {
            st(n).bgp_peers = (0..40).map(|_| peer(&long, "Active\u{1b}[2J", &[])).collect();
        }
        let vbrs: Vec<String> = (0..100).map(|i| format!("10.9.{i}.1")).collect();
        let c = bgp_peers(&sites(&w), Scenario::Bgp, &vbrs);
        assert_eq!(verdict(&c), (CheckStatus::Fail, "SessionsDown"));
        assert!(c.message.contains("5000 of 5000") && c.message.contains("and 4995 more"), "{}", c.message);
        assert!(c.message.len() < 3000, "{} bytes", c.message.len());
        // Eight VBR addresses at most are looked at, five named.
        assert!(c.message.contains("10.9.4.1 and 3 more"), "{}", c.message);
        assert!(!c.message.contains(&"x".repeat(QUOTE + 1)));
    }

    // ---- CrossSiteConnectivity ----

    #[test]
    fn connectivity_cases() {
        use CheckStatus::*;
        use ProbePath::{Host, Pod};
        type Setup = fn(&mut Vec<N>);
        #[rustfmt::skip]
        let cases: Vec<(&str, Setup, Want, Words)> = vec![
            ("no cloud node", |w| w.retain(|n| n.role == Role::OnPrem), (Skip, "OneSite"), &["0 cloud"]),
            ("no on-prem node", |w| w.retain(|n| n.role == Role::Cloud), (Skip, "OneSite"), &["0 on-prem"]),
            ("no targets anywhere", |_| {}, (Skip, "NotProbed"), &["Nothing was verified"]),
            ("targets but no results yet", |w| w[0].targets.push(target("cl-0", "10.0.0.2:9799", Host)),
                (Fail, "NotProbedYet"), &["1 probe targets"]),
            ("all reachable", |w| { probe(w, 0, 2, Host, true, None); probe(w, 2, 0, Host, true, None); probe(w, 2, 1, Pod, true, None) },
                (Pass, "Reachable"), &["3 cross-site pairs probed (2 host, 1 pod), all reachable"]),
            ("one unreachable pair named", |w| { probe(w, 0, 2, Host, true, None); probe(w, 3, 1, Host, false, None) },
                (Fail, "Unreachable"), &["1 of 2", "cl-1 → op-1 (10.0.0.1:9799, host)"]),
            ("a pod path unreachable", |w| probe(w, 2, 0, Pod, false, None),
                (Fail, "Unreachable"), &["cl-0 → op-0 (10.1.0.0:9799, pod)"]),
            ("a stale result of a removed target does not count", |w| {
                probe(w, 0, 2, Host, true, None);
                st(&mut w[0]).probes.push(result("cl-1", "10.0.0.3:9799", Host, false, None)) },
                (Pass, "Reachable"), &["1 cross-site pairs"]),
            ("a result for the same peer on another path does not count", |w| {
                probe(w, 0, 2, Host, true, None);
                st(&mut w[0]).probes.push(result("cl-0", "10.0.0.2:9799", Pod, false, None)) },
                (Pass, "Reachable"), &[]),
            ("a target whose node is gone does not count", |w| {
                probe(w, 0, 2, Host, true, None);
                w[0].targets.push(target("gone", "10.0.0.99:9799", Host));
                st(&mut w[0]).probes.push(result("gone", "10.0.0.99:9799", Host, false, None)) },
                (Pass, "Reachable"), &[]),
            ("pending targets are counted beside the results", |w| {
                probe(w, 0, 2, Host, true, None); w[1].targets.push(target("cl-1", "10.0.0.3:9799", Host)) },
                (Pass, "Reachable"), &["1 assigned targets not reported yet"]),
            ("a duplicated result counts once, the first", |w| {
                probe(w, 0, 2, Host, true, None);
                st(&mut w[0]).probes.push(result("cl-0", "10.0.0.2:9799", Host, false, None)) },
                (Pass, "Reachable"), &["1 cross-site pairs"]),
            ("results of a node whose status is not written do not count", |w| {
                probe(w, 0, 2, Host, false, None); w[0].status = None },
                (Fail, "NotProbedYet"), &["1 probe targets"]),
        ];
        for (what, setup, want, words) in cases {
            let mut w = vec![
                on_prem("op-0", Plugin::CalicoBgp),
                on_prem("op-1", Plugin::CalicoBgp),
                cloud("cl-0"),
                cloud("cl-1"),
            ];
            setup(&mut w);
            let c = cross_site_connectivity(&sites(&w));
            assert_eq!(verdict(&c), want, "{what}: {}", c.message);
            assert_eq!(c.severity, Severity::Error);
            for word in words {
                assert!(c.message.contains(word), "{what}: {:?} lacks {word:?}", c.message);
            }
        }
    }

    #[test]
    fn connectivity_reads_bounded_lists() {
        // A dump is not held to the CRD: 10,000 targets and results on one
        // node are read as the first 8 and 16.
        let mut w = vec![on_prem("op-0", Plugin::CalicoBgp), cloud("cl-0")];
        for i in 0..10_000 {
            let addr = format!("10.0.{}.{}:9799", i / 256, i % 256);
            w[0].targets.push(target("cl-0", &addr, ProbePath::Host));
            st(&mut w[0]).probes.push(result("cl-0", &addr, ProbePath::Host, i % 2 == 0, None));
        }
        let c = cross_site_connectivity(&sites(&w));
        assert_eq!(verdict(&c), (CheckStatus::Fail, "Unreachable"));
        assert!(c.message.starts_with("4 of 8 cross-site pairs"), "{}", c.message);
    }

    // ---- PathMTU ----

    #[test]
    fn path_mtu_cases() {
        use CheckStatus::*;
        use ProbePath::{Host, Pod};
        type Setup = fn(&mut Vec<N>);
        #[rustfmt::skip]
        let cases: Vec<(&str, Scenario, Setup, Want, Words)> = vec![
            ("nothing probed", Scenario::Bgp, |_| {}, (Skip, "NoPathMTU"), &["nothing compared"]),
            ("1500 fits 1500", Scenario::Bgp, |w| { st(&mut w[0]).pod_mtu = Some(1500); probe(w, 0, 1, Host, true, Some(1500)) },
                (Pass, "PathMTUFits"), &["1 cross-site paths"]),
            ("a leased line of 1400 under Terway's default 1500", Scenario::Bgp,
                |w| { st(&mut w[0]).pod_mtu = Some(1450); probe(w, 0, 1, Host, true, Some(1400)) },
                (Fail, "PathMTUBelowPodMTU"),
                &["op-0 → cl-0 (10.0.0.1:9799, host) path MTU 1400 < pod MTU 1500 of cl-0 (Terway's ENI default)",
                  "at most 1400", "veth_mtu", "MTU", "--clamp-mss-to-pmtu"]),
            ("the cloud node's reported podMtu wins over the default", Scenario::Bgp,
                |w| { st(&mut w[0]).pod_mtu = Some(1400); st(&mut w[1]).pod_mtu = Some(1400); probe(w, 1, 0, Host, true, Some(1400)) },
                (Pass, "PathMTUFits"), &[]),
            ("the on-prem side is the larger", Scenario::Bgp,
                |w| { st(&mut w[0]).pod_mtu = Some(9000); st(&mut w[1]).pod_mtu = Some(1500); probe(w, 1, 0, Pod, true, Some(1500)) },
                (Fail, "PathMTUBelowPodMTU"), &["cl-0 → op-0 (10.1.0.0:9799, pod) path MTU 1500 < pod MTU 9000 of op-0 (podMtu)"]),
            ("an unknown on-prem pod MTU still compares the cloud side", Scenario::HostNetwork,
                |w| probe(w, 0, 1, Host, true, Some(1300)), (Fail, "PathMTUBelowPodMTU"), &["1300 < pod MTU 1500 of cl-0"]),
            ("an unreachable pair has no path MTU", Scenario::Bgp, |w| probe(w, 0, 1, Host, false, Some(500)), (Skip, "NoPathMTU"), &[]),
            ("no pathMtu measured", Scenario::Bgp, |w| probe(w, 0, 1, Host, true, None), (Skip, "NoPathMTU"), &[]),
            ("an absurd path MTU of 0 is ignored", Scenario::Bgp, |w| probe(w, 0, 1, Host, true, Some(0)),
                (Skip, "NoPathMTU"), &["op-0 reports an implausible pathMtu"]),
            ("an absurd path MTU of 70000 is ignored", Scenario::Bgp, |w| probe(w, 0, 1, Host, true, Some(70000)),
                (Skip, "NoPathMTU"), &["implausible pathMtu"]),
            ("an absurd pod MTU of 70000 is ignored: the default compares", Scenario::Bgp,
                |w| { st(&mut w[1]).pod_mtu = Some(70000); st(&mut w[0]).pod_mtu = Some(0); probe(w, 0, 1, Host, true, Some(1500)) },
                (Pass, "PathMTUFits"), &["cl-0 reports an implausible podMtu", "op-0 reports an implausible podMtu"]),
            ("overlay: the host path carries the pod packet + 50 bytes of VXLAN", Scenario::Overlay,
                |w| { st(&mut w[0]).plugin = Plugin::FlannelVxlan; st(&mut w[0]).pod_mtu = Some(1450); st(&mut w[1]).pod_mtu = Some(1450); probe(w, 0, 1, Host, true, Some(1480)) },
                (Fail, "PathMTUBelowPodMTU"), &["1480 < pod MTU 1450 of op-0 (podMtu) + 50 bytes of overlay headers"]),
            ("overlay: 1450 + 50 fits 1500", Scenario::Overlay,
                |w| { st(&mut w[0]).plugin = Plugin::FlannelVxlan; st(&mut w[0]).pod_mtu = Some(1450); probe(w, 0, 1, Host, true, Some(1500)) },
                (Pass, "PathMTUFits"), &[]),
            ("overlay: IPIP adds 20", Scenario::Overlay,
                |w| { st(&mut w[0]).plugin = Plugin::CalicoIpip; st(&mut w[0]).pod_mtu = Some(1480); probe(w, 0, 1, Host, true, Some(1499)) },
                (Fail, "PathMTUBelowPodMTU"), &["+ 20 bytes"]),
            ("overlay: a pod path is the pod packet itself", Scenario::Overlay,
                |w| { st(&mut w[0]).plugin = Plugin::FlannelVxlan; st(&mut w[0]).pod_mtu = Some(1450); probe(w, 0, 1, Pod, true, Some(1450)) },
                (Pass, "PathMTUFits"), &[]),
            ("overlay: no Terway default on the cloud side", Scenario::Overlay,
                |w| probe(w, 0, 1, Host, true, Some(1400)), (Skip, "NoPathMTU"), &[]),
            ("a same-site pair is not cross-site", Scenario::Bgp, |w| {
                w.push(cloud("cl-1")); probe(w, 1, 2, Host, true, Some(576)) }, (Skip, "NoPathMTU"), &[]),
        ];
        for (what, scenario, setup, want, words) in cases {
            let mut w = vec![on_prem("op-0", Plugin::CalicoBgp), cloud("cl-0")];
            setup(&mut w);
            let c = path_mtu(&sites(&w), scenario);
            assert_eq!(verdict(&c), want, "{what}: {}", c.message);
            assert_eq!(c.severity, Severity::Warning, "{what}");
            assert!(!c.is_blocking(), "{what}");
            for word in words {
                assert!(c.message.contains(word), "{what}: {:?} lacks {word:?}", c.message);
            }
        }
    }

    /// For every pod MTU pair and path MTU around the edges, the check warns
    /// exactly when the path is below the larger pod MTU.
    #[test]
    fn path_mtu_warns_exactly_below_the_larger_pod_mtu() {
        let mtus = [
            None,
            Some(0),
            Some(67),
            Some(68),
            Some(1280),
            Some(1400),
            Some(1450),
            Some(1500),
            Some(9000),
            Some(65535),
            Some(65536),
            Some(u32::MAX),
        ];
        for on_prem_mtu in mtus {
            for cloud_mtu in mtus {
                for pmtu in mtus {
                    let mut w = vec![on_prem("op-0", Plugin::CalicoBgp), cloud("cl-0")];
                    st(&mut w[0]).pod_mtu = on_prem_mtu;
                    st(&mut w[1]).pod_mtu = cloud_mtu;
                    probe(&mut w, 1, 0, ProbePath::Host, true, pmtu);
                    let c = path_mtu(&sites(&w), Scenario::Bgp);
                    let ok = |m: Option<u32>| m.filter(|m| (68..=65535).contains(m));
                    let cloud_side = ok(cloud_mtu).unwrap_or(TERWAY_DEFAULT_POD_MTU);
                    let want = match ok(pmtu) {
                        None => CheckStatus::Skip,
                        Some(p) if p < cloud_side.max(ok(on_prem_mtu).unwrap_or(0)) => CheckStatus::Fail,
                        Some(_) => CheckStatus::Pass,
                    };
                    assert_eq!(c.status, want, "{on_prem_mtu:?} {cloud_mtu:?} {pmtu:?}: {}", c.message);
                }
            }
        }
    }

    // ---- gateWaves ----

    #[test]
    fn pod_reach_of_a_wave() {
        use ProbePath::{Host, Pod};
        let mut w = vec![
            on_prem("op-0", Plugin::CalicoBgp),
            cloud("cl-0"),
            cloud("cl-1"),
            cloud("cl-2"),
            cloud("cl-3"),
        ];
        probe(&mut w, 1, 0, Pod, true, None);
        probe(&mut w, 2, 0, Pod, false, None);
        probe(&mut w, 3, 0, Host, true, None); // a host result is not a pod result
        w[4].status = None;
        let s = sites(&w);
        let r = pod_reach(&s, &["cl-0", "cl-1", "cl-2", "cl-3", "gone"]);
        assert_eq!(r.failing, ["cl-1"]);
        assert_eq!(r.pending, ["cl-2", "cl-3"]);
        assert_eq!(r.pairs, ["cl-1 → op-0 (10.1.0.0:9799, pod)"]);
        assert!(!r.healthy());
        assert_eq!(
            r.describe(),
            "unreachable: cl-1 → op-0 (10.1.0.0:9799, pod); no pod probe result yet from cl-2, cl-3"
        );
        assert!(pod_reach(&s, &["cl-0"]).healthy());
        assert!(pod_reach(&s, &[]).healthy());
        // One failing pair among reachable ones fails the node.
        w[1].targets.push(target("op-0", "10.1.0.9:9799", Pod));
        st(&mut w[1]).probes.push(result("op-0", "10.1.0.9:9799", Pod, false, None));
        let s = sites(&w);
        assert_eq!(pod_reach(&s, &["cl-0"]).failing, ["cl-0"]);
    }
}
