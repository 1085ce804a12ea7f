//! NodeSnapshot: the facts the agent collects from one node, before any
//! judgement. It is what `terway-hybrid-agent snapshot` prints and what
//! `classify --snapshot` replays, so bug reports can be reproduced offline.
//!
//! Problems met while reading (a CNI file that is not JSON, a BIRD socket that
//! does not answer) are recorded as data here, never raised: they are
//! evidence too.

use crate::cross_site::MAX_BGP_PREFIXES;
use crate::detection::BgpPeer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSnapshot {
    /// `uname -r`.
    pub kernel_version: String,
    pub links: Vec<Link>,
    pub routes: RouteSummary,
    pub cni: CniDir,
    /// `/run/flannel/subnet.env`, written by flanneld.
    pub flannel_subnet: FileState<SubnetEnv>,
    /// `/var/run/calico/bird.ctl`, Calico's BIRD control socket.
    pub bird: BirdState,
    /// `/var/lib/calico/nodename`, written by calico-node on start.
    pub calico_nodename: FileState<String>,
    pub bgp_sockets: BgpSockets,
    /// `/proc/sys/net/ipv4/ip_forward` under the host root.
    pub ip_forward: FileState<bool>,
}

impl NodeSnapshot {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The rtnetlink link kind (`vxlan`, `veth`, `bridge`, `ipip`, ...); none for physical NICs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mtu: u32,
    /// Addresses in CIDR notation.
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<Vxlan>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Vxlan {
    pub vni: u32,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// `external` / collect-metadata: the VNI and peer come per packet (Cilium's BPF datapath).
    pub flow_based: bool,
}

/// The routing tables folded into counters: one group per
/// (family, protocol, device, type, next-hop kind, default or not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteSummary {
    pub ipv4: u64,
    pub ipv6: u64,
    pub groups: Vec<RouteGroup>,
}

impl RouteSummary {
    /// Routes that carry traffic through `device` (the kernel's own local
    /// and connected routes excluded): what makes a tunnel device live.
    pub fn carried_by(&self, device: &str) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.device.as_deref() == Some(device) && g.carries_traffic())
            .map(|g| g.count)
            .sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteGroup {
    pub family: Family,
    /// rtm_protocol: 2 kernel, 3 boot, 4 static, 11 zebra, 12 bird, 17 kube-router, 80 Calico Felix, 186 bgp.
    pub protocol: u8,
    /// Output device; per-pod devices are folded into one pattern (`cali*`, `lxc*`, `veth*`, `tun-*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub route_type: RouteType,
    pub next_hop: NextHop,
    /// A default route (prefix length 0).
    pub default: bool,
    pub count: u64,
    /// A few destinations of this group, for people to read.
    pub samples: Vec<String>,
}

impl RouteGroup {
    pub fn carries_traffic(&self) -> bool {
        matches!(self.route_type, RouteType::Unicast) && self.protocol != PROTO_KERNEL
    }
}

pub const PROTO_KERNEL: u8 = 2;
pub const PROTO_BOOT: u8 = 3;
pub const PROTO_ZEBRA: u8 = 11;
pub const PROTO_BIRD: u8 = 12;
/// kube-router installs its routes with protocol 17.
pub const PROTO_KUBE_ROUTER: u8 = 17;
/// Calico Felix programs its routes with protocol 80.
pub const PROTO_FELIX: u8 = 80;
pub const PROTO_BGP: u8 = 186;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteType {
    #[default]
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NextHop {
    /// On-link destination, no gateway.
    #[default]
    Direct,
    /// Via a gateway that is on a connected subnet.
    Gateway,
    /// Via a gateway the kernel is told is on-link (tunnel routes: flannel, Calico IPIP/VXLAN).
    Onlink,
    /// Several next hops (ECMP).
    Multipath,
}

/// `/etc/cni/net.d` as the container runtime sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CniDir {
    /// False when the directory does not exist.
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every file, sorted by name as the runtime sorts them.
    pub files: Vec<CniFile>,
}

impl CniDir {
    /// The network config the runtime uses: libcni loads the first file, by
    /// name, with a `.conf`, `.conflist` or `.json` extension that parses.
    pub fn primary(&self) -> Option<&CniFile> {
        self.files.iter().find(|f| f.loadable && f.error.is_none())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CniFile {
    pub name: String,
    /// Has an extension the runtime loads (`.conf`, `.conflist`, `.json`);
    /// renamed backups such as `*.cilium_bak` do not.
    pub loadable: bool,
    /// The network `name` inside the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The plugin `type`s, in chain order.
    pub plugin_types: Vec<String>,
    /// Why the file could not be read or parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A file the agent reads: absent, read and understood, or present but not
/// usable (with why).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum FileState<T> {
    #[default]
    Absent,
    Ok {
        path: String,
        value: T,
    },
    Invalid {
        path: String,
        error: String,
    },
}

impl<T> FileState<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            FileState::Ok { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, FileState::Absent)
    }
}

/// flanneld's `subnet.env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubnetEnv {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipmasq: Option<bool>,
    /// Lines that are not `KEY=value` or whose value does not parse.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What BIRD's control socket told us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BirdState {
    #[default]
    Absent,
    /// Something exists at the path but it is not a socket.
    NotSocket { path: String },
    /// The socket exists but did not answer (refused, timed out, garbled).
    NoAnswer { path: String, error: String },
    Answered {
        path: String,
        #[serde(default)]
        protocols: Vec<BirdProtocol>,
    },
}

impl BirdState {
    /// BGP protocols BIRD reported, and how many of them are Established.
    pub fn bgp_sessions(&self) -> (usize, usize) {
        match self {
            BirdState::Answered { protocols, .. } => {
                let bgp = protocols.iter().filter(|p| p.proto.eq_ignore_ascii_case("bgp"));
                let total = bgp.clone().count();
                (total, bgp.filter(|p| p.established).count())
            }
            _ => (0, 0),
        }
    }

    /// The BGP sessions BIRD reported, at most [`MAX_BGP_PEERS`], in BIRD's order.
    pub fn bgp_peers(&self) -> Vec<BgpPeer> {
        let BirdState::Answered { protocols, .. } = self else {
            return Vec::new();
        };
        protocols
            .iter()
            .filter(|p| p.proto.eq_ignore_ascii_case("bgp"))
            .take(MAX_BGP_PEERS)
            .map(|p| BgpPeer {
                // Without the details (an old BIRD), the protocol's name is
                // what identifies the session.
                peer: p.neighbor.clone().unwrap_or_else(|| p.name.clone()),
                state: p.bgp_state.clone().unwrap_or_else(|| {
                    if p.established {
                        "Established".to_owned()
                    } else {
                        p.state.clone()
                    }
                }),
                imported_routes: p.imported_routes.unwrap_or(0),
                imported_prefixes: p.imported_prefixes.iter().take(MAX_BGP_PREFIXES).cloned().collect(),
            })
            .collect()
    }
}

/// How many BGP sessions a node reports.
pub const MAX_BGP_PEERS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BirdProtocol {
    pub name: String,
    pub proto: String,
    pub state: String,
    pub info: String,
    pub established: bool,
    /// BGP only (`show protocols all`): the neighbour's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighbor: Option<String>,
    /// BGP only: the session state (`Established`, `Active`, `Connect`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp_state: Option<String>,
    /// Routes imported over all the protocol's channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_routes: Option<u64>,
    /// Routes exported over all the protocol's channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported_routes: Option<u64>,
    /// BGP only, Established sessions: the first prefixes BIRD shows as
    /// imported from this session (`show route protocol NAME`), at most
    /// [`MAX_BGP_PREFIXES`], in BIRD's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imported_prefixes: Vec<String>,
}

/// TCP sockets on the BGP port (179) in the node's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BgpSockets {
    pub listening: bool,
    /// Sessions a peer opened to us (local port 179).
    pub established_inbound: u32,
    /// Sessions we opened to a peer (remote port 179): Cilium's BGP control
    /// plane only ever shows up this way.
    pub established_outbound: u32,
    /// A few peer addresses.
    pub peers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
