//! classify: a pure function from a [`NodeSnapshot`] to a [`Detection`].
//!
//! It works in three steps (DESIGN.md §4):
//! 1. the *datapath*: tunnel devices that are up and carry routes, Cilium's
//!    host device, routes written by the CNIs' daemons (protocol numbers),
//!    BGP sessions. What is live decides.
//! 2. the *CNI config* the runtime actually loads (the first loadable file in
//!    `/etc/cni/net.d`). It confirms the datapath, or contradicts it.
//! 3. leftovers of a past CNI (a tunnel that is down or carries nothing, a
//!    renamed or shadowed config) are set aside as `stale`, so they never
//!    outvote the live network.

use terway_hybrid_api::snapshot::{
    BirdState, CniFile, Link, NextHop, RouteType, PROTO_BGP, PROTO_BIRD, PROTO_BOOT, PROTO_FELIX,
    PROTO_KUBE_ROUTER, PROTO_ZEBRA,
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

    /// A canal config holds the `calico` plugin and a flannel datapath, so
    /// canal agrees with either half.
    fn agrees_with(&self, other: &Family) -> bool {
        self == other
            || matches!(
                (self, other),
                (Family::Canal, Family::Flannel | Family::Calico)
                    | (Family::Flannel | Family::Calico, Family::Canal)
            )
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

fn tunnel_of(link: &Link) -> Option<Tunnel> {
    let n = link.name.as_str();
    Some(match n {
        "tunl0" => Tunnel::CalicoIpip,
        "vxlan.calico" | "vxlan-v6.calico" => Tunnel::CalicoVxlan,
        "cilium_vxlan" => Tunnel::CiliumVxlan,
        "cilium_geneve" => Tunnel::CiliumGeneve,
        _ if n.starts_with("flannel.") || n.starts_with("flannel-v6.") => Tunnel::Flannel,
        _ if n.starts_with("tun-") => Tunnel::KubeRouter,
        _ => return None,
    })
}

/// A tunnel device and whether it is part of the live network.
struct TunnelState<'a> {
    link: &'a Link,
    tunnel: Tunnel,
    routes: u64,
    live: bool,
    /// Why it is not live; None for the kernel's fallback `tunl0`, which
    /// exists in every namespace once the ipip module is loaded.
    stale_reason: Option<String>,
}

fn tunnel_states(s: &NodeSnapshot) -> Vec<TunnelState<'_>> {
    let cilium_host = s.link("cilium_host").is_some();
    s.links
        .iter()
        .filter_map(|link| {
            let tunnel = tunnel_of(link)?;
            // Per-peer devices share one folded route group.
            let device = if tunnel == Tunnel::KubeRouter {
                "tun-*"
            } else {
                link.name.as_str()
            };
            let routes = s.routes.carried_by(device);
            let addressed = !link.addresses.is_empty();
            let (live, stale_reason) = match tunnel {
                // Cilium encapsulates in BPF; its routes point at cilium_host.
                Tunnel::CiliumVxlan | Tunnel::CiliumGeneve => match (link.up, cilium_host) {
                    (true, true) => (true, None),
                    (false, _) => (false, Some("is down".to_owned())),
                    (true, false) => (false, Some("is up but cilium_host is gone".to_owned())),
                },
                Tunnel::CalicoIpip if !addressed && routes == 0 => (false, None),
                _ => match (link.up, routes) {
                    (false, _) => (false, Some("is down".to_owned())),
                    (true, 0) => (false, Some("is up but no route goes through it".to_owned())),
                    (true, _) if tunnel == Tunnel::CalicoIpip && !addressed => {
                        (false, Some("carries routes but has no address".to_owned()))
                    }
                    (true, _) => (true, None),
                },
            };
            Some(TunnelState {
                link,
                tunnel,
                routes,
                live,
                stale_reason,
            })
        })
        .collect()
}

/// Non-default unicast routes written by `protocol`.
fn routes_by_protocol(s: &NodeSnapshot, protocol: u8) -> u64 {
    s.routes
        .groups
        .iter()
        .filter(|g| g.protocol == protocol && !g.default && g.count > 0)
        .map(|g| g.count)
        .sum()
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

fn describe_file(f: &CniFile) -> String {
    format!("{} (plugins: {})", f.name, f.plugin_types.join(", "))
}

/// What the live datapath shows, before the config is consulted.
struct Datapath {
    plugin: Plugin,
    evidence: Vec<Evidence>,
}

pub fn classify(s: &NodeSnapshot) -> Detection {
    let tunnels = tunnel_states(s);
    let mut stale = stale_devices(&tunnels);
    stale.extend(stale_configs(s));

    let candidates = datapath_candidates(s, &tunnels);
    let primary = s.cni.primary();
    let config = primary.map(|f| (f, config_family(f)));

    // Two live datapaths of different projects: we cannot tell which one the
    // pods use, so we say so instead of guessing.
    if candidates.len() > 1 {
        let names: Vec<String> = candidates.iter().map(|c| c.plugin.as_str().to_owned()).collect();
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
            datapath.evidence.push(Evidence::new(
                "cni-config",
                format!("the runtime loads {}", describe_file(file)),
            ));
            detection(datapath.plugin, Confidence::High, datapath.evidence, stale)
        }
        (Some(mut datapath), None) => {
            datapath
                .evidence
                .push(Evidence::new("cni-config", no_config_detail(s)));
            detection(datapath.plugin, Confidence::Medium, datapath.evidence, stale)
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
    Detection {
        scenario: plugin.scenario(),
        plugin,
        confidence,
        evidence,
        stale,
    }
}

fn unknown(evidence: Vec<Evidence>, stale: Vec<Evidence>) -> Detection {
    detection(Plugin::Unknown, Confidence::Low, evidence, stale)
}

fn no_config_detail(s: &NodeSnapshot) -> String {
    match (&s.cni.error, s.cni.present) {
        (Some(e), _) => format!("CNI config directory unreadable: {e}"),
        (None, false) => "no /etc/cni/net.d under the host root".to_owned(),
        (None, true) => "no loadable CNI config in /etc/cni/net.d".to_owned(),
    }
}

/// Every CNI whose datapath is live, with the evidence for it.
fn datapath_candidates(s: &NodeSnapshot, tunnels: &[TunnelState]) -> Vec<Datapath> {
    let live = |t: Tunnel| tunnels.iter().filter(move |x| x.tunnel == t && x.live);
    let tunnel_evidence = |t: &TunnelState| {
        let what = match &t.link.vxlan {
            Some(v) => format!(
                "vxlan VNI {} port {}{}",
                v.vni,
                v.port,
                if v.flow_based { ", flow-based" } else { "" }
            ),
            None => t.link.kind.clone().unwrap_or_else(|| "device".to_owned()),
        };
        let routes = match t.tunnel {
            Tunnel::CiliumVxlan | Tunnel::CiliumGeneve => "encapsulation in BPF".to_owned(),
            _ => format!("{} routes through it", t.routes),
        };
        Evidence::new(
            "tunnel-device",
            format!("{} is up ({what}), {routes}", t.link.name),
        )
    };
    let mut out = Vec::new();

    // Calico: its tunnels, Felix's routes (proto 80), BIRD on its socket.
    let calico_ipip: Vec<_> = live(Tunnel::CalicoIpip).collect();
    let calico_vxlan: Vec<_> = live(Tunnel::CalicoVxlan).collect();
    let felix = routes_by_protocol(s, PROTO_FELIX);
    let bird_routes = routes_by_protocol(s, PROTO_BIRD);
    let (bgp_total, bgp_up) = s.bird.bgp_sessions();
    let mut calico = Vec::new();
    calico.extend(
        calico_ipip
            .iter()
            .chain(&calico_vxlan)
            .map(|t| tunnel_evidence(t)),
    );
    if felix > 0 {
        calico.push(Evidence::new(
            "routes",
            format!("{felix} routes written by Calico Felix (proto 80)"),
        ));
    }
    let bird_answered = matches!(s.bird, BirdState::Answered { .. });
    if bird_answered {
        calico.push(Evidence::new(
            "bird",
            format!("Calico's BIRD answers: {bgp_up} of {bgp_total} BGP sessions Established"),
        ));
    }
    let calico_present = !calico.is_empty();
    if bird_routes > 0 && (calico_present || !calico_ipip.is_empty()) {
        calico.push(Evidence::new(
            "routes",
            format!("{bird_routes} routes installed by BIRD (proto bird)"),
        ));
    }

    // Flannel: its VXLAN device, or host-gw routes next to subnet.env.
    let flannel: Vec<_> = live(Tunnel::Flannel).collect();
    let flannel_env = s.flannel_subnet.value();
    if !flannel.is_empty() {
        let mut evidence: Vec<Evidence> = flannel.iter().map(|t| tunnel_evidence(t)).collect();
        if let Some(env) = flannel_env {
            evidence.push(Evidence::new(
                "flannel-subnet",
                format!(
                    "subnet.env: network {}, subnet {}",
                    or_dash(&env.network),
                    or_dash(&env.subnet)
                ),
            ));
        }
        let cali = count_links(s, "cali");
        if calico_ipip.is_empty() && calico_vxlan.is_empty() && (cali > 0 || felix > 0) {
            // Canal: Calico's veths and policy over flannel's VXLAN.
            evidence.push(Evidence::new(
                "veths",
                format!("{cali} cali* pod veths (Calico policy)"),
            ));
            out.push(Datapath {
                plugin: Plugin::Canal,
                evidence,
            });
            return out_with_others(out, s, tunnels);
        }
        out.push(Datapath {
            plugin: Plugin::FlannelVxlan,
            evidence,
        });
    } else if let Some(env) = flannel_env {
        let host_gw = s
            .routes
            .groups
            .iter()
            .filter(|g| {
                g.protocol == PROTO_BOOT
                    && !g.default
                    && g.next_hop == NextHop::Gateway
                    && g.carries_traffic()
            })
            .map(|g| g.count)
            .sum::<u64>();
        if host_gw > 0 {
            out.push(Datapath {
                plugin: Plugin::FlannelHostGw,
                evidence: vec![
                    Evidence::new(
                        "routes",
                        format!("{host_gw} routes via node addresses (proto boot), no flannel VXLAN device"),
                    ),
                    Evidence::new(
                        "flannel-subnet",
                        format!("subnet.env: subnet {}", or_dash(&env.subnet)),
                    ),
                ],
            });
        }
    }

    if calico_present {
        let plugin = if !calico_ipip.is_empty() {
            Plugin::CalicoIpip
        } else if !calico_vxlan.is_empty() {
            Plugin::CalicoVxlan
        } else {
            Plugin::CalicoBgp
        };
        let direct = s
            .routes
            .groups
            .iter()
            .filter(|g| {
                (g.protocol == PROTO_BIRD || g.protocol == PROTO_FELIX)
                    && g.carries_traffic()
                    && !g.default
                    && g.next_hop == NextHop::Gateway
                    && !is_tunnel_device(g.device.as_deref())
            })
            .map(|g| g.count)
            .sum::<u64>();
        if plugin != Plugin::CalicoBgp && direct > 0 {
            calico.push(Evidence::new(
                "cross-subnet",
                format!("{direct} direct routes beside the tunnel routes: CrossSubnet, still an overlay"),
            ));
        }
        if plugin == Plugin::CalicoBgp {
            calico.extend(bgp_socket_evidence(s));
        }
        let blackholes = s
            .routes
            .groups
            .iter()
            .filter(|g| {
                g.route_type == RouteType::Blackhole
                    && (g.protocol == PROTO_BIRD || g.protocol == PROTO_FELIX)
            })
            .map(|g| g.count)
            .sum::<u64>();
        if blackholes > 0 {
            calico.push(Evidence::new(
                "routes",
                format!("{blackholes} blackhole routes for Calico IPAM blocks"),
            ));
        }
        out.push(Datapath {
            plugin,
            evidence: calico,
        });
    }
    out_with_others(out, s, tunnels)
}

/// Cilium and kube-router, which share no device with the others.
fn out_with_others(mut out: Vec<Datapath>, s: &NodeSnapshot, tunnels: &[TunnelState]) -> Vec<Datapath> {
    if let Some(host) = s.link("cilium_host") {
        let tunnel = tunnels
            .iter()
            .find(|t| t.live && matches!(t.tunnel, Tunnel::CiliumVxlan | Tunnel::CiliumGeneve));
        let mut evidence = vec![Evidence::new(
            "cilium-host",
            format!(
                "cilium_host is present ({}), with {} lxc* pod veths",
                up_down(host.up),
                count_links(s, "lxc")
            ),
        )];
        let plugin = match tunnel {
            Some(t) => {
                let v = t.link.vxlan.as_ref();
                evidence.push(Evidence::new(
                    "tunnel-device",
                    format!(
                        "{} is up{}",
                        t.link.name,
                        v.map(|v| format!(", port {}, flow-based: {}", v.port, v.flow_based))
                            .unwrap_or_default()
                    ),
                ));
                if t.tunnel == Tunnel::CiliumVxlan {
                    Plugin::CiliumVxlan
                } else {
                    Plugin::CiliumGeneve
                }
            }
            None => {
                evidence.push(Evidence::new(
                    "native-routing",
                    "no live cilium_vxlan or cilium_geneve: native routing",
                ));
                evidence.extend(bgp_socket_evidence(s));
                Plugin::CiliumNative
            }
        };
        out.push(Datapath { plugin, evidence });
    }

    let kube_bridge = s.link("kube-bridge");
    let kr_routes = routes_by_protocol(s, PROTO_KUBE_ROUTER);
    if kube_bridge.is_some() || kr_routes > 0 {
        let mut evidence = Vec::new();
        if let Some(b) = kube_bridge {
            evidence.push(Evidence::new(
                "bridge",
                format!("kube-bridge is present ({})", up_down(b.up)),
            ));
        }
        if kr_routes > 0 {
            evidence.push(Evidence::new(
                "routes",
                format!("{kr_routes} routes written by kube-router (proto 17)"),
            ));
        }
        let tun = tunnels
            .iter()
            .filter(|t| t.tunnel == Tunnel::KubeRouter && t.live)
            .count();
        if tun > 0 {
            evidence.push(Evidence::new(
                "tunnel-device",
                format!("{tun} tun-* overlay tunnels to peers in other subnets"),
            ));
        }
        evidence.extend(bgp_socket_evidence(s));
        out.push(Datapath {
            plugin: Plugin::KubeRouter,
            evidence,
        });
    }
    out
}

fn is_tunnel_device(device: Option<&str>) -> bool {
    device.is_some_and(|d| {
        tunnel_of(&Link {
            name: d.trim_end_matches('*').to_owned(),
            ..Link::default()
        })
        .is_some()
    })
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
            if b.peers.is_empty() {
                "-".to_owned()
            } else {
                b.peers.join(", ")
            }
        ),
    ))
}

/// A config is loaded but no datapath of it is live.
fn config_only(s: &NodeSnapshot, file: &CniFile, family: Family, stale: Vec<Evidence>) -> Detection {
    let config = Evidence::new("cni-config", format!("the runtime loads {}", describe_file(file)));
    match family {
        Family::Terway => detection(Plugin::Terway, Confidence::Medium, vec![config], stale),
        // No tunnel and no BGP routes yet: a lone node or peers not yet up.
        // BGP mode is what a Calico node without any tunnel is.
        Family::Calico if count_links(s, "cali") > 0 || !s.calico_nodename.is_absent() => {
            let mut evidence = vec![
                config,
                Evidence::new(
                    "no-peers",
                    format!(
                        "no Calico tunnel carries routes and no BGP routes yet ({} cali* veths): a lone node or peers not up",
                        count_links(s, "cali")
                    ),
                ),
            ];
            evidence.extend(bgp_socket_evidence(s));
            detection(Plugin::CalicoBgp, Confidence::Low, evidence, stale)
        }
        family => {
            let evidence = vec![
                config,
                Evidence::new(
                    "no-datapath",
                    format!(
                        "no live {} datapath on this node: is its agent running?",
                        family.name()
                    ),
                ),
            ];
            unknown(evidence, stale)
        }
    }
}

/// Neither a live datapath nor a loadable config.
fn no_cni(s: &NodeSnapshot, stale: Vec<Evidence>) -> Detection {
    let broken: Vec<&CniFile> = s
        .cni
        .files
        .iter()
        .filter(|f| f.loadable && f.error.is_some())
        .collect();
    if !broken.is_empty() {
        let evidence = broken
            .iter()
            .map(|f| {
                Evidence::new(
                    "cni-config",
                    format!("{} cannot be used: {}", f.name, f.error.as_deref().unwrap_or("")),
                )
            })
            .collect();
        return unknown(evidence, stale);
    }
    // Nothing seen at all is not proof of a host network: the collection
    // may have been empty.
    if s.links.is_empty() {
        let evidence = vec![Evidence::new("empty", "the snapshot has no network links at all")];
        return detection(Plugin::None, Confidence::Low, evidence, stale);
    }
    let mut evidence = vec![Evidence::new("cni-config", no_config_detail(s))];
    evidence.push(Evidence::new(
        "no-datapath",
        "no CNI tunnel, CNI device or CNI routes: pods use the host network",
    ));
    let daemon_routes: u64 = [PROTO_BIRD, PROTO_BGP, PROTO_ZEBRA]
        .iter()
        .map(|p| routes_by_protocol(s, *p))
        .sum();
    let confidence = if daemon_routes > 0 || !stale.is_empty() {
        if daemon_routes > 0 {
            evidence.push(Evidence::new(
                "routes",
                format!("{daemon_routes} routes from a routing daemon, not from a CNI we know"),
            ));
        }
        Confidence::Medium
    } else {
        Confidence::High
    };
    detection(Plugin::None, confidence, evidence, stale)
}

fn stale_devices(tunnels: &[TunnelState]) -> Vec<Evidence> {
    tunnels
        .iter()
        .filter_map(|t| {
            let why = t.stale_reason.as_ref()?;
            Some(Evidence::new(
                "stale-device",
                format!("{} {why}: left by a past CNI?", t.link.name),
            ))
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
                format!(
                    "{} is ignored: the runtime loads only {}",
                    f.name,
                    primary.unwrap_or("-")
                ),
            ));
        }
    }
    out
}

fn count_links(s: &NodeSnapshot, prefix: &str) -> usize {
    s.links.iter().filter(|l| l.name.starts_with(prefix)).count()
}

fn up_down(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}
