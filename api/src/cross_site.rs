//! Cross-site readiness (docs/checks.md, "Cross-site"): what the agents learn
//! about the path between the on-prem site and the cloud, and what the
//! controller asks them to probe.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most probe targets the controller assigns one agent.
pub const MAX_PROBE_TARGETS: usize = 8;
/// Most probe results one report carries (host and pod paths of every target).
pub const MAX_PROBE_RESULTS: usize = 16;
/// Most prefixes a report lists per BGP session.
pub const MAX_BGP_PREFIXES: usize = 16;

/// A cloud node's network, as the ECS metadata service gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNetwork {
    /// `vpc-cidr-block` of the instance's VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub vpc_cidr: Option<String>,
    /// `vswitch-cidr-block` of the instance's vSwitch (IPv4, then IPv6 when it has one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 64)))]
    pub vswitch_cidrs: Vec<String>,
}

/// Which network a probe crosses.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ProbePath {
    /// Node address to node address: the leased line or VPN and its routing.
    #[default]
    Host,
    /// Pod address to pod address, through the responder DaemonSet.
    Pod,
}

/// A peer on the other site that the controller asks a node's agent to probe
/// (`spec.probeTargets` of the node's NodeNetworkReport, written by the controller).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTarget {
    /// The peer's node.
    #[schemars(length(max = 253))]
    pub node: String,
    /// `IP:PORT` the peer answers probes on.
    #[schemars(length(max = 64))]
    pub address: String,
    #[serde(default)]
    pub path: ProbePath,
}

/// One probe's outcome, as the agent reports it (`status.probes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// The peer's node.
    #[schemars(length(max = 253))]
    pub node: String,
    /// `IP:PORT` probed.
    #[schemars(length(max = 64))]
    pub address: String,
    #[serde(default)]
    pub path: ProbePath,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// The largest IP packet, headers included, that reached the peer with
    /// fragmentation forbidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_mtu: Option<u32>,
    /// The route the kernel chose: `via GATEWAY dev DEVICE proto PROTOCOL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub route: Option<String>,
    /// Why a figure is missing, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub note: Option<String>,
    pub probed: Time,
}

/// `spec.crossSite` of TerwayRollout: what the cross-site checks compare
/// against and whether the rollout waits on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossSite {
    /// On-prem ranges the cluster cannot show (the IDC's own networks), as
    /// CIDRs: `CIDROverlap` keeps them apart from the VPC and the Services.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 64)))]
    pub on_prem_networks: Vec<String>,
    /// The BGP addresses of the Virtual Border Router: `BGPPeers` wants an
    /// Established session to each from some on-prem node.
    #[serde(default)]
    #[schemars(length(max = 8), inner(length(max = 64)))]
    pub vbr_peers: Vec<String>,
    /// A wave is healthy only when its pods reach the on-prem pods.
    #[serde(default)]
    pub gate_waves: bool,
    /// Peers on the other site each agent probes (1 to 8).
    #[serde(default = "default_peers_per_node")]
    #[schemars(range(min = 1, max = 8))]
    pub peers_per_node: u32,
}

impl Default for CrossSite {
    fn default() -> Self {
        CrossSite {
            on_prem_networks: vec![],
            vbr_peers: vec![],
            gate_waves: false,
            peers_per_node: default_peers_per_node(),
        }
    }
}

fn default_peers_per_node() -> u32 {
    3
}
