//! classify: a pure function from a [`NodeSnapshot`] to a [`Detection`].
//!
//! It works in three steps (docs/contracts.md §11):
//! 1. the *datapath*: tunnel devices that are up and carry routes, Cilium's
//!    host device, routes written by the CNIs' daemons (protocol numbers),
//!    BGP sessions. What is live decides.
//! 2. the *CNI config* the runtime actually loads (the first loadable file in
//!    `/etc/cni/net.d`). It confirms the datapath, or contradicts it.
//! 3. leftovers of a past CNI (a tunnel that is down or carries nothing, a
//!    renamed or shadowed config) are set aside as `stale`, so they never
//!    outvote the live network.
//!
//! One exception to "a tunnel without routes is stale": on a lone node (the
//! first node of a cluster, or before its peers joined) the overlay device is
//! up and addressed but has nobody to route to. When nothing else is live,
//! such an idle tunnel is taken as the datapath, with less confidence.

use std::net::IpAddr;

use terway_hybrid_api::snapshot::{
    BirdState, CniFile, Family as IpFamily, Link, NextHop, RouteGroup, RouteType, PROTO_BGP, PROTO_BIRD,
    PROTO_BOOT, PROTO_FELIX, PROTO_KERNEL, PROTO_KUBE_ROUTER, PROTO_ZEBRA,
};
use terway_hybrid_api::{Confidence, Detection, Evidence, NodeSnapshot, Plugin};

/// The CNI projects, to compare what the datapath shows with what the config names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Family {
    Flannel,
    Calico,
    /// Calico policy with flannel networking.
    Canal,
    Cilium,
    KubeRouter,
    Terway,
    /// A config whose plugin types we do not know (the first type).
    Other(String),
}

impl Family {
    fn name(&self) -> &str {
        match self {
            Family::Flannel => "flannel",
            Family::Calico => "calico",
            Family::Canal => "canal",
            Family::Cilium => "cilium",
            Family::KubeRouter => "kube-router",
            Family::Terway => "terway",
            Family::Other(t) => t,
        }
    }

    fn of(plugin: Plugin) -> Option<Family> {
        Some(match plugin {
            Plugin::FlannelVxlan | Plugin::FlannelHostGw => Family::Flannel,
            Plugin::CalicoIpip | Plugin::CalicoVxlan | Plugin::CalicoBgp => Family::Calico,
            Plugin::Canal => Family::Canal,
            Plugin::CiliumVxlan | Plugin::CiliumGeneve | Plugin::CiliumNative => Family::Cilium,
            Plugin::KubeRouter => Family::KubeRouter,
            Plugin::Terway => Family::Terway,
            Plugin::None | Plugin::Unknown => return None,
        })
    }

    /// A canal config holds the `calico` plugin over a flannel datapath, so
    /// canal agrees with either half.
    fn agrees_with(&self, other: &Family) -> bool {
        self == other
            || matches!(
                (self, other),
                (Family::Canal, Family::Flannel | Family::Calico)
                    | (Family::Flannel | Family::Calico, Family::Canal)
            )
    }

    fn is_on_prem_cni(&self) -> bool {
        matches!(self, Family::Flannel | Family::Calico | Family::Canal | Family::Cilium | Family::KubeRouter)
    }
}

fn config_family(file: &CniFile) -> Family {
    let has = |t: &str| file.plugin_types.iter().any(|p| p == t);
    if has("terway") {
        Family::Terway
    } else if has("cilium-cni") {
        Family::Cilium
    } else if has("calico") && (file.name.contains("canal") || file.network.as_deref() == Some("canal")) {
        Family::Canal
    } else if has("calico") {
        Family::Calico
    } else if has("flannel") {
        Family::Flannel
    } else if file.name.contains("kuberouter") || file.name.contains("kube-router") {
        Family::KubeRouter
    } else {
        Family::Other(file.plugin_types.first().cloned().unwrap_or_default())
    }
}

/// The CNI tunnel devices, by the names the CNIs give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    Flannel,
    CalicoIpip,
    CalicoVxlan,
    CiliumVxlan,
    CiliumGeneve,
    KubeRouter,
}

fn tunnel_of(name: &str) -> Option<Tunnel> {
    Some(match name {
        "tunl0" => Tunnel::CalicoIpip,
        "vxlan.calico" | "vxlan-v6.calico" => Tunnel::CalicoVxlan,
        "cilium_vxlan" => Tunnel::CiliumVxlan,
        "cilium_geneve" => Tunnel::CiliumGeneve,
        _ if name.starts_with("flannel.") || name.starts_with("flannel-v6.") => Tunnel::Flannel,
        _ if name.starts_with("tun-") => Tunnel::KubeRouter,
        _ => return None,
    })
}

/// What a tunnel device is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Use {
    /// Up and carrying traffic.
    Live,
    /// Up and addressed, but no route goes through it: a lone node, or a leftover.
    Idle,
    /// Evidence of the past, with why.
    Dead(&'static str),
    /// The kernel's `tunl0`, which exists in every namespace once the ipip
    /// module is loaded: unaddressed and unused, it means nothing.
    Fallback,
}

struct TunnelState<'a> {
    link: &'a Link,
    tunnel: Tunnel,
    routes: u64,
    usage: Use,
}

fn tunnel_states(s: &NodeSnapshot) -> Vec<TunnelState<'_>> {
    let cilium_host = s.link("cilium_host").is_some();
    s.links
        .iter()
        .filter_map(|link| {
            let tunnel = tunnel_of(&link.name)?;
            // Per-peer devices share one folded route group.
            let device = if tunnel == Tunnel::KubeRouter { "tun-*" } else { link.name.as_str() };
            let mut routes = s.routes.carried_by(device);
            // An IPv6 link-local address comes with every device that is up:
            // it is not an address a CNI gave the tunnel.
            let addressed = link.addresses.iter().any(|a| !is_link_local(a));
            // flannel before 0.7 gave flannel.N the whole network's prefix
            // (10.244.5.0/16) and routed the network through the kernel's
            // connected route, resolving peers on L3 miss: that route is the
            // datapath, though the kernel wrote it.
            if tunnel == Tunnel::Flannel
                && routes == 0
                && link.addresses.iter().any(|a| is_network_wide_v4(a))
            {
                routes = connected_v4_through(s, device);
            }
            let usage = match tunnel {
                // Cilium encapsulates in BPF; its routes point at cilium_host.
                Tunnel::CiliumVxlan | Tunnel::CiliumGeneve => match (link.up, cilium_host) {
                    (true, true) => Use::Live,
                    (false, _) => Use::Dead("is down"),
                    (true, false) => Use::Dead("is up but cilium_host is gone"),
                },
                Tunnel::CalicoIpip if !addressed && routes == 0 => Use::Fallback,
                _ if !link.up => Use::Dead("is down"),
                // Routes through a tunnel that is up make it live, address or
                // not: Felix removes tunl0's address (restarts, IPAM trouble)
                // while BIRD's onlink routes through it stay and carry traffic.
                _ if routes > 0 => Use::Live,
                _ if addressed => Use::Idle,
                _ => Use::Dead("is up but has no address and no route goes through it"),
            };
            Some(TunnelState { link, tunnel, routes, usage })
        })
        .collect()
}

/// `fe80::/10`.
fn is_link_local(cidr: &str) -> bool {
    let addr = cidr.split('/').next().unwrap_or_default();
    matches!(addr.parse::<IpAddr>(), Ok(IpAddr::V6(v6)) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// An IPv4 address whose prefix covers more than the host (not a /32).
fn is_network_wide_v4(cidr: &str) -> bool {
    match cidr.split_once('/') {
        Some((addr, len)) => {
            addr.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l < 32)
        }
        None => false,
    }
}

/// The kernel's connected (proto kernel, unicast) IPv4 routes through `device`.
fn connected_v4_through(s: &NodeSnapshot, device: &str) -> u64 {
    count(s, |g| {
        g.family == IpFamily::Ipv4
            && g.device.as_deref() == Some(device)
            && g.protocol == PROTO_KERNEL
            && g.route_type == RouteType::Unicast
            && !g.default
    })
}

/// Non-default routes written by `protocol`.
fn routes_by_protocol(s: &NodeSnapshot, protocol: u8) -> u64 {
    count(s, |g| g.protocol == protocol && !g.default)
}

fn count(s: &NodeSnapshot, pred: impl Fn(&RouteGroup) -> bool) -> u64 {
    s.routes.groups.iter().filter(|g| pred(g)).map(|g| g.count).sum()
}

fn count_links(s: &NodeSnapshot, prefix: &str) -> usize {
    s.links.iter().filter(|l| l.name.starts_with(prefix)).count()
}

/// What a live (or lone) datapath shows, before the config is consulted.
struct Datapath<'a> {
    plugin: Plugin,
    evidence: Vec<Evidence>,
    /// Decided by weaker evidence (an idle tunnel on a node without peers,
    /// routes without their tunnel device): one step less confidence.
    lone: bool,
    /// The mode itself is a default, not seen: Calico's BIRD has peers but
    /// none is up, so no route shows the mode. One more step less.
    unsure: bool,
    /// Idle tunnels this datapath explains (so they are not stale).
    uses: Vec<&'a str>,
}

impl<'a> Datapath<'a> {
    fn new(plugin: Plugin, evidence: Vec<Evidence>) -> Self {
        Datapath { plugin, evidence, lone: false, unsure: false, uses: vec![] }
    }
}

pub fn classify(s: &NodeSnapshot) -> Detection {
    let tunnels = tunnel_states(s);
    let candidates = datapath_candidates(s, &tunnels);
    let used: Vec<&str> = candidates.iter().flat_map(|c| c.uses.iter().copied()).collect();
    let mut stale = stale_devices(&tunnels, &used);
    stale.extend(stale_configs(s));
    let config = s.cni.primary().map(|f| (f, config_family(f)));

    // Two live datapaths of different projects: we cannot tell which one the
    // pods use, so we say so instead of guessing.
    if candidates.len() > 1 {
        let names: Vec<&str> = candidates.iter().map(|c| c.plugin.as_str()).collect();
        let mut evidence = vec![Evidence::new(
            "conflict",
            format!("live datapaths of more than one CNI: {}", names.join(" and ")),
        )];
        evidence.extend(candidates.into_iter().flat_map(|c| c.evidence));
        return unknown(evidence, stale);
    }

    match (candidates.into_iter().next(), config) {
        (Some(mut datapath), Some((file, family))) => {
            let live = Family::of(datapath.plugin).expect("a datapath names a CNI");
            if !live.agrees_with(&family) {
                let mut evidence = vec![Evidence::new(
                    "conflict",
                    format!(
                        "the runtime's CNI config {} is {}, but the live datapath is {}",
                        file.name,
                        family.name(),
                        datapath.plugin
                    ),
                )];
                evidence.append(&mut datapath.evidence);
                return unknown(evidence, stale);
            }
            // Flannel's VXLAN device with a canal config is canal, even before
            // any pod (cali veth) exists.
            if datapath.plugin == Plugin::FlannelVxlan && family == Family::Canal {
                datapath.plugin = Plugin::Canal;
            }
            datapath
                .evidence
                .push(Evidence::new("cni-config", format!("the runtime loads {}", describe_file(file))));
            let confidence = match (datapath.lone, datapath.unsure) {
                (_, true) => Confidence::Low,
                (true, false) => Confidence::Medium,
                (false, false) => Confidence::High,
            };
            detection(datapath.plugin, confidence, datapath.evidence, stale)
        }
        (Some(mut datapath), None) => {
            datapath.evidence.push(Evidence::new("cni-config", no_config_detail(s)));
            let confidence = if datapath.lone { Confidence::Low } else { Confidence::Medium };
            detection(datapath.plugin, confidence, datapath.evidence, stale)
        }
        (None, Some((file, family))) => config_only(s, file, family, stale),
        (None, None) => no_cni(s, stale),
    }
}

fn detection(
    plugin: Plugin,
    confidence: Confidence,
    evidence: Vec<Evidence>,
    stale: Vec<Evidence>,
) -> Detection {
    Detection { scenario: plugin.scenario(), plugin, confidence, evidence, stale }
}

fn unknown(evidence: Vec<Evidence>, stale: Vec<Evidence>) -> Detection {
    detection(Plugin::Unknown, Confidence::Low, evidence, stale)
}

/// Every CNI whose datapath is live, with the evidence for it. When none is
/// live, the CNI whose tunnel waits idle on a lone node.
fn datapath_candidates<'a>(s: &NodeSnapshot, tunnels: &'a [TunnelState<'a>]) -> Vec<Datapath<'a>> {
    let mut out = Vec::new();
    out.extend(calico(s, tunnels, false));
    out.extend(flannel(s, tunnels, false));
    out.extend(cilium(s, tunnels));
    out.extend(kube_router(s, tunnels));
    if out.is_empty() {
        out.extend(calico(s, tunnels, true));
        out.extend(flannel(s, tunnels, true));
    }
    out
}

/// BIRD routes to other nodes, or established BGP sessions.
fn bgp_in_use(s: &NodeSnapshot) -> bool {
    let direct_bird = count(s, |g| {
        g.protocol == PROTO_BIRD
            && !g.default
            && g.carries_traffic()
            && !is_tunnel_device(g.device.as_deref())
    });
    let (_, established) = s.bird.bgp_sessions();
    direct_bird > 0 || established > 0
}

fn tunnel_evidence(t: &TunnelState) -> Evidence {
    let what = match &t.link.vxlan {
        Some(v) => {
            format!("vxlan VNI {} port {}{}", v.vni, v.port, if v.flow_based { ", flow-based" } else { "" })
        }
        None => t.link.kind.clone().unwrap_or_else(|| "device".to_owned()),
    };
    let routes = match (t.tunnel, &t.usage) {
        (Tunnel::CiliumVxlan | Tunnel::CiliumGeneve, _) => "encapsulation in BPF".to_owned(),
        (_, Use::Idle) => {
            format!("addressed {}, no peer routes yet: a lone node", t.link.addresses.join(", "))
        }
        _ => format!("{} routes through it", t.routes),
    };
    Evidence::new("tunnel-device", format!("{} is up ({what}), {routes}", t.link.name))
}

/// Calico: its tunnels, Felix's routes (proto 80), BIRD's routes and socket.
fn calico<'a>(s: &NodeSnapshot, tunnels: &'a [TunnelState<'a>], lone: bool) -> Option<Datapath<'a>> {
    let find = |kind: Tunnel, usage: Use| tunnels.iter().find(move |t| t.tunnel == kind && t.usage == usage);
    let felix = routes_by_protocol(s, PROTO_FELIX);
    // Routes to other nodes; BIRD's blackholes for local blocks are counted apart.
    let bird_routes = count(s, |g| g.protocol == PROTO_BIRD && !g.default && g.carries_traffic());
    let blackholes = count(s, |g| {
        g.route_type == RouteType::Blackhole && (g.protocol == PROTO_BIRD || g.protocol == PROTO_FELIX)
    });
    let cali = count_links(s, "cali");
    let bird_answered = matches!(s.bird, BirdState::Answered { .. });
    let live_tunnel = find(Tunnel::CalicoIpip, Use::Live).or_else(|| find(Tunnel::CalicoVxlan, Use::Live));
    let idle_tunnel = find(Tunnel::CalicoVxlan, Use::Idle).or_else(|| find(Tunnel::CalicoIpip, Use::Idle));
    // BIRD's routes are Calico's when Calico's pods or IPAM blocks are here;
    // on their own they could be any routing daemon's. Calico's pods next to
    // its IPAM block's blackhole or its addressed tunnel are Calico's even
    // before the first route to a peer (decided in the lone pass).
    let markers = felix > 0
        || bird_answered
        || (bird_routes > 0 && (cali > 0 || blackholes > 0))
        || (cali > 0 && (blackholes > 0 || idle_tunnel.is_some()))
        || (blackholes > 0 && idle_tunnel.is_some());
    if live_tunnel.is_none() && !markers {
        return None;
    }

    let mut evidence = Vec::new();
    let mut uses = Vec::new();
    let mut unsure = false;
    let plugin = match (live_tunnel, lone) {
        (Some(t), _) => {
            evidence.push(tunnel_evidence(t));
            calico_tunnel_plugin(t.tunnel)
        }
        (None, false) if bgp_in_use(s) => Plugin::CalicoBgp,
        // Calico is here but shows no mode yet: decided in the lone pass.
        (None, false) => return None,
        (None, true) => match idle_tunnel {
            Some(idle) => {
                evidence.push(tunnel_evidence(idle));
                uses.push(idle.link.name.as_str());
                calico_tunnel_plugin(idle.tunnel)
            }
            // No tunnel device at all: BGP mode, before the first peer. When
            // BIRD has peers and none is up, the node is not alone: its
            // sessions are down and no route shows the mode (calico#2483).
            None => {
                let (total, up) = s.bird.bgp_sessions();
                if total > 0 && up == 0 {
                    unsure = true;
                    evidence.push(Evidence::new(
                        "bgp-down",
                        format!(
                            "BIRD has {total} BGP peers and none is Established, no Calico tunnel and no route to \
                             a peer: the sessions are down, BGP mode is assumed, not seen"
                        ),
                    ));
                } else {
                    evidence
                        .push(Evidence::new("no-peers", "no Calico tunnel and no BGP peer yet: a lone node"));
                }
                Plugin::CalicoBgp
            }
        },
    };
    if felix > 0 {
        evidence.push(Evidence::new("routes", format!("{felix} routes written by Calico Felix (proto 80)")));
    }
    if bird_answered {
        let (total, up) = s.bird.bgp_sessions();
        evidence.push(Evidence::new(
            "bird",
            format!("Calico's BIRD answers: {up} of {total} BGP sessions Established"),
        ));
    }
    if bird_routes > 0 {
        evidence.push(Evidence::new(
            "routes",
            format!("{bird_routes} routes to other nodes installed by BIRD (proto bird)"),
        ));
    }
    let direct = count(s, |g| {
        (g.protocol == PROTO_BIRD || g.protocol == PROTO_FELIX)
            && g.carries_traffic()
            && !g.default
            && g.next_hop == NextHop::Gateway
            && !is_tunnel_device(g.device.as_deref())
    });
    if matches!(plugin, Plugin::CalicoIpip | Plugin::CalicoVxlan) && direct > 0 {
        evidence.push(Evidence::new(
            "cross-subnet",
            format!("{direct} direct routes beside the tunnel routes: CrossSubnet, still an overlay"),
        ));
    }
    if plugin == Plugin::CalicoBgp {
        evidence.extend(bgp_socket_evidence(s));
    }
    if blackholes > 0 {
        evidence
            .push(Evidence::new("routes", format!("{blackholes} blackhole routes for Calico IPAM blocks")));
    }
    if cali > 0 {
        evidence.push(Evidence::new("veths", format!("{cali} cali* pod veths")));
    }
    Some(Datapath { plugin, evidence, lone, unsure, uses })
}

fn calico_tunnel_plugin(tunnel: Tunnel) -> Plugin {
    if tunnel == Tunnel::CalicoIpip {
        Plugin::CalicoIpip
    } else {
        Plugin::CalicoVxlan
    }
}

/// Flannel: its VXLAN device, or host-gw routes next to subnet.env.
fn flannel<'a>(s: &NodeSnapshot, tunnels: &'a [TunnelState<'a>], lone: bool) -> Option<Datapath<'a>> {
    let wanted = if lone { Use::Idle } else { Use::Live };
    let devices: Vec<&TunnelState> =
        tunnels.iter().filter(|t| t.tunnel == Tunnel::Flannel && t.usage == wanted).collect();
    let env = s.flannel_subnet.value();
    let env_evidence = env.map(|env| {
        let (network, subnet) = match (&env.network, &env.ipv6_network) {
            (Some(_), _) | (None, None) => (&env.network, &env.subnet),
            (None, Some(_)) => (&env.ipv6_network, &env.ipv6_subnet),
        };
        Evidence::new(
            "flannel-subnet",
            format!("subnet.env: network {}, subnet {}", or_dash(network), or_dash(subnet)),
        )
    });
    if devices.is_empty() {
        if lone {
            return None;
        }
        let host_gw = count(s, |g| {
            g.protocol == PROTO_BOOT && !g.default && g.next_hop == NextHop::Gateway && g.carries_traffic()
        });
        if host_gw == 0 || env.is_none() {
            return None;
        }
        let mut evidence = vec![Evidence::new(
            "routes",
            format!("{host_gw} routes via node addresses (proto boot), no flannel VXLAN device"),
        )];
        evidence.extend(env_evidence);
        return Some(Datapath::new(Plugin::FlannelHostGw, evidence));
    }

    let mut evidence: Vec<Evidence> = devices.iter().map(|t| tunnel_evidence(t)).collect();
    evidence.extend(env_evidence);
    let cali = count_links(s, "cali");
    let felix = routes_by_protocol(s, PROTO_FELIX);
    // Canal: Calico's veths and policy over flannel's VXLAN, without BGP.
    let plugin = if (cali > 0 || felix > 0) && !bgp_in_use(s) && matches!(s.bird, BirdState::Absent) {
        evidence.push(Evidence::new("veths", format!("{cali} cali* pod veths (Calico policy over flannel)")));
        Plugin::Canal
    } else {
        Plugin::FlannelVxlan
    };
    let uses = if lone { devices.iter().map(|t| t.link.name.as_str()).collect() } else { vec![] };
    Some(Datapath { plugin, evidence, lone, unsure: false, uses })
}

fn cilium<'a>(s: &NodeSnapshot, tunnels: &'a [TunnelState<'a>]) -> Option<Datapath<'a>> {
    let host = s.link("cilium_host")?;
    let tunnel = tunnels
        .iter()
        .find(|t| t.usage == Use::Live && matches!(t.tunnel, Tunnel::CiliumVxlan | Tunnel::CiliumGeneve));
    let mut evidence = vec![Evidence::new(
        "cilium-host",
        format!(
            "cilium_host is present ({}), with {} lxc* pod veths",
            if host.up { "up" } else { "down" },
            count_links(s, "lxc")
        ),
    )];
    // In tunnel mode cilium-agent routes every pod CIDR, its own and the
    // peers', via the router IP on cilium_host; in native routing only its
    // own (the peers' go to their node addresses, or to the network).
    let via_host = count(s, |g| {
        g.device.as_deref() == Some("cilium_host")
            && g.next_hop == NextHop::Gateway
            && g.route_type == RouteType::Unicast
            && !g.default
    });
    let mut weak = false;
    let plugin = match tunnel {
        Some(t) => {
            evidence.push(tunnel_evidence(t));
            if t.tunnel == Tunnel::CiliumVxlan {
                Plugin::CiliumVxlan
            } else {
                Plugin::CiliumGeneve
            }
        }
        None if via_host > 1 => {
            // The tunnel device is not in sight (a partial report, or down
            // while the routes stay): the routes say tunnel mode, not which
            // protocol. VXLAN is Cilium's default.
            evidence.push(Evidence::new(
                "tunnel-routes",
                format!(
                    "{via_host} pod CIDRs routed via cilium_host, other nodes' among them: tunnel mode, \
                     but no cilium_vxlan or cilium_geneve is live (VXLAN, Cilium's default, assumed)"
                ),
            ));
            weak = true;
            Plugin::CiliumVxlan
        }
        None => {
            evidence.push(Evidence::new(
                "native-routing",
                "no live cilium_vxlan or cilium_geneve: native routing",
            ));
            evidence.extend(bgp_socket_evidence(s));
            evidence.extend(cilium_bgp_sessions(s));
            Plugin::CiliumNative
        }
    };
    Some(Datapath { plugin, evidence, lone: weak, unsure: false, uses: vec![] })
}

fn kube_router<'a>(s: &NodeSnapshot, tunnels: &'a [TunnelState<'a>]) -> Option<Datapath<'a>> {
    let bridge = s.link("kube-bridge");
    let routes = routes_by_protocol(s, PROTO_KUBE_ROUTER);
    if bridge.is_none() && routes == 0 {
        return None;
    }
    let mut evidence = Vec::new();
    if let Some(b) = bridge {
        evidence.push(Evidence::new(
            "bridge",
            format!("kube-bridge is present ({})", if b.up { "up" } else { "down" }),
        ));
    }
    if routes > 0 {
        evidence.push(Evidence::new("routes", format!("{routes} routes written by kube-router (proto 17)")));
    }
    let tun = tunnels.iter().filter(|t| t.tunnel == Tunnel::KubeRouter && t.usage == Use::Live).count();
    if tun > 0 {
        evidence.push(Evidence::new(
            "tunnel-device",
            format!("{tun} tun-* overlay tunnels to peers in other subnets"),
        ));
    }
    evidence.extend(bgp_socket_evidence(s));
    evidence.push(Evidence::new(
        "bgp-sessions",
        "kube-router keeps its BGP sessions in its embedded GoBGP, behind kube-router's own gRPC API: the agent \
         does not read them (no BIRD socket), so no BGP peers are reported; the TCP 179 sockets are what it sees",
    ));
    Some(Datapath::new(Plugin::KubeRouter, evidence))
}

/// Cilium's BGP control plane runs GoBGP inside cilium-agent: its sessions
/// show only through cilium-agent's API socket, which the agent does not
/// mount. Said when BGP shows on TCP 179, so a silent peer list is not
/// read as "no sessions".
fn cilium_bgp_sessions(s: &NodeSnapshot) -> Option<Evidence> {
    let b = &s.bgp_sockets;
    (b.listening || b.established_inbound > 0 || b.established_outbound > 0).then(|| {
        Evidence::new(
            "bgp-sessions",
            "Cilium's BGP control plane keeps its sessions inside cilium-agent (`cilium bgp peers`, through \
             /var/run/cilium/cilium.sock, which the agent does not mount): no BGP peers are reported; the TCP \
             179 sockets are what the agent sees",
        )
    })
}

fn is_tunnel_device(device: Option<&str>) -> bool {
    device.is_some_and(|d| tunnel_of(d.trim_end_matches('*')).is_some())
}

fn bgp_socket_evidence(s: &NodeSnapshot) -> Option<Evidence> {
    let b = &s.bgp_sockets;
    if !b.listening && b.established_inbound == 0 && b.established_outbound == 0 {
        return None;
    }
    Some(Evidence::new(
        "bgp-socket",
        format!(
            "TCP 179: {}{} inbound and {} outbound sessions established (peers: {})",
            if b.listening { "listening, " } else { "" },
            b.established_inbound,
            b.established_outbound,
            if b.peers.is_empty() { "-".to_owned() } else { b.peers.join(", ") }
        ),
    ))
}

/// A config is loaded but no datapath of it is live.
fn config_only(s: &NodeSnapshot, file: &CniFile, family: Family, stale: Vec<Evidence>) -> Detection {
    let config = Evidence::new("cni-config", format!("the runtime loads {}", describe_file(file)));
    match family {
        Family::Terway => detection(Plugin::Terway, Confidence::Medium, vec![config], stale),
        // A Calico node without any tunnel device is in BGP mode, even before
        // its first peer or pod.
        Family::Calico if count_links(s, "cali") > 0 || !s.calico_nodename.is_absent() => {
            let mut evidence = vec![
                config,
                Evidence::new(
                    "no-peers",
                    format!(
                        "no Calico tunnel and no BGP routes yet ({} cali* veths): a lone node or peers not up",
                        count_links(s, "cali")
                    ),
                ),
            ];
            evidence.extend(bgp_socket_evidence(s));
            detection(Plugin::CalicoBgp, Confidence::Low, evidence, stale)
        }
        // flanneld's device is here but unconfigured (no address, no route):
        // flannel is the CNI, its daemon is not (yet) doing its job.
        Family::Flannel if !flannel_devices(s).is_empty() => {
            let names = flannel_devices(s);
            let evidence = vec![
                config,
                Evidence::new(
                    "tunnel-device",
                    format!(
                        "{} present but carrying no route and without an address: flanneld has not configured \
                         it (is it running?)",
                        names.join(", ")
                    ),
                ),
            ];
            // The config's own device is not a leftover of a past CNI.
            let stale = stale
                .into_iter()
                .filter(|e| !names.iter().any(|n| e.detail.starts_with(n.as_str())))
                .collect();
            detection(Plugin::FlannelVxlan, Confidence::Low, evidence, stale)
        }
        family => {
            let evidence = vec![
                config,
                Evidence::new(
                    "no-datapath",
                    format!("no live {} datapath on this node: is its agent running?", family.name()),
                ),
            ];
            unknown(evidence, stale)
        }
    }
}

fn flannel_devices(s: &NodeSnapshot) -> Vec<String> {
    tunnel_states(s).iter().filter(|t| t.tunnel == Tunnel::Flannel).map(|t| t.link.name.clone()).collect()
}

/// Neither a live datapath nor a loadable config.
fn no_cni(s: &NodeSnapshot, stale: Vec<Evidence>) -> Detection {
    let broken: Vec<Evidence> = s
        .cni
        .files
        .iter()
        .filter(|f| f.loadable)
        .filter_map(|f| {
            let error = f.error.as_deref()?;
            Some(Evidence::new("cni-config", format!("{} cannot be used: {error}", f.name)))
        })
        .collect();
    if !broken.is_empty() {
        return unknown(broken, stale);
    }
    // Nothing seen at all is not proof of a host network: the collection
    // may have been empty.
    if s.links.is_empty() {
        let evidence = vec![Evidence::new("empty", "the snapshot has no network links at all")];
        return detection(Plugin::None, Confidence::Low, evidence, stale);
    }
    // Pods on a CNI's veths or bridge are not on the host network, whatever
    // is missing around them (a config being rewritten, a half-done
    // migration, an agent that crashed): say so instead of guessing.
    let devices = cni_devices(s);
    if !devices.is_empty() {
        // The devices first: ScenarioDetected quotes the first evidence.
        let evidence = vec![
            Evidence::new(
                "pod-devices",
                format!(
                    "devices of a CNI ({}) but no CNI config and no live datapath: a CNI half installed, \
                     half removed or down",
                    devices.join(", ")
                ),
            ),
            Evidence::new("cni-config", no_config_detail(s)),
        ];
        return unknown(evidence, stale);
    }
    let mut evidence = vec![
        Evidence::new("cni-config", no_config_detail(s)),
        Evidence::new("no-datapath", "no CNI tunnel, CNI device or CNI routes: pods use the host network"),
    ];
    let daemon_routes: u64 =
        [PROTO_BIRD, PROTO_BGP, PROTO_ZEBRA].iter().map(|p| routes_by_protocol(s, *p)).sum();
    if daemon_routes > 0 {
        evidence.push(Evidence::new(
            "routes",
            format!("{daemon_routes} routes from a routing daemon, not from a CNI"),
        ));
    }
    // Established BGP sessions with nothing of a CNI around: a host routing
    // daemon, or a CNI's BGP speaker whose datapath is gone. Not sure.
    let sessions = s.bgp_sockets.established_inbound + s.bgp_sockets.established_outbound;
    evidence.extend(bgp_socket_evidence(s));
    // A CNI tunnel left down beside no config: flannel removed, or flannel
    // broken before it configured anything. Host network, but not sure.
    let dead_tunnels = stale.iter().any(|e| e.signal == "stale-device");
    let confidence = if sessions > 0 || dead_tunnels {
        Confidence::Low
    } else if daemon_routes > 0 || !stale.is_empty() {
        Confidence::Medium
    } else {
        Confidence::High
    };
    detection(Plugin::None, confidence, evidence, stale)
}

/// Pod devices and bridges the CNIs create, and their tunnels that are up
/// (the kernel's fallback `tunl0` aside). A tunnel that is down is a
/// leftover, listed as stale, not a sign of a CNI at work.
fn cni_devices(s: &NodeSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["cali", "lxc"] {
        let n = count_links(s, prefix);
        if n > 0 {
            out.push(format!("{n} {prefix}* veths"));
        }
    }
    for name in ["cni0", "kube-bridge", "cilium_host"] {
        if s.link(name).is_some() {
            out.push(name.to_owned());
        }
    }
    out.extend(
        tunnel_states(s)
            .iter()
            .filter(|t| t.usage != Use::Fallback && t.link.up)
            .map(|t| t.link.name.clone()),
    );
    out
}

fn no_config_detail(s: &NodeSnapshot) -> String {
    match (&s.cni.error, s.cni.present) {
        (Some(e), _) => format!("CNI config directory unreadable: {e}"),
        (None, false) => "no /etc/cni/net.d under the host root".to_owned(),
        (None, true) => "no loadable CNI config in /etc/cni/net.d".to_owned(),
    }
}

fn stale_devices(tunnels: &[TunnelState], used: &[&str]) -> Vec<Evidence> {
    tunnels
        .iter()
        .filter_map(|t| {
            let why = match &t.usage {
                Use::Dead(why) => *why,
                Use::Idle if !used.contains(&t.link.name.as_str()) => "is up but no route goes through it",
                _ => return None,
            };
            Some(Evidence::new("stale-device", format!("{} {why}: left by a past CNI?", t.link.name)))
        })
        .collect()
}

fn stale_configs(s: &NodeSnapshot) -> Vec<Evidence> {
    let primary = s.cni.primary().map(|f| f.name.as_str());
    let mut out = Vec::new();
    for f in &s.cni.files {
        if !f.loadable && f.name.contains(".conf") {
            out.push(Evidence::new(
                "stale-config",
                format!("{} is a renamed backup, ignored by the runtime", f.name),
            ));
        } else if f.loadable && f.error.is_none() && Some(f.name.as_str()) != primary {
            out.push(Evidence::new(
                "stale-config",
                format!("{} is ignored: the runtime loads only {}", f.name, primary.unwrap_or("-")),
            ));
        }
    }
    out
}

fn describe_file(f: &CniFile) -> String {
    format!("{} (plugins: {})", f.name, crate::text::listed(&f.plugin_types, ", "))
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// What of the on-prem CNIs is on this node: loadable configs, tunnel
/// devices, BIRD's socket. For the `ForeignCNIConfig` check on cloud nodes.
pub fn on_prem_cni_artifacts(s: &NodeSnapshot) -> Vec<String> {
    let mut found: Vec<String> = s
        .cni
        .files
        .iter()
        .filter(|f| f.loadable && f.error.is_none() && config_family(f).is_on_prem_cni())
        .map(|f| format!("CNI config {}", f.name))
        .collect();
    found.extend(
        tunnel_states(s)
            .iter()
            .filter(|t| t.usage != Use::Fallback)
            .map(|t| format!("tunnel device {}", t.link.name)),
    );
    match &s.bird {
        BirdState::Absent => {}
        BirdState::NotSocket { path }
        | BirdState::NoAnswer { path, .. }
        | BirdState::Answered { path, .. } => found.push(format!("BIRD socket {path}")),
    }
    found
}

/// Terway's CNI configs (`10-terway.conf*`, or any config of the terway plugin).
pub fn terway_configs(s: &NodeSnapshot) -> Vec<String> {
    s.cni
        .files
        .iter()
        .filter(|f| {
            f.name.starts_with("10-terway.conf") || (f.loadable && config_family(f) == Family::Terway)
        })
        .map(|f| f.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use terway_hybrid_api::snapshot::{BirdProtocol, RouteSummary};
    use terway_hybrid_api::Scenario;

    fn link(name: &str, up: bool, addresses: &[&str]) -> Link {
        Link {
            name: name.to_owned(),
            up,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            ..Link::default()
        }
    }

    fn group(protocol: u8, device: &str, next_hop: NextHop, count: u64) -> RouteGroup {
        RouteGroup { protocol, device: Some(device.to_owned()), next_hop, count, ..RouteGroup::default() }
    }

    fn node(links: Vec<Link>, groups: Vec<RouteGroup>) -> NodeSnapshot {
        NodeSnapshot {
            links,
            routes: RouteSummary { groups, ..RouteSummary::default() },
            ..NodeSnapshot::default()
        }
    }

    #[test]
    fn tunl0_with_bird_routes_is_live_without_an_address() {
        let s = node(
            vec![link("eth0", true, &["10.0.0.5/24"]), link("tunl0", true, &[])],
            vec![group(PROTO_BIRD, "tunl0", NextHop::Onlink, 3)],
        );
        let d = classify(&s);
        assert_eq!((d.plugin, d.scenario), (Plugin::CalicoIpip, Scenario::Overlay), "{d:?}");
        assert!(d.stale.is_empty(), "{d:?}");
    }

    #[test]
    fn a_link_local_address_does_not_make_a_tunnel_addressed() {
        assert!(is_link_local("fe80::4cfd:7cff:fe9e:aa63/64"));
        assert!(!is_link_local("fd00:10:244::/128"));
        assert!(!is_link_local("10.244.0.0/32"));
        let s = node(vec![link("flannel.1", true, &["fe80::1/64"])], vec![]);
        assert_eq!(
            tunnel_states(&s)[0].usage,
            Use::Dead("is up but has no address and no route goes through it")
        );
    }

    #[test]
    fn old_flannel_routes_its_network_through_the_connected_route() {
        assert!(is_network_wide_v4("20.1.36.0/16"));
        assert!(!is_network_wide_v4("10.244.0.0/32"));
        assert!(!is_network_wide_v4("fe80::1/64"));
        let s = node(
            vec![link("flannel.1", true, &["20.1.36.0/16"])],
            vec![group(PROTO_KERNEL, "flannel.1", NextHop::Direct, 1)],
        );
        assert_eq!(tunnel_states(&s)[0].usage, Use::Live);
    }

    #[test]
    fn pods_on_cni_devices_without_config_are_unknown_but_a_down_leftover_is_not() {
        let pods =
            node(vec![link("eth0", true, &["10.0.0.5/24"]), link("cali8504ae9df2a", true, &[])], vec![]);
        let d = classify(&pods);
        assert_eq!(d.plugin, Plugin::Unknown, "{d:?}");
        assert_eq!(d.evidence[0].signal, "pod-devices", "{d:?}");

        let leftover = node(
            vec![link("eth0", true, &["10.0.0.5/24"]), link("flannel.1", false, &["10.244.0.0/32"])],
            vec![],
        );
        let d = classify(&leftover);
        assert_eq!((d.plugin, d.confidence), (Plugin::None, Confidence::Low), "{d:?}");
        assert!(d.stale.iter().any(|e| e.detail.contains("flannel.1 is down")), "{d:?}");
    }

    #[test]
    fn calico_with_every_bgp_session_down_is_not_a_lone_node() {
        let protocol = |ip: &str, established: bool| BirdProtocol {
            name: format!("Mesh_{ip}"),
            proto: "BGP".to_owned(),
            state: "start".to_owned(),
            info: if established { "Established" } else { "Connect" }.to_owned(),
            established,
            ..Default::default()
        };
        let mut s = node(vec![link("bond1.2", true, &["10.133.146.135/26"])], vec![]);
        s.bird = BirdState::Answered {
            path: "/var/run/calico/bird.ctl".to_owned(),
            protocols: vec![protocol("10_133_146_218", false), protocol("10_133_146_23", false)],
        };
        let d = classify(&s);
        assert_eq!((d.plugin, d.confidence), (Plugin::CalicoBgp, Confidence::Low), "{d:?}");
        assert_eq!(d.evidence[0].signal, "bgp-down", "{d:?}");

        s.bird = BirdState::Answered { path: "/var/run/calico/bird.ctl".to_owned(), protocols: vec![] };
        assert_eq!(classify(&s).evidence[0].signal, "no-peers");
    }

    /// kube-router and Cilium's BGP sessions are not readable: the evidence
    /// says so instead of leaving an empty peer list unexplained.
    #[test]
    fn unreadable_bgp_sessions_are_said_so() {
        let says = |d: &Detection| d.evidence.iter().any(|e| e.signal == "bgp-sessions");
        let kr = node(vec![link("kube-bridge", true, &["10.244.1.1/24"])], vec![]);
        let d = classify(&kr);
        assert_eq!(d.plugin, Plugin::KubeRouter, "{d:?}");
        assert!(says(&d) && d.evidence.iter().any(|e| e.detail.contains("GoBGP")), "{d:?}");

        let mut cilium = node(
            vec![link("cilium_host", true, &["10.42.5.171/32"])],
            vec![group(PROTO_KERNEL, "cilium_host", NextHop::Gateway, 1)],
        );
        assert!(!says(&classify(&cilium)), "no BGP in sight, nothing to explain");
        cilium.bgp_sockets.established_outbound = 1;
        let d = classify(&cilium);
        assert_eq!(d.plugin, Plugin::CiliumNative, "{d:?}");
        assert!(says(&d) && d.evidence.iter().any(|e| e.detail.contains("cilium-agent")), "{d:?}");
    }

    #[test]
    fn cilium_peer_cidrs_via_cilium_host_are_tunnel_mode() {
        let s = node(
            vec![link("cilium_host", true, &["10.42.5.171/32"])],
            vec![group(PROTO_KERNEL, "cilium_host", NextHop::Gateway, 6)],
        );
        let d = classify(&s);
        assert_eq!((d.plugin, d.confidence), (Plugin::CiliumVxlan, Confidence::Low), "{d:?}");
        let own_only = node(
            vec![link("cilium_host", true, &["10.42.5.171/32"])],
            vec![group(PROTO_KERNEL, "cilium_host", NextHop::Gateway, 1)],
        );
        assert_eq!(classify(&own_only).plugin, Plugin::CiliumNative);
    }
}
