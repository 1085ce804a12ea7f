//! The words every component agrees on (docs/contracts.md §1). Their serialized
//! spellings are a public contract: users filter on them, scripts match them.

use k8s_openapi::api::core::v1::Node;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The node label that makes a node a cloud node (the default
/// `cloudNodeSelector`): cloud nodes added from a node pool carry it as `true`.
pub const CLOUD_LABEL: &str = "alibabacloud.com/external";

/// A node is a cloud node when it carries every label of the selector (the
/// TerwayRollout's `cloudNodeSelector`); an empty selector makes none cloud,
/// where a label selector would match every node, because that is the safe
/// reading of a mistake.
pub fn role_of(node: &Node, cloud_selector: &BTreeMap<String, String>) -> Role {
    let labels = node.metadata.labels.as_ref();
    let matches = !cloud_selector.is_empty()
        && cloud_selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if matches {
        Role::Cloud
    } else {
        Role::OnPrem
    }
}

/// `alibabacloud.com/external=true`, the default `cloudNodeSelector`.
pub fn default_cloud_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(CLOUD_LABEL.to_owned(), "true".to_owned())])
}

/// What kind of container network the on-prem nodes run, which decides
/// whether Terway is needed on the cloud nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Overlay,
    Bgp,
    HostNetwork,
    Unknown,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Overlay => "overlay",
            Scenario::Bgp => "bgp",
            Scenario::HostNetwork => "host-network",
            Scenario::Unknown => "unknown",
        }
    }

    /// bgp and host-network pod networks do not reach cloud nodes, so those
    /// nodes need Terway; an overlay simply extends to them.
    pub fn terway_required(self) -> Option<bool> {
        match self {
            Scenario::Overlay => Some(false),
            Scenario::Bgp | Scenario::HostNetwork => Some(true),
            Scenario::Unknown => None,
        }
    }
}

/// The CNI (and its mode) that produced a node's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Plugin {
    FlannelVxlan,
    FlannelHostGw,
    CalicoIpip,
    CalicoVxlan,
    Canal,
    CiliumVxlan,
    CiliumGeneve,
    CalicoBgp,
    KubeRouter,
    CiliumNative,
    Terway,
    None,
    Unknown,
}

impl Plugin {
    pub const ALL: [Plugin; 13] = [
        Plugin::FlannelVxlan,
        Plugin::FlannelHostGw,
        Plugin::CalicoIpip,
        Plugin::CalicoVxlan,
        Plugin::Canal,
        Plugin::CiliumVxlan,
        Plugin::CiliumGeneve,
        Plugin::CalicoBgp,
        Plugin::KubeRouter,
        Plugin::CiliumNative,
        Plugin::Terway,
        Plugin::None,
        Plugin::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Plugin::FlannelVxlan => "flannel-vxlan",
            Plugin::FlannelHostGw => "flannel-host-gw",
            Plugin::CalicoIpip => "calico-ipip",
            Plugin::CalicoVxlan => "calico-vxlan",
            Plugin::Canal => "canal",
            Plugin::CiliumVxlan => "cilium-vxlan",
            Plugin::CiliumGeneve => "cilium-geneve",
            Plugin::CalicoBgp => "calico-bgp",
            Plugin::KubeRouter => "kube-router",
            Plugin::CiliumNative => "cilium-native",
            Plugin::Terway => "terway",
            Plugin::None => "none",
            Plugin::Unknown => "unknown",
        }
    }

    /// The scenario a node running this plugin is in.
    ///
    /// Flannel host-gw routes pods directly between nodes without a tunnel,
    /// so, like BGP, its pod network does not extend to cloud nodes: it is
    /// grouped with `bgp`. A Terway node cannot tell which on-prem scenario
    /// the cluster is in, so it reports `unknown` (the controller takes the
    /// scenario from on-prem nodes).
    pub fn scenario(self) -> Scenario {
        match self {
            Plugin::FlannelVxlan
            | Plugin::CalicoIpip
            | Plugin::CalicoVxlan
            | Plugin::Canal
            | Plugin::CiliumVxlan
            | Plugin::CiliumGeneve => Scenario::Overlay,
            Plugin::CalicoBgp | Plugin::KubeRouter | Plugin::CiliumNative | Plugin::FlannelHostGw => {
                Scenario::Bgp
            }
            Plugin::None => Scenario::HostNetwork,
            Plugin::Terway | Plugin::Unknown => Scenario::Unknown,
        }
    }
}

/// Whether a node is an ECS node added from the cloud (`alibabacloud.com/external=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Cloud,
    OnPrem,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cloud => "cloud",
            Role::OnPrem => "on-prem",
        }
    }
}

/// How much independent evidence backs a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Scenario, Plugin, Role, Confidence);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        n
    }

    #[test]
    fn role_from_the_cloud_selector() {
        let default = default_cloud_selector();
        assert_eq!(role_of(&node(&[(CLOUD_LABEL, "true")]), &default), Role::Cloud);
        assert_eq!(role_of(&node(&[(CLOUD_LABEL, "false")]), &default), Role::OnPrem);
        assert_eq!(role_of(&node(&[]), &default), Role::OnPrem);
        // A custom selector: every label must match; an empty one makes no node cloud.
        let custom =
            BTreeMap::from([("pool".to_owned(), "ecs".to_owned()), ("zone".to_owned(), "k".to_owned())]);
        assert_eq!(role_of(&node(&[("pool", "ecs"), ("zone", "k")]), &custom), Role::Cloud);
        assert_eq!(role_of(&node(&[("pool", "ecs"), (CLOUD_LABEL, "true")]), &custom), Role::OnPrem);
        assert_eq!(role_of(&node(&[(CLOUD_LABEL, "true")]), &BTreeMap::new()), Role::OnPrem);
    }

    #[test]
    fn serialized_names_match_as_str() {
        for p in Plugin::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for s in [Scenario::Overlay, Scenario::Bgp, Scenario::HostNetwork, Scenario::Unknown] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(serde_json::to_value(Role::OnPrem).unwrap(), "on-prem");
        assert_eq!(serde_json::to_value(Confidence::High).unwrap(), "high");
    }

    #[test]
    fn terway_needed_only_where_pods_do_not_reach_cloud_nodes() {
        assert_eq!(Plugin::FlannelVxlan.scenario().terway_required(), Some(false));
        assert_eq!(Plugin::CalicoBgp.scenario().terway_required(), Some(true));
        assert_eq!(Plugin::None.scenario().terway_required(), Some(true));
        assert_eq!(Plugin::Unknown.scenario().terway_required(), None);
    }
}
