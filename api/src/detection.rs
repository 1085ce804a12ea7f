//! Detection: the answer `classify` gives for one node, with its reasons.

use crate::check::CheckResult;
use crate::cross_site::CloudNetwork;
use crate::vocabulary::{Confidence, Plugin, Scenario};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    pub scenario: Scenario,
    pub plugin: Plugin,
    pub confidence: Confidence,
    /// What decided the answer, strongest first.
    pub evidence: Vec<Evidence>,
    /// Leftovers of a past CNI that were seen and discounted.
    #[serde(default)]
    pub stale: Vec<Evidence>,
}

/// One observed signal and what it showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// A short kebab-case name of the kind of signal (`vxlan-device`, `routes`, `cni-config`, ...).
    #[schemars(length(max = 64))]
    pub signal: String,
    #[schemars(length(max = 4096))]
    pub detail: String,
}

impl Evidence {
    pub fn new(signal: &str, detail: impl Into<String>) -> Self {
        Evidence { signal: signal.to_owned(), detail: detail.into() }
    }
}

/// One BGP session of the node's routing daemon (Calico's BIRD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    /// The neighbour's address (the protocol's name when BIRD does not say).
    #[schemars(length(max = 64))]
    pub peer: String,
    /// `Established`, `Active`, `Connect`, `Idle`, ... as BIRD says.
    #[schemars(length(max = 32))]
    pub state: String,
    pub imported_routes: u64,
    /// The first prefixes the session imported (at most 16), so a check can
    /// see whether the VBR sends the VPC's route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    pub imported_prefixes: Vec<String>,
}

impl BgpPeer {
    pub fn is_up(&self) -> bool {
        self.state == "Established"
    }
}

/// What `terway-hybrid-agent detect --output json` prints (docs/contracts.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDetection {
    #[serde(flatten)]
    pub detection: Detection,
    pub checks: Vec<CheckResult>,
    pub kernel_version: String,
    /// The node's BGP sessions (BIRD), at most 32.
    #[serde(default)]
    pub bgp_peers: Vec<BgpPeer>,
    /// The MTU this node's pods use, as the CNI's devices show it
    /// (docs/contracts.md §2); absent when unseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_mtu: Option<u32>,
    /// A cloud node's VPC and vSwitch CIDRs, from the ECS metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_network: Option<CloudNetwork>,
}
